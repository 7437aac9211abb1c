//! Functions: `CreateFunction`, `GetFunction`, `GetFunctionConfiguration`, `ListFunctions`,
//! `UpdateFunctionCode`, `UpdateFunctionConfiguration`, `DeleteFunction`. Each is a call on the
//! gateway's registry, the same one `/v1` uses: a function made here is a Lambent function.

use crate::arn::{FunctionRef, Scope};
use crate::{view, AwsApi, AwsError};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use base64::Engine;
use bytes::Bytes;
use lambent_core::{FunctionName, FunctionSpec, ValidationError};
use lambent_gateway::versions::LATEST;
use lambent_gateway::{body, ApiError, Principal};
use lambent_invoker::Deployment;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) type ApiState = State<Arc<AwsApi>>;
pub(crate) type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<AwsApi>> {
    Router::new()
        .route(
            "/2015-03-31/functions",
            post(create_function).get(list_functions),
        )
        .route("/2015-03-31/functions/", get(list_functions))
        .route(
            "/2015-03-31/functions/{name}",
            get(get_function).delete(delete_function),
        )
        .route(
            "/2015-03-31/functions/{name}/configuration",
            get(get_function_configuration).put(update_function_configuration),
        )
        .route(
            "/2015-03-31/functions/{name}/code",
            put(update_function_code),
        )
}

impl From<ValidationError> for AwsError {
    fn from(e: ValidationError) -> AwsError {
        ApiError::Invalid(e).into()
    }
}

impl AwsApi {
    pub(crate) fn scope<'a>(&'a self, namespace: &'a str) -> Scope<'a> {
        Scope {
            region: &self.region,
            namespace,
        }
    }

    /// The live deployment of a function named in a path.
    /// The live deployment of a function this node knows (callers that checked with
    /// [`AwsApi::live`] first).
    pub(crate) fn known(&self, namespace: &str, name: &str) -> Result<Arc<Deployment>, AwsError> {
        FunctionName::parse(name)?;
        self.app
            .registry
            .lookup(namespace, name)
            .ok_or_else(|| not_found(&self.scope(namespace).function_arn(name)))
    }

