//! Key condition expressions: an equality on the partition key and at most one condition on
//! the sort key, checked against the key schema queried, turned into a range of encoded keys
//! to scan.

use super::condition::{Comparator, Node, Operand};
use super::Condition;
use crate::error::TableError;
use crate::key::{self, KeyRange, KeySchema, KeyType};
use crate::value::{AttributeValue, Item};
use std::ops::Bound;

/// A parsed `KeyConditionExpression`.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyCondition {
    /// The partition key's value.
    pub partition: AttributeValue,
    /// The sort key's condition, if any.
    pub sort: Option<SortCondition>,
}

/// The condition on the sort key.
#[derive(Clone, Debug, PartialEq)]
pub enum SortCondition {
    Eq(AttributeValue),
    Lt(AttributeValue),
    Le(AttributeValue),
    Gt(AttributeValue),
    Ge(AttributeValue),
    Between(AttributeValue, AttributeValue),
    BeginsWith(AttributeValue),
}

fn unsupported(what: &str) -> TableError {
    // AWS's wording, verbatim as recalled.
    TableError::validation(format!(
        "Invalid operator used in KeyConditionExpression: {what}"
    ))
}

/// One `attribute <op> value` leaf of the expression.
struct Leaf {
    name: String,
    cond: SortCondition,
}

fn leaf_name(o: &Operand) -> Result<Option<String>, TableError> {
    match o {
        Operand::Path(p) if p.elements().len() == 1 => Ok(Some(p.top().to_string())),
        // Approximated: AWS refuses nested paths and size() here.
        Operand::Path(_) | Operand::Size(_) => {
            Err(TableError::validation("Query key condition not supported"))
        }
        Operand::Value(_) => Ok(None),
    }
}

fn leaves(node: Node, out: &mut Vec<Leaf>) -> Result<(), TableError> {
    let value = |o: Operand| match o {
        Operand::Value(v) => Ok(v),
        _ => Err(TableError::validation("Query key condition not supported")),
    };
    match node {
        Node::And(a, b) => {
            leaves(*a, out)?;
            leaves(*b, out)
        }
        Node::Or(..) => Err(unsupported("OR")),
        Node::Not(..) => Err(unsupported("NOT")),
        Node::In(..) => Err(unsupported("IN")),
        Node::Exists(..) => Err(unsupported("attribute_exists")),
        Node::NotExists(..) => Err(unsupported("attribute_not_exists")),
        Node::Type(..) => Err(unsupported("attribute_type")),
        Node::Contains(..) => Err(unsupported("contains")),
        Node::Compare(_, Comparator::Ne, _) => Err(unsupported("<>")),
        Node::Compare(a, op, b) => {
            // `:v < k` is `k > :v`.
            let (name, v, op) = match (leaf_name(&a)?, leaf_name(&b)?) {
                (Some(n), None) => (n, value(b)?, op),
                (None, Some(n)) => {
                    let flipped = match op {
                        Comparator::Lt => Comparator::Gt,
                        Comparator::Le => Comparator::Ge,
                        Comparator::Gt => Comparator::Lt,
                        Comparator::Ge => Comparator::Le,
                        other => other,
                    };
                    (n, value(a)?, flipped)
                }
                _ => return Err(TableError::validation("Query key condition not supported")),
            };
            let cond = match op {
                Comparator::Eq => SortCondition::Eq(v),
                Comparator::Lt => SortCondition::Lt(v),
                Comparator::Le => SortCondition::Le(v),
                Comparator::Gt => SortCondition::Gt(v),
                Comparator::Ge => SortCondition::Ge(v),
                Comparator::Ne => unreachable!("refused above"),
            };
            out.push(Leaf { name, cond });
            Ok(())
        }
        Node::Between(a, lo, hi) => {
            let name = leaf_name(&a)?
                .ok_or_else(|| TableError::validation("Query key condition not supported"))?;
            out.push(Leaf {
                name,
                cond: SortCondition::Between(value(lo)?, value(hi)?),
            });
            Ok(())
        }
        Node::BeginsWith(a, prefix) => {
            let name = leaf_name(&a)?
                .ok_or_else(|| TableError::validation("Query key condition not supported"))?;
            out.push(Leaf {
                name,
                cond: SortCondition::BeginsWith(value(prefix)?),
            });
            Ok(())
        }
    }
}

impl SortCondition {
    fn values(&self) -> impl Iterator<Item = &AttributeValue> {
        let (a, b) = match self {
            SortCondition::Between(a, b) => (a, Some(b)),
            SortCondition::Eq(a)
            | SortCondition::Lt(a)
            | SortCondition::Le(a)
            | SortCondition::Gt(a)
            | SortCondition::Ge(a)
            | SortCondition::BeginsWith(a) => (a, None),
        };
        std::iter::once(a).chain(b)
    }

