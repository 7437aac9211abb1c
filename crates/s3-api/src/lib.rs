//! The S3 REST API over the object engine (`lambent-objects`), through the `s3s` crate: it
//! parses requests into typed inputs, verifies SigV4 (header, presigned query, `aws-chunked`
//! streaming payloads with signed chunks or unsigned trailers) and writes S3's XML; this crate
//! maps each operation onto the engine and the engine's errors onto S3's codes.
//!
//! [`is_s3_request`] is the listener's one dispatch rule (credential scope `s3`, or a Host of
//! the S3 domain); [`S3Api::service`] is the hyper service those requests go to.

mod auth;
mod convert;
mod ops;

pub use auth::{KeyAuth, Namespace};
/// The request-body conversions, for the fuzz targets (`fuzz/`).
#[doc(hidden)]
pub use ops::{completed_parts, notification_targets};

use lambent_gateway::credentials::Credentials;
use lambent_objects::Objects;
use std::sync::Arc;

/// The S3 operations over one engine.
#[derive(Clone)]
pub struct S3Api {
    objects: Arc<Objects>,
}

/// The hyper service S3 requests are handed to.
pub type Service = s3s::service::S3Service;

/// Host-header parsing: `DOMAIN` is path-style, `BUCKET.DOMAIN` virtual-host style, any other
/// host path-style.
struct Hosts(String);

impl s3s::host::S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> s3s::S3Result<s3s::host::VirtualHost<'a>> {
        let domain = self.0.as_str();
        match virtual_host_bucket(domain, host) {
            Some(bucket) => Ok(s3s::host::VirtualHost::new(domain).with_bucket(bucket)),
            None => Ok(s3s::host::VirtualHost::new(strip_port(host))),
        }
    }
}

/// The bucket a `Host` value names virtual-host style (`BUCKET.DOMAIN[:port]`), if it does.
fn virtual_host_bucket<'a>(domain: &str, host: &'a str) -> Option<&'a str> {
    strip_port(host)
        .strip_suffix(domain)
        .and_then(|b| b.strip_suffix('.'))
        .filter(|b| !b.is_empty())
}

fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((h, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The most bytes of XML an S3 request body may carry (DeleteObjects of 1000 keys of 1 KiB
/// is about 1 MiB; CompleteMultipartUpload of 10000 parts about 1 MiB).
const XML_MAX: usize = 4 << 20;

impl S3Api {
    pub fn new(objects: Arc<Objects>) -> S3Api {
        S3Api { objects }
    }

    /// The hyper service: signatures checked against `keys`' access keys, virtual-host style
    /// under `domain` when one is given.
    pub fn service(self, keys: Credentials, domain: Option<&str>) -> Service {
        let mut builder = s3s::service::S3ServiceBuilder::new(self);
        builder.set_auth(KeyAuth(keys.clone()));
        builder.set_access(KeyAuth(keys));
        if let Some(domain) = domain {
            builder.set_host(Hosts(domain.to_ascii_lowercase()));
        }
        let mut config = s3s::config::S3Config::default();
        config.xml_max_body_size = XML_MAX;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            config,
        ))));
        builder.build()
    }
}

/// How many S3 requests run at once; beyond it a request gets `503 SlowDown` at once (as S3
/// answers a client it wants to back off), before its body is read.
pub const MAX_CONCURRENT: usize = 1024;

/// S3 on the listener: the service, the rule that picks its requests, a cap on how many run.
#[derive(Clone)]
pub struct Endpoint {
    service: Service,
    /// Tells which secret of a rotated key signed a request.
    keys: auth::KeyAuth,
    /// Where write operations are audited.
    app: Arc<lambent_gateway::App>,
    domain: Option<String>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl Endpoint {
    /// S3 over `objects`, signed with `app`'s access keys, virtual-host style under `domain`;
    /// write operations go to `app`'s audit log.
    pub fn new(
        objects: Arc<Objects>,
        app: Arc<lambent_gateway::App>,
        domain: Option<&str>,
    ) -> Endpoint {
        let keys: Credentials = app.credentials.clone();
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        Endpoint {
            service: S3Api::new(objects).service(keys.clone(), domain.as_deref()),
            keys: auth::KeyAuth(keys),
            app,
            domain,
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT)),
        }
    }

    /// Whether this request is S3's ([`is_s3_request`]).
    pub fn wants<B>(&self, req: &http::Request<B>) -> bool {
        is_s3_request(req.headers(), req.uri().query(), self.domain.as_deref())
    }

    /// Serves one S3 request.
    pub async fn handle<B>(&self, req: http::Request<B>) -> http::Response<s3s::Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            return error_response(s3s::S3Error::with_message(
                s3s::S3ErrorCode::SlowDown,
                "please reduce your request rate",
            ));
        };
        let mut service = self.service.clone();
        let vh_bucket = match (&self.domain, req.headers().get(http::header::HOST)) {
            (Some(domain), Some(host)) => host
                .to_str()
                .ok()
                .and_then(|h| virtual_host_bucket(domain, h)),
            _ => None,
        };
        let previous = self
            .keys
            .previous_secret_signing(req.method(), req.uri(), vh_bucket, req.headers())
            .await;
        let client = req
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.to_string())
            .unwrap_or_default();
        let method = req.method().to_string();
        let call = auth::AUDITED.scope(Default::default(), async move {
            let call = tower::Service::call(&mut service, req);
            let result = match previous {
                Some(previous) => auth::SIGNED_WITH_PREVIOUS.scope(previous, call).await,
                None => call.await,
            };
            (result, auth::AUDITED.with(|slot| slot.borrow_mut().take()))
        });
        let (result, audited) = call.await;
        if let Some(a) = audited {
            let status = match &result {
                Ok(response) => response.status().as_u16(),
                Err(_) => 500,
            };
            self.audit(a, method, status, client).await;
        }
        match result {
            Ok(response) => response,
            Err(e) => {
                tracing::error!("S3 request failed: {e:?}");
                error_response(s3s::S3Error::new(s3s::S3ErrorCode::InternalError))
            }
        }
    }
}

