//! The asynchronous side of `/v1` (documented in `docs/api.md`): accepting async invocations
//! (`POST /v1/functions/{name}/invoke?async=true` or `Lambent-Invocation-Type: Event`), the
//! queue's depth, the dead-letter queue and its redrive, and schedules.

use crate::auth::Principal;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_core::async_invoke::MAX_ASYNC_PAYLOAD;
use lambent_events::schedule::Rule;
use lambent_events::EventsError;
use lambent_invoker::Deployment;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

/// The header that asks for an asynchronous invocation, with the value `Event`.
pub const INVOCATION_TYPE_HEADER: &str = "lambent-invocation-type";

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/async", get(queue_depth))
        .route("/v1/dlq", get(list_dead_letters))
        .route("/v1/dlq/redrive", post(redrive_all))
        .route("/v1/dlq/{id}", get(get_dead_letter))
        .route("/v1/dlq/{id}/redrive", post(redrive_one))
        .route("/v1/schedules", get(list_schedules).post(add_schedule))
        .route(
            "/v1/schedules/{name}",
            get(get_schedule).put(put_schedule).delete(delete_schedule),
        )
}

impl From<EventsError> for ApiError {
    fn from(e: EventsError) -> ApiError {
        match e {
            EventsError::InvalidSchedule(m) => ApiError::InvalidSchedule(m),
            EventsError::ScheduleExists(_) => ApiError::Conflict(e.to_string()),
            EventsError::ScheduleNotFound(_) | EventsError::DeadLetterNotFound(_) => {
                ApiError::ResourceNotFound(e.to_string())
            }
            EventsError::Store(s) => s.into(),
            EventsError::Stopped => ApiError::Internal(e.to_string()),
        }
    }
}

/// Whether an invoke request asks to run asynchronously (`?async=true`, or the header).
pub fn wants_async(query: Option<&str>, headers: &HeaderMap) -> Result<bool, ApiError> {
    let by_header = match headers.get(INVOCATION_TYPE_HEADER) {
        None => false,
        Some(v) => match v.to_str().unwrap_or("") {
            "Event" => true,
            "RequestResponse" => false,
            other => {
                return Err(ApiError::InvalidJson(format!(
                    "invalid Lambent-Invocation-Type '{other}': use Event or RequestResponse"
                )))
            }
        },
    };
    let mut by_query = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("async", "true" | "1" | "") => by_query = true,
            ("async", "false" | "0") => {}
            (key, value) => {
                return Err(ApiError::InvalidJson(format!(
                    "invalid invoke parameter '{key}={value}': the only one is async=true"
                )))
            }
        }
    }
    Ok(by_header || by_query)
}

/// Accepts an asynchronous invocation: `202 {"activation_id"}` once the event is committed.
pub async fn accept_async(
    app: &App,
    deployment: &Deployment,
    payload: Body,
    trace: Option<lambent_core::TraceContext>,
) -> Result<Response, ApiError> {
    let mut payload = body::read(payload, MAX_ASYNC_PAYLOAD, "the async invoke payload").await?;
    if payload.iter().all(u8::is_ascii_whitespace) {
        payload = Bytes::from_static(b"{}");
    } else {
        body::check_json(&payload)?;
    }
    let f = &deployment.function;
    app.registry.quotas.check_budget(&f.namespace)?;
    let id = app
        .events
        .enqueue(
            &f.namespace,
            f.name.as_str(),
            payload.to_vec(),
            "async",
            trace,
        )
        .await?;
    let headers = [("lambent-activation-id", id.clone())];
    Ok((
        StatusCode::ACCEPTED,
        headers,
        Json(json!({ "activation_id": id })),
    )
        .into_response())
}

