//! Trace context: which trace an invocation belongs to and whose child it is. Lambent runs on
//! W3C Trace Context ids internally (`traceparent`, `tracestate`), accepts AWS X-Ray's
//! `X-Amzn-Trace-Id` as well (the two map losslessly: the X-Ray `Root` `1-5759e988-bd86…` is the
//! trace id `5759e988bd86…`, `Parent` the span id), and hands runtimes the X-Ray form, as Lambda
//! does (`Lambda-Runtime-Trace-Id`, which runtime clients copy to `_X_AMZN_TRACE_ID`).
//!
//! Each activation's place in its trace is an [`ActivationTrace`]: the spans of an activation
//! (its gateway or queue hop, cold-start phases, handler) are derived from it and the rest of
//! the activation record, with ids derived from the activation's own span id
//! ([`SpanId::derive`]), so nothing but this small value is stored per invocation.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 16-byte trace id; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub u128);

/// An 8-byte span id; never zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub u64);

impl TraceId {
    pub fn random() -> TraceId {
        loop {
            let id = rand::random::<u128>();
            if id != 0 {
                return TraceId(id);
            }
        }
    }

    /// A new trace's id, as X-Ray makes them: the first 4 bytes the start time in seconds
    /// since the epoch (X-Ray's `Root=1-<8 hex time>-…`), the other 12 unique. Of those, the
    /// first 2 are the fraction of the second (in 65,536ths) and the last 10 random (W3C's
    /// random flag asks for the last 7). Ids of traces started one after another are then next
    /// to each other in the store's trace index, so a batch of records adds to a few pages at
    /// its end; with the second alone, a busy second's ids were spread over hundreds of pages
    /// and each record of a batch dirtied one of them (3.7 KB written per record, 1.6 KB
    /// without the index).
    pub fn starting_at(start_us: i64) -> TraceId {
        let start_us = start_us.max(0);
        let seconds = u128::from((start_us / 1_000_000) as u32);
        let fraction = ((start_us % 1_000_000) << 16) / 1_000_000;
        TraceId(seconds << 96 | (fraction as u128) << 80 | (rand::random::<u128>() >> 48) | 1)
    }

    /// 32 lower-case hex digits (W3C), or `None` for anything else (or all zeros).
    pub fn parse(hex: &str) -> Option<TraceId> {
        parse_hex(hex, 32).map(TraceId).filter(|t| t.0 != 0)
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl SpanId {
    pub fn random() -> SpanId {
        loop {
            let id = rand::random::<u64>();
            if id != 0 {
                return SpanId(id);
            }
        }
    }

    /// 16 lower-case hex digits, or `None` for anything else (or all zeros).
    pub fn parse(hex: &str) -> Option<SpanId> {
        parse_hex(hex, 16)
            .map(|v| SpanId(v as u64))
            .filter(|s| s.0 != 0)
    }

    /// The id of this span's `k`-th derived span (an activation's phases): a bijective mix
    /// (splitmix64) of the id and `k`, never zero, distinct for each `k` of one span.
    pub fn derive(self, k: u64) -> SpanId {
        let mut z = self.0 ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        SpanId(if z == 0 { k | 1 } else { z })
    }

    pub fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

fn parse_hex(s: &str, len: usize) -> Option<u128> {
    if s.len() != len || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

macro_rules! hex_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("invalid ", $what)))
            }
        }
    };
}
hex_serde!(TraceId, "trace id");
hex_serde!(SpanId, "span id");

/// A caller's trace context: the trace, the caller's span (the parent of what runs next), and
/// whether the caller samples it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    pub parent: SpanId,
    pub sampled: bool,
    /// W3C `tracestate`, passed on as received.
    pub state: Option<String>,
}

/// The longest `tracestate` kept (W3C: 32 members of at most 256 characters … 512 is what
/// vendors propagate in practice); longer ones are dropped, not cut.
pub const MAX_TRACESTATE: usize = 512;

