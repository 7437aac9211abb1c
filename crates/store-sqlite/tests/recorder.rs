//! The activation-record writer (`lambent_store::recorder`) on a real SQLite store: what it is
//! sent is written, in transactions of at most `MAX_BATCH`, and a flush does not wait out the
//! batch window.

use lambent_core::ActivationStatus;
use lambent_store::contract::activation;
use lambent_store::recorder::{Recorder, BATCH_WINDOW, MAX_BATCH};
use lambent_store::{ActivationQuery, Store};
use lambent_store_sqlite::SqliteStore;
use std::sync::Arc;

fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    (Arc::new(store), dir)
}

async fn written(store: &SqliteStore) -> usize {
    let q = ActivationQuery {
        namespace: "default".into(),
        limit: 10_000,
        ..Default::default()
    };
    store.query_activations(&q).await.unwrap().len()
}

#[tokio::test]
async fn every_record_sent_before_a_flush_is_written_whatever_the_batches() {
    let (store, _dir) = store();
    let recorder = Recorder::start(store.clone());
    let n = 2 * MAX_BATCH + 17;
    for i in 0..n {
        recorder.record(activation(
            &format!("a{i:05}"),
            1_000 + i as i64,
            ActivationStatus::Success,
        ));
    }
    recorder.flush().await;
    assert_eq!(written(&store).await, n);
    // And again: the writer goes back to waiting for the next record.
    recorder.record(activation("b", 5_000, ActivationStatus::Success));
    recorder.flush().await;
    assert_eq!(written(&store).await, n + 1);
}

/// Time stands still unless every task waits on a timer: a flush that waited out the window
/// would move the clock by `BATCH_WINDOW`.
#[tokio::test(start_paused = true)]
async fn a_flush_cuts_the_batch_window_short() {
    let (store, _dir) = store();
    let recorder = Recorder::start(store.clone());
    recorder.record(activation("a", 1_000, ActivationStatus::Success));
    tokio::task::yield_now().await;
    let asked = tokio::time::Instant::now();
    recorder.flush().await;
    assert!(
        asked.elapsed() < BATCH_WINDOW,
        "the flush waited {:?}",
        asked.elapsed()
    );
    assert_eq!(written(&store).await, 1);
}
