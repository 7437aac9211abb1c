//! Apps written for other tools — a Serverless Framework `serverless.yml` or an AWS SAM
//! `template.yaml` — read into one [`Plan`]: the functions, routes, queues, topics,
//! subscriptions, schedules, queue and stream mappings, tables, buckets with their
//! notifications and workflows (state machines) to create, each item skipped with why, and
//! notes where a setting maps onto Lambent's nearest equivalent.
//!
//! Pure: reading the app's folder is the only I/O; nothing here talks to a server. Values
//! that only the server knows (its URL, region and namespace, which stands for the AWS
//! account) stay in the plan as `${lambent:…}` placeholders that [`Platform::render`] fills in
//! when the plan is applied (`commands::deploy`); `--dry-run` prints them as they are.
//! Everything refused is refused here, before anything is deployed.

mod cfn;
mod events;
mod sam;
mod serverless;

use lambent_core::route::PayloadFormat;
use lambent_core::AsyncSpec;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which tool's file an app folder holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Serverless,
    Sam,
}

/// The file of another tool in `dir`, if any (`lambent.yaml` is read elsewhere).
pub fn detect(dir: &Path) -> Option<(Format, PathBuf)> {
    let candidates = [
        ("serverless.yml", Format::Serverless),
        ("serverless.yaml", Format::Serverless),
        ("template.yaml", Format::Sam),
        ("template.yml", Format::Sam),
    ];
    candidates
        .into_iter()
        .map(|(f, format)| (format, dir.join(f)))
        .find(|(_, p)| p.is_file())
}

/// What the user passes besides the folder.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--stage` (serverless `${opt:stage}`).
    pub stage: Option<String>,
    /// `--parameter K=V` (SAM `Parameters`).
    pub parameters: BTreeMap<String, String>,
    /// The environment `${env:…}` reads.
    pub env: BTreeMap<String, String>,
}

/// Reads the app in `file` (a `serverless.yml` or a SAM template) into a plan.
pub fn plan(format: Format, file: &Path, options: &Options) -> Result<Plan, AppError> {
    let text = std::fs::read_to_string(file).map_err(|e| AppError::Io {
        path: file.display().to_string(),
        message: e.to_string(),
    })?;
    let dir = file.parent().unwrap_or(Path::new("."));
    let file_name = file
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    plan_text(format, dir, &file_name, &text, options)
}

/// [`plan`] of an app file's text, read from `dir` (its folder) under the name `file_name`.
#[doc(hidden)]
pub fn plan_text(
    format: Format,
    dir: &Path,
    file_name: &str,
    text: &str,
    options: &Options,
) -> Result<Plan, AppError> {
    let root = parse_yaml(file_name, text)?;
    match format {
        Format::Serverless => serverless::plan(dir, root, options),
        Format::Sam => {
            let stack = dir
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "app".into());
            sam::plan(dir, &stack, root, options)
        }
    }
}

/// Parses YAML, keeping `!Tag` nodes; a syntax error says where.
fn parse_yaml(file: &str, text: &str) -> Result<serde_yaml::Value, AppError> {
    serde_yaml::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or_default();
        AppError::Yaml {
            file: file.to_string(),
            line,
            column,
            message: e.to_string(),
        }
    })
}

/// Why an app cannot be deployed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("{file}:{line}:{column}: malformed YAML: {message}")]
    Yaml {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{at}: {property} is not supported: {reason}")]
    Unsupported {
        at: String,
        property: String,
        reason: String,
    },
    #[error(
        "{at}: refers to '{name}', which is neither a resource nor a parameter of the template"
    )]
    MissingReference { at: String, name: String },
    #[error("parameter '{0}' has no Default: give it with --parameter {0}=VALUE")]
    MissingParameter(String),
    #[error("the references form a cycle: {0}")]
    Cycle(String),
    #[error("{at}: the handler '{handler}' needs the file {file}, which does not exist")]
    MissingHandler {
        at: String,
        handler: String,
        file: String,
    },
    #[error("{at}: the path '{path}' leads outside the app's folder")]
    Escapes { at: String, path: String },
    #[error("{at}: {reason}")]
    Invalid { at: String, reason: String },
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> AppError {
    AppError::Invalid {
        at: at.into(),
        reason: reason.into(),
    }
}

