//! Activation records: what happened to one invocation, for logs, metering and debugging.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A new activation id (an invocation's request id): a UUID v7, whose leading bits are the
/// time, so that the records written one after another land at the end of the stores' id
/// indexes instead of on a random page each (random v4 ids made every record batch read and
/// rewrite about one index page per record). Its 74 random bits keep ids unguessable.
pub fn new_activation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The fate of one invocation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationStatus {
    #[default]
    Success,
    /// The handler raised, the runtime crashed or answered badly.
    FunctionError,
    Timeout,
    OutOfMemory,
    Throttled,
    /// The runtime or the handler's module failed to initialize.
    InitError,
    /// Lambent itself failed (the function is not at fault).
    PlatformError,
}

impl ActivationStatus {
    pub const ALL: [ActivationStatus; 7] = [
        Self::Success,
        Self::FunctionError,
        Self::Timeout,
        Self::OutOfMemory,
        Self::Throttled,
        Self::InitError,
        Self::PlatformError,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::FunctionError => "function_error",
            Self::Timeout => "timeout",
            Self::OutOfMemory => "out_of_memory",
            Self::Throttled => "throttled",
            Self::InitError => "init_error",
            Self::PlatformError => "platform_error",
        }
    }
}

impl fmt::Display for ActivationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActivationStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status '{s}': use one of {}", all.join(", "))
            })
    }
}

/// Why an invocation needed a new sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColdReason {
    /// No sandbox of this function version ever ran.
    FirstRequest,
    /// All warm sandboxes were busy.
    ScaleUp,
    /// The last warm sandbox was reclaimed after the keep-alive.
    KeepAliveExpired,
    /// A warm sandbox was evicted for memory, or died.
    Evicted,
    /// The code or settings changed since the last warm sandbox.
    CodeUpdated,
}

impl ColdReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ColdReason::FirstRequest => "first_request",
            ColdReason::ScaleUp => "scale_up",
            ColdReason::KeepAliveExpired => "keep_alive_expired",
            ColdReason::Evicted => "evicted",
            ColdReason::CodeUpdated => "code_updated",
        }
    }
}

/// How a cold start's sandbox came to run (mirrors the sandbox crate's `Birth`): the paths a
/// cold start can take, fastest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Birth {
    /// A sandbox made on demand, then `execve`.
    Exec,
    /// A sandbox made ahead of time, then `execve`.
    Ahead,
    /// Forked from a Python zygote into a sandbox made ahead.
    Zygote,
    /// A Node.js stem cell already running in its sandbox, told its function.
    StemCell,
    /// Forked from a package zygote: a Python zygote of the function's own, which has already
    /// imported the function's dependencies.
    PackageZygote,
}

impl Birth {
    pub const ALL: [Birth; 5] = [
        Self::Exec,
        Self::Ahead,
        Self::Zygote,
        Self::StemCell,
        Self::PackageZygote,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Ahead => "ahead",
            Self::Zygote => "zygote",
            Self::StemCell => "stem_cell",
            Self::PackageZygote => "package_zygote",
        }
    }
}

impl fmt::Display for Birth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Birth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown sandbox birth '{s}'"))
    }
}

/// Where a cold start's init time went. The phases follow each other: the sandbox is made, the
/// runtime starts, the runtime imports the handler and asks for work. Their sum is at most the
/// activation's `init_us`, which also counts the platform's own steps around them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitBreakdown {
    pub birth: Birth,
    /// Making the sandbox, until its program runs inside it.
    pub sandbox_us: u64,
    /// The runtime starting, until it asked for work; includes the handler import when the
    /// runtime did not say how long that took (`import_us` is then `None`).
    pub runtime_us: u64,
    /// Importing the handler, as the runtime reported it (Lambent's runtime clients do; others
    /// do not).
    pub import_us: Option<u64>,
}

