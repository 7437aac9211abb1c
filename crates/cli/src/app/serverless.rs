//! Serverless Framework `serverless.yml` (v3; v4 reads the same file) into a [`Plan`].
//!
//! Variables are resolved first over the whole file: `${self:path}`, `${opt:stage}`,
//! `${sls:stage}`, `${env:NAME}`, `${file(x.json):key}`, `${construct:ID.queueUrl}`, each with
//! fallbacks after a comma (`${opt:stage, 'dev'}`). Functions are named as the Framework names
//! them on AWS, `SERVICE-STAGE-FUNCTION`, with its defaults of 1024 MB and 6 s; their code is
//! the service folder, packed through `package.patterns`. Events: `http`, `httpApi`,
//! `schedule`, `sqs`, `sns`, `s3` and `stream` (DynamoDB). `resources.Resources` goes through
//! [`super::cfn`], where functions are also referable by their logical ids
//! (`HelloLambdaFunction`). The serverless-step-functions plugin's `stepFunctions` become
//! workflows (started by `http` and `schedule` events) and serverless-lift `type: queue`
//! constructs a queue, its dead-letter queue and a worker, as Lift names them on AWS.

use super::cfn::{self, Template};
use super::events::{self, SLS_STREAM};
use super::{
    check_handler, check_runtime, inside, invalid, scalar_text, schedule, unsupported, AppError,
    Options, Plan, PlanFunction, PlanMapping, PlanNotification, PlanQueue, PlanRoute,
    PlanSubscription, PlanWorkflow, Target,
};
use lambent_core::route::PayloadFormat;
use lambent_core::AsyncSpec;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The Framework's defaults.
const DEFAULT_MEMORY: u32 = 1024;
const DEFAULT_TIMEOUT: u32 = 6;
const DEFAULT_STAGE: &str = "dev";

/// Provider keys read here; others are noted as skipped.
const PROVIDER_KEYS: &[&str] = &[
    "name",
    "runtime",
    "stage",
    "region",
    "environment",
    "memorySize",
    "timeout",
];

/// Variable resolution over one file.
struct Vars<'a> {
    root: &'a Value,
    dir: &'a Path,
    options: &'a Options,
}

impl Vars<'_> {
    fn stage(&self) -> Result<String, AppError> {
        if let Some(s) = &self.options.stage {
            return Ok(s.clone());
        }
        match self.root.get("provider").and_then(|p| p.get("stage")) {
            Some(v) => {
                Ok(scalar_text(&self.resolve(v, 0)?).unwrap_or_else(|| DEFAULT_STAGE.into()))
            }
            None => Ok(DEFAULT_STAGE.into()),
        }
    }

    /// `v` with every `${…}` resolved.
    fn resolve(&self, v: &Value, depth: usize) -> Result<Value, AppError> {
        if depth > 20 {
            return Err(AppError::Cycle(
                "serverless.yml variables refer to each other".into(),
            ));
        }
        match v {
            Value::String(s) if s.contains("${") => self.string(s, depth),
            Value::Mapping(m) => Ok(Value::Mapping(
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), self.resolve(v, depth)?)))
                    .collect::<Result<Mapping, AppError>>()?,
            )),
            Value::Sequence(s) => Ok(Value::Sequence(
                s.iter()
                    .map(|x| self.resolve(x, depth))
                    .collect::<Result<_, _>>()?,
            )),
            Value::Tagged(t) => {
                let mut t = t.clone();
                t.value = self.resolve(&t.value, depth)?;
                Ok(Value::Tagged(t))
            }
            other => Ok(other.clone()),
        }
    }

    fn string(&self, s: &str, depth: usize) -> Result<Value, AppError> {
        let Some((start, end)) = innermost(s) else {
            return Ok(Value::String(s.to_string()));
        };
        let inner = &s[start + 2..end];
        if !is_variable(inner) {
            // CloudFormation's own `${AWS::Region}` (inside `!Sub`) is left for it.
            let kept = format!("{}{KEPT}{inner}}}{}", &s[..start], &s[end + 1..]);
            return self.resolve(&Value::String(kept), depth);
        }
        let value = self.variable(inner)?;
        if start == 0 && end == s.len() - 1 {
            return self.resolve(&value, depth + 1);
        }
        let text = scalar_text(&value)
            .ok_or_else(|| invalid(s, "a variable inside a longer string must give a string"))?;
        let joined = format!("{}{text}{}", &s[..start], &s[end + 1..]);
        self.resolve(&Value::String(joined), depth + 1)
    }

    /// `${construct:ID.queueUrl}` / `${construct:ID.queueArn}` of a serverless-lift queue.
    fn construct(&self, rest: &str) -> Result<Value, AppError> {
        let at = format!("${{construct:{rest}}}");
        let (id, property) = rest
            .split_once('.')
            .ok_or_else(|| invalid(&at, "expected ${construct:NAME.PROPERTY}"))?;
        let kind = self
            .root
            .get("constructs")
            .and_then(|c| c.get(id))
            .and_then(|c| c.get("type"))
            .and_then(scalar_text);
        if kind.as_deref() != Some("queue") {
            return Err(invalid(&at, format!("there is no queue construct '{id}'")));
        }
        let service = match self.root.get("service") {
            Some(v) => service_name(Some(&self.resolve(v, 0)?))?,
            None => service_name(None)?,
        };
        let queue = lift_queue(&service, &self.stage()?, id);
        match property {
            "queueUrl" => Ok(Value::String(super::queue_url(&queue))),
            "queueArn" => Ok(Value::String(super::queue_arn(&queue))),
            other => Err(unsupported(
                at,
                other,
                "a queue construct has queueUrl and queueArn",
            )),
        }
    }

    /// One variable: sources separated by commas, the first that has a value wins.
    fn variable(&self, inner: &str) -> Result<Value, AppError> {
        for source in split_top(inner) {
            let source = source.trim();
            if let Some(v) = self.source(source)? {
                return Ok(v);
            }
        }
        Err(invalid(
            format!("${{{inner}}}"),
            "the variable has no value",
        ))
    }

    fn source(&self, source: &str) -> Result<Option<Value>, AppError> {
        let quoted = |q: char| source.strip_prefix(q).and_then(|r| r.strip_suffix(q));
        if let Some(literal) = quoted('\'').or_else(|| quoted('"')) {
            return Ok(Some(Value::String(literal.to_string())));
        }
        if let Ok(n) = source.parse::<i64>() {
            return Ok(Some(Value::Number(n.into())));
        }
        if let Some(path) = source.strip_prefix("self:") {
            return Ok(lookup(self.root, path).cloned());
        }
        if let Some(name) = source.strip_prefix("opt:") {
            return Ok(match name {
                "stage" => self.options.stage.clone().map(Value::String),
                _ => None,
            });
        }
        if source == "sls:stage" {
            return Ok(Some(Value::String(self.stage()?)));
        }
        if source == "sls:instanceId" {
            return Ok(Some(Value::String("lambent".into())));
        }
        if let Some(rest) = source.strip_prefix("construct:") {
            return self.construct(rest).map(Some);
        }
        if let Some(name) = source.strip_prefix("env:") {
            return Ok(self.options.env.get(name).cloned().map(Value::String));
        }
        if let Some(rest) = source.strip_prefix("file(") {
            let (file, key) = rest
                .split_once(')')
                .ok_or_else(|| invalid(source, "expected ${file(path):key}"))?;
            let path = inside(self.dir, file.trim(), &format!("${{{source}}}"))?;
            let text = std::fs::read_to_string(&path).map_err(|e| AppError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let content: Value = super::parse_yaml(file, &text)?;
            let key = key.trim_start_matches(':');
            return Ok(if key.is_empty() {
                Some(content)
            } else {
                lookup(&content, key).cloned()
            });
        }
        Err(unsupported(
            format!("${{{source}}}"),
            source.split(':').next().unwrap_or(source),
            "Lambent resolves self:, opt:stage, sls:stage, env: and file() variables",
        ))
    }
}