fn unsupported(at: impl Into<String>, property: impl Into<String>, reason: &str) -> AppError {
    AppError::Unsupported {
        at: at.into(),
        property: property.into(),
        reason: reason.into(),
    }
}

/// Everything one app deploys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub functions: Vec<PlanFunction>,
    pub routes: Vec<PlanRoute>,
    pub queues: Vec<PlanQueue>,
    pub topics: Vec<String>,
    pub subscriptions: Vec<PlanSubscription>,
    pub schedules: Vec<PlanSchedule>,
    pub mappings: Vec<PlanMapping>,
    pub tables: Vec<PlanTable>,
    pub stream_mappings: Vec<PlanStreamMapping>,
    pub buckets: Vec<PlanBucket>,
    pub notifications: Vec<PlanNotification>,
    pub workflows: Vec<PlanWorkflow>,
    /// (item, why).
    pub skipped: Vec<(String, String)>,
    /// (item, how it maps onto Lambent): applied, but not exactly as on AWS.
    pub notes: Vec<(String, String)>,
    /// SAM `Outputs`, evaluated (placeholders filled in at apply).
    pub outputs: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanFunction {
    /// The Lambent (and AWS) function name.
    pub name: String,
    /// The folder packed as its code.
    pub code: PathBuf,
    /// `InlineCode`: (file name, source), packed instead of a folder.
    pub inline: Option<(String, String)>,
    pub runtime: String,
    pub handler: String,
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub env: BTreeMap<String, String>,
    pub description: Option<String>,
    pub reserved_concurrency: Option<u32>,
    pub provisioned_concurrency: Option<u32>,
    /// Retries, event age and destinations of asynchronous invocations.
    pub async_invoke: Option<AsyncSpec>,
    /// After deploying, publish a version and point this alias at it.
    pub alias: Option<String>,
    /// Serverless `package.patterns`: globs, `!` excluding, applied in order to the folder.
    pub patterns: Vec<String>,
}

/// What a route, schedule or bucket notification sets off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Function(String),
    Workflow(String),
    Queue(String),
    Topic(String),
}

