//! The activation rollups on SQLite (see `lambent_store::rollups`): written in the transaction
//! that inserts the records, summed by `GROUP BY` over the primary key's time range.

use crate::db_err;
use lambent_core::Activation;
use lambent_store::rollups::{self, HistogramRow, Rollup, RollupQuery};
use lambent_store::StoreError;
use rusqlite::{params, Connection, Row, Transaction};

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE activation_rollups (
    namespace        TEXT NOT NULL,
    resolution_ms    INTEGER NOT NULL,
    start_ms         INTEGER NOT NULL,
    function         TEXT NOT NULL,
    count            INTEGER NOT NULL,
    throttles        INTEGER NOT NULL,
    errors           INTEGER NOT NULL,
    cold             INTEGER NOT NULL,
    duration_us      INTEGER NOT NULL,
    billed_ms        INTEGER NOT NULL,
    mb_ms            INTEGER NOT NULL,
    init_us          INTEGER NOT NULL,
    init_sandbox_us  INTEGER NOT NULL,
    init_runtime_us  INTEGER NOT NULL,
    init_import_us   INTEGER NOT NULL,
    max_memory_bytes INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    PRIMARY KEY (namespace, resolution_ms, start_ms, function)
) WITHOUT ROWID;
CREATE INDEX activation_rollups_by_function
    ON activation_rollups (namespace, resolution_ms, function, start_ms);
CREATE TABLE activation_histogram (
    namespace     TEXT NOT NULL,
    resolution_ms INTEGER NOT NULL,
    start_ms      INTEGER NOT NULL,
    function      TEXT NOT NULL,
    bucket        INTEGER NOT NULL,
    count         INTEGER NOT NULL,
    PRIMARY KEY (namespace, resolution_ms, start_ms, function, bucket)
) WITHOUT ROWID;
CREATE INDEX activation_histogram_by_function
    ON activation_histogram (namespace, resolution_ms, function, start_ms);
"#;

