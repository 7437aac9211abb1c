//! The cold-start benchmark of issue 5, on real nodes (full isolation, SQLite, the embedded
//! runtime clients), printed as ONE markdown table in which every row has a naive baseline
//! measured in the same run:
//!
//! - Python hello world, request to response, on a node with Python zygotes, against a node
//!   without them (`python_zygote: false`: a fresh `python3` exec into the same sandbox);
//! - the same with a vendored package (`depkg/`, 40 generated modules) that the function's
//!   package zygote has already imported (one function, cold-started again and again on a node
//!   whose keep-alive expires its sandbox before each), against a fresh exec that imports it;
//! - a Python handler that imports boto3 (the runtime's, not bundled) and makes a `lambda`
//!   client at module level, forked from the zygote that has imported boto3 already, against a
//!   fresh `python3` exec doing the same;
//! - Node.js hello world with stem cells, against a fresh `node` exec (`node_stem_cells: false`);
//! - the compiled `provided` echo runtime, against the same program as a plain process (a node
//!   with `--insecure-no-sandbox`);
//! - the memory an idle warm Python sandbox adds (its private pages; its PSS beside them), with
//!   and without zygotes;
//! - 200 different Python functions cold-started at once;
//! - the very first Python, Node.js and `provided` cold starts of fresh nodes, each once it
//!   says it is ready (`/healthz`'s `ready`, what `lambent up` waits for), against the later
//!   cold starts of the same nodes.
//!
//! A cold start sample deploys a new function (not timed), then times one
//! `POST /v1/functions/{name}/invoke` until the whole answer is read, and checks the answer.
//! Each row first makes a few untimed cold starts on each node (they start the zygote or stem
//! cells on first need), then samples the fast node and the baseline node in turn, pausing
//! after each cold start so sandboxes made ahead can refill. From the activation records: the
//! median init duration (`init_us`) of the fast node's cold starts, and the birth of each
//! sandbox (`init.birth`: exec, ahead, zygote, stem_cell) when the API reports it.
//!
//! Run: `cargo bench -p lambent-server --bench cold_start` (root needed). Settings:
//! `LAMBENT_BENCH_N` cold starts per row and node (default 30), `LAMBENT_BENCH_PACE_MS` the
//! pause after each (default 50), `LAMBENT_BENCH_PSS_FUNCTIONS` warm functions in the memory
//! row (default 10), `LAMBENT_BENCH_CONCURRENT` functions started at once (default 200),
//! `LAMBENT_BENCH_FRESH_NODES` fresh nodes of the first-cold-start rows (default 5),
//! `LAMBENT_BENCH_ONLY` a comma-separated list of the rows to run (`python`, `depkg`, `boto3`,
//! `node`, `provided`, `first`, `pss`, `concurrent`; default all). The boto3 row waits until the nodes
//! have the SDKs (fetched once per machine into `LAMBENT_SDK_DIR`). The table is also written to
//! `$CARGO_TARGET_DIR/cold_start.md` (default `target/`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use comfy_table::{presets::ASCII_MARKDOWN, Table};
use common::{header, node_with, Node};
use lambent_sandbox::Layers;
use lambent_server::ServerOptions;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{env_or, ms, quantile, stats, zip_of, Stats};

/// Untimed cold starts per row and node before sampling.
const WARMUP: usize = 2;
/// The pause after each warm-up cold start: time for a zygote or stem cells to start.
const SETTLE: Duration = Duration::from_millis(1000);
/// Every benchmark function's memory, MB.
const MEMORY_MB: u64 = 128;
/// Modules of the vendored package, each a few classes and functions: a fresh import of all of
/// them (compiled from source: the code is read-only, no `.pyc` is written) costs 15-30 ms here.
const DEPKG_MODULES: usize = 40;

const PYTHON_HELLO: &str = "def handler(event, context):\n    return {'hello': event['who']}\n";
const PYTHON_WITH_DEPKG: &str = "import depkg\n\n\
    def handler(event, context):\n    return {'hello': event['who'], 'checksum': depkg.checksum()}\n";
const PYTHON_BOTO3: &str = "import boto3\n\nCLIENT = boto3.client('lambda')\n\n\
    def handler(event, context):\n    return {'hello': event['who']}\n";
