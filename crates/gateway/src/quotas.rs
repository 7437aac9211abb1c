//! A namespace's quotas and budget, enforced on this node from memory: its settings (kept
//! current by [`App::apply_namespace`](crate::App::apply_namespace) on every node), the
//! month's spend of the namespaces with a budget (refreshed from the activation rollups every
//! [`REFRESH`]), and the bytes each namespace with a storage quota stores (read from the store
//! at most every [`REFRESH`], plus what this node accepted since).
//!
//! Precision, as `docs/tenants.md` documents it:
//! - **functions**: counted in the store under the registry's deploy lock: exact on one node;
//!   two nodes creating at the same instant may both pass.
//! - **storage**: a write is refused when the stored bytes plus the bytes this node accepted
//!   since the last read plus the write's own would exceed the quota. Writes other nodes
//!   accept within one [`REFRESH`] can overshoot it by what they wrote in that time.
//! - **budget**: the spend is the month's invocations and GB-seconds from the rollups, which
//!   are written with the records (batched, within a second or so); so a hard budget stops
//!   invocations within about two seconds of being reached.

use crate::error::{Quota, QuotaExceeded};
use crate::ApiError;
use lambent_core::metering::Prices;
use lambent_core::tenancy::NamespaceSettings;
use lambent_store::rollups::RollupQuery;
use lambent_store::tenants::{QuotaError, StorageQuota, StorageUse};
use lambent_store::Store;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How often the month's spend and the stored bytes are read again.
pub const REFRESH: Duration = Duration::from_secs(1);

/// The bytes of a namespace as last read, and what this node accepted since.
struct Stored {
    read: StorageUse,
    at: Instant,
    accepted: u64,
}

/// A namespace's budget and what it spent this month.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BudgetState {
    pub budget_usd: f64,
    pub spent_usd: f64,
    pub hard: bool,
}

impl BudgetState {
    /// Spent over budget (1.0: all of it).
    pub fn ratio(&self) -> f64 {
        self.spent_usd / self.budget_usd
    }

    pub fn exhausted(&self) -> bool {
        self.spent_usd >= self.budget_usd
    }

    /// What `/v1/usage` says of a spent (or 80 % spent) soft budget.
    pub fn warning(&self, namespace: &str) -> Option<String> {
        let pct = self.ratio() * 100.0;
        match (self.hard, pct) {
            (false, p) if p >= 100.0 => Some(format!(
                "namespace {namespace} has spent {p:.0}% of its soft monthly budget of ${:.2}",
                self.budget_usd
            )),
            (_, p) if p >= 80.0 => Some(format!(
                "namespace {namespace} has spent {p:.0}% of its monthly budget of ${:.2}",
                self.budget_usd
            )),
            _ => None,
        }
    }
}

/// The quotas and budgets of every namespace, as this node enforces them.
pub struct Quotas {
    store: Arc<dyn Store>,
    prices: OnceLock<Prices>,
    settings: RwLock<HashMap<String, NamespaceSettings>>,
    /// This month's spend (USD) of each namespace with a budget.
    spent: RwLock<HashMap<String, f64>>,
    stored: Mutex<HashMap<String, Stored>>,
}

impl Quotas {
    pub fn new(store: Arc<dyn Store>) -> Quotas {
        Quotas {
            store,
            prices: OnceLock::new(),
            settings: RwLock::new(HashMap::new()),
            spent: RwLock::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
        }
    }

