//! The interpreter: runs a [`StateMachine`] against an input through three seams —
//! a [`TaskRunner`] (what a Task's `Resource` does), a [`Clock`] (Wait, retry back-off,
//! timeouts) and an [`ExecutionSink`] (history events and durable checkpoints).
//!
//! An [`Execution`] owns a serializable [`ExecutionState`]: the frame of the running branch
//! (current state, its input, the variables, retry counters, the step within the state) and,
//! inside a running Parallel or Map, one frame per branch or iteration with the results of
//! those already done. A durable (Standard) execution commits it at each
//! [`ExecutionSink::checkpoint`] and, after a crash, continues with [`Execution::resume`] from
//! the last committed state; an Express execution runs the same code with a sink that keeps
//! nothing. Parallel branches and Map iterations run concurrently inside the execution's future
//! (no tasks are spawned), Map honouring `MaxConcurrency`.

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, Either};
use futures::{FutureExt, StreamExt};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::choice;
use crate::clock::{format_timestamp, parse_timestamp, Clock};
use crate::definition::{
    Branch, Kind, MapState, QueryLanguage, ResultPath, Selector, State, StateMachine, Task, Wait,
};
use crate::error::{names, StatesError};
use crate::events::{EventType, ExecutionSink, HistoryEvent};
use crate::path::{Scope, Template};

/// The largest state output, in bytes of JSON (AWS's 256 KiB payload quota); a larger one fails
/// the execution with `States.DataLimitExceeded`.
pub const PAYLOAD_LIMIT: usize = 256 * 1024;

/// What a Task asks its runner to do.
#[derive(Debug, Clone)]
pub struct TaskRequest {
    /// The Task's `Resource` ARN.
    pub resource: String,
    /// The effective input (after `InputPath` and `Parameters`, or `Arguments`).
    pub input: Value,
    /// `TimeoutSeconds`: the engine fails the attempt with `States.Timeout` when it is over.
    pub timeout: Option<Duration>,
    /// `HeartbeatSeconds`: a runner of callbacks fails with `States.HeartbeatTimeout` when no
    /// heartbeat came in time.
    pub heartbeat: Option<Duration>,
    /// The task token of this attempt (`$$.Task.Token`), for `.waitForTaskToken`.
    pub task_token: String,
    /// `Credentials`, as written.
    pub credentials: Option<Value>,
    /// The execution's ARN.
    pub execution_arn: String,
    /// The state's name.
    pub state_name: String,
    /// 0 for the first attempt, then 1, 2… for retries.
    pub retry_count: u32,
}

/// Runs Task states: a Lambda invocation, a queue send, a nested execution, a callback…
/// An error is `{error, cause}` (a function's error type, `States.TaskFailed`,
/// `States.HeartbeatTimeout`, …) and goes through the state's Retry and Catch.
#[async_trait::async_trait]
pub trait TaskRunner: Send + Sync {
    /// Run one attempt.
    async fn run(&self, request: TaskRequest) -> Result<Value, StatesError>;

    /// A new task token for an attempt (`$$.Task.Token`): unguessable, at most 1024
    /// characters. A runner that must find the waiting Task again from the token alone (on
    /// another machine, say) puts what it needs into it.
    fn task_token(&self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

/// Who started an execution, and how it is named (the context object's `Execution` and
/// `StateMachine`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// The execution's ARN.
    pub execution_arn: String,
    /// The execution's name.
    pub name: String,
    /// The state machine's ARN.
    pub state_machine_arn: String,
    /// The state machine's name.
    pub state_machine_name: String,
    /// The role ARN.
    pub role_arn: String,
    /// When the execution started.
    #[serde(with = "time::serde::rfc3339")]
    pub start_time: OffsetDateTime,
    /// The execution's input.
    pub input: Value,
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// With its output.
    Succeeded(Value),
    /// With the error that ended it.
    Failed(StatesError),
    /// Its `TimeoutSeconds` ran out.
    TimedOut(StatesError),
    /// It was stopped.
    Aborted(StatesError),
}

impl Outcome {
    /// The output of a successful execution.
    pub fn output(&self) -> Option<&Value> {
        match self {
            Outcome::Succeeded(v) => Some(v),
            _ => None,
        }
    }

    /// The error of an execution that did not succeed.
    pub fn error(&self) -> Option<&StatesError> {
        match self {
            Outcome::Succeeded(_) => None,
            Outcome::Failed(e) | Outcome::TimedOut(e) | Outcome::Aborted(e) => Some(e),
        }
    }

    /// The execution status as the API names it.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Succeeded(_) => "SUCCEEDED",
            Outcome::Failed(_) => "FAILED",
            Outcome::TimedOut(_) => "TIMED_OUT",
            Outcome::Aborted(_) => "ABORTED",
        }
    }
}

/// Why [`Execution::run`] stopped without an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The sink could not commit a checkpoint: the execution stopped where it was and can be
    /// resumed from its last committed state.
    #[error("the execution's checkpoint could not be committed: {0}")]
    Checkpoint(String),
    /// The state saved for a resume does not fit the definition.
    #[error("the saved execution state does not match the definition: {0}")]
    Mismatch(String),
}

