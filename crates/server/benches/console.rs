//! The console's pages with 1,000,000 activation records: the server time (`Server-Timing`)
//! and the client's wall time of the overview (`GET /ui/api/overview`) and the function page
//! (`GET /ui/api/functions/{name}`) at each window (1 h, 24 h, 7 d), p50 and p99, against the
//! 300 ms p50 target. The records (20 functions over the last 7 days: 2 % errors, 0.5 %
//! throttles, 3 % cold starts with their init phases) are inserted straight through the store
//! (the node's own SQLite file, or its PostgreSQL database with `LAMBENT_TEST_CLUSTER=1`) in
//! batches, which also shows what the rollups cost the insert.
//!
//! Run: `cargo bench -p lambent-server --bench console` (root needed). `LAMBENT_BENCH_RECORDS`
//! sets the number of records (default 1,000,000), `LAMBENT_BENCH_N` the samples per case
//! (default 40).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use lambent_core::{Activation, ActivationStatus, Birth, ColdReason, InitBreakdown};
use lambent_store::Store;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{ms, stats};

const FUNCTIONS: usize = 20;
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

fn record(rng: &mut rand::rngs::StdRng, i: usize, now: i64) -> Activation {
    let f = i % FUNCTIONS;
    let roll: f64 = rng.gen();
    let status = if roll < 0.005 {
        ActivationStatus::Throttled
    } else if roll < 0.025 {
        ActivationStatus::FunctionError
    } else {
        ActivationStatus::Success
    };
    let cold = status != ActivationStatus::Throttled && rng.gen::<f64>() < 0.03;
    // Log-normal-ish durations around a per-function median (1 ms … 400 ms).
    let median = 1000.0 * 1.35f64.powi(f as i32);
    let duration_us = (median * (rng.gen::<f64>() * 2.0 - 1.0 + rng.gen::<f64>()).exp()) as u64;
    let memory_mb = [128, 256, 512, 1024][f % 4];
    let start_ms = now - rng.gen_range(0..WEEK_MS);
    let init = cold.then(|| InitBreakdown {
        birth: Birth::Zygote,
        sandbox_us: rng.gen_range(800..2000),
        runtime_us: rng.gen_range(1000..5000),
        import_us: Some(rng.gen_range(2000..80_000)),
    });
    Activation {
        id: format!("bench-{i:08}"),
        namespace: "default".into(),
        function: format!("fn-{f:02}"),
        revision: 1,
        trigger: "api".into(),
        start_ms,
        end_ms: start_ms + (duration_us / 1000) as i64 + 1,
        duration_us,
        billed_ms: lambent_core::activation::billed_ms(duration_us),
        memory_mb,
        max_memory_bytes: Some(rng.gen_range(20..(u64::from(memory_mb) / 2)) << 20),
        cold,
        cold_reason: cold.then_some(ColdReason::ScaleUp),
        init_us: init.map(|i| i.sandbox_us + i.runtime_us + i.import_us.unwrap_or(0) + 300),
        init,
        status,
        error_type: (status == ActivationStatus::FunctionError).then(|| "ValueError".into()),
        error_message: None,
        logs: "START\nEND\nREPORT\n".into(),
        node: "local".into(),
        parent: None,
        steps: Vec::new(),
        trace: None,
    }
}

/// The node's store, opened beside it.
async fn store_of(node: &common::Node) -> Arc<dyn Store> {
    match &node.cluster {
        Some((url, _)) => Arc::new(
            lambent_store_postgres::PgStore::connect(url)
                .await
                .expect("the node's PostgreSQL"),
        ),
        None => Arc::new(
            lambent_store_sqlite::SqliteStore::open(&node._data.path().join("lambent.db")).unwrap(),
        ),
    }
}

/// One request's (server time, wall time).
async fn timed(node: &common::Node, cookie: &str, path: &str) -> (Duration, Duration) {
    let t = Instant::now();
    let r = node
        .http
        .get(node.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    let server = r
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("app;dur="))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a Server-Timing header");
    let _ = r.bytes().await.unwrap();
    (Duration::from_secs_f64(server / 1000.0), t.elapsed())
}

fn main() {
    let records: usize = support::env_or("LAMBENT_BENCH_RECORDS", 1_000_000);
    let n = support::samples(40);
    support::block_on(async {
        let node = common::node().await;
        // Two of the functions are deployed; the rest only have history.
        for name in ["fn-00", "fn-01"] {
            let (s, v) = node
                .deploy(
                    name,
                    json!({"runtime": "python3.12", "handler": "app.handler"}),
                    &[("app.py", "def handler(e, c):\n    return e\n")],
                )
                .await;
            assert!(s.is_success(), "{v}");
        }
        let store = store_of(&node).await;
        let now = lambent_core::now_ms();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let started = Instant::now();
        let batch = 5000;
        for from in (0..records).step_by(batch) {
            let chunk: Vec<_> = (from..(from + batch).min(records))
                .map(|i| record(&mut rng, i, now))
                .collect();
            store.insert_activations(&chunk).await.unwrap();
        }
        let insert = started.elapsed();

        let signed_in = node
            .http
            .post(node.url("/ui/api/session"))
            .json(&json!({ "key": common::KEY }))
            .send()
            .await
            .unwrap();
        let cookie = signed_in
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("; ");

        let mut table = Table::new();
        table.set_header([
            "page",
            "window",
            "server p50 ms",
            "server p99 ms",
            "wall p50 ms",
            "wall p99 ms",
            "p50 ≤ 300 ms",
        ]);
        let mut worst = Duration::ZERO;
        for window in ["1h", "24h", "7d"] {
            for (page, path) in [
                ("overview", format!("/ui/api/overview?window={window}")),
                (
                    "function",
                    format!("/ui/api/functions/fn-07?window={window}"),
                ),
            ] {
                timed(&node, &cookie, &path).await; // warm the page cache
                let mut server = Vec::with_capacity(n);
                let mut wall = Vec::with_capacity(n);
                for _ in 0..n {
                    let (s, w) = timed(&node, &cookie, &path).await;
                    server.push(s);
                    wall.push(w);
                }
                let (s, w) = (stats(server), stats(wall));
                worst = worst.max(s.p50);
                table.add_row([
                    page.to_string(),
                    window.to_string(),
                    ms(s.p50),
                    ms(s.p99),
                    ms(w.p50),
                    ms(w.p99),
                    (s.p50 <= Duration::from_millis(300)).to_string(),
                ]);
            }
        }
        let backend = if node.cluster.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        };
        let report = format!(
            "console pages with {records} activation records ({backend}, {FUNCTIONS} functions over 7 days, {n} samples each)\n\
             inserted in {:.1} s ({:.0} records/s, rollups included)\n{table}\n\
             worst server p50: {} ms (target 300 ms)",
            insert.as_secs_f64(),
            records as f64 / insert.as_secs_f64(),
            ms(worst),
        );
        support::write_report("console-bench.txt", &report);
    });
}
