//! Where queues, topics and event-source mappings are kept: the [`QueueStore`] seam and its
//! records. The semantics (validation, long polling, fan-out, mappings) live in the
//! `lambent-queues` crate; a store only has to make each operation atomic.

use crate::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A queue's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    pub namespace: String,
    pub name: String,
    /// How long a received message stays invisible unless deleted.
    pub visibility_timeout_s: u32,
    /// How long a sent message stays invisible before its first receive.
    pub delay_s: u32,
    /// With `dead_letter_queue`: a message received this many times without being deleted
    /// moves there on its next receive.
    pub max_receive_count: Option<u32>,
    pub dead_letter_queue: Option<String>,
    pub created_ms: i64,
    /// Messages sent longer ago than this are dropped (SQS's `MessageRetentionPeriod`).
    #[serde(default = "default_retention")]
    pub retention_s: u32,
    /// The largest message (body and attributes) a send may add.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: u32,
    /// How long a receive that does not say waits for messages (long polling by default).
    #[serde(default)]
    pub receive_wait_s: u32,
    /// SQS attributes kept as given and reported back (`RedriveAllowPolicy`, `Policy`, the
    /// encryption settings), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Cost-allocation tags.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// When its settings last changed (its creation until then).
    #[serde(default)]
    pub modified_ms: i64,
}

/// SQS's default retention: 4 days.
pub const DEFAULT_RETENTION_S: u32 = 345_600;
/// SQS's largest message: 256 KB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u32 = 262_144;

impl Default for QueueConfig {
    /// SQS's defaults (a 30 s visibility timeout, no delay, 4 days' retention, 256 KB
    /// messages, no long polling), with no namespace or name.
    fn default() -> QueueConfig {
        QueueConfig {
            namespace: String::new(),
            name: String::new(),
            visibility_timeout_s: 30,
            delay_s: 0,
            max_receive_count: None,
            dead_letter_queue: None,
            created_ms: 0,
            retention_s: DEFAULT_RETENTION_S,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            receive_wait_s: 0,
            attributes: BTreeMap::new(),
            tags: BTreeMap::new(),
            modified_ms: 0,
        }
    }
}

fn default_retention() -> u32 {
    DEFAULT_RETENTION_S
}

fn default_max_message_bytes() -> u32 {
    DEFAULT_MAX_MESSAGE_BYTES
}

/// A message attribute, in the shape SQS events use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageAttribute {
    /// `String`, `Number` or `Binary` (optionally with a `.custom` suffix).
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    /// Base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
}

pub type Attributes = BTreeMap<String, MessageAttribute>;

/// A message to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    pub id: String,
    pub body: String,
    pub attributes: Attributes,
    /// Milliseconds since the epoch before which it cannot be received.
    pub visible_at_ms: i64,
    /// The sender's trace context (SQS's `AWSTraceHeader`), continued by whoever processes it.
    pub trace: Option<lambent_core::TraceContext>,
}

/// A message as a receive hands it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: Attributes,
    pub sent_ms: i64,
    pub receive_count: u32,
    pub first_receive_ms: i64,
    /// The sender's trace context, as sent ([`NewMessage::trace`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<lambent_core::TraceContext>,
}

impl Message {
    /// Hands the message out under `receipt`: one more receive, the first receive's time.
    pub fn received(&mut self, receipt: &str, now_ms: i64) {
        self.receive_count += 1;
        if self.first_receive_ms == 0 {
            self.first_receive_ms = now_ms;
        }
        self.receipt_handle = receipt.to_string();
    }
}

/// Approximate counts of a queue's messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    /// Receivable now.
    pub visible: u64,
    /// Received and not yet deleted nor visible again.
    pub in_flight: u64,
    /// Sent with a delay that has not passed.
    pub delayed: u64,
}

/// What a receive asks for.
#[derive(Debug, Clone)]
pub struct ReceiveRequest {
    pub namespace: String,
    pub queue: String,
    pub max: usize,
    pub visibility_timeout_ms: i64,
    pub now_ms: i64,
    /// Fresh receipt handles, one per message that may be handed out (at least `max`).
    pub receipts: Vec<String>,
}

/// A topic subscription's target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "target")]
pub enum Endpoint {
    Function(String),
    Queue(String),
    /// A workflow: each notification starts an execution (through the async event queue).
    Workflow(String),
}

impl Endpoint {
    /// How the stores keep it: its kind (`function`, `queue`, `workflow`) and its target.
    pub fn kind_and_target(&self) -> (&'static str, &str) {
        match self {
            Endpoint::Function(f) => ("function", f),
            Endpoint::Queue(q) => ("queue", q),
            Endpoint::Workflow(w) => ("workflow", w),
        }
    }

