//! Event-source mappings from a table's stream to a function: their settings (validated here,
//! kept by a [`StreamMappingStore`]), and the [`StreamSource`] seam through which the pollers
//! ([`crate::stream_poller`]) read a stream's records in the Lambda event's shape. The tables
//! live in a crate above this one (`lambent-dynamodb-api` implements [`StreamSource`]); the
//! server hands both to [`Queues::serve_streams`].
//!
//! Changes to queue mappings ([`Queues::update_mapping`]) are here too: the Lambda API's
//! UpdateEventSourceMapping reaches both kinds through one [`MappingChanges`].

use crate::{FunctionRunner, Mapping, QueueError, Queues, MAX_BATCHING_WINDOW_MS};
use async_trait::async_trait;
use lambent_core::now_ms;
use lambent_store::stream_mappings::{StartingPosition, StreamMapping, StreamMappingStore};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

/// Stream batch sizes: DynamoDB's default and maximum.
pub const DEFAULT_STREAM_BATCH: u32 = 100;
pub const MAX_STREAM_BATCH: u32 = 10_000;
/// Most retries of a failed stream batch (`MaximumRetryAttempts`; -1 is infinite).
pub const MAX_STREAM_RETRIES: i64 = 10_000;
/// Oldest record age a mapping may set (`MaximumRecordAgeInSeconds`, 7 days; -1 is none).
pub const MAX_RECORD_AGE_S: i64 = 604_800;
/// Shortest record age a mapping may set, when it sets one.
pub const MIN_RECORD_AGE_S: i64 = 60;

/// A table's stream, as a mapping names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub table: String,
    pub table_id: String,
    pub stream_arn: String,
    /// The id of its one shard.
    pub shard_id: String,
}

/// One stream record as a stream → function event carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub sequence: u64,
    pub created_ms: i64,
    /// The record: the DynamoDB Streams shape plus `eventSourceARN`.
    pub record: Value,
}

/// Why a stream could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// The tables' streams, as the pollers read them.
#[async_trait]
pub trait StreamSource: Send + Sync + 'static {
    /// The stream of `table` in `namespace` (`None`: no such table, or it has no stream).
    async fn of_table(
        &self,
        namespace: &str,
        table: &str,
    ) -> Result<Option<StreamInfo>, SourceError>;
    /// The stream an ARN names (`None`: none of this namespace).
    async fn of_arn(&self, namespace: &str, arn: &str) -> Result<Option<StreamInfo>, SourceError>;
    /// The sequence number of the latest record written to the stream (0: none yet).
    async fn latest(&self, table_id: &str) -> Result<u64, SourceError>;
    /// Up to `limit` records with sequence numbers after `after`, in order. `None`: the
    /// stream is gone (its table deleted, or deleted and created again).
    async fn read(
        &self,
        m: &StreamMapping,
        after: u64,
        limit: usize,
    ) -> Result<Option<Vec<EventRecord>>, SourceError>;
}

/// What the server gives the queues so they can run stream mappings.
#[derive(Clone)]
pub(crate) struct StreamParts {
    pub store: Arc<dyn StreamMappingStore>,
    pub source: Arc<dyn StreamSource>,
}

/// Settings of a new stream mapping; unset ones get Lambda's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamMappingSettings {
    /// The table whose stream is read; or `stream_arn`.
    pub table: Option<String>,
    pub stream_arn: Option<String>,
    pub function: String,
    pub batch_size: Option<u32>,
    pub batching_window_ms: Option<u64>,
    /// Default: `TRIM_HORIZON`.
    pub starting_position: Option<StartingPosition>,
    /// With `AT_TIMESTAMP`: milliseconds since the epoch.
    pub starting_timestamp_ms: Option<i64>,
    pub max_retries: Option<i64>,
    pub max_record_age_s: Option<i64>,
    #[serde(default)]
    pub bisect_on_error: bool,
    #[serde(default)]
    pub report_batch_item_failures: bool,
    /// A queue or topic ARN of the namespace, or a queue's name.
    pub on_failure: Option<String>,
    pub enabled: Option<bool>,
}

