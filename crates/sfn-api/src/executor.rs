//! The executor: state machines and their executions as a service, protocol apart. It keeps
//! definitions and Standard executions in the [`WorkflowStore`] (each checkpoint of the
//! interpreter committed with its history events, fenced by the node's lease), runs Express
//! executions in memory, resumes the Standard executions whose node died (at start-up on the
//! embedded node; when their lease runs out in a cluster), and answers task callbacks.
//! What a Task's `Resource` does is [`crate::tasks`].

use crate::callbacks::Callbacks;
use crate::error::SfnError;
use crate::tasks::Tasks;
use lambent_core::TraceContext;
use lambent_gateway::App;
use lambent_store::workflows::{
    Abort, Checkpoint, ExecutionQuery, Started, StoredExecution, StoredStateMachine,
    TransitionUsage, WorkflowStore,
};
use lambent_workflows::{
    Diagnostic, EventType, Execution, ExecutionInfo, ExecutionSink, ExecutionState, HistoryEvent,
    MemorySink, Outcome, Runtime, StateMachine, TokioClock,
};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use time::OffsetDateTime;

/// How long a node holds an execution without renewing its lease; a node that died loses its
/// executions to another after this.
pub const LEASE: Duration = Duration::from_secs(20);
/// The largest execution input, as on AWS.
pub const MAX_INPUT: usize = 256 * 1024;

/// `STANDARD` or `EXPRESS`.
pub const STANDARD: &str = "STANDARD";
pub const EXPRESS: &str = "EXPRESS";

/// State machines and executions of every namespace of this node.
pub struct Workflows {
    pub(crate) app: Arc<App>,
    store: Arc<dyn WorkflowStore>,
    pub(crate) region: String,
    node: String,
    running: Mutex<HashMap<String, Arc<Execution>>>,
    pub(crate) callbacks: Callbacks,
    me: Weak<Workflows>,
}

/// How an Express execution run by `StartSyncExecution` ended.
pub struct SyncResult {
    pub execution_arn: String,
    pub state_machine_arn: String,
    pub name: String,
    pub start_ms: i64,
    pub stop_ms: i64,
    pub input: String,
    pub outcome: Outcome,
    pub transitions: u64,
}

fn now_ms() -> i64 {
    lambent_core::now_ms()
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// AWS's rule for state machine and execution names: 1–80 characters, none of whitespace,
/// brackets, wildcards, special characters or control characters.
pub fn check_name(name: &str) -> Result<(), SfnError> {
    let bad = name.is_empty()
        || name.chars().count() > 80
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
    if bad {
        return Err(SfnError::InvalidName(format!("Invalid Name: '{name}'")));
    }
    Ok(())
}

/// A state machine's type: `STANDARD` (the default) or `EXPRESS`.
pub fn check_kind(kind: Option<&str>) -> Result<&'static str, SfnError> {
    match kind.unwrap_or(STANDARD) {
        STANDARD => Ok(STANDARD),
        EXPRESS => Ok(EXPRESS),
        other => Err(SfnError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
        ))),
    }
}

/// The parts of an execution ARN
/// `arn:aws:states:<region>:<namespace>:(execution|express):<machine>:<name>[:<id>]`.
pub struct ExecutionArn<'a> {
    pub namespace: &'a str,
    pub machine: &'a str,
    pub name: &'a str,
}

impl Workflows {
    pub fn new(
        app: Arc<App>,
        store: Arc<dyn WorkflowStore>,
        region: String,
        node: String,
    ) -> Arc<Workflows> {
        Arc::new_cyclic(|me| Workflows {
            app,
            store,
            region,
            callbacks: Callbacks::new(&node),
            node,
            running: Mutex::new(HashMap::new()),
            me: me.clone(),
        })
    }

    /// The task tokens waiting on this node (and, in a cluster, the relay to the others').
    pub fn callbacks(&self) -> &Callbacks {
        &self.callbacks
    }

    fn arc(&self) -> Arc<Workflows> {
        self.me.upgrade().expect("the executor is alive while used")
    }

