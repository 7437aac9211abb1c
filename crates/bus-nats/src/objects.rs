//! [`NatsObjectData`]: S3 object data of a cluster in a JetStream object store bucket
//! `lambent-objects-<cluster_id>`, so every node serves every object (the metadata is in
//! PostgreSQL, as on one node it is in SQLite).
//!
//! Layout. Each [`ObjectData::write`] (a PUT body, one multipart part, a copy) is one NATS
//! object named by its locator (32 hex digits of a random UUID), in the object store's own
//! format: fixed-size chunks of [`CHUNK`] bytes on `$O.<bucket>.C.<locator>`, then one meta
//! message on `$O.<bucket>.M.<base64url(locator)>` (rolled up, so the last one wins). A
//! multipart object is its parts' segments, so completing an upload moves no bytes. The meta
//! also records the stream sequence of every chunk (as runs, `lambent-seqs`): a read at any
//! offset fetches exactly the chunks it needs by sequence (direct get, a few in flight),
//! without the object store's "read from the first chunk" consumer, so a range of a 5 GiB
//! object or a part of a multipart one costs what it returns.
//!
//! Writes publish chunks with a bounded window of unacknowledged publishes and then the meta;
//! when `write` returns every message has been acknowledged by JetStream (file storage; how
//! durable that is depends on the NATS deployment, see `docs/cluster.md`). A failed or dropped
//! write purges its chunks. Memory per transfer is bounded by the window, whatever the size.
//!
//! Deletes leave a tombstone meta (`deleted`, with its time) and keep the chunks for
//! [`NatsObjectData::with_delete_grace`], so reads opened before the delete (on any node)
//! finish. [`ObjectData::collect_garbage`] runs on every node, periodically and while others
//! write: it purges tombstoned data past the grace, and data no metadata refers to whose last
//! message is older than [`NatsObjectData::with_orphan_age`] (a write cut off by a crash, a
//! delete a crash skipped), never anything referenced or young.

use crate::{valid_cluster_id, NatsBus, NatsError};
use async_nats::header::HeaderMap;
use async_nats::jetstream::consumer::push::OrderedConfig;
use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::object_store::{ObjectInfo, ObjectOptions};
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind, Stream};
use async_nats::jetstream::{self, message::StreamMessage};
use async_nats::Client;
use async_trait::async_trait;
use base64::Engine;
use bytes::{Bytes, BytesMut};
use futures_util::stream::{StreamExt, TryStreamExt};
use lambent_objects::data::{ByteStream, ObjectData, Observer};
use lambent_objects::ObjectError;
use lambent_store::objects::Segment;
use lambent_store::StoreError;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::time::Duration;

/// Bytes per chunk message (under the 1 MiB `max_payload` of a default server).
pub const CHUNK: usize = 512 * 1024;
/// Chunk publishes awaiting their acknowledgement, per write.
const WRITE_WINDOW: usize = 8;
/// Chunk fetches in flight, per read.
const READ_AHEAD: usize = 4;
/// Time allowed for one NATS request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Unreferenced data younger than this is left alone (a write in flight, a commit pending).
const ORPHAN_AGE: Duration = Duration::from_secs(3600);
/// Deleted data stays readable this long for reads opened before the delete.
const DELETE_GRACE: Duration = Duration::from_secs(900);
/// How often garbage collection runs on each node.
const GC_INTERVAL: Duration = Duration::from_secs(600);

const SEQS: &str = "lambent-seqs";
const WRITTEN_MS: &str = "lambent-written-ms";
const DELETED_MS: &str = "lambent-deleted-ms";

/// The object store bucket holding a cluster's S3 object data.
pub fn objects_bucket_name(cluster_id: &str) -> String {
    format!("lambent-objects-{cluster_id}")
}

/// S3 object data shared by a cluster (see the module docs).
pub struct NatsObjectData {
    client: Client,
    js: jetstream::Context,
    stream: Stream,
    bucket: String,
    address: String,
    orphan_age: Duration,
    delete_grace: Duration,
    gc_interval: Duration,
}

impl NatsObjectData {
    /// Opens the data bucket of `bus`'s cluster.
    pub async fn for_bus(bus: &NatsBus, cluster_id: &str) -> Result<NatsObjectData, StoreError> {
        NatsObjectData::open(bus.client().clone(), bus.address(), cluster_id).await
    }

