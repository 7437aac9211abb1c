//! Serving routed requests: the listener's fallback after Lambent's own paths. Matches the
//! compiled table, answers CORS preflights, checks the route's API key and body limit, invokes
//! the function with the event of the route's payload format (2.0 or REST's 1.0) (trigger `http`) and maps its result back, or starts the
//! route's workflow with the body as input (through the [`WorkflowHook`]). Errors take API
//! Gateway's shape, `{"message": …}`, so that a user's API looks like their API.

use super::apigw::{self, HttpRequest};
use super::table::Matched;
use crate::workflow_hook::WorkflowHookError;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_core::route::{Cors, PayloadFormat, RouteAuth, RouteTarget, RESERVED_PREFIXES};
use lambent_core::tenancy::Access;
use lambent_core::ActivationStatus;
use lambent_invoker::InvokeRequest;
use std::net::SocketAddr;
use std::sync::Arc;

/// API Gateway's error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    NotFound,
    Unauthorized,
    Forbidden,
    TooLarge,
    BadRequest,
    Throttled,
    /// The namespace's hard monthly budget is spent.
    BudgetExhausted,
    /// The function failed, timed out or answered something that is not a response.
    BadGateway,
    /// The same for a REST (payload 1.0) route, whose message API Gateway spells differently.
    RestBadGateway,
    /// The route's function is gone, or Lambent failed.
    Internal,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        self.status_and_message().0
    }

    fn status_and_message(&self) -> (StatusCode, &'static str) {
        match self {
            Refusal::NotFound => (StatusCode::NOT_FOUND, "Not Found"),
            Refusal::Unauthorized => (StatusCode::UNAUTHORIZED, "Unauthorized"),
            Refusal::Forbidden => (StatusCode::FORBIDDEN, "Forbidden"),
            Refusal::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
            Refusal::BadRequest => (StatusCode::BAD_REQUEST, "Bad Request"),
            Refusal::Throttled => (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"),
            Refusal::BudgetExhausted => (StatusCode::PAYMENT_REQUIRED, "Budget Exhausted"),
            Refusal::BadGateway => (StatusCode::BAD_GATEWAY, "Internal Server Error"),
            Refusal::RestBadGateway => (StatusCode::BAD_GATEWAY, "Internal server error"),
            Refusal::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = self.status_and_message();
        (
            status,
            axum::Json(serde_json::json!({ "message": message })),
        )
            .into_response()
    }
}

fn is_reserved(path: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| {
        path == *p
            || path
                .strip_prefix(p)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The host a request was sent to: its `Host` header (HTTP/1.1), else the URI's authority
/// (HTTP/2's `:authority`).
fn host_of(request: &Request) -> Option<&str> {
    match request.headers().get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => request.uri().host(),
    }
}

/// The fallback handler of the main listener.
pub async fn serve(State(app): State<Arc<App>>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    if is_reserved(&path) {
        return ApiError::NotFound(path).into_response();
    }
    let origin = request.headers().get(header::ORIGIN).cloned();
    if let Some(preflight) = preflight(&app, &request, &path) {
        return preflight;
    }
    let Some(matched) = app
        .routes
        .lookup(host_of(&request), request.method().as_str(), &path)
    else {
        return Refusal::NotFound.into_response();
    };
    let cors = matched.route.cors.clone();
    let mut response = match invoke(&app, matched, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(),
    };
    if let (Some(cors), Some(origin)) = (cors, origin) {
        add_cors_headers(&cors, &origin, response.headers_mut());
    }
    response
}

/// Answers a CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`)
/// for a route with CORS settings; `None` lets the request through as a plain `OPTIONS`.
fn preflight(app: &App, request: &Request, path: &str) -> Option<Response> {
    if request.method() != Method::OPTIONS {
        return None;
    }
    let headers = request.headers();
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let wanted = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)?
        .to_str()
        .ok()?;
    let matched = app
        .routes
        .lookup(host_of(request), &wanted.to_ascii_uppercase(), path)?;
    let cors = matched.route.cors.as_ref()?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let Some(allowed) = cors.allowed_origin(origin) else {
        return Some(response);
    };
    let out = response.headers_mut();
    set(out, header::ACCESS_CONTROL_ALLOW_ORIGIN, &allowed);
    if allowed != "*" {
        set(out, header::VARY, "Origin");
    }
    let methods = if cors.allow_methods.is_empty() {
        matched.route.method.replace("ANY", "*")
    } else {
        cors.allow_methods.join(",")
    };
    set(out, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
    let requested_headers = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok());
    let allow_headers = if cors.allow_headers.iter().any(|h| h == "*") {
        requested_headers.map(str::to_string)
    } else if cors.allow_headers.is_empty() {
        None
    } else {
        Some(cors.allow_headers.join(","))
    };
    if let Some(h) = allow_headers {
        set(out, header::ACCESS_CONTROL_ALLOW_HEADERS, &h);
    }
    if let Some(age) = cors.max_age {
        set(out, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
    }
    if cors.allow_credentials {
        set(out, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
    Some(response)
}

/// The CORS headers of an actual (not preflight) response; they override the function's.
fn add_cors_headers(cors: &Cors, origin: &HeaderValue, out: &mut HeaderMap) {
    let Some(allowed) = origin.to_str().ok().and_then(|o| cors.allowed_origin(o)) else {
        return;
    };
    set(out, header::ACCESS_CONTROL_ALLOW_ORIGIN, &allowed);
    if allowed != "*" {
        out.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    if !cors.expose_headers.is_empty() {
        set(
            out,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            &cors.expose_headers.join(","),
        );
    }
    if cors.allow_credentials {
        set(out, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
    }
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Checks the route's key, reads the body within the route's limit, invokes, maps the result.
async fn invoke(app: &App, matched: Matched, request: Request) -> Result<Response, Refusal> {
    let route = &matched.route;
    let (parts, body) = request.into_parts();
    let mut headers = parts.headers;
    if route.auth == RouteAuth::Key {
        check_key(app, &route.namespace, &mut headers).await?;
    }
    let limit = route.max_body_bytes as usize;
    let body = body::read(body, limit, "the request body")
        .await
        .map_err(|e| match e {
            ApiError::PayloadTooLarge { .. } => Refusal::TooLarge,
            _ => Refusal::BadRequest,
        })?;
    let function = match &route.target {
        RouteTarget::Function(f) => f,
        RouteTarget::Workflow(w) => {
            let trace = crate::trace_context(&headers);
            return start_workflow(app, route, w, &body, trace).await;
        }
    };
    let Some(deployment) = app.registry.lookup(&route.namespace, function.as_str()) else {
        tracing::warn!(
            "route '{}' names function '{function}', which does not exist",
            route.key(),
        );
        return Err(Refusal::Internal);
    };
    let request_id = lambent_core::new_activation_id();
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let protocol = format!("{:?}", parts.version);
    let request = HttpRequest {
        method: parts.method.as_str(),
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: &body,
        protocol: &protocol,
        source_ip,
        route_key: route.key(),
        resource: &route.path,
        path_parameters: &matched.params,
        request_id: &request_id,
        account_id: &route.namespace,
        time_ms: lambent_core::now_ms(),
    };
    let (event, bad_gateway) = match route.payload {
        PayloadFormat::V2 => (apigw::request_event(&request), Refusal::BadGateway),
        PayloadFormat::V1 => (apigw::request_event_v1(&request), Refusal::RestBadGateway),
    };
    let payload = serde_json::to_vec(&event).map_err(|_| Refusal::Internal)?;
    let result = app
        .run(
            &deployment,
            InvokeRequest {
                payload: payload.into(),
                trigger: "http".into(),
                request_id: Some(request_id.clone()),
                trace: lambent_core::TraceOrigin {
                    context: crate::trace_context(&headers),
                    http: Some(lambent_core::HttpTrigger {
                        method: parts.method.to_string(),
                        route: route.path.clone(),
                        path: parts.uri.path().to_string(),
                        status: None,
                    }),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await;
    let answer = answer(route, function.as_str(), &result, bad_gateway, &request_id);
    let status = match &answer {
        Ok(response) => response.status(),
        Err(refusal) => refusal.status(),
    };
    app.answered(result, status.as_u16());
    answer
}

/// The response to a route's invocation: the function's result mapped by the route's payload
/// format, or the refusal its failure (or a malformed result) gets.
fn answer(
    route: &lambent_core::Route,
    function: &str,
    result: &lambent_invoker::InvokeResult,
    bad_gateway: Refusal,
    request_id: &str,
) -> Result<Response, Refusal> {
    match result.activation.status {
        ActivationStatus::Success => {}
        ActivationStatus::Throttled => {
            return Err(match ApiError::of_refused(&result.activation) {
                Some(ApiError::BudgetExhausted(_)) => Refusal::BudgetExhausted,
                _ => Refusal::Throttled,
            })
        }
        ActivationStatus::PlatformError => return Err(Refusal::Internal),
        _ => return Err(bad_gateway),
    }
    let mapped = match route.payload {
        PayloadFormat::V2 => apigw::response(&result.body),
        PayloadFormat::V1 => apigw::response_v1(&result.body),
    };
    let mapped = mapped.map_err(|e| {
        tracing::info!(
            "route '{}': function '{function}' answered no valid response: {e}",
            route.key(),
        );
        bad_gateway
    })?;
    let status = StatusCode::from_u16(mapped.status).map_err(|_| bad_gateway)?;
    let mut response = (status, Body::from(mapped.body)).into_response();
    *response.headers_mut() = mapped.headers;
    set(
        response.headers_mut(),
        header::HeaderName::from_static("apigw-requestid"),
        request_id,
    );
    Ok(response)
}

/// A route to a workflow: the body (JSON; empty means `{}`) is the execution's input.
async fn start_workflow(
    app: &App,
    route: &lambent_core::Route,
    workflow: &str,
    body: &[u8],
    trace: Option<lambent_core::TraceContext>,
) -> Result<Response, Refusal> {
    let input = match std::str::from_utf8(body).map(str::trim) {
        Ok("") => "{}",
        Ok(text) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => text,
        _ => return Err(Refusal::BadRequest),
    };
    let Some(hook) = app.workflows.get() else {
        tracing::warn!("route '{}': this node runs no workflows", route.key());
        return Err(Refusal::Internal);
    };
    match hook
        .serve_route(&route.namespace, workflow, input, trace)
        .await
    {
        Ok(answer) => {
            let status = StatusCode::from_u16(answer.status).map_err(|_| Refusal::Internal)?;
            Ok((status, axum::Json(answer.body)).into_response())
        }
        Err(WorkflowHookError::Invalid(e)) => {
            tracing::info!("route '{}': {e}", route.key());
            Err(Refusal::BadRequest)
        }
        Err(e) => {
            tracing::warn!("route '{}' to workflow '{workflow}': {e}", route.key());
            Err(Refusal::Internal)
        }
    }
}

/// An API key of the route's namespace whose role may invoke, from `Authorization: Bearer` or `x-api-key`. The
/// header that carried it is not passed on to the function.
async fn check_key(app: &App, namespace: &str, headers: &mut HeaderMap) -> Result<(), Refusal> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|k| (header::AUTHORIZATION, k.trim().to_string()));
    let x_api_key = || {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| {
                (
                    header::HeaderName::from_static("x-api-key"),
                    k.trim().to_string(),
                )
            })
    };
    let Some((carrier, key)) = bearer.or_else(x_api_key).filter(|(_, k)| !k.is_empty()) else {
        return Err(Refusal::Unauthorized);
    };
    match app.keys.principal(app.store.as_ref(), &key).await {
        Ok(Some(p)) if p.namespace == namespace && p.role.may(Access::Invoke) => {
            headers.remove(carrier);
            Ok(())
        }
        Ok(Some(_)) => Err(Refusal::Forbidden),
        Ok(None) => Err(Refusal::Unauthorized),
        Err(_) => Err(Refusal::Internal),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_prefixes_are_whole_segments() {
        assert!(is_reserved("/v1/x"));
        assert!(is_reserved("/healthz"));
        assert!(is_reserved("/2015-03-31/functions"));
        assert!(!is_reserved("/v1beta"));
        assert!(!is_reserved("/users"));
    }
}
