//! [`Host`]: what this machine offers for sandboxes, found out once (`Host::detect`: root,
//! cgroups, namespaces, the seccomp program, the host's top-level directories, the state
//! directory), and the parent's half of [`Host::spawn`]: create the cgroup, prepare everything
//! the child needs, clone it, and wait on the handshake until the program runs or a step fails.

use crate::cgroup::{self, Cgroups, HostFs, Limits, CGROUP_ROOT};
use crate::handshake::{self, ChildChannel, Message};
use crate::mounts::{self, HostRootfs};
use crate::netpool::NetPool;
use crate::sandbox::{Isolated, Process, Sandbox};
use crate::seccomp::SeccompProgram;
use crate::spawn::{self, ChildPlan};
use crate::{
    insecure, CgroupVersion, SandboxError, SandboxSpec, SetupStep, RUNTIME_API_PORT, RUNTIME_ROOT,
    TASK_ROOT,
};
use std::ffi::CString;
use std::fs::File;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a child may take from `clone` to `execve` before `spawn` gives up on it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How strongly sandboxes are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, cgroups, a minimal read-only root, an unprivileged user, seccomp. Needs root.
    Full,
    /// A plain child process with the same pipe and environment contract and nothing else:
    /// for development without root (`--insecure-no-sandbox`). Functions can read and write
    /// whatever the server's user can.
    Insecure,
}

/// What `Host::detect` needs to know.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub isolation: Isolation,
    /// Scratch directory owned by Lambent (e.g. `<data>/sandboxes`); created if missing. Full
    /// isolation mounts each sandbox's root on `<state_dir>/rootfs`, inside the sandbox's own
    /// mount namespace (the host never sees those mounts), and keeps the empty directories of
    /// its start-up self-test in `<state_dir>/selftest`. Unused in insecure mode.
    pub state_dir: PathBuf,
    /// The layers a full sandbox gets: all of them ([`Layers::ALL`]) except to measure what
    /// each one costs.
    pub layers: Layers,
}

/// The isolation layers of a full sandbox. Production runs with [`Layers::ALL`]; leaving one out
/// exists to measure what it costs (the benchmark's per-layer table). The network namespace is
/// not optional: it is how the Runtime API reaches the sandbox at `127.0.0.1:9001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// Own mount namespace and the minimal read-only root (without it: the host's file
    /// system, the code at its host path).
    pub root: bool,
    /// Own PID, IPC and UTS namespaces.
    pub pid_ipc_uts: bool,
    /// Own cgroup (memory, CPU and pids limits, accounting) and cgroup namespace.
    pub cgroup: bool,
    /// The unprivileged user: no capabilities, `no_new_privs`.
    pub user: bool,
    /// The seccomp filter.
    pub seccomp: bool,
    /// Network namespaces made ahead by a background thread (without it, each sandbox makes
    /// its own on the start-up path).
    pub netns_ahead: bool,
}

impl Layers {
    pub const ALL: Layers = Layers {
        root: true,
        pid_ipc_uts: true,
        cgroup: true,
        user: true,
        seccomp: true,
        netns_ahead: true,
    };
}

impl Default for Layers {
    fn default() -> Layers {
        Layers::ALL
    }
}

/// Paths as the sandboxed process sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `/var/task`, or the code directory itself in insecure mode.
    pub task_root: PathBuf,
    /// `/var/runtime`, or the runtime directory itself in insecure mode.
    pub runtime_dir: PathBuf,
}

/// This machine's sandboxing facilities. Cheap to clone; shareable between threads.
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    isolation: Isolation,
    /// `None` in insecure mode.
    full: Option<FullHost>,
}

/// What full isolation needs, prepared once.
#[derive(Debug)]
struct FullHost {
    cgroups: Cgroups,
    rootfs: HostRootfs,
    /// `<state_dir>/rootfs`: where each sandbox mounts its root before `pivot_root`.
    new_root: PathBuf,
    seccomp: SeccompProgram,
    /// Network namespaces made ahead; `None` if the pool thread could not start.
    netpool: Option<NetPool>,
    layers: Layers,
}

