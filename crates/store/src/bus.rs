//! The bus: how the nodes of a cluster tell each other that something changed, so that their
//! in-memory views (deployed functions, routes, keys, mappings) follow the store and their
//! waiting workers (async dispatchers, schedulers, long polls) wake at once instead of at their
//! next poll. Signals are hints, delivered at most once and best effort: every view is also
//! re-read from the store periodically, so a lost signal delays a change, never loses it.
//! [`LocalBus`] serves the embedded single node (in-process); `lambent-bus-nats` a cluster.

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Signal {
    /// A function was deployed, deleted, or had a version or alias changed.
    Function { namespace: String, name: String },
    /// A route was added or removed.
    Routes,
    /// An API key or access key was added or removed.
    Keys,
    /// Asynchronous events became due (enqueued, retried, redriven).
    Events,
    /// A schedule was created, replaced or removed.
    Schedules,
    /// Messages were sent to a queue (long polls on it may return).
    Queue { namespace: String, name: String },
    /// Queues, topics or event-source mappings were created or removed.
    Mappings,
    /// A namespace was created, had its settings changed, or was deleted: each node applies
    /// its share of the machine (or removes its sandboxes).
    Namespace { name: String },
    /// Asks every node to write its pending activation records (`nonce` names the request).
    FlushRecords { nonce: String },
    /// A node's answer to [`Signal::FlushRecords`].
    RecordsFlushed { nonce: String },
}

/// A signal with the node that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub origin: String,
    pub signal: Signal,
}

/// Publishes signals to every node (this one included) and hands out subscriptions.
pub trait Bus: Send + Sync + 'static {
    /// Sends a signal to every node; never blocks, never fails loudly (signals are hints).
    fn publish(&self, signal: Signal);
    /// Every signal published after this call, from any node (this one's own included).
    fn subscribe(&self) -> broadcast::Receiver<Envelope>;
    /// The id this node signs its signals with.
    fn node_id(&self) -> &str;
}

/// The in-process bus of the embedded single node.
pub struct LocalBus {
    node_id: String,
    tx: broadcast::Sender<Envelope>,
}

/// Signals a subscriber may fall behind by before it misses some (then it resynchronises).
pub const BUS_BACKLOG: usize = 4096;

impl LocalBus {
    pub fn new(node_id: &str) -> LocalBus {
        LocalBus {
            node_id: node_id.to_string(),
            tx: broadcast::channel(BUS_BACKLOG).0,
        }
    }

    /// Hands a signal that arrived from elsewhere (another node, through a network bus) to
    /// this node's subscribers.
    pub fn deliver(&self, envelope: Envelope) {
        let _ = self.tx.send(envelope);
    }
}

impl Bus for LocalBus {
    fn publish(&self, signal: Signal) {
        self.deliver(Envelope {
            origin: self.node_id.clone(),
            signal,
        });
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_bus_delivers_to_every_subscriber_with_its_origin() {
        let bus = LocalBus::new("n1");
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        bus.publish(Signal::Routes);
        for rx in [&mut a, &mut b] {
            let got = rx.recv().await.unwrap();
            assert_eq!(got.origin, "n1");
            assert_eq!(got.signal, Signal::Routes);
        }
    }

    #[test]
    fn signals_have_a_stable_json_shape() {
        let s = Signal::Function {
            namespace: "default".into(),
            name: "f".into(),
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"kind": "function", "namespace": "default", "name": "f"})
        );
    }
}
