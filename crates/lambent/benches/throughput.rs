//! Warm throughput measured from outside: a real `lambent up` (this profile's build of the
//! binary, release for `cargo bench`) driven by `wrk` in its own process, beside the
//! **ceiling** measured in the same run: a minimal hyper server (this bench's binary started
//! again as one, `LAMBENT_BENCH_ROLE=ceiling`) with as many worker threads as `lambent up`'s
//! runtime (one per core), answering the same `POST` with the same body (`{}`).
//!
//! For each connection count (`LAMBENT_BENCH_CONNECTIONS`, default `1,8,64,256`) it runs, one
//! after the other so that all see the same machine: the ceiling, then
//! `POST /v1/functions/F/invoke` and `POST /F` (an HTTP route to F) for F a compiled
//! `provided` no-op (`lambent-echo-runtime`) and a Python no-op (`return {}`). Each run is
//! `LAMBENT_BENCH_SECS` seconds (default 5) after a warm-up at the same connection count (runs
//! of 2 s, up to 5, until one completes 10 requests per connection): sandboxes for that
//! concurrency exist before the measured run; growing the pool is not what this measures. wrk runs with one thread (`-t1`) and `--latency`.
//!
//! Every row prints requests/s (successful), p50 and p99 (wrk's latency distribution),
//! p99/p50, errors (non-2xx answers and socket errors: connect, read, write, timeouts over
//! 10 s), the ratio of its requests/s to the ceiling's at the same connection count, and the
//! CPU time the server spent per request, and the sandboxes of the node: how many were made
//! during the measured run (a pool that settled at the concurrency makes none), how many
//! ended during it, by reason (`lambent_sandboxes_ended_total{reason}`: `keep_alive`,
//! `evicted`, `failed`, `abandoned`, …), and how many are live after it (from `/metrics`). `lambent up` and its sandboxes are born inside one
//! cgroup (`lambent-testkit`'s [`cgroup`], sandboxes following through
//! `LAMBENT_CGROUP_PARENT`), the ceiling in another, so that CPU per request is comparable
//! whatever else the machine runs (the machine is shared: compare ratios and CPU, not rates,
//! across runs).
//!
//! Then the same cases again at `LAMBENT_BENCH_LOADED` connections (default `64,256`) **with a
//! second process loading the machine**: this bench's binary as a CPU burner
//! (`LAMBENT_BENCH_ROLE=burner`), one thread per core, each busy `LAMBENT_BENCH_BURN` (default
//! 0.5) of every 10 ms and asleep the rest, at the same priority as the server.
//!
//! The targets of issue 21 are checked at the end (64 connections: compiled no-op ≥ 16,000/s
//! and ≥ 0.15× the ceiling, Python ≥ 9,000/s and ≥ 0.085×, p99 ≤ 3× p50, also loaded; 256
//! connections: no errors, p99 ≤ 50 ms).
//!
//! Run (as root: sandboxes): `cargo bench -p lambent --bench throughput`. Needs `wrk` on
//! `PATH` (`apt-get install -y wrk`; the bench stops and says so when it is missing) and the
//! machine's `python3`. `LAMBENT_BENCH_ONLY=invoke|route|provided|python` keeps the rows of one
//! entry point or function. `LAMBENT_BENCH_BIN=PATH` measures another `lambent` binary (a
//! build of the base commit, say) in the same conditions. `LAMBENT_BENCH_FLAGS` adds flags to
//! its `lambent up` (`--no-activation-records`, say: the tails without record writes). Written to
//! `target/throughput_bench.md` too.
//!
//! `LAMBENT_BENCH_ONLY=records` measures instead what writing activation records costs at the
//! top rate: a node with records on against one started with `--no-activation-records`, the
//! compiled no-op invoked at the largest of `LAMBENT_BENCH_CONNECTIONS` (64 by default here),
//! alternating on-off-off-on `LAMBENT_BENCH_ROUNDS` times (default 3), with the medians and
//! their ratio ([`records_on_off`]). `LAMBENT_BENCH_ONLY=hold` measures what holding a pool
//! whose runtimes want the CPU does (`crates/invoker/src/hold.rs`): a node with the default
//! `--runnable-per-core` against one with `--runnable-per-core 0`, each no-op and a Python
//! function that computes ~3 ms per call invoked at the largest of `LAMBENT_BENCH_CONNECTIONS`
//! (256 by default here), alternated the same way ([`hold_on_off`]).

