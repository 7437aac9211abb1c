//! API keys: `Authorization: Bearer <key>` names the caller's namespace. Keys are stored as
//! SHA-256 digests; known digests are cached so that a request costs no database read.

use crate::{ApiError, App};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use lambent_store::Store;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// The namespace an authenticated request acts in.
#[derive(Debug, Clone)]
pub struct Namespace(pub String);

/// Lookup of API keys, with a cache of the ones seen.
#[derive(Default)]
pub struct ApiKeys {
    known: RwLock<HashMap<String, String>>,
}

impl ApiKeys {
    /// The namespace of a key, or `None` for an unknown key.
    pub async fn namespace(
        &self,
        store: &dyn Store,
        key: &str,
    ) -> Result<Option<String>, ApiError> {
        let digest = lambent_store::sha256_hex(key.as_bytes());
        if let Some(ns) = self.known.read().get(&digest) {
            return Ok(Some(ns.clone()));
        }
        let ns = store.namespace_for_key(&digest).await?;
        if let Some(ns) = &ns {
            self.known.write().insert(digest, ns.clone());
        }
        Ok(ns)
    }

    /// Forgets the cached keys (a key was added or removed somewhere in the cluster).
    pub fn forget(&self) {
        self.known.write().clear();
    }
}

/// Authenticates a request by its API key. A request that already carries a [`Namespace`]
/// (set by a layer of this process, such as the console's session check: extensions never come
/// from the wire) passes as it is.
pub async fn require_key(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if request.extensions().get::<Namespace>().is_some() {
        return Ok(next.run(request).await);
    }
    let key = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or(ApiError::Unauthorized(
            "missing API key: send 'Authorization: Bearer <key>' (lambent up prints the key)",
        ))?;
    let namespace = app
        .keys
        .namespace(app.store.as_ref(), key)
        .await?
        .ok_or(ApiError::Unauthorized("unknown API key"))?;
    request.extensions_mut().insert(Namespace(namespace));
    Ok(next.run(request).await)
}