impl Endpoint {
    /// Writes one S3 write operation to its namespace's audit log (as `s3:Action`).
    async fn audit(&self, a: auth::Audited, method: String, status: u16, client: String) {
        self.app
            .audit(lambent_store::tenants::AuditEntry {
                namespace: a.principal.namespace.clone(),
                at_ms: lambent_core::now_ms(),
                key_id: a.principal.key_id.clone(),
                role: a.principal.role,
                method,
                action: format!("s3:{}", a.action),
                target: a.target,
                status,
                client,
            })
            .await;
    }
}

fn error_response(e: s3s::S3Error) -> http::Response<s3s::Body> {
    e.to_http_response().unwrap_or_else(|_| {
        let mut r = http::Response::new(s3s::Body::empty());
        *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
        r
    })
}

/// Whether a request is for S3: its SigV4 credential scope (in `Authorization`, or a presigned
/// URL's `X-Amz-Credential`) names the service `s3`, it is signed with signature version 2
/// (S3's alone), or its Host is `domain` or a subdomain of it.
pub fn is_s3_request(headers: &http::HeaderMap, query: Option<&str>, domain: Option<&str>) -> bool {
    if let Some(domain) = domain {
        let host = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(strip_port);
        if let Some(host) = host {
            let host = host.to_ascii_lowercase();
            if host == domain || host.strip_suffix(domain).is_some_and(|h| h.ends_with('.')) {
                return true;
            }
        }
    }
    let scope_is_s3 = |credential: &str| credential.split('/').nth(3) == Some("s3");
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    {
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            return rest
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("Credential="))
                .any(scope_is_s3);
        }
        // Signature version 2 (`AWS id:signature`) is S3's alone among AWS's APIs.
        return auth.starts_with("AWS ");
    }
    query.is_some_and(|q| {
        let (mut v2_key, mut v2_signature) = (false, false);
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "X-Amz-Credential" if scope_is_s3(&v) => return true,
                "AWSAccessKeyId" => v2_key = true,
                "Signature" => v2_signature = true,
                _ => {}
            }
        }
        // A presigned URL of signature version 2 (the AWS CLI v1's `s3 presign`).
        v2_key && v2_signature
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn s3_requests_are_told_by_scope_or_host() {
        let s3 = "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/s3/aws4_request, \
                  SignedHeaders=host, Signature=abc";
        let lambda = s3.replace("/s3/", "/lambda/");
        assert!(is_s3_request(
            &headers(&[("authorization", s3)]),
            None,
            None
        ));
        assert!(!is_s3_request(
            &headers(&[("authorization", &lambda)]),
            None,
            None
        ));
        assert!(!is_s3_request(
            &headers(&[("authorization", "Bearer x")]),
            None,
            None
        ));
        let presigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=x";
        assert!(is_s3_request(&headers(&[]), Some(presigned), None));
        assert!(!is_s3_request(&headers(&[]), Some("a=b"), None));
        let v2 = "AWSAccessKeyId=AKID&Signature=abc%3D&Expires=1796179017";
        assert!(is_s3_request(&headers(&[]), Some(v2), None));
        assert!(is_s3_request(
            &headers(&[("authorization", "AWS AKID:sig")]),
            None,
            None
        ));
        let domain = Some("s3.local");
        assert!(is_s3_request(
            &headers(&[("host", "s3.local:9000")]),
            None,
            domain
        ));
        assert!(is_s3_request(
            &headers(&[("host", "photos.s3.local")]),
            None,
            domain
        ));
        assert!(!is_s3_request(
            &headers(&[("host", "evils3.local")]),
            None,
            domain
        ));
        assert!(!is_s3_request(
            &headers(&[("host", "127.0.0.1:9000")]),
            None,
            domain
        ));
    }
}
