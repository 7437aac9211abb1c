//! The client's calls under `/v1/queues`, `/v1/topics`, `/v1/subscriptions` and `/v1/mappings`.

use super::{check, path_segment, Client, ClientError, Json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Message counts of a queue.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
    pub delayed: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Queue {
    pub name: String,
    pub arn: String,
    pub visibility_timeout_s: u64,
    pub delay_s: u64,
    pub max_receive_count: Option<u64>,
    pub dead_letter_queue: Option<String>,
    pub created_ms: u64,
    pub messages: Option<QueueCounts>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QueueList {
    pub queues: Vec<Queue>,
}

/// The body of `POST /v1/queues`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueCreate {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_receive_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_letter_queue: Option<String>,
}

/// A message attribute, as SQS writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttribute {
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
}

pub type Attributes = BTreeMap<String, MessageAttribute>;

/// One message to send.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutgoingMessage {
    pub body: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sent {
    pub messages: Vec<SentId>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SentId {
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ReceivedMessage {
    pub id: String,
    pub receipt_handle: String,
    pub body: String,
    pub attributes: BTreeMap<String, Value>,
    pub sent_ms: u64,
    pub receive_count: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Received {
    pub messages: Vec<ReceivedMessage>,
}

/// What `POST …/receive` asks for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiveOptions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility_timeout: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Deleted {
    pub deleted: Vec<String>,
    pub failed: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Purged {
    pub purged: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Topic {
    pub name: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TopicList {
    pub topics: Vec<Topic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Subscription {
    pub id: String,
    pub topic: String,
    /// `function`, `queue` or `workflow`.
    pub kind: String,
    pub target: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Published {
    pub message_id: String,
    pub deliveries: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Mapping {
    #[serde(skip_serializing)]
    pub id: String,
    pub queue: String,
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batching_window_ms: Option<u64>,
    pub report_batch_item_failures: bool,
    #[serde(skip_serializing)]
    pub enabled: bool,
    #[serde(skip_serializing)]
    pub created_ms: u64,
}

/// A mapping from a table's stream to a function: what `create` sends (unset fields get the
/// server's defaults) and what the server answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamMapping {
    #[serde(skip_serializing)]
    pub id: String,
    pub table: String,
    pub function: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batching_window_ms: Option<u64>,
    /// `TRIM_HORIZON` or `LATEST`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starting_position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_record_age_s: Option<i64>,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    /// A queue's name (or a queue or topic ARN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
    #[serde(skip_serializing)]
    pub enabled: bool,
    #[serde(skip_serializing)]
    pub created_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MappingList {
    pub mappings: Vec<Mapping>,
    pub stream_mappings: Vec<StreamMapping>,
}

impl Client {
    fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<Json<T>, ClientError> {
        let url = self.endpoint(path);
        self.json(&url, self.http.get(&url))
    }

    fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Json<T>, ClientError> {
        let url = self.endpoint(path);
        self.json(&url, self.http.post(&url).json(body))
    }

    fn delete_path(&self, path: &str) -> Result<(), ClientError> {
        let url = self.endpoint(path);
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    pub fn create_queue(&self, q: &QueueCreate) -> Result<Json<Queue>, ClientError> {
        self.post_json("/v1/queues", q)
    }

    pub fn list_queues(&self) -> Result<Json<QueueList>, ClientError> {
        self.get_json("/v1/queues")
    }

    pub fn delete_queue(&self, name: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/v1/queues/{}", path_segment(name)))
    }

    pub fn send_messages(
        &self,
        queue: &str,
        messages: &[OutgoingMessage],
    ) -> Result<Json<Sent>, ClientError> {
        self.post_json(
            &format!("/v1/queues/{}/messages", path_segment(queue)),
            &serde_json::json!({ "messages": messages }),
        )
    }

    pub fn receive(
        &self,
        queue: &str,
        opts: &ReceiveOptions,
    ) -> Result<Json<Received>, ClientError> {
        self.post_json(&format!("/v1/queues/{}/receive", path_segment(queue)), opts)
    }

    pub fn delete_messages(
        &self,
        queue: &str,
        receipt_handles: &[String],
    ) -> Result<Json<Deleted>, ClientError> {
        self.post_json(
            &format!("/v1/queues/{}/delete", path_segment(queue)),
            &serde_json::json!({ "receipt_handles": receipt_handles }),
        )
    }

    pub fn purge(&self, queue: &str) -> Result<Json<Purged>, ClientError> {
        self.post_json(
            &format!("/v1/queues/{}/purge", path_segment(queue)),
            &serde_json::json!({}),
        )
    }

    pub fn create_topic(&self, name: &str) -> Result<Json<Topic>, ClientError> {
        self.post_json("/v1/topics", &serde_json::json!({ "name": name }))
    }

    pub fn list_topics(&self) -> Result<Json<TopicList>, ClientError> {
        self.get_json("/v1/topics")
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/v1/topics/{}", path_segment(name)))
    }

    /// Subscribes `{"function": …}` or `{"queue": …}`.
    pub fn subscribe(
        &self,
        topic: &str,
        kind: &str,
        target: &str,
    ) -> Result<Json<Subscription>, ClientError> {
        self.post_json(
            &format!("/v1/topics/{}/subscriptions", path_segment(topic)),
            &serde_json::json!({ kind: target }),
        )
    }

    pub fn subscriptions(&self, topic: &str) -> Result<Json<SubscriptionList>, ClientError> {
        self.get_json(&format!("/v1/topics/{}/subscriptions", path_segment(topic)))
    }

    pub fn unsubscribe(&self, id: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/v1/subscriptions/{}", path_segment(id)))
    }

    pub fn publish(
        &self,
        topic: &str,
        message: &str,
        subject: Option<&str>,
        attributes: &Attributes,
    ) -> Result<Json<Published>, ClientError> {
        let mut body = serde_json::json!({ "message": message, "attributes": attributes });
        if let Some(s) = subject {
            body["subject"] = Value::String(s.to_string());
        }
        self.post_json(
            &format!("/v1/topics/{}/publish", path_segment(topic)),
            &body,
        )
    }

    pub fn create_mapping(&self, m: &Mapping) -> Result<Json<Mapping>, ClientError> {
        self.post_json("/v1/mappings", m)
    }

    pub fn create_stream_mapping(
        &self,
        m: &StreamMapping,
    ) -> Result<Json<StreamMapping>, ClientError> {
        self.post_json("/v1/mappings", m)
    }

    pub fn list_mappings(&self) -> Result<Json<MappingList>, ClientError> {
        self.get_json("/v1/mappings")
    }

    pub fn delete_mapping(&self, id: &str) -> Result<(), ClientError> {
        self.delete_path(&format!("/v1/mappings/{}", path_segment(id)))
    }
}