#[path = "../tests/support/mod.rs"]
mod support;

use lambent_testkit::cgroup::CpuCgroup;
use lambent_testkit::wrk;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{echo_runtime, zip_of, Server};

const KEY: &str = "throughput-bench-key";
/// The operator's key: `/metrics` shows it the node-wide series (sandboxes, cold start phases).
const ADMIN: &str = "throughput-bench-admin-key";
/// Which role this binary plays when the bench starts it again.
const ROLE: &str = "LAMBENT_BENCH_ROLE";
const PYTHON_NOOP: &[u8] = b"def handler(event, context):\n    return {}\n";
/// A Python function that computes: a fixed amount of work (~3 ms of one core here), not a
/// spin for some time (a spin that stops on a clock does less work the more it is preempted).
const PYTHON_COMPUTE: &[u8] = b"def handler(event, context):\n    n = 0\n    \
    for i in range(150000):\n        n += i\n    return {'n': n}\n";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------------------------------------
// The ceiling and the burner: this binary started again

/// The ceiling: a minimal hyper HTTP/1.1 server on 127.0.0.1:0 with one worker thread per core
/// (as `lambent up`'s runtime), reading each request's body whole and answering `200` with
/// `{}`. Prints its address, then serves until killed.
fn serve_ceiling() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores())
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            println!("{}", listener.local_addr().unwrap());
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let _body = req.into_body().collect().await?.to_bytes();
                        let response = Response::builder()
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from_static(b"{}")))
                            .unwrap();
                        Ok::<_, hyper::Error>(response)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
}

