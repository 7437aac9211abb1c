//! A data disk that fills up, and a store that another process holds locked: the writes that
//! cannot be kept answer `507 InsufficientStorage` (or `503 ServiceUnavailable` naming SQLite)
//! with a JSON error, nothing accepted before or around it is lost, the store stays intact, and
//! the node serves again by itself once space (or the lock) returns. The data dir is a small
//! tmpfs of its own (root mounts it), filled with one file.

mod common;

use common::*;
use lambent_testkit::tmpfs::Tmpfs;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Prints the event's id, so each accepted one can be found in the records.
const SINK_PY: &str = r#"
def handler(event, context):
    print("GOT " + str(event.get("id")))
    return {"id": event.get("id")}
"#;

async fn deploy_sink(node: &Node, name: &str) {
    let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    let (status, body) = node.deploy(name, settings, &[("app.py", SINK_PY)]).await;
    assert!(status.is_success(), "deploy {name}: {status} {body}");
}

/// Asserts the JSON error body of a refused write: its code, and a message naming `cause`.
fn assert_error(body: &Value, code: &str, cause: &str) {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains(cause), "{body}");
}

/// Waits until the activation `id` is recorded as a success.
async fn completed(node: &Node, id: &str) {
    eventually(60, &format!("activation {id} to succeed"), || async {
        let (s, _, v) = node
            .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
            .await;
        (s == StatusCode::OK && v["status"] == "success").then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_data_disk_answers_507_loses_nothing_and_recovers_when_space_returns() {
    let data = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount_on(data.path(), 96).expect("mount a tmpfs (needs root)");
    let mut node = node_in(data, |_| {}).await;
    deploy_sink(&node, "sink").await;
    let (s, _, v) = node.invoke("sink", r#"{"id": "warm"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    node.ok_as(KEY, Method::POST, "/v1/queues", json!({"name": "jobs"}))
        .await;
    let (s, v) = node.invoke_async("sink", r#"{"id": "before"}"#).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let mut accepted = vec![v["activation_id"].as_str().unwrap().to_string()];

    disk.fill().unwrap();

    // An upload of code needs the disk: refused, naming the cause.
    let (s, v) = node
        .upload(zip_of(&[("app.py", &"x = 1\n".repeat(20_000))]))
        .await;
    assert_eq!(s, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_error(&v, "InsufficientStorage", "disk is full");

    // Async invocations are accepted while SQLite has room in its pages, then refused with
    // 507; never a 500, and every one accepted runs later.
    let padding = "p".repeat(16 * 1024);
    let mut refused = None;
    for n in 0..2_000 {
        let payload = json!({"id": format!("full-{n}"), "pad": padding}).to_string();
        let (s, v) = node.invoke_async("sink", &payload).await;
        match s {
            StatusCode::ACCEPTED => accepted.push(v["activation_id"].as_str().unwrap().into()),
            StatusCode::INSUFFICIENT_STORAGE => {
                refused = Some(v);
                break;
            }
            other => panic!("async invoke on a full disk answered {other}: {v}"),
        }
    }
    let refused = refused.expect("a full disk never refused an async invocation");
    assert_error(&refused, "InsufficientStorage", "disk is full");
    let (s, v) = node
        .call_as(
            KEY,
            Method::POST,
            "/v1/queues/jobs/messages",
            json!({"body": padding}),
        )
        .await;
    assert_eq!(s, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_error(&v, "InsufficientStorage", "disk is full");

    // What needs no disk goes on: a warm invocation (its record waits in memory).
    let (s, _, v) = node.invoke("sink", r#"{"id": "while-full"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    disk.free().unwrap();

    // Space is back: the same writes succeed, with no restart.
    let (s, v) = node.upload(zip_of(&[("app.py", "x = 1\n")])).await;
    assert!(s.is_success(), "upload after freeing space: {s} {v}");
    let sent = node
        .ok_as(
            KEY,
            Method::POST,
            "/v1/queues/jobs/messages",
            json!({"body": "after"}),
        )
        .await;
    assert!(sent["messages"][0]["id"].is_string(), "{sent}");
    let (s, v) = node.invoke_async("sink", r#"{"id": "after"}"#).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    accepted.push(v["activation_id"].as_str().unwrap().into());
    for id in &accepted {
        completed(&node, id).await;
    }

    // The store is intact.
    node.stop().await;
    let db = rusqlite::Connection::open(node._data.path().join("lambent.db")).unwrap();
    let check: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(db);
    drop(node);
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_locked_by_another_process_answers_503_naming_sqlite_then_recovers() {
    let node = node().await;
    deploy_sink(&node, "sink").await;
    let path = node._data.path().join("lambent.db");
    let mut other = rusqlite::Connection::open(&path).unwrap();
    let lock = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();

    // The writer waits out its busy timeout (5 s), then refuses: the dependency is named.
    let (s, v) = node.invoke_async("sink", r#"{"id": "locked"}"#).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_error(&v, "ServiceUnavailable", "SQLite");

    lock.rollback().unwrap();
    drop(other);
    let (s, v) = node.invoke_async("sink", r#"{"id": "unlocked"}"#).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    completed(&node, v["activation_id"].as_str().unwrap()).await;
}
