//! Asynchronous invocation end to end on a real node: accepted (202) only once durable, run by
//! the workers, retried with exponential backoff, dead-lettered and re-driven, destinations,
//! throttles that do not use up retries, the maximum event age, and resumption after a restart.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Prints the event it got (`EVENT {…}`), fails when asked unless `HEALED=1`.
const EVENTS_PY: &str = r#"
import json, os
def handler(event, context):
    print("EVENT " + json.dumps(event))
    if event.get("fail") and os.environ.get("HEALED") != "1":
        raise ValueError("asked to fail")
    return {"ok": True, "n": event.get("n")}
"#;

fn python(extra: Value) -> Value {
    let mut settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    settings
}

async fn deploy_events_fn(node: &Node, name: &str, extra: Value) {
    let (status, body) = node
        .deploy(name, python(extra), &[("app.py", EVENTS_PY)])
        .await;
    assert!(status.is_success(), "deploy {name}: {status} {body}");
}

async fn accept(node: &Node, name: &str, payload: &str) -> String {
    let (status, body) = node.invoke_async(name, payload).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["activation_id"].as_str().unwrap().to_string()
}

/// The activation with this id, once it is recorded.
async fn activation(node: &Node, id: &str) -> Value {
    eventually(30, &format!("activation {id}"), || async {
        let (s, _, v) = node
            .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
            .await;
        (s == StatusCode::OK).then_some(v)
    })
    .await
}

/// The events a function printed (`EVENT {…}` lines), oldest first.
async fn printed_events(node: &Node, function: &str) -> Vec<Value> {
    let mut events = Vec::new();
    for a in node.activations_of(function).await {
        for line in a["logs"].as_str().unwrap_or("").lines() {
            if let Some(json) = line.strip_prefix("EVENT ") {
                events.push(serde_json::from_str(json).unwrap());
            }
        }
    }
    events
}

