//! `lambent table create|ls|get|rm` and `lambent item put|get|rm|query|scan`: tables with the
//! DynamoDB API, through `/v1/tables`. Items are plain JSON (`{"pk": "a", "n": 1}`) unless
//! `--typed` says they are DynamoDB's typed JSON (`{"pk": {"S": "a"}}`); `-o json` prints
//! items in the same form they were given in. Exit codes: 0 done, 1 refused or failed (an API
//! error, a missing item), 2 bad usage (a malformed argument or JSON).

use super::Ctx;
use crate::attributes::{self, AttributeError};
use crate::client::Client;
use crate::output;
use anyhow::{anyhow, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::process::ExitCode;

/// A key attribute, `NAME:TYPE` with TYPE one of S, N, B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub name: String,
    pub kind: String,
}

impl std::str::FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, kind) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("'{s}' is not NAME:TYPE (like pk:S)"))?;
        let kind = kind.to_ascii_uppercase();
        if name.is_empty() || !matches!(kind.as_str(), "S" | "N" | "B") {
            return Err(format!(
                "'{s}' is not NAME:TYPE with TYPE one of S (string), N (number), B (binary)"
            ));
        }
        Ok(KeySpec {
            name: name.to_string(),
            kind,
        })
    }
}

/// What a table's stream records of each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamView {
    KeysOnly,
    NewImage,
    OldImage,
    NewAndOld,
}

