//! SQS's operations on the JSON protocol's input and output (the query protocol is converted
//! to and from it in [`crate::query`]), over the queue engine of the caller's namespace. Queue
//! URLs are `<origin>/<namespace>/<queue>`, ARNs `arn:aws:sqs:<region>:<namespace>:<queue>`.

use crate::error::SqsError;
use base64::Engine as _;
use lambent_queues::events::{hex_md5, queue_arn};
use lambent_queues::{
    Attributes, Message, MessageAttribute, Outgoing, QueueConfig, QueueSettings, Queues, MAX_BATCH,
    MAX_MESSAGE_BYTES,
};
use md5::Digest;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Who calls, and where their queues are addressed.
pub struct Call<'a> {
    pub queues: &'a Queues,
    pub namespace: &'a str,
    /// `scheme://host` of the request, the base of queue URLs.
    pub origin: &'a str,
    /// The request's trace context: a message sent without an `AWSTraceHeader` system
    /// attribute carries it (as SQS does with the `X-Amzn-Trace-Id` of the send).
    pub trace: Option<lambent_core::TraceContext>,
}

/// The system attributes a receive can return.
const MESSAGE_SYSTEM_ATTRIBUTES: &[&str] = &[
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "SenderId",
    "SentTimestamp",
    "AWSTraceHeader",
];

/// The only system attribute a sender may set: the X-Ray trace header.
const TRACE_HEADER: &str = "AWSTraceHeader";

/// The queue attributes Lambent keeps or reports, in the order `All` lists them.
const QUEUE_ATTRIBUTES: &[&str] = &[
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "Policy",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Attributes only a client can change, kept as given (they change nothing in Lambent).
const KEPT_ATTRIBUTES: &[&str] = &[
    "Policy",
    "SqsManagedSseEnabled",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
];

/// Attributes of FIFO queues, which Lambent does not have.
const FIFO_ATTRIBUTES: &[&str] = &[
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Runs one operation.
pub async fn dispatch(c: &Call<'_>, operation: &str, input: &Value) -> Result<Value, SqsError> {
    match operation {
        "CreateQueue" => create_queue(c, input).await,
        "GetQueueUrl" => get_queue_url(c, input).await,
        "ListQueues" => list_queues(c, input).await,
        "DeleteQueue" => {
            let q = queue_of(c, input)?;
            c.queues.delete_queue(c.namespace, &q).await?;
            Ok(json!({}))
        }
        "GetQueueAttributes" => get_queue_attributes(c, input).await,
        "SetQueueAttributes" => set_queue_attributes(c, input).await,
        "PurgeQueue" => {
            let q = queue_of(c, input)?;
            c.queues.purge(c.namespace, &q).await?;
            Ok(json!({}))
        }
        "ListDeadLetterSourceQueues" => {
            let q = queue_of(c, input)?;
            c.queues.queue(c.namespace, &q).await?;
            let urls: Vec<Value> = c
                .queues
                .list_queues(c.namespace)
                .await?
                .iter()
                .filter(|s| s.dead_letter_queue.as_deref() == Some(q.as_str()))
                .map(|s| Value::String(url(c, &s.name)))
                .collect();
            Ok(json!({ "queueUrls": urls }))
        }
        "SendMessage" => {
            let q = queue_of(c, input)?;
            let outgoing = outgoing(c, input)?;
            let answer = sent(&outgoing);
            let id = c.queues.send(c.namespace, &q, vec![outgoing]).await?;
            Ok(with_id(answer, &id[0]))
        }
        "SendMessageBatch" => send_message_batch(c, input).await,
        "StartMessageMoveTask" => start_message_move_task(c, input).await,
        "ReceiveMessage" => receive_message(c, input).await,
        "DeleteMessage" => {
            let q = queue_of(c, input)?;
            let receipt = receipt(input)?;
            c.queues
                .delete(c.namespace, &q, std::slice::from_ref(&receipt))
                .await?;
            Ok(json!({}))
        }
        "DeleteMessageBatch" => delete_message_batch(c, input).await,
        "ChangeMessageVisibility" => {
            let q = queue_of(c, input)?;
            change_visibility(c, &q, input).await?;
            Ok(json!({}))
        }
        "ChangeMessageVisibilityBatch" => {
            let q = queue_of(c, input)?;
            c.queues.queue(c.namespace, &q).await?;
            let mut results = BatchResults::default();
            for entry in batch_entries(input, "ChangeMessageVisibilityBatchRequestEntry")? {
                let id = entry_id(entry);
                match change_visibility(c, &q, entry).await {
                    Ok(()) => results.ok(json!({ "Id": id })),
                    Err(e) => results.failed(id, &e),
                }
            }
            Ok(results.into_value())
        }
        "TagQueue" => {
            let q = queue_of(c, input)?;
            let mut s = QueueSettings::of(&c.queues.queue(c.namespace, &q).await?);
            s.tags.extend(string_map(input, "Tags")?);
            c.queues.update_queue(c.namespace, s).await?;
            Ok(json!({}))
        }
        "UntagQueue" => {
            let q = queue_of(c, input)?;
            let mut s = QueueSettings::of(&c.queues.queue(c.namespace, &q).await?);
            for key in names(input, "TagKeys") {
                s.tags.remove(key);
            }
            c.queues.update_queue(c.namespace, s).await?;
            Ok(json!({}))
        }
        "ListQueueTags" => {
            let q = queue_of(c, input)?;
            let tags = c.queues.queue(c.namespace, &q).await?.tags;
            if tags.is_empty() {
                return Ok(json!({}));
            }
            Ok(json!({ "Tags": tags }))
        }
        other => Err(SqsError::InvalidAction(other.to_string())),
    }
}

/// A map of strings (`Tags`, `Attributes`): JSON strings, or numbers and booleans as text.
fn string_map(input: &Value, name: &str) -> Result<BTreeMap<String, String>, SqsError> {
    let Some(map) = input.get(name).filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = map.as_object().ok_or_else(|| {
        SqsError::InvalidParameterValue(format!(
            "Value for parameter {name} is invalid. Reason: it must be a map."
        ))
    })?;
    Ok(map
        .iter()
        .map(|(k, v)| {
            let text = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            (k.clone(), text)
        })
        .collect())
}

fn url(c: &Call<'_>, queue: &str) -> String {
    format!("{}/{}/{queue}", c.origin, c.namespace)
}

fn string<'v>(input: &'v Value, name: &'static str) -> Result<&'v str, SqsError> {
    match input.get(name) {
        None | Some(Value::Null) => Err(SqsError::MissingParameter(name)),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(SqsError::InvalidParameterValue(format!(
            "Value for parameter {name} is invalid. Reason: it must be a string."
        ))),
    }
}

/// An integer parameter, as a JSON number or (query protocol) a decimal string.
fn int(input: &Value, name: &str) -> Result<Option<i64>, SqsError> {
    let invalid = || {
        SqsError::InvalidParameterValue(format!(
            "Value {} for parameter {name} is invalid. Reason: it must be an integer.",
            input[name]
        ))
    };
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(invalid),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| invalid()),
        Some(_) => Err(invalid()),
    }
}

