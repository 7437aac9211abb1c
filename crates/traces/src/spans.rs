//! The spans of one activation, derived from its record alone (nothing is measured for them on
//! the invoke path): its gateway span when an HTTP route received it, its queue wait when a
//! durable hop carried it, the activation itself (kind SERVER, named after the function, with
//! the OpenTelemetry FaaS attributes), its cold start's phases (sandbox, runtime, import) and
//! its handler. Phase spans are placed back from the activation's end (the handler ends with
//! it, the init phases end where the handler starts), so they nest exactly. A delivery
//! ([`Hop`]: a mapping's batch of queue messages, a topic's delivery, a workflow's Task
//! state) is a span of its own between the sender and the activation, from when the message
//! was sent (or the state entered) to the activation's end.

use lambent_core::trace::spans;
use lambent_core::{Activation, ActivationStatus, Hop, SpanId, TraceId};
use serde::Serialize;
use serde_json::Value;

/// OpenTelemetry span kinds (the OTLP enum's numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Consumer = 5,
}

/// One span, ready to show or export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    #[serde(skip)]
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_unix_nano: u64,
    pub end_unix_nano: u64,
    /// Flat attributes: strings, booleans and integers.
    pub attributes: Attributes,
    /// The activation it belongs to.
    pub activation_id: String,
    /// Set when the activation failed: its error type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Other spans this one is linked to (a batch's messages).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    #[serde(skip)]
    pub sampled: bool,
}

/// A span's attributes (strings, booleans and integers) under their OpenTelemetry names, in
/// the order they were set (each once); in JSON an object with its keys sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes(Vec<(&'static str, Value)>);

