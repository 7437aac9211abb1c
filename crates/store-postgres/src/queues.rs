//! [`QueueStore`] on PostgreSQL: queues, messages, topics, subscriptions and event-source
//! mappings. A receive locks its candidates with `FOR UPDATE SKIP LOCKED`, so receivers on
//! several nodes never hand out one message twice; a receive's DLQ redrive and a topic's
//! fan-out are each one transaction. Message order is the identity column `seq`: allocation
//! order, which under concurrent senders may differ from commit order (as in SQS standard
//! queues).

use crate::{json_err, PgStore};
use async_trait::async_trait;
use lambent_store::queues::{
    Attributes, Endpoint, Mapping, Message, NewMessage, QueueConfig, QueueCounts, QueueStore,
    ReceiveRequest, Subscription, Topic,
};
use lambent_store::StoreError;
use std::collections::BTreeMap;
use tokio_postgres::Row;

/// The queues' SQS settings and the subscriptions' attributes (refinery migration `V8`).
pub(crate) const MIGRATION: &str = r#"
ALTER TABLE queues ADD COLUMN retention_s BIGINT NOT NULL DEFAULT 345600;
ALTER TABLE queues ADD COLUMN max_message_bytes BIGINT NOT NULL DEFAULT 262144;
ALTER TABLE queues ADD COLUMN receive_wait_s BIGINT NOT NULL DEFAULT 0;
ALTER TABLE queues ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queues ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queues ADD COLUMN modified_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE topic_subscriptions ADD COLUMN attributes TEXT NOT NULL DEFAULT '{}';
"#;

const QUEUE_COLUMNS: &str = "namespace, name, visibility_timeout_s, delay_s, max_receive_count, \
     dead_letter_queue, created_ms, retention_s, max_message_bytes, receive_wait_s, attributes, \
     tags, modified_ms";

/// A JSON map column (a row written by hand that is not JSON reads as empty).
fn map_column(r: &Row, i: usize) -> BTreeMap<String, String> {
    serde_json::from_str(r.get::<_, &str>(i)).unwrap_or_default()
}

fn map_json(map: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(map).map_err(json_err)
}

fn queue_from_row(r: &Row) -> QueueConfig {
    QueueConfig {
        namespace: r.get(0),
        name: r.get(1),
        visibility_timeout_s: r.get::<_, i64>(2) as u32,
        delay_s: r.get::<_, i64>(3) as u32,
        max_receive_count: r.get::<_, Option<i64>>(4).map(|v| v as u32),
        dead_letter_queue: r.get(5),
        created_ms: r.get(6),
        retention_s: r.get::<_, i64>(7) as u32,
        max_message_bytes: r.get::<_, i64>(8) as u32,
        receive_wait_s: r.get::<_, i64>(9) as u32,
        attributes: map_column(r, 10),
        tags: map_column(r, 11),
        modified_ms: r.get(12),
    }
}

const SUBSCRIPTION_COLUMNS: &str = "id, namespace, topic, kind, target, created_ms, attributes";

fn subscription_from_row(r: &Row) -> Subscription {
    let kind: String = r.get(3);
    let target: String = r.get(4);
    Subscription {
        id: r.get(0),
        namespace: r.get(1),
        topic: r.get(2),
        endpoint: Endpoint::from_kind(&kind, target),
        created_ms: r.get(5),
        attributes: map_column(r, 6),
    }
}

