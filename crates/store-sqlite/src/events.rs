//! The embedded [`EventStore`]: pending async events, dead letters and schedules in the same
//! SQLite database (WAL). Every batch of writes is one transaction, so a commit is durable
//! against a killed process before anyone is told "accepted".

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::events::{
    Claim, DeadLetter, EventStore, EventWrite, QueuedEvent, StoredSchedule,
};
use lambent_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

/// The tables of this module, one element of the migrations list.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE async_events (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    function   TEXT NOT NULL,
    payload    BLOB NOT NULL,
    trigger    TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    due_ms     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    claims     INTEGER NOT NULL DEFAULT 0,
    leased     INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX async_events_due ON async_events (due_ms);
CREATE TABLE dead_letters (
    namespace     TEXT NOT NULL,
    id            TEXT NOT NULL,
    function      TEXT NOT NULL,
    payload       BLOB NOT NULL,
    trigger       TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    failed_ms     INTEGER NOT NULL,
    attempts      INTEGER NOT NULL,
    error_type    TEXT NOT NULL,
    error_message TEXT NOT NULL,
    activation_id TEXT,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX dead_letters_by_time ON dead_letters (namespace, failed_ms DESC);
CREATE TABLE schedules (
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    function     TEXT NOT NULL,
    expression   TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    next_fire_ms INTEGER,
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE INDEX schedules_next_fire ON schedules (next_fire_ms);
"#;

/// Who holds each lease (a cluster node's id; `local` on the embedded node).
pub(crate) const OWNER_MIGRATION: &str = "ALTER TABLE async_events ADD COLUMN owner TEXT;";

const EVENT_COLUMNS: &str =
    "id, namespace, function, payload, trigger, created_ms, due_ms, attempts, claims, trace";

/// The trace context an event carries (`lambent_store::event_trace_column`).
pub(crate) const TRACE_MIGRATION: &str = "ALTER TABLE async_events ADD COLUMN trace TEXT;";

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<QueuedEvent> {
    let (trace, hop) =
        lambent_store::event_trace_from_column(row.get::<_, Option<String>>(9)?.as_deref());
    Ok(QueuedEvent {
        id: row.get(0)?,
        namespace: row.get(1)?,
        function: row.get(2)?,
        payload: row.get(3)?,
        trigger: row.get(4)?,
        created_ms: row.get(5)?,
        due_ms: row.get(6)?,
        attempts: row.get(7)?,
        claims: row.get(8)?,
        trace,
        hop,
    })
}

const LETTER_COLUMNS: &str = "id, namespace, function, payload, trigger, created_ms, failed_ms, \
attempts, error_type, error_message, activation_id";

fn letter_from_row(row: &Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        namespace: row.get(1)?,
        function: row.get(2)?,
        payload: row.get(3)?,
        trigger: row.get(4)?,
        created_ms: row.get(5)?,
        failed_ms: row.get(6)?,
        attempts: row.get(7)?,
        error_type: row.get(8)?,
        error_message: row.get(9)?,
        activation_id: row.get(10)?,
    })
}

const SCHEDULE_COLUMNS: &str =
    "namespace, name, function, expression, timezone, next_fire_ms, created_ms, input";

/// A schedule's constant input (JSON text), sent instead of EventBridge's scheduled event.
pub(crate) const INPUT_MIGRATION: &str = "ALTER TABLE schedules ADD COLUMN input TEXT;";

fn schedule_from_row(row: &Row<'_>) -> rusqlite::Result<StoredSchedule> {
    Ok(StoredSchedule {
        namespace: row.get(0)?,
        name: row.get(1)?,
        function: row.get(2)?,
        expression: row.get(3)?,
        timezone: row.get(4)?,
        next_fire_ms: row.get(5)?,
        created_ms: row.get(6)?,
        input: row.get(7)?,
    })
}

fn insert_event(tx: &Transaction<'_>, e: &QueuedEvent) -> rusqlite::Result<usize> {
    tx.prepare_cached(&format!(
        "INSERT INTO async_events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        e.id,
        e.namespace,
        e.function,
        e.payload,
        e.trigger,
        e.created_ms,
        e.due_ms,
        e.attempts,
        e.claims,
        lambent_store::event_trace_column(e.trace.as_ref(), e.hop.as_ref()),
    ])
}