    /// Opens (creating it if needed) the bucket `lambent-objects-<cluster_id>` through
    /// `client`, whose server is named `address` in errors.
    pub async fn open(
        client: Client,
        address: &str,
        cluster_id: &str,
    ) -> Result<NatsObjectData, StoreError> {
        if !valid_cluster_id(cluster_id) {
            return Err(NatsError::Config(format!("invalid cluster id '{cluster_id}'")).into());
        }
        let js = jetstream::new(client.clone());
        let bucket = objects_bucket_name(cluster_id);
        let stream = crate::blobs::bounded(
            address,
            REQUEST_TIMEOUT,
            "opening the object data bucket",
            async {
                crate::blobs::ensure_bucket(&js, &bucket, "Lambent S3 object data, by locator")
                    .await?;
                js.get_stream(format!("OBJ_{bucket}"))
                    .await
                    .map_err(|e| e.to_string())
            },
        )
        .await?;
        Ok(NatsObjectData {
            client,
            js,
            stream,
            bucket,
            address: address.to_string(),
            orphan_age: ORPHAN_AGE,
            delete_grace: DELETE_GRACE,
            gc_interval: GC_INTERVAL,
        })
    }

    /// Replaces how old unreferenced data must be before garbage collection removes it (1 h
    /// by default: longer than any write takes between its last chunk and its commit).
    pub fn with_orphan_age(mut self, age: Duration) -> NatsObjectData {
        self.orphan_age = age;
        self
    }

    /// Replaces how long deleted data stays readable by reads opened before the delete
    /// (15 min by default).
    pub fn with_delete_grace(mut self, grace: Duration) -> NatsObjectData {
        self.delete_grace = grace;
        self
    }

