//! [`WorkflowStore`] on PostgreSQL: state machines, executions (with their latest checkpoint and
//! lease) and history events. A checkpoint and its events are one transaction, fenced on the
//! execution's owner; claims of executions whose lease ran out use `FOR UPDATE SKIP LOCKED`, so
//! two nodes never take one execution.

use crate::PgStore;
use async_trait::async_trait;
use lambent_store::workflows::{
    number_event, Abort, Checkpoint, ExecutionQuery, Started, StoredExecution, StoredStateMachine,
    TransitionUsage, WorkflowStore, EXECUTION_COLUMNS, SM_COLUMNS,
};
use lambent_store::StoreError;
use tokio_postgres::Row;

/// The workflow tables (a refinery migration of [`crate::schema`]).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE state_machines (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    arn        TEXT NOT NULL,
    definition TEXT NOT NULL,
    kind       TEXT NOT NULL,
    role_arn   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    revision   BIGINT NOT NULL,
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
    start_ms          BIGINT NOT NULL,
    stop_ms           BIGINT,
    state             TEXT,
    transitions       BIGINT NOT NULL DEFAULT 0,
    owner             TEXT,
    lease_until_ms    BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX executions_by_machine ON executions (state_machine_arn, start_ms DESC, arn DESC);
CREATE INDEX executions_running ON executions (lease_until_ms) WHERE status = 'RUNNING';
CREATE TABLE execution_events (
    execution_arn TEXT NOT NULL,
    id            BIGINT NOT NULL,
    event         TEXT NOT NULL,
    PRIMARY KEY (execution_arn, id)
);
"#;

fn sm_from_row(r: &Row) -> StoredStateMachine {
    StoredStateMachine {
        namespace: r.get(0),
        name: r.get(1),
        arn: r.get(2),
        definition: r.get(3),
        kind: r.get(4),
        role_arn: r.get(5),
        created_ms: r.get(6),
        updated_ms: r.get(7),
        revision: r.get::<_, i64>(8) as u64,
    }
}

fn execution_from_row(r: &Row) -> StoredExecution {
    StoredExecution {
        arn: r.get(0),
        namespace: r.get(1),
        name: r.get(2),
        state_machine_arn: r.get(3),
        definition: r.get(4),
        status: r.get(5),
        input: r.get(6),
        output: r.get(7),
        error: r.get(8),
        cause: r.get(9),
        start_ms: r.get(10),
        stop_ms: r.get(11),
        state: r.get(12),
        transitions: r.get::<_, i64>(13) as u64,
        owner: r.get(14),
        lease_until_ms: r.get(15),
        trace: lambent_store::context_from_column(r.get(16)),
    }
}

