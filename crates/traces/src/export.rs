//! The OTLP/HTTP exporter: finished activations are offered to it from the invoke path
//! ([`Exporter::offer`]: a copy of the record without its logs pushed onto a bounded queue
//! under a short lock; never waits, and wakes the export task only when the queue was empty
//! or holds a full batch, so an invocation does not pay for a task switch). The task lets a
//! batch fill (up to [`ExportConfig::max_batch`] spans or [`ExportConfig::interval`]), derives
//! the spans, and POSTs each batch as protobuf, one request at a time. Memory is bounded by
//! the queue and one batch: whatever does not fit (the receiver is slow or down), or a batch
//! the receiver refuses or does not answer in time, is dropped and counted
//! (`lambent_trace_spans_dropped_total`). Only sampled traces are exported.

use crate::otlp::Batch;
use crate::spans::{activation_spans, span_count, Platform};
use lambent_core::Activation;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How the exporter batches and where it sends.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// The traces URL: `--otlp-endpoint` as given when it ends in `/v1/traces`, else with
    /// `/v1/traces` appended (as `OTEL_EXPORTER_OTLP_ENDPOINT` is read).
    pub url: String,
    /// Most spans in one request.
    pub max_batch: usize,
    /// Longest a span waits for its batch to fill.
    pub interval: Duration,
    /// Activations waiting for the exporter, at most; more are dropped.
    pub queue: usize,
    /// How long one request may take.
    pub timeout: Duration,
}

