//! [`RouteStore`] on PostgreSQL: one row per route, its settings as JSON beside the key columns;
//! a second route on a taken method and path is [`StoreError::Changed`].

use crate::{is_unique_violation, json_err, PgStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::RouteStore;
use lambent_store::StoreError;

#[async_trait]
impl RouteStore for PgStore {
    async fn put_route(&self, route: &Route) -> Result<(), StoreError> {
        let r = route;
        let json = serde_json::to_string(r).map_err(json_err)?;
        let conn = self.conn().await?;
        conn.execute(
            "INSERT INTO routes (id, namespace, method, path, route, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET \
             namespace = $2, method = $3, path = $4, route = $5, created_ms = $6",
            &[
                &r.id,
                &r.namespace,
                &r.method,
                &r.path,
                &json,
                &r.created_ms,
            ],
        )
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Changed(format!(
                    "a route for {} {} already exists",
                    r.method, r.path
                ))
            } else {
                self.err(e)
            }
        })?;
        Ok(())
    }

    async fn all_routes(&self) -> Result<Vec<Route>, StoreError> {
        self.query("SELECT route FROM routes ORDER BY created_ms, id", &[])
            .await?
            .iter()
            .map(|r| serde_json::from_str::<Route>(r.get(0)).map_err(json_err))
            .collect()
    }

    async fn delete_route(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute("DELETE FROM routes WHERE id = $1", &[&id])
            .await?
            > 0)
    }
}
