//! Errors in AWS's shape, mapped in this one place: the status, the `x-amzn-ErrorType` header
//! botocore reads the exception class from, and the body `{"Type": "User", "message": …}`.

use crate::sigv4::SigV4Error;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_gateway::credentials::CredentialError;
use lambent_gateway::ApiError;

/// Why a Lambda API call failed, as an AWS exception.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    ResourceConflict(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("{0}")]
    InvalidRequestContent(String),
    #[error("{0}")]
    RequestTooLarge(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        reason: &'static str,
    },
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("{0}")]
    ProvisionedConcurrencyConfigNotFound(String),
    #[error("{0}")]
    Signature(#[from] SigV4Error),
    #[error("{0}")]
    Credentials(#[from] CredentialError),
    /// The key's role may not do this action.
    #[error("{0}")]
    AccessDenied(String),
    /// A quota of the namespace would be exceeded (`max_functions`): nothing was created.
    #[error("{0}")]
    QuotaExceeded(String),
    /// The namespace's hard monthly budget is spent.
    #[error("{0}")]
    BudgetExhausted(String),
    /// A dependency of the store cannot be reached (the message names it): a 503 `ServiceException`.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The data disk is full, nothing was written: a 507 `ServiceException`.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Service(String),
}

impl AwsError {
    pub fn status(&self) -> StatusCode {
        match self {
            AwsError::ResourceNotFound(_) | AwsError::ProvisionedConcurrencyConfigNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            AwsError::ResourceConflict(_) => StatusCode::CONFLICT,
            AwsError::InvalidParameterValue(_) | AwsError::InvalidRequestContent(_) => {
                StatusCode::BAD_REQUEST
            }
            AwsError::RequestTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AwsError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AwsError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            AwsError::Signature(SigV4Error::Malformed(_)) => StatusCode::BAD_REQUEST,
            AwsError::Signature(_) => StatusCode::FORBIDDEN,
            AwsError::Credentials(CredentialError::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            AwsError::Credentials(_) => StatusCode::FORBIDDEN,
            AwsError::AccessDenied(_) | AwsError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            AwsError::BudgetExhausted(_) => StatusCode::PAYMENT_REQUIRED,
            AwsError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AwsError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            AwsError::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The exception's name, as in botocore's service model.
    pub fn error_type(&self) -> &'static str {
        match self {
            AwsError::ResourceNotFound(_) => "ResourceNotFoundException",
            AwsError::ResourceConflict(_) => "ResourceConflictException",
            AwsError::InvalidParameterValue(_) => "InvalidParameterValueException",
            AwsError::InvalidRequestContent(_) => "InvalidRequestContentException",
            AwsError::RequestTooLarge(_) => "RequestTooLargeException",
            AwsError::TooManyRequests { .. } => "TooManyRequestsException",
            AwsError::PreconditionFailed(_) => "PreconditionFailedException",
            AwsError::ProvisionedConcurrencyConfigNotFound(_) => {
                "ProvisionedConcurrencyConfigNotFoundException"
            }
            AwsError::Signature(e) => match e {
                SigV4Error::Missing => "MissingAuthenticationTokenException",
                SigV4Error::Malformed(_) => "IncompleteSignatureException",
                SigV4Error::UnknownAccessKey(_) => "UnrecognizedClientException",
                _ => "InvalidSignatureException",
            },
            AwsError::Credentials(e) => match e {
                CredentialError::ExpiredToken => "ExpiredTokenException",
                CredentialError::Store(_) => "ServiceException",
                _ => "UnrecognizedClientException",
            },
            AwsError::AccessDenied(_) => "AccessDeniedException",
            AwsError::QuotaExceeded(_) => "QuotaExceeded",
            AwsError::BudgetExhausted(_) => "BudgetExhausted",
            AwsError::Service(_)
            | AwsError::ServiceUnavailable(_)
            | AwsError::InsufficientStorage(_) => "ServiceException",
        }
    }

    fn fault(&self) -> &'static str {
        match self {
            AwsError::Service(_)
            | AwsError::ServiceUnavailable(_)
            | AwsError::InsufficientStorage(_)
            | AwsError::Credentials(CredentialError::Store(_)) => "Service",
            _ => "User",
        }
    }
}

impl From<ApiError> for AwsError {
    fn from(e: ApiError) -> AwsError {
        let message = e.to_string();
        match e {
            ApiError::FunctionNotFound { .. }
            | ApiError::VersionNotFound { .. }
            | ApiError::ActivationNotFound(_)
            | ApiError::AccessKeyNotFound(_)
            | ApiError::NotFound(_) => AwsError::ResourceNotFound(message),
            ApiError::Conflict(_) => AwsError::ResourceConflict(message),
            ApiError::InvalidJson(_) => AwsError::InvalidRequestContent(message),
            ApiError::Invalid(_)
            | ApiError::InvalidPackage(_)
            | ApiError::CodeNotFound(_)
            | ApiError::InvalidParameter(_)
            | ApiError::Unauthorized(_) => AwsError::InvalidParameterValue(message),
            ApiError::PayloadTooLarge { .. } => AwsError::RequestTooLarge(message),
            ApiError::Throttled(_) => AwsError::TooManyRequests {
                reason: throttle_reason(&message),
                message,
            },
            ApiError::Internal(_) => AwsError::Service(message),
            ApiError::DependencyUnavailable(_) => AwsError::ServiceUnavailable(message),
            ApiError::InsufficientStorage(_) => AwsError::InsufficientStorage(message),
            ApiError::Forbidden(_) => AwsError::AccessDenied(message),
            ApiError::QuotaExceeded(_) => AwsError::QuotaExceeded(message),
            ApiError::BudgetExhausted(_) => AwsError::BudgetExhausted(message),
            // Errors of Lambent's other surfaces (routes, queues, schedules), by their status.
            other => match other.status().as_u16() {
                404 => AwsError::ResourceNotFound(message),
                409 => AwsError::ResourceConflict(message),
                413 => AwsError::RequestTooLarge(message),
                400..=499 => AwsError::InvalidParameterValue(message),
                _ => AwsError::Service(message),
            },
        }
    }
}

/// Lambda's `Reason` for a throttle, from the invoker's message (which names the limit).
pub fn throttle_reason(message: &str) -> &'static str {
    if message.starts_with("function ") {
        "ReservedFunctionConcurrentInvocationLimitExceeded"
    } else {
        "ConcurrentInvocationLimitExceeded"
    }
}

impl IntoResponse for AwsError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({
            "Type": self.fault(),
            "message": self.to_string(),
        });
        if let AwsError::TooManyRequests { reason, .. } = &self {
            body["Reason"] = (*reason).into();
        }
        let mut response = (self.status(), axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.error_type()),
        );
        if matches!(self, AwsError::TooManyRequests { .. }) {
            headers.insert("retry-after", HeaderValue::from_static("1"));
        }
        response
    }
}
