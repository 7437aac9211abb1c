//! [`RouteStore`] on SQLite: one row per route, its settings as JSON beside the key columns.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::RouteStore;
use lambent_store::StoreError;
use rusqlite::params;

/// The routes table (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE routes (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    route      TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (method, path)
);
"#;

#[async_trait]
impl RouteStore for SqliteStore {
    async fn put_route(&self, route: &Route) -> Result<(), StoreError> {
        let r = route.clone();
        let json = serde_json::to_string(&r).map_err(db_err)?;
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO routes (id, namespace, method, path, route, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO UPDATE SET \
                 namespace = ?2, method = ?3, path = ?4, route = ?5, created_ms = ?6",
                params![r.id, r.namespace, r.method, r.path, json, r.created_ms],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn all_routes(&self) -> Result<Vec<Route>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare("SELECT route FROM routes ORDER BY created_ms, id")
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db_err)?;
            rows.map(|json| {
                let json = json.map_err(db_err)?;
                serde_json::from_str::<Route>(&json).map_err(db_err)
            })
            .collect()
        })
        .await
    }

    async fn delete_route(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_string();
        self.write(move |conn| {
            let n = conn
                .execute("DELETE FROM routes WHERE id = ?1", params![id])
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }
}