/// Where a frame is within its current state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Step {
    /// Not entered yet (the entered event is still to be recorded).
    Enter,
    /// Entered: its work runs (again, after a resume) from the start.
    Run,
    /// Waiting until then for the next attempt.
    RetryAt(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    /// A Wait state waiting until then.
    WaitUntil(#[serde(with = "time::serde::rfc3339")] OffsetDateTime),
    /// A Parallel or Map state with its branches or iterations.
    Branches(Vec<Slot>),
}

/// One branch of a Parallel or iteration of a Map.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Slot {
    /// Not started: its input.
    Pending(Value),
    /// Running.
    Running(Arc<Mutex<Frame>>),
    /// Done, with its output.
    Done(Value),
    /// Failed (Map with a tolerated failure threshold).
    Failed(StatesError),
}

/// The position of one branch of an execution.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Frame {
    /// The current state's name.
    pub state: String,
    /// The current state's raw input.
    pub input: Value,
    /// The variables visible here.
    pub variables: Map<String, Value>,
    /// When the current state was entered.
    #[serde(with = "time::serde::rfc3339")]
    pub entered_at: OffsetDateTime,
    /// Attempts used per Retry rule of the current state.
    pub retries: Vec<u32>,
    /// Where the current state is.
    pub step: Step,
    /// The last event recorded in this branch.
    pub last_event: u64,
}

impl Frame {
    fn new(
        state: &str,
        input: Value,
        variables: Map<String, Value>,
        now: OffsetDateTime,
        last_event: u64,
    ) -> Self {
        Frame {
            state: state.to_string(),
            input,
            variables,
            entered_at: now,
            retries: Vec::new(),
            step: Step::Enter,
            last_event,
        }
    }
}

/// Counters of an execution.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Counters {
    /// The id the next event gets.
    pub next_event_id: u64,
    /// State transitions so far (what Standard executions are billed by): one per state
    /// entered, in every branch and iteration, and one per retry.
    pub transitions: u64,
}

/// Everything needed to continue an execution: what a durable execution commits.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExecutionState {
    /// Who and what.
    pub info: ExecutionInfo,
    /// The top-level frame (and, inside it, those of running branches and iterations).
    pub root: Arc<Mutex<Frame>>,
    /// Event ids and transitions.
    pub counters: Mutex<Counters>,
    /// Set once the execution has ended.
    pub outcome: Mutex<Option<Outcome>>,
}

impl ExecutionState {
    /// The state as JSON (what a store keeps).
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A state from its JSON.
    pub fn from_json(value: Value) -> Result<ExecutionState, EngineError> {
        serde_json::from_value(value).map_err(|e| EngineError::Mismatch(e.to_string()))
    }

    /// State transitions so far.
    pub fn transitions(&self) -> u64 {
        self.counters.lock().transitions
    }
}

/// The seams an execution runs through.
#[derive(Clone)]
pub struct Runtime {
    /// Runs Tasks.
    pub runner: Arc<dyn TaskRunner>,
    /// Tells the time and sleeps.
    pub clock: Arc<dyn Clock>,
    /// Receives events and checkpoints.
    pub sink: Arc<dyn ExecutionSink>,
}

/// A running (or resumable) execution of a state machine.
pub struct Execution {
    machine: Arc<StateMachine>,
    rt: Runtime,
    state: ExecutionState,
    stop: Mutex<Option<StatesError>>,
    stopped: tokio::sync::Notify,
}

/// A state's run ended otherwise than by a transition.
enum Halt {
    Error(StatesError),
    Checkpoint(String),
}

impl From<StatesError> for Halt {
    fn from(e: StatesError) -> Self {
        Halt::Error(e)
    }
}

type Res<T> = Result<T, Halt>;

/// How a state ended.
enum Transition {
    Next(usize, Value),
    End(Value),
}

impl Execution {
    /// A new execution (nothing is recorded until [`Execution::run`]).
    pub fn start(machine: Arc<StateMachine>, rt: Runtime, info: ExecutionInfo) -> Execution {
        let start = &machine.root.states[machine.root.start];
        let root = Frame::new(
            &start.name,
            info.input.clone(),
            Map::new(),
            info.start_time,
            0,
        );
        let state = ExecutionState {
            info,
            root: Arc::new(Mutex::new(root)),
            counters: Mutex::new(Counters {
                next_event_id: 1,
                transitions: 0,
            }),
            outcome: Mutex::new(None),
        };
        Self::resume(machine, rt, state)
    }

    /// Continue an execution from a committed state.
    pub fn resume(machine: Arc<StateMachine>, rt: Runtime, state: ExecutionState) -> Execution {
        Execution {
            machine,
            rt,
            state,
            stop: Mutex::new(None),
            stopped: tokio::sync::Notify::new(),
        }
    }

    /// The execution's state (what a checkpoint commits).
    pub fn state(&self) -> &ExecutionState {
        &self.state
    }

    /// Ask the running execution to stop (`StopExecution`): [`Execution::run`] returns
    /// [`Outcome::Aborted`].
    pub fn stop(&self, error: Option<String>, cause: Option<String>) {
        *self.stop.lock() = Some(StatesError::new(
            error.unwrap_or_default(),
            cause.unwrap_or_default(),
        ));
        self.stopped.notify_one();
    }

