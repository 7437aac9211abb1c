//! DynamoDB Streams: the `DynamoDBStreams_20120810.*` operations (ListStreams,
//! DescribeStream, GetShardIterator, GetRecords) over the stream records every table write
//! commits, the Streams record shape (shared with stream → function event sources), and the
//! 24-hour retention sweep.
//!
//! A stream has exactly **one shard**, open for the table's life: its sequence numbers are the
//! store's per-table commit order, so records are in order overall (and so per key). A stream's
//! label is the table's creation time in milliseconds; a table deleted and created again has
//! a new stream. Shard iterators are opaque strings naming the table (namespace, name, id), the
//! sequence number the next read starts after, and when the iterator was made (they expire
//! after 15 minutes, as DynamoDB's do).

use crate::service::{now_ms, Table, Tables};
use lambent_store::tables::{StreamRecord, TableStore};
use lambent_tables::value::item_size;
use lambent_tables::{Item, TableError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// How long stream records are kept (DynamoDB's 24 hours).
pub const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the retention sweep runs.
const TRIM_EVERY: Duration = Duration::from_secs(60);
/// How long a shard iterator stays valid (DynamoDB's 15 minutes).
const ITERATOR_TTL_MS: i64 = 15 * 60 * 1000;
/// The most records a GetRecords answers (DynamoDB's 1,000).
const MAX_RECORDS: usize = 1000;
/// The width of a sequence number on the wire (DynamoDB's are 21 to 40 digits).
const SEQUENCE_DIGITS: usize = 21;

/// A Streams error: a table error, or one of the two only Streams raise.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Table(#[from] TableError),
    /// The iterator points before the oldest record kept.
    #[error("{0}")]
    TrimmedDataAccess(String),
    #[error("{0}")]
    ExpiredIterator(String),
}

impl StreamError {
    /// The error type (`__type` after the `#`).
    pub fn error_type(&self) -> &'static str {
        match self {
            StreamError::Table(e) => e.error_type(),
            StreamError::TrimmedDataAccess(_) => "TrimmedDataAccessException",
            StreamError::ExpiredIterator(_) => "ExpiredIteratorException",
        }
    }
}

fn not_found(what: &str) -> StreamError {
    StreamError::Table(TableError::ResourceNotFound(format!(
        "Requested resource not found: {what}"
    )))
}

fn invalid(message: impl Into<String>) -> StreamError {
    StreamError::Table(TableError::validation(message))
}

/// A sequence number as the wire shows it: fixed-width digits, so they also sort as text.
pub fn sequence_text(sequence: u64) -> String {
    format!("{sequence:0SEQUENCE_DIGITS$}")
}

fn parse_sequence(text: &str) -> Result<u64, StreamError> {
    if text.is_empty() || text.len() > 40 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!("Invalid SequenceNumber: {text}")));
    }
    text.parse()
        .map_err(|_| invalid(format!("Invalid SequenceNumber: {text}")))
}

/// A stream's label: the table's creation time in milliseconds.
pub fn stream_label(table: &lambent_store::tables::StoredTable) -> String {
    table.created_ms.to_string()
}

/// The id of a stream's one shard.
pub(crate) fn shard_id(table: &lambent_store::tables::StoredTable) -> String {
    format!("shardId-{:020}-00000001", table.created_ms)
}

/// `(namespace, table name, label)` of a stream ARN
/// (`arn:aws:dynamodb:<region>:<namespace>:table/<name>/stream/<label>`).
pub fn parse_stream_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (arn_, _aws, service, _region, ns, rest) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn_ != "arn" || service != "dynamodb" {
        return None;
    }
    let (name, label) = rest.strip_prefix("table/")?.split_once("/stream/")?;
    (!name.is_empty() && !label.is_empty()).then_some((ns, name, label))
}

/// Which images a record carries, from the table's `StreamViewType`.
fn images(view: &str) -> (bool, bool) {
    match view {
        "NEW_IMAGE" => (true, false),
        "OLD_IMAGE" => (false, true),
        "NEW_AND_OLD_IMAGES" => (true, true),
        _ => (false, false),
    }
}

fn parse_item(json: &str) -> Result<Item, TableError> {
    serde_json::from_str(json).map_err(|e| TableError::Internal(format!("stored item: {e}")))
}