const NODE_HELLO: &str = "export const handler = async (event) => ({ hello: event.who });\n";
/// Answers the proportional set size of its runtime, the only process of its sandbox.
const PYTHON_PSS: &str = "def handler(event, context):\n    \
    fields = {}\n    \
    with open('/proc/self/smaps_rollup') as f:\n        \
    for line in f:\n            \
    parts = line.split()\n            \
    if len(parts) == 3 and parts[2] == 'kB':\n                \
    fields[parts[0].rstrip(':')] = int(parts[1])\n    \
    private = fields['Private_Clean'] + fields['Private_Dirty']\n    \
    return {'hello': event['who'], 'pss_kb': fields['Pss'], 'private_kb': private}\n";

struct Settings {
    samples: usize,
    pace: Duration,
    pss_functions: usize,
    concurrent: usize,
    /// Fresh nodes of the first-cold-start rows.
    fresh_nodes: usize,
    /// The rows to run (`LAMBENT_BENCH_ONLY`); `None`: all.
    only: Option<Vec<String>>,
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            samples: support::samples(30),
            pace: Duration::from_millis(env_or("LAMBENT_BENCH_PACE_MS", 50)),
            pss_functions: env_or("LAMBENT_BENCH_PSS_FUNCTIONS", 10),
            concurrent: env_or("LAMBENT_BENCH_CONCURRENT", 200),
            fresh_nodes: env_or("LAMBENT_BENCH_FRESH_NODES", 5),
            only: std::env::var("LAMBENT_BENCH_ONLY")
                .ok()
                .map(|rows| rows.split(',').map(|r| r.trim().to_string()).collect()),
        }
    }

    /// Whether the row `name` runs.
    fn runs(&self, name: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|r| r == name))
    }

    /// Enough memory budget for every function of the concurrent row to have its sandbox at
    /// once, with room to spare (the default, three quarters of the host's memory, may queue).
    fn memory_budget_mb(&self) -> u64 {
        self.concurrent as u64 * MEMORY_MB + 8192
    }

    /// How long an invocation may wait for sandbox memory: long enough that queueing shows as
    /// latency in the table rather than as `429`s.
    const QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

    fn apply(&self, opts: &mut ServerOptions, layers: Layers) {
        opts.isolation_layers = layers;
        opts.memory_budget_mb = Some(self.memory_budget_mb());
        opts.queue_timeout = Self::QUEUE_TIMEOUT;
    }
}

/// A function to cold-start: its settings and code, and what it answers.
struct Case {
    runtime: &'static str,
    handler: &'static str,
    files: Vec<(String, Vec<u8>)>,
    /// The answer of the function named `name` to the event `{"who": name}`.
    answer: fn(&str) -> Value,
}

fn hello(name: &str) -> Value {
    json!({"hello": name})
}

impl Case {
    fn python_hello() -> Case {
        Case {
            runtime: "python3.12",
            handler: "app.handler",
            files: vec![("app.py".into(), PYTHON_HELLO.into())],
            answer: hello,
        }
    }

    /// A handler that imports a vendored package, the same content in every function.
    fn python_with_depkg() -> Case {
        let mut files = vec![("app.py".into(), PYTHON_WITH_DEPKG.into())];
        files.extend(depkg());
        Case {
            runtime: "python3.12",
            handler: "app.handler",
            files,
            answer: |name| json!({"hello": name, "checksum": depkg_checksum()}),
        }
    }

    /// A handler that imports the runtime's boto3 and makes a client at module level.
    fn python_boto3() -> Case {
        Case {
            runtime: "python3.12",
            handler: "app.handler",
            files: vec![("app.py".into(), PYTHON_BOTO3.into())],
            answer: hello,
        }
    }

    fn node_hello() -> Case {
        Case {
            runtime: "nodejs20.x",
            handler: "index.handler",
            files: vec![("index.mjs".into(), NODE_HELLO.into())],
            answer: hello,
        }
    }

    /// The compiled echo runtime: answers the event itself.
    fn provided_echo() -> Case {
        Case {
            runtime: "provided",
            handler: "bootstrap",
            files: vec![("bootstrap".into(), support::echo_runtime())],
            answer: |name| json!({"who": name}),
        }
    }

    fn python_pss() -> Case {
        Case {
            runtime: "python3.12",
            handler: "app.handler",
            files: vec![("app.py".into(), PYTHON_PSS.into())],
            answer: hello,
        }
    }

    fn zip(&self) -> Vec<u8> {
        let files: Vec<(&str, &[u8])> = self
            .files
            .iter()
            .map(|(name, body)| (name.as_str(), body.as_slice()))
            .collect();
        zip_of(&files)
    }
}

