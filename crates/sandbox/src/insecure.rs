//! `--insecure-no-sandbox`: the program runs as a plain child process of the server, with the
//! server's user, file system and network, and nothing else of full isolation. What stays the
//! same is the contract: one output pipe for stdout and stderr, stdin from `/dev/null`, the
//! complete environment plus `AWS_LAMBDA_RUNTIME_API`, a runtime API listener handed to the
//! caller (on the host's `127.0.0.1`, ephemeral port), and a pidfd. The working directory is
//! the code directory; the child leads its own process group, so `kill` reaches its children.

use crate::host::output_pipe;
use crate::sandbox::{Isolated, Process, Sandbox, Startup};
use crate::spawn::Child;
use crate::{SandboxError, SandboxSpec, SetupStep};
use lambent_core::Birth;
use nix::errno::Errno;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts `spec` as a plain child process.
pub(crate) fn spawn(spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
    let started = std::time::Instant::now();

    let listener = TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let (output, output_w) = output_pipe()?;

    let mut command = Command::new(&spec.argv[0]);
    command
        .args(&spec.argv[1..])
        .env_clear()
        .envs(
            spec.environment(&format!("127.0.0.1:{port}"))
                .iter()
                .filter_map(|kv| kv.split_once('=')),
        )
        .current_dir(&spec.code_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output_w.try_clone()?))
        .stderr(Stdio::from(output_w))
        .process_group(0);
    let child = command.spawn().map_err(|e| SandboxError::Setup {
        step: SetupStep::Exec,
        detail: format!(" '{}'", spec.argv[0]),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let pid = child.id() as i32;
    // The std handle is dropped without waiting: the pidfd and `Process` own the child now.
    drop(child);
    // SAFETY: pidfd_open of our own, not yet reaped, child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let err = std::io::Error::last_os_error();
        // SAFETY: killing and reaping our own child, which nothing else waits for.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(err.into());
    }
    // SAFETY: pidfd_open returned a new descriptor, close-on-exec by default.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    let process = Process::new(Child { pid, pidfd }, true);
    Ok(Sandbox::new(
        spec.id.clone(),
        listener,
        output,
        process,
        Isolated::NoCgroup,
        Startup::since(Birth::Exec, started),
    ))
}
