//! The durable state of asynchronous invocations and schedules, behind [`EventStore`]: the
//! queue of pending events with their leases, the dead-letter queue of each namespace, and the
//! schedules with their next fire time. SQLite implements it for one node; a cluster backend
//! (NATS JetStream, PostgreSQL) can replace it. The semantics (retries, backoff, what a fire
//! is) live in the `lambent-events` crate; this trait only stores and moves rows atomically.

use crate::StoreError;
use async_trait::async_trait;

/// The `function` of an event (or schedule) that starts workflow `name` instead of invoking a
/// function (function names cannot hold a `:`); `lambent-events` delivers it.
pub fn workflow_target(name: &str) -> String {
    format!("{WORKFLOW_TARGET_PREFIX}{name}")
}

/// See [`workflow_target`].
pub const WORKFLOW_TARGET_PREFIX: &str = "workflow:";

/// One pending asynchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedEvent {
    pub id: String,
    pub namespace: String,
    pub function: String,
    pub payload: Vec<u8>,
    /// What produced it: `async`, `schedule`, `destination`, `redrive`.
    pub trigger: String,
    pub created_ms: i64,
    /// When it may run next (while leased: when the lease expires).
    pub due_ms: i64,
    /// Failed attempts so far (throttles do not count).
    pub attempts: u32,
    /// Times it was handed to a worker; the fencing token of the current lease.
    pub claims: u32,
    /// The trace of whoever enqueued it, continued by the invocation.
    pub trace: Option<lambent_core::TraceContext>,
    /// The delivery it is, when Lambent draws one (a topic's): see
    /// [`crate::event_trace_column`].
    pub hop: Option<lambent_core::Hop>,
}

/// An event given up on: retries exhausted or too old.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub id: String,
    pub namespace: String,
    pub function: String,
    #[serde(skip)]
    pub payload: Vec<u8>,
    pub trigger: String,
    pub created_ms: i64,
    pub failed_ms: i64,
    pub attempts: u32,
    pub error_type: String,
    pub error_message: String,
    /// The last attempt's activation, if one ran.
    pub activation_id: Option<String>,
}

/// A schedule as stored: the expression is kept as written (`cron(…)`, `rate(…)`, `at(…)`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredSchedule {
    pub namespace: String,
    pub name: String,
    pub function: String,
    pub expression: String,
    pub timezone: String,
    /// The next fire (ms since the epoch); `None`: a one-shot that already fired.
    pub next_fire_ms: Option<i64>,
    pub created_ms: i64,
    /// A constant input (JSON text) sent instead of EventBridge's scheduled event.
    pub input: Option<String>,
}

/// One change, applied with others in one transaction (group commit). A change that carries a
/// `claim` applies only if the event is still held under that claim (fencing): otherwise it is
/// skipped and reported as not applied.
#[derive(Debug, Clone)]
pub enum EventWrite {
    Enqueue(QueuedEvent),
    /// The event ran: delete it, and enqueue `then` (a destination's event).
    Complete {
        id: String,
        claim: u32,
        then: Option<QueuedEvent>,
    },
    /// The event failed or was throttled: release it until `due_ms`.
    Retry {
        id: String,
        claim: u32,
        attempts: u32,
        due_ms: i64,
        error: String,
    },
    /// The event failed for good: move it to its namespace's dead-letter queue, enqueue `then`.
    DeadLetter {
        claim: u32,
        letter: DeadLetter,
        then: Option<QueuedEvent>,
    },
    /// Move a dead letter back into the queue as a new event.
    Redrive {
        namespace: String,
        dead_letter_id: String,
        event: QueuedEvent,
    },
    /// A schedule fired: enqueue its event and move its next fire time, only if the stored next
    /// fire is still `expected_next_ms` (so one fire is neither lost nor doubled). A `None`
    /// next fire deletes the schedule (a one-shot).
    Fire {
        namespace: String,
        name: String,
        expected_next_ms: i64,
        next_fire_ms: Option<i64>,
        event: QueuedEvent,
    },
}

/// What a worker asks [`EventStore::claim_events`] for.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub now_ms: i64,
    pub limit: usize,
    pub lease_until_ms: i64,
    /// The node taking the leases (its id; `local` on the embedded single node).
    pub owner: &'a str,
    /// Affinity: the functions (`namespace/name`, see [`function_key`]) this node runs;
    /// `None`: every function.
    pub home: Option<&'a [String]>,
    /// With `home`: events of other functions are taken once due for this long (their home is
    /// saturated or gone).
    pub spill_after_ms: i64,
}

/// The key of a function in [`Claim::home`]: `namespace/name`.
pub fn function_key(namespace: &str, function: &str) -> String {
    format!("{namespace}/{function}")
}

/// Where asynchronous invocations and schedules are kept.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Applies every write in one durable transaction; per write, whether it applied.
    async fn write_events(&self, batch: Vec<EventWrite>) -> Result<Vec<bool>, StoreError>;
    /// Leases up to `claim.limit` due events, oldest due first, to `claim.owner` until
    /// `claim.lease_until_ms` (incrementing their `claims`). With `claim.home`, only events of
    /// those functions are taken, and others once they are overdue by `claim.spill_after_ms`.
    async fn claim_events(&self, claim: &Claim<'_>) -> Result<Vec<QueuedEvent>, StoreError>;
    /// Extends a lease still held under `claim`.
    async fn extend_lease(&self, id: &str, claim: u32, until_ms: i64) -> Result<(), StoreError>;
    /// Makes due now every leased event whose owner is not one of `live_owners`: the node that
    /// held it is gone (the embedded single node at start-up passes none: every lease is its
    /// previous run's). Returns how many.
    async fn release_leases(&self, now_ms: i64, live_owners: &[String]) -> Result<u64, StoreError>;
    /// Makes due now every lease `owner` holds (a node handing its work back as it stops).
    async fn release_leases_of(&self, now_ms: i64, owner: &str) -> Result<u64, StoreError>;
    /// When the earliest pending event is due.
    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;
    /// Pending events of a namespace (or all), leased or not.
    async fn pending_events(&self, namespace: Option<&str>) -> Result<u64, StoreError>;

    async fn list_dead_letters(
        &self,
        namespace: &str,
        function: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError>;
    async fn get_dead_letter(
        &self,
        namespace: &str,
        id: &str,
    ) -> Result<Option<DeadLetter>, StoreError>;

    /// Creates a schedule, or replaces it when `replace`; false if it exists and not `replace`.
    async fn put_schedule(&self, s: &StoredSchedule, replace: bool) -> Result<bool, StoreError>;
    async fn list_schedules(&self, namespace: &str) -> Result<Vec<StoredSchedule>, StoreError>;
    async fn get_schedule(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredSchedule>, StoreError>;
    async fn delete_schedule(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;
    /// Schedules of every namespace whose next fire is at or before `now_ms`.
    async fn due_schedules(&self, now_ms: i64) -> Result<Vec<StoredSchedule>, StoreError>;
    /// The earliest next fire of any schedule.
    async fn next_fire_ms(&self) -> Result<Option<i64>, StoreError>;
}
