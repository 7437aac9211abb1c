//! Writes activation records off the invoke path: the invoker sends each record into a channel,
//! one task writes them in batches (up to [`MAX_BATCH`] records, or whatever arrived within
//! [`BATCH_WINDOW`]). Readers call [`Recorder::flush`] first, so a finished invocation is always
//! visible to the next query. Records the store refuses (a cluster's PostgreSQL is down) are
//! kept in memory, up to [`MAX_PENDING`], and written when it is back.

use crate::Store;
use lambent_core::Activation;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};

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
    /// Wakes the writer from its batch window when a flush is asked.
    flush: Arc<Notify>,
}

impl Recorder {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>) -> Recorder {
        let (tx, rx) = mpsc::unbounded_channel();
        let flush = Arc::new(Notify::new());
        tokio::spawn(write_batches(store, rx, flush.clone()));
        Recorder { tx, flush }
    }

    /// Queues one record for writing.
    pub fn record(&self, activation: Activation) {
        let _ = self.tx.send(Message::Record(Box::new(activation)));
    }

    /// Waits until every record sent before this call is written.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            self.flush.notify_one();
            let _ = wait.await;
        }
    }
}

/// Records kept in memory while the store cannot take them (a cluster's PostgreSQL is down);
/// past this, the oldest are dropped (and counted in the log).
pub const MAX_PENDING: usize = 200_000;
/// How often a failed write is tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

async fn write_batches(
    store: Arc<dyn Store>,
    mut rx: mpsc::UnboundedReceiver<Message>,
    flush: Arc<Notify>,
) {
    let mut batch: Vec<Activation> = Vec::with_capacity(MAX_BATCH);
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    // Records the store refused, oldest first, written before anything newer.
    let mut pending: std::collections::VecDeque<Activation> = std::collections::VecDeque::new();
    loop {
        let first = if pending.is_empty() {
            rx.recv().await
        } else {
            match tokio::time::timeout(RETRY_EVERY, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    retry_pending(store.as_ref(), &mut pending).await;
                    continue;
                }
            }
        };
        let Some(first) = first else { return };
        // The window: asleep rather than waiting on the channel, so that the records sent
        // meanwhile do not wake this task one by one (a wake-up per record, often another
        // core's, cost more than writing the record). A flush cuts it short.
        if matches!(first, Message::Record(_)) {
            tokio::select! {
                _ = tokio::time::sleep(BATCH_WINDOW) => {}
                _ = flush.notified() => {}
            }
        }
        // What arrived in the window (not what arrives while it is written: a flush behind
        // a steady stream is answered), up to MAX_BATCH records per transaction.
        let mut left = rx.len();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Record(a) => batch.push(*a),
                Message::Flush(done) => waiting.push(done),
            }
            if batch.len() >= MAX_BATCH {
                write_batch(store.as_ref(), &mut batch, &mut pending).await;
            }
            if left > 0 {
                left -= 1;
                next = rx.try_recv().ok();
            }
        }
        write_batch(store.as_ref(), &mut batch, &mut pending).await;
        // A flush answers once what came before it was tried: it does not wait for a store
        // that is down (the caller's read then fails on its own).
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Writes `batch` (emptied): after the records kept from failed writes, or kept with them.
async fn write_batch(
    store: &dyn Store,
    batch: &mut Vec<Activation>,
    pending: &mut std::collections::VecDeque<Activation>,
) {
    if !pending.is_empty() {
        retry_pending(store, pending).await;
    }
    if batch.is_empty() {
        return;
    }
    if !pending.is_empty() {
        pending.extend(batch.drain(..));
    } else if let Err(e) = store.insert_activations(batch).await {
        tracing::error!(
            "could not write {} activation records (kept, retried every {RETRY_EVERY:?}): {e}",
            batch.len()
        );
        pending.extend(batch.drain(..));
    }
    batch.clear();
    let over = pending.len().saturating_sub(MAX_PENDING);
    if over > 0 {
        pending.drain(..over);
        tracing::error!("dropped the {over} oldest activation records: the store is unreachable and {MAX_PENDING} are waiting");
    }
}

/// Writes the records kept from failed writes, in batches, while the store takes them.
async fn retry_pending(store: &dyn Store, pending: &mut std::collections::VecDeque<Activation>) {
    while !pending.is_empty() {
        let n = pending.len().min(MAX_BATCH);
        let chunk: Vec<Activation> = pending.iter().take(n).cloned().collect();
        match store.insert_activations(&chunk).await {
            Ok(()) => {
                pending.drain(..n);
                if pending.is_empty() {
                    tracing::info!(
                        "the activation records kept while the store was unreachable are written"
                    );
                }
            }
            Err(_) => return,
        }
    }
}
