//! API keys: `Authorization: Bearer <key>` names the caller — a [`Principal`]: the namespace
//! acted in, the key's role and id. Keys are stored as SHA-256 digests; known digests are
//! cached so that a request costs no database read. The operator's key acts in `default`, or
//! in the namespace its request names in `Lambent-Namespace`. Every request is then checked
//! against the access table ([`crate::access`]); management actions are written to the
//! namespace's audit log.

use crate::access;
use crate::{ApiError, App};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use lambent_core::tenancy::{Access, Role};
use lambent_store::tenants::{ApiKey, AuditEntry};
use lambent_store::Store;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// Who a request acts as: set by the API-key gate, the AWS APIs' signature gates and the
/// console's sessions (request extensions never come from the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The namespace acted in.
    pub namespace: String,
    pub role: Role,
    /// The key's id (an API key's `lk-…`, an access key's id, a session credential's).
    pub key_id: String,
}

impl Principal {
    /// Whether this is the operator (every namespace, and the namespaces themselves).
    pub fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }

    /// Refuses what the role may not do.
    pub fn require(&self, access: Access) -> Result<(), ApiError> {
        if self.role.may(access) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(access::refusal(self.role, access)))
        }
    }
}

/// The header the operator's requests name the namespace they act in with.
pub const NAMESPACE_HEADER: &str = "lambent-namespace";

/// Lookup of API keys, with a cache of the ones seen.
#[derive(Default)]
pub struct ApiKeys {
    known: RwLock<HashMap<String, ApiKey>>,
}

impl ApiKeys {
    /// The stored key of a secret, if it is known and not expired.
    pub async fn lookup(&self, store: &dyn Store, key: &str) -> Result<Option<ApiKey>, ApiError> {
        let digest = lambent_store::sha256_hex(key.as_bytes());
        self.lookup_digest(store, &digest).await
    }

    /// [`ApiKeys::lookup`] by the key's SHA-256 digest (what a console session keeps).
    pub async fn lookup_digest(
        &self,
        store: &dyn Store,
        digest: &str,
    ) -> Result<Option<ApiKey>, ApiError> {
        let digest = digest.to_string();
        let cached = self.known.read().get(&digest).cloned();
        let found = match cached {
            Some(k) => Some(k),
            None => {
                let k = store.api_key(&digest).await?;
                if let Some(k) = &k {
                    self.known.write().insert(digest, k.clone());
                }
                k
            }
        };
        Ok(found.filter(|k| k.valid_at(lambent_core::now_ms())))
    }

    /// The principal of a key (acting in its own namespace), if the key is valid.
    pub async fn principal(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<Principal>, ApiError> {
        Ok(self.lookup(store, key).await?.map(|k| Principal {
            namespace: k.namespace,
            role: k.role,
            key_id: k.key_id,
        }))
    }

    /// Forgets the cached keys (a key was added, rotated or removed somewhere in the cluster).
    pub fn forget(&self) {
        self.known.write().clear();
    }
}

/// The key a request carries in `Authorization: Bearer`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// The operator's principal moved to the namespace its request names (which must exist);
/// another key naming a namespace not its own is refused.
pub async fn acting_in(
    app: &App,
    mut principal: Principal,
    headers: &HeaderMap,
) -> Result<Principal, ApiError> {
    let Some(wanted) = headers.get(NAMESPACE_HEADER).and_then(|v| v.to_str().ok()) else {
        return Ok(principal);
    };
    if wanted == principal.namespace {
        return Ok(principal);
    }
    if !principal.is_operator() {
        return Err(ApiError::Forbidden(
            "this key acts in its own namespace only".into(),
        ));
    }
    if app.store.get_namespace(wanted).await?.is_none() {
        return Err(ApiError::NamespaceNotFound(wanted.into()));
    }
    principal.namespace = wanted.to_string();
    Ok(principal)
}

/// What a request's route needs, refusing a route without a rule. A method the table has no
/// rule for on a path it has rules for is one the path does not serve (every served route has
/// a rule: the table-driven test checks it over the real router), so it is `405`; the gates
/// see such requests because axum's layers also wrap the method-not-allowed answer.
pub fn route_need(request: &Request) -> Result<Option<Access>, ApiError> {
    let method = request.method().as_str();
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return Err(ApiError::Forbidden("no access rule for this path".into()));
    };
    let route = route.as_str();
    match access::need(method, route, request.uri().path()) {
        Some(need) => Ok(need),
        None if access::RULES.iter().any(|r| r.path == route) => {
            Err(ApiError::MethodNotAllowed(method.to_string()))
        }
        None => Err(ApiError::Forbidden(format!(
            "no access rule for {method} {route}: refused"
        ))),
    }
}

/// Authenticates a request by its API key and checks its role against the access table. A
/// request that already carries a [`Principal`] (set by a layer of this process, such as the
/// console's session check) is checked as it is.
pub async fn require_key(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let need = route_need(&request)?;
    let principal = match request.extensions().get::<Principal>() {
        Some(p) => p.clone(),
        None => {
            let key = bearer(request.headers()).ok_or(ApiError::Unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' (lambent up prints the key)",
            ))?;
            app.keys
                .principal(app.store.as_ref(), key)
                .await?
                .ok_or(ApiError::Unauthorized("unknown API key, or an expired one"))?
        }
    };
    let principal = acting_in(&app, principal, request.headers()).await?;
    if let Some(need) = need {
        principal.require(need)?;
    }
    request.extensions_mut().insert(principal.clone());
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let audited = need.filter(|n| audited(*n) && !reads).map(|_| {
        (
            request.method().clone(),
            request.uri().path().to_string(),
            target_of(&request),
            client_of(&request),
        )
    });
    let response = next.run(request).await;
    if let Some((method, path, target, client)) = audited {
        let entry = AuditEntry {
            namespace: principal.namespace.clone(),
            at_ms: lambent_core::now_ms(),
            key_id: principal.key_id.clone(),
            role: principal.role,
            method: method.to_string(),
            action: path,
            target,
            status: response.status().as_u16(),
            client,
        };
        app.audit(entry).await;
    }
    Ok(response)
}

/// Whether an action of this kind is a management action (kept in the audit log, unless it
/// only reads: a `GET` of keys or of the audit log is not one).
pub fn audited(need: Access) -> bool {
    matches!(need, Access::Write | Access::Manage | Access::Operate)
}

/// The path parameters a request's route names, joined by `/` (the resource acted on).
fn target_of(request: &Request) -> String {
    let Some(route) = request.extensions().get::<MatchedPath>() else {
        return String::new();
    };
    let path = request.uri().path();
    let mut actual = path.split('/');
    let mut params = Vec::new();
    for segment in route.as_str().split('/') {
        if segment.starts_with("{*") {
            params.push(actual.collect::<Vec<_>>().join("/"));
            break;
        }
        let value = actual.next().unwrap_or("");
        if segment.starts_with('{') {
            params.push(value.to_string());
        }
    }
    params.join("/")
}

/// The client's address, as the listener saw it.
pub fn client_of(request: &Request) -> String {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default()
}

impl App {
    /// Writes a management action to the audit log (a failure is logged: the action is
    /// done either way).
    pub async fn audit(&self, entry: AuditEntry) {
        if let Err(e) = self.store.append_audit(std::slice::from_ref(&entry)).await {
            tracing::error!(
                "could not write the audit entry of {} {}: {e}",
                entry.method,
                entry.action
            );
        }
    }
}
