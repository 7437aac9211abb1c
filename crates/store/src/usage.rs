//! Usage summed where the activation records are (`GET /v1/usage`): one SQL statement, the
//! same on SQLite and PostgreSQL ([`sql`]), sums a namespace's records per group into a few
//! raw rows ([`RawRow`]) that [`assemble`] turns into the
//! [`Aggregate`](lambent_core::metering::Aggregate)s the pure metering derives rows, totals
//! and right-sizing from. The answer is exactly what
//! [`metering::aggregate`](lambent_core::metering::aggregate) gives over the same records
//! (the contract test checks it), nearest-rank percentiles included, without carrying every
//! record out of the database.
//!
//! It reads the records, not the [`rollups`](crate::rollups): the rollups' histogram gives
//! percentiles within ±5 %, their rows start on whole minutes (a `since_ms` inside a minute
//! could not be honoured) and they keep the largest memory size rather than the latest, so
//! they could not give the same numbers. Records pruned by the retention are therefore no
//! longer counted here (the rollups, which keep them, are what budgets are charged from).

use lambent_core::metering::{percentile_rank, Aggregate, Group, Grouping, DAY_MS};
use std::collections::BTreeMap;

/// Which records to sum: one namespace's (one function's, or all), from `since_ms` on,
/// grouped by `by` (`None`: one total).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub namespace: String,
    pub function: Option<String>,
    pub since_ms: Option<i64>,
    pub by: Option<Grouping>,
}

/// What one raw row of [`sql`] holds, by its `kind` column.
const SUMS: i64 = 0;
const PERCENTILE: i64 = 1;
const LATEST: i64 = 2;

/// One row of [`sql`]'s answer, read from its eleven columns in order: `kind`, the group's
/// namespace, function and day (NULL when the grouping has none), then seven values `v`
/// whose meaning depends on `kind`:
///
/// - sums of one memory size: memory MB, records, throttles, errors, cold invocations, billed
///   ms of the invocations, peak memory bytes (NULL if none measured);
/// - a percentile sample: its rank among the invocations' sorted durations, their count, the
///   duration µs (a row for the rank of p50 and of p99, one for both when they coincide);
/// - the latest record: its memory MB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRow {
    pub kind: i64,
    pub namespace: Option<String>,
    pub function: Option<String>,
    pub day: Option<i64>,
    pub v: [Option<i64>; 7],
}

/// The statement summing `q`'s records. Its parameters, in order: `$1` the namespace, then
/// the function when `q.function` is set, then `since_ms` when set (SQLite reads `$n` as the
/// n-th parameter too). Filters appear only when set, so both backends use their
/// `(namespace, [function,] start_ms)` indexes.
pub fn sql(q: &UsageQuery) -> String {
    let mut filter = "namespace = $1".to_string();
    let mut n = 1;
    if q.function.is_some() {
        n += 1;
        filter += &format!(" AND function = ${n}");
    }
    if q.since_ms.is_some() {
        n += 1;
        filter += &format!(" AND start_ms >= ${n}");
    }
    let null_text = "CAST(NULL AS TEXT)";
    let null = "CAST(NULL AS BIGINT)";
    // The UTC day: start_ms div DAY_MS rounded down (both backends' `/` truncates).
    let day = format!("(start_ms - ((start_ms % {DAY_MS}) + {DAY_MS}) % {DAY_MS}) / {DAY_MS}");
    let (k_ns, k_fn, k_day) = match q.by {
        None => (null_text, null_text, null),
        Some(Grouping::Namespace) => ("namespace", null_text, null),
        Some(Grouping::Function) => ("namespace", "function", null),
        Some(Grouping::Day) => (null_text, null_text, day.as_str()),
    };
    let keys = "k_ns, k_fn, k_day";
    format!(
        "WITH r AS (SELECT {k_ns} AS k_ns, {k_fn} AS k_fn, {k_day} AS k_day, id, start_ms, \
         status, cold, duration_us, billed_ms, memory_mb, max_memory_bytes \
         FROM activations WHERE {filter}) \
         SELECT CAST({SUMS} AS BIGINT) AS kind, {keys}, memory_mb, COUNT(*), \
         CAST(SUM(CASE WHEN status = 'throttled' THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status NOT IN ('throttled', 'success') THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status <> 'throttled' AND cold THEN 1 ELSE 0 END) AS BIGINT), \
         CAST(SUM(CASE WHEN status <> 'throttled' THEN billed_ms ELSE 0 END) AS BIGINT), \
         MAX(max_memory_bytes) \
         FROM r GROUP BY {keys}, memory_mb \
         UNION ALL \
         SELECT CAST({PERCENTILE} AS BIGINT), {keys}, rn, n, duration_us, {null}, {null}, {null}, \
         {null} FROM (SELECT {keys}, duration_us, \
         ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY duration_us) AS rn, \
         COUNT(*) OVER (PARTITION BY {keys}) AS n \
         FROM r WHERE status <> 'throttled') p \
         WHERE rn = (n * 50 + 99) / 100 OR rn = (n * 99 + 99) / 100 \
         UNION ALL \
         SELECT CAST({LATEST} AS BIGINT), {keys}, memory_mb, {null}, {null}, {null}, {null}, \
         {null}, {null} FROM (SELECT {keys}, memory_mb, \
         ROW_NUMBER() OVER (PARTITION BY {keys} ORDER BY start_ms DESC, id DESC) AS rn \
         FROM r) l WHERE rn = 1"
    )
}

fn group_of(row: &RawRow, by: Option<Grouping>) -> Group {
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    match by {
        None => Group::Total,
        Some(Grouping::Namespace) => Group::Namespace(text(&row.namespace)),
        Some(Grouping::Function) => Group::Function {
            namespace: text(&row.namespace),
            function: text(&row.function),
        },
        Some(Grouping::Day) => Group::Day(row.day.unwrap_or(0)),
    }
}

/// The aggregates of [`sql`]'s rows for grouping `by`, sorted by group (none for no records).
pub fn assemble(rows: Vec<RawRow>, by: Option<Grouping>) -> Vec<Aggregate> {
    let u = |v: Option<i64>| v.map_or(0, |x| u64::try_from(x).unwrap_or(0));
    let mut groups: BTreeMap<Group, Aggregate> = BTreeMap::new();
    for row in rows {
        let group = group_of(&row, by);
        let a = groups
            .entry(group.clone())
            .or_insert_with(|| Aggregate::empty(group));
        let v = row.v;
        match row.kind {
            SUMS => {
                let (records, throttles) = (u(v[1]), u(v[2]));
                a.throttles += throttles;
                a.invocations += records - throttles.min(records);
                a.errors += u(v[3]);
                a.cold_starts += u(v[4]);
                if records > throttles {
                    let mb = u32::try_from(u(v[0])).unwrap_or(u32::MAX);
                    *a.billed_by_memory.entry(mb).or_default() += u(v[5]);
                }
                if let Some(peak) = v[6] {
                    let peak = u(Some(peak));
                    a.max_memory_bytes = Some(a.max_memory_bytes.map_or(peak, |m| m.max(peak)));
                }
            }
            PERCENTILE => {
                let (rank, n, us) = (u(v[0]), u(v[1]), u(v[2]));
                if rank == percentile_rank(50, n) {
                    a.p50_us = us;
                }
                if rank == percentile_rank(99, n) {
                    a.p99_us = us;
                }
            }
            _ => a.latest_memory_mb = u32::try_from(u(v[0])).unwrap_or(u32::MAX),
        }
    }
    groups.into_values().collect()
}
