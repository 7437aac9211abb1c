//! AWS SAM templates (`Transform: AWS::Serverless-2016-10-31`) into a [`Plan`]: parameters
//! (defaults and `--parameter K=V`), `Globals.Function` merged under each function as SAM
//! merges (maps merge, lists add up, scalars override), `AWS::Serverless::Function` with its
//! events (`Api`, `HttpApi`, `SQS`, `SNS`, `Schedule`, `S3`, `DynamoDB`) and its
//! `AutoPublishAlias`, `EventInvokeConfig`, `DeadLetterQueue`, `FunctionUrlConfig` and
//! `ProvisionedConcurrencyConfig`, `AWS::Serverless::StateMachine` (inline or a file of the
//! app's folder, with substitutions and `Api`/`Schedule` events), the plain resources of
//! [`super::cfn`], and `Outputs` evaluated.
//!
//! A function without `FunctionName` is named `STACK-LogicalId`, the stack being the app
//! folder's name; a state machine without `Name` likewise.

use super::cfn::{self, Template};
use super::events::{self, SAM_STREAM};
use super::{
    check_handler, check_runtime, inside, invalid, scalar_text, schedule, unsupported, AppError,
    Options, Plan, PlanFunction, PlanMapping, PlanNotification, PlanRoute, PlanSubscription,
    PlanWorkflow, Target,
};
use lambent_core::route::PayloadFormat;
use lambent_core::AsyncSpec;
use serde_yaml::{Mapping, Value};
use std::collections::BTreeMap;
use std::path::Path;

const TRANSFORM: &str = "AWS::Serverless-2016-10-31";

/// Function properties read here; others are noted as skipped.
const KNOWN: &[&str] = &[
    "CodeUri",
    "InlineCode",
    "Handler",
    "Runtime",
    "MemorySize",
    "Timeout",
    "Environment",
    "Description",
    "FunctionName",
    "ReservedConcurrentExecutions",
    "ProvisionedConcurrencyConfig",
    "Events",
    "FunctionUrlConfig",
    "Architectures",
    "Policies",
    "Role",
    "Tracing",
    "Tags",
    "PackageType",
    "Layers",
    "AutoPublishAlias",
    "DeadLetterQueue",
    "EventInvokeConfig",
];

pub(super) fn plan(
    dir: &Path,
    stack: &str,
    root: Value,
    options: &Options,
) -> Result<Plan, AppError> {
    let Value::Mapping(root) = root else {
        return Err(invalid("template", "expected a mapping at the top"));
    };
    let transform_ok = match root.get("Transform") {
        Some(Value::String(t)) => t == TRANSFORM,
        Some(Value::Sequence(ts)) => ts.iter().any(|t| t.as_str() == Some(TRANSFORM)),
        _ => false,
    };
    if !transform_ok {
        return Err(invalid(
            "Transform",
            format!("a SAM template has 'Transform: {TRANSFORM}'"),
        ));
    }
    let params = parameters(&root, options)?;
    let t = Template::new(stack.to_string(), params, &root);
    let mut plan = Plan::default();
    let globals = root
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .cloned()
        .unwrap_or(Value::Mapping(Mapping::new()));
    for (id, resource) in &t.resources {
        let id = scalar_text(id).unwrap_or_default();
        match t.kind(&id).as_deref() {
            Some("AWS::Serverless::Function") => {
                let props = resource
                    .get("Properties")
                    .cloned()
                    .unwrap_or(Value::Mapping(Mapping::new()));
                function(&t, dir, &id, merge(&globals, &props), &mut plan)?;
            }
            Some("AWS::Serverless::StateMachine") => {
                let workflow = state_machine(&t, dir, &id, &mut plan)?;
                plan.workflows.push(workflow);
            }
            Some(k @ ("AWS::Serverless::Api" | "AWS::Serverless::HttpApi")) => plan.skip(
                format!("Resources.{id}"),
                format!("{k}: its routes come from the functions' events, served at Lambent's URL"),
            ),
            _ => {}
        }
    }
    t.plain_resources(
        &mut plan,
        &[
            "AWS::Serverless::Function",
            "AWS::Serverless::StateMachine",
            "AWS::Serverless::Api",
            "AWS::Serverless::HttpApi",
        ],
    )?;
    if let Some(Value::Mapping(outputs)) = root.get("Outputs") {
        for (k, o) in outputs {
            let k = scalar_text(k).unwrap_or_default();
            let at = format!("Outputs.{k}");
            let v = o
                .get("Value")
                .ok_or_else(|| invalid(&at, "an output needs a Value"))?;
            plan.outputs.push((k, t.text(v, &at)?));
        }
    }
    Ok(plan)
}