impl Attributes {
    /// Sets `key`, which is not set yet.
    pub fn insert(&mut self, key: &'static str, value: Value) {
        debug_assert!(!self.contains_key(key), "{key} set twice");
        self.0.push((key, value));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `attributes["key"]`: the value, or `null` when it is not set (as a JSON object reads).
impl std::ops::Index<&str> for Attributes {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        const NULL: &Value = &Value::Null;
        self.get(key).unwrap_or(NULL)
    }
}

impl IntoIterator for Attributes {
    type Item = (&'static str, Value);
    type IntoIter = std::vec::IntoIter<(&'static str, Value)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut sorted: Vec<&(&'static str, Value)> = self.0.iter().collect();
        sorted.sort_unstable_by_key(|(k, _)| *k);
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for (k, v) in sorted {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A link to a span of another (or the same) trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// Where spans come from: the platform's identity in `cloud.*`.
#[derive(Debug, Clone)]
pub struct Platform {
    /// `cloud.provider` (`lambent`).
    pub provider: String,
    /// `cloud.region`.
    pub region: String,
}

impl Platform {
    pub fn new(region: &str) -> Platform {
        Platform {
            provider: "lambent".into(),
            region: region.to_string(),
        }
    }
}

/// OpenTelemetry's `faas.trigger` for Lambent's trigger names.
pub fn faas_trigger(trigger: &str) -> &'static str {
    match trigger {
        "http" => "http",
        "sqs" | "sns" => "pubsub",
        "schedule" => "timer",
        "s3" | "dynamodb" => "datasource",
        _ => "other",
    }
}

/// How many spans [`activation_spans`] derives from `a` (without deriving them).
pub fn span_count(a: &Activation) -> usize {
    let Some(t) = &a.trace else { return 0 };
    let init = a.init.map_or(0, |i| 3 + usize::from(i.import_us.is_some()));
    let handler = usize::from(a.status != ActivationStatus::Throttled);
    let hop = usize::from(t.hop.is_some() || t.queued_ms.is_some());
    1 + usize::from(t.http.is_some()) + hop + init + handler
}

fn us_to_ns(us: i64) -> u64 {
    (us.max(0) as u64).saturating_mul(1000)
}

/// The span of a delivery: `base` (ids, times) named and described after `hop`.
fn hop_span(hop: &Hop, mut base: Span) -> Span {
    let attrs = &mut base.attributes;
    let mut set = |k: &'static str, v: Value| attrs.insert(k, v);
    match hop {
        Hop::Queue {
            queue,
            messages,
            links,
        } => {
            base.name = format!("process {queue}");
            set("messaging.system", "aws_sqs".into());
            set("messaging.destination.name", queue.clone().into());
            set("messaging.operation.type", "process".into());
            set("messaging.batch.message_count", (*messages).into());
            base.links = links
                .iter()
                .map(|c| Link {
                    trace_id: c.trace_id,
                    span_id: c.parent,
                })
                .collect();
        }
        Hop::Topic { topic } => {
            base.name = format!("process {topic}");
            set("messaging.system", "aws_sns".into());
            set("messaging.destination.name", topic.clone().into());
            set("messaging.operation.type", "process".into());
        }
        Hop::State {
            state,
            execution,
            entered_ms,
        } => {
            base.name = state.clone();
            base.kind = SpanKind::Internal;
            base.start_unix_nano =
                us_to_ns(entered_ms.saturating_mul(1000)).min(base.start_unix_nano);
            set("lambent.workflow.state", state.clone().into());
            set("lambent.workflow.execution", execution.clone().into());
        }
    }
    base
}

/// The spans of one activation (none when it carries no trace).
pub fn activation_spans(a: &Activation, platform: &Platform) -> Vec<Span> {
    let Some(t) = &a.trace else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(span_count(a));
    let start = t.start_us;
    let end = t.end_us.max(start);
    let error = (a.status != ActivationStatus::Success)
        .then(|| a.error_type.clone().unwrap_or_else(|| a.status.to_string()));
    let span = |id: SpanId, parent, name: String, kind, from: i64, to: i64| Span {
        trace_id: t.trace_id,
        span_id: id,
        parent_span_id: parent,
        name,
        kind,
        start_unix_nano: us_to_ns(from),
        end_unix_nano: us_to_ns(to.max(from)),
        attributes: Attributes::default(),
        activation_id: a.id.clone(),
        error: None,
        links: Vec::new(),
        sampled: t.sampled,
    };
    // The hops before the activation, each the parent of what follows.
    let mut parent = t.parent_span_id;
    if let Some(http) = &t.http {
        let id = t.span_id.derive(spans::GATEWAY);
        let mut s = span(
            id,
            parent,
            format!("{} {}", http.method, http.route),
            SpanKind::Server,
            start,
            end,
        );
        let attrs = &mut s.attributes;
        attrs.insert("http.request.method", http.method.clone().into());
        attrs.insert("http.route", http.route.clone().into());
        attrs.insert("url.path", http.path.clone().into());
        match http.status {
            Some(status) => {
                attrs.insert("http.response.status_code", status.into());
                // OpenTelemetry's rule for HTTP servers: only a 5xx is the server's error.
                s.error = (status >= 500).then(|| status.to_string());
            }
            None => s.error.clone_from(&error),
        }
        out.push(s);
        parent = Some(id);
    }
    let queued_us = t.queued_ms.map(|ms| ms.saturating_mul(1000).min(start));
    if let Some(hop) = &t.hop {
        let id = t.span_id.derive(spans::HOP);
        out.push(hop_span(
            hop,
            span(
                id,
                parent,
                String::new(),
                SpanKind::Consumer,
                queued_us.unwrap_or(start),
                end,
            ),
        ));
        parent = Some(id);
    } else if let Some(queued_us) = queued_us {
        let id = t.span_id.derive(spans::QUEUE);
        let mut s = span(
            id,
            parent,
            "queue wait".into(),
            SpanKind::Consumer,
            queued_us,
            start,
        );
        s.attributes
            .insert("lambent.trigger", a.trigger.clone().into());
        out.push(s);
        parent = Some(id);
    }

    let mut server = span(
        t.span_id,
        parent,
        a.function.clone(),
        SpanKind::Server,
        start,
        end,
    );
    let attrs = &mut server.attributes;
    let mut set = |k: &'static str, v: Value| attrs.insert(k, v);
    set("faas.trigger", faas_trigger(&a.trigger).into());
    set("faas.invocation_id", a.id.clone().into());
    set("faas.coldstart", a.cold.into());
    set("faas.name", a.function.clone().into());
    set("faas.version", a.revision.to_string().into());
    set(
        "faas.max_memory",
        (u64::from(a.memory_mb) * 1024 * 1024).into(),
    );
    set("cloud.provider", platform.provider.clone().into());
    set("cloud.region", platform.region.clone().into());
    set("cloud.account.id", a.namespace.clone().into());
    set(
        "cloud.resource_id",
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            platform.region, a.namespace, a.function
        )
        .into(),
    );
    set("lambent.trigger", a.trigger.clone().into());
    set("lambent.status", a.status.as_str().into());
    set("lambent.node", a.node.clone().into());
    if let Some(bytes) = a.max_memory_bytes {
        set("lambent.max_memory_used", bytes.into());
    }
    if let Some(reason) = a.cold_reason {
        set("lambent.cold_reason", reason.as_str().into());
    }
    server.error = error;
    out.push(server);

    if a.status == ActivationStatus::Throttled {
        return out;
    }
    let handler_start = (end - a.duration_us as i64).max(start);
    if let Some(init_us) = a.init_us {
        let init_start = (handler_start - init_us as i64).max(start);
        let mut s = span(
            t.span_id.derive(spans::INIT),
            Some(t.span_id),
            "init".into(),
            SpanKind::Internal,
            init_start,
            handler_start,
        );
        if let Some(init) = a.init {
            s.attributes
                .insert("lambent.birth", init.birth.as_str().into());
            let phases = [
                (spans::SANDBOX, "sandbox", Some(init.sandbox_us)),
                (spans::RUNTIME, "runtime", Some(init.runtime_us)),
                (spans::IMPORT, "import", init.import_us),
            ];
            let mut at = init_start;
            for (k, name, us) in phases {
                let Some(us) = us else { continue };
                let to = (at + us as i64).min(handler_start);
                out.push(span(
                    t.span_id.derive(k),
                    Some(s.span_id),
                    name.into(),
                    SpanKind::Internal,
                    at,
                    to,
                ));
                at = to;
            }
        }
        out.push(s);
    }
    let mut handler = span(
        t.span_id.derive(spans::HANDLER),
        Some(t.span_id),
        "handler".into(),
        SpanKind::Internal,
        handler_start,
        end,
    );
    handler.error = (a.status != ActivationStatus::Success)
        .then(|| a.error_type.clone().unwrap_or_else(|| a.status.to_string()));
    out.push(handler);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lambent_core::{
        ActivationTrace, Birth, HttpTrigger, InitBreakdown, TraceContext, TraceOrigin,
    };

    fn traced(origin: TraceOrigin) -> Activation {
        let mut trace = ActivationTrace::start(origin, 1_000_000_000);
        trace.end_us = trace.start_us + 50_000;
        Activation {
            id: "act".into(),
            namespace: "ns".into(),
            function: "f".into(),
            revision: 3,
            trigger: "http".into(),
            memory_mb: 128,
            duration_us: 10_000,
            cold: true,
            init_us: Some(30_000),
            init: Some(InitBreakdown {
                birth: Birth::Zygote,
                sandbox_us: 5_000,
                runtime_us: 10_000,
                import_us: Some(12_000),
            }),
            trace: Some(trace),
            ..Default::default()
        }
    }

    fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
        spans.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn a_cold_route_invocation_has_its_gateway_phases_and_handler_nested() {
        let caller = TraceContext::from_xray(
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
        )
        .unwrap();
        let a = traced(TraceOrigin {
            context: Some(caller.clone()),
            http: Some(HttpTrigger {
                method: "GET".into(),
                route: "/items/{id}".into(),
                path: "/items/7".into(),
                status: Some(200),
            }),
            ..Default::default()
        });
        let spans = activation_spans(&a, &Platform::new("us-east-1"));
        assert_eq!(spans.len(), span_count(&a));
        assert!(spans.iter().all(|s| s.trace_id == caller.trace_id));
        let gateway = by_name(&spans, "GET /items/{id}");
        assert_eq!(gateway.parent_span_id, Some(caller.parent));
        assert_eq!(gateway.attributes["http.response.status_code"], 200);
        assert_eq!(gateway.error, None);
        let server = by_name(&spans, "f");
        assert_eq!(server.parent_span_id, Some(gateway.span_id));
        assert_eq!(server.attributes["faas.trigger"], "http");
        assert_eq!(server.attributes["faas.coldstart"], true);
        assert_eq!(server.attributes["faas.max_memory"], 134_217_728);
        assert_eq!(server.attributes["cloud.account.id"], "ns");
        assert_eq!(server.attributes["faas.invocation_id"], "act");
        let init = by_name(&spans, "init");
        let handler = by_name(&spans, "handler");
        assert_eq!(init.parent_span_id, Some(server.span_id));
        assert_eq!(handler.parent_span_id, Some(server.span_id));
        assert_eq!(handler.end_unix_nano, server.end_unix_nano);
        assert_eq!(handler.end_unix_nano - handler.start_unix_nano, 10_000_000);
        assert_eq!(init.end_unix_nano, handler.start_unix_nano);
        let (sandbox, runtime, import) = (
            by_name(&spans, "sandbox"),
            by_name(&spans, "runtime"),
            by_name(&spans, "import"),
        );
        for phase in [sandbox, runtime, import] {
            assert_eq!(phase.parent_span_id, Some(init.span_id));
        }
        assert_eq!(sandbox.start_unix_nano, init.start_unix_nano);
        assert_eq!(runtime.start_unix_nano, sandbox.end_unix_nano);
        assert_eq!(import.end_unix_nano - import.start_unix_nano, 12_000_000);
        // The runtime's own calls are children of the handler span.
        assert_eq!(
            a.trace.as_ref().unwrap().handler_context().parent,
            handler.span_id
        );
    }

    #[test]
    fn an_async_warm_invocation_waits_in_the_queue_and_has_no_init() {
        let mut a = traced(TraceOrigin {
            queued_ms: Some(999_990),
            ..Default::default()
        });
        (a.cold, a.init_us, a.init, a.trigger) = (false, None, None, "async".into());
        let spans = activation_spans(&a, &Platform::new("r"));
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["queue wait", "f", "handler"]);
        assert_eq!(spans[0].parent_span_id, None);
        assert_eq!(
            spans[0].end_unix_nano - spans[0].start_unix_nano,
            10_000_000
        );
        assert_eq!(spans[1].parent_span_id, Some(spans[0].span_id));
        assert_eq!(spans[1].attributes["faas.trigger"], "other");
        assert_eq!(span_count(&a), 3);
        a.trace = None;
        assert!(activation_spans(&a, &Platform::new("r")).is_empty());
    }

