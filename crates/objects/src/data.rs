//! Where object bytes live: the [`ObjectData`] seam and [`LocalDisk`], its implementation under
//! the data dir (a cluster's implementation, on the NATS object store, is in `lambent-bus-nats`).
//!
//! A write streams into a temporary file beside its final place (a thread of its own writes
//! while the body arrives and is hashed, and hands a large upload's data to the disk a window
//! at a time so that little is left for the end), is fsynced, renamed and the directory
//! fsynced: when [`ObjectData::write`] returns the data is durable under a fresh locator, yet
//! no object refers to it until the engine commits the metadata. A reader therefore never sees
//! half an object. A crash leaves at most a temporary file or data no
//! metadata names; [`ObjectData::collect_garbage`] removes both at start-up.
//!
//! ```text
//! <root>/<aa>/<locator>        data (locator: 32 hex digits of a random UUID, aa its first two)
//! <root>/<aa>/.<locator>.tmp   a write in progress
//! ```
//! Nothing in the layout comes from a bucket name or key.

use crate::ObjectError;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{BoxStream, StreamExt};
use lambent_store::objects::Segment;
use std::collections::HashSet;
use std::io;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A stream of bytes in (a request body) or out (an object's data).
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// A [`ByteStream`] of any stream of chunks (a request body of some HTTP library).
pub fn byte_stream<S, E>(chunks: S) -> ByteStream
where
    S: futures_util::stream::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    chunks.map(|c| c.map_err(io::Error::other)).boxed()
}

/// Sees every chunk of a write before it is stored; an error stops the write.
pub type Observer<'a> = &'a mut (dyn FnMut(&[u8]) -> Result<(), ObjectError> + Send);

/// The object data store.
#[async_trait]
pub trait ObjectData: Send + Sync + 'static {
    /// Streams `body` into new data (each chunk shown to `observe` first). Durable when it
    /// returns; on any error nothing is left behind.
    async fn write(&self, body: ByteStream, observe: Observer<'_>) -> Result<Segment, ObjectError>;
    /// Opens `len` bytes of some data from `offset`: a missing locator is
    /// [`ObjectError::NoSuchKey`] (it was replaced meanwhile). Opened before it returns, so a
    /// later delete does not cut the stream short.
    async fn read(&self, locator: &str, offset: u64, len: u64) -> Result<ByteStream, ObjectError>;
    /// Deletes some data (missing data is no error).
    async fn delete(&self, locator: &str) -> Result<(), ObjectError>;
    /// Removes data no metadata refers to: on [`LocalDisk`] every write in progress and every
    /// piece of data not in `referenced`, so only while nothing writes (at start-up); an
    /// implementation that answers [`ObjectData::collection_interval`] is safe while writes go on.
    /// Returns how many pieces went.
    async fn collect_garbage(&self, referenced: &HashSet<String>) -> Result<u64, ObjectError>;
    /// How often [`ObjectData::collect_garbage`] should run while the node serves: `None` (the
    /// default) means once, at start-up, before anything writes.
    fn collection_interval(&self) -> Option<Duration> {
        None
    }
}

/// Object data as files under one directory.
pub struct LocalDisk {
    root: PathBuf,
}

/// Removes a temporary file unless disarmed (an error, or a dropped request, leaves nothing).
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether `name` is a locator this store made (so a path built from it stays in its shard).
fn is_locator(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl LocalDisk {
    /// Uses (creating) `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalDisk, ObjectError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(LocalDisk { root })
    }

    fn path(&self, locator: &str) -> Result<PathBuf, ObjectError> {
        if !is_locator(locator) {
            return Err(ObjectError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("'{locator}' is not a data locator"),
            )));
        }
        Ok(self.root.join(&locator[..2]).join(locator))
    }
}

async fn fsync_dir(dir: &Path) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
        .await
        .map_err(io::Error::other)?
}

