//! One stream mapping's poller. It reads the records after the mapping's checkpoint (waiting
//! for a full batch up to the batching window), runs the function with the DynamoDB Streams
//! event, and moves the checkpoint past what succeeded. The stream has one shard (the table's
//! commit order), and the poller delivers one batch at a time in that order, so records
//! arrive in order per key; a crash between the run and the checkpoint delivers them again
//! (at least once).
//!
//! A failed batch is handled as Lambda handles it ([`judge`], pure): with
//! `ReportBatchItemFailures`, what precedes the lowest reported sequence number is done and
//! the rest is retried; with `BisectBatchOnFunctionError` a failed batch is split in two halves
//! retried in order (a split is not a retry); otherwise it is retried after a backoff until
//! `MaximumRetryAttempts`, then given up: its range goes to the on-failure destination (the
//! AWS record with `DDBStreamBatchInfo`) and the checkpoint moves past it. Records older than
//! `MaximumRecordAgeInSeconds` are given up without running.

use crate::events::iso_time;
use crate::streams::{failure_destination, EventRecord, FailureDestination, StreamParts};
use crate::{FunctionRunner, Outgoing, Queues, RunOutcome};
use bytes::Bytes;
use lambent_core::now_ms;
use lambent_store::stream_mappings::StreamMapping;
use serde_json::{json, Value};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How often an idle poller looks for new records (Lambda polls a shard 4 times a second).
const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long a poller waits after a store or destination error before trying again.
const PAUSE: Duration = Duration::from_secs(1);
/// The longest backoff between retries of a failed batch.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// What a run of the function says about a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every record was processed.
    Processed,
    /// The records before this index were processed; it and the rest were not.
    FailedFrom(usize),
    /// The function failed (error, timeout, crash, malformed batch report).
    Failed,
    /// The function could not run now (throttled, missing): try again, not counted.
    NotRun,
}

/// What to do with a batch after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Checkpoint after its last record.
    Done,
    /// Checkpoint after the first `n`; the rest is the next batch (same attempts).
    Advance(usize),
    /// Retry each half, the first `n` records first (a split is not a retry).
    Split(usize),
    /// Run it again after a backoff, one more attempt counted.
    Retry,
    /// Send its range to the on-failure destination, then checkpoint after it.
    GiveUp,
    /// Run it again after a pause, nothing counted.
    Wait,
}

/// The verdict of a run on `batch` (sequence numbers, in order) from the function's result:
/// every record, unless the mapping honours `batchItemFailures` and the result names some. A
/// report that is not the documented shape, or names a record not in the batch (or none),
/// fails the whole batch, as on Lambda.
pub(crate) fn verdict(report_failures: bool, batch: &[&str], outcome: &RunOutcome) -> Verdict {
    let body = match outcome {
        RunOutcome::Success(body) => body,
        RunOutcome::Failed => return Verdict::Failed,
        RunOutcome::Throttled | RunOutcome::Missing => return Verdict::NotRun,
    };
    if !report_failures {
        return Verdict::Processed;
    }
    let Ok(result) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Processed;
    };
    let failures = match result.get("batchItemFailures") {
        None | Some(Value::Null) => return Verdict::Processed,
        Some(Value::Array(items)) => items,
        Some(_) => return Verdict::Failed,
    };
    let mut failed = HashSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if batch.contains(&id) => {
                failed.insert(id);
            }
            _ => return Verdict::Failed,
        }
    }
    match batch.iter().position(|s| failed.contains(s)) {
        None => Verdict::Processed,
        Some(0) => Verdict::Failed,
        Some(i) => Verdict::FailedFrom(i),
    }
}

/// What to do with a batch of `len` records that has failed `attempts` times before this run.
pub(crate) fn judge(m: &StreamMapping, len: usize, attempts: u32, verdict: Verdict) -> Step {
    match verdict {
        Verdict::Processed => Step::Done,
        Verdict::FailedFrom(i) => Step::Advance(i),
        Verdict::NotRun => Step::Wait,
        Verdict::Failed if m.bisect_on_error && len > 1 => Step::Split(len / 2),
        Verdict::Failed if m.max_retries >= 0 && i64::from(attempts) >= m.max_retries => {
            Step::GiveUp
        }
        Verdict::Failed => Step::Retry,
    }
}

