//! Metadata of the S3-compatible object store: the [`ObjectStore`] seam. Buckets (a global name
//! owned by one namespace), objects (bucket, key → size, ETag, attributes, where the bytes are),
//! multipart uploads and their parts. The bytes themselves live behind the object engine's data
//! seam; the store only keeps their [`Segment`] locators.
//!
//! Keys are opaque: stored as bytes and ordered bytewise (UTF-8 byte order, as S3 lists them),
//! so a listing is one index range scan per page (plus one per common prefix it skips), never a
//! load of every key. The delimiter walk is [`ObjectStore::list_objects`], shared by every
//! backend over their [`ObjectStore::scan_objects`].

use crate::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A bucket. Its name is unique across namespaces, as on S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bucket {
    pub name: String,
    /// The namespace of the key that created it.
    pub namespace: String,
    pub created_ms: i64,
    /// Its location constraint (the region it was created in).
    pub region: String,
    /// The notification configuration, as the engine's JSON; `None`: none set.
    pub notification: Option<String>,
}

/// Checksums of an object's (or a part's) bytes, each base64 as S3 returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32c: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// What is stored about an object besides its size and ETag: the content type, the standard
/// headers, user metadata and checksums (kept as one JSON column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectAttrs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// The `Expires` header as given (an HTTP date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// `x-amz-meta-*` (names lower-case, without the prefix).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub checksums: Checksums,
    /// The checksum algorithm asked for at a multipart upload's creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// Completed from this many parts (the `-N` of its ETag); `None`: a single PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
}

/// One stretch of an object's bytes in the data store: a single PUT has one, a completed
/// multipart upload one per part, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub locator: String,
    pub size: u64,
}

/// An object's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRecord {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    /// With its quotes, as S3 returns it.
    pub etag: String,
    pub last_modified_ms: i64,
    pub attrs: ObjectAttrs,
    pub data: Vec<Segment>,
}

/// An in-progress multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub id: String,
    pub bucket: String,
    pub key: String,
    pub initiated_ms: i64,
    /// The attributes the completed object gets.
    pub attrs: ObjectAttrs,
}

/// An uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub upload_id: String,
    /// 1..=10000.
    pub number: u32,
    pub size: u64,
    /// With its quotes.
    pub etag: String,
    pub checksums: Checksums,
    pub locator: String,
    pub last_modified_ms: i64,
}

/// When a write may replace what is stored (S3's conditional writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteIf {
    Always,
    /// `If-None-Match: *`: only if no object has the key.
    Absent,
    /// `If-Match`: only if the stored object has this ETag (with its quotes).
    EtagIs(String),
}

impl WriteIf {
    /// Whether the condition holds for what is stored under the key.
    pub fn holds(&self, current: Option<&ObjectRecord>) -> bool {
        match self {
            WriteIf::Always => true,
            WriteIf::Absent => current.is_none(),
            WriteIf::EtagIs(etag) => current.is_some_and(|c| &c.etag == etag),
        }
    }
}

/// What an object write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored; the object it replaced, whose data the caller deletes.
    Stored {
        replaced: Option<Box<ObjectRecord>>,
    },
    NoSuchBucket,
    PreconditionFailed,
}

/// What creating a bucket did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketCreated {
    Created,
    /// The name is taken (by this namespace or another).
    Exists(Bucket),
}

/// What deleting a bucket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BucketDeleted {
    Deleted,
    Missing,
    /// It still holds objects or multipart uploads.
    NotEmpty,
}

/// What putting a part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartWritten {
    /// Stored; the part it replaced (same number), whose data the caller deletes.
    Stored {
        replaced: Option<Part>,
    },
    NoSuchUpload,
}

/// What completing an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completed {
    /// The object is stored and the upload gone; the data of the object it replaced and of the
    /// parts not used, for the caller to delete.
    Stored {
        replaced: Option<Box<ObjectRecord>>,
        unused: Vec<String>,
    },
    NoSuchUpload,
    PreconditionFailed,
}

/// A page of keys in a bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    /// List keys after this one (a key or a common prefix returned earlier: a common prefix
    /// skips every key under it).
    pub start_after: Option<String>,
    pub delimiter: Option<String>,
    pub max_keys: usize,
}

/// One page: objects and common prefixes together count toward `max_keys`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub objects: Vec<ObjectRecord>,
    pub common_prefixes: Vec<String>,
    pub truncated: bool,
    /// The last key or common prefix of the page (`start_after` of the next one).
    pub last: Option<String>,
}

/// Above every key (UTF-8 never holds the byte 0xFF): the end of an unbounded key range, so a
/// scan is always one bounded index range.
pub const KEYS_END: &[u8] = &[0xFF];

/// The smallest byte string above every string that starts with `prefix`; `None`: unbounded
/// (every byte of the prefix is 0xFF, which UTF-8 never holds).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest byte string above `key`.
pub fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}

/// The common prefix `key` rolls up into: `prefix` plus the rest up to and including the first
/// `delimiter` after it.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: Option<&str>) -> Option<&'k str> {
    let delimiter = delimiter.filter(|d| !d.is_empty())?;
    let rest = key.get(prefix.len()..)?;
    let at = rest.find(delimiter)?;
    Some(&key[..prefix.len() + at + delimiter.len()])
}