/// The burner: one thread per core, each busy `share` of every 10 ms and asleep the rest.
fn burn() {
    let share: f64 = env_or("LAMBENT_BENCH_BURN", 0.5);
    let period = Duration::from_millis(10);
    let busy = period.mul_f64(share.clamp(0.0, 1.0));
    let threads: Vec<_> = (0..cores())
        .map(|_| {
            std::thread::spawn(move || loop {
                let start = Instant::now();
                while start.elapsed() < busy {
                    std::hint::spin_loop();
                }
                std::thread::sleep(period - busy);
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// Cgroups removed when dropped, once the processes in them are gone.
struct Cleanup(Vec<CpuCgroup>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for cg in &self.0 {
            cg.remove();
        }
    }
}

/// This binary started again in `role`, born inside `cgroup` if given; killed when dropped.
struct Helper(Child);

impl Helper {
    fn start(role: &str, cgroup: Option<&CpuCgroup>) -> Helper {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env(ROLE, role)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        if let Some(cg) = cgroup {
            lambent_testkit::cgroup::born_into(&mut cmd, &cg.procs());
        }
        Helper(cmd.spawn().expect("cannot start the bench binary again"))
    }

    /// The first line it printed.
    fn line(&mut self) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(self.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The node under test

/// `lambent up` with the [`functions`] deployed, each with a route, inside its cgroup.
struct Node {
    server: Server,
    cgroup: CpuCgroup,
    _home: tempfile::TempDir,
}

/// The functions: (name, runtime, handler, code files). The standard rows measure the no-ops;
/// the hold A/B also the function that computes.
fn functions(echo: &[u8]) -> Vec<(&'static str, &'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "noop-provided",
            "provided.al2023",
            "bootstrap",
            zip_of(&[("bootstrap", echo)]),
        ),
        (
            "noop-python",
            "python3.12",
            "app.handler",
            zip_of(&[("app.py", PYTHON_NOOP)]),
        ),
        (
            "compute-python",
            "python3.12",
            "app.handler",
            zip_of(&[("app.py", PYTHON_COMPUTE)]),
        ),
    ]
}

impl Node {
    /// Starts `lambent up` (with flags `extra`) born inside `cgroup` (its sandboxes under it
    /// too).
    fn start(echo: &[u8], cgroup: CpuCgroup, extra: &[&str]) -> Node {
        let home = tempfile::tempdir().unwrap();
        let bin = std::env::var("LAMBENT_BENCH_BIN").unwrap_or_else(|_| support::BIN.into());
        let mut cmd = Server::command_of(
            Path::new(&bin),
            home.path(),
            extra,
            &[
                ("LAMBENT_API_KEY", KEY),
                ("LAMBENT_ADMIN_KEY", ADMIN),
                ("LAMBENT_CGROUP_PARENT", &cgroup.relative),
            ],
        );
        lambent_testkit::cgroup::born_into(&mut cmd, &cgroup.procs());
        let server = Server::spawn(cmd, home.path());
        let node = Node {
            server,
            cgroup,
            _home: home,
        };
        let http = reqwest::blocking::Client::new();
        let call = |method: reqwest::Method, path: &str, body: Vec<u8>| -> Value {
            let r = http
                .request(method, format!("{}{path}", node.server.url))
                .bearer_auth(KEY)
                .body(body)
                .send()
                .unwrap();
            let status = r.status();
            let v: Value = r.json().unwrap_or(Value::Null);
            assert!(status.is_success(), "{path}: {status} {v}");
            v
        };
        for (name, runtime, handler, zip) in functions(echo) {
            let code = call(reqwest::Method::POST, "/v1/code", zip);
            let settings =
                json!({"runtime": runtime, "handler": handler, "code_sha256": code["sha256"]});
            call(
                reqwest::Method::PUT,
                &format!("/v1/functions/{name}"),
                settings.to_string().into_bytes(),
            );
            let route = json!({"method": "POST", "path": format!("/{name}"), "function": name});
            call(
                reqwest::Method::POST,
                "/v1/routes",
                route.to_string().into_bytes(),
            );
        }
        node
    }
}

// ---------------------------------------------------------------------------------------------
// Runs

/// One kind of row: what is called and where.
struct Case {
    label: String,
    /// The server's URL and its cgroup (for CPU per request).
    url: String,
    cgroup: CpuCgroup,
    script: PathBuf,
    /// Whether the server is a node (with sandboxes to count in its `/metrics`).
    node: bool,
}

/// Sandboxes of a node from its `/metrics`: how many were made so far (cold starts' sandbox
/// phases, those no invocation waited for included), how many ended so far by reason, and
/// how many are live.
#[derive(Clone, Default)]
struct Sandboxes {
    made: f64,
    live: f64,
    /// `None`: the node does not count them (a binary older than the metric).
    ended: Option<BTreeMap<String, f64>>,
}

impl Sandboxes {
    fn of(url: &str) -> Sandboxes {
        let text = reqwest::blocking::Client::new()
            .get(format!("{url}/metrics"))
            .bearer_auth(ADMIN)
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let sum = |prefix: &str, filter: &str| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(prefix) && l.contains(filter))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .fold(0.0, |a, b| a + b)
        };
        let mut ended = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("lambent_sandboxes_ended_total{reason=\"") else {
                continue;
            };
            let (Some((reason, _)), Some(n)) = (
                rest.split_once('"'),
                rest.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()),
            ) else {
                continue;
            };
            ended.insert(reason.to_string(), n);
        }
        Sandboxes {
            made: sum(
                "lambent_cold_start_phase_seconds_count",
                "phase=\"sandbox\"",
            ),
            live: sum("lambent_sandboxes{", ""),
            ended: text.contains("lambent_sandboxes_ended").then_some(ended),
        }
    }

    /// The sandboxes that ended between `before` and `self`, by reason: `0` for none, `?`
    /// when the node does not count them.
    fn ended_since(&self, before: &Sandboxes) -> String {
        let (Some(now), Some(then)) = (&self.ended, &before.ended) else {
            return "?".into();
        };
        let ended: Vec<String> = now
            .iter()
            .map(|(reason, n)| (reason, n - then.get(reason).copied().unwrap_or(0.0)))
            .filter(|(_, n)| *n > 0.0)
            .map(|(reason, n)| format!("{reason} {n:.0}"))
            .collect();
        if ended.is_empty() {
            "0".into()
        } else {
            ended.join(", ")
        }
    }
}

