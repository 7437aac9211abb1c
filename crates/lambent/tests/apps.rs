//! `lambent deploy` of apps written for other tools (`tests/fixtures/apps/`): a Serverless
//! Framework HTTP service (REST and HTTP API events), a SAM app with parameters, intrinsics, a
//! schedule in AWS cron and outputs, an SQS worker with a dead-letter queue and partial batch
//! failures, an SNS fan-out, and an order intake whose function sends to a queue with boto3
//! from inside its sandbox, an upload pipeline (an S3 event into a function that writes to a
//! table declared as a resource, whose stream reaches another function), and a SAM app with a
//! SimpleTable, a DynamoDB stream event, a state machine and an `AutoPublishAlias` — each
//! planned with `--dry-run`, deployed, exercised (HTTP, the AWS CLI) and its events' shapes
//! checked; and bad apps, each refused before anything is deployed.

mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use support::{eventually, path_str, Server};

fn app(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/apps")
        .join(name)
}

/// The events a function logged (`EVENT {"fn": …, "event": …}` lines), oldest first.
fn logged_events(s: &Server, function: &str) -> Vec<Value> {
    logged(s, function, "EVENT ")
}

/// The JSON a function logged after `marker` on a line, oldest first.
fn logged(s: &Server, function: &str, marker: &str) -> Vec<Value> {
    let logs = s
        .cli(&["logs", function, "--tail", "50", "-o", "json"])
        .ok()
        .json();
    let mut events: Vec<Value> = logs["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e["text"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.split_once(marker).map(|(_, j)| j.to_string()))
                .collect::<Vec<_>>()
        })
        .filter_map(|j| serde_json::from_str(&j).ok())
        .collect();
    events.reverse();
    events
}

fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::blocking::get(url).unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[test]
fn a_serverless_http_service_serves_rest_and_http_api_events() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sls-http");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    for line in [
        "function http-demo-dev-rest (python3.12, handler.handler, 256 MB, 6 s)",
        "function http-demo-dev-v2 (python3.12, handler.handler, 256 MB, 10 s)",
        "  env GREETING=hello-dev",
        "route GET /hello/{name} -> http-demo-dev-rest (payload 1.0)",
        "route POST /items -> http-demo-dev-rest (payload 1.0, cors)",
        "route GET /v2/hello -> http-demo-dev-v2 (payload 2.0)",
        "skipped provider.iam: not applied by Lambent",
        "skipped plugins.serverless-offline: local emulation: Lambent runs the functions itself",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    assert!(
        s.cli(&["ls", "-o", "json"]).ok().stdout.contains("[]"),
        "--dry-run deployed"
    );

    let out = s
        .cli(&["deploy", path_str(&dir), "--stage", "prod"])
        .ok()
        .stdout;
    assert!(out.contains("deployed http-demo-prod-rest"), "{out}");

    let (status, body) = get(&format!("{}/hello/w%C3%B6rld?a=1&a=2", s.url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fn"], "http-demo-prod-rest");
    assert_eq!(body["env"]["GREETING"], "hello-prod");
    let e = &body["event"];
    assert_eq!(e["resource"], "/hello/{name}");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["pathParameters"], json!({"name": "wörld"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"a": ["1", "2"]})
    );
    assert_eq!(e["queryStringParameters"], json!({"a": "2"}));
    assert_eq!(e["requestContext"]["resourcePath"], "/hello/{name}");

    let (status, body) = get(&format!("{}/v2/hello?a=1&a=2", s.url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["fn"], "http-demo-prod-v2");
    assert_eq!(body["event"]["version"], "2.0");
    assert_eq!(body["event"]["routeKey"], "GET /v2/hello");
    assert_eq!(body["event"]["queryStringParameters"], json!({"a": "1,2"}));

    // A second deploy changes nothing but the revisions.
    s.cli(&["deploy", path_str(&dir), "--stage", "prod"]).ok();
    let routes = s.cli(&["route", "ls", "-o", "json"]).ok().json();
    assert_eq!(routes["routes"].as_array().unwrap().len(), 3, "{routes}");
}

#[test]
fn a_sam_app_with_parameters_intrinsics_a_schedule_and_outputs() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sam-app");
    let dry = s.cli(&["deploy", "--dry-run", path_str(&dir)]).failed();
    assert!(
        dry.stderr.contains("parameter 'Greeting' has no Default"),
        "{dry:?}"
    );
    let plan = s
        .cli(&[
            "deploy",
            "--dry-run",
            path_str(&dir),
            "--parameter",
            "Greeting=bonjour",
        ])
        .ok()
        .stdout;
    for line in [
        "queue sam-app-jobs",
        "topic sam-app-Alerts",
        "function sam-app-dev-greeter (python3.12, app.handler, 256 MB, 5 s)",
        "  env FLAG=false",
        "  env GREETING=bonjour, dev",
        "  env QUEUE_URL=${lambent:queue-url:sam-app-jobs}",
        "route GET /hello/{name} -> sam-app-dev-greeter (payload 1.0)",
        "schedule sam-app-dev-greeter-Tick cron(0 * * * * ? *) -> sam-app-dev-greeter",
        "output HelloApi = ${lambent:api-url}/hello/",
        "output GreeterName = sam-app-dev-greeter",
        "skipped Resources.GreeterLogs: AWS::Logs::LogGroup",
        "skipped Resources.Greeter.Properties.Policies",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }

    let out = s
        .cli(&["deploy", path_str(&dir), "--parameter", "Greeting=bonjour"])
        .ok()
        .stdout;
    assert!(
        out.contains(&format!("output HelloApi = {}/hello/", s.url)),
        "{out}"
    );
    assert!(
        out.contains("output GreeterName = sam-app-dev-greeter"),
        "{out}"
    );
    let queue_url = format!("{}/default/sam-app-jobs", s.url);
    assert!(
        out.contains(&format!("output QueueUrl = {queue_url}")),
        "{out}"
    );

    let (status, body) = get(&format!("{}/hello/sam", s.url));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["event"]["httpMethod"], "GET");
    assert_eq!(body["event"]["pathParameters"]["name"], "sam");
    let env = &body["env"];
    assert_eq!(env["GREETING"], "bonjour, dev");
    assert_eq!(env["FLAG"], "false");
    assert_eq!(env["QUEUE_URL"], queue_url.as_str());
    assert_eq!(
        env["QUEUE_ARN"],
        "arn:aws:sqs:us-east-1:default:sam-app-jobs"
    );
    assert_eq!(
        env["TOPIC_ARN"],
        "arn:aws:sns:us-east-1:default:sam-app-Alerts"
    );

    // The AWS cron fires at the next minute with EventBridge's scheduled event.
    let scheduled = eventually(75, "the scheduled invocation", || {
        logged_events(&s, "sam-app-dev-greeter")
            .into_iter()
            .find(|e| e["event"]["source"] == "aws.events")
    });
    assert_eq!(scheduled["event"]["detail-type"], "Scheduled Event");
}