impl Host {
    /// Finds out what the host offers. With [`Isolation::Full`], fails with
    /// [`SandboxError::Unavailable`] naming exactly what is missing (root, a cgroup controller,
    /// a namespace kind) and pointing at `--insecure-no-sandbox`.
    pub fn detect(opts: HostOptions) -> Result<Host, SandboxError> {
        let full = match opts.isolation {
            Isolation::Insecure => {
                tracing::warn!("sandboxing disabled: functions run as plain processes with the server's privileges");
                None
            }
            Isolation::Full => Some(FullHost::detect(&opts.state_dir, opts.layers)?),
        };
        Ok(Host {
            inner: Arc::new(Inner {
                isolation: opts.isolation,
                full,
            }),
        })
    }

    pub fn isolation(&self) -> Isolation {
        self.inner.isolation
    }

    /// The cgroup interface in use; `None` in insecure mode.
    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        self.inner.full.as_ref().map(|f| f.cgroups.version())
    }

    /// Paths as the sandboxed process sees them: `/var/task` and `/var/runtime` with full
    /// isolation, the host paths given in insecure mode.
    pub fn layout(&self, code_dir: &Path, runtime_dir: &Path) -> Layout {
        let root = self.inner.full.as_ref().is_some_and(|f| f.layers.root);
        match root {
            true => Layout {
                task_root: PathBuf::from(TASK_ROOT),
                runtime_dir: PathBuf::from(RUNTIME_ROOT),
            },
            false => Layout {
                task_root: code_dir.to_path_buf(),
                runtime_dir: runtime_dir.to_path_buf(),
            },
        }
    }

    /// Starts a sandbox and returns once its program is running (`execve` succeeded), or with
    /// the reason it could not start. Blocking (a few milliseconds): call it from a blocking
    /// thread in async code.
    pub fn spawn(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        spec.validate(self.inner.isolation)?;
        match &self.inner.full {
            Some(full) => full.spawn(spec),
            None => insecure::spawn(spec),
        }
    }
}

fn unavailable(missing: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable {
        missing: missing.into(),
    }
}