/// One invocation's record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Activation {
    pub id: String,
    pub namespace: String,
    pub function: String,
    pub revision: u64,
    /// What started it: `api`, `cli`, `http`, `async`, `schedule`, …
    pub trigger: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub duration_us: u64,
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub max_memory_bytes: Option<u64>,
    pub cold: bool,
    pub cold_reason: Option<ColdReason>,
    pub init_us: Option<u64>,
    /// Where the init time went, on cold starts (what is known of it when the init failed).
    #[serde(default)]
    pub init: Option<InitBreakdown>,
    pub status: ActivationStatus,
    pub error_type: Option<String>,
    pub error_message: Option<String>,
    pub logs: String,
    /// The node that ran it (its `--node-id`; `local` on the embedded single node).
    #[serde(default)]
    pub node: String,
    /// The activation of the sequence this one is a step of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// A sequence's record: the activations of its steps, in the order they ran.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// Its place in its trace (`trace_id`, `span_id`, … beside the other fields in JSON);
    /// `None` when tracing is off.
    #[serde(flatten, default)]
    pub trace: Option<crate::ActivationTrace>,
}

impl Activation {
    /// The logs of this invocation as Lambda writes them: a `START` line, the function's own
    /// `output` (ended by a newline), the platform's error line when the platform ended the
    /// invocation (a timeout, an OOM kill, a crash), then `END` and `REPORT` lines made of this
    /// record's fields.
    pub fn framed_logs(&self, output: &str) -> String {
        let mut logs = String::with_capacity(output.len() + 4 * self.id.len() + 160);
        logs += LOG_START;
        logs += &self.id;
        logs += LOG_VERSION;
        logs += output;
        if !logs.ends_with('\n') {
            logs.push('\n');
        }
        self.write_log_tail(&mut logs);
        logs
    }

    /// The function's own output in [`Activation::logs`], when the logs are exactly
    /// [`Activation::framed_logs`] of it (the lines around it say nothing the record's other
    /// fields do not); `None` for logs written any other way.
    pub fn logs_output(&self) -> Option<&str> {
        let rest = self
            .logs
            .strip_prefix(LOG_START)?
            .strip_prefix(self.id.as_str())?
            .strip_prefix(LOG_VERSION)?;
        let mut tail = String::with_capacity(3 * self.id.len() + 160);
        self.write_log_tail(&mut tail);
        let output = rest.strip_suffix(tail.as_str())?;
        (output.is_empty() || output.ends_with('\n')).then_some(output)
    }

    /// Appends what follows the output in [`Activation::framed_logs`]: the platform's error
    /// line (if any), `END` and `REPORT`.
    fn write_log_tail(&self, out: &mut String) {
        use std::fmt::Write;
        let id = &self.id;
        // Writing to a `String` cannot fail.
        if let Some(t) = &self.error_type {
            if self.status != ActivationStatus::Success
                && self.status != ActivationStatus::FunctionError
            {
                let message = self.error_message.as_deref().unwrap_or("");
                let _ = writeln!(out, "{id} {t}: {message}");
            }
        }
        let _ = write!(
            out,
            "END RequestId: {id}\nREPORT RequestId: {id}\tDuration: {:.2} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
            self.duration_us as f64 / 1000.0,
            self.billed_ms,
            self.memory_mb,
            self.max_memory_bytes.map_or(0, |b| b.div_ceil(1024 * 1024)),
        );
        if let Some(init) = self.init_us {
            let _ = write!(out, "\tInit Duration: {:.2} ms", init as f64 / 1000.0);
        }
        out.push('\n');
    }
}

/// The `START` line of [`Activation::framed_logs`], around the request id.
const LOG_START: &str = "START RequestId: ";
const LOG_VERSION: &str = " Version: $LATEST\n";

/// Billed duration: rounded up to the next millisecond, at least 1 ms (Lambda since 2020-12).
pub fn billed_ms(duration_us: u64) -> u64 {
    duration_us.div_ceil(1000).max(1)
}

