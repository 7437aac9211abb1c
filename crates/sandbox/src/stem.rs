//! Node.js stem cells. Node cannot fork safely (its V8 platform and libuv threads do not survive
//! a `fork`), so instead of a zygote a small pool (`ready.rs` sizes it by the cold-start rate)
//! keeps `node` already running on Lambent's runtime client inside complete sandboxes made
//! ahead: unprivileged, seccomp on, `/var/task` an empty read-only directory, and the runtime
//! client blocked reading stdin. Its stdin is one end of a Unix socket pair (the *assignment*
//! socket); the host keeps the other. Once `node` has started and rehearsed its first
//! invocation, the runtime client writes one byte ([`WAITING`]) to it: until then the cell is
//! still starting ([`StemCell::waiting`]), and a claim prefers a cell that waits (readiness, too,
//! waits for one). A Node cold start claims one: the host sets the cgroup's limits to the
//! function's, attaches the function's code (read-only) over `/var/task` from outside
//! (`mounts::attach_inside`), and writes the function's complete environment (`KEY=VALUE`,
//! NUL-separated) to the assignment socket, then shuts down its writing side; the runtime client
//! replaces its environment with it, changes to `/var/task`, imports the handler and asks for
//! work. Each stem cell serves one function once; it has never seen another's code or
//! environment.
//!
//! Functions whose environment holds what only node's own start reads (`NODE_OPTIONS`, …) or
//! whose memory is below [`MIN_MEMORY_MB`] start by `execve` as before.

use crate::cgroup::{Limits, SandboxCgroup};
use crate::ready::Ahead;
use crate::sandbox::Process;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

/// What the runtime client writes to its assignment socket once it waits for its function.
pub(crate) const WAITING: u8 = b'w';

/// Limits of a waiting stem cell (node's own start needs more than an empty sandbox's; its
/// CPU weight is the least, so that making it does not slow the cold starts under way).
pub(crate) const LIMITS: Limits = Limits {
    memory_mb: 256,
    pids_max: 64,
    background: true,
};
/// Smallest function memory a stem cell is handed to (an idle node holds ~40 MiB).
pub(crate) const MIN_MEMORY_MB: u32 = 128;
/// Most stem cells kept waiting (each holds a running node).
pub(crate) const MAX: usize = 4;

/// What a stem cell runs: the interpreter and runtime client as the sandbox sees them, and
/// the runtime directory on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StemProgram {
    pub argv: Vec<String>,
    pub runtime_dir: PathBuf,
}

impl StemProgram {
    /// The environment of a stem cell until its claim: nothing of any function.
    pub(crate) fn environment(&self, runtime_api: &str) -> Vec<String> {
        [
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "LANG=C.UTF-8",
            "TZ=:UTC",
            "LAMBENT_STEM_CELL=1",
            "LAMBDA_TASK_ROOT=/var/task",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("AWS_LAMBDA_RUNTIME_API={runtime_api}")])
        .collect()
    }
}

/// A running, waiting stem cell.
#[derive(Debug)]
pub(crate) struct StemCell {
    /// Dropped first: an unclaimed stem cell is killed, then its cgroup removed.
    pub process: Process,
    pub listener: TcpListener,
    pub cgroup: SandboxCgroup,
    pub output: OwnedFd,
    /// The host's end of the assignment socket (the runtime's stdin).
    pub assignment: OwnedFd,
    pub tmp_mb: u32,
    /// Whether the runtime client said it waits ([`WAITING`]).
    pub waiting: bool,
}

impl StemCell {
    /// Whether its runtime client waits for its function (it said so on the assignment
    /// socket), rather than still starting. Never blocks.
    pub(crate) fn waiting(&mut self) -> bool {
        if !self.waiting {
            let mut byte = 0u8;
            // SAFETY: a one-byte read into a local buffer from a descriptor this cell owns.
            let n = unsafe {
                libc::recv(
                    self.assignment.as_raw_fd(),
                    (&raw mut byte).cast(),
                    1,
                    libc::MSG_DONTWAIT,
                )
            };
            self.waiting = n == 1 && byte == WAITING;
        }
        self.waiting
    }
}

impl Ahead for StemCell {
    /// An idle `node` (about 40 MiB) and its sandbox.
    const MEMORY_KB: u64 = 48 * 1024;
    fn tmp_mb(&self) -> u32 {
        self.tmp_mb
    }
    fn in_namespace(&self, namespace: &str) -> bool {
        self.cgroup.in_namespace(namespace)
    }
    fn waiting(&mut self) -> bool {
        StemCell::waiting(self)
    }
}

/// Whether a running node can honour `env` as an exec'd one would: nothing that only node's or
/// the dynamic loader's start reads.
pub(crate) fn environment_fits(env: &[(String, String)]) -> bool {
    env.iter().all(|(key, _)| {
        key == "LD_LIBRARY_PATH"
            || !(key.starts_with("NODE_") || key.starts_with("UV_") || key.starts_with("LD_"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_start_variables_send_the_sandbox_to_exec() {
        let env = |k: &str| vec![(k.to_string(), "x".to_string())];
        assert!(environment_fits(&env("SECRET")));
        assert!(environment_fits(&env("LD_LIBRARY_PATH")));
        assert!(!environment_fits(&env("NODE_OPTIONS")));
        assert!(!environment_fits(&env("UV_THREADPOOL_SIZE")));
        assert!(!environment_fits(&env("LD_PRELOAD")));
    }
}
