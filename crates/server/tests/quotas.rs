//! A namespace's quotas and budget, each reached through a real node with real requests
//! (`/v1`, and boto3 for the AWS APIs: `tests/aws/quotas.py`), each answered with its
//! documented error, and nothing half-done afterwards: the concurrency limit (a `429` naming
//! `namespace_concurrency`; an async invocation over it waits and runs), the function count
//! and the storage quota (`QuotaExceeded`), a hard budget (`402 BudgetExhausted` for sync,
//! async, route and AWS Invoke invocations) and a soft one (a warning in `/v1/usage`, a gauge
//! in `/metrics`), and the operator's bills (`/v1/usage?by=namespace`, refused to a
//! namespace's key).

mod common;

use common::*;
use lambent_testkit::python::venv as python_venv;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const NS: &str = "team-q";

/// Sleeps `event["ms"]` milliseconds.
const SLEEPY_PY: &str = r#"
import time
def handler(event, context):
    time.sleep(event.get("ms", 0) / 1000)
    return {"slept": event.get("ms", 0)}
"#;

async fn call(
    node: &Node,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    node.call_as(key, method, path, body).await
}

async fn ok(node: &Node, key: &str, method: Method, path: &str, body: Value) -> Value {
    node.ok_as(key, method, path, body).await
}

/// Files of every object this node stores (its object data directory).
fn object_files(node: &Node) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| match e.file_type().is_ok_and(|t| t.is_dir()) {
                    true => count(&e.path()),
                    false => 1,
                })
                .sum()
        })
    }
    count(&node._data.path().join("objects"))
}

