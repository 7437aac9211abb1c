//! Invoke latency of a real node (full isolation, SQLite, the embedded runtime clients), printed
//! as a table with a baseline measured in the same run:
//!
//! - warm invoke of a Python no-op through `POST /v1/functions/{name}/invoke`, against
//!   `GET /healthz` over the same HTTP client (the platform's own round trip);
//! - cold start (request to response, new sandbox) of Python, Node.js and a `provided` shell
//!   bootstrap, against a plain exec of the same interpreter outside any sandbox.
//!
//! Run: `cargo bench -p lambent-server --bench invoke` (root needed). `LAMBENT_BENCH_N` sets
//! the number of warm invocations (default 1000).

use comfy_table::Table;
use lambent_server::{start, ServerOptions};
use serde_json::{json, Value};
use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

const KEY: &str = "bench-key";
const COLD_RUNS: usize = 15;

/// A `provided` runtime in POSIX sh and curl: the smallest honest Runtime API client.
const SHELL_BOOTSTRAP: &str = r#"#!/bin/sh
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  headers=$(mktemp)
  event=$(curl -sS -D "$headers" "$api/next")
  id=$(sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p' "$headers" | tr -d '\r')
  rm -f "$headers"
  curl -sS -o /dev/null -X POST -d "$event" "$api/$id/response"
done
"#;

struct Stats {
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    Stats {
        p50: at(0.50),
        p99: at(0.99),
        n: samples.len(),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        let mode = if *name == "bootstrap" { 0o755 } else { 0o644 };
        w.start_file(
            *name,
            zip::write::SimpleFileOptions::default().unix_permissions(mode),
        )
        .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// label, runtime, handler, file name, file content, baseline command.
type ColdCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);

struct Bench {
    http: reqwest::Client,
    url: String,
}

impl Bench {
    async fn deploy(&self, name: &str, runtime: &str, handler: &str, files: &[(&str, &str)]) {
        let code: Value = self
            .http
            .post(format!("{}/v1/code", self.url))
            .bearer_auth(KEY)
            .body(zip_of(files))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = self
            .http
            .put(format!("{}/v1/functions/{name}", self.url))
            .bearer_auth(KEY)
            .body(
                json!({"runtime": runtime, "handler": handler, "code_sha256": code["sha256"]})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            r.status().is_success(),
            "deploy {name}: {}",
            r.text().await.unwrap()
        );
    }

    /// One invocation; returns its latency and whether it was cold.
    async fn invoke(&self, name: &str) -> (Duration, bool) {
        let t = Instant::now();
        let r = self
            .http
            .post(format!("{}/v1/functions/{name}/invoke", self.url))
            .bearer_auth(KEY)
            .body("{}")
            .send()
            .await
            .unwrap();
        let cold = r.headers().get("lambent-cold").is_some_and(|v| v == "true");
        let status = r
            .headers()
            .get("lambent-status")
            .map(|v| v.to_str().unwrap().to_string());
        let _ = r.bytes().await.unwrap();
        assert_eq!(status.as_deref(), Some("success"), "{name} failed");
        (t.elapsed(), cold)
    }

    async fn health(&self) -> Duration {
        let t = Instant::now();
        let r = self
            .http
            .get(format!("{}/healthz", self.url))
            .send()
            .await
            .unwrap();
        let _ = r.bytes().await.unwrap();
        t.elapsed()
    }
}

fn exec_time(argv: &[&str]) -> Duration {
    let t = Instant::now();
    let status = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(status.success());
    t.elapsed()
}

fn main() {
    let n: usize = std::env::var("LAMBENT_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let data = tempfile::tempdir().unwrap();
        let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
        opts.api_key = Some(KEY.into());
        let server = start(opts)
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e}"));
        let b = Bench {
            http: reqwest::Client::new(),
            url: server.url().to_string(),
        };
        let mut table = Table::new();
        table.set_header([
            "case",
            "n",
            "p50 ms",
            "p99 ms",
            "baseline",
            "baseline p50 ms",
            "ratio p50",
        ]);
        let mut row = |case: &str, s: &Stats, base_name: &str, base: &Stats| {
            let ratio = s.p50.as_secs_f64() / base.p50.as_secs_f64();
            table.add_row(vec![
                case.to_string(),
                s.n.to_string(),
                ms(s.p50),
                ms(s.p99),
                base_name.to_string(),
                ms(base.p50),
                format!("{ratio:.2}x"),
            ]);
        };

        // Warm invoke of a Python no-op.
        b.deploy(
            "noop",
            "python",
            "app.handler",
            &[("app.py", "def handler(event, context):\n    return event\n")],
        )
        .await;
        b.invoke("noop").await;
        for _ in 0..50 {
            b.invoke("noop").await;
            b.health().await;
        }
        let (mut warm, mut health) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let (d, cold) = b.invoke("noop").await;
            assert!(!cold);
            warm.push(d);
            health.push(b.health().await);
        }
        row(
            "python warm invoke",
            &stats(warm),
            "GET /healthz",
            &stats(health),
        );

        // Cold starts: each function is invoked once, into a new sandbox.
        let cases: [ColdCase; 3] = [
            (
                "python",
                "python",
                "app.handler",
                "app.py",
                "def handler(event, context):\n    return {}\n",
                &["/usr/bin/python3", "-c", "pass"],
            ),
            (
                "node",
                "nodejs20.x",
                "index.handler",
                "index.mjs",
                "export const handler = async () => ({});\n",
                &["/usr/bin/node", "-e", "0"],
            ),
            (
                "provided",
                "provided",
                "bootstrap",
                "bootstrap",
                SHELL_BOOTSTRAP,
                &["/bin/sh", "-c", "true"],
            ),
        ];
        for (label, runtime, handler, file, body, baseline) in cases {
            let mut cold = Vec::new();
            for i in 0..COLD_RUNS {
                let name = format!("cold-{label}-{i}");
                b.deploy(&name, runtime, handler, &[(file, body)]).await;
                let (d, was_cold) = b.invoke(&name).await;
                assert!(was_cold);
                cold.push(d);
            }
            let base: Vec<Duration> = (0..COLD_RUNS).map(|_| exec_time(baseline)).collect();
            row(
                &format!("{label} cold start"),
                &stats(cold),
                &format!("exec `{}`", baseline.join(" ")),
                &stats(base),
            );
        }
        println!("{table}");
        server.shutdown().await;
    });
}
