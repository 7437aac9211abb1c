//! Asynchronous invocation throughput on a real node (full isolation, SQLite in WAL), printed
//! as a table beside its baseline measured in the same run: the synchronous invoke throughput
//! of the same Python function with the same number of concurrent callers.
//!
//! - accepted: events/s answered `202` (each durably committed first, in group commits);
//! - completed: events/s from the first submission until the queue is empty (every event run
//!   and its activation record written).
//!
//! Run: `cargo bench -p lambent-server --bench async_invoke` (root needed). `LAMBENT_BENCH_N`
//! sets the events per run (default 2000), `LAMBENT_BENCH_CALLERS` the concurrent callers
//! (default 64).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const NOOP_PY: &str = "def handler(event, context):\n    return event\n";

/// Sends `n` requests with `callers` concurrent callers; `each` makes one. Returns the time.
async fn drive<F, Fut>(n: usize, callers: usize, each: F) -> Duration
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let each = Arc::new(each);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (next, each) = (next.clone(), each.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    each().await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    started.elapsed()
}

fn main() {
    let n: usize = support::env_or("LAMBENT_BENCH_N", 2000);
    let callers: usize = support::env_or("LAMBENT_BENCH_CALLERS", 64);
    support::block_on(async {
        let node = Arc::new(node().await);
        let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
        let (s, v) = node.deploy("noop", settings, &[("app.py", NOOP_PY)]).await;
        assert!(s.is_success(), "{v}");

        // Warm-up: enough sandboxes for the callers, both paths.
        let warm = node.clone();
        drive(callers * 4, callers, move || {
            let node = warm.clone();
            async move {
                let (s, _, _) = node.invoke("noop", "{}").await;
                assert_eq!(s, StatusCode::OK);
            }
        })
        .await;

        let sync_node = node.clone();
        let sync = drive(n, callers, move || {
            let node = sync_node.clone();
            async move {
                let (s, h, _) = node.invoke("noop", "{}").await;
                assert_eq!(
                    (s, header(&h, "lambent-status")),
                    (StatusCode::OK, "success")
                );
            }
        })
        .await;

        let async_node = node.clone();
        let started = Instant::now();
        let accepted = drive(n, callers, move || {
            let node = async_node.clone();
            async move {
                let (s, v) = node.invoke_async("noop", "{}").await;
                assert_eq!(s, StatusCode::ACCEPTED, "{v}");
            }
        })
        .await;
        loop {
            let (_, _, v) = node.send(Method::GET, "/v1/async", vec![]).await;
            if v["pending"] == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let completed = started.elapsed();
        let page = node
            .get_ok("/v1/activations?function=noop&status=success&limit=1")
            .await;
        assert_eq!(page["activations"][0]["trigger"], "async");

        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let sync_rate = rate(sync);
        let mut table = Table::new();
        table.set_header([
            "Python no-op, concurrent callers",
            "events",
            "seconds",
            "events/s",
            "ratio to sync invoke",
        ]);
        for (label, d) in [
            ("sync invoke (baseline)", sync),
            ("async: accepted (202, durable)", accepted),
            ("async: completed (run + recorded)", completed),
        ] {
            table.add_row(vec![
                format!("{label}, {callers}"),
                n.to_string(),
                format!("{:.2}", d.as_secs_f64()),
                format!("{:.0}", rate(d)),
                format!("{:.2}", rate(d) / sync_rate),
            ]);
        }
        println!("{table}");
    });
}
