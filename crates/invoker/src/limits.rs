//! The limits the invoker enforces before running anything: concurrent invocations per function
//! (reserved concurrency: a cap, and a guarantee carved out of the namespace's limit) and per
//! namespace, and the machine-wide memory budget that the configured memory of all live
//! sandboxes must fit in.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Notify;

/// Which limit refused an invocation. The message names it, for the 429 the caller gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Throttle {
    #[error("function '{function}' reached its reserved concurrency of {limit}")]
    Reserved { function: String, limit: u32 },
    #[error(
        "namespace {namespace} is at its concurrency limit of {limit} (namespace concurrency)"
    )]
    Namespace { namespace: String, limit: u32 },
    #[error("the machine's sandbox memory budget of {budget_mb} MB is in use: no room for another {memory_mb} MB sandbox")]
    Memory { budget_mb: u64, memory_mb: u32 },
    #[error("the CPU is saturated by function '{function}': its runtimes want it, its pool is held at {cap} sandboxes (--runnable-per-core), and none came free in time")]
    Held { function: String, cap: usize },
}

impl Throttle {
    /// The limit's name in an API's error body (`limit`): `reserved_concurrency`,
    /// `namespace_concurrency`, `memory_budget`, `cpu_hold`.
    pub fn limit_name(&self) -> &'static str {
        match self {
            Throttle::Reserved { .. } => "reserved_concurrency",
            Throttle::Namespace { .. } => "namespace_concurrency",
            Throttle::Memory { .. } => "memory_budget",
            Throttle::Held { .. } => "cpu_hold",
        }
    }

    /// The limit's name ([`Throttle::limit_name`]) of a throttle's message, as an activation
    /// record carries it (also after forwarding between nodes).
    pub fn limit_name_of(message: &str) -> &'static str {
        if message.starts_with("function ") {
            "reserved_concurrency"
        } else if message.starts_with("namespace ") {
            "namespace_concurrency"
        } else if message.starts_with("the CPU ") {
            "cpu_hold"
        } else {
            "memory_budget"
        }
    }

    /// Short label for metrics: `reserved`, `namespace`, `memory`, `cpu`.
    pub fn label(&self) -> &'static str {
        match self {
            Throttle::Reserved { .. } => "reserved",
            Throttle::Namespace { .. } => "namespace",
            Throttle::Memory { .. } => "memory",
            Throttle::Held { .. } => "cpu",
        }
    }
}

#[derive(Default)]
struct NamespaceCount {
    unreserved_inflight: u32,
    reserved_total: u32,
    reserved: HashMap<String, u32>,
    inflight: HashMap<String, u32>,
}

/// The error type of a record refused by a [`Gate`] (an activation's `error_type`; its status
/// is `Throttled`, so queued work waits and retries, and nothing is billed).
pub const BUDGET_EXHAUSTED: &str = "Lambent.BudgetExhausted";

/// A refusal decided outside the invoker, before admission: a namespace whose hard monthly
/// budget is spent. Asked once per invocation, so it must answer from memory.
pub trait Gate: Send + Sync + 'static {
    /// Why `namespace` may not run anything now (the message), if it may not.
    fn refuse(&self, namespace: &str) -> Option<String>;
}

/// A cluster node's part of cluster-wide limits: each node enforces its share, and the shares
/// of all live nodes add up to the limit (see `lambent-cluster`'s placement).
pub trait LimitShares: Send + Sync + 'static {
    /// This node's share of a function's reserved concurrency `limit`.
    fn function(&self, namespace: &str, function: &str, limit: u32) -> u32;
    /// This node's share of a namespace's concurrency `limit` (unreserved invocations).
    fn namespace(&self, namespace: &str, limit: u32) -> u32;
    /// How many of a function's `n` provisioned sandboxes this node keeps.
    fn provisioned(&self, namespace: &str, function: &str, n: u32) -> u32;
}

/// Concurrent invocations per namespace and function.
pub(crate) struct Admission {
    /// The node's default limit of a namespace's concurrency.
    namespace_limit: u32,
    /// Namespaces whose own setting replaces the default (their `concurrency`).
    namespace_limits: parking_lot::RwLock<HashMap<String, u32>>,
    counts: Mutex<HashMap<String, NamespaceCount>>,
    /// Cluster mode: enforce this node's shares instead of the whole limits.
    shares: parking_lot::RwLock<Option<Arc<dyn LimitShares>>>,
}

