//! One pool of sandboxes per function revision: idle instances (reused last-in first-out, so
//! the warmest one serves and the coldest ones age out), the invocations waiting for one (first
//! come, first served: a released instance goes straight to the longest waiting), the busy and
//! starting counts, how many cold starts the waiting invocations warrant, the provisioned
//! concurrency to keep, why the next cold start is cold, why each sandbox ended, and how far
//! the pool may grow while its runtimes want the CPU (`hold.rs`).

use crate::hold::CpuShare;
use crate::metrics::EndLabels;
use crate::{Deployment, Instance, SandboxCounts};
use lambent_core::{ColdReason, Function};
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Identifies a pool: one function at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PoolKey {
    pub namespace: String,
    pub name: String,
    pub revision: u64,
}

impl PoolKey {
    pub fn of(f: &Function) -> PoolKey {
        PoolKey {
            namespace: f.namespace.clone(),
            name: f.name.to_string(),
            revision: f.revision,
        }
    }
}

pub(crate) struct Pool {
    deployment: Arc<Deployment>,
    slots: Mutex<Slots>,
    busy: AtomicUsize,
    /// Sandboxes being created.
    starting: AtomicUsize,
    /// Sandboxes to keep initialized at all times (the function's setting when the pool is
    /// made; a published version's own setting once `$LATEST` has moved on).
    provisioned: AtomicUsize,
    provisioning: AtomicBool,
    retired: AtomicBool,
    state: Mutex<ColdState>,
    /// What its runtimes want of the CPU, and the cap on its sandboxes that sets.
    cpu: CpuShare,
    /// Its instances, wherever they are ([`End`]).
    instances: Arc<AtomicUsize>,
}

/// The idle instances and the invocations waiting for one: never both at once (an instance
/// released while an invocation waits goes to it), so that no invocation waits beside an idle
/// sandbox and none overtakes one that waited longer.
#[derive(Default)]
struct Slots {
    /// Idle instances, least recently used first.
    idle: Vec<Instance>,
    /// Invocations waiting for an instance, longest waiting first.
    waiters: VecDeque<oneshot::Sender<Instance>>,
}

impl Slots {
    /// Waiting invocations still there (one that gave up is forgotten).
    fn waiting(&mut self) -> usize {
        self.waiters.retain(|w| !w.is_closed());
        self.waiters.len()
    }
}

/// Why a sandbox ended: the `reason` of `lambent_sandboxes_ended_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndReason {
    /// Dropped by an invocation that was itself dropped while the sandbox ran it (its task
    /// cancelled). Invocations run to their end whatever their caller does, so this counts
    /// only what a server's shutdown interrupts.
    Abandoned,
    /// Idle past its keep-alive.
    KeepAlive,
    /// Idle, evicted to make room in the memory budget for another function's sandbox.
    Evicted,
    /// Its runtime exited or crashed, answered in a way that leaves it unusable, or could not
    /// be thawed.
    Failed,
    /// Its invocation timed out.
    Timeout,
    /// The OOM killer killed one of its processes.
    OutOfMemory,
    /// Its runtime never became ready (init error, init timeout, exit during init).
    InitFailed,
    /// Its pool was retired: the code or settings changed, the function or its namespace was
    /// removed, or the server shut down.
    Retired,
    /// Released by a pool with more sandboxes than its cap while its runtimes want the CPU
    /// (`hold.rs`).
    Shed,
}

