//! Scaling, limits, activation records and metering end to end, against a real node. Needs
//! root (full isolation), as CI has.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SLEEPY_PY: &str = r#"
import os, time
SANDBOX = os.urandom(8).hex()  # every sandbox's runtime is PID 1 of its own namespace
def handler(event, context):
    if event.get("exit"):
        os._exit(1)
    time.sleep(event.get("sleep", 0))
    return {"sandbox": SANDBOX}
"#;

fn python(extra: Value) -> Value {
    let mut settings = json!({"runtime": "python", "handler": "app.handler"});
    for (k, v) in extra.as_object().unwrap() {
        settings[k] = v.clone();
    }
    settings
}

async fn sandboxes(node: &Node, name: &str) -> Value {
    let (_, _, f) = node
        .send(Method::GET, &format!("/v1/functions/{name}"), vec![])
        .await;
    f["sandboxes"].clone()
}

async fn activations(node: &Node, name: &str) -> Vec<Value> {
    let (status, _, page) = node
        .send(
            Method::GET,
            &format!("/v1/activations?function={name}&limit=1000"),
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    page["activations"].as_array().unwrap().clone()
}

fn count_status(records: &[Value], status: &str) -> usize {
    records.iter().filter(|a| a["status"] == status).count()
}

/// Runs `n` invocations of `name` at once; returns (status, headers, body) of each.
async fn burst(
    node: &Arc<Node>,
    name: &str,
    n: usize,
    payload: &str,
) -> Vec<(StatusCode, String, Value)> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let (node, name, payload) = (node.clone(), name.to_string(), payload.to_string());
            tokio::spawn(async move {
                let (s, h, v) = node.invoke(&name, &payload).await;
                (s, header(&h, "lambent-cold").to_string(), v)
            })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_out_in_parallel_and_stays_warm() {
    let node = Arc::new(node().await);
    let (s, _) = node
        .deploy("burst", python(json!({})), &[("app.py", SLEEPY_PY)])
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let started = Instant::now();
    let results = burst(&node, "burst", 20, r#"{"sleep": 0.5}"#).await;
    let wall = started.elapsed();
    assert!(
        results.iter().all(|(s, _, _)| *s == StatusCode::OK),
        "{results:?}"
    );
    let pids: std::collections::HashSet<_> = results
        .iter()
        .map(|(_, _, v)| v["sandbox"].to_string())
        .collect();
    assert!(
        pids.len() >= 4,
        "served by several sandboxes, got {}",
        pids.len()
    );
    assert!(
        wall < Duration::from_secs(5),
        "20 × 0.5 s ran in parallel: {wall:?}"
    );
    let warm = sandboxes(&node, "burst").await;
    assert_eq!(warm["busy"], 0);
    // A call whose cold start was overtaken by a sandbox released meanwhile ran warm there;
    // the sandbox it started joined the idle list unused.
    let idle = warm["idle"].as_u64().unwrap() as usize;
    assert!(idle >= pids.len(), "they stay warm: {idle} idle");

    let records = activations(&node, "burst").await;
    assert_eq!(records.len(), 20, "one record per invocation");
    assert_eq!(count_status(&records, "success"), 20);
    let cold: Vec<_> = records.iter().filter(|a| a["cold"] == true).collect();
    assert!(
        cold.len() <= pids.len() && cold.len() >= 4,
        "{} cold, {} sandboxes served",
        cold.len(),
        pids.len()
    );
    assert!(
        cold.iter().any(|a| a["cold_reason"] == "scale_up"),
        "{cold:?}"
    );
}

/// A function whose initialization takes 2 s; an invocation holds its sandbox `hold` seconds.
const SLOW_INIT_PY: &str = r#"
import os, time
time.sleep(2)
SANDBOX = os.urandom(8).hex()
def handler(event, context):
    time.sleep(event.get("hold", 0))
    return {"sandbox": SANDBOX}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_on_cold_starts_take_a_warm_sandbox_released_meanwhile() {
    let node = Arc::new(node().await);
    let (s, _) = node
        .deploy("slow", python(json!({})), &[("app.py", SLOW_INIT_PY)])
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, first) = node.invoke("slow", "{}").await;
    assert_eq!(s, StatusCode::OK, "{first}");

    // Six at once on one warm sandbox, each holding it 150 ms: all six arrive while the first
    // holds it, so five find none idle and start a cold start each (2 s), but the warm one,
    // free again after each call, serves them all first (6 x 150 ms, well under 2 s).
    let started = Instant::now();
    let results = burst(&node, "slow", 6, r#"{"hold": 0.15}"#).await;
    let wall = started.elapsed();
    assert!(
        results.iter().all(|(s, cold, v)| *s == StatusCode::OK
            && cold == "false"
            && v["sandbox"] == first["sandbox"]),
        "{results:?}"
    );
    assert!(
        wall < Duration::from_millis(1950),
        "no call waited for a 2 s cold start: {wall:?}"
    );
    // The cold starts they began finish on their own and wait idle for the next burst.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let idle = sandboxes(&node, "slow").await["idle"].as_u64().unwrap();
        if idle == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "{idle} idle sandboxes, not 6");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sandboxes_go_after_the_keep_alive_down_to_zero() {
    let node = node().await;
    let (s, _) = node
        .deploy(
            "brief",
            python(json!({"keep_alive": 1})),
            &[("app.py", SLEEPY_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    node.invoke("brief", "{}").await;
    assert_eq!(
        sandboxes(&node, "brief").await,
        json!({"idle": 1, "busy": 0})
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandboxes(&node, "brief").await["idle"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the idle sandbox was not reclaimed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, h, _) = node.invoke("brief", "{}").await;
    assert_eq!(header(&h, "lambent-cold"), "true");
    let records = activations(&node, "brief").await;
    assert_eq!(records[0]["cold_reason"], "keep_alive_expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_keeps_sandboxes_ready_and_replaces_lost_ones() {
    let node = node().await;
    let (s, f) = node
        .deploy(
            "ready",
            python(json!({"provisioned_concurrency": 2, "keep_alive": 1})),
            &[("app.py", SLEEPY_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    assert_eq!(f["sandboxes"], json!({"idle": 2, "busy": 0}), "{f}");
    let (_, h, _) = node.invoke("ready", "{}").await;
    assert_eq!(
        header(&h, "lambent-cold"),
        "false",
        "the first invocation after deploy is warm"
    );

    // Past the keep-alive, provisioned sandboxes stay.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        sandboxes(&node, "ready").await,
        json!({"idle": 2, "busy": 0})
    );

    // One dies; it is replaced.
    let (_, h, _) = node.invoke("ready", r#"{"exit": true}"#).await;
    assert_eq!(header(&h, "lambent-function-error"), "Runtime.ExitError");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sandboxes(&node, "ready").await["idle"] != 2 {
        assert!(
            Instant::now() < deadline,
            "the lost provisioned sandbox was not replaced"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_throttles_exactly_the_excess() {
    let node = Arc::new(node().await);
    let (s, _) = node
        .deploy(
            "capped",
            python(json!({"reserved_concurrency": 2})),
            &[("app.py", SLEEPY_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let results = burst(&node, "capped", 5, r#"{"sleep": 1}"#).await;
    let throttled: Vec<_> = results
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(throttled.len(), 3, "{results:?}");
    for (_, _, body) in &throttled {
        assert_eq!(body["error"]["code"], "Throttled");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("reserved concurrency of 2"),
            "{body}"
        );
    }
    let records = activations(&node, "capped").await;
    assert_eq!(
        records.len(),
        5,
        "one record per invocation, throttled ones too"
    );
    assert_eq!(
        (
            count_status(&records, "success"),
            count_status(&records, "throttled")
        ),
        (2, 3)
    );
    assert!(records
        .iter()
        .filter(|a| a["status"] == "throttled")
        .all(|a| a["billed_ms"] == 0));

    // Reservations are carved out of the namespace's limit.
    let (s, _, v) = node
        .send(Method::PUT, "/v1/functions/greedy", {
            let (_, code) = node.upload(zip_of(&[("app.py", SLEEPY_PY)])).await;
            python(json!({"reserved_concurrency": 1000, "code_sha256": code["sha256"]}))
                .to_string()
                .into_bytes()
        })
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_evicts_lru_idle_sandboxes_then_throttles() {
    let node = Arc::new(
        node_with(|o| {
            o.memory_budget_mb = Some(256);
            o.queue_timeout = Duration::from_millis(300);
        })
        .await,
    );
    for name in ["a", "b", "c"] {
        let (s, _) = node
            .deploy(name, python(json!({})), &[("app.py", SLEEPY_PY)])
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    node.invoke("a", "{}").await;
    node.invoke("b", "{}").await;
    let (s, h, _) = node.invoke("c", "{}").await;
    assert_eq!((s, header(&h, "lambent-cold")), (StatusCode::OK, "true"));
    assert_eq!(
        sandboxes(&node, "a").await["idle"],
        0,
        "a was least recently used"
    );
    assert_eq!(sandboxes(&node, "b").await["idle"], 1);
    let (_, h, _) = node.invoke("a", "{}").await;
    assert_eq!(header(&h, "lambent-cold"), "true");
    assert_eq!(activations(&node, "a").await[0]["cold_reason"], "evicted");

    // Two busy sandboxes fill the budget: a third function waits, then gets a 429.
    let busy = burst(&node, "b", 2, r#"{"sleep": 1.5}"#);
    let throttled = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        node.invoke("c", "{}").await
    };
    let (busy, (s, _, v)) = tokio::join!(busy, throttled);
    assert!(busy.iter().all(|(s, _, _)| *s == StatusCode::OK));
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("memory budget"),
        "{v}"
    );
    let (used, budget) = {
        let (_, _, m) = node.send_as(ADMIN, Method::GET, "/metrics", vec![]).await;
        let text = m.as_str().unwrap().to_string();
        let value = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap()
                .to_string()
        };
        (
            value("lambent_memory_used_mb"),
            value("lambent_memory_budget_mb"),
        )
    };
    assert_eq!(budget, "256");
    assert!(used.parse::<u64>().unwrap() <= 256);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_adds_up_to_the_activation_records_and_metrics_count_them() {
    let node = node().await;
    let (s, _) = node
        .deploy(
            "metered",
            python(json!({"memory": 512})),
            &[("app.py", SLEEPY_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    for payload in [r#"{"sleep": 0.05}"#, "{}", "{}", r#"{"exit": true}"#] {
        node.invoke("metered", payload).await;
    }
    let records = activations(&node, "metered").await;
    assert_eq!(records.len(), 4);
    let billed: u64 = records
        .iter()
        .map(|a| a["billed_ms"].as_u64().unwrap())
        .sum();
    let gb_s = billed as f64 / 1000.0 * 512.0 / 1024.0;

    let (status, _, usage) = node
        .send(Method::GET, "/v1/usage?by=function", vec![])
        .await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let row = &usage["rows"][0];
    assert_eq!(row["key"], "default/metered");
    assert_eq!(row["invocations"], 4);
    assert_eq!(row["errors"], 1);
    assert_eq!(
        row["cold_starts"].as_u64(),
        Some(records.iter().filter(|a| a["cold"] == true).count() as u64)
    );
    assert_eq!(row["billed_ms"].as_u64(), Some(billed));
    assert!((row["gb_seconds"].as_f64().unwrap() - gb_s).abs() < 1e-9);
    let cost = 4.0 * 0.0000002 + gb_s * 0.0000166667;
    assert!(
        (row["cost"].as_f64().unwrap() - cost).abs() < 1e-12,
        "{row}"
    );
    let advice = &usage["rightsizing"][0];
    assert_eq!(advice["memory_mb"], 512);
    assert!(
        advice["recommended_mb"].as_u64().unwrap() < 512,
        "a sleeping python needs far less: {advice}"
    );

    let (status, _, text) = node.send_as(ADMIN, Method::GET, "/metrics", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains(r#"lambent_invocations_total{namespace="default",function="metered",status="success"} 3"#), "{text}");
    assert!(text.contains(r#"lambent_invocations_total{namespace="default",function="metered",status="function_error"} 1"#));
    assert!(text.contains("lambent_cold_starts_total{"));
    assert!(text.contains("lambent_init_duration_seconds_bucket{"));
    assert!(text.contains(r#"lambent_sandboxes{state="idle"}"#));

    let anonymous = node.http.get(node.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}
