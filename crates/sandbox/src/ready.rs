//! Things made ahead of the cold starts that claim them, by one background thread per pool:
//!
//! - sandboxes fully set up (namespaces, cgroup, network namespace and runtime API listener,
//!   the read-only root with `/dev` and a private `/tmp`, all of it) but for their code and
//!   program, each waiting on its handshake socket ([`ReadySandbox`]). A cold start claims one:
//!   the host sets its cgroup limits to the function's, hands it the code and runtime
//!   directories as detached read-only mounts (`open_tree`) with the program to run, and the
//!   sandbox attaches them at `/var/task` and `/var/runtime`, becomes the unprivileged user,
//!   installs seccomp and `execve`s. Nothing is weakened: a claimed sandbox went through exactly
//!   the steps of one made on demand, in the same order, only the early ones ahead of time.
//!   The ones made for the Python zygote ([`Flavor::ForZygote`]) have no PID namespace and no
//!   `/proc` yet: the zygote's child makes both (`zygote.rs`);
//! - Node.js stem cells (`stem.rs`): interpreters already running in such a sandbox.
//!
//! When none is ready (a burst), the cold start makes its own as before. Each is handed out
//! once.
//!
//! **Sizing.** A pool keeps as many as the cold starts it expects in the next second at the
//! recent rate (an exponentially weighted rate of claims, time constant 5 s), at least one
//! once it has been used and at most its `max`: nothing is made before the first claim, a
//! burst grows the pool up to `max`, and it shrinks back to one when claims stop.

use crate::cgroup::SandboxCgroup;
use crate::handshake::ParentEnd;
use crate::sandbox::Process;
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Pause after a failure to make one, so a broken host does not spin.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Pause before replacing a claimed one: making one takes a few milliseconds of CPU, which
/// the cold start that just claimed one should not have to share.
const REFILL_DELAY: Duration = Duration::from_millis(10);
/// Time constant of the claim rate.
const RATE_TAU_S: f64 = 5.0;
/// The pool covers the claims expected within this time.
const HORIZON_S: f64 = 1.0;
/// How often an idle pool re-checks its size (to shrink).
const RESIZE_CHECK: Duration = Duration::from_secs(1);

/// How a sandbox made ahead will be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Waits for its program, then `execve`s it (PID namespace and `/proc` included).
    Exec,
    /// Joined by a Python zygote's child, which brings its own PID namespace and `/proc`.
    ForZygote,
}

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

/// Anything a pool keeps.
pub(crate) trait Ahead: Send + 'static {
    /// Size of its `/tmp`: a claim for another size does not take it.
    fn tmp_mb(&self) -> u32;
}

impl Ahead for ReadySandbox {
    fn tmp_mb(&self) -> u32 {
        self.tmp_mb
    }
}

/// How the pool's thread makes one.
pub(crate) trait Maker<T>: Send + Sync + 'static {
    fn make(&self, tmp_mb: u32) -> Result<T, crate::SandboxError>;
}

struct State<T> {
    ready: Vec<T>,
    /// The `/tmp` size asked for last; `None` until the first claim (nothing is made before).
    tmp_mb: Option<u32>,
    stopped: bool,
    /// Claims per second, exponentially weighted, as of `last_claim`.
    rate: f64,
    last_claim: Option<Instant>,
}

impl<T> State<T> {
    /// How many to keep now.
    fn target(&self, max: usize) -> usize {
        let Some(last) = self.last_claim else {
            return 0;
        };
        let rate = self.rate * (-last.elapsed().as_secs_f64() / RATE_TAU_S).exp();
        ((rate * HORIZON_S).ceil() as usize).clamp(1, max.max(1))
    }
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    max: usize,
}

/// The pool. Dropping it stops the thread and drops (kills) what is still waiting.
pub(crate) struct ReadyPool<T: Ahead> {
    shared: Arc<Shared<T>>,
}

impl<T: Ahead> std::fmt::Debug for ReadyPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyPool")
            .field("max", &self.shared.max)
            .finish()
    }
}

