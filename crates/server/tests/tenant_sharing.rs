//! Fair sharing of the machine between namespaces, through a real node (needs root): each
//! namespace's sandboxes under its own cgroup; a tenant burning CPU at its concurrency leaves
//! the other's warm function answering; a memory hog at its namespace's cap is OOM-killed with
//! an error naming the cap while the other namespace's warm sandbox keeps serving; sandboxes
//! of two namespaces born from the same zygote share nothing; removing a namespace's sandboxes
//! leaves no process and no cgroup. The latency numbers are the `tenants` bench's.

mod common;

use common::*;
use lambent_sandbox::TenantLimits;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The second tenant (the first is the node's `default` namespace, key [`KEY`]).
const B: &str = "tenant-b";
const B_KEY: &str = "tenant-b-key";

/// A warm function that says which sandbox answered (a token drawn at import).
const WHO_PY: &str = r#"
import uuid
TOKEN = uuid.uuid4().hex
def handler(event, context):
    return {"token": TOKEN}
"#;

/// Burns CPU for `event["ms"]` milliseconds.
const BURN_PY: &str = r#"
import time
def handler(event, context):
    end = time.monotonic() + event["ms"] / 1000
    n = 0
    while time.monotonic() < end:
        n += 1
    return n
"#;

async fn two_tenants() -> Node {
    let node = node().await;
    add_namespace(&node, B, B_KEY);
    node
}

fn server(node: &Node) -> &lambent_server::RunningServer {
    node.server.as_ref().unwrap()
}

/// The last activation record of `function` in the namespace of `key`.
async fn last_activation(node: &Node, key: &str, function: &str) -> Value {
    let (s, _, page) = node
        .send_as(
            key,
            reqwest::Method::GET,
            &format!("/v1/activations?function={function}&limit=1"),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{page}");
    page["activations"][0].clone()
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
fn gone(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
}

/// Every directory of a namespace's cgroup tree (the namespace's and its sandboxes').
fn tree(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut all = dirs.to_vec();
    for d in dirs {
        if let Ok(entries) = std::fs::read_dir(d) {
            all.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
    }
    all
}

/// The processes in a namespace's cgroup tree.
fn processes(dirs: &[PathBuf]) -> Vec<i32> {
    processes_in(&tree(dirs))
}

/// The processes in cgroups `dirs` (not below them).
fn processes_in(dirs: &[PathBuf]) -> Vec<i32> {
    let mut pids: Vec<i32> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The processes of each cgroup in a namespace's tree that has any.
fn processes_by_cgroup(dirs: &[PathBuf]) -> BTreeMap<PathBuf, Vec<i32>> {
    tree(dirs)
        .into_iter()
        .map(|d| {
            let pids = processes_in(std::slice::from_ref(&d));
            (d, pids)
        })
        .filter(|(_, pids)| !pids.is_empty())
        .collect()
}

/// Asserts that every cgroup of `before` that is still there holds the same processes. Those
/// of things made ahead (`sb-ready-…`) are left out: the pools make them under the namespace of
/// the latest cold start, where they change while made and move when another namespace claims
/// them (a claimed one keeps its name: whether its sandbox kept serving is for the caller to
/// check through it).
fn untouched(before: &BTreeMap<PathBuf, Vec<i32>>, dirs: &[PathBuf], what: &str) {
    let now = processes_by_cgroup(dirs);
    for d in before
        .keys()
        .filter(|d| d.exists() && !lambent_sandbox::made_ahead_cgroup(d))
    {
        assert_eq!(now.get(d), before.get(d), "{what}: {}", d.display());
    }
}

/// CPU time (nanoseconds on a CPU, every thread) the processes of a namespace's tree have used.
fn cpu_ns(dirs: &[PathBuf]) -> u64 {
    processes(dirs)
        .iter()
        .filter_map(|pid| std::fs::read_dir(format!("/proc/{pid}/task")).ok())
        .flat_map(|tasks| tasks.flatten().collect::<Vec<_>>())
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A namespace's CPU weight as its cgroup holds it (v2 `cpu.weight`, v1 `cpu.shares`).
fn weight(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .flat_map(|d| [d.join("cpu.weight"), d.join("cpu.shares")])
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_burning_cpu_at_its_concurrency_leaves_the_other_its_share() {
    let node = two_tenants().await;
    let (s, f) = node
        .deploy(
            "burn",
            json!({"runtime": "python", "handler": "app.handler", "timeout": 60}),
            &[("app.py", BURN_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, f) = node
        .deploy_as(
            B_KEY,
            "who",
            json!({"runtime": "python", "handler": "app.handler", "timeout": 30}),
            &[("app.py", WHO_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, warm) = node.invoke_as(B_KEY, "who", "{}").await;
    assert_eq!(s, StatusCode::OK, "{warm}");

    // Tenant A: more CPU burners than cores, for 4 s.
    let burners: Vec<_> = (0..4)
        .map(|_| {
            let node = &node;
            async move { node.invoke("burn", r#"{"ms": 4000}"#).await }
        })
        .collect();
    let burning = futures_util::future::join_all(burners);
    // Tenant B: a warm no-op every 100 ms meanwhile.
    let steady = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let a = server(&node).tenant_cgroup_dirs("default").unwrap();
        let b = server(&node).tenant_cgroup_dirs(B).unwrap();
        let before = (cpu_ns(&a), cpu_ns(&b));
        let mut answers = Vec::new();
        for _ in 0..20 {
            answers.push(node.invoke_as(B_KEY, "who", "{}").await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let after = (cpu_ns(&a), cpu_ns(&b));
        (answers, before, after, a, b)
    };
    let (burnt, (answers, before, after, a, b)) = tokio::join!(burning, steady);
    for (s, _, v) in &burnt {
        assert_eq!(*s, StatusCode::OK, "{v}");
    }
    for (s, _, v) in &answers {
        assert_eq!(*s, StatusCode::OK, "{v}");
        assert_eq!(
            v["token"], warm["token"],
            "B's warm sandbox was replaced: {v}"
        );
    }
    // Each tenant's sandboxes sit in its own cgroup, weighted alike; both got CPU.
    assert_eq!(weight(&a), weight(&b), "{a:?} {b:?}");
    assert!(!weight(&a).is_empty(), "no cpu weight in {a:?}");
    assert!(
        after.0 > before.0,
        "A's burners used no CPU: {before:?} {after:?}"
    );
    assert!(
        after.1 > before.1,
        "B's sandbox got no CPU: {before:?} {after:?}"
    );
    let last = last_activation(&node, B_KEY, "who").await;
    assert_eq!(last["cold"], false, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_hog_at_its_namespaces_budget_is_killed_and_the_other_tenant_keeps_its_sandbox() {
    let node = two_tenants().await;
    // The budget is the namespace's setting, set through the API: the node applies it to
    // the namespace's cgroup.
    let (s, _, v) = node
        .send_as(
            ADMIN,
            reqwest::Method::PATCH,
            "/v1/namespaces/default",
            json!({"memory_budget_mb": 256}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        server(&node).tenant_limits("default"),
        TenantLimits::with_memory_budget_mb(Some(256))
    );
    let (s, f) = node
        .deploy_as(
            B_KEY,
            "who",
            json!({"runtime": "python", "handler": "app.handler"}),
            &[("app.py", WHO_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, warm) = node.invoke_as(B_KEY, "who", "{}").await;
    assert_eq!(s, StatusCode::OK, "{warm}");
    let b_dirs = server(&node).tenant_cgroup_dirs(B).unwrap();
    let b_pids = processes_by_cgroup(&b_dirs);
    assert!(
        !b_pids.is_empty(),
        "B's warm sandbox is not under {b_dirs:?}"
    );

    // Each sandbox may hold 1 GB, the namespace only 256 MB in all.
    let hog = "def handler(event, context):\n    b = b'x' * (600 << 20)\n    return len(b)\n";
    let (s, f) = node
        .deploy(
            "hog",
            json!({"runtime": "python", "handler": "app.handler", "memory": 1024}),
            &[("app.py", hog)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (_, _, v) = node.invoke("hog", "{}").await;
    let record = last_activation(&node, KEY, "hog").await;
    assert_eq!(record["status"], "out_of_memory", "{v} {record}");
    let message = record["error_message"].as_str().unwrap_or_default();
    assert!(
        message.contains("namespace 'default'") && message.contains("memory budget of 256 MB"),
        "{message}"
    );

    // B's sandbox: the same processes, warm, serving.
    untouched(&b_pids, &b_dirs, "B's sandbox changed");
    let (s, _, again) = node.invoke_as(B_KEY, "who", "{}").await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(
        again["token"], warm["token"],
        "B's warm sandbox was replaced"
    );
    let last = last_activation(&node, B_KEY, "who").await;
    assert_eq!(last["cold"], false, "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxes_of_two_namespaces_born_from_the_same_zygote_share_nothing() {
    let node = two_tenants().await;
    await_python_zygote(&node).await;
    // A keeps a secret (sent in its event, never in B's code or events) in /tmp and memory.
    let stash = r#"
import os
KEPT = []
def handler(event, context):
    KEPT.append(event["secret"] * 4)
    with open("/tmp/stash.txt", "w") as f:
        f.write(event["secret"])
    return {"tmp": os.listdir("/tmp"), "pid": os.getpid()}
"#;
    let seek = r#"
import os
from scan import traces
def handler(event, context):
    found = []
    for root, _, files in os.walk("/tmp"):
        for name in files:
            found.append(os.path.join(root, name))
    return {"tmp": found, "memory": traces(event["shifted"].encode())}
"#;
    let settings = json!({"runtime": "python", "handler": "app.handler"});
    let (s, f) = node
        .deploy("stash", settings.clone(), &[("app.py", stash)])
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, f) = node
        .deploy_as(
            B_KEY,
            "seek",
            settings,
            &[("app.py", seek), ("scan.py", SCAN_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    // How the cold sandboxes of `f` were born, newest first.
    let births = |key: &'static str, f: &'static str| {
        let node = &node;
        async move {
            let (_, _, page) = node
                .send_as(
                    key,
                    reqwest::Method::GET,
                    &format!("/v1/activations?function={f}&limit=10"),
                    vec![],
                )
                .await;
            page["activations"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["cold"] == true)
                .map(|a| a["init"]["birth"].as_str().unwrap_or("?").to_string())
                .collect::<Vec<_>>()
        }
    };
    let secret = format!("tenant{}", uuid_like());
    // A's secret must sit in a sandbox forked from the zygote. Under load a fork can fail and
    // that sandbox start by exec instead (logged): then A's sandbox is made again.
    for attempt in 1.. {
        let (s, _, v) = node
            .invoke("stash", &json!({"secret": secret}).to_string())
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["tmp"], json!(["stash.txt"]));
        let born = births(KEY, "stash").await;
        if born.first().map(String::as_str) == Some("zygote") {
            break;
        }
        assert!(
            attempt < 5,
            "A's sandbox never forked from the zygote: {born:?}"
        );
        server(&node)
            .remove_namespace_sandboxes("default")
            .await
            .unwrap();
    }
    // Several of B's sandboxes (the zygote's children made ahead and on demand) look.
    for _ in 0..3 {
        let (s, _, v) = node
            .send_as(
                B_KEY,
                reqwest::Method::POST,
                "/v1/functions/seek/invoke",
                json!({"shifted": shifted(&secret)})
                    .to_string()
                    .into_bytes(),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v, json!({"tmp": [], "memory": []}), "A's secret reached B");
        // A fresh sandbox for the next look.
        server(&node).remove_namespace_sandboxes(B).await.unwrap();
    }
    // Each look was a cold start; at least one (normally all three) forked from the zygote.
    let looks = births(B_KEY, "seek").await;
    assert_eq!(looks.len(), 3, "{looks:?}");
    assert!(looks.iter().any(|b| b == "zygote"), "{looks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_namespaces_sandboxes_leaves_no_process_and_no_cgroup() {
    let node = two_tenants().await;
    for (key, name) in [(B_KEY, "one"), (B_KEY, "two"), (KEY, "kept")] {
        let (s, f) = node
            .deploy_as(
                key,
                name,
                json!({"runtime": "python", "handler": "app.handler"}),
                &[("app.py", WHO_PY)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        let (s, _, v) = node.invoke_as(key, name, "{}").await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let b = server(&node).tenant_cgroup_dirs(B).unwrap();
    let pids = processes(&b);
    assert!(
        pids.len() >= 2,
        "B's sandboxes are not under {b:?}: {pids:?}"
    );
    let kept = processes_by_cgroup(&server(&node).tenant_cgroup_dirs("default").unwrap());

    server(&node).remove_namespace_sandboxes(B).await.unwrap();
    for d in &b {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    for pid in &pids {
        assert!(gone(*pid), "process {pid} of B still runs");
    }
    untouched(
        &kept,
        &server(&node).tenant_cgroup_dirs("default").unwrap(),
        "the other namespace's sandboxes were touched",
    );
    let (s, _, v) = node.invoke("kept", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let last = last_activation(&node, KEY, "kept").await;
    assert_eq!(
        last["cold"], false,
        "the other namespace's sandbox is gone: {last}"
    );
    // B's function starts again in a fresh cgroup.
    let (s, _, v) = node.invoke_as(B_KEY, "one", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(b.iter().all(|d| d.is_dir()));
    let pids = processes(&b);
    assert!(!pids.is_empty());

    // Deleting the namespace through the API does the same: nothing of B is left here.
    let (s, _, v) = node
        .send_as(
            ADMIN,
            reqwest::Method::DELETE,
            &format!("/v1/namespaces/{B}?force=true"),
            Vec::new(),
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    for d in &b {
        assert!(
            !d.exists(),
            "{} left behind by the namespace's deletion",
            d.display()
        );
    }
    for pid in &pids {
        assert!(
            gone(*pid),
            "process {pid} of B survived the namespace's deletion"
        );
    }
}
