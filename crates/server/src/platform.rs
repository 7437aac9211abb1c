//! The platform inside every sandbox: the node's AWS-compatible APIs, served on the sandbox's
//! own listener beside the Runtime API (`AWS_ENDPOINT_URL=http://127.0.0.1:9001`), with
//! session credentials of the function's namespace in its environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), as Lambda gives a function its role's.
//!
//! What a sandbox reaches there is [`aws_router`] and nothing else: no `/v1`, no users' HTTP
//! routes, no other port of the host. Requests must be SigV4-signed (an unsigned one gets AWS's
//! `MissingAuthenticationTokenException`), and are resolved and verified by the same gate as on
//! the node's listener, in the signer's namespace. The sandbox's own credentials stay valid
//! there as long as the sandbox lives (the request carries [`OwnSandbox`]), so a warm sandbox
//! that outlives their expiry keeps working without a cold start; anywhere else they expire.

use axum::response::IntoResponse;
use axum::Router;
use http_body_util::BodyExt;
use lambent_gateway::credentials::{OwnSandbox, SessionKeys};
use lambent_gateway::App;
use lambent_invoker::{PlatformAccess, SandboxPlatform};
use lambent_runtime_api::{Platform, PlatformBody};
use std::sync::{Arc, OnceLock};
use tower::ServiceExt;

/// The node's AWS-facing routes: the Lambda API (and every AWS-compatible service mounted
/// beside it: a service dispatched by a middleware, such as S3 on paths of its own, is layered
/// on this router, so that sandboxes reach it too). The node's listener serves them beside
/// `/v1`; sandboxes reach only these.
pub fn aws_router(app: Arc<App>, region: String) -> Router {
    lambent_aws_api::router(app, region)
}

/// Hands every new sandbox its credentials and its endpoint's service.
pub struct SandboxAws {
    sessions: Arc<SessionKeys>,
    /// Set once the node's app exists (the invoker, made first, needs this already).
    router: OnceLock<Router>,
}

impl SandboxAws {
    pub fn new(sessions: Arc<SessionKeys>) -> Arc<SandboxAws> {
        Arc::new(SandboxAws {
            sessions,
            router: OnceLock::new(),
        })
    }

    /// Serves `router` ([`aws_router`]) to sandboxes from now on.
    pub fn serve(&self, router: Router) {
        let _ = self.router.set(router);
    }
}

impl SandboxPlatform for SandboxAws {
    fn open(&self, namespace: &str, function: &str) -> PlatformAccess {
        let credentials = self.sessions.issue(namespace, function);
        let own = OwnSandbox(credentials.access_key_id.clone());
        let router = self.router.get().cloned();
        let service: Platform = Arc::new(move |request| {
            let (router, own) = (router.clone(), own.clone());
            Box::pin(async move {
                let response = match router {
                    None => lambent_aws_api::AwsError::Service("the node is still starting".into())
                        .into_response(),
                    Some(_) if !signed(&request) => lambent_aws_api::AwsError::Signature(
                        lambent_aws_api::sigv4::SigV4Error::Missing,
                    )
                    .into_response(),
                    Some(router) => {
                        let mut request = request.map(axum::body::Body::new);
                        request.extensions_mut().insert(own);
                        match router.oneshot(request).await {
                            Ok(response) => response,
                            Err(never) => match never {},
                        }
                    }
                };
                response.map(|body| -> PlatformBody {
                    body.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                        .boxed_unsync()
                })
            })
        });
        PlatformAccess {
            env: vec![
                ("AWS_ACCESS_KEY_ID".into(), credentials.access_key_id),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    credentials.secret_access_key,
                ),
                ("AWS_SESSION_TOKEN".into(), credentials.session_token),
            ],
            service,
        }
    }
}

/// Whether a request carries a SigV4 signature (a header, or a presigned URL's query).
fn signed<B>(request: &axum::http::Request<B>) -> bool {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS4-HMAC-SHA256 "));
    let presigned = request
        .uri()
        .query()
        .is_some_and(|q| q.contains("X-Amz-Algorithm=AWS4-HMAC-SHA256"));
    header || presigned
}
