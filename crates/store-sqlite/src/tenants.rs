//! The SQLite side of [`TenantStore`]: tables `namespaces` (settings as JSON), `api_keys`
//! (one row per secret digest, with the key's id, role and expiry) and `audit`.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_core::tenancy::{Namespace, Role};
use lambent_store::tenants::{
    segment_locators, ApiKey, AuditEntry, AuditQuery, Purged, StorageUse, TenantStore,
    PURGED_OBJECTS, PURGED_PARTS, PURGE_CHILDREN, RECORD_TABLES, STORAGE_USE,
};
use lambent_store::StoreError;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The tables, and the columns keys gain (appended to the store's migrations). The keys of a
/// single-namespace setup become its owner keys; the `default` namespace exists.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE namespaces (
    name       TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
INSERT INTO namespaces (name, settings, created_ms, updated_ms)
    SELECT DISTINCT namespace, '{}', created_ms, created_ms FROM api_keys
    WHERE true ON CONFLICT (name) DO NOTHING;
INSERT OR IGNORE INTO namespaces (name, settings, created_ms, updated_ms)
    VALUES ('default', '{}', 0, 0);
ALTER TABLE api_keys ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE api_keys ADD COLUMN expires_ms INTEGER;
UPDATE api_keys SET key_id = 'lk-' || substr(key_sha256, 1, 12);
CREATE INDEX api_keys_by_id ON api_keys (namespace, key_id);
ALTER TABLE access_keys ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
ALTER TABLE access_keys ADD COLUMN expires_ms INTEGER;
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace  TEXT NOT NULL,
    at_ms      INTEGER NOT NULL,
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

/// A role read from a column (an unknown one is a conversion error).
pub(crate) fn role_column(row: &Row<'_>, i: usize) -> rusqlite::Result<Role> {
    let text: String = row.get(i)?;
    text.parse()
        .map_err(|e: lambent_core::tenancy::UnknownRole| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        })
}

fn namespace_from_row(row: &Row<'_>) -> rusqlite::Result<Namespace> {
    let settings: String = row.get(1)?;
    Ok(Namespace {
        name: row.get(0)?,
        settings: serde_json::from_str(&settings).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?,
        created_ms: row.get(2)?,
        updated_ms: row.get(3)?,
    })
}

const KEY_COLUMNS: &str = "key_id, namespace, role, key_sha256, created_ms, expires_ms";

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        key_id: row.get(0)?,
        namespace: row.get(1)?,
        role: role_column(row, 2)?,
        key_sha256: row.get(3)?,
        created_ms: row.get(4)?,
        expires_ms: row.get(5)?,
    })
}

const AUDIT_COLUMNS: &str =
    "namespace, at_ms, key_id, role, method, action, target, status, client";

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    Ok(AuditEntry {
        namespace: row.get(0)?,
        at_ms: row.get(1)?,
        key_id: row.get(2)?,
        role: role_column(row, 3)?,
        method: row.get(4)?,
        action: row.get(5)?,
        target: row.get(6)?,
        status: row.get(7)?,
        client: row.get(8)?,
    })
}

