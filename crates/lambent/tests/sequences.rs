//! Sequences end to end: three Python functions and sequences of them from a `lambent.yaml`
//! (with a route naming a sequence) and from `lambent sequence create`, invoked through the
//! CLI, the route and `--async`; the activation records link the sequence's and its steps';
//! a failing step stops the sequence with its error; cycles and missing components are
//! refused when a sequence is written, and a component deleted later fails the step clearly.
//!
//! Sandboxes need root: run as root (as CI does).

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::{eventually, path_str, Server};

/// The handlers: `add` adds 1, `double` doubles, `fail` raises; each appends its name and its
/// request id to the event's trail. The first step of a route gets the HTTP event: its body
/// is the input.
const APP: &str = r#"
import json

def _input(event):
    if "body" in event and "requestContext" in event:
        return json.loads(event["body"])
    return event

def _step(event, context, name, n):
    event = _input(event)
    return {"n": n, "trail": event.get("trail", []) + [name],
            "ids": event.get("ids", []) + [context.aws_request_id]}

def add(event, context):
    return _step(event, context, "add", _input(event)["n"] + 1)

def double(event, context):
    return _step(event, context, "double", _input(event)["n"] * 2)

def fail(event, context):
    raise ValueError("no step after n=%d" % _input(event)["n"])
"#;

const MANIFEST: &str = "functions:
  add: {path: steps, runtime: python3.12, handler: app.add}
  double: {path: steps, runtime: python3.12, handler: app.double}
  fail: {path: steps, runtime: python3.12, handler: app.fail}
sequences:
  calc: {components: [add, double, add], description: (n + 1) * 2 + 1}
routes:
  - {method: POST, path: /calc, function: calc}
";

fn project(home: &Path) -> std::path::PathBuf {
    let dir = home.join("project");
    std::fs::create_dir_all(dir.join("steps")).unwrap();
    std::fs::write(dir.join("steps/app.py"), APP).unwrap();
    std::fs::write(dir.join("lambent.yaml"), MANIFEST).unwrap();
    dir
}

/// The newest activation of `function`, as the API returns it.
fn newest(s: &Server, function: &str) -> Value {
    let page = s
        .cli(&[
            "activations",
            "--function",
            function,
            "--limit",
            "1",
            "-o",
            "json",
        ])
        .ok()
        .json();
    page["activations"][0].clone()
}

