//! [`StreamMappingStore`] on PostgreSQL: one row per mapping, its settings as JSON beside its
//! checkpoint, which moves only by compare-and-set, so of two nodes that both think they poll
//! a mapping (a lease changing hands) the one behind cannot move it back.

use crate::{json_err, PgStore};
use async_trait::async_trait;
use lambent_store::stream_mappings::{StreamMapping, StreamMappingStore};
use lambent_store::StoreError;

/// The stream mappings table (a refinery migration of [`crate::schema`]).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE stream_mappings (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    checkpoint BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    seq        BIGSERIAL
);
"#;

fn parse(json: &str) -> Result<StreamMapping, StoreError> {
    serde_json::from_str(json).map_err(json_err)
}

#[async_trait]
impl StreamMappingStore for PgStore {
    async fn create_stream_mapping(
        &self,
        m: &StreamMapping,
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(m).map_err(json_err)?;
        self.execute(
            "INSERT INTO stream_mappings (id, namespace, mapping, checkpoint, created_ms) \
             VALUES ($1, $2, $3, $4, $5)",
            &[
                &m.id,
                &m.namespace,
                &json,
                &(checkpoint as i64),
                &m.created_ms,
            ],
        )
        .await?;
        Ok(())
    }

    async fn all_stream_mappings(&self) -> Result<Vec<StreamMapping>, StoreError> {
        self.query(
            "SELECT mapping FROM stream_mappings ORDER BY created_ms, seq",
            &[],
        )
        .await?
        .iter()
        .map(|r| parse(r.get(0)))
        .collect()
    }

    async fn get_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<StreamMapping>, StoreError> {
        self.query(
            "SELECT mapping FROM stream_mappings WHERE namespace = $1 AND id = $2",
            &[&namespace, &id],
        )
        .await?
        .first()
        .map(|r| parse(r.get(0)))
        .transpose()
    }

    async fn update_stream_mapping(&self, m: &StreamMapping) -> Result<bool, StoreError> {
        let json = serde_json::to_string(m).map_err(json_err)?;
        let n = self
            .execute(
                "UPDATE stream_mappings SET mapping = $3 WHERE namespace = $1 AND id = $2",
                &[&m.namespace, &m.id, &json],
            )
            .await?;
        Ok(n > 0)
    }

    async fn delete_stream_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM stream_mappings WHERE namespace = $1 AND id = $2",
                &[&namespace, &id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn stream_checkpoint(&self, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .query(
                "SELECT checkpoint FROM stream_mappings WHERE id = $1",
                &[&id],
            )
            .await?
            .first()
            .map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn advance_stream_checkpoint(
        &self,
        id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE stream_mappings SET checkpoint = $3 WHERE id = $1 AND checkpoint = $2",
                &[&id, &(from as i64), &(to as i64)],
            )
            .await?;
        Ok(n > 0)
    }
}