/// The records a data dir had before the rollups, to fold into them in the background
/// ([`backfill`]): every record that starts before the first minute the rollups counted (all
/// of them when the rollups are empty, as right after their own migration).
pub(crate) const BACKFILL_MIGRATION: &str = r#"
CREATE TABLE rollup_backfill (
    id       TEXT PRIMARY KEY,
    start_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX rollup_backfill_by_time ON rollup_backfill (start_ms, id);
INSERT INTO rollup_backfill (id, start_ms)
    SELECT id, start_ms FROM activations
    WHERE start_ms < COALESCE(
        (SELECT MIN(start_ms) FROM activation_rollups WHERE resolution_ms = 60000),
        9223372036854775807);
"#;

/// One backfill step: up to `limit` listed records, oldest first, folded into the rollups
/// and taken off the list in one transaction.
pub(crate) fn backfill(tx: &Transaction<'_>, limit: usize) -> Result<u64, StoreError> {
    const TAKE: &str = "SELECT id FROM rollup_backfill ORDER BY start_ms, id LIMIT ?1";
    let records = {
        let mut stmt = tx
            .prepare_cached(&format!(
                "SELECT {} FROM activations WHERE id IN ({TAKE})",
                crate::ACTIVATION_COLUMNS
            ))
            .map_err(db_err)?;
        let rows = stmt
            .query_map(params![limit as i64], crate::activation_from_row)
            .map_err(db_err)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
    };
    add(tx, &records.iter().collect::<Vec<_>>())?;
    let taken = tx
        .execute(
            &format!("DELETE FROM rollup_backfill WHERE id IN ({TAKE})"),
            params![limit as i64],
        )
        .map_err(db_err)?;
    Ok(taken as u64)
}

/// Adds the records (each new to the table) to the rollups, inside the insert's transaction.
pub(crate) fn add(tx: &Transaction<'_>, records: &[&Activation]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut rollup = tx
        .prepare_cached(
            "INSERT INTO activation_rollups (namespace, resolution_ms, start_ms, function, count, \
             throttles, errors, cold, duration_us, billed_ms, mb_ms, init_us, init_sandbox_us, \
             init_runtime_us, init_import_us, max_memory_bytes, memory_mb) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
             ON CONFLICT DO UPDATE SET count = count + excluded.count, \
             throttles = throttles + excluded.throttles, errors = errors + excluded.errors, \
             cold = cold + excluded.cold, duration_us = duration_us + excluded.duration_us, \
             billed_ms = billed_ms + excluded.billed_ms, mb_ms = mb_ms + excluded.mb_ms, \
             init_us = init_us + excluded.init_us, \
             init_sandbox_us = init_sandbox_us + excluded.init_sandbox_us, \
             init_runtime_us = init_runtime_us + excluded.init_runtime_us, \
             init_import_us = init_import_us + excluded.init_import_us, \
             max_memory_bytes = max(max_memory_bytes, excluded.max_memory_bytes), \
             memory_mb = max(memory_mb, excluded.memory_mb)",
        )
        .map_err(db_err)?;
    let mut bucket = tx
        .prepare_cached(
            "INSERT INTO activation_histogram (namespace, resolution_ms, start_ms, function, \
             bucket, count) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT DO UPDATE SET count = count + excluded.count",
        )
        .map_err(db_err)?;
    for folded in rollups::fold(records.iter().copied()) {
        let (ns, res) = (&folded.namespace, folded.resolution_ms);
        for r in &folded.rollups {
            rollup
                .execute(params![
                    ns,
                    res,
                    r.start_ms,
                    r.function,
                    r.count,
                    r.throttles,
                    r.errors,
                    r.cold,
                    r.duration_us,
                    r.billed_ms,
                    r.mb_ms,
                    r.init_us,
                    r.init_sandbox_us,
                    r.init_runtime_us,
                    r.init_import_us,
                    r.max_memory_bytes,
                    r.memory_mb
                ])
                .map_err(db_err)?;
        }
        for h in &folded.histogram {
            bucket
                .execute(params![ns, res, h.start_ms, h.function, h.bucket, h.count])
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// The `WHERE` clause and arguments of a query: ?1 namespace, ?2 resolution, ?3 since,
/// ?4 until, ?5 step, ?6 function (when one).
fn filter(q: &RollupQuery) -> (String, Vec<rusqlite::types::Value>) {
    let mut args: Vec<rusqlite::types::Value> = vec![
        q.namespace.clone().into(),
        q.resolution_ms().into(),
        q.since_ms.into(),
        q.until_ms.into(),
        q.step_ms.max(1).into(),
    ];
    let mut sql = String::from(
        "WHERE namespace = ?1 AND resolution_ms = ?2 AND start_ms >= ?3 AND start_ms < ?4",
    );
    if let Some(f) = &q.function {
        args.push(f.clone().into());
        sql += " AND function = ?6";
    }
    (sql, args)
}

const STEP: &str = "?3 + ((start_ms - ?3) / ?5) * ?5";

pub(crate) fn query(conn: &Connection, q: &RollupQuery) -> Result<Vec<Rollup>, StoreError> {
    let (filter, args) = filter(q);
    let sql = format!(
        "SELECT function, {STEP} AS step, SUM(count), SUM(throttles), SUM(errors), SUM(cold), \
         SUM(duration_us), SUM(billed_ms), SUM(mb_ms), SUM(init_us), SUM(init_sandbox_us), \
         SUM(init_runtime_us), SUM(init_import_us), MAX(max_memory_bytes), MAX(memory_mb) \
         FROM activation_rollups {filter} GROUP BY function, step ORDER BY function, step"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), rollup_from_row)
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

fn rollup_from_row(row: &Row<'_>) -> rusqlite::Result<Rollup> {
    Ok(Rollup {
        function: row.get(0)?,
        start_ms: row.get(1)?,
        count: row.get(2)?,
        throttles: row.get(3)?,
        errors: row.get(4)?,
        cold: row.get(5)?,
        duration_us: row.get(6)?,
        billed_ms: row.get(7)?,
        mb_ms: row.get(8)?,
        init_us: row.get(9)?,
        init_sandbox_us: row.get(10)?,
        init_runtime_us: row.get(11)?,
        init_import_us: row.get(12)?,
        max_memory_bytes: row.get(13)?,
        memory_mb: row.get(14)?,
    })
}

pub(crate) fn histogram(
    conn: &Connection,
    q: &RollupQuery,
) -> Result<Vec<HistogramRow>, StoreError> {
    let (filter, args) = filter(q);
    let sql = format!(
        "SELECT function, {STEP} AS step, bucket, SUM(count) FROM activation_histogram {filter} \
         GROUP BY function, step, bucket ORDER BY function, step, bucket"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), |r| {
            Ok(HistogramRow {
                function: r.get(0)?,
                start_ms: r.get(1)?,
                bucket: r.get(2)?,
                count: r.get(3)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}
