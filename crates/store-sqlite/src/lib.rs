//! The embedded [`Store`]: one SQLite database in WAL mode. Writes go through one connection,
//! reads through a small pool of others (WAL lets readers run beside each other and beside the
//! writer), each on tokio's blocking pool, so the async runtime never waits on disk. A call
//! first waits (asynchronously) for a free connection, so no blocking thread ever sits on a
//! lock. One exception: reads of a few items by key (GetItem) and of a table by name (before
//! every item write) run on the caller's thread when a reader is free at once: from SQLite's
//! page cache they take microseconds, less than handing them to another thread and back. Schema changes are numbered migrations applied at
//! open.

mod events;
mod init_breakdown;
mod lambda;
#[doc(hidden)]
pub mod legacy;

use async_trait::async_trait;
use lambent_core::{Activation, ActivationStatus, Function, FunctionConfig, FunctionName};
use lambent_store::{ActivationQuery, Store, StoreError};
use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::path::Path;
use std::sync::Arc;

mod objects;
mod queues;
mod rollups;
mod routes;
mod stream_mappings;
mod tables;
mod tenants;
mod workflows;

const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE functions (
    namespace   TEXT NOT NULL,
    name        TEXT NOT NULL,
    config      TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    code_size   INTEGER NOT NULL,
    revision    INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE api_keys (
    key_sha256 TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE activations (
    id               TEXT PRIMARY KEY,
    namespace        TEXT NOT NULL,
    function         TEXT NOT NULL,
    revision         INTEGER NOT NULL,
    trigger          TEXT NOT NULL,
    start_ms         INTEGER NOT NULL,
    end_ms           INTEGER NOT NULL,
    duration_us      INTEGER NOT NULL,
    billed_ms        INTEGER NOT NULL,
    memory_mb        INTEGER NOT NULL,
    max_memory_bytes INTEGER,
    cold             INTEGER NOT NULL,
    cold_reason      TEXT,
    init_us          INTEGER,
    status           TEXT NOT NULL,
    error_type       TEXT,
    error_message    TEXT,
    logs             TEXT NOT NULL
);
CREATE INDEX activations_by_time ON activations (namespace, start_ms DESC, id DESC);
CREATE INDEX activations_by_function ON activations (namespace, function, start_ms DESC, id DESC);
"#,
    events::MIGRATION,
    routes::MIGRATION,
    queues::MIGRATION,
    lambda::MIGRATION,
    init_breakdown::MIGRATION,
    events::OWNER_MIGRATION,
    "ALTER TABLE activations ADD COLUMN node TEXT NOT NULL DEFAULT '';",
    objects::MIGRATION,
    workflows::MIGRATION,
    "ALTER TABLE activations ADD COLUMN parent TEXT; ALTER TABLE activations ADD COLUMN steps TEXT;",
    tables::MIGRATION,
    stream_mappings::MIGRATION,
    tables::MIGRATION_2,
    queues::MIGRATION_2,
    rollups::MIGRATION,
    "ALTER TABLE activations ADD COLUMN trace_id TEXT; ALTER TABLE activations ADD COLUMN trace TEXT; \
     CREATE INDEX activations_by_trace ON activations (namespace, trace_id);",
    events::TRACE_MIGRATION,
    events::INPUT_MIGRATION,
    rollups::BACKFILL_MIGRATION,
    tenants::MIGRATION,
    queues::TRACE_MIGRATION,
    workflows::TRACE_MIGRATION,
    routes::HOSTS_MIGRATION,
    routes::SPACES_MIGRATION,
    ACTIVATION_INDEXES_ASCENDING,
    "ALTER TABLE activations ADD COLUMN logs_output_only INTEGER NOT NULL DEFAULT 0;",
];

/// The activations' time indexes in ascending order. Records arrive in time order, so each new
/// entry goes to an index's right edge, where SQLite fills pages whole; in descending order it
/// went to the left edge of its range, where pages split in half (the indexes were twice their
/// size, and each batch dirtied twice the pages). SQLite reads an index either way for
/// `ORDER BY start_ms DESC, id DESC`.
const ACTIVATION_INDEXES_ASCENDING: &str = "DROP INDEX activations_by_time; \
     DROP INDEX activations_by_function; \
     CREATE INDEX activations_by_time ON activations (namespace, start_ms, id); \
     CREATE INDEX activations_by_function ON activations (namespace, function, start_ms, id);";

/// How many reader connections a store keeps.
const READERS: usize = 4;

/// SQLite-backed [`Store`].
#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Pool>,
    readers: Arc<Pool>,
}