/// Stands for `${` of a `${…}` that is not a Framework variable while the rest resolve.
const KEPT: &str = "$\u{1}{";

/// Whether `${inner}` is a Framework variable (else CloudFormation's, left alone).
fn is_variable(inner: &str) -> bool {
    let first = split_top(inner)[0].trim();
    [
        "self:",
        "opt:",
        "sls:",
        "env:",
        "file(",
        "ssm:",
        "cf:",
        "s3:",
        "construct:",
    ]
    .iter()
    .any(|p| first.starts_with(p))
}

/// Puts the kept `${` back.
fn restore(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(s.replace(KEPT, "${")),
        Value::Mapping(m) => Value::Mapping(m.into_iter().map(|(k, v)| (k, restore(v))).collect()),
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(restore).collect()),
        Value::Tagged(mut t) => {
            t.value = restore(t.value);
            Value::Tagged(t)
        }
        other => other,
    }
}

/// The innermost `${…}` (start of `${`, index of `}`).
fn innermost(s: &str) -> Option<(usize, usize)> {
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c == '$' && s[i + 1..].starts_with('{') {
            start = Some(i);
        } else if c == '}' {
            if let Some(st) = start {
                return Some((st, i));
            }
        }
    }
    None
}

/// Splits on commas outside quotes and parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut quote, mut last) = (Vec::new(), 0, None, 0);
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('(', None) => depth += 1,
            (')', None) => depth -= 1,
            (',', None) if depth == 0 => {
                out.push(&s[last..i]);
                last = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[last..]);
    out
}

/// `a.b.c` in a YAML tree.
fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.')
        .filter(|p| !p.is_empty())
        .try_fold(root, |v, key| v.get(key))
}

/// Function keys read here; others are noted as skipped.
const FUNCTION_KEYS: &[&str] = &[
    "handler",
    "runtime",
    "environment",
    "memorySize",
    "timeout",
    "reservedConcurrency",
    "provisionedConcurrency",
    "events",
    "name",
    "description",
    "package",
    "image",
    "layers",
    "maximumRetryAttempts",
    "maximumEventAge",
    "destinations",
    "onError",
    "url",
];

/// The Framework's logical id of a name: `my-fn_x` → `MyDashfnUnderscorex`.
fn logical_id(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        match c {
            '-' => out.push_str("Dash"),
            '_' => out.push_str("Underscore"),
            c if i == 0 => out.extend(c.to_uppercase()),
            c => out.push(c),
        }
    }
    out
}

/// The service's name (`service: x` or `service: {name: x}`).
fn service_name(service: Option<&Value>) -> Result<String, AppError> {
    match service {
        Some(Value::Mapping(m)) => m.get("name").and_then(scalar_text),
        Some(v) => scalar_text(v),
        None => None,
    }
    .ok_or_else(|| invalid("service", "serverless.yml names its service"))
}

/// The queue serverless-lift makes of construct `id`, as on AWS.
fn lift_queue(service: &str, stage: &str, id: &str) -> String {
    format!("{service}-{stage}-{id}")
}

