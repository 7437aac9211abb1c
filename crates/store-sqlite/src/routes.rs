//! [`RouteStore`] on SQLite: one row per route, its settings as JSON beside the key columns,
//! and one row per host name a namespace claims.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::{Claimed, HostClaim, RouteStore};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension};

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

/// Host names per namespace: a route's key is unique within its namespace (namespaces with
/// host names have path spaces of their own), and each host name belongs to one namespace.
/// Access keys keep their previous secret through a rotation's grace (appended to the
/// store's migrations).
pub(crate) const HOSTS_MIGRATION: &str = r#"
CREATE TABLE routes_by_namespace (
    id         TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    method     TEXT NOT NULL,
    path       TEXT NOT NULL,
    route      TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (namespace, method, path)
);
INSERT INTO routes_by_namespace SELECT id, namespace, method, path, route, created_ms FROM routes;
DROP TABLE routes;
ALTER TABLE routes_by_namespace RENAME TO routes;
CREATE TABLE namespace_hosts (
    host       TEXT PRIMARY KEY,
    namespace  TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
ALTER TABLE access_keys ADD COLUMN previous_secret TEXT;
ALTER TABLE access_keys ADD COLUMN previous_until_ms INTEGER;
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

    async fn claim_host(&self, claim: &HostClaim) -> Result<Claimed, StoreError> {
        let c = claim.clone();
        self.write(move |conn| {
            let added = conn
                .execute(
                    "INSERT INTO namespace_hosts (host, namespace, created_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (host) DO NOTHING",
                    params![c.host, c.namespace, c.created_ms],
                )
                .map_err(db_err)?;
            if added > 0 {
                return Ok(Claimed::New);
            }
            let holder: Option<String> = conn
                .query_row(
                    "SELECT namespace FROM namespace_hosts WHERE host = ?1",
                    params![c.host],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            Ok(match holder {
                Some(ns) if ns == c.namespace => Claimed::Held,
                _ => Claimed::Taken,
            })
        })
        .await
    }

    async fn release_host(&self, namespace: &str, host: &str) -> Result<bool, StoreError> {
        let (ns, host) = (namespace.to_string(), host.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM namespace_hosts WHERE host = ?1 AND namespace = ?2",
                    params![host, ns],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn all_hosts(&self) -> Result<Vec<HostClaim>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT host, namespace, created_ms FROM namespace_hosts \
                     ORDER BY created_ms, host",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(HostClaim {
                        host: r.get(0)?,
                        namespace: r.get(1)?,
                        created_ms: r.get(2)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }
}
