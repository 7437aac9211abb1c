//! [`QueueStore`] on SQLite: queues, their messages, topics, subscriptions and event-source
//! mappings. Each operation is one transaction on the writer connection, so a receive that
//! redrives messages to a dead-letter queue, or a publish that fans out to many queues, happens
//! whole or not at all.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::queues::{
    Attributes, Endpoint, Mapping, Message, NewMessage, QueueConfig, QueueCounts, QueueStore,
    ReceiveRequest, Subscription, Topic,
};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension, Row, Transaction};
use std::collections::BTreeMap;

/// The queue tables (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE queues (
    namespace            TEXT NOT NULL,
    name                 TEXT NOT NULL,
    visibility_timeout_s INTEGER NOT NULL,
    delay_s              INTEGER NOT NULL,
    max_receive_count    INTEGER,
    dead_letter_queue    TEXT,
    created_ms           INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE queue_messages (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT NOT NULL UNIQUE,
    namespace        TEXT NOT NULL,
    queue            TEXT NOT NULL,
    body             TEXT NOT NULL,
    attributes       TEXT NOT NULL,
    sent_ms          INTEGER NOT NULL,
    visible_at_ms    INTEGER NOT NULL,
    receive_count    INTEGER NOT NULL DEFAULT 0,
    first_receive_ms INTEGER NOT NULL DEFAULT 0,
    receipt          TEXT
);
CREATE INDEX queue_messages_visible ON queue_messages (namespace, queue, visible_at_ms, seq);
CREATE INDEX queue_messages_receipt ON queue_messages (receipt);
CREATE TABLE topics (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE topic_subscriptions (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    topic      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    target     TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE event_source_mappings (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    queue      TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
"#;

/// The sender's trace context of each message (`traceparent[ tracestate]`).
pub(crate) const TRACE_MIGRATION: &str = "ALTER TABLE queue_messages ADD COLUMN trace TEXT;";

/// The queues' SQS settings and the subscriptions' attributes (appended to the store's
/// migrations).
pub(crate) const MIGRATION_2: &str = r#"
ALTER TABLE queues ADD COLUMN retention_s INTEGER NOT NULL DEFAULT 345600;
ALTER TABLE queues ADD COLUMN max_message_bytes INTEGER NOT NULL DEFAULT 262144;
ALTER TABLE queues ADD COLUMN receive_wait_s INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queues ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queues ADD COLUMN modified_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE topic_subscriptions ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
"#;

const QUEUE_COLUMNS: &str = "namespace, name, visibility_timeout_s, delay_s, max_receive_count, \
     dead_letter_queue, created_ms, retention_s, max_message_bytes, receive_wait_s, attributes, \
     tags, modified_ms";

/// A JSON map column (a row written by hand that is not JSON reads as empty).
fn map_column(r: &Row<'_>, i: usize) -> rusqlite::Result<BTreeMap<String, String>> {
    let text: String = r.get(i)?;
    Ok(serde_json::from_str(&text).unwrap_or_default())
}

fn map_json(map: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(map).map_err(db_err)
}

fn queue_from_row(r: &Row<'_>) -> rusqlite::Result<QueueConfig> {
    Ok(QueueConfig {
        namespace: r.get(0)?,
        name: r.get(1)?,
        visibility_timeout_s: r.get(2)?,
        delay_s: r.get(3)?,
        max_receive_count: r.get(4)?,
        dead_letter_queue: r.get(5)?,
        created_ms: r.get(6)?,
        retention_s: r.get(7)?,
        max_message_bytes: r.get(8)?,
        receive_wait_s: r.get(9)?,
        attributes: map_column(r, 10)?,
        tags: map_column(r, 11)?,
        modified_ms: r.get(12)?,
    })
}

const SUBSCRIPTION_COLUMNS: &str = "id, namespace, topic, kind, target, created_ms, attributes";

fn subscription_from_row(r: &Row<'_>) -> rusqlite::Result<Subscription> {
    let kind: String = r.get(3)?;
    let target: String = r.get(4)?;
    Ok(Subscription {
        id: r.get(0)?,
        namespace: r.get(1)?,
        topic: r.get(2)?,
        endpoint: Endpoint::from_kind(&kind, target),
        created_ms: r.get(5)?,
        attributes: map_column(r, 6)?,
    })
}

fn insert_messages(
    tx: &Transaction<'_>,
    namespace: &str,
    deliveries: &[(String, NewMessage)],
) -> Result<(), StoreError> {
    let now = lambent_core::now_ms();
    let mut stmt = tx
        .prepare_cached(
            "INSERT INTO queue_messages (id, namespace, queue, body, attributes, sent_ms, \
             visible_at_ms, trace) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .map_err(db_err)?;
    for (queue, m) in deliveries {
        let attributes = serde_json::to_string(&m.attributes).map_err(db_err)?;
        stmt.execute(params![
            m.id,
            namespace,
            queue,
            m.body,
            attributes,
            now,
            m.visible_at_ms,
            m.trace.as_ref().map(|t| t.encode())
        ])
        .map_err(db_err)?;
    }
    Ok(())
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn create_queue(&self, q: &QueueConfig) -> Result<bool, StoreError> {
        let q = q.clone();
        let (attributes, tags) = (map_json(&q.attributes)?, map_json(&q.tags)?);
        self.write(move |conn| {
            let n = conn
                .execute(
                    &format!(
                        "INSERT OR IGNORE INTO queues ({QUEUE_COLUMNS}) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
                    ),
                    params![
                        q.namespace,
                        q.name,
                        q.visibility_timeout_s,
                        q.delay_s,
                        q.max_receive_count,
                        q.dead_letter_queue,
                        q.created_ms,
                        q.retention_s,
                        q.max_message_bytes,
                        q.receive_wait_s,
                        attributes,
                        tags,
                        q.modified_ms
                    ],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn update_queue(&self, q: &QueueConfig) -> Result<bool, StoreError> {
        let q = q.clone();
        let (attributes, tags) = (map_json(&q.attributes)?, map_json(&q.tags)?);
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE queues SET visibility_timeout_s = ?3, delay_s = ?4, \
                     max_receive_count = ?5, dead_letter_queue = ?6, retention_s = ?7, \
                     max_message_bytes = ?8, receive_wait_s = ?9, attributes = ?10, tags = ?11, \
                     modified_ms = ?12 \
                     WHERE namespace = ?1 AND name = ?2",
                    params![
                        q.namespace,
                        q.name,
                        q.visibility_timeout_s,
                        q.delay_s,
                        q.max_receive_count,
                        q.dead_letter_queue,
                        q.retention_s,
                        q.max_message_bytes,
                        q.receive_wait_s,
                        attributes,
                        tags,
                        q.modified_ms
                    ],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_queue(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<QueueConfig>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE namespace = ?1 AND name = ?2"),
                params![ns, name],
                queue_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_queues(&self, namespace: &str) -> Result<Vec<QueueConfig>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {QUEUE_COLUMNS} FROM queues WHERE namespace = ?1 ORDER BY name"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns], queue_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_queue(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let n = tx
                .execute(
                    "DELETE FROM queues WHERE namespace = ?1 AND name = ?2",
                    params![ns, name],
                )
                .map_err(db_err)?;
            for sql in [
                "DELETE FROM queue_messages WHERE namespace = ?1 AND queue = ?2",
                "DELETE FROM event_source_mappings WHERE namespace = ?1 AND queue = ?2",
                "DELETE FROM topic_subscriptions WHERE namespace = ?1 AND kind = 'queue' AND target = ?2",
            ] {
                tx.execute(sql, params![ns, name]).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn queue_counts(
        &self,
        namespace: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<QueueCounts, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.read(move |conn| {
            conn.query_row(
                "SELECT \
                   COALESCE(SUM(visible_at_ms <= ?3), 0), \
                   COALESCE(SUM(visible_at_ms > ?3 AND receipt IS NOT NULL), 0), \
                   COALESCE(SUM(visible_at_ms > ?3 AND receipt IS NULL), 0) \
                 FROM queue_messages WHERE namespace = ?1 AND queue = ?2 \
                 AND sent_ms >= ?3 - 1000 * COALESCE((SELECT retention_s FROM queues \
                     WHERE namespace = ?1 AND name = ?2), 0)",
                params![ns, name, now_ms],
                |r| {
                    Ok(QueueCounts {
                        visible: r.get(0)?,
                        in_flight: r.get(1)?,
                        delayed: r.get(2)?,
                    })
                },
            )
            .map_err(db_err)
        })
        .await
    }

    async fn receive(&self, req: &ReceiveRequest) -> Result<Vec<Message>, StoreError> {
        let req = req.clone();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let (max_receives, dlq, retention_s): (Option<u32>, Option<String>, i64) = tx
                .query_row(
                    "SELECT max_receive_count, dead_letter_queue, retention_s FROM queues \
                     WHERE namespace = ?1 AND name = ?2",
                    params![req.namespace, req.queue],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or((None, None, 0));
            // Messages past the retention period are gone.
            tx.execute(
                "DELETE FROM queue_messages WHERE namespace = ?1 AND queue = ?2 AND sent_ms < ?3",
                params![req.namespace, req.queue, req.now_ms - retention_s * 1000],
            )
            .map_err(db_err)?;
            let redrive_after = max_receives.filter(|_| dlq.is_some());
            let mut out: Vec<Message> = Vec::new();
            let mut receipts = req.receipts.iter();
            loop {
                let want = req.max.saturating_sub(out.len());
                if want == 0 {
                    break;
                }
                let candidates: Vec<(i64, Message)> = {
                    let mut stmt = tx
                        .prepare_cached(
                            "SELECT seq, id, body, attributes, sent_ms, receive_count, \
                             first_receive_ms, trace \
                             FROM queue_messages WHERE namespace = ?1 AND queue = ?2 \
                             AND visible_at_ms <= ?3 ORDER BY visible_at_ms, seq LIMIT ?4",
                        )
                        .map_err(db_err)?;
                    let rows = stmt
                        .query_map(
                            params![req.namespace, req.queue, req.now_ms, want as i64],
                            |r| {
                                let attributes: String = r.get(3)?;
                                Ok((
                                    r.get::<_, i64>(0)?,
                                    Message {
                                        id: r.get(1)?,
                                        receipt_handle: String::new(),
                                        body: r.get(2)?,
                                        attributes: serde_json::from_str::<Attributes>(&attributes)
                                            .unwrap_or_default(),
                                        sent_ms: r.get(4)?,
                                        receive_count: r.get(5)?,
                                        first_receive_ms: r.get(6)?,
                                        trace: lambent_store::context_from_column(
                                            r.get::<_, Option<String>>(7)?.as_deref(),
                                        ),
                                    },
                                ))
                            },
                        )
                        .map_err(db_err)?;
                    rows.collect::<Result<Vec<_>, _>>().map_err(db_err)?
                };
                if candidates.is_empty() {
                    break;
                }
                let mut redriven = false;
                for (seq, mut m) in candidates {
                    if let (Some(limit), Some(dlq)) = (redrive_after, &dlq) {
                        if m.receive_count >= limit {
                            tx.execute(
                                "UPDATE queue_messages SET queue = ?2, receive_count = 0, \
                                 first_receive_ms = 0, receipt = NULL, visible_at_ms = ?3 \
                                 WHERE seq = ?1",
                                params![seq, dlq, req.now_ms],
                            )
                            .map_err(db_err)?;
                            redriven = true;
                            continue;
                        }
                    }
                    let Some(receipt) = receipts.next() else {
                        break;
                    };
                    m.received(receipt, req.now_ms);
                    tx.execute(
                        "UPDATE queue_messages SET receive_count = ?2, first_receive_ms = ?3, \
                         receipt = ?4, visible_at_ms = ?5 WHERE seq = ?1",
                        params![
                            seq,
                            m.receive_count,
                            m.first_receive_ms,
                            receipt,
                            req.now_ms + req.visibility_timeout_ms
                        ],
                    )
                    .map_err(db_err)?;
                    out.push(m);
                }
                if !redriven {
                    break;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(out)
        })
        .await
    }

    async fn delete_messages(
        &self,
        namespace: &str,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let (ns, queue, receipts) = (namespace.to_string(), queue.to_string(), receipts.to_vec());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let mut deleted = Vec::new();
            {
                let mut stmt = tx
                    .prepare_cached(
                        "DELETE FROM queue_messages WHERE receipt = ?1 AND namespace = ?2 AND queue = ?3",
                    )
                    .map_err(db_err)?;
                for r in receipts {
                    if stmt.execute(params![r, ns, queue]).map_err(db_err)? > 0 {
                        deleted.push(r);
                    }
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(deleted)
        })
        .await
    }

    async fn change_visibility(
        &self,
        namespace: &str,
        queue: &str,
        receipt: &str,
        visible_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let (ns, queue, receipt) = (
            namespace.to_string(),
            queue.to_string(),
            receipt.to_string(),
        );
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE queue_messages SET visible_at_ms = ?4 \
                     WHERE receipt = ?1 AND namespace = ?2 AND queue = ?3",
                    params![receipt, ns, queue, visible_at_ms],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn purge(&self, namespace: &str, queue: &str) -> Result<u64, StoreError> {
        let (ns, queue) = (namespace.to_string(), queue.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM queue_messages WHERE namespace = ?1 AND queue = ?2",
                    params![ns, queue],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn move_messages(
        &self,
        namespace: &str,
        from: &str,
        to: &str,
        max: usize,
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let (ns, from, to) = (namespace.to_string(), from.to_string(), to.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE queue_messages SET queue = ?3, sent_ms = ?4, visible_at_ms = ?4, \
                     receive_count = 0, first_receive_ms = 0, receipt = NULL \
                     WHERE seq IN (SELECT seq FROM queue_messages WHERE namespace = ?1 \
                     AND queue = ?2 AND visible_at_ms <= ?4 ORDER BY visible_at_ms, seq LIMIT ?5)",
                    params![ns, from, to, now_ms, max as i64],
                )
                .map_err(db_err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn create_topic(&self, t: &Topic) -> Result<bool, StoreError> {
        let t = t.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "INSERT OR IGNORE INTO topics (namespace, name, created_ms) VALUES (?1, ?2, ?3)",
                    params![t.namespace, t.name, t.created_ms],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_topics(&self, namespace: &str) -> Result<Vec<Topic>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare("SELECT namespace, name, created_ms FROM topics WHERE namespace = ?1 ORDER BY name")
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns], |r| {
                    Ok(Topic {
                        namespace: r.get(0)?,
                        name: r.get(1)?,
                        created_ms: r.get(2)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_topic(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let n = tx
                .execute(
                    "DELETE FROM topics WHERE namespace = ?1 AND name = ?2",
                    params![ns, name],
                )
                .map_err(db_err)?;
            tx.execute(
                "DELETE FROM topic_subscriptions WHERE namespace = ?1 AND topic = ?2",
                params![ns, name],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn subscribe(&self, s: &Subscription) -> Result<(), StoreError> {
        let s = s.clone();
        let (kind, target) = s.endpoint.kind_and_target();
        let target = target.to_string();
        let attributes = map_json(&s.attributes)?;
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT INTO topic_subscriptions ({SUBSCRIPTION_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    s.id,
                    s.namespace,
                    s.topic,
                    kind,
                    target,
                    s.created_ms,
                    attributes
                ],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn subscriptions(
        &self,
        namespace: &str,
        topic: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        let (ns, topic) = (namespace.to_string(), topic.to_string());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM topic_subscriptions \
                     WHERE namespace = ?1 AND topic = ?2 ORDER BY created_ms, rowid"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns, topic], subscription_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn unsubscribe(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM topic_subscriptions WHERE namespace = ?1 AND id = ?2",
                    params![ns, id],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn set_subscription_attributes(
        &self,
        namespace: &str,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let (ns, id, attributes) = (namespace.to_string(), id.to_string(), map_json(attributes)?);
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE topic_subscriptions SET attributes = ?3 WHERE namespace = ?1 AND id = ?2",
                    params![ns, id, attributes],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn send_to_queues(
        &self,
        namespace: &str,
        deliveries: &[(String, NewMessage)],
    ) -> Result<(), StoreError> {
        let (ns, deliveries) = (namespace.to_string(), deliveries.to_vec());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            insert_messages(&tx, &ns, &deliveries)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn create_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
        let m = m.clone();
        let json = serde_json::to_string(&m).map_err(db_err)?;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO event_source_mappings (id, namespace, queue, mapping, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![m.id, m.namespace, m.queue, json, m.created_ms],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn all_mappings(&self) -> Result<Vec<Mapping>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT mapping FROM event_source_mappings ORDER BY created_ms, rowid")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            rows.map(|json| serde_json::from_str::<Mapping>(&json.map_err(db_err)?).map_err(db_err))
                .collect()
        })
        .await
    }

    async fn update_mapping(&self, m: &Mapping) -> Result<bool, StoreError> {
        let json = serde_json::to_string(m).map_err(db_err)?;
        let (ns, id) = (m.namespace.clone(), m.id.clone());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE event_source_mappings SET mapping = ?3 WHERE namespace = ?1 AND id = ?2",
                    params![ns, id, json],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM event_source_mappings WHERE namespace = ?1 AND id = ?2",
                    params![ns, id],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }
}
