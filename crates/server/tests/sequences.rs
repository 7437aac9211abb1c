//! Sequences invoked by the triggers that target functions by name (a topic subscription, a
//! queue mapping, a schedule) and through `/v1` (sync and async), on a real node; with
//! `LAMBENT_TEST_CLUSTER=1` on PostgreSQL and NATS: the sequence and the links between its
//! activation and its steps' are stored by either backend.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Counts the steps it went through; the first step gets the trigger's event, whose top-level
/// keys it keeps as `first_saw`.
const STEP_PY: &str = r#"
def handler(event, context):
    if "steps" in event:
        return {"steps": event["steps"] + 1, "first_saw": event["first_saw"]}
    return {"steps": 1, "first_saw": sorted(event.keys())}
"#;

async fn setup(node: &Node) {
    let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    let (s, v) = node.deploy("step", settings, &[("app.py", STEP_PY)]).await;
    assert!(s.is_success(), "{v}");
    let (s, _, v) = node
        .send(
            Method::PUT,
            "/v1/sequences/three",
            json!({"components": ["step", "step", "step"]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn post(node: &Node, path: &str, body: Value) -> Value {
    let (s, _, v) = node
        .send(Method::POST, path, body.to_string().into_bytes())
        .await;
    assert!(s.is_success(), "POST {path}: {s} {v}");
    v
}

/// The first record of the sequence started by `trigger`, once it and its steps are stored.
async fn sequence_run(node: &Node, trigger: &str) -> Value {
    let run = eventually(30, &format!("a {trigger} run of the sequence"), || async {
        node.activations_of("three")
            .await
            .into_iter()
            .find(|a| a["trigger"] == trigger)
    })
    .await;
    assert_eq!(run["status"], "success", "{run}");
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{run}");
    for id in steps {
        let step = node
            .get_ok(&format!("/v1/activations/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(step["function"], "step");
        assert_eq!(step["parent"], run["id"]);
        assert_eq!(step["status"], "success");
    }
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_queues_schedules_and_the_api_invoke_sequences() {
    let node = node().await;
    setup(&node).await;

    // Sync through /v1: the last step's result.
    let (s, h, v) = node.invoke("three", r#"{"a": 1}"#).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "lambent-status"), "success");
    assert_eq!(v, json!({"steps": 3, "first_saw": ["a"]}));
    let run = sequence_run(&node, "api").await;
    assert_eq!(run["id"], header(&h, "lambent-activation-id"));

    // Async through /v1.
    let (s, accepted) = node.invoke_async("three", r#"{"b": 2}"#).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let run = sequence_run(&node, "async").await;
    assert_eq!(run["id"], accepted["activation_id"]);

    // A topic subscription.
    post(&node, "/v1/topics", json!({"name": "news"})).await;
    post(
        &node,
        "/v1/topics/news/subscriptions",
        json!({"function": "three"}),
    )
    .await;
    post(&node, "/v1/topics/news/publish", json!({"message": "hi"})).await;
    sequence_run(&node, "sns").await;

    // A queue mapping.
    post(&node, "/v1/queues", json!({"name": "jobs"})).await;
    post(
        &node,
        "/v1/mappings",
        json!({"queue": "jobs", "function": "three", "batch_size": 1}),
    )
    .await;
    post(&node, "/v1/queues/jobs/messages", json!({"body": "work"})).await;
    sequence_run(&node, "sqs").await;

    // A schedule, every second.
    let (s, _, v) = node
        .send(
            Method::PUT,
            "/v1/schedules/tick",
            json!({"function": "three", "cron": "* * * * * *"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert!(s.is_success(), "{v}");
    sequence_run(&node, "schedule").await;
    let (s, _, _) = node
        .send(Method::DELETE, "/v1/schedules/tick", vec![])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // The sequence is listed as a function of runtime `sequence`, and as a sequence.
    let f = node.get_ok("/v1/functions/three").await;
    assert_eq!(f["runtime"], "sequence");
    assert_eq!(f["sequence"], json!(["step", "step", "step"]));
    let list = node.get_ok("/v1/sequences").await;
    assert_eq!(list["sequences"][0]["name"], "three");
    // Refusals, in the API's error shape.
    let (s, _, v) = node
        .send(
            Method::PUT,
            "/v1/sequences/empty",
            json!({"components": []}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["error"]["message"],
        "a sequence needs at least one function: name its components in order"
    );
    let (s, _, v) = node.send(Method::GET, "/v1/sequences/step", vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v["error"]["message"],
        "sequence 'step' does not exist in namespace 'default'"
    );
}
