//! What tracing costs a warm invocation, on real nodes (full isolation, SQLite) in one process,
//! invocations interleaved a-b-b-a so that both sides see the same machine:
//!
//! - tracing off (no trace in records, an unsampled id for the runtime) against tracing on
//!   (every invocation's trace context, the X-Ray header for the runtime, the trace stored with
//!   its record);
//! - tracing off against tracing on with every span exported over OTLP/HTTP (protobuf, batched)
//!   to a receiver in the same process that reads each request whole and answers 200.
//!
//! For each: p50 and p99 of `POST /v1/functions/{name}/invoke` of the compiled `provided` echo
//! function (the cheapest function there is, so the platform's share is the largest), and CPU
//! time of the whole process per invocation (server, client and receiver; the sandboxed
//! runtime is another process and not counted).
//!
//! The figure the target (≤ 5%) is judged on is the **server's CPU time per warm invoke**,
//! which other builders' load on the machine moves far less than latency: wrk drives the node
//! from outside the process (one connection, closed loop) for `LAMBENT_BENCH_SECS` seconds per
//! run, so the process's CPU time (getrusage) is the server's (and, with export, the in-process
//! OTLP receiver's); runs alternate off, on, on, off for `LAMBENT_BENCH_ROUNDS` rounds and the
//! table gives the median over the runs of each side, with the baseline from the same rounds.
//!
//! Run: `cargo bench -p lambent-server --bench traces` (root needed; `wrk` on `PATH`).
//! `LAMBENT_BENCH_N` sets the in-process invocations per side (default 2000),
//! `LAMBENT_BENCH_ROUNDS` (default 6) and `LAMBENT_BENCH_SECS` (default 2) the wrk runs.
//! Written to `target/traces_bench.md`.

mod support;

/// The `lambent` binary's allocator, so that the server measured here is the one it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use axum::body::Bytes;
use comfy_table::Table;
use lambent_server::{start, RunningServer, ServerOptions};
use lambent_testkit::wrk;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use support::{abba, echo_runtime, ms, stats, zip_of, Run};

const KEY: &str = "bench-key";
/// The operator's key: the exporter's counters in `/metrics` are node-wide series.
const ADMIN: &str = "bench-admin-key";

/// A node with the echo function deployed and warm; its data dir lives as long as it does.
struct Node {
    server: RunningServer,
    _data: tempfile::TempDir,
}

