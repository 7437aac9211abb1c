//! Hostile functions through the whole platform: each attack gets a precise activation status
//! or is refused by the sandbox, and a well-behaved function keeps answering throughout. Needs
//! root (full isolation), as CI has.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

const HOSTILE_PY: &str = r#"
import ctypes, errno, os, socket, time

libc = ctypes.CDLL(None, use_errno=True)

def attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}

def read(path):
    with open(path, "rb") as f:
        return len(f.read())

def write(path):
    with open(path, "w") as f:
        f.write("pwned")

def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=1)
    s.close()
    return "connected"

def syscall_errno(rc):
    return errno.errorcode.get(ctypes.get_errno(), "none") if rc != 0 else "allowed"

def handler(event, context):
    a = event["attack"]
    if a == "files":
        return {
            "shadow": attempt(lambda: read("/etc/shadow")),
            "data_dir": os.path.exists(event["data_dir"]),
            "other_code": os.path.exists(event["other_code"]),
            "root_home": attempt(lambda: os.listdir("/root")),
            "task": sorted(os.listdir("/var/task")),
            "write_task": attempt(lambda: write("/var/task/app.py")),
            "write_tmp": attempt(lambda: write("/tmp/scratch")),
        }
    if a == "network":
        return {"lambent_api": attempt(lambda: connect(event["port"])),
                "outside": attempt(lambda: connect(80))}
    if a == "processes":
        return {"pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                "kill_all": attempt(lambda: os.kill(-1, 9)),
                "uid": os.getuid()}
    if a == "syscalls":
        return {"mount": syscall_errno(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
                "ptrace": syscall_errno(libc.ptrace(0, 0, None, None)),
                "unshare": syscall_errno(libc.unshare(0x00020000))}
    if a == "fork_bomb":
        children = 0
        try:
            while True:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
        except OSError as e:
            return {"children": children, "stopped_by": errno.errorcode.get(e.errno)}
    if a == "memory":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if a == "spin":
        while True:
            pass
    raise ValueError("unknown attack " + a)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_are_contained_and_others_keep_answering() {
    let node = node_with(|o| o.isolation_layers.python_zygote = false).await;
    deploy_hostile(&node, &[("app.py", HOSTILE_PY)]).await;
    attack_and_check(&node, json!(["app.py"])).await;
    assert_births(&node, &["ahead", "exec"]).await;
}

/// The same attacks on sandboxes forked from the Python zygote (the default): every sandbox of
/// the hostile function is checked to have been born from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_forked_from_the_zygote_are_contained_too() {
    let node = node().await;
    await_python_zygote(&node).await;
    deploy_hostile(&node, &[("app.py", HOSTILE_PY)]).await;
    attack_and_check(&node, json!(["app.py"])).await;
    assert_births(&node, &["zygote"]).await;
}

/// The same attacks on sandboxes forked from the hostile function's own package zygote (it
/// ships a package): after the first cold starts, every one is checked to be born from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_forked_from_their_package_zygote_are_contained_too() {
    let node = node_with(|o| o.keep_alive = SHORT_KEEP_ALIVE).await;
    await_python_zygote(&node).await;
    let code = format!("import armory\n{HOSTILE_PY}");
    deploy_hostile(&node, &[("app.py", &code), ("armory/__init__.py", "")]).await;
    invoke_from_package_zygote(&node, "hostile", r#"{"attack": "processes"}"#).await;
    let before = births_of(&node, "hostile").await.len();
    attack_and_check(&node, json!(["app.py", "armory"])).await;
    let births = births_of(&node, "hostile").await;
    let attacked = &births[before..];
    assert!(
        !attacked.is_empty() && attacked.iter().all(|b| b == "package_zygote"),
        "{births:?}"
    );
}

/// Every sandbox the hostile function and its victim ran in was born one of `births`.
async fn assert_births(node: &Node, births: &[&str]) {
    for function in ["hostile", "victim"] {
        let seen = births_of(node, function).await;
        assert!(
            seen.len() >= 2 || function == "victim",
            "{function}: {seen:?}"
        );
        assert!(
            seen.iter().all(|b| births.contains(&b.as_str())),
            "{function}: {seen:?}"
        );
    }
}

