//! The tables service: DynamoDB's operations on typed requests, over a [`TableStore`] and the
//! `lambent-tables` engine. Every write, single or transactional, is one
//! [`TableStore::write_items`] call whose closure evaluates conditions and updates against the
//! items read under the store's transaction, so a condition and the write it guards are
//! atomic. The JSON adapter ([`crate::api`]) only decodes requests and encodes answers.

use crate::definition::{Definition, Schema, StreamSpecification};
use lambent_store::tables::{
    Abort, Change, Decide, Idempotent, ItemCursor, ItemKey, NewItem, RangeQuery, RequestToken,
    StoredTable, TableStore, TABLE_GONE,
};
use lambent_store::StoreError;
use lambent_tables::error::CancellationReason;
use lambent_tables::key::partition_hash;
use lambent_tables::value::{check_item_limits, item_size};
use lambent_tables::{Condition, Expressions, Item, Projection, TableError, Update};
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::{json, Map, Value};

mod maintenance;
pub use maintenance::{
    IndexName, IndexUpdate, TimeToLiveSpecification, UpdateTableInput, UpdateTimeToLiveInput,
};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

/// The largest page a Query or Scan returns (DynamoDB's 1 MB).
const MAX_PAGE_BYTES: usize = 1024 * 1024;
/// How many items a batch read of the store fetches at once.
const FETCH: usize = 256;
/// How long a `ClientRequestToken` is remembered (DynamoDB's 10 minutes).
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// The tables of every namespace.
pub struct Tables {
    store: Arc<dyn TableStore>,
    /// The namespaces' storage quota, which item writes count against.
    quota: lambent_store::tenants::QuotaSlot,
    region: String,
    /// Per table id: the definition text a schema was made from, and the schema.
    schemas: Mutex<HashMap<String, (String, Arc<Schema>)>>,
    /// Per (namespace, name): the table last found, for key reads (GetItem, BatchGetItem,
    /// TransactGetItems), which need only its id and key schema, and neither changes under
    /// an id; the store refuses a read of a deleted table, and the read looks it up again.
    key_tables: Mutex<HashMap<String, HashMap<String, Arc<Table>>>>,
}

/// A table found for a request: its stored row and its schema.
#[derive(Clone)]
pub(crate) struct Table {
    pub(crate) stored: StoredTable,
    pub(crate) schema: Arc<Schema>,
}

fn store_err(e: StoreError) -> TableError {
    match e {
        StoreError::Changed(m) if m == TABLE_GONE => not_found(),
        e => TableError::Internal(e.to_string()),
    }
}

