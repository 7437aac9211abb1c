//! Metering: usage, cost and memory right-sizing computed from activation records.
//!
//! Pure computation: records are summed per group into [`Aggregate`]s (by a store, where the
//! records are, or by [`aggregate`] in memory), and the rows, totals and advice shown are
//! derived from those with the prices.
//!
//! # Billing model
//!
//! The same as AWS Lambda's on-demand pricing, without the free tier and volume tiers:
//!
//! - **GB-seconds** of a record = billed ms / 1000 × memory MB / 1024
//!   ([`crate::activation::gb_seconds`]), using the record's own `billed_ms` (which the invoker
//!   rounds up to the millisecond, init included) and its own `memory_mb`.
//! - **Cost** = requests × [`Prices::per_request`] + GB-s × [`Prices::per_gb_second`].
//! - **Throttled records are never billed**: a throttled request never ran, so it counts neither
//!   as a request nor for GB-seconds (even if its `billed_ms` is not 0), as on Lambda. It is
//!   counted in [`UsageRow::throttles`] only.
//! - Every other record is one billed request, whatever its status (errors, timeouts and
//!   platform errors included). A record with `billed_ms` 0 costs only the request.
//!
//! # Right-sizing
//!
//! [`rightsizing`] suggests, per function, the smallest memory size that still holds the
//! function's peak measured memory with [`HEADROOM`], and what the same records would have cost
//! at that size. This is an estimate: it assumes the **duration is unchanged** at the new size,
//! while Lambda (and Lambent's sandbox) allocates CPU in proportion to memory, so a CPU-bound
//! function may run longer with less memory and save less than shown (or cost more).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::activation::{gb_seconds, Activation, ActivationStatus};
use crate::limits::{MAX_MEMORY_MB, MIN_MEMORY_MB};

/// Memory right-sizing keeps this factor above the peak measured memory (20 % headroom).
pub const HEADROOM: f64 = 1.2;
/// Recommended memory sizes are rounded up to a multiple of this many MB.
pub const MEMORY_STEP_MB: u32 = 64;

const MIB: u64 = 1024 * 1024;

/// Unit prices in US dollars.
///
/// The default is AWS Lambda's x86_64 list price (us-east-1, first tier): $0.20 per million
/// requests and $0.0000166667 per GB-second; and Step Functions Standard's $0.025 per 1,000
/// state transitions. Fields missing when deserializing take these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prices {
    /// Dollars per request.
    pub per_request: f64,
    /// Dollars per GB-second of billed duration.
    pub per_gb_second: f64,
    /// Dollars per state transition of a workflow execution.
    pub per_transition: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            per_request: 0.20 / 1_000_000.0,
            per_gb_second: 0.000_016_666_7,
            per_transition: 0.025 / 1000.0,
        }
    }
}

impl Prices {
    /// requests × per request + GB-s × per GB-second.
    pub fn cost(&self, requests: u64, gb_seconds: f64) -> f64 {
        requests as f64 * self.per_request + gb_seconds * self.per_gb_second
    }
}

/// How [`usage`] groups records into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Grouping {
    /// One row per function, keyed `namespace/function` (functions of the same name in two
    /// namespaces are different functions).
    Function,
    /// One row per namespace, keyed by the namespace.
    Namespace,
    /// One row per UTC day of the records' start, keyed `YYYY-MM-DD`.
    Day,
}

impl Grouping {
    pub const ALL: [Grouping; 3] = [Self::Function, Self::Namespace, Self::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Function => "function",
            Self::Namespace => "namespace",
            Self::Day => "day",
        }
    }
}

impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Grouping {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Self::ALL.iter().map(|g| g.as_str()).collect();
                format!("unknown grouping '{s}': use one of {}", all.join(", "))
            })
    }
}

/// The UTC calendar day of a millisecond timestamp, `YYYY-MM-DD` (`unknown` if out of range).
fn utc_day(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => {
            let d = t.date();
            format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
        }
        Err(_) => "unknown".to_string(),
    }
}

