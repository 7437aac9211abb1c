//! Databases as an older version left them, for upgrade tests (the store contract's
//! `rollups_backfill_records_written_before_them`): not used by the store itself.

use crate::{db_err, init_breakdown, rollups, MIGRATIONS};
use lambent_core::Activation;
use lambent_store::StoreError;
use rusqlite::{params, Connection};
use std::path::Path;

/// Creates the database file `path` at the schema of the last version without activation
/// rollups, holding `records` as that version wrote them (no rollups). Opening it with
/// [`crate::SqliteStore::open`] then upgrades it.
pub fn create_before_rollups(path: &Path, records: &[Activation]) -> Result<(), StoreError> {
    let before = MIGRATIONS
        .iter()
        .position(|m| *m == rollups::MIGRATION)
        .expect("the rollups are a migration");
    let conn = Connection::open(path).map_err(db_err)?;
    for sql in &MIGRATIONS[..before] {
        conn.execute_batch(sql).map_err(db_err)?;
    }
    conn.execute_batch(&format!("PRAGMA user_version = {before}"))
        .map_err(db_err)?;
    let mut insert = conn
        .prepare(
            "INSERT INTO activations (id, namespace, function, revision, trigger, start_ms, \
             end_ms, duration_us, billed_ms, memory_mb, max_memory_bytes, cold, init_us, status, \
             logs, init_birth, init_sandbox_us, init_runtime_us, init_import_us, node) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20)",
        )
        .map_err(db_err)?;
    for a in records {
        let (birth, sandbox_us, runtime_us, import_us) =
            init_breakdown::to_columns(a.init.as_ref());
        insert
            .execute(params![
                a.id,
                a.namespace,
                a.function,
                a.revision,
                a.trigger,
                a.start_ms,
                a.end_ms,
                a.duration_us,
                a.billed_ms,
                a.memory_mb,
                a.max_memory_bytes,
                a.cold,
                a.init_us,
                a.status.as_str(),
                a.logs,
                birth,
                sandbox_us,
                runtime_us,
                import_us,
                a.node,
            ])
            .map_err(db_err)?;
    }
    Ok(())
}