    pub fn state_machine_arn(&self, namespace: &str, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{namespace}:stateMachine:{name}",
            self.region
        )
    }

    /// The ARN of the Standard execution `name` of state machine `machine`.
    pub fn execution_arn(&self, namespace: &str, machine: &str, name: &str) -> String {
        format!(
            "arn:aws:states:{}:{namespace}:execution:{machine}:{name}",
            self.region
        )
    }

    /// The name of a state machine ARN of `namespace`.
    pub fn parse_state_machine_arn<'a>(
        &self,
        namespace: &str,
        arn: &'a str,
    ) -> Result<&'a str, SfnError> {
        let invalid = || {
            SfnError::InvalidArn(format!(
                "Invalid Arn: 'Resource type not valid in this context: {arn}'"
            ))
        };
        let parts: Vec<&str> = arn.split(':').collect();
        match parts[..] {
            ["arn", "aws", "states", region, account, "stateMachine", name] => {
                if region != self.region || account != namespace {
                    return Err(SfnError::StateMachineDoesNotExist(format!(
                        "State Machine Does Not Exist: '{arn}'"
                    )));
                }
                Ok(name)
            }
            _ => Err(invalid()),
        }
    }

    /// A state machine's type: `STANDARD` (the default) or `EXPRESS`.
    pub fn check_kind(kind: Option<&str>) -> Result<&'static str, SfnError> {
        match kind.unwrap_or(STANDARD) {
        STANDARD => Ok(STANDARD),
        EXPRESS => Ok(EXPRESS),
        other => Err(SfnError::Validation(format!(
            "1 validation error detected: Value '{other}' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]"
        ))),
    }
    }

    /// The parts of an execution ARN of `namespace`.
    pub fn parse_execution_arn<'a>(
        &self,
        namespace: &str,
        arn: &'a str,
    ) -> Result<ExecutionArn<'a>, SfnError> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts[..] {
            ["arn", "aws", "states", region, account, "execution" | "express", machine, name, ..] =>
            {
                if region != self.region || account != namespace {
                    return Err(SfnError::ExecutionDoesNotExist(format!(
                        "Execution Does Not Exist: '{arn}'"
                    )));
                }
                Ok(ExecutionArn {
                    namespace: account,
                    machine,
                    name,
                })
            }
            _ => Err(SfnError::InvalidArn(format!(
                "Invalid Arn: 'Resource type not valid in this context: {arn}'"
            ))),
        }
    }

    /// Parses a definition, refusing it with AWS's `InvalidDefinition` message.
    pub fn parse_definition(definition: &str) -> Result<Arc<StateMachine>, SfnError> {
        StateMachine::parse(definition)
            .map(Arc::new)
            .map_err(|e| SfnError::InvalidDefinition(e.to_string()))
    }

    /// `ValidateStateMachineDefinition`'s diagnostics.
    pub fn validate(definition: &str) -> Vec<Diagnostic> {
        StateMachine::validate(definition)
    }

    pub async fn create_state_machine(
        &self,
        namespace: &str,
        name: &str,
        definition: &str,
        kind: Option<&str>,
        role_arn: &str,
    ) -> Result<StoredStateMachine, SfnError> {
        check_name(name)?;
        let kind = check_kind(kind)?;
        Self::parse_definition(definition)?;
        let now = now_ms();
        let sm = StoredStateMachine {
            namespace: namespace.into(),
            name: name.into(),
            arn: self.state_machine_arn(namespace, name),
            definition: definition.into(),
            kind: kind.into(),
            role_arn: role_arn.into(),
            created_ms: now,
            updated_ms: now,
            revision: 1,
        };
        if self.store.create_state_machine(&sm).await? {
            return Ok(sm);
        }
        // AWS answers a create identical to what exists with the existing machine.
        let existing = self.state_machine(namespace, &sm.arn).await?;
        if existing.definition == sm.definition
            && existing.kind == sm.kind
            && existing.role_arn == sm.role_arn
        {
            return Ok(existing);
        }
        Err(SfnError::StateMachineAlreadyExists(format!(
            "State Machine Already Exists: '{}'",
            sm.arn
        )))
    }

    pub async fn state_machine(
        &self,
        namespace: &str,
        arn: &str,
    ) -> Result<StoredStateMachine, SfnError> {
        let name = self.parse_state_machine_arn(namespace, arn)?;
        self.store
            .get_state_machine(namespace, name)
            .await?
            .ok_or_else(|| {
                SfnError::StateMachineDoesNotExist(format!("State Machine Does Not Exist: '{arn}'"))
            })
    }

    pub async fn list_state_machines(
        &self,
        namespace: &str,
    ) -> Result<Vec<StoredStateMachine>, SfnError> {
        Ok(self.store.list_state_machines(namespace).await?)
    }

    pub async fn update_state_machine(
        &self,
        namespace: &str,
        arn: &str,
        definition: Option<&str>,
        role_arn: Option<&str>,
    ) -> Result<StoredStateMachine, SfnError> {
        if definition.is_none() && role_arn.is_none() {
            return Err(SfnError::Validation(
                "Either the definition or the roleArn must be specified".into(),
            ));
        }
        if let Some(d) = definition {
            Self::parse_definition(d)?;
        }
        let mut sm = self.state_machine(namespace, arn).await?;
        if let Some(d) = definition {
            sm.definition = d.into();
        }
        if let Some(r) = role_arn {
            sm.role_arn = r.into();
        }
        sm.revision += 1;
        sm.updated_ms = now_ms();
        if !self.store.update_state_machine(&sm).await? {
            return Err(SfnError::Conflict(format!(
                "State machine '{arn}' was updated concurrently: retry"
            )));
        }
        Ok(sm)
    }

    pub async fn delete_state_machine(&self, namespace: &str, arn: &str) -> Result<(), SfnError> {
        let name = self.parse_state_machine_arn(namespace, arn)?;
        self.store.delete_state_machine(namespace, name).await?;
        Ok(())
    }

    /// What runs one execution: its Task runner (which continues `trace`), clock and sink.
    fn runtime(
        &self,
        namespace: &str,
        sink: Arc<dyn ExecutionSink>,
        trace: Option<TraceContext>,
    ) -> Runtime {
        Runtime {
            runner: Arc::new(Tasks {
                workflows: self.me.clone(),
                namespace: namespace.into(),
                trace,
            }),
            clock: Arc::new(TokioClock::new()),
            sink,
        }
    }

    fn info(
        &self,
        sm: &StoredStateMachine,
        execution_arn: String,
        name: &str,
        start_ms: i64,
        input: Value,
    ) -> ExecutionInfo {
        ExecutionInfo {
            execution_arn,
            name: name.into(),
            state_machine_arn: sm.arn.clone(),
            state_machine_name: sm.name.clone(),
            role_arn: sm.role_arn.clone(),
            start_time: datetime(start_ms),
            input,
        }
    }

    fn parse_input(input: Option<&str>) -> Result<(String, Value), SfnError> {
        let text = input.unwrap_or("{}");
        if text.len() > MAX_INPUT {
            return Err(SfnError::Validation(format!(
                "1 validation error detected: Value at 'input' failed to satisfy constraint: Member must have length less than or equal to {MAX_INPUT}"
            )));
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            SfnError::InvalidExecutionInput(format!("Invalid State Machine Execution Input: '{e}'"))
        })?;
        Ok((text.to_string(), value))
    }

    /// `StartExecution`: a Standard execution committed before this returns, then run here;
    /// an Express one run in memory. Same name and input as a running execution: that one.
    /// `trace`: the caller's context, which the execution's states continue (kept with a
    /// Standard execution, so a resumed one continues it too).
    pub async fn start_execution(
        &self,
        namespace: &str,
        machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
        trace: Option<TraceContext>,
    ) -> Result<(String, i64), SfnError> {
        let sm = self.state_machine(namespace, machine_arn).await?;
        let name = execution_name(name)?;
        let (text, value) = Self::parse_input(input)?;
        let machine = Self::parse_definition(&sm.definition)?;
        let start_ms = now_ms();
        if sm.kind == EXPRESS {
            let arn = format!(
                "arn:aws:states:{}:{namespace}:express:{}:{name}:{}",
                self.region,
                sm.name,
                uuid::Uuid::new_v4()
            );
            let info = self.info(&sm, arn.clone(), &name, start_ms, value);
            let rt = self.runtime(namespace, Arc::new(MemorySink::default()), trace);
            let execution = Execution::start(machine, rt, info);
            tokio::spawn(async move {
                if let Err(e) = execution.run().await {
                    tracing::warn!("express execution failed to run: {e}");
                }
            });
            return Ok((arn, start_ms));
        }
        let arn = self.execution_arn(namespace, &sm.name, &name);
        let record = StoredExecution {
            arn: arn.clone(),
            namespace: namespace.into(),
            name: name.clone(),
            state_machine_arn: sm.arn.clone(),
            definition: sm.definition.clone(),
            status: "RUNNING".into(),
            input: text.clone(),
            output: None,
            error: None,
            cause: None,
            start_ms,
            stop_ms: None,
            state: None,
            transitions: 0,
            owner: Some(self.node.clone()),
            lease_until_ms: start_ms + LEASE.as_millis() as i64,
            trace: trace.clone(),
        };
        match self.store.start_execution(&record).await? {
            Started::New => {}
            Started::Existing(e) => {
                let same_input = serde_json::from_str::<Value>(&e.input).ok() == Some(value);
                if e.status == "RUNNING" && same_input && e.state_machine_arn == sm.arn {
                    return Ok((e.arn, e.start_ms));
                }
                return Err(SfnError::ExecutionAlreadyExists(format!(
                    "Execution Already Exists: '{arn}'"
                )));
            }
        }
        let info = self.info(&sm, arn.clone(), &name, start_ms, value);
        let rt = self.runtime(namespace, self.sink(&arn), trace);
        self.launch(arn.clone(), Execution::start(machine, rt, info));
        Ok((arn, start_ms))
    }

    fn sink(&self, arn: &str) -> Arc<dyn ExecutionSink> {
        Arc::new(StoreSink {
            store: self.store.clone(),
            arn: arn.into(),
            owner: self.node.as_str().into(),
            pending: Mutex::new(Vec::new()),
            committed: Arc::new(tokio::sync::Mutex::new(0)),
            requested: AtomicU64::new(0),
        })
    }

    fn launch(&self, arn: String, execution: Execution) {
        let execution = Arc::new(execution);
        self.running.lock().insert(arn.clone(), execution.clone());
        let me = self.arc();
        tokio::spawn(async move {
            let ended = execution.run().await;
            me.running.lock().remove(&arn);
            if let Err(e) = ended {
                // Left as committed. If this node still holds it (the store failed for a
                // moment), resume it from there; else its new owner runs it.
                tracing::warn!("execution {arn} stopped without ending: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                match me.store.get_execution(&arn).await {
                    Ok(Some(e))
                        if e.status == "RUNNING" && e.owner.as_deref() == Some(&me.node) =>
                    {
                        if let Err(err) = me.resume(&e).await {
                            tracing::error!("cannot resume execution {arn}: {err}");
                        }
                    }
                    Ok(_) => {}
                    Err(err) => tracing::warn!("execution {arn} is left to its lease: {err}"),
                }
            }
        });
    }

    /// `StartSyncExecution`: an Express execution run in memory and answered when done;
    /// `trace` as for [`Workflows::start_execution`].
    pub async fn start_sync_execution(
        &self,
        namespace: &str,
        machine_arn: &str,
        name: Option<&str>,
        input: Option<&str>,
        trace: Option<TraceContext>,
    ) -> Result<SyncResult, SfnError> {
        let sm = self.state_machine(namespace, machine_arn).await?;
        if sm.kind != EXPRESS {
            return Err(SfnError::StateMachineTypeNotSupported(
                "This operation is not supported by this type of state machine".into(),
            ));
        }
        let name = execution_name(name)?;
        let (text, value) = Self::parse_input(input)?;
        let machine = Self::parse_definition(&sm.definition)?;
        let start_ms = now_ms();
        let arn = format!(
            "arn:aws:states:{}:{namespace}:express:{}:{name}:{}",
            self.region,
            sm.name,
            uuid::Uuid::new_v4()
        );
        let info = self.info(&sm, arn.clone(), &name, start_ms, value);
        let rt = self.runtime(namespace, Arc::new(MemorySink::default()), trace);
        let execution = Execution::start(machine, rt, info);
        let outcome = execution
            .run()
            .await
            .map_err(|e| SfnError::Internal(e.to_string()))?;
        Ok(SyncResult {
            execution_arn: arn,
            state_machine_arn: sm.arn,
            name,
            start_ms,
            stop_ms: now_ms(),
            input: text,
            outcome,
            transitions: execution.state().transitions(),
        })
    }

    pub async fn execution(&self, namespace: &str, arn: &str) -> Result<StoredExecution, SfnError> {
        self.parse_execution_arn(namespace, arn)?;
        self.store.get_execution(arn).await?.ok_or_else(|| {
            SfnError::ExecutionDoesNotExist(format!("Execution Does Not Exist: '{arn}'"))
        })
    }

    /// A page of a state machine's executions, newest first.
    pub async fn list_executions(
        &self,
        namespace: &str,
        machine_arn: &str,
        status: Option<&str>,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<StoredExecution>, SfnError> {
        let sm = self.state_machine(namespace, machine_arn).await?;
        Ok(self
            .store
            .list_executions(&ExecutionQuery {
                state_machine_arn: sm.arn,
                status: status.map(str::to_string),
                after,
                limit,
            })
            .await?)
    }

    /// Per state machine of `namespace`: executions started since `since_ms` and their state
    /// transitions (metering).
    pub async fn transition_usage(
        &self,
        namespace: &str,
        since_ms: i64,
    ) -> Result<Vec<TransitionUsage>, SfnError> {
        Ok(self.store.transition_usage(namespace, since_ms).await?)
    }

    /// A page of an execution's history events (as stored, `HistoryEvent` JSON).
    pub async fn history(
        &self,
        namespace: &str,
        arn: &str,
        after_id: u64,
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, SfnError> {
        self.execution(namespace, arn).await?;
        self.store
            .execution_history(arn, after_id, reverse, limit)
            .await?
            .into_iter()
            .map(|(_, json)| {
                serde_json::from_str::<HistoryEvent>(&json)
                    .map_err(|e| SfnError::Internal(format!("a stored event is unreadable: {e}")))
            })
            .collect()
    }

    /// `StopExecution`: aborts a running execution and waits for its end to be committed.
    pub async fn stop_execution(
        &self,
        namespace: &str,
        arn: &str,
        error: Option<String>,
        cause: Option<String>,
    ) -> Result<i64, SfnError> {
        let e = self.execution(namespace, arn).await?;
        if e.status != "RUNNING" {
            return Ok(e.stop_ms.unwrap_or_else(now_ms));
        }
        let running = self.running.lock().get(arn).cloned();
        let Some(execution) = running else {
            // Held by another node (or by none, its node dead): ended in the store, which
            // fences the holder's next commit, so it stops there.
            let stop_ms = now_ms();
            let event = HistoryEvent {
                id: 0,
                previous_event_id: 0,
                timestamp: OffsetDateTime::now_utc(),
                event_type: EventType::ExecutionAborted,
                // As the engine records a stop (`Execution::stop`).
                details: serde_json::json!({
                    "error": error.clone().unwrap_or_default(),
                    "cause": cause.clone().unwrap_or_default(),
                }),
            };
            let abort = Abort {
                stop_ms,
                error,
                cause,
                event: serde_json::to_string(&event)
                    .map_err(|e| SfnError::Internal(e.to_string()))?,
            };
            if self.store.abort_execution(arn, &abort).await? {
                return Ok(stop_ms);
            }
            let e = self.execution(namespace, arn).await?;
            return Ok(e.stop_ms.unwrap_or(stop_ms));
        };
        execution.stop(error, cause);
        for _ in 0..100 {
            let e = self.execution(namespace, arn).await?;
            if e.status != "RUNNING" {
                return Ok(e.stop_ms.unwrap_or_else(now_ms));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(now_ms())
    }

    /// Keeps this node's leases and resumes the executions whose node died: on the embedded
    /// node (`clustered` false) every running execution at once (they were its previous
    /// run's), in a cluster those whose lease ran out.
    pub fn start_background(&self, clustered: bool) -> tokio::task::JoinHandle<()> {
        let me = self.arc();
        tokio::spawn(async move {
            if !clustered {
                if let Err(e) = me.store.release_execution_leases(now_ms(), &[]).await {
                    tracing::error!("releasing the previous run's executions: {e}");
                }
            }
            loop {
                // Claims first: on the embedded node the previous run had this node's id, and
                // extending "this node's" leases would keep its executions from being resumed.
                let until = now_ms() + LEASE.as_millis() as i64;
                match me
                    .store
                    .claim_executions(now_ms(), &me.node, until, 64)
                    .await
                {
                    Ok(claimed) => {
                        for e in claimed {
                            if let Err(err) = me.resume(&e).await {
                                tracing::error!("cannot resume execution {}: {err}", e.arn);
                            }
                        }
                    }
                    Err(e) => tracing::warn!("claiming executions to resume: {e}"),
                }
                if let Err(e) = me.store.extend_execution_leases(&me.node, until).await {
                    tracing::warn!("extending execution leases: {e}");
                }
                tokio::time::sleep(LEASE / 4).await;
            }
        })
    }

    async fn resume(&self, e: &StoredExecution) -> Result<(), SfnError> {
        if self.running.lock().contains_key(&e.arn) {
            return Ok(());
        }
        let machine = Self::parse_definition(&e.definition)?;
        let rt = self.runtime(&e.namespace, self.sink(&e.arn), e.trace.clone());
        let execution = match &e.state {
            Some(state) => {
                let value: Value = serde_json::from_str(state)
                    .map_err(|err| SfnError::Internal(err.to_string()))?;
                let state = ExecutionState::from_json(value)
                    .map_err(|err| SfnError::Internal(err.to_string()))?;
                Execution::resume(machine, rt, state)
            }
            None => {
                let machine_name = self
                    .parse_execution_arn(&e.namespace, &e.arn)?
                    .machine
                    .to_string();
                let sm = StoredStateMachine {
                    namespace: e.namespace.clone(),
                    name: machine_name,
                    arn: e.state_machine_arn.clone(),
                    definition: e.definition.clone(),
                    kind: STANDARD.into(),
                    role_arn: String::new(),
                    created_ms: 0,
                    updated_ms: 0,
                    revision: 0,
                };
                let input = serde_json::from_str(&e.input).unwrap_or(Value::Null);
                let info = self.info(&sm, e.arn.clone(), &e.name, e.start_ms, input);
                Execution::start(machine, rt, info)
            }
        };
        tracing::info!("resuming execution {}", e.arn);
        self.launch(e.arn.clone(), execution);
        Ok(())
    }
}

/// The sink of a Standard execution: events wait in memory for the next checkpoint, which
/// commits them with the state in one transaction. Checkpoints of concurrent branches are
/// grouped: one whose state a later commit already covered returns at once.
///
/// A commit, once its events are taken, runs in a task of its own: the execution's future
/// may be dropped mid-checkpoint (a `StopExecution` or the execution's timeout wins the
/// race with a running state), and a commit cut off there would lose the events it took
/// and leave its transaction to be rolled back under the next commit's feet.
struct StoreSink {
    store: Arc<dyn WorkflowStore>,
    arn: Arc<str>,
    owner: Arc<str>,
    pending: Mutex<Vec<HistoryEvent>>,
    /// The last request number committed.
    committed: Arc<tokio::sync::Mutex<u64>>,
    requested: AtomicU64,
}

#[async_trait::async_trait]
impl ExecutionSink for StoreSink {
    fn event(&self, event: HistoryEvent) {
        self.pending.lock().push(event);
    }

    async fn checkpoint(&self, state: &ExecutionState) -> Result<(), String> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut committed = self.committed.clone().lock_owned().await;
        if *committed >= mine {
            return Ok(());
        }
        // From here to the commit's start nothing else of the execution runs (it is one
        // future): the state and the events taken belong together.
        let covers = self.requested.load(Ordering::SeqCst);
        let events: Vec<(u64, String)> = std::mem::take(&mut *self.pending.lock())
            .into_iter()
            .map(|e| (e.id, serde_json::to_string(&e).unwrap_or_default()))
            .collect();
        let outcome = state.outcome.lock().clone();
        let (status, output, error) = match &outcome {
            None => ("RUNNING", None, None),
            Some(o) => (
                o.status(),
                o.output().map(Value::to_string),
                o.error().cloned(),
            ),
        };
        let checkpoint = Checkpoint {
            status: status.into(),
            state: state.to_json().to_string(),
            transitions: state.transitions(),
            output,
            error: error.as_ref().map(|e| e.error.clone()),
            cause: error.map(|e| e.cause),
            stop_ms: outcome.is_some().then(now_ms),
            events,
            lease_until_ms: now_ms() + LEASE.as_millis() as i64,
        };
        let (store, arn, owner) = (self.store.clone(), self.arn.clone(), self.owner.clone());
        let commit = tokio::spawn(async move {
            let held = store.commit_execution(&arn, &owner, &checkpoint).await;
            match held {
                Ok(true) => {
                    *committed = covers;
                    Ok(())
                }
                Ok(false) => Err(format!(
                    "this node ({owner}) no longer holds the execution's lease"
                )),
                Err(e) => Err(e.to_string()),
            }
        });
        commit
            .await
            .map_err(|e| format!("the commit's task failed: {e}"))?
    }
}

/// An execution's name: the one asked for (checked), else a new UUID, as AWS names them.
fn execution_name(name: Option<&str>) -> Result<String, SfnError> {
    match name {
        Some(n) => {
            check_name(n)?;
            Ok(n.to_string())
        }
        None => Ok(uuid::Uuid::new_v4().to_string()),
    }
}
