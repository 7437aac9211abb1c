//! [`RouteStore`] on PostgreSQL: one row per route, its settings as JSON beside the key columns;
//! a second route on a method and path its namespace has taken is [`StoreError::Changed`];
//! one row per host name a namespace claims.

use crate::{is_unique_violation, json_err, PgStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::{Claimed, HostClaim, RouteStore};
use lambent_store::StoreError;

/// Host names per namespace: a route's key is unique within its namespace (namespaces with
/// host names have path spaces of their own), and each host name belongs to one namespace.
/// Access keys keep their previous secret through a rotation's grace.
pub(crate) const HOSTS_MIGRATION: &str = r#"
ALTER TABLE routes DROP CONSTRAINT routes_method_path_key;
ALTER TABLE routes ADD CONSTRAINT routes_namespace_method_path_key UNIQUE (namespace, method, path);
CREATE TABLE namespace_hosts (
    host       TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
ALTER TABLE access_keys ADD COLUMN previous_secret TEXT;
ALTER TABLE access_keys ADD COLUMN previous_until_ms BIGINT;
"#;

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

    async fn claim_host(&self, claim: &HostClaim) -> Result<Claimed, StoreError> {
        let added = self
            .execute(
                "INSERT INTO namespace_hosts (host, namespace, created_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (host) DO NOTHING",
                &[&claim.host, &claim.namespace, &claim.created_ms],
            )
            .await?;
        if added > 0 {
            return Ok(Claimed::New);
        }
        let holder = self
            .query_opt(
                "SELECT namespace FROM namespace_hosts WHERE host = $1",
                &[&claim.host],
            )
            .await?
            .map(|r| r.get::<_, String>(0));
        Ok(match holder {
            Some(ns) if ns == claim.namespace => Claimed::Held,
            _ => Claimed::Taken,
        })
    }

    async fn release_host(&self, namespace: &str, host: &str) -> Result<bool, StoreError> {
        Ok(self
            .execute(
                "DELETE FROM namespace_hosts WHERE host = $1 AND namespace = $2",
                &[&host, &namespace],
            )
            .await?
            > 0)
    }

    async fn all_hosts(&self) -> Result<Vec<HostClaim>, StoreError> {
        Ok(self
            .query(
                "SELECT host, namespace, created_ms FROM namespace_hosts ORDER BY created_ms, host",
                &[],
            )
            .await?
            .iter()
            .map(|r| HostClaim {
                host: r.get(0),
                namespace: r.get(1),
                created_ms: r.get(2),
            })
            .collect())
    }
}
