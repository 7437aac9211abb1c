//! What orchestration costs on a real node (full isolation, SQLite, the compiled `provided`
//! echo function), requests interleaved, baselines measured in the same run:
//!
//! - **Express, per Task state**: `StartSyncExecution` (through `/v1/workflows/…/executions`
//!   with `sync`) of a 1-Task and a 5-Task machine, against a direct warm invoke of the same
//!   function and an API round trip that runs nothing (`GET /v1/workflows/{name}`). The added
//!   latency per Task is `(p50(5 Tasks) − p50(1 Task)) / 4 − (p50(invoke) − p50(round trip))`:
//!   the slope per Task minus what the function's own invocation costs inside the node.
//! - **Standard, StartExecution → first state**: from just before the request leaves to the
//!   first `…StateEntered` event's timestamp (same host clock), which includes committing the
//!   execution (StartExecution answers once it is durable); and StartExecution's own round trip.
//!
//! Run: `cargo bench -p lambent-server --bench workflows` (root needed). `LAMBENT_BENCH_N` sets
//! the number of samples per case (default 300).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{echo_runtime, ms, stats, zip_of};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:default:function:echo";

/// A machine of `tasks` Task states calling the echo function in a row.
fn tasks(tasks: usize) -> Value {
    let mut states = serde_json::Map::new();
    for i in 0..tasks {
        let mut s = json!({"Type": "Task", "Resource": LAMBDA});
        if i + 1 == tasks {
            s["End"] = json!(true);
        } else {
            s["Next"] = json!(format!("T{}", i + 1));
        }
        states.insert(format!("T{i}"), s);
    }
    json!({"StartAt": "T0", "States": states})
}

async fn timed(node: &common::Node, method: Method, path: &str, body: &str) -> (Duration, Value) {
    let t = Instant::now();
    let (s, _, v) = node.send(method, path, body.as_bytes().to_vec()).await;
    let elapsed = t.elapsed();
    assert!(s.is_success(), "{path}: {s} {v}");
    (elapsed, v)
}

fn epoch_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128
}

fn main() {
    let n = support::samples(300);
    support::block_on(async {
        let node = common::node().await;
        let (s, code) = node.upload(zip_of(&[("bootstrap", &echo_runtime())])).await;
        assert!(s.is_success(), "{code}");
        let settings =
            json!({"runtime": "provided", "handler": "echo", "code_sha256": code["sha256"]});
        let (s, _, v) = node
            .send(
                Method::PUT,
                "/v1/functions/echo",
                settings.to_string().into_bytes(),
            )
            .await;
        assert!(s.is_success(), "{v}");
        let pass = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
        for (name, kind, definition) in [
            ("one", "EXPRESS", tasks(1)),
            ("five", "EXPRESS", tasks(5)),
            ("durable", "STANDARD", pass),
        ] {
            let body = json!({"type": kind, "definition": definition}).to_string();
            timed(&node, Method::PUT, &format!("/v1/workflows/{name}"), &body).await;
        }
        let sync = r#"{"input": {"n": 1}, "sync": true}"#;
        let start = |name: &'static str| {
            let node = &node;
            async move {
                let path = format!("/v1/workflows/{name}/executions");
                let (t, v) = timed(node, Method::POST, &path, sync).await;
                assert_eq!(v["status"], "SUCCEEDED", "{v}");
                t
            }
        };
        let invoke = || {
            timed(
                &node,
                Method::POST,
                "/v1/functions/echo/invoke",
                r#"{"n": 1}"#,
            )
        };
        let noop = || timed(&node, Method::GET, "/v1/workflows/one", "");
        // Standard: the time to the first state entered, read from the history.
        let durable = |i: usize| {
            let node = &node;
            async move {
                let body = json!({"input": {}, "name": format!("run-{i}")}).to_string();
                let sent = epoch_ns();
                let (round_trip, _) = timed(
                    node,
                    Method::POST,
                    "/v1/workflows/durable/executions",
                    &body,
                )
                .await;
                let path = format!("/v1/workflows/durable/executions/run-{i}/history");
                let history = common::eventually(10, "the first state", || async {
                    let (_, _, v) = node.send(Method::GET, &path, Vec::new()).await;
                    (v["execution"]["status"] == "SUCCEEDED").then_some(v)
                })
                .await;
                let entered = history["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["type"] == "PassStateEntered")
                    .expect("the first state's event")["timestamp"]
                    .as_f64()
                    .unwrap();
                let first = ((entered * 1e9) as i128 - sent).max(0) as u64;
                (round_trip, Duration::from_nanos(first))
            }
        };

        for i in 0..30 {
            invoke().await;
            start("one").await;
            start("five").await;
            durable(1_000_000 + i).await;
        }
        let mut samples: [Vec<Duration>; 6] = Default::default();
        for i in 0..n {
            samples[0].push(start("one").await);
            samples[1].push(start("five").await);
            samples[2].push(invoke().await.0);
            samples[3].push(noop().await.0);
            let (round_trip, first) = durable(i).await;
            samples[4].push(round_trip);
            samples[5].push(first);
        }
        let [one, five, direct, rtt, start_rt, first] = samples.map(stats);
        let slope = (five.p50.as_secs_f64() - one.p50.as_secs_f64()) / 4.0;
        let inside = direct.p50.as_secs_f64() - rtt.p50.as_secs_f64();
        let added = Duration::from_secs_f64((slope - inside).max(0.0));

        let mut table = Table::new();
        table.set_header(["case", "n", "p50 ms", "p99 ms"]);
        for (case, s) in [
            ("Express sync, 1 Task (echo)", &one),
            ("Express sync, 5 Tasks (echo)", &five),
            ("baseline: direct warm invoke of echo", &direct),
            ("baseline: API round trip (GET /v1/workflows/one)", &rtt),
            ("Standard StartExecution round trip (committed)", &start_rt),
            ("Standard StartExecution → first state entered", &first),
        ] {
            table.add_row(vec![
                case.to_string(),
                s.n.to_string(),
                ms(s.p50),
                ms(s.p99),
            ]);
        }
        println!("{table}");
        println!(
            "added latency per Task state (Express): {} ms p50 = slope {} ms per Task − a warm \
             invoke inside the node {} ms (target ≤ 1 ms)",
            ms(added),
            ms(Duration::from_secs_f64(slope.max(0.0))),
            ms(Duration::from_secs_f64(inside.max(0.0)))
        );
        println!(
            "Standard StartExecution → first state: {} ms p50 (target ≤ 3 ms)",
            ms(first.p50)
        );
    });
}
