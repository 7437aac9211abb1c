//! Tables under `/v1` (API-key authenticated, for the CLI): the same [`Tables`] operations as
//! the DynamoDB API, through [`crate::api::dispatch`], with the table named by the path and
//! errors in `/v1`'s `{"error": {"code", "message"}}` shape. Bodies and answers are
//! DynamoDB's JSON (attribute values typed), so there is one meaning for every parameter.
//!
//! - `GET /v1/tables`: `{"tables": [<TableDescription>…]}` in name order
//! - `PUT /v1/tables/{name}`: CreateTable's input without `TableName`; answers CreateTable's
//! - `GET /v1/tables/{name}`: DescribeTable's answer; `DELETE /v1/tables/{name}`: DeleteTable's
//! - `POST /v1/tables/{name}/{operation}`, operation one of `PutItem`, `GetItem`,
//!   `UpdateItem`, `DeleteItem`, `Query`, `Scan`, `DescribeTimeToLive`, `UpdateTimeToLive`:
//!   that operation's input without `TableName`
//!
//! `docs/api.md` describes each.

use crate::api::dispatch;
use crate::service::Tables;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use lambent_gateway::{App, Principal};
use lambent_tables::TableError;
use serde_json::{json, Value};
use std::sync::Arc;

/// The operations on a table's items (and its TTL setting) that
/// `POST /v1/tables/{name}/{operation}` runs.
const ITEM_OPERATIONS: &[&str] = &[
    "PutItem",
    "GetItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "DescribeTimeToLive",
    "UpdateTimeToLive",
];

/// The routes, behind the API-key check of the rest of `/v1`.
pub fn routes(tables: Arc<Tables>, app: Arc<App>) -> Router {
    Router::new()
        .route("/v1/tables", get(list))
        .route(
            "/v1/tables/{name}",
            get(describe).put(create).delete(remove),
        )
        .route("/v1/tables/{name}/{operation}", post(item_operation))
        .route_layer(axum::middleware::from_fn_with_state(
            app,
            lambent_gateway::require_key,
        ))
        .with_state(tables)
}

/// A [`TableError`] in `/v1`'s shape: DynamoDB's error type as the code, 404 for a missing
/// table, 409 for a table in use or a failed condition, else the DynamoDB status.
pub struct RestError(pub TableError);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            TableError::ResourceNotFound(_) => StatusCode::NOT_FOUND,
            TableError::ResourceInUse(_)
            | TableError::ConditionalCheckFailed { .. }
            | TableError::TransactionCanceled { .. } => StatusCode::CONFLICT,
            e => StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        };
        let body = json!({"error": {"code": self.0.error_type(), "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

type St = State<Arc<Tables>>;
type Ns = Extension<Principal>;
type Answer = Result<Json<Value>, RestError>;

/// Runs `operation` with `body` (a JSON object, or empty) and `TableName` set to `name`.
async fn run(tables: &Tables, ns: &str, operation: &str, name: &str, body: &[u8]) -> Answer {
    let mut input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| RestError(TableError::from_json(&e)))?
    };
    let Some(obj) = input.as_object_mut() else {
        return Err(RestError(TableError::Serialization(
            "the body must be a JSON object".into(),
        )));
    };
    obj.insert("TableName".into(), json!(name));
    let body = serde_json::to_vec(&input).map_err(|e| RestError(TableError::from_json(&e)))?;
    dispatch(tables, ns, operation, &body)
        .await
        .map(Json)
        .map_err(RestError)
}

async fn list(State(tables): St, Extension(Principal { namespace: ns, .. }): Ns) -> Answer {
    let mut descriptions = Vec::new();
    let mut start: Option<String> = None;
    loop {
        let mut input = json!({});
        if let Some(s) = &start {
            input["ExclusiveStartTableName"] = json!(s);
        }
        let page = dispatch(&tables, &ns, "ListTables", input.to_string().as_bytes())
            .await
            .map_err(RestError)?;
        for name in page["TableNames"].as_array().into_iter().flatten() {
            let Some(name) = name.as_str() else { continue };
            match run(&tables, &ns, "DescribeTable", name, b"").await {
                Ok(Json(d)) => descriptions.push(d["Table"].clone()),
                // Deleted since it was listed.
                Err(RestError(TableError::ResourceNotFound(_))) => {}
                Err(e) => return Err(e),
            }
        }
        match page["LastEvaluatedTableName"].as_str() {
            Some(last) => start = Some(last.to_string()),
            None => break,
        }
    }
    Ok(Json(json!({ "tables": descriptions })))
}

async fn create(
    State(tables): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, RestError> {
    let answer = run(&tables, &ns, "CreateTable", &name, &body).await?;
    Ok((StatusCode::CREATED, answer).into_response())
}

async fn describe(
    State(tables): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Answer {
    run(&tables, &ns, "DescribeTable", &name, b"").await
}

async fn remove(
    State(tables): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Answer {
    run(&tables, &ns, "DeleteTable", &name, b"").await
}

async fn item_operation(
    State(tables): St,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path((name, operation)): Path<(String, String)>,
    body: Bytes,
) -> Answer {
    if !ITEM_OPERATIONS.contains(&operation.as_str()) {
        return Err(RestError(TableError::Validation(format!(
            "unknown table operation '{operation}': expected one of {}",
            ITEM_OPERATIONS.join(", ")
        ))));
    }
    run(&tables, &ns, &operation, &name, &body).await
}
