//! Content-addressed code blobs behind [`BlobStore`]: [`FsBlobs`] on the local file system
//! (`blobs/<sha256>`, written atomically: temporary file, fsync, rename, so a crash never leaves
//! a truncated blob under a valid name) for the embedded single node; a cluster's store keeps
//! them where every node can fetch them, with an `FsBlobs` as each node's cache.

use crate::{sha256_hex, StoreError};
use async_trait::async_trait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where code zips are kept, by SHA-256.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` (whose hex SHA-256 the caller computed as `sha`); storing the same bytes
    /// twice is a no-op.
    async fn put(&self, sha: &str, bytes: Arc<Vec<u8>>) -> Result<(), StoreError>;
    /// The bytes of a blob ([`StoreError::MissingBlob`] if nobody has it); a cluster node
    /// lacking one fetches it once, checks its hash and keeps it.
    async fn get(&self, sha: &str) -> Result<Arc<Vec<u8>>, StoreError>;
    /// Size of a stored blob, `None` if it is not stored.
    async fn size(&self, sha: &str) -> Result<Option<u64>, StoreError>;
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn put(&self, sha: &str, bytes: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let (blobs, sha) = (self.clone(), sha.to_string());
        blocking(move || blobs.put_as(&sha, &bytes)).await
    }

    async fn get(&self, sha: &str) -> Result<Arc<Vec<u8>>, StoreError> {
        let (blobs, sha) = (self.clone(), sha.to_string());
        blocking(move || blobs.get(&sha).map(Arc::new)).await
    }

    async fn size(&self, sha: &str) -> Result<Option<u64>, StoreError> {
        Ok(match is_sha256_hex(sha) {
            true => FsBlobs::size(self, sha),
            false => None,
        })
    }
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(std::io::Error::other(e.to_string()))))
}

#[derive(Debug, Clone)]
pub struct FsBlobs {
    dir: PathBuf,
}

impl FsBlobs {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(FsBlobs { dir })
    }

    /// Stores `bytes` and returns their hex SHA-256; storing the same bytes twice is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let sha = sha256_hex(bytes);
        self.put_as(&sha, bytes)?;
        Ok(sha)
    }

    /// Stores `bytes` whose SHA-256 is known to be `sha`.
    pub fn put_as(&self, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if !is_sha256_hex(sha) {
            return Err(StoreError::MissingBlob(sha.to_string()));
        }
        let path = self.path(sha);
        if !path.exists() {
            let tmp = self
                .dir
                .join(format!(".{sha}.{}", uuid::Uuid::new_v4().simple()));
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(())
    }

    pub fn contains(&self, sha: &str) -> bool {
        is_sha256_hex(sha) && self.path(sha).is_file()
    }

    pub fn get(&self, sha: &str) -> Result<Vec<u8>, StoreError> {
        if !self.contains(sha) {
            return Err(StoreError::MissingBlob(sha.to_string()));
        }
        Ok(std::fs::read(self.path(sha))?)
    }

    /// Size in bytes of a stored blob.
    pub fn size(&self, sha: &str) -> Option<u64> {
        std::fs::metadata(self.path(sha)).ok().map(|m| m.len())
    }

    fn path(&self, sha: &str) -> PathBuf {
        self.dir.join(sha)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Whether `s` looks like a hex SHA-256 (and so is safe as a file name).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FsBlobs::open(dir.path()).unwrap();
        let a = blobs.put(b"hello").unwrap();
        assert_eq!(a, sha256_hex(b"hello"));
        assert_eq!(blobs.put(b"hello").unwrap(), a);
        assert_eq!(blobs.get(&a).unwrap(), b"hello");
        assert!(!blobs.contains("../etc/passwd"));
        assert!(matches!(
            blobs.get(&"0".repeat(64)),
            Err(StoreError::MissingBlob(_))
        ));
    }
}