fn delete_held(tx: &Transaction<'_>, id: &str, claim: u32) -> rusqlite::Result<bool> {
    let n = tx
        .prepare_cached("DELETE FROM async_events WHERE id = ?1 AND claims = ?2 AND leased = 1")?
        .execute(params![id, claim])?;
    Ok(n == 1)
}

fn apply(tx: &Transaction<'_>, write: &EventWrite) -> rusqlite::Result<bool> {
    match write {
        EventWrite::Enqueue(e) => insert_event(tx, e).map(|_| true),
        EventWrite::Complete { id, claim, then } => {
            let held = delete_held(tx, id, *claim)?;
            if let (true, Some(e)) = (held, then) {
                insert_event(tx, e)?;
            }
            Ok(held)
        }
        EventWrite::Retry {
            id,
            claim,
            attempts,
            due_ms,
            error,
        } => {
            let n = tx
                .prepare_cached(
                    "UPDATE async_events SET leased = 0, attempts = ?3, due_ms = ?4, \
                     last_error = ?5 WHERE id = ?1 AND claims = ?2 AND leased = 1",
                )?
                .execute(params![id, claim, attempts, due_ms, error])?;
            Ok(n == 1)
        }
        EventWrite::DeadLetter {
            claim,
            letter: l,
            then,
        } => {
            if !delete_held(tx, &l.id, *claim)? {
                return Ok(false);
            }
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO dead_letters ({LETTER_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))?
            .execute(params![
                l.id,
                l.namespace,
                l.function,
                l.payload,
                l.trigger,
                l.created_ms,
                l.failed_ms,
                l.attempts,
                l.error_type,
                l.error_message,
                l.activation_id
            ])?;
            if let Some(e) = then {
                insert_event(tx, e)?;
            }
            Ok(true)
        }
        EventWrite::Redrive {
            namespace,
            dead_letter_id,
            event,
        } => {
            let n = tx
                .prepare_cached("DELETE FROM dead_letters WHERE namespace = ?1 AND id = ?2")?
                .execute(params![namespace, dead_letter_id])?;
            if n == 1 {
                insert_event(tx, event)?;
            }
            Ok(n == 1)
        }
        EventWrite::Fire {
            namespace,
            name,
            expected_next_ms,
            next_fire_ms,
            event,
        } => {
            let n = match next_fire_ms {
                Some(next) => tx
                    .prepare_cached(
                        "UPDATE schedules SET next_fire_ms = ?4 \
                         WHERE namespace = ?1 AND name = ?2 AND next_fire_ms = ?3",
                    )?
                    .execute(params![namespace, name, expected_next_ms, next])?,
                None => tx
                    .prepare_cached(
                        "DELETE FROM schedules \
                         WHERE namespace = ?1 AND name = ?2 AND next_fire_ms = ?3",
                    )?
                    .execute(params![namespace, name, expected_next_ms])?,
            };
            if n == 1 {
                insert_event(tx, event)?;
            }
            Ok(n == 1)
        }
    }
}