impl ExportConfig {
    pub fn new(endpoint: &str) -> Result<ExportConfig, ExportError> {
        let endpoint = endpoint.trim();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(ExportError::BadEndpoint(endpoint.to_string()));
        }
        let base = endpoint.trim_end_matches('/');
        let url = if base.ends_with("/v1/traces") {
            base.to_string()
        } else {
            format!("{base}/v1/traces")
        };
        Ok(ExportConfig {
            url,
            max_batch: 512,
            interval: Duration::from_secs(1),
            queue: 4096,
            timeout: Duration::from_secs(10),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("the OTLP endpoint must be an http:// or https:// URL, not '{0}'")]
    BadEndpoint(String),
}

/// Counts of the exporter, for `/metrics`.
#[derive(Debug, Default)]
pub struct ExportStats {
    pub exported: AtomicU64,
    pub dropped: AtomicU64,
}

/// Handle to the export task. Cheap to clone; the task ends (exporting what it holds) when
/// every handle is dropped.
#[derive(Clone)]
pub struct Exporter {
    handle: Arc<Handle>,
}

/// What the handles share; dropped with the last one, which closes the queue.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

/// What the handles and the task share.
struct Shared {
    queue: Mutex<Queue>,
    /// Rung when the queue was empty (the task waits for a first activation) or holds a full
    /// batch (the task waits for the interval), and when the last handle is gone.
    wake: Notify,
    closed: AtomicBool,
    stats: ExportStats,
    /// Most activations queued.
    capacity: usize,
    max_batch: usize,
}

#[derive(Default)]
struct Queue {
    activations: Vec<Activation>,
    /// Their spans, in all.
    spans: usize,
}

impl Exporter {
    /// Starts the export task on the current tokio runtime.
    pub fn start(config: ExportConfig, platform: Platform) -> Exporter {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            stats: ExportStats::default(),
            capacity: config.queue.max(1),
            max_batch: config.max_batch.max(1),
        });
        tokio::spawn(run(config, platform, shared.clone()));
        Exporter {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Offers a finished activation's spans for export; drops (and counts) them when the
    /// queue is full. Never waits.
    pub fn offer(&self, a: &Activation) {
        let Some(trace) = &a.trace else { return };
        if !trace.sampled {
            return;
        }
        let shared = &self.handle.shared;
        let spans = span_count(a);
        let mut queue = shared.queue.lock();
        if queue.activations.len() >= shared.capacity {
            drop(queue);
            shared
                .stats
                .dropped
                .fetch_add(spans as u64, Ordering::Relaxed);
            return;
        }
        queue.activations.push(Activation {
            id: a.id.clone(),
            namespace: a.namespace.clone(),
            function: a.function.clone(),
            revision: a.revision,
            trigger: a.trigger.clone(),
            start_ms: a.start_ms,
            end_ms: a.end_ms,
            duration_us: a.duration_us,
            billed_ms: a.billed_ms,
            memory_mb: a.memory_mb,
            max_memory_bytes: a.max_memory_bytes,
            cold: a.cold,
            cold_reason: a.cold_reason,
            init_us: a.init_us,
            init: a.init,
            status: a.status,
            error_type: a.error_type.clone(),
            error_message: None,
            logs: String::new(),
            node: a.node.clone(),
            parent: None,
            steps: Vec::new(),
            trace: Some(trace.clone()),
        });
        let before = queue.spans;
        queue.spans += spans;
        let wake = before == 0 || (before < shared.max_batch && queue.spans >= shared.max_batch);
        drop(queue);
        if wake {
            shared.wake.notify_one();
        }
    }

    pub fn stats(&self) -> &ExportStats {
        &self.handle.shared.stats
    }

    /// The exporter's counters in the OpenMetrics text format (without `# EOF`).
    pub fn metrics_text(&self) -> String {
        let s = self.stats();
        format!(
            "# HELP lambent_trace_spans_exported Spans sent to the OTLP endpoint.\n\
             # TYPE lambent_trace_spans_exported counter\n\
             lambent_trace_spans_exported_total {}\n\
             # HELP lambent_trace_spans_dropped Spans not exported: the export queue was full, or the endpoint refused or did not answer.\n\
             # TYPE lambent_trace_spans_dropped counter\n\
             lambent_trace_spans_dropped_total {}\n",
            s.exported.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
        )
    }
}

async fn run(config: ExportConfig, platform: Platform, shared: Arc<Shared>) {
    let client = reqwest::Client::new();
    let mut batch = Batch::default();
    loop {
        // A first activation (or the end).
        loop {
            if shared.queue.lock().spans > 0 {
                break;
            }
            if shared.closed.load(Ordering::Acquire) {
                return;
            }
            shared.wake.notified().await;
        }
        // The batch fills for up to the interval (unless it is full or the exporter closes).
        if shared.queue.lock().spans < shared.max_batch && !shared.closed.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(config.interval, shared.wake.notified()).await;
        }
        let taken = std::mem::take(&mut *shared.queue.lock()).activations;
        for a in &taken {
            add(&mut batch, a, &platform);
            if batch.len() >= config.max_batch {
                flush(&client, &config, &platform, &shared.stats, &mut batch).await;
            }
        }
        if !batch.is_empty() {
            flush(&client, &config, &platform, &shared.stats, &mut batch).await;
        }
    }
}

/// Sends `batch` (emptying it) and counts its spans as exported or dropped.
async fn flush(
    client: &reqwest::Client,
    config: &ExportConfig,
    platform: &Platform,
    stats: &ExportStats,
    batch: &mut Batch,
) {
    let n = batch.len() as u64;
    let body = batch.encode(platform);
    match send(client, config, body).await {
        Ok(()) => {
            stats.exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            stats.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::warn!("dropped {n} spans: {e}");
        }
    }
}

fn add(batch: &mut Batch, a: &Activation, platform: &Platform) {
    let spans = activation_spans(a, platform);
    let state = a
        .trace
        .as_ref()
        .and_then(|t| t.tracestate.as_deref())
        .unwrap_or("");
    batch.add(&a.namespace, &a.function, spans, state);
}