/// Changes to a mapping of either kind; unset fields stay as they are. The stream-only ones
/// are refused for a queue mapping.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingChanges {
    pub function: Option<String>,
    pub batch_size: Option<u32>,
    pub batching_window_ms: Option<u64>,
    pub report_batch_item_failures: Option<bool>,
    pub enabled: Option<bool>,
    pub max_retries: Option<i64>,
    pub max_record_age_s: Option<i64>,
    pub bisect_on_error: Option<bool>,
    /// `Some("")` removes the destination.
    pub on_failure: Option<String>,
}

/// Where a given-up batch's record goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FailureDestination {
    Queue(String),
    Topic(String),
}

/// Parses an on-failure destination: a queue (`arn:aws:sqs:REGION:NAMESPACE:NAME`) or topic
/// (`arn:aws:sns:…`) ARN of this region and namespace.
pub(crate) fn failure_destination(
    arn: &str,
    region: &str,
    namespace: &str,
) -> Result<FailureDestination, QueueError> {
    let invalid = |why: &str| {
        QueueError::Invalid(format!(
            "The provided destination config DestinationConfig.OnFailure.Destination '{arn}' is \
             invalid: {why}"
        ))
    };
    let parts: Vec<&str> = arn.split(':').collect();
    let ["arn", "aws", service, r, ns, name] = parts[..] else {
        return Err(invalid("use the ARN of a queue or a topic"));
    };
    if r != region || ns != namespace {
        return Err(invalid(&format!(
            "it must be in region '{region}' and namespace '{namespace}'"
        )));
    }
    match service {
        "sqs" => Ok(FailureDestination::Queue(name.to_string())),
        "sns" => Ok(FailureDestination::Topic(name.to_string())),
        _ => Err(invalid("only queues (sqs) and topics (sns) are supported")),
    }
}

/// `value` if within `min..=max`, else Lambda's validation message for the `field`.
fn within(field: &str, value: i64, min: i64, max: i64) -> Result<i64, QueueError> {
    let bound = if value < min {
        format!("greater than or equal to {min}")
    } else if value > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(value);
    };
    Err(QueueError::Invalid(format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy \
         constraint: Member must have value {bound}"
    )))
}

fn batch_size(n: u32, max: u32) -> Result<u32, QueueError> {
    within("batchSize", i64::from(n), 1, i64::from(max)).map(|n| n as u32)
}

/// A batching window in milliseconds (checked as Lambda checks it, in seconds).
fn batching_window(ms: u64) -> Result<u64, QueueError> {
    let s = i64::try_from(ms.div_ceil(1000)).unwrap_or(i64::MAX);
    within(
        "maximumBatchingWindowInSeconds",
        s,
        0,
        (MAX_BATCHING_WINDOW_MS / 1000) as i64,
    )?;
    Ok(ms)
}

fn max_retries(n: i64) -> Result<i64, QueueError> {
    within("maximumRetryAttempts", n, -1, MAX_STREAM_RETRIES)
}

fn max_record_age(s: i64) -> Result<i64, QueueError> {
    if s == -1 {
        return Ok(s);
    }
    within(
        "maximumRecordAgeInSeconds",
        s,
        MIN_RECORD_AGE_S,
        MAX_RECORD_AGE_S,
    )
}

impl Queues {
    /// Lets the queues run stream mappings: where they are kept and how streams are read.
    /// Call before [`Queues::start`].
    pub fn serve_streams(&self, store: Arc<dyn StreamMappingStore>, source: Arc<dyn StreamSource>) {
        let _ = self.inner.streams.set(StreamParts { store, source });
    }

    pub(crate) fn streams(&self) -> Result<&StreamParts, QueueError> {
        self.inner
            .streams
            .get()
            .ok_or_else(|| QueueError::Invalid("this node serves no table streams".into()))
    }

