//! Versions, aliases and concurrency: `PublishVersion`, `ListVersionsByFunction`,
//! `CreateAlias` / `GetAlias` / `UpdateAlias` / `DeleteAlias` / `ListAliases` (with
//! `RoutingConfig.AdditionalVersionWeights`), `PutFunctionConcurrency` /
//! `GetFunctionConcurrency` / `DeleteFunctionConcurrency` (Lambent's reserved concurrency), and
//! `Put`/`Get`/`DeleteProvisionedConcurrencyConfig` (sandboxes kept warm for one version).

use crate::functions::{configurations, page, redeploy, ApiState, Ns, QualifierQuery};
use crate::{view, AwsApi, AwsError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_gateway::{body, Principal};
use lambent_store::lambda::Alias;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes() -> Router<Arc<AwsApi>> {
    Router::new()
        .route(
            "/2015-03-31/functions/{name}/versions",
            get(list_versions).post(publish_version),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases",
            get(list_aliases).post(create_alias),
        )
        .route(
            "/2015-03-31/functions/{name}/aliases/{alias}",
            get(get_alias).put(update_alias).delete(delete_alias),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            put(put_concurrency).delete(delete_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(get_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            get(get_provisioned)
                .put(put_provisioned)
                .delete(delete_provisioned),
        )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Publish {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

/// A body that may be empty (boto3 sends `{}` or nothing for optional-only inputs).
fn optional_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, AwsError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    Ok(body::json(bytes)?)
}

async fn publish_version(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: Publish = optional_json(&body)?;
    let f = api.scope(&ns).parse(&name, None)?;
    let live = api.live(&ns, &f.name).await?;
    let precondition = |what: &str| {
        AwsError::PreconditionFailed(format!(
            "the {what} provided does not match the function's current one"
        ))
    };
    if req
        .code_sha256
        .as_deref()
        .is_some_and(|c| c != view::code_sha256_base64(&live.function.code_sha256))
    {
        return Err(precondition("CodeSha256"));
    }
    if req
        .revision_id
        .as_deref()
        .is_some_and(|r| r != view::revision_id(&live.function))
    {
        return Err(precondition("RevisionId"));
    }
    let p = api
        .app
        .registry
        .publish_version(&ns, &f.name, req.description.as_deref().unwrap_or(""))
        .await?;
    let view = view::function_configuration(
        &api.scope(&ns),
        &p.version.function,
        Some(p.version.version),
        Some(&p.version.description),
    );
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

async fn list_versions(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, None)?;
    let live = api.live(&ns, &f.name).await?;
    let scope = api.scope(&ns);
    let items = configurations(&scope, &api.app.registry, &live.function, true);

    page("Versions", items, q.marker.as_deref(), q.max_items)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RoutingConfig {
    #[serde(default)]
    additional_version_weights: BTreeMap<String, f64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct AliasBody {
    name: Option<String>,
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingConfig>,
    revision_id: Option<String>,
}

fn alias_not_found(api: &AwsApi, ns: &str, function: &str, alias: &str) -> AwsError {
    AwsError::ResourceNotFound(format!(
        "Alias not found: {}",
        api.scope(ns).qualified_arn(function, alias)
    ))
}

async fn create_alias(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: AliasBody = body::json(&body)?;
    let f = api.scope(&ns).parse(&name, None)?;
    api.live(&ns, &f.name).await?;
    let missing = |field: &str| AwsError::InvalidParameterValue(format!("{field} is required"));
    let alias = Alias {
        namespace: ns.clone(),
        function: f.name.clone(),
        name: req.name.ok_or_else(|| missing("Name"))?,
        function_version: req
            .function_version
            .ok_or_else(|| missing("FunctionVersion"))?,
        description: req.description.unwrap_or_default(),
        additional_weights: req
            .routing_config
            .unwrap_or_default()
            .additional_version_weights,
        revision_id: String::new(),
        updated_ms: 0,
    };
    let alias = api.app.registry.put_alias(alias, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(view::alias_configuration(&api.scope(&ns), &alias)),
    )
        .into_response())
}

async fn get_alias(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((name, alias)): Path<(String, String)>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, None)?;
    api.live(&ns, &f.name).await?;
    let found = api
        .app
        .registry
        .alias(&ns, &f.name, &alias)
        .ok_or_else(|| alias_not_found(&api, &ns, &f.name, &alias))?;
    Ok(Json(view::alias_configuration(&api.scope(&ns), &found)))
}

async fn list_aliases(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, None)?;
    api.live(&ns, &f.name).await?;
    let scope = api.scope(&ns);
    let items = api
        .app
        .registry
        .aliases(&ns, &f.name)
        .iter()
        .map(|a| view::alias_configuration(&scope, a))
        .collect();
    page("Aliases", items, q.marker.as_deref(), q.max_items)
}

async fn update_alias(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, AwsError> {
    let req: AliasBody = optional_json(&body)?;
    let f = api.scope(&ns).parse(&name, None)?;
    api.live(&ns, &f.name).await?;
    let current = api
        .app
        .registry
        .alias(&ns, &f.name, &alias)
        .ok_or_else(|| alias_not_found(&api, &ns, &f.name, &alias))?;
    if req
        .revision_id
        .as_deref()
        .is_some_and(|r| r != current.revision_id)
    {
        return Err(AwsError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetAlias API to retrieve the latest Revision Id".into(),
        ));
    }
    let expected = current.revision_id.clone();
    let updated = Alias {
        function_version: req
            .function_version
            .unwrap_or(current.function_version.clone()),
        description: req.description.unwrap_or(current.description.clone()),
        additional_weights: req
            .routing_config
            .map_or(current.additional_weights.clone(), |r| {
                r.additional_version_weights
            }),
        ..current
    };
    let alias = api.app.registry.put_alias(updated, Some(&expected)).await?;
    Ok(Json(view::alias_configuration(&api.scope(&ns), &alias)))
}

async fn delete_alias(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((name, alias)): Path<(String, String)>,
) -> Result<StatusCode, AwsError> {
    let f = api.scope(&ns).parse(&name, None)?;
    api.live(&ns, &f.name).await?;
    api.app
        .registry
        .delete_alias(&ns, &f.name, &alias)
        .await
        .map_err(|_| alias_not_found(&api, &ns, &f.name, &alias))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Concurrency {
    reserved_concurrent_executions: u32,
}

/// Sets (or clears) the function's reserved concurrency: a new revision of `$LATEST`.
async fn set_reserved(
    api: &AwsApi,
    ns: &str,
    name: &str,
    reserved: Option<u32>,
) -> Result<(), AwsError> {
    let f = api.scope(ns).parse(name, None)?;
    let live = api.live(ns, &f.name).await?;
    let mut spec = live.function.config.to_spec();
    spec.reserved_concurrency = reserved;
    let sha256 = live.function.code_sha256.clone();
    redeploy(api, ns, &live, spec, sha256, false)
        .await
        .map(drop)
}

async fn put_concurrency(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AwsError> {
    let req: Concurrency = body::json(&body)?;
    set_reserved(&api, &ns, &name, Some(req.reserved_concurrent_executions)).await?;
    Ok(Json(
        json!({ "ReservedConcurrentExecutions": req.reserved_concurrent_executions }),
    ))
}

async fn get_concurrency(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, None)?;
    let live = api.live(&ns, &f.name).await?;
    Ok(Json(match live.function.config.reserved_concurrency {
        Some(r) => json!({ "ReservedConcurrentExecutions": r }),
        None => json!({}),
    }))
}

async fn delete_concurrency(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, AwsError> {
    set_reserved(&api, &ns, &name, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The published version a provisioned-concurrency call is about: a version number, or an
/// alias's own version (never `$LATEST`, as on Lambda).
fn provisioned_target(
    api: &AwsApi,
    ns: &str,
    name: &str,
    qualifier: Option<&str>,
) -> Result<(String, u64), AwsError> {
    let f = api.scope(ns).parse(name, qualifier)?;
    api.known(ns, &f.name)?;
    let qualifier = f.qualifier.ok_or_else(|| {
        AwsError::InvalidParameterValue(
            "Qualifier is required: a version number or an alias".into(),
        )
    })?;
    let version = match api.app.registry.alias(ns, &f.name, &qualifier) {
        Some(alias) => alias.function_version,
        None => qualifier.clone(),
    };
    let number = version.parse::<u64>().map_err(|_| {
        AwsError::InvalidParameterValue(
            "Provisioned Concurrency Configs cannot be applied to unpublished function versions."
                .into(),
        )
    })?;
    Ok((f.name, number))
}

fn provisioned_view(
    api: &AwsApi,
    published: &lambent_gateway::versions::Published,
    started: Option<&Result<(), String>>,
) -> Value {
    let requested = published.version.function.config.provisioned_concurrency;
    let counts = api
        .app
        .registry
        .invoker()
        .revision_counts(&published.deployment);
    let allocated = ((counts.idle + counts.busy) as u32).min(requested);
    let mut view = json!({
        "RequestedProvisionedConcurrentExecutions": requested,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "AvailableProvisionedConcurrentExecutions": allocated,
        "LastModified": view::last_modified(lambent_core::now_ms()),
    });
    match started {
        Some(Err(reason)) => {
            view["Status"] = "FAILED".into();
            view["StatusReason"] = reason.clone().into();
        }
        _ if allocated < requested => view["Status"] = "IN_PROGRESS".into(),
        _ => view["Status"] = "READY".into(),
    }
    view
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProvisionedBody {
    provisioned_concurrent_executions: u32,
}

async fn put_provisioned(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: ProvisionedBody = body::json(&body)?;
    let (function, version) = provisioned_target(&api, &ns, &name, q.qualifier.as_deref())?;
    let (published, started) = api
        .app
        .registry
        .set_version_provisioned(
            &ns,
            &function,
            version,
            req.provisioned_concurrent_executions,
        )
        .await?;
    let view = provisioned_view(&api, &published, Some(&started));
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

async fn get_provisioned(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Json<Value>, AwsError> {
    let (function, version) = provisioned_target(&api, &ns, &name, q.qualifier.as_deref())?;
    let published = api
        .app
        .registry
        .published_versions(&ns, &function)
        .into_iter()
        .find(|p| p.version.version == version)
        .filter(|p| p.version.function.config.provisioned_concurrency > 0)
        .ok_or_else(|| {
            AwsError::ProvisionedConcurrencyConfigNotFound(format!(
                "No Provisioned Concurrency Config found for this function: {}",
                api.scope(&ns)
                    .qualified_arn(&function, &version.to_string())
            ))
        })?;
    Ok(Json(provisioned_view(&api, &published, None)))
}

async fn delete_provisioned(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<StatusCode, AwsError> {
    let (function, version) = provisioned_target(&api, &ns, &name, q.qualifier.as_deref())?;
    // Lowering to 0 starts nothing: there is no start-up to report.
    let (_, _nothing_started) = api
        .app
        .registry
        .set_version_provisioned(&ns, &function, version, 0)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
