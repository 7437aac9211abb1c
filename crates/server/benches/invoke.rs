//! What the platform costs, on a real node (full isolation, SQLite, the embedded runtime
//! clients), printed as tables with baselines measured in the same run:
//!
//! - warm invoke of a Python no-op through `POST /v1/functions/{name}/invoke`, against
//!   `GET /healthz` over the same HTTP client (the platform's own round trip);
//! - the same with idle sandboxes frozen (cgroup freezer) between invocations;
//! - warm invoke of a compiled `provided` echo function through the platform, against the same
//!   kind of warm runtime called directly through its Runtime API (no HTTP client, gateway or
//!   invoker): the difference is the platform's overhead per warm invoke;
//! - throughput (invocations/s) of the `provided` echo function at 1, 8 and 64 concurrent
//!   callers, with activation records on and off;
//! - what isolation costs, layer by layer: cold start (compiled `provided`, Python) and warm
//!   invoke on a fully isolated node, on nodes with one layer left out each (read-only root,
//!   PID/IPC/UTS namespaces, cgroup, unprivileged user, seccomp, network namespaces made ahead),
//!   and on a node without sandboxes (`--insecure-no-sandbox`);
//! - cold start (request to response, new sandbox) of Python, Node.js, a `provided` shell
//!   bootstrap and the compiled one, against a plain exec of the same program outside any sandbox.
//!
//! Run: `cargo bench -p lambent-server --bench invoke` (root needed). `LAMBENT_BENCH_N` sets the
//! number of warm invocations (default 1000), `LAMBENT_BENCH_SECS` each throughput run (default 3),
//! `LAMBENT_BENCH_ONLY=isolation` runs only the per-layer isolation table.

mod support;

use comfy_table::Table;
use lambent_server::{start, ServerOptions};
use serde_json::{json, Value};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{echo_runtime, env_or, ms, stats, zip_of, Stats};

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

/// label, runtime, handler, file name, file content, baseline command.
type ColdCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
    Vec<String>,
);

#[derive(Clone)]
struct Bench {
    http: reqwest::Client,
    url: String,
}

