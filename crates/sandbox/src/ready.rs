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
//! burst grows the pool up to `max`, and it shrinks back to one when claims stop. A
//! replacement is made once no claim came for 20 ms (the cold start that claimed one runs
//! alone), or once the pool has been short for 100 ms (a burst).
//!
//! **Memory.** Every pool of a host draws on one [`AheadBudget`]: each waiting item is charged
//! what it is estimated to hold ([`Ahead::MEMORY_KB`]) from when it is made until it is claimed
//! or dropped, and a pool makes nothing that does not fit. The host's allowance is 1/16 of its
//! memory, at most 1 GiB (the invoker's budget for running sandboxes is three quarters of it).

use crate::cgroup::SandboxCgroup;
use crate::handshake::ParentEnd;
use crate::sandbox::Process;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Pause after a failure to make one, so a broken host does not spin.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// Quiet time after the last claim before making a replacement: making one takes a few
/// milliseconds of CPU (and, for a sandbox, a `clone` of the server that holds its memory map
/// locked while it copies it), which the cold start that just claimed one should not have to
/// share. Measured from the claim itself, whether or not others are left.
const REFILL_DELAY: Duration = Duration::from_millis(20);
/// The longest a needed replacement waits for that quiet time while claims keep coming (a
/// burst): then it is made anyway.
const REFILL_DELAY_MAX: Duration = Duration::from_millis(100);
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
    /// Memory one is estimated to hold while it waits (its processes' own pages, its kernel
    /// objects), charged to the [`AheadBudget`].
    const MEMORY_KB: u64;
    /// Size of its `/tmp`: a claim for another size does not take it.
    fn tmp_mb(&self) -> u32;
    /// Whether it waits under namespace `namespace`'s cgroup (see `Cgroups::create_ahead`).
    fn in_namespace(&self, namespace: &str) -> bool;
    /// Whether it is ready to be claimed at no cost, or still getting there by itself (a stem
    /// cell whose `node` is still starting). A claim takes one that is ready first, else the
    /// oldest: it is further along than one made on demand would be.
    fn waiting(&mut self) -> bool {
        true
    }
}

/// The memory every pool of a host may hold in waiting items, together.
#[derive(Debug)]
pub(crate) struct AheadBudget {
    limit_kb: u64,
    used_kb: AtomicU64,
}

impl AheadBudget {
    pub(crate) fn new(limit_kb: u64) -> Arc<AheadBudget> {
        Arc::new(AheadBudget {
            limit_kb,
            used_kb: AtomicU64::new(0),
        })
    }

    /// 1/16 of the host's memory, at most 1 GiB (64 MiB if it cannot be read).
    pub(crate) fn for_host() -> Arc<AheadBudget> {
        let total_kb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| crate::cgroup::keyed_value(&m, "MemTotal:"))
            .unwrap_or(1024 * 1024);
        AheadBudget::new((total_kb / 16).min(1024 * 1024))
    }

    /// Charges `kb` if it fits.
    fn try_charge(&self, kb: u64) -> bool {
        self.used_kb
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + kb <= self.limit_kb).then_some(used + kb)
            })
            .is_ok()
    }

    fn release(&self, kb: u64) {
        self.used_kb.fetch_sub(kb, Ordering::AcqRel);
    }
}

/// A waiting item and its charge, released when it leaves the pool.
struct Charged<T: Ahead> {
    item: Option<T>,
    budget: Arc<AheadBudget>,
}

impl<T: Ahead> Charged<T> {
    fn into_inner(mut self) -> T {
        self.item.take().expect("an item until taken")
    }

    fn tmp_mb(&self) -> u32 {
        self.item.as_ref().map_or(0, T::tmp_mb)
    }

    fn in_namespace(&self, namespace: &str) -> bool {
        self.item
            .as_ref()
            .is_some_and(|i| i.in_namespace(namespace))
    }

    fn waiting(&mut self) -> bool {
        self.item.as_mut().is_some_and(T::waiting)
    }
}

impl<T: Ahead> Drop for Charged<T> {
    fn drop(&mut self) {
        self.budget.release(T::MEMORY_KB);
    }
}

impl Ahead for ReadySandbox {
    /// A process, its namespaces, its cgroup and an empty root.
    const MEMORY_KB: u64 = 2 * 1024;
    fn tmp_mb(&self) -> u32 {
        self.tmp_mb
    }
    fn in_namespace(&self, namespace: &str) -> bool {
        self.cgroup.in_namespace(namespace)
    }
}

