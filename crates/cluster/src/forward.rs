//! The hop between nodes: a synchronous invocation that belongs to another node (its home, or
//! the next one when the home is saturated) is sent there over a *link*, one persistent TCP
//! connection per peer carrying every invocation this node forwards to it, multiplexed.
//! The receiving node runs it itself and never forwards it again.
//!
//! ## Wire
//!
//! A link opens as an HTTP/1.1 upgrade on the peer's ordinary listener, authenticated with the
//! cluster's secret: `GET /v1/cluster/link` with `Authorization: Bearer <secret>`,
//! `Connection: Upgrade`, `Upgrade: lambent-link/1` and `Lambent-Forwarded-By: <node id>`;
//! the peer answers `101 Switching Protocols` (or `401`). From then on both directions carry
//! frames, all integers big-endian:
//!
//! ```text
//! frame   = length:u32 (of what follows) id:u64 kind:u8 body
//! invoke  (kind 1, sender → peer)  revision:u64 flags:u8 (bit 0: may spill)
//!                                  namespace function trigger request-id qualifier
//!                                  client-context cognito-identity trace (each: len:u32
//!                                  bytes; len 0xFFFF_FFFF = absent; trace: the
//!                                  `TraceOrigin` as JSON) payload (the rest)
//! result  (kind 2, peer → sender)  record-length:u32 record (the activation, JSON)
//!                                  result (the rest: the function's bytes as they are)
//! refused (kind 3, peer → sender)  status:u16 message (UTF-8, the rest)
//! ```
//!
//! Answers carry the id of their invocation and come in any order. Neither payloads nor
//! results are re-encoded. A frame is written by the task that has it, at once, without
//! waiting (no hand-over to a writer task: each hop between tasks costs more CPU than the
//! frame); what the socket does not take at once queues, and the link's writer task sends it
//! with the frames that queued meanwhile in one write. A link that
//! breaks fails the invocations waiting on it (their senders try another node), and the next
//! forward to that peer opens a new one.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use lambent_core::Activation;
use lambent_invoker::{InvokeRequest, InvokeResult};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;

/// The path a node accepts links on.
pub const LINK_PATH: &str = "/v1/cluster/link";
/// The `Upgrade` protocol of a link.
pub const LINK_PROTOCOL: &str = "lambent-link/1";
/// The handshake header naming the node that opens a link.
pub const FORWARDED_BY: &str = "lambent-forwarded-by";

/// Longest frame a node accepts (a payload or result up to the sync limit, with room to spare).
pub const MAX_FRAME: usize = 8 * 1024 * 1024 + 64 * 1024;

const INVOKE: u8 = 1;
const RESULT: u8 = 2;
const REFUSED: u8 = 3;
const ABSENT: u32 = u32::MAX;
/// Frame header: length, id, kind.
const HEADER: usize = 4 + 8 + 1;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a forwarded invocation got no answer from the node it was sent to.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The node could not be reached (or broke the link): try another.
    #[error("node {node} at {address} is unreachable: {reason}")]
    Unreachable {
        node: String,
        address: String,
        reason: String,
    },
    /// The node answered, but not with a result (it does not know the function yet, or
    /// refused the link).
    #[error("node {node} refused the forwarded invocation: {status} {message}")]
    Refused {
        node: String,
        status: u16,
        message: String,
    },
}

/// What identifies the function revision a forwarded invocation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub function: String,
    pub revision: u64,
}

/// The receiving node's answer when it runs no invocation: an HTTP status and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

/// A malformed frame or handshake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct WireError(String);

fn wire(message: impl Into<String>) -> WireError {
    WireError(message.into())
}

// ---------------------------------------------------------------------------------------------
// Frames

/// One whole frame as read off a link: its id, kind and body.
struct Frame {
    id: u64,
    kind: u8,
    body: Bytes,
}

fn frame(id: u64, kind: u8, body_len: usize) -> BytesMut {
    let mut out = BytesMut::with_capacity(HEADER + body_len);
    out.put_u32((8 + 1 + body_len) as u32);
    out.put_u64(id);
    out.put_u8(kind);
    out
}

fn put_text(out: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(t) => {
            out.put_u32(t.len() as u32);
            out.put_slice(t.as_bytes());
        }
        None => out.put_u32(ABSENT),
    }
}

