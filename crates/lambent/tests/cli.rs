//! End-to-end tests of the `lambent` binary: `lambent up` on port 0 in a temporary data dir,
//! then the other commands against it, as a user would run them.
//!
//! Sandboxes need root: run as root (as CI does).

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::*;

#[test]
fn examples_deploy_invoke_list_get_logs_and_rm() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let ex = examples();

    let out = s
        .cli(&[
            "deploy",
            path_str(&ex.join("hello-python")),
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--env",
            "GREETING=hi",
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "deployed hello-python (python3.12, revision 1)"
    );
    s.cli(&[
        "deploy",
        path_str(&ex.join("hello-node")),
        "--runtime",
        "nodejs20.x",
        "--handler",
        "index.handler",
    ])
    .ok();
    let out = s
        .cli(&[
            "deploy",
            path_str(&ex.join("hello-provided")),
            "--runtime",
            "provided.al2023",
            "-o",
            "json",
        ])
        .ok();
    let f = out.json();
    assert_eq!(f["name"], "hello-provided");
    assert_eq!(f["handler"], "bootstrap");
    assert_eq!(f["revision"], 1);

    // Each runtime answers; the Python one counts its invocations in a warm sandbox.
    let py = s
        .cli(&["invoke", "hello-python", "--data", r#"{"name":"you"}"#])
        .ok()
        .json();
    assert_eq!(py["message"], "Hello, you!");
    assert_eq!(py["runtime"], "python");
    assert_eq!(py["invocations"], 1);
    assert!(!py["request_id"].as_str().unwrap().is_empty());
    let py = s.cli_stdin(
        &["invoke", "hello-python", "--data", "-"],
        r#"{"name":"stdin"}"#,
    );
    let py = py.ok().json();
    assert_eq!(py["message"], "Hello, stdin!");
    assert_eq!(py["invocations"], 2, "the warm sandbox is reused");

    let event = home.path().join("event.json");
    std::fs::write(&event, r#"{"name":"file"}"#).unwrap();
    let node = s
        .cli(&[
            "invoke",
            "hello-node",
            "--data",
            &format!("@{}", event.display()),
        ])
        .ok()
        .json();
    assert_eq!(node["message"], "Hello, file!");
    assert_eq!(node["runtime"], "node");
    assert_eq!(node["invocations"], 1);

    let sh = s
        .cli(&["invoke", "hello-provided", "--data", r#"{"x":[1,2]}"#])
        .ok()
        .json();
    assert_eq!(sh["message"], "Hello from a shell bootstrap!");
    assert_eq!(sh["event"], serde_json::json!({"x": [1, 2]}));

    // ls, as a table and as the API's JSON.
    let table = s.cli(&["ls"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{table}");
    assert!(
        lines[0].contains("RUNTIME") && lines[0].contains("UPDATED"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    let list = s.cli(&["ls", "-o", "json"]).ok().json();
    let names: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["hello-node", "hello-provided", "hello-python"]);

    // get
    let got = s.cli(&["get", "hello-python"]).ok().stdout;
    assert!(
        got.contains("python3.12") && got.contains("GREETING=hi"),
        "{got}"
    );
    let got = s.cli(&["get", "hello-python", "-o", "json"]).ok().json();
    assert_eq!(got["env"]["GREETING"], "hi");
    assert_eq!(got["memory"], 128);

    // logs: the last activation, Lambda-shaped.
    let logs = s.cli(&["logs", "hello-python", "--tail", "1"]).ok().stdout;
    assert!(logs.contains("REPORT RequestId:"), "{logs}");
    assert!(logs.contains("greeting stdin"), "{logs}");
    assert!(!logs.contains("greeting you"), "only the last one: {logs}");
    let logs = s.cli(&["logs", "hello-python", "-o", "json"]).ok().json();
    assert_eq!(logs["logs"].as_array().unwrap().len(), 2);

    // rm, then the function is gone.
    let out = s.cli(&["rm", "hello-node"]).ok();
    assert_eq!(out.stdout.trim(), "deleted hello-node");
    let out = s.cli(&["invoke", "hello-node"]).failed();
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("hello-node"),
        "{out:?}"
    );
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    s.cli(&["rm", "hello-node"]).failed();
    s.cli(&["get", "hello-node"]).failed();
}

#[test]
fn manifest_deploys_many_functions_and_function_errors_exit_1() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let app = home.path().join("app");
    for (dir, code) in [
        (
            "ok",
            "def handler(event, context):\n    import os\n    return {'mode': os.environ['MODE']}\n",
        ),
        (
            "boom",
            "def handler(event, context):\n    raise ValueError('boom: ' + str(event))\n",
        ),
    ] {
        std::fs::create_dir_all(app.join(dir)).unwrap();
        std::fs::write(app.join(dir).join("main.py"), code).unwrap();
    }
    std::fs::write(
        app.join("lambent.yaml"),
        "functions:\n  \
           fine: {path: ok, runtime: python3.12, handler: main.handler, env: {MODE: yaml}}\n  \
           boom: {runtime: python3.12, handler: main.handler, timeout: 5}\n",
    )
    .unwrap();

    let out = s.cli(&["deploy", path_str(&app)]).ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "deployed fine (python3.12, revision 1)",
            "deployed boom (python3.12, revision 1)"
        ]
    );
    let fine = s.cli(&["invoke", "fine"]).ok().json();
    assert_eq!(fine["mode"], "yaml");
    let boom = s.cli(&["get", "boom", "-o", "json"]).ok().json();
    assert_eq!(boom["timeout"], 5);

    // --name picks one function; flags override the file.
    let out = s
        .cli(&[
            "deploy",
            path_str(&app),
            "--name",
            "fine",
            "--env",
            "MODE=flag",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(out.json()["revision"], 2);
    assert_eq!(s.cli(&["invoke", "fine"]).ok().json()["mode"], "flag");
    let out = s
        .cli(&["deploy", path_str(&app), "--handler", "x.y"])
        .failed();
    assert!(out.stderr.contains("--name"), "{out:?}");

    // A function's failure: its error JSON on stdout, the error type on stderr, exit 1.
    let out = s.cli(&["invoke", "boom", "--data", r#"{"a":1}"#]).failed();
    let err = out.json();
    assert_eq!(err["errorType"], "ValueError");
    assert!(
        err["errorMessage"].as_str().unwrap().contains("boom"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("error: function failed: ValueError"),
        "{out:?}"
    );

    // A warm deploy of code that cannot initialize says so and exits 1; the deploy stands.
    let out = s
        .cli(&[
            "deploy",
            path_str(&app.join("boom")),
            "--name",
            "broken",
            "--runtime",
            "python3.12",
            "--handler",
            "missing.handler",
            "--warm",
        ])
        .failed();
    assert!(out.stdout.contains("deployed broken"), "{out:?}");
    assert!(out.stderr.contains("missing"), "{out:?}");
    s.cli(&["get", "broken"]).ok();
}

#[test]
fn bad_inputs_exit_1_with_a_clear_message() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let py = examples().join("hello-python");
    let py = path_str(&py);

    let out = s
        .cli(&[
            "deploy",
            py,
            "--name",
            "bad name",
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
        ])
        .failed();
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains("bad name"),
        "{out:?}"
    );
    let out = s.cli(&["deploy", py, "--runtime", "cobol"]).failed();
    assert!(out.stderr.contains("cobol"), "{out:?}");
    let out = s.cli(&["deploy", py]).failed();
    assert!(out.stderr.contains("--runtime"), "no runtime: {out:?}");

    s.cli(&[
        "deploy",
        py,
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
    let out = s
        .cli(&["invoke", "hello-python", "--data", "{bad"])
        .failed();
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.to_lowercase().contains("json"),
        "{out:?}"
    );

    // lambent.yaml with a typo names the key.
    let dir = home.path().join("typo");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("app.py"), "def handler(e, c):\n    return 1\n").unwrap();
    std::fs::write(
        dir.join("lambent.yaml"),
        "runtime: python3.12\nhandler: app.handler\nmemroy: 256\n",
    )
    .unwrap();
    let out = s.cli(&["deploy", path_str(&dir)]).failed();
    assert!(out.stderr.contains("memroy"), "{out:?}");

    // A wrong key gets a hint; no server at all says so.
    let out = run(
        &["ls"],
        &[("LAMBENT_URL", &s.url), ("LAMBENT_API_KEY", "wrong")],
        None,
    )
    .failed();
    assert!(out.stderr.contains("LAMBENT_API_KEY"), "{out:?}");
    let out = run(&["ls"], &[("LAMBENT_URL", "http://127.0.0.1:9")], None).failed();
    assert!(
        out.stderr
            .contains("cannot reach Lambent at http://127.0.0.1:9: is 'lambent up' running?"),
        "{out:?}"
    );
    // Bad usage is clap's exit code 2.
    assert_eq!(s.cli(&["invoke"]).code, 2);
}

#[test]
fn up_deploys_examples_writes_the_config_and_functions_survive_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &["--deploy", path_str(&examples())]);
    for name in ["hello-python", "hello-node", "hello-provided"] {
        let line = s.line();
        assert!(
            line.starts_with(&format!("deployed {name} (")) && line.contains("revision 1"),
            "{line}"
        );
    }
    let hint = s.line();
    assert!(
        hint.starts_with("try: curl")
            && hint.contains(&s.key)
            && hint.contains(&format!("{}/v1/functions/hello-python/invoke", s.url)),
        "{hint}"
    );
    assert!(s.line().contains("lambent invoke hello-python"));

    // The config file lets the CLI find the server without any environment.
    let config = home.path().join("config/lambent/config.json");
    let c: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    assert_eq!(c["url"], s.url.as_str());
    assert_eq!(c["api_key"], s.key.as_str());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let config_home = home.path().join("config");
    let with_config = [("XDG_CONFIG_HOME", path_str(&config_home))];
    let out = run(
        &["invoke", "hello-node", "--data", r#"{"name":"cfg"}"#],
        &with_config,
        None,
    );
    assert_eq!(out.ok().json()["message"], "Hello, cfg!");

    // Crash (SIGKILL) and start again on the same data dir: same key, same functions.
    let key = s.key.clone();
    s.kill();
    let s = Server::start(home.path(), &[]);
    assert_eq!(s.key, key, "the generated key is kept in the data dir");
    let list = s.cli(&["ls", "-o", "json"]).ok().json();
    assert_eq!(list["functions"].as_array().unwrap().len(), 3);
    let py = s
        .cli(&["invoke", "hello-python", "--data", r#"{"name":"again"}"#])
        .ok()
        .json();
    assert_eq!(py["message"], "Hello, again!");
    assert_eq!(py["invocations"], 1, "a new sandbox after the restart");
}

#[test]
fn dev_redeploys_on_change() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let code = home.path().join("dev-fn");
    std::fs::create_dir_all(&code).unwrap();
    let write_app = |greeting: &str| {
        std::fs::write(
            code.join("app.py"),
            format!("def handler(event, context):\n    return '{greeting}'\n"),
        )
        .unwrap()
    };
    write_app("v1");

    let mut dev = Command::new(BIN)
        .args(["dev", path_str(&code), "--runtime", "python3.12"])
        .args(["--handler", "app.handler"])
        .env("LAMBENT_URL", &s.url)
        .env("LAMBENT_API_KEY", &s.key)
        .env("XDG_CONFIG_HOME", home.path().join("dev-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = dev.stdout.take().unwrap();
    let _dev = Kill(dev);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |prefix: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("lambent dev printed no line starting with {prefix}"));
        if line.starts_with(prefix) {
            return line;
        }
    };
    assert_eq!(
        wait_for("using Lambent at"),
        format!("using Lambent at {}", s.url)
    );
    assert_eq!(
        wait_for("deployed"),
        "deployed dev-fn (python3.12, revision 1)"
    );
    wait_for("watching");
    assert_eq!(s.cli(&["invoke", "dev-fn"]).ok().stdout.trim(), "\"v1\"");

    write_app("v2");
    let line = wait_for("redeployed");
    assert!(line.starts_with("redeployed dev-fn in "), "{line}");
    assert_eq!(s.cli(&["invoke", "dev-fn"]).ok().stdout.trim(), "\"v2\"");
    // Noise such as editor swap files does not redeploy.
    std::fs::write(code.join(".app.py.swp"), "x").unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(500)).is_err());
}

/// A Python function in `<home>/<name>` that prints a line and fails when the event asks to.
fn flaky_function(home: &Path, name: &str) -> PathBuf {
    let dir = home.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("app.py"),
        "def handler(event, context):\n    print('ran', event)\n    \
         if event.get('fail'):\n        raise ValueError('asked to fail')\n    return 'ok'\n",
    )
    .unwrap();
    dir
}

#[test]
fn activations_and_usage_report_what_ran() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &["--price-per-request", "0.001"]);
    let code = flaky_function(home.path(), "flaky");
    s.cli(&[
        "deploy",
        path_str(&code),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
        "--memory",
        "256",
    ])
    .ok();
    s.cli(&["invoke", "flaky"]).ok();
    s.cli(&["invoke", "flaky", "--data", r#"{"n":2}"#]).ok();
    s.cli(&["invoke", "flaky", "--data", r#"{"fail":true}"#])
        .failed();

    // Newest first, with their statuses.
    let list = s
        .cli(&["activations", "--function", "flaky", "-o", "json"])
        .ok()
        .json();
    let rows = list["activations"].as_array().unwrap();
    let statuses: Vec<&str> = rows.iter().map(|a| a["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["function_error", "success", "success"], "{list}");
    assert!(rows.iter().all(|a| a["function"] == "flaky"));
    assert_eq!(rows[2]["cold"], true, "the first one started a sandbox");
    assert_eq!(rows[0]["error_type"], "ValueError");
    let newest = rows[0]["id"].as_str().unwrap().to_string();
    let oldest = rows[2]["id"].as_str().unwrap().to_string();

    let two = s
        .cli(&["activations", "--limit", "2", "-o", "json"])
        .ok()
        .json();
    assert_eq!(two["activations"].as_array().unwrap().len(), 2);
    let failed = s
        .cli(&[
            "activations",
            "--status",
            "function_error",
            "--since",
            "1h",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(failed["activations"].as_array().unwrap().len(), 1);
    let table = s.cli(&["activations", "--function", "flaky"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("DURATION"),
        "{table}"
    );
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[1].contains(&newest) && lines[1].contains("ValueError"),
        "{table}"
    );
    assert!(
        lines[3].contains("/256"),
        "max used / configured MB: {table}"
    );

    // One activation: the record, then its logs.
    let out = s.cli(&["activation", &oldest]).ok().stdout;
    assert!(out.contains("status:") && out.contains("success"), "{out}");
    assert!(out.contains("cold:") && out.contains("yes ("), "{out}");
    assert!(out.contains("init duration:"), "{out}");
    assert!(
        out.contains("init phases:") && out.contains("sandbox ") && out.contains(" ms, import "),
        "{out}"
    );
    assert!(
        out.contains(&format!("REPORT RequestId: {oldest}")),
        "{out}"
    );
    assert!(out.contains("ran {}"), "the function's output: {out}");
    let one = s.cli(&["activation", &newest, "-o", "json"]).ok().json();
    assert_eq!(one["id"], newest.as_str());
    assert_eq!(one["error_message"], "asked to fail");
    let out = s.cli(&["activation", "no-such-id"]).failed();
    assert!(out.stderr.contains("no-such-id"), "{out:?}");

    // Usage counts them, at the prices `up` was given.
    let usage = s.cli(&["usage", "-o", "json"]).ok().json();
    let row = &usage["rows"][0];
    assert_eq!(row["key"], "default/flaky", "{usage}");
    assert_eq!(
        (row["invocations"].as_u64(), row["errors"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(usage["total"]["invocations"], 3);
    assert_eq!(usage["prices"]["per_request"], 0.001);
    let cost = usage["total"]["cost"].as_f64().unwrap();
    let gb_s = usage["total"]["gb_seconds"].as_f64().unwrap();
    let per_gb_s = usage["prices"]["per_gb_second"].as_f64().unwrap();
    assert!((cost - (0.003 + gb_s * per_gb_s)).abs() < 1e-12, "{usage}");
    assert_eq!(usage["rightsizing"][0]["memory_mb"], 256);
    assert_eq!(
        usage["rightsizing"][0]["recommended_mb"], 128,
        "a small function needs less: {usage}"
    );

    let table = s.cli(&["usage", "--since", "1d"]).ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("KEY") && lines[0].contains("COST($)"),
        "{table}"
    );
    assert!(lines[1].starts_with("default/flaky"), "{table}");
    let total: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(total[..4], ["TOTAL", "3", "1", "0"], "{table}");
    assert!(table.contains("right-sizing"), "{table}");
    assert!(
        table.contains("256 MB") && table.contains("128 MB"),
        "{table}"
    );
    let by_day = s.cli(&["usage", "--by", "day", "-o", "json"]).ok().json();
    assert_eq!(by_day["by"], "day");
    assert_eq!(s.cli(&["usage", "--by", "week"]).code, 2);
}

#[test]
fn reserved_and_provisioned_concurrency_from_flags_and_lambent_yaml() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &["--keep-alive", "120"]);
    let code = flaky_function(home.path(), "stopped");

    // Reserved concurrency 0 stops a function: invocations are throttled (429), exit 1.
    let f = s
        .cli(&[
            "deploy",
            path_str(&code),
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--reserved-concurrency",
            "0",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(f["reserved_concurrency"], 0);
    let out = s.cli(&["invoke", "stopped"]).failed();
    assert!(
        out.stderr.starts_with("error: throttled: ") && out.stderr.contains("reserved"),
        "{out:?}"
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    let usage = s
        .cli(&["usage", "--function", "stopped", "-o", "json"])
        .ok()
        .json();
    assert_eq!(usage["total"]["throttles"], 1, "{usage}");
    assert_eq!(usage["total"]["invocations"], 0, "{usage}");

    // lambent.yaml: a provisioned sandbox is ready when the deploy returns.
    let app = home.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(code.join("app.py"), app.join("app.py")).unwrap();
    std::fs::write(
        app.join("lambent.yaml"),
        "name: ready\nruntime: python3.12\nhandler: app.handler\nreserved_concurrency: 2\n\
         provisioned_concurrency: 1\nkeep_alive: 30\n",
    )
    .unwrap();
    s.cli(&["deploy", path_str(&app)]).ok();
    let f = s.cli(&["get", "ready", "-o", "json"]).ok().json();
    assert_eq!(f["sandboxes"]["idle"], 1, "{f}");
    assert_eq!(f["provisioned_concurrency"], 1, "{f}");
    assert_eq!(f["reserved_concurrency"], 2, "{f}");
    assert_eq!(f["keep_alive"], 30, "{f}");
    let got = s.cli(&["get", "ready"]).ok().stdout;
    assert!(got.contains("1 idle"), "{got}");
    assert!(got.contains("keep-alive:") && got.contains("30 s"), "{got}");
    let out = s.cli(&["invoke", "ready"]).ok();
    assert_eq!(out.stdout.trim(), "\"ok\"");
    let a = s
        .cli(&["activations", "--function", "ready", "-o", "json"])
        .ok()
        .json();
    assert_eq!(
        a["activations"][0]["cold"], false,
        "provisioned: warm at once"
    );

    // The server's limits are checked when deploying: provisioned above reserved is refused.
    let out = s
        .cli(&[
            "deploy",
            path_str(&app),
            "--reserved-concurrency",
            "1",
            "--provisioned-concurrency",
            "2",
        ])
        .failed();
    assert!(out.stderr.contains("provisioned"), "{out:?}");
}

/// A function that fails when asked, with retries, destinations and a schedule from its
/// `lambent.yaml`.
fn async_function(home: &Path) -> PathBuf {
    let dir = flaky_function(home, "flaky");
    std::fs::write(
        dir.join("lambent.yaml"),
        "runtime: python3.12\nhandler: app.handler\nasync: {max_retries: 0}\n\
         schedules: {hourly: {rate: 1 hour}}\n",
    )
    .unwrap();
    dir
}

/// Polls `check` every 100 ms for up to `secs` seconds.
#[track_caller]
#[test]
fn async_invoke_dead_letters_redrive_and_schedules_from_the_cli() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    s.cli(&["deploy", path_str(&async_function(home.path()))])
        .ok();
    let f = s.cli(&["get", "flaky", "-o", "json"]).ok().json();
    assert_eq!(f["async"]["max_retries"], 0, "{f}");

    let out = s
        .cli(&["invoke", "flaky", "--async", "--data", r#"{"fail": true}"#])
        .ok();
    let id = out
        .stdout
        .trim()
        .strip_prefix("accepted ")
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_string();
    eventually(30, "the dead letter", || {
        let list = s.cli(&["dlq", "ls", "-o", "json"]).ok().json();
        let found = list["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["id"] == id.as_str());
        found.then_some(())
    });
    let table = s.cli(&["dlq", "ls"]).ok();
    assert!(
        table.stdout.contains(&id) && table.stdout.contains("ValueError"),
        "{table:?}"
    );
    let shown = s.cli(&["dlq", "show", &id]).ok();
    assert!(shown.stdout.contains(r#"{"fail":true}"#), "{shown:?}");
    let missing = s.cli(&["dlq", "show", "nope"]).failed();
    assert!(
        missing.stderr.contains("dead letter 'nope' does not exist"),
        "{missing:?}"
    );
    let bare = s.cli(&["dlq", "redrive"]).failed();
    assert!(bare.stderr.contains("--all"), "{bare:?}");
    let redriven = s.cli(&["dlq", "redrive", &id]).ok();
    assert!(
        redriven.stdout.starts_with(&format!("redriven {id} as ")),
        "{redriven:?}"
    );
    // It fails again (same payload) and comes back under a new id.
    eventually(30, "the redriven event to fail again", || {
        let list = s.cli(&["dlq", "ls", "-o", "json"]).ok().json();
        let letters = list["dead_letters"].as_array().unwrap().clone();
        (letters.len() == 1 && letters[0]["trigger"] == "redrive").then_some(())
    });
    let all = s
        .cli(&["dlq", "redrive", "--all", "--function", "flaky"])
        .ok();
    assert!(all.stdout.starts_with("redriven "), "{all:?}");

    // Schedules: from lambent.yaml, then added, refused and removed with the CLI.
    let listed = s.cli(&["schedule", "ls"]).ok();
    assert!(
        listed.stdout.contains("hourly") && listed.stdout.contains("rate(1 hour)"),
        "{listed:?}"
    );
    let added = s
        .cli(&[
            "schedule",
            "add",
            "ticker",
            "--function",
            "flaky",
            "--cron",
            "0 */5 * * * *",
            "--tz",
            "Europe/Paris",
        ])
        .ok();
    assert!(
        added
            .stdout
            .starts_with("added schedule ticker (cron(0 */5 * * * *) Europe/Paris)"),
        "{added:?}"
    );
    let dup = s
        .cli(&[
            "schedule",
            "add",
            "ticker",
            "--function",
            "flaky",
            "--rate",
            "5 minutes",
        ])
        .failed();
    assert!(dup.stderr.contains("already exists"), "{dup:?}");
    let bad = s
        .cli(&[
            "schedule",
            "add",
            "bad",
            "--function",
            "flaky",
            "--cron",
            "* *",
        ])
        .failed();
    assert!(bad.stderr.contains("invalid cron expression"), "{bad:?}");
    let at = s
        .cli(&[
            "schedule",
            "add",
            "soon",
            "--function",
            "flaky",
            "--at",
            "2026-13-01T10:00:00",
        ])
        .failed();
    assert!(at.stderr.contains("invalid time"), "{at:?}");
    s.cli(&["schedule", "rm", "ticker"]).ok();
    let gone = s.cli(&["schedule", "rm", "ticker"]).failed();
    assert!(
        gone.stderr.contains("schedule 'ticker' does not exist"),
        "{gone:?}"
    );
}

/// GETs every success activation of `function` (following cursors).
fn success_activation_ids(
    http: &reqwest::blocking::Client,
    s: &Server,
    function: &str,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!(
            "{}/v1/activations?function={function}&status=success&limit=1000",
            s.url
        );
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(&url)
            .bearer_auth(&s.key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        for a in page["activations"].as_array().unwrap() {
            ids.push(a["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.replace(':', "%3A")),
            None => return ids,
        }
    }
}

/// The crash test: SIGKILL `lambent up` while 1,000 accepted async invocations are in flight,
/// restart on the same data dir, and check from the success activation records (attempt ids
/// are `<event id>` then `<event id>.<n>`) that every accepted event ran at least once.
#[test]
fn sigkill_with_1000_async_invocations_in_flight_loses_none() {
    const EVENTS: usize = 1000;
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let dir = home.path().join("slowish");
    std::fs::create_dir_all(&dir).unwrap();
    // 500 ms each: 1000 events keep the dispatcher's 64 slots busy for 7.8 s at least, so
    // the kill lands while some run (at 20 and 100 ms, a node whose pools were ready at
    // start-up could finish them all while they were still being accepted).
    std::fs::write(
        dir.join("app.py"),
        "import time\ndef handler(event, context):\n    time.sleep(0.5)\n    return event\n",
    )
    .unwrap();
    s.cli(&[
        "deploy",
        path_str(&dir),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();

    let http = reqwest::blocking::Client::new();
    let accepted = std::sync::Mutex::new(Vec::with_capacity(EVENTS));
    let invoke_url = format!("{}/v1/functions/slowish/invoke?async=true", s.url);
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (http, url, key, accepted) = (&http, &invoke_url, &s.key, &accepted);
            scope.spawn(move || {
                for n in (t..EVENTS).step_by(8) {
                    let r = http
                        .post(url)
                        .bearer_auth(key)
                        .body(format!(r#"{{"n": {n}}}"#))
                        .send()
                        .unwrap();
                    assert_eq!(r.status().as_u16(), 202);
                    let v: Value = r.json().unwrap();
                    accepted
                        .lock()
                        .unwrap()
                        .push(v["activation_id"].as_str().unwrap().to_string());
                }
            });
        }
    });
    let accepted = accepted.into_inner().unwrap();
    assert_eq!(accepted.len(), EVENTS);
    let pending_on = |s: &Server| -> u64 {
        let v: Value = http
            .get(format!("{}/v1/async", s.url))
            .bearer_auth(&s.key)
            .send()
            .unwrap()
            .json()
            .unwrap();
        v["pending"].as_u64().unwrap()
    };
    // Kill in the middle of processing: some events done, many running or waiting.
    eventually(60, "a fifth of the events to be done", || {
        (pending_on(&s) <= (EVENTS * 4 / 5) as u64).then_some(())
    });
    s.kill();

    let s = Server::start(home.path(), &[]);
    let pending = || pending_on(&s);
    let left_at_restart = pending();
    eventually(120, "every event to be processed after the restart", || {
        (pending() == 0).then_some(())
    });

    let mut runs: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for id in success_activation_ids(&http, &s, "slowish") {
        let event = id
            .split_once('.')
            .map_or(id.as_str(), |(e, _)| e)
            .to_string();
        *runs.entry(event).or_default() += 1;
    }
    let lost: Vec<&String> = accepted
        .iter()
        .filter(|id| !runs.contains_key(*id))
        .collect();
    let duplicates = runs.values().filter(|&&n| n > 1).count();
    eprintln!(
        "crash test: {EVENTS} accepted, {left_at_restart} not done at the SIGKILL, {} lost, \
         {duplicates} run twice or more",
        lost.len()
    );
    assert!(lost.is_empty(), "accepted events never processed: {lost:?}");
    assert!(
        left_at_restart > 0,
        "the kill came after everything was done: not a crash test"
    );
}

#[test]
fn routes_from_lambent_yaml_and_the_route_commands() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let app = home.path().join("users-fn");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        "def handler(event, context):\n    \
             return {'statusCode': 200, 'body': event['routeKey'] + ' ' + \
             str(event.get('pathParameters'))}\n",
    )
    .unwrap();
    std::fs::write(
        app.join("lambent.yaml"),
        "runtime: python3.12\nhandler: app.handler\nroutes:\n  - GET /hello\n  \
         - method: ANY\n    path: /files/{proxy+}\n    auth: key\n",
    )
    .unwrap();
    let out = s.cli(&["deploy", path_str(&app)]).ok();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "deployed users-fn (python3.12, revision 1)",
            "route GET /hello -> users-fn",
            "route ANY /files/{proxy+} -> users-fn",
        ]
    );
    // Deploying again replaces the routes instead of failing.
    s.cli(&["deploy", path_str(&app)]).ok();

    let out = s
        .cli(&[
            "route",
            "add",
            "GET",
            "/users/{id}",
            "users-fn",
            "--cors-origin",
            "https://app.example",
            "--max-body",
            "1k",
        ])
        .ok();
    assert!(
        out.stdout
            .starts_with("route GET /users/{id} -> users-fn (id rt_"),
        "{out:?}"
    );
    let listed = s.cli(&["route", "ls", "-o", "json"]).ok().json();
    let keys: Vec<&str> = listed["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["GET /hello", "ANY /files/{proxy+}", "GET /users/{id}"]
    );
    assert_eq!(listed["routes"][2]["max_body_bytes"], 1024);
    let table = s.cli(&["route", "ls"]).ok();
    assert!(table.stdout.contains("/users/{id}") && table.stdout.contains("https://app.example"));

    let http = reqwest::blocking::Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut req = http.get(format!("{}{path}", s.url));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    assert_eq!(get("/hello", None), (200, "GET /hello None".to_string()));
    assert_eq!(
        get("/users/7", None),
        (200, "GET /users/{id} {'id': '7'}".to_string())
    );
    assert_eq!(get("/files/a/b", None).0, 401, "the yaml route needs a key");
    assert_eq!(
        get("/files/a/b", Some(&s.key)),
        (200, "ANY /files/{proxy+} {'proxy': 'a/b'}".to_string())
    );

    // Refusals exit 1 and say why; the server keeps serving.
    let out = s
        .cli(&["route", "add", "GET", "/v1/mine", "users-fn"])
        .failed();
    assert!(out.stderr.contains("reserved"), "{out:?}");
    let out = s
        .cli(&["route", "add", "GET", "/hello", "users-fn"])
        .failed();
    assert!(out.stderr.contains("exists"), "{out:?}");
    let out = s.cli(&["route", "add", "GET", "/x", "no-such-fn"]).failed();
    assert!(out.stderr.contains("no-such-fn"), "{out:?}");
    let out = s.cli(&["route", "add", "GET", "/x", "users-fn", "--auth", "iam"]);
    assert_eq!(out.code, 2, "{out:?}");

    // rm by METHOD PATH and by id.
    s.cli(&["route", "rm", "GET", "/users/{id}"]).ok();
    assert_eq!(get("/users/7", None).0, 404);
    let id = listed["routes"][0]["id"].as_str().unwrap();
    let out = s.cli(&["route", "rm", id]).ok();
    assert_eq!(out.stdout.trim(), format!("deleted route {id}"));
    let out = s.cli(&["route", "rm", id]).failed();
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    assert_eq!(get("/hello", None).0, 404);
}

#[test]
fn queue_topic_and_mapping_commands() {
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    s.cli(&["queue", "create", "dead"]).ok();
    let out = s
        .cli(&[
            "queue",
            "create",
            "jobs",
            "--visibility-timeout",
            "1",
            "--dead-letter-queue",
            "dead",
            "--max-receive-count",
            "1",
        ])
        .ok();
    assert_eq!(
        out.stdout.trim(),
        "queue jobs (arn:aws:sqs:us-east-1:default:jobs)"
    );
    let out = s
        .cli(&["queue", "send", "jobs", "hello", "--attr", "kind=greeting"])
        .ok();
    assert!(out.stdout.starts_with("sent "), "{out:?}");
    s.cli_stdin(&["queue", "send", "jobs", "-"], "from stdin")
        .ok();
    let got = s
        .cli(&["queue", "receive", "jobs", "--max", "10", "-o", "json"])
        .ok()
        .json();
    let messages = got["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["body"], "hello");
    assert_eq!(messages[0]["attributes"]["kind"]["stringValue"], "greeting");
    assert_eq!(messages[1]["body"], "from stdin");
    let receipt = messages[0]["receipt_handle"].as_str().unwrap();
    let out = s.cli(&["queue", "delete", "jobs", receipt]).ok();
    assert_eq!(out.stdout.trim(), "deleted 1 message(s)");
    let out = s.cli(&["queue", "delete", "jobs", receipt]).failed();
    assert!(out.stderr.contains("matched no message"), "{out:?}");
    // The other one, received once (the maximum), goes to the dead-letter queue.
    std::thread::sleep(Duration::from_millis(1100));
    let out = s.cli(&["queue", "receive", "jobs", "--wait", "1"]).ok();
    assert_eq!(out.stdout.trim(), "no messages");
    let out = s.cli(&["queue", "receive", "dead"]).ok();
    assert!(out.stdout.contains("from stdin"), "{out:?}");
    let table = s.cli(&["queue", "ls"]).ok();
    assert!(table.stdout.contains("dead after 1"), "{table:?}");
    let out = s.cli(&["queue", "purge", "dead"]).ok();
    assert_eq!(out.stdout.trim(), "purged 1 message(s)");
    let out = s.cli(&["queue", "send", "nope", "x"]).failed();
    assert!(
        out.stderr.contains("queue 'nope' does not exist"),
        "{out:?}"
    );
    let out = s
        .cli(&["queue", "receive", "jobs", "--wait", "30"])
        .failed();
    assert!(out.stderr.contains("0-20"), "{out:?}");

    // A topic fans out to a queue; a mapping runs a function on another queue.
    let app = home.path().join("worker");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        "def handler(event, context):\n    \
             for r in event['Records']:\n        print('worked', r['body'])\n",
    )
    .unwrap();
    s.cli(&[
        "deploy",
        path_str(&app),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
    s.cli(&["topic", "create", "news"]).ok();
    let out = s
        .cli(&["topic", "subscribe", "news", "--queue", "jobs"])
        .ok();
    assert!(
        out.stdout
            .starts_with("subscribed queue jobs to news (id sub_"),
        "{out:?}"
    );
    let out = s
        .cli(&["topic", "publish", "news", "extra", "--subject", "s"])
        .ok();
    assert!(out.stdout.ends_with("to 1 subscription(s)\n"), "{out:?}");
    let got = s
        .cli(&["queue", "receive", "jobs", "-o", "json"])
        .ok()
        .json();
    let note: Value = serde_json::from_str(got["messages"][0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (note["Message"].as_str(), note["Subject"].as_str()),
        (Some("extra"), Some("s"))
    );
    let out = s.cli(&["topic", "subscribe", "news"]);
    assert_eq!(out.code, 2, "--function or --queue is required: {out:?}");

    s.cli(&["queue", "create", "work"]).ok();
    let m = s
        .cli(&[
            "mapping",
            "create",
            "work",
            "worker",
            "--batch-size",
            "5",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(m["batch_size"], 5);
    s.cli(&["queue", "send", "work", "task-1"]).ok();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let logs = s.cli(&["logs", "worker"]).ok();
        if logs.stdout.contains("worked task-1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mapping never ran: {logs:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let table = s.cli(&["mapping", "ls"]).ok();
    assert!(table.stdout.contains("worker"), "{table:?}");
    let id = m["id"].as_str().unwrap();
    s.cli(&["mapping", "rm", id]).ok();
    let out = s.cli(&["mapping", "rm", id]).failed();
    assert!(out.stderr.contains("does not exist"), "{out:?}");
}

/// SIGKILLs `lambent up` while a mapping works through 1,000 queue messages, starts it again on
/// the same data dir, and checks from the function's own witness file that every message was
/// processed at least once (duplicates are counted and printed). The node runs without sandboxes
/// so that the function can append to a host file: that file, not Lambent's batched activation
/// records (which a SIGKILL may cut short), is the proof of processing.
#[test]
fn queue_messages_survive_sigkill_mid_processing() {
    const N: usize = 1000;
    let home = tempfile::tempdir().unwrap();
    let witness = home.path().join("witness.txt");
    let app = home.path().join("crash-worker");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        "import os, time\n\
         def handler(event, context):\n    \
             with open(os.environ['WITNESS'], 'a') as f:\n        \
                 for r in event['Records']:\n            \
                     f.write(r['body'] + '\\n')\n        \
                 f.flush()\n        \
                 os.fsync(f.fileno())\n    \
             time.sleep(0.02)\n",
    )
    .unwrap();
    let s = Server::start(home.path(), &["--insecure-no-sandbox"]);
    s.deploy_witnessed(&app, &witness);
    s.cli(&["queue", "create", "crash", "--visibility-timeout", "2"])
        .ok();
    let http = reqwest::blocking::Client::new();
    for batch in 0..N / 10 {
        let messages: Vec<Value> = (0..10)
            .map(|i| serde_json::json!({"body": format!("m{}", batch * 10 + i)}))
            .collect();
        let resp = http
            .post(format!("{}/v1/queues/crash/messages", s.url))
            .bearer_auth(&s.key)
            .json(&serde_json::json!({ "messages": messages }))
            .send()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text());
    }
    s.cli(&[
        "mapping",
        "create",
        "crash",
        "crash-worker",
        "--batch-size",
        "10",
    ])
    .ok();

    let lines = || {
        std::fs::read_to_string(&witness)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while lines().len() < N / 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mapping made no progress"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_kill = lines().len();
    s.kill();
    assert!(
        before_kill < N,
        "the kill came after all the work: lower the batch speed"
    );

    let s = Server::start(home.path(), &["--insecure-no-sandbox"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let q = s.cli(&["queue", "ls", "-o", "json"]).ok().json();
        let c = &q["queues"][0]["messages"];
        if c["visible"] == 0 && c["in_flight"] == 0 && c["delayed"] == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never drained: {c}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for line in lines() {
        *seen.entry(line).or_default() += 1;
    }
    let missing: Vec<String> = (0..N)
        .map(|i| format!("m{i}"))
        .filter(|m| !seen.contains_key(m))
        .collect();
    assert!(missing.is_empty(), "never processed: {missing:?}");
    assert_eq!(seen.len(), N, "only the messages sent were processed");
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "crash test: {N} messages, {before_kill} processed before SIGKILL, all {N} processed at \
         least once, {duplicates} duplicate deliveries"
    );
}

#[test]
fn keys_create_ls_rm_beside_the_access_key_from_the_environment() {
    let home = tempfile::tempdir().unwrap();
    let bad = run(&["up", "--region", "Not A Region"], &[], None);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("invalid region"), "{bad:?}");

    let startup_id = "LKIASTARTUPKEY000001";
    let server = Server::start_with_env(
        home.path(),
        &["--region", "eu-west-1"],
        &[
            ("LAMBENT_ACCESS_KEY_ID", startup_id),
            ("LAMBENT_SECRET_ACCESS_KEY", "startup-secret"),
        ],
    );
    let ls = server.cli(&["keys", "ls"]).ok();
    assert!(ls.stdout.contains(startup_id), "{ls:?}");

    let created = server.cli(&["-o", "json", "keys", "create"]).ok().json();
    let id = created["access_key_id"].as_str().unwrap().to_string();
    let secret = created["secret_access_key"].as_str().unwrap().to_string();
    assert_eq!((id.len(), secret.len()), (20, 40), "{created}");
    let table = server.cli(&["keys", "create"]).ok();
    assert!(table.stdout.contains("shown only now"), "{table:?}");

    let listed = server.cli(&["-o", "json", "keys", "ls"]).ok();
    assert_eq!(
        listed.json()["keys"].as_array().unwrap().len(),
        3,
        "{listed:?}"
    );
    assert!(!listed.stdout.contains(&secret) && !listed.stdout.contains("startup-secret"));

    let rm = server.cli(&["keys", "rm", &id]).ok();
    assert!(
        rm.stdout.contains(&format!("deleted access key {id}")),
        "{rm:?}"
    );
    let again = server.cli(&["keys", "rm", &id]).failed();
    assert!(again.stderr.contains("does not exist"), "{again:?}");
    assert!(!server.cli(&["keys", "ls"]).ok().stdout.contains(&id));
}

#[test]
fn deploy_installs_package_json_dependencies_and_exits_1_when_npm_cannot() {
    let registry_up = Command::new("timeout")
        .args(["30", "npm", "ping", "--no-update-notifier"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !registry_up {
        eprintln!("SKIPPED: the npm registry is unreachable (`npm ping` failed)");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let s = Server::start(home.path(), &[]);
    let app = home.path().join("uses-ms");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("index.mjs"),
        "import ms from 'ms';\nexport const handler = async () => ms(90000);\n",
    )
    .unwrap();
    std::fs::write(
        app.join("lambent.yaml"),
        "runtime: nodejs20.x\nhandler: index.handler\n",
    )
    .unwrap();
    let package = |dependency: &str| {
        format!(r#"{{"name": "uses-ms", "dependencies": {{"{dependency}": "2.1.3"}}}}"#)
    };
    std::fs::write(app.join("package.json"), package("ms")).unwrap();
    s.cli(&["deploy", path_str(&app)]).ok();
    let out = s.cli(&["invoke", "uses-ms"]).ok();
    assert_eq!(out.json(), Value::String("2m".into()), "{out:?}");
    // A dependency npm cannot find: the upload is refused, the CLI says why and exits 1.
    std::fs::write(
        app.join("package.json"),
        package("lambent-no-such-package-8c1f2"),
    )
    .unwrap();
    let out = s.cli(&["deploy", path_str(&app)]).failed();
    assert!(
        out.stderr.starts_with("error: ")
            && out.stderr.contains("lambent-no-such-package-8c1f2")
            && out.stderr.contains("404"),
        "{out:?}"
    );
}

#[test]
fn namespaces_keys_with_roles_and_the_audit_log_from_the_command_line() {
    let home = tempfile::tempdir().unwrap();
    let admin = "cli-test-admin-key";
    let s = Server::start_with_env(home.path(), &[], &[("LAMBENT_ADMIN_KEY", admin)]);
    let with_key = |key: &str, args: &[&str]| s.cli_as(key, args);
    let as_admin = |args: &[&str]| s.cli_admin(admin, args);
    // The default namespace's owner key does not manage namespaces.
    let refused = s.cli(&["ns", "ls"]).failed();
    assert!(refused.stderr.contains("operator"), "{refused:?}");

    let created = as_admin(&[
        "-o",
        "json",
        "ns",
        "create",
        "team-a",
        "--concurrency",
        "5",
        "--storage-quota",
        "10g",
        "--monthly-budget",
        "12.5",
    ])
    .ok()
    .json();
    assert_eq!(
        created["settings"]["storage_quota_bytes"],
        10u64 << 30,
        "{created}"
    );
    assert_eq!(created["settings"]["monthly_budget_usd"], 12.5);
    let owner = created["owner_key"]["secret"].as_str().unwrap().to_string();
    let listed = as_admin(&["ns", "ls"]).ok();
    assert!(
        listed.stdout.contains("team-a") && listed.stdout.contains("default"),
        "{listed:?}"
    );
    let shown = as_admin(&["ns", "get", "team-a"]).ok();
    assert!(shown.stdout.contains("nothing"), "{shown:?}");
    as_admin(&["ns", "update", "team-a", "--max-functions", "3"]).ok();
    let got = as_admin(&["-o", "json", "ns", "get", "team-a"]).ok().json();
    assert_eq!(got["settings"]["max_functions"], 3, "{got}");
    assert_eq!(got["settings"]["concurrency"], 5, "{got}");
    let dup = as_admin(&["ns", "create", "team-a"]).failed();
    assert!(dup.stderr.contains("exists"), "{dup:?}");

    // A viewer key, made by the owner: it reads, and may not change anything or make keys.
    let viewer = with_key(
        &owner,
        &[
            "-o",
            "json",
            "keys",
            "create",
            "--api",
            "--role",
            "viewer",
            "--expires",
            "1h",
        ],
    )
    .ok()
    .json();
    assert_eq!(viewer["role"], "viewer", "{viewer}");
    assert!(viewer["expires_ms"].as_u64().unwrap() > 0);
    let (id, first) = (
        viewer["key_id"].as_str().unwrap().to_string(),
        viewer["secret"].as_str().unwrap().to_string(),
    );
    with_key(&first, &["ls"]).ok();
    let denied = with_key(&first, &["keys", "create", "--api"]).failed();
    assert!(denied.stderr.contains("may not"), "{denied:?}");
    let denied = with_key(&first, &["queue", "create", "jobs"]).failed();
    assert!(denied.stderr.contains("may not"), "{denied:?}");

    // Rotation with a grace period: both secrets work; without one, only the newest.
    let rotated = with_key(
        &owner,
        &["-o", "json", "keys", "rotate", &id, "--grace", "1h"],
    )
    .ok()
    .json();
    let second = rotated["secret"].as_str().unwrap().to_string();
    with_key(&first, &["ls"]).ok();
    with_key(&second, &["ls"]).ok();
    let third = with_key(&owner, &["-o", "json", "keys", "rotate", &id])
        .ok()
        .json();
    let third = third["secret"].as_str().unwrap().to_string();
    with_key(&first, &["ls"]).failed();
    with_key(&second, &["ls"]).failed();
    with_key(&third, &["ls"]).ok();
    let keys = with_key(&owner, &["keys", "ls"]).ok();
    assert!(
        keys.stdout.contains(&id) && keys.stdout.contains("viewer"),
        "{keys:?}"
    );

    // The audit log names who made and rotated keys; the operator sees every namespace's.
    let audit = with_key(&owner, &["audit", "--since", "1h"]).ok();
    assert!(
        audit.stdout.contains("/v1/api-keys") && audit.stdout.contains("rotate"),
        "{audit:?}"
    );
    let all = as_admin(&["-o", "json", "audit"]).ok().json();
    let namespaces: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["namespace"].as_str())
        .collect();
    assert!(
        namespaces.contains(&"team-a") && namespaces.contains(&"default"),
        "{all}"
    );

    // Keys and records do not keep a namespace alive; once deleted its keys are refused.
    as_admin(&["ns", "rm", "team-a"]).ok();
    with_key(&owner, &["ls"]).failed();
    with_key(&third, &["ls"]).failed();
}

#[test]
fn usage_by_namespace_is_the_operators_bill_and_each_namespace_sees_its_own() {
    let home = tempfile::tempdir().unwrap();
    let admin = "cli-bills-admin-key";
    let s = Server::start_with_env(home.path(), &[], &[("LAMBENT_ADMIN_KEY", admin)]);
    let with_key = |key: &str, args: &[&str]| s.cli_as(key, args);
    let as_admin = |args: &[&str]| s.cli_admin(admin, args);
    let created = as_admin(&[
        "-o",
        "json",
        "ns",
        "create",
        "team-b",
        "--max-functions",
        "5",
        "--storage-quota",
        "1m",
        "--monthly-budget",
        "10",
    ])
    .ok()
    .json();
    let owner = created["owner_key"]["secret"].as_str().unwrap().to_string();
    let code = flaky_function(home.path(), "billed");
    with_key(
        &owner,
        &[
            "deploy",
            path_str(&code),
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
        ],
    )
    .ok();
    with_key(&owner, &["invoke", "billed"]).ok();
    with_key(&owner, &["invoke", "billed"]).ok();
    s.cli(&[
        "deploy",
        path_str(&code),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
    s.cli(&["invoke", "billed"]).ok();

    let bills = as_admin(&["-o", "json", "usage", "--by", "namespace"])
        .ok()
        .json();
    let row = |ns: &str| {
        bills["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["namespace"] == ns)
            .cloned()
            .unwrap_or_else(|| panic!("no bill of {ns}: {bills}"))
    };
    let b = row("team-b");
    assert_eq!(b["invocations"], 2, "{b}");
    assert_eq!(b["functions"], 1, "{b}");
    assert_eq!(b["max_functions"], 5, "{b}");
    assert_eq!(b["storage_quota_bytes"], 1u64 << 20, "{b}");
    assert_eq!(b["budget"]["monthly_usd"], 10.0, "{b}");
    assert!(b["gb_seconds"].as_f64().unwrap() > 0.0, "{b}");
    assert_eq!(row("default")["invocations"], 1);
    let table = as_admin(&["usage", "--by", "namespace"]).ok();
    assert!(
        table.stdout.contains("team-b") && table.stdout.contains("10.00 soft"),
        "{table:?}"
    );

    // A namespace's key: only its own bill, never the others'.
    let refused = with_key(&owner, &["usage", "--by", "namespace"]).failed();
    assert!(refused.stderr.contains("operator"), "{refused:?}");
    let own = with_key(&owner, &["-o", "json", "usage"]).ok().json();
    let keys: Vec<&str> = own["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["team-b/billed"], "{own}");
    assert_eq!(own["total"]["invocations"], 2, "{own}");
    let text = with_key(&owner, &["usage"]).ok();
    assert!(text.stdout.contains("budget: $"), "{text:?}");
}