/// The package `depkg/`: `DEPKG_MODULES` modules of classes and functions, and an `__init__`
/// that imports them all and sums their `VALUE`s.
fn depkg() -> Vec<(String, Vec<u8>)> {
    let mut init = String::new();
    for i in 0..DEPKG_MODULES {
        writeln!(init, "from depkg import mod_{i:02} as _m{i:02}").unwrap();
    }
    let modules: Vec<String> = (0..DEPKG_MODULES).map(|i| format!("_m{i:02}")).collect();
    writeln!(
        init,
        "\ndef checksum():\n    return sum(m.VALUE for m in ({},))",
        modules.join(", ")
    )
    .unwrap();
    let mut files = vec![("depkg/__init__.py".to_string(), init.into_bytes())];
    for i in 0..DEPKG_MODULES {
        let mut module = format!("VALUE = {i}\n");
        for class in 0..2 {
            writeln!(
                module,
                "\nclass Thing{class}:\n    def __init__(self, x={class}):\n        self.x = x"
            )
            .unwrap();
            for method in 0..3 {
                writeln!(
                    module,
                    "\n    def method{method}(self, y):\n        return self.x + y * {method}"
                )
                .unwrap();
            }
        }
        for function in 0..3 {
            writeln!(
                module,
                "\ndef func{function}(a, b={function}):\n    return [k * b for k in range(a)]"
            )
            .unwrap();
        }
        files.push((format!("depkg/mod_{i:02}.py"), module.into_bytes()));
    }
    files
}

/// What `depkg.checksum()` returns: the sum of the modules' `VALUE`s.
fn depkg_checksum() -> usize {
    (0..DEPKG_MODULES).sum()
}

/// Uploads `case`'s code and deploys it as `name` (`memory` 128).
async fn deploy(node: &Node, name: &str, case: &Case) {
    let settings = json!({"runtime": case.runtime, "handler": case.handler, "memory": MEMORY_MB});
    let (status, v) = node.deploy_zip(name, settings, case.zip()).await;
    assert!(status.is_success(), "deploy {name}: {status} {v}");
}

async fn delete(node: &Node, names: &[String]) {
    for name in names {
        let (status, _, v) = node
            .send(Method::DELETE, &format!("/v1/functions/{name}"), vec![])
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "delete {name}: {v}");
    }
}

/// One invocation of `name` with the event `{"who": name}`, timed from the request to the
/// whole answer. Returns the time, the activation id and the answer, or what was wrong with it:
/// not a success, not `cold` as expected, or another answer than `case`'s.
async fn invoke(
    node: &Node,
    name: &str,
    case: &Case,
    cold: bool,
) -> Result<(Duration, String, Value), String> {
    let event = json!({"who": name}).to_string();
    let started = Instant::now();
    let (status, headers, body) = node.invoke(name, &event).await;
    let took = started.elapsed();
    let fate = header(&headers, "lambent-status");
    if status != StatusCode::OK || fate != "success" {
        return Err(format!("{name}: {status} {fate} {body}"));
    }
    if header(&headers, "lambent-cold") != cold.to_string() {
        return Err(format!("{name}: lambent-cold is not {cold}"));
    }
    let expected = (case.answer)(name);
    let answered = match (body.as_object(), expected.as_object()) {
        // Extra fields (the memory row's `pss_kb`) are the function's to add.
        (Some(got), Some(want)) => want.iter().all(|(k, v)| got.get(k) == Some(v)),
        _ => body == expected,
    };
    if !answered {
        return Err(format!("{name} answered {body}, expected {expected}"));
    }
    let id = header(&headers, "lambent-activation-id").to_string();
    Ok((took, id, body))
}

/// Deploys `case` as the new function `name` (not timed), then times its first invocation.
async fn cold_start(node: &Node, name: &str, case: &Case) -> (Duration, String) {
    deploy(node, name, case).await;
    let (took, id, _) = invoke(node, name, case, true)
        .await
        .unwrap_or_else(|e| panic!("cold start: {e}"));
    (took, id)
}

/// What the activation records of cold starts say about them.
struct Records {
    /// How their sandboxes were born, counted (`zygote 30`), or `not reported` while records
    /// do not say (`init.birth`).
    births: String,
    /// The median of their init durations (`init_us`): the part of the latency spent getting
    /// the sandbox and its runtime ready; then the median of each phase (`init.sandbox_us`,
    /// `init.runtime_us`, `init.import_us`).
    init_p50: String,
}

/// The init phases an activation record splits its init duration into (`init.*_us`).
const PHASES: [&str; 3] = ["sandbox_us", "runtime_us", "import_us"];

