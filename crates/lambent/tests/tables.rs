//! `lambent table create|ls|get|rm` and `lambent item put|get|rm|query|scan` against
//! `lambent up`: every command in plain and typed JSON, `-o json`, the errors a user meets with
//! their exit codes, and that the CLI's items are the DynamoDB API's (curl signs a GetItem
//! with `--aws-sigv4`, with a key from `lambent keys create`); and the tutorial app of
//! `examples/items-api` (HTTP routes → an unmodified Python or Node.js handler → a table,
//! through boto3 or the AWS SDK v3 inside its sandbox) deployed with `lambent deploy` and
//! driven with plain HTTP requests.

mod support;

use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};
use support::{examples, path_str, Server};

/// A SigV4-signed DynamoDB call by curl; returns (status, body).
fn dynamodb(s: &Server, key: &(String, String), operation: &str, body: &Value) -> (u16, Value) {
    let done = Command::new("curl")
        .args(["-s", "-X", "POST", "-w", "\n%{http_code}"])
        .args(["--aws-sigv4", "aws:amz:us-east-1:dynamodb"])
        .args(["--user", &format!("{}:{}", key.0, key.1)])
        .args(["-H", "content-type: application/x-amz-json-1.0"])
        .args([
            "-H",
            &format!("x-amz-target: DynamoDB_20120810.{operation}"),
        ])
        .args(["--data-binary", &body.to_string()])
        .arg(format!("{}/", s.url))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&done.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap();
    (status.parse().unwrap(), serde_json::from_str(body).unwrap())
}

/// `lambent item query orders` of the partition "alice", with `more` arguments.
fn query_alice(s: &Server, more: &[&str]) -> support::Out {
    let mut args = vec![
        "item",
        "query",
        "orders",
        "--where",
        "pk = :p",
        "--values",
        r#"{":p": "alice"}"#,
    ];
    args.extend_from_slice(more);
    s.cli(&args)
}

