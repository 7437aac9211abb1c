//! Where stream → function event-source mappings are kept, behind [`StreamMappingStore`]: each
//! mapping's settings (a JSON document the consumer owns) and, apart from them, its
//! **checkpoint**, the sequence number of the last stream record it processed. Settings change
//! by replacement (UpdateEventSourceMapping); the checkpoint only moves forward, by
//! compare-and-set, so a poller that lost its lease to another node cannot move it back, and a
//! restart (or a SIGKILL) resumes after the last checkpoint: records are delivered at least
//! once, never skipped. The semantics (polling, batching, retries, bisection) live in
//! `lambent-queues`.

use crate::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where a new mapping starts reading its stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StartingPosition {
    /// The oldest record kept.
    TrimHorizon,
    /// After the newest record written when the mapping was created.
    Latest,
    /// The first record written at or after `starting_timestamp_ms`.
    AtTimestamp,
}

impl StartingPosition {
    /// Lambda's name for it (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP`).
    pub fn as_str(self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
            StartingPosition::AtTimestamp => "AT_TIMESTAMP",
        }
    }
}

/// A mapping from a table's stream to a function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamMapping {
    /// A UUID (Lambda's `UUID`).
    pub id: String,
    pub namespace: String,
    /// The table whose stream it reads.
    pub table: String,
    /// That table's id: a table deleted and created again has another stream, which the
    /// mapping does not read.
    pub table_id: String,
    /// The stream's ARN (`…:table/<name>/stream/<label>`).
    pub stream_arn: String,
    pub function: String,
    pub batch_size: u32,
    pub batching_window_ms: u64,
    pub starting_position: StartingPosition,
    /// With [`StartingPosition::AtTimestamp`]: records written before it are skipped.
    #[serde(default)]
    pub starting_timestamp_ms: Option<i64>,
    /// Retries of a failed batch before it goes to the on-failure destination; -1: until
    /// the records expire.
    pub max_retries: i64,
    /// Records older than this (seconds) are not sent to the function; -1: no limit.
    pub max_record_age_s: i64,
    /// Split a failed batch in two and retry each half.
    pub bisect_on_error: bool,
    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]`.
    pub report_batch_item_failures: bool,
    /// A queue or topic ARN that gets a record of each batch given up on.
    #[serde(default)]
    pub on_failure: Option<String>,
    pub enabled: bool,
    pub created_ms: i64,
    pub modified_ms: i64,
}

/// Durable stream mappings and their checkpoints.
#[async_trait]
pub trait StreamMappingStore: Send + Sync + 'static {
    /// Stores a new mapping with its checkpoint at `checkpoint` (records with greater
    /// sequence numbers are the ones it delivers).
    async fn create_stream_mapping(
        &self,
        m: &StreamMapping,
        checkpoint: u64,
    ) -> Result<(), StoreError>;
    /// Every namespace's mappings, in creation order.
    async fn all_stream_mappings(&self) -> Result<Vec<StreamMapping>, StoreError>;
    async fn get_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<StreamMapping>, StoreError>;
    /// Replaces the settings of the mapping with `m.id` (never its checkpoint); false if
    /// there is none.
    async fn update_stream_mapping(&self, m: &StreamMapping) -> Result<bool, StoreError>;
    /// Deletes a mapping with its checkpoint; false if there was none.
    async fn delete_stream_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError>;
    /// The sequence number of the last record the mapping processed (`None`: no such
    /// mapping).
    async fn stream_checkpoint(&self, id: &str) -> Result<Option<u64>, StoreError>;
    /// Moves the checkpoint from `from` to `to` (`to > from`); false if it was not at `from`
    /// (another poller moved it, or the mapping was deleted): nothing changes then.
    async fn advance_stream_checkpoint(
        &self,
        id: &str,
        from: u64,
        to: u64,
    ) -> Result<bool, StoreError>;
}