/// A non-negative integer parameter that fits a `u32`.
fn uint(input: &Value, name: &str) -> Result<Option<u32>, SqsError> {
    int(input, name)?
        .map(|n| {
            u32::try_from(n).map_err(|_| {
                SqsError::InvalidParameterValue(format!(
                    "Value {n} for parameter {name} is invalid. Reason: it must be between 0 \
                     and {}.",
                    u32::MAX
                ))
            })
        })
        .transpose()
}

fn names<'v>(input: &'v Value, name: &str) -> Vec<&'v str> {
    input
        .get(name)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The queue a `QueueUrl` names: `…/<namespace>/<queue>` (another account's queue does not
/// exist for the caller), or a bare queue name.
fn queue_of(c: &Call<'_>, input: &Value) -> Result<String, SqsError> {
    let raw = string(input, "QueueUrl")?;
    let path = match raw.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => raw,
    };
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments[..] {
        [name] => Ok(name.to_string()),
        [account, name] if account == c.namespace => Ok(name.to_string()),
        [_, _] => Err(SqsError::QueueDoesNotExist),
        _ => Err(SqsError::InvalidParameterValue(format!(
            "Value {raw} for parameter QueueUrl is invalid. Reason: it is not a queue URL."
        ))),
    }
}

/// Applies a request's queue attributes (`Attributes`) to `s`: the settings Lambent keeps and
/// enforces, the attributes it keeps as given; an empty `RedrivePolicy` removes it.
/// Out-of-range values are `InvalidAttributeValue`, names SQS does not have (or that only
/// SQS sets) `InvalidAttributeName`, FIFO queues `UnsupportedOperation`.
async fn apply_attributes(
    c: &Call<'_>,
    s: &mut QueueSettings,
    input: &Value,
) -> Result<(), SqsError> {
    for (key, text) in string_map(input, "Attributes")? {
        let number = |min: u32, max: u32| {
            text.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    SqsError::InvalidAttributeValue(format!(
                        "Invalid value for the parameter {key}. Reason: must be an integer \
                         from {min} to {max}."
                    ))
                })
        };
        match key.as_str() {
            "VisibilityTimeout" => {
                s.visibility_timeout = Some(number(0, lambent_queues::MAX_VISIBILITY_TIMEOUT_S)?)
            }
            "DelaySeconds" => s.delay = Some(number(0, lambent_queues::MAX_DELAY_S)?),
            "MessageRetentionPeriod" => {
                s.retention = Some(number(
                    lambent_queues::MIN_RETENTION_S,
                    lambent_queues::MAX_RETENTION_S,
                )?)
            }
            "MaximumMessageSize" => {
                s.max_message_bytes = Some(number(
                    lambent_queues::MIN_MESSAGE_BYTES,
                    MAX_MESSAGE_BYTES as u32,
                )?)
            }
            "ReceiveMessageWaitTimeSeconds" => {
                s.receive_wait = Some(number(0, lambent_queues::MAX_WAIT_S)?)
            }
            "RedrivePolicy" if text.is_empty() => {
                s.dead_letter_queue = None;
                s.max_receive_count = None;
            }
            "RedrivePolicy" => {
                let (dlq, max) = redrive_policy(c, &text)?;
                allowed_to_redrive(c, &s.name, &dlq).await?;
                s.dead_letter_queue = Some(dlq);
                s.max_receive_count = Some(max);
            }
            "RedriveAllowPolicy" => {
                if text.is_empty() {
                    s.attributes.remove(&key);
                } else {
                    redrive_allow_policy(&text)?;
                    s.attributes.insert(key, text);
                }
            }
            "FifoQueue" if text == "false" => {}
            "FifoQueue" => {
                return Err(SqsError::UnsupportedOperation(
                    "Lambent's queues are standard queues: FIFO queues (FifoQueue=true) are \
                     not supported."
                        .into(),
                ))
            }
            k if FIFO_ATTRIBUTES.contains(&k) => {
                return Err(SqsError::InvalidAttributeName(format!(
                    "Unknown Attribute {key}: it is an attribute of FIFO queues, which Lambent \
                     does not support."
                )))
            }
            k if KEPT_ATTRIBUTES.contains(&k) => {
                if text.is_empty() {
                    s.attributes.remove(&key);
                } else {
                    s.attributes.insert(key, text);
                }
            }
            _ => {
                return Err(SqsError::InvalidAttributeName(format!(
                    "Unknown Attribute {key}."
                )))
            }
        }
    }
    Ok(())
}

