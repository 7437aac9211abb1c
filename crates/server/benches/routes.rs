//! HTTP route latency on a real node (full isolation, SQLite, the embedded Python runtime),
//! printed as a table with baselines measured in the same run, requests interleaved:
//!
//! - `GET /items/{id}?q=…` through a route (route table match, the API Gateway v2 event, the
//!   response mapping) against `POST /v1/functions/{name}/invoke` of the same warm function;
//! - an unrouted path (`404 {"message":"Not Found"}`: the route table miss alone) against
//!   `GET /healthz` (the server's plain round trip).
//!
//! Run: `cargo bench -p lambent-server --bench routes` (root needed). `LAMBENT_BENCH_N` sets the
//! number of requests per case (default 1000).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{ms, stats};

/// Answers as an HTTP route would, and as little else as possible.
const HANDLER: &str = "def handler(event, context):\n    \
    return {'statusCode': 200, 'headers': {'content-type': 'text/plain'}, 'body': 'ok'}\n";

async fn timed(req: reqwest::RequestBuilder, expect: StatusCode) -> Duration {
    let t = Instant::now();
    let r = req.send().await.unwrap();
    let status = r.status();
    let _ = r.bytes().await.unwrap();
    assert_eq!(status, expect);
    t.elapsed()
}

fn main() {
    let n = support::samples(1000);
    support::block_on(async {
        let node = common::node().await;
        let (s, v) = node
            .deploy(
                "items",
                json!({"runtime": "python3.12", "handler": "app.handler"}),
                &[("app.py", HANDLER)],
            )
            .await;
        assert!(s.is_success(), "{v}");
        let (s, _, v) = node
            .send(
                Method::POST,
                "/v1/routes",
                json!({"method": "GET", "path": "/items/{id}", "function": "items"})
                    .to_string()
                    .into_bytes(),
            )
            .await;
        assert!(s.is_success(), "{v}");

        let http = &node.http;
        let route = || http.get(node.url("/items/42?q=route&page=2"));
        let direct = || {
            http.post(node.url("/v1/functions/items/invoke"))
                .bearer_auth(common::KEY)
                .body("{}")
        };
        let unrouted = || http.get(node.url("/nothing/here"));
        let health = || http.get(node.url("/healthz"));

        for _ in 0..50 {
            timed(route(), StatusCode::OK).await;
            timed(direct(), StatusCode::OK).await;
        }
        let mut samples: [Vec<Duration>; 4] = Default::default();
        for _ in 0..n {
            samples[0].push(timed(route(), StatusCode::OK).await);
            samples[1].push(timed(direct(), StatusCode::OK).await);
            samples[2].push(timed(unrouted(), StatusCode::NOT_FOUND).await);
            samples[3].push(timed(health(), StatusCode::OK).await);
        }
        for s in &mut samples {
            s.sort();
        }
        let mut table = Table::new();
        table.set_header([
            "case",
            "n",
            "p50 ms",
            "p99 ms",
            "baseline",
            "baseline p50 ms",
            "baseline p99 ms",
            "ratio p50",
        ]);
        let rows = [
            (
                "route GET /items/{id} (warm python)",
                0,
                "POST /v1/functions/items/invoke",
                1,
            ),
            ("unrouted path (404)", 2, "GET /healthz", 3),
        ];
        for (case, i, base, j) in rows {
            let (a, b) = (stats(samples[i].clone()), stats(samples[j].clone()));
            let ratio = a.p50.as_secs_f64() / b.p50.as_secs_f64();
            table.add_row(vec![
                case.to_string(),
                a.n.to_string(),
                ms(a.p50),
                ms(a.p99),
                base.to_string(),
                ms(b.p50),
                ms(b.p99),
                format!("{ratio:.2}x"),
            ]);
        }
        println!("{table}");
    });
}
