//! Definitions: an ASL document parsed and validated once into an immutable [`StateMachine`]
//! (resolve before you run). Every transition is resolved to a state index, every path,
//! intrinsic function and JSONata expression compiled, every field checked against its state
//! type and query language. A definition that is not valid is refused with every problem found
//! ([`InvalidDefinition`]), each with its code, location (`/States/X/Next`) and reason, the
//! shape of AWS's `ValidateStateMachineDefinition` diagnostics.
//!
//! Distributed Map (`ItemReader`, `ItemBatcher`, `ResultWriter`, `"Mode": "DISTRIBUTED"`) is
//! refused as not supported.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::error::{Diagnostic, DiagnosticCode, InvalidDefinition};
use crate::jsonata::Expr;
use crate::path::{jsonata_source, Query, Template};

/// The query language of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryLanguage {
    /// `JSONPath` (the default): `InputPath`, `Parameters`, `ResultSelector`, `ResultPath`,
    /// `OutputPath`.
    JsonPath,
    /// `JSONata`: `Arguments`, `Output`, `{% %}` expressions.
    Jsonata,
}

/// A validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    /// `Comment`.
    pub comment: Option<String>,
    /// `TimeoutSeconds` of the whole execution.
    pub timeout_seconds: Option<u64>,
    /// The top-level `QueryLanguage`.
    pub query_language: QueryLanguage,
    /// The top-level states.
    pub root: Branch,
}

/// A set of states with a start: the machine itself, a Parallel branch, a Map's item processor.
#[derive(Debug, Clone)]
pub struct Branch {
    /// The index of `StartAt` in `states`.
    pub start: usize,
    /// The states (in name order).
    pub states: Vec<State>,
    index: HashMap<String, usize>,
}

impl Branch {
    /// The index of the state named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }
}

/// Where a state's input comes from (`InputPath`) or its output goes (`OutputPath`).
#[derive(Debug, Clone, PartialEq)]
pub enum Selector {
    /// Absent or `$`: all of it.
    Whole,
    /// `null`: an empty object.
    Empty,
    /// A path.
    Path(Query),
}

/// Where a state's result goes in its input (`ResultPath`).
#[derive(Debug, Clone, PartialEq)]
pub enum ResultPath {
    /// Absent or `$`: the result replaces the input.
    Whole,
    /// `null`: the result is discarded, the input passes on.
    Discard,
    /// A reference path inside the input.
    Path(Query),
}

/// One validated state.
#[derive(Debug, Clone)]
pub struct State {
    /// The state's name.
    pub name: String,
    /// The query language in force for this state.
    pub language: QueryLanguage,
    /// The type-specific part.
    pub kind: Kind,
    /// `Next` as an index into the branch; `None` for `End`, Choice, Succeed and Fail.
    pub next: Option<usize>,
    /// `InputPath` (JSONPath).
    pub input_path: Selector,
    /// `Parameters` (JSONPath) or `Arguments` (JSONata).
    pub parameters: Option<Template>,
    /// `ResultSelector` (JSONPath).
    pub result_selector: Option<Template>,
    /// `ResultPath` (JSONPath).
    pub result_path: ResultPath,
    /// `OutputPath` (JSONPath).
    pub output_path: Selector,
    /// `Output` (JSONata).
    pub output: Option<Template>,
    /// `Assign`.
    pub assign: Option<Template>,
    /// `Retry` (Task, Parallel, Map).
    pub retry: Vec<Retrier>,
    /// `Catch` (Task, Parallel, Map).
    pub catch: Vec<Catcher>,
    /// Whether anything in the state reads the context object (`$$`, `$states`): the engine
    /// builds it only then.
    pub needs_context: bool,
}

/// The type-specific part of a state.
#[derive(Debug, Clone)]
pub enum Kind {
    /// `Pass`, with its `Result`.
    Pass {
        /// `Result` (JSONPath).
        result: Option<Value>,
    },
    /// `Task`.
    Task(Task),
    /// `Choice`.
    Choice(Choice),
    /// `Wait`.
    Wait(Wait),
    /// `Succeed`.
    Succeed,
    /// `Fail`.
    Fail(Fail),
    /// `Parallel`.
    Parallel(Parallel),
    /// `Map` (inline).
    Map(Box<MapState>),
}

impl Kind {
    /// The state type as written in `Type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice(_) => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail(_) => "Fail",
            Kind::Parallel(_) => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

/// A Task state.
#[derive(Debug, Clone)]
pub struct Task {
    /// `Resource`: the ARN the [`crate::engine::TaskRunner`] runs.
    pub resource: String,
    /// `TimeoutSeconds` / `TimeoutSecondsPath` (default 99999999, i.e. none).
    pub timeout_seconds: Option<Template>,
    /// `HeartbeatSeconds` / `HeartbeatSecondsPath`.
    pub heartbeat_seconds: Option<Template>,
    /// `Credentials`, passed to the runner as written.
    pub credentials: Option<Value>,
}

/// A Choice state.
#[derive(Debug, Clone)]
pub struct Choice {
    /// `Choices`, in order.
    pub rules: Vec<ChoiceRule>,
    /// `Default`.
    pub default: Option<usize>,
}

/// A top-level Choice rule.
#[derive(Debug, Clone)]
pub struct ChoiceRule {
    /// The condition.
    pub condition: Condition,
    /// `Next`.
    pub next: usize,
    /// `Assign` of the rule.
    pub assign: Option<Template>,
    /// `Output` of the rule (JSONata).
    pub output: Option<Template>,
}

/// A Choice condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `And`.
    And(Vec<Condition>),
    /// `Or`.
    Or(Vec<Condition>),
    /// `Not`.
    Not(Box<Condition>),
    /// `Variable` compared with an operator.
    Test {
        /// `Variable`.
        variable: Query,
        /// The operator.
        op: Op,
        /// The operand (a literal or, for `…Path` operators, a path).
        operand: Operand,
    },
    /// `Condition` (JSONata).
    Jsonata(Expr),
}

/// The operand of a comparison.
#[derive(Debug, Clone)]
pub enum Operand {
    /// A literal.
    Literal(Value),
    /// The value at a path (`…Path` operators).
    Path(Query),
}

/// A comparison operator (without its `Path` suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Op {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const OPS: &[(&str, Op)] = &[
    ("StringEquals", Op::StringEquals),
    ("StringLessThan", Op::StringLessThan),
    ("StringGreaterThan", Op::StringGreaterThan),
    ("StringLessThanEquals", Op::StringLessThanEquals),
    ("StringGreaterThanEquals", Op::StringGreaterThanEquals),
    ("StringMatches", Op::StringMatches),
    ("NumericEquals", Op::NumericEquals),
    ("NumericLessThan", Op::NumericLessThan),
    ("NumericGreaterThan", Op::NumericGreaterThan),
    ("NumericLessThanEquals", Op::NumericLessThanEquals),
    ("NumericGreaterThanEquals", Op::NumericGreaterThanEquals),
    ("BooleanEquals", Op::BooleanEquals),
    ("TimestampEquals", Op::TimestampEquals),
    ("TimestampLessThan", Op::TimestampLessThan),
    ("TimestampGreaterThan", Op::TimestampGreaterThan),
    ("TimestampLessThanEquals", Op::TimestampLessThanEquals),
    ("TimestampGreaterThanEquals", Op::TimestampGreaterThanEquals),
    ("IsNull", Op::IsNull),
    ("IsPresent", Op::IsPresent),
    ("IsNumeric", Op::IsNumeric),
    ("IsString", Op::IsString),
    ("IsBoolean", Op::IsBoolean),
    ("IsTimestamp", Op::IsTimestamp),
];

