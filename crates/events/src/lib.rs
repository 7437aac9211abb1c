//! Events in, functions out: durable asynchronous invocation and schedules over an
//! [`EventStore`] (SQLite on one node; a cluster backend can replace it).
//!
//! - **Accept.** [`Events::enqueue`] returns an event id only once the event is committed; all
//!   writes (enqueues, completions, retries, dead letters, fires) go through one writer task
//!   that commits whatever is waiting in one transaction (group commit).
//! - **Run.** Workers ([`worker`]) lease due events, invoke the function through the invoker
//!   (trigger `async`, `schedule`, `destination` or `redrive`), and delete the event once its
//!   activation record is written: at-least-once, and an event marked done never runs again.
//! - **Retry.** Failures (function error, timeout, crash, init error) are retried after 1 s,
//!   2 s, 4 s, … up to the function's `async.max_retries` (default 2) and within its
//!   `async.max_event_age_s`; throttles are retried without counting. Then the event goes to
//!   the namespace's dead-letter queue, from where it can be re-driven.
//! - **Destinations.** On success or final failure, a Lambda-shaped invocation record is sent
//!   to the function's `on_success` / `on_failure` destination ([`destination`]).
//! - **Schedules** ([`schedule`]) fire by enqueueing an EventBridge scheduled event in the same
//!   transaction that moves their next fire time.

pub mod destination;
pub mod schedule;
pub mod worker;

use lambent_core::now_ms;
use lambent_store::bus::{Bus, Envelope, Signal};
use lambent_store::events::{DeadLetter, EventStore, EventWrite, QueuedEvent, StoredSchedule};
use lambent_store::StoreError;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Notify};

pub use worker::{Runner, Running, WorkerOptions};

/// Most writes committed in one transaction.
pub const MAX_BATCH: usize = 512;

/// Why an events operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("{0}")]
    InvalidSchedule(String),
    #[error("schedule '{0}' already exists: remove it first or pick another name")]
    ScheduleExists(String),
    #[error("schedule '{0}' does not exist")]
    ScheduleNotFound(String),
    #[error("dead letter '{0}' does not exist")]
    DeadLetterNotFound(String),
    #[error("the event writer has stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Handle to the durable queue and schedules. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn EventStore>,
    /// Tells the other nodes (and this one) that events became due or schedules changed.
    bus: Arc<dyn Bus>,
    writes: mpsc::UnboundedSender<PendingWrite>,
    /// Wakes the workers: an event became due.
    events_changed: Notify,
    /// Wakes the scheduler: a schedule was added or changed.
    schedules_changed: Notify,
    region: String,
}

/// Whether a write applied, or why its transaction failed.
type WriteResult = Result<bool, StoreError>;

struct PendingWrite {
    write: EventWrite,
    applied: oneshot::Sender<WriteResult>,
}

async fn wait_applied(wait: oneshot::Receiver<WriteResult>) -> Result<bool, EventsError> {
    match wait.await {
        Ok(Ok(applied)) => Ok(applied),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(EventsError::Stopped),
    }
}

/// What `redrive` did to one dead letter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Redriven {
    pub dead_letter_id: String,
    /// The new event (and its first activation's) id.
    pub activation_id: String,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScheduleView {
    pub name: String,
    pub function: String,
    pub expression: String,
    pub timezone: String,
    pub next_fire_ms: Option<i64>,
    pub created_ms: i64,
    /// The constant input each fire sends instead of EventBridge's scheduled event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<serde_json::Value>,
}

impl From<StoredSchedule> for ScheduleView {
    fn from(s: StoredSchedule) -> Self {
        ScheduleView {
            input: s.input.as_deref().map(|text| {
                // Stored only after it was serialized from a JSON value, so it reads back.
                serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_string()))
            }),
            name: s.name,
            function: s.function,
            expression: s.expression,
            timezone: s.timezone,
            next_fire_ms: s.next_fire_ms,
            created_ms: s.created_ms,
        }
    }
}

/// The largest constant input a schedule takes (EventBridge's limit on a target's `Input`).
pub const MAX_SCHEDULE_INPUT: usize = 256 * 1024;

/// A new event id (also the first attempt's activation id): time-ordered, as activation ids are.
pub fn new_event_id() -> String {
    lambent_core::new_activation_id()
}

