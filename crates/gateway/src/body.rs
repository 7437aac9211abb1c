//! Reading request bodies with a size limit that answers `413` in the API's JSON shape, and
//! parsing JSON bodies into `400 InvalidJson` errors that say what is wrong.

use crate::ApiError;
use axum::body::Body;
use bytes::Bytes;
use serde::de::DeserializeOwned;

/// Reads a whole body of at most `limit` bytes.
pub async fn read(body: Body, limit: usize, what: &'static str) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge {
        what,
        limit_mb: limit / (1024 * 1024),
    };
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes),
        Err(e) if is_length_limit(&e) => Err(too_large()),
        Err(e) => Err(ApiError::InvalidJson(format!(
            "could not read the request body: {e}"
        ))),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

/// Parses a JSON body into `T`.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::InvalidJson(format!("invalid JSON body: {e}")))
}

/// Parses a JSON body into `T`; an empty (or all-whitespace) body is `T::default()`.
pub fn json_or_default<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        json(bytes)
    }
}

/// Checks that a body is one JSON value, without building it.
pub fn check_json(bytes: &[u8]) -> Result<(), ApiError> {
    json::<serde::de::IgnoredAny>(bytes).map(|_| ())
}
