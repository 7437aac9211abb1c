//! [`NatsBus`]: the cluster bus over core NATS. Each node publishes its signals as JSON
//! [`Envelope`]s on `lambent.<cluster_id>.signals` and hands every envelope it receives to its
//! local subscribers through an in-process broadcast (the `LocalBus` shape). A node's own signals
//! are delivered locally at once (so they arrive even while NATS is down) and skipped when they
//! come back from the server: each published message carries a `Lambent-Instance` header unique
//! to this `NatsBus`, so every subscriber sees each envelope exactly once.
//!
//! Signals are hints (see `lambent_store::bus`): publishing never blocks and never fails loudly.
//! While NATS is down they queue in a bounded outbox (then are dropped), and the client reconnects
//! forever on its own; the subscription is resumed by the client after a reconnect.

use crate::{server_address, valid_cluster_id, NatsError};
use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, HeaderMap};
use futures_util::StreamExt;
use lambent_store::bus::{Bus, Envelope, Signal, BUS_BACKLOG};
use lambent_store::StoreError;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Header naming the `NatsBus` instance that published a message.
const INSTANCE_HEADER: &str = "Lambent-Instance";
/// How long connecting at start may take before the node gives up with `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The subject a cluster's signals travel on.
pub fn signals_subject(cluster_id: &str) -> String {
    format!("lambent.{cluster_id}.signals")
}

/// The cluster bus of one node (see the module docs).
pub struct NatsBus {
    pub(crate) node_id: String,
    pub(crate) cluster_id: String,
    pub(crate) address: String,
    pub(crate) client: Client,
    local: broadcast::Sender<Envelope>,
    outbox: mpsc::Sender<Envelope>,
    tasks: Vec<JoinHandle<()>>,
}

impl NatsBus {
    /// Connects to NATS at `url` (fails with `StoreError::Unavailable` within ~5 s if it cannot)
    /// and subscribes to the cluster's signals before returning.
    pub async fn connect(
        url: &str,
        node_id: &str,
        cluster_id: &str,
    ) -> Result<NatsBus, StoreError> {
        if !valid_cluster_id(cluster_id) {
            return Err(NatsError::Config(format!(
                "cluster id '{cluster_id}' must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'"
            ))
            .into());
        }
        let address = server_address(url);
        let client = connect_client(url, &format!("lambent-{node_id}")).await?;
        let subject = signals_subject(cluster_id);
        let unreachable = |reason: String| NatsError::Unreachable {
            address: address.clone(),
            reason,
        };
        let mut subscription =
            tokio::time::timeout(CONNECT_TIMEOUT, client.subscribe(subject.clone()))
                .await
                .map_err(|_| unreachable("subscribing timed out".into()))?
                .map_err(|e| unreachable(format!("subscribing failed: {e}")))?;
        // Make sure the server knows the subscription before anyone publishes.
        tokio::time::timeout(CONNECT_TIMEOUT, client.flush())
            .await
            .map_err(|_| unreachable("flushing the subscription timed out".into()))?
            .map_err(|e| unreachable(format!("flushing the subscription failed: {e}")))?;

        let instance = uuid::Uuid::new_v4().simple().to_string();
        let local = broadcast::channel(BUS_BACKLOG).0;
        let (outbox, mut pending) = mpsc::channel::<Envelope>(BUS_BACKLOG);

        let receiver = {
            let (local, instance) = (local.clone(), instance.clone());
            tokio::spawn(async move {
                while let Some(message) = subscription.next().await {
                    let own = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(INSTANCE_HEADER))
                        .is_some_and(|v| v.as_str() == instance);
                    if own {
                        continue;
                    }
                    match serde_json::from_slice::<Envelope>(&message.payload) {
                        Ok(envelope) => {
                            let _ = local.send(envelope);
                        }
                        Err(e) => tracing::warn!("ignoring a malformed cluster signal: {e}"),
                    }
                }
                tracing::warn!("the NATS signal subscription ended; no more cluster signals");
            })
        };
        let publisher = {
            let client = client.clone();
            tokio::spawn(async move {
                let mut headers = HeaderMap::new();
                headers.insert(INSTANCE_HEADER, instance.as_str());
                while let Some(envelope) = pending.recv().await {
                    let payload = match serde_json::to_vec(&envelope) {
                        Ok(p) => p,
                        Err(e) => {
                            tracing::warn!("cannot encode a cluster signal: {e}");
                            continue;
                        }
                    };
                    // Waits only while the client's own buffer is full (NATS down); the outbox
                    // in front of it then fills and `publish` drops signals instead of blocking.
                    if let Err(e) = client
                        .publish_with_headers(subject.clone(), headers.clone(), payload.into())
                        .await
                    {
                        tracing::debug!("cluster signal not sent: {e}");
                    }
                }
            })
        };
        Ok(NatsBus {
            node_id: node_id.to_string(),
            cluster_id: cluster_id.to_string(),
            address,
            client,
            local,
            outbox,
            tasks: vec![receiver, publisher],
        })
    }

    /// Whether the client is connected to NATS right now (for health reporting).
    pub fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The NATS client, shared with the blob store and the event streams.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `host:port` of the NATS server this node was configured with.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Bus for NatsBus {
    fn publish(&self, signal: Signal) {
        let envelope = Envelope {
            origin: self.node_id.clone(),
            signal,
        };
        let _ = self.local.send(envelope.clone());
        if let Err(e) = self.outbox.try_send(envelope) {
            tracing::debug!("cluster signal dropped (NATS outbox full or closed): {e}");
        }
    }

    fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.local.subscribe()
    }

    fn node_id(&self) -> &str {
        &self.node_id
    }
}

/// Connects a client that fails fast at start and reconnects forever afterwards.
pub(crate) async fn connect_client(url: &str, name: &str) -> Result<Client, StoreError> {
    let address = server_address(url);
    let options = ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(100u64.saturating_mul(1 << attempts.min(5)))
                .min(Duration::from_secs(2))
        })
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("connected to NATS"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("disconnected from NATS; reconnecting")
                }
                other => tracing::debug!("NATS: {other}"),
            }
        });
    match tokio::time::timeout(
        CONNECT_TIMEOUT + Duration::from_secs(1),
        options.connect(url),
    )
    .await
    {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(NatsError::Unreachable {
            address,
            reason: e.to_string(),
        }
        .into()),
        Err(_) => Err(NatsError::Unreachable {
            address,
            reason: format!("no connection within {CONNECT_TIMEOUT:?}"),
        }
        .into()),
    }
}