async fn deploy_hostile(node: &Node, files: &[(&str, &str)]) {
    let (s, f) = node
        .deploy(
            "hostile",
            // 5 s: on a loaded machine, touching 512 MB (the memory attack) can take over 2 s.
            json!({"runtime": "python", "handler": "app.handler", "timeout": 5, "memory": 512}),
            files,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
}

/// Runs every attack of the deployed function `hostile`, whose `/var/task` lists `task`.
async fn attack_and_check(node: &Node, task: Value) {
    let (s, victim) = node
        .deploy(
            "victim",
            json!({"runtime": "python", "handler": "app.handler"}),
            &[("app.py", "def handler(e, c):\n    return {'alive': True}\n")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let data_dir = node._data.path().display().to_string();
    let other_code = format!(
        "{data_dir}/code/{}",
        victim["code_sha256"].as_str().unwrap()
    );
    assert!(std::path::Path::new(&other_code).is_dir());
    let attack = |body: Value| async move {
        let (status, h, v) = node.invoke("hostile", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let (_, _, alive) = node.invoke("victim", "{}").await;
        assert_eq!(
            alive,
            json!({"alive": true}),
            "the other function keeps answering"
        );
        (
            header(&h, "lambent-status").to_string(),
            header(&h, "lambent-function-error").to_string(),
            v,
        )
    };

    let (status, _, v) =
        attack(json!({"attack": "files", "data_dir": data_dir, "other_code": other_code})).await;
    assert_eq!(status, "success", "{v}");
    assert_eq!(v["shadow"], json!({"ok": false, "errno": "EACCES"}));
    assert_eq!(v["data_dir"], false, "the data dir is not visible");
    assert_eq!(
        v["other_code"], false,
        "other functions' code is not visible"
    );
    assert_eq!(v["root_home"]["ok"], false);
    assert_eq!(v["task"], task);
    assert_eq!(v["write_task"], json!({"ok": false, "errno": "EROFS"}));
    assert_eq!(v["write_tmp"]["ok"], true);

    let port = node.server.as_ref().unwrap().addr().port();
    let (status, _, v) = attack(json!({"attack": "network", "port": port})).await;
    assert_eq!(status, "success", "{v}");
    assert_eq!(
        v["lambent_api"],
        json!({"ok": false, "errno": "ECONNREFUSED"}),
        "the host's API is unreachable"
    );
    assert_eq!(v["outside"]["ok"], false);

    let (status, _, v) = attack(json!({"attack": "processes"})).await;
    assert_eq!(status, "success", "{v}");
    assert_eq!(v["pids"], json!([1]), "only its own process is visible");
    assert_eq!(v["uid"], 993);

    let (status, _, v) = attack(json!({"attack": "syscalls"})).await;
    assert_eq!(status, "success", "{v}");
    assert_eq!(
        v,
        json!({"mount": "EPERM", "ptrace": "EPERM", "unshare": "EPERM"})
    );

    // Contained either way, and the victim keeps answering (checked by `attack`): stopped by
    // the pids limit, or first by the memory limit or the timeout. Each child that a runtime
    // forked from the zygote forks costs ~0.8 MB (copied page tables and pages of a larger
    // heap) against ~0.25 MB for an exec'd one, so its 512 MB run out before 1024 processes do.
    let (status, error, v) = attack(json!({"attack": "fork_bomb"})).await;
    match status.as_str() {
        "success" => {
            assert_eq!(v["stopped_by"], "EAGAIN", "{v}");
            assert!(v["children"].as_u64().unwrap() < 1024, "{v}");
        }
        "out_of_memory" => assert_eq!(error, "Runtime.OutOfMemory"),
        _ => assert_eq!(
            (status.as_str(), error.as_str()),
            ("timeout", "Sandbox.Timedout")
        ),
    }

    let (status, error, v) = attack(json!({"attack": "memory"})).await;
    assert_eq!(
        (status.as_str(), error.as_str()),
        ("out_of_memory", "Runtime.OutOfMemory"),
        "{v}"
    );

    let (status, error, _) = attack(json!({"attack": "spin"})).await;
    assert_eq!(
        (status.as_str(), error.as_str()),
        ("timeout", "Sandbox.Timedout")
    );

    // The platform itself is unharmed.
    let health = node.http.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
