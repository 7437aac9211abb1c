//! A typed, blocking client of the Lambent REST API (`docs/api.md`).
//!
//! Every call returns the API's JSON both typed (for tables) and raw (for `-o json`, so scripts
//! see exactly what the API said). Failures are one [`ClientError`]: the API's own
//! `{"error": {"code", "message"}}` bodies become [`ClientError::Api`]; a server that cannot be
//! reached becomes [`ClientError::Unreachable`] with a hint to start one.

use lambent_core::metering::{Advice, Grouping, Prices, UsageRow};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

mod buckets;
mod queues;
mod routes;
mod sequences;
mod tables;
mod tenants;
mod versions;
mod workflows;
pub use buckets::{
    BucketDeleted, BucketInfo, BucketList, NotificationConfiguration, Notifications, ObjectInfo,
    ObjectPage, ObjectQuery,
};
pub use queues::*;
pub use routes::{Route, RouteList};
pub use sequences::{Sequence, SequenceList, SequencePut};
pub use versions::{AliasInfo, Version};
pub use workflows::{
    Execution, ExecutionList, ExecutionStart, History, TimelineEntry, TransitionRow,
    TransitionUsage, Workflow, WorkflowList, WorkflowPut,
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API answered with an error status and its error body. A 429 reads
    /// `throttled: <message>` (the message names the limit).
    #[error("{}", api_text(*status, message))]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    /// Nothing listens at the URL (connection refused, unknown host, connect timeout).
    #[error("cannot reach Lambent at {url}: is 'lambent up' running?")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The URL given with `--url`, `LAMBENT_URL` or the config file does not parse.
    #[error("invalid Lambent URL '{0}': expected something like http://127.0.0.1:8080")]
    InvalidUrl(String),
    /// The server answered something that is not the API's JSON.
    #[error("unexpected response from {url}: {detail}")]
    BadResponse { url: String, detail: String },
    #[error("request to {url} failed: {source}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// How an API error reads: its message, said to be a throttle for a 429.
fn api_text(status: u16, message: &str) -> String {
    if status == 429 {
        format!("throttled: {message}")
    } else {
        message.to_string()
    }
}

impl ClientError {
    /// The API's error code (`FunctionNotFound`, …) if the API answered with an error.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status if the API answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A response body both typed and byte for byte as the API sent it.
#[derive(Debug, Clone)]
pub struct Json<T> {
    pub raw: Vec<u8>,
    pub data: T,
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

/// A function as the API returns it. Unknown fields are ignored so that newer servers work.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Function {
    pub namespace: String,
    pub name: String,
    pub runtime: String,
    pub handler: String,
    pub memory: u64,
    pub timeout: u64,
    pub env: BTreeMap<String, String>,
    pub description: String,
    pub code_sha256: String,
    pub code_size: u64,
    pub revision: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
    /// At most (and at least) this many concurrent invocations; `None`: the shared pool.
    pub reserved_concurrency: Option<u64>,
    /// Sandboxes kept initialized at all times.
    pub provisioned_concurrency: u64,
    /// Seconds an idle sandbox stays warm; `None`: the server's keep-alive.
    pub keep_alive: Option<u64>,
    pub sandboxes: Option<Sandboxes>,
    /// Set by `PUT …?warm=true` when the new revision failed to initialize.
    pub warm_error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sandboxes {
    pub idle: u64,
    pub busy: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FunctionList {
    pub functions: Vec<Function>,
}

/// The body of `PUT /v1/functions/{name}`: unset fields are omitted and get the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FunctionPut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_concurrency: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<u32>,
    /// Retries, maximum event age and destinations of asynchronous invocations.
    #[serde(rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_invoke: Option<lambent_core::AsyncSpec>,
    pub code_sha256: String,
}

/// An access key of the Lambda-compatible API; the secret only in the answer to its creation.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessKey {
    pub access_key_id: String,
    pub namespace: String,
    pub created_ms: u64,
    pub secret_access_key: Option<String>,
    pub role: String,
    pub expires_ms: Option<u64>,
}

/// `GET /v1/nodes`: the cluster's members (one on the embedded store).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeList {
    /// The node that answered.
    pub node: String,
    pub nodes: Vec<NodeStatus>,
}

/// One member, as `GET /v1/nodes` shows it. Unknown fields are ignored, the state is text.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub id: String,
    pub address: String,
    pub version: String,
    /// `up`, `suspect`, `draining` or `down`.
    pub state: String,
    pub heartbeat_age_ms: i64,
    pub stats: NodeStats,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct NodeStats {
    pub warm: u64,
    pub busy: u64,
    pub load: f64,
    pub memory_budget_mb: u64,
    pub memory_used_mb: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AccessKeyList {
    pub keys: Vec<AccessKey>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CodeUploaded {
    pub sha256: String,
    pub size: u64,
}

/// One activation's log text, from `GET /v1/functions/{name}/logs`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct LogEntry {
    pub activation_id: String,
    pub start_ms: u64,
    pub status: String,
    pub text: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Logs {
    pub logs: Vec<LogEntry>,
}

/// One activation record, from `GET /v1/activations[/{id}]`. Unknown fields are ignored and
/// the status is kept as text, so that newer servers work.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Activation {
    pub id: String,
    pub namespace: String,
    pub function: String,
    pub revision: u64,
    pub trigger: String,
    pub start_ms: u64,
    pub end_ms: u64,
    pub duration_us: u64,
    pub billed_ms: u64,
    /// The configured memory.
    pub memory_mb: u64,
    /// Peak memory used, when measured.
    pub max_memory_bytes: Option<u64>,
    pub cold: bool,
    pub cold_reason: Option<String>,
    pub init_us: Option<u64>,
    /// Where a cold start's init time went.
    pub init: Option<InitBreakdown>,
    pub status: String,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub logs: String,
    /// The node that ran it.
    pub node: String,
    /// The activation of the sequence this one is a step of.
    pub parent: Option<String>,
    /// A sequence's activation: its steps' activations, in order.
    pub steps: Vec<String>,
}

/// A cold start's phases, from an activation's `init`. The birth is kept as text, so that
/// newer servers work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct InitBreakdown {
    /// How the sandbox came to run: `exec`, `ahead`, `zygote`, `stem_cell`.
    pub birth: String,
    pub sandbox_us: u64,
    pub runtime_us: u64,
    /// `None` when the runtime did not report it (then `runtime_us` includes it).
    pub import_us: Option<u64>,
}

/// One page of `GET /v1/activations`, newest first.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ActivationPage {
    pub activations: Vec<Activation>,
    /// Pass back as `cursor` for the next page; `None` when there is none.
    pub next_cursor: Option<String>,
}