impl Events {
    /// Starts the group-commit writer on the current tokio runtime. `region` goes into ARNs;
    /// `bus` carries wake-ups between the nodes of a cluster.
    pub fn start(store: Arc<dyn EventStore>, region: &str, bus: Arc<dyn Bus>) -> Events {
        let (writes, rx) = mpsc::unbounded_channel();
        tokio::spawn(commit_batches(store.clone(), rx));
        let events = Events {
            inner: Arc::new(Inner {
                store,
                bus,
                writes,
                events_changed: Notify::new(),
                schedules_changed: Notify::new(),
                region: region.to_string(),
            }),
        };
        tokio::spawn(wake_on_signals(Arc::downgrade(&events.inner)));
        events
    }

    /// Wakes the dispatchers of every node: events became due.
    pub fn signal_due(&self) {
        self.inner.bus.publish(Signal::Events);
    }

    /// Wakes the schedulers of every node: a schedule changed.
    fn signal_schedules(&self) {
        self.inner.bus.publish(Signal::Schedules);
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    /// Commits one write (with whatever else is waiting); whether it applied.
    pub async fn write(&self, write: EventWrite) -> Result<bool, EventsError> {
        wait_applied(self.submit(write)?).await
    }

    /// Hands a write to the group-commit writer; await the answer with [`wait_applied`].
    fn submit(&self, write: EventWrite) -> Result<oneshot::Receiver<WriteResult>, EventsError> {
        let (applied, wait) = oneshot::channel();
        self.inner
            .writes
            .send(PendingWrite { write, applied })
            .map_err(|_| EventsError::Stopped)?;
        Ok(wait)
    }

    /// Accepts an asynchronous invocation: returns its id once it is durably stored. `trace`:
    /// the caller's trace context, which the invocation continues.
    pub async fn enqueue(
        &self,
        namespace: &str,
        function: &str,
        payload: Vec<u8>,
        trigger: &str,
        trace: Option<lambent_core::TraceContext>,
    ) -> Result<String, EventsError> {
        let origin = lambent_core::TraceOrigin::of(trace);
        self.enqueue_traced(namespace, function, payload, trigger, origin)
            .await
    }

    /// [`Events::enqueue`] of a delivery Lambent draws as a span of its own (`origin.hop`: a
    /// topic's); the origin's other fields are the worker's to set.
    pub async fn enqueue_traced(
        &self,
        namespace: &str,
        function: &str,
        payload: Vec<u8>,
        trigger: &str,
        origin: lambent_core::TraceOrigin,
    ) -> Result<String, EventsError> {
        let mut event = new_event(namespace, function, payload, trigger);
        (event.trace, event.hop) = (origin.context, origin.hop);
        let id = event.id.clone();
        self.write(EventWrite::Enqueue(event)).await?;
        self.signal_due();
        Ok(id)
    }

    /// Events accepted and not yet done (running, waiting or backing off).
    pub async fn pending(&self, namespace: Option<&str>) -> Result<u64, EventsError> {
        Ok(self.inner.store.pending_events(namespace).await?)
    }

    pub async fn dead_letters(
        &self,
        namespace: &str,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, EventsError> {
        Ok(self
            .inner
            .store
            .list_dead_letters(namespace, function, limit)
            .await?)
    }

    pub async fn dead_letter(&self, namespace: &str, id: &str) -> Result<DeadLetter, EventsError> {
        self.inner
            .store
            .get_dead_letter(namespace, id)
            .await?
            .ok_or_else(|| EventsError::DeadLetterNotFound(id.to_string()))
    }

    /// Moves dead letters back into the queue as new events (trigger `redrive`): the one named
    /// `id`, or else all of the namespace's (of `function`, if given).
    pub async fn redrive(
        &self,
        namespace: &str,
        id: Option<&str>,
        function: Option<&str>,
    ) -> Result<Vec<Redriven>, EventsError> {
        let letters = match id {
            Some(id) => vec![self.dead_letter(namespace, id).await?],
            None => {
                self.dead_letters(namespace, function, usize::MAX >> 1)
                    .await?
            }
        };
        // Submit them all before waiting, so that they share transactions.
        let mut submitted = Vec::with_capacity(letters.len());
        for l in letters {
            let event = new_event(&l.namespace, &l.function, l.payload, "redrive");
            let activation_id = event.id.clone();
            let wait = self.submit(EventWrite::Redrive {
                namespace: l.namespace,
                dead_letter_id: l.id.clone(),
                event,
            })?;
            submitted.push((l.id, activation_id, wait));
        }
        let mut redriven = Vec::with_capacity(submitted.len());
        for (dead_letter_id, activation_id, wait) in submitted {
            if wait_applied(wait).await? {
                redriven.push(Redriven {
                    dead_letter_id,
                    activation_id,
                });
            }
        }
        self.signal_due();
        Ok(redriven)
    }

    /// Creates (or with `replace`, replaces) a schedule; returns it and whether it is new.
    /// `input`, if given, is what each fire sends instead of EventBridge's scheduled event.
    pub async fn put_schedule(
        &self,
        namespace: &str,
        name: &str,
        function: &str,
        rule: &schedule::Rule,
        input: Option<&serde_json::Value>,
        replace: bool,
    ) -> Result<(ScheduleView, bool), EventsError> {
        let input = input.map(serde_json::Value::to_string);
        if let Some(text) = input.as_ref().filter(|t| t.len() > MAX_SCHEDULE_INPUT) {
            return Err(EventsError::InvalidSchedule(format!(
                "the schedule's input is {} bytes of JSON; at most {MAX_SCHEDULE_INPUT} (256 KiB) \
                 are allowed",
                text.len()
            )));
        }
        let now = now_ms();
        let existed = self.inner.store.get_schedule(namespace, name).await?;
        let next_fire_ms = rule.next_after(now, now);
        if next_fire_ms.is_none() {
            return Err(EventsError::InvalidSchedule(format!(
                "{} is in the past: it would never fire",
                rule.text()
            )));
        }
        let stored = StoredSchedule {
            namespace: namespace.to_string(),
            name: name.to_string(),
            function: function.to_string(),
            expression: rule.text().to_string(),
            timezone: rule.timezone().to_string(),
            next_fire_ms,
            created_ms: now,
            input,
        };
        if !self.inner.store.put_schedule(&stored, replace).await? {
            return Err(EventsError::ScheduleExists(name.to_string()));
        }
        self.signal_schedules();
        Ok((stored.into(), existed.is_none()))
    }

    pub async fn schedules(&self, namespace: &str) -> Result<Vec<ScheduleView>, EventsError> {
        let list = self.inner.store.list_schedules(namespace).await?;
        Ok(list.into_iter().map(Into::into).collect())
    }

    pub async fn schedule(&self, namespace: &str, name: &str) -> Result<ScheduleView, EventsError> {
        self.inner
            .store
            .get_schedule(namespace, name)
            .await?
            .map(Into::into)
            .ok_or_else(|| EventsError::ScheduleNotFound(name.to_string()))
    }

    pub async fn delete_schedule(&self, namespace: &str, name: &str) -> Result<(), EventsError> {
        if self.inner.store.delete_schedule(namespace, name).await? {
            self.signal_schedules();
            Ok(())
        } else {
            Err(EventsError::ScheduleNotFound(name.to_string()))
        }
    }
}

pub(crate) fn new_event(
    namespace: &str,
    function: &str,
    payload: Vec<u8>,
    trigger: &str,
) -> QueuedEvent {
    let now = now_ms();
    QueuedEvent {
        id: new_event_id(),
        namespace: namespace.to_string(),
        function: function.to_string(),
        payload,
        trigger: trigger.to_string(),
        created_ms: now,
        due_ms: now,
        attempts: 0,
        claims: 0,
        trace: None,
        hop: None,
    }
}

/// Turns bus signals (from any node, this one's included) into wake-ups of the workers.
async fn wake_on_signals(inner: std::sync::Weak<Inner>) {
    let mut rx = match inner.upgrade() {
        Some(inner) => inner.bus.subscribe(),
        None => return,
    };
    loop {
        let signal = rx.recv().await;
        let Some(inner) = inner.upgrade() else { return };
        match signal {
            Ok(Envelope {
                signal: Signal::Events,
                ..
            }) => inner.events_changed.notify_one(),
            Ok(Envelope {
                signal: Signal::Schedules,
                ..
            }) => inner.schedules_changed.notify_one(),
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                inner.events_changed.notify_one();
                inner.schedules_changed.notify_one();
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// The group-commit writer: takes whatever writes are waiting (up to [`MAX_BATCH`]), commits
/// them in one transaction, then answers each caller.
async fn commit_batches(store: Arc<dyn EventStore>, mut rx: mpsc::UnboundedReceiver<PendingWrite>) {
    let mut batch: Vec<PendingWrite> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        let (writes, waiting): (Vec<EventWrite>, Vec<_>) =
            batch.drain(..).map(|p| (p.write, p.applied)).unzip();
        match store.write_events(writes).await {
            Ok(applied) => {
                for (done, applied) in waiting.into_iter().zip(applied) {
                    let _ = done.send(Ok(applied));
                }
            }
            Err(e) => {
                tracing::error!("could not commit {} event writes: {e}", waiting.len());
                for done in waiting {
                    let _ = done.send(Err(e.for_another()));
                }
            }
        }
    }
}
