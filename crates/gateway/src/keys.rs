//! SigV4 access keys of a namespace, under `/v1/keys` (Bearer API key): create with a role
//! and an optional lifetime (the only answers that show a secret are this and a rotation's),
//! rotate with a grace period for the old secret, list, delete. The
//! AWS-compatible APIs verify request signatures with them and give the request the key's role.

use crate::auth::Principal;
use crate::{ApiError, App};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};
use lambent_core::Role;
use lambent_store::lambda::AccessKey;
use rand::distributions::{Alphanumeric, DistString};
use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/keys", get(list_keys).post(create_key))
        .route("/v1/keys/{access_key_id}", delete(delete_key))
        .route(
            "/v1/keys/{access_key_id}/rotate",
            axum::routing::post(rotate_key),
        )
}

/// A new random key pair: a 20-character id (`LKIA` + 16 of A-Z, 2-7, as AWS ids look) and a
/// 40-character secret.
pub fn generate_access_key(namespace: &str, role: Role, expires_ms: Option<i64>) -> AccessKey {
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
        role,
        expires_ms,
        previous_secret: None,
    }
}

fn key_view(key: &AccessKey) -> Value {
    json!({
        "access_key_id": key.access_key_id,
        "namespace": key.namespace,
        "created_ms": key.created_ms,
        "role": key.role,
        "expires_ms": key.expires_ms,
    })
}

/// Optional settings of a new access key.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    role: Option<String>,
    expires_in_s: Option<u64>,
}

async fn create_key(
    State(app): State<Arc<App>>,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let bytes = crate::body::read(body, 64 * 1024, "the key").await?;
    let req: CreateKey = crate::body::json_or_default(&bytes)?;
    let role = crate::namespace_role(req.role.as_deref())?;
    let key = generate_access_key(&ns, role, crate::expiry(req.expires_in_s)?);
    app.store.put_access_key(&key).await?;
    let mut view = key_view(&key);
    view["secret_access_key"] = key.secret_access_key.into();
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

async fn list_keys(
    State(app): State<Arc<App>>,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
) -> Result<Json<Value>, ApiError> {
    let keys = app.store.list_access_keys(&ns).await?;
    let keys: Vec<Value> = keys.iter().map(key_view).collect();
    Ok(Json(json!({ "keys": keys })))
}

async fn delete_key(
    State(app): State<Arc<App>>,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(access_key_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if app.store.delete_access_key(&ns, &access_key_id).await? {
        app.credentials.forget(&access_key_id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::AccessKeyNotFound(access_key_id))
    }
}

/// `POST /v1/keys/{access_key_id}/rotate` `{"grace_s"}`: a new secret for the access key; the
/// one it had keeps verifying signatures until the grace period ends, never past the key's
/// expiry (a secret still in grace from an earlier rotation stops now).
async fn rotate_key(
    State(app): State<Arc<App>>,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(access_key_id): Path<String>,
    body: axum::body::Body,
) -> Result<Json<Value>, ApiError> {
    let req = crate::tenants::Rotate::read(body).await?;
    let current = app
        .store
        .access_key(&access_key_id)
        .await?
        .filter(|k| k.namespace == ns)
        .ok_or_else(|| ApiError::AccessKeyNotFound(access_key_id.clone()))?;
    let now = lambent_core::now_ms();
    let until = req
        .grace_until(now)
        .min(current.expires_ms.unwrap_or(i64::MAX));
    let fresh = generate_access_key(&ns, current.role, current.expires_ms);
    let rotated = AccessKey {
        secret_access_key: fresh.secret_access_key,
        previous_secret: (until > now).then(|| (current.secret_access_key.clone(), until)),
        ..current
    };
    app.store.put_access_key(&rotated).await?;
    app.credentials.forget(&access_key_id);
    let mut view = key_view(&rotated);
    view["secret_access_key"] = rotated.secret_access_key.clone().into();
    view["old_secret_valid_until_ms"] = json!(until.max(now));
    Ok(Json(view))
}