impl TraceContext {
    /// A W3C `traceparent` (`00-<trace id>-<parent id>-<flags>`; a later version's extra fields
    /// are ignored, as the spec says) with its `tracestate`.
    pub fn from_traceparent(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let mut parts = traceparent.trim().split('-');
        let version = parts.next()?;
        if version.len() != 2 || version == "ff" || parse_hex(version, 2).is_none() {
            return None;
        }
        let trace_id = TraceId::parse(parts.next()?)?;
        let parent = SpanId::parse(parts.next()?)?;
        let flags = parse_hex(parts.next()?, 2)? as u8;
        if version == "00" && parts.next().is_some() {
            return None;
        }
        let state = tracestate
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE)
            .map(str::to_string);
        Some(TraceContext {
            trace_id,
            parent,
            sampled: flags & 1 == 1,
            state,
        })
    }

    /// An AWS X-Ray trace header (`Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=1`, fields
    /// in any order, others ignored). Without a `Parent` there is no caller span to continue.
    pub fn from_xray(header: &str) -> Option<TraceContext> {
        let (mut root, mut parent, mut sampled) = (None, None, true);
        for field in header.split(';') {
            let Some((k, v)) = field.trim().split_once('=') else {
                continue;
            };
            match k {
                "Root" => {
                    let mut p = v.split('-');
                    if p.next() != Some("1") {
                        return None;
                    }
                    let (time, unique) = (p.next()?, p.next()?);
                    if time.len() != 8 || unique.len() != 24 || p.next().is_some() {
                        return None;
                    }
                    root = Some(TraceId::parse(&format!("{time}{unique}"))?);
                }
                "Parent" => parent = Some(SpanId::parse(v)?),
                "Sampled" => sampled = v != "0",
                _ => {}
            }
        }
        Some(TraceContext {
            trace_id: root?,
            parent: parent?,
            sampled,
            state: None,
        })
    }

    /// The context of a request: `traceparent` (with `tracestate`) wins over
    /// `X-Amzn-Trace-Id`; a malformed header is ignored (a new trace starts), as W3C says.
    pub fn from_headers<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<TraceContext> {
        header("traceparent")
            .and_then(|tp| TraceContext::from_traceparent(tp, header("tracestate")))
            .or_else(|| header("x-amzn-trace-id").and_then(TraceContext::from_xray))
    }

    /// The `traceparent` naming `span` of this trace as the parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.parent,
            u8::from(self.sampled)
        )
    }

    /// The X-Ray form: `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>`.
    pub fn xray(&self) -> String {
        use std::fmt::Write;
        let id = self.trace_id.0;
        let mut out = String::with_capacity(70);
        let _ = write!(
            out,
            "Root=1-{:08x}-{:024x};Parent={:016x};Sampled={}",
            (id >> 96) as u32,
            id & ((1u128 << 96) - 1),
            self.parent.0,
            u8::from(self.sampled)
        );
        out
    }

    /// What is stored with a durable event: the `traceparent`, then a space and the
    /// `tracestate` when there is one.
    pub fn encode(&self) -> String {
        match &self.state {
            Some(state) => format!("{} {state}", self.traceparent()),
            None => self.traceparent(),
        }
    }

    /// Reads what [`TraceContext::encode`] wrote.
    pub fn decode(stored: &str) -> Option<TraceContext> {
        let (tp, state) = match stored.split_once(' ') {
            Some((tp, state)) => (tp, Some(state)),
            None => (stored, None),
        };
        TraceContext::from_traceparent(tp, state)
    }
}

/// In JSON, a context is its [`TraceContext::encode`]d text.
impl Serialize for TraceContext {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.encode())
    }
}

impl<'de> Deserialize<'de> for TraceContext {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TraceContext::decode(&s).ok_or_else(|| serde::de::Error::custom("invalid traceparent"))
    }
}

