//! Queues and topics with SQS and SNS semantics, and event-source mappings that run functions
//! on queue messages, over the [`QueueStore`] seam (SQLite embedded; a cluster store later).
//!
//! Owns the rules: names and limits, delays and visibility timeouts, long polling (a receive
//! waits up to 20 s, woken by sends), redrive to a dead-letter queue (done by the store inside
//! the receive; retention too), topic fan-out (queue subscriptions in one transaction, function
//! subscriptions through the durable async invocation queue ([`FunctionRunner::enqueue`]);
//! subscription filter policies ([`filter`]) and raw delivery), and the mapping
//! pollers with partial batch responses, for queues and for tables' streams ([`streams`]:
//! checkpoints, retries, bisection, on-failure destinations). In a cluster, sends wake long
//! polls on every node through the bus, and each mapping is polled by the one node its
//! [`PollGate`] lets poll it.
//! Knows nothing of HTTP or sandboxes: functions are run through the [`FunctionRunner`] trait.

mod error;
pub mod events;
pub mod filter;
mod mapping;
mod stream_poller;
pub mod streams;

pub use error::{ErrorKind, QueueError};
pub use lambent_store::queues::{
    Attributes, Endpoint, Mapping, Message, MessageAttribute, QueueConfig, QueueCounts,
    Subscription, Topic,
};
pub use lambent_store::stream_mappings::{StartingPosition, StreamMapping};
pub use streams::{
    EventRecord, MappingChanges, SourceError, StreamInfo, StreamMappingSettings, StreamSource,
};

use async_trait::async_trait;
use bytes::Bytes;
use lambent_core::{now_ms, Hop, TraceContext, TraceOrigin};
use lambent_store::bus::{Bus, Envelope, Signal};
use lambent_store::queues::{NewMessage, QueueStore, ReceiveRequest};
use parking_lot::Mutex;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Largest message body (256 KB, as SQS and SNS).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;
/// Smallest `max_message_bytes` a queue may have.
pub const MIN_MESSAGE_BYTES: u32 = 1024;
/// Shortest and longest retention (1 minute, 14 days).
pub const MIN_RETENTION_S: u32 = 60;
pub const MAX_RETENTION_S: u32 = 1_209_600;
/// Most messages per send, receive or delete call (as SQS).
pub const MAX_BATCH: usize = 10;
/// Longest long-poll wait.
pub const MAX_WAIT_S: u32 = 20;
/// Longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_TIMEOUT_S: u32 = 43_200;
/// Longest delay (15 minutes).
pub const MAX_DELAY_S: u32 = 900;
pub const DEFAULT_VISIBILITY_TIMEOUT_S: u32 = 30;
/// Largest mapping batch and batching window.
pub const MAX_MAPPING_BATCH: u32 = 10_000;
pub const MAX_BATCHING_WINDOW_MS: u64 = 300_000;
/// Messages a redrive moves per store statement.
pub const MOVE_STEP: usize = 500;

/// How a function run by a queue or topic ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    /// The function's result.
    Success(Bytes),
    /// It raised, timed out, crashed or failed to initialize.
    Failed,
    Throttled,
    /// The function does not exist (any more).
    Missing,
}

/// Runs functions: the invoker behind the gateway's registry, in the server.
#[async_trait]
pub trait FunctionRunner: Send + Sync + 'static {
    async fn exists(&self, namespace: &str, function: &str) -> bool;
    /// Runs `function` now; `trace`: the trace it continues and the delivery that brought it.
    async fn run(
        &self,
        namespace: &str,
        function: &str,
        payload: Bytes,
        trigger: &str,
        trace: TraceOrigin,
    ) -> RunOutcome;
    /// Queues an asynchronous invocation durably (retries, dead letters) and returns once it
    /// is on disk; the error says why it could not be (a full disk and an unreachable store
    /// keep their kind, for their 507 and 503). `trace`: its context and delivery.
    async fn enqueue(
        &self,
        namespace: &str,
        function: &str,
        payload: Bytes,
        trigger: &str,
        trace: TraceOrigin,
    ) -> Result<(), lambent_store::StoreError>;
}

/// Settings of a new queue; unset ones get the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub name: String,
    pub visibility_timeout: Option<u32>,
    pub delay: Option<u32>,
    pub max_receive_count: Option<u32>,
    pub dead_letter_queue: Option<String>,
    /// Seconds a message is kept (60 s to 14 days; default 4 days).
    pub retention: Option<u32>,
    /// Largest message in bytes (1 KB to 256 KB; default 256 KB).
    pub max_message_bytes: Option<u32>,
    /// Seconds a receive that does not say waits for messages (0-20; default 0).
    pub receive_wait: Option<u32>,
    /// SQS attributes kept as given (see [`QueueConfig::attributes`]).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl QueueSettings {
    /// The settings a queue has now, every one of them set.
    pub fn of(q: &QueueConfig) -> QueueSettings {
        QueueSettings {
            name: q.name.clone(),
            visibility_timeout: Some(q.visibility_timeout_s),
            delay: Some(q.delay_s),
            max_receive_count: q.max_receive_count,
            dead_letter_queue: q.dead_letter_queue.clone(),
            retention: Some(q.retention_s),
            max_message_bytes: Some(q.max_message_bytes),
            receive_wait: Some(q.receive_wait_s),
            attributes: q.attributes.clone(),
            tags: q.tags.clone(),
        }
    }
}

