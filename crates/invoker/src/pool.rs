//! One pool of sandboxes per function revision: idle instances (reused last-in first-out, so
//! the warmest one serves and the coldest ones age out), the busy and starting counts, the
//! provisioned concurrency to keep, why the next cold start is cold, and the signal that wakes
//! an invocation waiting on a cold start when a warm instance comes back.

use crate::{Deployment, Instance, SandboxCounts};
use lambent_core::{ColdReason, Function};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Idle instances, least recently used first.
    idle: Mutex<Vec<Instance>>,
    busy: AtomicUsize,
    /// Sandboxes being created.
    starting: AtomicUsize,
    /// Sandboxes to keep initialized at all times (the function's setting when the pool is
    /// made; a published version's own setting once `$LATEST` has moved on).
    provisioned: AtomicUsize,
    provisioning: AtomicBool,
    retired: AtomicBool,
    state: Mutex<ColdState>,
    /// Wakes one invocation waiting on a cold start each time an instance is released: it
    /// takes the released one if it is still idle (see `Invoker::cold_or_released`).
    released: tokio::sync::Notify,
}

struct ColdState {
    /// A cold start has been explained as the pool's first.
    first_claimed: bool,
    first_reason: ColdReason,
    last_loss: Option<ColdReason>,
}

/// Decrements a counter when dropped: the busy count when an invocation ends, the starting
/// count when a cold start ends, whatever way they end.
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
            idle: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
            starting: AtomicUsize::new(0),
            provisioning: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            released: tokio::sync::Notify::new(),
            state: Mutex::new(ColdState {
                first_claimed: false,
                first_reason,
                last_loss: None,
            }),
        }
    }

    pub fn deployment(&self) -> &Arc<Deployment> {
        &self.deployment
    }

    /// The most recently used idle instance, if any.
    pub fn take_idle(&self) -> Option<Instance> {
        self.idle.lock().pop()
    }

    /// Returns an instance after a successful invocation; a retired pool drops it instead.
    pub fn release(&self, mut instance: Instance) {
        if self.retired.load(Ordering::SeqCst) {
            return;
        }
        instance.last_used = Instant::now();
        self.idle.lock().push(instance);
        self.released.notify_one();
    }

    /// Resolves after the next [`Pool::release`] (or at once if one happened since the last
    /// waiter was woken): the caller then tries [`Pool::take_idle`].
    pub async fn released(&self) {
        self.released.notified().await;
    }

    /// Drops an instance that may not be reused.
    pub fn lose(&self, instance: Instance, reason: ColdReason) {
        drop(instance);
        self.lost(reason);
    }

    /// Notes that an instance was lost (the next cold start is explained by `reason`).
    pub fn lost(&self, reason: ColdReason) {
        self.state.lock().last_loss = Some(reason);
    }

    /// Why a cold start that is about to begin is cold. Claims "first": of many concurrent
    /// cold starts of a pool that never ran, one is the first request, the rest scale up.
    pub fn claim_cold_reason(&self) -> ColdReason {
        let mut state = self.state.lock();
        if !state.first_claimed {
            state.first_claimed = true;
            return state.first_reason;
        }
        if self.busy.load(Ordering::SeqCst) + self.starting.load(Ordering::SeqCst) > 0 {
            return ColdReason::ScaleUp;
        }
        state.last_loss.unwrap_or(ColdReason::ScaleUp)
    }

    pub fn busy_guard(&self) -> CountGuard<'_> {
        CountGuard::new(&self.busy)
    }

    pub fn starting_guard(&self) -> CountGuard<'_> {
        CountGuard::new(&self.starting)
    }

    pub fn counts(&self) -> SandboxCounts {
        SandboxCounts {
            idle: self.idle.lock().len(),
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
            .saturating_sub(self.live(self.idle.lock().len()))
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
        let idle = self.idle.lock();
        let oldest = idle.first()?;
        (self.live(idle.len()) > self.provisioned()).then_some(oldest.last_used)
    }

    /// Evicts the least recently used idle sandbox; false if there is none to evict.
    pub fn evict_oldest(&self) -> bool {
        let victim = {
            let mut idle = self.idle.lock();
            if idle.is_empty() || self.live(idle.len()) <= self.provisioned() {
                return false;
            }
            idle.remove(0)
        };
        self.lose(victim, ColdReason::Evicted);
        true
    }

    /// Drops idle instances unused for longer than `keep_alive`, least recently used first,
    /// down to the provisioned concurrency.
    pub fn reap(&self, keep_alive: Duration) {
        let expired: Vec<Instance> = {
            let mut idle = self.idle.lock();
            let spare = self.live(idle.len()).saturating_sub(self.provisioned());
            let n = idle
                .iter()
                .take(spare)
                .take_while(|i| i.last_used.elapsed() >= keep_alive)
                .count();
            idle.drain(..n).collect()
        };
        if !expired.is_empty() {
            self.lost(ColdReason::KeepAliveExpired);
        }
        drop(expired);
    }

    /// No new work: idle instances go now, busy ones when they are released.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        let idle: Vec<Instance> = self.idle.lock().drain(..).collect();
        drop(idle);
    }
}