    async fn check_function(&self, namespace: &str, function: &str) -> Result<(), QueueError> {
        let runner: Arc<dyn FunctionRunner> = self.runner()?;
        if runner.exists(namespace, function).await {
            Ok(())
        } else {
            Err(QueueError::FunctionNotFound(function.to_string()))
        }
    }

    /// The ARN of an on-failure destination (a queue's name stands for its ARN) once it is
    /// known to exist.
    async fn check_destination(&self, namespace: &str, name: &str) -> Result<String, QueueError> {
        let arn = if name.starts_with("arn:") {
            name.to_string()
        } else {
            format!("arn:aws:sqs:{}:{namespace}:{name}", self.region())
        };
        match failure_destination(&arn, self.region(), namespace)? {
            FailureDestination::Queue(q) => self.queue(namespace, &q).await.map(|_| ())?,
            FailureDestination::Topic(t) => self.subscriptions(namespace, &t).await.map(|_| ())?,
        }
        Ok(arn)
    }

    /// Creates a stream mapping, its checkpoint placed by its starting position, and starts
    /// polling it. One mapping per stream and function.
    pub async fn create_stream_mapping(
        &self,
        namespace: &str,
        s: StreamMappingSettings,
    ) -> Result<StreamMapping, QueueError> {
        let parts = self.streams()?.clone();
        // The settings first, as Lambda checks them before it looks anything up.
        let batch_size = batch_size(
            s.batch_size.unwrap_or(DEFAULT_STREAM_BATCH),
            MAX_STREAM_BATCH,
        )?;
        let batching_window_ms = batching_window(s.batching_window_ms.unwrap_or(0))?;
        let max_retries = max_retries(s.max_retries.unwrap_or(-1))?;
        let max_record_age_s = max_record_age(s.max_record_age_s.unwrap_or(-1))?;
        let source_err = |e: SourceError| QueueError::Invalid(e.to_string());
        let info = match (&s.table, &s.stream_arn) {
            (Some(table), None) => parts
                .source
                .of_table(namespace, table)
                .await
                .map_err(source_err)?
                .ok_or_else(|| {
                    QueueError::Invalid(format!(
                        "table '{table}' does not exist or has no stream: create it with a \
                         stream (--stream)"
                    ))
                })?,
            (None, Some(arn)) => parts
                .source
                .of_arn(namespace, arn)
                .await
                .map_err(source_err)?
                .ok_or_else(|| QueueError::Invalid(format!("Stream not found: {arn}")))?,
            _ => {
                return Err(QueueError::Invalid(
                    "name the stream by its table or its ARN (one of them)".into(),
                ))
            }
        };
        let on_failure = match &s.on_failure {
            Some(d) => Some(self.check_destination(namespace, d).await?),
            None => None,
        };
        self.check_function(namespace, &s.function).await?;
        if let Some(existing) = parts
            .store
            .all_stream_mappings()
            .await?
            .into_iter()
            .find(|m| {
                m.namespace == namespace && m.function == s.function && m.table_id == info.table_id
            })
        {
            return Err(QueueError::Conflict(format!(
                "The event source arn (\" {} \") and function (\" {} \") provided mapping already \
                 exists. Please update or delete the existing mapping with UUID {}",
                info.stream_arn, s.function, existing.id
            )));
        }
        let starting_position = s.starting_position.unwrap_or(StartingPosition::TrimHorizon);
        let starting_timestamp_ms =
            match (starting_position, s.starting_timestamp_ms) {
                (StartingPosition::AtTimestamp, Some(t)) => Some(t),
                (StartingPosition::AtTimestamp, None) => {
                    return Err(QueueError::Invalid(
                        "StartingPositionTimestamp is required with StartingPosition AT_TIMESTAMP"
                            .into(),
                    ))
                }
                (_, Some(_)) => return Err(QueueError::Invalid(
                    "StartingPositionTimestamp is only valid with StartingPosition AT_TIMESTAMP"
                        .into(),
                )),
                (_, None) => None,
            };
        let now = now_ms();
        let m = StreamMapping {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.to_string(),
            table: info.table.clone(),
            table_id: info.table_id.clone(),
            stream_arn: info.stream_arn.clone(),
            function: s.function,
            batch_size,
            batching_window_ms,
            starting_position,
            starting_timestamp_ms,
            max_retries,
            max_record_age_s,
            bisect_on_error: s.bisect_on_error,
            report_batch_item_failures: s.report_batch_item_failures,
            on_failure,
            enabled: s.enabled.unwrap_or(true),
            created_ms: now,
            modified_ms: now,
        };
        let checkpoint = self.starting_checkpoint(&parts, &m).await?;
        parts.store.create_stream_mapping(&m, checkpoint).await?;
        self.mappings_changed().await;
        Ok(m)
    }