/// What a Wait state waits for.
#[derive(Debug, Clone)]
pub enum Wait {
    /// `Seconds` / `SecondsPath` (or a JSONata `Seconds`).
    Seconds(Template),
    /// `Timestamp` / `TimestampPath` (or a JSONata `Timestamp`).
    Timestamp(Template),
}

/// A Fail state.
#[derive(Debug, Clone)]
pub struct Fail {
    /// `Error` / `ErrorPath`.
    pub error: Option<Template>,
    /// `Cause` / `CausePath`.
    pub cause: Option<Template>,
}

/// A Parallel state.
#[derive(Debug, Clone)]
pub struct Parallel {
    /// `Branches`.
    pub branches: Vec<Branch>,
}

/// A Map state (inline).
#[derive(Debug, Clone)]
pub struct MapState {
    /// `ItemProcessor` (or the legacy `Iterator`).
    pub processor: Branch,
    /// `ItemsPath` (JSONPath) or `Items` (JSONata); `None` is the whole input.
    pub items: Option<Template>,
    /// `ItemSelector` (or the legacy `Parameters`).
    pub item_selector: Option<Template>,
    /// `MaxConcurrency` / `MaxConcurrencyPath` (0 or absent: no limit).
    pub max_concurrency: Option<Template>,
    /// `ToleratedFailurePercentage` / `…Path`.
    pub tolerated_failure_percentage: Option<Template>,
    /// `ToleratedFailureCount` / `…Path`.
    pub tolerated_failure_count: Option<Template>,
}

/// A Retry rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Retrier {
    /// `ErrorEquals`.
    pub error_equals: Vec<String>,
    /// `IntervalSeconds` (default 1).
    pub interval_seconds: f64,
    /// `MaxAttempts` (default 3; 0 never retries).
    pub max_attempts: u32,
    /// `BackoffRate` (default 2.0).
    pub backoff_rate: f64,
    /// `MaxDelaySeconds`.
    pub max_delay_seconds: Option<f64>,
    /// `JitterStrategy` `FULL` (default `NONE`).
    pub full_jitter: bool,
}

/// A Catch rule.
#[derive(Debug, Clone)]
pub struct Catcher {
    /// `ErrorEquals`.
    pub error_equals: Vec<String>,
    /// `Next`.
    pub next: usize,
    /// `ResultPath` (JSONPath): where the error output goes in the state's input.
    pub result_path: ResultPath,
    /// `Assign`.
    pub assign: Option<Template>,
    /// `Output` (JSONata).
    pub output: Option<Template>,
}

impl StateMachine {
    /// Parse and validate a definition given as text.
    pub fn parse(text: &str) -> Result<StateMachine, InvalidDefinition> {
        let value: Value = serde_json::from_str(text).map_err(|e| InvalidDefinition {
            diagnostics: vec![Diagnostic {
                code: DiagnosticCode::InvalidJsonDescription,
                location: "/".into(),
                message: format!("the definition is not valid JSON: {e}"),
            }],
        })?;
        Self::from_value(&value)
    }

    /// `ValidateStateMachineDefinition`: every problem of a definition (none when it is valid).
    pub fn validate(text: &str) -> Vec<Diagnostic> {
        Self::parse(text)
            .err()
            .map(|e| e.diagnostics)
            .unwrap_or_default()
    }

    /// Validate a definition given as JSON.
    pub fn from_value(value: &Value) -> Result<StateMachine, InvalidDefinition> {
        let mut v = Validator::default();
        let machine = v.machine(value);
        match machine {
            Some(m) if v.diagnostics.is_empty() => Ok(m),
            _ => Err(InvalidDefinition {
                diagnostics: if v.diagnostics.is_empty() {
                    vec![Diagnostic {
                        code: DiagnosticCode::SchemaValidationFailed,
                        location: "/".into(),
                        message: "the definition is not valid".into(),
                    }]
                } else {
                    v.diagnostics
                },
            }),
        }
    }
}

const COMMON: &[&str] = &["Type", "Comment", "QueryLanguage"];
const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "OutputPath",
    "ItemsPath",
    "ErrorPath",
    "CausePath",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "Result",
    "Iterator",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

fn allowed(type_name: &str) -> Option<&'static [&'static str]> {
    Some(match type_name {
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "Parameters",
            "ResultPath",
            "OutputPath",
            "Result",
            "Assign",
            "Output",
        ],
        "Task" => &[
            "Next",
            "End",
            "Resource",
            "InputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "OutputPath",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Arguments",
            "Output",
            "Assign",
            "Credentials",
        ],
        "Choice" => &[
            "Choices",
            "Default",
            "InputPath",
            "OutputPath",
            "Assign",
            "Output",
        ],
        "Wait" => &[
            "Next",
            "End",
            "Seconds",
            "Timestamp",
            "SecondsPath",
            "TimestampPath",
            "InputPath",
            "OutputPath",
            "Assign",
            "Output",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "Cause", "ErrorPath", "CausePath"],
        "Parallel" => &[
            "Next",
            "End",
            "Branches",
            "InputPath",
            "Parameters",
            "ResultSelector",
            "ResultPath",
            "OutputPath",
            "Retry",
            "Catch",
            "Arguments",
            "Output",
            "Assign",
        ],
        "Map" => &[
            "Next",
            "End",
            "ItemProcessor",
            "Iterator",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "Parameters",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "InputPath",
            "ResultSelector",
            "ResultPath",
            "OutputPath",
            "Retry",
            "Catch",
            "Output",
            "Assign",
            "Label",
        ],
        _ => return None,
    })
}

#[derive(Default)]
struct Validator {
    diagnostics: Vec<Diagnostic>,
}

/// A state's fields being read, with its location.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    loc: String,
    language: QueryLanguage,
}

impl Fields<'_> {
    fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.loc)
    }
}