    /// Replaces how often garbage collection runs (10 min by default).
    pub fn with_gc_interval(mut self, interval: Duration) -> NatsObjectData {
        self.gc_interval = interval;
        self
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn chunk_subject(&self, locator: &str) -> String {
        format!("$O.{}.C.{locator}", self.bucket)
    }

    fn meta_subject(&self, locator: &str) -> String {
        let encoded = base64::engine::general_purpose::URL_SAFE.encode(locator);
        format!("$O.{}.M.{encoded}", self.bucket)
    }

    fn unreachable(&self, what: &str, reason: impl std::fmt::Display) -> ObjectError {
        ObjectError::Store(
            NatsError::Unreachable {
                address: self.address.clone(),
                reason: format!("{what}: {reason}"),
            }
            .into(),
        )
    }

    /// The last meta of `locator`, `None` if there is none. A direct get may be answered by a
    /// replica that lags; a miss is asked again of the stream's leader.
    async fn meta(&self, locator: &str) -> Result<Option<ObjectInfo>, ObjectError> {
        let subject = self.meta_subject(locator);
        let message = match self
            .stream
            .direct_get_last_for_subject(subject.clone())
            .await
        {
            Ok(m) => Some(m.payload),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => {
                match self.stream.get_last_raw_message_by_subject(&subject).await {
                    Ok(m) => Some(m.payload),
                    Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => None,
                    Err(e) => return Err(self.unreachable("reading object meta", e)),
                }
            }
            Err(e) => return Err(self.unreachable("reading object meta", e)),
        };
        match message {
            None => Ok(None),
            Some(payload) => serde_json::from_slice(&payload).map(Some).map_err(|e| {
                ObjectError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("object meta of {locator}: {e}"),
                ))
            }),
        }
    }

    /// Publishes `info` as the meta of its locator (replacing any earlier one).
    async fn put_meta(&self, info: &ObjectInfo) -> Result<(), ObjectError> {
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        let payload = serde_json::to_vec(info).map_err(io::Error::other)?;
        let subject = self.meta_subject(&info.name);
        let ack = self
            .js
            .publish_with_headers(subject, headers, payload.into())
            .await
            .map_err(|e| self.unreachable("publishing object meta", e))?;
        ack.await
            .map_err(|e| self.unreachable("publishing object meta", e))?;
        Ok(())
    }

    /// Purges every message of `locator` (chunks, then meta).
    async fn purge(&self, locator: &str) -> Result<(), ObjectError> {
        for subject in [self.chunk_subject(locator), self.meta_subject(locator)] {
            self.stream
                .purge()
                .filter(subject)
                .await
                .map_err(|e| self.unreachable("purging object data", e))?;
        }
        Ok(())
    }

    /// Streams `body` into chunks of `locator`, returning the size and every chunk's sequence.
    async fn write_chunks(
        &self,
        locator: &str,
        mut body: ByteStream,
        observe: Observer<'_>,
    ) -> Result<(u64, Vec<u64>), ObjectError> {
        let subject = self.chunk_subject(locator);
        let mut pending: VecDeque<PublishAckFuture> = VecDeque::new();
        let mut seqs = Vec::new();
        let mut buf = BytesMut::with_capacity(CHUNK);
        let mut size = 0u64;
        let mut ended = false;
        while !ended {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| ObjectError::BodyFailed(e.to_string()))?;
                    observe(&chunk)?;
                    size += chunk.len() as u64;
                    buf.extend_from_slice(&chunk);
                }
                None => ended = true,
            }
            while buf.len() >= CHUNK || (ended && !buf.is_empty()) {
                let n = buf.len().min(CHUNK);
                let payload = buf.split_to(n).freeze();
                if pending.len() == WRITE_WINDOW {
                    seqs.push(self.acked(pending.pop_front()).await?);
                }
                let ack = self
                    .js
                    .publish(subject.clone(), payload)
                    .await
                    .map_err(|e| self.unreachable("publishing object data", e))?;
                pending.push_back(ack);
            }
        }
        while !pending.is_empty() {
            seqs.push(self.acked(pending.pop_front()).await?);
        }
        Ok((size, seqs))
    }

    async fn acked(&self, ack: Option<PublishAckFuture>) -> Result<u64, ObjectError> {
        let ack = ack.expect("a pending publish");
        match ack.await {
            Ok(ack) => Ok(ack.sequence),
            Err(e) => Err(self.unreachable("publishing object data", e)),
        }
    }

    /// One chunk by its sequence, checked to belong to `subject`.
    async fn chunk(stream: &Stream, subject: &str, seq: u64) -> io::Result<Bytes> {
        let message: StreamMessage = match stream.direct_get(seq).await {
            Ok(m) => m,
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => stream
                .get_raw_message(seq)
                .await
                .map_err(|e| match e.kind() {
                    LastRawMessageErrorKind::NoMessageFound => io::Error::new(
                        io::ErrorKind::NotFound,
                        "object data was removed while being read",
                    ),
                    _ => io::Error::other(format!("reading object data from NATS: {e}")),
                })?,
            Err(e) => {
                return Err(io::Error::other(format!(
                    "reading object data from NATS: {e}"
                )))
            }
        };
        if message.subject.as_str() != subject {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("chunk {seq} is not on {subject}"),
            ));
        }
        Ok(message.payload)
    }

    /// Every locator with a meta: whether it is deleted, and its time (written or deleted).
    async fn metas(&self) -> Result<HashMap<String, (bool, i64)>, ObjectError> {
        let mut out = HashMap::new();
        let filter = format!("$O.{}.M.>", self.bucket);
        if self.subjects(&filter).await?.is_empty() {
            return Ok(out);
        }
        let consumer = self
            .stream
            .create_consumer(OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: filter,
                deliver_policy: DeliverPolicy::LastPerSubject,
                ..Default::default()
            })
            .await
            .map_err(|e| self.unreachable("listing object metas", e))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| self.unreachable("listing object metas", e))?;
        // Metas purged meanwhile (another node's collection) may leave nothing more to come.
        while let Ok(Some(message)) = tokio::time::timeout(REQUEST_TIMEOUT, messages.next()).await {
            let message = message.map_err(|e| self.unreachable("listing object metas", e))?;
            if let Ok(info) = serde_json::from_slice::<ObjectInfo>(&message.payload) {
                let key = if info.deleted { DELETED_MS } else { WRITTEN_MS };
                let ms = info.metadata.get(key).and_then(|v| v.parse().ok());
                out.insert(info.name.clone(), (info.deleted, ms.unwrap_or(0)));
            }
            let last = message.info().map(|i| i.pending == 0).unwrap_or(true);
            if last {
                break;
            }
        }
        Ok(out)
    }

    /// The locators whose data is stored and not deleted: written (committed or not) or being
    /// written. What an operator (or a test) counts to see that nothing leaked.
    pub async fn stored(&self) -> Result<Vec<String>, ObjectError> {
        let metas = self.metas().await?;
        let mut out: Vec<String> = metas
            .iter()
            .filter(|(_, (deleted, _))| !deleted)
            .map(|(locator, _)| locator.clone())
            .collect();
        let prefix = format!("$O.{}.C.", self.bucket);
        for subject in self.subjects(&format!("{prefix}>")).await? {
            match subject.strip_prefix(&prefix) {
                Some(locator) if !metas.contains_key(locator) => out.push(locator.to_string()),
                _ => {}
            }
        }
        out.sort();
        Ok(out)
    }

    /// The subjects of the stream matching `filter`.
    async fn subjects(&self, filter: &str) -> Result<Vec<String>, ObjectError> {
        let listing = self
            .stream
            .info_with_subjects(filter)
            .await
            .map_err(|e| self.unreachable("listing object data", e))?;
        listing
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .map_err(|e| self.unreachable("listing object data", e))
    }

    /// When the last chunk of `locator` was stored (unix ms), `None` if it has none.
    async fn last_chunk_ms(&self, locator: &str) -> Result<Option<i64>, ObjectError> {
        match self
            .stream
            .direct_get_last_for_subject(self.chunk_subject(locator))
            .await
        {
            Ok(m) => Ok(Some((m.time.unix_timestamp_nanos() / 1_000_000) as i64)),
            Err(e) if e.kind() == DirectGetErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.unreachable("reading object data", e)),
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Purges a write's chunks unless disarmed (a write whose future is dropped mid-way).
struct PurgeOnDrop(Option<(Stream, String)>);

impl Drop for PurgeOnDrop {
    fn drop(&mut self) {
        if let Some((stream, subject)) = self.0.take() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    if let Err(e) = stream.purge().filter(subject.clone()).await {
                        tracing::warn!(
                            "purging {subject} of a dropped write: {e} (collected later)"
                        );
                    }
                });
            }
        }
    }
}

