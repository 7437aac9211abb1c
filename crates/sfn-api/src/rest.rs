//! Workflows under `/v1` (API-key authenticated, for the CLI and `lambent deploy`): state
//! machines named within the caller's namespace and their executions, over the same
//! [`Workflows`] executor calls as the AWS Step Functions API (this is a second protocol
//! adapter, with Lambent's JSON shapes and `{"error": {"code", "message"}}` errors).
//!
//! - `GET /v1/workflows`, `PUT|GET|DELETE /v1/workflows/{name}`
//! - `POST|GET /v1/workflows/{name}/executions`, `GET …/executions/{execution}`,
//!   `GET …/executions/{execution}/history`, `POST …/executions/{execution}/stop`
//! - `GET /v1/usage/transitions?since_ms=`: state transitions and their cost per workflow
//!
//! `docs/api.md` describes each.

use crate::error::SfnError;
use crate::executor::{check_kind, Workflows, EXPRESS};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lambent_gateway::Principal;
use lambent_store::workflows::{StoredExecution, StoredStateMachine};
use lambent_workflows::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The largest body: a 1 MiB definition or a 256 KiB input, with room for the envelope.
const MAX_BODY: usize = 2 * 1024 * 1024;

/// The routes, behind the API-key check of the rest of `/v1`.
pub fn routes(workflows: Arc<Workflows>) -> Router {
    let app = workflows.app.clone();
    Router::new()
        .route("/v1/workflows", get(list))
        .route(
            "/v1/workflows/{name}",
            get(describe).put(deploy).delete(remove),
        )
        .route(
            "/v1/workflows/{name}/executions",
            get(executions).post(start),
        )
        .route(
            "/v1/workflows/{name}/executions/{execution}",
            get(execution),
        )
        .route(
            "/v1/workflows/{name}/executions/{execution}/history",
            get(history),
        )
        .route(
            "/v1/workflows/{name}/executions/{execution}/stop",
            post(stop),
        )
        .route("/v1/usage/transitions", get(usage))
        .route_layer(axum::middleware::from_fn_with_state(
            app,
            lambent_gateway::require_key,
        ))
        .with_state(workflows)
}

/// An executor error in `/v1`'s shape: AWS's exception name as the code, and a status that
/// says what kind of refusal it is.
pub struct RestError(pub SfnError);

impl From<SfnError> for RestError {
    fn from(e: SfnError) -> Self {
        RestError(e)
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            SfnError::StateMachineDoesNotExist(_) | SfnError::ExecutionDoesNotExist(_) => {
                StatusCode::NOT_FOUND
            }
            SfnError::StateMachineAlreadyExists(_)
            | SfnError::ExecutionAlreadyExists(_)
            | SfnError::Conflict(_) => StatusCode::CONFLICT,
            other => other.status(),
        };
        let body = json!({"error": {"code": self.0.code(), "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

type St = State<Arc<Workflows>>;
type Ns = Extension<Principal>;
type Answer = Result<Response, RestError>;

/// A state machine as `/v1` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowView {
    pub name: String,
    pub arn: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub revision: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// The definition (JSON), in `GET /v1/workflows/{name}` and deploy answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<Value>,
}

impl WorkflowView {
    fn of(sm: &StoredStateMachine, with_definition: bool) -> Self {
        WorkflowView {
            name: sm.name.clone(),
            arn: sm.arn.clone(),
            kind: sm.kind.clone(),
            revision: sm.revision,
            created_ms: sm.created_ms,
            updated_ms: sm.updated_ms,
            definition: with_definition.then(|| {
                serde_json::from_str(&sm.definition)
                    .unwrap_or_else(|_| Value::String(sm.definition.clone()))
            }),
        }
    }
}

/// An execution as `/v1` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecutionView {
    pub arn: String,
    pub name: String,
    pub workflow: String,
    pub status: String,
    pub start_ms: i64,
    pub stop_ms: Option<i64>,
    pub transitions: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into()))
}

impl ExecutionView {
    fn of(e: &StoredExecution, with_data: bool) -> Self {
        ExecutionView {
            arn: e.arn.clone(),
            name: e.name.clone(),
            workflow: e
                .state_machine_arn
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .into(),
            status: e.status.clone(),
            start_ms: e.start_ms,
            stop_ms: e.stop_ms,
            transitions: e.transitions,
            input: with_data.then(|| json_text(&e.input)),
            output: e.output.as_deref().filter(|_| with_data).map(json_text),
            error: e.error.clone(),
            cause: e.cause.clone(),
        }
    }
}

fn read_body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, SfnError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| SfnError::Validation(format!("invalid JSON body: {e}")))
}

async fn body<T: serde::de::DeserializeOwned + Default>(
    body: axum::body::Body,
) -> Result<T, SfnError> {
    let bytes = lambent_gateway::body::read(body, MAX_BODY, "the request")
        .await
        .map_err(|e| SfnError::Validation(e.to_string()))?;
    read_body(&bytes)
}

