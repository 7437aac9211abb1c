//! The workers: a dispatcher that leases due events and runs each through the invoker (as many
//! at once as [`WorkerOptions::concurrency`]), deciding done / retry / dead letter; and the
//! scheduler that fires due schedules. Both stop on [`Running::stop`]; leases still held then
//! are released at the next start (the embedded store has a single node).

use crate::destination::{self, Condition, Deliver, Response, Target};
use crate::schedule::{self, Rule};
use crate::{new_event, Events};
use bytes::Bytes;
use lambent_core::{now_ms, ActivationStatus, AsyncConfig, TraceOrigin};
use lambent_invoker::{Deployment, InvokeRequest, InvokeResult, Invoker};
use lambent_store::events::{Claim, DeadLetter, EventWrite, QueuedEvent, StoredSchedule};
use lambent_store::recorder::Recorder;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

/// Finds the deployment serving a function (namespace, name).
pub type Lookup = Arc<dyn Fn(&str, &str) -> Option<Arc<Deployment>> + Send + Sync>;

/// What the workers run events with.
#[derive(Clone)]
pub struct Runner {
    pub invoker: Invoker,
    pub lookup: Lookup,
    /// Flushed before an event is marked done: its activation record is then durable too.
    pub recorder: Recorder,
    /// Queue and topic destinations; `None`: such records fail to the dead-letter queue.
    pub deliver: Option<Arc<dyn Deliver>>,
}

/// The functions (`namespace/name` keys) whose events this node should take: its share of the
/// cluster by placement. Asked before each claim.
pub type Home = Arc<dyn Fn() -> Arc<Vec<String>> + Send + Sync>;

/// Whether this node holds a cluster-wide lease now.
pub type IsLeader = Arc<dyn Fn() -> bool + Send + Sync>;

/// How the workers behave.
#[derive(Clone)]
pub struct WorkerOptions {
    /// The node that takes the leases.
    pub node_id: String,
    /// One node of a cluster: at start it takes back only its own previous leases (others'
    /// belong to live nodes or are released by whoever sees their node die).
    pub clustered: bool,
    /// Affinity: only these functions' events, and others once overdue by `spill_after`.
    pub home: Option<Home>,
    pub spill_after: Duration,
    /// Whether this node fires the schedules now (a cluster's schedule leader); `None`: always.
    pub schedule_leader: Option<IsLeader>,
    /// Events run at once (the invoker's limits apply on top).
    pub concurrency: usize,
    /// How long a claim holds an event before another worker may take it over (extended to the
    /// function's timeout plus a margin when that is longer).
    pub lease: Duration,
    /// How long a throttled event waits before it is tried again (plus up to as much jitter).
    pub throttle_delay: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            node_id: lambent_core::LOCAL_NODE.into(),
            clustered: false,
            home: None,
            spill_after: Duration::from_secs(2),
            schedule_leader: None,
            concurrency: 64,
            lease: Duration::from_secs(60),
            throttle_delay: Duration::from_millis(500),
        }
    }
}

/// The workers of one node.
pub struct Running {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    events: Events,
    node_id: String,
}

