//! The API Gateway payload formats: HTTP APIs' 2.0 and REST APIs' 1.0 (Lambda proxy
//! integration) — the event a routed request becomes, and how a function's result becomes the
//! HTTP response (`docs/api.md`, "HTTP routes"). Pure functions of their inputs, so that every
//! rule is unit-tested here.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use serde_json::{json, Map, Value};

/// What the event is made of: the request as received, and where it was routed.
pub struct HttpRequest<'a> {
    pub method: &'a str,
    pub raw_path: &'a str,
    /// Without the `?`; empty if none.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub protocol: &'a str,
    pub source_ip: String,
    /// `GET /users/{id}`.
    pub route_key: String,
    /// The route's path template, `/users/{id}` (REST's `resource`).
    pub resource: &'a str,
    /// As matched, still percent-encoded.
    pub path_parameters: &'a [(String, String)],
    pub request_id: &'a str,
    /// The namespace, in the role of the AWS account.
    pub account_id: &'a str,
    pub time_ms: i64,
}

/// The id API Gateway would show as `apiId`: one per Lambent node.
pub const API_ID: &str = "lambent";

/// The 2.0 event of a request.
pub fn request_event(req: &HttpRequest<'_>) -> Value {
    let mut headers = Map::new();
    let mut cookies: Vec<Value> = Vec::new();
    for name in req.headers.keys() {
        let values = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()));
        if name == axum::http::header::COOKIE {
            for v in values {
                cookies.extend(
                    v.split(';')
                        .map(str::trim)
                        .filter(|c| !c.is_empty())
                        .map(|c| Value::String(c.to_string())),
                );
            }
            continue;
        }
        let joined = values.collect::<Vec<_>>().join(",");
        headers.insert(name.as_str().to_string(), Value::String(joined));
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let domain_name = header("host");
    let domain_prefix = domain_name
        .split(['.', ':'])
        .next()
        .unwrap_or_default()
        .to_string();
    let user_agent = header("user-agent");
    let text = is_text(req.headers, req.body);

    let mut event = json!({
        "version": "2.0",
        "routeKey": req.route_key,
        "rawPath": req.raw_path,
        "rawQueryString": req.raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": req.account_id,
            "apiId": API_ID,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": req.method,
                "path": req.raw_path,
                "protocol": req.protocol,
                "sourceIp": req.source_ip,
                "userAgent": user_agent,
            },
            "requestId": req.request_id,
            "routeKey": req.route_key,
            "stage": "$default",
            "time": clf_time(req.time_ms),
            "timeEpoch": req.time_ms,
        },
        "isBase64Encoded": !text,
    });
    if !cookies.is_empty() {
        event["cookies"] = Value::Array(cookies);
    }
    if !req.raw_query.is_empty() {
        let mut params: Map<String, Value> = Map::new();
        for (k, v) in form_urlencoded::parse(req.raw_query.as_bytes()) {
            match params.get_mut(k.as_ref()) {
                Some(Value::String(joined)) => {
                    joined.push(',');
                    joined.push_str(&v);
                }
                _ => {
                    params.insert(k.into_owned(), Value::String(v.into_owned()));
                }
            }
        }
        event["queryStringParameters"] = Value::Object(params);
    }
    if !req.path_parameters.is_empty() {
        event["pathParameters"] = path_parameters(req);
    }
    if !req.body.is_empty() {
        event["body"] = Value::String(body_text(req.body, text));
    }
    event
}

/// Path parameters, percent-decoded.
fn path_parameters(req: &HttpRequest<'_>) -> Value {
    req.path_parameters
        .iter()
        .map(|(k, v)| {
            let decoded = percent_encoding::percent_decode_str(v).decode_utf8_lossy();
            (k.clone(), Value::String(decoded.into_owned()))
        })
        .collect::<Map<String, Value>>()
        .into()
}

/// The body as the event carries it: text, or base64 when binary.
fn body_text(body: &[u8], text: bool) -> String {
    if text {
        String::from_utf8_lossy(body).into_owned()
    } else {
        base64::engine::general_purpose::STANDARD.encode(body)
    }
}

/// The stage a REST event names (API Gateway REST APIs always have one; Lambent serves routes
/// without a stage prefix).
pub const REST_STAGE: &str = "$default";

