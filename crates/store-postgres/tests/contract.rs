//! The store contract (`lambent_store::contract`) on PostgreSQL: each test on a fresh database of
//! the test binary's private server (`lambent_testkit::postgres`).

use lambent_store_postgres::PgStore;
use lambent_testkit::postgres::PgServer;
use std::sync::Arc;

async fn fresh() -> Arc<PgStore> {
    let url = tokio::task::spawn_blocking(|| PgServer::shared().fresh_database())
        .await
        .unwrap();
    Arc::new(PgStore::connect(&url).await.unwrap())
}

/// A database the last version without rollups wrote `records` into, connected (upgraded).
async fn before_rollups(records: Vec<lambent_core::Activation>) -> Arc<PgStore> {
    let url = tokio::task::spawn_blocking(|| PgServer::shared().fresh_database())
        .await
        .unwrap();
    lambent_store_postgres::legacy::create_before_rollups(&url, &records)
        .await
        .unwrap();
    Arc::new(PgStore::connect(&url).await.unwrap())
}

lambent_store::contract_tests!(fresh);
lambent_store::rollup_backfill_contract_tests!(before_rollups);
lambent_store::workflow_contract_tests!(fresh);
lambent_store::table_contract_tests!(fresh);
lambent_store::stream_mapping_contract_tests!(fresh);
