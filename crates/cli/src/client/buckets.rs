//! The client's calls under `/v1/buckets`.

use super::{path_segment, Client, ClientError, Json};
use serde::{Deserialize, Serialize};

/// One notification configuration of a bucket: exactly one of `function`, `queue`, `topic`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Shown by the server; not sent back.
    #[serde(skip_serializing)]
    pub arn: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

impl NotificationConfiguration {
    /// Whether both send to the same function, queue or topic.
    pub fn same_target(&self, other: &NotificationConfiguration) -> bool {
        (&self.function, &self.queue, &self.topic) == (&other.function, &other.queue, &other.topic)
    }
}

/// A bucket's notification configurations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Notifications {
    pub configurations: Vec<NotificationConfiguration>,
}

impl Client {
    /// `GET /v1/buckets/{bucket}/notification`.
    pub fn bucket_notifications(&self, bucket: &str) -> Result<Json<Notifications>, ClientError> {
        let url = self.endpoint(&notification_path(bucket));
        self.json(&url, self.http().get(&url))
    }

    /// `PUT /v1/buckets/{bucket}/notification`: replaces every configuration.
    pub fn put_bucket_notifications(
        &self,
        bucket: &str,
        notifications: &Notifications,
    ) -> Result<Json<Notifications>, ClientError> {
        let url = self.endpoint(&notification_path(bucket));
        self.json(&url, self.http().put(&url).json(notifications))
    }
}

fn notification_path(bucket: &str) -> String {
    format!("/v1/buckets/{}/notification", path_segment(bucket))
}