/// Why a batch was given up (the on-failure record's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Condition {
    RetryAttemptsExhausted,
    RecordAgeExceeded,
}

/// The on-failure destination's record of a given-up batch, in Lambda's shape.
pub(crate) fn failure_record(
    m: &StreamMapping,
    region: &str,
    shard_id: &str,
    batch: &[EventRecord],
    condition: Condition,
    invocations: u32,
    now_ms: i64,
) -> Value {
    let sequence = |r: Option<&EventRecord>| {
        r.map(|r| r.record["dynamodb"]["SequenceNumber"].clone())
            .unwrap_or(Value::Null)
    };
    let arrival = |r: Option<&EventRecord>| r.map(|r| iso_time(r.created_ms));
    let mut record = json!({
        "requestContext": {
            "requestId": uuid::Uuid::new_v4().to_string(),
            "functionArn": format!("arn:aws:lambda:{region}:{}:function:{}", m.namespace, m.function),
            "condition": match condition {
                Condition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
                Condition::RecordAgeExceeded => "RecordAgeExceeded",
            },
            "approximateInvokeCount": invocations,
        },
        "version": "1.0",
        "timestamp": iso_time(now_ms),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence(batch.first()),
            "endSequenceNumber": sequence(batch.last()),
            "approximateArrivalOfFirstRecord": arrival(batch.first()),
            "approximateArrivalOfLastRecord": arrival(batch.last()),
            "batchSize": batch.len(),
            "streamArn": m.stream_arn,
        },
    });
    if condition == Condition::RetryAttemptsExhausted {
        record["responseContext"] = json!({
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        });
    }
    record
}

/// A batch waiting to be delivered, with how many runs of it failed.
struct Batch {
    records: Vec<EventRecord>,
    attempts: u32,
}

/// The poller's state: the checkpoint as stored, and the batches read past it.
struct Poller {
    queues: Queues,
    parts: StreamParts,
    runner: Arc<dyn FunctionRunner>,
    m: StreamMapping,
    shard_id: String,
    checkpoint: u64,
    pending: VecDeque<Batch>,
}

/// Polls until aborted.
pub(crate) async fn poll(
    queues: Queues,
    parts: StreamParts,
    runner: Arc<dyn FunctionRunner>,
    m: StreamMapping,
) {
    let shard_id = loop {
        match parts.source.of_arn(&m.namespace, &m.stream_arn).await {
            Ok(Some(info)) if info.table_id == m.table_id => break info.shard_id,
            Ok(_) => {
                tracing::warn!(
                    "mapping {}: the stream {} no longer exists; it delivers nothing",
                    m.id,
                    m.stream_arn
                );
                return;
            }
            Err(e) => {
                tracing::warn!("mapping {}: cannot find its stream: {e}", m.id);
                tokio::time::sleep(PAUSE).await;
            }
        }
    };
    let mut p = Poller {
        queues,
        parts,
        runner,
        m,
        shard_id,
        checkpoint: 0,
        pending: VecDeque::new(),
    };
    if !p.reload().await {
        return;
    }
    loop {
        if p.pending.is_empty() {
            match p.gather().await {
                Some(records) => p.pending.push_back(Batch {
                    records,
                    attempts: 0,
                }),
                None => return,
            }
        }
        if let Some(batch) = p.pending.pop_front() {
            if !p.deliver(batch).await {
                return;
            }
        }
    }
}

