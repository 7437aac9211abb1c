//! [`Sandbox`], the handle the caller keeps for one running sandbox: its init process (pid and
//! pidfd), its runtime API listener, its output pipe, its accounting (memory peak, OOM kills),
//! freezing, killing, and its teardown on drop (kill, reap, remove the cgroup).

use crate::cgroup::SandboxCgroup;
use crate::spawn::Child;
use crate::SandboxError;
use lambent_core::Birth;
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

/// The sandbox's init process. Dropping it kills it (if still alive) and reaps it.
#[derive(Debug)]
pub(crate) struct Process {
    pid: i32,
    pidfd: OwnedFd,
    /// Insecure mode: the process leads its own process group, and signals go to the group.
    group: bool,
}

impl Process {
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// A process this server did not clone (a runtime forked by a zygote's child, which becomes
    /// the server's child as its subreaper), by pid. Opened while it cannot have been reaped:
    /// before its environment is sent, it waits.
    pub(crate) fn adopt(pid: i32) -> std::io::Result<Process> {
        // SAFETY: pidfd_open with plain integer arguments.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Process {
            pid,
            // SAFETY: pidfd_open returned a new descriptor.
            pidfd: unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) },
            group: false,
        })
    }

    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    pub(crate) fn new(child: Child, group: bool) -> Process {
        Process {
            pid: child.pid,
            pidfd: child.pidfd,
            group,
        }
    }

    /// Sends `signal` through the pidfd (never to a recycled pid), and to the process group
    /// in insecure mode (the unreaped leader keeps the group id from being reused).
    fn signal(&self, signal: libc::c_int) {
        // SAFETY: pidfd_send_signal on a pidfd we own; kill on our own child's group.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
            if self.group {
                libc::kill(-self.pid, signal);
            }
        }
    }

    /// How the process ended, once it has (waiting up to `patience`), without reaping it
    /// (dropping it does): "exit status N" or "killed by signal N"; `None` while it runs.
    pub(crate) fn ended(&self, patience: std::time::Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + patience;
        crate::handshake::wait_readable(self.pidfd.as_raw_fd(), deadline, patience).ok()?;
        // SAFETY: waitid on a pidfd we own, into a zeroed siginfo; WNOWAIT leaves it unreaped.
        let info = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let rc = libc::waitid(
                libc::P_PIDFD,
                self.pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            );
            (rc == 0 && info.si_pid() != 0).then_some(info)?
        };
        // SAFETY: si_status is set for the CLD_* codes waitid reports.
        let status = unsafe { info.si_status() };
        Some(match info.si_code {
            libc::CLD_EXITED => format!("exit status {status}"),
            _ => format!("killed by signal {status}"),
        })
    }

    /// Waits for the process to exit and collects it. Blocks until it is gone; after SIGKILL
    /// that is well under a millisecond unless a task is stuck in the kernel.
    fn reap(&self) {
        loop {
            // SAFETY: waitid on a pidfd we own, into a zeroed siginfo.
            let rc = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED,
                )
            };
            if rc == 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
                return;
            }
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        self.reap();
    }
}

/// What isolates the process.
#[derive(Debug)]
pub(crate) enum Isolated {
    /// In its own cgroup (full isolation).
    Full(SandboxCgroup),
    /// In no cgroup of its own: insecure mode, or a full sandbox measured without its cgroup
    /// layer ([`crate::Layers`]). Accounting falls back to `/proc`.
    NoCgroup,
}

/// How a sandbox started, for the activation record and metrics. [`Birth`] is the domain's
/// (`lambent_core`): the paths a cold start can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Startup {
    pub birth: Birth,
    /// Microseconds `Host::spawn` took: from the call until the program runs (its `execve`
    /// done, or the interpreter inside the finished sandbox and told its function). What
    /// follows (the runtime starting, importing the handler) is the runtime's own time.
    pub sandbox_us: u64,
}

impl Startup {
    /// A start-up of `birth` that began at `started` and ends now.
    pub(crate) fn since(birth: Birth, started: std::time::Instant) -> Startup {
        Startup {
            birth,
            sandbox_us: started.elapsed().as_micros() as u64,
        }
    }
}

/// One running sandbox. Dropping it kills the whole tree, reaps it and removes its cgroup.
#[derive(Debug)]
pub struct Sandbox {
    id: String,
    listener: TcpListener,
    output: Option<OwnedFd>,
    // Field order matters: the process is killed and reaped before the cgroup is removed.
    process: Process,
    isolated: Isolated,
    /// The user-mode network of a sandbox with outbound network.
    network: Option<crate::network::Slirp>,
    startup: Startup,
    /// Its set-up's end, when its program was handed over without waiting for its `execve`.
    pending_exec: Option<crate::host::PendingExec>,
}

impl Sandbox {
    pub(crate) fn new(
        id: String,
        listener: TcpListener,
        output: OwnedFd,
        process: Process,
        isolated: Isolated,
        startup: Startup,
    ) -> Sandbox {
        tracing::debug!(
            %id,
            pid = process.pid,
            birth = startup.birth.as_str(),
            us = startup.sandbox_us,
            "sandbox started"
        );
        Sandbox {
            id,
            listener,
            output: Some(output),
            process,
            isolated,
            network: None,
            startup,
            pending_exec: None,
        }
    }

