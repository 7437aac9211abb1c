//! Where a synchronous invocation runs. On the embedded node: here. In a cluster: on its
//! function's home node (warm sandboxes are reused there), or the next node by hash when the
//! home is saturated or unreachable, through one keep-alive hop ([`lambent_cluster::forward`]).
//! A node that receives a forwarded invocation runs it itself ([`serve_forwarded`]); when it
//! does not know the function's revision yet (the deploy's signal is still on its way), it
//! reads the function from the store first.

use crate::{ApiError, App};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_cluster::forward::{self, ForwardError, Target};
use lambent_cluster::node::Hop;
use lambent_core::ActivationStatus;
use lambent_invoker::{Deployment, InvokeRequest, InvokeResult};
use std::sync::Arc;
use std::time::Duration;

/// Longest body a forwarded invocation carries (the sync payload limit, with room to spare).
const MAX_FORWARDED: usize = 8 * 1024 * 1024;

impl App {
    /// Runs a synchronous invocation where it belongs (see the module doc).
    pub async fn run(&self, dep: &Arc<Deployment>, mut req: InvokeRequest) -> InvokeResult {
        let f = &dep.function;
        let mut hops = self.cluster.hops(&f.namespace, f.name.as_str());
        // A sandbox of this revision idle here (its home spilled here while busy): run it here,
        // warm, without a hop.
        if hops[0] != Hop::Local && self.registry.invoker().revision_counts(dep).idle > 0 {
            hops.retain(|h| *h != Hop::Local);
            hops.insert(0, Hop::Local);
        }
        let last = hops.len() - 1;
        for (i, hop) in hops.into_iter().enumerate() {
            req.may_spill = i < last;
            let _running = self.cluster.running_at(&hop);
            let (node, address) = match hop {
                Hop::Local => {
                    let result = self.registry.invoker().invoke(dep, req.clone()).await;
                    if result.activation.status == ActivationStatus::Throttled && i < last {
                        self.cluster.saturated(self.cluster.node_id());
                        continue;
                    }
                    return result;
                }
                Hop::Remote { node, address } => (node, address),
            };
            let Some(forwarder) = self.cluster.forwarder() else {
                break;
            };
            let target = Target {
                namespace: f.namespace.clone(),
                function: f.name.to_string(),
                revision: f.revision,
            };
            // The function's own timeout, plus room for a cold start and the hop.
            let timeout = Duration::from_secs(f.config.timeout_s as u64 + 30);
            match forwarder
                .invoke(&node, &address, &target, &req, req.may_spill, timeout)
                .await
            {
                Ok(result) => {
                    if result.activation.status == ActivationStatus::Throttled && i < last {
                        self.cluster.saturated(&node);
                        continue;
                    }
                    return result;
                }
                Err(e @ ForwardError::Unreachable { .. }) => {
                    tracing::warn!("{e}: trying the next node");
                    self.cluster.saturated(&node);
                }
                Err(e) => tracing::warn!("{e}: trying the next node"),
            }
        }
        // Every other node failed us: run it here.
        req.may_spill = false;
        self.registry.invoker().invoke(dep, req).await
    }
}

/// `POST /v1/cluster/invoke`: an invocation forwarded by another node, run here.
pub async fn serve_forwarded(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let secret = app.cluster.secret();
    let authorized = !secret.is_empty()
        && headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), secret.as_bytes()));
    if !authorized {
        return Err(ApiError::Unauthorized(
            "forwarded invocations need the cluster's secret",
        ));
    }
    let payload = crate::body::read(body, MAX_FORWARDED, "the forwarded payload").await?;
    let (target, req, _) =
        forward::decode_request(&headers, payload).map_err(ApiError::InvalidParameter)?;
    let deployment = match app.registry.revision(&target) {
        Some(d) => d,
        None => {
            app.registry
                .refresh(&target.namespace, &target.function)
                .await?;
            app.registry
                .revision(&target)
                .ok_or_else(|| ApiError::function_not_found(&target.namespace, &target.function))?
        }
    };
    let result = app.registry.invoker().invoke(&deployment, req).await;
    Ok((StatusCode::OK, forward::encode_result(&result)).into_response())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