/// One admitted invocation; dropping it frees its slot.
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    namespace: String,
    function: String,
    reserved: bool,
}

impl Admission {
    pub fn new(namespace_limit: u32) -> Admission {
        Admission {
            namespace_limit,
            namespace_limits: parking_lot::RwLock::new(HashMap::new()),
            counts: Mutex::new(HashMap::new()),
            shares: parking_lot::RwLock::new(None),
        }
    }

    pub fn set_shares(&self, shares: Arc<dyn LimitShares>) {
        *self.shares.write() = Some(shares);
    }

    /// This node's part of a function's provisioned concurrency `n` (all of it on one node).
    pub fn provisioned_share(&self, namespace: &str, function: &str, n: u32) -> u32 {
        match self.shares.read().as_ref() {
            Some(shares) if n > 0 => shares.provisioned(namespace, function, n),
            _ => n,
        }
    }

    /// Records a function's reserved concurrency (`None`: it draws from the unreserved pool).
    pub fn set_reserved(&self, namespace: &str, function: &str, reserved: Option<u32>) {
        let mut counts = self.counts.lock();
        let ns = counts.entry(namespace.to_string()).or_default();
        let old = match reserved {
            Some(r) => ns.reserved.insert(function.to_string(), r),
            None => ns.reserved.remove(function),
        };
        ns.reserved_total = ns.reserved_total - old.unwrap_or(0) + reserved.unwrap_or(0);
    }

    /// Sum of the reservations in a namespace, for deploy-time checks.
    pub fn reserved_total(&self, namespace: &str, except: &str) -> u32 {
        let counts = self.counts.lock();
        counts.get(namespace).map_or(0, |ns| {
            ns.reserved_total - ns.reserved.get(except).copied().unwrap_or(0)
        })
    }

    /// The concurrency limit of `namespace`: its own setting, else the node's default.
    pub fn namespace_limit(&self, namespace: &str) -> u32 {
        self.namespace_limits
            .read()
            .get(namespace)
            .copied()
            .unwrap_or(self.namespace_limit)
    }

    /// Sets (or, with `None`, drops) a namespace's own concurrency limit.
    pub fn set_namespace_limit(&self, namespace: &str, limit: Option<u32>) {
        let mut limits = self.namespace_limits.write();
        match limit {
            Some(l) => limits.insert(namespace.to_string(), l),
            None => limits.remove(namespace),
        };
    }

    pub fn admit(self: &Arc<Self>, namespace: &str, function: &str) -> Result<Admitted, Throttle> {
        let shares = self.shares.read().clone();
        let namespace_limit = self.namespace_limit(namespace);
        let mut counts = self.counts.lock();
        let ns = counts.entry(namespace.to_string()).or_default();
        let reserved = ns.reserved.get(function).copied();
        let inflight = ns.inflight.get(function).copied().unwrap_or(0);
        match reserved {
            Some(limit) => {
                let here = shares
                    .as_ref()
                    .map_or(limit, |s| s.function(namespace, function, limit));
                if inflight >= here {
                    return Err(Throttle::Reserved {
                        function: function.to_string(),
                        limit,
                    });
                }
            }
            None => {
                let limit = namespace_limit.saturating_sub(ns.reserved_total);
                let here = shares
                    .as_ref()
                    .map_or(limit, |s| s.namespace(namespace, limit));
                if ns.unreserved_inflight >= here {
                    return Err(Throttle::Namespace {
                        namespace: namespace.to_string(),
                        limit,
                    });
                }
                ns.unreserved_inflight += 1;
            }
        }
        *ns.inflight.entry(function.to_string()).or_default() += 1;
        Ok(Admitted {
            admission: self.clone(),
            namespace: namespace.to_string(),
            function: function.to_string(),
            reserved: reserved.is_some(),
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut counts = self.admission.counts.lock();
        if let Some(ns) = counts.get_mut(&self.namespace) {
            if !self.reserved {
                ns.unreserved_inflight = ns.unreserved_inflight.saturating_sub(1);
            }
            if let Some(n) = ns.inflight.get_mut(&self.function) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    ns.inflight.remove(&self.function);
                }
            }
        }
    }
}

/// The machine-wide memory budget of live sandboxes.
pub(crate) struct MemoryBudget {
    limit_mb: u64,
    used_mb: AtomicU64,
    /// Signalled whenever memory is freed or a sandbox becomes idle.
    pub freed: Notify,
}

