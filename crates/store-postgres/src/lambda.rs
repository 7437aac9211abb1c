//! [`LambdaStore`] on PostgreSQL: access keys, published versions and aliases. Publishing takes a
//! transaction-scoped advisory lock on the function (so "is the newest version this revision?"
//! and the numbering are atomic across nodes) and numbers with an UPSERT counter; aliases are
//! created with `ON CONFLICT DO NOTHING` and updated with a conditional `UPDATE` on their
//! revision id.

use crate::{json_err, PgStore};
use async_trait::async_trait;
use lambent_core::Function;
use lambent_store::lambda::{AccessKey, Alias, FunctionVersion, LambdaStore};
use lambent_store::StoreError;
use tokio_postgres::Row;

fn access_key_from_row(row: &Row) -> AccessKey {
    AccessKey {
        access_key_id: row.get(0),
        namespace: row.get(1),
        secret_access_key: row.get(2),
        created_ms: row.get(3),
        role: crate::tenants::role_of(row.get(4)),
        expires_ms: row.get(5),
        previous_secret: match (row.get(6), row.get(7)) {
            (Some(secret), Some(until)) => Some((secret, until)),
            _ => None,
        },
    }
}

fn version_from_row(row: &Row) -> Result<FunctionVersion, StoreError> {
    let snapshot: String = row.get(1);
    Ok(FunctionVersion {
        version: row.get::<_, i64>(0) as u64,
        function: serde_json::from_str::<Function>(&snapshot).map_err(json_err)?,
        description: row.get(2),
        created_ms: row.get(3),
    })
}

fn alias_from_row(row: &Row) -> Result<Alias, StoreError> {
    let weights: String = row.get(5);
    Ok(Alias {
        namespace: row.get(0),
        function: row.get(1),
        name: row.get(2),
        function_version: row.get(3),
        description: row.get(4),
        additional_weights: serde_json::from_str(&weights).map_err(json_err)?,
        revision_id: row.get(6),
        updated_ms: row.get(7),
    })
}

const ALIAS_COLUMNS: &str = "namespace, function, name, function_version, description, \
additional_weights, revision_id, updated_ms";

