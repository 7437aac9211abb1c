//! Queue and topic message attributes from outside: SQS's query-protocol form parameters (and
//! the JSON they become), SNS's `MessageAttributes.entry.N`, and SNS subscription filter
//! policies matched against them. Never panics; SQS accepts only binary values that are
//! base64; the attributes' MD5 is computed for any accepted set, and it does not depend on
//! the route the attributes came by (form or JSON).
//!
//! Input: form parameters (`a=b&c=d`, as a body) NUL filter policy (JSON) NUL message body.
#![no_main]

use base64::Engine;
use lambent_fuzz::fields;
use lambent_queues::filter::{FilterPolicy, Scope};
use lambent_sqs_api::{query, sns, sqs, wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 3);
    let params = wire::params(None, f[0].as_bytes());
    let input = query::input(&params);
    let from_form = sqs::message_attributes(&input);
    if let Ok(attributes) = &from_form {
        for a in attributes.values() {
            if let Some(b) = &a.binary_value {
                assert!(base64::engine::general_purpose::STANDARD.decode(b).is_ok());
            }
        }
        let md5 = sqs::md5_of_attributes(attributes);
        // The same attributes sent with the JSON protocol.
        let json = serde_json::json!({ "MessageAttributes": input["MessageAttributes"] });
        let from_json = sqs::message_attributes(&json).expect("the same attributes as JSON");
        assert_eq!(sqs::md5_of_attributes(&from_json), md5);
    }
    let published = sns::message_attributes(&params);
    let _ = sqs::md5_of_attributes(&published);
    for scope in [Scope::MessageAttributes, Scope::MessageBody] {
        if let Ok(policy) = FilterPolicy::parse(&f[1], scope) {
            let _ = policy.matches(scope, &published, &f[2]);
            if let Ok(attributes) = &from_form {
                let _ = policy.matches(scope, attributes, &f[2]);
            }
        }
    }
});
