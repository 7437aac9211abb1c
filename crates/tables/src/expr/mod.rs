//! DynamoDB expressions: condition and filter expressions, update expressions, projection
//! expressions and key condition expressions, parsed once per request into trees that are
//! evaluated against items without re-parsing.
//!
//! [`Expressions`] holds a request's `ExpressionAttributeNames` and `ExpressionAttributeValues`;
//! each expression of the request is parsed through it (names and values are substituted at
//! parse time, so evaluation never looks them up), and [`Expressions::finish`] then refuses
//! names or values no expression used, as DynamoDB does.
//!
//! Error messages follow DynamoDB's: `Invalid <Kind>: <detail>`. Where a message is AWS's
//! verbatim (as recalled from AWS responses) or approximated is said at each message.

mod condition;
mod key_condition;
mod lexer;
mod parser;
mod projection;
mod reserved;
mod update;

pub use condition::Condition;
pub use key_condition::{KeyCondition, SortCondition};
pub use projection::Projection;
pub use reserved::is_reserved;
pub use update::Update;

use crate::error::TableError;
use crate::key::KeySchema;
use crate::value::{AttributeValue, Item};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// The longest expression string: 4 KB.
pub const MAX_EXPRESSION_LENGTH: usize = 4096;
/// The deepest document path.
pub const MAX_PATH_DEPTH: usize = 32;
/// The most operators and functions in one expression.
pub const MAX_OPERATORS: usize = 300;
/// The most operands of one `IN`.
pub const MAX_IN_OPERANDS: usize = 100;

/// Which request parameter an expression came from (it names the expression in errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpressionKind {
    Condition,
    Filter,
    KeyCondition,
    Update,
    Projection,
}

impl fmt::Display for ExpressionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpressionKind::Condition => "ConditionExpression",
            ExpressionKind::Filter => "FilterExpression",
            ExpressionKind::KeyCondition => "KeyConditionExpression",
            ExpressionKind::Update => "UpdateExpression",
            ExpressionKind::Projection => "ProjectionExpression",
        })
    }
}

/// One step of a document path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathElement {
    /// A map key (or, first, a top-level attribute name).
    Attr(String),
    /// A list index.
    Index(usize),
}

/// A document path such as `a.b[2].c`, names already substituted; never empty, and the
/// first element is always an attribute name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path(pub(crate) Vec<PathElement>);

impl Path {
    /// A top-level attribute's path.
    pub fn attribute(name: &str) -> Path {
        Path(vec![PathElement::Attr(name.to_string())])
    }

    pub fn elements(&self) -> &[PathElement] {
        &self.0
    }

    /// The top-level attribute the path starts at.
    pub fn top(&self) -> &str {
        match &self.0[0] {
            PathElement::Attr(name) => name,
            PathElement::Index(_) => unreachable!("a path starts with a name"),
        }
    }

    /// The value at this path in `item`, if any.
    pub fn resolve<'a>(&self, item: &'a Item) -> Option<&'a AttributeValue> {
        let mut cur = item.get(self.top())?;
        for el in &self.0[1..] {
            cur = match (el, cur) {
                (PathElement::Attr(k), AttributeValue::M(m)) => m.get(k)?,
                (PathElement::Index(i), AttributeValue::L(l)) => l.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// DynamoDB prints paths in overlap errors as `[a, b, [2]]`.
impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, el) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match el {
                PathElement::Attr(a) => f.write_str(a)?,
                PathElement::Index(n) => write!(f, "[{n}]")?,
            }
        }
        f.write_str("]")
    }
}

/// Refuses overlapping or conflicting paths (one a prefix of the other; a map key and a list
/// index at the same place). AWS's messages, verbatim as recalled.
pub(crate) fn check_overlaps(kind: ExpressionKind, paths: &[&Path]) -> Result<(), TableError> {
    for (j, q) in paths.iter().enumerate() {
        for p in &paths[..j] {
            let common =
                p.0.iter()
                    .zip(q.0.iter())
                    .take_while(|(a, b)| a == b)
                    .count();
            let problem = match (p.0.get(common), q.0.get(common)) {
                (None, _) | (_, None) => "overlap",
                (Some(PathElement::Attr(_)), Some(PathElement::Index(_)))
                | (Some(PathElement::Index(_)), Some(PathElement::Attr(_))) => "conflict",
                _ => continue,
            };
            return Err(TableError::validation(format!(
                "Invalid {kind}: Two document paths {problem} with each other; must remove or \
                 rewrite one of these paths; path one: {p}, path two: {q}"
            )));
        }
    }
    Ok(())
}

/// A request's expression attribute names and values, with the record of which ones its
/// expressions used.
#[derive(Debug, Default)]
pub struct Expressions {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
    used_names: HashSet<String>,
    used_values: HashSet<String>,
}

