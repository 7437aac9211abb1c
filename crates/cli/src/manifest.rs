//! `lambent.yaml` and the deploy flags, resolved into the list of functions to deploy.
//!
//! Two forms. One function, whose code is the folder holding the file:
//!
//! ```yaml
//! name: hello            # default: the folder's name
//! runtime: python3.12
//! handler: app.handler
//! memory: 128            # MB
//! timeout: 3             # seconds
//! env: {GREETING: hi}
//! description: says hello
//! reserved_concurrency: 10     # at most (and at least) 10 concurrent invocations
//! provisioned_concurrency: 1   # sandboxes kept initialized at all times
//! keep_alive: 60               # seconds an idle sandbox stays warm
//! network: true                # outbound network (default: loopback only)
//! async:                       # asynchronous invocations (lambent invoke --async, schedules)
//!   max_retries: 2             # retries after a failure (1 s, 2 s, 4 s, … apart)
//!   max_event_age_s: 21600     # give up on older events
//!   on_success: {function: audit}
//!   on_failure: {function: alert}
//! schedules:                   # created or replaced at deploy, invoking this function
//!   every-5-minutes: {cron: "0 */5 * * * *", tz: Europe/Paris}
//!   hourly: {rate: 1 hour, input: {job: report}}  # input: sent instead of the scheduled event
//!   launch: {at: "2026-12-01T10:00:00"}
//! ```
//!
//! Many functions, each with the folder (or `.zip`) of its code, relative to the file
//! (`path` defaults to the function's name):
//!
//! ```yaml
//! functions:
//!   hello-python: {path: hello-python, runtime: python3.12, handler: app.handler}
//!   hello-node:   {path: hello-node, runtime: nodejs20.x, handler: index.handler}
//! ```
//!
//! HTTP routes go in `routes:`, under a function (or at the top of the single-function form),
//! as `METHOD /path` or a mapping with settings; beside `functions:`, a route names its function:
//!
//! ```yaml
//! routes:
//!   - GET /users/{id}
//!   - method: ANY              # default ANY
//!     path: /files/{proxy+}    # inside {…} flow mappings, quote paths with braces
//!     auth: key                # none (default) or key
//!     max_body: 64k            # default 1m
//!     cors: {allow_origins: [https://app.example], allow_methods: [GET], max_age: 600}
//!     payload: "1.0"           # the REST API event (default "2.0", the HTTP API's)
//! ```
//!
//! Deploying adds each route, replacing one with the same method and path; routes no longer in
//! the file are left as they are (`lambent route rm` removes them).
//!
//! `workflows:` (state machines) may sit beside either form, or alone: see
//! [`crate::workflow_manifest`].
//!
//! Sequences go in `sequences:` beside `functions:`, each a list of function names run in order
//! (or a mapping with `components`, `description` and `routes`); they are created or replaced
//! after the functions, and routes beside `functions:` may name them:
//!
//! ```yaml
//! sequences:
//!   pipeline: [resize, tag, store]
//!   checkout: {components: [validate, charge], routes: [POST /checkout]}
//! ```
//!
//! Event-source mappings go in `mappings:` (in either form): a queue or a table's stream read
//! by a function in batches, created at deploy unless the same source already feeds the same
//! function (`function` defaults to the single function of the file):
//!
//! ```yaml
//! mappings:
//!   - {queue: jobs, function: worker, batch_size: 5, report_batch_item_failures: true}
//!   - {table: orders, function: audit, starting_position: TRIM_HORIZON, max_retries: 2,
//!      bisect_on_error: true, on_failure: failed-orders}
//! ```
//!
//! Flags override the file. Values are not validated here: the server does that and says why.

use crate::events_client::SchedulePut;
use anyhow::{bail, Context, Result};
use lambent_core::route::{Cors, PayloadFormat, RouteAuth};
use lambent_core::RouteSpec;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The manifest's file name, looked up in the folder being deployed.
pub const MANIFEST_FILE: &str = "lambent.yaml";

/// A function's settings as the user gave them; unset fields get the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub env: BTreeMap<String, String>,
    pub description: Option<String>,
    pub reserved_concurrency: Option<u32>,
    pub provisioned_concurrency: Option<u32>,
    /// Seconds.
    pub keep_alive: Option<u32>,
    pub async_invoke: Option<lambent_core::AsyncSpec>,
    /// Outbound network access (opt-in).
    pub network: Option<bool>,
    /// By name; they invoke this function.
    pub schedules: BTreeMap<String, SchedulePut>,
}

/// Settings given as `lambent deploy` flags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub name: Option<String>,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub memory: Option<u32>,
    pub timeout: Option<u32>,
    pub env: Vec<(String, String)>,
    pub description: Option<String>,
    pub reserved_concurrency: Option<u32>,
    pub provisioned_concurrency: Option<u32>,
    pub keep_alive: Option<u32>,
    pub max_retries: Option<u32>,
    pub max_event_age_s: Option<u32>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub network: Option<bool>,
}

/// Where a function's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A folder, zipped at deploy time.
    Dir(PathBuf),
    /// A ready-made zip, uploaded as is.
    Zip(PathBuf),
    /// A folder packed through the Serverless Framework's `package.patterns` (globs in order,
    /// `!` excluding; the last that matches a file decides).
    Patterns(PathBuf, Vec<String>),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Zip(p) | Source::Patterns(p, _) => p,
        }
    }
}

