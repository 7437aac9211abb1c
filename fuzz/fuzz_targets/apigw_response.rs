//! A function's result mapped to the HTTP response as API Gateway does (HTTP API 2.0 and REST
//! 1.0): never panics; an accepted result has a status from 100 to 599.
#![no_main]

use lambent_gateway::apigw::{response, response_v1};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for mapped in [response(data), response_v1(data)] {
        if let Ok(r) = mapped {
            assert!((100..=599).contains(&r.status), "status {}", r.status);
        }
    }
});