/// Connections handed out one caller at a time: the semaphore counts the free ones, so a
/// caller waits on the runtime, not on a blocking thread.
struct Pool {
    free: Mutex<Vec<Connection>>,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A connection taken from a [`Pool`], back in it when dropped (even by a panic).
struct Lease<'a> {
    conn: Option<Connection>,
    pool: &'a Pool,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.free.lock().push(conn);
        }
    }
}

impl Pool {
    fn new(conns: Vec<Connection>) -> Pool {
        Pool {
            permits: Arc::new(tokio::sync::Semaphore::new(conns.len())),
            free: Mutex::new(conns),
        }
    }

    /// Runs `f` on the caller's thread if a connection is free right now; `None` if none is.
    fn run_here<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Option<Result<T, StoreError>> {
        let permit = self.permits.try_acquire().ok()?;
        let mut lease = Lease {
            conn: self.free.lock().pop(),
            pool: self,
        };
        let result = f(lease
            .conn
            .as_mut()
            .expect("a permit means a free connection"));
        drop(lease);
        drop(permit);
        Some(result)
    }

    /// Runs `f` on a free connection, on the blocking pool.
    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = self.permits.clone().acquire_owned().await.map_err(db_err)?;
        let pool = self.clone();
        // The permit goes with the connection, so a caller that stops waiting (a dropped
        // future) does not free it before the blocking task gives the connection back.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut lease = Lease {
                conn: pool.free.lock().pop(),
                pool: &pool,
            };
            let conn = lease
                .conn
                .as_mut()
                .expect("a permit means a free connection");
            f(conn)
        })
        .await
        .map_err(db_err)?
    }
}

/// A failure of the database, classified: SQLite's `SQLITE_FULL` (and an i/o error from a
/// full disk) is [`StoreError::DiskFull`], a database locked by another process past the busy
/// timeout is [`StoreError::Unavailable`] naming SQLite, anything else
/// [`StoreError::Database`].
fn db_err<E: std::fmt::Display + 'static>(e: E) -> StoreError {
    use rusqlite::ErrorCode;
    let any: &dyn std::any::Any = &e;
    if let Some(rusqlite::Error::SqliteFailure(failure, _)) = any.downcast_ref::<rusqlite::Error>()
    {
        match failure.code {
            ErrorCode::DiskFull => return StoreError::DiskFull(format!("SQLite: {e}")),
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable {
                    dependency: "SQLite",
                    address: "lambent.db in the data dir".into(),
                    reason: format!("{e} (another process holds the database's lock)"),
                }
            }
            _ => {}
        }
    }
    StoreError::Database(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let writer = Connection::open(path).map_err(db_err)?;
        writer
            .execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;
                 PRAGMA foreign_keys=ON;",
            )
            .map_err(db_err)?;
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let reader = Connection::open(path).map_err(db_err)?;
                reader
                    .execute_batch("PRAGMA busy_timeout=5000;")
                    .map_err(db_err)?;
                Ok(reader)
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(SqliteStore {
            writer: Arc::new(Pool::new(vec![writer])),
            readers: Arc::new(Pool::new(readers)),
        })
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.run(f).await
    }

    /// [`SqliteStore::read`] on the caller's thread when a reader is free at once (for
    /// reads that touch a few pages by key), else as `read` does.
    async fn quick_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + Clone + 'static,
    ) -> Result<T, StoreError> {
        match self.readers.run_here(|conn| f.clone()(conn)) {
            Some(result) => result,
            None => self.read(f).await,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.readers.run(move |conn| f(conn)).await
    }
}

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db_err)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .map_err(db_err)?;
    }
    Ok(())
}

const FUNCTION_COLUMNS: &str =
    "namespace, name, config, code_sha256, code_size, revision, created_ms, updated_ms";

fn function_from_row(row: &Row<'_>) -> rusqlite::Result<Function> {
    let name: String = row.get(1)?;
    let config: String = row.get(2)?;
    let conv = |e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    };
    Ok(Function {
        namespace: row.get(0)?,
        name: FunctionName::parse(&name).map_err(|e| conv(e.to_string()))?,
        config: serde_json::from_str::<FunctionConfig>(&config).map_err(|e| conv(e.to_string()))?,
        code_sha256: row.get(3)?,
        code_size: row.get(4)?,
        revision: row.get(5)?,
        created_ms: row.get(6)?,
        updated_ms: row.get(7)?,
    })
}

