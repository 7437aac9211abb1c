//! The cluster [`Store`]: every node of a cluster shares one PostgreSQL database, through a pool
//! of connections (`deadpool-postgres`). Where the SQLite store relies on its single writer to
//! make a read-then-write atomic, this one uses conditional writes, `INSERT … ON CONFLICT`, row
//! locks and `FOR UPDATE SKIP LOCKED`, so concurrent nodes never hand out one event or message
//! twice nor lose an update. A connection-level failure (server down, pool timeout, broken
//! socket) is [`StoreError::Unavailable`] naming PostgreSQL; the pool replaces broken
//! connections by itself once the server is back. The schema is refinery migrations applied at
//! connect under an advisory lock.
//!
//! This module owns the connection, error mapping, migrations and the [`Store`] methods
//! (functions, API keys, activation records); [`events`], [`queues`], [`routes`], [`lambda`],
//! [`objects`] and [`cluster`] implement the sibling traits.

mod cluster;
mod events;
mod lambda;
#[doc(hidden)]
pub mod legacy;
mod objects;
mod queues;
mod rollups;
mod routes;
mod schema;
mod stream_mappings;
mod tables;
mod tenants;
mod workflows;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use lambent_core::{
    Activation, ActivationStatus, Birth, Function, FunctionConfig, FunctionName, InitBreakdown,
};
use lambent_store::{ActivationQuery, Store, StoreError};
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

/// How long connecting, or waiting for a pooled connection, may take before the caller is told
/// PostgreSQL is unavailable.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The advisory lock migrations run under (so nodes starting at once do not race).
const MIGRATION_LOCK: i64 = 0x4c41_4d42_454e_5401; // "LAMBENT\x01"
const DEPENDENCY: &str = "PostgreSQL";

/// PostgreSQL-backed [`Store`] (and `EventStore`, `QueueStore`, `RouteStore`, `ClusterStore`).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    config: tokio_postgres::Config,
    address: String,
}

