//! [`RouteStore`] on PostgreSQL: one row per route, its settings as JSON beside the key columns
//! and its path space and shape, unique together with its method (a second route there is
//! [`RoutePut::Taken`], whichever node adds it); one row per host name a namespace claims.

use crate::{is_unique_violation, json_err, PgStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::{Claimed, HostClaim, Released, RoutePut, RouteStore};
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

/// Each route's path space (its namespace while it claims host names, else `''`, the shared
/// one) and shape (`Route::shape`), unique with its method: the store refuses a second route
/// that no request could tell apart, whichever node adds it. Routes a race stored before this
/// (the same shape twice in one space) keep the oldest's shape; the others' get their id
/// appended, so that the migration never fails (the route table reports them).
pub(crate) const SPACES_MIGRATION: &str = r#"
ALTER TABLE routes ADD COLUMN space TEXT NOT NULL DEFAULT '';
ALTER TABLE routes ADD COLUMN shape TEXT NOT NULL DEFAULT '';
UPDATE routes SET space = namespace WHERE namespace IN (SELECT namespace FROM namespace_hosts);
UPDATE routes SET shape = regexp_replace(regexp_replace(path, '\{[^/{}]*\+\}', '{*}', 'g'),
    '\{[^/{}*]*\}', '{}', 'g');
UPDATE routes r SET shape = r.shape || ' ' || r.id WHERE EXISTS (SELECT 1 FROM routes o
    WHERE o.space = r.space AND o.method = r.method AND o.shape = r.shape
    AND (o.created_ms, o.id) < (r.created_ms, r.id));
CREATE UNIQUE INDEX routes_by_shape ON routes (space, method, shape);
"#;

/// The path space of the routes of namespace `$2`.
const SPACE_OF: &str =
    "CASE WHEN EXISTS (SELECT 1 FROM namespace_hosts WHERE namespace = $2) THEN $2 ELSE '' END";

#[async_trait]
impl RouteStore for PgStore {
    async fn put_route(&self, route: &Route) -> Result<RoutePut, StoreError> {
        let r = route;
        let json = serde_json::to_string(r).map_err(json_err)?;
        let shape = r.shape();
        let conn = self.conn().await?;
        let put = conn
            .execute(
                &format!(
                    "INSERT INTO routes (id, namespace, method, path, route, created_ms, space, \
                     shape) VALUES ($1, $2, $3, $4, $5, $6, {SPACE_OF}, $7) \
                     ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, \
                     method = excluded.method, path = excluded.path, route = excluded.route, \
                     created_ms = excluded.created_ms, space = excluded.space, \
                     shape = excluded.shape"
                ),
                &[
                    &r.id,
                    &r.namespace,
                    &r.method,
                    &r.path,
                    &json,
                    &r.created_ms,
                    &shape,
                ],
            )
            .await;
        match put {
            Ok(_) => Ok(RoutePut::Stored),
            Err(e) if is_unique_violation(&e) => {
                let holder = conn
                    .query_opt(
                        &format!(
                            "SELECT namespace FROM routes WHERE id <> $1 AND method = $3 AND \
                             ((namespace = $2 AND path = $4) OR \
                              (space = {SPACE_OF} AND shape = $5)) LIMIT 1"
                        ),
                        &[&r.id, &r.namespace, &r.method, &r.path, &shape],
                    )
                    .await
                    .map_err(|e| self.err(e))?;
                match holder {
                    Some(row) => Ok(RoutePut::Taken {
                        namespace: row.get(0),
                    }),
                    None => Err(self.err(e)),
                }
            }
            Err(e) => Err(self.err(e)),
        }
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
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let added = tx
            .execute(
                "INSERT INTO namespace_hosts (host, namespace, created_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (host) DO NOTHING",
                &[&claim.host, &claim.namespace, &claim.created_ms],
            )
            .await
            .map_err(|e| self.err(e))?;
        if added > 0 {
            // Its routes are in its own path space now (they were already, if it held one).
            tx.execute(
                "UPDATE routes SET space = $1 WHERE namespace = $1",
                &[&claim.namespace],
            )
            .await
            .map_err(|e| self.err(e))?;
            tx.commit().await.map_err(|e| self.err(e))?;
            return Ok(Claimed::New);
        }
        let holder = tx
            .query_opt(
                "SELECT namespace FROM namespace_hosts WHERE host = $1",
                &[&claim.host],
            )
            .await
            .map_err(|e| self.err(e))?
            .map(|r| r.get::<_, String>(0));
        Ok(match holder {
            Some(ns) if ns == claim.namespace => Claimed::Held,
            _ => Claimed::Taken,
        })
    }

    async fn release_host(&self, namespace: &str, host: &str) -> Result<Released, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "DELETE FROM namespace_hosts WHERE host = $1 AND namespace = $2",
                &[&host, &namespace],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Ok(Released::NotHeld);
        }
        // Without a host name its routes join the shared path space, unless one overlaps
        // a route there (then the transaction, release included, is rolled back).
        let moved = tx
            .execute(
                "UPDATE routes SET space = '' WHERE namespace = $1 AND NOT EXISTS \
                 (SELECT 1 FROM namespace_hosts WHERE namespace = $1)",
                &[&namespace],
            )
            .await;
        match moved {
            Err(e) if is_unique_violation(&e) => return Ok(Released::Overlaps),
            other => other.map_err(|e| self.err(e))?,
        };
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Released::Released)
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

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_testkit::postgres::PgServer;

    /// V16 on routes stored before it: each gets its namespace's space and its shape (the
    /// same as `Route::shape`), so that the store refuses what the route table would.
    #[tokio::test]
    async fn routes_stored_before_path_spaces_get_their_space_and_shape() {
        let url = tokio::task::spawn_blocking(|| PgServer::shared().fresh_database())
            .await
            .unwrap();
        let store = PgStore::connect(&url).await.unwrap();
        let db = url.rsplit('/').next().unwrap().to_string();
        let psql = move |sql: String| {
            let db = db.clone();
            tokio::task::spawn_blocking(move || PgServer::shared().psql_in(&db, &sql))
        };
        // Back to V15's routes table, with routes and a host claim in it.
        let mut before = String::from(
            "DROP INDEX routes_by_shape; ALTER TABLE routes DROP COLUMN space, DROP COLUMN shape; \
             INSERT INTO namespace_hosts VALUES ('c.example', 'c', 1);",
        );
        for r in lambent_store::contract::routes_before_path_spaces() {
            let json = serde_json::to_string(&r).unwrap().replace('\'', "''");
            before.push_str(&format!(
                "INSERT INTO routes (id, namespace, method, path, route, created_ms) \
                 VALUES ('{}', '{}', 'GET', '{}', '{json}', 1);",
                r.id, r.namespace, r.path
            ));
        }
        psql(before).await.unwrap();
        psql(SPACES_MIGRATION.to_string()).await.unwrap();
        let shapes = psql("SELECT id, space, shape FROM routes ORDER BY id".into())
            .await
            .unwrap();
        assert_eq!(
            shapes, "a1||/u/{}/f/{*}\na2||/\nc1|c|/u/{}/f/{*}",
            "(id|space|shape)"
        );
        lambent_store::contract::migrated_routes_refuse_what_the_route_table_would(&store).await;
    }
}