async fn list(State(wf): St, Extension(Principal { namespace: ns, .. }): Ns) -> Answer {
    let all = wf.list_state_machines(&ns).await?;
    let views: Vec<WorkflowView> = all.iter().map(|sm| WorkflowView::of(sm, false)).collect();
    Ok(Json(json!({ "workflows": views })).into_response())
}

async fn describe(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Answer {
    let sm = wf
        .state_machine(&ns, &wf.state_machine_arn(&ns, &name))
        .await?;
    Ok(Json(WorkflowView::of(&sm, true)).into_response())
}

/// `PUT /v1/workflows/{name}`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The definition: a JSON object, or its text.
    pub definition: Value,
    /// `STANDARD` (default) or `EXPRESS`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Deployed {
    Created,
    Updated,
    Unchanged,
}

async fn deploy(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let req: DeployRequest = body(request.into_body()).await?;
    let definition = match req.definition {
        Value::String(text) => text,
        Value::Null => {
            return Err(SfnError::Validation("the body names no definition".into()).into())
        }
        other => serde_json::to_string_pretty(&other).expect("JSON serializes"),
    };
    let (sm, deployed) =
        deploy_state_machine(&wf, &ns, &name, &definition, req.kind.as_deref()).await?;
    let mut answer = serde_json::to_value(WorkflowView::of(&sm, true)).expect("serializes");
    answer["deployed"] = json!(deployed);
    let status = match deployed {
        Deployed::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(answer)).into_response())
}

/// Creates the state machine, or updates its definition: a deploy, idempotent. Its type
/// cannot change (as on AWS): that is a conflict.
pub async fn deploy_state_machine(
    wf: &Workflows,
    ns: &str,
    name: &str,
    definition: &str,
    kind: Option<&str>,
) -> Result<(StoredStateMachine, Deployed), SfnError> {
    let arn = wf.state_machine_arn(ns, name);
    let kind = kind.map(str::to_ascii_uppercase);
    let wanted = check_kind(kind.as_deref())?;
    let existing = match wf.state_machine(ns, &arn).await {
        Ok(sm) => Some(sm),
        Err(SfnError::StateMachineDoesNotExist(_)) => None,
        Err(e) => return Err(e),
    };
    let Some(sm) = existing else {
        let sm = wf
            .create_state_machine(ns, name, definition, Some(wanted), "")
            .await?;
        return Ok((sm, Deployed::Created));
    };
    if sm.kind != wanted {
        return Err(SfnError::Conflict(format!(
            "workflow '{name}' is {}: a state machine's type cannot change; remove it first",
            sm.kind
        )));
    }
    if sm.definition == definition {
        return Ok((sm, Deployed::Unchanged));
    }
    let sm = wf
        .update_state_machine(ns, &arn, Some(definition), None)
        .await?;
    Ok((sm, Deployed::Updated))
}

