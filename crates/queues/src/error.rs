//! Every way a queue, topic or mapping operation can fail.

use lambent_store::StoreError;

/// Whose fault an error is, for the gateway's one mapping to HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Invalid,
    NotFound,
    Conflict,
    TooLarge,
    /// A quota of the namespace.
    Quota,
    Platform,
}

impl From<lambent_store::tenants::QuotaError> for QueueError {
    fn from(e: lambent_store::tenants::QuotaError) -> QueueError {
        match e {
            lambent_store::tenants::QuotaError::Exceeded(m) => QueueError::QuotaExceeded(m),
            lambent_store::tenants::QuotaError::Store(s) => QueueError::Store(s),
        }
    }
}

/// A refused or failed queue operation. Client faults first, then the platform's.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("invalid {what} name '{name}': use 1-80 letters, digits, '-' or '_'")]
    InvalidName { what: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
    #[error("queue '{0}' does not exist")]
    QueueNotFound(String),
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    #[error("function '{0}' does not exist")]
    FunctionNotFound(String),
    #[error("subscription '{0}' does not exist")]
    SubscriptionNotFound(String),
    #[error("mapping '{0}' does not exist")]
    MappingNotFound(String),
    #[error("receipt handle '{receipt}' is not of a message in flight in '{queue}'")]
    NotInFlight { queue: String, receipt: String },
    #[error("{0}")]
    Conflict(String),
    #[error("a message is larger than the queue's limit of {0} bytes")]
    MessageTooLarge(usize),
    /// The namespace's storage quota would be exceeded: nothing was sent.
    #[error("{0}")]
    QuotaExceeded(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl QueueError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            QueueError::InvalidName { .. }
            | QueueError::Invalid(_)
            | QueueError::NotInFlight { .. } => ErrorKind::Invalid,
            QueueError::QueueNotFound(_)
            | QueueError::TopicNotFound(_)
            | QueueError::FunctionNotFound(_)
            | QueueError::SubscriptionNotFound(_)
            | QueueError::MappingNotFound(_) => ErrorKind::NotFound,
            QueueError::Conflict(_) => ErrorKind::Conflict,
            QueueError::QuotaExceeded(_) => ErrorKind::Quota,
            QueueError::MessageTooLarge(_) => ErrorKind::TooLarge,
            QueueError::Store(_) => ErrorKind::Platform,
        }
    }

    /// The API's error code.
    pub fn code(&self) -> &'static str {
        match self {
            QueueError::InvalidName { .. } => "InvalidName",
            QueueError::Invalid(_) => "InvalidSettings",
            QueueError::NotInFlight { .. } => "InvalidReceipt",
            QueueError::QueueNotFound(_) => "QueueNotFound",
            QueueError::TopicNotFound(_) => "TopicNotFound",
            QueueError::FunctionNotFound(_) => "FunctionNotFound",
            QueueError::SubscriptionNotFound(_) => "SubscriptionNotFound",
            QueueError::MappingNotFound(_) => "MappingNotFound",
            QueueError::Conflict(_) => "Conflict",
            QueueError::MessageTooLarge(_) => "PayloadTooLarge",
            QueueError::QuotaExceeded(_) => "QuotaExceeded",
            QueueError::Store(_) => "Internal",
        }
    }
}