pub(super) fn plan(dir: &Path, raw: Value, options: &Options) -> Result<Plan, AppError> {
    let vars = Vars {
        root: &raw,
        dir,
        options,
    };
    let root = restore(vars.resolve(&raw, 0)?);
    let stage = vars.stage()?;
    let service = service_name(root.get("service"))?;
    let empty = Value::Mapping(Mapping::new());
    let provider = root.get("provider").unwrap_or(&empty);
    let provider_name = provider
        .get("name")
        .and_then(scalar_text)
        .unwrap_or_default();
    if provider_name != "aws" {
        return Err(invalid(
            "provider.name",
            format!("'{provider_name}': Lambent deploys 'aws' services"),
        ));
    }
    let mut plan = Plan::default();
    if let Value::Mapping(m) = provider {
        for k in m.keys().filter_map(Value::as_str) {
            if !PROVIDER_KEYS.contains(&k) {
                plan.skip(format!("provider.{k}"), "not applied by Lambent");
            }
        }
    }
    plugins(&root, &mut plan)?;
    let resources = root
        .get("resources")
        .cloned()
        .unwrap_or(Value::Mapping(Mapping::new()));
    let mut t = Template::new(
        format!("{service}-{stage}"),
        BTreeMap::new(),
        resources.as_mapping().unwrap_or(&Mapping::new()),
    );
    let mut functions: Vec<(String, Value)> = match root.get("functions") {
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, f)| (scalar_text(k).unwrap_or_default(), f.clone()))
            .collect(),
        _ => Vec::new(),
    };
    constructs(&root, &service, &stage, &mut plan, &mut functions)?;
    let name_of = |key: &str, f: &Value| {
        f.get("name")
            .and_then(scalar_text)
            .unwrap_or_else(|| format!("{service}-{stage}-{key}"))
    };
    for (key, f) in &functions {
        let name = name_of(key, f);
        for id in [format!("{}LambdaFunction", logical_id(key)), key.clone()] {
            t.add_implicit(&id, "AWS::Lambda::Function", "FunctionName", &name);
        }
    }
    let machines = state_machines(&root);
    for (key, sm) in &machines {
        let name = machine_name(&service, &stage, key, sm);
        let ids = [
            sm.get("id").and_then(scalar_text),
            Some(format!("{}StepFunctionsStateMachine", logical_id(key))),
        ];
        for id in ids.into_iter().flatten() {
            t.add_implicit(
                &id,
                "AWS::StepFunctions::StateMachine",
                "StateMachineName",
                &name,
            );
        }
    }
    t.plain_resources(&mut plan, &[])?;
    let service_patterns = patterns("package", root.get("package"), &mut plan)?;
    let code = inside(dir, ".", "service")?;
    let env_of = |v: Option<&Value>, at: &str| -> Result<BTreeMap<String, String>, AppError> {
        match v {
            Some(Value::Mapping(m)) => m
                .iter()
                .map(|(k, v)| {
                    let k = scalar_text(k).unwrap_or_default();
                    Ok((k.clone(), t.text(v, &format!("{at}.{k}"))?))
                })
                .collect(),
            _ => Ok(BTreeMap::new()),
        }
    };
    let provider_env = env_of(provider.get("environment"), "provider.environment")?;
    let number = |v: Option<&Value>, at: &str| -> Result<Option<u32>, AppError> {
        v.map(|v| {
            scalar_text(v)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| invalid(at, "expected a number"))
        })
        .transpose()
    };
    let keys: BTreeMap<String, String> = functions
        .iter()
        .map(|(k, f)| (k.clone(), name_of(k, f)))
        .collect();
    for (key, f) in &functions {
        let at = format!("functions.{key}");
        let name = name_of(key, f);
        if f.get("image").is_some() {
            return Err(unsupported(
                &at,
                "image",
                "Lambent runs zip packages, not container images",
            ));
        }
        if f.get("layers").is_some() {
            return Err(unsupported(
                &at,
                "layers",
                "Lambent has no layers: package the code with the function",
            ));
        }
        let runtime = f
            .get("runtime")
            .or_else(|| provider.get("runtime"))
            .and_then(scalar_text)
            .ok_or_else(|| {
                invalid(
                    &at,
                    "no runtime (neither the function's nor provider.runtime)",
                )
            })?;
        check_runtime(&at, &runtime)?;
        let handler = f
            .get("handler")
            .and_then(scalar_text)
            .ok_or_else(|| invalid(&at, "handler is missing"))?;
        check_handler(&at, &code, &runtime, &handler)?;
        let mut env = provider_env.clone();
        env.extend(env_of(f.get("environment"), &format!("{at}.environment"))?);
        let mut function_patterns = service_patterns.clone();
        function_patterns.extend(patterns(
            &format!("{at}.package"),
            f.get("package"),
            &mut plan,
        )?);
        let async_invoke = async_config(&t, &at, f, &keys, &mut plan)?;
        for k in f
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(Value::as_str)
        {
            if let Some(why) = super::function_setting_note(k) {
                plan.skip(format!("{at}.{k}"), why);
            } else if !FUNCTION_KEYS.contains(&k) {
                plan.skip(format!("{at}.{k}"), "not applied by Lambent");
            }
        }
        if let Some(url) = f.get("url").filter(|u| u.as_bool() != Some(false)) {
            if url.get("authorizer").and_then(scalar_text).as_deref() == Some("aws_iam") {
                plan.note(
                    format!("{at}.url.authorizer"),
                    "aws_iam: Lambent's routes are open (add auth: key in lambent.yaml to require a key)",
                );
            }
            super::function_url(&mut plan, &name, url.get("cors").is_some());
        }
        plan.functions.push(PlanFunction {
            name: name.clone(),
            code: code.clone(),
            inline: None,
            runtime,
            handler,
            memory: Some(
                number(
                    f.get("memorySize").or(provider.get("memorySize")),
                    &format!("{at}.memorySize"),
                )?
                .unwrap_or(DEFAULT_MEMORY),
            ),
            timeout: Some(
                number(
                    f.get("timeout").or(provider.get("timeout")),
                    &format!("{at}.timeout"),
                )?
                .unwrap_or(DEFAULT_TIMEOUT),
            ),
            env,
            description: f.get("description").and_then(scalar_text),
            reserved_concurrency: number(
                f.get("reservedConcurrency"),
                &format!("{at}.reservedConcurrency"),
            )?,
            provisioned_concurrency: number(
                f.get("provisionedConcurrency"),
                &format!("{at}.provisionedConcurrency"),
            )?,
            async_invoke,
            alias: None,
            patterns: function_patterns,
        });
        let target = Target::Function(name);
        for (i, ev) in f
            .get("events")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            event(&t, &target, &format!("{at}.events[{i}]"), i, ev, &mut plan)?;
        }
    }
    for (key, sm) in &machines {
        let workflow = state_machine(&t, &service, &stage, key, sm, &mut plan)?;
        plan.workflows.push(workflow);
    }
    if let Some(Value::Mapping(sf)) = root.get("stepFunctions") {
        for k in sf.keys().filter_map(Value::as_str) {
            match k {
                "stateMachines" => {}
                "validate" | "noOutput" => plan.skip(
                    format!("stepFunctions.{k}"),
                    "the server checks each definition when it is deployed",
                ),
                other => {
                    return Err(unsupported(
                        "stepFunctions",
                        other,
                        "Lambent deploys stepFunctions.stateMachines",
                    ))
                }
            }
        }
    }
    Ok(plan)
}