impl Validator {
    fn fail(
        &mut self,
        code: DiagnosticCode,
        location: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            code,
            location: location.into(),
            message: message.into(),
        });
    }

    fn schema(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.fail(DiagnosticCode::SchemaValidationFailed, location, message);
    }

    fn machine(&mut self, value: &Value) -> Option<StateMachine> {
        let Some(obj) = value.as_object() else {
            self.schema("/", "the definition must be a JSON object");
            return None;
        };
        for key in obj.keys() {
            if ![
                "Comment",
                "StartAt",
                "States",
                "TimeoutSeconds",
                "Version",
                "QueryLanguage",
            ]
            .contains(&key.as_str())
            {
                self.schema(
                    format!("/{key}"),
                    format!("The field '{key}' is not supported by Step Functions"),
                );
            }
        }
        let f = Fields {
            obj,
            loc: String::new(),
            language: QueryLanguage::JsonPath,
        };
        let language = self
            .language(&f, QueryLanguage::JsonPath)
            .unwrap_or(QueryLanguage::JsonPath);
        let timeout_seconds = self.uint(&f, "TimeoutSeconds", 0);
        let comment = self.string(&f, "Comment").map(str::to_string);
        let root = self.branch(obj, "", language)?;
        Some(StateMachine {
            comment,
            timeout_seconds,
            query_language: language,
            root,
        })
    }

    fn language(&mut self, f: &Fields<'_>, inherited: QueryLanguage) -> Option<QueryLanguage> {
        match f.obj.get("QueryLanguage") {
            None => Some(inherited),
            Some(Value::String(s)) if s == "JSONPath" => {
                if inherited == QueryLanguage::Jsonata {
                    self.schema(
                        f.at("QueryLanguage"),
                        "a state cannot use JSONPath when the state machine's QueryLanguage is JSONata",
                    );
                    return None;
                }
                Some(QueryLanguage::JsonPath)
            }
            Some(Value::String(s)) if s == "JSONata" => Some(QueryLanguage::Jsonata),
            Some(other) => {
                self.schema(
                    f.at("QueryLanguage"),
                    format!("QueryLanguage must be \"JSONPath\" or \"JSONata\", got {other}"),
                );
                None
            }
        }
    }

    fn string<'a>(&mut self, f: &Fields<'a>, key: &str) -> Option<&'a str> {
        match f.obj.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.schema(
                    f.at(key),
                    format!("The field '{key}' must be a string, got {other}"),
                );
                None
            }
        }
    }

    fn uint(&mut self, f: &Fields<'_>, key: &str, min: u64) -> Option<u64> {
        let v = f.obj.get(key)?;
        match v.as_u64() {
            Some(n) if n >= min => Some(n),
            _ => {
                self.schema(
                    f.at(key),
                    format!("The field '{key}' must be an integer of at least {min}, got {v}"),
                );
                None
            }
        }
    }

    fn query(&mut self, f: &Fields<'_>, key: &str) -> Option<Query> {
        let text = self.string(f, key)?;
        match Query::parse(text) {
            Ok(q) => Some(q),
            Err(e) => {
                self.schema(f.at(key), e);
                None
            }
        }
    }

    fn selector(&mut self, f: &Fields<'_>, key: &str) -> Selector {
        match f.obj.get(key) {
            None => Selector::Whole,
            Some(Value::Null) => Selector::Empty,
            Some(_) => self.query(f, key).map_or(Selector::Whole, Selector::Path),
        }
    }

    fn result_path(&mut self, f: &Fields<'_>) -> ResultPath {
        match f.obj.get("ResultPath") {
            None => ResultPath::Whole,
            Some(Value::Null) => ResultPath::Discard,
            Some(_) => match self.query(f, "ResultPath") {
                Some(q) if !q.is_reference() || *q.root() != crate::path::Root::Input => {
                    self.schema(
                        f.at("ResultPath"),
                        format!("The value for the field 'ResultPath' must be a valid reference path starting with '$.', got '{}'", q.source()),
                    );
                    ResultPath::Whole
                }
                Some(q) if q.source().trim() == "$" => ResultPath::Whole,
                Some(q) => ResultPath::Path(q),
                None => ResultPath::Whole,
            },
        }
    }

    /// A payload template in the state's language.
    fn template(&mut self, f: &Fields<'_>, key: &str) -> Option<Template> {
        let value = f.obj.get(key)?;
        let compiled = match f.language {
            QueryLanguage::JsonPath => Template::jsonpath(value),
            QueryLanguage::Jsonata => Template::jsonata(value),
        };
        compiled.map_err(|e| self.schema(f.at(key), e)).ok()
    }

    /// A value given as a literal, a `…Path` field (JSONPath) or a `{% %}` string (JSONata).
    fn dynamic(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        check: fn(&Value) -> bool,
        what: &str,
    ) -> Option<Template> {
        let path_key = format!("{key}Path");
        if f.obj.contains_key(key) && f.obj.contains_key(&path_key) {
            self.schema(
                f.at(&path_key),
                format!("The fields '{key}' and '{path_key}' cannot both be set"),
            );
            return None;
        }
        if let Some(text) = self.string(f, &path_key) {
            // a path, or (ErrorPath, CausePath, …) an intrinsic function
            return Template::dynamic(text)
                .map_err(|e| self.schema(f.at(&path_key), e))
                .ok();
        }
        let value = f.obj.get(key)?;
        if f.language == QueryLanguage::Jsonata {
            if let Some(src) = value.as_str().and_then(jsonata_source) {
                return match Expr::parse(src) {
                    Ok(e) => Some(Template::Jsonata(e)),
                    Err(e) => {
                        self.schema(
                            f.at(key),
                            format!("the JSONata expression '{src}' is invalid: {e}"),
                        );
                        None
                    }
                };
            }
        }
        if !check(value) {
            self.schema(
                f.at(key),
                format!("The field '{key}' must be {what}, got {value}"),
            );
            return None;
        }
        Some(Template::Literal(value.clone()))
    }

    fn branch(
        &mut self,
        obj: &Map<String, Value>,
        loc: &str,
        language: QueryLanguage,
    ) -> Option<Branch> {
        let start_name = match obj.get("StartAt") {
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => {
                self.schema(
                    format!("{loc}/StartAt"),
                    "The field 'StartAt' must be a string",
                );
                None
            }
            None => {
                self.schema(
                    loc.to_string() + "/StartAt",
                    "The field 'StartAt' is required",
                );
                None
            }
        };
        let Some(states_obj) = obj.get("States").and_then(Value::as_object) else {
            self.schema(
                format!("{loc}/States"),
                "The field 'States' is required and must be an object",
            );
            return None;
        };
        if states_obj.is_empty() {
            self.schema(
                format!("{loc}/States"),
                "The field 'States' must hold at least one state",
            );
            return None;
        }
        let index: HashMap<String, usize> = states_obj
            .keys()
            .enumerate()
            .map(|(i, k)| (k.clone(), i))
            .collect();
        let start = start_name.and_then(|s| {
            let found = index.get(s).copied();
            if found.is_none() {
                self.fail(
                    DiagnosticCode::MissingTransitionTarget,
                    format!("{loc}/StartAt"),
                    format!("Missing 'Next' target: {s}"),
                );
            }
            found
        });
        let mut states = Vec::with_capacity(states_obj.len());
        for (name, value) in states_obj {
            let sloc = format!("{loc}/States/{name}");
            if name.is_empty() || name.chars().count() > 80 {
                self.schema(sloc.clone(), "a state name must be 1 to 80 characters long");
            }
            if let Some(s) = self.state(name, value, &sloc, language, &index) {
                states.push(s);
            }
        }
        let start = start?;
        if states.len() != states_obj.len() {
            return None;
        }
        // reachability from StartAt
        let mut seen = HashSet::from([start]);
        let mut todo = vec![start];
        while let Some(i) = todo.pop() {
            let s = &states[i];
            let mut targets: Vec<usize> = s.next.into_iter().collect();
            targets.extend(s.catch.iter().map(|c| c.next));
            if let Kind::Choice(c) = &s.kind {
                targets.extend(c.rules.iter().map(|r| r.next));
                targets.extend(c.default);
            }
            for t in targets {
                if seen.insert(t) {
                    todo.push(t);
                }
            }
        }
        for (i, s) in states.iter().enumerate() {
            if !seen.contains(&i) {
                self.fail(
                    DiagnosticCode::UnreachableState,
                    format!("{loc}/States/{}", s.name),
                    format!("State '{}' is not reachable", s.name),
                );
            }
        }
        Some(Branch {
            start,
            states,
            index,
        })
    }

    fn target(
        &mut self,
        location: String,
        name: Option<&str>,
        index: &HashMap<String, usize>,
    ) -> Option<usize> {
        let name = name?;
        let found = index.get(name).copied();
        if found.is_none() {
            self.fail(
                DiagnosticCode::MissingTransitionTarget,
                location,
                format!("Missing 'Next' target: {name}"),
            );
        }
        found
    }

    fn state(
        &mut self,
        name: &str,
        value: &Value,
        loc: &str,
        inherited: QueryLanguage,
        index: &HashMap<String, usize>,
    ) -> Option<State> {
        let Some(obj) = value.as_object() else {
            self.schema(loc, "a state must be a JSON object");
            return None;
        };
        let mut f = Fields {
            obj,
            loc: loc.to_string(),
            language: inherited,
        };
        let type_name = match obj.get("Type") {
            Some(Value::String(t)) => t.as_str(),
            _ => {
                self.schema(
                    f.at("Type"),
                    "The field 'Type' is required and must be a string",
                );
                return None;
            }
        };
        let Some(allowed) = allowed(type_name) else {
            self.schema(
                f.at("Type"),
                format!("'{type_name}' is not a state type (Task, Pass, Choice, Wait, Succeed, Fail, Parallel, Map)"),
            );
            return None;
        };
        let language = self.language(&f, inherited)?;
        f.language = language;
        let before = self.diagnostics.len();
        for key in obj.keys() {
            let key = key.as_str();
            if COMMON.contains(&key) {
                continue;
            }
            if !allowed.contains(&key) {
                self.schema(
                    f.at(key),
                    format!("The field '{key}' is not supported for a {type_name} state"),
                );
            } else if language == QueryLanguage::Jsonata && JSONPATH_ONLY.contains(&key) {
                self.schema(
                    f.at(key),
                    format!("The field '{key}' is not supported for QueryLanguage JSONata"),
                );
            } else if language == QueryLanguage::JsonPath && JSONATA_ONLY.contains(&key) {
                self.schema(
                    f.at(key),
                    format!("The field '{key}' is only supported for QueryLanguage JSONata"),
                );
            }
        }
        // transitions
        let terminal = matches!(type_name, "Choice" | "Succeed" | "Fail");
        let next_name = self.string(&f, "Next");
        let end = match obj.get("End") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.schema(
                    f.at("End"),
                    format!("The field 'End' must be a boolean, got {other}"),
                );
                false
            }
        };
        if !terminal {
            match (next_name, end) {
                (Some(_), true) => self.schema(
                    f.at("End"),
                    "The fields 'Next' and 'End' cannot both be set",
                ),
                (None, false) => {
                    self.schema(loc, "The state must have either 'Next' or 'End': true")
                }
                _ => {}
            }
        }
        let next = self.target(f.at("Next"), next_name, index);
        let (retry, catch) = if matches!(type_name, "Task" | "Parallel" | "Map") {
            (self.retriers(&f), self.catchers(&f, index))
        } else {
            (Vec::new(), Vec::new())
        };
        let kind = match type_name {
            "Pass" => Kind::Pass {
                result: obj.get("Result").cloned(),
            },
            "Task" => Kind::Task(self.task(&f)?),
            "Choice" => Kind::Choice(self.choice(&f, index)?),
            "Wait" => Kind::Wait(self.wait(&f)?),
            "Succeed" => Kind::Succeed,
            "Fail" => Kind::Fail(self.fail_state(&f)?),
            "Parallel" => {
                let Some(branches) = obj.get("Branches").and_then(Value::as_array) else {
                    self.schema(
                        f.at("Branches"),
                        "The field 'Branches' is required and must be an array",
                    );
                    return None;
                };
                let mut out = Vec::new();
                for (i, b) in branches.iter().enumerate() {
                    let bloc = format!("{loc}/Branches/{i}");
                    match b.as_object() {
                        Some(bobj) => out.extend(self.branch(bobj, &bloc, language)),
                        None => self.schema(bloc, "a branch must be a JSON object"),
                    }
                }
                Kind::Parallel(Parallel { branches: out })
            }
            "Map" => Kind::Map(Box::new(self.map(&f)?)),
            _ => return None,
        };
        let (parameters, output) = match language {
            QueryLanguage::JsonPath => (
                self.template(&f, "Parameters")
                    .filter(|_| type_name != "Map"),
                None,
            ),
            QueryLanguage::Jsonata => (self.template(&f, "Arguments"), self.template(&f, "Output")),
        };
        let text = value.to_string();
        let state = State {
            needs_context: text.contains("$$") || text.contains("$states"),
            name: name.to_string(),
            language,
            next,
            input_path: self.selector(&f, "InputPath"),
            parameters,
            result_selector: self.template(&f, "ResultSelector"),
            result_path: self.result_path(&f),
            output_path: self.selector(&f, "OutputPath"),
            output,
            assign: self.assign(&f, "Assign"),
            retry,
            catch,
            kind,
        };
        (self.diagnostics.len() == before).then_some(state)
    }

    fn assign(&mut self, f: &Fields<'_>, key: &str) -> Option<Template> {
        let value = f.obj.get(key)?;
        let Some(vars) = value.as_object() else {
            self.schema(f.at(key), format!("The field '{key}' must be an object"));
            return None;
        };
        for name in vars.keys() {
            let bare = match f.language {
                QueryLanguage::JsonPath => name.strip_suffix(".$").unwrap_or(name),
                QueryLanguage::Jsonata => name.as_str(),
            };
            let mut chars = bare.chars();
            let valid = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && bare.len() <= 80
                && bare != "states";
            if !valid {
                self.schema(
                    format!("{}/{name}", f.at(key)),
                    format!("'{bare}' is not a valid variable name (a letter or '_', then letters, digits or '_'; at most 80; not 'states')"),
                );
            }
        }
        self.template(f, key)
    }

    fn task(&mut self, f: &Fields<'_>) -> Option<Task> {
        let Some(resource) = self.string(f, "Resource") else {
            if !f.obj.contains_key("Resource") {
                self.schema(f.at("Resource"), "The field 'Resource' is required");
            }
            return None;
        };
        if !resource.starts_with("arn:") {
            self.schema(
                f.at("Resource"),
                format!("The resource '{resource}' is not a valid ARN"),
            );
        }
        let positive = |v: &Value| v.as_u64().is_some_and(|n| n > 0);
        let timeout_seconds = self.dynamic(f, "TimeoutSeconds", positive, "a positive integer");
        let heartbeat_seconds = self.dynamic(f, "HeartbeatSeconds", positive, "a positive integer");
        if let (Some(Template::Literal(t)), Some(Template::Literal(h))) =
            (&timeout_seconds, &heartbeat_seconds)
        {
            if h.as_u64() >= t.as_u64() {
                self.schema(
                    f.at("HeartbeatSeconds"),
                    "HeartbeatSeconds must be smaller than TimeoutSeconds",
                );
            }
        }
        Some(Task {
            resource: resource.to_string(),
            timeout_seconds,
            heartbeat_seconds,
            credentials: f.obj.get("Credentials").cloned(),
        })
    }

    fn error_equals(&mut self, obj: &Map<String, Value>, loc: &str) -> Vec<String> {
        let Some(list) = obj.get("ErrorEquals").and_then(Value::as_array) else {
            self.schema(
                format!("{loc}/ErrorEquals"),
                "The field 'ErrorEquals' is required and must be a non-empty array of strings",
            );
            return Vec::new();
        };
        let names: Vec<String> = list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if names.is_empty() || names.len() != list.len() {
            self.schema(
                format!("{loc}/ErrorEquals"),
                "The field 'ErrorEquals' must be a non-empty array of strings",
            );
        }
        if names.len() > 1 && names.iter().any(|n| n == crate::error::names::ALL) {
            self.schema(
                format!("{loc}/ErrorEquals"),
                "States.ALL must appear alone in ErrorEquals",
            );
        }
        names
    }

    fn rules<'a>(&mut self, f: &Fields<'a>, key: &str) -> Vec<(&'a Map<String, Value>, String)> {
        let Some(v) = f.obj.get(key) else {
            return Vec::new();
        };
        let Some(list) = v.as_array() else {
            self.schema(f.at(key), format!("The field '{key}' must be an array"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let rloc = format!("{}/{i}", f.at(key));
            match r.as_object() {
                Some(o) => out.push((o, rloc)),
                None => self.schema(rloc, "a rule must be a JSON object"),
            }
        }
        let last = out.len();
        for (i, (o, rloc)) in out.iter().enumerate() {
            let all = o
                .get("ErrorEquals")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|e| e == crate::error::names::ALL));
            if all && i + 1 != last {
                self.schema(
                    format!("{rloc}/ErrorEquals"),
                    format!("States.ALL must appear in the last {key} rule"),
                );
            }
        }
        out
    }

    fn retriers(&mut self, f: &Fields<'_>) -> Vec<Retrier> {
        let mut out = Vec::new();
        for (o, rloc) in self.rules(f, "Retry") {
            let rf = Fields {
                obj: o,
                loc: rloc.clone(),
                language: f.language,
            };
            for key in o.keys() {
                if ![
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ]
                .contains(&key.as_str())
                {
                    self.schema(
                        rf.at(key),
                        format!("The field '{key}' is not supported in a Retry rule"),
                    );
                }
            }
            let error_equals = self.error_equals(o, &rloc);
            let interval_seconds = self.uint(&rf, "IntervalSeconds", 1).unwrap_or(1) as f64;
            let max_attempts = self
                .uint(&rf, "MaxAttempts", 0)
                .unwrap_or(3)
                .min(u32::MAX as u64) as u32;
            let max_delay_seconds = self.uint(&rf, "MaxDelaySeconds", 1).map(|n| n as f64);
            let backoff_rate = match o.get("BackoffRate") {
                None => 2.0,
                Some(v) => {
                    match v.as_f64() {
                        Some(r) if r >= 1.0 => r,
                        _ => {
                            self.schema(rf.at("BackoffRate"), format!("The field 'BackoffRate' must be a number of at least 1.0, got {v}"));
                            2.0
                        }
                    }
                }
            };
            let full_jitter = match self.string(&rf, "JitterStrategy") {
                None | Some("NONE") => false,
                Some("FULL") => true,
                Some(other) => {
                    self.schema(
                        rf.at("JitterStrategy"),
                        format!("The field 'JitterStrategy' must be FULL or NONE, got '{other}'"),
                    );
                    false
                }
            };
            out.push(Retrier {
                error_equals,
                interval_seconds,
                max_attempts,
                backoff_rate,
                max_delay_seconds,
                full_jitter,
            });
        }
        out
    }

    fn catchers(&mut self, f: &Fields<'_>, index: &HashMap<String, usize>) -> Vec<Catcher> {
        let mut out = Vec::new();
        for (o, rloc) in self.rules(f, "Catch") {
            let cf = Fields {
                obj: o,
                loc: rloc.clone(),
                language: f.language,
            };
            for key in o.keys() {
                let ok = match f.language {
                    QueryLanguage::JsonPath => {
                        ["ErrorEquals", "Next", "ResultPath", "Assign", "Comment"]
                            .contains(&key.as_str())
                    }
                    QueryLanguage::Jsonata => {
                        ["ErrorEquals", "Next", "Output", "Assign", "Comment"]
                            .contains(&key.as_str())
                    }
                };
                if !ok {
                    self.schema(
                        cf.at(key),
                        format!("The field '{key}' is not supported in a Catch rule here"),
                    );
                }
            }
            let error_equals = self.error_equals(o, &rloc);
            let next_name = self.string(&cf, "Next");
            if next_name.is_none() {
                self.schema(
                    cf.at("Next"),
                    "The field 'Next' is required in a Catch rule",
                );
            }
            let next = self.target(cf.at("Next"), next_name, index);
            let result_path = self.result_path(&cf);
            let assign = self.assign(&cf, "Assign");
            let output = if f.language == QueryLanguage::Jsonata {
                self.template(&cf, "Output")
            } else {
                None
            };
            if let Some(next) = next {
                out.push(Catcher {
                    error_equals,
                    next,
                    result_path,
                    assign,
                    output,
                });
            }
        }
        out
    }

    fn choice(&mut self, f: &Fields<'_>, index: &HashMap<String, usize>) -> Option<Choice> {
        let Some(list) = f
            .obj
            .get("Choices")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            self.schema(
                f.at("Choices"),
                "The field 'Choices' is required and must be a non-empty array",
            );
            return None;
        };
        let mut rules = Vec::new();
        for (i, r) in list.iter().enumerate() {
            let rloc = format!("{}/{i}", f.at("Choices"));
            let Some(o) = r.as_object() else {
                self.schema(rloc, "a Choice rule must be a JSON object");
                continue;
            };
            let rf = Fields {
                obj: o,
                loc: rloc.clone(),
                language: f.language,
            };
            let next_name = self.string(&rf, "Next");
            if next_name.is_none() {
                self.schema(
                    rf.at("Next"),
                    "The field 'Next' is required in a top-level Choice rule",
                );
            }
            let next = self.target(rf.at("Next"), next_name, index);
            let assign = self.assign(&rf, "Assign");
            let (condition, output) = match f.language {
                QueryLanguage::JsonPath => (self.condition(o, &rloc, true), None),
                QueryLanguage::Jsonata => {
                    for key in o.keys() {
                        if !["Condition", "Next", "Assign", "Output", "Comment"]
                            .contains(&key.as_str())
                        {
                            self.schema(
                                rf.at(key),
                                format!(
                                    "The field '{key}' is not supported in a JSONata Choice rule"
                                ),
                            );
                        }
                    }
                    let cond = match o
                        .get("Condition")
                        .and_then(Value::as_str)
                        .and_then(jsonata_source)
                    {
                        Some(src) => Expr::parse(src)
                            .map_err(|e| {
                                self.schema(
                                    rf.at("Condition"),
                                    format!("the JSONata expression '{src}' is invalid: {e}"),
                                )
                            })
                            .ok()
                            .map(Condition::Jsonata),
                        None => {
                            self.schema(rf.at("Condition"), "The field 'Condition' is required and must be a JSONata expression {% … %}");
                            None
                        }
                    };
                    (cond, self.template(&rf, "Output"))
                }
            };
            if let (Some(condition), Some(next)) = (condition, next) {
                rules.push(ChoiceRule {
                    condition,
                    next,
                    assign,
                    output,
                });
            }
        }
        let default_name = self.string(f, "Default");
        let default = self.target(f.at("Default"), default_name, index);
        Some(Choice { rules, default })
    }

    fn condition(&mut self, o: &Map<String, Value>, loc: &str, top: bool) -> Option<Condition> {
        let at = |k: &str| format!("{loc}/{k}");
        if !top && o.contains_key("Next") {
            self.schema(at("Next"), "a nested Choice rule cannot have 'Next'");
        }
        for key in ["And", "Or"] {
            if let Some(v) = o.get(key) {
                let Some(list) = v.as_array().filter(|l| !l.is_empty()) else {
                    self.schema(
                        at(key),
                        format!("The field '{key}' must be a non-empty array of rules"),
                    );
                    return None;
                };
                let mut out = Vec::new();
                for (i, r) in list.iter().enumerate() {
                    let rloc = format!("{}/{i}", at(key));
                    match r.as_object() {
                        Some(ro) => out.push(self.condition(ro, &rloc, false)?),
                        None => {
                            self.schema(rloc, "a Choice rule must be a JSON object");
                            return None;
                        }
                    }
                }
                return Some(if key == "And" {
                    Condition::And(out)
                } else {
                    Condition::Or(out)
                });
            }
        }
        if let Some(v) = o.get("Not") {
            let Some(ro) = v.as_object() else {
                self.schema(at("Not"), "The field 'Not' must be a rule object");
                return None;
            };
            return Some(Condition::Not(Box::new(self.condition(
                ro,
                &at("Not"),
                false,
            )?)));
        }
        let mut found = None;
        for key in o.keys() {
            let (base, is_path) = match key.strip_suffix("Path") {
                Some(b) => (b, true),
                None => (key.as_str(), false),
            };
            if let Some((_, op)) = OPS.iter().find(|(n, _)| *n == base) {
                let type_test = matches!(
                    op,
                    Op::IsNull
                        | Op::IsPresent
                        | Op::IsNumeric
                        | Op::IsString
                        | Op::IsBoolean
                        | Op::IsTimestamp
                );
                if is_path && (type_test || *op == Op::StringMatches) {
                    self.schema(at(key), format!("'{key}' is not a comparison operator"));
                    return None;
                }
                if found.is_some() {
                    self.schema(
                        at(key),
                        "a Choice rule must have exactly one comparison operator",
                    );
                    return None;
                }
                found = Some((key.as_str(), *op, is_path, type_test));
            } else if !["Variable", "Next", "Assign", "Comment"].contains(&key.as_str()) {
                self.schema(
                    at(key),
                    format!("The field '{key}' is not supported in a Choice rule"),
                );
                return None;
            }
        }
        let Some((key, op, is_path, type_test)) = found else {
            self.schema(
                loc,
                "a Choice rule must have a comparison operator, And, Or or Not",
            );
            return None;
        };
        let variable = match o.get("Variable").and_then(Value::as_str) {
            Some(v) => match Query::parse(v) {
                Ok(q) => q,
                Err(e) => {
                    self.schema(at("Variable"), e);
                    return None;
                }
            },
            None => {
                self.schema(
                    at("Variable"),
                    "The field 'Variable' is required and must be a path",
                );
                return None;
            }
        };
        let value = &o[key];
        let operand = if is_path {
            match value.as_str().map(Query::parse) {
                Some(Ok(q)) => Operand::Path(q),
                Some(Err(e)) => {
                    self.schema(at(key), e);
                    return None;
                }
                None => {
                    self.schema(at(key), format!("The field '{key}' must be a path"));
                    return None;
                }
            }
        } else {
            let name = format!("{op:?}");
            let ok = if type_test {
                value.is_boolean()
            } else if name.starts_with("String") {
                value.is_string()
            } else if name.starts_with("Numeric") {
                value.is_number()
            } else if name.starts_with("Boolean") {
                value.is_boolean()
            } else {
                value
                    .as_str()
                    .and_then(crate::clock::parse_timestamp)
                    .is_some()
            };
            if !ok {
                self.schema(
                    at(key),
                    format!("The value of '{key}' has the wrong type: {value}"),
                );
                return None;
            }
            Operand::Literal(value.clone())
        };
        Some(Condition::Test {
            variable,
            op,
            operand,
        })
    }

    fn wait(&mut self, f: &Fields<'_>) -> Option<Wait> {
        let keys: Vec<&str> = ["Seconds", "Timestamp", "SecondsPath", "TimestampPath"]
            .into_iter()
            .filter(|k| f.obj.contains_key(*k))
            .collect();
        if keys.len() != 1 {
            self.schema(f.loc.clone(), "A Wait state must have exactly one of 'Seconds', 'Timestamp', 'SecondsPath', 'TimestampPath'");
            return None;
        }
        if keys[0].starts_with("Seconds") {
            self.dynamic(
                f,
                "Seconds",
                |v| v.as_u64().is_some(),
                "a non-negative integer",
            )
            .map(Wait::Seconds)
        } else {
            let valid = |v: &Value| v.as_str().and_then(crate::clock::parse_timestamp).is_some();
            self.dynamic(f, "Timestamp", valid, "an RFC 3339 timestamp")
                .map(Wait::Timestamp)
        }
    }

    fn fail_state(&mut self, f: &Fields<'_>) -> Option<Fail> {
        let string = |v: &Value| v.is_string();
        Some(Fail {
            error: self.dynamic(f, "Error", string, "a string"),
            cause: self.dynamic(f, "Cause", string, "a string"),
        })
    }

    fn map(&mut self, f: &Fields<'_>) -> Option<MapState> {
        let (key, processor) = match (f.obj.get("ItemProcessor"), f.obj.get("Iterator")) {
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            (Some(_), Some(_)) => {
                self.schema(
                    f.at("Iterator"),
                    "The fields 'ItemProcessor' and 'Iterator' cannot both be set",
                );
                return None;
            }
            (None, None) => {
                self.schema(
                    f.at("ItemProcessor"),
                    "The field 'ItemProcessor' is required",
                );
                return None;
            }
        };
        let Some(pobj) = processor.as_object() else {
            self.schema(f.at(key), format!("The field '{key}' must be an object"));
            return None;
        };
        let ploc = f.at(key);
        for k in pobj.keys() {
            if !["StartAt", "States", "ProcessorConfig", "Comment"].contains(&k.as_str()) {
                self.schema(
                    format!("{ploc}/{k}"),
                    format!("The field '{k}' is not supported in {key}"),
                );
            }
        }
        if let Some(mode) = pobj.get("ProcessorConfig").and_then(|c| c.get("Mode")) {
            if mode != "INLINE" {
                self.schema(
                    format!("{ploc}/ProcessorConfig/Mode"),
                    format!("only the INLINE Map mode is supported, got {mode}"),
                );
            }
        }
        let processor = self.branch(pobj, &ploc, f.language)?;
        let items = match f.language {
            QueryLanguage::JsonPath => match self.selector(f, "ItemsPath") {
                Selector::Path(q) => Some(Template::Path(q)),
                _ => None,
            },
            QueryLanguage::Jsonata => self.template(f, "Items"),
        };
        let item_selector =
            if f.obj.contains_key("ItemSelector") && f.obj.contains_key("Parameters") {
                self.schema(
                    f.at("Parameters"),
                    "The fields 'ItemSelector' and 'Parameters' cannot both be set",
                );
                None
            } else {
                self.template(f, "ItemSelector")
                    .or_else(|| self.template(f, "Parameters"))
            };
        let uint = |v: &Value| v.as_u64().is_some();
        let pct = |v: &Value| v.as_f64().is_some_and(|p| (0.0..=100.0).contains(&p));
        Some(MapState {
            processor,
            items,
            item_selector,
            max_concurrency: self.dynamic(f, "MaxConcurrency", uint, "a non-negative integer"),
            tolerated_failure_percentage: self.dynamic(
                f,
                "ToleratedFailurePercentage",
                pct,
                "a number from 0 to 100",
            ),
            tolerated_failure_count: self.dynamic(
                f,
                "ToleratedFailureCount",
                uint,
                "a non-negative integer",
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refused(def: Value) -> Vec<Diagnostic> {
        StateMachine::from_value(&def)
            .expect_err("the definition should be refused")
            .diagnostics
    }

    fn has(diags: &[Diagnostic], code: DiagnosticCode, location: &str) -> bool {
        diags
            .iter()
            .any(|d| d.code == code && d.location == location)
    }

    #[test]
    fn every_state_type_parses() {
        let m = StateMachine::from_value(&json!({
            "Comment": "all", "StartAt": "P", "TimeoutSeconds": 60,
            "States": {
                "P": {"Type": "Pass", "Result": {"a": 1}, "ResultPath": "$.r", "Next": "T"},
                "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                      "Parameters": {"x.$": "$.r.a"}, "ResultSelector": {"p.$": "$.Payload"},
                      "TimeoutSeconds": 5, "HeartbeatSeconds": 2,
                      "Retry": [{"ErrorEquals": ["States.Timeout"], "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 1.5, "MaxDelaySeconds": 10, "JitterStrategy": "FULL"},
                                {"ErrorEquals": ["States.ALL"]}],
                      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err", "Next": "F"}],
                      "Next": "C"},
                "C": {"Type": "Choice", "Choices": [
                        {"And": [{"Variable": "$.x", "NumericGreaterThanPath": "$.y"}, {"Not": {"Variable": "$.s", "StringMatches": "a*"}}], "Next": "W"},
                        {"Variable": "$.t", "TimestampLessThan": "2020-01-01T00:00:00Z", "Next": "Par"},
                        {"Or": [{"Variable": "$.n", "IsNull": true}, {"Variable": "$.b", "BooleanEquals": true}], "Next": "M"}],
                      "Default": "S"},
                "W": {"Type": "Wait", "SecondsPath": "$.wait", "Next": "S"},
                "Par": {"Type": "Parallel", "Branches": [
                        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                        {"StartAt": "B", "States": {"B": {"Type": "Succeed"}}}], "End": true},
                "M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ItemSelector": {"v.$": "$$.Map.Item.Value"},
                      "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}},
                      "End": true},
                "S": {"Type": "Succeed"},
                "F": {"Type": "Fail", "ErrorPath": "$.err.Error", "Cause": "boom"}
            }
        }))
        .unwrap();
        assert_eq!(m.root.states.len(), 8);
        let state = |name: &str| &m.root.states[m.root.index_of(name).unwrap()];
        assert_eq!(m.root.start, m.root.index_of("P").unwrap());
        assert_eq!(state("P").next, m.root.index_of("T"));
        let Kind::Task(t) = &state("T").kind else {
            panic!()
        };
        assert_eq!(t.resource, "arn:aws:lambda:us-east-1:1:function:f");
        assert_eq!(state("T").retry[0].max_attempts, 4);
        assert!(state("T").retry[0].full_jitter);
        assert_eq!(state("T").retry[1].max_attempts, 3);
        assert_eq!(m.timeout_seconds, Some(60));
    }

    #[test]
    fn jsonata_states_parse() {
        let m = StateMachine::from_value(&json!({
            "QueryLanguage": "JSONata", "StartAt": "T",
            "States": {
                "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Arguments": {"FunctionName": "f", "Payload": "{% $states.input %}"},
                      "Output": "{% $states.result.Payload %}", "Assign": {"n": "{% $states.result.n %}"},
                      "TimeoutSeconds": "{% $n %}", "Next": "C"},
                "C": {"Type": "Choice", "Choices": [{"Condition": "{% $n > 1 %}", "Next": "M", "Output": {"x": 1}}], "Default": "F"},
                "M": {"Type": "Map", "Items": "{% [1,2,3] %}", "MaxConcurrency": 0,
                      "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "Output": "{% $states.input * 2 %}", "End": true}}}, "End": true},
                "F": {"Type": "Fail", "Error": "{% 'E' & $n %}", "Cause": "c"}
            }
        }))
        .unwrap();
        assert_eq!(m.query_language, QueryLanguage::Jsonata);
        assert_eq!(m.root.states[2].language, QueryLanguage::Jsonata);
    }

    #[test]
    fn missing_transition_targets() {
        let d = refused(json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}));
        assert!(
            has(
                &d,
                DiagnosticCode::MissingTransitionTarget,
                "/States/A/Next"
            ),
            "{d:?}"
        );
        assert_eq!(d[0].message, "Missing 'Next' target: Nope");
        let d = refused(json!({"StartAt": "Z", "States": {"A": {"Type": "Succeed"}}}));
        assert!(
            has(&d, DiagnosticCode::MissingTransitionTarget, "/StartAt"),
            "{d:?}"
        );
        let d = refused(
            json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": true, "Next": "X"}], "Default": "Y"}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::MissingTransitionTarget,
                "/States/C/Choices/0/Next"
            ),
            "{d:?}"
        );
        assert!(
            has(
                &d,
                DiagnosticCode::MissingTransitionTarget,
                "/States/C/Default"
            ),
            "{d:?}"
        );
        let d = refused(
            json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Q"}}}]}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::MissingTransitionTarget,
                "/States/P/Branches/0/States/A/Next"
            ),
            "{d:?}"
        );
    }

    #[test]
    fn unreachable_states() {
        let d = refused(
            json!({"StartAt": "A", "States": {"A": {"Type": "Succeed"}, "B": {"Type": "Succeed"}}}),
        );
        assert!(
            has(&d, DiagnosticCode::UnreachableState, "/States/B"),
            "{d:?}"
        );
        // a catch target is reachable
        StateMachine::from_value(&json!({"StartAt": "A", "States": {
            "A": {"Type": "Task", "Resource": "arn:x", "End": true, "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}]},
            "B": {"Type": "Succeed"}}})).unwrap();
    }

    #[test]
    fn fields_not_allowed() {
        let d = refused(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Resource": "arn:x", "End": true}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::SchemaValidationFailed,
                "/States/A/Resource"
            ),
            "{d:?}"
        );
        let d = refused(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {}, "End": true}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::SchemaValidationFailed,
                "/States/A/Parameters"
            ),
            "{d:?}"
        );
        assert!(d[0].message.contains("JSONata"));
        let d = refused(
            json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Output": {}, "End": true}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::SchemaValidationFailed,
                "/States/A/Output"
            ),
            "{d:?}"
        );
        let d = refused(
            json!({"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": true}}}),
        );
        assert!(
            has(
                &d,
                DiagnosticCode::SchemaValidationFailed,
                "/States/A/QueryLanguage"
            ),
            "{d:?}"
        );
        let d = refused(
            json!({"StartAt": "A", "Bogus": 1, "States": {"A": {"Type": "Nope", "End": true}}}),
        );
        assert!(
            has(&d, DiagnosticCode::SchemaValidationFailed, "/Bogus"),
            "{d:?}"
        );
        assert!(
            has(&d, DiagnosticCode::SchemaValidationFailed, "/States/A/Type"),
            "{d:?}"
        );
    }

    #[test]
    fn bad_values() {
        let cases = [
            (json!({"Type": "Pass"}), "/States/A"),
            (
                json!({"Type": "Pass", "Next": "A", "End": true}),
                "/States/A/End",
            ),
            (json!({"Type": "Task", "End": true}), "/States/A/Resource"),
            (
                json!({"Type": "Task", "Resource": "arn:x", "TimeoutSeconds": 5, "TimeoutSecondsPath": "$.t", "End": true}),
                "/States/A/TimeoutSecondsPath",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "TimeoutSeconds": 5, "HeartbeatSeconds": 5, "End": true}),
                "/States/A/HeartbeatSeconds",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "End": true, "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}),
                "/States/A/Retry/0/ErrorEquals",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "End": true, "Retry": [{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}]}),
                "/States/A/Retry/0/ErrorEquals",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "End": true, "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5}]}),
                "/States/A/Retry/0/BackoffRate",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "End": true, "Retry": [{"ErrorEquals": ["X"], "JitterStrategy": "SOME"}]}),
                "/States/A/Retry/0/JitterStrategy",
            ),
            (
                json!({"Type": "Task", "Resource": "arn:x", "End": true, "Retry": [{"ErrorEquals": []}]}),
                "/States/A/Retry/0/ErrorEquals",
            ),
            (
                json!({"Type": "Pass", "End": true, "ResultPath": "$.a[*]"}),
                "/States/A/ResultPath",
            ),
            (
                json!({"Type": "Pass", "End": true, "InputPath": "a.b"}),
                "/States/A/InputPath",
            ),
            (
                json!({"Type": "Pass", "End": true, "Parameters": {"x.$": "States.Nope()"}}),
                "/States/A/Parameters",
            ),
            (json!({"Type": "Wait", "End": true}), "/States/A"),
            (
                json!({"Type": "Wait", "Seconds": 1, "SecondsPath": "$.s", "End": true}),
                "/States/A",
            ),
            (
                json!({"Type": "Wait", "Timestamp": "yesterday", "End": true}),
                "/States/A/Timestamp",
            ),
            (
                json!({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
                "/States/A/ErrorPath",
            ),
            (
                json!({"Type": "Choice", "Choices": []}),
                "/States/A/Choices",
            ),
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": 1, "Next": "A"}]}),
                "/States/A/Choices/0/StringEquals",
            ),
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1, "Next": "A"}]}),
                "/States/A/Choices/0/StringEquals",
            ),
            (
                json!({"Type": "Choice", "Choices": [{"And": [{"Variable": "$.a", "IsNull": true, "Next": "A"}], "Next": "A"}]}),
                "/States/A/Choices/0/And/0/Next",
            ),
            (
                json!({"Type": "Choice", "Choices": [{"Variable": "$.a", "Next": "A"}]}),
                "/States/A/Choices/0",
            ),
            (
                json!({"Type": "Map", "End": true}),
                "/States/A/ItemProcessor",
            ),
            (
                json!({"Type": "Map", "End": true, "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED"}, "StartAt": "I", "States": {"I": {"Type": "Succeed"}}}}),
                "/States/A/ItemProcessor/ProcessorConfig/Mode",
            ),
            (
                json!({"Type": "Map", "End": true, "MaxConcurrency": -1, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}}),
                "/States/A/MaxConcurrency",
            ),
            (
                json!({"Type": "Map", "End": true, "ItemReader": {}, "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Succeed"}}}}),
                "/States/A/ItemReader",
            ),
            (
                json!({"Type": "Parallel", "End": true}),
                "/States/A/Branches",
            ),
        ];
        for (state, location) in cases {
            let d = refused(json!({"StartAt": "A", "States": {"A": state}}));
            assert!(
                d.iter().any(|d| d.location == location),
                "{state}: want {location}, got {d:?}"
            );
        }
        assert!(StateMachine::validate(
            r#"{"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}"#
        )
        .is_empty());
        let e = StateMachine::parse("{nope").unwrap_err();
        assert_eq!(
            e.diagnostics[0].code,
            DiagnosticCode::InvalidJsonDescription
        );
        let e = StateMachine::parse(
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "Invalid State Machine Definition: 'MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /States/A/Next'");
    }
}
