//! The event shapes functions receive from queues and topics (`/work`'s events spec, AWS's
//! fixtures): the SQS batch event, the SNS notification (also the body of a topic message
//! delivered to a queue) and the SNS event.

use lambent_store::queues::{Attributes, Message};
use md5::Digest;
use serde_json::{json, Map, Value};

pub fn queue_arn(region: &str, namespace: &str, queue: &str) -> String {
    format!("arn:aws:sqs:{region}:{namespace}:{queue}")
}

pub fn topic_arn(region: &str, namespace: &str, topic: &str) -> String {
    format!("arn:aws:sns:{region}:{namespace}:{topic}")
}

/// `{"Records": [...]}` for a batch of received messages.
pub fn sqs_event(region: &str, namespace: &str, queue: &str, batch: &[Message]) -> Value {
    let arn = queue_arn(region, namespace, queue);
    let records: Vec<Value> = batch
        .iter()
        .map(|m| {
            let attributes: Map<String, Value> = m
                .attributes
                .iter()
                .map(|(name, a)| {
                    let mut v = json!({
                        "dataType": a.data_type,
                        "stringListValues": [],
                        "binaryListValues": [],
                    });
                    if let Some(s) = &a.string_value {
                        v["stringValue"] = Value::String(s.clone());
                    }
                    if let Some(b) = &a.binary_value {
                        v["binaryValue"] = Value::String(b.clone());
                    }
                    (name.clone(), v)
                })
                .collect();
            let mut system = json!({
                "ApproximateReceiveCount": m.receive_count.to_string(),
                "SentTimestamp": m.sent_ms.to_string(),
                "SenderId": namespace,
                "ApproximateFirstReceiveTimestamp": m.first_receive_ms.to_string(),
            });
            // As Lambda's: the sender's trace header, when it sent one.
            if let Some(t) = &m.trace {
                system["AWSTraceHeader"] = t.xray().into();
            }
            json!({
                "messageId": m.id,
                "receiptHandle": m.receipt_handle,
                "body": m.body,
                "attributes": system,
                "messageAttributes": attributes,
                "md5OfBody": hex_md5(m.body.as_bytes()),
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The lower-case hex MD5 of `bytes` (SQS's `md5OfBody`).
pub fn hex_md5(bytes: &[u8]) -> String {
    md5::Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A published topic message.
pub struct Notification<'a> {
    pub message_id: &'a str,
    pub topic_arn: &'a str,
    pub subject: Option<&'a str>,
    pub message: &'a str,
    pub timestamp_ms: i64,
    pub attributes: &'a Attributes,
}

/// The SNS notification object: the `Sns` of an SNS event record, and the body of a topic
/// message delivered to a queue.
pub fn sns_notification(n: &Notification<'_>) -> Value {
    let attributes: Map<String, Value> = n
        .attributes
        .iter()
        .map(|(name, a)| {
            let value = a.string_value.clone().or_else(|| a.binary_value.clone());
            (name.clone(), json!({"Type": a.data_type, "Value": value}))
        })
        .collect();
    json!({
        "Type": "Notification",
        "MessageId": n.message_id,
        "TopicArn": n.topic_arn,
        "Subject": n.subject,
        "Message": n.message,
        "Timestamp": iso_time(n.timestamp_ms),
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "",
        "UnsubscribeURL": "",
        "MessageAttributes": attributes,
    })
}

/// `{"Records": [{"EventSource": "aws:sns", …, "Sns": {…}}]}` for one subscription.
pub fn sns_event(subscription_arn: &str, notification: Value) -> Value {
    json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": notification,
    }]})
}

/// `2019-01-02T12:45:07.000Z`.
pub(crate) fn iso_time(ms: i64) -> String {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_store::queues::MessageAttribute;

    #[test]
    fn sqs_records_have_the_required_fields() {
        let mut attributes = Attributes::new();
        attributes.insert(
            "kind".into(),
            MessageAttribute {
                data_type: "String".into(),
                string_value: Some("order".into()),
                binary_value: None,
            },
        );
        let m = Message {
            id: "m1".into(),
            receipt_handle: "r1".into(),
            body: "Hello from SQS!".into(),
            attributes,
            sent_ms: 1,
            receive_count: 2,
            first_receive_ms: 3,
            trace: None,
        };
        let e = sqs_event("local", "default", "orders", &[m]);
        let r = &e["Records"][0];
        assert_eq!(r["eventSource"], "aws:sqs");
        assert_eq!(r["eventSourceARN"], "arn:aws:sqs:local:default:orders");
        assert_eq!(r["md5OfBody"], "7b270e59b47ff90a553787216d55d91d");
        assert_eq!(r["attributes"]["ApproximateReceiveCount"], "2");
        assert_eq!(r["messageAttributes"]["kind"]["stringValue"], "order");
        assert_eq!(r["messageAttributes"]["kind"]["dataType"], "String");
    }

    #[test]
    fn sns_records_use_pascal_case() {
        let attributes = Attributes::new();
        let n = sns_notification(&Notification {
            message_id: "id",
            topic_arn: "arn:aws:sns:local:default:t",
            subject: Some("s"),
            message: "hi",
            timestamp_ms: 1_546_433_107_000,
            attributes: &attributes,
        });
        assert_eq!(n["Timestamp"], "2019-01-02T12:45:07.000Z");
        let e = sns_event("arn:aws:sns:local:default:t:sub", n);
        let r = &e["Records"][0];
        assert_eq!(r["EventSource"], "aws:sns");
        assert_eq!(r["Sns"]["Type"], "Notification");
        assert_eq!(r["Sns"]["Message"], "hi");
    }
}