async fn records(node: &Node, activations: &[String]) -> Records {
    let mut births: BTreeMap<String, usize> = BTreeMap::new();
    let mut init = Vec::new();
    let mut phases: [Vec<Duration>; 3] = Default::default();
    for id in activations {
        let (status, _, v) = node
            .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
            .await;
        assert!(status.is_success(), "activation {id}: {status} {v}");
        let birth = v["init"]["birth"].as_str().unwrap_or("not reported");
        *births.entry(birth.to_string()).or_default() += 1;
        init.extend(v["init_us"].as_u64().map(Duration::from_micros));
        for (phase, values) in PHASES.iter().zip(&mut phases) {
            values.extend(v["init"][phase].as_u64().map(Duration::from_micros));
        }
    }
    let breakdown: Vec<String> = PHASES
        .iter()
        .zip(phases)
        .filter(|(_, values)| !values.is_empty())
        .map(|(phase, values)| {
            let name = phase.trim_end_matches("_us");
            format!("{name} {}", ms(stats(values).p50))
        })
        .collect();
    Records {
        births: births
            .iter()
            .map(|(birth, n)| format!("{birth} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        init_p50: match (init.is_empty(), breakdown.is_empty()) {
            (true, _) => "not reported".into(),
            (false, true) => format!("{} ms", ms(stats(init).p50)),
            (false, false) => format!("{} ms ({})", ms(stats(init).p50), breakdown.join(", ")),
        },
    }
}

/// Cold starts of `case` on one node, as its part of a row.
struct Series {
    latency: Stats,
    records: Records,
}

/// [`WARMUP`] untimed cold starts of `case`, each of a new function `<prefix>-warmup-<i>`,
/// with time to settle after each: a node's first cold starts start its zygote or stem cells
/// (until they are up, sandboxes made ahead `execve` the runtime). Returns the functions' names.
async fn warm_up(node: &Node, prefix: &str, case: &Case) -> Vec<String> {
    let mut names = Vec::new();
    for w in 0..WARMUP {
        let name = format!("{prefix}-warmup-{w}");
        cold_start(node, &name, case).await;
        names.push(name);
        tokio::time::sleep(SETTLE).await;
    }
    names
}

/// Warm-up cold starts, then `settings.samples` timed ones, each of a new function
/// `<prefix>-<i>`, paced; every function is deleted afterwards (its sandbox with it).
async fn cold_series(settings: &Settings, node: &Node, prefix: &str, case: &Case) -> Series {
    let mut names = warm_up(node, prefix, case).await;
    let (mut latency, mut activations) = (Vec::new(), Vec::new());
    for i in 0..settings.samples {
        let name = format!("{prefix}-{i}");
        let (took, id) = cold_start(node, &name, case).await;
        latency.push(took);
        activations.push(id);
        names.push(name);
        tokio::time::sleep(settings.pace).await;
    }
    let records = records(node, &activations).await;
    delete(node, &names).await;
    Series {
        latency: stats(latency),
        records,
    }
}

/// Keep-alive of the node whose row cold-starts one function again and again.
const EXPIRING_KEEP_ALIVE: Duration = Duration::from_millis(100);

/// Cold starts of the one function `name`, deployed once, whose sandbox expires before each
/// (on a node with keep-alive [`EXPIRING_KEEP_ALIVE`]): what a function's package zygote
/// serves. Warm-up: cold starts until one is born `warm_birth` (the zygote is built in the
/// background after the first), then `settings.samples` timed ones.
async fn expiring_series(
    settings: &Settings,
    node: &Node,
    name: &str,
    case: &Case,
    warm_birth: &str,
) -> Series {
    let expire = || tokio::time::sleep(EXPIRING_KEEP_ALIVE * 3 + settings.pace);
    deploy(node, name, case).await;
    let mut born = String::new();
    for _ in 0..100 {
        let (_, id, _) = invoke(node, name, case, true)
            .await
            .unwrap_or_else(|e| panic!("warm-up cold start: {e}"));
        born = records(node, &[id]).await.births;
        if born.starts_with(warm_birth) {
            break;
        }
        expire().await;
    }
    assert!(
        born.starts_with(warm_birth),
        "never born {warm_birth}: {born}"
    );
    let (mut latency, mut activations) = (Vec::new(), Vec::new());
    for _ in 0..settings.samples {
        expire().await;
        let (took, id, _) = invoke(node, name, case, true)
            .await
            .unwrap_or_else(|e| panic!("cold start: {e}"));
        latency.push(took);
        activations.push(id);
    }
    let records = records(node, &activations).await;
    delete(node, &[name.to_string()]).await;
    Series {
        latency: stats(latency),
        records,
    }
}

/// One line of the table.
struct Row {
    what: String,
    n: usize,
    p50: String,
    p99: String,
    target: String,
    met: String,
    baseline: String,
    baseline_p50: String,
    baseline_p99: String,
    ratio: String,
    /// The fast node's median init duration, from its activation records.
    init_p50: String,
    births: String,
    baseline_births: String,
}

fn ratio(fast: f64, baseline: f64) -> String {
    format!("{:.2}x", fast / baseline)
}

fn yes_no(met: bool) -> String {
    if met { "yes" } else { "no" }.into()
}

/// A row of cold starts: `case` on the fast node against `baseline_case` on the baseline node,
/// each cold start a new function.
async fn cold_row(
    settings: &Settings,
    what: &str,
    target: Duration,
    (fast, fast_case): (&Node, &Case),
    (baseline_node, baseline_case, baseline): (&Node, &Case, &str),
    prefix: &str,
) -> Row {
    let f = cold_series(settings, fast, prefix, fast_case).await;
    let b = cold_series(settings, baseline_node, prefix, baseline_case).await;
    row_of(what, target, f, b, baseline)
}

/// A row from the fast and the baseline series.
fn row_of(what: &str, target: Duration, f: Series, b: Series, baseline: &str) -> Row {
    Row {
        what: what.into(),
        n: f.latency.n,
        p50: format!("{} ms", ms(f.latency.p50)),
        p99: format!("{} ms", ms(f.latency.p99)),
        target: format!("≤ {} ms", target.as_millis()),
        met: yes_no(f.latency.p50 <= target),
        baseline: baseline.into(),
        baseline_p50: format!("{} ms", ms(b.latency.p50)),
        baseline_p99: format!("{} ms", ms(b.latency.p99)),
        ratio: ratio(f.latency.p50.as_secs_f64(), b.latency.p50.as_secs_f64()),
        init_p50: f.records.init_p50,
        births: f.records.births,
        baseline_births: b.records.births,
    }
}

/// The births (`init.birth`) of the records `ids` on `node`, added to `births`.
async fn count_births(node: &Node, ids: &[String], births: &mut BTreeMap<String, usize>) {
    for id in ids {
        let (status, _, v) = node
            .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
            .await;
        assert!(status.is_success(), "activation {id}: {status} {v}");
        let birth = v["init"]["birth"].as_str().unwrap_or("not reported");
        *births.entry(birth.to_string()).or_default() += 1;
    }
}

fn births_of(births: &BTreeMap<String, usize>) -> String {
    births
        .iter()
        .map(|(birth, n)| format!("{birth} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Cold starts after start-up: `settings.fresh_nodes` nodes in turn, each started and waited
/// for until it says it is ready (`/healthz`'s `ready`, which `lambent up` waits for), then
/// the very first cold start of each case, then [`LATER`] more of each on the same node,
/// paced. One row per case: the first cold starts against the later ones of the same nodes.
async fn first_after_ready_rows(settings: &Settings, cases: &[(&str, &Case)]) -> Vec<Row> {
    const LATER: usize = 3;
    let mut first: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut later: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut first_births = vec![BTreeMap::new(); cases.len()];
    let mut later_births = vec![BTreeMap::new(); cases.len()];
    let mut ready_after = Vec::new();
    for k in 0..settings.fresh_nodes {
        let started = Instant::now();
        let mut node = node_with(|o| settings.apply(o, Layers::ALL)).await;
        let warming = node
            .server
            .as_ref()
            .unwrap()
            .warmed_up(Duration::from_secs(60))
            .await;
        assert!(warming.is_empty(), "still warming up: {warming:?}");
        ready_after.push(started.elapsed());
        for (i, (_, case)) in cases.iter().enumerate() {
            let (took, id) = cold_start(&node, &format!("first-{k}-{i}"), case).await;
            first[i].push(took);
            count_births(&node, &[id], &mut first_births[i]).await;
        }
        for j in 0..LATER {
            tokio::time::sleep(settings.pace).await;
            for (i, (_, case)) in cases.iter().enumerate() {
                let (took, id) = cold_start(&node, &format!("later-{k}-{i}-{j}"), case).await;
                later[i].push(took);
                count_births(&node, &[id], &mut later_births[i]).await;
                tokio::time::sleep(settings.pace).await;
            }
        }
        node.stop().await;
    }
    let ready = stats(ready_after);
    cases
        .iter()
        .enumerate()
        .map(|(i, (what, _))| {
            let (f, l) = (stats(first[i].clone()), stats(later[i].clone()));
            Row {
                what: format!(
                    "first {what} cold start once /healthz says ready (a fresh node each; ready {} ms after start, p50)",
                    ms(ready.p50)
                ),
                n: f.n,
                p50: format!("{} ms", ms(f.p50)),
                p99: format!("{} ms", ms(f.p99)),
                target: "≤ 1.25x later".into(),
                met: yes_no(f.p50.as_secs_f64() <= 1.25 * l.p50.as_secs_f64()),
                baseline: format!("the next {LATER} cold starts of each node"),
                baseline_p50: format!("{} ms", ms(l.p50)),
                baseline_p99: format!("{} ms", ms(l.p99)),
                ratio: ratio(f.p50.as_secs_f64(), l.p50.as_secs_f64()),
                init_p50: "—".into(),
                births: births_of(&first_births[i]),
                baseline_births: births_of(&later_births[i]),
            }
        })
        .collect()
}

/// The memory of `count` idle warm Python sandboxes, each its runtime's own pages (private,
/// kB) and its proportional set size (kB): each function is invoked once (its cold start),
/// then, after a pause, again; the second answers count. Returns both sorted, and the records
/// of the cold starts.
async fn idle_memory(
    settings: &Settings,
    node: &Node,
    prefix: &str,
) -> (Vec<u64>, Vec<u64>, Records) {
    let case = Case::python_pss();
    let warmed = warm_up(node, prefix, &case).await;
    delete(node, &warmed).await;
    let names: Vec<String> = (0..settings.pss_functions)
        .map(|i| format!("{prefix}-{i}"))
        .collect();
    let mut activations = Vec::new();
    for name in &names {
        activations.push(cold_start(node, name, &case).await.1);
        tokio::time::sleep(settings.pace).await;
    }
    tokio::time::sleep(SETTLE).await;
    let (mut private, mut pss) = (Vec::new(), Vec::new());
    for name in &names {
        let (_, _, body) = invoke(node, name, &case, false)
            .await
            .unwrap_or_else(|e| panic!("warm invoke: {e}"));
        private.push(body["private_kb"].as_u64().expect("private_kb"));
        pss.push(body["pss_kb"].as_u64().expect("pss_kb"));
    }
    private.sort();
    pss.sort();
    let records = records(node, &activations).await;
    delete(node, &names).await;
    (private, pss, records)
}

/// What an idle warm Python sandbox adds: its runtime's own (private) pages. Its PSS also
/// holds a share of every page it shares with the zygote, split among the few sandboxes of this
/// row (with 10, a tenth of the zygote's), so it is shown beside them, not held to the target:
/// the density bench measures PSS with hundreds of sandboxes sharing.
async fn pss_row(settings: &Settings, fast: &Node, naive: &Node) -> Row {
    let (f, f_pss, f_records) = idle_memory(settings, fast, "pss").await;
    let (b, b_pss, b_records) = idle_memory(settings, naive, "pss").await;
    let mb = |kb: u64| format!("{:.2} MB", kb as f64 / 1024.0);
    const TARGET_KB: u64 = 2560;
    Row {
        what: format!(
            "idle warm Python sandbox, its own memory (private pages; median and p99 of {} \
             functions; PSS {} against {}, shares of the zygote or interpreter counted)",
            f.len(),
            mb(quantile(&f_pss, 0.5)),
            mb(quantile(&b_pss, 0.5)),
        ),
        n: f.len(),
        p50: mb(quantile(&f, 0.5)),
        p99: mb(quantile(&f, 0.99)),
        target: "≤ 2.5 MB".into(),
        met: yes_no(quantile(&f, 0.5) <= TARGET_KB),
        baseline: "independent interpreter (python_zygote: false)".into(),
        baseline_p50: mb(quantile(&b, 0.5)),
        baseline_p99: mb(quantile(&b, 0.99)),
        ratio: ratio(quantile(&f, 0.5) as f64, quantile(&b, 0.5) as f64),
        init_p50: f_records.init_p50,
        births: f_records.births,
        baseline_births: b_records.births,
    }
}

/// `settings.concurrent` different Python functions deployed (not timed), then all invoked at
/// once: their latencies, the time until the last answer, and how many answered correctly.
async fn concurrent_row(settings: &Settings, node: Arc<Node>) -> Row {
    const WITHIN: Duration = Duration::from_secs(2);
    let case = Arc::new(Case::python_hello());
    let names: Vec<String> = (0..settings.concurrent)
        .map(|i| format!("burst-{i}"))
        .collect();
    for name in &names {
        deploy(&node, name, &case).await;
    }
    // Time for the pools of sandboxes made ahead to refill after the deploys.
    tokio::time::sleep(SETTLE).await;
    let started = Instant::now();
    let calls: Vec<_> = names
        .iter()
        .map(|name| {
            let (node, case, name) = (node.clone(), case.clone(), name.clone());
            tokio::spawn(async move { invoke(&node, &name, &case, true).await })
        })
        .collect();
    let (mut latency, mut activations, mut failures) = (Vec::new(), Vec::new(), Vec::new());
    for call in calls {
        match call.await.unwrap() {
            Ok((took, id, _)) => {
                latency.push(took);
                activations.push(id);
            }
            Err(e) => failures.push(e),
        }
    }
    let wall = started.elapsed();
    let records = records(&node, &activations).await;
    delete(&node, &names).await;
    if let Some(first) = failures.first() {
        eprintln!(
            "{} of the concurrent cold starts failed, first: {first}",
            failures.len()
        );
    }
    let correct = latency.len();
    assert!(correct > 0, "no concurrent cold start succeeded");
    let s = stats(latency);
    Row {
        what: format!(
            "{} different functions cold-started concurrently",
            settings.concurrent
        ),
        n: s.n,
        p50: format!("{} ms", ms(s.p50)),
        p99: format!("{} ms", ms(s.p99)),
        target: format!("all answered within {} s", WITHIN.as_secs()),
        met: format!(
            "{}: last answer after {} ms, {correct}/{} correct",
            yes_no(failures.is_empty() && wall <= WITHIN),
            ms(wall),
            settings.concurrent
        ),
        baseline: "—".into(),
        baseline_p50: "—".into(),
        baseline_p99: "—".into(),
        ratio: "—".into(),
        init_p50: records.init_p50,
        births: records.births,
        baseline_births: "—".into(),
    }
}

/// The first line of a command's output, or `unknown`.
fn version_of(program: &str) -> String {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// The 1, 5 and 15 minute load averages: the machine is shared, its load moves the numbers.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cores, CPU model, kernel, interpreters and load: what the numbers depend on.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("unknown CPU", |m| m.trim_start_matches([' ', '\t', ':']));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cores} cores ({model}), Linux {}, load average {} at the start; {}, node {}",
        kernel.trim(),
        load_average(),
        version_of("/usr/bin/python3"),
        version_of("/usr/bin/node"),
    )
}

fn table(rows: &[Row]) -> Table {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN).set_header([
        "what",
        "n",
        "p50",
        "p99",
        "target p50",
        "met",
        "baseline (same run)",
        "baseline p50",
        "baseline p99",
        "ratio p50",
        "init p50 (record)",
        "birth",
        "baseline birth",
    ]);
    for r in rows {
        table.add_row([
            &r.what,
            &r.n.to_string(),
            &r.p50,
            &r.p99,
            &r.target,
            &r.met,
            &r.baseline,
            &r.baseline_p50,
            &r.baseline_p99,
            &r.ratio,
            &r.init_p50,
            &r.births,
            &r.baseline_births,
        ]);
    }
    table
}

/// Where the table is written besides stdout: `$CARGO_TARGET_DIR/cold_start.md`, or the
/// workspace's `target/cold_start.md`.
fn report_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        std::path::PathBuf::from,
    );
    target.join("cold_start.md")
}

