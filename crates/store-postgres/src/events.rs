//! [`EventStore`] on PostgreSQL: pending async events, dead letters and schedules. A batch of
//! writes is one transaction whose statements are pipelined on one connection; each write is
//! one statement (data-modifying CTEs where SQLite runs two), fenced by `claims` and `leased`,
//! and inserts are `ON CONFLICT DO NOTHING`, so one write that does not apply never aborts the
//! others. Claims take rows with `FOR UPDATE SKIP LOCKED`, so nodes claiming at once never get
//! one event twice.

use crate::PgStore;
use async_trait::async_trait;
use lambent_store::events::{
    Claim, DeadLetter, EventStore, EventWrite, QueuedEvent, StoredSchedule,
};
use lambent_store::StoreError;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

const EVENT_COLUMNS: &str =
    "id, namespace, function, payload, trigger, created_ms, due_ms, attempts, claims, trace";
/// How many [`EVENT_COLUMNS`] there are.
const EVENT_COLUMN_COUNT: usize = 10;

fn event_from_row(row: &Row) -> QueuedEvent {
    let (trace, hop) = lambent_store::event_trace_from_column(row.get::<_, Option<&str>>(9));
    QueuedEvent {
        id: row.get(0),
        namespace: row.get(1),
        function: row.get(2),
        payload: row.get(3),
        trigger: row.get(4),
        created_ms: row.get(5),
        due_ms: row.get(6),
        attempts: row.get::<_, i64>(7) as u32,
        claims: row.get::<_, i64>(8) as u32,
        trace,
        hop,
    }
}

const LETTER_COLUMNS: &str = "id, namespace, function, payload, trigger, created_ms, failed_ms, \
attempts, error_type, error_message, activation_id";

fn letter_from_row(row: &Row) -> DeadLetter {
    DeadLetter {
        id: row.get(0),
        namespace: row.get(1),
        function: row.get(2),
        payload: row.get(3),
        trigger: row.get(4),
        created_ms: row.get(5),
        failed_ms: row.get(6),
        attempts: row.get::<_, i64>(7) as u32,
        error_type: row.get(8),
        error_message: row.get(9),
        activation_id: row.get(10),
    }
}

const SCHEDULE_COLUMNS: &str =
    "namespace, name, function, expression, timezone, next_fire_ms, created_ms, input";

/// A schedule's constant input (JSON text), sent instead of EventBridge's scheduled event.
pub(crate) const INPUT_MIGRATION: &str = "ALTER TABLE schedules ADD COLUMN input TEXT;";

