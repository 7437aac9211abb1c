//! The store contract (`lambent_store::contract`) on SQLite: each test on a new database file in
//! a temporary directory of its own.

use lambent_store_sqlite::SqliteStore;
use std::sync::Arc;

async fn fresh() -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db.sqlite")).unwrap();
    (Arc::new(store), dir)
}

/// A database file the last version without rollups wrote `records` into, opened (upgraded).
async fn before_rollups(
    records: Vec<lambent_core::Activation>,
) -> (Arc<SqliteStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    lambent_store_sqlite::legacy::create_before_rollups(&path, &records).unwrap();
    (Arc::new(SqliteStore::open(&path).unwrap()), dir)
}

lambent_store::contract_tests!(fresh);
lambent_store::rollup_backfill_contract_tests!(before_rollups);
lambent_store::workflow_contract_tests!(fresh);
lambent_store::table_contract_tests!(fresh);
lambent_store::stream_mapping_contract_tests!(fresh);
