//! The AWS Lambda Runtime API (2018-06-01) served to one sandbox, on the listening socket that
//! sandbox's network namespace holds. An invocation is a hand-off: [`RuntimeApi::invoke`] puts it
//! in a one-slot mailbox that the runtime's long-polling `GET /next` is (almost always) already
//! waiting on, and the runtime's `POST …/response` or `…/error` completes it. The server knows
//! nothing of who invoked or why.
//!
//! The same listener serves the platform's AWS-compatible APIs to the function
//! (`AWS_ENDPOINT_URL` points at it): a request that carries a SigV4 signature (an
//! `Authorization` header or a presigned `X-Amz-Signature`), or that is not for a Runtime API
//! path, goes to the [`Platform`] service its owner injected; this crate knows nothing of what
//! that service is. Runtime clients never sign, so the two never mix up, even for an S3 bucket
//! named like the Runtime API's date.
//!
//! The first `GET /next` marks the end of the runtime's initialization ([`Ready`]); Lambent's own
//! runtime clients send [`IMPORT_US_HEADER`] on it, saying how long importing the handler took.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::Mutex;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

/// Largest response or error body a runtime may post: 6 MB + 100 bytes, as the AWS emulator.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024 + 100;

/// Request header of the runtime's first `GET /next`: microseconds it spent importing the
/// handler (an unsigned decimal integer; anything else is ignored). Sent by Lambent's runtime
/// clients only; third-party runtimes leave the import phase unknown.
pub const IMPORT_US_HEADER: &str = "lambent-handler-import-us";

/// The body of the platform's answers (streamed, never collected here).
pub type PlatformBody =
    http_body_util::combinators::UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What answers the requests on a sandbox's listener that are not the Runtime API's.
pub type Platform = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<PlatformBody>> + Send>>
        + Send
        + Sync,
>;

/// The runtime finished initializing: it asked for work for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// When the first `GET /next` arrived.
    pub at: Instant,
    /// What the runtime said its handler import took ([`IMPORT_US_HEADER`]), if it said.
    pub import_us: Option<u64>,
}

/// One event handed to the runtime.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub payload: Bytes,
    /// Epoch milliseconds by which the function must answer.
    pub deadline_ms: i64,
    pub function_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// An error reported by a runtime, as posted.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReport {
    /// `Lambda-Runtime-Function-Error-Type` header, if any.
    pub error_type_header: Option<String>,
    /// The body, normally `{"errorMessage","errorType","stackTrace"}`.
    pub body: Bytes,
}

/// How the runtime answered an invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Response {
        body: Bytes,
        content_type: Option<String>,
    },
    Error(ErrorReport),
    /// The runtime failed to initialize (`POST /runtime/init/error`).
    InitError(ErrorReport),
    /// The runtime posted a response larger than [`MAX_RESPONSE_BYTES`].
    ResponseTooLarge,
}

/// Why an invocation could not be handed over.
#[derive(Debug, PartialEq, Eq)]
pub enum HandOffError {
    /// An invocation is already in flight in this sandbox.
    Busy,
    /// The runtime already reported an init error.
    InitFailed,
}

#[derive(Default)]
struct State {
    /// A `GET /next` waiting for work.
    waiter: Option<oneshot::Sender<Invocation>>,
    /// Work offered before a `GET /next` arrived.
    pending: Option<Invocation>,
    /// The invocation the runtime is working on, and who waits for its outcome.
    current: Option<(String, oneshot::Sender<Outcome>)>,
    init_error: Option<ErrorReport>,
}

struct Shared {
    state: Mutex<State>,
    /// Set once, at the first `GET /next`: the runtime finished initializing.
    ready: watch::Sender<Option<Ready>>,
}

