//! Data flow: JSONPath as ASL uses it, and payload templates.
//!
//! - [`Query`]: a path rooted at the state input (`$`), the context object (`$$`) or a workflow
//!   variable (`$name`). Reference paths (`$.a.b[0]['c d']`) are read by a small walker and can be
//!   written to (`ResultPath`); any other JSONPath (`[*]`, `..`, filters `[?(@.x > 1)]`, slices,
//!   unions) goes to `serde_json_path` (RFC 9535) and yields an array of the matches, as AWS does.
//! - [`Template`]: a compiled payload template: `Parameters`, `ResultSelector`, `ItemSelector`
//!   and `Assign` in JSONPath (keys ending in `.$` take a path or an intrinsic function), and
//!   `Arguments`, `Output`, `Assign` and every other field in JSONata (strings `{% expr %}`
//!   anywhere in the value are expressions, evaluated with `$states` and the variables bound).
//! - [`Scope`]: what a template or path is evaluated against.

use serde_json::{Map, Value};

use crate::error::{names, StatesError};
use crate::intrinsics::Call;
use crate::jsonata::Expr;

/// Where a [`Query`] starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `$`: the state's (effective) input.
    Input,
    /// `$$`: the context object.
    Context,
    /// `$name`: a workflow variable.
    Variable(String),
}

#[derive(Debug, Clone)]
enum Steps {
    Reference(Vec<Step>),
    Full(serde_json_path::JsonPath),
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(i64),
}

/// A parsed JSONPath.
#[derive(Debug, Clone)]
pub struct Query {
    source: String,
    root: Root,
    steps: Steps,
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Why a path selected nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoMatch;

impl Query {
    /// Parse a path; the error says what is wrong.
    pub fn parse(source: &str) -> Result<Query, String> {
        let s = source.trim();
        let (root, rest) = if let Some(rest) = s.strip_prefix("$$") {
            (Root::Context, rest)
        } else if let Some(rest) = s.strip_prefix('$') {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            if end == 0 {
                (Root::Input, rest)
            } else {
                (Root::Variable(rest[..end].to_string()), &rest[end..])
            }
        } else {
            return Err(format!("the JSONPath '{source}' must start with '$'"));
        };
        let steps = match parse_reference(rest) {
            Some(steps) => Steps::Reference(steps),
            None => Steps::Full(
                serde_json_path::JsonPath::parse(&format!("${rest}"))
                    .map_err(|e| format!("the JSONPath '{source}' is invalid: {e}"))?,
            ),
        };
        Ok(Query {
            source: source.to_string(),
            root,
            steps,
        })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where the path starts.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Whether this is a reference path (names and indexes only: one value, writable).
    pub fn is_reference(&self) -> bool {
        matches!(self.steps, Steps::Reference(_))
    }

    /// The value the path selects: the one value of a reference path, or an array of every
    /// match of any other path.
    pub fn select(&self, scope: &Scope<'_>) -> Result<Value, NoMatch> {
        let start = match &self.root {
            Root::Input => scope.input,
            Root::Context => scope.context,
            Root::Variable(name) => scope.variables.get(name).ok_or(NoMatch)?,
        };
        self.select_from(start)
    }

    /// The value the path selects from `value` (ignoring the root kind).
    pub fn select_from(&self, value: &Value) -> Result<Value, NoMatch> {
        match &self.steps {
            Steps::Reference(steps) => walk(value, steps).cloned().ok_or(NoMatch),
            Steps::Full(path) => Ok(Value::Array(
                path.query(value).all().into_iter().cloned().collect(),
            )),
        }
    }

    /// Write `value` at this (reference) path inside `target`, creating objects on the way;
    /// `$` replaces the target. Fails when a step crosses a value that is not an object.
    pub fn write(&self, target: &mut Value, value: Value) -> Result<(), StatesError> {
        let Steps::Reference(steps) = &self.steps else {
            return Err(StatesError::new(
                names::RESULT_PATH_MATCH_FAILURE,
                format!("the path '{}' is not a reference path", self.source),
            ));
        };
        let mismatch = |target: &Value| {
            StatesError::new(
                names::RESULT_PATH_MATCH_FAILURE,
                format!(
                    "Unable to apply ResultPath \"{}\" to input \"{}\"",
                    self.source, target
                ),
            )
        };
        let original = target.clone();
        let mut at = target;
        for step in steps {
            at = match step {
                Step::Key(k) => {
                    if at.is_null() {
                        *at = Value::Object(Map::new());
                    }
                    let Value::Object(o) = at else {
                        return Err(mismatch(&original));
                    };
                    o.entry(k.clone()).or_insert(Value::Null)
                }
                Step::Index(i) => {
                    let Value::Array(a) = at else {
                        return Err(mismatch(&original));
                    };
                    let len = a.len() as i64;
                    let i = if *i < 0 { len + i } else { *i };
                    if !(0..len).contains(&i) {
                        return Err(mismatch(&original));
                    }
                    &mut a[i as usize]
                }
            };
        }
        *at = value;
        Ok(())
    }
}

/// Parse `.a['b'][0]…` into steps, or `None` when it is not a reference path.
fn parse_reference(rest: &str) -> Option<Vec<Step>> {
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && !matches!(chars[j], '.' | '[') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                if name.is_empty() || name == "*" || name.contains(['(', ')', '?', '@', ' ']) {
                    return None;
                }
                steps.push(Step::Key(name));
                i = j;
            }
            '[' => {
                let close = chars[i..].iter().position(|&c| c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Ok(n) = inner.parse::<i64>() {
                    steps.push(Step::Index(n));
                } else if inner.len() >= 2
                    && ((inner.starts_with('\'') && inner.ends_with('\''))
                        || (inner.starts_with('"') && inner.ends_with('"')))
                    && !inner[1..inner.len() - 1].contains(['\'', '"', ','])
                {
                    steps.push(Step::Key(inner[1..inner.len() - 1].to_string()));
                } else {
                    return None;
                }
                i = close + 1;
            }
            _ => return None,
        }
    }
    Some(steps)
}

