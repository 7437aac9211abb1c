//! Bucket notifications delivered: the node's [`ObjectEvents`] hook. For each configuration an
//! object change matched, it builds S3's event record (`{"Records":[…]}`, event version 2.1)
//! and stores it on a durable path before returning, so a request that answered 200 has its
//! notifications on disk:
//!
//! - a function (`arn:aws:lambda:REGION:NAMESPACE:function:NAME[:QUALIFIER]`) gets an
//!   asynchronous invocation (`Events::enqueue`, trigger `s3`: retries, dead letters);
//! - a queue (`arn:aws:sqs:REGION:NAMESPACE:QUEUE`) gets the record as a message;
//! - a topic (`arn:aws:sns:REGION:NAMESPACE:TOPIC`) gets it published (subject
//!   `Amazon S3 Notification`) to every subscriber;
//! - a state machine (`arn:aws:states:REGION:NAMESPACE:stateMachine:NAME`, a Lambent
//!   extension accepted in a `LambdaFunctionConfiguration`) gets an execution started with the
//!   record as input, through the same async path (target `workflow:NAME`).
//!
//! Configurations are checked when they are put ([`ObjectEvents::check`]): a destination must
//! be in this server's region and the bucket's namespace, and must exist. A queue or topic
//! deleted afterwards does not fail the write: its record goes through the async queue instead
//! (retried, then kept in the namespace's dead-letter queue, from where it can be re-driven).
//!
//! What the engine does not know about the request (who signed it, from where, its request id)
//! comes from [`RequestInfo`], set around each S3 request with [`RequestInfo::scope`].

use async_trait::async_trait;
use axum::http;
use lambent_gateway::App;
use lambent_objects::notification::{TargetConfig, TargetKind};
use lambent_objects::{EventName, NotificationConfig, ObjectError, ObjectEvent, ObjectEvents};
use lambent_queues::{Attributes, Outgoing, QueueError};
use lambent_store::events::WORKFLOW_TARGET_PREFIX;
use lambent_store::StoreError;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The subject of a topic message carrying an S3 event, as S3 sends it.
pub const TOPIC_SUBJECT: &str = "Amazon S3 Notification";

/// The trigger of the asynchronous invocations notifications start.
pub const TRIGGER: &str = "s3";

/// The longest one delivery may take before the request answers with an error (the client
/// then retries its write; deliveries are at least once).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// What S3's event record says about the request that made the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// `x-amz-request-id` (16 upper-case hex digits, as S3's).
    pub request_id: String,
    /// `x-amz-id-2`.
    pub host_id: String,
    pub source_ip: String,
    /// `userIdentity.principalId`: `AWS:<access key id>` of the signer.
    pub principal: Option<String>,
}

tokio::task_local! {
    static REQUEST: RequestInfo;
}

impl RequestInfo {
    /// A new request's ids, its caller's address (from the connection) and signer (from the
    /// SigV4 credential in `Authorization` or a presigned URL's query).
    pub fn of<B>(req: &http::Request<B>) -> RequestInfo {
        let source_ip = req
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_else(|| "127.0.0.1".into());
        RequestInfo {
            request_id: format!("{:016X}", rand::random::<u64>()),
            host_id: base64_of(&rand::random::<[u8; 32]>()),
            source_ip,
            principal: access_key_of(req.headers(), req.uri().query())
                .map(|key| format!("AWS:{key}")),
        }
    }