/// `{"redrivePermission": "allowAll" | "denyAll" | "byQueue", "sourceQueueArns": [...]}`:
/// the source queue ARNs it lets use the queue as their dead-letter queue (`None`: any).
fn redrive_allow_policy(text: &str) -> Result<Option<Vec<String>>, SqsError> {
    let invalid = |why: &str| {
        SqsError::InvalidParameterValue(format!(
            "Value {text} for parameter RedriveAllowPolicy is invalid. Reason: {why}"
        ))
    };
    let policy: Value = serde_json::from_str(text).map_err(|_| invalid("it is not JSON."))?;
    let sources: Vec<String> = names(&policy, "sourceQueueArns")
        .into_iter()
        .map(str::to_string)
        .collect();
    match policy["redrivePermission"].as_str() {
        Some("allowAll") if sources.is_empty() => Ok(None),
        Some("denyAll") if sources.is_empty() => Ok(Some(Vec::new())),
        Some("byQueue") if (1..=10).contains(&sources.len()) => Ok(Some(sources)),
        Some("byQueue") => Err(invalid(
            "byQueue needs 1 to 10 source queue ARNs in sourceQueueArns.",
        )),
        Some("allowAll" | "denyAll") => Err(invalid(
            "sourceQueueArns is only valid with the byQueue redrive permission.",
        )),
        _ => Err(invalid(
            "redrivePermission must be allowAll, denyAll or byQueue.",
        )),
    }
}

/// Refuses a redrive policy whose dead-letter queue's `RedriveAllowPolicy` does not let
/// `source` use it.
async fn allowed_to_redrive(c: &Call<'_>, source: &str, dlq: &str) -> Result<(), SqsError> {
    let Ok(target) = c.queues.queue(c.namespace, dlq).await else {
        // A missing target is the engine's to report.
        return Ok(());
    };
    let Some(text) = target.attributes.get("RedriveAllowPolicy") else {
        return Ok(());
    };
    let source_arn = queue_arn(c.queues.region(), c.namespace, source);
    match redrive_allow_policy(text)? {
        Some(allowed) if !allowed.contains(&source_arn) => {
            Err(SqsError::InvalidParameterValue(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: Queue {source_arn} is \
                 not allowed to use {} as its dead-letter queue (its RedriveAllowPolicy).",
                queue_arn(c.queues.region(), c.namespace, dlq)
            )))
        }
        _ => Ok(()),
    }
}

