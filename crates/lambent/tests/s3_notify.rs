//! `lambent bucket notify` against `lambent up`, and the promise of bucket notifications: once
//! a PUT has answered 200 its notification is stored, so a SIGKILL right after the PUTs loses
//! none of them. S3 requests are signed by curl (`--aws-sigv4`) with a key from `lambent keys`.

mod support;

use serde_json::Value;
use std::collections::HashSet;
use std::process::Command;
use support::{eventually, Server};

/// An S3 request signed with SigV4 by curl; returns the HTTP status.
fn s3(s: &Server, key: &(String, String), method: &str, path: &str, body: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", key.0, key.1)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["--data-binary", body])
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn api(s: &Server, path: &str) -> Value {
    reqwest::blocking::Client::new()
        .get(format!("{}{path}", s.url))
        .bearer_auth(&s.key)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn notifications_of_answered_puts_survive_a_sigkill() {
    const PUTS: usize = 100;
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = home.path().join("counter");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.py"),
        "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    \
         print('KEY', event['Records'][0]['s3']['object']['key'])\n    return 'ok'\n",
    )
    .unwrap();
    let dir = dir.to_str().unwrap();
    s.cli(&[
        "deploy",
        dir,
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
    s.cli(&["queue", "create", "uploads"]).ok();
    let k = s.cli(&["keys", "create", "-o", "json"]).ok().json();
    let key = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );
    assert_eq!(s3(&s, &key, "PUT", "/photos", ""), 200);

    // The CLI: a function with a prefix filter, a queue with the default events.
    s.cli(&[
        "bucket",
        "notify",
        "photos",
        "--function",
        "counter",
        "--prefix",
        "in/",
    ])
    .ok();
    s.cli(&["bucket", "notify", "photos", "--queue", "uploads"])
        .ok();
    // Again for the same function: replaced, not added.
    let out = s.cli(&[
        "bucket",
        "notify",
        "photos",
        "--function",
        "counter",
        "--prefix",
        "in/",
        "--events",
        "s3:ObjectCreated:Put,s3:ObjectCreated:CompleteMultipartUpload",
    ]);
    assert!(out.ok().stdout.contains("function counter"));
    let shown = s
        .cli(&["bucket", "notifications", "photos", "-o", "json"])
        .ok()
        .json();
    let configs = shown["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 2, "{shown}");
    let function = configs.iter().find(|c| c["function"] == "counter").unwrap();
    assert_eq!(function["prefix"], "in/");
    assert_eq!(function["events"].as_array().unwrap().len(), 2);
    assert_eq!(
        function["arn"],
        "arn:aws:lambda:us-east-1:default:function:counter"
    );
    let refused = s
        .cli(&["bucket", "notify", "photos", "--function", "nope"])
        .failed();
    assert!(
        refused
            .stderr
            .contains("Unable to validate the following destination configurations"),
        "{refused:?}"
    );
    let missing = s
        .cli(&["bucket", "notify", "nobucket", "--queue", "uploads"])
        .failed();
    assert!(
        missing.stderr.contains("bucket does not exist"),
        "{missing:?}"
    );

    // N answered PUTs, then SIGKILL at once.
    for n in 0..PUTS {
        let status = s3(&s, &key, "PUT", &format!("/photos/in/obj-{n}"), "x");
        assert_eq!(status, 200, "PUT {n}");
    }
    s.kill();

    let s = Server::start(home.path(), &[]);
    let pending = || api(&s, "/v1/async")["pending"].as_u64().unwrap();
    let left_at_restart = pending();
    eventually(120, "every notification's invocation to finish", || {
        (pending() == 0).then_some(())
    });
    let page = api(
        &s,
        "/v1/activations?function=counter&status=success&limit=1000",
    );
    let mut events = HashSet::new();
    let mut keys = HashSet::new();
    for a in page["activations"].as_array().unwrap() {
        let id = a["id"].as_str().unwrap();
        events.insert(id.split_once('.').map_or(id, |(e, _)| e).to_string());
        for line in a["logs"].as_str().unwrap_or_default().lines() {
            if let Some((_, k)) = line.split_once("KEY ") {
                keys.insert(k.trim().to_string());
            }
        }
    }
    let http = reqwest::blocking::Client::new();
    let mut queued = HashSet::new();
    let mut messages = 0;
    eventually(30, "every notification in the queue", || {
        let v: Value = http
            .post(format!("{}/v1/queues/uploads/receive", s.url))
            .bearer_auth(&s.key)
            .json(&serde_json::json!({"max": 10, "visibility_timeout": 300}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        for m in v["messages"].as_array().unwrap() {
            messages += 1;
            let body: Value = serde_json::from_str(m["body"].as_str().unwrap()).unwrap();
            queued.insert(
                body["Records"][0]["s3"]["object"]["key"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        (queued.len() >= PUTS).then_some(())
    });
    eprintln!(
        "s3 crash test: {PUTS} PUTs answered, {left_at_restart} invocations not done at the \
         SIGKILL, {} distinct events run, {} queue messages",
        events.len(),
        messages
    );
    assert_eq!(events.len(), PUTS, "one event per PUT, none lost");
    assert_eq!(keys.len(), PUTS);
    assert_eq!(queued.len(), PUTS);
    assert!(
        left_at_restart > 0,
        "the kill came after everything was done: not a crash test"
    );
}
