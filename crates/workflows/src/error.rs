//! Errors: the runtime errors an execution raises (`States.*` names and AWS's texts), and the
//! diagnostics a definition is refused with (`InvalidDefinition` /
//! `ValidateStateMachineDefinition`).

use serde::{Deserialize, Serialize};

/// The `States.*` error names of the Amazon States Language.
pub mod names {
    /// Matches any error name (except [`RUNTIME`] and [`DATA_LIMIT_EXCEEDED`]).
    pub const ALL: &str = "States.ALL";
    /// Matches any error name except [`TIMEOUT`].
    pub const TASK_FAILED: &str = "States.TaskFailed";
    /// A Task ran longer than `TimeoutSeconds`, or an execution longer than its `TimeoutSeconds`.
    pub const TIMEOUT: &str = "States.Timeout";
    /// A Task failed to heartbeat for longer than `HeartbeatSeconds`.
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    /// A terminal error: an invalid path, a template that cannot be applied, etc.
    pub const RUNTIME: &str = "States.Runtime";
    /// A state's input or output exceeded the payload limit.
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    /// A state's `ResultPath` could not be applied to its input.
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    /// A `.$` field of a payload template referred to a path that is not in the input.
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    /// An intrinsic function failed.
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    /// No Choice rule matched and the Choice state has no `Default`.
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    /// A branch of a Parallel state failed.
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    /// A Map state's failed items exceeded its tolerated failure threshold.
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    /// A JSONata expression could not be evaluated.
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
    /// The Task's principal lacks permission.
    pub const PERMISSIONS: &str = "States.Permissions";
    /// A Map state's items could not be read.
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    /// A Map state's results could not be written.
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
}

/// An error raised while running a state: an error name and a cause, as a Catch sees them
/// (`{"Error": …, "Cause": …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    /// The error name (`States.TaskFailed`, a function's error type, a Fail state's `Error`).
    pub error: String,
    /// The human-readable cause.
    pub cause: String,
}

impl StatesError {
    /// An error with a name and a cause.
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        StatesError {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// A `States.Runtime` error (terminal: neither `States.ALL` retries nor catches it).
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }

    /// A `States.IntrinsicFailure` error.
    pub fn intrinsic(cause: impl Into<String>) -> Self {
        Self::new(names::INTRINSIC_FAILURE, cause)
    }

    /// A `States.QueryEvaluationError` error (JSONata).
    pub fn query(cause: impl Into<String>) -> Self {
        Self::new(names::QUERY_EVALUATION_ERROR, cause)
    }

    /// The error output a Catch passes on: `{"Error": …, "Cause": …}`.
    pub fn to_output(&self) -> serde_json::Value {
        serde_json::json!({"Error": self.error, "Cause": self.cause})
    }

    /// Whether a Retry or Catch `ErrorEquals` list matches this error.
    ///
    /// `States.ALL` matches every error but the terminal `States.Runtime` and
    /// `States.DataLimitExceeded`; `States.TaskFailed` matches every error but `States.Timeout`
    /// (and the terminal ones).
    pub fn matches(&self, error_equals: &[String]) -> bool {
        let terminal = self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED;
        error_equals.iter().any(|name| {
            if *name == self.error {
                return true;
            }
            match name.as_str() {
                names::ALL => !terminal,
                names::TASK_FAILED => !terminal && self.error != names::TIMEOUT,
                _ => false,
            }
        })
    }
}

impl std::fmt::Display for StatesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.cause)
    }
}

impl std::error::Error for StatesError {}

/// The kind of a definition problem, as `ValidateStateMachineDefinition` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiagnosticCode {
    /// The definition is not JSON.
    InvalidJsonDescription,
    /// A field is missing, of the wrong type, not allowed here, or holds a bad value.
    SchemaValidationFailed,
    /// A `StartAt`, `Next` or `Default` names a state that does not exist.
    MissingTransitionTarget,
    /// No path from `StartAt` reaches this state.
    UnreachableState,
    /// Two states share a name.
    DuplicateStateName,
}

impl DiagnosticCode {
    /// The code as AWS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticCode::InvalidJsonDescription => "INVALID_JSON_DESCRIPTION",
            DiagnosticCode::SchemaValidationFailed => "SCHEMA_VALIDATION_FAILED",
            DiagnosticCode::MissingTransitionTarget => "MISSING_TRANSITION_TARGET",
            DiagnosticCode::UnreachableState => "UNREACHABLE_STATE",
            DiagnosticCode::DuplicateStateName => "DUPLICATE_STATE_NAME",
        }
    }
}

/// One problem in a definition: the shape of a `ValidateStateMachineDefinition` diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What is wrong.
    pub code: DiagnosticCode,
    /// The JSON pointer of the offending field, e.g. `/States/X/Next`.
    pub location: String,
    /// Why it is wrong.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} at {}",
            self.code.as_str(),
            self.message,
            self.location
        )
    }
}

/// A definition refused: every problem found (never empty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid State Machine Definition: {}", render(.diagnostics))]
pub struct InvalidDefinition {
    /// Each problem, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ")
}
