//! Destinations: where the record of an asynchronous invocation goes once it succeeded or
//! failed for good, in the shape Lambda sends to destinations:
//! `{version, timestamp, requestContext{requestId, functionArn, condition,
//! approximateInvokeCount}, requestPayload, responseContext{statusCode, executedVersion,
//! functionError}, responsePayload}`.

use chrono::{DateTime, Utc};
use lambent_core::{now_ms, Destination};
use lambent_store::events::QueuedEvent;
use serde_json::{json, Value};

/// Why the record is sent (`requestContext.condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Success,
    RetriesExhausted,
    EventAgeExceeded,
}

impl Condition {
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::Success => "Success",
            Condition::RetriesExhausted => "RetriesExhausted",
            Condition::EventAgeExceeded => "EventAgeExceeded",
        }
    }
}

/// What the last attempt returned, if one ran.
pub struct Response<'a> {
    pub body: &'a [u8],
    /// The error type when the attempt failed.
    pub function_error: Option<&'a str>,
}

/// The invocation record of `event` (its id is the record's `requestId`).
pub fn invocation_record(
    event: &QueuedEvent,
    function_arn: &str,
    condition: Condition,
    invoke_count: u32,
    response: Option<Response<'_>>,
) -> Value {
    let timestamp = DateTime::<Utc>::from_timestamp_millis(now_ms())
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    let mut record = json!({
        "version": "1.0",
        "timestamp": timestamp,
        "requestContext": {
            "requestId": event.id,
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": condition.as_str(),
            "approximateInvokeCount": invoke_count,
        },
        "requestPayload": json_or_text(&event.payload),
    });
    if let Some(r) = response {
        let mut context = json!({"statusCode": 200, "executedVersion": "$LATEST"});
        if let Some(e) = r.function_error {
            context["functionError"] = Value::String(e.to_string());
        }
        record["responseContext"] = context;
        record["responsePayload"] = json_or_text(r.body);
    }
    record
}

fn json_or_text(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The event that carries `record` to `destination`, to be committed with the source event's
/// completion (so a record is sent once the invocation is done, and only then).
pub fn event_for(
    namespace: &str,
    destination: &Destination,
    record: &Value,
) -> Option<QueuedEvent> {
    match destination {
        Destination::Function(name) => Some(crate::new_event(
            namespace,
            name.as_str(),
            record.to_string().into_bytes(),
            "destination",
        )),
        Destination::Queue(q) => Some(crate::new_event(
            namespace,
            &format!("{QUEUE_PREFIX}{q}"),
            record.to_string().into_bytes(),
            "destination",
        )),
        Destination::Topic(t) => Some(crate::new_event(
            namespace,
            &format!("{TOPIC_PREFIX}{t}"),
            record.to_string().into_bytes(),
            "destination",
        )),
    }
}

/// Events bound for a queue or a topic name it in place of a function (function names have no
/// `:`, so the two never meet): `queue:NAME`, `topic:NAME`.
const QUEUE_PREFIX: &str = "queue:";
const TOPIC_PREFIX: &str = "topic:";
use lambent_store::events::WORKFLOW_TARGET_PREFIX;

/// Where an event bound for a queue, topic or workflow goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    Queue(&'a str),
    Topic(&'a str),
    /// A workflow (state machine): the event starts an execution with it as input.
    Workflow(&'a str),
}

impl Target<'_> {
    /// The queue, topic or workflow an event's target names; `None` for a function.
    pub fn of(function: &str) -> Option<Target<'_>> {
        if let Some(q) = function.strip_prefix(QUEUE_PREFIX) {
            return Some(Target::Queue(q));
        }
        if let Some(w) = function.strip_prefix(WORKFLOW_TARGET_PREFIX) {
            return Some(Target::Workflow(w));
        }
        function.strip_prefix(TOPIC_PREFIX).map(Target::Topic)
    }
}

pub use lambent_store::events::workflow_target;

/// Delivers events to queues, topics and workflows (the built-in ones: `lambent-queues`,
/// the server's workflows).
#[async_trait::async_trait]
pub trait Deliver: Send + Sync + 'static {
    /// Sends `record` (JSON) as a message to the queue, publishes it to the topic, or starts
    /// an execution of the workflow with it as input (named after `event_id`, so a retried
    /// event starts it once); returns once it is stored. `trace`: the event's context, which
    /// the message, the publication or the execution continues.
    async fn deliver(
        &self,
        namespace: &str,
        target: Target<'_>,
        record: &str,
        event_id: &str,
        trace: Option<&lambent_core::TraceContext>,
    ) -> Result<(), String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_lambda_shaped() {
        let event = crate::new_event("default", "f", br#"{"n": 1}"#.to_vec(), "async");
        let r = invocation_record(
            &event,
            "arn:aws:lambda:local:default:function:f",
            Condition::RetriesExhausted,
            3,
            Some(Response {
                body: br#"{"errorType": "ValueError"}"#,
                function_error: Some("ValueError"),
            }),
        );
        assert_eq!(r["version"], "1.0");
        assert_eq!(r["requestContext"]["requestId"], event.id.as_str());
        assert_eq!(r["requestContext"]["condition"], "RetriesExhausted");
        assert_eq!(r["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(r["requestPayload"]["n"], 1);
        assert_eq!(r["responseContext"]["functionError"], "ValueError");
        assert_eq!(r["responsePayload"]["errorType"], "ValueError");
    }
}