fn walk<'v>(mut value: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    for step in steps {
        value = match (step, value) {
            (Step::Key(k), Value::Object(o)) => o.get(k)?,
            (Step::Index(i), Value::Array(a)) => {
                let len = a.len() as i64;
                let i = if *i < 0 { len + i } else { *i };
                a.get(usize::try_from(i).ok()?)?
            }
            _ => return None,
        };
    }
    Some(value)
}

/// What paths, intrinsics and JSONata expressions are evaluated against.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// `$` in JSONPath.
    pub input: &'a Value,
    /// `$$` in JSONPath.
    pub context: &'a Value,
    /// The workflow variables visible to the state.
    pub variables: &'a Map<String, Value>,
    /// `$states` in JSONata (`input`, `context`, and `result` / `errorOutput` when known).
    pub states: Option<&'a Value>,
}

impl<'a> Scope<'a> {
    /// A JSONPath scope.
    pub fn jsonpath(
        input: &'a Value,
        context: &'a Value,
        variables: &'a Map<String, Value>,
    ) -> Self {
        Scope {
            input,
            context,
            variables,
            states: None,
        }
    }
}

/// A compiled payload template.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    /// A value with nothing to evaluate.
    Literal(Value),
    /// A path (`"x.$": "$.a"`).
    Path(Query),
    /// An intrinsic function (`"x.$": "States.Format(…)"`).
    Intrinsic(Call),
    /// A JSONata expression (`"{% … %}"`).
    Jsonata(Expr),
    /// An object with at least one dynamic member.
    Object(Vec<(String, Template)>),
    /// An array with at least one dynamic member.
    Array(Vec<Template>),
}

impl Template {
    /// Compile a JSONPath payload template: members whose key ends in `.$` hold a path or an
    /// intrinsic function. The error names the offending key.
    pub fn jsonpath(value: &Value) -> Result<Template, String> {
        Ok(match value {
            Value::Object(o) => {
                let mut members = Vec::with_capacity(o.len());
                for (k, v) in o {
                    if let Some(name) = k.strip_suffix(".$") {
                        let Value::String(expr) = v else {
                            return Err(format!("the value of the field '{k}' must be a string"));
                        };
                        members.push((
                            name.to_string(),
                            Self::dynamic(expr).map_err(|e| format!("the field '{k}': {e}"))?,
                        ));
                    } else {
                        members.push((k.clone(), Self::jsonpath(v)?));
                    }
                }
                Self::object(members, value)
            }
            Value::Array(a) => {
                let items = a
                    .iter()
                    .map(Self::jsonpath)
                    .collect::<Result<Vec<_>, _>>()?;
                Self::array(items, value)
            }
            other => Template::Literal(other.clone()),
        })
    }

    /// A path or intrinsic function (the value of a `.$` key, or a `…Path` field).
    pub fn dynamic(expr: &str) -> Result<Template, String> {
        if expr.trim_start().starts_with("States.") {
            Call::parse(expr).map(Template::Intrinsic)
        } else {
            Query::parse(expr).map(Template::Path)
        }
    }

