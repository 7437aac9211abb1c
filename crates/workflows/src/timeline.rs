//! An execution's history read as a timeline: one entry per state entered (in every branch
//! and iteration), with when it started, how long it ran, how many times its Task was
//! retried and the last error it met. Pure: it reads [`HistoryEvent`]s and nothing else.
//!
//! Events are attributed to states by their `previous_event_id` chain (each branch of a
//! Parallel or iteration of a Map has its own chain), so concurrent branches do not mix.

use crate::events::{EventType, HistoryEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;

/// One state entered during an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// The state's name.
    pub state: String,
    /// `Task`, `Pass`, `Choice`, …
    #[serde(rename = "type")]
    pub state_type: String,
    /// When it was entered (ms since the epoch).
    pub start_ms: i64,
    /// How long it ran: until it exited, or (left by an error) until its last event; `None`
    /// while the execution runs and the state has not exited.
    pub duration_ms: Option<f64>,
    /// Task attempts after the first.
    pub retries: u32,
    /// The last error a Task attempt of the state met (even when a retry then succeeded).
    pub error: Option<String>,
    pub cause: Option<String>,
}

struct Open {
    entry: TimelineEntry,
    start_ns: i128,
    last_ns: i128,
    attempts: u32,
    exited: bool,
    /// The entry this one runs inside (the Map or Parallel state of its branch).
    parent: Option<usize>,
}

fn state_type(event: EventType) -> Option<&'static str> {
    use EventType::*;
    Some(match event {
        PassStateEntered => "Pass",
        TaskStateEntered => "Task",
        ChoiceStateEntered => "Choice",
        WaitStateEntered => "Wait",
        SucceedStateEntered => "Succeed",
        FailStateEntered => "Fail",
        ParallelStateEntered => "Parallel",
        MapStateEntered => "Map",
        _ => return None,
    })
}

fn is_exit(event: EventType) -> bool {
    use EventType::*;
    matches!(
        event,
        PassStateExited
            | TaskStateExited
            | ChoiceStateExited
            | WaitStateExited
            | SucceedStateExited
            | ParallelStateExited
            | MapStateExited
    )
}

fn is_attempt(event: EventType) -> bool {
    matches!(
        event,
        EventType::TaskScheduled | EventType::LambdaFunctionScheduled
    )
}

fn is_failure(event: EventType) -> bool {
    use EventType::*;
    matches!(
        event,
        TaskFailed
            | TaskTimedOut
            | LambdaFunctionFailed
            | LambdaFunctionTimedOut
            | ParallelStateFailed
            | MapStateFailed
    )
}

