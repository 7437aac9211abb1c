//! The workflow commands end to end: a `lambent.yaml` with functions and `workflows:` (inline
//! and from a file) deployed by `lambent deploy`, then `lambent workflow
//! deploy|ls|get|rm|start` and `lambent execution ls|show|stop` against a real server running
//! real Python functions, `lambent usage` showing the state transitions at the price given
//! to `lambent up`, and HTTP routes starting executions.

mod support;

use serde_json::{json, Value};
use support::{eventually, path_str, Server};

const LAMBDA: &str = "arn:aws:lambda:us-east-1:default:function";

fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A project: `double` (n × 2), `boom` (raises ValueError), and four workflows.
fn project(dir: &std::path::Path) {
    write(
        &dir.join("double/app.py"),
        "def handler(event, context):\n    return {'n': event['n'] * 2}\n",
    );
    write(
        &dir.join("boom/app.py"),
        "def handler(event, context):\n    raise ValueError('no luck')\n",
    );
    write(
        &dir.join("flows/standard.yaml"),
        &format!(
            "StartAt: Prep\nStates:\n  Prep: {{Type: Pass, Next: Double}}\n  \
             Double: {{Type: Task, Resource: \"{LAMBDA}:double\", Next: Again}}\n  \
             Again: {{Type: Task, Resource: \"{LAMBDA}:double\", End: true}}\n"
        ),
    );
    let manifest = format!(
        r#"functions:
  double: {{runtime: python3.12, handler: app.handler}}
  boom: {{runtime: python3.12, handler: app.handler}}
workflows:
  quick:
    type: EXPRESS
    definition:
      StartAt: Double
      States:
        Double: {{Type: Task, Resource: "{LAMBDA}:double", End: true}}
    routes: [POST /quick]
  steps:
    definition: flows/standard.yaml
    routes: [{{method: POST, path: /steps}}]
  failing:
    definition:
      StartAt: Try
      States:
        Try:
          Type: Task
          Resource: "{LAMBDA}:boom"
          Retry: [{{ErrorEquals: [States.ALL], IntervalSeconds: 1, MaxAttempts: 1}}]
          End: true
  waiting:
    definition: '{{"StartAt": "Nap", "States": {{"Nap": {{"Type": "Wait", "Seconds": 300, "End": true}}}}}}'
"#
    );
    write(&dir.join("lambent.yaml"), &manifest);
}

