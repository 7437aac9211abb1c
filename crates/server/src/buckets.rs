//! Buckets and objects under `/v1` (API-key authenticated, for the CLI), through the same
//! engine calls as the S3 API:
//!
//! - `GET /v1/buckets`, `PUT|DELETE /v1/buckets/{bucket}` (`?force=true` empties it first);
//! - `GET /v1/buckets/{bucket}/objects` (a page of keys: prefix, delimiter, start_after,
//!   max_keys), `PUT|GET|HEAD|DELETE /v1/buckets/{bucket}/objects/{key}`: bodies stream both
//!   ways (a PUT is written to disk as it arrives, a GET read from disk as it is sent);
//! - a bucket's notification configuration: `GET /v1/buckets/{bucket}/notification` →
//!   `{"configurations": [Configuration]}`; `PUT` with the same body replaces them all (an
//!   empty list removes them), as S3 does. Targets are named (a function, queue or topic of
//!   the caller's namespace); their ARNs are made here.
//!
//! Errors are `/v1`'s shape with S3's codes and statuses (`NoSuchBucket` 404, …).

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_gateway::{App, Principal};
use lambent_objects::notification::{FilterRule, TargetConfig, TargetKind};
use lambent_objects::{Conditions, NotificationConfig, ObjectError, Objects};
use lambent_store::objects::{Bucket, ListQuery, ObjectAttrs, ObjectRecord, WriteIf};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One configuration as `/v1` shows and takes it: exactly one of `function`, `workflow`,
/// `queue`, `topic`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// A state machine: each event starts an execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Shown, never taken: the ARN the target was stored as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Default: `s3:ObjectCreated:*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configurations {
    pub configurations: Vec<Configuration>,
}

struct Buckets {
    app: Arc<App>,
    objects: Arc<Objects>,
}

/// The routes, behind the API-key check of the rest of `/v1`.
pub fn routes(app: Arc<App>, objects: Arc<Objects>) -> Router {
    let state = Arc::new(Buckets {
        app: app.clone(),
        objects,
    });
    Router::new()
        .route("/v1/buckets", get(list_buckets))
        .route(
            "/v1/buckets/{bucket}",
            axum::routing::put(create_bucket).delete(delete_bucket),
        )
        .route("/v1/buckets/{bucket}/objects", get(list_objects))
        .route(
            "/v1/buckets/{bucket}/objects/{*key}",
            get(get_object)
                .head(head_object)
                .put(put_object)
                .delete(delete_object),
        )
        .route(
            "/v1/buckets/{bucket}/notification",
            get(get_notification).put(put_notification),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            app,
            lambent_gateway::require_key,
        ))
        .with_state(state)
}

/// An engine error in `/v1`'s error shape, with S3's code and status.
struct Failed(ObjectError);

impl IntoResponse for Failed {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body =
            serde_json::json!({"error": {"code": self.0.code(), "message": self.0.to_string()}});
        (status, Json(body)).into_response()
    }
}

impl From<ObjectError> for Failed {
    fn from(e: ObjectError) -> Self {
        Failed(e)
    }
}

type St = State<Arc<Buckets>>;

/// A bucket as `/v1` shows it.
#[derive(Debug, Serialize)]
pub struct BucketInfo {
    pub name: String,
    pub region: String,
    pub created_ms: i64,
}

impl From<Bucket> for BucketInfo {
    fn from(b: Bucket) -> Self {
        BucketInfo {
            name: b.name,
            region: b.region,
            created_ms: b.created_ms,
        }
    }
}

/// An object as `/v1` shows it (the ETag without S3's quotes).
#[derive(Debug, Serialize)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl From<&ObjectRecord> for ObjectInfo {
    fn from(o: &ObjectRecord) -> Self {
        ObjectInfo {
            key: o.key.clone(),
            size: o.size,
            etag: o.etag.trim_matches('"').to_string(),
            last_modified_ms: o.last_modified_ms,
            content_type: o.attrs.content_type.clone(),
        }
    }
}

