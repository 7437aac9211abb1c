//! Event-source mappings: `CreateEventSourceMapping`, `GetEventSourceMapping`,
//! `ListEventSourceMappings`, `UpdateEventSourceMapping`, `DeleteEventSourceMapping`, for the
//! two sources Lambent has: queues (`arn:aws:sqs:…`, the mappings `lambent mapping create
//! QUEUE FN` makes) and tables' streams (`arn:aws:dynamodb:…:table/T/stream/L`). Each is a call
//! on `lambent-queues`, which runs both kinds; this module translates Lambda's shapes and
//! errors.

use crate::arn::Scope;
use crate::functions::{page, ApiState, Ns};
use crate::{AwsApi, AwsError};
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_gateway::{body, ApiError, Principal};
use lambent_queues::{
    Mapping, MappingChanges, MappingSettings, QueueError, StartingPosition, StreamMapping,
    StreamMappingSettings,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub fn routes() -> Router<Arc<AwsApi>> {
    Router::new()
        .route(
            "/2015-03-31/event-source-mappings/",
            post(create_mapping).get(list_mappings),
        )
        .route(
            "/2015-03-31/event-source-mappings",
            post(create_mapping).get(list_mappings),
        )
        .route(
            "/2015-03-31/event-source-mappings/{uuid}",
            get(get_mapping).put(update_mapping).delete(delete_mapping),
        )
}

/// The only `FunctionResponseTypes` value.
const REPORT_BATCH_ITEM_FAILURES: &str = "ReportBatchItemFailures";

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct OnFailure {
    destination: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct DestinationConfig {
    on_failure: Option<OnFailure>,
    on_success: Option<Value>,
}

/// The request members of Create and Update (Update has no source or starting position).
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct MappingRequest {
    event_source_arn: Option<String>,
    function_name: Option<String>,
    enabled: Option<bool>,
    batch_size: Option<u32>,
    maximum_batching_window_in_seconds: Option<u64>,
    starting_position: Option<String>,
    /// Seconds since the epoch (botocore sends timestamps as numbers here).
    starting_position_timestamp: Option<f64>,
    destination_config: Option<DestinationConfig>,
    maximum_record_age_in_seconds: Option<i64>,
    bisect_batch_on_function_error: Option<bool>,
    maximum_retry_attempts: Option<i64>,
    parallelization_factor: Option<u32>,
    tumbling_window_in_seconds: Option<u32>,
    function_response_types: Option<Vec<String>>,
    filter_criteria: Option<Value>,
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::InvalidParameterValue(message.into())
}

fn no_such_mapping() -> AwsError {
    AwsError::ResourceNotFound("The resource you requested does not exist.".into())
}

/// The source an `EventSourceArn` names.
enum Source {
    Queue(String),
    Stream(String),
}

fn source_of(scope: &Scope<'_>, arn: &str) -> Result<Source, AwsError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let unrecognized = || {
        invalid(format!(
            "Unrecognized event source, must be a DynamoDB stream or an SQS queue: {arn}"
        ))
    };
    let ["arn", "aws", service, region, account, resource] = parts[..] else {
        return Err(unrecognized());
    };
    if region != scope.region || account != scope.namespace {
        return Err(invalid(format!(
            "The event source {arn} must be in region '{}' and account (namespace) '{}'",
            scope.region, scope.namespace
        )));
    }
    match service {
        "sqs" if !resource.contains(':') => Ok(Source::Queue(resource.to_string())),
        "dynamodb" if resource.contains("/stream/") => Ok(Source::Stream(arn.to_string())),
        _ => Err(unrecognized()),
    }
}

/// A function named by `FunctionName` (no qualifier: mappings run the latest code).
fn function_of(api: &AwsApi, ns: &str, name: &str) -> Result<String, AwsError> {
    let f = api.scope(ns).parse(name, None)?;
    if f.qualifier.is_some() {
        return Err(invalid(format!(
            "FunctionName '{name}': Lambent's event-source mappings run a function's latest \
             code; qualifiers are not supported"
        )));
    }
    Ok(f.name)
}

fn report_failures(types: &Option<Vec<String>>) -> Result<Option<bool>, AwsError> {
    let Some(types) = types else {
        return Ok(None);
    };
    if let Some(other) = types.iter().find(|t| *t != REPORT_BATCH_ITEM_FAILURES) {
        return Err(invalid(format!(
            "1 validation error detected: Value '[{other}]' at 'functionResponseTypes' failed \
             to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum \
             value set: [{REPORT_BATCH_ITEM_FAILURES}]]"
        )));
    }
    Ok(Some(!types.is_empty()))
}

impl MappingRequest {
    /// Refuses what Lambent does not do, and what does not apply to the source.
    fn check(&self, stream: bool) -> Result<(), AwsError> {
        if self.parallelization_factor.is_some_and(|p| p != 1) {
            return Err(invalid(
                "ParallelizationFactor: Lambent reads each stream with one poller (1)",
            ));
        }
        if self.tumbling_window_in_seconds.is_some_and(|t| t != 0) {
            return Err(invalid(
                "TumblingWindowInSeconds is not supported by Lambent",
            ));
        }
        if self.filter_criteria.is_some() {
            return Err(invalid("FilterCriteria is not supported by Lambent"));
        }
        if self
            .destination_config
            .as_ref()
            .is_some_and(|d| d.on_success.is_some())
        {
            return Err(invalid(
                "DestinationConfig.OnSuccess is not supported for event-source mappings",
            ));
        }
        if !stream {
            let stream_only = [
                (self.starting_position.is_some(), "StartingPosition"),
                (
                    self.starting_position_timestamp.is_some(),
                    "StartingPositionTimestamp",
                ),
                (
                    self.maximum_record_age_in_seconds.is_some(),
                    "MaximumRecordAgeInSeconds",
                ),
                (
                    self.bisect_batch_on_function_error.is_some(),
                    "BisectBatchOnFunctionError",
                ),
                (
                    self.maximum_retry_attempts.is_some(),
                    "MaximumRetryAttempts",
                ),
                (self.destination_config.is_some(), "DestinationConfig"),
            ];
            if let Some((_, name)) = stream_only.iter().find(|(set, _)| *set) {
                return Err(invalid(format!(
                    "Unsupported {name} parameter for SQS event sources"
                )));
            }
        }
        Ok(())
    }

    fn on_failure(&self) -> Option<String> {
        let d = self.destination_config.as_ref()?.on_failure.as_ref()?;
        Some(d.destination.clone().unwrap_or_default())
    }

    fn changes(&self, api: &AwsApi, ns: &str) -> Result<MappingChanges, AwsError> {
        Ok(MappingChanges {
            function: self
                .function_name
                .as_deref()
                .map(|f| function_of(api, ns, f))
                .transpose()?,
            batch_size: self.batch_size,
            batching_window_ms: self.maximum_batching_window_in_seconds.map(|s| s * 1000),
            report_batch_item_failures: report_failures(&self.function_response_types)?,
            enabled: self.enabled,
            max_retries: self.maximum_retry_attempts,
            max_record_age_s: self.maximum_record_age_in_seconds,
            bisect_on_error: self.bisect_batch_on_function_error,
            on_failure: self.on_failure(),
        })
    }
}

/// A queue error as Lambda's: an unknown function is `ResourceNotFoundException` with its
/// ARN, the rest by kind.
fn aws_error(scope: &Scope<'_>, e: QueueError) -> AwsError {
    match e {
        QueueError::FunctionNotFound(f) => crate::functions::not_found(&scope.function_arn(&f)),
        QueueError::MappingNotFound(_) => no_such_mapping(),
        QueueError::QueueNotFound(q) => invalid(format!(
            "The specified queue does not exist: arn:aws:sqs:{}:{}:{q}",
            scope.region, scope.namespace
        )),
        e => ApiError::from(e).into(),
    }
}

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn queue_view(scope: &Scope<'_>, m: &Mapping, state: &str) -> Value {
    json!({
        "UUID": m.id,
        "EventSourceMappingArn": mapping_arn(scope, &m.id),
        "EventSourceArn": format!("arn:aws:sqs:{}:{}:{}", scope.region, scope.namespace, m.queue),
        "FunctionArn": scope.function_arn(&m.function),
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.batching_window_ms / 1000,
        "FunctionResponseTypes": response_types(m.report_batch_item_failures),
        "LastModified": seconds(m.created_ms),
        "State": state_of(state, m.enabled),
        "StateTransitionReason": "USER_INITIATED",
    })
}

fn stream_view(scope: &Scope<'_>, m: &StreamMapping, state: &str) -> Value {
    let mut view = json!({
        "UUID": m.id,
        "EventSourceMappingArn": mapping_arn(scope, &m.id),
        "EventSourceArn": m.stream_arn,
        "FunctionArn": scope.function_arn(&m.function),
        "BatchSize": m.batch_size,
        "MaximumBatchingWindowInSeconds": m.batching_window_ms / 1000,
        "ParallelizationFactor": 1,
        "StartingPosition": m.starting_position.as_str(),
        "MaximumRecordAgeInSeconds": m.max_record_age_s,
        "BisectBatchOnFunctionError": m.bisect_on_error,
        "MaximumRetryAttempts": m.max_retries,
        "TumblingWindowInSeconds": 0,
        "FunctionResponseTypes": response_types(m.report_batch_item_failures),
        "DestinationConfig": {"OnFailure": m.on_failure.as_ref().map_or(json!({}), |d| json!({"Destination": d}))},
        "LastModified": seconds(m.modified_ms),
        "State": state_of(state, m.enabled),
        "StateTransitionReason": "USER_INITIATED",
    });
    if let Some(t) = m.starting_timestamp_ms {
        view["StartingPositionTimestamp"] = json!(seconds(t));
    }
    view
}

fn mapping_arn(scope: &Scope<'_>, id: &str) -> String {
    format!(
        "arn:aws:lambda:{}:{}:event-source-mapping:{id}",
        scope.region, scope.namespace
    )
}

fn response_types(report: bool) -> Vec<&'static str> {
    if report {
        vec![REPORT_BATCH_ITEM_FAILURES]
    } else {
        Vec::new()
    }
}

