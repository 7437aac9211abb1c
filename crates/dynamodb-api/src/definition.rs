//! A table's definition: key schema, attribute definitions, secondary indexes and stream
//! settings as `CreateTable` gives them (and the store keeps, as JSON), checked once at
//! creation; the [`KeySchema`]s of the table and its indexes, and the index keys of an item.

use lambent_tables::key::{encode_composite, KeyType};
use lambent_tables::{Item, KeySchema, TableError};
use serde::{Deserialize, Serialize};

/// One element of a `KeySchema`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct KeyElement {
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// One of `AttributeDefinitions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// An index's `Projection`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "PascalCase")]
pub struct IndexProjection {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    #[serde(default)]
    pub projection_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub non_key_attributes: Option<Vec<String>>,
}

/// A global or local secondary index.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDefinition {
    pub index_name: String,
    pub key_schema: Vec<KeyElement>,
    #[serde(default)]
    pub projection: IndexProjection,
}

/// `StreamSpecification`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpecification {
    pub stream_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_view_type: Option<String>,
}

/// What the store keeps of a table besides its name: the definition JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Definition {
    pub key_schema: Vec<KeyElement>,
    pub attribute_definitions: Vec<AttributeDefinition>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDefinition>,
    #[serde(default)]
    pub local_secondary_indexes: Vec<IndexDefinition>,
    pub billing_mode: String,
}

/// A secondary index, ready to use.
#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub schema: KeySchema,
    pub projection: IndexProjection,
    pub global: bool,
}

/// A table's definition, ready to use.
#[derive(Debug, Clone)]
pub struct Schema {
    pub definition: Definition,
    pub key: KeySchema,
    pub indexes: Vec<Index>,
}

const INVALID: &str = "One or more parameter values were invalid: ";

fn invalid(message: impl std::fmt::Display) -> TableError {
    TableError::validation(format!("{INVALID}{message}"))
}

impl Definition {
    /// Checks a definition and builds its schemas (CreateTable's checks; a stored definition
    /// passed them).
    pub fn schema(&self) -> Result<Schema, TableError> {
        let key = self.key_schema_of(&self.key_schema, "Table")?;
        let mut indexes = Vec::new();
        let mut used: Vec<String> = key.attributes().map(|a| a.name.clone()).collect();
        for (list, global) in [
            (&self.global_secondary_indexes, true),
            (&self.local_secondary_indexes, false),
        ] {
            for def in list {
                lambent_tables::names::check_name("indexName", &def.index_name)?;
                if indexes.iter().any(|i: &Index| i.name == def.index_name) {
                    return Err(invalid(format!("Duplicate index name: {}", def.index_name)));
                }
                let schema = self.key_schema_of(&def.key_schema, &def.index_name)?;
                if !global
                    && (schema.partition != key.partition
                        || schema.sort.is_none()
                        || key.sort.is_none())
                {
                    return Err(invalid(format!(
                        "Table KeySchema does not have a range key, or the local secondary index \
                         {} does not have the table's hash key and a range key",
                        def.index_name
                    )));
                }
                match def.projection.projection_type.as_deref() {
                    Some("ALL" | "KEYS_ONLY") | None => {}
                    Some("INCLUDE") if def.projection.non_key_attributes.is_some() => {}
                    Some(other) => {
                        return Err(invalid(format!(
                            "Unsupported projection type {other} for index {}",
                            def.index_name
                        )))
                    }
                }
                used.extend(schema.attributes().map(|a| a.name.clone()));
                indexes.push(Index {
                    name: def.index_name.clone(),
                    schema,
                    projection: def.projection.clone(),
                    global,
                });
            }
        }
        used.sort_unstable();
        used.dedup();
        if used.len() != self.attribute_definitions.len() {
            return Err(invalid(
                "Number of attributes in KeySchema does not exactly match number of attributes \
                 defined in AttributeDefinitions",
            ));
        }
        Ok(Schema {
            definition: self.clone(),
            key,
            indexes,
        })
    }