/// The wrk script of `POST path` with `{}`, with the API key when `auth`.
fn script(dir: &Path, file: &str, path: &str, auth: bool) -> PathBuf {
    let mut headers = vec![("Content-Type".into(), "application/json".into())];
    if auth {
        headers.push(("Authorization".into(), format!("Bearer {KEY}")));
    }
    let request = wrk::ScriptRequest {
        method: "POST".into(),
        path: path.into(),
        headers,
        body: "{}".into(),
    };
    wrk::script(dir, file, &[request], 0)
}

struct Row {
    label: String,
    connections: usize,
    loaded: bool,
    measured: wrk::Measured,
    /// CPU µs the server (with its sandboxes) spent per successful request.
    cpu_us: f64,
    /// Cores wrk used meanwhile.
    wrk_cores: f64,
    /// Sandboxes made during the measured run, ended during it (by reason), and live after
    /// it (none for the ceiling).
    made: Option<f64>,
    ended: Option<String>,
    live: Option<f64>,
}

impl Row {
    fn p(&self, d: Option<Duration>) -> f64 {
        d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    }
    fn p50(&self) -> f64 {
        self.p(self.measured.p50)
    }
    fn p99(&self) -> f64 {
        self.p(self.measured.p99)
    }
}

/// What one measured run gave: wrk's figures, server CPU µs per request, wrk's cores, and the
/// node's sandboxes before and after.
struct Run {
    measured: wrk::Measured,
    cpu_us: f64,
    wrk_cores: f64,
    sandboxes: Option<(Sandboxes, Sandboxes)>,
}

fn run(wrk_bin: &Path, case: &Case, connections: usize, secs: u64) -> Run {
    let load = |secs| wrk::Load {
        threads: 1,
        connections,
        secs,
        script: &case.script,
        url: &case.url,
    };
    // Warm-up: as many sandboxes as this concurrency asks for (their cold starts may outlast
    // the first second).
    for _ in 0..5 {
        let (warm, _) = wrk::start(wrk_bin, &load(2)).outcome();
        if warm.ok() > connections as u64 * 10 {
            break;
        }
        eprintln!(
            "  warming up: {} requests, {} errors",
            warm.requests, warm.errors
        );
    }
    let before = case.node.then(|| Sandboxes::of(&case.url));
    let cpu = case.cgroup.usage();
    let started = Instant::now();
    // A run in which no request completed is a row too (a stall is a finding).
    let (measured, wrk_cpu) = wrk::start(wrk_bin, &load(secs)).outcome();
    let wall = started.elapsed().as_secs_f64();
    let cpu_us = (case.cgroup.usage() - cpu) * 1e6 / measured.ok().max(1) as f64;
    Run {
        measured,
        cpu_us,
        wrk_cores: wrk_cpu.as_secs_f64() / wall,
        sandboxes: before.map(|b| (b, Sandboxes::of(&case.url))),
    }
}

/// Every case at each of `counts` connections, the ceiling first at each count.
fn rows(
    wrk_bin: &Path,
    ceiling: &Case,
    cases: &[Case],
    counts: &[usize],
    secs: u64,
    loaded: bool,
) -> Vec<Row> {
    let mut rows = Vec::new();
    for &connections in counts {
        for case in std::iter::once(ceiling).chain(cases) {
            eprintln!(
                "{} at {connections} connections{}",
                case.label,
                if loaded { ", loaded" } else { "" }
            );
            let r = run(wrk_bin, case, connections, secs);
            rows.push(Row {
                label: case.label.clone(),
                connections,
                loaded,
                measured: r.measured,
                cpu_us: r.cpu_us,
                wrk_cores: r.wrk_cores,
                made: r.sandboxes.as_ref().map(|(b, a)| a.made - b.made),
                ended: r.sandboxes.as_ref().map(|(b, a)| a.ended_since(b)),
                live: r.sandboxes.as_ref().map(|(_, a)| a.live),
            });
        }
    }
    rows
}

