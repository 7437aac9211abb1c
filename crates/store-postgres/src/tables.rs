//! [`TableStore`] on PostgreSQL: table definitions, items under their encoded key (BYTEA,
//! compared bytewise), index entries and stream records. A write takes a transaction-scoped
//! advisory lock per key (in key order, so two writes never deadlock) before it reads, so its
//! read-check-write is serialised against every other node's writes of those keys, including
//! writes of items that do not exist yet; a table's stream counter is a row updated in the
//! write's transaction, so sequence numbers follow commit order.

use crate::PgStore;
use async_trait::async_trait;
use lambent_store::tables::{
    range_sql, Abort, Change, Decide, Idempotent, ItemKey, RangeItem, RangeQuery, RequestToken,
    SqlParam, StoredTable, StreamBounds, StreamRecord, TableStore, Written, TABLE_GONE,
};
use lambent_store::StoreError;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

/// The table tables (a refinery migration of [`crate::schema`]).
pub(crate) const MIGRATION: &str = r#"
CREATE TABLE ddb_tables (
    namespace        TEXT NOT NULL,
    name             TEXT NOT NULL,
    id               TEXT NOT NULL UNIQUE,
    definition       TEXT NOT NULL,
    stream_view_type TEXT,
    ttl_attribute    TEXT,
    created_ms       BIGINT NOT NULL,
    stream_seq       BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (namespace, name)
);
CREATE TABLE ddb_items (
    table_id       TEXT NOT NULL,
    key            BYTEA NOT NULL,
    item           TEXT NOT NULL,
    size           BIGINT NOT NULL,
    partition_hash BIGINT NOT NULL,
    PRIMARY KEY (table_id, key)
);
CREATE TABLE ddb_index_entries (
    table_id   TEXT NOT NULL,
    index_name TEXT NOT NULL,
    index_key  BYTEA NOT NULL,
    key        BYTEA NOT NULL,
    PRIMARY KEY (table_id, index_name, index_key, key)
);
CREATE INDEX ddb_index_entries_by_item ON ddb_index_entries (table_id, key);
CREATE TABLE ddb_stream_records (
    table_id   TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    key        BYTEA NOT NULL,
    old        TEXT,
    new        TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (table_id, sequence)
);
"#;

/// Stream records of TTL deletions are marked, stream records are trimmed by time through an
/// index, transactions' request tokens are kept (refinery migration `V7`).
pub(crate) const MIGRATION_2: &str = r#"
ALTER TABLE ddb_stream_records ADD COLUMN expired BOOLEAN NOT NULL DEFAULT false;
CREATE INDEX ddb_stream_records_by_time ON ddb_stream_records (created_ms);
CREATE TABLE ddb_request_tokens (
    namespace   TEXT NOT NULL,
    token       TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (namespace, token)
);
CREATE INDEX ddb_request_tokens_by_time ON ddb_request_tokens (created_ms);
"#;

const TABLE_COLUMNS: &str =
    "namespace, name, id, definition, stream_view_type, ttl_attribute, created_ms";

fn table_from_row(r: &Row) -> StoredTable {
    StoredTable {
        namespace: r.get(0),
        name: r.get(1),
        id: r.get(2),
        definition: r.get(3),
        stream_view_type: r.get(4),
        ttl_attribute: r.get(5),
        created_ms: r.get(6),
    }
}

fn to_sql(p: &SqlParam) -> &(dyn ToSql + Sync) {
    match p {
        SqlParam::Text(s) => s,
        SqlParam::Bytes(b) => b,
        SqlParam::Int(i) => i,
    }
}

const GET_ITEM: &str = "SELECT item FROM ddb_items WHERE table_id = $1 AND key = $2";

