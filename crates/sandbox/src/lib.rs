//! Creating, isolating, measuring and killing one sandbox: a process tree in its own mount, PID,
//! IPC, UTS, cgroup and network namespaces, its own cgroup (v1 or v2, detected at start-up), a
//! minimal read-only root with the function's code at `/var/task`, an unprivileged user and a
//! seccomp filter. Knows nothing of scheduling, HTTP or the Runtime API protocol: it hands the
//! caller a listening TCP socket bound *inside* the sandbox's network namespace
//! (`127.0.0.1:9001`) and the read end of the sandbox's stdout+stderr pipe.
//!
//! CONTRACT (used by `lambent-invoker`; keep these signatures):
//! ```text
//! let host = Host::detect(HostOptions { isolation: Isolation::Full, state_dir, layers, sdk_dir })?; // error names what is missing
//! let layout = host.layout(&code_dir, &runtime_dir);   // paths as the sandboxed process sees them
//! let sb: Sandbox = host.spawn(&SandboxSpec { .. })?;
//! let sb: Option<Sandbox> = host.claim_waiting(&spec);  // what waits made ahead, without blocking on it
//! sb.setup_failure(); sb.started();  // a claimed sandbox that ended: why; one that is ready: forget the handshake
//! sb.pid(); sb.runtime_api_listener(); sb.take_output();  // std::net::TcpListener (nonblocking), OwnedFd (nonblocking)
//! sb.memory_peak_bytes(); sb.oom_kills(); sb.freeze(); sb.thaw();
//! sb.kill();  // whole tree; Drop kills and removes the cgroup
//! host.set_tenant_limits("team-a", TenantLimits { cpu_weight: 100, memory_max_bytes: None })?;
//! host.remove_tenant("team-a")?;  // kills the namespace's sandboxes, removes its cgroups
//! sb.pidfd(); // BorrowedFd that becomes readable when the sandbox's init process exits
//! ```
//!
//! # What a sandbox is (full isolation)
//!
//! `Host::spawn` prepares everything that allocates in the parent (cgroup with its limits, the
//! mount plan, argv/envp, the seccomp program compiled once at start-up), then makes one
//! `clone3` into fresh mount, PID, IPC and UTS namespaces, and a network namespace (one made
//! ahead by a background thread with its listener already bound, or a fresh one). The child runs
//! only async-signal-safe raw system calls until `execve` (the parent is a multi-threaded
//! server), in this order:
//!
//! 1. resets every signal handler, starts a new session, joins its cgroups (v2: it was born in
//!    its cgroup through `CLONE_INTO_CGROUP`) and a new cgroup namespace;
//! 2. enters its network namespace made ahead, or brings `lo` up in its fresh one, listens on
//!    `127.0.0.1:9001` and passes that socket to the parent;
//! 3. builds its root: a small tmpfs holding read-only binds of the host's `/usr` and `/etc`
//!    (and `/bin`, `/sbin`, `/lib*`: symlinks where the host has symlinks), the code at
//!    `/var/task` and Lambent's runtime clients at `/var/runtime` (both read-only), a private
//!    `/tmp` tmpfs of `tmp_mb`, a fresh `/proc`, a minimal `/dev`; `pivot_root`s into it,
//!    detaches the host's root and makes its own root read-only. Nothing else of the host is
//!    visible: not `/root`, not the data dir, not other functions' code. `/etc` is the host's,
//!    read-only (users, certificates, time zones): do not keep secrets in the host's `/etc`;
//! 4. sets the hostname `lambent`, points stdout and stderr at one pipe and stdin at `/dev/null`,
//!    marks every other descriptor close-on-exec, limits descriptors to 1024 and core dumps to 0;
//! 5. empties its capability bounding set and becomes [`SANDBOX_UID`]:[`SANDBOX_GID`] with no
//!    supplementary groups (no capability survives), then sets `no_new_privs`;
//! 6. installs the seccomp filter (`seccomp.rs`: namespace, mount, tracing, kernel-module, clock
//!    and BPF system calls fail with `EPERM`; `clone3` with `ENOSYS` so that libc falls back to
//!    `clone`, whose namespace flags are filtered);
//! 7. `execve`s `argv[0]` in `/var/task`.
//!
//! The program is PID 1 of its namespace, so killing it kills the whole tree (and, as PID 1, it
//! inherits orphans: zombies count against `pids_max` until it reaps them or the sandbox ends).
//! Any failing step is reported over the handshake socket and `spawn` returns
//! [`SandboxError::Setup`] naming the step; success is the child's `Exec` message, then the
//! handshake socket closing at `execve` (an end without `Exec` is a child killed during set-up,
//! [`SandboxError::EndedDuringSetup`]).
//! Cold starts normally claim a sandbox made ahead (`ready.rs`): steps 1-4 ran in the
//! background with empty `/var/task` and `/var/runtime`, with the least CPU weight; while it
//! waits, the sandbox also empties its capability bounding set (the first half of step 5) and
//! unmaps the server's memory it inherited (so that its `execve` has little to tear down); the
//! claim sets the cgroup's limits, passes the code and runtime directories as detached
//! read-only mounts (`open_tree`), and the sandbox attaches them, then takes steps 4-7.
//! [`Host::claim_waiting`] makes such a claim (or that of a Python runtime forked ahead, or a
//! Node.js stem cell) without waiting for anything the sandbox does, so that an async caller may
//! make it on its own thread; a sandbox made ahead claimed that way does not wait for its
//! `execve`, and should a step after the claim fail, [`Sandbox::setup_failure`] names it once
//! the sandbox has ended. `Host::detect` runs all of this once, stopping short of `execve`, so that a host where it
//! cannot work is refused at start-up, naming the step that failed.
//!
//! # Host requirements and effects
//!
//! Root, Linux 5.11 or later (`close_range` with `CLOSE_RANGE_CLOEXEC`; `clone3`, pidfds),
//! cgroups with the memory, pids and freezer controllers (v1, hybrid or v2). On cgroup v1 hosts
//! `Host::detect` turns on the kernel's global `favordynmods` cgroup option (see `cgroup.rs`):
//! without it every sandbox start waits 10-15 ms for an RCU grace period. Every cgroup a host
//! makes lives under its own directory, `<hierarchy>/lambent/host-<pid>-<n>/` (sandboxes at
//! `host-<pid>-<n>/sb-*`), which goes when the host does, so two servers on one machine never
//! touch each other's cgroups. When the server dies, runtime clients see their Runtime API
//! connection close and exit, and the next `Host::detect` kills whatever is left in the
//! directories of servers that are gone (no process `<pid>`) and removes them.
//!
//! A sandbox whose spec names a namespace ([`SandboxSpec::namespace`]) lives under that
//! namespace's cgroup, `<hierarchy>/lambent/host-<pid>-<n>/ns-<namespace>/sb-*`, whose CPU weight and memory
//! cap [`Host::set_tenant_limits`] sets ([`TenantLimits`]); [`Host::remove_tenant`] kills
//! everything of a namespace and removes its cgroup tree. Whatever way the sandbox is born
//! (exec, made ahead, zygote, package zygote, stem cell) it ends up there before its function's
//! code runs (see `cgroup.rs`).
//!
//! # Modules
//! - `host`: detection of what the host offers, `Host::spawn` (the parent's half);
//! - `spawn`: the child's half, from `clone3` to `execve`;
//! - `handshake`: the typed parent↔child messages over a `SOCK_SEQPACKET` pair;
//! - `mounts`: the root file system as a plan (data), applied in the child;
//! - `netpool`: network namespaces with their listener, made ahead by a background thread;
//! - `ready`: whole sandboxes made ahead (every step above but the code mounts, the user,
//!   seccomp and `execve`), claimed by cold starts and handed their code and program;
//! - `zygote`: the Python zygote, the host's half; runtimes forked from it, ahead or on demand;
//! - `package`: package zygotes (a Python function's own zygote, its packages imported), their
//!   cache and eviction;
//! - `stem`: Node.js stem cells;
//! - `network`: outbound network for sandboxes that opt in (slirp4netns, a user-mode stack);
//! - `cgroup`: cgroup v1/v2 detection, limits, accounting, freezing, behind a small fs seam;
//! - `seccomp`: the deny table and its compilation;
//! - `sandbox`: the handle the caller keeps, its accounting and its teardown;
//! - `spec`: what to run, its validation and its environment;
//! - `insecure`: `--insecure-no-sandbox`, a plain child process for development.

