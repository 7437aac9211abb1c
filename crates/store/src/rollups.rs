//! Rollups of activation records: per function, per minute and per hour, the counts and sums a
//! dashboard needs (invocations, errors, throttles, cold starts and their init phases, billed
//! duration × memory for cost, peak memory) and a log-scale histogram of durations for
//! percentiles. Every backend writes them in the transaction that inserts the records, counting
//! each record once (a batch retried after an unknown commit adds nothing), so a query over a
//! week reads a few thousand rows instead of every record.
//!
//! This module is the pure part: folding records into rows ([`fold`]), the histogram's buckets
//! ([`bucket_of`], [`bucket_value_us`]) and percentiles over them ([`percentile_us`]). The
//! backends store the rows and sum them by [`RollupQuery`].

use lambent_core::{Activation, ActivationStatus};
use serde::Serialize;
use std::collections::BTreeMap;

/// One minute, in ms.
pub const MINUTE_MS: i64 = 60_000;
/// One hour, in ms.
pub const HOUR_MS: i64 = 3_600_000;
/// One day (UTC), in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// The resolutions rows are kept at: every record is counted in one row of each.
pub const RESOLUTIONS_MS: [i64; 3] = [MINUTE_MS, HOUR_MS, DAY_MS];

/// Ratio between consecutive histogram bucket bounds: a percentile read from the histogram is
/// within ±5 % of the true value.
pub const BUCKET_RATIO: f64 = 1.1;

/// The counts and sums of the records of one function in one interval (a stored row at one
/// resolution, or the sum of many in a query's step).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rollup {
    pub function: String,
    /// Start of the interval (ms since the epoch).
    pub start_ms: i64,
    /// Every record, throttled ones included.
    pub count: u64,
    pub throttles: u64,
    /// Records neither successful nor throttled.
    pub errors: u64,
    pub cold: u64,
    /// Sum of handler durations of the records that ran (not throttled).
    pub duration_us: u64,
    /// Sum of billed ms of the records that ran.
    pub billed_ms: u64,
    /// Sum of billed ms × memory MB of the records that ran (GB-s = this / 1000 / 1024).
    pub mb_ms: u64,
    /// Sums of the cold starts' init time and phases.
    pub init_us: u64,
    pub init_sandbox_us: u64,
    pub init_runtime_us: u64,
    pub init_import_us: u64,
    /// Peak memory measured in any record (bytes).
    pub max_memory_bytes: u64,
    /// Largest configured memory of any record (MB).
    pub memory_mb: u32,
}

impl Rollup {
    /// Records that ran (every record but the throttled ones): Lambda's `Invocations`.
    pub fn invocations(&self) -> u64 {
        self.count - self.throttles
    }

    /// Adds another interval's counts into this one.
    pub fn add(&mut self, o: &Rollup) {
        self.count += o.count;
        self.throttles += o.throttles;
        self.errors += o.errors;
        self.cold += o.cold;
        self.duration_us += o.duration_us;
        self.billed_ms += o.billed_ms;
        self.mb_ms += o.mb_ms;
        self.init_us += o.init_us;
        self.init_sandbox_us += o.init_sandbox_us;
        self.init_runtime_us += o.init_runtime_us;
        self.init_import_us += o.init_import_us;
        self.max_memory_bytes = self.max_memory_bytes.max(o.max_memory_bytes);
        self.memory_mb = self.memory_mb.max(o.memory_mb);
    }

    /// GB-seconds billed.
    pub fn gb_seconds(&self) -> f64 {
        self.mb_ms as f64 / 1000.0 / 1024.0
    }

    fn add_record(&mut self, a: &Activation) {
        self.count += 1;
        self.cold += u64::from(a.cold);
        self.max_memory_bytes = self.max_memory_bytes.max(a.max_memory_bytes.unwrap_or(0));
        self.memory_mb = self.memory_mb.max(a.memory_mb);
        if a.status == ActivationStatus::Throttled {
            self.throttles += 1;
            return;
        }
        if a.status != ActivationStatus::Success {
            self.errors += 1;
        }
        self.duration_us += a.duration_us;
        self.billed_ms += a.billed_ms;
        self.mb_ms += a.billed_ms * u64::from(a.memory_mb);
        if a.cold {
            self.init_us += a.init_us.unwrap_or(0);
            if let Some(init) = &a.init {
                self.init_sandbox_us += init.sandbox_us;
                self.init_runtime_us += init.runtime_us;
                self.init_import_us += init.import_us.unwrap_or(0);
            }
        }
    }
}