/// `host:port` of the first host of a connection config, for error messages.
fn address_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// Whether a PostgreSQL error means the server or the connection is gone, not that the SQL failed.
fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        // 08: connection exception; 57P01-03: admin/crash shutdown, cannot connect now.
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    if e.is_closed() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    let text = e.to_string();
    text.contains("error connecting") || text.contains("timeout") || text.contains("timed out")
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db`), applies pending migrations and opens
    /// the pool. Fails within about 5 s with [`StoreError::Unavailable`] when the server cannot
    /// be reached, and with [`StoreError::SchemaTooNew`] when a newer Lambent migrated it.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Database(format!("bad PostgreSQL URL '{url}': {e}")))?;
        config
            .connect_timeout(TIMEOUT)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(20))
            .application_name("lambent");
        let address = address_of(&config);
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .wait_timeout(Some(TIMEOUT))
            .create_timeout(Some(TIMEOUT))
            .recycle_timeout(Some(TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let store = PgStore {
            pool,
            config,
            address,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// `host:port` of the server.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn unavailable(&self, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Unavailable {
            dependency: DEPENDENCY,
            address: self.address.clone(),
            reason: reason.to_string(),
        }
    }

    /// Maps a driver error: connection-level failures are `Unavailable`, the rest `Database`.
    pub(crate) fn err(&self, e: tokio_postgres::Error) -> StoreError {
        if is_connection_error(&e) {
            self.unavailable(e)
        } else {
            match e.as_db_error() {
                Some(db) => StoreError::Database(db.to_string()),
                None => StoreError::Database(e.to_string()),
            }
        }
    }

    /// A pooled connection (waiting at most [`TIMEOUT`]).
    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => {
                if is_connection_error(&e) {
                    self.unavailable(e)
                } else {
                    self.err(e)
                }
            }
            PoolError::Timeout(_) => self.unavailable("timed out waiting for a connection"),
            other => self.unavailable(other),
        })
    }

    /// A connection of its own (not pooled), for sessions that hold state: advisory locks.
    pub(crate) async fn dedicated(
        &self,
    ) -> Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), StoreError> {
        let connecting = self.config.connect(NoTls);
        let (client, connection) = tokio::time::timeout(TIMEOUT, connecting)
            .await
            .map_err(|_| self.unavailable("connect timed out"))?
            .map_err(|e| self.unavailable(e))?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("PostgreSQL session ended: {e}");
            }
        });
        Ok((client, task))
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let (mut client, task) = self.dedicated().await?;
        let result = self.migrate_on(&mut client).await;
        drop(client);
        let _ = task.await;
        result
    }

    async fn migrate_on(&self, client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
        let migrations = schema::MIGRATIONS
            .iter()
            .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let known = migrations
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0);
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.err(e))?;
        let migrated: bool = client
            .query_one(
                "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
                &[],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let found: Option<i64> = if migrated {
            client
                .query_one(
                    "SELECT max(version)::bigint FROM refinery_schema_history",
                    &[],
                )
                .await
                .map_err(|e| self.err(e))?
                .get(0)
        } else {
            None
        };
        if let Some(found) = found.filter(|f| *f > known) {
            return Err(StoreError::SchemaTooNew {
                dependency: DEPENDENCY,
                found,
                known,
            });
        }
        refinery::Runner::new(&migrations)
            .set_abort_missing(false)
            .run_async(client)
            .await
            .map_err(|e| StoreError::Database(format!("migrating the PostgreSQL schema: {e}")))?;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Runs a query on a pooled connection (its statement cached per connection).
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(|e| self.err(e))?;
        conn.query(&stmt, params).await.map_err(|e| self.err(e))
    }

    /// Runs a query that returns at most one row.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs a statement; returns the rows it affected.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(|e| self.err(e))?;
        conn.execute(&stmt, params).await.map_err(|e| self.err(e))
    }
}

/// Whether a driver error is a unique violation (SQLSTATE 23505).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

pub(crate) fn json_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

const FUNCTION_COLUMNS: &str =
    "namespace, name, config, code_sha256, code_size, revision, created_ms, updated_ms";

fn function_from_row(row: &Row) -> Result<Function, StoreError> {
    let name: String = row.get(1);
    let config: String = row.get(2);
    Ok(Function {
        namespace: row.get(0),
        name: FunctionName::parse(&name).map_err(json_err)?,
        config: serde_json::from_str::<FunctionConfig>(&config).map_err(json_err)?,
        code_sha256: row.get(3),
        code_size: row.get::<_, i64>(4) as u64,
        revision: row.get::<_, i64>(5) as u64,
        created_ms: row.get(6),
        updated_ms: row.get(7),
    })
}

pub(crate) const ACTIVATION_COLUMNS: &str = "id, namespace, function, revision, trigger, start_ms, end_ms, \
duration_us, billed_ms, memory_mb, max_memory_bytes, cold, cold_reason, init_us, status, \
error_type, error_message, logs, init_birth, init_sandbox_us, init_runtime_us, init_import_us, node, \
parent, steps, trace_id, trace, logs_output_only";

fn opt_u64(row: &Row, i: usize) -> Option<u64> {
    row.get::<_, Option<i64>>(i).map(|v| v as u64)
}

pub(crate) fn activation_from_row(row: &Row) -> Result<Activation, StoreError> {
    let cold_reason: Option<String> = row.get(12);
    let status: String = row.get(14);
    let birth: Option<String> = row.get(18);
    let init = match birth {
        None => None,
        Some(b) => Some(InitBreakdown {
            birth: b.parse::<Birth>().map_err(json_err)?,
            sandbox_us: opt_u64(row, 19).unwrap_or(0),
            runtime_us: opt_u64(row, 20).unwrap_or(0),
            import_us: opt_u64(row, 21),
        }),
    };
    let mut a = Activation {
        id: row.get(0),
        namespace: row.get(1),
        function: row.get(2),
        revision: row.get::<_, i64>(3) as u64,
        trigger: row.get(4),
        start_ms: row.get(5),
        end_ms: row.get(6),
        duration_us: row.get::<_, i64>(7) as u64,
        billed_ms: row.get::<_, i64>(8) as u64,
        memory_mb: row.get::<_, i64>(9) as u32,
        max_memory_bytes: opt_u64(row, 10),
        cold: row.get(11),
        cold_reason: cold_reason
            .map(|r| serde_json::from_value(serde_json::Value::String(r)))
            .transpose()
            .map_err(json_err)?,
        init_us: opt_u64(row, 13),
        init,
        status: status.parse::<ActivationStatus>().map_err(json_err)?,
        error_type: row.get(15),
        error_message: row.get(16),
        logs: row.get(17),
        node: row.get(22),
        parent: row.get(23),
        steps: lambent_store::steps_from_column(row.get::<_, Option<&str>>(24))
            .map_err(json_err)?,
        trace: lambent_store::trace_from_column(row.get::<_, Option<&str>>(26))
            .map_err(json_err)?,
    };
    lambent_store::logs_from_column(&mut a, row.get(27));
    Ok(a)
}

/// The activation columns of a batch, one array per column (for `unnest`).
#[derive(Default)]
struct ActivationColumns {
    id: Vec<String>,
    namespace: Vec<String>,
    function: Vec<String>,
    revision: Vec<i64>,
    trigger: Vec<String>,
    start_ms: Vec<i64>,
    end_ms: Vec<i64>,
    duration_us: Vec<i64>,
    billed_ms: Vec<i64>,
    memory_mb: Vec<i64>,
    max_memory_bytes: Vec<Option<i64>>,
    cold: Vec<bool>,
    cold_reason: Vec<Option<String>>,
    init_us: Vec<Option<i64>>,
    status: Vec<String>,
    error_type: Vec<Option<String>>,
    error_message: Vec<Option<String>>,
    logs: Vec<String>,
    init_birth: Vec<Option<String>>,
    init_sandbox_us: Vec<Option<i64>>,
    init_runtime_us: Vec<Option<i64>>,
    init_import_us: Vec<Option<i64>>,
    node: Vec<String>,
    parent: Vec<Option<String>>,
    steps: Vec<Option<String>>,
    trace_id: Vec<Option<String>>,
    trace: Vec<Option<String>>,
    logs_output_only: Vec<bool>,
}

impl ActivationColumns {
    fn push(&mut self, a: &Activation) {
        self.id.push(a.id.clone());
        self.namespace.push(a.namespace.clone());
        self.function.push(a.function.clone());
        self.revision.push(a.revision as i64);
        self.trigger.push(a.trigger.clone());
        self.start_ms.push(a.start_ms);
        self.end_ms.push(a.end_ms);
        self.duration_us.push(a.duration_us as i64);
        self.billed_ms.push(a.billed_ms as i64);
        self.memory_mb.push(i64::from(a.memory_mb));
        self.max_memory_bytes
            .push(a.max_memory_bytes.map(|v| v as i64));
        self.cold.push(a.cold);
        self.cold_reason
            .push(a.cold_reason.map(|r| r.as_str().to_string()));
        self.init_us.push(a.init_us.map(|v| v as i64));
        self.status.push(a.status.as_str().to_string());
        self.error_type.push(a.error_type.clone());
        self.error_message.push(a.error_message.clone());
        let (logs, output_only) = lambent_store::logs_column(a);
        self.logs.push(logs.to_string());
        self.logs_output_only.push(output_only);
        self.init_birth
            .push(a.init.map(|i| i.birth.as_str().to_string()));
        self.init_sandbox_us
            .push(a.init.map(|i| i.sandbox_us as i64));
        self.init_runtime_us
            .push(a.init.map(|i| i.runtime_us as i64));
        self.init_import_us
            .push(a.init.and_then(|i| i.import_us.map(|v| v as i64)));
        self.node.push(a.node.clone());
        self.parent.push(a.parent.clone());
        self.steps.push(lambent_store::steps_column(&a.steps));
        let (trace_id, trace) = lambent_store::trace_columns(a.trace.as_ref());
        self.trace_id.push(trace_id);
        self.trace.push(trace);
    }
}

#[async_trait]
impl Store for PgStore {
    async fn put_function(&self, f: &Function, expected_revision: u64) -> Result<(), StoreError> {
        let config = serde_json::to_string(&f.config).map_err(json_err)?;
        let (size, rev) = (f.code_size as i64, f.revision as i64);
        let n = if expected_revision == 0 {
            self.execute(
                &format!(
                    "INSERT INTO functions ({FUNCTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (namespace, name) DO NOTHING"
                ),
                &[&f.namespace, &f.name.as_str(), &config, &f.code_sha256, &size, &rev, &f.created_ms, &f.updated_ms],
            )
            .await?
        } else {
            self.execute(
                "UPDATE functions SET config = $3, code_sha256 = $4, code_size = $5, revision = $6, \
                 created_ms = $7, updated_ms = $8 WHERE namespace = $1 AND name = $2 AND revision = $9",
                &[&f.namespace, &f.name.as_str(), &config, &f.code_sha256, &size, &rev, &f.created_ms, &f.updated_ms, &(expected_revision as i64)],
            )
            .await?
        };
        if n != 1 {
            return Err(StoreError::Conflict(f.name.to_string(), expected_revision));
        }
        Ok(())
    }

    async fn get_function(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        self.query_opt(
            &format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE namespace = $1 AND name = $2"),
            &[&namespace, &name],
        )
        .await?
        .as_ref()
        .map(function_from_row)
        .transpose()
    }

    async fn list_functions(&self, namespace: &str) -> Result<Vec<Function>, StoreError> {
        self.query(
            &format!("SELECT {FUNCTION_COLUMNS} FROM functions WHERE namespace = $1 ORDER BY name"),
            &[&namespace],
        )
        .await?
        .iter()
        .map(function_from_row)
        .collect()
    }

    async fn all_functions(&self) -> Result<Vec<Function>, StoreError> {
        self.query(
            &format!("SELECT {FUNCTION_COLUMNS} FROM functions ORDER BY namespace, name"),
            &[],
        )
        .await?
        .iter()
        .map(function_from_row)
        .collect()
    }

    async fn delete_function(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM functions WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn insert_activations(&self, batch: &[Activation]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut c = ActivationColumns::default();
        batch.iter().for_each(|a| c.push(a));
        // One statement for the batch; a batch retried after an unknown commit inserts nothing
        // twice (and a batch naming one id twice keeps the first). The rollups count what it
        // inserted, in the same transaction.
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let inserted = tx
            .query(
            &format!(
                "INSERT INTO activations ({ACTIVATION_COLUMNS}) SELECT * FROM unnest(\
                 $1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], \
                 $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], \
                 $12::boolean[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[], \
                 $18::text[], $19::text[], $20::bigint[], $21::bigint[], $22::bigint[], $23::text[], \
                 $24::text[], $25::text[], $26::text[], $27::text[], $28::boolean[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            &[
                &c.id,
                &c.namespace,
                &c.function,
                &c.revision,
                &c.trigger,
                &c.start_ms,
                &c.end_ms,
                &c.duration_us,
                &c.billed_ms,
                &c.memory_mb,
                &c.max_memory_bytes,
                &c.cold,
                &c.cold_reason,
                &c.init_us,
                &c.status,
                &c.error_type,
                &c.error_message,
                &c.logs,
                &c.init_birth,
                &c.init_sandbox_us,
                &c.init_runtime_us,
                &c.init_import_us,
                &c.node,
                &c.parent,
                &c.steps,
                &c.trace_id,
                &c.trace,
                &c.logs_output_only,
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        let inserted: std::collections::HashSet<String> =
            inserted.iter().map(|r| r.get(0)).collect();
        let mut counted = std::collections::HashSet::new();
        let new: Vec<&Activation> = batch
            .iter()
            .filter(|a| inserted.contains(&a.id) && counted.insert(a.id.as_str()))
            .collect();
        rollups::add(self, &tx, &new).await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    async fn query_activations(&self, q: &ActivationQuery) -> Result<Vec<Activation>, StoreError> {
        let mut sql = format!("SELECT {ACTIVATION_COLUMNS} FROM activations WHERE namespace = $1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(q.namespace.clone())];
        if let Some(f) = &q.function {
            args.push(Box::new(f.clone()));
            sql += &format!(" AND function = ${}", args.len());
        }
        if let Some(s) = q.status {
            args.push(Box::new(s.as_str().to_string()));
            sql += &format!(" AND status = ${}", args.len());
        }
        if let Some(since) = q.since_ms {
            args.push(Box::new(since));
            sql += &format!(" AND start_ms >= ${}", args.len());
        }
        if let Some(until) = q.until_ms {
            args.push(Box::new(until));
            sql += &format!(" AND start_ms < ${}", args.len());
        }
        if let Some(cold) = q.cold {
            args.push(Box::new(cold));
            sql += &format!(" AND cold = ${}", args.len());
        }
        if let Some(text) = &q.text {
            args.push(Box::new(text.clone()));
            sql += &format!(
                " AND (strpos(logs, ${0}) > 0 OR strpos(coalesce(error_message, ''), ${0}) > 0)",
                args.len()
            );
        }
        if let Some(t) = &q.trace_id {
            args.push(Box::new(t.clone()));
            sql += &format!(" AND trace_id = ${}", args.len());
        }
        if let Some(c) = &q.before {
            args.push(Box::new(c.start_ms));
            args.push(Box::new(c.id.clone()));
            sql += &format!(
                " AND (start_ms, id) < (${}, ${})",
                args.len() - 1,
                args.len()
            );
        }
        args.push(Box::new(q.limit.clamp(1, 10_000) as i64));
        sql += &format!(" ORDER BY start_ms DESC, id DESC LIMIT ${}", args.len());
        let params: Vec<&(dyn ToSql + Sync)> = args
            .iter()
            .map(|a| a.as_ref() as &(dyn ToSql + Sync))
            .collect();
        self.query(&sql, &params)
            .await?
            .iter()
            .map(activation_from_row)
            .collect()
    }

    async fn get_activation(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Activation>, StoreError> {
        self.query_opt(
            &format!(
                "SELECT {ACTIVATION_COLUMNS} FROM activations WHERE namespace = $1 AND id = $2"
            ),
            &[&namespace, &id],
        )
        .await?
        .as_ref()
        .map(activation_from_row)
        .transpose()
    }

    async fn prune_activations(&self, cutoff_ms: i64) -> Result<u64, StoreError> {
        self.execute("DELETE FROM activations WHERE start_ms < $1", &[&cutoff_ms])
            .await
    }

    async fn backfill_rollups(&self, limit: usize) -> Result<u64, StoreError> {
        rollups::backfill(self, limit).await
    }

    async fn usage(
        &self,
        q: &lambent_store::usage::UsageQuery,
    ) -> Result<Vec<lambent_core::metering::Aggregate>, StoreError> {
        use lambent_store::usage::{assemble, sql, RawRow};
        let mut args: Vec<&(dyn ToSql + Sync)> = vec![&q.namespace];
        if let Some(f) = &q.function {
            args.push(f);
        }
        if let Some(since) = &q.since_ms {
            args.push(since);
        }
        let rows = self
            .query(&sql(q), &args)
            .await?
            .iter()
            .map(|r| {
                let mut v = [None; 7];
                for (i, slot) in v.iter_mut().enumerate() {
                    *slot = r.try_get(4 + i)?;
                }
                Ok(RawRow {
                    kind: r.try_get(0)?,
                    namespace: r.try_get(1)?,
                    function: r.try_get(2)?,
                    day: r.try_get(3)?,
                    v,
                })
            })
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(|e| self.err(e))?;
        Ok(assemble(rows, q.by))
    }

    async fn activation_rollups(
        &self,
        q: &lambent_store::rollups::RollupQuery,
    ) -> Result<Vec<lambent_store::rollups::Rollup>, StoreError> {
        rollups::query(self, q).await
    }

    async fn duration_histogram(
        &self,
        q: &lambent_store::rollups::RollupQuery,
    ) -> Result<Vec<lambent_store::rollups::HistogramRow>, StoreError> {
        rollups::histogram(self, q).await
    }
}