/// How the pool's thread makes one.
pub(crate) trait Maker<T>: Send + Sync + 'static {
    fn make(&self, tmp_mb: u32) -> Result<T, crate::SandboxError>;
}

struct State<T: Ahead> {
    ready: Vec<Charged<T>>,
    /// The `/tmp` size asked for last; `None` until the first claim (nothing is made before).
    tmp_mb: Option<u32>,
    stopped: bool,
    /// Claims per second, exponentially weighted, as of `last_claim`.
    rate: f64,
    last_claim: Option<Instant>,
    /// Whether the last attempt to make one failed (cleared by the next success).
    failing: bool,
    /// Whether the thread is making one (from its charge until it is kept or dropped).
    making: bool,
}

impl<T: Ahead> State<T> {
    /// How many to keep now.
    fn target(&self, max: usize) -> usize {
        let Some(last) = self.last_claim else {
            return 0;
        };
        let rate = self.rate * (-last.elapsed().as_secs_f64() / RATE_TAU_S).exp();
        ((rate * HORIZON_S).ceil() as usize).clamp(1, max.max(1))
    }
}

struct Shared<T: Ahead> {
    state: Mutex<State<T>>,
    changed: Condvar,
    max: usize,
    budget: Arc<AheadBudget>,
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
    /// Starts the thread `name`, which keeps up to `max` made by `maker`, within `budget`.
    pub(crate) fn start(
        name: &str,
        max: usize,
        maker: Arc<dyn Maker<T>>,
        budget: &Arc<AheadBudget>,
    ) -> std::io::Result<ReadyPool<T>> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                ready: Vec::new(),
                tmp_mb: None,
                stopped: false,
                rate: 0.0,
                last_claim: None,
                failing: false,
                making: false,
            }),
            changed: Condvar::new(),
            max,
            budget: Arc::clone(budget),
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
        let taken = match state.ready.iter_mut().rposition(|r| r.waiting()) {
            Some(i) => Some(state.ready.remove(i)),
            None if state.ready.is_empty() => None,
            None => Some(state.ready.remove(0)),
        };
        self.shared.changed.notify_all();
        taken.map(Charged::into_inner)
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

    /// Drops (kills) those waiting under namespace `namespace`'s cgroup, which is being
    /// removed, once the one being made is kept: call it once nothing new is made there.
    pub(crate) fn discard_namespace(&self, namespace: &str) {
        let discarded: Vec<Charged<T>> = {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            while state.making && !state.stopped {
                state = self
                    .shared
                    .changed
                    .wait(state)
                    .unwrap_or_else(|e| e.into_inner());
            }
            let (discarded, kept) = std::mem::take(&mut state.ready)
                .into_iter()
                .partition(|r| r.in_namespace(namespace));
            state.ready = kept;
            self.shared.changed.notify_all();
            discarded
        };
        drop(discarded);
    }

    /// Whether the pool has settled since it was asked for one: one is waiting (and says it
    /// is ready: [`Ahead::waiting`]), or making one failed last (it will not be ready soon;
    /// cold starts make their own). False while the first is being made: what a server's
    /// readiness waits for.
    pub(crate) fn settled(&self) -> bool {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.failing || state.ready.iter_mut().any(|r| r.waiting())
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
    // Since when the pool has been short of its target without a break: the quiet time after
    // claims is bounded from there, so that a burst's replacements are made back to back.
    let mut needed_since: Option<Instant> = None;
    loop {
        let mut surplus = Vec::new();
        let tmp_mb = {
            let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                let target = state.target(shared.max);
                let have = state.ready.len();
                if have >= target {
                    needed_since = None;
                }
                let quiet_in = match (have < target, state.last_claim) {
                    (true, Some(claimed)) => {
                        let now = Instant::now();
                        let since = *needed_since.get_or_insert(now);
                        let quiet_at = (claimed + REFILL_DELAY).min(since + REFILL_DELAY_MAX);
                        quiet_at.saturating_duration_since(now)
                    }
                    _ => Duration::ZERO,
                };
                match state.tmp_mb {
                    _ if state.stopped => return,
                    _ if have > target => {
                        // Claims stopped: shrink (outside the lock: killing takes a moment).
                        surplus.extend(state.ready.drain(target..));
                    }
                    Some(_) if have < target && !quiet_in.is_zero() => {
                        // A cold start that claimed one is still starting: let it run alone.
                        state = shared
                            .changed
                            .wait_timeout(state, quiet_in)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                    Some(tmp_mb) if have < target && shared.budget.try_charge(T::MEMORY_KB) => {
                        state.making = true;
                        break tmp_mb;
                    }
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
        // Charged above: released when it leaves the pool (or now, if making it failed).
        let charged = |item| Charged {
            item,
            budget: Arc::clone(&shared.budget),
        };
        match maker.make(tmp_mb) {
            Ok(made) => {
                let made = charged(Some(made));
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.stopped {
                    return;
                }
                state.failing = false;
                state.making = false;
                shared.changed.notify_all();
                if made.tmp_mb() == state.tmp_mb.unwrap_or(tmp_mb) {
                    state.ready.push(made);
                }
            }
            Err(e) => {
                drop(charged(None));
                let mut state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
                state.failing = true;
                state.making = false;
                shared.changed.notify_all();
                drop(state);
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
        const MEMORY_KB: u64 = 1000;
        fn tmp_mb(&self) -> u32 {
            self.0
        }
        fn in_namespace(&self, _: &str) -> bool {
            false
        }
    }
    struct Counter(AtomicUsize);
    impl Maker<Token> for Counter {
        fn make(&self, tmp_mb: u32) -> Result<Token, crate::SandboxError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Ok(Token(tmp_mb))
        }
    }

    fn settle<T: Ahead>(pool: &ReadyPool<T>) -> (usize, usize) {
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
        let pool =
            ReadyPool::start("test-ready", 6, maker.clone(), &AheadBudget::new(1 << 30)).unwrap();
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

    /// An item numbered in the order made, that waits once its number is in `waits`.
    struct Starting(usize, Arc<Mutex<Vec<usize>>>);
    impl Ahead for Starting {
        const MEMORY_KB: u64 = 1000;
        fn tmp_mb(&self) -> u32 {
            4
        }
        fn in_namespace(&self, _: &str) -> bool {
            false
        }
        fn waiting(&mut self) -> bool {
            self.1.lock().unwrap().contains(&self.0)
        }
    }
    struct MakeStarting(AtomicUsize, Arc<Mutex<Vec<usize>>>);
    impl Maker<Starting> for MakeStarting {
        fn make(&self, _: u32) -> Result<Starting, crate::SandboxError> {
            Ok(Starting(
                self.0.fetch_add(1, Ordering::Relaxed),
                Arc::clone(&self.1),
            ))
        }
    }

    #[test]
    fn a_claim_takes_one_that_waits_first_else_the_oldest_and_readiness_waits_for_one() {
        let waits = Arc::new(Mutex::new(Vec::new()));
        let maker = Arc::new(MakeStarting(AtomicUsize::new(0), Arc::clone(&waits)));
        let pool =
            ReadyPool::start("test-ready", 3, maker.clone(), &AheadBudget::new(1 << 30)).unwrap();
        pool.prime(4);
        let one_made = || {
            for _ in 0..200 {
                if pool.sizes().1 == 1 {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        one_made();
        assert!(!pool.settled(), "one made, still starting: not ready");
        waits.lock().unwrap().push(0);
        assert!(pool.settled(), "one waits: ready");
        for _ in 0..30 {
            pool.take(4);
        }
        let settled_at = |pool: &ReadyPool<Starting>| {
            for _ in 0..200 {
                if pool.sizes() == (3, 3) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("the pool did not grow to 3: {:?}", pool.sizes());
        };
        settled_at(&pool);
        let made = maker.0.load(Ordering::Relaxed);
        let (oldest, middle) = (made - 3, made - 2);
        waits.lock().unwrap().push(middle);
        assert_eq!(
            pool.take(4).map(|s| s.0),
            Some(middle),
            "the one that waits"
        );
        assert_eq!(
            pool.take(4).map(|s| s.0),
            Some(oldest),
            "none waits: the oldest"
        );
    }

    /// Made under the namespace its maker is set to.
    struct Placed(&'static str);
    impl Ahead for Placed {
        const MEMORY_KB: u64 = 1000;
        fn tmp_mb(&self) -> u32 {
            4
        }
        fn in_namespace(&self, namespace: &str) -> bool {
            self.0 == namespace
        }
    }
    struct PlaceIn(Mutex<&'static str>);
    impl Maker<Placed> for PlaceIn {
        fn make(&self, _: u32) -> Result<Placed, crate::SandboxError> {
            Ok(Placed(*self.0.lock().unwrap()))
        }
    }

    #[test]
    fn discarding_a_namespace_drops_only_what_waits_under_it_and_the_pool_refills() {
        let maker = Arc::new(PlaceIn(Mutex::new("a")));
        let pool =
            ReadyPool::start("test-ready", 4, maker.clone(), &AheadBudget::new(1 << 30)).unwrap();
        for _ in 0..40 {
            pool.take(4);
        }
        assert_eq!(settle(&pool), (4, 4));
        pool.discard_namespace("b");
        assert_eq!(pool.sizes(), (4, 4), "none waits under b");
        // As the host does: nothing is made there any more, then what waits there goes.
        *maker.0.lock().unwrap() = "c";
        pool.discard_namespace("a");
        let left: Vec<&str> = {
            let state = pool.shared.state.lock().unwrap();
            state
                .ready
                .iter()
                .flat_map(|r| r.item.as_ref())
                .map(|p| p.0)
                .collect()
        };
        assert!(left.iter().all(|n| *n == "c"), "{left:?}");
        assert_eq!(settle(&pool), (4, 4), "made again, elsewhere");
        assert!(pool.take(4).is_some_and(|p| p.0 == "c"));
    }

    /// Remembers when it made each.
    struct Clock(Mutex<Vec<Instant>>);
    impl Maker<Token> for Clock {
        fn make(&self, tmp_mb: u32) -> Result<Token, crate::SandboxError> {
            self.0.lock().unwrap().push(Instant::now());
            Ok(Token(tmp_mb))
        }
    }

    #[test]
    fn a_claimed_one_is_replaced_only_after_the_quiet_time_even_when_none_is_left() {
        let maker = Arc::new(Clock(Mutex::new(Vec::new())));
        let pool =
            ReadyPool::start("test-ready", 1, maker.clone(), &AheadBudget::new(1 << 30)).unwrap();
        assert!(pool.take(4).is_none());
        assert_eq!(settle(&pool), (1, 1));
        let made_before = maker.0.lock().unwrap().len();
        let claimed = Instant::now();
        assert!(pool.take(4).is_some(), "the one made");
        assert_eq!(settle(&pool), (1, 1), "replaced");
        let made = maker.0.lock().unwrap().clone();
        assert_eq!(made.len(), made_before + 1);
        let after = made[made_before] - claimed;
        assert!(
            after >= REFILL_DELAY,
            "the replacement was made {after:?} after the claim (none was left, and the claim's \
             cold start still ran)"
        );
    }

    struct Broken;
    impl Maker<Token> for Broken {
        fn make(&self, _: u32) -> Result<Token, crate::SandboxError> {
            Err(crate::SandboxError::SetupVanished)
        }
    }

    #[test]
    fn a_primed_pool_settles_once_one_waits_or_making_one_failed() {
        let budget = AheadBudget::new(1 << 30);
        let maker = Arc::new(Counter(AtomicUsize::new(0)));
        let pool = ReadyPool::start("test-ready", 6, maker, &budget).unwrap();
        assert!(!pool.settled(), "nothing asked for, nothing waiting");
        pool.prime(4);
        settle(&pool);
        assert!(pool.settled(), "one waits: {:?}", pool.sizes());
        let broken = ReadyPool::start("test-ready", 6, Arc::new(Broken), &budget).unwrap();
        broken.prime(4);
        for _ in 0..100 {
            if broken.settled() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(broken.settled(), "a failing pool is not waited for");
    }

    #[test]
    fn pools_keep_within_their_shared_memory_budget() {
        let budget = AheadBudget::new(5 * Token::MEMORY_KB);
        let maker = Arc::new(Counter(AtomicUsize::new(0)));
        let pools: Vec<_> = (0..2)
            .map(|_| ReadyPool::start("test-ready", 6, maker.clone(), &budget).unwrap())
            .collect();
        for _ in 0..40 {
            for pool in &pools {
                pool.take(4);
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        let waiting: usize = pools.iter().map(|p| p.sizes().1).sum();
        assert_eq!(
            waiting, 5,
            "two pools wanting 6 each hold 5 items' worth together"
        );
        assert_eq!(budget.used_kb.load(Ordering::Relaxed), 5 * Token::MEMORY_KB);
        // Claimed or dropped, an item's charge is released (the pools' threads may be making
        // others meanwhile: look once they have stopped).
        // (Which pool holds them depends on which thread got to the budget first.)
        let holder = pools.iter().find(|p| p.sizes().1 > 0).expect("one waiting");
        holder.take(4).expect("one waiting");
        drop(pools);
        let used = || budget.used_kb.load(Ordering::Relaxed);
        for _ in 0..100 {
            if used() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(used(), 0, "everything released");
    }
}
