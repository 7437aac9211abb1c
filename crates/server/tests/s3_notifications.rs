//! Bucket notifications against a real node: boto3 puts a configuration with a function, a
//! queue and a topic target (tests/aws/s3_notifications.py: round trip, refused destinations,
//! uploads and a delete), then the deliveries are checked where they landed: the function's
//! activation (its logs print the event), the queue's message, the topic subscriber's message.

mod common;

use common::{eventually, node_with, Node};
use lambent_testkit::python::venv as python_venv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::process::Command;

const ACCESS_KEY_ID: &str = "LKIANOTIFYNOTIFYNOTI";
const SECRET: &str = "notify-test-secret-access-key-0123456789";

const PRINTS_EVENTS: &str = "import json\ndef handler(event, context):\n    print('EVENT ' + json.dumps(event))\n    return 'ok'\n";

async fn post(node: &Node, path: &str, body: Value) -> Value {
    let (s, _, v) = node
        .send(Method::POST, path, body.to_string().into_bytes())
        .await;
    assert!(s.is_success(), "POST {path}: {s} {v}");
    v
}

/// The messages of a queue (waiting up to `secs` for `n` of them).
async fn receive(node: &Node, queue: &str, n: usize, secs: u64) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} messages in queue {queue}: {got:?}"
        );
        let path = format!("/v1/queues/{queue}/receive");
        let v = post(node, &path, json!({"max": 10, "wait": 1})).await;
        got.extend(v["messages"].as_array().cloned().unwrap_or_default());
    }
    got
}

/// The events the function printed, from its success activations' logs.
fn printed_events(activations: &[Value]) -> Vec<Value> {
    common::printed_after(activations, "EVENT ")
}