/// Parameter values: `--parameter` overrides, else the `Default`.
fn parameters(root: &Mapping, options: &Options) -> Result<BTreeMap<String, String>, AppError> {
    let declared = match root.get("Parameters") {
        Some(Value::Mapping(m)) => m.clone(),
        _ => Mapping::new(),
    };
    let mut out = BTreeMap::new();
    for (k, decl) in &declared {
        let k = scalar_text(k).unwrap_or_default();
        let value = options
            .parameters
            .get(&k)
            .cloned()
            .or_else(|| decl.get("Default").and_then(scalar_text))
            .ok_or_else(|| AppError::MissingParameter(k.clone()))?;
        if let Some(Value::Sequence(allowed)) = decl.get("AllowedValues") {
            if !allowed.iter().filter_map(scalar_text).any(|a| a == value) {
                return Err(invalid(
                    format!("Parameters.{k}"),
                    format!("'{value}' is not one of its AllowedValues"),
                ));
            }
        }
        out.insert(k, value);
    }
    if let Some(unknown) = options.parameters.keys().find(|k| !out.contains_key(*k)) {
        return Err(invalid(
            "--parameter",
            format!("the template declares no parameter '{unknown}'"),
        ));
    }
    Ok(out)
}

/// SAM's merge of `Globals` under a resource's properties: maps merge, lists add up (globals
/// first), scalars of the resource win.
fn merge(global: &Value, local: &Value) -> Value {
    match (global, local) {
        (Value::Mapping(g), Value::Mapping(l)) => {
            let mut out = g.clone();
            for (k, v) in l {
                let merged = match out.get(k) {
                    Some(gv) => merge(gv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        (Value::Sequence(g), Value::Sequence(l)) => {
            Value::Sequence(g.iter().chain(l).cloned().collect())
        }
        (_, l) => l.clone(),
    }
}

fn function(
    t: &Template,
    dir: &Path,
    id: &str,
    props: Value,
    plan: &mut Plan,
) -> Result<(), AppError> {
    let at = format!("Resources.{id}");
    let props = t.eval(&props, &format!("{at}.Properties"))?;
    let get = |k: &str| props.get(k);
    let text = |k: &str| get(k).and_then(scalar_text);
    let number = |k: &str| -> Result<Option<u32>, AppError> {
        text(k)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("{at}.Properties.{k}"), "expected a number"))
            })
            .transpose()
    };
    if text("PackageType").as_deref() == Some("Image") {
        return Err(unsupported(
            &at,
            "PackageType: Image",
            "Lambent runs zip packages, not container images",
        ));
    }
    if get("Layers").is_some() {
        return Err(unsupported(
            &at,
            "Layers",
            "Lambent has no layers: package the code with the function",
        ));
    }
    let runtime = text("Runtime").ok_or_else(|| invalid(&at, "Runtime is missing"))?;
    check_runtime(&at, &runtime)?;
    let handler = text("Handler").ok_or_else(|| invalid(&at, "Handler is missing"))?;
    let name = t.physical_name(id)?;
    let (code, inline) = match (get("InlineCode"), get("CodeUri")) {
        (Some(code), _) => {
            let file = if runtime.starts_with("python") {
                "index.py"
            } else {
                "index.js"
            };
            (
                dir.to_path_buf(),
                Some((file.to_string(), scalar_text(code).unwrap_or_default())),
            )
        }
        (None, Some(Value::String(uri))) => {
            (inside(dir, uri, &format!("{at}.Properties.CodeUri"))?, None)
        }
        (None, Some(_)) => {
            return Err(unsupported(
                &at,
                "CodeUri",
                "code in S3 (Bucket/Key): give a folder of the app",
            ))
        }
        (None, None) => (inside(dir, ".", &at)?, None),
    };
    if inline.is_none() {
        check_handler(&at, &code, &runtime, &handler)?;
    }
    let env = match get("Environment").and_then(|e| e.get("Variables")) {
        Some(Value::Mapping(vars)) => vars
            .iter()
            .map(|(k, v)| {
                (
                    scalar_text(k).unwrap_or_default(),
                    scalar_text(v).unwrap_or_default(),
                )
            })
            .collect(),
        _ => BTreeMap::new(),
    };
    let provisioned = get("ProvisionedConcurrencyConfig")
        .and_then(|p| p.get("ProvisionedConcurrentExecutions"))
        .and_then(scalar_text)
        .and_then(|p| p.parse().ok());
    let alias = text("AutoPublishAlias");
    if provisioned.is_some() && alias.is_some() {
        plan.note(
            format!("{at}.Properties.ProvisionedConcurrencyConfig"),
            "sandboxes kept warm for the function's code, which its alias's version runs too",
        );
    }
    let async_invoke = async_config(&at, &props, plan)?;
    if let Value::Mapping(m) = &props {
        for k in m.keys().filter_map(Value::as_str) {
            if let Some(why) = super::function_setting_note(k) {
                plan.skip(format!("{at}.Properties.{k}"), why);
            } else if !KNOWN.contains(&k) {
                plan.skip(format!("{at}.Properties.{k}"), "not applied by Lambent");
            }
        }
    }
    if let Some(url) = get("FunctionUrlConfig") {
        if url.get("AuthType").and_then(scalar_text).as_deref() == Some("AWS_IAM") {
            plan.note(
                format!("{at}.Properties.FunctionUrlConfig.AuthType"),
                "AWS_IAM: Lambent's routes are open (add auth: key in lambent.yaml to require a key)",
            );
        }
        super::function_url(plan, &name, url.get("Cors").is_some());
    }
    plan.functions.push(PlanFunction {
        name: name.clone(),
        code,
        inline,
        runtime,
        handler,
        memory: Some(number("MemorySize")?.unwrap_or(128)),
        timeout: Some(number("Timeout")?.unwrap_or(3)),
        env,
        description: text("Description"),
        reserved_concurrency: number("ReservedConcurrentExecutions")?,
        provisioned_concurrency: provisioned,
        async_invoke,
        alias,
        patterns: Vec::new(),
    });
    events_of(&Target::Function(name), &at, get("Events"), plan)
}