#[test]
fn tables_and_items_through_the_cli_are_the_dynamodb_apis() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let k = s.cli(&["keys", "create", "-o", "json"]).ok().json();
    let key = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );

    // Tables.
    assert!(s.cli(&["table", "ls"]).ok().stdout.contains("no tables"));
    let out = s
        .cli(&[
            "table",
            "create",
            "orders",
            "--key",
            "pk:S",
            "--sort",
            "sk:N",
            "--stream",
            "new-and-old",
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "created table orders (pk:S, sort sk:N)");
    let again = s
        .cli(&["table", "create", "orders", "--key", "pk:S"])
        .failed();
    assert!(
        again.stderr.contains("cannot create table 'orders'"),
        "{again:?}"
    );
    let bad = s.cli(&["table", "create", "t", "--key", "pk:X"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(
        bad.stderr.contains("S (string), N (number), B (binary)"),
        "{bad:?}"
    );
    let bad = s.cli(&["table", "create", "a b", "--key", "pk:S"]).failed();
    assert!(bad.stderr.contains("tableName"), "{bad:?}");
    let listed = s.cli(&["table", "ls", "-o", "json"]).ok().json();
    assert_eq!(listed["tables"].as_array().unwrap().len(), 1);
    assert_eq!(listed["tables"][0]["TableName"], "orders");
    let shown = s.cli(&["table", "ls"]).ok().stdout;
    assert!(shown.starts_with("NAME"), "{shown}");
    assert!(
        shown.contains("orders") && shown.contains("NEW_AND_OLD_IMAGES"),
        "{shown}"
    );

    // Items: plain JSON in and out, numbers kept exactly.
    let out = s
        .cli(&[
            "item",
            "put",
            "orders",
            r#"{"pk": "alice", "sk": 1, "total": 1.50, "tags": ["a"], "note": null}"#,
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "created item in table orders");
    let out = s
        .cli(&[
            "item",
            "put",
            "orders",
            r#"{"pk": "alice", "sk": 1, "total": 2}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(out["replaced"], true);
    assert_eq!(out["old"]["total"], json!(1.5));
    for sk in 2..=5 {
        let item = json!({"pk": "alice", "sk": sk, "total": sk * 10});
        s.cli(&["item", "put", "orders", &item.to_string()]).ok();
    }
    let big = r#"{"pk": {"S": "bob"}, "sk": {"N": "1"}, "total": {"N": "12345678901234567890123456789.5"}, "ids": {"NS": ["1", "2"]}}"#;
    s.cli_stdin(&["item", "put", "orders", "-", "--typed"], big)
        .ok();
    let got = s
        .cli(&[
            "item",
            "get",
            "orders",
            r#"{"pk": "bob", "sk": 1}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        got,
        json!({"pk": "bob", "sk": 1, "total": "12345678901234567890123456789.5", "ids": [1, 2]})
    );
    let typed = s
        .cli(&[
            "item",
            "get",
            "orders",
            r#"{"pk": {"S": "alice"}, "sk": {"N": "1"}}"#,
            "--typed",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(
        typed,
        json!({"pk": {"S": "alice"}, "sk": {"N": "1"}, "total": {"N": "2"}})
    );
    let kv = s
        .cli(&["item", "get", "orders", r#"{"pk": "alice", "sk": 1}"#])
        .ok()
        .stdout;
    assert!(kv.contains("pk:") && kv.contains("alice"), "{kv}");

    // The DynamoDB API sees the CLI's items.
    let (status, body) = dynamodb(
        &s,
        &key,
        "GetItem",
        &json!({"TableName": "orders", "Key": {"pk": {"S": "alice"}, "sk": {"N": "3"}}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["Item"]["total"], json!({"N": "30"}));

    // Query: key conditions, order, filters, limits; scan.
    let q = s
        .cli(&[
            "item",
            "query",
            "orders",
            "--where",
            "pk = :p AND sk >= :s",
            "--values",
            r#"{":p": "alice", ":s": 2}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(q["Count"], 4);
    let sks: Vec<&Value> = q["Items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["sk"])
        .collect();
    assert_eq!(sks, [&json!(2), &json!(3), &json!(4), &json!(5)]);
    let q = query_alice(
        &s,
        &[
            "--reverse",
            "--limit",
            "2",
            "--filter",
            "#t > :min",
            "--names",
            r##"{"#t": "total"}"##,
            "-o",
            "json",
        ],
    );
    // `:min` has no value: DynamoDB's ValidationException, exit code 1.
    let q = q.failed();
    assert!(q.stderr.contains(":min"), "{q:?}");
    let q = query_alice(&s, &["--reverse", "--limit", "2", "-o", "json"])
        .ok()
        .json();
    assert_eq!(q["Items"][0]["sk"], 5);
    assert_eq!(q["Items"].as_array().unwrap().len(), 2);
    let table = query_alice(&s, &[]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("pk") && lines[0].contains("total"),
        "{table}"
    );
    assert_eq!(lines.len(), 6, "{table}");
    let scan = s
        .cli(&[
            "item",
            "scan",
            "orders",
            "--filter",
            "#t >= :t",
            "--values",
            r#"{":t": 30}"#,
            "--names",
            r##"{"#t": "total"}"##,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(scan["Count"], 4, "{scan}");
    let all = s
        .cli(&["item", "scan", "orders", "--typed", "-o", "json"])
        .ok()
        .json();
    assert_eq!(all["Count"], 6);
    assert!(all["Items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["pk"]["S"].is_string()));

    // Conditions and the errors a user meets.
    let cond = s
        .cli(&[
            "item",
            "put",
            "orders",
            r#"{"pk": "alice", "sk": 2}"#,
            "--condition",
            "attribute_not_exists(pk)",
        ])
        .failed();
    assert!(
        cond.stderr.contains("conditional request failed"),
        "{cond:?}"
    );
    let not_json = s.cli(&["item", "put", "orders", "{pk: 1}"]);
    assert_eq!(not_json.code, 2, "{not_json:?}");
    assert!(not_json.stderr.contains("ITEM is not JSON"), "{not_json:?}");
    let untyped = s.cli(&["item", "put", "orders", r#"{"pk": "a"}"#, "--typed"]);
    assert_eq!(untyped.code, 2, "{untyped:?}");
    assert!(
        untyped
            .stderr
            .contains("attribute 'pk' is not a typed value"),
        "{untyped:?}"
    );
    let wrong_type = s
        .cli(&["item", "put", "orders", r#"{"pk": "a", "sk": "one"}"#])
        .failed();
    assert!(
        wrong_type.stderr.contains("Type mismatch"),
        "{wrong_type:?}"
    );
    let missing = s
        .cli(&["item", "get", "orders", r#"{"pk": "nobody", "sk": 1}"#])
        .failed();
    assert!(
        missing
            .stderr
            .contains(r#"no item with key {"pk":"nobody","sk":1} in table 'orders'"#),
        "{missing:?}"
    );
    let no_table = s.cli(&["item", "scan", "nope"]).failed();
    assert!(
        no_table.stderr.contains("cannot read table 'nope'"),
        "{no_table:?}"
    );
    assert!(no_table.stderr.contains("not found"), "{no_table:?}");

    // Deleting items and tables.
    let del = s
        .cli(&[
            "item",
            "rm",
            "orders",
            r#"{"pk": "alice", "sk": 5}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(del["deleted"]["total"], 50);
    s.cli(&["item", "rm", "orders", r#"{"pk": "alice", "sk": 5}"#])
        .failed();
    let desc = s.cli(&["table", "get", "orders", "-o", "json"]).ok().json();
    assert_eq!(desc["Table"]["ItemCount"], 5);
    let shown = s.cli(&["table", "get", "orders"]).ok().stdout;
    assert!(shown.contains("items:") && shown.contains('5'), "{shown}");
    s.cli(&["table", "rm", "orders"]).ok();
    let gone = s.cli(&["table", "get", "orders"]).failed();
    assert!(gone.stderr.contains("not found"), "{gone:?}");
    assert!(s.cli(&["table", "ls"]).ok().stdout.contains("no tables"));
}

/// A plain HTTP request by curl, without credentials; returns (status, JSON body or Null).
fn http(s: &Server, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-X", method, "-w", "\n%{http_code}"]);
    if let Some(body) = body {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    let done = cmd
        .arg(format!("{}{path}", s.url))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&done.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    (status.parse().unwrap(), body)
}

/// The item REST API of `examples/items-api` under `prefix`, backed by `table`: every route
/// with its status codes, and the items are the table's.
fn items_api_works(s: &Server, prefix: &str, table: &str) {
    let items = format!("{prefix}/items");
    // The first call may wait for the runtimes' AWS SDK (fetched once per machine): a
    // function error until then, and nothing written.
    let deadline = Instant::now() + Duration::from_secs(900);
    let tea = loop {
        let (status, body) = http(s, "POST", &items, Some(r#"{"name": "tea", "price": 3.5}"#));
        if status == 201 || Instant::now() > deadline {
            assert_eq!(status, 201, "{prefix}: {body}");
            break body;
        }
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!((&tea["name"], &tea["price"]), (&json!("tea"), &json!(3.5)));
    let tea_id = tea["id"].as_str().expect("an id").to_string();
    let (status, cake) = http(s, "POST", &items, Some(r#"{"name": "cake", "price": 4}"#));
    assert_eq!(status, 201, "{cake}");
    let cake_id = cake["id"].as_str().unwrap().to_string();
    assert_ne!(tea_id, cake_id);

    let (status, got) = http(s, "GET", &format!("{items}/{tea_id}"), None);
    assert_eq!((status, &got), (200, &tea));
    let (status, list) = http(s, "GET", &items, None);
    assert_eq!(status, 200, "{list}");
    let mut ids: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut both = [tea_id.as_str(), cake_id.as_str()];
    both.sort_unstable();
    assert_eq!(ids, both, "{list}");

    let (status, put) = http(
        s,
        "PUT",
        &format!("{items}/{tea_id}"),
        Some(r#"{"name": "green tea", "price": 4.25}"#),
    );
    assert_eq!(status, 200, "{put}");
    let (_, got) = http(s, "GET", &format!("{items}/{tea_id}"), None);
    assert_eq!(
        got,
        json!({"id": tea_id, "name": "green tea", "price": 4.25})
    );
    // The handler's items are the table's.
    let cli = s
        .cli(&[
            "item",
            "get",
            table,
            &json!({"id": tea_id}).to_string(),
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(cli["name"], "green tea", "{cli}");

    // Missing items, bad bodies.
    let (status, _) = http(s, "GET", &format!("{items}/nope"), None);
    assert_eq!(status, 404);
    let (status, _) = http(s, "PUT", &format!("{items}/nope"), Some(r#"{"name": "x"}"#));
    assert_eq!(status, 404, "a PUT of a missing item creates nothing");
    let (status, _) = http(s, "GET", &format!("{items}/nope"), None);
    assert_eq!(status, 404);
    let (status, bad) = http(s, "POST", &items, Some("{not json"));
    assert_eq!(status, 400, "{bad}");

    let (status, gone) = http(s, "DELETE", &format!("{items}/{tea_id}"), None);
    assert_eq!((status, gone), (204, Value::Null));
    let (status, _) = http(s, "GET", &format!("{items}/{tea_id}"), None);
    assert_eq!(status, 404);
    let (status, _) = http(s, "DELETE", &format!("{items}/{tea_id}"), None);
    assert_eq!(status, 404);
    let (_, list) = http(s, "GET", &items, None);
    assert_eq!(list["items"], json!([cake]), "{list}");
}

#[test]
fn the_items_api_example_serves_a_rest_api_from_python_and_node() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    for table in ["items-py", "items-js"] {
        s.cli(&["table", "create", table, "--key", "id:S"]).ok();
    }
    let app = examples().join("items-api");
    let out = s.cli(&["deploy", path_str(&app)]).ok();
    assert!(
        out.stdout.contains("items-python") && out.stdout.contains("items-node"),
        "{out:?}"
    );
    items_api_works(&s, "/py", "items-py");
    items_api_works(&s, "/js", "items-js");
}
