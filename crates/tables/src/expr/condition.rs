//! Condition and filter expressions: the tree and its evaluation against an item. Evaluation
//! borrows from the item and the parsed tree; only `size()` makes a (stack) value.

use super::Path;
use crate::number::Number;
use crate::value::{AttributeType, AttributeValue, Item};
use std::borrow::Cow;
use std::cmp::Ordering;

/// A parsed condition (`ConditionExpression`, `FilterExpression`).
#[derive(Clone, Debug, PartialEq)]
pub struct Condition(pub(crate) Node);

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Operand {
    Path(Path),
    Value(AttributeValue),
    Size(Path),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparator {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Comparator {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Comparator::Eq => "=",
            Comparator::Ne => "<>",
            Comparator::Lt => "<",
            Comparator::Le => "<=",
            Comparator::Gt => ">",
            Comparator::Ge => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Compare(Operand, Comparator, Operand),
    Between(Operand, Operand, Operand),
    In(Operand, Vec<Operand>),
    Exists(Path),
    NotExists(Path),
    Type(Path, AttributeType),
    BeginsWith(Operand, Operand),
    Contains(Operand, Operand),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

impl Operand {
    fn eval<'a>(&'a self, item: &'a Item) -> Option<Cow<'a, AttributeValue>> {
        match self {
            Operand::Path(p) => p.resolve(item).map(Cow::Borrowed),
            Operand::Value(v) => Some(Cow::Borrowed(v)),
            Operand::Size(p) => size(p.resolve(item)?).map(|n| Cow::Owned(AttributeValue::N(n))),
        }
    }
}

/// `size()`: a string's length in characters, a binary's in bytes, a set's, list's or map's
/// number of elements; other types have no size (the condition is then false).
fn size(v: &AttributeValue) -> Option<Number> {
    let n = match v {
        AttributeValue::S(s) => s.chars().count(),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Ss(s) => s.len(),
        AttributeValue::Ns(s) => s.len(),
        AttributeValue::Bs(s) => s.len(),
        AttributeValue::L(l) => l.len(),
        AttributeValue::M(m) => m.len(),
        _ => return None,
    };
    Some(Number::from(n as i64))
}

/// The order of two scalars of the same key-able type (S, N, B); `None` otherwise.
pub(crate) fn compare(a: &AttributeValue, b: &AttributeValue) -> Option<Ordering> {
    match (a, b) {
        (AttributeValue::S(x), AttributeValue::S(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (AttributeValue::N(x), AttributeValue::N(y)) => Some(x.cmp(y)),
        (AttributeValue::B(x), AttributeValue::B(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

pub(crate) fn begins_with(v: &AttributeValue, prefix: &AttributeValue) -> bool {
    match (v, prefix) {
        (AttributeValue::S(s), AttributeValue::S(p)) => s.starts_with(p.as_str()),
        (AttributeValue::B(s), AttributeValue::B(p)) => s.starts_with(p),
        _ => false,
    }
}

fn contains(v: &AttributeValue, needle: &AttributeValue) -> bool {
    match (v, needle) {
        (AttributeValue::S(s), AttributeValue::S(n)) => s.contains(n.as_str()),
        (AttributeValue::Ss(s), AttributeValue::S(n)) => s.contains(n),
        (AttributeValue::Ns(s), AttributeValue::N(n)) => s.contains(n),
        (AttributeValue::Bs(s), AttributeValue::B(n)) => s.contains(n),
        (AttributeValue::L(l), n) => l.contains(n),
        _ => false,
    }
}

impl Node {
    pub(crate) fn eval(&self, item: &Item) -> bool {
        match self {
            Node::Compare(a, op, b) => {
                let (a, b) = (a.eval(item), b.eval(item));
                match op {
                    // A missing operand is unequal to everything.
                    Comparator::Eq => matches!((a, b), (Some(a), Some(b)) if a == b),
                    Comparator::Ne => !matches!((a, b), (Some(a), Some(b)) if a == b),
                    _ => {
                        let (Some(a), Some(b)) = (a, b) else {
                            return false;
                        };
                        let Some(ord) = compare(&a, &b) else {
                            return false;
                        };
                        match op {
                            Comparator::Lt => ord == Ordering::Less,
                            Comparator::Le => ord != Ordering::Greater,
                            Comparator::Gt => ord == Ordering::Greater,
                            _ => ord != Ordering::Less,
                        }
                    }
                }
            }
            Node::Between(v, lo, hi) => {
                let (Some(v), Some(lo), Some(hi)) = (v.eval(item), lo.eval(item), hi.eval(item))
                else {
                    return false;
                };
                compare(&v, &lo).is_some_and(|o| o != Ordering::Less)
                    && compare(&v, &hi).is_some_and(|o| o != Ordering::Greater)
            }
            Node::In(v, list) => {
                let Some(v) = v.eval(item) else { return false };
                list.iter().any(|o| o.eval(item).is_some_and(|o| o == v))
            }
            Node::Exists(p) => p.resolve(item).is_some(),
            Node::NotExists(p) => p.resolve(item).is_none(),
            Node::Type(p, t) => p.resolve(item).is_some_and(|v| v.attribute_type() == *t),
            Node::BeginsWith(v, prefix) => match (v.eval(item), prefix.eval(item)) {
                (Some(v), Some(p)) => begins_with(&v, &p),
                _ => false,
            },
            Node::Contains(v, needle) => match (v.eval(item), needle.eval(item)) {
                (Some(v), Some(n)) => contains(&v, &n),
                _ => false,
            },
            Node::And(a, b) => a.eval(item) && b.eval(item),
            Node::Or(a, b) => a.eval(item) || b.eval(item),
            Node::Not(a) => !a.eval(item),
        }
    }
}

impl Condition {
    /// Whether `item` satisfies the condition; a missing item is the empty item (so
    /// `attribute_not_exists(pk)` holds for an item not yet written).
    pub fn evaluate(&self, item: Option<&Item>) -> bool {
        static EMPTY: std::sync::OnceLock<Item> = std::sync::OnceLock::new();
        self.0
            .eval(item.unwrap_or_else(|| EMPTY.get_or_init(Item::new)))
    }
}