/// Reads up to this much of a file in one go (one chunk of a download).
const READ_CHUNK: usize = 1 << 20;
/// Chunks a download reads ahead of the response (the disk and the socket work at once).
const READ_AHEAD: usize = 2;
/// An upload's small chunks are gathered into writes of at least this much (one vectored
/// `write`, no copy).
const WRITE_CHUNK: usize = 256 * 1024;
/// Chunks an upload hands to its writer ahead of the disk (hashing and writing overlap).
const WRITE_AHEAD: usize = 4;
/// A large upload's data is handed to the disk every this many bytes while it arrives
/// (writeback started, not waited for), so the disk works while the body is still being
/// received and hashed, and the final fsync finds little left to write.
const FLUSH_WINDOW: u64 = 8 << 20;

/// A file being written by a blocking thread: gathered chunks in, then `None` to finish
/// (fsync). A writer whose sender goes away without `None` stops without syncing.
type Chunks = tokio::sync::mpsc::Sender<Option<Vec<Bytes>>>;

/// Writes all of `chunks` with vectored writes.
fn write_chunks(file: &mut std::fs::File, chunks: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts writing back `len` bytes from `offset` (`sync_file_range(2)`, not waited for). Only
/// a hint: the fsync at the end is what makes the data durable, and reports any error.
fn start_writeback(file: &std::fs::File, offset: u64, len: u64) {
    use std::os::unix::io::AsRawFd;
    let flags = libc::SYNC_FILE_RANGE_WRITE;
    // SAFETY: a valid open descriptor; the call reads no memory of ours.
    unsafe { libc::sync_file_range(file.as_raw_fd(), offset as i64, len as i64, flags) };
}

fn write_file(
    mut file: std::fs::File,
    mut chunks: tokio::sync::mpsc::Receiver<Option<Vec<Bytes>>>,
) -> io::Result<()> {
    let (mut written, mut flushed) = (0u64, 0u64);
    while let Some(chunk) = chunks.blocking_recv() {
        let Some(chunk) = chunk else {
            return file.sync_all();
        };
        write_chunks(&mut file, &chunk)?;
        written += chunk.iter().map(|c| c.len() as u64).sum::<u64>();
        if written - flushed >= FLUSH_WINDOW {
            start_writeback(&file, flushed, written - flushed);
            flushed = written;
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        "the write was abandoned",
    ))
}

/// Feeds a body to a writer (each chunk shown to `observe` first), gathering small chunks; its
/// size. Stops early if the writer has failed (its error tells why).
async fn feed(
    mut body: ByteStream,
    observe: Observer<'_>,
    chunks: &Chunks,
) -> Result<u64, ObjectError> {
    let mut size = 0u64;
    let (mut pending, mut pending_len) = (Vec::new(), 0usize);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ObjectError::BodyFailed(e.to_string()))?;
        observe(&chunk)?;
        size += chunk.len() as u64;
        pending_len += chunk.len();
        pending.push(chunk);
        if pending_len < WRITE_CHUNK {
            continue;
        }
        pending_len = 0;
        if chunks
            .send(Some(std::mem::take(&mut pending)))
            .await
            .is_err()
        {
            return Ok(size);
        }
    }
    if !pending.is_empty() {
        let _ = chunks.send(Some(pending)).await;
    }
    let _ = chunks.send(None).await;
    Ok(size)
}

/// The next `len` bytes of a file (or an error: the data is shorter than its metadata says).
/// Read into fresh memory without zeroing it first (`read_to_end` reads into spare capacity).
fn read_chunk(file: &mut std::fs::File, len: usize) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(len);
    file.take(len as u64).read_to_end(&mut buf)?;
    if buf.len() < len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "object data is shorter than its metadata says",
        ));
    }
    Ok(Bytes::from(buf))
}