fn text(details: &Value, key: &str) -> Option<String> {
    details.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The timeline of `events` (in id order, as recorded), entries in the order entered.
pub fn timeline(events: &[HistoryEvent]) -> Vec<TimelineEntry> {
    let mut open: Vec<Open> = Vec::new();
    // The entry each event belongs to.
    let mut owner: HashMap<u64, Option<usize>> = HashMap::new();
    for e in events {
        let ns = e.timestamp.unix_timestamp_nanos();
        let current = owner.get(&e.previous_event_id).copied().flatten();
        let mine = if let Some(kind) = state_type(e.event_type) {
            open.push(Open {
                entry: TimelineEntry {
                    state: text(&e.details, "name").unwrap_or_default(),
                    state_type: kind.into(),
                    start_ms: (ns / 1_000_000) as i64,
                    duration_ms: None,
                    retries: 0,
                    error: None,
                    cause: None,
                },
                start_ns: ns,
                last_ns: ns,
                attempts: 0,
                exited: false,
                parent: current,
            });
            Some(open.len() - 1)
        } else if let Some(i) = current {
            let o = &mut open[i];
            o.last_ns = ns;
            if is_attempt(e.event_type) {
                o.attempts += 1;
            }
            if is_failure(e.event_type) {
                o.entry.error = text(&e.details, "error");
                o.entry.cause = text(&e.details, "cause");
            }
            if is_exit(e.event_type) {
                o.exited = true;
                o.parent
            } else {
                Some(i)
            }
        } else {
            None
        };
        owner.insert(e.id, mine);
        if matches!(
            e.event_type,
            EventType::ExecutionFailed | EventType::ExecutionTimedOut | EventType::ExecutionAborted
        ) {
            // The states still open ended with the execution.
            for o in open.iter_mut().filter(|o| !o.exited) {
                o.last_ns = o.last_ns.max(ns);
            }
        }
    }
    let ended = events.last().is_some_and(|e| {
        matches!(
            e.event_type,
            EventType::ExecutionSucceeded
                | EventType::ExecutionFailed
                | EventType::ExecutionTimedOut
                | EventType::ExecutionAborted
        )
    });
    open.into_iter()
        .map(|o| {
            let mut entry = o.entry;
            entry.retries = o.attempts.saturating_sub(1);
            if o.exited || ended {
                entry.duration_ms = Some((o.last_ns - o.start_ns) as f64 / 1e6);
            }
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::OffsetDateTime;

    fn event(
        id: u64,
        previous: u64,
        ms: i64,
        event_type: EventType,
        details: Value,
    ) -> HistoryEvent {
        HistoryEvent {
            id,
            previous_event_id: previous,
            timestamp: OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap(),
            event_type,
            details,
        }
    }

    #[test]
    fn a_retried_task_then_a_failed_one_read_as_states_with_durations_retries_and_errors() {
        use EventType::*;
        let failed = json!({"error": "Boom", "cause": "it broke"});
        let events = [
            event(1, 0, 1000, ExecutionStarted, json!({})),
            event(2, 1, 1001, PassStateEntered, json!({"name": "Prep"})),
            event(3, 2, 1002, PassStateExited, json!({"name": "Prep"})),
            event(4, 3, 1002, TaskStateEntered, json!({"name": "Call"})),
            event(5, 4, 1003, LambdaFunctionScheduled, json!({})),
            event(6, 5, 1010, LambdaFunctionFailed, failed.clone()),
            event(7, 6, 1020, LambdaFunctionScheduled, json!({})),
            event(8, 7, 1030, LambdaFunctionSucceeded, json!({})),
            event(9, 8, 1032, TaskStateExited, json!({"name": "Call"})),
            event(10, 9, 1032, TaskStateEntered, json!({"name": "Last"})),
            event(11, 10, 1033, TaskScheduled, json!({})),
            event(12, 11, 1040, TaskFailed, failed),
            event(13, 12, 1041, ExecutionFailed, json!({"error": "Boom"})),
        ];
        let t = timeline(&events);
        let rows: Vec<_> = t
            .iter()
            .map(|e| {
                (
                    e.state.as_str(),
                    e.state_type.as_str(),
                    e.start_ms,
                    e.duration_ms,
                    e.retries,
                    e.error.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("Prep", "Pass", 1001, Some(1.0), 0, None),
                ("Call", "Task", 1002, Some(30.0), 1, Some("Boom")),
                ("Last", "Task", 1032, Some(9.0), 0, Some("Boom")),
            ]
        );
        assert_eq!(t[2].cause.as_deref(), Some("it broke"));
    }

    #[test]
    fn parallel_branches_keep_their_own_states_and_a_running_state_has_no_duration() {
        use EventType::*;
        let events = [
            event(1, 0, 0, ExecutionStarted, json!({})),
            event(2, 1, 1, ParallelStateEntered, json!({"name": "Both"})),
            event(3, 2, 1, ParallelStateStarted, Value::Null),
            event(4, 3, 2, TaskStateEntered, json!({"name": "A"})),
            event(5, 3, 2, TaskStateEntered, json!({"name": "B"})),
            event(6, 4, 3, TaskScheduled, json!({})),
            event(7, 5, 3, TaskScheduled, json!({})),
            event(8, 7, 5, TaskFailed, json!({"error": "E"})),
            event(9, 8, 6, TaskScheduled, json!({})),
            event(10, 6, 9, TaskSucceeded, json!({})),
            event(11, 10, 9, TaskStateExited, json!({"name": "A"})),
        ];
        let t = timeline(&events);
        assert_eq!(t.len(), 3);
        assert_eq!(
            (t[1].state.as_str(), t[1].retries, t[1].error.as_deref()),
            ("A", 0, None)
        );
        assert_eq!(t[1].duration_ms, Some(7.0));
        assert_eq!(
            (t[2].state.as_str(), t[2].retries, t[2].error.as_deref()),
            ("B", 1, Some("E"))
        );
        assert_eq!(t[2].duration_ms, None, "B still runs");
        assert_eq!(t[0].duration_ms, None, "the Parallel state still runs");
    }
}
