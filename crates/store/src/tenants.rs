//! Tenants' state: namespaces with their settings, the API keys of each (digests of their
//! secrets, with a role and an optional expiry; a rotated key keeps its old secret's digest
//! until the grace period ends), the audit log of management actions, and the removal of
//! everything a namespace holds.

use crate::StoreError;
use async_trait::async_trait;
use lambent_core::tenancy::{Namespace, Role};
use serde::{Deserialize, Serialize};

/// One secret of an API key: its SHA-256 digest, the key's id (shared by the secrets a
/// rotation leaves valid for a while), namespace and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub key_id: String,
    pub namespace: String,
    pub role: Role,
    #[serde(skip)]
    pub key_sha256: String,
    pub created_ms: i64,
    /// After this instant the secret is refused (the key's expiry, or a rotation's grace).
    pub expires_ms: Option<i64>,
}

impl ApiKey {
    /// Whether the secret is still accepted at `now_ms`.
    pub fn valid_at(&self, now_ms: i64) -> bool {
        self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// One management action, as the audit log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub namespace: String,
    pub at_ms: i64,
    pub key_id: String,
    pub role: Role,
    pub method: String,
    /// The path (or the AWS action) acted on.
    pub action: String,
    /// The resource named, when one is (function, queue, key id, …).
    pub target: String,
    pub status: u16,
    /// The client's address.
    pub client: String,
}

/// Which audit entries to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// `None`: every namespace's (the operator's view).
    pub namespace: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
}

/// The tables whose rows are records of what happened rather than resources: a namespace
/// holding only these counts as empty.
pub const RECORD_TABLES: &[&str] = &[
    "activations",
    "activation_rollups",
    "activation_histogram",
    "version_counters",
    "ddb_request_tokens",
    "api_keys",
    "access_keys",
    "audit",
    "namespaces",
    // Host names claimed for it are the operator's settings of it, not its resources.
    "namespace_hosts",
];

/// The rows of a namespace in tables without a `namespace` column, deleted before their
/// parents' (`$1` is the namespace; SQLite reads `$1` as the first parameter too), after
/// [`PURGED_PARTS`] and [`PURGED_OBJECTS`]. Every table with a `namespace` column is then
/// emptied of the namespace's rows by name.
pub const PURGE_CHILDREN: &[&str] = &[
    "DELETE FROM uploads WHERE bucket IN (SELECT name FROM buckets WHERE namespace = $1)",
    "DELETE FROM ddb_index_entries WHERE table_id IN \
     (SELECT id FROM ddb_tables WHERE namespace = $1)",
    "DELETE FROM ddb_items WHERE table_id IN (SELECT id FROM ddb_tables WHERE namespace = $1)",
    "DELETE FROM ddb_stream_records WHERE table_id IN \
     (SELECT id FROM ddb_tables WHERE namespace = $1)",
    "DELETE FROM execution_events WHERE execution_arn IN \
     (SELECT arn FROM executions WHERE namespace = $1)",
    // Records of its activations waiting to be folded into the rollups.
    "DELETE FROM rollup_backfill WHERE id IN (SELECT id FROM activations WHERE namespace = $1)",
];

/// The first of a purge's deletes: the parts of a namespace's unfinished uploads, returning
/// the locators of their data (`$1` is the namespace).
pub const PURGED_PARTS: &str = "DELETE FROM upload_parts WHERE upload_id IN \
     (SELECT u.id FROM uploads u JOIN buckets b ON u.bucket = b.name WHERE b.namespace = $1) \
     RETURNING locator";

/// The second: a namespace's objects, returning their data segments (JSON, see
/// [`segment_locators`]). Then come [`PURGE_CHILDREN`].
pub const PURGED_OBJECTS: &str = "DELETE FROM objects \
     WHERE bucket IN (SELECT name FROM buckets WHERE namespace = $1) RETURNING data";

/// The locators of an object's `data` column (its segments as JSON).
pub fn segment_locators(data: &str) -> Result<Vec<String>, StoreError> {
    let segments: Vec<crate::objects::Segment> =
        serde_json::from_str(data).map_err(|e| StoreError::Database(e.to_string()))?;
    Ok(segments.into_iter().map(|s| s.locator).collect())
}

/// What a purge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Whether there was a namespace record.
    pub existed: bool,
    /// The object data its objects and unfinished uploads' parts referred to, which no
    /// record refers to any more: the object engine deletes it
    /// ([`crate::objects::UnreferencedData`]).
    pub object_data: Vec<String>,
}

/// What a namespace stores, in bytes, as its storage quota counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageUse {
    /// Sizes of the objects of its buckets.
    pub objects: u64,
    /// Sizes of the parts of its multipart uploads in progress.
    pub parts: u64,
    /// DynamoDB sizes of the items of its tables.
    pub items: u64,
    /// Bodies (UTF-8 bytes) of the messages of its queues.
    pub messages: u64,
}

impl StorageUse {
    pub fn total(&self) -> u64 {
        self.objects + self.parts + self.items + self.messages
    }
}

/// Why a write may not store its bytes.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The namespace's storage quota would be exceeded (the message says by what).
    #[error("{0}")]
    Exceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes bytes of a namespace's storage quota before a write stores them: the object, table
/// and queue engines ask it, and refuse the write (storing nothing) when it refuses.
#[async_trait]
pub trait StorageQuota: Send + Sync + 'static {
    async fn reserve(&self, namespace: &str, bytes: u64) -> Result<(), QuotaError>;
}

