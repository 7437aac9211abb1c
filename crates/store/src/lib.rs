//! Where Lambent's state lives, behind the seams that get a second implementation: the
//! [`Store`] trait for metadata and activation records (SQLite embedded, PostgreSQL in a
//! cluster) with its siblings ([`events`], [`queues`], [`routes`], [`lambda`], [`cluster`],
//! [`objects`], [`workflows`], [`tables`], [`stream_mappings`]),
//! the content-addressed [`blobs`] of function code (local disk, or the cluster's object store
//! with the local disk as a cache) and their unpacked [`package`]s, and the [`bus`] that tells
//! the other nodes of a cluster what changed.

pub mod blobs;
pub mod bus;
pub mod cluster;
#[cfg(feature = "contract")]
pub mod contract;
pub mod events;
pub mod lambda;
pub mod node_packages;
pub mod objects;
pub mod package;
pub mod queues;
pub mod recorder;
pub mod requirements;
pub mod rollups;
pub mod routes;
pub mod stream_mappings;
pub mod tables;
pub mod tenants;
pub mod usage;
pub mod workflows;

use async_trait::async_trait;
use lambent_core::{Activation, ActivationStatus, Function};

/// A failure of the state layer. The gateway maps these to HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("function '{0}' was changed concurrently (revision {1} expected): retry the deploy")]
    Conflict(String, u64),
    /// A create or update that conflicts with what is stored; the message says what.
    #[error("{0}")]
    Changed(String),
    #[error("code blob {0} is not stored: upload it first")]
    MissingBlob(String),
    #[error(transparent)]
    Package(#[from] package::PackageError),
    /// A dependency of a cluster node cannot be reached (the caller gets a 503 naming it).
    #[error("{dependency} at {address} is unreachable: {reason}")]
    Unavailable {
        /// `PostgreSQL` or `NATS`.
        dependency: &'static str,
        address: String,
        reason: String,
    },
    /// The database's schema was written by a newer Lambent.
    #[error("the {dependency} schema is at version {found}, newer than this node's {known}: upgrade this node to the cluster's Lambent version")]
    SchemaTooNew {
        dependency: &'static str,
        found: i64,
        known: i64,
    },
    /// The data disk has no room left (`ENOSPC`, `EDQUOT`, SQLite's `SQLITE_FULL`): nothing of
    /// the write was kept, and the same write succeeds once space is freed (the caller gets
    /// a 507 naming what could not be written).
    #[error("the data disk is full: {0}: free space on it and retry")]
    DiskFull(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("storage i/o error: {0}")]
    Io(std::io::Error),
}

/// Whether `e` says the disk (or the user's quota on it) is full.
pub fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
}

impl From<std::io::Error> for StoreError {
    /// A full disk is [`StoreError::DiskFull`]; anything else [`StoreError::Io`].
    fn from(e: std::io::Error) -> StoreError {
        if is_disk_full(&e) {
            StoreError::DiskFull(e.to_string())
        } else {
            StoreError::Io(e)
        }
    }
}

impl StoreError {
    /// The same error for another waiter (a group commit answers each of its callers): an
    /// unreachable dependency stays one, so every caller gets its 503, and a full disk its
    /// 507; the rest keep their message.
    pub fn for_another(&self) -> StoreError {
        match self {
            StoreError::Unavailable {
                dependency,
                address,
                reason,
            } => StoreError::Unavailable {
                dependency,
                address: address.clone(),
                reason: reason.clone(),
            },
            StoreError::DiskFull(m) => StoreError::DiskFull(m.clone()),
            other => StoreError::Database(other.to_string()),
        }
    }
}

/// A page of activations, newest first.
#[derive(Debug, Clone, Default)]
pub struct ActivationQuery {
    pub namespace: String,
    pub function: Option<String>,
    pub status: Option<ActivationStatus>,
    /// Only activations that started at or after this instant (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only activations that started before this instant (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only cold (`Some(true)`) or warm (`Some(false)`) ones.
    pub cold: Option<bool>,
    /// Only activations whose function output (the logs without the `START`, `END` and `REPORT`
    /// lines Lambent writes around it) or error message contain this text (case-sensitive).
    pub text: Option<String>,
    /// Continue after this cursor (from the previous page's last record).
    pub before: Option<ActivationCursor>,
    /// Only the activations of this trace (32 hex digits).
    pub trace_id: Option<String>,
    pub limit: usize,
}

/// Position in the newest-first activation order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationCursor {
    pub start_ms: i64,
    pub id: String,
}

impl ActivationCursor {
    /// `start_ms:id`, opaque to clients.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.start_ms, self.id)
    }
    pub fn decode(s: &str) -> Option<Self> {
        let (ms, id) = s.split_once(':')?;
        Some(ActivationCursor {
            start_ms: ms.parse().ok()?,
            id: id.to_string(),
        })
    }
}

