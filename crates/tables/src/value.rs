//! Attribute values: the [`AttributeValue`] enum for all ten DynamoDB types, its JSON wire
//! form (`{"S": "x"}`, `{"N": "1.5"}`, `{"B": "<base64>"}`, …) with the checks DynamoDB makes
//! on the way in (one type per value, non-empty duplicate-free sets, valid numbers, `NULL`
//! only `true`), and item sizes counted as DynamoDB counts them for the 400 KB limit.

use crate::error::TableError;
use crate::number::Number;
use base64::Engine as _;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;

/// An item (or a key, or a map value): attribute names to values.
pub type Item = HashMap<String, AttributeValue>;

/// The largest item DynamoDB stores: 400 KB, names and values counted.
pub const MAX_ITEM_SIZE: usize = 400 * 1024;
/// The deepest nesting of lists and maps in an item.
pub const MAX_NESTING: usize = 32;

/// A DynamoDB attribute value. Sets keep their members in arrival order; two sets are equal
/// when they hold the same members in any order.
#[derive(Clone, Debug)]
pub enum AttributeValue {
    S(String),
    N(Number),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<AttributeValue>),
    M(Item),
    Ss(Vec<String>),
    Ns(Vec<Number>),
    Bs(Vec<Vec<u8>>),
}

/// The type of an attribute value, named by its wire code (`S`, `N`, …, `BS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeType {
    S,
    N,
    B,
    Bool,
    Null,
    L,
    M,
    Ss,
    Ns,
    Bs,
}

impl AttributeType {
    /// Every type, in the order DynamoDB lists them in `attribute_type`'s error message.
    pub const ALL: [AttributeType; 10] = [
        AttributeType::B,
        AttributeType::Null,
        AttributeType::Ss,
        AttributeType::Bool,
        AttributeType::L,
        AttributeType::Bs,
        AttributeType::N,
        AttributeType::Ns,
        AttributeType::S,
        AttributeType::M,
    ];

    /// The wire code: `S`, `N`, `B`, `BOOL`, `NULL`, `L`, `M`, `SS`, `NS`, `BS`.
    pub fn code(self) -> &'static str {
        match self {
            AttributeType::S => "S",
            AttributeType::N => "N",
            AttributeType::B => "B",
            AttributeType::Bool => "BOOL",
            AttributeType::Null => "NULL",
            AttributeType::L => "L",
            AttributeType::M => "M",
            AttributeType::Ss => "SS",
            AttributeType::Ns => "NS",
            AttributeType::Bs => "BS",
        }
    }

    /// The long name DynamoDB uses in ADD/DELETE operand errors (`STRING`, `MAP`, …).
    pub fn long_name(self) -> &'static str {
        match self {
            AttributeType::S => "STRING",
            AttributeType::N => "NUMBER",
            AttributeType::B => "BINARY",
            AttributeType::Bool => "BOOLEAN",
            AttributeType::Null => "NULL",
            AttributeType::L => "LIST",
            AttributeType::M => "MAP",
            AttributeType::Ss => "STRING_SET",
            AttributeType::Ns => "NUMBER_SET",
            AttributeType::Bs => "BINARY_SET",
        }
    }

    /// The type with this wire code, if any.
    pub fn from_code(code: &str) -> Option<AttributeType> {
        AttributeType::ALL.into_iter().find(|t| t.code() == code)
    }

    pub fn is_set(self) -> bool {
        matches!(
            self,
            AttributeType::Ss | AttributeType::Ns | AttributeType::Bs
        )
    }
}

impl AttributeValue {
    pub fn attribute_type(&self) -> AttributeType {
        match self {
            AttributeValue::S(_) => AttributeType::S,
            AttributeValue::N(_) => AttributeType::N,
            AttributeValue::B(_) => AttributeType::B,
            AttributeValue::Bool(_) => AttributeType::Bool,
            AttributeValue::Null => AttributeType::Null,
            AttributeValue::L(_) => AttributeType::L,
            AttributeValue::M(_) => AttributeType::M,
            AttributeValue::Ss(_) => AttributeType::Ss,
            AttributeValue::Ns(_) => AttributeType::Ns,
            AttributeValue::Bs(_) => AttributeType::Bs,
        }
    }

    /// A number value from its text, with DynamoDB's checks.
    pub fn number(text: &str) -> Result<AttributeValue, TableError> {
        Number::parse(text).map(AttributeValue::N)
    }