/// Usage and cost of a group of records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// `namespace/function`, the namespace, the UTC day `YYYY-MM-DD`, or `total`.
    pub key: String,
    /// Billed requests: every record except throttled ones (as Lambda's `Invocations` metric).
    pub invocations: u64,
    /// Invocations whose status is anything but success (throttles are not errors).
    pub errors: u64,
    /// Throttled requests: never ran, never billed.
    pub throttles: u64,
    /// Invocations that needed a new sandbox.
    pub cold_starts: u64,
    /// Median duration (without init) in ms, nearest rank over the invocations; 0 if none.
    pub p50_ms: f64,
    /// 99th percentile duration (without init) in ms, nearest rank over the invocations; 0 if none.
    pub p99_ms: f64,
    /// Sum of the invocations' billed ms.
    pub billed_ms: u64,
    /// Sum of the invocations' GB-seconds, each at its own memory size.
    pub gb_seconds: f64,
    /// Dollars: invocations × per request + GB-s × per GB-second.
    pub cost: f64,
}

/// The group of records an [`Aggregate`] sums: what its records share under a grouping
/// (`None` grouping: every record, [`Group::Total`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    Total,
    Namespace(String),
    Function {
        namespace: String,
        function: String,
    },
    /// The UTC day of the records' start, as days since the epoch (`start_ms` div 86 400 000,
    /// rounded down).
    Day(i64),
}

impl Group {
    /// The group of one record under `by`.
    pub fn of(a: &Activation, by: Option<Grouping>) -> Group {
        match by {
            None => Group::Total,
            Some(Grouping::Namespace) => Group::Namespace(a.namespace.clone()),
            Some(Grouping::Function) => Group::Function {
                namespace: a.namespace.clone(),
                function: a.function.clone(),
            },
            Some(Grouping::Day) => Group::Day(a.start_ms.div_euclid(DAY_MS)),
        }
    }

    /// The row key: `total`, the namespace, `namespace/function` or `YYYY-MM-DD`.
    pub fn key(&self) -> String {
        match self {
            Group::Total => "total".to_string(),
            Group::Namespace(ns) => ns.clone(),
            Group::Function {
                namespace,
                function,
            } => format!("{namespace}/{function}"),
            Group::Day(day) => utc_day(day * DAY_MS),
        }
    }
}

/// One UTC day in ms.
pub const DAY_MS: i64 = 86_400_000;

/// What the usage of one [`Group`] of records needs, summed: a store computes it where the
/// records are (`Store::usage`), [`aggregate`] over records in memory. Everything [`UsageRow`]
/// and [`Advice`] show is derived from it with the prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregate {
    pub group: Group,
    /// Records that ran (every record but the throttled ones).
    pub invocations: u64,
    /// Invocations whose status is anything but success.
    pub errors: u64,
    pub throttles: u64,
    /// Invocations that were cold starts.
    pub cold_starts: u64,
    /// Nearest-rank [`percentile_rank`] 50 and 99 of the invocations' durations (µs); 0 if none.
    pub p50_us: u64,
    pub p99_us: u64,
    /// Billed ms of the invocations summed per memory size (MB), for the sizes any invocation
    /// ran at: one GB-s computation per size keeps the sum exact.
    pub billed_by_memory: BTreeMap<u32, u64>,
    /// Peak memory measured by any record (bytes); `None` when none measured it.
    pub max_memory_bytes: Option<u64>,
    /// The memory size of the most recent record: the greatest (`start_ms`, `id`), the first
    /// in the newest-first order activations are listed in.
    pub latest_memory_mb: u32,
}

impl Aggregate {
    /// An aggregate of no records.
    pub fn empty(group: Group) -> Aggregate {
        Aggregate {
            group,
            invocations: 0,
            errors: 0,
            throttles: 0,
            cold_starts: 0,
            p50_us: 0,
            p99_us: 0,
            billed_by_memory: BTreeMap::new(),
            max_memory_bytes: None,
            latest_memory_mb: 0,
        }
    }

    fn billed_ms(&self) -> u64 {
        self.billed_by_memory.values().sum()
    }

