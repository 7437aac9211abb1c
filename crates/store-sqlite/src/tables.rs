//! [`TableStore`] on SQLite: table definitions, items under their encoded key (BLOB, compared
//! with `memcmp`), index entries and stream records. A write is one transaction on the single
//! writer connection, so its read-check-write is serialised against every other write.

use crate::{db_err, SqliteStore};
use async_trait::async_trait;
use lambent_store::tables::{
    range_sql, Abort, Change, Decide, Idempotent, ItemKey, RangeItem, RangeQuery, RequestToken,
    SqlParam, StoredTable, StreamBounds, StreamRecord, TableStore, Written, TABLE_GONE,
};
use lambent_store::StoreError;
use rusqlite::{params, OptionalExtension, Row, Transaction};
use std::sync::Arc;

/// The table tables (appended to the store's migrations).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE ddb_tables (
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    id               TEXT NOT NULL UNIQUE,
    definition       TEXT NOT NULL,
    stream_view_type TEXT,
    ttl_attribute    TEXT,
    created_ms       INTEGER NOT NULL,
    stream_seq       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE ddb_items (
    table_id       TEXT NOT NULL,
    key            BLOB NOT NULL,
    item           TEXT NOT NULL,
    size           INTEGER NOT NULL,
    partition_hash INTEGER NOT NULL,
    PRIMARY KEY (table_id, key)
) WITHOUT ROWID;
CREATE TABLE ddb_index_entries (
    table_id   TEXT NOT NULL,
    index_name TEXT NOT NULL,
    index_key  BLOB NOT NULL,
    key        BLOB NOT NULL,
    PRIMARY KEY (table_id, index_name, index_key, key)
) WITHOUT ROWID;
CREATE INDEX ddb_index_entries_by_item ON ddb_index_entries (table_id, key);
CREATE TABLE ddb_stream_records (
    table_id   TEXT NOT NULL,
    sequence   INTEGER NOT NULL,
    key        BLOB NOT NULL,
    old        TEXT,
    new        TEXT,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (table_id, sequence)
) WITHOUT ROWID;
"#;

/// Stream records of TTL deletions are marked, stream records are trimmed by time through an
/// index, transactions' request tokens are kept (appended to the store's migrations).
pub(crate) const MIGRATION_2: &str = r#"
ALTER TABLE ddb_stream_records ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
CREATE INDEX ddb_stream_records_by_time ON ddb_stream_records (created_ms);
CREATE TABLE ddb_request_tokens (
    namespace   TEXT NOT NULL,
    token       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (namespace, token)
) WITHOUT ROWID;
CREATE INDEX ddb_request_tokens_by_time ON ddb_request_tokens (created_ms);
"#;

const TABLE_COLUMNS: &str =
    "namespace, name, id, definition, stream_view_type, ttl_attribute, created_ms";

fn table_from_row(r: &Row<'_>) -> rusqlite::Result<StoredTable> {
    Ok(StoredTable {
        namespace: r.get(0)?,
        name: r.get(1)?,
        id: r.get(2)?,
        definition: r.get(3)?,
        stream_view_type: r.get(4)?,
        ttl_attribute: r.get(5)?,
        created_ms: r.get(6)?,
    })
}

fn to_sql(p: &SqlParam) -> &dyn rusqlite::ToSql {
    match p {
        SqlParam::Text(s) => s,
        SqlParam::Bytes(b) => b,
        SqlParam::Int(i) => i,
    }
}

fn get_item(conn: &rusqlite::Connection, k: &ItemKey) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT item FROM ddb_items WHERE table_id = ?1 AND key = ?2")
        .map_err(db_err)?
        .query_row(params![k.table_id, k.key], |r| r.get(0))
        .optional()
        .map_err(db_err)
}

/// The read-decide-write of [`TableStore::write_items`] in `tx` (committed by the caller).
fn write_in(
    tx: &Transaction<'_>,
    keys: &[ItemKey],
    now_ms: i64,
    decide: Decide,
) -> Result<Result<Written, Abort>, StoreError> {
    check_tables(tx, keys)?;
    let old = keys
        .iter()
        .map(|k| get_item(tx, k))
        .collect::<Result<Vec<_>, _>>()?;
    let changes = match decide(&old) {
        Ok(changes) => changes,
        Err(abort) => return Ok(Err(abort)),
    };
    let mut new = Vec::with_capacity(keys.len());
    for ((k, old), change) in keys.iter().zip(&old).zip(changes) {
        new.push(apply(tx, k, old, change, now_ms)?);
    }
    Ok(Ok(Written { old, new }))
}