    /// Runs `fut` (serving one request) with this request's information visible to the
    /// notifications it causes.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        REQUEST.scope(self, fut).await
    }

    /// Puts the request's ids on its response, as S3 does.
    pub fn stamp(&self, headers: &mut http::HeaderMap) {
        for (name, value) in [
            ("x-amz-request-id", &self.request_id),
            ("x-amz-id-2", &self.host_id),
        ] {
            if let Ok(v) = http::HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
    }

    /// The request being served, or made-up ids for a change made outside an S3 request.
    fn current() -> RequestInfo {
        REQUEST
            .try_with(Clone::clone)
            .unwrap_or_else(|_| RequestInfo {
                request_id: format!("{:016X}", rand::random::<u64>()),
                host_id: base64_of(&rand::random::<[u8; 32]>()),
                source_ip: "127.0.0.1".into(),
                principal: None,
            })
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The access key id the S3 request was signed with (header, or presigned URL of SigV4 or
/// SigV2): the one S3's own authentication reads.
fn access_key_of(headers: &http::HeaderMap, query: Option<&str>) -> Option<String> {
    lambent_aws_api::sigv4::s3_access_key_id(headers, query.unwrap_or(""))
}

/// Where a configuration's ARN points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Function {
        name: String,
        qualifier: Option<String>,
    },
    Queue(String),
    Topic(String),
    /// A state machine (a Lambent extension: its ARN in a `LambdaFunctionConfiguration`, as
    /// S3 reaches Step Functions only through EventBridge); each event starts an execution.
    Workflow(String),
}

impl Destination {
    /// Parses a target's ARN, which must name this server's `region` and the bucket's
    /// `namespace` (the namespace plays the account); the error says why not.
    pub fn of(target: &TargetConfig, region: &str, namespace: &str) -> Result<Destination, String> {
        let parts: Vec<&str> = target.arn.split(':').collect();
        let (arn_region, account, rest) = match parts[..] {
            ["arn", "aws", _, r, a, ref rest @ ..] if !rest.is_empty() => (r, a, rest),
            _ => return Err("not an ARN".into()),
        };
        if arn_region != region {
            return Err(format!(
                "the destination is in region '{arn_region}', this server's is '{region}'"
            ));
        }
        if account != namespace {
            return Err(format!(
                "the destination belongs to namespace '{account}', the bucket to '{namespace}'"
            ));
        }
        let name_ok = |n: &str| !n.is_empty();
        match (target.kind, rest) {
            (TargetKind::LambdaFunction, ["function", name]) if name_ok(name) => {
                Ok(Destination::Function {
                    name: name.to_string(),
                    qualifier: None,
                })
            }
            (TargetKind::LambdaFunction, ["function", name, q]) if name_ok(name) && name_ok(q) => {
                Ok(Destination::Function {
                    name: name.to_string(),
                    qualifier: Some(q.to_string()),
                })
            }
            (TargetKind::Queue, [queue]) if name_ok(queue) => {
                Ok(Destination::Queue(queue.to_string()))
            }
            (TargetKind::Topic, [topic]) if name_ok(topic) => {
                Ok(Destination::Topic(topic.to_string()))
            }
            (TargetKind::LambdaFunction, ["stateMachine", name]) if name_ok(name) => {
                Ok(Destination::Workflow(name.to_string()))
            }
            _ => Err(
                "not a function, state machine, queue or topic ARN of its configuration's kind"
                    .into(),
            ),
        }
    }
}

/// What the object key looks like in an event: URL-encoded as S3 encodes it (form encoding,
/// a space as `+`, `/` kept), so `urllib.parse.unquote_plus` gives the key back.
pub fn encode_key(key: &str) -> String {
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'*')
        .remove(b'/')
        .remove(b' ');
    utf8_percent_encode(key, KEEP).to_string().replace(' ', "+")
}

/// `sequencer`s: upper-case hex of a number that grows with every event this process reports
/// (nanoseconds since the epoch, or one more than the last), so the events of one key order by
/// it across restarts too.
pub fn next_sequencer() -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("{next:016X}"),
            Err(seen) => last = seen,
        }
    }
}