/// A message to send.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outgoing {
    pub body: String,
    #[serde(default)]
    pub attributes: Attributes,
    /// Seconds; default: the queue's delay.
    pub delay: Option<u32>,
    /// The sender's trace context (SQS's `AWSTraceHeader`), continued by whoever processes
    /// the message; set by the protocol adapter from the request, never from a JSON body.
    #[serde(skip)]
    pub trace: Option<TraceContext>,
}

/// Settings of a new event-source mapping.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSettings {
    pub queue: String,
    pub function: String,
    pub batch_size: Option<u32>,
    /// Milliseconds to gather a batch before invoking.
    pub batching_window_ms: Option<u64>,
    #[serde(default)]
    pub report_batch_item_failures: bool,
}

/// Queues, topics and mappings of every namespace.
#[derive(Clone)]
pub struct Queues {
    inner: Arc<Inner>,
}

/// Decides which node polls each event-source mapping: the embedded node polls them all
/// ([`PollAll`]); a cluster node polls a mapping only while it holds its lease.
#[async_trait]
pub trait PollGate: Send + Sync + 'static {
    /// Whether this node should poll the mapping `id` (of either kind), which runs `function`
    /// of `namespace`, now (taking its lease if it may).
    async fn may_poll(&self, id: &str, namespace: &str, function: &str) -> bool;
    /// This node stopped polling the mapping (or it was deleted): give its lease back.
    async fn stopped(&self, mapping_id: &str);
}

/// The embedded single node's gate: every mapping is polled here.
pub struct PollAll;

#[async_trait]
impl PollGate for PollAll {
    async fn may_poll(&self, _: &str, _: &str, _: &str) -> bool {
        true
    }
    async fn stopped(&self, _: &str) {}
}

/// How often pollers are reconciled with the stored mappings and the gate.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(2);

struct Inner {
    store: Arc<dyn QueueStore>,
    region: String,
    /// Carries sends and mapping changes to the other nodes.
    bus: Arc<dyn Bus>,
    gate: OnceLock<Arc<dyn PollGate>>,
    /// The namespaces' storage quota, which message bodies count against.
    quota: lambent_store::tenants::QuotaSlot,
    /// Serialises reconciliations.
    reconciling: tokio::sync::Mutex<()>,
    background: Mutex<Vec<JoinHandle<()>>>,
    /// Wakes long polls when a queue gets messages.
    arrivals: Mutex<HashMap<(String, String), Arc<Notify>>>,
    runner: OnceLock<Arc<dyn FunctionRunner>>,
    /// Where stream mappings are kept and how streams are read (set by the server).
    streams: OnceLock<streams::StreamParts>,
    /// The running pollers by mapping id, with the settings each was started with.
    pollers: Mutex<HashMap<String, (String, JoinHandle<()>)>>,
}

/// A stored mapping of either kind, as the reconciler sees it.
enum Polled {
    Queue(Mapping),
    Stream(StreamMapping),
}

impl Polled {
    fn id(&self) -> &str {
        match self {
            Polled::Queue(m) => &m.id,
            Polled::Stream(m) => &m.id,
        }
    }

    /// Its settings: a poller started with others is restarted.
    fn settings(&self) -> String {
        match self {
            Polled::Queue(m) => serde_json::to_string(m),
            Polled::Stream(m) => serde_json::to_string(m),
        }
        .unwrap_or_default()
    }
}

fn check_name(what: &'static str, name: &str) -> Result<(), QueueError> {
    let ok = !name.is_empty()
        && name.len() <= 80
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(QueueError::InvalidName {
            what,
            name: name.chars().take(100).collect(),
        })
    }
}

fn in_range<T: PartialOrd + std::fmt::Display>(
    what: &str,
    value: T,
    min: T,
    max: T,
) -> Result<T, QueueError> {
    if value < min || value > max {
        return Err(QueueError::Invalid(format!(
            "{what} {value} is out of range: use {min}-{max}"
        )));
    }
    Ok(value)
}