impl EndReason {
    pub const ALL: [EndReason; 9] = [
        EndReason::Abandoned,
        EndReason::KeepAlive,
        EndReason::Evicted,
        EndReason::Failed,
        EndReason::Timeout,
        EndReason::OutOfMemory,
        EndReason::InitFailed,
        EndReason::Retired,
        EndReason::Shed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Abandoned => "abandoned",
            EndReason::KeepAlive => "keep_alive",
            EndReason::Evicted => "evicted",
            EndReason::Failed => "failed",
            EndReason::Timeout => "timeout",
            EndReason::OutOfMemory => "out_of_memory",
            EndReason::InitFailed => "init_failed",
            EndReason::Retired => "retired",
            EndReason::Shed => "shed",
        }
    }

    /// Counts one sandbox ended for this reason in `lambent_sandboxes_ended_total`.
    pub fn count(self, ended: &Family<EndLabels, Counter>) {
        ended
            .get_or_create(&EndLabels {
                reason: self.as_str(),
            })
            .inc();
    }

    /// How it explains the next cold start of its pool.
    fn cold_reason(self) -> ColdReason {
        match self {
            EndReason::KeepAlive => ColdReason::KeepAliveExpired,
            EndReason::Retired => ColdReason::CodeUpdated,
            EndReason::Shed => ColdReason::ScaleUp,
            _ => ColdReason::Evicted,
        }
    }
}

/// A sandbox's end, counted by its reason when dropped (with its instance): the reason set
/// last, [`EndReason::InitFailed`] until its runtime is ready. Counted meanwhile among its
/// pool's instances, wherever it is (idle, busy, or handed to an invocation not yet running).
pub(crate) struct End {
    pub reason: EndReason,
    ended: Family<EndLabels, Counter>,
    instances: Arc<AtomicUsize>,
    /// Still among its pool's instances (a shed one leaves the count before its kill).
    counted: bool,
}

impl End {
    pub fn new(ended: Family<EndLabels, Counter>, pool: &Pool) -> End {
        pool.instances.fetch_add(1, Ordering::SeqCst);
        End {
            reason: EndReason::InitFailed,
            ended,
            instances: pool.instances.clone(),
            counted: true,
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        if self.counted {
            self.instances.fetch_sub(1, Ordering::SeqCst);
        }
        self.reason.count(&self.ended);
    }
}

/// An invocation's place in a pool's queue ([`Pool::take_or_wait`]). Dropped (its invocation
/// gave up or was cancelled), an instance handed to it meanwhile goes back to the pool.
pub(crate) struct Waiter {
    rx: oneshot::Receiver<Instance>,
    pool: Arc<Pool>,
}

impl Waiter {
    /// The instance released to this invocation; `None` if none ever will be.
    pub async fn handed(&mut self) -> Option<Instance> {
        (&mut self.rx).await.ok()
    }

    /// Leaves the queue: returns the instance handed over meanwhile, if one was.
    pub fn withdraw(mut self) -> Option<Instance> {
        self.rx.close();
        self.rx.try_recv().ok()
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.rx.close();
        if let Ok(instance) = self.rx.try_recv() {
            self.pool.release(instance);
        }
    }
}

/// A cold start under way: counted in the pool's starting sandboxes until dropped.
pub(crate) struct Starting(Arc<Pool>);

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.starting.fetch_sub(1, Ordering::SeqCst);
    }
}

struct ColdState {
    /// A cold start has been explained as the pool's first.
    first_claimed: bool,
    first_reason: ColdReason,
    last_loss: Option<ColdReason>,
}

/// Decrements a counter when dropped: the busy count when an invocation ends, whatever way it
/// ends.
pub(crate) struct CountGuard<'a>(&'a AtomicUsize);