async fn remove(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Answer {
    let arn = wf.state_machine_arn(&ns, &name);
    // A missing workflow is an error here (the AWS call is silent about it).
    wf.state_machine(&ns, &arn).await?;
    wf.delete_state_machine(&ns, &arn).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/workflows/{name}/executions`'s body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The execution's input (any JSON; default `{}`).
    #[serde(default)]
    pub input: Option<Value>,
    /// The execution's name (default: a UUID).
    #[serde(default)]
    pub name: Option<String>,
    /// Answer when the execution ends.
    #[serde(default)]
    pub sync: bool,
}

async fn start(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(workflow): Path<String>,
    request: axum::extract::Request,
) -> Answer {
    let trace = lambent_gateway::trace_context(request.headers());
    let req: StartRequest = body(request.into_body()).await?;
    let input = req.input.unwrap_or_else(|| json!({})).to_string();
    let started = start_execution(
        &wf,
        &ns,
        &workflow,
        req.name.as_deref(),
        &input,
        req.sync,
        trace,
    )
    .await?;
    let status = if started.status == "RUNNING" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(started)).into_response())
}

/// Starts an execution of `workflow` with `input` (JSON text). `sync`: answers when it
/// ends (an Express one runs as `StartSyncExecution`; a Standard one is committed, run and
/// waited for). Otherwise answers once started (`RUNNING`). `trace`: the context its states
/// continue.
pub async fn start_execution(
    wf: &Workflows,
    ns: &str,
    workflow: &str,
    name: Option<&str>,
    input: &str,
    sync: bool,
    trace: Option<lambent_core::TraceContext>,
) -> Result<ExecutionView, SfnError> {
    let machine = wf.state_machine_arn(ns, workflow);
    if sync && wf.state_machine(ns, &machine).await?.kind == EXPRESS {
        let r = wf
            .start_sync_execution(ns, &machine, name, Some(input), trace)
            .await?;
        let error = r.outcome.error().cloned();
        return Ok(ExecutionView {
            arn: r.execution_arn,
            name: r.name,
            workflow: workflow.into(),
            status: r.outcome.status().into(),
            start_ms: r.start_ms,
            stop_ms: Some(r.stop_ms),
            transitions: r.transitions,
            input: Some(json_text(&r.input)),
            output: match &r.outcome {
                Outcome::Succeeded(v) => Some(v.clone()),
                _ => None,
            },
            error: error.as_ref().map(|e| e.error.clone()),
            cause: error.map(|e| e.cause),
        });
    }
    let (arn, start_ms) = wf
        .start_execution(ns, &machine, name, Some(input), trace)
        .await?;
    let running = |name: String| ExecutionView {
        arn: arn.clone(),
        name,
        workflow: workflow.into(),
        status: "RUNNING".into(),
        start_ms,
        stop_ms: None,
        transitions: 0,
        input: Some(json_text(input)),
        output: None,
        error: None,
        cause: None,
    };
    if arn.contains(":express:") {
        // Express in the background: nothing is kept to wait on.
        let name = arn.split(':').nth(7).unwrap_or_default().to_string();
        return Ok(running(name));
    }
    if !sync {
        let e = wf.execution(ns, &arn).await?;
        return Ok(ExecutionView::of(&e, true));
    }
    let mut pause = Duration::from_millis(2);
    loop {
        let e = wf.execution(ns, &arn).await?;
        if e.status != "RUNNING" {
            return Ok(ExecutionView::of(&e, true));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecutionsQuery {
    status: Option<String>,
    limit: Option<usize>,
    /// The previous page's `next`.
    after: Option<String>,
}

async fn executions(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(workflow): Path<String>,
    Query(q): Query<ExecutionsQuery>,
) -> Answer {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let bad_cursor = || SfnError::Validation("invalid 'after': pass a page's 'next'".into());
    let after = match q.after.as_deref() {
        None => None,
        Some(t) => {
            let (ms, arn) = t.split_once('|').ok_or_else(bad_cursor)?;
            Some((ms.parse().map_err(|_| bad_cursor())?, arn.to_string()))
        }
    };
    let status = q.status.map(|s| s.to_ascii_uppercase());
    let page = wf
        .list_executions(
            &ns,
            &wf.state_machine_arn(&ns, &workflow),
            status.as_deref(),
            after,
            limit,
        )
        .await?;
    let views: Vec<ExecutionView> = page.iter().map(|e| ExecutionView::of(e, false)).collect();
    let mut answer = json!({ "executions": views });
    if let (true, Some(last)) = (page.len() == limit, page.last()) {
        answer["next"] = json!(format!("{}|{}", last.start_ms, last.arn));
    }
    Ok(Json(answer).into_response())
}

async fn execution(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((workflow, name)): Path<(String, String)>,
) -> Answer {
    let e = wf
        .execution(&ns, &wf.execution_arn(&ns, &workflow, &name))
        .await?;
    Ok(Json(ExecutionView::of(&e, true)).into_response())
}

async fn history(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((workflow, name)): Path<(String, String)>,
) -> Answer {
    let arn = wf.execution_arn(&ns, &workflow, &name);
    let e = wf.execution(&ns, &arn).await?;
    // The whole history, in pages of the store's.
    let mut events = Vec::new();
    loop {
        let after = events
            .last()
            .map_or(0, |e: &lambent_workflows::HistoryEvent| e.id);
        let page = wf.history(&ns, &arn, after, false, 1000).await?;
        let full = page.len() == 1000;
        events.extend(page);
        if !full {
            break;
        }
    }
    let api: Vec<Value> = events.iter().map(|e| e.to_api()).collect();
    Ok(Json(json!({
        "execution": ExecutionView::of(&e, true),
        // The definition it ran (its workflow's may have changed since).
        "definition": json_text(&e.definition),
        "timeline": lambent_workflows::timeline(&events),
        "events": api,
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopRequest {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    cause: Option<String>,
}

async fn stop(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((workflow, name)): Path<(String, String)>,
    request: axum::extract::Request,
) -> Answer {
    let req: StopRequest = body(request.into_body()).await?;
    let arn = wf.execution_arn(&ns, &workflow, &name);
    wf.stop_execution(&ns, &arn, req.error, req.cause).await?;
    let e = wf.execution(&ns, &arn).await?;
    Ok(Json(ExecutionView::of(&e, false)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    since_ms: Option<i64>,
}

/// One workflow's transitions in a usage report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransitionRow {
    pub workflow: String,
    pub executions: u64,
    pub transitions: u64,
    pub cost: f64,
}

async fn usage(
    State(wf): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<UsageQuery>,
) -> Answer {
    let price = wf.app.prices.per_transition;
    let rows: Vec<TransitionRow> = wf
        .transition_usage(&ns, q.since_ms.unwrap_or(0))
        .await?
        .into_iter()
        .map(|u| TransitionRow {
            workflow: u
                .state_machine_arn
                .rsplit(':')
                .next()
                .unwrap_or_default()
                .into(),
            executions: u.executions,
            transitions: u.transitions,
            cost: u.transitions as f64 * price,
        })
        .collect();
    let total = TransitionRow {
        workflow: "TOTAL".into(),
        executions: rows.iter().map(|r| r.executions).sum(),
        transitions: rows.iter().map(|r| r.transitions).sum(),
        cost: rows.iter().map(|r| r.transitions).sum::<u64>() as f64 * price,
    };
    Ok(Json(json!({"rows": rows, "total": total, "per_transition": price})).into_response())
}
