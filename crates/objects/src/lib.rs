//! The S3-compatible object store's engine: S3's semantics (bucket ownership, validation,
//! ETags and checksums, conditional requests, ranges, multipart rules, notification
//! configurations) over the [`ObjectStore`] metadata seam and the [`ObjectData`] byte seam,
//! with no HTTP in sight; the protocol adapter (`lambent-s3-api`) maps the wire onto it.
//!
//! A write streams its body into new data (checksummed on the way, never held whole in
//! memory), then commits the metadata that makes it visible, then deletes the data it
//! replaced: readers see the old object or the new one, never part of one. Every caller acts
//! for a namespace; a bucket of another namespace answers [`ObjectError::AccessDenied`].
//! Changes a bucket's notification configuration asks for are reported through the
//! [`ObjectEvents`] hook after they commit.

pub mod checksum;
pub mod conditions;
pub mod data;
mod error;
pub mod names;
pub mod notification;

pub use checksum::Algorithm;
pub use conditions::{ByteRange, Conditions};
pub use data::{byte_stream, ByteStream, LocalDisk, ObjectData};
pub use error::ObjectError;
pub use notification::{EventName, NoEvents, NotificationConfig, ObjectEvent, ObjectEvents};

use futures_util::stream::StreamExt;
use lambent_store::objects::{
    Bucket, BucketCreated, BucketDeleted, Checksums, Completed, ListPage, ListQuery, ObjectAttrs,
    ObjectRecord, ObjectStore, Part, PartWritten, Segment, Upload, WriteIf, Written,
};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// The largest single PUT, part or copy source: 5 GiB.
pub const MAX_OBJECT_PUT: u64 = 5 << 30;
/// The smallest part but the last: 5 MiB.
pub const MIN_PART: u64 = 5 << 20;
/// Part numbers run 1..=10000.
pub const MAX_PARTS: u32 = 10_000;
/// The most keys, uploads or parts one listing returns.
pub const MAX_LIST: usize = 1000;

/// A request body with what the client said about it.
pub struct Body {
    pub stream: ByteStream,
    /// The declared length (the decoded length of an `aws-chunked` body); checked against
    /// the maximum before a byte is read, and against what arrives.
    pub length: Option<u64>,
    /// `Content-MD5` (base64).
    pub content_md5: Option<String>,
    /// Checksums sent in headers.
    pub checksums: Checksums,
    /// Algorithms to compute besides those in `checksums` (the SDK's algorithm header, the
    /// names in `x-amz-trailer`).
    pub algorithms: Vec<Algorithm>,
    /// Checksums sent after the body (an `aws-chunked` trailer), read once it has ended.
    pub trailer: Option<Box<dyn FnOnce() -> Checksums + Send>>,
}

impl Body {
    /// A body with nothing declared but its stream and length.
    pub fn new(stream: ByteStream, length: Option<u64>) -> Body {
        Body {
            stream,
            length,
            content_md5: None,
            checksums: Checksums::default(),
            algorithms: Vec::new(),
            trailer: None,
        }
    }
}

/// A written body: where it is and what it hashes to.
struct Stored {
    segment: Segment,
    md5: [u8; 16],
    checksums: Checksums,
}

/// An object's bytes (or a range of them), opened.
pub struct Download {
    pub object: ObjectRecord,
    /// The (offset, length) served, when a range was asked for.
    pub range: Option<(u64, u64)>,
    pub stream: ByteStream,
}

/// The engine.
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// The namespaces' storage quota, which object and part bytes count against.
    quota: lambent_store::tenants::QuotaSlot,
    data: Arc<dyn ObjectData>,
    events: Arc<dyn ObjectEvents>,
    region: String,
}

fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

