//! [`NatsBlobs`]: the cluster's code blobs in a JetStream object store bucket
//! `lambent-code-<cluster_id>` (file storage, object name = hex SHA-256), with the node's
//! [`FsBlobs`] directory as a cache in front of it. A put lands locally first, then is uploaded
//! unless the bucket already holds it; a get is served locally if possible, else fetched once per
//! node (a per-blob lock), checked against its SHA-256 and only then cached. Every NATS call is
//! bounded by a timeout (a base plus time proportional to the size), so an unreachable NATS
//! yields `StoreError::Unavailable`, never a hang.

use crate::{valid_cluster_id, NatsBus, NatsError};
use async_nats::jetstream::object_store::{InfoErrorKind, ObjectInfo, ObjectMetadata, ObjectStore};
use async_nats::jetstream::{self, stream};
use async_nats::Client;
use async_trait::async_trait;
use lambent_store::blobs::{is_sha256_hex, BlobStore, FsBlobs};
use lambent_store::StoreError;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Chunk size of uploaded objects (under the 1 MiB `max_payload` of a default server).
const CHUNK_SIZE: usize = 512 * 1024;
/// Time allowed for any NATS call, before the size-proportional part.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Throughput assumed when bounding transfers (a pessimistic link).
const MIN_BYTES_PER_SEC: u64 = 4 * 1024 * 1024;

/// The object store bucket holding a cluster's code.
pub fn bucket_name(cluster_id: &str) -> String {
    format!("lambent-code-{cluster_id}")
}

