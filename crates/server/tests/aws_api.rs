//! The AWS Lambda-compatible API against a real node: boto3 and the AWS CLI from PyPI (in a
//! venv this test makes once per machine) run the scenarios in `tests/aws/*.py`, and raw
//! requests prove that signatures are verified: unsigned, wrongly signed, expired and
//! replayed-with-another-key requests are refused with AWS's errors.

mod common;

use common::{node_with, Node, KEY};
use lambent_aws_api::sigv4;
use lambent_testkit::python::venv as python_venv;
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const ACCESS_KEY_ID: &str = "LKIATESTTESTTESTTEST";
const SECRET: &str = "test-secret-access-key-0123456789abcdefgh";

async fn aws_node() -> Node {
    node_with(|o| o.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()))).await
}

fn venv() -> PathBuf {
    python_venv(&["boto3", "awscli"])
}

/// Runs `program` with the server's endpoint and the access key in its environment.
fn run_aws_tool(node: &Node, program: &Path, args: &[&str], cwd: &Path) -> String {
    // StartSyncExecution's endpoint has a `sync-` host prefix on AWS; not on Lambent.
    let extra = [("AWS_DISABLE_HOST_PREFIX_INJECTION", "true")];
    common::run_aws_client(
        program,
        args,
        cwd,
        &node.url(""),
        (ACCESS_KEY_ID, SECRET),
        &extra,
    )
}

