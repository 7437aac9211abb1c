//! What a Task's `Resource` does, on Lambent's own parts: a Lambda function by ARN (its
//! result) or through `arn:aws:states:::lambda:invoke` (the Invoke API's response shape), both
//! through the gateway's invocation path (`App::run`: limits, activation records, metering as
//! any invocation); `sqs:sendMessage` onto a Lambent queue; `sns:publish` onto a Lambent topic;
//! `states:startExecution` (`.sync` and `.sync:2` wait for the child); and `.waitForTaskToken`
//! on any of them (the Task then waits for `SendTaskSuccess`/`SendTaskFailure`).

use crate::callbacks::Callbacks;
use crate::executor::{Workflows, EXPRESS};
use bytes::Bytes;
use lambent_aws_api::arn::Scope;
use lambent_core::{ActivationStatus, Hop, TraceContext, TraceOrigin};
use lambent_invoker::InvokeRequest;
use lambent_queues::{Outgoing, QueueError};
use lambent_workflows::{names, Outcome, StatesError, TaskRequest, TaskRunner};
use md5::Digest;
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The Task runner of one execution's namespace.
pub struct Tasks {
    pub(crate) workflows: Weak<Workflows>,
    pub(crate) namespace: String,
    /// The context of the request that started the execution: a function a Task runs is a
    /// child of the state's span under it; messages, publications and child executions
    /// continue it.
    pub(crate) trace: Option<TraceContext>,
}

const WAIT_FOR_TOKEN: &str = ".waitForTaskToken";

/// The integration a Task's resource names, and how it waits.
enum Pattern {
    /// Answer with the call's result.
    Call,
    /// Wait for the started execution to end (`.sync`: `Output` as text; `.sync:2`: JSON).
    Sync { json_output: bool },
    /// Wait for a callback with the task token.
    Token,
}

fn http_metadata(request_id: &str) -> Value {
    json!({
        "SdkHttpMetadata": {
            "AllHttpHeaders": {"Content-Type": ["application/json"], "x-amzn-RequestId": [request_id]},
            "HttpHeaders": {"Content-Type": "application/json", "x-amzn-RequestId": request_id},
            "HttpStatusCode": 200
        },
        "SdkResponseMetadata": {"RequestId": request_id}
    })
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

fn field<'a>(input: &'a Value, name: &str, service: &str) -> Result<&'a Value, StatesError> {
    input.get(name).ok_or_else(|| {
        StatesError::runtime(format!(
            "The field '{name}' is required by {service} but is missing from the Task's parameters"
        ))
    })
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The last segment of a queue URL, queue ARN, topic ARN or plain name.
fn last_segment(s: &str) -> &str {
    s.rsplit(['/', ':']).next().unwrap_or(s)
}

fn queue_error(service: &str, e: QueueError) -> StatesError {
    let name = match e.kind() {
        lambent_queues::ErrorKind::NotFound if service == "SQS" => "QueueDoesNotExistException",
        lambent_queues::ErrorKind::NotFound => "NotFoundException",
        lambent_queues::ErrorKind::Invalid | lambent_queues::ErrorKind::TooLarge => {
            "InvalidParameterException"
        }
        lambent_queues::ErrorKind::Quota => "QuotaExceeded",
        _ => "ServiceException",
    };
    StatesError::new(format!("{service}.{name}"), e.to_string())
}

#[async_trait::async_trait]
impl TaskRunner for Tasks {
    async fn run(&self, request: TaskRequest) -> Result<Value, StatesError> {
        let workflows = self
            .workflows
            .upgrade()
            .ok_or_else(|| StatesError::runtime("the server is stopping"))?;
        let (base, pattern) = match request.resource.strip_suffix(WAIT_FOR_TOKEN) {
            Some(base) => (base, Pattern::Token),
            None => match request.resource.strip_suffix(".sync:2") {
                Some(base) => (base, Pattern::Sync { json_output: true }),
                None => match request.resource.strip_suffix(".sync") {
                    Some(base) => (base, Pattern::Sync { json_output: false }),
                    None => (request.resource.as_str(), Pattern::Call),
                },
            },
        };
        // Registered before the call hands the token out, so an answer cannot come too early.
        let waiter = matches!(pattern, Pattern::Token)
            .then(|| Callbacks::register(&workflows.callbacks, &request.task_token));
        let state = Hop::State {
            state: request.state_name.clone(),
            execution: request.execution_arn.clone(),
            entered_ms: lambent_core::now_ms(),
        };
        let result = self
            .call(&workflows, base, &pattern, &request.input, state)
            .await?;
        match waiter {
            Some(waiter) => waiter.wait(request.heartbeat).await,
            None => Ok(result),
        }
    }

