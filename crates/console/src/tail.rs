//! Live tail: `GET /ui/api/tail?function=` streams activation records as Server-Sent Events
//! (`event: activation`, the record without its event payload as `data`), the latest few first,
//! then each new one as it is recorded. It polls the store every [`POLL`] after flushing the
//! recorder, over a look-back of [`LOOK_BACK`] (a long invocation is recorded after shorter
//! ones that started later), and remembers what it sent.

use crate::{Console, Shared};
use axum::body::Body;
use axum::extract::Query;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use lambent_store::ActivationQuery;
use serde::Deserialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// How often the store is read for new records.
pub const POLL: Duration = Duration::from_millis(250);
/// How far back each read looks.
pub const LOOK_BACK: Duration = Duration::from_secs(15 * 60);
/// How many recent records a new tail starts with.
const BACKLOG: usize = 20;
/// A comment line this often keeps proxies from closing an idle stream.
const KEEP_ALIVE_POLLS: u32 = 60;

#[derive(Deserialize)]
pub struct TailQuery {
    function: Option<String>,
}

struct Tail {
    console: Arc<Console>,
    query: ActivationQuery,
    /// Ids sent, with their start, forgotten once out of the look-back.
    sent: HashMap<String, i64>,
    pending: VecDeque<Bytes>,
    started: bool,
    idle_polls: u32,
}

impl Tail {
    async fn poll(&mut self) -> Result<(), lambent_store::StoreError> {
        let now = lambent_core::now_ms();
        let since = now - LOOK_BACK.as_millis() as i64;
        self.console.app.flush_records().await;
        self.query.since_ms = Some(since);
        self.query.limit = if self.started { 500 } else { BACKLOG };
        let page = self
            .console
            .app
            .store
            .query_activations(&self.query)
            .await?;
        self.sent.retain(|_, start| *start >= since);
        for a in page.into_iter().rev() {
            if self.sent.insert(a.id.clone(), a.start_ms).is_some() {
                continue;
            }
            let data = serde_json::json!({
                "id": a.id,
                "function": a.function,
                "start_ms": a.start_ms,
                "end_ms": a.end_ms,
                "status": a.status,
                "cold": a.cold,
                "duration_us": a.duration_us,
                "error_type": a.error_type,
                "error_message": a.error_message,
                "logs": a.logs,
            });
            self.pending.push_back(Bytes::from(format!(
                "event: activation\nid: {}\ndata: {data}\n\n",
                a.id
            )));
        }
        self.started = true;
        Ok(())
    }

    /// The next frame to send, waiting for one.
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Tail)> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                self.idle_polls = 0;
                return Some((Ok(frame), self));
            }
            if self.started {
                tokio::time::sleep(POLL).await;
                self.idle_polls += 1;
                if self.idle_polls >= KEEP_ALIVE_POLLS {
                    self.idle_polls = 0;
                    return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), self));
                }
            }
            if let Err(e) = self.poll().await {
                self.started = true;
                let frame = format!(
                    "event: error\ndata: {}\n\n",
                    serde_json::json!(e.to_string())
                );
                return Some((Ok(Bytes::from(frame)), self));
            }
        }
    }
}

/// `GET /ui/api/tail`.
pub async fn tail(
    axum::extract::State(console): Shared,
    Extension(session): Extension<crate::Session>,
    Query(q): Query<TailQuery>,
) -> Response {
    let tail = Tail {
        console,
        query: ActivationQuery {
            namespace: session.namespace,
            function: q.function.filter(|f| !f.is_empty()),
            ..Default::default()
        },
        sent: HashMap::new(),
        pending: VecDeque::new(),
        started: false,
        idle_polls: 0,
    };
    let stream = futures_util::stream::unfold(tail, Tail::next);
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
