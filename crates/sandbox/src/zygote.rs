//! Python zygotes, the host's half (the zygote itself is `runtimes/python/zygote.py`, whose
//! docs list its protocol and every step its children take).
//!
//! A zygote is a `python3` started by the server, as root on the host, that has imported
//! Lambent's runtime client and the standard modules most handlers use, and never runs
//! function code nor sees a function's environment. A Python cold start claims a sandbox made
//! ahead for it ([`Flavor::ForZygote`](crate::ready::Flavor): every namespace and mount but a
//! PID namespace and `/proc`), attaches the code and runtime directories inside it (as for any
//! sandbox made ahead, read-only), and asks the zygote to fork: the child joins the sandbox's
//! cgroups and namespaces, makes its PID namespace and forks the runtime as its PID 1, which
//! mounts `/proc`, becomes the unprivileged user and installs the seccomp filter: the same
//! steps as a sandbox that `execve`s. Only then does the server send it its function's
//! environment. The forked runtime shares the zygote's memory copy-on-write: a cold start
//! skips the interpreter's start-up and the common imports, and an idle runtime owns little
//! memory of its own.
//!
//! Cold starts mostly claim a runtime forked *ahead* ([`Forked`], kept by a pool in `host.rs`
//! sized like every pool of `ready.rs`): forked into a sandbox made ahead whose `/var/task` is
//! an empty directory, it waits, unprivileged and under seccomp, for its environment; the claim
//! sets the function's limits, attaches its code over `/var/task` and sends the environment.
//! Before it says it waits, it rehearses a cold start on a throwaway function and loopback
//! server of its own (`zygote.py`'s `rehearse`): the pages of the zygote's memory that a cold
//! start writes are copied then (~270 copy-on-write faults, about 0.9 ms of CPU on the machine
//! it was measured on), not during the claim.
//! A function that ships packages gets a zygote of its own instead, which a `Z` message asks
//! this zygote to fork (`package.rs`).
//!
//! One zygote per interpreter and runtime directory, started on first need in the background
//! (cold starts `execve` meanwhile). A zygote that dies is replaced the same way; a fork that
//! fails for any reason falls back to `execve`, so no invocation fails because of a zygote.
//! The server is the child subreaper of the runtimes (their forking parent exits at once), so
//! it collects their exit status like any sandbox's.

use crate::handshake::{recv_timeout, seqpacket_pair};
use crate::SandboxError;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a zygote may take to import everything and say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// After a zygote failed to start, cold starts `execve` for this long before the next try.
const RETRY_AFTER: Duration = Duration::from_secs(30);
/// The zygote's control socket.
const CONTROL_FD: RawFd = 3;

/// Which zygote: the interpreter (as the sandbox sees it; the host's own, bound read-only) and
/// the runtime directory holding `python/zygote.py`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    python: PathBuf,
    runtime_dir: PathBuf,
}

#[derive(Debug)]
enum Slot {
    Starting,
    Running(Arc<Zygote>),
    Broken(Instant),
}

/// Where one zygote stands ([`Zygotes::state`]).
#[derive(Debug)]
pub(crate) enum ZygoteState {
    /// Not asked for yet, or importing.
    Starting,
    Running(Arc<Zygote>),
    /// Failed to start, or died: cold starts `execve` until one is started again.
    Unavailable,
}

/// The seccomp programs a zygote installs, as raw `sock_filter`s: the sandbox's, and a package
/// zygote's (`seccomp.rs`).
#[derive(Debug)]
pub(crate) struct Programs {
    pub sandbox: Vec<u8>,
    pub package_zygote: Vec<u8>,
}

/// The zygotes of a host.
#[derive(Debug)]
pub(crate) struct Zygotes {
    slots: Arc<Mutex<HashMap<Key, Slot>>>,
    seccomp: Arc<Programs>,
}

impl Zygotes {
    pub(crate) fn new(seccomp: Programs) -> Zygotes {
        Zygotes {
            slots: Arc::default(),
            seccomp: Arc::new(seccomp),
        }
    }