/// How many records of one function, in one interval, fell into one duration bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistogramRow {
    pub function: String,
    pub start_ms: i64,
    pub bucket: i32,
    pub count: u64,
}

/// What a batch of records adds to the stored rollups of one namespace, at one resolution.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Folded {
    pub namespace: String,
    pub resolution_ms: i64,
    pub rollups: Vec<Rollup>,
    pub histogram: Vec<HistogramRow>,
}

/// Folds records into rows at every resolution, one [`Folded`] per (namespace, resolution).
/// Throttled records count in `count`/`throttles` only, never in the duration histogram.
pub fn fold<'a>(records: impl IntoIterator<Item = &'a Activation>) -> Vec<Folded> {
    type Key = (String, i64);
    let mut rollups: BTreeMap<Key, BTreeMap<(String, i64), Rollup>> = BTreeMap::new();
    let mut histograms: BTreeMap<Key, BTreeMap<(String, i64, i32), u64>> = BTreeMap::new();
    for a in records {
        for res in RESOLUTIONS_MS {
            let start = a.start_ms.div_euclid(res) * res;
            let key = (a.namespace.clone(), res);
            rollups
                .entry(key.clone())
                .or_default()
                .entry((a.function.clone(), start))
                .or_insert_with(|| Rollup {
                    function: a.function.clone(),
                    start_ms: start,
                    ..Default::default()
                })
                .add_record(a);
            if a.status != ActivationStatus::Throttled {
                *histograms
                    .entry(key)
                    .or_default()
                    .entry((a.function.clone(), start, bucket_of(a.duration_us)))
                    .or_default() += 1;
            }
        }
    }
    rollups
        .into_iter()
        .map(|((namespace, resolution_ms), rows)| {
            let histogram = histograms
                .remove(&(namespace.clone(), resolution_ms))
                .unwrap_or_default()
                .into_iter()
                .map(|((function, start_ms, bucket), count)| HistogramRow {
                    function,
                    start_ms,
                    bucket,
                    count,
                })
                .collect();
            Folded {
                namespace,
                resolution_ms,
                rollups: rows.into_values().collect(),
                histogram,
            }
        })
        .collect()
}

/// The histogram bucket of a duration: the smallest `b` with `BUCKET_RATIO^b >= us` (0 for
/// durations under 1 µs).
pub fn bucket_of(us: u64) -> i32 {
    if us <= 1 {
        return 0;
    }
    let b = ((us as f64).ln() / BUCKET_RATIO.ln()).ceil() as i32;
    // Float rounding at exact powers: step back if the bucket below still holds `us`.
    if b > 0 && BUCKET_RATIO.powi(b - 1) >= us as f64 {
        b - 1
    } else {
        b
    }
}

/// The value a bucket stands for: the geometric middle of its bounds, in µs.
pub fn bucket_value_us(bucket: i32) -> u64 {
    if bucket <= 0 {
        return 1;
    }
    (BUCKET_RATIO.powi(bucket) / BUCKET_RATIO.sqrt()).round() as u64
}

/// The `p`-th percentile (0 < p ≤ 100) of a histogram given as (bucket, count) pairs in any
/// order, in µs; `None` when it is empty.
pub fn percentile_us(histogram: &[(i32, u64)], p: f64) -> Option<u64> {
    let mut sorted = histogram.to_vec();
    sorted.sort_unstable();
    let total: u64 = sorted.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (bucket, count) in sorted {
        seen += count;
        if seen >= rank {
            return Some(bucket_value_us(bucket));
        }
    }
    None
}

/// Which rows to sum: one namespace (one function, or all), the intervals in `[since_ms,
/// until_ms)`, summed per `step_ms` from `since_ms` on. The backend reads the coarsest
/// resolution that divides both `since_ms` and `step_ms` ([`RollupQuery::resolution_ms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupQuery {
    pub namespace: String,
    pub function: Option<String>,
    pub since_ms: i64,
    pub until_ms: i64,
    pub step_ms: i64,
}

impl RollupQuery {
    /// The stored resolution this query reads.
    pub fn resolution_ms(&self) -> i64 {
        RESOLUTIONS_MS
            .into_iter()
            .rev()
            .find(|r| self.since_ms % r == 0 && self.step_ms % r == 0)
            .unwrap_or(MINUTE_MS)
    }

