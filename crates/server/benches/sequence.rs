//! Sequences on a real node (full isolation, SQLite), printed as a table with baselines
//! measured in the same run, requests interleaved: one invoke of a 10-step sequence of the same
//! warm function against 10 direct invokes of that function in a row (each its own
//! `POST /v1/functions/{name}/invoke`), for the compiled `provided` echo runtime and a Python
//! function returning its event. The sequence saves nine HTTP round trips and pays for its own
//! record and one registry lookup per step.
//!
//! Run: `cargo bench -p lambent-server --bench sequence` (root needed). `LAMBENT_BENCH_N` sets
//! the number of samples per case (default 300).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::Table;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};
use support::{echo_runtime, ms, stats, zip_of};

const STEPS: usize = 10;

/// Invokes `name` once; its latency.
async fn invoke(node: &common::Node, name: &str) -> Duration {
    let t = Instant::now();
    let r = node
        .http
        .post(node.url(&format!("/v1/functions/{name}/invoke")))
        .bearer_auth(common::KEY)
        .body(r#"{"n": 1}"#)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let outcome = r.headers().get("lambent-status").cloned();
    let _ = r.bytes().await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        outcome.as_ref().map(|v| v.to_str().unwrap()),
        Some("success")
    );
    t.elapsed()
}

/// Deploys `name` from `zip` and a sequence `<name>-x10` of it `STEPS` times.
async fn deploy(node: &common::Node, name: &str, settings: serde_json::Value, zip: Vec<u8>) {
    let (s, code) = node.upload(zip).await;
    assert!(s.is_success(), "{code}");
    let mut body = settings;
    body["code_sha256"] = code["sha256"].clone();
    let (s, _, v) = node
        .send(
            Method::PUT,
            &format!("/v1/functions/{name}"),
            body.to_string().into_bytes(),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let components = vec![name; STEPS];
    let (s, _, v) = node
        .send(
            Method::PUT,
            &format!("/v1/sequences/{name}-x{STEPS}"),
            json!({ "components": components }).to_string().into_bytes(),
        )
        .await;
    assert!(s.is_success(), "{v}");
}

fn main() {
    let n = support::samples(300);
    support::block_on(async {
        let node = common::node().await;
        let python = b"def handler(event, context):\n    return event\n".as_slice();
        let cases = [
            (
                "provided (compiled echo)",
                "echo",
                json!({"runtime": "provided", "handler": "bootstrap"}),
                zip_of(&[("bootstrap", echo_runtime().as_slice())]),
            ),
            (
                "python (returns its event)",
                "py",
                json!({"runtime": "python3.12", "handler": "app.handler"}),
                zip_of(&[("app.py", python)]),
            ),
        ];
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
            "per step p50 ms",
        ]);
        for (label, name, settings, zip) in cases {
            deploy(&node, name, settings, zip).await;
            let sequence = format!("{name}-x{STEPS}");
            for _ in 0..20 {
                invoke(&node, &sequence).await;
                invoke(&node, name).await;
            }
            let (mut seq, mut direct) = (Vec::with_capacity(n), Vec::with_capacity(n));
            for _ in 0..n {
                seq.push(invoke(&node, &sequence).await);
                let t = Instant::now();
                for _ in 0..STEPS {
                    invoke(&node, name).await;
                }
                direct.push(t.elapsed());
            }
            let (seq, direct) = (stats(seq), stats(direct));
            table.add_row(vec![
                format!("{STEPS}-step sequence, {label}"),
                seq.n.to_string(),
                ms(seq.p50),
                ms(seq.p99),
                format!("{STEPS} direct invokes in a row"),
                ms(direct.p50),
                ms(direct.p99),
                format!("{:.2}x", seq.p50.as_secs_f64() / direct.p50.as_secs_f64()),
                ms(seq.p50 / STEPS as u32),
            ]);
        }
        println!("{table}");
    });
}
