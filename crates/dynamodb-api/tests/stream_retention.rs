//! Trimmed stream data through the Streams operations, on a real SQLite store: an iterator
//! whose next record was trimmed, and a sequence number trimmed away, are
//! `TrimmedDataAccessException`s; TRIM_HORIZON then starts at the oldest record kept.

use lambent_dynamodb_api::api::dispatch_streams;
use lambent_dynamodb_api::streams::StreamError;
use lambent_dynamodb_api::Tables;
use lambent_store::tables::TableStore;
use lambent_store_sqlite::SqliteStore;
use serde_json::{json, Value};
use std::sync::Arc;

async fn call(tables: &Tables, op: &str, body: Value) -> Result<Value, StreamError> {
    dispatch_streams(tables, "ns", op, body.to_string().as_bytes()).await
}

#[tokio::test]
async fn trimmed_records_are_refused_and_the_horizon_moves() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TableStore> = Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
    let tables = Tables::new(store.clone(), "us-east-1".into());
    let created = tables
        .create_table(
            "ns",
            serde_json::from_value(json!({
                "TableName": "log",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let arn = created["TableDescription"]["LatestStreamArn"].clone();
    let put = |pk: &'static str| {
        let tables = &tables;
        async move {
            tables
                .put_item(
                    "ns",
                    serde_json::from_value(json!({"TableName": "log", "Item": {"pk": {"S": pk}}}))
                        .unwrap(),
                )
                .await
                .unwrap();
        }
    };
    put("a").await;
    put("b").await;
    let shard = call(&tables, "DescribeStream", json!({"StreamArn": arn}))
        .await
        .unwrap()["StreamDescription"]["Shards"][0]["ShardId"]
        .clone();
    let iterator = |kind: &str, seq: Option<&str>| {
        let mut body = json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": kind});
        if let Some(seq) = seq {
            body["SequenceNumber"] = json!(seq);
        }
        call(&tables, "GetShardIterator", body)
    };
    let horizon = iterator("TRIM_HORIZON", None).await.unwrap()["ShardIterator"].clone();
    let first = call(
        &tables,
        "GetRecords",
        json!({"ShardIterator": horizon, "Limit": 1}),
    )
    .await
    .unwrap();
    let seq1 = first["Records"][0]["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string();

    // Everything so far passes its retention; one more record is written after.
    let future = i64::MAX / 2;
    store.trim_stream_records(future).await.unwrap();
    put("c").await;

    let trimmed = call(&tables, "GetRecords", json!({"ShardIterator": horizon})).await;
    assert_eq!(
        trimmed.unwrap_err().error_type(),
        "TrimmedDataAccessException"
    );
    let at = iterator("AT_SEQUENCE_NUMBER", Some(&seq1)).await;
    assert_eq!(at.unwrap_err().error_type(), "TrimmedDataAccessException");
    // The horizon is now the record written after the trim.
    let horizon = iterator("TRIM_HORIZON", None).await.unwrap()["ShardIterator"].clone();
    let kept = call(&tables, "GetRecords", json!({"ShardIterator": horizon}))
        .await
        .unwrap();
    let keys: Vec<&Value> = kept["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["dynamodb"]["Keys"]["pk"]["S"])
        .collect();
    assert_eq!(keys, [&json!("c")]);
}