/// `package` (of the service or a function): `patterns` (and v2's `exclude`/`include`) as
/// one ordered list of globs, `!` excluding; a ready-made `artifact` is refused.
fn patterns(at: &str, package: Option<&Value>, plan: &mut Plan) -> Result<Vec<String>, AppError> {
    let Some(package) = package else {
        return Ok(Vec::new());
    };
    let list = |k: &str| -> Vec<String> {
        package
            .get(k)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .filter_map(scalar_text)
            .collect()
    };
    let mut out: Vec<String> = list("exclude").iter().map(|x| format!("!{x}")).collect();
    out.extend(list("include"));
    out.extend(list("patterns"));
    for k in package
        .as_mapping()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(Value::as_str)
    {
        match k {
            "patterns" | "include" | "exclude" => {}
            "artifact" => {
                return Err(unsupported(
                    at,
                    "artifact",
                    "Lambent packs the service folder: deploy the folder, not a built zip",
                ))
            }
            "individually" => plan.note(
                format!("{at}.individually"),
                "each function is packed from the service folder with its own patterns",
            ),
            other => plan.skip(format!("{at}.{other}"), "not applied by Lambent"),
        }
    }
    Ok(out)
}

/// A function's asynchronous settings: `maximumRetryAttempts`, `maximumEventAge`,
/// `destinations` (an ARN, a function of the service, or `{type, arn}`) and `onError` (the
/// dead-letter target, when `destinations.onFailure` is not given).
fn async_config(
    t: &Template,
    at: &str,
    f: &Value,
    functions: &BTreeMap<String, String>,
    plan: &mut Plan,
) -> Result<Option<AsyncSpec>, AppError> {
    let number = |k: &str| -> Result<Option<u32>, AppError> {
        f.get(k)
            .and_then(scalar_text)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("{at}.{k}"), "expected a number"))
            })
            .transpose()
    };
    let target = |v: &Value, at: &str| -> Result<lambent_core::Destination, AppError> {
        let arn = match v.get("arn") {
            Some(a) => t.text(a, at)?,
            None => t.text(v, at)?,
        };
        if let Some(name) = functions.get(&arn) {
            return events::destination(at, &super::function_arn(name));
        }
        if arn.contains(':') {
            events::destination(at, &arn)
        } else {
            events::destination(at, &super::function_arn(&arn))
        }
    };
    let dest = f.get("destinations");
    let which = |k: &str| -> Result<Option<lambent_core::Destination>, AppError> {
        dest.and_then(|d| d.get(k))
            .map(|v| target(v, &format!("{at}.destinations.{k}")))
            .transpose()
    };
    let mut spec = AsyncSpec {
        max_retries: number("maximumRetryAttempts")?,
        max_event_age_s: number("maximumEventAge")?,
        on_success: which("onSuccess")?,
        on_failure: which("onFailure")?,
    };
    if let Some(on_error) = f.get("onError") {
        let on_error_at = format!("{at}.onError");
        if spec.on_failure.is_some() {
            plan.skip(
                on_error_at,
                "destinations.onFailure receives the failed events",
            );
        } else {
            spec.on_failure = Some(target(on_error, &on_error_at)?);
            plan.note(
                on_error_at,
                "a failure destination: the message is the invocation record, the event in its requestPayload",
            );
        }
    }
    Ok((spec != AsyncSpec::default()).then_some(spec))
}

/// serverless-lift `constructs`: each `type: queue` becomes its queue, the queue's
/// dead-letter queue (`maxRetries` receives, default 3) and a worker function reading it
/// (`batchSize` default 1, partial batch failures reported), named as Lift names them.
fn constructs(
    root: &Value,
    service: &str,
    stage: &str,
    plan: &mut Plan,
    functions: &mut Vec<(String, Value)>,
) -> Result<(), AppError> {
    let Some(Value::Mapping(constructs)) = root.get("constructs") else {
        return Ok(());
    };
    for (id, c) in constructs {
        let id = scalar_text(id).unwrap_or_default();
        let at = format!("constructs.{id}");
        let kind = c.get("type").and_then(scalar_text).unwrap_or_default();
        if kind != "queue" {
            return Err(unsupported(
                &at,
                format!("type: {kind}"),
                "Lambent makes serverless-lift queue constructs only",
            ));
        }
        if c.get("fifo").and_then(Value::as_bool) == Some(true) {
            return Err(unsupported(
                &at,
                "fifo",
                "Lambent's queues are standard queues",
            ));
        }
        let number = |k: &str, default: u32| -> Result<u32, AppError> {
            match c.get(k).and_then(scalar_text) {
                Some(v) => v
                    .parse()
                    .map_err(|_| invalid(format!("{at}.{k}"), "expected a number")),
                None => Ok(default),
            }
        };
        let mut worker = c
            .get("worker")
            .cloned()
            .ok_or_else(|| invalid(&at, "a queue construct needs a worker"))?;
        let timeout = worker
            .get("timeout")
            .and_then(scalar_text)
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(DEFAULT_TIMEOUT);
        let queue = lift_queue(service, stage, &id);
        let dlq = format!("{queue}-dlq");
        plan.queues.push(PlanQueue {
            name: queue.clone(),
            visibility_timeout: Some(6 * timeout),
            delay: c
                .get("delay")
                .and_then(scalar_text)
                .and_then(|d| d.parse().ok()),
            dead_letter_queue: Some(dlq.clone()),
            max_receive_count: Some(number("maxRetries", 3)?),
        });
        plan.queues.push(PlanQueue {
            name: dlq,
            ..Default::default()
        });
        let mut sqs = Mapping::new();
        sqs.insert("arn".into(), super::queue_arn(&queue).into());
        sqs.insert("batchSize".into(), number("batchSize", 1)?.into());
        if let Some(w) = c.get("maxBatchingWindow") {
            sqs.insert("maximumBatchingWindow".into(), w.clone());
        }
        sqs.insert(
            "functionResponseType".into(),
            "ReportBatchItemFailures".into(),
        );
        let mut event = Mapping::new();
        event.insert("sqs".into(), Value::Mapping(sqs));
        if let Value::Mapping(w) = &mut worker {
            w.insert(
                "events".into(),
                Value::Sequence(vec![Value::Mapping(event)]),
            );
        }
        for k in c
            .as_mapping()
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(Value::as_str)
        {
            if !matches!(
                k,
                "type"
                    | "worker"
                    | "maxRetries"
                    | "batchSize"
                    | "maxBatchingWindow"
                    | "delay"
                    | "fifo"
            ) {
                plan.skip(format!("{at}.{k}"), "not applied by Lambent");
            }
        }
        functions.push((format!("{id}Worker"), worker));
    }
    Ok(())
}

