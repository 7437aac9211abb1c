//! Traces end to end: a request to an HTTP route runs function A, which invokes B with boto3's
//! Lambda client from inside its sandbox, and B queues an asynchronous invocation of C the same
//! way. Every span of the three reaches a real OTLP/HTTP receiver (a Python `http.server`
//! decoding with PyPI's `opentelemetry-proto`) in one trace, linked parent to child, with the
//! cold-start phases and the OpenTelemetry FaaS attributes; `GET /v1/traces/{id}` shows the same
//! spans, to the trace's namespace only.

mod common;

use common::{eventually, node_with, with_sdks, Node, KEY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};

/// The receiver: a child process writing the spans it receives to a file, one JSON per line.
struct Receiver {
    child: Child,
    port: u16,
    spans: tempfile::NamedTempFile,
}

impl Receiver {
    fn start() -> Receiver {
        let venv = lambent_testkit::python::venv(&["opentelemetry-proto"]);
        let spans = tempfile::NamedTempFile::new().unwrap();
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/otlp/receiver.py");
        let mut child = Command::new(venv.join("bin/python"))
            .arg(script)
            .arg(spans.path())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the OTLP receiver starts");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the receiver prints its port");
        Receiver { child, port, spans }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(self.spans.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const A: &str = r#"
import json, os, boto3
CLIENT = boto3.client("lambda")

def handler(event, context):
    r = CLIENT.invoke(FunctionName="trace-b", Payload=json.dumps({"from": "a"}))
    return {"statusCode": 200, "body": json.dumps({
        "xray": os.environ.get("_X_AMZN_TRACE_ID"),
        "traceparent": event["headers"].get("traceparent"),
        "b": json.loads(r["Payload"].read()),
    })}
"#;

const B: &str = r#"
import json, os, boto3
CLIENT = boto3.client("lambda")

def handler(event, context):
    r = CLIENT.invoke(FunctionName="trace-c", InvocationType="Event", Payload=json.dumps({"from": "b"}))
    return {"xray": os.environ.get("_X_AMZN_TRACE_ID"), "status": r["StatusCode"]}
"#;

const C: &str = r#"
import os

def handler(event, context):
    print("C", os.environ.get("_X_AMZN_TRACE_ID"))
    return {"ok": True}
"#;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn deploy(node: &Node, name: &str, memory: u32, code: &str) {
    let (s, v) = node
        .deploy(
            name,
            json!({"runtime": "python3.12", "handler": "app.handler", "memory": memory, "timeout": 30}),
            &[("app.py", code)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{name}: {v}");
}

/// The span of `spans` named `name` whose parent is `parent`.
fn child<'a>(spans: &'a [Value], parent: &str, name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["parent_span_id"] == parent && s["name"] == name)
        .unwrap_or_else(|| panic!("no span '{name}' under {parent}: {spans:#?}"))
}

/// Checks the server span of one cold activation: its FaaS attributes and its init phases.
fn check_cold_activation(spans: &[Value], server: &Value, trigger: &str, memory_mb: u64) {
    let name = server["name"].as_str().unwrap();
    let a = &server["attributes"];
    assert_eq!(a["faas.trigger"], trigger, "{server}");
    assert_eq!(a["faas.coldstart"], true, "{server}");
    assert_eq!(a["faas.name"], name);
    assert_eq!(a["faas.version"], "1");
    assert_eq!(a["faas.max_memory"], memory_mb * 1024 * 1024);
    assert_eq!(a["cloud.provider"], "lambent");
    assert_eq!(a["cloud.region"], "us-east-1");
    assert_eq!(a["cloud.account.id"], "default");
    assert!(a["faas.invocation_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(server["resource"]["service.name"], name);
    let id = server["span_id"].as_str().unwrap();
    let init = child(spans, id, "init");
    let init_id = init["span_id"].as_str().unwrap();
    for phase in ["sandbox", "runtime", "import"] {
        let p = child(spans, init_id, phase);
        assert!(p["start"].as_u64() >= init["start"].as_u64(), "{p}");
        assert!(p["end"].as_u64() <= init["end"].as_u64(), "{p}");
    }
    let handler = child(spans, id, "handler");
    assert!(handler["start"].as_u64() >= init["end"].as_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_a_boto3_call_and_an_async_hop_make_one_exported_trace() {
    let receiver = Receiver::start();
    let endpoint = receiver.url();
    let node = node_with(move |o| o.otlp_endpoint = Some(endpoint)).await;
    with_sdks(&node).await;
    common::await_python_zygote(&node).await;
    deploy(&node, "trace-a", 256, A).await;
    deploy(&node, "trace-b", 192, B).await;
    deploy(&node, "trace-c", 128, C).await;
    let (s, _, v) = node
        .send(
            Method::POST,
            "/v1/routes",
            json!({"method": "GET", "path": "/orders/{id}", "function": "trace-a"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // The caller's context is honoured: the whole chain joins its trace.
    let traceparent = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let response = node
        .http
        .get(node.url("/orders/7"))
        .header("traceparent", &traceparent)
        .header("tracestate", "vendor=x")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    // The function sees the request's headers as sent, and its runtime the X-Ray form.
    assert_eq!(body["traceparent"], traceparent.as_str());
    let root = format!("Root=1-{}-{};Parent=", &TRACE[..8], &TRACE[8..]);
    for xray in [&body["xray"], &body["b"]["xray"]] {
        let xray = xray.as_str().unwrap();
        assert!(
            xray.starts_with(&root) && xray.ends_with(";Sampled=1"),
            "{xray}"
        );
    }
    assert_eq!(body["b"]["status"], 202);

    // C ran (from the async queue), and every span reached the receiver.
    eventually(30, "C's activation", || async {
        let list = node.activations_of("trace-c").await;
        list.iter().any(|a| a["status"] == "success").then_some(())
    })
    .await;
    // (The zygote's probe function has a trace of its own.)
    let spans = eventually(30, "the spans of A, B and C", || async {
        let spans: Vec<Value> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == TRACE)
            .collect();
        let servers = ["trace-a", "trace-b", "trace-c"]
            .iter()
            .filter(|n| spans.iter().any(|s| s["name"] == **n))
            .count();
        (servers == 3).then_some(spans)
    })
    .await;
    assert!(spans.iter().all(|s| s["scope"] == "lambent"));
    let ids: Vec<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "span ids are unique");

    // route → A: the gateway span is the caller's child, A's span the gateway's.
    let gateway = child(&spans, CALLER_SPAN, "GET /orders/{id}");
    assert_eq!(gateway["kind"], 2);
    assert_eq!(gateway["attributes"]["url.path"], "/orders/7");
    assert_eq!(gateway["attributes"]["http.request.method"], "GET");
    assert_eq!(gateway["trace_state"], "vendor=x");
    let a = child(&spans, gateway["span_id"].as_str().unwrap(), "trace-a");
    assert_eq!(a["kind"], 2);
    check_cold_activation(&spans, a, "http", 256);
    let a_handler = child(&spans, a["span_id"].as_str().unwrap(), "handler");

    // A → B through boto3 in A's sandbox: B's span is the child of A's handler.
    let b = child(&spans, a_handler["span_id"].as_str().unwrap(), "trace-b");
    check_cold_activation(&spans, b, "other", 192);
    assert!(b["start"].as_u64() >= a_handler["start"].as_u64());
    assert!(b["end"].as_u64() <= a_handler["end"].as_u64());
    let b_handler = child(&spans, b["span_id"].as_str().unwrap(), "handler");
    assert!(body["b"]["xray"].as_str().unwrap().contains(&format!(
        "Parent={}",
        b_handler["span_id"].as_str().unwrap()
    )));

    // B → C through the async queue: a queue wait under B's handler, then C.
    let wait = child(&spans, b_handler["span_id"].as_str().unwrap(), "queue wait");
    assert_eq!(wait["kind"], 5);
    let c = child(&spans, wait["span_id"].as_str().unwrap(), "trace-c");
    check_cold_activation(&spans, c, "other", 128);
    assert!(c["start"].as_u64() >= wait["end"].as_u64());

    // The node's own view of the trace is the same spans, with each activation's record
    // naming its trace.
    let view = node.get_ok(&format!("/v1/traces/{TRACE}")).await;
    let mut shown: Vec<&str> = view["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    shown.sort();
    assert_eq!(shown, unique);
    for function in ["trace-a", "trace-b", "trace-c"] {
        let list = node.activations_of(function).await;
        assert_eq!(list[0]["trace_id"], TRACE, "{function}");
    }
    let metrics = node.send(Method::GET, "/metrics", vec![]).await.2;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("lambent_trace_spans_dropped_total 0"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_shown_to_their_namespace_and_a_callers_context_is_honoured() {
    let node = node_with(|_| {}).await;
    deploy(&node, "plain", 128, C).await;
    // A W3C traceparent on a /v1 invoke is honoured…
    let honoured = "5759e988bd862e3fe1be46a994272793";
    let response = node
        .http
        .post(node.url("/v1/functions/plain/invoke"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{honoured}-53995c3f42cd8ad8-01"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let id = common::header(response.headers(), "lambent-activation-id").to_string();
    let record = node.get_ok(&format!("/v1/activations/{id}")).await;
    assert_eq!(record["trace_id"], honoured);
    assert_eq!(record["parent_span_id"], "53995c3f42cd8ad8");
    let view = node.get_ok(&format!("/v1/traces/{honoured}")).await;
    let spans = view["spans"].as_array().unwrap();
    let server = spans.iter().find(|s| s["name"] == "plain").unwrap();
    assert_eq!(server["parent_span_id"], "53995c3f42cd8ad8");
    assert_eq!(server["activation_id"], id.as_str());
    assert_eq!(server["attributes"]["faas.trigger"], "other");
    for s in spans {
        for field in [
            "span_id",
            "name",
            "start_unix_nano",
            "end_unix_nano",
            "attributes",
        ] {
            assert!(!s[field].is_null(), "{field} in {s}");
        }
    }
    // … a malformed one starts a new trace, as does none.
    let (_, headers, _) = node.invoke("plain", "{}").await;
    let fresh = node
        .get_ok(&format!(
            "/v1/activations/{}",
            common::header(&headers, "lambent-activation-id")
        ))
        .await;
    let fresh_id = fresh["trace_id"].as_str().unwrap();
    assert_eq!(fresh_id.len(), 32);
    assert_ne!(fresh_id, honoured);
    assert!(fresh.get("parent_span_id").is_none());
    let response = node
        .http
        .post(node.url("/v1/functions/plain/invoke"))
        .bearer_auth(KEY)
        .header("traceparent", format!("00-{honoured}-0000000000000000-01"))
        .body("{}")
        .send()
        .await
        .unwrap();
    let malformed = node
        .get_ok(&format!(
            "/v1/activations/{}",
            common::header(response.headers(), "lambent-activation-id")
        ))
        .await;
    assert_ne!(malformed["trace_id"], honoured);

    // Another namespace's key sees nothing of it; no key, or a bad id, is refused.
    if common::cluster_backends().is_some() {
        return; // the other namespace is made in the embedded store
    }
    let other_key = "other-namespace-key";
    common::add_namespace(&node, "other", other_key);
    let get = |key: Option<&'static str>, path: String| {
        let mut req = node.http.get(node.url(&path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        req.send()
    };
    let path = format!("/v1/traces/{honoured}");
    let r = get(Some(other_key), path.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = get(None, path.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get(Some("forged"), path).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get(Some(KEY), "/v1/traces/not-a-trace".into())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v.to_string().contains("32 lower-case hex digits"), "{v}");
}
