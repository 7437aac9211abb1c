//! The listener's S3 dispatch rule over a presigned URL's query (and the `Authorization` and
//! `Host` headers): never panics, and a query naming an `s3` credential scope is S3's whatever
//! else it holds.
//!
//! Input: query NUL headers (`name: value` lines) NUL domain.
#![no_main]

use lambent_fuzz::{fields, headers};
use lambent_s3_api::is_s3_request;
use libfuzzer_sys::fuzz_target;

const S3_SCOPE: &str = "X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request";

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 3);
    let mut headers = headers(&f[1]);
    let domain = (!f[2].is_empty()).then_some(f[2].as_str());
    let _ = is_s3_request(&headers, Some(&f[0]), domain);
    let _ = is_s3_request(&headers, None, domain);
    headers.remove("authorization");
    headers.remove("host");
    let with_scope = format!("{}&{S3_SCOPE}", f[0]);
    assert!(
        is_s3_request(&headers, Some(&with_scope), None),
        "{with_scope}"
    );
});