#[async_trait]
impl ObjectData for LocalDisk {
    async fn write(&self, body: ByteStream, observe: Observer<'_>) -> Result<Segment, ObjectError> {
        let locator = uuid::Uuid::new_v4().simple().to_string();
        let path = self.path(&locator)?;
        let dir = path.parent().expect("a shard directory").to_path_buf();
        let tmp_path = dir.join(format!(".{locator}.tmp"));
        let created = tmp_path.clone();
        let file = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(created.parent().expect("a shard directory"))?;
            std::fs::File::create(&created)
        })
        .await
        .map_err(io::Error::other)??;
        let mut tmp = TempFile(Some(tmp_path.clone()));
        // The disk is written by a thread of its own while the body arrives and is hashed.
        let (chunks, received) = tokio::sync::mpsc::channel(WRITE_AHEAD);
        let writer = tokio::task::spawn_blocking(move || write_file(file, received));
        let fed = feed(body, observe, &chunks).await;
        drop(chunks);
        let written = writer.await.map_err(io::Error::other)?;
        let size = fed?;
        written?;
        tokio::fs::rename(&tmp_path, &path).await?;
        tmp.0 = None;
        fsync_dir(&dir).await?;
        Ok(Segment { locator, size })
    }

    async fn read(&self, locator: &str, offset: u64, len: u64) -> Result<ByteStream, ObjectError> {
        let path = self.path(locator)?;
        // Opened (and a small object read whole) in one trip to a blocking thread.
        let opened = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let mut file = std::fs::File::open(path)?;
            if offset > 0 {
                file.seek(io::SeekFrom::Start(offset))?;
            }
            let whole = match len <= READ_CHUNK as u64 {
                true => Some(read_chunk(&mut file, len as usize)?),
                false => None,
            };
            Ok((file, whole))
        })
        .await
        .map_err(io::Error::other)?;
        let (mut file, whole) = match opened {
            Ok(o) => o,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ObjectError::NoSuchKey),
            Err(e) => return Err(e.into()),
        };
        if let Some(bytes) = whole {
            let chunks = (!bytes.is_empty()).then_some(Ok(bytes));
            return Ok(futures_util::stream::iter(chunks).boxed());
        }
        // A large read: a thread reads ahead while the response is sent.
        let (chunks, received) = tokio::sync::mpsc::channel(READ_AHEAD);
        tokio::task::spawn_blocking(move || {
            let mut left = len;
            while left > 0 {
                let want = left.min(READ_CHUNK as u64) as usize;
                let chunk = read_chunk(&mut file, want);
                let failed = chunk.is_err();
                if chunks.blocking_send(chunk).is_err() || failed {
                    return;
                }
                left -= want as u64;
            }
        });
        let stream = futures_util::stream::unfold(received, |mut received| async move {
            received.recv().await.map(|chunk| (chunk, received))
        });
        Ok(stream.boxed())
    }

    async fn delete(&self, locator: &str) -> Result<(), ObjectError> {
        match tokio::fs::remove_file(self.path(locator)?).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn collect_garbage(&self, referenced: &HashSet<String>) -> Result<u64, ObjectError> {
        let root = self.root.clone();
        let referenced = referenced.clone();
        tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for shard in std::fs::read_dir(&root)? {
                let shard = shard?;
                if !shard.file_type()?.is_dir() {
                    continue;
                }
                for entry in std::fs::read_dir(shard.path())? {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !referenced.contains(&name) {
                        std::fs::remove_file(entry.path())?;
                        removed += 1;
                    }
                }
            }
            Ok(removed)
        })
        .await
        .map_err(io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: Vec<io::Result<Bytes>>) -> ByteStream {
        futures_util::stream::iter(chunks).boxed()
    }

    async fn collect(s: ByteStream) -> Vec<u8> {
        let chunks: Vec<Bytes> = s.map(|c| c.unwrap()).collect().await;
        chunks.concat()
    }

    fn files(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for shard in std::fs::read_dir(root).unwrap() {
            for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
                out.push(f.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        out
    }

    #[tokio::test]
    async fn writes_read_back_by_range_and_failed_writes_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LocalDisk::open(dir.path()).unwrap();
        let mut seen = 0;
        let seg = disk
            .write(
                body(vec![Ok(Bytes::from("hello ")), Ok(Bytes::from("world"))]),
                &mut |c: &[u8]| {
                    seen += c.len();
                    Ok(())
                },
            )
            .await
            .unwrap();
        assert_eq!((seg.size, seen), (11, 11));
        assert_eq!(
            collect(disk.read(&seg.locator, 0, 11).await.unwrap()).await,
            b"hello world"
        );
        assert_eq!(
            collect(disk.read(&seg.locator, 6, 3).await.unwrap()).await,
            b"wor"
        );

        // A body that breaks off, and a write its observer refuses, leave no file.
        let broken = disk
            .write(
                body(vec![Ok(Bytes::from("x")), Err(io::Error::other("reset"))]),
                &mut |_: &[u8]| Ok(()),
            )
            .await;
        assert!(matches!(broken, Err(ObjectError::BodyFailed(_))));
        let refused = disk
            .write(body(vec![Ok(Bytes::from("xx"))]), &mut |_: &[u8]| {
                Err(ObjectError::EntityTooLarge { max: 1 })
            })
            .await;
        assert!(matches!(refused, Err(ObjectError::EntityTooLarge { .. })));
        assert_eq!(files(dir.path()), vec![seg.locator.clone()]);

        // Reading a file that is open survives its deletion.
        let open = disk.read(&seg.locator, 0, 11).await.unwrap();
        disk.delete(&seg.locator).await.unwrap();
        disk.delete(&seg.locator).await.unwrap();
        assert_eq!(collect(open).await, b"hello world");
        assert!(matches!(
            disk.read(&seg.locator, 0, 1).await,
            Err(ObjectError::NoSuchKey)
        ));
        assert!(disk.read("../../etc/passwd", 0, 1).await.is_err());
    }

    #[tokio::test]
    async fn large_data_is_written_and_read_ahead_in_order_by_range() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LocalDisk::open(dir.path()).unwrap();
        // Past a writeback window, so that writeback starts while the upload goes on.
        let bytes: Vec<u8> = (0..FLUSH_WINDOW as usize + READ_CHUNK * 5 / 2)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        // Chunks of many sizes: small ones gathered, large ones passed on.
        let chunks: Vec<io::Result<Bytes>> = bytes
            .chunks(1000)
            .take(300)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .chain(
                bytes[300_000..]
                    .chunks(WRITE_CHUNK + 17)
                    .map(|c| Ok(Bytes::copy_from_slice(c))),
            )
            .collect();
        let seg = disk
            .write(body(chunks), &mut |_: &[u8]| Ok(()))
            .await
            .unwrap();
        assert_eq!(seg.size, bytes.len() as u64);
        let all = disk.read(&seg.locator, 0, seg.size).await.unwrap();
        assert!(collect(all).await == bytes);
        let (from, len) = (READ_CHUNK - 3, READ_CHUNK + 10);
        let part = disk
            .read(&seg.locator, from as u64, len as u64)
            .await
            .unwrap();
        assert!(collect(part).await == bytes[from..from + len]);
        // Metadata claiming more than the data holds ends the stream with an error.
        let long = disk
            .read(&seg.locator, 0, seg.size + READ_CHUNK as u64)
            .await
            .unwrap();
        let results: Vec<io::Result<Bytes>> = long.collect().await;
        assert!(results.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn garbage_collection_removes_temporaries_and_unreferenced_data() {
        let dir = tempfile::tempdir().unwrap();
        let disk = LocalDisk::open(dir.path()).unwrap();
        let keep = disk
            .write(body(vec![Ok(Bytes::from("keep"))]), &mut |_: &[u8]| Ok(()))
            .await
            .unwrap();
        let orphan = disk
            .write(
                body(vec![Ok(Bytes::from("orphan"))]),
                &mut |_: &[u8]| Ok(()),
            )
            .await
            .unwrap();
        // A crash mid-write leaves a temporary file.
        let shard = dir.path().join("ab");
        std::fs::create_dir_all(&shard).unwrap();
        std::fs::write(shard.join(format!(".{}.tmp", "ab".repeat(16))), b"half").unwrap();
        let referenced = HashSet::from([keep.locator.clone()]);
        assert_eq!(disk.collect_garbage(&referenced).await.unwrap(), 2);
        assert_eq!(files(dir.path()), vec![keep.locator.clone()]);
        assert!(disk.read(&orphan.locator, 0, 1).await.is_err());
    }
}