/// The filters of `GET /v1/activations`; unset ones are left out of the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationFilter {
    pub function: Option<String>,
    pub status: Option<String>,
    pub since_ms: Option<u64>,
    /// Page size (the server caps it at 1000).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The filters of `GET /v1/usage`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    pub since_ms: Option<u64>,
    pub by: Option<Grouping>,
    pub function: Option<String>,
}

/// `GET /v1/usage`: usage and cost per group and in total, right-sizing advice, the prices.
#[derive(Debug, Clone, Deserialize)]
pub struct Usage {
    pub by: Grouping,
    pub rows: Vec<UsageRow>,
    pub total: UsageRow,
    #[serde(default)]
    pub rightsizing: Vec<Advice>,
    #[serde(default)]
    pub prices: Prices,
    /// The namespace's monthly budget and this month's spend, when it has one.
    #[serde(default)]
    pub budget: Option<BudgetView>,
}

/// A namespace's monthly budget, as `/v1/usage` shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct BudgetView {
    pub monthly_usd: f64,
    pub spent_usd: f64,
    pub hard: bool,
    #[serde(default)]
    pub exhausted: bool,
    #[serde(default)]
    pub warning: Option<String>,
}

/// `GET /v1/usage?by=namespace` (the operator's): one bill per namespace.
#[derive(Debug, Clone, Deserialize)]
pub struct Bills {
    pub rows: Vec<Bill>,
}

/// One namespace's bill.
#[derive(Debug, Clone, Deserialize)]
pub struct Bill {
    pub namespace: String,
    pub invocations: u64,
    pub gb_seconds: f64,
    pub cost: f64,
    pub storage_bytes: u64,
    pub storage_quota_bytes: Option<u64>,
    pub functions: u64,
    pub max_functions: Option<u64>,
    #[serde(default)]
    pub budget: Option<BudgetView>,
}

/// What an invocation returned. A function's failure is not an API failure: it is reported in
/// `function_error` (the `Lambent-Function-Error` header) with the error JSON as the body.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub body: Vec<u8>,
    pub activation_id: Option<String>,
    pub status: Option<String>,
    pub cold: Option<bool>,
    pub function_error: Option<String>,
}