/// `{"deadLetterTargetArn": "arn:aws:sqs:…:<queue>", "maxReceiveCount": N}`.
fn redrive_policy(c: &Call<'_>, text: &str) -> Result<(String, u32), SqsError> {
    let invalid = |why: &str| {
        SqsError::InvalidParameterValue(format!(
            "Value {text} for parameter RedrivePolicy is invalid. Reason: {why}"
        ))
    };
    let policy: Value = serde_json::from_str(text).map_err(|_| invalid("it is not JSON."))?;
    let arn = policy["deadLetterTargetArn"].as_str().ok_or_else(|| {
        invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn.")
    })?;
    let max = uint(&policy, "maxReceiveCount")?.ok_or_else(|| {
        invalid("Redrive policy does not contain mandatory attribute: maxReceiveCount.")
    })?;
    let dlq = queue_of_arn(c, arn).ok_or_else(|| invalid("Dead letter target does not exist."))?;
    Ok((dlq.to_string(), max))
}

/// The name of the caller's queue an ARN names, if it names one.
fn queue_of_arn<'a>(c: &Call<'_>, arn: &'a str) -> Option<&'a str> {
    arn.strip_prefix(&queue_arn(c.queues.region(), c.namespace, ""))
        .filter(|q| !q.is_empty())
}

/// `StartMessageMoveTask`: a dead-letter queue's messages back to `DestinationArn`, by default
/// the queue whose dead-letter queue it is. Lambent runs the move before answering (so there
/// is no task to list or cancel afterwards); the handle names the source and what moved.
async fn start_message_move_task(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let arn_param = |name: &'static str| -> Result<Option<&str>, SqsError> {
        match input.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(arn)) => queue_of_arn(c, arn).map(Some).ok_or_else(|| {
                SqsError::InvalidParameterValue(format!(
                    "Value {arn} for parameter {name} is invalid. Reason: it is not a queue ARN of this account."
                ))
            }),
            Some(_) => Err(SqsError::InvalidParameterValue(format!(
                "Value for parameter {name} is invalid. Reason: it must be a string."
            ))),
        }
    };
    let source = arn_param("SourceArn")?.ok_or(SqsError::MissingParameter("SourceArn"))?;
    let destination = arn_param("DestinationArn")?;
    let (_, moved) = c.queues.redrive(c.namespace, source, destination).await?;
    let handle = json!({
        "sourceArn": queue_arn(c.queues.region(), c.namespace, source),
        "movedMessages": moved,
    });
    Ok(json!({
        "TaskHandle": base64::engine::general_purpose::STANDARD.encode(handle.to_string()),
    }))
}

async fn create_queue(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let name = string(input, "QueueName")?;
    if name.ends_with(".fifo") {
        return Err(SqsError::UnsupportedOperation(format!(
            "Lambent's queues are standard queues: FIFO queues ('{name}') are not supported."
        )));
    }
    let mut s = QueueSettings {
        name: name.to_string(),
        tags: string_map(input, "tags")?,
        ..QueueSettings::default()
    };
    s.tags.extend(string_map(input, "Tags")?);
    apply_attributes(c, &mut s, input).await?;
    match c.queues.create_queue(c.namespace, s).await {
        Ok(_) => Ok(json!({ "QueueUrl": url(c, name) })),
        // The redrive policy's dead-letter queue.
        Err(lambent_queues::QueueError::QueueNotFound(dlq)) => {
            Err(SqsError::InvalidParameterValue(format!(
                "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target \
                 '{dlq}' does not exist."
            )))
        }
        Err(e) => Err(e.into()),
    }
}

async fn get_queue_url(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let name = string(input, "QueueName")?;
    if let Some(owner) = input.get("QueueOwnerAWSAccountId").and_then(Value::as_str) {
        if owner != c.namespace {
            return Err(SqsError::QueueDoesNotExist);
        }
    }
    c.queues.queue(c.namespace, name).await?;
    Ok(json!({ "QueueUrl": url(c, name) }))
}

async fn list_queues(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let prefix = input
        .get("QueueNamePrefix")
        .and_then(Value::as_str)
        .unwrap_or("");
    let after = input.get("NextToken").and_then(Value::as_str);
    let max = int(input, "MaxResults")?;
    if let Some(m) = max {
        if !(1..=1000).contains(&m) {
            return Err(SqsError::InvalidParameterValue(format!(
                "Value {m} for parameter MaxResults is invalid. Reason: must be between 1 and 1000."
            )));
        }
    }
    let mut names: Vec<String> = c
        .queues
        .list_queues(c.namespace)
        .await?
        .into_iter()
        .map(|q| q.name)
        .filter(|n| n.starts_with(prefix) && after.is_none_or(|a| n.as_str() > a))
        .collect();
    names.sort();
    let page = max.unwrap_or(1000) as usize;
    let more = names.len() > page;
    names.truncate(page);
    let mut out = json!({
        "QueueUrls": names.iter().map(|n| url(c, n)).collect::<Vec<_>>(),
    });
    // A token only when the caller pages (as SQS).
    if more && max.is_some() {
        out["NextToken"] = json!(names.last());
    }
    Ok(out)
}

