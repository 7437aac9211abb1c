//! Versions and aliases under `/v1` (the Lambda API's `PublishVersion` and `CreateAlias` /
//! `UpdateAlias` for API-key clients such as `lambent deploy` of a SAM `AutoPublishAlias`):
//! `POST /v1/functions/{name}/versions` publishes the live code and settings as the next
//! version, `PUT /v1/functions/{name}/aliases/{alias}` points an alias at a version (creating
//! or moving it), `GET /v1/functions/{name}/aliases` lists them.

use crate::auth::Principal;
use crate::v1::find;
use crate::{body, ApiError, App};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_store::lambda::Alias;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/functions/{name}/versions", post(publish))
        .route("/v1/functions/{name}/aliases", get(list_aliases))
        .route("/v1/functions/{name}/aliases/{alias}", put(put_alias))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct PublishBody {
    description: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AliasBody {
    /// A published version's number, or `$LATEST`.
    version: String,
    #[serde(default)]
    description: String,
}

/// A body that may be empty.
fn optional<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    body::json(bytes)
}

async fn publish(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: PublishBody = optional(&bytes)?;
    find(&app, &ns, &name).await?;
    let p = app
        .registry
        .publish_version(&ns, &name, &req.description)
        .await?;
    let view = json!({
        "function": name,
        "version": p.version.version.to_string(),
        "revision": p.version.function.revision,
        "description": p.version.description,
        "created_ms": p.version.created_ms,
    });
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

fn alias_view(a: &Alias) -> Value {
    json!({
        "function": a.function,
        "name": a.name,
        "version": a.function_version,
        "description": a.description,
        "additional_weights": a.additional_weights,
        "updated_ms": a.updated_ms,
    })
}

async fn put_alias(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((name, alias)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let req: AliasBody = body::json(&bytes)?;
    find(&app, &ns, &name).await?;
    let current = app.registry.alias(&ns, &name, &alias);
    let status = if current.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let wanted = Alias {
        namespace: ns.clone(),
        function: name.clone(),
        name: alias,
        function_version: req.version,
        description: req.description,
        additional_weights: Default::default(),
        revision_id: String::new(),
        updated_ms: 0,
    };
    let expected = current.as_ref().map(|c| c.revision_id.as_str());
    let stored = app.registry.put_alias(wanted, expected).await?;
    Ok((status, Json(alias_view(&stored))).into_response())
}

async fn list_aliases(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    find(&app, &ns, &name).await?;
    let aliases: Vec<Value> = app
        .registry
        .aliases(&ns, &name)
        .iter()
        .map(alias_view)
        .collect();
    Ok(Json(json!({ "aliases": aliases })))
}
