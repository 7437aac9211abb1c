//! The DynamoDB JSON 1.0 protocol: `POST /` with `X-Amz-Target: DynamoDB_20120810.<Op>`,
//! SigV4-signed for service `dynamodb` with the namespace's access keys (the Lambda API's
//! verification), bodies `application/x-amz-json-1.0`, errors as
//! `{"__type": "com.amazonaws.dynamodb.v20120810#<Type>", "message"}` with the error's
//! status. Legacy parameters are refused by name before the typed request is read.
//! `DynamoDBStreams_20120810.<Op>` calls (signed for `dynamodb` or `streams.dynamodb`) go to
//! [`crate::streams`].

use crate::service::Tables;
use crate::streams::StreamError;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use lambent_aws_api::auth;
use lambent_gateway::access;
use lambent_gateway::App;
use lambent_tables::error::ERROR_TYPE_PREFIX;
use lambent_tables::TableError;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest request body (25 items of 400 KB in a BatchWriteItem, with room).
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;
const TARGET_PREFIX: &str = "DynamoDB_20120810.";
const STREAMS_PREFIX: &str = "DynamoDBStreams_20120810.";

/// The parameters of DynamoDB's legacy API, and what replaces each.
const LEGACY: &[(&str, &str)] = &[
    ("AttributeUpdates", "UpdateExpression"),
    ("Expected", "ConditionExpression"),
    ("KeyConditions", "KeyConditionExpression"),
    ("QueryFilter", "FilterExpression"),
    ("ScanFilter", "FilterExpression"),
    ("AttributesToGet", "ProjectionExpression"),
    (
        "ConditionalOperator",
        "ConditionExpression or FilterExpression",
    ),
];

/// The DynamoDB endpoint: the tables service and the credentials that sign for it.
pub struct Endpoint {
    pub tables: Arc<Tables>,
    pub app: Arc<App>,
    pub region: String,
}

/// Whether a request is a DynamoDB (or DynamoDB Streams) call: `POST /` whose
/// `X-Amz-Target` names the service.
pub fn is_dynamodb(request: &Request) -> bool {
    request.method() == Method::POST
        && request.uri().path() == "/"
        && request
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(TARGET_PREFIX) || t.starts_with(STREAMS_PREFIX))
}

/// The JSON error body of a [`TableError`], with its status.
pub fn error_response(e: &TableError) -> Response {
    let mut body = json!({"__type": e.wire_type(), "message": e.to_string()});
    match e {
        TableError::ConditionalCheckFailed { item: Some(item) } => {
            body["Item"] = serde_json::to_value(item).unwrap_or(Value::Null);
        }
        TableError::TransactionCanceled { reasons } => {
            body["CancellationReasons"] = reasons
                .iter()
                .map(|r| {
                    let mut v = json!({"Code": r.code});
                    if let Some(m) = &r.message {
                        v["Message"] = json!(m);
                    }
                    if let Some(item) = &r.item {
                        v["Item"] = serde_json::to_value(item).unwrap_or(Value::Null);
                    }
                    v
                })
                .collect();
        }
        _ => {}
    }
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, body)
}

/// The JSON error body of a [`StreamError`], with its status.
pub fn stream_error_response(e: &StreamError) -> Response {
    match e {
        StreamError::Table(e) => error_response(e),
        e => json_response(
            StatusCode::BAD_REQUEST,
            json!({"__type": format!("{ERROR_TYPE_PREFIX}{}", e.error_type()), "message": e.to_string()}),
        ),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    json_text_response(status, body.to_string())
}

fn json_text_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    r
}