impl Target {
    /// The name of what it sets off.
    pub fn name(&self) -> &str {
        match self {
            Target::Function(n) | Target::Workflow(n) | Target::Queue(n) | Target::Topic(n) => n,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Function(n) => write!(f, "{n}"),
            Target::Workflow(n) => write!(f, "workflow {n}"),
            Target::Queue(n) => write!(f, "queue {n}"),
            Target::Topic(n) => write!(f, "topic {n}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRoute {
    pub method: String,
    pub path: String,
    pub target: Target,
    pub payload: PayloadFormat,
    pub cors: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanQueue {
    pub name: String,
    pub visibility_timeout: Option<u32>,
    pub delay: Option<u32>,
    pub dead_letter_queue: Option<String>,
    pub max_receive_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSubscription {
    pub topic: String,
    /// `function` or `queue`.
    pub kind: &'static str,
    pub target: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSchedule {
    pub name: String,
    pub target: Target,
    /// Lambent's form: `cron` with seconds first, or `rate`.
    pub cron: Option<String>,
    pub rate: Option<String>,
    pub tz: Option<String>,
    /// Sent on each fire instead of EventBridge's scheduled event.
    pub input: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanMapping {
    pub queue: String,
    pub function: String,
    pub batch_size: Option<u32>,
    pub batching_window_ms: Option<u64>,
    pub report_batch_item_failures: bool,
}

/// A DynamoDB table: CreateTable's input (without `TableName`), and the attribute whose
/// time stamps expire items.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanTable {
    pub name: String,
    pub definition: serde_json::Value,
    pub ttl_attribute: Option<String>,
}

impl Eq for PlanTable {}

/// A table's stream read by a function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanStreamMapping {
    pub table: String,
    pub function: String,
    pub batch_size: Option<u32>,
    pub batching_window_ms: Option<u64>,
    /// `TRIM_HORIZON` or `LATEST`.
    pub starting_position: Option<String>,
    pub max_retries: Option<i64>,
    pub max_record_age_s: Option<i64>,
    pub bisect_on_error: bool,
    pub report_batch_item_failures: bool,
    /// A queue or topic ARN (or its placeholder) for batches given up on.
    pub on_failure: Option<String>,
}

/// A bucket; `create: false` for one the app only attaches notifications to (`existing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanBucket {
    pub name: String,
    pub create: bool,
}

/// Object changes of a bucket sent to a function, workflow, queue or topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNotification {
    pub bucket: String,
    pub target: Target,
    pub events: Vec<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}

/// A state machine: its definition (placeholders filled in at apply) and type.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanWorkflow {
    pub name: String,
    pub definition: serde_json::Value,
    /// `STANDARD` or `EXPRESS`.
    pub kind: Option<String>,
}

impl Eq for PlanWorkflow {}

/// What only the server knows, filled into the plan's placeholders.
#[derive(Debug, Clone, Default)]
pub struct Platform {
    /// The server's URL, without a trailing `/`.
    pub endpoint: String,
    pub region: String,
    /// The namespace, in the role of the AWS account.
    pub account: String,
    /// Table → the ARN of its stream (known once the table exists).
    pub streams: BTreeMap<String, String>,
}

/// Placeholder of a queue's URL.
pub fn queue_url(name: &str) -> String {
    format!("${{lambent:queue-url:{name}}}")
}
/// Placeholder of a queue's ARN.
pub fn queue_arn(name: &str) -> String {
    format!("${{lambent:queue-arn:{name}}}")
}
/// Placeholder of a topic's ARN.
pub fn topic_arn(name: &str) -> String {
    format!("${{lambent:topic-arn:{name}}}")
}
/// Placeholder of a function's ARN.
pub fn function_arn(name: &str) -> String {
    format!("${{lambent:function-arn:{name}}}")
}
/// Placeholder of a table's ARN.
pub fn table_arn(name: &str) -> String {
    format!("${{lambent:table-arn:{name}}}")
}
/// Placeholder of the ARN of a table's stream.
pub fn stream_arn(name: &str) -> String {
    format!("${{lambent:stream-arn:{name}}}")
}
/// Placeholder of a workflow's (state machine's) ARN.
pub fn workflow_arn(name: &str) -> String {
    format!("${{lambent:workflow-arn:{name}}}")
}
pub const REGION: &str = "${lambent:region}";
pub const ACCOUNT: &str = "${lambent:account}";
/// Placeholder of the URL routes are served under.
pub const API_URL: &str = "${lambent:api-url}";

/// The queue or topic name an ARN (or an ARN placeholder) names.
pub fn name_from_arn(arn: &str) -> Option<String> {
    for prefix in ["${lambent:queue-arn:", "${lambent:topic-arn:"] {
        if let Some(rest) = arn.strip_prefix(prefix) {
            return rest.strip_suffix('}').map(str::to_string);
        }
    }
    let parts: Vec<&str> = arn.split(':').collect();
    (parts.len() == 6 && parts[0] == "arn" && matches!(parts[2], "sqs" | "sns"))
        .then(|| parts[5].to_string())
}

/// The table a table or stream ARN (or their placeholders) names.
pub fn table_from_arn(arn: &str) -> Option<String> {
    for prefix in ["${lambent:stream-arn:", "${lambent:table-arn:"] {
        if let Some(rest) = arn.strip_prefix(prefix) {
            return rest.strip_suffix('}').map(str::to_string);
        }
    }
    let rest = arn.strip_prefix("arn:aws:dynamodb:")?;
    let table = rest.split_once(":table/")?.1;
    Some(table.split('/').next()?.to_string())
}

impl Platform {
    /// `text` with every placeholder replaced.
    pub fn render(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find("${lambent:") {
            out.push_str(&rest[..at]);
            let Some(end) = rest[at..].find('}') else {
                break;
            };
            let inner = &rest[at + "${lambent:".len()..at + end];
            let (kind, name) = inner.split_once(':').unwrap_or((inner, ""));
            let (region, account) = (&self.region, &self.account);
            let value = match kind {
                "queue-url" => format!("{}/{account}/{name}", self.endpoint),
                "queue-arn" => format!("arn:aws:sqs:{region}:{account}:{name}"),
                "topic-arn" => format!("arn:aws:sns:{region}:{account}:{name}"),
                "function-arn" => format!("arn:aws:lambda:{region}:{account}:function:{name}"),
                "table-arn" => format!("arn:aws:dynamodb:{region}:{account}:table/{name}"),
                "stream-arn" => match self.streams.get(name) {
                    Some(arn) => arn.clone(),
                    None => rest[at..at + end + 1].to_string(),
                },
                "workflow-arn" => format!("arn:aws:states:{region}:{account}:stateMachine:{name}"),
                "region" => region.clone(),
                "account" => account.clone(),
                "api-url" => self.endpoint.clone(),
                _ => rest[at..at + end + 1].to_string(),
            };
            out.push_str(&value);
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// `v` with every placeholder in its strings replaced.
    pub fn render_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::String(s) => J::String(self.render(s)),
            J::Array(xs) => J::Array(xs.iter().map(|x| self.render_json(x)).collect()),
            J::Object(m) => J::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.render_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

impl Plan {
    /// The plan as `--dry-run` prints it: one line per item.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for q in &self.queues {
            let _ = write!(out, "queue {}", q.name);
            if let Some(v) = q.visibility_timeout {
                let _ = write!(out, " visibility_timeout={v}s");
            }
            if let Some(dlq) = &q.dead_letter_queue {
                let _ = write!(
                    out,
                    " dead_letter_queue={dlq} max_receive_count={}",
                    q.max_receive_count.unwrap_or(1)
                );
            }
            out.push('\n');
        }
        for t in &self.topics {
            let _ = writeln!(out, "topic {t}");
        }
        for t in &self.tables {
            let keys: Vec<String> = t.definition["KeySchema"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    format!(
                        "{}:{}",
                        k["AttributeName"].as_str().unwrap_or_default(),
                        k["KeyType"].as_str().unwrap_or_default()
                    )
                })
                .collect();
            let _ = write!(out, "table {} key={}", t.name, keys.join(","));
            for (field, label) in [
                ("GlobalSecondaryIndexes", "gsi"),
                ("LocalSecondaryIndexes", "lsi"),
            ] {
                for index in t.definition[field].as_array().into_iter().flatten() {
                    let _ = write!(
                        out,
                        " {label}={}",
                        index["IndexName"].as_str().unwrap_or_default()
                    );
                }
            }
            if let Some(view) = t.definition["StreamSpecification"]["StreamViewType"].as_str() {
                let _ = write!(out, " stream={view}");
            }
            if let Some(ttl) = &t.ttl_attribute {
                let _ = write!(out, " ttl={ttl}");
            }
            out.push('\n');
        }
        for b in &self.buckets {
            let _ = writeln!(
                out,
                "bucket {}{}",
                b.name,
                if b.create { "" } else { " (existing)" }
            );
        }
        for f in &self.functions {
            let code = match &f.inline {
                Some((file, _)) => format!("inline {file}"),
                None => f.code.display().to_string(),
            };
            let _ = write!(
                out,
                "function {} ({}, {}, {} MB, {} s) code {code}",
                f.name,
                f.runtime,
                f.handler,
                f.memory.map_or("default".into(), |m| m.to_string()),
                f.timeout.map_or("default".into(), |t| t.to_string()),
            );
            if let Some(r) = f.reserved_concurrency {
                let _ = write!(out, " reserved_concurrency={r}");
            }
            if let Some(p) = f.provisioned_concurrency {
                let _ = write!(out, " provisioned_concurrency={p}");
            }
            if let Some(a) = &f.alias {
                let _ = write!(out, " alias={a}");
            }
            out.push('\n');
            for (k, v) in &f.env {
                let _ = writeln!(out, "  env {k}={v}");
            }
            if !f.patterns.is_empty() {
                let _ = writeln!(out, "  package {}", f.patterns.join(" "));
            }
            if let Some(a) = &f.async_invoke {
                let dest = |d: &Option<lambent_core::Destination>| match d {
                    Some(lambent_core::Destination::Function(n)) => format!("function {n}"),
                    Some(lambent_core::Destination::Queue(n)) => format!("queue {n}"),
                    Some(lambent_core::Destination::Topic(n)) => format!("topic {n}"),
                    None => "-".into(),
                };
                let opt = |v: Option<u32>| v.map_or("default".into(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "  async max_retries={} max_event_age_s={} on_success={} on_failure={}",
                    opt(a.max_retries),
                    opt(a.max_event_age_s),
                    dest(&a.on_success),
                    dest(&a.on_failure),
                );
            }
        }
        for w in &self.workflows {
            let _ = writeln!(
                out,
                "workflow {} ({}) {}",
                w.name,
                w.kind.as_deref().unwrap_or("STANDARD"),
                w.definition
            );
        }
        for r in &self.routes {
            let _ = writeln!(
                out,
                "route {} {} -> {} (payload {}{})",
                r.method,
                r.path,
                r.target,
                r.payload.as_str(),
                if r.cors { ", cors" } else { "" }
            );
        }
        for s in &self.schedules {
            let expr = match (&s.cron, &s.rate) {
                (Some(c), _) => format!("cron({c})"),
                (_, Some(r)) => format!("rate({r})"),
                _ => String::new(),
            };
            let _ = write!(out, "schedule {} {expr} -> {}", s.name, s.target);
            if let Some(input) = &s.input {
                let _ = write!(out, " input={input}");
            }
            out.push('\n');
        }
        for m in &self.mappings {
            let _ = write!(out, "mapping {} -> {}", m.queue, m.function);
            if let Some(b) = m.batch_size {
                let _ = write!(out, " batch_size={b}");
            }
            if m.report_batch_item_failures {
                out.push_str(" report_batch_item_failures");
            }
            out.push('\n');
        }
        for m in &self.stream_mappings {
            let _ = write!(out, "mapping table {} stream -> {}", m.table, m.function);
            if let Some(b) = m.batch_size {
                let _ = write!(out, " batch_size={b}");
            }
            if let Some(p) = &m.starting_position {
                let _ = write!(out, " starting_position={p}");
            }
            if let Some(r) = m.max_retries {
                let _ = write!(out, " max_retries={r}");
            }
            if m.bisect_on_error {
                out.push_str(" bisect_on_error");
            }
            if m.report_batch_item_failures {
                out.push_str(" report_batch_item_failures");
            }
            if let Some(d) = &m.on_failure {
                let _ = write!(out, " on_failure={d}");
            }
            out.push('\n');
        }
        for n in &self.notifications {
            let _ = write!(
                out,
                "notification {} {} -> {}",
                n.bucket,
                n.events.join(","),
                n.target
            );
            if let Some(p) = &n.prefix {
                let _ = write!(out, " prefix={p}");
            }
            if let Some(s) = &n.suffix {
                let _ = write!(out, " suffix={s}");
            }
            out.push('\n');
        }
        for s in &self.subscriptions {
            let _ = writeln!(out, "subscription {} -> {} {}", s.topic, s.kind, s.target);
        }
        for (k, v) in &self.outputs {
            let _ = writeln!(out, "output {k} = {v}");
        }
        for (item, how) in &self.notes {
            let _ = writeln!(out, "note {item}: {how}");
        }
        for (item, why) in &self.skipped {
            let _ = writeln!(out, "skipped {item}: {why}");
        }
        out
    }

    fn note(&mut self, item: impl Into<String>, how: impl Into<String>) {
        self.notes.push((item.into(), how.into()));
    }

    fn skip(&mut self, item: impl Into<String>, why: impl Into<String>) {
        self.skipped.push((item.into(), why.into()));
    }
}

/// A function URL: routes `ANY /NAME` and `ANY /NAME/{proxy+}` to the function, with the
/// HTTP API's event (payload 2.0).
fn function_url(plan: &mut Plan, name: &str, cors: bool) {
    for path in [format!("/{name}"), format!("/{name}/{{proxy+}}")] {
        plan.routes.push(PlanRoute {
            method: "ANY".into(),
            path,
            target: Target::Function(name.to_string()),
            payload: PayloadFormat::V2,
            cors,
        });
    }
}

/// The note of a function setting Lambent has no counterpart for, by its (either format's)
/// name; `None` for the settings it applies.
fn function_setting_note(key: &str) -> Option<&'static str> {
    Some(match key.to_ascii_lowercase().as_str() {
        "policies" | "role" | "iamrolestatements" | "rolepath" | "permissionsboundary" => {
            "Lambent has no IAM; access is per namespace"
        }
        "architectures" | "architecture" => "functions run on the host's architecture",
        "tracing" => "Lambent has no X-Ray tracing; activations and logs record each invocation",
        "vpcconfig" | "vpc" => "sandboxes have no VPC; outbound network is opt-in (network: true)",
        "tags" => "not applied by Lambent",
        _ => return None,
    })
}

/// Adds a bucket once (a bucket the app creates stays created when an event names it too).
fn add_bucket(plan: &mut Plan, name: &str, create: bool) {
    match plan.buckets.iter_mut().find(|b| b.name == name) {
        Some(b) => b.create |= create,
        None => plan.buckets.push(PlanBucket {
            name: name.to_string(),
            create,
        }),
    }
}

/// Runtimes Lambent runs: every `python3.x`, `nodejsNN.x` and `provided*`.
fn check_runtime(at: &str, runtime: &str) -> Result<(), AppError> {
    let ok = runtime
        .strip_prefix("python3.")
        .is_some_and(|v| v.parse::<u32>().is_ok())
        || runtime
            .strip_prefix("nodejs")
            .and_then(|v| v.strip_suffix(".x"))
            .is_some_and(|v| v.parse::<u32>().is_ok())
        || runtime.starts_with("provided");
    if ok {
        Ok(())
    } else {
        Err(unsupported(
            at,
            format!("Runtime {runtime}"),
            "Lambent runs python3.x, nodejsNN.x and provided runtimes (no Java, .NET, Ruby or Go 1.x)",
        ))
    }
}

/// The folder `rel` inside `dir`, refused if it leads outside.
fn inside(dir: &Path, rel: &str, at: &str) -> Result<PathBuf, AppError> {
    let escapes = || AppError::Escapes {
        at: at.to_string(),
        path: rel.to_string(),
    };
    // Refused by its words first (so a path to nowhere outside says so), then by where it
    // really leads (a symlink may lead out).
    let mut depth = 0i32;
    for c in Path::new(rel).components() {
        match c {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::ParentDir => depth -= 1,
            std::path::Component::CurDir => {}
            _ => return Err(escapes()),
        }
        if depth < 0 {
            return Err(escapes());
        }
    }
    let base = dir.canonicalize().map_err(|e| AppError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    let joined = base.join(rel);
    let real = joined.canonicalize().map_err(|e| AppError::Io {
        path: joined.display().to_string(),
        message: e.to_string(),
    })?;
    if !real.starts_with(&base) {
        return Err(escapes());
    }
    Ok(real)
}

/// Checks that the handler's file exists in the code folder: `dir/file.export` needs
/// `dir/file.py` (Python) or `dir/file.js|.mjs|.cjs` (Node.js).
fn check_handler(at: &str, code: &Path, runtime: &str, handler: &str) -> Result<(), AppError> {
    let Some((module, _)) = handler.rsplit_once('.') else {
        return Err(invalid(
            at,
            format!("handler '{handler}' is not FILE.FUNCTION"),
        ));
    };
    let exts: &[&str] = if runtime.starts_with("python") {
        &["py"]
    } else if runtime.starts_with("nodejs") {
        &["js", "mjs", "cjs"]
    } else {
        return Ok(());
    };
    let module_path = module.replace('.', "/");
    let candidates: Vec<PathBuf> = exts
        .iter()
        .flat_map(|e| {
            [
                code.join(format!("{module}.{e}")),
                code.join(format!("{module_path}.{e}")),
            ]
        })
        .collect();
    if candidates.iter().any(|c| c.is_file()) {
        return Ok(());
    }
    Err(AppError::MissingHandler {
        at: at.to_string(),
        handler: handler.to_string(),
        file: format!("{module}.{}", exts.join("|")),
    })
}

/// AWS's six-field cron (`min hour day-of-month month day-of-week year`, `?` allowed) in
/// Lambent's form, seconds first.
fn aws_cron(expr: &str, at: &str) -> Result<String, AppError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(invalid(
            at,
            format!(
                "cron({expr}) needs six fields: minutes hours day-of-month month day-of-week year"
            ),
        ));
    }
    Ok(format!("0 {}", fields.join(" ")))
}

/// `rate(5 minutes)` / `cron(…)` into a schedule of `target`.
fn schedule(
    name: String,
    target: Target,
    expression: &str,
    at: &str,
) -> Result<PlanSchedule, AppError> {
    let e = expression.trim();
    let mut s = PlanSchedule {
        name,
        target,
        cron: None,
        rate: None,
        tz: None,
        input: None,
    };
    if let Some(inner) = e.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) {
        s.cron = Some(aws_cron(inner, at)?);
    } else if let Some(inner) = e.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
        s.rate = Some(inner.trim().to_string());
    } else {
        return Err(invalid(
            at,
            format!("schedule '{e}' is neither rate(…) nor cron(…)"),
        ));
    }
    Ok(s)
}

