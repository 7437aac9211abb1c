//! CloudFormation as SAM templates and `serverless.yml`'s `resources:` write it: the intrinsic
//! functions (`!Ref`, `!GetAtt`, `!Sub`, `!Join`, `!Select`, `!Split`, `!If`, `!FindInMap`,
//! short and long forms) evaluated over the template's parameters and resources, and the plain
//! resources Lambent has (`AWS::SQS::Queue`, `AWS::SNS::Topic`, `AWS::DynamoDB::Table`,
//! `AWS::Serverless::SimpleTable`, `AWS::S3::Bucket` with its notifications,
//! `AWS::StepFunctions::StateMachine`, `AWS::Lambda::EventSourceMapping`).
//!
//! A resource's `!Ref` and `!GetAtt` name what Lambent makes of it: a function's name, a
//! queue's URL and ARN, a topic's ARN, a table's name, ARN and stream ARN, a bucket's name and
//! ARN, a state machine's ARN and name (ARNs as placeholders, see [`super::Platform`]).
//! Physical names come from the resource's name property (`FunctionName`, `QueueName`,
//! `TopicName`, `TableName`, `BucketName`, `StateMachineName`, `Name`), else
//! `STACK-LogicalId` (lower case for buckets); evaluating a name that refers back to itself
//! is a cycle, reported with its chain.

