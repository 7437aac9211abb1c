//! The console's aggregates, computed from the store's activation rollups (never from raw
//! records): a [`Window`] picks the time range and the step of its series, [`series`] turns
//! the summed rows of one function into aligned arrays for the charts, and [`totals`] into the
//! numbers of a table row. Pure logic; the handlers in `lib.rs` fetch the rows.

use lambent_core::metering::{recommend_memory_mb, Prices};
use lambent_store::rollups::{
    percentile_us, HistogramRow, Rollup, RollupQuery, HOUR_MS, MINUTE_MS,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// A time window the pages show: 1 h, 24 h or 7 d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
    Week,
}

impl Window {
    pub fn parse(s: Option<&str>) -> Result<Window, String> {
        match s.unwrap_or("1h") {
            "1h" => Ok(Window::Hour),
            "24h" => Ok(Window::Day),
            "7d" => Ok(Window::Week),
            other => Err(format!("unknown window '{other}': use 1h, 24h or 7d")),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "1h",
            Window::Day => "24h",
            Window::Week => "7d",
        }
    }

    /// The intervals the window is read at: (unit they align to, how many units, the step of
    /// a sparkline, the step of a detailed chart).
    fn shape(self) -> (i64, i64, i64, i64) {
        match self {
            Window::Hour => (MINUTE_MS, 60, 2 * MINUTE_MS, MINUTE_MS),
            Window::Day => (HOUR_MS, 24, HOUR_MS, 15 * MINUTE_MS),
            Window::Week => (HOUR_MS, 168, 6 * HOUR_MS, HOUR_MS),
        }
    }

    /// The query of this window ending at `now_ms` (the current, partial unit included), for
    /// sparklines (`detailed` false) or a function's charts.
    pub fn query(
        self,
        namespace: &str,
        function: Option<&str>,
        now_ms: i64,
        detailed: bool,
    ) -> RollupQuery {
        let (unit, units, spark, detail) = self.shape();
        let until_ms = now_ms.div_euclid(unit) * unit + unit;
        RollupQuery {
            namespace: namespace.to_string(),
            function: function.map(str::to_string),
            since_ms: until_ms - units * unit,
            until_ms,
            step_ms: if detailed { detail } else { spark },
        }
    }
}

/// The start of every step of a query (ms).
pub fn grid(q: &RollupQuery) -> Vec<i64> {
    (q.since_ms..q.until_ms)
        .step_by(q.step_ms as usize)
        .collect()
}

/// A function's numbers over a whole window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    pub cold: u64,
    /// Cold starts per invocation (0 when none ran).
    pub cold_share: f64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub gb_seconds: f64,
    pub cost: f64,
    /// Peak measured memory (MB) and the configured memory of the records.
    pub max_memory_used_mb: Option<f64>,
    pub memory_mb: u32,
}

fn ms(us: Option<u64>) -> Option<f64> {
    us.map(|us| us as f64 / 1000.0)
}

fn mb(bytes: u64) -> Option<f64> {
    (bytes > 0).then(|| bytes as f64 / (1024.0 * 1024.0))
}

/// The totals of one function's rows and histogram rows (any steps).
pub fn totals(rows: &[&Rollup], histogram: &[&HistogramRow], prices: &Prices) -> Totals {
    let mut sum = Rollup::default();
    rows.iter().for_each(|r| sum.add(r));
    let mut buckets: BTreeMap<i32, u64> = BTreeMap::new();
    for h in histogram {
        *buckets.entry(h.bucket).or_default() += h.count;
    }
    let buckets: Vec<(i32, u64)> = buckets.into_iter().collect();
    let invocations = sum.invocations();
    Totals {
        invocations,
        errors: sum.errors,
        throttles: sum.throttles,
        cold: sum.cold,
        cold_share: if invocations == 0 {
            0.0
        } else {
            sum.cold as f64 / invocations as f64
        },
        p50_ms: ms(percentile_us(&buckets, 50.0)),
        p90_ms: ms(percentile_us(&buckets, 90.0)),
        p99_ms: ms(percentile_us(&buckets, 99.0)),
        gb_seconds: sum.gb_seconds(),
        cost: prices.cost(invocations, sum.gb_seconds()),
        max_memory_used_mb: mb(sum.max_memory_bytes),
        memory_mb: sum.memory_mb,
    }
}