    fn key_schema_of(&self, elements: &[KeyElement], owner: &str) -> Result<KeySchema, TableError> {
        let typed = |e: &KeyElement| -> Result<(String, KeyType), TableError> {
            let def = self
                .attribute_definitions
                .iter()
                .find(|d| d.attribute_name == e.attribute_name)
                .ok_or_else(|| {
                    invalid(format!(
                        "Some index key attributes are not defined in AttributeDefinitions. \
                         Keys: [{}], AttributeDefinitions: [{}]",
                        e.attribute_name,
                        self.attribute_definitions
                            .iter()
                            .map(|d| d.attribute_name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            let key_type = KeyType::from_code(&def.attribute_type).ok_or_else(|| {
                TableError::validation(format!(
                    "1 validation error detected: Value '{}' at \
                     'attributeDefinitions.member.attributeType' failed to satisfy constraint: \
                     Member must satisfy enum value set: [B, N, S]",
                    def.attribute_type
                ))
            })?;
            Ok((e.attribute_name.clone(), key_type))
        };
        match elements {
            [hash] if hash.key_type == "HASH" => {
                let (p, pt) = typed(hash)?;
                Ok(KeySchema::new((&p, pt), None))
            }
            [hash, range] if hash.key_type == "HASH" && range.key_type == "RANGE" => {
                let (p, pt) = typed(hash)?;
                let (s, st) = typed(range)?;
                if p == s {
                    return Err(invalid(format!(
                        "Both the Hash Key and the Range Key element in the KeySchema have the \
                         same name ({owner})"
                    )));
                }
                Ok(KeySchema::new((&p, pt), Some((&s, st))))
            }
            _ => Err(invalid(format!(
                "Invalid KeySchema of {owner}: one HASH element, optionally followed by one \
                 RANGE element, is required"
            ))),
        }
    }
}

impl Schema {
    pub fn index(&self, name: &str) -> Result<&Index, TableError> {
        self.indexes.iter().find(|i| i.name == name).ok_or_else(|| {
            TableError::validation(format!(
                "The table does not have the specified index: {name}"
            ))
        })
    }

    /// The index keys of an item to be written: for each index whose key attributes the item
    /// has (a sparse index skips the others), the encoded composite key. A key attribute of the
    /// wrong type is refused (AWS's message shape).
    pub fn index_keys(&self, item: &Item) -> Result<Vec<(String, Vec<u8>)>, TableError> {
        let mut out = Vec::new();
        'index: for index in &self.indexes {
            let mut parts = Vec::with_capacity(2);
            for attr in index.schema.attributes() {
                let Some(value) = item.get(&attr.name) else {
                    continue 'index;
                };
                let expected = attr.key_type.attribute_type();
                if value.attribute_type() != expected {
                    return Err(invalid(format!(
                        "Type mismatch for Index Key {} Expected: {} Actual: {} IndexName: {}",
                        attr.name,
                        expected.code(),
                        value.attribute_type().code(),
                        index.name
                    )));
                }
                parts.push(value);
            }
            out.push((
                index.name.clone(),
                encode_composite(parts[0], parts.get(1).copied()),
            ));
        }
        Ok(out)
    }
}

impl Index {
    /// The attributes an index read returns of an item (`None`: all).
    pub fn projected(&self, table_key: &KeySchema) -> Option<Vec<String>> {
        match self.projection.projection_type.as_deref() {
            Some("KEYS_ONLY") | Some("INCLUDE") => {
                let mut names: Vec<String> = table_key
                    .attributes()
                    .chain(self.schema.attributes())
                    .map(|a| a.name.clone())
                    .collect();
                names.extend(self.projection.non_key_attributes.iter().flatten().cloned());
                Some(names)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_tables::AttributeValue;

    fn definition(json: serde_json::Value) -> Definition {
        serde_json::from_value(json).unwrap()
    }

    fn orders() -> serde_json::Value {
        serde_json::json!({
            "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}, {"AttributeName": "o", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "c", "AttributeType": "S"}, {"AttributeName": "o", "AttributeType": "N"},
                {"AttributeName": "s", "AttributeType": "S"}],
            "GlobalSecondaryIndexes": [{"IndexName": "by_s",
                "KeySchema": [{"AttributeName": "s", "KeyType": "HASH"}], "Projection": {"ProjectionType": "KEYS_ONLY"}}],
            "BillingMode": "PAY_PER_REQUEST"
        })
    }

    fn message(json: serde_json::Value) -> String {
        definition(json).schema().unwrap_err().to_string()
    }

    #[test]
    fn definitions_are_checked() {
        assert!(definition(orders()).schema().is_ok());
        let mut unused = orders();
        unused["GlobalSecondaryIndexes"] = serde_json::json!([]);
        assert!(message(unused).contains("does not exactly match"));
        let mut undefined = orders();
        undefined["AttributeDefinitions"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert!(message(undefined).contains("not defined in AttributeDefinitions"));
        let mut range_first = orders();
        range_first["KeySchema"] = serde_json::json!([{"AttributeName": "c", "KeyType": "RANGE"}]);
        assert!(message(range_first).contains("Invalid KeySchema of Table"));
        let mut lsi_other_hash = orders();
        lsi_other_hash["LocalSecondaryIndexes"] = serde_json::json!([{"IndexName": "by_s2",
            "KeySchema": [{"AttributeName": "s", "KeyType": "HASH"}, {"AttributeName": "o", "KeyType": "RANGE"}]}]);
        assert!(message(lsi_other_hash).contains("local secondary index by_s2"));
        let mut bad_type = orders();
        bad_type["AttributeDefinitions"][2]["AttributeType"] = serde_json::json!("BOOL");
        assert!(message(bad_type).contains("[B, N, S]"));
    }

    #[test]
    fn index_keys_are_sparse_and_typed() {
        let schema = definition(orders()).schema().unwrap();
        let item = |s: Option<AttributeValue>| {
            let mut item: Item = [
                ("c".to_string(), AttributeValue::S("x".into())),
                ("o".to_string(), AttributeValue::number("1").unwrap()),
            ]
            .into();
            if let Some(s) = s {
                item.insert("s".into(), s);
            }
            item
        };
        assert!(schema.index_keys(&item(None)).unwrap().is_empty());
        let keys = schema
            .index_keys(&item(Some(AttributeValue::S("open".into()))))
            .unwrap();
        assert_eq!(
            keys,
            [(
                "by_s".to_string(),
                encode_composite(&AttributeValue::S("open".into()), None)
            )]
        );
        let err = schema
            .index_keys(&item(Some(AttributeValue::Bool(true))))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("Type mismatch for Index Key s Expected: S Actual: BOOL IndexName: by_s"),
            "{err}"
        );
        let names = schema.indexes[0].projected(&schema.key).unwrap();
        assert_eq!(names, ["c", "o", "s"]);
    }
}