/// The state an answer shows: the transition under way, or (`""`) the settled one.
fn state_of(transition: &str, enabled: bool) -> &str {
    match (transition, enabled) {
        ("", true) => "Enabled",
        ("", false) => "Disabled",
        (t, _) => t,
    }
}

async fn create_mapping(
    axum::extract::State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: MappingRequest = body::json(&body)?;
    let scope = api.scope(&ns);
    let arn = req
        .event_source_arn
        .as_deref()
        .ok_or_else(|| invalid("EventSourceArn is required"))?;
    let function = function_of(
        &api,
        &ns,
        req.function_name
            .as_deref()
            .ok_or_else(|| invalid("FunctionName is required"))?,
    )?;
    let queues = &api.app.queues;
    let view = match source_of(&scope, arn)? {
        Source::Queue(queue) => {
            req.check(false)?;
            if req.enabled == Some(false) {
                return Err(invalid(
                    "Lambent creates queue mappings enabled: disable it with UpdateEventSourceMapping",
                ));
            }
            let settings = MappingSettings {
                queue,
                function,
                batch_size: req.batch_size,
                batching_window_ms: req.maximum_batching_window_in_seconds.map(|s| s * 1000),
                report_batch_item_failures: report_failures(&req.function_response_types)?
                    .unwrap_or(false),
            };
            let m = queues
                .create_mapping(&ns, settings)
                .await
                .map_err(|e| aws_error(&scope, e))?;
            queue_view(&scope, &m, "Creating")
        }
        Source::Stream(stream_arn) => {
            req.check(true)?;
            let starting_position = match req.starting_position.as_deref() {
                Some("TRIM_HORIZON") => StartingPosition::TrimHorizon,
                Some("LATEST") => StartingPosition::Latest,
                Some("AT_TIMESTAMP") => StartingPosition::AtTimestamp,
                Some(other) => {
                    return Err(invalid(format!(
                        "1 validation error detected: Value '{other}' at 'startingPosition' \
                         failed to satisfy constraint: Member must satisfy enum value set: \
                         [TRIM_HORIZON, LATEST, AT_TIMESTAMP]"
                    )))
                }
                None => {
                    return Err(invalid(
                        "StartingPosition is required for DynamoDB stream event sources",
                    ))
                }
            };
            let on_failure = req.on_failure().filter(|d| !d.is_empty());
            let settings = StreamMappingSettings {
                table: None,
                stream_arn: Some(stream_arn),
                function,
                batch_size: req.batch_size,
                batching_window_ms: req.maximum_batching_window_in_seconds.map(|s| s * 1000),
                starting_position: Some(starting_position),
                starting_timestamp_ms: req.starting_position_timestamp.map(|s| (s * 1000.0) as i64),
                max_retries: req.maximum_retry_attempts,
                max_record_age_s: req.maximum_record_age_in_seconds,
                bisect_on_error: req.bisect_batch_on_function_error.unwrap_or(false),
                report_batch_item_failures: report_failures(&req.function_response_types)?
                    .unwrap_or(false),
                on_failure,
                enabled: req.enabled,
            };
            let m = queues
                .create_stream_mapping(&ns, settings)
                .await
                .map_err(|e| aws_error(&scope, e))?;
            stream_view(&scope, &m, "Creating")
        }
    };
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// A mapping of either kind, by UUID.
enum Found {
    Queue(Mapping),
    Stream(StreamMapping),
}

async fn find(api: &AwsApi, ns: &str, id: &str) -> Result<Found, AwsError> {
    let scope = api.scope(ns);
    let queues = &api.app.queues;
    if let Some(m) = queues
        .get_stream_mapping(ns, id)
        .await
        .map_err(|e| aws_error(&scope, e))?
    {
        return Ok(Found::Stream(m));
    }
    queues
        .list_mappings(ns)
        .await
        .map_err(|e| aws_error(&scope, e))?
        .into_iter()
        .find(|m| m.id == id)
        .map(Found::Queue)
        .ok_or_else(no_such_mapping)
}

fn view(scope: &Scope<'_>, found: &Found, state: &str) -> Value {
    match found {
        Found::Queue(m) => queue_view(scope, m, state),
        Found::Stream(m) => stream_view(scope, m, state),
    }
}

async fn get_mapping(
    axum::extract::State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Json<Value>, AwsError> {
    let found = find(&api, &ns, &id).await?;
    Ok(Json(view(&api.scope(&ns), &found, "")))
}

async fn update_mapping(
    axum::extract::State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, AwsError> {
    let req: MappingRequest = body::json(&body)?;
    let scope = api.scope(&ns);
    if req.event_source_arn.is_some() || req.starting_position.is_some() {
        return Err(invalid(
            "EventSourceArn and StartingPosition cannot be changed: create another mapping",
        ));
    }
    let queues = &api.app.queues;
    let found = find(&api, &ns, &id).await?;
    let changes = req.changes(&api, &ns)?;
    let was_enabled = match &found {
        Found::Queue(m) => m.enabled,
        Found::Stream(m) => m.enabled,
    };
    let updated = match found {
        Found::Queue(_) => {
            req.check(false)?;
            Found::Queue(
                queues
                    .update_mapping(&ns, &id, changes)
                    .await
                    .map_err(|e| aws_error(&scope, e))?,
            )
        }
        Found::Stream(_) => {
            req.check(true)?;
            Found::Stream(
                queues
                    .update_stream_mapping(&ns, &id, changes)
                    .await
                    .map_err(|e| aws_error(&scope, e))?,
            )
        }
    };
    let state = match (was_enabled, req.enabled) {
        (false, Some(true)) => "Enabling",
        (true, Some(false)) => "Disabling",
        _ => "Updating",
    };
    Ok((StatusCode::ACCEPTED, Json(view(&scope, &updated, state))).into_response())
}

async fn delete_mapping(
    axum::extract::State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<Response, AwsError> {
    let scope = api.scope(&ns);
    let queues = &api.app.queues;
    let found = find(&api, &ns, &id).await?;
    match &found {
        Found::Queue(_) => queues.delete_mapping(&ns, &id).await,
        Found::Stream(_) => queues.delete_stream_mapping(&ns, &id).await.map(|_| ()),
    }
    .map_err(|e| aws_error(&scope, e))?;
    Ok((StatusCode::ACCEPTED, Json(view(&scope, &found, "Deleting"))).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    #[serde(rename = "EventSourceArn")]
    event_source_arn: Option<String>,
    #[serde(rename = "FunctionName")]
    function_name: Option<String>,
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
}

async fn list_mappings(
    axum::extract::State(api): ApiState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, AwsError> {
    let scope = api.scope(&ns);
    if let Some(max) = q.max_items {
        if !(1..=10_000).contains(&max) {
            return Err(invalid(format!(
                "1 validation error detected: Value '{max}' at 'maxItems' failed to satisfy \
                 constraint: Member must have value between 1 and 10000"
            )));
        }
    }
    let function = q
        .function_name
        .as_deref()
        .map(|f| function_of(&api, &ns, f))
        .transpose()?;
    let queues = &api.app.queues;
    let mut all: Vec<(i64, String, Value)> = Vec::new();
    for m in queues
        .list_mappings(&ns)
        .await
        .map_err(|e| aws_error(&scope, e))?
    {
        all.push((m.created_ms, m.function.clone(), queue_view(&scope, &m, "")));
    }
    for m in queues
        .list_stream_mappings(&ns)
        .await
        .map_err(|e| aws_error(&scope, e))?
    {
        all.push((
            m.created_ms,
            m.function.clone(),
            stream_view(&scope, &m, ""),
        ));
    }
    all.sort_by_key(|(created, _, _)| *created);
    let items = all
        .into_iter()
        .filter(|(_, f, v)| {
            function.as_ref().is_none_or(|want| want == f)
                && q.event_source_arn
                    .as_ref()
                    .is_none_or(|arn| v["EventSourceArn"] == *arn)
        })
        .map(|(_, _, v)| v)
        .collect();
    page(
        "EventSourceMappings",
        items,
        q.marker.as_deref(),
        q.max_items,
    )
}