#[async_trait]
impl WorkflowStore for PgStore {
    async fn create_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError> {
        let n = self
            .execute(
                &format!(
                    "INSERT INTO state_machines ({SM_COLUMNS}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING"
                ),
                &[
                    &sm.namespace,
                    &sm.name,
                    &sm.arn,
                    &sm.definition,
                    &sm.kind,
                    &sm.role_arn,
                    &sm.created_ms,
                    &sm.updated_ms,
                    &(sm.revision as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn update_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE state_machines SET definition = $3, role_arn = $4, updated_ms = $5, \
                 revision = $6::BIGINT WHERE namespace = $1 AND name = $2 AND revision = $6::BIGINT - 1",
                &[
                    &sm.namespace,
                    &sm.name,
                    &sm.definition,
                    &sm.role_arn,
                    &sm.updated_ms,
                    &(sm.revision as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn get_state_machine(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredStateMachine>, StoreError> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {SM_COLUMNS} FROM state_machines WHERE namespace = $1 AND name = $2"
                ),
                &[&namespace, &name],
            )
            .await?
            .map(|r| sm_from_row(&r)))
    }

    async fn list_state_machines(
        &self,
        namespace: &str,
    ) -> Result<Vec<StoredStateMachine>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {SM_COLUMNS} FROM state_machines WHERE namespace = $1 ORDER BY name"
                ),
                &[&namespace],
            )
            .await?
            .iter()
            .map(sm_from_row)
            .collect())
    }

    async fn delete_state_machine(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "DELETE FROM state_machines WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await?
            > 0)
    }

    async fn start_execution(&self, e: &StoredExecution) -> Result<Started, StoreError> {
        let n = self
            .execute(
                &format!(
                    "INSERT INTO executions ({EXECUTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, \
                     $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING"
                ),
                &[
                    &e.arn,
                    &e.namespace,
                    &e.name,
                    &e.state_machine_arn,
                    &e.definition,
                    &e.status,
                    &e.input,
                    &e.output,
                    &e.error,
                    &e.cause,
                    &e.start_ms,
                    &e.stop_ms,
                    &e.state,
                    &(e.transitions as i64),
                    &e.owner,
                    &e.lease_until_ms,
                    &e.trace.as_ref().map(|t| t.encode()),
                ],
            )
            .await?;
        if n == 1 {
            return Ok(Started::New);
        }
        let existing = self
            .get_execution(&e.arn)
            .await?
            .ok_or_else(|| StoreError::Database(format!("execution {} vanished", e.arn)))?;
        Ok(Started::Existing(Box::new(existing)))
    }

    async fn get_execution(&self, arn: &str) -> Result<Option<StoredExecution>, StoreError> {
        Ok(self
            .query_opt(
                &format!("SELECT {EXECUTION_COLUMNS} FROM executions WHERE arn = $1"),
                &[&arn],
            )
            .await?
            .map(|r| execution_from_row(&r)))
    }

    async fn list_executions(
        &self,
        q: &ExecutionQuery,
    ) -> Result<Vec<StoredExecution>, StoreError> {
        let (after_ms, after_arn) = q.after.clone().unwrap_or((i64::MAX, String::new()));
        Ok(self
            .query(
                &format!(
                    "SELECT {EXECUTION_COLUMNS} FROM executions WHERE state_machine_arn = $1 \
                     AND ($2::TEXT IS NULL OR status = $2) \
                     AND (start_ms < $3 OR (start_ms = $3 AND ($4 = '' OR arn < $4))) \
                     ORDER BY start_ms DESC, arn DESC LIMIT $5"
                ),
                &[
                    &q.state_machine_arn,
                    &q.status,
                    &after_ms,
                    &after_arn,
                    &(q.limit as i64),
                ],
            )
            .await?
            .iter()
            .map(execution_from_row)
            .collect())
    }

    async fn transition_usage(
        &self,
        namespace: &str,
        since_ms: i64,
    ) -> Result<Vec<TransitionUsage>, StoreError> {
        Ok(self
            .query(
                "SELECT state_machine_arn, COUNT(*)::BIGINT, COALESCE(SUM(transitions), 0)::BIGINT \
                 FROM executions WHERE namespace = $1 AND start_ms >= $2 \
                 GROUP BY state_machine_arn ORDER BY state_machine_arn",
                &[&namespace, &since_ms],
            )
            .await?
            .iter()
            .map(|r| TransitionUsage {
                state_machine_arn: r.get(0),
                executions: r.get::<_, i64>(1) as u64,
                transitions: r.get::<_, i64>(2) as u64,
            })
            .collect())
    }

    async fn commit_execution(
        &self,
        arn: &str,
        owner: &str,
        c: &Checkpoint,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let running = c.status == "RUNNING";
        let n = tx
            .execute(
                "UPDATE executions SET status = $3, state = $4, transitions = $5, \
                 output = $6, error = $7, cause = $8, stop_ms = $9, \
                 lease_until_ms = CASE WHEN $10::BOOLEAN THEN $11::BIGINT ELSE 0 END, \
                 owner = CASE WHEN $10::BOOLEAN THEN owner ELSE NULL END \
                 WHERE arn = $1 AND owner = $2 AND status = 'RUNNING'",
                &[
                    &arn,
                    &owner,
                    &c.status,
                    &c.state,
                    &(c.transitions as i64),
                    &c.output,
                    &c.error,
                    &c.cause,
                    &c.stop_ms,
                    &running,
                    &c.lease_until_ms,
                ],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Ok(false);
        }
        if !c.events.is_empty() {
            let ids: Vec<i64> = c.events.iter().map(|(id, _)| *id as i64).collect();
            let events: Vec<&str> = c.events.iter().map(|(_, e)| e.as_str()).collect();
            tx.execute(
                "INSERT INTO execution_events (execution_arn, id, event) \
                 SELECT $1, id, event FROM UNNEST($2::BIGINT[], $3::TEXT[]) AS t(id, event) \
                 ON CONFLICT (execution_arn, id) DO UPDATE SET event = EXCLUDED.event",
                &[&arn, &ids, &events],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(true)
    }

    async fn abort_execution(&self, arn: &str, a: &Abort) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "UPDATE executions SET status = 'ABORTED', error = $2, cause = $3, \
                 stop_ms = $4, lease_until_ms = 0, owner = NULL \
                 WHERE arn = $1 AND status = 'RUNNING'",
                &[&arn, &a.error, &a.cause, &a.stop_ms],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Ok(false);
        }
        // The row lock taken above holds off the owner's commits: the last id is stable.
        let last: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(id), 0) FROM execution_events WHERE execution_arn = $1",
                &[&arn],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let id = last + 1;
        let event = number_event(&a.event, id as u64)?;
        tx.execute(
            "INSERT INTO execution_events (execution_arn, id, event) VALUES ($1, $2, $3)",
            &[&arn, &id, &event],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(true)
    }

    async fn execution_history(
        &self,
        arn: &str,
        after_id: u64,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError> {
        let sql = if reverse {
            "SELECT id, event FROM execution_events WHERE execution_arn = $1 \
             AND ($2::BIGINT = 0 OR id < $2::BIGINT) ORDER BY id DESC LIMIT $3"
        } else {
            "SELECT id, event FROM execution_events WHERE execution_arn = $1 \
             AND id > $2::BIGINT ORDER BY id LIMIT $3"
        };
        Ok(self
            .query(sql, &[&arn, &(after_id as i64), &(limit as i64)])
            .await?
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
            .collect())
    }

    async fn claim_executions(
        &self,
        now_ms: i64,
        owner: &str,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExecution>, StoreError> {
        let qualified = EXECUTION_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        Ok(self
            .query(
                &format!(
                    "UPDATE executions e SET owner = $1, lease_until_ms = $2 FROM \
                     (SELECT arn FROM executions WHERE status = 'RUNNING' \
                      AND lease_until_ms <= $3 ORDER BY start_ms LIMIT $4 \
                      FOR UPDATE SKIP LOCKED) due WHERE e.arn = due.arn RETURNING {qualified}"
                ),
                &[&owner, &lease_until_ms, &now_ms, &(limit as i64)],
            )
            .await?
            .iter()
            .map(execution_from_row)
            .collect())
    }

    async fn release_execution_leases(
        &self,
        now_ms: i64,
        live_owners: &[String],
    ) -> Result<u64, StoreError> {
        let live: Vec<String> = live_owners.to_vec();
        self.execute(
            "UPDATE executions SET lease_until_ms = $1 WHERE status = 'RUNNING' \
             AND lease_until_ms > $1 AND (owner IS NULL OR NOT (owner = ANY($2)))",
            &[&now_ms, &live],
        )
        .await
    }

    async fn extend_execution_leases(
        &self,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE executions SET lease_until_ms = $2 WHERE status = 'RUNNING' AND owner = $1",
            &[&owner, &lease_until_ms],
        )
        .await
    }
}
