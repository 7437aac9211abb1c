//! Captures a sandbox's stdout+stderr pipe and cuts it into per-invocation logs, capped so a
//! function that prints gigabytes costs CPU to drain, never the server's memory.

use parking_lot::Mutex;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;

/// The log of whatever invocation is current, filled by a reader task.
pub(crate) struct LogCapture {
    inner: Arc<Inner>,
    reader: tokio::task::JoinHandle<()>,
}

struct Inner {
    pipe: AsyncFd<PipeReader>,
    buf: Mutex<LogBuf>,
    cap: usize,
}

struct PipeReader(OwnedFd);

impl AsRawFd for PipeReader {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

#[derive(Default)]
struct LogBuf {
    bytes: Vec<u8>,
    dropped: u64,
}

impl LogBuf {
    fn push(&mut self, data: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        let take = room.min(data.len());
        self.bytes.extend_from_slice(&data[..take]);
        self.dropped += (data.len() - take) as u64;
    }
}

impl LogCapture {
    /// Starts draining `pipe` (non-blocking). Must be called inside a tokio runtime.
    pub(crate) fn start(pipe: OwnedFd, cap: usize) -> std::io::Result<LogCapture> {
        let inner = Arc::new(Inner {
            // SAFETY: PipeReader owns the fd and keeps it open until the AsyncFd drops.
            pipe: unsafe {
                AsyncFd::register_with_interest(PipeReader(pipe), tokio::io::Interest::READABLE)?
            },
            buf: Mutex::new(LogBuf::default()),
            cap,
        });
        let reader = tokio::spawn({
            let inner = inner.clone();
            async move {
                loop {
                    let Ok(mut guard) = inner.pipe.readable().await else {
                        return;
                    };
                    match inner.drain() {
                        Drained::WouldBlock => guard.clear_ready(),
                        Drained::Closed => return,
                    }
                }
            }
        });
        Ok(LogCapture { inner, reader })
    }

    /// Everything logged since the last call (plus what is still in the pipe), with a marker
    /// when output was dropped over the cap.
    pub(crate) fn take(&self) -> String {
        self.inner.drain();
        let mut buf = self.inner.buf.lock();
        let mut text = String::from_utf8_lossy(&buf.bytes).into_owned();
        if buf.dropped > 0 {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text += &format!(
                "[lambent: {} bytes of log output dropped over the per-invocation cap]\n",
                buf.dropped
            );
        }
        *buf = LogBuf::default();
        text
    }
}

enum Drained {
    WouldBlock,
    Closed,
}

impl Inner {
    /// Reads the pipe until it would block, holding the buffer lock so that concurrent
    /// drains (reader task, `take`) keep the output in order.
    fn drain(&self) -> Drained {
        let mut buf = self.buf.lock();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let mut file = std::mem::ManuallyDrop::new(unsafe {
                // SAFETY: the fd stays owned by `self.pipe`; ManuallyDrop keeps File from closing it.
                <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(
                    self.pipe.get_ref().as_raw_fd(),
                )
            });
            match file.read(&mut chunk) {
                Ok(0) => return Drained::Closed,
                Ok(n) => buf.push(&chunk[..n], self.cap),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Drained::WouldBlock,
                Err(_) => return Drained::Closed,
            }
        }
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pipe() -> (OwnedFd, std::fs::File) {
        let mut fds = [0; 2];
        assert_eq!(
            unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) },
            0
        );
        use std::os::fd::FromRawFd;
        unsafe {
            (
                OwnedFd::from_raw_fd(fds[0]),
                std::fs::File::from_raw_fd(fds[1]),
            )
        }
    }

    #[tokio::test]
    async fn splits_output_per_take_and_caps_it() {
        let (r, mut w) = pipe();
        let cap = LogCapture::start(r, 10).unwrap();
        w.write_all(b"hello\n").unwrap();
        assert_eq!(cap.take(), "hello\n");
        w.write_all(b"0123456789abcdef").unwrap();
        let t = cap.take();
        assert!(t.starts_with("0123456789\n[lambent: 6 bytes"), "{t}");
        assert_eq!(cap.take(), "");
    }
}