/// Answers one DynamoDB call.
pub async fn handle(endpoint: &Endpoint, request: Request) -> Response {
    // A v4 UUID from the thread's RNG (seeded once), not a getrandom call per request.
    let request_id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string();
    let (parts, body) = request.into_parts();
    let mut response = match auth::signer(&endpoint.app, &parts).await {
        Err(e) => e.into_response(),
        Ok(signer) => {
            match lambent_gateway::body::read(body, MAX_REQUEST_BYTES, "the request").await {
                Err(e) => error_response(&TableError::validation(e.to_string())),
                Ok(body) => {
                    let target = parts
                        .headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let streams = target.strip_prefix(STREAMS_PREFIX);
                    // Streams clients sign for `dynamodb` (boto3) or `streams.dynamodb`.
                    let verified =
                        auth::verify(&parts, &body, &signer, &endpoint.region, "dynamodb").or_else(
                            |e| match streams {
                                Some(_) => auth::verify(
                                    &parts,
                                    &body,
                                    &signer,
                                    &endpoint.region,
                                    "streams.dynamodb",
                                ),
                                None => Err(e),
                            },
                        );
                    let operation = streams
                        .or_else(|| target.strip_prefix(TARGET_PREFIX))
                        .unwrap_or_default();
                    let access = access::aws_action(operation, &[]);
                    let verified = verified.and_then(|p| {
                        auth::authorize(&p, access)?;
                        Ok(p)
                    });
                    match verified {
                        Err(e) => e.into_response(),
                        Ok(principal) => {
                            let namespace = principal.namespace.clone();
                            let response = match streams {
                                Some(operation) => {
                                    match dispatch_streams(
                                        &endpoint.tables,
                                        &namespace,
                                        operation,
                                        &body,
                                    )
                                    .await
                                    {
                                        Ok(v) => json_response(StatusCode::OK, v),
                                        Err(e) => stream_error_response(&e),
                                    }
                                }
                                None => {
                                    match dispatch_text(
                                        &endpoint.tables,
                                        &namespace,
                                        operation,
                                        &body,
                                    )
                                    .await
                                    {
                                        Ok(text) => json_text_response(StatusCode::OK, text),
                                        Err(e) => error_response(&e),
                                    }
                                }
                            };
                            if lambent_gateway::audited(access) {
                                let action = format!("dynamodb:{operation}");
                                let client = auth::client_address(&parts);
                                let status = response.status().as_u16();
                                auth::audit(
                                    &endpoint.app,
                                    &principal,
                                    "POST",
                                    &action,
                                    "",
                                    status,
                                    client,
                                )
                                .await;
                            }
                            response
                        }
                    }
                }
            }
        }
    };
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", id);
    }
    response
}

/// A typed request read straight from the body's bytes (no intermediate `Value`).
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, TableError> {
    let body: &[u8] = if is_empty(body) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| TableError::from_json(&e))
}

fn is_empty(body: &[u8]) -> bool {
    body.iter().all(u8::is_ascii_whitespace)
}

/// The `TableName` of a request that needs nothing else.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TableNameOnly {
    table_name: Option<Value>,
}

fn table_name(body: &[u8]) -> Result<String, TableError> {
    let name = decode::<TableNameOnly>(body)?.table_name;
    name.as_ref()
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            TableError::validation(
            "1 validation error detected: Value null at 'tableName' failed to satisfy constraint: \
             Member must not be null",
        )
        })
}

/// Refuses a body naming a legacy parameter (any top-level member [`dispatch`] refuses): one
/// pass over the body for a quoted legacy name, the parse only if one is there.
fn refuse_legacy(body: &[u8]) -> Result<(), TableError> {
    let mentions = body.iter().enumerate().any(|(i, &b)| {
        b == b'"'
            && LEGACY.iter().any(|(name, _)| {
                let rest = &body[i + 1..];
                rest.len() > name.len()
                    && rest.starts_with(name.as_bytes())
                    && rest[name.len()] == b'"'
            })
    });
    if mentions {
        if let Some(obj) = decode::<Value>(body)?.as_object() {
            if let Some((legacy, modern)) = LEGACY.iter().find(|(k, _)| obj.contains_key(*k)) {
                return Err(legacy_error(legacy, modern));
            }
        }
    }
    Ok(())
}

