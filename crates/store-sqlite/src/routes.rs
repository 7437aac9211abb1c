//! [`RouteStore`] on SQLite: one row per route, its settings as JSON beside the key columns
//! and its path space and shape, unique together with its method (a second route there is
//! [`RoutePut::Taken`]); one row per host name a namespace claims.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_core::Route;
use lambent_store::routes::{Claimed, HostClaim, Released, RoutePut, RouteStore};
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

/// Each route's path space (its namespace while it claims host names, else `''`, the shared
/// one) and shape (`Route::shape`, computed here segment by segment), unique with its method:
/// the store refuses a second route that no request could tell apart. Duplicates stored
/// before (none on one node, whose route table checked every add) would keep the oldest's
/// shape, the others getting their id appended, so that the migration never fails.
pub(crate) const SPACES_MIGRATION: &str = r#"
ALTER TABLE routes ADD COLUMN space TEXT NOT NULL DEFAULT '';
ALTER TABLE routes ADD COLUMN shape TEXT NOT NULL DEFAULT '';
UPDATE routes SET space = namespace WHERE namespace IN (SELECT namespace FROM namespace_hosts);
UPDATE routes SET shape = (
    WITH RECURSIVE s(rest, out) AS (
        SELECT substr(routes.path, 2) || '/', ''
        UNION ALL
        SELECT substr(rest, instr(rest, '/') + 1), out || '/' || CASE
            WHEN substr(rest, 1, 1) = '{' AND substr(rest, instr(rest, '/') - 2, 2) = '+}'
                THEN '{*}'
            WHEN substr(rest, 1, 1) = '{' THEN '{}'
            ELSE substr(rest, 1, instr(rest, '/') - 1) END
        FROM s WHERE rest <> ''
    ) SELECT out FROM s WHERE rest = ''
) WHERE path <> '/';
UPDATE routes SET shape = '/' WHERE path = '/';
UPDATE routes SET shape = shape || ' ' || id WHERE EXISTS (SELECT 1 FROM routes o
    WHERE o.space = routes.space AND o.method = routes.method AND o.shape = routes.shape
    AND (o.created_ms, o.id) < (routes.created_ms, routes.id));
CREATE UNIQUE INDEX routes_by_shape ON routes (space, method, shape);
"#;

/// The path space of the routes of namespace `?2`.
const SPACE_OF: &str =
    "CASE WHEN EXISTS (SELECT 1 FROM namespace_hosts WHERE namespace = ?2) THEN ?2 ELSE '' END";

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

#[async_trait]
impl RouteStore for SqliteStore {
    async fn put_route(&self, route: &Route) -> Result<RoutePut, StoreError> {
        let r = route.clone();
        let json = serde_json::to_string(&r).map_err(db_err)?;
        let shape = r.shape();
        self.write(move |conn| {
            let put = conn.execute(
                &format!(
                    "INSERT INTO routes (id, namespace, method, path, route, created_ms, space, \
                     shape) VALUES (?1, ?2, ?3, ?4, ?5, ?6, {SPACE_OF}, ?7) \
                     ON CONFLICT (id) DO UPDATE SET namespace = excluded.namespace, \
                     method = excluded.method, path = excluded.path, route = excluded.route, \
                     created_ms = excluded.created_ms, space = excluded.space, \
                     shape = excluded.shape"
                ),
                params![
                    r.id,
                    r.namespace,
                    r.method,
                    r.path,
                    json,
                    r.created_ms,
                    shape
                ],
            );
            match put {
                Ok(_) => Ok(RoutePut::Stored),
                Err(e) if is_unique_violation(&e) => {
                    let holder: Option<String> = conn
                        .query_row(
                            &format!(
                                "SELECT namespace FROM routes WHERE id <> ?1 AND method = ?3 AND \
                                 ((namespace = ?2 AND path = ?4) OR \
                                  (space = {SPACE_OF} AND shape = ?5)) LIMIT 1"
                            ),
                            params![r.id, r.namespace, r.method, r.path, shape],
                            |row| row.get(0),
                        )
                        .optional()
                        .map_err(db_err)?;
                    match holder {
                        Some(namespace) => Ok(RoutePut::Taken { namespace }),
                        None => Err(db_err(e)),
                    }
                }
                Err(e) => Err(db_err(e)),
            }
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
            let tx = conn.transaction().map_err(db_err)?;
            let added = tx
                .execute(
                    "INSERT INTO namespace_hosts (host, namespace, created_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (host) DO NOTHING",
                    params![c.host, c.namespace, c.created_ms],
                )
                .map_err(db_err)?;
            if added > 0 {
                // Its routes are in its own path space now (they were already, if it held one).
                tx.execute(
                    "UPDATE routes SET space = ?1 WHERE namespace = ?1",
                    params![c.namespace],
                )
                .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
                return Ok(Claimed::New);
            }
            let holder: Option<String> = tx
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

    async fn release_host(&self, namespace: &str, host: &str) -> Result<Released, StoreError> {
        let (ns, host) = (namespace.to_string(), host.to_string());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let n = tx
                .execute(
                    "DELETE FROM namespace_hosts WHERE host = ?1 AND namespace = ?2",
                    params![host, ns],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Ok(Released::NotHeld);
            }
            // Without a host name its routes join the shared path space, unless one overlaps
            // a route there (then the transaction, release included, is rolled back).
            let moved = tx.execute(
                "UPDATE routes SET space = '' WHERE namespace = ?1 AND NOT EXISTS \
                 (SELECT 1 FROM namespace_hosts WHERE namespace = ?1)",
                params![ns],
            );
            match moved {
                Err(e) if is_unique_violation(&e) => return Ok(Released::Overlaps),
                other => other.map_err(db_err)?,
            };
            tx.commit().map_err(db_err)?;
            Ok(Released::Released)
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
