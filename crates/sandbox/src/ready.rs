//! Sandboxes made ahead: a background thread (`lambent-ready`) keeps a few sandboxes fully set
//! up (namespaces, cgroup, network namespace and runtime API listener, the read-only root with
//! `/proc`, `/dev` and a private `/tmp`, all of it) but for their code and program, each
//! waiting on its handshake socket. A cold start claims one: the host sets its cgroup limits to
//! the function's, hands it the code and runtime directories as detached read-only mounts
//! (`open_tree`) with the program to run, and the sandbox attaches them at `/var/task` and
//! `/var/runtime`, becomes the unprivileged user, installs seccomp and `execve`s. Nothing is
//! weakened: a claimed sandbox went through exactly the steps of one made on demand, in the
//! same order, only the early ones ahead of time. When none is ready (a burst), or the program
//! does not fit the message, the sandbox is made on demand as before.
//!
//! Each one is handed out once. One waiting costs a small process (a copy-on-write fork of the
//! server, which it shares until it `execve`s), an empty cgroup and a network namespace.

use crate::cgroup::SandboxCgroup;
use crate::handshake::ParentEnd;
use crate::sandbox::Process;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// Sandboxes kept waiting.
const READY: usize = 2;
/// Pause after a failure to make one, so a broken host does not spin.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pause before replacing a claimed sandbox: making one takes a few milliseconds of CPU, which
/// the cold start that just claimed one should not have to share.
const REFILL_DELAY: Duration = Duration::from_millis(10);

/// A sandbox set up but for its program.
#[derive(Debug)]
pub(crate) struct ReadySandbox {
    /// Dropped first: an unclaimed sandbox is killed, then its cgroup removed.
    pub process: Process,
    pub channel: ParentEnd,
    pub listener: TcpListener,
    pub cgroup: SandboxCgroup,
    /// Size of its `/tmp` (and `/dev/shm`).
    pub tmp_mb: u32,
}

/// How the pool's thread makes one.
pub(crate) trait Maker: Send + Sync + 'static {
    fn make_ready(&self, tmp_mb: u32) -> Result<ReadySandbox, crate::SandboxError>;
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<ReadySandbox>,
    /// The `/tmp` size asked for last; `None` until the first claim (nothing is made before).
    tmp_mb: Option<u32>,
    stopped: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

/// The pool. Dropping it stops the thread and kills the sandboxes still waiting.
#[derive(Debug)]
pub(crate) struct ReadyPool {
    shared: Arc<Shared>,
}

impl ReadyPool {
    pub(crate) fn start(maker: Arc<dyn Maker>) -> std::io::Result<ReadyPool> {
        let shared = Arc::new(Shared::default());
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("lambent-ready".into())
            .spawn(move || fill(&worker, &*maker))?;
        Ok(ReadyPool { shared })
    }

    /// A waiting sandbox with a `/tmp` of `tmp_mb`, if there is one. Asks the thread for a
    /// replacement (of that size from now on) either way.
    pub(crate) fn take(&self, tmp_mb: u32) -> Option<ReadySandbox> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.tmp_mb != Some(tmp_mb) {
            state.tmp_mb = Some(tmp_mb);
            state.ready.retain(|r| r.tmp_mb == tmp_mb);
        }
        let taken = state.ready.pop();
        self.shared.changed.notify_all();
        taken
    }
}

impl Drop for ReadyPool {
    fn drop(&mut self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.stopped = true;
        state.ready.clear();
        self.shared.changed.notify_all();
    }
}

fn fill(shared: &Shared, maker: &dyn Maker) {
    let mut warned = false;
    loop {
        let tmp_mb = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut delayed = false;
            loop {
                match state.tmp_mb {
                    _ if state.stopped => return,
                    Some(_) if state.ready.len() < READY && !delayed && !state.ready.is_empty() => {
                        // Some are left: the claim that woke us is still starting.
                        delayed = true;
                        state = shared
                            .changed
                            .wait_timeout(state, REFILL_DELAY)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    Some(tmp_mb) if state.ready.len() < READY => break tmp_mb,
                    _ => {
                        state = shared
                            .changed
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner())
                    }
                }
            }
        };
        match maker.make_ready(tmp_mb) {
            Ok(ready) => {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.stopped {
                    return;
                }
                if ready.tmp_mb == state.tmp_mb.unwrap_or(tmp_mb) {
                    state.ready.push(ready);
                }
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        "could not make a sandbox ahead (cold starts make their own): {e}"
                    );
                    warned = true;
                }
                std::thread::sleep(RETRY_PAUSE);
            }
        }
    }
}