/// The REST API (payload format 1.0) event of a request, as API Gateway's Lambda proxy
/// integration sends it: single- and multi-value headers and query parameters (the single
/// map keeps the last value), `null` for absent parts, the cookie header left in the headers.
pub fn request_event_v1(req: &HttpRequest<'_>) -> Value {
    let mut headers = Map::new();
    let mut multi_headers = Map::new();
    for name in req.headers.keys() {
        let values: Vec<Value> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        if let Some(last) = values.last() {
            headers.insert(name.as_str().to_string(), last.clone());
        }
        multi_headers.insert(name.as_str().to_string(), Value::Array(values));
    }
    let header = |name: &str| headers.get(name).cloned().unwrap_or(Value::Null);
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(req.raw_query.as_bytes()) {
        query.insert(k.to_string(), Value::String(v.to_string()));
        match multi_query.get_mut(k.as_ref()) {
            Some(Value::Array(all)) => all.push(Value::String(v.into_owned())),
            _ => {
                multi_query.insert(k.into_owned(), json!([v]));
            }
        }
    }
    let or_null = |m: Map<String, Value>| {
        if m.is_empty() {
            Value::Null
        } else {
            Value::Object(m)
        }
    };
    let domain_name = header("host").as_str().unwrap_or_default().to_string();
    let domain_prefix = domain_name.split(['.', ':']).next().unwrap_or_default();
    let text = is_text(req.headers, req.body);
    json!({
        "resource": req.resource,
        "path": req.raw_path,
        "httpMethod": req.method,
        "headers": or_null(headers.clone()),
        "multiValueHeaders": or_null(multi_headers),
        "queryStringParameters": or_null(query),
        "multiValueQueryStringParameters": or_null(multi_query),
        "pathParameters": if req.path_parameters.is_empty() { Value::Null } else { path_parameters(req) },
        "stageVariables": null,
        "requestContext": {
            "accountId": req.account_id,
            "apiId": API_ID,
            "domainName": domain_name,
            "domainPrefix": domain_prefix,
            "extendedRequestId": req.request_id,
            "httpMethod": req.method,
            "identity": {
                "accessKey": null,
                "accountId": null,
                "caller": null,
                "cognitoAuthenticationProvider": null,
                "cognitoAuthenticationType": null,
                "cognitoIdentityId": null,
                "cognitoIdentityPoolId": null,
                "principalOrgId": null,
                "sourceIp": req.source_ip,
                "user": null,
                "userAgent": header("user-agent"),
                "userArn": null,
            },
            "path": req.raw_path,
            "protocol": req.protocol,
            "requestId": req.request_id,
            "requestTime": clf_time(req.time_ms),
            "requestTimeEpoch": req.time_ms,
            "resourceId": req.route_key,
            "resourcePath": req.resource,
            "stage": REST_STAGE,
        },
        "body": if req.body.is_empty() { Value::Null } else { Value::String(body_text(req.body, text)) },
        "isBase64Encoded": !text,
    })
}

/// Whether a body goes into the event as text (else base64): UTF-8 and a textual (or absent)
/// content type.
fn is_text(headers: &HeaderMap, body: &[u8]) -> bool {
    if std::str::from_utf8(body).is_err() {
        return false;
    }
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime.ends_with("+json")
        || mime.ends_with("+xml")
        || matches!(
            mime.as_str(),
            "application/json"
                | "application/xml"
                | "application/javascript"
                | "application/x-www-form-urlencoded"
                | "application/yaml"
                | "application/graphql"
        )
}

/// `12/Mar/2020:19:03:58 +0000`.
fn clf_time(ms: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

/// The HTTP response a function's result maps to.
#[derive(Debug, Default)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why a function's result cannot be an HTTP response (the caller gets a 502, as from API
/// Gateway).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MalformedResponse {
    #[error("the result is not JSON")]
    NotJson,
    #[error("statusCode must be an integer from 100 to 599")]
    StatusCode,
    #[error("invalid header '{0}'")]
    Header(String),
    #[error("cookies must be a list of strings")]
    Cookies,
    #[error("isBase64Encoded is set but the body is not base64")]
    Base64,
    #[error("a REST API result needs an object with an integer statusCode")]
    NotProxyResult,
    #[error("a REST API result's body must be a string")]
    Body,
    #[error("a REST API result has the unknown field '{0}'")]
    Field(String),
}

