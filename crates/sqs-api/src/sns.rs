//! SNS's query protocol over the topics of the caller's namespace: topics, subscriptions of
//! functions (`lambda`) and queues (`sqs`), and publishing (one or a batch) with message
//! attributes. Results are XML (lists as `<member>`, maps as `<entry><key/><value/>`). Topic
//! ARNs are `arn:aws:sns:<region>:<namespace>:<topic>`, subscription ARNs the topic's ARN and
//! the subscription's id.

use crate::error::SnsError;
use crate::wire::{element, numbered, Params};
use lambent_aws_api::arn::Scope;
use lambent_queues::events::{queue_arn, topic_arn};
use lambent_queues::{Attributes, Endpoint, MessageAttribute, QueueError, Queues, Subscription};
use std::collections::{BTreeMap, HashSet};

/// Most entries of a PublishBatch.
const MAX_PUBLISH_BATCH: usize = 10;
/// Topics or subscriptions per page of a list.
const PAGE: usize = 100;

/// Who calls.
pub struct Call<'a> {
    pub queues: &'a Queues,
    pub namespace: &'a str,
    /// The request's trace context, which a publish's deliveries continue.
    pub trace: Option<lambent_core::TraceContext>,
}

impl Call<'_> {
    fn topic_arn(&self, topic: &str) -> String {
        topic_arn(self.queues.region(), self.namespace, topic)
    }

    fn subscription_arn(&self, s: &Subscription) -> String {
        format!("{}:{}", self.topic_arn(&s.topic), s.id)
    }
}

