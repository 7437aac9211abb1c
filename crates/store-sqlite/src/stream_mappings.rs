//! [`StreamMappingStore`] on SQLite: one row per mapping, its settings as JSON beside its
//! checkpoint, which moves only by compare-and-set on the writer connection.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::stream_mappings::{StreamMapping, StreamMappingStore};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension};

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE stream_mappings (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    mapping    TEXT NOT NULL,
    checkpoint INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
"#;

fn parse(json: &str) -> Result<StreamMapping, StoreError> {
    serde_json::from_str(json).map_err(db_err)
}

#[async_trait]
impl StreamMappingStore for SqliteStore {
    async fn create_stream_mapping(
        &self,
        m: &StreamMapping,
        checkpoint: u64,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(m).map_err(db_err)?;
        let (id, ns, created) = (m.id.clone(), m.namespace.clone(), m.created_ms);
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO stream_mappings (id, namespace, mapping, checkpoint, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, ns, json, checkpoint as i64, created],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn all_stream_mappings(&self) -> Result<Vec<StreamMapping>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT mapping FROM stream_mappings ORDER BY created_ms, rowid")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            rows.map(|json| parse(&json.map_err(db_err)?)).collect()
        })
        .await
    }

    async fn get_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<StreamMapping>, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        let json: Option<String> = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT mapping FROM stream_mappings WHERE namespace = ?1 AND id = ?2",
                    params![ns, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)
            })
            .await?;
        json.as_deref().map(parse).transpose()
    }

    async fn update_stream_mapping(&self, m: &StreamMapping) -> Result<bool, StoreError> {
        let json = serde_json::to_string(m).map_err(db_err)?;
        let (ns, id) = (m.namespace.clone(), m.id.clone());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE stream_mappings SET mapping = ?3 WHERE namespace = ?1 AND id = ?2",
                    params![ns, id, json],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_stream_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_string(), id.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM stream_mappings WHERE namespace = ?1 AND id = ?2",
                    params![ns, id],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn stream_checkpoint(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let id = id.to_string();
        let at: Option<i64> = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT checkpoint FROM stream_mappings WHERE id = ?1",
                    params![id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)
            })
            .await?;
        Ok(at.map(|n| n as u64))
    }

    async fn advance_stream_checkpoint(
        &self,
        id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE stream_mappings SET checkpoint = ?3 WHERE id = ?1 AND checkpoint = ?2",
                    params![id, from as i64, to as i64],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }
}
