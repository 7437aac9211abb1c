//! HTTP routes through a real node: the API Gateway v2 event a function receives, the mapping
//! of its result back to HTTP, auth, CORS, body limits, errors, and persistence.

mod common;

use common::{header, node, Node, KEY};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Echoes the event it got, or does what `?mode=` says.
const ECHO: &str = r#"
import json, time

def handler(event, context):
    mode = (event.get("queryStringParameters") or {}).get("mode")
    if mode == "plain":
        return {"plain": True, "path": event["rawPath"]}
    if mode == "text":
        return "just text"
    if mode == "fail":
        raise ValueError("boom")
    if mode == "sleep":
        time.sleep(3)
    if mode == "malformed":
        return {"statusCode": "not a number"}
    if mode == "binary":
        return {"statusCode": 200, "headers": {"content-type": "application/octet-stream"},
                "body": event.get("body", ""), "isBase64Encoded": event["isBase64Encoded"]}
    return {"statusCode": 201,
            "headers": {"content-type": "application/json", "x-route": event["routeKey"]},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": json.dumps(event)}
"#;

async fn deploy_echo(node: &Node, name: &str) {
    let (s, v) = node
        .deploy(
            name,
            json!({"runtime": "python3.12", "handler": "app.handler", "timeout": 1}),
            &[("app.py", ECHO)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn add_route(node: &Node, route: Value) -> (StatusCode, Value) {
    let (s, _, v) = node
        .send(Method::POST, "/v1/routes", route.to_string().into_bytes())
        .await;
    (s, v)
}

/// A request to a routed path, without Lambent's API key.
async fn call(
    node: &Node,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = node.http.request(method, node.url(path)).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_deliver_the_v2_event_and_map_results_back() {
    let node = node().await;
    deploy_echo(&node, "users-fn").await;
    for (method, path) in [("GET", "/users/{id}"), ("ANY", "/files/{proxy+}")] {
        let (s, v) = add_route(
            &node,
            json!({"method": method, "path": path, "function": "users-fn"}),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert_eq!(v["key"], format!("{method} {path}"));
        assert_eq!(v["auth"], "none");
    }

    // Path parameters, query strings, headers and cookies in; status, headers, cookies out.
    let (s, h, body) = call(
        &node,
        Method::GET,
        "/users/42%20x?a=1&a=2&b=x+y",
        &[
            ("cookie", "c1=v1; c2=v2"),
            ("x-multi", "one"),
            ("user-agent", "route-test"),
        ],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", String::from_utf8_lossy(&body));
    assert_eq!(header(&h, "x-route"), "GET /users/{id}");
    let many: Vec<_> = h.get_all("x-many").iter().collect();
    assert_eq!(many, ["a", "b"]);
    let cookies: Vec<_> = h.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["session=abc; Path=/; HttpOnly", "theme=dark"]);
    assert!(!header(&h, "apigw-requestid").is_empty());
    let event = json_of(&body);
    assert_eq!(event["version"], "2.0");
    assert_eq!(event["routeKey"], "GET /users/{id}");
    assert_eq!(event["rawPath"], "/users/42%20x");
    assert_eq!(event["rawQueryString"], "a=1&a=2&b=x+y");
    assert_eq!(
        event["queryStringParameters"],
        json!({"a": "1,2", "b": "x y"})
    );
    assert_eq!(event["pathParameters"], json!({"id": "42 x"}));
    assert_eq!(event["cookies"], json!(["c1=v1", "c2=v2"]));
    assert_eq!(event["headers"]["x-multi"], "one");
    assert!(event.get("body").is_none());
    assert_eq!(event["isBase64Encoded"], false);
    let ctx = &event["requestContext"];
    assert_eq!(ctx["http"]["method"], "GET");
    assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["http"]["userAgent"], "route-test");
    assert_eq!(ctx["http"]["protocol"], "HTTP/1.1");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["routeKey"], "GET /users/{id}");
    assert_eq!(ctx["accountId"], "default");
    assert_eq!(ctx["requestId"], header(&h, "apigw-requestid"));
    assert!(ctx["timeEpoch"].as_i64().unwrap() > 0);
    assert!(ctx["time"].as_str().unwrap().ends_with(" +0000"));

    // The activation is recorded with trigger "http" under the request id.
    let id = header(&h, "apigw-requestid").to_string();
    let (s, _, a) = node
        .send(Method::GET, &format!("/v1/activations/{id}"), vec![])
        .await;
    assert_eq!(s, StatusCode::OK, "{a}");
    assert_eq!(a["trigger"], "http");

    // The greedy proxy takes the rest of the path, for any method.
    let (s, _, body) = call(&node, Method::DELETE, "/files/a/b/c.txt", &[], vec![]).await;
    assert_eq!(s, StatusCode::CREATED);
    let event = json_of(&body);
    assert_eq!(event["pathParameters"], json!({"proxy": "a/b/c.txt"}));
    assert_eq!(event["routeKey"], "ANY /files/{proxy+}");
    assert_eq!(event["requestContext"]["http"]["method"], "DELETE");

    // Binary bodies travel base64 both ways; text bodies as text.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let (s, h, body) = call(
        &node,
        Method::POST,
        "/files/blob?mode=binary",
        &[("content-type", "application/octet-stream")],
        binary.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/octet-stream");
    assert_eq!(body, binary, "the bytes came back unchanged");
    let (_, _, body) = call(
        &node,
        Method::POST,
        "/files/text",
        &[("content-type", "application/json")],
        br#"{"hello":"world"}"#.to_vec(),
    )
    .await;
    let event = json_of(&body);
    assert_eq!(event["body"], r#"{"hello":"world"}"#);
    assert_eq!(event["isBase64Encoded"], false);

    // A result without statusCode is a 200 JSON body; a string is the body itself.
    let (s, h, body) = call(&node, Method::GET, "/users/7?mode=plain", &[], vec![]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, "content-type"), "application/json");
    assert_eq!(json_of(&body), json!({"plain": true, "path": "/users/7"}));
    let (s, _, body) = call(&node, Method::GET, "/users/7?mode=text", &[], vec![]).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, &b"just text"[..]));

    // Function errors, timeouts and malformed results are 502s, as from API Gateway.
    for mode in ["fail", "sleep", "malformed"] {
        let (s, _, body) = call(
            &node,
            Method::GET,
            &format!("/users/1?mode={mode}"),
            &[],
            vec![],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{mode}");
        assert_eq!(json_of(&body), json!({"message": "Internal Server Error"}));
    }

    // Unknown routes (and methods without a route) are 404 JSON; Lambent's paths stay its own.
    for (method, path) in [(Method::GET, "/nope"), (Method::POST, "/users/1")] {
        let (s, _, body) = call(&node, method, path, &[], vec![]).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json_of(&body), json!({"message": "Not Found"}));
    }
    let (s, _, body) = call(&node, Method::GET, "/v1/nope", &[], vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(json_of(&body)["error"]["code"], "NotFound");

    // The server keeps serving after all of that.
    let (s, _, _) = call(&node, Method::GET, "/users/8", &[], vec![]).await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_settings_auth_cors_and_body_limit() {
    let node = node().await;
    deploy_echo(&node, "api-fn").await;
    let (s, v) = add_route(
        &node,
        json!({"method": "POST", "path": "/upload", "function": "api-fn",
               "max_body_bytes": 1024,
               "cors": {"allow_origins": ["https://app.example"], "allow_methods": ["POST", "GET"],
                        "allow_headers": ["content-type", "x-custom"], "max_age": 600,
                        "expose_headers": ["x-route"]}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = add_route(
        &node,
        json!({"method": "GET", "path": "/private", "function": "api-fn", "auth": "key"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Body limit: at the limit it passes, one byte more is a 413 JSON.
    let (s, _, _) = call(&node, Method::POST, "/upload", &[], vec![b'a'; 1024]).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, body) = call(&node, Method::POST, "/upload", &[], vec![b'a'; 1025]).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        json_of(&body),
        json!({"message": "Request Entity Too Large"})
    );

    // CORS preflight is answered by the gateway, without the function.
    let (s, h, body) = call(
        &node,
        Method::OPTIONS,
        "/upload",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type"),
        ],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(body.is_empty());
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(header(&h, "access-control-allow-methods"), "POST,GET");
    assert_eq!(
        header(&h, "access-control-allow-headers"),
        "content-type,x-custom"
    );
    assert_eq!(header(&h, "access-control-max-age"), "600");
    // Another origin gets no CORS headers.
    let (s, h, _) = call(
        &node,
        Method::OPTIONS,
        "/upload",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert!(h.get("access-control-allow-origin").is_none());
    // The actual request carries the CORS headers too.
    let (s, h, _) = call(
        &node,
        Method::POST,
        "/upload",
        &[("origin", "https://app.example")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(
        header(&h, "access-control-allow-origin"),
        "https://app.example"
    );
    assert_eq!(header(&h, "access-control-expose-headers"), "x-route");

    // Key routes: no key or a wrong key is a 401; the namespace's key works as Bearer or
    // x-api-key, and is not passed on to the function.
    let (s, _, body) = call(&node, Method::GET, "/private", &[], vec![]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&body), json!({"message": "Unauthorized"}));
    let (s, _, _) = call(
        &node,
        Method::GET,
        "/private",
        &[("authorization", "Bearer wrong")],
        vec![],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {KEY}");
    for h in [("authorization", bearer.as_str()), ("x-api-key", KEY)] {
        let (s, _, body) = call(&node, Method::GET, "/private", &[h], vec![]).await;
        assert_eq!(s, StatusCode::CREATED, "{}", h.0);
        let event = json_of(&body);
        assert!(event["headers"].get(h.0).is_none(), "{} was passed on", h.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_routes_are_refused_with_reasons() {
    let node = node().await;
    deploy_echo(&node, "f").await;
    let (s, _) = add_route(
        &node,
        json!({"method": "GET", "path": "/a/{id}", "function": "f"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let cases = [
        (
            json!({"method": "GET", "path": "/v1/functions", "function": "f"}),
            StatusCode::CONFLICT,
            "ReservedPath",
        ),
        (
            json!({"method": "ANY", "path": "/healthz", "function": "f"}),
            StatusCode::CONFLICT,
            "ReservedPath",
        ),
        (
            json!({"method": "GET", "path": "/ui/app", "function": "f"}),
            StatusCode::CONFLICT,
            "ReservedPath",
        ),
        (
            json!({"method": "GET", "path": "/a/{id}", "function": "f"}),
            StatusCode::CONFLICT,
            "Conflict",
        ),
        (
            json!({"method": "GET", "path": "/a/{name}", "function": "f"}),
            StatusCode::CONFLICT,
            "Conflict",
        ),
        (
            json!({"method": "GET", "path": "no-slash", "function": "f"}),
            StatusCode::BAD_REQUEST,
            "InvalidRoute",
        ),
        (
            json!({"method": "GET", "path": "/{p+}/x", "function": "f"}),
            StatusCode::BAD_REQUEST,
            "InvalidRoute",
        ),
        (
            json!({"method": "FETCH", "path": "/b", "function": "f"}),
            StatusCode::BAD_REQUEST,
            "InvalidRoute",
        ),
        (
            json!({"method": "GET", "path": "/b", "function": "f", "max_body_bytes": 0}),
            StatusCode::BAD_REQUEST,
            "InvalidRoute",
        ),
        (
            json!({"method": "GET", "path": "/b", "function": "nope"}),
            StatusCode::NOT_FOUND,
            "FunctionNotFound",
        ),
        (
            json!({"method": "GET", "path": "/b", "function": "f", "extra": 1}),
            StatusCode::BAD_REQUEST,
            "InvalidJson",
        ),
    ];
    for (route, status, code) in cases {
        let (s, v) = add_route(&node, route.clone()).await;
        assert_eq!(
            (s, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{route}: {v}"
        );
    }
    // Replacing keeps the id; removing makes the path 404.
    let (_, listed, _) = {
        let (s, _, v) = node.send(Method::GET, "/v1/routes", vec![]).await;
        (s, v, ())
    };
    let id = listed["routes"][0]["id"].as_str().unwrap().to_string();
    let (s, _, v) = node
        .send(
            Method::POST,
            "/v1/routes?replace=true",
            json!({"method": "GET", "path": "/a/{id}", "function": "f", "auth": "key"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(
        (s, v["id"].as_str().unwrap()),
        (StatusCode::OK, id.as_str())
    );
    assert_eq!(v["auth"], "key");
    let (s, _, _) = node
        .send(Method::DELETE, &format!("/v1/routes/{id}"), vec![])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = node
        .send(Method::DELETE, &format!("/v1/routes/{id}"), vec![])
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("RouteNotFound"))
    );
    let (s, _, _) = call(&node, Method::GET, "/a/1", &[], vec![]).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // The REST API needs Lambent's key.
    let (s, _, _) = call(&node, Method::GET, "/v1/routes", &[], vec![]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_routes_answer_429() {
    let node = node().await;
    let (s, v) = node
        .deploy(
            "stopped",
            json!({"runtime": "python3.12", "handler": "app.handler", "reserved_concurrency": 0}),
            &[("app.py", ECHO)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    add_route(
        &node,
        json!({"method": "GET", "path": "/stopped", "function": "stopped"}),
    )
    .await;
    let (s, _, body) = call(&node, Method::GET, "/stopped", &[], vec![]).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json_of(&body), json!({"message": "Too Many Requests"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_survive_a_restart() {
    let mut node = node().await;
    deploy_echo(&node, "keep").await;
    let (s, v) = add_route(
        &node,
        json!({"method": "GET", "path": "/keep/{proxy+}", "function": "keep", "max_body_bytes": 2048}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    node.restart().await;
    let (_, _, listed) = node.send(Method::GET, "/v1/routes", vec![]).await;
    assert_eq!(listed["routes"][0]["key"], "GET /keep/{proxy+}");
    assert_eq!(listed["routes"][0]["max_body_bytes"], 2048);
    let (s, _, body) = call(&node, Method::GET, "/keep/x/y", &[], vec![]).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(json_of(&body)["pathParameters"]["proxy"], "x/y");
}

/// A REST API (payload 1.0) handler: echoes its event, or answers as `?mode=` says.
const REST_ECHO: &str = r#"
import json

def handler(event, context):
    mode = (event.get("queryStringParameters") or {}).get("mode")
    if mode == "v2-shaped":
        return {"hello": "world"}
    if mode == "object-body":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if mode == "fail":
        raise ValueError("boom")
    return {"statusCode": 202,
            "headers": {"content-type": "application/json", "x-one": "1"},
            "multiValueHeaders": {"x-many": ["a", "b"]},
            "body": json.dumps(event)}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_routes_deliver_the_v1_event_and_map_proxy_results() {
    let node = node().await;
    let (s, v) = node
        .deploy(
            "rest-fn",
            json!({"runtime": "python3.12", "handler": "app.handler", "timeout": 2}),
            &[("app.py", REST_ECHO)],
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, route) = add_route(
        &node,
        json!({"method": "GET", "path": "/items/{id}", "function": "rest-fn", "payload": "1.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{route}");
    assert_eq!(route["payload"], "1.0");
    let (s, bad) = add_route(
        &node,
        json!({"method": "GET", "path": "/x", "function": "rest-fn", "payload": "3.0"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");

    let (s, headers, body) = call(
        &node,
        Method::GET,
        "/items/a%20b?tag=x&tag=y&one=1",
        &[("x-multi", "v1"), ("x-multi", "v2"), ("cookie", "c=1")],
        Vec::new(),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(header(&headers, "x-one"), "1");
    let many: Vec<_> = headers.get_all("x-many").iter().collect();
    assert_eq!(many, ["a", "b"]);
    let e = json_of(&body);
    assert_eq!(e["resource"], "/items/{id}");
    assert_eq!(e["path"], "/items/a%20b");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["pathParameters"], json!({"id": "a b"}));
    assert_eq!(e["queryStringParameters"], json!({"tag": "y", "one": "1"}));
    assert_eq!(
        e["multiValueQueryStringParameters"],
        json!({"tag": ["x", "y"], "one": ["1"]})
    );
    assert_eq!(e["headers"]["x-multi"], "v2");
    assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["v1", "v2"]));
    assert_eq!(e["headers"]["cookie"], "c=1");
    assert_eq!(e["stageVariables"], Value::Null);
    assert_eq!(e["body"], Value::Null);
    assert_eq!(e["isBase64Encoded"], false);
    let ctx = &e["requestContext"];
    assert_eq!(ctx["resourcePath"], "/items/{id}");
    assert_eq!(ctx["httpMethod"], "GET");
    assert_eq!(ctx["stage"], "$default");
    assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
    assert_eq!(ctx["requestId"], header(&headers, "apigw-requestid"));
    assert!(
        e.get("version").is_none() && e.get("rawPath").is_none(),
        "{e}"
    );

    // What payload 2.0 would accept is malformed for a REST API; so is a failure.
    for mode in ["v2-shaped", "object-body", "fail"] {
        let (s, _, body) = call(
            &node,
            Method::GET,
            &format!("/items/1?mode={mode}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_GATEWAY, "{mode}");
        assert_eq!(
            json_of(&body),
            json!({"message": "Internal server error"}),
            "{mode}"
        );
    }
}
