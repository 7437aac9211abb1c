//! Buckets under `/v1` (API-key authenticated, for the CLI): a bucket's notification
//! configuration, read and replaced through the same engine calls as S3's
//! Get/PutBucketNotificationConfiguration. Targets are named (a function, queue or topic of the
//! caller's namespace); their ARNs are made here.
//!
//! `GET /v1/buckets/{bucket}/notification` → `{"configurations": [Configuration]}`;
//! `PUT` with the same body replaces them all (an empty list removes them), as S3 does.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_gateway::{App, Namespace};
use lambent_objects::notification::{FilterRule, TargetConfig, TargetKind};
use lambent_objects::{NotificationConfig, ObjectError, Objects};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One configuration as `/v1` shows and takes it: exactly one of `function`, `queue`, `topic`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
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
        .route(
            "/v1/buckets/{bucket}/notification",
            get(get_notification).put(put_notification),
        )
        .layer(axum::middleware::from_fn_with_state(
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

async fn get_notification(
    State(b): St,
    Extension(Namespace(ns)): Extension<Namespace>,
    Path(bucket): Path<String>,
) -> Result<Json<Configurations>, Failed> {
    let config = b.objects.notification(&ns, &bucket).await?;
    Ok(Json(Configurations {
        configurations: config.targets.iter().map(shown).collect(),
    }))
}

async fn put_notification(
    State(b): St,
    Extension(Namespace(ns)): Extension<Namespace>,
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
    let (kind, arn) = match (c.function, c.queue, c.topic) {
        (Some(f), None, None) => (
            TargetKind::LambdaFunction,
            format!("arn:aws:lambda:{region}:{ns}:function:{f}"),
        ),
        (None, Some(q), None) => (TargetKind::Queue, format!("arn:aws:sqs:{region}:{ns}:{q}")),
        (None, None, Some(t)) => (TargetKind::Topic, format!("arn:aws:sns:{region}:{ns}:{t}")),
        _ => {
            return Err(ObjectError::InvalidArgument(
                "a configuration names exactly one of function, queue or topic".into(),
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
        TargetKind::LambdaFunction => c.function = name,
        TargetKind::Queue => c.queue = name,
        TargetKind::Topic => c.topic = name,
    }
    c
}