async fn dead_letters(node: &Node) -> Vec<Value> {
    let v = node.get_ok("/v1/dlq").await;
    v["dead_letters"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_invocations_are_accepted_then_run() {
    let node = node().await;
    deploy_events_fn(&node, "worker", json!({})).await;

    let id = accept(&node, "worker", r#"{"n": 1}"#).await;
    let a = activation(&node, &id).await;
    assert_eq!(
        (a["status"].as_str(), a["trigger"].as_str()),
        (Some("success"), Some("async"))
    );
    assert!(
        a["logs"].as_str().unwrap().contains(r#"EVENT {"n": 1}"#),
        "{a}"
    );

    // The header asks for the same.
    let response = node
        .http
        .post(node.url("/v1/functions/worker/invoke"))
        .bearer_auth(KEY)
        .header("Lambent-Invocation-Type", "Event")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let header_id = header(response.headers(), "lambent-activation-id").to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["activation_id"].as_str(), Some(header_id.as_str()));
    assert_eq!(activation(&node, &header_id).await["status"], "success");

    // Bad requests get precise errors, and nothing is queued for them.
    let (s, v) = node.invoke_async("nobody", "{}").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FunctionNotFound"))
    );
    let (s, v) = node.invoke_async("worker", "{not json").await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidJson"))
    );
    let big = format!("\"{}\"", "x".repeat(1024 * 1024 + 1));
    let (s, v) = node.invoke_async("worker", &big).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("PayloadTooLarge"))
    );
    let (s, _, v) = node
        .send(
            Method::POST,
            "/v1/functions/worker/invoke?async=maybe",
            b"{}".to_vec(),
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidJson"))
    );
    eventually(10, "an empty queue", || async {
        (node.get_ok("/v1/async").await["pending"] == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff_then_dead_lettered_and_redriven() {
    let node = node().await;
    deploy_events_fn(&node, "flaky", json!({})).await;
    let id = accept(&node, "flaky", r#"{"fail": true, "n": 7}"#).await;

    let letter = eventually(30, "the dead letter", || async {
        dead_letters(&node)
            .await
            .into_iter()
            .find(|l| l["id"] == id.as_str())
    })
    .await;
    assert_eq!(letter["function"], "flaky");
    assert_eq!(letter["attempts"], 3, "{letter}");
    assert_eq!(letter["error_type"], "ValueError");
    assert_eq!(
        letter["activation_id"].as_str(),
        Some(format!("{id}.3").as_str())
    );

    // Three attempts, each its own activation named after the event, spaced by 1 s then 2 s.
    let attempts = [id.clone(), format!("{id}.2"), format!("{id}.3")];
    let mut starts = Vec::new();
    for a in &attempts {
        let record = activation(&node, a).await;
        assert_eq!(record["status"], "function_error", "{record}");
        starts.push(record["start_ms"].as_i64().unwrap());
    }
    assert!(
        starts[1] - starts[0] >= 1000,
        "first retry after {} ms",
        starts[1] - starts[0]
    );
    assert!(
        starts[2] - starts[1] >= 2000,
        "second retry after {} ms",
        starts[2] - starts[1]
    );

    let shown = node.get_ok(&format!("/v1/dlq/{id}")).await;
    assert_eq!(shown["payload"], json!({"fail": true, "n": 7}));
    let (s, _, v) = node.send(Method::GET, "/v1/dlq/nope", vec![]).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );

    // Fixed code, then a redrive: a new event runs the same payload and succeeds.
    deploy_events_fn(&node, "flaky", json!({"env": {"HEALED": "1"}})).await;
    let (s, _, v) = node
        .send(Method::POST, &format!("/v1/dlq/{id}/redrive"), vec![])
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new_id = v["redriven"][0]["activation_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_id, id);
    let a = activation(&node, &new_id).await;
    assert_eq!(
        (a["status"].as_str(), a["trigger"].as_str()),
        (Some("success"), Some("redrive"))
    );
    assert!(dead_letters(&node).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destinations_receive_lambda_shaped_records() {
    let node = node().await;
    deploy_events_fn(&node, "audit", json!({})).await;
    let destinations = json!({"async": {"max_retries": 0,
        "on_success": {"function": "audit"}, "on_failure": {"function": "audit"}}});
    deploy_events_fn(&node, "source", destinations).await;
    let ok_id = accept(&node, "source", r#"{"n": 1}"#).await;
    let failed_id = accept(&node, "source", r#"{"fail": true}"#).await;

    let records = eventually(30, "two destination records", || async {
        let printed = printed_events(&node, "audit").await;
        (printed.len() >= 2).then_some(printed)
    })
    .await;
    let by_request = |id: &str| {
        records
            .iter()
            .find(|r| r["requestContext"]["requestId"] == id)
            .unwrap_or_else(|| panic!("no record for {id}: {records:?}"))
            .clone()
    };
    let ok = by_request(&ok_id);
    assert_eq!(ok["version"], "1.0");
    assert_eq!(ok["requestContext"]["condition"], "Success");
    assert_eq!(ok["requestContext"]["approximateInvokeCount"], 1);
    assert_eq!(
        ok["requestContext"]["functionArn"],
        "arn:aws:lambda:us-east-1:default:function:source:$LATEST"
    );
    assert_eq!(ok["requestPayload"], json!({"n": 1}));
    assert_eq!(ok["responseContext"]["statusCode"], 200);
    assert_eq!(ok["responsePayload"], json!({"ok": true, "n": 1}));
    assert!(ok["timestamp"].as_str().unwrap().ends_with('Z'));
    let failed = by_request(&failed_id);
    assert_eq!(failed["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(failed["responseContext"]["functionError"], "ValueError");
    assert_eq!(failed["responsePayload"]["errorType"], "ValueError");
    let audit = node.activations_of("audit").await;
    assert!(
        audit.iter().all(|a| a["trigger"] == "destination"),
        "{audit:?}"
    );

    // Queue and topic destinations: success records to a queue, failure records to a topic
    // whose subscriber is another queue.
    for (path, body) in [
        ("/v1/queues", json!({"name": "records"})),
        ("/v1/queues", json!({"name": "alerts-inbox"})),
        ("/v1/topics", json!({"name": "alerts"})),
        (
            "/v1/topics/alerts/subscriptions",
            json!({"queue": "alerts-inbox"}),
        ),
    ] {
        let (s, _, v) = node
            .send(Method::POST, path, body.to_string().into_bytes())
            .await;
        assert!(s.is_success(), "{path}: {s} {v}");
    }
    let destinations = json!({"async": {"max_retries": 0,
        "on_success": {"queue": "records"}, "on_failure": {"topic": "alerts"}}});
    deploy_events_fn(&node, "source", destinations).await;
    let ok_id = accept(&node, "source", r#"{"n": 2}"#).await;
    let failed_id = accept(&node, "source", r#"{"fail": true}"#).await;
    let receive_one = |queue: &'static str| {
        let node = &node;
        async move {
            eventually(30, queue, || async move {
                let (_, _, v) = node
                    .send(
                        Method::POST,
                        &format!("/v1/queues/{queue}/receive"),
                        b"{}".to_vec(),
                    )
                    .await;
                let body = v["messages"][0]["body"].as_str()?.to_string();
                serde_json::from_str::<Value>(&body).ok()
            })
            .await
        }
    };
    let ok = receive_one("records").await;
    assert_eq!(ok["requestContext"]["requestId"], ok_id.as_str(), "{ok}");
    assert_eq!(ok["requestContext"]["condition"], "Success");
    assert_eq!(ok["responsePayload"], json!({"ok": true, "n": 2}));
    let note = receive_one("alerts-inbox").await;
    assert_eq!(note["Type"], "Notification", "{note}");
    let failed: Value = serde_json::from_str(note["Message"].as_str().unwrap()).unwrap();
    assert_eq!(failed["requestContext"]["requestId"], failed_id.as_str());
    assert_eq!(failed["requestContext"]["condition"], "RetriesExhausted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttles_do_not_use_up_retries_but_age_does() {
    let node = node().await;
    // Reserved concurrency 0: every attempt is throttled.
    deploy_events_fn(
        &node,
        "held",
        json!({"reserved_concurrency": 0, "async": {"max_retries": 0}}),
    )
    .await;
    let id = accept(&node, "held", r#"{"n": 2}"#).await;
    eventually(15, "two throttled attempts", || async {
        let throttled = node.activations_of("held").await;
        (throttled
            .iter()
            .filter(|a| a["status"] == "throttled")
            .count()
            >= 2)
            .then_some(())
    })
    .await;
    assert!(
        dead_letters(&node).await.is_empty(),
        "a throttle counted as a failed attempt"
    );
    assert_eq!(node.get_ok("/v1/async").await["pending"], 1);

    deploy_events_fn(&node, "held", json!({"async": {"max_retries": 0}})).await;
    let ran = eventually(15, "the event to run once allowed", || async {
        node.activations_of("held")
            .await
            .into_iter()
            .find(|a| a["status"] == "success")
    })
    .await;
    assert!(
        ran["id"].as_str().unwrap().starts_with(&format!("{id}.")),
        "{ran}"
    );

    deploy_events_fn(
        &node,
        "aging",
        json!({"reserved_concurrency": 0, "async": {"max_event_age_s": 1}}),
    )
    .await;
    let old = accept(&node, "aging", "{}").await;
    let letter = eventually(15, "the expired event", || async {
        dead_letters(&node)
            .await
            .into_iter()
            .find(|l| l["id"] == old.as_str())
    })
    .await;
    assert_eq!(letter["error_type"], "EventAgeExceeded");
    assert_eq!(letter["attempts"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_events_resume_after_a_restart() {
    let mut node = node().await;
    deploy_events_fn(&node, "later", json!({"reserved_concurrency": 0})).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(accept(&node, "later", &format!(r#"{{"n": {n}}}"#)).await);
    }
    node.restart().await;
    assert_eq!(node.get_ok("/v1/async").await["pending"], 3);
    deploy_events_fn(&node, "later", json!({})).await;
    eventually(30, "every event to run after the restart", || async {
        let done = node.activations_of("later").await;
        ids.iter()
            .all(|id| {
                done.iter().any(|a| {
                    a["status"] == "success" && a["id"].as_str().unwrap().starts_with(id.as_str())
                })
            })
            .then_some(())
    })
    .await;
    assert_eq!(node.get_ok("/v1/async").await["pending"], 0);
}
