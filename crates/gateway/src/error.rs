//! Every way an API call can fail, and the one place that maps each to an HTTP status and the
//! JSON body `{"error": {"code", "message"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lambent_core::route::RouteError;
use lambent_core::ValidationError;
use lambent_invoker::Throttle;
use lambent_queues::ErrorKind as QueueErrorKind;
use lambent_store::package::PackageError;
use lambent_store::StoreError;

/// Which quota of a namespace a write or create would exceed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// `max_functions`.
    MaxFunctions,
    /// `storage_quota_bytes`.
    Storage,
}

impl Quota {
    /// The quota's name: its setting.
    pub fn name(self) -> &'static str {
        match self {
            Quota::MaxFunctions => "max_functions",
            Quota::Storage => "storage_quota_bytes",
        }
    }
}

/// A namespace's quota would be exceeded: the message names the quota, its value and what is
/// used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("namespace {namespace} would exceed its {what} quota of {limit}{unit} ({used}{unit} used{wanted}): delete some or ask the operator to raise {}", quota.name())]
pub struct QuotaExceeded {
    pub namespace: String,
    pub quota: Quota,
    pub what: &'static str,
    pub limit: u64,
    pub used: u64,
    pub unit: &'static str,
    /// `, N more asked`, or nothing.
    pub wanted: String,
}

