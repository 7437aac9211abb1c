//! The SigV4 canonical request of any request: signing never panics, a request signed with a
//! secret verifies with it (and not with another, nor with its body changed), and the checks
//! that need no secret never panic.
//!
//! Input: method NUL path NUL query NUL headers (`name: value` lines) NUL body.
#![no_main]

use axum::http::HeaderValue;
use lambent_aws_api::sigv4::{self, Authorization, Expected, Request};
use lambent_fuzz::{fields, headers};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 5);
    let mut headers = headers(&f[3]);
    headers.insert("host", HeaderValue::from_static("example.amazonaws.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
    let mut signed: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
    signed.sort();
    signed.dedup();
    let mut auth = Authorization {
        access_key_id: "AKIDEXAMPLE".into(),
        date: "20150830".into(),
        region: "us-east-1".into(),
        service: "service".into(),
        signed_headers: signed,
        signature: String::new(),
    };
    let body = f[4].as_bytes();
    let req = Request {
        method: &f[0],
        raw_path: &f[1],
        raw_query: &f[2],
        headers: &headers,
        body,
    };
    assert_eq!(
        sigv4::canonical_request(&req, &auth),
        sigv4::canonical_request(&req, &auth),
        "the canonical request is a function of the request"
    );
    auth.signature = sigv4::sign(&req, &auth, SECRET);
    sigv4::verify_signature(&req, &auth, SECRET).expect("a signed request verifies");
    assert!(sigv4::verify_signature(&req, &auth, "another secret").is_err());
    let changed = [body, b"x"].concat();
    let tampered = Request {
        body: &changed,
        ..req
    };
    assert!(sigv4::verify_signature(&tampered, &auth, SECRET).is_err());

    // The header as a client writes it, through the checks that need no secret.
    let value = format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders={}, Signature={}",
        auth.signed_headers.join(";"),
        auth.signature
    );
    let mut with_auth = headers.clone();
    if let Ok(v) = HeaderValue::from_str(&value) {
        with_auth.insert("authorization", v);
        let req = Request {
            headers: &with_auth,
            ..req
        };
        let expected = Expected {
            region: "us-east-1",
            service: "service",
            now: time::macros::datetime!(2015-08-30 12:36:00 UTC),
        };
        let _ = sigv4::check_request(&req, &expected);
    }
});
