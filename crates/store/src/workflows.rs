//! Where Step Functions state lives, behind [`WorkflowStore`]: state machines (definition, type,
//! role, revision), their executions (status, input, output, the latest committed checkpoint of
//! the interpreter, the node that runs it under a lease) and each execution's history events.
//! The semantics (what a checkpoint holds, how an execution resumes) live in
//! `lambent-workflows` and `lambent-sfn-api`; this seam stores rows and moves them atomically.

use crate::StoreError;
use async_trait::async_trait;

/// A state machine as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStateMachine {
    pub namespace: String,
    pub name: String,
    pub arn: String,
    /// The definition as written (JSON text).
    pub definition: String,
    /// `STANDARD` or `EXPRESS`.
    pub kind: String,
    pub role_arn: String,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// 1 at creation, one more per update.
    pub revision: u64,
}

/// An execution as stored. Only Standard executions are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredExecution {
    pub arn: String,
    pub namespace: String,
    pub name: String,
    pub state_machine_arn: String,
    /// The definition it started with (a resume runs it, whatever updates came since).
    pub definition: String,
    /// `RUNNING`, `SUCCEEDED`, `FAILED`, `TIMED_OUT` or `ABORTED`.
    pub status: String,
    /// JSON text.
    pub input: String,
    /// JSON text, once succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    /// The latest committed interpreter state (`ExecutionState` JSON); `None` before the first.
    pub state: Option<String>,
    /// State transitions so far (metering).
    pub transitions: u64,
    /// The node running it, while it runs.
    pub owner: Option<String>,
    /// Until when `owner` holds it (ms since the epoch): past that, another node may take it.
    pub lease_until_ms: i64,
    /// The trace context of the request that started it, which its states continue.
    pub trace: Option<lambent_core::TraceContext>,
}

/// What [`WorkflowStore::start_execution`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// Inserted: the caller runs it.
    New,
    /// An execution of that ARN already exists (idempotency by name): here it is.
    Existing(Box<StoredExecution>),
}

/// One committed checkpoint of an execution: its new status and state, and the events recorded
/// since the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub status: String,
    pub state: String,
    pub transitions: u64,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub stop_ms: Option<i64>,
    /// `(event id, event JSON)`, appended (an id already stored is replaced: a resumed state
    /// records its events again under the ids the committed counters give).
    pub events: Vec<(u64, String)>,
    /// The lease, extended with the commit.
    pub lease_until_ms: i64,
}

/// The columns of a stored state machine, in the order both backends read them.
pub const SM_COLUMNS: &str =
    "namespace, name, arn, definition, kind, role_arn, created_ms, updated_ms, revision";

/// The columns of a stored execution, in the order both backends read them.
pub const EXECUTION_COLUMNS: &str = "arn, namespace, name, state_machine_arn, definition, \
status, input, output, error, cause, start_ms, stop_ms, state, transitions, owner, lease_until_ms, \
trace";

/// How [`WorkflowStore::abort_execution`] ends an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    pub stop_ms: i64,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// The `ExecutionAborted` event, JSON; its ids are set by the store.
    pub event: String,
}

