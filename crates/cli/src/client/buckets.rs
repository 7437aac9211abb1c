//! The client's calls under `/v1/buckets`: buckets, objects (streamed both ways) and
//! notification configurations.

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
    pub workflow: Option<String>,
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
    /// Whether both send to the same function, workflow, queue or topic.
    pub fn same_target(&self, other: &NotificationConfiguration) -> bool {
        let target = |c: &Self| {
            (
                c.function.clone(),
                c.workflow.clone(),
                c.queue.clone(),
                c.topic.clone(),
            )
        };
        target(self) == target(other)
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
    format!("{}/notification", bucket_path(bucket))
}

/// A bucket as the API shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BucketInfo {
    pub name: String,
    pub region: String,
    pub created_ms: u64,
}

/// `GET /v1/buckets`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BucketList {
    pub buckets: Vec<BucketInfo>,
}

/// `DELETE /v1/buckets/{bucket}`'s answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct BucketDeleted {
    /// Objects deleted first (`force`).
    pub deleted_objects: u64,
}

/// An object as the API shows it (ETag without quotes).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// One page of `GET /v1/buckets/{bucket}/objects`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ObjectPage {
    pub objects: Vec<ObjectInfo>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// Where the next page starts, when `truncated`.
    pub next_start_after: Option<String>,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ObjectQuery {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub start_after: Option<String>,
    /// 1-1000 per page; `None`: the server's maximum.
    pub max_keys: Option<usize>,
}

impl Client {
    /// `GET /v1/buckets`.
    pub fn list_buckets(&self) -> Result<Json<BucketList>, ClientError> {
        let url = self.endpoint("/v1/buckets");
        self.json(&url, self.http().get(&url))
    }

    /// `PUT /v1/buckets/{bucket}`, in `region` or the server's.
    pub fn create_bucket(
        &self,
        bucket: &str,
        region: Option<&str>,
    ) -> Result<Json<BucketInfo>, ClientError> {
        let url = self.endpoint(&bucket_path(bucket));
        let body = serde_json::json!({ "region": region });
        self.json(&url, self.http().put(&url).json(&body))
    }

    /// `DELETE /v1/buckets/{bucket}`; with `force`, its objects and uploads go first.
    pub fn delete_bucket(
        &self,
        bucket: &str,
        force: bool,
    ) -> Result<Json<BucketDeleted>, ClientError> {
        let url = format!(
            "{}{}",
            self.endpoint(&bucket_path(bucket)),
            if force { "?force=true" } else { "" }
        );
        self.json(&url, self.http().delete(&url))
    }

    /// One page of a bucket's keys.
    pub fn list_objects(
        &self,
        bucket: &str,
        q: &ObjectQuery,
    ) -> Result<Json<ObjectPage>, ClientError> {
        let mut pairs = vec![("prefix", q.prefix.clone())];
        if let Some(d) = &q.delimiter {
            pairs.push(("delimiter", d.clone()));
        }
        if let Some(s) = &q.start_after {
            pairs.push(("start_after", s.clone()));
        }
        if let Some(m) = q.max_keys {
            pairs.push(("max_keys", m.to_string()));
        }
        let url = format!(
            "{}/objects{}",
            self.endpoint(&bucket_path(bucket)),
            super::query_string(&pairs)
        );
        self.json(&url, self.http().get(&url))
    }

    /// `PUT /v1/buckets/{bucket}/objects/{key}`: `body` is streamed (with its length if it
    /// has one); with `only_new`, an existing object is `PreconditionFailed`.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: reqwest::blocking::Body,
        content_type: Option<&str>,
        only_new: bool,
    ) -> Result<Json<ObjectInfo>, ClientError> {
        let url = self.endpoint(&object_path(bucket, key));
        let mut req = self.http().put(&url).body(body);
        if let Some(t) = content_type {
            req = req.header(reqwest::header::CONTENT_TYPE, t);
        }
        if only_new {
            req = req.header(reqwest::header::IF_NONE_MATCH, "*");
        }
        self.json(&url, req)
    }

    /// `GET /v1/buckets/{bucket}/objects/{key}`: the response, to be read as a stream.
    pub fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let url = self.endpoint(&object_path(bucket, key));
        super::check(&url, self.send(&url, self.http().get(&url))?)
    }

    /// `DELETE /v1/buckets/{bucket}/objects/{key}` (a missing key is `NoSuchKey`).
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&object_path(bucket, key));
        super::check(&url, self.send(&url, self.http().delete(&url))?).map(|_| ())
    }
}

fn bucket_path(bucket: &str) -> String {
    format!("/v1/buckets/{}", path_segment(bucket))
}

/// The key as one path segment (its slashes encoded too).
fn object_path(bucket: &str, key: &str) -> String {
    format!("{}/objects/{}", bucket_path(bucket), path_segment(key))
}
