//! Functions: names, configuration as the user writes it ([`FunctionSpec`]) and as the platform
//! runs it ([`FunctionConfig`], validated once), and the stored [`Function`].

use crate::async_invoke::{
    AsyncConfig, AsyncSpec, DEFAULT_MAX_EVENT_AGE_S, MAX_RETRIES, MIN_MAX_EVENT_AGE_S,
};
use crate::limits::*;
use crate::runtime::{Runtime, RuntimeKind, UnknownRuntime};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Why a user-supplied value was refused. Messages say what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("invalid function name '{0}': use 1-64 letters, digits, '-' or '_'")]
    InvalidName(String),
    #[error(transparent)]
    UnknownRuntime(#[from] UnknownRuntime),
    #[error("runtime '{0}' needs a handler such as 'app.handler' (file.function)")]
    MissingHandler(String),
    #[error("invalid handler '{0}': expected 'module.function' (e.g. 'app.handler')")]
    InvalidHandler(String),
    #[error("memory {0} MB is out of range: use {MIN_MEMORY_MB}-{MAX_MEMORY_MB} MB")]
    Memory(u32),
    #[error("timeout {0} s is out of range: use {MIN_TIMEOUT_S}-{MAX_TIMEOUT_S} s")]
    Timeout(u32),
    #[error("invalid environment variable name '{0}': use letters, digits and '_', starting with a letter")]
    EnvName(String),
    #[error("environment variable '{0}' is reserved by the platform")]
    EnvReserved(String),
    #[error("environment variables take {0} bytes: the limit is {MAX_ENV_BYTES}")]
    EnvTooLarge(usize),
    #[error("reserved concurrency {0} is out of range: use 0-{MAX_CONCURRENCY}")]
    ReservedConcurrency(u32),
    #[error("provisioned concurrency {0} is out of range: use 0-{MAX_PROVISIONED}, and at most the reserved concurrency")]
    ProvisionedConcurrency(u32),
    #[error("keep-alive {0} s is out of range: use 1-{MAX_KEEP_ALIVE_S} s")]
    KeepAlive(u32),
    #[error("async.max_retries {0} is out of range: use 0-{MAX_RETRIES}")]
    MaxRetries(u32),
    #[error("async.max_event_age_s {0} is out of range: use {MIN_MAX_EVENT_AGE_S}-{DEFAULT_MAX_EVENT_AGE_S} s")]
    MaxEventAge(u32),
    #[error("a sequence needs at least one function: name its components in order")]
    EmptySequence,
    #[error("a sequence has {0} components: the limit is {MAX_SEQUENCE_STEPS}")]
    SequenceTooLong(usize),
}

/// A validated function name: 1-64 of `[A-Za-z0-9_-]`, as on Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FunctionName(String);

impl FunctionName {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(FunctionName(s.to_string()))
        } else {
            Err(ValidationError::InvalidName(s.chars().take(80).collect()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FunctionName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        FunctionName::parse(&s)
    }
}

impl From<FunctionName> for String {
    fn from(n: FunctionName) -> String {
        n.0
    }
}

impl fmt::Display for FunctionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Function settings as a user writes them (API body, `lambent.yaml`, CLI flags): everything but
/// the runtime is optional and gets Lambda's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    pub runtime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handler: Option<String>,
    /// Memory in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u32>,
    /// Timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// At most this many concurrent invocations, guaranteed out of the namespace's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    /// Sandboxes kept initialized at all times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned_concurrency: Option<u32>,
    /// Seconds an idle sandbox stays warm (default: the server's keep-alive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<u32>,
    /// Retries, maximum event age and destinations of asynchronous invocations.
    #[serde(default, rename = "async", skip_serializing_if = "Option::is_none")]
    pub async_invoke: Option<AsyncSpec>,
    /// Outbound network access (default: none; the sandbox has only its own loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// Environment variables the platform sets itself; a function may not override them.
const RESERVED_ENV: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_MAX_CONCURRENCY",
    "LAMBDA_RUNTIME_DIR",
    "LAMBDA_TASK_ROOT",
];

