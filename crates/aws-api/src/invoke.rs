//! `Invoke`: `POST /2015-03-31/functions/{FunctionName}/invocations[?Qualifier=]` with
//! `X-Amz-Invocation-Type` `RequestResponse` (the result, `X-Amz-Function-Error` when the
//! function failed, `X-Amz-Log-Result` with `X-Amz-Log-Type: Tail`), `Event` (202, run in the
//! background) or `DryRun` (204 once the function resolves). Every invocation names the version
//! it ran in `X-Amz-Executed-Version`; an alias with weights picks it per invocation.

use crate::functions::{ApiState, Ns, QualifierQuery};
use crate::{AwsApi, AwsError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use base64::Engine;
use bytes::Bytes;
use lambent_core::limits::MAX_SYNC_PAYLOAD;
use lambent_core::ActivationStatus;
use lambent_gateway::{body, Principal};
use lambent_invoker::InvokeRequest;
use std::sync::Arc;

/// The largest `Event` payload, as on Lambda.
pub const MAX_EVENT_PAYLOAD: usize = 256 * 1024;
/// How much of the end of the logs `X-Amz-Log-Type: Tail` returns.
pub const LOG_TAIL_BYTES: usize = 4 * 1024;

pub fn routes() -> Router<Arc<AwsApi>> {
    Router::new().route("/2015-03-31/functions/{name}/invocations", post(invoke))
}

enum InvocationType {
    RequestResponse,
    Event,
    DryRun,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn invoke(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
    payload: Bytes,
) -> Result<Response, AwsError> {
    let kind = match header(&headers, "x-amz-invocation-type") {
        None | Some("RequestResponse") => InvocationType::RequestResponse,
        Some("Event") => InvocationType::Event,
        Some("DryRun") => InvocationType::DryRun,
        Some(other) => {
            return Err(AwsError::InvalidParameterValue(format!(
                "X-Amz-Invocation-Type '{other}' is not one of RequestResponse, Event, DryRun"
            )))
        }
    };
    let tail = match header(&headers, "x-amz-log-type") {
        None | Some("None") => false,
        Some("Tail") => true,
        Some(other) => {
            return Err(AwsError::InvalidParameterValue(format!(
                "X-Amz-Log-Type '{other}' is not one of None, Tail"
            )))
        }
    };
    let f = api.scope(&ns).parse(&name, q.qualifier.as_deref())?;
    api.live(&ns, &f.name).await?;
    let resolved = api
        .app
        .registry
        .resolve(&ns, &f.name, f.qualifier.as_deref())?;
    let limit = match kind {
        InvocationType::Event => MAX_EVENT_PAYLOAD,
        _ => MAX_SYNC_PAYLOAD,
    };
    if payload.len() > limit {
        return Err(AwsError::RequestTooLarge(format!(
            "Request must be smaller than {limit} bytes for the {} invocation type",
            header(&headers, "x-amz-invocation-type").unwrap_or("RequestResponse")
        )));
    }
    let payload = if payload.iter().all(u8::is_ascii_whitespace) {
        Bytes::from_static(b"{}")
    } else {
        body::check_json(&payload).map_err(|_| {
            AwsError::InvalidRequestContent("Could not parse request body into json".into())
        })?;
        payload
    };
    let client_context = header(&headers, "x-amz-client-context")
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    AwsError::InvalidRequestContent(
                        "X-Amz-Client-Context must be base64 of a JSON object".into(),
                    )
                })
        })
        .transpose()?;
    let mut response_headers = HeaderMap::new();
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            response_headers.insert(name, v);
        }
    };
    set("x-amz-executed-version", &resolved.executed_version);
    match kind {
        InvocationType::DryRun => Ok((StatusCode::NO_CONTENT, response_headers).into_response()),
        InvocationType::Event => {
            // Durable before the 202: Lambent's async queue (retries, dead letters). The event
            // runs the function's current code ($LATEST) whatever the qualifier.
            let function = &resolved.deployment.function;
            api.app.registry.quotas.check_budget(&function.namespace)?;
            let id = api
                .app
                .events
                .enqueue(
                    &function.namespace,
                    function.name.as_str(),
                    payload.to_vec(),
                    "async",
                    lambent_gateway::trace_context(&headers),
                )
                .await
                .map_err(|e| AwsError::from(lambent_gateway::ApiError::from(e)))?;
            set("x-amzn-requestid", &id);
            Ok((StatusCode::ACCEPTED, response_headers).into_response())
        }
        InvocationType::RequestResponse => {
            let request = InvokeRequest {
                payload,
                trigger: "api".into(),
                client_context,
                qualifier: f.qualifier.clone(),
                trace: lambent_core::TraceOrigin::of(lambent_gateway::trace_context(&headers)),
                ..Default::default()
            };
            let result = api.app.run(&resolved.deployment, request).await;
            let a = &result.activation;
            let message = a.error_message.clone().unwrap_or_default();
            match a.status {
                ActivationStatus::Throttled => {
                    return Err(match lambent_gateway::ApiError::of_refused(a) {
                        Some(budget @ lambent_gateway::ApiError::BudgetExhausted(_)) => {
                            budget.into()
                        }
                        _ => AwsError::TooManyRequests {
                            reason: crate::error::throttle_reason(&message),
                            message: format!("Rate Exceeded: {message}"),
                        },
                    })
                }
                ActivationStatus::PlatformError => return Err(AwsError::Service(message)),
                ActivationStatus::Success => {}
                _ => set("x-amz-function-error", "Unhandled"),
            }
            set("x-amzn-requestid", &a.id);
            if tail {
                set("x-amz-log-result", &log_tail(&a.logs));
            }
            set("content-type", "application/json");
            Ok((StatusCode::OK, response_headers, result.body).into_response())
        }
    }
}

/// Base64 of the last [`LOG_TAIL_BYTES`] of an activation's logs.
fn log_tail(logs: &str) -> String {
    let bytes = logs.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(LOG_TAIL_BYTES)..];
    base64::engine::general_purpose::STANDARD.encode(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_is_the_last_4_kb() {
        let logs = format!("{}END", "x".repeat(10_000));
        let tail = base64::engine::general_purpose::STANDARD
            .decode(log_tail(&logs))
            .unwrap();
        assert_eq!(tail.len(), LOG_TAIL_BYTES);
        assert!(tail.ends_with(b"xEND"));
        assert_eq!(log_tail(""), "");
    }
}
