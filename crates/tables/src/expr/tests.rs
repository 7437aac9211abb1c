//! Table-driven tests of the expression engine: every kind, every function, and each error
//! message checked against its AWS text.

use super::*;
use crate::key::{encode_composite, KeyType};
use serde_json::json;
use std::ops::Bound;

fn item(v: serde_json::Value) -> Item {
    serde_json::from_value(v).expect("item")
}

fn names() -> HashMap<String, String> {
    [
        ("#n", "name"),
        ("#s", "status"),
        ("#dot", "a.b"),
        ("#l", "list"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn values() -> HashMap<String, AttributeValue> {
    item(json!({
        ":one": {"N": "1"}, ":two": {"N": "2"}, ":ten": {"N": "10"}, ":neg": {"N": "-1.5"},
        ":a": {"S": "a"}, ":alice": {"S": "alice"}, ":al": {"S": "al"}, ":z": {"S": "z"},
        ":t": {"BOOL": true}, ":null": {"NULL": true},
        ":ss": {"SS": ["x", "y"]}, ":ns": {"NS": ["1", "5"]}, ":x": {"S": "x"},
        ":lst": {"L": [{"N": "9"}]}, ":map": {"M": {"k": {"S": "v"}}},
        ":typeS": {"S": "S"}, ":typeL": {"S": "L"}, ":typeBad": {"S": "STRING"},
        ":b": {"B": "AQI="}, ":b1": {"B": "AQ=="}, ":empty": {"L": []},
    }))
}

fn ctx() -> Expressions {
    Expressions::new(Some(names()), Some(values())).unwrap()
}

fn doc() -> Item {
    item(json!({
        "pk": {"S": "p"}, "name": {"S": "alice"}, "age": {"N": "10"}, "status": {"S": "on"},
        "a.b": {"N": "1"}, "flag": {"BOOL": true}, "nothing": {"NULL": true},
        "tags": {"SS": ["x", "y", "z"]}, "nums": {"NS": ["1", "2"]}, "bin": {"B": "AQID"},
        "list": {"L": [{"N": "1"}, {"S": "two"}, {"M": {"c": {"N": "3"}}}]},
        "m": {"M": {"child": {"M": {"deep": {"S": "d"}}}, "n": {"N": "5"}}},
    }))
}

#[test]
fn conditions_evaluate() {
    let cases = [
        ("age = :ten", true),
        ("age <> :ten", false),
        ("age < :ten", false),
        ("age <= :ten", true),
        ("age > :one", true),
        ("age >= :ten", true),
        ("age = :a", false),
        ("age < :a", false),
        ("absent <> :one", true),
        ("absent = :one", false),
        ("absent < :one", false),
        ("#n = :alice", true),
        ("#n > :al", true),
        ("#n BETWEEN :a AND :z", true),
        ("age BETWEEN :one AND :two", false),
        ("age BETWEEN :one AND :ten", true),
        ("age IN (:one, :two, :ten)", true),
        ("age IN (:one, :two)", false),
        ("#s IN (:a)", false),
        ("attribute_exists(age)", true),
        ("attribute_exists(absent)", false),
        ("attribute_not_exists(absent)", true),
        ("attribute_exists(m.child.deep)", true),
        ("attribute_exists(m.child.nope)", false),
        ("attribute_exists(#l[2].c)", true),
        ("attribute_exists(#l[3])", false),
        ("attribute_exists(#dot)", true),
        ("attribute_exists(a.b)", false),
        ("attribute_type(#n, :typeS)", true),
        ("attribute_type(#l, :typeL)", true),
        ("attribute_type(age, :typeS)", false),
        ("begins_with(#n, :al)", true),
        ("begins_with(#n, :z)", false),
        ("begins_with(bin, :b1)", true),
        ("begins_with(age, :a)", false),
        ("contains(#n, :al)", true),
        ("contains(tags, :x)", true),
        ("contains(tags, :a)", false),
        ("contains(nums, :one)", true),
        ("contains(#l, :one)", true),
        ("contains(#l, :two)", false),
        ("size(#n) = :ten", false),
        ("size(tags) > :two", true),
        ("size(#l) = :one", false),
        ("size(m) = :two", true),
        ("size(age) = :one", false),
        ("size(bin) > :two", true),
        ("#l[0] = :one", true),
        ("#l[2].c > :two", true),
        ("m.n = m.n", true),
        ("flag = :t", true),
        ("nothing = :null", true),
        ("tags = :ss", false),
        // Precedence: NOT > AND > OR.
        ("age = :one OR age = :ten AND #n = :alice", true),
        ("(age = :one OR age = :ten) AND #n = :a", false),
        ("age = :one OR age = :ten AND #n = :a", false),
        ("NOT age = :one AND #n = :alice", true),
        ("NOT (age = :ten AND #n = :a)", true),
        ("not not attribute_exists(age)", true),
        ("age = :ten and #n = :alice", true),
        ("age BETWEEN :one AND :ten AND #n = :alice", true),
    ];
    let doc = doc();
    for (text, want) in cases {
        let mut c = ctx();
        let cond = c.condition(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(cond.evaluate(Some(&doc)), want, "{text}");
        let filter = ctx().filter(text).unwrap();
        assert_eq!(filter.evaluate(Some(&doc)), want, "{text}");
    }
    let mut c = ctx();
    let cond = c.condition("attribute_not_exists(pk)").unwrap();
    assert!(cond.evaluate(None));
    assert!(!cond.evaluate(Some(&doc)));
}

fn check_errors(kind: ExpressionKind, cases: &[(&str, &str)]) {
    for (text, want) in cases {
        let mut c = ctx();
        let got = match kind {
            ExpressionKind::Condition => c.condition(text).err(),
            ExpressionKind::Update => c.update(text).err(),
            ExpressionKind::Projection => c.projection(text).err(),
            ExpressionKind::Filter => c.filter(text).err(),
            ExpressionKind::KeyCondition => c.key_condition(text, &schema()).err(),
        };
        assert_eq!(got, Some(TableError::validation(*want)), "{text}");
    }
}

#[test]
fn condition_errors() {
    check_errors(
        ExpressionKind::Condition,
        &[
            ("", "Invalid ConditionExpression: The expression can not be empty;"),
            ("   ", "Invalid ConditionExpression: The expression can not be empty;"),
            ("a = = :one", "Invalid ConditionExpression: Syntax error; token: \"=\", near: \"= = :one\""),
            ("a-b = :one", "Invalid ConditionExpression: Syntax error; token: \"-\", near: \"a-b\""),
            ("a =", "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"=\""),
            ("a = :one :two", "Invalid ConditionExpression: Syntax error; token: \":two\", near: \":one :two\""),
            ("a @ :one", "Invalid ConditionExpression: Syntax error; token: \"@\", near: \"a @ :one\""),
            ("(a = :one", "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \":one\""),
            ("a BETWEEN :one :two", "Invalid ConditionExpression: Syntax error; token: \":two\", near: \":one :two\""),
            ("a[x] = :one", "Invalid ConditionExpression: Syntax error; token: \"x\", near: \"[x]\""),
            ("a", "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \"a\""),
            ("name = :a", "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: name"),
            ("m.Status = :a", "Invalid ConditionExpression: Attribute name is a reserved keyword; reserved keyword: Status"),
            ("#absent = :a", "Invalid ConditionExpression: An expression attribute name used in the document path is not defined; attribute name: #absent"),
            ("a = :absent", "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :absent"),
            ("foo(a)", "Invalid ConditionExpression: Invalid function name; function: foo"),
            ("attribute_exists(a, b)", "Invalid ConditionExpression: Incorrect number of operands for operator or function; operator or function: attribute_exists, number of operands: 2"),
            ("attribute_exists(:a)", "Invalid ConditionExpression: Operator or function requires a document path; operator or function: attribute_exists"),
            ("size(:a) = :one", "Invalid ConditionExpression: Operator or function requires a document path; operator or function: size"),
            ("size(a)", "Invalid ConditionExpression: Syntax error; token: \"<EOF>\", near: \")\""),
            ("a = attribute_exists(b)", "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: attribute_exists"),
            ("list_append(a, b) = :one", "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: list_append"),
            ("begins_with(a, :one)", "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"),
            ("a < :map", "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: <, operand type: M"),
            ("a >= :t", "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: >=, operand type: BOOL"),
            ("a BETWEEN :ss AND :ss", "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: BETWEEN, operand type: SS"),
            ("a BETWEEN :ten AND :one", "Invalid ConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:10}, upper bound operand: AttributeValue: {N:1}"),
            ("a BETWEEN :one AND :a", "Invalid ConditionExpression: The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {N:1}, upper bound operand: AttributeValue: {S:a}"),
            ("attribute_type(a, :typeBad)", "Invalid ConditionExpression: Invalid attribute type name found; type: STRING, valid types: {B,NULL,SS,BOOL,L,BS,N,NS,S,M}"),
            ("attribute_type(a, :one)", "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N"),
        ],
    );
    let long = format!("a IN ({})", vec![":one"; 101].join(", "));
    check_errors(
        ExpressionKind::Filter,
        &[
            (&long, "Invalid FilterExpression: The IN operator is provided with too many operands; number of operands: 101"),
            ("a <> ", "Invalid FilterExpression: Syntax error; token: \"<EOF>\", near: \"<>\""),
        ],
    );
    let huge = format!("a = :one{}", " ".repeat(4096));
    let mut c = ctx();
    assert_eq!(
        c.condition(&huge).err(),
        Some(TableError::validation(format!(
            "Invalid ConditionExpression: Expression size has exceeded the maximum allowed size; expression size: {}",
            huge.len()
        )))
    );
    let nested = format!("{}a = :one{}", "(".repeat(2000), ")".repeat(2000));
    let mut c = ctx();
    assert_eq!(
        c.condition(&nested).err(),
        Some(TableError::validation(
            "Invalid ConditionExpression: The expression has too many nested parentheses; nesting levels: 101"
        ))
    );
    let mut c = ctx();
    let nested = format!("{}a = :one{}", "(".repeat(100), ")".repeat(100));
    assert!(c.condition(&nested).is_ok());
    let many = vec!["a = :one"; 151].join(" OR ");
    let mut c = ctx();
    assert_eq!(
        c.condition(&many).err(),
        Some(TableError::validation(
            "Invalid ConditionExpression: The expression contains too many operators; operator count: 301"
        ))
    );
    let mut c = ctx();
    assert!(c.condition(&vec!["a = :one"; 150].join(" OR ")).is_ok());
    let deep = format!("a{} = :one", ".b".repeat(32));
    let mut c = ctx();
    assert_eq!(
        c.condition(&deep).err(),
        Some(TableError::validation(
            "Invalid ConditionExpression: The document path has too many nesting levels; nesting levels: 33"
        ))
    );
}

fn apply(text: &str, on: &Item) -> Result<Item, TableError> {
    ctx().update(text)?.apply(on)
}

#[test]
fn updates_apply() {
    let base = item(json!({
        "pk": {"S": "p"}, "n": {"N": "5"}, "s": {"S": "x"},
        "l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}]},
        "m": {"M": {"a": {"M": {"b": {"S": "old"}}}}},
        "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2"]},
    }));
    let cases = [
        ("SET n = :ten", json!({"n": {"N": "10"}})),
        ("SET n = n + :one", json!({"n": {"N": "6"}})),
        ("SET n = n - :neg", json!({"n": {"N": "6.5"}})),
        ("SET n = :two - n", json!({"n": {"N": "-3"}})),
        (
            "SET n = s, s = n",
            json!({"n": {"S": "x"}, "s": {"N": "5"}}),
        ),
        (
            "SET newattr = if_not_exists(newattr, :one)",
            json!({"newattr": {"N": "1"}}),
        ),
        ("SET n = if_not_exists(n, :one)", json!({})),
        (
            "SET c = if_not_exists(c, :one) + :one",
            json!({"c": {"N": "2"}}),
        ),
        (
            "SET l = list_append(l, :lst)",
            json!({"l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}, {"N": "9"}]}}),
        ),
        (
            "SET l = list_append(:lst, l)",
            json!({"l": {"L": [{"N": "9"}, {"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}]}}),
        ),
        (
            "SET nl = list_append(if_not_exists(nl, :empty), :lst)",
            json!({"nl": {"L": [{"N": "9"}]}}),
        ),
        (
            "SET l[1] = :a",
            json!({"l": {"L": [{"N": "0"}, {"S": "a"}, {"N": "2"}, {"N": "3"}]}}),
        ),
        (
            "SET l[10] = :a",
            json!({"l": {"L": [{"N": "0"}, {"N": "1"}, {"N": "2"}, {"N": "3"}, {"S": "a"}]}}),
        ),
        (
            "SET m.a.b = :a, m.c = :one",
            json!({"m": {"M": {"a": {"M": {"b": {"S": "a"}}}, "c": {"N": "1"}}}}),
        ),
        ("SET #dot = :one", json!({"a.b": {"N": "1"}})),
        ("REMOVE s, absent", json!({"s": null})),
        (
            "REMOVE l[1], l[3]",
            json!({"l": {"L": [{"N": "0"}, {"N": "2"}]}}),
        ),
        ("REMOVE l[9]", json!({})),
        ("REMOVE m.a.b", json!({"m": {"M": {"a": {"M": {}}}}})),
        ("ADD n :one", json!({"n": {"N": "6"}})),
        ("ADD fresh :one", json!({"fresh": {"N": "1"}})),
        (
            "ADD ss :ss, ns :ns",
            json!({"ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "2", "5"]}}),
        ),
        ("ADD newset :ss", json!({"newset": {"SS": ["x", "y"]}})),
        ("DELETE ss :ss", json!({"ss": null})),
        ("DELETE ns :ns", json!({"ns": {"NS": ["2"]}})),
        ("DELETE nothere :ss", json!({})),
        (
            "SET n = :one REMOVE s ADD ns :ns DELETE ss :ss",
            json!({"n": {"N": "1"}, "s": null, "ns": {"NS": ["1", "2", "5"]}, "ss": null}),
        ),
        ("set n = :one remove s", json!({"n": {"N": "1"}, "s": null})),
    ];
    for (text, changes) in cases {
        let mut want = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                want.remove(k);
            } else {
                want.insert(k.clone(), serde_json::from_value(v.clone()).unwrap());
            }
        }
        assert_eq!(
            apply(text, &base).unwrap_or_else(|e| panic!("{text}: {e}")),
            want,
            "{text}"
        );
    }
}

#[test]
fn update_errors() {
    check_errors(
        ExpressionKind::Update,
        &[
            ("SET a = :one SET b = :two", "Invalid UpdateExpression: The \"SET\" section can only be used once in an update expression;"),
            ("REMOVE a REMOVE b", "Invalid UpdateExpression: The \"REMOVE\" section can only be used once in an update expression;"),
            ("SET a = :one, a = :two", "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a]"),
            ("SET a = :one REMOVE a.b", "Invalid UpdateExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"),
            ("SET a.b = :one REMOVE a[1]", "Invalid UpdateExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, b], path two: [a, [1]]"),
            ("SET a = :a + :one", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: +, operand type: S"),
            ("SET a = b - :ss", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: -, operand type: SS"),
            ("SET a = list_append(a, :map)", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator or function: list_append, operand type: M"),
            ("SET a = if_not_exists(:one, :two)", "Invalid UpdateExpression: Operator or function requires a document path; operator or function: if_not_exists"),
            ("SET a = size(b)", "Invalid UpdateExpression: The function is not allowed to be used this way in an expression; function: size"),
            ("SET a = attribute_exists(b)", "Invalid UpdateExpression: The function is not allowed to be used this way in an expression; function: attribute_exists"),
            ("SET a = list_append(a)", "Invalid UpdateExpression: Incorrect number of operands for operator or function; operator or function: list_append, number of operands: 1"),
            ("ADD a :a", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: STRING"),
            ("ADD a :map", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: ADD, operand type: MAP"),
            ("DELETE a :one", "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER"),
            ("ADD a b", "Invalid UpdateExpression: Syntax error; token: \"b\", near: \"a b\""),
            ("SET a = :one + :two + :one", "Invalid UpdateExpression: Syntax error; token: \"+\", near: \":two + :one\""),
            ("SET a :one", "Invalid UpdateExpression: Syntax error; token: \":one\", near: \"a :one\""),
            ("UPSERT a = :one", "Invalid UpdateExpression: Syntax error; token: \"UPSERT\", near: \"UPSERT a\""),
            ("SET", "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \"SET\""),
            ("SET a = :one,", "Invalid UpdateExpression: Syntax error; token: \"<EOF>\", near: \",\""),
            ("SET name = :one", "Invalid UpdateExpression: Attribute name is a reserved keyword; reserved keyword: name"),
            ("SET a = :nope", "Invalid UpdateExpression: An expression attribute value used in expression is not defined; attribute value: :nope"),
        ],
    );
    let base = item(json!({
        "s": {"S": "x"}, "n": {"N": "1"}, "l": {"L": []}, "ss": {"SS": ["a"]},
        "big": {"N": "99999999999999999999999999999999999999"},
    }));
    let runtime = [
        (
            "SET a = absent",
            "The provided expression refers to an attribute that does not exist in the item",
        ),
        (
            "SET a = absent + :one",
            "The provided expression refers to an attribute that does not exist in the item",
        ),
        (
            "SET a = s + :one",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "SET a = list_append(s, :lst)",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "ADD s :one",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "ADD ss :ns",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "DELETE s :ss",
            "An operand in the update expression has an incorrect data type",
        ),
        (
            "SET x.y = :one",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET s.y = :one",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET n[0] = :one",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "ADD x.y :one",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "REMOVE x.y",
            "The document path provided in the update expression is invalid for update",
        ),
        (
            "SET big = big + :neg",
            "Attempting to store more than 38 significant digits in a Number",
        ),
        (
            "ADD big :neg",
            "Attempting to store more than 38 significant digits in a Number",
        ),
    ];
    for (text, want) in runtime {
        assert_eq!(
            apply(text, &base),
            Err(TableError::validation(want)),
            "{text}"
        );
    }
    let mut deep = AttributeValue::Null;
    for _ in 0..32 {
        deep = AttributeValue::L(vec![deep]);
    }
    let mut values = values();
    values.insert(":deep".into(), deep);
    let mut c = Expressions::new(None, Some(values.clone())).unwrap();
    assert!(c.update("SET s = :deep").unwrap().apply(&base).is_ok());
    let mut c = Expressions::new(None, Some(values.clone())).unwrap();
    assert_eq!(
        c.update("SET l[0] = :deep").unwrap().apply(&base),
        Err(TableError::validation(
            "Nesting Levels have exceeded supported limits"
        ))
    );
    values.insert(":huge".into(), AttributeValue::S("x".repeat(400 * 1024)));
    let mut c = Expressions::new(None, Some(values)).unwrap();
    assert_eq!(
        c.update("SET s = :huge").unwrap().apply(&base),
        Err(TableError::validation(
            "Item size to update has exceeded the maximum allowed size"
        ))
    );
}

#[test]
fn update_key_attributes_refused() {
    let mut c = ctx();
    let u = c.update("SET extra = :one, pk = :a").unwrap();
    assert_eq!(
        u.check_keys(&schema()),
        Err(TableError::validation(
            "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"
        ))
    );
    assert!(ctx()
        .update("SET extra = :one")
        .unwrap()
        .check_keys(&schema())
        .is_ok());
}

#[test]
fn projections() {
    let doc = doc();
    let cases = [
        ("age", json!({"age": {"N": "10"}})),
        (
            "age, #n, absent",
            json!({"age": {"N": "10"}, "name": {"S": "alice"}}),
        ),
        (
            "m.child.deep",
            json!({"m": {"M": {"child": {"M": {"deep": {"S": "d"}}}}}}),
        ),
        ("m.n, m.child.nope", json!({"m": {"M": {"n": {"N": "5"}}}})),
        (
            "#l[2].c, #l[0]",
            json!({"list": {"L": [{"N": "1"}, {"M": {"c": {"N": "3"}}}]}}),
        ),
        ("#l[7]", json!({})),
        ("#dot", json!({"a.b": {"N": "1"}})),
        ("age.x", json!({})),
    ];
    for (text, want) in cases {
        let p = ctx()
            .projection(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(p.apply(&doc), item(want), "{text}");
    }
    check_errors(
        ExpressionKind::Projection,
        &[
            ("a, a.b", "Invalid ProjectionExpression: Two document paths overlap with each other; must remove or rewrite one of these paths; path one: [a], path two: [a, b]"),
            ("a[0], a.b", "Invalid ProjectionExpression: Two document paths conflict with each other; must remove or rewrite one of these paths; path one: [a, [0]], path two: [a, b]"),
            ("a, :one", "Invalid ProjectionExpression: Syntax error; token: \":one\", near: \", :one\""),
            ("a b", "Invalid ProjectionExpression: Syntax error; token: \"b\", near: \"a b\""),
            ("size", "Invalid ProjectionExpression: Attribute name is a reserved keyword; reserved keyword: size"),
            ("", "Invalid ProjectionExpression: The expression can not be empty;"),
        ],
    );
    let u = ctx().update("SET m.n = :one REMOVE age").unwrap();
    assert_eq!(
        u.updated_projection().apply(&doc),
        item(json!({"age": {"N": "10"}, "m": {"M": {"n": {"N": "5"}}}}))
    );
}

fn schema() -> KeySchema {
    KeySchema::new(("pk", KeyType::S), Some(("sk", KeyType::N)))
}

#[test]
fn key_conditions() {
    let num = |s: &str| AttributeValue::number(s).unwrap();
    let s = |v: &str| AttributeValue::S(v.into());
    let sort_key = |v: &str| {
        let mut out = Vec::new();
        crate::key::encode_key_value(&num(v), &mut out);
        out
    };
    let cases: Vec<(&str, Option<SortCondition>, crate::key::KeyRange)> = vec![
        ("pk = :a", None, (Bound::Unbounded, Bound::Unbounded)),
        (
            "pk = :a AND sk = :one",
            Some(SortCondition::Eq(num("1"))),
            (
                Bound::Included(sort_key("1")),
                Bound::Included(sort_key("1")),
            ),
        ),
        (
            "sk < :ten AND pk = :a",
            Some(SortCondition::Lt(num("10"))),
            (Bound::Unbounded, Bound::Excluded(sort_key("10"))),
        ),
        (
            "pk = :a AND sk <= :ten",
            Some(SortCondition::Le(num("10"))),
            (Bound::Unbounded, Bound::Included(sort_key("10"))),
        ),
        (
            "pk = :a AND sk > :neg",
            Some(SortCondition::Gt(num("-1.5"))),
            (Bound::Excluded(sort_key("-1.5")), Bound::Unbounded),
        ),
        (
            "pk = :a AND :one <= sk",
            Some(SortCondition::Ge(num("1"))),
            (Bound::Included(sort_key("1")), Bound::Unbounded),
        ),
        (
            "(pk = :a) AND (sk BETWEEN :one AND :ten)",
            Some(SortCondition::Between(num("1"), num("10"))),
            (
                Bound::Included(sort_key("1")),
                Bound::Included(sort_key("10")),
            ),
        ),
    ];
    for (text, sort, range) in cases {
        let kc = ctx()
            .key_condition(text, &schema())
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(kc.partition, s("a"), "{text}");
        assert_eq!(kc.sort, sort, "{text}");
        assert_eq!(kc.sort_range(), range, "{text}");
    }
    // begins_with on a string sort key, and the composite range's effect on real keys.
    let str_schema = KeySchema::new(("pk", KeyType::S), Some(("sk", KeyType::S)));
    let kc = ctx()
        .key_condition("pk = :a AND begins_with(sk, :al)", &str_schema)
        .unwrap();
    assert_eq!(
        kc.sort_range(),
        (
            Bound::Included(b"al".to_vec()),
            Bound::Excluded(b"am".to_vec())
        )
    );
    let (lo, hi) = kc.composite_range();
    use std::ops::RangeBounds;
    let range = (lo, hi);
    for (pk, sk, inside) in [
        ("a", "al", true),
        ("a", "alice", true),
        ("a", "am", false),
        ("a", "ak", false),
        ("b", "alice", false),
        ("", "al", false),
    ] {
        let k = encode_composite(&s(pk), Some(&s(sk)));
        assert_eq!(range.contains(&k), inside, "{pk}/{sk}");
        let it = item(json!({"pk": {"S": pk}, "sk": {"S": sk}}));
        assert_eq!(kc.matches(&it, &str_schema), inside, "{pk}/{sk}");
    }
    let hash_only = KeySchema::new(("pk", KeyType::S), None);
    check_key_errors(&schema(), &[
        ("pk = :a OR sk = :one", "Invalid operator used in KeyConditionExpression: OR"),
        ("NOT pk = :a", "Invalid operator used in KeyConditionExpression: NOT"),
        ("pk = :a AND sk <> :one", "Invalid operator used in KeyConditionExpression: <>"),
        ("pk = :a AND sk IN (:one)", "Invalid operator used in KeyConditionExpression: IN"),
        ("pk = :a AND attribute_exists(sk)", "Invalid operator used in KeyConditionExpression: attribute_exists"),
        ("pk = :a AND contains(sk, :one)", "Invalid operator used in KeyConditionExpression: contains"),
        ("sk = :one", "Query condition missed key schema element: pk"),
        ("pk = :a AND extra = :one", "Query condition missed key schema element: sk"),
        ("pk = :a AND sk = :one AND sk = :two", "KeyConditionExpressions must only contain one condition per key"),
        ("pk = :a AND pk = :a", "KeyConditionExpressions must only contain one condition per key"),
        ("pk > :a", "Query key condition not supported"),
        ("pk = :a AND sk = extra", "Query key condition not supported"),
        ("pk = :a AND size(sk) = :one", "Query key condition not supported"),
        ("pk = :one", "One or more parameter values were invalid: Condition parameter type does not match schema type"),
        ("pk = :a AND sk = :a", "One or more parameter values were invalid: Condition parameter type does not match schema type"),
        ("pk = :a AND begins_with(sk, :a)", "Invalid KeyConditionExpression: Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"),
        ("pk = :a AND sk BETWEEN :ten AND :one", "Invalid KeyConditionExpression: The BETWEEN operator requires upper bound to be greater than or equal to lower bound; lower bound operand: AttributeValue: {N:10}, upper bound operand: AttributeValue: {N:1}"),
        ("pk = :a AND", "Invalid KeyConditionExpression: Syntax error; token: \"<EOF>\", near: \"AND\""),
    ]);
    check_key_errors(
        &hash_only,
        &[(
            "pk = :a AND sk = :one",
            "Query condition missed key schema element: pk",
        )],
    );
}

fn check_key_errors(schema: &KeySchema, cases: &[(&str, &str)]) {
    for (text, want) in cases {
        assert_eq!(
            ctx().key_condition(text, schema).err(),
            Some(TableError::validation(*want)),
            "{text}"
        );
    }
}

#[test]
fn names_and_values_bookkeeping() {
    let names_of = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let vals = |keys: &[&str]| -> HashMap<String, AttributeValue> {
        keys.iter()
            .map(|k| (k.to_string(), AttributeValue::Null))
            .collect()
    };
    let new_errors = [
        (
            Some(names_of(&[])),
            None,
            "ExpressionAttributeNames must not be empty",
        ),
        (
            None,
            Some(vals(&[])),
            "ExpressionAttributeValues must not be empty",
        ),
        (
            Some(names_of(&[("n", "x")])),
            None,
            "ExpressionAttributeNames contains invalid key: Syntax error; key: \"n\"",
        ),
        (
            Some(names_of(&[("#", "x")])),
            None,
            "ExpressionAttributeNames contains invalid key: Syntax error; key: \"#\"",
        ),
        (
            None,
            Some(vals(&[":ok", "v"])),
            "ExpressionAttributeValues contains invalid key: Syntax error; key: \"v\"",
        ),
        (
            None,
            Some(vals(&[":a-b"])),
            "ExpressionAttributeValues contains invalid key: Syntax error; key: \":a-b\"",
        ),
        (
            Some(names_of(&[("#e", "")])),
            None,
            "ExpressionAttributeNames contains invalid value: Empty attribute name for key #e",
        ),
    ];
    for (n, v, want) in new_errors {
        assert_eq!(
            Expressions::new(n, v).err(),
            Some(TableError::validation(want)),
            "{want}"
        );
    }
    // Usage is counted across all the request's expressions.
    let mut c = Expressions::new(
        Some(names_of(&[("#a", "a"), ("#b", "b"), ("#c", "c")])),
        Some(vals(&[":x", ":y", ":z"])),
    )
    .unwrap();
    c.condition("#a = :x").unwrap();
    c.update("SET #b = :y").unwrap();
    assert_eq!(
        c.finish(),
        Err(TableError::validation(
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {#c}"
        ))
    );
    let mut c = Expressions::new(
        Some(names_of(&[("#a", "a")])),
        Some(vals(&[":x", ":y", ":z"])),
    )
    .unwrap();
    c.projection("#a").unwrap();
    c.filter("x = :y").unwrap();
    assert_eq!(
        c.finish(),
        Err(TableError::validation(
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {:x, :z}"
        ))
    );
    let mut c = Expressions::new(None, Some(vals(&[":x"]))).unwrap();
    c.condition("a = :x").unwrap();
    assert_eq!(c.finish(), Ok(()));
    assert!(Expressions::new(None, None).unwrap().is_empty());
}