    /// The bytes DynamoDB counts for this value (the attribute's name not included).
    pub fn size(&self) -> usize {
        match self {
            AttributeValue::S(s) => s.len(),
            AttributeValue::N(n) => n.stored_size(),
            AttributeValue::B(b) => b.len(),
            AttributeValue::Bool(_) | AttributeValue::Null => 1,
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + v.size()).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, v)| 1 + k.len() + v.size()).sum::<usize>()
            }
            AttributeValue::Ss(s) => s.iter().map(String::len).sum(),
            AttributeValue::Ns(s) => s.iter().map(Number::stored_size).sum(),
            AttributeValue::Bs(s) => s.iter().map(Vec::len).sum(),
        }
    }

    /// The nesting depth of lists and maps (0 for a scalar or a set).
    pub fn depth(&self) -> usize {
        match self {
            AttributeValue::L(l) => 1 + l.iter().map(AttributeValue::depth).max().unwrap_or(0),
            AttributeValue::M(m) => 1 + m.values().map(AttributeValue::depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Checks a value built in code (values read from JSON are checked while deserializing):
    /// non-empty, duplicate-free sets.
    pub fn validate(&self) -> Result<(), TableError> {
        match self {
            AttributeValue::L(l) => l.iter().try_for_each(AttributeValue::validate),
            AttributeValue::M(m) => m.values().try_for_each(AttributeValue::validate),
            _ => self.check_set_members().map_err(TableError::Validation),
        }
    }

    /// The set rules for this value if it is a set (not recursive).
    fn check_set_members(&self) -> Result<(), String> {
        match self {
            AttributeValue::Ss(s) => check_set(AttributeType::Ss, s, |v| v.clone()),
            AttributeValue::Ns(s) => check_set(AttributeType::Ns, s, |v| v.to_string()),
            AttributeValue::Bs(s) => check_set(AttributeType::Bs, s, |v| b64(v)),
            _ => Ok(()),
        }
    }
}

/// Sets compare as sets; everything else structurally.
impl PartialEq for AttributeValue {
    fn eq(&self, other: &Self) -> bool {
        use AttributeValue::*;
        fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
            a.len() == b.len() && a.iter().all(|x| b.contains(x))
        }
        match (self, other) {
            (S(a), S(b)) => a == b,
            (N(a), N(b)) => a == b,
            (B(a), B(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Null, Null) => true,
            (L(a), L(b)) => a == b,
            (M(a), M(b)) => a == b,
            (Ss(a), Ss(b)) => same_set(a, b),
            (Ns(a), Ns(b)) => same_set(a, b),
            (Bs(a), Bs(b)) => same_set(a, b),
            _ => false,
        }
    }
}

/// The size DynamoDB counts for an item: each attribute's name length plus its value's size.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + v.size()).sum()
}

/// Refuses an item over 400 KB or nested deeper than 32 levels (AWS's messages, verbatim).
pub fn check_item_limits(item: &Item) -> Result<(), TableError> {
    if item.values().any(|v| v.depth() > MAX_NESTING) {
        return Err(TableError::validation(
            "Nesting Levels have exceeded supported limits",
        ));
    }
    if item_size(item) > MAX_ITEM_SIZE {
        return Err(TableError::validation(
            "Item size has exceeded the maximum allowed size",
        ));
    }
    Ok(())
}

pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

const INVALID: &str = "One or more parameter values were invalid: ";
const MSG_EMPTY: &str =
    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes";
const MSG_MANY: &str = "Supplied AttributeValue has more than one datatypes set, must contain \
                        exactly one of the supported datatypes";

/// The set checks, with DynamoDB's messages (the double space and "An string" are AWS's own;
/// the duplicate message lists the members as Java prints a list, approximating AWS's text
/// for binary members, which it shows base64-encoded here).
fn check_set<T: PartialEq>(
    ty: AttributeType,
    members: &[T],
    show: impl Fn(&T) -> String,
) -> Result<(), String> {
    if members.is_empty() {
        return Err(match ty {
            AttributeType::Ss => format!("{INVALID}An string set  may not be empty"),
            AttributeType::Ns => format!("{INVALID}An number set  may not be empty"),
            _ => format!("{INVALID}Binary sets should not be empty"),
        });
    }
    let duplicate = members
        .iter()
        .enumerate()
        .any(|(i, m)| members[..i].contains(m));
    if duplicate {
        let list: Vec<String> = members.iter().map(show).collect();
        return Err(format!(
            "{INVALID}Input collection [{}] contains duplicates.",
            list.join(", ")
        ));
    }
    Ok(())
}

/// Whether a message is one of the validation messages raised while deserializing values
/// (so [`TableError::from_json`] makes it a `ValidationException`).
pub(crate) fn is_validation_message(message: &str) -> bool {
    message.starts_with(INVALID)
        || message.starts_with("Supplied AttributeValue")
        || message == crate::number::MSG_NOT_A_NUMBER
        || message == crate::number::MSG_OVERFLOW
        || message == crate::number::MSG_UNDERFLOW
        || message == crate::number::MSG_PRECISION
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Seq<'a, T, F>(&'a [T], F);
        impl<T, F: Fn(&T) -> String> Serialize for Seq<'_, T, F> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for m in self.0 {
                    seq.serialize_element(&(self.1)(m))?;
                }
                seq.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        let code = self.attribute_type().code();
        match self {
            AttributeValue::S(s) => map.serialize_entry(code, s)?,
            AttributeValue::N(n) => map.serialize_entry(code, &n.to_string())?,
            AttributeValue::B(b) => map.serialize_entry(code, &b64(b))?,
            AttributeValue::Bool(b) => map.serialize_entry(code, b)?,
            AttributeValue::Null => map.serialize_entry(code, &true)?,
            AttributeValue::L(l) => map.serialize_entry(code, l)?,
            AttributeValue::M(m) => map.serialize_entry(code, m)?,
            AttributeValue::Ss(s) => map.serialize_entry(code, s)?,
            AttributeValue::Ns(s) => map.serialize_entry(code, &Seq(s, Number::to_string))?,
            AttributeValue::Bs(s) => map.serialize_entry(code, &Seq(s, |b: &Vec<u8>| b64(b)))?,
        }
        map.end()
    }
}