/// One stream record in the DynamoDB Streams shape: GetRecords' `Records[]` with
/// `event_source_arn` `None`, a Lambda event's with the stream's ARN (the event adds
/// `eventSourceARN` and spells `userIdentity`'s fields in lower case).
pub(crate) fn record_json(
    table: &Table,
    region: &str,
    record: &StreamRecord,
    event_source_arn: Option<&str>,
) -> Result<Value, TableError> {
    let view = table
        .stored
        .stream_view_type
        .as_deref()
        .unwrap_or("KEYS_ONLY");
    let old = record.old.as_deref().map(parse_item).transpose()?;
    let new = record.new.as_deref().map(parse_item).transpose()?;
    let event_name = match (&old, &new) {
        (None, _) => "INSERT",
        (Some(_), None) => "REMOVE",
        (Some(_), Some(_)) => "MODIFY",
    };
    let keys = table
        .schema
        .key
        .project_key(new.as_ref().or(old.as_ref()).unwrap_or(&Item::new()));
    let (with_new, with_old) = images(view);
    let mut size = item_size(&keys);
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": record.created_ms.div_euclid(1000),
        "Keys": keys,
        "SequenceNumber": sequence_text(record.sequence),
        "StreamViewType": view,
    });
    if let (true, Some(new)) = (with_new, &new) {
        size += item_size(new);
        dynamodb["NewImage"] = serde_json::to_value(new).unwrap_or(Value::Null);
    }
    if let (true, Some(old)) = (with_old, &old) {
        size += item_size(old);
        dynamodb["OldImage"] = serde_json::to_value(old).unwrap_or(Value::Null);
    }
    dynamodb["SizeBytes"] = json!(size);
    let mut out = json!({
        "eventID": format!("{}-{}", table.stored.id, sequence_text(record.sequence)),
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
    });
    // What DynamoDB's TTL deletions carry.
    const TTL_DELETER: (&str, &str) = ("Service", "dynamodb.amazonaws.com");
    match event_source_arn {
        None => {
            if record.expired {
                out["userIdentity"] = json!({"Type": TTL_DELETER.0, "PrincipalId": TTL_DELETER.1});
            }
        }
        Some(arn) => {
            out["eventSourceARN"] = arn.into();
            if record.expired {
                out["userIdentity"] = json!({"type": TTL_DELETER.0, "principalId": TTL_DELETER.1});
            }
        }
    }
    Ok(out)
}

/// Where a shard iterator reads: after `after`, in the table `ns`/`name` with id `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardIterator {
    ns: String,
    name: String,
    id: String,
    after: u64,
    made_ms: i64,
}

impl ShardIterator {
    fn encode(&self) -> String {
        let text = format!(
            "{}\n{}\n{}\n{}\n{}",
            self.ns, self.name, self.id, self.after, self.made_ms
        );
        hex::encode(text)
    }

