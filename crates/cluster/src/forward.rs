//! The hop between nodes: a synchronous invocation that belongs to another node (its home, or
//! the next one when the home is saturated) is sent there over a pooled keep-alive HTTP/1.1
//! connection, `POST /v1/cluster/invoke`, authenticated with the cluster's secret. The
//! receiving node runs it itself and never forwards it again. The request carries the payload
//! as its body and the invocation's settings in headers; the answer is the activation record
//! (JSON, length-prefixed) followed by the function's result bytes, so neither is re-encoded.

use bytes::{BufMut, Bytes, BytesMut};
use lambent_core::Activation;
use lambent_invoker::{InvokeRequest, InvokeResult};
use std::time::Duration;

/// The path a node serves forwarded invocations on.
pub const FORWARD_PATH: &str = "/v1/cluster/invoke";

pub const NAMESPACE: &str = "lambent-namespace";
pub const FUNCTION: &str = "lambent-function";
pub const REVISION: &str = "lambent-revision";
pub const TRIGGER: &str = "lambent-trigger";
pub const REQUEST_ID: &str = "lambent-request-id";
pub const QUALIFIER: &str = "lambent-qualifier";
pub const CLIENT_CONTEXT: &str = "lambent-client-context";
pub const COGNITO_IDENTITY: &str = "lambent-cognito-identity";
/// `1`: the sender will try another node if this one is saturated (do not record a throttle).
pub const MAY_SPILL: &str = "lambent-may-spill";
pub const FORWARDED_BY: &str = "lambent-forwarded-by";

/// Why a forwarded invocation got no answer from the node it was sent to.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The node could not be reached (or broke the connection): try another.
    #[error("node {node} at {address} is unreachable: {reason}")]
    Unreachable {
        node: String,
        address: String,
        reason: String,
    },
    /// The node answered, but not with a result (it does not know the function yet, or
    /// refused the request).
    #[error("node {node} refused the forwarded invocation: {status} {message}")]
    Refused {
        node: String,
        status: u16,
        message: String,
    },
}

/// What identifies the function revision a forwarded invocation runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub namespace: String,
    pub function: String,
    pub revision: u64,
}

/// The sending side: one pooled HTTP client for every peer.
#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
    secret: String,
    me: String,
}

impl Forwarder {
    pub fn new(me: &str, secret: &str) -> Forwarder {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("the HTTP client builds");
        Forwarder {
            http,
            secret: secret.to_string(),
            me: me.to_string(),
        }
    }

    /// Runs `req` on the node at `address` (e.g. `http://10.0.0.2:8080`).
    pub async fn invoke(
        &self,
        node: &str,
        address: &str,
        target: &Target,
        req: &InvokeRequest,
        may_spill: bool,
        timeout: Duration,
    ) -> Result<InvokeResult, ForwardError> {
        let unreachable = |reason: String| ForwardError::Unreachable {
            node: node.to_string(),
            address: address.to_string(),
            reason,
        };
        let mut request = self
            .http
            .post(format!("{address}{FORWARD_PATH}"))
            .bearer_auth(&self.secret)
            .timeout(timeout)
            .header(NAMESPACE, &target.namespace)
            .header(FUNCTION, &target.function)
            .header(REVISION, target.revision.to_string())
            .header(TRIGGER, &req.trigger)
            .header(FORWARDED_BY, &self.me)
            .header(MAY_SPILL, if may_spill { "1" } else { "0" });
        let optional = [
            (REQUEST_ID, &req.request_id),
            (QUALIFIER, &req.qualifier),
            (CLIENT_CONTEXT, &req.client_context),
            (COGNITO_IDENTITY, &req.cognito_identity),
        ];
        for (name, value) in optional {
            if let Some(v) = value {
                request = request.header(name, v);
            }
        }
        let response = request
            .body(req.payload.clone())
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(ForwardError::Refused {
                node: node.to_string(),
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
            });
        }
        decode_result(body).map_err(|reason| ForwardError::Refused {
            node: node.to_string(),
            status: status.as_u16(),
            message: reason,
        })
    }
}

/// The receiving side's reading of a forwarded request's headers.
pub fn decode_request(
    headers: &http::HeaderMap,
    payload: Bytes,
) -> Result<(Target, InvokeRequest, bool), String> {
    let text = |name: &str| -> Option<String> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let required = |name: &str| text(name).ok_or_else(|| format!("missing header {name}"));
    let target = Target {
        namespace: required(NAMESPACE)?,
        function: required(FUNCTION)?,
        revision: required(REVISION)?
            .parse()
            .map_err(|_| format!("bad header {REVISION}"))?,
    };
    let req = InvokeRequest {
        payload,
        trigger: required(TRIGGER)?,
        request_id: text(REQUEST_ID),
        client_context: text(CLIENT_CONTEXT),
        cognito_identity: text(COGNITO_IDENTITY),
        qualifier: text(QUALIFIER),
        ..Default::default()
    };
    Ok((target, req, text(MAY_SPILL).as_deref() == Some("1")))
}

/// The answer's body: `u32` big-endian length of the activation's JSON, the JSON, the result.
pub fn encode_result(result: &InvokeResult) -> Bytes {
    let record = serde_json::to_vec(&result.activation).expect("activations serialize");
    let mut out = BytesMut::with_capacity(4 + record.len() + result.body.len());
    out.put_u32(record.len() as u32);
    out.put_slice(&record);
    out.put_slice(&result.body);
    out.freeze()
}

pub fn decode_result(mut body: Bytes) -> Result<InvokeResult, String> {
    if body.len() < 4 {
        return Err("truncated answer".into());
    }
    let len = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
    if body.len() < 4 + len {
        return Err("truncated activation record".into());
    }
    let _ = body.split_to(4);
    let record = body.split_to(len);
    let activation: Activation =
        serde_json::from_slice(&record).map_err(|e| format!("bad activation record: {e}"))?;
    Ok(InvokeResult { activation, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip() {
        let result = InvokeResult {
            activation: Activation {
                id: "a1".into(),
                node: "n2".into(),
                logs: "START\n".into(),
                ..Default::default()
            },
            body: Bytes::from_static(b"{\"ok\":true}"),
        };
        let back = decode_result(encode_result(&result)).unwrap();
        assert_eq!(back.activation, result.activation);
        assert_eq!(back.body, result.body);
        assert!(decode_result(Bytes::from_static(b"\0\0\0\x09{}")).is_err());
    }

    #[test]
    fn requests_round_trip_through_headers() {
        let mut headers = http::HeaderMap::new();
        for (k, v) in [
            (NAMESPACE, "default"),
            (FUNCTION, "f"),
            (REVISION, "3"),
            (TRIGGER, "api"),
            (REQUEST_ID, "r1"),
            (MAY_SPILL, "1"),
        ] {
            headers.insert(k, v.parse().unwrap());
        }
        let (target, req, may_spill) = decode_request(&headers, Bytes::from_static(b"{}")).unwrap();
        assert_eq!(target.revision, 3);
        assert_eq!(req.request_id.as_deref(), Some("r1"));
        assert!(may_spill);
        headers.remove(FUNCTION);
        assert!(decode_request(&headers, Bytes::new()).is_err());
    }
}
