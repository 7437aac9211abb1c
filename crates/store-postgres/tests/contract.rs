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

lambent_store::contract_tests!(fresh);
lambent_store::workflow_contract_tests!(fresh);
lambent_store::table_contract_tests!(fresh);
lambent_store::stream_mapping_contract_tests!(fresh);