    /// Compile a JSONata template: every string `{% … %}` in the value is an expression.
    pub fn jsonata(value: &Value) -> Result<Template, String> {
        Ok(match value {
            Value::String(s) => match jsonata_source(s) {
                Some(src) => Template::Jsonata(
                    Expr::parse(src)
                        .map_err(|e| format!("the JSONata expression '{src}' is invalid: {e}"))?,
                ),
                None => Template::Literal(value.clone()),
            },
            Value::Object(o) => {
                let mut members = Vec::with_capacity(o.len());
                for (k, v) in o {
                    members.push((
                        k.clone(),
                        Self::jsonata(v).map_err(|e| format!("the field '{k}': {e}"))?,
                    ));
                }
                Self::object(members, value)
            }
            Value::Array(a) => {
                let items = a.iter().map(Self::jsonata).collect::<Result<Vec<_>, _>>()?;
                Self::array(items, value)
            }
            other => Template::Literal(other.clone()),
        })
    }

    fn object(members: Vec<(String, Template)>, original: &Value) -> Template {
        if members
            .iter()
            .all(|(_, t)| matches!(t, Template::Literal(_)))
            && !original
                .as_object()
                .is_some_and(|o| o.keys().any(|k| k.ends_with(".$")))
        {
            Template::Literal(original.clone())
        } else {
            Template::Object(members)
        }
    }

    fn array(items: Vec<Template>, original: &Value) -> Template {
        if items.iter().all(|t| matches!(t, Template::Literal(_))) {
            Template::Literal(original.clone())
        } else {
            Template::Array(items)
        }
    }

    /// Whether the template is a literal.
    pub fn literal(&self) -> Option<&Value> {
        match self {
            Template::Literal(v) => Some(v),
            _ => None,
        }
    }

    /// Evaluate; `field` names the template in error messages (`Parameters`, `Output`, …).
    pub fn eval(&self, scope: &Scope<'_>, field: &str) -> Result<Value, StatesError> {
        match self {
            Template::Literal(v) => Ok(v.clone()),
            Template::Path(q) => q.select(scope).map_err(|_| {
                StatesError::runtime(format!(
                    "The JSONPath '{}' specified for the field '{field}' could not be found in the input '{}'",
                    q.source(),
                    scope_text(q, scope)
                ))
            }),
            Template::Intrinsic(call) => call.eval(scope),
            Template::Jsonata(expr) => eval_jsonata(expr, scope, field),
            Template::Object(members) => {
                let mut out = Map::with_capacity(members.len());
                for (k, t) in members {
                    let key_field = match t {
                        Template::Path(_) | Template::Intrinsic(_) => format!("{k}.$"),
                        _ => k.clone(),
                    };
                    out.insert(k.clone(), t.eval(scope, &key_field)?);
                }
                Ok(Value::Object(out))
            }
            Template::Array(items) => items
                .iter()
                .map(|t| t.eval(scope, field))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
        }
    }
}

fn scope_text(q: &Query, scope: &Scope<'_>) -> String {
    match q.root() {
        Root::Input => scope.input.to_string(),
        Root::Context => scope.context.to_string(),
        Root::Variable(name) => scope
            .variables
            .get(name)
            .map_or_else(|| format!("(no variable ${name})"), Value::to_string),
    }
}

/// The expression inside `{% … %}`, if the string is one.
pub fn jsonata_source(s: &str) -> Option<&str> {
    let t = s.trim();
    t.strip_prefix("{%")?.strip_suffix("%}").map(str::trim)
}