    /// A token naming this node, so that a `SendTask*` reaching another node of a cluster
    /// finds the waiting Task here.
    fn task_token(&self) -> String {
        match self.workflows.upgrade() {
            Some(workflows) => workflows.callbacks.new_token(),
            None => uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

impl Tasks {
    async fn call(
        &self,
        workflows: &Arc<Workflows>,
        resource: &str,
        pattern: &Pattern,
        input: &Value,
        state: Hop,
    ) -> Result<Value, StatesError> {
        let sync = matches!(pattern, Pattern::Sync { .. });
        let unsupported = || {
            StatesError::runtime(format!(
                "The resource '{resource}' is not supported by Lambent (with this integration pattern)"
            ))
        };
        match resource {
            "arn:aws:states:::lambda:invoke" if !sync => {
                let name = text_of(field(input, "FunctionName", "lambda:invoke")?);
                let qualifier = input.get("Qualifier").map(text_of);
                let payload = input.get("Payload").cloned().unwrap_or(json!({}));
                let (result, version, request_id) = self
                    .invoke(workflows, &name, qualifier.as_deref(), &payload, state)
                    .await?;
                Ok(merge(
                    json!({"ExecutedVersion": version, "Payload": result, "StatusCode": 200}),
                    http_metadata(&request_id),
                ))
            }
            "arn:aws:states:::sqs:sendMessage" if !sync => {
                let queue = text_of(field(input, "QueueUrl", "sqs:sendMessage")?);
                let body = text_of(field(input, "MessageBody", "sqs:sendMessage")?);
                let delay = input
                    .get("DelaySeconds")
                    .and_then(Value::as_u64)
                    .map(|d| d as u32);
                let md5 = hex::encode(md5::Md5::digest(body.as_bytes()));
                let ids = workflows
                    .app
                    .queues
                    .send(
                        &self.namespace,
                        last_segment(&queue),
                        vec![Outgoing {
                            body,
                            attributes: Default::default(),
                            delay,
                            trace: self.trace.clone(),
                        }],
                    )
                    .await
                    .map_err(|e| queue_error("SQS", e))?;
                let id = ids.into_iter().next().unwrap_or_default();
                Ok(merge(
                    json!({"MessageId": id, "MD5OfMessageBody": md5}),
                    http_metadata(&uuid::Uuid::new_v4().to_string()),
                ))
            }
            "arn:aws:states:::sns:publish" if !sync => {
                let topic = text_of(field(input, "TopicArn", "sns:publish")?);
                let message = text_of(field(input, "Message", "sns:publish")?);
                let subject = input.get("Subject").map(text_of);
                let (id, _) = workflows
                    .app
                    .queues
                    .publish(
                        &self.namespace,
                        last_segment(&topic),
                        &message,
                        subject.as_deref(),
                        &Default::default(),
                        self.trace.as_ref(),
                    )
                    .await
                    .map_err(|e| queue_error("SNS", e))?;
                Ok(merge(
                    json!({"MessageId": id}),
                    http_metadata(&uuid::Uuid::new_v4().to_string()),
                ))
            }
            "arn:aws:states:::states:startExecution" => {
                self.start_execution(workflows, pattern, input).await
            }
            r if r.starts_with("arn:aws:lambda:") && matches!(pattern, Pattern::Call) => {
                let (result, _, _) = self.invoke(workflows, r, None, input, state).await?;
                Ok(result)
            }
            _ => Err(unsupported()),
        }
    }

    /// Runs a function of the execution's namespace through the gateway's invocation path,
    /// its activation drawn under a span of `state`; returns its result, the version that ran
    /// and the activation id. A function error fails with the function's error type and the
    /// error JSON as the cause.
    async fn invoke(
        &self,
        workflows: &Arc<Workflows>,
        name: &str,
        qualifier: Option<&str>,
        payload: &Value,
        state: Hop,
    ) -> Result<(Value, String, String), StatesError> {
        let app = &workflows.app;
        let scope = Scope {
            region: &workflows.region,
            namespace: &self.namespace,
        };
        let not_found = |why: String| StatesError::new("Lambda.ResourceNotFoundException", why);
        let f = scope
            .parse(name, qualifier)
            .map_err(|e| not_found(e.to_string()))?;
        let resolved = app
            .registry
            .resolve(&self.namespace, &f.name, f.qualifier.as_deref())
            .map_err(|e| {
                not_found(format!(
                    "Function not found: {} ({e})",
                    scope.function_arn(&f.name)
                ))
            })?;
        let request = InvokeRequest {
            payload: Bytes::from(payload.to_string()),
            trigger: "workflow".into(),
            qualifier: f.qualifier.clone(),
            trace: TraceOrigin {
                context: self.trace.clone(),
                hop: Some(state),
                ..Default::default()
            },
            ..Default::default()
        };
        let result = app.run(&resolved.deployment, request).await;
        let a = &result.activation;
        let body = String::from_utf8_lossy(&result.body).into_owned();
        match a.status {
            ActivationStatus::Success => {
                let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                Ok((value, resolved.executed_version, a.id.clone()))
            }
            ActivationStatus::Throttled => Err(StatesError::new(
                "Lambda.TooManyRequestsException",
                a.error_message.clone().unwrap_or_default(),
            )),
            ActivationStatus::PlatformError => Err(StatesError::new(
                "Lambda.ServiceException",
                a.error_message.clone().unwrap_or_default(),
            )),
            _ => {
                let error = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("errorType").and_then(Value::as_str).map(String::from))
                    .or_else(|| a.error_type.clone())
                    .unwrap_or_else(|| "Lambda.Unknown".into());
                Err(StatesError::new(error, body))
            }
        }
    }

    /// `states:startExecution`: starts a child of the same namespace; `.sync` waits for its end.
    async fn start_execution(
        &self,
        workflows: &Arc<Workflows>,
        pattern: &Pattern,
        input: &Value,
    ) -> Result<Value, StatesError> {
        let machine = text_of(field(input, "StateMachineArn", "states:startExecution")?);
        let child_input = input.get("Input").map(text_of);
        let name = input.get("Name").map(text_of);
        let failed = |e: crate::error::SfnError| {
            StatesError::new(format!("StepFunctions.{}", e.code()), e.to_string())
        };
        let ns = &self.namespace;
        let json_output = match pattern {
            Pattern::Sync { json_output } => *json_output,
            _ => {
                let (arn, start) = workflows
                    .start_execution(
                        ns,
                        &machine,
                        name.as_deref(),
                        child_input.as_deref(),
                        self.trace.clone(),
                    )
                    .await
                    .map_err(failed)?;
                return Ok(json!({"ExecutionArn": arn, "StartDate": start}));
            }
        };
        let sm = workflows
            .state_machine(ns, &machine)
            .await
            .map_err(failed)?;
        let shaped = |arn: &str,
                      status: &str,
                      start: i64,
                      stop: i64,
                      input: &str,
                      output: Option<String>| {
            let output = output.map(|o| match json_output {
                true => serde_json::from_str(&o).unwrap_or(Value::String(o)),
                false => Value::String(o),
            });
            let input = match json_output {
                true => serde_json::from_str(input).unwrap_or(Value::String(input.into())),
                false => Value::String(input.into()),
            };
            json!({
                "ExecutionArn": arn, "StateMachineArn": sm.arn, "Name": last_segment(arn),
                "Status": status, "StartDate": start, "StopDate": stop,
                "Input": input, "InputDetails": {"Included": true},
                "Output": output, "OutputDetails": {"Included": true},
            })
        };
        if sm.kind == EXPRESS {
            let r = workflows
                .start_sync_execution(
                    ns,
                    &machine,
                    name.as_deref(),
                    child_input.as_deref(),
                    self.trace.clone(),
                )
                .await
                .map_err(failed)?;
            let described = shaped(
                &r.execution_arn,
                r.outcome.status(),
                r.start_ms,
                r.stop_ms,
                &r.input,
                r.outcome.output().map(Value::to_string),
            );
            return match r.outcome {
                Outcome::Succeeded(_) => Ok(described),
                _ => Err(StatesError::new(names::TASK_FAILED, described.to_string())),
            };
        }
        let (arn, _) = workflows
            .start_execution(
                ns,
                &machine,
                name.as_deref(),
                child_input.as_deref(),
                self.trace.clone(),
            )
            .await
            .map_err(failed)?;
        loop {
            let e = workflows.execution(ns, &arn).await.map_err(failed)?;
            if e.status != "RUNNING" {
                let described = shaped(
                    &e.arn,
                    &e.status,
                    e.start_ms,
                    e.stop_ms.unwrap_or_default(),
                    &e.input,
                    e.output.clone(),
                );
                return match e.status.as_str() {
                    "SUCCEEDED" => Ok(described),
                    _ => Err(StatesError::new(names::TASK_FAILED, described.to_string())),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
