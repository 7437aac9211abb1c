//! Observable cold starts: each activation says whether it was cold, why, and where its init time
//! went (sandbox, runtime start, handler import), and `/metrics` exposes the same phases as
//! histograms. Real server, real sandboxes (full isolation, as root), real runtimes.

mod common;

use common::{deploy_provided, header, metrics, node, Node, SHELL_BOOTSTRAP};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A Python handler module that takes 50 ms to import.
const SLOW_IMPORT_PY: &str =
    "import time\ntime.sleep(0.05)\n\ndef handler(event, context):\n    return {'v': 1}\n";

/// What a sum of measured phases may exceed `init_us` by: each phase is rounded down to the
/// microsecond on its own clock reading.
const SLACK_US: u64 = 1_000;

/// Invokes `name` and returns its activation record, as `GET /v1/activations/{id}` gives it.
async fn invoke_and_record(node: &Node, name: &str) -> Value {
    let (status, headers, body) = node.invoke(name, "{}").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = header(&headers, "lambent-activation-id").to_string();
    assert!(!id.is_empty(), "no activation id: {headers:?}");
    record(node, &id).await
}

/// The activation record `id`, as `GET /v1/activations/{id}` gives it once it is written.
async fn record(node: &Node, id: &str) -> Value {
    common::eventually(10, "the activation record", || async {
        let (s, _, record) = node
            .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
            .await;
        (s == StatusCode::OK).then_some(record)
    })
    .await
}

/// Checks a cold record's `init`: a known birth, the phases present (the import as `import`
/// expects), and their sum within the total init time. Returns the `init` object.
fn assert_cold_breakdown(record: &Value, reason: &str, import: Import) -> Value {
    assert_eq!(record["cold"], true, "{record}");
    assert_eq!(record["cold_reason"], reason, "{record}");
    let init = &record["init"];
    let birth = init["birth"].as_str().unwrap_or_default();
    assert!(
        ["exec", "ahead", "zygote", "stem_cell"].contains(&birth),
        "{record}"
    );
    let sandbox_us = init["sandbox_us"].as_u64().expect("sandbox_us");
    let runtime_us = init["runtime_us"].as_u64().expect("runtime_us");
    assert!(sandbox_us > 0, "making a sandbox takes time: {init}");
    // The runtime's share is what is left after the sandbox and the import: when the machine
    // is loaded, the parent may learn that the sandbox's program runs only once the runtime
    // is up, and the share rounds to nothing (the sum is still checked below).
    let import_us = match import {
        Import::Unknown => {
            assert!(init["import_us"].is_null(), "{init}");
            0
        }
        Import::AtLeast(min) => {
            let us = init["import_us"].as_u64().expect("import_us");
            assert!(us >= min, "import_us {us} < {min}: {init}");
            us
        }
    };
    let init_us = record["init_us"].as_u64().expect("init_us");
    assert!(
        sandbox_us + runtime_us + import_us <= init_us + SLACK_US,
        "the phases add up to more than init_us {init_us}: {init}"
    );
    init.clone()
}

enum Import {
    /// The runtime did not report it.
    Unknown,
    /// Reported, at least this many microseconds.
    AtLeast(u64),
}