    /// The live deployment of a function (read from the store if this node does not know it
    /// yet: in a cluster it may have been deployed on another node a moment ago).
    pub(crate) async fn live(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Deployment>, AwsError> {
        FunctionName::parse(name)?;
        self.app
            .registry
            .find(namespace, name)
            .await?
            .ok_or_else(|| not_found(&self.scope(namespace).function_arn(name)))
    }

    /// The configuration of `name[:qualifier]`; an alias shows its own (primary) version.
    pub(crate) fn configuration(
        &self,
        namespace: &str,
        f: &FunctionRef,
    ) -> Result<Value, AwsError> {
        let scope = self.scope(namespace);
        let live = self.known(namespace, &f.name)?;
        let registry = &self.app.registry;
        let version = match f.qualifier.as_deref() {
            None | Some(LATEST) => None,
            Some(q) => Some(
                registry
                    .alias(namespace, &f.name, q)
                    .map_or(q.to_string(), |a| a.function_version),
            ),
        };
        match version.as_deref() {
            None | Some(LATEST) => Ok(view::function_configuration(
                &scope,
                &live.function,
                None,
                None,
            )),
            Some(v) => registry
                .published_versions(namespace, &f.name)
                .into_iter()
                .find(|p| p.version.version.to_string() == v)
                .map(|p| {
                    view::function_configuration(
                        &scope,
                        &p.version.function,
                        Some(p.version.version),
                        Some(&p.version.description),
                    )
                })
                .ok_or_else(|| not_found(&scope.qualified_arn(&f.name, v))),
        }
    }
}

pub(crate) fn not_found(arn: &str) -> AwsError {
    AwsError::ResourceNotFound(format!("Function not found: {arn}"))
}

#[derive(Deserialize, Default)]
pub(crate) struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    pub qualifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateFunction {
    function_name: String,
    runtime: Option<String>,
    handler: Option<String>,
    memory_size: Option<u32>,
    timeout: Option<u32>,
    environment: Option<Environment>,
    description: Option<String>,
    #[serde(default)]
    publish: bool,
    code: Code,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Environment {
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Code {
    zip_file: Option<String>,
    #[serde(rename = "S3Bucket")]
    s3_bucket: Option<String>,
    image_uri: Option<String>,
}

/// Checks and stores a base64 `ZipFile`; returns its hex SHA-256.
async fn store_zip(api: &AwsApi, code: &Code) -> Result<String, AwsError> {
    let Some(zip_base64) = &code.zip_file else {
        let what = match (&code.s3_bucket, &code.image_uri) {
            (Some(_), _) => "S3 locations",
            (_, Some(_)) => "container images",
            _ => "code without a ZipFile",
        };
        return Err(AwsError::InvalidParameterValue(format!(
            "Lambent takes code as a base64 ZipFile: {what} are not supported"
        )));
    };
    let zip = base64::engine::general_purpose::STANDARD
        .decode(zip_base64.trim())
        .map_err(|e| AwsError::InvalidParameterValue(format!("ZipFile is not base64: {e}")))?;
    if zip.len() > lambent_core::limits::MAX_CODE_ZIP {
        return Err(AwsError::RequestTooLarge(format!(
            "the code zip is {} bytes: the limit is {}",
            zip.len(),
            lambent_core::limits::MAX_CODE_ZIP
        )));
    }
    let stored = api.app.registry.upload_code(Bytes::from(zip)).await?;
    Ok(stored.sha256)
}

async fn create_function(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: CreateFunction = body::json(&body)?;
    let name = FunctionName::parse(&req.function_name)?;
    let scope = api.scope(&ns);
    if api.app.registry.lookup(&ns, name.as_str()).is_some() {
        return Err(AwsError::ResourceConflict(format!(
            "Function already exist: {name}"
        )));
    }
    let runtime = req.runtime.ok_or_else(|| {
        AwsError::InvalidParameterValue(
            "Runtime is required: Lambent runs .zip packages (PackageType Zip)".into(),
        )
    })?;
    let sha256 = store_zip(&api, &req.code).await?;
    let spec = FunctionSpec {
        runtime,
        handler: req.handler,
        memory: req.memory_size,
        timeout: req.timeout,
        env: req.environment.unwrap_or_default().variables,
        description: req.description,
        ..Default::default()
    };
    let deployed = api
        .app
        .registry
        .deploy(&ns, name.clone(), spec, sha256)
        .await?;
    let view = if req.publish {
        let p = api
            .app
            .registry
            .publish_version(&ns, name.as_str(), "")
            .await?;
        view::function_configuration(&scope, &p.version.function, Some(p.version.version), None)
    } else {
        view::function_configuration(&scope, &deployed.deployment.function, None, None)
    };
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn get_function(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, q.qualifier.as_deref())?;
    let configuration = api.configuration(&ns, &f)?;
    let live = api.live(&ns, &f.name).await?;
    let mut view = json!({
        "Configuration": configuration,
        "Code": {"RepositoryType": "Lambent"},
        "Tags": {},
    });
    if let Some(reserved) = live.function.config.reserved_concurrency {
        view["Concurrency"] = json!({ "ReservedConcurrentExecutions": reserved });
    }
    Ok(Json(view))
}

async fn get_function_configuration(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Json<Value>, AwsError> {
    let f = api.scope(&ns).parse(&name, q.qualifier.as_deref())?;
    Ok(Json(api.configuration(&ns, &f)?))
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
    #[serde(rename = "FunctionVersion")]
    function_version: Option<String>,
}

/// One page of `items` as the answer `{key: [...], "NextMarker"?}`: `Marker` is the offset
/// the previous page ended at.
pub(crate) fn page(
    key: &str,
    items: Vec<Value>,
    marker: Option<&str>,
    max_items: Option<usize>,
) -> Result<Json<Value>, AwsError> {
    let start: usize = match marker {
        None | Some("") => 0,
        Some(m) => m.parse().map_err(|_| {
            AwsError::InvalidParameterValue(format!("invalid Marker '{m}': pass back a NextMarker"))
        })?,
    };
    let max = max_items.unwrap_or(50).clamp(1, 10_000);
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    let items: Vec<Value> = items.into_iter().skip(start).take(max).collect();
    let mut view = json!({ key: items });
    if let Some(next) = next {
        view["NextMarker"] = next.into();
    }
    Ok(Json(view))
}

/// The configuration of `$LATEST`, followed by those of its published versions when asked.
pub(crate) fn configurations(
    scope: &crate::arn::Scope<'_>,
    registry: &lambent_gateway::Registry,
    latest: &lambent_core::Function,
    versions: bool,
) -> Vec<Value> {
    let mut items = vec![view::function_configuration(scope, latest, None, None)];
    if versions {
        let f = latest;
        for p in registry.published_versions(&f.namespace, f.name.as_str()) {
            items.push(view::function_configuration(
                scope,
                &p.version.function,
                Some(p.version.version),
                Some(&p.version.description),
            ));
        }
    }
    items
}

async fn list_functions(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AwsError> {
    let all_versions = match q.function_version.as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(AwsError::InvalidParameterValue(format!(
                "FunctionVersion '{other}' is not supported: use ALL"
            )))
        }
    };
    let scope = api.scope(&ns);
    let registry = &api.app.registry;
    let items = registry
        .list(&ns)
        .iter()
        .flat_map(|d| configurations(&scope, registry, &d.function, all_versions))
        .collect();
    page("Functions", items, q.marker.as_deref(), q.max_items)
}

/// Refuses an update made against an older `RevisionId`.
fn check_revision(d: &Deployment, revision_id: Option<&str>) -> Result<(), AwsError> {
    match revision_id {
        Some(r) if r != view::revision_id(&d.function) => Err(AwsError::PreconditionFailed(
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id".into(),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateCode {
    #[serde(flatten)]
    code: Code,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    dry_run: bool,
    revision_id: Option<String>,
}

async fn update_function_code(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AwsError> {
    let req: UpdateCode = body::json(&body)?;
    let f = api.scope(&ns).parse(&name, None)?;
    let live = api.live(&ns, &f.name).await?;
    check_revision(&live, req.revision_id.as_deref())?;
    let sha256 = store_zip(&api, &req.code).await?;
    if req.dry_run {
        return api.configuration(&ns, &f).map(Json);
    }
    let spec = live.function.config.to_spec();
    redeploy(&api, &ns, &live, spec, sha256, req.publish).await
}

/// Deploys new settings or code as the next revision of a live function (and publishes it).
pub(crate) async fn redeploy(
    api: &AwsApi,
    ns: &str,
    live: &Deployment,
    spec: FunctionSpec,
    sha256: String,
    publish: bool,
) -> Result<Json<Value>, AwsError> {
    let scope = api.scope(ns);
    let registry = &api.app.registry;
    let name = live.function.name.clone();
    let deployed = registry.deploy(ns, name.clone(), spec, sha256).await?;
    if publish {
        let p = registry.publish_version(ns, name.as_str(), "").await?;
        return Ok(Json(view::function_configuration(
            &scope,
            &p.version.function,
            Some(p.version.version),
            None,
        )));
    }
    Ok(Json(view::function_configuration(
        &scope,
        &deployed.deployment.function,
        None,
        None,
    )))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfiguration {
    runtime: Option<String>,
    handler: Option<String>,
    memory_size: Option<u32>,
    timeout: Option<u32>,
    environment: Option<Environment>,
    description: Option<String>,
    revision_id: Option<String>,
}

async fn update_function_configuration(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, AwsError> {
    let req: UpdateConfiguration = body::json(&body)?;
    let f = api.scope(&ns).parse(&name, None)?;
    let live = api.live(&ns, &f.name).await?;
    check_revision(&live, req.revision_id.as_deref())?;
    let mut spec = live.function.config.to_spec();
    if let Some(runtime) = req.runtime {
        spec.runtime = runtime;
    }
    spec.handler = req.handler.or(spec.handler);
    spec.memory = req.memory_size.or(spec.memory);
    spec.timeout = req.timeout.or(spec.timeout);
    spec.description = req.description.or(spec.description);
    if let Some(env) = req.environment {
        spec.env = env.variables;
    }
    let sha256 = live.function.code_sha256.clone();
    redeploy(&api, &ns, &live, spec, sha256, false).await
}

async fn delete_function(
    State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<StatusCode, AwsError> {
    let f = api.scope(&ns).parse(&name, q.qualifier.as_deref())?;
    api.live(&ns, &f.name).await?;
    match f.qualifier.as_deref() {
        None => api.app.registry.delete(&ns, &f.name).await?,
        Some(q) => {
            let version = q.parse::<u64>().map_err(|_| {
                AwsError::InvalidParameterValue(format!(
                    "Qualifier '{q}': only a published version number can be deleted (or no qualifier, for the whole function)"
                ))
            })?;
            api.app
                .registry
                .delete_version(&ns, &f.name, version)
                .await?
        }
    }
    Ok(StatusCode::NO_CONTENT)
}
