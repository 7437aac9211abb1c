//! Published limits, the same numbers AWS Lambda uses where Lambent has an equivalent.

/// Largest synchronous request or response payload (6 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// Largest zipped code package accepted by an upload (50 MB).
pub const MAX_CODE_ZIP: usize = 50 * 1024 * 1024;
/// Largest unpacked code package (250 MB): the zip-bomb cap.
pub const MAX_CODE_UNZIPPED: u64 = 250 * 1024 * 1024;
/// Most entries a code package may hold.
pub const MAX_CODE_FILES: usize = 20_000;
/// Memory bounds in MB.
pub const MIN_MEMORY_MB: u32 = 128;
pub const MAX_MEMORY_MB: u32 = 10_240;
pub const DEFAULT_MEMORY_MB: u32 = 128;
/// Timeout bounds in seconds.
pub const MIN_TIMEOUT_S: u32 = 1;
pub const MAX_TIMEOUT_S: u32 = 900;
pub const DEFAULT_TIMEOUT_S: u32 = 3;
/// Total size of a function's environment variables (keys + values), as on Lambda.
pub const MAX_ENV_BYTES: usize = 4 * 1024;
/// Bytes of logs kept per invocation; the rest is dropped with a marker line.
pub const MAX_LOG_BYTES_PER_INVOCATION: usize = 256 * 1024;
/// Processes and threads a sandbox may hold.
pub const SANDBOX_PIDS_MAX: u32 = 1024;
/// Default size of a sandbox's writable /tmp in MB.
pub const DEFAULT_TMP_MB: u32 = 512;
/// Concurrent invocations per namespace by default (Lambda's default account limit).
pub const MAX_CONCURRENCY: u32 = 1000;
/// Most sandboxes a function may keep provisioned.
pub const MAX_PROVISIONED: u32 = 100;
/// Longest per-function keep-alive in seconds (one day).
pub const MAX_KEEP_ALIVE_S: u32 = 86_400;
/// Most components a sequence may name.
pub const MAX_SEQUENCE_STEPS: usize = 50;
/// Deepest nesting of sequences within sequences at run time (a cycle made by two concurrent
/// updates stops here instead of recursing forever).
pub const MAX_SEQUENCE_DEPTH: usize = 16;
