//! The `States.*` intrinsic functions of JSONPath payload templates
//! (`"x.$": "States.Format('Hello {}', $.name)"`): a parser into [`Call`] (checked when the
//! definition is validated) and the functions themselves with AWS's argument checks. Every
//! failure at run time is a `States.IntrinsicFailure`. The JSONata functions `$partition`,
//! `$range`, `$hash`, `$uuid` and `$parse` share these implementations.

use base64::Engine as _;
use serde_json::Value;

use crate::error::StatesError;
use crate::path::{Query, Scope};

/// A parsed intrinsic call: `States.Name(arg, …)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    name: String,
    args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Lit(Value),
    Path(Query),
    Call(Call),
}

/// The intrinsic names and how many arguments each takes (min, max).
const FUNCTIONS: &[(&str, usize, usize)] = &[
    ("Format", 1, usize::MAX),
    ("StringToJson", 1, 1),
    ("JsonToString", 1, 1),
    ("Array", 0, usize::MAX),
    ("ArrayPartition", 2, 2),
    ("ArrayContains", 2, 2),
    ("ArrayRange", 3, 3),
    ("ArrayGetItem", 2, 2),
    ("ArrayLength", 1, 1),
    ("ArrayUnique", 1, 1),
    ("Base64Encode", 1, 1),
    ("Base64Decode", 1, 1),
    ("Hash", 2, 2),
    ("JsonMerge", 3, 3),
    ("MathRandom", 2, 3),
    ("MathAdd", 2, 2),
    ("StringSplit", 2, 2),
    ("UUID", 0, 0),
];

impl Call {
    /// Parse `States.Name(…)`; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<Call, String> {
        let chars: Vec<char> = text.trim().chars().collect();
        let mut pos = 0;
        let call = parse_call(&chars, &mut pos)?;
        if pos != chars.len() {
            return Err(format!(
                "unexpected text after the intrinsic function at character {pos}"
            ));
        }
        Ok(call)
    }

    /// Evaluate against a scope (paths in arguments read the input, context and variables).
    pub fn eval(&self, scope: &Scope<'_>) -> Result<Value, StatesError> {
        let mut values = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            values.push(match arg {
                Arg::Lit(v) => v.clone(),
                Arg::Path(q) => q.select(scope).map_err(|_| {
                    StatesError::intrinsic(format!(
                        "Invalid path '{}' in States.{}: No results for path",
                        q.source(),
                        self.name
                    ))
                })?,
                Arg::Call(c) => c.eval(scope)?,
            });
        }
        apply(&self.name, &values)
    }
}

fn skip_ws(chars: &[char], pos: &mut usize) {
    while *pos < chars.len() && chars[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_call(chars: &[char], pos: &mut usize) -> Result<Call, String> {
    let start = *pos;
    while *pos < chars.len() && (chars[*pos].is_alphanumeric() || chars[*pos] == '.') {
        *pos += 1;
    }
    let full: String = chars[start..*pos].iter().collect();
    let name = full
        .strip_prefix("States.")
        .ok_or_else(|| format!("'{full}' is not an intrinsic function (States.…)"))?;
    let Some(&(_, min, max)) = FUNCTIONS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("unknown intrinsic function '{full}'"));
    };
    if chars.get(*pos) != Some(&'(') {
        return Err(format!("expected '(' after {full}"));
    }
    *pos += 1;
    let mut args = Vec::new();
    loop {
        skip_ws(chars, pos);
        if chars.get(*pos) == Some(&')') && args.is_empty() {
            *pos += 1;
            break;
        }
        args.push(parse_arg(chars, pos)?);
        skip_ws(chars, pos);
        match chars.get(*pos) {
            Some(',') => *pos += 1,
            Some(')') => {
                *pos += 1;
                break;
            }
            _ => return Err(format!("expected ',' or ')' in the arguments of {full}")),
        }
    }
    if args.len() < min || args.len() > max {
        return Err(format!(
            "{full} takes {} argument(s), got {}",
            if min == max {
                min.to_string()
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            },
            args.len()
        ));
    }
    if name == "Format" && !matches!(args.first(), Some(Arg::Lit(Value::String(_)))) {
        return Err("the first argument of States.Format must be a string literal".into());
    }
    Ok(Call {
        name: name.to_string(),
        args,
    })
}

