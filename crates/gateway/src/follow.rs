//! Keeping this node's in-memory views in line with the cluster: every signal another node
//! publishes on the bus (a function deployed, routes or keys changed, a request to flush
//! activation records) is applied here, and the whole view is re-read from the store every
//! [`RESYNC_EVERY`] in case a signal was lost (the bus is best effort). On the embedded single
//! node the bus is in-process and only carries this node's own signals, which are skipped.

use crate::App;
use lambent_store::bus::{Envelope, Signal};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How often a node re-reads functions and routes from the store regardless of signals.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// How long a cluster-wide flush of activation records waits for the other nodes.
pub const FLUSH_WAIT: Duration = Duration::from_millis(300);

/// Starts following the bus; the tasks end when the app is dropped.
pub fn follow(app: &Arc<App>) -> Vec<JoinHandle<()>> {
    let signals = app.bus.subscribe();
    let first = app.clone();
    vec![
        // Each namespace's share of the machine, from its stored settings.
        tokio::spawn(async move { first.apply_namespaces().await }),
        tokio::spawn(apply_signals(Arc::downgrade(app), signals)),
        tokio::spawn(resync_periodically(Arc::downgrade(app))),
    ]
}

async fn apply_signals(app: Weak<App>, mut signals: tokio::sync::broadcast::Receiver<Envelope>) {
    loop {
        let received = signals.recv().await;
        let Some(app) = app.upgrade() else { return };
        let envelope = match received {
            Ok(envelope) => envelope,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!("missed {n} cluster signals: re-reading everything");
                resync(&app).await;
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if envelope.origin == app.bus.node_id() {
            continue;
        }
        match envelope.signal {
            Signal::Function { namespace, name } => {
                if let Err(e) = app.registry.refresh(&namespace, &name).await {
                    tracing::warn!("could not refresh function '{name}' from the store: {e}");
                }
            }
            Signal::Routes => {
                if let Err(e) = app.routes.reload().await {
                    tracing::warn!("could not reload the routes from the store: {e}");
                }
            }
            Signal::Keys => {
                app.keys.forget();
                app.credentials.forget_all();
            }
            Signal::Namespace { name } => app.apply_namespace(&name).await,
            Signal::FlushRecords { nonce } => {
                // Answer from a task: a slow flush must not hold up other signals.
                let app = app.clone();
                tokio::spawn(async move {
                    app.recorder.flush().await;
                    app.bus.publish(Signal::RecordsFlushed { nonce });
                });
            }
            _ => {}
        }
    }
}

async fn resync_periodically(app: Weak<App>) {
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else { return };
        resync(&app).await;
    }
}

async fn resync(app: &App) {
    if let Err(e) = app.registry.refresh_all().await {
        tracing::warn!("could not re-read the functions from the store: {e}");
    }
    if let Err(e) = app.routes.reload().await {
        tracing::warn!("could not re-read the routes from the store: {e}");
    }
    app.keys.forget();
    app.apply_namespaces().await;
}

impl App {
    /// Makes every activation record finished so far readable from the store: this node's
    /// pending records are written, and the other live nodes are asked to write theirs (for
    /// up to [`FLUSH_WAIT`]), so a record of an invocation that ran elsewhere is found too.
    pub async fn flush_records(&self) {
        let peers = self.cluster.live_peers();
        if peers == 0 {
            self.recorder.flush().await;
            return;
        }
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let mut answers = self.bus.subscribe();
        self.bus.publish(Signal::FlushRecords {
            nonce: nonce.clone(),
        });
        self.recorder.flush().await;
        let wait_for_peers = async {
            let mut answered = 0;
            while answered < peers {
                match answers.recv().await {
                    Ok(Envelope {
                        signal: Signal::RecordsFlushed { nonce: n },
                        ..
                    }) if n == nonce => answered += 1,
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                }
            }
        };
        let _ = tokio::time::timeout(FLUSH_WAIT, wait_for_peers).await;
    }
}
