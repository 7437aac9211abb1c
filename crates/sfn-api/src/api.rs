//! The AWS Step Functions API: JSON 1.0 protocol (`POST /`, `X-Amz-Target:
//! AWSStepFunctions.<Operation>`, `application/x-amz-json-1.0`), SigV4-signed for service
//! `states` with the namespace's access keys (the Lambda API's verification), errors as
//! `{"__type", "message"}`. Each operation reads its camelCase members and calls the
//! [`Workflows`] executor.

use crate::callbacks::Callback;
use crate::error::SfnError;
use crate::executor::{SyncResult, Workflows};
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use lambent_aws_api::auth;
use lambent_store::workflows::{StoredExecution, StoredStateMachine};
use lambent_workflows::{Outcome, StatesError};
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// The largest request: a 1 MiB definition, or a 256 KiB input, with room for the envelope.
const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
const TARGET_PREFIX: &str = "AWSStepFunctions.";

/// Whether a request is a Step Functions call: `POST /` whose `X-Amz-Target` names the
/// service.
pub fn is_step_functions(request: &Request) -> bool {
    request.method() == Method::POST
        && request.uri().path() == "/"
        && request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

/// Answers one Step Functions call.
pub async fn handle(workflows: Arc<Workflows>, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match serve(&workflows, request).await {
        Ok(body) => {
            let mut r = body.to_string().into_response();
            r.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            r
        }
        Err(e) => e.into_response(),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

async fn serve(workflows: &Workflows, request: Request) -> Result<Value, SfnError> {
    let (parts, body) = request.into_parts();
    let key = auth::signer(&workflows.app, &parts).await?;
    let body = lambent_gateway::body::read(body, MAX_REQUEST_BYTES, "the request")
        .await
        .map_err(|e| SfnError::Validation(e.to_string()))?;
    let principal = auth::verify(&parts, &body, &key, &workflows.region, "states")?;
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .unwrap_or_default()
        .to_string();
    let access = lambent_gateway::access::aws_action(&operation, INVOKE_ACTIONS);
    auth::authorize(&principal, access)?;
    let namespace = principal.namespace.clone();
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| SfnError::Validation(format!("the request body is not JSON: {e}")))?
    };
    let call = Call {
        workflows,
        namespace: &namespace,
        input: &input,
        trace: lambent_gateway::trace_context(&parts.headers),
    };
    let result = call.dispatch(&operation).await;
    if lambent_gateway::audited(access) {
        let status = if result.is_ok() { 200 } else { 400 };
        let client = auth::client_address(&parts);
        let action = format!("states:{operation}");
        auth::audit(
            &workflows.app,
            &principal,
            "POST",
            &action,
            "",
            status,
            client,
        )
        .await;
    }
    result
}

/// The Step Functions actions that run something (the rest read or write by their names).
const INVOKE_ACTIONS: &[&str] = &["StartExecution", "StartSyncExecution"];

/// Epoch seconds, as the JSON protocol carries timestamps.
pub(crate) fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

struct Call<'a> {
    workflows: &'a Workflows,
    namespace: &'a str,
    input: &'a Value,
    /// The request's trace context (`X-Amzn-Trace-Id`, which boto3 sends from inside a
    /// function).
    trace: Option<lambent_core::TraceContext>,
}

