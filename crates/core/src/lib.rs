//! The Lambent domain: functions and their configuration, runtimes, activation records, limits and
//! the validation rules that turn user input into values the rest of the platform can trust.
//! Pure data and rules; no I/O.

pub mod activation;
pub mod async_invoke;
pub mod function;
pub mod limits;
pub mod metering;
pub mod route;
pub mod runtime;
pub mod tenancy;
pub mod trace;

pub use activation::{
    new_activation_id, Activation, ActivationStatus, Birth, ColdReason, InitBreakdown,
};
pub use async_invoke::{AsyncConfig, AsyncSpec, Destination};
pub use function::{Function, FunctionConfig, FunctionName, FunctionSpec, ValidationError};
pub use route::{Route, RouteSpec, RouteTarget};
pub use runtime::{Runtime, RuntimeKind};
pub use tenancy::limits::TenantLimits;
pub use tenancy::{Access, NamespaceSettings, Role};
pub use trace::{ActivationTrace, Hop, HttpTrigger, SpanId, TraceContext, TraceId, TraceOrigin};

/// The namespace every single-tenant installation starts with.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The node id of the embedded single node (a cluster node's is its `--node-id`).
pub const LOCAL_NODE: &str = "local";

/// Milliseconds since the Unix epoch, the one clock format used in records and the API.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
