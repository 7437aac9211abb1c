//! `SandboxError`, the one error type of this crate, and `SetupStep`, the steps a sandbox's
//! child goes through before `execve` (each can fail and is reported by name).

use nix::errno::Errno;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while detecting the host, creating, or controlling a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// Full isolation cannot work on this host: `missing` says exactly what is missing.
    #[error(
        "full isolation is unavailable: {missing}; run lambent as root on linux with cgroups \
         (memory, pids, freezer), or pass --insecure-no-sandbox to run functions as plain \
         processes without any isolation (development only)"
    )]
    Unavailable { missing: String },

    /// The spec cannot be run as given (a bad id, a relative `argv[0]`, a missing directory, …).
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),

    /// A feature that is not implemented yet.
    #[error("{0} is not supported yet")]
    Unsupported(&'static str),

    /// A step of the sandbox's set-up failed inside the child, before the program started.
    #[error("sandbox setup failed: could not {step}{detail}: {errno}")]
    Setup {
        step: SetupStep,
        /// What the step was working on, with a leading space (` '/usr/bin/python3'`), or empty.
        detail: String,
        errno: Errno,
    },

    /// The child neither started the program nor reported a failure in time.
    #[error("sandbox setup did not finish within {0:?}; it was killed")]
    SetupTimeout(Duration),

    /// The child died during set-up without saying why (killed from outside, or out of memory).
    #[error("sandbox exited during setup before starting the program")]
    SetupVanished,

    /// The sandbox's process ended during set-up without reporting a failed step: how it
    /// ended ("killed by signal 9") and, for a runtime forked from a zygote, the end of what it
    /// wrote (a Python traceback, usually), or "no output".
    #[error("sandbox exited during setup before starting the program ({how}): {output}")]
    EndedDuringSetup { how: String, output: String },

    /// The Python zygote could not start or fork a sandbox (its cold starts then `execve`).
    #[error("python zygote: {0}")]
    Zygote(String),

    /// Outbound network for a sandbox that opted in could not be set up.
    #[error("outbound network: {0}")]
    Network(String),

    /// A cgroup file or directory could not be used.
    #[error("could not {action} {}: {source}", path.display())]
    Cgroup {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The state directory could not be created or used.
    #[error("could not prepare the state directory {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The freezer did not settle (tasks stuck in uninterruptible sleep, typically).
    #[error("cgroup {} did not become {state} within {waited:?}", path.display())]
    FreezeTimeout {
        path: PathBuf,
        state: &'static str,
        waited: Duration,
    },

    /// The seccomp tables could not be compiled (a bug in the tables).
    #[error("could not build the seccomp filter: {0}")]
    Seccomp(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("system call failed: {0}")]
    Nix(#[from] Errno),
}

impl SandboxError {
    /// The sandbox ended during its set-up without a step failing: killed from outside (or
    /// for lack of memory) before its program ran. Nothing says another would end so.
    pub fn ended_during_setup(&self) -> bool {
        matches!(
            self,
            SandboxError::EndedDuringSetup { .. } | SandboxError::SetupVanished
        )
    }
}

/// One step of the child's set-up, in the order they run. Displayed as what "could not" be done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SetupStep {
    ResetSignals = 1,
    NewSession,
    JoinCgroup,
    CgroupNamespace,
    NetworkNamespace,
    Loopback,
    Listen,
    SendListener,
    Mount,
    Hostname,
    Stdio,
    CloseFds,
    Rlimits,
    Scheduling,
    DropPrivileges,
    NoNewPrivileges,
    Seccomp,
    Chdir,
    Exec,
    ReceiveProgram,
    AttachCode,
}

impl SetupStep {
    const ALL: [SetupStep; 21] = [
        SetupStep::ResetSignals,
        SetupStep::NewSession,
        SetupStep::JoinCgroup,
        SetupStep::CgroupNamespace,
        SetupStep::NetworkNamespace,
        SetupStep::Loopback,
        SetupStep::Listen,
        SetupStep::SendListener,
        SetupStep::Mount,
        SetupStep::Hostname,
        SetupStep::Stdio,
        SetupStep::CloseFds,
        SetupStep::Rlimits,
        SetupStep::Scheduling,
        SetupStep::DropPrivileges,
        SetupStep::NoNewPrivileges,
        SetupStep::Seccomp,
        SetupStep::Chdir,
        SetupStep::Exec,
        SetupStep::ReceiveProgram,
        SetupStep::AttachCode,
    ];

    /// The step with wire code `code`, as sent by the child.
    pub(crate) fn from_code(code: u32) -> Option<SetupStep> {
        SetupStep::ALL.into_iter().find(|s| *s as u32 == code)
    }
}

impl fmt::Display for SetupStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SetupStep::ResetSignals => "reset signal handlers",
            SetupStep::NewSession => "start a new session",
            SetupStep::JoinCgroup => "join the sandbox's cgroup",
            SetupStep::CgroupNamespace => "enter a new cgroup namespace",
            SetupStep::NetworkNamespace => "enter its network namespace",
            SetupStep::Loopback => "bring up the loopback interface",
            SetupStep::Listen => "listen on 127.0.0.1:9001 for the runtime api",
            SetupStep::SendListener => "hand the runtime api socket to the host",
            SetupStep::Mount => "build the root file system",
            SetupStep::Hostname => "set the hostname",
            SetupStep::Stdio => "set up stdin, stdout and stderr",
            SetupStep::CloseFds => "close inherited file descriptors",
            SetupStep::Rlimits => "set resource limits",
            SetupStep::Scheduling => "set its scheduling policy (SCHED_BATCH)",
            SetupStep::DropPrivileges => "drop privileges",
            SetupStep::NoNewPrivileges => "set no_new_privs",
            SetupStep::Seccomp => "install the seccomp filter",
            SetupStep::Chdir => "enter the task root",
            SetupStep::Exec => "exec",
            SetupStep::ReceiveProgram => "receive its program from the host",
            SetupStep::AttachCode => "attach the code at /var/task and /var/runtime",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_codes_round_trip() {
        for step in SetupStep::ALL {
            assert_eq!(SetupStep::from_code(step as u32), Some(step));
        }
        assert_eq!(SetupStep::from_code(0), None);
        assert_eq!(SetupStep::from_code(999), None);
    }

    #[test]
    fn setup_error_names_the_step_and_the_errno() {
        let e = SandboxError::Setup {
            step: SetupStep::Exec,
            detail: " '/nope'".into(),
            errno: Errno::ENOENT,
        };
        assert_eq!(
            e.to_string(),
            "sandbox setup failed: could not exec '/nope': ENOENT: No such file or directory"
        );
    }

    #[test]
    fn unavailable_mentions_the_escape_hatch() {
        let e = SandboxError::Unavailable {
            missing: "not running as root".into(),
        };
        let msg = e.to_string();
        assert!(msg.contains("not running as root"), "{msg}");
        assert!(msg.contains("--insecure-no-sandbox"), "{msg}");
    }
}