/// A base64 string decoded while deserializing; bad base64 is a `SerializationException`
/// (the message approximates AWS's).
struct Base64(Vec<u8>);

impl<'de> Deserialize<'de> for Base64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_bytes())
            .map(Base64)
            .map_err(|_| {
                de::Error::custom(
                    "Base64 encoded length is expected a multiple of 4 bytes but found: "
                        .to_string()
                        + &s.len().to_string(),
                )
            })
    }
}

/// A number's text parsed while deserializing.
struct Num(Number);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Number::parse(&s).map(Num).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for AttributeValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an AttributeValue object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let mut found: Option<AttributeValue> = None;
        let mut many = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            // A member set to null counts as absent, as in AWS's JSON protocol; unknown members
            // are ignored.
            let value = match key.as_ref() {
                "S" => map.next_value::<Option<String>>()?.map(AttributeValue::S),
                "N" => map
                    .next_value::<Option<Num>>()?
                    .map(|n| AttributeValue::N(n.0)),
                "B" => map
                    .next_value::<Option<Base64>>()?
                    .map(|b| AttributeValue::B(b.0)),
                "BOOL" => map.next_value::<Option<bool>>()?.map(AttributeValue::Bool),
                "NULL" => match map.next_value::<Option<bool>>()? {
                    Some(true) => Some(AttributeValue::Null),
                    Some(false) => {
                        return Err(de::Error::custom(format!(
                            "{INVALID}Null attribute value types must have the value of true"
                        )))
                    }
                    None => None,
                },
                "L" => map
                    .next_value::<Option<Vec<AttributeValue>>>()?
                    .map(AttributeValue::L),
                "M" => map.next_value::<Option<Item>>()?.map(AttributeValue::M),
                "SS" => map
                    .next_value::<Option<Vec<String>>>()?
                    .map(AttributeValue::Ss),
                "NS" => map
                    .next_value::<Option<SeqOf<Num>>>()?
                    .map(|v| AttributeValue::Ns(v.0.into_iter().map(|n| n.0).collect())),
                "BS" => map
                    .next_value::<Option<SeqOf<Base64>>>()?
                    .map(|v| AttributeValue::Bs(v.0.into_iter().map(|b| b.0).collect())),
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                    None
                }
            };
            if let Some(v) = value {
                many |= found.is_some();
                found = Some(v);
            }
        }
        if many {
            return Err(de::Error::custom(MSG_MANY));
        }
        let value = found.ok_or_else(|| de::Error::custom(MSG_EMPTY))?;
        value.check_set_members().map_err(de::Error::custom)?;
        Ok(value)
    }
}

