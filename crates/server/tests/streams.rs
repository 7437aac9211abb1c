//! Table streams that trigger functions, through a real node (on the embedded store, or with
//! `LAMBENT_TEST_CLUSTER=1` on PostgreSQL): every write reaches the function in order per key;
//! a failing batch is bisected down to the bad record, which goes to the on-failure queue
//! after its retries while the others succeed; partial batch responses; and the Lambda API's
//! event-source-mapping operations through boto3 and the AWS CLI.

mod common;

use common::{eventually, node, node_with, Node};
use lambent_testkit::python::venv as python_venv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

const ACCESS_KEY_ID: &str = "LKIATESTTESTTESTTEST";
const SECRET: &str = "test-secret-access-key-0123456789abcdefgh";

/// Prints every record it gets as one `REC <json>` line; raises when a new image has
/// `bad`, and with `report` in the event's first record reports the bad ones as batch item
/// failures instead.
const SINK: &str = r#"
import json
def handler(event, context):
    bad = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]
           if r["dynamodb"].get("NewImage", {}).get("bad")]
    report = any(r["dynamodb"].get("NewImage", {}).get("report") for r in event["Records"])
    if bad and not report:
        raise ValueError("bad records: " + ", ".join(bad))
    for r in event["Records"]:
        if r["dynamodb"]["SequenceNumber"] in bad:
            break
        print("REC " + json.dumps(r))
    return {"batchItemFailures": [{"itemIdentifier": s} for s in bad]}
"#;

