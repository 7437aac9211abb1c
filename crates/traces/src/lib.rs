//! Traces of invocations: the spans each activation record stands for ([`spans`], derived
//! from the record, nothing measured for them on the invoke path), their OTLP protobuf form
//! ([`otlp`]) and the batching, bounded, never-blocking OTLP/HTTP exporter ([`export`]) that
//! `lambent up --otlp-endpoint` starts. The trace context itself (W3C and X-Ray headers, ids)
//! is `lambent_core::trace`.

pub mod export;
pub mod otlp;
pub mod spans;

pub use export::{ExportConfig, ExportError, Exporter};
pub use spans::{activation_spans, Platform, Span};

use lambent_core::Activation;

/// Every span of a trace's activations, ordered by start (then parents first).
pub fn trace_spans(activations: &[Activation], platform: &Platform) -> Vec<Span> {
    let mut spans: Vec<Span> = activations
        .iter()
        .flat_map(|a| activation_spans(a, platform))
        .collect();
    spans.sort_by_key(|s| (s.start_unix_nano, std::cmp::Reverse(s.end_unix_nano)));
    spans
}
