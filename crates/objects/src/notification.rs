//! Bucket notification configurations (`PutBucketNotificationConfiguration`): validated once
//! into a [`NotificationConfig`], stored as JSON on the bucket, and matched against each
//! [`ObjectEvent`] the engine reports through its [`ObjectEvents`] hook. Delivering the events
//! (to functions, queues, topics) is the hook's implementer's business.

use crate::ObjectError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The event names a configuration may ask for.
pub const EVENT_NAMES: &[&str] = &[
    "s3:ObjectCreated:*",
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:*",
    "s3:ObjectRemoved:Delete",
];

/// What kind of target a configuration sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetKind {
    LambdaFunction,
    Queue,
    Topic,
}

impl TargetKind {
    /// The ARN service a target of this kind names.
    fn service(self) -> &'static str {
        match self {
            TargetKind::LambdaFunction => "lambda",
            TargetKind::Queue => "sqs",
            TargetKind::Topic => "sns",
        }
    }
}

/// One configuration: where to send which events of which keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetConfig {
    pub kind: TargetKind,
    /// The configuration's id (generated when none is given).
    pub id: String,
    pub arn: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
}

/// A bucket's notification configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationConfig {
    pub targets: Vec<TargetConfig>,
}

/// A filter rule as sent (`prefix` or `suffix`, any case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRule {
    pub name: String,
    pub value: String,
}

impl TargetConfig {
    /// Validates one configuration as sent: a known ARN of the kind's service, at least one
    /// known event, at most one prefix and one suffix rule.
    pub fn new(
        kind: TargetKind,
        id: Option<String>,
        arn: String,
        events: Vec<String>,
        rules: Vec<FilterRule>,
    ) -> Result<TargetConfig, ObjectError> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        // A Lambda configuration may name a state machine too (a Lambent extension: each
        // event starts an execution).
        let state_machine = kind == TargetKind::LambdaFunction
            && parts.len() == 6
            && parts[2] == "states"
            && parts[5].starts_with("stateMachine:");
        let arn_ok = parts.len() == 6
            && parts[0] == "arn"
            && (parts[2] == kind.service() || state_machine)
            && !parts[5].is_empty()
            && (kind != TargetKind::LambdaFunction
                || parts[5].starts_with("function:")
                || state_machine);
        if !arn_ok {
            return Err(ObjectError::InvalidArgument(format!(
                "unable to validate the following destination configurations: '{arn}' is not a {} ARN",
                kind.service()
            )));
        }
        if events.is_empty() {
            return Err(ObjectError::InvalidArgument(
                "a notification configuration needs at least one event".into(),
            ));
        }
        if let Some(bad) = events.iter().find(|e| !EVENT_NAMES.contains(&e.as_str())) {
            return Err(ObjectError::InvalidArgument(format!(
                "the event '{bad}' is not supported for notifications"
            )));
        }
        let (mut prefix, mut suffix) = (None, None);
        for rule in rules {
            let slot = match rule.name.to_ascii_lowercase().as_str() {
                "prefix" => &mut prefix,
                "suffix" => &mut suffix,
                other => {
                    return Err(ObjectError::InvalidArgument(format!(
                        "filter rule name must be either prefix or suffix, not '{other}'"
                    )))
                }
            };
            if slot.replace(rule.value).is_some() {
                return Err(ObjectError::InvalidArgument(format!(
                    "cannot specify more than one {} rule in a filter",
                    rule.name.to_ascii_lowercase()
                )));
            }
        }
        Ok(TargetConfig {
            kind,
            id: id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            arn,
            events,
            prefix,
            suffix,
        })
    }

    /// Whether this configuration wants `event` on `key`.
    pub fn matches(&self, event: EventName, key: &str) -> bool {
        let name = event.as_str();
        let wildcard = format!("{}*", &name[..name.rfind(':').map_or(0, |i| i + 1)]);
        self.events.iter().any(|e| *e == name || *e == wildcard)
            && self.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && self.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    }
}

impl NotificationConfig {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a notification configuration serializes")
    }

    pub fn from_json(json: &str) -> Result<NotificationConfig, ObjectError> {
        serde_json::from_str(json).map_err(|e| {
            ObjectError::Store(lambent_store::StoreError::Database(format!(
                "stored notification configuration is unreadable: {e}"
            )))
        })
    }

    /// The configurations that want `event` on `key`.
    pub fn matching(&self, event: EventName, key: &str) -> Vec<TargetConfig> {
        self.targets
            .iter()
            .filter(|t| t.matches(event, key))
            .cloned()
            .collect()
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventName {
    Put,
    Copy,
    CompleteMultipartUpload,
    Delete,
}

impl EventName {
    /// S3's name, as in configurations (`s3:ObjectCreated:Put`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventName::Put => "s3:ObjectCreated:Put",
            EventName::Copy => "s3:ObjectCreated:Copy",
            EventName::CompleteMultipartUpload => "s3:ObjectCreated:CompleteMultipartUpload",
            EventName::Delete => "s3:ObjectRemoved:Delete",
        }
    }
}

