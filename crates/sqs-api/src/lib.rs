//! Lambent's queues and topics through AWS's wire protocols, a thin adapter over the
//! `lambent-queues` engine: SQS in its JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.<Op>`) and
//! its query protocol (a form with `Action=`), SNS in its query protocol. Every call is
//! SigV4-signed (service `sqs` or `sns`) with the namespace's access keys or a sandbox's session
//! credentials; the signer's namespace owns the queues and topics. The server's listener hands
//! a request to [`handle`] when [`protocol_of`] names its protocol.
//!
//! [`sqs`] runs SQS's operations on JSON input, [`query`] converts SQS's query protocol to and
//! from it, [`sns`] runs SNS's actions, [`wire`] holds what the protocols share, [`error`]
//! their errors.

pub mod error;
pub mod query;
pub mod sns;
pub mod sqs;
pub mod wire;

use crate::error::{SnsError, SqsError};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_aws_api::{auth, sigv4};
use lambent_gateway::access::Access;
use lambent_gateway::App;
use serde_json::Value;
use std::sync::Arc;

/// The largest request: ten 256 KB messages with their attributes, form-encoded, with room.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
const SQS_TARGET_PREFIX: &str = "AmazonSQS.";
const SQS_XMLNS: &str = "http://queue.amazonaws.com/doc/2012-11-05/";
const SNS_XMLNS: &str = "http://sns.amazonaws.com/doc/2010-03-31/";

/// The SQS and SNS endpoint: the queues and the credentials that sign for them.
pub struct Endpoint {
    pub app: Arc<App>,
    pub region: String,
}

/// Which protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    SqsJson,
    SqsQuery,
    SnsQuery,
}

impl Protocol {
    fn service(self) -> &'static str {
        match self {
            Protocol::SnsQuery => "sns",
            _ => "sqs",
        }
    }
}

/// Whether a request is an SQS or SNS call: a `POST` with `X-Amz-Target: AmazonSQS.*`, or a
/// form `POST` whose SigV4 credential scope names `sqs` or `sns` (the query protocol, on `/`
/// or on a queue's URL).
pub fn protocol_of(request: &Request) -> Option<Protocol> {
    if request.method() != Method::POST {
        return None;
    }
    let headers = request.headers();
    if headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with(SQS_TARGET_PREFIX))
    {
        return Some(Protocol::SqsJson);
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return None;
    }
    let service = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| sigv4::Authorization::parse(v).ok())?
        .service;
    match service.as_str() {
        "sqs" => Some(Protocol::SqsQuery),
        "sns" => Some(Protocol::SnsQuery),
        _ => None,
    }
}

/// A failure in the protocol's shape: (status, code, JSON `__type`, fault, message).
struct Failure {
    status: StatusCode,
    code: &'static str,
    json_type: &'static str,
    fault: &'static str,
    message: String,
}

impl From<SqsError> for Failure {
    fn from(e: SqsError) -> Failure {
        let (json_type, code, status, fault) = e.wire();
        Failure {
            status,
            code,
            json_type,
            fault,
            message: e.to_string(),
        }
    }
}

impl From<SnsError> for Failure {
    fn from(e: SnsError) -> Failure {
        let (code, status) = e.wire();
        Failure {
            status,
            code,
            json_type: code,
            fault: if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
            message: e.to_string(),
        }
    }
}

impl From<lambent_aws_api::AwsError> for Failure {
    fn from(e: lambent_aws_api::AwsError) -> Failure {
        let (status, code) = wire::access_error(&e);
        Failure {
            status,
            code,
            json_type: code,
            fault: if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            },
            message: e.to_string(),
        }
    }
}

