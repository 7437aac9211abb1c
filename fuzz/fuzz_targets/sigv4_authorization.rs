//! The SigV4 `Authorization` header: parsing never panics, and a parsed header written back
//! in AWS's form parses to the same parts.
#![no_main]

use lambent_aws_api::sigv4::Authorization;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(auth) = Authorization::parse(text) else {
        return;
    };
    let written = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
        auth.access_key_id,
        auth.date,
        auth.region,
        auth.service,
        auth.signed_headers.join(";"),
        auth.signature
    );
    let again = Authorization::parse(&written).expect("a written header parses");
    assert_eq!(auth, again, "{written}");
});