/// `stepFunctions.stateMachines` (the serverless-step-functions plugin), by key.
fn state_machines(root: &Value) -> Vec<(String, Value)> {
    root.get("stepFunctions")
        .and_then(|s| s.get("stateMachines"))
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .map(|(k, v)| (scalar_text(k).unwrap_or_default(), v.clone()))
        .collect()
}

/// A state machine's name: its `name`, else `SERVICE-STAGE-KEY`.
fn machine_name(service: &str, stage: &str, key: &str, sm: &Value) -> String {
    sm.get("name")
        .and_then(scalar_text)
        .unwrap_or_else(|| format!("{service}-{stage}-{key}"))
}

/// One state machine of the plugin: its definition (intrinsics evaluated: functions are
/// referred to by key, `Fn::GetAtt: [hello, Arn]`, or logical id), type and `http` /
/// `schedule` events.
fn state_machine(
    t: &Template,
    service: &str,
    stage: &str,
    key: &str,
    sm: &Value,
    plan: &mut Plan,
) -> Result<PlanWorkflow, AppError> {
    let at = format!("stepFunctions.stateMachines.{key}");
    let name = machine_name(service, stage, key, sm);
    let definition = sm
        .get("definition")
        .ok_or_else(|| invalid(&at, "a state machine needs a definition"))?;
    let definition = match t.eval(definition, &format!("{at}.definition"))? {
        Value::String(json) => serde_json::from_str(&json)
            .map_err(|e| invalid(format!("{at}.definition"), format!("not JSON: {e}")))?,
        v => cfn::to_json(&v, &format!("{at}.definition"))?,
    };
    for k in sm
        .as_mapping()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(Value::as_str)
    {
        match k {
            "name" | "id" | "definition" | "type" | "events" => {}
            "role" => plan.skip(
                format!("{at}.role"),
                "Lambent has no IAM; access is per namespace",
            ),
            other => plan.skip(format!("{at}.{other}"), "not applied by Lambent"),
        }
    }
    let target = Target::Workflow(name.clone());
    for (i, ev) in sm
        .get("events")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .enumerate()
    {
        event(t, &target, &format!("{at}.events[{i}]"), i, ev, plan)?;
    }
    Ok(PlanWorkflow {
        name,
        definition,
        kind: sm.get("type").and_then(scalar_text),
    })
}

