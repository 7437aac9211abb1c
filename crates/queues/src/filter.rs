//! SNS subscription filter policies: which published messages a subscription gets.
//!
//! A policy is a JSON object: every key must match (AND), each key's list of conditions matches
//! when any of them does (OR); `"$or": [policy, …]` matches when one of its policies does. The
//! scope ([`Scope`]) is the message's attributes (String, Number, and `String.Array` as its
//! elements; Binary ones never match), or its body read as JSON, where keys nest. Conditions:
//! a string or number (exact; numbers compared as numbers), `{"prefix": s}`, `{"suffix": s}`,
//! `{"equals-ignore-case": s}`, `{"anything-but": v | [v…] | {"prefix": s} | {"suffix": s}}`,
//! `{"numeric": [op, n, op, n]}` (`=`, `<`, `<=`, `>`, `>=`), `{"exists": bool}`, and `null`
//! (the key is there with a null value, body scope).

use serde_json::{Map, Value};

/// What a policy looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    MessageAttributes,
    MessageBody,
}

impl Scope {
    /// The `FilterPolicyScope` attribute's value (default `MessageAttributes`).
    pub fn parse(value: Option<&str>) -> Result<Scope, String> {
        match value.unwrap_or("MessageAttributes") {
            "MessageAttributes" => Ok(Scope::MessageAttributes),
            "MessageBody" => Ok(Scope::MessageBody),
            other => Err(format!(
                "FilterPolicyScope: Invalid value [{other}]. Please use either MessageBody or MessageAttributes"
            )),
        }
    }
}

/// A checked filter policy.
#[derive(Debug, Clone)]
pub struct FilterPolicy {
    policy: Map<String, Value>,
}

impl FilterPolicy {
    /// Parses and checks a policy's text, as `SetSubscriptionAttributes` must before storing
    /// it. The error says what is wrong, in SNS's words where it has them.
    pub fn parse(text: &str, scope: Scope) -> Result<FilterPolicy, String> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| format!("FilterPolicy: failed to parse JSON: {e}"))?;
        let Value::Object(policy) = value else {
            return Err("FilterPolicy: Filter policy must be a JSON object".into());
        };
        check_object(&policy, scope, 0)?;
        Ok(FilterPolicy { policy })
    }

    /// Whether a message with these attributes (name → (data type, string value)) and this
    /// body passes.
    pub fn matches(&self, scope: Scope, attributes: &crate::Attributes, body: &str) -> bool {
        match scope {
            Scope::MessageAttributes => {
                let mut fields = Map::new();
                for (name, a) in attributes {
                    let Some(s) = &a.string_value else { continue };
                    let value = match a.data_type.split('.').next().unwrap_or_default() {
                        "Number" => match s.trim().parse::<f64>() {
                            Ok(n) => {
                                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
                            }
                            Err(_) => continue,
                        },
                        _ if a.data_type == "String.Array" => {
                            serde_json::from_str::<Value>(s).unwrap_or(Value::String(s.clone()))
                        }
                        _ => Value::String(s.clone()),
                    };
                    fields.insert(name.clone(), value);
                }
                matches_object(&self.policy, &fields)
            }
            Scope::MessageBody => match serde_json::from_str::<Value>(body) {
                Ok(Value::Object(fields)) => matches_object(&self.policy, &fields),
                _ => false,
            },
        }
    }
}

const MAX_DEPTH: usize = 5;

fn check_object(policy: &Map<String, Value>, scope: Scope, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("FilterPolicy: Filter policy is too complex".into());
    }
    if policy.is_empty() && depth > 0 {
        return Err("FilterPolicy: Empty objects are not allowed".into());
    }
    for (key, value) in policy {
        match (key.as_str(), value) {
            ("$or", Value::Array(branches)) if branches.len() >= 2 => {
                for b in branches {
                    let Value::Object(b) = b else {
                        return Err("FilterPolicy: $or must be a list of objects".into());
                    };
                    check_object(b, scope, depth + 1)?;
                }
            }
            ("$or", _) => {
                return Err("FilterPolicy: $or must be a list of 2 or more objects".into())
            }
            (_, Value::Array(conditions)) => {
                if conditions.is_empty() {
                    return Err(format!(
                        "FilterPolicy: Empty arrays are not allowed ({key})"
                    ));
                }
                for c in conditions {
                    check_condition(key, c)?;
                }
            }
            (_, Value::Object(nested)) if scope == Scope::MessageBody => {
                check_object(nested, scope, depth + 1)?;
            }
            _ => {
                return Err(format!(
                    "FilterPolicy: \"{key}\" must be an object or an array"
                ))
            }
        }
    }
    Ok(())
}