/// One function to deploy, fully resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub name: String,
    pub settings: Settings,
    pub source: Source,
    /// HTTP routes to this function, added after it is deployed.
    pub routes: Vec<RouteSpec>,
}

/// One function's settings as written: the whole file in the single-function form (with
/// `name`), or one entry of the many-functions form (with `path`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionYaml {
    name: Option<String>,
    path: Option<String>,
    runtime: Option<String>,
    handler: Option<String>,
    memory: Option<u32>,
    timeout: Option<u32>,
    #[serde(default, deserialize_with = "env_map")]
    env: BTreeMap<String, String>,
    description: Option<String>,
    reserved_concurrency: Option<u32>,
    provisioned_concurrency: Option<u32>,
    keep_alive: Option<u32>,
    #[serde(rename = "async")]
    async_invoke: Option<lambent_core::AsyncSpec>,
    network: Option<bool>,
    #[serde(default)]
    schedules: BTreeMap<String, SchedulePut>,
    #[serde(default)]
    routes: Vec<RouteYaml>,
    /// Read by [`crate::workflow_manifest`].
    #[serde(default, rename = "workflows")]
    _workflows: Option<serde::de::IgnoredAny>,
    /// Read by [`mappings`].
    #[serde(default, rename = "mappings")]
    _mappings: Option<serde::de::IgnoredAny>,
}

/// One entry of `mappings:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingYaml {
    queue: Option<String>,
    table: Option<String>,
    #[serde(default)]
    function: String,
    batch_size: Option<u32>,
    batching_window_ms: Option<u64>,
    #[serde(default)]
    report_batch_item_failures: bool,
    starting_position: Option<String>,
    max_retries: Option<i64>,
    max_record_age_s: Option<i64>,
    #[serde(default)]
    bisect_on_error: bool,
    on_failure: Option<String>,
}

/// An event-source mapping declared in `mappings:`.
#[derive(Debug, Clone)]
pub enum MappingDecl {
    Queue(crate::client::Mapping),
    Table(crate::client::StreamMapping),
}

/// The mappings `lambent deploy PATH` creates after the functions; an entry without
/// `function` names `single` (the file's one function), else it is refused.
pub fn mappings(path: &Path, single: Option<&str>) -> Result<Vec<MappingDecl>> {
    let manifest_path = match path.file_name() {
        Some(n) if n == MANIFEST_FILE => path.to_path_buf(),
        _ => path.join(MANIFEST_FILE),
    };
    let Ok(text) = std::fs::read_to_string(&manifest_path) else {
        return Ok(Vec::new());
    };
    let at = manifest_path.display().to_string();
    let serde_yaml::Value::Mapping(map) = serde_yaml::from_str(&text).context(at.clone())? else {
        return Ok(Vec::new());
    };
    let Some(list) = map.get("mappings") else {
        return Ok(Vec::new());
    };
    let entries: Vec<MappingYaml> =
        serde_yaml::from_value(list.clone()).with_context(|| format!("{at}: mappings"))?;
    entries
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let function = match (m.function.is_empty(), single) {
                (false, _) => m.function,
                (true, Some(f)) => f.to_string(),
                (true, None) => bail!("{at}: mappings[{i}]: name its `function`"),
            };
            let queue_only = m.starting_position.is_some()
                || m.max_retries.is_some()
                || m.max_record_age_s.is_some()
                || m.bisect_on_error
                || m.on_failure.is_some();
            match (m.queue, m.table) {
                (Some(_), _) if queue_only => bail!(
                    "{at}: mappings[{i}]: starting_position, max_retries, max_record_age_s, \
                     bisect_on_error and on_failure apply to a table's stream, not a queue"
                ),
                (Some(queue), None) => Ok(MappingDecl::Queue(crate::client::Mapping {
                    queue,
                    function,
                    batch_size: m.batch_size,
                    batching_window_ms: m.batching_window_ms,
                    report_batch_item_failures: m.report_batch_item_failures,
                    ..Default::default()
                })),
                (None, Some(table)) => Ok(MappingDecl::Table(crate::client::StreamMapping {
                    table,
                    function,
                    batch_size: m.batch_size,
                    batching_window_ms: m.batching_window_ms,
                    starting_position: m.starting_position,
                    max_retries: m.max_retries,
                    max_record_age_s: m.max_record_age_s,
                    bisect_on_error: m.bisect_on_error,
                    report_batch_item_failures: m.report_batch_item_failures,
                    on_failure: m.on_failure,
                    ..Default::default()
                })),
                _ => bail!("{at}: mappings[{i}]: name exactly one of `queue` and `table`"),
            }
        })
        .collect()
}

/// A route as written: `GET /users/{id}`, or a mapping of its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteYaml(pub(crate) RouteSpec);

