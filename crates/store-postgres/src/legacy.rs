//! Databases as an older version left them, for upgrade tests (the store contract's
//! `rollups_backfill_records_written_before_them`): not used by the store itself.

use crate::schema::MIGRATIONS;
use lambent_core::Activation;
use lambent_store::StoreError;
use tokio_postgres::NoTls;

fn db(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// Migrates the empty database at `url` to the schema of the last version without activation
/// rollups and writes `records` as that version did (no rollups). [`crate::PgStore::connect`]
/// then upgrades it.
pub async fn create_before_rollups(url: &str, records: &[Activation]) -> Result<(), StoreError> {
    let before = MIGRATIONS
        .iter()
        .position(|(_, sql)| *sql == crate::rollups::MIGRATION)
        .expect("the rollups are a migration");
    let migrations = MIGRATIONS[..before]
        .iter()
        .map(|(name, sql)| refinery::Migration::unapplied(name, sql))
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await.map_err(db)?;
    let task = tokio::spawn(connection);
    refinery::Runner::new(&migrations)
        .run_async(&mut client)
        .await
        .map_err(db)?;
    for a in records {
        let init = a.init.as_ref();
        client
            .execute(
                "INSERT INTO activations (id, namespace, function, revision, trigger, start_ms, \
                 end_ms, duration_us, billed_ms, memory_mb, max_memory_bytes, cold, init_us, \
                 status, logs, init_birth, init_sandbox_us, init_runtime_us, init_import_us, node) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                 $17, $18, $19, $20)",
                &[
                    &a.id,
                    &a.namespace,
                    &a.function,
                    &(a.revision as i64),
                    &a.trigger,
                    &a.start_ms,
                    &a.end_ms,
                    &(a.duration_us as i64),
                    &(a.billed_ms as i64),
                    &i64::from(a.memory_mb),
                    &a.max_memory_bytes.map(|b| b as i64),
                    &a.cold,
                    &a.init_us.map(|u| u as i64),
                    &a.status.as_str(),
                    &a.logs,
                    &init.map(|i| i.birth.as_str()),
                    &init.map(|i| i.sandbox_us as i64),
                    &init.map(|i| i.runtime_us as i64),
                    &init.and_then(|i| i.import_us).map(|u| u as i64),
                    &a.node,
                ],
            )
            .await
            .map_err(db)?;
    }
    drop(client);
    let _ = task.await;
    Ok(())
}