    fn gb_seconds(&self) -> f64 {
        self.billed_by_memory
            .iter()
            .map(|(&mb, &ms)| gb_seconds(ms, mb))
            .sum()
    }

    fn cost(&self, prices: &Prices) -> f64 {
        prices.cost(self.invocations, self.gb_seconds())
    }

    /// The usage row of this group, keyed by [`Group::key`].
    pub fn row(&self, prices: &Prices) -> UsageRow {
        UsageRow {
            key: self.group.key(),
            invocations: self.invocations,
            errors: self.errors,
            throttles: self.throttles,
            cold_starts: self.cold_starts,
            p50_ms: self.p50_us as f64 / 1000.0,
            p99_ms: self.p99_us as f64 / 1000.0,
            billed_ms: self.billed_ms(),
            gb_seconds: self.gb_seconds(),
            cost: self.cost(prices),
        }
    }

    /// The right-sizing advice of a function's aggregate; `None` for other groups.
    pub fn advice(&self, prices: &Prices) -> Option<Advice> {
        let Group::Function {
            namespace,
            function,
        } = &self.group
        else {
            return None;
        };
        let memory_mb = self.latest_memory_mb;
        let max_used_mb = self
            .max_memory_bytes
            .map(|b| u32::try_from(b.div_ceil(MIB)).unwrap_or(u32::MAX));
        let cost = self.cost(prices);
        let (recommended_mb, recommended_cost) = match max_used_mb {
            Some(used) => {
                let mb = recommend_memory_mb(used, memory_mb);
                let gb_s = gb_seconds(self.billed_ms(), mb);
                (mb, prices.cost(self.invocations, gb_s))
            }
            None => (memory_mb, cost),
        };
        Some(Advice {
            namespace: namespace.clone(),
            function: function.clone(),
            memory_mb,
            max_used_mb,
            recommended_mb,
            cost,
            recommended_cost,
            savings: cost - recommended_cost,
        })
    }
}

/// The 1-based rank of the nearest-rank `p`-th percentile (0 < p ≤ 100) of `n` ≥ 1 sorted
/// samples: the smallest sample with at least `p` % of the samples at or below it. Stores
/// compute it in SQL as `(n * p + 99) / 100`.
pub fn percentile_rank(p: u64, n: u64) -> u64 {
    (p * n).div_ceil(100).max(1)
}

/// Running totals of one group.
#[derive(Default)]
struct Acc {
    invocations: u64,
    errors: u64,
    throttles: u64,
    cold_starts: u64,
    durations_us: Vec<u64>,
    billed_by_memory: BTreeMap<u32, u64>,
    max_memory_bytes: Option<u64>,
    /// (start_ms, id, memory_mb) of the most recent record.
    latest: Option<(i64, String, u32)>,
}

impl Acc {
    fn add(&mut self, a: &Activation) {
        if let Some(b) = a.max_memory_bytes {
            self.max_memory_bytes = Some(self.max_memory_bytes.map_or(b, |m| m.max(b)));
        }
        let newer = match &self.latest {
            None => true,
            Some((start, id, _)) => (a.start_ms, a.id.as_str()) > (*start, id.as_str()),
        };
        if newer {
            self.latest = Some((a.start_ms, a.id.clone(), a.memory_mb));
        }
        if a.status == ActivationStatus::Throttled {
            self.throttles += 1;
            return;
        }
        self.invocations += 1;
        if a.status != ActivationStatus::Success {
            self.errors += 1;
        }
        if a.cold {
            self.cold_starts += 1;
        }
        self.durations_us.push(a.duration_us);
        *self.billed_by_memory.entry(a.memory_mb).or_default() += a.billed_ms;
    }

    fn into_aggregate(mut self, group: Group) -> Aggregate {
        self.durations_us.sort_unstable();
        let n = self.durations_us.len() as u64;
        let percentile = |p| match n {
            0 => 0,
            n => self.durations_us[percentile_rank(p, n) as usize - 1],
        };
        Aggregate {
            group,
            invocations: self.invocations,
            errors: self.errors,
            throttles: self.throttles,
            cold_starts: self.cold_starts,
            p50_us: percentile(50),
            p99_us: percentile(99),
            billed_by_memory: self.billed_by_memory,
            max_memory_bytes: self.max_memory_bytes,
            latest_memory_mb: self.latest.map_or(0, |(_, _, mb)| mb),
        }
    }
}

