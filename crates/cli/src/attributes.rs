//! Items in two forms: DynamoDB's typed JSON (`{"pk": {"S": "a"}, "n": {"N": "1"}}`), which
//! the API speaks, and plain JSON (`{"pk": "a", "n": 1}`), which people type. Plain to typed:
//! strings are `S`, numbers `N` (as JSON wrote them, so `1.50` stays `1.50` for the server to
//! canonicalize), booleans `BOOL`, `null` `NULL`, arrays `L`, objects `M`. Typed to plain:
//! `N` becomes a JSON number when it reads back as the same text (else a string, so that no
//! digit is lost), `B` stays base64 text, and sets become arrays. Plain form cannot write
//! sets or binaries: `--typed` can.

use serde_json::{json, Map, Number, Value};

/// Why a plain or typed item was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("an item must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    #[error("attribute '{name}' is not a typed value ({{\"S\": …}}, {{\"N\": …}}, …): {detail}")]
    NotTyped { name: String, detail: String },
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A plain JSON value as a typed attribute value.
pub fn to_typed(v: &Value) -> Value {
    match v {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({ "BOOL": b }),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({ "S": s }),
        Value::Array(a) => json!({"L": a.iter().map(to_typed).collect::<Vec<_>>()}),
        Value::Object(o) => json!({"M": typed_map(o)}),
    }
}

fn typed_map(o: &Map<String, Value>) -> Map<String, Value> {
    o.iter().map(|(k, v)| (k.clone(), to_typed(v))).collect()
}

/// A plain item (a JSON object) as a typed item.
pub fn item_to_typed(v: &Value) -> Result<Value, AttributeError> {
    match v {
        Value::Object(o) => Ok(Value::Object(typed_map(o))),
        other => Err(AttributeError::NotAnObject(kind(other))),
    }
}

/// A typed item checked to be an object of single-type values (the server checks the rest).
pub fn check_typed_item(v: &Value) -> Result<(), AttributeError> {
    let Value::Object(o) = v else {
        return Err(AttributeError::NotAnObject(kind(v)));
    };
    for (name, value) in o {
        match value {
            Value::Object(t) if t.len() == 1 => {}
            other => {
                return Err(AttributeError::NotTyped {
                    name: name.clone(),
                    detail: format!("got {}", kind(other)),
                })
            }
        }
    }
    Ok(())
}

/// A number's text as a JSON number if it reads back as the same text, else a string.
fn plain_number(text: &str) -> Value {
    match text.parse::<Number>() {
        Ok(n) if n.to_string() == text => Value::Number(n),
        _ => Value::String(text.to_string()),
    }
}

/// A typed attribute value in plain JSON (an unknown shape is kept as it is).
pub fn to_plain(v: &Value) -> Value {
    let Some((ty, inner)) = v
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
    else {
        return v.clone();
    };
    let each = |f: fn(&Value) -> Value| match inner {
        Value::Array(a) => Value::Array(a.iter().map(f).collect()),
        other => other.clone(),
    };
    match (ty.as_str(), inner) {
        ("S" | "B" | "BOOL", _) => inner.clone(),
        ("NULL", _) => Value::Null,
        ("N", Value::String(n)) => plain_number(n),
        ("SS" | "BS", _) => inner.clone(),
        ("NS", _) => each(|n| n.as_str().map(plain_number).unwrap_or_else(|| n.clone())),
        ("L", _) => each(to_plain),
        ("M", Value::Object(m)) => Value::Object(plain_map(m)),
        _ => v.clone(),
    }
}

fn plain_map(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter().map(|(k, v)| (k.clone(), to_plain(v))).collect()
}

/// A typed item in plain JSON.
pub fn item_to_plain(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(plain_map(o)),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_items_become_typed() {
        let plain = json!({"pk": "a", "n": 1.5, "ok": true, "none": null,
                           "l": [1, "x"], "m": {"k": -2}});
        assert_eq!(
            item_to_typed(&plain).unwrap(),
            json!({"pk": {"S": "a"}, "n": {"N": "1.5"}, "ok": {"BOOL": true},
                   "none": {"NULL": true}, "l": {"L": [{"N": "1"}, {"S": "x"}]},
                   "m": {"M": {"k": {"N": "-2"}}}})
        );
        assert_eq!(
            item_to_typed(&json!([1])),
            Err(AttributeError::NotAnObject("an array"))
        );
    }

    #[test]
    fn typed_items_become_plain_without_losing_digits() {
        let typed = json!({"pk": {"S": "a"}, "n": {"N": "1.5"},
            "big": {"N": "12345678901234567890123456789012345678"},
            "ns": {"NS": ["1", "2"]}, "ss": {"SS": ["x"]}, "b": {"B": "AAE="},
            "m": {"M": {"l": {"L": [{"BOOL": false}, {"NULL": true}]}}}});
        assert_eq!(
            item_to_plain(&typed),
            json!({"pk": "a", "n": 1.5, "big": "12345678901234567890123456789012345678",
                   "ns": [1, 2], "ss": ["x"], "b": "AAE=", "m": {"l": [false, null]}})
        );
    }

    #[test]
    fn typed_items_are_checked_for_shape() {
        assert!(check_typed_item(&json!({"pk": {"S": "a"}})).is_ok());
        assert_eq!(
            check_typed_item(&json!({"pk": "a"})),
            Err(AttributeError::NotTyped {
                name: "pk".into(),
                detail: "got a string".into()
            })
        );
    }
}