    /// The range of encoded sort keys this condition selects.
    pub fn range(&self) -> KeyRange {
        let enc = |v: &AttributeValue| {
            let mut out = Vec::new();
            key::encode_key_value(v, &mut out);
            out
        };
        match self {
            SortCondition::Eq(v) => (Bound::Included(enc(v)), Bound::Included(enc(v))),
            SortCondition::Lt(v) => (Bound::Unbounded, Bound::Excluded(enc(v))),
            SortCondition::Le(v) => (Bound::Unbounded, Bound::Included(enc(v))),
            SortCondition::Gt(v) => (Bound::Excluded(enc(v)), Bound::Unbounded),
            SortCondition::Ge(v) => (Bound::Included(enc(v)), Bound::Unbounded),
            SortCondition::Between(a, b) => (Bound::Included(enc(a)), Bound::Included(enc(b))),
            SortCondition::BeginsWith(p) => {
                let p = enc(p);
                let upper = key::prefix_successor(&p).map_or(Bound::Unbounded, Bound::Excluded);
                (Bound::Included(p), upper)
            }
        }
    }
}

impl KeyCondition {
    pub(crate) fn from_condition(
        cond: Condition,
        schema: &KeySchema,
    ) -> Result<KeyCondition, TableError> {
        let mut found = Vec::new();
        leaves(cond.0, &mut found)?;
        // AWS's wording, verbatim as recalled.
        let one_per_key = || {
            TableError::validation(
                "KeyConditionExpressions must only contain one condition per key",
            )
        };
        if found.len() > 2 || (found.len() == 2 && found[0].name == found[1].name) {
            return Err(one_per_key());
        }
        let missed = |name: &str| {
            TableError::validation(format!("Query condition missed key schema element: {name}"))
        };
        let mut partition = None;
        let mut sort = None;
        for leaf in found {
            if leaf.name == schema.partition.name {
                match leaf.cond {
                    SortCondition::Eq(v) => partition = Some(v),
                    _ => return Err(TableError::validation("Query key condition not supported")),
                }
            } else if schema.sort.as_ref().is_some_and(|s| s.name == leaf.name) {
                sort = Some(leaf.cond);
            } else {
                let expected = match (&partition, &schema.sort) {
                    (None, _) | (_, None) => &schema.partition.name,
                    (Some(_), Some(s)) => &s.name,
                };
                return Err(missed(expected));
            }
        }
        let partition = partition.ok_or_else(|| missed(&schema.partition.name))?;
        let mismatch = || {
            TableError::validation(
                "One or more parameter values were invalid: Condition parameter type does not \
                 match schema type",
            )
        };
        if partition.attribute_type() != schema.partition.key_type.attribute_type() {
            return Err(mismatch());
        }
        if let (Some(cond), Some(attr)) = (&sort, &schema.sort) {
            if matches!(cond, SortCondition::BeginsWith(_)) && attr.key_type == KeyType::N {
                return Err(TableError::validation(
                    "Invalid KeyConditionExpression: Incorrect operand type for operator or \
                     function; operator or function: begins_with, operand type: N",
                ));
            }
            if cond
                .values()
                .any(|v| v.attribute_type() != attr.key_type.attribute_type())
            {
                return Err(mismatch());
            }
        }
        Ok(KeyCondition { partition, sort })
    }

    /// The encoded partition key.
    pub fn partition_key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        key::encode_key_value(&self.partition, &mut out);
        out
    }

    /// The range of encoded sort keys within the partition.
    pub fn sort_range(&self) -> KeyRange {
        self.sort
            .as_ref()
            .map_or((Bound::Unbounded, Bound::Unbounded), SortCondition::range)
    }

    /// The range of composite keys ([`key::encode_composite`]) to scan.
    pub fn composite_range(&self) -> KeyRange {
        key::composite_range(&self.partition, self.sort_range())
    }

    /// Whether an item of the queried table or index satisfies the condition.
    pub fn matches(&self, item: &Item, schema: &KeySchema) -> bool {
        use std::ops::RangeBounds;
        if item.get(&schema.partition.name) != Some(&self.partition) {
            return false;
        }
        match (&schema.sort, &self.sort) {
            (Some(attr), Some(_)) => item.get(&attr.name).is_some_and(|v| {
                let mut enc = Vec::new();
                key::encode_key_value(v, &mut enc);
                v.attribute_type() == attr.key_type.attribute_type()
                    && self.sort_range().contains(&enc)
            }),
            _ => true,
        }
    }
}
