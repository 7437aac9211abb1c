//! Where DynamoDB-compatible tables live, behind [`TableStore`]: table definitions per
//! namespace, items under their `memcmp`-ordered encoded key (`lambent-tables` makes the
//! encoding), the entries of secondary indexes, and stream records. The semantics (key schemas,
//! conditions, updates, what an index key is) live in `lambent-tables` and
//! `lambent-dynamodb-api`; this seam stores rows and moves them atomically:
//!
//! - a write ([`TableStore::write_items`]) reads the current items of its keys under the
//!   transaction (serialised per key against every other writer), hands them to the caller's
//!   [`Decide`] closure, and writes what it returns, with the items' index entries and (for a
//!   table with a stream) one stream record per changed item, numbered in commit order;
//! - reads are by key or by ranges of encoded keys (of the table or of one index), either way,
//!   with a limit and an exclusive start;
//! - a transaction with a `ClientRequestToken` ([`TableStore::write_items_once`]) records the
//!   token in its own transaction, so a retry on any node is not applied twice.

use crate::StoreError;
use async_trait::async_trait;
use std::ops::Bound;

/// A table as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTable {
    pub namespace: String,
    pub name: String,
    /// Unique per creation: items, index entries and stream records hang off it, so a table
    /// deleted and created again starts empty.
    pub id: String,
    /// Key schema, attribute definitions and secondary indexes (JSON owned by the API layer).
    pub definition: String,
    /// `KEYS_ONLY`, `NEW_IMAGE`, `OLD_IMAGE` or `NEW_AND_OLD_IMAGES`; `None`: no stream.
    pub stream_view_type: Option<String>,
    /// The attribute holding items' expiry time, when TTL is on.
    pub ttl_attribute: Option<String>,
    pub created_ms: i64,
}

/// An item as a write stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    /// The item (DynamoDB JSON).
    pub json: String,
    /// Its size as DynamoDB counts it.
    pub size: u64,
    /// A hash of its partition key (31 bits): parallel scans take `hash % total == segment`.
    pub partition_hash: u32,
    /// `(index name, encoded index key)` for each secondary index the item appears in.
    pub index_keys: Vec<(String, Vec<u8>)>,
}

/// What a write does to one of its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing (a condition check, a delete of a missing item).
    Keep,
    Put(NewItem),
    Delete,
    /// A delete by the table's time to live, not by a request: its stream record says so
    /// ([`StreamRecord::expired`]).
    Expire,
    /// The item stays as it is, its index entries become these (an index added or removed by
    /// UpdateTable, backfilled): no stream record. Nothing for a missing item.
    Reindex(Vec<(String, Vec<u8>)>),
}

/// One key of a write: a table (by id) and an encoded item key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemKey {
    pub table_id: String,
    pub key: Vec<u8>,
}

/// Why a [`Decide`] closure refused to write: the caller's error, handed back untouched.
#[derive(Debug)]
pub struct Abort(pub Box<dyn std::error::Error + Send + Sync>);

/// Given the current items of a write's keys (JSON, `None` when absent, in the keys' order),
/// what to do with each (same order), or why to write nothing.
pub type Decide = Box<dyn FnOnce(&[Option<String>]) -> Result<Vec<Change>, Abort> + Send>;

/// A committed write: per key (in order), the item before and after (JSON, `None` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    pub old: Vec<Option<String>>,
    pub new: Vec<Option<String>>,
}

/// Where a page of a range read continues: after (before, reading backwards) this position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCursor {
    /// The index key, for a read of an index.
    pub index_key: Option<Vec<u8>>,
    pub key: Vec<u8>,
}

/// A range read of a table's items, or of one index's entries (ordered by index key, then
/// item key).
#[derive(Debug, Clone)]
pub struct RangeQuery {
    pub table_id: String,
    pub index: Option<String>,
    /// Bounds on the item key (on the index key for an index).
    pub lower: Bound<Vec<u8>>,
    pub upper: Bound<Vec<u8>>,
    pub after: Option<ItemCursor>,
    /// Ascending key order; false: descending.
    pub forward: bool,
    /// Only items whose `partition_hash % .1 == .0` (a parallel scan's segment).
    pub segment: Option<(u32, u32)>,
    pub limit: usize,
}