impl StreamView {
    fn wire(self) -> &'static str {
        match self {
            StreamView::KeysOnly => "KEYS_ONLY",
            StreamView::NewImage => "NEW_IMAGE",
            StreamView::OldImage => "OLD_IMAGE",
            StreamView::NewAndOld => "NEW_AND_OLD_IMAGES",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Create a table with a partition key and an optional sort key.
    Create {
        name: String,
        /// The partition key, NAME:TYPE with TYPE one of S, N, B (like `pk:S`).
        #[arg(long, value_name = "NAME:TYPE")]
        key: KeySpec,
        /// The sort key, NAME:TYPE.
        #[arg(long, value_name = "NAME:TYPE")]
        sort: Option<KeySpec>,
        /// Record every change in the table's stream with this much of the item.
        #[arg(long, value_enum)]
        stream: Option<StreamView>,
    },
    /// List tables.
    #[command(visible_alias = "list")]
    Ls,
    /// Show a table: its keys, indexes, stream, item count and size.
    Get { name: String },
    /// Delete a table and all its items.
    #[command(visible_alias = "delete")]
    Rm { name: String },
}

/// How items are written on the command line and printed.
#[derive(Debug, Args)]
pub struct Form {
    /// Items, keys and values are DynamoDB's typed JSON (`{"pk": {"S": "a"}}`), in and out.
    #[arg(long)]
    pub typed: bool,
}

/// The expression parameters of a query or scan.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Read a global or local secondary index instead of the table.
    #[arg(long)]
    pub index: Option<String>,
    /// A FilterExpression applied to the items read.
    #[arg(long)]
    pub filter: Option<String>,
    /// ExpressionAttributeValues as a JSON object (`{":p": "a"}`; typed with `--typed`).
    #[arg(long, value_name = "JSON")]
    pub values: Option<String>,
    /// ExpressionAttributeNames as a JSON object (`{"#n": "name"}`).
    #[arg(long, value_name = "JSON")]
    pub names: Option<String>,
    /// Print at most this many items.
    #[arg(long)]
    pub limit: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum ItemCommand {
    /// Write an item (replacing the one with its key). ITEM is JSON, or `-` for stdin.
    Put {
        table: String,
        item: String,
        /// Only write if this ConditionExpression holds for the current item.
        #[arg(long)]
        condition: Option<String>,
        #[command(flatten)]
        form: Form,
    },
    /// Print the item with a key (JSON: the key attributes only).
    Get {
        table: String,
        key: String,
        #[command(flatten)]
        form: Form,
    },
    /// Delete the item with a key; it is an error if there is none.
    #[command(visible_alias = "delete")]
    Rm {
        table: String,
        key: String,
        #[command(flatten)]
        form: Form,
    },
    /// The items of one partition, in sort-key order: `--where 'pk = :p AND sk > :s'`.
    Query {
        table: String,
        /// The KeyConditionExpression.
        #[arg(long = "where", value_name = "EXPRESSION")]
        key_condition: String,
        /// Descending sort-key order.
        #[arg(long)]
        reverse: bool,
        #[command(flatten)]
        read: ReadArgs,
        #[command(flatten)]
        form: Form,
    },
    /// Every item of a table (or an index), optionally filtered.
    Scan {
        table: String,
        #[command(flatten)]
        read: ReadArgs,
        #[command(flatten)]
        form: Form,
    },
}

/// A usage error: said, and exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

pub fn table(ctx: &Ctx, command: TableCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        TableCommand::Create {
            name,
            key,
            sort,
            stream,
        } => {
            let keys: Vec<(&KeySpec, &str)> = std::iter::once((&key, "HASH"))
                .chain(sort.as_ref().map(|s| (s, "RANGE")))
                .collect();
            let mut body = json!({
                "KeySchema": keys.iter().map(|(k, t)| json!({"AttributeName": k.name, "KeyType": t})).collect::<Vec<_>>(),
                "AttributeDefinitions": keys.iter().map(|(k, _)| json!({"AttributeName": k.name, "AttributeType": k.kind})).collect::<Vec<_>>(),
                "BillingMode": "PAY_PER_REQUEST",
            });
            if let Some(view) = stream {
                body["StreamSpecification"] =
                    json!({"StreamEnabled": true, "StreamViewType": view.wire()});
            }
            let created = client
                .create_table(&name, &body)
                .with_context(|| format!("cannot create table '{name}'"))?;
            if ctx.json() {
                output::print_raw_json(&created.raw);
            } else {
                println!(
                    "created table {name} ({})",
                    key_text(&created["TableDescription"])
                );
            }
        }
        TableCommand::Ls => {
            let list = client.list_tables()?;
            let tables = list["tables"].as_array().cloned().unwrap_or_default();
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if tables.is_empty() {
                println!("no tables yet: create one with 'lambent table create NAME --key pk:S'");
            } else {
                let mut t = output::table(&["NAME", "KEY", "INDEXES", "STREAM", "ITEMS", "SIZE"]);
                for d in &tables {
                    t.add_row(vec![
                        text(&d["TableName"]),
                        key_text(d),
                        index_names(d).len().to_string(),
                        stream_text(d),
                        d["ItemCount"].to_string(),
                        bytes_text(&d["TableSizeBytes"]),
                    ]);
                }
                output::print_table(&t);
            }
        }
        TableCommand::Get { name } => {
            let d = client.describe_table(&name)?;
            if ctx.json() {
                output::print_raw_json(&d.raw);
            } else {
                let t = &d["Table"];
                let indexes = index_names(t);
                output::print_kv(&[
                    ("name", text(&t["TableName"])),
                    ("arn", text(&t["TableArn"])),
                    ("key", key_text(t)),
                    (
                        "indexes",
                        if indexes.is_empty() {
                            "-".into()
                        } else {
                            indexes.join(", ")
                        },
                    ),
                    ("stream", stream_text(t)),
                    ("items", t["ItemCount"].to_string()),
                    ("size", bytes_text(&t["TableSizeBytes"])),
                    (
                        "created",
                        output::datetime(
                            (t["CreationDateTime"].as_f64().unwrap_or(0.0) * 1000.0) as u64,
                        ),
                    ),
                ]);
            }
        }
        TableCommand::Rm { name } => {
            client.delete_table(&name)?;
            if ctx.json() {
                output::print_json(&json!({ "deleted": name }));
            } else {
                println!("deleted table {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn item(ctx: &Ctx, command: ItemCommand) -> Result<ExitCode> {
    match run_item(ctx, command) {
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

fn run_item(ctx: &Ctx, command: ItemCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        ItemCommand::Put {
            table,
            item,
            condition,
            form,
        } => {
            let item = read_item(&item, form.typed, "ITEM")?;
            let mut body = json!({"Item": item, "ReturnValues": "ALL_OLD"});
            if let Some(c) = condition {
                body["ConditionExpression"] = json!(c);
            }
            let answer = client
                .table_operation(&table, "PutItem", &body)
                .with_context(|| format!("cannot put the item in table '{table}'"))?;
            let old = answer.get("Attributes");
            if ctx.json() {
                output::print_json(&json!({
                    "replaced": old.is_some(),
                    "old": old.map(|o| shown(o, form.typed)),
                }));
            } else {
                let what = if old.is_some() { "replaced" } else { "created" };
                println!("{what} item in table {table}");
            }
        }
        ItemCommand::Get { table, key, form } => {
            let key = read_item(&key, form.typed, "KEY")?;
            let answer = client
                .table_operation(
                    &table,
                    "GetItem",
                    &json!({"Key": key, "ConsistentRead": true}),
                )
                .with_context(|| format!("cannot get the item from table '{table}'"))?;
            let Some(found) = answer.get("Item") else {
                return Err(missing(&table, &key));
            };
            let found = shown(found, form.typed);
            if ctx.json() {
                output::print_json(&found);
            } else {
                let rows: Vec<(&str, String)> = found
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str(), cell(v)))
                    .collect();
                output::print_kv(&rows);
            }
        }
        ItemCommand::Rm { table, key, form } => {
            let key = read_item(&key, form.typed, "KEY")?;
            let answer = client
                .table_operation(
                    &table,
                    "DeleteItem",
                    &json!({"Key": key, "ReturnValues": "ALL_OLD"}),
                )
                .with_context(|| format!("cannot delete the item from table '{table}'"))?;
            let Some(old) = answer.get("Attributes") else {
                return Err(missing(&table, &key));
            };
            if ctx.json() {
                output::print_json(&json!({"deleted": shown(old, form.typed)}));
            } else {
                println!("deleted item from table {table}");
            }
        }
        ItemCommand::Query {
            table,
            key_condition,
            reverse,
            read,
            form,
        } => {
            let mut body = read_body(&read, form.typed)?;
            body.insert("KeyConditionExpression".into(), json!(key_condition));
            if reverse {
                body.insert("ScanIndexForward".into(), json!(false));
            }
            let items = read_all(&client, &table, "Query", body, read.limit)?;
            print_items(ctx, &items, form.typed);
        }
        ItemCommand::Scan { table, read, form } => {
            let body = read_body(&read, form.typed)?;
            let items = read_all(&client, &table, "Scan", body, read.limit)?;
            print_items(ctx, &items, form.typed);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// JSON from an argument (`-` reads stdin), a usage error if it does not parse.
fn parse_json(arg: &str, what: &str) -> Result<Value> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read stdin")?;
        s
    } else {
        arg.to_string()
    };
    serde_json::from_str(&text).map_err(|e| anyhow!(Usage(format!("{what} is not JSON: {e}"))))
}

/// An item or key argument as typed JSON.
fn read_item(arg: &str, typed: bool, what: &str) -> Result<Value> {
    let v = parse_json(arg, what)?;
    let checked = if typed {
        attributes::check_typed_item(&v).map(|()| v)
    } else {
        attributes::item_to_typed(&v)
    };
    checked.map_err(|e: AttributeError| anyhow!(Usage(format!("{what}: {e}"))))
}

fn missing(table: &str, key: &Value) -> anyhow::Error {
    anyhow!(
        "no item with key {} in table '{table}'",
        attributes::item_to_plain(key)
    )
}

/// A typed item as it is printed: typed with `--typed`, else plain.
fn shown(item: &Value, typed: bool) -> Value {
    if typed {
        item.clone()
    } else {
        attributes::item_to_plain(item)
    }
}

fn read_body(read: &ReadArgs, typed: bool) -> Result<Map<String, Value>> {
    let mut body = Map::new();
    if let Some(i) = &read.index {
        body.insert("IndexName".into(), json!(i));
    }
    if let Some(f) = &read.filter {
        body.insert("FilterExpression".into(), json!(f));
    }
    if let Some(v) = &read.values {
        body.insert(
            "ExpressionAttributeValues".into(),
            read_item(v, typed, "--values")?,
        );
    }
    if let Some(n) = &read.names {
        let names = parse_json(n, "--names")?;
        if !names
            .as_object()
            .is_some_and(|o| o.values().all(Value::is_string))
        {
            return Err(anyhow!(Usage(
                "--names must be a JSON object of strings, like {\"#n\": \"name\"}".into()
            )));
        }
        body.insert("ExpressionAttributeNames".into(), names);
    }
    Ok(body)
}

/// Every page of a Query or Scan, up to `limit` items.
fn read_all(
    client: &Client,
    table: &str,
    operation: &str,
    mut body: Map<String, Value>,
    limit: Option<u64>,
) -> Result<Vec<Value>> {
    let mut items = Vec::new();
    loop {
        if let Some(l) = limit {
            body.insert("Limit".into(), json!(l - items.len() as u64));
        }
        let page = client
            .table_operation(table, operation, &Value::Object(body.clone()))
            .with_context(|| format!("cannot read table '{table}'"))?;
        items.extend(page["Items"].as_array().into_iter().flatten().cloned());
        let done = limit.is_some_and(|l| items.len() as u64 >= l);
        match page.get("LastEvaluatedKey") {
            Some(last) if !done => {
                body.insert("ExclusiveStartKey".into(), last.clone());
            }
            _ => break,
        }
    }
    Ok(items)
}

/// Items as a table (a column per attribute, key attributes first as the first item has
/// them), or with `-o json` as `{"Items": […], "Count": n}`.
fn print_items(ctx: &Ctx, items: &[Value], typed: bool) {
    let items: Vec<Value> = items.iter().map(|i| shown(i, typed)).collect();
    if ctx.json() {
        output::print_json(&json!({"Items": items, "Count": items.len()}));
        return;
    }
    if items.is_empty() {
        println!("no items");
        return;
    }
    let mut columns: Vec<String> = Vec::new();
    for item in &items {
        for name in item.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !columns.contains(name) {
                columns.push(name.clone());
            }
        }
    }
    let header: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut t = output::table(&header);
    for item in &items {
        t.add_row(
            columns
                .iter()
                .map(|c| item.get(c).map(cell).unwrap_or_default())
                .collect::<Vec<_>>(),
        );
    }
    output::print_table(&t);
}

/// A value in a table cell: strings bare, anything else as JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

/// `pk:S, sort sk:N` from a TableDescription.
fn key_text(d: &Value) -> String {
    let kind = |name: &str| {
        d["AttributeDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["AttributeName"] == name)
            .map(|a| text(&a["AttributeType"]))
            .unwrap_or_default()
    };
    d["KeySchema"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            let name = text(&k["AttributeName"]);
            let prefix = if k["KeyType"] == "RANGE" { "sort " } else { "" };
            format!("{prefix}{name}:{}", kind(&name))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn index_names(d: &Value) -> Vec<String> {
    ["GlobalSecondaryIndexes", "LocalSecondaryIndexes"]
        .iter()
        .flat_map(|k| d[*k].as_array().cloned().unwrap_or_default())
        .map(|i| text(&i["IndexName"]))
        .collect()
}

fn stream_text(d: &Value) -> String {
    match d["StreamSpecification"]["StreamViewType"].as_str() {
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

fn bytes_text(v: &Value) -> String {
    format!("{} B", v.as_u64().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_specs_parse() {
        assert_eq!(
            "pk:s".parse::<KeySpec>(),
            Ok(KeySpec {
                name: "pk".into(),
                kind: "S".into()
            })
        );
        assert!("pk".parse::<KeySpec>().is_err());
        assert!("pk:X".parse::<KeySpec>().is_err());
        assert!(":S".parse::<KeySpec>().is_err());
    }
}