impl<'de> Deserialize<'de> for RouteYaml {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            method: Option<String>,
            path: String,
            function: Option<String>,
            #[serde(default)]
            auth: RouteAuth,
            cors: Option<Cors>,
            max_body: Option<serde_yaml::Value>,
            /// `"1.0"` (REST API event) or `"2.0"`; a bare `1.0` reads as a number.
            payload: Option<serde_yaml::Value>,
        }
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => {
                let (method, path) = s.trim().split_once(char::is_whitespace).ok_or_else(|| {
                    D::Error::custom(format!("route '{s}': expected 'METHOD /path'"))
                })?;
                Ok(RouteYaml(RouteSpec {
                    method: method.to_string(),
                    path: path.trim().to_string(),
                    ..Default::default()
                }))
            }
            v @ serde_yaml::Value::Mapping(_) => {
                let full: Full = serde_yaml::from_value(v).map_err(D::Error::custom)?;
                let max_body_bytes = match full.max_body {
                    None => None,
                    Some(serde_yaml::Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
                        D::Error::custom("max_body: expected a size in bytes such as 65536 or 64k")
                    })?),
                    Some(serde_yaml::Value::String(s)) => Some(
                        parse_size(&s).map_err(|e| D::Error::custom(format!("max_body: {e}")))?,
                    ),
                    Some(_) => {
                        return Err(D::Error::custom(
                            "max_body: expected a size in bytes such as 65536 or 64k",
                        ))
                    }
                };
                let payload = match full.payload {
                    None => PayloadFormat::default(),
                    Some(serde_yaml::Value::Number(n)) => {
                        n.to_string().parse().map_err(D::Error::custom)?
                    }
                    Some(serde_yaml::Value::String(s)) => s.parse().map_err(D::Error::custom)?,
                    Some(_) => return Err(D::Error::custom("payload: '1.0' or '2.0'")),
                };
                Ok(RouteYaml(RouteSpec {
                    method: full.method.unwrap_or_else(|| "ANY".into()),
                    path: full.path,
                    function: full.function.unwrap_or_default(),
                    auth: full.auth,
                    cors: full.cors,
                    max_body_bytes,
                    payload,
                    ..Default::default()
                }))
            }
            _ => Err(D::Error::custom(
                "a route is 'METHOD /path' or a mapping with method, path, …",
            )),
        }
    }
}

/// The routes of a function: each must name no other function.
fn routes_of(function: &str, routes: Vec<RouteYaml>, at: &str) -> Result<Vec<RouteSpec>> {
    routes
        .into_iter()
        .map(|RouteYaml(mut spec)| {
            if !spec.function.is_empty() && spec.function != function {
                bail!(
                    "{at}: route '{} {}' names function '{}', but it is listed under '{function}'",
                    spec.method,
                    spec.path,
                    spec.function
                );
            }
            spec.function = function.to_string();
            Ok(spec)
        })
        .collect()
}

/// Parses a size in bytes: `65536`, `64k`, `1m`, `10g` (binary units; `kb`, `mb`, `gb` and
/// `b` too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let units: [(char, u64); 3] = [('k', 1 << 10), ('m', 1 << 20), ('g', 1 << 30)];
    let (digits, unit) = units
        .iter()
        .find_map(|(suffix, unit)| t.strip_suffix(*suffix).map(|d| (d, *unit)))
        .unwrap_or((t, 1));
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("invalid size '{s}': use bytes such as 65536, or 64k, 1m, 10g"))
}

impl FunctionYaml {
    fn settings(self) -> Settings {
        Settings {
            runtime: self.runtime,
            handler: self.handler,
            memory: self.memory,
            timeout: self.timeout,
            env: self.env,
            description: self.description,
            reserved_concurrency: self.reserved_concurrency,
            provisioned_concurrency: self.provisioned_concurrency,
            keep_alive: self.keep_alive,
            async_invoke: self.async_invoke,
            network: self.network,
            schedules: self.schedules,
        }
    }
}

/// Env values may be written as numbers or booleans (`PORT: 8080`); they are passed as strings.
fn env_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error;
    let map: Option<BTreeMap<String, serde_yaml::Value>> = Option::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (k, v) in map.unwrap_or_default() {
        let s = match v {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(D::Error::custom(format!(
                    "env.{k}: expected a string, number or boolean"
                )))
            }
        };
        out.insert(k, s);
    }
    Ok(out)
}

/// A parsed `lambent.yaml`.
#[derive(Debug)]
enum Manifest {
    Single(Box<FunctionYaml>),
    /// In the file's order, and the routes listed beside `functions`.
    Many(Vec<(String, FunctionYaml)>, Vec<RouteYaml>),
}

