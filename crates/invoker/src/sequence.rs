//! Sequences (as in OpenWhisk): a function of runtime `sequence` has no code; invoking it runs
//! its components one after the other, each one's output the next one's input. Every step is
//! an invocation of its own (admission, limits, its activation record, metering), recorded
//! with the sequence's activation as its `parent`; the sequence's record lists the steps'
//! activations in order. The first step that does not succeed stops the sequence, which then
//! answers with that step's status, error and body; otherwise with the last step's body.
//! Components are looked up by name when the step starts (the deployment serving the
//! function now), through the [`Lookup`] the server gives the invoker.

use crate::{error_body, Deployment, InvokeRequest, InvokeResult, Invoker};
use bytes::Bytes;
use lambent_core::limits::MAX_SEQUENCE_DEPTH;
use lambent_core::{Activation, ActivationStatus, ActivationTrace};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

/// Finds the deployment serving a function (namespace, name) now.
pub type Lookup = Arc<dyn Fn(&str, &str) -> Option<Arc<Deployment>> + Send + Sync>;

/// What `run_sequence` returns: boxed, as a sequence may name another one.
type Running<'a> = Pin<Box<dyn Future<Output = InvokeResult> + Send + 'a>>;

impl Invoker {
    /// Where the components of sequences are found (set once, by the server, when its registry
    /// exists; until then a sequence's steps fail as missing).
    pub fn set_lookup(&self, lookup: Lookup) {
        if self.inner.lookup.set(lookup).is_err() {
            tracing::warn!("the invoker's lookup of sequence components was already set");
        }
    }

    /// Runs a sequence's components in turn (see the module doc); `parent`: the activation of
    /// the sequence this one is a step of; `depth`: how many sequences enclose it.
    pub(crate) fn run_sequence<'a>(
        &'a self,
        dep: &'a Arc<Deployment>,
        req: InvokeRequest,
        parent: Option<String>,
        depth: usize,
    ) -> Running<'a> {
        Box::pin(async move {
            let started = Instant::now();
            let f = &dep.function;
            let start_us = ActivationTrace::now_us();
            let trace = self
                .inner
                .config
                .tracing
                .then(|| ActivationTrace::start(req.trace.clone(), start_us));
            let id = req
                .request_id
                .clone()
                .unwrap_or_else(lambent_core::new_activation_id);
            let mut record = self.inner.begin_record(dep, id, &req.trigger, start_us);
            record.parent = parent;
            record.trace = trace;
            let total = f.config.sequence.len();
            let mut payload = req.payload.clone();
            for (i, component) in f.config.sequence.iter().enumerate() {
                let step = InvokeRequest {
                    payload,
                    trigger: "sequence".into(),
                    request_id: None,
                    client_context: req.client_context.clone(),
                    cognito_identity: req.cognito_identity.clone(),
                    qualifier: None,
                    may_spill: false,
                    trace: lambent_core::TraceOrigin {
                        context: record.trace.as_ref().map(|t| t.child_context()),
                        ..Default::default()
                    },
                };
                let parent = Some(record.id.clone());
                let lookup = self.inner.lookup.get();
                let found = lookup.and_then(|l| l(&f.namespace, component.as_str()));
                let result = match found {
                    None => Err(StepError::missing(f, i, component.as_str())),
                    Some(d) if d.function.config.is_sequence() => {
                        if depth + 1 >= MAX_SEQUENCE_DEPTH {
                            Err(StepError::too_deep(f, i, component.as_str()))
                        } else {
                            Ok(self.run_sequence(&d, step, parent, depth + 1).await)
                        }
                    }
                    Some(d) => Ok(self.invoke_function(&d, step, parent).await),
                };
                let result = match result {
                    Ok(result) => result,
                    Err(e) => {
                        record.status = ActivationStatus::FunctionError;
                        let body = error_body(e.error_type, &e.message);
                        record.error_type = Some(e.error_type.into());
                        record.error_message = Some(e.message);
                        return self.finish_sequence(record, started, body);
                    }
                };
                let a = &result.activation;
                let _ = writeln!(
                    record.logs,
                    "step {}/{total} {component} {} {} {:.2} ms",
                    i + 1,
                    a.id,
                    a.status,
                    a.duration_us as f64 / 1000.0
                );
                record.steps.push(a.id.clone());
                if a.status != ActivationStatus::Success {
                    record.status = a.status;
                    record.error_type = a.error_type.clone();
                    record.error_message = a.error_message.clone();
                    return self.finish_sequence(record, started, result.body);
                }
                payload = result.body;
            }
            self.finish_sequence(record, started, payload)
        })
    }

    /// Completes and sends a sequence's record. The steps carry the billing (the sequence's
    /// own record bills no time and no memory).
    fn finish_sequence(
        &self,
        mut record: Activation,
        started: Instant,
        body: Bytes,
    ) -> InvokeResult {
        let end_us = ActivationTrace::now_us();
        record.end_ms = end_us / 1000;
        record.duration_us = started.elapsed().as_micros() as u64;
        if let Some(t) = &mut record.trace {
            t.end_us = end_us;
        }
        let record_due = self.inner.send(&record);
        InvokeResult {
            activation: record,
            body,
            record_due,
        }
    }
}

/// Why a step could not start.
struct StepError {
    error_type: &'static str,
    message: String,
}

impl StepError {
    fn missing(sequence: &lambent_core::Function, i: usize, component: &str) -> StepError {
        StepError {
            error_type: "Lambent.SequenceComponentNotFound",
            message: format!(
                "step {} of sequence '{}': function '{component}' does not exist in namespace '{}': deploy it or update the sequence",
                i + 1,
                sequence.name,
                sequence.namespace
            ),
        }
    }

    fn too_deep(sequence: &lambent_core::Function, i: usize, component: &str) -> StepError {
        StepError {
            error_type: "Lambent.SequenceTooDeep",
            message: format!(
                "step {} of sequence '{}': sequence '{component}' nests sequences more than {MAX_SEQUENCE_DEPTH} deep (a cycle?): update the sequences",
                i + 1,
                sequence.name
            ),
        }
    }
}