fn get_text(body: &mut Bytes, what: &str) -> Result<Option<String>, WireError> {
    if body.remaining() < 4 {
        return Err(wire(format!("truncated {what}")));
    }
    let len = body.get_u32();
    if len == ABSENT {
        return Ok(None);
    }
    if body.remaining() < len as usize {
        return Err(wire(format!("truncated {what}")));
    }
    let bytes = body.split_to(len as usize);
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| wire(format!("{what} is not UTF-8")))
}

/// An `invoke` frame.
pub fn encode_invoke(id: u64, target: &Target, req: &InvokeRequest, may_spill: bool) -> Bytes {
    let trace = (req.trace != Default::default())
        .then(|| serde_json::to_string(&req.trace).expect("trace origins serialize"));
    let texts = [
        Some(target.namespace.as_str()),
        Some(target.function.as_str()),
        Some(req.trigger.as_str()),
        req.request_id.as_deref(),
        req.qualifier.as_deref(),
        req.client_context.as_deref(),
        req.cognito_identity.as_deref(),
        trace.as_deref(),
    ];
    let len = 8
        + 1
        + texts
            .iter()
            .map(|t| 4 + t.map_or(0, str::len))
            .sum::<usize>();
    let mut out = frame(id, INVOKE, len + req.payload.len());
    out.put_u64(target.revision);
    out.put_u8(u8::from(may_spill));
    for t in texts {
        put_text(&mut out, t);
    }
    out.put_slice(&req.payload);
    out.freeze()
}

/// The body of an `invoke` frame: what to run, how, and whether the sender may spill.
pub fn decode_invoke(mut body: Bytes) -> Result<(Target, InvokeRequest, bool), WireError> {
    if body.remaining() < 9 {
        return Err(wire("truncated invocation"));
    }
    let revision = body.get_u64();
    let may_spill = body.get_u8() & 1 == 1;
    let required = |body: &mut Bytes, what: &str| {
        get_text(body, what)?.ok_or_else(|| wire(format!("missing {what}")))
    };
    let target = Target {
        namespace: required(&mut body, "namespace")?,
        function: required(&mut body, "function")?,
        revision,
    };
    let trigger = required(&mut body, "trigger")?;
    let request_id = get_text(&mut body, "request id")?;
    let qualifier = get_text(&mut body, "qualifier")?;
    let client_context = get_text(&mut body, "client context")?;
    let cognito_identity = get_text(&mut body, "cognito identity")?;
    let trace = match get_text(&mut body, "trace")? {
        Some(t) => serde_json::from_str(&t).map_err(|e| wire(format!("invalid trace: {e}")))?,
        None => Default::default(),
    };
    let req = InvokeRequest {
        payload: body,
        trigger,
        request_id,
        qualifier,
        client_context,
        cognito_identity,
        may_spill,
        trace,
    };
    Ok((target, req, may_spill))
}

/// A `result` frame: the activation record's JSON, then the result bytes.
pub fn encode_result(id: u64, result: &InvokeResult) -> Bytes {
    let record = serde_json::to_vec(&result.activation).expect("activations serialize");
    let mut out = frame(id, RESULT, 4 + record.len() + result.body.len());
    out.put_u32(record.len() as u32);
    out.put_slice(&record);
    out.put_slice(&result.body);
    out.freeze()
}

pub fn decode_result(mut body: Bytes) -> Result<InvokeResult, WireError> {
    if body.remaining() < 4 {
        return Err(wire("truncated answer"));
    }
    let len = body.get_u32() as usize;
    if body.remaining() < len {
        return Err(wire("truncated activation record"));
    }
    let record = body.split_to(len);
    let activation: Activation =
        serde_json::from_slice(&record).map_err(|e| wire(format!("bad activation record: {e}")))?;
    // The node that ran it left the record to whoever answers the HTTP request: this node.
    let record_due = lambent_invoker::awaits_http_status(&activation);
    Ok(InvokeResult {
        activation,
        body,
        record_due,
    })
}

/// A `refused` frame.
pub fn encode_refused(id: u64, refusal: &Refusal) -> Bytes {
    let mut out = frame(id, REFUSED, 2 + refusal.message.len());
    out.put_u16(refusal.status);
    out.put_slice(refusal.message.as_bytes());
    out.freeze()
}