    /// The inverse of [`Endpoint::kind_and_target`] (an unknown kind reads as a function, as
    /// rows written before kinds other than `queue` existed).
    pub fn from_kind(kind: &str, target: String) -> Endpoint {
        match kind {
            "queue" => Endpoint::Queue(target),
            "workflow" => Endpoint::Workflow(target),
            _ => Endpoint::Function(target),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub namespace: String,
    pub topic: String,
    #[serde(flatten)]
    pub endpoint: Endpoint,
    pub created_ms: i64,
    /// SNS subscription attributes (`RawMessageDelivery`, `FilterPolicy`,
    /// `FilterPolicyScope`), as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    pub namespace: String,
    pub name: String,
    pub created_ms: i64,
}

/// An event-source mapping: a function run on a queue's messages in batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    pub id: String,
    pub namespace: String,
    pub queue: String,
    pub function: String,
    pub batch_size: u32,
    pub batching_window_ms: u64,
    /// `FunctionResponseTypes: ["ReportBatchItemFailures"]`: honour `batchItemFailures`.
    pub report_batch_item_failures: bool,
    /// A disabled mapping is kept but not polled (mappings stored before this existed are
    /// enabled).
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub created_ms: i64,
}

fn enabled() -> bool {
    true
}

/// Durable queues, topics and mappings.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Creates a queue; false if one of that name exists (it is left unchanged).
    async fn create_queue(&self, q: &QueueConfig) -> Result<bool, StoreError>;
    async fn get_queue(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<QueueConfig>, StoreError>;
    async fn list_queues(&self, namespace: &str) -> Result<Vec<QueueConfig>, StoreError>;
    /// Replaces an existing queue's settings (all but its creation time: visibility timeout,
    /// delay, redrive, retention, sizes, attributes, tags); false if there is no such queue.
    /// Its messages are kept.
    async fn update_queue(&self, q: &QueueConfig) -> Result<bool, StoreError>;
    /// Deletes a queue with its messages and mappings; false if there was none.
    async fn delete_queue(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;
    /// Counts a queue's messages, leaving out those older than its retention.
    async fn queue_counts(
        &self,
        namespace: &str,
        name: &str,
        now_ms: i64,
    ) -> Result<QueueCounts, StoreError>;

    /// Appends messages to a queue, all or none.
    async fn send(
        &self,
        namespace: &str,
        queue: &str,
        messages: &[NewMessage],
    ) -> Result<(), StoreError> {
        let deliveries: Vec<(String, NewMessage)> = messages
            .iter()
            .map(|m| (queue.to_string(), m.clone()))
            .collect();
        self.send_to_queues(namespace, &deliveries).await
    }
    /// Hands out up to `max` visible messages, oldest first, making them invisible for the
    /// visibility timeout. Messages over the queue's `max_receive_count` move to its dead-letter
    /// queue instead, in the same transaction; messages older than its retention are deleted
    /// first.
    async fn receive(&self, req: &ReceiveRequest) -> Result<Vec<Message>, StoreError>;
    /// Deletes messages by receipt handle; returns the handles that matched.
    async fn delete_messages(
        &self,
        namespace: &str,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<String>, StoreError>;
    /// Makes a received message visible at `visible_at_ms`; false for an unknown handle.
    async fn change_visibility(
        &self,
        namespace: &str,
        queue: &str,
        receipt: &str,
        visible_at_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes every message of a queue; returns how many.
    async fn purge(&self, namespace: &str, queue: &str) -> Result<u64, StoreError>;
    /// Moves up to `max` visible messages of queue `from` to queue `to` (SQS's message move
    /// task: a dead-letter queue's messages back to their source), oldest first, each as if
    /// sent now and never received (its id, body and attributes kept). One statement: a message
    /// moves once, and is in one queue or the other whatever fails. Returns how many moved.
    async fn move_messages(
        &self,
        namespace: &str,
        from: &str,
        to: &str,
        max: usize,
        now_ms: i64,
    ) -> Result<u64, StoreError>;

    async fn create_topic(&self, t: &Topic) -> Result<bool, StoreError>;
    async fn list_topics(&self, namespace: &str) -> Result<Vec<Topic>, StoreError>;
    /// Deletes a topic and its subscriptions; false if there was none.
    async fn delete_topic(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;
    async fn subscribe(&self, s: &Subscription) -> Result<(), StoreError>;
    async fn subscriptions(
        &self,
        namespace: &str,
        topic: &str,
    ) -> Result<Vec<Subscription>, StoreError>;
    async fn unsubscribe(&self, namespace: &str, id: &str) -> Result<bool, StoreError>;
    /// Replaces a subscription's attributes; false if there is no such subscription.
    async fn set_subscription_attributes(
        &self,
        namespace: &str,
        id: &str,
        attributes: &BTreeMap<String, String>,
    ) -> Result<bool, StoreError>;
    /// Delivers a topic message to its queue subscriptions (one `NewMessage` per queue, in
    /// order of `queues`), all or none.
    async fn send_to_queues(
        &self,
        namespace: &str,
        deliveries: &[(String, NewMessage)],
    ) -> Result<(), StoreError>;

    async fn create_mapping(&self, m: &Mapping) -> Result<(), StoreError>;
    async fn all_mappings(&self) -> Result<Vec<Mapping>, StoreError>;
    /// Replaces the settings of the mapping with `m.id` in `m.namespace`; false if there is
    /// none.
    async fn update_mapping(&self, m: &Mapping) -> Result<bool, StoreError>;
    async fn delete_mapping(&self, namespace: &str, id: &str) -> Result<bool, StoreError>;
}