fn main() {
    let settings = Settings::from_env();
    support::block_on(async {
        let started = Instant::now();
        let machine = machine();
        let naive_layers = Layers {
            python_zygote: false,
            node_stem_cells: false,
            ..Layers::ALL
        };
        let fast = Arc::new(node_with(|o| settings.apply(o, Layers::ALL)).await);
        let naive = node_with(|o| settings.apply(o, naive_layers)).await;
        let expiring = node_with(|o| {
            settings.apply(o, Layers::ALL);
            o.keep_alive = EXPIRING_KEEP_ALIVE;
        })
        .await;
        let plain = node_with(|o| {
            settings.apply(o, Layers::ALL);
            o.insecure_no_sandbox = true;
        })
        .await;

        let (python, depkg, node, echo) = (
            Case::python_hello(),
            Case::python_with_depkg(),
            Case::node_hello(),
            Case::provided_echo(),
        );
        let mut rows = Vec::new();
        if settings.runs("python") {
            rows.push(
                cold_row(
                    &settings,
                    "Python hello-world cold start, request to response",
                    Duration::from_millis(5),
                    (&fast, &python),
                    (
                        &naive,
                        &python,
                        "fresh `python3` exec (python_zygote: false)",
                    ),
                    "py",
                )
                .await,
            );
        }
        if settings.runs("depkg") {
            rows.push(row_of(
                "Python cold start with a dependency already in a zygote (its package zygote)",
                Duration::from_millis(10),
                expiring_series(&settings, &expiring, "dep", &depkg, "package_zygote").await,
                cold_series(&settings, &naive, "dep", &depkg).await,
                "fresh exec that imports it (python_zygote: false)",
            ));
        }
        if settings.runs("boto3") {
            for n in [&*fast, &naive] {
                let sdks = n.server.as_ref().unwrap().sdks();
                for (sdk, state) in sdks.settled(Duration::from_secs(900)).await {
                    assert!(
                        matches!(state, lambent_server::sdk::SdkState::Ready(_)),
                        "{}: {state:?}",
                        sdk.describe()
                    );
                }
            }
            // The fast node's zygote was replaced if the SDKs arrived after it started.
            tokio::time::sleep(SETTLE).await;
            rows.push(
                cold_row(
                    &settings,
                    "Python cold start importing boto3 and making a client at module level",
                    Duration::from_millis(30),
                    (&fast, &Case::python_boto3()),
                    (
                        &naive,
                        &Case::python_boto3(),
                        "fresh `python3` exec doing the same (python_zygote: false)",
                    ),
                    "boto3",
                )
                .await,
            );
        }
        if settings.runs("node") {
            rows.push(
                cold_row(
                    &settings,
                    "Node.js hello-world cold start",
                    Duration::from_millis(15),
                    (&fast, &node),
                    (&naive, &node, "fresh `node` exec (node_stem_cells: false)"),
                    "node",
                )
                .await,
            );
        }
        if settings.runs("provided") {
            rows.push(
                cold_row(
                    &settings,
                    "`provided` (compiled) cold start",
                    Duration::from_millis(3),
                    (&fast, &echo),
                    (
                        &plain,
                        &echo,
                        "plain spawn (same runtime unsandboxed: --insecure-no-sandbox)",
                    ),
                    "echo",
                )
                .await,
            );
        }
        if settings.runs("first") {
            let cases = [
                ("Python", &python),
                ("Node.js", &node),
                ("`provided`", &echo),
            ];
            rows.extend(first_after_ready_rows(&settings, &cases).await);
        }
        if settings.runs("pss") {
            rows.push(pss_row(&settings, &fast, &naive).await);
        }
        if settings.runs("concurrent") {
            rows.push(concurrent_row(&settings, fast.clone()).await);
        }

        let mut report = String::from("# Cold starts (issue 5)\n\n");
        writeln!(report, "{machine}").unwrap();
        writeln!(
            report,
            "settings: full isolation (every layer) on the fast node; the baseline node has \
             python_zygote and node_stem_cells off, every other layer on. Cold start rows: \
             {WARMUP} untimed cold starts per node first, then {} per node, each a new function \
             (deploy not timed, `memory` {MEMORY_MB} MB; the invoke timed from request to whole \
             answer, answer checked), a pause of {} ms after each (one cold start every {} ms \
             plus the deploy); the fast node's series, then the baseline's. The dependency \
             row's fast side instead cold-starts one function again and again, on a node with \
             keep-alive {} ms (its sandbox expires before each), after warm-up cold starts until \
             its package zygote serves it. Memory: {} warm \
             functions per node, the second invocation's own private pages and PSS. Every node: memory budget {} MB \
             (the concurrent row needs {} x {MEMORY_MB} MB), queue timeout {} s, namespace \
             concurrency {} (default). init p50 (record): the median init duration \
             of the fast node's cold starts, from their activation records (init_us), and of \
             its phases (init.sandbox_us, init.runtime_us, init.import_us); birth: \
             how each timed sandbox was born, from the records' init.birth. Whole run: {:.0} s; load average {} at the end.",
            settings.samples,
            settings.pace.as_millis(),
            settings.pace.as_millis(),
            EXPIRING_KEEP_ALIVE.as_millis(),
            settings.pss_functions,
            settings.memory_budget_mb(),
            settings.concurrent,
            Settings::QUEUE_TIMEOUT.as_secs(),
            ServerOptions::new("127.0.0.1:0".parse().unwrap(), ".".into()).namespace_concurrency,
            started.elapsed().as_secs_f64(),
            load_average(),
        )
        .unwrap();
        writeln!(report, "\n{}", table(&rows)).unwrap();
        print!("{report}");
        let path = report_path();
        match std::fs::write(&path, &report) {
            Ok(()) => println!("\n(written to {})", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        }
        for mut node in [Arc::into_inner(fast).expect("no call left"), naive, plain] {
            node.stop().await;
        }
    });
}