/// Runs one action; returns its XML result (empty for none).
pub async fn dispatch(c: &Call<'_>, action: &str, p: &Params) -> Result<String, SnsError> {
    let mut out = String::new();
    match action {
        "CreateTopic" => {
            let name = required(p, "Name")?;
            if let Some(a) = numbered(p, "Attributes.entry").first() {
                return Err(SnsError::InvalidParameter(format!(
                    "Attributes: Lambent topics have no attribute {}",
                    a.get("key").map_or("", String::as_str)
                )));
            }
            c.queues.create_topic(c.namespace, name).await?;
            element(&mut out, "TopicArn", &c.topic_arn(name));
        }
        "ListTopics" => {
            let mut names: Vec<String> = c
                .queues
                .list_topics(c.namespace)
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect();
            names.sort();
            let (page, next) = paginate(names, p.get("NextToken"), |n| n.clone());
            out.push_str("<Topics>");
            for name in page {
                out.push_str("<member>");
                element(&mut out, "TopicArn", &c.topic_arn(&name));
                out.push_str("</member>");
            }
            out.push_str("</Topics>");
            if let Some(t) = next {
                element(&mut out, "NextToken", &t);
            }
        }
        "DeleteTopic" => {
            let topic = topic_of(c, p, "TopicArn")?;
            // Deleting a topic that is not there is no error (as on SNS).
            match c.queues.delete_topic(c.namespace, &topic).await {
                Ok(()) | Err(QueueError::TopicNotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        "GetTopicAttributes" => {
            let topic = topic_of(c, p, "TopicArn")?;
            let subscriptions = c.queues.subscriptions(c.namespace, &topic).await?;
            let arn = c.topic_arn(&topic);
            let confirmed = subscriptions.len().to_string();
            entries(
                &mut out,
                &[
                    ("TopicArn", arn.as_str()),
                    ("Owner", c.namespace),
                    ("DisplayName", ""),
                    ("SubscriptionsConfirmed", &confirmed),
                    ("SubscriptionsPending", "0"),
                    ("SubscriptionsDeleted", "0"),
                ],
            );
        }
        "Subscribe" => {
            let arn = subscribe(c, p).await?;
            element(&mut out, "SubscriptionArn", &arn);
        }
        "GetSubscriptionAttributes" => {
            let s = subscription_of(c, p).await?;
            let (protocol, endpoint) = protocol_and_endpoint(c, &s);
            let arn = c.subscription_arn(&s);
            let topic = c.topic_arn(&s.topic);
            let mut attributes: Vec<(&str, &str)> = vec![
                ("SubscriptionArn", &arn),
                ("TopicArn", &topic),
                ("Owner", c.namespace),
                ("Protocol", protocol),
                ("Endpoint", &endpoint),
                ("ConfirmationWasAuthenticated", "true"),
                ("PendingConfirmation", "false"),
            ];
            let raw = s
                .attributes
                .get("RawMessageDelivery")
                .map_or("false", String::as_str);
            attributes.push(("RawMessageDelivery", raw));
            if let Some(policy) = s.attributes.get("FilterPolicy") {
                attributes.push(("FilterPolicy", policy));
                let scope = s
                    .attributes
                    .get("FilterPolicyScope")
                    .map_or("MessageAttributes", String::as_str);
                attributes.push(("FilterPolicyScope", scope));
            }
            entries(&mut out, &attributes);
        }
        "SetSubscriptionAttributes" => {
            let s = subscription_of(c, p).await?;
            let name = required(p, "AttributeName")?;
            let value = p.get("AttributeValue").map_or("", String::as_str);
            c.queues
                .set_subscription_attribute(c.namespace, &s.topic, &s.id, name, value)
                .await?;
        }
        "Unsubscribe" => {
            let arn = required(p, "SubscriptionArn")?;
            let (topic, id) = arn
                .rsplit_once(':')
                .ok_or_else(|| SnsError::InvalidParameter("SubscriptionArn".into()))?;
            topic_name(c, topic)?;
            c.queues.unsubscribe(c.namespace, id).await?;
        }
        "ListSubscriptions" | "ListSubscriptionsByTopic" => {
            let topics = match action {
                "ListSubscriptionsByTopic" => vec![topic_of(c, p, "TopicArn")?],
                _ => {
                    let mut names: Vec<String> = c
                        .queues
                        .list_topics(c.namespace)
                        .await?
                        .into_iter()
                        .map(|t| t.name)
                        .collect();
                    names.sort();
                    names
                }
            };
            let mut all = Vec::new();
            for t in topics {
                all.extend(c.queues.subscriptions(c.namespace, &t).await?);
            }
            let (page, next) = paginate(all, p.get("NextToken"), |s| c.subscription_arn(s));
            out.push_str("<Subscriptions>");
            for s in page {
                subscription_member(c, &mut out, &s);
            }
            out.push_str("</Subscriptions>");
            if let Some(t) = next {
                element(&mut out, "NextToken", &t);
            }
        }
        "Publish" => {
            if p.contains_key("PhoneNumber") {
                return Err(SnsError::InvalidParameter(
                    "PhoneNumber: Lambent publishes to topics only".into(),
                ));
            }
            let topic = match (p.get("TopicArn"), p.get("TargetArn")) {
                (Some(_), _) => topic_of(c, p, "TopicArn")?,
                (None, Some(_)) => topic_of(c, p, "TargetArn")?,
                (None, None) => {
                    return Err(SnsError::InvalidParameter(
                        "TopicArn or TargetArn Reason: no value for required parameter".into(),
                    ))
                }
            };
            let id = publish(c, &topic, p).await?;
            element(&mut out, "MessageId", &id);
        }
        "PublishBatch" => publish_batch(c, p, &mut out).await?,
        other => return Err(SnsError::InvalidAction(other.to_string())),
    }
    Ok(out)
}

/// `<Attributes>` with one `<entry><key/><value/></entry>` per pair.
fn entries(out: &mut String, pairs: &[(&str, &str)]) {
    out.push_str("<Attributes>");
    for (k, v) in pairs {
        out.push_str("<entry>");
        element(out, "key", k);
        element(out, "value", v);
        out.push_str("</entry>");
    }
    out.push_str("</Attributes>");
}

/// The subscription a `SubscriptionArn` names (`<topic ARN>:<id>`).
async fn subscription_of(c: &Call<'_>, p: &Params) -> Result<Subscription, SnsError> {
    let arn = required(p, "SubscriptionArn")?;
    let (topic_arn, id) = arn.rsplit_once(':').ok_or_else(|| {
        SnsError::InvalidParameter(format!(
            "SubscriptionArn Reason: '{arn}' is not a subscription ARN"
        ))
    })?;
    let topic = topic_name(c, topic_arn)?;
    c.queues
        .subscriptions(c.namespace, &topic)
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| SnsError::NotFound("Subscription does not exist".into()))
}

fn required<'p>(p: &'p Params, name: &str) -> Result<&'p str, SnsError> {
    p.get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            SnsError::InvalidParameter(format!("{name} Reason: no value for required parameter"))
        })
}