/// Maps a function's result as API Gateway does with payload format 2.0: an object with
/// `statusCode` gives the status, headers, cookies and body; anything else is a `200` with the
/// result as a JSON body.
pub fn response(result: &[u8]) -> Result<HttpResponse, MalformedResponse> {
    let value: Value = serde_json::from_slice(result).map_err(|_| MalformedResponse::NotJson)?;
    let mut out = HttpResponse {
        status: 200,
        ..Default::default()
    };
    let Some(fields) = value.as_object().filter(|o| o.contains_key("statusCode")) else {
        out.headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        out.body = match value {
            Value::String(s) => s.into_bytes(),
            _ => result.trim_ascii().to_vec(),
        };
        return Ok(out);
    };
    out.status = fields["statusCode"]
        .as_u64()
        .filter(|s| (100..=599).contains(s))
        .ok_or(MalformedResponse::StatusCode)? as u16;
    if let Some(headers) = fields.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            append_header(&mut out.headers, name, value)?;
        }
    }
    if let Some(multi) = fields.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                append_header(&mut out.headers, name, value)?;
            }
        }
    }
    match fields.get("cookies") {
        None | Some(Value::Null) => {}
        Some(Value::Array(cookies)) => {
            for cookie in cookies {
                let cookie = cookie.as_str().ok_or(MalformedResponse::Cookies)?;
                append_header(
                    &mut out.headers,
                    "set-cookie",
                    &Value::String(cookie.into()),
                )?;
            }
        }
        Some(_) => return Err(MalformedResponse::Cookies),
    }
    out.body = proxy_body(fields, |other| Ok(other.to_string().into_bytes()))?;
    Ok(out)
}

/// A proxy result's `body` as bytes: base64-decoded when `isBase64Encoded`, empty when absent;
/// a body that is not a string is `not_a_string`'s (the two payload versions differ there).
fn proxy_body(
    fields: &serde_json::Map<String, Value>,
    not_a_string: impl FnOnce(&Value) -> Result<Vec<u8>, MalformedResponse>,
) -> Result<Vec<u8>, MalformedResponse> {
    let base64 = fields
        .get("isBase64Encoded")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match fields.get("body") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) if base64 => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| MalformedResponse::Base64),
        Some(Value::String(s)) => Ok(s.clone().into_bytes()),
        Some(other) => not_a_string(other),
    }
}

/// Maps a function's result as API Gateway REST APIs' Lambda proxy integration does: an object
/// with an integer `statusCode` and only `headers`, `multiValueHeaders`, `body` (a string) and
/// `isBase64Encoded` besides; anything else is malformed (the caller answers 502).
pub fn response_v1(result: &[u8]) -> Result<HttpResponse, MalformedResponse> {
    let value: Value = serde_json::from_slice(result).map_err(|_| MalformedResponse::NotJson)?;
    let fields = value.as_object().ok_or(MalformedResponse::NotProxyResult)?;
    const KNOWN: &[&str] = &[
        "statusCode",
        "headers",
        "multiValueHeaders",
        "body",
        "isBase64Encoded",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(MalformedResponse::Field(
            unknown.chars().take(100).collect(),
        ));
    }
    let status = match fields.get("statusCode") {
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|s| (100..=599).contains(s))
            .ok_or(MalformedResponse::StatusCode)?,
        Some(Value::String(s)) => s
            .parse::<u64>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or(MalformedResponse::StatusCode)?,
        _ => return Err(MalformedResponse::NotProxyResult),
    };
    let mut out = HttpResponse {
        status: status as u16,
        ..Default::default()
    };
    // Multi-value headers first; a single-value header of the same name replaces them.
    if let Some(multi) = fields.get("multiValueHeaders").and_then(Value::as_object) {
        for (name, values) in multi {
            for value in values.as_array().into_iter().flatten() {
                append_header(&mut out.headers, name, value)?;
            }
        }
    }
    if let Some(headers) = fields.get("headers").and_then(Value::as_object) {
        for (name, value) in headers {
            if let Ok(n) = HeaderName::from_bytes(name.as_bytes()) {
                out.headers.remove(n);
            }
            append_header(&mut out.headers, name, value)?;
        }
    }
    out.body = proxy_body(fields, |_| Err(MalformedResponse::Body))?;
    Ok(out)
}