use super::{
    invalid, scalar_text, unsupported, AppError, Plan, PlanNotification, PlanQueue,
    PlanSubscription, PlanTable, PlanWorkflow, Target,
};
use serde_yaml::{Mapping, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// A template being evaluated.
pub(super) struct Template {
    pub stack: String,
    pub params: BTreeMap<String, String>,
    pub resources: Mapping,
    /// Resources a tool makes of its own declarations (the Framework's
    /// `FooLambdaFunction` for function `foo`): referable, but not resources to plan.
    implicit: Mapping,
    pub conditions: Mapping,
    pub mappings: Mapping,
    /// Names being evaluated, outermost first (cycle detection).
    visiting: RefCell<Vec<String>>,
}

/// `!Tag x` as the long form `{Fn::Tag: x}` (`!Ref x` as `{Ref: x}`).
fn long_form(tag: &str) -> String {
    match tag {
        "Ref" | "Condition" => tag.to_string(),
        other => format!("Fn::{other}"),
    }
}

impl Template {
    pub fn new(stack: String, params: BTreeMap<String, String>, root: &Mapping) -> Template {
        let section = |k: &str| match root.get(k) {
            Some(Value::Mapping(m)) => m.clone(),
            _ => Mapping::new(),
        };
        Template {
            stack,
            params,
            resources: section("Resources"),
            implicit: Mapping::new(),
            conditions: section("Conditions"),
            mappings: section("Mappings"),
            visiting: RefCell::new(Vec::new()),
        }
    }

    /// Declares an implicit resource `id` of `kind` named `name` (unless the template has a
    /// resource of that id).
    pub fn add_implicit(&mut self, id: &str, kind: &str, name_property: &str, name: &str) {
        if self.resources.contains_key(id) {
            return;
        }
        let mut props = Mapping::new();
        props.insert(name_property.into(), name.into());
        let mut resource = Mapping::new();
        resource.insert("Type".into(), kind.into());
        resource.insert("Properties".into(), Value::Mapping(props));
        self.implicit.insert(id.into(), Value::Mapping(resource));
    }

    fn resource(&self, id: &str) -> Option<&Value> {
        self.resources.get(id).or_else(|| self.implicit.get(id))
    }

    /// The type of resource `id`.
    pub fn kind(&self, id: &str) -> Option<String> {
        self.resource(id)?
            .get("Type")
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    pub fn property(&self, id: &str, name: &str) -> Option<Value> {
        self.resource(id)?.get("Properties")?.get(name).cloned()
    }

    /// The physical name of resource `id` (function, queue, topic, …).
    pub fn physical_name(&self, id: &str) -> Result<String, AppError> {
        let kind = self.kind(id);
        let prop = match kind.as_deref() {
            Some("AWS::Serverless::Function" | "AWS::Lambda::Function") => "FunctionName",
            Some("AWS::SQS::Queue") => "QueueName",
            Some("AWS::SNS::Topic") => "TopicName",
            Some("AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable") => "TableName",
            Some("AWS::S3::Bucket") => "BucketName",
            Some("AWS::StepFunctions::StateMachine") => "StateMachineName",
            Some("AWS::Serverless::StateMachine") => "Name",
            _ => return Ok(id.to_string()),
        };
        let Some(raw) = self.property(id, prop) else {
            let name = format!("{}-{id}", self.stack);
            return Ok(if prop == "BucketName" {
                name.to_ascii_lowercase()
            } else {
                name
            });
        };
        {
            let mut visiting = self.visiting.borrow_mut();
            if let Some(pos) = visiting.iter().position(|v| v == id) {
                let mut chain: Vec<String> = visiting[pos..].to_vec();
                chain.push(id.to_string());
                return Err(AppError::Cycle(chain.join(" → ")));
            }
            visiting.push(id.to_string());
        }
        let name = self.text(&raw, &format!("{id}.Properties.{prop}"));
        self.visiting.borrow_mut().pop();
        name
    }

    /// Evaluates `v` and requires a scalar.
    pub fn text(&self, v: &Value, at: &str) -> Result<String, AppError> {
        let out = self.eval(v, at)?;
        scalar_text(&out).ok_or_else(|| invalid(at, "expected a string"))
    }

    /// `v` with every intrinsic function evaluated; `AWS::NoValue` drops the entry.
    pub fn eval(&self, v: &Value, at: &str) -> Result<Value, AppError> {
        match v {
            Value::Tagged(t) => {
                let tag = t.tag.to_string();
                let name = long_form(tag.trim_start_matches('!'));
                self.intrinsic(&name, &t.value, at)
            }
            Value::Mapping(m) => {
                if m.len() == 1 {
                    if let Some((Value::String(k), arg)) = m.iter().next() {
                        if k == "Ref" || k.starts_with("Fn::") || k == "Condition" {
                            return self.intrinsic(k, arg, at);
                        }
                    }
                }
                let mut out = Mapping::new();
                for (k, val) in m {
                    let key = scalar_text(k).unwrap_or_default();
                    let val = self.eval(val, &format!("{at}.{key}"))?;
                    if val != Value::Null {
                        out.insert(k.clone(), val);
                    }
                }
                Ok(Value::Mapping(out))
            }
            Value::Sequence(s) => Ok(Value::Sequence(
                s.iter()
                    .enumerate()
                    .map(|(i, x)| self.eval(x, &format!("{at}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .filter(|x| *x != Value::Null)
                    .collect(),
            )),
            other => Ok(other.clone()),
        }
    }

    fn list(&self, arg: &Value, at: &str, n: usize, f: &str) -> Result<Vec<Value>, AppError> {
        match arg {
            Value::Sequence(s) if s.len() == n => Ok(s.clone()),
            _ => Err(invalid(at, format!("{f} takes a list of {n} items"))),
        }
    }

    fn intrinsic(&self, f: &str, arg: &Value, at: &str) -> Result<Value, AppError> {
        let s = |x: String| Ok(Value::String(x));
        match f {
            "Ref" => {
                let name = self.text(arg, at)?;
                self.reference(&name, at)
            }
            "Fn::GetAtt" => {
                let (id, attr) = match self.eval(arg, at)? {
                    Value::String(x) => match x.split_once('.') {
                        Some((a, b)) => (a.to_string(), b.to_string()),
                        None => return Err(invalid(at, "GetAtt takes 'Resource.Attribute'")),
                    },
                    Value::Sequence(xs) if xs.len() == 2 => (
                        scalar_text(&xs[0]).unwrap_or_default(),
                        scalar_text(&xs[1]).unwrap_or_default(),
                    ),
                    _ => return Err(invalid(at, "GetAtt takes 'Resource.Attribute'")),
                };
                self.attribute(&id, &attr, at).map(Value::String)
            }
            "Fn::Sub" => {
                let (template, vars) = match arg {
                    Value::Sequence(xs) if xs.len() == 2 => {
                        let vars = match self.eval(&xs[1], at)? {
                            Value::Mapping(m) => m
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        scalar_text(k).unwrap_or_default(),
                                        scalar_text(v).unwrap_or_default(),
                                    )
                                })
                                .collect(),
                            _ => return Err(invalid(at, "Sub's second item is a mapping")),
                        };
                        (self.text(&xs[0], at)?, vars)
                    }
                    other => (self.text(other, at)?, BTreeMap::new()),
                };
                self.sub(&template, &vars, at).map(Value::String)
            }
            "Fn::Join" => {
                let xs = self.list(arg, at, 2, "Join")?;
                let delim = self.text(&xs[0], at)?;
                let Value::Sequence(items) = self.eval(&xs[1], at)? else {
                    return Err(invalid(at, "Join's second item is a list"));
                };
                let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
                s(parts.join(&delim))
            }
            "Fn::Select" => {
                let xs = self.list(arg, at, 2, "Select")?;
                let index: usize = self
                    .text(&xs[0], at)?
                    .parse()
                    .map_err(|_| invalid(at, "Select's index is a number"))?;
                let Value::Sequence(items) = self.eval(&xs[1], at)? else {
                    return Err(invalid(at, "Select's second item is a list"));
                };
                items
                    .get(index)
                    .cloned()
                    .ok_or_else(|| invalid(at, format!("Select index {index} is out of range")))
            }
            "Fn::Split" => {
                let xs = self.list(arg, at, 2, "Split")?;
                let delim = self.text(&xs[0], at)?;
                let text = self.text(&xs[1], at)?;
                Ok(Value::Sequence(
                    text.split(delim.as_str())
                        .map(|p| Value::String(p.to_string()))
                        .collect(),
                ))
            }
            "Fn::If" => {
                let xs = self.list(arg, at, 3, "If")?;
                let cond = scalar_text(&xs[0]).unwrap_or_default();
                let chosen = if self.condition(&cond, at)? {
                    &xs[1]
                } else {
                    &xs[2]
                };
                self.eval(chosen, at)
            }
            "Fn::FindInMap" => {
                let xs = self.list(arg, at, 3, "FindInMap")?;
                let keys = xs
                    .iter()
                    .map(|x| self.text(x, at))
                    .collect::<Result<Vec<_>, _>>()?;
                self.mappings
                    .get(&keys[0])
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .cloned()
                    .ok_or_else(|| AppError::MissingReference {
                        at: at.to_string(),
                        name: keys.join("."),
                    })
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let mut m = Mapping::new();
                m.insert(Value::String(f.to_string()), arg.clone());
                Ok(Value::Bool(self.truth(&Value::Mapping(m), at)?))
            }
            other => Err(unsupported(
                at,
                other,
                "Lambent does not evaluate this intrinsic function",
            )),
        }
    }

    /// The value of a named condition.
    fn condition(&self, name: &str, at: &str) -> Result<bool, AppError> {
        let def = self
            .conditions
            .get(name)
            .ok_or_else(|| AppError::MissingReference {
                at: at.to_string(),
                name: name.to_string(),
            })?;
        {
            let mut visiting = self.visiting.borrow_mut();
            let key = format!("Condition {name}");
            if visiting.contains(&key) {
                return Err(AppError::Cycle(format!("{} → {key}", visiting.join(" → "))));
            }
            visiting.push(key);
        }
        let out = self.truth(def, &format!("Conditions.{name}"));
        self.visiting.borrow_mut().pop();
        out
    }

    fn truth(&self, v: &Value, at: &str) -> Result<bool, AppError> {
        let (f, arg) = match v {
            Value::Tagged(t) => (
                long_form(t.tag.to_string().trim_start_matches('!')),
                t.value.clone(),
            ),
            Value::Mapping(m) if m.len() == 1 => {
                let (k, a) = m.iter().next().expect("one entry");
                (scalar_text(k).unwrap_or_default(), a.clone())
            }
            Value::Bool(b) => return Ok(*b),
            _ => return Err(invalid(at, "expected a condition")),
        };
        let items = || match &arg {
            Value::Sequence(xs) => Ok(xs.clone()),
            _ => Err(invalid(at, format!("{f} takes a list"))),
        };
        match f.as_str() {
            "Fn::Equals" => {
                let xs = items()?;
                if xs.len() != 2 {
                    return Err(invalid(at, "Equals takes two items"));
                }
                Ok(self.eval(&xs[0], at)? == self.eval(&xs[1], at)?
                    || self.text(&xs[0], at).ok() == self.text(&xs[1], at).ok())
            }
            "Fn::Not" => Ok(!self.truth(items()?.first().unwrap_or(&Value::Null), at)?),
            "Fn::And" => items()?
                .iter()
                .try_fold(true, |acc, x| Ok::<_, AppError>(acc && self.truth(x, at)?)),
            "Fn::Or" => items()?
                .iter()
                .try_fold(false, |acc, x| Ok::<_, AppError>(acc || self.truth(x, at)?)),
            "Condition" => self.condition(&scalar_text(&arg).unwrap_or_default(), at),
            other => Err(unsupported(at, other, "not a condition function")),
        }
    }

    /// `!Ref name`.
    fn reference(&self, name: &str, at: &str) -> Result<Value, AppError> {
        if let Some(v) = self.params.get(name) {
            return Ok(Value::String(v.clone()));
        }
        let pseudo = match name {
            "AWS::Region" => Some(super::REGION.to_string()),
            "AWS::AccountId" => Some(super::ACCOUNT.to_string()),
            "AWS::StackName" => Some(self.stack.clone()),
            "AWS::StackId" => Some(format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/lambent",
                super::REGION,
                super::ACCOUNT,
                self.stack
            )),
            "AWS::Partition" => Some("aws".into()),
            "AWS::URLSuffix" => Some("amazonaws.com".into()),
            "AWS::NoValue" => return Ok(Value::Null),
            _ => None,
        };
        if let Some(p) = pseudo {
            return Ok(Value::String(p));
        }
        match name {
            "ServerlessRestApi" => return Ok(Value::String(REST_API.into())),
            "ServerlessHttpApi" => return Ok(Value::String(HTTP_API.into())),
            _ => {}
        }
        if let Some(arn) = self.implicit_alias(name)? {
            return Ok(Value::String(arn));
        }
        let Some(kind) = self.kind(name) else {
            if let Some(function) = self.implicit_role_of(name) {
                return Ok(Value::String(format!("{function}Role")));
            }
            return Err(AppError::MissingReference {
                at: at.to_string(),
                name: name.to_string(),
            });
        };
        let physical = self.physical_name(name)?;
        Ok(Value::String(match kind.as_str() {
            "AWS::SQS::Queue" => super::queue_url(&physical),
            "AWS::SNS::Topic" => super::topic_arn(&physical),
            "AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine" => {
                super::workflow_arn(&physical)
            }
            "AWS::Serverless::Api" => REST_API.into(),
            "AWS::Serverless::HttpApi" => HTTP_API.into(),
            _ => physical,
        }))
    }

    /// `XRole` for a function `X` that declares no role (SAM makes one).
    fn implicit_role_of(&self, id: &str) -> Option<String> {
        self.implicit_of(id, "Role")
    }

    /// The SAM function `X` of an implicit resource `X{suffix}`.
    fn implicit_of(&self, id: &str, suffix: &str) -> Option<String> {
        let function = id.strip_suffix(suffix)?;
        (self.kind(function).as_deref() == Some("AWS::Serverless::Function"))
            .then(|| function.to_string())
    }

    /// The alias a SAM function publishes (`AutoPublishAlias`).
    pub fn auto_alias(&self, function: &str) -> Result<Option<String>, AppError> {
        self.property(function, "AutoPublishAlias")
            .map(|a| {
                self.text(
                    &a,
                    &format!("Resources.{function}.Properties.AutoPublishAlias"),
                )
            })
            .transpose()
    }

    /// `!Ref X.Alias` / `!Ref XAliasLIVE` of a function with `AutoPublishAlias: LIVE`: the
    /// alias's ARN; `!Ref X.Version`: the function's ARN (the version is numbered at deploy).
    fn implicit_alias(&self, name: &str) -> Result<Option<String>, AppError> {
        let (function, version) = match name.split_once('.') {
            Some((f, "Alias")) => (f, false),
            Some((f, "Version")) => (f, true),
            Some(_) => return Ok(None),
            None => match name.find("Alias") {
                Some(i) => (&name[..i], false),
                None => return Ok(None),
            },
        };
        if self.kind(function).as_deref() != Some("AWS::Serverless::Function") {
            return Ok(None);
        }
        let Some(alias) = self.auto_alias(function)? else {
            return Ok(None);
        };
        if !name.contains('.') && name != format!("{function}Alias{alias}") {
            return Ok(None);
        }
        let arn = super::function_arn(&self.physical_name(function)?);
        Ok(Some(if version {
            arn
        } else {
            format!("{arn}:{alias}")
        }))
    }

    /// `!GetAtt id.attr`.
    fn attribute(&self, id: &str, attr: &str, at: &str) -> Result<String, AppError> {
        if let Some(function) = self.implicit_role_of(id) {
            return Ok(format!(
                "arn:aws:iam::{}:role/{function}Role",
                super::ACCOUNT
            ));
        }
        if let (Some(function), "FunctionUrl") = (self.implicit_of(id, "Url"), attr) {
            return Ok(format!(
                "{}/{}/",
                super::API_URL,
                self.physical_name(&function)?
            ));
        }
        let Some(kind) = self.kind(id) else {
            return Err(AppError::MissingReference {
                at: at.to_string(),
                name: format!("{id}.{attr}"),
            });
        };
        let name = self.physical_name(id)?;
        Ok(match (kind.as_str(), attr) {
            ("AWS::DynamoDB::Table" | "AWS::Serverless::SimpleTable", "Arn") => {
                super::table_arn(&name)
            }
            ("AWS::DynamoDB::Table", "StreamArn") => {
                if self.property(id, "StreamSpecification").is_none() {
                    return Err(invalid(
                        at,
                        format!("{id}.StreamArn: the table has no StreamSpecification"),
                    ));
                }
                super::stream_arn(&name)
            }
            ("AWS::S3::Bucket", "Arn") => format!("arn:aws:s3:::{name}"),
            ("AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine", "Arn") => {
                super::workflow_arn(&name)
            }
            (
                "AWS::StepFunctions::StateMachine" | "AWS::Serverless::StateMachine",
                "Name" | "StateMachineName",
            ) => name,
            ("AWS::SQS::Queue", "Arn") => super::queue_arn(&name),
            ("AWS::SQS::Queue", "QueueUrl") => super::queue_url(&name),
            ("AWS::SQS::Queue", "QueueName") => name,
            ("AWS::SNS::Topic", "TopicArn") => super::topic_arn(&name),
            ("AWS::SNS::Topic", "TopicName") => name,
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => {
                super::function_arn(&name)
            }
            (_, "Arn") => format!(
                "arn:aws:{}:{}:{}:{name}",
                kind_service(&kind),
                super::REGION,
                super::ACCOUNT
            ),
            _ => format!("{name}.{attr}"),
        })
    }

    /// `!Sub` text: `${Param}`, `${Resource}`, `${Resource.Attr}`, `${AWS::…}`, `${!Literal}`.
    fn sub(
        &self,
        template: &str,
        vars: &BTreeMap<String, String>,
        at: &str,
    ) -> Result<String, AppError> {
        let mut out = String::new();
        let mut rest = template;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('}') else {
                return Err(invalid(at, format!("unclosed '${{' in Sub '{template}'")));
            };
            let inner = rest[start + 2..start + len].trim();
            if let Some(literal) = inner.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.get(inner) {
                out.push_str(v);
            } else if let Some((id, attr)) = inner
                .split_once('.')
                .filter(|_| !inner.starts_with("AWS::"))
            {
                out.push_str(&self.attribute(id, attr, at)?);
            } else {
                let v = self.reference(inner, at)?;
                out.push_str(&scalar_text(&v).unwrap_or_default());
            }
            rest = &rest[start + len + 1..];
        }
        out.push_str(rest);
        Ok(api_url(&out))
    }

    /// The plain resources Lambent has into the plan (queues, topics, their subscriptions);
    /// every other resource not of `handled` types is skipped with a note.
    pub fn plain_resources(&self, plan: &mut Plan, handled: &[&str]) -> Result<(), AppError> {
        for (id, _) in &self.resources {
            let id = scalar_text(id).unwrap_or_default();
            let kind = self.kind(&id).unwrap_or_default();
            let at = format!("Resources.{id}");
            match kind.as_str() {
                "AWS::SQS::Queue" => plan.queues.push(self.queue(&id, &at)?),
                "AWS::DynamoDB::Table" => {
                    let table = self.table(&id, &at, plan)?;
                    plan.tables.push(table);
                }
                "AWS::Serverless::SimpleTable" => {
                    let table = self.simple_table(&id, &at, plan)?;
                    plan.tables.push(table);
                }
                "AWS::S3::Bucket" => self.bucket(&id, &at, plan)?,
                "AWS::StepFunctions::StateMachine" => {
                    let workflow = self.state_machine(&id, &at, plan)?;
                    plan.workflows.push(workflow);
                }
                "AWS::Lambda::EventSourceMapping" => self.event_source_mapping(&id, &at, plan)?,
                "AWS::SNS::Topic" => {
                    let name = self.physical_name(&id)?;
                    if let Some(Value::Sequence(subs)) = self.property(&id, "Subscription") {
                        for (i, sub) in subs.iter().enumerate() {
                            let at = format!("{at}.Properties.Subscription[{i}]");
                            let sub = self.eval(sub, &at)?;
                            let protocol = sub
                                .get("Protocol")
                                .and_then(scalar_text)
                                .unwrap_or_default();
                            let endpoint = sub
                                .get("Endpoint")
                                .and_then(scalar_text)
                                .unwrap_or_default();
                            let (kind, target) = match protocol.as_str() {
                                "sqs" => ("queue", super::name_from_arn(&endpoint)),
                                "lambda" => ("function", function_from_arn(&endpoint)),
                                other => {
                                    plan.skip(
                                        &at,
                                        format!("subscription protocol '{other}' is not supported"),
                                    );
                                    continue;
                                }
                            };
                            let target = target.ok_or_else(|| {
                                invalid(&at, format!("cannot tell what '{endpoint}' names"))
                            })?;
                            plan.subscriptions.push(PlanSubscription {
                                topic: name.clone(),
                                kind,
                                target,
                            });
                        }
                    }
                    plan.topics.push(name);
                }
                k if handled.contains(&k) => {}
                "AWS::IAM::Role" | "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" => plan.skip(
                    &at,
                    format!("{kind}: Lambent has no IAM; access is per namespace"),
                ),
                "AWS::Lambda::Permission" | "AWS::SQS::QueuePolicy" | "AWS::SNS::TopicPolicy" => {
                    plan.skip(&at, format!("{kind}: permissions do not apply in Lambent"))
                }
                "AWS::Logs::LogGroup" => plan.skip(
                    &at,
                    format!("{kind}: logs are kept per function (lambent logs)"),
                ),
                k if k.starts_with("AWS::ApiGateway") || k.starts_with("AWS::ApiGatewayV2") => plan
                    .skip(
                        &at,
                        format!("{kind}: routes come from the functions' events"),
                    ),
                "AWS::SNS::Subscription" => {
                    let topic = self
                        .property(&id, "TopicArn")
                        .map(|v| self.text(&v, &at))
                        .transpose()?;
                    let endpoint = self
                        .property(&id, "Endpoint")
                        .map(|v| self.text(&v, &at))
                        .transpose()?;
                    let protocol = self
                        .property(&id, "Protocol")
                        .and_then(|p| scalar_text(&p))
                        .unwrap_or_default();
                    let kind = if protocol == "sqs" {
                        "queue"
                    } else {
                        "function"
                    };
                    let target = endpoint.as_deref().and_then(|e| {
                        if kind == "queue" {
                            super::name_from_arn(e)
                        } else {
                            function_from_arn(e)
                        }
                    });
                    match (topic.as_deref().and_then(super::name_from_arn), target) {
                        (Some(topic), Some(target)) => plan.subscriptions.push(PlanSubscription {
                            topic,
                            kind,
                            target,
                        }),
                        _ => {
                            return Err(invalid(
                                &at,
                                "cannot tell which topic and endpoint the subscription joins",
                            ))
                        }
                    }
                }
                _ => plan.skip(&at, format!("{kind} is not a resource Lambent has (yet)")),
            }
        }
        Ok(())
    }

    /// Resource `id`'s properties, evaluated.
    pub(super) fn properties(&self, id: &str, at: &str) -> Result<Mapping, AppError> {
        let raw = self
            .resource(id)
            .and_then(|r| r.get("Properties"))
            .cloned()
            .unwrap_or(Value::Mapping(Mapping::new()));
        match self.eval(&raw, &format!("{at}.Properties"))? {
            Value::Mapping(m) => Ok(m),
            _ => Err(invalid(at, "Properties must be a mapping")),
        }
    }

    /// An `AWS::DynamoDB::Table` as CreateTable's input: keys, attributes, indexes, billing
    /// and stream as written (a stream named by its view type is enabled); the TTL attribute.
    fn table(&self, id: &str, at: &str, plan: &mut Plan) -> Result<PlanTable, AppError> {
        let name = self.physical_name(id)?;
        let mut definition = serde_json::Map::new();
        let mut ttl_attribute = None;
        for (k, v) in self.properties(id, at)? {
            let k = scalar_text(&k).unwrap_or_default();
            let at = format!("{at}.Properties.{k}");
            match k.as_str() {
                "TableName" => {}
                "KeySchema"
                | "AttributeDefinitions"
                | "GlobalSecondaryIndexes"
                | "LocalSecondaryIndexes"
                | "BillingMode"
                | "ProvisionedThroughput" => {
                    definition.insert(k, to_json(&v, &at)?);
                }
                "StreamSpecification" => {
                    let view = v
                        .get("StreamViewType")
                        .and_then(scalar_text)
                        .ok_or_else(|| invalid(&at, "StreamViewType is missing"))?;
                    definition.insert(
                        k,
                        serde_json::json!({"StreamEnabled": true, "StreamViewType": view}),
                    );
                }
                "TimeToLiveSpecification" => {
                    if v.get("Enabled").and_then(scalar_text).as_deref() != Some("false") {
                        ttl_attribute = Some(
                            v.get("AttributeName")
                                .and_then(scalar_text)
                                .ok_or_else(|| invalid(&at, "AttributeName is missing"))?,
                        );
                    }
                }
                _ => plan.skip(at, "not applied by Lambent"),
            }
        }
        if !definition.contains_key("KeySchema") {
            return Err(invalid(at, "a table needs a KeySchema"));
        }
        Ok(PlanTable {
            name,
            definition: serde_json::Value::Object(definition),
            ttl_attribute,
        })
    }

    /// An `AWS::Serverless::SimpleTable`: a partition key (`PrimaryKey`, by default `id` of
    /// type String), billed per request.
    fn simple_table(&self, id: &str, at: &str, plan: &mut Plan) -> Result<PlanTable, AppError> {
        let name = self.physical_name(id)?;
        let props = self.properties(id, at)?;
        let key = props.get("PrimaryKey");
        let key_name = key
            .and_then(|k| k.get("Name"))
            .and_then(scalar_text)
            .unwrap_or_else(|| "id".into());
        let kind = match key
            .and_then(|k| k.get("Type"))
            .and_then(scalar_text)
            .as_deref()
            .unwrap_or("String")
        {
            "String" => "S",
            "Number" => "N",
            "Binary" => "B",
            other => {
                return Err(invalid(
                    format!("{at}.Properties.PrimaryKey.Type"),
                    format!("'{other}' is not String, Number or Binary"),
                ))
            }
        };
        for k in props.keys().filter_map(Value::as_str) {
            if !matches!(k, "PrimaryKey" | "TableName") {
                plan.skip(format!("{at}.Properties.{k}"), "not applied by Lambent");
            }
        }
        Ok(PlanTable {
            name,
            definition: serde_json::json!({
                "KeySchema": [{"AttributeName": key_name, "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": key_name, "AttributeType": kind}],
                "BillingMode": "PAY_PER_REQUEST",
            }),
            ttl_attribute: None,
        })
    }

    /// An `AWS::S3::Bucket` and the function, queue and topic notifications of its
    /// `NotificationConfiguration`.
    fn bucket(&self, id: &str, at: &str, plan: &mut Plan) -> Result<(), AppError> {
        let name = self.physical_name(id)?;
        for (k, v) in self.properties(id, at)? {
            let k = scalar_text(&k).unwrap_or_default();
            let at = format!("{at}.Properties.{k}");
            match k.as_str() {
                "BucketName" => {}
                "NotificationConfiguration" => {
                    for (list, target_key) in [
                        ("LambdaConfigurations", "Function"),
                        ("QueueConfigurations", "Queue"),
                        ("TopicConfigurations", "Topic"),
                    ] {
                        let configs = v.get(list).and_then(Value::as_sequence);
                        for (i, c) in configs.into_iter().flatten().enumerate() {
                            let at = format!("{at}.{list}[{i}]");
                            let arn = c
                                .get(target_key)
                                .and_then(scalar_text)
                                .ok_or_else(|| invalid(&at, format!("{target_key} is missing")))?;
                            let target = match target_key {
                                "Function" => function_from_arn(&arn).map(Target::Function),
                                "Queue" => super::name_from_arn(&arn).map(Target::Queue),
                                _ => super::name_from_arn(&arn).map(Target::Topic),
                            }
                            .ok_or_else(|| {
                                invalid(&at, format!("'{arn}' names no {target_key}"))
                            })?;
                            let rules = c
                                .get("Filter")
                                .and_then(|f| f.get("S3Key"))
                                .and_then(|k| k.get("Rules"));
                            let (prefix, suffix) = super::events::key_filter(&at, rules)?;
                            plan.notifications.push(PlanNotification {
                                bucket: name.clone(),
                                target,
                                events: super::events::s3_events(c.get("Event")),
                                prefix,
                                suffix,
                            });
                        }
                    }
                    for k in v
                        .as_mapping()
                        .into_iter()
                        .flat_map(|m| m.keys())
                        .filter_map(Value::as_str)
                    {
                        if !matches!(
                            k,
                            "LambdaConfigurations" | "QueueConfigurations" | "TopicConfigurations"
                        ) {
                            plan.skip(
                                format!("{at}.{k}"),
                                "Lambent sends notifications to functions, queues and topics",
                            );
                        }
                    }
                }
                _ => plan.skip(at, "not applied by Lambent"),
            }
        }
        super::add_bucket(plan, &name, true);
        Ok(())
    }

    /// An `AWS::Lambda::EventSourceMapping` of a queue or a table's stream (spelled as SAM's
    /// `SQS` and `DynamoDB` events are).
    fn event_source_mapping(&self, id: &str, at: &str, plan: &mut Plan) -> Result<(), AppError> {
        let props = Value::Mapping(self.properties(id, at)?);
        let text = |k: &str| props.get(k).and_then(scalar_text);
        let arn = text("EventSourceArn")
            .ok_or_else(|| invalid(at, "EventSourceArn is missing (Lambent has no Kafka or MQ)"))?;
        let function = text("FunctionName")
            .as_deref()
            .and_then(function_from_arn)
            .ok_or_else(|| invalid(at, "FunctionName names no function"))?;
        if let Some(queue) = super::name_from_arn(&arn).filter(|_| !arn.contains(":sns:")) {
            if text("Enabled").as_deref() == Some("false") {
                plan.skip(at, "Enabled: false");
                return Ok(());
            }
            plan.mappings.push(super::PlanMapping {
                queue,
                function,
                batch_size: text("BatchSize").and_then(|b| b.parse().ok()),
                batching_window_ms: text("MaximumBatchingWindowInSeconds")
                    .and_then(|w| w.parse::<u64>().ok())
                    .map(|s| s * 1000),
                report_batch_item_failures: super::events::reports_failures(
                    props.get("FunctionResponseTypes"),
                ),
            });
            return Ok(());
        }
        let on_failure = props
            .get("DestinationConfig")
            .and_then(|d| d.get("OnFailure"))
            .and_then(|d| d.get("Destination"))
            .and_then(scalar_text);
        let spelling = &super::events::SAM_STREAM;
        if let Some(m) =
            super::events::stream_mapping(at, &function, &arn, &props, spelling, on_failure, plan)?
        {
            plan.stream_mappings.push(m);
        }
        Ok(())
    }

    /// An `AWS::StepFunctions::StateMachine`: its `Definition` (or `DefinitionString`) with
    /// `DefinitionSubstitutions` made, and its type.
    fn state_machine(&self, id: &str, at: &str, plan: &mut Plan) -> Result<PlanWorkflow, AppError> {
        let name = self.physical_name(id)?;
        let props = self.properties(id, at)?;
        let definition = match (props.get("Definition"), props.get("DefinitionString")) {
            (Some(d), _) => to_json(d, &format!("{at}.Properties.Definition"))?,
            (None, Some(text)) => {
                let text = scalar_text(text).unwrap_or_default();
                serde_json::from_str(&text).map_err(|e| {
                    invalid(
                        format!("{at}.Properties.DefinitionString"),
                        format!("not JSON: {e}"),
                    )
                })?
            }
            (None, None) => {
                return Err(unsupported(
                    at,
                    "DefinitionS3Location",
                    "give the definition in the template (Definition or DefinitionString)",
                ))
            }
        };
        for k in props.keys().filter_map(Value::as_str) {
            if !matches!(
                k,
                "Definition"
                    | "DefinitionString"
                    | "DefinitionSubstitutions"
                    | "StateMachineName"
                    | "StateMachineType"
            ) {
                plan.skip(format!("{at}.Properties.{k}"), "not applied by Lambent");
            }
        }
        Ok(PlanWorkflow {
            name,
            definition: substitute(
                definition,
                &substitutions(props.get("DefinitionSubstitutions")),
            ),
            kind: props.get("StateMachineType").and_then(scalar_text),
        })
    }

    fn queue(&self, id: &str, at: &str) -> Result<PlanQueue, AppError> {
        let name = self.physical_name(id)?;
        let number = |p: &str| -> Result<Option<u32>, AppError> {
            self.property(id, p)
                .map(|v| {
                    self.text(&v, at)?
                        .parse()
                        .map_err(|_| invalid(format!("{at}.Properties.{p}"), "expected a number"))
                })
                .transpose()
        };
        if let Some(fifo) = self.property(id, "FifoQueue") {
            if self.text(&fifo, at)? == "true" {
                return Err(unsupported(
                    at,
                    "FifoQueue",
                    "Lambent's queues are standard queues",
                ));
            }
        }
        let mut q = PlanQueue {
            name,
            visibility_timeout: number("VisibilityTimeout")?,
            delay: number("DelaySeconds")?,
            ..Default::default()
        };
        if let Some(policy) = self.property(id, "RedrivePolicy") {
            let at = format!("{at}.Properties.RedrivePolicy");
            let policy = match self.eval(&policy, &at)? {
                Value::String(json) => {
                    serde_yaml::from_str(&json).map_err(|e| invalid(&at, e.to_string()))?
                }
                other => other,
            };
            let target = policy
                .get("deadLetterTargetArn")
                .and_then(scalar_text)
                .unwrap_or_default();
            q.dead_letter_queue = Some(super::name_from_arn(&target).ok_or_else(|| {
                invalid(
                    &at,
                    format!("deadLetterTargetArn '{target}' names no queue"),
                )
            })?);
            q.max_receive_count = Some(
                policy
                    .get("maxReceiveCount")
                    .and_then(scalar_text)
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| invalid(&at, "maxReceiveCount must be a number"))?,
            );
        }
        Ok(q)
    }
}

