//! The AWS SDKs inside a function: unmodified handlers that do not bundle them import boto3 or
//! the AWS SDK for JavaScript v3 (which come with the runtimes), reach the Lambda API through
//! the endpoint on their sandbox's own loopback (`AWS_ENDPOINT_URL`) with the session
//! credentials in their environment, invoke another function, and send to queues and topics
//! (SQS, SNS). The credentials are useless
//! in another namespace and, once expired, anywhere but their own sandbox; the endpoint serves
//! nothing unsigned and nothing of `/v1`; a function that bundles its own boto3 gets its own.
//!
//! The SDKs are fetched once per machine (`LAMBENT_SDK_DIR`, default `/var/cache/lambent/sdk`)
//! by the first node that needs them; these tests wait for that.

mod common;

use common::{node_with, with_sdks, Node, SHORT_KEEP_ALIVE};
use lambent_aws_api::sigv4;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;

const CALLEE: &str = "def handler(event, context):\n    return {\"doubled\": event[\"n\"] * 2}\n";

/// A handler that imports boto3 and makes a `lambda` client at module level, as most do; its
/// events say what to do from inside the sandbox.
const PY_CALLER: &str = r#"
import json, os, sys
PRELOADED = "botocore" in sys.modules
import boto3
import botocore.exceptions
CLIENT = boto3.client("lambda")


def probe(path, headers):
    import urllib.request, urllib.error
    request = urllib.request.Request(os.environ["AWS_ENDPOINT_URL"] + path, headers=headers)
    try:
        r = urllib.request.urlopen(request, timeout=10)
        return [r.status, r.headers.get("x-amzn-errortype"), r.read().decode()[:300]]
    except urllib.error.HTTPError as e:
        return [e.code, e.headers.get("x-amzn-errortype"), e.read().decode()[:300]]


def handler(event, context):
    out = {
        "preloaded": PRELOADED,
        "boto3": boto3.__version__,
        "boto3_file": boto3.__file__,
        "env": {k: os.environ.get(k) for k in (
            "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION")},
    }
    if "target" in event:
        try:
            r = CLIENT.invoke(FunctionName=event["target"], Payload=json.dumps(event["payload"]))
            out["status"] = r["StatusCode"]
            out["result"] = json.loads(r["Payload"].read())
        except botocore.exceptions.ClientError as e:
            out["error"] = e.response["Error"]["Code"]
    if event.get("probe"):
        out["unsigned"] = probe("/2015-03-31/functions/", {})
        out["v1"] = probe("/v1/functions", {"Authorization": "Bearer test-key"})
    return out
"#;

async fn deploy_ok(node: &Node, name: &str, settings: Value, files: &[(&str, &str)]) {
    let (status, body) = node.deploy(name, settings, files).await;
    assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
}

/// A function to deploy: name, settings, files.
type Deploy<'a> = (&'a str, Value, &'a [(&'a str, &'a str)]);