/// Memory held by one live sandbox; dropping it returns the memory to the budget.
pub(crate) struct MemoryLease {
    budget: Arc<MemoryBudget>,
    mb: u64,
}

impl MemoryBudget {
    pub fn new(limit_mb: u64) -> MemoryBudget {
        MemoryBudget {
            limit_mb,
            used_mb: AtomicU64::new(0),
            freed: Notify::new(),
        }
    }

    pub fn limit_mb(&self) -> u64 {
        self.limit_mb
    }

    pub fn used_mb(&self) -> u64 {
        self.used_mb.load(Ordering::SeqCst)
    }

    pub fn try_reserve(self: &Arc<Self>, mb: u32) -> Option<MemoryLease> {
        let mb = mb as u64;
        self.used_mb
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |used| {
                (used + mb <= self.limit_mb).then_some(used + mb)
            })
            .ok()
            .map(|_| MemoryLease {
                budget: self.clone(),
                mb,
            })
    }
}

impl Drop for MemoryLease {
    fn drop(&mut self) {
        self.budget.used_mb.fetch_sub(self.mb, Ordering::SeqCst);
        self.budget.freed.notify_waiters();
    }
}

/// Total memory of this machine in MB (from `/proc/meminfo`), to size the default budget.
pub fn host_memory_mb() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_concurrency_caps_and_carves_out_of_the_namespace() {
        let a = Arc::new(Admission::new(5));
        a.set_reserved("ns", "r", Some(2));
        let r1 = a.admit("ns", "r").unwrap();
        let _r2 = a.admit("ns", "r").unwrap();
        assert!(matches!(
            a.admit("ns", "r"),
            Err(Throttle::Reserved { limit: 2, .. })
        ));
        // 5 - 2 reserved = 3 for everyone else.
        let others: Vec<_> = (0..3).map(|_| a.admit("ns", "u").unwrap()).collect();
        assert!(matches!(
            a.admit("ns", "v"),
            Err(Throttle::Namespace { limit: 3, .. })
        ));
        drop(r1);
        assert!(a.admit("ns", "r").is_ok());
        drop(others);
        assert!(a.admit("ns", "v").is_ok());
        assert!(
            a.admit("other", "v").is_ok(),
            "namespaces are counted apart"
        );
        a.set_reserved("ns", "r", Some(0));
        assert!(a.admit("ns", "r").is_err(), "reserved 0 stops a function");
    }

    #[test]
    fn a_held_pool_s_throttle_names_its_limit() {
        let held = Throttle::Held {
            function: "spin".into(),
            cap: 12,
        };
        assert_eq!(held.limit_name(), "cpu_hold");
        assert_eq!(held.label(), "cpu");
        assert_eq!(Throttle::limit_name_of(&held.to_string()), "cpu_hold");
        assert!(held.to_string().contains("held at 12 sandboxes"), "{held}");
    }

    #[test]
    fn a_namespace_s_own_limit_replaces_the_default() {
        let a = Arc::new(Admission::new(5));
        a.set_namespace_limit("small", Some(1));
        let held = a.admit("small", "f").unwrap();
        let refused = a.admit("small", "g").err().unwrap();
        assert_eq!(refused.limit_name(), "namespace_concurrency");
        assert_eq!(
            Throttle::limit_name_of(&refused.to_string()),
            "namespace_concurrency"
        );
        assert_eq!(
            refused.to_string(),
            "namespace small is at its concurrency limit of 1 (namespace concurrency)"
        );
        let others: Vec<_> = (0..5).map(|_| a.admit("big", "f").unwrap()).collect();
        assert!(
            a.admit("big", "f").is_err(),
            "the default applies elsewhere"
        );
        a.set_namespace_limit("small", None);
        assert!(a.admit("small", "g").is_ok(), "unset: the default again");
        drop((held, others));
    }

    #[test]
    fn memory_budget_is_never_exceeded_and_leases_return_memory() {
        let b = Arc::new(MemoryBudget::new(300));
        let l1 = b.try_reserve(128).unwrap();
        let _l2 = b.try_reserve(128).unwrap();
        assert!(b.try_reserve(128).is_none());
        assert_eq!(b.used_mb(), 256);
        drop(l1);
        assert!(b.try_reserve(128).is_some());
    }
}