fn short_id(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

impl Queues {
    pub fn new(store: Arc<dyn QueueStore>, region: String, bus: Arc<dyn Bus>) -> Queues {
        Queues {
            inner: Arc::new(Inner {
                store,
                region,
                bus,
                gate: OnceLock::new(),
                quota: Default::default(),
                reconciling: tokio::sync::Mutex::new(()),
                background: Mutex::new(Vec::new()),
                arrivals: Mutex::new(HashMap::new()),
                runner: OnceLock::new(),
                streams: OnceLock::new(),
                pollers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Gives the queues a way to run functions and starts polling the stored mappings that
    /// `gate` lets this node poll (re-checked every [`RECONCILE_EVERY`] and on every change).
    pub async fn start(
        &self,
        runner: Arc<dyn FunctionRunner>,
        gate: Arc<dyn PollGate>,
    ) -> Result<(), QueueError> {
        let _ = self.inner.runner.set(runner);
        let _ = self.inner.gate.set(gate);
        self.reconcile().await?;
        let weak = Arc::downgrade(&self.inner);
        let signals = self.inner.bus.subscribe();
        let listener = tokio::spawn(follow_signals(weak.clone(), signals));
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECONCILE_EVERY);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = (Queues { inner }).reconcile().await {
                    tracing::warn!("could not reconcile the mapping pollers: {e}");
                }
            }
        });
        self.inner.background.lock().extend([listener, ticker]);
        Ok(())
    }

    /// Starts the pollers of the enabled mappings (of queues and of streams) this node should
    /// poll, restarts those whose settings changed, and stops the others.
    pub async fn reconcile(&self) -> Result<(), QueueError> {
        let Some(gate) = self.inner.gate.get().cloned() else {
            return Ok(());
        };
        let _one_at_a_time = self.inner.reconciling.lock().await;
        let mut mappings: Vec<Polled> = self
            .inner
            .store
            .all_mappings()
            .await?
            .into_iter()
            .map(Polled::Queue)
            .collect();
        if let Some(parts) = self.inner.streams.get() {
            mappings.extend(
                parts
                    .store
                    .all_stream_mappings()
                    .await?
                    .into_iter()
                    .map(Polled::Stream),
            );
        }
        let mut stopped = Vec::new();
        for m in &mappings {
            let (namespace, function, enabled) = match m {
                Polled::Queue(q) => (&q.namespace, &q.function, q.enabled),
                Polled::Stream(s) => (&s.namespace, &s.function, s.enabled),
            };
            let settings = m.settings();
            let running = self
                .inner
                .pollers
                .lock()
                .get(m.id())
                .map(|(started_with, _)| *started_with == settings);
            let wanted = enabled && gate.may_poll(m.id(), namespace, function).await;
            match (wanted, running) {
                (true, None | Some(false)) => self.spawn_poller(m, settings),
                (false, Some(_)) => stopped.push(m.id().to_string()),
                _ => {}
            }
        }
        let gone: Vec<String> = {
            let pollers = self.inner.pollers.lock();
            pollers
                .keys()
                .filter(|id| !mappings.iter().any(|m| m.id() == id.as_str()))
                .cloned()
                .collect()
        };
        for id in stopped.into_iter().chain(gone) {
            if let Some((_, p)) = self.inner.pollers.lock().remove(&id) {
                p.abort();
            }
            gate.stopped(&id).await;
        }
        Ok(())
    }

    /// Stops the mapping pollers. Messages they hold become visible again after their
    /// visibility timeout.
    pub fn shutdown(&self) {
        for task in self.inner.background.lock().drain(..) {
            task.abort();
        }
        for (_, (_, poller)) in self.inner.pollers.lock().drain() {
            poller.abort();
        }
    }

    /// Stops the pollers and gives their leases back (a node leaving the cluster).
    pub async fn drain(&self) {
        let ids: Vec<String> = self.inner.pollers.lock().keys().cloned().collect();
        self.shutdown();
        if let Some(gate) = self.inner.gate.get() {
            for id in ids {
                gate.stopped(&id).await;
            }
        }
    }

    /// Wakes long polls on `queue`, on this node and (through the bus) on the others.
    fn arrived(&self, namespace: &str, queue: &str) {
        self.inner.bus.publish(Signal::Queue {
            namespace: namespace.to_string(),
            name: queue.to_string(),
        });
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    fn runner(&self) -> Result<Arc<dyn FunctionRunner>, QueueError> {
        self.inner
            .runner
            .get()
            .cloned()
            .ok_or_else(|| QueueError::Invalid("functions cannot be run yet".into()))
    }

    fn arrivals(&self, namespace: &str, queue: &str) -> Arc<Notify> {
        self.inner
            .arrivals
            .lock()
            .entry((namespace.to_string(), queue.to_string()))
            .or_default()
            .clone()
    }

    // ---- queues ----

    /// Creates a queue. Creating one that exists with the same settings is not an error
    /// (`created` is false); with other settings it is a conflict.
    pub async fn create_queue(
        &self,
        namespace: &str,
        s: QueueSettings,
    ) -> Result<(QueueConfig, bool), QueueError> {
        let config = self.validated(namespace, s, now_ms()).await?;
        if self.inner.store.create_queue(&config).await? {
            return Ok((config, true));
        }
        let existing = self.queue(namespace, &config.name).await?;
        // Tags are not compared (as SQS).
        let same = QueueConfig {
            created_ms: existing.created_ms,
            modified_ms: existing.modified_ms,
            tags: existing.tags.clone(),
            ..config
        };
        if same != existing {
            return Err(QueueError::Conflict(format!(
                "queue '{}' exists with other settings: delete it first",
                existing.name
            )));
        }
        Ok((existing, false))
    }

    /// A queue's settings checked: its name, the ranges, and a dead-letter queue that exists
    /// and is not the queue itself. Unset settings get the defaults.
    async fn validated(
        &self,
        namespace: &str,
        s: QueueSettings,
        created_ms: i64,
    ) -> Result<QueueConfig, QueueError> {
        check_name("queue", &s.name)?;
        let visibility_timeout_s = in_range(
            "visibility timeout",
            s.visibility_timeout.unwrap_or(DEFAULT_VISIBILITY_TIMEOUT_S),
            0,
            MAX_VISIBILITY_TIMEOUT_S,
        )?;
        let delay_s = in_range("delay", s.delay.unwrap_or(0), 0, MAX_DELAY_S)?;
        let max_receive_count = match (&s.dead_letter_queue, s.max_receive_count) {
            (Some(dlq), n) => {
                check_name("queue", dlq)?;
                if *dlq == s.name {
                    return Err(QueueError::Invalid(
                        "a queue cannot be its own dead-letter queue".into(),
                    ));
                }
                if self.inner.store.get_queue(namespace, dlq).await?.is_none() {
                    return Err(QueueError::QueueNotFound(dlq.clone()));
                }
                Some(in_range("max receive count", n.unwrap_or(3), 1, 1000)?)
            }
            (None, Some(_)) => {
                return Err(QueueError::Invalid(
                    "max_receive_count needs a dead_letter_queue to move messages to".into(),
                ))
            }
            (None, None) => None,
        };
        let retention_s = in_range(
            "retention",
            s.retention
                .unwrap_or(lambent_store::queues::DEFAULT_RETENTION_S),
            MIN_RETENTION_S,
            MAX_RETENTION_S,
        )?;
        let max_message_bytes = in_range(
            "maximum message size",
            s.max_message_bytes.unwrap_or(MAX_MESSAGE_BYTES as u32),
            MIN_MESSAGE_BYTES,
            MAX_MESSAGE_BYTES as u32,
        )?;
        let receive_wait_s = in_range("receive wait", s.receive_wait.unwrap_or(0), 0, MAX_WAIT_S)?;
        Ok(QueueConfig {
            namespace: namespace.to_string(),
            name: s.name,
            visibility_timeout_s,
            delay_s,
            max_receive_count,
            dead_letter_queue: s.dead_letter_queue,
            created_ms,
            retention_s,
            max_message_bytes,
            receive_wait_s,
            attributes: s.attributes,
            tags: s.tags,
            modified_ms: now_ms(),
        })
    }

    /// Replaces an existing queue's settings with `s` (unset ones get the defaults, as at
    /// creation); its messages stay. Messages in flight keep the visibility they were given.
    pub async fn update_queue(
        &self,
        namespace: &str,
        s: QueueSettings,
    ) -> Result<QueueConfig, QueueError> {
        let existing = self.queue(namespace, &s.name).await?;
        let config = self.validated(namespace, s, existing.created_ms).await?;
        if !self.inner.store.update_queue(&config).await? {
            return Err(QueueError::QueueNotFound(config.name));
        }
        Ok(config)
    }

    pub async fn queue(&self, namespace: &str, name: &str) -> Result<QueueConfig, QueueError> {
        self.inner
            .store
            .get_queue(namespace, name)
            .await?
            .ok_or_else(|| QueueError::QueueNotFound(name.to_string()))
    }

    pub async fn counts(&self, namespace: &str, name: &str) -> Result<QueueCounts, QueueError> {
        Ok(self
            .inner
            .store
            .queue_counts(namespace, name, now_ms())
            .await?)
    }

    pub async fn list_queues(&self, namespace: &str) -> Result<Vec<QueueConfig>, QueueError> {
        Ok(self.inner.store.list_queues(namespace).await?)
    }

    /// Deletes a queue, its messages, its mappings and the subscriptions that feed it.
    pub async fn delete_queue(&self, namespace: &str, name: &str) -> Result<(), QueueError> {
        let mappings = self.list_mappings(namespace).await?;
        if !self.inner.store.delete_queue(namespace, name).await? {
            return Err(QueueError::QueueNotFound(name.to_string()));
        }
        if mappings.iter().any(|m| m.queue == name) {
            self.mappings_changed().await;
        }
        Ok(())
    }

    /// Makes message bodies count against their namespace's storage quota (a send that would
    /// exceed it is refused, nothing of it sent).
    pub fn set_storage_quota(&self, quota: Arc<dyn lambent_store::tenants::StorageQuota>) {
        self.inner.quota.set(quota);
    }

    /// Sends messages (at most [`MAX_BATCH`]), all or none; returns their ids.
    pub async fn send(
        &self,
        namespace: &str,
        queue: &str,
        messages: Vec<Outgoing>,
    ) -> Result<Vec<String>, QueueError> {
        let config = self.queue(namespace, queue).await?;
        if messages.is_empty() || messages.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!(
                "send 1-{MAX_BATCH} messages at a time"
            )));
        }
        let now = now_ms();
        let mut batch = Vec::with_capacity(messages.len());
        for m in messages {
            check_message(&m.body, &m.attributes, config.max_message_bytes as usize)?;
            let delay = in_range("delay", m.delay.unwrap_or(config.delay_s), 0, MAX_DELAY_S)?;
            batch.push(NewMessage {
                id: uuid::Uuid::new_v4().to_string(),
                body: m.body,
                attributes: m.attributes,
                visible_at_ms: now + delay as i64 * 1000,
                trace: m.trace,
            });
        }
        let bytes = batch.iter().map(|m| m.body.len() as u64).sum();
        self.inner.quota.reserve(namespace, bytes).await?;
        self.inner.store.send(namespace, queue, &batch).await?;
        self.arrived(namespace, queue);
        Ok(batch.into_iter().map(|m| m.id).collect())
    }

    /// Receives up to `max` messages, waiting up to `wait` for the first ones to arrive.
    pub async fn receive(
        &self,
        namespace: &str,
        queue: &str,
        max: usize,
        visibility_timeout_s: Option<u32>,
        wait: Duration,
    ) -> Result<Vec<Message>, QueueError> {
        let config = self.queue(namespace, queue).await?;
        let max = in_range("max messages", max, 1, MAX_BATCH)?;
        let visibility = in_range(
            "visibility timeout",
            visibility_timeout_s.unwrap_or(config.visibility_timeout_s),
            0,
            MAX_VISIBILITY_TIMEOUT_S,
        )?;
        if wait > Duration::from_secs(MAX_WAIT_S as u64) {
            return Err(QueueError::Invalid(format!(
                "wait {} s is out of range: use 0-{MAX_WAIT_S}",
                wait.as_secs()
            )));
        }
        let deadline = tokio::time::Instant::now() + wait;
        let arrivals = self.arrivals(namespace, queue);
        loop {
            let arrived = arrivals.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let got = self
                .inner
                .store
                .receive(&ReceiveRequest {
                    namespace: namespace.to_string(),
                    queue: queue.to_string(),
                    max,
                    visibility_timeout_ms: visibility as i64 * 1000,
                    now_ms: now_ms(),
                    receipts: (0..max).map(|_| uuid::Uuid::new_v4().to_string()).collect(),
                })
                .await?;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            // Sends wake the wait; the tick catches delays and visibility timeouts running out.
            let tick = (deadline - now).min(Duration::from_millis(100));
            tokio::select! {
                _ = &mut arrived => {}
                _ = tokio::time::sleep(tick) => {}
            }
        }
    }

    /// Deletes messages by receipt handle; returns the handles that were deleted.
    pub async fn delete(
        &self,
        namespace: &str,
        queue: &str,
        receipts: &[String],
    ) -> Result<Vec<String>, QueueError> {
        self.queue(namespace, queue).await?;
        if receipts.is_empty() || receipts.len() > MAX_BATCH {
            return Err(QueueError::Invalid(format!(
                "delete 1-{MAX_BATCH} messages at a time"
            )));
        }
        Ok(self
            .inner
            .store
            .delete_messages(namespace, queue, receipts)
            .await?)
    }

    /// Makes a received message visible again after `timeout_s` (0: now).
    pub async fn change_visibility(
        &self,
        namespace: &str,
        queue: &str,
        receipt: &str,
        timeout_s: u32,
    ) -> Result<(), QueueError> {
        self.queue(namespace, queue).await?;
        let timeout = in_range("visibility timeout", timeout_s, 0, MAX_VISIBILITY_TIMEOUT_S)?;
        let at = now_ms() + timeout as i64 * 1000;
        if !self
            .inner
            .store
            .change_visibility(namespace, queue, receipt, at)
            .await?
        {
            return Err(QueueError::NotInFlight {
                queue: queue.to_string(),
                receipt: receipt.to_string(),
            });
        }
        if timeout == 0 {
            self.arrived(namespace, queue);
        }
        Ok(())
    }

    pub async fn purge(&self, namespace: &str, queue: &str) -> Result<u64, QueueError> {
        self.queue(namespace, queue).await?;
        Ok(self.inner.store.purge(namespace, queue).await?)
    }

    /// Moves the visible messages of dead-letter queue `dlq` (some queue's redrive policy
    /// names it) back to `destination`, by default the one queue whose dead-letter queue it
    /// is (SQS's `StartMessageMoveTask`, run to completion): each message as if sent now, in
    /// steps of [`MOVE_STEP`] messages, each step one store statement. Messages in flight
    /// stay. Returns the queue they went to and how many moved.
    pub async fn redrive(
        &self,
        namespace: &str,
        dlq: &str,
        destination: Option<&str>,
    ) -> Result<(String, u64), QueueError> {
        self.queue(namespace, dlq).await?;
        let sources: Vec<String> = self
            .list_queues(namespace)
            .await?
            .into_iter()
            .filter(|q| q.dead_letter_queue.as_deref() == Some(dlq))
            .map(|q| q.name)
            .collect();
        let destination = match (destination, sources.as_slice()) {
            (_, []) => {
                return Err(QueueError::Invalid(format!(
                    "'{dlq}' is no queue's dead-letter queue: only a dead-letter queue's messages move back"
                )))
            }
            (Some(d), _) => self.queue(namespace, d).await?.name,
            (None, [one]) => one.clone(),
            (None, several) => {
                return Err(QueueError::Invalid(format!(
                    "'{dlq}' is the dead-letter queue of {}: name the destination",
                    several.join(", ")
                )))
            }
        };
        if destination == dlq {
            return Err(QueueError::Invalid(
                "a queue's messages cannot move to itself".into(),
            ));
        }
        let mut moved = 0;
        loop {
            let n = self
                .inner
                .store
                .move_messages(namespace, dlq, &destination, MOVE_STEP, now_ms())
                .await?;
            moved += n;
            if n > 0 {
                self.arrived(namespace, &destination);
            }
            if n < MOVE_STEP as u64 {
                break;
            }
        }
        Ok((destination, moved))
    }

    // ---- topics ----

    pub async fn create_topic(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(Topic, bool), QueueError> {
        check_name("topic", name)?;
        let topic = Topic {
            namespace: namespace.to_string(),
            name: name.to_string(),
            created_ms: now_ms(),
        };
        let created = self.inner.store.create_topic(&topic).await?;
        Ok((topic, created))
    }

    pub async fn list_topics(&self, namespace: &str) -> Result<Vec<Topic>, QueueError> {
        Ok(self.inner.store.list_topics(namespace).await?)
    }

    async fn topic(&self, namespace: &str, name: &str) -> Result<Topic, QueueError> {
        self.list_topics(namespace)
            .await?
            .into_iter()
            .find(|t| t.name == name)
            .ok_or_else(|| QueueError::TopicNotFound(name.to_string()))
    }

    pub async fn delete_topic(&self, namespace: &str, name: &str) -> Result<(), QueueError> {
        if !self.inner.store.delete_topic(namespace, name).await? {
            return Err(QueueError::TopicNotFound(name.to_string()));
        }
        Ok(())
    }

    /// Subscribes a function or a queue (which must exist) to a topic.
    pub async fn subscribe(
        &self,
        namespace: &str,
        topic: &str,
        endpoint: Endpoint,
    ) -> Result<Subscription, QueueError> {
        self.subscribe_with(namespace, topic, endpoint, BTreeMap::new())
            .await
    }

    /// Subscribes a function or a queue (which must exist) to a topic, with subscription
    /// attributes (checked: see [`check_subscription_attributes`]).
    pub async fn subscribe_with(
        &self,
        namespace: &str,
        topic: &str,
        endpoint: Endpoint,
        attributes: BTreeMap<String, String>,
    ) -> Result<Subscription, QueueError> {
        self.topic(namespace, topic).await?;
        check_subscription_attributes(&endpoint, &attributes)?;
        match &endpoint {
            Endpoint::Function(f) => {
                if !self.runner()?.exists(namespace, f).await {
                    return Err(QueueError::FunctionNotFound(f.clone()));
                }
            }
            Endpoint::Queue(q) => {
                self.queue(namespace, q).await?;
            }
            // The caller checks that the workflow exists (they live above this crate).
            Endpoint::Workflow(_) => {}
        }
        if self
            .inner
            .store
            .subscriptions(namespace, topic)
            .await?
            .iter()
            .any(|s| s.endpoint == endpoint)
        {
            let (kind, target) = endpoint.kind_and_target();
            return Err(QueueError::Conflict(format!(
                "{kind} '{target}' is already subscribed to '{topic}'"
            )));
        }
        let s = Subscription {
            id: short_id("sub_"),
            namespace: namespace.to_string(),
            topic: topic.to_string(),
            endpoint,
            created_ms: now_ms(),
            attributes,
        };
        self.inner.store.subscribe(&s).await?;
        Ok(s)
    }

    /// Sets one attribute of a subscription of `topic` (an empty value removes it); returns
    /// the subscription as it is now.
    pub async fn set_subscription_attribute(
        &self,
        namespace: &str,
        topic: &str,
        id: &str,
        name: &str,
        value: &str,
    ) -> Result<Subscription, QueueError> {
        let mut s = self
            .subscriptions(namespace, topic)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| QueueError::SubscriptionNotFound(id.to_string()))?;
        if value.is_empty() {
            s.attributes.remove(name);
        } else {
            s.attributes.insert(name.to_string(), value.to_string());
        }
        check_subscription_attributes(&s.endpoint, &s.attributes)?;
        if !self
            .inner
            .store
            .set_subscription_attributes(namespace, id, &s.attributes)
            .await?
        {
            return Err(QueueError::SubscriptionNotFound(id.to_string()));
        }
        Ok(s)
    }

    pub async fn subscriptions(
        &self,
        namespace: &str,
        topic: &str,
    ) -> Result<Vec<Subscription>, QueueError> {
        self.topic(namespace, topic).await?;
        Ok(self.inner.store.subscriptions(namespace, topic).await?)
    }

    pub async fn unsubscribe(&self, namespace: &str, id: &str) -> Result<(), QueueError> {
        if !self.inner.store.unsubscribe(namespace, id).await? {
            return Err(QueueError::SubscriptionNotFound(id.to_string()));
        }
        Ok(())
    }

    /// Publishes to every subscription: queues get the SNS notification as a message (all in
    /// one transaction, before this returns); functions and workflows get the SNS event through
    /// the durable async invocation queue ([`FunctionRunner::enqueue`]). Returns the message id and the number of deliveries.
    /// `trace`: the publisher's context, which every delivery continues (a queue's message
    /// carries it; a function's invocation draws the topic's delivery as its own span).
    pub async fn publish(
        &self,
        namespace: &str,
        topic: &str,
        message: &str,
        subject: Option<&str>,
        attributes: &Attributes,
        trace: Option<&TraceContext>,
    ) -> Result<(String, usize), QueueError> {
        let subscriptions = self.subscriptions(namespace, topic).await?;
        check_message(message, attributes, MAX_MESSAGE_BYTES)?;
        let message_id = uuid::Uuid::new_v4().to_string();
        let topic_arn = events::topic_arn(&self.inner.region, namespace, topic);
        let notification = events::sns_notification(&events::Notification {
            message_id: &message_id,
            topic_arn: &topic_arn,
            subject,
            message,
            timestamp_ms: now_ms(),
            attributes,
        });
        let now = now_ms();
        // Only the subscriptions whose filter policy the message passes get it.
        let subscriptions: Vec<Subscription> = subscriptions
            .into_iter()
            .filter(|s| passes_filter(s, attributes, message))
            .collect();
        let to_queues: Vec<(String, NewMessage)> = subscriptions
            .iter()
            .filter_map(|s| match &s.endpoint {
                Endpoint::Queue(q) => {
                    // Raw delivery: the message itself, its attributes as the SQS message's.
                    let (body, attributes) = match raw_delivery(s) {
                        true => (message.to_string(), attributes.clone()),
                        false => (notification.to_string(), Attributes::new()),
                    };
                    Some((
                        q.clone(),
                        NewMessage {
                            id: uuid::Uuid::new_v4().to_string(),
                            body,
                            attributes,
                            visible_at_ms: now,
                            trace: trace.cloned(),
                        },
                    ))
                }
                Endpoint::Function(_) | Endpoint::Workflow(_) => None,
            })
            .collect();
        if !to_queues.is_empty() {
            let bytes = to_queues.iter().map(|(_, m)| m.body.len() as u64).sum();
            self.inner.quota.reserve(namespace, bytes).await?;
            self.inner
                .store
                .send_to_queues(namespace, &to_queues)
                .await?;
            for (q, _) in &to_queues {
                self.arrived(namespace, q);
            }
        }
        let runner = self.runner()?;
        for s in &subscriptions {
            // Functions and workflows get the SNS event through the durable async queue.
            let target = match &s.endpoint {
                Endpoint::Function(f) => f.clone(),
                Endpoint::Workflow(w) => lambent_store::events::workflow_target(w),
                Endpoint::Queue(_) => continue,
            };
            let event = events::sns_event(&format!("{topic_arn}:{}", s.id), notification.clone());
            let origin = TraceOrigin {
                context: trace.cloned(),
                hop: Some(Hop::Topic {
                    topic: topic.to_string(),
                }),
                ..Default::default()
            };
            runner
                .enqueue(
                    namespace,
                    &target,
                    Bytes::from(event.to_string()),
                    "sns",
                    origin,
                )
                .await
                .map_err(|e| {
                    QueueError::Store(match e {
                        e @ (lambent_store::StoreError::DiskFull(_)
                        | lambent_store::StoreError::Unavailable { .. }) => e,
                        e => lambent_store::StoreError::Database(format!(
                            "could not queue the delivery to '{target}': {e}"
                        )),
                    })
                })?;
        }
        Ok((message_id, subscriptions.len()))
    }

    // ---- event-source mappings ----

    /// Creates a mapping and starts polling its queue.
    pub async fn create_mapping(
        &self,
        namespace: &str,
        s: MappingSettings,
    ) -> Result<Mapping, QueueError> {
        self.queue(namespace, &s.queue).await?;
        if !self.runner()?.exists(namespace, &s.function).await {
            return Err(QueueError::FunctionNotFound(s.function));
        }
        let batch_size = in_range(
            "batch size",
            s.batch_size.unwrap_or(10),
            1,
            MAX_MAPPING_BATCH,
        )?;
        let batching_window_ms = in_range(
            "batching window (ms)",
            s.batching_window_ms.unwrap_or(0),
            0,
            MAX_BATCHING_WINDOW_MS,
        )?;
        let m = Mapping {
            id: uuid::Uuid::new_v4().to_string(),
            namespace: namespace.to_string(),
            queue: s.queue,
            function: s.function,
            batch_size,
            batching_window_ms,
            report_batch_item_failures: s.report_batch_item_failures,
            enabled: true,
            created_ms: now_ms(),
        };
        self.inner.store.create_mapping(&m).await?;
        self.mappings_changed().await;
        Ok(m)
    }

    pub async fn list_mappings(&self, namespace: &str) -> Result<Vec<Mapping>, QueueError> {
        Ok(self
            .inner
            .store
            .all_mappings()
            .await?
            .into_iter()
            .filter(|m| m.namespace == namespace)
            .collect())
    }

    pub async fn delete_mapping(&self, namespace: &str, id: &str) -> Result<(), QueueError> {
        if !self.inner.store.delete_mapping(namespace, id).await? {
            return Err(QueueError::MappingNotFound(id.to_string()));
        }
        self.mappings_changed().await;
        Ok(())
    }

    /// Reconciles this node's pollers now and tells the other nodes to.
    async fn mappings_changed(&self) {
        if let Err(e) = self.reconcile().await {
            tracing::warn!("could not reconcile the mapping pollers: {e}");
        }
        self.inner.bus.publish(Signal::Mappings);
    }

    fn spawn_poller(&self, m: &Polled, settings: String) {
        let Ok(runner) = self.runner() else {
            return;
        };
        let poller = match m {
            Polled::Queue(q) => tokio::spawn(mapping::poll(self.clone(), runner, q.clone())),
            Polled::Stream(s) => {
                let Some(parts) = self.inner.streams.get().cloned() else {
                    return;
                };
                tokio::spawn(stream_poller::poll(self.clone(), parts, runner, s.clone()))
            }
        };
        let id = m.id().to_string();
        if let Some((_, old)) = self.inner.pollers.lock().insert(id, (settings, poller)) {
            old.abort();
        }
    }
}