/// The `lambent_cold_start_phase_seconds_count` of one runtime and phase (all births).
fn phase_count(metrics: &str, runtime: &str, phase: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lambent_cold_start_phase_seconds_count{"))
        .filter(|l| {
            l.contains(&format!(r#"runtime="{runtime}""#))
                && l.contains(&format!(r#"phase="{phase}""#))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

fn python(code: &str) -> (Value, [(&str, &str); 1]) {
    (
        json!({"runtime": "python3.12", "handler": "app.handler"}),
        [("app.py", code)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_cold_starts_say_where_the_time_went_and_why() {
    let node = node().await;
    let (settings, files) = python(SLOW_IMPORT_PY);
    let (s, v) = node.deploy("slow", settings, &files).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let first = invoke_and_record(&node, "slow").await;
    let init = assert_cold_breakdown(&first, "first_request", Import::AtLeast(50_000));

    let warm = invoke_and_record(&node, "slow").await;
    assert_eq!(warm["cold"], false, "{warm}");
    assert!(warm["init"].is_null(), "a warm start has no init: {warm}");
    assert!(warm["cold_reason"].is_null(), "{warm}");

    // New code: the next invocation starts a sandbox for it.
    let new_code = SLOW_IMPORT_PY.replace("'v': 1", "'v': 2");
    let (settings, files) = python(&new_code);
    let (s, v) = node.deploy("slow", settings, &files).await;
    assert!(s.is_success(), "{v}");
    let updated = invoke_and_record(&node, "slow").await;
    assert_cold_breakdown(&updated, "code_updated", Import::AtLeast(50_000));

    // Prometheus: the phases by runtime and birth, the import among them, buckets below 1 ms,
    // and the cold-start counter by reason and birth.
    let text = metrics(&node).await;
    for phase in ["sandbox", "runtime", "import"] {
        assert_eq!(phase_count(&text, "python", phase), 2, "{phase}: {text}");
    }
    let birth = init["birth"].as_str().unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("lambent_cold_start_phase_seconds_bucket{")
                && l.contains(r#"runtime="python""#)
                && l.contains(&format!(r#"birth="{birth}""#))
                && l.contains(r#"phase="import""#)
                && l.contains(r#"le="0.00005""#)
        ),
        "a 50 µs bucket for the import phase: {text}"
    );
    assert!(
        text.contains(&format!(
            r#"lambent_cold_starts_total{{namespace="default",function="slow",reason="first_request",birth="{birth}"}} 1"#
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_init_still_records_what_is_known() {
    let node = node().await;
    let (settings, files) = python("import no_such_module\n");
    let (s, v) = node.deploy("broken", settings, &files).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, headers, body) = node.invoke("broken", "{}").await;
    assert_eq!(header(&headers, "lambent-status"), "init_error", "{body}");
    let record = record(&node, header(&headers, "lambent-activation-id")).await;
    // The runtime never asked for work, so it never said how long its import took.
    assert_cold_breakdown(&record, "first_request", Import::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_reports_its_import_and_a_provided_runtime_leaves_it_unknown() {
    let node = node().await;
    let (s, v) = node
        .deploy(
            "hello-node",
            json!({"runtime": "nodejs20.x", "handler": "index.handler"}),
            &[(
                "index.mjs",
                "await new Promise((r) => setTimeout(r, 50));\nexport const handler = async () => ({ ok: true });\n",
            )],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let record = invoke_and_record(&node, "hello-node").await;
    assert_cold_breakdown(&record, "first_request", Import::AtLeast(50_000));

    deploy_provided(&node, "hello-provided", SHELL_BOOTSTRAP).await;
    let record = invoke_and_record(&node, "hello-provided").await;
    assert_cold_breakdown(&record, "first_request", Import::Unknown);

    let text = metrics(&node).await;
    assert_eq!(phase_count(&text, "nodejs", "import"), 1, "{text}");
    assert_eq!(phase_count(&text, "provided", "runtime"), 1, "{text}");
    assert_eq!(
        phase_count(&text, "provided", "import"),
        0,
        "an unknown import is not observed: {text}"
    );
}

/// A `provided` cold start claims a sandbox made ahead without waiting for its `execve`; a
/// `bootstrap` the kernel will not run is still named for what it is, cold start after cold
/// start (the first claims what was made ahead, the next what the pool made after), and is the
/// function's fault, as on Lambda, not the platform's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_the_kernel_will_not_run_is_an_invalid_entrypoint() {
    let node = node().await;
    let not_a_program = "no #! line, not an executable format\n";
    deploy_provided(&node, "not-a-program", not_a_program).await;
    for _ in 0..3 {
        let (status, headers, body) = node.invoke("not-a-program", "{}").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(header(&headers, "lambent-status"), "init_error", "{body}");
        assert_eq!(
            header(&headers, "lambent-function-error"),
            "Runtime.InvalidEntrypoint",
            "{body}"
        );
        assert_eq!(
            body["errorMessage"], "could not exec '/var/task/bootstrap': Exec format error",
            "{body}"
        );
    }
    // The node serves on.
    deploy_provided(&node, "hello-provided", SHELL_BOOTSTRAP).await;
    let (_, headers, body) = node.invoke("hello-provided", r#"{"name": "x"}"#).await;
    assert_eq!(header(&headers, "lambent-status"), "success", "{body}");
}

/// Regression (issue 21): the first cold starts after start-up were 4-8x slower than later
/// ones, because the Python zygote's runtimes forked ahead and the sandboxes made ahead for
/// `execve` were only made after the first cold start asked for them. Now `/healthz` says
/// `ready` once they wait, and the very first cold start of each runtime claims one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_healthz_says_ready_the_first_cold_starts_claim_what_was_made_ahead() {
    let node = node().await;
    let health = common::eventually(60, "/healthz saying ready", || async {
        let (s, _, health) = node.send(Method::GET, "/healthz", vec![]).await;
        assert_eq!(s, StatusCode::OK, "{health}");
        assert_eq!(health["status"], "ok", "{health}");
        for part in health["warming"].as_array().expect("warming: a list") {
            assert!(
                [
                    "sandboxes made ahead",
                    "the Python zygote",
                    "Python runtimes forked ahead",
                    "Node.js stem cells"
                ]
                .contains(&part.as_str().unwrap_or_default()),
                "{health}"
            );
        }
        (health["ready"] == true).then_some(health)
    })
    .await;
    assert_eq!(health["warming"], json!([]), "{health}");

    let (settings, files) = python("def handler(event, context):\n    return 1\n");
    let functions = [
        ("first-py", settings, files[0], "zygote"),
        (
            "first-node",
            json!({"runtime": "nodejs20.x", "handler": "index.handler"}),
            ("index.mjs", "export const handler = async () => 1;\n"),
            "stem_cell",
        ),
        (
            "first-provided",
            json!({"runtime": "provided.al2023"}),
            ("bootstrap", SHELL_BOOTSTRAP),
            "ahead",
        ),
    ];
    for (name, settings, file, _) in &functions {
        let (s, v) = node.deploy(name, settings.clone(), &[*file]).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    for (name, _, _, birth) in functions {
        let record = invoke_and_record(&node, name).await;
        assert_eq!(record["cold"], true, "{record}");
        assert_eq!(record["init"]["birth"], birth, "{name}: {record}");
    }
}