    /// Run to the end (or continue a resumed execution to the end).
    pub async fn run(&self) -> Result<Outcome, EngineError> {
        if let Some(done) = self.state.outcome.lock().clone() {
            return Ok(done);
        }
        let info = &self.state.info;
        if self.state.counters.lock().next_event_id == 1 {
            self.emit(
                &self.state.root,
                EventType::ExecutionStarted,
                json!({"input": info.input.to_string(), "inputDetails": {"truncated": false}, "roleArn": info.role_arn}),
            );
            self.checkpoint().await.map_err(EngineError::Checkpoint)?;
        }
        let main = self.run_branch(&self.machine.root, &self.state.root);
        let timeout = async {
            match self.machine.timeout_seconds {
                Some(t) => {
                    self.rt
                        .clock
                        .sleep_until(info.start_time + Duration::from_secs(t))
                        .await
                }
                None => futures::future::pending().await,
            }
        };
        let stopped = self.stopped.notified();
        let ended = futures::future::select(
            main,
            futures::future::select(Box::pin(timeout), Box::pin(stopped)),
        )
        .await;
        let outcome = match ended {
            Either::Left((Ok(output), _)) => Outcome::Succeeded(output),
            Either::Left((Err(Halt::Error(e)), _)) => Outcome::Failed(e),
            Either::Left((Err(Halt::Checkpoint(e)), _)) => return Err(EngineError::Checkpoint(e)),
            Either::Right((Either::Left(_), _)) => Outcome::TimedOut(StatesError::new(
                names::TIMEOUT,
                "The execution has timed out",
            )),
            Either::Right((Either::Right(_), _)) => Outcome::Aborted(
                self.stop
                    .lock()
                    .clone()
                    .unwrap_or_else(|| StatesError::new("", "")),
            ),
        };
        let (ty, details) = match &outcome {
            Outcome::Succeeded(v) => (
                EventType::ExecutionSucceeded,
                json!({"output": v.to_string(), "outputDetails": {"truncated": false}}),
            ),
            Outcome::Failed(e) => (EventType::ExecutionFailed, error_details(e)),
            Outcome::TimedOut(e) => (EventType::ExecutionTimedOut, error_details(e)),
            Outcome::Aborted(e) => (EventType::ExecutionAborted, error_details(e)),
        };
        self.emit(&self.state.root, ty, details);
        *self.state.outcome.lock() = Some(outcome.clone());
        self.checkpoint().await.map_err(EngineError::Checkpoint)?;
        Ok(outcome)
    }

    fn emit(&self, frame: &Mutex<Frame>, event_type: EventType, details: Value) -> u64 {
        let id = {
            let mut c = self.state.counters.lock();
            let id = c.next_event_id;
            c.next_event_id += 1;
            id
        };
        let previous = std::mem::replace(&mut frame.lock().last_event, id);
        self.rt.sink.event(HistoryEvent {
            id,
            previous_event_id: previous,
            timestamp: self.rt.clock.now(),
            event_type,
            details,
        });
        id
    }

    async fn checkpoint(&self) -> Result<(), String> {
        self.rt.sink.checkpoint(&self.state).await
    }

    async fn commit(&self) -> Res<()> {
        self.checkpoint().await.map_err(Halt::Checkpoint)
    }

