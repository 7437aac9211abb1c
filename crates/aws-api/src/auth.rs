//! The gate of the Lambda API: looks up the access key a request names (before reading its
//! body), reads the body (the signature covers its hash), checks the SigV4 signature with the
//! key's secret, and passes the key's namespace on to the handlers. Nothing unsigned or wrongly
//! signed gets through. [`signer`] and [`verify`] are the same check for the other AWS-compatible
//! APIs (Step Functions, service `states`).

use crate::sigv4::{self, SigV4Error};
use crate::{AwsApi, AwsError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use lambent_core::limits::MAX_CODE_ZIP;
use lambent_gateway::{ApiError, App, Namespace};
use lambent_store::lambda::AccessKey;
use std::sync::Arc;

/// The largest request: a 50 MB code zip, base64 in a JSON body.
const MAX_REQUEST_BYTES: usize = MAX_CODE_ZIP / 3 * 4 + 1024 * 1024;

pub async fn require_signature(
    State(api): State<Arc<AwsApi>>,
    request: Request,
    next: Next,
) -> Result<Response, AwsError> {
    let (mut parts, body) = request.into_parts();
    // Who signed, before reading a body of up to 67 MB: strangers are refused cheaply.
    let key = signer(&api.app, &parts).await?;
    let body = lambent_gateway::body::read(body, MAX_REQUEST_BYTES, "the request").await?;
    let namespace = verify(&parts, &body, &key, &api.region, "lambda")?;
    parts.extensions.insert(Namespace(namespace));
    Ok(next.run(Request::from_parts(parts, Body::from(body))).await)
}

/// The access key a request's `Authorization` header names (not yet verified).
pub async fn signer(app: &App, parts: &Parts) -> Result<AccessKey, AwsError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(SigV4Error::Missing)?
        .to_str()
        .map_err(|_| SigV4Error::Malformed("Authorization header is not ASCII".into()))?;
    let access_key_id = sigv4::Authorization::parse(header)?.access_key_id;
    Ok(app
        .store
        .access_key(&access_key_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(SigV4Error::UnknownAccessKey(access_key_id))?)
}

/// Verifies a request's SigV4 signature by `key`, scoped to `region` and `service`; returns the
/// key's namespace. Shared by every AWS-compatible API Lambent serves.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    key: &AccessKey,
    region: &str,
    service: &str,
) -> Result<String, AwsError> {
    let signed = sigv4::Request {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body,
    };
    let expected = sigv4::Expected {
        region,
        service,
        now: time::OffsetDateTime::now_utc(),
    };
    let authorization = sigv4::check_request(&signed, &expected)?;
    sigv4::verify_signature(&signed, &authorization, &key.secret_access_key)?;
    Ok(key.namespace.clone())
}
