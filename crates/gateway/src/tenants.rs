//! Tenants over HTTP: `/v1/namespaces` (the operator's: create with an owner key, list, get
//! with what it holds, update settings, claim and release host names for its routes, delete —
//! refused while it holds anything unless `?force=true`, which deletes everything of it, its
//! host names released), the namespace's API keys with roles under
//! `/v1/api-keys` (create, list, rotate with a grace period, delete), `/v1/audit` and
//! `/v1/whoami`.

use crate::auth::Principal;
use crate::{body, ApiError, App};
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lambent_core::tenancy::{self, Namespace, NamespaceSettings, Role};
use lambent_core::TenantLimits;
use lambent_store::bus::Signal;
use lambent_store::tenants::{ApiKey, AuditQuery};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

type AppState = State<Arc<App>>;
type Who = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/namespaces", get(list).post(create))
        .route(
            "/v1/namespaces/{name}",
            get(show).patch(update).delete(remove),
        )
        .route("/v1/namespaces/{name}/hosts", post(claim_host))
        .route(
            "/v1/namespaces/{name}/hosts/{host}",
            axum::routing::delete(release_host),
        )
        .route("/v1/api-keys", get(list_keys).post(create_key))
        .route("/v1/api-keys/{id}", axum::routing::delete(delete_key))
        .route("/v1/api-keys/{id}/rotate", post(rotate_key))
        .route("/v1/audit", get(audit))
        .route("/v1/whoami", get(whoami))
}

/// The largest request body of these routes.
const MAX_BODY: usize = 64 * 1024;

/// A new API key's secret: `lk_` and 48 hex digits.
pub fn new_secret() -> String {
    format!("lk_{}", hex::encode(rand::random::<[u8; 24]>()))
}

fn new_key_id() -> String {
    format!("lk-{}", hex::encode(rand::random::<[u8; 6]>()))
}

/// `name` and the settings beside it (unknown settings are refused by the settings' type).
#[derive(Deserialize)]
struct CreateNamespace {
    name: String,
    #[serde(default, flatten)]
    settings: NamespaceSettings,
}

/// `POST /v1/namespaces`: the namespace and its first owner key (whose secret is shown only
/// in this answer).
async fn create(State(app): AppState, body: Body) -> Result<Response, ApiError> {
    let bytes = body::read(body, MAX_BODY, "the namespace").await?;
    let req: CreateNamespace = body::json(&bytes)?;
    tenancy::validate_namespace_name(&req.name)?;
    req.settings.validate()?;
    let now = lambent_core::now_ms();
    let ns = Namespace {
        name: req.name,
        settings: req.settings,
        created_ms: now,
        updated_ms: now,
    };
    if !app.store.create_namespace(&ns).await? {
        return Err(ApiError::Conflict(format!(
            "namespace '{}' exists",
            ns.name
        )));
    }
    app.namespace_changed(&ns.name).await;
    let (key, secret) = issue_key(&app, &ns.name, Role::Owner, None).await?;
    let mut view = serde_json::to_value(&ns).unwrap_or_default();
    view["owner_key"] = key_view(&key, Some(&secret));
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list(State(app): AppState) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "namespaces": app.store.list_namespaces().await? }),
    ))
}

async fn find_namespace(app: &App, name: &str) -> Result<Namespace, ApiError> {
    app.store
        .get_namespace(name)
        .await?
        .ok_or_else(|| ApiError::NamespaceNotFound(name.into()))
}

/// `GET /v1/namespaces/{name}`: its settings and what it holds (table → rows).
async fn show(State(app): AppState, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    let ns = find_namespace(&app, &name).await?;
    let holds: BTreeMap<String, u64> = app
        .store
        .namespace_contents(&name)
        .await?
        .into_iter()
        .collect();
    let mut view = serde_json::to_value(&ns).unwrap_or_default();
    view["holds"] = json!(holds);
    view["account_id"] = json!(ns.name);
    view["hosts"] = json!(app.routes.hosts(&name));
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimHost {
    host: String,
}

/// `POST /v1/namespaces/{name}/hosts` `{"host"}`: requests to that host name are matched
/// against the namespace's routes only (`201`; `200` if it held it already; `409` if another
/// namespace holds it). Answers the namespace's host names.
async fn claim_host(
    State(app): AppState,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, MAX_BODY, "the host name").await?;
    let req: ClaimHost = body::json(&bytes)?;
    let host = lambent_core::route::claimable_host(&req.host)?;
    find_namespace(&app, &name).await?;
    let new = app.routes.claim_host(&name, &host).await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let view = json!({"namespace": name, "hosts": app.routes.hosts(&name)});
    Ok((status, Json(view)).into_response())
}