fn sleepy() -> Value {
    json!({"runtime": "python", "handler": "app.handler", "timeout": 30})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_quota_is_reached_and_answered_with_its_error() {
    let venv = tokio::task::spawn_blocking(|| python_venv(&["boto3"]));
    let node = node().await;
    let created = ok(
        &node,
        ADMIN,
        Method::POST,
        "/v1/namespaces",
        json!({"name": NS, "concurrency": 1, "max_functions": 2, "storage_quota_bytes": 2000}),
    )
    .await;
    let owner = created["owner_key"]["secret"].as_str().unwrap().to_string();
    let k = ok(
        &node,
        &owner,
        Method::POST,
        "/v1/keys",
        json!({"role": "owner"}),
    )
    .await;
    let access = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );

    // Functions: two fit, the third is refused and not created.
    for name in ["sleepy", "quick"] {
        let (s, v) = node
            .deploy_as(&owner, name, sleepy(), &[("app.py", SLEEPY_PY)])
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, v) = node
        .deploy_as(&owner, "third", sleepy(), &[("app.py", SLEEPY_PY)])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "QuotaExceeded");
    assert_eq!(v["error"]["quota"], "max_functions");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("quota of 2"),
        "{v}"
    );
    let listed = ok(&node, &owner, Method::GET, "/v1/functions", Value::Null).await;
    assert_eq!(listed["functions"].as_array().unwrap().len(), 2, "{listed}");

    // Concurrency: one invocation holds the namespace's only slot; another is refused with the
    // limit named, and an async one waits for the slot and runs.
    let (s, _, v) = node.invoke_as(&owner, "quick", "{}").await;
    assert_eq!(s, StatusCode::OK, "warm-up: {v}");
    let holder = {
        let (node_url, owner) = (node.url("/v1/functions/sleepy/invoke"), owner.clone());
        let http = node.http.clone();
        // Until it holds the slot (a probe below may hold it for a moment first).
        tokio::spawn(async move {
            loop {
                let status = http
                    .post(&node_url)
                    .bearer_auth(&owner)
                    .body(r#"{"ms": 2500}"#)
                    .send()
                    .await
                    .unwrap()
                    .status();
                if status != StatusCode::TOO_MANY_REQUESTS {
                    return status;
                }
            }
        })
    };
    let refused = eventually(10, "a 429 while sleepy holds the slot", || async {
        let (s, h, v) = node.invoke_as(&owner, "quick", "{}").await;
        (s == StatusCode::TOO_MANY_REQUESTS).then_some((h, v))
    })
    .await;
    let (headers, v) = refused;
    assert_eq!(v["error"]["code"], "Throttled", "{v}");
    assert_eq!(v["error"]["limit"], "namespace_concurrency", "{v}");
    assert_eq!(
        v["error"]["message"],
        format!("namespace {NS} is at its concurrency limit of 1 (namespace concurrency)")
    );
    assert_eq!(header(&headers, "retry-after"), "1");
    let (s, v) = call(
        &node,
        &owner,
        Method::POST,
        "/v1/functions/quick/invoke?async=true",
        json!({"queued": true}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let queued_id = v["activation_id"].as_str().unwrap().to_string();
    assert_eq!(holder.await.unwrap(), StatusCode::OK);
    eventually(
        30,
        "the queued invocation ran once the slot was free",
        || async {
            let (_, page) = call(
                &node,
                &owner,
                Method::GET,
                "/v1/activations?function=quick&status=success&limit=100",
                Value::Null,
            )
            .await;
            page["activations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"].as_str().unwrap_or("").starts_with(&queued_id))
                .then_some(())
        },
    )
    .await;

    // Storage (S3, DynamoDB, SQS) and the function count over the Lambda API, with boto3.
    // The embedded node's object data is on its disk (a cluster's is in NATS).
    let files_before = object_files(&node);
    let venv = venv.await.unwrap();
    let out = run_aws_client(
        &venv.join("bin/python"),
        &["quotas.py", "storage"],
        &aws_scripts_dir(),
        &node.url(""),
        (&access.0, &access.1),
        &[],
    );
    assert!(out.contains("storage ok"), "{out}");
    if node.cluster.is_none() {
        assert_eq!(
            object_files(&node),
            files_before + 1,
            "only the object that fit is stored: no orphan data of the refused writes"
        );
    }
    // Over /v1 too: a queue message that does not fit.
    ok(
        &node,
        &owner,
        Method::POST,
        "/v1/queues",
        json!({"name": "v1-q"}),
    )
    .await;
    let (s, v) = call(
        &node,
        &owner,
        Method::POST,
        "/v1/queues/v1-q/messages",
        json!({"body": "b".repeat(900)}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "QuotaExceeded", "{v}");

    // The operator's bills, which a namespace's key may not read.
    let bills = ok(
        &node,
        ADMIN,
        Method::GET,
        "/v1/usage?by=namespace",
        Value::Null,
    )
    .await;
    let row = bills["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["namespace"] == NS)
        .cloned()
        .unwrap_or_else(|| panic!("no bill of {NS}: {bills}"));
    assert_eq!(row["storage_bytes"], 1500, "{row}");
    assert_eq!(row["storage_quota_bytes"], 2000, "{row}");
    assert_eq!(row["functions"], 2, "{row}");
    assert!(row["invocations"].as_u64().unwrap() >= 3, "{row}");
    assert!(row["cost"].as_f64().unwrap() > 0.0, "{row}");
    let (s, v) = call(
        &node,
        &owner,
        Method::GET,
        "/v1/usage?by=namespace",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let own = ok(&node, &owner, Method::GET, "/v1/usage", Value::Null).await;
    assert!(
        own["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["key"].as_str().unwrap().starts_with(&format!("{NS}/"))),
        "a namespace's usage is its own: {own}"
    );

    // A soft budget (the `default` namespace's) only warns.
    let (s, v) = node
        .deploy("soft", sleepy(), &[("app.py", SLEEPY_PY)])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _, v) = node.invoke("soft", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ok(
        &node,
        ADMIN,
        Method::PATCH,
        "/v1/namespaces/default",
        json!({"monthly_budget_usd": 1e-9}),
    )
    .await;
    let usage = eventually(10, "a soft budget's warning", || async {
        let u = node.get_ok("/v1/usage").await;
        u["budget"]["warning"].is_string().then_some(u)
    })
    .await;
    assert_eq!(usage["budget"]["hard"], false, "{usage}");
    assert_eq!(usage["budget"]["exhausted"], false, "{usage}");
    let (s, _, v) = node.invoke("soft", "{}").await;
    assert_eq!(s, StatusCode::OK, "a soft budget refuses nothing: {v}");
    let metrics = eventually(10, "the budget gauge", || async {
        let r = node
            .http
            .get(node.url("/metrics"))
            .bearer_auth(KEY)
            .send()
            .await
            .unwrap();
        let text = r.text().await.unwrap();
        text.contains("lambent_namespace_budget_spent_ratio{namespace=\"default\"")
            .then_some(text)
    })
    .await;
    assert!(
        !metrics.contains(&format!("namespace=\"{NS}\"")),
        "own series only"
    );

    // A hard budget, once spent, refuses sync and async invocations (and Lambda's Invoke);
    // an event queued before keeps waiting instead of being lost.
    ok(
        &node,
        ADMIN,
        Method::PATCH,
        &format!("/v1/namespaces/{NS}"),
        json!({"monthly_budget_usd": 1e-9, "budget_hard": true}),
    )
    .await;
    let v = eventually(10, "402 once the hard budget is spent", || async {
        let (s, _, v) = node.invoke_as(&owner, "quick", "{}").await;
        (s == StatusCode::PAYMENT_REQUIRED).then_some(v)
    })
    .await;
    assert_eq!(v["error"]["code"], "BudgetExhausted", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hard monthly budget"),
        "{v}"
    );
    let (s, v) = call(
        &node,
        &owner,
        Method::POST,
        "/v1/functions/quick/invoke?async=true",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::PAYMENT_REQUIRED, "{v}");
    let usage = ok(&node, &owner, Method::GET, "/v1/usage", Value::Null).await;
    assert_eq!(usage["budget"]["exhausted"], true, "{usage}");
    ok(
        &node,
        &owner,
        Method::POST,
        "/v1/routes",
        json!({"method": "GET", "path": "/team-q/quick", "function": "quick"}),
    )
    .await;
    let r = node
        .http
        .get(node.url("/team-q/quick"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::PAYMENT_REQUIRED,
        "a route's invocation too"
    );
    let out = run_aws_client(
        &venv.join("bin/python"),
        &["quotas.py", "budget"],
        &aws_scripts_dir(),
        &node.url(""),
        (&access.0, &access.1),
        &[],
    );
    assert!(out.contains("budget ok"), "{out}");
    // Raising the budget lets invocations run again within a refresh or two.
    ok(
        &node,
        ADMIN,
        Method::PATCH,
        &format!("/v1/namespaces/{NS}"),
        json!({"monthly_budget_usd": 100.0}),
    )
    .await;
    eventually(
        10,
        "invocations run again under a raised budget",
        || async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (s, _, _) = node.invoke_as(&owner, "quick", "{}").await;
            (s == StatusCode::OK).then_some(())
        },
    )
    .await;
}
