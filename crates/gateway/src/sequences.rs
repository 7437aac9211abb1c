//! Sequences under `/v1/sequences` (see `docs/api.md`): functions of runtime `sequence` whose
//! components run one after the other (the invoker runs them; see `lambent_invoker`'s
//! `sequence` module). They are stored and served as functions, so every way of invoking a
//! function (`/v1/functions/{name}/invoke`, async, routes, schedules, queues, topics, the
//! Lambda API) invokes a sequence too. Here: create or update (components must exist and
//! must not lead back to the sequence), list, get, delete.

use crate::auth::Principal;
use crate::registry::Registry;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_core::limits::MAX_SYNC_PAYLOAD;
use lambent_core::{Function, FunctionConfig, FunctionName};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/sequences", get(list))
        .route("/v1/sequences/{name}", get(get_one).put(put).delete(delete))
}

/// `PUT /v1/sequences/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceBody {
    /// Function names, in the order they run.
    components: Vec<String>,
    description: Option<String>,
}

async fn put(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let name = FunctionName::parse(&name)?;
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the sequence").await?;
    let req: SequenceBody = body::json(&bytes)?;
    let function = app
        .registry
        .deploy_sequence(&ns, name, &req.components, req.description)
        .await?;
    let status = match function.revision {
        1 => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(view(&function))).into_response())
}

async fn list(State(app): AppState, Extension(Principal { namespace: ns, .. }): Ns) -> Json<Value> {
    let sequences: Vec<Value> = app
        .registry
        .list(&ns)
        .iter()
        .filter(|d| d.function.config.is_sequence())
        .map(|d| view(&d.function))
        .collect();
    Json(json!({ "sequences": sequences }))
}

async fn get_one(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let function = sequence(&app, &ns, &name).await?;
    Ok(Json(view(&function)))
}

async fn delete(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    sequence(&app, &ns, &name).await?;
    app.registry.delete(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The sequence `name`, or a 404 naming it (also when `name` is a function of code).
async fn sequence(app: &App, ns: &str, name: &str) -> Result<Function, ApiError> {
    FunctionName::parse(name)?;
    match app.registry.find(ns, name).await? {
        Some(d) if d.function.config.is_sequence() => Ok(d.function.clone()),
        _ => Err(ApiError::ResourceNotFound(format!(
            "sequence '{name}' does not exist in namespace '{ns}'"
        ))),
    }
}

fn view(f: &Function) -> Value {
    json!({
        "name": f.name,
        "namespace": f.namespace,
        "components": f.config.sequence,
        "description": f.config.description,
        "timeout": f.config.timeout_s,
        "revision": f.revision,
        "created_ms": f.created_ms,
        "updated_ms": f.updated_ms,
    })
}

impl Registry {
    /// Creates or replaces the sequence `name` of `components` (function names, in order).
    /// Refused: a component that does not exist, one that leads back to the sequence (itself,
    /// or a sequence containing it, at any depth), and a name taken by a function of code.
    pub async fn deploy_sequence(
        &self,
        namespace: &str,
        name: FunctionName,
        components: &[String],
        description: Option<String>,
    ) -> Result<Function, ApiError> {
        // Names and length first, before any read.
        FunctionConfig::sequence(components, 0, None)?;
        let _one_at_a_time = self.changes.lock().await;
        let previous = self.store.get_function(namespace, name.as_str()).await?;
        if let Some(p) = previous.as_ref().filter(|p| !p.config.is_sequence()) {
            return Err(ApiError::Conflict(format!(
                "'{}' is a function of runtime {}, not a sequence: choose another name or delete the function first",
                p.name, p.config.runtime
            )));
        }
        let mut known = HashMap::new();
        let mut timeout_s = 0u32;
        for component in components {
            let f = self.component(namespace, component, &mut known).await?;
            let Some(f) = f else {
                return Err(ApiError::InvalidParameter(format!(
                    "component '{component}' of sequence '{name}' does not exist in namespace '{namespace}': deploy it first"
                )));
            };
            timeout_s = timeout_s.saturating_add(f.config.timeout_s);
            let mut path = vec![name.to_string()];
            let mut seen = HashSet::new();
            if self
                .leads_to(
                    namespace,
                    &f,
                    name.as_str(),
                    &mut path,
                    &mut seen,
                    &mut known,
                )
                .await?
            {
                return Err(ApiError::InvalidParameter(format!(
                    "sequence '{name}' would contain itself: {}",
                    path.join(" → ")
                )));
            }
        }
        let config = FunctionConfig::sequence(components, timeout_s, description)?;
        let deployed = self
            .install_codeless(namespace, name, config, previous.as_ref())
            .await?;
        Ok(deployed.deployment.function.clone())
    }

    /// A function as stored (read once per deploy: the store is the truth in a cluster).
    async fn component(
        &self,
        namespace: &str,
        name: &str,
        known: &mut HashMap<String, Option<Function>>,
    ) -> Result<Option<Function>, ApiError> {
        if let Some(f) = known.get(name) {
            return Ok(f.clone());
        }
        let f = self.store.get_function(namespace, name).await?;
        known.insert(name.to_string(), f.clone());
        Ok(f)
    }

    /// Whether running `f` would run `target` (depth first through nested sequences, each
    /// visited once); `path` ends with the way there when it would.
    async fn leads_to(
        &self,
        namespace: &str,
        f: &Function,
        target: &str,
        path: &mut Vec<String>,
        seen: &mut HashSet<String>,
        known: &mut HashMap<String, Option<Function>>,
    ) -> Result<bool, ApiError> {
        path.push(f.name.to_string());
        if f.name.as_str() == target {
            return Ok(true);
        }
        if !seen.insert(f.name.to_string()) {
            path.pop();
            return Ok(false);
        }
        for component in &f.config.sequence {
            let Some(inner) = self.component(namespace, component.as_str(), known).await? else {
                continue;
            };
            if Box::pin(self.leads_to(namespace, &inner, target, path, seen, known)).await? {
                return Ok(true);
            }
        }
        path.pop();
        Ok(false)
    }
}
