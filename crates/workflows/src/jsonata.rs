//! JSONata: the expression language of `"QueryLanguage": "JSONata"` states, written here over
//! `serde_json` values (the `jsonata-rs` crate is incomplete and works on its own value type).
//!
//! Supported: literals (numbers, strings, `true`/`false`/`null`), field names (plain and
//! back-quoted), paths with `.` (mapping over arrays, flattening as JSONata does), `*` and `**`,
//! predicates and indexes `[…]` (negative from the end), order-by `^(<a, >b)`, array
//! constructors with ranges (`[1..5]`), object constructors, arithmetic (`+ - * / %`, unary
//! minus), string concatenation `&`, comparisons (`= != < <= > >=`), `in`, `and`/`or`,
//! conditionals `a ? b : c`, the coalescing `??` and `?:` operators, blocks `( a; b )`,
//! variable binding `:=`, variables (`$x`, `$` the context, `$$` the root), lambdas
//! `function($x) { … }`, the chain operator `~>`, regular expressions (`/re/i`, in Rust `regex`
//! syntax, for `$match`, `$contains`, `$split` and `$replace`, where `$1` refers to a group),
//! and these functions:
//!
//! - strings: `$string $length $substring $substringBefore $substringAfter $uppercase
//!   $lowercase $trim $pad $contains $split $join $replace $match $base64encode $base64decode
//!   $encodeUrlComponent $decodeUrlComponent`
//! - numbers: `$number $abs $floor $ceil $round $power $sqrt $random $sum $max $min $average
//!   $formatBase`
//! - booleans: `$boolean $not $exists`
//! - arrays: `$count $append $reverse $sort $distinct $zip $shuffle $single`
//! - objects: `$keys $lookup $merge $spread $each $sift $type $error $assert`
//! - higher order: `$map $filter $reduce`
//! - dates: `$now $millis $toMillis $fromMillis` (ISO 8601 / RFC 3339, without picture strings)
//! - AWS's additions for Step Functions: `$partition $range $hash $random $uuid $parse`
//!
//! In a state, `$states` is bound to `{input, context, result, errorOutput}` (as far as known at
//! that point), each workflow variable to `$name`, and `$` to the state input.
//!
//! Not supported (an expression using them is refused when the definition is validated, or fails
//! with `States.QueryEvaluationError` when run): the group-by `{ }` path operator, `@` and `#`
//! bindings, the transform operator `| … |`, `$formatNumber`/`$formatInteger`/`$parseInteger`,
//! picture strings of the date functions, partial application `?`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Number, Value};

/// A JSONata expression that failed to parse or to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct JsonataError {
    /// JSONata's error code (`S0201`, `T2001`, …) or `D0000` for an unsupported construct.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

fn err<T>(code: &'static str, message: impl Into<String>) -> Result<T, JsonataError> {
    Err(JsonataError {
        code,
        message: message.into(),
    })
}

type R<T> = Result<T, JsonataError>;

/// A parsed JSONata expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    source: String,
    root: Node,
}

impl Expr {
    /// Parse an expression (the text between `{%` and `%}`).
    pub fn parse(source: &str) -> R<Expr> {
        let tokens = lex(source)?;
        let mut parser = Parser { tokens, pos: 0 };
        let root = parser.expr(0)?;
        if parser.pos < parser.tokens.len() {
            return err(
                "S0201",
                format!("unexpected token {:?}", parser.tokens[parser.pos]),
            );
        }
        Ok(Expr {
            source: source.to_string(),
            root,
        })
    }

    /// The expression's text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate against `input` (bound to `$`) with the given variables (names without `$`).
    /// `Ok(None)` is JSONata's "undefined".
    pub fn evaluate(&self, input: &Value, variables: &[(&str, &Value)]) -> R<Option<Value>> {
        let env = Env::root();
        for (name, value) in variables {
            env.bind(name, V::J((*value).clone()));
        }
        let ctx = Ctx { root: input };
        let v = ctx.eval(&self.root, &V::J(input.clone()), &env)?;
        Ok(match v {
            V::U => None,
            V::J(j) => Some(j),
            V::F(_) => None,
        })
    }
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Name(String),
    Var(String),
    Op(&'static str),
    Regex(String),
}

/// Whether a `/` after this token starts a regular expression (rather than dividing).
fn regex_allowed(previous: Option<&Tok>) -> bool {
    match previous {
        None => true,
        Some(Tok::Op(op)) => !matches!(*op, ")" | "]" | "}"),
        Some(Tok::Name(n)) => matches!(n.as_str(), "and" | "or" | "in"),
        _ => false,
    }
}

const OPS: &[&str] = &[
    "..", ":=", "!=", "<=", ">=", "~>", "**", "??", "?:", ".", "[", "]", "{", "}", "(", ")", ",",
    ":", ";", "?", "+", "-", "*", "/", "%", "&", "=", "<", ">", "^", "|", "@", "#",
];

fn lex(src: &str) -> R<Vec<Tok>> {
    let chars: Vec<char> = src.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut j = i + 2;
            while j + 1 < chars.len() && !(chars[j] == '*' && chars[j + 1] == '/') {
                j += 1;
            }
            i = j + 2;
            continue;
        }
        if c == '"' || c == '\'' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                let Some(&d) = chars.get(j) else {
                    return err("S0101", "string literal not terminated");
                };
                if d == c {
                    break;
                }
                if d == '\\' {
                    j += 1;
                    match chars.get(j) {
                        Some('n') => s.push('\n'),
                        Some('t') => s.push('\t'),
                        Some('r') => s.push('\r'),
                        Some('b') => s.push('\u{8}'),
                        Some('f') => s.push('\u{c}'),
                        Some('u') => {
                            let hex: String = chars.iter().skip(j + 1).take(4).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or(JsonataError {
                                    code: "S0104",
                                    message: "bad unicode escape".into(),
                                })?;
                            s.push(code);
                            j += 4;
                        }
                        Some(&o) => s.push(o),
                        None => return err("S0101", "string literal not terminated"),
                    }
                } else {
                    s.push(d);
                }
                j += 1;
            }
            out.push(Tok::Str(s));
            i = j + 1;
            continue;
        }
        if c == '`' {
            let j = chars[i + 1..]
                .iter()
                .position(|&d| d == '`')
                .ok_or(JsonataError {
                    code: "S0105",
                    message: "quoted name not terminated".into(),
                })?;
            out.push(Tok::Name(chars[i + 1..i + 1 + j].iter().collect()));
            i += j + 2;
            continue;
        }
        if c.is_ascii_digit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_digit() {
                j += 1;
            }
            if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(|d| d.is_ascii_digit()) {
                j += 1;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
            }
            if matches!(chars.get(j), Some('e' | 'E')) {
                let mut k = j + 1;
                if matches!(chars.get(k), Some('+' | '-')) {
                    k += 1;
                }
                if chars.get(k).is_some_and(|d| d.is_ascii_digit()) {
                    j = k;
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                }
            }
            let text: String = chars[i..j].iter().collect();
            out.push(Tok::Num(text.parse().map_err(|_| JsonataError {
                code: "S0102",
                message: format!("bad number {text}"),
            })?));
            i = j;
            continue;
        }
        if c == '$' {
            let mut j = i + 1;
            if chars.get(j) == Some(&'$') {
                out.push(Tok::Var("$".into()));
                i = j + 1;
                continue;
            }
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Tok::Var(chars[i + 1..j].iter().collect()));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i;
            while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                j += 1;
            }
            out.push(Tok::Name(chars[i..j].iter().collect()));
            i = j;
            continue;
        }
        if c == 'λ' {
            out.push(Tok::Name("function".into()));
            i += 1;
            continue;
        }
        if c == '/' && regex_allowed(out.last()) {
            let mut pattern = String::new();
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => return err("S0302", "regular expression not terminated"),
                    Some('/') => break,
                    Some('\\') => {
                        pattern.push('\\');
                        if let Some(&n) = chars.get(j + 1) {
                            pattern.push(n);
                        }
                        j += 2;
                        continue;
                    }
                    Some(&d) => pattern.push(d),
                }
                j += 1;
            }
            j += 1;
            let mut flags = String::new();
            while let Some(&f @ ('i' | 'm')) = chars.get(j) {
                flags.push(f);
                j += 1;
            }
            let source = if flags.is_empty() {
                pattern
            } else {
                format!("(?{flags}){pattern}")
            };
            regex::Regex::new(&source).map_err(|e| JsonataError {
                code: "S0303",
                message: format!("invalid regular expression: {e}"),
            })?;
            out.push(Tok::Regex(source));
            i = j;
            continue;
        }
        let rest: String = chars[i..chars.len().min(i + 2)].iter().collect();
        let Some(op) = OPS.iter().find(|op| rest.starts_with(**op)) else {
            return err("S0204", format!("unknown operator {c}"));
        };
        out.push(Tok::Op(op));
        i += op.chars().count();
    }
    Ok(out)
}