async fn run_scenario(script: &str) -> String {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let node = aws_node().await;
    let python = venv.join("bin/python");
    let script = common::aws_scripts_dir().join(script);
    let cwd = common::aws_scripts_dir();
    tokio::task::spawn_blocking(move || {
        run_aws_tool(&node, &python, &[script.to_str().unwrap()], &cwd)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_creates_updates_lists_invokes_and_deletes_functions() {
    let out = run_scenario("functions.py").await;
    assert!(out.contains("functions: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_publishes_versions_and_routes_a_weighted_alias() {
    let out = run_scenario("versions.py").await;
    println!("{out}");
    assert!(out.contains("versions: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uses_dynamodb_tables() {
    let out = run_scenario("dynamodb.py").await;
    println!("{out}");
    assert!(out.contains("dynamodb: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_uses_sqs_queues_and_sns_topics_in_both_protocols() {
    let out = run_scenario("sqs_sns.py").await;
    println!("{out}");
    assert!(out.contains("sqs sns: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_sqs_queue_attributes_and_sns_subscription_filters() {
    let out = run_scenario("sqs_sns_attributes.py").await;
    println!("{out}");
    assert!(out.contains("sqs sns attributes: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_sends_receives_and_publishes_through_sqs_and_sns() {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let node = aws_node().await;
    let aws = venv.join("bin/aws");
    let endpoint = node.url("");
    let cwd = common::aws_scripts_dir();
    let (node, outputs) = tokio::task::spawn_blocking(move || {
        let cli = |args: &[&str]| -> Value {
            let common = ["--endpoint-url", endpoint.as_str(), "--output", "json"];
            let out = run_aws_tool(&node, &aws, &[&common[..], args].concat(), &cwd);
            serde_json::from_str(&out).unwrap_or(Value::Null)
        };
        let url = cli(&["sqs", "create-queue", "--queue-name", "cli-q"])["QueueUrl"]
            .as_str()
            .unwrap()
            .to_string();
        let sent = cli(&[
            "sqs",
            "send-message",
            "--queue-url",
            &url,
            "--message-body",
            "from the cli",
            "--message-attributes",
            r#"{"kind": {"DataType": "String", "StringValue": "cli"}}"#,
        ]);
        let received = cli(&[
            "sqs",
            "receive-message",
            "--queue-url",
            &url,
            "--message-attribute-names",
            "All",
            "--wait-time-seconds",
            "5",
        ]);
        let topic = cli(&["sns", "create-topic", "--name", "cli-t"])["TopicArn"]
            .as_str()
            .unwrap()
            .to_string();
        let queue_arn = cli(&[
            "sqs",
            "get-queue-attributes",
            "--queue-url",
            &url,
            "--attribute-names",
            "QueueArn",
        ])["Attributes"]["QueueArn"]
            .as_str()
            .unwrap()
            .to_string();
        cli(&[
            "sns",
            "subscribe",
            "--topic-arn",
            &topic,
            "--protocol",
            "sqs",
            "--notification-endpoint",
            &queue_arn,
        ]);
        let published = cli(&[
            "sns",
            "publish",
            "--topic-arn",
            &topic,
            "--message",
            "published by the cli",
        ]);
        (
            node,
            [
                url,
                sent.to_string(),
                received.to_string(),
                published.to_string(),
            ],
        )
    })
    .await
    .unwrap();
    let [url, sent, received, published] = outputs;
    assert_eq!(url, node.url("/default/cli-q"));
    let sent: Value = serde_json::from_str(&sent).unwrap();
    let received: Value = serde_json::from_str(&received).unwrap();
    let m = &received["Messages"][0];
    assert_eq!(m["MessageId"], sent["MessageId"], "{received}");
    assert_eq!(m["Body"], "from the cli");
    assert_eq!(m["MessageAttributes"]["kind"]["StringValue"], "cli");
    assert_eq!(m["MD5OfBody"], sent["MD5OfMessageBody"]);
    // The topic's message is in the queue, in Lambent's own API, as SNS's envelope.
    let published: Value = serde_json::from_str(&published).unwrap();
    let (status, _, got) = node
        .send(
            reqwest::Method::POST,
            "/v1/queues/cli-q/receive",
            json!({"max": 10, "wait": 5}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{got}");
    let bodies: Vec<Value> = got["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| serde_json::from_str(m["body"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{got}");
    assert_eq!(bodies[0]["Message"], "published by the cli");
    assert_eq!(bodies[0]["MessageId"], published["MessageId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_reads_dynamodb_streams() {
    let out = run_scenario("dynamodb_streams.py").await;
    println!("{out}");
    assert!(out.contains("dynamodb streams: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_runs_step_functions_state_machines() {
    let out = run_scenario("stepfunctions.py").await;
    println!("{out}");
    assert!(out.contains("stepfunctions: ok"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_creates_a_state_machine_and_runs_it_synchronously() {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let node = aws_node().await;
    let aws = venv.join("bin/aws");
    let endpoint = node.url("");
    let cwd = common::aws_scripts_dir();
    let (created, ran, listed) = tokio::task::spawn_blocking(move || {
        let common = ["--endpoint-url", endpoint.as_str(), "--output", "json"];
        let definition = r#"{"StartAt":"Hi","States":{"Hi":{"Type":"Pass","Parameters":{"greeting.$":"States.Format('hi {}', $.who)"},"End":true}}}"#;
        let created = run_aws_tool(
            &node,
            &aws,
            &[
                &common[..],
                &[
                    "stepfunctions",
                    "create-state-machine",
                    "--name",
                    "hi",
                    "--type",
                    "EXPRESS",
                    "--role-arn",
                    "arn:aws:iam::000000000000:role/any",
                    "--definition",
                    definition,
                ],
            ]
            .concat(),
            &cwd,
        );
        let arn = serde_json::from_str::<Value>(&created).unwrap()["stateMachineArn"]
            .as_str()
            .unwrap()
            .to_string();
        let ran = run_aws_tool(
            &node,
            &aws,
            &[
                &common[..],
                &[
                    "stepfunctions",
                    "start-sync-execution",
                    "--state-machine-arn",
                    &arn,
                    "--input",
                    r#"{"who": "cli"}"#,
                ],
            ]
            .concat(),
            &cwd,
        );
        let listed = run_aws_tool(
            &node,
            &aws,
            &[&common[..], &["stepfunctions", "list-state-machines"]].concat(),
            &cwd,
        );
        (created, ran, listed)
    })
    .await
    .unwrap();
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        created["stateMachineArn"],
        "arn:aws:states:us-east-1:default:stateMachine:hi"
    );
    let ran: Value = serde_json::from_str(&ran).unwrap();
    assert_eq!(ran["status"], "SUCCEEDED", "{ran}");
    let output: Value = serde_json::from_str(ran["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"greeting": "hi cli"}));
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["stateMachines"][0]["type"], "EXPRESS", "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_creates_and_invokes_into_an_output_file() {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let node = aws_node().await;
    let work = tempfile::tempdir().unwrap();
    std::fs::write(
        work.path().join("f.zip"),
        common::zip_of(&[(
            "app.py",
            "def handler(event, context):\n    return {'got': event, 'sum': event['a'] + event['b']}\n",
        )]),
    )
    .unwrap();
    let aws = venv.join("bin/aws");
    let endpoint = node.url("");
    let dir = work.path().to_path_buf();
    let (created, invoked) = tokio::task::spawn_blocking(move || {
        let common = ["--endpoint-url", endpoint.as_str(), "--output", "json"];
        let created = run_aws_tool(
            &node,
            &aws,
            &[
                &common[..],
                &[
                    "lambda",
                    "create-function",
                    "--function-name",
                    "adder",
                    "--runtime",
                    "python3.12",
                    "--handler",
                    "app.handler",
                    "--role",
                    "arn:aws:iam::000000000000:role/any",
                    "--zip-file",
                    "fileb://f.zip",
                ],
            ]
            .concat(),
            &dir,
        );
        let invoked = run_aws_tool(
            &node,
            &aws,
            &[
                &common[..],
                &[
                    "lambda",
                    "invoke",
                    "--function-name",
                    "adder",
                    "--payload",
                    r#"{"a": 2, "b": 3}"#,
                    "out.json",
                ],
            ]
            .concat(),
            &dir,
        );
        (created, invoked)
    })
    .await
    .unwrap();
    let created: Value = serde_json::from_str(&created).unwrap();
    assert_eq!(
        created["FunctionArn"],
        "arn:aws:lambda:us-east-1:default:function:adder"
    );
    let invoked: Value = serde_json::from_str(&invoked).unwrap();
    assert_eq!(invoked["StatusCode"], 200, "{invoked}");
    assert_eq!(invoked["ExecutedVersion"], "$LATEST", "{invoked}");
    let output: Value =
        serde_json::from_slice(&std::fs::read(work.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(output, json!({"got": {"a": 2, "b": 3}, "sum": 5}));
}

/// A request to the Lambda API signed by hand: `sign_as` is (key id in the credential, secret
/// that makes the signature), `signed_at` the X-Amz-Date.
async fn signed_request(
    node: &Node,
    path: &str,
    body: &str,
    sign_as: (&str, &str),
    signed_at: time::OffsetDateTime,
) -> (u16, String, Value) {
    signed(node, reqwest::Method::POST, path, body, sign_as, signed_at).await
}

/// [`signed_request`] with any method; `path` may carry a query.
async fn signed(
    node: &Node,
    method: reqwest::Method,
    path: &str,
    body: &str,
    sign_as: (&str, &str),
    signed_at: time::OffsetDateTime,
) -> (u16, String, Value) {
    let (raw_path, raw_query) = path.split_once('?').unwrap_or((path, ""));
    let host = node.url("").trim_start_matches("http://").to_string();
    let amz_date = sigv4::format_amz_date(signed_at);
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&host).unwrap());
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    let auth = sigv4::Authorization {
        access_key_id: sign_as.0.into(),
        date: amz_date[..8].into(),
        region: "us-east-1".into(),
        service: "lambda".into(),
        signed_headers: vec!["host".into(), "x-amz-date".into()],
        signature: String::new(),
    };
    let signature = sigv4::sign(
        &sigv4::Request {
            method: method.as_str(),
            raw_path,
            raw_query,
            headers: &headers,
            body: body.as_bytes(),
        },
        &auth,
        sign_as.1,
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
            sign_as.0, auth.date
        ))
        .unwrap(),
    );
    let response = node
        .http
        .request(method, node.url(path))
        .headers(headers)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers().contains_key("x-amzn-requestid"),
        "every answer has a request id"
    );
    let error_type = response
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, error_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_correctly_signed_fresh_requests_get_through() {
    let node = aws_node().await;
    let (status, _) = node
        .deploy(
            "f",
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", "def handler(e, c):\n    return e\n")],
        )
        .await;
    assert!(status.is_success());
    let path = "/2015-03-31/functions/f/invocations";
    let now = time::OffsetDateTime::now_utc();
    let ok = (ACCESS_KEY_ID, SECRET);

    let (status, _, body) = signed_request(&node, path, r#"{"a":1}"#, ok, now).await;
    assert_eq!((status, body), (200, json!({"a": 1})));

    // Unsigned.
    let r = node
        .http
        .post(node.url(path))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    // A Lambent API key is not an AWS signature.
    let r = node
        .http
        .post(node.url(path))
        .bearer_auth(KEY)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(
        r.headers()["x-amzn-errortype"],
        "IncompleteSignatureException"
    );

    // Signed with the wrong secret.
    let (status, kind, body) =
        signed_request(&node, path, "{}", (ACCESS_KEY_ID, "not-the-secret"), now).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "InvalidSignatureException"),
        "{body}"
    );
    assert_eq!(body["Type"], "User");
    assert!(
        body["message"].as_str().unwrap().contains("does not match"),
        "{body}"
    );

    // Expired: signed correctly, ten minutes ago.
    let old = now - time::Duration::minutes(10);
    let (status, kind, body) = signed_request(&node, path, "{}", ok, old).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "InvalidSignatureException"),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Signature expired"),
        "{body}"
    );

    // An unknown key id.
    let (status, kind, _) =
        signed_request(&node, path, "{}", ("LKIAUNKNOWNUNKNOWN00", SECRET), now).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "UnrecognizedClientException")
    );

    // A second key of the namespace, made over /v1/keys: it works on its own, but a signature
    // made with the first key's secret does not pass under the second key's id.
    let (status, _, created) = node.send(reqwest::Method::POST, "/v1/keys", vec![]).await;
    assert_eq!(status.as_u16(), 201, "{created}");
    let second_id = created["access_key_id"].as_str().unwrap().to_string();
    let second_secret = created["secret_access_key"].as_str().unwrap().to_string();
    let (status, _, _) = signed_request(&node, path, "{}", (&second_id, &second_secret), now).await;
    assert_eq!(status, 200);
    let (status, kind, _) = signed_request(&node, path, "{}", (&second_id, SECRET), now).await;
    assert_eq!((status, kind.as_str()), (403, "InvalidSignatureException"));

    // Listing never shows a secret; a deleted key is refused.
    let (_, _, listed) = node.send(reqwest::Method::GET, "/v1/keys", vec![]).await;
    let ids: Vec<&str> = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["access_key_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    assert!(ids.contains(&ACCESS_KEY_ID) && ids.contains(&second_id.as_str()));
    assert!(!listed.to_string().contains(&second_secret));
    let (status, _, _) = node
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{second_id}"),
            vec![],
        )
        .await;
    assert_eq!(status.as_u16(), 204);
    let (status, kind, _) =
        signed_request(&node, path, "{}", (&second_id, &second_secret), now).await;
    assert_eq!(
        (status, kind.as_str()),
        (403, "UnrecognizedClientException")
    );
    let (status, _, _) = node
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/keys/{second_id}"),
            vec![],
        )
        .await;
    assert_eq!(status.as_u16(), 404);

    // The server still serves.
    let (status, _, _) = signed_request(&node, path, "{}", ok, now).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_aliases_and_access_keys_survive_a_restart() {
    let mut first = common::node().await;
    let (_, _, key) = first.send(reqwest::Method::POST, "/v1/keys", vec![]).await;
    let id = key["access_key_id"].as_str().unwrap().to_string();
    let secret = key["secret_access_key"].as_str().unwrap().to_string();
    let as_key = (id.as_str(), secret.as_str());
    let app = |answer: &str| {
        format!("def handler(e, c):\n    return {{'answer': '{answer}', 'arn': c.invoked_function_arn}}\n")
    };
    let one = app("one");
    first
        .deploy(
            "f",
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", &one)],
        )
        .await;
    let now = time::OffsetDateTime::now_utc;
    let (status, _, v1) = signed(
        &first,
        reqwest::Method::POST,
        "/2015-03-31/functions/f/versions",
        "{}",
        as_key,
        now(),
    )
    .await;
    assert_eq!((status, &v1["Version"]), (201, &json!("1")), "{v1}");
    let two = app("two");
    first
        .deploy(
            "f",
            json!({"runtime": "python3.12", "handler": "app.handler"}),
            &[("app.py", &two)],
        )
        .await;
    let alias = json!({"Name": "live", "FunctionVersion": "1"}).to_string();
    let (status, _, created) = signed(
        &first,
        reqwest::Method::POST,
        "/2015-03-31/functions/f/aliases",
        &alias,
        as_key,
        now(),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    first.restart().await;

    let second = first;
    let (status, _, body) = signed(
        &second,
        reqwest::Method::POST,
        "/2015-03-31/functions/f%3Alive/invocations",
        "{}",
        as_key,
        now(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["answer"], "one", "the alias still runs version 1");
    assert_eq!(
        body["arn"],
        "arn:aws:lambda:us-east-1:default:function:f:live"
    );
    let (_, _, latest) = signed(
        &second,
        reqwest::Method::POST,
        "/2015-03-31/functions/f/invocations",
        "{}",
        as_key,
        now(),
    )
    .await;
    assert_eq!(latest["answer"], "two");
    let (status, _, listed) = signed(
        &second,
        reqwest::Method::GET,
        "/2015-03-31/functions/f/versions?MaxItems=1",
        "",
        as_key,
        now(),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["Versions"].as_array().unwrap().len(), 1);
    assert_eq!(listed["NextMarker"], "1", "{listed}");
}
