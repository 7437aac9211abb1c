//! How many idle warm Python functions fit on this machine (issue 21): one node with full
//! isolation keeps warming distinct Python functions (each deployed, then invoked once: its
//! sandbox stays warm and idle) until the memory its sandboxes are charged reaches the budget,
//! then prints sandboxes per GiB and the proportional set size (PSS) of an idle sandbox,
//! beside baselines measured in the same run.
//!
//! - **Charged memory**: the memory cgroup of the node's namespace (`ns-default`), which every
//!   sandbox lives under: what its runtimes own (pages they dirtied after the fork, their
//!   `/tmp`, and on cgroup v1 with kernel accounting their kernel objects). What they share
//!   with the zygote stays charged to the zygote, which is counted once, by its own PSS.
//! - **PSS per idle sandbox**: at the end every function is invoked once more and answers its
//!   runtime's `/proc/self/smaps_rollup` (PSS, and its private pages); the median and p99.
//! - **Baselines**: the Python zygote itself (its PSS and RSS, read from the host), a child
//!   forked from a bare `python3` (its PSS while its parent waits: the cheapest fork of an
//!   interpreter), and a fresh `python3` (what a runtime without zygote would at least own).
//!
//! Run: `cargo bench -p lambent-server --bench density` (root needed). Settings:
//! `LAMBENT_BENCH_DENSITY_MB` the budget of charged memory (default 1024),
//! `LAMBENT_BENCH_DENSITY_MAX` the most functions (default 2000). The report is also written to
//! `$CARGO_TARGET_DIR/density.md` (default `target/`).

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::{header, node_with, Node};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{env_or, quantile};

/// Every function's configured memory, MB (its cgroup's limit; not what it uses).
const MEMORY_MB: u64 = 128;
/// Functions warmed between two readings of the charged memory.
const BATCH: usize = 20;

/// Answers its runtime's memory (the only process of its sandbox), in kB.
const HANDLER: &str = "N = {n}\n\n\
def handler(event, context):\n    \
    fields = {}\n    \
    with open('/proc/self/smaps_rollup') as f:\n        \
        for line in f:\n            \
            parts = line.split()\n            \
            if len(parts) == 3 and parts[2] == 'kB':\n                \
                fields[parts[0].rstrip(':')] = int(parts[1])\n    \
    return {'n': N, 'pss_kb': fields['Pss'], 'rss_kb': fields['Rss'],\n            \
            'private_kb': fields['Private_Clean'] + fields['Private_Dirty']}\n";

/// A bare interpreter that forks a child; the child answers its own smaps_rollup PSS.
const FORKED_BARE: &str = "import os, sys\n\
r, w = os.pipe()\n\
pid = os.fork()\n\
if pid == 0:\n    \
    pss = [l for l in open('/proc/self/smaps_rollup') if l.startswith('Pss:')][0].split()[1]\n    \
    os.write(w, pss.encode())\n    \
    os._exit(0)\n\
os.waitpid(pid, 0)\n\
print(os.read(r, 64).decode())\n";

/// A fresh interpreter's own PSS.
const FRESH_BARE: &str =
    "print([l for l in open('/proc/self/smaps_rollup') if l.startswith('Pss:')][0].split()[1])";

async fn deploy(node: &Node, name: &str, n: usize) {
    let code = HANDLER.replace("{n}", &n.to_string());
    let settings = json!({"runtime": "python3.12", "handler": "app.handler", "memory": MEMORY_MB});
    let (status, v) = node.deploy(name, settings, &[("app.py", &code)]).await;
    assert!(status.is_success(), "deploy {name}: {status} {v}");
}

/// Invokes `name` (the `n`th function) and returns its answer; checks it was cold or warm as
/// `cold` says.
async fn invoke(node: &Node, name: &str, n: usize, cold: bool) -> Value {
    let (status, headers, body) = node.invoke(name, "{}").await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    assert_eq!(
        header(&headers, "lambent-status"),
        "success",
        "{name}: {body}"
    );
    assert_eq!(
        header(&headers, "lambent-cold"),
        cold.to_string(),
        "{name}: a sandbox was reclaimed (raise the memory budget?)"
    );
    assert_eq!(body["n"], n, "{name}: {body}");
    body
}

/// The first value of `keys` found in the cgroup directory `dir` (bytes).
fn cgroup_bytes(dir: &Path, keys: &[&str]) -> Option<u64> {
    keys.iter()
        .find_map(|k| std::fs::read_to_string(dir.join(k)).ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The memory the namespace's sandboxes are charged, bytes: its memory cgroup's usage.
fn charged(memory_dir: &Path) -> u64 {
    cgroup_bytes(memory_dir, &["memory.current", "memory.usage_in_bytes"])
        .expect("the namespace's memory cgroup is readable")
}

/// The namespace's memory cgroup directory (the one with a usage file).
fn memory_dir(node: &Node) -> PathBuf {
    let dirs = node
        .server
        .as_ref()
        .unwrap()
        .tenant_cgroup_dirs("default")
        .expect("cgroup dirs");
    dirs.into_iter()
        .find(|d| cgroup_bytes(d, &["memory.current", "memory.usage_in_bytes"]).is_some())
        .expect("a memory cgroup for the namespace (its first sandbox made it)")
}

/// (PSS, RSS) in kB of process `pid`.
fn smaps_rollup(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

/// The Python zygote: this process's child running `zygote.py` as root, in this PID
/// namespace (the runtimes it forked run the same script and are this process's children too,
/// as their subreaper, but as the sandbox user and in PID namespaces of their own).
fn zygote_pid() -> Option<u32> {
    let me = std::process::id().to_string();
    let my_pid_ns = std::fs::read_link("/proc/self/ns/pid").ok();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
        let status = std::fs::read_to_string(e.path().join("status")).ok()?;
        let root = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().next())
            == Some("0");
        let same_pid_ns = std::fs::read_link(e.path().join("ns/pid")).ok() == my_pid_ns;
        (ppid == me
            && root
            && same_pid_ns
            && String::from_utf8_lossy(&cmdline).contains("zygote.py"))
        .then_some(pid)
    })
}

