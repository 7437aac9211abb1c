//! The `lambent` binary: everything is in the `lambent-cli` library. Its allocator is
//! mimalloc: the server's hot paths (HTTP, JSON, SigV4) allocate many small, short-lived
//! buffers across threads, where it costs less CPU per request than glibc's malloc (measured
//! by the `tables` bench of `lambent-server`, which uses the same allocator). It is built
//! with `no_thp` (the workspace's `Cargo.toml`): on transparent huge pages its heap kept
//! 2 MiB regions resident whole and grew by tens of MB whenever the server paged through
//! activation records (docs/soak.md).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    lambent_cli::main()
}
