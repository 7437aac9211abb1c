//! Choice rules: evaluating a [`Condition`] against a state's effective input (JSONPath
//! comparisons with AWS's type rules, or a JSONata `Condition`).

use serde_json::Value;

use crate::clock::parse_timestamp;
use crate::definition::{Condition, Op, Operand};
use crate::error::StatesError;
use crate::path::{eval_jsonata, Query, Scope};

/// Whether the condition holds. A `Variable` that is not in the input fails with
/// `States.Runtime` (except under `IsPresent`); a value of the wrong type for the operator does
/// not match.
pub fn test(condition: &Condition, scope: &Scope<'_>) -> Result<bool, StatesError> {
    Ok(match condition {
        Condition::And(all) => {
            for c in all {
                if !test(c, scope)? {
                    return Ok(false);
                }
            }
            true
        }
        Condition::Or(any) => {
            for c in any {
                if test(c, scope)? {
                    return Ok(true);
                }
            }
            false
        }
        Condition::Not(c) => !test(c, scope)?,
        Condition::Jsonata(expr) => match eval_jsonata(expr, scope, "Condition")? {
            Value::Bool(b) => b,
            other => {
                return Err(StatesError::query(format!(
                    "The JSONata expression '{}' specified for the field 'Condition' returned {other}, not a boolean",
                    expr.source()
                )))
            }
        },
        Condition::Test { variable, op, operand } => {
            let value = variable.select(scope).ok();
            if *op == Op::IsPresent {
                return Ok(value.is_some() == (operand_bool(operand)));
            }
            let Some(value) = value else {
                return Err(missing(variable));
            };
            let expected = match operand {
                Operand::Literal(v) => v.clone(),
                Operand::Path(q) => q.select(scope).map_err(|_| missing(q))?,
            };
            compare(*op, &value, &expected)
        }
    })
}

fn operand_bool(operand: &Operand) -> bool {
    matches!(operand, Operand::Literal(Value::Bool(true)))
}

fn missing(q: &Query) -> StatesError {
    StatesError::runtime(format!(
        "Invalid path '{}': The choice state's condition path references an undefined value.",
        q.source()
    ))
}

fn compare(op: Op, value: &Value, expected: &Value) -> bool {
    use std::cmp::Ordering::*;
    use Op::*;
    let flag = expected.as_bool() == Some(true);
    let ord = |ordering: Option<std::cmp::Ordering>, want: &[std::cmp::Ordering]| {
        ordering.is_some_and(|o| want.contains(&o))
    };
    let strings = || match (value, expected) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let numbers = || match (value.as_f64(), expected.as_f64()) {
        (Some(a), Some(b)) if value.is_number() && expected.is_number() => a.partial_cmp(&b),
        _ => None,
    };
    let timestamps = || match (
        value.as_str().and_then(parse_timestamp),
        expected.as_str().and_then(parse_timestamp),
    ) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => None,
    };
    match op {
        StringEquals => ord(strings(), &[Equal]),
        StringLessThan => ord(strings(), &[Less]),
        StringGreaterThan => ord(strings(), &[Greater]),
        StringLessThanEquals => ord(strings(), &[Less, Equal]),
        StringGreaterThanEquals => ord(strings(), &[Greater, Equal]),
        StringMatches => match (value, expected) {
            (Value::String(s), Value::String(p)) => glob(p, s),
            _ => false,
        },
        NumericEquals => ord(numbers(), &[Equal]),
        NumericLessThan => ord(numbers(), &[Less]),
        NumericGreaterThan => ord(numbers(), &[Greater]),
        NumericLessThanEquals => ord(numbers(), &[Less, Equal]),
        NumericGreaterThanEquals => ord(numbers(), &[Greater, Equal]),
        BooleanEquals => value.is_boolean() && value == expected,
        TimestampEquals => ord(timestamps(), &[Equal]),
        TimestampLessThan => ord(timestamps(), &[Less]),
        TimestampGreaterThan => ord(timestamps(), &[Greater]),
        TimestampLessThanEquals => ord(timestamps(), &[Less, Equal]),
        TimestampGreaterThanEquals => ord(timestamps(), &[Greater, Equal]),
        IsNull => value.is_null() == flag,
        IsNumeric => value.is_number() == flag,
        IsString => value.is_string() == flag,
        IsBoolean => value.is_boolean() == flag,
        IsTimestamp => value.as_str().and_then(parse_timestamp).is_some() == flag,
        IsPresent => flag,
    }
}