impl<T: Ahead> ReadyPool<T> {
    /// Starts the thread `name`, which keeps up to `max` made by `maker`.
    pub(crate) fn start(
        name: &str,
        max: usize,
        maker: Arc<dyn Maker<T>>,
    ) -> std::io::Result<ReadyPool<T>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: Vec::new(),
                tmp_mb: None,
                stopped: false,
                rate: 0.0,
                last_claim: None,
            }),
            changed: Condvar::new(),
            max,
        });
        let worker = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || fill(&worker, &*maker))?;
        Ok(ReadyPool { shared })
    }

    /// A waiting one with a `/tmp` of `tmp_mb`, if there is one. Counts the claim and asks the
    /// thread for a replacement (of that size from now on) either way.
    pub(crate) fn take(&self, tmp_mb: u32) -> Option<T> {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.tmp_mb != Some(tmp_mb) {
            state.tmp_mb = Some(tmp_mb);
            state.ready.retain(|r| r.tmp_mb() == tmp_mb);
        }
        let now = Instant::now();
        let decay = state
            .last_claim
            .map_or(0.0, |last| (-(now - last).as_secs_f64() / RATE_TAU_S).exp());
        state.rate = state.rate * decay + 1.0 / RATE_TAU_S;
        state.last_claim = Some(now);
        let taken = state.ready.pop();
        self.shared.changed.notify_all();
        taken
    }

    /// Starts keeping one with a `/tmp` of `tmp_mb` before any claim, as if one had just been
    /// claimed: for the first cold start after the server starts.
    pub(crate) fn prime(&self, tmp_mb: u32) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last_claim.is_none() {
            state.tmp_mb = Some(tmp_mb);
            state.rate = 1.0 / RATE_TAU_S;
            state.last_claim = Some(Instant::now());
            self.shared.changed.notify_all();
        }
    }

    /// How many it would keep now, and how many are waiting.
    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        let state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.target(self.shared.max), state.ready.len())
    }
}

impl<T: Ahead> Drop for ReadyPool<T> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.stopped = true;
            self.shared.changed.notify_all();
            std::mem::take(&mut state.ready)
        };
        drop(waiting);
    }
}

fn fill<T: Ahead>(shared: &Shared<T>, maker: &dyn Maker<T>) {
    let mut warned = false;
    loop {
        let mut surplus = Vec::new();
        let tmp_mb = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut delayed = false;
            loop {
                let target = state.target(shared.max);
                let have = state.ready.len();
                match state.tmp_mb {
                    _ if state.stopped => return,
                    _ if have > target => {
                        // Claims stopped: shrink (outside the lock: killing takes a moment).
                        surplus.extend(state.ready.drain(target..));
                    }
                    Some(_) if have < target && !delayed && have > 0 => {
                        // Some are left: the claim that woke us is still starting.
                        delayed = true;
                        state = shared
                            .changed
                            .wait_timeout(state, REFILL_DELAY)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    Some(tmp_mb) if have < target => break tmp_mb,
                    _ if !surplus.is_empty() => break 0,
                    _ => {
                        state = shared
                            .changed
                            .wait_timeout(state, RESIZE_CHECK)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        };
        if !surplus.is_empty() {
            drop(surplus);
            continue;
        }
        match maker.make(tmp_mb) {
            Ok(made) => {
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.stopped {
                    return;
                }
                if made.tmp_mb() == state.tmp_mb.unwrap_or(tmp_mb) {
                    state.ready.push(made);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Token(u32);
    impl Ahead for Token {
        fn tmp_mb(&self) -> u32 {
            self.0
        }
    }
    struct Counter(AtomicUsize);
    impl Maker<Token> for Counter {
        fn make(&self, tmp_mb: u32) -> Result<Token, crate::SandboxError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Token(tmp_mb))
        }
    }

    fn settle(pool: &ReadyPool<Token>) -> (usize, usize) {
        for _ in 0..200 {
            let (target, have) = pool.sizes();
            if target == have {
                return (target, have);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pool.sizes()
    }

    #[test]
    fn makes_nothing_before_the_first_claim_then_grows_with_a_burst_up_to_max() {
        let maker = Arc::new(Counter(AtomicUsize::new(0)));
        let pool = ReadyPool::start("test-ready", 6, maker.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(maker.0.load(Ordering::Relaxed), 0);
        assert!(pool.take(4).is_none());
        assert_eq!(settle(&pool), (1, 1), "one claim: keep one");
        for _ in 0..40 {
            pool.take(4);
        }
        assert_eq!(settle(&pool), (6, 6), "a burst: up to max");
        assert!(
            pool.take(8).is_none(),
            "another /tmp size is not handed out"
        );
    }
}