fn check_condition(key: &str, c: &Value) -> Result<(), String> {
    let bad = |why: &str| Err(format!("FilterPolicy: {key}: {why}"));
    let Value::Object(o) = c else {
        return match c {
            Value::String(_) | Value::Number(_) | Value::Null => Ok(()),
            _ => bad("Match value must be String, number, true, false, or null"),
        };
    };
    let mut entries = o.iter();
    let (Some((op, arg)), None) = (entries.next(), entries.next()) else {
        return bad("a condition names one operator");
    };
    match (op.as_str(), arg) {
        ("prefix" | "suffix" | "equals-ignore-case", Value::String(_)) => Ok(()),
        ("exists", Value::Bool(_)) => Ok(()),
        ("anything-but", Value::String(_) | Value::Number(_)) => Ok(()),
        ("anything-but", Value::Array(vs))
            if !vs.is_empty() && vs.iter().all(|v| v.is_string() || v.is_number()) =>
        {
            Ok(())
        }
        ("anything-but", Value::Object(inner)) => match inner.iter().next() {
            Some((k, Value::String(_))) if inner.len() == 1 && (k == "prefix" || k == "suffix") => {
                Ok(())
            }
            _ => bad("anything-but takes a value, a list of values, a prefix or a suffix"),
        },
        ("numeric", Value::Array(parts)) => {
            if parts.is_empty() || parts.len() % 2 != 0 || parts.len() > 4 {
                return bad("numeric takes one or two (operator, number) pairs");
            }
            for pair in parts.chunks(2) {
                let op_ok = matches!(pair[0].as_str(), Some("=" | "<" | "<=" | ">" | ">="));
                if !op_ok || !pair[1].is_number() {
                    return bad("Unrecognized numeric range operator or value");
                }
            }
            Ok(())
        }
        (other, _) => bad(&format!("Unrecognized match type {other}")),
    }
}

fn matches_object(policy: &Map<String, Value>, fields: &Map<String, Value>) -> bool {
    policy.iter().all(|(key, rule)| match (key.as_str(), rule) {
        ("$or", Value::Array(branches)) => branches
            .iter()
            .any(|b| b.as_object().is_some_and(|b| matches_object(b, fields))),
        (_, Value::Object(nested)) => match fields.get(key) {
            Some(Value::Object(inner)) => matches_object(nested, inner),
            _ => false,
        },
        (_, Value::Array(conditions)) => {
            let field = fields.get(key);
            conditions.iter().any(|c| matches_condition(c, field))
        }
        _ => false,
    })
}

/// The values a field offers a condition: an array's elements, or the value itself.
fn values(field: &Value) -> Vec<&Value> {
    match field {
        Value::Array(items) => items.iter().collect(),
        v => vec![v],
    }
}

fn matches_condition(c: &Value, field: Option<&Value>) -> bool {
    let Value::Object(o) = c else {
        return match field {
            Some(f) => values(f).into_iter().any(|v| equal(c, v)),
            None => false,
        };
    };
    let Some((op, arg)) = o.iter().next() else {
        return false;
    };
    if op == "exists" {
        let present = field.is_some_and(|f| !f.is_null());
        return arg.as_bool() == Some(present);
    }
    let Some(field) = field else { return false };
    let any = |test: &dyn Fn(&Value) -> bool| values(field).into_iter().any(test);
    let text = |v: &Value| v.as_str().map(str::to_string);
    match op.as_str() {
        "prefix" => any(&|v| {
            text(v)
                .zip(arg.as_str())
                .is_some_and(|(s, p)| s.starts_with(p))
        }),
        "suffix" => any(&|v| {
            text(v)
                .zip(arg.as_str())
                .is_some_and(|(s, p)| s.ends_with(p))
        }),
        "equals-ignore-case" => any(&|v| {
            text(v)
                .zip(arg.as_str())
                .is_some_and(|(s, p)| s.eq_ignore_ascii_case(p))
        }),
        "anything-but" => {
            // Every value the field offers must avoid the excluded ones.
            let avoided = |v: &Value| match arg {
                Value::Array(excluded) => !excluded.iter().any(|e| equal(e, v)),
                Value::Object(inner) => match inner.iter().next() {
                    Some((k, Value::String(p))) => match text(v) {
                        Some(s) if k == "prefix" => !s.starts_with(p.as_str()),
                        Some(s) => !s.ends_with(p.as_str()),
                        None => true,
                    },
                    _ => false,
                },
                e => !equal(e, v),
            };
            !field.is_null() && values(field).into_iter().all(avoided)
        }
        "numeric" => any(&|v| {
            let Some(n) = v.as_f64() else { return false };
            arg.as_array().is_some_and(|parts| {
                parts.chunks(2).all(|pair| {
                    let bound = pair[1].as_f64().unwrap_or(f64::NAN);
                    match pair[0].as_str() {
                        Some("=") => n == bound,
                        Some("<") => n < bound,
                        Some("<=") => n <= bound,
                        Some(">") => n > bound,
                        Some(">=") => n >= bound,
                        _ => false,
                    }
                })
            })
        }),
        _ => false,
    }
}