impl Objects {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        data: Arc<dyn ObjectData>,
        events: Arc<dyn ObjectEvents>,
        region: impl Into<String>,
    ) -> Objects {
        Objects {
            store,
            quota: Default::default(),
            data,
            events,
            region: region.into(),
        }
    }

    /// Makes object and part bytes count against their namespace's storage quota (a write
    /// that would exceed it is refused, nothing of it kept).
    pub fn set_storage_quota(&self, quota: Arc<dyn lambent_store::tenants::StorageQuota>) {
        self.quota.set(quota);
    }

    /// The region buckets are created in unless a location is given.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Removes object data no metadata refers to (writes cut off by a crash, data whose
    /// delete a crash interrupted). At start-up, before serving, and every
    /// [`Objects::collection_interval`] if the data store has one; returns how many went.
    pub async fn collect_garbage(&self) -> Result<u64, ObjectError> {
        let referenced: HashSet<String> = self.store.referenced_data().await?.into_iter().collect();
        self.data.collect_garbage(&referenced).await
    }

    /// How often [`Objects::collect_garbage`] should run while serving (`None`: at start-up
    /// only, before anything writes).
    pub fn collection_interval(&self) -> Option<std::time::Duration> {
        self.data.collection_interval()
    }

    // ---- buckets -------------------------------------------------------------------------

    /// The bucket, if `namespace` owns it.
    pub async fn bucket(&self, namespace: &str, name: &str) -> Result<Bucket, ObjectError> {
        match self.store.get_bucket(name).await? {
            None => Err(ObjectError::NoSuchBucket),
            Some(b) if b.namespace != namespace => Err(ObjectError::AccessDenied),
            Some(b) => Ok(b),
        }
    }

    pub async fn create_bucket(
        &self,
        namespace: &str,
        name: &str,
        location: Option<&str>,
    ) -> Result<Bucket, ObjectError> {
        names::check_bucket_name(name)?;
        let bucket = Bucket {
            name: name.to_string(),
            namespace: namespace.to_string(),
            created_ms: lambent_core::now_ms(),
            region: location
                .filter(|l| !l.is_empty())
                .unwrap_or(&self.region)
                .to_string(),
            notification: None,
        };
        match self.store.create_bucket(&bucket).await? {
            BucketCreated::Created => Ok(bucket),
            BucketCreated::Exists(b) if b.namespace == namespace => {
                Err(ObjectError::BucketAlreadyOwnedByYou)
            }
            BucketCreated::Exists(_) => Err(ObjectError::BucketAlreadyExists),
        }
    }

    pub async fn list_buckets(&self, namespace: &str) -> Result<Vec<Bucket>, ObjectError> {
        Ok(self.store.list_buckets(namespace).await?)
    }

    pub async fn delete_bucket(&self, namespace: &str, name: &str) -> Result<(), ObjectError> {
        self.bucket(namespace, name).await?;
        match self.store.delete_bucket(name).await? {
            BucketDeleted::Deleted => Ok(()),
            BucketDeleted::Missing => Err(ObjectError::NoSuchBucket),
            BucketDeleted::NotEmpty => Err(ObjectError::BucketNotEmpty),
        }
    }

    pub async fn put_notification(
        &self,
        namespace: &str,
        name: &str,
        config: &NotificationConfig,
    ) -> Result<(), ObjectError> {
        self.bucket(namespace, name).await?;
        self.events.check(namespace, config).await?;
        let json = (!config.targets.is_empty()).then(|| config.to_json());
        if !self
            .store
            .set_bucket_notification(name, json.as_deref())
            .await?
        {
            return Err(ObjectError::NoSuchBucket);
        }
        Ok(())
    }

    pub async fn notification(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<NotificationConfig, ObjectError> {
        match self.bucket(namespace, name).await?.notification {
            Some(json) => NotificationConfig::from_json(&json),
            None => Ok(NotificationConfig::default()),
        }
    }

    /// Reports a change to the hook, if the bucket's configuration wants it.
    async fn notify(
        &self,
        bucket: &Bucket,
        name: EventName,
        object: &ObjectRecord,
    ) -> Result<(), ObjectError> {
        let Some(json) = &bucket.notification else {
            return Ok(());
        };
        let targets = NotificationConfig::from_json(json)?.matching(name, &object.key);
        if targets.is_empty() {
            return Ok(());
        }
        let removed = name == EventName::Delete;
        self.events
            .record(ObjectEvent {
                name,
                bucket: bucket.name.clone(),
                namespace: bucket.namespace.clone(),
                region: bucket.region.clone(),
                key: object.key.clone(),
                size: if removed { 0 } else { object.size },
                etag: if removed {
                    String::new()
                } else {
                    object.etag.trim_matches('"').to_string()
                },
                time_ms: lambent_core::now_ms(),
                targets,
            })
            .await
    }

    // ---- object data ---------------------------------------------------------------------

    /// Streams a body into new data, checking its declared length against `max` first and
    /// its bytes against the length and checksums it declared; on any error, nothing stays.
    /// Writes a body's bytes, counted against `namespace`'s storage quota: before anything
    /// is written when its length is declared, else once written (the data is deleted again
    /// when the quota refuses it).
    async fn write_body(
        &self,
        namespace: &str,
        body: Body,
        max: u64,
    ) -> Result<Stored, ObjectError> {
        if body.length.is_some_and(|l| l > max) {
            return Err(ObjectError::EntityTooLarge { max });
        }
        if let Some(length) = body.length {
            self.quota.reserve(namespace, length).await?;
        }
        let declared = body.length.is_some();
        let sent_md5 = body
            .content_md5
            .as_deref()
            .map(checksum::content_md5)
            .transpose()?;
        let mut wanted = body.algorithms.clone();
        wanted.extend(Algorithm::present(&body.checksums));
        let mut digests = checksum::Digests::new(&wanted);
        let limit = body.length.unwrap_or(max);
        let segment = self
            .data
            .write(body.stream, &mut |chunk: &[u8]| {
                digests.update(chunk);
                match body.length {
                    Some(expected) if digests.len() > limit => Err(ObjectError::IncompleteBody {
                        expected,
                        got: digests.len(),
                    }),
                    None if digests.len() > limit => Err(ObjectError::EntityTooLarge { max }),
                    _ => Ok(()),
                }
            })
            .await?;
        let got = digests.len();
        let (md5, computed) = digests.finish();
        let mut sent = body.checksums;
        if let Some(trailer) = body.trailer {
            let late = trailer();
            for a in Algorithm::present(&late) {
                checksum::set(&mut sent, a, a.of(&late).cloned().unwrap_or_default());
            }
        }
        let verified = match body.length {
            Some(expected) if expected != got => Err(ObjectError::IncompleteBody { expected, got }),
            _ => checksum::verify(&computed, &md5, &sent, sent_md5.as_ref()),
        };
        let verified = match verified {
            Ok(()) if !declared => self.quota.reserve(namespace, got).await.map_err(Into::into),
            other => other,
        };
        if let Err(e) = verified {
            self.discard(&[segment.locator]).await;
            return Err(e);
        }
        Ok(Stored {
            segment,
            md5,
            checksums: computed,
        })
    }

    /// Deletes data no metadata refers to any more (failures are left to the data store's
    /// garbage collection).
    async fn discard(&self, locators: &[String]) {
        for locator in locators {
            if let Err(e) = self.data.delete(locator).await {
                tracing::warn!(
                    "deleting object data {locator}: {e} (garbage collection will remove it)"
                );
            }
        }
    }

    async fn discard_object(&self, object: Option<ObjectRecord>) {
        if let Some(o) = object {
            let locators: Vec<String> = o.data.into_iter().map(|s| s.locator).collect();
            self.discard(&locators).await;
        }
    }

    /// Opens `len` bytes of an object's data from `offset`, across its segments.
    async fn open(
        &self,
        object: &ObjectRecord,
        offset: u64,
        len: u64,
    ) -> Result<ByteStream, ObjectError> {
        let mut streams = Vec::new();
        let (mut start, end) = (0u64, offset + len);
        for segment in &object.data {
            let seg_end = start + segment.size;
            if seg_end > offset && start < end {
                let from = offset.saturating_sub(start);
                let to = (end - start).min(segment.size);
                streams.push(self.data.read(&segment.locator, from, to - from).await?);
            }
            start = seg_end;
        }
        Ok(futures_util::stream::iter(streams).flatten().boxed())
    }

    /// An object of a bucket `namespace` owns, and its bucket.
    async fn object(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<(Bucket, ObjectRecord), ObjectError> {
        names::check_key(key)?;
        let b = self.bucket(namespace, bucket).await?;
        match self.store.get_object(bucket, key).await? {
            Some(o) => Ok((b, o)),
            None => Err(ObjectError::NoSuchKey),
        }
    }

    // ---- objects -------------------------------------------------------------------------

    /// Stores an object from a body (PutObject).
    pub async fn put_object(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        attrs: ObjectAttrs,
        body: Body,
        condition: WriteIf,
    ) -> Result<ObjectRecord, ObjectError> {
        names::check_key(key)?;
        let b = self.bucket(namespace, bucket).await?;
        let stored = self.write_body(namespace, body, MAX_OBJECT_PUT).await?;
        let record = Self::single_part(bucket, key, stored, attrs);
        self.commit(&b, record, condition, EventName::Put).await
    }

    /// The record of an object written in one piece (PutObject, CopyObject): its ETag and
    /// checksums are those of the bytes just stored.
    fn single_part(bucket: &str, key: &str, stored: Stored, attrs: ObjectAttrs) -> ObjectRecord {
        ObjectRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: stored.segment.size,
            etag: checksum::etag(&stored.md5),
            last_modified_ms: lambent_core::now_ms(),
            attrs: ObjectAttrs {
                checksums: stored.checksums,
                parts: None,
                checksum_algorithm: None,
                ..attrs
            },
            data: vec![stored.segment],
        }
    }

    /// Makes a written object visible, deletes what it replaced, reports it.
    async fn commit(
        &self,
        bucket: &Bucket,
        record: ObjectRecord,
        condition: WriteIf,
        event: EventName,
    ) -> Result<ObjectRecord, ObjectError> {
        let written = self.store.put_object(&record, &condition).await;
        match written {
            Ok(Written::Stored { replaced }) => {
                self.discard_object(replaced.map(|r| *r)).await;
                self.notify(bucket, event, &record).await?;
                Ok(record)
            }
            other => {
                self.discard_object(Some(record)).await;
                match other? {
                    Written::NoSuchBucket => Err(ObjectError::NoSuchBucket),
                    _ => Err(ObjectError::PreconditionFailed),
                }
            }
        }
    }

    /// An object's metadata (HeadObject).
    pub async fn head_object(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
    ) -> Result<ObjectRecord, ObjectError> {
        let (_, object) = self.object(namespace, bucket, key).await?;
        conditions.check(&object)?;
        Ok(object)
    }

    /// An object's bytes, or a range of them (GetObject).
    pub async fn get_object(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        conditions: &Conditions,
        range: Option<ByteRange>,
    ) -> Result<Download, ObjectError> {
        // The data of the object read may be replaced before it is opened: read again.
        for _ in 0..3 {
            let (_, object) = self.object(namespace, bucket, key).await?;
            conditions.check(&object)?;
            let resolved = range.map(|r| r.resolve(object.size)).transpose()?;
            let (offset, len) = resolved.unwrap_or((0, object.size));
            match self.open(&object, offset, len).await {
                Ok(stream) => {
                    return Ok(Download {
                        object,
                        range: resolved,
                        stream,
                    })
                }
                Err(ObjectError::NoSuchKey) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ObjectError::NoSuchKey)
    }

    /// Deletes an object; a missing key is no error (DeleteObject): whether there was one.
    pub async fn delete_object(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
    ) -> Result<bool, ObjectError> {
        names::check_key(key)?;
        let b = self.bucket(namespace, bucket).await?;
        match self.store.delete_object(bucket, key).await? {
            Some(object) => {
                self.notify(&b, EventName::Delete, &object).await?;
                self.discard_object(Some(object)).await;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Deletes every object of a bucket (each reported as a delete) and aborts its multipart
    /// uploads, so that it can be deleted; how many objects went. Objects written meanwhile
    /// may remain.
    pub async fn empty_bucket(&self, namespace: &str, name: &str) -> Result<u64, ObjectError> {
        self.bucket(namespace, name).await?;
        let mut deleted = 0;
        let mut query = ListQuery {
            prefix: String::new(),
            start_after: None,
            delimiter: None,
            max_keys: MAX_LIST,
        };
        loop {
            let page = self.store.list_objects(name, &query).await?;
            for o in &page.objects {
                if self.delete_object(namespace, name, &o.key).await? {
                    deleted += 1;
                }
            }
            if !page.truncated {
                break;
            }
            query.start_after = page.last;
        }
        loop {
            let uploads = self.store.list_uploads(name, "", None, MAX_LIST).await?;
            for u in &uploads {
                if let Some(locators) = self.store.abort_upload(&u.id).await? {
                    self.discard(&locators).await;
                }
            }
            if uploads.len() < MAX_LIST {
                return Ok(deleted);
            }
        }
    }

    /// Deletes many objects (DeleteObjects): each key's outcome.
    pub async fn delete_objects(
        &self,
        namespace: &str,
        bucket: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Result<(), ObjectError>)>, ObjectError> {
        if keys.len() > MAX_LIST {
            return Err(ObjectError::MalformedXml(
                "at most 1000 keys can be deleted at once".into(),
            ));
        }
        self.bucket(namespace, bucket).await?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let result = self
                .delete_object(namespace, bucket, &key)
                .await
                .map(|_| ());
            out.push((key, result));
        }
        Ok(out)
    }

    /// Copies an object (CopyObject): with `attrs` `None` the source's are kept
    /// (`COPY` directive), else replaced (`REPLACE`).
    #[allow(clippy::too_many_arguments)]
    pub async fn copy_object(
        &self,
        namespace: &str,
        source: (&str, &str),
        source_conditions: &Conditions,
        bucket: &str,
        key: &str,
        attrs: Option<ObjectAttrs>,
        condition: WriteIf,
    ) -> Result<ObjectRecord, ObjectError> {
        names::check_key(key)?;
        let (_, src) = self.object(namespace, source.0, source.1).await?;
        source_conditions.check_source(&src)?;
        if source == (bucket, key) && attrs.is_none() {
            return Err(ObjectError::InvalidRequest(
                "this copy request is illegal because it is trying to copy an object to itself \
                 without changing the object's metadata"
                    .into(),
            ));
        }
        if src.size > MAX_OBJECT_PUT {
            return Err(ObjectError::InvalidRequest(format!(
                "the specified copy source is larger than the maximum allowable size for a copy \
                 source: {MAX_OBJECT_PUT}"
            )));
        }
        let b = self.bucket(namespace, bucket).await?;
        let algorithms = Algorithm::present(&src.attrs.checksums);
        let attrs = attrs.unwrap_or_else(|| src.attrs.clone());
        let stream = self.open(&src, 0, src.size).await?;
        let mut body = Body::new(stream, Some(src.size));
        body.algorithms = algorithms;
        let stored = self.write_body(namespace, body, MAX_OBJECT_PUT).await?;
        let record = Self::single_part(bucket, key, stored, attrs);
        self.commit(&b, record, condition, EventName::Copy).await
    }

    /// A page of a bucket's keys (ListObjects, ListObjectsV2).
    pub async fn list_objects(
        &self,
        namespace: &str,
        bucket: &str,
        mut query: ListQuery,
    ) -> Result<ListPage, ObjectError> {
        self.bucket(namespace, bucket).await?;
        query.max_keys = query.max_keys.min(MAX_LIST);
        Ok(self.store.list_objects(bucket, &query).await?)
    }

    // ---- multipart uploads -----------------------------------------------------------------

    /// Starts a multipart upload (CreateMultipartUpload).
    pub async fn create_upload(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        attrs: ObjectAttrs,
    ) -> Result<Upload, ObjectError> {
        names::check_key(key)?;
        self.bucket(namespace, bucket).await?;
        if let Some(a) = &attrs.checksum_algorithm {
            Algorithm::parse(a)?;
        }
        let upload = Upload {
            id: uuid::Uuid::new_v4().simple().to_string(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            initiated_ms: lambent_core::now_ms(),
            attrs: ObjectAttrs {
                checksums: Checksums::default(),
                parts: None,
                ..attrs
            },
        };
        if !self.store.create_upload(&upload).await? {
            return Err(ObjectError::NoSuchBucket);
        }
        Ok(upload)
    }

    /// An upload of `key` in a bucket `namespace` owns.
    async fn upload(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(Bucket, Upload), ObjectError> {
        names::check_key(key)?;
        let b = self.bucket(namespace, bucket).await?;
        match self.store.get_upload(bucket, upload_id).await? {
            Some(u) if u.key == key => Ok((b, u)),
            _ => Err(ObjectError::NoSuchUpload),
        }
    }

    fn check_part_number(number: u32) -> Result<(), ObjectError> {
        if !(1..=MAX_PARTS).contains(&number) {
            return Err(ObjectError::InvalidArgument(format!(
                "part number must be an integer between 1 and {MAX_PARTS}, inclusive"
            )));
        }
        Ok(())
    }

    /// Stores one part (UploadPart).
    pub async fn upload_part(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        mut body: Body,
    ) -> Result<Part, ObjectError> {
        Self::check_part_number(number)?;
        let (_, upload) = self.upload(namespace, bucket, key, upload_id).await?;
        if let Some(a) = &upload.attrs.checksum_algorithm {
            body.algorithms.push(Algorithm::parse(a)?);
        }
        let stored = self.write_body(namespace, body, MAX_OBJECT_PUT).await?;
        self.store_part(upload_id, number, stored).await
    }

    async fn store_part(
        &self,
        upload_id: &str,
        number: u32,
        stored: Stored,
    ) -> Result<Part, ObjectError> {
        let part = Part {
            upload_id: upload_id.to_string(),
            number,
            size: stored.segment.size,
            etag: checksum::etag(&stored.md5),
            checksums: stored.checksums,
            locator: stored.segment.locator,
            last_modified_ms: lambent_core::now_ms(),
        };
        match self.store.put_part(&part).await {
            Ok(PartWritten::Stored { replaced }) => {
                if let Some(old) = replaced {
                    self.discard(&[old.locator]).await;
                }
                Ok(part)
            }
            other => {
                self.discard(std::slice::from_ref(&part.locator)).await;
                other?;
                Err(ObjectError::NoSuchUpload)
            }
        }
    }

    /// Stores one part copied from (a range of) an object (UploadPartCopy).
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_part_copy(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        number: u32,
        source: (&str, &str),
        source_conditions: &Conditions,
        range: Option<ByteRange>,
    ) -> Result<(Part, i64), ObjectError> {
        Self::check_part_number(number)?;
        let (_, upload) = self.upload(namespace, bucket, key, upload_id).await?;
        let (_, src) = self.object(namespace, source.0, source.1).await?;
        source_conditions.check_source(&src)?;
        let (offset, len) = match range {
            Some(r) => r.resolve(src.size)?,
            None => (0, src.size),
        };
        if len > MAX_OBJECT_PUT {
            return Err(ObjectError::InvalidRequest(format!(
                "the specified copy range is larger than the maximum part size: {MAX_OBJECT_PUT}"
            )));
        }
        let mut body = Body::new(self.open(&src, offset, len).await?, Some(len));
        if let Some(a) = &upload.attrs.checksum_algorithm {
            body.algorithms.push(Algorithm::parse(a)?);
        }
        let stored = self.write_body(namespace, body, MAX_OBJECT_PUT).await?;
        Ok((
            self.store_part(upload_id, number, stored).await?,
            src.last_modified_ms,
        ))
    }

    /// Every part of an upload, by number.
    async fn all_parts(&self, upload_id: &str) -> Result<BTreeMap<u32, Part>, ObjectError> {
        let mut parts = BTreeMap::new();
        let mut after = 0;
        loop {
            let page = self.store.list_parts(upload_id, after, MAX_LIST).await?;
            let done = page.len() < MAX_LIST;
            for p in page {
                after = p.number;
                parts.insert(p.number, p);
            }
            if done {
                return Ok(parts);
            }
        }
    }

    /// Completes an upload from the listed (part number, ETag)s (CompleteMultipartUpload).
    pub async fn complete_upload(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        listed: &[(u32, String)],
        condition: WriteIf,
    ) -> Result<ObjectRecord, ObjectError> {
        if listed.is_empty() {
            return Err(ObjectError::MalformedXml(
                "a CompleteMultipartUpload request needs at least one part".into(),
            ));
        }
        if listed.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(ObjectError::InvalidPartOrder);
        }
        let (b, upload) = self.upload(namespace, bucket, key, upload_id).await?;
        let stored = self.all_parts(upload_id).await?;
        let mut used = Vec::with_capacity(listed.len());
        for (i, (number, etag)) in listed.iter().enumerate() {
            let part = stored
                .get(number)
                .filter(|p| same_etag(&p.etag, etag))
                .ok_or_else(|| ObjectError::InvalidPart(format!("part {number} ({etag})")))?;
            if i + 1 < listed.len() && part.size < MIN_PART {
                return Err(ObjectError::EntityTooSmall);
            }
            used.push(part);
        }
        let etags: Vec<&str> = used.iter().map(|p| p.etag.as_str()).collect();
        let mut checksums = Checksums::default();
        if let Some(a) = &upload.attrs.checksum_algorithm {
            let a = Algorithm::parse(a)?;
            let parts: Vec<&Checksums> = used.iter().map(|p| &p.checksums).collect();
            if let Some(value) = checksum::composite(a, &parts) {
                checksum::set(&mut checksums, a, value);
            }
        }
        let record = ObjectRecord {
            bucket: bucket.to_string(),
            key: key.to_string(),
            size: used.iter().map(|p| p.size).sum(),
            etag: checksum::multipart_etag(&etags)?,
            last_modified_ms: lambent_core::now_ms(),
            attrs: ObjectAttrs {
                checksums,
                parts: Some(used.len() as u32),
                ..upload.attrs.clone()
            },
            data: used
                .iter()
                .map(|p| Segment {
                    locator: p.locator.clone(),
                    size: p.size,
                })
                .collect(),
        };
        let numbers: Vec<u32> = used.iter().map(|p| p.number).collect();
        match self
            .store
            .complete_upload(upload_id, &numbers, &record, &condition)
            .await?
        {
            Completed::Stored { replaced, unused } => {
                self.discard_object(replaced.map(|r| *r)).await;
                self.discard(&unused).await;
                self.notify(&b, EventName::CompleteMultipartUpload, &record)
                    .await?;
                Ok(record)
            }
            Completed::NoSuchUpload => Err(ObjectError::NoSuchUpload),
            Completed::PreconditionFailed => Err(ObjectError::PreconditionFailed),
        }
    }

    /// Aborts an upload and deletes its parts (AbortMultipartUpload).
    pub async fn abort_upload(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> Result<(), ObjectError> {
        self.upload(namespace, bucket, key, upload_id).await?;
        match self.store.abort_upload(upload_id).await? {
            Some(locators) => {
                self.discard(&locators).await;
                Ok(())
            }
            None => Err(ObjectError::NoSuchUpload),
        }
    }

    /// A page of a bucket's uploads after the (key, upload id) marker; true if truncated.
    pub async fn list_uploads(
        &self,
        namespace: &str,
        bucket: &str,
        prefix: &str,
        after: Option<(&str, &str)>,
        max: usize,
    ) -> Result<(Vec<Upload>, bool), ObjectError> {
        self.bucket(namespace, bucket).await?;
        let max = max.min(MAX_LIST);
        let mut uploads = self
            .store
            .list_uploads(bucket, prefix, after, max + 1)
            .await?;
        let truncated = uploads.len() > max;
        uploads.truncate(max);
        Ok((uploads, truncated))
    }

    /// A page of an upload's parts after part number `after`; true if truncated.
    pub async fn list_parts(
        &self,
        namespace: &str,
        bucket: &str,
        key: &str,
        upload_id: &str,
        after: u32,
        max: usize,
    ) -> Result<(Upload, Vec<Part>, bool), ObjectError> {
        let (_, upload) = self.upload(namespace, bucket, key, upload_id).await?;
        let max = max.min(MAX_LIST);
        let mut parts = self.store.list_parts(upload_id, after, max + 1).await?;
        let truncated = parts.len() > max;
        parts.truncate(max);
        Ok((upload, parts, truncated))
    }
}

#[cfg(test)]
mod tests;

/// A namespace's purge removed the records of its objects and parts: their data goes too.
#[async_trait::async_trait]
impl lambent_store::objects::UnreferencedData for Objects {
    async fn discard(&self, locators: &[String]) {
        Objects::discard(self, locators).await;
    }
}
