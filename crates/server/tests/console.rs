//! The web console (`/ui/`, `lambent-console`) on a real node: its security (sessions, CSRF,
//! cross-site refusal, namespaces, CSP) over HTTP, and its pages in a real browser (Debian's
//! chromium driven by playwright-core: `tests/console/browser.mjs`, which writes screenshots
//! under `target/ui-screenshots/`).

mod common;

use common::{Node, KEY};
use reqwest::header::{HeaderMap, HeaderValue, COOKIE, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const HELLO: &str = r#"
import json

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    print(json.dumps({"msg": event.get("msg", "hi"), "request": context.aws_request_id}))
    return {"ok": True}
"#;

const BROKEN: &str = "def handler(event, context):\n    raise RuntimeError('not yet')\n";
/// A queue consumer fixed later: it prints the bodies it was given.
const WORKER: &str = "import json\n\ndef handler(event, context):\n    print(json.dumps({'bodies': [r['body'] for r in event['Records']]}))\n";
const FIXED: &str = "def handler(event, context):\n    return {'fixed': True}\n";

fn python(extra: Value) -> Value {
    let mut settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    settings
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    settings
}

/// A browser-less client of the console: its cookies and CSRF token after signing in.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookies: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(node: &Node, key: &str) -> Result<Browser, StatusCode> {
        let http = reqwest::Client::new();
        let response = http
            .post(node.url("/ui/api/session"))
            .json(&json!({ "key": key }))
            .send()
            .await
            .unwrap();
        if !response.status().is_success() {
            return Err(response.status());
        }
        let set: Vec<String> = response
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        let pair = |name: &str| {
            set.iter()
                .find(|c| c.starts_with(&format!("{name}=")))
                .map(|c| c.split(';').next().unwrap().to_string())
                .unwrap()
        };
        let csrf = pair("lambent_csrf").split_once('=').unwrap().1.to_string();
        Ok(Browser {
            http,
            base: node.url(""),
            cookies: format!("{}; {}", pair("lambent_session"), pair("lambent_csrf")),
            csrf,
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> (StatusCode, HeaderMap, Value) {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_str(&self.cookies).unwrap());
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        let r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .headers(h)
            .send()
            .await
            .unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        let bytes = r.bytes().await.unwrap();
        (
            status,
            headers,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.request(Method::GET, path, &[]).await;
        (s, v)
    }
}

/// Makes namespace `ns` with API key `key`, as an operator would in the node's store.
fn add_namespace(node: &Node, ns: &str, key: &str) {
    let store =
        lambent_store_sqlite::SqliteStore::open(&node._data.path().join("lambent.db")).unwrap();
    tokio::task::block_in_place(|| {
        tokio::runtime::Handle::current().block_on(async {
            use lambent_store::tenants::TenantStore;
            store
                .add_api_key(ns, &lambent_store::sha256_hex(key.as_bytes()))
                .await
                .unwrap();
        })
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_refuse_forged_cross_site_and_other_namespaces() {
    let node = common::node().await;
    let (s, v) = node
        .deploy("hello", python(json!({})), &[("app.py", HELLO)])
        .await;
    assert!(s.is_success(), "{v}");
    let (s, headers, _) = node.invoke("hello", "{}").await;
    assert_eq!(s, StatusCode::OK);
    let activation = common::header(&headers, "lambent-activation-id").to_string();

    // Every console response has a strict CSP; the login page is public, pages redirect.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/ui/login", "/ui/", "/ui/api/overview", "/ui/assets/app.js"] {
        let r = http.get(node.url(path)).send().await.unwrap();
        let csp = common::header(r.headers(), "content-security-policy");
        assert_eq!(csp, lambent_console::CSP, "{path}");
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    }
    let r = http.get(node.url("/ui/invocations")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        common::header(r.headers(), "location"),
        "/ui/login?next=/ui/invocations"
    );

    // A missing or forged session is refused; so is a wrong key.
    let (s, _) = (Browser {
        http: reqwest::Client::new(),
        base: node.url(""),
        cookies: "lambent_session=0123456789abcdef".into(),
        csrf: String::new(),
    })
    .get("/ui/api/overview")
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let r = http
        .get(node.url("/ui/api/v1/functions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        Browser::sign_in(&node, "wrong").await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );

    // Signed in: the namespace's data, through the console's own endpoints and the /v1 pass-through.
    let me = Browser::sign_in(&node, KEY).await.unwrap();
    let (s, overview) = me.get("/ui/api/overview?window=1h").await;
    assert_eq!(s, StatusCode::OK, "{overview}");
    assert_eq!(overview["functions"][0]["name"], "hello");
    assert_eq!(overview["functions"][0]["totals"]["invocations"], 1);
    let (s, a) = me
        .get(&format!("/ui/api/v1/activations/{activation}"))
        .await;
    assert_eq!((s, a["function"].as_str()), (StatusCode::OK, Some("hello")));

    // State changes need the CSRF token and a same-origin request.
    let invoke = "/ui/api/v1/functions/hello/invoke";
    let (s, _, v) = me.request(Method::POST, invoke, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no token: {v}");
    let (s, _, _) = me
        .request(Method::POST, invoke, &[("x-csrf-token", "forged")])
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let token = me.csrf.clone();
    let (s, _, _) = me
        .request(
            Method::POST,
            invoke,
            &[("x-csrf-token", &token), ("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = me
        .request(
            Method::POST,
            invoke,
            &[("x-csrf-token", &token), ("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, v) = me
        .request(
            Method::POST,
            invoke,
            &[("x-csrf-token", &token), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Signing in from another site is refused too.
    let r = reqwest::Client::new()
        .post(node.url("/ui/api/session"))
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "key": KEY }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Another namespace sees none of it, whatever it asks for.
    if common::cluster_backends().is_none() {
        add_namespace(&node, "other", "other-key");
        let other = Browser::sign_in(&node, "other-key").await.unwrap();
        let (s, o) = other.get("/ui/api/overview?window=7d").await;
        assert_eq!(
            (s, o["functions"].as_array().map(Vec::len)),
            (StatusCode::OK, Some(0))
        );
        let (s, _) = other.get("/ui/api/functions/hello?window=1h").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = other
            .get(&format!("/ui/api/v1/activations/{activation}"))
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // Its key in the Authorization header does not switch the session's namespace either.
        let (s, _, v) = me
            .request(
                Method::GET,
                "/ui/api/v1/activations?function=hello",
                &[("authorization", "Bearer other-key")],
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["activations"].as_array().map(Vec::len), Some(2), "{v}");
    }

    // Signing out ends the session on the server: the old cookie no longer works.
    let (s, headers, _) = me
        .request(
            Method::DELETE,
            "/ui/api/session",
            &[("x-csrf-token", &token)],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(headers
        .get_all(SET_COOKIE)
        .iter()
        .all(|c| c.to_str().unwrap().contains("Max-Age=0")));
    let (s, _) = me.get("/ui/api/overview").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Where `npm install playwright-core` put it (`scripts/test` installs it there).
fn playwright_dir() -> std::path::PathBuf {
    std::env::var_os("LAMBENT_PLAYWRIGHT_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "/var/cache/lambent/playwright".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_in_chromium() {
    let playwright = playwright_dir();
    assert!(
        playwright.join("node_modules/playwright-core").is_dir(),
        "playwright-core is missing under {}: run scripts/test (npm install --prefix {0} playwright-core)",
        playwright.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "chromium is missing: apt-get install chromium"
    );
    let node = common::node().await;
    for (name, settings, code) in [
        ("hello", python(json!({})), HELLO),
        (
            "flaky",
            python(json!({"async": {"max_retries": 0}})),
            BROKEN,
        ),
        ("worker", python(json!({})), BROKEN),
    ] {
        let (s, v) = node.deploy(name, settings, &[("app.py", code)]).await;
        assert!(s.is_success(), "{v}");
    }
    // Its event sources: a route, a schedule, a queue (with a dead-letter queue holding one
    // message) mapped to it, a topic it subscribes to.
    for (path, body) in [
        (
            "/v1/routes",
            json!({"method": "GET", "path": "/hello", "function": "hello"}),
        ),
        (
            "/v1/schedules",
            json!({"name": "nightly", "function": "hello", "cron": "0 0 3 * * *"}),
        ),
        ("/v1/queues", json!({"name": "jobs-dlq"})),
        (
            "/v1/queues",
            json!({"name": "jobs", "dead_letter_queue": "jobs-dlq", "max_receive_count": 3}),
        ),
        ("/v1/queues/jobs-dlq/messages", json!({"body": "lost"})),
        (
            "/v1/mappings",
            json!({"queue": "jobs", "function": "hello"}),
        ),
        ("/v1/topics", json!({"name": "orders"})),
        (
            "/v1/topics/orders/subscriptions",
            json!({"function": "hello"}),
        ),
        // A consumer that fails every receive: its message ends in the dead-letter queue.
        ("/v1/queues", json!({"name": "work-dlq"})),
        (
            "/v1/queues",
            json!({"name": "work", "visibility_timeout": 1, "dead_letter_queue": "work-dlq", "max_receive_count": 2}),
        ),
        (
            "/v1/mappings",
            json!({"queue": "work", "function": "worker", "batch_size": 1}),
        ),
        ("/v1/queues/work/messages", json!({"body": "job-42"})),
        // A table whose stream runs hello.
        (
            "/v1/mappings",
            json!({"table": "visits", "function": "hello"}),
        ),
    ] {
        if path == "/v1/mappings" && body["table"] == "visits" {
            let table = json!({
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_IMAGE"},
            });
            let (s, _, v) = node
                .send(
                    Method::PUT,
                    "/v1/tables/visits",
                    table.to_string().into_bytes(),
                )
                .await;
            assert!(s.is_success(), "the table: {v}");
        }
        let (s, _, v) = node
            .send(Method::POST, path, body.to_string().into_bytes())
            .await;
        assert!(s.is_success(), "{path}: {v}");
    }
    // A bucket that notifies hello, and a workflow that invokes it (run once).
    for (method, path, body) in [
        (Method::PUT, "/v1/buckets/uploads", json!({})),
        (
            Method::PUT,
            "/v1/buckets/uploads/notification",
            json!({"configurations": [{"function": "hello", "events": ["s3:ObjectCreated:*"]}]}),
        ),
        (
            Method::PUT,
            "/v1/workflows/greet",
            json!({"definition": {
                "StartAt": "Init",
                "States": {
                    "Init": {"Type": "Pass", "Result": {"msg": "from-workflow"}, "Next": "Greet"},
                    "Greet": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "hello", "Payload.$": "$"}, "Next": "Check"},
                    "Check": {"Type": "Choice", "Choices": [
                        {"Variable": "$.Payload.ok", "BooleanEquals": false, "Next": "Oops"}],
                        "Default": "Done"},
                    "Oops": {"Type": "Fail", "Error": "NotOk"},
                    "Done": {"Type": "Succeed"},
                },
            }}),
        ),
        (
            Method::POST,
            "/v1/workflows/greet/executions",
            json!({"name": "run-1", "sync": true}),
        ),
    ] {
        let (s, _, v) = node
            .send(method.clone(), path, body.to_string().into_bytes())
            .await;
        assert!(s.is_success(), "{method} {path}: {v}");
        if path.ends_with("/executions") {
            assert_eq!(v["status"], "SUCCEEDED", "{v}");
        }
    }
    // Three that ran (one cold) and one error.
    for payload in ["{}", "{}", r#"{"msg": "third"}"#, r#"{"fail": true}"#] {
        node.invoke("hello", payload).await;
    }
    // A dead letter: the broken version fails its only attempt; then the bug is fixed.
    let (s, _) = node.invoke_async("flaky", r#"{"order": 7}"#).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    common::eventually(20, "the dead letter", || async {
        let v = node.get_ok("/v1/dlq").await;
        (v["dead_letters"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    let (s, v) = node
        .deploy(
            "flaky",
            python(json!({"async": {"max_retries": 0}})),
            &[("app.py", FIXED)],
        )
        .await;
    assert!(s.is_success(), "{v}");
    // The worker failed its message twice: it is in work-dlq. Then the worker is fixed.
    common::eventually(60, "the queue's dead letter", || async {
        let v = node.get_ok("/v1/queues/work-dlq").await;
        (v["messages"]["visible"] == 1).then_some(())
    })
    .await;
    let (s, v) = node
        .deploy("worker", python(json!({})), &[("app.py", WORKER)])
        .await;
    assert!(s.is_success(), "{v}");

    let screenshots =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ui-screenshots");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console/browser.mjs");
    let output = tokio::process::Command::new("node")
        .arg(script)
        .env("LAMBENT_URL", node.url(""))
        .env("LAMBENT_KEY", KEY)
        .env("PLAYWRIGHT_DIR", playwright)
        .env("SCREENSHOTS", &screenshots)
        // Four invokes and the workflow's task.
        .env("EXPECT_INVOCATIONS", "5")
        .env("EXPECT_ERRORS", "1")
        .env(
            "EXPECT_NODES",
            if common::cluster_backends().is_none() {
                "1"
            } else {
                ""
            },
        )
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    for page in [
        "login",
        "overview",
        "function",
        "invocations",
        "invocation",
        "logs",
        "sources",
        "workflow",
        "execution",
        "cluster",
    ] {
        assert!(
            screenshots.join(format!("{page}.png")).is_file(),
            "no screenshot of {page}"
        );
    }
}

/// A data dir from before the rollups: the node rolls its records up in the background at
/// start-up, and the console counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_from_before_the_rollups_are_counted_after_an_upgrade() {
    if common::cluster_backends().is_some() {
        // The PostgreSQL upgrade is the store contract's (lambent-store-postgres).
        return;
    }
    let now = lambent_core::now_ms();
    let records: Vec<_> = (0..30i64)
        .map(|i| {
            let start_ms = now - 60_000 * i - 1_000;
            lambent_core::Activation {
                id: format!("old-{i}"),
                namespace: "default".into(),
                function: "legacy".into(),
                revision: 1,
                trigger: "api".into(),
                start_ms,
                end_ms: start_ms + 3,
                duration_us: 2_000,
                billed_ms: 2,
                memory_mb: 128,
                max_memory_bytes: Some(20 << 20),
                cold: i == 0,
                cold_reason: None,
                init_us: (i == 0).then_some(50_000),
                init: None,
                status: if i % 10 == 0 {
                    lambent_core::ActivationStatus::FunctionError
                } else {
                    lambent_core::ActivationStatus::Success
                },
                error_type: None,
                error_message: None,
                logs: String::new(),
                node: String::new(),
                parent: None,
                steps: Vec::new(),
                trace: None,
            }
        })
        .collect();
    let node = common::node_with(|o| {
        lambent_store_sqlite::legacy::create_before_rollups(
            &o.data_dir.join("lambent.db"),
            &records,
        )
        .unwrap()
    })
    .await;
    let me = Browser::sign_in(&node, KEY).await.unwrap();
    let totals = common::eventually(30, "the older records in the rollups", || async {
        let (_, o) = me.get("/ui/api/overview?window=24h").await;
        let f = o["functions"]
            .as_array()?
            .iter()
            .find(|f| f["name"] == "legacy")?
            .clone();
        (f["totals"]["invocations"] == 30).then_some(f["totals"].clone())
    })
    .await;
    assert_eq!(
        (totals["errors"].as_u64(), totals["cold"].as_u64()),
        (Some(3), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_may_do_what_its_keys_role_may() {
    let node = common::node().await;
    let key_of = |role: &'static str| {
        let node = &node;
        async move {
            let body = json!({ "role": role }).to_string().into_bytes();
            let (s, _, v) = node.send(Method::POST, "/v1/api-keys", body).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            v["secret"].as_str().unwrap().to_string()
        }
    };
    let viewer = Browser::sign_in(&node, &key_of("viewer").await)
        .await
        .unwrap();
    let (s, who) = viewer.get("/ui/api/session").await;
    assert_eq!((s, who["role"].as_str()), (StatusCode::OK, Some("viewer")));
    assert_eq!(viewer.get("/ui/api/overview").await.0, StatusCode::OK);
    assert_eq!(viewer.get("/ui/api/v1/functions").await.0, StatusCode::OK);
    // Through the pass-through, the inner route's rule applies: a viewer may not create.
    let (s, _, v) = viewer
        .request(
            Method::POST,
            "/ui/api/v1/queues",
            &[("x-csrf-token", &viewer.csrf), ("origin", &viewer.base)],
        )
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("AccessDenied")),
        "{v}"
    );

    // An invoker's session reads nothing.
    let invoker = Browser::sign_in(&node, &key_of("invoker").await)
        .await
        .unwrap();
    for path in [
        "/ui/api/overview",
        "/ui/api/v1/functions",
        "/ui/api/v1/activations",
    ] {
        let (s, v) = invoker.get(path).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{path}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_never_outlives_its_key() {
    let node = common::node().await;
    let key_with = |body: Value| {
        let node = &node;
        async move {
            let (s, _, v) = node
                .send(Method::POST, "/v1/api-keys", body.to_string().into_bytes())
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            (
                v["key_id"].as_str().unwrap().to_string(),
                v["secret"].as_str().unwrap().to_string(),
            )
        }
    };
    async fn live(b: &Browser) -> StatusCode {
        b.get("/ui/api/overview").await.0
    }
    let (removed_id, removed) = key_with(json!({"role": "viewer"})).await;
    let (_, expiring) = key_with(json!({"role": "viewer", "expires_in_s": 2})).await;
    let (rotated_id, rotated) = key_with(json!({"role": "viewer"})).await;
    let created = common::ADMIN;
    let (s, _, ns) = node
        .send_as(
            created,
            Method::POST,
            "/v1/namespaces",
            json!({"name": "console-gone"}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{ns}");
    let tenant_owner = ns["owner_key"]["secret"].as_str().unwrap().to_string();

    let mut sessions = Vec::new();
    for key in [&removed, &expiring, &rotated, &tenant_owner] {
        let b = Browser::sign_in(&node, key).await.unwrap();
        assert_eq!(live(&b).await, StatusCode::OK);
        sessions.push(b);
    }
    let [by_removed, by_expiring, by_rotated, by_tenant] = &sessions[..] else {
        unreachable!()
    };

    // Removed: its session ends at once.
    let (s, _, _) = node
        .send(
            Method::DELETE,
            &format!("/v1/api-keys/{removed_id}"),
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(live(by_removed).await, StatusCode::UNAUTHORIZED);
    // Its namespace deleted: the session ends.
    let (s, _, v) = node
        .send_as(
            created,
            Method::DELETE,
            "/v1/namespaces/console-gone?force=true",
            vec![],
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    assert_eq!(live(by_tenant).await, StatusCode::UNAUTHORIZED);
    // Rotated with two seconds of grace: the old secret's session lasts that long, a session
    // of the new secret goes on; the expiring key's session ends with the key.
    let (s, _, v) = node
        .send(
            Method::POST,
            &format!("/v1/api-keys/{rotated_id}/rotate"),
            json!({"grace_s": 2}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let by_new = Browser::sign_in(&node, v["secret"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(live(by_rotated).await, StatusCode::OK);
    assert_eq!(live(by_expiring).await, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(live(by_rotated).await, StatusCode::UNAUTHORIZED);
    assert_eq!(live(by_expiring).await, StatusCode::UNAUTHORIZED);
    assert_eq!(live(&by_new).await, StatusCode::OK);
}
