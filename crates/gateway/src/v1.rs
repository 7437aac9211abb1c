//! The Lambent API under `/v1` (documented in `docs/api.md`): code upload, functions CRUD,
//! synchronous invoke, activations and logs.

use crate::auth::Principal;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_core::limits::{MAX_CODE_ZIP, MAX_SYNC_PAYLOAD};
use lambent_core::{Activation, ActivationStatus, FunctionName, FunctionSpec};
use lambent_invoker::{Deployment, InvokeRequest};
use lambent_store::{ActivationCursor, ActivationQuery};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/code", post(upload_code))
        .route("/v1/code/{sha256}", get(code_exists).head(code_exists))
        .route("/v1/functions", get(list_functions))
        .route(
            "/v1/functions/{name}",
            put(deploy).get(get_function).delete(delete_function),
        )
        .route("/v1/functions/{name}/invoke", post(invoke))
        .route("/v1/functions/{name}/logs", get(function_logs))
        .route("/v1/activations", get(list_activations))
        .route("/v1/activations/{id}", get(get_activation))
        .route("/v1/usage", get(usage))
        .route("/v1/nodes", get(list_nodes))
        .route("/metrics", get(metrics))
}

/// `GET /v1/nodes`: the cluster's members with their state and load (one on the embedded node).
async fn list_nodes(State(app): AppState) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "node": app.cluster.node_id(),
        "leases": app.cluster.held_leases(),
        "nodes": app.cluster.nodes(),
    }))
}

async fn upload_code(State(app): AppState, body: Body) -> Result<Response, ApiError> {
    let zip = body::read(body, MAX_CODE_ZIP, "the code zip").await?;
    let stored = app.registry.upload_code(zip).await?;
    let status = if stored.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(stored)).into_response())
}

async fn code_exists(
    State(app): AppState,
    Path(sha256): Path<String>,
) -> Result<StatusCode, ApiError> {
    Ok(match app.registry.has_code(&sha256).await? {
        true => StatusCode::OK,
        false => StatusCode::NOT_FOUND,
    })
}

/// A deploy request: the function's settings and the address of its uploaded code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    runtime: String,
    handler: Option<String>,
    memory: Option<u32>,
    timeout: Option<u32>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    description: Option<String>,
    reserved_concurrency: Option<u32>,
    provisioned_concurrency: Option<u32>,
    keep_alive: Option<u32>,
    #[serde(rename = "async")]
    async_invoke: Option<lambent_core::AsyncSpec>,
    network: Option<bool>,
    code_sha256: String,
}

#[derive(Deserialize)]
struct DeployQuery {
    #[serde(default)]
    warm: bool,
}

