//! The cluster's side of Step Functions task callbacks: a `SendTask*` for a token of another
//! node goes to that node as a NATS request ([`NatsRelay`], the `callbacks` service of
//! `lambent_bus_nats`), and each node answers the ones for its own tokens ([`serve`]).

use bytes::Bytes;
use lambent_bus_nats::{AskError, NatsBus};
use lambent_sfn_api::callbacks::{Relay, RelayError};
use lambent_sfn_api::Workflows;
use lambent_store::StoreError;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The service callbacks travel on.
const CALLBACKS: &str = "callbacks";
/// How long a node waits for another's answer before taking its token as gone.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Relays task callbacks over NATS.
pub struct NatsRelay(pub Arc<NatsBus>);

#[async_trait::async_trait]
impl Relay for NatsRelay {
    async fn ask(&self, node: &str, request: Bytes) -> Result<Bytes, RelayError> {
        self.0
            .ask(node, CALLBACKS, request, ANSWER_TIMEOUT)
            .await
            .map_err(|e| match e {
                AskError::NoNode(node) | AskError::TimedOut { node, .. } => RelayError::Gone(node),
                AskError::Failed { node, reason } => RelayError::Failed { node, reason },
            })
    }
}

/// Relays this node's callbacks for other nodes' tokens through `nats`, and answers theirs for
/// its own until the returned task is aborted.
pub async fn serve(
    nats: &Arc<NatsBus>,
    workflows: &Arc<Workflows>,
) -> Result<JoinHandle<()>, StoreError> {
    workflows
        .callbacks()
        .set_relay(Arc::new(NatsRelay(nats.clone())));
    let workflows: Weak<Workflows> = Arc::downgrade(workflows);
    nats.serve(
        CALLBACKS,
        Arc::new(move |request| match workflows.upgrade() {
            Some(workflows) => workflows.callbacks().answer(&request),
            None => Bytes::new(),
        }),
    )
    .await
}