/// A schedule's constant input, evaluated: JSON text (CloudFormation's `Input`, a string in
/// serverless.yml), or a YAML value that the Serverless Framework sends as JSON.
fn schedule_input(v: &serde_yaml::Value, at: &str) -> Result<serde_json::Value, AppError> {
    match v {
        serde_yaml::Value::String(json) => {
            serde_json::from_str(json).map_err(|e| invalid(at, format!("not JSON: {e}")))
        }
        other => cfn::to_json(other, at),
    }
}

/// A scalar YAML value as text (`false` → `"false"`, as CloudFormation does).
fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_render_with_the_platform() {
        let p = Platform {
            endpoint: "http://127.0.0.1:9".into(),
            region: "us-east-1".into(),
            account: "default".into(),
            streams: [("orders".to_string(), "arn:s".to_string())].into(),
        };
        assert_eq!(
            p.render(&format!(
                "{} and {} and x",
                queue_url("jobs"),
                topic_arn("news")
            )),
            "http://127.0.0.1:9/default/jobs and arn:aws:sns:us-east-1:default:news and x"
        );
        assert_eq!(p.render("plain ${X}"), "plain ${X}");
        assert_eq!(p.render(&stream_arn("orders")), "arn:s");
        assert_eq!(
            p.render(&format!("{} {}", table_arn("t"), workflow_arn("w"))),
            "arn:aws:dynamodb:us-east-1:default:table/t arn:aws:states:us-east-1:default:stateMachine:w"
        );
        assert_eq!(table_from_arn(&stream_arn("orders")), Some("orders".into()));
        assert_eq!(
            table_from_arn("arn:aws:dynamodb:eu-west-1:1:table/orders/stream/2024"),
            Some("orders".into())
        );
        assert_eq!(name_from_arn(&queue_arn("q")), Some("q".into()));
        assert_eq!(
            name_from_arn("arn:aws:sqs:eu-west-1:123:orders"),
            Some("orders".into())
        );
        assert_eq!(name_from_arn("orders"), None);
    }

    #[test]
    fn aws_cron_gains_seconds_and_checks_fields() {
        assert_eq!(
            aws_cron("0/2 * ? * MON-FRI *", "x").unwrap(),
            "0 0/2 * ? * MON-FRI *"
        );
        assert!(aws_cron("* * * * *", "x").is_err());
    }

    #[test]
    fn runtimes_lambent_lacks_are_refused() {
        for ok in ["python3.14", "nodejs24.x", "provided.al2023"] {
            check_runtime("F", ok).unwrap();
        }
        for bad in ["java21", "dotnet8", "ruby3.3", "go1.x"] {
            let e = check_runtime("F", bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn malformed_yaml_says_line_and_column() {
        let e = parse_yaml("t.yaml", "a: b\nc: [1, 2\n").unwrap_err();
        let AppError::Yaml { line, column, .. } = &e else {
            panic!("{e}")
        };
        assert!(*line >= 2 && *column > 0, "{e}");
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    }
}