fn parse_arg(chars: &[char], pos: &mut usize) -> Result<Arg, String> {
    match chars.get(*pos) {
        Some('\'') => {
            *pos += 1;
            let mut s = String::new();
            loop {
                match chars.get(*pos) {
                    None => return Err("string literal not terminated".into()),
                    Some('\'') => {
                        *pos += 1;
                        return Ok(Arg::Lit(Value::String(s)));
                    }
                    Some('\\') => {
                        // keep `\{` and `\}` escaped for States.Format; unescape the rest
                        match chars.get(*pos + 1) {
                            Some(c @ ('{' | '}')) => {
                                s.push('\\');
                                s.push(*c);
                            }
                            Some(c) => s.push(*c),
                            None => return Err("string literal not terminated".into()),
                        }
                        *pos += 2;
                    }
                    Some(c) => {
                        s.push(*c);
                        *pos += 1;
                    }
                }
            }
        }
        Some('$') => {
            let start = *pos;
            let mut depth = 0i32;
            let mut quote = None;
            while let Some(&c) = chars.get(*pos) {
                match (quote, c) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(c),
                    (None, '[' | '(') => depth += 1,
                    (None, ']') => depth -= 1,
                    (None, ')') if depth == 0 => break,
                    (None, ')') => depth -= 1,
                    (None, ',') if depth == 0 => break,
                    (None, c) if c.is_whitespace() && depth == 0 => break,
                    _ => {}
                }
                *pos += 1;
            }
            let text: String = chars[start..*pos].iter().collect();
            Query::parse(&text).map(Arg::Path)
        }
        Some('S') => parse_call(chars, pos).map(Arg::Call),
        Some(_) => {
            let start = *pos;
            while let Some(&c) = chars.get(*pos) {
                if c == ',' || c == ')' || c.is_whitespace() {
                    break;
                }
                *pos += 1;
            }
            let text: String = chars[start..*pos].iter().collect();
            match serde_json::from_str::<Value>(&text) {
                Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Lit(v)),
                _ => Err(format!("invalid argument '{text}'")),
            }
        }
        None => Err("unexpected end of the intrinsic function".into()),
    }
}

fn fail<T>(function: &str, why: impl std::fmt::Display) -> Result<T, StatesError> {
    Err(StatesError::intrinsic(format!(
        "Invalid arguments in States.{function}: {why}"
    )))
}

fn int(function: &str, v: &Value, what: &str) -> Result<i64, StatesError> {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 => Ok(f as i64),
        _ => fail(function, format!("{what} must be an integer, got {v}")),
    }
}

fn string<'a>(function: &str, v: &'a Value, what: &str) -> Result<&'a str, StatesError> {
    v.as_str().map_or_else(
        || fail(function, format!("{what} must be a string, got {v}")),
        Ok,
    )
}

fn array<'a>(function: &str, v: &'a Value) -> Result<&'a Vec<Value>, StatesError> {
    v.as_array().map_or_else(
        || {
            fail(
                function,
                format!("the first argument must be an array, got {v}"),
            )
        },
        Ok,
    )
}

