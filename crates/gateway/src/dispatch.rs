//! Where a synchronous invocation runs. On the embedded node: here. In a cluster: on its
//! function's home node (warm sandboxes are reused there), or the next node by hash when the
//! home is saturated or unreachable, over the link to that node ([`lambent_cluster::forward`]).
//! A node accepts other nodes' links ([`serve_link`]) and runs what they forward itself; when
//! it does not know the function's revision yet (the deploy's signal is still on its way), it
//! reads the function from the store first.

use crate::{ApiError, App};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use lambent_cluster::forward::{self, ForwardError, Refusal, Target};
use lambent_cluster::node::Hop;
use lambent_core::ActivationStatus;
use lambent_invoker::{Deployment, InvokeRequest, InvokeResult};
use std::sync::Arc;
use std::time::Duration;

impl App {
    /// Runs a synchronous invocation where it belongs (see the module doc).
    pub async fn run(&self, dep: &Arc<Deployment>, mut req: InvokeRequest) -> InvokeResult {
        let f = &dep.function;
        // While the home is saturated, a sandbox of this revision idle here (the home spilled
        // here before) runs it, warm and without a hop.
        let hops = self.cluster.hops(&f.namespace, f.name.as_str(), || {
            self.registry.invoker().revision_counts(dep).idle > 0
        });
        let last = hops.len() - 1;
        for (i, hop) in hops.into_iter().enumerate() {
            req.may_spill = i < last;
            let _running = self.cluster.running_at(&hop);
            let (node, address) = match hop {
                Hop::Local => {
                    let result = self.registry.invoker().invoke(dep, req.clone()).await;
                    if spills(&result.activation) && i < last {
                        self.cluster.saturated(
                            self.cluster.node_id(),
                            &f.namespace,
                            f.name.as_str(),
                        );
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
                    if spills(&result.activation) && i < last {
                        self.cluster.saturated(&node, &f.namespace, f.name.as_str());
                        continue;
                    }
                    return result;
                }
                Err(e @ ForwardError::Unreachable { .. }) => {
                    tracing::warn!("{e}: trying the next node");
                    self.cluster.unreachable(&node);
                }
                Err(e) => tracing::warn!("{e}: trying the next node"),
            }
        }
        // Every other node failed us: run it here.
        req.may_spill = false;
        self.registry.invoker().invoke(dep, req).await
    }

    /// Sends the record of an invocation that came through HTTP (a route, `/v1` invoke), with
    /// the status this node answers it with (its gateway span's `http.response.status_code`);
    /// see [`lambent_invoker::awaits_http_status`]. Call it once the answer is made (the
    /// record is moved into the writer's queue, not copied), before sending it.
    pub fn answered(&self, result: InvokeResult, status: u16) {
        if !result.record_due {
            return;
        }
        let mut record = result.activation;
        if let Some(http) = record.trace.as_mut().and_then(|t| t.http.as_mut()) {
            http.status = Some(status);
        }
        self.registry.invoker().record(record);
    }
}

/// Whether a refused invocation may be tried on the next node: a throttle may; a spent
/// budget is the same everywhere.
fn spills(a: &lambent_core::Activation) -> bool {
    a.status == ActivationStatus::Throttled
        && a.error_type.as_deref() != Some(lambent_invoker::BUDGET_EXHAUSTED)
}

/// `GET /v1/cluster/link` (an HTTP/1.1 upgrade to `lambent-link/1`, with the cluster's
/// secret): another node's link, over which it forwards invocations that this node runs
/// (see [`forward`]).
pub async fn serve_link(
    State(app): State<Arc<App>>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let secret = app.cluster.secret();
    let authorized = !secret.is_empty()
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| constant_time_eq(given.as_bytes(), secret.as_bytes()));
    if !authorized {
        return Err(ApiError::Unauthorized(
            "forwarded invocations need the cluster's secret",
        ));
    }
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok());
    if upgrade != Some(forward::LINK_PROTOCOL) {
        return Err(ApiError::InvalidParameter(format!(
            "a link is an upgrade to {}",
            forward::LINK_PROTOCOL
        )));
    }
    let peer = headers
        .get(forward::FORWARDED_BY)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?")
        .to_string();
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match upgrading.await {
            Ok(upgraded) => {
                tracing::debug!("link from node {peer} opened");
                let io = hyper_util::rt::TokioIo::new(upgraded);
                forward::serve_link(io, move |target, req| {
                    run_forwarded(app.clone(), target, req)
                })
                .await;
                tracing::debug!("link from node {peer} closed");
            }
            Err(e) => tracing::warn!("link from node {peer} failed to open: {e}"),
        }
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, forward::LINK_PROTOCOL)
        .body(Body::empty())
        .expect("a valid response"))
}

/// Runs an invocation another node forwarded here; when this node does not know the
/// function's revision yet (the deploy's signal is still on its way), it reads the function
/// from the store first.
async fn run_forwarded(
    app: Arc<App>,
    target: Target,
    req: InvokeRequest,
) -> Result<InvokeResult, Refusal> {
    let refusal = |e: ApiError| Refusal {
        status: e.status().as_u16(),
        message: e.to_string(),
    };
    let deployment = match app.registry.revision(&target) {
        Some(d) => d,
        None => {
            app.registry
                .refresh(&target.namespace, &target.function)
                .await
                .map_err(refusal)?;
            app.registry.revision(&target).ok_or_else(|| {
                refusal(ApiError::function_not_found(
                    &target.namespace,
                    &target.function,
                ))
            })?
        }
    };
    Ok(app.registry.invoker().invoke(&deployment, req).await)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