    /// How it started and how long that took.
    pub fn startup(&self) -> Startup {
        self.startup
    }

    /// A sandbox whose program was handed over without waiting for its `execve` (`pending`).
    pub(crate) fn with_pending_exec(
        mut self,
        pending: Option<crate::host::PendingExec>,
    ) -> Sandbox {
        self.pending_exec = pending;
        self
    }

    /// How its set-up failed, when the sandbox was claimed without waiting for its program's
    /// `execve` ([`crate::Host::claim_waiting`]) and has ended before its runtime was ready:
    /// the error [`crate::Host::spawn`] would have returned (the step, what it acted on, the
    /// errno), or [`SandboxError::EndedDuringSetup`] if it was killed before its program ran
    /// (see [`SandboxError::ended_during_setup`]: another sandbox may well do). `None` when its
    /// program started, when it has not ended, or when `spawn` waited for it. Asked once: the
    /// handshake is let go either way.
    pub fn setup_failure(&mut self) -> Option<SandboxError> {
        self.pending_exec.take()?.failure(&self.process)
    }

    /// Its runtime is ready, so its program started: lets go of what would have said why not.
    pub fn started(&mut self) {
        self.pending_exec = None;
    }

    /// Keeps the sandbox's user-mode network alive as long as the sandbox.
    pub(crate) fn with_network(mut self, slirp: crate::network::Slirp) -> Sandbox {
        self.network = Some(slirp);
        self
    }

    /// The id given in the spec.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Host pid of the sandbox's init process: the runtime (PID 1 inside, with full isolation).
    pub fn pid(&self) -> i32 {
        self.process.pid
    }

    /// The runtime API listener: inside the sandbox's network namespace at `127.0.0.1:9001`
    /// (full isolation), or on the host's `127.0.0.1` at the port in `AWS_LAMBDA_RUNTIME_API`
    /// (insecure). Already listening, non-blocking, close-on-exec.
    pub fn runtime_api_listener(&self) -> &TcpListener {
        &self.listener
    }

    /// The read end of the one pipe that is both stdout and stderr of the sandbox
    /// (`O_NONBLOCK | O_CLOEXEC`). `None` once taken.
    pub fn take_output(&mut self) -> Option<OwnedFd> {
        self.output.take()
    }

    /// A pidfd of the init process: readable once it has exited (it is reaped on drop).
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.process.pidfd.as_fd()
    }

    /// The sandbox's cgroup directories (one per v1 hierarchy, one on v2; none in insecure
    /// mode), for diagnostics.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        match &self.isolated {
            Isolated::Full(cg) => cg.dirs().to_vec(),
            Isolated::NoCgroup => Vec::new(),
        }
    }

    /// Highest memory use since the sandbox started, in bytes (what Lambda reports as an
    /// execution environment's Max Memory Used): the cgroup's peak, or in insecure mode the init
    /// process's peak resident set (`VmHWM`).
    pub fn memory_peak_bytes(&self) -> Option<u64> {
        match &self.isolated {
            Isolated::Full(cg) => cg.memory_peak_bytes(),
            Isolated::NoCgroup => {
                let status =
                    std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
                let kb: u64 = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kb * 1024)
            }
        }
    }

    /// How many processes the kernel's OOM killer has killed in this sandbox (always 0 in
    /// insecure mode). On cgroup v1 an OOM kill takes one task, not the sandbox: when this
    /// grows, tear the sandbox down.
    pub fn oom_kills(&self) -> u64 {
        match &self.isolated {
            Isolated::Full(cg) => cg.oom_kills(),
            Isolated::NoCgroup => 0,
        }
    }

    /// Whether the sandbox's memory ever reached its own limit (v2 `memory.events` `max`, v1
    /// `memory.failcnt`; never in insecure mode). An OOM kill without it came from a limit
    /// above the sandbox's: its namespace's memory cap.
    pub fn reached_own_memory_limit(&self) -> bool {
        match &self.isolated {
            Isolated::Full(cg) => cg.reached_memory_limit(),
            Isolated::NoCgroup => false,
        }
    }

    /// Stops every process of the sandbox (cgroup freezer; `SIGSTOP` to the process group in
    /// insecure mode) and returns once they are all stopped.
    pub fn freeze(&self) -> Result<(), SandboxError> {
        match &self.isolated {
            Isolated::Full(cg) => cg.freeze(),
            Isolated::NoCgroup => {
                self.process.signal(libc::SIGSTOP);
                Ok(())
            }
        }
    }

    /// Lets a frozen sandbox run again.
    pub fn thaw(&self) -> Result<(), SandboxError> {
        match &self.isolated {
            Isolated::Full(cg) => cg.thaw(),
            Isolated::NoCgroup => {
                self.process.signal(libc::SIGCONT);
                Ok(())
            }
        }
    }

    /// SIGKILLs the whole tree: the init process (the kernel then kills every other process of
    /// its PID namespace), v2's `cgroup.kill`, and a thaw so frozen tasks can die. Idempotent;
    /// returns without waiting.
    pub fn kill(&self) {
        self.process.signal(libc::SIGKILL);
        if let Isolated::Full(cg) = &self.isolated {
            cg.kill_all();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.kill();
        // Then the fields drop in order: the process is reaped, then the cgroup removed.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Sandbox>();
        assert_send_sync::<crate::Host>();
    }
}