    /// The checkpoint a new mapping starts from: 0 (everything kept), the latest record
    /// (only later ones), or just before the first record written at the timestamp.
    async fn starting_checkpoint(
        &self,
        parts: &StreamParts,
        m: &StreamMapping,
    ) -> Result<u64, QueueError> {
        let source_err = |e: SourceError| QueueError::Invalid(e.to_string());
        match (m.starting_position, m.starting_timestamp_ms) {
            (StartingPosition::TrimHorizon, _) => Ok(0),
            (StartingPosition::Latest, _) => {
                parts.source.latest(&m.table_id).await.map_err(source_err)
            }
            (StartingPosition::AtTimestamp, at) => {
                let at = at.unwrap_or(0);
                let mut after = 0;
                loop {
                    let page = parts
                        .source
                        .read(m, after, 1000)
                        .await
                        .map_err(source_err)?
                        .unwrap_or_default();
                    let Some(last) = page.last() else {
                        return Ok(after);
                    };
                    if let Some(first) = page.iter().find(|r| r.created_ms >= at) {
                        return Ok(first.sequence - 1);
                    }
                    after = last.sequence;
                }
            }
        }
    }

    /// Every stream mapping of a namespace, oldest first.
    pub async fn list_stream_mappings(
        &self,
        namespace: &str,
    ) -> Result<Vec<StreamMapping>, QueueError> {
        let Ok(parts) = self.streams() else {
            return Ok(Vec::new());
        };
        Ok(parts
            .store
            .all_stream_mappings()
            .await?
            .into_iter()
            .filter(|m| m.namespace == namespace)
            .collect())
    }

    pub async fn get_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<StreamMapping>, QueueError> {
        let Ok(parts) = self.streams() else {
            return Ok(None);
        };
        Ok(parts.store.get_stream_mapping(namespace, id).await?)
    }

