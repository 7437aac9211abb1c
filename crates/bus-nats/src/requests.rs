//! Requests addressed to one node of a cluster, over core NATS request/reply: a node serves a
//! *service* on `lambent.<cluster_id>.node.<service>.<node id in hex>` ([`NatsBus::serve`]) and
//! any node asks it there ([`NatsBus::ask`]), waiting a bounded time. A node that is not
//! subscribed (dead, gone, never was) is told at once by the server (no responders). For small
//! messages between nodes (task callbacks); invocations take the forward link instead.

use crate::{NatsBus, NatsError};
use bytes::Bytes;
use futures_util::StreamExt;
use lambent_store::StoreError;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What a node answers to a request of a service it serves.
pub type Handler = Arc<dyn Fn(Bytes) -> Bytes + Send + Sync>;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// No node serves the service under that id (dead, gone, or never was).
    #[error("node {0} does not serve this")]
    NoNode(String),
    /// The node did not answer within the timeout.
    #[error("node {node} did not answer within {timeout:?}")]
    TimedOut { node: String, timeout: Duration },
    /// NATS failed (down, the request too large).
    #[error("asking node {node} failed: {reason}")]
    Failed { node: String, reason: String },
}

/// The subject node `node` of cluster `cluster_id` serves `service` on (the node id in hex: a
/// node id may hold dots, which separate subject tokens).
pub fn node_subject(cluster_id: &str, service: &str, node: &str) -> String {
    format!("lambent.{cluster_id}.node.{service}.{}", hex::encode(node))
}

impl NatsBus {
    /// Answers the requests of `service` addressed to this node with `handler` until the
    /// returned task is aborted; subscribed before it returns.
    pub async fn serve(
        &self,
        service: &str,
        handler: Handler,
    ) -> Result<JoinHandle<()>, StoreError> {
        let subject = node_subject(&self.cluster_id, service, &self.node_id);
        let unreachable = |reason: String| NatsError::Unreachable {
            address: self.address.clone(),
            reason,
        };
        let mut requests = self
            .client
            .subscribe(subject.clone())
            .await
            .map_err(|e| unreachable(format!("subscribing to {subject} failed: {e}")))?;
        self.client
            .flush()
            .await
            .map_err(|e| unreachable(format!("flushing the subscription failed: {e}")))?;
        let client = self.client.clone();
        Ok(tokio::spawn(async move {
            while let Some(request) = requests.next().await {
                let Some(reply) = request.reply else {
                    continue;
                };
                let answer = handler(request.payload);
                if let Err(e) = client.publish(reply, answer).await {
                    tracing::debug!("an answer on {subject} was not sent: {e}");
                }
            }
            tracing::warn!("the NATS subscription {subject} ended; no more requests served");
        }))
    }

    /// Asks node `node` for `service` with `payload` and returns its answer, waiting at most
    /// `timeout`.
    pub async fn ask(
        &self,
        node: &str,
        service: &str,
        payload: Bytes,
        timeout: Duration,
    ) -> Result<Bytes, AskError> {
        use async_nats::RequestErrorKind as Kind;
        let subject = node_subject(&self.cluster_id, service, node);
        let request = async_nats::Request::new()
            .payload(payload)
            .timeout(Some(timeout));
        // The client's own timeout covers the wait for the answer; this one also the wait for
        // room in its buffer while NATS is down.
        let asked = tokio::time::timeout(timeout, self.client.send_request(subject, request));
        match asked.await {
            Ok(Ok(message)) => Ok(message.payload),
            Ok(Err(e)) => Err(match e.kind() {
                Kind::NoResponders => AskError::NoNode(node.to_string()),
                Kind::TimedOut => AskError::TimedOut {
                    node: node.to_string(),
                    timeout,
                },
                _ => AskError::Failed {
                    node: node.to_string(),
                    reason: e.to_string(),
                },
            }),
            Err(_) => Err(AskError::TimedOut {
                node: node.to_string(),
                timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_subject_is_one_token_per_part_whatever_the_node_id() {
        assert_eq!(
            node_subject("c1", "callbacks", "host.a-1"),
            "lambent.c1.node.callbacks.686f73742e612d31"
        );
    }
}