    fn gateway_of(a: &Activation) -> Span {
        let spans = activation_spans(a, &Platform::new("r"));
        spans.into_iter().find(|s| s.name == "GET /r").unwrap()
    }

    #[test]
    fn only_a_5xx_makes_the_gateway_span_an_error() {
        let route = |status| {
            traced(TraceOrigin {
                http: Some(HttpTrigger {
                    method: "GET".into(),
                    route: "/r".into(),
                    path: "/r".into(),
                    status,
                }),
                ..Default::default()
            })
        };
        let mut failed = route(Some(502));
        failed.status = ActivationStatus::FunctionError;
        let gateway = gateway_of(&failed);
        assert_eq!(gateway.attributes["http.response.status_code"], 502);
        assert_eq!(gateway.error.as_deref(), Some("502"));
        assert_eq!(gateway_of(&route(Some(404))).error, None);
        // A record whose status never came (written before there was one) says what failed.
        let mut old = route(None);
        (old.status, old.error_type) = (ActivationStatus::FunctionError, Some("E".into()));
        let gateway = gateway_of(&old);
        assert!(!gateway.attributes.contains_key("http.response.status_code"));
        assert_eq!(gateway.error.as_deref(), Some("E"));
    }

    #[test]
    fn a_batch_is_one_delivery_span_linked_to_each_sender() {
        let first = TraceContext::from_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        )
        .unwrap();
        let other = TraceContext::from_traceparent(
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            None,
        )
        .unwrap();
        let mut a = traced(TraceOrigin {
            context: Some(first.clone()),
            queued_ms: Some(999_000),
            hop: Some(Hop::Queue {
                queue: "orders".into(),
                messages: 3,
                links: vec![first.clone(), other.clone()],
            }),
            ..Default::default()
        });
        (a.cold, a.init_us, a.init, a.trigger) = (false, None, None, "sqs".into());
        let spans = activation_spans(&a, &Platform::new("r"));
        assert_eq!(spans.len(), span_count(&a));
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["process orders", "f", "handler"]);
        let (batch, server) = (&spans[0], &spans[1]);
        assert_eq!(batch.parent_span_id, Some(first.parent));
        assert_eq!(batch.kind, SpanKind::Consumer);
        assert_eq!(batch.start_unix_nano, 999_000_000_000);
        assert_eq!(batch.end_unix_nano, server.end_unix_nano);
        assert_eq!(batch.attributes["messaging.system"], "aws_sqs");
        assert_eq!(batch.attributes["messaging.batch.message_count"], 3);
        let linked: Vec<(TraceId, SpanId)> = batch
            .links
            .iter()
            .map(|l| (l.trace_id, l.span_id))
            .collect();
        assert_eq!(
            linked,
            [
                (first.trace_id, first.parent),
                (other.trace_id, other.parent)
            ]
        );
        assert_eq!(server.parent_span_id, Some(batch.span_id));
        assert_eq!(server.attributes["faas.trigger"], "pubsub");
    }

    #[test]
    fn a_workflow_state_is_a_span_named_after_it_around_its_task() {
        let mut a = traced(TraceOrigin {
            hop: Some(Hop::State {
                state: "Charge".into(),
                execution: "arn:aws:states:r:ns:execution:m:e1".into(),
                entered_ms: 999_990,
            }),
            ..Default::default()
        });
        a.trigger = "workflow".into();
        let spans = activation_spans(&a, &Platform::new("r"));
        assert_eq!(spans.len(), span_count(&a));
        let state = by_name(&spans, "Charge");
        assert_eq!(state.kind, SpanKind::Internal);
        assert_eq!(state.parent_span_id, None);
        assert_eq!(state.start_unix_nano, 999_990_000_000);
        assert_eq!(state.attributes["lambent.workflow.state"], "Charge");
        assert_eq!(by_name(&spans, "f").parent_span_id, Some(state.span_id));
        // A topic's delivery, likewise, under its own name.
        a.trace.as_mut().unwrap().hop = Some(Hop::Topic {
            topic: "news".into(),
        });
        let spans = activation_spans(&a, &Platform::new("r"));
        assert_eq!(
            by_name(&spans, "process news").attributes["messaging.system"],
            "aws_sns"
        );
    }
}