/// Where an engine keeps the [`StorageQuota`] it is given (none: no quota).
#[derive(Default)]
pub struct QuotaSlot(std::sync::OnceLock<std::sync::Arc<dyn StorageQuota>>);

impl QuotaSlot {
    /// Sets the quota (once; later calls are ignored).
    pub fn set(&self, quota: std::sync::Arc<dyn StorageQuota>) {
        let _ = self.0.set(quota);
    }

    pub async fn reserve(&self, namespace: &str, bytes: u64) -> Result<(), QuotaError> {
        match self.0.get() {
            Some(q) => q.reserve(namespace, bytes).await,
            None => Ok(()),
        }
    }
}

/// [`StorageUse`] of namespace `$1`, one row of four sums (SQLite and PostgreSQL alike: each
/// sum reads the namespace's rows through an index on the namespace, its buckets or tables).
pub const STORAGE_USE: &str = "SELECT \
     CAST(coalesce((SELECT sum(o.size) FROM objects o JOIN buckets b ON b.name = o.bucket \
        WHERE b.namespace = $1), 0) AS BIGINT), \
     CAST(coalesce((SELECT sum(p.size) FROM upload_parts p JOIN uploads u ON u.id = p.upload_id \
        JOIN buckets b ON b.name = u.bucket WHERE b.namespace = $1), 0) AS BIGINT), \
     CAST(coalesce((SELECT sum(i.size) FROM ddb_items i JOIN ddb_tables t ON t.id = i.table_id \
        WHERE t.namespace = $1), 0) AS BIGINT), \
     CAST(coalesce((SELECT sum(octet_length(m.body)) FROM queue_messages m \
        WHERE m.namespace = $1), 0) AS BIGINT)";

#[async_trait]
pub trait TenantStore: Send + Sync {
    /// Creates a namespace; false if one of that name exists.
    async fn create_namespace(&self, ns: &Namespace) -> Result<bool, StoreError>;
    async fn get_namespace(&self, name: &str) -> Result<Option<Namespace>, StoreError>;
    async fn list_namespaces(&self) -> Result<Vec<Namespace>, StoreError>;
    /// Replaces a namespace's settings; false if it does not exist.
    async fn update_namespace(&self, ns: &Namespace) -> Result<bool, StoreError>;
    /// What a namespace holds, as (table, rows) for each table of resources with rows of it
    /// (records — activations, keys, audit — are not counted).
    async fn namespace_contents(&self, name: &str) -> Result<Vec<(String, u64)>, StoreError>;
    /// Deletes every row of the namespace in every table (children before their parents:
    /// objects and uploads of its buckets, items and stream records of its tables, messages
    /// of its queues, executions of its state machines), its keys, audit log and record, in
    /// one transaction, which also reads the object data its objects and parts referred to.
    async fn purge_namespace(&self, name: &str) -> Result<Purged, StoreError>;
    /// The bytes namespace `name` stores ([`STORAGE_USE`]).
    async fn storage_use(&self, name: &str) -> Result<StorageUse, StoreError>;

    /// Stores one secret of a key.
    async fn put_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    /// The secret with this digest, expired or not (the caller checks [`ApiKey::valid_at`]).
    async fn api_key(&self, key_sha256: &str) -> Result<Option<ApiKey>, StoreError>;
    /// Every secret of the namespace's keys, oldest first.
    async fn list_api_keys(&self, namespace: &str) -> Result<Vec<ApiKey>, StoreError>;
    /// Deletes every secret of a key; false if it has none in this namespace.
    async fn delete_api_key(&self, namespace: &str, key_id: &str) -> Result<bool, StoreError>;
    /// Gives a key a new secret (`new`, same id) and lets its current secrets expire at
    /// `grace_until_ms` at the latest, in one transaction; false if the key does not exist.
    async fn rotate_api_key(&self, new: &ApiKey, grace_until_ms: i64) -> Result<bool, StoreError>;

    async fn append_audit(&self, batch: &[AuditEntry]) -> Result<(), StoreError>;
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>, StoreError>;

    /// Adds an owner key to `namespace` (creating the namespace without settings if needed),
    /// its id derived from the digest: what a single-namespace setup's key becomes.
    async fn add_api_key(&self, namespace: &str, key_sha256: &str) -> Result<(), StoreError> {
        self.add_key_with_role(namespace, key_sha256, Role::Owner)
            .await
    }

    /// [`TenantStore::add_api_key`] with another role (the operator's key: `Operator`).
    async fn add_key_with_role(
        &self,
        namespace: &str,
        key_sha256: &str,
        role: Role,
    ) -> Result<(), StoreError> {
        let now = lambent_core::now_ms();
        self.create_namespace(&Namespace {
            name: namespace.into(),
            settings: Default::default(),
            created_ms: now,
            updated_ms: now,
        })
        .await?;
        self.put_api_key(&ApiKey {
            key_id: derived_key_id(role, key_sha256),
            namespace: namespace.into(),
            role,
            key_sha256: key_sha256.into(),
            created_ms: now,
            expires_ms: None,
        })
        .await
    }
}

/// The id of a key given by its digest alone (configured keys): `lk-` (`op-` for the
/// operator's) and twelve hex digits of the digest.
pub fn derived_key_id(role: Role, key_sha256: &str) -> String {
    let prefix = if role == Role::Operator { "op" } else { "lk" };
    format!("{prefix}-{}", &key_sha256[..key_sha256.len().min(12)])
}
