//! Sandboxes started from a Python zygote or a Node.js stem cell: as isolated as exec'd ones,
//! nothing of one function (module state, environment, secrets) reaching another that shares the
//! zygote, and a killed zygote replaced without failing an invocation. Each test checks, from the
//! activation records, that the sandboxes it looked at really were born that way. Needs root.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Reports what a sandboxed process is: its credentials, filters and view of the system, and
/// what a runtime could have left behind before its function (a runtime forked ahead
/// rehearses a cold start on a throwaway function of its own first): its `/tmp`, environment,
/// import path and root logger.
const PROBE_PY: &str = r#"
import logging, os, sys
def handler(event, context):
    status = dict(l.split(":\t", 1) for l in open("/proc/self/status").read().splitlines() if ":\t" in l)
    return {"pid": os.getpid(), "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
            "cap_eff": status["CapEff"].strip(), "cap_prm": status["CapPrm"].strip(),
            "cap_bnd": status["CapBnd"].strip(), "no_new_privs": status["NoNewPrivs"].strip(),
            "seccomp": status["Seccomp"].strip(), "policy": os.sched_getscheduler(0),
            "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
            "hostname": os.uname().nodename, "cwd": os.getcwd(),
            "task": sorted(os.listdir("/var/task")), "fds": sorted(int(f) for f in os.listdir("/proc/self/fd")),
            "secret": os.environ.get("SECRET"), "tmp": sorted(os.listdir("/tmp")),
            "environ": sorted(k for k in os.environ if k != "_X_AMZN_TRACE_ID"), "path": sys.path[:2],
            "handlers": len(logging.getLogger().handlers),
            "rehearsal": [m for m in sys.modules if "rehearsal" in m]}
"#;