async fn get_queue_attributes(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let q = queue_of(c, input)?;
    let config = c.queues.queue(c.namespace, &q).await?;
    let wanted = names(input, "AttributeNames");
    for n in &wanted {
        if *n != "All" && !QUEUE_ATTRIBUTES.contains(n) {
            return Err(SqsError::InvalidAttributeName(format!(
                "Unknown Attribute {n}."
            )));
        }
    }
    let all = wanted.contains(&"All");
    let counts = c.queues.counts(c.namespace, &q).await?;
    let mut attributes = Map::new();
    for name in QUEUE_ATTRIBUTES {
        if !all && !wanted.contains(name) {
            continue;
        }
        if let Some(v) = queue_attribute(c, &config, counts, name) {
            attributes.insert(name.to_string(), Value::String(v));
        }
    }
    if attributes.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": attributes }))
}

fn queue_attribute(
    c: &Call<'_>,
    q: &QueueConfig,
    counts: lambent_queues::QueueCounts,
    name: &str,
) -> Option<String> {
    Some(match name {
        "QueueArn" => queue_arn(c.queues.region(), c.namespace, &q.name),
        "ApproximateNumberOfMessages" => counts.visible.to_string(),
        "ApproximateNumberOfMessagesNotVisible" => counts.in_flight.to_string(),
        "ApproximateNumberOfMessagesDelayed" => counts.delayed.to_string(),
        "CreatedTimestamp" => (q.created_ms / 1000).to_string(),
        "LastModifiedTimestamp" => (q.modified_ms.max(q.created_ms) / 1000).to_string(),
        "VisibilityTimeout" => q.visibility_timeout_s.to_string(),
        "DelaySeconds" => q.delay_s.to_string(),
        "MaximumMessageSize" => q.max_message_bytes.to_string(),
        "MessageRetentionPeriod" => q.retention_s.to_string(),
        "ReceiveMessageWaitTimeSeconds" => q.receive_wait_s.to_string(),
        // SQS-managed encryption is on by default for new queues on AWS.
        "SqsManagedSseEnabled" => q
            .attributes
            .get(name)
            .cloned()
            .unwrap_or_else(|| "true".into()),
        "FifoQueue"
        | "ContentBasedDeduplication"
        | "DeduplicationScope"
        | "FifoThroughputLimit" => return None,
        "RedrivePolicy" => {
            let dlq = q.dead_letter_queue.as_ref()?;
            json!({
                "deadLetterTargetArn": queue_arn(c.queues.region(), c.namespace, dlq),
                "maxReceiveCount": q.max_receive_count.unwrap_or(1),
            })
            .to_string()
        }
        other => q.attributes.get(other)?.clone(),
    })
}

async fn set_queue_attributes(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let q = queue_of(c, input)?;
    // The attributes not named keep their values.
    let mut s = QueueSettings::of(&c.queues.queue(c.namespace, &q).await?);
    apply_attributes(c, &mut s, input).await?;
    let changed = c
        .queues
        .update_queue(c.namespace, s)
        .await
        .map_err(|e| match e {
            lambent_queues::QueueError::QueueNotFound(dlq) if dlq != q => {
                SqsError::InvalidParameterValue(format!(
                    "Value for parameter RedrivePolicy is invalid. Reason: Dead letter target \
                     '{dlq}' does not exist."
                ))
            }
            e => e.into(),
        })?;
    tracing::debug!(queue = %changed.name, "queue attributes set");
    Ok(json!({}))
}

/// A message attribute of a request, checked: String/Number with a `StringValue`, Binary with
/// a base64 `BinaryValue`.
#[doc(hidden)]
pub fn message_attributes(input: &Value) -> Result<Attributes, SqsError> {
    let mut out = Attributes::new();
    let Some(map) = input.get("MessageAttributes").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (name, v) in map {
        let field = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
        let data_type = field("DataType").ok_or_else(|| {
            SqsError::InvalidParameterValue(format!(
                "The message attribute '{name}' must contain non-empty message attribute type."
            ))
        })?;
        let binary_value = field("BinaryValue");
        if let Some(b) = &binary_value {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| {
                    SqsError::InvalidParameterValue(format!(
                        "The message attribute '{name}' has an invalid base64 BinaryValue."
                    ))
                })?;
        }
        out.insert(
            name.clone(),
            MessageAttribute {
                data_type,
                string_value: field("StringValue"),
                binary_value,
            },
        );
    }
    Ok(out)
}

