//! The activation rollups on PostgreSQL (see `lambent_store::rollups`): added in the
//! transaction that inserts the records, counting only the records that insert really added
//! (`RETURNING id`), so a batch retried after an unknown commit, or sent by two nodes, is
//! counted once. Each upsert is one statement over arrays, its rows in key order (two nodes
//! adding to the same rows lock them in the same order).

use crate::PgStore;
use lambent_core::Activation;
use lambent_store::rollups::{self, HistogramRow, Rollup, RollupQuery};
use lambent_store::StoreError;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE activation_rollups (
    namespace        TEXT NOT NULL,
    resolution_ms    BIGINT NOT NULL,
    start_ms         BIGINT NOT NULL,
    function         TEXT NOT NULL,
    count            BIGINT NOT NULL,
    throttles        BIGINT NOT NULL,
    errors           BIGINT NOT NULL,
    cold             BIGINT NOT NULL,
    duration_us      BIGINT NOT NULL,
    billed_ms        BIGINT NOT NULL,
    mb_ms            BIGINT NOT NULL,
    init_us          BIGINT NOT NULL,
    init_sandbox_us  BIGINT NOT NULL,
    init_runtime_us  BIGINT NOT NULL,
    init_import_us   BIGINT NOT NULL,
    max_memory_bytes BIGINT NOT NULL,
    memory_mb        BIGINT NOT NULL,
    PRIMARY KEY (namespace, resolution_ms, start_ms, function)
);
CREATE INDEX activation_rollups_by_function
    ON activation_rollups (namespace, resolution_ms, function, start_ms);
CREATE TABLE activation_histogram (
    namespace     TEXT NOT NULL,
    resolution_ms BIGINT NOT NULL,
    start_ms      BIGINT NOT NULL,
    function      TEXT NOT NULL,
    bucket        INTEGER NOT NULL,
    count         BIGINT NOT NULL,
    PRIMARY KEY (namespace, resolution_ms, start_ms, function, bucket)
);
CREATE INDEX activation_histogram_by_function
    ON activation_histogram (namespace, resolution_ms, function, start_ms);
"#;

/// The rollup columns after the key, in the order of [`Rollup`]'s fields.
const SUMMED: [&str; 11] = [
    "count",
    "throttles",
    "errors",
    "cold",
    "duration_us",
    "billed_ms",
    "mb_ms",
    "init_us",
    "init_sandbox_us",
    "init_runtime_us",
    "init_import_us",
];

fn n(v: u64) -> i64 {
    v as i64
}

/// The records the database had before the rollups, to fold into them in the background
/// ([`backfill`]): every record that starts before the first minute the rollups counted (all
/// of them when the rollups are empty, as right after V9).
pub(crate) const BACKFILL_MIGRATION: &str = r#"
CREATE TABLE rollup_backfill (
    id       TEXT PRIMARY KEY,
    start_ms BIGINT NOT NULL
);
CREATE INDEX rollup_backfill_by_time ON rollup_backfill (start_ms, id);
INSERT INTO rollup_backfill (id, start_ms)
    SELECT id, start_ms FROM activations
    WHERE start_ms < COALESCE(
        (SELECT MIN(start_ms) FROM activation_rollups WHERE resolution_ms = 60000),
        9223372036854775807);
"#;