/// One function's chart series, each aligned to the query's [`grid`] (a step with no record
/// is 0 for counts and `null` for durations and memory).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// Step starts in seconds since the epoch (what uPlot's x axis takes).
    pub times: Vec<i64>,
    pub invocations: Vec<u64>,
    pub errors: Vec<u64>,
    pub throttles: Vec<u64>,
    pub cold: Vec<u64>,
    pub p50_ms: Vec<Option<f64>>,
    pub p90_ms: Vec<Option<f64>>,
    pub p99_ms: Vec<Option<f64>>,
    /// Mean init phases of the step's cold starts (ms).
    pub init_sandbox_ms: Vec<Option<f64>>,
    pub init_runtime_ms: Vec<Option<f64>>,
    pub init_import_ms: Vec<Option<f64>>,
    /// The rest of the mean init time: the platform's own steps around the phases.
    pub init_other_ms: Vec<Option<f64>>,
    pub memory_used_mb: Vec<Option<f64>>,
    pub memory_configured_mb: Vec<Option<f64>>,
    pub cost: Vec<f64>,
    /// Mean concurrent executions over the step: the time sandboxes spent on the step's
    /// records (init and handler) divided by the step's length (Little's law; a record
    /// counts in the step it started in).
    pub concurrency: Vec<f64>,
}

/// Mean concurrent executions of a step's rollup (see [`Series::concurrency`]).
pub fn concurrency(r: &Rollup, step_ms: i64) -> f64 {
    if step_ms <= 0 {
        return 0.0;
    }
    (r.duration_us + r.init_us) as f64 / (step_ms as f64 * 1000.0)
}

/// The series of one function's rows and histogram rows over `grid` (steps of `step_ms`).
pub fn series(
    grid: &[i64],
    step_ms: i64,
    rows: &[&Rollup],
    histogram: &[&HistogramRow],
    prices: &Prices,
) -> Series {
    let at: BTreeMap<i64, &Rollup> = rows.iter().map(|r| (r.start_ms, *r)).collect();
    let mut hist: BTreeMap<i64, Vec<(i32, u64)>> = BTreeMap::new();
    for h in histogram {
        hist.entry(h.start_ms)
            .or_default()
            .push((h.bucket, h.count));
    }
    let mut s = Series::default();
    let empty = Rollup::default();
    for t in grid {
        let r = at.get(t).copied().unwrap_or(&empty);
        let h = hist.get(t).map(Vec::as_slice).unwrap_or(&[]);
        s.times.push(t / 1000);
        s.invocations.push(r.invocations());
        s.errors.push(r.errors);
        s.throttles.push(r.throttles);
        s.cold.push(r.cold);
        s.p50_ms.push(ms(percentile_us(h, 50.0)));
        s.p90_ms.push(ms(percentile_us(h, 90.0)));
        s.p99_ms.push(ms(percentile_us(h, 99.0)));
        let mean = |sum: u64| (r.cold > 0).then(|| sum as f64 / r.cold as f64 / 1000.0);
        s.init_sandbox_ms.push(mean(r.init_sandbox_us));
        s.init_runtime_ms.push(mean(r.init_runtime_us));
        s.init_import_ms.push(mean(r.init_import_us));
        let phases = r.init_sandbox_us + r.init_runtime_us + r.init_import_us;
        s.init_other_ms.push(mean(r.init_us.saturating_sub(phases)));
        s.memory_used_mb.push(mb(r.max_memory_bytes));
        s.memory_configured_mb
            .push((r.memory_mb > 0).then_some(f64::from(r.memory_mb)));
        s.cost.push(prices.cost(r.invocations(), r.gb_seconds()));
        s.concurrency.push(concurrency(r, step_ms));
    }
    s
}

/// Memory right-sizing from a window's totals: the smallest size that holds the peak with
/// headroom (`lambent_core::metering`'s rule), and what the window would have cost at it
/// (same billed durations: an estimate, see that module).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub memory_mb: u32,
    pub max_used_mb: Option<f64>,
    pub recommended_mb: u32,
    pub cost: f64,
    pub recommended_cost: f64,
    pub savings: f64,
}