/// The topic an ARN names in the caller's namespace.
fn topic_name(c: &Call<'_>, arn: &str) -> Result<String, SnsError> {
    let prefix = c.topic_arn("");
    match arn.strip_prefix(&prefix) {
        Some(name) if !name.is_empty() && !name.contains(':') => Ok(name.to_string()),
        // Another account's or region's topic does not exist for the caller.
        _ if arn.starts_with("arn:aws:sns:") && arn.split(':').count() == 6 => {
            Err(SnsError::NotFound("Topic does not exist".into()))
        }
        _ => Err(SnsError::InvalidParameter(format!(
            "TopicArn Reason: '{arn}' is not a topic ARN"
        ))),
    }
}

fn topic_of(c: &Call<'_>, p: &Params, param: &str) -> Result<String, SnsError> {
    topic_name(c, required(p, param)?)
}

/// One page of `items` after the token (the key of the last item of the previous page).
fn paginate<T>(
    items: Vec<T>,
    token: Option<&String>,
    key: impl Fn(&T) -> String,
) -> (Vec<T>, Option<String>) {
    let start = token
        .and_then(|t| items.iter().position(|i| key(i) == *t).map(|p| p + 1))
        .unwrap_or(0);
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > PAGE;
    let page: Vec<T> = rest.into_iter().take(PAGE).collect();
    let next = more.then(|| page.last().map(&key)).flatten();
    (page, next)
}

/// How SNS names a subscription's protocol, and its endpoint's ARN.
fn protocol_and_endpoint(c: &Call<'_>, s: &Subscription) -> (&'static str, String) {
    match &s.endpoint {
        Endpoint::Function(f) => (
            "lambda",
            Scope {
                region: c.queues.region(),
                namespace: c.namespace,
            }
            .function_arn(f),
        ),
        Endpoint::Queue(q) => ("sqs", queue_arn(c.queues.region(), c.namespace, q)),
        Endpoint::Workflow(w) => ("states", w.clone()),
    }
}

fn subscription_member(c: &Call<'_>, out: &mut String, s: &Subscription) {
    let (protocol, endpoint) = protocol_and_endpoint(c, s);
    out.push_str("<member>");
    element(out, "SubscriptionArn", &c.subscription_arn(s));
    element(out, "Owner", c.namespace);
    element(out, "Protocol", protocol);
    element(out, "Endpoint", &endpoint);
    element(out, "TopicArn", &c.topic_arn(&s.topic));
    out.push_str("</member>");
}

async fn subscribe(c: &Call<'_>, p: &Params) -> Result<String, SnsError> {
    let topic = topic_of(c, p, "TopicArn")?;
    let protocol = required(p, "Protocol")?;
    let target = required(p, "Endpoint")?;
    let attributes: BTreeMap<String, String> = numbered(p, "Attributes.entry")
        .into_iter()
        .filter_map(|mut a| Some((a.remove("key")?, a.remove("value").unwrap_or_default())))
        .collect();
    let invalid = |why: &str| SnsError::InvalidParameter(format!("Endpoint Reason: {why}"));
    let endpoint = match protocol {
        "lambda" => {
            let scope = Scope {
                region: c.queues.region(),
                namespace: c.namespace,
            };
            let f = scope
                .parse(target, None)
                .map_err(|e| invalid(&e.to_string()))?;
            if f.qualifier.is_some() {
                return Err(invalid("Lambent subscribes unqualified functions"));
            }
            Endpoint::Function(f.name)
        }
        "sqs" => {
            let prefix = queue_arn(c.queues.region(), c.namespace, "");
            let q = target
                .strip_prefix(&prefix)
                .filter(|q| !q.is_empty())
                .ok_or_else(|| {
                    invalid(&format!("'{target}' is not a queue ARN of this account"))
                })?;
            Endpoint::Queue(q.to_string())
        }
        other => {
            return Err(SnsError::InvalidParameter(format!(
                "Invalid protocol type: {other} (Lambent delivers to lambda and sqs)"
            )))
        }
    };
    match c
        .queues
        .subscribe_with(c.namespace, &topic, endpoint.clone(), attributes.clone())
        .await
    {
        Ok(s) => Ok(c.subscription_arn(&s)),
        // Subscribing again answers with the subscription there is (as SNS), unless it asks
        // for other attributes.
        Err(QueueError::Conflict(_)) => {
            let there = c
                .queues
                .subscriptions(c.namespace, &topic)
                .await?
                .into_iter()
                .find(|s| s.endpoint == endpoint)
                .ok_or_else(|| SnsError::Internal("the subscription went away".into()))?;
            if there.attributes != attributes {
                return Err(SnsError::InvalidParameter(
                    "Attributes Reason: Subscription already exists with different attributes"
                        .into(),
                ));
            }
            Ok(c.subscription_arn(&there))
        }
        Err(e) => Err(e.into()),
    }
}