/// Adds one header; values may be strings, numbers or booleans. Framing headers are the
/// server's business and are dropped.
fn append_header(
    headers: &mut HeaderMap,
    name: &str,
    value: &Value,
) -> Result<(), MalformedResponse> {
    let bad = || MalformedResponse::Header(name.chars().take(100).collect());
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        _ => return Err(bad()),
    };
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
    if matches!(
        name.as_str(),
        "content-length" | "transfer-encoding" | "connection"
    ) {
        return Ok(());
    }
    let value = HeaderValue::from_str(&text).map_err(|_| bad())?;
    headers.append(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
        params: &'a [(String, String)],
    ) -> HttpRequest<'a> {
        HttpRequest {
            method: "POST",
            raw_path: "/users/a%20b",
            raw_query: "a=1&a=2&b=x+y&c=%2F",
            headers,
            body,
            protocol: "HTTP/1.1",
            source_ip: "127.0.0.1".into(),
            route_key: "POST /users/{id}".into(),
            resource: "/users/{id}",
            path_parameters: params,
            request_id: "req-1",
            account_id: "default",
            time_ms: 1_583_348_638_390,
        }
    }

    #[test]
    fn events_follow_payload_format_2() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("v1"));
        headers.append("x-multi", HeaderValue::from_static("v2"));
        headers.append("cookie", HeaderValue::from_static("c1=v1; c2=v2"));
        headers.append("host", HeaderValue::from_static("api.example.com"));
        headers.append("user-agent", HeaderValue::from_static("curl/8"));
        headers.append("content-type", HeaderValue::from_static("application/json"));
        let params = [("id".to_string(), "a%20b".to_string())];
        let e = request_event(&request(&headers, br#"{"x":1}"#, &params));
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["routeKey"], "POST /users/{id}");
        assert_eq!(e["headers"]["x-multi"], "v1,v2");
        assert!(
            e["headers"].get("cookie").is_none(),
            "cookies move to cookies[]"
        );
        assert_eq!(e["cookies"], json!(["c1=v1", "c2=v2"]));
        assert_eq!(
            e["queryStringParameters"],
            json!({"a": "1,2", "b": "x y", "c": "/"})
        );
        assert_eq!(e["rawQueryString"], "a=1&a=2&b=x+y&c=%2F");
        assert_eq!(e["pathParameters"], json!({"id": "a b"}));
        assert_eq!(e["body"], r#"{"x":1}"#);
        assert_eq!(e["isBase64Encoded"], false);
        let ctx = &e["requestContext"];
        assert_eq!(ctx["http"]["method"], "POST");
        assert_eq!(ctx["http"]["path"], "/users/a%20b");
        assert_eq!(ctx["http"]["userAgent"], "curl/8");
        assert_eq!(ctx["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["domainName"], "api.example.com");
        assert_eq!(ctx["domainPrefix"], "api");
        assert_eq!(ctx["stage"], "$default");
        assert_eq!(ctx["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(ctx["timeEpoch"], 1_583_348_638_390i64);
        assert_eq!(ctx["requestId"], "req-1");
    }

    #[test]
    fn binary_bodies_are_base64_and_absent_parts_are_omitted() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("image/png"));
        let mut req = request(&headers, b"\x89PNG\x00", &[]);
        req.raw_query = "";
        let e = request_event(&req);
        assert_eq!(e["isBase64Encoded"], true);
        assert_eq!(e["body"], "iVBORwA=");
        for absent in ["cookies", "queryStringParameters", "pathParameters"] {
            assert!(e.get(absent).is_none(), "{absent}");
        }
        assert_eq!(e["rawQueryString"], "");
        let empty = request_event(&request(&headers, b"", &[]));
        assert!(empty.get("body").is_none());
    }

    #[test]
    fn results_with_status_code_map_field_by_field() {
        let r = response(
            br#"{"statusCode": 201, "headers": {"x-a": "1", "x-n": 2},
                 "multiValueHeaders": {"x-m": ["a", "b"]},
                 "cookies": ["s=1; Path=/", "t=2"], "body": "aGk=", "isBase64Encoded": true}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        assert_eq!(r.headers["x-a"], "1");
        assert_eq!(r.headers["x-n"], "2");
        let m: Vec<_> = r.headers.get_all("x-m").iter().collect();
        assert_eq!(m, ["a", "b"]);
        let c: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
        assert_eq!(c, ["s=1; Path=/", "t=2"]);
        assert_eq!(r.body, b"hi");
    }

    #[test]
    fn other_results_are_200_json() {
        let r = response(br#"{"hello": "world"}"#).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.body, br#"{"hello": "world"}"#);
        let r = response(br#""plain text""#).unwrap();
        assert_eq!(r.body, b"plain text");
        let r = response(b"[1,2]").unwrap();
        assert_eq!(r.body, b"[1,2]");
    }

    #[test]
    fn malformed_results_are_refused() {
        assert_eq!(
            response(b"not json").unwrap_err(),
            MalformedResponse::NotJson
        );
        assert_eq!(
            response(br#"{"statusCode": "200"}"#).unwrap_err(),
            MalformedResponse::StatusCode
        );
        assert_eq!(
            response(br#"{"statusCode": 700}"#).unwrap_err(),
            MalformedResponse::StatusCode
        );
        assert_eq!(
            response(br#"{"statusCode": 200, "body": "%%", "isBase64Encoded": true}"#).unwrap_err(),
            MalformedResponse::Base64
        );
        assert_eq!(
            response(br#"{"statusCode": 200, "headers": {"bad name": "x"}}"#).unwrap_err(),
            MalformedResponse::Header("bad name".into())
        );
    }

    #[test]
    fn rest_events_follow_payload_format_1() {
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("v1"));
        headers.append("x-multi", HeaderValue::from_static("v2"));
        headers.append("cookie", HeaderValue::from_static("c1=v1"));
        headers.append("host", HeaderValue::from_static("api.example.com"));
        headers.append("user-agent", HeaderValue::from_static("curl/8"));
        let params = [("id".to_string(), "a%20b".to_string())];
        let e = request_event_v1(&request(&headers, b"hello", &params));
        assert_eq!(e["resource"], "/users/{id}");
        assert_eq!(e["path"], "/users/a%20b");
        assert_eq!(e["httpMethod"], "POST");
        assert_eq!(e["headers"]["x-multi"], "v2");
        assert_eq!(e["headers"]["cookie"], "c1=v1");
        assert_eq!(e["multiValueHeaders"]["x-multi"], json!(["v1", "v2"]));
        assert_eq!(e["queryStringParameters"]["a"], "2");
        assert_eq!(e["queryStringParameters"]["b"], "x y");
        assert_eq!(e["multiValueQueryStringParameters"]["a"], json!(["1", "2"]));
        assert_eq!(e["pathParameters"]["id"], "a b");
        assert_eq!(e["stageVariables"], Value::Null);
        let ctx = &e["requestContext"];
        assert_eq!(ctx["stage"], REST_STAGE);
        assert_eq!(ctx["resourcePath"], "/users/{id}");
        assert_eq!(ctx["httpMethod"], "POST");
        assert_eq!(ctx["requestId"], "req-1");
        assert_eq!(ctx["identity"]["sourceIp"], "127.0.0.1");
        assert_eq!(ctx["identity"]["userAgent"], "curl/8");
        assert_eq!(ctx["requestTimeEpoch"], 1_583_348_638_390i64);
        assert_eq!(e["body"], "hello");
        assert_eq!(e["isBase64Encoded"], false);
        assert!(e.get("version").is_none());

        let no_headers = HeaderMap::new();
        let mut bare = request(&no_headers, b"", &[]);
        bare.raw_query = "";
        let e = request_event_v1(&bare);
        for null in [
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "body",
            "headers",
        ] {
            assert_eq!(e[null], Value::Null, "{null}");
        }
    }

    #[test]
    fn rest_results_map_as_the_proxy_integration_does() {
        let r = response_v1(
            br#"{"statusCode": 201, "headers": {"x-a": "1"},
                 "multiValueHeaders": {"x-m": ["a", "b"], "x-a": ["0"]},
                 "body": "aGk=", "isBase64Encoded": true}"#,
        )
        .unwrap();
        assert_eq!(r.status, 201);
        let a: Vec<_> = r.headers.get_all("x-a").iter().collect();
        assert_eq!(a, ["1"]);
        let m: Vec<_> = r.headers.get_all("x-m").iter().collect();
        assert_eq!(m, ["a", "b"]);
        assert_eq!(r.body, b"hi");
        let r = response_v1(br#"{"statusCode": "404"}"#).unwrap();
        assert_eq!((r.status, r.body.len()), (404, 0));
    }

    #[test]
    fn malformed_rest_results_are_refused() {
        let cases: [(&[u8], MalformedResponse); 7] = [
            (
                br#"{"hello": "world"}"#,
                MalformedResponse::Field("hello".into()),
            ),
            (br#"{"body": "x"}"#, MalformedResponse::NotProxyResult),
            (br#""text""#, MalformedResponse::NotProxyResult),
            (b"nope", MalformedResponse::NotJson),
            (
                br#"{"statusCode": 200, "body": {"a": 1}}"#,
                MalformedResponse::Body,
            ),
            (
                br#"{"statusCode": 200, "cookies": ["a=1"]}"#,
                MalformedResponse::Field("cookies".into()),
            ),
            (br#"{"statusCode": 1000}"#, MalformedResponse::StatusCode),
        ];
        for (result, error) in cases {
            assert_eq!(response_v1(result).unwrap_err(), error);
        }
    }
}