#[test]
fn an_sqs_worker_with_a_dead_letter_queue_and_partial_batch_failures() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sls-worker");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    for line in [
        "queue worker-dev-jobs visibility_timeout=1s dead_letter_queue=worker-dev-dead max_receive_count=1",
        "queue worker-dev-dead",
        "function worker-dev-work (python3.12, handler.handler, 1024 MB, 6 s)",
        "mapping worker-dev-jobs -> worker-dev-work batch_size=10 report_batch_item_failures",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    s.cli(&["deploy", path_str(&dir)]).ok();
    s.cli(&["queue", "send", "worker-dev-jobs", "good-1"]).ok();
    s.cli(&["queue", "send", "worker-dev-jobs", "bad-1"]).ok();
    let dead = eventually(30, "the failed message in the dead-letter queue", || {
        let got = s
            .cli(&["queue", "receive", "worker-dev-dead", "-o", "json"])
            .ok()
            .json();
        got["messages"].as_array()?.first().cloned()
    });
    assert_eq!(dead["body"], "bad-1");
    let events = logged_events(&s, "worker-dev-work");
    let records: Vec<&Value> = events
        .iter()
        .flat_map(|e| e["event"]["Records"].as_array().unwrap().iter())
        .collect();
    let r = records.iter().find(|r| r["body"] == "good-1").unwrap();
    assert_eq!(r["eventSource"], "aws:sqs");
    assert!(
        r["eventSourceARN"]
            .as_str()
            .unwrap()
            .ends_with(":worker-dev-jobs"),
        "{r}"
    );
    // The good message was processed once: only the failed one was retried.
    assert_eq!(records.iter().filter(|r| r["body"] == "good-1").count(), 1);
}

#[test]
fn an_sns_fan_out_reaches_every_subscribed_function() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sls-fanout");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    assert_eq!(plan.matches("topic news").count(), 1, "{plan}");
    for line in [
        "subscription news -> function fanout-dev-audit",
        "subscription news -> function fanout-dev-notify",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    s.cli(&["deploy", path_str(&dir)]).ok();
    s.cli(&["deploy", path_str(&dir)]).ok();
    s.cli(&[
        "topic",
        "publish",
        "news",
        "hello all",
        "--subject",
        "greeting",
    ])
    .ok();
    for function in ["fanout-dev-audit", "fanout-dev-notify"] {
        let events = eventually(30, function, || {
            Some(logged_events(&s, function)).filter(|e| !e.is_empty())
        });
        assert_eq!(
            events.len(),
            1,
            "a redeploy doubled the subscription: {events:?}"
        );
        let record = &events[0]["event"]["Records"][0];
        assert_eq!(record["EventSource"], "aws:sns");
        assert_eq!(record["Sns"]["Message"], "hello all");
        assert_eq!(record["Sns"]["Subject"], "greeting");
        assert!(record["Sns"]["TopicArn"]
            .as_str()
            .unwrap()
            .ends_with(":news"));
    }
}