/// How the sandbox of a function's latest cold activation was born.
async fn last_birth(node: &Node, function: &str) -> String {
    let births = births_of(node, function).await;
    births.last().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_sandbox_is_isolated_like_an_execd_one() {
    let node = node().await;
    await_python_zygote(&node).await;
    let exec = node_with(|o| o.isolation_layers.python_zygote = false).await;
    let mut seen = Vec::new();
    for (node, births) in [(&node, &["zygote"][..]), (&exec, &["ahead", "exec"])] {
        let (s, f) = node
            .deploy(
                "probe",
                json!({"runtime": "python", "handler": "app.handler", "env": {"SECRET": "s3"}}),
                &[("app.py", PROBE_PY)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        let (s, _, v) = node.invoke("probe", "{}").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let birth = last_birth(node, "probe").await;
        assert!(births.contains(&birth.as_str()), "{birth}");
        seen.push(v);
    }
    let (forked, execd) = (&seen[0], &seen[1]);
    assert_eq!(
        forked, execd,
        "the forked sandbox looks exactly like the exec'd one"
    );
    assert_eq!(forked["pid"], 1, "{forked}");
    assert_eq!(
        forked["pids"],
        json!([1]),
        "its own PID namespace, nothing else visible"
    );
    assert_eq!(
        (forked["uid"].as_u64(), forked["gid"].as_u64()),
        (Some(993), Some(990))
    );
    assert_eq!(forked["groups"], json!([]));
    for caps in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_eq!(forked[caps], "0000000000000000", "{caps}");
    }
    assert_eq!(forked["no_new_privs"], "1");
    assert_eq!(forked["seccomp"], "2", "seccomp filter mode");
    assert_eq!(
        forked["policy"], 3,
        "SCHED_BATCH: an invocation does not preempt the server"
    );
    assert_eq!(forked["hostname"], "lambent");
    assert_eq!(forked["task"], json!(["app.py"]));
    assert_eq!(forked["secret"], "s3");
    assert_eq!(forked["tmp"], json!([]), "nothing left in /tmp");
    assert_eq!(forked["handlers"], 1, "the runtime's log handler only");
    assert_eq!(forked["rehearsal"], json!([]));
    assert_eq!(
        forked["fds"],
        json!([0, 1, 2, 3, 4]),
        "stdio, the runtime API connection and the listing's own directory only"
    );
}

/// A function that ships a package: its handler module imports it first (and the probe).
const WITH_PACKAGE_PY: &str = r#"
import vendored
import os
from probe import handler as probe

def handler(event, context):
    result = probe(event, context)
    result["tmp"] = sorted(os.listdir("/tmp"))
    result["vendored"] = vendored.VALUE
    open("/tmp/written-by-" + event["who"], "w").close()
    return result
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_zygote_child_is_isolated_like_an_execd_one() {
    let node = node_with(|o| o.keep_alive = SHORT_KEEP_ALIVE).await;
    await_python_zygote(&node).await;
    let exec = node_with(|o| o.isolation_layers.python_zygote = false).await;
    let files = [
        ("app.py", WITH_PACKAGE_PY),
        ("probe.py", PROBE_PY),
        ("vendored/__init__.py", "import decimal\nVALUE = 42\n"),
    ];
    let config = json!({"runtime": "python", "handler": "app.handler", "env": {"SECRET": "s3"}});
    for node in [&node, &exec] {
        let (s, f) = node.deploy("pkg", config.clone(), &files).await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
    }
    let (s, _, v) = node.invoke("pkg", r#"{"who": "first"}"#).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        last_birth(&node, "pkg").await,
        "zygote",
        "the first cold start"
    );
    let forked = invoke_from_package_zygote(&node, "pkg", r#"{"who": "a"}"#).await;
    let (s, _, execd) = exec.invoke("pkg", r#"{"who": "a"}"#).await;
    assert_eq!(s, StatusCode::OK, "{execd}");
    assert!(
        ["ahead", "exec"].contains(&last_birth(&exec, "pkg").await.as_str()),
        "the baseline exec'd"
    );
    assert_eq!(
        forked, execd,
        "the package zygote's child looks exactly like an exec'd sandbox"
    );
    assert_eq!((&forked["pid"], &forked["pids"]), (&json!(1), &json!([1])));
    assert_eq!((&forked["uid"], &forked["gid"]), (&json!(993), &json!(990)));
    for caps in ["cap_eff", "cap_prm", "cap_bnd"] {
        assert_eq!(forked[caps], "0000000000000000", "{caps}");
    }
    assert_eq!(
        (&forked["no_new_privs"], &forked["seccomp"]),
        (&json!("1"), &json!("2"))
    );
    assert_eq!(
        (&forked["secret"], &forked["vendored"]),
        (&json!("s3"), &json!(42))
    );
    assert_eq!(forked["tmp"], json!([]));
    // The next one has a /tmp of its own: nothing of the sandbox before.
    let next = invoke_from_package_zygote(&node, "pkg", r#"{"who": "b"}"#).await;
    assert_eq!(next["tmp"], json!([]), "{next}");
    // The package zygote itself is no host root: its own user, no_new_privs, seccomp.
    let zygotes = package_zygotes(&node);
    assert_eq!(zygotes.len(), 1, "{zygotes:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", zygotes[0])).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let uid: u64 = field("Uid:").parse().unwrap();
    assert!(uid >= 0x7000_0000, "host uid {uid}");
    assert_eq!(
        (field("NoNewPrivs:"), field("Seccomp:")),
        ("1".into(), "2".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_sharing_the_zygote_share_no_state_and_no_secret() {
    let node = node().await;
    await_python_zygote(&node).await;
    // A sets module-level state in modules the zygote imported, and has a secret.
    let writer = r#"
import json, logging, os, sys, decimal
COUNTER = 0
def handler(event, context):
    global COUNTER
    COUNTER += 1
    json.LEAKED = os.environ["SECRET"]
    logging.getLogger("shared").leaked = os.environ["SECRET"]
    decimal.getcontext().prec = 3
    sys.modules["leaked_" + os.environ["SECRET"]] = sys
    os.environ["EXPORTED"] = os.environ["SECRET"]
    return {"counter": COUNTER}
"#;
    // B looks for any trace of it: module state, environment, and every readable byte of its
    // own memory (`scan.py`).
    let reader = r#"
import json, logging, os, sys, decimal
from scan import has, traces
def handler(event, context):
    needle = event["shifted"].encode()
    found = traces(needle)
    return {"json": hasattr(json, "LEAKED"),
            "logger": hasattr(logging.getLogger("shared"), "leaked"),
            "prec": decimal.getcontext().prec,
            "modules": [m for m in sys.modules if m.startswith("leaked_")],
            "environ": [k.decode() for k, v in os.environb.items() if has(needle, v) or k == b"EXPORTED"],
            "proc_environ": has(needle, open("/proc/self/environ", "rb").read()),
            "memory": found}
"#;
    let secret = format!("tok{}", uuid_like());
    // The reader reads all its memory: seconds on a loaded machine.
    for (name, code, env) in [
        ("writer", writer, json!({"SECRET": secret})),
        ("reader", reader, json!({})),
    ] {
        let (s, f) = node
            .deploy(
                name,
                json!({"runtime": "python", "handler": "app.handler", "env": env, "timeout": 60}),
                &[("app.py", code), ("scan.py", SCAN_PY)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
    }
    // Each cold start claims a runtime forked ahead.
    await_ready(&node).await;
    for expected in 1..=2 {
        let (s, _, v) = node.invoke("writer", "{}").await;
        assert_eq!((s, v), (StatusCode::OK, json!({"counter": expected})));
    }
    await_ready(&node).await;
    let (s, _, v) = node
        .invoke("reader", &json!({"shifted": shifted(&secret)}).to_string())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"json": false, "logger": false, "prec": 28, "modules": [], "environ": [],
               "proc_environ": false, "memory": []}),
        "nothing of the writer reaches the reader"
    );
    assert_eq!(last_birth(&node, "writer").await, "zygote");
    assert_eq!(last_birth(&node, "reader").await, "zygote");
    // Nor does the zygote itself ever hold a function's environment.
    for pid in zygote_pids(&node) {
        assert!(
            !process_memory_contains(pid, secret.as_bytes()),
            "the zygote {pid} holds the secret"
        );
    }
}

/// What the zygote makes once for all its runtimes works in each (the root logger's handler:
/// Lambda's lines, at each function's level, once), and each draws its own random numbers
/// (the zygote forks without the interpreter's at-fork hooks and re-seeds `random` itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forked_runtimes_log_lambdas_lines_and_draw_their_own_random_numbers() {
    let node = node().await;
    await_python_zygote(&node).await;
    let code = r#"
import logging, random
FIRST = random.getrandbits(64)
def handler(event, context):
    logging.getLogger().info("hello from %s", context.function_name)
    return {"first": FIRST, "handlers": len(logging.getLogger().handlers)}
"#;
    let mut firsts = Vec::new();
    for name in ["one", "two"] {
        let settings = json!({"runtime": "python", "handler": "app.handler",
                              "env": {"AWS_LAMBDA_LOG_LEVEL": "INFO"}});
        let (s, f) = node.deploy(name, settings, &[("app.py", code)]).await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        let (s, _, v) = node.invoke(name, "{}").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["handlers"], 1, "{v}");
        assert_eq!(last_birth(&node, name).await, "zygote");
        firsts.push(v["first"].clone());
        let logs = eventually(10, "the invocation's log", || async {
            let (_, _, logs) = node
                .send(
                    reqwest::Method::GET,
                    &format!("/v1/functions/{name}/logs?tail=1"),
                    vec![],
                )
                .await;
            let text = logs["logs"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            text.contains("REPORT").then_some(text)
        })
        .await;
        let hello = format!("hello from {name}");
        let lines: Vec<Vec<&str>> = logs
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| f.last() == Some(&hello.as_str()))
            .collect();
        assert_eq!(lines.len(), 1, "{logs}");
        assert_eq!(lines[0].len(), 4, "{logs}");
        assert_eq!(lines[0][0], "[INFO]", "{logs}");
        assert!(!lines[0][2].is_empty(), "the request id: {logs}");
    }
    assert_ne!(firsts[0], firsts[1], "each runtime has its own random seed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_zygotes_keep_each_functions_state_and_secrets_to_itself() {
    let node = node_with(|o| o.keep_alive = SHORT_KEEP_ALIVE).await;
    await_python_zygote(&node).await;
    // Both ship the same package, which reads the secret when imported (in its zygote).
    let package = "import os\nAT_IMPORT = os.environ.get('SECRET')\n";
    let writer = r#"
import shared
import os
def handler(event, context):
    shared.LEAKED = os.environ["SECRET"]
    return {"at_import": shared.AT_IMPORT == os.environ["SECRET"]}
"#;
    let reader = r#"
import shared
from scan import traces
def handler(event, context):
    return {"at_import": shared.AT_IMPORT, "leaked": hasattr(shared, "LEAKED"),
            "memory": traces(event["shifted"].encode())}
"#;
    let secret = format!("pkg{}", uuid_like());
    for (name, code, env) in [
        ("writer", writer, json!({"SECRET": secret})),
        ("reader", reader, json!({})),
    ] {
        let files = [
            ("app.py", code),
            ("scan.py", SCAN_PY),
            ("shared/__init__.py", package),
        ];
        let config = json!({"runtime": "python", "handler": "app.handler", "env": env});
        let (s, f) = node.deploy(name, config, &files).await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
    }
    let event = json!({"shifted": shifted(&secret)}).to_string();
    let wrote = invoke_from_package_zygote(&node, "writer", &event).await;
    assert_eq!(
        wrote,
        json!({"at_import": true}),
        "imported in its own zygote"
    );
    let read = invoke_from_package_zygote(&node, "reader", &event).await;
    assert_eq!(
        read,
        json!({"at_import": null, "leaked": false, "memory": []}),
        "nothing of the writer or its zygote reaches the reader"
    );
    let zygotes = package_zygotes(&node);
    assert_eq!(zygotes.len(), 2, "one package zygote each: {zygotes:?}");
    let holding: Vec<_> = zygotes
        .iter()
        .filter(|pid| process_memory_contains(**pid, secret.as_bytes()))
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "only the writer's zygote holds its secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_package_zygote_is_replaced_without_failing_invocations() {
    let node = node_with(|o| o.keep_alive = SHORT_KEEP_ALIVE).await;
    await_python_zygote(&node).await;
    let code = "import vendored\nimport time\n\ndef handler(event, context):\n    \
        time.sleep(event['sleep'])\n    return {'value': vendored.VALUE}\n";
    // Its package also starts a process when imported (in the zygote): one that must not
    // outlive the zygote.
    let package = "import subprocess\nDAEMON = subprocess.Popen(['/usr/bin/sleep', '1000'])\n\
        VALUE = 7\n";
    let files = [("app.py", code), ("vendored/__init__.py", package)];
    let config = json!({"runtime": "python", "handler": "app.handler"});
    let (s, f) = node.deploy("pkg", config, &files).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    invoke_from_package_zygote(&node, "pkg", r#"{"sleep": 0}"#).await;
    // One zygote (an earlier one evicted on a loaded machine may still be on its way out).
    let before = eventually(10, "one package zygote", || async {
        let zygotes = package_zygotes(&node);
        (zygotes.len() == 1).then_some(zygotes)
    })
    .await;
    let daemons = children_running(before[0], "/usr/bin/sleep");
    assert_eq!(
        daemons.len(),
        1,
        "the process its import started: {daemons:?}"
    );
    // A runtime it forked is busy while it is killed: that invocation still completes.
    tokio::time::sleep(SHORT_KEEP_ALIVE * 3).await;
    let busy = node.invoke("pkg", r#"{"sleep": 1}"#);
    let kill = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(before[0]),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
    };
    let ((s, _, v), ()) = tokio::join!(busy, kill);
    assert_eq!((s, v), (StatusCode::OK, json!({"value": 7})));
    assert_eq!(
        births_of(&node, "pkg").await.last().map(String::as_str),
        Some("package_zygote")
    );
    // Every invocation answers while another is built, then they fork from it.
    invoke_from_package_zygote(&node, "pkg", r#"{"sleep": 0}"#).await;
    let after = package_zygotes(&node);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new package zygote");
    eventually(30, "the old zygote's process killed and reaped", || async {
        (!std::path::Path::new(&format!("/proc/{}", daemons[0])).exists()).then_some(())
    })
    .await;
}

/// Pids of the children of `parent` running `program`.
fn children_running(parent: i32, program: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1)?.parse::<i32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmdline.starts_with(program.as_bytes())
        })
        .collect()
}

/// A wheel of the pure-Python package `tinydep` 1.0, as `pip` takes it.
fn tinydep_wheel() -> Vec<u8> {
    let info = "tinydep-1.0.dist-info";
    zip_of(&[
        ("tinydep/__init__.py", "VALUE = 'from a wheel'\n"),
        (&format!("{info}/METADATA"), "Metadata-Version: 2.1\nName: tinydep\nVersion: 1.0\n"),
        (
            &format!("{info}/WHEEL"),
            "Wheel-Version: 1.0\nGenerator: lambent-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        ),
        (
            &format!("{info}/RECORD"),
            &format!("tinydep/__init__.py,,\n{info}/METADATA,,\n{info}/WHEEL,,\n{info}/RECORD,,\n"),
        ),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirements_are_installed_at_upload_and_imported_by_the_package_zygote() {
    use std::os::unix::fs::PermissionsExt;
    let node = node_with(|o| o.keep_alive = SHORT_KEEP_ALIVE).await;
    await_python_zygote(&node).await;
    // A local index (pip runs as the sandbox user: it must be able to read it).
    let index = tempfile::tempdir().unwrap();
    std::fs::set_permissions(index.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        index.path().join("tinydep-1.0-py3-none-any.whl"),
        tinydep_wheel(),
    )
    .unwrap();
    let requirements = |package: &str| {
        format!(
            "--no-index\n--find-links {}\n{package}\n",
            index.path().display()
        )
    };
    let code =
        "import tinydep\n\ndef handler(event, context):\n    return {'value': tinydep.VALUE}\n";
    let config = json!({"runtime": "python", "handler": "app.handler"});
    let files = [
        ("app.py", code),
        ("requirements.txt", &requirements("tinydep==1.0")),
    ];
    let (s, f) = node.deploy("reqs", config.clone(), &files).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, v) = node.invoke("reqs", "{}").await;
    assert_eq!((s, v), (StatusCode::OK, json!({"value": "from a wheel"})));
    let v = invoke_from_package_zygote(&node, "reqs", "{}").await;
    assert_eq!(v, json!({"value": "from a wheel"}));
    // What pip cannot install refuses the upload, with pip's reason.
    let files = [
        ("app.py", code),
        ("requirements.txt", &requirements("nosuchpkg==9")),
    ];
    let (s, v) = node.upload(zip_of(&files)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "InvalidPackage", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("nosuchpkg"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_zygote_is_replaced_without_failing_invocations() {
    let node = node().await;
    await_python_zygote(&node).await;
    let before = zygote_pids(&node);
    assert_eq!(before.len(), 1, "one zygote: {before:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Every invocation answers, through exec while the zygote is replaced, then forked again.
    let mut births = Vec::new();
    for i in 0..200 {
        let name = format!("after{i}");
        let (s, f) = node
            .deploy(
                &name,
                json!({"runtime": "python", "handler": "app.handler"}),
                &[("app.py", PROBE_PY)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        let (s, _, v) = node.invoke(&name, "{}").await;
        assert_eq!((s, &v["uid"]), (StatusCode::OK, &json!(993)), "{v}");
        births.push(last_birth(&node, &name).await);
        if births.last().map(String::as_str) == Some("zygote") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        births.last().map(String::as_str),
        Some("zygote"),
        "{births:?}"
    );
    let after = zygote_pids(&node);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after, before, "a new zygote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_stem_cells_are_isolated_and_get_only_their_own_function() {
    let node = node().await;
    let probe = r#"
const fs = require('fs');
const status = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\n')
  .filter((l) => l.includes(':\t')).map((l) => l.split(':\t').map((s) => s.trim())));
exports.handler = async () => ({
  pid: process.pid, uid: process.getuid(), cap_eff: status.CapEff, seccomp: status.Seccomp,
  policy: fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[38],
  no_new_privs: status.NoNewPrivs, cwd: process.cwd(), task: fs.readdirSync('/var/task').sort(),
  env: Object.keys(process.env).filter((k) => k.startsWith('MINE_') || k.startsWith('LAMBENT')).sort(),
  pids: fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p)),
});
"#;
    let mut results = Vec::new();
    for i in 0..6 {
        let name = format!("js{i}");
        let env = json!({ format!("MINE_{i}"): "yes" });
        let (s, f) = node
            .deploy(
                &name,
                json!({"runtime": "nodejs", "handler": "app.handler", "env": env}),
                &[("app.js", probe)],
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{f}");
        // A stem cell waits (the last claim's replacement, on a loaded machine seconds later).
        await_ready(&node).await;
        let (s, _, v) = node.invoke(&name, "{}").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        results.push((last_birth(&node, &name).await, v));
    }
    let stem: Vec<&Value> = results
        .iter()
        .filter(|(b, _)| b == "stem_cell")
        .map(|(_, v)| v)
        .collect();
    assert!(
        stem.len() >= 4,
        "most cold starts claim a stem cell: {results:?}"
    );
    for (i, (_, v)) in results.iter().enumerate() {
        assert_eq!(
            v["env"],
            json!([format!("MINE_{i}")]),
            "only its own environment: {v}"
        );
        assert_eq!(
            (
                &v["pid"],
                &v["uid"],
                &v["cap_eff"],
                &v["seccomp"],
                &v["no_new_privs"],
                &v["policy"]
            ),
            (
                &json!(1),
                &json!(993),
                &json!("0000000000000000"),
                &json!("2"),
                &json!("1"),
                &json!("3")
            ),
            "{v}"
        );
        assert_eq!(
            (&v["cwd"], &v["task"], &v["pids"]),
            (&json!("/var/task"), &json!(["app.js"]), &json!(["1"]))
        );
    }
}

/// Pids of the Python zygote of `node` (its script lies in the node's data dir).
fn zygote_pids(node: &Node) -> Vec<i32> {
    let me = std::process::id().to_string();
    let script = node._data.path().join("runtimes/python/zygote.py");
    let script = script.to_string_lossy();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            // Its runtimes carry its command line too, but run as the sandbox user.
            let root = status.lines().any(|l| l.starts_with("Uid:\t0\t"));
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().nth(1));
            // Runtimes on their way to a sandbox are briefly root too, but in a PID namespace
            // of their own already.
            let pid_namespace = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
            String::from_utf8_lossy(&cmdline).contains(&*script)
                && ppid == Some(me.as_str())
                && root
                && pid_namespace == std::fs::read_link("/proc/self/ns/pid").ok()
        })
        .collect()
}

/// Pids of the package zygotes of `node`: its `zygote.py` processes (their script lies in the
/// node's data dir) running as a host user of the package zygote range.
fn package_zygotes(node: &Node) -> Vec<i32> {
    let script = node._data.path().join("runtimes/python/zygote.py");
    let script = script.to_string_lossy();
    let candidates: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next()?.parse::<u64>().ok());
            // Not the runtimes it forks, before they become the sandbox user: they are in a
            // PID namespace of their own already.
            let pid_namespace = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
            String::from_utf8_lossy(&cmdline).contains(&*script)
                && uid.is_some_and(|u| u >= 0x7000_0000)
                && pid_namespace == std::fs::read_link("/proc/self/ns/pid").ok()
        })
        .collect();
    // Nor its children on their way to a sandbox (briefly its user too).
    let parent = |pid: &i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')')
            .next()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<i32>().ok())
    };
    candidates
        .iter()
        .filter(|pid| !parent(pid).is_some_and(|p| candidates.contains(&p)))
        .copied()
        .collect()
}

/// Whether any readable mapping of process `pid` contains `needle`.
fn process_memory_contains(pid: i32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    maps.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !fields[1].starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            return false;
        }
        let (start, end) = fields[0].split_once('-').unwrap();
        let (start, end) = (
            u64::from_str_radix(start, 16).unwrap(),
            u64::from_str_radix(end, 16).unwrap(),
        );
        let mut buf = vec![0u8; (end - start) as usize];
        mem.seek(SeekFrom::Start(start)).is_ok()
            && mem.read_exact(&mut buf).is_ok()
            && buf.windows(needle.len()).any(|w| w == needle)
    })
}
