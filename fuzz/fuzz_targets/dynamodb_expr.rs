//! DynamoDB's expressions and values: condition, filter, update, projection and
//! key-condition expressions parsed with a fixed set of names and values and applied to a
//! fixed item; numbers; attribute values in their wire form. Never panics; an updated item is
//! still a valid item; a number prints to text that parses to the same number; a value read
//! from the wire writes back to JSON that reads to the same value.
//!
//! Input: the first byte picks (mod 7: condition, filter, update, projection, key condition,
//! number, wire value), the rest is the text.
#![no_main]

use lambent_tables::{AttributeValue, Expressions, Item, KeySchema, KeyType, Number};
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use std::collections::HashMap;
use std::sync::OnceLock;

struct Fixture {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    item: Item,
    schema: KeySchema,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| Fixture {
        names: [("#n", "name"), ("#s", "status"), ("#dot", "a.b"), ("#l", "list")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        values: serde_json::from_value(json!({
            ":one": {"N": "1"}, ":ten": {"N": "10"}, ":neg": {"N": "-1.5"},
            ":a": {"S": "a"}, ":t": {"BOOL": true}, ":null": {"NULL": true},
            ":ss": {"SS": ["x", "y"]}, ":ns": {"NS": ["1", "5"]},
            ":lst": {"L": [{"N": "9"}]}, ":map": {"M": {"k": {"S": "v"}}},
            ":b": {"B": "AQI="}, ":empty": {"L": []}, ":big": {"N": "9.9999999999999999999999999999999999999E+125"},
        }))
        .expect("values"),
        item: serde_json::from_value(json!({
            "pk": {"S": "p"}, "sk": {"N": "3"}, "name": {"S": "alice"}, "age": {"N": "10"},
            "status": {"S": "on"}, "a.b": {"N": "1"}, "flag": {"BOOL": true},
            "nothing": {"NULL": true}, "tags": {"SS": ["x", "y", "z"]},
            "nums": {"NS": ["1", "2"]}, "bin": {"B": "AQID"},
            "list": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"c": {"N": "3"}}}]},
            "m": {"M": {"child": {"M": {"deep": {"S": "d"}}}, "n": {"N": "5"}}},
        }))
        .expect("item"),
        schema: KeySchema::new(("pk", KeyType::S), Some(("sk", KeyType::N))),
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let f = fixture();
    let mut ex = Expressions::new(Some(f.names.clone()), Some(f.values.clone()))
        .expect("the fixture's names and values");
    match pick % 7 {
        0 => {
            if let Ok(c) = ex.condition(text) {
                let _ = c.evaluate(Some(&f.item));
                let _ = c.evaluate(None);
            }
        }
        1 => {
            if let Ok(c) = ex.filter(text) {
                let _ = c.evaluate(Some(&f.item));
            }
        }
        2 => {
            if let Ok(u) = ex.update(text) {
                let _ = u.check_keys(&f.schema);
                let _ = u.updated_projection().apply(&f.item);
                if let Ok(updated) = u.apply(&f.item) {
                    for v in updated.values() {
                        v.validate().expect("an update leaves valid values");
                    }
                }
            }
        }
        3 => {
            if let Ok(p) = ex.projection(text) {
                let _ = p.apply(&f.item);
            }
        }
        4 => {
            if let Ok(k) = ex.key_condition(text, &f.schema) {
                let _ = k.matches(&f.item, &f.schema);
                let _ = k.composite_range();
            }
        }
        5 => {
            if let Ok(n) = Number::parse(text) {
                let printed = n.to_string();
                let again = Number::parse(&printed).expect("a printed number parses");
                assert_eq!(n, again, "{text} printed as {printed}");
            }
        }
        _ => {
            if let Ok(v) = serde_json::from_str::<AttributeValue>(text) {
                let wire = serde_json::to_string(&v).expect("a value serializes");
                let again: AttributeValue =
                    serde_json::from_str(&wire).expect("a written value reads");
                assert_eq!(v, again, "{text} written as {wire}");
            }
        }
    }
});