impl PgStore {
    /// Applies one change of a write: the item, its index entries, its stream record.
    /// Replaces an item's index entries (`had`: it may have some) with `index_keys`.
    async fn index_entries(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        k: &ItemKey,
        had: bool,
        index_keys: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        if had {
            tx.execute(
                "DELETE FROM ddb_index_entries WHERE table_id = $1 AND key = $2",
                &[&k.table_id, &k.key],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        for (index, index_key) in index_keys {
            tx.execute(
                "INSERT INTO ddb_index_entries (table_id, index_name, index_key, key) \
                 VALUES ($1, $2, $3, $4)",
                &[&k.table_id, index, index_key, &k.key],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The lock-read-decide-write of [`TableStore::write_items`] in `tx` (committed by the
    /// caller).
    async fn write_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        keys: &[ItemKey],
        now_ms: i64,
        decide: Decide,
    ) -> Result<Result<Written, Abort>, StoreError> {
        // Locks and changes go in key order: two writes sharing keys or tables never deadlock.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_by(|&a, &b| keys[a].cmp(&keys[b]));
        for &i in &order {
            let k = &keys[i];
            let lock = format!("ddb:{}:{}", k.table_id, hex::encode(&k.key));
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&lock],
            )
            .await
            .map_err(|e| self.err(e))?;
        }
        let mut old = Vec::with_capacity(keys.len());
        for k in keys {
            let exists = tx
                .query_opt(
                    "SELECT 1 FROM ddb_tables WHERE id = $1 FOR KEY SHARE",
                    &[&k.table_id],
                )
                .await
                .map_err(|e| self.err(e))?;
            if exists.is_none() {
                return Err(StoreError::Changed(TABLE_GONE.into()));
            }
            let row = tx
                .query_opt(GET_ITEM, &[&k.table_id, &k.key])
                .await
                .map_err(|e| self.err(e))?;
            old.push(row.map(|r| r.get::<_, String>(0)));
        }
        let mut changes: Vec<Option<Change>> = match decide(&old) {
            Ok(changes) => changes.into_iter().map(Some).collect(),
            Err(abort) => return Ok(Err(abort)),
        };
        let mut new = vec![None; keys.len()];
        for &i in &order {
            let change = changes
                .get_mut(i)
                .and_then(Option::take)
                .unwrap_or(Change::Keep);
            new[i] = self
                .apply_change(tx, &keys[i], &old[i], change, now_ms)
                .await?;
        }
        Ok(Ok(Written { old, new }))
    }

    async fn apply_change(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        k: &ItemKey,
        old: &Option<String>,
        change: Change,
        now_ms: i64,
    ) -> Result<Option<String>, StoreError> {
        let err = |e| self.err(e);
        let expired = matches!(change, Change::Expire);
        let new = match change {
            Change::Keep => return Ok(old.clone()),
            Change::Delete | Change::Expire | Change::Reindex(_) if old.is_none() => {
                return Ok(None)
            }
            Change::Reindex(index_keys) => {
                self.index_entries(tx, k, true, &index_keys).await?;
                return Ok(old.clone());
            }
            Change::Delete | Change::Expire => {
                tx.execute(
                    "DELETE FROM ddb_items WHERE table_id = $1 AND key = $2",
                    &[&k.table_id, &k.key],
                )
                .await
                .map_err(err)?;
                None
            }
            Change::Put(item) => {
                tx.execute(
                    "INSERT INTO ddb_items (table_id, key, item, size, partition_hash) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (table_id, key) DO UPDATE SET \
                     item = excluded.item, size = excluded.size, \
                     partition_hash = excluded.partition_hash",
                    &[
                        &k.table_id,
                        &k.key,
                        &item.json,
                        &(item.size as i64),
                        &i64::from(item.partition_hash),
                    ],
                )
                .await
                .map_err(err)?;
                Some((item.json, item.index_keys))
            }
        };
        let new = match new {
            None => {
                self.index_entries(tx, k, old.is_some(), &[]).await?;
                None
            }
            Some((json, index_keys)) => {
                self.index_entries(tx, k, old.is_some(), &index_keys)
                    .await?;
                Some(json)
            }
        };
        let seq = tx
            .query_opt(
                "UPDATE ddb_tables SET stream_seq = stream_seq + 1 \
                 WHERE id = $1 AND stream_view_type IS NOT NULL RETURNING stream_seq",
                &[&k.table_id],
            )
            .await
            .map_err(err)?;
        if let Some(seq) = seq {
            let seq: i64 = seq.get(0);
            tx.execute(
                "INSERT INTO ddb_stream_records \
                 (table_id, sequence, key, old, new, created_ms, expired) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&k.table_id, &seq, &k.key, old, &new, &now_ms, &expired],
            )
            .await
            .map_err(err)?;
        }
        Ok(new)
    }
}

#[async_trait]
impl TableStore for PgStore {
    async fn create_table(&self, t: &StoredTable) -> Result<bool, StoreError> {
        let n = self
            .execute(
                &format!(
                    "INSERT INTO ddb_tables ({TABLE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT DO NOTHING"
                ),
                &[
                    &t.namespace,
                    &t.name,
                    &t.id,
                    &t.definition,
                    &t.stream_view_type,
                    &t.ttl_attribute,
                    &t.created_ms,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn get_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError> {
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {TABLE_COLUMNS} FROM ddb_tables WHERE namespace = $1 AND name = $2"
                ),
                &[&namespace, &name],
            )
            .await?
            .map(|r| table_from_row(&r)))
    }

    async fn list_tables(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .query(
                "SELECT name FROM ddb_tables WHERE namespace = $1 AND name COLLATE \"C\" > $2 \
                 ORDER BY name COLLATE \"C\" LIMIT $3",
                &[&namespace, &after.unwrap_or(""), &(limit as i64)],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn delete_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let table = tx
            .query_opt(
                &format!(
                    "DELETE FROM ddb_tables WHERE namespace = $1 AND name = $2 \
                     RETURNING {TABLE_COLUMNS}"
                ),
                &[&namespace, &name],
            )
            .await
            .map_err(|e| self.err(e))?
            .map(|r| table_from_row(&r));
        if let Some(t) = &table {
            for sql in [
                "DELETE FROM ddb_items WHERE table_id = $1",
                "DELETE FROM ddb_index_entries WHERE table_id = $1",
                "DELETE FROM ddb_stream_records WHERE table_id = $1",
            ] {
                tx.execute(sql, &[&t.id]).await.map_err(|e| self.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(table)
    }

    async fn table_stats(&self, table_id: &str) -> Result<(u64, u64), StoreError> {
        let rows = self
            .query(
                "SELECT count(*)::BIGINT, coalesce(sum(size), 0)::BIGINT FROM ddb_items \
                 WHERE table_id = $1",
                &[&table_id],
            )
            .await?;
        let row = rows.first().expect("an aggregate returns a row");
        Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
    }

    async fn update_table(&self, t: &StoredTable) -> Result<bool, StoreError> {
        let n = self
            .execute(
                "UPDATE ddb_tables SET definition = $1, stream_view_type = $2, \
                 ttl_attribute = $3 WHERE id = $4",
                &[&t.definition, &t.stream_view_type, &t.ttl_attribute, &t.id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn ttl_tables(&self) -> Result<Vec<StoredTable>, StoreError> {
        let rows = self
            .query(
                &format!(
                    "SELECT {TABLE_COLUMNS} FROM ddb_tables WHERE ttl_attribute IS NOT NULL \
                     ORDER BY namespace, name"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(table_from_row).collect())
    }

    async fn get_items(&self, keys: &[ItemKey]) -> Result<Vec<Option<String>>, StoreError> {
        let gone = || StoreError::Changed(TABLE_GONE.into());
        if let [k] = keys {
            // One statement is one snapshot: the table's existence and the item at once.
            let row = self
                .query_opt(
                    "SELECT EXISTS (SELECT 1 FROM ddb_tables WHERE id = $1), \
                     (SELECT item FROM ddb_items WHERE table_id = $1 AND key = $2)",
                    &[&k.table_id, &k.key],
                )
                .await?
                .ok_or_else(|| StoreError::Database("no row from a SELECT".into()))?;
            return if row.get::<_, bool>(0) {
                Ok(vec![row.get(1)])
            } else {
                Err(gone())
            };
        }
        let mut conn = self.conn().await?;
        let tx = conn
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(|e| self.err(e))?;
        let mut ids: Vec<&str> = keys.iter().map(|k| k.table_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        let found = tx
            .query_one(
                "SELECT count(*) FROM ddb_tables WHERE id = ANY($1)",
                &[&ids],
            )
            .await
            .map_err(|e| self.err(e))?;
        if found.get::<_, i64>(0) != ids.len() as i64 {
            return Err(gone());
        }
        let stmt = tx.prepare_cached(GET_ITEM).await.map_err(|e| self.err(e))?;
        let mut items = Vec::with_capacity(keys.len());
        for k in keys {
            let row = tx
                .query_opt(&stmt, &[&k.table_id, &k.key])
                .await
                .map_err(|e| self.err(e))?;
            items.push(row.map(|r| r.get(0)));
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(items)
    }

    async fn range_items(&self, q: &RangeQuery) -> Result<Vec<RangeItem>, StoreError> {
        let (sql, params) = range_sql(q, true);
        let params: Vec<_> = params.iter().map(to_sql).collect();
        let rows = self.query(&sql, &params).await?;
        Ok(rows
            .iter()
            .map(|r| RangeItem {
                index_key: r.get(0),
                key: r.get(1),
                json: r.get(2),
            })
            .collect())
    }

    async fn write_items(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
    ) -> Result<Result<Written, Abort>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(|e| self.err(e))?;
        let written = self.write_in(&tx, &keys, now_ms, decide).await?;
        if written.is_ok() {
            tx.commit().await.map_err(|e| self.err(e))?;
        }
        Ok(written)
    }

    async fn write_items_once(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
        token: &RequestToken,
    ) -> Result<Idempotent, StoreError> {
        let err = |e| self.err(e);
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(err)?;
        // Requests with one token run one at a time (this lock before the keys': no deadlock).
        let lock = format!("ddbtoken:{}:{}", token.namespace, token.token);
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&lock],
        )
        .await
        .map_err(err)?;
        tx.execute(
            "DELETE FROM ddb_request_tokens WHERE namespace = $1 AND token = $2 \
             AND created_ms < $3",
            &[&token.namespace, &token.token, &token.since_ms],
        )
        .await
        .map_err(err)?;
        let seen = tx
            .query_opt(
                "SELECT fingerprint FROM ddb_request_tokens WHERE namespace = $1 AND token = $2",
                &[&token.namespace, &token.token],
            )
            .await
            .map_err(err)?;
        if let Some(row) = seen {
            tx.commit().await.map_err(err)?;
            return Ok(if row.get::<_, String>(0) == token.fingerprint {
                Idempotent::Repeated
            } else {
                Idempotent::Mismatch
            });
        }
        let written = self.write_in(&tx, &keys, now_ms, decide).await?;
        if written.is_ok() {
            tx.execute(
                "INSERT INTO ddb_request_tokens (namespace, token, fingerprint, created_ms) \
                 VALUES ($1, $2, $3, $4)",
                &[&token.namespace, &token.token, &token.fingerprint, &now_ms],
            )
            .await
            .map_err(err)?;
            // Others' old tokens go too (by the index on their time), skipping rows another
            // transaction holds, so two of these never wait on each other.
            tx.execute(
                "DELETE FROM ddb_request_tokens WHERE (namespace, token) IN \
                 (SELECT namespace, token FROM ddb_request_tokens WHERE created_ms < $1 \
                 LIMIT 100 FOR UPDATE SKIP LOCKED)",
                &[&token.since_ms],
            )
            .await
            .map_err(err)?;
            tx.commit().await.map_err(err)?;
        }
        Ok(Idempotent::Ran(written))
    }

    async fn stream_records(
        &self,
        table_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT sequence, key, old, new, created_ms, expired FROM ddb_stream_records \
                 WHERE table_id = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
                &[&table_id, &(after as i64), &(limit as i64)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| StreamRecord {
                sequence: r.get::<_, i64>(0) as u64,
                key: r.get(1),
                old: r.get(2),
                new: r.get(3),
                created_ms: r.get(4),
                expired: r.get(5),
            })
            .collect())
    }

    async fn stream_bounds(&self, table_id: &str) -> Result<StreamBounds, StoreError> {
        let rows = self
            .query(
                "SELECT (SELECT min(sequence) FROM ddb_stream_records WHERE table_id = $1)::BIGINT, \
                 coalesce((SELECT stream_seq FROM ddb_tables WHERE id = $1), 0)::BIGINT",
                &[&table_id],
            )
            .await?;
        let row = rows.first().expect("a SELECT of scalars returns a row");
        Ok(StreamBounds {
            oldest: row.get::<_, Option<i64>>(0).map(|s| s as u64),
            latest: row.get::<_, i64>(1) as u64,
        })
    }

    async fn trim_stream_records(&self, before_ms: i64) -> Result<u64, StoreError> {
        self.execute(
            "DELETE FROM ddb_stream_records WHERE created_ms < $1",
            &[&before_ms],
        )
        .await
    }
}
