//! The `lambent` binary: everything is in the `lambent-cli` library. Its allocator is
//! mimalloc: the server's hot paths (HTTP, JSON, SigV4) allocate many small, short-lived
//! buffers across threads, where it costs less CPU per request than glibc's malloc (measured
//! by the `tables` bench of `lambent-server`, which uses the same allocator).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lambent_cli::main()
}