/// Plugins: the ones that only change packaging or local runs are noted; build steps and
/// constructs Lambent cannot make are refused.
fn plugins(root: &Value, plan: &mut Plan) -> Result<(), AppError> {
    let list = match root.get("plugins") {
        Some(Value::Sequence(s)) => s.clone(),
        Some(Value::Mapping(m)) => m
            .get("modules")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    for p in list.iter().filter_map(Value::as_str) {
        let at = format!("plugins.{p}");
        match p {
            "serverless-offline" => {
                plan.skip(at, "local emulation: Lambent runs the functions itself")
            }
            "serverless-python-requirements" => plan.skip(
                at,
                "requirements.txt is installed when the code is uploaded",
            ),
            "serverless-plugin-typescript" | "serverless-webpack" | "serverless-esbuild" => {
                return Err(unsupported(
                    at,
                    p,
                    "the code needs a build step: build it, then deploy the output",
                ))
            }
            "serverless-lift" => plan.note(at, "queue constructs are made by Lambent itself"),
            "serverless-step-functions" => plan.note(
                at,
                "stepFunctions.stateMachines are deployed as Lambent workflows",
            ),
            _ => plan.skip(at, "plugin not run by Lambent"),
        }
    }
    Ok(())
}

/// `GET /x` or `get x` into (method, path with a leading `/`).
fn method_path(method: &str, path: &str) -> (String, String) {
    let method = match method.trim().to_ascii_uppercase().as_str() {
        "*" | "ANY" => "ANY".to_string(),
        m => m.to_string(),
    };
    let path = path.trim();
    let path = if path == "*" {
        "/{proxy+}".to_string()
    } else if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    (method, path)
}

fn event(
    t: &Template,
    target: &Target,
    at: &str,
    index: usize,
    ev: &Value,
    plan: &mut Plan,
) -> Result<(), AppError> {
    let Some((kind, spec)) = ev.as_mapping().and_then(|m| m.iter().next()) else {
        return Err(invalid(at, "an event is a mapping such as {http: …}"));
    };
    let kind = scalar_text(kind).unwrap_or_default();
    let get = |k: &str| spec.get(k);
    let text = |k: &str| get(k).and_then(scalar_text);
    let function = match target {
        Target::Function(f) => f.as_str(),
        _ if matches!(kind.as_str(), "http" | "httpApi" | "schedule") => "",
        _ => {
            return Err(unsupported(
                at,
                kind,
                "a state machine starts from http and schedule events in Lambent",
            ))
        }
    };
    match kind.as_str() {
        "http" | "httpApi" => {
            let (method, path) = match spec {
                Value::String(s) if s.trim() == "*" => ("ANY".to_string(), "*".to_string()),
                Value::String(s) => {
                    let (m, p) = s
                        .trim()
                        .split_once(char::is_whitespace)
                        .ok_or_else(|| invalid(at, format!("'{s}': expected 'METHOD path'")))?;
                    (m.to_string(), p.to_string())
                }
                _ => (
                    text("method").unwrap_or_else(|| "ANY".into()),
                    text("path").ok_or_else(|| invalid(at, "the event needs a path"))?,
                ),
            };
            let (method, path) = method_path(&method, &path);
            let cors = kind == "http" && get("cors").is_some_and(|c| c.as_bool() != Some(false));
            let payload = if kind == "http" {
                PayloadFormat::V1
            } else {
                PayloadFormat::V2
            };
            if path == "/{proxy+}" && kind == "httpApi" {
                // `'*'` catches every path, `/` included.
                plan.routes.push(PlanRoute {
                    method: method.clone(),
                    path: "/".into(),
                    target: target.clone(),
                    payload,
                    cors,
                });
            }
            plan.routes.push(PlanRoute {
                method,
                path,
                target: target.clone(),
                payload,
                cors,
            });
        }
        "schedule" => {
            let (rates, enabled) = match spec {
                Value::String(s) => (vec![s.clone()], true),
                _ => {
                    let rates = match get("rate") {
                        Some(Value::Sequence(rs)) => rs.iter().filter_map(scalar_text).collect(),
                        Some(r) => scalar_text(r).into_iter().collect(),
                        None => return Err(invalid(at, "a schedule needs a rate")),
                    };
                    (
                        rates,
                        get("enabled").and_then(Value::as_bool).unwrap_or(true),
                    )
                }
            };
            if !enabled {
                plan.skip(at, "enabled: false");
                return Ok(());
            }
            for key in ["input", "inputPath", "inputTransformer"] {
                if get(key).is_some() {
                    return Err(unsupported(
                        at,
                        key,
                        "Lambent's schedules send EventBridge's scheduled event",
                    ));
                }
            }
            let owner = target.name();
            for (j, rate) in rates.iter().enumerate() {
                let name = text("name")
                    .filter(|_| rates.len() == 1)
                    .unwrap_or_else(|| format!("{owner}-schedule-{}", index + j + 1));
                plan.schedules
                    .push(schedule(name, target.clone(), rate, at)?);
            }
        }
        "sqs" => {
            let arn_value = match spec {
                Value::Mapping(_) => get("arn")
                    .cloned()
                    .ok_or_else(|| invalid(at, "an sqs event needs arn"))?,
                other => other.clone(),
            };
            let arn = t.text(&arn_value, at)?;
            let queue = super::name_from_arn(&arn)
                .ok_or_else(|| invalid(at, format!("arn '{arn}' names no queue")))?;
            if get("enabled").and_then(Value::as_bool) == Some(false) {
                plan.skip(at, "enabled: false");
                return Ok(());
            }
            plan.mappings.push(PlanMapping {
                queue,
                function: function.into(),
                batch_size: text("batchSize").and_then(|b| b.parse().ok()),
                batching_window_ms: text("maximumBatchingWindow")
                    .and_then(|w| w.parse::<u64>().ok())
                    .map(|s| s * 1000),
                report_batch_item_failures: events::reports_failures(get("functionResponseType")),
            });
        }
        "sns" => {
            let topic = match spec {
                Value::String(s) => super::name_from_arn(s).unwrap_or_else(|| s.clone()),
                _ => {
                    let by_arn = get("arn")
                        .map(|a| t.text(a, at))
                        .transpose()?
                        .and_then(|a| super::name_from_arn(&a));
                    by_arn
                        .or_else(|| text("topicName"))
                        .ok_or_else(|| invalid(at, "an sns event needs a topic name or arn"))?
                }
            };
            if get("filterPolicy").is_some() {
                return Err(unsupported(
                    at,
                    "filterPolicy",
                    "Lambent's subscriptions deliver every message",
                ));
            }
            if !plan.topics.contains(&topic) {
                plan.topics.push(topic.clone());
            }
            plan.subscriptions.push(PlanSubscription {
                topic,
                kind: "function",
                target: function.into(),
            });
        }
        "s3" => {
            let spec = t.eval(spec, at)?;
            let (bucket, existing) = match &spec {
                Value::Mapping(_) => (
                    spec.get("bucket")
                        .and_then(scalar_text)
                        .ok_or_else(|| invalid(at, "an s3 event needs a bucket"))?,
                    spec.get("existing").and_then(scalar_text).as_deref() == Some("true"),
                ),
                other => (
                    scalar_text(other).ok_or_else(|| invalid(at, "an s3 event names a bucket"))?,
                    false,
                ),
            };
            let (prefix, suffix) = events::key_filter(at, spec.get("rules"))?;
            if spec.get("forceDeploy").is_some() {
                plan.skip(
                    format!("{at}.forceDeploy"),
                    "the notification is set at every deploy",
                );
            }
            super::add_bucket(plan, &bucket, !existing);
            plan.notifications.push(PlanNotification {
                bucket,
                target: target.clone(),
                events: events::s3_events(spec.get("event")),
                prefix,
                suffix,
            });
        }
        "stream" => {
            let spec = t.eval(spec, at)?;
            let empty = Value::Mapping(Mapping::new());
            let (arn, props) = match &spec {
                Value::Mapping(_) => (
                    spec.get("arn")
                        .and_then(scalar_text)
                        .ok_or_else(|| invalid(at, "a stream event needs arn"))?,
                    &spec,
                ),
                other => (
                    scalar_text(other).ok_or_else(|| invalid(at, "a stream event names an arn"))?,
                    &empty,
                ),
            };
            if props.get("type").and_then(scalar_text).as_deref() == Some("kinesis") {
                return Err(unsupported(
                    at,
                    "type: kinesis",
                    "Lambent has DynamoDB streams, not Kinesis",
                ));
            }
            let on_failure = props
                .get("destinations")
                .and_then(|d| d.get("onFailure"))
                .and_then(|d| d.get("arn").or(Some(d)))
                .and_then(scalar_text);
            if let Some(m) =
                events::stream_mapping(at, function, &arn, props, &SLS_STREAM, on_failure, plan)?
            {
                plan.stream_mappings.push(m);
            }
        }
        other => {
            return Err(unsupported(
                at,
                other,
                "Lambent has no such event source (yet): remove the event to deploy the rest",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(yaml: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("serverless.yml"), yaml).unwrap();
        for (f, text) in files {
            std::fs::write(dir.path().join(f), text).unwrap();
        }
        dir
    }

    fn run(dir: &Path, stage: Option<&str>) -> Result<Plan, AppError> {
        let options = Options {
            stage: stage.map(String::from),
            env: [("GREETING".to_string(), "hey".to_string())].into(),
            ..Default::default()
        };
        let raw =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join("serverless.yml")).unwrap())
                .unwrap();
        plan(dir, raw, &options)
    }

    const APP: &str = r#"
service: shop
frameworkVersion: '3'
custom:
  table: ${self:service}-${sls:stage}-items
provider:
  name: aws
  runtime: python3.12
  stage: ${opt:stage, 'dev'}
  iam: {role: {statements: []}}
  environment:
    TABLE: ${self:custom.table}
    GREETING: ${env:GREETING, 'hello'}
    LIMIT: ${file(config.json):limit}
    JOBS: !Ref Jobs
plugins: [serverless-offline, serverless-python-requirements]
package: {patterns: ['!node_modules/**', '!tests/**']}
functions:
  api:
    handler: handler.main
    memorySize: 256
    events:
      - http: GET hello/{name}
      - http: {path: items, method: post, cors: true}
      - httpApi: 'GET /v2/hello'
      - httpApi: '*'
  worker:
    handler: handler.main
    reservedConcurrency: 2
    events:
      - sqs: {arn: !GetAtt Jobs.Arn, batchSize: 5, functionResponseType: ReportBatchItemFailures}
      - sns: news
      - schedule: cron(0/2 * ? * MON-FRI *)
resources:
  Resources:
    Jobs:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: ${self:service}-${sls:stage}-jobs
        RedrivePolicy: {deadLetterTargetArn: {'Fn::GetAtt': [Dead, Arn]}, maxReceiveCount: 2}
    Dead: {Type: AWS::SQS::Queue, Properties: {QueueName: shop-dead}}
"#;

    #[test]
    fn a_service_becomes_a_plan() {
        let dir = app(
            APP,
            &[("handler.py", ""), ("config.json", r#"{"limit": 7}"#)],
        );
        let plan = run(dir.path(), None).unwrap();
        let api = &plan.functions[0];
        assert_eq!(api.name, "shop-dev-api");
        assert_eq!((api.memory, api.timeout), (Some(256), Some(6)));
        assert_eq!(api.env["TABLE"], "shop-dev-items");
        assert_eq!(api.env["GREETING"], "hey");
        assert_eq!(api.env["LIMIT"], "7");
        assert_eq!(api.env["JOBS"], "${lambent:queue-url:shop-dev-jobs}");
        let worker = &plan.functions[1];
        assert_eq!(
            (worker.memory, worker.reserved_concurrency),
            (Some(1024), Some(2))
        );
        let routes: Vec<_> = plan
            .routes
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str(), r.payload, r.cors))
            .collect();
        assert_eq!(
            routes,
            [
                ("GET", "/hello/{name}", PayloadFormat::V1, false),
                ("POST", "/items", PayloadFormat::V1, true),
                ("GET", "/v2/hello", PayloadFormat::V2, false),
                ("ANY", "/", PayloadFormat::V2, false),
                ("ANY", "/{proxy+}", PayloadFormat::V2, false),
            ]
        );
        assert_eq!(plan.mappings[0].queue, "shop-dev-jobs");
        assert!(plan.mappings[0].report_batch_item_failures);
        assert_eq!(
            plan.queues[0].dead_letter_queue.as_deref(),
            Some("shop-dead")
        );
        assert_eq!(plan.topics, ["news"]);
        assert_eq!(plan.subscriptions[0].target, "shop-dev-worker");
        assert_eq!(
            plan.schedules[0].cron.as_deref(),
            Some("0 0/2 * ? * MON-FRI *")
        );
        assert!(plan.skipped.iter().any(|(i, _)| i == "provider.iam"));
        assert!(plan
            .skipped
            .iter()
            .any(|(i, _)| i == "plugins.serverless-offline"));
        let prod = run(dir.path(), Some("prod")).unwrap();
        assert_eq!(prod.functions[0].name, "shop-prod-api");
    }

    #[test]
    fn unsupported_events_and_missing_handlers_are_refused() {
        let dir = app(
            &APP.replace("- sns: news", "- websocket: $connect"),
            &[("handler.py", ""), ("config.json", r#"{"limit": 7}"#)],
        );
        let e = run(dir.path(), None).unwrap_err();
        assert!(
            matches!(&e, AppError::Unsupported { property, .. } if property == "websocket"),
            "{e}"
        );
        let dir = app(APP, &[("config.json", r#"{"limit": 7}"#)]);
        assert!(matches!(
            run(dir.path(), None),
            Err(AppError::MissingHandler { .. })
        ));
        let dir = app(
            &APP.replace("config.json", "../config.json"),
            &[("handler.py", "")],
        );
        assert!(matches!(
            run(dir.path(), None),
            Err(AppError::Escapes { .. }) | Err(AppError::Io { .. })
        ));
    }

    const PIPELINE: &str = r#"
service: pipe
provider: {name: aws, runtime: python3.12, environment: {JOBS: '${construct:jobs.queueUrl}', MACHINE: !Ref FlowStepFunctionsStateMachine}}
plugins: [serverless-lift, serverless-step-functions]
package: {patterns: ['!docs/**'], individually: true}
constructs:
  jobs:
    type: queue
    maxRetries: 5
    worker: {handler: handler.main, timeout: 10}
functions:
  ingest:
    handler: handler.main
    package: {patterns: ['!big/**']}
    destinations: {onFailure: audit}
    url: true
    tracing: Active
    events:
      - s3: {bucket: inbox, event: 's3:ObjectCreated:Put', rules: [{prefix: in/}], existing: true}
      - s3: photos
  audit:
    handler: handler.main
    events:
      - stream: {type: dynamodb, arn: {'Fn::GetAtt': [Files, StreamArn]}, batchSize: 3, startingPosition: LATEST, destinations: {onFailure: {'Fn::GetAtt': [Dead, Arn]}}}
      - stream: {type: dynamodb, arn: {'Fn::GetAtt': [Files, StreamArn]}, enabled: false}
stepFunctions:
  validate: true
  stateMachines:
    flow:
      type: EXPRESS
      definition:
        StartAt: A
        States:
          A: {Type: Task, Resource: {'Fn::GetAtt': [audit, Arn]}, Next: B}
          B: {Type: Task, Resource: !GetAtt IngestLambdaFunction.Arn, End: true}
      events:
        - http: {path: flow, method: post}
        - schedule: rate(1 hour)
resources:
  Resources:
    Files:
      Type: AWS::DynamoDB::Table
      Properties:
        KeySchema: [{AttributeName: k, KeyType: HASH}]
        AttributeDefinitions: [{AttributeName: k, AttributeType: S}]
        StreamSpecification: {StreamViewType: KEYS_ONLY}
    Dead: {Type: AWS::SQS::Queue, Properties: {QueueName: dead}}
"#;

    #[test]
    fn buckets_streams_state_machines_and_lift_queues() {
        let dir = app(PIPELINE, &[("handler.py", "")]);
        let plan = run(dir.path(), None).unwrap();
        let names: Vec<&str> = plan.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["pipe-dev-ingest", "pipe-dev-audit", "pipe-dev-jobsWorker"]
        );
        let ingest = &plan.functions[0];
        assert_eq!(ingest.env["JOBS"], "${lambent:queue-url:pipe-dev-jobs}");
        assert_eq!(
            ingest.env["MACHINE"],
            "${lambent:workflow-arn:pipe-dev-flow}"
        );
        assert_eq!(ingest.patterns, ["!docs/**", "!big/**"]);
        assert_eq!(
            ingest.async_invoke.as_ref().unwrap().on_failure,
            Some(lambent_core::Destination::Function(
                lambent_core::FunctionName::parse("pipe-dev-audit").unwrap()
            ))
        );
        assert_eq!(
            plan.buckets,
            [
                super::super::PlanBucket {
                    name: "inbox".into(),
                    create: false
                },
                super::super::PlanBucket {
                    name: "photos".into(),
                    create: true
                },
            ]
        );
        assert_eq!(plan.notifications[0].prefix.as_deref(), Some("in/"));
        assert_eq!(plan.notifications[0].events, ["s3:ObjectCreated:Put"]);
        assert_eq!(plan.notifications[1].events, ["s3:ObjectCreated:*"]);
        assert_eq!(plan.stream_mappings.len(), 1);
        let m = &plan.stream_mappings[0];
        assert_eq!(
            (m.table.as_str(), m.batch_size),
            ("pipe-dev-Files", Some(3))
        );
        assert_eq!(m.on_failure.as_deref(), Some("${lambent:queue-arn:dead}"));
        assert!(plan
            .skipped
            .iter()
            .any(|(i, _)| i == "functions.audit.events[1]"));
        let queues: Vec<(&str, Option<&str>, Option<u32>)> = plan
            .queues
            .iter()
            .map(|q| {
                (
                    q.name.as_str(),
                    q.dead_letter_queue.as_deref(),
                    q.max_receive_count,
                )
            })
            .collect();
        assert!(queues.contains(&("pipe-dev-jobs", Some("pipe-dev-jobs-dlq"), Some(5))));
        assert_eq!(plan.mappings[0].queue, "pipe-dev-jobs");
        assert_eq!(plan.mappings[0].function, "pipe-dev-jobsWorker");
        assert_eq!(plan.mappings[0].batch_size, Some(1));
        assert!(plan.mappings[0].report_batch_item_failures);
        let flow = &plan.workflows[0];
        assert_eq!(
            (flow.name.as_str(), flow.kind.as_deref()),
            ("pipe-dev-flow", Some("EXPRESS"))
        );
        assert_eq!(
            flow.definition["States"]["A"]["Resource"],
            "${lambent:function-arn:pipe-dev-audit}"
        );
        assert_eq!(
            flow.definition["States"]["B"]["Resource"],
            "${lambent:function-arn:pipe-dev-ingest}"
        );
        assert_eq!(plan.routes[0].path, "/pipe-dev-ingest");
        assert_eq!(plan.routes[1].path, "/pipe-dev-ingest/{proxy+}");
        assert!(plan
            .skipped
            .iter()
            .any(|(i, why)| i == "functions.ingest.tracing" && why.contains("X-Ray")));
        assert_eq!(plan.routes.len(), 3, "{:?}", plan.routes);
        assert_eq!(
            plan.routes[2].target,
            Target::Workflow("pipe-dev-flow".into())
        );
        assert_eq!(
            plan.schedules[0].target,
            Target::Workflow("pipe-dev-flow".into())
        );
        assert!(plan
            .skipped
            .iter()
            .any(|(i, _)| i == "stepFunctions.validate"));

        let kinesis = PIPELINE.replace(
            "type: dynamodb, arn: {'Fn::GetAtt': [Files, StreamArn]}, batchSize",
            "type: kinesis, arn: x, batchSize",
        );
        let dir = app(&kinesis, &[("handler.py", "")]);
        assert!(run(dir.path(), None)
            .unwrap_err()
            .to_string()
            .contains("kinesis"));
        let artifact = PIPELINE.replace("individually: true", "artifact: build.zip");
        let dir = app(&artifact, &[("handler.py", "")]);
        assert!(run(dir.path(), None)
            .unwrap_err()
            .to_string()
            .contains("artifact"));
    }

    #[test]
    fn variables_take_fallbacks_and_nest() {
        assert_eq!(
            split_top("opt:stage, 'a,b', self:x"),
            ["opt:stage", " 'a,b'", " self:x"]
        );
        assert_eq!(innermost("a${b${c}}"), Some((4, 7)));
        let dir = tempfile::tempdir().unwrap();
        let root: Value =
            serde_yaml::from_str("{service: s, x: !Sub '${AWS::Region}-${self:service}'}").unwrap();
        let options = Options::default();
        let vars = Vars {
            root: &root,
            dir: dir.path(),
            options: &options,
        };
        let out = restore(vars.resolve(&root, 0).unwrap());
        let Value::Tagged(t) = &out["x"] else {
            panic!("{out:?}")
        };
        assert_eq!(t.value, "${AWS::Region}-s");
    }
}