/// One backfill step: up to `limit` listed records, oldest first, taken off the list (rows
/// another node is taking are skipped) and folded into the rollups in one transaction.
pub(crate) async fn backfill(store: &PgStore, limit: usize) -> Result<u64, StoreError> {
    let mut conn = store.conn().await?;
    let tx = conn.transaction().await.map_err(|e| store.err(e))?;
    let taken: Vec<String> = tx
        .query(
            "DELETE FROM rollup_backfill WHERE id IN (SELECT id FROM rollup_backfill \
             ORDER BY start_ms, id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id",
            &[&(limit as i64)],
        )
        .await
        .map_err(|e| store.err(e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let records = tx
        .query(
            &format!(
                "SELECT {} FROM activations WHERE id = ANY($1)",
                crate::ACTIVATION_COLUMNS
            ),
            &[&taken],
        )
        .await
        .map_err(|e| store.err(e))?
        .iter()
        .map(crate::activation_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    add(store, &tx, &records.iter().collect::<Vec<_>>()).await?;
    tx.commit().await.map_err(|e| store.err(e))?;
    Ok(taken.len() as u64)
}

/// Adds the records (each one this transaction inserted) to the rollups.
pub(crate) async fn add(
    store: &PgStore,
    tx: &Transaction<'_>,
    records: &[&Activation],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let (mut ns, mut res, mut start, mut function) = (vec![], vec![], vec![], vec![]);
    let mut sums: [Vec<i64>; 11] = Default::default();
    let (mut max_mem, mut mem_mb) = (vec![], vec![]);
    let (mut h_ns, mut h_res, mut h_start, mut h_fn, mut h_bucket, mut h_count) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for folded in rollups::fold(records.iter().copied()) {
        for r in &folded.rollups {
            ns.push(folded.namespace.clone());
            res.push(folded.resolution_ms);
            start.push(r.start_ms);
            function.push(r.function.clone());
            let values = [
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
            ];
            for (column, v) in sums.iter_mut().zip(values) {
                column.push(n(v));
            }
            max_mem.push(n(r.max_memory_bytes));
            mem_mb.push(i64::from(r.memory_mb));
        }
        for h in folded.histogram {
            h_ns.push(folded.namespace.clone());
            h_res.push(folded.resolution_ms);
            h_start.push(h.start_ms);
            h_fn.push(h.function);
            h_bucket.push(h.bucket);
            h_count.push(n(h.count));
        }
    }
    let arrays: Vec<String> = (5..=15).map(|i| format!("${i}::bigint[]")).collect();
    let updates: Vec<String> = SUMMED
        .iter()
        .map(|c| format!("{c} = activation_rollups.{c} + excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO activation_rollups (namespace, resolution_ms, start_ms, function, {}, \
         max_memory_bytes, memory_mb) SELECT * FROM unnest($1::text[], $2::bigint[], \
         $3::bigint[], $4::text[], {}, $16::bigint[], $17::bigint[]) \
         ON CONFLICT (namespace, resolution_ms, start_ms, function) DO UPDATE SET {}, \
         max_memory_bytes = GREATEST(activation_rollups.max_memory_bytes, excluded.max_memory_bytes), \
         memory_mb = GREATEST(activation_rollups.memory_mb, excluded.memory_mb)",
        SUMMED.join(", "),
        arrays.join(", "),
        updates.join(", ")
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&ns, &res, &start, &function];
    params.extend(sums.iter().map(|s| s as &(dyn ToSql + Sync)));
    params.push(&max_mem);
    params.push(&mem_mb);
    tx.execute(sql.as_str(), &params)
        .await
        .map_err(|e| store.err(e))?;
    tx.execute(
        "INSERT INTO activation_histogram (namespace, resolution_ms, start_ms, function, bucket, \
         count) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], \
         $5::int[], $6::bigint[]) ON CONFLICT (namespace, resolution_ms, start_ms, function, \
         bucket) DO UPDATE SET count = activation_histogram.count + excluded.count",
        &[&h_ns, &h_res, &h_start, &h_fn, &h_bucket, &h_count],
    )
    .await
    .map_err(|e| store.err(e))?;
    Ok(())
}

/// The `WHERE` clause and arguments: $1 namespace, $2 resolution, $3 since, $4 until, $5 step,
/// $6 function (when one).
fn filter(q: &RollupQuery) -> (String, Vec<Box<dyn ToSql + Sync + Send>>) {
    let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![
        Box::new(q.namespace.clone()),
        Box::new(q.resolution_ms()),
        Box::new(q.since_ms),
        Box::new(q.until_ms),
        Box::new(q.step_ms.max(1)),
    ];
    let mut sql = String::from(
        "WHERE namespace = $1 AND resolution_ms = $2 AND start_ms >= $3 AND start_ms < $4",
    );
    if let Some(f) = &q.function {
        args.push(Box::new(f.clone()));
        sql += " AND function = $6";
    }
    (sql, args)
}

const STEP: &str = "$3::bigint + ((start_ms - $3::bigint) / $5::bigint) * $5::bigint";

async fn rows(store: &PgStore, sql: &str, q: &RollupQuery) -> Result<Vec<Row>, StoreError> {
    let (_, args) = filter(q);
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| a.as_ref() as &(dyn ToSql + Sync))
        .collect();
    store.query(sql, &params).await
}

pub(crate) async fn query(store: &PgStore, q: &RollupQuery) -> Result<Vec<Rollup>, StoreError> {
    let sums: Vec<String> = SUMMED.iter().map(|c| format!("SUM({c})::bigint")).collect();
    let sql = format!(
        "SELECT function, {STEP} AS step, {}, MAX(max_memory_bytes), MAX(memory_mb) \
         FROM activation_rollups {} GROUP BY function, step ORDER BY function, step",
        sums.join(", "),
        filter(q).0
    );
    let get = |r: &Row, i: usize| r.get::<_, i64>(i) as u64;
    Ok(rows(store, &sql, q)
        .await?
        .iter()
        .map(|r| Rollup {
            function: r.get(0),
            start_ms: r.get(1),
            count: get(r, 2),
            throttles: get(r, 3),
            errors: get(r, 4),
            cold: get(r, 5),
            duration_us: get(r, 6),
            billed_ms: get(r, 7),
            mb_ms: get(r, 8),
            init_us: get(r, 9),
            init_sandbox_us: get(r, 10),
            init_runtime_us: get(r, 11),
            init_import_us: get(r, 12),
            max_memory_bytes: get(r, 13),
            memory_mb: get(r, 14) as u32,
        })
        .collect())
}

pub(crate) async fn histogram(
    store: &PgStore,
    q: &RollupQuery,
) -> Result<Vec<HistogramRow>, StoreError> {
    let sql = format!(
        "SELECT function, {STEP} AS step, bucket, SUM(count)::bigint FROM activation_histogram {} \
         GROUP BY function, step, bucket ORDER BY function, step, bucket",
        filter(q).0
    );
    Ok(rows(store, &sql, q)
        .await?
        .iter()
        .map(|r| HistogramRow {
            function: r.get(0),
            start_ms: r.get(1),
            bucket: r.get(2),
            count: r.get::<_, i64>(3) as u64,
        })
        .collect())
}