/// An evaluated YAML value as JSON.
pub(super) fn to_json(v: &Value, at: &str) -> Result<serde_json::Value, AppError> {
    serde_json::to_value(v).map_err(|e| invalid(at, format!("cannot be read as JSON: {e}")))
}

/// `DefinitionSubstitutions`, evaluated, as text.
pub(super) fn substitutions(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .map(|(k, v)| {
            (
                scalar_text(k).unwrap_or_default(),
                scalar_text(v).unwrap_or_default(),
            )
        })
        .collect()
}

/// A state machine definition with `${Name}` replaced in every string by its substitution.
pub(super) fn substitute(
    v: serde_json::Value,
    subs: &BTreeMap<String, String>,
) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(mut s) => {
            for (k, value) in subs {
                s = s.replace(&format!("${{{k}}}"), value);
            }
            J::String(s)
        }
        J::Array(xs) => J::Array(xs.into_iter().map(|x| substitute(x, subs)).collect()),
        J::Object(m) => J::Object(
            m.into_iter()
                .map(|(k, x)| (k, substitute(x, subs)))
                .collect(),
        ),
        other => other,
    }
}

/// What `!Ref` of a REST API (`ServerlessRestApi`) gives; `!Sub` turns the API Gateway URLs
/// built of it into Lambent's.
const REST_API: &str = "lambent-rest";
/// The same for an HTTP API (`ServerlessHttpApi`).
const HTTP_API: &str = "lambent-http";