/// SQS's MD5 of message attributes: per attribute, by name, the length-prefixed name, data
/// type and value, with a transport byte (1 string, 2 binary) before the value.
pub fn md5_of_attributes(attributes: &Attributes) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut h = md5::Md5::new();
    for (name, a) in attributes {
        put_value(&mut h, name.as_bytes());
        put_value(&mut h, a.data_type.as_bytes());
        match (&a.string_value, &a.binary_value) {
            (Some(s), _) => {
                h.update([1u8]);
                put_value(&mut h, s.as_bytes());
            }
            (None, Some(b)) => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default();
                h.update([2u8]);
                put_value(&mut h, &raw);
            }
            (None, None) => {}
        }
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn put_value(h: &mut md5::Md5, bytes: &[u8]) {
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(bytes);
}

/// The message a `SendMessage` (or batch entry) asks to send. FIFO parameters are refused: a
/// Lambent queue is a standard queue.
fn outgoing(c: &Call<'_>, input: &Value) -> Result<Outgoing, SqsError> {
    let body = string(input, "MessageBody")?.to_string();
    for fifo in ["MessageGroupId", "MessageDeduplicationId"] {
        if input.get(fifo).is_some_and(|v| !v.is_null()) {
            return Err(SqsError::InvalidParameterValue(format!(
                "The request include parameter that is not valid for this queue type: {fifo}"
            )));
        }
    }
    Ok(Outgoing {
        body,
        attributes: message_attributes(input)?,
        delay: uint(input, "DelaySeconds")?,
        trace: trace_header(input)?.or_else(|| c.trace.clone()),
    })
}

/// The `AWSTraceHeader` of a send's `MessageSystemAttributes` (an X-Ray trace header, as SQS
/// takes it; the only system attribute a sender may set).
fn trace_header(input: &Value) -> Result<Option<lambent_core::TraceContext>, SqsError> {
    let Some(system) = input
        .get("MessageSystemAttributes")
        .filter(|v| !v.is_null())
    else {
        return Ok(None);
    };
    let system = system.as_object().ok_or_else(|| {
        SqsError::InvalidParameterValue("MessageSystemAttributes must be a map".into())
    })?;
    let mut header = None;
    for (name, value) in system {
        if name != TRACE_HEADER {
            return Err(SqsError::InvalidParameterValue(format!(
                "Message system attribute name '{name}' is invalid."
            )));
        }
        let text = value
            .get("StringValue")
            .and_then(Value::as_str)
            .filter(|_| value.get("DataType").and_then(Value::as_str) == Some("String"))
            .ok_or_else(|| {
                SqsError::InvalidParameterValue(format!(
                    "Message system attribute '{TRACE_HEADER}' must be a String"
                ))
            })?;
        header = Some(lambent_core::TraceContext::from_xray(text).ok_or_else(|| {
            SqsError::InvalidParameterValue(format!(
                "Message system attribute '{TRACE_HEADER}' is not an X-Ray trace header: {text}"
            ))
        })?);
    }
    Ok(header)
}

/// The checksums a send answers with (the id added once sent).
fn sent(m: &Outgoing) -> Value {
    let mut v = json!({ "MD5OfMessageBody": hex_md5(m.body.as_bytes()) });
    if let Some(md5) = md5_of_attributes(&m.attributes) {
        v["MD5OfMessageAttributes"] = json!(md5);
    }
    v
}

fn with_id(mut answer: Value, id: &str) -> Value {
    answer["MessageId"] = json!(id);
    answer
}

/// A batch's entries, checked as SQS checks them: 1-10, ids of letters, digits, `-` and `_`
/// (at most 80), all distinct.
fn batch_entries<'v>(input: &'v Value, noun: &'static str) -> Result<&'v [Value], SqsError> {
    let entries = input
        .get("Entries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if entries.is_empty() {
        return Err(SqsError::EmptyBatchRequest(noun));
    }
    if entries.len() > MAX_BATCH {
        return Err(SqsError::TooManyEntriesInBatchRequest(entries.len()));
    }
    let mut seen = HashSet::new();
    for e in entries {
        let id = entry_id(e);
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SqsError::InvalidBatchEntryId);
        }
        if !seen.insert(id) {
            return Err(SqsError::BatchEntryIdsNotDistinct(id.to_string()));
        }
    }
    Ok(entries)
}

fn entry_id(entry: &Value) -> &str {
    entry.get("Id").and_then(Value::as_str).unwrap_or_default()
}

/// A batch's per-entry answers.
#[derive(Default)]
struct BatchResults {
    successful: Vec<Value>,
    failed: Vec<Value>,
}

impl BatchResults {
    fn ok(&mut self, v: Value) {
        self.successful.push(v);
    }