/// Every table with a `namespace` column.
fn namespace_tables(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT m.name FROM sqlite_master m JOIN pragma_table_info(m.name) c \
             WHERE m.type = 'table' AND c.name = 'namespace' ORDER BY m.name",
        )
        .map_err(db_err)?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .map_err(db_err)?;
    names.collect::<Result<_, _>>().map_err(db_err)
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create_namespace(&self, ns: &Namespace) -> Result<bool, StoreError> {
        let ns = ns.clone();
        let settings = serde_json::to_string(&ns.settings).map_err(db_err)?;
        self.write(move |conn| {
            let n = conn
                .execute(
                    "INSERT OR IGNORE INTO namespaces (name, settings, created_ms, updated_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![ns.name, settings, ns.created_ms, ns.updated_ms],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT name, settings, created_ms, updated_ms FROM namespaces WHERE name = ?1",
                params![name],
                namespace_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT name, settings, created_ms, updated_ms FROM namespaces ORDER BY name",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map([], namespace_from_row).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn update_namespace(&self, ns: &Namespace) -> Result<bool, StoreError> {
        let ns = ns.clone();
        let settings = serde_json::to_string(&ns.settings).map_err(db_err)?;
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE namespaces SET settings = ?2, updated_ms = ?3 WHERE name = ?1",
                    params![ns.name, settings, ns.updated_ms],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn namespace_contents(&self, name: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            let mut found = Vec::new();
            for table in namespace_tables(conn)? {
                if RECORD_TABLES.contains(&table.as_str()) {
                    continue;
                }
                let rows: u64 = conn
                    .query_row(
                        &format!("SELECT count(*) FROM \"{table}\" WHERE namespace = ?1"),
                        params![name],
                        |r| r.get(0),
                    )
                    .map_err(db_err)?;
                if rows > 0 {
                    found.push((table, rows));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn storage_use(&self, name: &str) -> Result<StorageUse, StoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.query_row(STORAGE_USE, params![name], |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(StorageUse {
                    objects: n(0)?,
                    parts: n(1)?,
                    items: n(2)?,
                    messages: n(3)?,
                })
            })
            .map_err(db_err)
        })
        .await
    }

    async fn purge_namespace(&self, name: &str) -> Result<Purged, StoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let mut object_data: Vec<String> = {
                let mut parts = tx.prepare(PURGED_PARTS).map_err(db_err)?;
                let rows = parts
                    .query_map(params![name], |r| r.get::<_, String>(0))
                    .map_err(db_err)?;
                rows.collect::<Result<_, _>>().map_err(db_err)?
            };
            {
                let mut objects = tx.prepare(PURGED_OBJECTS).map_err(db_err)?;
                let rows = objects
                    .query_map(params![name], |r| r.get::<_, String>(0))
                    .map_err(db_err)?;
                for data in rows {
                    object_data.extend(segment_locators(&data.map_err(db_err)?)?);
                }
            }
            for sql in PURGE_CHILDREN {
                tx.execute(sql, params![name]).map_err(db_err)?;
            }
            for table in namespace_tables(&tx)? {
                tx.execute(
                    &format!("DELETE FROM \"{table}\" WHERE namespace = ?1"),
                    params![name],
                )
                .map_err(db_err)?;
            }
            let existed = tx
                .execute("DELETE FROM namespaces WHERE name = ?1", params![name])
                .map_err(db_err)?
                > 0;
            tx.commit().map_err(db_err)?;
            Ok(Purged {
                existed,
                object_data,
            })
        })
        .await
    }

    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let k = key.clone();
        self.write(move |conn| {
            conn.execute(
                &format!(
                    "INSERT OR REPLACE INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![k.key_id, k.namespace, k.role.as_str(), k.key_sha256, k.created_ms, k.expires_ms],
            )
            .map_err(db_err)?;
            Ok(())
        })
        .await
    }

    async fn api_key(&self, key_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let digest = key_sha256.to_string();
        self.read(move |conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE key_sha256 = ?1"),
                params![digest],
                key_from_row,
            )
            .optional()
            .map_err(db_err)
        })
        .await
    }

    async fn list_api_keys(&self, namespace: &str) -> Result<Vec<ApiKey>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE namespace = ?1 \
                     ORDER BY created_ms, key_id"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map(params![ns], key_from_row).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_api_key(&self, namespace: &str, key_id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_string(), key_id.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM api_keys WHERE namespace = ?1 AND key_id = ?2",
                    params![ns, id],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn rotate_api_key(&self, new: &ApiKey, grace_until_ms: i64) -> Result<bool, StoreError> {
        let k = new.clone();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let n = tx
                .execute(
                    "UPDATE api_keys SET expires_ms = min(coalesce(expires_ms, ?3), ?3) \
                     WHERE namespace = ?1 AND key_id = ?2",
                    params![k.namespace, k.key_id, grace_until_ms],
                )
                .map_err(db_err)?;
            if n == 0 {
                return Ok(false);
            }
            tx.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    k.key_id,
                    k.namespace,
                    k.role.as_str(),
                    k.key_sha256,
                    k.created_ms,
                    k.expires_ms
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(true)
        })
        .await
    }

    async fn append_audit(&self, batch: &[AuditEntry]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            {
                let mut stmt = tx
                    .prepare_cached(&format!(
                        "INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ))
                    .map_err(db_err)?;
                for e in &batch {
                    stmt.execute(params![
                        e.namespace,
                        e.at_ms,
                        e.key_id,
                        e.role.as_str(),
                        e.method,
                        e.action,
                        e.target,
                        e.status,
                        e.client
                    ])
                    .map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError> {
        let q = q.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit \
                     WHERE (?1 IS NULL OR namespace = ?1) AND at_ms >= ?2 \
                     ORDER BY at_ms DESC, seq DESC LIMIT ?3"
                ))
                .map_err(db_err)?;
            let rows = stmt
                .query_map(
                    params![q.namespace, q.since_ms.unwrap_or(0), q.limit as i64],
                    audit_from_row,
                )
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }
}