fn parse_manifest(text: &str) -> Result<Manifest> {
    let value: serde_yaml::Value = serde_yaml::from_str(text)?;
    let map = match value {
        serde_yaml::Value::Null => return Ok(Manifest::Single(Box::default())),
        serde_yaml::Value::Mapping(m) => m,
        _ => bail!("expected a mapping of settings (name, runtime, handler, …) or 'functions'"),
    };
    if !map.is_empty() && map.keys().all(|k| k.as_str() == Some("workflows")) {
        // Only workflows (`crate::workflow_manifest`): no function to deploy.
        return Ok(Manifest::Many(Vec::new(), Vec::new()));
    }
    if map.contains_key("sequences") && !map.contains_key("functions") {
        bail!("`sequences` goes beside `functions`: list the functions under `functions`");
    }
    let Some(functions) = map.get("functions") else {
        // Parse the text again rather than the value, so that errors keep their line numbers.
        let single: FunctionYaml = serde_yaml::from_str(text)?;
        if single.path.is_some() {
            bail!("unknown field `path`: the code of a single function is this folder");
        }
        return Ok(Manifest::Single(Box::new(single)));
    };
    let sequence_names = sequences_in(&map)?
        .into_iter()
        .map(|(name, _)| name)
        .collect::<Vec<_>>();
    if let Some(other) = map.keys().find(|k| {
        !matches!(
            k.as_str(),
            Some("functions" | "routes" | "sequences" | "workflows" | "mappings")
        )
    }) {
        bail!(
            "unknown field `{}` beside `functions`: with many functions, put every setting under \
             its function",
            yaml_key(other)
        );
    }
    let serde_yaml::Value::Mapping(functions) = functions else {
        bail!("`functions` must map function names to their settings");
    };
    if functions.is_empty() {
        bail!("`functions` is empty: add at least one function");
    }
    let mut entries = Vec::with_capacity(functions.len());
    for (name, entry) in functions {
        let name = yaml_key(name);
        let entry: FunctionYaml = match entry {
            serde_yaml::Value::Null => FunctionYaml::default(),
            v => serde_yaml::from_value(v.clone()).with_context(|| format!("functions.{name}"))?,
        };
        if entry.name.is_some() {
            bail!("functions.{name}: unknown field `name`: the key above names the function");
        }
        entries.push((name, entry));
    }
    let routes: Vec<RouteYaml> = match map.get("routes") {
        None => Vec::new(),
        Some(v) => serde_yaml::from_value(v.clone()).context("routes")?,
    };
    for RouteYaml(r) in &routes {
        if r.function.is_empty() {
            bail!(
                "routes: route '{} {}' needs `function`: name one of the functions",
                r.method,
                r.path
            );
        }
        if !entries.iter().any(|(n, _)| *n == r.function) && !sequence_names.contains(&r.function) {
            bail!(
                "routes: route '{} {}' names function '{}', which is not in `functions` or `sequences`",
                r.method,
                r.path,
                r.function
            );
        }
    }
    Ok(Manifest::Many(entries, routes))
}

/// A sequence declared in `sequences:`, with the routes (its own and those beside
/// `functions:`) that name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceDecl {
    pub name: String,
    pub body: crate::client::SequencePut,
    pub routes: Vec<RouteSpec>,
}

/// A sequence as written: a list of function names, or a mapping.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SequenceYaml {
    Components(Vec<String>),
    Full(SequenceFull),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceFull {
    components: Vec<String>,
    description: Option<String>,
    #[serde(default)]
    routes: Vec<RouteYaml>,
}

/// The entries of `sequences:` in the file's order.
fn sequences_in(map: &serde_yaml::Mapping) -> Result<Vec<(String, SequenceFull)>> {
    let Some(value) = map.get("sequences") else {
        return Ok(Vec::new());
    };
    let serde_yaml::Value::Mapping(entries) = value else {
        bail!("`sequences` must map sequence names to their functions");
    };
    let mut out = Vec::with_capacity(entries.len());
    for (name, entry) in entries {
        let name = yaml_key(name);
        let parsed: SequenceYaml = serde_yaml::from_value(entry.clone()).map_err(|_| {
            anyhow::anyhow!(
                "sequences.{name}: expected a list of function names, or a mapping with                  `components` (and `description`, `routes`)"
            )
        })?;
        out.push((
            name,
            match parsed {
                SequenceYaml::Components(components) => SequenceFull {
                    components,
                    description: None,
                    routes: Vec::new(),
                },
                SequenceYaml::Full(full) => full,
            },
        ));
    }
    Ok(out)
}

/// The sequences `lambent deploy PATH` creates after the functions (none when `PATH` has no
/// `lambent.yaml` or it declares none).
pub fn sequences(path: &Path) -> Result<Vec<SequenceDecl>> {
    let manifest_path = match path.file_name() {
        Some(n) if n == MANIFEST_FILE => path.to_path_buf(),
        _ => path.join(MANIFEST_FILE),
    };
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(_) => return Ok(Vec::new()),
    };
    let at = manifest_path.display().to_string();
    let serde_yaml::Value::Mapping(map) = serde_yaml::from_str(&text).context(at.clone())? else {
        return Ok(Vec::new());
    };
    let top_routes: Vec<RouteYaml> = match map.get("routes") {
        Some(v) if map.contains_key("functions") => {
            serde_yaml::from_value(v.clone()).context("routes")?
        }
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (name, full) in sequences_in(&map).with_context(|| at.clone())? {
        let mut routes = routes_of(&name, full.routes, &format!("{at}: sequences.{name}"))?;
        routes.extend(
            top_routes
                .iter()
                .filter(|RouteYaml(r)| r.function == name)
                .map(|RouteYaml(r)| r.clone()),
        );
        out.push(SequenceDecl {
            body: crate::client::SequencePut {
                components: full.components,
                description: full.description,
            },
            name,
            routes,
        });
    }
    Ok(out)
}