fn not_found() -> TableError {
    TableError::ResourceNotFound("Requested resource not found".into())
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn parse_item(json: &str) -> Result<Item, TableError> {
    serde_json::from_str(json).map_err(|e| TableError::Internal(format!("stored item: {e}")))
}

fn item_json(item: &Item) -> Value {
    serde_json::to_value(item).unwrap_or(Value::Null)
}

/// `ExpressionAttributeNames`, as a request carries them.
pub type Names = Option<HashMap<String, String>>;
/// `ExpressionAttributeValues`, as a request carries them.
pub type Values = Option<HashMap<String, lambent_tables::AttributeValue>>;

/// A request with the common expression members. They are fields of each request rather
/// than a flattened struct: serde reads a struct with a flattened member by buffering the
/// whole request (every item in it) into an intermediate tree first.
trait WithExpressions {
    fn members(&mut self) -> (&mut Names, &mut Values);

    /// The request's expression names and values, taken out of it.
    fn take_expressions(&mut self) -> Result<Expressions, TableError> {
        let (names, values) = self.members();
        Expressions::new(names.take(), values.take())
    }
}

macro_rules! with_expressions {
    ($($request:ty),*) => {$(
        impl WithExpressions for $request {
            fn members(&mut self) -> (&mut Names, &mut Values) {
                (
                    &mut self.expression_attribute_names,
                    &mut self.expression_attribute_values,
                )
            }
        }
    )*};
}

with_expressions!(PutItemInput, KeyInput, ReadInput, KeysAndProjection);

/// Refuses names or values given without an expression, then unused ones.
fn finish(exprs: Expressions, any_expression: bool) -> Result<(), TableError> {
    if !any_expression {
        if exprs.has_names() {
            return Err(TableError::validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if exprs.has_values() {
            return Err(TableError::validation(
                "ExpressionAttributeValues can only be specified when using expressions",
            ));
        }
    }
    exprs.finish()
}

/// One write of an item: what to do and under which condition.
struct ItemOp {
    table: Table,
    key: Vec<u8>,
    /// The `Key` (or the item's key attributes), the base of an update of a missing item.
    key_item: Item,
    kind: OpKind,
    condition: Option<Condition>,
    /// `ReturnValuesOnConditionCheckFailure: ALL_OLD`.
    old_on_failure: bool,
}

enum OpKind {
    Check,
    Put(Item),
    Delete,
    Update(Update),
}

impl ItemOp {
    /// Whether [`ItemOp::decide`] looks at the current item (a condition or an update does;
    /// an unconditional put or delete does not).
    fn reads_old(&self) -> bool {
        self.condition.is_some() || matches!(self.kind, OpKind::Update(_))
    }

    /// Decides this op against the current item: the change, or why not.
    fn decide(&self, old: Option<Item>) -> Result<Change, TableError> {
        if let Some(cond) = &self.condition {
            if !cond.evaluate(old.as_ref()) {
                let item = if self.old_on_failure {
                    old.map(Box::new)
                } else {
                    None
                };
                return Err(TableError::ConditionalCheckFailed { item });
            }
        }
        let new = match &self.kind {
            OpKind::Check => return Ok(Change::Keep),
            OpKind::Delete => return Ok(Change::Delete),
            OpKind::Put(item) => item.clone(),
            OpKind::Update(update) => update.apply(old.as_ref().unwrap_or(&self.key_item))?,
        };
        self.new_item(&new).map(Change::Put)
    }

    fn new_item(&self, item: &Item) -> Result<NewItem, TableError> {
        let schema = &self.table.schema;
        let index_keys = schema.index_keys(item)?;
        let partition = item
            .get(&schema.key.partition.name)
            .ok_or_else(|| TableError::Internal("an item without its key".into()))?;
        Ok(NewItem {
            json: serde_json::to_string(item).map_err(|e| TableError::Internal(e.to_string()))?,
            size: item_size(item) as u64,
            partition_hash: partition_hash(partition),
            index_keys,
        })
    }

    fn item_key(&self) -> ItemKey {
        ItemKey {
            table_id: self.table.stored.id.clone(),
            key: self.key.clone(),
        }
    }
}

/// `ReturnValues` of a single-item write.
fn return_values(
    mode: Option<&str>,
    allowed: &[&str],
    old: Option<String>,
    new: Option<String>,
    update: Option<&Update>,
) -> Result<Option<Item>, TableError> {
    let mode = mode.unwrap_or("NONE");
    if !allowed.contains(&mode) {
        return Err(TableError::validation(format!(
            "ReturnValues can only be {} when {}",
            allowed.join(" or "),
            if allowed.len() == 2 {
                "updating or deleting an item"
            } else {
                "updating an item"
            }
        )));
    }
    // Only the item returned is parsed.
    let parsed = |text: Option<String>| text.as_deref().map(parse_item).transpose();
    let projected = |text: Option<String>| -> Result<Option<Item>, TableError> {
        Ok(match (parsed(text)?, update) {
            (Some(item), Some(u)) => Some(u.updated_projection().apply(&item)),
            _ => None,
        })
    };
    Ok(match mode {
        "ALL_OLD" => parsed(old)?,
        "ALL_NEW" => parsed(new)?,
        "UPDATED_OLD" => projected(old)?,
        "UPDATED_NEW" => projected(new)?,
        _ => None,
    }
    .filter(|i| !i.is_empty()))
}

/// Checks `ReturnValuesOnConditionCheckFailure`; true for `ALL_OLD`.
fn old_on_failure(mode: Option<&str>) -> Result<bool, TableError> {
    match mode {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(TableError::validation(format!(
            "1 validation error detected: Value '{other}' at 'returnValuesOnConditionCheckFailure' \
             failed to satisfy constraint: Member must satisfy enum value set: [ALL_OLD, NONE]"
        ))),
    }
}

// ---- Requests ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableInput {
    pub table_name: String,
    #[serde(flatten)]
    pub definition: CreateDefinition,
    pub stream_specification: Option<StreamSpecification>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateDefinition {
    pub key_schema: Vec<crate::definition::KeyElement>,
    pub attribute_definitions: Vec<crate::definition::AttributeDefinition>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<crate::definition::IndexDefinition>,
    #[serde(default)]
    pub local_secondary_indexes: Vec<crate::definition::IndexDefinition>,
    pub billing_mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTablesInput {
    pub exclusive_start_table_name: Option<String>,
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItemInput {
    pub table_name: String,
    pub item: Item,
    pub condition_expression: Option<String>,
    pub return_values: Option<String>,
    pub return_values_on_condition_check_failure: Option<String>,
    pub expression_attribute_names: Names,
    pub expression_attribute_values: Values,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyInput {
    pub table_name: String,
    pub key: Item,
    pub condition_expression: Option<String>,
    pub update_expression: Option<String>,
    pub projection_expression: Option<String>,
    pub return_values: Option<String>,
    pub return_values_on_condition_check_failure: Option<String>,
    pub expression_attribute_names: Names,
    pub expression_attribute_values: Values,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReadInput {
    pub table_name: String,
    pub index_name: Option<String>,
    pub key_condition_expression: Option<String>,
    pub filter_expression: Option<String>,
    pub projection_expression: Option<String>,
    pub select: Option<String>,
    pub scan_index_forward: Option<bool>,
    pub limit: Option<i64>,
    pub exclusive_start_key: Option<Item>,
    pub segment: Option<i64>,
    pub total_segments: Option<i64>,
    pub expression_attribute_names: Names,
    pub expression_attribute_values: Values,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetInput {
    pub request_items: HashMap<String, KeysAndProjection>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeysAndProjection {
    pub keys: Vec<Item>,
    pub projection_expression: Option<String>,
    pub expression_attribute_names: Names,
    pub expression_attribute_values: Values,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchWriteInput {
    pub request_items: HashMap<String, Vec<WriteRequest>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WriteRequest {
    pub put_request: Option<ItemHolder>,
    pub delete_request: Option<KeyHolder>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ItemHolder {
    pub item: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyHolder {
    pub key: Item,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteInput {
    pub transact_items: Vec<TransactWriteItem>,
    pub client_request_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItem {
    pub condition_check: Option<KeyInput>,
    pub put: Option<PutItemInput>,
    pub delete: Option<KeyInput>,
    pub update: Option<KeyInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGetInput {
    pub transact_items: Vec<TransactGetItem>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactGetItem {
    pub get: KeyInput,
}

impl Tables {
    pub fn new(store: Arc<dyn TableStore>, region: String) -> Tables {
        Tables {
            store,
            quota: Default::default(),
            region,
            schemas: Mutex::default(),
            key_tables: Mutex::default(),
        }
    }

    /// Makes item writes count against their namespace's storage quota.
    pub fn set_storage_quota(&self, quota: Arc<dyn lambent_store::tenants::StorageQuota>) {
        self.quota.set(quota);
    }

    /// Takes `bytes` of `ns`'s storage quota before a write, or refuses it.
    pub(crate) async fn reserve_storage(&self, ns: &str, bytes: u64) -> Result<(), TableError> {
        self.quota.reserve(ns, bytes).await.map_err(|e| match e {
            lambent_store::tenants::QuotaError::Exceeded(m) => TableError::QuotaExceeded(m),
            lambent_store::tenants::QuotaError::Store(s) => TableError::Internal(s.to_string()),
        })
    }

    pub(crate) fn store(&self) -> &Arc<dyn TableStore> {
        &self.store
    }

    pub(crate) fn region(&self) -> &str {
        &self.region
    }

    pub(crate) fn arn(&self, ns: &str, name: &str) -> String {
        format!("arn:aws:dynamodb:{}:{ns}:table/{name}", self.region)
    }

    pub(crate) async fn table(&self, ns: &str, name: &str) -> Result<Table, TableError> {
        lambent_tables::names::check_name("tableName", name)?;
        let stored = self
            .store
            .get_table(ns, name)
            .await
            .map_err(store_err)?
            .ok_or_else(not_found)?;
        // UpdateTable changes the definition (on any node): a schema is for one text of it.
        let cached = self
            .schemas
            .lock()
            .get(&stored.id)
            .filter(|(text, _)| *text == stored.definition)
            .map(|(_, schema)| schema.clone());
        let schema = match cached {
            Some(s) => s,
            None => {
                let def: Definition = serde_json::from_str(&stored.definition)
                    .map_err(|e| TableError::Internal(format!("stored definition: {e}")))?;
                let schema = Arc::new(def.schema()?);
                self.schemas.lock().insert(
                    stored.id.clone(),
                    (stored.definition.clone(), schema.clone()),
                );
                schema
            }
        };
        let table = Table { stored, schema };
        self.key_tables
            .lock()
            .entry(ns.into())
            .or_default()
            .insert(name.into(), Arc::new(table.clone()));
        Ok(table)
    }

    /// The table `ns`/`name` for a key read: the one remembered unless `refresh`.
    async fn key_table(
        &self,
        ns: &str,
        name: &str,
        refresh: bool,
    ) -> Result<Arc<Table>, TableError> {
        if !refresh {
            let known = self
                .key_tables
                .lock()
                .get(ns)
                .and_then(|t| t.get(name))
                .cloned();
            if let Some(t) = known {
                return Ok(t);
            }
        }
        match self.table(ns, name).await {
            Ok(t) => Ok(Arc::new(t)),
            Err(e) => {
                self.forget_table(ns, name);
                Err(e)
            }
        }
    }

    /// Drops what [`Tables::key_table`] remembers of `ns`/`name`.
    pub(crate) fn forget_table(&self, ns: &str, name: &str) {
        if let Some(t) = self.key_tables.lock().get_mut(ns) {
            t.remove(name);
        }
    }

    /// `TableDescription`.
    async fn describe(&self, t: &Table, status: &str) -> Result<Value, TableError> {
        let (count, bytes) = self
            .store
            .table_stats(&t.stored.id)
            .await
            .map_err(store_err)?;
        let d = &t.schema.definition;
        let arn = self.arn(&t.stored.namespace, &t.stored.name);
        let index = |i: &crate::definition::IndexDefinition| {
            json!({
                "IndexName": i.index_name, "KeySchema": i.key_schema, "Projection": i.projection,
                "IndexStatus": "ACTIVE", "IndexArn": format!("{arn}/index/{}", i.index_name),
                "ItemCount": count, "IndexSizeBytes": bytes,
                "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0, "NumberOfDecreasesToday": 0},
            })
        };
        let mut desc = json!({
            "TableName": t.stored.name,
            "TableArn": arn,
            "TableId": t.stored.id,
            "TableStatus": status,
            "CreationDateTime": t.stored.created_ms as f64 / 1000.0,
            "KeySchema": d.key_schema,
            "AttributeDefinitions": d.attribute_definitions,
            "ItemCount": count,
            "TableSizeBytes": bytes,
            "BillingModeSummary": {"BillingMode": d.billing_mode},
            "ProvisionedThroughput": {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0, "NumberOfDecreasesToday": 0},
        });
        if !d.global_secondary_indexes.is_empty() {
            desc["GlobalSecondaryIndexes"] = d.global_secondary_indexes.iter().map(index).collect();
        }
        if !d.local_secondary_indexes.is_empty() {
            desc["LocalSecondaryIndexes"] = d.local_secondary_indexes.iter().map(index).collect();
        }
        if let Some(view) = &t.stored.stream_view_type {
            let label = t.stored.created_ms.to_string();
            desc["StreamSpecification"] = json!({"StreamEnabled": true, "StreamViewType": view});
            desc["LatestStreamLabel"] = json!(label);
            desc["LatestStreamArn"] = json!(format!("{arn}/stream/{label}"));
        }
        Ok(desc)
    }

    pub async fn create_table(
        &self,
        ns: &str,
        input: CreateTableInput,
    ) -> Result<Value, TableError> {
        lambent_tables::names::check_name("tableName", &input.table_name)?;
        let c = input.definition;
        let billing_mode = c.billing_mode.unwrap_or_else(|| "PROVISIONED".into());
        if !matches!(billing_mode.as_str(), "PROVISIONED" | "PAY_PER_REQUEST") {
            return Err(TableError::validation(format!(
                "1 validation error detected: Value '{billing_mode}' at 'billingMode' failed to \
                 satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
            )));
        }
        let definition = Definition {
            key_schema: c.key_schema,
            attribute_definitions: c.attribute_definitions,
            global_secondary_indexes: c.global_secondary_indexes,
            local_secondary_indexes: c.local_secondary_indexes,
            billing_mode,
        };
        let schema = definition.schema()?;
        let stream_view_type = match input.stream_specification {
            Some(spec) => maintenance::stream_view(spec)?,
            None => None,
        };
        let stored = StoredTable {
            namespace: ns.into(),
            name: input.table_name.clone(),
            id: uuid::Uuid::new_v4().to_string(),
            definition: serde_json::to_string(&definition)
                .map_err(|e| TableError::Internal(e.to_string()))?,
            stream_view_type,
            ttl_attribute: None,
            created_ms: now_ms(),
        };
        if !self.store.create_table(&stored).await.map_err(store_err)? {
            return Err(TableError::ResourceInUse(format!(
                "Table already exists: {}",
                input.table_name
            )));
        }
        let table = Table {
            stored,
            schema: Arc::new(schema),
        };
        Ok(json!({"TableDescription": self.describe(&table, "ACTIVE").await?}))
    }

    pub async fn describe_table(&self, ns: &str, name: &str) -> Result<Value, TableError> {
        let table = self.table(ns, name).await.map_err(|e| match e {
            TableError::ResourceNotFound(_) => TableError::ResourceNotFound(format!(
                "Requested resource not found: Table: {name} not found"
            )),
            e => e,
        })?;
        Ok(json!({"Table": self.describe(&table, "ACTIVE").await?}))
    }

    pub async fn delete_table(&self, ns: &str, name: &str) -> Result<Value, TableError> {
        let table = self.table(ns, name).await?;
        let description = self.describe(&table, "DELETING").await?;
        self.store
            .delete_table(ns, name)
            .await
            .map_err(store_err)?
            .ok_or_else(not_found)?;
        self.schemas.lock().remove(&table.stored.id);
        self.forget_table(ns, name);
        Ok(json!({"TableDescription": description}))
    }

    pub async fn list_tables(&self, ns: &str, input: ListTablesInput) -> Result<Value, TableError> {
        let limit = match input.limit {
            None => 100,
            Some(n @ 1..=100) => n as usize,
            Some(n) => {
                return Err(TableError::validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy \
                     constraint: Member must have value {} 100",
                    if n < 1 {
                        "greater than or equal to 1, and less than or equal to"
                    } else {
                        "less than or equal to"
                    }
                )))
            }
        };
        let names = self
            .store
            .list_tables(ns, input.exclusive_start_table_name.as_deref(), limit + 1)
            .await
            .map_err(store_err)?;
        let mut out = json!({"TableNames": names.iter().take(limit).collect::<Vec<_>>()});
        if names.len() > limit {
            out["LastEvaluatedTableName"] = json!(names[limit - 1]);
        }
        Ok(out)
    }

    /// Runs item ops as one atomic write. A single op's failure is its own error; in a
    /// transaction, any failure cancels all with one reason per op. Per op, the old and new
    /// item's stored JSON, parsed only by a caller that returns them.
    async fn run(
        &self,
        ops: Vec<ItemOp>,
        transaction: bool,
    ) -> Result<Vec<(Option<String>, Option<String>)>, TableError> {
        self.run_once(ops, transaction, None).await
    }

    /// [`Tables::run`], at most once per `token` (nothing and no items for a repeat).
    async fn run_once(
        &self,
        ops: Vec<ItemOp>,
        transaction: bool,
        token: Option<RequestToken>,
    ) -> Result<Vec<(Option<String>, Option<String>)>, TableError> {
        let keys: Vec<ItemKey> = ops.iter().map(ItemOp::item_key).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(TableError::validation(if transaction {
                "Transaction request cannot include multiple operations on one item"
            } else {
                "Provided list of item keys contains duplicates"
            }));
        }
        let decide: Decide = Box::new(move |current: &[Option<String>]| {
            let mut changes = Vec::with_capacity(ops.len());
            let mut reasons = Vec::new();
            let mut failed = false;
            for (op, json) in ops.iter().zip(current) {
                let old = match op.reads_old() {
                    true => json.as_deref().map(parse_item).transpose().map_err(abort)?,
                    false => None,
                };
                match op.decide(old) {
                    Ok(change) => {
                        changes.push(change);
                        reasons.push(CancellationReason {
                            code: "None".into(),
                            message: None,
                            item: None,
                        });
                    }
                    Err(e) if !transaction => return Err(abort(e)),
                    Err(TableError::ConditionalCheckFailed { item }) => {
                        failed = true;
                        reasons.push(CancellationReason {
                            code: "ConditionalCheckFailed".into(),
                            message: Some("The conditional request failed".into()),
                            item: item.map(|b| *b),
                        });
                    }
                    Err(TableError::Validation(m)) => {
                        failed = true;
                        reasons.push(CancellationReason {
                            code: "ValidationError".into(),
                            message: Some(m),
                            item: None,
                        });
                    }
                    Err(e) => return Err(abort(e)),
                }
            }
            if failed {
                return Err(abort(TableError::TransactionCanceled { reasons }));
            }
            Ok(changes)
        });
        let written = match token {
            None => self.store.write_items(keys, now_ms(), decide).await,
            Some(token) => match self
                .store
                .write_items_once(keys, now_ms(), decide, &token)
                .await
                .map_err(store_err)?
            {
                Idempotent::Ran(written) => Ok(written),
                Idempotent::Repeated => return Ok(Vec::new()),
                Idempotent::Mismatch => {
                    return Err(TableError::IdempotentParameterMismatch(
                        "The request uses the same client token as a previous, but non-identical request.".into(),
                    ))
                }
            },
        };
        let written =
            written
                .map_err(store_err)?
                .map_err(|Abort(e)| match e.downcast::<TableError>() {
                    Ok(e) => *e,
                    Err(e) => TableError::Internal(e.to_string()),
                })?;
        Ok(written.old.into_iter().zip(written.new).collect())
    }

    fn put_op(&self, table: Table, input: &mut PutItemInput) -> Result<ItemOp, TableError> {
        let mut exprs = input.take_expressions()?;
        let condition = input
            .condition_expression
            .as_deref()
            .map(|c| exprs.condition(c))
            .transpose()?;
        finish(exprs, condition.is_some())?;
        check_item_limits(&input.item)?;
        let key = table.schema.key.item_key(&input.item)?;
        table.schema.index_keys(&input.item)?;
        Ok(ItemOp {
            key_item: table.schema.key.project_key(&input.item),
            kind: OpKind::Put(std::mem::take(&mut input.item)),
            table,
            key,
            condition,
            old_on_failure: old_on_failure(
                input.return_values_on_condition_check_failure.as_deref(),
            )?,
        })
    }

    /// A ConditionCheck, Delete or Update op from a key request.
    fn key_op(&self, table: Table, input: &mut KeyInput, kind: &str) -> Result<ItemOp, TableError> {
        let mut exprs = input.take_expressions()?;
        let condition = input
            .condition_expression
            .as_deref()
            .map(|c| exprs.condition(c))
            .transpose()?;
        let kind = match kind {
            "Update" => {
                let text = input.update_expression.as_deref().ok_or_else(|| {
                    TableError::validation("UpdateExpression is required (the legacy AttributeUpdates is not supported)")
                })?;
                let update = exprs.update(text)?;
                update.check_keys(&table.schema.key)?;
                OpKind::Update(update)
            }
            "Delete" => OpKind::Delete,
            _ => {
                if condition.is_none() {
                    return Err(TableError::validation(
                        "The ConditionCheck of a transaction needs a ConditionExpression",
                    ));
                }
                OpKind::Check
            }
        };
        let any = condition.is_some() || matches!(kind, OpKind::Update(_));
        finish(exprs, any)?;
        let key = table.schema.key.key(&input.key)?;
        Ok(ItemOp {
            table,
            key,
            key_item: std::mem::take(&mut input.key),
            kind,
            condition,
            old_on_failure: old_on_failure(
                input.return_values_on_condition_check_failure.as_deref(),
            )?,
        })
    }

    pub async fn put_item(&self, ns: &str, mut input: PutItemInput) -> Result<Value, TableError> {
        let table = self.table(ns, &input.table_name).await?;
        let op = self.put_op(table, &mut input)?;
        return_values(
            input.return_values.as_deref(),
            &["NONE", "ALL_OLD"],
            None,
            None,
            None,
        )?;
        let (old, _) = self.run(vec![op], false).await?.pop().unwrap_or_default();
        let old = return_values(
            input.return_values.as_deref(),
            &["NONE", "ALL_OLD"],
            old,
            None,
            None,
        )?;
        Ok(attributes(old))
    }

    pub async fn update_item(&self, ns: &str, mut input: KeyInput) -> Result<Value, TableError> {
        let table = self.table(ns, &input.table_name).await?;
        let op = self.key_op(table, &mut input, "Update")?;
        let all = ["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"];
        return_values(input.return_values.as_deref(), &all, None, None, None)?;
        let update = match &op.kind {
            OpKind::Update(u) => u.clone(),
            _ => unreachable!("an update op"),
        };
        let (old, new) = self.run(vec![op], false).await?.pop().unwrap_or_default();
        Ok(attributes(return_values(
            input.return_values.as_deref(),
            &all,
            old,
            new,
            Some(&update),
        )?))
    }

    pub async fn delete_item(&self, ns: &str, mut input: KeyInput) -> Result<Value, TableError> {
        let table = self.table(ns, &input.table_name).await?;
        let op = self.key_op(table, &mut input, "Delete")?;
        return_values(
            input.return_values.as_deref(),
            &["NONE", "ALL_OLD"],
            None,
            None,
            None,
        )?;
        let (old, _) = self.run(vec![op], false).await?.pop().unwrap_or_default();
        Ok(attributes(return_values(
            input.return_values.as_deref(),
            &["NONE", "ALL_OLD"],
            old,
            None,
            None,
        )?))
    }

    /// Reads items by key (`reads`: table name and `Key`), through the tables remembered by
    /// [`Tables::key_table`], looked up again once if one was deleted or replaced since;
    /// `distinct`: duplicate keys are refused (BatchGetItem's rule).
    async fn read_keys(
        &self,
        ns: &str,
        reads: &[(&str, &Item)],
        projections: &[Option<Projection>],
        distinct: bool,
    ) -> Result<Vec<Option<Item>>, TableError> {
        let found = self.read_key_texts(ns, reads, distinct).await?;
        found
            .into_iter()
            .zip(projections)
            .map(|(json, p)| {
                let item = json.as_deref().map(parse_item).transpose()?;
                Ok(match (item, p) {
                    (Some(item), Some(p)) => Some(p.apply(&item)),
                    (item, _) => item,
                })
            })
            .collect()
    }

    /// [`Tables::read_keys`] without projections: the items' stored JSON.
    async fn read_key_texts(
        &self,
        ns: &str,
        reads: &[(&str, &Item)],
        distinct: bool,
    ) -> Result<Vec<Option<String>>, TableError> {
        let mut refresh = false;
        loop {
            let mut keys = Vec::with_capacity(reads.len());
            for (name, key) in reads {
                let table = self.key_table(ns, name, refresh).await?;
                keys.push(ItemKey {
                    key: table.schema.key.key(key)?,
                    table_id: table.stored.id.clone(),
                });
            }
            if distinct {
                let mut sorted: Vec<&ItemKey> = keys.iter().collect();
                sorted.sort();
                if sorted.windows(2).any(|w| w[0] == w[1]) {
                    return Err(TableError::validation(
                        "Provided list of item keys contains duplicates",
                    ));
                }
            }
            match self.store.get_items(&keys).await {
                Err(StoreError::Changed(m)) if m == TABLE_GONE && !refresh => refresh = true,
                found => return found.map_err(store_err),
            }
        }
    }

    /// The projection of a key read (which checks its names and values).
    fn read_projection(input: &mut KeyInput) -> Result<Option<Projection>, TableError> {
        let mut exprs = input.take_expressions()?;
        let projection = input
            .projection_expression
            .as_deref()
            .map(|p| exprs.projection(p))
            .transpose()?;
        finish(exprs, projection.is_some())?;
        Ok(projection)
    }

    pub async fn get_item(&self, ns: &str, input: KeyInput) -> Result<Value, TableError> {
        let text = self.get_item_text(ns, input).await?;
        serde_json::from_str(&text).map_err(|e| TableError::Internal(e.to_string()))
    }

    /// GetItem's answer as JSON text: without a projection, the stored item as it is (it is
    /// what serializing the item gives), neither parsed nor serialized again.
    pub async fn get_item_text(&self, ns: &str, mut input: KeyInput) -> Result<String, TableError> {
        lambent_tables::names::check_name("tableName", &input.table_name)?;
        let projection = Self::read_projection(&mut input)?;
        let found = self
            .read_key_texts(ns, &[(&input.table_name, &input.key)], false)
            .await?
            .pop()
            .flatten();
        Ok(match (found, projection) {
            (None, _) => "{}".into(),
            (Some(text), None) => format!("{{\"Item\":{text}}}"),
            (Some(text), Some(p)) => {
                json!({"Item": item_json(&p.apply(&parse_item(&text)?))}).to_string()
            }
        })
    }

    pub async fn batch_get_item(
        &self,
        ns: &str,
        input: BatchGetInput,
    ) -> Result<Value, TableError> {
        let total: usize = input.request_items.values().map(|r| r.keys.len()).sum();
        if total > 100 {
            return Err(TableError::validation(
                "Too many items requested for the BatchGetItem call",
            ));
        }
        let mut responses = Map::new();
        for (name, mut request) in input.request_items {
            lambent_tables::names::check_name("tableName", &name)?;
            let mut exprs = request.take_expressions()?;
            let projection = request
                .projection_expression
                .as_deref()
                .map(|p| exprs.projection(p))
                .transpose()?;
            finish(exprs, projection.is_some())?;
            let reads: Vec<(&str, &Item)> =
                request.keys.iter().map(|k| (name.as_str(), k)).collect();
            let projections = vec![projection; reads.len()];
            let items = self.read_keys(ns, &reads, &projections, true).await?;
            responses.insert(name, items.iter().flatten().map(item_json).collect());
        }
        Ok(json!({"Responses": responses, "UnprocessedKeys": {}}))
    }

    pub async fn transact_get_items(
        &self,
        ns: &str,
        input: TransactGetInput,
    ) -> Result<Value, TableError> {
        if input.transact_items.is_empty() || input.transact_items.len() > 100 {
            return Err(TableError::validation(
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length between 1 and 100",
            ));
        }
        let mut gets = Vec::with_capacity(input.transact_items.len());
        let mut projections = Vec::with_capacity(input.transact_items.len());
        for mut item in input.transact_items {
            lambent_tables::names::check_name("tableName", &item.get.table_name)?;
            projections.push(Self::read_projection(&mut item.get)?);
            gets.push(item.get);
        }
        let reads: Vec<(&str, &Item)> = gets
            .iter()
            .map(|g| (g.table_name.as_str(), &g.key))
            .collect();
        let items = self.read_keys(ns, &reads, &projections, false).await?;
        let responses: Vec<Value> = items
            .iter()
            .map(|i| match i {
                Some(item) => json!({"Item": item_json(item)}),
                None => json!({}),
            })
            .collect();
        Ok(json!({"Responses": responses}))
    }

    pub async fn batch_write_item(
        &self,
        ns: &str,
        input: BatchWriteInput,
    ) -> Result<Value, TableError> {
        let total: usize = input.request_items.values().map(Vec::len).sum();
        if total == 0 || total > 25 {
            return Err(TableError::validation(
                "1 validation error detected: Value at 'requestItems' failed to satisfy constraint: Member must have length less than or equal to 25",
            ));
        }
        let mut ops = Vec::new();
        for (name, requests) in input.request_items {
            let table = self.table(ns, &name).await?;
            for r in requests {
                let op = match (r.put_request, r.delete_request) {
                    (Some(put), None) => {
                        let mut put = PutItemInput {
                            table_name: name.clone(),
                            item: put.item,
                            condition_expression: None,
                            return_values: None,
                            return_values_on_condition_check_failure: None,
                            expression_attribute_names: None,
                            expression_attribute_values: None,
                        };
                        self.put_op(table.clone(), &mut put)?
                    }
                    (None, Some(delete)) => ItemOp {
                        key: table.schema.key.key(&delete.key)?,
                        key_item: delete.key,
                        table: table.clone(),
                        kind: OpKind::Delete,
                        condition: None,
                        old_on_failure: false,
                    },
                    _ => {
                        return Err(TableError::validation(
                            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes",
                        ))
                    }
                };
                ops.push(op);
            }
        }
        self.run(ops, false).await?;
        Ok(json!({"UnprocessedItems": {}}))
    }

    /// TransactWriteItems; `request`: the request without its `ClientRequestToken` (the same
    /// request with the same token within 10 minutes, on any node, is not applied again).
    pub async fn transact_write_items(
        &self,
        ns: &str,
        input: TransactWriteInput,
        request: &str,
    ) -> Result<Value, TableError> {
        if input.transact_items.is_empty() || input.transact_items.len() > 100 {
            return Err(TableError::validation(
                "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length between 1 and 100",
            ));
        }
        let mut ops = Vec::new();
        for item in input.transact_items {
            let op = match item {
                TransactWriteItem {
                    put: Some(mut put),
                    condition_check: None,
                    delete: None,
                    update: None,
                } => {
                    let table = self.table(ns, &put.table_name).await?;
                    self.put_op(table, &mut put)?
                }
                TransactWriteItem {
                    put: None,
                    condition_check,
                    delete,
                    update,
                } => {
                    let (kind, mut k) = match (condition_check, delete, update) {
                        (Some(k), None, None) => ("ConditionCheck", k),
                        (None, Some(k), None) => ("Delete", k),
                        (None, None, Some(k)) => ("Update", k),
                        _ => return Err(one_action()),
                    };
                    let table = self.table(ns, &k.table_name).await?;
                    self.key_op(table, &mut k, kind)?
                }
                _ => return Err(one_action()),
            };
            ops.push(op);
        }
        let token = input.client_request_token.map(|token| {
            use sha2::Digest;
            RequestToken {
                namespace: ns.into(),
                token,
                fingerprint: hex::encode(sha2::Sha256::digest(request.as_bytes())),
                since_ms: now_ms() - TOKEN_TTL.as_millis() as i64,
            }
        });
        self.run_once(ops, true, token).await?;
        Ok(json!({}))
    }

    /// Query (with a key condition) and Scan (without).
    pub async fn read(&self, ns: &str, input: ReadInput, query: bool) -> Result<Value, TableError> {
        let text = self.read_text(ns, input, query).await?;
        serde_json::from_str(&text).map_err(|e| TableError::Internal(e.to_string()))
    }

    /// Query or Scan, the answer as JSON text: an item read whole (no index projection,
    /// filter or projection) is answered as stored, neither parsed nor serialized again.
    pub async fn read_text(
        &self,
        ns: &str,
        mut input: ReadInput,
        query: bool,
    ) -> Result<String, TableError> {
        let table = self.table(ns, &input.table_name).await?;
        let index = input
            .index_name
            .as_deref()
            .map(|n| table.schema.index(n))
            .transpose()?;
        let schema = index.map_or(&table.schema.key, |i| &i.schema);
        let mut exprs = input.take_expressions()?;
        let key_condition = match (&input.key_condition_expression, query) {
            (Some(text), true) => Some(exprs.key_condition(text, schema)?),
            (None, true) => {
                return Err(TableError::validation(
                    "Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.",
                ))
            }
            (_, false) => None,
        };
        let filter = input
            .filter_expression
            .as_deref()
            .map(|f| exprs.filter(f))
            .transpose()?;
        let projection = input
            .projection_expression
            .as_deref()
            .map(|p| exprs.projection(p))
            .transpose()?;
        finish(
            exprs,
            key_condition.is_some() || filter.is_some() || projection.is_some(),
        )?;
        let count_only = match input.select.as_deref() {
            None | Some("ALL_ATTRIBUTES") | Some("ALL_PROJECTED_ATTRIBUTES") => false,
            Some("COUNT") => true,
            Some("SPECIFIC_ATTRIBUTES") if projection.is_some() => false,
            Some(other) => {
                return Err(TableError::validation(format!(
                    "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
                )))
            }
        };
        if count_only && projection.is_some() {
            return Err(TableError::validation(
                "Cannot specify the AttributesToGet when choosing to get only the Count",
            ));
        }
        let limit = match input.limit {
            None => usize::MAX,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                return Err(TableError::validation(format!(
                    "1 validation error detected: Value '{n}' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1"
                )))
            }
        };
        let segment = match (input.segment, input.total_segments) {
            (None, None) => None,
            (Some(s), Some(t)) if (1..=1_000_000).contains(&t) && (0..t).contains(&s) => Some((s as u32, t as u32)),
            (Some(s), Some(t)) => {
                return Err(TableError::validation(format!(
                    "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {s} is not less than TotalSegments: {t}"
                )))
            }
            _ => {
                return Err(TableError::validation(
                    "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
                ))
            }
        };
        let (lower, upper) = match &key_condition {
            Some(kc) => kc.composite_range(),
            None => (Bound::Unbounded, Bound::Unbounded),
        };
        let mut after = match input.exclusive_start_key.take() {
            None => None,
            Some(esk) => Some(self.cursor(&table, index, &esk)?),
        };
        let forward = input.scan_index_forward.unwrap_or(true);
        let index_projection = index.and_then(|i| i.projected(&table.schema.key));
        // Items kept as stored unless something reads into them.
        let whole = index_projection.is_none() && filter.is_none() && projection.is_none();
        let (mut items, mut scanned, mut bytes) = (Vec::<String>::new(), 0usize, 0usize);
        let mut last: Option<Item> = None;
        'pages: loop {
            let q = RangeQuery {
                table_id: table.stored.id.clone(),
                index: index.map(|i| i.name.clone()),
                lower: lower.clone(),
                upper: upper.clone(),
                after: after.take(),
                forward,
                segment,
                limit: FETCH.min(limit - scanned),
            };
            let rows = self.store.range_items(&q).await.map_err(store_err)?;
            let fetched = rows.len();
            for row in rows {
                scanned += 1;
                bytes += row.json.len();
                let full_page = scanned >= limit || bytes >= MAX_PAGE_BYTES;
                let item = if whole && !full_page {
                    None
                } else {
                    let mut item = parse_item(&row.json)?;
                    if let Some(names) = &index_projection {
                        item.retain(|k, _| names.contains(k));
                    }
                    Some(item)
                };
                let kept = match &item {
                    None => Some(row.json),
                    Some(_) if whole => Some(row.json),
                    Some(item) => match filter.as_ref().is_none_or(|f| f.evaluate(Some(item))) {
                        true => Some(
                            match &projection {
                                Some(p) => serde_json::to_string(&p.apply(item)),
                                None => serde_json::to_string(item),
                            }
                            .map_err(|e| TableError::Internal(e.to_string()))?,
                        ),
                        false => None,
                    },
                };
                items.extend(kept);
                after = Some(ItemCursor {
                    index_key: row.index_key,
                    key: row.key,
                });
                if let (true, Some(item)) = (full_page, item) {
                    let mut key = table.schema.key.project_key(&item);
                    if let Some(i) = index {
                        key.extend(i.schema.project_key(&item));
                    }
                    last = Some(key);
                    break 'pages;
                }
            }
            if fetched < q.limit {
                break;
            }
        }
        let mut out = format!("{{\"Count\":{},\"ScannedCount\":{scanned}", items.len());
        if !count_only {
            out.push_str(",\"Items\":[");
            out.push_str(&items.join(","));
            out.push(']');
        }
        if let Some(last) = last {
            out.push_str(",\"LastEvaluatedKey\":");
            out.push_str(&item_json(&last).to_string());
        }
        out.push('}');
        Ok(out)
    }

    /// The position an `ExclusiveStartKey` names.
    fn cursor(
        &self,
        table: &Table,
        index: Option<&crate::definition::Index>,
        esk: &Item,
    ) -> Result<ItemCursor, TableError> {
        let bad = || {
            TableError::validation("The provided starting key is invalid: The provided key element does not match the schema")
        };
        let table_key: Item = table.schema.key.project_key(esk);
        let key = table.schema.key.key(&table_key).map_err(|_| bad())?;
        let index_key = match index {
            None => {
                if table_key.len() != esk.len() {
                    return Err(bad());
                }
                None
            }
            Some(i) => {
                let ik = i.schema.project_key(esk);
                Some(i.schema.key(&ik).map_err(|_| bad())?)
            }
        };
        Ok(ItemCursor { index_key, key })
    }
}

/// A `TransactItems` entry naming no action or several.
fn one_action() -> TableError {
    TableError::validation("TransactItems can only contain one of Check, Put, Update or Delete")
}

fn abort(e: TableError) -> Abort {
    Abort(Box::new(e))
}

fn attributes(item: Option<Item>) -> Value {
    match item {
        Some(item) => json!({"Attributes": item_json(&item)}),
        None => json!({}),
    }
}