/// Evaluate a JSONata expression with `$states` and the variables bound; undefined is an error.
pub fn eval_jsonata(expr: &Expr, scope: &Scope<'_>, field: &str) -> Result<Value, StatesError> {
    let mut bindings: Vec<(&str, &Value)> = Vec::with_capacity(scope.variables.len() + 1);
    let fallback;
    let states = match scope.states {
        Some(s) => s,
        None => {
            fallback = serde_json::json!({"input": scope.input, "context": scope.context});
            &fallback
        }
    };
    bindings.push(("states", states));
    for (k, v) in scope.variables {
        bindings.push((k.as_str(), v));
    }
    match expr.evaluate(scope.input, &bindings) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(StatesError::query(format!(
            "The JSONata expression '{}' specified for the field '{field}' returned nothing (undefined).",
            expr.source()
        ))),
        Err(e) => Err(StatesError::query(format!(
            "An error occurred while evaluating the JSONata expression '{}' specified for the field '{field}': {e}",
            expr.source()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope_values() -> (Value, Value, Map<String, Value>) {
        (
            json!({"a": {"b": [10, 20, {"c d": "x"}]}, "items": [{"p": 1}, {"p": 5}]}),
            json!({"Execution": {"Id": "arn:exec"}, "Map": {"Item": {"Index": 2}}}),
            Map::from_iter([("v".to_string(), json!({"k": [7]}))]),
        )
    }

    #[test]
    fn reference_and_full_paths() {
        let (input, ctx, vars) = scope_values();
        let s = Scope::jsonpath(&input, &ctx, &vars);
        let q = |p: &str| Query::parse(p).unwrap().select(&s);
        assert_eq!(q("$.a.b[1]"), Ok(json!(20)));
        assert_eq!(q("$.a.b[-1]['c d']"), Ok(json!("x")));
        assert_eq!(q("$['a'][\"b\"][0]"), Ok(json!(10)));
        assert_eq!(q("$"), Ok(input.clone()));
        assert_eq!(q("$$.Execution.Id"), Ok(json!("arn:exec")));
        assert_eq!(q("$v.k[0]"), Ok(json!(7)));
        assert_eq!(q("$.nope"), Err(NoMatch));
        assert_eq!(q("$nope"), Err(NoMatch));
        assert_eq!(q("$.items[*].p"), Ok(json!([1, 5])));
        assert_eq!(q("$..p"), Ok(json!([1, 5])));
        assert_eq!(q("$.items[?(@.p > 2)]"), Ok(json!([{"p": 5}])));
        assert!(Query::parse("$.items[?(@.p >").is_err());
        assert!(Query::parse("a.b").is_err());
        assert!(Query::parse("$.a.b[0]").unwrap().is_reference());
        assert!(!Query::parse("$.a[*]").unwrap().is_reference());
    }

    #[test]
    fn result_path_writes() {
        let mut target = json!({"a": 1});
        Query::parse("$.x.y")
            .unwrap()
            .write(&mut target, json!(2))
            .unwrap();
        assert_eq!(target, json!({"a": 1, "x": {"y": 2}}));
        Query::parse("$")
            .unwrap()
            .write(&mut target, json!("all"))
            .unwrap();
        assert_eq!(target, json!("all"));
        let mut target = json!({"a": 1});
        let e = Query::parse("$.a.b")
            .unwrap()
            .write(&mut target, json!(2))
            .unwrap_err();
        assert_eq!(e.error, "States.ResultPathMatchFailure");
    }

    #[test]
    fn templates() {
        let (input, ctx, vars) = scope_values();
        let s = Scope::jsonpath(&input, &ctx, &vars);
        let t = Template::jsonpath(&json!({
            "lit": {"deep": [1, 2]},
            "path.$": "$.a.b[0]",
            "ctx.$": "$$.Map.Item.Index",
            "var.$": "$v.k",
            "fn.$": "States.Format('n={}', $.a.b[1])",
            "nested": {"x.$": "$.items[*].p"},
            "arr": [{"y.$": "$.a.b[0]"}]
        }))
        .unwrap();
        assert_eq!(
            t.eval(&s, "Parameters").unwrap(),
            json!({"lit": {"deep": [1, 2]}, "path": 10, "ctx": 2, "var": [7], "fn": "n=20",
                   "nested": {"x": [1, 5]}, "arr": [{"y": 10}]})
        );
        let e = Template::jsonpath(&json!({"m.$": "$.missing"}))
            .unwrap()
            .eval(&s, "Parameters")
            .unwrap_err();
        assert_eq!(e.error, "States.Runtime");
        assert!(e.cause.contains("The JSONPath '$.missing' specified for the field 'm.$' could not be found in the input"), "{}", e.cause);
        assert!(Template::jsonpath(&json!({"m.$": 5})).is_err());
        assert!(Template::jsonpath(&json!({"m.$": "States.Nope()"})).is_err());
        assert!(matches!(
            Template::jsonpath(&json!({"a": [1]})).unwrap(),
            Template::Literal(_)
        ));
    }

    #[test]
    fn jsonata_templates() {
        let (input, ctx, vars) = scope_values();
        let states = json!({"input": input, "context": ctx, "result": {"r": 1}});
        let s = Scope {
            states: Some(&states),
            ..Scope::jsonpath(&input, &ctx, &vars)
        };
        let t = Template::jsonata(&json!({
            "sum": "{% $sum($states.input.items.p) %}",
            "r": "{% $states.result.r %}",
            "v": "{% $v.k[0] %}",
            "plain": "no {% here",
            "list": ["{% 1 + 1 %}", 3]
        }))
        .unwrap();
        assert_eq!(
            t.eval(&s, "Output").unwrap(),
            json!({"sum": 6, "r": 1, "v": 7, "plain": "no {% here", "list": [2, 3]})
        );
        let e = Template::jsonata(&json!("{% $states.input.none %}"))
            .unwrap()
            .eval(&s, "Output")
            .unwrap_err();
        assert_eq!(e.error, "States.QueryEvaluationError");
        assert!(Template::jsonata(&json!("{% 1 + %}")).is_err());
    }
}
