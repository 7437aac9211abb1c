//! The `lambent` binary: everything is in the `lambent-cli` library.

fn main() -> std::process::ExitCode {
    lambent_cli::main()
}
