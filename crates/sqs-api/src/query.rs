//! SQS's query protocol over the JSON operations: form parameters (`Attribute.1.Name`,
//! `MessageAttribute.1.Value.DataType`, `SendMessageBatchRequestEntry.1.Id`, …) become the
//! JSON protocol's input, and an operation's JSON output becomes its XML result (lists and maps
//! flattened, as SQS's query protocol writes them).

use crate::wire::{element, escape, numbered, Params};
use serde_json::{json, Map, Value};

/// Numbered parameters that are a list of scalars: (query prefix, JSON member).
const SCALAR_LISTS: &[(&str, &str)] = &[
    ("AttributeName", "AttributeNames"),
    ("MessageAttributeName", "MessageAttributeNames"),
    ("MessageSystemAttributeName", "MessageSystemAttributeNames"),
    ("TagKey", "TagKeys"),
];

/// Numbered parameters that are a list of structures (batch entries).
const ENTRY_LISTS: &[&str] = &[
    "SendMessageBatchRequestEntry",
    "DeleteMessageBatchRequestEntry",
    "ChangeMessageVisibilityBatchRequestEntry",
];

/// Numbered name/value parameters that are maps: (query prefix, JSON member, key, value).
const MAPS: &[(&str, &str, &str, &str)] = &[
    ("Attribute", "Attributes", "Name", "Value"),
    ("Tag", "Tags", "Key", "Value"),
];

/// Numbered parameters that are maps of message attribute values.
const VALUE_MAPS: &[(&str, &str)] = &[
    ("MessageAttribute", "MessageAttributes"),
    ("MessageSystemAttribute", "MessageSystemAttributes"),
];

/// The JSON protocol's input for a query request's parameters (`Action` and `Version` left out).
pub fn input(params: &Params) -> Value {
    let mut out = Map::new();
    let mut heads: Vec<&str> = params
        .keys()
        .map(|k| k.split('.').next().unwrap_or(k))
        .collect();
    heads.sort_unstable();
    heads.dedup();
    for head in heads {
        if let Some((_, member)) = SCALAR_LISTS.iter().find(|(p, _)| *p == head) {
            let values = numbered(params, head)
                .into_iter()
                .filter_map(|mut e| e.remove(""))
                .map(Value::String)
                .collect();
            out.insert(member.to_string(), Value::Array(values));
        } else if ENTRY_LISTS.contains(&head) {
            let entries = numbered(params, head).iter().map(input).collect();
            out.insert("Entries".into(), Value::Array(entries));
        } else if let Some((_, member, k, v)) = MAPS.iter().find(|(p, ..)| *p == head) {
            let map: Map<String, Value> = numbered(params, head)
                .into_iter()
                .filter_map(|mut e| Some((e.remove(*k)?, Value::String(e.remove(*v)?))))
                .collect();
            out.insert(member.to_string(), Value::Object(map));
        } else if let Some((_, member)) = VALUE_MAPS.iter().find(|(p, _)| *p == head) {
            let map: Map<String, Value> = numbered(params, head)
                .into_iter()
                .filter_map(|mut e| {
                    let name = e.remove("Name")?;
                    let value: Map<String, Value> = e
                        .into_iter()
                        .filter_map(|(k, v)| Some((k.strip_prefix("Value.")?.to_string(), v)))
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect();
                    Some((name, Value::Object(value)))
                })
                .collect();
            out.insert(member.to_string(), Value::Object(map));
        } else if head != "Action" && head != "Version" {
            if let Some(v) = params.get(head) {
                out.insert(head.to_string(), Value::String(v.clone()));
            }
        }
    }
    Value::Object(out)
}

/// The XML element each member of an output list is written as (lists are flattened).
fn list_member(operation: &str, key: &str) -> String {
    match key {
        "Messages" => "Message".into(),
        "QueueUrls" | "queueUrls" => "QueueUrl".into(),
        "Failed" => "BatchResultErrorEntry".into(),
        "Successful" => format!("{operation}ResultEntry"),
        other => other.trim_end_matches('s').into(),
    }
}

