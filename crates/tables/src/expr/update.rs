//! Update expressions: the parsed actions and their application to an item. Every value is
//! computed from the item as it was before the update (so `SET a = b, b = a` swaps), then
//! SET, ADD and DELETE are applied, then REMOVE, highest list index first, so the indexes of
//! one REMOVE all refer to the list as it was.

use super::{Path, PathElement, Projection};
use crate::error::TableError;
use crate::key::KeySchema;
use crate::value::{AttributeValue, Item, MAX_ITEM_SIZE, MAX_NESTING};

/// A parsed `UpdateExpression`.
#[derive(Clone, Debug, PartialEq)]
pub struct Update {
    pub(crate) set: Vec<(Path, SetValue)>,
    pub(crate) remove: Vec<Path>,
    pub(crate) add: Vec<(Path, AttributeValue)>,
    pub(crate) delete: Vec<(Path, AttributeValue)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SetValue {
    Operand(UpdateOperand),
    Plus(UpdateOperand, UpdateOperand),
    Minus(UpdateOperand, UpdateOperand),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum UpdateOperand {
    Path(Path),
    Value(AttributeValue),
    IfNotExists(Path, Box<UpdateOperand>),
    ListAppend(Box<UpdateOperand>, Box<UpdateOperand>),
}

// Runtime messages, AWS's verbatim as recalled.
const MSG_MISSING: &str =
    "The provided expression refers to an attribute that does not exist in the item";
const MSG_TYPE: &str = "An operand in the update expression has an incorrect data type";
const MSG_PATH: &str = "The document path provided in the update expression is invalid for update";

fn err(msg: &str) -> TableError {
    TableError::validation(msg)
}

impl UpdateOperand {
    fn eval(&self, item: &Item) -> Result<AttributeValue, TableError> {
        match self {
            UpdateOperand::Path(p) => p.resolve(item).cloned().ok_or_else(|| err(MSG_MISSING)),
            UpdateOperand::Value(v) => Ok(v.clone()),
            UpdateOperand::IfNotExists(p, default) => match p.resolve(item) {
                Some(v) => Ok(v.clone()),
                None => default.eval(item),
            },
            UpdateOperand::ListAppend(a, b) => match (a.eval(item)?, b.eval(item)?) {
                (AttributeValue::L(mut a), AttributeValue::L(b)) => {
                    a.extend(b);
                    Ok(AttributeValue::L(a))
                }
                _ => Err(err(MSG_TYPE)),
            },
        }
    }
}

impl SetValue {
    fn eval(&self, item: &Item) -> Result<AttributeValue, TableError> {
        let arith = |a: &UpdateOperand, b: &UpdateOperand, minus: bool| match (
            a.eval(item)?,
            b.eval(item)?,
        ) {
            (AttributeValue::N(a), AttributeValue::N(b)) => {
                let r = if minus {
                    a.checked_sub(b)
                } else {
                    a.checked_add(b)
                };
                r.map(AttributeValue::N)
            }
            _ => Err(err(MSG_TYPE)),
        };
        match self {
            SetValue::Operand(o) => o.eval(item),
            SetValue::Plus(a, b) => arith(a, b, false),
            SetValue::Minus(a, b) => arith(a, b, true),
        }
    }
}

/// The value a path's parent holds, for writing into; `None` when the parent is missing or
/// is not a container.
fn parent_mut<'a>(item: &'a mut Item, path: &Path) -> Option<&'a mut AttributeValue> {
    let els = path.elements();
    let mut cur = item.get_mut(path.top())?;
    for el in &els[1..els.len() - 1] {
        cur = match (el, cur) {
            (PathElement::Attr(k), AttributeValue::M(m)) => m.get_mut(k)?,
            (PathElement::Index(i), AttributeValue::L(l)) => l.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn set_path(item: &mut Item, path: &Path, value: AttributeValue) -> Result<(), TableError> {
    if path.elements().len() == 1 {
        item.insert(path.top().to_string(), value);
        return Ok(());
    }
    let parent = parent_mut(item, path).ok_or_else(|| err(MSG_PATH))?;
    match (path.elements().last(), parent) {
        (Some(PathElement::Attr(k)), AttributeValue::M(m)) => {
            m.insert(k.clone(), value);
        }
        // An index past the end appends.
        (Some(PathElement::Index(i)), AttributeValue::L(l)) => match l.get_mut(*i) {
            Some(slot) => *slot = value,
            None => l.push(value),
        },
        _ => return Err(err(MSG_PATH)),
    }
    Ok(())
}

/// The value at `path` for modification, or where to create it; `Err` when its parent does
/// not exist or cannot hold it.
fn with_slot(
    item: &mut Item,
    path: &Path,
    f: impl FnOnce(Option<&mut AttributeValue>) -> Result<Option<AttributeValue>, TableError>,
) -> Result<(), TableError> {
    if path.elements().len() == 1 {
        let created = f(item.get_mut(path.top()))?;
        if let Some(v) = created {
            item.insert(path.top().to_string(), v);
        }
        return Ok(());
    }
    let parent = parent_mut(item, path).ok_or_else(|| err(MSG_PATH))?;
    match (path.elements().last(), parent) {
        (Some(PathElement::Attr(k)), AttributeValue::M(m)) => {
            if let Some(v) = f(m.get_mut(k))? {
                m.insert(k.clone(), v);
            }
        }
        (Some(PathElement::Index(i)), AttributeValue::L(l)) => {
            if let Some(v) = f(l.get_mut(*i))? {
                l.push(v);
            }
        }
        _ => return Err(err(MSG_PATH)),
    }
    Ok(())
}

fn remove_path(item: &mut Item, path: &Path) -> Result<(), TableError> {
    if path.elements().len() == 1 {
        item.remove(path.top());
        return Ok(());
    }
    let parent = parent_mut(item, path).ok_or_else(|| err(MSG_PATH))?;
    match (path.elements().last(), parent) {
        (Some(PathElement::Attr(k)), AttributeValue::M(m)) => {
            m.remove(k);
        }
        (Some(PathElement::Index(i)), AttributeValue::L(l)) => {
            if *i < l.len() {
                l.remove(*i);
            }
        }
        _ => return Err(err(MSG_PATH)),
    }
    Ok(())
}

/// `ADD`: numbers add, sets unite; a missing attribute starts as the operand.
fn add(
    slot: Option<&mut AttributeValue>,
    v: &AttributeValue,
) -> Result<Option<AttributeValue>, TableError> {
    fn union<T: PartialEq + Clone>(into: &mut Vec<T>, from: &[T]) {
        for m in from {
            if !into.contains(m) {
                into.push(m.clone());
            }
        }
    }
    let Some(cur) = slot else {
        return Ok(Some(v.clone()));
    };
    match (cur, v) {
        (AttributeValue::N(a), AttributeValue::N(b)) => *a = a.checked_add(*b)?,
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => union(a, b),
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => union(a, b),
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => union(a, b),
        _ => return Err(err(MSG_TYPE)),
    }
    Ok(None)
}

/// `DELETE`: removes the operand's members from a set; returns whether the set became
/// empty (it is then removed, as DynamoDB stores no empty set).
fn delete(slot: Option<&mut AttributeValue>, v: &AttributeValue) -> Result<bool, TableError> {
    fn minus<T: PartialEq>(from: &mut Vec<T>, drop: &[T]) -> bool {
        from.retain(|m| !drop.contains(m));
        from.is_empty()
    }
    let Some(cur) = slot else { return Ok(false) };
    match (cur, v) {
        (AttributeValue::Ss(a), AttributeValue::Ss(b)) => Ok(minus(a, b)),
        (AttributeValue::Ns(a), AttributeValue::Ns(b)) => Ok(minus(a, b)),
        (AttributeValue::Bs(a), AttributeValue::Bs(b)) => Ok(minus(a, b)),
        _ => Err(err(MSG_TYPE)),
    }
}

impl Update {
    /// Every path the update writes, in expression order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.set
            .iter()
            .map(|(p, _)| p)
            .chain(self.remove.iter())
            .chain(self.add.iter().map(|(p, _)| p))
            .chain(self.delete.iter().map(|(p, _)| p))
    }

    /// The projection of the attributes the update touches, for `ReturnValues:
    /// UPDATED_OLD`/`UPDATED_NEW` (applied to the old or the new item).
    pub fn updated_projection(&self) -> Projection {
        Projection::from_paths(self.paths().cloned().collect())
    }

    /// Refuses an update of a key attribute (AWS's message, verbatim as recalled).
    pub fn check_keys(&self, schema: &KeySchema) -> Result<(), TableError> {
        match self.paths().find(|p| schema.is_key(p.top())) {
            Some(p) => Err(TableError::validation(format!(
                "One or more parameter values were invalid: Cannot update attribute {}. This \
                 attribute is part of the key",
                p.top()
            ))),
            None => Ok(()),
        }
    }

    /// The item after the update; `item` is the current item (for a new item, its key
    /// attributes). Fails with DynamoDB's errors for missing operands, type mismatches,
    /// invalid paths, number overflow, an updated item over 400 KB or nested deeper than 32
    /// levels; `item` is untouched.
    pub fn apply(&self, item: &Item) -> Result<Item, TableError> {
        let values: Vec<AttributeValue> = self
            .set
            .iter()
            .map(|(_, v)| v.eval(item))
            .collect::<Result<_, _>>()?;
        let mut new = item.clone();
        for ((path, _), value) in self.set.iter().zip(values) {
            set_path(&mut new, path, value)?;
        }
        for (path, v) in &self.add {
            with_slot(&mut new, path, |slot| add(slot, v))?;
        }
        let mut emptied = Vec::new();
        for (path, v) in &self.delete {
            with_slot(&mut new, path, |slot| {
                if delete(slot, v)? {
                    emptied.push(path);
                }
                Ok(None)
            })?;
        }
        let mut removals: Vec<&Path> = self.remove.iter().chain(emptied).collect();
        // Highest index first within a list; other paths are independent of each other.
        removals.sort_by(|a, b| {
            b.elements()
                .iter()
                .map(order_key)
                .cmp(a.elements().iter().map(order_key))
        });
        for path in removals {
            remove_path(&mut new, path)?;
        }
        if new.values().any(|v| v.depth() > MAX_NESTING) {
            return Err(TableError::validation(
                "Nesting Levels have exceeded supported limits",
            ));
        }
        if crate::value::item_size(&new) > MAX_ITEM_SIZE {
            return Err(TableError::validation(
                "Item size to update has exceeded the maximum allowed size",
            ));
        }
        Ok(new)
    }
}

/// Orders path elements with indexes numerically.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum KeyOrd<'a> {
    Attr(&'a str),
    Index(usize),
}

fn order_key(el: &PathElement) -> KeyOrd<'_> {
    match el {
        PathElement::Attr(a) => KeyOrd::Attr(a),
        PathElement::Index(i) => KeyOrd::Index(*i),
    }
}