#[test]
fn a_function_sends_to_its_apps_queue_with_boto3() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sls-producer");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    for line in [
        "queue orders-dev-orders",
        "function orders-dev-intake (python3.12, intake.handler, 1024 MB, 6 s)",
        "mapping orders-dev-orders -> orders-dev-fulfil batch_size=5",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    s.cli(&["deploy", path_str(&dir)]).ok();
    let env = s
        .cli(&["get", "orders-dev-intake", "-o", "json"])
        .ok()
        .json();
    let queue_url = env["env"]["ORDERS_QUEUE_URL"].as_str().unwrap_or_default();
    assert!(
        queue_url.starts_with("http") && queue_url.ends_with("/orders-dev-orders"),
        "the queue's URL in the environment: {env}"
    );
    // The first call may wait for the runtimes' AWS SDK (fetched once per machine).
    let client = reqwest::blocking::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    let sent: Value = loop {
        let resp = client
            .post(format!("{}/orders", s.url))
            .body(r#"{"sku": "tea", "qty": 2}"#)
            .send()
            .unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().unwrap();
        if status == 202 || std::time::Instant::now() > deadline {
            assert_eq!(status, 202, "{body}");
            break serde_json::from_str(&body).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    };
    let orders = eventually(60, "the order reaches the worker", || {
        Some(logged(&s, "orders-dev-fulfil", "ORDER ")).filter(|o| !o.is_empty())
    });
    assert_eq!(
        orders[0],
        json!({"body": {"sku": "tea", "qty": 2}, "messageId": sent["messageId"], "kind": "order"})
    );
}

/// An access key of the server's namespace: (id, secret).
fn access_key(s: &Server) -> (String, String) {
    let k = s.cli(&["keys", "create", "-o", "json"]).ok().json();
    (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    )
}

/// `aws ARGS…` (the AWS CLI of the test venv) against the server with `key`: its stdout;
/// the test fails if the command does.
fn aws(s: &Server, key: &(String, String), args: &[&str]) -> String {
    let venv = lambent_testkit::python::venv(&["boto3", "awscli"]);
    let out = std::process::Command::new(venv.join("bin/aws"))
        .args(args)
        .args(["--endpoint-url", &s.url, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", &key.0)
        .env("AWS_SECRET_ACCESS_KEY", &key.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the AWS CLI runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "aws {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Invokes `function` with `event` until it succeeds: the first import of boto3 in a sandbox
/// may wait for the runtimes' AWS SDK (fetched once per machine).
fn until_invoked(s: &Server, function: &str, event: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(900);
    loop {
        let out = s.cli(&["invoke", function, "--data", event]);
        if out.code == 0 {
            return;
        }
        assert!(
            out.code == 1 && std::time::Instant::now() < deadline,
            "{function} never ran: {out:?}"
        );
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

/// The item of `table` with `key` (plain JSON), once it exists.
fn item_eventually(s: &Server, table: &str, key: &str) -> Value {
    eventually(60, &format!("the item {key} in {table}"), || {
        let out = s.cli(&["item", "get", table, key, "-o", "json"]);
        (out.code == 0).then(|| out.json())
    })
}

#[test]
fn an_s3_upload_is_recorded_in_a_table_whose_stream_reaches_an_auditor() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sls-uploads");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    for line in [
        "table uploads-dev-files key=key:HASH gsi=by-size stream=NEW_IMAGE ttl=expires",
        "bucket uploads-dev-inbox",
        "function uploads-dev-ingest (python3.12, ingest.handler, 1024 MB, 6 s)",
        "  env TABLE=uploads-dev-files",
        "  env TABLE_ARN=${lambent:table-arn:uploads-dev-files}",
        "  package !notes/** !*.md",
        "  async max_retries=5 max_event_age_s=default on_success=- on_failure=-",
        "mapping table uploads-dev-files stream -> uploads-dev-audit batch_size=5 starting_position=TRIM_HORIZON max_retries=2 bisect_on_error report_batch_item_failures",
        "notification uploads-dev-inbox s3:ObjectCreated:* -> uploads-dev-ingest prefix=incoming/ suffix=.txt",
        "skipped Resources.FilesTable.Properties.PointInTimeRecoverySpecification: not applied by Lambent",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    let out = s.cli(&["deploy", path_str(&dir)]).ok().stdout;
    for line in [
        "table uploads-dev-files",
        "bucket uploads-dev-inbox",
        "mapping table uploads-dev-files stream -> uploads-dev-audit",
        "notification uploads-dev-inbox s3:ObjectCreated:* -> uploads-dev-ingest",
    ] {
        assert!(out.contains(line), "{line} not in:\n{out}");
    }
    let ingest = s
        .cli(&["get", "uploads-dev-ingest", "-o", "json"])
        .ok()
        .json();
    assert_eq!(ingest["env"]["TABLE"], "uploads-dev-files");
    assert_eq!(
        ingest["env"]["TABLE_ARN"],
        "arn:aws:dynamodb:us-east-1:default:table/uploads-dev-files"
    );
    until_invoked(&s, "uploads-dev-ingest", r#"{"Records": []}"#);

    let key = access_key(&s);
    let file = home.path().join("hello.txt");
    std::fs::write(&file, "hello!").unwrap();
    for object in ["incoming/hello.txt", "incoming/skip.bin", "elsewhere/x.txt"] {
        aws(
            &s,
            &key,
            &[
                "s3",
                "cp",
                path_str(&file),
                &format!("s3://uploads-dev-inbox/{object}"),
            ],
        );
    }
    let item = item_eventually(&s, "uploads-dev-files", r#"{"key": "incoming/hello.txt"}"#);
    assert_eq!(
        item,
        json!({"key": "incoming/hello.txt", "size": 6, "bucket": "uploads-dev-inbox",
               "event": "ObjectCreated:Put", "notes_packed": false})
    );
    let audits = eventually(60, "the stream's record at the auditor", || {
        Some(logged(&s, "uploads-dev-audit", "AUDIT ")).filter(|a| !a.is_empty())
    });
    assert_eq!(audits[0]["event"], "INSERT");
    assert_eq!(audits[0]["source"], "aws:dynamodb");
    assert_eq!(audits[0]["key"], "incoming/hello.txt");
    assert!(
        audits[0]["arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:dynamodb:us-east-1:default:table/uploads-dev-files/stream/"),
        "{audits:?}"
    );
    let ttl = aws(
        &s,
        &key,
        &[
            "dynamodb",
            "describe-time-to-live",
            "--table-name",
            "uploads-dev-files",
        ],
    );
    let ttl: Value = serde_json::from_str(&ttl).unwrap();
    assert_eq!(
        ttl["TimeToLiveDescription"],
        json!({"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"})
    );
    // Only the .txt under incoming/ was recorded, once.
    let scan = s
        .cli(&["item", "scan", "uploads-dev-files", "-o", "json"])
        .ok()
        .json();
    assert_eq!(scan["Count"], 1, "{scan}");

    // A second deploy keeps the table's items and adds no second mapping or notification.
    s.cli(&["deploy", path_str(&dir)]).ok();
    let mappings = s.cli(&["mapping", "ls", "-o", "json"]).ok().json();
    assert_eq!(
        mappings["stream_mappings"].as_array().unwrap().len(),
        1,
        "{mappings}"
    );
    let notes = s
        .cli(&["bucket", "notifications", "uploads-dev-inbox", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        notes["configurations"].as_array().unwrap().len(),
        1,
        "{notes}"
    );
    item_eventually(&s, "uploads-dev-files", r#"{"key": "incoming/hello.txt"}"#);
}

#[test]
fn a_sam_app_with_tables_a_stream_a_state_machine_and_an_alias() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = app("sam-orders");
    let plan = s.cli(&["deploy", "--dry-run", path_str(&dir)]).ok().stdout;
    for line in [
        "queue sam-orders-Failed",
        "topic sam-orders-Alerts",
        "table sam-orders-Results key=order:HASH",
        "table sam-orders-Orders key=id:HASH stream=NEW_AND_OLD_IMAGES",
        "function sam-orders-Price (python3.12, price.handler, 128 MB, 10 s)",
        " alias=live",
        "  env RESULTS_TABLE=sam-orders-Results",
        "  async max_retries=1 max_event_age_s=600 on_success=- on_failure=queue sam-orders-Failed",
        "  env MACHINE_ARN=${lambent:workflow-arn:sam-orders-Checkout}",
        "  env ORDERS_STREAM=${lambent:stream-arn:sam-orders-Orders}",
        "  async max_retries=default max_event_age_s=default on_success=- on_failure=topic sam-orders-Alerts",
        "workflow sam-orders-Checkout (STANDARD)",
        "\"FunctionName\":\"${lambent:function-arn:sam-orders-Price}:live\"",
        "route POST /checkout -> workflow sam-orders-Checkout (payload 1.0)",
        "mapping table sam-orders-Orders stream -> sam-orders-OnOrder batch_size=10 starting_position=TRIM_HORIZON max_retries=3 report_batch_item_failures",
        "output CheckoutArn = ${lambent:workflow-arn:sam-orders-Checkout}",
        "output CheckoutName = sam-orders-Checkout",
        "note Resources.OnOrder.Properties.DeadLetterQueue: a failure destination",
        "skipped Resources.Checkout.Properties.Policies: Lambent has no IAM",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }

    let out = s.cli(&["deploy", path_str(&dir)]).ok().stdout;
    let machine = "arn:aws:states:us-east-1:default:stateMachine:sam-orders-Checkout";
    for line in [
        "alias sam-orders-Price:live -> version 1".to_string(),
        "workflow sam-orders-Checkout".to_string(),
        format!("output CheckoutArn = {machine}"),
        "output PriceLive = arn:aws:lambda:us-east-1:default:function:sam-orders-Price:live"
            .to_string(),
        "output ResultsTable = sam-orders-Results".to_string(),
    ] {
        assert!(out.contains(&line), "{line} not in:\n{out}");
    }
    let on_order = s
        .cli(&["get", "sam-orders-OnOrder", "-o", "json"])
        .ok()
        .json();
    assert_eq!(on_order["env"]["MACHINE_ARN"], machine);
    let stream = on_order["env"]["ORDERS_STREAM"].as_str().unwrap();
    assert!(
        stream.starts_with("arn:aws:dynamodb:us-east-1:default:table/sam-orders-Orders/stream/"),
        "{on_order}"
    );
    assert_eq!(
        on_order["async"]["on_failure"],
        json!({"topic": "sam-orders-Alerts"}),
        "{on_order}"
    );
    until_invoked(&s, "sam-orders-OnOrder", r#"{"Records": []}"#);

    // StartExecution with the AWS CLI: the live alias (version 1) prices the order.
    let key = access_key(&s);
    let started = aws(
        &s,
        &key,
        &[
            "stepfunctions",
            "start-execution",
            "--state-machine-arn",
            machine,
            "--input",
            r#"{"order": "direct", "qty": 2}"#,
        ],
    );
    let arn = serde_json::from_str::<Value>(&started).unwrap()["executionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let done = eventually(120, "the execution to finish", || {
        let d = aws(
            &s,
            &key,
            &[
                "stepfunctions",
                "describe-execution",
                "--execution-arn",
                &arn,
            ],
        );
        let d: Value = serde_json::from_str(&d).unwrap();
        (d["status"] != "RUNNING").then_some(d)
    });
    assert_eq!(done["status"], "SUCCEEDED", "{done}");
    let output: Value = serde_json::from_str(done["output"].as_str().unwrap()).unwrap();
    assert_eq!(output, json!({"total": 10, "version": "1"}));
    assert_eq!(
        item_eventually(&s, "sam-orders-Results", r#"{"order": "direct"}"#),
        json!({"order": "direct", "total": 10})
    );

    // PutItem into Orders: its stream starts a checkout, whose total lands in Results.
    aws(
        &s,
        &key,
        &[
            "dynamodb",
            "put-item",
            "--table-name",
            "sam-orders-Orders",
            "--item",
            r#"{"id": {"S": "o-7"}, "qty": {"N": "3"}}"#,
        ],
    );
    assert_eq!(
        item_eventually(&s, "sam-orders-Results", r#"{"order": "o-7"}"#),
        json!({"order": "o-7", "total": 15})
    );
    let started = logged(&s, "sam-orders-OnOrder", "STARTED ");
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["source"], stream);

    // A second deploy keeps the tables and their items; the redeployed function is published
    // again and its alias moved to the new version.
    let again = s.cli(&["deploy", path_str(&dir)]).ok().stdout;
    for line in [
        "table sam-orders-Orders (exists)",
        "alias sam-orders-Price:live -> version 2",
    ] {
        assert!(again.contains(line), "{line} not in:\n{again}");
    }
    item_eventually(&s, "sam-orders-Results", r#"{"order": "o-7"}"#);

    // The state machine's Api event: POST /checkout starts it with the body as its input.
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/checkout", s.url))
        .body(r#"{"order": "web", "qty": 1}"#)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.text());
    assert_eq!(
        item_eventually(&s, "sam-orders-Results", r#"{"order": "web"}"#)["total"],
        5
    );
}

#[test]
fn a_serverless_lift_queue_becomes_a_queue_a_dead_letter_queue_and_a_worker() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = scratch(&[
        (
            "serverless.yml",
            "service: lifted\nprovider: {name: aws, runtime: python3.12}\nplugins: [serverless-lift]\n\
             constructs:\n  jobs:\n    type: queue\n    maxRetries: 2\n    batchSize: 4\n    \
             worker: {handler: app.handler, timeout: 5, environment: {SELF: '${construct:jobs.queueUrl}'}}\n",
        ),
        (
            "app.py",
            "import json\ndef handler(event, context):\n    for r in event['Records']:\n        print('EVENT ' + json.dumps({'body': r['body']}))\n    return {}\n",
        ),
    ]);
    let plan = s
        .cli(&["deploy", "--dry-run", path_str(dir.path())])
        .ok()
        .stdout;
    for line in [
        "queue lifted-dev-jobs visibility_timeout=30s dead_letter_queue=lifted-dev-jobs-dlq max_receive_count=2",
        "queue lifted-dev-jobs-dlq",
        "function lifted-dev-jobsWorker (python3.12, app.handler, 1024 MB, 5 s)",
        "mapping lifted-dev-jobs -> lifted-dev-jobsWorker batch_size=4 report_batch_item_failures",
        "note plugins.serverless-lift: queue constructs are made by Lambent itself",
    ] {
        assert!(plan.contains(line), "{line} not in:\n{plan}");
    }
    s.cli(&["deploy", path_str(dir.path())]).ok();
    let worker = s
        .cli(&["get", "lifted-dev-jobsWorker", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        worker["env"]["SELF"],
        format!("{}/default/lifted-dev-jobs", s.url).as_str()
    );
    s.cli(&["queue", "send", "lifted-dev-jobs", "job-1"]).ok();
    let events = eventually(60, "the job at the worker", || {
        Some(logged_events(&s, "lifted-dev-jobsWorker")).filter(|e| !e.is_empty())
    });
    assert_eq!(events[0]["body"], "job-1");
}

#[test]
fn a_lambent_yaml_maps_a_queue_and_a_tables_stream_to_its_function() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    s.cli(&["queue", "create", "jobs"]).ok();
    s.cli(&[
        "table",
        "create",
        "notes",
        "--key",
        "id:S",
        "--stream",
        "new-image",
    ])
    .ok();
    let dir = scratch(&[
        (
            "lambent.yaml",
            "name: reader\nruntime: python3.12\nhandler: app.handler\nmappings:\n  - {queue: jobs, batch_size: 2}\n  - {table: notes, starting_position: TRIM_HORIZON, max_retries: 1}\n",
        ),
        (
            "app.py",
            "import json\ndef handler(event, context):\n    for r in event['Records']:\n        print('EVENT ' + json.dumps({'source': r.get('eventSource') or r.get('EventSource')}))\n    return {}\n",
        ),
    ]);
    let out = s.cli(&["deploy", path_str(dir.path())]).ok().stdout;
    assert!(out.contains("mapping jobs -> reader"), "{out}");
    assert!(
        out.contains("mapping table notes stream -> reader"),
        "{out}"
    );
    // Again: nothing doubled.
    s.cli(&["deploy", path_str(dir.path())]).ok();
    let mappings = s.cli(&["mapping", "ls", "-o", "json"]).ok().json();
    assert_eq!(
        mappings["mappings"].as_array().unwrap().len(),
        1,
        "{mappings}"
    );
    assert_eq!(
        mappings["stream_mappings"].as_array().unwrap().len(),
        1,
        "{mappings}"
    );
    assert_eq!(
        mappings["stream_mappings"][0]["starting_position"],
        "TRIM_HORIZON"
    );
    s.cli(&["queue", "send", "jobs", "hello"]).ok();
    s.cli(&["item", "put", "notes", r#"{"id": "a"}"#]).ok();
    let sources = eventually(60, "both sources' events", || {
        let events = logged(&s, "reader", "EVENT ");
        let sources: Vec<String> = events
            .iter()
            .filter_map(|e| e["source"].as_str().map(str::to_string))
            .collect();
        (sources.len() >= 2).then_some(sources)
    });
    assert!(sources.contains(&"aws:sqs".to_string()), "{sources:?}");
    assert!(sources.contains(&"aws:dynamodb".to_string()), "{sources:?}");
}

/// Writes an app of `files` into a fresh folder.
fn scratch(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const SAM_HEAD: &str = "Transform: AWS::Serverless-2016-10-31\nResources:\n";

#[test]
fn bad_apps_are_refused_before_anything_is_deployed() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let function = "  F:\n    Type: AWS::Serverless::Function\n    Properties: {Runtime: python3.12, Handler: app.handler, CodeUri: CODE, Environment: {Variables: {Q: REF}}}\n";
    let sam = |code: &str, reference: &str, extra: &str| {
        format!(
            "{SAM_HEAD}{}  Q1:\n    Type: AWS::SQS::Queue\n{extra}",
            function.replace("CODE", code).replace("REF", reference)
        )
    };
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (
            vec![(
                "serverless.yml".into(),
                "service: x\nprovider:\n  name: aws\n  runtime: [python3.12\nfunctions: {}\n".into(),
            )],
            ": malformed YAML: ",
        ),
        (
            vec![
                ("template.yaml".into(), sam(".", "!Ref Nowhere", "")),
                ("app.py".into(), "".into()),
            ],
            "refers to 'Nowhere'",
        ),
        (
            vec![
                (
                    "template.yaml".into(),
                    format!("Parameters:\n  Size: {{Type: Number}}\n{}", sam(".", "!Ref Size", "")),
                ),
                ("app.py".into(), "".into()),
            ],
            "parameter 'Size' has no Default",
        ),
        (
            vec![
                (
                    "template.yaml".into(),
                    sam(
                        ".",
                        "!Ref Q1",
                        "    Properties: {QueueName: !GetAtt Q2.QueueName}\n  Q2:\n    Type: AWS::SQS::Queue\n    Properties: {QueueName: !Sub '${Q1}-x'}\n",
                    ),
                ),
                ("app.py".into(), "".into()),
            ],
            "cycle: Q1 → Q2 → Q1",
        ),
        (
            vec![("template.yaml".into(), sam(".", "x", ""))],
            "the handler 'app.handler' needs the file app.py",
        ),
        (
            vec![
                ("template.yaml".into(), sam("..", "x", "")),
                ("app.py".into(), "".into()),
            ],
            "Resources.F.Properties.CodeUri: the path '..' leads outside the app's folder",
        ),
        (
            vec![
                (
                    "template.yaml".into(),
                    sam(
                        ".",
                        "x",
                        "  M:\n    Type: AWS::Serverless::StateMachine\n    Properties: {DefinitionUri: ../machine.json}\n",
                    ),
                ),
                ("app.py".into(), "".into()),
            ],
            "Resources.M.Properties.DefinitionUri: the path '../machine.json' leads outside the app's folder",
        ),
    ];
    for (files, message) in cases {
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let dir = scratch(&files);
        let out = s.cli(&["deploy", path_str(dir.path())]).failed();
        assert!(out.stderr.contains(message), "{message} not in {out:?}");
        if message.contains("YAML") {
            // Where: `serverless.yml:LINE:COLUMN`, the line of the unclosed list's end.
            assert!(out.stderr.contains("serverless.yml:5:"), "{out:?}");
        }
    }
    assert!(s.cli(&["ls", "-o", "json"]).ok().stdout.contains("[]"));
    let queues = s.cli(&["queue", "ls", "-o", "json"]).ok().json();
    assert_eq!(queues["queues"], json!([]), "{queues}");
}