impl FunctionSpec {
    /// Validates the spec and fills in defaults: the one place user settings become trusted.
    pub fn resolve(self) -> Result<FunctionConfig, ValidationError> {
        let runtime: Runtime = self.runtime.parse()?;
        let handler = match (self.handler, runtime.kind()) {
            (Some(h), _) if !h.is_empty() => h,
            (_, RuntimeKind::Provided) => "bootstrap".to_string(),
            _ => return Err(ValidationError::MissingHandler(runtime.name().to_string())),
        };
        if runtime.needs_handler() && !is_module_handler(&handler) {
            return Err(ValidationError::InvalidHandler(handler));
        }
        let memory_mb = self.memory.unwrap_or(DEFAULT_MEMORY_MB);
        if !(MIN_MEMORY_MB..=MAX_MEMORY_MB).contains(&memory_mb) {
            return Err(ValidationError::Memory(memory_mb));
        }
        let timeout_s = self.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
        if !(MIN_TIMEOUT_S..=MAX_TIMEOUT_S).contains(&timeout_s) {
            return Err(ValidationError::Timeout(timeout_s));
        }
        validate_env(&self.env)?;
        if let Some(r) = self.reserved_concurrency.filter(|&r| r > MAX_CONCURRENCY) {
            return Err(ValidationError::ReservedConcurrency(r));
        }
        let provisioned = self.provisioned_concurrency.unwrap_or(0);
        if provisioned
            > self
                .reserved_concurrency
                .unwrap_or(MAX_PROVISIONED)
                .min(MAX_PROVISIONED)
        {
            return Err(ValidationError::ProvisionedConcurrency(provisioned));
        }
        if let Some(k) = self
            .keep_alive
            .filter(|k| !(1..=MAX_KEEP_ALIVE_S).contains(k))
        {
            return Err(ValidationError::KeepAlive(k));
        }
        Ok(FunctionConfig {
            runtime,
            handler,
            memory_mb,
            timeout_s,
            env: self.env,
            description: self.description.unwrap_or_default(),
            reserved_concurrency: self.reserved_concurrency,
            provisioned_concurrency: provisioned,
            keep_alive_s: self.keep_alive,
            async_invoke: self.async_invoke.unwrap_or_default().resolve()?,
            network: self.network.unwrap_or(false),
            sequence: Vec::new(),
        })
    }
}

fn is_module_handler(h: &str) -> bool {
    match h.rsplit_once('.') {
        Some((module, func)) => {
            !module.is_empty()
                && !func.is_empty()
                && !h.starts_with('/')
                && !h.split('/').any(|part| part == "..")
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/$".contains(&b))
        }
        None => false,
    }
}

fn validate_env(env: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let mut total = 0;
    for (k, v) in env {
        let mut bytes = k.bytes();
        let ok = bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(ValidationError::EnvName(k.clone()));
        }
        if RESERVED_ENV.contains(&k.as_str()) {
            return Err(ValidationError::EnvReserved(k.clone()));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ENV_BYTES {
        return Err(ValidationError::EnvTooLarge(total));
    }
    Ok(())
}

/// Validated settings of a function: what the invoker and sandbox run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    pub runtime: Runtime,
    pub handler: String,
    /// Memory in MB.
    #[serde(rename = "memory")]
    pub memory_mb: u32,
    /// Timeout in seconds.
    #[serde(rename = "timeout")]
    pub timeout_s: u32,
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved_concurrency: Option<u32>,
    #[serde(default)]
    pub provisioned_concurrency: u32,
    /// Seconds an idle sandbox stays warm; `None`: the server's default.
    #[serde(
        default,
        rename = "keep_alive",
        skip_serializing_if = "Option::is_none"
    )]
    pub keep_alive_s: Option<u32>,
    /// Retries, maximum event age and destinations of asynchronous invocations.
    #[serde(default, rename = "async")]
    pub async_invoke: AsyncConfig,
    /// Outbound network access (a user-mode stack per sandbox); `false`: loopback only.
    #[serde(default)]
    pub network: bool,
    /// A sequence's components, run in this order (runtime `sequence`; empty for functions of
    /// code).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sequence: Vec<FunctionName>,
}

impl FunctionConfig {
    /// The settings of a sequence of `components` (function names, in order): no code, no
    /// sandbox; each step runs with its own component's settings. `timeout_s` is the sum of
    /// the steps' timeouts (`step_timeouts_s`), what a caller waiting for the whole sequence
    /// (a cluster hop, an async event's lease) must allow.
    pub fn sequence(
        components: &[String],
        step_timeouts_s: u32,
        description: Option<String>,
    ) -> Result<FunctionConfig, ValidationError> {
        if components.is_empty() {
            return Err(ValidationError::EmptySequence);
        }
        if components.len() > MAX_SEQUENCE_STEPS {
            return Err(ValidationError::SequenceTooLong(components.len()));
        }
        let sequence = components
            .iter()
            .map(|c| FunctionName::parse(c))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(FunctionConfig {
            runtime: Runtime::sequence(),
            handler: String::new(),
            memory_mb: 0,
            timeout_s: step_timeouts_s,
            env: BTreeMap::new(),
            description: description.unwrap_or_default(),
            reserved_concurrency: None,
            provisioned_concurrency: 0,
            keep_alive_s: None,
            async_invoke: AsyncConfig::default(),
            network: false,
            sequence,
        })
    }

    /// Whether this is a sequence (runs its components, has no code).
    pub fn is_sequence(&self) -> bool {
        self.runtime.kind() == RuntimeKind::Sequence
    }

