//! [`ClusterStore`] on PostgreSQL: the one-row `cluster_identity` table (created by whichever
//! node comes first, read back by all), the `nodes` membership table stamped with the server's
//! clock, and [`Leases`] as session advisory locks on a dedicated connection (with TCP
//! keepalives, so a partitioned holder's session, and its locks, end).

use crate::PgStore;
use async_trait::async_trait;
use lambent_store::cluster::{ClusterIdentity, ClusterStore, Leases, NodeRecord, NodeStats};
use lambent_store::StoreError;
use std::collections::HashSet;
use std::time::Duration;

/// The server's clock in ms since the epoch.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

#[async_trait]
impl ClusterStore for PgStore {
    async fn identity(&self) -> Result<ClusterIdentity, StoreError> {
        let id = hex::encode(rand::random::<[u8; 4]>());
        let secret = hex::encode(rand::random::<[u8; 32]>());
        self.execute(
            "INSERT INTO cluster_identity (id, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&id, &secret],
        )
        .await?;
        let rows = self
            .query("SELECT id, secret FROM cluster_identity", &[])
            .await?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::Database("cluster identity missing".into()))?;
        Ok(ClusterIdentity {
            id: row.get(0),
            secret: row.get(1),
        })
    }

    async fn heartbeat(&self, node: &NodeRecord) -> Result<i64, StoreError> {
        let stats = serde_json::to_value(node.stats).map_err(crate::json_err)?;
        let rows = self
            .query(
                &format!(
                    "INSERT INTO nodes (id, address, version, started_ms, heartbeat_ms, draining, stats) \
                     VALUES ($1, $2, $3, $4, {NOW_MS}, $5, $6) ON CONFLICT (id) DO UPDATE SET \
                     address = excluded.address, version = excluded.version, \
                     started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms, \
                     draining = excluded.draining, stats = excluded.stats \
                     RETURNING heartbeat_ms"
                ),
                &[
                    &node.id,
                    &node.address,
                    &node.version,
                    &node.started_ms,
                    &node.draining,
                    &stats,
                ],
            )
            .await?;
        Ok(rows[0].get(0))
    }

    async fn nodes(&self) -> Result<(i64, Vec<NodeRecord>), StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {NOW_MS}, id, address, version, started_ms, heartbeat_ms, draining, stats \
                     FROM (SELECT 1) one LEFT JOIN nodes ON TRUE ORDER BY id"
                ),
                &[],
            )
            .await?;
        let now: i64 = rows.first().map(|r| r.get(0)).unwrap_or_default();
        let nodes = rows
            .iter()
            .filter(|r| r.get::<_, Option<String>>(1).is_some())
            .map(|r| {
                let stats: serde_json::Value = r.get(7);
                NodeRecord {
                    id: r.get(1),
                    address: r.get(2),
                    version: r.get(3),
                    started_ms: r.get(4),
                    heartbeat_ms: r.get(5),
                    draining: r.get(6),
                    stats: serde_json::from_value::<NodeStats>(stats).unwrap_or_default(),
                }
            })
            .collect();
        Ok((now, nodes))
    }

    async fn leave(&self, node_id: &str) -> Result<(), StoreError> {
        self.execute("DELETE FROM nodes WHERE id = $1", &[&node_id])
            .await?;
        Ok(())
    }

    async fn leases(&self) -> Result<Box<dyn Leases>, StoreError> {
        let (client, task) = self.dedicated().await?;
        Ok(Box::new(PgLeases {
            store: self.clone(),
            client,
            task,
            held: tokio::sync::Mutex::new(HashSet::new()),
        }))
    }
}

/// Session advisory locks (`pg_try_advisory_lock(hashtextextended(name, 0))`) on one connection
/// of their own.
struct PgLeases {
    store: PgStore,
    client: tokio_postgres::Client,
    task: tokio::task::JoinHandle<()>,
    /// Held names: session locks stack, so a second acquire of a held lease must not lock again.
    held: tokio::sync::Mutex<HashSet<String>>,
}

#[async_trait]
impl Leases for PgLeases {
    async fn try_acquire(&self, name: &str) -> Result<bool, StoreError> {
        let mut held = self.held.lock().await;
        if held.contains(name) {
            if self.alive().await {
                return Ok(true);
            }
            held.clear();
        }
        let got: bool = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&name],
            )
            .await
            .map_err(|e| self.store.err(e))?
            .get(0);
        if got {
            held.insert(name.to_string());
        }
        Ok(got)
    }

    async fn release(&self, name: &str) -> Result<(), StoreError> {
        if self.held.lock().await.remove(name) {
            self.client
                .execute(
                    "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                    &[&name],
                )
                .await
                .map_err(|e| self.store.err(e))?;
        }
        Ok(())
    }

    async fn alive(&self) -> bool {
        if self.task.is_finished() || self.client.is_closed() {
            return false;
        }
        matches!(
            tokio::time::timeout(Duration::from_secs(5), self.client.simple_query("SELECT 1"))
                .await,
            Ok(Ok(_))
        )
    }
}

impl Drop for PgLeases {
    fn drop(&mut self) {
        // Ends the session: PostgreSQL frees its locks.
        self.task.abort();
    }
}
