//! Tenants on a real node: every route of the listener has an access rule and each role gets
//! exactly its operations (table-driven, over the router's own list of paths); two tenants
//! with functions, activations, dead letters, queues, topics, routes, schedules, mappings,
//! buckets, tables, workflows and keys, where every `/v1` path with the other tenant's key on
//! the first one's names and ids is refused or not found with nothing of the first in the
//! answer, the AWS APIs (boto3) see nothing of it, `/metrics` shows none of its series; a
//! namespace's deletion refuses while it holds anything, and with `force` leaves nothing.

mod common;

use common::{eventually, node, Node, ADMIN};
use lambent_aws_api::sigv4;
use lambent_core::tenancy::{Role, NAMESPACE_ROLES};
use lambent_gateway::access;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;

const HELLO: &str = r#"
import json

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    print(json.dumps({"msg": event.get("msg", "hi")}))
    return {"ok": True, "arn": context.invoked_function_arn}
"#;

/// A namespace made by the operator, with an API key and an AWS access key of every role.
struct Tenant {
    name: String,
    keys: HashMap<Role, String>,
    aws: HashMap<Role, (String, String)>,
}

impl Tenant {
    fn key(&self, role: Role) -> &str {
        &self.keys[&role]
    }
    fn owner(&self) -> &str {
        self.key(Role::Owner)
    }
}

async fn call(
    node: &Node,
    key: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    node.call_as(key, method, path, body).await
}

async fn ok(node: &Node, key: &str, method: Method, path: &str, body: Value) -> Value {
    node.ok_as(key, method, path, body).await
}

async fn tenant(node: &Node, name: &str) -> Tenant {
    let created = ok(
        node,
        ADMIN,
        Method::POST,
        "/v1/namespaces",
        json!({"name": name, "concurrency": 20}),
    )
    .await;
    let owner = created["owner_key"]["secret"].as_str().unwrap().to_string();
    let mut keys = HashMap::from([(Role::Owner, owner.clone())]);
    let mut aws = HashMap::new();
    for role in NAMESPACE_ROLES {
        if role != Role::Owner {
            let k = ok(
                node,
                &owner,
                Method::POST,
                "/v1/api-keys",
                json!({"role": role}),
            )
            .await;
            keys.insert(role, k["secret"].as_str().unwrap().to_string());
        }
        let k = ok(
            node,
            &owner,
            Method::POST,
            "/v1/keys",
            json!({"role": role}),
        )
        .await;
        let pair = (
            k["access_key_id"].as_str().unwrap().to_string(),
            k["secret_access_key"].as_str().unwrap().to_string(),
        );
        aws.insert(role, pair);
    }
    Tenant {
        name: name.into(),
        keys,
        aws,
    }
}