async fn list_buckets(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
) -> Result<Json<serde_json::Value>, Failed> {
    let buckets: Vec<BucketInfo> = b
        .objects
        .list_buckets(&ns)
        .await?
        .into_iter()
        .map(BucketInfo::from)
        .collect();
    Ok(Json(serde_json::json!({ "buckets": buckets })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBucket {
    #[serde(default)]
    region: Option<String>,
}

/// `PUT /v1/buckets/{bucket}` with an optional `{"region"}` → `201` and the bucket.
async fn create_bucket(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(bucket): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<BucketInfo>), Failed> {
    let given: CreateBucket = if body.iter().all(u8::is_ascii_whitespace) {
        CreateBucket::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ObjectError::InvalidArgument(format!("invalid request body: {e}")))?
    };
    let created = b
        .objects
        .create_bucket(&ns, &bucket, given.region.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(created.into())))
}

#[derive(Debug, Default, Deserialize)]
struct DeleteBucket {
    #[serde(default)]
    force: bool,
}

/// `DELETE /v1/buckets/{bucket}[?force=true]` → `200 {"deleted_objects": n}`.
async fn delete_bucket(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(bucket): Path<String>,
    Query(q): Query<DeleteBucket>,
) -> Result<Json<serde_json::Value>, Failed> {
    let emptied = match q.force {
        true => b.objects.empty_bucket(&ns, &bucket).await?,
        false => 0,
    };
    b.objects.delete_bucket(&ns, &bucket).await?;
    Ok(Json(serde_json::json!({ "deleted_objects": emptied })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListObjects {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    start_after: Option<String>,
    #[serde(default)]
    max_keys: Option<usize>,
}

/// A page of keys; `next_start_after` is where the next page starts (with `truncated`).
async fn list_objects(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(bucket): Path<String>,
    Query(q): Query<ListObjects>,
) -> Result<Json<serde_json::Value>, Failed> {
    let max_keys = q.max_keys.unwrap_or(lambent_objects::MAX_LIST);
    if !(1..=lambent_objects::MAX_LIST).contains(&max_keys) {
        return Err(ObjectError::InvalidArgument(format!(
            "max_keys must be between 1 and {}",
            lambent_objects::MAX_LIST
        ))
        .into());
    }
    let page = b
        .objects
        .list_objects(
            &ns,
            &bucket,
            ListQuery {
                prefix: q.prefix.clone(),
                start_after: q.start_after.filter(|s| !s.is_empty()),
                delimiter: q.delimiter.clone().filter(|d| !d.is_empty()),
                max_keys,
            },
        )
        .await?;
    let objects: Vec<ObjectInfo> = page.objects.iter().map(ObjectInfo::from).collect();
    Ok(Json(serde_json::json!({
        "bucket": bucket,
        "prefix": q.prefix,
        "delimiter": q.delimiter,
        "objects": objects,
        "common_prefixes": page.common_prefixes,
        "truncated": page.truncated,
        "next_start_after": if page.truncated { page.last } else { None },
    })))
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Result<Option<String>, Failed> {
    match headers.get(&name) {
        None => Ok(None),
        Some(v) => v.to_str().map(|s| Some(s.to_string())).map_err(|_| {
            Failed(ObjectError::InvalidArgument(format!(
                "the {name} header is not valid text"
            )))
        }),
    }
}

/// `PUT /v1/buckets/{bucket}/objects/{key}`: the body streams to disk as it arrives;
/// `Content-Type`, `Content-MD5` and `If-None-Match: *` (only if absent) are honoured.
async fn put_object(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path((bucket, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ObjectInfo>, Failed> {
    let length = match header_str(&headers, header::CONTENT_LENGTH)? {
        Some(l) => Some(l.parse::<u64>().map_err(|_| {
            Failed(ObjectError::InvalidArgument(
                "the Content-Length header is not a number".into(),
            ))
        })?),
        None => None,
    };
    if let Some(length) = length.filter(|l| *l > lambent_objects::MAX_OBJECT_PUT) {
        tracing::debug!("refused a {length}-byte PUT before reading it");
        return Err(ObjectError::EntityTooLarge {
            max: lambent_objects::MAX_OBJECT_PUT,
        }
        .into());
    }
    let condition = match header_str(&headers, header::IF_NONE_MATCH)?.as_deref() {
        None => WriteIf::Always,
        Some("*") => WriteIf::Absent,
        Some(_) => {
            return Err(ObjectError::InvalidArgument(
                "If-None-Match takes only '*' on a PUT".into(),
            )
            .into())
        }
    };
    let attrs = ObjectAttrs {
        content_type: header_str(&headers, header::CONTENT_TYPE)?,
        ..Default::default()
    };
    let mut upload = lambent_objects::Body::new(
        lambent_objects::byte_stream(body.into_data_stream()),
        length,
    );
    upload.content_md5 = header_str(&headers, header::HeaderName::from_static("content-md5"))?;
    let stored = b
        .objects
        .put_object(&ns, &bucket, &key, attrs, upload, condition)
        .await?;
    Ok(Json(ObjectInfo::from(&stored)))
}

/// The headers of an object's answer: its length, type, ETag and modification time.
fn object_headers(o: &ObjectRecord) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(o.size));
    let content_type = o
        .attrs
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    if let Ok(etag) = HeaderValue::from_str(&o.etag) {
        h.insert(header::ETAG, etag);
    }
    let modified =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(o.last_modified_ms.max(0) as u64);
    if let Ok(date) = HeaderValue::from_str(&httpdate(modified)) {
        h.insert(header::LAST_MODIFIED, date);
    }
    h
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate(t: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// `GET /v1/buckets/{bucket}/objects/{key}`: the bytes, streamed from disk, with
/// `Content-Length`.
async fn get_object(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, Failed> {
    let d = b
        .objects
        .get_object(&ns, &bucket, &key, &Conditions::default(), None)
        .await?;
    let headers = object_headers(&d.object);
    Ok((headers, Body::from_stream(d.stream)).into_response())
}

async fn head_object(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<Response, Failed> {
    let o = b
        .objects
        .head_object(&ns, &bucket, &key, &Conditions::default())
        .await?;
    Ok(object_headers(&o).into_response())
}

/// `DELETE /v1/buckets/{bucket}/objects/{key}` → `204`; a missing key is `404 NoSuchKey`
/// (unlike S3, which answers 204: the CLI tells a typo from a deletion).
async fn delete_object(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path((bucket, key)): Path<(String, String)>,
) -> Result<StatusCode, Failed> {
    match b.objects.delete_object(&ns, &bucket, &key).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ObjectError::NoSuchKey.into()),
    }
}

async fn get_notification(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(bucket): Path<String>,
) -> Result<Json<Configurations>, Failed> {
    let config = b.objects.notification(&ns, &bucket).await?;
    Ok(Json(Configurations {
        configurations: config.targets.iter().map(shown).collect(),
    }))
}

async fn put_notification(
    State(b): St,
    Extension(Principal { namespace: ns, .. }): Extension<Principal>,
    Path(bucket): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Configurations>, Failed> {
    let given: Configurations = serde_json::from_slice(&body)
        .map_err(|e| ObjectError::InvalidArgument(format!("invalid request body: {e}")))?;
    let region = b.app.events.region();
    let targets = given
        .configurations
        .into_iter()
        .map(|c| target(c, region, &ns))
        .collect::<Result<Vec<_>, _>>()?;
    let config = NotificationConfig { targets };
    b.objects.put_notification(&ns, &bucket, &config).await?;
    Ok(Json(Configurations {
        configurations: config.targets.iter().map(shown).collect(),
    }))
}

/// A configuration as taken, validated by the engine into a target.
fn target(c: Configuration, region: &str, ns: &str) -> Result<TargetConfig, ObjectError> {
    let (kind, arn) = match (c.function, c.workflow, c.queue, c.topic) {
        (Some(f), None, None, None) => (
            TargetKind::LambdaFunction,
            format!("arn:aws:lambda:{region}:{ns}:function:{f}"),
        ),
        (None, Some(w), None, None) => (
            TargetKind::LambdaFunction,
            format!("arn:aws:states:{region}:{ns}:stateMachine:{w}"),
        ),
        (None, None, Some(q), None) => {
            (TargetKind::Queue, format!("arn:aws:sqs:{region}:{ns}:{q}"))
        }
        (None, None, None, Some(t)) => {
            (TargetKind::Topic, format!("arn:aws:sns:{region}:{ns}:{t}"))
        }
        _ => {
            return Err(ObjectError::InvalidArgument(
                "a configuration names exactly one of function, workflow, queue or topic".into(),
            ))
        }
    };
    let events = if c.events.is_empty() {
        vec!["s3:ObjectCreated:*".to_string()]
    } else {
        c.events
    };
    let rules = [("prefix", c.prefix), ("suffix", c.suffix)]
        .into_iter()
        .filter_map(|(name, value)| {
            value.map(|value| FilterRule {
                name: name.into(),
                value,
            })
        })
        .collect();
    TargetConfig::new(kind, c.id, arn, events, rules)
}

/// A stored target as `/v1` shows it.
fn shown(t: &TargetConfig) -> Configuration {
    let name = t.arn.rsplit(':').next().map(str::to_string);
    let name = match t.kind {
        // A qualified function ARN ends in its qualifier: show `name:qualifier`.
        TargetKind::LambdaFunction => t.arn.split_once(":function:").map(|(_, f)| f.to_string()),
        _ => name,
    };
    let mut c = Configuration {
        id: Some(t.id.clone()),
        arn: Some(t.arn.clone()),
        events: t.events.clone(),
        prefix: t.prefix.clone(),
        suffix: t.suffix.clone(),
        ..Default::default()
    };
    match t.kind {
        TargetKind::LambdaFunction if t.arn.contains(":stateMachine:") => {
            c.workflow = t.arn.rsplit(':').next().map(str::to_string)
        }
        TargetKind::LambdaFunction => c.function = name,
        TargetKind::Queue => c.queue = name,
        TargetKind::Topic => c.topic = name,
    }
    c
}