    /// The same range as one step per piece, cut at day boundaries so that the whole days in
    /// the middle read day rows and only the ends read finer ones (for totals over a long
    /// window; the pieces' rows add up to the range's). `since_ms` and `until_ms` must be
    /// aligned to a stored resolution.
    pub fn pieces(&self) -> Vec<RollupQuery> {
        let first_day = self.since_ms.div_euclid(DAY_MS) * DAY_MS;
        let first_day = if first_day < self.since_ms {
            first_day + DAY_MS
        } else {
            first_day
        };
        let last_day = self.until_ms.div_euclid(DAY_MS) * DAY_MS;
        let cuts = if first_day < last_day {
            vec![self.since_ms, first_day, last_day, self.until_ms]
        } else {
            vec![self.since_ms, self.until_ms]
        };
        cuts.windows(2)
            .filter(|w| w[0] < w[1])
            .map(|w| RollupQuery {
                since_ms: w[0],
                until_ms: w[1],
                step_ms: w[1] - w[0],
                ..self.clone()
            })
            .collect()
    }

    /// The start of the step an interval starting at `start_ms` is summed into.
    pub fn step_of(&self, start_ms: i64) -> i64 {
        self.since_ms + (start_ms - self.since_ms).div_euclid(self.step_ms) * self.step_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_values_within_the_ratio() {
        for us in [1u64, 2, 9, 10, 11, 999, 1000, 1001, 123_456, 900_000_000] {
            let b = bucket_of(us);
            assert!(BUCKET_RATIO.powi(b) >= us as f64, "{us} above bucket {b}");
            assert!(
                b == 0 || BUCKET_RATIO.powi(b - 1) < us as f64,
                "{us} below {b}"
            );
            let v = bucket_value_us(b) as f64;
            assert!(
                (v / us as f64 - 1.0).abs() <= 0.06 || us < 10,
                "{us} read as {v}"
            );
        }
    }

    #[test]
    fn percentiles_rank_by_count() {
        let h: Vec<(i32, u64)> = vec![(bucket_of(1000), 98), (bucket_of(50_000), 2)];
        let p50 = percentile_us(&h, 50.0).unwrap();
        let p99 = percentile_us(&h, 99.0).unwrap();
        assert!((950..=1050).contains(&p50), "{p50}");
        assert!((47_500..=52_500).contains(&p99), "{p99}");
        assert_eq!(percentile_us(&[], 50.0), None);
    }

    #[test]
    fn the_coarsest_resolution_that_divides_is_read() {
        let q = |since_ms, step_ms| RollupQuery {
            namespace: "n".into(),
            function: None,
            since_ms,
            until_ms: since_ms + 7 * 24 * HOUR_MS,
            step_ms,
        };
        assert_eq!(q(10 * HOUR_MS, 6 * HOUR_MS).resolution_ms(), HOUR_MS);
        assert_eq!(
            q(10 * HOUR_MS + MINUTE_MS, HOUR_MS).resolution_ms(),
            MINUTE_MS
        );
        assert_eq!(q(0, 2 * MINUTE_MS).resolution_ms(), MINUTE_MS);
        assert_eq!(q(0, 2 * MINUTE_MS).step_of(5 * MINUTE_MS), 4 * MINUTE_MS);
    }

    #[test]
    fn long_ranges_read_whole_days_in_the_middle() {
        let q = RollupQuery {
            namespace: "n".into(),
            function: None,
            since_ms: 10 * DAY_MS + 5 * HOUR_MS,
            until_ms: 17 * DAY_MS + 5 * HOUR_MS,
            step_ms: HOUR_MS,
        };
        let pieces: Vec<_> = q
            .pieces()
            .iter()
            .map(|p| (p.since_ms, p.until_ms, p.resolution_ms()))
            .collect();
        assert_eq!(
            pieces,
            [
                (10 * DAY_MS + 5 * HOUR_MS, 11 * DAY_MS, HOUR_MS),
                (11 * DAY_MS, 17 * DAY_MS, DAY_MS),
                (17 * DAY_MS, 17 * DAY_MS + 5 * HOUR_MS, HOUR_MS),
            ]
        );
        let short = RollupQuery {
            since_ms: 10 * DAY_MS + MINUTE_MS,
            until_ms: 10 * DAY_MS + HOUR_MS,
            ..q
        };
        let pieces = short.pieces();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].resolution_ms(), MINUTE_MS);
    }
}