/// A refused or failed API call. Client faults first, then the platform's.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidJson(String),
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    #[error(transparent)]
    InvalidPackage(PackageError),
    #[error("code {0} is not uploaded: POST the zip to /v1/code first")]
    CodeNotFound(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The key is valid but its role (or namespace) may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("namespace '{0}' does not exist")]
    NamespaceNotFound(String),
    #[error("api key '{0}' does not exist in this namespace")]
    ApiKeyNotFound(String),
    #[error("function '{name}' does not exist in namespace '{namespace}'")]
    FunctionNotFound { namespace: String, name: String },
    #[error("function '{name}' has no version or alias '{qualifier}'")]
    VersionNotFound { name: String, qualifier: String },
    #[error("{0}")]
    InvalidParameter(String),
    #[error("activation '{0}' does not exist")]
    ActivationNotFound(String),
    #[error(transparent)]
    InvalidRoute(#[from] lambent_core::route::RouteError),
    #[error("route '{0}' does not exist")]
    RouteNotFound(String),
    #[error("host name '{0}' is not claimed by this namespace")]
    HostNotFound(String),
    #[error(transparent)]
    Queue(lambent_queues::QueueError),
    #[error("access key '{0}' does not exist in this namespace")]
    AccessKeyNotFound(String),
    #[error("no such path: {0}")]
    NotFound(String),
    #[error("method {0} is not allowed on this path")]
    MethodNotAllowed(String),
    #[error("{0}")]
    InvalidSchedule(String),
    /// A setting this host cannot provide (outbound network without slirp4netns).
    #[error("{0}")]
    Unavailable(String),
    /// A schedule or dead letter that does not exist (the message names it).
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    InvalidNamespace(#[from] lambent_core::tenancy::TenancyError),
    /// A concurrency limit is reached (the message names it, see [`Throttle::limit_name_of`]).
    #[error("{0}")]
    Throttled(String),
    /// A quota of the namespace would be exceeded; nothing was done.
    #[error(transparent)]
    QuotaExceeded(#[from] QuotaExceeded),
    /// The namespace's hard monthly budget is spent (the message says how much of what).
    #[error("{0}")]
    BudgetExhausted(String),
    #[error("{what} is larger than the {limit_mb} MB limit")]
    PayloadTooLarge { what: &'static str, limit_mb: usize },
    /// A cluster dependency (PostgreSQL, NATS) cannot be reached; the message names it.
    #[error("{0}")]
    DependencyUnavailable(String),
    /// The data disk is full: nothing of the write was kept; the message names what could
    /// not be written.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn function_not_found(namespace: &str, name: &str) -> ApiError {
        ApiError::FunctionNotFound {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidJson(_)
            | ApiError::Invalid(_)
            | ApiError::InvalidPackage(_)
            | ApiError::CodeNotFound(_)
            | ApiError::InvalidSchedule(_)
            | ApiError::Unavailable(_)
            | ApiError::InvalidNamespace(_)
            | ApiError::InvalidParameter(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidRoute(RouteError::Reserved { .. }) => StatusCode::CONFLICT,
            ApiError::InvalidRoute(_) => StatusCode::BAD_REQUEST,
            ApiError::Queue(e) => match e.kind() {
                QueueErrorKind::Invalid => StatusCode::BAD_REQUEST,
                QueueErrorKind::NotFound => StatusCode::NOT_FOUND,
                QueueErrorKind::Conflict => StatusCode::CONFLICT,
                QueueErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                QueueErrorKind::Quota => StatusCode::FORBIDDEN,
                QueueErrorKind::Platform => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NamespaceNotFound(_) | ApiError::ApiKeyNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::FunctionNotFound { .. }
            | ApiError::VersionNotFound { .. }
            | ApiError::ActivationNotFound(_)
            | ApiError::RouteNotFound(_)
            | ApiError::HostNotFound(_)
            | ApiError::AccessKeyNotFound(_)
            | ApiError::NotFound(_)
            | ApiError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::QuotaExceeded(_) => StatusCode::FORBIDDEN,
            ApiError::BudgetExhausted(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::DependencyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "InvalidJson",
            ApiError::Invalid(ValidationError::InvalidName(_)) => "InvalidName",
            ApiError::Invalid(_) => "InvalidSettings",
            ApiError::InvalidPackage(_) => "InvalidPackage",
            ApiError::CodeNotFound(_) => "CodeNotFound",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "AccessDenied",
            ApiError::NamespaceNotFound(_) => "NamespaceNotFound",
            ApiError::ApiKeyNotFound(_) => "ApiKeyNotFound",
            ApiError::FunctionNotFound { .. } => "FunctionNotFound",
            ApiError::VersionNotFound { .. } => "VersionNotFound",
            ApiError::InvalidParameter(_) => "InvalidParameter",
            ApiError::ActivationNotFound(_) => "ActivationNotFound",
            ApiError::NotFound(_) | ApiError::ResourceNotFound(_) => "NotFound",
            ApiError::InvalidSchedule(_) => "InvalidSchedule",
            ApiError::Unavailable(_) => "UnavailableOnThisHost",
            ApiError::InvalidRoute(RouteError::Reserved { .. }) => "ReservedPath",
            ApiError::InvalidRoute(RouteError::Function(ValidationError::InvalidName(_))) => {
                "InvalidName"
            }
            ApiError::InvalidRoute(_) => "InvalidRoute",
            ApiError::RouteNotFound(_) => "RouteNotFound",
            ApiError::HostNotFound(_) => "HostNotFound",
            ApiError::Queue(e) => e.code(),
            ApiError::AccessKeyNotFound(_) => "AccessKeyNotFound",
            ApiError::Conflict(_) => "Conflict",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::InvalidNamespace(_) => "InvalidNamespace",
            ApiError::PayloadTooLarge { .. } => "PayloadTooLarge",
            ApiError::Throttled(_) => "Throttled",
            ApiError::QuotaExceeded(_) => "QuotaExceeded",
            ApiError::BudgetExhausted(_) => "BudgetExhausted",
            ApiError::DependencyUnavailable(_) => "ServiceUnavailable",
            ApiError::InsufficientStorage(_) => "InsufficientStorage",
            ApiError::Internal(_) => "Internal",
        }
    }
}

impl ApiError {
    /// The refusal of an invocation that did not run (a throttle, or a spent hard budget), by
    /// its record; `None` when it ran.
    pub fn of_refused(a: &lambent_core::Activation) -> Option<ApiError> {
        if a.status != lambent_core::ActivationStatus::Throttled {
            return None;
        }
        let message = a.error_message.clone().unwrap_or_default();
        Some(match a.error_type.as_deref() {
            Some(lambent_invoker::BUDGET_EXHAUSTED) => ApiError::BudgetExhausted(message),
            _ => ApiError::Throttled(message),
        })
    }
}

impl From<PackageError> for ApiError {
    fn from(e: PackageError) -> ApiError {
        match e {
            PackageError::TooLarge => ApiError::PayloadTooLarge {
                what: "the unpacked code",
                limit_mb: (lambent_core::limits::MAX_CODE_UNZIPPED / (1024 * 1024)) as usize,
            },
            PackageError::Io(e) if lambent_store::is_disk_full(&e) => {
                ApiError::InsufficientStorage(
                    StoreError::DiskFull(format!("could not store the code: {e}")).to_string(),
                )
            }
            PackageError::Io(e) => ApiError::Internal(format!("could not store the code: {e}")),
            other => ApiError::InvalidPackage(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(..) | StoreError::Changed(_) => ApiError::Conflict(e.to_string()),
            StoreError::MissingBlob(sha) => ApiError::CodeNotFound(sha),
            StoreError::Package(p) => p.into(),
            StoreError::Unavailable { .. } => ApiError::DependencyUnavailable(e.to_string()),
            StoreError::DiskFull(_) => ApiError::InsufficientStorage(e.to_string()),
            StoreError::Database(_) | StoreError::Io(_) | StoreError::SchemaTooNew { .. } => {
                tracing::error!("store failure: {e}");
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<lambent_queues::QueueError> for ApiError {
    fn from(e: lambent_queues::QueueError) -> ApiError {
        match e {
            // A cluster dependency that is down is the same 503 everywhere.
            lambent_queues::QueueError::Store(
                s @ (StoreError::Unavailable { .. } | StoreError::DiskFull(_)),
            ) => s.into(),
            other => ApiError::Queue(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        match &self {
            ApiError::Throttled(message) => {
                error["limit"] = Throttle::limit_name_of(message).into();
            }
            ApiError::QuotaExceeded(q) => {
                error["quota"] = q.quota.name().into();
                error["limit"] = q.limit.into();
                error["used"] = q.used.into();
            }
            _ => {}
        }
        let mut response = (
            self.status(),
            axum::Json(serde_json::json!({ "error": error })),
        )
            .into_response();
        if matches!(self, ApiError::Throttled(_)) {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}
