//! Writes activation records off the invoke path: the invoker sends each record into a channel,
//! one task writes them in batches (up to [`MAX_BATCH`] records, or whatever arrived within
//! [`BATCH_WINDOW`]). Readers call [`Recorder::flush`] first, so a finished invocation is always
//! visible to the next query.

use crate::Store;
use lambent_core::Activation;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most records written in one transaction.
pub const MAX_BATCH: usize = 256;
/// How long the writer gathers records before writing a batch.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);

enum Message {
    Record(Box<Activation>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the batch writer. Cheap to clone; the writer stops when every handle is dropped.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Message>,
}

impl Recorder {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(write_batches(store, rx));
        Recorder { tx }
    }

    /// Queues one record for writing.
    pub fn record(&self, activation: Activation) {
        let _ = self.tx.send(Message::Record(Box::new(activation)));
    }

    /// Waits until every record sent before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<Activation> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(a) => batch.push(*a),
                Message::Flush(done) => {
                    waiting.push(done);
                    break;
                }
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            next = match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(m)) => Some(m),
                _ => None,
            };
        }
        if !batch.is_empty() {
            if let Err(e) = store.insert_activations(&batch).await {
                tracing::error!("could not write {} activation records: {e}", batch.len());
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}