/// The aggregates of records grouped by `by` (`None`: one [`Group::Total`] aggregate, none for
/// no records), sorted by group: what a store's usage query must return for the same records.
pub fn aggregate<'a>(
    records: impl IntoIterator<Item = &'a Activation>,
    by: Option<Grouping>,
) -> Vec<Aggregate> {
    let mut groups: BTreeMap<Group, Acc> = BTreeMap::new();
    for a in records {
        groups.entry(Group::of(a, by)).or_default().add(a);
    }
    groups
        .into_iter()
        .map(|(group, acc)| acc.into_aggregate(group))
        .collect()
}

/// Usage rows of aggregates, sorted by key.
pub fn rows(aggregates: &[Aggregate], prices: &Prices) -> Vec<UsageRow> {
    let mut rows: Vec<UsageRow> = aggregates.iter().map(|a| a.row(prices)).collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    rows
}

/// The `total` row of the (at most one) [`Group::Total`] aggregate: all zeros for none.
pub fn total_row(aggregates: &[Aggregate], prices: &Prices) -> UsageRow {
    aggregates
        .first()
        .cloned()
        .unwrap_or_else(|| Aggregate::empty(Group::Total))
        .row(prices)
}

/// Right-sizing advice of per-function aggregates, sorted by namespace then function.
pub fn advice(aggregates: &[Aggregate], prices: &Prices) -> Vec<Advice> {
    let mut advice: Vec<Advice> = aggregates.iter().filter_map(|a| a.advice(prices)).collect();
    advice.sort_by(|a, b| (&a.namespace, &a.function).cmp(&(&b.namespace, &b.function)));
    advice
}

/// Usage and cost per group, sorted by key. Groups with only throttled records still get a row.
pub fn usage<'a>(
    records: impl IntoIterator<Item = &'a Activation>,
    by: Grouping,
    prices: &Prices,
) -> Vec<UsageRow> {
    rows(&aggregate(records, Some(by)), prices)
}

/// One row over all records, keyed `total` (all zeros for no records).
pub fn total<'a>(records: impl IntoIterator<Item = &'a Activation>, prices: &Prices) -> UsageRow {
    total_row(&aggregate(records, None), prices)
}

/// A memory right-sizing suggestion for one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub namespace: String,
    pub function: String,
    /// The configured memory of the most recent record (by start time).
    pub memory_mb: u32,
    /// Peak memory over the records, rounded up to the MB; `None` when no record measured it.
    pub max_used_mb: Option<u32>,
    /// See [`recommend_memory_mb`]; the configured memory when nothing was measured.
    pub recommended_mb: u32,
    /// What the records cost (each at its own memory size).
    pub cost: f64,
    /// What the same records would have cost at `recommended_mb` with the same billed ms; equal
    /// to `cost` when nothing was measured.
    pub recommended_cost: f64,
    /// `cost - recommended_cost`. Never negative unless older records ran at less memory than
    /// the recommendation (the function's memory was raised since).
    pub savings: f64,
}

/// The memory to suggest for a peak use of `max_used_mb`: × [`HEADROOM`], rounded up to a
/// multiple of [`MEMORY_STEP_MB`], clamped to [`MIN_MEMORY_MB`]..=[`MAX_MEMORY_MB`], and never
/// above `configured_mb` (right-sizing only ever shrinks).
pub fn recommend_memory_mb(max_used_mb: u32, configured_mb: u32) -> u32 {
    // The tolerance keeps float error from pushing an exact product (160 × 1.2 = 192) up a MB.
    let needed = (f64::from(max_used_mb) * HEADROOM - 1e-9).ceil().max(0.0) as u64;
    let step = u64::from(MEMORY_STEP_MB);
    let stepped = needed.div_ceil(step) * step;
    let clamped = stepped.clamp(u64::from(MIN_MEMORY_MB), u64::from(MAX_MEMORY_MB)) as u32;
    clamped.min(configured_mb)
}