/// A client bound to one server and API key.
pub struct Client {
    base: String,
    api_key: Option<String>,
    /// The namespace the operator's key acts in (`Lambent-Namespace`).
    namespace: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    /// A client for the server at `url` (`http://host:port`, any trailing `/` is ignored).
    pub fn new(url: &str, api_key: Option<String>) -> Result<Client, ClientError> {
        let base = url.trim_end_matches('/').to_string();
        match reqwest::Url::parse(&base) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => return Err(ClientError::InvalidUrl(url.to_string())),
        }
        let http = reqwest::blocking::Client::builder()
            // Invocations and warm deploys last as long as the function's timeout (up to 15 min).
            .timeout(None)
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
            .map_err(|source| ClientError::Http {
                url: base.clone(),
                source,
            })?;
        Ok(Client {
            base,
            api_key,
            namespace: None,
            http,
        })
    }

    /// The same client acting in `namespace` (the operator's key may act in any).
    pub fn in_namespace(mut self, namespace: Option<String>) -> Client {
        self.namespace = namespace;
        self
    }

    /// The underlying HTTP client (requests go through [`Client::send`] for the key).
    pub(crate) fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// The server's base URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The API key sent with each request, if any.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_deref()
    }

    /// `GET /healthz`: whether a Lambent server answers at the URL.
    pub fn healthy(&self) -> bool {
        let url = format!("{}/healthz", self.base);
        self.http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .map(|r| r.status().is_success())
            .unwrap_or(false)
    }

    /// `HEAD /v1/code/{sha256}`: whether the server already has this code.
    pub fn has_code(&self, sha256: &str) -> Result<bool, ClientError> {
        let url = self.endpoint(&format!("/v1/code/{sha256}"));
        let resp = self.send(&url, self.http.head(&url))?;
        match resp.status().as_u16() {
            200..=299 => Ok(true),
            404 => Ok(false),
            // A HEAD response has no body: name the status at least.
            401 => Err(unauthorized()),
            s => Err(ClientError::Api {
                status: s,
                code: "HttpStatus".into(),
                message: format!("HEAD {url} answered {}", resp.status()),
            }),
        }
    }

    /// `POST /v1/code`: uploads a zip.
    pub fn upload_code(&self, zip: Vec<u8>) -> Result<Json<CodeUploaded>, ClientError> {
        let url = self.endpoint("/v1/code");
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/zip")
            .body(zip);
        self.json(&url, req)
    }

    /// `PUT /v1/functions/{name}[?warm=true]`: creates or replaces a function.
    pub fn put_function(
        &self,
        name: &str,
        body: &FunctionPut,
        warm: bool,
    ) -> Result<Json<Function>, ClientError> {
        let mut url = self.endpoint(&format!("/v1/functions/{}", path_segment(name)));
        if warm {
            url.push_str("?warm=true");
        }
        let req = self.http.put(&url).json(body);
        self.json(&url, req)
    }

    /// `GET /v1/functions`.
    pub fn list_functions(&self) -> Result<Json<FunctionList>, ClientError> {
        let url = self.endpoint("/v1/functions");
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/functions/{name}`.
    pub fn get_function(&self, name: &str) -> Result<Json<Function>, ClientError> {
        let url = self.endpoint(&format!("/v1/functions/{}", path_segment(name)));
        self.json(&url, self.http.get(&url))
    }

    /// `DELETE /v1/functions/{name}`.
    pub fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/functions/{}", path_segment(name)));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `POST /v1/functions/{name}/invoke` with `payload` as the event.
    pub fn invoke(&self, name: &str, payload: Vec<u8>) -> Result<Invocation, ClientError> {
        let url = self.endpoint(&format!("/v1/functions/{}/invoke", path_segment(name)));
        let req = self
            .http
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload);
        let resp = check(&url, self.send(&url, req)?)?;
        let header = |h: &str| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let activation_id = header("lambent-activation-id");
        let status = header("lambent-status");
        let cold = header("lambent-cold").map(|v| v == "true");
        let function_error = header("lambent-function-error");
        let body = resp
            .bytes()
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?
            .to_vec();
        Ok(Invocation {
            body,
            activation_id,
            status,
            cold,
            function_error,
        })
    }

    /// `GET /v1/functions/{name}/logs?tail=N&after_ms=T`: oldest first.
    pub fn logs(
        &self,
        name: &str,
        tail: u32,
        after_ms: Option<u64>,
    ) -> Result<Json<Logs>, ClientError> {
        let mut url = self.endpoint(&format!(
            "/v1/functions/{}/logs?tail={tail}",
            path_segment(name)
        ));
        if let Some(t) = after_ms {
            url.push_str(&format!("&after_ms={t}"));
        }
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/activations?…`: one page, newest first.
    pub fn list_activations(
        &self,
        filter: &ActivationFilter,
    ) -> Result<Json<ActivationPage>, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(f) = &filter.function {
            query.push(("function", f.clone()));
        }
        if let Some(s) = &filter.status {
            query.push(("status", s.clone()));
        }
        if let Some(t) = filter.since_ms {
            query.push(("since_ms", t.to_string()));
        }
        if let Some(n) = filter.limit {
            query.push(("limit", n.to_string()));
        }
        if let Some(c) = &filter.cursor {
            query.push(("cursor", c.clone()));
        }
        let url = self.endpoint(&format!("/v1/activations{}", query_string(&query)));
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/activations/{id}`.
    pub fn get_activation(&self, id: &str) -> Result<Json<Activation>, ClientError> {
        let url = self.endpoint(&format!("/v1/activations/{}", path_segment(id)));
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/usage?…`.
    pub fn usage(&self, filter: &UsageFilter) -> Result<Json<Usage>, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(t) = filter.since_ms {
            query.push(("since_ms", t.to_string()));
        }
        if let Some(by) = filter.by {
            query.push(("by", by.as_str().to_string()));
        }
        if let Some(f) = &filter.function {
            query.push(("function", f.clone()));
        }
        let url = self.endpoint(&format!("/v1/usage{}", query_string(&query)));
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/usage?by=namespace` (the operator's bills).
    pub fn bills(&self, since_ms: Option<u64>) -> Result<Json<Bills>, ClientError> {
        let mut query: Vec<(&str, String)> = vec![("by", "namespace".into())];
        if let Some(t) = since_ms {
            query.push(("since_ms", t.to_string()));
        }
        let url = self.endpoint(&format!("/v1/usage{}", query_string(&query)));
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/nodes`.
    pub fn nodes(&self) -> Result<Json<NodeList>, ClientError> {
        let url = self.endpoint("/v1/nodes");
        self.json(&url, self.http.get(&url))
    }

    /// `POST /v1/keys`: a new access key (the only answer with its secret).
    pub fn create_access_key(&self) -> Result<Json<AccessKey>, ClientError> {
        let url = self.endpoint("/v1/keys");
        self.json(&url, self.http.post(&url))
    }

    /// `GET /v1/keys`.
    pub fn list_access_keys(&self) -> Result<Json<AccessKeyList>, ClientError> {
        let url = self.endpoint("/v1/keys");
        self.json(&url, self.http.get(&url))
    }

    /// `DELETE /v1/keys/{id}`.
    pub fn delete_access_key(&self, access_key_id: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/keys/{}", path_segment(access_key_id)));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    pub(crate) fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub(crate) fn send(
        &self,
        url: &str,
        mut req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        if let Some(ns) = &self.namespace {
            req = req.header("lambent-namespace", ns);
        }
        req.send().map_err(|source| {
            if source.is_connect() {
                ClientError::Unreachable {
                    url: self.base.clone(),
                    source,
                }
            } else {
                ClientError::Http {
                    url: url.to_string(),
                    source,
                }
            }
        })
    }

    pub(crate) fn json<T: DeserializeOwned>(
        &self,
        url: &str,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<Json<T>, ClientError> {
        let resp = check(url, self.send(url, req)?)?;
        let bytes = resp.bytes().map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        let data = serde_json::from_slice(&bytes).map_err(|e| ClientError::BadResponse {
            url: url.to_string(),
            detail: format!("not the expected JSON ({e}): {}", snippet(&bytes)),
        })?;
        Ok(Json {
            raw: bytes.to_vec(),
            data,
        })
    }
}

/// Turns an error status into [`ClientError::Api`], reading the API's error body.
pub(crate) fn check(
    url: &str,
    resp: reqwest::blocking::Response,
) -> Result<reqwest::blocking::Response, ClientError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let bytes = resp.bytes().unwrap_or_default();
    Err(api_error(url, status.as_u16(), &bytes))
}

