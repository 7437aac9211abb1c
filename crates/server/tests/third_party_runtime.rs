//! The proof that the Runtime API is real: AWS's own Python runtime interface client,
//! `awslambdaric` from PyPI, unmodified, runs as the `bootstrap` of a `provided` function.
//! Needs root (full isolation) and access to PyPI, as CI has.

mod common;

use common::zip_dir;
use lambent_server::{start, ServerOptions};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const KEY: &str = "test-key";

/// Installs awslambdaric for the machine's /usr/bin/python3 (the interpreter sandboxes see).
fn pip_install(target: &Path) {
    let out = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
        ])
        .args(["--only-binary=:all:", "--target"])
        .arg(target)
        .arg("awslambdaric")
        .output()
        .expect("cannot run /usr/bin/python3 -m pip: install python3-pip (scripts/test does)");
    assert!(
        out.status.success(),
        "pip install awslambdaric failed (is PyPI reachable?):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awslambdaric_runs_unmodified_as_a_provided_bootstrap() {
    let code = tempfile::tempdir().unwrap();
    pip_install(code.path());
    std::fs::write(
        code.path().join("app.py"),
        "import os\ncalls = 0\ndef handler(event, context):\n    global calls\n    calls += 1\n    return {'echo': event, 'calls': calls, 'request_id': context.aws_request_id,\n            'function': context.function_name, 'remaining_ms': context.get_remaining_time_in_millis()}\n",
    )
    .unwrap();
    let bootstrap = code.path().join("bootstrap");
    std::fs::write(&bootstrap, "#!/bin/sh\nexport PYTHONPATH=\"$LAMBDA_TASK_ROOT\"\nexec /usr/bin/python3 -m awslambdaric app.handler\n").unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();

    let data = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    opts.api_key = Some(KEY.into());
    let server = start(opts)
        .await
        .unwrap_or_else(|e| panic!("the server did not start: {e}"));
    let http = reqwest::Client::new();
    let url = |p: &str| format!("{}{p}", server.url());

    let upload = http
        .post(url("/v1/code"))
        .bearer_auth(KEY)
        .body(zip_dir(code.path()))
        .send()
        .await
        .unwrap();
    assert!(
        upload.status().is_success(),
        "{}",
        upload.text().await.unwrap()
    );
    let sha = upload.json::<Value>().await.unwrap()["sha256"].clone();
    let deploy = http
        .put(url("/v1/functions/ric"))
        .bearer_auth(KEY)
        .body(json!({"runtime": "provided.al2023", "timeout": 10, "code_sha256": sha}).to_string())
        .send()
        .await
        .unwrap();
    assert!(
        deploy.status().is_success(),
        "{}",
        deploy.text().await.unwrap()
    );

    for calls in 1..=2 {
        let r = http
            .post(url("/v1/functions/ric/invoke"))
            .bearer_auth(KEY)
            .body(r#"{"hello": "ric"}"#)
            .send()
            .await
            .unwrap();
        let id = r.headers()["lambent-activation-id"]
            .to_str()
            .unwrap()
            .to_string();
        let status = r.headers()["lambent-status"].to_str().unwrap().to_string();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, "success", "{body}");
        assert_eq!(body["echo"], json!({"hello": "ric"}));
        assert_eq!(body["calls"], calls, "warm reuse under awslambdaric");
        assert_eq!(body["request_id"], id.as_str());
        assert_eq!(body["function"], "ric");
        let remaining = body["remaining_ms"].as_i64().unwrap();
        assert!(
            remaining > 5_000 && remaining <= 10_000,
            "deadline header honoured: {remaining}"
        );
    }
    server.shutdown().await;
}
