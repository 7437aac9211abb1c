//! Queues, topics and event-source mappings through a real node: visibility timeouts, redrive to
//! a dead-letter queue, long polling, partial batch failures, topic fan-out, and persistence
//! across a restart.

mod common;

use common::{eventually, node, Node};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn api(node: &Node, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (s, _, v) = node.send(method, path, bytes).await;
    (s, v)
}

async fn ok(node: &Node, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = api(node, method.clone(), path, body).await;
    assert!(s.is_success(), "{method} {path}: {s} {v}");
    v
}

async fn receive(node: &Node, queue: &str, body: Value) -> Vec<Value> {
    let v = ok(
        node,
        Method::POST,
        &format!("/v1/queues/{queue}/receive"),
        body,
    )
    .await;
    v["messages"].as_array().unwrap().clone()
}

/// The log text of a function's activations with `trigger`, oldest first.
async fn logs_of(node: &Node, function: &str, trigger: &str) -> Vec<String> {
    let v = ok(
        node,
        Method::GET,
        &format!("/v1/activations?function={function}&limit=1000"),
        Value::Null,
    )
    .await;
    let mut logs: Vec<String> = v["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["trigger"] == trigger)
        .map(|a| a["logs"].as_str().unwrap().to_string())
        .collect();
    logs.reverse();
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visibility_timeout_redelivers_and_redrive_moves_to_the_dlq() {
    let node = node().await;
    ok(&node, Method::POST, "/v1/queues", json!({"name": "dead"})).await;
    let q = ok(
        &node,
        Method::POST,
        "/v1/queues",
        json!({"name": "jobs", "visibility_timeout": 1, "dead_letter_queue": "dead", "max_receive_count": 2}),
    )
    .await;
    assert_eq!(q["arn"], "arn:aws:sqs:us-east-1:default:jobs");
    // Creating it again with the same settings is fine, with others a conflict.
    let (s, _) = api(&node, Method::POST, "/v1/queues", json!({"name": "jobs", "visibility_timeout": 1, "dead_letter_queue": "dead", "max_receive_count": 2})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = api(&node, Method::POST, "/v1/queues", json!({"name": "jobs"})).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict"))
    );

    let sent = ok(
        &node,
        Method::POST,
        "/v1/queues/jobs/messages",
        json!({"body": "job-1", "attributes": {"kind": {"dataType": "String", "stringValue": "build"}}}),
    )
    .await;
    let id = sent["messages"][0]["id"].as_str().unwrap().to_string();

    let got = receive(&node, "jobs", json!({"max": 10})).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], id.as_str());
    assert_eq!(got[0]["body"], "job-1");
    assert_eq!(got[0]["receive_count"], 1);
    assert_eq!(got[0]["attributes"]["kind"]["stringValue"], "build");
    assert!(
        receive(&node, "jobs", json!({})).await.is_empty(),
        "invisible while in flight"
    );
    let shown = ok(&node, Method::GET, "/v1/queues/jobs", Value::Null).await;
    assert_eq!(
        shown["messages"],
        json!({"visible": 0, "in_flight": 1, "delayed": 0})
    );

    // After the visibility timeout it is delivered again (long polling waits for it).
    let t = Instant::now();
    let again = receive(&node, "jobs", json!({"wait": 5})).await;
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        (again[0]["id"].as_str(), again[0]["receive_count"].as_u64()),
        (Some(id.as_str()), Some(2))
    );
    // The old receipt handle no longer deletes it.
    let d = ok(
        &node,
        Method::POST,
        "/v1/queues/jobs/delete",
        json!({"receipt_handles": [got[0]["receipt_handle"]]}),
    )
    .await;
    assert_eq!(d["deleted"], json!([]));

    // Received twice and not deleted: the next receive moves it to the dead-letter queue.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(receive(&node, "jobs", json!({"max": 10})).await.is_empty());
    let dead = receive(&node, "dead", json!({})).await;
    assert_eq!(
        (dead[0]["id"].as_str(), dead[0]["body"].as_str()),
        (Some(id.as_str()), Some("job-1"))
    );
    let d = ok(
        &node,
        Method::POST,
        "/v1/queues/dead/delete",
        json!({"receipt_handles": [dead[0]["receipt_handle"]]}),
    )
    .await;
    assert_eq!(d["deleted"].as_array().unwrap().len(), 1);

    // A redrive moves a dead-letter queue's visible messages back: only a dead-letter queue's,
    // to its one source queue, or to the one named when it serves several.
    let (s, v) = api(&node, Method::POST, "/v1/queues/jobs/redrive", Value::Null).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    ok(
        &node,
        Method::POST,
        "/v1/queues/dead/messages",
        json!({"body": "lost-1"}),
    )
    .await;
    let moved = ok(&node, Method::POST, "/v1/queues/dead/redrive", Value::Null).await;
    assert_eq!(
        moved,
        json!({"source": "dead", "destination": "jobs", "moved": 1})
    );
    let back = receive(&node, "jobs", json!({})).await;
    assert_eq!(
        (back[0]["body"].as_str(), back[0]["receive_count"].as_u64()),
        (Some("lost-1"), Some(1))
    );
    ok(
        &node,
        Method::POST,
        "/v1/queues/jobs/delete",
        json!({"receipt_handles": [back[0]["receipt_handle"]]}),
    )
    .await;
    ok(
        &node,
        Method::POST,
        "/v1/queues",
        json!({"name": "jobs-2", "dead_letter_queue": "dead", "max_receive_count": 2}),
    )
    .await;
    let (s, v) = api(&node, Method::POST, "/v1/queues/dead/redrive", Value::Null).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("jobs, jobs-2")),
        "{v}"
    );
    let moved = ok(
        &node,
        Method::POST,
        "/v1/queues/dead/redrive",
        json!({"destination": "jobs-2"}),
    )
    .await;
    assert_eq!(moved["moved"], 0);
    ok(&node, Method::DELETE, "/v1/queues/jobs-2", Value::Null).await;

    // Long polling wakes on a send; a delayed message waits for its delay; visibility can be
    // changed; purge empties.
    let poller = {
        let http = node.http.clone();
        let url = node.url("/v1/queues/jobs/receive");
        tokio::spawn(async move {
            let t = Instant::now();
            let v: Value = http
                .post(url)
                .bearer_auth(common::KEY)
                .body(json!({"wait": 10, "visibility_timeout": 60}).to_string())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (t.elapsed(), v)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    ok(
        &node,
        Method::POST,
        "/v1/queues/jobs/messages",
        json!({"messages": [{"body": "woke"}, {"body": "later", "delay": 1}]}),
    )
    .await;
    let (waited, v) = poller.await.unwrap();
    assert_eq!(v["messages"][0]["body"], "woke");
    assert!(
        waited < Duration::from_secs(3),
        "woken by the send: {waited:?}"
    );
    assert!(
        receive(&node, "jobs", json!({})).await.is_empty(),
        "delayed"
    );
    let later = receive(&node, "jobs", json!({"wait": 5, "visibility_timeout": 60})).await;
    assert_eq!(later[0]["body"], "later");
    ok(
        &node,
        Method::POST,
        "/v1/queues/jobs/visibility",
        json!({"receipt_handle": later[0]["receipt_handle"], "visibility_timeout": 0}),
    )
    .await;
    assert_eq!(receive(&node, "jobs", json!({})).await[0]["body"], "later");
    let purged = ok(&node, Method::POST, "/v1/queues/jobs/purge", Value::Null).await;
    assert_eq!(purged["purged"], 2);

    // Bad input gets precise errors.
    for (path, body, status, code) in [
        (
            "/v1/queues",
            json!({"name": "bad name"}),
            StatusCode::BAD_REQUEST,
            "InvalidName",
        ),
        (
            "/v1/queues",
            json!({"name": "x", "max_receive_count": 2}),
            StatusCode::BAD_REQUEST,
            "InvalidSettings",
        ),
        (
            "/v1/queues",
            json!({"name": "x", "dead_letter_queue": "nope"}),
            StatusCode::NOT_FOUND,
            "QueueNotFound",
        ),
        (
            "/v1/queues/nope/messages",
            json!({"body": "x"}),
            StatusCode::NOT_FOUND,
            "QueueNotFound",
        ),
        (
            "/v1/queues/jobs/messages",
            json!({"body": ""}),
            StatusCode::BAD_REQUEST,
            "InvalidSettings",
        ),
        (
            "/v1/queues/jobs/messages",
            json!({"body": "x".repeat(300 * 1024)}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLarge",
        ),
        (
            "/v1/queues/jobs/receive",
            json!({"wait": 21}),
            StatusCode::BAD_REQUEST,
            "InvalidSettings",
        ),
        (
            "/v1/queues/jobs/receive",
            json!({"max": 11}),
            StatusCode::BAD_REQUEST,
            "InvalidSettings",
        ),
        (
            "/v1/queues/jobs/messages",
            json!({"body": "x", "attributes": {"a": {"dataType": "Binary", "stringValue": "x"}}}),
            StatusCode::BAD_REQUEST,
            "InvalidSettings",
        ),
    ] {
        let (s, v) = api(&node, Method::POST, path, body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{path}: {v}"
        );
    }
}

/// Prints every record it gets; fails the messages whose body starts with `bad` on their first
/// receive (as a batch item failure), or raises on a first receive when the body is `raise`.
const CONSUMER: &str = r#"
def handler(event, context):
    failures = []
    for r in event["Records"]:
        count = int(r["attributes"]["ApproximateReceiveCount"])
        print("got", r["body"], count, r["eventSource"], r["md5OfBody"])
        if r["body"] == "raise" and count == 1:
            raise RuntimeError("whole batch back")
        if r["body"].startswith("bad") and count == 1:
            failures.append({"itemIdentifier": r["messageId"]})
    return {"batchItemFailures": failures}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mappings_run_batches_and_only_failed_messages_come_back() {
    let node = node().await;
    let (s, v) = node
        .deploy(
            "consumer",
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", CONSUMER)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    ok(
        &node,
        Method::POST,
        "/v1/queues",
        json!({"name": "work", "visibility_timeout": 1}),
    )
    .await;
    ok(
        &node,
        Method::POST,
        "/v1/queues/work/messages",
        json!({"messages": [{"body": "good-1"}, {"body": "bad-1"}, {"body": "good-2"}]}),
    )
    .await;
    let m = ok(
        &node,
        Method::POST,
        "/v1/mappings",
        json!({"queue": "work", "function": "consumer", "batch_size": 10,
               "batching_window_ms": 300, "report_batch_item_failures": true}),
    )
    .await;
    // A UUID, as Lambda's (botocore refuses shorter ones).
    assert_eq!(m["id"].as_str().unwrap().len(), 36, "{m}");

    let empty = || async {
        let q = ok(&node, Method::GET, "/v1/queues/work", Value::Null).await;
        (q["messages"] == json!({"visible": 0, "in_flight": 0, "delayed": 0})).then_some(())
    };
    eventually(20, "the queue to drain", empty).await;
    let logs = logs_of(&node, "consumer", "sqs").await.join("");
    let count = |needle: &str| logs.matches(needle).count();
    assert_eq!(count("got good-1 1 aws:sqs"), 1, "{logs}");
    assert_eq!(count("got good-2 1 aws:sqs"), 1, "{logs}");
    assert_eq!(count("got bad-1 1 aws:sqs"), 1, "{logs}");
    assert_eq!(
        count("got bad-1 2 aws:sqs"),
        1,
        "only the failed message came back: {logs}"
    );
    assert_eq!(count("got good-"), 2, "{logs}");

    // A thrown error sends the whole batch back.
    ok(
        &node,
        Method::POST,
        "/v1/queues/work/messages",
        json!({"messages": [{"body": "fine"}, {"body": "raise"}]}),
    )
    .await;
    eventually(20, "the queue to drain again", empty).await;
    let logs = logs_of(&node, "consumer", "sqs").await.join("");
    assert_eq!(logs.matches("got fine").count(), 2, "{logs}");
    assert_eq!(logs.matches("got raise").count(), 2, "{logs}");

    // Deleting the mapping stops it.
    let id = m["id"].as_str().unwrap();
    let (s, _) = api(
        &node,
        Method::DELETE,
        &format!("/v1/mappings/{id}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    ok(
        &node,
        Method::POST,
        "/v1/queues/work/messages",
        json!({"body": "unseen"}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let q = ok(&node, Method::GET, "/v1/queues/work", Value::Null).await;
    assert_eq!(q["messages"]["visible"], 1);
    let (s, v) = api(
        &node,
        Method::POST,
        "/v1/mappings",
        json!({"queue": "work", "function": "nope"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FunctionNotFound"))
    );
}

const SNS_PRINTER: &str = r#"
def handler(event, context):
    r = event["Records"][0]
    print("sns", r["EventSource"], r["Sns"]["Type"], r["Sns"]["Subject"], r["Sns"]["Message"],
          r["Sns"]["MessageAttributes"]["k"]["Value"])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_fan_out_to_two_functions_and_a_queue() {
    let node = node().await;
    for f in ["sub-a", "sub-b"] {
        let (s, v) = node
            .deploy(
                f,
                json!({"runtime": "python3.12", "handler": "app.handler"}),
                &[("app.py", SNS_PRINTER)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    ok(&node, Method::POST, "/v1/queues", json!({"name": "inbox"})).await;
    let t = ok(&node, Method::POST, "/v1/topics", json!({"name": "news"})).await;
    assert_eq!(t["arn"], "arn:aws:sns:us-east-1:default:news");
    for sub in [
        json!({"function": "sub-a"}),
        json!({"function": "sub-b"}),
        json!({"queue": "inbox"}),
    ] {
        ok(&node, Method::POST, "/v1/topics/news/subscriptions", sub).await;
    }
    let (s, v) = api(
        &node,
        Method::POST,
        "/v1/topics/news/subscriptions",
        json!({"queue": "inbox"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict"))
    );
    let (s, v) = api(
        &node,
        Method::POST,
        "/v1/topics/news/subscriptions",
        json!({"function": "nope"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FunctionNotFound"))
    );

    let published = ok(
        &node,
        Method::POST,
        "/v1/topics/news/publish",
        json!({"message": "hello-all", "subject": "greeting",
               "attributes": {"k": {"dataType": "String", "stringValue": "v"}}}),
    )
    .await;
    assert_eq!(published["deliveries"], 3);

    // The queue has it before publish returned, as an SNS notification.
    let got = receive(&node, "inbox", json!({})).await;
    let note: Value = serde_json::from_str(got[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(note["Type"], "Notification");
    assert_eq!(note["Message"], "hello-all");
    assert_eq!(note["Subject"], "greeting");
    assert_eq!(note["TopicArn"], "arn:aws:sns:us-east-1:default:news");
    assert_eq!(note["MessageId"], published["message_id"]);

    // Each function gets the SNS event, asynchronously.
    for f in ["sub-a", "sub-b"] {
        eventually(20, &format!("{f} to run"), || async {
            logs_of(&node, f, "sns")
                .await
                .iter()
                .any(|l| l.contains("sns aws:sns Notification greeting hello-all v"))
                .then_some(())
        })
        .await;
    }

    let subs = ok(
        &node,
        Method::GET,
        "/v1/topics/news/subscriptions",
        Value::Null,
    )
    .await;
    let subs = subs["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    assert_eq!(
        subs[2],
        json!({"id": subs[2]["id"], "namespace": "default", "topic": "news", "kind": "queue", "target": "inbox", "created_ms": subs[2]["created_ms"]})
    );
    let (s, _) = api(
        &node,
        Method::DELETE,
        &format!("/v1/subscriptions/{}", subs[2]["id"].as_str().unwrap()),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let published = ok(
        &node,
        Method::POST,
        "/v1/topics/news/publish",
        json!({"message": "again"}),
    )
    .await;
    assert_eq!(published["deliveries"], 2);
    let (s, _) = api(&node, Method::DELETE, "/v1/topics/news", Value::Null).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = api(
        &node,
        Method::POST,
        "/v1/topics/news/publish",
        json!({"message": "x"}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("TopicNotFound"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_survive_a_restart_and_in_flight_ones_come_back() {
    let mut node = node().await;
    ok(
        &node,
        Method::POST,
        "/v1/queues",
        json!({"name": "durable", "visibility_timeout": 2}),
    )
    .await;
    ok(
        &node,
        Method::POST,
        "/v1/queues/durable/messages",
        json!({"messages": [{"body": "first"}, {"body": "second"}]}),
    )
    .await;
    // Timed from before the receive: the server starts the visibility timeout when it
    // answers, which is before the answer reaches here.
    let received_at = Instant::now();
    let held = receive(&node, "durable", json!({})).await;
    assert_eq!(held[0]["body"], "first");

    node.restart().await;

    // The message nobody received is there at once; the one in flight after its timeout.
    let got = receive(&node, "durable", json!({})).await;
    assert_eq!(got[0]["body"], "second");
    let back = receive(&node, "durable", json!({"wait": 10})).await;
    assert_eq!(back[0]["body"], "first");
    assert_eq!(back[0]["receive_count"], 2);
    assert!(received_at.elapsed() >= Duration::from_secs(2));
    let queues = ok(&node, Method::GET, "/v1/queues", Value::Null).await;
    assert_eq!(queues["queues"][0]["name"], "durable");
    let counts = &queues["queues"][0]["messages"];
    assert_eq!(
        counts["in_flight"].as_u64().unwrap() + counts["visible"].as_u64().unwrap(),
        2,
        "{counts}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscription_attributes_filter_and_deliver_raw_through_v1() {
    let node = node().await;
    for q in ["raw", "all"] {
        ok(&node, Method::POST, "/v1/queues", json!({"name": q})).await;
    }
    ok(&node, Method::POST, "/v1/topics", json!({"name": "orders"})).await;
    let policy = json!({"kind": ["order"], "total": [{"numeric": [">", 10]}]}).to_string();
    let sub = ok(
        &node,
        Method::POST,
        "/v1/topics/orders/subscriptions",
        json!({"queue": "raw",
               "attributes": {"RawMessageDelivery": "true", "FilterPolicy": policy}}),
    )
    .await;
    assert_eq!(sub["attributes"]["RawMessageDelivery"], "true", "{sub}");
    ok(
        &node,
        Method::POST,
        "/v1/topics/orders/subscriptions",
        json!({"queue": "all"}),
    )
    .await;
    // A policy that is not one is refused before anything is stored.
    let (s, v) = api(
        &node,
        Method::POST,
        "/v1/topics/orders/subscriptions",
        json!({"queue": "raw", "attributes": {"FilterPolicy": "{\"kind\": \"order\"}"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("FilterPolicy")),
        "{v}"
    );
    let attrs = |kind: &str, total: &str| {
        json!({"kind": {"dataType": "String", "stringValue": kind},
               "total": {"dataType": "Number", "stringValue": total}})
    };
    let mut deliveries = Vec::new();
    for (message, attributes) in [
        ("big", attrs("order", "12")),
        ("small", attrs("order", "3")),
        ("refund", attrs("refund", "50")),
    ] {
        let p = ok(
            &node,
            Method::POST,
            "/v1/topics/orders/publish",
            json!({"message": message, "attributes": attributes}),
        )
        .await;
        deliveries.push(p["deliveries"].as_u64().unwrap());
    }
    // Only the matching message reached the filtered subscription, counted in `deliveries`.
    assert_eq!(deliveries, [2, 1, 1]);
    let raw = receive(&node, "raw", json!({"max": 10})).await;
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert_eq!(raw[0]["body"], "big");
    assert_eq!(raw[0]["attributes"]["total"]["stringValue"], "12");
    let all = receive(&node, "all", json!({"max": 10})).await;
    assert_eq!(all.len(), 3, "{all:?}");
}