/// Parses `{"error": {"code", "message"}}`; anything else keeps the status and a body snippet.
fn api_error(url: &str, status: u16, body: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        code: String,
        message: String,
    }
    match serde_json::from_slice::<Body>(body) {
        Ok(b) => ClientError::Api {
            status,
            code: b.error.code,
            message: b.error.message,
        },
        Err(_) if status == 401 => unauthorized(),
        Err(_) => ClientError::Api {
            status,
            code: "HttpStatus".into(),
            message: format!("{url} answered HTTP {status}: {}", snippet(body)),
        },
    }
}

fn unauthorized() -> ClientError {
    ClientError::Api {
        status: 401,
        code: "Unauthorized".into(),
        message: "the API key is missing or unknown".into(),
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text.to_string()
    }
}

/// `?k=v&…` with the values percent-encoded; empty for no pairs.
pub(crate) fn query_string(pairs: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&path_segment(v));
    }
    out
}

/// Percent-encodes a function name for a URL path, so that a bad name reaches the server (which
/// says why it is bad) instead of turning into another path.
pub(crate) fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_code_and_message() {
        let e = api_error(
            "u",
            404,
            br#"{"error":{"code":"FunctionNotFound","message":"function 'x' does not exist"}}"#,
        );
        assert_eq!(e.code(), Some("FunctionNotFound"));
        assert_eq!(e.status(), Some(404));
        assert_eq!(e.to_string(), "function 'x' does not exist");
    }

    #[test]
    fn non_json_errors_name_the_status() {
        let e = api_error("http://h/v1/x", 502, b"Bad Gateway");
        assert_eq!(e.status(), Some(502));
        assert!(e.to_string().contains("502"), "{e}");
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
    }

    #[test]
    fn names_are_escaped_in_paths() {
        assert_eq!(path_segment("hello-world_1"), "hello-world_1");
        assert_eq!(path_segment("bad name/.."), "bad%20name%2F..");
    }

    #[test]
    fn put_body_omits_unset_fields() {
        let body = FunctionPut {
            runtime: Some("python3.12".into()),
            code_sha256: "ab".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"runtime": "python3.12", "code_sha256": "ab"})
        );
    }

    #[test]
    fn throttles_say_so() {
        let e = api_error(
            "u",
            429,
            br#"{"error":{"code":"Throttled","message":"function 'f' reached its reserved concurrency of 0"}}"#,
        );
        assert_eq!(
            e.to_string(),
            "throttled: function 'f' reached its reserved concurrency of 0"
        );
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(query_string(&[]), "");
        assert_eq!(
            query_string(&[("function", "a b".into()), ("cursor", "17:x/y".into())]),
            "?function=a%20b&cursor=17%3Ax%2Fy"
        );
    }

    #[test]
    fn usage_parses() {
        let body = br#"{"by": "function",
            "rows": [{"key": "default/hello", "invocations": 4, "errors": 1, "throttles": 0,
                      "cold_starts": 1, "p50_ms": 0.41, "p99_ms": 51.2, "billed_ms": 87,
                      "gb_seconds": 0.0435, "cost": 1.5e-6}],
            "total": {"key": "total", "invocations": 4, "errors": 1, "throttles": 0,
                      "cold_starts": 1, "p50_ms": 0.41, "p99_ms": 51.2, "billed_ms": 87,
                      "gb_seconds": 0.0435, "cost": 1.5e-6},
            "rightsizing": [{"namespace": "default", "function": "hello", "memory_mb": 512,
                             "max_used_mb": 9, "recommended_mb": 128, "cost": 1.5e-6,
                             "recommended_cost": 9.6e-7, "savings": 5.4e-7}],
            "prices": {"per_request": 2e-7, "per_gb_second": 1.66667e-5}}"#;
        let u: Usage = serde_json::from_slice(body).unwrap();
        assert_eq!(u.by, Grouping::Function);
        assert_eq!(u.rows[0].invocations, 4);
        assert_eq!(u.rightsizing[0].max_used_mb, Some(9));
        assert_eq!(u.prices.per_request, 2e-7);
    }

    #[test]
    fn activations_parse_leniently() {
        let page: ActivationPage = serde_json::from_str(
            r#"{"activations": [{"id": "a", "status": "success", "cold": true,
                "cold_reason": "first_request", "max_memory_bytes": null, "new_field": 1}],
                "next_cursor": null}"#,
        )
        .unwrap();
        assert_eq!(
            page.activations[0].cold_reason.as_deref(),
            Some("first_request")
        );
        assert!(page.next_cursor.is_none());
    }

    #[test]
    fn urls_are_checked() {
        assert!(Client::new("http://127.0.0.1:8080/", None).is_ok());
        assert!(matches!(
            Client::new("127.0.0.1:8080", None),
            Err(ClientError::InvalidUrl(_))
        ));
    }
}