fn table(rows: &[Row], ceiling: &str) -> String {
    let mut out = String::from(
        "| case | connections | requests/s | p50 ms | p99 ms | p99/p50 | errors | × ceiling | server CPU µs/request | wrk cores | sandboxes made | sandboxes ended | sandboxes live |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let top = rows
            .iter()
            .find(|c| c.label == ceiling && c.connections == r.connections && c.loaded == r.loaded)
            .map_or(f64::NAN, |c| c.measured.rps());
        writeln!(
            out,
            "| {}{} | {} | {:.0} | {:.2} | {:.2} | {:.1} | {} | {:.3} | {:.0} | {:.2} | {} | {} | {} |",
            r.label,
            if r.loaded { " (loaded)" } else { "" },
            r.connections,
            r.measured.rps(),
            r.p50(),
            r.p99(),
            r.p99() / r.p50(),
            r.measured.errors,
            r.measured.rps() / top,
            r.cpu_us,
            r.wrk_cores,
            r.made.map_or("".into(), |n| format!("{n:.0}")),
            r.ended.as_deref().unwrap_or(""),
            r.live.map_or("".into(), |n| format!("{n:.0}")),
        )
        .unwrap();
    }
    out
}

/// The targets of issue 21, each with whether this run met it.
fn targets(rows: &[Row], ceiling: &str) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---|---|\n");
    let mut check = |what: String, measured: String, met: bool| {
        writeln!(
            out,
            "| {what} | {measured} | {} |",
            if met { "yes" } else { "no" }
        )
        .unwrap();
    };
    for r in rows {
        let top = rows
            .iter()
            .find(|c| c.label == ceiling && c.connections == r.connections && c.loaded == r.loaded)
            .map_or(f64::NAN, |c| c.measured.rps());
        if r.label == ceiling {
            continue;
        }
        let name = format!(
            "{}{}, {} connections",
            r.label,
            if r.loaded { " (loaded)" } else { "" },
            r.connections
        );
        if r.connections == 64 {
            if !r.loaded {
                let (rate, share) = if r.label.contains("python") {
                    (9_000.0, 0.085)
                } else {
                    (16_000.0, 0.15)
                };
                check(
                    format!("{name}: ≥ {rate:.0}/s"),
                    format!("{:.0}/s", r.measured.rps()),
                    r.measured.rps() >= rate,
                );
                check(
                    format!("{name}: ≥ {share}× ceiling"),
                    format!("{:.3}×", r.measured.rps() / top),
                    r.measured.rps() / top >= share,
                );
            }
            check(
                format!("{name}: p99 ≤ 3× p50"),
                format!("{:.1}×", r.p99() / r.p50()),
                r.measured.ok() > 0 && r.p99() <= 3.0 * r.p50(),
            );
        }
        if r.connections == 256 {
            // A run that completed nothing meets no target.
            check(
                format!("{name}: no errors"),
                format!("{} ({} completed)", r.measured.errors, r.measured.requests),
                r.measured.errors == 0 && r.measured.ok() > 0,
            );
            check(
                format!("{name}: p99 ≤ 50 ms"),
                format!("{:.1} ms", r.p99()),
                r.measured.ok() > 0 && r.p99() <= 50.0,
            );
        }
    }
    out
}

/// The median of some samples (NaN for none).
fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians of alternated runs of two cases.
struct Alternated {
    rps: [f64; 2],
    cpu_us: [f64; 2],
    p50: [f64; 2],
    p99: [f64; 2],
}

/// How an A/B bench runs: `rounds` rounds at `connections` connections, `secs` each.
struct Alternation<'a> {
    wrk_bin: &'a Path,
    scripts: &'a Path,
    connections: usize,
    secs: u64,
    rounds: usize,
}