#[async_trait]
impl QueueStore for PgStore {
    async fn create_queue(&self, q: &QueueConfig) -> Result<bool, StoreError> {
        let (attributes, tags) = (map_json(&q.attributes)?, map_json(&q.tags)?);
        let n = self
            .execute(
                &format!(
                    "INSERT INTO queues ({QUEUE_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                     ON CONFLICT (namespace, name) DO NOTHING"
                ),
                &[
                    &q.namespace,
                    &q.name,
                    &i64::from(q.visibility_timeout_s),
                    &i64::from(q.delay_s),
                    &q.max_receive_count.map(i64::from),
                    &q.dead_letter_queue,
                    &q.created_ms,
                    &i64::from(q.retention_s),
                    &i64::from(q.max_message_bytes),
                    &i64::from(q.receive_wait_s),
                    &attributes,
                    &tags,
                    &q.modified_ms,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn update_queue(&self, q: &QueueConfig) -> Result<bool, StoreError> {
        let (attributes, tags) = (map_json(&q.attributes)?, map_json(&q.tags)?);
        let n = self
            .execute(
                "UPDATE queues SET visibility_timeout_s = $3, delay_s = $4, \
                 max_receive_count = $5, dead_letter_queue = $6, retention_s = $7, \
                 max_message_bytes = $8, receive_wait_s = $9, attributes = $10, tags = $11, \
                 modified_ms = $12 \
                 WHERE namespace = $1 AND name = $2",
                &[
                    &q.namespace,
                    &q.name,
                    &i64::from(q.visibility_timeout_s),
                    &i64::from(q.delay_s),
                    &q.max_receive_count.map(i64::from),
                    &q.dead_letter_queue,
                    &i64::from(q.retention_s),
                    &i64::from(q.max_message_bytes),
                    &i64::from(q.receive_wait_s),
                    &attributes,
                    &tags,
                    &q.modified_ms,
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn get_queue(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<QueueConfig>, StoreError> {
        Ok(self
            .query_opt(
                &format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE namespace = $1 AND name = $2"),
                &[&namespace, &name],
            )
            .await?
            .as_ref()
            .map(queue_from_row))
    }

    async fn list_queues(&self, namespace: &str) -> Result<Vec<QueueConfig>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {QUEUE_COLUMNS} FROM queues WHERE namespace = $1 ORDER BY name"),
                &[&namespace],
            )
            .await?
            .iter()
            .map(queue_from_row)
            .collect())
    }

    async fn delete_queue(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "DELETE FROM queues WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await
            .map_err(|e| self.err(e))?;
        for sql in [
            "DELETE FROM queue_messages WHERE namespace = $1 AND queue = $2",
            "DELETE FROM event_source_mappings WHERE namespace = $1 AND queue = $2",
            "DELETE FROM topic_subscriptions WHERE namespace = $1 AND kind = 'queue' AND target = $2",
        ] {
            tx.execute(sql, &[&namespace, &name])
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    async fn queue_counts(
        &self,
        namespace: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<QueueCounts, StoreError> {
        let rows = self
            .query(
                "SELECT \
                   COUNT(*) FILTER (WHERE visible_at_ms <= $3), \
                   COUNT(*) FILTER (WHERE visible_at_ms > $3 AND receipt IS NOT NULL), \
                   COUNT(*) FILTER (WHERE visible_at_ms > $3 AND receipt IS NULL) \
                 FROM queue_messages WHERE namespace = $1 AND queue = $2 \
                 AND sent_ms >= $3 - 1000 * COALESCE((SELECT retention_s FROM queues \
                     WHERE namespace = $1 AND name = $2), 0)",
                &[&namespace, &name, &now_ms],
            )
            .await?;
        let r = &rows[0];
        Ok(QueueCounts {
            visible: r.get::<_, i64>(0) as u64,
            in_flight: r.get::<_, i64>(1) as u64,
            delayed: r.get::<_, i64>(2) as u64,
        })
    }

    async fn receive(&self, req: &ReceiveRequest) -> Result<Vec<Message>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let settings = tx
            .query_opt(
                "SELECT max_receive_count, dead_letter_queue, retention_s FROM queues \
                 WHERE namespace = $1 AND name = $2",
                &[&req.namespace, &req.queue],
            )
            .await
            .map_err(|e| self.err(e))?;
        let (max_receives, dlq, retention_s): (Option<i64>, Option<String>, i64) = settings
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .unwrap_or((None, None, 0));
        // Messages past the retention period are gone.
        tx.execute(
            "DELETE FROM queue_messages WHERE namespace = $1 AND queue = $2 AND sent_ms < $3",
            &[
                &req.namespace,
                &req.queue,
                &(req.now_ms - retention_s * 1000),
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        let redrive_after = max_receives.filter(|_| dlq.is_some());
        let select = tx
            .prepare_cached(
                "SELECT seq, id, body, attributes, sent_ms, receive_count, first_receive_ms, \
                 trace FROM queue_messages WHERE namespace = $1 AND queue = $2 \
                 AND visible_at_ms <= $3 ORDER BY visible_at_ms, seq LIMIT $4 \
                 FOR UPDATE SKIP LOCKED",
            )
            .await
            .map_err(|e| self.err(e))?;
        let mut out: Vec<Message> = Vec::new();
        let mut receipts = req.receipts.iter();
        loop {
            let want = req.max.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let candidates = tx
                .query(
                    &select,
                    &[&req.namespace, &req.queue, &req.now_ms, &(want as i64)],
                )
                .await
                .map_err(|e| self.err(e))?;
            if candidates.is_empty() {
                break;
            }
            let mut redriven = false;
            for r in candidates {
                let seq: i64 = r.get(0);
                let attributes: String = r.get(3);
                let mut m = Message {
                    id: r.get(1),
                    receipt_handle: String::new(),
                    body: r.get(2),
                    attributes: serde_json::from_str::<Attributes>(&attributes).unwrap_or_default(),
                    sent_ms: r.get(4),
                    receive_count: r.get::<_, i64>(5) as u32,
                    first_receive_ms: r.get(6),
                    trace: lambent_store::context_from_column(r.get(7)),
                };
                if let (Some(limit), Some(dlq)) = (redrive_after, &dlq) {
                    if i64::from(m.receive_count) >= limit {
                        tx.execute(
                            "UPDATE queue_messages SET queue = $2, receive_count = 0, \
                             first_receive_ms = 0, receipt = NULL, visible_at_ms = $3 \
                             WHERE seq = $1",
                            &[&seq, dlq, &req.now_ms],
                        )
                        .await
                        .map_err(|e| self.err(e))?;
                        redriven = true;
                        continue;
                    }
                }
                let Some(receipt) = receipts.next() else {
                    break;
                };
                m.received(receipt, req.now_ms);
                tx.execute(
                    "UPDATE queue_messages SET receive_count = $2, first_receive_ms = $3, \
                     receipt = $4, visible_at_ms = $5 WHERE seq = $1",
                    &[
                        &seq,
                        &i64::from(m.receive_count),
                        &m.first_receive_ms,
                        receipt,
                        &(req.now_ms + req.visibility_timeout_ms),
                    ],
                )
                .await
                .map_err(|e| self.err(e))?;
                out.push(m);
            }
            if !redriven {
                break;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(out)
    }

    async fn delete_messages(
        &self,
        namespace: &str,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "DELETE FROM queue_messages WHERE receipt = ANY($1::text[]) \
                 AND namespace = $2 AND queue = $3 RETURNING receipt",
                &[&receipts, &namespace, &queue],
            )
            .await?;
        let deleted: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        // In the order asked, as the SQLite store answers.
        Ok(receipts
            .iter()
            .filter(|r| deleted.contains(*r))
            .cloned()
            .collect())
    }

    async fn change_visibility(
        &self,
        namespace: &str,
        queue: &str,
        receipt: &str,
        visible_at_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE queue_messages SET visible_at_ms = $4 \
                 WHERE receipt = $1 AND namespace = $2 AND queue = $3",
                &[&receipt, &namespace, &queue, &visible_at_ms],
            )
            .await?;
        Ok(n > 0)
    }

    async fn purge(&self, namespace: &str, queue: &str) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM queue_messages WHERE namespace = $1 AND queue = $2",
            &[&namespace, &queue],
        )
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
        self.execute(
            "UPDATE queue_messages SET queue = $3, sent_ms = $4, visible_at_ms = $4, \
             receive_count = 0, first_receive_ms = 0, receipt = NULL \
             WHERE seq IN (SELECT seq FROM queue_messages WHERE namespace = $1 \
             AND queue = $2 AND visible_at_ms <= $4 ORDER BY visible_at_ms, seq LIMIT $5 \
             FOR UPDATE SKIP LOCKED)",
            &[&namespace, &from, &to, &now_ms, &(max as i64)],
        )
        .await
    }

    async fn create_topic(&self, t: &Topic) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "INSERT INTO topics (namespace, name, created_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (namespace, name) DO NOTHING",
                &[&t.namespace, &t.name, &t.created_ms],
            )
            .await?;
        Ok(n > 0)
    }

    async fn list_topics(&self, namespace: &str) -> Result<Vec<Topic>, StoreError> {
        Ok(self
            .query(
                "SELECT namespace, name, created_ms FROM topics WHERE namespace = $1 ORDER BY name",
                &[&namespace],
            )
            .await?
            .iter()
            .map(|r| Topic {
                namespace: r.get(0),
                name: r.get(1),
                created_ms: r.get(2),
            })
            .collect())
    }

    async fn delete_topic(&self, namespace: &str, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "DELETE FROM topics WHERE namespace = $1 AND name = $2",
                &[&namespace, &name],
            )
            .await
            .map_err(|e| self.err(e))?;
        tx.execute(
            "DELETE FROM topic_subscriptions WHERE namespace = $1 AND topic = $2",
            &[&namespace, &name],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    async fn subscribe(&self, s: &Subscription) -> Result<(), StoreError> {
        let (kind, target) = s.endpoint.kind_and_target();
        let attributes = map_json(&s.attributes)?;
        self.execute(
            &format!(
                "INSERT INTO topic_subscriptions ({SUBSCRIPTION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &s.id,
                &s.namespace,
                &s.topic,
                &kind,
                &target,
                &s.created_ms,
                &attributes,
            ],
        )
        .await?;
        Ok(())
    }

    async fn subscriptions(
        &self,
        namespace: &str,
        topic: &str,
    ) -> Result<Vec<Subscription>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {SUBSCRIPTION_COLUMNS} FROM topic_subscriptions \
                     WHERE namespace = $1 AND topic = $2 ORDER BY created_ms, seq"
                ),
                &[&namespace, &topic],
            )
            .await?
            .iter()
            .map(subscription_from_row)
            .collect())
    }

    async fn unsubscribe(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM topic_subscriptions WHERE namespace = $1 AND id = $2",
                &[&namespace, &id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn set_subscription_attributes(
        &self,
        namespace: &str,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE topic_subscriptions SET attributes = $3 WHERE namespace = $1 AND id = $2",
                &[&namespace, &id, &map_json(attributes)?],
            )
            .await?;
        Ok(n > 0)
    }

    async fn send_to_queues(
        &self,
        namespace: &str,
        deliveries: &[(String, NewMessage)],
    ) -> Result<(), StoreError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let now = lambent_core::now_ms();
        let mut ids = Vec::with_capacity(deliveries.len());
        let mut queues = Vec::with_capacity(deliveries.len());
        let mut bodies = Vec::with_capacity(deliveries.len());
        let mut attributes = Vec::with_capacity(deliveries.len());
        let mut visible = Vec::with_capacity(deliveries.len());
        let mut traces = Vec::with_capacity(deliveries.len());
        for (queue, m) in deliveries {
            ids.push(m.id.as_str());
            queues.push(queue.as_str());
            bodies.push(m.body.as_str());
            attributes.push(serde_json::to_string(&m.attributes).map_err(json_err)?);
            visible.push(m.visible_at_ms);
            traces.push(m.trace.as_ref().map(|t| t.encode()));
        }
        // One statement: all or none, `seq` in the order given.
        self.execute(
            "INSERT INTO queue_messages (id, namespace, queue, body, attributes, sent_ms, \
             visible_at_ms, trace) \
             SELECT m.id, $1, m.queue, m.body, m.attributes, $2, m.visible, m.trace \
             FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], \
                         $8::text[]) \
             WITH ORDINALITY AS m(id, queue, body, attributes, visible, trace, n) ORDER BY m.n",
            &[
                &namespace,
                &now,
                &ids,
                &queues,
                &bodies,
                &attributes,
                &visible,
                &traces,
            ],
        )
        .await?;
        Ok(())
    }

    async fn create_mapping(&self, m: &Mapping) -> Result<(), StoreError> {
        let json = serde_json::to_string(m).map_err(json_err)?;
        self.execute(
            "INSERT INTO event_source_mappings (id, namespace, queue, mapping, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&m.id, &m.namespace, &m.queue, &json, &m.created_ms],
        )
        .await?;
        Ok(())
    }

    async fn all_mappings(&self) -> Result<Vec<Mapping>, StoreError> {
        self.query(
            "SELECT mapping FROM event_source_mappings ORDER BY created_ms, seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| serde_json::from_str::<Mapping>(r.get(0)).map_err(json_err))
        .collect()
    }

    async fn update_mapping(&self, m: &Mapping) -> Result<bool, StoreError> {
        let json = serde_json::to_string(m).map_err(json_err)?;
        let n = self
            .execute(
                "UPDATE event_source_mappings SET mapping = $3 WHERE namespace = $1 AND id = $2",
                &[&m.namespace, &m.id, &json],
            )
            .await?;
        Ok(n > 0)
    }

    async fn delete_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM event_source_mappings WHERE namespace = $1 AND id = $2",
                &[&namespace, &id],
            )
            .await?;
        Ok(n > 0)
    }
}