pub fn advice(rows: &[&Rollup], configured_mb: u32, prices: &Prices) -> Advice {
    let mut sum = Rollup::default();
    rows.iter().for_each(|r| sum.add(r));
    let cost = prices.cost(sum.invocations(), sum.gb_seconds());
    let used = (sum.max_memory_bytes > 0).then(|| sum.max_memory_bytes.div_ceil(1 << 20) as u32);
    let recommended_mb = used.map_or(configured_mb, |u| recommend_memory_mb(u, configured_mb));
    let gb_s = sum.billed_ms as f64 / 1000.0 * f64::from(recommended_mb) / 1024.0;
    let recommended_cost = prices.cost(sum.invocations(), gb_s);
    Advice {
        memory_mb: configured_mb,
        max_used_mb: mb(sum.max_memory_bytes),
        recommended_mb,
        cost,
        recommended_cost,
        savings: cost - recommended_cost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(start_ms: i64, count: u64, cold: u64) -> Rollup {
        Rollup {
            function: "f".into(),
            start_ms,
            count,
            cold,
            duration_us: 100_000 * count,
            billed_ms: 100 * count,
            mb_ms: 100 * count * 512,
            init_us: cold * 10_000,
            init_sandbox_us: cold * 2_000,
            init_runtime_us: cold * 3_000,
            init_import_us: cold * 4_000,
            max_memory_bytes: 100 << 20,
            memory_mb: 512,
            ..Default::default()
        }
    }

    #[test]
    fn windows_end_with_the_current_unit_and_align_their_steps() {
        let now = 10 * HOUR_MS + 30 * MINUTE_MS + 5;
        let q = Window::Hour.query("n", None, now, false);
        assert_eq!(q.until_ms, 10 * HOUR_MS + 31 * MINUTE_MS);
        assert_eq!(grid(&q).len(), 30);
        let q = Window::Week.query("n", Some("f"), now, false);
        assert_eq!((q.until_ms, q.resolution_ms()), (11 * HOUR_MS, HOUR_MS));
        assert_eq!(grid(&q).len(), 28);
        assert_eq!(grid(&Window::Day.query("n", None, now, true)).len(), 96);
        assert!(Window::parse(Some("2h")).is_err());
    }

    #[test]
    fn series_fill_empty_steps_and_average_init_phases_per_cold_start() {
        let q = Window::Hour.query("n", None, 60 * MINUTE_MS - 1, true);
        let g = grid(&q);
        let rows = [row(g[1], 4, 2)];
        let s = series(
            &g,
            q.step_ms,
            &rows.iter().collect::<Vec<_>>(),
            &[],
            &Prices::default(),
        );
        assert_eq!(s.invocations[..3], [0, 4, 0]);
        assert_eq!(s.init_sandbox_ms[1], Some(2.0));
        assert_eq!(s.init_other_ms[1], Some(1.0));
        assert_eq!(s.init_import_ms[0], None);
        assert_eq!(s.times[1], g[1] / 1000);
        // 4 × (100 ms handler) + 2 × 10 ms init over a 60 s step.
        let busy_us = 4.0 * 100_000.0 + 2.0 * 10_000.0;
        assert!((s.concurrency[1] - busy_us / 60_000_000.0).abs() < 1e-12);
        assert_eq!(s.concurrency[0], 0.0);
    }

    #[test]
    fn totals_and_advice_follow_the_billing_rules() {
        let rows = [row(0, 4, 2), row(60_000, 6, 0)];
        let refs: Vec<_> = rows.iter().collect();
        let prices = Prices::default();
        let t = totals(&refs, &[], &prices);
        assert_eq!((t.invocations, t.cold), (10, 2));
        assert!((t.cold_share - 0.2).abs() < 1e-9);
        let gb_s = 1000.0 / 1000.0 * 512.0 / 1024.0;
        assert!((t.cost - prices.cost(10, gb_s)).abs() < 1e-12);
        let a = advice(&refs, 512, &prices);
        assert_eq!(a.recommended_mb, 128);
        assert!(a.savings > 0.0);
    }
}