/// Apply the intrinsic `States.<name>` to evaluated arguments.
pub fn apply(name: &str, args: &[Value]) -> Result<Value, StatesError> {
    let a = |i: usize| args.get(i).unwrap_or(&Value::Null);
    Ok(match name {
        "Format" => {
            let template = string(name, a(0), "the template")?;
            let mut out = String::new();
            let mut rest = args[1..].iter();
            let mut chars = template.chars().peekable();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            out.push(n);
                        }
                    }
                    '{' if chars.peek() == Some(&'}') => {
                        chars.next();
                        let Some(v) = rest.next() else {
                            return fail(name, "the template has more {} than arguments");
                        };
                        match v {
                            Value::String(s) => out.push_str(s),
                            Value::Number(_) | Value::Bool(_) | Value::Null => {
                                out.push_str(&v.to_string())
                            }
                            _ => {
                                return fail(
                                    name,
                                    "arguments must be strings, numbers, booleans or null",
                                )
                            }
                        }
                    }
                    c => out.push(c),
                }
            }
            if rest.next().is_some() {
                return fail(name, "the template has fewer {} than arguments");
            }
            Value::String(out)
        }
        "StringToJson" => {
            let s = string(name, a(0), "the argument")?;
            serde_json::from_str(s).or_else(|e| fail(name, format!("not valid JSON: {e}")))?
        }
        "JsonToString" => Value::String(a(0).to_string()),
        "Array" => Value::Array(args.to_vec()),
        "ArrayPartition" => {
            let items = array(name, a(0))?;
            let size = int(name, a(1), "the chunk size")?;
            if size <= 0 {
                return fail(name, "the chunk size must be greater than 0");
            }
            Value::Array(
                items
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            )
        }
        "ArrayContains" => Value::Bool(
            array(name, a(0))?
                .iter()
                .any(|v| crate::jsonata::json_eq(v, a(1))),
        ),
        "ArrayRange" => {
            let start = int(name, a(0), "the start")?;
            let end = int(name, a(1), "the end")?;
            let step = int(name, a(2), "the step")?;
            if step == 0 {
                return fail(name, "the step must not be 0");
            }
            let count = if (end - start).signum() * step.signum() < 0 {
                0
            } else {
                (end - start) / step + 1
            };
            if count > 1000 {
                return fail(name, "the result has more than 1000 items");
            }
            Value::Array((0..count).map(|i| Value::from(start + i * step)).collect())
        }
        "ArrayGetItem" => {
            let items = array(name, a(0))?;
            let index = int(name, a(1), "the index")?;
            if index < 0 || index as usize >= items.len() {
                return fail(name, format!("index {index} is out of bounds"));
            }
            items[index as usize].clone()
        }
        "ArrayLength" => Value::from(array(name, a(0))?.len()),
        "ArrayUnique" => {
            let mut out: Vec<Value> = Vec::new();
            for v in array(name, a(0))? {
                if !out.iter().any(|o| crate::jsonata::json_eq(o, v)) {
                    out.push(v.clone());
                }
            }
            Value::Array(out)
        }
        "Base64Encode" => {
            let s = string(name, a(0), "the argument")?;
            if s.chars().count() > 10_000 {
                return fail(name, "the input exceeds 10000 characters");
            }
            Value::String(base64::engine::general_purpose::STANDARD.encode(s))
        }
        "Base64Decode" => {
            let s = string(name, a(0), "the argument")?;
            if s.len() > 10_000 {
                return fail(name, "the input exceeds 10000 characters");
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s)
                .or_else(|e| fail(name, format!("not valid base64: {e}")))?;
            Value::String(
                String::from_utf8(bytes)
                    .or_else(|_| fail(name, "the decoded data is not UTF-8"))?,
            )
        }
        "Hash" => {
            let data = match a(0) {
                Value::String(s) => s.clone(),
                Value::Null => return fail(name, "the data must not be null"),
                other => other.to_string(),
            };
            if data.chars().count() > 10_000 {
                return fail(name, "the input exceeds 10000 characters");
            }
            let algorithm = string(name, a(1), "the algorithm")?;
            use sha2::Digest;
            let bytes = data.as_bytes();
            Value::String(match algorithm {
                "MD5" => hex::encode(md5::Md5::digest(bytes)),
                "SHA-1" => hex::encode(sha1::Sha1::digest(bytes)),
                "SHA-256" => hex::encode(sha2::Sha256::digest(bytes)),
                "SHA-384" => hex::encode(sha2::Sha384::digest(bytes)),
                "SHA-512" => hex::encode(sha2::Sha512::digest(bytes)),
                other => {
                    return fail(
                        name,
                        format!("the algorithm '{other}' is not one of MD5, SHA-1, SHA-256, SHA-384, SHA-512"),
                    )
                }
            })
        }
        "JsonMerge" => {
            let (Value::Object(x), Value::Object(y)) = (a(0), a(1)) else {
                return fail(name, "the first two arguments must be objects");
            };
            if a(2) != &Value::Bool(false) {
                return fail(
                    name,
                    "only a shallow merge is supported: the third argument must be false",
                );
            }
            let mut out = x.clone();
            out.extend(y.iter().map(|(k, v)| (k.clone(), v.clone())));
            Value::Object(out)
        }
        "MathRandom" => {
            use rand::{Rng, SeedableRng};
            let start = int(name, a(0), "the start")?;
            let end = int(name, a(1), "the end")?;
            if end <= start {
                return fail(name, "the end must be greater than the start");
            }
            Value::from(match args.get(2) {
                Some(seed) => {
                    rand::rngs::StdRng::seed_from_u64(int(name, seed, "the seed")? as u64)
                        .gen_range(start..end)
                }
                None => rand::thread_rng().gen_range(start..end),
            })
        }
        "MathAdd" => {
            let x = int(name, a(0), "the first argument")?;
            let y = int(name, a(1), "the second argument")?;
            Value::from(
                x.checked_add(y)
                    .map_or_else(|| fail(name, "the sum overflows"), Ok)?,
            )
        }
        "StringSplit" => {
            let s = string(name, a(0), "the string")?;
            let delimiters: Vec<char> = string(name, a(1), "the delimiter")?.chars().collect();
            Value::Array(
                s.split(|c| delimiters.contains(&c))
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_string()))
                    .collect(),
            )
        }
        "UUID" => Value::String(uuid::Uuid::new_v4().to_string()),
        other => {
            return Err(StatesError::intrinsic(format!(
                "unknown intrinsic function States.{other}"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn run(text: &str, input: Value) -> Result<Value, StatesError> {
        let vars = Map::from_iter([("greeting".to_string(), json!("hi"))]);
        let ctx = json!({"Execution": {"Name": "exec-1"}});
        Call::parse(text)
            .unwrap()
            .eval(&Scope::jsonpath(&input, &ctx, &vars))
    }

    #[test]
    fn every_intrinsic() {
        let input =
            json!({"name": "Ada", "n": 3, "list": [1, 2, 2, 3], "obj": {"a": 1}, "s": "a,b.c"});
        let cases = [
            (
                "States.Format('Hello {}, you are {}', $.name, $.n)",
                json!("Hello Ada, you are 3"),
            ),
            (
                "States.Format('esc \\{\\} {}', $$.Execution.Name)",
                json!("esc {} exec-1"),
            ),
            ("States.Format('{}!', $greeting)", json!("hi!")),
            ("States.StringToJson('{\"a\": [1]}')", json!({"a": [1]})),
            ("States.JsonToString($.obj)", json!("{\"a\":1}")),
            (
                "States.Array($.name, 1, true, null)",
                json!(["Ada", 1, true, null]),
            ),
            ("States.ArrayPartition($.list, 3)", json!([[1, 2, 2], [3]])),
            ("States.ArrayContains($.list, 3)", json!(true)),
            ("States.ArrayRange(1, 9, 2)", json!([1, 3, 5, 7, 9])),
            ("States.ArrayRange(5, 1, -2)", json!([5, 3, 1])),
            ("States.ArrayGetItem($.list, 3)", json!(3)),
            ("States.ArrayLength($.list)", json!(4)),
            ("States.ArrayUnique($.list)", json!([1, 2, 3])),
            (
                "States.Base64Encode('Data to encode')",
                json!("RGF0YSB0byBlbmNvZGU="),
            ),
            (
                "States.Base64Decode('RGF0YSB0byBlbmNvZGU=')",
                json!("Data to encode"),
            ),
            (
                "States.Hash('input data', 'SHA-1')",
                json!("aaff4a450a104cd177d28d18d74485e8cae074b7"),
            ),
            (
                "States.Hash('abc', 'SHA-256')",
                json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ),
            (
                "States.JsonMerge($.obj, States.StringToJson('{\"b\": 2}'), false)",
                json!({"a": 1, "b": 2}),
            ),
            ("States.MathAdd($.n, -1)", json!(2)),
            ("States.StringSplit($.s, ',.')", json!(["a", "b", "c"])),
            ("States.ArrayLength(States.Array(1, 2))", json!(2)),
        ];
        for (text, want) in cases {
            assert_eq!(run(text, input.clone()).unwrap(), want, "{text}");
        }
        let r = run("States.MathRandom(1, 10)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((1..10).contains(&r));
        assert_eq!(
            run("States.MathRandom(1, 1000, 7)", json!({})).unwrap(),
            run("States.MathRandom(1, 1000, 7)", json!({})).unwrap()
        );
        let id = run("States.UUID()", json!({})).unwrap();
        assert_eq!(
            uuid::Uuid::parse_str(id.as_str().unwrap())
                .unwrap()
                .get_version_num(),
            4
        );
    }

    #[test]
    fn argument_checks_fail_with_intrinsic_failure() {
        let input = json!({"list": [1], "obj": {}, "s": "x"});
        for text in [
            "States.ArrayGetItem($.list, 5)",
            "States.ArrayPartition($.list, 0)",
            "States.ArrayRange(1, 5000, 1)",
            "States.ArrayRange(1, 5, 0)",
            "States.Format('{} {}', 1)",
            "States.Format('{}', $.obj)",
            "States.StringToJson('{nope')",
            "States.Hash('x', 'CRC32')",
            "States.JsonMerge($.obj, $.obj, true)",
            "States.MathAdd(1.5, 1)",
            "States.MathRandom(5, 1)",
            "States.Base64Decode('***')",
            "States.ArrayLength($.s)",
            "States.ArrayLength($.missing)",
        ] {
            let e = run(text, input.clone()).unwrap_err();
            assert_eq!(e.error, "States.IntrinsicFailure", "{text}: {e}");
        }
    }

    #[test]
    fn parse_errors() {
        for text in [
            "States.Nope(1)",
            "States.UUID(1)",
            "States.ArrayLength()",
            "States.Format($.x)",
            "States.Format('a'",
            "Foo.Bar()",
            "States.Array('x') tail",
        ] {
            assert!(Call::parse(text).is_err(), "{text}");
        }
    }
}
