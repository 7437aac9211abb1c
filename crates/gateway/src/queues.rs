//! `/v1/queues`, `/v1/topics` and `/v1/mappings` (`docs/api.md`, "Queues and topics"): thin
//! handlers over `lambent-queues`, and [`RegistryRunner`], through which queues and topics run
//! the deployed functions.

use crate::auth::Principal;
use crate::{body, ApiError, App};
use async_trait::async_trait;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use bytes::Bytes;
use lambent_core::limits::MAX_SYNC_PAYLOAD;
use lambent_core::ActivationStatus;
use lambent_invoker::InvokeRequest;
use lambent_queues::{
    Attributes, Endpoint, FunctionRunner, MappingSettings, Outgoing, QueueConfig, QueueError,
    QueueSettings, RunOutcome, StreamMappingSettings,
};
use lambent_store::StoreError;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::{Arc, Weak};
use std::time::Duration;

type AppState = State<Arc<App>>;
type Ns = Extension<Principal>;

pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/v1/queues", get(list_queues).post(create_queue))
        .route("/v1/queues/{name}", get(show_queue).delete(delete_queue))
        .route("/v1/queues/{name}/messages", post(send))
        .route("/v1/queues/{name}/receive", post(receive))
        .route("/v1/queues/{name}/delete", post(delete_messages))
        .route("/v1/queues/{name}/visibility", post(change_visibility))
        .route("/v1/queues/{name}/purge", post(purge))
        .route("/v1/queues/{name}/redrive", post(redrive))
        .route("/v1/topics", get(list_topics).post(create_topic))
        .route("/v1/topics/{name}", delete(delete_topic))
        .route(
            "/v1/topics/{name}/subscriptions",
            get(list_subscriptions).post(subscribe),
        )
        .route("/v1/subscriptions/{id}", delete(unsubscribe))
        .route("/v1/topics/{name}/publish", post(publish))
        .route("/v1/mappings", get(list_mappings).post(create_mapping))
        .route("/v1/mappings/{id}", delete(delete_mapping))
}

async fn json_body<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the request").await?;
    body::json(&bytes)
}

fn created(created: bool, value: Value) -> Response {
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    (status, Json(value)).into_response()
}

fn queue_view(q: &QueueConfig, region: &str) -> Value {
    let mut v = serde_json::to_value(q).unwrap_or_default();
    v["arn"] = Value::String(lambent_queues::events::queue_arn(
        region,
        &q.namespace,
        &q.name,
    ));
    v
}

async fn create_queue(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Body,
) -> Result<Response, ApiError> {
    let settings: QueueSettings = json_body(body).await?;
    let (q, new) = app.queues.create_queue(&ns, settings).await?;
    Ok(created(new, queue_view(&q, app.queues.region())))
}