    /// Applies `changes` to the stream mapping `id`; its checkpoint stays where it is.
    pub async fn update_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
        c: MappingChanges,
    ) -> Result<StreamMapping, QueueError> {
        let parts = self.streams()?.clone();
        let mut m = parts
            .store
            .get_stream_mapping(namespace, id)
            .await?
            .ok_or_else(|| QueueError::MappingNotFound(id.to_string()))?;
        if let Some(f) = c.function {
            self.check_function(namespace, &f).await?;
            m.function = f;
        }
        if let Some(n) = c.batch_size {
            m.batch_size = batch_size(n, MAX_STREAM_BATCH)?;
        }
        if let Some(ms) = c.batching_window_ms {
            m.batching_window_ms = batching_window(ms)?;
        }
        if let Some(n) = c.max_retries {
            m.max_retries = max_retries(n)?;
        }
        if let Some(s) = c.max_record_age_s {
            m.max_record_age_s = max_record_age(s)?;
        }
        if let Some(b) = c.bisect_on_error {
            m.bisect_on_error = b;
        }
        if let Some(r) = c.report_batch_item_failures {
            m.report_batch_item_failures = r;
        }
        if let Some(e) = c.enabled {
            m.enabled = e;
        }
        match c.on_failure.as_deref() {
            None => {}
            Some("") => m.on_failure = None,
            Some(d) => m.on_failure = Some(self.check_destination(namespace, d).await?),
        }
        m.modified_ms = now_ms();
        if !parts.store.update_stream_mapping(&m).await? {
            return Err(QueueError::MappingNotFound(id.to_string()));
        }
        self.mappings_changed().await;
        Ok(m)
    }

    pub async fn delete_stream_mapping(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<StreamMapping, QueueError> {
        let parts = self.streams()?.clone();
        let m = parts
            .store
            .get_stream_mapping(namespace, id)
            .await?
            .ok_or_else(|| QueueError::MappingNotFound(id.to_string()))?;
        if !parts.store.delete_stream_mapping(namespace, id).await? {
            return Err(QueueError::MappingNotFound(id.to_string()));
        }
        self.mappings_changed().await;
        Ok(m)
    }

    /// Applies `changes` to the queue mapping `id` (the stream-only settings are refused).
    pub async fn update_mapping(
        &self,
        namespace: &str,
        id: &str,
        c: MappingChanges,
    ) -> Result<Mapping, QueueError> {
        let stream_only = c.max_retries.is_some()
            || c.max_record_age_s.is_some()
            || c.bisect_on_error.is_some()
            || c.on_failure.is_some();
        if stream_only {
            return Err(QueueError::Invalid(
                "MaximumRetryAttempts, MaximumRecordAgeInSeconds, BisectBatchOnFunctionError \
                 and DestinationConfig are not supported for SQS event sources"
                    .into(),
            ));
        }
        let mut m = self
            .list_mappings(namespace)
            .await?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| QueueError::MappingNotFound(id.to_string()))?;
        if let Some(f) = c.function {
            self.check_function(namespace, &f).await?;
            m.function = f;
        }
        if let Some(n) = c.batch_size {
            m.batch_size = batch_size(n, crate::MAX_MAPPING_BATCH)?;
        }
        if let Some(ms) = c.batching_window_ms {
            m.batching_window_ms = batching_window(ms)?;
        }
        if let Some(r) = c.report_batch_item_failures {
            m.report_batch_item_failures = r;
        }
        if let Some(e) = c.enabled {
            m.enabled = e;
        }
        if !self.inner.store.update_mapping(&m).await? {
            return Err(QueueError::MappingNotFound(id.to_string()));
        }
        self.mappings_changed().await;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_destinations_are_queues_or_topics_of_the_namespace() {
        let of = |arn| failure_destination(arn, "us-east-1", "default");
        assert_eq!(
            of("arn:aws:sqs:us-east-1:default:dlq").unwrap(),
            FailureDestination::Queue("dlq".into())
        );
        assert_eq!(
            of("arn:aws:sns:us-east-1:default:alarms").unwrap(),
            FailureDestination::Topic("alarms".into())
        );
        for bad in [
            "arn:aws:sqs:eu-west-1:default:dlq",
            "arn:aws:sqs:us-east-1:other:dlq",
            "arn:aws:lambda:us-east-1:default:function:f",
            "dlq",
        ] {
            assert!(
                matches!(of(bad), Err(QueueError::Invalid(_))),
                "{bad} was accepted"
            );
        }
    }

    #[test]
    fn ranges_follow_lambdas() {
        assert!(batch_size(0, MAX_STREAM_BATCH).is_err());
        let Err(QueueError::Invalid(message)) = batch_size(10_001, MAX_STREAM_BATCH) else {
            panic!("a batch of 10,001 was accepted");
        };
        assert_eq!(
            message,
            "1 validation error detected: Value '10001' at 'batchSize' failed to satisfy \
             constraint: Member must have value less than or equal to 10000"
        );
        assert_eq!(batch_size(10_000, MAX_STREAM_BATCH).unwrap(), 10_000);
        assert!(batching_window(300_001).is_err());
        assert_eq!(batching_window(300_000).unwrap(), 300_000);
        assert!(max_retries(-2).is_err());
        assert_eq!(max_retries(-1).unwrap(), -1);
        assert!(max_record_age(59).is_err());
        assert_eq!(max_record_age(-1).unwrap(), -1);
        assert!(max_record_age(604_801).is_err());
    }
}