/// Right-sizing advice per (namespace, function), sorted by namespace then function.
///
/// Peak memory is taken over all records (throttled ones never measure any); costs exclude
/// throttled records as in [`usage`]. Recomputing at the recommended size keeps each record's
/// billed ms: see the module documentation for why this is only an estimate.
pub fn rightsizing<'a>(
    records: impl IntoIterator<Item = &'a Activation>,
    prices: &Prices,
) -> Vec<Advice> {
    advice(&aggregate(records, Some(Grouping::Function)), prices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::billed_ms;

    /// A successful warm invocation of `duration_us` at `memory_mb`, billed as the invoker does.
    fn rec(function: &str, duration_us: u64, memory_mb: u32) -> Activation {
        Activation {
            id: "id".into(),
            namespace: "default".into(),
            function: function.into(),
            revision: 1,
            trigger: "api".into(),
            start_ms: 1_709_251_200_000,
            end_ms: 1_709_251_200_000,
            duration_us,
            billed_ms: billed_ms(duration_us),
            memory_mb,
            max_memory_bytes: None,
            cold: false,
            cold_reason: None,
            init_us: None,
            init: None,
            status: ActivationStatus::Success,
            error_type: None,
            error_message: None,
            logs: String::new(),
            node: String::new(),
            parent: None,
            steps: Vec::new(),
            trace: None,
        }
    }

    fn with_status(mut a: Activation, status: ActivationStatus) -> Activation {
        a.status = status;
        a
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[track_caller]
    fn assert_close(a: f64, b: f64) {
        assert!(close(a, b), "{a} != {b}");
    }

    #[test]
    fn default_prices_are_lambda_x86_list_prices() {
        let p = Prices::default();
        assert_close(p.per_request * 1_000_000.0, 0.20);
        assert_eq!(p.per_gb_second, 0.000_016_666_7);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Prices>(&json).unwrap(), p);
        let partial: Prices = serde_json::from_str(r#"{"per_gb_second": 0.0000133334}"#).unwrap();
        assert_eq!(partial.per_request, p.per_request);
        assert_eq!(partial.per_gb_second, 0.000_013_333_4);
    }

    #[test]
    fn a_million_100ms_invocations_at_128mb() {
        // 1e6 × 0.1 s × 0.125 GB = 12 500 GB-s; $0.20 + 12 500 × $0.0000166667 = $0.40833375.
        let a = rec("f", 100_000, 128);
        let row = total(std::iter::repeat_n(&a, 1_000_000), &Prices::default());
        assert_eq!(row.key, "total");
        assert_eq!(row.invocations, 1_000_000);
        assert_eq!(row.billed_ms, 100_000_000);
        assert_eq!(row.gb_seconds, 12_500.0);
        assert_close(row.cost, 0.408_333_75);
        assert_eq!((row.p50_ms, row.p99_ms), (100.0, 100.0));
    }

    #[test]
    fn gb_seconds_use_each_records_memory_and_billed_ms() {
        // 201.67 ms at 2048 MB bills 202 ms: 0.404 GB-s; 1 s at 1024 MB: 1 GB-s; 1 µs at 128 MB
        // bills 1 ms: 0.000125 GB-s.
        let records = [
            rec("a", 201_670, 2048),
            rec("a", 1_000_000, 1024),
            rec("a", 1, 128),
        ];
        let prices = Prices {
            per_request: 0.5,
            per_gb_second: 2.0,
            ..Prices::default()
        };
        let row = total(&records, &prices);
        assert_eq!(row.billed_ms, 202 + 1000 + 1);
        assert_close(row.gb_seconds, 1.404_125);
        assert_close(row.cost, 3.0 * 0.5 + 1.404_125 * 2.0);
    }

    #[test]
    fn zero_billed_ms_costs_only_the_request() {
        let mut a = with_status(rec("f", 0, 1024), ActivationStatus::PlatformError);
        a.billed_ms = 0;
        let row = total([&a], &Prices::default());
        assert_eq!((row.invocations, row.errors, row.billed_ms), (1, 1, 0));
        assert_eq!(row.gb_seconds, 0.0);
        assert_eq!(row.cost, Prices::default().per_request);
    }

    #[test]
    fn throttled_records_are_never_billed() {
        let mut throttled = with_status(rec("f", 5_000_000, 1024), ActivationStatus::Throttled);
        throttled.billed_ms = 5000; // even if a record claims billed time
        let ok = rec("f", 100_000, 1024);
        let prices = Prices::default();

        let only = total([&throttled], &prices);
        assert_eq!(
            (
                only.invocations,
                only.errors,
                only.throttles,
                only.billed_ms
            ),
            (0, 0, 1, 0)
        );
        assert_eq!((only.gb_seconds, only.cost), (0.0, 0.0));
        assert_eq!((only.p50_ms, only.p99_ms), (0.0, 0.0));

        let both = total([&throttled, &ok], &prices);
        assert_eq!(
            (both.invocations, both.throttles, both.billed_ms),
            (1, 1, 100)
        );
        assert_close(both.gb_seconds, 0.1);
        assert_close(both.cost, prices.per_request + 0.1 * prices.per_gb_second);
        assert_eq!(both.p99_ms, 100.0, "throttles are not in the percentiles");
    }

    #[test]
    fn every_status_but_success_and_throttled_is_an_error() {
        let records: Vec<_> = ActivationStatus::ALL
            .into_iter()
            .map(|s| with_status(rec("f", 1000, 128), s))
            .collect();
        let row = total(&records, &Prices::default());
        assert_eq!((row.invocations, row.errors, row.throttles), (6, 5, 1));
    }

    #[test]
    fn cold_starts_are_counted() {
        let mut cold = rec("f", 1000, 128);
        cold.cold = true;
        let row = total([&cold, &rec("f", 1000, 128), &cold], &Prices::default());
        assert_eq!(row.cold_starts, 2);
    }

    #[test]
    fn nearest_rank_percentiles() {
        // The classic example: 15, 20, 35, 40, 50 → p50 is the 3rd (35), p99 the 5th (50).
        let records: Vec<_> = [40_000, 15_000, 50_000, 35_000, 20_000]
            .into_iter()
            .map(|us| rec("f", us, 128))
            .collect();
        let row = total(&records, &Prices::default());
        assert_eq!((row.p50_ms, row.p99_ms), (35.0, 50.0));

        // 1..=100 ms: p50 = 50, p99 = 99. 1..=1000: p99 is the 990th.
        let hundred: Vec<_> = (1..=100).map(|ms| rec("f", ms * 1000, 128)).collect();
        let row = total(&hundred, &Prices::default());
        assert_eq!((row.p50_ms, row.p99_ms), (50.0, 99.0));
        let thousand: Vec<_> = (1..=1000)
            .rev()
            .map(|ms| rec("f", ms * 1000, 128))
            .collect();
        let row = total(&thousand, &Prices::default());
        assert_eq!((row.p50_ms, row.p99_ms), (500.0, 990.0));

        // One sample is every percentile; fractions of a ms are kept.
        let row = total([&rec("f", 1_500, 128)], &Prices::default());
        assert_eq!((row.p50_ms, row.p99_ms), (1.5, 1.5));
        // Two samples: p50 is the first, p99 the second.
        let row = total(
            [&rec("f", 2_000, 128), &rec("f", 1_000, 128)],
            &Prices::default(),
        );
        assert_eq!((row.p50_ms, row.p99_ms), (1.0, 2.0));
    }

    #[test]
    fn grouping_by_day_splits_at_utc_midnight() {
        let midnight = 1_709_251_200_000; // 2024-03-01T00:00:00Z, the day after a leap day
        let mut before = rec("f", 1000, 128);
        before.start_ms = midnight - 1;
        let mut at = rec("f", 1000, 128);
        at.start_ms = midnight;
        let mut later = rec("f", 1000, 128);
        later.start_ms = midnight + 86_400_000 - 1;
        let mut epoch = rec("f", 1000, 128);
        epoch.start_ms = -1;

        let rows = usage(
            [&at, &before, &later, &epoch],
            Grouping::Day,
            &Prices::default(),
        );
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.invocations))
            .collect();
        assert_eq!(
            keys,
            [("1969-12-31", 1), ("2024-02-29", 1), ("2024-03-01", 2)]
        );
    }

    #[test]
    fn grouping_by_function_and_namespace() {
        let mut other = rec("api", 1000, 128);
        other.namespace = "team-b".into();
        let records = [
            rec("zeta", 1000, 128),
            rec("api", 1000, 128),
            other,
            rec("api", 3000, 128),
        ];
        let prices = Prices::default();

        let rows = usage(&records, Grouping::Function, &prices);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.invocations))
            .collect();
        assert_eq!(
            keys,
            [("default/api", 2), ("default/zeta", 1), ("team-b/api", 1)]
        );
        assert_eq!(rows[0].billed_ms, 4);

        let rows = usage(&records, Grouping::Namespace, &prices);
        let keys: Vec<_> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.invocations))
            .collect();
        assert_eq!(keys, [("default", 3), ("team-b", 1)]);

        // The rows add up to the total.
        let sum: f64 = rows.iter().map(|r| r.cost).sum();
        assert_close(sum, total(&records, &prices).cost);
    }

    #[test]
    fn groupings_parse_and_serialize() {
        for g in Grouping::ALL {
            assert_eq!(g.as_str().parse::<Grouping>().unwrap(), g);
            assert_eq!(g.to_string(), g.as_str());
            assert_eq!(
                serde_json::to_string(&g).unwrap(),
                format!("\"{}\"", g.as_str())
            );
        }
        let err = "week".parse::<Grouping>().unwrap_err();
        assert_eq!(
            err,
            "unknown grouping 'week': use one of function, namespace, day"
        );
    }

    #[test]
    fn empty_input() {
        let none: [Activation; 0] = [];
        let prices = Prices::default();
        assert!(usage(&none, Grouping::Function, &prices).is_empty());
        assert!(rightsizing(&none, &prices).is_empty());
        let row = total(&none, &prices);
        assert_eq!(
            row,
            UsageRow {
                key: "total".into(),
                invocations: 0,
                errors: 0,
                throttles: 0,
                cold_starts: 0,
                p50_ms: 0.0,
                p99_ms: 0.0,
                billed_ms: 0,
                gb_seconds: 0.0,
                cost: 0.0,
            }
        );
    }

    #[test]
    fn recommendations_round_up_clamp_and_never_grow() {
        assert_eq!(recommend_memory_mb(0, 1024), 128, "at least the minimum");
        assert_eq!(recommend_memory_mb(81, 2048), 128); // 97.2 → 128
        assert_eq!(recommend_memory_mb(106, 2048), 128); // 127.2 → 128
        assert_eq!(recommend_memory_mb(107, 2048), 192); // 128.4 → 192
        assert_eq!(
            recommend_memory_mb(160, 2048),
            192,
            "exactly 192, no float creep"
        );
        assert_eq!(recommend_memory_mb(161, 2048), 256); // 193.2 → 256
        assert_eq!(
            recommend_memory_mb(500, 512),
            512,
            "640 but never above configured"
        );
        assert_eq!(recommend_memory_mb(600, 600), 600);
        assert_eq!(recommend_memory_mb(9000, 10_240), 10_240); // 10 800 → clamped
        assert_eq!(recommend_memory_mb(u32::MAX, u32::MAX), MAX_MEMORY_MB);
        assert_eq!(
            recommend_memory_mb(10, 100),
            100,
            "below-minimum configs stay"
        );
        for used in 0..12_000 {
            let mb = recommend_memory_mb(used, MAX_MEMORY_MB);
            assert_eq!(mb % MEMORY_STEP_MB, 0);
            assert!((MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&mb));
            assert!(f64::from(mb) >= f64::from(used) * HEADROOM || mb == MAX_MEMORY_MB);
        }
    }

    #[test]
    fn rightsizing_a_function_that_uses_little_memory() {
        let prices = Prices::default();
        // Three 1 s invocations at 1024 MB peaking at 100 MiB + 1 byte → 101 MB → 121.2 → 128.
        let mut records: Vec<_> = (0..3).map(|_| rec("f", 1_000_000, 1024)).collect();
        records[0].max_memory_bytes = Some(50 * MIB);
        records[1].max_memory_bytes = Some(100 * MIB + 1);
        let throttled = with_status(rec("f", 0, 1024), ActivationStatus::Throttled);
        records.push(throttled);

        let advice = rightsizing(&records, &prices);
        assert_eq!(advice.len(), 1);
        let a = &advice[0];
        assert_eq!(
            (a.namespace.as_str(), a.function.as_str()),
            ("default", "f")
        );
        assert_eq!(a.memory_mb, 1024);
        assert_eq!(a.max_used_mb, Some(101));
        assert_eq!(a.recommended_mb, 128);
        // 3 requests; 3 GB-s now, 3 × 1 s × 0.125 GB = 0.375 GB-s at 128 MB.
        assert_close(
            a.cost,
            3.0 * prices.per_request + 3.0 * prices.per_gb_second,
        );
        assert_close(
            a.recommended_cost,
            3.0 * prices.per_request + 0.375 * prices.per_gb_second,
        );
        assert_close(a.savings, 2.625 * prices.per_gb_second);
        assert_close(a.cost, total(&records, &prices).cost);
    }

    #[test]
    fn rightsizing_takes_the_latest_memory_and_never_grows() {
        let prices = Prices::default();
        // Raised from 256 to 512 MB; the latest record comes first in the input.
        let mut new = rec("f", 1_000_000, 512);
        new.start_ms = 2_000;
        new.max_memory_bytes = Some(400 * MIB); // 480 → 512 (equals configured)
        let mut old = rec("f", 1_000_000, 256);
        old.start_ms = 1_000;
        old.max_memory_bytes = Some(250 * MIB);

        let a = &rightsizing([&new, &old], &prices)[0];
        assert_eq!(a.memory_mb, 512);
        assert_eq!(a.max_used_mb, Some(400));
        assert_eq!(a.recommended_mb, 512);
        // Recomputed at 512 MB the older 256 MB record costs more: negative savings.
        assert_close(
            a.cost,
            2.0 * prices.per_request + 0.75 * prices.per_gb_second,
        );
        assert_close(
            a.recommended_cost,
            2.0 * prices.per_request + 1.0 * prices.per_gb_second,
        );
        assert!(a.savings < 0.0);

        // Out of memory: the peak is the limit, the advice keeps the configured size.
        let mut oom = with_status(rec("g", 1_000_000, 1024), ActivationStatus::OutOfMemory);
        oom.max_memory_bytes = Some(1024 * MIB);
        let a = &rightsizing([&oom], &prices)[0];
        assert_eq!((a.recommended_mb, a.savings), (1024, 0.0));
    }

    #[test]
    fn rightsizing_without_measurements_changes_nothing() {
        let prices = Prices::default();
        let mut old = rec("f", 1_000_000, 128);
        old.start_ms = 0;
        let records = [old, rec("f", 1_000_000, 2048)];
        let a = &rightsizing(&records, &prices)[0];
        assert_eq!(
            (a.memory_mb, a.max_used_mb, a.recommended_mb),
            (2048, None, 2048)
        );
        assert_eq!(a.recommended_cost, a.cost);
        assert_eq!(a.savings, 0.0);
    }

    #[test]
    fn rightsizing_is_per_namespace_and_function() {
        let mut b = rec("f", 1000, 256);
        b.namespace = "b".into();
        let mut a = rec("f", 1000, 512);
        a.namespace = "a".into();
        let advice = rightsizing([&rec("g", 1000, 128), &b, &a], &Prices::default());
        let keys: Vec<_> = advice
            .iter()
            .map(|x| (x.namespace.as_str(), x.function.as_str(), x.memory_mb))
            .collect();
        assert_eq!(
            keys,
            [("a", "f", 512), ("b", "f", 256), ("default", "g", 128)]
        );
    }
}