/// `event` (a history event in its stored form, `lambent_workflows::HistoryEvent` as JSON)
/// numbered `id`, following `id - 1`: the store numbers an event it appends on its own
/// ([`WorkflowStore::abort_execution`]).
pub fn number_event(event: &str, id: u64) -> Result<String, StoreError> {
    let mut value: serde_json::Value = serde_json::from_str(event)
        .map_err(|e| StoreError::Database(format!("a history event is not JSON: {e}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Database("a history event is not a JSON object".into()))?;
    object.insert("id".into(), id.into());
    object.insert("previous_event_id".into(), id.saturating_sub(1).into());
    Ok(value.to_string())
}

/// A page of executions of one state machine, newest first.
#[derive(Debug, Clone, Default)]
pub struct ExecutionQuery {
    pub state_machine_arn: String,
    pub status: Option<String>,
    /// Continue after this `(start_ms, arn)` (the previous page's last).
    pub after: Option<(i64, String)>,
    pub limit: usize,
}

/// State transitions of one state machine's executions started in a window (metering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionUsage {
    pub state_machine_arn: String,
    pub executions: u64,
    pub transitions: u64,
}

/// Durable state machines, executions and histories.
#[async_trait]
pub trait WorkflowStore: Send + Sync + 'static {
    /// Creates a state machine; false if one of that namespace and name exists.
    async fn create_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError>;
    /// Replaces a state machine if its stored revision is `sm.revision - 1`; false otherwise.
    async fn update_state_machine(&self, sm: &StoredStateMachine) -> Result<bool, StoreError>;
    async fn get_state_machine(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredStateMachine>, StoreError>;
    /// A namespace's state machines, by name.
    async fn list_state_machines(
        &self,
        namespace: &str,
    ) -> Result<Vec<StoredStateMachine>, StoreError>;
    /// Deletes a state machine (its executions stay); false if there was none.
    async fn delete_state_machine(&self, namespace: &str, name: &str) -> Result<bool, StoreError>;

    /// Inserts a new execution (leased to its `owner`), unless one of that ARN exists: then
    /// returns it untouched.
    async fn start_execution(&self, e: &StoredExecution) -> Result<Started, StoreError>;
    async fn get_execution(&self, arn: &str) -> Result<Option<StoredExecution>, StoreError>;
    async fn list_executions(&self, q: &ExecutionQuery)
        -> Result<Vec<StoredExecution>, StoreError>;
    /// Per state machine of `namespace` (by ARN): the executions started at or after
    /// `since_ms` and their state transitions so far.
    async fn transition_usage(
        &self,
        namespace: &str,
        since_ms: i64,
    ) -> Result<Vec<TransitionUsage>, StoreError>;
    /// Commits a checkpoint and its events in one transaction, if `owner` still holds the
    /// execution (fencing); false otherwise (nothing written). A status other than `RUNNING`
    /// ends the lease.
    async fn commit_execution(
        &self,
        arn: &str,
        owner: &str,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError>;
    /// Ends a running execution as `ABORTED` whichever node holds it (`StopExecution` received
    /// by a node that does not run it): in one transaction the status, `error`, `cause` and
    /// `stop_ms` are set, the lease ends, and `event` (the `ExecutionAborted` history event,
    /// JSON) is appended after the last stored event, its `id` and `previous_event_id` set here
    /// ([`number_event`]). The holder's next commit is refused (fencing), and it stops. False
    /// if the execution was not running.
    async fn abort_execution(&self, arn: &str, abort: &Abort) -> Result<bool, StoreError>;
    /// Events of an execution with ids after `after_id`, in id order (reversed: ids before
    /// `after_id`, or from the last when it is 0, newest first), at most `limit`.
    async fn execution_history(
        &self,
        arn: &str,
        after_id: u64,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, StoreError>;

    /// Leases to `owner` until `lease_until_ms` up to `limit` running executions whose lease
    /// has run out at `now_ms` (their node died or stopped); returns them.
    async fn claim_executions(
        &self,
        now_ms: i64,
        owner: &str,
        lease_until_ms: i64,
        limit: usize,
    ) -> Result<Vec<StoredExecution>, StoreError>;
    /// Ends now the leases of running executions held by owners not in `live_owners` (the
    /// embedded node at start-up passes none). Returns how many.
    async fn release_execution_leases(
        &self,
        now_ms: i64,
        live_owners: &[String],
    ) -> Result<u64, StoreError>;
    /// Extends every lease `owner` holds on a running execution.
    async fn extend_execution_leases(
        &self,
        owner: &str,
        lease_until_ms: i64,
    ) -> Result<u64, StoreError>;
}