/// The number `python3 -c script` prints (kB).
fn python_prints(script: &str) -> u64 {
    let out = std::process::Command::new("python3")
        .args(["-I", "-c", script])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("python3 printed {out:?}"))
}

fn mb(kb: u64) -> String {
    format!("{:.2} MB", kb as f64 / 1024.0)
}

fn report_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    target.join("density.md")
}

fn main() {
    let budget_mb: u64 = env_or("LAMBENT_BENCH_DENSITY_MB", 1024);
    let max: usize = env_or("LAMBENT_BENCH_DENSITY_MAX", 2000);
    support::block_on(async {
        let started = Instant::now();
        let node = node_with(|o| {
            o.memory_budget_mb = Some(max as u64 * MEMORY_MB + 8192);
            o.keep_alive = Duration::from_secs(3600);
            o.queue_timeout = Duration::from_secs(10);
        })
        .await;
        let server = node.server.as_ref().unwrap();
        // The zygote imports the SDK when the machine has it: wait for it, as production runs.
        let sdks = server.sdks().settled(Duration::from_secs(900)).await;
        let warming = server.warmed_up(Duration::from_secs(120)).await;
        assert!(warming.is_empty(), "still warming up: {warming:?}");

        let (mut names, mut memory, mut readings) = (Vec::new(), None, Vec::new());
        let mut used = 0;
        while names.len() < max {
            for _ in 0..BATCH.min(max - names.len()) {
                let n = names.len();
                let name = format!("dense-{n}");
                deploy(&node, &name, n).await;
                invoke(&node, &name, n, true).await;
                names.push(name);
            }
            // Idle: what the runtimes hold after their invocation, not during it.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let dir = memory.get_or_insert_with(|| memory_dir(&node));
            used = charged(dir);
            readings.push((names.len(), used));
            if used >= budget_mb << 20 {
                break;
            }
        }
        let warmed = names.len();

        let (mut pss, mut private) = (Vec::new(), Vec::new());
        for (n, name) in names.iter().enumerate() {
            let body = invoke(&node, name, n, false).await;
            pss.push(body["pss_kb"].as_u64().expect("pss_kb"));
            private.push(body["private_kb"].as_u64().expect("private_kb"));
        }
        pss.sort_unstable();
        private.sort_unstable();
        let zygote = zygote_pid().and_then(smaps_rollup);
        let forked_bare = python_prints(FORKED_BARE);
        let fresh_bare = python_prints(FRESH_BARE);

        let gib = (1u64 << 30) as f64;
        let per_gib_charged = warmed as f64 / (used as f64 / gib);
        let pss_total_kb: u64 = pss.iter().sum::<u64>() + zygote.map_or(0, |z| z.0);
        let per_gib_pss = warmed as f64 / (pss_total_kb as f64 * 1024.0 / gib);

        let mut report = String::from("# Idle warm Python sandboxes per GiB (issue 21)\n\n");
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        writeln!(
            report,
            "{warmed} distinct Python functions warmed (each deployed, invoked once, left idle; \
             memory {MEMORY_MB} MB each) until the namespace's cgroup was charged {budget_mb} MB \
             or {max} functions; then each invoked once more to read its runtime's PSS. SDKs: {}. \
             Run took {:.0} s; load average {}.\n",
            sdks.iter()
                .map(|(sdk, state)| format!("{} {state:?}", sdk.describe()))
                .collect::<Vec<_>>()
                .join("; "),
            started.elapsed().as_secs_f64(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        )
        .unwrap();
        writeln!(report, "| what | value |\n| --- | --- |").unwrap();
        let mut row = |what: &str, value: String| writeln!(report, "| {what} | {value} |").unwrap();
        row("idle warm sandboxes", warmed.to_string());
        row("memory charged to them (namespace cgroup)", mb(used >> 10));
        row(
            "**sandboxes per GiB** (charged memory)",
            format!("**{per_gib_charged:.0}**"),
        );
        row(
            "sandboxes per GiB (their PSS summed, plus the zygote's)",
            format!("{per_gib_pss:.0}"),
        );
        row(
            "**PSS per idle sandbox**, p50 / p99",
            format!(
                "**{}** / {}",
                mb(quantile(&pss, 0.5)),
                mb(quantile(&pss, 0.99))
            ),
        );
        row(
            "private pages per idle sandbox, p50 / p99",
            format!(
                "{} / {}",
                mb(quantile(&private, 0.5)),
                mb(quantile(&private, 0.99))
            ),
        );
        row(
            "baseline: the Python zygote, PSS / RSS",
            zygote.map_or("not found".into(), |(p, r)| {
                format!("{} / {}", mb(p), mb(r))
            }),
        );
        row(
            "baseline: a child forked from a bare `python3`, PSS",
            mb(forked_bare),
        );
        row("baseline: a fresh `python3`, PSS", mb(fresh_bare));
        let steps: Vec<String> = readings
            .iter()
            .map(|(n, bytes)| format!("{n}: {}", mb(bytes >> 10)))
            .collect();
        row("charged memory as functions were warmed", steps.join(", "));
        print!("{report}");
        let path = report_path();
        match std::fs::write(&path, &report) {
            Ok(()) => println!("\n(written to {})", path.display()),
            Err(e) => eprintln!("cannot write {}: {e}", path.display()),
        }
        let mut node = node;
        node.stop().await;
    });
}