async fn ok(node: &Node, method: Method, path: &str, body: Value) -> Value {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (s, _, v) = node.send(method.clone(), path, bytes).await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

/// A table keyed by `pk` (S) with a `NEW_AND_OLD_IMAGES` stream; returns the stream's ARN.
async fn table_with_stream(node: &Node, name: &str) -> String {
    let t = ok(
        node,
        Method::PUT,
        &format!("/v1/tables/{name}"),
        json!({
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }),
    )
    .await;
    t["TableDescription"]["LatestStreamArn"]
        .as_str()
        .unwrap_or_else(|| panic!("no stream: {t}"))
        .to_string()
}

async fn deploy_sink(node: &Node, name: &str) {
    let (s, v) = node
        .deploy(
            name,
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", SINK)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn item_op(node: &Node, table: &str, op: &str, body: Value) {
    ok(
        node,
        Method::POST,
        &format!("/v1/tables/{table}/{op}"),
        body,
    )
    .await;
}

/// The records a function processed (its `REC` lines), in the order it printed them.
async fn records_seen(node: &Node, function: &str) -> Vec<Value> {
    let v = ok(
        node,
        Method::GET,
        &format!("/v1/activations?function={function}&limit=1000"),
        Value::Null,
    )
    .await;
    let mut activations = v["activations"].as_array().unwrap().clone();
    activations.reverse();
    common::printed_after(&activations, "REC ")
}

fn sequence(r: &Value) -> String {
    r["dynamodb"]["SequenceNumber"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits until `function` has processed the records with these sequence numbers.
async fn await_sequences(node: &Node, function: &str, want: &BTreeSet<String>) -> Vec<Value> {
    eventually(60, "every record to be processed", || async {
        let seen = records_seen(node, function).await;
        let got: BTreeSet<String> = seen.iter().map(sequence).collect();
        want.is_subset(&got).then_some(seen)
    })
    .await
}

/// The sequence numbers of a table's stream records, read through DynamoDB Streams' shape
/// from the function's point of view: every record is numbered 1, 2, … per table.
fn sequences(from: u64, to: u64) -> BTreeSet<String> {
    (from..=to).map(|n| format!("{n:021}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_reaches_the_function_in_order_per_key() {
    let node = node().await;
    let arn = table_with_stream(&node, "orders").await;
    deploy_sink(&node, "sink").await;
    let m = ok(
        &node,
        Method::POST,
        "/v1/mappings",
        json!({"table": "orders", "function": "sink", "batch_size": 7, "batching_window_ms": 100}),
    )
    .await;
    assert_eq!(m["stream_arn"], arn);
    assert_eq!(m["starting_position"], "TRIM_HORIZON");
    // Four writers, one per key, each putting, updating and (sometimes) deleting in turn:
    // writes to different keys interleave in the stream.
    const ROUNDS: usize = 6;
    let writers = (0..4).map(|k| {
        let node = &node;
        async move {
            let pk = format!("key-{k}");
            let mut expected = Vec::new();
            for round in 0..ROUNDS {
                let key = json!({"pk": {"S": pk}});
                item_op(
                    node,
                    "orders",
                    "PutItem",
                    json!({"Item": {"pk": {"S": pk}, "v": {"N": round.to_string()}}}),
                )
                .await;
                expected.push(("put", round));
                item_op(
                    node,
                    "orders",
                    "UpdateItem",
                    json!({"Key": key, "UpdateExpression": "ADD v :one",
                           "ExpressionAttributeValues": {":one": {"N": "100"}}}),
                )
                .await;
                expected.push(("update", round));
                if round % 2 == 1 {
                    item_op(node, "orders", "DeleteItem", json!({"Key": key})).await;
                    expected.push(("delete", round));
                }
            }
            (pk, expected)
        }
    });
    let expected: BTreeMap<String, Vec<(&str, usize)>> = futures_util::future::join_all(writers)
        .await
        .into_iter()
        .collect();
    let total: usize = expected.values().map(Vec::len).sum();
    let seen = await_sequences(&node, "sink", &sequences(1, total as u64)).await;

    // Once or more each; in order per key (first deliveries), each as it was written.
    let mut first_seen = BTreeSet::new();
    let mut per_key: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &seen {
        if first_seen.insert(sequence(r)) {
            let pk = r["dynamodb"]["Keys"]["pk"]["S"]
                .as_str()
                .unwrap()
                .to_string();
            per_key.entry(pk).or_default().push(r.clone());
        }
    }
    assert_eq!(first_seen.len(), total);
    for (pk, writes) in &expected {
        let got = &per_key[pk];
        assert_eq!(got.len(), writes.len(), "{pk}");
        let mut last = String::new();
        let mut exists = false;
        for (r, (what, round)) in got.iter().zip(writes) {
            assert!(sequence(r) > last, "{pk}: out of order at {r}");
            last = sequence(r);
            let new_v = r["dynamodb"]["NewImage"]["v"]["N"].as_str();
            let (name, v) = match *what {
                "put" => (if exists { "MODIFY" } else { "INSERT" }, Some(*round)),
                "update" => ("MODIFY", Some(round + 100)),
                _ => ("REMOVE", None),
            };
            assert_eq!(r["eventName"], name, "{pk} {what} {round}: {r}");
            assert_eq!(new_v, v.map(|v| v.to_string()).as_deref(), "{r}");
            exists = *what != "delete";
        }
    }
    // The DynamoDB Streams Lambda event's record shape.
    let r = &seen[0];
    assert_eq!(r["eventSource"], "aws:dynamodb");
    assert_eq!(r["eventVersion"], "1.1");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["eventSourceARN"], arn);
    assert_eq!(r["dynamodb"]["StreamViewType"], "NEW_AND_OLD_IMAGES");
    assert!(r["dynamodb"]["SizeBytes"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["dynamodb"]["ApproximateCreationDateTime"].is_number(),
        "{r}"
    );
    assert!(
        r["eventID"].as_str().unwrap().ends_with(&sequence(r)),
        "{r}"
    );
    let modify = seen.iter().find(|r| r["eventName"] == "MODIFY").unwrap();
    assert!(modify["dynamodb"]["OldImage"]["v"].is_object(), "{modify}");
    // Batches of at most 7, and the whole mapping shown by `GET /v1/mappings`.
    let v = ok(
        &node,
        Method::GET,
        "/v1/activations?function=sink&limit=1000",
        Value::Null,
    )
    .await;
    for a in v["activations"].as_array().unwrap() {
        assert_eq!(a["trigger"], "dynamodb", "{a}");
        let n = a["logs"].as_str().unwrap().matches("REC ").count();
        assert!((1..=7).contains(&n), "a batch of {n}: {a}");
    }
    let listed = ok(&node, Method::GET, "/v1/mappings", Value::Null).await;
    assert_eq!(listed["stream_mappings"][0]["id"], m["id"], "{listed}");
}

/// The messages of `queue` (received, so they are hidden for a while).
async fn drain(node: &Node, queue: &str) -> Vec<Value> {
    let v = ok(
        node,
        Method::POST,
        &format!("/v1/queues/{queue}/receive"),
        json!({"max": 10}),
    )
    .await;
    v["messages"].as_array().unwrap().clone()
}

/// The on-failure records the first receive from `queue` that has any returns.
async fn failed_batches(node: &Node, queue: &str) -> Vec<Value> {
    let messages = eventually(60, "a failed batch's record", || async {
        let messages = drain(node, queue).await;
        (!messages.is_empty()).then_some(messages)
    })
    .await;
    messages
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().unwrap()).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_batch_is_bisected_to_the_bad_record_which_goes_to_the_failure_queue() {
    let node = node().await;
    let arn = table_with_stream(&node, "jobs").await;
    deploy_sink(&node, "worker").await;
    ok(&node, Method::POST, "/v1/queues", json!({"name": "failed"})).await;
    // Ten records, the seventh bad, all there before the mapping starts: one batch of ten.
    for i in 1..=10 {
        let mut item = json!({"pk": {"S": format!("job-{i}")}});
        if i == 7 {
            item["bad"] = json!({"BOOL": true});
        }
        item_op(&node, "jobs", "PutItem", json!({ "Item": item })).await;
    }
    let m = ok(
        &node,
        Method::POST,
        "/v1/mappings",
        json!({"table": "jobs", "function": "worker", "batch_size": 10,
               "bisect_on_error": true, "max_retries": 2, "on_failure": "failed"}),
    )
    .await;
    assert_eq!(m["on_failure"], "arn:aws:sqs:us-east-1:default:failed");
    let good: BTreeSet<String> = sequences(1, 10)
        .into_iter()
        .filter(|s| *s != format!("{:021}", 7))
        .collect();
    await_sequences(&node, "worker", &good).await;
    let records = failed_batches(&node, "failed").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let r = &records[0];
    let info = &r["DDBStreamBatchInfo"];
    assert_eq!(info["startSequenceNumber"], format!("{:021}", 7), "{r}");
    assert_eq!(info["endSequenceNumber"], format!("{:021}", 7), "{r}");
    assert_eq!(info["batchSize"], 1, "{r}");
    assert_eq!(info["streamArn"], arn, "{r}");
    assert!(
        info["shardId"].as_str().unwrap().starts_with("shardId-"),
        "{r}"
    );
    assert_eq!(r["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(r["requestContext"]["approximateInvokeCount"], 3, "{r}");
    assert_eq!(
        r["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:default:function:worker"
    );
    assert_eq!(r["responseContext"]["functionError"], "Unhandled");
    // The bad record was never processed; the stream moves on past it.
    let seen = records_seen(&node, "worker").await;
    assert!(seen.iter().all(|r| sequence(r) != format!("{:021}", 7)));
    item_op(
        &node,
        "jobs",
        "PutItem",
        json!({"Item": {"pk": {"S": "after"}}}),
    )
    .await;
    await_sequences(&node, "worker", &sequences(11, 11)).await;
    // The failed runs: the batch of ten, the halves holding the bad record down to it alone,
    // and its two retries.
    let v = ok(
        &node,
        Method::GET,
        "/v1/activations?function=worker&limit=1000",
        Value::Null,
    )
    .await;
    let failures = v["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "function_error")
        .count();
    // 1..10, then 6..10, then 6..7, then 7 three times.
    assert_eq!(failures, 6, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_batch_response_checkpoints_before_the_first_failed_record() {
    let node = node().await;
    table_with_stream(&node, "tasks").await;
    deploy_sink(&node, "partial").await;
    ok(&node, Method::POST, "/v1/queues", json!({"name": "dlq"})).await;
    // g1 g2 bad g4: the function reports the bad one; no retries, no bisection: the
    // batch from the bad record on is given up.
    for (i, bad) in [(1, false), (2, false), (3, true), (4, false)] {
        let mut item = json!({"pk": {"S": format!("t{i}")}, "report": {"BOOL": true}});
        if bad {
            item["bad"] = json!({"BOOL": true});
        }
        item_op(&node, "tasks", "PutItem", json!({ "Item": item })).await;
    }
    ok(
        &node,
        Method::POST,
        "/v1/mappings",
        json!({"table": "tasks", "function": "partial", "batch_size": 10, "max_retries": 0,
               "report_batch_item_failures": true, "on_failure": "dlq"}),
    )
    .await;
    let records = failed_batches(&node, "dlq").await;
    let info = &records[0]["DDBStreamBatchInfo"];
    assert_eq!(info["startSequenceNumber"], format!("{:021}", 3));
    assert_eq!(info["endSequenceNumber"], format!("{:021}", 4));
    assert_eq!(info["batchSize"], 2);
    let seen: BTreeSet<String> = records_seen(&node, "partial")
        .await
        .iter()
        .map(sequence)
        .collect();
    assert_eq!(seen, sequences(1, 2));
}

/// Runs `program` (a venv's python or aws) against an AWS-enabled node.
fn run_aws(node: &Node, program: &std::path::Path, args: &[&str]) -> String {
    common::run_aws_client(
        program,
        args,
        &common::aws_scripts_dir(),
        &node.url(""),
        (ACCESS_KEY_ID, SECRET),
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_manages_event_source_mappings_of_streams_and_queues() {
    let venv = tokio::task::spawn_blocking(|| python_venv(&["boto3", "awscli"]))
        .await
        .unwrap();
    let node = node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await;
    let script = common::aws_scripts_dir().join("event_source_mappings.py");
    let out = tokio::task::spawn_blocking(move || {
        run_aws(&node, &venv.join("bin/python"), &[script.to_str().unwrap()])
    })
    .await
    .unwrap();
    println!("{out}");
    assert!(out.contains("event source mappings: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_creates_lists_updates_and_deletes_a_stream_mapping() {
    let venv = tokio::task::spawn_blocking(|| python_venv(&["boto3", "awscli"]))
        .await
        .unwrap();
    let node = node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await;
    let arn = table_with_stream(&node, "clicks").await;
    deploy_sink(&node, "counter").await;
    let aws = venv.join("bin/aws");
    let endpoint = node.url("");
    let node = std::sync::Arc::new(node);
    let cli = |args: Vec<String>| {
        let (node, aws, endpoint) = (node.clone(), aws.clone(), endpoint.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut all = vec!["--endpoint-url", &endpoint, "--output", "json", "lambda"];
                all.extend(args.iter().map(String::as_str));
                serde_json::from_str::<Value>(&run_aws(&node, &aws, &all)).unwrap_or(Value::Null)
            })
            .await
            .unwrap()
        }
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let created = cli(args(&[
        "create-event-source-mapping",
        "--function-name",
        "counter",
        "--event-source-arn",
        &arn,
        "--starting-position",
        "LATEST",
        "--batch-size",
        "5",
        "--maximum-retry-attempts",
        "3",
        "--bisect-batch-on-function-error",
        "--function-response-types",
        "ReportBatchItemFailures",
    ]))
    .await;
    assert_eq!(created["State"], "Creating", "{created}");
    assert_eq!(created["BatchSize"], 5);
    assert_eq!(created["StartingPosition"], "LATEST");
    assert_eq!(created["MaximumRetryAttempts"], 3);
    assert_eq!(created["BisectBatchOnFunctionError"], true);
    assert_eq!(
        created["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    let uuid = created["UUID"].as_str().unwrap().to_string();
    let listed = cli(args(&[
        "list-event-source-mappings",
        "--event-source-arn",
        &arn,
    ]))
    .await;
    assert_eq!(listed["EventSourceMappings"][0]["UUID"], uuid, "{listed}");
    assert_eq!(listed["EventSourceMappings"][0]["State"], "Enabled");
    let updated = cli(args(&[
        "update-event-source-mapping",
        "--uuid",
        &uuid,
        "--no-enabled",
        "--batch-size",
        "2",
    ]))
    .await;
    assert_eq!(updated["State"], "Disabling", "{updated}");
    let got = cli(args(&["get-event-source-mapping", "--uuid", &uuid])).await;
    assert_eq!(
        (got["State"].clone(), got["BatchSize"].clone()),
        (json!("Disabled"), json!(2))
    );
    let deleted = cli(args(&["delete-event-source-mapping", "--uuid", &uuid])).await;
    assert_eq!(deleted["State"], "Deleting", "{deleted}");
    let listed = cli(args(&["list-event-source-mappings"])).await;
    assert_eq!(listed["EventSourceMappings"], json!([]), "{listed}");
}
