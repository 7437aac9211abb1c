//! Changes to a table after its creation: UpdateTable (global secondary indexes added, with
//! their entries backfilled from the existing items, or removed; stream settings; billing
//! mode), UpdateTimeToLive/DescribeTimeToLive, and the expiry sweep that deletes items whose
//! TTL attribute has passed.
//!
//! A backfill is one [`TableStore::write_items`] call per page of keys whose closure computes
//! each current item's index keys under the store's transaction ([`Change::Reindex`]), so an
//! item written meanwhile is indexed by its latest version. An expired item is deleted by a
//! write whose closure checks again that it is still expired.

use super::{not_found, now_ms, parse_item, store_err, Table, Tables, FETCH};
use crate::definition::{Definition, IndexDefinition, StreamSpecification};
use lambent_store::tables::{Change, Decide, ItemCursor, ItemKey, RangeQuery, StoredTable};
use lambent_tables::{AttributeValue, Item, TableError};
use serde::Deserialize;
use serde_json::{json, Value};
use std::ops::Bound;
use std::sync::Arc;

/// Items whose TTL is further in the past than this are not expired (DynamoDB's five years).
const TTL_HORIZON_S: f64 = 5.0 * 365.0 * 24.0 * 3600.0;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTableInput {
    pub table_name: String,
    #[serde(default)]
    pub attribute_definitions: Vec<crate::definition::AttributeDefinition>,
    #[serde(default)]
    pub global_secondary_index_updates: Vec<IndexUpdate>,
    pub stream_specification: Option<StreamSpecification>,
    pub billing_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexUpdate {
    pub create: Option<IndexDefinition>,
    pub delete: Option<IndexName>,
    /// Throughput changes: accepted, nothing to do.
    pub update: Option<IndexName>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexName {
    pub index_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTimeToLiveInput {
    pub table_name: String,
    pub time_to_live_specification: TimeToLiveSpecification,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveSpecification {
    pub enabled: bool,
    pub attribute_name: String,
}

/// The stream view type a `StreamSpecification` asks for (`None`: no stream).
pub(super) fn stream_view(spec: StreamSpecification) -> Result<Option<String>, TableError> {
    match spec {
        StreamSpecification {
            stream_enabled: true,
            stream_view_type: Some(v),
        } if matches!(
            v.as_str(),
            "KEYS_ONLY" | "NEW_IMAGE" | "OLD_IMAGE" | "NEW_AND_OLD_IMAGES"
        ) =>
        {
            Ok(Some(v))
        }
        StreamSpecification {
            stream_enabled: true,
            ..
        } => Err(TableError::validation(
            "One or more parameter values were invalid: StreamViewType is required and must be \
             KEYS_ONLY, NEW_IMAGE, OLD_IMAGE or NEW_AND_OLD_IMAGES when StreamEnabled is true",
        )),
        _ => Ok(None),
    }
}

/// The attribute definitions a definition's keys use, and only those, in their order.
fn prune_attribute_definitions(d: &mut Definition) {
    let mut used: Vec<&str> = d
        .key_schema
        .iter()
        .map(|k| k.attribute_name.as_str())
        .collect();
    for i in d
        .global_secondary_indexes
        .iter()
        .chain(&d.local_secondary_indexes)
    {
        used.extend(i.key_schema.iter().map(|k| k.attribute_name.as_str()));
    }
    let used: Vec<String> = used.into_iter().map(String::from).collect();
    d.attribute_definitions
        .retain(|a| used.contains(&a.attribute_name));
}

/// Whether `item` has expired at `now_s` by its attribute `attribute` (a number of epoch
/// seconds, not more than five years in the past).
fn expired(item: &Item, attribute: &str, now_s: f64) -> bool {
    match item.get(attribute) {
        Some(AttributeValue::N(n)) => match n.to_string().parse::<f64>() {
            Ok(at) => at <= now_s && at > now_s - TTL_HORIZON_S,
            Err(_) => false,
        },
        _ => false,
    }
}

impl Tables {
    pub async fn update_table(
        &self,
        ns: &str,
        input: UpdateTableInput,
    ) -> Result<Value, TableError> {
        let table = self.table(ns, &input.table_name).await?;
        let mut stored = table.stored.clone();
        let mut definition = table.schema.definition.clone();
        if let Some(mode) = input.billing_mode {
            if !matches!(mode.as_str(), "PROVISIONED" | "PAY_PER_REQUEST") {
                return Err(TableError::validation(format!(
                    "1 validation error detected: Value '{mode}' at 'billingMode' failed to \
                     satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
                )));
            }
            definition.billing_mode = mode;
        }
        for a in input.attribute_definitions {
            let existing = definition
                .attribute_definitions
                .iter()
                .find(|d| d.attribute_name == a.attribute_name)
                .map(|d| d.attribute_type.clone());
            match existing {
                Some(t) if t != a.attribute_type => {
                    return Err(TableError::validation(format!(
                        "One or more parameter values were invalid: Cannot change the type of \
                         attribute {} from {t} to {}",
                        a.attribute_name, a.attribute_type
                    )))
                }
                Some(_) => {}
                None => definition.attribute_definitions.push(a),
            }
        }
        let mut reindex = false;
        for update in input.global_secondary_index_updates {
            let gsis = &mut definition.global_secondary_indexes;
            match (update.create, update.delete, update.update) {
                (Some(create), None, None) => {
                    if gsis.iter().any(|i| i.index_name == create.index_name) {
                        return Err(TableError::validation(format!(
                            "One or more parameter values were invalid: Attempting to create an \
                             index which already exists: {}",
                            create.index_name
                        )));
                    }
                    gsis.push(create);
                    reindex = true;
                }
                (None, Some(delete), None) => {
                    let before = gsis.len();
                    gsis.retain(|i| i.index_name != delete.index_name);
                    if gsis.len() == before {
                        return Err(TableError::ResourceNotFound(format!(
                            "Requested resource not found: Index: {} not found",
                            delete.index_name
                        )));
                    }
                    reindex = true;
                }
                (None, None, Some(u)) => {
                    if !gsis.iter().any(|i| i.index_name == u.index_name) {
                        return Err(TableError::ResourceNotFound(format!(
                            "Requested resource not found: Index: {} not found",
                            u.index_name
                        )));
                    }
                }
                _ => return Err(TableError::validation(
                    "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate \
                         Create, Update or Delete must be specified, and only one",
                )),
            }
        }
        prune_attribute_definitions(&mut definition);
        let schema = Arc::new(definition.schema()?);
        if let Some(spec) = input.stream_specification {
            let view = stream_view(spec)?;
            match (&stored.stream_view_type, &view) {
                (Some(_), Some(_)) => {
                    return Err(TableError::validation(format!(
                        "Table already has an enabled stream: {}",
                        self.arn(ns, &stored.name)
                    )))
                }
                (None, None) => {
                    return Err(TableError::validation(
                        "One or more parameter values were invalid: Table already has no stream",
                    ))
                }
                _ => stored.stream_view_type = view,
            }
        }
        stored.definition =
            serde_json::to_string(&definition).map_err(|e| TableError::Internal(e.to_string()))?;
        if !self.store.update_table(&stored).await.map_err(store_err)? {
            return Err(not_found());
        }
        self.schemas.lock().insert(
            stored.id.clone(),
            (stored.definition.clone(), schema.clone()),
        );
        let table = Table { stored, schema };
        if reindex {
            self.reindex(&table).await?;
        }
        Ok(json!({"TableDescription": self.describe(&table, "ACTIVE").await?}))
    }

    /// Every page of a table's items, in key order, handed to `each` (keys and items).
    async fn each_page<F, Fut>(&self, table: &Table, mut each: F) -> Result<(), TableError>
    where
        F: FnMut(Vec<(Vec<u8>, Item)>) -> Fut,
        Fut: std::future::Future<Output = Result<(), TableError>>,
    {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let q = RangeQuery {
                table_id: table.stored.id.clone(),
                index: None,
                lower: Bound::Unbounded,
                upper: Bound::Unbounded,
                after: after.clone().map(|key| ItemCursor {
                    index_key: None,
                    key,
                }),
                forward: true,
                segment: None,
                limit: FETCH,
            };
            let rows = self.store.range_items(&q).await.map_err(store_err)?;
            let done = rows.len() < FETCH;
            after = rows.last().map(|r| r.key.clone());
            let page = rows
                .into_iter()
                .map(|r| Ok((r.key, parse_item(&r.json)?)))
                .collect::<Result<Vec<_>, TableError>>()?;
            if !page.is_empty() {
                each(page).await?;
            }
            if done {
                return Ok(());
            }
        }
    }

    /// Rewrites the index entries of every item of a table for its (new) schema.
    async fn reindex(&self, table: &Table) -> Result<(), TableError> {
        self.each_page(table, |page| {
            let keys: Vec<ItemKey> = page
                .into_iter()
                .map(|(key, _)| ItemKey {
                    table_id: table.stored.id.clone(),
                    key,
                })
                .collect();
            let schema = table.schema.clone();
            let decide: Decide = Box::new(move |current| {
                Ok(current
                    .iter()
                    .map(|json| {
                        let item = json.as_deref().and_then(|j| parse_item(j).ok());
                        match item {
                            // An item whose attribute has the wrong type for an index stays
                            // out of every index, as a write of it would have been refused.
                            Some(item) => {
                                Change::Reindex(schema.index_keys(&item).unwrap_or_default())
                            }
                            None => Change::Keep,
                        }
                    })
                    .collect())
            });
            async move {
                self.store
                    .write_items(keys, now_ms(), decide)
                    .await
                    .map_err(store_err)?
                    .map(|_| ())
                    .map_err(|a| TableError::Internal(a.0.to_string()))
            }
        })
        .await
    }

    pub async fn update_time_to_live(
        &self,
        ns: &str,
        input: UpdateTimeToLiveInput,
    ) -> Result<Value, TableError> {
        let spec = input.time_to_live_specification;
        if spec.attribute_name.is_empty() || spec.attribute_name.len() > 255 {
            return Err(TableError::validation(
                "1 validation error detected: Value at 'timeToLiveSpecification.attributeName' \
                 failed to satisfy constraint: Member must have length between 1 and 255",
            ));
        }
        let table = self.table(ns, &input.table_name).await?;
        let mut stored = table.stored.clone();
        stored.ttl_attribute = match (&stored.ttl_attribute, spec.enabled) {
            (Some(_), true) => return Err(TableError::validation("TimeToLive is already enabled")),
            (None, false) => return Err(TableError::validation("TimeToLive is already disabled")),
            (Some(current), false) if *current != spec.attribute_name => {
                return Err(TableError::validation(format!(
                    "TimeToLive is enabled on attribute {current}, not {}",
                    spec.attribute_name
                )))
            }
            (_, true) => Some(spec.attribute_name.clone()),
            (_, false) => None,
        };
        if !self.store.update_table(&stored).await.map_err(store_err)? {
            return Err(not_found());
        }
        Ok(json!({"TimeToLiveSpecification": {
            "Enabled": spec.enabled, "AttributeName": spec.attribute_name
        }}))
    }

    pub async fn describe_time_to_live(&self, ns: &str, name: &str) -> Result<Value, TableError> {
        let table = self.table(ns, name).await?;
        Ok(
            json!({"TimeToLiveDescription": match &table.stored.ttl_attribute {
                Some(a) => json!({"TimeToLiveStatus": "ENABLED", "AttributeName": a}),
                None => json!({"TimeToLiveStatus": "DISABLED"}),
            }}),
        )
    }

    /// Deletes the expired items of every table with TTL on, as of `now_s` (epoch seconds);
    /// returns how many. Each deletion checks again, in its transaction, that the item is
    /// still expired (another node's sweep or a write may have come first).
    pub async fn expire(&self, now_s: f64) -> Result<u64, TableError> {
        let tables: Vec<StoredTable> = self.store.ttl_tables().await.map_err(store_err)?;
        let mut deleted = 0;
        for stored in tables {
            let Some(attribute) = stored.ttl_attribute.clone() else {
                continue;
            };
            let table = match self.table(&stored.namespace, &stored.name).await {
                Ok(t) if t.stored.id == stored.id => t,
                // Deleted or replaced since it was listed.
                Ok(_) | Err(TableError::ResourceNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let mut keys = Vec::new();
            self.each_page(&table, |page| {
                keys.extend(
                    page.into_iter()
                        .filter(|(_, item)| expired(item, &attribute, now_s))
                        .map(|(key, _)| key),
                );
                async { Ok(()) }
            })
            .await?;
            for key in keys {
                let attribute = attribute.clone();
                let decide: Decide = Box::new(move |current| {
                    let still = current[0]
                        .as_deref()
                        .and_then(|j| parse_item(j).ok())
                        .is_some_and(|item| expired(&item, &attribute, now_s));
                    Ok(vec![if still { Change::Expire } else { Change::Keep }])
                });
                let key = ItemKey {
                    table_id: table.stored.id.clone(),
                    key,
                };
                match self.store.write_items(vec![key], now_ms(), decide).await {
                    Ok(Ok(w)) if w.old[0].is_some() && w.new[0].is_none() => deleted += 1,
                    Ok(_) => {}
                    Err(e) => match store_err(e) {
                        TableError::ResourceNotFound(_) => break,
                        e => return Err(e),
                    },
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(attr: &str, n: &str) -> Item {
        let mut i = Item::new();
        i.insert(
            attr.into(),
            AttributeValue::N(lambent_tables::Number::parse(n).unwrap()),
        );
        i
    }

    #[test]
    fn items_expire_by_a_recent_number_of_seconds() {
        let now = 1_700_000_000.0;
        assert!(expired(&item("ttl", "1699999999"), "ttl", now));
        assert!(expired(&item("ttl", "1700000000"), "ttl", now));
        assert!(!expired(&item("ttl", "1700000001"), "ttl", now));
        assert!(
            !expired(&item("ttl", "1000"), "ttl", now),
            "over five years ago"
        );
        assert!(!expired(&item("other", "1000"), "ttl", now));
        let mut s = Item::new();
        s.insert("ttl".into(), AttributeValue::S("1".into()));
        assert!(!expired(&s, "ttl", now), "not a number");
    }
}
