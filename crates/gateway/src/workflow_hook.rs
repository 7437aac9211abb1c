//! The seam through which the gateway's triggers reach workflows (Step Functions state
//! machines), which live in a crate above it (`lambent-sfn-api`): the server sets the
//! [`App`](crate::App)'s [`WorkflowHook`] once the executor exists. Without one (a gateway on
//! its own), a route to a workflow answers 500 and says why in the log.

use serde_json::Value;

/// Why a workflow trigger failed: the caller's fault (a bad input, an unknown workflow) or
/// the platform's.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowHookError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// What an HTTP route to a workflow answers: a status and a JSON body.
pub struct RouteAnswer {
    pub status: u16,
    pub body: Value,
}

/// Starting executions for the gateway's triggers.
#[async_trait::async_trait]
pub trait WorkflowHook: Send + Sync {
    /// Whether `workflow` exists in `namespace`.
    async fn exists(&self, namespace: &str, workflow: &str) -> Result<bool, WorkflowHookError>;
    /// An HTTP route's request, as API Gateway's Step Functions integrations answer it: an
    /// Express workflow runs as `StartSyncExecution` and the answer is that call's response;
    /// a Standard one is started (`StartExecution`) and the answer is its ARN and start date.
    /// `input` is the request body (JSON text).
    /// Starts an execution of `workflow` with `input` (JSON text) named `name`; a second
    /// start of the same name is a success (it was started before). Returns its ARN.
    /// `trace`: the context its states continue.
    async fn start(
        &self,
        namespace: &str,
        workflow: &str,
        input: &str,
        name: &str,
        trace: Option<lambent_core::TraceContext>,
    ) -> Result<String, WorkflowHookError>;
    async fn serve_route(
        &self,
        namespace: &str,
        workflow: &str,
        input: &str,
        trace: Option<lambent_core::TraceContext>,
    ) -> Result<RouteAnswer, WorkflowHookError>;
}

/// Refuses a trigger naming a workflow that does not exist (or a node without workflows).
pub(crate) async fn check_exists(
    app: &crate::App,
    namespace: &str,
    workflow: &str,
) -> Result<(), crate::ApiError> {
    let hook = app
        .workflows
        .get()
        .ok_or_else(|| crate::ApiError::Unavailable("this node runs no workflows".into()))?;
    match hook.exists(namespace, workflow).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(crate::ApiError::ResourceNotFound(format!(
            "workflow '{workflow}' does not exist in namespace '{namespace}'"
        ))),
        Err(e) => Err(crate::ApiError::Internal(e.to_string())),
    }
}