async fn node(adjust: impl FnOnce(&mut ServerOptions)) -> Node {
    let data = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    opts.api_key = Some(KEY.into());
    opts.admin_key = Some(ADMIN.into());
    adjust(&mut opts);
    let server = start(opts).await.expect("the node starts (root needed)");
    let http = support::http_client();
    let code: Value = http
        .post(format!("{}/v1/code", server.url()))
        .bearer_auth(KEY)
        .body(zip_of(&[("bootstrap", &echo_runtime())]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .put(format!("{}/v1/functions/echo", server.url()))
        .bearer_auth(KEY)
        .body(
            json!({"runtime": "provided", "handler": "bootstrap", "code_sha256": code["sha256"]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    Node {
        server,
        _data: data,
    }
}

/// `op(task, i)` for [`abba`]: one warm invocation of `echo` on the node at `url`.
fn invoker(
    url: &str,
) -> impl Fn(usize, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Clone
       + Send
       + Sync
       + 'static {
    let (http, url) = (
        support::http_client(),
        format!("{url}/v1/functions/echo/invoke"),
    );
    move |_, _| {
        let req = http.post(&url).bearer_auth(KEY).body("{}");
        Box::pin(async move {
            let r = req.send().await.unwrap();
            let ok = r.headers().get("lambent-status").map(|v| v.as_bytes()) == Some(b"success");
            let body = r.bytes().await.unwrap();
            assert!(ok, "{}", String::from_utf8_lossy(&body));
        })
    }
}

/// The OTLP receiver of the bench: reads every request whole, counts the bytes, answers 200.
async fn sink() -> (String, Arc<AtomicU64>) {
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

/// The wrk script of a warm invoke of `echo` (signed by the API key, as any `/v1` call).
fn invoke_script(dir: &Path) -> PathBuf {
    let request = wrk::ScriptRequest {
        method: "POST".into(),
        path: "/v1/functions/echo/invoke".into(),
        headers: vec![
            ("Authorization".into(), format!("Bearer {KEY}")),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: "{}".into(),
    };
    wrk::script(dir, "invoke", &[request], 0)
}

/// One wrk run (1 thread, 1 connection, `secs`) against the node at `url`: the process's CPU
/// microseconds per successful invocation meanwhile.
async fn server_cpu_run(wrk_bin: &Path, script: &Path, url: &str, secs: u64) -> f64 {
    let before = support::process_cpu();
    let running = wrk::start(
        wrk_bin,
        &wrk::Load {
            threads: 1,
            connections: 1,
            secs,
            script,
            url,
        },
    );
    let (measured, _) = tokio::task::spawn_blocking(move || running.finish())
        .await
        .unwrap();
    let cpu = support::process_cpu() - before;
    assert_eq!(measured.errors, 0, "{}", measured.report);
    cpu.as_secs_f64() * 1e6 / measured.ok().max(1) as f64
}

/// The server's CPU µs per invocation of `a` and `b` over `rounds` rounds of runs ordered a,
/// b, b, a: each side's runs, to take their median.
async fn server_cpu(
    wrk_bin: &Path,
    script: &Path,
    (a, b): (&str, &str),
    rounds: usize,
    secs: u64,
) -> (Vec<f64>, Vec<f64>) {
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        xs.push(server_cpu_run(wrk_bin, script, a, secs).await);
        ys.push(server_cpu_run(wrk_bin, script, b, secs).await);
        ys.push(server_cpu_run(wrk_bin, script, b, secs).await);
        xs.push(server_cpu_run(wrk_bin, script, a, secs).await);
    }
    (xs, ys)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    support::quantile(&xs, 0.5)
}

/// The three nodes compared.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Off,
    On,
    Export,
}

impl Side {
    const ALL: [Side; 3] = [Side::Off, Side::On, Side::Export];

    fn name(self) -> &'static str {
        match self {
            Side::Off => "off",
            Side::On => "on",
            Side::Export => "export",
        }
    }

    fn case(self) -> &'static str {
        match self {
            Side::Off => "tracing off",
            Side::On => "tracing on (records)",
            Side::Export => "tracing on + OTLP export",
        }
    }

    /// The node of this side (exporting to `sink_url`); `sandboxed`: full isolation, else
    /// `--insecure-no-sandbox` (valgrind cannot run the sandbox's set-up: it has no
    /// `seccomp(2)`).
    async fn node(self, sink_url: &str, sandboxed: bool) -> Node {
        node(|o| {
            o.insecure_no_sandbox = !sandboxed;
            match self {
                Side::Off => o.tracing = false,
                Side::On => {}
                Side::Export => o.otlp_endpoint = Some(sink_url.to_string()),
            }
        })
        .await
    }
}

/// Set in a process that serves one side under callgrind (its value: the side's name).
const SIDE_ENV: &str = "LAMBENT_BENCH_CALLGRIND_SIDE";
/// Set in the client process of a side's node: the node's URL, then the node's pid.
const CLIENT_ENV: &str = "LAMBENT_BENCH_CALLGRIND_CLIENT";

/// `callgrind_control <args> <pid>`: zeroes (`-z`) or dumps (`-d`) the counts of the
/// process under callgrind.
fn callgrind_control(arg: &str, pid: &str) {
    let status = std::process::Command::new("callgrind_control")
        .args([arg, pid])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(status.success(), "callgrind_control {arg} {pid}: {status}");
}

/// The client of a node under callgrind (a process of its own, not instrumented): warms the
/// node, zeroes its counts, runs `n` warm invokes one after another, lets the recorder's and
/// the exporter's batches go out, and has the counts dumped.
fn callgrind_client(url: &str, pid: &str, n: usize) {
    support::block_on(async {
        let op = invoker(url);
        for i in 0..200 {
            op(0, i).await;
        }
        callgrind_control("-z", pid);
        for i in 0..n {
            op(0, i).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        callgrind_control("-d", pid);
    });
}

/// One side's node, in this process (run under callgrind), driven by a client process.
fn callgrind_side(side: Side) {
    support::block_on(async {
        let (sink_url, _) = sink().await;
        let node = side.node(&sink_url, false).await;
        let status = tokio::process::Command::new(std::env::current_exe().unwrap())
            .env_remove(SIDE_ENV)
            .env(
                CLIENT_ENV,
                format!("{} {}", node.server.url(), std::process::id()),
            )
            .status()
            .await
            .unwrap();
        assert!(status.success(), "the client: {status}");
        node.server.shutdown().await;
    });
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
}

/// The instructions (`Ir`) a callgrind dump counted.
fn callgrind_total(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no totals in {}", file.display()))
}

/// Instructions the node executes per warm invoke, each side under callgrind in a process of
/// its own (`n` invokes, counted from after the warm-up until the batches went out): a count
/// that the machine's load does not move. The dumps stay in `target/traces_callgrind/`.
fn callgrind_table(n: usize) -> Table {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("traces_callgrind");
    std::fs::create_dir_all(&dir).unwrap();
    let per_invoke: Vec<f64> = Side::ALL
        .iter()
        .map(|side| {
            let out = dir.join(format!("callgrind.{}", side.name()));
            let status = std::process::Command::new("valgrind")
                .args(["--tool=callgrind", "--quiet"])
                .arg(format!("--callgrind-out-file={}", out.display()))
                .arg(std::env::current_exe().unwrap())
                .env(SIDE_ENV, side.name())
                .env("LAMBENT_BENCH_N", n.to_string())
                .status()
                .expect("valgrind runs");
            assert!(status.success(), "valgrind ({}): {status}", side.name());
            // The client's dump, the first of the run.
            callgrind_total(&dir.join(format!("callgrind.{}.1", side.name()))) as f64 / n as f64
        })
        .collect();
    let mut table = Table::new();
    table.set_header([
        "case (warm invoke, under callgrind, 1 caller)",
        "n",
        "server instructions / invoke",
        "vs off",
    ]);
    for (side, ir) in Side::ALL.iter().zip(&per_invoke) {
        table.add_row(vec![
            side.case().to_string(),
            n.to_string(),
            format!("{ir:.0}"),
            format!("{:+.1}%", (ir / per_invoke[0] - 1.0) * 100.0),
        ]);
    }
    table
}

fn main() {
    let n = support::samples(2000);
    if let Ok(client) = std::env::var(CLIENT_ENV) {
        let (url, pid) = client.split_once(' ').expect("url and pid");
        return callgrind_client(url, pid, n);
    }
    if let Ok(name) = std::env::var(SIDE_ENV) {
        let side = Side::ALL.into_iter().find(|s| s.name() == name).unwrap();
        return callgrind_side(side);
    }
    let callgrind = std::env::var("LAMBENT_BENCH_CALLGRIND").unwrap_or_default();
    let callgrind_n = support::env_or("LAMBENT_BENCH_CALLGRIND_N", 1000usize);
    if callgrind == "only" {
        let table = callgrind_table(callgrind_n);
        support::write_report("traces_callgrind.md", &format!("{table}\n"));
        return;
    }
    let mut report = support::block_on(async {
        let (sink_url, received) = sink().await;
        let off = Side::Off.node(&sink_url, true).await;
        let on = Side::On.node(&sink_url, true).await;
        let export = Side::Export.node(&sink_url, true).await;
        let (off_op, on_op, export_op) = (
            invoker(off.server.url()),
            invoker(on.server.url()),
            invoker(export.server.url()),
        );
        // Warm: the sandbox, the HTTP pools, the recorder's tables.
        for i in 0..200 {
            off_op(0, i).await;
            on_op(0, i).await;
            export_op(0, i).await;
        }
        let (off_1, traced) = abba(1, n, off_op.clone(), on_op).await;
        let (off_2, exported) = abba(1, n, off_op, export_op).await;

        // The server's own CPU per invoke, driven from outside the process.
        let wrk_bin = wrk::find();
        let scripts = tempfile::tempdir().unwrap();
        let script = invoke_script(scripts.path());
        let (rounds, secs) = (
            support::env_or("LAMBENT_BENCH_ROUNDS", 6usize),
            support::env_or("LAMBENT_BENCH_SECS", 2u64),
        );
        let urls = (off.server.url(), on.server.url(), export.server.url());
        let (cpu_off_1, cpu_on) =
            server_cpu(&wrk_bin, &script, (urls.0, urls.1), rounds, secs).await;
        let (cpu_off_2, cpu_export) =
            server_cpu(&wrk_bin, &script, (urls.0, urls.2), rounds, secs).await;
        let mut cpu_table = Table::new();
        cpu_table.set_header([
            "case (warm invoke, wrk from outside, 1 connection)",
            "runs",
            "server CPU µs / invoke (median)",
            "min..max",
            "vs off (same rounds)",
        ]);
        let mut cpu_row = |case: &str, runs: &[f64], base: &[f64]| {
            let (m, b) = (median(runs.to_vec()), median(base.to_vec()));
            let (lo, hi) = runs
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), x| (lo.min(*x), hi.max(*x)));
            cpu_table.add_row(vec![
                case.to_string(),
                runs.len().to_string(),
                format!("{m:.1}"),
                format!("{lo:.1}..{hi:.1}"),
                format!("{:+.1}%", (m / b - 1.0) * 100.0),
            ]);
        };
        cpu_row("tracing off", &cpu_off_1, &cpu_off_1);
        cpu_row("tracing on (records)", &cpu_on, &cpu_off_1);
        cpu_row("tracing off", &cpu_off_2, &cpu_off_2);
        cpu_row("tracing on + OTLP export", &cpu_export, &cpu_off_2);

        let mut table = Table::new();
        table.set_header([
            "case (warm invoke, provided echo)",
            "n",
            "p50 ms",
            "p99 ms",
            "CPU µs / invoke",
            "p50 vs off",
            "CPU vs off",
        ]);
        let mut row = |case: &str, run: &Run, base: &Run| {
            let (s, b) = (stats(run.samples.clone()), stats(base.samples.clone()));
            table.add_row(vec![
                case.to_string(),
                s.n.to_string(),
                ms(s.p50),
                ms(s.p99),
                format!("{:.0}", run.cpu_us()),
                format!(
                    "{:+.1}%",
                    (s.p50.as_secs_f64() / b.p50.as_secs_f64() - 1.0) * 100.0
                ),
                format!("{:+.1}%", (run.cpu_us() / base.cpu_us() - 1.0) * 100.0),
            ]);
        };
        row("tracing off", &off_1, &off_1);
        row("tracing on (records)", &traced, &off_1);
        row("tracing off", &off_2, &off_2);
        row("tracing on + OTLP export", &exported, &off_2);
        // Let the last batch go out before reading what the exporter did.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        let metrics = support::http_client()
            .get(format!("{}/metrics", export.server.url()))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let counter = |name: &str| {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        for node in [off, on, export] {
            node.server.shutdown().await;
        }
        format!(
            "{cpu_table}\n\n{table}\n\nOTLP export: {} spans exported ({} KB of protobuf received), {} dropped\n",
            counter("lambent_trace_spans_exported_total"),
            received.load(Ordering::Relaxed) / 1024,
            counter("lambent_trace_spans_dropped_total"),
        )
    });
    if callgrind != "0" && on_path("valgrind") {
        report = format!("{}\n\n{report}", callgrind_table(callgrind_n));
    } else {
        report += "\n(instruction counts skipped: valgrind is not installed, or LAMBENT_BENCH_CALLGRIND=0)\n";
    }
    support::write_report("traces_bench.md", &report);
}