/// A JSON array read element by element (no intermediate `Vec` of raw values).
struct SeqOf<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SeqOf<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = SeqOf<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SeqOf<T>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(SeqOf(out))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AttributeValue, TableError> {
        let text = v.to_string();
        serde_json::from_str::<AttributeValue>(&text).map_err(|e| TableError::from_json(&e))
    }

    #[test]
    fn wire_round_trip() {
        let cases = [
            json!({"S": "x"}),
            json!({"S": ""}),
            json!({"N": "1.5"}),
            json!({"B": "AAEC"}),
            json!({"BOOL": true}),
            json!({"NULL": true}),
            json!({"L": [{"S": "a"}, {"N": "1"}]}),
            json!({"M": {"a": {"M": {"b": {"L": []}}}}}),
            json!({"SS": ["a", "b"]}),
            json!({"NS": ["1", "-2.5"]}),
            json!({"BS": ["AA==", "AQ=="]}),
        ];
        for case in cases {
            let v = parse(case.clone()).unwrap();
            assert_eq!(serde_json::to_value(&v).unwrap(), case);
        }
        assert_eq!(
            parse(json!({"B": "AAEC"})).unwrap(),
            AttributeValue::B(vec![0, 1, 2])
        );
    }

    #[test]
    fn canonical_numbers_on_the_way_out() {
        let v = parse(json!({"NS": ["1.50", "0100"]})).unwrap();
        assert_eq!(
            serde_json::to_value(&v).unwrap(),
            json!({"NS": ["1.5", "100"]})
        );
    }

    #[test]
    fn refused_values() {
        let v = |m: &str| TableError::validation(m);
        let cases = [
            (json!({}), v(MSG_EMPTY)),
            (json!({"S": null}), v(MSG_EMPTY)),
            (json!({"X": "a"}), v(MSG_EMPTY)),
            (json!({"S": "a", "N": "1"}), v(MSG_MANY)),
            (
                json!({"SS": []}),
                v(&format!("{INVALID}An string set  may not be empty")),
            ),
            (
                json!({"NS": []}),
                v(&format!("{INVALID}An number set  may not be empty")),
            ),
            (
                json!({"BS": []}),
                v(&format!("{INVALID}Binary sets should not be empty")),
            ),
            (
                json!({"SS": ["a", "b", "a"]}),
                v(&format!(
                    "{INVALID}Input collection [a, b, a] contains duplicates."
                )),
            ),
            (
                json!({"NS": ["1", "1.0"]}),
                v(&format!(
                    "{INVALID}Input collection [1, 1] contains duplicates."
                )),
            ),
            (
                json!({"NULL": false}),
                v(&format!(
                    "{INVALID}Null attribute value types must have the value of true"
                )),
            ),
            (json!({"N": "x"}), v(crate::number::MSG_NOT_A_NUMBER)),
            (
                json!({"L": [{"N": "1E+200"}]}),
                v(crate::number::MSG_OVERFLOW),
            ),
            (json!({"M": {"a": {}}}), v(MSG_EMPTY)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input.clone()), Err(want), "{input}");
        }
        // Shape errors are the protocol's, not validation.
        for input in [json!({"S": 5}), json!("S"), json!({"BOOL": "yes"})] {
            assert!(
                matches!(parse(input.clone()), Err(TableError::Serialization(_))),
                "{input}"
            );
        }
    }

    #[test]
    fn validate_built_values() {
        let bad = AttributeValue::L(vec![AttributeValue::Ss(vec![])]);
        assert_eq!(
            bad.validate(),
            Err(TableError::validation(format!(
                "{INVALID}An string set  may not be empty"
            )))
        );
        assert!(AttributeValue::Ns(vec![Number::from(1), Number::from(2)])
            .validate()
            .is_ok());
    }

    #[test]
    fn sizes() {
        let item: Item = serde_json::from_value(json!({
            "s": {"S": "abc"},                  // 1 + 3
            "n": {"N": "123"},                  // 1 + 3
            "b": {"B": "AAEC"},                 // 1 + 3
            "t": {"BOOL": true},                // 1 + 1
            "z": {"NULL": true},                // 1 + 1
            "l": {"L": [{"S": "ab"}]},          // 1 + 3 + (1 + 2)
            "m": {"M": {"k": {"S": "v"}}},      // 1 + 3 + (1 + 1 + 1)
            "ss": {"SS": ["a", "bc"]},          // 2 + 3
            "ns": {"NS": ["1", "-1"]},          // 2 + 2 + 3
        }))
        .unwrap();
        assert_eq!(item_size(&item), 4 + 4 + 4 + 2 + 2 + 7 + 7 + 5 + 7);
    }

    #[test]
    fn item_limits() {
        let mut item = Item::new();
        item.insert("a".into(), AttributeValue::S("x".repeat(MAX_ITEM_SIZE - 1)));
        assert!(check_item_limits(&item).is_ok());
        item.insert("b".into(), AttributeValue::Bool(true));
        assert_eq!(
            check_item_limits(&item),
            Err(TableError::validation(
                "Item size has exceeded the maximum allowed size"
            ))
        );
        let mut deep = AttributeValue::Null;
        for _ in 0..33 {
            deep = AttributeValue::L(vec![deep]);
        }
        let item: Item = [("d".to_string(), deep)].into();
        assert_eq!(
            check_item_limits(&item),
            Err(TableError::validation(
                "Nesting Levels have exceeded supported limits"
            ))
        );
    }
}