/// Runs `POST path` on two nodes (each labelled) alternated a, b, b, a, so that drift in the
/// machine's load falls on both alike; writes each run as a table row to `out` and returns the
/// medians.
fn alternate(
    how: &Alternation<'_>,
    nodes: [(&str, &Node); 2],
    path: &str,
    out: &mut String,
) -> Alternated {
    let &Alternation {
        wrk_bin,
        scripts,
        connections,
        secs,
        rounds,
    } = how;
    let cases = nodes.map(|(label, node)| node_case(scripts, label, node, path));
    let mut samples: [[Vec<f64>; 4]; 2] = Default::default();
    for round in 0..rounds {
        for (k, i) in [0, 1, 1, 0].into_iter().enumerate() {
            let c = &cases[i];
            eprintln!("{} at {connections} connections", c.label);
            let Run {
                measured, cpu_us, ..
            } = run(wrk_bin, c, connections, secs);
            let row = Row {
                label: c.label.clone(),
                connections,
                loaded: false,
                measured,
                cpu_us,
                wrk_cores: 0.0,
                made: None,
                ended: None,
                live: None,
            };
            writeln!(
                out,
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {:.0} |",
                round * 4 + k + 1,
                row.label,
                row.measured.rps(),
                row.p50(),
                row.p99(),
                row.measured.errors,
                row.cpu_us
            )
            .unwrap();
            for (v, x) in
                samples[i]
                    .iter_mut()
                    .zip([row.measured.rps(), row.cpu_us, row.p50(), row.p99()])
            {
                v.push(x);
            }
        }
    }
    let m = |i: usize, j: usize| median(samples[i][j].clone());
    Alternated {
        rps: [m(0, 0), m(1, 0)],
        cpu_us: [m(0, 1), m(1, 1)],
        p50: [m(0, 2), m(1, 2)],
        p99: [m(0, 3), m(1, 3)],
    }
}

const RUNS_HEADER: &str =
    "| run | case | requests/s | p50 ms | p99 ms | errors | server CPU µs/request |\n\
                           |---|---|---|---|---|---|---|\n";

/// Two nodes, each in its own cgroup, the second started with `flags_b`; a case of each for
/// `path` labelled with `labels`.
fn two_nodes(echo: &[u8], labels: [&str; 2], flags_b: &[&str]) -> (Cleanup, [Node; 2]) {
    let id = std::process::id();
    let cg = labels.map(|l| CpuCgroup::create(&format!("throughput-{id}-{l}"), None));
    let cleanup = Cleanup(cg.to_vec());
    let [a, b] = cg;
    (
        cleanup,
        [Node::start(echo, a, &[]), Node::start(echo, b, flags_b)],
    )
}

fn node_case(scripts: &Path, label: &str, node: &Node, path: &str) -> Case {
    Case {
        label: label.into(),
        url: node.server.url.clone(),
        cgroup: node.cgroup.clone(),
        script: script(scripts, label, path, true),
        node: true,
    }
}

/// Activation records on against off (`LAMBENT_BENCH_ONLY=records`): two `lambent up`, one
/// writing records (the default) and one started with `--no-activation-records`, both serving
/// the compiled `provided` no-op; `POST /v1/functions/noop-provided/invoke` at `connections`
/// connections, [`alternate`]d. Prints every run, then the medians and the ratio off/on of
/// requests/s and on/off of server CPU per request.
fn records_on_off(echo: &[u8], how: &Alternation<'_>) -> String {
    let (_cleanup, [on, off]) = two_nodes(
        echo,
        ["records-on", "records-off"],
        &["--no-activation-records"],
    );
    let &Alternation {
        connections,
        secs,
        rounds,
        ..
    } = how;
    let path = "/v1/functions/noop-provided/invoke";
    let started = Instant::now();
    let mut out = format!(
        "## Activation records on against off\n\n{} cores; compiled `provided` no-op, `POST {path}`, \
         {connections} connections, wrk -t1, {secs} s per run after a warm-up, a-b-b-a × {rounds}.\n\n\
         {RUNS_HEADER}",
        cores()
    );
    let m = alternate(
        how,
        [("records-on", &on), ("records-off", &off)],
        path,
        &mut out,
    );
    // The switch did what it says: the node with records off has none, the other has some.
    let recorded = |node: &Node| -> usize {
        let v: Value = reqwest::blocking::Client::new()
            .get(format!("{}/v1/activations?limit=5", node.server.url))
            .bearer_auth(KEY)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["activations"].as_array().map_or(0, Vec::len)
    };
    let (on_kept, off_kept) = (recorded(&on), recorded(&off));
    assert!(
        on_kept > 0 && off_kept == 0,
        "records on: {on_kept}, off: {off_kept}"
    );
    writeln!(
        out,
        "\nMedians: records on {:.0}/s ({:.0} µs CPU/request), records off \
         {:.0}/s ({:.0} µs CPU/request). Records on ÷ off: requests/s {:.3}, \
         CPU per request {:.3}. {:.0} s in all.",
        m.rps[0],
        m.cpu_us[0],
        m.rps[1],
        m.cpu_us[1],
        m.rps[0] / m.rps[1],
        m.cpu_us[0] / m.cpu_us[1],
        started.elapsed().as_secs_f64()
    )
    .unwrap();
    out
}

