//! The AWS Lambda-compatible REST API (`/2015-03-31/…` and the other date-prefixed paths
//! boto3 uses), served beside Lambent's own `/v1` on the same functions: so boto3, the AWS CLI
//! and other AWS tooling work by pointing their endpoint URL at a Lambent server.
//!
//! Every request must carry a valid SigV4 signature made with one of the namespace's access
//! keys ([`auth`]); errors come in AWS's shape ([`AwsError`]); ARNs use the server's region and
//! the namespace as the account ([`arn`]). What each operation supports is in `docs/aws-api.md`.

pub mod arn;
pub mod auth;
mod error;
mod functions;
mod invoke;
mod mappings;
pub mod sigv4;
mod versions;
mod view;

pub use error::AwsError;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use lambent_gateway::App;
use std::sync::Arc;

/// What the Lambda API's handlers share.
pub struct AwsApi {
    pub app: Arc<App>,
    /// The region in ARNs, and the one request signatures must be scoped to.
    pub region: String,
}

/// The Lambda API's routes, each behind SigV4 verification. Merge it beside the gateway's.
pub fn router(app: Arc<App>, region: String) -> Router {
    let api = Arc::new(AwsApi { app, region });
    functions::routes()
        .merge(invoke::routes())
        .merge(versions::routes())
        .merge(mappings::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            api.clone(),
            auth::require_signature,
        ))
        .layer(axum::middleware::from_fn(request_id))
        // The signature check reads whole bodies, with its own limit.
        .layer(DefaultBodyLimit::disable())
        .with_state(api)
}

/// Gives every answer, errors included, an `x-amzn-RequestId` (botocore's
/// `ResponseMetadata.RequestId`): the activation id for an invocation, else a new one.
async fn request_id(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if !response.headers().contains_key("x-amzn-requestid") {
        if let Ok(id) = axum::http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            response.headers_mut().insert("x-amzn-requestid", id);
        }
    }
    response
}