/// The answer of the route `POST /calc` to `{"n": n}`, which must be a 200.
fn post_calc(s: &Server, n: i64) -> Value {
    let resp = reqwest::blocking::Client::new()
        .post(format!("{}/calc", s.url))
        .body(json!({ "n": n }).to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

fn activation(s: &Server, id: &str) -> Value {
    s.cli(&["activation", id, "-o", "json"]).ok().json()
}

/// Checks that `seq` (a sequence's record) lists its steps in order, that each names it as
/// parent, ran `functions` in order, and (when given) had the request ids the handlers saw.
#[track_caller]
fn assert_linked(s: &Server, seq: &Value, functions: &[&str], ids: Option<&Value>) {
    let steps: Vec<&str> = seq["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {seq}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), functions.len(), "{seq}");
    if let Some(ids) = ids {
        assert_eq!(
            &json!(steps),
            ids,
            "the steps are the handlers' invocations"
        );
    }
    for (step, function) in steps.iter().zip(functions) {
        let a = activation(s, step);
        assert_eq!(a["function"], *function, "{a}");
        assert_eq!(a["parent"], seq["id"], "{a}");
        assert_eq!(a["trigger"], "sequence", "{a}");
        if a.get("steps").is_none() {
            assert!(
                a["billed_ms"].as_u64().unwrap() >= 1,
                "a step is billed: {a}"
            );
        }
    }
    assert_eq!(
        seq["billed_ms"], 0,
        "the sequence's own record bills nothing"
    );
}

#[test]
fn sequences_through_the_cli_a_route_and_async_with_linked_records() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let out = s.cli(&["deploy", path_str(&project(home.path()))]).ok();
    assert!(
        out.stdout.contains("sequence calc: add → double → add"),
        "{out:?}"
    );
    assert!(out.stdout.contains("route POST /calc -> calc"), "{out:?}");

    // The CLI: each output is the next input.
    let r = s
        .cli(&["invoke", "calc", "--data", r#"{"n": 1}"#])
        .ok()
        .json();
    assert_eq!(r["n"], 5, "(1 + 1) * 2 + 1: {r}");
    assert_eq!(r["trail"], json!(["add", "double", "add"]));
    let seq = newest(&s, "calc");
    assert_eq!(seq["status"], "success");
    assert_eq!(seq["trigger"], "api");
    assert_linked(&s, &seq, &["add", "double", "add"], Some(&r["ids"]));
    // `lambent activation` shows the links, both ways.
    let shown = s.cli(&["activation", seq["id"].as_str().unwrap()]).ok();
    assert!(shown.stdout.contains("steps:"), "{shown:?}");
    for step in seq["steps"].as_array().unwrap() {
        assert!(shown.stdout.contains(step.as_str().unwrap()), "{shown:?}");
    }
    let first = seq["steps"][0].as_str().unwrap();
    let shown = s.cli(&["activation", first]).ok();
    assert!(
        shown.stdout.contains(&format!(
            "step of sequence activation {}",
            seq["id"].as_str().unwrap()
        )),
        "{shown:?}"
    );
    // Its logs: one line per step.
    let logs = s.cli(&["logs", "calc", "--tail", "1"]).ok().stdout;
    assert!(logs.contains("step 3/3 add"), "{logs}");

    // A route: the first step gets the HTTP event, the last one's result is the response.
    let r = post_calc(&s, 10);
    assert_eq!(r["n"], 23, "(10 + 1) * 2 + 1: {r}");
    let seq = newest(&s, "calc");
    assert_eq!(seq["trigger"], "http");
    assert_linked(&s, &seq, &["add", "double", "add"], Some(&r["ids"]));

    // --async: the accepted id is the sequence's activation.
    let out = s
        .cli(&["invoke", "calc", "--async", "--data", r#"{"n": 2}"#])
        .ok();
    let id = out
        .stdout
        .trim()
        .strip_prefix("accepted ")
        .unwrap()
        .to_string();
    let seq = eventually(30, "the async sequence's record", || {
        let a = s.cli(&["activation", &id, "-o", "json"]);
        (a.code == 0).then(|| a.json())
    });
    assert_eq!(seq["status"], "success", "{seq}");
    assert_eq!(seq["trigger"], "async");
    assert_linked(&s, &seq, &["add", "double", "add"], None);

    // A failing step stops the sequence with its error; later steps do not run.
    let out = s
        .cli(&["sequence", "create", "broken", "add", "fail", "double"])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "created sequence broken (revision 1): add → fail → double"
    );
    let out = s
        .cli(&["invoke", "broken", "--data", r#"{"n": 4}"#])
        .failed();
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(body["errorType"], "ValueError", "{out:?}");
    assert_eq!(body["errorMessage"], "no step after n=5", "{out:?}");
    assert!(
        out.stderr.contains("function failed: ValueError"),
        "{out:?}"
    );
    let seq = newest(&s, "broken");
    assert_eq!(seq["status"], "function_error", "{seq}");
    assert_eq!(seq["error_type"], "ValueError");
    assert_eq!(seq["error_message"], "no step after n=5");
    assert_linked(&s, &seq, &["add", "fail"], None);
    assert_eq!(
        activation(&s, seq["steps"][1].as_str().unwrap())["status"],
        "function_error"
    );

    // ls, get, update, rm.
    let listed = s.cli(&["sequence", "ls"]).ok().stdout;
    assert!(
        listed.contains("broken") && listed.contains("add → double → add"),
        "{listed}"
    );
    let got = s
        .cli(&["sequence", "get", "calc", "-o", "json"])
        .ok()
        .json();
    assert_eq!(got["components"], json!(["add", "double", "add"]));
    assert_eq!(got["description"], "(n + 1) * 2 + 1");
    assert_eq!(got["timeout"], 9, "three steps of 3 s");
    let out = s.cli(&["sequence", "update", "broken", "double"]).ok();
    assert!(
        out.stdout
            .starts_with("updated sequence broken (revision 2)"),
        "{out:?}"
    );
    let r = s
        .cli(&["invoke", "broken", "--data", r#"{"n": 4}"#])
        .ok()
        .json();
    assert_eq!(r["n"], 8);
    let missing = s.cli(&["sequence", "update", "nope", "add"]).failed();
    assert!(
        missing.stderr.contains("sequence 'nope' does not exist"),
        "{missing:?}"
    );
    s.cli(&["sequence", "rm", "broken"]).ok();
    s.cli(&["invoke", "broken"]).failed();
    // A function of code is not a sequence: not listed, not deleted as one, not replaced.
    let out = s.cli(&["sequence", "rm", "add"]).failed();
    assert!(
        out.stderr.contains("sequence 'add' does not exist"),
        "{out:?}"
    );
    let out = s.cli(&["sequence", "create", "add", "double"]).failed();
    assert!(
        out.stderr
            .contains("'add' is a function of runtime python3.12"),
        "{out:?}"
    );
}

#[test]
fn cycles_and_missing_components_are_refused() {
    let home = tempfile::tempdir().unwrap();
    // `up --deploy` creates the file's sequences and routes too, as `lambent deploy` does.
    let project = project(home.path());
    let s = Server::start(home.path(), &["--deploy", path_str(&project)]);
    eventually(60, "the sequence deployed by up", || {
        let line = s.line();
        (line == "sequence calc: add → double → add").then_some(())
    });
    assert_eq!(s.line(), "route POST /calc -> calc");
    let r = post_calc(&s, 1);
    assert_eq!(r["n"], 5, "(1 + 1) * 2 + 1: {r}");

    let out = s.cli(&["sequence", "create", "x", "add", "nope"]).failed();
    assert!(
        out.stderr
            .contains("component 'nope' of sequence 'x' does not exist in namespace 'default'"),
        "{out:?}"
    );
    let out = s
        .cli(&["sequence", "create", "x", "add", "bad name"])
        .failed();
    assert!(
        out.stderr.contains("invalid function name 'bad name'"),
        "{out:?}"
    );

    // Directly, and through another sequence.
    s.cli(&["sequence", "create", "inner", "add"]).ok();
    s.cli(&["sequence", "create", "outer", "double", "inner"])
        .ok();
    let out = s
        .cli(&["sequence", "update", "inner", "add", "inner"])
        .failed();
    assert!(
        out.stderr
            .contains("sequence 'inner' would contain itself: inner → inner"),
        "{out:?}"
    );
    let out = s.cli(&["sequence", "update", "inner", "outer"]).failed();
    assert!(
        out.stderr
            .contains("sequence 'inner' would contain itself: inner → outer → inner"),
        "{out:?}"
    );
    // Nested without a cycle is fine: (3 * 2) + 1, then + 1.
    s.cli(&["sequence", "create", "twice", "outer", "add"]).ok();
    let r = s
        .cli(&["invoke", "twice", "--data", r#"{"n": 3}"#])
        .ok()
        .json();
    assert_eq!(r["n"], 8, "{r}");
    assert_eq!(r["trail"], json!(["double", "add", "add"]));
    let twice = newest(&s, "twice");
    assert_linked(&s, &twice, &["outer", "add"], None);
    let outer = activation(&s, twice["steps"][0].as_str().unwrap());
    assert_linked(&s, &outer, &["double", "inner"], None);

    // A component deleted after the sequence was made: the step fails, saying which.
    s.cli(&["rm", "double"]).ok();
    let out = s
        .cli(&["invoke", "outer", "--data", r#"{"n": 1}"#])
        .failed();
    let body: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        body["errorType"], "Lambent.SequenceComponentNotFound",
        "{out:?}"
    );
    assert_eq!(
        body["errorMessage"],
        "step 1 of sequence 'outer': function 'double' does not exist in namespace 'default': deploy it or update the sequence"
    );
}