#[async_trait]
impl LambdaStore for PgStore {
    async fn put_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let changed = self
            .execute(
                "INSERT INTO access_keys (access_key_id, namespace, secret_access_key, created_ms, \
                 role, expires_ms, previous_secret, previous_until_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (access_key_id) DO UPDATE \
                 SET secret_access_key = excluded.secret_access_key, role = excluded.role, \
                 expires_ms = excluded.expires_ms, previous_secret = excluded.previous_secret, \
                 previous_until_ms = excluded.previous_until_ms \
                 WHERE access_keys.namespace = excluded.namespace",
                &[
                    &key.access_key_id,
                    &key.namespace,
                    &key.secret_access_key,
                    &key.created_ms,
                    &key.role.as_str(),
                    &key.expires_ms,
                    &key.previous_secret.as_ref().map(|p| p.0.as_str()),
                    &key.previous_secret.as_ref().map(|p| p.1),
                ],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::Changed(format!(
                "access key id '{}' belongs to another namespace",
                key.access_key_id
            )));
        }
        Ok(())
    }

    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError> {
        Ok(self
            .query_opt(
                "SELECT access_key_id, namespace, secret_access_key, created_ms, role, expires_ms, \
                 previous_secret, previous_until_ms \
                 FROM access_keys \
                 WHERE access_key_id = $1",
                &[&access_key_id],
            )
            .await?
            .as_ref()
            .map(access_key_from_row))
    }

    async fn list_access_keys(&self, namespace: &str) -> Result<Vec<AccessKey>, StoreError> {
        Ok(self
            .query(
                "SELECT access_key_id, namespace, secret_access_key, created_ms, role, expires_ms, \
                 previous_secret, previous_until_ms \
                 FROM access_keys \
                 WHERE namespace = $1 ORDER BY created_ms, access_key_id",
                &[&namespace],
            )
            .await?
            .iter()
            .map(access_key_from_row)
            .collect())
    }

    async fn delete_access_key(
        &self,
        namespace: &str,
        access_key_id: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM access_keys WHERE namespace = $1 AND access_key_id = $2",
                &[&namespace, &access_key_id],
            )
            .await?;
        Ok(n > 0)
    }

    async fn publish_version(
        &self,
        function: &Function,
        description: &str,
    ) -> Result<FunctionVersion, StoreError> {
        let snapshot = serde_json::to_string(function).map_err(json_err)?;
        let (ns, name) = (function.namespace.as_str(), function.name.as_str());
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        // Serialises publishes of this function across nodes until commit.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('version:' || $1 || '/' || $2, 0))",
            &[&ns, &name],
        )
        .await
        .map_err(|e| self.err(e))?;
        let newest = tx
            .query_opt(
                "SELECT version, snapshot, description, created_ms FROM function_versions \
                 WHERE namespace = $1 AND function = $2 ORDER BY version DESC LIMIT 1",
                &[&ns, &name],
            )
            .await
            .map_err(|e| self.err(e))?
            .as_ref()
            .map(version_from_row)
            .transpose()?;
        if let Some(newest) = newest.filter(|n| n.function.revision == function.revision) {
            return Ok(newest);
        }
        // Numbers are never reused, even after a version is deleted (as on Lambda).
        let number: i64 = tx
            .query_one(
                "INSERT INTO version_counters (namespace, function, next_version) \
                 VALUES ($1, $2, 2) ON CONFLICT (namespace, function) \
                 DO UPDATE SET next_version = version_counters.next_version + 1 \
                 RETURNING next_version - 1",
                &[&ns, &name],
            )
            .await
            .map_err(|e| self.err(e))?
            .get(0);
        let version = FunctionVersion {
            version: number as u64,
            function: function.clone(),
            description: description.to_string(),
            created_ms: lambent_core::now_ms(),
        };
        tx.execute(
            "INSERT INTO function_versions \
             (namespace, function, version, snapshot, description, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &ns,
                &name,
                &number,
                &snapshot,
                &version.description,
                &version.created_ms,
            ],
        )
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(version)
    }

    async fn put_version_snapshot(&self, version: &FunctionVersion) -> Result<bool, StoreError> {
        let snapshot = serde_json::to_string(&version.function).map_err(json_err)?;
        let f = &version.function;
        let n = self
            .execute(
                "UPDATE function_versions SET snapshot = $1 \
                 WHERE namespace = $2 AND function = $3 AND version = $4",
                &[
                    &snapshot,
                    &f.namespace,
                    &f.name.as_str(),
                    &(version.version as i64),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    async fn delete_version(
        &self,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM function_versions \
                 WHERE namespace = $1 AND function = $2 AND version = $3",
                &[&namespace, &function, &(version as i64)],
            )
            .await?;
        Ok(n > 0)
    }

    async fn all_versions(&self) -> Result<Vec<FunctionVersion>, StoreError> {
        self.query(
            "SELECT version, snapshot, description, created_ms FROM function_versions \
             ORDER BY namespace, function, version",
            &[],
        )
        .await?
        .iter()
        .map(version_from_row)
        .collect()
    }

    async fn put_alias(
        &self,
        alias: &Alias,
        expected_revision_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let weights = serde_json::to_string(&alias.additional_weights).map_err(json_err)?;
        let n = match expected_revision_id {
            None => {
                self.execute(
                    &format!(
                        "INSERT INTO aliases ({ALIAS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                         ON CONFLICT (namespace, function, name) DO NOTHING"
                    ),
                    &[
                        &alias.namespace,
                        &alias.function,
                        &alias.name,
                        &alias.function_version,
                        &alias.description,
                        &weights,
                        &alias.revision_id,
                        &alias.updated_ms,
                    ],
                )
                .await?
            }
            Some(expected) => {
                self.execute(
                    "UPDATE aliases SET function_version = $4, description = $5, \
                     additional_weights = $6, revision_id = $7, updated_ms = $8 \
                     WHERE namespace = $1 AND function = $2 AND name = $3 AND revision_id = $9",
                    &[
                        &alias.namespace,
                        &alias.function,
                        &alias.name,
                        &alias.function_version,
                        &alias.description,
                        &weights,
                        &alias.revision_id,
                        &alias.updated_ms,
                        &expected,
                    ],
                )
                .await?
            }
        };
        if n == 1 {
            return Ok(());
        }
        Err(StoreError::Changed(match expected_revision_id {
            None => format!(
                "alias '{}' of function '{}' already exists",
                alias.name, alias.function
            ),
            Some(e) => {
                let exists = self
                    .query_opt(
                        "SELECT 1 FROM aliases WHERE namespace = $1 AND function = $2 AND name = $3",
                        &[&alias.namespace, &alias.function, &alias.name],
                    )
                    .await?
                    .is_some();
                if exists {
                    format!(
                        "alias '{}' was changed concurrently (revision {e} expected): retry",
                        alias.name
                    )
                } else {
                    format!(
                        "alias '{}' of function '{}' was deleted concurrently",
                        alias.name, alias.function
                    )
                }
            }
        }))
    }

    async fn all_aliases(&self) -> Result<Vec<Alias>, StoreError> {
        self.query(
            &format!("SELECT {ALIAS_COLUMNS} FROM aliases ORDER BY namespace, function, name"),
            &[],
        )
        .await?
        .iter()
        .map(alias_from_row)
        .collect()
    }

    async fn delete_alias(
        &self,
        namespace: &str,
        function: &str,
        name: &str,
    ) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "DELETE FROM aliases WHERE namespace = $1 AND function = $2 AND name = $3",
                &[&namespace, &function, &name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn delete_versions_and_aliases(
        &self,
        namespace: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        for table in ["function_versions", "version_counters", "aliases"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE namespace = $1 AND function = $2"),
                &[&namespace, &function],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }
}