    /// Replaces every zygote (what they import changed: the SDK arrived): running ones are
    /// dropped once no cold start uses them, and the next cold start starts new ones.
    pub(crate) fn restart(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|_, slot| matches!(slot, Slot::Starting));
    }

    /// Where the zygote for `python` and `runtime_dir` stands, without starting one.
    pub(crate) fn state(&self, python: &Path, runtime_dir: &Path) -> ZygoteState {
        let key = Key {
            python: python.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
        };
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&key) {
            Some(Slot::Running(z)) if z.alive() => ZygoteState::Running(Arc::clone(z)),
            None | Some(Slot::Starting) => ZygoteState::Starting,
            Some(Slot::Running(_)) | Some(Slot::Broken(_)) => ZygoteState::Unavailable,
        }
    }

    /// The running zygote for `python` and `runtime_dir`, if there is one; otherwise starts
    /// one in the background (unless one failed to start lately) and returns `None`.
    pub(crate) fn get(&self, python: &Path, runtime_dir: &Path) -> Option<Arc<Zygote>> {
        let key = Key {
            python: python.to_path_buf(),
            runtime_dir: runtime_dir.to_path_buf(),
        };
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        match slots.get(&key) {
            Some(Slot::Running(z)) if z.alive() => return Some(Arc::clone(z)),
            Some(Slot::Running(_)) => {
                tracing::warn!(python = %key.python.display(), "the Python zygote died; starting another");
            }
            Some(Slot::Starting) => return None,
            Some(Slot::Broken(at)) if at.elapsed() < RETRY_AFTER => return None,
            Some(Slot::Broken(_)) | None => {}
        }
        slots.insert(key.clone(), Slot::Starting);
        drop(slots);
        let (slots, seccomp) = (Arc::clone(&self.slots), Arc::clone(&self.seccomp));
        let started = std::thread::Builder::new()
            .name("lambent-zygote".into())
            .spawn(move || {
                let slot = match Zygote::start(&key.python, &key.runtime_dir, &seccomp) {
                    Ok(z) => Slot::Running(Arc::new(z)),
                    Err(e) => {
                        tracing::warn!(
                            "could not start the Python zygote (Python cold starts exec instead): {e}"
                        );
                        Slot::Broken(Instant::now())
                    }
                };
                slots
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, slot);
            });
        if started.is_err() {
            tracing::warn!("could not start a thread for the Python zygote");
        }
        None
    }
}

/// One zygote process and its control socket. Dropping it kills it.
#[derive(Debug)]
pub(crate) struct Zygote {
    pid: u32,
    child: Mutex<Child>,
    control: OwnedFd,
}