async fn deploy(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(query): Query<DeployQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = FunctionName::parse(&name)?;
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the deploy request").await?;
    let req: DeployBody = body::json(&bytes)?;
    let spec = FunctionSpec {
        runtime: req.runtime,
        handler: req.handler,
        memory: req.memory,
        timeout: req.timeout,
        env: req.env,
        description: req.description,
        reserved_concurrency: req.reserved_concurrency,
        provisioned_concurrency: req.provisioned_concurrency,
        keep_alive: req.keep_alive,
        async_invoke: req.async_invoke,
        network: req.network,
    };
    let deployed = app
        .registry
        .deploy(&ns, name, spec, req.code_sha256)
        .await?;
    let mut view = function_view(&app, &deployed.deployment);
    let invoker = app.registry.invoker();
    let warmed = if deployed.deployment.function.config.provisioned_concurrency > 0 {
        invoker.provision(&deployed.deployment).await
    } else if query.warm {
        invoker.prewarm(&deployed.deployment).await
    } else {
        Ok(())
    };
    if let Err(e) = warmed {
        view["warm_error"] = Value::String(e);
    }
    view["sandboxes"] = sandboxes(&app, &deployed.deployment);
    let status = if deployed.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

async fn list_functions(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Json<Value> {
    let functions: Vec<Value> = app
        .registry
        .list(&ns)
        .iter()
        .map(|d| function_view(&app, d))
        .collect();
    Json(json!({ "functions": functions }))
}

async fn get_function(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let deployment = find(&app, &ns, &name).await?;
    Ok(Json(function_view(&app, &deployment)))
}

async fn delete_function(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    FunctionName::parse(&name)?;
    app.registry.delete(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The synchronous invoke's route, as its gateway span names it.
const INVOKE_ROUTE: &str = "/v1/functions/{name}/invoke";

async fn invoke(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    uri: axum::http::Uri,
    request_headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let deployment = find(&app, &ns, &name).await?;
    let trace = crate::trace_context(&request_headers);
    if crate::wants_async(uri.query(), &request_headers)? {
        return crate::accept_async(&app, &deployment, body, trace).await;
    }
    let mut payload = body::read(body, MAX_SYNC_PAYLOAD, "the invoke payload").await?;
    if payload.iter().all(u8::is_ascii_whitespace) {
        payload = Bytes::from_static(b"{}");
    } else {
        body::check_json(&payload)?;
    }
    let request = InvokeRequest {
        payload,
        trigger: "api".into(),
        trace: lambent_core::TraceOrigin {
            context: trace,
            http: Some(lambent_core::HttpTrigger {
                method: "POST".into(),
                route: INVOKE_ROUTE.into(),
                path: uri.path().to_string(),
                status: None,
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let result = app.run(&deployment, request).await;
    let refusal = match result.activation.status {
        ActivationStatus::PlatformError => Some(ApiError::Internal(
            result.activation.error_message.clone().unwrap_or_default(),
        )),
        _ => ApiError::of_refused(&result.activation),
    };
    let status = refusal.as_ref().map_or(StatusCode::OK, ApiError::status);
    let answer = match refusal {
        Some(refusal) => Err(refusal),
        None => Ok(invoked(&result.activation, result.body.clone())),
    };
    app.answered(result, status.as_u16());
    answer
}

/// The `200` of a synchronous invoke: the function's result, and its record's headers.
fn invoked(a: &Activation, body: Bytes) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set("lambent-activation-id", &a.id);
    set("lambent-status", a.status.as_str());
    set("lambent-cold", if a.cold { "true" } else { "false" });
    if a.status != ActivationStatus::Success {
        set(
            "lambent-function-error",
            a.error_type.as_deref().unwrap_or("Unhandled"),
        );
    }
    (StatusCode::OK, headers, body).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivationsQuery {
    function: Option<String>,
    status: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    cold: Option<bool>,
    /// Text the logs or the error message contain.
    text: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of `GET /v1/activations`, serialized straight from the records into the body: a
/// `serde_json::Value` tree of a 1,000-record page (every field a key `String` and a `Value`)
/// took several times the records' own memory at the peak of each request.
#[derive(Serialize)]
struct ActivationsPage {
    activations: Vec<Activation>,
    next_cursor: Option<String>,
}

async fn list_activations(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<ActivationsQuery>,
) -> Result<Json<ActivationsPage>, ApiError> {
    let status = q
        .status
        .map(|s| {
            s.parse::<ActivationStatus>()
                .map_err(|_| ApiError::InvalidJson(format!("unknown activation status '{s}'")))
        })
        .transpose()?;
    let before = q
        .cursor
        .map(|c| {
            ActivationCursor::decode(&c)
                .ok_or(ApiError::InvalidJson(format!("invalid cursor '{c}'")))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    app.flush_records().await;
    let page = app
        .store
        .query_activations(&ActivationQuery {
            namespace: ns,
            function: q.function,
            status,
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            cold: q.cold,
            text: q.text.filter(|t| !t.is_empty()),
            before,
            limit,
            trace_id: None,
        })
        .await?;
    let next_cursor = (page.len() == limit)
        .then(|| {
            page.last().map(|a| {
                ActivationCursor {
                    start_ms: a.start_ms,
                    id: a.id.clone(),
                }
                .encode()
            })
        })
        .flatten();
    Ok(Json(ActivationsPage {
        activations: page,
        next_cursor,
    }))
}

async fn get_activation(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Json<Activation>, ApiError> {
    app.flush_records().await;
    app.store
        .get_activation(&ns, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::ActivationNotFound(id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    tail: Option<usize>,
    after_ms: Option<i64>,
}

async fn function_logs(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, ApiError> {
    find(&app, &ns, &name).await?;
    app.flush_records().await;
    let mut page = app
        .store
        .query_activations(&ActivationQuery {
            namespace: ns,
            function: Some(name),
            status: None,
            since_ms: q.after_ms.map(|t| t + 1),
            before: None,
            limit: q.tail.unwrap_or(20).clamp(1, 1000),
            ..Default::default()
        })
        .await?;
    page.reverse();
    let logs: Vec<Value> = page
        .into_iter()
        .map(|a| json!({ "activation_id": a.id, "start_ms": a.start_ms, "status": a.status, "text": a.logs }))
        .collect();
    Ok(Json(json!({ "logs": logs })))
}

/// Prometheus metrics (needs an API key, as every path but `/healthz`): the operator's key
/// sees every series, a namespace's key only the series labelled with its namespace.
async fn metrics(State(app): AppState, Extension(who): Extension<Principal>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    let mut text = app.registry.invoker().metrics_text();
    // Before the exposition's closing `# EOF`.
    let mut extra = app.registry.quotas.budget_metrics();
    if let Some(export) = &app.trace_export {
        extra.push_str(&export.metrics_text());
    }
    let end = text.rfind("# EOF").unwrap_or(text.len());
    text.insert_str(end, &extra);
    if !who.is_operator() {
        text = own_series(&text, &who.namespace);
    }
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// An exposition with only `namespace`'s samples: the metadata lines (`# …`) stay, a sample
/// stays when its labels hold `namespace="<namespace>"`; node-wide series (no namespace
/// label) are the operator's.
pub fn own_series(text: &str, namespace: &str) -> String {
    let label = format!("namespace=\"{namespace}\"");
    let ours = |line: &str| {
        let Some(open) = line.find('{') else {
            return false;
        };
        let labels = &line[open..];
        labels
            .match_indices(&label)
            .any(|(i, _)| i > 0 && matches!(labels.as_bytes()[i - 1], b'{' | b','))
    };
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with('#') || ours(line) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A deployed function, read from the store when this node does not know it yet: in a cluster,
/// a deploy on another node may be a few milliseconds ahead of its signal.
pub(crate) async fn find(
    app: &App,
    namespace: &str,
    name: &str,
) -> Result<Arc<Deployment>, ApiError> {
    FunctionName::parse(name)?;
    app.registry
        .find(namespace, name)
        .await?
        .ok_or_else(|| ApiError::function_not_found(namespace, name))
}

fn function_view(app: &App, deployment: &Deployment) -> Value {
    let mut view = serde_json::to_value(&deployment.function).unwrap_or_default();
    view["sandboxes"] = sandboxes(app, deployment);
    view
}

fn sandboxes(app: &App, deployment: &Deployment) -> Value {
    let f = &deployment.function;
    let counts = app
        .registry
        .invoker()
        .counts(Some(&f.namespace), Some(f.name.as_str()));
    serde_json::to_value(counts).unwrap_or_default()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageQuery {
    since_ms: Option<i64>,
    by: Option<String>,
    function: Option<String>,
}

/// `namespace`'s usage summed by the store (records from `since_ms` on, of one function or
/// all), grouped by `by` (`None`: the total).
async fn usage_of(
    app: &App,
    namespace: &str,
    function: Option<String>,
    since_ms: Option<i64>,
    by: Option<lambent_core::metering::Grouping>,
) -> Result<Vec<lambent_core::metering::Aggregate>, ApiError> {
    let query = lambent_store::usage::UsageQuery {
        namespace: namespace.to_string(),
        function,
        since_ms,
        by,
    };
    Ok(app.store.usage(&query).await?)
}

async fn usage(
    State(app): AppState,
    Extension(who): Extension<Principal>,
    Query(q): Query<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    use lambent_core::metering::{self, Grouping};
    let by: Grouping =
        q.by.as_deref()
            .unwrap_or("function")
            .parse()
            .map_err(ApiError::InvalidJson)?;
    if by == Grouping::Namespace {
        if !who.is_operator() {
            return Err(ApiError::Forbidden(
                "usage by namespace is the operator's: a namespace's key sees its own bill".into(),
            ));
        }
        return Ok(Json(bills(&app, q.since_ms).await?));
    }
    let ns = who.namespace;
    app.flush_records().await;
    let of = |by| usage_of(&app, &ns, q.function.clone(), q.since_ms, by);
    let rows = of(Some(by)).await?;
    let total = of(None).await?;
    let per_function = match by {
        Grouping::Function => rows.clone(),
        _ => of(Some(Grouping::Function)).await?,
    };
    let mut view = json!({
        "by": by,
        "rows": metering::rows(&rows, &app.prices),
        "total": metering::total_row(&total, &app.prices),
        "rightsizing": metering::advice(&per_function, &app.prices),
        "prices": app.prices,
    });
    view["namespace"] = json!(ns);
    if let Some(budget) = app.registry.quotas.budget(&ns) {
        view["budget"] = budget_view(&app, &ns, budget).await?;
    }
    Ok(Json(view))
}

/// A namespace's budget with this month's spend (read now, not the cached value).
async fn budget_view(
    app: &App,
    ns: &str,
    mut budget: crate::quotas::BudgetState,
) -> Result<Value, ApiError> {
    budget.spent_usd = app.registry.quotas.month_spend(ns).await?;
    let mut view = json!({
        "monthly_usd": budget.budget_usd,
        "spent_usd": budget.spent_usd,
        "hard": budget.hard,
        "exhausted": budget.hard && budget.exhausted(),
    });
    if let Some(warning) = budget.warning(ns) {
        view["warning"] = json!(warning);
    }
    Ok(view)
}

/// The operator's bills: per namespace, its invocations, GB-s and cost (since `since_ms`,
/// else this month), its budget and its storage used against its quota.
async fn bills(app: &App, since_ms: Option<i64>) -> Result<Value, ApiError> {
    let now = lambent_core::now_ms();
    let since = since_ms.unwrap_or_else(|| crate::quotas::month_start_ms(now));
    let mut rows = Vec::new();
    app.flush_records().await;
    for ns in app.store.list_namespaces().await? {
        let total = usage_of(app, &ns.name, None, Some(since), None).await?;
        let total = lambent_core::metering::total_row(&total, &app.prices);
        let storage = app.registry.quotas.storage_use(&ns.name).await?;
        let mut row = json!({
            "namespace": ns.name,
            "invocations": total.invocations,
            "throttles": total.throttles,
            "gb_seconds": total.gb_seconds,
            "cost": total.cost,
            "storage_bytes": storage.total(),
            "storage_quota_bytes": ns.settings.storage_quota_bytes,
            "functions": app.registry.list(&ns.name).len(),
            "max_functions": ns.settings.max_functions,
        });
        if let Some(budget) = app.registry.quotas.budget(&ns.name) {
            row["budget"] = budget_view(app, &ns.name, budget).await?;
        }
        rows.push(row);
    }
    Ok(json!({ "by": "namespace", "since_ms": since, "rows": rows, "prices": app.prices }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_namespace_sees_only_its_own_series() {
        let text = "# TYPE lambent_invocations counter\n\
lambent_invocations_total{namespace=\"a\",function=\"f\",status=\"success\"} 3\n\
lambent_invocations_total{namespace=\"ab\",function=\"f\",status=\"success\"} 1\n\
lambent_invocations_total{function=\"x\",namespace=\"b\",status=\"success\"} 2\n\
lambent_sandboxes{state=\"idle\"} 4\n# EOF\n";
        let a = super::own_series(text, "a");
        assert_eq!(
            a,
            "# TYPE lambent_invocations counter\n\
lambent_invocations_total{namespace=\"a\",function=\"f\",status=\"success\"} 3\n# EOF\n"
        );
        let b = super::own_series(text, "b");
        assert!(b.contains("function=\"x\",namespace=\"b\"") && !b.contains("\"a\""));
    }
}