impl Call<'_> {
    fn opt(&self, member: &str) -> Result<Option<&str>, SfnError> {
        match self.input.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(SfnError::Validation(format!(
                "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must be a string"
            ))),
        }
    }

    /// The context an execution started by this call continues: the `traceHeader` member (an
    /// X-Ray trace header, as Step Functions takes it), else the request's own.
    fn trace(&self) -> Result<Option<lambent_core::TraceContext>, SfnError> {
        match self.opt("traceHeader")? {
            Some(header) => lambent_core::TraceContext::from_xray(header)
                .map(Some)
                .ok_or_else(|| {
                    SfnError::Validation(format!(
                        "1 validation error detected: Value at 'traceHeader' is not an X-Ray trace header: {header}"
                    ))
                }),
            None => Ok(self.trace.clone()),
        }
    }

    fn req(&self, member: &str) -> Result<&str, SfnError> {
        self.opt(member)?.ok_or_else(|| {
            SfnError::Validation(format!(
                "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
            ))
        })
    }

    fn max_results(&self) -> Result<usize, SfnError> {
        match self.input.get("maxResults").and_then(Value::as_u64) {
            None | Some(0) => Ok(100),
            Some(n) if n <= 1000 => Ok(n as usize),
            Some(n) => Err(SfnError::Validation(format!(
                "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 1000"
            ))),
        }
    }

    fn bad_token(&self) -> SfnError {
        SfnError::Validation("Invalid pagination token".into()).into_invalid_token()
    }

    async fn dispatch(&self, operation: &str) -> Result<Value, SfnError> {
        let wf = self.workflows;
        let ns = self.namespace;
        match operation {
            "CreateStateMachine" => {
                let sm = wf
                    .create_state_machine(
                        ns,
                        self.req("name")?,
                        self.req("definition")?,
                        self.opt("type")?,
                        self.opt("roleArn")?.unwrap_or_default(),
                    )
                    .await?;
                Ok(json!({"stateMachineArn": sm.arn, "creationDate": seconds(sm.created_ms)}))
            }
            "DescribeStateMachine" => {
                let sm = wf.state_machine(ns, self.req("stateMachineArn")?).await?;
                Ok(describe_state_machine(&sm))
            }
            "UpdateStateMachine" => {
                let sm = wf
                    .update_state_machine(
                        ns,
                        self.req("stateMachineArn")?,
                        self.opt("definition")?,
                        self.opt("roleArn")?,
                    )
                    .await?;
                Ok(
                    json!({"updateDate": seconds(sm.updated_ms), "revisionId": sm.revision.to_string()}),
                )
            }
            "DeleteStateMachine" => {
                wf.delete_state_machine(ns, self.req("stateMachineArn")?)
                    .await?;
                Ok(json!({}))
            }
            "ListStateMachines" => {
                let all = wf.list_state_machines(ns).await?;
                let from = match self.opt("nextToken")? {
                    None => 0,
                    Some(t) => t.parse::<usize>().map_err(|_| self.bad_token())?,
                };
                let limit = self.max_results()?;
                let page: Vec<Value> = all
                    .iter()
                    .skip(from)
                    .take(limit)
                    .map(|sm| {
                        json!({"stateMachineArn": sm.arn, "name": sm.name, "type": sm.kind,
                               "creationDate": seconds(sm.created_ms)})
                    })
                    .collect();
                let mut out = json!({"stateMachines": page});
                if from + limit < all.len() {
                    out["nextToken"] = json!((from + limit).to_string());
                }
                Ok(out)
            }
            "ValidateStateMachineDefinition" => {
                let diagnostics: Vec<Value> = Workflows::validate(self.req("definition")?)
                    .iter()
                    .map(|d| {
                        json!({"severity": "ERROR", "code": d.code.as_str(),
                               "message": d.message, "location": d.location})
                    })
                    .collect();
                let result = if diagnostics.is_empty() { "OK" } else { "FAIL" };
                Ok(json!({"result": result, "diagnostics": diagnostics, "truncated": false}))
            }
            "StartExecution" => {
                let (arn, start) = wf
                    .start_execution(
                        ns,
                        self.req("stateMachineArn")?,
                        self.opt("name")?,
                        self.opt("input")?,
                        self.trace()?,
                    )
                    .await?;
                Ok(json!({"executionArn": arn, "startDate": seconds(start)}))
            }
            "StartSyncExecution" => {
                let r = wf
                    .start_sync_execution(
                        ns,
                        self.req("stateMachineArn")?,
                        self.opt("name")?,
                        self.opt("input")?,
                        self.trace()?,
                    )
                    .await?;
                Ok(sync_result(&r))
            }
            "DescribeExecution" => {
                let e = wf.execution(ns, self.req("executionArn")?).await?;
                Ok(describe_execution(&e))
            }
            "StopExecution" => {
                let stop = wf
                    .stop_execution(
                        ns,
                        self.req("executionArn")?,
                        self.opt("error")?.map(String::from),
                        self.opt("cause")?.map(String::from),
                    )
                    .await?;
                Ok(json!({"stopDate": seconds(stop)}))
            }
            "ListExecutions" => {
                let after = match self.opt("nextToken")? {
                    None => None,
                    Some(t) => {
                        let (ms, arn) = t.split_once('|').ok_or_else(|| self.bad_token())?;
                        Some((ms.parse().map_err(|_| self.bad_token())?, arn.to_string()))
                    }
                };
                let limit = self.max_results()?;
                let page = wf
                    .list_executions(
                        ns,
                        self.req("stateMachineArn")?,
                        self.opt("statusFilter")?,
                        after,
                        limit,
                    )
                    .await?;
                let items: Vec<Value> = page.iter().map(list_item).collect();
                let mut out = json!({"executions": items});
                if let (true, Some(last)) = (page.len() == limit, page.last()) {
                    out["nextToken"] = json!(format!("{}|{}", last.start_ms, last.arn));
                }
                Ok(out)
            }
            "GetExecutionHistory" => {
                let reverse = self
                    .input
                    .get("reverseOrder")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let after = match self.opt("nextToken")? {
                    None => 0,
                    Some(t) => t.parse::<u64>().map_err(|_| self.bad_token())?,
                };
                let limit = self.max_results()?;
                let include_data = self
                    .input
                    .get("includeExecutionData")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let events = wf
                    .history(ns, self.req("executionArn")?, after, reverse, limit)
                    .await?;
                let items: Vec<Value> = events
                    .iter()
                    .map(|e| {
                        let mut v = e.to_api();
                        if !include_data {
                            strip_data(&mut v);
                        }
                        v
                    })
                    .collect();
                let mut out = json!({"events": items});
                if let (true, Some(last)) = (events.len() == limit, events.last()) {
                    // A reversed page that reached id 1 has nothing before it.
                    if !(reverse && last.id <= 1) {
                        out["nextToken"] = json!(last.id.to_string());
                    }
                }
                Ok(out)
            }
            "SendTaskSuccess" => {
                let output = self.req("output")?;
                let value: Value = serde_json::from_str(output)
                    .map_err(|e| SfnError::InvalidOutput(format!("Invalid Output: '{e}'")))?;
                wf.callbacks
                    .deliver(self.req("taskToken")?, Callback::Success(value))
                    .await?;
                Ok(json!({}))
            }
            "SendTaskFailure" => {
                let error = StatesError::new(
                    self.opt("error")?.unwrap_or_default(),
                    self.opt("cause")?.unwrap_or_default(),
                );
                wf.callbacks
                    .deliver(self.req("taskToken")?, Callback::Failure(error))
                    .await?;
                Ok(json!({}))
            }
            "SendTaskHeartbeat" => {
                wf.callbacks
                    .deliver(self.req("taskToken")?, Callback::Heartbeat)
                    .await?;
                Ok(json!({}))
            }
            other => Err(SfnError::UnknownOperation(format!(
                "The operation '{other}' is not supported by Lambent's Step Functions API"
            ))),
        }
    }
}