/// GB-seconds for a billed duration at a memory size: ms / 1000 × MB / 1024.
pub fn gb_seconds(billed_ms: u64, memory_mb: u32) -> f64 {
    billed_ms as f64 / 1000.0 * memory_mb as f64 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Activation {
        Activation {
            id: id.into(),
            duration_us: 1234,
            billed_ms: 2,
            memory_mb: 128,
            max_memory_bytes: Some(3 << 20),
            status: ActivationStatus::Success,
            ..Default::default()
        }
    }

    #[test]
    fn framed_logs_are_lambdas_lines_around_the_output() {
        let mut a = report("r1");
        a.init_us = Some(5_500);
        assert_eq!(
            a.framed_logs("hi"),
            "START RequestId: r1 Version: $LATEST\nhi\nEND RequestId: r1\n\
             REPORT RequestId: r1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\t\
             Max Memory Used: 3 MB\tInit Duration: 5.50 ms\n"
        );
        a.status = ActivationStatus::Timeout;
        a.error_type = Some("Sandbox.Timedout".into());
        a.error_message = Some("Task timed out after 3.00 seconds".into());
        assert!(a
            .framed_logs("")
            .contains("$LATEST\nr1 Sandbox.Timedout: Task timed out after 3.00 seconds\nEND"));
    }

    #[test]
    fn the_output_is_found_only_in_logs_framed_from_this_record() {
        let mut a = report("r2");
        for output in [
            "",
            "one line\n",
            "two\nlines\n",
            "START RequestId: r2 Version: $LATEST\n",
        ] {
            a.logs = a.framed_logs(output);
            assert_eq!(a.logs_output(), Some(output));
        }
        a.logs = a.framed_logs("no newline");
        assert_eq!(a.logs_output(), Some("no newline\n"));
        assert_eq!(a.framed_logs("no newline\n"), a.logs);
        let framed = a.framed_logs("x\n");
        let mut other = a.clone();
        other.duration_us += 10_000;
        other.logs = framed.clone();
        assert_eq!(other.logs_output(), None, "a REPORT line of other figures");
        other.logs = "x\n".into();
        assert_eq!(other.logs_output(), None);
        other.logs = framed.replacen("x\n", "x", 1);
        assert_eq!(other.logs_output(), None);
    }

    #[test]
    fn activation_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<String> = (0..10_000).map(|_| new_activation_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(sorted, ids, "ids made later sort later, as text");
        sorted.dedup();
        assert_eq!(sorted.len(), ids.len(), "no id twice");
        let uuid = uuid::Uuid::parse_str(&ids[0]).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
    }

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(0), 1);
        assert_eq!(billed_ms(1000), 1);
        assert_eq!(billed_ms(1001), 2);
        assert_eq!(billed_ms(201_670), 202);
        assert!((gb_seconds(1000, 1024) - 1.0).abs() < 1e-12);
        assert!((gb_seconds(202, 2048) - 0.404).abs() < 1e-12);
    }

    #[test]
    fn births_round_trip_as_their_json_names() {
        for b in Birth::ALL {
            assert_eq!(b.as_str().parse::<Birth>().unwrap(), b);
            assert_eq!(serde_json::to_value(b).unwrap(), b.as_str());
        }
        assert!("fork".parse::<Birth>().is_err());
    }

    #[test]
    fn a_trace_sits_beside_the_record_fields_in_json() {
        let mut a = Activation {
            id: "a".into(),
            ..Default::default()
        };
        let plain = serde_json::to_value(&a).unwrap();
        assert!(plain.get("trace_id").is_none());
        assert_eq!(serde_json::from_value::<Activation>(plain).unwrap(), a);
        a.trace = Some(crate::ActivationTrace::start(Default::default(), 5));
        let json = serde_json::to_value(&a).unwrap();
        let t = a.trace.as_ref().unwrap();
        assert_eq!(json["trace_id"], t.trace_id.to_string());
        assert_eq!(json["span_id"], t.span_id.to_string());
        assert_eq!(serde_json::from_value::<Activation>(json).unwrap(), a);
    }

    #[test]
    fn statuses_round_trip() {
        for s in ActivationStatus::ALL {
            assert_eq!(s.as_str().parse::<ActivationStatus>().unwrap(), s);
        }
        assert!("nope"
            .parse::<ActivationStatus>()
            .unwrap_err()
            .contains("success"));
    }
}