impl Bench {
    async fn start(
        adjust: impl FnOnce(&mut ServerOptions),
    ) -> (lambent_server::RunningServer, Bench, tempfile::TempDir) {
        let data = tempfile::tempdir().unwrap();
        let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
        opts.api_key = Some(KEY.into());
        adjust(&mut opts);
        let server = start(opts)
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e}"));
        let bench = Bench {
            http: reqwest::Client::new(),
            url: server.url().to_string(),
        };
        (server, bench, data)
    }

    async fn deploy(&self, name: &str, runtime: &str, handler: &str, files: &[(&str, &[u8])]) {
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
        let settings =
            json!({"runtime": runtime, "handler": handler, "code_sha256": code["sha256"]});
        let r = self
            .http
            .put(format!("{}/v1/functions/{name}", self.url))
            .bearer_auth(KEY)
            .body(settings.to_string())
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

    /// Cold start latencies: `COLD_RUNS` functions named `<prefix>-<i>`, each invoked once.
    async fn cold_starts(
        &self,
        prefix: &str,
        runtime: &str,
        handler: &str,
        files: &[(&str, &[u8])],
    ) -> Vec<Duration> {
        let mut cold = Vec::with_capacity(COLD_RUNS);
        for j in 0..COLD_RUNS {
            let name = format!("{prefix}-{j}");
            self.deploy(&name, runtime, handler, files).await;
            let (d, was_cold) = self.invoke(&name).await;
            assert!(was_cold);
            cold.push(d);
        }
        cold
    }

    /// Invocations per second with `callers` concurrent callers for `secs`.
    async fn throughput(&self, name: &str, callers: usize, secs: f64) -> f64 {
        let until = Instant::now() + Duration::from_secs_f64(secs);
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let tasks: Vec<_> = (0..callers)
            .map(|_| {
                let (b, name, done) = (self.clone(), name.to_string(), done.clone());
                tokio::spawn(async move {
                    while Instant::now() < until {
                        b.invoke(&name).await;
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        done.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
    }
}

/// Warm invokes of the echo runtime in a sandbox, through its Runtime API only: no HTTP
/// client, gateway or invoker. The baseline of the platform's warm overhead.
async fn direct_runtime(n: usize) -> Vec<Duration> {
    use lambent_runtime_api::{Invocation, RuntimeApi};
    use lambent_sandbox::{Host, HostOptions, Isolation, SandboxSpec};
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    std::fs::set_permissions(&code, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bootstrap = code.join("bootstrap");
    std::fs::write(&bootstrap, echo_runtime()).unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let host = Host::detect(HostOptions {
        isolation: Isolation::Full,
        state_dir: dir.path().join("state"),
        layers: lambent_sandbox::Layers::ALL,
        sdk_dir: None,
    })
    .unwrap();
    let sandbox = host
        .spawn(&SandboxSpec {
            id: "bench-direct".into(),
            code_dir: code.clone(),
            runtime_dir: code,
            argv: vec!["/var/task/bootstrap".into()],
            env: vec![],
            memory_mb: 128,
            pids_max: 64,
            tmp_mb: 16,
            allow_network: false,
            interpreter: None,
            aws_endpoint: false,
            namespace: None,
        })
        .unwrap();
    let api = RuntimeApi::serve(sandbox.runtime_api_listener().try_clone().unwrap(), None).unwrap();
    api.wait_ready().await.unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let t = Instant::now();
        let rx = api
            .invoke(Invocation {
                request_id: format!("direct-{i}"),
                payload: bytes::Bytes::from_static(b"{}"),
                deadline_ms: lambent_core::now_ms() + 3000,
                function_arn: "arn:aws:lambda:local:default:function:direct".into(),
                trace_id: "Root=1-0-0".into(),
                client_context: None,
                cognito_identity: None,
            })
            .unwrap();
        rx.await.unwrap();
        if i >= 50 {
            samples.push(t.elapsed());
        }
    }
    samples
}

/// Cold start (compiled `provided` and Python) and warm invoke (compiled `provided`) on a node
/// per isolation configuration: all layers, each layer left out in turn, and no sandbox at all.
async fn isolation_table(echo: &[u8], warm_n: usize) -> Table {
    use lambent_sandbox::Layers;
    let all = Layers::ALL;
    let configs: [(&str, Option<Layers>); 9] = [
        ("full isolation", Some(all)),
        (
            "full, without sandboxes made ahead",
            Some(Layers {
                sandboxes_ahead: false,
                ..all
            }),
        ),
        (
            "without read-only root (mount ns)",
            Some(Layers { root: false, ..all }),
        ),
        (
            "without pid/ipc/uts namespaces",
            Some(Layers {
                pid_ipc_uts: false,
                ..all
            }),
        ),
        (
            "without cgroup",
            Some(Layers {
                cgroup: false,
                ..all
            }),
        ),
        (
            "without unprivileged user",
            Some(Layers { user: false, ..all }),
        ),
        (
            "without seccomp",
            Some(Layers {
                seccomp: false,
                ..all
            }),
        ),
        (
            "without netns made ahead",
            Some(Layers {
                netns_ahead: false,
                ..all
            }),
        ),
        ("no sandbox (--insecure-no-sandbox)", None),
    ];
    let python = b"def handler(event, context):\n    return {}\n".as_slice();
    let mut table = Table::new();
    table.set_header([
        "configuration",
        "provided cold p50 ms",
        "provided cold p99 ms",
        "python cold p50 ms",
        "warm invoke p50 ms",
        "cold vs no sandbox (p50) ms",
        "warm vs no sandbox (p50) ms",
    ]);
    let mut rows = Vec::new();
    for (label, layers) in configs {
        let (server, b, _data) = Bench::start(|o| match layers {
            Some(layers) => o.isolation_layers = layers,
            None => o.insecure_no_sandbox = true,
        })
        .await;
        let provided = stats(
            b.cold_starts(
                "iso-provided",
                "provided",
                "bootstrap",
                &[("bootstrap", echo)],
            )
            .await,
        );
        let python = stats(
            b.cold_starts("iso-python", "python", "app.handler", &[("app.py", python)])
                .await,
        );
        b.deploy("echo", "provided", "bootstrap", &[("bootstrap", echo)])
            .await;
        let mut warm = Vec::with_capacity(warm_n);
        for i in 0..warm_n + 50 {
            let (d, _) = b.invoke("echo").await;
            if i >= 50 {
                warm.push(d);
            }
        }
        rows.push((label, provided, python, stats(warm)));
        server.shutdown().await;
    }
    let (_, bare_cold, _, bare_warm) = rows.last().expect("configurations");
    let (bare_cold, bare_warm) = (bare_cold.p50, bare_warm.p50);
    for (label, provided, python, warm) in &rows {
        let delta = |a: Duration, b: Duration| {
            format!("{:+.2}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
        };
        table.add_row(vec![
            label.to_string(),
            ms(provided.p50),
            ms(provided.p99),
            ms(python.p50),
            ms(warm.p50),
            delta(provided.p50, bare_cold),
            delta(warm.p50, bare_warm),
        ]);
    }
    table
}

fn exec_time(argv: &[String]) -> Duration {
    let t = Instant::now();
    let status = Command::new(&argv[0]).args(&argv[1..]).status().unwrap();
    assert!(status.success());
    t.elapsed()
}

fn main() {
    let n: usize = env_or("LAMBENT_BENCH_N", 1000);
    let secs: f64 = env_or("LAMBENT_BENCH_SECS", 3.0);
    support::block_on(async {
        let echo = echo_runtime();
        if std::env::var("LAMBENT_BENCH_ONLY").as_deref() == Ok("isolation") {
            println!("{}", isolation_table(&echo, n.min(300)).await);
            return;
        }
        let (server, b, _data) = Bench::start(|_| {}).await;
        let mut latency = Table::new();
        latency.set_header([
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
            latency.add_row(vec![
                case.to_string(),
                s.n.to_string(),
                ms(s.p50),
                ms(s.p99),
                base_name.to_string(),
                ms(base.p50),
                format!("{ratio:.2}x"),
            ]);
        };

        // Warm invoke of a Python no-op, beside the HTTP round trip of /healthz.
        let noop = b"def handler(event, context):\n    return event\n";
        b.deploy("noop", "python", "app.handler", &[("app.py", noop)])
            .await;
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
        let warm = stats(warm);
        row("python warm invoke", &warm, "GET /healthz", &stats(health));

        // The same with idle sandboxes frozen between invocations (a thaw on the warm path).
        let (frozen_server, frozen, _frozen_data) = Bench::start(|o| o.freeze_idle = true).await;
        frozen
            .deploy("noop", "python", "app.handler", &[("app.py", noop)])
            .await;
        let mut thawed = Vec::with_capacity(n);
        for i in 0..n + 20 {
            // Give the background freeze time to finish, as between real requests.
            tokio::time::sleep(Duration::from_millis(2)).await;
            let (d, cold) = frozen.invoke("noop").await;
            // A call that found the sandbox still freezing started another: not a warm sample.
            if i >= 20 && !cold {
                thawed.push(d);
            }
        }
        row(
            "python warm invoke, idle frozen",
            &stats(thawed),
            "python warm invoke",
            &warm,
        );
        frozen_server.shutdown().await;

        // Warm invoke of the compiled echo runtime, beside the same runtime called directly.
        b.deploy("echo", "provided", "bootstrap", &[("bootstrap", &echo)])
            .await;
        for _ in 0..50 {
            b.invoke("echo").await;
        }
        let platform: Vec<Duration> = {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(b.invoke("echo").await.0);
            }
            v
        };
        let direct = direct_runtime(n).await;
        let (platform, direct) = (stats(platform), stats(direct));
        let overhead = platform.p50.saturating_sub(direct.p50);
        row(
            "provided (compiled) warm invoke",
            &platform,
            "same runtime, Runtime API only",
            &direct,
        );

        // Cold starts: each function is invoked once, into a new sandbox.
        let cases: [ColdCase; 4] = [
            (
                "python",
                "python",
                "app.handler",
                "app.py",
                b"def handler(event, context):\n    return {}\n".to_vec(),
                vec!["/usr/bin/python3".into(), "-c".into(), "pass".into()],
            ),
            (
                "node",
                "nodejs20.x",
                "index.handler",
                "index.mjs",
                b"export const handler = async () => ({});\n".to_vec(),
                vec!["/usr/bin/node".into(), "-e".into(), "0".into()],
            ),
            (
                "provided (sh + curl)",
                "provided",
                "bootstrap",
                "bootstrap",
                SHELL_BOOTSTRAP.as_bytes().to_vec(),
                vec!["/bin/sh".into(), "-c".into(), "true".into()],
            ),
            (
                "provided (compiled)",
                "provided",
                "bootstrap",
                "bootstrap",
                echo.clone(),
                vec!["/bin/true".into()],
            ),
        ];
        for (i, (label, runtime, handler, file, body, baseline)) in cases.into_iter().enumerate() {
            let cold = b
                .cold_starts(&format!("cold-{i}"), runtime, handler, &[(file, &body)])
                .await;
            let base: Vec<Duration> = (0..COLD_RUNS).map(|_| exec_time(&baseline)).collect();
            row(
                &format!("{label} cold start"),
                &stats(cold),
                &format!("exec `{}`", baseline.join(" ")),
                &stats(base),
            );
        }
        println!("{latency}");
        println!(
            "platform overhead per warm invoke (p50, compiled provided): {:.3} ms\n",
            overhead.as_secs_f64() * 1000.0
        );

        // What isolation costs, layer by layer: the same functions on nodes with every layer,
        // with one layer left out, and with none (--insecure-no-sandbox: plain processes).
        println!("{}", isolation_table(&echo, n.min(300)).await);

        // Throughput, with activation records on (this node) and off (a second node).
        let (quiet_server, quiet, _quiet_data) =
            Bench::start(|o| o.record_activations = false).await;
        quiet
            .deploy("echo", "provided", "bootstrap", &[("bootstrap", &echo)])
            .await;
        let mut throughput = Table::new();
        throughput.set_header([
            "concurrent callers",
            "invocations/s (records on)",
            "invocations/s (records off)",
            "ratio on/off",
        ]);
        for callers in [1, 8, 64] {
            // Warm enough sandboxes first, then measure.
            b.throughput("echo", callers, 0.5).await;
            quiet.throughput("echo", callers, 0.5).await;
            let on = b.throughput("echo", callers, secs).await;
            let off = quiet.throughput("echo", callers, secs).await;
            throughput.add_row(vec![
                callers.to_string(),
                format!("{on:.0}"),
                format!("{off:.0}"),
                format!("{:.2}", on / off),
            ]);
        }
        println!("{throughput}");
        quiet_server.shutdown().await;
        server.shutdown().await;
    });
}