async fn list_queues(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Result<Json<Value>, ApiError> {
    let queues: Vec<Value> = app
        .queues
        .list_queues(&ns)
        .await?
        .iter()
        .map(|q| queue_view(q, app.queues.region()))
        .collect();
    let mut out = Vec::with_capacity(queues.len());
    for mut q in queues {
        let name = q["name"].as_str().unwrap_or_default().to_string();
        q["messages"] =
            serde_json::to_value(app.queues.counts(&ns, &name).await?).unwrap_or_default();
        out.push(q);
    }
    Ok(Json(json!({ "queues": out })))
}

async fn show_queue(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let q = app.queues.queue(&ns, &name).await?;
    let mut v = queue_view(&q, app.queues.region());
    v["messages"] = serde_json::to_value(app.queues.counts(&ns, &name).await?).unwrap_or_default();
    Ok(Json(v))
}

async fn delete_queue(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.queues.delete_queue(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One message, or `{"messages": [...]}` for a batch.
#[derive(Deserialize)]
#[serde(untagged)]
enum SendBody {
    Batch { messages: Vec<Outgoing> },
    One(Outgoing),
}

async fn send(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the messages").await?;
    let mut messages = match body::json::<SendBody>(&bytes) {
        Ok(SendBody::Batch { messages }) => messages,
        Ok(SendBody::One(m)) => vec![m],
        // Say what is wrong with the single form, which most callers use.
        Err(_) => vec![body::json::<Outgoing>(&bytes)?],
    };
    // Each message carries the sender's trace context, continued by whoever processes it.
    let trace = crate::trace_context(&headers);
    for m in &mut messages {
        m.trace.clone_from(&trace);
    }
    let ids = app.queues.send(&ns, &name, messages).await?;
    let ids: Vec<Value> = ids.into_iter().map(|id| json!({ "id": id })).collect();
    Ok((StatusCode::CREATED, Json(json!({ "messages": ids }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReceiveBody {
    max: Option<usize>,
    visibility_timeout: Option<u32>,
    /// Seconds to wait for messages (long polling), at most 20.
    wait: Option<u32>,
}

async fn receive(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the request").await?;
    let req: ReceiveBody = body::json_or_default(&bytes)?;
    let messages = app
        .queues
        .receive(
            &ns,
            &name,
            req.max.unwrap_or(1),
            req.visibility_timeout,
            Duration::from_secs(req.wait.unwrap_or(0) as u64),
        )
        .await?;
    Ok(Json(json!({ "messages": messages })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteBody {
    receipt_handles: Vec<String>,
}

async fn delete_messages(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: DeleteBody = json_body(body).await?;
    let deleted = app.queues.delete(&ns, &name, &req.receipt_handles).await?;
    let failed: Vec<&String> = req
        .receipt_handles
        .iter()
        .filter(|r| !deleted.contains(r))
        .collect();
    Ok(Json(json!({ "deleted": deleted, "failed": failed })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VisibilityBody {
    receipt_handle: String,
    visibility_timeout: u32,
}

async fn change_visibility(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let req: VisibilityBody = json_body(body).await?;
    app.queues
        .change_visibility(&ns, &name, &req.receipt_handle, req.visibility_timeout)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn purge(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let n = app.queues.purge(&ns, &name).await?;
    Ok(Json(json!({ "purged": n })))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedriveBody {
    destination: Option<String>,
}

/// Moves a dead-letter queue's messages back to its source queue (or `destination`).
async fn redrive(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = body::read(body, MAX_SYNC_PAYLOAD, "the request").await?;
    let RedriveBody { destination } = body::json_or_default(&bytes)?;
    let (destination, moved) = app
        .queues
        .redrive(&ns, &name, destination.as_deref())
        .await?;
    Ok(Json(
        json!({ "source": name, "destination": destination, "moved": moved }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicBody {
    name: String,
}

async fn create_topic(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Body,
) -> Result<Response, ApiError> {
    let req: TopicBody = json_body(body).await?;
    let (topic, new) = app.queues.create_topic(&ns, &req.name).await?;
    let mut v = serde_json::to_value(&topic).unwrap_or_default();
    v["arn"] = Value::String(lambent_queues::events::topic_arn(
        app.queues.region(),
        &ns,
        &topic.name,
    ));
    Ok(created(new, v))
}

async fn list_topics(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Result<Json<Value>, ApiError> {
    let topics = app.queues.list_topics(&ns).await?;
    Ok(Json(json!({ "topics": topics })))
}

async fn delete_topic(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.queues.delete_topic(&ns, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{"function": "f"}`, `{"queue": "q"}` or `{"workflow": "w"}`, optionally with SNS's
/// subscription `attributes` (`RawMessageDelivery`, `FilterPolicy`, `FilterPolicyScope`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscribeBody {
    function: Option<String>,
    queue: Option<String>,
    workflow: Option<String>,
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
}

async fn subscribe(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let req: SubscribeBody = json_body(body).await?;
    let endpoint = match (req.function, req.queue, req.workflow) {
        (Some(f), None, None) => Endpoint::Function(f),
        (None, Some(q), None) => Endpoint::Queue(q),
        (None, None, Some(w)) => {
            crate::workflow_hook::check_exists(&app, &ns, &w).await?;
            Endpoint::Workflow(w)
        }
        _ => {
            return Err(ApiError::InvalidJson(
                "name one function, queue or workflow to subscribe".into(),
            ))
        }
    };
    let s = app
        .queues
        .subscribe_with(&ns, &name, endpoint, req.attributes)
        .await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

async fn list_subscriptions(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let subs = app.queues.subscriptions(&ns, &name).await?;
    Ok(Json(json!({ "subscriptions": subs })))
}

async fn unsubscribe(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.queues.unsubscribe(&ns, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    message: String,
    subject: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

async fn publish(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let req: PublishBody = json_body(body).await?;
    let (id, deliveries) = app
        .queues
        .publish(
            &ns,
            &name,
            &req.message,
            req.subject.as_deref(),
            &req.attributes,
            crate::trace_context(&headers).as_ref(),
        )
        .await?;
    Ok(Json(json!({ "message_id": id, "deliveries": deliveries })))
}

async fn create_mapping(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    body: Body,
) -> Result<Response, ApiError> {
    let settings: Value = json_body(body).await?;
    // A mapping names its source: a queue, or a table's stream.
    let from_stream = settings.get("table").is_some() || settings.get("stream_arn").is_some();
    let parse = |e: serde_json::Error| ApiError::InvalidJson(e.to_string());
    let created = if from_stream {
        let settings: StreamMappingSettings = serde_json::from_value(settings).map_err(parse)?;
        json!(app.queues.create_stream_mapping(&ns, settings).await?)
    } else {
        let settings: MappingSettings = serde_json::from_value(settings).map_err(parse)?;
        json!(app.queues.create_mapping(&ns, settings).await?)
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn list_mappings(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
) -> Result<Json<Value>, ApiError> {
    let mappings = app.queues.list_mappings(&ns).await?;
    let streams = app.queues.list_stream_mappings(&ns).await?;
    Ok(Json(
        json!({ "mappings": mappings, "stream_mappings": streams }),
    ))
}

async fn delete_mapping(
    State(app): AppState,
    Extension(Principal { namespace: ns, .. }): Ns,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match app.queues.delete_mapping(&ns, &id).await {
        Err(QueueError::MappingNotFound(_)) => {
            app.queues.delete_stream_mapping(&ns, &id).await?;
        }
        deleted => deleted?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Runs deployed functions for queues and topics, through the same invoker (limits, metering,
/// activation records) as every other invocation.
pub struct RegistryRunner(pub Weak<App>);

#[async_trait]
impl FunctionRunner for RegistryRunner {
    async fn exists(&self, namespace: &str, function: &str) -> bool {
        let Some(app) = self.0.upgrade() else {
            return false;
        };
        matches!(app.registry.find(namespace, function).await, Ok(Some(_)))
    }

    async fn run(
        &self,
        namespace: &str,
        function: &str,
        payload: Bytes,
        trigger: &str,
        trace: lambent_core::TraceOrigin,
    ) -> RunOutcome {
        let Some(app) = self.0.upgrade() else {
            return RunOutcome::Missing;
        };
        let Ok(Some(deployment)) = app.registry.find(namespace, function).await else {
            return RunOutcome::Missing;
        };
        let request = InvokeRequest {
            payload,
            trigger: trigger.to_string(),
            trace,
            ..Default::default()
        };
        let result = app.run(&deployment, request).await;
        match result.activation.status {
            ActivationStatus::Success => {
                // The record is written before the caller deletes the batch's messages (as
                // an async event's before its outcome): a node killed right after the delete
                // still shows the work as done.
                app.flush_records().await;
                RunOutcome::Success(result.body)
            }
            ActivationStatus::Throttled => RunOutcome::Throttled,
            _ => RunOutcome::Failed,
        }
    }

    async fn enqueue(
        &self,
        namespace: &str,
        function: &str,
        payload: Bytes,
        trigger: &str,
        trace: lambent_core::TraceOrigin,
    ) -> Result<(), StoreError> {
        let stopping = || StoreError::Database("the server is stopping".into());
        let app = self.0.upgrade().ok_or_else(stopping)?;
        app.events
            .enqueue_traced(namespace, function, payload.to_vec(), trigger, trace)
            .await
            .map(drop)
            .map_err(|e| match e {
                lambent_events::EventsError::Store(s) => s,
                other => StoreError::Database(other.to_string()),
            })
    }
}

/// Destination records of asynchronous invocations go to the built-in queues and topics.
#[async_trait]
impl lambent_events::destination::Deliver for RegistryRunner {
    async fn deliver(
        &self,
        namespace: &str,
        target: lambent_events::destination::Target<'_>,
        record: &str,
        event_id: &str,
        trace: Option<&lambent_core::TraceContext>,
    ) -> Result<(), String> {
        use lambent_events::destination::Target;
        let app = self.0.upgrade().ok_or("the server is stopping")?;
        if let Target::Workflow(workflow) = target {
            let hook = app.workflows.get().ok_or("this node runs no workflows")?;
            return hook
                .start(namespace, workflow, record, event_id, trace.cloned())
                .await
                .map(drop)
                .map_err(|e| e.to_string());
        }
        let sent = match target {
            Target::Queue(queue) => {
                let message = Outgoing {
                    body: record.to_string(),
                    trace: trace.cloned(),
                    ..Default::default()
                };
                app.queues
                    .send(namespace, queue, vec![message])
                    .await
                    .map(drop)
            }
            Target::Topic(topic) => app
                .queues
                .publish(namespace, topic, record, None, &Attributes::new(), trace)
                .await
                .map(drop),
            Target::Workflow(_) => unreachable!("started above"),
        };
        sent.map_err(|e| e.to_string())
    }
}