/// One item of a range read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeItem {
    pub index_key: Option<Vec<u8>>,
    pub key: Vec<u8>,
    pub json: String,
}

/// One change of an item, as a table's stream records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    /// 1, 2, … per table, in commit order.
    pub sequence: u64,
    pub key: Vec<u8>,
    pub old: Option<String>,
    pub new: Option<String>,
    pub created_ms: i64,
    /// A deletion by the table's time to live ([`Change::Expire`]): DynamoDB's service did it.
    pub expired: bool,
}

/// Which of a table's stream records exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamBounds {
    /// The oldest record kept (`None`: none is, all were trimmed or none was written).
    pub oldest: Option<u64>,
    /// The sequence number of the latest record written (0: none ever was).
    pub latest: u64,
}

/// A transaction's `ClientRequestToken`: whose, and which request it named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestToken {
    pub namespace: String,
    pub token: String,
    /// A digest of the request without its token: the same again is a retry.
    pub fingerprint: String,
    /// Tokens recorded before this time are forgotten (DynamoDB remembers them 10 minutes).
    pub since_ms: i64,
}

/// What a write with a [`RequestToken`] did.
#[derive(Debug)]
pub enum Idempotent {
    /// The token was not in use: the write ran, and if it committed, so did the token.
    Ran(Result<Written, Abort>),
    /// The same request committed with this token: nothing was done again.
    Repeated,
    /// Another request committed with this token: nothing was done.
    Mismatch,
}