pub fn decode_refused(mut body: Bytes) -> Result<Refusal, WireError> {
    if body.remaining() < 2 {
        return Err(wire("truncated refusal"));
    }
    let status = body.get_u16();
    Ok(Refusal {
        status,
        message: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Splits whole frames off the front of `buf` (leaving a partial one in place).
fn next_frame(buf: &mut BytesMut) -> Result<Option<Frame>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if !(9..=MAX_FRAME).contains(&len) {
        return Err(wire(format!("bad frame length {len}")));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    let mut whole = buf.split_to(4 + len).freeze();
    whole.advance(4);
    let id = whole.get_u64();
    let kind = whole.get_u8();
    Ok(Some(Frame {
        id,
        kind,
        body: whole,
    }))
}

/// Reads whole frames off a link.
struct FrameReader<R> {
    io: R,
    buf: BytesMut,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Starts with what was already read past the handshake.
    fn new(io: R, buf: BytesMut) -> FrameReader<R> {
        FrameReader { io, buf }
    }

    /// The next frame; why there is none when the link ended or broke. Cancel-safe: a frame
    /// is taken from the buffer only when whole, and bytes read stay in the buffer.
    async fn next(&mut self) -> Result<Frame, String> {
        loop {
            if let Some(frame) = next_frame(&mut self.buf).map_err(|e| e.to_string())? {
                return Ok(frame);
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) => return Err("the link was closed".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

/// The sending half of a link, shared by every task that sends on it. A frame is written by
/// the task that has it, at once, with a write that does not wait (no hand-over to another
/// task, no wake-up of a writer, no copy) whenever nothing is queued before it; what the socket
/// does not take at once is queued, and the link's writer task drains the queue, together with
/// the frames that arrive meanwhile, in one write each time. Sending never awaits, so a caller
/// that gives up cannot leave half a frame on the link.
struct Outbox<W> {
    state: Mutex<Out<W>>,
    /// Something was queued, or the link is closing: the writer task has work.
    work: tokio::sync::Notify,
}

struct Out<W> {
    io: W,
    /// Bytes the socket did not take yet, in order.
    queued: BytesMut,
    /// Why the link carries nothing more (a write failed or the link was closed).
    broken: Option<String>,
    /// Write what is queued, then shut the link down.
    closing: bool,
}

impl<W: AsyncWrite + Unpin> Outbox<W> {
    fn new(io: W) -> Arc<Outbox<W>> {
        Arc::new(Outbox {
            state: Mutex::new(Out {
                io,
                queued: BytesMut::new(),
                broken: None,
                closing: false,
            }),
            work: tokio::sync::Notify::new(),
        })
    }

    /// Sends one frame (written now, or queued for the writer task); false if the link is
    /// broken or closing.
    fn send(&self, frame: &[u8]) -> bool {
        let mut out = self.state.lock();
        if out.broken.is_some() || out.closing {
            return false;
        }
        let mut rest = frame;
        if out.queued.is_empty() {
            // Nothing before it: write it now. A socket that would block is polled again by
            // the writer task, with its own waker, once the rest is queued.
            let mut cx = Context::from_waker(std::task::Waker::noop());
            while !rest.is_empty() {
                match Pin::new(&mut out.io).poll_write(&mut cx, rest) {
                    Poll::Ready(Ok(0)) => return self.fail(out, "the link was closed".into()),
                    Poll::Ready(Ok(n)) => rest = &rest[n..],
                    Poll::Ready(Err(e)) => return self.fail(out, e.to_string()),
                    Poll::Pending => break,
                }
            }
            if rest.is_empty() {
                return true;
            }
        }
        let was_idle = out.queued.is_empty();
        out.queued.extend_from_slice(rest);
        drop(out);
        if was_idle {
            self.work.notify_one();
        }
        true
    }

    fn fail(&self, mut out: parking_lot::MutexGuard<'_, Out<W>>, why: String) -> bool {
        out.broken = Some(why);
        out.queued.clear();
        drop(out);
        self.work.notify_one();
        false
    }

    /// Writes what is queued; then, closing, shuts the link down. After it returns, frames
    /// are refused.
    fn close(&self) {
        self.state.lock().closing = true;
        self.work.notify_one();
    }

    /// Writes as much of the queue as the socket takes: ready when the queue is empty (`true`:
    /// the writer is done, the link broke or was closed).
    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut out = self.state.lock();
        let Out {
            io,
            queued,
            broken,
            closing,
        } = &mut *out;
        loop {
            if broken.is_some() {
                return Poll::Ready(true);
            }
            if queued.is_empty() {
                if !*closing {
                    return Poll::Ready(false);
                }
                if Pin::new(&mut *io).poll_shutdown(cx).is_pending() {
                    return Poll::Pending;
                }
                *broken = Some("the link was closed".into());
                return Poll::Ready(true);
            }
            match Pin::new(&mut *io).poll_write(cx, queued) {
                Poll::Ready(Ok(0)) => *broken = Some("the link was closed".into()),
                Poll::Ready(Ok(n)) => queued.advance(n),
                Poll::Ready(Err(e)) => {
                    *broken = Some(e.to_string());
                    queued.clear();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// The writer task: drains the queue whenever a sender could not write everything, until
    /// the link breaks or is closed; why it ended.
    async fn drain(self: Arc<Self>) -> String {
        loop {
            self.work.notified().await;
            if std::future::poll_fn(|cx| self.poll_drain(cx)).await {
                return self.state.lock().broken.clone().unwrap_or_default();
            }
        }
    }

    fn is_open(&self) -> bool {
        let out = self.state.lock();
        out.broken.is_none() && !out.closing
    }
}

// ---------------------------------------------------------------------------------------------
// The sending side

type Answer = oneshot::Sender<Frame>;

/// One open link to a peer.
struct Link {
    out: Arc<Outbox<tokio::net::tcp::OwnedWriteHalf>>,
    /// Invocations waiting for their answer; `None` once the link broke.
    waiting: Mutex<Option<HashMap<u64, Answer>>>,
    next_id: AtomicU64,
}

impl Link {
    fn is_open(&self) -> bool {
        self.waiting.lock().is_some() && self.out.is_open()
    }

    /// Fails every waiting invocation (their answers' senders drop) and refuses new ones.
    fn broke(&self) {
        self.waiting.lock().take();
    }
}

/// The sending side: one link per peer, opened on first use and again after it breaks.
#[derive(Clone)]
pub struct Forwarder {
    secret: Arc<str>,
    me: Arc<str>,
    peers: Arc<Mutex<HashMap<String, Arc<Peer>>>>,
}

/// This node's link to one peer address.
#[derive(Default)]
struct Peer {
    link: Mutex<Option<Arc<Link>>>,
    /// Serializes opening the link, so a burst to a new peer opens one.
    opening: tokio::sync::Mutex<()>,
    /// When the last attempt to open it failed, and why: callers that waited for that attempt
    /// fail with it rather than each waiting for a connect of its own.
    failed: Mutex<Option<(Instant, String)>>,
}

impl Peer {
    fn open_link(&self) -> Option<Arc<Link>> {
        self.link.lock().clone().filter(|l| l.is_open())
    }
}

impl Forwarder {
    pub fn new(me: &str, secret: &str) -> Forwarder {
        Forwarder {
            secret: secret.into(),
            me: me.into(),
            peers: Arc::default(),
        }
    }

    /// Runs `req` on the node at `address` (e.g. `http://10.0.0.2:8080`).
    pub async fn invoke(
        &self,
        node: &str,
        address: &str,
        target: &Target,
        req: &InvokeRequest,
        may_spill: bool,
        timeout: Duration,
    ) -> Result<InvokeResult, ForwardError> {
        let unreachable = |reason: String| ForwardError::Unreachable {
            node: node.to_string(),
            address: address.to_string(),
            reason,
        };
        let refused = |status: u16, message: String| ForwardError::Refused {
            node: node.to_string(),
            status,
            message,
        };
        let link = self.link(address).await.map_err(|e| match e {
            Opening::Unreachable(reason) => unreachable(reason),
            Opening::Refused(status, message) => refused(status, message),
        })?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match link.waiting.lock().as_mut() {
            Some(waiting) => waiting.insert(id, tx),
            None => return Err(unreachable("the link broke".into())),
        };
        if !link.out.send(&encode_invoke(id, target, req, may_spill)) {
            link.broke();
            return Err(unreachable("the link broke".into()));
        }
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => return Err(unreachable("the link broke".into())),
            Err(_) => {
                if let Some(waiting) = link.waiting.lock().as_mut() {
                    waiting.remove(&id);
                }
                return Err(unreachable(format!("no answer within {timeout:?}")));
            }
        };
        match answer.kind {
            RESULT => decode_result(answer.body).map_err(|e| refused(502, e.to_string())),
            REFUSED => {
                let r = decode_refused(answer.body).map_err(|e| refused(502, e.to_string()))?;
                Err(refused(r.status, r.message))
            }
            other => Err(refused(502, format!("unknown frame kind {other}"))),
        }
    }

    /// The open link to `address`, opened if there is none.
    async fn link(&self, address: &str) -> Result<Arc<Link>, Opening> {
        let peer = {
            let mut peers = self.peers.lock();
            match peers.get(address) {
                Some(p) => p.clone(),
                None => peers.entry(address.to_string()).or_default().clone(),
            }
        };
        if let Some(link) = peer.open_link() {
            return Ok(link);
        }
        let asked = Instant::now();
        let _opening = peer.opening.lock().await;
        if let Some(link) = peer.open_link() {
            return Ok(link);
        }
        if let Some((at, reason)) = peer.failed.lock().as_ref() {
            if *at >= asked {
                return Err(Opening::Unreachable(reason.clone()));
            }
        }
        match self.open(address).await {
            Ok(link) => {
                *peer.link.lock() = Some(link.clone());
                Ok(link)
            }
            Err(e) => {
                if let Opening::Unreachable(reason) = &e {
                    *peer.failed.lock() = Some((Instant::now(), reason.clone()));
                }
                Err(e)
            }
        }
    }

    async fn open(&self, address: &str) -> Result<Arc<Link>, Opening> {
        let authority = address
            .strip_prefix("http://")
            .ok_or_else(|| Opening::Unreachable(format!("not an http:// address: {address}")))?
            .trim_end_matches('/');
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let mut stream = tokio::net::TcpStream::connect(authority)
                .await
                .map_err(|e| Opening::Unreachable(e.to_string()))?;
            stream
                .set_nodelay(true)
                .map_err(|e| Opening::Unreachable(e.to_string()))?;
            let leftover = self.handshake(&mut stream, authority).await?;
            Ok::<_, Opening>((stream, leftover))
        })
        .await
        .map_err(|_| Opening::Unreachable(format!("no link within {CONNECT_TIMEOUT:?}")))??;
        let (stream, leftover) = opened;
        let (read, write) = stream.into_split();
        let link = Arc::new(Link {
            out: Outbox::new(write),
            waiting: Mutex::new(Some(HashMap::new())),
            next_id: AtomicU64::new(1),
        });
        let writer = link.clone();
        tokio::spawn(async move {
            let why = writer.out.clone().drain().await;
            tracing::debug!("link write ended: {why}");
            writer.broke();
        });
        let reader = link.clone();
        let peer = address.to_string();
        tokio::spawn(async move {
            let mut frames = FrameReader::new(read, leftover);
            let why = loop {
                match frames.next().await {
                    Ok(f) => {
                        let answer = reader.waiting.lock().as_mut().and_then(|w| w.remove(&f.id));
                        if let Some(answer) = answer {
                            let _ = answer.send(f);
                        }
                    }
                    Err(e) => break e,
                }
            };
            tracing::debug!("link to {peer}: {why}");
            reader.broke();
            reader.out.close();
        });
        Ok(link)
    }

    /// Asks for the upgrade; what the peer sent after its `101` (normally nothing).
    async fn handshake(
        &self,
        stream: &mut tokio::net::TcpStream,
        authority: &str,
    ) -> Result<BytesMut, Opening> {
        let unreachable = |e: std::io::Error| Opening::Unreachable(e.to_string());
        let request = format!(
            "GET {LINK_PATH} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\n\
             Connection: Upgrade\r\nUpgrade: {LINK_PROTOCOL}\r\n{FORWARDED_BY}: {}\r\n\r\n",
            self.secret, self.me
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(unreachable)?;
        let mut buf = BytesMut::with_capacity(4096);
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err(Opening::Unreachable("an oversized handshake answer".into()));
            }
            if stream.read_buf(&mut buf).await.map_err(unreachable)? == 0 {
                return Err(Opening::Unreachable(
                    "the peer closed the connection during the handshake".into(),
                ));
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Opening::Unreachable(format!("not an HTTP answer: {head:.80}")))?;
        if status != 101 {
            // The body (a JSON error) is usually in the same segment: show what arrived.
            let body = String::from_utf8_lossy(&buf[head_end..buf.len().min(head_end + 512)]);
            return Err(Opening::Refused(status, body.into_owned()));
        }
        let _ = buf.split_to(head_end);
        Ok(buf)
    }
}

/// Why a link could not be opened.
enum Opening {
    Unreachable(String),
    Refused(u16, String),
}

// ---------------------------------------------------------------------------------------------
// The receiving side

/// Serves one accepted link (after its `101`): every `invoke` frame starts `run`, and its
/// answer goes back as soon as it is ready. The invocations are driven by this link's own task,
/// together with the reading of frames (no task spawned per invocation: spawning one costs an
/// allocation, a queue hand-over and often the wake-up of another worker thread, more CPU than
/// a no-op invocation's own work here). Returns when the sender closes the link or it breaks,
/// once the invocations still running have finished (their answers dropped).
pub async fn serve_link<IO, F, Fut>(io: IO, run: F)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
    F: Fn(Target, InvokeRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<InvokeResult, Refusal>> + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let answers = Outbox::new(write);
    let writer = tokio::spawn(answers.clone().drain());
    let mut reader = FrameReader::new(read, BytesMut::with_capacity(64 * 1024));
    let mut running = FuturesUnordered::new();
    let outcome = loop {
        tokio::select! {
            biased;
            Some((id, answer)) = running.next(), if !running.is_empty() => {
                answers.send(&answer_frame(id, answer));
            }
            frame = reader.next() => match frame {
                Ok(f) => match accept_invoke(f) {
                    Ok((id, target, req)) => {
                        let invocation = AssertUnwindSafe(run(target, req)).catch_unwind();
                        running.push(invocation.map(move |outcome| (id, outcome)));
                    }
                    Err((id, refusal)) => {
                        answers.send(&encode_refused(id, &refusal));
                    }
                },
                Err(e) => break e,
            },
        }
    };
    tracing::debug!("forwarded link ended: {outcome}");
    while running.next().await.is_some() {}
    answers.close();
    let _ = writer.await;
}

/// The invocation of an `invoke` frame, or the refusal of any other.
fn accept_invoke(f: Frame) -> Result<(u64, Target, InvokeRequest), (u64, Refusal)> {
    let refused = |message: String| {
        (
            f.id,
            Refusal {
                status: 400,
                message,
            },
        )
    };
    if f.kind != INVOKE {
        return Err(refused(format!("unknown frame kind {}", f.kind)));
    }
    match decode_invoke(f.body) {
        Ok((target, req, _)) => Ok((f.id, target, req)),
        Err(e) => Err(refused(e.to_string())),
    }
}

/// The frame answering invocation `id`: its result, its refusal, or a 500 when running it
/// panicked (the link and the other invocations on it carry on).
fn answer_frame(id: u64, outcome: std::thread::Result<Result<InvokeResult, Refusal>>) -> Bytes {
    match outcome {
        Ok(Ok(result)) => encode_result(id, &result),
        Ok(Err(refusal)) => encode_refused(id, &refusal),
        Err(_) => encode_refused(
            id,
            &Refusal {
                status: 500,
                message: "the node failed while running the forwarded invocation".into(),
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> (Target, InvokeRequest) {
        let target = Target {
            namespace: "default".into(),
            function: "f".into(),
            revision: 3,
        };
        let req = InvokeRequest {
            payload: Bytes::from_static(b"{\"n\":1}"),
            trigger: "api".into(),
            request_id: Some("r1".into()),
            client_context: Some("e30=".into()),
            trace: lambent_core::TraceOrigin::of(lambent_core::TraceContext::from_traceparent(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                None,
            )),
            ..Default::default()
        };
        (target, req)
    }

    fn only_frame(bytes: Bytes) -> Frame {
        let mut buf = BytesMut::from(&bytes[..]);
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        f
    }

    #[test]
    fn invocations_round_trip() {
        let (target, req) = request();
        let f = only_frame(encode_invoke(7, &target, &req, true));
        assert_eq!((f.id, f.kind), (7, INVOKE));
        let (t, r, may_spill) = decode_invoke(f.body).unwrap();
        assert_eq!(t, target);
        assert!(may_spill && r.may_spill);
        assert_eq!(r.payload, req.payload);
        assert_eq!(r.trigger, "api");
        assert_eq!(r.request_id.as_deref(), Some("r1"));
        assert_eq!(r.client_context.as_deref(), Some("e30="));
        assert_eq!((r.qualifier, r.cognito_identity), (None, None));
        assert_eq!(r.trace, req.trace);
    }

    #[test]
    fn results_and_refusals_round_trip() {
        let result = InvokeResult {
            activation: Activation {
                id: "a1".into(),
                node: "n2".into(),
                logs: "START\n".into(),
                ..Default::default()
            },
            body: Bytes::from_static(b"{\"ok\":true}"),
            record_due: false,
        };
        let f = only_frame(encode_result(9, &result));
        assert_eq!((f.id, f.kind), (9, RESULT));
        let back = decode_result(f.body).unwrap();
        assert_eq!(back.activation, result.activation);
        assert_eq!(back.body, result.body);
        assert!(decode_result(Bytes::from_static(b"\0\0\0\x09{}")).is_err());

        let refusal = Refusal {
            status: 404,
            message: "no such function".into(),
        };
        let f = only_frame(encode_refused(2, &refusal));
        assert_eq!(decode_refused(f.body).unwrap(), refusal);
    }

    #[test]
    fn frames_are_split_where_they_end_and_bad_ones_refused() {
        let (target, req) = request();
        let a = encode_invoke(1, &target, &req, false);
        let b = encode_invoke(2, &target, &req, false);
        let mut buf = BytesMut::new();
        buf.put_slice(&a);
        buf.put_slice(&b[..5]);
        assert_eq!(next_frame(&mut buf).unwrap().unwrap().id, 1);
        assert!(next_frame(&mut buf).unwrap().is_none());
        buf.put_slice(&b[5..]);
        assert_eq!(next_frame(&mut buf).unwrap().unwrap().id, 2);
        assert!(buf.is_empty());

        let mut bad = BytesMut::from(&[0u8, 0, 0, 3, 1, 2, 3][..]);
        assert!(next_frame(&mut bad).is_err());
        let mut truncated = only_frame(encode_invoke(3, &target, &req, false)).body;
        truncated.truncate(12);
        assert!(decode_invoke(truncated).is_err());
    }

    /// Answers `f` after sleeping the payload's milliseconds (its request id as the record's
    /// id, its payload as the result); refuses `missing`.
    async fn run(target: Target, req: InvokeRequest) -> Result<InvokeResult, Refusal> {
        if target.function == "missing" {
            return Err(Refusal {
                status: 404,
                message: "no such function".into(),
            });
        }
        let ms: u64 = match target.function.as_str() {
            "echo" => 0,
            _ => std::str::from_utf8(&req.payload).unwrap().parse().unwrap(),
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(InvokeResult {
            activation: Activation {
                id: req.request_id.unwrap(),
                ..Default::default()
            },
            body: req.payload,
            record_due: false,
        })
    }

    /// A peer on a real TCP listener doing a minimal upgrade (the secret `s3cret`, else 401);
    /// with `hang_up_first`, its first link reads one frame and closes. Its address, and a
    /// count of the connections it accepted.
    async fn peer(hang_up_first: bool) -> (String, Arc<AtomicU64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let n = counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    while !head.ends_with(b"\r\n\r\n") {
                        let mut byte = [0u8];
                        if stream.read_exact(&mut byte).await.is_err() {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8(head).unwrap();
                    if !head.contains("Authorization: Bearer s3cret\r\n") {
                        let no = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\nno";
                        let _ = stream.write_all(no).await;
                        return;
                    }
                    stream
                        .write_all(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
                        .await
                        .unwrap();
                    if hang_up_first && n == 0 {
                        let mut first = [0u8; HEADER];
                        let _ = stream.read_exact(&mut first).await;
                        return;
                    }
                    serve_link(stream, run).await;
                });
            }
        });
        (address, accepted)
    }

    async fn call(
        forwarder: &Forwarder,
        address: &str,
        function: &str,
        id: &str,
        ms: u64,
    ) -> Result<InvokeResult, ForwardError> {
        let target = Target {
            namespace: "default".into(),
            function: function.into(),
            revision: 1,
        };
        let req = InvokeRequest {
            payload: Bytes::from(ms.to_string()),
            trigger: "api".into(),
            request_id: Some(id.into()),
            ..Default::default()
        };
        forwarder
            .invoke("n2", address, &target, &req, false, Duration::from_secs(5))
            .await
    }

    /// Over one real TCP connection, answers come back to the right callers though they
    /// finish out of order, and a refusal reaches its caller.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_link_multiplexes_invocations() {
        let (address, accepted) = peer(false).await;
        let forwarder = Forwarder::new("n1", "s3cret");
        // Slow first, fast last.
        let calls: Vec<_> = (0..20u64)
            .map(|i| {
                let (forwarder, address) = (forwarder.clone(), address.clone());
                tokio::spawn(async move {
                    call(&forwarder, &address, "f", &format!("r{i}"), 200 - i * 10).await
                })
            })
            .collect();
        for (i, c) in calls.into_iter().enumerate() {
            let result = c.await.unwrap().unwrap();
            assert_eq!(result.activation.id, format!("r{i}"));
            assert_eq!(result.body, Bytes::from((200 - i * 10).to_string()));
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one link carried them all"
        );
        match call(&forwarder, &address, "missing", "m", 0).await {
            Err(ForwardError::Refused {
                status: 404,
                message,
                ..
            }) => assert_eq!(message, "no such function"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// Frames larger than the socket takes at once (queued, then drained by the writer task)
    /// go through whole and in order among small ones written at once, in both directions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_the_socket_cannot_take_at_once_are_queued_whole() {
        let (address, _) = peer(false).await;
        let forwarder = Forwarder::new("n1", "s3cret");
        let calls: Vec<_> = (0..12usize)
            .map(|i| {
                let (forwarder, address) = (forwarder.clone(), address.clone());
                // Every third payload is 6 MiB; the others a few bytes.
                let len = if i % 3 == 0 { 6 << 20 } else { 5 + i };
                let payload: Bytes = (0..len).map(|j| (j * 31 + i) as u8).collect();
                tokio::spawn(async move {
                    let target = Target {
                        namespace: "default".into(),
                        function: "echo".into(),
                        revision: 1,
                    };
                    let req = InvokeRequest {
                        payload: payload.clone(),
                        trigger: "api".into(),
                        request_id: Some(format!("r{i}")),
                        ..Default::default()
                    };
                    let result = forwarder
                        .invoke(
                            "n2",
                            &address,
                            &target,
                            &req,
                            false,
                            Duration::from_secs(20),
                        )
                        .await
                        .unwrap();
                    assert_eq!(result.activation.id, format!("r{i}"));
                    assert!(result.body == payload, "payload {i} came back changed");
                })
            })
            .collect();
        for c in calls {
            c.await.unwrap();
        }
    }

    /// A link that breaks fails the invocation waiting on it; the next one opens a new link.
    /// A link without the cluster's secret is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_link_fails_its_callers_and_is_opened_again() {
        let (address, accepted) = peer(true).await;
        let forwarder = Forwarder::new("n1", "s3cret");
        let lost = call(&forwarder, &address, "f", "lost", 0).await;
        assert!(
            matches!(lost, Err(ForwardError::Unreachable { .. })),
            "{lost:?}"
        );
        let again = call(&forwarder, &address, "f", "again", 0).await.unwrap();
        assert_eq!(again.activation.id, "again");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        let wrong = Forwarder::new("n1", "wrong");
        let refused = call(&wrong, &address, "f", "w", 0).await;
        assert!(
            matches!(refused, Err(ForwardError::Refused { status: 401, .. })),
            "{refused:?}"
        );
    }

    /// A peer that accepts connections but never answers: the first caller's attempt times
    /// out, and the callers that waited for it fail with it instead of each trying in turn.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn callers_waiting_for_a_failed_opening_fail_with_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicU64::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        });
        let forwarder = Forwarder::new("n1", "s3cret");
        let started = Instant::now();
        let calls: Vec<_> = (0..8)
            .map(|i| {
                let (forwarder, address) = (forwarder.clone(), address.clone());
                tokio::spawn(
                    async move { call(&forwarder, &address, "f", &format!("r{i}"), 0).await },
                )
            })
            .collect();
        for c in calls {
            let outcome = c.await.unwrap();
            assert!(
                matches!(outcome, Err(ForwardError::Unreachable { .. })),
                "{outcome:?}"
            );
        }
        assert!(
            started.elapsed() < CONNECT_TIMEOUT * 2,
            "{:?}",
            started.elapsed()
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }
}
