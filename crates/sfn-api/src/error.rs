//! Step Functions errors in the JSON 1.0 protocol's shape: a status and
//! `{"__type": "<Code>", "message": "…"}`, the code being botocore's exception name.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lambent_aws_api::AwsError;
use lambent_store::StoreError;

/// Why a Step Functions call failed, as an AWS exception.
#[derive(Debug, thiserror::Error)]
pub enum SfnError {
    #[error("{0}")]
    StateMachineDoesNotExist(String),
    #[error("{0}")]
    StateMachineAlreadyExists(String),
    #[error("{0}")]
    StateMachineTypeNotSupported(String),
    #[error("{0}")]
    ExecutionDoesNotExist(String),
    #[error("{0}")]
    ExecutionAlreadyExists(String),
    #[error("{0}")]
    InvalidDefinition(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    InvalidName(String),
    #[error("{0}")]
    InvalidExecutionInput(String),
    #[error("{0}")]
    InvalidToken(String),
    #[error("{0}")]
    InvalidOutput(String),
    #[error("{0}")]
    TaskDoesNotExist(String),
    #[error("{0}")]
    TaskTimedOut(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    UnknownOperation(String),
    #[error("{0}")]
    Conflict(String),
    /// A SigV4 refusal, or another failure of the shared AWS layer.
    #[error("{0}")]
    Aws(#[from] AwsError),
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for SfnError {
    fn from(e: StoreError) -> Self {
        SfnError::Internal(e.to_string())
    }
}

impl SfnError {
    pub fn status(&self) -> StatusCode {
        match self {
            SfnError::Aws(e) => e.status(),
            SfnError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The exception's name, as in botocore's service model.
    pub fn code(&self) -> &'static str {
        match self {
            SfnError::StateMachineDoesNotExist(_) => "StateMachineDoesNotExist",
            SfnError::StateMachineAlreadyExists(_) => "StateMachineAlreadyExists",
            SfnError::StateMachineTypeNotSupported(_) => "StateMachineTypeNotSupported",
            SfnError::ExecutionDoesNotExist(_) => "ExecutionDoesNotExist",
            SfnError::ExecutionAlreadyExists(_) => "ExecutionAlreadyExists",
            SfnError::InvalidDefinition(_) => "InvalidDefinition",
            SfnError::InvalidArn(_) => "InvalidArn",
            SfnError::InvalidName(_) => "InvalidName",
            SfnError::InvalidExecutionInput(_) => "InvalidExecutionInput",
            SfnError::InvalidToken(_) => "InvalidToken",
            SfnError::InvalidOutput(_) => "InvalidOutput",
            SfnError::TaskDoesNotExist(_) => "TaskDoesNotExist",
            SfnError::TaskTimedOut(_) => "TaskTimedOut",
            SfnError::Validation(_) => "ValidationException",
            SfnError::UnknownOperation(_) => "UnknownOperationException",
            SfnError::Conflict(_) => "ConflictException",
            SfnError::Aws(e) => e.error_type(),
            SfnError::Internal(_) => "InternalFailure",
        }
    }
}

impl IntoResponse for SfnError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.code(), "message": self.to_string()});
        let mut response = (self.status(), body.to_string()).into_response();
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/x-amz-json-1.0"),
        );
        response
    }
}
