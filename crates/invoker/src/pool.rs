//! One pool of sandboxes per function revision: idle instances (reused last-in first-out, so
//! the warmest one serves and the coldest ones age out), the busy count, and why the next cold
//! start is cold.

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
    idle: Mutex<Vec<Instance>>,
    busy: AtomicUsize,
    retired: AtomicBool,
    state: Mutex<ColdState>,
}

struct ColdState {
    started_any: bool,
    first_reason: ColdReason,
    last_loss: Option<ColdReason>,
}

/// Decrements the busy count when the invocation ends, whatever way it ends.
pub(crate) struct BusyGuard<'a>(&'a Pool);

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    pub fn new(deployment: Arc<Deployment>, first_reason: ColdReason) -> Pool {
        Pool {
            deployment,
            idle: Mutex::new(Vec::new()),
            busy: AtomicUsize::new(0),
            retired: AtomicBool::new(false),
            state: Mutex::new(ColdState {
                started_any: false,
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

    /// Notes that a sandbox was started for this pool.
    pub fn started(&self) {
        self.state.lock().started_any = true;
    }

    /// Why an invocation that finds no idle instance is cold.
    pub fn cold_reason(&self) -> ColdReason {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return ColdReason::ScaleUp;
        }
        let state = self.state.lock();
        if !state.started_any {
            return state.first_reason;
        }
        state.last_loss.unwrap_or(ColdReason::ScaleUp)
    }

    pub fn busy_guard(&self) -> BusyGuard<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(self)
    }

    pub fn counts(&self) -> SandboxCounts {
        SandboxCounts {
            idle: self.idle.lock().len(),
            busy: self.busy.load(Ordering::SeqCst),
        }
    }

    /// Drops idle instances unused for longer than `keep_alive`.
    pub fn reap(&self, keep_alive: Duration) {
        let expired: Vec<Instance> = {
            let mut idle = self.idle.lock();
            let (old, fresh): (Vec<_>, Vec<_>) = idle
                .drain(..)
                .partition(|i| i.last_used.elapsed() >= keep_alive);
            *idle = fresh;
            old
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
