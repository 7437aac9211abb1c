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

/// Deploys the files of `dir` as a `provided` function over `/v1` and returns the node.
async fn deploy_provided(dir: &Path, name: &str) -> common::Node {
    let node = common::node().await;
    let (status, code) = node.upload(zip_dir(dir)).await;
    assert!(status.is_success(), "upload: {status} {code}");
    let (status, _, deployed) = node
        .send(
            reqwest::Method::PUT,
            &format!("/v1/functions/{name}"),
            json!({"runtime": "provided.al2023", "timeout": 10, "code_sha256": code["sha256"]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert!(status.is_success(), "deploy: {status} {deployed}");
    node
}

/// Invokes a function that echoes and counts calls twice, then makes it fail: the answers a
/// runtime client gives through the Runtime API are the ones Lambent returns.
async fn echoes_counts_and_fails(node: &common::Node, name: &str) {
    for calls in 1..=2 {
        let (status, headers, body) = node.invoke(name, r#"{"hello": "ric"}"#).await;
        assert_eq!(status, 200);
        assert_eq!(
            common::header(&headers, "lambent-status"),
            "success",
            "{body}"
        );
        assert_eq!(body["echo"], json!({"hello": "ric"}));
        assert_eq!(body["calls"], calls, "warm reuse: {body}");
        assert_eq!(
            body["request_id"],
            common::header(&headers, "lambent-activation-id")
        );
        assert_eq!(
            body["arn"],
            format!("arn:aws:lambda:us-east-1:default:function:{name}")
        );
    }
    let (_, headers, body) = node.invoke(name, r#"{"fail": true}"#).await;
    assert_eq!(
        common::header(&headers, "lambent-status"),
        "function_error",
        "{body}"
    );
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap_or("")
            .contains("asked to fail"),
        "{body}"
    );
}

/// A function built with AWS's Rust runtime client (`lambda_runtime` from crates.io), from
/// `tests/fixtures/rust-lambda`, built once per machine into a shared target dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_lambda_runtime_runs_unmodified_as_a_provided_bootstrap() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rust-lambda");
    let target = Path::new("/tmp/lambent-test-rust-lambda-target");
    let built = tokio::task::spawn_blocking({
        let (fixture, target) = (fixture.clone(), target.to_path_buf());
        move || {
            Command::new(env!("CARGO"))
                .args(["build", "--release", "--quiet", "--manifest-path"])
                .arg(fixture.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(&target)
                .output()
                .expect("cannot run cargo")
        }
    })
    .await
    .unwrap();
    assert!(
        built.status.success(),
        "building the lambda_runtime function failed (is crates.io reachable?):\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let code = tempfile::tempdir().unwrap();
    std::fs::copy(
        target.join("release/bootstrap"),
        code.path().join("bootstrap"),
    )
    .unwrap();
    let node = deploy_provided(code.path(), "rusty").await;
    echoes_counts_and_fails(&node, "rusty").await;
}

/// Installs `aws-lambda-ric` from npm once per machine (it builds a native addon: cmake,
/// autoconf, automake, libtool, make and g++, which scripts/test installs). `Err` with npm's
/// output when the install itself fails.
fn npm_install_ric() -> Result<std::path::PathBuf, String> {
    let dir = std::path::PathBuf::from("/tmp/lambent-test-npm-aws-lambda-ric");
    let addon = |d: &Path| d.join("node_modules/aws-lambda-ric/dist/rapid-client.node");
    if addon(&dir).exists() {
        return Ok(dir);
    }
    let building =
        std::path::PathBuf::from(format!("{}.building-{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    std::fs::create_dir_all(&building).unwrap();
    // npm 11 runs a dependency's install scripts only when `allowScripts` names it; older npm
    // ignores the field and runs them anyway.
    std::fs::write(
        building.join("package.json"),
        r#"{"private": true, "dependencies": {"aws-lambda-ric": "*"}, "allowScripts": {"aws-lambda-ric": true}}"#,
    )
    .unwrap();
    let mut npm = Command::new("npm");
    npm.args(["install", "--no-audit", "--no-fund", "--foreground-scripts"])
        .current_dir(&building);
    // node-gyp would download Node's headers; the registries are all that is reachable, and
    // Debian's nodejs ships the headers.
    if Path::new("/usr/include/node/node.h").exists() {
        npm.env("npm_config_nodedir", "/usr");
    }
    let out = npm.output().map_err(|e| format!("cannot run npm: {e}"))?;
    if !out.status.success() || !addon(&building).exists() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        return Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    match std::fs::rename(&building, &dir) {
        Ok(()) => Ok(dir),
        Err(_) if addon(&dir).exists() => Ok(dir),
        Err(e) => Err(format!("cannot move the install into place: {e}")),
    }
}

/// AWS's Node.js runtime interface client, `aws-lambda-ric` from npm, unmodified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_lambda_ric_from_npm_runs_unmodified_as_a_provided_bootstrap() {
    let installed = match tokio::task::spawn_blocking(npm_install_ric).await.unwrap() {
        Ok(dir) => dir,
        Err(npm_output) => {
            println!("SKIPPED: npm install aws-lambda-ric failed on this machine:\n{npm_output}");
            return;
        }
    };
    // What runs: the client's script, its bundle and its native addon (its deps/ and the
    // build tools are for installing only).
    let code = tempfile::tempdir().unwrap();
    let (from, to) = (
        installed.join("node_modules/aws-lambda-ric"),
        code.path().join("node_modules/aws-lambda-ric"),
    );
    for part in ["bin", "dist"] {
        copy_tree(&from.join(part), &to.join(part));
    }
    std::fs::copy(from.join("package.json"), to.join("package.json")).unwrap();
    std::fs::write(
        code.path().join("app.mjs"),
        "let calls = 0;\nexport const handler = async (event, context) => {\n  calls += 1;\n  if (event.fail) throw new Error('asked to fail');\n  return { echo: event, calls, request_id: context.awsRequestId, arn: context.invokedFunctionArn };\n};\n",
    )
    .unwrap();
    let bootstrap = code.path().join("bootstrap");
    std::fs::write(
        &bootstrap,
        "#!/bin/sh\ncd \"$LAMBDA_TASK_ROOT\"\nexec /usr/bin/node node_modules/aws-lambda-ric/bin/index.mjs app.handler\n",
    )
    .unwrap();
    std::fs::set_permissions(
        &bootstrap,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let node = deploy_provided(code.path(), "noderic").await;
    echoes_counts_and_fails(&node, "noderic").await;
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}