/// Code blobs shared by a cluster (see the module docs).
pub struct NatsBlobs {
    local: FsBlobs,
    store: ObjectStore,
    address: String,
    timeout: Duration,
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl NatsBlobs {
    /// Opens the store of `bus`'s cluster with `cache_dir` (the node's `blobs/`) as its cache.
    pub async fn for_bus(
        bus: &NatsBus,
        cluster_id: &str,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<NatsBlobs, StoreError> {
        NatsBlobs::open(bus.client().clone(), bus.address(), cluster_id, cache_dir).await
    }

    /// Opens (creating it if needed) the bucket `lambent-code-<cluster_id>` through `client`,
    /// whose server is named `address` in errors, with `cache_dir` as the local cache.
    pub async fn open(
        client: Client,
        address: &str,
        cluster_id: &str,
        cache_dir: impl Into<PathBuf>,
    ) -> Result<NatsBlobs, StoreError> {
        if !valid_cluster_id(cluster_id) {
            return Err(NatsError::Config(format!("invalid cluster id '{cluster_id}'")).into());
        }
        let local = FsBlobs::open(cache_dir)?;
        let js = jetstream::new(client);
        let bucket = bucket_name(cluster_id);
        let store = bounded(address, DEFAULT_TIMEOUT, "opening the code bucket", async {
            ensure_bucket(&js, &bucket, "Lambent function code, by SHA-256").await
        })
        .await?;
        Ok(NatsBlobs {
            local,
            store,
            address: address.to_string(),
            timeout: DEFAULT_TIMEOUT,
            fetching: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the base timeout of NATS calls (10 s by default).
    pub fn with_timeout(mut self, timeout: Duration) -> NatsBlobs {
        self.timeout = timeout;
        self
    }

    /// The local cache.
    pub fn local(&self) -> &FsBlobs {
        &self.local
    }

    fn timeout_for(&self, size: u64) -> Duration {
        self.timeout + Duration::from_secs(size / MIN_BYTES_PER_SEC)
    }

    /// The bucket's info for `sha`, `None` if it holds no such object.
    async fn remote_info(&self, sha: &str) -> Result<Option<ObjectInfo>, NatsError> {
        bounded(&self.address, self.timeout, "reading object info", async {
            match self.store.info(sha).await {
                Ok(info) if !info.deleted => Ok(Some(info)),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
    }

    async fn local_get(&self, sha: &str) -> Result<Option<Arc<Vec<u8>>>, StoreError> {
        if !self.local.contains(sha) {
            return Ok(None);
        }
        match BlobStore::get(&self.local, sha).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(StoreError::MissingBlob(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Downloads and verifies a blob the cache lacks.
    async fn fetch(&self, sha: &str) -> Result<Arc<Vec<u8>>, StoreError> {
        let Some(info) = self.remote_info(sha).await? else {
            return Err(StoreError::MissingBlob(sha.to_string()));
        };
        let size = info.size;
        let bytes = bounded(
            &self.address,
            self.timeout_for(size as u64),
            "downloading a code blob",
            async {
                let mut object = self.store.get(sha).await.map_err(|e| e.to_string())?;
                let mut bytes = Vec::with_capacity(size);
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(bytes)
            },
        )
        .await?;
        let bytes = Arc::new(bytes);
        let hashed = bytes.clone();
        let actual = tokio::task::spawn_blocking(move || lambent_store::sha256_hex(&hashed))
            .await
            .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
        if actual != sha {
            return Err(NatsError::Corrupt {
                expected: sha.to_string(),
                actual,
            }
            .into());
        }
        BlobStore::put(&self.local, sha, bytes.clone()).await?;
        Ok(bytes)
    }

    fn fetch_lock(&self, sha: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(sha.to_string()).or_default().clone()
    }

    fn release_fetch_lock(&self, sha: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.fetching.lock().unwrap_or_else(|e| e.into_inner());
        // Ours plus the map's: nobody else waits on it.
        if Arc::strong_count(&lock) <= 2 {
            map.remove(sha);
        }
    }
}

#[async_trait]
impl BlobStore for NatsBlobs {
    async fn put(&self, sha: &str, bytes: Arc<Vec<u8>>) -> Result<(), StoreError> {
        if !is_sha256_hex(sha) {
            return Err(StoreError::MissingBlob(sha.to_string()));
        }
        BlobStore::put(&self.local, sha, bytes.clone()).await?;
        if let Some(info) = self.remote_info(sha).await? {
            if info.size == bytes.len() {
                return Ok(());
            }
        }
        let meta = ObjectMetadata {
            name: sha.to_string(),
            chunk_size: Some(CHUNK_SIZE),
            ..Default::default()
        };
        bounded(
            &self.address,
            self.timeout_for(bytes.len() as u64),
            "uploading a code blob",
            async {
                let mut reader: &[u8] = &bytes;
                self.store
                    .put(meta, &mut reader)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await?;
        Ok(())
    }

    async fn get(&self, sha: &str) -> Result<Arc<Vec<u8>>, StoreError> {
        if !is_sha256_hex(sha) {
            return Err(StoreError::MissingBlob(sha.to_string()));
        }
        if let Some(bytes) = self.local_get(sha).await? {
            return Ok(bytes);
        }
        let lock = self.fetch_lock(sha);
        let result = {
            let _guard = lock.lock().await;
            match self.local_get(sha).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => self.fetch(sha).await,
                Err(e) => Err(e),
            }
        };
        self.release_fetch_lock(sha, lock);
        result
    }

    async fn size(&self, sha: &str) -> Result<Option<u64>, StoreError> {
        if !is_sha256_hex(sha) {
            return Ok(None);
        }
        if let Some(size) = self.local.size(sha) {
            return Ok(Some(size));
        }
        Ok(self.remote_info(sha).await?.map(|i| i.size as u64))
    }
}

/// Runs a NATS call with a deadline; both a failure and the deadline mean NATS is unreachable
/// (from this node's point of view).
pub(crate) async fn bounded<T>(
    address: &str,
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, String>>,
) -> Result<T, NatsError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(reason)) => Err(NatsError::Unreachable {
            address: address.to_string(),
            reason: format!("{what}: {reason}"),
        }),
        Err(_) => Err(NatsError::Unreachable {
            address: address.to_string(),
            reason: format!("{what}: no answer within {limit:?}"),
        }),
    }
}

/// The bucket's store, created with its backing stream if it does not exist yet. Unlike
/// `create_key_value`, async-nats 0.51's `create_object_store` does not call `query_account()`
/// and works against Debian's nats-server 2.9 as is (stream `OBJ_<bucket>`, discard new,
/// rollup and direct get allowed); nodes racing to create it all end up with the same bucket.
pub(crate) async fn ensure_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
) -> Result<ObjectStore, String> {
    if let Ok(store) = js.get_object_store(bucket).await {
        return Ok(store);
    }
    let created = js
        .create_object_store(jetstream::object_store::Config {
            bucket: bucket.to_string(),
            description: Some(description.into()),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another node may have created it in between.
        Err(e) => js
            .get_object_store(bucket)
            .await
            .map_err(|_| format!("creating bucket {bucket}: {e}")),
    }
}