/// Pools held while their runtimes want the CPU against never held
/// (`LAMBENT_BENCH_ONLY=hold`): two `lambent up`, one with the default `--runnable-per-core`
/// and one with `--runnable-per-core 0`; `POST /v1/functions/F/invoke` for each no-op and the
/// function that computes at `connections` connections, [`alternate`]d. Prints every run,
/// then per function the medians, and held ÷ not held of p99 and requests/s, and the sandboxes
/// each node ended up with.
fn hold_on_off(echo: &[u8], how: &Alternation<'_>) -> String {
    let (_cleanup, nodes) = two_nodes(echo, ["held", "never-held"], &["--runnable-per-core", "0"]);
    let &Alternation {
        connections,
        secs,
        rounds,
        ..
    } = how;
    let started = Instant::now();
    let mut out = format!(
        "## Pools held while their runtimes want the CPU, against never held\n\n{} cores; \
         `POST /v1/functions/F/invoke`, {connections} connections, wrk -t1, {secs} s per run \
         after a warm-up, a-b-b-a × {rounds}; held: the default `--runnable-per-core`, never \
         held: `--runnable-per-core 0`.\n\n{RUNS_HEADER}",
        cores()
    );
    let mut summary = String::new();
    for (name, ..) in functions(echo) {
        let labels = [format!("held {name}"), format!("never-held {name}")];
        let m = alternate(
            how,
            [(&labels[0], &nodes[0]), (&labels[1], &nodes[1])],
            &format!("/v1/functions/{name}/invoke"),
            &mut out,
        );
        let live = nodes.each_ref().map(|n| Sandboxes::of(&n.server.url).live);
        writeln!(
            summary,
            "| {name} | {:.0} / {:.0} | {:.1} / {:.1} | {:.1} / {:.1} | {:.0} / {:.0} | {:.2} | {:.3} | {} / {} |",
            m.rps[0],
            m.rps[1],
            m.p50[0],
            m.p50[1],
            m.p99[0],
            m.p99[1],
            m.cpu_us[0],
            m.cpu_us[1],
            m.p99[0] / m.p99[1],
            m.rps[0] / m.rps[1],
            live[0],
            live[1],
        )
        .unwrap();
    }
    writeln!(
        out,
        "\nMedians, held / never held:\n\n\
         | function | requests/s | p50 ms | p99 ms | CPU µs/request | p99 held ÷ not | requests/s held ÷ not | sandboxes live after |\n\
         |---|---|---|---|---|---|---|---|\n{summary}\n{:.0} s in all.",
        started.elapsed().as_secs_f64()
    )
    .unwrap();
    out
}