impl FullHost {
    fn detect(state_dir: &Path, layers: Layers) -> Result<FullHost, SandboxError> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(unavailable(format!(
                "not running as root (effective uid {euid})"
            )));
        }
        for ns in ["mnt", "pid", "ipc", "uts", "net", "cgroup"] {
            if !Path::new("/proc/self/ns").join(ns).exists() {
                return Err(unavailable(format!("the kernel has no {ns} namespaces")));
            }
        }
        let cgroups = Cgroups::detect(Arc::new(HostFs), Path::new(CGROUP_ROOT))?;
        cgroups.remove_stale();
        if cgroups.version() == CgroupVersion::V1 {
            match cgroup::favor_dynamic_modifications() {
                Ok(true) => tracing::info!("turned on the kernel's cgroup favordynmods option for fast cgroup moves"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "could not turn on cgroup favordynmods ({e}): each sandbox start may wait 10-15 ms for the kernel"
                ),
            }
        }
        let seccomp = SeccompProgram::compile()?;
        let rootfs = HostRootfs::scan(Path::new("/"))?;

        let state_err = |source| SandboxError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(state_err)?;
        let state_dir = state_dir.canonicalize().map_err(state_err)?;
        let new_root = state_dir.join("rootfs");
        match std::fs::DirBuilder::new().mode(0o700).create(&new_root) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(state_err(e)),
        }
        let netpool = match layers.netns_ahead {
            true => NetPool::start()
                .map_err(|e| tracing::warn!("no network namespace pool: {e}"))
                .ok(),
            false => None,
        };
        let host = FullHost {
            cgroups,
            rootfs,
            new_root,
            seccomp,
            netpool,
            layers,
        };
        if layers != Layers::ALL {
            tracing::warn!(
                ?layers,
                "sandboxes lack isolation layers (for measurements only)"
            );
        }
        host.self_test(&state_dir)?;
        tracing::info!(
            cgroup = ?host.cgroups.version(),
            state_dir = %state_dir.display(),
            "full sandbox isolation available"
        );
        Ok(host)
    }

    /// Runs every set-up step once, up to but not including `execve`, so that a host where
    /// sandboxes cannot work (no privilege to make namespaces or mounts, in a container, say)
    /// is refused at start-up, naming the step, rather than at the first invocation.
    fn self_test(&self, state_dir: &Path) -> Result<(), SandboxError> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = state_dir.join("selftest");
        let (code_dir, runtime_dir) = (dir.join("code"), dir.join("runtime"));
        for d in [&dir, &code_dir, &runtime_dir] {
            match std::fs::DirBuilder::new().mode(0o755).create(d) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(SandboxError::StateDir {
                        path: d.clone(),
                        source: e,
                    })
                }
                _ => {}
            }
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).map_err(
                |source| SandboxError::StateDir {
                    path: d.clone(),
                    source,
                },
            )?;
        }
        let spec = SandboxSpec {
            id: format!(
                "selftest-{}-{}",
                std::process::id(),
                RUNS.fetch_add(1, Ordering::Relaxed)
            ),
            code_dir,
            runtime_dir,
            argv: vec!["/var/task/never-executed".into()],
            env: Vec::new(),
            memory_mb: 64,
            pids_max: 8,
            tmp_mb: 1,
            allow_network: false,
        };
        self.launch(&spec, true).map(drop).map_err(|e| {
            unavailable(format!(
                "a working sandbox (the start-up self-test failed: {e})"
            ))
        })
    }

    fn spawn(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        self.launch(spec, false)
    }

    /// Starts a sandbox; with `dry_run`, its child stops just before `execve`.
    fn launch(&self, spec: &SandboxSpec, dry_run: bool) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let limits = Limits {
            memory_mb: spec.memory_mb,
            pids_max: spec.pids_max,
        };
        let layers = self.layers;
        let cgroup = match layers.cgroup {
            true => Some(self.cgroups.create(&spec.id, limits)?),
            false => None,
        };
        let procs: Vec<OwnedFd> = match &cgroup {
            Some(cgroup) => cgroup
                .procs_files()?
                .into_iter()
                .map(|f| above_stdio(f.into()))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let cgroup_dir: Option<File> = match &cgroup {
            Some(cgroup) => cgroup.dir_file()?,
            None => None,
        };
        let (mounts, workdir) = match layers.root {
            true => (
                mounts::plan(
                    &self.rootfs,
                    &self.new_root,
                    &spec.code_dir,
                    &spec.runtime_dir,
                    spec.tmp_mb,
                )?,
                CString::new(TASK_ROOT).expect("no NUL"),
            ),
            false => (
                Vec::new(),
                CString::new(spec.code_dir.as_os_str().as_encoded_bytes())
                    .map_err(|e| SandboxError::InvalidSpec(e.to_string()))?,
            ),
        };
        let argv = CStrings::new(spec.argv.iter().cloned())?;
        let envp = CStrings::new(spec.environment(&format!("127.0.0.1:{RUNTIME_API_PORT}")))?;
        let (parent_end, child_end) = handshake::pair()?;
        let child_end = above_stdio(child_end)?;
        let (output, output_w) = output_pipe()?;
        let output_w = above_stdio(output_w)?;
        let fprog = self.seccomp.fprog();
        let net = self.netpool.as_ref().and_then(NetPool::take);
        let procs_raw: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();

        let plan = ChildPlan {
            channel: ChildChannel(child_end.as_raw_fd()),
            output: output_w.as_raw_fd(),
            join_cgroup: &procs_raw,
            netns: net.as_ref().map(|n| n.netns.as_raw_fd()),
            mounts: &mounts,
            seccomp: &fprog,
            argv: &argv.pointers,
            envp: &envp.pointers,
            workdir: &workdir,
            layers,
            dry_run,
        };
        let child = spawn::clone_sandbox(&plan, cgroup_dir.as_ref().map(AsRawFd::as_raw_fd))?;
        let process = Process::new(child, false);
        // The child has its copies; ours must go, or end-of-file would never come.
        drop((child_end, output_w, procs, cgroup_dir));
        let cloned = started.elapsed();

        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut listener = net.map(|n| n.listener);
        loop {
            match parent_end.recv(deadline, SETUP_TIMEOUT)? {
                Some(Message::Listener(fd)) => listener = Some(TcpListener::from(fd)),
                Some(Message::Failed { step, index, errno }) => {
                    let detail = match step {
                        SetupStep::Mount => mounts
                            .get(index as usize)
                            .map(|op| format!(" ({op})"))
                            .unwrap_or_default(),
                        SetupStep::Exec => format!(" '{}'", spec.argv[0]),
                        SetupStep::Chdir => format!(
                            " {TASK_ROOT} (is the code directory readable by uid {}?)",
                            crate::SANDBOX_UID
                        ),
                        _ => String::new(),
                    };
                    return Err(SandboxError::Setup {
                        step,
                        detail,
                        errno,
                    });
                }
                None => break,
            }
        }
        let listener = listener.ok_or(SandboxError::SetupVanished)?;
        listener.set_nonblocking(true)?;
        let sandbox = Sandbox::new(
            spec.id.clone(),
            listener,
            output,
            process,
            cgroup.map_or(Isolated::NoCgroup, Isolated::Full),
        );
        tracing::debug!(
            id = %spec.id,
            pid = sandbox.pid(),
            clone_us = cloned.as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "sandbox started"
        );
        Ok(sandbox)
    }
}