/// An ISO-8601 time with milliseconds and `Z`, as S3's `eventTime`.
fn iso_time(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// S3's event (`{"Records":[record]}`) for `event` as `target` asked for it.
pub fn s3_event(
    event: &ObjectEvent,
    target: &TargetConfig,
    request: &RequestInfo,
    sequencer: &str,
) -> Value {
    let mut object = json!({"key": encode_key(&event.key), "sequencer": sequencer});
    if event.name != EventName::Delete {
        object["size"] = json!(event.size);
        object["eTag"] = json!(event.etag);
    }
    let principal = request
        .principal
        .clone()
        .unwrap_or_else(|| event.namespace.clone());
    json!({"Records": [{
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": event.region,
        "eventTime": iso_time(event.time_ms),
        "eventName": event.name.as_str().trim_start_matches("s3:"),
        "userIdentity": {"principalId": principal},
        "requestParameters": {"sourceIPAddress": request.source_ip},
        "responseElements": {
            "x-amz-request-id": request.request_id,
            "x-amz-id-2": request.host_id,
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": target.id,
            "bucket": {
                "name": event.bucket,
                "ownerIdentity": {"principalId": event.namespace},
                "arn": format!("arn:aws:s3:::{}", event.bucket),
            },
            "object": object,
        },
    }]})
}

/// How many deliveries went where.
#[derive(Debug, Default)]
pub struct Counts {
    /// Stored on their destination's durable path.
    pub delivered: AtomicU64,
    /// Whose queue or topic had gone: sent through the async queue (retried, then dead-lettered).
    pub rerouted: AtomicU64,
    /// Whose ARN no longer names a destination of the bucket's namespace and region: dropped.
    pub dropped: AtomicU64,
}

/// The node's hook: delivers object events to functions, queues and topics.
pub struct Notifier {
    app: Arc<App>,
    counts: Counts,
}

/// Why one delivery did not happen.
enum Undelivered {
    /// The destination does not exist (any more).
    Gone(String),
    /// Storing it failed: the request must not answer 200.
    Failed(String),
}

impl Notifier {
    pub fn new(app: Arc<App>) -> Notifier {
        Notifier {
            app,
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    fn region(&self) -> &str {
        self.app.events.region()
    }

    /// Why `target` cannot be delivered to from `namespace`'s buckets, if it cannot.
    async fn unusable(&self, namespace: &str, target: &TargetConfig) -> Option<String> {
        let destination = match Destination::of(target, self.region(), namespace) {
            Ok(d) => d,
            Err(why) => return Some(why),
        };
        let found = match &destination {
            Destination::Function { name, qualifier } => {
                match self.app.registry.find(namespace, name).await {
                    Ok(Some(_)) => match qualifier {
                        Some(q) => self
                            .app
                            .registry
                            .resolve(namespace, name, Some(q))
                            .map(drop)
                            .map_err(|e| e.to_string()),
                        None => Ok(()),
                    },
                    Ok(None) => Err(format!("function '{name}' does not exist")),
                    Err(e) => Err(e.to_string()),
                }
            }
            Destination::Queue(q) => self
                .app
                .queues
                .queue(namespace, q)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Destination::Topic(t) => match self.app.queues.list_topics(namespace).await {
                Ok(topics) if topics.iter().any(|x| x.name == *t) => Ok(()),
                Ok(_) => Err(format!("topic '{t}' does not exist")),
                Err(e) => Err(e.to_string()),
            },
            Destination::Workflow(w) => match self.app.workflows.get() {
                None => Err("this node runs no workflows".into()),
                Some(hook) => match hook.exists(namespace, w).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(format!("state machine '{w}' does not exist")),
                    Err(e) => Err(e.to_string()),
                },
            },
        };
        found.err()
    }

    /// Stores one event for one destination.
    async fn deliver(
        &self,
        namespace: &str,
        destination: &Destination,
        payload: String,
    ) -> Result<(), Undelivered> {
        let failed = |e: &dyn std::fmt::Display| Undelivered::Failed(e.to_string());
        let gone_or_failed = |e: QueueError| match e {
            QueueError::QueueNotFound(_) | QueueError::TopicNotFound(_) => {
                Undelivered::Gone(e.to_string())
            }
            e => failed(&e),
        };
        match destination {
            Destination::Function { name, .. } => self
                .app
                .events
                .enqueue(namespace, name, payload.into_bytes(), TRIGGER, None)
                .await
                .map(drop)
                .map_err(|e| failed(&e)),
            // Through the durable async path too: the worker starts one execution per event,
            // named after it, so a redelivery starts none twice.
            Destination::Workflow(w) => self
                .app
                .events
                .enqueue(
                    namespace,
                    &format!("{WORKFLOW_TARGET_PREFIX}{w}"),
                    payload.into_bytes(),
                    TRIGGER,
                    None,
                )
                .await
                .map(drop)
                .map_err(|e| failed(&e)),
            Destination::Queue(queue) => {
                let message = Outgoing {
                    body: payload,
                    ..Default::default()
                };
                self.app
                    .queues
                    .send(namespace, queue, vec![message])
                    .await
                    .map(drop)
                    .map_err(gone_or_failed)
            }
            Destination::Topic(topic) => self
                .app
                .queues
                .publish(
                    namespace,
                    topic,
                    &payload,
                    Some(TOPIC_SUBJECT),
                    &Attributes::new(),
                    None,
                )
                .await
                .map(drop)
                .map_err(gone_or_failed),
        }
    }

    /// Delivers one event to one configuration's destination; an error only when it could not
    /// be stored anywhere.
    async fn send(
        &self,
        event: &ObjectEvent,
        target: &TargetConfig,
        payload: String,
    ) -> Result<(), String> {
        let destination = match Destination::of(target, self.region(), &event.namespace) {
            Ok(d) => d,
            Err(why) => {
                self.counts.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "bucket '{}': notification for '{}' dropped: {}: {why}",
                    event.bucket,
                    event.key,
                    target.arn
                );
                return Ok(());
            }
        };
        match self
            .deliver(&event.namespace, &destination, payload.clone())
            .await
        {
            Ok(()) => {
                self.counts.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(Undelivered::Failed(e)) => Err(e),
            Err(Undelivered::Gone(why)) => {
                // Kept in the async queue: retried, then a dead letter that can be re-driven
                // once the queue or topic is back.
                let via = match &destination {
                    Destination::Queue(q) => format!("queue:{q}"),
                    Destination::Topic(t) => format!("topic:{t}"),
                    Destination::Function { name, .. } => name.clone(),
                    Destination::Workflow(w) => format!("{WORKFLOW_TARGET_PREFIX}{w}"),
                };
                self.counts.rerouted.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "bucket '{}': notification for '{}' to {}: {why}; kept in the async queue",
                    event.bucket,
                    event.key,
                    target.arn
                );
                self.app
                    .events
                    .enqueue(&event.namespace, &via, payload.into_bytes(), TRIGGER, None)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

#[async_trait]
impl ObjectEvents for Notifier {
    async fn record(&self, event: ObjectEvent) -> Result<(), ObjectError> {
        let request = RequestInfo::current();
        let sequencer = next_sequencer();
        for target in &event.targets {
            let payload = s3_event(&event, target, &request, &sequencer).to_string();
            let sent = tokio::time::timeout(DELIVERY_TIMEOUT, self.send(&event, target, payload))
                .await
                .unwrap_or_else(|_| Err("timed out".into()));
            if let Err(e) = sent {
                return Err(ObjectError::Store(StoreError::Database(format!(
                    "the change is stored but its notification to {} could not be: {e}",
                    target.arn
                ))));
            }
        }
        Ok(())
    }

    async fn check(&self, namespace: &str, config: &NotificationConfig) -> Result<(), ObjectError> {
        let mut refused = Vec::new();
        for target in &config.targets {
            if let Some(why) = self.unusable(namespace, target).await {
                refused.push(format!("{} ({why})", target.arn));
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        Err(ObjectError::InvalidArgument(format!(
            "Unable to validate the following destination configurations: {}",
            refused.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(kind: TargetKind, arn: &str) -> TargetConfig {
        TargetConfig {
            kind,
            id: "cfg".into(),
            arn: arn.into(),
            events: vec!["s3:ObjectCreated:*".into()],
            prefix: None,
            suffix: None,
        }
    }

    fn event(name: EventName, key: &str) -> ObjectEvent {
        ObjectEvent {
            name,
            bucket: "photos".into(),
            namespace: "default".into(),
            region: "us-east-1".into(),
            key: key.into(),
            size: 42,
            etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
            time_ms: 1_700_000_000_123,
            targets: vec![],
        }
    }

    fn request() -> RequestInfo {
        RequestInfo {
            request_id: "C3D13FE58DE4C810".into(),
            host_id: "abc=".into(),
            source_ip: "10.0.0.7".into(),
            principal: Some("AWS:LKIAEXAMPLE".into()),
        }
    }

    #[test]
    fn arns_route_to_their_destination_in_the_buckets_namespace_only() {
        let of = |kind, arn: &str| Destination::of(&target(kind, arn), "us-east-1", "default");
        assert_eq!(
            of(
                TargetKind::LambdaFunction,
                "arn:aws:lambda:us-east-1:default:function:thumb"
            ),
            Ok(Destination::Function {
                name: "thumb".into(),
                qualifier: None
            })
        );
        assert_eq!(
            of(
                TargetKind::LambdaFunction,
                "arn:aws:lambda:us-east-1:default:function:thumb:live"
            ),
            Ok(Destination::Function {
                name: "thumb".into(),
                qualifier: Some("live".into())
            })
        );
        assert_eq!(
            of(TargetKind::Queue, "arn:aws:sqs:us-east-1:default:uploads"),
            Ok(Destination::Queue("uploads".into()))
        );
        assert_eq!(
            of(TargetKind::Topic, "arn:aws:sns:us-east-1:default:news"),
            Ok(Destination::Topic("news".into()))
        );
        let refused = |kind, arn: &str, why: &str| {
            let e = of(kind, arn).unwrap_err();
            assert!(e.contains(why), "{arn}: {e}");
        };
        refused(
            TargetKind::Queue,
            "arn:aws:sqs:us-east-1:other:uploads",
            "namespace 'other'",
        );
        refused(
            TargetKind::Queue,
            "arn:aws:sqs:eu-west-1:default:uploads",
            "region 'eu-west-1'",
        );
        refused(
            TargetKind::LambdaFunction,
            "arn:aws:lambda:us-east-1:default:function:",
            "kind",
        );
        refused(
            TargetKind::LambdaFunction,
            "arn:aws:lambda:us-east-1:default:function:a:b:c",
            "kind",
        );
        refused(
            TargetKind::Topic,
            "arn:aws:sns:us-east-1:default:a:b",
            "kind",
        );
        refused(TargetKind::Queue, "sqs:uploads", "not an ARN");
    }

    #[test]
    fn keys_are_encoded_as_s3_encodes_them() {
        assert_eq!(encode_key("in/cat.jpg"), "in/cat.jpg");
        assert_eq!(encode_key("my photo (1).jpg"), "my+photo+%281%29.jpg");
        assert_eq!(encode_key("a+b=c&d"), "a%2Bb%3Dc%26d");
        assert_eq!(encode_key("ü"), "%C3%BC");
    }

    #[test]
    fn sequencers_grow_and_order_as_strings() {
        let a = next_sequencer();
        let b = next_sequencer();
        assert_eq!(a.len(), 16);
        assert!(b > a, "{a} then {b}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }

    #[test]
    fn a_put_event_has_s3s_shape() {
        let t = target(
            TargetKind::LambdaFunction,
            "arn:aws:lambda:us-east-1:default:function:f",
        );
        let v = s3_event(
            &event(EventName::Put, "in/my cat.jpg"),
            &t,
            &request(),
            "0000000000000001",
        );
        let r = &v["Records"][0];
        assert_eq!(v["Records"].as_array().unwrap().len(), 1);
        assert_eq!(r["eventVersion"], "2.1");
        assert_eq!(r["eventSource"], "aws:s3");
        assert_eq!(r["awsRegion"], "us-east-1");
        assert_eq!(r["eventTime"], "2023-11-14T22:13:20.123Z");
        assert_eq!(r["eventName"], "ObjectCreated:Put");
        assert_eq!(r["userIdentity"]["principalId"], "AWS:LKIAEXAMPLE");
        assert_eq!(r["requestParameters"]["sourceIPAddress"], "10.0.0.7");
        assert_eq!(
            r["responseElements"]["x-amz-request-id"],
            "C3D13FE58DE4C810"
        );
        assert_eq!(r["responseElements"]["x-amz-id-2"], "abc=");
        let s3 = &r["s3"];
        assert_eq!(s3["s3SchemaVersion"], "1.0");
        assert_eq!(s3["configurationId"], "cfg");
        assert_eq!(s3["bucket"]["name"], "photos");
        assert_eq!(s3["bucket"]["ownerIdentity"]["principalId"], "default");
        assert_eq!(s3["bucket"]["arn"], "arn:aws:s3:::photos");
        assert_eq!(s3["object"]["key"], "in/my+cat.jpg");
        assert_eq!(s3["object"]["size"], 42);
        assert_eq!(s3["object"]["eTag"], "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(s3["object"]["sequencer"], "0000000000000001");
    }

    #[test]
    fn a_removal_has_no_size_or_etag() {
        let t = target(TargetKind::Queue, "arn:aws:sqs:us-east-1:default:q");
        let v = s3_event(&event(EventName::Delete, "k"), &t, &request(), "01");
        let r = &v["Records"][0];
        assert_eq!(r["eventName"], "ObjectRemoved:Delete");
        let object = r["s3"]["object"].as_object().unwrap();
        assert_eq!(
            object.keys().map(String::as_str).collect::<Vec<_>>(),
            ["key", "sequencer"]
        );
    }

    #[test]
    fn the_signer_is_read_from_header_or_presigned_query() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=LKIA1/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=x"
                .parse()
                .unwrap(),
        );
        assert_eq!(access_key_of(&headers, None).as_deref(), Some("LKIA1"));
        let q =
            "X-Amz-Credential=LKIA2%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x";
        assert_eq!(
            access_key_of(&http::HeaderMap::new(), Some(q)).as_deref(),
            Some("LKIA2")
        );
        assert_eq!(access_key_of(&http::HeaderMap::new(), None), None);
    }
}
