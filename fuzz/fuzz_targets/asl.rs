//! The Amazon States Language: state machine definitions, JSONPath queries (selected from and
//! written into a document), intrinsic function calls and JSONata expressions. Parsing never
//! panics; a definition refused by `parse` has diagnostics from `validate`; a parsed path
//! parses again from its own source.
//!
//! Input: the first byte picks the parser (mod 4: definition, JSONPath, intrinsic, JSONata),
//! the rest is the text.
#![no_main]

use lambent_workflows::intrinsics::Call;
use lambent_workflows::jsonata::Expr;
use lambent_workflows::path::Query;
use lambent_workflows::StateMachine;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match pick % 4 {
        0 => {
            if StateMachine::parse(text).is_err() {
                assert!(
                    !StateMachine::validate(text).is_empty(),
                    "refused without a diagnostic"
                );
            }
        }
        1 => {
            let Ok(query) = Query::parse(text) else {
                return;
            };
            Query::parse(query.source()).expect("a parsed path parses again");
            let mut doc = json!({
                "a": {"b": [1, 2, {"c": "d"}], "e": null},
                "list": [{"x": 1}, {"x": 2}],
                "s": "text"
            });
            let _ = query.select_from(&doc);
            let _ = query.write(&mut doc, json!({"new": true}));
        }
        2 => {
            let _ = Call::parse(text);
        }
        _ => {
            let _ = Expr::parse(text);
        }
    }
});