/// One of the A/B benches: (echo runtime, how to run) → its report.
type AbBench = fn(&[u8], &Alternation<'_>) -> String;

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("ceiling") => return serve_ceiling(),
        Ok("burner") => return burn(),
        _ => {}
    }
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "the throughput bench starts sandboxes: run it as root"
    );
    let wrk_bin = wrk::find();
    let secs: u64 = env_or("LAMBENT_BENCH_SECS", 5);
    let counts = env_list("LAMBENT_BENCH_CONNECTIONS", &[1, 8, 64, 256]);
    let loaded_counts = env_list("LAMBENT_BENCH_LOADED", &[64, 256]);
    let burn_share: f64 = env_or("LAMBENT_BENCH_BURN", 0.5);
    let only = std::env::var("LAMBENT_BENCH_ONLY").ok();

    let echo = echo_runtime();
    let ab: Option<(AbBench, usize)> = match only.as_deref() {
        Some("records") => Some((records_on_off, 64)),
        Some("hold") => Some((hold_on_off, 256)),
        _ => None,
    };
    if let Some((ab, connections)) = ab {
        let connections = env_list("LAMBENT_BENCH_CONNECTIONS", &[connections])
            .into_iter()
            .max()
            .unwrap_or(connections);
        let scripts = tempfile::tempdir().unwrap();
        let how = Alternation {
            wrk_bin: &wrk_bin,
            scripts: scripts.path(),
            connections,
            secs,
            rounds: env_or("LAMBENT_BENCH_ROUNDS", 3),
        };
        println!("{}", ab(&echo, &how));
        return;
    }
    let node_cg = CpuCgroup::create(&format!("throughput-{}", std::process::id()), None);
    let ceiling_cg = CpuCgroup::create(&format!("throughput-{}-ceiling", std::process::id()), None);
    // Declared before the processes inside them: dropped (removed) after they stop, a panic
    // included.
    let _cleanup = Cleanup(vec![node_cg.clone(), ceiling_cg.clone()]);
    let flags = std::env::var("LAMBENT_BENCH_FLAGS").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let node = Node::start(&echo, node_cg, &flags);
    let mut ceiling = Helper::start("ceiling", Some(&ceiling_cg));
    let ceiling_url = format!("http://{}", ceiling.line());

    let scripts = tempfile::tempdir().unwrap();
    let ceiling_case = Case {
        label: "ceiling: hyper, same POST".into(),
        url: ceiling_url,
        cgroup: ceiling_cg.clone(),
        script: script(
            scripts.path(),
            "ceiling",
            "/v1/functions/noop/invoke",
            false,
        ),
        node: false,
    };
    let mut cases = Vec::new();
    for (name, ..) in functions(&echo) {
        if !name.starts_with("noop-") {
            continue;
        }
        for (entry, path, auth) in [
            ("invoke", format!("/v1/functions/{name}/invoke"), true),
            ("route", format!("/{name}"), false),
        ] {
            let label = format!("{entry} {name}");
            if only.as_deref().is_some_and(|o| !label.contains(o)) {
                continue;
            }
            cases.push(Case {
                script: script(scripts.path(), &format!("{entry}-{name}"), &path, auth),
                label,
                url: node.server.url.clone(),
                cgroup: node.cgroup.clone(),
                node: true,
            });
        }
    }

    let started = Instant::now();
    let mut all = rows(&wrk_bin, &ceiling_case, &cases, &counts, secs, false);
    if !loaded_counts.is_empty() {
        let burner = Helper::start("burner", None);
        all.extend(rows(
            &wrk_bin,
            &ceiling_case,
            &cases,
            &loaded_counts,
            secs,
            true,
        ));
        drop(burner);
    }
    let mut report = String::new();
    writeln!(
        report,
        "## Warm throughput from outside\n\n{} cores; `lambent up` (SQLite, activation records on) \
         against the ceiling (hyper, {} worker threads, same POST and body); wrk -t1, {secs} s per \
         run after a warm-up; loaded: a burner process, {} threads each busy {:.0}% of every \
         10 ms. {:.0} s in all.{}\n",
        cores(),
        cores(),
        cores(),
        burn_share * 100.0,
        started.elapsed().as_secs_f64(),
        if flags.is_empty() {
            String::new()
        } else {
            format!(" `lambent up` flags: `{}`.", flags.join(" "))
        },
    )
    .unwrap();
    report.push_str(&table(&all, &ceiling_case.label));
    report.push('\n');
    report.push_str(&targets(&all, &ceiling_case.label));
    println!("{report}");
    let out = Path::new(support::BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(
            || PathBuf::from("throughput_bench.md"),
            |t| t.join("throughput_bench.md"),
        );
    std::fs::write(&out, &report).unwrap();
    eprintln!("written to {}", out.display());
}