    /// The spec that resolves to these settings: the starting point of a partial update.
    pub fn to_spec(&self) -> FunctionSpec {
        FunctionSpec {
            runtime: self.runtime.name().to_string(),
            handler: Some(self.handler.clone()),
            memory: Some(self.memory_mb),
            timeout: Some(self.timeout_s),
            env: self.env.clone(),
            description: Some(self.description.clone()),
            reserved_concurrency: self.reserved_concurrency,
            provisioned_concurrency: Some(self.provisioned_concurrency),
            keep_alive: self.keep_alive_s,
            async_invoke: Some(AsyncSpec {
                max_retries: Some(self.async_invoke.max_retries),
                max_event_age_s: Some(self.async_invoke.max_event_age_s),
                on_success: self.async_invoke.on_success.clone(),
                on_failure: self.async_invoke.on_failure.clone(),
            }),
            network: Some(self.network),
        }
    }
}

/// A deployed function: its settings plus the code it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    pub namespace: String,
    pub name: FunctionName,
    #[serde(flatten)]
    pub config: FunctionConfig,
    /// Hex SHA-256 of the code zip (the blob's address).
    pub code_sha256: String,
    pub code_size: u64,
    /// Increases by one on every change of code or settings; pools are keyed by it.
    pub revision: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_resolves_back_from_its_spec() {
        let config = FunctionSpec {
            runtime: "python3.12".into(),
            handler: Some("app.handler".into()),
            memory: Some(256),
            env: [("K".to_string(), "V".to_string())].into(),
            reserved_concurrency: Some(3),
            provisioned_concurrency: Some(1),
            keep_alive: Some(60),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.to_spec().resolve().unwrap(), config);
    }

    fn spec(runtime: &str, handler: Option<&str>) -> FunctionSpec {
        FunctionSpec {
            runtime: runtime.into(),
            handler: handler.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn sequences_are_validated() {
        let c = FunctionConfig::sequence(&["a".into(), "b-2".into()], 6, None).unwrap();
        assert!(c.is_sequence());
        assert_eq!(c.sequence.len(), 2);
        let stored = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<FunctionConfig>(&stored).unwrap(), c);
        assert_eq!(
            FunctionConfig::sequence(&[], 0, None),
            Err(ValidationError::EmptySequence)
        );
        assert!(matches!(
            FunctionConfig::sequence(&["bad name".into()], 3, None),
            Err(ValidationError::InvalidName(_))
        ));
        let long = vec!["f".to_string(); MAX_SEQUENCE_STEPS + 1];
        assert_eq!(
            FunctionConfig::sequence(&long, 3, None),
            Err(ValidationError::SequenceTooLong(MAX_SEQUENCE_STEPS + 1))
        );
    }

    #[test]
    fn names_follow_lambda_rules() {
        assert!(FunctionName::parse("hello-world_2").is_ok());
        for bad in ["", "a b", "../etc", "x".repeat(65).as_str(), "naïve", "a/b"] {
            assert!(FunctionName::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn defaults_match_lambda() {
        let c = spec("python3.12", Some("app.handler")).resolve().unwrap();
        assert_eq!((c.memory_mb, c.timeout_s), (128, 3));
        let p = spec("provided", None).resolve().unwrap();
        assert_eq!(p.handler, "bootstrap");
    }

    #[test]
    fn bad_settings_are_refused_precisely() {
        assert_eq!(
            spec("python", None).resolve(),
            Err(ValidationError::MissingHandler("python".into()))
        );
        assert!(matches!(
            spec("python", Some("nodot")).resolve(),
            Err(ValidationError::InvalidHandler(_))
        ));
        assert!(matches!(
            spec("python", Some("../x.h")).resolve(),
            Err(ValidationError::InvalidHandler(_))
        ));
        let mut s = spec("nodejs", Some("index.handler"));
        s.memory = Some(64);
        assert_eq!(s.clone().resolve(), Err(ValidationError::Memory(64)));
        s.memory = None;
        s.timeout = Some(0);
        assert_eq!(s.clone().resolve(), Err(ValidationError::Timeout(0)));
        s.timeout = None;
        s.env.insert("AWS_LAMBDA_RUNTIME_API".into(), "x".into());
        assert!(matches!(
            s.clone().resolve(),
            Err(ValidationError::EnvReserved(_))
        ));
        s.env.clear();
        s.env.insert("1BAD".into(), "x".into());
        assert!(matches!(
            s.clone().resolve(),
            Err(ValidationError::EnvName(_))
        ));
        s.env.clear();
        s.env.insert("BIG".into(), "x".repeat(5000));
        assert!(matches!(s.resolve(), Err(ValidationError::EnvTooLarge(_))));
    }
}