impl SfnError {
    fn into_invalid_token(self) -> SfnError {
        SfnError::InvalidToken(self.to_string())
    }
}

fn describe_state_machine(sm: &StoredStateMachine) -> Value {
    json!({
        "stateMachineArn": sm.arn, "name": sm.name, "status": "ACTIVE",
        "definition": sm.definition, "roleArn": sm.role_arn, "type": sm.kind,
        "creationDate": seconds(sm.created_ms), "revisionId": sm.revision.to_string(),
    })
}

fn list_item(e: &StoredExecution) -> Value {
    let mut v = json!({
        "executionArn": e.arn, "stateMachineArn": e.state_machine_arn, "name": e.name,
        "status": e.status, "startDate": seconds(e.start_ms),
    });
    if let Some(stop) = e.stop_ms {
        v["stopDate"] = seconds(stop);
    }
    v
}

fn describe_execution(e: &StoredExecution) -> Value {
    let mut v = list_item(e);
    let fields: &mut Map<String, Value> = v.as_object_mut().expect("an object");
    fields.insert("input".into(), json!(e.input));
    fields.insert("inputDetails".into(), json!({"included": true}));
    fields.insert("stateTransitions".into(), json!(e.transitions));
    if let Some(output) = &e.output {
        fields.insert("output".into(), json!(output));
        fields.insert("outputDetails".into(), json!({"included": true}));
    }
    if let Some(error) = &e.error {
        fields.insert("error".into(), json!(error));
    }
    if let Some(cause) = &e.cause {
        fields.insert("cause".into(), json!(cause));
    }
    v
}

pub(crate) fn sync_result(r: &SyncResult) -> Value {
    let mut v = json!({
        "executionArn": r.execution_arn, "stateMachineArn": r.state_machine_arn,
        "name": r.name, "startDate": seconds(r.start_ms), "stopDate": seconds(r.stop_ms),
        "status": r.outcome.status(), "input": r.input, "inputDetails": {"included": true},
        "billingDetails": {"billedMemoryUsedInMB": 64,
                           "billedDurationInMilliseconds": ((r.stop_ms - r.start_ms).max(1) + 99) / 100 * 100},
    });
    match &r.outcome {
        Outcome::Succeeded(output) => {
            v["output"] = json!(output.to_string());
            v["outputDetails"] = json!({"included": true});
        }
        other => {
            if let Some(e) = other.error() {
                v["error"] = json!(e.error);
                v["cause"] = json!(e.cause);
            }
        }
    }
    v
}

/// `includeExecutionData: false`: the events without their inputs and outputs.
fn strip_data(event: &mut Value) {
    if let Some(fields) = event.as_object_mut() {
        for details in fields.values_mut().filter_map(Value::as_object_mut) {
            for key in ["input", "output", "parameters", "result"] {
                details.remove(key);
            }
        }
    }
}
