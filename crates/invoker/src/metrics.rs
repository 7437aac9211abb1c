//! Prometheus metrics of the invoker: invocations by function and status, durations, cold starts
//! (by reason and birth), their init durations and the phases of those (sandbox, runtime, import),
//! throttles, queue waits, live sandboxes, sandboxes ended by reason, and the memory budget.
//! Counters and histograms are atomics, cheap enough for the invoke path; gauges are read at
//! scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FunctionLabels {
    pub namespace: String,
    pub function: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    pub namespace: String,
    pub function: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ColdLabels {
    pub namespace: String,
    pub function: String,
    pub reason: String,
    /// How the sandbox came to run ([`lambent_core::Birth`]), or [`NO_SANDBOX`].
    pub birth: String,
}

/// The `birth` of a cold start that failed before it had a sandbox.
pub(crate) const NO_SANDBOX: &str = "none";

/// One phase of cold starts: by runtime kind, birth and phase (`sandbox`, `runtime`, `import`).
/// Not by function: the phases say where the platform spends time, and the cardinality stays
/// fixed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabels {
    pub runtime: &'static str,
    pub birth: &'static str,
    pub phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ThrottleLabels {
    pub namespace: String,
    pub function: String,
    pub limit: String,
}

/// Why a sandbox ended ([`crate::pool::EndReason`]).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct EndLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    pub state: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn phase_histogram() -> Histogram {
    // 50 µs … ~26 s: forked sandboxes take well under a millisecond.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

fn latency_histogram() -> Histogram {
    // 0.1 ms … ~105 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

pub(crate) struct Metrics {
    registry: Registry,
    pub invocations: Family<StatusLabels, Counter>,
    pub duration: Histograms<FunctionLabels>,
    pub cold_starts: Family<ColdLabels, Counter>,
    pub init_duration: Histograms<FunctionLabels>,
    pub cold_start_phases: Histograms<PhaseLabels>,
    pub throttles: Family<ThrottleLabels, Counter>,
    pub queue_wait: Histograms<FunctionLabels>,
    pub sandboxes: Family<StateLabels, Gauge>,
    pub sandboxes_ended: Family<EndLabels, Counter>,
    pub memory_used_mb: Gauge,
    pub memory_budget_mb: Gauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lambent");
        let m = Metrics {
            invocations: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            cold_starts: Family::default(),
            init_duration: Family::new_with_constructor(latency_histogram),
            cold_start_phases: Family::new_with_constructor(phase_histogram),
            throttles: Family::default(),
            queue_wait: Family::new_with_constructor(latency_histogram),
            sandboxes: Family::default(),
            sandboxes_ended: Family::default(),
            memory_used_mb: Gauge::default(),
            memory_budget_mb: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "invocations",
            "Invocations by function and final status",
            m.invocations.clone(),
        );
        registry.register(
            "invocation_duration_seconds",
            "Run time of invocations (excluding init)",
            m.duration.clone(),
        );
        registry.register(
            "cold_starts",
            "Invocations that started a new sandbox, by reason and how the sandbox came to run",
            m.cold_starts.clone(),
        );
        registry.register(
            "init_duration_seconds",
            "Time from sandbox creation to a ready runtime",
            m.init_duration.clone(),
        );
        registry.register(
            "cold_start_phase_seconds",
            "Phases of invocations' cold starts: sandbox creation, runtime start, handler import",
            m.cold_start_phases.clone(),
        );
        registry.register(
            "throttles",
            "Invocations refused by a limit",
            m.throttles.clone(),
        );
        registry.register(
            "queue_wait_seconds",
            "Time invocations waited for sandbox capacity",
            m.queue_wait.clone(),
        );
        registry.register("sandboxes", "Live sandboxes by state", m.sandboxes.clone());
        registry.register(
            "sandboxes_ended",
            "Sandboxes that ended (were killed), by reason",
            m.sandboxes_ended.clone(),
        );
        registry.register(
            "memory_used_mb",
            "Configured memory of live sandboxes",
            m.memory_used_mb.clone(),
        );
        registry.register(
            "memory_budget_mb",
            "Memory budget for live sandboxes",
            m.memory_budget_mb.clone(),
        );
        // Every reason is shown from the start, at 0 until a sandbox ends for it.
        for reason in crate::pool::EndReason::ALL {
            let _ = m.sandboxes_ended.get_or_create(&EndLabels {
                reason: reason.as_str(),
            });
        }
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

pub(crate) fn function_labels(namespace: &str, function: &str) -> FunctionLabels {
    FunctionLabels {
        namespace: namespace.to_string(),
        function: function.to_string(),
    }
}
