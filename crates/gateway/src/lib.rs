//! The HTTP surface of Lambent: `GET /healthz`, API-key authentication, and the Lambent API under
//! `/v1` (code upload, functions, invoke, activations, logs, access keys; see `docs/api.md`), and
//! the registry of deployed functions with their published versions and aliases, which the
//! Lambda-compatible API (`lambent-aws-api`) shares. Knows how to turn requests into registry and
//! invoker calls and results into responses; knows nothing of how sandboxes work or which
//! database holds the records.

mod auth;
pub mod body;
mod error;
mod keys;
mod registry;
mod v1;
pub mod versions;

pub use auth::{ApiKeys, Namespace};
pub use error::ApiError;
pub use registry::{Deployed, Registry, StoredCode};

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use lambent_store::recorder::Recorder;
use lambent_store::Store;
use std::sync::Arc;

/// Everything the handlers share.
pub struct App {
    pub store: Arc<dyn Store>,
    /// Prices for cost reports.
    pub prices: lambent_core::metering::Prices,
    pub registry: Registry,
    pub recorder: Recorder,
    pub keys: ApiKeys,
}

/// The whole HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let authenticated =
        v1::routes()
            .merge(keys::routes())
            .layer(axum::middleware::from_fn_with_state(
                app.clone(),
                auth::require_key,
            ));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .merge(authenticated)
        .fallback(|uri: axum::http::Uri| async move { ApiError::NotFound(uri.path().to_string()) })
        // Bodies are read with per-route limits (and a JSON 413) by `body::read`.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}
