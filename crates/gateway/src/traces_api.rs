//! `GET /v1/traces/{trace_id}`: the spans of one trace in the caller's namespace, derived from
//! its activation records (`lambent_traces::spans`); no exporter needs to be configured.

use crate::auth::Principal;
use crate::{ApiError, App};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_core::TraceId;
use lambent_store::ActivationQuery;
use serde_json::{json, Value};
use std::sync::Arc;

/// Most activations one trace shows.
pub const MAX_TRACE_ACTIVATIONS: usize = 10_000;

pub fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/traces/{trace_id}", get(get_trace))
}

async fn get_trace(
    State(app): State<Arc<App>>,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = TraceId::parse(&trace_id).ok_or_else(|| {
        ApiError::InvalidParameter(format!(
            "invalid trace id '{trace_id}': 32 lower-case hex digits, not all zero"
        ))
    })?;
    app.flush_records().await;
    let activations = app
        .store
        .query_activations(&ActivationQuery {
            namespace: ns,
            trace_id: Some(id.to_string()),
            limit: MAX_TRACE_ACTIVATIONS,
            ..Default::default()
        })
        .await?;
    if activations.is_empty() {
        return Err(ApiError::ResourceNotFound(format!(
            "trace '{id}' has no activations in this namespace"
        )));
    }
    let platform = lambent_traces::Platform::new(&app.registry.invoker().config().region);
    let spans = lambent_traces::trace_spans(&activations, &platform);
    Ok(Json(json!({ "trace_id": id, "spans": spans })))
}