fn yaml_key(k: &serde_yaml::Value) -> String {
    match k {
        serde_yaml::Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

impl Overrides {
    /// Applies the flags on top of settings from the file.
    fn apply(&self, s: &mut Settings) {
        if self.runtime.is_some() {
            s.runtime.clone_from(&self.runtime);
        }
        if self.handler.is_some() {
            s.handler.clone_from(&self.handler);
        }
        if self.memory.is_some() {
            s.memory = self.memory;
        }
        if self.timeout.is_some() {
            s.timeout = self.timeout;
        }
        for (k, v) in &self.env {
            s.env.insert(k.clone(), v.clone());
        }
        if self.description.is_some() {
            s.description.clone_from(&self.description);
        }
        if self.reserved_concurrency.is_some() {
            s.reserved_concurrency = self.reserved_concurrency;
        }
        if self.provisioned_concurrency.is_some() {
            s.provisioned_concurrency = self.provisioned_concurrency;
        }
        if self.keep_alive.is_some() {
            s.keep_alive = self.keep_alive;
        }
        if self.network.is_some() {
            s.network = self.network;
        }
        let destination = |name: &String| {
            // The flag's parser has checked the name.
            lambent_core::FunctionName::parse(name)
                .map(lambent_core::Destination::Function)
                .ok()
        };
        let flags = [
            self.max_retries.is_some(),
            self.max_event_age_s.is_some(),
            self.on_success.is_some(),
            self.on_failure.is_some(),
        ];
        if flags.contains(&true) {
            let a = s.async_invoke.get_or_insert_with(Default::default);
            if self.max_retries.is_some() {
                a.max_retries = self.max_retries;
            }
            if self.max_event_age_s.is_some() {
                a.max_event_age_s = self.max_event_age_s;
            }
            if let Some(d) = self.on_success.as_ref() {
                a.on_success = destination(d);
            }
            if let Some(d) = self.on_failure.as_ref() {
                a.on_failure = destination(d);
            }
        }
    }

    /// The flags that only make sense for one function.
    fn single_function_flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.runtime.is_some() {
            flags.push("--runtime");
        }
        if self.handler.is_some() {
            flags.push("--handler");
        }
        if self.description.is_some() {
            flags.push("--description");
        }
        flags
    }
}

/// Resolves what `lambent deploy PATH` deploys: a folder (with or without `lambent.yaml`), a
/// `lambent.yaml` file itself, or a `.zip` file.
pub fn resolve(path: &Path, overrides: &Overrides) -> Result<Vec<Deployment>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot deploy {}", path.display()))?;
    if meta.is_file() {
        if path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            return resolve(dir, overrides);
        }
        if !is_zip(path) {
            bail!(
                "cannot deploy {}: expected a folder, a .zip file or a {MANIFEST_FILE}",
                path.display()
            );
        }
        let name = match &overrides.name {
            Some(n) => n.clone(),
            None => file_stem(path)?,
        };
        return finish(vec![Deployment {
            name,
            settings: settings_from(Settings::default(), overrides),
            source: Source::Zip(path.to_path_buf()),
            routes: Vec::new(),
        }]);
    }

    let manifest_path = path.join(MANIFEST_FILE);
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => {
            Some(parse_manifest(&text).with_context(|| format!("{}", manifest_path.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", manifest_path.display()))
        }
    };

    let deployments = match manifest {
        None => vec![Deployment {
            name: match &overrides.name {
                Some(n) => n.clone(),
                None => dir_name(path)?,
            },
            settings: settings_from(Settings::default(), overrides),
            source: Source::Dir(path.to_path_buf()),
            routes: Vec::new(),
        }],
        Some(Manifest::Single(mut y)) => {
            let name = match (&overrides.name, &y.name) {
                (Some(n), _) | (None, Some(n)) => n.clone(),
                (None, None) => dir_name(path)?,
            };
            let routes = routes_of(
                &name,
                std::mem::take(&mut y.routes),
                &manifest_path.display().to_string(),
            )?;
            vec![Deployment {
                name,
                settings: settings_from(y.settings(), overrides),
                source: Source::Dir(path.to_path_buf()),
                routes,
            }]
        }
        Some(Manifest::Many(entries, top_routes)) => {
            let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
            let selected: Vec<(String, FunctionYaml)> = match &overrides.name {
                Some(want) => {
                    let Some(entry) = entries.into_iter().find(|(n, _)| n == want) else {
                        bail!(
                            "{} has no function '{want}': it has {}",
                            manifest_path.display(),
                            names.join(", ")
                        );
                    };
                    vec![entry]
                }
                None => {
                    let flags = overrides.single_function_flags();
                    if !flags.is_empty() && entries.len() > 1 {
                        bail!(
                            "{} apply to one function: add --name with one of {} (or set them in \
                             {MANIFEST_FILE})",
                            flags.join(", "),
                            names.join(", ")
                        );
                    }
                    entries
                }
            };
            let mut out = Vec::with_capacity(selected.len());
            for (name, mut y) in selected {
                let at = format!("{}: functions.{name}", manifest_path.display());
                let mut routes = routes_of(&name, std::mem::take(&mut y.routes), &at)?;
                routes.extend(
                    top_routes
                        .iter()
                        .filter(|RouteYaml(r)| r.function == name)
                        .map(|RouteYaml(r)| r.clone()),
                );
                let rel = y.path.clone().unwrap_or_else(|| name.clone());
                let code = path.join(&rel);
                let source = if code.is_dir() {
                    Source::Dir(code)
                } else if code.is_file() && is_zip(&code) {
                    Source::Zip(code)
                } else {
                    bail!(
                        "{}: functions.{name}.path: {} is not a folder or a .zip file",
                        manifest_path.display(),
                        code.display()
                    );
                };
                out.push(Deployment {
                    name,
                    settings: settings_from(y.settings(), overrides),
                    source,
                    routes,
                });
            }
            out
        }
    };
    finish(deployments)
}

fn settings_from(mut s: Settings, overrides: &Overrides) -> Settings {
    overrides.apply(&mut s);
    s
}

/// The one check the client makes: a deploy without a runtime cannot mean anything.
fn finish(deployments: Vec<Deployment>) -> Result<Vec<Deployment>> {
    for d in &deployments {
        if d.settings.runtime.is_none() {
            bail!(
                "no runtime for '{}': pass --runtime (e.g. python3.12, nodejs20.x, provided) or \
                 set `runtime` in {MANIFEST_FILE}",
                d.name
            );
        }
    }
    Ok(deployments)
}

fn is_zip(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

fn file_stem(path: &Path) -> Result<String> {
    path.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "cannot name a function after {}: pass --name",
                path.display()
            )
        })
}