/// Wakes this node's long polls on the queues other nodes (or this one) sent to, and
/// reconciles the pollers when mappings changed anywhere.
async fn follow_signals(
    inner: std::sync::Weak<Inner>,
    mut signals: tokio::sync::broadcast::Receiver<Envelope>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let received = signals.recv().await;
        let Some(inner) = inner.upgrade() else { return };
        let queues = Queues { inner };
        match received {
            Ok(Envelope {
                signal: Signal::Queue { namespace, name },
                ..
            }) => queues.arrivals(&namespace, &name).notify_waiters(),
            Ok(Envelope {
                signal: Signal::Mappings,
                origin,
            }) if origin != queues.inner.bus.node_id() => {
                if let Err(e) = queues.reconcile().await {
                    tracing::warn!("could not reconcile the mapping pollers: {e}");
                }
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {
                // Some wake-ups were missed: wake every long poll (they re-check).
                for n in queues.inner.arrivals.lock().values() {
                    n.notify_waiters();
                }
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// The subscription attributes Lambent honours.
pub const SUBSCRIPTION_ATTRIBUTES: &[&str] =
    &["RawMessageDelivery", "FilterPolicy", "FilterPolicyScope"];

/// Checks a subscription's attributes: known names, `RawMessageDelivery` `true`/`false` (true
/// only for queues), a valid `FilterPolicy` in its `FilterPolicyScope`.
pub fn check_subscription_attributes(
    endpoint: &Endpoint,
    attributes: &BTreeMap<String, String>,
) -> Result<(), QueueError> {
    for (name, value) in attributes {
        match name.as_str() {
            "RawMessageDelivery" => match value.as_str() {
                "false" => {}
                "true" if matches!(endpoint, Endpoint::Queue(_)) => {}
                "true" => {
                    let (kind, _) = endpoint.kind_and_target();
                    return Err(QueueError::Invalid(format!(
                        "Attributes Reason: Delivery protocol [{}] does not support raw message \
                         delivery.",
                        if kind == "function" { "lambda" } else { kind }
                    )));
                }
                other => {
                    return Err(QueueError::Invalid(format!(
                        "Attributes Reason: RawMessageDelivery: Invalid value [{other}]. Must \
                         be true or false."
                    )))
                }
            },
            "FilterPolicyScope" => {
                filter::Scope::parse(Some(value)).map_err(QueueError::Invalid)?;
            }
            "FilterPolicy" => {
                let scope =
                    filter::Scope::parse(attributes.get("FilterPolicyScope").map(String::as_str))
                        .map_err(QueueError::Invalid)?;
                filter::FilterPolicy::parse(value, scope).map_err(QueueError::Invalid)?;
            }
            other => {
                return Err(QueueError::Invalid(format!(
                    "AttributeName: Lambent does not support the subscription attribute {other} \
                     (it supports {})",
                    SUBSCRIPTION_ATTRIBUTES.join(", ")
                )))
            }
        }
    }
    Ok(())
}

fn raw_delivery(s: &Subscription) -> bool {
    s.attributes.get("RawMessageDelivery").map(String::as_str) == Some("true")
}

/// Whether a published message passes a subscription's filter policy (none: it does).
fn passes_filter(s: &Subscription, attributes: &Attributes, message: &str) -> bool {
    let Some(text) = s.attributes.get("FilterPolicy") else {
        return true;
    };
    let scope = filter::Scope::parse(s.attributes.get("FilterPolicyScope").map(String::as_str))
        .unwrap_or(filter::Scope::MessageAttributes);
    match filter::FilterPolicy::parse(text, scope) {
        Ok(policy) => policy.matches(scope, attributes, message),
        // Checked when set: a policy that no longer parses delivers nothing.
        Err(_) => false,
    }
}

/// Checks a message: its size (body, attribute names, types and values) within `limit`, a
/// body, and attributes of a known type with their value.
fn check_message(body: &str, attributes: &Attributes, limit: usize) -> Result<(), QueueError> {
    let attribute_bytes: usize = attributes
        .iter()
        .map(|(k, a)| {
            k.len()
                + a.data_type.len()
                + a.string_value.as_ref().map_or(0, String::len)
                + a.binary_value.as_ref().map_or(0, String::len)
        })
        .sum();
    if body.len() + attribute_bytes > limit {
        return Err(QueueError::MessageTooLarge(limit));
    }
    if body.is_empty() {
        return Err(QueueError::Invalid("a message body cannot be empty".into()));
    }
    for (name, a) in attributes {
        let base = a.data_type.split('.').next().unwrap_or_default();
        let ok = match base {
            "String" | "Number" => a.string_value.is_some() && a.binary_value.is_none(),
            "Binary" => a.binary_value.is_some() && a.string_value.is_none(),
            _ => false,
        };
        if !ok || name.is_empty() {
            return Err(QueueError::Invalid(format!(
                "message attribute '{name}': dataType String or Number with a stringValue, or \
                 Binary with a base64 binaryValue"
            )));
        }
    }
    Ok(())
}