fn schedule_from_row(row: &Row) -> StoredSchedule {
    StoredSchedule {
        namespace: row.get(0),
        name: row.get(1),
        function: row.get(2),
        expression: row.get(3),
        timezone: row.get(4),
        next_fire_ms: row.get(5),
        created_ms: row.get(6),
        input: row.get(7),
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

/// One write as one statement: its SQL, its parameters, and whether it is a query whose single
/// value is the count of rows the write applied to (else the statement's own row count).
struct Planned {
    sql: String,
    params: Vec<Param>,
    counts: bool,
}

/// `$k, …, $k+n-1`.
fn placeholders(k: usize, n: usize) -> String {
    (k..k + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn event_params(e: &QueuedEvent, params: &mut Vec<Param>) {
    params.push(Box::new(e.id.clone()));
    params.push(Box::new(e.namespace.clone()));
    params.push(Box::new(e.function.clone()));
    params.push(Box::new(e.payload.clone()));
    params.push(Box::new(e.trigger.clone()));
    params.push(Box::new(e.created_ms));
    params.push(Box::new(e.due_ms));
    params.push(Box::new(i64::from(e.attempts)));
    params.push(Box::new(i64::from(e.claims)));
    params.push(Box::new(lambent_store::event_trace_column(
        e.trace.as_ref(),
        e.hop.as_ref(),
    )));
}

/// A CTE inserting `then` (when given) once the CTE `gate` returned a row, as a `WITH` item.
fn then_insert(then: Option<&QueuedEvent>, gate: &str, params: &mut Vec<Param>) -> String {
    let Some(e) = then else {
        return String::new();
    };
    let k = params.len() + 1;
    event_params(e, params);
    format!(
        ", t AS (INSERT INTO async_events ({EVENT_COLUMNS}) SELECT {} \
         WHERE EXISTS (SELECT 1 FROM {gate}) ON CONFLICT (id) DO NOTHING)",
        placeholders(k, EVENT_COLUMN_COUNT)
    )
}

fn plan(write: &EventWrite) -> Planned {
    let mut params: Vec<Param> = Vec::new();
    match write {
        EventWrite::Enqueue(e) => {
            event_params(e, &mut params);
            Planned {
                sql: format!(
                    "INSERT INTO async_events ({EVENT_COLUMNS}) VALUES ({}) \
                     ON CONFLICT (id) DO NOTHING",
                    placeholders(1, EVENT_COLUMN_COUNT)
                ),
                params,
                counts: false,
            }
        }
        EventWrite::Complete { id, claim, then } => {
            params.push(Box::new(id.clone()));
            params.push(Box::new(i64::from(*claim)));
            let t = then_insert(then.as_ref(), "d", &mut params);
            Planned {
                sql: format!(
                    "WITH d AS (DELETE FROM async_events WHERE id = $1 AND claims = $2 AND leased \
                     RETURNING 1){t} SELECT count(*) FROM d"
                ),
                params,
                counts: true,
            }
        }
        EventWrite::Retry {
            id,
            claim,
            attempts,
            due_ms,
            error,
        } => {
            params.push(Box::new(id.clone()));
            params.push(Box::new(i64::from(*claim)));
            params.push(Box::new(i64::from(*attempts)));
            params.push(Box::new(*due_ms));
            params.push(Box::new(error.clone()));
            Planned {
                sql: "UPDATE async_events SET leased = FALSE, attempts = $3, due_ms = $4, \
                      last_error = $5 WHERE id = $1 AND claims = $2 AND leased"
                    .into(),
                params,
                counts: false,
            }
        }
        EventWrite::DeadLetter {
            claim,
            letter: l,
            then,
        } => {
            params.push(Box::new(l.id.clone()));
            params.push(Box::new(i64::from(*claim)));
            params.push(Box::new(l.namespace.clone()));
            params.push(Box::new(l.function.clone()));
            params.push(Box::new(l.payload.clone()));
            params.push(Box::new(l.trigger.clone()));
            params.push(Box::new(l.created_ms));
            params.push(Box::new(l.failed_ms));
            params.push(Box::new(i64::from(l.attempts)));
            params.push(Box::new(l.error_type.clone()));
            params.push(Box::new(l.error_message.clone()));
            params.push(Box::new(l.activation_id.clone()));
            let t = then_insert(then.as_ref(), "d", &mut params);
            Planned {
                sql: format!(
                    "WITH d AS (DELETE FROM async_events WHERE id = $1 AND claims = $2 AND leased \
                     RETURNING 1), \
                     l AS (INSERT INTO dead_letters ({LETTER_COLUMNS}) \
                       SELECT $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 \
                       WHERE EXISTS (SELECT 1 FROM d) \
                       ON CONFLICT (namespace, id) DO UPDATE SET function = excluded.function, \
                       payload = excluded.payload, trigger = excluded.trigger, \
                       created_ms = excluded.created_ms, failed_ms = excluded.failed_ms, \
                       attempts = excluded.attempts, error_type = excluded.error_type, \
                       error_message = excluded.error_message, \
                       activation_id = excluded.activation_id){t} \
                     SELECT count(*) FROM d"
                ),
                params,
                counts: true,
            }
        }
        EventWrite::Redrive {
            namespace,
            dead_letter_id,
            event,
        } => {
            params.push(Box::new(namespace.clone()));
            params.push(Box::new(dead_letter_id.clone()));
            let t = then_insert(Some(event), "d", &mut params);
            Planned {
                sql: format!(
                    "WITH d AS (DELETE FROM dead_letters WHERE namespace = $1 AND id = $2 \
                     RETURNING 1){t} SELECT count(*) FROM d"
                ),
                params,
                counts: true,
            }
        }
        EventWrite::Fire {
            namespace,
            name,
            expected_next_ms,
            next_fire_ms,
            event,
        } => {
            params.push(Box::new(namespace.clone()));
            params.push(Box::new(name.clone()));
            params.push(Box::new(*expected_next_ms));
            let moved = match next_fire_ms {
                Some(next) => {
                    params.push(Box::new(*next));
                    "UPDATE schedules SET next_fire_ms = $4 \
                     WHERE namespace = $1 AND name = $2 AND next_fire_ms = $3 RETURNING 1"
                }
                None => {
                    "DELETE FROM schedules \
                     WHERE namespace = $1 AND name = $2 AND next_fire_ms = $3 RETURNING 1"
                }
            };
            let t = then_insert(Some(event), "f", &mut params);
            Planned {
                sql: format!("WITH f AS ({moved}){t} SELECT count(*) FROM f"),
                params,
                counts: true,
            }
        }
    }
}

#[async_trait]
impl EventStore for PgStore {
    async fn write_events(&self, batch: Vec<EventWrite>) -> Result<Vec<bool>, StoreError> {
        let planned: Vec<Planned> = batch.iter().map(plan).collect();
        let mut conn = self.conn().await?;
        let transaction = conn.transaction().await.map_err(|e| self.err(e))?;
        let tx = &transaction;
        // Pipelined: every statement is sent at once, PostgreSQL runs them in order.
        let applied = futures_util::future::try_join_all(planned.iter().map(|p| async move {
            let stmt = tx.prepare_cached(&p.sql).await?;
            let params: Vec<&(dyn ToSql + Sync)> = p
                .params
                .iter()
                .map(|a| a.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let n = if p.counts {
                tx.query_one(&stmt, &params).await?.get::<_, i64>(0) as u64
            } else {
                tx.execute(&stmt, &params).await?
            };
            Ok::<bool, tokio_postgres::Error>(n == 1)
        }))
        .await
        .map_err(|e| self.err(e))?;
        transaction.commit().await.map_err(|e| self.err(e))?;
        Ok(applied)
    }

    async fn claim_events(&self, claim: &Claim<'_>) -> Result<Vec<QueuedEvent>, StoreError> {
        let home: Option<Vec<String>> = claim.home.map(<[String]>::to_vec);
        let spill_due_ms = claim.now_ms - claim.spill_after_ms;
        let rows = self
            .query(
                "WITH c AS (SELECT id, due_ms FROM async_events WHERE due_ms <= $1 \
                   AND ($5::text[] IS NULL OR due_ms <= $6 \
                        OR namespace || '/' || function = ANY($5::text[])) \
                   ORDER BY due_ms LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 UPDATE async_events e SET leased = TRUE, claims = e.claims + 1, due_ms = $3, \
                   owner = $4 FROM c WHERE e.id = c.id \
                 RETURNING e.id, e.namespace, e.function, e.payload, e.trigger, e.created_ms, \
                   e.due_ms, e.attempts, e.claims, e.trace, c.due_ms",
                &[
                    &claim.now_ms,
                    &(claim.limit as i64),
                    &claim.lease_until_ms,
                    &claim.owner,
                    &home,
                    &spill_due_ms,
                ],
            )
            .await?;
        let mut claimed: Vec<(i64, QueuedEvent)> = rows
            .iter()
            .map(|r| (r.get::<_, i64>(EVENT_COLUMN_COUNT), event_from_row(r)))
            .collect();
        claimed.sort_by_key(|(due, _)| *due);
        Ok(claimed.into_iter().map(|(_, e)| e).collect())
    }

    async fn extend_lease(&self, id: &str, claim: u32, until_ms: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE async_events SET due_ms = $3 WHERE id = $1 AND claims = $2 AND leased",
            &[&id, &i64::from(claim), &until_ms],
        )
        .await?;
        Ok(())
    }

    async fn release_leases(&self, now_ms: i64, live_owners: &[String]) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE async_events SET leased = FALSE, due_ms = LEAST(due_ms, $1), owner = NULL \
             WHERE leased AND NOT (coalesce(owner, '') = ANY($2::text[]))",
            &[&now_ms, &live_owners],
        )
        .await
    }

    async fn release_leases_of(&self, now_ms: i64, owner: &str) -> Result<u64, StoreError> {
        self.execute(
            "UPDATE async_events SET leased = FALSE, due_ms = LEAST(due_ms, $1), owner = NULL \
             WHERE leased AND owner = $2",
            &[&now_ms, &owner],
        )
        .await
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query("SELECT MIN(due_ms) FROM async_events", &[])
            .await?[0]
            .get(0))
    }

    async fn pending_events(&self, namespace: Option<&str>) -> Result<u64, StoreError> {
        let n: i64 = self
            .query(
                "SELECT COUNT(*) FROM async_events WHERE $1::text IS NULL OR namespace = $1",
                &[&namespace],
            )
            .await?[0]
            .get(0);
        Ok(n as u64)
    }

    async fn list_dead_letters(
        &self,
        namespace: &str,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE namespace = $1 \
                     AND ($2::text IS NULL OR function = $2) ORDER BY failed_ms DESC, id LIMIT $3"
                ),
                &[&namespace, &function, &(limit as i64)],
            )
            .await?
            .iter()
            .map(letter_from_row)
            .collect())
    }

    async fn get_dead_letter(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE namespace = $1 AND id = $2"
                ),
                &[&namespace, &id],
            )
            .await?
            .as_ref()
            .map(letter_from_row))
    }

    async fn put_schedule(&self, s: &StoredSchedule, replace: bool) -> Result<bool, StoreError> {
        let on_conflict = if replace {
            "DO UPDATE SET function = excluded.function, expression = excluded.expression, \
             timezone = excluded.timezone, next_fire_ms = excluded.next_fire_ms, \
             created_ms = excluded.created_ms, input = excluded.input"
        } else {
            "DO NOTHING"
        };
        let n = self
            .execute(
                &format!(
                    "INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (namespace, name) {on_conflict}"
                ),
                &[
                    &s.namespace,
                    &s.name,
                    &s.function,
                    &s.expression,
                    &s.timezone,
                    &s.next_fire_ms,
                    &s.created_ms,
                    &s.input,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn list_schedules(&self, namespace: &str) -> Result<Vec<StoredSchedule>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE namespace = $1 ORDER BY name"
                ),
                &[&namespace],
            )
            .await?
            .iter()
            .map(schedule_from_row)
            .collect())
    }

    async fn get_schedule(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredSchedule>, StoreError> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE namespace = $1 AND name = $2"
                ),
                &[&namespace, &name],
            )
            .await?
            .as_ref()
            .map(schedule_from_row))
    }

    async fn delete_schedule(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM schedules WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn due_schedules(&self, now_ms: i64) -> Result<Vec<StoredSchedule>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE next_fire_ms <= $1 \
                     ORDER BY next_fire_ms"
                ),
                &[&now_ms],
            )
            .await?
            .iter()
            .map(schedule_from_row)
            .collect())
    }

    async fn next_fire_ms(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query("SELECT MIN(next_fire_ms) FROM schedules", &[])
            .await?[0]
            .get(0))
    }
}