/// The Runtime API of one sandbox. Dropping it stops the server.
pub struct RuntimeApi {
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl RuntimeApi {
    /// Serves the Runtime API on `listener` (already bound and listening), and `platform`
    /// beside it (see the crate's docs).
    pub fn serve(
        listener: std::net::TcpListener,
        platform: Option<Platform>,
    ) -> std::io::Result<RuntimeApi> {
        listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: watch::channel(None).0,
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone(), platform));
        Ok(RuntimeApi { shared, server })
    }

    /// Hands `inv` to the runtime; the receiver yields its outcome. The receiver errors if the
    /// server is dropped first (the caller then looks at why the sandbox died).
    pub fn invoke(&self, inv: Invocation) -> Result<oneshot::Receiver<Outcome>, HandOffError> {
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.state.lock();
        if st.init_error.is_some() {
            return Err(HandOffError::InitFailed);
        }
        if st.current.is_some() || st.pending.is_some() {
            return Err(HandOffError::Busy);
        }
        st.current = Some((inv.request_id.clone(), tx));
        let inv = match st.waiter.take() {
            Some(waiter) => match waiter.send(inv) {
                Ok(()) => return Ok(rx),
                // The waiting `GET /next` went away; keep the work for the next one.
                Err(inv) => inv,
            },
            None => inv,
        };
        st.pending = Some(inv);
        Ok(rx)
    }

    /// When the runtime first asked for work (end of its initialization), if it has.
    pub fn ready_at(&self) -> Option<Instant> {
        self.shared.ready.borrow().map(|ready| ready.at)
    }

    /// Waits until the runtime asks for work or reports an init error.
    pub async fn wait_ready(&self) -> Result<Ready, ErrorReport> {
        let mut rx = self.shared.ready.subscribe();
        loop {
            if let Some(err) = self.shared.state.lock().init_error.clone() {
                return Err(err);
            }
            if let Some(at) = *rx.borrow_and_update() {
                return Ok(at);
            }
            if rx.changed().await.is_err() {
                return Err(ErrorReport {
                    error_type_header: Some("Runtime.ExitError".into()),
                    body: Bytes::new(),
                });
            }
        }
    }

    /// The init error the runtime reported, if any.
    pub fn init_error(&self) -> Option<ErrorReport> {
        self.shared.state.lock().init_error.clone()
    }

    /// Serves this sandbox's Runtime API on one already-connected stream (without the
    /// platform's requests): how the fuzz target (`fuzz/`) speaks to it as a hostile runtime
    /// without a socket.
    #[doc(hidden)]
    pub fn serve_stream<I>(&self, io: I) -> impl Future<Output = ()> + Send + 'static
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        serve_connection(io, self.shared.clone(), None)
    }

    /// Forgets the in-flight invocation (after a timeout), so a late answer gets
    /// `InvalidRequestID` rather than completing anything.
    pub fn abandon(&self) {
        let mut st = self.shared.state.lock();
        st.current = None;
        st.pending = None;
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    platform: Option<Platform>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let stream = QuickAck::new(stream);
                connections.spawn(serve_connection(stream, shared.clone(), platform.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A sandbox's connection that acknowledges at once what it read when it must wait for more
/// (`TCP_QUICKACK`).
///
/// A runtime that writes a response's headers and its body in two small writes (as simple C
/// or shell clients do, Nagle's algorithm on) holds the body back until the headers are
/// acknowledged, and Linux delays that ACK by ~40 ms when nothing is sent back to carry it:
/// every invocation would stall that long. So when a read finds nothing more after one that
/// returned data, and nothing was written since (a write carries the ACK), quick-ack mode is
/// armed: setting it sends the ACK being delayed. Arming it after every read instead sent a
/// bare ACK for each request that came whole, just before the answer that would have carried
/// it: ~5% of the server's CPU per warm invocation. Linux leaves quick-ack mode on its own,
/// hence once per wait.
struct QuickAck {
    stream: tokio::net::TcpStream,
    /// Data was read and neither a write nor an ACK of ours went out since.
    unacknowledged: bool,
}

impl QuickAck {
    fn new(stream: tokio::net::TcpStream) -> QuickAck {
        QuickAck {
            stream,
            unacknowledged: false,
        }
    }

    /// Notes a write's outcome: one that wrote something carried the ACK.
    fn wrote(&mut self, polled: &std::task::Poll<std::io::Result<usize>>) {
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if *n > 0) {
            self.unacknowledged = false;
        }
    }
}

fn quick_ack(stream: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is the stream's own, open while it is borrowed, and the option
    // value is a live `c_int` of the length given.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        match polled {
            std::task::Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.unacknowledged = true;
            }
            std::task::Poll::Pending if self.unacknowledged => {
                quick_ack(&self.stream);
                self.unacknowledged = false;
            }
            _ => {}
        }
        polled
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves the Runtime API (and `platform`) on one connection until it closes.
async fn serve_connection<I>(io: I, shared: Arc<Shared>, platform: Option<Platform>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = hyper_util::rt::TokioIo::new(io);
    let service = hyper::service::service_fn(move |req| {
        let (shared, platform) = (shared.clone(), platform.clone());
        async move {
            Ok::<_, Infallible>(match platform {
                Some(platform) if for_the_platform(&req) => platform(req).await,
                _ => boxed(route(&shared, req).await),
            })
        }
    });
    // Half-closes allowed: while a request is being answered (a `GET /next` waiting for work),
    // hyper does not read the connection to find out whether the runtime hung up. That read
    // would find nothing and arm quick-ack (see [`QuickAck`]) before the answer goes out. A
    // runtime that dies is seen by its sandbox's exit, and a newer `GET /next` supersedes a
    // waiting one.
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .half_close(true)
        .serve_connection(io, service)
        .await;
}

type Reply = Response<Full<Bytes>>;

/// Whether a request is the platform's: signed (SigV4 in a header or presigned), or not for a
/// Runtime API path.
fn for_the_platform(req: &Request<Incoming>) -> bool {
    let path = req.uri().path();
    let runtime_path = path.starts_with("/2018-06-01/") || path == "/ping";
    let signed = req.headers().contains_key(hyper::header::AUTHORIZATION)
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature="));
    signed || !runtime_path
}

fn boxed(reply: Reply) -> Response<PlatformBody> {
    reply.map(|body| body.map_err(|never| match never {}).boxed_unsync())
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_string();
    let rest = path.strip_prefix("/2018-06-01/runtime/");
    match (req.method(), rest) {
        (&Method::GET, Some("invocation/next")) => {
            let import_us = import_us(req.headers());
            next(shared, import_us).await
        }
        (&Method::POST, Some("init/error")) => {
            let report = match read_report(req).await {
                Ok(r) => r,
                Err(reply) => return reply,
            };
            let mut st = shared.state.lock();
            st.init_error = Some(report.clone());
            if let Some((_, tx)) = st.current.take() {
                let _ = tx.send(Outcome::InitError(report));
            }
            st.pending = None;
            drop(st);
            shared.ready.send_modify(|_| {});
            accepted()
        }
        (&Method::POST, Some(rest)) if rest.starts_with("invocation/") => {
            let mut parts = rest["invocation/".len()..].splitn(2, '/');
            let (id, verb) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let id = id.to_string();
            match verb {
                "response" => {
                    let content_type = req
                        .headers()
                        .get(CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match read_body(req).await {
                        Ok(body) => complete(shared, &id, Outcome::Response { body, content_type }),
                        Err(BodyError::TooLarge) => {
                            let _ = complete(shared, &id, Outcome::ResponseTooLarge);
                            too_large()
                        }
                        Err(BodyError::Truncated) => truncated(),
                    }
                }
                "error" => match read_report(req).await {
                    Ok(report) => complete(shared, &id, Outcome::Error(report)),
                    Err(reply) => reply,
                },
                _ => not_found(&path),
            }
        }
        (&Method::GET, None) if path == "/ping" || path == "/2018-06-01/ping" => {
            json(StatusCode::OK, "pong".into())
        }
        _ => not_found(&path),
    }
}

/// The [`IMPORT_US_HEADER`] of a request, if it holds an unsigned integer.
fn import_us(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(IMPORT_US_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn next(shared: &Shared, import_us: Option<u64>) -> Reply {
    let rx = {
        let mut st = shared.state.lock();
        if st.init_error.is_some() {
            return error(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "runtime already failed to initialize",
            );
        }
        shared.ready.send_if_modified(|ready| {
            if ready.is_none() {
                *ready = Some(Ready {
                    at: Instant::now(),
                    import_us,
                });
                true
            } else {
                false
            }
        });
        if let Some(inv) = st.pending.take() {
            return next_response(inv);
        }
        let (tx, rx) = oneshot::channel();
        st.waiter = Some(tx);
        rx
    };
    match rx.await {
        Ok(inv) => next_response(inv),
        // Replaced by a newer `GET /next` from the same runtime.
        Err(_) => error(
            StatusCode::FORBIDDEN,
            "InvalidStateTransition",
            "superseded by another /next",
        ),
    }
}

fn next_response(inv: Invocation) -> Reply {
    // The names are constants (a `&str` name is copied into each map) and the map is made
    // with room for every header (one allocation, not one per doubling).
    const REQUEST_ID: HeaderName = HeaderName::from_static("lambda-runtime-aws-request-id");
    const DEADLINE: HeaderName = HeaderName::from_static("lambda-runtime-deadline-ms");
    const FUNCTION_ARN: HeaderName = HeaderName::from_static("lambda-runtime-invoked-function-arn");
    const TRACE_ID: HeaderName = HeaderName::from_static("lambda-runtime-trace-id");
    const CLIENT_CONTEXT: HeaderName = HeaderName::from_static("lambda-runtime-client-context");
    const COGNITO_IDENTITY: HeaderName = HeaderName::from_static("lambda-runtime-cognito-identity");
    let mut h = HeaderMap::with_capacity(8);
    let mut set = |name: HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(REQUEST_ID, &inv.request_id);
    set(FUNCTION_ARN, &inv.function_arn);
    set(TRACE_ID, &inv.trace_id);
    if let Some(cc) = &inv.client_context {
        set(CLIENT_CONTEXT, cc);
    }
    if let Some(ci) = &inv.cognito_identity {
        set(COGNITO_IDENTITY, ci);
    }
    h.insert(DEADLINE, HeaderValue::from(inv.deadline_ms));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut resp = Response::new(Full::new(inv.payload));
    *resp.headers_mut() = h;
    resp
}

fn complete(shared: &Shared, id: &str, outcome: Outcome) -> Reply {
    let mut st = shared.state.lock();
    match st.current.take() {
        Some((current, tx)) if current == id => {
            let _ = tx.send(outcome);
            accepted()
        }
        other => {
            st.current = other;
            error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestID",
                &format!("unknown or answered request id '{id}'"),
            )
        }
    }
}

enum BodyError {
    TooLarge,
    Truncated,
}

async fn read_body(req: Request<Incoming>) -> Result<Bytes, BodyError> {
    match Limited::new(req.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Err(_) => Err(BodyError::Truncated),
    }
}

async fn read_report(req: Request<Incoming>) -> Result<ErrorReport, Reply> {
    let error_type_header = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match read_body(req).await {
        Ok(body) => Ok(ErrorReport {
            error_type_header,
            body,
        }),
        Err(BodyError::TooLarge) => Err(too_large()),
        Err(BodyError::Truncated) => Err(truncated()),
    }
}

fn json(status: StatusCode, body: String) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn accepted() -> Reply {
    json(StatusCode::ACCEPTED, r#"{"status":"OK"}"#.into())
}

fn error(status: StatusCode, error_type: &str, message: &str) -> Reply {
    json(
        status,
        serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string(),
    )
}

fn too_large() -> Reply {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        &format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
    )
}

fn truncated() -> Reply {
    error(
        StatusCode::BAD_REQUEST,
        "TruncatedHTTPRequest",
        "the request body was cut short",
    )
}

fn not_found(path: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("no runtime api route '{path}'"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(id: &str) -> Invocation {
        Invocation {
            request_id: id.into(),
            payload: Bytes::from_static(br#"{"x":1}"#),
            deadline_ms: 4_000_000_000_000,
            function_arn: "arn:aws:lambda:local:default:function:f".into(),
            trace_id: "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
            client_context: None,
            cognito_identity: None,
        }
    }

    async fn start() -> (RuntimeApi, String) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/2018-06-01/runtime", l.local_addr().unwrap());
        (RuntimeApi::serve(l, None).unwrap(), base)
    }

    #[tokio::test]
    async fn signed_and_foreign_requests_go_to_the_platform() {
        let platform: Platform = Arc::new(|req: Request<Incoming>| {
            let answer = format!("platform {} {}", req.method(), req.uri());
            Box::pin(async move { boxed(Response::new(Full::new(Bytes::from(answer)))) })
        });
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", l.local_addr().unwrap());
        let api = RuntimeApi::serve(l, Some(platform)).unwrap();
        let client = reqwest::Client::new();
        let get = |path: &str, auth: Option<&str>| {
            let mut req = client.get(format!("{base}{path}"));
            if let Some(auth) = auth {
                req = req.header("authorization", auth);
            }
            async move { req.send().await.unwrap().text().await.unwrap() }
        };
        assert_eq!(get("/ping", None).await, "pong");
        assert_eq!(
            get("/2018-06-01/x", Some("AWS4-HMAC-SHA256 Credential=…")).await,
            "platform GET /2018-06-01/x"
        );
        assert_eq!(
            get("/2018-06-01/y?X-Amz-Signature=00", None).await,
            "platform GET /2018-06-01/y?X-Amz-Signature=00"
        );
        assert_eq!(
            get("/v1/functions", None).await,
            "platform GET /v1/functions"
        );
        // The Runtime API itself is untouched.
        tokio::spawn(
            client
                .get(format!("{base}/2018-06-01/runtime/invocation/next"))
                .send(),
        );
        assert!(api.wait_ready().await.is_ok());
    }

    #[tokio::test]
    async fn next_then_response_completes_the_invocation() {
        let (api, base) = start().await;
        let client = reqwest::Client::new();
        let runtime = tokio::spawn({
            let (client, base) = (client.clone(), base.clone());
            async move {
                let next = client
                    .get(format!("{base}/invocation/next"))
                    .send()
                    .await
                    .unwrap();
                let h = next.headers().clone();
                let id = h["lambda-runtime-aws-request-id"]
                    .to_str()
                    .unwrap()
                    .to_string();
                assert_eq!(h["lambda-runtime-deadline-ms"], "4000000000000");
                assert!(h.contains_key("lambda-runtime-invoked-function-arn"));
                assert!(h.contains_key("lambda-runtime-trace-id"));
                assert_eq!(next.text().await.unwrap(), r#"{"x":1}"#);
                let r = client
                    .post(format!("{base}/invocation/{id}/response"))
                    .body("42")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                let again = client
                    .post(format!("{base}/invocation/{id}/response"))
                    .body("1")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(again.status(), 400);
            }
        });
        // Offered before or after the runtime polls: both must work.
        let outcome = api.invoke(invocation("r1")).unwrap().await.unwrap();
        assert!(matches!(outcome, Outcome::Response { ref body, .. } if body == "42"));
        runtime.await.unwrap();
        assert!(api.ready_at().is_some());
        assert_eq!(api.invoke(invocation("r2")).map(|_| ()), Ok(()));
        assert_eq!(
            api.invoke(invocation("r3")).map(|_| ()),
            Err(HandOffError::Busy)
        );
    }

    #[tokio::test]
    async fn init_error_fails_the_waiting_invocation() {
        let (api, base) = start().await;
        let rx = api.invoke(invocation("r1")).unwrap();
        let r = reqwest::Client::new()
            .post(format!("{base}/init/error"))
            .header(
                "lambda-runtime-function-error-type",
                "Runtime.ImportModuleError",
            )
            .body(r#"{"errorMessage":"no module","errorType":"Runtime.ImportModuleError"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let Outcome::InitError(report) = rx.await.unwrap() else {
            panic!("expected init error")
        };
        assert_eq!(
            report.error_type_header.as_deref(),
            Some("Runtime.ImportModuleError")
        );
        assert!(api.wait_ready().await.is_err());
        assert_eq!(
            api.invoke(invocation("r2")).map(|_| ()),
            Err(HandOffError::InitFailed)
        );
    }

    /// Sends one `GET /next` with `import_us` as the header (if any), without waiting for work.
    async fn poll_next(base: &str, import_us: Option<&str>) {
        let mut req = reqwest::Client::new().get(format!("{base}/invocation/next"));
        if let Some(v) = import_us {
            req = req.header(IMPORT_US_HEADER, v);
        }
        tokio::spawn(req.send());
    }

    #[tokio::test]
    async fn the_first_next_says_how_long_the_import_took() {
        let (api, base) = start().await;
        let before = Instant::now();
        poll_next(&base, Some("51234")).await;
        let ready = api.wait_ready().await.unwrap();
        assert_eq!(ready.import_us, Some(51234));
        assert!(ready.at >= before);
        assert_eq!(api.ready_at(), Some(ready.at));

        // Later polls change nothing: only the first /next ends initialization.
        poll_next(&base, Some("7")).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(api.wait_ready().await.unwrap(), ready);
    }

    #[tokio::test]
    async fn an_import_time_that_is_not_an_integer_is_ignored() {
        for bad in ["", "-5", "1.5", "12ms", "99999999999999999999999"] {
            let (api, base) = start().await;
            poll_next(&base, Some(bad)).await;
            assert_eq!(api.wait_ready().await.unwrap().import_us, None, "{bad:?}");
        }
        let (api, base) = start().await;
        poll_next(&base, None).await;
        assert_eq!(api.wait_ready().await.unwrap().import_us, None);
    }

    #[tokio::test]
    async fn oversized_response_is_refused_and_reported() {
        let (api, base) = start().await;
        let rx = api.invoke(invocation("big")).unwrap();
        let client = reqwest::Client::new();
        client
            .get(format!("{base}/invocation/next"))
            .send()
            .await
            .unwrap();
        let r = client
            .post(format!("{base}/invocation/big/response"))
            .body(vec![b'x'; MAX_RESPONSE_BYTES + 1])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert_eq!(rx.await.unwrap(), Outcome::ResponseTooLarge);
    }
}