pub(crate) const ACTIVATION_COLUMNS: &str = "id, namespace, function, revision, trigger, start_ms, end_ms, \
duration_us, billed_ms, memory_mb, max_memory_bytes, cold, cold_reason, init_us, status, \
error_type, error_message, logs, init_birth, init_sandbox_us, init_runtime_us, init_import_us, node, \
parent, steps, trace_id, trace, logs_output_only";

pub(crate) fn activation_from_row(row: &Row<'_>) -> rusqlite::Result<Activation> {
    let conv = |e: String| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    };
    let cold_reason: Option<String> = row.get(12)?;
    let status: String = row.get(14)?;
    let mut a = Activation {
        id: row.get(0)?,
        namespace: row.get(1)?,
        function: row.get(2)?,
        revision: row.get(3)?,
        trigger: row.get(4)?,
        start_ms: row.get(5)?,
        end_ms: row.get(6)?,
        duration_us: row.get(7)?,
        billed_ms: row.get(8)?,
        memory_mb: row.get(9)?,
        max_memory_bytes: row.get(10)?,
        cold: row.get(11)?,
        cold_reason: cold_reason
            .map(|r| serde_json::from_value(serde_json::Value::String(r)))
            .transpose()
            .map_err(|e| conv(e.to_string()))?,
        init_us: row.get(13)?,
        init: init_breakdown::from_row(row, 18)?,
        status: status.parse::<ActivationStatus>().map_err(conv)?,
        error_type: row.get(15)?,
        error_message: row.get(16)?,
        logs: row.get(17)?,
        node: row.get(22)?,
        parent: row.get(23)?,
        steps: lambent_store::steps_from_column(row.get::<_, Option<String>>(24)?.as_deref())
            .map_err(conv)?,
        trace: lambent_store::trace_from_column(row.get::<_, Option<String>>(26)?.as_deref())
            .map_err(conv)?,
    };
    lambent_store::logs_from_column(&mut a, row.get(27)?);
    Ok(a)
}