/// Exact match: strings as strings, numbers as numbers (`5` matches `5.0`), null as null.
fn equal(condition: &Value, v: &Value) -> bool {
    match (condition, v) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attributes, MessageAttribute};

    fn attrs(pairs: &[(&str, &str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(name, data_type, value)| {
                (
                    name.to_string(),
                    MessageAttribute {
                        data_type: data_type.to_string(),
                        string_value: Some(value.to_string()),
                        binary_value: None,
                    },
                )
            })
            .collect()
    }

    fn passes(policy: &str, a: &Attributes) -> bool {
        FilterPolicy::parse(policy, Scope::MessageAttributes)
            .unwrap()
            .matches(Scope::MessageAttributes, a, "")
    }

    #[test]
    fn attribute_conditions_match_as_sns_documents() {
        let order = attrs(&[
            ("store", "String", "example_corp"),
            ("event", "String", "order_placed"),
            ("price_usd", "Number", "210.75"),
            (
                "customer_interests",
                "String.Array",
                r#"["soccer", "rugby"]"#,
            ),
        ]);
        assert!(passes(r#"{"store": ["example_corp"]}"#, &order));
        assert!(!passes(r#"{"store": ["other"]}"#, &order));
        assert!(passes(r#"{"store": ["other", "example_corp"]}"#, &order));
        assert!(passes(r#"{"customer_interests": ["rugby"]}"#, &order));
        assert!(passes(r#"{"event": [{"prefix": "order_"}]}"#, &order));
        assert!(passes(r#"{"event": [{"suffix": "_placed"}]}"#, &order));
        assert!(passes(
            r#"{"store": [{"equals-ignore-case": "EXAMPLE_CORP"}]}"#,
            &order
        ));
        assert!(passes(
            r#"{"price_usd": [{"numeric": [">=", 100, "<", 300]}]}"#,
            &order
        ));
        assert!(!passes(
            r#"{"price_usd": [{"numeric": ["<", 100]}]}"#,
            &order
        ));
        assert!(passes(r#"{"price_usd": [210.75]}"#, &order));
        assert!(passes(
            r#"{"event": [{"anything-but": ["order_cancelled"]}]}"#,
            &order
        ));
        assert!(!passes(
            r#"{"event": [{"anything-but": "order_placed"}]}"#,
            &order
        ));
        assert!(!passes(
            r#"{"event": [{"anything-but": {"prefix": "order"}}]}"#,
            &order
        ));
        assert!(passes(r#"{"store": [{"exists": true}]}"#, &order));
        assert!(passes(r#"{"coupon": [{"exists": false}]}"#, &order));
        assert!(!passes(r#"{"coupon": [{"exists": true}]}"#, &order));
        // A missing attribute fails anything-but too.
        assert!(!passes(r#"{"coupon": [{"anything-but": "x"}]}"#, &order));
        // Every key must match.
        assert!(!passes(
            r#"{"store": ["example_corp"], "event": ["refund"]}"#,
            &order
        ));
        assert!(passes(
            r#"{"$or": [{"event": ["refund"]}, {"store": ["example_corp"]}]}"#,
            &order
        ));
    }

    #[test]
    fn body_policies_nest() {
        let policy = FilterPolicy::parse(
            r#"{"order": {"kind": ["book"], "total": [{"numeric": [">", 10]}]}}"#,
            Scope::MessageBody,
        )
        .unwrap();
        let m = |body: &str| policy.matches(Scope::MessageBody, &Attributes::new(), body);
        assert!(m(r#"{"order": {"kind": "book", "total": 12}}"#));
        assert!(!m(r#"{"order": {"kind": "book", "total": 2}}"#));
        assert!(!m("not json"));
    }

    #[test]
    fn bad_policies_are_refused() {
        for bad in [
            "nope",
            "[]",
            r#"{"a": "b"}"#,
            r#"{"a": []}"#,
            r#"{"a": [{"numeric": ["~", 1]}]}"#,
            r#"{"a": [{"wildcard": "x"}]}"#,
            r#"{"a": {"b": ["c"]}}"#,
        ] {
            assert!(
                FilterPolicy::parse(bad, Scope::MessageAttributes).is_err(),
                "{bad} accepted"
            );
        }
        assert!(Scope::parse(Some("Both")).is_err());
    }
}
