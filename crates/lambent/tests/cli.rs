//! End-to-end tests of the `lambent` binary: `lambent up` on port 0 in a temporary data dir,
//! then the other commands against it, as a user would run them.
//!
//! Sandboxes need root: run as root (as CI does).

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_lambent");

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A `lambent up` process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    url: String,
    key: String,
    /// What `up` printed after its first two lines.
    more: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `lambent up --listen 127.0.0.1:0 --data-dir <home>/data` with its client config
    /// under `<home>/config`, and reads the URL and key it prints.
    fn start(home: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(home, extra, &[])
    }

    /// [`Server::start`] with more environment variables for `lambent up`.
    fn start_with_env(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("server.log"))
            .unwrap();
        let mut child = Command::new(BIN)
            .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(home.join("data"))
            .args(extra)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("LAMBENT_API_KEY")
            .env_remove("LAMBENT_URL")
            .env_remove("LAMBENT_DATA_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("cannot start lambent up");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let next = |what: &str| {
            rx.recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| {
                    let log = std::fs::read_to_string(home.join("server.log")).unwrap_or_default();
                    panic!("lambent up printed no {what}; its stderr:\n{log}")
                })
        };
        let first = next("URL line");
        let url = first
            .strip_prefix("lambent is up at ")
            .unwrap_or_else(|| panic!("unexpected first line: {first}"))
            .to_string();
        let second = next("key line");
        let key = second
            .strip_prefix("api key: ")
            .unwrap_or_else(|| panic!("unexpected second line: {second}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert!(!url.ends_with(":0"), "the real port is printed: {url}");
        Server {
            child,
            url,
            key,
            more: rx,
        }
    }

    /// The next line `up` prints (after the URL and key).
    fn line(&self) -> String {
        self.more
            .recv_timeout(Duration::from_secs(60))
            .expect("lambent up printed no more lines")
    }

    /// Runs `lambent ARGS` against this server.
    fn cli(&self, args: &[&str]) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_API_KEY", &self.key)],
            None,
        )
    }

    /// Runs `lambent ARGS` with `stdin` as standard input.
    fn cli_stdin(&self, args: &[&str], stdin: &str) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_API_KEY", &self.key)],
            Some(stdin),
        )
    }

    /// SIGKILL, as a crash would.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one CLI run did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Out {
        assert_eq!(self.code, 0, "lambent failed: {self:?}");
        self
    }

    #[track_caller]
    fn failed(self) -> Out {
        assert_eq!(self.code, 1, "lambent should exit with 1: {self:?}");
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("LAMBENT_API_KEY")
        .env_remove("LAMBENT_URL")
        .env_remove("LAMBENT_DATA_DIR")
        // No config file from the machine's user.
        .env("XDG_CONFIG_HOME", "/nonexistent/lambent-test-config")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("cannot run lambent");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

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
