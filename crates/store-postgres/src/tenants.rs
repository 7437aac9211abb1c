//! [`TenantStore`] on PostgreSQL: `namespaces` (settings as JSON text), `api_keys` (one row
//! per secret digest, with the key's id, role and expiry) and `audit`. A namespace's purge is
//! one transaction over every table with a `namespace` column (found in the catalog, so a
//! table added later is covered), after the children listed in [`PURGE_CHILDREN`].

use crate::{json_err, PgStore};
use async_trait::async_trait;
use lambent_core::tenancy::{Namespace, Role};
use lambent_store::tenants::{
    segment_locators, ApiKey, AuditEntry, AuditQuery, Purged, StorageUse, TenantStore,
    PURGED_OBJECTS, PURGED_PARTS, PURGE_CHILDREN, RECORD_TABLES, STORAGE_USE,
};
use lambent_store::StoreError;
use tokio_postgres::Row;

/// The tables and the columns keys gain. The keys of a single-namespace setup become its
/// owner keys; the `default` namespace exists.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE namespaces (
    name       TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
INSERT INTO namespaces (name, settings, created_ms, updated_ms)
    SELECT namespace, '{}', min(created_ms), min(created_ms) FROM api_keys GROUP BY namespace
    ON CONFLICT (name) DO NOTHING;
INSERT INTO namespaces (name, settings, created_ms, updated_ms) VALUES ('default', '{}', 0, 0)
    ON CONFLICT (name) DO NOTHING;
