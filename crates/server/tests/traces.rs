//! Traces end to end: a request to an HTTP route runs function A, which invokes B with boto3's
//! Lambda client from inside its sandbox, and B queues an asynchronous invocation of C the same
//! way; A also sends a message to a queue mapped to Q, publishes to a topic subscribed by T (and
//! by the same queue), and starts a workflow whose Task invokes D, all with boto3. Every span of
//! the seven reaches a real OTLP/HTTP receiver (a Python `http.server` decoding with PyPI's
//! `opentelemetry-proto`) in one trace, linked parent to child through a span of each delivery
//! (the mapping's batch, the topic's delivery, the workflow's state), with the cold-start phases
//! and the OpenTelemetry FaaS attributes; `GET /v1/traces/{id}` shows the same spans, to the
//! trace's namespace only. The gateway's span carries the HTTP status it answered.

mod common;

use common::{eventually, node_with, with_sdks, Node, ADMIN, KEY};
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
SQS = boto3.client("sqs")
SNS = boto3.client("sns")
SFN = boto3.client("stepfunctions")

def handler(event, context):
    r = CLIENT.invoke(FunctionName="trace-b", Payload=json.dumps({"from": "a"}))
    url = SQS.get_queue_url(QueueName="trace-orders")["QueueUrl"]
    SQS.send_message(QueueUrl=url, MessageBody="order 7")
    SNS.publish(TopicArn="arn:aws:sns:us-east-1:default:trace-news", Message="news")
    SFN.start_execution(
        stateMachineArn="arn:aws:states:us-east-1:default:stateMachine:trace-flow",
        input=json.dumps({"from": "a"}))
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

/// The queue consumer: prints each message's `AWSTraceHeader`, as Lambda's SQS event carries it.
const Q: &str = r#"
def handler(event, context):
    for r in event["Records"]:
        print("AWSTraceHeader", r["attributes"].get("AWSTraceHeader"))
    return {"ok": True}
"#;

/// The workflow: one Task invoking D through the Lambda integration.
const FLOW: &str = r#"{"StartAt": "InvokeD", "States": {"InvokeD": {"Type": "Task",
  "Resource": "arn:aws:states:::lambda:invoke",
  "Parameters": {"FunctionName": "trace-d", "Payload.$": "$"}, "End": true}}}"#;

/// Every function of the trace: A, what A invokes (B), what B queues (C), the queue's consumer
/// (Q), the topic's subscriber (T) and the workflow's Task (D).
const FUNCTIONS: [&str; 6] = [
    "trace-a", "trace-b", "trace-c", "trace-q", "trace-t", "trace-d",
];

