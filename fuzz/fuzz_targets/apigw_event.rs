//! The API Gateway events a routed request becomes (HTTP API 2.0 and REST 1.0): never panics,
//! whatever the method, path, query, headers, body and clock; each event is JSON that carries
//! the body back exactly (as text, or base64 when `isBase64Encoded`).
//!
//! Input: method NUL path NUL query NUL headers (`name: value` lines) NUL body NUL time (ms,
//! decimal).
#![no_main]

use base64::Engine;
use lambent_fuzz::{fields, headers};
use lambent_gateway::apigw::{request_event, request_event_v1, HttpRequest};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 6);
    let headers = headers(&f[3]);
    let params = vec![(
        "proxy".to_string(),
        f[1].trim_start_matches('/').to_string(),
    )];
    let req = HttpRequest {
        method: &f[0],
        raw_path: &f[1],
        raw_query: &f[2],
        headers: &headers,
        body: f[4].as_bytes(),
        protocol: "HTTP/1.1",
        source_ip: "127.0.0.1".into(),
        route_key: format!("{} /{{proxy+}}", f[0]),
        resource: "/{proxy+}",
        path_parameters: &params,
        request_id: "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        account_id: "default",
        time_ms: f[5].trim().parse().unwrap_or(1_700_000_000_000),
    };
    for event in [request_event(&req), request_event_v1(&req)] {
        let text = serde_json::to_string(&event).expect("an event serializes");
        let event: Value = serde_json::from_str(&text).expect("an event is JSON");
        let body = event["body"].as_str().unwrap_or_default();
        let carried = if event["isBase64Encoded"] == Value::Bool(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .expect("a base64 body decodes")
        } else {
            body.as_bytes().to_vec()
        };
        assert_eq!(carried, req.body, "the event carries the body back");
    }
});
