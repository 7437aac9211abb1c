//! The `/v1` REST API end to end: a real node (SQLite store, real sandboxes, the embedded runtime
//! clients) on an ephemeral port with a temporary data dir, driven over HTTP. Needs root (full
//! isolation), as CI has.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::io::Write;
use std::time::Duration;

const COUNTER_PY: &str = r#"
import os, sys, time
count = 0
def handler(event, context):
    global count
    count += 1
    action = event.get("action")
    if action == "fail":
        raise ValueError("it failed")
    if action == "exit":
        os._exit(3)
    if action == "sleep":
        time.sleep(event["seconds"])
    if action == "flood":
        chunk = "x" * 65535 + "\n"
        for _ in range(event["mb"] * 16):
            sys.stdout.write(chunk)
    print("invocation", count)
    return {"count": count, "version": os.environ.get("VERSION")}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_required_and_health_is_public() {
    let node = node().await;
    let health = node.http.get(node.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);

    let anonymous = node
        .http
        .get(node.url("/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");

    let wrong = node
        .http
        .get(node.url("/v1/functions"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);

    let (status, _, body) = node
        .send(reqwest::Method::GET, "/v1/functions", vec![])
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"functions": []})));

    let (status, _, body) = node
        .send(reqwest::Method::GET, "/v1/nothing-here", vec![])
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
}