/// `EventInvokeConfig` (retries, event age, destinations) and `DeadLetterQueue` (the
/// failure destination when `EventInvokeConfig` names none) as the function's async settings.
fn async_config(at: &str, props: &Value, plan: &mut Plan) -> Result<Option<AsyncSpec>, AppError> {
    let config = props.get("EventInvokeConfig");
    let dlq = props.get("DeadLetterQueue");
    if config.is_none() && dlq.is_none() {
        return Ok(None);
    }
    let at = format!("{at}.Properties.EventInvokeConfig");
    let number = |k: &str| -> Result<Option<u32>, AppError> {
        config
            .and_then(|c| c.get(k))
            .and_then(scalar_text)
            .map(|v| {
                v.parse()
                    .map_err(|_| invalid(format!("{at}.{k}"), "expected a number"))
            })
            .transpose()
    };
    let target = |which: &str| -> Result<Option<lambent_core::Destination>, AppError> {
        let d = config
            .and_then(|c| c.get("DestinationConfig"))
            .and_then(|d| d.get(which))
            .and_then(|d| d.get("Destination"))
            .and_then(scalar_text);
        d.map(|arn| events::destination(&format!("{at}.DestinationConfig.{which}"), &arn))
            .transpose()
    };
    let mut spec = AsyncSpec {
        max_retries: number("MaximumRetryAttempts")?,
        max_event_age_s: number("MaximumEventAgeInSeconds")?,
        on_success: target("OnSuccess")?,
        on_failure: target("OnFailure")?,
    };
    if let Some(dlq) = dlq {
        let dlq_at = at.replace("EventInvokeConfig", "DeadLetterQueue");
        let arn = dlq
            .get("TargetArn")
            .and_then(scalar_text)
            .ok_or_else(|| invalid(&dlq_at, "TargetArn is missing"))?;
        if spec.on_failure.is_some() {
            plan.skip(
                dlq_at,
                "EventInvokeConfig's OnFailure destination receives the failed events",
            );
        } else {
            spec.on_failure = Some(events::destination(&dlq_at, &arn)?);
            plan.note(
                dlq_at,
                "a failure destination: the message is the invocation record, the event in its requestPayload",
            );
        }
    }
    Ok(Some(spec))
}

