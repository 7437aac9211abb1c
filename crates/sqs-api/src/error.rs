//! SQS's and SNS's errors, each with its wire names: SQS's JSON `__type`, its legacy query code
//! (also sent to JSON clients in `x-amzn-query-error`), SNS's query code, and the status.

use axum::http::StatusCode;
use lambent_queues::QueueError;
use lambent_store::StoreError;

/// Why an SQS call failed.
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("The specified queue does not exist.")]
    QueueDoesNotExist,
    #[error("{0}")]
    QueueNameExists(String),
    #[error("{0}")]
    InvalidParameterValue(String),
    #[error("The request must contain the parameter {0}.")]
    MissingParameter(&'static str),
    #[error("{0}")]
    InvalidAttributeName(String),
    #[error("{0}")]
    InvalidAttributeValue(String),
    #[error("The input receipt handle \"{0}\" is not a valid receipt handle.")]
    ReceiptHandleIsInvalid(String),
    #[error("{0}")]
    MessageNotInflight(String),
    #[error("There should be at least one {0} in the request.")]
    EmptyBatchRequest(&'static str),
    #[error("Maximum number of entries per request are 10. You have sent {0}.")]
    TooManyEntriesInBatchRequest(usize),
    #[error("Id {0} repeated.")]
    BatchEntryIdsNotDistinct(String),
    #[error("A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")]
    InvalidBatchEntryId,
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("The action {0} is not valid for this endpoint.")]
    InvalidAction(String),
    /// The namespace's storage quota would be exceeded: nothing was sent.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A dependency of the store (PostgreSQL, a locked SQLite) cannot be reached; the
    /// message names it. Nothing was done.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The data disk is full: nothing was written.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl SqsError {
    /// (JSON `__type` short name, legacy query code, status, fault).
    pub fn wire(&self) -> (&'static str, &'static str, StatusCode, &'static str) {
        use SqsError::*;
        const BAD: StatusCode = StatusCode::BAD_REQUEST;
        match self {
            QueueDoesNotExist => (
                "QueueDoesNotExist",
                "AWS.SimpleQueueService.NonExistentQueue",
                BAD,
                "Sender",
            ),
            QueueNameExists(_) => ("QueueNameExists", "QueueAlreadyExists", BAD, "Sender"),
            InvalidParameterValue(_) => (
                "InvalidParameterValue",
                "InvalidParameterValue",
                BAD,
                "Sender",
            ),
            MissingParameter(_) => ("MissingParameter", "MissingParameter", BAD, "Sender"),
            InvalidAttributeName(_) => (
                "InvalidAttributeName",
                "InvalidAttributeName",
                BAD,
                "Sender",
            ),
            InvalidAttributeValue(_) => (
                "InvalidAttributeValue",
                "InvalidAttributeValue",
                BAD,
                "Sender",
            ),
            ReceiptHandleIsInvalid(_) => (
                "ReceiptHandleIsInvalid",
                "ReceiptHandleIsInvalid",
                BAD,
                "Sender",
            ),
            MessageNotInflight(_) => (
                "MessageNotInflight",
                "AWS.SimpleQueueService.MessageNotInflight",
                BAD,
                "Sender",
            ),
            EmptyBatchRequest(_) => (
                "EmptyBatchRequest",
                "AWS.SimpleQueueService.EmptyBatchRequest",
                BAD,
                "Sender",
            ),
            TooManyEntriesInBatchRequest(_) => (
                "TooManyEntriesInBatchRequest",
                "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
                BAD,
                "Sender",
            ),
            BatchEntryIdsNotDistinct(_) => (
                "BatchEntryIdsNotDistinct",
                "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                BAD,
                "Sender",
            ),
            InvalidBatchEntryId => (
                "InvalidBatchEntryId",
                "AWS.SimpleQueueService.InvalidBatchEntryId",
                BAD,
                "Sender",
            ),
            UnsupportedOperation(_) => (
                "UnsupportedOperation",
                "AWS.SimpleQueueService.UnsupportedOperation",
                BAD,
                "Sender",
            ),
            InvalidAction(_) => ("InvalidAction", "InvalidAction", BAD, "Sender"),
            QuotaExceeded(_) => (
                "QuotaExceeded",
                "QuotaExceeded",
                StatusCode::FORBIDDEN,
                "Sender",
            ),
            ServiceUnavailable(_) => (
                "ServiceUnavailable",
                "AWS.SimpleQueueService.ServiceUnavailable",
                StatusCode::SERVICE_UNAVAILABLE,
                "Receiver",
            ),
            InsufficientStorage(_) => (
                "InsufficientStorage",
                "InsufficientStorage",
                StatusCode::INSUFFICIENT_STORAGE,
                "Receiver",
            ),
            Internal(_) => (
                "InternalFailure",
                "InternalFailure",
                StatusCode::INTERNAL_SERVER_ERROR,
                "Receiver",
            ),
        }
    }
}