fn legacy_error(legacy: &str, modern: &str) -> TableError {
    TableError::validation(format!(
        "The legacy parameter {legacy} is not supported: use {modern}"
    ))
}

/// Runs one operation on a body; the answer as JSON text. GetItem, Query and Scan answer
/// stored items' text as it is; the others go through [`dispatch`].
pub async fn dispatch_text(
    tables: &Tables,
    ns: &str,
    operation: &str,
    body: &[u8],
) -> Result<String, TableError> {
    match operation {
        "GetItem" => {
            refuse_legacy(body)?;
            tables.get_item_text(ns, decode(body)?).await
        }
        "Query" | "Scan" => {
            refuse_legacy(body)?;
            tables
                .read_text(ns, decode(body)?, operation == "Query")
                .await
        }
        _ => dispatch(tables, ns, operation, body)
            .await
            .map(|v| v.to_string()),
    }
}

/// The operations that may store more bytes: each counts its request's length against the
/// namespace's storage quota (an upper bound of what its items add).
const GROWING_WRITES: [&str; 4] = [
    "PutItem",
    "UpdateItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// Runs one DynamoDB Streams operation on a decoded body.
pub async fn dispatch_streams(
    tables: &Tables,
    ns: &str,
    operation: &str,
    body: &[u8],
) -> Result<Value, StreamError> {
    match operation {
        "ListStreams" => tables.list_streams(ns, decode(body)?).await,
        "DescribeStream" => tables.describe_stream(ns, decode(body)?).await,
        "GetShardIterator" => tables.get_shard_iterator(ns, decode(body)?).await,
        "GetRecords" => tables.get_records(ns, decode(body)?).await,
        other => Err(TableError::Validation(format!(
            "The operation {other} is not supported by Lambent's DynamoDB Streams API"
        ))
        .into()),
    }
}

/// Runs one operation on a body: legacy parameters refused, the typed request read from the
/// bytes.
pub async fn dispatch(
    tables: &Tables,
    ns: &str,
    operation: &str,
    body: &[u8],
) -> Result<Value, TableError> {
    refuse_legacy(body)?;
    if GROWING_WRITES.contains(&operation) {
        tables.reserve_storage(ns, body.len() as u64).await?;
    }
    match operation {
        "CreateTable" => tables.create_table(ns, decode(body)?).await,
        "DescribeTable" => tables.describe_table(ns, &table_name(body)?).await,
        "DeleteTable" => tables.delete_table(ns, &table_name(body)?).await,
        "ListTables" => tables.list_tables(ns, decode(body)?).await,
        "UpdateTable" => tables.update_table(ns, decode(body)?).await,
        "UpdateTimeToLive" => tables.update_time_to_live(ns, decode(body)?).await,
        "DescribeTimeToLive" => tables.describe_time_to_live(ns, &table_name(body)?).await,
        "PutItem" => tables.put_item(ns, decode(body)?).await,
        "GetItem" => tables.get_item(ns, decode(body)?).await,
        "UpdateItem" => tables.update_item(ns, decode(body)?).await,
        "DeleteItem" => tables.delete_item(ns, decode(body)?).await,
        "Query" => tables.read(ns, decode(body)?, true).await,
        "Scan" => tables.read(ns, decode(body)?, false).await,
        "BatchGetItem" => tables.batch_get_item(ns, decode(body)?).await,
        "BatchWriteItem" => tables.batch_write_item(ns, decode(body)?).await,
        "TransactGetItems" => tables.transact_get_items(ns, decode(body)?).await,
        "TransactWriteItems" => {
            let mut fingerprint = decode::<Value>(body)?;
            if let Some(o) = fingerprint.as_object_mut() {
                o.remove("ClientRequestToken");
            }
            let fingerprint = fingerprint.to_string();
            tables
                .transact_write_items(ns, decode(body)?, &fingerprint)
                .await
        }
        other => Err(TableError::Validation(format!(
            "The operation {other} is not supported by Lambent's DynamoDB API"
        ))),
    }
}