#[async_trait]
impl Store for SqliteStore {
    async fn put_function(&self, f: &Function, expected_revision: u64) -> Result<(), StoreError> {
        let f = f.clone();
        let config = serde_json::to_string(&f.config).map_err(db_err)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let current: u64 = tx
                .query_row(
                    "SELECT revision FROM functions WHERE namespace = ?1 AND name = ?2",
                    params![f.namespace, f.name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or(0);
            if current != expected_revision {
                return Err(StoreError::Conflict(f.name.to_string(), expected_revision));
            }
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO functions ({FUNCTION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    f.namespace,
                    f.name.as_str(),
                    config,
                    f.code_sha256,
                    f.code_size,
                    f.revision,
                    f.created_ms,
                    f.updated_ms
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn get_function(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {FUNCTION_COLUMNS} FROM functions WHERE namespace = ?1 AND name = ?2"
                ),
                params![ns, name],
                function_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_functions(&self, namespace: &str) -> Result<Vec<Function>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {FUNCTION_COLUMNS} FROM functions WHERE namespace = ?1 ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns], function_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn all_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY namespace, name"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([], function_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_function(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM functions WHERE namespace = ?1 AND name = ?2",
                    params![ns, name],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn insert_activations(&self, batch: &[Activation]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let mut new = Vec::with_capacity(batch.len());
            {
                // A batch retried after a commit it did not see inserts nothing twice, and a
                // batch naming one id twice keeps the first (as on PostgreSQL): the rollups
                // count what was inserted.
                let mut insert = tx
                    .prepare_cached(&format!(
                        "INSERT INTO activations ({ACTIVATION_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
                         ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28) ON CONFLICT (id) DO NOTHING"
                    ))
                    .map_err(db_err)?;
                for a in &batch {
                    let cold_reason = a
                        .cold_reason
                        .and_then(|r| serde_json::to_value(r).ok())
                        .and_then(|v| v.as_str().map(str::to_string));
                    let (birth, sandbox_us, runtime_us, import_us) =
                        init_breakdown::to_columns(a.init.as_ref());
                    let (trace_id, trace) = lambent_store::trace_columns(a.trace.as_ref());
                    let (logs, logs_output_only) = lambent_store::logs_column(a);
                    let values = params![
                        a.id,
                        a.namespace,
                        a.function,
                        a.revision,
                        a.trigger,
                        a.start_ms,
                        a.end_ms,
                        a.duration_us,
                        a.billed_ms,
                        a.memory_mb,
                        a.max_memory_bytes,
                        a.cold,
                        cold_reason,
                        a.init_us,
                        a.status.as_str(),
                        a.error_type,
                        a.error_message,
                        logs,
                        birth,
                        sandbox_us,
                        runtime_us,
                        import_us,
                        a.node,
                        a.parent,
                        lambent_store::steps_column(&a.steps),
                        trace_id,
                        trace,
                        logs_output_only,
                    ];
                    if insert.execute(values).map_err(db_err)? == 1 {
                        new.push(a);
                    }
                }
            }
            rollups::add(&tx, &new)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn query_activations(&self, q: &ActivationQuery) -> Result<Vec<Activation>, StoreError> {
        let q = q.clone();
        self.read(move |conn| {
            let mut sql =
                format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE namespace = ?1");
            let mut args: Vec<rusqlite::types::Value> = vec![q.namespace.clone().into()];
            if let Some(f) = &q.function {
                args.push(f.clone().into());
                sql += &format!(" AND function = ?{}", args.len());
            }
            if let Some(s) = q.status {
                args.push(s.as_str().to_string().into());
                sql += &format!(" AND status = ?{}", args.len());
            }
            if let Some(since) = q.since_ms {
                args.push(since.into());
                sql += &format!(" AND start_ms >= ?{}", args.len());
            }
            if let Some(until) = q.until_ms {
                args.push(until.into());
                sql += &format!(" AND start_ms < ?{}", args.len());
            }
            if let Some(cold) = q.cold {
                args.push(i64::from(cold).into());
                sql += &format!(" AND cold = ?{}", args.len());
            }
            if let Some(text) = &q.text {
                args.push(text.clone().into());
                sql += &format!(
                    " AND (instr(logs, ?{0}) > 0 OR instr(coalesce(error_message, ''), ?{0}) > 0)",
                    args.len()
                );
            }
            if let Some(t) = &q.trace_id {
                args.push(t.clone().into());
                sql += &format!(" AND trace_id = ?{}", args.len());
            }
            if let Some(c) = &q.before {
                args.push(c.start_ms.into());
                args.push(c.id.clone().into());
                sql += &format!(
                    " AND (start_ms, id) < (?{}, ?{})",
                    args.len() - 1,
                    args.len()
                );
            }
            args.push((q.limit.clamp(1, 10_000) as i64).into());
            sql += &format!(" ORDER BY start_ms DESC, id DESC LIMIT ?{}", args.len());
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), activation_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Activation>, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {ACTIVATION_COLUMNS} FROM activations WHERE namespace = ?1 AND id = ?2"
                ),
                params![ns, id],
                activation_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn prune_activations(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM activations WHERE start_ms < ?1",
                    params![cutoff_ms],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn backfill_rollups(&self, limit: usize) -> Result<u64, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let taken = rollups::backfill(&tx, limit)?;
            tx.commit().map_err(db_err)?;
            Ok(taken)
        })
        .await
    }

    async fn usage(
        &self,
        q: &lambent_store::usage::UsageQuery,
    ) -> Result<Vec<lambent_core::metering::Aggregate>, StoreError> {
        use lambent_store::usage::{assemble, sql, RawRow};
        let q = q.clone();
        self.read(move |conn| {
            let mut args: Vec<rusqlite::types::Value> = vec![q.namespace.clone().into()];
            if let Some(f) = &q.function {
                args.push(f.clone().into());
            }
            if let Some(since) = q.since_ms {
                args.push(since.into());
            }
            let mut stmt = conn.prepare_cached(&sql(&q)).map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    let mut v = [None; 7];
                    for (i, slot) in v.iter_mut().enumerate() {
                        *slot = r.get(4 + i)?;
                    }
                    Ok(RawRow {
                        kind: r.get(0)?,
                        namespace: r.get(1)?,
                        function: r.get(2)?,
                        day: r.get(3)?,
                        v,
                    })
                })
                .map_err(db_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db_err)?;
            Ok(assemble(rows, q.by))
        })
        .await
    }

    async fn activation_rollups(
        &self,
        q: &lambent_store::rollups::RollupQuery,
    ) -> Result<Vec<lambent_store::rollups::Rollup>, StoreError> {
        let q = q.clone();
        self.read(move |conn| rollups::query(conn, &q)).await
    }

    async fn duration_histogram(
        &self,
        q: &lambent_store::rollups::RollupQuery,
    ) -> Result<Vec<lambent_store::rollups::HistogramRow>, StoreError> {
        let q = q.clone();
        self.read(move |conn| rollups::histogram(conn, &q)).await
    }
}

/// SQLite-only behaviour: what survives reopening the file, and old schemas. The behaviour every
/// store shares is `lambent_store::contract`, run by `tests/contract.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use lambent_store::contract::{activation, claim, event, function};
    use lambent_store::events::{EventStore, EventWrite};

