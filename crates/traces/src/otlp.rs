//! Spans as an OTLP/HTTP protobuf request body (`ExportTraceServiceRequest`): one resource per
//! function (`service.name` and `faas.name` the function, `cloud.*` the platform and the
//! namespace as the account), one instrumentation scope (`lambent`).

use crate::spans::{Platform, Span};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::Link as OtlpLink, status, ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
};
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;

/// An attribute in its OTLP form (its text moved, not copied).
fn key_value(key: &str, value: Value) -> Option<KeyValue> {
    let v = match value {
        Value::String(s) => any_value::Value::StringValue(s),
        Value::Bool(b) => any_value::Value::BoolValue(b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => any_value::Value::IntValue(i),
            (None, Some(u), _) => any_value::Value::IntValue(u as i64),
            (_, _, Some(f)) => any_value::Value::DoubleValue(f),
            _ => return None,
        },
        _ => return None,
    };
    Some(KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
    })
}

fn text(key: &str, value: &str) -> KeyValue {
    key_value(key, Value::String(value.to_string())).expect("a string is a value")
}

/// A span in its OTLP form; taken by value, so that its name and attributes move.
fn otlp_span(s: Span, trace_state: &str) -> OtlpSpan {
    OtlpSpan {
        trace_id: s.trace_id.to_bytes().to_vec(),
        span_id: s.span_id.to_bytes().to_vec(),
        parent_span_id: s
            .parent_span_id
            .map_or_else(Vec::new, |p| p.to_bytes().to_vec()),
        trace_state: trace_state.to_string(),
        name: s.name,
        kind: s.kind as i32,
        start_time_unix_nano: s.start_unix_nano,
        end_time_unix_nano: s.end_unix_nano,
        attributes: s
            .attributes
            .into_iter()
            .filter_map(|(k, v)| key_value(k, v))
            .collect(),
        status: Some(match s.error {
            Some(message) => Status {
                message,
                code: status::StatusCode::Error as i32,
            },
            None => Status::default(),
        }),
        links: s
            .links
            .iter()
            .map(|l| OtlpLink {
                trace_id: l.trace_id.to_bytes().to_vec(),
                span_id: l.span_id.to_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// One batch, ready to export: spans grouped by their function, with each span's tracestate.
#[derive(Default)]
pub struct Batch {
    /// (namespace, function) → spans.
    groups: BTreeMap<(String, String), Vec<OtlpSpan>>,
    len: usize,
}

impl Batch {
    /// Adds the spans of one activation of `function` in `namespace`.
    pub fn add(&mut self, namespace: &str, function: &str, spans: Vec<Span>, trace_state: &str) {
        self.len += spans.len();
        let group = self
            .groups
            .entry((namespace.to_string(), function.to_string()))
            .or_default();
        group.extend(spans.into_iter().map(|s| otlp_span(s, trace_state)));
    }

    /// Spans in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The request body, and empties the batch.
    pub fn encode(&mut self, platform: &Platform) -> Vec<u8> {
        let groups = std::mem::take(&mut self.groups);
        self.len = 0;
        let resource_spans = groups
            .into_iter()
            .map(|((namespace, function), spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", &function),
                        text("faas.name", &function),
                        text("cloud.provider", &platform.provider),
                        text("cloud.region", &platform.region),
                        text("cloud.account.id", &namespace),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "lambent".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportTraceServiceRequest { resource_spans }.encode_to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spans::activation_spans;
    use lambent_core::{Activation, ActivationTrace, TraceOrigin};

    #[test]
    fn a_batch_decodes_back_with_its_ids_and_attributes() {
        let mut trace = ActivationTrace::start(TraceOrigin::default(), 1_000);
        trace.end_us = 2_000;
        let a = Activation {
            id: "a1".into(),
            namespace: "ns".into(),
            function: "f".into(),
            trigger: "api".into(),
            memory_mb: 256,
            duration_us: 500,
            trace: Some(trace.clone()),
            ..Default::default()
        };
        let platform = Platform::new("eu-west-1");
        let spans = activation_spans(&a, &platform);
        let mut batch = Batch::default();
        batch.add("ns", "f", spans, "k=v");
        assert_eq!(batch.len(), 2);
        let body = batch.encode(&platform);
        assert!(batch.is_empty());
        let req = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
        let rs = &req.resource_spans[0];
        let attrs = &rs.resource.as_ref().unwrap().attributes;
        assert!(attrs.contains(&text("cloud.account.id", "ns")));
        let got = &rs.scope_spans[0].spans;
        assert_eq!(got.len(), 2);
        let server = got.iter().find(|s| s.name == "f").unwrap();
        assert_eq!(server.trace_id, trace.trace_id.to_bytes());
        assert_eq!(server.span_id, trace.span_id.to_bytes());
        assert!(server.parent_span_id.is_empty());
        assert_eq!(server.trace_state, "k=v");
        assert_eq!(server.kind, 2);
        assert_eq!(server.start_time_unix_nano, 1_000_000);
        let memory = server
            .attributes
            .iter()
            .find(|kv| kv.key == "faas.max_memory")
            .unwrap();
        assert_eq!(
            memory.value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(256 * 1024 * 1024))
        );
        let handler = got.iter().find(|s| s.name == "handler").unwrap();
        assert_eq!(handler.parent_span_id, server.span_id);
    }
}
