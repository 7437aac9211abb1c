//! The harness of the `lambent` binary's end-to-end tests: `lambent up` as a child process on
//! port 0 with its own data dir and client config, and `lambent` commands run against it.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_lambent");

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A `lambent up` process; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub key: String,
    /// What `up` printed after its first two lines.
    pub more: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `lambent up --listen 127.0.0.1:0 --data-dir <home>/data` with its client config
    /// under `<home>/config`, and reads the URL and key it prints.
    pub fn start(home: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(home, extra, &[])
    }

    /// [`Server::start`] with more environment variables for `lambent up`.
    pub fn start_with_env(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(Server::command(home, extra, env), home)
    }

    /// The `lambent up --listen 127.0.0.1:0 --data-dir <home>/data EXTRA` command, with its
    /// client config under `<home>/config` and its stderr appended to `<home>/server.log`.
    pub fn command(home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
        Server::command_of(Path::new(BIN), home, extra, env)
    }

    /// [`Server::command`] of another `lambent` binary `bin`.
    pub fn command_of(bin: &Path, home: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(home.join("server.log"))
            .unwrap();
        let mut cmd = Command::new(bin);
        cmd.args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(home.join("data"))
            .args(extra)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env_remove("LAMBENT_API_KEY")
            .env_remove("LAMBENT_ADMIN_KEY")
            .env_remove("LAMBENT_NAMESPACE")
            .env_remove("LAMBENT_URL")
            .env_remove("LAMBENT_DATA_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        cmd
    }

    /// [`Server::start_with_env`], but born inside the cgroups whose `cgroup.procs` files are
    /// `procs` (see [`lambent_testkit::cgroup::born_into`]): with `LAMBENT_CGROUP_PARENT` in
    /// `env`, its sandboxes' cgroups are made under the same parent.
    pub fn start_in(
        home: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
        procs: &[PathBuf],
    ) -> Server {
        let mut cmd = Server::command(home, extra, env);
        lambent_testkit::cgroup::born_into(&mut cmd, procs);
        Server::spawn(cmd, home)
    }

    /// Starts a [`Server::command`] and reads the URL and key it prints.
    pub fn spawn(mut cmd: Command, home: &Path) -> Server {
        let mut child = cmd.spawn().expect("cannot start lambent up");
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
        let mut second = next("key line");
        if second.starts_with("cluster node: ") {
            second = next("key line");
        }
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
    pub fn line(&self) -> String {
        self.more
            .recv_timeout(Duration::from_secs(60))
            .expect("lambent up printed no more lines")
    }

    /// Runs `lambent ARGS` against this server.
    /// Deploys the Python 3.12 function in `app` (handler `app.handler`) with `WITNESS` set to
    /// `witness`: the file its handler appends what it processed to.
    pub fn deploy_witnessed(&self, app: &Path, witness: &Path) {
        let witness_env = format!("WITNESS={}", witness.display());
        self.cli(&[
            "deploy",
            path_str(app),
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--env",
            &witness_env,
        ])
        .ok();
    }

    pub fn cli(&self, args: &[&str]) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_API_KEY", &self.key)],
            None,
        )
    }

    /// Runs `lambent ARGS` against this server with another API key.
    pub fn cli_as(&self, key: &str, args: &[&str]) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_API_KEY", key)],
            None,
        )
    }

    /// Runs `lambent ARGS` against this server with the operator key `admin`.
    pub fn cli_admin(&self, admin: &str, args: &[&str]) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_ADMIN_KEY", admin)],
            None,
        )
    }

    /// Runs `lambent ARGS` with `stdin` as standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> Out {
        run(
            args,
            &[("LAMBENT_URL", &self.url), ("LAMBENT_API_KEY", &self.key)],
            Some(stdin),
        )
    }

    /// SIGTERM, then waits for the process to exit (up to `limit`); how long it took.
    pub fn terminate(mut self, limit: Duration) -> Duration {
        let asked = std::time::Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        while asked.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return asked.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("lambent up did not exit within {limit:?} of SIGTERM");
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
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
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "lambent failed: {self:?}");
        self
    }

    #[track_caller]
    pub fn failed(self) -> Out {
        assert_eq!(self.code, 1, "lambent should exit with 1: {self:?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

pub fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Out {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("LAMBENT_API_KEY")
        .env_remove("LAMBENT_ADMIN_KEY")
        .env_remove("LAMBENT_NAMESPACE")
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

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Polls `check` every 100 ms until it gives a value; panics after `secs` seconds.
pub fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[allow(unused_imports)] // not every test or bench packs code
pub use lambent_testkit::zip_of;

/// The compiled echo runtime (a `provided` runtime answering each event with itself), built if
/// missing, beside the `lambent` binary.
pub fn echo_runtime() -> Vec<u8> {
    let bin = Path::new(BIN).with_file_name("lambent-echo-runtime");
    if !bin.exists() {
        eprintln!("building the echo runtime: cargo build --release -p lambent-server --bins");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "-p", "lambent-server", "--bins"])
            .status()
            .expect("cannot run cargo");
        assert!(status.success(), "building lambent-echo-runtime failed");
    }
    std::fs::read(&bin).unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}
