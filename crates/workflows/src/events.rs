//! History events: what an execution records, with AWS's event type names and detail shapes
//! (`GetExecutionHistory`'s `events[]`), and where they go: an [`ExecutionSink`], which also
//! receives the checkpoints of durable executions.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::engine::ExecutionState;

/// An event type, named as AWS names it (`TaskStateEntered`, `MapIterationStarted`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum EventType {
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionAborted,
    ExecutionTimedOut,
    PassStateEntered,
    PassStateExited,
    TaskStateEntered,
    TaskStateExited,
    TaskScheduled,
    TaskStarted,
    TaskSucceeded,
    TaskFailed,
    TaskTimedOut,
    LambdaFunctionScheduled,
    LambdaFunctionStarted,
    LambdaFunctionSucceeded,
    LambdaFunctionFailed,
    LambdaFunctionTimedOut,
    ChoiceStateEntered,
    ChoiceStateExited,
    WaitStateEntered,
    WaitStateExited,
    SucceedStateEntered,
    SucceedStateExited,
    FailStateEntered,
    ParallelStateEntered,
    ParallelStateStarted,
    ParallelStateSucceeded,
    ParallelStateFailed,
    ParallelStateAborted,
    ParallelStateExited,
    MapStateEntered,
    MapStateStarted,
    MapStateSucceeded,
    MapStateFailed,
    MapStateAborted,
    MapStateExited,
    MapIterationStarted,
    MapIterationSucceeded,
    MapIterationFailed,
    MapIterationAborted,
}

impl EventType {
    /// The name as it appears in the API (`"TaskStateEntered"`).
    pub fn as_str(self) -> String {
        format!("{self:?}")
    }

    /// `<Type>StateEntered` for a state type.
    pub fn entered(state_type: &str) -> EventType {
        match state_type {
            "Pass" => EventType::PassStateEntered,
            "Task" => EventType::TaskStateEntered,
            "Choice" => EventType::ChoiceStateEntered,
            "Wait" => EventType::WaitStateEntered,
            "Succeed" => EventType::SucceedStateEntered,
            "Fail" => EventType::FailStateEntered,
            "Parallel" => EventType::ParallelStateEntered,
            _ => EventType::MapStateEntered,
        }
    }

    /// `<Type>StateExited` for a state type (Fail states never exit).
    pub fn exited(state_type: &str) -> Option<EventType> {
        Some(match state_type {
            "Pass" => EventType::PassStateExited,
            "Task" => EventType::TaskStateExited,
            "Choice" => EventType::ChoiceStateExited,
            "Wait" => EventType::WaitStateExited,
            "Succeed" => EventType::SucceedStateExited,
            "Parallel" => EventType::ParallelStateExited,
            "Map" => EventType::MapStateExited,
            _ => return None,
        })
    }

    /// The key of this event's details in the API (`stateEnteredEventDetails`, …); `None` for
    /// events without details.
    pub fn details_key(self) -> Option<&'static str> {
        use EventType::*;
        Some(match self {
            ExecutionStarted => "executionStartedEventDetails",
            ExecutionSucceeded => "executionSucceededEventDetails",
            ExecutionFailed => "executionFailedEventDetails",
            ExecutionAborted => "executionAbortedEventDetails",
            ExecutionTimedOut => "executionTimedOutEventDetails",
            PassStateEntered | TaskStateEntered | ChoiceStateEntered | WaitStateEntered
            | SucceedStateEntered | FailStateEntered | ParallelStateEntered | MapStateEntered => {
                "stateEnteredEventDetails"
            }
            PassStateExited | TaskStateExited | ChoiceStateExited | WaitStateExited
            | SucceedStateExited | ParallelStateExited | MapStateExited => {
                "stateExitedEventDetails"
            }
            TaskScheduled => "taskScheduledEventDetails",
            TaskStarted => "taskStartedEventDetails",
            TaskSucceeded => "taskSucceededEventDetails",
            TaskFailed => "taskFailedEventDetails",
            TaskTimedOut => "taskTimedOutEventDetails",
            LambdaFunctionScheduled => "lambdaFunctionScheduledEventDetails",
            LambdaFunctionSucceeded => "lambdaFunctionSucceededEventDetails",
            LambdaFunctionFailed => "lambdaFunctionFailedEventDetails",
            LambdaFunctionTimedOut => "lambdaFunctionTimedOutEventDetails",
            MapStateStarted => "mapStateStartedEventDetails",
            MapIterationStarted => "mapIterationStartedEventDetails",
            MapIterationSucceeded => "mapIterationSucceededEventDetails",
            MapIterationFailed => "mapIterationFailedEventDetails",
            MapIterationAborted => "mapIterationAbortedEventDetails",
            _ => return None,
        })
    }
}

/// One history event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    /// 1, 2, 3… in the order recorded.
    pub id: u64,
    /// The event this one follows in its branch (0 for the first).
    pub previous_event_id: u64,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// What happened.
    pub event_type: EventType,
    /// The details, as the API shows them under [`EventType::details_key`] (inputs and
    /// outputs as JSON text, as AWS gives them).
    pub details: Value,
}

impl HistoryEvent {
    /// The event as `GetExecutionHistory` shows it (`timestamp` in epoch seconds).
    pub fn to_api(&self) -> Value {
        let mut out = serde_json::json!({
            "id": self.id,
            "previousEventId": self.previous_event_id,
            "timestamp": self.timestamp.unix_timestamp_nanos() as f64 / 1e9,
            "type": self.event_type.as_str(),
        });
        if let Some(key) = self.event_type.details_key() {
            out[key] = self.details.clone();
        }
        out
    }
}

/// Where an execution's events and checkpoints go.
///
/// Events arrive in order, synchronously, as they happen. A durable (Standard) execution is
/// committed by [`ExecutionSink::checkpoint`]: after every transition, retry decision, Wait
/// start and Map/Parallel progress; the events recorded since the previous checkpoint belong
/// with it (write them in the same transaction). After a crash, resume from the last committed
/// [`ExecutionState`]: the state that was running is run again from its start (Tasks run at
/// least once), and its events are recorded again. Events received after the last checkpoint
/// that succeeded belong to no committed state: a sink whose checkpoint fails drops them.
/// Inside a Map or Parallel, branches checkpoint concurrently: each call carries the whole
/// tree, so committing the latest call wins. An Express execution keeps nothing: give it
/// a sink whose `checkpoint` does nothing.
#[async_trait::async_trait]
pub trait ExecutionSink: Send + Sync {
    /// Record one event.
    fn event(&self, event: HistoryEvent);

    /// Commit the execution's state; an error stops the execution (it can be resumed from the
    /// last committed state).
    async fn checkpoint(&self, state: &ExecutionState) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

/// An in-memory sink: keeps every event, commits nothing (Express executions, tests).
#[derive(Debug, Default)]
pub struct MemorySink {
    events: parking_lot::Mutex<Vec<HistoryEvent>>,
}

impl MemorySink {
    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<HistoryEvent> {
        self.events.lock().clone()
    }

    /// The types of the events recorded so far.
    pub fn types(&self) -> Vec<EventType> {
        self.events.lock().iter().map(|e| e.event_type).collect()
    }
}

#[async_trait::async_trait]
impl ExecutionSink for MemorySink {
    fn event(&self, event: HistoryEvent) {
        self.events.lock().push(event);
    }
}