    fn failed(&mut self, id: &str, e: &SqsError) {
        let (_, code, _, fault) = e.wire();
        self.failed.push(json!({
            "Id": id,
            "SenderFault": fault == "Sender",
            "Code": code,
            "Message": e.to_string(),
        }));
    }

    fn into_value(self) -> Value {
        json!({ "Successful": self.successful, "Failed": self.failed })
    }
}

async fn send_message_batch(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let q = queue_of(c, input)?;
    c.queues.queue(c.namespace, &q).await?;
    let mut results = BatchResults::default();
    // Each entry on its own: one refused entry does not hold back the others (as SQS).
    for entry in batch_entries(input, "SendMessageBatchRequestEntry")? {
        let id = entry_id(entry);
        let sent_one = async {
            let m = outgoing(c, entry)?;
            let answer = sent(&m);
            let ids = c.queues.send(c.namespace, &q, vec![m]).await?;
            Ok::<_, SqsError>(with_id(answer, &ids[0]))
        };
        match sent_one.await {
            Ok(mut v) => {
                v["Id"] = json!(id);
                results.ok(v)
            }
            Err(SqsError::QueueDoesNotExist) => return Err(SqsError::QueueDoesNotExist),
            Err(e) => results.failed(id, &e),
        }
    }
    Ok(results.into_value())
}

/// A receipt handle: Lambent's are UUIDs; anything else is not one.
fn receipt(input: &Value) -> Result<String, SqsError> {
    let r = string(input, "ReceiptHandle")?;
    uuid::Uuid::parse_str(r).map_err(|_| SqsError::ReceiptHandleIsInvalid(r.to_string()))?;
    Ok(r.to_string())
}

async fn delete_message_batch(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let q = queue_of(c, input)?;
    c.queues.queue(c.namespace, &q).await?;
    let mut results = BatchResults::default();
    let mut valid = Vec::new();
    for entry in batch_entries(input, "DeleteMessageBatchRequestEntry")? {
        match receipt(entry) {
            Ok(r) => valid.push((entry_id(entry), r)),
            Err(e) => results.failed(entry_id(entry), &e),
        }
    }
    if !valid.is_empty() {
        let receipts: Vec<String> = valid.iter().map(|(_, r)| r.clone()).collect();
        // A handle of a message deleted already (or received again since) deletes nothing
        // and is no error, as on SQS.
        c.queues.delete(c.namespace, &q, &receipts).await?;
        for (id, _) in valid {
            results.ok(json!({ "Id": id }));
        }
    }
    Ok(results.into_value())
}

async fn change_visibility(c: &Call<'_>, q: &str, input: &Value) -> Result<(), SqsError> {
    let receipt = receipt(input)?;
    let timeout =
        uint(input, "VisibilityTimeout")?.ok_or(SqsError::MissingParameter("VisibilityTimeout"))?;
    c.queues
        .change_visibility(c.namespace, q, &receipt, timeout)
        .await?;
    Ok(())
}

async fn receive_message(c: &Call<'_>, input: &Value) -> Result<Value, SqsError> {
    let q = queue_of(c, input)?;
    let max = int(input, "MaxNumberOfMessages")?.unwrap_or(1);
    if !(1..=MAX_BATCH as i64).contains(&max) {
        return Err(SqsError::InvalidParameterValue(format!(
            "Value {max} for parameter MaxNumberOfMessages is invalid. Reason: Must be between \
             1 and 10, if provided."
        )));
    }
    // Without WaitTimeSeconds, the queue's ReceiveMessageWaitTimeSeconds.
    let wait = match int(input, "WaitTimeSeconds")? {
        Some(w) => w,
        None => i64::from(c.queues.queue(c.namespace, &q).await?.receive_wait_s),
    };
    if !(0..=lambent_queues::MAX_WAIT_S as i64).contains(&wait) {
        return Err(SqsError::InvalidParameterValue(format!(
            "Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and \
             <= 20, if provided."
        )));
    }
    let visibility = uint(input, "VisibilityTimeout")?;
    let mut system = names(input, "AttributeNames");
    system.extend(names(input, "MessageSystemAttributeNames"));
    let wanted_attributes = names(input, "MessageAttributeNames");
    let got = c
        .queues
        .receive(
            c.namespace,
            &q,
            max as usize,
            visibility,
            Duration::from_secs(wait as u64),
        )
        .await?;
    if got.is_empty() {
        return Ok(json!({}));
    }
    let messages: Vec<Value> = got
        .iter()
        .map(|m| received(c, m, &system, &wanted_attributes))
        .collect();
    Ok(json!({ "Messages": messages }))
}