/// `https://lambent-rest.execute-api.REGION.amazonaws.com/STAGE/x` → `API_URL/x` (REST APIs
/// name their stage first; HTTP APIs' `$default` stage has no segment).
fn api_url(text: &str) -> String {
    for (api, has_stage) in [(REST_API, true), (HTTP_API, false)] {
        let marker = format!("https://{api}.execute-api.");
        let Some(start) = text.find(&marker) else {
            continue;
        };
        let after = &text[start + marker.len()..];
        let mut rest = &after[after.find('/').unwrap_or(after.len())..];
        if has_stage {
            if let Some(tail) = rest.strip_prefix('/') {
                rest = &tail[tail.find('/').unwrap_or(tail.len())..];
            }
        }
        return format!("{}{}{}", &text[..start], super::API_URL, api_url(rest));
    }
    text.to_string()
}

fn kind_service(kind: &str) -> String {
    kind.split("::")
        .nth(1)
        .unwrap_or("cloudformation")
        .to_ascii_lowercase()
}

/// A function name from a Lambda ARN (or its placeholder), or a bare name.
pub(super) fn function_from_arn(arn: &str) -> Option<String> {
    if let Some(rest) = arn.strip_prefix("${lambent:function-arn:") {
        return rest.strip_suffix('}').map(str::to_string);
    }
    if let Some(i) = arn.find(":function:") {
        return Some(arn[i + ":function:".len()..].split(':').next()?.to_string());
    }
    (!arn.contains(':')).then(|| arn.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(yaml: &str, params: &[(&str, &str)]) -> Template {
        let root: Value = serde_yaml::from_str(yaml).unwrap();
        Template::new(
            "stack".into(),
            params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            root.as_mapping().unwrap(),
        )
    }

    fn eval(t: &Template, yaml: &str) -> Result<Value, AppError> {
        t.eval(&serde_yaml::from_str(yaml).unwrap(), "x")
    }

    const RESOURCES: &str = r#"
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
Mappings:
  Sizes: {dev: {mem: "128"}}
Resources:
  Jobs: {Type: AWS::SQS::Queue, Properties: {QueueName: !Sub "${Stage}-jobs"}}
  Dead: {Type: AWS::SQS::Queue}
  News: {Type: AWS::SNS::Topic, Properties: {TopicName: news}}
  Fn: {Type: AWS::Serverless::Function, Properties: {FunctionName: worker}}
  A: {Type: AWS::SQS::Queue, Properties: {QueueName: !GetAtt B.TopicName}}
  B: {Type: AWS::SNS::Topic, Properties: {TopicName: !Ref A}}
"#;

    #[test]
    fn references_name_what_lambent_makes() {
        let t = template(RESOURCES, &[("Stage", "dev")]);
        let s = |y: &str| scalar_text(&eval(&t, y).unwrap()).unwrap();
        assert_eq!(s("!Ref Jobs"), "${lambent:queue-url:dev-jobs}");
        assert_eq!(s("!GetAtt Jobs.Arn"), "${lambent:queue-arn:dev-jobs}");
        assert_eq!(s("{'Fn::GetAtt': [Dead, QueueName]}"), "stack-Dead");
        assert_eq!(s("!Ref News"), "${lambent:topic-arn:news}");
        assert_eq!(s("!Ref Fn"), "worker");
        assert_eq!(
            s("!Sub '${Fn}-${AWS::Region}-${!Keep}'"),
            "worker-${lambent:region}-${Keep}"
        );
        assert_eq!(
            s("!Sub ['${X}/${Stage}', {X: !GetAtt News.TopicName}]"),
            "news/dev"
        );
        assert_eq!(s("!Join ['-', [a, !Ref Stage, 1]]"), "a-dev-1");
        assert_eq!(s("!Select [1, !Split [',', 'a,b,c']]"), "b");
        assert_eq!(s("!If [IsProd, big, small]"), "small");
        assert_eq!(s("!FindInMap [Sizes, !Ref Stage, mem]"), "128");
        assert_eq!(
            s("!Sub 'https://${ServerlessRestApi}.execute-api.${AWS::Region}.amazonaws.com/Prod/hello/'"),
            "${lambent:api-url}/hello/"
        );
        assert_eq!(
            s("!Sub 'https://${ServerlessHttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/x'"),
            "${lambent:api-url}/x"
        );
        assert_eq!(
            s("!GetAtt FnRole.Arn"),
            "arn:aws:iam::${lambent:account}:role/FnRole"
        );
        assert_eq!(
            eval(&t, "{a: !Ref AWS::NoValue, b: 1}").unwrap(),
            serde_yaml::from_str::<Value>("{b: 1}").unwrap()
        );
    }

    #[test]
    fn missing_references_and_cycles_are_refused() {
        let t = template(RESOURCES, &[("Stage", "dev")]);
        assert!(
            matches!(eval(&t, "!Ref Nope"), Err(AppError::MissingReference { name, .. }) if name == "Nope")
        );
        assert!(matches!(
            eval(&t, "!GetAtt Nope.Arn"),
            Err(AppError::MissingReference { .. })
        ));
        let e = eval(&t, "!Ref A").unwrap_err();
        assert!(
            matches!(&e, AppError::Cycle(chain) if chain == "A → B → A"),
            "{e}"
        );
        assert!(matches!(
            eval(&t, "!GetAZs ''"),
            Err(AppError::Unsupported { .. })
        ));
    }

    #[test]
    fn queues_with_a_redrive_policy_name_their_dead_letter_queue() {
        let t = template(
            r#"
Resources:
  Jobs:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 30
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dead.Arn, maxReceiveCount: 3}
  Dead: {Type: AWS::SQS::Queue}
  Role: {Type: AWS::IAM::Role}
"#,
            &[],
        );
        let mut plan = Plan::default();
        t.plain_resources(&mut plan, &[]).unwrap();
        assert_eq!(
            plan.queues[0].dead_letter_queue.as_deref(),
            Some("stack-Dead")
        );
        assert_eq!(plan.queues[0].max_receive_count, Some(3));
        assert_eq!(plan.queues[0].visibility_timeout, Some(30));
        assert_eq!(plan.skipped.len(), 1);
        assert!(plan.skipped[0].0.contains("Role"));
    }

    #[test]
    fn state_machines_read_a_definition_string_with_substitutions() {
        let t = template(
            r#"
Resources:
  Fn: {Type: AWS::Lambda::Function, Properties: {FunctionName: worker}}
  Flow:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      StateMachineName: flow
      StateMachineType: EXPRESS
      RoleArn: arn:aws:iam::1:role/x
      DefinitionString: !Sub '{"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": "${Fn.Arn}", "Next": "B"}, "B": {"Type": "Pass", "Result": "${!Greeting}", "End": true}}}'
      DefinitionSubstitutions: {Greeting: hello}
  Bad:
    Type: AWS::StepFunctions::StateMachine
    Properties: {DefinitionS3Location: {Bucket: b, Key: k}}
"#,
            &[],
        );
        let mut plan = Plan::default();
        let e = t
            .plain_resources(&mut plan, &["AWS::Lambda::Function"])
            .unwrap_err();
        assert!(e.to_string().contains("DefinitionS3Location"), "{e}");
        let w = &plan.workflows[0];
        assert_eq!(
            (w.name.as_str(), w.kind.as_deref()),
            ("flow", Some("EXPRESS"))
        );
        assert_eq!(
            w.definition["States"]["A"]["Resource"],
            "${lambent:function-arn:worker}"
        );
        assert_eq!(w.definition["States"]["B"]["Result"], "hello");
        assert!(plan.skipped.iter().any(|(i, _)| i.ends_with("RoleArn")));
    }

    #[test]
    fn event_source_mappings_read_a_queue_or_a_stream() {
        let t = template(
            r#"
Resources:
  Jobs: {Type: AWS::SQS::Queue}
  Orders:
    Type: AWS::DynamoDB::Table
    Properties:
      KeySchema: [{AttributeName: id, KeyType: HASH}]
      AttributeDefinitions: [{AttributeName: id, AttributeType: S}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
  Fn: {Type: AWS::Lambda::Function, Properties: {FunctionName: worker}}
  FromQueue:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Jobs.Arn, FunctionName: !Ref Fn, BatchSize: 3}
  FromStream:
    Type: AWS::Lambda::EventSourceMapping
    Properties: {EventSourceArn: !GetAtt Orders.StreamArn, FunctionName: !GetAtt Fn.Arn, StartingPosition: LATEST}
"#,
            &[],
        );
        let mut plan = Plan::default();
        t.plain_resources(&mut plan, &["AWS::Lambda::Function"])
            .unwrap();
        assert_eq!(
            (
                plan.mappings[0].queue.as_str(),
                plan.mappings[0].function.as_str()
            ),
            ("stack-Jobs", "worker")
        );
        assert_eq!(plan.mappings[0].batch_size, Some(3));
        let m = &plan.stream_mappings[0];
        assert_eq!(
            (m.table.as_str(), m.function.as_str()),
            ("stack-Orders", "worker")
        );
        assert_eq!(m.starting_position.as_deref(), Some("LATEST"));
    }
}
