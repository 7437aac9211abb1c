//! [`WorkflowStore`] on SQLite: state machines, executions (with their latest checkpoint and
//! lease) and history events, each checkpoint and its events in one transaction.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::workflows::{
    number_event, Abort, Checkpoint, ExecutionQuery, Started, StoredExecution, StoredStateMachine,
    TransitionUsage, WorkflowStore, EXECUTION_COLUMNS, SM_COLUMNS,
};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension, Row};

/// The workflow tables (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE state_machines (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    arn        TEXT NOT NULL,
    definition TEXT NOT NULL,
    kind       TEXT NOT NULL,
    role_arn   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    revision   INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE executions (
    arn               TEXT PRIMARY KEY,
    namespace         TEXT NOT NULL,
    name              TEXT NOT NULL,
    state_machine_arn TEXT NOT NULL,
    definition        TEXT NOT NULL,
    status            TEXT NOT NULL,
    input             TEXT NOT NULL,
    output            TEXT,
    error             TEXT,
    cause             TEXT,
    start_ms          INTEGER NOT NULL,
    stop_ms           INTEGER,
    state             TEXT,
    transitions       INTEGER NOT NULL DEFAULT 0,
    owner             TEXT,
    lease_until_ms    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX executions_by_machine ON executions (state_machine_arn, start_ms DESC, arn DESC);
CREATE INDEX executions_running ON executions (lease_until_ms) WHERE status = 'RUNNING';
CREATE TABLE execution_events (
    execution_arn TEXT NOT NULL,
    id            INTEGER NOT NULL,
    event         TEXT NOT NULL,
    PRIMARY KEY (execution_arn, id)
);
"#;

fn sm_from_row(r: &Row<'_>) -> rusqlite::Result<StoredStateMachine> {
    Ok(StoredStateMachine {
        namespace: r.get(0)?,
        name: r.get(1)?,
        arn: r.get(2)?,
        definition: r.get(3)?,
        kind: r.get(4)?,
        role_arn: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
        revision: r.get(8)?,
    })
}

/// The trace context of the request that started each execution (`traceparent[ tracestate]`).
pub(crate) const TRACE_MIGRATION: &str = "ALTER TABLE executions ADD COLUMN trace TEXT;";

fn execution_from_row(r: &Row<'_>) -> rusqlite::Result<StoredExecution> {
    Ok(StoredExecution {
        arn: r.get(0)?,
        namespace: r.get(1)?,
        name: r.get(2)?,
        state_machine_arn: r.get(3)?,
        definition: r.get(4)?,
        status: r.get(5)?,
        input: r.get(6)?,
        output: r.get(7)?,
        error: r.get(8)?,
        cause: r.get(9)?,
        start_ms: r.get(10)?,
        stop_ms: r.get(11)?,
        state: r.get(12)?,
        transitions: r.get(13)?,
        owner: r.get(14)?,
        lease_until_ms: r.get(15)?,
        trace: lambent_store::context_from_column(r.get::<_, Option<String>>(16)?.as_deref()),
    })
}

fn get_execution(
    conn: &rusqlite::Connection,
    arn: &str,
) -> Result<Option<StoredExecution>, StoreError> {
    conn.query_row(
        &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE arn = ?1"),
        params![arn],
        execution_from_row,
    )
    .optional()
    .map_err(db_err)
}

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn create_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError> {
        let sm = sm.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    &format!(
                        "INSERT INTO state_machines ({SM_COLUMNS}) VALUES \
                         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING"
                    ),
                    params![
                        sm.namespace,
                        sm.name,
                        sm.arn,
                        sm.definition,
                        sm.kind,
                        sm.role_arn,
                        sm.created_ms,
                        sm.updated_ms,
                        sm.revision
                    ],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn update_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError> {
        let sm = sm.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE state_machines SET definition = ?3, role_arn = ?4, updated_ms = ?5, \
                     revision = ?6 WHERE namespace = ?1 AND name = ?2 AND revision = ?6 - 1",
                    params![
                        sm.namespace,
                        sm.name,
                        sm.definition,
                        sm.role_arn,
                        sm.updated_ms,
                        sm.revision
                    ],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_state_machine(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredStateMachine>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {SM_COLUMNS} FROM state_machines WHERE namespace = ?1 AND name = ?2"
                ),
                params![ns, name],
                sm_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_state_machines(
        &self,
        namespace: &str,
    ) -> Result<Vec<StoredStateMachine>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {SM_COLUMNS} FROM state_machines WHERE namespace = ?1 ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![ns], sm_from_row).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_state_machine(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM state_machines WHERE namespace = ?1 AND name = ?2",
                    params![ns, name],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn start_execution(&self, e: &StoredExecution) -> Result<Started, StoreError> {
        let e = e.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    &format!(
                        "INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, \
                         ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17) \
                         ON CONFLICT DO NOTHING"
                    ),
                    params![
                        e.arn,
                        e.namespace,
                        e.name,
                        e.state_machine_arn,
                        e.definition,
                        e.status,
                        e.input,
                        e.output,
                        e.error,
                        e.cause,
                        e.start_ms,
                        e.stop_ms,
                        e.state,
                        e.transitions,
                        e.owner,
                        e.lease_until_ms,
                        e.trace.as_ref().map(|t| t.encode())
                    ],
                )
                .map_err(db_err)?;
            if n == 1 {
                return Ok(Started::New);
            }
            let existing = get_execution(conn, &e.arn)?
                .ok_or_else(|| StoreError::Database(format!("execution {} vanished", e.arn)))?;
            Ok(Started::Existing(Box::new(existing)))
        })
        .await
    }

    async fn get_execution(&self, arn: &str) -> Result<Option<StoredExecution>, StoreError> {
        let arn = arn.to_string();
        self.read(move |conn| get_execution(conn, &arn)).await
    }

    async fn list_executions(
        &self,
        q: &ExecutionQuery,
    ) -> Result<Vec<StoredExecution>, StoreError> {
        let q = q.clone();
        self.read(move |conn| {
            let (after_ms, after_arn) = q.after.clone().unwrap_or((i64::MAX, String::new()));
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE state_machine_arn = ?1 \
                     AND (?2 IS NULL OR status = ?2) \
                     AND (start_ms < ?3 OR (start_ms = ?3 AND (?4 = '' OR arn < ?4))) \
                     ORDER BY start_ms DESC, arn DESC LIMIT ?5"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![
                        q.state_machine_arn,
                        q.status,
                        after_ms,
                        after_arn,
                        q.limit as i64
                    ],
                    execution_from_row,
                )
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn transition_usage(
        &self,
        namespace: &str,
        since_ms: i64,
    ) -> Result<Vec<TransitionUsage>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT state_machine_arn, COUNT(*), COALESCE(SUM(transitions), 0) \
                     FROM executions WHERE namespace = ?1 AND start_ms >= ?2 \
                     GROUP BY state_machine_arn ORDER BY state_machine_arn",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns, since_ms], |r| {
                    Ok(TransitionUsage {
                        state_machine_arn: r.get(0)?,
                        executions: r.get::<_, i64>(1)? as u64,
                        transitions: r.get::<_, i64>(2)? as u64,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn commit_execution(
        &self,
        arn: &str,
        owner: &str,
        c: &Checkpoint,
    ) -> Result<bool, StoreError> {
        let (arn, owner, c) = (arn.to_string(), owner.to_string(), c.clone());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let running = c.status == "RUNNING";
            let n = tx
                .execute(
                    "UPDATE executions SET status = ?3, state = ?4, transitions = ?5, \
                     output = ?6, error = ?7, cause = ?8, stop_ms = ?9, \
                     lease_until_ms = CASE WHEN ?10 THEN ?11 ELSE 0 END, \
                     owner = CASE WHEN ?10 THEN owner ELSE NULL END \
                     WHERE arn = ?1 AND owner = ?2 AND status = 'RUNNING'",
                    params![
                        arn,
                        owner,
                        c.status,
                        c.state,
                        c.transitions,
                        c.output,
                        c.error,
                        c.cause,
                        c.stop_ms,
                        running,
                        c.lease_until_ms
                    ],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Ok(false);
            }
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO execution_events (execution_arn, id, event) \
                         VALUES (?1, ?2, ?3) ON CONFLICT DO UPDATE SET event = ?3",
                    )
                    .map_err(db_err)?;
                for (id, event) in &c.events {
                    insert.execute(params![arn, id, event]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn abort_execution(&self, arn: &str, abort: &Abort) -> Result<bool, StoreError> {
        let (arn, a) = (arn.to_string(), abort.clone());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let n = tx
                .execute(
                    "UPDATE executions SET status = 'ABORTED', error = ?2, cause = ?3, \
                     stop_ms = ?4, lease_until_ms = 0, owner = NULL \
                     WHERE arn = ?1 AND status = 'RUNNING'",
                    params![arn, a.error, a.cause, a.stop_ms],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Ok(false);
            }
            let last: u64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(id), 0) FROM execution_events WHERE execution_arn = ?1",
                    params![arn],
                    |r| r.get(0),
                )
                .map_err(db_err)?;
            let event = number_event(&a.event, last + 1)?;
            tx.execute(
                "INSERT INTO execution_events (execution_arn, id, event) VALUES (?1, ?2, ?3)",
                params![arn, last + 1, event],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn execution_history(
        &self,
        arn: &str,
        after_id: u64,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let arn = arn.to_string();
        self.read(move |conn| {
            let sql = if reverse {
                "SELECT id, event FROM execution_events WHERE execution_arn = ?1 \
                 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3"
            } else {
                "SELECT id, event FROM execution_events WHERE execution_arn = ?1 \
                 AND id > ?2 ORDER BY id LIMIT ?3"
            };
            let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
            let rows = stmt
                .query_map(params![arn, after_id, limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn claim_executions(
        &self,
        now_ms: i64,
        owner: &str,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExecution>, StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "UPDATE executions SET owner = ?1, lease_until_ms = ?2 WHERE arn IN \
                     (SELECT arn FROM executions WHERE status = 'RUNNING' \
                      AND lease_until_ms <= ?3 ORDER BY start_ms LIMIT ?4) \
                     RETURNING {EXECUTION_COLUMNS}"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![owner, lease_until_ms, now_ms, limit as i64],
                    execution_from_row,
                )
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn release_execution_leases(
        &self,
        now_ms: i64,
        live_owners: &[String],
    ) -> Result<u64, StoreError> {
        let live = serde_json::to_string(live_owners).map_err(db_err)?;
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE executions SET lease_until_ms = ?1 WHERE status = 'RUNNING' \
                     AND lease_until_ms > ?1 \
                     AND (owner IS NULL OR owner NOT IN (SELECT value FROM json_each(?2)))",
                    params![now_ms, live],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn extend_execution_leases(
        &self,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<u64, StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE executions SET lease_until_ms = ?2 \
                     WHERE status = 'RUNNING' AND owner = ?1",
                    params![owner, lease_until_ms],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }
}