/// Metadata, keys and activation records (and, in [`lambda::LambdaStore`], the Lambda API's).
#[async_trait]
pub trait Store: lambda::LambdaStore + tenants::TenantStore + Send + Sync + 'static {
    /// Creates or replaces a function. With `expected_revision`, fails with
    /// [`StoreError::Conflict`] unless the stored revision is that one (`0`: must not exist).
    async fn put_function(&self, f: &Function, expected_revision: u64) -> Result<(), StoreError>;
    async fn get_function(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Function>, StoreError>;
    async fn list_functions(&self, namespace: &str) -> Result<Vec<Function>, StoreError>;
    /// Every function of every namespace, to warm caches at start-up.
    async fn all_functions(&self) -> Result<Vec<Function>, StoreError>;
    async fn delete_function(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;

    async fn insert_activations(&self, batch: &[Activation]) -> Result<(), StoreError>;
    async fn query_activations(&self, q: &ActivationQuery) -> Result<Vec<Activation>, StoreError>;
    async fn get_activation(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<Activation>, StoreError>;
    /// Deletes activations that started before `cutoff_ms`; returns how many. The
    /// [`rollups`] stay: they are the history of what was pruned.
    async fn prune_activations(&self, cutoff_ms: i64) -> Result<u64, StoreError>;

    /// The [`rollups`] of the activations, summed per function and step of `q`, ordered by
    /// function then step; steps with no record are absent.
    async fn activation_rollups(
        &self,
        q: &rollups::RollupQuery,
    ) -> Result<Vec<rollups::Rollup>, StoreError>;
    /// The duration histogram of the activations, summed the same way (ordered by function,
    /// step, bucket).
    async fn duration_histogram(
        &self,
        q: &rollups::RollupQuery,
    ) -> Result<Vec<rollups::HistogramRow>, StoreError>;
    /// Folds up to `limit` of the records written before the rollups existed (a data dir
    /// upgraded from a version without them: the upgrade lists those records) into the
    /// rollups, oldest first, in one transaction; returns how many left the list (0: none
    /// remain). A record since pruned leaves the list uncounted; one written again since was
    /// not counted by that write, so it counts once here. Safe to run on many nodes at once.
    async fn backfill_rollups(&self, limit: usize) -> Result<u64, StoreError>;
    /// The records of `q` summed per group where they are: what
    /// [`lambent_core::metering::aggregate`] gives over them, sorted by group (see [`usage`]).
    /// Pruned records are not counted.
    async fn usage(
        &self,
        q: &usage::UsageQuery,
    ) -> Result<Vec<lambent_core::metering::Aggregate>, StoreError>;
}

/// Hex SHA-256 of some bytes: blob addresses and API key digests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A sequence's step ids as one nullable text column (a JSON array; `None` when there are
/// none), the same on every backend.
pub fn steps_column(steps: &[String]) -> Option<String> {
    (!steps.is_empty()).then(|| serde_json::Value::from(steps.to_vec()).to_string())
}

/// An activation's logs as stored, the same on every backend: the function's own output alone
/// (`true`), when the logs are [`lambent_core::Activation::framed_logs`] of it (the `START`,
/// `END` and `REPORT` lines around it are made of the record's other fields, and were most of a
/// short invocation's record), else the logs as they are (`false`, as every record written before
/// this was stored).
pub fn logs_column(a: &lambent_core::Activation) -> (&str, bool) {
    match a.logs_output() {
        Some(output) => (output, true),
        None => (a.logs.as_str(), false),
    }
}

/// The logs stored by [`logs_column`] into `a.logs`, framed again when only the function's
/// output was stored.
pub fn logs_from_column(a: &mut lambent_core::Activation, output_only: bool) {
    if output_only {
        a.logs = a.framed_logs(&a.logs);
    }
}

/// An activation's trace as two nullable text columns, the same on every backend: the trace
/// id (indexed with the namespace, for `GET /v1/traces/{id}`) and the whole
/// [`lambent_core::ActivationTrace`] as compact JSON.
pub fn trace_columns(
    trace: Option<&lambent_core::ActivationTrace>,
) -> (Option<String>, Option<String>) {
    match trace {
        Some(t) => (Some(t.trace_id.to_string()), serde_json::to_string(t).ok()),
        None => (None, None),
    }
}

/// The trace stored by [`trace_columns`] (from its JSON column).
pub fn trace_from_column(
    column: Option<&str>,
) -> Result<Option<lambent_core::ActivationTrace>, String> {
    column
        .map(|text| serde_json::from_str(text).map_err(|e| format!("invalid trace column: {e}")))
        .transpose()
}

/// An async event's trace as one nullable text column, the same on every backend: the
/// context's `traceparent[ tracestate]` ([`lambent_core::TraceContext::encode`]), or, for an
/// event that is a delivery Lambent draws as a span of its own (a topic's), a JSON object
/// `{"context": "<traceparent[ tracestate]>", "hop": {…}}`.
pub fn event_trace_column(
    trace: Option<&lambent_core::TraceContext>,
    hop: Option<&lambent_core::Hop>,
) -> Option<String> {
    match hop {
        None => trace.map(lambent_core::TraceContext::encode),
        Some(hop) => {
            let mut carried = serde_json::json!({ "hop": hop });
            if let Some(t) = trace {
                carried["context"] = t.encode().into();
            }
            Some(carried.to_string())
        }
    }
}

/// The context and the hop stored by [`event_trace_column`]; a column that reads as neither
/// carries no trace (a new one starts).
pub fn event_trace_from_column(
    column: Option<&str>,
) -> (
    Option<lambent_core::TraceContext>,
    Option<lambent_core::Hop>,
) {
    let Some(text) = column else {
        return (None, None);
    };
    if !text.starts_with('{') {
        return (lambent_core::TraceContext::decode(text), None);
    }
    #[derive(serde::Deserialize)]
    struct Carried {
        context: Option<lambent_core::TraceContext>,
        hop: Option<lambent_core::Hop>,
    }
    match serde_json::from_str::<Carried>(text) {
        Ok(c) => (c.context, c.hop),
        Err(_) => (None, None),
    }
}

/// A context stored by [`lambent_core::TraceContext::encode`] in a nullable text column.
pub fn context_from_column(column: Option<&str>) -> Option<lambent_core::TraceContext> {
    column.and_then(lambent_core::TraceContext::decode)
}

/// The step ids stored by [`steps_column`].
pub fn steps_from_column(column: Option<&str>) -> Result<Vec<String>, String> {
    column.map_or(Ok(Vec::new()), |text| {
        serde_json::from_str(text).map_err(|e| format!("invalid steps column: {e}"))
    })
}
