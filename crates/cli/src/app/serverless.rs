//! Serverless Framework `serverless.yml` (v3; v4 reads the same file) into a [`Plan`].
//!
//! Variables are resolved first over the whole file: `${self:path}`, `${opt:stage}`,
//! `${sls:stage}`, `${env:NAME}`, `${file(x.json):key}`, each with
//! fallbacks after a comma (`${opt:stage, 'dev'}`). Functions are named as the Framework names
//! them on AWS, `SERVICE-STAGE-FUNCTION`, with its defaults of 1024 MB and 6 s; their code is
//! the service folder. `resources.Resources` goes through [`super::cfn`].

use super::cfn::Template;
use super::{
    check_handler, check_runtime, inside, invalid, scalar_text, schedule, unsupported, AppError,
    Options, Plan, PlanFunction, PlanMapping, PlanRoute, PlanSubscription,
};
use lambent_core::route::PayloadFormat;
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

pub(super) fn plan(dir: &Path, raw: Value, options: &Options) -> Result<Plan, AppError> {
    let vars = Vars {
        root: &raw,
        dir,
        options,
    };
    let root = restore(vars.resolve(&raw, 0)?);
    let stage = vars.stage()?;
    let service = match root.get("service") {
        Some(Value::Mapping(m)) => m.get("name").and_then(scalar_text),
        Some(v) => scalar_text(v),
        None => None,
    }
    .ok_or_else(|| invalid("service", "serverless.yml names its service"))?;
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
    let t = Template::new(
        format!("{service}-{stage}"),
        BTreeMap::new(),
        resources.as_mapping().unwrap_or(&Mapping::new()),
    );
    t.plain_resources(&mut plan, &[])?;
    if root.get("package").is_some() {
        plan.skip(
            "package",
            "the whole service folder is packed (less .git and __pycache__)",
        );
    }
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
    let Some(Value::Mapping(functions)) = root.get("functions") else {
        return Ok(plan);
    };
    for (key, f) in functions {
        let key = scalar_text(key).unwrap_or_default();
        let at = format!("functions.{key}");
        let name = f
            .get("name")
            .and_then(scalar_text)
            .unwrap_or_else(|| format!("{service}-{stage}-{key}"));
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
        });
        for (i, ev) in f
            .get("events")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            event(&t, &name, &format!("{at}.events[{i}]"), i, ev, &mut plan)?;
        }
    }
    Ok(plan)
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
            _ => plan.skip(at, "plugin not run by Lambent"),
        }
    }
    if root.get("constructs").is_some() {
        return Err(unsupported(
            "constructs",
            "constructs",
            "serverless-lift constructs are not supported yet",
        ));
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
    function: &str,
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
                    function: function.into(),
                    payload,
                    cors,
                });
            }
            plan.routes.push(PlanRoute {
                method,
                path,
                function: function.into(),
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
            if get("input").is_some() || get("inputPath").is_some() {
                return Err(unsupported(
                    at,
                    "input",
                    "Lambent's schedules send the scheduled event",
                ));
            }
            for (j, rate) in rates.iter().enumerate() {
                let name = text("name")
                    .filter(|_| rates.len() == 1)
                    .unwrap_or_else(|| format!("{function}-schedule-{}", index + j + 1));
                plan.schedules.push(schedule(name, function, rate, at)?);
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
                report_batch_item_failures: text("functionResponseType").as_deref()
                    == Some("ReportBatchItemFailures"),
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
            &APP.replace("- sns: news", "- s3: photos"),
            &[("handler.py", ""), ("config.json", r#"{"limit": 7}"#)],
        );
        let e = run(dir.path(), None).unwrap_err();
        assert!(
            matches!(&e, AppError::Unsupported { property, .. } if property == "s3"),
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