/// Reads of at most this many keys may run on the caller's thread (see the crate's docs).
const QUICK_KEYS: usize = 4;

/// [`TableStore::get_items`] on a reader connection.
fn read_items(
    conn: &rusqlite::Connection,
    keys: &[ItemKey],
) -> Result<Vec<Option<String>>, StoreError> {
    if let [k] = keys {
        // One statement is one snapshot: the table's existence and the item at once.
        let (exists, item) = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM ddb_tables WHERE id = ?1), \
                 (SELECT item FROM ddb_items WHERE table_id = ?1 AND key = ?2)",
            )
            .and_then(|mut s| {
                s.query_row(params![k.table_id, k.key], |r| {
                    Ok((r.get::<_, bool>(0)?, r.get::<_, Option<String>>(1)?))
                })
            })
            .map_err(db_err)?;
        return if exists {
            Ok(vec![item])
        } else {
            Err(StoreError::Changed(TABLE_GONE.into()))
        };
    }
    let tx = conn.unchecked_transaction().map_err(db_err)?;
    check_tables(&tx, keys)?;
    let items = keys
        .iter()
        .map(|k| get_item(&tx, k))
        .collect::<Result<_, _>>()?;
    tx.finish().map_err(db_err)?;
    Ok(items)
}

/// [`TABLE_GONE`] unless every table of `keys` exists.
fn check_tables(conn: &rusqlite::Connection, keys: &[ItemKey]) -> Result<(), StoreError> {
    let mut ids: Vec<&str> = keys.iter().map(|k| k.table_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        let exists = conn
            .prepare_cached("SELECT 1 FROM ddb_tables WHERE id = ?1")
            .and_then(|mut s| s.exists(params![id]))
            .map_err(db_err)?;
        if !exists {
            return Err(StoreError::Changed(TABLE_GONE.into()));
        }
    }
    Ok(())
}