fn run_scenario(node_url: &str, script: &str) -> String {
    let venv = python_venv(&["boto3", "awscli"]);
    let script = common::aws_scripts_dir().join(script);
    let args = [script.to_str().unwrap()];
    let key = (ACCESS_KEY_ID, SECRET);
    common::run_aws_client(
        &venv.join("bin/python"),
        &args,
        &common::aws_scripts_dir(),
        node_url,
        key,
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_deletes_reach_functions_queues_and_topics_in_s3s_shape() {
    let node = node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await;
    let (s, v) = node
        .deploy(
            "on-upload",
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", PRINTS_EVENTS)],
        )
        .await;
    assert!(s.is_success(), "{v}");
    for q in ["removed", "news-inbox"] {
        post(&node, "/v1/queues", json!({"name": q})).await;
    }
    post(&node, "/v1/topics", json!({"name": "news"})).await;
    post(
        &node,
        "/v1/topics/news/subscriptions",
        json!({"queue": "news-inbox"}),
    )
    .await;

    let url = node.url("");
    let out = tokio::task::spawn_blocking(move || run_scenario(&url, "s3_notifications.py"))
        .await
        .unwrap();
    let put: Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();

    // The function: one invocation, for in/my cat.jpg only (b.png, out/c.jpg are filtered out,
    // the delete is not what it asked for).
    let events = eventually(60, "the function's invocation", || async {
        let e = printed_events(&node.activations_of("on-upload").await);
        (!e.is_empty()).then_some(e)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events_now = printed_events(&node.activations_of("on-upload").await);
    assert_eq!(events_now.len(), 1, "{events_now:?}");
    let r = &events[0]["Records"][0];
    assert_eq!(events[0]["Records"].as_array().unwrap().len(), 1);
    assert_eq!(r["eventVersion"], "2.1");
    assert_eq!(r["eventSource"], "aws:s3");
    assert_eq!(r["awsRegion"], "us-east-1");
    assert_eq!(r["eventName"], "ObjectCreated:Put");
    let time = r["eventTime"].as_str().unwrap();
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "{time}"
    );
    assert_eq!(
        r["userIdentity"]["principalId"],
        format!("AWS:{ACCESS_KEY_ID}")
    );
    assert_eq!(r["requestParameters"]["sourceIPAddress"], "127.0.0.1");
    assert_eq!(r["responseElements"]["x-amz-request-id"], put["request_id"]);
    assert!(r["responseElements"]["x-amz-id-2"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let s3 = &r["s3"];
    assert_eq!(s3["s3SchemaVersion"], "1.0");
    assert_eq!(s3["configurationId"], "thumbs");
    assert_eq!(s3["bucket"]["name"], "photos");
    assert_eq!(s3["bucket"]["ownerIdentity"]["principalId"], "default");
    assert_eq!(s3["bucket"]["arn"], "arn:aws:s3:::photos");
    assert_eq!(s3["object"]["key"], "in/my+cat.jpg");
    assert_eq!(s3["object"]["size"], 5);
    assert_eq!(s3["object"]["eTag"], put["etag"]);
    let put_sequencer = s3["object"]["sequencer"].as_str().unwrap().to_string();
    let activation = &node.activations_of("on-upload").await[0];
    assert_eq!(activation["trigger"], "s3", "{activation}");

    // The queue: the delete, without size or ETag, after the put in sequencer order.
    let removed = receive(&node, "removed", 1, 30).await;
    assert_eq!(removed.len(), 1, "{removed:?}");
    let body: Value = serde_json::from_str(removed[0]["body"].as_str().unwrap()).unwrap();
    let r = &body["Records"][0];
    assert_eq!(r["eventName"], "ObjectRemoved:Delete");
    assert_eq!(r["s3"]["configurationId"], "removals");
    assert_eq!(r["s3"]["object"]["key"], "in/my+cat.jpg");
    assert!(r["s3"]["object"].get("size").is_none(), "{r}");
    assert!(r["s3"]["object"].get("eTag").is_none(), "{r}");
    assert!(r["s3"]["object"]["sequencer"].as_str().unwrap() > put_sequencer.as_str());

    // The topic: its queue subscriber gets the SNS notification carrying the S3 event.
    let news = receive(&node, "news-inbox", 1, 30).await;
    assert_eq!(news.len(), 1, "{news:?}");
    let sns: Value = serde_json::from_str(news[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sns["Type"], "Notification");
    assert_eq!(sns["Subject"], "Amazon S3 Notification");
    assert_eq!(sns["TopicArn"], "arn:aws:sns:us-east-1:default:news");
    let inner: Value = serde_json::from_str(sns["Message"].as_str().unwrap()).unwrap();
    assert_eq!(inner["Records"][0]["s3"]["object"]["key"], "news/n1.txt");
    assert_eq!(inner["Records"][0]["s3"]["configurationId"], "news");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_deleted_after_configuration_keeps_its_notifications_in_the_dead_letter_queue() {
    let node = node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await;
    post(&node, "/v1/queues", json!({"name": "gone-soon"})).await;
    let (s, _, v) = node
        .send(
            Method::PUT,
            "/v1/buckets/nobucket/notification",
            b"{\"configurations\": []}".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "NoSuchBucket");

    let url = node.url("");
    let venv = tokio::task::spawn_blocking(|| python_venv(&["boto3", "awscli"]))
        .await
        .unwrap();
    let script = r#"
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["LAMBENT_URL"], region_name="us-east-1")
s3.create_bucket(Bucket="drops")
s3.put_bucket_notification_configuration(Bucket="drops", NotificationConfiguration={
    "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:default:gone-soon",
                             "Events": ["s3:ObjectCreated:*"]}]})
"#;
    let python = |code: &'static str| {
        let (venv, url) = (venv.clone(), url.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let out = Command::new(venv.join("bin/python"))
                    .args(["-c", code])
                    .env("LAMBENT_URL", url)
                    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
                    .env("AWS_SECRET_ACCESS_KEY", SECRET)
                    .env("AWS_CONFIG_FILE", "/dev/null")
                    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            })
            .await
            .unwrap()
        }
    };
    python(script).await;
    let (s, _, _) = node
        .send(Method::DELETE, "/v1/queues/gone-soon", vec![])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // The upload still succeeds; its notification ends as a dead letter, not nowhere.
    python(
        r#"
import boto3, os
s3 = boto3.client("s3", endpoint_url=os.environ["LAMBENT_URL"], region_name="us-east-1")
s3.put_object(Bucket="drops", Key="k", Body=b"x")
"#,
    )
    .await;
    let letters = eventually(30, "the notification's dead letter", || async {
        let v = node.get_ok("/v1/dlq").await;
        let list = v["dead_letters"].as_array().cloned().unwrap_or_default();
        (!list.is_empty()).then_some(list)
    })
    .await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["trigger"], "s3");
    assert_eq!(letters[0]["error_type"], "DestinationFailed");
    // The /v1 view of the configuration (as `lambent bucket notify` reads it).
    let v = node.get_ok("/v1/buckets/drops/notification").await;
    assert_eq!(v["configurations"][0]["queue"], "gone-soon", "{v}");
}