/// An object was created or removed in a bucket whose notification configuration wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub name: EventName,
    pub bucket: String,
    /// The bucket's namespace.
    pub namespace: String,
    pub region: String,
    pub key: String,
    pub size: u64,
    /// Without quotes (as in S3's event records); empty for a removal.
    pub etag: String,
    pub time_ms: i64,
    /// The configurations it matched.
    pub targets: Vec<TargetConfig>,
}

/// The hook the engine reports events through, after the change is committed and before the
/// request answers: an implementation that makes the event durable before returning gets
/// "answered 200 ⇒ notified" semantics.
#[async_trait]
pub trait ObjectEvents: Send + Sync + 'static {
    async fn record(&self, event: ObjectEvent) -> Result<(), ObjectError>;

    /// Checks a configuration's destinations before it is stored, as
    /// PutBucketNotificationConfiguration does (S3 refuses destinations it cannot deliver to
    /// with `InvalidArgument`); the default accepts every destination.
    async fn check(
        &self,
        _namespace: &str,
        _config: &NotificationConfig,
    ) -> Result<(), ObjectError> {
        Ok(())
    }
}

/// Reports nothing (no deliveries wired).
pub struct NoEvents;

#[async_trait]
impl ObjectEvents for NoEvents {
    async fn record(&self, _event: ObjectEvent) -> Result<(), ObjectError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, value: &str) -> FilterRule {
        FilterRule {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn configurations_are_validated() {
        let lambda = "arn:aws:lambda:us-east-1:000000000000:function:thumb".to_string();
        let ok = TargetConfig::new(
            TargetKind::LambdaFunction,
            None,
            lambda.clone(),
            vec!["s3:ObjectCreated:*".into()],
            vec![rule("Prefix", "in/"), rule("suffix", ".jpg")],
        )
        .unwrap();
        assert!(!ok.id.is_empty());
        assert!(ok.matches(EventName::Put, "in/a.jpg"));
        assert!(ok.matches(EventName::CompleteMultipartUpload, "in/b.jpg"));
        assert!(!ok.matches(EventName::Delete, "in/a.jpg"));
        assert!(!ok.matches(EventName::Put, "out/a.jpg"));
        assert!(!ok.matches(EventName::Put, "in/a.png"));
        let bad = |kind, arn: &str, events: Vec<&str>, rules| {
            TargetConfig::new(
                kind,
                Some("x".into()),
                arn.into(),
                events.into_iter().map(Into::into).collect(),
                rules,
            )
            .is_err()
        };
        assert!(bad(
            TargetKind::Queue,
            &lambda,
            vec!["s3:ObjectCreated:*"],
            vec![]
        ));
        assert!(bad(TargetKind::LambdaFunction, &lambda, vec![], vec![]));
        // A state machine in a Lambda configuration (Lambent's extension), never elsewhere.
        let machine = "arn:aws:states:us-east-1:000000000000:stateMachine:ingest";
        let created = vec!["s3:ObjectCreated:*"];
        assert!(!bad(
            TargetKind::LambdaFunction,
            machine,
            created.clone(),
            vec![]
        ));
        assert!(bad(TargetKind::Queue, machine, created.clone(), vec![]));
        assert!(bad(
            TargetKind::LambdaFunction,
            "arn:aws:states:us-east-1:000000000000:execution:ingest:x",
            created,
            vec![]
        ));
        assert!(bad(
            TargetKind::LambdaFunction,
            &lambda,
            vec!["s3:Nope"],
            vec![]
        ));
        assert!(bad(
            TargetKind::LambdaFunction,
            &lambda,
            vec!["s3:ObjectRemoved:*"],
            vec![rule("prefix", "a"), rule("prefix", "b")]
        ));
        assert!(bad(
            TargetKind::LambdaFunction,
            &lambda,
            vec!["s3:ObjectRemoved:*"],
            vec![rule("middle", "a")]
        ));
        assert!(!bad(
            TargetKind::Topic,
            "arn:aws:sns:us-east-1:000000000000:t",
            vec!["s3:ObjectRemoved:Delete"],
            vec![]
        ));
    }
}