/// The `Events` of a function or a state machine.
fn events_of(
    target: &Target,
    at: &str,
    events: Option<&Value>,
    plan: &mut Plan,
) -> Result<(), AppError> {
    if let Some(Value::Mapping(events)) = events {
        for (ev_id, ev) in events {
            let ev_id = scalar_text(ev_id).unwrap_or_default();
            event(target, &format!("{at}.Events.{ev_id}"), &ev_id, ev, plan)?;
        }
    }
    Ok(())
}

/// An `AWS::Serverless::StateMachine`: `Definition`, or `DefinitionUri` naming a JSON or YAML
/// file of the app's folder, with `DefinitionSubstitutions` made; its `Api` and `Schedule`
/// events start it.
fn state_machine(
    t: &Template,
    dir: &Path,
    id: &str,
    plan: &mut Plan,
) -> Result<PlanWorkflow, AppError> {
    let at = format!("Resources.{id}");
    let props = Value::Mapping(t.properties(id, &at)?);
    let name = t.physical_name(id)?;
    let definition = match (props.get("Definition"), props.get("DefinitionUri")) {
        (Some(d), _) => cfn::to_json(d, &format!("{at}.Properties.Definition"))?,
        (None, Some(Value::String(uri))) => {
            let uri_at = format!("{at}.Properties.DefinitionUri");
            let path = inside(dir, uri, &uri_at)?;
            let text = std::fs::read_to_string(&path).map_err(|e| AppError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let v = super::parse_yaml(uri, &text)?;
            cfn::to_json(&v, &uri_at)?
        }
        (None, Some(_)) => {
            return Err(unsupported(
                &at,
                "DefinitionUri",
                "a definition in S3 (Bucket/Key): give a file of the app",
            ))
        }
        (None, None) => return Err(invalid(&at, "Definition or DefinitionUri is missing")),
    };
    let kind = props.get("Type").and_then(scalar_text);
    if let Value::Mapping(m) = &props {
        for k in m.keys().filter_map(Value::as_str) {
            match k {
                "Definition"
                | "DefinitionUri"
                | "DefinitionSubstitutions"
                | "Name"
                | "Type"
                | "Events" => {}
                "Role" | "Policies" | "RolePath" | "PermissionsBoundary" => plan.skip(
                    format!("{at}.Properties.{k}"),
                    "Lambent has no IAM; access is per namespace",
                ),
                _ => plan.skip(format!("{at}.Properties.{k}"), "not applied by Lambent"),
            }
        }
    }
    events_of(
        &Target::Workflow(name.clone()),
        &at,
        props.get("Events"),
        plan,
    )?;
    Ok(PlanWorkflow {
        name,
        definition: cfn::substitute(
            definition,
            &cfn::substitutions(props.get("DefinitionSubstitutions")),
        ),
        kind,
    })
}

fn event(
    target: &Target,
    at: &str,
    ev_id: &str,
    ev: &Value,
    plan: &mut Plan,
) -> Result<(), AppError> {
    let kind = ev.get("Type").and_then(scalar_text).unwrap_or_default();
    let empty = Value::Mapping(Mapping::new());
    let p = ev.get("Properties").unwrap_or(&empty);
    let text = |k: &str| p.get(k).and_then(scalar_text);
    let enabled =
        text("Enabled").is_none_or(|e| e == "true") && text("State").is_none_or(|s| s == "ENABLED");
    let function = match target {
        Target::Function(f) => f.as_str(),
        _ if matches!(kind.as_str(), "Api" | "HttpApi" | "Schedule" | "ScheduleV2") => "",
        _ => {
            return Err(unsupported(
                at,
                format!("Type: {kind}"),
                "a state machine starts from Api, HttpApi and Schedule events in Lambent",
            ))
        }
    };
    match kind.as_str() {
        "Api" | "HttpApi" => {
            let payload = if kind == "Api" || text("PayloadFormatVersion").as_deref() == Some("1.0")
            {
                PayloadFormat::V1
            } else {
                PayloadFormat::V2
            };
            let (method, path) = match (text("Method"), text("Path")) {
                (None, None) if kind == "HttpApi" => ("ANY".to_string(), "/{proxy+}".to_string()),
                (Some(m), Some(path)) => (m, path),
                _ => return Err(invalid(at, "an Api event needs Path and Method")),
            };
            let method = match method.to_ascii_uppercase().as_str() {
                "ANY" | "X-AMAZON-APIGATEWAY-ANY-METHOD" | "*" => "ANY".to_string(),
                m => m.to_string(),
            };
            if let Some(api) = text("RestApiId").or_else(|| text("ApiId")) {
                plan.skip(
                    format!("{at}.Properties.ApiId"),
                    format!("'{api}': routes are served at Lambent's URL"),
                );
            }
            plan.routes.push(PlanRoute {
                method,
                path,
                target: target.clone(),
                payload,
                cors: false,
            });
        }
        "SQS" => {
            let arn = text("Queue").ok_or_else(|| invalid(at, "an SQS event needs Queue"))?;
            let queue = super::name_from_arn(&arn)
                .ok_or_else(|| invalid(at, format!("Queue '{arn}' names no queue")))?;
            if !enabled {
                plan.skip(at, "Enabled: false");
                return Ok(());
            }
            let report = p
                .get("FunctionResponseTypes")
                .and_then(Value::as_sequence)
                .is_some_and(|ts| {
                    ts.iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures"))
                });
            plan.mappings.push(PlanMapping {
                queue,
                function: function.to_string(),
                batch_size: text("BatchSize").and_then(|b| b.parse().ok()),
                batching_window_ms: text("MaximumBatchingWindowInSeconds")
                    .and_then(|w| w.parse::<u64>().ok())
                    .map(|s| s * 1000),
                report_batch_item_failures: report,
            });
        }
        "SNS" => {
            let arn = text("Topic").ok_or_else(|| invalid(at, "an SNS event needs Topic"))?;
            let topic = super::name_from_arn(&arn)
                .ok_or_else(|| invalid(at, format!("Topic '{arn}' names no topic")))?;
            if p.get("FilterPolicy").is_some() {
                return Err(unsupported(
                    at,
                    "FilterPolicy",
                    "Lambent's subscriptions deliver every message",
                ));
            }
            if p.get("SqsSubscription").is_some() {
                return Err(unsupported(
                    at,
                    "SqsSubscription",
                    "subscribe a queue with an AWS::SNS::Subscription",
                ));
            }
            plan.subscriptions.push(PlanSubscription {
                topic,
                kind: "function",
                target: function.to_string(),
            });
        }
        "Schedule" | "ScheduleV2" => {
            let expr = text("Schedule")
                .or_else(|| text("ScheduleExpression"))
                .ok_or_else(|| invalid(at, "a schedule event needs Schedule"))?;
            if !enabled {
                plan.skip(at, "disabled");
                return Ok(());
            }
            if p.get("Input").is_some() {
                return Err(unsupported(
                    at,
                    "Input",
                    "Lambent's schedules send the scheduled event",
                ));
            }
            let owner = target.name();
            let name = text("Name").unwrap_or_else(|| format!("{owner}-{ev_id}"));
            let mut s = schedule(name, target.clone(), &expr, at)?;
            s.tz = text("ScheduleExpressionTimezone");
            plan.schedules.push(s);
        }
        "S3" => {
            let bucket = text("Bucket").ok_or_else(|| invalid(at, "an S3 event needs Bucket"))?;
            let rules = p
                .get("Filter")
                .and_then(|f| f.get("S3Key"))
                .and_then(|k| k.get("Rules"));
            let (prefix, suffix) = events::key_filter(at, rules)?;
            super::add_bucket(plan, &bucket, false);
            plan.notifications.push(PlanNotification {
                bucket,
                target: target.clone(),
                events: events::s3_events(p.get("Events")),
                prefix,
                suffix,
            });
        }
        "DynamoDB" => {
            let arn = text("Stream").ok_or_else(|| invalid(at, "a DynamoDB event needs Stream"))?;
            let on_failure = p
                .get("DestinationConfig")
                .and_then(|d| d.get("OnFailure"))
                .and_then(|d| d.get("Destination"))
                .and_then(scalar_text);
            if let Some(m) =
                events::stream_mapping(at, function, &arn, p, &SAM_STREAM, on_failure, plan)?
            {
                plan.stream_mappings.push(m);
            }
        }
        other => {
            return Err(unsupported(
                at,
                format!("Type: {other}"),
                "Lambent has no such event source (yet): remove the event to deploy the rest",
            ))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(template: &str, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("template.yaml"), template).unwrap();
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "def handler(e, c):\n    return e\n").unwrap();
        }
        dir
    }

    fn run(dir: &Path, params: &[(&str, &str)]) -> Result<Plan, AppError> {
        let options = Options {
            parameters: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        let root =
            serde_yaml::from_str(&std::fs::read_to_string(dir.join("template.yaml")).unwrap())
                .unwrap();
        plan(dir, "stack", root, &options)
    }

    const TEMPLATE: &str = r#"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Greeting: {Type: String}
Globals:
  Function:
    Runtime: python3.12
    Timeout: 10
    Environment: {Variables: {SHARED: "1", FLAG: false}}
Resources:
  Api:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Environment: {Variables: {QUEUE: !Ref Jobs, GREETING: !Ref Greeting}}
      Policies: [AWSLambdaBasicExecutionRole]
      Events:
        Get: {Type: Api, Properties: {Path: '/hello/{name}', Method: get}}
        All: {Type: HttpApi}
        Tick: {Type: Schedule, Properties: {Schedule: cron(0/2 * ? * MON-FRI *)}}
  Worker:
    Type: AWS::Serverless::Function
    Properties:
      FunctionName: !Sub "${Stage}-worker"
      CodeUri: src/
      Handler: app.handler
      Timeout: 30
      Events:
        Q: {Type: SQS, Properties: {Queue: !GetAtt Jobs.Arn, BatchSize: 5, FunctionResponseTypes: [ReportBatchItemFailures]}}
  Jobs: {Type: AWS::SQS::Queue}
Outputs:
  Url: {Value: !Sub "https://${ServerlessRestApi}.execute-api.${AWS::Region}.amazonaws.com/Prod/hello/"}
  WorkerName: {Value: !Ref Worker}
"#;

    #[test]
    fn a_template_becomes_a_plan() {
        let dir = app(TEMPLATE, &["src/app.py"]);
        let plan = run(dir.path(), &[("Greeting", "hi")]).unwrap();
        let api = &plan.functions[0];
        assert_eq!(api.name, "stack-Api");
        assert_eq!((api.memory, api.timeout), (Some(128), Some(10)));
        assert_eq!(api.env["SHARED"], "1");
        assert_eq!(api.env["FLAG"], "false");
        assert_eq!(api.env["GREETING"], "hi");
        assert_eq!(api.env["QUEUE"], "${lambent:queue-url:stack-Jobs}");
        assert!(api.code.ends_with("src"));
        let worker = &plan.functions[1];
        assert_eq!(
            (worker.name.as_str(), worker.timeout),
            ("dev-worker", Some(30))
        );
        assert_eq!(plan.routes[0].path, "/hello/{name}");
        assert_eq!(plan.routes[0].payload, PayloadFormat::V1);
        assert_eq!(plan.routes[1].path, "/{proxy+}");
        assert_eq!(plan.routes[1].payload, PayloadFormat::V2);
        assert_eq!(
            plan.schedules[0].cron.as_deref(),
            Some("0 0/2 * ? * MON-FRI *")
        );
        assert_eq!(plan.mappings[0].queue, "stack-Jobs");
        assert!(plan.mappings[0].report_batch_item_failures);
        assert_eq!(plan.queues[0].name, "stack-Jobs");
        assert_eq!(plan.outputs[0].1, "${lambent:api-url}/hello/");
        assert_eq!(plan.outputs[1].1, "dev-worker");
        assert!(plan.skipped.iter().any(|(i, _)| i.ends_with("Policies")));
    }

    #[test]
    fn bad_templates_are_refused() {
        let dir = app(TEMPLATE, &["src/app.py"]);
        assert_eq!(
            run(dir.path(), &[]).unwrap_err(),
            AppError::MissingParameter("Greeting".into())
        );
        let dir = app(TEMPLATE, &["src/other.py"]);
        assert!(matches!(
            run(dir.path(), &[("Greeting", "x")]),
            Err(AppError::MissingHandler { .. })
        ));
        let escaping = TEMPLATE.replace("CodeUri: src/", "CodeUri: ../");
        let dir = app(&escaping, &["src/app.py"]);
        assert!(matches!(
            run(dir.path(), &[("Greeting", "x")]),
            Err(AppError::Escapes { .. })
        ));
        let java = TEMPLATE.replace("Runtime: python3.12", "Runtime: java21");
        let dir = app(&java, &["src/app.py"]);
        assert!(matches!(
            run(dir.path(), &[("Greeting", "x")]),
            Err(AppError::Unsupported { .. })
        ));
        let s3 = TEMPLATE.replace("Type: Api,", "Type: Kinesis,");
        let dir = app(&s3, &["src/app.py"]);
        let e = run(dir.path(), &[("Greeting", "x")]).unwrap_err();
        assert!(
            e.to_string().contains("Events.Get") && e.to_string().contains("Kinesis"),
            "{e}"
        );
    }

    const ORDERS: &str = r#"
Transform: AWS::Serverless-2016-10-31
Resources:
  Results: {Type: AWS::Serverless::SimpleTable}
  Photos: {Type: AWS::S3::Bucket, Properties: {BucketName: photos, VersioningConfiguration: {Status: Enabled}}}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Runtime: python3.12
      Handler: app.handler
      AutoPublishAlias: live
      ProvisionedConcurrencyConfig: {ProvisionedConcurrentExecutions: 1}
      FunctionUrlConfig: {AuthType: NONE}
      Environment: {Variables: {TABLE: !Ref Results, ARN: !GetAtt Results.Arn, LIVE: !Ref FnAliaslive}}
      Events:
        Up: {Type: S3, Properties: {Bucket: !Ref Photos, Events: ['s3:ObjectCreated:*'], Filter: {S3Key: {Rules: [{Name: suffix, Value: .jpg}]}}}}
  Machine:
    Type: AWS::Serverless::StateMachine
    Properties:
      Type: EXPRESS
      Definition:
        StartAt: Go
        States: {Go: {Type: Task, Resource: '${F}', End: true}}
      DefinitionSubstitutions: {F: !GetAtt Fn.Arn}
      Events:
        Hourly: {Type: Schedule, Properties: {Schedule: rate(1 hour)}}
        Bad: {Type: SQS, Properties: {Queue: x}}
Outputs:
  Url: {Value: !GetAtt FnUrl.FunctionUrl}
  Machine: {Value: !GetAtt Machine.Name}
"#;

    #[test]
    fn tables_buckets_state_machines_and_aliases() {
        let dir = app(ORDERS, &["app.py"]);
        let e = run(dir.path(), &[]).unwrap_err();
        assert!(
            e.to_string().contains("Machine.Events.Bad") && e.to_string().contains("SQS"),
            "{e}"
        );
        let ok = ORDERS.replace("        Bad: {Type: SQS, Properties: {Queue: x}}\n", "");
        let dir = app(&ok, &["app.py"]);
        let plan = run(dir.path(), &[]).unwrap();
        assert_eq!(plan.tables[0].name, "stack-Results");
        assert_eq!(
            plan.tables[0].definition["AttributeDefinitions"][0],
            serde_json::json!({"AttributeName": "id", "AttributeType": "S"})
        );
        let f = &plan.functions[0];
        assert_eq!(f.alias.as_deref(), Some("live"));
        assert_eq!(f.env["TABLE"], "stack-Results");
        assert_eq!(f.env["ARN"], "${lambent:table-arn:stack-Results}");
        assert_eq!(f.env["LIVE"], "${lambent:function-arn:stack-Fn}:live");
        assert_eq!(
            plan.buckets,
            [super::super::PlanBucket {
                name: "photos".into(),
                create: true
            }]
        );
        assert_eq!(plan.notifications[0].suffix.as_deref(), Some(".jpg"));
        assert_eq!(
            plan.notifications[0].target,
            Target::Function("stack-Fn".into())
        );
        let m = &plan.workflows[0];
        assert_eq!(
            (m.name.as_str(), m.kind.as_deref()),
            ("stack-Machine", Some("EXPRESS"))
        );
        assert_eq!(
            m.definition["States"]["Go"]["Resource"],
            "${lambent:function-arn:stack-Fn}"
        );
        assert_eq!(
            plan.schedules[0].target,
            Target::Workflow("stack-Machine".into())
        );
        assert_eq!(plan.outputs[0].1, "${lambent:api-url}/stack-Fn/");
        assert_eq!(plan.outputs[1].1, "stack-Machine");
        assert!(plan
            .skipped
            .iter()
            .any(|(i, _)| i == "Resources.Photos.Properties.VersioningConfiguration"));
        assert!(plan
            .notes
            .iter()
            .any(|(i, _)| i.ends_with("ProvisionedConcurrencyConfig")));
        let s3_uri = ok.replace(
            "      Definition:\n        StartAt: Go\n        States: {Go: {Type: Task, Resource: '${F}', End: true}}\n",
            "      DefinitionUri: {Bucket: b, Key: k}\n",
        );
        let dir = app(&s3_uri, &["app.py"]);
        assert!(run(dir.path(), &[])
            .unwrap_err()
            .to_string()
            .contains("DefinitionUri"));
    }

    #[test]
    fn globals_merge_as_sam_merges() {
        let g: Value =
            serde_yaml::from_str("{Timeout: 3, Environment: {Variables: {A: '1'}}, Layers: [x]}")
                .unwrap();
        let l: Value =
            serde_yaml::from_str("{Timeout: 9, Environment: {Variables: {B: '2'}}, Layers: [y]}")
                .unwrap();
        let m = merge(&g, &l);
        assert_eq!(m["Timeout"], 9);
        assert_eq!(m["Environment"]["Variables"]["A"], "1");
        assert_eq!(m["Environment"]["Variables"]["B"], "2");
        assert_eq!(m["Layers"].as_sequence().unwrap().len(), 2);
    }
}