async fn queue_depth(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Result<Json<Value>, ApiError> {
    let pending = app.events.pending(Some(&ns)).await?;
    Ok(Json(json!({ "pending": pending })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    function: Option<String>,
    limit: Option<usize>,
}

async fn list_dead_letters(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let letters = app
        .events
        .dead_letters(&ns, q.function.as_deref(), limit)
        .await?;
    Ok(Json(json!({ "dead_letters": letters })))
}

async fn get_dead_letter(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let letter = app.events.dead_letter(&ns, &id).await?;
    let mut view = serde_json::to_value(&letter).unwrap_or_default();
    view["payload"] = serde_json::from_slice(&letter.payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&letter.payload).into()));
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveQuery {
    function: Option<String>,
}

async fn redrive_all(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<RedriveQuery>,
) -> Result<Json<Value>, ApiError> {
    let redriven = app.events.redrive(&ns, None, q.function.as_deref()).await?;
    Ok(Json(json!({ "redriven": redriven })))
}

async fn redrive_one(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let redriven = app.events.redrive(&ns, Some(&id), None).await?;
    Ok(Json(json!({ "redriven": redriven })))
}

/// A schedule's body: its 256 KiB input (`lambent_events::MAX_SCHEDULE_INPUT`, checked as
/// compact JSON) with room for indentation and the other fields.
const SCHEDULE_BODY_LIMIT: usize = 1024 * 1024;

/// A schedule as a request body gives it: the target and exactly one of cron / rate / at.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    /// Only in `POST /v1/schedules` (the path names it in `PUT`).
    name: Option<String>,
    /// The function it invokes, or empty with `workflow`.
    #[serde(default)]
    function: String,
    /// The workflow it starts instead (an execution per fire, the scheduled event as input).
    workflow: Option<String>,
    cron: Option<String>,
    rate: Option<String>,
    at: Option<String>,
    tz: Option<String>,
    /// Sent on each fire instead of EventBridge's scheduled event (any JSON value).
    input: Option<Value>,
}

fn check_schedule_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidSchedule(format!(
            "invalid schedule name '{name}': use 1-64 letters, digits, '-' or '_'"
        )))
    }
}

async fn save_schedule(
    app: &App,
    ns: &str,
    name: &str,
    b: ScheduleBody,
    replace: bool,
) -> Result<Response, ApiError> {
    check_schedule_name(name)?;
    let target = match (b.function.is_empty(), &b.workflow) {
        (false, None) => {
            crate::v1::find(app, ns, &b.function).await?;
            b.function.clone()
        }
        (true, Some(w)) => {
            crate::workflow_hook::check_exists(app, ns, w).await?;
            lambent_events::destination::workflow_target(w)
        }
        _ => {
            return Err(ApiError::InvalidSchedule(
                "a schedule names exactly one of function or workflow".into(),
            ))
        }
    };
    let rule = Rule::from_parts(
        b.cron.as_deref(),
        b.rate.as_deref(),
        b.at.as_deref(),
        b.tz.as_deref(),
    )?;
    let (view, created) = app
        .events
        .put_schedule(ns, name, &target, &rule, b.input.as_ref(), replace)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn add_schedule(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, SCHEDULE_BODY_LIMIT, "the schedule").await?;
    let b: ScheduleBody = body::json(&bytes)?;
    let Some(name) = b.name.clone() else {
        return Err(ApiError::InvalidJson("missing field `name`".into()));
    };
    save_schedule(&app, &ns, &name, b, false).await
}

async fn put_schedule(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, SCHEDULE_BODY_LIMIT, "the schedule").await?;
    let b: ScheduleBody = body::json(&bytes)?;
    if b.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::InvalidJson(format!(
            "the body names schedule '{}' but the path names '{name}'",
            b.name.unwrap_or_default()
        )));
    }
    save_schedule(&app, &ns, &name, b, true).await
}

async fn list_schedules(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Result<Json<Value>, ApiError> {
    let list = app.events.schedules(&ns).await?;
    Ok(Json(json!({ "schedules": list })))
}

async fn get_schedule(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<lambent_events::ScheduleView>, ApiError> {
    Ok(Json(app.events.schedule(&ns, &name).await?))
}

async fn delete_schedule(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.events.delete_schedule(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn async_is_asked_by_query_or_header() {
        let none = HeaderMap::new();
        assert!(!wants_async(None, &none).unwrap());
        assert!(wants_async(Some("async=true"), &none).unwrap());
        assert!(!wants_async(Some("async=false"), &none).unwrap());
        assert!(wants_async(Some("x=1"), &none).is_err());
        let mut event = HeaderMap::new();
        event.insert(INVOCATION_TYPE_HEADER, "Event".parse().unwrap());
        assert!(wants_async(None, &event).unwrap());
        event.insert(INVOCATION_TYPE_HEADER, "Bogus".parse().unwrap());
        assert!(wants_async(None, &event).is_err());
    }
}