async fn send(
    client: &reqwest::Client,
    config: &ExportConfig,
    body: Vec<u8>,
) -> Result<(), String> {
    let response = client
        .post(&config.url)
        .header("content-type", "application/x-protobuf")
        .timeout(config.timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("the OTLP endpoint {} did not answer: {e}", config.url))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "the OTLP endpoint {} answered {}",
            config.url,
            response.status()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[test]
    fn endpoints_get_the_traces_path_once() {
        for (given, url) in [
            ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
            ("http://127.0.0.1:4318/", "http://127.0.0.1:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ] {
            assert_eq!(ExportConfig::new(given).unwrap().url, url);
        }
        assert!(ExportConfig::new("127.0.0.1:4318").is_err());
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        // Nothing listens on port 9 of loopback: every export fails, and the queue of one
        // fills while the first batch waits to be sent.
        let mut config = ExportConfig::new("http://127.0.0.1:9").unwrap();
        (config.queue, config.interval) = (1, Duration::from_secs(30));
        let exporter = Exporter::start(config, Platform::new("r"));
        let mut a = Activation {
            function: "f".into(),
            trace: Some(lambent_core::ActivationTrace::start(Default::default(), 1)),
            ..Default::default()
        };
        a.status = lambent_core::ActivationStatus::Success;
        let per = span_count(&a) as u64;
        for _ in 0..10 {
            exporter.offer(&a);
        }
        let dropped = exporter.stats().dropped.load(Ordering::Relaxed);
        assert!(dropped >= 8 * per, "{dropped}");
        assert!(exporter
            .metrics_text()
            .contains(&format!("lambent_trace_spans_dropped_total {dropped}")));
        // An unsampled trace is not exported at all.
        a.trace.as_mut().unwrap().sampled = false;
        exporter.offer(&a);
        assert_eq!(exporter.stats().dropped.load(Ordering::Relaxed), dropped);
    }

    /// A receiver on loopback that answers 200 to each request: the span count of each
    /// request's body, as they come.
    async fn receiver() -> (String, mpsc::UnboundedReceiver<usize>) {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        use prost::Message;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                        if let Some(end) = head_end {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                let body: Vec<u8> =
                                    buf.drain(..end + 4 + len).skip(end + 4).collect();
                                let req =
                                    ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                                let spans = req
                                    .resource_spans
                                    .iter()
                                    .flat_map(|r| &r.scope_spans)
                                    .map(|s| s.spans.len())
                                    .sum();
                                let _ = tx.send(spans);
                                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                                conn.write_all(ok).await.unwrap();
                                continue;
                            }
                        }
                        let mut chunk = [0u8; 8192];
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (url, rx)
    }

    #[tokio::test]
    async fn a_full_batch_goes_out_at_once_and_the_rest_when_the_exporter_closes() {
        let (url, mut got) = receiver().await;
        let a = Activation {
            function: "f".into(),
            trace: Some(lambent_core::ActivationTrace::start(Default::default(), 1)),
            ..Default::default()
        };
        let per = span_count(&a);
        let mut config = ExportConfig::new(&url).unwrap();
        // Nothing waits for the interval: a batch is two activations' spans.
        (config.max_batch, config.interval) = (2 * per, Duration::from_secs(600));
        let exporter = Exporter::start(config, Platform::new("r"));
        for _ in 0..2 {
            exporter.offer(&a);
        }
        let first = tokio::time::timeout(Duration::from_secs(10), got.recv()).await;
        assert_eq!(first.unwrap(), Some(2 * per));
        // One more waits for its batch to fill … until the last handle is dropped.
        exporter.offer(&a);
        let stats = exporter.handle.shared.clone();
        drop(exporter);
        let last = tokio::time::timeout(Duration::from_secs(10), got.recv()).await;
        assert_eq!(last.unwrap(), Some(per));
        // Counted once the receiver's answer is in.
        let exported = || stats.stats.exported.load(Ordering::Relaxed);
        for _ in 0..100 {
            if exported() == 3 * per as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(exported(), 3 * per as u64);
        assert_eq!(stats.stats.dropped.load(Ordering::Relaxed), 0);
    }
}