    /// Starts reading the month's spend of the namespaces with a budget every [`REFRESH`],
    /// at `prices`, until the quotas are dropped.
    pub fn start(self: &Arc<Self>, prices: Prices) -> tokio::task::JoinHandle<()> {
        let _ = self.prices.set(prices);
        let weak: Weak<Quotas> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(quotas) = weak.upgrade() else { return };
                quotas.refresh_spend().await;
            }
        })
    }

    /// A namespace's settings changed (`None`: it is gone).
    pub fn set(&self, namespace: &str, settings: Option<&NamespaceSettings>) {
        if self.settings.read().get(namespace) == settings {
            // A resync's re-application: what this node counted stays.
            return;
        }
        let mut all = self.settings.write();
        match settings {
            Some(s) => all.insert(namespace.to_string(), s.clone()),
            None => all.remove(namespace),
        };
        drop(all);
        self.stored.lock().remove(namespace);
        if settings.is_none_or(|s| s.monthly_budget_usd.is_none()) {
            self.spent.write().remove(namespace);
        }
    }

    fn settings_of(&self, namespace: &str) -> Option<NamespaceSettings> {
        self.settings.read().get(namespace).cloned()
    }

    /// This month's spend (USD) of `namespace`, from its rollups.
    pub async fn month_spend(&self, namespace: &str) -> Result<f64, ApiError> {
        let now = lambent_core::now_ms();
        let until = (now.div_euclid(60_000) + 1) * 60_000;
        let query = RollupQuery {
            namespace: namespace.to_string(),
            function: None,
            since_ms: month_start_ms(now),
            until_ms: until,
            step_ms: until - month_start_ms(now),
        };
        let prices = self.prices.get().copied().unwrap_or_default();
        let mut cost = 0.0;
        for piece in query.pieces() {
            for r in self.store.activation_rollups(&piece).await? {
                cost += prices.cost(r.invocations(), r.gb_seconds());
            }
        }
        Ok(cost)
    }

    async fn refresh_spend(&self) {
        let budgeted: Vec<String> = self
            .settings
            .read()
            .iter()
            .filter(|(_, s)| s.monthly_budget_usd.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for ns in budgeted {
            match self.month_spend(&ns).await {
                Ok(usd) => {
                    self.spent.write().insert(ns, usd);
                }
                Err(e) => tracing::warn!("could not read namespace {ns}'s spend: {e}"),
            }
        }
    }

    /// The budget of `namespace` and its spend as last read, if it has a budget.
    pub fn budget(&self, namespace: &str) -> Option<BudgetState> {
        let settings = self.settings_of(namespace)?;
        Some(BudgetState {
            budget_usd: settings.monthly_budget_usd?,
            spent_usd: self.spent.read().get(namespace).copied().unwrap_or(0.0),
            hard: settings.budget_hard,
        })
    }

    /// Every namespace with a budget and its state (for `/metrics`).
    pub fn budgets(&self) -> Vec<(String, BudgetState)> {
        let names: Vec<String> = self.settings.read().keys().cloned().collect();
        let mut all: Vec<_> = names
            .into_iter()
            .filter_map(|n| self.budget(&n).map(|b| (n, b)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The budgets' gauges for `/metrics`: spent over budget per namespace (each sample is
    /// labelled with its namespace, so a namespace's key sees its own).
    pub fn budget_metrics(&self) -> String {
        let budgets = self.budgets();
        if budgets.is_empty() {
            return String::new();
        }
        let mut text = String::from(
            "# HELP lambent_namespace_budget_spent_ratio Spend this month over the monthly budget.\n\
             # TYPE lambent_namespace_budget_spent_ratio gauge\n",
        );
        for (ns, b) in &budgets {
            text.push_str(&format!(
                "lambent_namespace_budget_spent_ratio{{namespace=\"{ns}\",hard=\"{}\"}} {}\n",
                b.hard,
                b.ratio()
            ));
        }
        text
    }

    /// Refuses an invocation of a namespace whose hard budget is spent.
    pub fn check_budget(&self, namespace: &str) -> Result<(), ApiError> {
        match self.budget(namespace) {
            Some(b) if b.hard && b.exhausted() => Err(ApiError::BudgetExhausted(format!(
                "namespace {namespace} has spent ${:.6} of its hard monthly budget of ${:.2}: \
                 invocations are refused until the month ends or the operator raises \
                 monthly_budget_usd",
                b.spent_usd, b.budget_usd
            ))),
            _ => Ok(()),
        }
    }

    /// Refuses a new function of a namespace that has `existing` and may have no more.
    pub fn check_functions(&self, namespace: &str, existing: usize) -> Result<(), ApiError> {
        let Some(max) = self.settings_of(namespace).and_then(|s| s.max_functions) else {
            return Ok(());
        };
        if existing < max as usize {
            return Ok(());
        }
        Err(QuotaExceeded {
            namespace: namespace.into(),
            quota: Quota::MaxFunctions,
            what: "functions",
            limit: max.into(),
            used: existing as u64,
            unit: "",
            wanted: String::new(),
        }
        .into())
    }

    /// What `namespace` stores now, read from the store.
    pub async fn storage_use(&self, namespace: &str) -> Result<StorageUse, ApiError> {
        Ok(self.store.storage_use(namespace).await?)
    }
}

/// The storage quota the object, table and queue engines ask before a write: takes `bytes`
/// more of the namespace's quota for a write about to happen, or refuses the write (before
/// anything of it is stored).
#[async_trait::async_trait]
impl StorageQuota for Quotas {
    async fn reserve(&self, namespace: &str, bytes: u64) -> Result<(), QuotaError> {
        let Some(quota) = self
            .settings_of(namespace)
            .and_then(|s| s.storage_quota_bytes)
        else {
            return Ok(());
        };
        loop {
            if let Some(s) = self
                .stored
                .lock()
                .get_mut(namespace)
                .filter(|s| s.at.elapsed() < REFRESH)
            {
                let used = s.read.total() + s.accepted;
                if used.saturating_add(bytes) > quota {
                    let refused = QuotaExceeded {
                        namespace: namespace.into(),
                        quota: Quota::Storage,
                        what: "storage",
                        limit: quota,
                        used,
                        unit: " bytes",
                        wanted: format!(", {bytes} more asked"),
                    };
                    return Err(QuotaError::Exceeded(refused.to_string()));
                }
                s.accepted += bytes;
                return Ok(());
            }
            // Not read in the last second (or dropped by a settings change): read it again.
            let read = self.store.storage_use(namespace).await?;
            self.stored.lock().insert(
                namespace.to_string(),
                Stored {
                    read,
                    at: Instant::now(),
                    accepted: 0,
                },
            );
        }
    }
}

/// Refuses invocations of namespaces whose hard budget is spent, for the invoker (every
/// invocation, queued ones included: those wait and retry).
impl lambent_invoker::Gate for Quotas {
    fn refuse(&self, namespace: &str) -> Option<String> {
        self.check_budget(namespace).err().map(|e| e.to_string())
    }
}

/// 00:00 UTC on the first day of the month of `now_ms`.
pub fn month_start_ms(now_ms: i64) -> i64 {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000)) else {
        return 0;
    };
    let first = t.date().replace_day(1).unwrap_or(t.date());
    first.midnight().assume_utc().unix_timestamp() * 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_at_midnight_utc_on_its_first_day() {
        // 2026-12-02T16:54:20Z
        assert_eq!(month_start_ms(1_796_230_460_000), 1_796_083_200_000);
        assert_eq!(month_start_ms(1_796_083_200_000), 1_796_083_200_000);
    }

    #[test]
    fn a_soft_budget_warns_and_a_hard_one_is_exhausted_when_reached() {
        let soft = BudgetState {
            budget_usd: 1.0,
            spent_usd: 1.2,
            hard: false,
        };
        assert!(soft.warning("a").unwrap().contains("120% of its soft"));
        let under = BudgetState {
            spent_usd: 0.1,
            ..soft
        };
        assert_eq!(under.warning("a"), None);
        let hard = BudgetState {
            hard: true,
            spent_usd: 1.0,
            ..soft
        };
        assert!(hard.exhausted());
    }
}
