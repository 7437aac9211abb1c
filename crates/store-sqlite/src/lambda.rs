//! The SQLite side of [`LambdaStore`]: tables `access_keys`, `function_versions` (each version's
//! function snapshot as JSON) and `aliases`.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_core::Function;
use lambent_store::lambda::{AccessKey, Alias, FunctionVersion, LambdaStore};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension, Row};

/// The tables, as one migration.
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY,
    namespace         TEXT NOT NULL,
    secret_access_key TEXT NOT NULL,
    created_ms        INTEGER NOT NULL
);
CREATE TABLE function_versions (
    namespace   TEXT NOT NULL,
    function    TEXT NOT NULL,
    version     INTEGER NOT NULL,
    snapshot    TEXT NOT NULL,
    description TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (namespace, function, version)
);
CREATE TABLE version_counters (
    namespace    TEXT NOT NULL,
    function     TEXT NOT NULL,
    next_version INTEGER NOT NULL,
    PRIMARY KEY (namespace, function)
);
CREATE TABLE aliases (
    namespace          TEXT NOT NULL,
    function           TEXT NOT NULL,
    name               TEXT NOT NULL,
    function_version   TEXT NOT NULL,
    description        TEXT NOT NULL,
    additional_weights TEXT NOT NULL,
    revision_id        TEXT NOT NULL,
    updated_ms         INTEGER NOT NULL,
    PRIMARY KEY (namespace, function, name)
);
"#;

fn conversion(e: impl std::fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.to_string().into())
}

fn access_key_from_row(row: &Row<'_>) -> rusqlite::Result<AccessKey> {
    Ok(AccessKey {
        access_key_id: row.get(0)?,
        namespace: row.get(1)?,
        secret_access_key: row.get(2)?,
        created_ms: row.get(3)?,
        role: crate::tenants::role_column(row, 4)?,
        expires_ms: row.get(5)?,
        previous_secret: match (row.get(6)?, row.get(7)?) {
            (Some(secret), Some(until)) => Some((secret, until)),
            _ => None,
        },
    })
}

fn version_from_row(row: &Row<'_>) -> rusqlite::Result<FunctionVersion> {
    let snapshot: String = row.get(1)?;
    Ok(FunctionVersion {
        version: row.get(0)?,
        function: serde_json::from_str::<Function>(&snapshot).map_err(conversion)?,
        description: row.get(2)?,
        created_ms: row.get(3)?,
    })
}

fn alias_from_row(row: &Row<'_>) -> rusqlite::Result<Alias> {
    let weights: String = row.get(5)?;
    Ok(Alias {
        namespace: row.get(0)?,
        function: row.get(1)?,
        name: row.get(2)?,
        function_version: row.get(3)?,
        description: row.get(4)?,
        additional_weights: serde_json::from_str(&weights).map_err(conversion)?,
        revision_id: row.get(6)?,
        updated_ms: row.get(7)?,
    })
}

const ALIAS_COLUMNS: &str = "namespace, function, name, function_version, description, \
additional_weights, revision_id, updated_ms";