#[async_trait]
impl ObjectData for NatsObjectData {
    async fn write(&self, body: ByteStream, observe: Observer<'_>) -> Result<Segment, ObjectError> {
        let locator = uuid::Uuid::new_v4().simple().to_string();
        let mut guard = PurgeOnDrop(Some((self.stream.clone(), self.chunk_subject(&locator))));
        let written = async {
            let (size, seqs) = self.write_chunks(&locator, body, observe).await?;
            let info = ObjectInfo {
                name: locator.clone(),
                description: None,
                metadata: HashMap::from([
                    (SEQS.to_string(), encode_seqs(&seqs)),
                    (WRITTEN_MS.to_string(), now_ms().to_string()),
                ]),
                headers: None,
                options: Some(ObjectOptions {
                    link: None,
                    max_chunk_size: Some(CHUNK),
                }),
                bucket: self.bucket.clone(),
                nuid: locator.clone(),
                size: size as usize,
                chunks: seqs.len(),
                modified: Some(async_nats::datetime::now()),
                digest: None,
                deleted: false,
            };
            self.put_meta(&info).await?;
            Ok(size)
        }
        .await;
        guard.0 = None;
        match written {
            Ok(size) => Ok(Segment { locator, size }),
            Err(e) => {
                if let Err(purge) = self.purge(&locator).await {
                    tracing::warn!("purging failed write {locator}: {purge} (collected later)");
                }
                Err(e)
            }
        }
    }

