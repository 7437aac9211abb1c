//! The HTTP surface of Lambent: `GET /healthz`, API-key authentication, and the Lambent API under
//! `/v1` (code upload, functions, invoke, activations, logs, access keys, async invocations, dead
//! letters, schedules, routes, queues, topics, mappings, sequences; see `docs/api.md`), the users' HTTP
//! routes at their own paths, and the registry of deployed functions with their published
//! versions and aliases, which the Lambda-compatible API (`lambent-aws-api`) shares. Knows how to
//! turn requests into registry and invoker calls and results into responses; knows nothing of
//! how sandboxes work or which database holds the records.

pub mod access;
mod auth;
pub mod body;
pub mod credentials;
mod dispatch;
mod error;
mod events_api;
pub mod follow;
mod keys;
mod queues;
pub mod quotas;
mod registry;
mod routes;
mod sequences;
mod tenants;
mod traces_api;
mod v1;
mod v1_versions;
pub mod versions;
pub mod workflow_hook;

pub use auth::{
    acting_in, audited, bearer, client_of, require_key, route_need, ApiKeys, Principal,
    NAMESPACE_HEADER,
};
pub use error::{ApiError, Quota, QuotaExceeded};
pub use events_api::{accept_async, wants_async, INVOCATION_TYPE_HEADER};
pub use queues::RegistryRunner;
pub use registry::{Deployed, Registry, StoredCode};
pub use routes::RouteTable;
/// The pure parts of routing (the compiled table, the API Gateway mappings), for the fuzz
/// targets (`fuzz/`).
#[doc(hidden)]
pub use routes::{apigw, Compiled as CompiledRoutes};
pub use tenants::{expiry, namespace_role, new_secret};

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
    /// Who signed an AWS request: stored access keys and the sandboxes' session credentials.
    pub credentials: credentials::Credentials,
    /// The durable queue of asynchronous invocations, dead letters and schedules.
    pub events: lambent_events::Events,
    /// HTTP routes, served as the listener's fallback.
    pub routes: RouteTable,
    /// Queues, topics and event-source mappings.
    pub queues: lambent_queues::Queues,
    /// Carries what changed to the other nodes of a cluster (in-process on the embedded node).
    pub bus: Arc<dyn lambent_store::bus::Bus>,
    /// This node's membership and placement (the embedded node is a cluster of one).
    pub cluster: Arc<lambent_cluster::node::Cluster>,
    /// Workflows, for the triggers that start them (set once by the server).
    pub workflows: std::sync::OnceLock<Arc<dyn workflow_hook::WorkflowHook>>,
    /// The object engine's disposal of data whose records a namespace's purge removed (set
    /// once by the server).
    pub object_data: std::sync::OnceLock<Arc<dyn lambent_store::objects::UnreferencedData>>,
    /// The OTLP exporter of spans, when one is configured (its counters join `/metrics`).
    pub trace_export: Option<lambent_traces::Exporter>,
}

/// The trace context a request carries (`traceparent` and `tracestate`, else
/// `X-Amzn-Trace-Id`); `None` when it carries none (or a malformed one): a new trace starts.
pub fn trace_context(headers: &axum::http::HeaderMap) -> Option<lambent_core::TraceContext> {
    lambent_core::TraceContext::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok()))
}

/// `GET /healthz`: the node answers (`status`), and whether its first cold starts are as fast
/// as later ones (`ready`: sandboxes made ahead, the Python zygote and its runtimes forked
/// ahead, Node.js stem cells are waiting; `warming` lists what is not yet). Always `200`: a
/// node that is warming up serves, only slower.
async fn health(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> axum::Json<serde_json::Value> {
    let warming = app.registry.invoker().warming();
    axum::Json(serde_json::json!({
        "status": "ok",
        "ready": warming.is_empty(),
        "warming": warming,
    }))
}

/// The whole HTTP surface.
pub fn router(app: Arc<App>) -> Router {
    let authenticated = v1::routes()
        .merge(events_api::routes())
        .merge(routes::routes())
        .merge(queues::routes())
        .merge(keys::routes())
        .merge(sequences::routes())
        .merge(v1_versions::routes())
        .merge(traces_api::routes())
        .merge(tenants::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            auth::require_key,
        ));
    Router::new()
        .route("/healthz", get(health))
        .route(
            lambent_cluster::forward::LINK_PATH,
            get(dispatch::serve_link),
        )
        .merge(authenticated)
        // Paths Lambent does not serve itself are the users' HTTP routes.
        .fallback(routes::serve)
        // Bodies are read with per-route limits (and a JSON 413) by `body::read`.
        .layer(DefaultBodyLimit::disable())
        .with_state(app)
}