#[test]
fn workflows_deploy_from_lambent_yaml_run_from_the_cli_and_are_metered() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &["--price-per-transition", "0.001"]);
    let app = home.path().join("app");
    project(&app);

    // lambent deploy: the functions, then the workflows; a second deploy changes nothing.
    let out = s.cli(&["deploy", path_str(&app)]).ok();
    for line in [
        "workflow quick created (EXPRESS, revision 1)",
        "workflow steps created (STANDARD, revision 1)",
        "workflow failing created (STANDARD, revision 1)",
        "workflow waiting created (STANDARD, revision 1)",
    ] {
        assert!(out.stdout.contains(line), "{line} not in {}", out.stdout);
    }
    let out = s.cli(&["deploy", path_str(&app)]).ok();
    assert!(
        out.stdout
            .contains("workflow steps unchanged (STANDARD, revision 1)"),
        "{}",
        out.stdout
    );

    // workflow ls / get, as tables and as the API's JSON.
    let out = s.cli(&["workflow", "ls"]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{}", out.stdout);
    for (name, kind) in [("quick", "EXPRESS"), ("steps", "STANDARD")] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(name) && l.contains(kind)),
            "{name} {kind} not in {}",
            out.stdout
        );
    }
    let names: Vec<String> = s.cli(&["workflow", "ls", "-o", "json"]).ok().json()["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["failing", "quick", "steps", "waiting"]);
    let out = s.cli(&["workflow", "get", "steps"]).ok();
    assert!(out
        .stdout
        .contains("arn:aws:states:us-east-1:default:stateMachine:steps"));
    assert!(
        out.stdout.contains("\"StartAt\": \"Prep\""),
        "{}",
        out.stdout
    );
    let got = s
        .cli(&["workflow", "get", "quick", "-o", "json"])
        .ok()
        .json();
    assert_eq!(got["type"], "EXPRESS");
    assert_eq!(got["definition"]["States"]["Double"]["Type"], "Task");

    // workflow deploy from a file (and an update), then rm.
    let def = home.path().join("extra.json");
    write(
        &def,
        r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}}"#,
    );
    let out = s
        .cli(&[
            "workflow",
            "deploy",
            "extra",
            "--definition",
            path_str(&def),
            "--type",
            "express",
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "workflow extra created (EXPRESS, revision 1)"
    );
    let out = s
        .cli(&[
            "workflow",
            "deploy",
            "extra",
            "--type",
            "EXPRESS",
            "--definition",
            r#"{"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": true}}}"#,
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "workflow extra updated (EXPRESS, revision 2)"
    );
    let out = s.cli(&["workflow", "start", "extra", "--sync"]).ok();
    assert_eq!(out.stdout.trim(), "2");
    // A bad definition is refused with the state and field at fault.
    let out = s
        .cli(&[
            "workflow",
            "deploy",
            "bad",
            "--definition",
            r#"{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}}"#,
        ])
        .failed();
    assert!(out.stderr.contains("/States/A/Next"), "{}", out.stderr);
    // The type cannot change.
    let out = s
        .cli(&[
            "workflow",
            "deploy",
            "extra",
            "--definition",
            path_str(&def),
        ])
        .failed();
    assert!(out.stderr.contains("cannot change"), "{}", out.stderr);
    s.cli(&["workflow", "rm", "extra"]).ok();
    let out = s.cli(&["workflow", "get", "extra"]).failed();
    assert!(
        out.stderr.contains("State Machine Does Not Exist"),
        "{}",
        out.stderr
    );
    s.cli(&["workflow", "rm", "extra"]).failed();

    // workflow start --sync: Express answered in memory, Standard committed and waited for.
    let out = s
        .cli(&[
            "workflow",
            "start",
            "quick",
            "--input",
            r#"{"n": 21}"#,
            "--sync",
        ])
        .ok();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({"n": 42})
    );
    let out = s
        .cli(&[
            "workflow",
            "start",
            "steps",
            "--input",
            r#"{"n": 3}"#,
            "--sync",
            "--name",
            "run1",
        ])
        .ok();
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!({"n": 12})
    );

    // An asynchronous start prints the ARN; the execution is listed and ends.
    let out = s
        .cli(&[
            "workflow",
            "start",
            "steps",
            "-i",
            r#"{"n": 1}"#,
            "--name",
            "run2",
        ])
        .ok();
    let arn = "arn:aws:states:us-east-1:default:execution:steps:run2";
    assert_eq!(out.stdout.trim(), format!("started {arn}"));
    eventually(30, "run2 to succeed", || {
        let list = s
            .cli(&["execution", "ls", "steps", "-o", "json"])
            .ok()
            .json();
        let done = list["executions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "run2" && e["status"] == "SUCCEEDED");
        done.then_some(())
    });
    let out = s.cli(&["execution", "ls", "steps"]).ok();
    assert!(out.stdout.lines().next().unwrap().starts_with("NAME"));
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("run1") && l.contains("SUCCEEDED")),
        "{}",
        out.stdout
    );

    // execution show: a timeline of the states, by ARN or by names.
    let out = s.cli(&["execution", "show", arn]).ok();
    assert!(out.stdout.contains("status:"), "{}", out.stdout);
    assert!(out.stdout.contains("SUCCEEDED"), "{}", out.stdout);
    let timeline: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("STATE"))
        .collect();
    assert_eq!(timeline.len(), 4, "{}", out.stdout);
    for (line, state) in timeline[1..].iter().zip(["Prep", "Double", "Again"]) {
        assert!(line.starts_with(state), "{line}");
        assert!(line.contains(" ms"), "no duration: {line}");
    }
    let shown = s
        .cli(&["execution", "show", "steps", "run2", "-o", "json"])
        .ok()
        .json();
    assert_eq!(shown["execution"]["output"], json!({"n": 4}));
    assert_eq!(shown["timeline"].as_array().unwrap().len(), 3);
    assert_eq!(shown["events"][0]["type"], "ExecutionStarted");

    // A failing Task: the sync start exits 1 with the error; the timeline shows the retry.
    let out = s
        .cli(&["workflow", "start", "failing", "--sync", "--name", "f1"])
        .failed();
    assert!(out.stderr.contains("FAILED"), "{}", out.stderr);
    assert!(out.stderr.contains("ValueError"), "{}", out.stderr);
    let shown = s
        .cli(&["execution", "show", "failing", "f1", "-o", "json"])
        .ok()
        .json();
    let try_state = &shown["timeline"][0];
    assert_eq!(try_state["state"], "Try");
    assert_eq!(try_state["retries"], 1);
    assert_eq!(try_state["error"], "ValueError");
    assert!(
        try_state["duration_ms"].as_f64().unwrap() >= 1000.0,
        "{try_state}"
    );
    let out = s.cli(&["execution", "show", "failing", "f1"]).ok();
    let row = out.stdout.lines().find(|l| l.starts_with("Try")).unwrap();
    assert!(row.contains("ValueError"), "{row}");

    // execution stop: a Standard execution in a Wait ends ABORTED.
    s.cli(&["workflow", "start", "waiting", "--name", "w1"])
        .ok();
    let out = s.cli(&["execution", "stop", "waiting", "w1"]).ok();
    assert_eq!(
        out.stdout.trim(),
        "aborted arn:aws:states:us-east-1:default:execution:waiting:w1"
    );
    let shown = s
        .cli(&["execution", "show", "waiting", "w1", "-o", "json"])
        .ok()
        .json();
    assert_eq!(shown["execution"]["status"], "ABORTED");
    let out = s.cli(&["execution", "show", "waiting", "nope"]).failed();
    assert!(
        out.stderr.contains("Execution Does Not Exist"),
        "{}",
        out.stderr
    );

    // usage: transitions per workflow and their cost at the price given to `up`.
    let usage = s.cli(&["usage", "-o", "json"]).ok().json();
    let rows = usage["workflows"]["rows"].as_array().unwrap();
    let steps = rows.iter().find(|r| r["workflow"] == "steps").unwrap();
    assert_eq!(steps["executions"], 2);
    // Each run enters Prep, Double and Again.
    assert_eq!(steps["transitions"], 6);
    assert!(
        (steps["cost"].as_f64().unwrap() - 0.006).abs() < 1e-12,
        "{steps}"
    );
    assert_eq!(usage["workflows"]["per_transition"], 0.001);
    let out = s.cli(&["usage"]).ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("steps"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells, ["steps", "2", "6", "0.00600000"]);
    assert!(
        out.stdout.contains("price: $1 per 1,000 state transitions"),
        "{}",
        out.stdout
    );

    // Routes: an Express workflow answers StartSyncExecution's response, a Standard one
    // StartExecution's (API Gateway's Step Functions integrations), the body as input.
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{}/quick", s.url))
        .body(r#"{"n": 5}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["status"], "SUCCEEDED", "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(answer["output"].as_str().unwrap()).unwrap(),
        json!({"n": 10})
    );
    let r = http
        .post(format!("{}/steps", s.url))
        .body(r#"{"n": 7}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().unwrap();
    let arn = answer["executionArn"].as_str().unwrap().to_string();
    assert!(
        arn.starts_with("arn:aws:states:us-east-1:default:execution:steps:"),
        "{answer}"
    );
    assert!(answer["startDate"].as_f64().is_some(), "{answer}");
    let shown = eventually(30, "the routed execution to end", || {
        let v = s
            .cli(&["execution", "show", &arn, "-o", "json"])
            .ok()
            .json();
        (v["execution"]["status"] != "RUNNING").then_some(v)
    });
    assert_eq!(shown["execution"]["output"], json!({"n": 28}));
    // A body that is not JSON is refused as API Gateway does.
    let r = http
        .post(format!("{}/quick", s.url))
        .body("nope")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // route add --workflow, listed as such; an unknown workflow is refused.
    let out = s
        .cli(&["route", "add", "PUT", "/again", "--workflow", "quick"])
        .ok();
    assert!(
        out.stdout.contains("route PUT /again -> workflow quick"),
        "{}",
        out.stdout
    );
    let out = s.cli(&["route", "ls"]).ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains("/steps") && l.contains("workflow steps")),
        "{}",
        out.stdout
    );
    let out = s
        .cli(&["route", "add", "PUT", "/none", "--workflow", "nope"])
        .failed();
    assert!(
        out.stderr.contains("workflow 'nope' does not exist"),
        "{}",
        out.stderr
    );
    let r = http
        .put(format!("{}/again", s.url))
        .body(r#"{"n": 1}"#)
        .send()
        .unwrap();
    let answer: Value = r.json().unwrap();
    assert_eq!(answer["output"], r#"{"n":2}"#);

    // A schedule and a topic subscription start executions (the scheduled event, the SNS
    // event as input), through the durable event queue.
    let echo = r#"{"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}}"#;
    s.cli(&["workflow", "deploy", "echo", "--definition", echo])
        .ok();
    s.cli(&[
        "schedule",
        "add",
        "tick",
        "--workflow",
        "echo",
        "--rate",
        "1 second",
    ])
    .ok();
    s.cli(&["topic", "create", "news"]).ok();
    let out = s
        .cli(&["topic", "subscribe", "news", "--workflow", "echo"])
        .ok();
    assert!(
        out.stdout.contains("subscribed workflow echo to news"),
        "{}",
        out.stdout
    );
    s.cli(&["topic", "publish", "news", "hello"]).ok();
    // And a bucket notification: each upload's S3 event starts an execution.
    s.cli(&["bucket", "create", "uploads"]).ok();
    let out = s
        .cli(&["bucket", "notify", "uploads", "--workflow", "echo"])
        .ok();
    assert!(out.stdout.contains("workflow echo"), "{}", out.stdout);
    let upload = app.join("photo.jpg");
    write(&upload, "not really a photo");
    s.cli(&[
        "object",
        "put",
        "uploads",
        "photo.jpg",
        upload.to_str().unwrap(),
    ])
    .ok();
    let inputs = eventually(
        30,
        "executions from the schedule, the topic and the bucket",
        || {
            let list = s
                .cli(&["execution", "ls", "echo", "-o", "json"])
                .ok()
                .json();
            let mut inputs = Vec::new();
            for e in list["executions"].as_array().unwrap() {
                let name = e["name"].as_str().unwrap();
                let shown = s
                    .cli(&["execution", "show", "echo", name, "-o", "json"])
                    .ok()
                    .json();
                inputs.push(shown["execution"]["output"].clone());
            }
            let scheduled = inputs.iter().any(|i| i["detail-type"] == "Scheduled Event");
            let published = inputs
                .iter()
                .any(|i| i["Records"][0]["Sns"]["Message"] == "hello");
            let uploaded = inputs
                .iter()
                .any(|i| i["Records"][0]["s3"]["object"]["key"] == "photo.jpg");
            (scheduled && published && uploaded).then_some(inputs)
        },
    );
    assert!(inputs.len() >= 3);
    s.cli(&["schedule", "rm", "tick"]).ok();
    // Triggers of a workflow that does not exist are refused, saying so.
    let missing: [(&[&str], &str); 3] = [
        (
            &[
                "schedule",
                "add",
                "never",
                "--workflow",
                "nope",
                "--rate",
                "1 hour",
            ],
            "workflow 'nope' does not exist",
        ),
        (
            &["topic", "subscribe", "news", "--workflow", "nope"],
            "workflow 'nope' does not exist",
        ),
        (
            &["bucket", "notify", "uploads", "--workflow", "nope"],
            "state machine 'nope' does not exist",
        ),
    ];
    for (args, message) in missing {
        let out = s.cli(args).failed();
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
    }
}