    async fn read(&self, locator: &str, offset: u64, len: u64) -> Result<ByteStream, ObjectError> {
        let info = match self.meta(locator).await? {
            Some(info) if !info.deleted => info,
            _ => return Err(ObjectError::NoSuchKey),
        };
        let size = info.size as u64;
        let end = offset.checked_add(len).filter(|end| *end <= size);
        let Some(end) = end else {
            return Err(ObjectError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bytes {offset}+{len} of {locator} which has {size}"),
            )));
        };
        if len == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let seqs = info
            .metadata
            .get(SEQS)
            .and_then(|s| decode_seqs(s))
            .filter(|s| s.len() == info.chunks && (s.len() as u64) * CHUNK as u64 >= size)
            .ok_or_else(|| {
                ObjectError::Io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("object meta of {locator} has no usable chunk index"),
                ))
            })?;
        let chunk = CHUNK as u64;
        let (first, last) = ((offset / chunk) as usize, ((end - 1) / chunk) as usize);
        let stream = self.stream.clone();
        let subject = self.chunk_subject(locator);
        let chunks = futures_util::stream::iter(first..=last)
            .map(move |k| {
                let (stream, subject, seq) = (stream.clone(), subject.clone(), seqs[k]);
                async move {
                    let payload = NatsObjectData::chunk(&stream, &subject, seq).await?;
                    let start = k as u64 * chunk;
                    let expected = (size - start).min(chunk);
                    if payload.len() as u64 != expected {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("chunk {k} has {} bytes, not {expected}", payload.len()),
                        ));
                    }
                    let from = offset.max(start) - start;
                    let to = end.min(start + expected) - start;
                    Ok(payload.slice(from as usize..to as usize))
                }
            })
            .buffered(READ_AHEAD);
        Ok(chunks.boxed())
    }

    async fn delete(&self, locator: &str) -> Result<(), ObjectError> {
        let tombstone = ObjectInfo {
            name: locator.to_string(),
            description: None,
            metadata: HashMap::from([(DELETED_MS.to_string(), now_ms().to_string())]),
            headers: None,
            options: None,
            bucket: self.bucket.clone(),
            nuid: locator.to_string(),
            size: 0,
            chunks: 0,
            modified: Some(async_nats::datetime::now()),
            digest: None,
            deleted: true,
        };
        self.put_meta(&tombstone).await
    }

    async fn collect_garbage(&self, referenced: &HashSet<String>) -> Result<u64, ObjectError> {
        let now = now_ms();
        let (orphan_before, deleted_before) =
            (now - ms(self.orphan_age), now - ms(self.delete_grace));
        let metas = self.metas().await?;
        let mut doomed: Vec<String> = metas
            .iter()
            .filter(|(locator, (deleted, at))| {
                !referenced.contains(*locator)
                    && if *deleted {
                        *at < deleted_before
                    } else {
                        *at < orphan_before
                    }
            })
            .map(|(locator, _)| locator.clone())
            .collect();
        // Chunks without a meta: a write in flight, or one a crash cut off.
        let prefix = format!("$O.{}.C.", self.bucket);
        for subject in self.subjects(&format!("{prefix}>")).await? {
            let Some(locator) = subject.strip_prefix(&prefix) else {
                continue;
            };
            if metas.contains_key(locator) || referenced.contains(locator) {
                continue;
            }
            // Written since the listing of metas? Then it is no orphan.
            if self.meta(locator).await?.is_some() {
                continue;
            }
            if matches!(self.last_chunk_ms(locator).await?, Some(at) if at < orphan_before) {
                doomed.push(locator.to_string());
            }
        }
        for locator in &doomed {
            self.purge(locator).await?;
        }
        Ok(doomed.len() as u64)
    }

    fn collection_interval(&self) -> Option<Duration> {
        Some(self.gc_interval)
    }
}

/// Chunk sequences as runs of consecutive numbers: `start+count`, each start after the first
/// relative to the end of the run before (`"100+16,3+16"` = 100..116, 119..135).
fn encode_seqs(seqs: &[u64]) -> String {
    let mut out = String::new();
    let mut i = 0;
    let mut prev_end = 0u64;
    while i < seqs.len() {
        let start = seqs[i];
        let mut n = 1;
        while i + n < seqs.len() && seqs[i + n] == start + n as u64 {
            n += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&format!("{}+{n}", start - prev_end));
        prev_end = start + n as u64;
        i += n;
    }
    out
}

fn decode_seqs(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut prev_end = 0u64;
    for run in s.split(',').filter(|r| !r.is_empty()) {
        let (gap, n) = run.split_once('+')?;
        let start = prev_end.checked_add(gap.parse().ok()?)?;
        let n: u64 = n.parse().ok()?;
        out.extend(start..start.checked_add(n)?);
        prev_end = start + n;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sequences_round_trip_as_runs() {
        let seqs = vec![100, 101, 102, 105, 106, 200, 202];
        let encoded = encode_seqs(&seqs);
        assert_eq!(encoded, "100+3,2+2,93+1,1+1");
        assert_eq!(decode_seqs(&encoded), Some(seqs));
        assert_eq!(decode_seqs(""), Some(vec![]));
        assert_eq!(encode_seqs(&[]), "");
        for bad in ["x+1", "1", "1+", "18446744073709551615+2"] {
            assert_eq!(decode_seqs(bad), None, "{bad}");
        }
    }
}
