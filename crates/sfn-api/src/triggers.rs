//! Triggers that start executions: the gateway's [`WorkflowHook`], implemented over the
//! executor. Schedules and topic subscriptions reach it through the durable event queue
//! (target `workflow:NAME`): each event starts one execution named after the event, so a
//! retried delivery does not start a second. An HTTP route answers as API Gateway's Step Functions integrations do: an
//! Express workflow runs as `StartSyncExecution` and the route answers that call's response
//! (`200`, whatever the execution's status: `status`, `output` as text, `error`, `cause`); a
//! Standard one is started and the route answers `StartExecution`'s response (`200`
//! `{"executionArn", "startDate"}`).

use crate::api;
use crate::error::SfnError;
use crate::executor::{Workflows, EXPRESS};
use lambent_core::TraceContext;
use lambent_gateway::workflow_hook::{RouteAnswer, WorkflowHook, WorkflowHookError};
use serde_json::json;
use std::sync::{Arc, Weak};

/// The hook the server gives the gateway (weak: the executor holds the gateway's `App`).
pub struct WorkflowTrigger(Weak<Workflows>);

impl WorkflowTrigger {
    pub fn hook(workflows: &Arc<Workflows>) -> Arc<dyn WorkflowHook> {
        Arc::new(WorkflowTrigger(Arc::downgrade(workflows)))
    }

    fn workflows(&self) -> Result<Arc<Workflows>, WorkflowHookError> {
        self.0
            .upgrade()
            .ok_or_else(|| WorkflowHookError::Failed("the node is stopping".into()))
    }
}

fn hook_error(e: SfnError) -> WorkflowHookError {
    match e {
        SfnError::StateMachineDoesNotExist(m) => WorkflowHookError::NotFound(m),
        SfnError::Internal(m) => WorkflowHookError::Failed(m),
        SfnError::Aws(e) => WorkflowHookError::Failed(e.to_string()),
        other => WorkflowHookError::Invalid(other.to_string()),
    }
}

#[async_trait::async_trait]
impl WorkflowHook for WorkflowTrigger {
    async fn exists(&self, namespace: &str, workflow: &str) -> Result<bool, WorkflowHookError> {
        let wf = self.workflows()?;
        match wf
            .state_machine(namespace, &wf.state_machine_arn(namespace, workflow))
            .await
        {
            Ok(_) => Ok(true),
            Err(SfnError::StateMachineDoesNotExist(_)) => Ok(false),
            Err(e) => Err(hook_error(e)),
        }
    }

    async fn start(
        &self,
        namespace: &str,
        workflow: &str,
        input: &str,
        name: &str,
        trace: Option<TraceContext>,
    ) -> Result<String, WorkflowHookError> {
        let wf = self.workflows()?;
        let machine = wf.state_machine_arn(namespace, workflow);
        match wf
            .start_execution(namespace, &machine, Some(name), Some(input), trace)
            .await
        {
            Ok((arn, _)) => Ok(arn),
            // Started by an earlier attempt of the same event, and ended since.
            Err(SfnError::ExecutionAlreadyExists(_)) => {
                Ok(wf.execution_arn(namespace, workflow, name))
            }
            Err(e) => Err(hook_error(e)),
        }
    }

    async fn serve_route(
        &self,
        namespace: &str,
        workflow: &str,
        input: &str,
        trace: Option<TraceContext>,
    ) -> Result<RouteAnswer, WorkflowHookError> {
        let wf = self.workflows()?;
        let machine = wf.state_machine_arn(namespace, workflow);
        let sm = wf
            .state_machine(namespace, &machine)
            .await
            .map_err(hook_error)?;
        if sm.kind == EXPRESS {
            let r = wf
                .start_sync_execution(namespace, &machine, None, Some(input), trace)
                .await
                .map_err(hook_error)?;
            return Ok(RouteAnswer {
                status: 200,
                body: api::sync_result(&r),
            });
        }
        let (arn, start) = wf
            .start_execution(namespace, &machine, None, Some(input), trace)
            .await
            .map_err(hook_error)?;
        Ok(RouteAnswer {
            status: 200,
            body: json!({"executionArn": arn, "startDate": api::seconds(start)}),
        })
    }
}