impl Zygote {
    fn start(
        python: &Path,
        runtime_dir: &Path,
        seccomp: &Programs,
    ) -> Result<Zygote, SandboxError> {
        let script = runtime_dir.join("python").join("zygote.py");
        if !script.is_file() {
            return Err(SandboxError::Zygote(format!(
                "{} is missing",
                script.display()
            )));
        }
        let (control, theirs) = seqpacket_pair()?;
        let theirs_raw = theirs.as_raw_fd();
        let mut command = Command::new(python);
        command
            .args(["-I", "-B", "-u"])
            .arg(&script)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // SAFETY: dup2 and fcntl only, between fork and exec.
        unsafe {
            command.pre_exec(move || {
                // dup2 onto itself would keep close-on-exec: clear it instead.
                let rc = match theirs_raw == CONTROL_FD {
                    true => libc::fcntl(CONTROL_FD, libc::F_SETFD, 0),
                    false => libc::dup2(theirs_raw, CONTROL_FD),
                };
                if rc < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop(theirs);
        let zygote = Zygote {
            pid: child.id(),
            child: Mutex::new(child),
            control,
        };
        send(&zygote.control, &seccomp.sandbox, &[])?;
        send(&zygote.control, &seccomp.package_zygote, &[])?;
        let mut answer = [0u8; 8];
        let deadline = Instant::now() + START_TIMEOUT;
        match recv_timeout(zygote.control.as_raw_fd(), &mut answer, deadline)? {
            Some((1, None)) if answer[0] == b'R' => {}
            _ => {
                return Err(SandboxError::Zygote(format!(
                    "{} did not become ready (its errors are in the server's log)",
                    script.display()
                )))
            }
        }
        tracing::info!(pid = zygote.pid, "Python zygote ready");
        Ok(zygote)
    }

    fn alive(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        matches!(child.try_wait(), Ok(None))
    }

    /// Asks for a child entering the sandbox of `pidfd`; it reports on `report`. A runtime
    /// forked `ahead` of its cold start rehearses that cold start before it says it entered
    /// (`zygote.py`'s `rehearse`: the memory it writes is copied then, not during the claim);
    /// one forked for a cold start under way does not.
    pub(crate) fn fork(
        &self,
        pidfd: RawFd,
        report: RawFd,
        output: RawFd,
        procs: &[RawFd],
        ahead: bool,
    ) -> io::Result<()> {
        let mut fds = vec![pidfd, report, output];
        fds.extend_from_slice(procs);
        send(&self.control, if ahead { b"A" } else { b"S" }, &fds)
    }

    /// Asks for a package zygote entering the sandbox of `pidfd` (`package.rs`); it reports
    /// on `report`, which becomes its control socket.
    pub(crate) fn build_package_zygote(
        &self,
        pidfd: RawFd,
        report: RawFd,
        procs: &[RawFd],
    ) -> io::Result<()> {
        let mut fds = vec![pidfd, report];
        fds.extend_from_slice(procs);
        send(&self.control, b"Z", &fds)
    }
}

impl Drop for Zygote {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A runtime forked from a zygote (the base zygote or a package zygote), in its finished
/// sandbox (unprivileged, seccomp on), that said `E` and waits for its function's environment
/// on `report`. Made ahead of cold starts (`ready.rs`) or on demand.
#[derive(Debug)]
pub(crate) struct Forked {
    /// Dropped first: an unclaimed runtime is killed, then its cgroup removed.
    pub process: crate::sandbox::Process,
    pub listener: std::net::TcpListener,
    pub cgroup: crate::cgroup::SandboxCgroup,
    pub output: OwnedFd,
    pub report: OwnedFd,
    pub tmp_mb: u32,
}

impl crate::ready::Ahead for Forked {
    /// Its own pages (about 1.2 MiB after the fork) and its sandbox.
    const MEMORY_KB: u64 = 4 * 1024;
    fn tmp_mb(&self) -> u32 {
        self.tmp_mb
    }
    fn in_namespace(&self, namespace: &str) -> bool {
        self.cgroup.in_namespace(namespace)
    }
}

/// Sends one message with `fds` attached.
pub(crate) fn send(socket: &OwnedFd, data: &[u8], fds: &[RawFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let iov = [io::IoSlice::new(data)];
    let rights = [ControlMessage::ScmRights(fds)];
    let control: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &iov,
        control,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .map_err(io::Error::from)?;
    Ok(())
}

/// Sets the calling process as the child subreaper: runtimes forked by a zygote's child become
/// the server's children when that child exits, so the server reaps them and reads their exit
/// status like any sandbox's.
pub(crate) fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The next report of a zygote's child, into `buf`: `X<step> <errno>` becomes
/// [`SandboxError::Zygote`] naming the step, end-of-file [`SandboxError::SetupVanished`].
pub(crate) fn report<'a>(
    socket: &OwnedFd,
    buf: &'a mut [u8],
    deadline: Instant,
) -> Result<&'a [u8], SandboxError> {
    report_passing(socket, buf, deadline).map(|(message, _)| message)
}

/// [`report`], with the descriptor the message passed.
pub(crate) fn report_passing<'a>(
    socket: &OwnedFd,
    buf: &'a mut [u8],
    deadline: Instant,
) -> Result<(&'a [u8], Option<OwnedFd>), SandboxError> {
    match recv_timeout(socket.as_raw_fd(), buf, deadline)? {
        None => Err(SandboxError::SetupVanished),
        Some((n, passed)) => match &buf[..n] {
            [b'X', failure @ ..] => {
                let failure = String::from_utf8_lossy(failure);
                let (step, errno) = failure.split_once(' ').unwrap_or((&failure, "0"));
                let errno = nix::errno::Errno::from_raw(errno.parse().unwrap_or(0));
                Err(SandboxError::Zygote(format!(
                    "the forked sandbox failed at {step}: {errno}"
                )))
            }
            message => Ok((message, passed)),
        },
    }
}

/// Whether a forked interpreter can honour `env` as an exec'd one would: nothing that only an
/// interpreter's or the dynamic loader's start reads (`PYTHON*` beyond the two Lambent sets the
/// same way in the zygote, `LD_PRELOAD`, …). Otherwise the sandbox `execve`s.
pub(crate) fn environment_fits(env: &[(String, String)]) -> bool {
    env.iter().all(|(key, value)| match key.as_str() {
        "PYTHONUNBUFFERED" | "PYTHONDONTWRITEBYTECODE" => value == "1",
        "LD_LIBRARY_PATH" => true, // read again by every dlopen of an extension module
        k => !k.starts_with("PYTHON") && !k.starts_with("LD_"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn interpreter_start_variables_send_the_sandbox_to_exec() {
        assert!(environment_fits(&env(&[
            ("PYTHONUNBUFFERED", "1"),
            ("LD_LIBRARY_PATH", "/var/task/lib"),
            ("SECRET", "x"),
        ])));
        assert!(!environment_fits(&env(&[(
            "PYTHONPATH",
            "/var/task/vendor"
        )])));
        assert!(!environment_fits(&env(&[("PYTHONHASHSEED", "0")])));
        assert!(!environment_fits(&env(&[("LD_PRELOAD", "/var/task/x.so")])));
        assert!(!environment_fits(&env(&[("PYTHONUNBUFFERED", "0")])));
    }
}