impl From<QueueError> for SqsError {
    fn from(e: QueueError) -> SqsError {
        match e {
            QueueError::QueueNotFound(_) => SqsError::QueueDoesNotExist,
            QueueError::Conflict(m) => SqsError::QueueNameExists(m),
            QueueError::NotInFlight { .. } => SqsError::MessageNotInflight(e.to_string()),
            QueueError::MessageTooLarge(limit) => SqsError::InvalidParameterValue(format!(
                "One or more parameters are invalid. Reason: Message must be shorter than \
                 {limit} bytes."
            )),
            QueueError::QuotaExceeded(m) => SqsError::QuotaExceeded(m),
            QueueError::Store(s @ StoreError::Unavailable { .. }) => {
                SqsError::ServiceUnavailable(s.to_string())
            }
            QueueError::Store(s @ StoreError::DiskFull(_)) => {
                SqsError::InsufficientStorage(s.to_string())
            }
            QueueError::Store(_) => {
                tracing::error!("queue store failure: {e}");
                SqsError::Internal(e.to_string())
            }
            e => SqsError::InvalidParameterValue(e.to_string()),
        }
    }
}

/// Why an SNS call failed.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    #[error("{0}")]
    NotFound(String),
    #[error("Invalid parameter: {0}")]
    InvalidParameter(String),
    #[error("There should be at least one entry in the request.")]
    EmptyBatchRequest,
    #[error("The batch request contains more entries than permissible.")]
    TooManyEntriesInBatchRequest,
    #[error("Two or more batch entries in the request have the same Id.")]
    BatchEntryIdsNotDistinct,
    #[error("The Id of a batch entry in a batch request doesn't abide by the specification.")]
    InvalidBatchEntryId,
    #[error("The action {0} is not valid for this endpoint.")]
    InvalidAction(String),
    /// A delivery to a queue would exceed the namespace's storage quota: nothing was sent.
    #[error("{0}")]
    QuotaExceeded(String),
    /// A dependency of the store cannot be reached (the message names it): nothing was sent.
    #[error("{0}")]
    ServiceUnavailable(String),
    /// The data disk is full: nothing was sent.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl SnsError {
    /// (query code, status).
    pub fn wire(&self) -> (&'static str, StatusCode) {
        match self {
            SnsError::NotFound(_) => ("NotFound", StatusCode::NOT_FOUND),
            SnsError::InvalidParameter(_) => ("InvalidParameter", StatusCode::BAD_REQUEST),
            SnsError::EmptyBatchRequest => ("EmptyBatchRequest", StatusCode::BAD_REQUEST),
            SnsError::TooManyEntriesInBatchRequest => {
                ("TooManyEntriesInBatchRequest", StatusCode::BAD_REQUEST)
            }
            SnsError::BatchEntryIdsNotDistinct => {
                ("BatchEntryIdsNotDistinct", StatusCode::BAD_REQUEST)
            }
            SnsError::InvalidBatchEntryId => ("InvalidBatchEntryId", StatusCode::BAD_REQUEST),
            SnsError::InvalidAction(_) => ("InvalidAction", StatusCode::BAD_REQUEST),
            SnsError::QuotaExceeded(_) => ("QuotaExceeded", StatusCode::FORBIDDEN),
            SnsError::ServiceUnavailable(_) => {
                ("ServiceUnavailable", StatusCode::SERVICE_UNAVAILABLE)
            }
            SnsError::InsufficientStorage(_) => {
                ("InsufficientStorage", StatusCode::INSUFFICIENT_STORAGE)
            }
            SnsError::Internal(_) => ("InternalError", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

impl From<QueueError> for SnsError {
    fn from(e: QueueError) -> SnsError {
        match e {
            QueueError::TopicNotFound(_) => SnsError::NotFound("Topic does not exist".into()),
            QueueError::SubscriptionNotFound(_) => {
                SnsError::NotFound("Subscription does not exist".into())
            }
            QueueError::QueueNotFound(q) => {
                SnsError::NotFound(format!("Endpoint queue '{q}' does not exist"))
            }
            QueueError::FunctionNotFound(f) => {
                SnsError::NotFound(format!("Endpoint function '{f}' does not exist"))
            }
            QueueError::QuotaExceeded(m) => SnsError::QuotaExceeded(m),
            QueueError::Store(s @ StoreError::Unavailable { .. }) => {
                SnsError::ServiceUnavailable(s.to_string())
            }
            QueueError::Store(s @ StoreError::DiskFull(_)) => {
                SnsError::InsufficientStorage(s.to_string())
            }
            QueueError::Store(_) => {
                tracing::error!("queue store failure: {e}");
                SnsError::Internal(e.to_string())
            }
            e => SnsError::InvalidParameter(e.to_string()),
        }
    }
}