/// `DELETE /v1/namespaces/{name}/hosts/{host}`: the host name is released; the namespace's
/// routes join the global path space when it was its last.
async fn release_host(
    State(app): AppState,
    Path((name, host)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    find_namespace(&app, &name).await?;
    let host = lambent_core::route::request_host(&host).into_owned();
    app.routes.release_host(&name, &host).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/namespaces/{name}`: the settings named in the body change (`null` unsets one).
async fn update(
    State(app): AppState,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(body, MAX_BODY, "the settings").await?;
    let patch: serde_json::Map<String, Value> = body::json(&bytes)?;
    let mut ns = find_namespace(&app, &name).await?;
    let mut merged = match serde_json::to_value(&ns.settings) {
        Ok(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(&k);
        } else {
            merged.insert(k, v);
        }
    }
    ns.settings = serde_json::from_value(Value::Object(merged))
        .map_err(|e| ApiError::InvalidJson(format!("invalid settings: {e}")))?;
    ns.settings.validate()?;
    ns.updated_ms = lambent_core::now_ms();
    if !app.store.update_namespace(&ns).await? {
        return Err(ApiError::NamespaceNotFound(name));
    }
    app.namespace_changed(&ns.name).await;
    Ok(Json(serde_json::to_value(&ns).unwrap_or_default()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/namespaces/{name}[?force=true]`.
async fn remove(
    State(app): AppState,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    if name == lambent_core::DEFAULT_NAMESPACE {
        return Err(ApiError::Conflict(
            "the default namespace cannot be deleted".into(),
        ));
    }
    find_namespace(&app, &name).await?;
    let holds = app.store.namespace_contents(&name).await?;
    if !holds.is_empty() && !q.force {
        let what: Vec<String> = holds.iter().map(|(t, n)| format!("{t} ({n})")).collect();
        return Err(ApiError::Conflict(format!(
            "namespace '{name}' is not empty: it holds {}; delete them first, or delete with force=true",
            what.join(", ")
        )));
    }
    app.purge_namespace(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

impl App {
    /// Deletes everything of a namespace, in order: functions (with their versions and
    /// aliases), event-source mappings (their pollers stop), routes, then the namespace's
    /// sandboxes, package zygotes and cgroup on this node, the activation records still on
    /// their way to the store, then every record the store holds of it in one transaction
    /// (queues and messages, topics, subscriptions, schedules, dead letters, buckets, objects
    /// and uploads, tables and items, workflows and executions, activations, keys, audit log,
    /// host names, the namespace), then the data of its objects and parts. Caches of every
    /// node are told; the other nodes remove its sandboxes when told.
    pub async fn purge_namespace(&self, namespace: &str) -> Result<bool, ApiError> {
        for d in self.registry.list(namespace) {
            match self
                .registry
                .delete(namespace, d.function.name.as_str())
                .await
            {
                Ok(()) | Err(ApiError::FunctionNotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        for m in self.queues.list_mappings(namespace).await? {
            // Gone already (another purge, another node): what matters is that it is gone.
            let _ = self.queues.delete_mapping(namespace, &m.id).await;
        }
        for r in self.routes.list(namespace) {
            match self.routes.remove(namespace, &r.id).await {
                Ok(()) | Err(ApiError::RouteNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        // No sandbox of it runs here any more, so no record of it is made after the flush.
        if let Err(e) = self.registry.invoker().remove_namespace(namespace).await {
            tracing::warn!("could not remove namespace '{namespace}''s sandboxes: {e}");
        }
        self.recorder.flush().await;
        let purged = self.store.purge_namespace(namespace).await?;
        match self.object_data.get() {
            Some(data) => data.discard(&purged.object_data).await,
            None if purged.object_data.is_empty() => {}
            None => tracing::warn!(
                "no object store to delete namespace '{namespace}''s object data: the data store's garbage collection will"
            ),
        }
        // Its host names went with its records: this node's table forgets them now.
        self.routes.reload().await?;
        self.keys.forget();
        self.credentials.forget_all();
        for signal in [Signal::Keys, Signal::Mappings, Signal::Routes] {
            self.bus.publish(signal);
        }
        self.namespace_changed(namespace).await;
        Ok(purged.existed)
    }

    /// A namespace was created, changed or deleted here: this node applies it, and every
    /// other node is told to.
    async fn namespace_changed(&self, name: &str) {
        self.apply_namespace(name).await;
        self.bus.publish(Signal::Namespace { name: name.into() });
    }

    /// Applies namespace `name`'s stored settings to this node's sandboxes: the CPU weight
    /// and memory cap of its cgroup, or, when it no longer exists, the removal of every
    /// sandbox, zygote and cgroup of it here.
    pub async fn apply_namespace(&self, name: &str) {
        match self.store.get_namespace(name).await {
            Ok(Some(ns)) => self.apply_limits(&ns),
            Ok(None) => {
                self.registry.quotas.set(name, None);
                self.registry
                    .invoker()
                    .set_namespace_concurrency(name, None);
                if let Err(e) = self.registry.invoker().remove_namespace(name).await {
                    tracing::warn!("could not remove namespace '{name}''s sandboxes: {e}");
                }
            }
            Err(e) => tracing::warn!("could not read namespace '{name}': {e}"),
        }
    }

    /// Applies every stored namespace's settings to this node's sandboxes (at start-up, and
    /// at each resync in case a signal was lost).
    pub async fn apply_namespaces(&self) {
        match self.store.list_namespaces().await {
            Ok(all) => all.iter().for_each(|ns| self.apply_limits(ns)),
            Err(e) => tracing::warn!("could not read the namespaces: {e}"),
        }
    }

    fn apply_limits(&self, ns: &Namespace) {
        self.registry.quotas.set(&ns.name, Some(&ns.settings));
        self.registry
            .invoker()
            .set_namespace_concurrency(&ns.name, ns.settings.concurrency);
        let limits = TenantLimits::with_memory_budget_mb(ns.settings.memory_budget_mb);
        if self.registry.invoker().tenant_limits(&ns.name) == limits {
            return;
        }
        if let Err(e) = self.registry.invoker().set_tenant_limits(&ns.name, limits) {
            tracing::warn!("could not set namespace '{}''s limits: {e}", ns.name);
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    role: Option<String>,
    /// Seconds until the key expires.
    expires_in_s: Option<u64>,
}

/// A role a namespace's key may be given.
pub fn namespace_role(text: Option<&str>) -> Result<Role, ApiError> {
    match text.unwrap_or("owner").parse::<Role>() {
        Ok(Role::Operator) => Err(ApiError::InvalidParameter(
            "a namespace's key cannot be given the operator's role".into(),
        )),
        Ok(role) => Ok(role),
        Err(e) => Err(ApiError::InvalidParameter(e.to_string())),
    }
}

/// The instant `seconds` from now.
pub fn expiry(seconds: Option<u64>) -> Result<Option<i64>, ApiError> {
    match seconds {
        Some(0) => Err(ApiError::InvalidParameter(
            "expires_in_s must be greater than zero".into(),
        )),
        Some(s) => Ok(Some(
            lambent_core::now_ms().saturating_add((s as i64).saturating_mul(1000)),
        )),
        None => Ok(None),
    }
}

async fn issue_key(
    app: &App,
    namespace: &str,
    role: Role,
    expires_ms: Option<i64>,
) -> Result<(ApiKey, String), ApiError> {
    let secret = new_secret();
    let key = ApiKey {
        key_id: new_key_id(),
        namespace: namespace.into(),
        role,
        key_sha256: lambent_store::sha256_hex(secret.as_bytes()),
        created_ms: lambent_core::now_ms(),
        expires_ms,
    };
    app.store.put_api_key(&key).await?;
    Ok((key, secret))
}

fn key_view(key: &ApiKey, secret: Option<&str>) -> Value {
    let mut v = serde_json::to_value(key).unwrap_or_default();
    if let Some(secret) = secret {
        v["secret"] = json!(secret);
    }
    v
}

/// `POST /v1/api-keys`: a key of the namespace with a role (default `owner`) and an optional
/// lifetime; the secret is in this answer only.
async fn create_key(
    State(app): AppState,
    Extension(who): Who,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, MAX_BODY, "the key").await?;
    let req: CreateKey = body::json_or_default(&bytes)?;
    let role = namespace_role(req.role.as_deref())?;
    let expires_ms = expiry(req.expires_in_s)?;
    let (key, secret) = issue_key(&app, &who.namespace, role, expires_ms).await?;
    Ok((StatusCode::CREATED, Json(key_view(&key, Some(&secret)))).into_response())
}

/// `GET /v1/api-keys`: one entry per key (a rotated key's secrets in grace are counted).
async fn list_keys(State(app): AppState, Extension(who): Who) -> Result<Json<Value>, ApiError> {
    let now = lambent_core::now_ms();
    let mut keys: BTreeMap<String, Value> = BTreeMap::new();
    for k in app.store.list_api_keys(&who.namespace).await? {
        let valid = k.valid_at(now);
        let entry = keys
            .entry(k.key_id.clone())
            .or_insert_with(|| json!({"secrets": 0}));
        let secrets = entry["secrets"].as_u64().unwrap_or(0) + u64::from(valid);
        // The newest secret's settings are the key's.
        *entry = key_view(&k, None);
        entry["secrets"] = json!(secrets);
    }
    let keys: Vec<Value> = keys.into_values().collect();
    Ok(Json(json!({ "keys": keys })))
}

async fn delete_key(
    State(app): AppState,
    Extension(who): Who,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !app.store.delete_api_key(&who.namespace, &id).await? {
        return Err(ApiError::ApiKeyNotFound(id));
    }
    app.keys.forget();
    app.bus.publish(Signal::Keys);
    Ok(StatusCode::NO_CONTENT)
}

/// A rotation's body (API keys and access keys alike).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotate {
    /// Seconds the old secret keeps working (default 0: it stops now).
    #[serde(default)]
    pub grace_s: u64,
}

impl Rotate {
    /// Reads a rotation's (optional) body.
    pub(crate) async fn read(body: Body) -> Result<Rotate, ApiError> {
        let bytes = body::read(body, MAX_BODY, "the rotation").await?;
        body::json_or_default(&bytes)
    }

    /// The instant the old secret stops working, from `now_ms`.
    pub(crate) fn grace_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add((self.grace_s as i64).saturating_mul(1000))
    }
}

/// `POST /v1/api-keys/{id}/rotate`: a new secret for the key; the old ones keep working for
/// the grace period.
async fn rotate_key(
    State(app): AppState,
    Extension(who): Who,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req = Rotate::read(body).await?;
    let current = app
        .store
        .list_api_keys(&who.namespace)
        .await?
        .into_iter()
        .filter(|k| k.key_id == id)
        .max_by_key(|k| k.created_ms)
        .ok_or_else(|| ApiError::ApiKeyNotFound(id.clone()))?;
    let now = lambent_core::now_ms();
    let secret = new_secret();
    let new = ApiKey {
        key_sha256: lambent_store::sha256_hex(secret.as_bytes()),
        created_ms: now,
        ..current
    };
    let grace_until = req.grace_until(now);
    if !app.store.rotate_api_key(&new, grace_until).await? {
        return Err(ApiError::ApiKeyNotFound(id));
    }
    app.keys.forget();
    app.bus.publish(Signal::Keys);
    let mut view = key_view(&new, Some(&secret));
    view["old_secrets_valid_until_ms"] = json!(grace_until);
    Ok(Json(view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    since_ms: Option<i64>,
    limit: Option<usize>,
    /// The operator's: one namespace's entries (else every namespace's).
    namespace: Option<String>,
}

/// `GET /v1/audit`: the management actions, newest first (the operator's: every namespace's).
async fn audit(
    State(app): AppState,
    Extension(who): Who,
    Query(q): Query<AuditParams>,
) -> Result<Json<Value>, ApiError> {
    let namespace = if who.is_operator() {
        q.namespace
    } else {
        Some(who.namespace)
    };
    let entries = app
        .store
        .query_audit(&AuditQuery {
            namespace,
            since_ms: q.since_ms,
            limit: q.limit.unwrap_or(200).clamp(1, 10_000),
        })
        .await?;
    Ok(Json(json!({ "entries": entries })))
}

async fn whoami(Extension(who): Who) -> Json<Value> {
    Json(json!({ "namespace": who.namespace, "role": who.role, "key_id": who.key_id }))
}