impl Failure {
    fn response(self, protocol: Protocol, request_id: &str) -> Response {
        match protocol {
            Protocol::SqsJson => {
                let body = query::json_error(self.json_type, &self.message);
                let mut r = json_response(self.status, &body);
                if let Ok(v) = HeaderValue::from_str(&format!("{};{}", self.code, self.fault)) {
                    r.headers_mut().insert("x-amzn-query-error", v);
                }
                r
            }
            _ => wire::xml_error(
                self.status,
                self.fault,
                self.code,
                &self.message,
                request_id,
            ),
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

/// Answers one SQS or SNS call.
pub async fn handle(endpoint: &Endpoint, protocol: Protocol, request: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut response = match answer(endpoint, protocol, request, &request_id).await {
        Ok(r) => r,
        Err(f) => f.response(protocol, &request_id),
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

async fn answer(
    endpoint: &Endpoint,
    protocol: Protocol,
    request: Request,
    request_id: &str,
) -> Result<Response, Failure> {
    let (parts, body) = request.into_parts();
    let principal = auth::signer(&endpoint.app, &parts).await?;
    let body = lambent_gateway::body::read(body, MAX_REQUEST_BYTES, "the request")
        .await
        .map_err(|e| SqsError::InvalidParameterValue(e.to_string()))?;
    let signer = principal;
    let principal = auth::verify(&parts, &body, &signer, &endpoint.region, protocol.service())?;
    let namespace = principal.namespace.clone();
    let queues = &endpoint.app.queues;
    // The action's access, checked before it runs and audited after (changes only).
    let gate = |action: &str| -> Result<Access, Failure> {
        let invoking: &[&str] = match protocol {
            Protocol::SnsQuery => &["Publish", "PublishBatch"],
            _ => &["SendMessage", "SendMessageBatch"],
        };
        let access = lambent_gateway::access::aws_action(action, invoking);
        auth::authorize(&principal, access)?;
        Ok(access)
    };
    let client = auth::client_address(&parts);
    let audit = |action: String, access: Access, ok: bool| {
        let (app, principal, client) = (&endpoint.app, &principal, client.clone());
        async move {
            if lambent_gateway::audited(access) {
                let status = if ok { 200 } else { 400 };
                auth::audit(app, principal, "POST", &action, "", status, client).await;
            }
        }
    };
    // The caller's trace context (what boto3 and the JavaScript SDK send as
    // `X-Amzn-Trace-Id` inside a function): messages and deliveries continue it.
    let trace = lambent_gateway::trace_context(&parts.headers);
    match protocol {
        Protocol::SqsJson => {
            let operation = target(&parts);
            let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
                Value::Object(Default::default())
            } else {
                serde_json::from_slice(&body).map_err(|e| {
                    SqsError::InvalidParameterValue(format!("The request is not JSON: {e}"))
                })?
            };
            let origin = wire::origin(&parts);
            let call = sqs::Call {
                queues,
                namespace: &namespace,
                origin: &origin,
                trace: trace.clone(),
            };
            let access = gate(&operation)?;
            let output = sqs::dispatch(&call, &operation, &input).await;
            audit(format!("sqs:{operation}"), access, output.is_ok()).await;
            Ok(json_response(StatusCode::OK, &output?))
        }
        Protocol::SqsQuery => {
            let params = wire::params(parts.uri.query(), &body);
            let action = action(&params).map_err(SqsError::MissingParameter)?;
            let mut input = query::input(&params);
            // A query request sent to a queue's URL names its queue by the path.
            if input.get("QueueUrl").is_none() && parts.uri.path() != "/" {
                input["QueueUrl"] = Value::String(parts.uri.path().to_string());
            }
            let origin = wire::origin(&parts);
            let call = sqs::Call {
                queues,
                namespace: &namespace,
                origin: &origin,
                trace: trace.clone(),
            };
            let access = gate(&action)?;
            let output = sqs::dispatch(&call, &action, &input).await;
            audit(format!("sqs:{action}"), access, output.is_ok()).await;
            let output = output?;
            Ok(wire::xml_success(
                SQS_XMLNS,
                &action,
                &query::result(&action, &output),
                request_id,
            ))
        }
        Protocol::SnsQuery => {
            let params = wire::params(parts.uri.query(), &body);
            let action = action(&params)
                .map_err(|p| SnsError::InvalidParameter(format!("{p} is required")))?;
            let call = sns::Call {
                queues,
                namespace: &namespace,
                trace,
            };
            let access = gate(&action)?;
            let result = sns::dispatch(&call, &action, &params).await;
            audit(format!("sns:{action}"), access, result.is_ok()).await;
            Ok(wire::xml_success(SNS_XMLNS, &action, &result?, request_id))
        }
    }
}

fn target(parts: &Parts) -> String {
    parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(SQS_TARGET_PREFIX))
        .unwrap_or_default()
        .to_string()
}

fn action(params: &wire::Params) -> Result<String, &'static str> {
    params
        .get("Action")
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or("Action")
}
