//! One event-source mapping's poller: receive a batch (long polling, gathering up to the batch
//! size within the batching window), run the function with the SQS event, then delete what
//! succeeded. A thrown error leaves the whole batch to reappear after the visibility timeout;
//! with `report_batch_item_failures`, only the messages named in `batchItemFailures` do.

use crate::{events, FunctionRunner, Mapping, Message, Queues, RunOutcome, MAX_BATCH};
use bytes::Bytes;
use lambent_core::{Hop, TraceContext, TraceOrigin};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Polls until aborted.
pub(crate) async fn poll(queues: Queues, runner: Arc<dyn FunctionRunner>, m: Mapping) {
    loop {
        let batch = match gather(&queues, &m).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!("mapping {} cannot receive from '{}': {e}", m.id, m.queue);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if batch.is_empty() {
            continue;
        }
        let event = events::sqs_event(queues.region(), &m.namespace, &m.queue, &batch);
        let outcome = runner
            .run(
                &m.namespace,
                &m.function,
                Bytes::from(event.to_string()),
                "sqs",
                batch_origin(&m.queue, &batch),
            )
            .await;
        let done: Vec<String> = match outcome {
            RunOutcome::Success(body) => succeeded(&m, &batch, &body),
            RunOutcome::Failed => Vec::new(),
            RunOutcome::Throttled | RunOutcome::Missing => {
                // The batch comes back after its visibility timeout; do not spin meanwhile.
                tokio::time::sleep(Duration::from_millis(500)).await;
                Vec::new()
            }
        };
        for chunk in done.chunks(MAX_BATCH) {
            if let Err(e) = queues.delete(&m.namespace, &m.queue, chunk).await {
                tracing::warn!("mapping {} cannot delete processed messages: {e}", m.id);
            }
        }
    }
}

/// Where a batch's invocation sits in a trace: it continues the first traced message's
/// context under a span of the batch's delivery (from when that message was sent), linked to
/// every traced message's sender (OpenTelemetry's messaging convention for batches). A batch
/// of untraced messages starts a trace of its own, still with the delivery's span.
fn batch_origin(queue: &str, batch: &[Message]) -> TraceOrigin {
    let links: Vec<TraceContext> = batch.iter().filter_map(|m| m.trace.clone()).collect();
    let first_sent = batch
        .iter()
        .find(|m| m.trace.is_some())
        .or_else(|| batch.first())
        .map(|m| m.sent_ms);
    TraceOrigin {
        context: links.first().cloned(),
        queued_ms: first_sent,
        http: None,
        hop: Some(Hop::Queue {
            queue: queue.to_string(),
            messages: batch.len() as u32,
            links,
        }),
    }
}

/// Up to `batch_size` messages: waits for the first, then keeps receiving while the batching
/// window is open (or, without a window, while receives come back full).
async fn gather(queues: &Queues, m: &Mapping) -> Result<Vec<Message>, crate::QueueError> {
    let want = m.batch_size as usize;
    let mut batch = queues
        .receive(
            &m.namespace,
            &m.queue,
            want.min(MAX_BATCH),
            None,
            Duration::from_secs(1),
        )
        .await?;
    if batch.is_empty() {
        return Ok(batch);
    }
    let window_ends = tokio::time::Instant::now() + Duration::from_millis(m.batching_window_ms);
    while batch.len() < want {
        let now = tokio::time::Instant::now();
        let wait = window_ends.saturating_duration_since(now);
        let last_full = batch.len() % MAX_BATCH == 0;
        if wait.is_zero() && !last_full {
            break;
        }
        let more = queues
            .receive(
                &m.namespace,
                &m.queue,
                (want - batch.len()).min(MAX_BATCH),
                None,
                wait.min(Duration::from_secs(crate::MAX_WAIT_S as u64)),
            )
            .await?;
        if more.is_empty() {
            break;
        }
        batch.extend(more);
    }
    Ok(batch)
}

/// The receipt handles of the messages a successful run processed: all of them, unless the
/// mapping reports batch item failures and the result names some. A malformed report (not
/// the documented shape, or naming a message not in the batch) fails the whole batch, as on
/// Lambda.
fn succeeded(m: &Mapping, batch: &[Message], body: &[u8]) -> Vec<String> {
    let all = || batch.iter().map(|msg| msg.receipt_handle.clone()).collect();
    if !m.report_batch_item_failures {
        return all();
    }
    let Ok(result) = serde_json::from_slice::<Value>(body) else {
        return all();
    };
    let failures = match result.get("batchItemFailures") {
        None | Some(Value::Null) => return all(),
        Some(Value::Array(items)) => items,
        Some(_) => return Vec::new(),
    };
    let ids: HashSet<&str> = batch.iter().map(|msg| msg.id.as_str()).collect();
    let mut failed = HashSet::new();
    for item in failures {
        match item.get("itemIdentifier").and_then(Value::as_str) {
            Some(id) if ids.contains(id) => {
                failed.insert(id);
            }
            _ => return Vec::new(),
        }
    }
    batch
        .iter()
        .filter(|msg| !failed.contains(msg.id.as_str()))
        .map(|msg| msg.receipt_handle.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Message {
        Message {
            id: id.into(),
            receipt_handle: format!("r-{id}"),
            body: "b".into(),
            attributes: Default::default(),
            sent_ms: 0,
            receive_count: 1,
            first_receive_ms: 0,
            trace: None,
        }
    }

    #[test]
    fn partial_batch_responses() {
        let mut m = Mapping {
            id: "esm".into(),
            namespace: "default".into(),
            queue: "q".into(),
            function: "f".into(),
            batch_size: 10,
            batching_window_ms: 0,
            report_batch_item_failures: true,
            enabled: true,
            created_ms: 0,
        };
        let batch = [message("a"), message("b"), message("c")];
        let report = br#"{"batchItemFailures": [{"itemIdentifier": "b"}]}"#;
        assert_eq!(succeeded(&m, &batch, report), ["r-a", "r-c"]);
        assert_eq!(
            succeeded(&m, &batch, br#"{"batchItemFailures": []}"#).len(),
            3
        );
        assert_eq!(succeeded(&m, &batch, b"null").len(), 3);
        assert!(succeeded(
            &m,
            &batch,
            br#"{"batchItemFailures": [{"itemIdentifier": "zz"}]}"#
        )
        .is_empty());
        assert!(succeeded(&m, &batch, br#"{"batchItemFailures": "b"}"#).is_empty());
        m.report_batch_item_failures = false;
        assert_eq!(
            succeeded(&m, &batch, report).len(),
            3,
            "ignored without the setting"
        );
    }
}