/// How an invocation came: its caller's context, and the hop before it (a durable queue, an
/// HTTP route) whose span Lambent draws.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceOrigin {
    /// The caller's context; `None` starts a new trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<TraceContext>,
    /// When a durable hop (async invocation, topic delivery, …) accepted it (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<i64>,
    /// The HTTP route that received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTrigger>,
    /// The queue, topic or workflow state that delivered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<Hop>,
}

impl TraceOrigin {
    /// An invocation continuing `context` (if any), with no hop of its own.
    pub fn of(context: Option<TraceContext>) -> TraceOrigin {
        TraceOrigin {
            context,
            ..Default::default()
        }
    }
}

/// The HTTP request of a route invocation, for its gateway span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpTrigger {
    pub method: String,
    /// The route's template (`/orders/{id}`).
    pub route: String,
    /// The path as requested.
    pub path: String,
    /// The status the gateway answered with (set by the gateway once it has mapped the
    /// result, before the record is sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A delivery Lambent draws as a span between the sender and the activation it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Hop {
    /// A batch of queue messages handed to a function by an event-source mapping; the
    /// activation continues the first traced message's context, `links` are every traced
    /// message's (OpenTelemetry: one span per batch, a link per message).
    Queue {
        queue: String,
        messages: u32,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        links: Vec<TraceContext>,
    },
    /// A topic's delivery to a subscribed function.
    Topic { topic: String },
    /// A workflow's Task state, run by an execution.
    State {
        state: String,
        /// The execution's ARN.
        execution: String,
        /// When the state's attempt began (ms since the epoch).
        entered_ms: i64,
    },
}

/// Derived-span numbers ([`SpanId::derive`]) of an activation's spans.
pub mod spans {
    pub const GATEWAY: u64 = 1;
    pub const QUEUE: u64 = 2;
    pub const INIT: u64 = 3;
    pub const SANDBOX: u64 = 4;
    pub const RUNTIME: u64 = 5;
    pub const IMPORT: u64 = 6;
    pub const HANDLER: u64 = 7;
    /// A queue or topic delivery, or a workflow state ([`super::Hop`]).
    pub const HOP: u64 = 8;
}

/// An activation's place in its trace (stored with the record; its JSON fields sit beside the
/// activation's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivationTrace {
    pub trace_id: TraceId,
    /// The activation's own span (kind SERVER, named after the function).
    pub span_id: SpanId,
    /// The caller's span, when the trace came with the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    #[serde(default = "yes")]
    pub sampled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// When the activation started and ended, µs since the epoch (its record keeps ms).
    pub start_us: i64,
    #[serde(default)]
    pub end_us: i64,
    /// When a durable hop accepted it (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTrigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop: Option<Hop>,
}

fn yes() -> bool {
    true
}

impl ActivationTrace {
    /// The trace of an activation starting at `start_us`: the caller's, or a new one.
    pub fn start(origin: TraceOrigin, start_us: i64) -> ActivationTrace {
        let (trace_id, parent, sampled, tracestate) = match origin.context {
            Some(c) => (c.trace_id, Some(c.parent), c.sampled, c.state),
            None => (TraceId::starting_at(start_us), None, true, None),
        };
        ActivationTrace {
            trace_id,
            span_id: SpanId::random(),
            parent_span_id: parent,
            sampled,
            tracestate,
            start_us,
            end_us: start_us,
            queued_ms: origin.queued_ms,
            http: origin.http,
            hop: origin.hop,
        }
    }