mod cgroup;
mod error;
mod handshake;
mod host;
mod insecure;
mod mounts;
mod netpool;
mod network;
mod package;
mod ready;
mod sandbox;
mod seccomp;
mod spawn;
mod spec;
mod stem;
mod zygote;

pub use cgroup::{CgroupVersion, TenantRemoval};
pub use error::{SandboxError, SetupStep};
pub use host::{Host, HostOptions, Isolation, Layers, Layout};
pub use lambent_core::{Birth, TenantLimits};
pub use sandbox::{Sandbox, Startup};
pub use spec::{Interpreter, SandboxSpec};

/// User id a fully isolated sandbox runs as (the one AWS Lambda uses). No capability survives
/// the switch; nothing visible in the sandbox is writable by it except `/tmp` and `/dev/shm`.
pub const SANDBOX_UID: u32 = 993;
/// Group id a fully isolated sandbox runs as (the one AWS Lambda uses), with no supplementary groups.
pub const SANDBOX_GID: u32 = 990;
/// Port of the Runtime API inside every fully isolated sandbox, on its own loopback.
pub const RUNTIME_API_PORT: u16 = 9001;
/// Where the function's code appears inside a fully isolated sandbox.
pub const TASK_ROOT: &str = "/var/task";
/// Where Lambent's runtime clients appear inside a fully isolated sandbox.
pub const RUNTIME_ROOT: &str = "/var/runtime";
/// Hostname inside a fully isolated sandbox.
pub const HOSTNAME: &str = "lambent";
/// How the cgroup of everything made ahead of its cold start (sandboxes, forked runtimes,
/// stem cells) is named; a claimed one keeps its name.
pub(crate) const MADE_AHEAD_CGROUP_PREFIX: &str = "sb-ready-";

/// Whether cgroup directory `dir` is one of something made ahead of its cold start (a sandbox,
/// a forked runtime, a stem cell): a pool's spare, which any cold start may claim, or one
/// claimed since (it keeps its cgroup).
pub fn made_ahead_cgroup(dir: &std::path::Path) -> bool {
    dir.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(MADE_AHEAD_CGROUP_PREFIX))
}