// ---------------------------------------------------------------- parser

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Name(String),
    Var(String),
    Wild,
    Descend,
    Neg(Box<Node>),
    Bin(&'static str, Box<Node>, Box<Node>),
    Dot(Box<Node>, Box<Node>),
    Filter(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Option<Box<Node>>),
    Bind(String, Box<Node>),
    Block(Vec<Node>),
    Array(Vec<Node>),
    Range(Box<Node>, Box<Node>),
    Object(Vec<(Node, Node)>),
    Call(Box<Node>, Vec<Node>),
    Lambda(Vec<String>, Box<Node>),
    Regex(String),
    Sort(Box<Node>, Vec<(Node, bool)>),
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

fn bp(tok: &Tok) -> u8 {
    match tok {
        Tok::Op(op) => match *op {
            "." => 75,
            "[" | "(" | "{" | "^" | "|" | "@" | "#" => 80,
            "*" | "/" | "%" => 60,
            "+" | "-" | "&" => 50,
            "=" | "!=" | "<" | "<=" | ">" | ">=" | "~>" => 40,
            "??" | "?:" => 35,
            "?" => 20,
            ":=" => 10,
            _ => 0,
        },
        Tok::Name(n) if n == "and" => 30,
        Tok::Name(n) if n == "or" => 25,
        Tok::Name(n) if n == "in" => 40,
        _ => 0,
    }
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> R<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t.ok_or(JsonataError {
            code: "S0203",
            message: "unexpected end of expression".into(),
        })
    }

    fn expect(&mut self, op: &str) -> R<()> {
        match self.next()? {
            Tok::Op(o) if o == op => Ok(()),
            t => err("S0202", format!("expected {op}, got {t:?}")),
        }
    }

    fn at(&self, op: &str) -> bool {
        matches!(self.peek(), Some(Tok::Op(o)) if *o == op)
    }

    fn expr(&mut self, rbp: u8) -> R<Node> {
        let tok = self.next()?;
        let mut left = self.nud(tok)?;
        while let Some(t) = self.peek() {
            let lbp = bp(t);
            if lbp <= rbp {
                break;
            }
            let t = self.next()?;
            left = self.led(t, left, lbp)?;
        }
        Ok(left)
    }

    fn list(&mut self, close: &str) -> R<Vec<Node>> {
        let mut items = Vec::new();
        if self.at(close) {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            let item = self.expr(0)?;
            if self.at("..") {
                self.pos += 1;
                let end = self.expr(0)?;
                items.push(Node::Range(Box::new(item), Box::new(end)));
            } else {
                items.push(item);
            }
            if self.at(",") {
                self.pos += 1;
                continue;
            }
            self.expect(close)?;
            return Ok(items);
        }
    }

    fn nud(&mut self, tok: Tok) -> R<Node> {
        Ok(match tok {
            Tok::Num(n) => Node::Lit(num(n)),
            Tok::Str(s) => Node::Lit(Value::String(s)),
            Tok::Var(v) => Node::Var(v),
            Tok::Name(n) => match n.as_str() {
                "true" => Node::Lit(Value::Bool(true)),
                "false" => Node::Lit(Value::Bool(false)),
                "null" => Node::Lit(Value::Null),
                "function" if self.at("(") => {
                    self.pos += 1;
                    let mut params = Vec::new();
                    while !self.at(")") {
                        match self.next()? {
                            Tok::Var(v) => params.push(v),
                            t => return err("S0208", format!("bad parameter {t:?}")),
                        }
                        if self.at(",") {
                            self.pos += 1;
                        }
                    }
                    self.pos += 1;
                    self.expect("{")?;
                    let body = self.expr(0)?;
                    self.expect("}")?;
                    Node::Lambda(params, Box::new(body))
                }
                _ => Node::Name(n),
            },
            Tok::Op("-") => Node::Neg(Box::new(self.expr(70)?)),
            Tok::Regex(source) => Node::Regex(source),
            Tok::Op("*") => Node::Wild,
            Tok::Op("**") => Node::Descend,
            Tok::Op("(") => {
                let mut items = Vec::new();
                while !self.at(")") {
                    items.push(self.expr(0)?);
                    if self.at(";") {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(")")?;
                Node::Block(items)
            }
            Tok::Op("[") => Node::Array(self.list("]")?),
            Tok::Op("{") => {
                let mut pairs = Vec::new();
                while !self.at("}") {
                    let k = self.expr(0)?;
                    self.expect(":")?;
                    let v = self.expr(0)?;
                    pairs.push((k, v));
                    if self.at(",") {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect("}")?;
                Node::Object(pairs)
            }
            t => return err("S0211", format!("unexpected token {t:?}")),
        })
    }

    fn led(&mut self, tok: Tok, left: Node, lbp: u8) -> R<Node> {
        let b = Box::new;
        Ok(match tok {
            Tok::Op(".") => Node::Dot(b(left), b(self.expr(lbp)?)),
            Tok::Op("[") => {
                if self.at("]") {
                    self.pos += 1;
                    return Ok(left);
                }
                let pred = self.expr(0)?;
                self.expect("]")?;
                Node::Filter(b(left), b(pred))
            }
            Tok::Op("(") => Node::Call(b(left), self.list(")")?),
            Tok::Op("?") => {
                let then = self.expr(0)?;
                let otherwise = if self.at(":") {
                    self.pos += 1;
                    Some(b(self.expr(0)?))
                } else {
                    None
                };
                Node::Cond(b(left), b(then), otherwise)
            }
            Tok::Op(":=") => {
                let Node::Var(name) = left else {
                    return err("D2005", "the left side of := must be a variable");
                };
                Node::Bind(name, b(self.expr(lbp - 1)?))
            }
            Tok::Op("^") => {
                self.expect("(")?;
                let mut terms = Vec::new();
                loop {
                    let descending = match self.peek() {
                        Some(Tok::Op(">")) => {
                            self.pos += 1;
                            true
                        }
                        Some(Tok::Op("<")) => {
                            self.pos += 1;
                            false
                        }
                        _ => false,
                    };
                    terms.push((self.expr(0)?, descending));
                    if self.at(",") {
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                self.expect(")")?;
                Node::Sort(b(left), terms)
            }
            Tok::Op(op @ ("{" | "|" | "@" | "#")) => {
                return err("D0000", format!("the {op} operator is not supported"))
            }
            Tok::Op(op) => Node::Bin(op, b(left), b(self.expr(lbp)?)),
            Tok::Name(n) if n == "and" => Node::Bin("and", b(left), b(self.expr(lbp)?)),
            Tok::Name(n) if n == "or" => Node::Bin("or", b(left), b(self.expr(lbp)?)),
            Tok::Name(n) if n == "in" => Node::Bin("in", b(left), b(self.expr(lbp)?)),
            t => return err("S0201", format!("unexpected token {t:?}")),
        })
    }
}

// ---------------------------------------------------------------- values

#[derive(Clone)]
enum V<'a> {
    U,
    J(Value),
    F(Func<'a>),
}

#[derive(Clone)]
enum Func<'a> {
    Builtin(&'a str),
    Lambda(&'a [String], &'a Node, Rc<Env<'a>>),
    Regex(regex::Regex),
}

struct Env<'a> {
    vars: RefCell<HashMap<String, V<'a>>>,
    parent: Option<Rc<Env<'a>>>,
}

impl<'a> Env<'a> {
    fn root() -> Rc<Env<'a>> {
        Rc::new(Env {
            vars: RefCell::new(HashMap::new()),
            parent: None,
        })
    }

    fn child(parent: &Rc<Env<'a>>) -> Rc<Env<'a>> {
        Rc::new(Env {
            vars: RefCell::new(HashMap::new()),
            parent: Some(parent.clone()),
        })
    }

    fn bind(&self, name: &str, v: V<'a>) {
        self.vars.borrow_mut().insert(name.to_string(), v);
    }

    fn lookup(&self, name: &str) -> Option<V<'a>> {
        if let Some(v) = self.vars.borrow().get(name) {
            return Some(v.clone());
        }
        self.parent.as_ref().and_then(|p| p.lookup(name))
    }
}

/// A JSON number from an f64, integral when it is one.
pub(crate) fn num(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    }
}

/// JSONata's boolean cast.
fn truthy(v: &V<'_>) -> bool {
    match v {
        V::U | V::F(_) => false,
        V::J(j) => truthy_json(j),
    }
}

fn truthy_json(j: &Value) -> bool {
    match j {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(truthy_json),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A sequence from collected values: none is undefined, one is itself, more is an array.
fn seq<'a>(mut items: Vec<Value>) -> V<'a> {
    match items.len() {
        0 => V::U,
        1 => V::J(items.pop().unwrap_or(Value::Null)),
        _ => V::J(Value::Array(items)),
    }
}

fn as_items(v: &V<'_>) -> Vec<Value> {
    match v {
        V::U | V::F(_) => Vec::new(),
        V::J(Value::Array(a)) => a.clone(),
        V::J(j) => vec![j.clone()],
    }
}

fn type_name(j: &Value) -> &'static str {
    match j {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSONata's `$string` of a value.
pub(crate) fn stringify(j: &Value) -> String {
    match j {
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            if n.is_f64() {
                let s = format!("{}", (f * 1e15).round() / 1e15);
                if s.contains('.') || s.contains('e') {
                    s
                } else {
                    format!("{f}")
                }
            } else {
                n.to_string()
            }
        }
        other => other.to_string(),
    }
}

struct Ctx<'a> {
    root: &'a Value,
}

impl<'a> Ctx<'a> {
    fn eval(&self, node: &'a Node, input: &V<'a>, env: &Rc<Env<'a>>) -> R<V<'a>> {
        match node {
            Node::Lit(j) => Ok(V::J(j.clone())),
            Node::Name(name) => Ok(match input {
                V::J(Value::Object(o)) => o.get(name).cloned().map(V::J).unwrap_or(V::U),
                V::J(Value::Array(a)) => {
                    let mut out = Vec::new();
                    for item in a {
                        let v = self.eval(node, &V::J(item.clone()), env)?;
                        push_flat(&mut out, v);
                    }
                    seq(out)
                }
                _ => V::U,
            }),
            Node::Var(name) => Ok(match name.as_str() {
                "" => input.clone(),
                "$" => V::J(self.root.clone()),
                _ => match env.lookup(name) {
                    Some(v) => v,
                    None if BUILTINS.contains(&name.as_str()) => V::F(Func::Builtin(name)),
                    None => V::U,
                },
            }),
            Node::Wild => Ok(match input {
                V::J(Value::Object(o)) => {
                    let mut out = Vec::new();
                    for v in o.values() {
                        push_flat(&mut out, V::J(v.clone()));
                    }
                    seq(out)
                }
                V::J(Value::Array(a)) => {
                    let mut out = Vec::new();
                    for item in a {
                        let v = self.eval(node, &V::J(item.clone()), env)?;
                        push_flat(&mut out, v);
                    }
                    seq(out)
                }
                _ => V::U,
            }),
            Node::Descend => {
                let mut out = Vec::new();
                if let V::J(j) = input {
                    descend(j, &mut out);
                }
                Ok(seq(out))
            }
            Node::Neg(e) => match self.eval(e, input, env)? {
                V::U => Ok(V::U),
                V::J(Value::Number(n)) => Ok(V::J(num(-n.as_f64().unwrap_or(0.0)))),
                _ => err("D1002", "cannot negate a non-numeric value"),
            },
            Node::Dot(l, r) => {
                let left = self.eval(l, input, env)?;
                let keep = matches!(**r, Node::Array(_));
                match left {
                    V::U => Ok(V::U),
                    V::J(Value::Array(items)) => {
                        let mut out = Vec::new();
                        for item in items {
                            let v = self.eval(r, &V::J(item), env)?;
                            if keep {
                                if let V::J(j) = v {
                                    out.push(j);
                                }
                            } else {
                                push_flat(&mut out, v);
                            }
                        }
                        Ok(seq(out))
                    }
                    other => self.eval(r, &other, env),
                }
            }
            Node::Sort(l, terms) => {
                let items = as_items(&self.eval(l, input, env)?);
                let mut keyed = Vec::with_capacity(items.len());
                for item in items {
                    let mut keys = Vec::with_capacity(terms.len());
                    for (term, _) in terms {
                        keys.push(match self.eval(term, &V::J(item.clone()), env)? {
                            V::J(j @ (Value::Number(_) | Value::String(_))) => Some(j),
                            V::U => None,
                            _ => return err("T2008", "the expressions within an order-by clause must evaluate to numeric or string values"),
                        });
                    }
                    keyed.push((keys, item));
                }
                let mut mixed = false;
                keyed.sort_by(|(a, _), (b, _)| {
                    for ((x, y), (_, descending)) in a.iter().zip(b).zip(terms) {
                        let o = match (x, y) {
                            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                                .as_f64()
                                .partial_cmp(&y.as_f64())
                                .unwrap_or(std::cmp::Ordering::Equal),
                            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
                            (None, None) => std::cmp::Ordering::Equal,
                            (None, _) => std::cmp::Ordering::Greater,
                            (_, None) => std::cmp::Ordering::Less,
                            _ => {
                                mixed = true;
                                std::cmp::Ordering::Equal
                            }
                        };
                        let o = if *descending { o.reverse() } else { o };
                        if o != std::cmp::Ordering::Equal {
                            return o;
                        }
                    }
                    std::cmp::Ordering::Equal
                });
                if mixed {
                    return err(
                        "T2007",
                        "type mismatch when comparing values in an order-by clause",
                    );
                }
                Ok(seq(keyed.into_iter().map(|(_, item)| item).collect()))
            }
            Node::Filter(l, pred) => {
                let left = self.eval(l, input, env)?;
                let items = as_items(&left);
                let len = items.len() as i64;
                if let Node::Lit(Value::Number(n)) = &**pred {
                    let i = n.as_f64().unwrap_or(0.0).floor() as i64;
                    let i = if i < 0 { len + i } else { i };
                    return Ok(if (0..len).contains(&i) {
                        V::J(items[i as usize].clone())
                    } else {
                        V::U
                    });
                }
                let mut out = Vec::new();
                for (index, item) in items.into_iter().enumerate() {
                    let p = self.eval(pred, &V::J(item.clone()), env)?;
                    let keep = match &p {
                        V::J(Value::Number(n)) => {
                            let i = n.as_f64().unwrap_or(0.0).floor() as i64;
                            (if i < 0 { len + i } else { i }) == index as i64
                        }
                        other => truthy(other),
                    };
                    if keep {
                        out.push(item);
                    }
                }
                Ok(seq(out))
            }
            Node::Cond(c, t, e) => {
                if truthy(&self.eval(c, input, env)?) {
                    self.eval(t, input, env)
                } else if let Some(e) = e {
                    self.eval(e, input, env)
                } else {
                    Ok(V::U)
                }
            }
            Node::Bind(name, e) => {
                let v = self.eval(e, input, env)?;
                env.bind(name, v.clone());
                Ok(v)
            }
            Node::Block(items) => {
                let scope = Env::child(env);
                let mut last = V::U;
                for item in items {
                    last = self.eval(item, input, &scope)?;
                }
                Ok(last)
            }
            Node::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Node::Range(a, b) => {
                            let (a, b) = (self.eval(a, input, env)?, self.eval(b, input, env)?);
                            let (V::J(Value::Number(a)), V::J(Value::Number(b))) = (a, b) else {
                                continue;
                            };
                            let (a, b) = (a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0));
                            if b - a > 10_000_000 {
                                return err("D2014", "range is too large");
                            }
                            out.extend((a..=b).map(Value::from));
                        }
                        Node::Array(_) => {
                            if let V::J(j) = self.eval(item, input, env)? {
                                out.push(j);
                            }
                        }
                        _ => push_flat(&mut out, self.eval(item, input, env)?),
                    }
                }
                Ok(V::J(Value::Array(out)))
            }
            Node::Range(..) => err("S0201", "a range is only allowed in an array constructor"),
            Node::Object(pairs) => {
                let mut out = Map::new();
                for (k, v) in pairs {
                    let key = match self.eval(k, input, env)? {
                        V::J(Value::String(s)) => s,
                        _ => return err("T1003", "object keys must be strings"),
                    };
                    if let V::J(j) = self.eval(v, input, env)? {
                        out.insert(key, j);
                    }
                }
                Ok(V::J(Value::Object(out)))
            }
            Node::Lambda(params, body) => Ok(V::F(Func::Lambda(params, body, env.clone()))),
            Node::Regex(source) => regex::Regex::new(source)
                .map(|re| V::F(Func::Regex(re)))
                .map_err(|e| JsonataError {
                    code: "S0303",
                    message: e.to_string(),
                }),
            Node::Call(f, args) => {
                let f = self.eval(f, input, env)?;
                let mut values = Vec::with_capacity(args.len());
                for a in args {
                    values.push(self.eval(a, input, env)?);
                }
                self.call(&f, values, input)
            }
            Node::Bin(op, l, r) => self.binary(op, l, r, input, env),
        }
    }

    fn call(&self, f: &V<'a>, args: Vec<V<'a>>, input: &V<'a>) -> R<V<'a>> {
        match f {
            V::F(Func::Lambda(params, body, closure)) => {
                let scope = Env::child(closure);
                for (i, p) in params.iter().enumerate() {
                    scope.bind(p, args.get(i).cloned().unwrap_or(V::U));
                }
                self.eval(body, input, &scope)
            }
            V::F(Func::Builtin(name)) => self.builtin(name, args, input),
            _ => err("T1006", "attempted to invoke a non-function"),
        }
    }

    fn binary(
        &self,
        op: &str,
        l: &'a Node,
        r: &'a Node,
        input: &V<'a>,
        env: &Rc<Env<'a>>,
    ) -> R<V<'a>> {
        if op == "and" {
            let a = truthy(&self.eval(l, input, env)?);
            return Ok(V::J(Value::Bool(a && truthy(&self.eval(r, input, env)?))));
        }
        if op == "or" {
            let a = truthy(&self.eval(l, input, env)?);
            return Ok(V::J(Value::Bool(a || truthy(&self.eval(r, input, env)?))));
        }
        let a = self.eval(l, input, env)?;
        if op == "??" {
            return match a {
                V::U => self.eval(r, input, env),
                a => Ok(a),
            };
        }
        if op == "?:" {
            return if truthy(&a) {
                Ok(a)
            } else {
                self.eval(r, input, env)
            };
        }
        if op == "~>" {
            return match r {
                Node::Call(f, args) => {
                    let f = self.eval(f, input, env)?;
                    let mut values = vec![a];
                    for x in args {
                        values.push(self.eval(x, input, env)?);
                    }
                    self.call(&f, values, input)
                }
                _ => {
                    let f = self.eval(r, input, env)?;
                    self.call(&f, vec![a], input)
                }
            };
        }
        let b = self.eval(r, input, env)?;
        match op {
            "&" => {
                let s = |v: &V<'_>| match v {
                    V::J(j) => stringify(j),
                    _ => String::new(),
                };
                Ok(V::J(Value::String(s(&a) + &s(&b))))
            }
            "=" | "!=" => {
                let eq = match (&a, &b) {
                    (V::J(x), V::J(y)) => json_eq(x, y),
                    _ => false,
                };
                Ok(V::J(Value::Bool(if op == "=" {
                    eq
                } else {
                    matches!((&a, &b), (V::J(_), V::J(_))) && !eq
                })))
            }
            "in" => {
                let V::J(x) = &a else {
                    return Ok(V::J(Value::Bool(false)));
                };
                Ok(V::J(Value::Bool(
                    as_items(&b).iter().any(|y| json_eq(x, y)),
                )))
            }
            "<" | "<=" | ">" | ">=" => {
                let (V::J(x), V::J(y)) = (&a, &b) else {
                    return Ok(V::U);
                };
                let ord = match (x, y) {
                    (Value::Number(x), Value::Number(y)) => {
                        x.as_f64().partial_cmp(&y.as_f64())
                    }
                    (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
                    _ => return err("T2010", "the expressions either side of a comparison must both be numbers or both be strings"),
                };
                let ord = ord.unwrap_or(std::cmp::Ordering::Equal);
                use std::cmp::Ordering::*;
                Ok(V::J(Value::Bool(match op {
                    "<" => ord == Less,
                    "<=" => ord != Greater,
                    ">" => ord == Greater,
                    _ => ord != Less,
                })))
            }
            _ => {
                let (x, y) = match (&a, &b) {
                    (V::U, _) | (_, V::U) => return Ok(V::U),
                    (V::J(Value::Number(x)), V::J(Value::Number(y))) => {
                        (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0))
                    }
                    _ => {
                        return err(
                            "T2001",
                            format!("the operands of the {op} operator must be numbers"),
                        )
                    }
                };
                let n = match op {
                    "+" => x + y,
                    "-" => x - y,
                    "*" => x * y,
                    "/" => x / y,
                    _ => x % y,
                };
                if !n.is_finite() {
                    return err("D1001", "number out of range");
                }
                Ok(V::J(num(n)))
            }
        }
    }

    fn builtin(&self, name: &str, args: Vec<V<'a>>, input: &V<'a>) -> R<V<'a>> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or(V::U);
        let json = |i: usize| match args.get(i) {
            Some(V::J(j)) => Some(j.clone()),
            _ => None,
        };
        let string = |i: usize| -> R<Option<String>> {
            match args.get(i) {
                None | Some(V::U) => Ok(None),
                Some(V::J(Value::String(s))) => Ok(Some(s.clone())),
                _ => err(
                    "T0410",
                    format!("argument {} of function ${name} must be a string", i + 1),
                ),
            }
        };
        let number = |i: usize| -> R<Option<f64>> {
            match args.get(i) {
                None | Some(V::U) => Ok(None),
                Some(V::J(Value::Number(n))) => Ok(n.as_f64()),
                _ => err(
                    "T0410",
                    format!("argument {} of function ${name} must be a number", i + 1),
                ),
            }
        };
        let numbers = |i: usize| -> R<Option<Vec<f64>>> {
            let v = arg(i);
            if matches!(v, V::U) {
                return Ok(None);
            }
            as_items(&v)
                .iter()
                .map(|j| {
                    j.as_f64().ok_or(JsonataError {
                        code: "T0412",
                        message: format!(
                            "argument 1 of function ${name} must be an array of numbers"
                        ),
                    })
                })
                .collect::<R<Vec<_>>>()
                .map(Some)
        };
        let s = |x: String| Ok(V::J(Value::String(x)));
        let n = |x: f64| Ok(V::J(num(x)));
        let b = |x: bool| Ok(V::J(Value::Bool(x)));
        macro_rules! need {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None => return Ok(V::U),
                }
            };
        }
        match name {
            "string" => {
                let v = if args.is_empty() {
                    input.clone()
                } else {
                    arg(0)
                };
                match v {
                    V::J(j) => s(stringify(&j)),
                    _ => Ok(V::U),
                }
            }
            "length" => n(need!(string(0)?).chars().count() as f64),
            "substring" => {
                let text: Vec<char> = need!(string(0)?).chars().collect();
                let len = text.len() as i64;
                let start = number(1)?.unwrap_or(0.0) as i64;
                let start = if start < 0 {
                    (len + start).max(0)
                } else {
                    start.min(len)
                };
                let count = number(2)?.map(|c| c.max(0.0) as i64).unwrap_or(len);
                let end = (start + count).min(len);
                s(text[start as usize..end as usize].iter().collect())
            }
            "substringBefore" | "substringAfter" => {
                let text = need!(string(0)?);
                let chars = need!(string(1)?);
                s(match text.find(&chars) {
                    Some(i) if name == "substringBefore" => text[..i].to_string(),
                    Some(i) => text[i + chars.len()..].to_string(),
                    None => text,
                })
            }
            "uppercase" => s(need!(string(0)?).to_uppercase()),
            "lowercase" => s(need!(string(0)?).to_lowercase()),
            "trim" => s(need!(string(0)?)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")),
            "pad" => {
                let text = need!(string(0)?);
                let width = number(1)?.unwrap_or(0.0) as i64;
                let fill = string(2)?.unwrap_or_else(|| " ".into());
                let missing = width.unsigned_abs() as usize;
                let have = text.chars().count();
                if missing <= have || fill.is_empty() {
                    return s(text);
                }
                let pad: String = fill.chars().cycle().take(missing - have).collect();
                s(if width < 0 { pad + &text } else { text + &pad })
            }
            "contains" => {
                let text = need!(string(0)?);
                match regex_arg(&args, 1) {
                    Some(re) => b(re.is_match(&text)),
                    None => b(text.contains(&need!(string(1)?))),
                }
            }
            "split" => {
                let text = need!(string(0)?);
                let limit = number(2)?.map(|l| l as usize).unwrap_or(usize::MAX);
                let parts: Vec<Value> = match regex_arg(&args, 1) {
                    Some(re) => re.split(&text).map(|p| Value::String(p.into())).collect(),
                    None => {
                        let sep = need!(string(1)?);
                        if sep.is_empty() {
                            text.chars().map(|c| Value::String(c.to_string())).collect()
                        } else {
                            text.split(&sep).map(|p| Value::String(p.into())).collect()
                        }
                    }
                };
                Ok(V::J(Value::Array(parts.into_iter().take(limit).collect())))
            }
            "match" => {
                let text = need!(string(0)?);
                let Some(re) = regex_arg(&args, 1) else {
                    return err(
                        "T0410",
                        "argument 2 of function $match must be a regular expression",
                    );
                };
                let limit = number(2)?.map(|l| l as usize).unwrap_or(usize::MAX);
                let found: Vec<Value> = re
                    .captures_iter(&text)
                    .take(limit)
                    .map(|c| {
                        let whole = c.get(0).map_or("", |m| m.as_str());
                        let groups: Vec<Value> = c
                            .iter()
                            .skip(1)
                            .map(|g| Value::String(g.map_or("", |m| m.as_str()).into()))
                            .collect();
                        json_object([
                            ("match", Value::String(whole.into())),
                            (
                                "index",
                                Value::from(
                                    c.get(0).map_or(0, |m| text[..m.start()].chars().count()),
                                ),
                            ),
                            ("groups", Value::Array(groups)),
                        ])
                    })
                    .collect();
                Ok(seq(found))
            }
            "join" => {
                let items = as_items(&arg(0));
                let sep = string(1)?.unwrap_or_default();
                let mut parts = Vec::new();
                for i in items {
                    match i {
                        Value::String(x) => parts.push(x),
                        _ => {
                            return err(
                                "T0412",
                                "argument 1 of function $join must be an array of strings",
                            )
                        }
                    }
                }
                s(parts.join(&sep))
            }
            "replace" => {
                let text = need!(string(0)?);
                if let Some(re) = regex_arg(&args, 1) {
                    let with = string(2)?.unwrap_or_default();
                    let limit = number(3)?.map(|l| l as usize).unwrap_or(0);
                    return s(re.replacen(&text, limit, with.as_str()).into_owned());
                }
                let pattern = need!(string(1)?);
                let with = string(2)?.unwrap_or_default();
                if pattern.is_empty() {
                    return err(
                        "D3010",
                        "the second argument of $replace cannot be an empty string",
                    );
                }
                match number(3)? {
                    Some(limit) => s(text.replacen(&pattern, &with, limit as usize)),
                    None => s(text.replace(&pattern, &with)),
                }
            }
            "base64encode" => {
                use base64::Engine;
                s(base64::engine::general_purpose::STANDARD.encode(need!(string(0)?)))
            }
            "base64decode" => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(need!(string(0)?))
                    .map_err(|e| JsonataError {
                        code: "D3137",
                        message: format!("invalid base64: {e}"),
                    })?;
                s(String::from_utf8_lossy(&bytes).into_owned())
            }
            "encodeUrlComponent" => s(percent_encode(&need!(string(0)?))),
            "decodeUrlComponent" => s(percent_decode(&need!(string(0)?))),
            "number" => match arg(0) {
                V::J(Value::Number(x)) => Ok(V::J(Value::Number(x))),
                V::J(Value::String(x)) => match x.trim().parse::<f64>() {
                    Ok(v) if v.is_finite() => n(v),
                    _ => err("D3030", format!("unable to cast value to a number: {x:?}")),
                },
                V::J(Value::Bool(x)) => n(if x { 1.0 } else { 0.0 }),
                V::U => Ok(V::U),
                _ => err("D3030", "unable to cast value to a number"),
            },
            "abs" => n(need!(number(0)?).abs()),
            "floor" => n(need!(number(0)?).floor()),
            "ceil" => n(need!(number(0)?).ceil()),
            "round" => {
                let x = need!(number(0)?);
                let p = 10f64.powi(number(1)?.unwrap_or(0.0) as i32);
                let scaled = x * p;
                // round half to even, as JSONata does
                let r = scaled.round();
                let r = if (scaled - scaled.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
                    r - scaled.signum()
                } else {
                    r
                };
                n(r / p)
            }
            "power" => n(need!(number(0)?).powf(need!(number(1)?))),
            "sqrt" => {
                let x = need!(number(0)?);
                if x < 0.0 {
                    return err(
                        "D3060",
                        "the sqrt function cannot be applied to a negative number",
                    );
                }
                n(x.sqrt())
            }
            "random" => n(rand::random::<f64>()),
            "sum" => n(need!(numbers(0)?).iter().sum()),
            "max" | "min" => {
                let v = need!(numbers(0)?);
                if v.is_empty() {
                    return Ok(V::U);
                }
                let f = if name == "max" { f64::max } else { f64::min };
                n(v.iter().copied().fold(v[0], f))
            }
            "average" => {
                let v = need!(numbers(0)?);
                if v.is_empty() {
                    return Ok(V::U);
                }
                n(v.iter().sum::<f64>() / v.len() as f64)
            }
            "formatBase" => {
                let x = need!(number(0)?) as i64;
                let radix = number(1)?.unwrap_or(10.0) as u32;
                if !(2..=36).contains(&radix) {
                    return err("D3100", "the radix of $formatBase must be between 2 and 36");
                }
                let mut digits = Vec::new();
                let mut m = x.unsigned_abs();
                loop {
                    digits.push(
                        std::char::from_digit((m % radix as u64) as u32, radix).unwrap_or('0'),
                    );
                    m /= radix as u64;
                    if m == 0 {
                        break;
                    }
                }
                if x < 0 {
                    digits.push('-');
                }
                s(digits.into_iter().rev().collect())
            }
            "boolean" => match arg(0) {
                V::U => Ok(V::U),
                v => b(truthy(&v)),
            },
            "not" => match arg(0) {
                V::U => Ok(V::U),
                v => b(!truthy(&v)),
            },
            "exists" => b(!matches!(arg(0), V::U)),
            "count" => n(as_items(&arg(0)).len() as f64),
            "append" => {
                let (x, y) = (arg(0), arg(1));
                if matches!(y, V::U) {
                    return Ok(x);
                }
                if matches!(x, V::U) {
                    return Ok(y);
                }
                let mut out = as_items(&x);
                out.extend(as_items(&y));
                Ok(V::J(Value::Array(out)))
            }
            "reverse" => {
                let mut items = need!(json(0).map(|j| as_items(&V::J(j))));
                items.reverse();
                Ok(V::J(Value::Array(items)))
            }
            "sort" => {
                let mut items = need!(json(0).map(|j| as_items(&V::J(j))));
                if let Some(f) = args.get(1) {
                    // a comparator: true when a should come after b
                    let mut failure = None;
                    let mut sorted: Vec<Value> = Vec::with_capacity(items.len());
                    for item in items {
                        let mut at = sorted.len();
                        for (i, existing) in sorted.iter().enumerate() {
                            match self.call(
                                f,
                                vec![V::J(existing.clone()), V::J(item.clone())],
                                input,
                            ) {
                                Ok(r) if truthy(&r) => {
                                    at = i;
                                    break;
                                }
                                Ok(_) => {}
                                Err(e) => failure = Some(e),
                            }
                        }
                        sorted.insert(at, item);
                    }
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    return Ok(V::J(Value::Array(sorted)));
                }
                let all_numbers = items.iter().all(Value::is_number);
                let all_strings = items.iter().all(Value::is_string);
                if !all_numbers && !all_strings {
                    return err("D3070", "the single argument form of $sort can only sort arrays of strings or numbers");
                }
                items.sort_by(|x, y| match (x, y) {
                    (Value::Number(x), Value::Number(y)) => x
                        .as_f64()
                        .partial_cmp(&y.as_f64())
                        .unwrap_or(std::cmp::Ordering::Equal),
                    _ => x.as_str().cmp(&y.as_str()),
                });
                Ok(V::J(Value::Array(items)))
            }
            "distinct" => {
                let items = need!(json(0).map(|j| as_items(&V::J(j))));
                let mut out: Vec<Value> = Vec::new();
                for i in items {
                    if !out.iter().any(|o| json_eq(o, &i)) {
                        out.push(i);
                    }
                }
                Ok(V::J(Value::Array(out)))
            }
            "shuffle" => {
                use rand::seq::SliceRandom;
                let mut items = need!(json(0).map(|j| as_items(&V::J(j))));
                items.shuffle(&mut rand::thread_rng());
                Ok(V::J(Value::Array(items)))
            }
            "single" => {
                let items = as_items(&arg(0));
                let mut matched = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    let keep = match args.get(1) {
                        Some(f) => truthy(&self.call(
                            f,
                            vec![V::J(item.clone()), V::J(Value::from(i))],
                            input,
                        )?),
                        None => true,
                    };
                    if keep {
                        matched.push(item);
                    }
                }
                if matched.len() != 1 {
                    return err(
                        "D3138",
                        "the $single() function expected exactly 1 matching result",
                    );
                }
                Ok(V::J(matched.remove(0)))
            }
            "zip" => {
                let arrays: Vec<Vec<Value>> = args.iter().map(as_items).collect();
                let len = arrays.iter().map(Vec::len).min().unwrap_or(0);
                Ok(V::J(Value::Array(
                    (0..len)
                        .map(|i| Value::Array(arrays.iter().map(|a| a[i].clone()).collect()))
                        .collect(),
                )))
            }
            "keys" => {
                let mut out: Vec<Value> = Vec::new();
                for item in as_items(&arg(0)) {
                    if let Value::Object(o) = item {
                        for k in o.keys() {
                            if !out.iter().any(|x| x.as_str() == Some(k)) {
                                out.push(Value::String(k.clone()));
                            }
                        }
                    }
                }
                Ok(seq(out))
            }
            "lookup" => {
                let key = need!(string(1)?);
                let mut out = Vec::new();
                for item in as_items(&arg(0)) {
                    if let Some(v) = item.get(&key) {
                        push_flat(&mut out, V::J(v.clone()));
                    }
                }
                Ok(seq(out))
            }
            "merge" => {
                let mut out = Map::new();
                for item in as_items(&arg(0)) {
                    if let Value::Object(o) = item {
                        out.extend(o);
                    }
                }
                Ok(V::J(Value::Object(out)))
            }
            "spread" => {
                let mut out = Vec::new();
                for item in as_items(&arg(0)) {
                    if let Value::Object(o) = item {
                        for (k, v) in o {
                            out.push(Value::Object(Map::from_iter([(k, v)])));
                        }
                    }
                }
                Ok(V::J(Value::Array(out)))
            }
            "each" | "sift" => {
                let Some(V::J(Value::Object(o))) = args.first() else {
                    return Ok(V::U);
                };
                let f = arg(1);
                let mut list = Vec::new();
                let mut obj = Map::new();
                for (k, v) in o {
                    let r = self.call(
                        &f,
                        vec![V::J(v.clone()), V::J(Value::String(k.clone()))],
                        input,
                    )?;
                    if name == "each" {
                        if let V::J(j) = r {
                            list.push(j);
                        }
                    } else if truthy(&r) {
                        obj.insert(k.clone(), v.clone());
                    }
                }
                Ok(if name == "each" {
                    seq(list)
                } else if obj.is_empty() {
                    V::U
                } else {
                    V::J(Value::Object(obj))
                })
            }
            "type" => match arg(0) {
                V::U => Ok(V::U),
                V::F(_) => s("function".into()),
                V::J(j) => s(type_name(&j).into()),
            },
            "error" => err(
                "D3137",
                string(0)?.unwrap_or_else(|| "$error() function evaluated".into()),
            ),
            "assert" => {
                if truthy(&arg(0)) {
                    Ok(V::U)
                } else {
                    err(
                        "D3141",
                        string(1)?.unwrap_or_else(|| "$assert() statement failed".into()),
                    )
                }
            }
            "map" | "filter" => {
                let items = as_items(&arg(0));
                let f = arg(1);
                let whole = V::J(Value::Array(items.clone()));
                let mut out = Vec::new();
                for (i, item) in items.into_iter().enumerate() {
                    let r = self.call(
                        &f,
                        vec![V::J(item.clone()), V::J(Value::from(i)), whole.clone()],
                        input,
                    )?;
                    if name == "map" {
                        if let V::J(j) = r {
                            out.push(j);
                        }
                    } else if truthy(&r) {
                        out.push(item);
                    }
                }
                Ok(seq(out))
            }
            "reduce" => {
                let items = as_items(&arg(0));
                let f = arg(1);
                let mut iter = items.into_iter();
                let mut acc = match args.get(2) {
                    Some(init) => init.clone(),
                    None => match iter.next() {
                        Some(first) => V::J(first),
                        None => return Ok(V::U),
                    },
                };
                for item in iter {
                    acc = self.call(&f, vec![acc, V::J(item)], input)?;
                }
                Ok(acc)
            }
            "now" => s(crate::clock::format_timestamp(
                time::OffsetDateTime::now_utc(),
            )),
            "millis" => {
                n((time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as f64)
            }
            "toMillis" => {
                let text = need!(string(0)?);
                let t = crate::clock::parse_timestamp(&text).ok_or(JsonataError {
                    code: "D3110",
                    message: format!("the timestamp {text:?} cannot be parsed"),
                })?;
                n((t.unix_timestamp_nanos() / 1_000_000) as f64)
            }
            "fromMillis" => {
                let ms = need!(number(0)?);
                let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
                    .map_err(|e| JsonataError {
                        code: "D3110",
                        message: e.to_string(),
                    })?;
                s(crate::clock::format_timestamp(t))
            }
            "partition" | "range" | "hash" | "uuid" | "parse" => {
                let values: Vec<Value> = args
                    .iter()
                    .map(|a| match a {
                        V::J(j) => j.clone(),
                        _ => Value::Null,
                    })
                    .collect();
                let intrinsic = match name {
                    "partition" => "ArrayPartition",
                    "range" => "ArrayRange",
                    "hash" => "Hash",
                    "uuid" => "UUID",
                    _ => "StringToJson",
                };
                crate::intrinsics::apply(intrinsic, &values)
                    .map(V::J)
                    .map_err(|e| JsonataError {
                        code: "D3137",
                        message: e.cause,
                    })
            }
            _ => err("T1006", format!("the function ${name} is not supported")),
        }
    }
}