fn query_list<T>(
    conn: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let rows = stmt.query_map(args, map).map_err(db_err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn write_events(&self, batch: Vec<EventWrite>) -> Result<Vec<bool>, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let applied = batch
                .iter()
                .map(|w| apply(&tx, w))
                .collect::<rusqlite::Result<Vec<bool>>>()
                .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(applied)
        })
        .await
    }

    async fn claim_events(&self, claim: &Claim<'_>) -> Result<Vec<QueuedEvent>, StoreError> {
        let (now_ms, limit, lease_until_ms) = (claim.now_ms, claim.limit, claim.lease_until_ms);
        let owner = claim.owner.to_string();
        let home = claim
            .home
            .map(|h| serde_json::to_string(h).unwrap_or_default());
        let spill_due_ms = now_ms - claim.spill_after_ms;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let mut claimed = {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM async_events WHERE due_ms <= ?1 \
                         AND (?3 IS NULL OR due_ms <= ?4 \
                              OR namespace || '/' || function IN (SELECT value FROM json_each(?3))) \
                         ORDER BY due_ms LIMIT ?2"
                    ))
                    .map_err(db_err)?;
                let rows = stmt
                    .query_map(
                        params![now_ms, limit as i64, home, spill_due_ms],
                        event_from_row,
                    )
                    .map_err(db_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
            };
            {
                let mut lease = tx
                    .prepare_cached(
                        "UPDATE async_events SET leased = 1, claims = claims + 1, due_ms = ?2, \
                         owner = ?3 WHERE id = ?1",
                    )
                    .map_err(db_err)?;
                for e in &mut claimed {
                    lease
                        .execute(params![e.id, lease_until_ms, owner])
                        .map_err(db_err)?;
                    e.claims += 1;
                    e.due_ms = lease_until_ms;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(claimed)
        })
        .await
    }

    async fn extend_lease(&self, id: &str, claim: u32, until_ms: i64) -> Result<(), StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE async_events SET due_ms = ?3 WHERE id = ?1 AND claims = ?2 AND leased = 1",
                params![id, claim, until_ms],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn release_leases(&self, now_ms: i64, live_owners: &[String]) -> Result<u64, StoreError> {
        let live = serde_json::to_string(live_owners).unwrap_or_default();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE async_events SET leased = 0, due_ms = MIN(due_ms, ?1), owner = NULL \
                     WHERE leased = 1 \
                     AND coalesce(owner, '') NOT IN (SELECT value FROM json_each(?2))",
                    params![now_ms, live],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn release_leases_of(&self, now_ms: i64, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE async_events SET leased = 0, due_ms = MIN(due_ms, ?1), owner = NULL \
                     WHERE leased = 1 AND owner = ?2",
                    params![now_ms, owner],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT MIN(due_ms) FROM async_events", [], |r| r.get(0))
                .map_err(db_err)
        })
        .await
    }

    async fn pending_events(&self, namespace: Option<&str>) -> Result<u64, StoreError> {
        let ns = namespace.map(str::to_string);
        self.read(move |conn| {
            conn.query_row(
                "SELECT COUNT(*) FROM async_events WHERE ?1 IS NULL OR namespace = ?1",
                params![ns],
                |r| r.get(0),
            )
            .map_err(db_err)
        })
        .await
    }

    async fn list_dead_letters(
        &self,
        namespace: &str,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let (ns, f) = (namespace.to_string(), function.map(str::to_string));
        self.read(move |conn| {
            query_list(
                conn,
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE namespace = ?1 \
                     AND (?2 IS NULL OR function = ?2) ORDER BY failed_ms DESC, id LIMIT ?3"
                ),
                params![ns, f, limit as i64],
                letter_from_row,
            )
        })
        .await
    }

    async fn get_dead_letter(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {LETTER_COLUMNS} FROM dead_letters WHERE namespace = ?1 AND id = ?2"
                ),
                params![ns, id],
                letter_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn put_schedule(&self, s: &StoredSchedule, replace: bool) -> Result<bool, StoreError> {
        let s = s.clone();
        self.write(move |conn| {
            let verb = if replace {
                "INSERT OR REPLACE"
            } else {
                "INSERT OR IGNORE"
            };
            let n = conn
                .execute(
                    &format!(
                        "{verb} INTO schedules ({SCHEDULE_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    params![
                        s.namespace,
                        s.name,
                        s.function,
                        s.expression,
                        s.timezone,
                        s.next_fire_ms,
                        s.created_ms,
                        s.input
                    ],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn list_schedules(&self, namespace: &str) -> Result<Vec<StoredSchedule>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            query_list(
                conn,
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE namespace = ?1 ORDER BY name"
                ),
                params![ns],
                schedule_from_row,
            )
        })
        .await
    }

    async fn get_schedule(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredSchedule>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE namespace = ?1 AND name = ?2"
                ),
                params![ns, name],
                schedule_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn delete_schedule(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM schedules WHERE namespace = ?1 AND name = ?2",
                    params![ns, name],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn due_schedules(&self, now_ms: i64) -> Result<Vec<StoredSchedule>, StoreError> {
        self.read(move |conn| {
            query_list(
                conn,
                &format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE next_fire_ms <= ?1 \
                     ORDER BY next_fire_ms"
                ),
                params![now_ms],
                schedule_from_row,
            )
        })
        .await
    }

    async fn next_fire_ms(&self) -> Result<Option<i64>, StoreError> {
        self.read(|conn| {
            conn.query_row("SELECT MIN(next_fire_ms) FROM schedules", [], |r| r.get(0))
                .map_err(db_err)
        })
        .await
    }
}
