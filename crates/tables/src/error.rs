//! The engine's error type: one variant per DynamoDB error type the engine can raise, each
//! carrying AWS's message text, so the protocol adapter renders
//! `{"__type": "com.amazonaws.dynamodb.v20120810#<type>", "message": <message>}` from
//! [`TableError::error_type`] and the `Display` text alone.

use crate::value::Item;

/// The namespace DynamoDB prefixes its error types with in JSON 1.0 responses.
pub const ERROR_TYPE_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// An error DynamoDB would answer with; `Display` is the exact `message` of the response.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TableError {
    /// `ValidationException`: the request is malformed (bad values, expressions, keys, sizes).
    #[error("{0}")]
    Validation(String),
    /// `SerializationException`: the request body does not have the protocol's shape.
    #[error("{0}")]
    Serialization(String),
    /// `ConditionalCheckFailedException`; `item` is the current item when the request asked
    /// for it with `ReturnValuesOnConditionCheckFailure: ALL_OLD`.
    #[error("The conditional request failed")]
    ConditionalCheckFailed { item: Option<Box<Item>> },
    /// `ResourceNotFoundException`, e.g. "Requested resource not found".
    #[error("{0}")]
    ResourceNotFound(String),
    /// `ResourceInUseException`, e.g. "Table already exists: T".
    #[error("{0}")]
    ResourceInUse(String),
    /// `LimitExceededException`.
    #[error("{0}")]
    LimitExceeded(String),
    /// `TransactionCanceledException`, one reason per action of the transaction, in order.
    #[error("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
        .reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>().join(", "))]
    TransactionCanceled { reasons: Vec<CancellationReason> },
    /// `IdempotentParameterMismatchException`: a `ClientRequestToken` reused for another
    /// request.
    #[error("{0}")]
    IdempotentParameterMismatch(String),
    /// `QuotaExceeded` (Lambent's): the namespace's storage quota would be exceeded; nothing
    /// was written.
    #[error("{0}")]
    QuotaExceeded(String),
    /// `InternalServerError`: a fault of the platform, not the caller.
    #[error("{0}")]
    Internal(String),
}

/// One entry of `TransactionCanceledException.CancellationReasons`.
#[derive(Debug, Clone, PartialEq)]
pub struct CancellationReason {
    /// `None`, `ConditionalCheckFailed`, `ValidationError`, `TransactionConflict`, …
    pub code: String,
    pub message: Option<String>,
    pub item: Option<Item>,
}

impl TableError {
    /// A `ValidationException` with the given message.
    pub fn validation(message: impl Into<String>) -> Self {
        TableError::Validation(message.into())
    }

    /// The DynamoDB error type name, e.g. `ValidationException`.
    pub fn error_type(&self) -> &'static str {
        match self {
            TableError::Validation(_) => "ValidationException",
            TableError::Serialization(_) => "SerializationException",
            TableError::ConditionalCheckFailed { .. } => "ConditionalCheckFailedException",
            TableError::ResourceNotFound(_) => "ResourceNotFoundException",
            TableError::ResourceInUse(_) => "ResourceInUseException",
            TableError::LimitExceeded(_) => "LimitExceededException",
            TableError::TransactionCanceled { .. } => "TransactionCanceledException",
            TableError::IdempotentParameterMismatch(_) => "IdempotentParameterMismatchException",
            TableError::QuotaExceeded(_) => "QuotaExceeded",
            TableError::Internal(_) => "InternalServerError",
        }
    }

    /// The `__type` of the JSON error body.
    pub fn wire_type(&self) -> String {
        format!("{ERROR_TYPE_PREFIX}{}", self.error_type())
    }

    /// The HTTP status DynamoDB answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            TableError::Internal(_) => 500,
            TableError::QuotaExceeded(_) => 403,
            _ => 400,
        }
    }

    /// Maps an error from deserializing a request with serde_json: the attribute-value checks
    /// made while deserializing (see [`crate::value`]) become `ValidationException`s with their
    /// AWS message (serde_json's " at line L column C" suffix removed), anything else about the
    /// body's shape is a `SerializationException`.
    pub fn from_json(err: &serde_json::Error) -> Self {
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(i) if err.line() > 0 => &text[..i],
            _ => text.as_str(),
        };
        if err.is_data() && crate::value::is_validation_message(message) {
            TableError::Validation(message.to_string())
        } else {
            TableError::Serialization(message.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_map_to_validation_or_serialization() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        #[allow(dead_code)]
        struct PutItem {
            table_name: String,
            item: Item,
        }
        let cases = [
            (
                r#"{"TableName": "t", "Item": {"a": {"SS": []}}}"#,
                TableError::validation(
                    "One or more parameter values were invalid: An string set  may not be empty",
                ),
            ),
            (
                r#"{"TableName": "t", "Item": {"a": {"N": "1e999"}}}"#,
                TableError::validation(
                    "Number overflow. Attempting to store a number with magnitude larger than \
                     supported range",
                ),
            ),
            (
                r#"{"TableName": "t", "Item": {"a": {"S": 1}}}"#,
                TableError::Serialization("invalid type: integer `1`, expected a string".into()),
            ),
            (
                r#"{"TableName": "t", "Item": {"a": "#,
                TableError::Serialization("EOF while parsing a value".into()),
            ),
        ];
        for (body, want) in cases {
            let err = serde_json::from_str::<PutItem>(body).unwrap_err();
            assert_eq!(TableError::from_json(&err), want, "{body}");
        }
    }

    #[test]
    fn types_and_messages() {
        let cases: Vec<(TableError, &str, &str, u16)> =
            vec![
            (TableError::validation("x"), "ValidationException", "x", 400),
            (
                TableError::ConditionalCheckFailed { item: None },
                "ConditionalCheckFailedException",
                "The conditional request failed",
                400,
            ),
            (
                TableError::TransactionCanceled {
                    reasons: vec![
                        CancellationReason {
                            code: "ConditionalCheckFailed".into(),
                            message: Some("The conditional request failed".into()),
                            item: None,
                        },
                        CancellationReason { code: "None".into(), message: None, item: None },
                    ],
                },
                "TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons \
                 [ConditionalCheckFailed, None]",
                400,
            ),
            (TableError::Internal("boom".into()), "InternalServerError", "boom", 500),
        ];
        for (err, ty, msg, status) in cases {
            assert_eq!(err.error_type(), ty);
            assert_eq!(
                err.wire_type(),
                format!("com.amazonaws.dynamodb.v20120810#{ty}")
            );
            assert_eq!(err.to_string(), msg);
            assert_eq!(err.http_status(), status);
        }
    }
}