/// The folder's own name, also for `.` and paths ending in `..`.
fn dir_name(path: &Path) -> Result<String> {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    abs.file_name()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .with_context(|| {
            format!(
                "cannot name a function after {}: pass --name",
                path.display()
            )
        })
}

/// Parses a `K=V` flag value.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got '{s}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    fn err(path: &Path, o: &Overrides) -> String {
        format!("{:#}", resolve(path, o).unwrap_err())
    }

    #[test]
    fn folder_without_manifest_is_named_after_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("my-fn");
        write(&dir, "app.py", "");
        let o = Overrides {
            runtime: Some("python3.12".into()),
            handler: Some("app.handler".into()),
            ..Default::default()
        };
        let d = resolve(&dir, &o).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "my-fn");
        assert_eq!(d[0].source, Source::Dir(dir.clone()));
        assert_eq!(d[0].settings.handler.as_deref(), Some("app.handler"));
        // `.` is named after the real folder.
        let cwd_named = dir_name(&dir.join(".")).unwrap();
        assert_eq!(cwd_named, "my-fn");
    }

    #[test]
    fn no_runtime_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let e = err(tmp.path(), &Overrides::default());
        assert!(e.contains("no runtime") && e.contains("--runtime"), "{e}");
    }

    #[test]
    fn single_form_with_flag_overrides() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            MANIFEST_FILE,
            "name: hello\nruntime: python3.12\nhandler: app.handler\nmemory: 128\ntimeout: 3\n\
             env: {GREETING: hi, PORT: 8080, DEBUG: true}\ndescription: says hello\n\
                          reserved_concurrency: 10\nprovisioned_concurrency: 2\nkeep_alive: 60\n\
             network: true\n\
             async: {max_retries: 1, on_failure: {function: alert}}\n\
             schedules: {hourly: {rate: 1 hour, tz: Europe/Paris, input: {job: report, n: 2}}}\n",
        );
        let d = resolve(tmp.path(), &Overrides::default()).unwrap();
        assert_eq!(d[0].name, "hello");
        assert_eq!(
            d[0].settings,
            Settings {
                runtime: Some("python3.12".into()),
                handler: Some("app.handler".into()),
                memory: Some(128),
                timeout: Some(3),
                env: [("GREETING", "hi"), ("PORT", "8080"), ("DEBUG", "true")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                description: Some("says hello".into()),
                reserved_concurrency: Some(10),
                provisioned_concurrency: Some(2),
                keep_alive: Some(60),
                async_invoke: Some(lambent_core::AsyncSpec {
                    max_retries: Some(1),
                    on_failure: Some(lambent_core::Destination::Function(
                        lambent_core::FunctionName::parse("alert").unwrap()
                    )),
                    ..Default::default()
                }),
                network: Some(true),
                schedules: [(
                    "hourly".to_string(),
                    SchedulePut {
                        rate: Some("1 hour".into()),
                        tz: Some("Europe/Paris".into()),
                        input: Some(serde_json::json!({"job": "report", "n": 2})),
                        ..Default::default()
                    }
                )]
                .into_iter()
                .collect(),
            }
        );
        let o = Overrides {
            name: Some("other".into()),
            memory: Some(256),
            env: vec![("GREETING".into(), "yo".into()), ("NEW".into(), "1".into())],
            reserved_concurrency: Some(0),
            keep_alive: Some(5),
            ..Default::default()
        };
        let d = resolve(tmp.path(), &o).unwrap();
        assert_eq!(d[0].name, "other");
        assert_eq!(d[0].settings.reserved_concurrency, Some(0));
        assert_eq!(
            d[0].settings.provisioned_concurrency,
            Some(2),
            "kept from the file"
        );
        assert_eq!(d[0].settings.keep_alive, Some(5));
        assert_eq!(d[0].settings.memory, Some(256));
        assert_eq!(d[0].settings.timeout, Some(3));
        assert_eq!(d[0].settings.env["GREETING"], "yo");
        assert_eq!(d[0].settings.env["NEW"], "1");
        assert_eq!(d[0].settings.env["PORT"], "8080");
    }

    #[test]
    fn unknown_keys_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            MANIFEST_FILE,
            "runtime: python3.12\nmemroy: 128\n",
        );
        let e = err(tmp.path(), &Overrides::default());
        assert!(e.contains("memroy") && e.contains(MANIFEST_FILE), "{e}");

        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {runtime: python3.12, handlr: x}\n",
        );
        let e = err(tmp.path(), &Overrides::default());
        assert!(e.contains("handlr") && e.contains("functions.a"), "{e}");

        write(
            tmp.path(),
            MANIFEST_FILE,
            "runtime: python3.12\nfunctions:\n  a: {runtime: python3.12}\n",
        );
        let e = err(tmp.path(), &Overrides::default());
        assert!(e.contains("`runtime`") && e.contains("functions"), "{e}");
    }

    #[test]
    fn many_form_keeps_file_order_and_resolves_paths() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  zeta: {path: code/z, runtime: python3.12, handler: app.handler}\n  \
             alpha: {runtime: provided, memory: 256, reserved_concurrency: 4, \
             provisioned_concurrency: 1, keep_alive: 30}\n",
        );
        write(tmp.path(), "code/z/app.py", "");
        write(tmp.path(), "alpha/bootstrap", "");
        let d = resolve(tmp.path(), &Overrides::default()).unwrap();
        let names: Vec<_> = d.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"]);
        assert_eq!(d[0].source, Source::Dir(tmp.path().join("code/z")));
        assert_eq!(d[1].source, Source::Dir(tmp.path().join("alpha")));
        assert_eq!(d[1].settings.memory, Some(256));
        assert_eq!(
            (
                d[1].settings.reserved_concurrency,
                d[1].settings.provisioned_concurrency,
                d[1].settings.keep_alive
            ),
            (Some(4), Some(1), Some(30))
        );
        assert_eq!(
            (
                d[0].settings.reserved_concurrency,
                d[0].settings.provisioned_concurrency,
                d[0].settings.keep_alive
            ),
            (None, None, None),
            "unset stays unset"
        );

        // Shared flags apply to all; single-function flags need --name.
        let o = Overrides {
            timeout: Some(10),
            env: vec![("A".into(), "1".into())],
            keep_alive: Some(7),
            ..Default::default()
        };
        let d = resolve(tmp.path(), &o).unwrap();
        assert!(d.iter().all(|d| d.settings.timeout == Some(10)
            && d.settings.env["A"] == "1"
            && d.settings.keep_alive == Some(7)));
        assert_eq!(d[1].settings.reserved_concurrency, Some(4));
        let o = Overrides {
            handler: Some("x.y".into()),
            ..Default::default()
        };
        let e = err(tmp.path(), &o);
        assert!(e.contains("--handler") && e.contains("--name"), "{e}");

        // --name selects one, and then every flag applies to it.
        let o = Overrides {
            name: Some("alpha".into()),
            runtime: Some("provided.al2023".into()),
            ..Default::default()
        };
        let d = resolve(tmp.path(), &o).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].name, "alpha");
        assert_eq!(d[0].settings.runtime.as_deref(), Some("provided.al2023"));
        let o = Overrides {
            name: Some("nope".into()),
            ..Default::default()
        };
        let e = err(tmp.path(), &o);
        assert!(e.contains("nope") && e.contains("zeta, alpha"), "{e}");
    }

    #[test]
    fn many_form_missing_code_folder_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {path: missing, runtime: provided}\n",
        );
        let e = err(tmp.path(), &Overrides::default());
        assert!(
            e.contains("functions.a.path") && e.contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn zip_files_and_manifest_paths() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "bundle.zip", "PK");
        let o = Overrides {
            runtime: Some("provided".into()),
            ..Default::default()
        };
        let d = resolve(&tmp.path().join("bundle.zip"), &o).unwrap();
        assert_eq!(d[0].name, "bundle");
        assert_eq!(d[0].source, Source::Zip(tmp.path().join("bundle.zip")));

        write(tmp.path(), "notes.txt", "");
        let e = err(&tmp.path().join("notes.txt"), &o);
        assert!(e.contains(".zip"), "{e}");

        let dir = tmp.path().join("fn");
        write(&dir, MANIFEST_FILE, "name: via-file\nruntime: provided\n");
        let d = resolve(&dir.join(MANIFEST_FILE), &Overrides::default()).unwrap();
        assert_eq!(d[0].name, "via-file");
        assert_eq!(d[0].source, Source::Dir(dir));
    }

    #[test]
    fn env_pairs_parse() {
        assert_eq!(
            parse_env_pair("A=b=c").unwrap(),
            ("A".to_string(), "b=c".to_string())
        );
        assert_eq!(parse_env_pair("A=").unwrap(), ("A".into(), "".into()));
        assert!(parse_env_pair("A").is_err());
        assert!(parse_env_pair("=x").is_err());
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn single_form_routes_belong_to_the_function() {
        let tmp = tempfile::tempdir().unwrap();
        write(
            tmp.path(),
            MANIFEST_FILE,
            "name: users\nruntime: python3.12\nroutes:\n  - GET /users/{id}\n  - path: /files/{proxy+}\n    auth: key\n    max_body: 64k\n    cors: {allow_origins: ['*'], max_age: 60}\n    payload: 1.0\n",
        );
        let d = resolve(tmp.path(), &Overrides::default()).unwrap();
        assert_eq!(
            d[0].routes,
            [
                RouteSpec {
                    method: "GET".into(),
                    path: "/users/{id}".into(),
                    function: "users".into(),
                    ..Default::default()
                },
                RouteSpec {
                    method: "ANY".into(),
                    path: "/files/{proxy+}".into(),
                    function: "users".into(),
                    auth: RouteAuth::Key,
                    cors: Some(Cors {
                        allow_origins: vec!["*".into()],
                        max_age: Some(60),
                        ..Default::default()
                    }),
                    max_body_bytes: Some(64 * 1024),
                    workflow: None,
                    payload: PayloadFormat::V1,
                },
            ]
        );
    }

    #[test]
    fn many_form_routes_under_functions_and_beside_them() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "a/app.py", "");
        write(tmp.path(), "b/app.py", "");
        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {runtime: python3.12, routes: [POST /a]}\n  b: {runtime: python3.12}\nroutes:\n  - {method: GET, path: /b, function: b, max_body: 100}\n",
        );
        let d = resolve(tmp.path(), &Overrides::default()).unwrap();
        let keys = |i: usize| {
            d[i].routes
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.function))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(0), ["POST /a a"]);
        assert_eq!(keys(1), ["GET /b b"]);
        assert_eq!(d[1].routes[0].max_body_bytes, Some(100));

        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {runtime: python3.12}\nroutes:\n  - {path: /x, function: zz}\n",
        );
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("zz") && e.contains("not in `functions`"), "{e}");
        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {runtime: python3.12, routes: [{path: /x, method: GET, bogus: 1}]}\n",
        );
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("bogus"), "{e}");
        write(
            tmp.path(),
            MANIFEST_FILE,
            "functions:\n  a: {runtime: python3.12, routes: [GET]}\n",
        );
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("METHOD /path"), "{e}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("64KB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("10GB"), Ok(10 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("").is_err());
    }
}

