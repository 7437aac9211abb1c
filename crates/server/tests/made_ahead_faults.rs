//! Faults in what a node makes ahead of its cold starts. A test binary of its own: it stops
//! and kills every sandbox made ahead by this process, which would disturb other tests' nodes.

mod common;

use common::{deploy_provided, header, node, Node, SHELL_BOOTSTRAP};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::Duration;

/// The sandboxes made ahead by this process's nodes that wait for their program (named
/// `lambent-ready` until they `execve` it).
fn made_ahead() -> Vec<Pid> {
    let me = std::process::id().to_string();
    let waiting = |pid: i32| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid ...": the name may hold spaces, not ") ".
        let (comm, rest) = stat.split_once(" (")?.1.rsplit_once(") ")?;
        let ppid = rest.split(' ').nth(1)?;
        (comm == "lambent-ready" && ppid == me).then_some(Pid::from_raw(pid))
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| waiting(entry.ok()?.file_name().to_str()?.parse().ok()?))
        .collect()
}

/// The sandboxes that ended with their init failed, from `/metrics`.
async fn ended_in_init(node: &Node) -> u64 {
    common::metrics(node)
        .await
        .lines()
        .find(|l| l.starts_with(r#"lambent_sandboxes_ended_total{reason="init_failed"}"#))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Regression (issue 21): a cold start claims a sandbox made ahead without waiting for its
/// program's `execve`; one killed in between (the soak's faults do that) failed its
/// invocation with `Runtime.ExitError` (killed by signal 9), where a claim that waited had
/// started another sandbox. It is replaced again: the invocation is answered by another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_made_ahead_killed_before_its_program_ran_is_replaced() {
    let node = node().await;
    for name in ["warm-up", "claimer"] {
        deploy_provided(&node, name, SHELL_BOOTSTRAP).await;
    }
    let (_, headers, body) = node.invoke("warm-up", r#"{"n": 1}"#).await;
    assert_eq!(header(&headers, "lambent-status"), "success", "{body}");
    let waiting = common::eventually(30, "a sandbox made ahead", || async {
        let waiting = made_ahead();
        (!waiting.is_empty()).then_some(waiting)
    })
    .await;
    let failed_before = ended_in_init(&node).await;
    // Stopped, the one claimed cannot reach its `execve` before it is killed.
    for &pid in &waiting {
        kill(pid, Signal::SIGSTOP).unwrap();
    }
    let kill_them = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for &pid in &waiting {
            let _ = kill(pid, Signal::SIGKILL);
        }
    };
    let ((status, headers, body), ()) =
        tokio::join!(node.invoke("claimer", r#"{"n": 2}"#), kill_them);
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "lambent-status"), "success", "{body}");
    assert_eq!(body["event"]["n"], 2, "{body}");
    // The claimed one did end in its init: the answer came from another.
    assert_eq!(ended_in_init(&node).await, failed_before + 1);
}