/// A node (`adjust`ed) with both SDKs and the Python zygote ready, and `functions` deployed.
async fn sdk_node(
    adjust: impl FnOnce(&mut lambent_server::ServerOptions),
    functions: &[Deploy<'_>],
) -> Node {
    let node = node_with(adjust).await;
    with_sdks(&node).await;
    common::await_python_zygote(&node).await;
    for (name, settings, files) in functions {
        deploy_ok(&node, name, settings.clone(), files).await;
    }
    node
}

fn node_js() -> Value {
    json!({"runtime": "nodejs", "handler": "index.handler", "memory": 512})
}

async fn invoke_ok(node: &Node, name: &str, payload: Value) -> Value {
    let (status, _, body) = node.invoke(name, &payload.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    body
}

fn python(handler: &str) -> Value {
    json!({"runtime": "python", "handler": handler, "memory": 256})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_python_handler_invokes_another_function_with_boto3() {
    let node = sdk_node(
        |_| {},
        &[
            ("callee", python("app.handler"), &[("app.py", CALLEE)]),
            ("caller", python("app.handler"), &[("app.py", PY_CALLER)]),
        ],
    )
    .await;

    let out = invoke_ok(
        &node,
        "caller",
        json!({"target": "callee", "payload": {"n": 21}, "probe": true}),
    )
    .await;
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["result"], json!({"doubled": 42}), "{out}");
    assert_eq!(out["env"]["AWS_ENDPOINT_URL"], "http://127.0.0.1:9001");
    assert_eq!(out["env"]["AWS_REGION"], "us-east-1");
    assert_eq!(out["env"]["AWS_DEFAULT_REGION"], "us-east-1");
    assert!(out["env"]["AWS_ACCESS_KEY_ID"]
        .as_str()
        .unwrap()
        .starts_with("ASIA"));
    // The runtime's boto3, already imported by the zygote this sandbox was forked from.
    assert_eq!(out["boto3"], "1.44.8", "{out}");
    assert_eq!(out["preloaded"], true, "{out}");
    let callee = node.activations_of("callee").await;
    assert_eq!(callee.len(), 1, "the callee ran once: {callee:?}");
    assert_eq!(callee[0]["status"], "success");

    // Nothing unsigned, nothing of /v1 (even with the node's API key).
    assert_eq!(out["unsigned"][0], 403, "{out}");
    assert_eq!(
        out["unsigned"][1], "MissingAuthenticationTokenException",
        "{out}"
    );
    assert_eq!(out["v1"][0], 403, "{out}");
    assert_eq!(out["v1"][1], "MissingAuthenticationTokenException", "{out}");
    assert!(!out["v1"][2].as_str().unwrap().contains("callee"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_node_handler_invokes_another_function_with_the_js_sdk() {
    let handler = r#"
import { LambdaClient, InvokeCommand } from "@aws-sdk/client-lambda";
const client = new LambdaClient({});
export const handler = async (event) => {
  const r = await client.send(new InvokeCommand({
    FunctionName: event.target, Payload: JSON.stringify(event.payload),
  }));
  return { status: r.StatusCode, result: JSON.parse(Buffer.from(r.Payload).toString()) };
};
"#;
    let node = sdk_node(
        |_| {},
        &[
            ("callee", python("app.handler"), &[("app.py", CALLEE)]),
            ("js-caller", node_js(), &[("index.mjs", handler)]),
        ],
    )
    .await;
    let out = invoke_ok(
        &node,
        "js-caller",
        json!({"target": "callee", "payload": {"n": 4}}),
    )
    .await;
    let records = node.activations_of("js-caller").await;
    assert_eq!(
        out,
        json!({"status": 200, "result": {"doubled": 8}}),
        "logs: {}",
        records[0]["logs"]
    );
    assert_eq!(node.activations_of("callee").await.len(), 1);
}

/// A request to the node's Lambda API signed with session credentials (`key`, `secret`,
/// `token`), from outside any sandbox: (status, AWS error type).
async fn signed_with(node: &Node, path: &str, body: &str, creds: &Value) -> (u16, String) {
    let host = node.url("").trim_start_matches("http://").to_string();
    let now = time::OffsetDateTime::now_utc();
    let amz_date = sigv4::format_amz_date(now);
    let (id, secret, token) = (
        creds["AWS_ACCESS_KEY_ID"].as_str().unwrap(),
        creds["AWS_SECRET_ACCESS_KEY"].as_str().unwrap(),
        creds["AWS_SESSION_TOKEN"].as_str().unwrap(),
    );
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(&host).unwrap());
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    headers.insert(
        "x-amz-security-token",
        HeaderValue::from_str(token).unwrap(),
    );
    let signed_headers = vec![
        "host".into(),
        "x-amz-date".into(),
        "x-amz-security-token".into(),
    ];
    let auth = sigv4::Authorization {
        access_key_id: id.into(),
        date: amz_date[..8].into(),
        region: "us-east-1".into(),
        service: "lambda".into(),
        signed_headers,
        signature: String::new(),
    };
    let signature = sigv4::sign(
        &sigv4::Request {
            method: "POST",
            raw_path: path,
            raw_query: "",
            headers: &headers,
            body: body.as_bytes(),
        },
        &auth,
        secret,
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={id}/{}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature}",
            auth.date
        ))
        .unwrap(),
    );
    let response = node
        .http
        .post(node.url(path))
        .headers(headers)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let error = common::header(response.headers(), "x-amzn-errortype").to_string();
    (response.status().as_u16(), error)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_credentials_stay_in_their_namespace_and_expire_outside_their_sandbox() {
    if common::cluster_backends().is_some() {
        return; // the other namespace is made in the embedded store
    }
    let lifetime = Duration::from_secs(4);
    let node = sdk_node(
        |o| o.session_lifetime = lifetime,
        &[
            ("callee", python("app.handler"), &[("app.py", CALLEE)]),
            ("caller", python("app.handler"), &[("app.py", PY_CALLER)]),
        ],
    )
    .await;
    // Another namespace, with a function of its own.
    common::add_namespace(&node, "other", "other-key");
    let zip = common::zip_of(&[("app.py", CALLEE)]);
    let http = reqwest::Client::new();
    let code: Value = http
        .post(node.url("/v1/code"))
        .bearer_auth("other-key")
        .body(zip)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let put = http
        .put(node.url("/v1/functions/private"))
        .bearer_auth("other-key")
        .json(
            &json!({"runtime": "python", "handler": "app.handler", "code_sha256": code["sha256"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::CREATED);

    // From inside: the other namespace's function does not exist for these credentials.
    let foreign = "arn:aws:lambda:us-east-1:other:function:private";
    let out = invoke_ok(
        &node,
        "caller",
        json!({"target": foreign, "payload": {"n": 1}}),
    )
    .await;
    assert_eq!(out["error"], "ResourceNotFoundException", "{out}");
    let creds = out["env"].clone();

    // From outside, while they are valid: their namespace's functions only.
    let invoke = |f: &str| format!("/2015-03-31/functions/{f}/invocations");
    let (status, error) = signed_with(&node, &invoke("callee"), r#"{"n":2}"#, &creds).await;
    assert_eq!((status, error.as_str()), (200, ""));
    let (status, error) = signed_with(&node, &invoke(foreign), r#"{"n":2}"#, &creds).await;
    assert_eq!((status, error.as_str()), (404, "ResourceNotFoundException"));
    // A token changed by one character is no token.
    let mut forged = creds.clone();
    let token = creds["AWS_SESSION_TOKEN"].as_str().unwrap();
    forged["AWS_SESSION_TOKEN"] = format!("{}A", &token[..token.len() - 1]).into();
    if forged["AWS_SESSION_TOKEN"] == creds["AWS_SESSION_TOKEN"] {
        forged["AWS_SESSION_TOKEN"] = format!("{}B", &token[..token.len() - 1]).into();
    }
    let (status, error) = signed_with(&node, &invoke("callee"), "{}", &forged).await;
    assert_eq!(
        (status, error.as_str()),
        (403, "UnrecognizedClientException")
    );

    // Expired: refused from outside...
    tokio::time::sleep(lifetime + Duration::from_millis(500)).await;
    let (status, error) = signed_with(&node, &invoke("callee"), r#"{"n":2}"#, &creds).await;
    assert_eq!((status, error.as_str()), (403, "ExpiredTokenException"));
    // ...but the warm sandbox they were given to keeps working with its module-level client,
    // without a cold start.
    let out = invoke_ok(
        &node,
        "caller",
        json!({"target": "callee", "payload": {"n": 5}}),
    )
    .await;
    assert_eq!(out["result"], json!({"doubled": 10}), "{out}");
    assert_eq!(out["env"], creds, "the same sandbox");
    let caller = node.activations_of("caller").await;
    assert_eq!(caller.last().unwrap()["cold"], false, "{caller:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_that_bundles_boto3_gets_its_own() {
    let app = "import boto3\n\ndef handler(event, context):\n    return {\"version\": boto3.__version__, \"file\": boto3.__file__}\n";
    let files = [
        ("app.py", app),
        ("boto3/__init__.py", "__version__ = \"0.0.0-bundled\"\n"),
    ];
    let node = sdk_node(
        |o| o.keep_alive = SHORT_KEEP_ALIVE,
        &[("bundled", python("app.handler"), &files)],
    )
    .await;
    let bundled = json!({"version": "0.0.0-bundled", "file": "/var/task/boto3/__init__.py"});
    // Forked from the base zygote, which imported the runtime's boto3...
    let out = invoke_ok(&node, "bundled", json!({})).await;
    assert_eq!(out, bundled);
    assert_eq!(
        common::births_of(&node, "bundled")
            .await
            .first()
            .map(String::as_str),
        Some("zygote")
    );
    // ...and from the function's own package zygote, which imported its code's.
    let out = common::invoke_from_package_zygote(&node, "bundled", "{}").await;
    assert_eq!(out, bundled);

    // Without a bundled one, the runtime's.
    deploy_ok(&node, "plain", python("app.handler"), &[("app.py", app)]).await;
    let out = invoke_ok(&node, "plain", json!({})).await;
    assert_eq!(out["version"], "1.44.8", "{out}");
}

/// Uploads under `in/` trigger both handlers (by suffix); each reads the object with its SDK
/// from inside its sandbox and writes a derived object under `out/`.
const PIPELINE_CLIENT: &str = r#"
import json, os, sys, time
import boto3
s3 = boto3.client("s3", endpoint_url=os.environ["LAMBENT_URL"], region_name="us-east-1")
s3.create_bucket(Bucket="photos")
arn = "arn:aws:lambda:us-east-1:default:function:"
s3.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration={
    "LambdaFunctionConfigurations": [
        {"LambdaFunctionArn": arn + "thumb-py", "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"},
                                            {"Name": "suffix", "Value": ".py.txt"}]}}},
        {"LambdaFunctionArn": arn + "thumb-node", "Events": ["s3:ObjectCreated:*"],
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"},
                                            {"Name": "suffix", "Value": ".js.txt"}]}}},
    ]})
s3.put_object(Bucket="photos", Key="in/cat one.py.txt", Body=b"hello from python")
s3.put_object(Bucket="photos", Key="in/dog.js.txt", Body=b"hello from node")
found = {}
deadline = time.time() + 120
while len(found) < 2 and time.time() < deadline:
    for key in ("out/cat one.py.txt", "out/dog.js.txt"):
        try:
            found[key] = s3.get_object(Bucket="photos", Key=key)["Body"].read().decode()
        except s3.exceptions.NoSuchKey:
            pass
    time.sleep(0.2)
print(json.dumps(found))
"#;

const PY_THUMB: &str = r#"
import urllib.parse
import boto3
S3 = boto3.client("s3")

def handler(event, context):
    for record in event["Records"]:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        body = S3.get_object(Bucket=bucket, Key=key)["Body"].read()
        S3.put_object(Bucket=bucket, Key="out/" + key[len("in/"):], Body=body.upper())
    return "ok"
"#;

const JS_THUMB: &str = r#"
import { S3Client, GetObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
const s3 = new S3Client({});
export const handler = async (event) => {
  for (const record of event.Records) {
    const bucket = record.s3.bucket.name;
    const key = decodeURIComponent(record.s3.object.key.replace(/\+/g, " "));
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await got.Body.transformToString();
    await s3.send(new PutObjectCommand({
      Bucket: bucket, Key: "out/" + key.slice("in/".length), Body: text.toUpperCase(),
    }));
  }
  return "ok";
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_trigger_unmodified_handlers_that_read_and_write_objects_with_their_sdks() {
    const ID: &str = "LKIAPIPELINEPIPELINE";
    const SECRET: &str = "pipeline-test-secret-access-key-012345678";
    let node = sdk_node(
        |o| o.access_key = Some((ID.into(), SECRET.into())),
        &[
            ("thumb-py", python("app.handler"), &[("app.py", PY_THUMB)]),
            ("thumb-node", node_js(), &[("index.mjs", JS_THUMB)]),
        ],
    )
    .await;
    let url = node.url("");
    let stdout = tokio::task::spawn_blocking(move || {
        let venv = lambent_testkit::python::venv(&["boto3", "awscli"]);
        let python = venv.join("bin/python");
        let dir = common::aws_scripts_dir();
        common::run_aws_client(
            &python,
            &["-c", PIPELINE_CLIENT],
            &dir,
            &url,
            (ID, SECRET),
            &[],
        )
    })
    .await
    .unwrap();
    let logs = |f: &'static str| {
        let node = &node;
        async move {
            node.activations_of(f)
                .await
                .iter()
                .map(|a| format!("{}: {}", a["status"], a["logs"]))
                .collect::<Vec<_>>()
        }
    };
    let found: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        found,
        json!({"out/cat one.py.txt": "HELLO FROM PYTHON", "out/dog.js.txt": "HELLO FROM NODE"}),
        "python: {:?}\nnode: {:?}",
        logs("thumb-py").await,
        logs("thumb-node").await
    );
}

/// A handler that keeps notes in a table through boto3's `resource("dynamodb")`, creating the
/// table on its first call.
const PY_NOTES: &str = r#"
import boto3
from boto3.dynamodb.conditions import Key

DDB = boto3.resource("dynamodb")


def handler(event, context):
    try:
        DDB.create_table(TableName="notes",
                         KeySchema=[{"AttributeName": "user", "KeyType": "HASH"},
                                    {"AttributeName": "n", "KeyType": "RANGE"}],
                         AttributeDefinitions=[{"AttributeName": "user", "AttributeType": "S"},
                                               {"AttributeName": "n", "AttributeType": "N"}],
                         BillingMode="PAY_PER_REQUEST")
    except DDB.meta.client.exceptions.ResourceInUseException:
        pass
    table = DDB.Table("notes")
    table.put_item(Item={"user": event["user"], "n": event["n"], "text": event["text"]})
    got = table.get_item(Key={"user": event["user"], "n": event["n"]})["Item"]
    notes = table.query(KeyConditionExpression=Key("user").eq(event["user"]))["Items"]
    return {"got": got["text"], "notes": [[int(i["n"]), i["text"]] for i in notes]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_python_handler_keeps_items_in_a_table_with_boto3() {
    let node = sdk_node(
        |_| {},
        &[("notes", python("app.handler"), &[("app.py", PY_NOTES)])],
    )
    .await;
    let first = invoke_ok(&node, "notes", json!({"user": "ann", "n": 2, "text": "b"})).await;
    assert_eq!(first["got"], "b", "{first}");
    let second = invoke_ok(&node, "notes", json!({"user": "ann", "n": 1, "text": "a"})).await;
    assert_eq!(second["notes"], json!([[1, "a"], [2, "b"]]), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_node_handler_keeps_items_in_a_table_with_the_js_sdk() {
    let handler = r##"
import { DynamoDBClient, CreateTableCommand, ResourceInUseException } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, PutCommand, GetCommand, QueryCommand, DeleteCommand } from "@aws-sdk/lib-dynamodb";
const client = new DynamoDBClient({});
const docs = DynamoDBDocumentClient.from(client);
export const handler = async (event) => {
  try {
    await client.send(new CreateTableCommand({
      TableName: "notes",
      KeySchema: [{ AttributeName: "user", KeyType: "HASH" }, { AttributeName: "n", KeyType: "RANGE" }],
      AttributeDefinitions: [{ AttributeName: "user", AttributeType: "S" }, { AttributeName: "n", AttributeType: "N" }],
      BillingMode: "PAY_PER_REQUEST",
    }));
  } catch (e) {
    if (!(e instanceof ResourceInUseException)) throw e;
  }
  await docs.send(new PutCommand({ TableName: "notes", Item: { user: event.user, n: event.n, text: event.text } }));
  const got = await docs.send(new GetCommand({ TableName: "notes", Key: { user: event.user, n: event.n } }));
  const q = await docs.send(new QueryCommand({
    TableName: "notes", KeyConditionExpression: "#u = :u",
    ExpressionAttributeNames: { "#u": "user" }, ExpressionAttributeValues: { ":u": event.user },
  }));
  await docs.send(new DeleteCommand({ TableName: "notes", Key: { user: event.user, n: 0 } }));
  return { got: got.Item.text, notes: q.Items.map((i) => [i.n, i.text]) };
};
"##;
    let node = sdk_node(
        |_| {},
        &[("js-notes", node_js(), &[("index.mjs", handler)])],
    )
    .await;
    invoke_ok(
        &node,
        "js-notes",
        json!({"user": "bo", "n": 2, "text": "b"}),
    )
    .await;
    let out = invoke_ok(
        &node,
        "js-notes",
        json!({"user": "bo", "n": 1, "text": "a"}),
    )
    .await;
    let records = node.activations_of("js-notes").await;
    assert_eq!(
        out,
        json!({"got": "a", "notes": [[1, "a"], [2, "b"]]}),
        "logs: {}",
        records[0]["logs"]
    );
}

/// A handler that sends an order to a queue and announces it on a topic with boto3's `sqs`
/// and `sns` clients, creating both (idempotently) as it goes.
const PY_ORDERS: &str = r#"
import json
import boto3

SQS = boto3.client("sqs")
SNS = boto3.client("sns")


def handler(event, context):
    url = SQS.create_queue(QueueName="orders")["QueueUrl"]
    sent = SQS.send_message(QueueUrl=url, MessageBody=json.dumps(event),
                            MessageAttributes={"source": {"DataType": "String", "StringValue": "handler"}})
    arn = SQS.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    topic = SNS.create_topic(Name="order-events")["TopicArn"]
    SNS.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    published = SNS.publish(TopicArn=topic, Message="order placed", Subject="orders")
    try:
        SQS.get_queue_url(QueueName="no-such-queue")
        missing = None
    except SQS.exceptions.ClientError as e:
        missing = e.response["Error"]["Code"]
    return {"url": url, "sent": sent["MessageId"], "published": published["MessageId"],
            "missing": missing}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_python_handler_sends_to_a_queue_and_publishes_with_boto3() {
    let node = node_with(|_| {}).await;
    with_sdks(&node).await;
    common::await_python_zygote(&node).await;
    deploy_ok(
        &node,
        "orders",
        python("app.handler"),
        &[("app.py", PY_ORDERS)],
    )
    .await;
    let out = invoke_ok(&node, "orders", json!({"order": 7})).await;
    // The queue's URL is on the sandbox's own endpoint, where the handler reached it.
    assert_eq!(out["url"], "http://127.0.0.1:9001/default/orders", "{out}");
    assert_eq!(
        out["missing"], "AWS.SimpleQueueService.NonExistentQueue",
        "{out}"
    );
    // Both messages are in the node's queue: the order, and the topic's notification.
    let mut got: Vec<Value> = Vec::new();
    for _ in 0..10 {
        let (status, _, v) = node
            .send(
                reqwest::Method::POST,
                "/v1/queues/orders/receive",
                json!({"max": 10, "wait": 2}).to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        got.extend(v["messages"].as_array().cloned().unwrap_or_default());
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "{got:?}");
    let order = got
        .iter()
        .find(|m| m["id"] == out["sent"])
        .expect("the order");
    assert_eq!(order["body"], r#"{"order": 7}"#);
    assert_eq!(order["attributes"]["source"]["stringValue"], "handler");
    let note = got.iter().find(|m| m["id"] != out["sent"]).unwrap();
    let envelope: Value = serde_json::from_str(note["body"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["MessageId"], out["published"]);
    assert_eq!(envelope["Message"], "order placed");
    assert_eq!(
        envelope["TopicArn"],
        "arn:aws:sns:us-east-1:default:order-events"
    );
}

/// A Node.js handler that uses the AWS SDK for JavaScript v3's SQS client (JSON protocol: send
/// with attributes, a batch, receive with long polling and attributes, delete, batch delete,
/// an AWS error mapped to its class) and SNS client (publish to a topic whose raw subscription
/// feeds the queue), making queue and topic as it goes.
const JS_QUEUES: &str = r#"
import {
  SQSClient, CreateQueueCommand, SendMessageCommand, SendMessageBatchCommand, ReceiveMessageCommand,
  DeleteMessageCommand, DeleteMessageBatchCommand, GetQueueAttributesCommand, GetQueueUrlCommand,
  QueueDoesNotExist,
} from "@aws-sdk/client-sqs";
import { SNSClient, CreateTopicCommand, SubscribeCommand, PublishCommand } from "@aws-sdk/client-sns";
const sqs = new SQSClient({});
const sns = new SNSClient({});
export const handler = async (event) => {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: "js-orders" }));
  const sent = await sqs.send(new SendMessageCommand({
    QueueUrl, MessageBody: JSON.stringify(event),
    MessageAttributes: { source: { DataType: "String", StringValue: "js" } },
  }));
  const batch = await sqs.send(new SendMessageBatchCommand({ QueueUrl, Entries: [
    { Id: "a", MessageBody: "batch a" }, { Id: "b", MessageBody: "batch b" },
  ] }));
  const arn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl, AttributeNames: ["QueueArn"] })))
    .Attributes.QueueArn;
  const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: "js-events" }));
  await sns.send(new SubscribeCommand({
    TopicArn, Protocol: "sqs", Endpoint: arn, Attributes: { RawMessageDelivery: "true" },
  }));
  const published = await sns.send(new PublishCommand({ TopicArn, Message: "published by js" }));
  const bodies = [];
  const firstAttributes = {};
  while (bodies.length < 4) {
    const got = await sqs.send(new ReceiveMessageCommand({
      QueueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 5,
      MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["ApproximateReceiveCount"],
    }));
    if (!got.Messages) break;
    for (const m of got.Messages) {
      bodies.push(m.Body);
      if (m.MessageId === sent.MessageId) {
        firstAttributes.source = m.MessageAttributes.source.StringValue;
        firstAttributes.count = m.Attributes.ApproximateReceiveCount;
        await sqs.send(new DeleteMessageCommand({ QueueUrl, ReceiptHandle: m.ReceiptHandle }));
      }
    }
    const rest = got.Messages.filter((m) => m.MessageId !== sent.MessageId);
    if (rest.length) {
      const deleted = await sqs.send(new DeleteMessageBatchCommand({
        QueueUrl, Entries: rest.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle })),
      }));
      if ((deleted.Failed || []).length) throw new Error(JSON.stringify(deleted.Failed));
    }
  }
  let missing = null;
  try {
    await sqs.send(new GetQueueUrlCommand({ QueueName: "js-no-such-queue" }));
  } catch (e) {
    missing = { isClass: e instanceof QueueDoesNotExist, name: e.name, status: e.$metadata.httpStatusCode };
  }
  const left = (await sqs.send(new GetQueueAttributesCommand({
    QueueUrl, AttributeNames: ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
  }))).Attributes;
  return {
    url: QueueUrl, sent: sent.MessageId, batch: batch.Successful.map((s) => s.Id).sort(),
    published: Boolean(published.MessageId), bodies: bodies.sort(), firstAttributes, missing, left,
  };
};
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmodified_node_handler_uses_queues_and_topics_with_the_js_sdk() {
    let node = sdk_node(
        |_| {},
        &[("js-queues", node_js(), &[("index.mjs", JS_QUEUES)])],
    )
    .await;
    let out = invoke_ok(&node, "js-queues", json!({"order": 9})).await;
    let records = node.activations_of("js-queues").await;
    let logs = &records[0]["logs"];
    assert_eq!(
        out["url"], "http://127.0.0.1:9001/default/js-orders",
        "{out} logs: {logs}"
    );
    assert_eq!(out["batch"], json!(["a", "b"]), "{out}");
    assert_eq!(out["published"], true, "{out}");
    assert_eq!(
        out["bodies"],
        json!(["batch a", "batch b", "published by js", r#"{"order":9}"#]),
        "{out}"
    );
    assert_eq!(
        out["firstAttributes"],
        json!({"source": "js", "count": "1"}),
        "{out}"
    );
    assert_eq!(
        out["missing"],
        json!({"isClass": true, "name": "QueueDoesNotExist", "status": 400}),
        "{out}"
    );
    assert_eq!(
        out["left"],
        json!({"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}),
        "{out}"
    );
    // Lambent's own API sees the queue the handler made, empty.
    let (status, _, v) = node
        .send(reqwest::Method::GET, "/v1/queues", Vec::new())
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        v["queues"]
            .as_array()
            .is_some_and(|q| q.iter().any(|q| q["name"] == "js-orders")),
        "{v}"
    );
}