ALTER TABLE api_keys ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE api_keys ADD COLUMN expires_ms BIGINT;
UPDATE api_keys SET key_id = 'lk-' || substr(key_sha256, 1, 12);
CREATE INDEX api_keys_by_id ON api_keys (namespace, key_id);
ALTER TABLE access_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE access_keys ADD COLUMN expires_ms BIGINT;
CREATE TABLE audit (
    seq        BIGSERIAL PRIMARY KEY,
    namespace  TEXT NOT NULL,
    at_ms      BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    method     TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    status     INTEGER NOT NULL,
    client     TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit (namespace, at_ms);
"#;

/// A stored role; text this version does not know reads as the least one, `viewer`.
pub(crate) fn role_of(text: String) -> Role {
    text.parse().unwrap_or(Role::Viewer)
}

fn namespace_from_row(row: &Row) -> Result<Namespace, StoreError> {
    let settings: String = row.get(1);
    Ok(Namespace {
        name: row.get(0),
        settings: serde_json::from_str(&settings).map_err(json_err)?,
        created_ms: row.get(2),
        updated_ms: row.get(3),
    })
}

const KEY_COLUMNS: &str = "key_id, namespace, role, key_sha256, created_ms, expires_ms";

fn key_from_row(row: &Row) -> ApiKey {
    ApiKey {
        key_id: row.get(0),
        namespace: row.get(1),
        role: role_of(row.get(2)),
        key_sha256: row.get(3),
        created_ms: row.get(4),
        expires_ms: row.get(5),
    }
}

const AUDIT_COLUMNS: &str =
    "namespace, at_ms, key_id, role, method, action, target, status, client";

fn audit_from_row(row: &Row) -> AuditEntry {
    AuditEntry {
        namespace: row.get(0),
        at_ms: row.get(1),
        key_id: row.get(2),
        role: role_of(row.get(3)),
        method: row.get(4),
        action: row.get(5),
        target: row.get(6),
        status: row.get::<_, i32>(7) as u16,
        client: row.get(8),
    }
}

const NAMESPACE_TABLES: &str = "SELECT table_name::text FROM information_schema.columns \
     WHERE table_schema = current_schema() AND column_name = 'namespace' ORDER BY table_name";

#[async_trait]
impl TenantStore for PgStore {
    async fn create_namespace(&self, ns: &Namespace) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&ns.settings).map_err(json_err)?;
        let n = self
            .execute(
                "INSERT INTO namespaces (name, settings, created_ms, updated_ms) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                &[&ns.name, &settings, &ns.created_ms, &ns.updated_ms],
            )
            .await?;
        Ok(n > 0)
    }

    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        self.query_opt(
            "SELECT name, settings, created_ms, updated_ms FROM namespaces WHERE name = $1",
            &[&name],
        )
        .await?
        .map(|r| namespace_from_row(&r))
        .transpose()
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        self.query(
            "SELECT name, settings, created_ms, updated_ms FROM namespaces ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(namespace_from_row)
        .collect()
    }

    async fn update_namespace(&self, ns: &Namespace) -> Result<bool, StoreError> {
        let settings = serde_json::to_string(&ns.settings).map_err(json_err)?;
        let n = self
            .execute(
                "UPDATE namespaces SET settings = $2, updated_ms = $3 WHERE name = $1",
                &[&ns.name, &settings, &ns.updated_ms],
            )
            .await?;
        Ok(n > 0)
    }

    async fn namespace_contents(&self, name: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let tables = self.query(NAMESPACE_TABLES, &[]).await?;
        let mut found = Vec::new();
        for row in tables {
            let table: String = row.get(0);
            if RECORD_TABLES.contains(&table.as_str()) {
                continue;
            }
            let count = self
                .query_opt(
                    &format!("SELECT count(*) FROM \"{table}\" WHERE namespace = $1"),
                    &[&name],
                )
                .await?
                .map_or(0, |r| r.get::<_, i64>(0));
            if count > 0 {
                found.push((table, count as u64));
            }
        }
        Ok(found)
    }

    async fn storage_use(&self, name: &str) -> Result<StorageUse, StoreError> {
        let row = self.query_opt(STORAGE_USE, &[&name]).await?;
        let n = |i| row.as_ref().map_or(0, |r| r.get::<_, i64>(i).max(0) as u64);
        Ok(StorageUse {
            objects: n(0),
            parts: n(1),
            items: n(2),
            messages: n(3),
        })
    }

    async fn purge_namespace(&self, name: &str) -> Result<Purged, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let parts = tx
            .query(PURGED_PARTS, &[&name])
            .await
            .map_err(|e| self.err(e))?;
        let mut object_data: Vec<String> = parts.iter().map(|r| r.get(0)).collect();
        let objects = tx
            .query(PURGED_OBJECTS, &[&name])
            .await
            .map_err(|e| self.err(e))?;
        for row in objects {
            object_data.extend(segment_locators(row.get::<_, &str>(0))?);
        }
        for sql in PURGE_CHILDREN {
            tx.execute(*sql, &[&name]).await.map_err(|e| self.err(e))?;
        }
        let tables = tx
            .query(NAMESPACE_TABLES, &[])
            .await
            .map_err(|e| self.err(e))?;
        for row in tables {
            let table: String = row.get(0);
            tx.execute(
                &format!("DELETE FROM \"{table}\" WHERE namespace = $1"),
                &[&name],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        let existed = tx
            .execute("DELETE FROM namespaces WHERE name = $1", &[&name])
            .await
            .map_err(|e| self.err(e))?
            > 0;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(Purged {
            existed,
            object_data,
        })
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.execute(
            &format!(
                "INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (key_sha256) DO UPDATE SET key_id = excluded.key_id, \
                 namespace = excluded.namespace, role = excluded.role, \
                 created_ms = excluded.created_ms, expires_ms = excluded.expires_ms"
            ),
            &[
                &key.key_id,
                &key.namespace,
                &key.role.as_str(),
                &key.key_sha256,
                &key.created_ms,
                &key.expires_ms,
            ],
        )
        .await?;
        Ok(())
    }

    async fn api_key(&self, key_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .query_opt(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_sha256 = $1"),
                &[&key_sha256],
            )
            .await?
            .map(|r| key_from_row(&r)))
    }

    async fn list_api_keys(&self, namespace: &str) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = $1 \
                     ORDER BY created_ms, key_id"
                ),
                &[&namespace],
            )
            .await?
            .iter()
            .map(key_from_row)
            .collect())
    }

    async fn delete_api_key(&self, namespace: &str, key_id: &str) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM api_keys WHERE namespace = $1 AND key_id = $2",
                &[&namespace, &key_id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn rotate_api_key(&self, new: &ApiKey, grace_until_ms: i64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let n = tx
            .execute(
                "UPDATE api_keys SET expires_ms = least(coalesce(expires_ms, $3), $3) \
                 WHERE namespace = $1 AND key_id = $2",
                &[&new.namespace, &new.key_id, &grace_until_ms],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Ok(false);
        }
        tx.execute(
            &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
            &[
                &new.key_id,
                &new.namespace,
                &new.role.as_str(),
                &new.key_sha256,
                &new.created_ms,
                &new.expires_ms,
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(true)
    }

    async fn append_audit(&self, batch: &[AuditEntry]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let col = |f: fn(&AuditEntry) -> String| batch.iter().map(f).collect::<Vec<_>>();
        let namespaces = col(|e| e.namespace.clone());
        let at: Vec<i64> = batch.iter().map(|e| e.at_ms).collect();
        let key_ids = col(|e| e.key_id.clone());
        let roles = col(|e| e.role.as_str().to_string());
        let methods = col(|e| e.method.clone());
        let actions = col(|e| e.action.clone());
        let targets = col(|e| e.target.clone());
        let statuses: Vec<i32> = batch.iter().map(|e| i32::from(e.status)).collect();
        let clients = col(|e| e.client.clone());
        self.execute(
            &format!(
                "INSERT INTO audit ({AUDIT_COLUMNS}) SELECT * FROM unnest($1::text[], \
                 $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                 $8::int[], $9::text[])"
            ),
            &[
                &namespaces,
                &at,
                &key_ids,
                &roles,
                &methods,
                &actions,
                &targets,
                &statuses,
                &clients,
            ],
        )
        .await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     WHERE ($1::text IS NULL OR namespace = $1) AND at_ms >= $2 \
                     ORDER BY at_ms DESC, seq DESC LIMIT $3"
                ),
                &[&q.namespace, &q.since_ms.unwrap_or(0), &(q.limit as i64)],
            )
            .await?
            .iter()
            .map(audit_from_row)
            .collect())
    }
}