/// Deletes object data whose records someone else removed: the object engine's, for a
/// namespace's purge, which deletes the records of its objects and parts in the store and
/// hands over the locators they referred to (`tenants::Purged::object_data`).
#[async_trait]
pub trait UnreferencedData: Send + Sync + 'static {
    /// Deletes the data of `locators` (missing data is no error; one that cannot be deleted
    /// is left to the data store's garbage collection).
    async fn discard(&self, locators: &[String]);
}

/// Buckets, objects, multipart uploads and parts.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates a bucket unless its name is taken.
    async fn create_bucket(&self, bucket: &Bucket) -> Result<BucketCreated, StoreError>;
    async fn get_bucket(&self, name: &str) -> Result<Option<Bucket>, StoreError>;
    /// A namespace's buckets by name.
    async fn list_buckets(&self, namespace: &str) -> Result<Vec<Bucket>, StoreError>;
    /// Deletes an empty bucket.
    async fn delete_bucket(&self, name: &str) -> Result<BucketDeleted, StoreError>;
    /// Sets (or with `None` clears) a bucket's notification configuration; false if no bucket.
    async fn set_bucket_notification(
        &self,
        name: &str,
        notification: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Stores an object's metadata (its data already durable), if `condition` holds.
    async fn put_object(
        &self,
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Written, StoreError>;
    async fn get_object(&self, bucket: &str, key: &str)
        -> Result<Option<ObjectRecord>, StoreError>;
    /// Deletes an object's metadata; returns it (for its data to be deleted).
    async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, StoreError>;
    /// Up to `limit` objects of a bucket with `from <= key < to` (bytewise), in key order: one
    /// index range scan.
    async fn scan_objects(
        &self,
        bucket: &str,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<ObjectRecord>, StoreError>;

    /// Records a new multipart upload; false if the bucket is gone.
    async fn create_upload(&self, upload: &Upload) -> Result<bool, StoreError>;
    async fn get_upload(&self, bucket: &str, id: &str) -> Result<Option<Upload>, StoreError>;
    /// Uploads of a bucket whose key starts with `prefix`, ordered by (key, id), after the
    /// (key, id) marker.
    async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Upload>, StoreError>;
    /// Stores a part (replacing one with the same number).
    async fn put_part(&self, part: &Part) -> Result<PartWritten, StoreError>;
    /// Parts of an upload by number, after `after`.
    async fn list_parts(
        &self,
        upload_id: &str,
        after: u32,
        limit: usize,
    ) -> Result<Vec<Part>, StoreError>;
    /// Atomically stores `object` (built from the upload's parts `used`, by number) and
    /// deletes the upload with its parts, if `condition` holds and the upload exists.
    async fn complete_upload(
        &self,
        upload_id: &str,
        used: &[u32],
        object: &ObjectRecord,
        condition: &WriteIf,
    ) -> Result<Completed, StoreError>;
    /// Deletes an upload and its parts; returns the parts' locators (`None`: no such upload).
    async fn abort_upload(&self, upload_id: &str) -> Result<Option<Vec<String>>, StoreError>;

    /// Every data locator an object or a part refers to: what start-up garbage collection of
    /// the data store keeps (read once, before the node serves).
    async fn referenced_data(&self) -> Result<Vec<String>, StoreError>;

    /// A page of keys: objects under `prefix` after `start_after`, with keys that hold the
    /// delimiter after the prefix rolled up into common prefixes. Reads range scans of at most
    /// `max_keys + 1` rows, skipping each common prefix's keys with a new scan from its end.
    async fn list_objects(&self, bucket: &str, q: &ListQuery) -> Result<ListPage, StoreError> {
        let mut page = ListPage::default();
        if q.max_keys == 0 {
            return Ok(page);
        }
        let delimiter = q.delimiter.as_deref();
        let end = prefix_end(q.prefix.as_bytes());
        let mut from: Vec<u8> = match &q.start_after {
            // A common prefix as the marker skips every key under it.
            Some(after) if common_prefix(after, &q.prefix, delimiter) == Some(after.as_str()) => {
                match prefix_end(after.as_bytes()) {
                    Some(e) => e,
                    None => return Ok(page),
                }
            }
            Some(after) if after.as_str() >= q.prefix.as_str() => successor(after.as_bytes()),
            _ => q.prefix.as_bytes().to_vec(),
        };
        let batch = q.max_keys.saturating_add(1).min(1001);
        loop {
            let rows = self
                .scan_objects(bucket, &from, end.as_deref(), batch)
                .await?;
            let exhausted = rows.len() < batch;
            let mut next_from = None;
            for row in rows {
                if let Some(cp) = common_prefix(&row.key, &q.prefix, delimiter) {
                    if page.last.as_deref() == Some(cp) {
                        continue;
                    }
                    if page.objects.len() + page.common_prefixes.len() == q.max_keys {
                        page.truncated = true;
                        return Ok(page);
                    }
                    page.common_prefixes.push(cp.to_string());
                    page.last = Some(cp.to_string());
                    match prefix_end(cp.as_bytes()) {
                        Some(e) => next_from = Some(e),
                        None => return Ok(page),
                    }
                } else {
                    if page.objects.len() + page.common_prefixes.len() == q.max_keys {
                        page.truncated = true;
                        return Ok(page);
                    }
                    next_from = Some(successor(row.key.as_bytes()));
                    page.last = Some(row.key.clone());
                    page.objects.push(row);
                }
            }
            match next_from {
                Some(next) if !exhausted => from = next,
                _ => return Ok(page),
            }
        }
    }
}