/// `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literal.
fn glob(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum P {
        Star,
        Char(char),
    }
    let mut parts = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => parts.push(P::Char(chars.next().unwrap_or('\\'))),
            '*' => parts.push(P::Star),
            c => parts.push(P::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // classic two-pointer wildcard match
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        match parts.get(p) {
            Some(P::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            Some(P::Star) => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    parts[p..].iter().all(|x| *x == P::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::{Kind, StateMachine};
    use serde_json::{json, Map};

    /// The condition of the first rule of a one-state Choice machine.
    fn condition(rule: Value) -> Condition {
        let mut rule = rule;
        rule["Next"] = json!("C");
        let m = StateMachine::from_value(
            &json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [rule]}}}),
        )
        .unwrap();
        let Kind::Choice(c) = &m.root.states[0].kind else {
            panic!()
        };
        c.rules[0].condition.clone()
    }

    fn eval(rule: Value, input: &Value) -> Result<bool, StatesError> {
        let vars = Map::from_iter([("limit".to_string(), json!(10))]);
        test(&condition(rule), &Scope::jsonpath(input, &json!({}), &vars))
    }

    #[test]
    fn every_operator() {
        let input = json!({"s": "abc", "n": 5, "m": 5.0, "b": true, "z": null, "t": "2024-01-02T03:04:05Z",
                           "t2": "2025-01-01T00:00:00Z", "other": "abd"});
        let yes = [
            json!({"Variable": "$.s", "StringEquals": "abc"}),
            json!({"Variable": "$.s", "StringLessThan": "abd"}),
            json!({"Variable": "$.s", "StringGreaterThan": "abb"}),
            json!({"Variable": "$.s", "StringLessThanEquals": "abc"}),
            json!({"Variable": "$.s", "StringGreaterThanEquals": "abc"}),
            json!({"Variable": "$.s", "StringLessThanPath": "$.other"}),
            json!({"Variable": "$.s", "StringEqualsPath": "$.s"}),
            json!({"Variable": "$.s", "StringMatches": "a*"}),
            json!({"Variable": "$.s", "StringMatches": "*c"}),
            json!({"Variable": "$.s", "StringMatches": "a*b*c"}),
            json!({"Variable": "$.n", "NumericEquals": 5}),
            json!({"Variable": "$.n", "NumericEqualsPath": "$.m"}),
            json!({"Variable": "$.n", "NumericLessThan": 6}),
            json!({"Variable": "$.n", "NumericGreaterThan": 4.5}),
            json!({"Variable": "$.n", "NumericLessThanEquals": 5}),
            json!({"Variable": "$.n", "NumericGreaterThanEquals": 5}),
            json!({"Variable": "$.n", "NumericLessThanPath": "$limit"}),
            json!({"Variable": "$.n", "NumericGreaterThanEqualsPath": "$.m"}),
            json!({"Variable": "$.b", "BooleanEquals": true}),
            json!({"Variable": "$.b", "BooleanEqualsPath": "$.b"}),
            json!({"Variable": "$.t", "TimestampEquals": "2024-01-02T03:04:05Z"}),
            json!({"Variable": "$.t", "TimestampLessThan": "2024-01-02T03:04:06Z"}),
            json!({"Variable": "$.t", "TimestampGreaterThan": "2024-01-02T03:04:04+00:00"}),
            json!({"Variable": "$.t", "TimestampLessThanEquals": "2024-01-02T03:04:05Z"}),
            json!({"Variable": "$.t", "TimestampGreaterThanEquals": "2024-01-02T03:04:05Z"}),
            json!({"Variable": "$.t", "TimestampLessThanPath": "$.t2"}),
            json!({"Variable": "$.z", "IsNull": true}),
            json!({"Variable": "$.s", "IsNull": false}),
            json!({"Variable": "$.s", "IsPresent": true}),
            json!({"Variable": "$.nope", "IsPresent": false}),
            json!({"Variable": "$.n", "IsNumeric": true}),
            json!({"Variable": "$.s", "IsString": true}),
            json!({"Variable": "$.b", "IsBoolean": true}),
            json!({"Variable": "$.t", "IsTimestamp": true}),
            json!({"Variable": "$.s", "IsTimestamp": false}),
            json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "abc"}]}),
            json!({"Or": [{"Variable": "$.n", "NumericEquals": 6}, {"Variable": "$.s", "StringEquals": "abc"}]}),
            json!({"Not": {"Variable": "$.n", "NumericEquals": 6}}),
        ];
        for rule in yes {
            assert_eq!(eval(rule.clone(), &input), Ok(true), "{rule}");
        }
        let no = [
            json!({"Variable": "$.n", "StringEquals": "5"}),
            json!({"Variable": "$.s", "NumericEquals": 5}),
            json!({"Variable": "$.s", "StringMatches": "b*"}),
            json!({"Variable": "$.s", "BooleanEquals": true}),
            json!({"Variable": "$.s", "TimestampEquals": "2024-01-02T03:04:05Z"}),
            json!({"Variable": "$.nope", "IsPresent": true}),
            json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Variable": "$.s", "StringEquals": "x"}]}),
        ];
        for rule in no {
            assert_eq!(eval(rule.clone(), &input), Ok(false), "{rule}");
        }
        let e = eval(json!({"Variable": "$.nope", "StringEquals": "x"}), &input).unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("Invalid path '$.nope'"));
    }

    #[test]
    fn string_matches_escapes() {
        assert!(glob("log-\\*.txt", "log-*.txt"));
        assert!(!glob("log-\\*.txt", "log-1.txt"));
        assert!(glob("*", ""));
        assert!(glob("a\\\\b", "a\\b"));
        assert!(!glob("abc", "abcd"));
    }
}
