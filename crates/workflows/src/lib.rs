//! The Amazon States Language (Step Functions) as pure logic: definitions, data flow and the
//! interpreter, with no HTTP, store or invoker inside. Those plug in through three traits.
//!
//! # Parts
//! - [`definition`]: `StateMachine::parse(text)` validates a definition once into an immutable
//!   model, or refuses it with [`InvalidDefinition`]: a list of [`Diagnostic`]s (code such as
//!   `SCHEMA_VALIDATION_FAILED` / `MISSING_TRANSITION_TARGET` / `UNREACHABLE_STATE`, location
//!   such as `/States/X/Next`, message). `InvalidDefinition`'s `Display` is the message of
//!   AWS's `InvalidDefinition` error; the diagnostics are `ValidateStateMachineDefinition`'s.
//! - [`path`], [`intrinsics`], [`jsonata`], [`choice`]: JSONPath (reference paths, `$$`,
//!   `$variables`, payload templates with `.$` keys), every `States.*` intrinsic, a JSONata
//!   evaluator (its module docs list what is supported), Choice rules.
//! - [`engine`]: [`Execution`] runs a machine against an input through a [`Runtime`]:
//!   a [`TaskRunner`] (what a Task's `Resource` does), a [`Clock`] ([`TokioClock`]) and an
//!   [`ExecutionSink`] (history events with AWS's names, and checkpoints).
//! - [`error`]: the `States.*` error names, [`StatesError`] (`{error, cause}`), the definition
//!   diagnostics. [`events`]: [`HistoryEvent`], [`EventType`], the sink trait, [`MemorySink`].
//!
//! # Wiring the Step Functions API on it
//! ```no_run
//! # use std::sync::Arc;
//! # use lambent_workflows::*;
//! # async fn demo(runner: Arc<dyn TaskRunner>, definition: &str) -> Result<(), Box<dyn std::error::Error>> {
//! // CreateStateMachine / ValidateStateMachineDefinition: refuse with the diagnostics
//! let machine = Arc::new(StateMachine::parse(definition)?);
//! // StartSyncExecution (Express): in memory, events kept only for the response/logs
//! let sink = Arc::new(MemorySink::default());
//! let rt = Runtime { runner, clock: Arc::new(TokioClock::new()), sink: sink.clone() };
//! let info = ExecutionInfo {
//!     execution_arn: "arn:aws:states:us-east-1:000000000000:express:sm:e1:e1".into(),
//!     name: "e1".into(),
//!     state_machine_arn: "arn:aws:states:us-east-1:000000000000:stateMachine:sm".into(),
//!     state_machine_name: "sm".into(),
//!     role_arn: String::new(),
//!     start_time: time::OffsetDateTime::now_utc(),
//!     input: serde_json::json!({"a": 1}),
//! };
//! let outcome = Execution::start(machine, rt, info).run().await?;
//! println!("{} {:?}", outcome.status(), outcome);
//! # Ok(()) }
//! ```
//! A Standard execution uses a sink that stores the events it receives and, on
//! [`ExecutionSink::checkpoint`], writes them with [`ExecutionState::to_json`] in one
//! transaction. On start-up, a node resumes each execution still running with
//! `Execution::resume(machine, rt, ExecutionState::from_json(saved)?)` (with the machine
//! parsed from the definition the execution started with): the state that was
//! running when the node died runs again from its start (Tasks run at least once; a Wait keeps
//! its committed deadline; a retry keeps its counters; a Map or Parallel keeps the results of
//! its finished iterations and branches). [`Execution::stop`] serves `StopExecution`;
//! (hold the execution in an `Arc` and run it in a task); [`ExecutionState::transitions`] is
//! what metering counts (one per state entered and per retry); [`HistoryEvent::to_api`] gives an
//! event in `GetExecutionHistory`'s shape.
//!
//! The `TaskRunner` sees the resource ARN, the effective input, `TimeoutSeconds` (enforced by
//! the engine as `States.Timeout`), `HeartbeatSeconds` (for callbacks: the runner fails with
//! `States.HeartbeatTimeout`) and a task token (`$$.Task.Token`, for `.waitForTaskToken`).
//! Shaping a result (the `lambda:invoke` response, `.sync` nested executions) is the runner's
//! business; a Lambda function's error type is the error it returns.
//!
//! A state output over 256 KiB fails the execution with `States.DataLimitExceeded`. A Standard
//! execution commits its whole state at each checkpoint, so a Map over many thousands of items
//! commits O(items) per iteration; Distributed Map is not supported.

pub mod choice;
pub mod clock;
pub mod definition;
pub mod engine;
pub mod error;
pub mod events;
pub mod intrinsics;
pub mod jsonata;
pub mod path;
pub mod timeline;

pub use clock::{Clock, TokioClock};
pub use definition::{QueryLanguage, StateMachine};
pub use engine::{
    EngineError, Execution, ExecutionInfo, ExecutionState, Outcome, Runtime, TaskRequest,
    TaskRunner,
};
pub use error::{names, Diagnostic, DiagnosticCode, InvalidDefinition, StatesError};
pub use events::{EventType, ExecutionSink, HistoryEvent, MemorySink};
pub use timeline::{timeline, TimelineEntry};
