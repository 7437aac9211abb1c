//! The activation-record writer (`lambent_store::recorder`) on a real SQLite store: a flush does
//! not wait out the batch window. (That it writes what it is sent is a store contract test, run
//! on both backends; this one needs the paused clock, which a PostgreSQL connection's I/O would
//! let jump ahead.)

use lambent_core::ActivationStatus;
use lambent_store::contract::activation;
use lambent_store::recorder::{Recorder, BATCH_WINDOW};
use lambent_store::Store;
use lambent_store_sqlite::SqliteStore;
use std::sync::Arc;

fn store() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    (Arc::new(store), dir)
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
    assert!(store
        .get_activation("default", "a")
        .await
        .unwrap()
        .is_some());
}