impl Poller {
    /// Reads the stored checkpoint and forgets what was read past it; false when the mapping
    /// is gone.
    async fn reload(&mut self) -> bool {
        self.pending.clear();
        loop {
            match self.parts.store.stream_checkpoint(&self.m.id).await {
                Ok(Some(at)) => {
                    self.checkpoint = at;
                    return true;
                }
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!("mapping {}: cannot read its checkpoint: {e}", self.m.id);
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    }

    /// The next batch: up to the batch size of records after the checkpoint, waiting for the
    /// first and then, within the batching window, for a full batch. `None`: the stream is
    /// gone.
    async fn gather(&mut self) -> Option<Vec<EventRecord>> {
        let want = self.m.batch_size as usize;
        let mut batch: Vec<EventRecord> = Vec::new();
        let mut window_ends = None;
        loop {
            let after = batch.last().map_or(self.checkpoint, |r| r.sequence);
            match self
                .parts
                .source
                .read(&self.m, after, want - batch.len())
                .await
            {
                Ok(Some(more)) => batch.extend(more),
                Ok(None) => {
                    tracing::warn!(
                        "mapping {}: the stream {} no longer exists; it delivers nothing",
                        self.m.id,
                        self.m.stream_arn
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!("mapping {}: cannot read its stream: {e}", self.m.id);
                    tokio::time::sleep(PAUSE).await;
                    continue;
                }
            }
            if batch.len() >= want {
                return Some(batch);
            }
            let now = tokio::time::Instant::now();
            if !batch.is_empty() {
                let ends = *window_ends
                    .get_or_insert(now + Duration::from_millis(self.m.batching_window_ms));
                if now >= ends {
                    return Some(batch);
                }
                tokio::time::sleep(POLL_EVERY.min(ends - now)).await;
            } else {
                tokio::time::sleep(POLL_EVERY).await;
            }
        }
    }

    /// Runs one batch and acts on the outcome; false when the mapping is gone.
    async fn deliver(&mut self, mut batch: Batch) -> bool {
        if self.m.max_record_age_s >= 0 {
            let oldest_ok = now_ms() - self.m.max_record_age_s * 1000;
            let expired = batch
                .records
                .iter()
                .take_while(|r| r.created_ms < oldest_ok)
                .count();
            if expired > 0 {
                let rest = batch.records.split_off(expired);
                let old = std::mem::replace(&mut batch.records, rest);
                if !self
                    .give_up(&old, Condition::RecordAgeExceeded, batch.attempts)
                    .await
                {
                    return false;
                }
                if batch.records.is_empty() {
                    return true;
                }
            }
        }
        let event = json!({
            "Records": batch.records.iter().map(|r| &r.record).collect::<Vec<_>>(),
        });
        let outcome = self
            .runner
            .run(
                &self.m.namespace,
                &self.m.function,
                Bytes::from(event.to_string()),
                "dynamodb",
                lambent_core::TraceOrigin::default(),
            )
            .await;
        let sequences: Vec<&str> = batch
            .records
            .iter()
            .map(|r| {
                r.record["dynamodb"]["SequenceNumber"]
                    .as_str()
                    .unwrap_or("")
            })
            .collect();
        let verdict = verdict(self.m.report_batch_item_failures, &sequences, &outcome);
        match judge(&self.m, batch.records.len(), batch.attempts, verdict) {
            Step::Done => {
                let last = batch.records.last().map_or(0, |r| r.sequence);
                self.commit(last).await
            }
            Step::Advance(n) => {
                let rest = batch.records.split_off(n);
                let last = batch.records.last().map_or(0, |r| r.sequence);
                self.pending.push_front(Batch {
                    records: rest,
                    attempts: batch.attempts,
                });
                self.commit(last).await
            }
            Step::Split(n) => {
                let second = batch.records.split_off(n);
                for records in [second, batch.records] {
                    self.pending.push_front(Batch {
                        records,
                        attempts: batch.attempts,
                    });
                }
                true
            }
            Step::Retry => {
                let backoff = Duration::from_millis(100)
                    .saturating_mul(1 << batch.attempts.min(10))
                    .min(MAX_BACKOFF);
                tokio::time::sleep(backoff).await;
                batch.attempts += 1;
                self.pending.push_front(batch);
                true
            }
            Step::GiveUp => {
                self.give_up(
                    &batch.records,
                    Condition::RetryAttemptsExhausted,
                    batch.attempts + 1,
                )
                .await
            }
            Step::Wait => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                self.pending.push_front(batch);
                true
            }
        }
    }

    /// Sends a given-up batch's record to the on-failure destination (retrying until it is
    /// stored: nothing is dropped silently), then checkpoints past it.
    async fn give_up(&mut self, records: &[EventRecord], why: Condition, invocations: u32) -> bool {
        let Some(last) = records.last().map(|r| r.sequence) else {
            return true;
        };
        if let Some(arn) = self.m.on_failure.clone() {
            let record = failure_record(
                &self.m,
                self.queues.region(),
                &self.shard_id,
                records,
                why,
                invocations,
                now_ms(),
            );
            loop {
                match self.send_failure(&arn, &record).await {
                    Ok(()) => break,
                    Err(e) => {
                        tracing::warn!(
                            "mapping {}: cannot send a failed batch to {arn}: {e}",
                            self.m.id
                        );
                        tokio::time::sleep(PAUSE).await;
                    }
                }
            }
        } else {
            tracing::warn!(
                "mapping {}: gave up on records {}..={} of {} ({why:?}); no on-failure \
                 destination",
                self.m.id,
                records[0].sequence,
                last,
                self.m.stream_arn
            );
        }
        self.commit(last).await
    }

    async fn send_failure(&self, arn: &str, record: &Value) -> Result<(), crate::QueueError> {
        let ns = &self.m.namespace;
        match failure_destination(arn, self.queues.region(), ns)? {
            FailureDestination::Queue(q) => {
                let message = Outgoing {
                    body: record.to_string(),
                    ..Default::default()
                };
                self.queues.send(ns, &q, vec![message]).await.map(|_| ())
            }
            FailureDestination::Topic(t) => self
                .queues
                .publish(ns, &t, &record.to_string(), None, &Default::default(), None)
                .await
                .map(|_| ()),
        }
    }

    /// Moves the stored checkpoint to `to`. If it was moved by someone else (another node
    /// polled meanwhile) the poller starts again from the stored one; false when the
    /// mapping is gone.
    async fn commit(&mut self, to: u64) -> bool {
        if to <= self.checkpoint {
            return true;
        }
        loop {
            match self
                .parts
                .store
                .advance_stream_checkpoint(&self.m.id, self.checkpoint, to)
                .await
            {
                Ok(true) => {
                    self.checkpoint = to;
                    return true;
                }
                Ok(false) => return self.reload().await,
                Err(e) => {
                    tracing::warn!("mapping {}: cannot store its checkpoint: {e}", self.m.id);
                    tokio::time::sleep(PAUSE).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_store::stream_mappings::StartingPosition;

    fn mapping() -> StreamMapping {
        StreamMapping {
            id: "m".into(),
            namespace: "default".into(),
            table: "t".into(),
            table_id: "t-1".into(),
            stream_arn: "arn:aws:dynamodb:us-east-1:default:table/t/stream/1".into(),
            function: "f".into(),
            batch_size: 100,
            batching_window_ms: 0,
            starting_position: StartingPosition::TrimHorizon,
            starting_timestamp_ms: None,
            max_retries: 2,
            max_record_age_s: -1,
            bisect_on_error: false,
            report_batch_item_failures: true,
            on_failure: None,
            enabled: true,
            created_ms: 0,
            modified_ms: 0,
        }
    }

    fn ok(body: &str) -> RunOutcome {
        RunOutcome::Success(Bytes::from(body.to_string()))
    }

    #[test]
    fn batch_item_failures_name_where_processing_stopped() {
        let batch = ["001", "002", "003"];
        let v = |body| verdict(true, &batch, &ok(body));
        assert_eq!(v("null"), Verdict::Processed);
        assert_eq!(v(r#"{"batchItemFailures": []}"#), Verdict::Processed);
        assert_eq!(v(r#"{"batchItemFailures": null}"#), Verdict::Processed);
        // The lowest failed one counts, whatever the order of the report.
        assert_eq!(
            v(r#"{"batchItemFailures": [{"itemIdentifier": "003"}, {"itemIdentifier": "002"}]}"#),
            Verdict::FailedFrom(1)
        );
        assert_eq!(
            v(r#"{"batchItemFailures": [{"itemIdentifier": "001"}]}"#),
            Verdict::Failed
        );
        // Malformed reports fail the whole batch.
        for bad in [
            r#"{"batchItemFailures": [{"itemIdentifier": "999"}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": ""}]}"#,
            r#"{"batchItemFailures": [{"itemIdentifier": null}]}"#,
            r#"{"batchItemFailures": "002"}"#,
        ] {
            assert_eq!(v(bad), Verdict::Failed, "{bad}");
        }
        // Without the setting the report is ignored.
        assert_eq!(
            verdict(
                false,
                &batch,
                &ok(r#"{"batchItemFailures": [{"itemIdentifier": "001"}]}"#)
            ),
            Verdict::Processed
        );
        assert_eq!(verdict(true, &batch, &RunOutcome::Failed), Verdict::Failed);
        assert_eq!(
            verdict(true, &batch, &RunOutcome::Throttled),
            Verdict::NotRun
        );
    }

    #[test]
    fn failures_are_retried_then_given_up_or_bisected_first() {
        let mut m = mapping();
        assert_eq!(judge(&m, 4, 0, Verdict::Processed), Step::Done);
        assert_eq!(judge(&m, 4, 0, Verdict::FailedFrom(2)), Step::Advance(2));
        assert_eq!(judge(&m, 4, 0, Verdict::NotRun), Step::Wait);
        // Two retries: the first run and two more, then given up.
        assert_eq!(judge(&m, 4, 0, Verdict::Failed), Step::Retry);
        assert_eq!(judge(&m, 4, 1, Verdict::Failed), Step::Retry);
        assert_eq!(judge(&m, 4, 2, Verdict::Failed), Step::GiveUp);
        m.max_retries = 0;
        assert_eq!(judge(&m, 4, 0, Verdict::Failed), Step::GiveUp);
        m.max_retries = -1;
        assert_eq!(judge(&m, 1, 10_000, Verdict::Failed), Step::Retry);
        // Bisection splits until one record is left, which is then retried.
        m.bisect_on_error = true;
        m.max_retries = 1;
        assert_eq!(judge(&m, 5, 0, Verdict::Failed), Step::Split(2));
        assert_eq!(judge(&m, 2, 0, Verdict::Failed), Step::Split(1));
        assert_eq!(judge(&m, 1, 0, Verdict::Failed), Step::Retry);
        assert_eq!(judge(&m, 1, 1, Verdict::Failed), Step::GiveUp);
    }

    #[test]
    fn the_failure_record_names_the_range() {
        let m = mapping();
        let record = |seq: u64, ms| EventRecord {
            sequence: seq,
            created_ms: ms,
            record: json!({"dynamodb": {"SequenceNumber": format!("{seq:021}")}}),
        };
        let batch = [record(7, 1_000), record(9, 2_000)];
        let r = failure_record(
            &m,
            "us-east-1",
            "shardId-1",
            &batch,
            Condition::RetryAttemptsExhausted,
            3,
            5_000,
        );
        let info = &r["DDBStreamBatchInfo"];
        assert_eq!(info["startSequenceNumber"], "000000000000000000007");
        assert_eq!(info["endSequenceNumber"], "000000000000000000009");
        assert_eq!(info["batchSize"], 2);
        assert_eq!(info["shardId"], "shardId-1");
        assert_eq!(info["streamArn"], m.stream_arn);
        assert_eq!(
            info["approximateArrivalOfFirstRecord"],
            "1970-01-01T00:00:01.000Z"
        );
        assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            r["requestContext"]["functionArn"],
            "arn:aws:lambda:us-east-1:default:function:f"
        );
        assert_eq!(r["responseContext"]["functionError"], "Unhandled");
        let aged = failure_record(
            &m,
            "us-east-1",
            "shardId-1",
            &batch,
            Condition::RecordAgeExceeded,
            0,
            5_000,
        );
        assert_eq!(aged["requestContext"]["condition"], "RecordAgeExceeded");
        assert!(aged.get("responseContext").is_none());
    }
}
