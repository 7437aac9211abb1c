//! The gate of the Lambda API: resolves the credentials a request names (a stored access key,
//! or a sandbox's session credential with its `X-Amz-Security-Token`, through the gateway's
//! one resolver) before reading its body, reads the body (the signature covers its hash),
//! checks the SigV4 signature with the credentials' secret, checks the key's role against
//! the access table (the Lambda API's routes) or the action's access (the other AWS APIs,
//! through [`authorize`]), and passes the [`Principal`] on to the handlers. Nothing unsigned,
//! wrongly signed, signed with expired credentials or beyond its role gets through; changes
//! are written to the namespace's audit log ([`audit`]).

use crate::sigv4::{self, SigV4Error};
use crate::{AwsApi, AwsError};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use lambent_core::limits::MAX_CODE_ZIP;
use lambent_core::tenancy::Access;
use lambent_gateway::credentials::{CredentialError, OwnSandbox, Signer};
use lambent_gateway::{App, Principal};
use std::sync::Arc;

/// The largest request: a 50 MB code zip, base64 in a JSON body.
const MAX_REQUEST_BYTES: usize = MAX_CODE_ZIP / 3 * 4 + 1024 * 1024;

pub async fn require_signature(
    State(api): State<Arc<AwsApi>>,
    request: Request,
    next: Next,
) -> Result<Response, AwsError> {
    let need = lambent_gateway::route_need(&request)?;
    let (mut parts, body) = request.into_parts();
    // Who signed, before reading a body of up to 67 MB: strangers are refused cheaply.
    let signer = signer(&api.app, &parts).await?;
    let body = lambent_gateway::body::read(body, MAX_REQUEST_BYTES, "the request").await?;
    let principal = verify(&parts, &body, &signer, &api.region, "lambda")?;
    if let Some(need) = need {
        authorize(&principal, need)?;
    }
    parts.extensions.insert(principal.clone());
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_string());
    let client = client_address(&parts);
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    if need.is_some_and(lambent_gateway::audited) {
        let status = response.status().as_u16();
        audit(&api.app, &principal, &method, &path, "", status, client).await;
    }
    Ok(response)
}

/// Refuses an action the principal's role may not do (`AccessDeniedException`).
pub fn authorize(principal: &Principal, access: Access) -> Result<(), AwsError> {
    principal.require(access).map_err(AwsError::from)
}

/// The client's address, as the listener saw it.
pub fn client_address(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

/// Writes one AWS API change to the principal's namespace's audit log.
pub async fn audit(
    app: &App,
    principal: &Principal,
    method: &str,
    action: &str,
    target: &str,
    status: u16,
    client: String,
) {
    app.audit(lambent_store::tenants::AuditEntry {
        namespace: principal.namespace.clone(),
        at_ms: lambent_core::now_ms(),
        key_id: principal.key_id.clone(),
        role: principal.role,
        method: method.into(),
        action: action.into(),
        target: target.into(),
        status,
        client,
    })
    .await;
}

/// The credentials a request's `Authorization` (and `X-Amz-Security-Token`) name, resolved
/// through the gateway's one resolver (not yet verified against the signature).
pub async fn signer(app: &App, parts: &Parts) -> Result<Signer, AwsError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(SigV4Error::Missing)?
        .to_str()
        .map_err(|_| SigV4Error::Malformed("Authorization header is not ASCII".into()))?;
    let access_key_id = sigv4::Authorization::parse(header)?.access_key_id;
    let token = match parts.headers.get("x-amz-security-token") {
        Some(v) => Some(v.to_str().map_err(|_| CredentialError::InvalidToken)?),
        None => None,
    };
    app.credentials
        .resolve(&access_key_id, token, parts.extensions.get::<OwnSandbox>())
        .await
        .map_err(|e| match e {
            CredentialError::UnknownAccessKey(id) => {
                AwsError::from(SigV4Error::UnknownAccessKey(id))
            }
            e => AwsError::from(e),
        })
}

/// Verifies a request's SigV4 signature by `signer`, scoped to `region` and `service`;
/// returns who the request acts as. Shared by every AWS-compatible API Lambent serves.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    signer: &Signer,
    region: &str,
    service: &str,
) -> Result<Principal, AwsError> {
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
    // A rotated key's old secret verifies too while its grace lasts.
    let mut result = Err(SigV4Error::Mismatch);
    for secret in signer.secrets() {
        result = sigv4::verify_signature(&signed, &authorization, secret);
        if result.is_ok() {
            break;
        }
    }
    result?;
    Ok(signer.principal())
}
