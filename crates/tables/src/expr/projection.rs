//! Projection expressions: the attributes (or nested elements) to return. The paths are
//! merged into a tree once, at parse time; list elements picked by index come back as a
//! list of the picked elements in index order, as DynamoDB returns them.

use super::{Path, PathElement};
use crate::value::{AttributeValue, Item};
use std::collections::{BTreeMap, HashMap};

/// A parsed `ProjectionExpression` (or the attributes an update touched).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Projection {
    paths: Vec<Path>,
    tree: Tree,
}

#[derive(Clone, Debug, PartialEq, Default)]
struct Tree {
    whole: bool,
    names: HashMap<String, Tree>,
    indexes: BTreeMap<usize, Tree>,
}

impl Tree {
    fn project(&self, v: &AttributeValue) -> Option<AttributeValue> {
        if self.whole {
            return Some(v.clone());
        }
        match v {
            AttributeValue::M(m) if !self.names.is_empty() => {
                let out = project_map(&self.names, m);
                (!out.is_empty()).then_some(AttributeValue::M(out))
            }
            AttributeValue::L(l) if !self.indexes.is_empty() => {
                let out: Vec<AttributeValue> = self
                    .indexes
                    .iter()
                    .filter_map(|(i, t)| l.get(*i).and_then(|v| t.project(v)))
                    .collect();
                (!out.is_empty()).then_some(AttributeValue::L(out))
            }
            _ => None,
        }
    }
}

fn project_map(names: &HashMap<String, Tree>, m: &Item) -> Item {
    names
        .iter()
        .filter_map(|(k, t)| Some((k.clone(), t.project(m.get(k)?)?)))
        .collect()
}

impl Projection {
    /// The projection of these paths (which must not overlap: parsing checks that).
    pub fn from_paths(paths: Vec<Path>) -> Projection {
        let mut tree = Tree::default();
        for p in &paths {
            let mut node = &mut tree;
            for el in p.elements() {
                node = match el {
                    PathElement::Attr(a) => node.names.entry(a.clone()).or_default(),
                    PathElement::Index(i) => node.indexes.entry(*i).or_default(),
                };
            }
            node.whole = true;
        }
        Projection { paths, tree }
    }

    pub fn paths(&self) -> &[Path] {
        &self.paths
    }

    /// The top-level attribute names the projection reads (to fetch only those).
    pub fn top_level_names(&self) -> impl Iterator<Item = &str> {
        self.tree.names.keys().map(String::as_str)
    }

    /// The projected item.
    pub fn apply(&self, item: &Item) -> Item {
        project_map(&self.tree.names, item)
    }
}