/// The XML result of an operation's JSON output.
pub fn result(operation: &str, output: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(o) = output {
        members(&mut out, operation, o);
    }
    out
}

fn members(out: &mut String, operation: &str, o: &Map<String, Value>) {
    for (key, value) in o {
        match (key.as_str(), value) {
            ("Attributes" | "Tags", Value::Object(map)) => {
                let (entry, k) = match key.as_str() {
                    "Tags" => ("Tag", "Key"),
                    _ => ("Attribute", "Name"),
                };
                for (name, v) in map {
                    out.push_str(&format!("<{entry}>"));
                    element(out, k, name);
                    element(out, "Value", &scalar(v));
                    out.push_str(&format!("</{entry}>"));
                }
            }
            ("MessageAttributes", Value::Object(map)) => {
                for (name, v) in map {
                    out.push_str("<MessageAttribute>");
                    element(out, "Name", name);
                    out.push_str("<Value>");
                    if let Value::Object(fields) = v {
                        members(out, operation, fields);
                    }
                    out.push_str("</Value></MessageAttribute>");
                }
            }
            (_, Value::Array(items)) => {
                let tag = list_member(operation, key);
                for item in items {
                    match item {
                        Value::Object(fields) => {
                            out.push_str(&format!("<{tag}>"));
                            members(out, operation, fields);
                            out.push_str(&format!("</{tag}>"));
                        }
                        v => element(out, &tag, &scalar(v)),
                    }
                }
            }
            (_, Value::Object(fields)) => {
                out.push_str(&format!("<{key}>"));
                members(out, operation, fields);
                out.push_str(&format!("</{key}>"));
            }
            (_, Value::Null) => {}
            (_, v) => out.push_str(&format!("<{key}>{}</{key}>", escape(&scalar(v)))),
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// The JSON error body a JSON-protocol client gets.
pub fn json_error(json_type: &str, message: &str) -> Value {
    json!({"__type": format!("com.amazonaws.sqs#{json_type}"), "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::params;

    #[test]
    fn form_parameters_become_the_json_input() {
        let p = params(
            None,
            b"Action=SendMessageBatch&QueueUrl=http%3A%2F%2Fh%2Fns%2Fq\
              &SendMessageBatchRequestEntry.1.Id=a&SendMessageBatchRequestEntry.1.MessageBody=x\
              &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=k\
              &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String\
              &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=v\
              &SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.2.MessageBody=y\
              &Attribute.1.Name=VisibilityTimeout&Attribute.1.Value=5&AttributeName.1=All",
        );
        let v = input(&p);
        assert_eq!(
            v,
            json!({
                "QueueUrl": "http://h/ns/q",
                "Entries": [
                    {"Id": "a", "MessageBody": "x",
                     "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}},
                    {"Id": "b", "MessageBody": "y"}
                ],
                "Attributes": {"VisibilityTimeout": "5"},
                "AttributeNames": ["All"],
            })
        );
    }

    #[test]
    fn json_output_becomes_flattened_xml() {
        let out = json!({
            "Messages": [{"MessageId": "m", "Body": "<b>",
                          "Attributes": {"SentTimestamp": "1"},
                          "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}}}],
        });
        assert_eq!(
            result("ReceiveMessage", &out),
            "<Message><Attributes_placeholder/></Message>".replace(
                "<Attributes_placeholder/>",
                "<Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>\
                     <Body>&lt;b&gt;</Body>\
                     <MessageAttribute><Name>k</Name><Value><DataType>String</DataType>\
                     <StringValue>v</StringValue></Value></MessageAttribute>\
                     <MessageId>m</MessageId>"
            )
        );
        let batch = json!({"Successful": [{"Id": "a"}], "Failed": []});
        assert_eq!(
            result("SendMessageBatch", &batch),
            "<SendMessageBatchResultEntry><Id>a</Id></SendMessageBatchResultEntry>"
        );
    }
}
