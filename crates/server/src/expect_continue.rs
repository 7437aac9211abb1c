//! Requests sent with `Expect: 100-continue` and answered before their body was read to the end
//! (a refused key, a `404 NoSuchUpload` to an UploadPart): the answer says `Connection: close`.
//!
//! Such a client sends its body only after `100 Continue`. When the final answer comes first,
//! it keeps the body and may send its next request on the same connection, while the server
//! still owes a read of the body's `Content-Length` bytes. hyper then takes the first bytes of
//! that next request as the unread body (`POST` became `OST`, and boto3's next S3 call got
//! `SignatureDoesNotMatch`) whenever the client is quicker than the connection's next poll.
//! Closing the connection leaves nothing owed; clients open a new one.
//!
//! A tower layer, put around each connection's service on the node's listener rather than on
//! the router: every other request costs one header lookup, no boxed service or future. (As a
//! layer of the router, it cost ~5 µs of server CPU per warm invoke, ~3.5% of the rate.)

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures_util::future::{BoxFuture, Either};
use http_body::{Body as _, Frame, SizeHint};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The layer: a request expecting `100 Continue` whose body is not read to its end by the
/// time its answer is ready gets that answer with `Connection: close`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CloseUnlessRead;

impl<S> tower::Layer<S> for CloseUnlessRead {
    type Service = CloseUnlessReadService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CloseUnlessReadService(inner)
    }
}

/// The service [`CloseUnlessRead`] makes of another: a connection's service on the node's
/// listener, or the sandboxes' AWS router.
#[derive(Debug, Clone)]
pub struct CloseUnlessReadService<S>(S);

impl<S> tower::Service<Request> for CloseUnlessReadService<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let expects = req
            .headers()
            .get(axum::http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !expects || req.body().is_end_stream() {
            return Either::Left(self.0.call(req));
        }
        let read = Arc::new(AtomicBool::new(false));
        let watched = read.clone();
        let req = req.map(|inner| {
            Body::new(Watched {
                inner,
                read: watched,
            })
        });
        let answer = self.0.call(req);
        Either::Right(Box::pin(async move {
            let mut response = answer.await?;
            if !read.load(Ordering::Acquire) {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            Ok(response)
        }))
    }
}

/// A request body that says when it has been read to its end.
struct Watched {
    inner: Body,
    read: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
