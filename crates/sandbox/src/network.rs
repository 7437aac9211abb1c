//! Outbound network for the sandboxes of functions that opt in: a user-mode TCP/IP stack,
//! [slirp4netns](https://github.com/rootless-containers/slirp4netns), attached to the sandbox's
//! network namespace as a `tap0` device (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3).
//! Connections leave through the slirp4netns process, as ordinary sockets of the host, so the
//! host needs no bridge, no NAT rules and no forwarding turned on, and nothing else on the host
//! changes. `--disable-host-loopback` keeps the host's `127.0.0.1` (the Lambent API, other local
//! services) unreachable through the gateway; the sandbox's own `127.0.0.1` stays its own.
//! slirp4netns itself runs with its own seccomp filter and mount sandbox where it supports them.
//!
//! One slirp4netns process per networked sandbox, started before the sandbox's program and
//! killed with it.

use crate::SandboxError;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long slirp4netns may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Where slirp4netns is looked for.
const SEARCH: &[&str] = &[
    "/usr/bin/slirp4netns",
    "/usr/local/bin/slirp4netns",
    "/bin/slirp4netns",
];

/// The slirp4netns binary, if installed.
pub(crate) fn find_slirp() -> Option<PathBuf> {
    SEARCH.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// A running slirp4netns serving one sandbox. Dropping it kills it.
#[derive(Debug)]
pub(crate) struct Slirp {
    child: Child,
}

impl Slirp {
    /// Attaches a user-mode network to the network namespace of process `pid` and returns
    /// once it is configured (`tap0` up, default route, DNS forwarder).
    pub(crate) fn attach(binary: &Path, pid: i32) -> Result<Slirp, SandboxError> {
        let (ready, ready_w): (OwnedFd, OwnedFd) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let fd = ready_w.as_raw_fd();
        let mut command = Command::new(binary);
        command
            .args(["--configure", "--mtu=65520", "--disable-host-loopback"])
            .arg(format!("--ready-fd={fd}"))
            .args([pid.to_string(), "tap0".to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: between fork and exec the closure only clears one descriptor's close-on-exec
        // flag with fcntl, which is async-signal-safe.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| network_error(format!("could not start {}: {e}", binary.display())))?;
        drop(ready_w);
        let mut slirp = Slirp { child };
        // slirp4netns writes "1" to the ready descriptor once the namespace is configured; it
        // closes it (end-of-file) if it exits first.
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pfd = libc::pollfd {
            fd: ready.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let readable = loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as i32;
            // SAFETY: one valid pollfd.
            match unsafe { libc::poll(&mut pfd, 1, left) } {
                n if n > 0 => break true,
                0 => break false,
                _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
                _ => break false,
            }
        };
        let mut byte = [0u8; 1];
        if readable
            && matches!(std::fs::File::from(ready).read(&mut byte), Ok(1))
            && byte[0] == b'1'
        {
            return Ok(slirp);
        }
        let _ = slirp.child.kill();
        let mut stderr = String::new();
        if let Some(mut e) = slirp.child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        Err(network_error(format!(
            "slirp4netns did not configure the sandbox's network within {READY_TIMEOUT:?}: {}",
            stderr.trim()
        )))
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn network_error(message: String) -> SandboxError {
    SandboxError::Network(message)
}