impl Running {
    /// Stops leasing events and firing schedules. Events in flight keep their leases, which
    /// the next start releases.
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }

    /// Stops taking events, lets the running ones finish (up to `grace`), then hands back
    /// whatever this node still holds so that another node runs it at once.
    pub async fn drain(&mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = self.concurrency as u32;
        let slots = self.slots.clone();
        if let Ok(Ok(permits)) = tokio::time::timeout(grace, slots.acquire_many(all)).await {
            permits.forget();
        }
        self.stop();
        match self
            .events
            .store()
            .release_leases_of(now_ms(), &self.node_id)
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!("handed back {n} asynchronous events still running here");
                self.events.signal_due();
            }
            Err(e) => tracing::warn!("could not hand back the events running here: {e}"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The activation id of an event's `claim`-th delivery: the event id for the first, then
/// `<event id>.<claim>` (so every attempt's record names its event).
pub fn attempt_activation_id(event_id: &str, claim: u32) -> String {
    if claim <= 1 {
        event_id.to_string()
    } else {
        format!("{event_id}.{claim}")
    }
}

/// The event id an activation id belongs to (inverse of [`attempt_activation_id`]).
pub fn event_id_of(activation_id: &str) -> &str {
    activation_id
        .split_once('.')
        .map_or(activation_id, |(id, _)| id)
}

const LEASE_MARGIN_MS: i64 = 30_000;

impl Events {
    /// Releases leases left by a previous run, then starts the dispatcher and the scheduler.
    pub async fn run_workers(
        &self,
        runner: Runner,
        opts: WorkerOptions,
    ) -> Result<Running, crate::EventsError> {
        let released = match opts.clustered {
            true => {
                self.store()
                    .release_leases_of(now_ms(), &opts.node_id)
                    .await?
            }
            false => self.store().release_leases(now_ms(), &[]).await?,
        };
        if released > 0 {
            tracing::info!("resuming {released} asynchronous events left running by the last run");
        }
        let (stop, stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(opts.concurrency));
        let worker = Arc::new(Worker {
            events: self.clone(),
            runner,
            slots: slots.clone(),
            opts: opts.clone(),
        });
        let tasks = vec![
            tokio::spawn(worker.clone().dispatch(stopped.clone())),
            tokio::spawn(worker.fire_schedules(stopped)),
        ];
        Ok(Running {
            stop,
            tasks,
            slots,
            concurrency: opts.concurrency,
            events: self.clone(),
            node_id: opts.node_id,
        })
    }
}

struct Worker {
    events: Events,
    runner: Runner,
    slots: Arc<Semaphore>,
    opts: WorkerOptions,
}

/// Sleeps until `until_ms` (at most `cap`), or until `wake` is notified or the node stops.
async fn nap(
    until_ms: Option<i64>,
    cap: Duration,
    wake: &tokio::sync::Notify,
    stopped: &mut watch::Receiver<bool>,
) {
    let wait = until_ms.map_or(cap, |t| {
        Duration::from_millis((t - now_ms()).max(0) as u64).min(cap)
    });
    tokio::select! {
        _ = tokio::time::sleep(wait) => {}
        _ = wake.notified() => {}
        _ = stopped.changed() => {}
    }
}

impl Worker {
    async fn dispatch(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let slots = self.slots.clone();
        let store = self.events.store().clone();
        while !*stopped.borrow() {
            // Wait for a free slot first.
            match slots.clone().acquire_owned().await {
                Ok(permit) => drop(permit),
                Err(_) => return,
            }
            let free = slots.available_permits();
            let now = now_ms();
            let lease_until = now + self.opts.lease.as_millis() as i64;
            let home = self.opts.home.as_ref().map(|home| home());
            let claim = Claim {
                now_ms: now,
                limit: free,
                lease_until_ms: lease_until,
                owner: &self.opts.node_id,
                home: home.as_ref().map(|h| h.as_slice()),
                spill_after_ms: self.opts.spill_after.as_millis() as i64,
            };
            let claimed = match store.claim_events(&claim).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("could not lease asynchronous events: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let all_due_taken = claimed.len() < free;
            for event in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let worker = self.clone();
                tokio::spawn(async move {
                    worker.process(event).await;
                    drop(permit);
                });
            }
            if all_due_taken {
                let next = store.next_due_ms().await.unwrap_or(None);
                nap(
                    next,
                    Duration::from_secs(1),
                    &self.events.inner.events_changed,
                    &mut stopped,
                )
                .await;
            }
        }
    }

    /// Runs one leased event and commits what became of it.
    async fn process(&self, event: QueuedEvent) {
        let write = self.attempt(&event).await;
        let retry_due = matches!(write, EventWrite::Retry { .. });
        match self.events.write(write).await {
            Ok(true) => {}
            Ok(false) => tracing::info!(
                "event {} was taken over by another worker; its outcome here is dropped",
                event.id
            ),
            Err(e) => tracing::error!("could not record the outcome of event {}: {e}", event.id),
        }
        if retry_due {
            // The dispatcher may be napping past the retry's due time.
            self.events.inner.events_changed.notify_one();
        }
    }

    async fn attempt(&self, event: &QueuedEvent) -> EventWrite {
        if let Some(target) = Target::of(&event.function) {
            return self.deliver(event, target).await;
        }
        let now = now_ms();
        let Some(dep) = (self.runner.lookup)(&event.namespace, &event.function) else {
            let message = format!(
                "function '{}' does not exist in namespace '{}'",
                event.function, event.namespace
            );
            return dead_letter(
                event,
                event.attempts,
                "FunctionNotFound",
                &message,
                None,
                None,
            );
        };
        let config = dep.function.config.async_invoke.clone();
        let arn = dep.arn(self.events.region());
        let max_age_ms = config.max_event_age_s as i64 * 1000;
        if now - event.created_ms > max_age_ms {
            let record = destination::invocation_record(
                event,
                &arn,
                Condition::EventAgeExceeded,
                event.attempts,
                None,
            );
            let then = config
                .on_failure
                .as_ref()
                .and_then(|d| destination::event_for(&event.namespace, d, &record));
            let message = format!("the event is older than {} s", config.max_event_age_s);
            return dead_letter(
                event,
                event.attempts,
                "EventAgeExceeded",
                &message,
                None,
                then,
            );
        }
        let timeout_ms = dep.function.config.timeout_s as i64 * 1000;
        let needed_until = now + timeout_ms + LEASE_MARGIN_MS;
        if needed_until > event.due_ms {
            if let Err(e) = self
                .events
                .store()
                .extend_lease(&event.id, event.claims, needed_until)
                .await
            {
                tracing::warn!("could not extend the lease of event {}: {e}", event.id);
            }
        }
        let activation_id = attempt_activation_id(&event.id, event.claims);
        let result = self
            .runner
            .invoker
            .invoke(
                &dep,
                InvokeRequest {
                    payload: Bytes::from(event.payload.clone()),
                    trigger: event.trigger.clone(),
                    request_id: Some(activation_id.clone()),
                    trace: TraceOrigin {
                        context: event.trace.clone(),
                        queued_ms: Some(event.created_ms),
                        http: None,
                        hop: event.hop.clone(),
                    },
                    ..Default::default()
                },
            )
            .await;
        // The record of this attempt is durable before the event is marked done (so a done
        // event always has its activation), and before a retry (so attempts can be audited).
        self.runner.recorder.flush().await;
        self.decide(event, &config, &arn, activation_id, &result)
    }

    /// Carries a destination record to its queue or topic, retried like an invocation.
    async fn deliver(&self, event: &QueuedEvent, target: Target<'_>) -> EventWrite {
        let record = String::from_utf8_lossy(&event.payload);
        let outcome = match &self.runner.deliver {
            Some(d) => {
                d.deliver(
                    &event.namespace,
                    target,
                    &record,
                    &event.id,
                    event.trace.as_ref(),
                )
                .await
            }
            None => Err("queues and topics are not available on this node".to_string()),
        };
        let Err(error) = outcome else {
            return EventWrite::Complete {
                id: event.id.clone(),
                claim: event.claims,
                then: None,
            };
        };
        let attempts = event.attempts + 1;
        if attempts <= AsyncConfig::default().max_retries {
            return EventWrite::Retry {
                id: event.id.clone(),
                claim: event.claims,
                attempts,
                due_ms: now_ms() + AsyncConfig::retry_delay_ms(attempts) as i64,
                error: format!("DestinationFailed: {error}"),
            };
        }
        dead_letter(event, attempts, "DestinationFailed", &error, None, None)
    }

    fn decide(
        &self,
        event: &QueuedEvent,
        config: &AsyncConfig,
        arn: &str,
        activation_id: String,
        result: &InvokeResult,
    ) -> EventWrite {
        let a = &result.activation;
        let now = now_ms();
        match a.status {
            ActivationStatus::Success => {
                let then = config.on_success.as_ref().and_then(|d| {
                    let record = destination::invocation_record(
                        event,
                        arn,
                        Condition::Success,
                        event.attempts + 1,
                        Some(Response {
                            body: &result.body,
                            function_error: None,
                        }),
                    );
                    destination::event_for(&event.namespace, d, &record).map(|e| continued(e, a))
                });
                EventWrite::Complete {
                    id: event.id.clone(),
                    claim: event.claims,
                    then,
                }
            }
            ActivationStatus::Throttled => {
                let base = self.opts.throttle_delay.as_millis() as i64;
                let jitter = rand::random::<u64>() as i64 % base.max(1);
                EventWrite::Retry {
                    id: event.id.clone(),
                    claim: event.claims,
                    attempts: event.attempts,
                    due_ms: now + base + jitter,
                    error: a.error_message.clone().unwrap_or_default(),
                }
            }
            _ => {
                let attempts = event.attempts + 1;
                let error_type = a.error_type.clone().unwrap_or_else(|| a.status.to_string());
                let message = a.error_message.clone().unwrap_or_default();
                let due_ms = now + AsyncConfig::retry_delay_ms(attempts) as i64;
                let too_old = due_ms - event.created_ms > config.max_event_age_s as i64 * 1000;
                if attempts <= config.max_retries && !too_old {
                    return EventWrite::Retry {
                        id: event.id.clone(),
                        claim: event.claims,
                        attempts,
                        due_ms,
                        error: format!("{error_type}: {message}"),
                    };
                }
                let condition = if too_old && attempts <= config.max_retries {
                    Condition::EventAgeExceeded
                } else {
                    Condition::RetriesExhausted
                };
                let then = config.on_failure.as_ref().and_then(|d| {
                    let record = destination::invocation_record(
                        event,
                        arn,
                        condition,
                        attempts,
                        Some(Response {
                            body: &result.body,
                            function_error: Some(&error_type),
                        }),
                    );
                    destination::event_for(&event.namespace, d, &record).map(|e| continued(e, a))
                });
                dead_letter(
                    event,
                    attempts,
                    &error_type,
                    &message,
                    Some(activation_id),
                    then,
                )
            }
        }
    }

    /// Fires due schedules, then naps until the next fire (or a change).
    async fn fire_schedules(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let store = self.events.store().clone();
        while !*stopped.borrow() {
            if let Some(leader) = &self.opts.schedule_leader {
                if !leader() {
                    nap(
                        None,
                        Duration::from_millis(250),
                        &self.events.inner.schedules_changed,
                        &mut stopped,
                    )
                    .await;
                    continue;
                }
            }
            let now = now_ms();
            match store.due_schedules(now).await {
                Ok(due) => {
                    for s in due {
                        self.fire(s, now).await;
                    }
                }
                Err(e) => tracing::error!("could not read the schedules: {e}"),
            }
            let next = store.next_fire_ms().await.unwrap_or(None);
            nap(
                next,
                Duration::from_secs(1),
                &self.events.inner.schedules_changed,
                &mut stopped,
            )
            .await;
        }
    }

    /// One fire: the scheduled event (or the schedule's constant input) is enqueued in the transaction that moves the next fire
    /// time to the first one after now (so missed fires become one catch-up fire).
    async fn fire(&self, s: StoredSchedule, now: i64) {
        let Some(fire_ms) = s.next_fire_ms else {
            return;
        };
        let next_fire_ms = match Rule::parse(&s.expression, &s.timezone) {
            Ok(rule) => rule.next_after(now.max(fire_ms), s.created_ms),
            Err(e) => {
                tracing::error!("schedule '{}' is unreadable ({e}); it is removed", s.name);
                None
            }
        };
        let mut event = new_event(&s.namespace, &s.function, Vec::new(), "schedule");
        event.payload = match s.input {
            Some(input) => input.into_bytes(),
            None => schedule::scheduled_event(
                &event.id,
                self.events.region(),
                &s.namespace,
                &s.name,
                fire_ms,
            )
            .to_string()
            .into_bytes(),
        };
        let fired = self
            .events
            .write(EventWrite::Fire {
                namespace: s.namespace.clone(),
                name: s.name.clone(),
                expected_next_ms: fire_ms,
                next_fire_ms,
                event,
            })
            .await;
        match fired {
            Ok(true) => self.events.signal_due(),
            Ok(false) => {} // changed or removed meanwhile
            Err(e) => tracing::error!("could not fire schedule '{}': {e}", s.name),
        }
    }
}

/// A destination's event continues the trace of the activation it reports.
fn continued(mut then: QueuedEvent, a: &lambent_core::Activation) -> QueuedEvent {
    then.trace = a.trace.as_ref().map(|t| t.child_context());
    then
}

fn dead_letter(
    event: &QueuedEvent,
    attempts: u32,
    error_type: &str,
    message: &str,
    activation_id: Option<String>,
    then: Option<QueuedEvent>,
) -> EventWrite {
    EventWrite::DeadLetter {
        claim: event.claims,
        letter: DeadLetter {
            id: event.id.clone(),
            namespace: event.namespace.clone(),
            function: event.function.clone(),
            payload: event.payload.clone(),
            trigger: event.trigger.clone(),
            created_ms: event.created_ms,
            failed_ms: now_ms(),
            attempts,
            error_type: error_type.to_string(),
            error_message: message.to_string(),
            activation_id,
        },
        then,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_ids_name_their_event() {
        assert_eq!(attempt_activation_id("e1", 1), "e1");
        assert_eq!(attempt_activation_id("e1", 3), "e1.3");
        assert_eq!(event_id_of("e1.3"), "e1");
        assert_eq!(event_id_of("e1"), "e1");
    }
}