impl<'a> CountGuard<'a> {
    fn new(counter: &'a AtomicUsize) -> CountGuard<'a> {
        counter.fetch_add(1, Ordering::SeqCst);
        CountGuard(counter)
    }
}

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// A pool keeping `provisioned` sandboxes initialized (this node's part of the function's
    /// provisioned concurrency).
    pub fn new(deployment: Arc<Deployment>, first_reason: ColdReason, provisioned: u32) -> Pool {
        Pool {
            provisioned: AtomicUsize::new(provisioned as usize),
            deployment,
            slots: Mutex::new(Slots::default()),
            busy: AtomicUsize::new(0),
            starting: AtomicUsize::new(0),
            provisioning: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            state: Mutex::new(ColdState {
                first_claimed: false,
                first_reason,
                last_loss: None,
            }),
            cpu: CpuShare::new(),
            instances: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    /// The most recently used idle instance, or else a place in the queue of invocations
    /// waiting for one.
    pub fn take_or_wait(self: &Arc<Self>) -> Result<Instance, Waiter> {
        let mut slots = self.slots.lock();
        if let Some(instance) = slots.idle.pop() {
            return Ok(instance);
        }
        let (tx, rx) = oneshot::channel();
        slots.waiters.push_back(tx);
        Err(Waiter {
            rx,
            pool: self.clone(),
        })
    }

    /// Returns an instance after a successful invocation: to the longest waiting invocation,
    /// else to the idle list. True if it went to a waiting invocation. A retired pool drops it.
    pub fn release(&self, mut instance: Instance) -> bool {
        if self.retired.load(Ordering::SeqCst) {
            instance.end.reason = EndReason::Retired;
            return false;
        }
        instance.last_used = Instant::now();
        let mut slots = self.slots.lock();
        match Self::hand(&mut slots, instance) {
            None => true,
            Some(instance) => {
                slots.idle.push(instance);
                false
            }
        }
    }

    /// Gives an instance to the longest waiting invocation, if one waits; else gives it back.
    pub fn hand_off(&self, instance: Instance) -> Option<Instance> {
        Self::hand(&mut self.slots.lock(), instance)
    }

    fn hand(slots: &mut Slots, mut instance: Instance) -> Option<Instance> {
        while let Some(waiter) = slots.waiters.pop_front() {
            match waiter.send(instance) {
                Ok(()) => return None,
                // It gave up: the next one.
                Err(back) => instance = back,
            }
        }
        Some(instance)
    }

    /// Counts a cold start for a waiting invocation, unless the cold starts under way already
    /// match the invocations waiting (each started one goes to the longest waiting when
    /// ready): then it waits for one of them, or for a busy instance, whichever comes first.
    /// Without this bound, every call that found no idle sandbox while the pool grew started
    /// one more, and the pool overshot its concurrency by the calls of the whole growth.
    /// Nor once as many are busy or starting as its cap (`hold.rs`): the invocation waits for
    /// one of them.
    pub fn begin_start(self: &Arc<Self>) -> Option<Starting> {
        let mut slots = self.slots.lock();
        let waiting = slots.waiting();
        let starting = self.starting.load(Ordering::SeqCst);
        (starting < waiting && self.sandboxes() < self.cap()).then(|| self.starting())
    }

    /// Its cap, while it is held and has as many sandboxes.
    pub fn at_cap(&self) -> Option<usize> {
        let cap = self.cap();
        (cap != crate::hold::UNHELD && self.sandboxes() >= cap).then_some(cap)
    }

    /// The most sandboxes it may have: its cap while held (`hold.rs`), never below its
    /// provisioned concurrency (which the maintenance tick would otherwise start again).
    fn cap(&self) -> usize {
        self.cpu.cap().max(self.provisioned())
    }

    /// Its instances and the sandboxes starting (one that just started may count twice).
    fn sandboxes(&self) -> usize {
        self.instances.load(Ordering::SeqCst) + self.starting.load(Ordering::SeqCst)
    }

    /// What its runtimes want of the CPU, and its cap.
    pub fn cpu(&self) -> &CpuShare {
        &self.cpu
    }

    /// Whether an instance being released (its `end`) should end instead: the pool has more
    /// than half as many sandboxes again as its cap, the released one among them. Between the
    /// cap and that, it neither grows nor sheds, so that a cap that moves a little makes no
    /// sandbox come and go. A shed instance leaves the count at once: the releases that follow
    /// while its kill is under way do not shed one more for it.
    pub fn shed(&self, end: &mut End) -> bool {
        let cap = self.cap();
        if cap == crate::hold::UNHELD {
            return false;
        }
        let starting = self.starting.load(Ordering::SeqCst);
        let shed = self
            .instances
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n + starting > cap + cap / 2).then(|| n - 1)
            })
            .is_ok();
        if shed {
            end.counted = false;
        }
        shed
    }

    /// Counts a cold start (of the provisioned concurrency, or asked for).
    pub fn starting(self: &Arc<Self>) -> Starting {
        self.starting.fetch_add(1, Ordering::SeqCst);
        Starting(self.clone())
    }

    /// Busy and starting sandboxes: those that may yet be released to a waiting invocation.
    pub fn coming(&self) -> usize {
        self.busy.load(Ordering::SeqCst) + self.starting.load(Ordering::SeqCst)
    }

    /// Drops an instance that may not be reused, for `reason`.
    ///
    /// The loss is noted before the instance drops: it is already out of the idle list, and
    /// its drop (the sandbox's kill) takes a while, during which a cold start of this pool
    /// must already be explained by it (it was told `scale_up` instead of `keep_alive_expired`).
    pub fn lose(&self, mut instance: Instance, reason: EndReason) {
        self.lost(reason.cold_reason());
        instance.end.reason = reason;
        drop(instance);
    }

    /// Notes that an instance was lost (the next cold start is explained by `reason`).
    pub fn lost(&self, reason: ColdReason) {
        self.state.lock().last_loss = Some(reason);
    }

    /// Why a cold start that is about to begin (already counted as starting: `begun`) is
    /// cold. Claims "first": of many concurrent cold starts of a pool that never ran, one is
    /// the first request, the rest scale up.
    pub fn claim_cold_reason(&self, _begun: &Starting) -> ColdReason {
        let mut state = self.state.lock();
        if !state.first_claimed {
            state.first_claimed = true;
            return state.first_reason;
        }
        // Others than this one busy or starting: the pool scales up.
        if self.busy.load(Ordering::SeqCst) + self.starting.load(Ordering::SeqCst) > 1 {
            return ColdReason::ScaleUp;
        }
        state.last_loss.unwrap_or(ColdReason::ScaleUp)
    }

    pub fn busy_guard(&self) -> CountGuard<'_> {
        CountGuard::new(&self.busy)
    }

    pub fn counts(&self) -> SandboxCounts {
        SandboxCounts {
            idle: self.slots.lock().idle.len(),
            busy: self.busy.load(Ordering::SeqCst),
        }
    }

    /// Sandboxes alive or being created, given the idle count.
    fn live(&self, idle: usize) -> usize {
        idle + self.busy.load(Ordering::SeqCst) + self.starting.load(Ordering::SeqCst)
    }

    pub fn provisioned(&self) -> usize {
        self.provisioned.load(Ordering::SeqCst)
    }

    /// Changes the provisioned concurrency: more is started by the next top-up, fewer lets the
    /// keep-alive reclaim the rest.
    pub fn set_provisioned(&self, n: usize) {
        self.provisioned.store(n, Ordering::SeqCst);
    }

    /// How many sandboxes the provisioned concurrency still lacks.
    pub fn missing(&self) -> usize {
        if self.retired.load(Ordering::SeqCst) {
            return 0;
        }
        self.provisioned()
            .saturating_sub(self.live(self.slots.lock().idle.len()))
    }

    /// Claims the background top-up of this pool; false if one is already running.
    pub fn begin_provisioning(&self) -> bool {
        !self.provisioning.swap(true, Ordering::SeqCst)
    }

    pub fn end_provisioning(&self) {
        self.provisioning.store(false, Ordering::SeqCst);
    }

    /// When the least recently used idle sandbox was last used, if it may be evicted (the pool
    /// keeps its provisioned concurrency).
    pub fn oldest_evictable(&self) -> Option<Instant> {
        let slots = self.slots.lock();
        let oldest = slots.idle.first()?;
        (self.live(slots.idle.len()) > self.provisioned()).then_some(oldest.last_used)
    }

    /// Evicts the least recently used idle sandbox; false if there is none to evict.
    pub fn evict_oldest(&self) -> bool {
        let victim = {
            let mut slots = self.slots.lock();
            if slots.idle.is_empty() || self.live(slots.idle.len()) <= self.provisioned() {
                return false;
            }
            slots.idle.remove(0)
        };
        self.lose(victim, EndReason::Evicted);
        true
    }

    /// Drops idle instances unused for longer than `keep_alive`, least recently used first,
    /// down to the provisioned concurrency.
    pub fn reap(&self, keep_alive: Duration) {
        let expired: Vec<Instance> = {
            let mut slots = self.slots.lock();
            let spare = self
                .live(slots.idle.len())
                .saturating_sub(self.provisioned());
            let n = slots
                .idle
                .iter()
                .take(spare)
                .take_while(|i| i.last_used.elapsed() >= keep_alive)
                .count();
            slots.idle.drain(..n).collect()
        };
        for instance in expired {
            self.lose(instance, EndReason::KeepAlive);
        }
    }

    /// No new work: idle instances go now, busy ones when they are released (an invocation
    /// still waiting then gets the memory they held for a cold start).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let mut idle: Vec<Instance> = self.slots.lock().idle.drain(..).collect();
        for instance in &mut idle {
            instance.end.reason = EndReason::Retired;
        }
        drop(idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_core::{FunctionName, FunctionSpec};

    fn pool() -> Arc<Pool> {
        let spec = FunctionSpec {
            runtime: "python3.12".into(),
            handler: Some("app.handler".into()),
            ..Default::default()
        };
        let function = Function {
            namespace: "default".into(),
            name: FunctionName::parse("held").unwrap(),
            config: spec.resolve().unwrap(),
            code_sha256: "0".repeat(64),
            code_size: 0,
            revision: 1,
            created_ms: 0,
            updated_ms: 0,
        };
        let deployment = Arc::new(Deployment {
            function,
            code_dir: "/nonexistent".into(),
        });
        Arc::new(Pool::new(deployment, ColdReason::FirstRequest, 0))
    }

    #[test]
    fn a_held_pool_starts_nothing_past_its_cap_nor_holds_below_its_provisioned_concurrency() {
        let pool = pool();
        let _waiting: Vec<Waiter> = (0..4).map(|_| pool.take_or_wait().err().unwrap()).collect();
        pool.cpu().hold_at(2);
        let mut started = vec![
            pool.begin_start().expect("below its cap"),
            pool.begin_start().expect("below its cap"),
        ];
        assert!(pool.begin_start().is_none(), "at its cap");
        assert_eq!(pool.at_cap(), Some(2));
        // An instance besides: 3 sandboxes, not past half as many again as 2.
        let mut end = End::new(Family::default(), &pool);
        assert!(!pool.shed(&mut end));
        // Its provisioned concurrency is more than its cap.
        pool.set_provisioned(4);
        started.push(
            pool.begin_start()
                .expect("below its provisioned concurrency"),
        );
        assert!(pool.begin_start().is_none());
        // Held at 2 again: 3 starting and 2 instances are past 3, and a shed instance leaves
        // the count before it drops, once.
        pool.set_provisioned(0);
        let mut other = End::new(Family::default(), &pool);
        assert!(pool.shed(&mut end));
        assert!(pool.shed(&mut other));
        drop((end, other, started));
        assert_eq!(pool.instances.load(Ordering::SeqCst), 0);
        let mut kept: Vec<End> = (0..3).map(|_| End::new(Family::default(), &pool)).collect();
        assert!(!pool.shed(&mut kept[0]), "3: not past 3");
        kept.push(End::new(Family::default(), &pool));
        assert!(pool.shed(&mut kept[0]), "4: past 3");
        // Not held: it sheds nothing, and starts one per waiting invocation.
        pool.cpu().hold_at(crate::hold::UNHELD);
        assert!(!pool.shed(&mut kept[1]));
        assert_eq!(pool.at_cap(), None);
        let _more: Vec<Starting> = (0..4)
            .map(|_| pool.begin_start().expect("not held"))
            .collect();
        assert!(pool.begin_start().is_none(), "one per waiting invocation");
    }
}