#[cfg(test)]
mod sequence_tests {
    use super::*;

    fn dir_with(manifest: &str) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for f in ["a", "b"] {
            std::fs::create_dir_all(tmp.path().join(f)).unwrap();
        }
        std::fs::write(tmp.path().join(MANIFEST_FILE), manifest).unwrap();
        tmp
    }

    #[test]
    fn sequences_beside_functions_with_their_routes() {
        let tmp = dir_with(
            "functions:\n  a: {runtime: python3.12}\n  b: {runtime: python3.12}\n\
             sequences:\n  ab: [a, b]\n  ba: {components: [b, a], description: back, routes: [POST /ba]}\n\
             routes:\n  - {method: GET, path: /ab, function: ab}\n  - GET /a-only\n",
        );
        // Top-level routes must name a function or sequence (the second one names none).
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("needs `function`"), "{e}");

        let tmp = dir_with(
            "functions:\n  a: {runtime: python3.12}\n  b: {runtime: python3.12}\n\
             sequences:\n  ab: [a, b]\n  ba: {components: [b, a], description: back, routes: [POST /ba]}\n\
             routes:\n  - {method: GET, path: /ab, function: ab}\n",
        );
        let functions = resolve(tmp.path(), &Overrides::default()).unwrap();
        assert_eq!(functions.len(), 2);
        assert!(functions.iter().all(|d| d.routes.is_empty()));
        let seqs = sequences(tmp.path()).unwrap();
        assert_eq!(seqs.len(), 2);
        assert_eq!(seqs[0].name, "ab");
        assert_eq!(seqs[0].body.components, ["a", "b"]);
        assert_eq!(seqs[0].routes.len(), 1);
        assert_eq!(seqs[0].routes[0].function, "ab");
        assert_eq!(seqs[1].body.description.as_deref(), Some("back"));
        assert_eq!(seqs[1].routes[0].path, "/ba");
        assert_eq!(seqs[1].routes[0].function, "ba");
        // The file itself names the same.
        assert_eq!(sequences(&tmp.path().join(MANIFEST_FILE)).unwrap(), seqs);
    }

    #[test]
    fn mappings_name_a_queue_or_a_table_and_default_to_the_single_function() {
        let tmp = dir_with(
            "runtime: python3.12\nmappings:\n  - {queue: jobs, batch_size: 5}\n  - {table: orders, starting_position: TRIM_HORIZON, bisect_on_error: true}\n",
        );
        resolve(tmp.path(), &Overrides::default()).unwrap();
        let m = mappings(tmp.path(), Some("w")).unwrap();
        let MappingDecl::Queue(q) = &m[0] else {
            panic!("{m:?}")
        };
        assert_eq!((q.queue.as_str(), q.function.as_str()), ("jobs", "w"));
        assert_eq!(q.batch_size, Some(5));
        let MappingDecl::Table(t) = &m[1] else {
            panic!("{m:?}")
        };
        assert_eq!(t.starting_position.as_deref(), Some("TRIM_HORIZON"));
        assert!(t.bisect_on_error);
        let e = format!("{:#}", mappings(tmp.path(), None).unwrap_err());
        assert!(e.contains("mappings[0]: name its `function`"), "{e}");
        for bad in [
            "mappings:\n  - {queue: q, table: t, function: f}\n",
            "mappings:\n  - {queue: q, function: f, max_retries: 2}\n",
            "mappings:\n  - {queue: q, function: f, nope: 1}\n",
        ] {
            let tmp = dir_with(bad);
            assert!(mappings(tmp.path(), None).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_sequences_are_refused_clearly() {
        let tmp = dir_with("functions:\n  a: {runtime: python3.12}\nsequences:\n  s: 3\n");
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("sequences.s: expected a list"), "{e}");
        let tmp = dir_with("runtime: python3.12\nsequences:\n  s: [a]\n");
        let e = format!(
            "{:#}",
            resolve(tmp.path(), &Overrides::default()).unwrap_err()
        );
        assert!(e.contains("`sequences` goes beside `functions`"), "{e}");
        let tmp = dir_with(
            "functions:\n  a: {runtime: python3.12}\nsequences:\n  s: {components: [a], routes: [{path: /x, function: a}]}\n",
        );
        let e = format!("{:#}", sequences(tmp.path()).unwrap_err());
        assert!(
            e.contains("names function 'a', but it is listed under 's'"),
            "{e}"
        );
    }
}
