//! Durable Step Functions executions across a crash: `lambent up` is SIGKILLed while a Standard
//! execution of three Task states is in its second, and the execution finishes after the
//! restart on the same data dir, each Task completed before the crash not run again (counted
//! from the functions' activation records). Requests are signed with SigV4 for `states`.

mod support;

use lambent_aws_api::sigv4::Signer;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{path_str, Server};

struct Sfn {
    http: reqwest::blocking::Client,
    url: String,
    key_id: String,
    secret: String,
}

impl Sfn {
    fn call(&self, operation: &str, body: Value) -> Value {
        let body = body.to_string();
        let mut headers = reqwest::header::HeaderMap::new();
        let host = self.url.trim_start_matches("http://");
        headers.insert("host", host.parse().unwrap());
        headers.insert(
            "x-amz-target",
            format!("AWSStepFunctions.{operation}").parse().unwrap(),
        );
        headers.insert(
            "content-type",
            "application/x-amz-json-1.0".parse().unwrap(),
        );
        Signer {
            access_key_id: &self.key_id,
            secret: &self.secret,
            region: "us-east-1",
            service: "states",
        }
        .sign(
            "POST",
            "/",
            &mut headers,
            body.as_bytes(),
            time::OffsetDateTime::now_utc(),
        );
        let r = self
            .http
            .post(format!("{}/", self.url))
            .headers(headers)
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        let v: Value = r.json().unwrap();
        assert!(status.is_success(), "{operation}: {status} {v}");
        v
    }
}

fn deploy(s: &Server, home: &std::path::Path, name: &str, code: &str) {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), code).unwrap();
    s.cli(&[
        "deploy",
        path_str(&dir),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
}

fn runs_of(s: &Server, http: &reqwest::blocking::Client, function: &str) -> usize {
    let v: Value = http
        .get(format!(
            "{}/v1/activations?function={function}&limit=100",
            s.url
        ))
        .bearer_auth(&s.key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    v["activations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["status"] == "success")
        .count()
}

/// Polls `check` until it gives a value; on timeout, fails with the server's log.
fn wait_for<T>(
    home: &std::path::Path,
    secs: u64,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the server's log:\n{}",
            std::fs::read_to_string(home.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_standard_execution_finishes_after_sigkill_without_rerunning_completed_tasks() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start_with_env(home.path(), &[], &[("LAMBENT_LOG", "info")]);
    let http = reqwest::blocking::Client::new();
    deploy(
        &s,
        home.path(),
        "first",
        "def handler(e, c):\n    return {'n': e['n'] + 1}\n",
    );
    deploy(
        &s,
        home.path(),
        "second",
        "import time\ndef handler(e, c):\n    time.sleep(2)\n    return {'n': e['n'] * 10}\n",
    );
    deploy(
        &s,
        home.path(),
        "third",
        "def handler(e, c):\n    return {'n': e['n'] + 5}\n",
    );
    let key: Value = http
        .post(format!("{}/v1/keys", s.url))
        .bearer_auth(&s.key)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let sfn = |s: &Server| Sfn {
        http: http.clone(),
        url: s.url.clone(),
        key_id: key["access_key_id"].as_str().unwrap().into(),
        secret: key["secret_access_key"].as_str().unwrap().into(),
    };
    let arn = |f: &str| format!("arn:aws:lambda:us-east-1:default:function:{f}");
    let definition = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": arn("first"), "Next": "Second"},
            "Second": {"Type": "Task", "Resource": arn("second"), "Next": "Third"},
            "Third": {"Type": "Task", "Resource": arn("third"), "End": true},
        }
    });
    let machine = sfn(&s).call(
        "CreateStateMachine",
        json!({"name": "three", "definition": definition.to_string(), "roleArn": "arn:aws:iam::000000000000:role/r"}),
    )["stateMachineArn"]
        .as_str()
        .unwrap()
        .to_string();
    let execution = sfn(&s).call(
        "StartExecution",
        json!({"stateMachineArn": machine, "name": "crash", "input": "{\"n\": 1}"}),
    )["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    // Crash while the second Task runs (the first is done and committed).
    wait_for(home.path(), 60, "the first Task to be done", || {
        (runs_of(&s, &http, "first") == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(runs_of(&s, &http, "first"), 1);
    assert_eq!(
        runs_of(&s, &http, "second"),
        0,
        "killed before the second ended"
    );
    s.kill();

    let s = Server::start_with_env(home.path(), &[], &[("LAMBENT_LOG", "info")]);
    let done = wait_for(
        home.path(),
        60,
        "the execution to end after the restart",
        || {
            let d = sfn(&s).call("DescribeExecution", json!({"executionArn": execution}));
            (d["status"] != "RUNNING").then_some(d)
        },
    );
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"n": 25}));
    assert_eq!(runs_of(&s, &http, "first"), 1, "the first Task ran again");
    assert_eq!(runs_of(&s, &http, "second"), 1);
    assert_eq!(runs_of(&s, &http, "third"), 1);
    let history = sfn(&s).call(
        "GetExecutionHistory",
        json!({"executionArn": execution, "maxResults": 1000}),
    );
    let ids: Vec<u64> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}
