//! `/v1/routes`: list, add (or replace), show and remove a namespace's HTTP routes.

use crate::auth::Principal;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_core::limits::MAX_SYNC_PAYLOAD;
use lambent_core::{Route, RouteSpec, RouteTarget};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/routes", get(list).post(add))
        .route("/v1/routes/{id}", get(show).delete(remove))
}

/// A route as the API shows it: its settings and its key.
fn view(route: &Route) -> Value {
    let mut v = serde_json::to_value(route).unwrap_or_default();
    v["key"] = Value::String(route.key());
    v
}

async fn list(State(app): AppState, Extension(Principal { namespace: ns, .. }): Ns) -> Json<Value> {
    let routes: Vec<Value> = app.routes.list(&ns).iter().map(|r| view(r)).collect();
    Json(json!({ "routes": routes }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddQuery {
    #[serde(default)]
    replace: bool,
}

async fn add(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<AddQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the route").await?;
    let spec: RouteSpec = body::json(&bytes)?;
    let id = format!("rt_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let route = spec.resolve(id, &ns, lambent_core::now_ms())?;
    match &route.target {
        RouteTarget::Function(f) => {
            if app.registry.find(&ns, f.as_str()).await?.is_none() {
                return Err(ApiError::function_not_found(&ns, f.as_str()));
            }
        }
        RouteTarget::Workflow(w) => crate::workflow_hook::check_exists(&app, &ns, w).await?,
    }
    let added = app.routes.add(route, q.replace).await?;
    let status = if added.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view(&added.route))).into_response())
}

async fn show(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app.routes
        .get(&ns, &id)
        .map(|r| Json(view(&r)))
        .ok_or(ApiError::RouteNotFound(id))
}

async fn remove(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.routes.remove(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