    /// The lines Lambent frames a function's output with are not stored: they are made again
    /// from the record's fields when it is read. Records stored whole before stay whole.
    #[tokio::test]
    async fn logs_framed_by_lambent_are_stored_as_the_output_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        let mut framed = activation("framed", 5, ActivationStatus::Success);
        framed.logs = framed.framed_logs("order 45\n");
        store.insert_activations(&[framed.clone()]).await.unwrap();
        let conn = Connection::open(&path).unwrap();
        let stored: (String, bool) = conn
            .query_row(
                "SELECT logs, logs_output_only FROM activations WHERE id = 'framed'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(stored, ("order 45\n".to_string(), true));
        conn.execute(
            "INSERT INTO activations (id, namespace, function, revision, trigger, start_ms, \
             end_ms, duration_us, billed_ms, memory_mb, cold, status, logs) VALUES ('before', \
             'default', 'f', 1, 'api', 6, 7, 1000, 1, 128, 0, 'success', 'START whole\n')",
            [],
        )
        .unwrap();
        let before = store.get_activation("default", "before").await.unwrap();
        assert_eq!(before.map(|a| a.logs), Some("START whole\n".to_string()));
        assert_eq!(
            store.get_activation("default", "framed").await.unwrap(),
            Some(framed)
        );
    }

    #[tokio::test]
    async fn functions_and_leases_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        store.put_function(&function("a", 1), 0).await.unwrap();
        store
            .write_events(vec![EventWrite::Enqueue(event("e", 10))])
            .await
            .unwrap();
        store.claim_events(&claim(10, 1, 1_000)).await.unwrap();
        let mut a = activation("x", 5, ActivationStatus::Success);
        a.node = "n9".into();
        store.insert_activations(&[a.clone()]).await.unwrap();
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.get_function("default", "a").await.unwrap(),
            Some(function("a", 1))
        );
        assert_eq!(store.get_activation("default", "x").await.unwrap(), Some(a));
        // The previous run's lease, released at start-up.
        assert_eq!(store.release_leases(5, &[]).await.unwrap(), 1);
        assert_eq!(store.next_due_ms().await.unwrap(), Some(5));
    }

    #[tokio::test]
    async fn activations_recorded_before_the_breakdown_read_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let breakdown = MIGRATIONS
            .iter()
            .position(|m| *m == init_breakdown::MIGRATION)
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..breakdown] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(&format!("PRAGMA user_version = {breakdown}"))
                .unwrap();
            conn.execute(
                "INSERT INTO activations (id, namespace, function, revision, trigger, start_ms, \
                 end_ms, duration_us, billed_ms, memory_mb, cold, cold_reason, init_us, status, logs) \
                 VALUES ('old', 'default', 'f', 1, 'api', 1, 2, 1000, 1, 128, 1, 'first_request', \
                 9000, 'success', '')",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let old = store
            .get_activation("default", "old")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((old.cold, old.init_us, old.init), (true, Some(9000), None));
        assert_eq!(old.node, "");
    }

    #[tokio::test]
    async fn routes_stored_before_path_spaces_get_their_space_and_shape() {
        use lambent_store::routes::RouteStore;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let spaces = MIGRATIONS
            .iter()
            .position(|m| *m == routes::SPACES_MIGRATION)
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            for sql in &MIGRATIONS[..spaces] {
                conn.execute_batch(sql).unwrap();
            }
            conn.execute_batch(&format!("PRAGMA user_version = {spaces}"))
                .unwrap();
            conn.execute(
                "INSERT INTO namespace_hosts (host, namespace, created_ms) VALUES ('c.example', 'c', 1)",
                [],
            )
            .unwrap();
            for r in lambent_store::contract::routes_before_path_spaces() {
                conn.execute(
                    "INSERT INTO routes (id, namespace, method, path, route, created_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        r.id,
                        r.namespace,
                        r.method,
                        r.path,
                        serde_json::to_string(&r).unwrap(),
                        1
                    ],
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.all_routes().await.unwrap().len(), 3);
        lambent_store::contract::migrated_routes_refuse_what_the_route_table_would(&store).await;
    }
}