/// NUL-terminated strings and the NULL-terminated pointer array `execve` takes.
pub(crate) struct CStrings {
    _strings: Vec<CString>,
    pub pointers: Vec<*const libc::c_char>,
}

impl CStrings {
    pub(crate) fn new(items: impl IntoIterator<Item = String>) -> Result<CStrings, SandboxError> {
        let strings = items
            .into_iter()
            .map(|s| CString::new(s).map_err(|e| SandboxError::InvalidSpec(format!("{e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(CStrings {
            _strings: strings,
            pointers,
        })
    }
}

/// The output pipe: (read end, `O_NONBLOCK | O_CLOEXEC`; write end, `O_CLOEXEC`).
pub(crate) fn output_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: fcntl on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((read, write))
}

/// Moves a descriptor the child will use to 3 or above, so that `dup2` onto 0-2 never meets
/// itself (a server started with closed standard descriptors could hand out 0-2).
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, SandboxError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one we then own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `moved` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_layout_is_the_host_paths_and_full_is_var() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::detect(HostOptions {
            isolation: Isolation::Insecure,
            state_dir: tmp.path().into(),
            layers: Layers::ALL,
        })
        .unwrap();
        assert_eq!(host.isolation(), Isolation::Insecure);
        assert_eq!(host.cgroup_version(), None);
        let layout = host.layout(Path::new("/data/code"), Path::new("/data/rt"));
        assert_eq!(layout.task_root, Path::new("/data/code"));
        assert_eq!(layout.runtime_dir, Path::new("/data/rt"));
    }

    #[test]
    fn cstrings_are_null_terminated() {
        let c = CStrings::new(["a".to_string(), "bc".to_string()]).unwrap();
        assert_eq!(c.pointers.len(), 3);
        assert!(c.pointers[2].is_null());
        assert!(CStrings::new(["a\0".to_string()]).is_err());
    }

    #[test]
    fn output_pipe_read_end_is_nonblocking_and_cloexec() {
        let (read, write) = output_pipe().unwrap();
        // SAFETY: fcntl queries on descriptors we own.
        unsafe {
            assert!(libc::fcntl(read.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK != 0);
            assert!(libc::fcntl(read.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0);
            assert!(libc::fcntl(write.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0);
        }
    }
}
