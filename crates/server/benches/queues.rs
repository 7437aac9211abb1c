//! Queue throughput on a real node (full isolation, SQLite, the embedded Python runtime),
//! printed as a table with a baseline measured in the same run:
//!
//! - sending: messages/s accepted by `POST /v1/queues/{name}/messages` in batches of 10, one
//!   caller (each batch is on disk before it is acknowledged);
//! - an event-source mapping draining the queue into a warm Python no-op, with batches of 1 and
//!   of 10 (messages/s, from the mapping's creation until the queue is empty);
//! - baseline: sequential warm invokes of the same function through `POST …/invoke`
//!   (invocations/s): what one message per invocation would cost without a queue.
//!
//! Run: `cargo bench -p lambent-server --bench queues` (root needed). `LAMBENT_BENCH_N` sets the
//! number of messages per case (default 2000).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const NOOP: &str = "def handler(event, context):\n    return None\n";

async fn call(node: &common::Node, method: Method, path: &str, body: Value) -> Value {
    let (s, _, v) = node.send(method, path, body.to_string().into_bytes()).await;
    assert!(s.is_success(), "{path}: {s} {v}");
    v
}

/// Sends `n` messages in batches of 10; returns the time it took.
async fn fill(node: &common::Node, queue: &str, n: usize) -> Duration {
    let t = Instant::now();
    for b in 0..n / 10 {
        let messages: Vec<Value> = (0..10)
            .map(|i| json!({"body": format!("message {}", b * 10 + i)}))
            .collect();
        call(
            node,
            Method::POST,
            &format!("/v1/queues/{queue}/messages"),
            json!({ "messages": messages }),
        )
        .await;
    }
    t.elapsed()
}

/// Creates a mapping with `batch_size` and waits until it has emptied the queue.
async fn drain(node: &common::Node, queue: &str, batch_size: u32) -> Duration {
    let t = Instant::now();
    call(
        node,
        Method::POST,
        "/v1/mappings",
        json!({"queue": queue, "function": "noop", "batch_size": batch_size}),
    )
    .await;
    loop {
        let q = call(
            node,
            Method::GET,
            &format!("/v1/queues/{queue}"),
            Value::Null,
        )
        .await;
        if q["messages"] == json!({"visible": 0, "in_flight": 0, "delayed": 0}) {
            return t.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let n = support::samples(2000);
    support::block_on(async {
        let node = common::node().await;
        let (s, v) = node
            .deploy(
                "noop",
                json!({"runtime": "python3.12", "handler": "app.handler"}),
                &[("app.py", NOOP)],
            )
            .await;
        assert!(s.is_success(), "{v}");
        for _ in 0..50 {
            node.invoke("noop", "{}").await;
        }
        let t = Instant::now();
        for _ in 0..n {
            node.invoke("noop", "{}").await;
        }
        let direct = per_second(n, t.elapsed());

        let mut rows = Vec::new();
        for (queue, batch) in [("one", 1), ("ten", 10)] {
            call(&node, Method::POST, "/v1/queues", json!({"name": queue})).await;
            let sent = fill(&node, queue, n).await;
            if batch == 1 {
                rows.push((
                    "send, batches of 10, 1 caller".to_string(),
                    per_second(n, sent),
                ));
            }
            let drained = drain(&node, queue, batch).await;
            rows.push((
                format!("mapping drain, batch size {batch}"),
                per_second(n, drained),
            ));
        }

        let mut table = Table::new();
        table.set_header(["case", "n", "messages/s", "baseline", "baseline/s", "ratio"]);
        for (case, rate) in rows {
            table.add_row(vec![
                case,
                n.to_string(),
                format!("{rate:.0}"),
                "direct warm invoke, sequential".to_string(),
                format!("{direct:.0}"),
                format!("{:.2}x", rate / direct),
            ]);
        }
        println!("{table}");
    });
}