/// Whether a message attribute is among those a receive asked for (`All`, `.*`, a name, or a
/// `prefix.*`).
fn attribute_wanted(wanted: &[&str], name: &str) -> bool {
    wanted.iter().any(|w| {
        *w == "All"
            || *w == ".*"
            || *w == name
            || w.strip_suffix(".*")
                .is_some_and(|p| name.strip_prefix(p).is_some_and(|r| r.starts_with('.')))
    })
}

fn received(c: &Call<'_>, m: &Message, system: &[&str], wanted: &[&str]) -> Value {
    let mut v = json!({
        "MessageId": m.id,
        "ReceiptHandle": m.receipt_handle,
        "MD5OfBody": hex_md5(m.body.as_bytes()),
        "Body": m.body,
    });
    let all = system.contains(&"All");
    let mut attributes = Map::new();
    for name in MESSAGE_SYSTEM_ATTRIBUTES {
        if !all && !system.contains(name) {
            continue;
        }
        let value = match *name {
            "ApproximateReceiveCount" => m.receive_count.to_string(),
            "ApproximateFirstReceiveTimestamp" => m.first_receive_ms.to_string(),
            "SenderId" => c.namespace.to_string(),
            TRACE_HEADER => match &m.trace {
                Some(t) => t.xray(),
                None => continue,
            },
            _ => m.sent_ms.to_string(),
        };
        attributes.insert(name.to_string(), Value::String(value));
    }
    if !attributes.is_empty() {
        v["Attributes"] = Value::Object(attributes);
    }
    let picked: Attributes = m
        .attributes
        .iter()
        .filter(|(name, _)| attribute_wanted(wanted, name))
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    if let Some(md5) = md5_of_attributes(&picked) {
        v["MD5OfMessageAttributes"] = json!(md5);
        let map: Map<String, Value> = picked
            .iter()
            .map(|(name, a)| {
                let mut value = json!({ "DataType": a.data_type });
                if let Some(s) = &a.string_value {
                    value["StringValue"] = json!(s);
                }
                if let Some(b) = &a.binary_value {
                    value["BinaryValue"] = json!(b);
                }
                (name.clone(), value)
            })
            .collect();
        v["MessageAttributes"] = Value::Object(map);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_may_carry_an_xray_trace_header_and_nothing_else() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let system = |name: &str, value: Value| json!({"MessageSystemAttributes": {name: value}});
        let got = trace_header(&system(
            TRACE_HEADER,
            json!({"DataType": "String", "StringValue": header}),
        ))
        .unwrap()
        .unwrap();
        assert_eq!(got.xray(), header);
        assert!(trace_header(&json!({})).unwrap().is_none());
        for bad in [
            system(
                "SenderId",
                json!({"DataType": "String", "StringValue": "x"}),
            ),
            system(
                TRACE_HEADER,
                json!({"DataType": "String", "StringValue": "not a header"}),
            ),
            system(
                TRACE_HEADER,
                json!({"DataType": "Number", "StringValue": header}),
            ),
        ] {
            assert!(
                matches!(trace_header(&bad), Err(SqsError::InvalidParameterValue(_))),
                "{bad}"
            );
        }
    }

    fn attr(data_type: &str, s: Option<&str>, b: Option<&str>) -> MessageAttribute {
        MessageAttribute {
            data_type: data_type.into(),
            string_value: s.map(Into::into),
            binary_value: b.map(Into::into),
        }
    }

    #[test]
    fn attribute_md5_is_sqs_s() {
        // The values boto's and the AWS SDKs' own tests use.
        let mut a = Attributes::new();
        a.insert("test".into(), attr("String", Some("test"), None));
        assert_eq!(
            md5_of_attributes(&a).unwrap(),
            format!("{:x}", {
                let mut h = md5::Md5::new();
                h.update([0, 0, 0, 4]);
                h.update(b"test");
                h.update([0, 0, 0, 6]);
                h.update(b"String");
                h.update([1]);
                h.update([0, 0, 0, 4]);
                h.update(b"test");
                h.finalize()
            })
        );
        a.insert("bin".into(), attr("Binary", None, Some("AAEC")));
        let two = md5_of_attributes(&a).unwrap();
        assert_eq!(two.len(), 32);
        assert_ne!(
            two,
            md5_of_attributes(&Attributes::from([(
                "test".to_string(),
                attr("String", Some("test"), None)
            )]))
            .unwrap()
        );
        assert_eq!(md5_of_attributes(&Attributes::new()), None);
    }

    #[test]
    fn attribute_names_select_as_sqs() {
        assert!(attribute_wanted(&["All"], "a"));
        assert!(attribute_wanted(&[".*"], "a"));
        assert!(attribute_wanted(&["a"], "a"));
        assert!(attribute_wanted(&["order.*"], "order.id"));
        assert!(!attribute_wanted(&["order.*"], "orders"));
        assert!(!attribute_wanted(&[], "a"));
    }
}