    /// The context the function's own calls carry: this trace, with the handler's span as
    /// their parent (what the runtime gets as `Lambda-Runtime-Trace-Id`).
    pub fn handler_context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            parent: self.span_id.derive(spans::HANDLER),
            sampled: self.sampled,
            state: self.tracestate.clone(),
        }
    }

    /// The context of work this activation starts itself (a sequence's steps): children of
    /// the activation's span.
    pub fn child_context(&self) -> TraceContext {
        TraceContext {
            trace_id: self.trace_id,
            parent: self.span_id,
            sampled: self.sampled,
            state: self.tracestate.clone(),
        }
    }

    /// Microseconds since the epoch, now.
    pub fn now_us() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips_and_maps_to_xray_as_aws_does() {
        let c = TraceContext::from_traceparent(TP, Some("congo=t61rcWkgMzE")).unwrap();
        assert_eq!(c.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(c.parent.to_string(), "00f067aa0ba902b7");
        assert!(c.sampled);
        assert_eq!(c.traceparent(), TP);
        assert_eq!(
            c.xray(),
            "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
        );
        let x = TraceContext::from_xray(&c.xray()).unwrap();
        assert_eq!(
            (x.trace_id, x.parent, x.sampled),
            (c.trace_id, c.parent, true)
        );
        assert_eq!(TraceContext::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(TraceContext::from_traceparent(bad, None).is_none(), "{bad}");
        }
        // A later version may carry more fields.
        assert!(TraceContext::from_traceparent(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x",
            None
        )
        .is_some_and(|c| !c.sampled));
        for bad in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3f;Parent=53995c3f42cd8ad8",
        ] {
            assert!(TraceContext::from_xray(bad).is_none(), "{bad}");
        }
        let x = TraceContext::from_xray(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0;Lineage=a:1",
        )
        .unwrap();
        assert_eq!(x.trace_id.to_string(), "5759e988bd862e3fe1be46a994272793");
        assert!(!x.sampled);
    }

    #[test]
    fn traceparent_wins_over_the_xray_header() {
        let headers = [
            ("traceparent", TP),
            (
                "x-amzn-trace-id",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
        ];
        let get = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(TraceContext::from_headers(get).unwrap().traceparent(), TP);
        let only_xray = |n: &str| get(n).filter(|_| n != "traceparent");
        assert_eq!(
            TraceContext::from_headers(only_xray)
                .unwrap()
                .parent
                .to_string(),
            "53995c3f42cd8ad8"
        );
        assert!(TraceContext::from_headers(|_| None).is_none());
    }

    #[test]
    fn derived_span_ids_differ_from_each_other_and_the_span() {
        let s = SpanId(0x00f0_67aa_0ba9_02b7);
        let mut ids: Vec<u64> = (1..=7).map(|k| s.derive(k).0).collect();
        ids.push(s.0);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 8);
        assert_eq!(s.derive(3), s.derive(3));
    }

    #[test]
    fn an_activation_continues_its_callers_trace_or_starts_one() {
        let caller = TraceContext::from_traceparent(TP, None).unwrap();
        let t = ActivationTrace::start(
            TraceOrigin {
                context: Some(caller.clone()),
                ..Default::default()
            },
            1,
        );
        assert_eq!(t.trace_id, caller.trace_id);
        assert_eq!(t.parent_span_id, Some(caller.parent));
        assert_ne!(t.span_id, caller.parent);
        assert_eq!(t.handler_context().parent, t.span_id.derive(spans::HANDLER));
        let new = ActivationTrace::start(TraceOrigin::default(), 1_764_000_000_123_456);
        assert_ne!(new.trace_id, caller.trace_id);
        // X-Ray's form: the start time in seconds, then unique digits: the fraction of the
        // second in 65,536ths (0.123456 s is 8,090, 0x1f9a), then random ones. Traces started
        // later sort after.
        assert!(new
            .trace_id
            .to_string()
            .starts_with(&format!("{:08x}1f9a", 1_764_000_000)));
        let later = ActivationTrace::start(TraceOrigin::default(), 1_764_000_000_123_500);
        assert!(later.trace_id.to_string() > new.trace_id.to_string());
        assert_ne!(
            new.trace_id,
            ActivationTrace::start(TraceOrigin::default(), 1_764_000_000_123_456).trace_id
        );
        assert!(new.parent_span_id.is_none() && new.sampled);
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(serde_json::from_value::<ActivationTrace>(json).unwrap(), t);
    }
}