#[async_trait]
impl LambdaStore for SqliteStore {
    async fn put_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |conn| {
            let changed = conn
                .execute(
                    "INSERT INTO access_keys (access_key_id, namespace, secret_access_key, created_ms, \
                     role, expires_ms, previous_secret, previous_until_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                     ON CONFLICT (access_key_id) DO UPDATE \
                     SET secret_access_key = excluded.secret_access_key, role = excluded.role, \
                     expires_ms = excluded.expires_ms, previous_secret = excluded.previous_secret, \
                     previous_until_ms = excluded.previous_until_ms \
                     WHERE namespace = excluded.namespace",
                    params![key.access_key_id, key.namespace, key.secret_access_key, key.created_ms,
                        key.role.as_str(), key.expires_ms,
                        key.previous_secret.as_ref().map(|p| &p.0),
                        key.previous_secret.as_ref().map(|p| p.1)],
                )
                .map_err(db_err)?;
            if changed == 0 {
                return Err(StoreError::Changed(format!(
                    "access key id '{}' belongs to another namespace",
                    key.access_key_id
                )));
            }
            Ok(())
        })
        .await
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        let id = access_key_id.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT access_key_id, namespace, secret_access_key, created_ms, role, expires_ms, \
                 previous_secret, previous_until_ms FROM access_keys \
                 WHERE access_key_id = ?1",
            )
            .and_then(|mut s| s.query_row(params![id], access_key_from_row).optional())
            .map_err(db_err)
        })
        .await
    }

    async fn list_access_keys(&self, namespace: &str) -> Result<Vec<AccessKey>, StoreError> {
        let ns = namespace.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT access_key_id, namespace, secret_access_key, created_ms, role, expires_ms, \
                 previous_secret, previous_until_ms FROM access_keys \
                     WHERE namespace = ?1 ORDER BY created_ms, access_key_id",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns], access_key_from_row)
                .map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_access_key(
        &self,
        namespace: &str,
        access_key_id: &str,
    ) -> Result<bool, StoreError> {
        let (ns, id) = (namespace.to_string(), access_key_id.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM access_keys WHERE namespace = ?1 AND access_key_id = ?2",
                    params![ns, id],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn publish_version(
        &self,
        function: &Function,
        description: &str,
    ) -> Result<FunctionVersion, StoreError> {
        let (function, description) = (function.clone(), description.to_string());
        let snapshot = serde_json::to_string(&function).map_err(db_err)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let newest = tx
                .query_row(
                    "SELECT version, snapshot, description, created_ms FROM function_versions \
                     WHERE namespace = ?1 AND function = ?2 ORDER BY version DESC LIMIT 1",
                    params![function.namespace, function.name.as_str()],
                    version_from_row,
                )
                .optional()
                .map_err(db_err)?;
            if let Some(newest) = newest.filter(|n| n.function.revision == function.revision) {
                return Ok(newest);
            }
            // Numbers are never reused, even after a version is deleted (as on Lambda).
            let number: u64 = tx
                .query_row(
                    "SELECT next_version FROM version_counters WHERE namespace = ?1 AND function = ?2",
                    params![function.namespace, function.name.as_str()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?
                .unwrap_or(1);
            tx.execute(
                "INSERT OR REPLACE INTO version_counters (namespace, function, next_version) \
                 VALUES (?1, ?2, ?3)",
                params![function.namespace, function.name.as_str(), number + 1],
            )
            .map_err(db_err)?;
            let version = FunctionVersion {
                version: number,
                function,
                description,
                created_ms: lambent_core::now_ms(),
            };
            tx.execute(
                "INSERT INTO function_versions \
                 (namespace, function, version, snapshot, description, created_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    version.function.namespace,
                    version.function.name.as_str(),
                    version.version,
                    snapshot,
                    version.description,
                    version.created_ms
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            Ok(version)
        })
        .await
    }

    async fn put_version_snapshot(&self, version: &FunctionVersion) -> Result<bool, StoreError> {
        let snapshot = serde_json::to_string(&version.function).map_err(db_err)?;
        let f = &version.function;
        let (ns, name, number) = (f.namespace.clone(), f.name.to_string(), version.version);
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE function_versions SET snapshot = ?1 \
                     WHERE namespace = ?2 AND function = ?3 AND version = ?4",
                    params![snapshot, ns, name, number],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_version(
        &self,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        let (ns, f) = (namespace.to_string(), function.to_string());
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM function_versions \
                     WHERE namespace = ?1 AND function = ?2 AND version = ?3",
                    params![ns, f, version],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn all_versions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT version, snapshot, description, created_ms FROM function_versions \
                     ORDER BY namespace, function, version",
                )
                .map_err(db_err)?;
            let rows = stmt.query_map([], version_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn put_alias(
        &self,
        alias: &Alias,
        expected_revision_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let alias = alias.clone();
        let expected = expected_revision_id.map(str::to_string);
        let weights = serde_json::to_string(&alias.additional_weights).map_err(db_err)?;
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let current: Option<String> = tx
                .query_row(
                    "SELECT revision_id FROM aliases WHERE namespace = ?1 AND function = ?2 AND name = ?3",
                    params![alias.namespace, alias.function, alias.name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(db_err)?;
            match (&current, &expected) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err(StoreError::Changed(format!(
                        "alias '{}' of function '{}' already exists",
                        alias.name, alias.function
                    )))
                }
                (None, Some(_)) => {
                    return Err(StoreError::Changed(format!(
                        "alias '{}' of function '{}' was deleted concurrently",
                        alias.name, alias.function
                    )))
                }
                (Some(c), Some(e)) if c != e => {
                    return Err(StoreError::Changed(format!(
                        "alias '{}' was changed concurrently (revision {e} expected): retry",
                        alias.name
                    )))
                }
                (Some(_), Some(_)) => {}
            }
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO aliases ({ALIAS_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    alias.namespace,
                    alias.function,
                    alias.name,
                    alias.function_version,
                    alias.description,
                    weights,
                    alias.revision_id,
                    alias.updated_ms
                ],
            )
            .map_err(db_err)?;
            tx.commit().map_err(db_err)
        })
        .await
    }

    async fn all_aliases(&self) -> Result<Vec<Alias>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT {ALIAS_COLUMNS} FROM aliases ORDER BY namespace, function, name"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([], alias_from_row).map_err(db_err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_alias(
        &self,
        namespace: &str,
        function: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let (ns, f, name) = (
            namespace.to_string(),
            function.to_string(),
            name.to_string(),
        );
        self.write(move |conn| {
            let n = conn
                .execute(
                    "DELETE FROM aliases WHERE namespace = ?1 AND function = ?2 AND name = ?3",
                    params![ns, f, name],
                )
                .map_err(db_err)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_versions_and_aliases(
        &self,
        namespace: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        let (ns, f) = (namespace.to_string(), function.to_string());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            for table in ["function_versions", "version_counters", "aliases"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE namespace = ?1 AND function = ?2"),
                    params![ns, f],
                )
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }
}
