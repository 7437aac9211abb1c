//! The client's calls under `/v1/workflows` (state machines and their executions) and
//! `/v1/usage/transitions`.

use super::{check, path_segment, query_string, Client, ClientError, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A workflow (state machine) as the API shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Workflow {
    pub name: String,
    pub arn: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub revision: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    pub definition: Option<Value>,
    /// In deploy answers: `created`, `updated` or `unchanged`.
    pub deployed: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkflowList {
    pub workflows: Vec<Workflow>,
}

/// The body of `PUT /v1/workflows/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowPut {
    /// The definition as JSON (a YAML one is converted before it is sent).
    pub definition: Value,
    /// `STANDARD` or `EXPRESS`; unset: the server's default (`STANDARD`).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// An execution as the API shows it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub workflow: String,
    pub status: String,
    pub start_ms: u64,
    pub stop_ms: Option<u64>,
    pub transitions: u64,
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecutionList {
    pub executions: Vec<Execution>,
    /// Pass back as `after` for the next page.
    pub next: Option<String>,
}

/// The body of `POST /v1/workflows/{name}/executions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExecutionStart {
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub sync: bool,
}

/// One state of an execution's timeline.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TimelineEntry {
    pub state: String,
    #[serde(rename = "type")]
    pub state_type: String,
    pub start_ms: u64,
    pub duration_ms: Option<f64>,
    pub retries: u32,
    pub error: Option<String>,
    pub cause: Option<String>,
}

/// `GET …/executions/{execution}/history`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct History {
    pub execution: Execution,
    pub timeline: Vec<TimelineEntry>,
    pub events: Vec<Value>,
}

/// One workflow's row of `GET /v1/usage/transitions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TransitionRow {
    pub workflow: String,
    pub executions: u64,
    pub transitions: u64,
    pub cost: f64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TransitionUsage {
    pub rows: Vec<TransitionRow>,
    pub total: TransitionRow,
    pub per_transition: f64,
}

fn workflow_path(name: &str) -> String {
    format!("/v1/workflows/{}", path_segment(name))
}

fn execution_path(workflow: &str, execution: &str) -> String {
    format!(
        "{}/executions/{}",
        workflow_path(workflow),
        path_segment(execution)
    )
}

impl Client {
    /// `PUT /v1/workflows/{name}`: creates or updates a workflow.
    pub fn put_workflow(
        &self,
        name: &str,
        body: &WorkflowPut,
    ) -> Result<Json<Workflow>, ClientError> {
        let url = self.endpoint(&workflow_path(name));
        self.json(&url, self.http().put(&url).json(body))
    }

    /// `GET /v1/workflows`.
    pub fn list_workflows(&self) -> Result<Json<WorkflowList>, ClientError> {
        let url = self.endpoint("/v1/workflows");
        self.json(&url, self.http().get(&url))
    }

    /// `GET /v1/workflows/{name}`.
    pub fn get_workflow(&self, name: &str) -> Result<Json<Workflow>, ClientError> {
        let url = self.endpoint(&workflow_path(name));
        self.json(&url, self.http().get(&url))
    }

    /// `DELETE /v1/workflows/{name}`.
    pub fn delete_workflow(&self, name: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&workflow_path(name));
        let resp = self.send(&url, self.http().delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `POST /v1/workflows/{name}/executions`.
    pub fn start_execution(
        &self,
        workflow: &str,
        body: &ExecutionStart,
    ) -> Result<Json<Execution>, ClientError> {
        let url = self.endpoint(&format!("{}/executions", workflow_path(workflow)));
        self.json(&url, self.http().post(&url).json(body))
    }

    /// `GET /v1/workflows/{name}/executions?…`, newest first.
    pub fn list_executions(
        &self,
        workflow: &str,
        status: Option<&str>,
        limit: Option<u32>,
    ) -> Result<Json<ExecutionList>, ClientError> {
        let mut query = Vec::new();
        if let Some(s) = status {
            query.push(("status", s.to_string()));
        }
        if let Some(n) = limit {
            query.push(("limit", n.to_string()));
        }
        let url = self.endpoint(&format!(
            "{}/executions{}",
            workflow_path(workflow),
            query_string(&query)
        ));
        self.json(&url, self.http().get(&url))
    }

    /// `GET …/executions/{execution}/history`: the execution, its timeline and its events.
    pub fn execution_history(
        &self,
        workflow: &str,
        execution: &str,
    ) -> Result<Json<History>, ClientError> {
        let url = self.endpoint(&format!("{}/history", execution_path(workflow, execution)));
        self.json(&url, self.http().get(&url))
    }

    /// `POST …/executions/{execution}/stop`.
    pub fn stop_execution(
        &self,
        workflow: &str,
        execution: &str,
        error: Option<&str>,
        cause: Option<&str>,
    ) -> Result<Json<Execution>, ClientError> {
        let url = self.endpoint(&format!("{}/stop", execution_path(workflow, execution)));
        let body = serde_json::json!({"error": error, "cause": cause});
        self.json(&url, self.http().post(&url).json(&body))
    }

    /// `GET /v1/usage/transitions?since_ms=`.
    pub fn transition_usage(
        &self,
        since_ms: Option<u64>,
    ) -> Result<Json<TransitionUsage>, ClientError> {
        let query: Vec<(&str, String)> = since_ms
            .map(|ms| ("since_ms", ms.to_string()))
            .into_iter()
            .collect();
        let url = self.endpoint(&format!("/v1/usage/transitions{}", query_string(&query)));
        self.json(&url, self.http().get(&url))
    }
}