/// Durable tables, items, index entries and stream records.
#[async_trait]
pub trait TableStore: Send + Sync + 'static {
    /// Creates a table; false if the namespace has one of that name.
    async fn create_table(&self, table: &StoredTable) -> Result<bool, StoreError>;
    async fn get_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError>;
    /// Names of a namespace's tables after `after`, in name order, at most `limit`.
    async fn list_tables(
        &self,
        namespace: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError>;
    /// Deletes a table with its items, index entries and stream records; returns it.
    async fn delete_table(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<StoredTable>, StoreError>;
    /// `(item count, total item size)` of a table.
    async fn table_stats(&self, table_id: &str) -> Result<(u64, u64), StoreError>;
    /// Replaces the definition, stream view type and TTL attribute of the table with
    /// `table.id` (UpdateTable, UpdateTimeToLive); false if that table no longer exists.
    async fn update_table(&self, table: &StoredTable) -> Result<bool, StoreError>;
    /// Every table, of every namespace, with TTL on (for the expiry sweeper).
    async fn ttl_tables(&self) -> Result<Vec<StoredTable>, StoreError>;

    /// Reads items by key in one consistent snapshot (`None`: absent), in the keys' order.
    /// A table that no longer exists is [`StoreError::Changed`] ([`TABLE_GONE`]), so a
    /// caller may name tables by ids it remembered.
    async fn get_items(&self, keys: &[ItemKey]) -> Result<Vec<Option<String>>, StoreError>;
    /// A page of a table's items or of an index's entries.
    async fn range_items(&self, q: &RangeQuery) -> Result<Vec<RangeItem>, StoreError>;
    /// One atomic write: reads the items at `keys` (distinct) with every other writer of
    /// those keys held off, asks `decide`, writes its changes with their index entries and
    /// stream records (stamped `now_ms`). `Ok(Err(abort))`: `decide` refused, nothing written.
    /// A table that no longer exists is [`StoreError::Changed`].
    async fn write_items(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
    ) -> Result<Result<Written, Abort>, StoreError>;
    /// [`TableStore::write_items`] at most once per token: a token recorded (since
    /// `token.since_ms`) answers [`Idempotent::Repeated`] or [`Idempotent::Mismatch`] without
    /// writing; otherwise the write runs and, if it commits, records the token (stamped
    /// `now_ms`) in the same transaction. Racing requests with one token run one at a time.
    async fn write_items_once(
        &self,
        keys: Vec<ItemKey>,
        now_ms: i64,
        decide: Decide,
        token: &RequestToken,
    ) -> Result<Idempotent, StoreError>;
    /// A table's stream records with sequence numbers after `after`, in order, at most `limit`.
    async fn stream_records(
        &self,
        table_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, StoreError>;
    /// The oldest kept and the latest written sequence numbers of a table's stream.
    async fn stream_bounds(&self, table_id: &str) -> Result<StreamBounds, StoreError>;
    /// Deletes every table's stream records created before `before_ms` (retention); returns
    /// how many.
    async fn trim_stream_records(&self, before_ms: i64) -> Result<u64, StoreError>;
}

/// The message of [`StoreError::Changed`] for a write to a deleted table.
pub const TABLE_GONE: &str = "the table was deleted";

/// A parameter of a statement [`range_sql`] builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    Text(String),
    Bytes(Vec<u8>),
    Int(i64),
}

/// The `SELECT` of a [`RangeQuery`] over the backends' common schema (`ddb_items`,
/// `ddb_index_entries`), with its parameters; placeholders are `$n` when `dollar`, `?n`
/// otherwise. Rows are `(index_key or NULL, key, item)`.
pub fn range_sql(q: &RangeQuery, dollar: bool) -> (String, Vec<SqlParam>) {
    let mut params = vec![SqlParam::Text(q.table_id.clone())];
    let mut sql = String::new();
    let next = |params: &mut Vec<SqlParam>, p: SqlParam| {
        params.push(p);
        if dollar {
            format!("${}", params.len())
        } else {
            format!("?{}", params.len())
        }
    };
    let (order_cols, bound_col) = match &q.index {
        None => {
            sql.push_str(if dollar {
                "SELECT NULL::BYTEA, i.key, i.item FROM ddb_items i WHERE i.table_id = "
            } else {
                "SELECT NULL, i.key, i.item FROM ddb_items i WHERE i.table_id = "
            });
            sql.push_str(if dollar { "$1" } else { "?1" });
            ("i.key", "i.key")
        }
        Some(index) => {
            sql.push_str(
                "SELECT e.index_key, e.key, i.item FROM ddb_index_entries e JOIN ddb_items i \
                 ON i.table_id = e.table_id AND i.key = e.key WHERE e.table_id = ",
            );
            sql.push_str(if dollar { "$1" } else { "?1" });
            let p = next(&mut params, SqlParam::Text(index.clone()));
            sql.push_str(&format!(" AND e.index_name = {p}"));
            ("e.index_key, e.key", "e.index_key")
        }
    };
    for (bound, incl, excl) in [(&q.lower, ">=", ">"), (&q.upper, "<=", "<")] {
        let (op, value) = match bound {
            Bound::Included(v) => (incl, v),
            Bound::Excluded(v) => (excl, v),
            Bound::Unbounded => continue,
        };
        let p = next(&mut params, SqlParam::Bytes(value.clone()));
        sql.push_str(&format!(" AND {bound_col} {op} {p}"));
    }
    let op = if q.forward { ">" } else { "<" };
    if let Some(after) = &q.after {
        match (&q.index, &after.index_key) {
            (Some(_), Some(index_key)) => {
                let a = next(&mut params, SqlParam::Bytes(index_key.clone()));
                let b = next(&mut params, SqlParam::Bytes(after.key.clone()));
                sql.push_str(&format!(" AND (e.index_key, e.key) {op} ({a}, {b})"));
            }
            _ => {
                let a = next(&mut params, SqlParam::Bytes(after.key.clone()));
                sql.push_str(&format!(" AND i.key {op} {a}"));
            }
        }
    }
    if let Some((segment, total)) = q.segment {
        let t = next(&mut params, SqlParam::Int(i64::from(total.max(1))));
        let s = next(&mut params, SqlParam::Int(i64::from(segment)));
        sql.push_str(&format!(" AND i.partition_hash % {t} = {s}"));
    }
    let dir = if q.forward { "ASC" } else { "DESC" };
    let order = order_cols
        .split(", ")
        .map(|c| format!("{c} {dir}"))
        .collect::<Vec<_>>()
        .join(", ");
    let l = next(&mut params, SqlParam::Int(q.limit as i64));
    sql.push_str(&format!(" ORDER BY {order} LIMIT {l}"));
    (sql, params)
}