/// Answers the status its query asks for; raises (its route then answers 502) for 502.
const ANSWERS: &str = r#"
def handler(event, context):
    status = int(event["queryStringParameters"]["status"])
    if status == 502:
        raise RuntimeError("no")
    return {"statusCode": status, "body": "answered"}
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
    for name in ["trace-q", "trace-t", "trace-d"] {
        deploy(&node, name, 128, if name == "trace-q" { Q } else { C }).await;
    }
    // The queue (mapped to Q), the topic (to T, and to the same queue), the workflow (to D).
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/routes",
            json!({"method": "GET", "path": "/orders/{id}", "function": "trace-a"}),
        ),
        (Method::POST, "/v1/queues", json!({"name": "trace-orders"})),
        (
            Method::POST,
            "/v1/mappings",
            json!({"queue": "trace-orders", "function": "trace-q"}),
        ),
        (Method::POST, "/v1/topics", json!({"name": "trace-news"})),
        (
            Method::POST,
            "/v1/topics/trace-news/subscriptions",
            json!({"function": "trace-t"}),
        ),
        (
            Method::POST,
            "/v1/topics/trace-news/subscriptions",
            json!({"queue": "trace-orders"}),
        ),
        (
            Method::PUT,
            "/v1/workflows/trace-flow",
            json!({"definition": FLOW}),
        ),
    ] {
        let (s, _, v) = node.send(method, path, body.to_string().into_bytes()).await;
        assert!(s.is_success(), "{path}: {s} {v}");
    }

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

    // C ran (from the async queue), Q (both messages), T and D, and every span reached the
    // receiver.
    for (function, runs) in [
        ("trace-c", 1),
        ("trace-t", 1),
        ("trace-d", 1),
        ("trace-q", 2),
    ] {
        eventually(60, &format!("{function}'s activations"), || async {
            let list = node.activations_of(function).await;
            let logs: String = list.iter().filter_map(|a| a["logs"].as_str()).collect();
            let done = match function {
                "trace-q" => logs.matches("AWSTraceHeader").count(),
                _ => list.iter().filter(|a| a["status"] == "success").count(),
            };
            (done >= runs).then_some(())
        })
        .await;
    }
    // (The zygote's probe function has a trace of its own.)
    let spans = eventually(30, "the spans of every function", || async {
        let spans: Vec<Value> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == TRACE)
            .collect();
        let servers = FUNCTIONS
            .iter()
            .filter(|n| spans.iter().any(|s| s["name"] == **n))
            .count();
        let consumed: u64 = spans
            .iter()
            .filter(|s| s["name"] == "process trace-orders")
            .map(|s| {
                s["attributes"]["messaging.batch.message_count"]
                    .as_u64()
                    .unwrap()
            })
            .sum();
        (servers == FUNCTIONS.len() && consumed == 2).then_some(spans)
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
    assert_eq!(gateway["attributes"]["http.response.status_code"], 200);
    assert_eq!(gateway["status"], 0, "a 200 is no error: {gateway}");
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

    // A → queue → Q: each batch the mapping hands Q is a span of the queue's delivery under
    // A's handler (A's message and the topic's copy of A's publication both continue A),
    // linked to each message's sender; Q's runtime sees the X-Ray header in the SQS event.
    let a_handler_id = a_handler["span_id"].as_str().unwrap();
    let batches: Vec<&Value> = spans
        .iter()
        .filter(|s| s["name"] == "process trace-orders")
        .collect();
    for batch in &batches {
        assert_eq!(batch["parent_span_id"], a_handler_id, "{batch}");
        assert_eq!(batch["kind"], 5);
        assert_eq!(batch["attributes"]["messaging.system"], "aws_sqs");
        assert_eq!(batch["attributes"]["messaging.operation.type"], "process");
        let links = batch["links"].as_array().unwrap();
        assert_eq!(
            links.len() as u64,
            batch["attributes"]["messaging.batch.message_count"]
                .as_u64()
                .unwrap()
        );
        for link in links {
            assert_eq!(link, &json!({"trace_id": TRACE, "span_id": a_handler_id}));
        }
        let q = child(&spans, batch["span_id"].as_str().unwrap(), "trace-q");
        assert_eq!(q["attributes"]["faas.trigger"], "pubsub", "{q}");
        assert!(q["start"].as_u64() >= batch["start"].as_u64());
        assert!(q["end"].as_u64() <= batch["end"].as_u64());
    }
    let header = format!("AWSTraceHeader {root}");
    let q_logs: String = node
        .activations_of("trace-q")
        .await
        .iter()
        .filter_map(|a| a["logs"].as_str().map(str::to_string))
        .collect();
    assert_eq!(
        q_logs
            .matches(&format!("{header}{a_handler_id};Sampled=1"))
            .count(),
        2,
        "{q_logs}"
    );

    // A → topic → T: the topic's delivery is a span under A's handler, T's span under it.
    let delivery = child(&spans, a_handler_id, "process trace-news");
    assert_eq!(delivery["kind"], 5);
    assert_eq!(delivery["attributes"]["messaging.system"], "aws_sns");
    let t = child(&spans, delivery["span_id"].as_str().unwrap(), "trace-t");
    check_cold_activation(&spans, t, "pubsub", 128);

    // A → workflow → D: the Task state is a span named after it under A's handler (the
    // execution continues the context of A's StartExecution), D's span under it.
    let state = child(&spans, a_handler_id, "InvokeD");
    assert_eq!(state["kind"], 1);
    assert_eq!(state["attributes"]["lambent.workflow.state"], "InvokeD");
    assert!(state["attributes"]["lambent.workflow.execution"]
        .as_str()
        .is_some_and(|e| e.contains(":execution:trace-flow:")));
    let d = child(&spans, state["span_id"].as_str().unwrap(), "trace-d");
    check_cold_activation(&spans, d, "other", 128);
    assert!(d["start"].as_u64() >= state["start"].as_u64());

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
    for function in FUNCTIONS {
        let list = node.activations_of(function).await;
        assert_eq!(list[0]["trace_id"], TRACE, "{function}");
    }
    let metrics = node.send_as(ADMIN, Method::GET, "/metrics", vec![]).await.2;
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
    // The gateway's span (the caller's child) carries the status it answered.
    let gateway = spans
        .iter()
        .find(|s| s["name"] == "POST /v1/functions/{name}/invoke")
        .unwrap_or_else(|| panic!("no gateway span: {spans:#?}"));
    assert_eq!(gateway["parent_span_id"], "53995c3f42cd8ad8");
    assert_eq!(gateway["attributes"]["http.response.status_code"], 200);
    assert_eq!(
        gateway["attributes"]["url.path"],
        "/v1/functions/plain/invoke"
    );
    assert!(gateway.get("error").is_none(), "{gateway}");
    let server = spans.iter().find(|s| s["name"] == "plain").unwrap();
    assert_eq!(server["parent_span_id"], gateway["span_id"]);
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

    // A message sent on `/v1` keeps the sender's context, handed back by a receive.
    let (s, _, v) = node
        .send(
            Method::POST,
            "/v1/queues",
            json!({"name": "traced"}).to_string().into_bytes(),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let sender = format!("00-{honoured}-53995c3f42cd8ad8-01");
    let response = node
        .http
        .post(node.url("/v1/queues/traced/messages"))
        .bearer_auth(KEY)
        .header("traceparent", &sender)
        .body(json!({"body": "hello"}).to_string())
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let (_, _, got) = node
        .send(
            Method::POST,
            "/v1/queues/traced/receive",
            json!({"max": 1}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(got["messages"][0]["trace"], sender.as_str(), "{got}");

    // A route whose function fails answers 502: its gateway span says so, as an error; one
    // answering its own 404 is no server error.
    deploy(&node, "answers", 128, ANSWERS).await;
    let route = json!({"method": "GET", "path": "/answer", "function": "answers"});
    let (s, _, v) = node
        .send(Method::POST, "/v1/routes", route.to_string().into_bytes())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for (trace, status, error) in [
        ("0af7651916cd43dd8448eb211c80319c", 502, true),
        ("0af7651916cd43dd8448eb211c80319d", 404, false),
    ] {
        let response = node
            .http
            .get(node.url("/answer"))
            .header("traceparent", format!("00-{trace}-b7ad6b7169203331-01"))
            .query(&[("status", status)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        let view = node.get_ok(&format!("/v1/traces/{trace}")).await;
        let gateway = view["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "GET /answer")
            .unwrap_or_else(|| panic!("no gateway span: {view:#}"))
            .clone();
        assert_eq!(
            gateway["attributes"]["http.response.status_code"], status,
            "{gateway}"
        );
        assert_eq!(gateway.get("error").is_some(), error, "{gateway}");
    }

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