/// One HTTP/1.1 answer read off a raw connection: its head (lowercased) and body.
async fn read_answer(conn: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> (String, Vec<u8>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut head = String::new();
    loop {
        let mut line = String::new();
        let n = conn.read_line(&mut line).await.unwrap();
        assert!(
            n > 0,
            "the connection closed inside an answer's head: {head:?}"
        );
        head.push_str(&line.to_ascii_lowercase());
        if line == "\r\n" {
            break;
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.unwrap();
    (head, body)
}

/// A client that sends `Expect: 100-continue` keeps its body until `100 Continue`; answered
/// first, it never sends it, so the connection closes: else the server would read the client's
/// next request as the rest of that body (boto3's S3 calls after an UploadPart refused with
/// `NoSuchUpload` got `SignatureDoesNotMatch`: `POST` arrived as `OST`). A body read to its end
/// leaves the connection open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_expecting_continue_answered_unread_closes_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = node().await;
    let addr = node.server.as_ref().unwrap().addr();
    let secs = Duration::from_secs(10);

    // Refused before its body is read: the answer closes the connection.
    let mut conn = tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let refused = "POST /v1/functions/f/invoke HTTP/1.1\r\nHost: node\r\n\
        Authorization: Bearer nope\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n";
    conn.get_mut().write_all(refused.as_bytes()).await.unwrap();
    let (head, _) = tokio::time::timeout(secs, read_answer(&mut conn))
        .await
        .expect("the refusal: nothing in 10 s");
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
    let mut rest = Vec::new();
    tokio::time::timeout(secs, conn.read_to_end(&mut rest))
        .await
        .expect("the close: nothing in 10 s")
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");

    // Its body read (after `100 Continue`): the connection serves the next request.
    let mut conn = tokio::io::BufReader::new(tokio::net::TcpStream::connect(addr).await.unwrap());
    let read = format!(
        "POST /v1/queues HTTP/1.1\r\nHost: node\r\nAuthorization: Bearer {KEY}\r\n\
        Content-Type: application/json\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
    );
    conn.get_mut().write_all(read.as_bytes()).await.unwrap();
    let (head, _) = tokio::time::timeout(secs, read_answer(&mut conn))
        .await
        .expect("100 Continue: nothing in 10 s");
    assert!(head.starts_with("http/1.1 100"), "{head}");
    conn.get_mut().write_all(b"{bad").await.unwrap();
    let (head, body) = tokio::time::timeout(secs, read_answer(&mut conn))
        .await
        .expect("the bad body: nothing in 10 s");
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let error: Value = serde_json::from_slice(&body).unwrap();
    assert!(error["error"]["code"].is_string(), "{error}");
    conn.get_mut()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: node\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = tokio::time::timeout(secs, read_answer(&mut conn))
        .await
        .expect("the next request: nothing in 10 s");
    assert!(head.starts_with("http/1.1 200"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_invoke_warm_reuse_logs_and_activations() {
    let node = node().await;
    let (status, f) = node
        .deploy(
            "counter",
            json!({"runtime": "python3.12", "handler": "app.handler", "env": {"VERSION": "1"}}),
            &[("app.py", COUNTER_PY)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{f}");
    assert_eq!(
        (
            f["revision"].as_u64(),
            f["memory"].as_u64(),
            f["timeout"].as_u64()
        ),
        (Some(1), Some(128), Some(3))
    );

    let (status, h, body) = node.invoke("counter", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"count": 1, "version": "1"}));
    assert_eq!(header(&h, "lambent-cold"), "true");
    assert_eq!(header(&h, "lambent-status"), "success");
    let first_id = header(&h, "lambent-activation-id").to_string();

    let (_, h, body) = node.invoke("counter", "{}").await;
    assert_eq!(
        body["count"], 2,
        "module state survives between warm invocations"
    );
    assert_eq!(header(&h, "lambent-cold"), "false");

    let (status, h, body) = node.invoke("counter", r#"{"action": "fail"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "lambent-function-error"), "ValueError");
    assert_eq!(body["errorMessage"], "it failed");
    let (_, _, body) = node.invoke("counter", "{}").await;
    assert_eq!(body["count"], 4, "a handled error keeps the sandbox warm");

    let (status, _, logs) = node
        .send(
            reqwest::Method::GET,
            "/v1/functions/counter/logs?tail=2",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let logs = logs["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    let last = logs[1]["text"].as_str().unwrap();
    assert!(last.contains("invocation 4"), "{last}");
    assert!(
        last.contains("REPORT RequestId: ")
            && last.contains("Billed Duration: ")
            && last.contains("Max Memory Used: "),
        "{last}"
    );

    let (status, _, page) = node
        .send(
            reqwest::Method::GET,
            "/v1/activations?function=counter&limit=3",
            vec![],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["activations"].as_array().unwrap().len(), 3);
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (_, _, rest) = node
        .send(
            reqwest::Method::GET,
            &format!("/v1/activations?function=counter&cursor={cursor}"),
            vec![],
        )
        .await;
    let rest = rest["activations"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["id"], first_id.as_str());
    assert_eq!(rest[0]["cold"], true);
    assert_eq!(rest[0]["cold_reason"], "first_request");

    let (status, _, one) = node
        .send(
            reqwest::Method::GET,
            &format!("/v1/activations/{first_id}"),
            vec![],
        )
        .await;
    assert_eq!(
        (status, one["status"].as_str()),
        (StatusCode::OK, Some("success"))
    );
    let (status, _, _) = node
        .send(reqwest::Method::GET, "/v1/activations/nope", vec![])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, listed) = node
        .send(reqwest::Method::GET, "/v1/functions", vec![])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["functions"][0]["name"], "counter");
    assert_eq!(listed["functions"][0]["sandboxes"]["idle"], 1);

    let (status, _, _) = node
        .send(reqwest::Method::DELETE, "/v1/functions/counter", vec![])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = node.invoke("counter", "{}").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("FunctionNotFound"))
    );
}

/// Max memory used is the sandbox's high-water mark since it started, as Lambda reports an
/// execution environment's: a warm invocation that allocates nothing still reports what an
/// earlier one in the same sandbox reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_memory_used_is_the_sandboxs_high_water_mark() {
    const GROW_PY: &str = r#"
def handler(event, context):
    if event.get("mb"):
        block = bytearray(event["mb"] << 20)
        block[::4096] = b"x" * len(block[::4096])
        del block
    return {}
"#;
    let node = node().await;
    let (status, f) = node
        .deploy(
            "grow",
            json!({"runtime": "python3.12", "handler": "app.handler", "memory": 256}),
            &[("app.py", GROW_PY)],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{f}");
    for event in [r#"{}"#, r#"{"mb": 64}"#, r#"{}"#] {
        let (status, h, body) = node.invoke("grow", event).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(header(&h, "lambent-status"), "success");
    }
    let records = node.activations_of("grow").await;
    let peaks: Vec<u64> = records
        .iter()
        .map(|r| r["max_memory_bytes"].as_u64().expect("a measured peak"))
        .collect();
    assert_eq!(peaks.len(), 3, "{records:?}");
    assert!(peaks[0] < 64 << 20, "before allocating: {peaks:?}");
    assert!(peaks[1] >= 64 << 20, "the 64 MiB invocation: {peaks:?}");
    assert!(
        peaks[2] >= peaks[1],
        "the warm invocation after it keeps the sandbox's peak: {peaks:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_crash_and_init_error_are_reported_and_the_node_keeps_serving() {
    let node = node().await;
    let (s, f) = node
        .deploy(
            "flaky",
            json!({"runtime": "python", "handler": "app.handler", "timeout": 1}),
            &[("app.py", COUNTER_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{f}");

    let (status, h, body) = node
        .invoke("flaky", r#"{"action": "sleep", "seconds": 10}"#)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "lambent-status"), "timeout");
    assert_eq!(header(&h, "lambent-function-error"), "Sandbox.Timedout");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("timed out after 1"),
        "{body}"
    );

    let (_, h, body) = node.invoke("flaky", "{}").await;
    assert_eq!(
        (body["count"].as_u64(), header(&h, "lambent-cold")),
        (Some(1), "true"),
        "a timed-out sandbox is replaced"
    );

    let (_, h, body) = node.invoke("flaky", r#"{"action": "exit"}"#).await;
    assert_eq!(header(&h, "lambent-function-error"), "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("exit status 3"),
        "{body}"
    );
    let (_, h, body) = node.invoke("flaky", "{}").await;
    assert_eq!(
        (body["count"].as_u64(), header(&h, "lambent-cold")),
        (Some(1), "true"),
        "a crashed sandbox is replaced"
    );

    let (s, _) = node
        .deploy(
            "broken",
            json!({"runtime": "python", "handler": "missing.handler"}),
            &[("app.py", COUNTER_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (status, h, body) = node.invoke("broken", "{}").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&h, "lambent-status"), "init_error");
    assert_eq!(
        header(&h, "lambent-function-error"),
        "Runtime.ImportModuleError"
    );
    assert!(
        body["errorMessage"].as_str().unwrap().contains("missing"),
        "{body}"
    );

    let (s, _) = node
        .deploy(
            "noentry",
            json!({"runtime": "provided.al2023"}),
            &[("README", "no bootstrap here")],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, h, _) = node.invoke("noentry", "{}").await;
    assert_eq!(
        header(&h, "lambent-function-error"),
        "Runtime.InvalidEntrypoint"
    );

    // A function that prints 64 MB: its logs are capped, the node is fine.
    let (_, h, body) = node
        .invoke("flaky", r#"{"action": "flood", "mb": 64}"#)
        .await;
    assert_eq!(header(&h, "lambent-status"), "success", "{body}");
    let id = header(&h, "lambent-activation-id").to_string();
    let (_, _, record) = node
        .send(
            reqwest::Method::GET,
            &format!("/v1/activations/{id}"),
            vec![],
        )
        .await;
    let logs = record["logs"].as_str().unwrap();
    assert!(
        logs.len() < 300 * 1024,
        "logs are capped, got {} bytes",
        logs.len()
    );
    assert!(
        logs.contains("REPORT RequestId"),
        "the report line survives the cap"
    );

    let (_, _, body) = node.invoke("flaky", "{}").await;
    assert!(body["count"].as_u64().is_some(), "still serving: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_precise_errors() {
    let node = node().await;
    let code = |v: &Value| v["error"]["code"].as_str().unwrap_or_default().to_string();
    let (_, sha) = node.upload(zip_of(&[("app.py", COUNTER_PY)])).await;
    let sha = sha["sha256"].as_str().unwrap().to_string();
    let put = |name: &'static str, body: String| {
        let node = &node;
        async move {
            node.send(
                reqwest::Method::PUT,
                &format!("/v1/functions/{name}"),
                body.into_bytes(),
            )
            .await
        }
    };

    let (s, _, v) = put(
        "bad%20name",
        json!({"runtime": "python", "handler": "app.handler", "code_sha256": sha}).to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidName".into()),
        "{v}"
    );
    let (s, _, v) = put(
        "f",
        json!({"runtime": "cobol", "handler": "app.handler", "code_sha256": sha}).to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidSettings".into())
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown runtime 'cobol'"),
        "{v}"
    );
    let (s, _, v) = put(
        "f",
        json!({"runtime": "python", "handler": "app.handler", "memory": 64, "code_sha256": sha})
            .to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidSettings".into())
    );
    let (s, _, v) = put("f", "{not json".into()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidJson".into())
    );
    let (s, _, v) = put(
        "f",
        json!({"runtime": "python", "handler": "app.handler", "code_sha256": sha, "colour": "red"})
            .to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidJson".into())
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("colour"),
        "{v}"
    );
    let (s, _, v) = put(
        "f",
        json!({"runtime": "python", "handler": "app.handler", "code_sha256": "0".repeat(64)})
            .to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "CodeNotFound".into())
    );
    let (s, _, v) = put(
        "f",
        json!({"runtime": "python", "handler": "app.handler", "code_sha256": "../../etc/passwd"})
            .to_string(),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "CodeNotFound".into())
    );

    // Code packages that try to escape, or explode.
    let (s, v) = node.upload(b"this is not a zip".to_vec()).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidPackage".into())
    );
    let (s, v) = node.upload(zip_of(&[("../evil.py", "x")])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidPackage".into()),
        "{v}"
    );
    let (s, v) = node.upload(zip_of(&[("/etc/evil", "x")])).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidPackage".into()),
        "{v}"
    );
    let symlink = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink(
            "link",
            "../../../etc/shadow",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        w.finish().unwrap().into_inner()
    };
    let (s, v) = node.upload(symlink).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidPackage".into()),
        "{v}"
    );
    let bomb = {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("zeros", opts).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..300 {
            w.write_all(&block).unwrap();
        }
        w.finish().unwrap().into_inner()
    };
    assert!(bomb.len() < 2 << 20, "the bomb is small: {}", bomb.len());
    let (s, v) = node.upload(bomb).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge".into()),
        "{v}"
    );

    // Invocations with bad payloads; the function itself is fine.
    let (s, _) = node
        .deploy(
            "ok",
            json!({"runtime": "python", "handler": "app.handler"}),
            &[("app.py", COUNTER_PY)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, v) = node.invoke("ok", "{bad").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::BAD_REQUEST, "InvalidJson".into())
    );
    let big = format!("\"{}\"", "a".repeat(6 * 1024 * 1024 + 1));
    let (s, _, v) = node.invoke("ok", &big).await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLarge".into())
    );
    let (s, _, v) = node.invoke("nope", "{}").await;
    assert_eq!(
        (s, code(&v)),
        (StatusCode::NOT_FOUND, "FunctionNotFound".into())
    );
    let (s, _, v) = node.invoke("ok", "{}").await;
    assert_eq!(
        (s, v["count"].as_u64()),
        (StatusCode::OK, Some(1)),
        "still serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeploy_is_atomic_for_in_flight_invocations() {
    let node = std::sync::Arc::new(node().await);
    let settings =
        |v: &str| json!({"runtime": "python", "handler": "app.handler", "env": {"VERSION": v}});
    let (s, _) = node
        .deploy("swap", settings("1"), &[("app.py", COUNTER_PY)])
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let slow = {
        let node = node.clone();
        tokio::spawn(async move {
            node.invoke("swap", r#"{"action": "sleep", "seconds": 1.5}"#)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (s, f) = node
        .deploy("swap", settings("2"), &[("app.py", COUNTER_PY)])
        .await;
    assert_eq!((s, f["revision"].as_u64()), (StatusCode::OK, Some(2)));
    let (_, h, body) = node.invoke("swap", "{}").await;
    assert_eq!(body["version"], "2", "new invocations get the new code");
    assert_eq!(header(&h, "lambent-cold"), "true");
    let (_, _, old) = slow.await.unwrap();
    assert_eq!(
        old["version"], "1",
        "the in-flight invocation finished on the old code"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, _, f) = node
        .send(reqwest::Method::GET, "/v1/functions/swap", vec![])
        .await;
    assert_eq!(
        f["sandboxes"],
        json!({"idle": 1, "busy": 0}),
        "the old sandbox was retired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_survive_a_restart() {
    let mut first = common::node().await;
    let (s, _) = first
        .deploy(
            "keep",
            json!({"runtime": "nodejs20.x", "handler": "index.handler"}),
            &[(
                "index.mjs",
                "export const handler = async (e) => ({ok: true, e});",
            )],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, _, body) = first.invoke("keep", r#"{"n": 1}"#).await;
    assert_eq!(body, json!({"ok": true, "e": {"n": 1}}));
    first.restart().await;
    let second = first;
    let (_, _, listed) = second
        .send(reqwest::Method::GET, "/v1/functions", vec![])
        .await;
    assert_eq!(listed["functions"][0]["name"], "keep");
    let (_, _, body) = second.invoke("keep", r#"{"n": 2}"#).await;
    assert_eq!(body, json!({"ok": true, "e": {"n": 2}}));
    let (_, _, page) = second
        .send(
            reqwest::Method::GET,
            "/v1/activations?function=keep",
            vec![],
        )
        .await;
    assert_eq!(
        page["activations"].as_array().unwrap().len(),
        2,
        "records written before the restart are kept"
    );
}

/// Whether the npm registry answers (`npm ping`, 30 s at most).
fn npm_registry_reachable() -> bool {
    std::process::Command::new("timeout")
        .args(["30", "npm", "ping", "--no-update-notifier"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn package_json_dependencies_are_installed_at_upload_with_npm() {
    if !npm_registry_reachable() {
        eprintln!("SKIPPED: the npm registry is unreachable (`npm ping` failed)");
        return;
    }
    let node = node().await;
    // A handler using a real registry package (`ms`), CommonJS, shipped without node_modules;
    // the dev dependency is not installed.
    let handler = "const ms = require('ms');\n\
                   exports.handler = async () => ({ ms: ms('2 days'), \
                   dev: (() => { try { require('left-pad'); return true; } catch { return false; } })() });\n";
    let manifest = r#"{"name": "uses-ms", "version": "1.0.0",
                       "dependencies": {"ms": "2.1.3"},
                       "devDependencies": {"left-pad": "1.3.0"}}"#;
    let config = json!({"runtime": "nodejs", "handler": "index.handler"});
    let files = [("index.js", handler), ("package.json", manifest)];
    let (s, f) = node.deploy("uses-ms", config.clone(), &files).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, v) = node.invoke("uses-ms", "{}").await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"ms": 172_800_000, "dev": false}))
    );
    let sha = f["code_sha256"].as_str().unwrap().to_string();
    let installed = node
        ._data
        .path()
        .join("code")
        .join(&sha)
        .join("node_modules/ms/package.json");
    assert!(installed.is_file(), "{} is missing", installed.display());

    // A lock file is honoured (`npm ci`): it pins ms 2.1.2 where package.json allows any 2.x.
    let lock = r#"{"name": "locked", "version": "1.0.0", "lockfileVersion": 3, "requires": true,
      "packages": {
        "": {"name": "locked", "version": "1.0.0", "dependencies": {"ms": "^2.0.0"}},
        "node_modules/ms": {"version": "2.1.2",
          "resolved": "https://registry.npmjs.org/ms/-/ms-2.1.2.tgz",
          "integrity": "sha512-sGkPx+VjMtmA6MX27oA4FBFELFCZZ4S4XqeGOXCv68tT+jb3vk/RyaKWP0PTKyWtmLSM0b+adUTEvbs1PEaH2w=="}
      }}"#;
    let handler = "exports.handler = async () => require('ms/package.json').version;\n";
    let manifest = r#"{"name": "locked", "version": "1.0.0", "dependencies": {"ms": "^2.0.0"}}"#;
    let files = [
        ("index.js", handler),
        ("package.json", manifest),
        ("package-lock.json", lock),
    ];
    let (s, f) = node.deploy("locked", config.clone(), &files).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, v) = node.invoke("locked", "{}").await;
    assert_eq!((s, v), (StatusCode::OK, json!("2.1.2")));

    // A node_modules in the code is used as it is: nothing is fetched.
    let files = [
        (
            "index.js",
            "exports.handler = async () => require('ms')('1s');\n",
        ),
        ("package.json", r#"{"dependencies": {"ms": "2.1.3"}}"#),
        (
            "node_modules/ms/index.js",
            "module.exports = () => 'shipped';\n",
        ),
    ];
    let (s, f) = node.deploy("shipped", config.clone(), &files).await;
    assert_eq!(s, StatusCode::CREATED, "{f}");
    let (s, _, v) = node.invoke("shipped", "{}").await;
    assert_eq!((s, v), (StatusCode::OK, json!("shipped")));

    // A package that does not exist refuses the upload with npm's reason.
    let files = [
        ("index.js", "exports.handler = async () => 1;\n"),
        (
            "package.json",
            r#"{"dependencies": {"lambent-no-such-package-8c1f2": "1.0.0"}}"#,
        ),
    ];
    let (s, v) = node.upload(zip_of(&files)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"]["code"], "InvalidPackage", "{v}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("package.json")
            && message.contains("lambent-no-such-package-8c1f2")
            && message.contains("404"),
        "{message}"
    );
}
