//! SigV4 access keys of a namespace, under `/v1/keys` (Bearer API key): create (the only
//! answer that shows the secret), list, delete. The Lambda-compatible API verifies request
//! signatures with them.

use crate::auth::Namespace;
use crate::{ApiError, App};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use lambent_store::lambda::AccessKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{access_key_id}", delete(delete_key))
}

/// A new random key pair: a 20-character id (`LKIA` + 16 of A-Z, 2-7, as AWS ids look) and a
/// 40-character secret.
pub fn generate_access_key(namespace: &str) -> AccessKey {
    const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::thread_rng();
    let id: String = (0..16)
        .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
        .collect();
    AccessKey {
        namespace: namespace.to_string(),
        access_key_id: format!("LKIA{id}"),
        secret_access_key: Alphanumeric.sample_string(&mut rng, 40),
        created_ms: lambent_core::now_ms(),
    }
}

fn key_view(key: &AccessKey) -> Value {
    json!({
        "access_key_id": key.access_key_id,
        "namespace": key.namespace,
        "created_ms": key.created_ms,
    })
}

async fn create_key(
    State(app): State<Arc<App>>,
    Extension(Namespace(ns)): Extension<Namespace>,
) -> Result<Response, ApiError> {
    let key = generate_access_key(&ns);
    app.store.put_access_key(&key).await?;
    let mut view = key_view(&key);
    view["secret_access_key"] = key.secret_access_key.into();
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_keys(
    State(app): State<Arc<App>>,
    Extension(Namespace(ns)): Extension<Namespace>,
) -> Result<Json<Value>, ApiError> {
    let keys = app.store.list_access_keys(&ns).await?;
    let keys: Vec<Value> = keys.iter().map(key_view).collect();
    Ok(Json(json!({ "keys": keys })))
}

async fn delete_key(
    State(app): State<Arc<App>>,
    Extension(Namespace(ns)): Extension<Namespace>,
    Path(access_key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_access_key(&ns, &access_key_id).await? {
        app.credentials.forget(&access_key_id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::AccessKeyNotFound(access_key_id))
    }
}