/// `MessageAttributes.entry.N.Name` with `.Value.DataType`, `.Value.StringValue` or
/// `.Value.BinaryValue`.
#[doc(hidden)]
pub fn message_attributes(p: &Params) -> Attributes {
    numbered(p, "MessageAttributes.entry")
        .into_iter()
        .filter_map(|mut e| {
            Some((
                e.remove("Name")?,
                MessageAttribute {
                    data_type: e.remove("Value.DataType").unwrap_or_default(),
                    string_value: e.remove("Value.StringValue"),
                    binary_value: e.remove("Value.BinaryValue"),
                },
            ))
        })
        .collect()
}

async fn publish(c: &Call<'_>, topic: &str, p: &Params) -> Result<String, SnsError> {
    let message = required(p, "Message")?;
    if p.get("MessageStructure").is_some_and(|s| !s.is_empty()) {
        return Err(SnsError::InvalidParameter(
            "MessageStructure: Lambent sends one message to every protocol".into(),
        ));
    }
    let subject = p.get("Subject").map(String::as_str);
    let (id, _) = c
        .queues
        .publish(
            c.namespace,
            topic,
            message,
            subject,
            &message_attributes(p),
            c.trace.as_ref(),
        )
        .await?;
    Ok(id)
}

async fn publish_batch(c: &Call<'_>, p: &Params, out: &mut String) -> Result<(), SnsError> {
    let topic = topic_of(c, p, "TopicArn")?;
    let entries = numbered(p, "PublishBatchRequestEntries.member");
    if entries.is_empty() {
        return Err(SnsError::EmptyBatchRequest);
    }
    if entries.len() > MAX_PUBLISH_BATCH {
        return Err(SnsError::TooManyEntriesInBatchRequest);
    }
    let mut seen = HashSet::new();
    for e in &entries {
        let id = e.get("Id").map_or("", String::as_str);
        let valid = !id.is_empty()
            && id.len() <= 80
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SnsError::InvalidBatchEntryId);
        }
        if !seen.insert(id) {
            return Err(SnsError::BatchEntryIdsNotDistinct);
        }
    }
    let (mut successful, mut failed) = (String::new(), String::new());
    for e in &entries {
        let id = e.get("Id").map_or("", String::as_str);
        match publish(c, &topic, e).await {
            Ok(message_id) => {
                successful.push_str("<member>");
                element(&mut successful, "Id", id);
                element(&mut successful, "MessageId", &message_id);
                successful.push_str("</member>");
            }
            Err(e @ SnsError::NotFound(_)) => return Err(e),
            Err(err) => {
                let (code, status) = err.wire();
                failed.push_str("<member>");
                element(&mut failed, "Id", id);
                element(&mut failed, "Code", code);
                element(&mut failed, "Message", &err.to_string());
                element(
                    &mut failed,
                    "SenderFault",
                    if status.is_client_error() {
                        "true"
                    } else {
                        "false"
                    },
                );
                failed.push_str("</member>");
            }
        }
    }
    out.push_str(&format!(
        "<Successful>{successful}</Successful><Failed>{failed}</Failed>"
    ));
    Ok(())
}