    fn run_branch<'a>(
        &'a self,
        branch: &'a Branch,
        frame: &'a Arc<Mutex<Frame>>,
    ) -> BoxFuture<'a, Res<Value>> {
        async move {
            loop {
                let (name, entering) = {
                    let f = frame.lock();
                    (f.state.clone(), matches!(f.step, Step::Enter))
                };
                let index = branch
                    .index_of(&name)
                    .ok_or_else(|| Halt::Error(StatesError::runtime(format!("the saved state '{name}' is not in the definition"))))?;
                let state = &branch.states[index];
                let type_name = state.kind.type_name();
                if entering {
                    self.state.counters.lock().transitions += 1;
                    let input = {
                        let mut f = frame.lock();
                        f.step = Step::Run;
                        f.entered_at = self.rt.clock.now();
                        f.input.to_string()
                    };
                    self.emit(
                        frame,
                        EventType::entered(type_name),
                        json!({"name": state.name, "input": input, "inputDetails": {"truncated": false}}),
                    );
                }
                let (transition, assigned) = self.run_state(state, frame).await?;
                let output = match &transition {
                    Transition::Next(_, v) | Transition::End(v) => v,
                };
                let text = output.to_string();
                if text.len() > PAYLOAD_LIMIT {
                    return Err(Halt::Error(StatesError::new(
                        names::DATA_LIMIT_EXCEEDED,
                        format!(
                            "The state/task '{}' returned a result with a size exceeding the maximum number of bytes service limit.",
                            state.name
                        ),
                    )));
                }
                if let Some(exited) = EventType::exited(type_name) {
                    let mut details = json!({"name": state.name, "output": text, "outputDetails": {"truncated": false}});
                    if let Some(vars) = &assigned {
                        details["assignedVariables"] = vars
                            .iter()
                            .map(|(k, v)| (k.clone(), Value::String(v.to_string())))
                            .collect::<Map<_, _>>()
                            .into();
                    }
                    self.emit(frame, exited, details);
                }
                match transition {
                    Transition::End(output) => return Ok(output),
                    Transition::Next(next, output) => {
                        {
                            let mut f = frame.lock();
                            f.state = branch.states[next].name.clone();
                            f.input = output;
                            f.retries.clear();
                            f.step = Step::Enter;
                        }
                        self.commit().await?;
                    }
                }
            }
        }
        .boxed()
    }

    /// The context object (`$$` / `$states.context`) of the frame's current state (null when
    /// the state never reads it).
    fn context(&self, state: &State, frame: &Frame, token: Option<&str>) -> Value {
        if !state.needs_context {
            return Value::Null;
        }
        let info = &self.state.info;
        let mut ctx = json!({
            "Execution": {
                "Id": info.execution_arn,
                "Input": info.input,
                "Name": info.name,
                "RoleArn": info.role_arn,
                "StartTime": format_timestamp(info.start_time),
                "RedriveCount": 0,
            },
            "State": {
                "EnteredTime": format_timestamp(frame.entered_at),
                "Name": frame.state,
                "RetryCount": frame.retries.iter().sum::<u32>(),
            },
            "StateMachine": {"Id": info.state_machine_arn, "Name": info.state_machine_name},
        });
        if let Some(token) = token {
            ctx["Task"] = json!({"Token": token});
        }
        ctx
    }

    /// Run one state: its result processing, Retry and Catch; the variables it assigned.
    async fn run_state(
        &self,
        state: &State,
        frame: &Arc<Mutex<Frame>>,
    ) -> Res<(Transition, Option<Map<String, Value>>)> {
        loop {
            let (raw, vars, step) = {
                let f = frame.lock();
                (f.input.clone(), f.variables.clone(), f.step.clone())
            };
            if let Step::RetryAt(until) = step {
                self.rt.clock.sleep_until(until).await;
                frame.lock().step = Step::Run;
            }
            let attempt = self.attempt(state, frame, &raw, &vars).await;
            let error = match attempt {
                Ok(done) => return Ok(done),
                Err(Halt::Checkpoint(e)) => return Err(Halt::Checkpoint(e)),
                Err(Halt::Error(e)) => e,
            };
            if let Some(delay) = self.retry_delay(state, frame, &error) {
                let until = self.rt.clock.now() + delay;
                frame.lock().step = Step::RetryAt(until);
                self.state.counters.lock().transitions += 1;
                self.commit().await?;
                continue;
            }
            let Some(catcher) = state.catch.iter().find(|c| error.matches(&c.error_equals)) else {
                return Err(Halt::Error(error));
            };
            let error_output = error.to_output();
            let ctx = self.context(state, &frame.lock(), None);
            let (output, assigned) = match state.language {
                QueryLanguage::JsonPath => {
                    let scope = Scope::jsonpath(&error_output, &ctx, &vars);
                    let assigned = eval_assign(catcher.assign.as_ref(), &scope)?;
                    (
                        apply_result_path(&catcher.result_path, &raw, error_output.clone())?,
                        assigned,
                    )
                }
                QueryLanguage::Jsonata => {
                    let states = json!({"input": raw, "context": ctx, "errorOutput": error_output});
                    let scope = Scope {
                        states: Some(&states),
                        ..Scope::jsonpath(&raw, &ctx, &vars)
                    };
                    let assigned = eval_assign(catcher.assign.as_ref(), &scope)?;
                    let output = match &catcher.output {
                        Some(t) => t.eval(&scope, "Output")?,
                        None => error_output.clone(),
                    };
                    (output, assigned)
                }
            };
            apply_assigned(frame, &assigned);
            return Ok((Transition::Next(catcher.next, output), assigned));
        }
    }

    fn retry_delay(
        &self,
        state: &State,
        frame: &Mutex<Frame>,
        error: &StatesError,
    ) -> Option<Duration> {
        let (i, retrier) = state
            .retry
            .iter()
            .enumerate()
            .find(|(_, r)| error.matches(&r.error_equals))?;
        let mut f = frame.lock();
        if f.retries.len() < state.retry.len() {
            f.retries.resize(state.retry.len(), 0);
        }
        let used = f.retries[i];
        if used >= retrier.max_attempts {
            return None;
        }
        f.retries[i] += 1;
        let mut secs = retrier.interval_seconds * retrier.backoff_rate.powi(used as i32);
        if let Some(max) = retrier.max_delay_seconds {
            secs = secs.min(max);
        }
        if retrier.full_jitter {
            secs *= rand::random::<f64>();
        }
        Some(Duration::from_secs_f64(secs.clamp(0.0, 1.0e9)))
    }

    /// One attempt at a state: `Ok` with its transition, or the error Retry and Catch see.
    async fn attempt(
        &self,
        state: &State,
        frame: &Arc<Mutex<Frame>>,
        raw: &Value,
        vars: &Map<String, Value>,
    ) -> Res<(Transition, Option<Map<String, Value>>)> {
        let token = matches!(state.kind, Kind::Task(_)).then(|| self.rt.runner.task_token());
        let ctx = self.context(state, &frame.lock(), token.as_deref());
        let jsonata = state.language == QueryLanguage::Jsonata;
        let states_in = jsonata.then(|| json!({"input": raw, "context": ctx}));
        let in_scope = Scope {
            states: states_in.as_ref(),
            ..Scope::jsonpath(raw, &ctx, vars)
        };
        // InputPath, then Parameters / Arguments
        let effective = match (&state.input_path, jsonata) {
            (_, true) | (Selector::Whole, _) => raw.clone(),
            (Selector::Empty, _) => json!({}),
            (Selector::Path(q), _) => q.select(&in_scope).map_err(|_| {
                StatesError::runtime(format!(
                    "Invalid path '{}' : No results for path: {}",
                    q.source(),
                    q.source()
                ))
            })?,
        };
        let eff_scope = Scope {
            input: &effective,
            ..in_scope
        };
        let field = if jsonata { "Arguments" } else { "Parameters" };
        let task_input = match &state.parameters {
            Some(t) => t.eval(&eff_scope, field)?,
            None => effective.clone(),
        };
        let next = state.next;
        let result = match &state.kind {
            Kind::Pass { result } => result.clone().unwrap_or(task_input),
            Kind::Succeed => task_input,
            Kind::Wait(wait) => {
                self.wait(wait, frame, &eff_scope).await?;
                task_input
            }
            Kind::Fail(fail) => {
                let text = |t: &Option<Template>, field: &str| -> Result<String, StatesError> {
                    Ok(match t {
                        None => String::new(),
                        Some(t) => match t.eval(&eff_scope, field)? {
                            Value::String(s) => s,
                            other => other.to_string(),
                        },
                    })
                };
                let error = text(&fail.error, "Error")?;
                let cause = text(&fail.cause, "Cause")?;
                return Err(Halt::Error(StatesError::new(error, cause)));
            }
            Kind::Choice(choice) => {
                for rule in &choice.rules {
                    if choice::test(&rule.condition, &eff_scope)? {
                        let (output, assigned) = self.finish_choice(
                            state,
                            raw,
                            &effective,
                            rule.output.as_ref(),
                            rule.assign.as_ref().or(state.assign.as_ref()),
                            &eff_scope,
                        )?;
                        apply_assigned(frame, &assigned);
                        return Ok((Transition::Next(rule.next, output), assigned));
                    }
                }
                let Some(default) = choice.default else {
                    return Err(Halt::Error(StatesError::new(
                        names::NO_CHOICE_MATCHED,
                        format!("No Matches! for state '{}'", state.name),
                    )));
                };
                let (output, assigned) = self.finish_choice(
                    state,
                    raw,
                    &effective,
                    None,
                    state.assign.as_ref(),
                    &eff_scope,
                )?;
                apply_assigned(frame, &assigned);
                return Ok((Transition::Next(default, output), assigned));
            }
            Kind::Task(task) => {
                self.task(
                    task,
                    state,
                    frame,
                    task_input,
                    &eff_scope,
                    token.unwrap_or_default(),
                )
                .await?
            }
            Kind::Parallel(p) => {
                let inputs = p.branches.iter().map(|_| task_input.clone()).collect();
                self.branches(state, frame, |i| &p.branches[i], inputs, None)
                    .await?
            }
            Kind::Map(m) => {
                self.map(state, m, frame, &effective, vars, &ctx, raw)
                    .await?
            }
        };
        let (output, assigned) = self.finish(state, raw, &effective, result, &ctx, vars)?;
        apply_assigned(frame, &assigned);
        Ok((
            match next {
                Some(n) => Transition::Next(n, output),
                None => Transition::End(output),
            },
            assigned,
        ))
    }

    /// ResultSelector, Assign, ResultPath, OutputPath (JSONPath) or Assign, Output (JSONata).
    fn finish(
        &self,
        state: &State,
        raw: &Value,
        effective: &Value,
        result: Value,
        ctx: &Value,
        vars: &Map<String, Value>,
    ) -> Result<(Value, Option<Map<String, Value>>), StatesError> {
        match state.language {
            QueryLanguage::JsonPath => {
                let result = match &state.result_selector {
                    Some(t) => t.eval(&Scope::jsonpath(&result, ctx, vars), "ResultSelector")?,
                    None => result,
                };
                let assigned =
                    eval_assign(state.assign.as_ref(), &Scope::jsonpath(&result, ctx, vars))?;
                let merged = match state.kind {
                    Kind::Wait(_) | Kind::Succeed | Kind::Choice(_) => effective.clone(),
                    _ => apply_result_path(&state.result_path, raw, result)?,
                };
                Ok((select_output(&state.output_path, merged)?, assigned))
            }
            QueryLanguage::Jsonata => {
                let passes_input = matches!(
                    state.kind,
                    Kind::Pass { .. } | Kind::Wait(_) | Kind::Succeed | Kind::Choice(_)
                );
                let states = if passes_input {
                    json!({"input": raw, "context": ctx})
                } else {
                    json!({"input": raw, "context": ctx, "result": result})
                };
                let scope = Scope {
                    states: Some(&states),
                    ..Scope::jsonpath(raw, ctx, vars)
                };
                let assigned = eval_assign(state.assign.as_ref(), &scope)?;
                let output = match &state.output {
                    Some(t) => t.eval(&scope, "Output")?,
                    None if passes_input => raw.clone(),
                    None => result,
                };
                Ok((output, assigned))
            }
        }
    }

    fn finish_choice(
        &self,
        state: &State,
        raw: &Value,
        effective: &Value,
        output: Option<&Template>,
        assign: Option<&Template>,
        scope: &Scope<'_>,
    ) -> Result<(Value, Option<Map<String, Value>>), StatesError> {
        let assigned = eval_assign(assign, scope)?;
        let out = match state.language {
            QueryLanguage::JsonPath => select_output(&state.output_path, effective.clone())?,
            QueryLanguage::Jsonata => match output.or(state.output.as_ref()) {
                Some(t) => t.eval(scope, "Output")?,
                None => raw.clone(),
            },
        };
        Ok((out, assigned))
    }

    async fn wait(&self, wait: &Wait, frame: &Mutex<Frame>, scope: &Scope<'_>) -> Res<()> {
        let until = match frame.lock().step {
            Step::WaitUntil(t) => Some(t),
            _ => None,
        };
        let until = match until {
            Some(t) => t,
            None => {
                let t = match wait {
                    Wait::Seconds(t) => {
                        let v = t.eval(scope, "Seconds")?;
                        let secs = v.as_u64().ok_or_else(|| {
                            StatesError::runtime(format!("The value for the field 'Seconds' must be a non-negative integer, got {v}"))
                        })?;
                        self.rt.clock.now() + Duration::from_secs(secs)
                    }
                    Wait::Timestamp(t) => {
                        let v = t.eval(scope, "Timestamp")?;
                        v.as_str().and_then(parse_timestamp).ok_or_else(|| {
                            StatesError::runtime(format!("The value for the field 'Timestamp' must be a valid RFC 3339 timestamp, got {v}"))
                        })?
                    }
                };
                frame.lock().step = Step::WaitUntil(t);
                self.commit().await?;
                t
            }
        };
        self.rt.clock.sleep_until(until).await;
        Ok(())
    }

    async fn task(
        &self,
        task: &Task,
        state: &State,
        frame: &Mutex<Frame>,
        input: Value,
        scope: &Scope<'_>,
        token: String,
    ) -> Res<Value> {
        let seconds = |t: &Option<Template>, field: &str| -> Result<Option<u64>, StatesError> {
            match t {
                None => Ok(None),
                Some(t) => {
                    let v = t.eval(scope, field)?;
                    match v.as_u64() {
                        Some(n) if n > 0 => Ok(Some(n)),
                        _ => Err(StatesError::runtime(format!(
                            "The value for the field '{field}' must be a positive integer, got {v}"
                        ))),
                    }
                }
            }
        };
        let timeout = seconds(&task.timeout_seconds, "TimeoutSeconds")?;
        let heartbeat = seconds(&task.heartbeat_seconds, "HeartbeatSeconds")?;
        let lambda = task.resource.starts_with("arn:aws:lambda:");
        let (resource_type, resource) = resource_parts(&task.resource);
        let region = task.resource.split(':').nth(3).unwrap_or("").to_string();
        if lambda {
            let mut d = json!({"resource": task.resource, "input": input.to_string(), "inputDetails": {"truncated": false}});
            if let Some(t) = timeout {
                d["timeoutInSeconds"] = t.into();
            }
            self.emit(frame, EventType::LambdaFunctionScheduled, d);
            self.emit(frame, EventType::LambdaFunctionStarted, Value::Null);
        } else {
            let mut d = json!({"resourceType": resource_type, "resource": resource, "region": region, "parameters": input.to_string()});
            if let Some(t) = timeout {
                d["timeoutInSeconds"] = t.into();
            }
            if let Some(h) = heartbeat {
                d["heartbeatInSeconds"] = h.into();
            }
            self.emit(frame, EventType::TaskScheduled, d);
            self.emit(
                frame,
                EventType::TaskStarted,
                json!({"resourceType": resource_type, "resource": resource}),
            );
        }
        let retry_count = frame.lock().retries.iter().sum();
        let request = TaskRequest {
            resource: task.resource.clone(),
            input,
            timeout: timeout.map(Duration::from_secs),
            heartbeat: heartbeat.map(Duration::from_secs),
            task_token: token,
            credentials: task.credentials.clone(),
            execution_arn: self.state.info.execution_arn.clone(),
            state_name: state.name.clone(),
            retry_count,
        };
        let run = self.rt.runner.run(request);
        let result = match timeout {
            None => run.await,
            Some(t) => {
                let deadline = self.rt.clock.now() + Duration::from_secs(t);
                match futures::future::select(run, self.rt.clock.sleep_until(deadline)).await {
                    Either::Left((r, _)) => r,
                    Either::Right(_) => Err(StatesError::new(names::TIMEOUT, "")),
                }
            }
        };
        let tagged = |mut d: Value| {
            if !lambda {
                d["resourceType"] = resource_type.into();
                d["resource"] = resource.into();
            }
            d
        };
        match &result {
            Ok(v) => {
                let ty = if lambda {
                    EventType::LambdaFunctionSucceeded
                } else {
                    EventType::TaskSucceeded
                };
                self.emit(
                    frame,
                    ty,
                    tagged(json!({"output": v.to_string(), "outputDetails": {"truncated": false}})),
                );
            }
            Err(e) => {
                let timed_out = e.error == names::TIMEOUT || e.error == names::HEARTBEAT_TIMEOUT;
                let ty = match (lambda, timed_out) {
                    (true, true) => EventType::LambdaFunctionTimedOut,
                    (true, false) => EventType::LambdaFunctionFailed,
                    (false, true) => EventType::TaskTimedOut,
                    (false, false) => EventType::TaskFailed,
                };
                self.emit(frame, ty, tagged(error_details(e)));
            }
        }
        Ok(result?)
    }

    #[allow(clippy::too_many_arguments)]
    async fn map(
        &self,
        state: &State,
        m: &MapState,
        frame: &Arc<Mutex<Frame>>,
        effective: &Value,
        vars: &Map<String, Value>,
        ctx: &Value,
        raw: &Value,
    ) -> Res<Value> {
        let states = (state.language == QueryLanguage::Jsonata)
            .then(|| json!({"input": raw, "context": ctx}));
        let scope = Scope {
            states: states.as_ref(),
            ..Scope::jsonpath(effective, ctx, vars)
        };
        let number = |t: &Option<Template>, field: &str| -> Result<f64, StatesError> {
            match t {
                None => Ok(0.0),
                Some(t) => {
                    let v = t.eval(&scope, field)?;
                    v.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| {
                        StatesError::runtime(format!("The value for the field '{field}' must be a non-negative number, got {v}"))
                    })
                }
            }
        };
        let max = number(&m.max_concurrency, "MaxConcurrency")? as usize;
        let tolerance = Tolerance {
            count: m
                .tolerated_failure_count
                .as_ref()
                .map(|_| number(&m.tolerated_failure_count, "ToleratedFailureCount"))
                .transpose()?,
            percentage: m
                .tolerated_failure_percentage
                .as_ref()
                .map(|_| {
                    number(
                        &m.tolerated_failure_percentage,
                        "ToleratedFailurePercentage",
                    )
                })
                .transpose()?,
        };
        let resumed = matches!(frame.lock().step, Step::Branches(_));
        let inputs = if resumed {
            Vec::new()
        } else {
            let items = match &m.items {
                None => effective.clone(),
                Some(t) => t.eval(
                    &scope,
                    if states.is_some() {
                        "Items"
                    } else {
                        "ItemsPath"
                    },
                )?,
            };
            let Value::Array(items) = items else {
                return Err(Halt::Error(StatesError::runtime(format!(
                    "Map state '{}' failed: the items to process must be a JSON array, got {items}",
                    state.name
                ))));
            };
            let mut inputs = Vec::with_capacity(items.len());
            for (index, item) in items.into_iter().enumerate() {
                inputs.push(match &m.item_selector {
                    None => item,
                    Some(t) => {
                        let mut item_ctx = ctx.clone();
                        item_ctx["Map"] = json!({"Item": {"Index": index, "Value": item}});
                        let item_states = states
                            .as_ref()
                            .map(|_| json!({"input": raw, "context": item_ctx}));
                        let item_scope = Scope {
                            context: &item_ctx,
                            states: item_states.as_ref(),
                            ..scope
                        };
                        t.eval(&item_scope, "ItemSelector")?
                    }
                });
            }
            inputs
        };
        self.branches(
            state,
            frame,
            |_| &m.processor,
            inputs,
            Some((max, tolerance)),
        )
        .await
    }

    /// Run a Parallel state's branches or a Map state's iterations, resuming those of a saved
    /// state.
    async fn branches<'b>(
        &self,
        state: &State,
        frame: &Arc<Mutex<Frame>>,
        branch_of: impl Fn(usize) -> &'b Branch,
        inputs: Vec<Value>,
        map: Option<(usize, Tolerance)>,
    ) -> Res<Value> {
        let is_map = map.is_some();
        let (started, failed_ty, succeeded_ty) = if is_map {
            (
                EventType::MapStateStarted,
                EventType::MapStateFailed,
                EventType::MapStateSucceeded,
            )
        } else {
            (
                EventType::ParallelStateStarted,
                EventType::ParallelStateFailed,
                EventType::ParallelStateSucceeded,
            )
        };
        let fresh = !matches!(frame.lock().step, Step::Branches(_));
        if fresh {
            let n = inputs.len();
            frame.lock().step = Step::Branches(inputs.into_iter().map(Slot::Pending).collect());
            self.emit(
                frame,
                started,
                if is_map {
                    json!({"length": n})
                } else {
                    Value::Null
                },
            );
            self.commit().await?;
        }
        let slot_count = match &frame.lock().step {
            Step::Branches(s) => s.len(),
            _ => 0,
        };
        let (variables, parent_event) = {
            let f = frame.lock();
            (f.variables.clone(), f.last_event)
        };
        let todo: Vec<usize> = match &frame.lock().step {
            Step::Branches(slots) => slots
                .iter()
                .enumerate()
                .filter(|(_, s)| matches!(s, Slot::Pending(_) | Slot::Running(_)))
                .map(|(i, _)| i)
                .collect(),
            _ => Vec::new(),
        };
        let (limit, tolerance) = map.unwrap_or((0, Tolerance::default()));
        let limit = if limit == 0 { todo.len().max(1) } else { limit };
        let failures = AtomicUsize::new(match &frame.lock().step {
            Step::Branches(slots) => slots
                .iter()
                .filter(|s| matches!(s, Slot::Failed(_)))
                .count(),
            _ => 0,
        });
        let failures = &failures;
        let branch_of = &branch_of;
        let run_one = |i: usize| {
            let variables = variables.clone();
            async move {
                let (child, fresh) = {
                    let mut f = frame.lock();
                    let Step::Branches(slots) = &mut f.step else {
                        return Err(Halt::Error(StatesError::runtime(
                            "lost the branches of a running state",
                        )));
                    };
                    match &slots[i] {
                        Slot::Running(c) => (c.clone(), false),
                        Slot::Pending(input) => {
                            let branch = branch_of(i);
                            let c = Arc::new(Mutex::new(Frame::new(
                                &branch.states[branch.start].name,
                                input.clone(),
                                variables,
                                self.rt.clock.now(),
                                parent_event,
                            )));
                            slots[i] = Slot::Running(c.clone());
                            (c, true)
                        }
                        _ => unreachable!("only pending and running slots are run"),
                    }
                };
                // a resumed iteration has recorded its start already
                if is_map && fresh {
                    self.emit(
                        &child,
                        EventType::MapIterationStarted,
                        json!({"name": state.name, "index": i}),
                    );
                }
                let r = self.run_branch(branch_of(i), &child).await;
                if is_map {
                    let ty = if r.is_ok() {
                        EventType::MapIterationSucceeded
                    } else {
                        EventType::MapIterationFailed
                    };
                    self.emit(&child, ty, json!({"name": state.name, "index": i}));
                }
                // record and commit here, so that one iteration's commit does not hold up
                // the others
                let slot = match r {
                    Ok(v) => Slot::Done(v),
                    Err(Halt::Checkpoint(e)) => return Err(Halt::Checkpoint(e)),
                    Err(Halt::Error(e)) => {
                        let failed = failures.fetch_add(1, AtomicOrdering::SeqCst) + 1;
                        if !tolerance.allows(failed, slot_count) {
                            return Err(Halt::Error(if tolerance.is_set() {
                                StatesError::new(
                                    names::EXCEED_TOLERATED_FAILURE_THRESHOLD,
                                    "The specified tolerated failure threshold was exceeded",
                                )
                            } else {
                                e
                            }));
                        }
                        Slot::Failed(e)
                    }
                };
                if let Step::Branches(slots) = &mut frame.lock().step {
                    slots[i] = slot;
                }
                self.commit().await
            }
        };
        let mut running = futures::stream::iter(todo)
            .map(run_one)
            .buffer_unordered(limit);
        let mut failure = None;
        while let Some(done) = running.next().await {
            match done {
                Ok(()) => {}
                Err(Halt::Checkpoint(e)) => return Err(Halt::Checkpoint(e)),
                Err(Halt::Error(e)) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(running);
        if let Some(e) = failure {
            frame.lock().step = Step::Run;
            self.emit(frame, failed_ty, Value::Null);
            return Err(Halt::Error(e));
        }
        let results = {
            let mut f = frame.lock();
            let Step::Branches(slots) = std::mem::replace(&mut f.step, Step::Run) else {
                return Err(Halt::Error(StatesError::runtime(
                    "lost the branches of a running state",
                )));
            };
            slots
                .into_iter()
                .map(|s| match s {
                    Slot::Done(v) => v,
                    Slot::Failed(e) => e.to_output(),
                    _ => Value::Null,
                })
                .collect()
        };
        self.emit(frame, succeeded_ty, Value::Null);
        Ok(Value::Array(results))
    }
}

/// A Map state's tolerated failure threshold.
#[derive(Debug, Clone, Copy, Default)]
struct Tolerance {
    count: Option<f64>,
    percentage: Option<f64>,
}

impl Tolerance {
    fn is_set(&self) -> bool {
        self.count.is_some() || self.percentage.is_some()
    }

    fn allows(&self, failures: usize, total: usize) -> bool {
        let by_count = self.count.is_some_and(|c| failures as f64 <= c);
        let by_pct = self
            .percentage
            .is_some_and(|p| total > 0 && failures as f64 * 100.0 / total as f64 <= p);
        by_count || by_pct
    }
}

fn error_details(e: &StatesError) -> Value {
    json!({"error": e.error, "cause": e.cause})
}

fn resource_parts(resource: &str) -> (String, String) {
    // arn:aws:states:::lambda:invoke(.waitForTaskToken) → ("lambda", "invoke…")
    let parts: Vec<&str> = resource.splitn(7, ':').collect();
    if parts.len() >= 7 && parts[2] == "states" {
        (parts[5].to_string(), parts[6].to_string())
    } else {
        (
            parts.get(2).copied().unwrap_or("").to_string(),
            resource.to_string(),
        )
    }
}

fn apply_result_path(path: &ResultPath, raw: &Value, result: Value) -> Result<Value, StatesError> {
    match path {
        ResultPath::Whole => Ok(result),
        ResultPath::Discard => Ok(raw.clone()),
        ResultPath::Path(q) => {
            let mut merged = raw.clone();
            q.write(&mut merged, result)?;
            Ok(merged)
        }
    }
}

fn select_output(selector: &Selector, value: Value) -> Result<Value, StatesError> {
    match selector {
        Selector::Whole => Ok(value),
        Selector::Empty => Ok(json!({})),
        Selector::Path(q) => q.select_from(&value).map_err(|_| {
            StatesError::runtime(format!(
                "Invalid path '{}' : No results for path: {}",
                q.source(),
                q.source()
            ))
        }),
    }
}

fn eval_assign(
    assign: Option<&Template>,
    scope: &Scope<'_>,
) -> Result<Option<Map<String, Value>>, StatesError> {
    let Some(t) = assign else { return Ok(None) };
    match t.eval(scope, "Assign")? {
        Value::Object(o) => Ok(Some(o)),
        other => Err(StatesError::runtime(format!(
            "Assign must evaluate to an object, got {other}"
        ))),
    }
}

fn apply_assigned(frame: &Mutex<Frame>, assigned: &Option<Map<String, Value>>) {
    if let Some(vars) = assigned {
        let mut f = frame.lock();
        for (k, v) in vars {
            f.variables.insert(k.clone(), v.clone());
        }
    }
}