/// `path` with each `{param}` (or `{*param}`) replaced by `value(param)`.
fn fill(path: &str, value: impl Fn(&str) -> String) -> String {
    path.split('/')
        .map(
            |seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) => value(p.trim_start_matches('*')),
                None => seg.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// A request to the Lambda API signed with an access key.
async fn signed(
    node: &Node,
    key: &(String, String),
    method: Method,
    path: &str,
) -> (StatusCode, String) {
    let url = node.url(path);
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("host", host.parse().unwrap());
    sigv4::Signer {
        access_key_id: &key.0,
        secret: &key.1,
        region: lambent_server::DEFAULT_REGION,
        service: "lambda",
    }
    .sign(
        method.as_str(),
        path,
        &mut headers,
        b"",
        time::OffsetDateTime::now_utc(),
    );
    let r = node
        .http
        .request(method, url)
        .headers(headers)
        .send()
        .await
        .unwrap();
    let kind = common::header(r.headers(), "x-amzn-errortype").to_string();
    (r.status(), kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_has_a_rule_and_each_role_gets_exactly_its_operations() {
    let node = node().await;
    let t = tenant(&node, "team-roles").await;
    let served = node.server.as_ref().unwrap().served_routes().to_vec();
    assert!(
        served.len() > 100,
        "the router lists too few routes: {served:?}"
    );
    let mut checked = 0;
    for (method, path) in &served {
        let rule = access::rule_of(method, path).unwrap_or_else(|| {
            panic!("{method} {path} has no access rule: add it to lambent_gateway::access::RULES")
        });
        let concrete = fill(path, |_| "x".into());
        let Some(need) = access::need(method, path, &concrete).unwrap() else {
            continue;
        };
        // The console's gate is its session (checked with the same table in console.rs).
        if path.starts_with("/ui") {
            continue;
        }
        let method: Method = method.parse().unwrap();
        for role in NAMESPACE_ROLES {
            let denied = if path.starts_with("/20") {
                let (s, kind) = signed(&node, &t.aws[&role], method.clone(), &concrete).await;
                s == StatusCode::FORBIDDEN && kind.starts_with("AccessDeniedException")
            } else {
                let (s, v) = call(&node, t.key(role), method.clone(), &concrete, Value::Null).await;
                s == StatusCode::FORBIDDEN && v["error"]["code"] == "AccessDenied"
            };
            assert_eq!(denied, !role.may(need), "{role} {method} {path} ({rule:?})");
            checked += 1;
        }
    }
    // A method a path does not serve is 405, not a refusal.
    let (s, v) = call(&node, ADMIN, Method::PATCH, "/v1/functions/x", Value::Null).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    // Every rule names a route the router serves (no stale rules).
    for r in access::RULES
        .iter()
        .filter(|r| r.method != "*" && r.method != "HEAD")
    {
        assert!(
            served.iter().any(|(m, p)| m == r.method && p == r.path),
            "the rule {} {} names no route",
            r.method,
            r.path
        );
    }
    assert!(checked > 300, "only {checked} role checks ran");
}

/// What a tenant made, by the names its resources have.
struct Holdings {
    function: String,
    activation: String,
    trace: String,
    dead_letter: String,
    queue: String,
    topic: String,
    subscription: String,
    route: String,
    route_path: String,
    schedule: String,
    mapping: String,
    bucket: String,
    table: String,
    workflow: String,
    execution: String,
    api_key: String,
    code: String,
}

impl Holdings {
    /// The value of a path parameter naming this tenant's resource in `path`.
    fn param(&self, path: &str, param: &str) -> String {
        let first = path.split('/').nth(2).unwrap_or("");
        let v = match (first, param) {
            ("functions" | "sequences", "name") => &self.function,
            ("queues", "name") => &self.queue,
            ("topics", "name") => &self.topic,
            ("schedules", "name") => &self.schedule,
            ("tables", "name") => &self.table,
            ("workflows", "name") => &self.workflow,
            ("activations", "id") => &self.activation,
            ("dlq", "id") => &self.dead_letter,
            ("routes", "id") => &self.route,
            ("subscriptions", "id") => &self.subscription,
            ("mappings", "id") => &self.mapping,
            ("api-keys", "id") => &self.api_key,
            (_, "bucket") => &self.bucket,
            (_, "execution") => &self.execution,
            (_, "trace_id") => &self.trace,
            (_, "sha256") => &self.code,
            (_, "operation") => return "GetItem".into(),
            (_, "key") => return "k".into(),
            (_, "alias") => return "live".into(),
            _ => return "x".into(),
        };
        v.clone()
    }

    /// Every name of it, which no answer to another tenant may hold.
    fn names(&self) -> Vec<&str> {
        vec![
            &self.function,
            &self.queue,
            &self.topic,
            &self.route_path,
            &self.schedule,
            &self.bucket,
            &self.table,
            &self.workflow,
        ]
    }
}

/// Fills a tenant with one of everything, named with `p`.
async fn populate(node: &Node, t: &Tenant, p: &str) -> Holdings {
    let key = t.owner();
    let function = format!("{p}-fn");
    let settings =
        json!({"runtime": "python3.12", "handler": "app.handler", "async": {"max_retries": 0}});
    let (s, v) = node
        .deploy_as(key, &function, settings, &[("app.py", HELLO)])
        .await;
    assert!(s.is_success(), "{v}");
    let code = v["code_sha256"].as_str().unwrap().to_string();
    let secret = format!("secret-of-{p}");
    let path = format!("/v1/functions/{function}/invoke");
    let (s, h, _) = node
        .send_as(
            key,
            Method::POST,
            &path,
            json!({"msg": secret}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let activation = common::header(&h, "lambent-activation-id").to_string();
    let (s, _, _) = node
        .send_as(
            key,
            Method::POST,
            &format!("{path}?async=true"),
            br#"{"fail": true}"#.to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let dead_letter = eventually(60, "a dead letter", || async {
        let v = ok(node, key, Method::GET, "/v1/dlq", Value::Null).await;
        v["dead_letters"][0]["id"].as_str().map(str::to_string)
    })
    .await;
    let a = ok(
        node,
        key,
        Method::GET,
        &format!("/v1/activations/{activation}"),
        Value::Null,
    )
    .await;
    let trace = a["trace"]["trace_id"].as_str().unwrap_or("0").to_string();

    let queue = format!("{p}-queue");
    ok(
        node,
        key,
        Method::POST,
        "/v1/queues",
        json!({"name": queue}),
    )
    .await;
    ok(
        node,
        key,
        Method::POST,
        &format!("/v1/queues/{queue}/messages"),
        json!({"body": secret}),
    )
    .await;
    let mapped = format!("{p}-mq");
    ok(
        node,
        key,
        Method::POST,
        "/v1/queues",
        json!({"name": mapped}),
    )
    .await;
    let m = ok(
        node,
        key,
        Method::POST,
        "/v1/mappings",
        json!({"queue": mapped, "function": function}),
    )
    .await;
    let topic = format!("{p}-topic");
    ok(
        node,
        key,
        Method::POST,
        "/v1/topics",
        json!({"name": topic}),
    )
    .await;
    let sub = ok(
        node,
        key,
        Method::POST,
        &format!("/v1/topics/{topic}/subscriptions"),
        json!({"queue": queue}),
    )
    .await;
    let route_path = format!("/{p}-route");
    let r = ok(
        node,
        key,
        Method::POST,
        "/v1/routes",
        json!({"method": "GET", "path": route_path, "function": function, "auth": "key"}),
    )
    .await;
    let schedule = format!("{p}-sched");
    ok(
        node,
        key,
        Method::POST,
        "/v1/schedules",
        json!({"name": schedule, "function": function, "cron": "0 0 3 * * *"}),
    )
    .await;
    let bucket = format!("{p}-bucket-{}", std::process::id());
    ok(
        node,
        key,
        Method::PUT,
        &format!("/v1/buckets/{bucket}"),
        Value::Null,
    )
    .await;
    let (s, _, v) = node
        .send_as(
            key,
            Method::PUT,
            &format!("/v1/buckets/{bucket}/objects/k"),
            secret.clone().into_bytes(),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let table = format!("{p}-table");
    let definition = json!({
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    });
    ok(
        node,
        key,
        Method::PUT,
        &format!("/v1/tables/{table}"),
        definition,
    )
    .await;
    let item = json!({"Item": {"id": {"S": "1"}, "v": {"S": secret}}});
    ok(
        node,
        key,
        Method::POST,
        &format!("/v1/tables/{table}/PutItem"),
        item,
    )
    .await;
    let workflow = format!("{p}-wf");
    let definition = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    ok(
        node,
        key,
        Method::PUT,
        &format!("/v1/workflows/{workflow}"),
        json!({"definition": definition}),
    )
    .await;
    let e = ok(
        node,
        key,
        Method::POST,
        &format!("/v1/workflows/{workflow}/executions"),
        json!({"input": {"s": secret}}),
    )
    .await;
    let k = ok(
        node,
        key,
        Method::POST,
        "/v1/api-keys",
        json!({"role": "viewer"}),
    )
    .await;
    Holdings {
        function,
        activation,
        trace,
        dead_letter,
        queue,
        topic,
        subscription: sub["id"].as_str().unwrap_or_default().to_string(),
        route: r["id"].as_str().unwrap().to_string(),
        route_path,
        schedule,
        mapping: m["id"].as_str().unwrap().to_string(),
        bucket,
        table,
        workflow,
        execution: e["name"].as_str().unwrap_or("x").to_string(),
        api_key: k["key_id"].as_str().unwrap().to_string(),
        code,
    }
}

fn venv() -> PathBuf {
    lambent_testkit::python::venv(&["boto3"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_one_tenant_reaches_another() {
    let node = node().await;
    let a = tenant(&node, "tenant-a").await;
    let b = tenant(&node, "tenant-b").await;
    let ha = populate(&node, &a, "a").await;
    let hb = populate(&node, &b, "b").await;
    let leaks = |text: &str| -> Vec<String> {
        let mut found: Vec<String> = ["secret-of-a", "tenant-a"]
            .into_iter()
            .filter(|m| text.contains(m))
            .map(str::to_string)
            .collect();
        found.extend(
            ha.names()
                .into_iter()
                .filter(|n| text.contains(n))
                .map(str::to_string),
        );
        found
    };

    // Every /v1 path, with B's owner key, on A's names and ids.
    let served = node.server.as_ref().unwrap().served_routes().to_vec();
    let mut probes = 0;
    for (method, path) in served
        .iter()
        .filter(|(_, p)| p.starts_with("/v1/") || p == "/metrics")
    {
        if path.starts_with("/v1/namespaces") || path == "/v1/cluster/link" {
            continue; // the operator's; the cluster's link
        }
        let has_params = path.contains('{');
        let method: Method = method.parse().unwrap();
        {
            // Creating or replacing under a name makes B's own resource of that name: not a
            // cross-tenant access (names are per namespace). Reads, deletes and actions on
            // a named resource are.
            let acts_on_existing = method == Method::GET
                || method == Method::DELETE
                || (method == Method::POST && has_params);
            if !acts_on_existing {
                continue;
            }
            let concrete = fill(path, |param| ha.param(path, param));
            let (s, v) = call(&node, b.owner(), method.clone(), &concrete, Value::Null).await;
            if path == "/v1/audit" {
                // B's own log names what B asked for; none of it is A's.
                let entries = v["entries"].as_array().unwrap();
                assert!(
                    entries.iter().all(|e| e["namespace"] == b.name.as_str()),
                    "{v}"
                );
                continue;
            }
            let text = v.to_string();
            // Names B sent come back in "does not exist" messages; nothing else of A may.
            let echoed: Vec<&str> = concrete.split('/').collect();
            let found: Vec<String> = leaks(&text)
                .into_iter()
                .filter(|l| !(s.is_client_error() && echoed.contains(&l.as_str())))
                .collect();
            assert!(
                found.is_empty(),
                "{method} {concrete} with B's key showed {found:?}: {s} {v}"
            );
            if has_params && path != "/v1/code/{sha256}" && path != "/v1/traces/{trace_id}" {
                assert!(
                    s.is_client_error(),
                    "{method} {concrete} with B's key on A's resource: {s} {v}"
                );
            }
            probes += 1;
        }
    }
    assert!(probes > 50, "only {probes} probes");

    // A's route refuses B's key; A's key runs it.
    let url = node.url(&ha.route_path);
    let r = node
        .http
        .get(&url)
        .bearer_auth(b.owner())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = node
        .http
        .get(&url)
        .bearer_auth(a.key(Role::Invoker))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Nothing of A was changed by B's attempts.
    for path in [
        format!("/v1/functions/{}", ha.function),
        format!("/v1/queues/{}", ha.queue),
        format!("/v1/routes/{}", ha.route),
        format!("/v1/schedules/{}", ha.schedule),
        format!("/v1/dlq/{}", ha.dead_letter),
        format!("/v1/tables/{}", ha.table),
        format!("/v1/workflows/{}", ha.workflow),
        format!("/v1/buckets/{}/objects/k", ha.bucket),
    ] {
        ok(&node, a.owner(), Method::GET, &path, Value::Null).await;
    }

    // `/metrics`: B sees its own series and none of A's; the operator sees both.
    let metrics = |key: String| {
        let http = node.http.clone();
        let url = node.url("/metrics");
        async move {
            http.get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let seen_by_b = metrics(b.owner().to_string()).await;
    assert!(seen_by_b.contains("namespace=\"tenant-b\""), "{seen_by_b}");
    assert!(!seen_by_b.contains("tenant-a"), "{seen_by_b}");
    let seen_by_operator = metrics(ADMIN.to_string()).await;
    assert!(
        seen_by_operator.contains("namespace=\"tenant-a\"")
            && seen_by_operator.contains("namespace=\"tenant-b\"")
    );

    // The AWS APIs with B's access key: none of A's functions, queues, topics, tables,
    // buckets; ARNs name B's account.
    let (id, secret) = &b.aws[&Role::Owner];
    let names = [
        ha.function.as_str(),
        &ha.queue,
        &ha.topic,
        &ha.table,
        &ha.bucket,
        &hb.function,
        &a.name,
        &b.name,
    ];
    let args: Vec<&str> = std::iter::once("tenants.py").chain(names).collect();
    let out = boto3(&node, &args, id, secret).await;
    assert!(out.contains("tenants ok"), "{out}");
}

// ---- what a namespace leaves behind ----------------------------------------------------

/// Rows of the node's store for an SQL query, each column as text: the SQLite file of its
/// data dir, or its cluster's PostgreSQL database.
fn sql(node: &Node, query: &str) -> Vec<Vec<String>> {
    if let Some((pg, _)) = &node.cluster {
        let database = pg.rsplit('/').next().unwrap();
        let out = lambent_testkit::postgres::PgServer::shared().psql_in(database, query);
        return out
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect();
    }
    use rusqlite::types::ValueRef;
    let path = node._data.path().join("lambent.db");
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(query)
        .unwrap_or_else(|e| panic!("{query}: {e}"));
    let columns = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..columns)
                .map(|i| {
                    Ok(match r.get_ref(i)? {
                        ValueRef::Null => String::new(),
                        ValueRef::Integer(n) => n.to_string(),
                        ValueRef::Real(x) => x.to_string(),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    })
                })
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .unwrap();
    rows.collect::<rusqlite::Result<_>>().unwrap()
}

/// The first column of a query's rows.
fn column(node: &Node, query: &str) -> Vec<String> {
    sql(node, query)
        .into_iter()
        .map(|mut r| r.remove(0))
        .collect()
}

/// `'a', 'b'` for an SQL `IN (…)` (the values are the test's own names and ids).
fn literals(values: &[String]) -> String {
    let quoted: Vec<String> = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect();
    quoted.join(", ")
}

/// Tables whose rows belong to no namespace.
const SHARED_TABLES: &[&str] = &[
    "sqlite_sequence",
    "refinery_schema_history",
    "nodes",
    "cluster_identity",
];

/// Tables without a `namespace` column whose rows belong to a namespace through a parent: the
/// column naming the parent, and the query of the parents' keys (`{ns}`: the namespace).
const CHILD_TABLES: &[(&str, &str, &str)] = &[
    ("objects", "bucket", BUCKETS_OF),
    ("uploads", "bucket", BUCKETS_OF),
    (
        "upload_parts",
        "upload_id",
        "SELECT u.id FROM uploads u JOIN buckets b ON u.bucket = b.name WHERE b.namespace = {ns}",
    ),
    ("ddb_items", "table_id", DDB_TABLES_OF),
    ("ddb_index_entries", "table_id", DDB_TABLES_OF),
    ("ddb_stream_records", "table_id", DDB_TABLES_OF),
    (
        "execution_events",
        "execution_arn",
        "SELECT arn FROM executions WHERE namespace = {ns}",
    ),
    (
        "rollup_backfill",
        "id",
        "SELECT id FROM activations WHERE namespace = {ns}",
    ),
];
const BUCKETS_OF: &str = "SELECT name FROM buckets WHERE namespace = {ns}";
const DDB_TABLES_OF: &str = "SELECT id FROM ddb_tables WHERE namespace = {ns}";

/// Where a namespace's rows are in the store: for each table, the query counting them. Every
/// table is accounted for: one the test cannot place fails it (say where its rows belong, and
/// make the purge delete them). Parents' keys are read now, so the queries still find
/// children whose parents are gone.
fn rows_of(node: &Node, ns: &str) -> Vec<(String, String)> {
    let tables = if node.cluster.is_some() {
        column(
            node,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = \
             current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
        )
    } else {
        column(
            node,
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
    };
    assert!(tables.len() > 30, "too few tables: {tables:?}");
    let ns_literal = literals(&[ns.to_string()]);
    let mut out = Vec::new();
    for table in tables {
        if SHARED_TABLES.contains(&table.as_str()) {
            continue;
        }
        let columns = if node.cluster.is_some() {
            column(
                node,
                &format!(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = \
                     current_schema() AND table_name = '{table}'"
                ),
            )
        } else {
            column(
                node,
                &format!("SELECT name FROM pragma_table_info('{table}')"),
            )
        };
        let count = if table == "namespaces" {
            format!("SELECT count(*) FROM namespaces WHERE name = {ns_literal}")
        } else if columns.iter().any(|c| c == "namespace") {
            format!("SELECT count(*) FROM \"{table}\" WHERE namespace = {ns_literal}")
        } else {
            let Some((_, col, parents)) = CHILD_TABLES.iter().find(|(t, ..)| *t == table) else {
                panic!(
                    "table {table} has no namespace column and the test does not know whose \
                     its rows are: add it to CHILD_TABLES (and see that a purge deletes them)"
                )
            };
            let keys = column(node, &parents.replace("{ns}", &ns_literal));
            if keys.is_empty() {
                "SELECT 0".to_string()
            } else {
                format!(
                    "SELECT count(*) FROM \"{table}\" WHERE {col} IN ({})",
                    literals(&keys)
                )
            }
        };
        out.push((table, count));
    }
    out
}

/// Each table's rows of a namespace, by the queries of [`rows_of`].
fn count_rows(node: &Node, queries: &[(String, String)]) -> HashMap<String, u64> {
    queries
        .iter()
        .map(|(table, q)| (table.clone(), column(node, q)[0].parse().unwrap()))
        .collect()
}

/// The data locators of a namespace's objects and parts of unfinished uploads.
fn locators_of(node: &Node, ns: &str) -> Vec<String> {
    let ns = literals(&[ns.to_string()]);
    let mut out = column(
        node,
        &format!(
            "SELECT p.locator FROM upload_parts p JOIN uploads u ON p.upload_id = u.id \
             JOIN buckets b ON u.bucket = b.name WHERE b.namespace = {ns}"
        ),
    );
    for data in column(
        node,
        &format!(
            "SELECT o.data FROM objects o JOIN buckets b ON o.bucket = b.name \
             WHERE b.namespace = {ns}"
        ),
    ) {
        let segments: Vec<Value> = serde_json::from_str(&data).unwrap();
        out.extend(
            segments
                .iter()
                .map(|s| s["locator"].as_str().unwrap().to_string()),
        );
    }
    out
}

/// Which of `locators` have their data stored (a file on the node's disk, or a piece in the
/// cluster's NATS bucket).
async fn stored_data(node: &Node, locators: &[String]) -> Vec<String> {
    let stored: Vec<String> = common::data_files(node)
        .await
        .iter()
        .filter_map(|p| Some(p.file_name()?.to_str()?.to_string()))
        .collect();
    locators
        .iter()
        .filter(|l| stored.contains(l))
        .cloned()
        .collect()
}

/// A process of a namespace's sandboxes: its pid, user id and command line, and whether it
/// was made ahead (a cgroup `sb-ready-…`: the pools make those under the namespace of the
/// latest cold start, and any later cold start may claim one).
#[derive(Debug, Clone, PartialEq)]
struct SandboxProcess {
    pid: i32,
    uid: u64,
    cmdline: String,
    made_ahead: bool,
}

/// User ids at and above this are package zygotes' (`lambent_sandbox`'s `PackageUid`s).
const PACKAGE_ZYGOTE_UIDS: u64 = 0x7000_0000;

/// Every live process, found by scanning `/proc`, in a cgroup of namespace `ns` of this test
/// process's nodes (`…/host-<pid>-<n>/ns-<ns>[/…]`): its sandboxes, its package zygotes,
/// anything they started.
fn processes_of(ns: &str) -> Vec<SandboxProcess> {
    let tenants = format!("/host-{}-", std::process::id());
    let own = format!("ns-{ns}");
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let path = cgroups
            .lines()
            .map(|l| l.splitn(3, ':').nth(2).unwrap_or(""))
            .find(|path| path.contains(&tenants) && path.split('/').any(|c| c == own));
        let Some(path) = path else {
            continue;
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        if zombie {
            continue;
        }
        let uid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|u| u.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        out.push(SandboxProcess {
            pid,
            uid,
            cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
            made_ahead: std::path::Path::new(path)
                .ancestors()
                .any(lambent_sandbox::made_ahead_cgroup),
        });
    }
    out
}

/// A function whose code ships a package: after its first cold start (forked from the base
/// zygote) it gets a package zygote of its own, under its namespace's cgroup.
const VENDORED: [(&str, &str); 2] = [
    (
        "app.py",
        "import vendored\ndef handler(event, context):\n    return vendored.VALUE\n",
    ),
    ("vendored/__init__.py", "VALUE = 7\n"),
];

/// Starts a multipart upload of `key` in `bucket` with one part, and leaves it unfinished.
const UNFINISHED_UPLOAD_PY: &str = r#"
import sys, boto3
from lambent_boto3 import ENDPOINT, REGION
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)
bucket, key = sys.argv[1:3]
upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"part " * 1000)
print("unfinished", upload)
"#;

/// Fills a namespace with everything a forced delete must take: [`populate`]'s records, a
/// message received and not deleted beside visible ones, an unfinished multipart upload, a
/// claimed host name, a warm sandbox and a package zygote.
async fn fill_everything(node: &Node, t: &Tenant, p: &str, host: &str) -> Holdings {
    let h = populate(node, t, p).await;
    let key = t.owner();
    let messages = format!("/v1/queues/{}/messages", h.queue);
    for body in ["visible", "in flight"] {
        ok(node, key, Method::POST, &messages, json!({ "body": body })).await;
    }
    let publish = format!("/v1/topics/{}/publish", h.topic);
    ok(
        node,
        key,
        Method::POST,
        &publish,
        json!({"message": "fanned out"}),
    )
    .await;
    let receive = format!("/v1/queues/{}/receive", h.queue);
    let got = ok(
        node,
        key,
        Method::POST,
        &receive,
        json!({"max": 1, "visibility_timeout": 3600}),
    )
    .await;
    assert_eq!(got["messages"].as_array().map(Vec::len), Some(1), "{got}");

    let (id, secret) = &t.aws[&Role::Owner];
    let args = ["-c", UNFINISHED_UPLOAD_PY, &h.bucket, "big"];
    let out = boto3(node, &args, id, secret).await;
    assert!(out.contains("unfinished"), "{out}");

    let (s, v) = call(
        node,
        ADMIN,
        Method::POST,
        &format!("/v1/namespaces/{}/hosts", t.name),
        json!({ "host": host }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    let (s, v) = node.deploy_as(key, "vendoring", settings, &VENDORED).await;
    assert!(s.is_success(), "{v}");
    let (s, _, v) = node.invoke_as(key, "vendoring", "{}").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    eventually(60, "the namespace's package zygote", || async {
        processes_of(&t.name)
            .iter()
            .any(|p| p.uid >= PACKAGE_ZYGOTE_UIDS)
            .then_some(())
    })
    .await;
    h
}

/// What the test sees of a namespace where it lives: its rows in every table, its processes,
/// its cgroup directories, its object data.
struct Traces {
    queries: Vec<(String, String)>,
    rows: HashMap<String, u64>,
    processes: Vec<SandboxProcess>,
    cgroups: Vec<PathBuf>,
    locators: Vec<String>,
}

async fn traces(node: &Node, ns: &str) -> Traces {
    let queries = rows_of(node, ns);
    let locators = locators_of(node, ns);
    Traces {
        rows: count_rows(node, &queries),
        queries,
        processes: processes_of(ns),
        cgroups: node
            .server
            .as_ref()
            .unwrap()
            .tenant_cgroup_dirs(ns)
            .unwrap(),
        locators,
    }
}

/// Tables a filled namespace must have rows in (so that the check after its deletion means
/// something).
const FILLED_TABLES: &[&str] = &[
    "functions",
    "activations",
    "activation_rollups",
    "dead_letters",
    "queues",
    "queue_messages",
    "topics",
    "topic_subscriptions",
    "event_source_mappings",
    "schedules",
    "routes",
    "namespace_hosts",
    "buckets",
    "objects",
    "uploads",
    "upload_parts",
    "ddb_tables",
    "ddb_items",
    "state_machines",
    "executions",
    "execution_events",
    "api_keys",
    "access_keys",
    "audit",
    "namespaces",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_is_deleted_only_empty_or_with_force_and_leaves_nothing() {
    let node = node().await;
    common::await_python_zygote(&node).await;
    let t = tenant(&node, "short-lived").await;
    let kept = tenant(&node, "kept-on").await;
    let (host, kept_host) = ("api.short-lived.example", "api.kept-on.example");
    let h = fill_everything(&node, &t, "gone", host).await;
    let hk = fill_everything(&node, &kept, "kept", kept_host).await;
    // Its route answers on its host name.
    let routed = |host: &'static str, path: String, key: String| {
        let node = &node;
        async move {
            let port = node.url("").rsplit(':').next().unwrap().to_string();
            let r = node
                .http
                .get(node.url(&path))
                .header("host", format!("{host}:{port}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            r.status()
        }
    };
    let invoker = t.key(Role::Invoker).to_string();
    assert_eq!(
        routed(host, h.route_path.clone(), invoker.clone()).await,
        StatusCode::OK
    );
    // Every record is written (activation records leave in batches).
    eventually(30, "the activation records", || async {
        let rows = count_rows(&node, &rows_of(&node, "short-lived"));
        (rows["activations"] >= 3).then_some(())
    })
    .await;

    let before = traces(&node, "short-lived").await;
    let empty: Vec<&str> = FILLED_TABLES
        .iter()
        .copied()
        .filter(|t| before.rows.get(*t).copied().unwrap_or(0) == 0)
        .collect();
    assert!(
        empty.is_empty(),
        "not filled: {empty:?} of {:?}",
        before.rows
    );
    assert!(
        before
            .processes
            .iter()
            .any(|p| p.uid >= PACKAGE_ZYGOTE_UIDS)
            && before
                .processes
                .iter()
                .any(|p| p.uid < PACKAGE_ZYGOTE_UIDS && !p.made_ahead),
        "a warm sandbox and a package zygote: {:?}",
        before.processes
    );
    assert!(
        !before.cgroups.is_empty() && before.cgroups.iter().all(|d| d.is_dir()),
        "{:?}",
        before.cgroups
    );
    assert!(before.locators.len() >= 2, "{:?}", before.locators);
    assert_eq!(stored_data(&node, &before.locators).await, before.locators);
    let other = traces(&node, "kept-on").await;
    assert!(
        other.processes.iter().any(|p| !p.made_ahead),
        "{:?}",
        other.processes
    );

    let path = "/v1/namespaces/short-lived";
    let (s, v) = call(&node, ADMIN, Method::DELETE, path, Value::Null).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("functions"),
        "{v}"
    );
    // Only the operator deletes namespaces.
    let (s, _) = call(
        &node,
        t.owner(),
        Method::DELETE,
        &format!("{path}?force=true"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, v) = call(
        &node,
        ADMIN,
        Method::DELETE,
        &format!("{path}?force=true"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = call(&node, ADMIN, Method::GET, path, Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Nothing of it is left where it lived: no row in any table, no process, no cgroup, no
    // object data.
    let left: Vec<(String, u64)> = count_rows(&node, &before.queries)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(left.is_empty(), "rows left behind: {left:?}");
    assert_eq!(processes_of("short-lived"), []);
    for d in &before.cgroups {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    assert_eq!(
        stored_data(&node, &before.locators).await,
        Vec::<String>::new()
    );

    // Its keys are refused: API keys and access keys.
    for role in NAMESPACE_ROLES {
        let (s, _) = call(
            &node,
            t.key(role),
            Method::GET,
            "/v1/functions",
            Value::Null,
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{role}");
        let (s, kind) = signed(&node, &t.aws[&role], Method::GET, "/2015-03-31/functions").await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role}: {kind}");
    }
    // Its route answers nothing, on its host or any other; its host name and its bucket's
    // name are free.
    assert_eq!(
        routed(host, h.route_path.clone(), invoker.clone()).await,
        StatusCode::NOT_FOUND
    );
    let r = node.http.get(node.url(&h.route_path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let fresh = tenant(&node, "after").await;
    let (s, v) = call(
        &node,
        ADMIN,
        Method::POST,
        "/v1/namespaces/after/hosts",
        json!({ "host": host }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    ok(
        &node,
        fresh.owner(),
        Method::PUT,
        &format!("/v1/buckets/{}", h.bucket),
        Value::Null,
    )
    .await;
    // The operator cannot act in it any more.
    let r = node
        .http
        .get(node.url("/v1/activations"))
        .bearer_auth(ADMIN)
        .header("lambent-namespace", "short-lived")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // The audit log kept the deletion (in the operator's namespace), not the deleted one's.
    let audit = ok(&node, ADMIN, Method::GET, "/v1/audit", Value::Null).await;
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["method"] == "DELETE" && e["target"] == "short-lived" && e["status"] == 204));
    assert!(!entries.iter().any(|e| e["namespace"] == "short-lived"));

    // The other namespace has all it had: rows, processes (but those made ahead, which any
    // cold start may have claimed meanwhile), cgroups, data, route, keys.
    let now = traces(&node, "kept-on").await;
    for (table, n) in &other.rows {
        assert!(
            now.rows[table] >= *n,
            "{table}: {n} rows before, {} now",
            now.rows[table]
        );
    }
    for p in other.processes.iter().filter(|p| !p.made_ahead) {
        assert!(
            now.processes.contains(p),
            "{p:?} of the other namespace is gone"
        );
    }
    assert!(other.cgroups.iter().all(|d| d.is_dir()));
    assert_eq!(stored_data(&node, &other.locators).await, other.locators);
    let kept_invoker = kept.key(Role::Invoker).to_string();
    assert_eq!(
        routed(kept_host, hk.route_path.clone(), kept_invoker).await,
        StatusCode::OK
    );
    ok(
        &node,
        kept.owner(),
        Method::GET,
        "/v1/functions",
        Value::Null,
    )
    .await;
}

/// `GET path` on the main listener with `Host: host` (port kept, as browsers send it): the
/// status and the body.
async fn get_on_host(node: &Node, host: &str, path: &str) -> (StatusCode, String) {
    let port = node.url("").rsplit(':').next().unwrap().to_string();
    let r = node
        .http
        .get(node.url(path))
        .header("host", format!("{host}:{port}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_names_give_namespaces_their_own_path_spaces() {
    let node = node().await;
    let a = tenant(&node, "host-a").await;
    let b = tenant(&node, "host-b").await;
    let hello = |ns: &str| {
        format!(
            "def handler(event, context):\n    return {{'statusCode': 200, 'body': 'from {ns}'}}\n"
        )
    };
    for (key, ns) in [
        (a.owner(), "host-a"),
        (b.owner(), "host-b"),
        (common::KEY, "default"),
    ] {
        let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
        let (s, v) = node
            .deploy_as(key, "hello", settings, &[("app.py", &hello(ns))])
            .await;
        assert!(s.is_success(), "{v}");
    }
    let claim = |ns: &str, host: &str| {
        let (path, body) = (
            format!("/v1/namespaces/{ns}/hosts"),
            json!({ "host": host }),
        );
        let node = &node;
        async move { call(node, ADMIN, Method::POST, &path, body).await }
    };
    // Only the operator claims host names; a claim is idempotent; another's is a conflict
    // that names nothing of the holder.
    let (s, _) = call(
        &node,
        a.owner(),
        Method::POST,
        "/v1/namespaces/host-a/hosts",
        json!({"host": "api.a.example"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = claim("host-a", "API.A.example").await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["hosts"], json!(["api.a.example"]));
    assert_eq!(claim("host-a", "api.a.example").await.0, StatusCode::OK);
    let (s, v) = claim("host-b", "api.a.example").await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(!v.to_string().contains("host-a"), "{v}");
    let (s, v) = claim("host-b", "api.b.example:8080").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(
        claim("host-b", "api.b.example").await.0,
        StatusCode::CREATED
    );
    let (s, _) = claim("nobody", "api.n.example").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let shown = ok(
        &node,
        ADMIN,
        Method::GET,
        "/v1/namespaces/host-a",
        Value::Null,
    )
    .await;
    assert_eq!(shown["hosts"], json!(["api.a.example"]));

    // Each namespace, and the global table, has its own `GET /hello`.
    let route = json!({"method": "GET", "path": "/hello", "function": "hello"});
    for key in [a.owner(), b.owner(), common::KEY] {
        ok(&node, key, Method::POST, "/v1/routes", route.clone()).await;
    }
    for (host, body) in [
        ("api.a.example", "from host-a"),
        ("API.B.EXAMPLE", "from host-b"),
        ("127.0.0.1", "from default"),
        ("unclaimed.example", "from default"),
    ] {
        let (s, text) = get_on_host(&node, host, "/hello").await;
        assert_eq!((s, text.as_str()), (StatusCode::OK, body), "{host}");
    }
    // A claimed host serves its namespace's routes only.
    ok(
        &node,
        common::KEY,
        Method::POST,
        "/v1/routes",
        json!({"method": "GET", "path": "/only-default", "function": "hello"}),
    )
    .await;
    assert_eq!(
        get_on_host(&node, "api.a.example", "/only-default").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get_on_host(&node, "127.0.0.1", "/only-default").await.0,
        StatusCode::OK
    );

    // Releasing its last host would put host-a's `GET /hello` beside default's: refused,
    // naming nothing of the other; once its route is gone, the release goes through.
    let release = "/v1/namespaces/host-a/hosts/api.a.example";
    let (s, v) = call(&node, ADMIN, Method::DELETE, release, Value::Null).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(!v.to_string().contains("default"), "{v}");
    let routes = ok(&node, a.owner(), Method::GET, "/v1/routes", Value::Null).await;
    let id = routes["routes"][0]["id"].as_str().unwrap().to_string();
    ok(
        &node,
        a.owner(),
        Method::DELETE,
        &format!("/v1/routes/{id}"),
        Value::Null,
    )
    .await;
    let (s, v) = call(&node, ADMIN, Method::DELETE, release, Value::Null).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, _) = call(&node, ADMIN, Method::DELETE, release, Value::Null).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        get_on_host(&node, "api.a.example", "/hello").await.1,
        "from default"
    );

    // A deleted namespace releases its host names.
    let (s, v) = call(
        &node,
        ADMIN,
        Method::DELETE,
        "/v1/namespaces/host-b?force=true",
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(
        get_on_host(&node, "api.b.example", "/hello").await.1,
        "from default"
    );
    assert_eq!(
        claim("host-a", "api.b.example").await.0,
        StatusCode::CREATED
    );
    let (s, text) = get_on_host(&node, "api.b.example", "/hello").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{text}");
}

/// Runs boto3 (`args`: a script of the AWS scripts directory, or `-c CODE`, and its arguments)
/// against `node` with the access key `id` / `secret`; its output.
async fn boto3(node: &Node, args: &[&str], id: &str, secret: &str) -> String {
    let venv = tokio::task::spawn_blocking(venv).await.unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let (url, id, secret) = (node.url(""), id.to_string(), secret.to_string());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        common::run_aws_client(
            &venv.join("bin/python"),
            &args,
            &common::aws_scripts_dir(),
            &url,
            (&id, &secret),
            &[],
        )
    })
    .await
    .unwrap()
}

/// Runs `key_rotation.py` with an access key's id and one of its secrets, expecting every
/// call to succeed (`ok`) or be refused (`refused`).
async fn boto3_with(node: &Node, id: &str, secret: &str, expect: &str, bucket: &str) {
    let out = boto3(node, &["key_rotation.py", expect, bucket], id, secret).await;
    assert!(out.contains(&format!("rotation {expect}")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_key_rotates_and_its_old_secret_verifies_only_in_its_grace() {
    let node = node().await;
    let t = tenant(&node, "rotating").await;
    let (id, first) = t.aws[&Role::Owner].clone();
    let bucket = format!("rotating-{}", std::process::id());
    ok(
        &node,
        t.owner(),
        Method::PUT,
        &format!("/v1/buckets/{bucket}"),
        Value::Null,
    )
    .await;
    let (s, _, v) = node
        .send_as(
            t.owner(),
            Method::PUT,
            &format!("/v1/buckets/{bucket}/objects/seed"),
            b"seed".to_vec(),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let owner = t.owner().to_string();
    let rotate = |grace_s: u64| {
        let (node, path, owner) = (&node, format!("/v1/keys/{id}/rotate"), owner.clone());
        async move {
            let body = json!({ "grace_s": grace_s });
            let v = ok(node, &owner, Method::POST, &path, body).await;
            assert!(v.get("previous_secret").is_none(), "{v}");
            v["secret_access_key"].as_str().unwrap().to_string()
        }
    };

    // With an hour of grace, the old and the new secret both sign (S3 too); others do not.
    let second = rotate(3600).await;
    assert_ne!(second, first);
    boto3_with(&node, &id, &first, "ok", &bucket).await;
    boto3_with(&node, &id, &second, "ok", &bucket).await;
    boto3_with(&node, &id, &"x".repeat(40), "refused", &bucket).await;
    // Rotated again without grace: only the newest secret signs.
    let third = rotate(0).await;
    boto3_with(&node, &id, &first, "refused", &bucket).await;
    boto3_with(&node, &id, &second, "refused", &bucket).await;
    boto3_with(&node, &id, &third, "ok", &bucket).await;

    // The grace never outlasts the key; another namespace's key is not found.
    let short = ok(
        &node,
        t.owner(),
        Method::POST,
        "/v1/keys",
        json!({"expires_in_s": 60}),
    )
    .await;
    let short_id = short["access_key_id"].as_str().unwrap();
    let v = ok(
        &node,
        t.owner(),
        Method::POST,
        &format!("/v1/keys/{short_id}/rotate"),
        json!({"grace_s": 3600}),
    )
    .await;
    assert_eq!(v["old_secret_valid_until_ms"], short["expires_ms"], "{v}");
    let other = tenant(&node, "rotating-other").await;
    let (s, v) = call(
        &node,
        other.owner(),
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    // Rotation is the owner's (manage), like the keys themselves.
    let (s, _) = call(
        &node,
        t.key(Role::Deployer),
        Method::POST,
        &format!("/v1/keys/{id}/rotate"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_writes_are_audited_and_reads_are_not() {
    let node = node().await;
    let t = tenant(&node, "s3-audited").await;
    let (id, secret) = t.aws[&Role::Deployer].clone();
    let bucket = format!("audited-{}", std::process::id());
    let out = boto3(&node, &["s3_audit.py", &bucket], &id, &secret).await;
    assert!(out.contains("s3 writes done"), "{out}");
    let audit = ok(
        &node,
        t.owner(),
        Method::GET,
        "/v1/audit?limit=100",
        Value::Null,
    )
    .await;
    let s3: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"].as_str().unwrap_or("").starts_with("s3:"))
        .collect();
    let mut actions: Vec<&str> = s3.iter().map(|e| e["action"].as_str().unwrap()).collect();
    actions.reverse(); // oldest first
    assert_eq!(
        actions,
        [
            "s3:CreateBucket",
            "s3:PutObject",
            "s3:CopyObject",
            "s3:DeleteObject",
            "s3:PutObject",
            "s3:DeleteObjects",
            "s3:CreateMultipartUpload",
            "s3:CompleteMultipartUpload",
            "s3:DeleteObject",
            "s3:CreateMultipartUpload",
            "s3:AbortMultipartUpload",
            "s3:PutBucketNotificationConfiguration",
            "s3:DeleteBucket",
        ]
    );
    let key_id = t.aws[&Role::Deployer].0.as_str();
    for e in &s3 {
        assert_eq!(e["key_id"], key_id, "{e}");
        assert_eq!(e["role"], "deployer", "{e}");
        assert!(e["status"].as_u64().unwrap() < 300, "{e}");
        assert!(e["target"].as_str().unwrap().starts_with(&bucket), "{e}");
        assert!(!e["client"].as_str().unwrap().is_empty(), "{e}");
    }
    let put = s3
        .iter()
        .rev()
        .find(|e| e["action"] == "s3:PutObject")
        .unwrap();
    assert_eq!(put["target"], format!("{bucket}/a"));
    assert_eq!(put["method"], "PUT");
}