const BUILTINS: &[&str] = &[
    "string",
    "length",
    "substring",
    "substringBefore",
    "substringAfter",
    "uppercase",
    "lowercase",
    "trim",
    "pad",
    "contains",
    "split",
    "join",
    "replace",
    "base64encode",
    "base64decode",
    "encodeUrlComponent",
    "decodeUrlComponent",
    "number",
    "abs",
    "floor",
    "ceil",
    "round",
    "power",
    "sqrt",
    "random",
    "sum",
    "max",
    "min",
    "average",
    "formatBase",
    "boolean",
    "not",
    "exists",
    "count",
    "append",
    "reverse",
    "sort",
    "distinct",
    "shuffle",
    "single",
    "zip",
    "keys",
    "lookup",
    "merge",
    "spread",
    "each",
    "sift",
    "type",
    "error",
    "assert",
    "map",
    "filter",
    "reduce",
    "match",
    "now",
    "millis",
    "toMillis",
    "fromMillis",
    "partition",
    "range",
    "hash",
    "uuid",
    "parse",
];

fn regex_arg(args: &[V<'_>], i: usize) -> Option<regex::Regex> {
    match args.get(i) {
        Some(V::F(Func::Regex(re))) => Some(re.clone()),
        _ => None,
    }
}

fn json_object<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn push_flat(out: &mut Vec<Value>, v: V<'_>) {
    match v {
        V::J(Value::Array(a)) => out.extend(a),
        V::J(j) => out.push(j),
        _ => {}
    }
}

fn descend(j: &Value, out: &mut Vec<Value>) {
    match j {
        Value::Object(o) => {
            for v in o.values() {
                if !v.is_array() {
                    out.push(v.clone());
                }
                descend(v, out);
            }
        }
        Value::Array(a) => {
            for v in a {
                descend(v, out);
            }
        }
        _ => {}
    }
}

/// Deep equality with numbers compared by value (`1 = 1.0`).
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
            if let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or(""), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, input: Value) -> Option<Value> {
        let states = json!({"input": input, "result": {"n": 3}});
        Expr::parse(expr)
            .unwrap()
            .evaluate(&input, &[("states", &states), ("x", &json!(10))])
            .unwrap()
    }

    #[test]
    fn paths_map_over_arrays_and_flatten() {
        let input = json!({"items": [{"id": 1, "tags": ["a", "b"]}, {"id": 2, "tags": ["c"]}]});
        assert_eq!(
            eval("$states.input.items.id", input.clone()),
            Some(json!([1, 2]))
        );
        assert_eq!(
            eval("items.tags", input.clone()),
            Some(json!(["a", "b", "c"]))
        );
        assert_eq!(eval("items[0].id", input.clone()), Some(json!(1)));
        assert_eq!(eval("items[-1].id", input.clone()), Some(json!(2)));
        assert_eq!(
            eval("items[id > 1].tags", input.clone()),
            Some(json!(["c"]))
        );
        assert_eq!(eval("items.missing", input.clone()), None);
        assert_eq!(eval("items.[id]", input.clone()), Some(json!([[1], [2]])));
        assert_eq!(eval("$count(items)", input), Some(json!(2)));
    }

    #[test]
    fn operators_and_precedence() {
        assert_eq!(eval("1 + 2 * 3", json!({})), Some(json!(7)));
        assert_eq!(eval("(1 + 2) * 3", json!({})), Some(json!(9)));
        assert_eq!(eval("7 % 4 - -1", json!({})), Some(json!(4)));
        assert_eq!(eval("10 / 4", json!({})), Some(json!(2.5)));
        assert_eq!(eval("'a' & 1 & true", json!({})), Some(json!("a1true")));
        assert_eq!(eval("$x > 5 and $x < 20", json!({})), Some(json!(true)));
        assert_eq!(
            eval("$x = 10 ? 'yes' : 'no'", json!({})),
            Some(json!("yes"))
        );
        assert_eq!(eval("3 in [1,2,3]", json!({})), Some(json!(true)));
        assert_eq!(eval("[1..4]", json!({})), Some(json!([1, 2, 3, 4])));
        assert_eq!(
            eval("nothing ?? 'default'", json!({})),
            Some(json!("default"))
        );
        assert_eq!(eval("$states.result.n + $x", json!({})), Some(json!(13)));
        assert_eq!(
            eval("{'a': 1, 'b': [1, 2]}", json!({})),
            Some(json!({"a": 1, "b": [1, 2]}))
        );
        assert_eq!(eval("($y := 4; $y * $y)", json!({})), Some(json!(16)));
        assert_eq!(
            Expr::parse("1 + 'a'")
                .unwrap()
                .evaluate(&json!({}), &[])
                .unwrap_err()
                .code,
            "T2001"
        );
    }

    #[test]
    fn functions() {
        let cases = [
            ("$uppercase('abc')", json!("ABC")),
            ("$substring('hello', 1, 3)", json!("ell")),
            ("$substringAfter('a-b-c', '-')", json!("b-c")),
            ("$split('a,b,c', ',')", json!(["a", "b", "c"])),
            ("$join(['a','b'], '-')", json!("a-b")),
            ("$replace('aXbX', 'X', 'y')", json!("ayby")),
            ("$string({'a': 1})", json!("{\"a\":1}")),
            ("$number('42.5')", json!(42.5)),
            ("$round(2.5)", json!(2)),
            ("$round(2.71828, 2)", json!(2.72)),
            ("$sum([1,2,3])", json!(6)),
            ("$max([1,5,3])", json!(5)),
            ("$average([1,2,3])", json!(2)),
            ("$sort([3,1,2])", json!([1, 2, 3])),
            ("$reverse([1,2])", json!([2, 1])),
            ("$distinct([1,1,2])", json!([1, 2])),
            ("$append([1], 2)", json!([1, 2])),
            ("$keys({'a':1,'b':2})", json!(["a", "b"])),
            ("$merge([{'a':1},{'b':2}])", json!({"a": 1, "b": 2})),
            ("$map([1,2], function($v) { $v * 2 })", json!([2, 4])),
            ("$filter([1,2,3], function($v) { $v > 1 })", json!([2, 3])),
            ("$reduce([1,2,3], function($a, $b) { $a + $b })", json!(6)),
            ("[1,2,3] ~> $sum()", json!(6)),
            ("$exists(nope)", json!(false)),
            ("$type('x')", json!("string")),
            ("$boolean([])", json!(false)),
            ("$partition([1,2,3], 2)", json!([[1, 2], [3]])),
            ("$range(0, 6, 2)", json!([0, 2, 4, 6])),
            ("$parse('{\"a\": 1}')", json!({"a": 1})),
            (
                "$hash('abc', 'MD5')",
                json!("900150983cd24fb0d6963f7d28e17f72"),
            ),
            ("$toMillis('1970-01-01T00:00:01Z')", json!(1000)),
            ("$fromMillis(1000)", json!("1970-01-01T00:00:01Z")),
            ("$base64encode('hi')", json!("aGk=")),
            ("$pad('1', -3, '0')", json!("001")),
        ];
        for (expr, want) in cases {
            assert_eq!(eval(expr, json!({})), Some(want), "{expr}");
        }
        assert_eq!(
            eval("$uuid()", json!({})).unwrap().as_str().unwrap().len(),
            36
        );
        let r = eval("$random()", json!({})).unwrap().as_f64().unwrap();
        assert!((0.0..1.0).contains(&r));
    }

    #[test]
    fn expressions_asl_workflows_use() {
        let input = json!({"order": {"items": [{"sku": "a", "price": 5, "qty": 2}, {"sku": "b", "price": 20, "qty": 1}],
                                     "customer": {"first": "Ada", "last": "Lovelace"}, "coupon": null}});
        let cases = [
            ("$states.input.order.items[price > 10].sku", json!("b")),
            ("$sum($states.input.order.items.(price * qty))", json!(30)),
            ("$count($states.input.order.items)", json!(2)),
            (
                "$states.input.order.customer.first & ' ' & $states.input.order.customer.last",
                json!("Ada Lovelace"),
            ),
            (
                "$states.input.order.coupon = null ? 'none' : 'some'",
                json!("none"),
            ),
            ("$exists($states.input.order.discount)", json!(false)),
            (
                "{'skus': $states.input.order.items.sku, 'n': $x}",
                json!({"skus": ["a", "b"], "n": 10}),
            ),
            (
                "$map($states.input.order.items, function($i) { $i.sku & ':' & $string($i.qty) })",
                json!(["a:2", "b:1"]),
            ),
            (
                "$states.input.order.items[0].price < $states.input.order.items[1].price",
                json!(true),
            ),
            (
                "$lowercase($states.input.order.customer.last) in ['lovelace', 'x']",
                json!(true),
            ),
            ("$states.input.order.items[-1].sku", json!("b")),
            ("$states.input.order.items.price ~> $max()", json!(20)),
            ("$states.result.n * 2", json!(6)),
            ("$states.input.order.items^(>price).sku", json!(["b", "a"])),
            (
                "$states.input.order.items^(qty, sku).sku",
                json!(["b", "a"]),
            ),
        ];
        for (expr, want) in cases {
            assert_eq!(eval(expr, input.clone()), Some(want), "{expr}");
        }
    }

    #[test]
    fn regular_expressions() {
        let cases = [
            ("$contains('Hello World', /wor/i)", json!(true)),
            ("$contains('Hello', /^h/)", json!(false)),
            ("$split('a1b22c', /[0-9]+/)", json!(["a", "b", "c"])),
            (
                "$replace('John Smith', /(\\w+)\\s(\\w+)/, '$2, $1')",
                json!("Smith, John"),
            ),
            ("$replace('aaa', /a/, 'b', 2)", json!("bba")),
            ("$match('ab12cd345', /[0-9]+/).match", json!(["12", "345"])),
            (
                "$match('key=val', /(\\w+)=(\\w+)/).groups",
                json!(["key", "val"]),
            ),
            ("10 / 4", json!(2.5)),
            ("(8) / 2", json!(4)),
        ];
        for (expr, want) in cases {
            assert_eq!(eval(expr, json!({})), Some(want), "{expr}");
        }
        assert_eq!(Expr::parse("$match('a', /(/)").unwrap_err().code, "S0303");
    }

    #[test]
    fn unsupported_constructs_are_refused_at_parse_time() {
        assert_eq!(Expr::parse("a{b: c}").unwrap_err().code, "D0000");
        assert!(Expr::parse("1 +").is_err());
        assert!(Expr::parse("'open").is_err());
    }
}