    fn decode(text: &str) -> Option<ShardIterator> {
        if text.len() > 8192 {
            return None;
        }
        let text = String::from_utf8(hex::decode(text).ok()?).ok()?;
        let mut parts = text.split('\n');
        let it = ShardIterator {
            ns: parts.next()?.to_string(),
            name: parts.next()?.to_string(),
            id: parts.next()?.to_string(),
            after: parts.next()?.parse().ok()?,
            made_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(it)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListStreamsInput {
    pub table_name: Option<String>,
    pub limit: Option<usize>,
    pub exclusive_start_stream_arn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeStreamInput {
    pub stream_arn: String,
    pub limit: Option<usize>,
    pub exclusive_start_shard_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetShardIteratorInput {
    pub stream_arn: String,
    pub shard_id: String,
    pub shard_iterator_type: String,
    pub sequence_number: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetRecordsInput {
    pub shard_iterator: String,
    pub limit: Option<usize>,
}

impl Tables {
    /// The table of a stream ARN the namespace `ns` may read, with a stream of that label.
    pub(crate) async fn stream_table(&self, ns: &str, arn: &str) -> Result<Table, StreamError> {
        let (arn_ns, name, label) =
            parse_stream_arn(arn).ok_or_else(|| invalid(format!("Invalid StreamArn: {arn}")))?;
        if arn_ns != ns {
            return Err(not_found(arn));
        }
        let table = self.table(ns, name).await.map_err(|e| match e {
            TableError::ResourceNotFound(_) => not_found(arn),
            e => StreamError::Table(e),
        })?;
        if table.stored.stream_view_type.is_none() || stream_label(&table.stored) != label {
            return Err(not_found(arn));
        }
        Ok(table)
    }

    pub(crate) fn stream_arn(&self, table: &Table) -> String {
        format!(
            "{}/stream/{}",
            self.arn(&table.stored.namespace, &table.stored.name),
            stream_label(&table.stored)
        )
    }

    pub async fn list_streams(
        &self,
        ns: &str,
        input: ListStreamsInput,
    ) -> Result<Value, StreamError> {
        let limit = input.limit.unwrap_or(100);
        if !(1..=100).contains(&limit) {
            return Err(invalid(
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: \
                 Member must have value between 1 and 100",
            ));
        }
        let mut after = match &input.exclusive_start_stream_arn {
            Some(arn) => Some(
                parse_stream_arn(arn)
                    .ok_or_else(|| invalid(format!("Invalid ExclusiveStartStreamArn: {arn}")))?
                    .1
                    .to_string(),
            ),
            None => None,
        };
        let mut streams = Vec::new();
        let mut more = false;
        'pages: loop {
            let names = match &input.table_name {
                Some(name) if after.is_none() => vec![name.clone()],
                Some(_) => Vec::new(),
                None => self
                    .store()
                    .list_tables(ns, after.as_deref(), 100)
                    .await
                    .map_err(|e| TableError::Internal(e.to_string()))?,
            };
            let Some(last) = names.last().cloned() else {
                break;
            };
            for name in names {
                let table = match self.table(ns, &name).await {
                    Ok(t) => t,
                    Err(TableError::ResourceNotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                if table.stored.stream_view_type.is_none() {
                    continue;
                }
                if streams.len() == limit {
                    more = true;
                    break 'pages;
                }
                streams.push(json!({
                    "StreamArn": self.stream_arn(&table),
                    "TableName": table.stored.name,
                    "StreamLabel": stream_label(&table.stored),
                }));
            }
            if input.table_name.is_some() {
                break;
            }
            after = Some(last);
        }
        let mut out = json!({ "Streams": streams });
        if more {
            if let Some(last) = streams.last() {
                out["LastEvaluatedStreamArn"] = last["StreamArn"].clone();
            }
        }
        Ok(out)
    }

    pub async fn describe_stream(
        &self,
        ns: &str,
        input: DescribeStreamInput,
    ) -> Result<Value, StreamError> {
        let table = self.stream_table(ns, &input.stream_arn).await?;
        let bounds = self
            .store()
            .stream_bounds(&table.stored.id)
            .await
            .map_err(|e| TableError::Internal(e.to_string()))?;
        let shard = shard_id(&table.stored);
        let shards = if input.exclusive_start_shard_id.as_deref() == Some(shard.as_str()) {
            vec![]
        } else {
            let start = bounds.oldest.unwrap_or(bounds.latest + 1);
            vec![json!({
                "ShardId": shard,
                "SequenceNumberRange": {"StartingSequenceNumber": sequence_text(start)},
            })]
        };
        Ok(json!({"StreamDescription": {
            "StreamArn": self.stream_arn(&table),
            "StreamLabel": stream_label(&table.stored),
            "StreamStatus": "ENABLED",
            "StreamViewType": table.stored.stream_view_type,
            "CreationRequestDateTime": table.stored.created_ms as f64 / 1000.0,
            "TableName": table.stored.name,
            "KeySchema": table.schema.definition.key_schema,
            "Shards": shards,
        }}))
    }

    pub async fn get_shard_iterator(
        &self,
        ns: &str,
        input: GetShardIteratorInput,
    ) -> Result<Value, StreamError> {
        let table = self.stream_table(ns, &input.stream_arn).await?;
        if input.shard_id != shard_id(&table.stored) {
            return Err(not_found(&format!("shard {}", input.shard_id)));
        }
        let bounds = self
            .store()
            .stream_bounds(&table.stored.id)
            .await
            .map_err(|e| TableError::Internal(e.to_string()))?;
        let sequence = || -> Result<u64, StreamError> {
            let text = input.sequence_number.as_deref().ok_or_else(|| {
                invalid(format!(
                    "SequenceNumber is required for ShardIteratorType {}",
                    input.shard_iterator_type
                ))
            })?;
            let n = parse_sequence(text)?;
            if n == 0 || n > bounds.latest {
                return Err(invalid(format!(
                    "Invalid SequenceNumber {text}: it is beyond the shard's last record"
                )));
            }
            if bounds.oldest.is_none_or(|oldest| n < oldest) {
                return Err(StreamError::TrimmedDataAccess(format!(
                    "The record with SequenceNumber {text} is beyond the retention period"
                )));
            }
            Ok(n)
        };
        let after = match input.shard_iterator_type.as_str() {
            "TRIM_HORIZON" => bounds.oldest.map_or(bounds.latest, |o| o - 1),
            "LATEST" => bounds.latest,
            "AT_SEQUENCE_NUMBER" => sequence()? - 1,
            "AFTER_SEQUENCE_NUMBER" => sequence()?,
            other => {
                return Err(invalid(format!(
                    "1 validation error detected: Value '{other}' at 'shardIteratorType' failed \
                     to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, \
                     AT_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST]"
                )))
            }
        };
        let it = ShardIterator {
            ns: ns.to_string(),
            name: table.stored.name.clone(),
            id: table.stored.id.clone(),
            after,
            made_ms: now_ms(),
        };
        Ok(json!({ "ShardIterator": it.encode() }))
    }

    pub async fn get_records(
        &self,
        ns: &str,
        input: GetRecordsInput,
    ) -> Result<Value, StreamError> {
        let limit = input.limit.unwrap_or(MAX_RECORDS);
        if !(1..=MAX_RECORDS).contains(&limit) {
            return Err(invalid(
                "1 validation error detected: Value at 'limit' failed to satisfy constraint: \
                 Member must have value between 1 and 1000",
            ));
        }
        let it = ShardIterator::decode(&input.shard_iterator)
            .filter(|it| it.ns == ns)
            .ok_or_else(|| invalid("Invalid ShardIterator"))?;
        if now_ms() - it.made_ms > ITERATOR_TTL_MS {
            return Err(StreamError::ExpiredIterator(
                "ShardIterator expired. The iterator was created more than 15 minutes ago".into(),
            ));
        }
        let table = match self.table(ns, &it.name).await {
            Ok(t) if t.stored.id == it.id => t,
            Ok(_) | Err(TableError::ResourceNotFound(_)) => {
                return Err(not_found(&format!("stream of table {}", it.name)))
            }
            Err(e) => return Err(e.into()),
        };
        let (records, bounds) = self.read_stream(&table.stored.id, it.after, limit).await?;
        // Records are numbered densely: a gap right after the iterator was trimmed away.
        let first_wanted = it.after + 1;
        let trimmed = match records.first() {
            Some(r) => r.sequence > first_wanted,
            // Nothing after it, yet later records exist: trimmed, unless one committed since.
            None => it.after < bounds.latest && bounds.oldest.is_none_or(|o| o > first_wanted),
        };
        if trimmed {
            return Err(StreamError::TrimmedDataAccess(
                "The operation attempted to read past the oldest stream record in a shard".into(),
            ));
        }
        let out: Vec<Value> = records
            .iter()
            .map(|r| record_json(&table, self.region(), r, None))
            .collect::<Result<_, _>>()?;
        let next = ShardIterator {
            after: records.last().map_or(it.after, |r| r.sequence),
            made_ms: now_ms(),
            ..it
        };
        Ok(json!({"Records": out, "NextShardIterator": next.encode()}))
    }

    /// Up to `limit` records after `after`, with the bounds read after them (so a record
    /// missing below the first one returned was trimmed, not yet to come).
    async fn read_stream(
        &self,
        table_id: &str,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StreamRecord>, lambent_store::tables::StreamBounds), StreamError> {
        let store = self.store();
        let records = store
            .stream_records(table_id, after, limit)
            .await
            .map_err(|e| TableError::Internal(e.to_string()))?;
        let bounds = store
            .stream_bounds(table_id)
            .await
            .map_err(|e| TableError::Internal(e.to_string()))?;
        Ok((records, bounds))
    }
}

/// Deletes stream records older than [`RETENTION`] every minute, forever, while `mine()` says
/// this node does the housekeeping (one node of a cluster; a delete by age is idempotent, so a
/// lease hand-over does no harm).
pub fn start_trimming(
    store: Arc<dyn TableStore>,
    mine: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if !mine() {
                tokio::time::sleep(TRIM_EVERY).await;
                continue;
            }
            let cutoff = now_ms() - RETENTION.as_millis() as i64;
            match store.trim_stream_records(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!("trimmed {n} stream records past retention"),
                Err(e) => tracing::warn!("trimming stream records: {e}"),
            }
            tokio::time::sleep(TRIM_EVERY).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_and_arns_round_trip() {
        let it = ShardIterator {
            ns: "default".into(),
            name: "orders".into(),
            id: "abc".into(),
            after: 41,
            made_ms: 1_700_000_000_000,
        };
        assert_eq!(ShardIterator::decode(&it.encode()), Some(it));
        assert_eq!(ShardIterator::decode("zz"), None);
        assert_eq!(ShardIterator::decode("616263"), None);
        assert_eq!(
            parse_stream_arn("arn:aws:dynamodb:us-east-1:default:table/orders/stream/1700"),
            Some(("default", "orders", "1700"))
        );
        assert_eq!(
            parse_stream_arn("arn:aws:dynamodb:us-east-1:default:table/orders"),
            None
        );
        assert_eq!(sequence_text(7), "000000000000000000007");
        assert_eq!(parse_sequence("000000000000000000007").unwrap(), 7);
        assert!(parse_sequence("7a").is_err());
    }

    fn table(view: &str) -> Table {
        let definition: crate::definition::Definition = serde_json::from_value(json!({
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        }))
        .unwrap();
        Table {
            schema: Arc::new(definition.schema().unwrap()),
            stored: lambent_store::tables::StoredTable {
                namespace: "ns".into(),
                name: "t".into(),
                id: "tid".into(),
                definition: String::new(),
                stream_view_type: Some(view.into()),
                ttl_attribute: None,
                created_ms: 1,
            },
        }
    }

    fn record(old: Option<&str>, new: Option<&str>) -> StreamRecord {
        StreamRecord {
            sequence: 3,
            key: vec![],
            old: old.map(str::to_string),
            new: new.map(str::to_string),
            created_ms: 1_700_000_000_999,
            expired: false,
        }
    }

    #[test]
    fn records_carry_the_images_their_view_type_names() {
        let (a1, a2) = (
            r#"{"pk":{"S":"a"},"v":{"N":"1"}}"#,
            r#"{"pk":{"S":"a"},"v":{"N":"2"}}"#,
        );
        let modify = record(Some(a1), Some(a2));
        let images = |view: &str, r: &StreamRecord| {
            let v = record_json(&table(view), "r", r, None).unwrap();
            let d = &v["dynamodb"];
            (
                v["eventName"].as_str().unwrap().to_string(),
                d.get("OldImage").map(|i| i["v"]["N"].clone()),
                d.get("NewImage").map(|i| i["v"]["N"].clone()),
            )
        };
        assert_eq!(images("KEYS_ONLY", &modify), ("MODIFY".into(), None, None));
        assert_eq!(
            images("NEW_IMAGE", &modify),
            ("MODIFY".into(), None, Some(json!("2")))
        );
        assert_eq!(
            images("OLD_IMAGE", &modify),
            ("MODIFY".into(), Some(json!("1")), None)
        );
        assert_eq!(
            images("NEW_AND_OLD_IMAGES", &modify),
            ("MODIFY".into(), Some(json!("1")), Some(json!("2")))
        );
        assert_eq!(
            images("NEW_AND_OLD_IMAGES", &record(None, Some(a1))).0,
            "INSERT"
        );
        assert_eq!(
            images("NEW_AND_OLD_IMAGES", &record(Some(a1), None)).0,
            "REMOVE"
        );

        let v = record_json(
            &table("KEYS_ONLY"),
            "eu-west-1",
            &record(Some(a1), None),
            None,
        )
        .unwrap();
        assert_eq!(v["eventID"], "tid-000000000000000000003");
        assert_eq!(v["eventVersion"], "1.1");
        assert_eq!(v["eventSource"], "aws:dynamodb");
        assert_eq!(v["awsRegion"], "eu-west-1");
        assert_eq!(v["dynamodb"]["Keys"], json!({"pk": {"S": "a"}}));
        assert_eq!(v["dynamodb"]["SequenceNumber"], "000000000000000000003");
        assert_eq!(v["dynamodb"]["ApproximateCreationDateTime"], 1_700_000_000);
        // Keys only: "pk" (2) + "a" (1).
        assert_eq!(v["dynamodb"]["SizeBytes"], 3);
        assert!(v.get("userIdentity").is_none(), "a request's delete: {v}");
        let expired = StreamRecord {
            expired: true,
            ..record(Some(a1), None)
        };
        let v = record_json(&table("KEYS_ONLY"), "eu-west-1", &expired, None).unwrap();
        assert_eq!(
            v["userIdentity"],
            json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"})
        );
        // A Lambda event names its stream and spells the deleter in lower case.
        let v = record_json(&table("KEYS_ONLY"), "eu-west-1", &expired, Some("arn:s")).unwrap();
        assert_eq!(v["eventSourceARN"], "arn:s");
        assert_eq!(
            v["userIdentity"],
            json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"})
        );
    }
}