/// Replaces an item's index entries (`had`: it may have some) with `index_keys`.
fn index_entries(
    tx: &Transaction<'_>,
    k: &ItemKey,
    had: bool,
    index_keys: &[(String, Vec<u8>)],
) -> Result<(), StoreError> {
    if had {
        tx.prepare_cached("DELETE FROM ddb_index_entries WHERE table_id = ?1 AND key = ?2")
            .and_then(|mut s| s.execute(params![k.table_id, k.key]))
            .map_err(db_err)?;
    }
    for (index, index_key) in index_keys {
        tx.prepare_cached(
            "INSERT INTO ddb_index_entries (table_id, index_name, index_key, key) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut s| s.execute(params![k.table_id, index, index_key, k.key]))
        .map_err(db_err)?;
    }
    Ok(())
}

/// Applies one change of a write: the item, its index entries, its stream record.
fn apply(
    tx: &Transaction<'_>,
    k: &ItemKey,
    old: &Option<String>,
    change: Change,
    now_ms: i64,
) -> Result<Option<String>, StoreError> {
    let expired = matches!(change, Change::Expire);
    let new = match change {
        Change::Keep => return Ok(old.clone()),
        Change::Delete | Change::Expire | Change::Reindex(_) if old.is_none() => return Ok(None),
        Change::Reindex(index_keys) => {
            index_entries(tx, k, true, &index_keys)?;
            return Ok(old.clone());
        }
        Change::Delete | Change::Expire => {
            tx.prepare_cached("DELETE FROM ddb_items WHERE table_id = ?1 AND key = ?2")
                .and_then(|mut s| s.execute(params![k.table_id, k.key]))
                .map_err(db_err)?;
            None
        }
        Change::Put(item) => {
            tx.prepare_cached(
                "INSERT INTO ddb_items (table_id, key, item, size, partition_hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (table_id, key) DO UPDATE SET \
                 item = excluded.item, size = excluded.size, \
                 partition_hash = excluded.partition_hash",
            )
            .and_then(|mut s| {
                s.execute(params![
                    k.table_id,
                    k.key,
                    item.json,
                    item.size as i64,
                    i64::from(item.partition_hash)
                ])
            })
            .map_err(db_err)?;
            Some((item.json, item.index_keys))
        }
    };
    let new = match new {
        Some((json, index_keys)) => {
            index_entries(tx, k, old.is_some(), &index_keys)?;
            Some(json)
        }
        None => {
            index_entries(tx, k, old.is_some(), &[])?;
            None
        }
    };
    let seq: Option<i64> = tx
        .prepare_cached(
            "UPDATE ddb_tables SET stream_seq = stream_seq + 1 \
             WHERE id = ?1 AND stream_view_type IS NOT NULL RETURNING stream_seq",
        )
        .and_then(|mut s| s.query_row(params![k.table_id], |r| r.get(0)).optional())
        .map_err(db_err)?;
    if let Some(seq) = seq {
        tx.prepare_cached(
            "INSERT INTO ddb_stream_records \
             (table_id, sequence, key, old, new, created_ms, expired) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .and_then(|mut s| s.execute(params![k.table_id, seq, k.key, old, new, now_ms, expired]))
        .map_err(db_err)?;
    }
    Ok(new)
}

#[async_trait]
impl TableStore for SqliteStore {
    async fn create_table(&self, t: &StoredTable) -> Result<bool, StoreError> {
        let t = t.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    &format!(
                        "INSERT INTO ddb_tables ({TABLE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                         ON CONFLICT DO NOTHING"
                    ),
                    params![
                        t.namespace,
                        t.name,
                        t.id,
                        t.definition,
                        t.stream_view_type,
                        t.ttl_attribute,
                        t.created_ms
                    ],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn get_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        // One row by primary key, before every write of an item: on the caller's thread.
        self.quick_read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {TABLE_COLUMNS} FROM ddb_tables WHERE namespace = ?1 AND name = ?2"
            ))
            .and_then(|mut s| s.query_row(params![ns, name], table_from_row).optional())
            .map_err(db_err)
        })
        .await
    }

    async fn list_tables(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (ns, after) = (namespace.to_string(), after.unwrap_or("").to_string());
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name FROM ddb_tables WHERE namespace = ?1 AND name > ?2 \
                     ORDER BY name LIMIT ?3",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![ns, after, limit as i64], |r| r.get(0))
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn delete_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError> {
        let (ns, name) = (namespace.to_string(), name.to_string());
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let table = tx
                .query_row(
                    &format!(
                        "DELETE FROM ddb_tables WHERE namespace = ?1 AND name = ?2 \
                         RETURNING {TABLE_COLUMNS}"
                    ),
                    params![ns, name],
                    table_from_row,
                )
                .optional()
                .map_err(db_err)?;
            if let Some(t) = &table {
                for sql in [
                    "DELETE FROM ddb_items WHERE table_id = ?1",
                    "DELETE FROM ddb_index_entries WHERE table_id = ?1",
                    "DELETE FROM ddb_stream_records WHERE table_id = ?1",
                ] {
                    tx.execute(sql, params![t.id]).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)?;
            Ok(table)
        })
        .await
    }

    async fn table_stats(&self, table_id: &str) -> Result<(u64, u64), StoreError> {
        let id = table_id.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT count(*), coalesce(sum(size), 0) FROM ddb_items WHERE table_id = ?1",
                params![id],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(db_err)
        })
        .await
    }

    async fn update_table(&self, t: &StoredTable) -> Result<bool, StoreError> {
        let t = t.clone();
        self.write(move |conn| {
            let n = conn
                .execute(
                    "UPDATE ddb_tables SET definition = ?1, stream_view_type = ?2, \
                     ttl_attribute = ?3 WHERE id = ?4",
                    params![t.definition, t.stream_view_type, t.ttl_attribute, t.id],
                )
                .map_err(db_err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn ttl_tables(&self) -> Result<Vec<StoredTable>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {TABLE_COLUMNS} FROM ddb_tables WHERE ttl_attribute IS NOT NULL \
                     ORDER BY namespace, name"
                ))
                .map_err(db_err)?;
            let rows = stmt.query_map([], table_from_row).map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn get_items(&self, keys: &[ItemKey]) -> Result<Vec<Option<String>>, StoreError> {
        let keys: Arc<[ItemKey]> = keys.into();
        if keys.len() <= QUICK_KEYS {
            self.quick_read(move |conn| read_items(conn, &keys)).await
        } else {
            self.read(move |conn| read_items(conn, &keys)).await
        }
    }

    async fn range_items(&self, q: &RangeQuery) -> Result<Vec<RangeItem>, StoreError> {
        let (sql, params) = range_sql(q, false);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db_err)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params.iter().map(to_sql)), |r| {
                    Ok(RangeItem {
                        index_key: r.get(0)?,
                        key: r.get(1)?,
                        json: r.get(2)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn write_items(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
    ) -> Result<Result<Written, Abort>, StoreError> {
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            let written = write_in(&tx, &keys, now_ms, decide)?;
            if written.is_ok() {
                tx.commit().map_err(db_err)?;
            }
            Ok(written)
        })
        .await
    }

    async fn write_items_once(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
        token: &RequestToken,
    ) -> Result<Idempotent, StoreError> {
        let token = token.clone();
        // The single writer connection serialises this with every other write.
        self.write(move |conn| {
            let tx = conn.transaction().map_err(db_err)?;
            tx.prepare_cached("DELETE FROM ddb_request_tokens WHERE created_ms < ?1")
                .and_then(|mut s| s.execute(params![token.since_ms]))
                .map_err(db_err)?;
            let seen: Option<String> = tx
                .prepare_cached(
                    "SELECT fingerprint FROM ddb_request_tokens WHERE namespace = ?1 AND token = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![token.namespace, token.token], |r| r.get(0))
                        .optional()
                })
                .map_err(db_err)?;
            if let Some(fingerprint) = seen {
                tx.commit().map_err(db_err)?;
                return Ok(if fingerprint == token.fingerprint {
                    Idempotent::Repeated
                } else {
                    Idempotent::Mismatch
                });
            }
            let written = write_in(&tx, &keys, now_ms, decide)?;
            if written.is_ok() {
                tx.prepare_cached(
                    "INSERT INTO ddb_request_tokens (namespace, token, fingerprint, created_ms) \
                     VALUES (?1, ?2, ?3, ?4)",
                )
                .and_then(|mut s| {
                    s.execute(params![token.namespace, token.token, token.fingerprint, now_ms])
                })
                .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
            }
            Ok(Idempotent::Ran(written))
        })
        .await
    }

    async fn stream_records(
        &self,
        table_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let id = table_id.to_string();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT sequence, key, old, new, created_ms, expired FROM ddb_stream_records \
                     WHERE table_id = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
                )
                .map_err(db_err)?;
            let rows = stmt
                .query_map(params![id, after as i64, limit as i64], |r| {
                    Ok(StreamRecord {
                        sequence: r.get::<_, i64>(0)? as u64,
                        key: r.get(1)?,
                        old: r.get(2)?,
                        new: r.get(3)?,
                        created_ms: r.get(4)?,
                        expired: r.get(5)?,
                    })
                })
                .map_err(db_err)?;
            rows.collect::<Result<_, _>>().map_err(db_err)
        })
        .await
    }

    async fn stream_bounds(&self, table_id: &str) -> Result<StreamBounds, StoreError> {
        let id = table_id.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT (SELECT min(sequence) FROM ddb_stream_records WHERE table_id = ?1), \
                 coalesce((SELECT stream_seq FROM ddb_tables WHERE id = ?1), 0)",
                params![id],
                |r| {
                    Ok(StreamBounds {
                        oldest: r.get::<_, Option<i64>>(0)?.map(|s| s as u64),
                        latest: r.get::<_, i64>(1)? as u64,
                    })
                },
            )
            .map_err(db_err)
        })
        .await
    }

    async fn trim_stream_records(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.write(move |conn| {
            conn.execute(
                "DELETE FROM ddb_stream_records WHERE created_ms < ?1",
                params![before_ms],
            )
            .map(|n| n as u64)
            .map_err(db_err)
        })
        .await
    }
}