impl Expressions {
    /// Checks the maps' keys (`#…` and `:…`) and that a given map is not empty; messages are
    /// AWS's verbatim as recalled.
    pub fn new(
        names: Option<HashMap<String, String>>,
        values: Option<HashMap<String, AttributeValue>>,
    ) -> Result<Expressions, TableError> {
        if names.as_ref().is_some_and(HashMap::is_empty) {
            return Err(TableError::validation(
                "ExpressionAttributeNames must not be empty",
            ));
        }
        if values.as_ref().is_some_and(HashMap::is_empty) {
            return Err(TableError::validation(
                "ExpressionAttributeValues must not be empty",
            ));
        }
        let names = names.unwrap_or_default();
        let values = values.unwrap_or_default();
        let bad_key = |k: &str, sigil: char| {
            k.len() < 2
                || !k.starts_with(sigil)
                || !k[1..]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        };
        if let Some(k) = sorted(names.keys()).into_iter().find(|k| bad_key(k, '#')) {
            return Err(TableError::validation(format!(
                "ExpressionAttributeNames contains invalid key: Syntax error; key: \"{k}\""
            )));
        }
        if let Some(k) = sorted(values.keys()).into_iter().find(|k| bad_key(k, ':')) {
            return Err(TableError::validation(format!(
                "ExpressionAttributeValues contains invalid key: Syntax error; key: \"{k}\""
            )));
        }
        if let Some(k) = sorted(names.iter().filter(|(_, v)| v.is_empty()).map(|(k, _)| k)).first()
        {
            // Approximated: AWS refuses an empty substitute name for the key.
            return Err(TableError::validation(format!(
                "ExpressionAttributeNames contains invalid value: Empty attribute name for key {k}"
            )));
        }
        Ok(Expressions {
            names,
            values,
            ..Default::default()
        })
    }

    /// Whether the request carried any names or values (DynamoDB refuses them when no
    /// expression is given: the adapter reports that with the parameter's name).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.values.is_empty()
    }

    /// Whether the request carried `ExpressionAttributeNames` (DynamoDB refuses them, with
    /// "ExpressionAttributeNames can only be specified when using expressions", when the
    /// request has no expression).
    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether the request carried `ExpressionAttributeValues`.
    pub fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    /// Parses a `ConditionExpression`.
    pub fn condition(&mut self, text: &str) -> Result<Condition, TableError> {
        parser::Parser::new(self, ExpressionKind::Condition, text)?.condition_expression()
    }

    /// Parses a `FilterExpression`.
    pub fn filter(&mut self, text: &str) -> Result<Condition, TableError> {
        parser::Parser::new(self, ExpressionKind::Filter, text)?.condition_expression()
    }

    /// Parses an `UpdateExpression`.
    pub fn update(&mut self, text: &str) -> Result<Update, TableError> {
        parser::Parser::new(self, ExpressionKind::Update, text)?.update_expression()
    }

    /// Parses a `ProjectionExpression`.
    pub fn projection(&mut self, text: &str) -> Result<Projection, TableError> {
        parser::Parser::new(self, ExpressionKind::Projection, text)?.projection_expression()
    }

    /// Parses a `KeyConditionExpression` against the key schema of the table or index queried.
    pub fn key_condition(
        &mut self,
        text: &str,
        schema: &KeySchema,
    ) -> Result<KeyCondition, TableError> {
        let cond = parser::Parser::new(self, ExpressionKind::KeyCondition, text)?
            .condition_expression()?;
        KeyCondition::from_condition(cond, schema)
    }

    /// Refuses names or values that no expression used (AWS's messages, verbatim as recalled;
    /// the keys listed sorted).
    pub fn finish(self) -> Result<(), TableError> {
        let unused_names: Vec<&String> =
            sorted(self.names.keys().filter(|k| !self.used_names.contains(*k)));
        if !unused_names.is_empty() {
            return Err(TableError::validation(format!(
                "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                join(&unused_names)
            )));
        }
        let unused_values: Vec<&String> = sorted(
            self.values
                .keys()
                .filter(|k| !self.used_values.contains(*k)),
        );
        if !unused_values.is_empty() {
            return Err(TableError::validation(format!(
                "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                join(&unused_values)
            )));
        }
        Ok(())
    }

    fn name(&mut self, key: &str) -> Option<String> {
        let v = self.names.get(key)?.clone();
        self.used_names.insert(key.to_string());
        Some(v)
    }

    fn value(&mut self, key: &str) -> Option<AttributeValue> {
        let v = self.values.get(key)?.clone();
        self.used_values.insert(key.to_string());
        Some(v)
    }
}

fn sorted<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut v: Vec<&String> = keys.collect();
    v.sort();
    v
}

fn join(keys: &[&String]) -> String {
    keys.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A value as DynamoDB shows it in some messages: `{N:5}`, `{S:abc}`.
pub(crate) fn brief(v: &AttributeValue) -> String {
    let body = match v {
        AttributeValue::S(s) => s.clone(),
        AttributeValue::N(n) => n.to_string(),
        AttributeValue::B(b) => crate::value::b64(b),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null => "true".into(),
        other => serde_json::to_string(other).unwrap_or_default(),
    };
    format!("{{{}:{}}}", v.attribute_type().code(), body)
}

#[cfg(test)]
mod tests;
