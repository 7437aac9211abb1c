//! `wrk` as the benchmarks' load generator from outside their process: finding it, the Lua
//! script of a set of prepared requests sent in turn, running it (several at once if wanted)
//! with its own CPU time measured, and reading what it printed (requests, errors, seconds and,
//! with `--latency`, the 50th and 99th percentiles).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The `wrk` on `PATH`; panics saying how to install it if there is none.
pub fn find() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("wrk"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("this bench needs wrk as its load generator: apt-get install -y wrk")
    })
}

/// One HTTP request of a script.
#[derive(Clone, Debug)]
pub struct ScriptRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// A Lua string literal of `s` (quotes, backslashes and control bytes escaped).
fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for b in s.bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            // Decimal escapes are byte-exact for UTF-8 and control bytes alike.
            _ => out.push_str(&format!("\\{b:03}")),
        }
    }
    out.push('"');
    out
}

/// Writes `dir/<file>.lua`: each wrk thread formats `requests` once at start-up and then sends
/// them in turn, starting at `offset` (so that several wrk processes do not move in lockstep).
/// wrk sends exactly these bytes: a signed request is replayed as it was signed.
pub fn script(dir: &Path, file: &str, requests: &[ScriptRequest], offset: usize) -> PathBuf {
    assert!(!requests.is_empty(), "a wrk script needs a request");
    let path = dir.join(format!("{file}.lua"));
    let mut lua = String::from("local specs = {\n");
    for r in requests {
        let headers: Vec<String> = r
            .headers
            .iter()
            .map(|(n, v)| format!("[{}] = {}", lua_string(n), lua_string(v)))
            .collect();
        lua.push_str(&format!(
            "  {{ {}, {}, {{ {} }}, {} }},\n",
            lua_string(&r.method),
            lua_string(&r.path),
            headers.join(", "),
            lua_string(&r.body),
        ));
    }
    lua.push_str(&format!(
        r#"}}
local formatted = {{}}
local i = {offset}
init = function(args)
  for k, s in ipairs(specs) do
    formatted[k] = wrk.format(s[1], s[2], s[3], s[4])
  end
end
request = function()
  i = i % #formatted + 1
  return formatted[i]
end
"#
    ));
    std::fs::write(&path, lua).unwrap();
    path
}

/// What one wrk run printed.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    /// Requests completed (any status).
    pub requests: u64,
    /// Non-2xx/3xx answers and socket errors.
    pub errors: u64,
    pub secs: f64,
    /// Latency percentiles (wrk's `--latency` distribution).
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// wrk's whole report.
    pub report: String,
}

impl Measured {
    /// Successful requests.
    pub fn ok(&self) -> u64 {
        self.requests - self.errors.min(self.requests)
    }

    /// Successful requests per second.
    pub fn rps(&self) -> f64 {
        self.ok() as f64 / self.secs.max(f64::MIN_POSITIVE)
    }
}

/// A wrk duration (`830.00us`, `1.23ms`, `2.00s`, `1.50m`) in seconds.
fn seconds(t: &str) -> Option<f64> {
    let t = t.trim();
    let (n, scale) = if let Some(n) = t.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t.strip_suffix('s').unwrap_or(t), 1.0)
    };
    n.parse::<f64>().ok().map(|n| n * scale)
}

/// Reads wrk's report.
pub fn parse(out: &str) -> Measured {
    let mut run = Measured {
        report: out.to_string(),
        ..Measured::default()
    };
    for line in out.lines().map(str::trim) {
        if let Some((n, rest)) = line.split_once(" requests in ") {
            run.requests = n.trim().parse().unwrap_or(0);
            run.secs = seconds(rest.split(',').next().unwrap_or("")).unwrap_or(0.0);
        } else if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += n.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // connect N, read N, write N, timeout N: connection-level failures.
            run.errors += rest
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(t) = line.strip_prefix("50%") {
            run.p50 = seconds(t).map(Duration::from_secs_f64);
        } else if let Some(t) = line.strip_prefix("99%") {
            run.p99 = seconds(t).map(Duration::from_secs_f64);
        }
    }
    run
}

/// A wrk run's settings.
#[derive(Clone, Debug)]
pub struct Load<'a> {
    pub threads: usize,
    pub connections: usize,
    pub secs: u64,
    pub script: &'a Path,
    pub url: &'a str,
}

/// A wrk process running.
pub struct Running {
    child: Child,
}

/// Starts wrk (with `--latency`); [`Running::finish`] waits for it.
pub fn start(wrk: &Path, load: &Load<'_>) -> Running {
    let child = Command::new(wrk)
        .args(["-t", &load.threads.to_string()])
        .args(["-c", &load.connections.to_string()])
        .args([
            "-d",
            &format!("{}s", load.secs),
            "--timeout",
            "10s",
            "--latency",
        ])
        .arg("-s")
        .arg(load.script)
        .arg(load.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start wrk");
    Running { child }
}

impl Running {
    /// Waits for wrk; what it measured and the CPU time it used itself (user + system).
    /// Panics if it measured nothing.
    pub fn finish(self) -> (Measured, Duration) {
        let (run, cpu) = self.outcome();
        assert!(run.requests > 0, "wrk measured nothing: {}", run.report);
        (run, cpu)
    }

    /// [`Running::finish`], but a run that completed no request is an answer too (a warm-up
    /// whose requests all outlived it).
    pub fn outcome(self) -> (Measured, Duration) {
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is a valid value to be overwritten.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own child with valid out-pointers; its pipes hold its short
        // report until it is read below.
        unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        let mut out = String::new();
        let mut err = String::new();
        use std::io::Read;
        if let Some(mut stdout) = self.child.stdout {
            let _ = stdout.read_to_string(&mut out);
        }
        if let Some(mut stderr) = self.child.stderr {
            let _ = stderr.read_to_string(&mut err);
        }
        let mut run = parse(&out);
        run.report.push_str(&err);
        (run, time(usage.ru_utime) + time(usage.ru_stime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "Running 2s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  21.00ms   80.00%
    Req/Sec    20.50k     1.00k   22.00k    70.00%
  Latency Distribution
     50%    2.95ms
     75%    3.50ms
     90%    4.10ms
     99%  830.00us
  41000 requests in 2.00s, 10.00MB read
  Socket errors: connect 0, read 2, write 1, timeout 0
  Non-2xx or 3xx responses: 7
Requests/sec:  20500.00
Transfer/sec:      5.00MB
";

    #[test]
    fn a_report_gives_requests_errors_time_and_percentiles() {
        let m = parse(REPORT);
        assert_eq!(m.requests, 41000);
        assert_eq!(m.errors, 10);
        assert_eq!(m.ok(), 40990);
        assert!((m.secs - 2.0).abs() < 1e-9);
        assert_eq!(m.p50, Some(Duration::from_micros(2950)));
        assert_eq!(m.p99, Some(Duration::from_micros(830)));
        assert!((m.rps() - 20495.0).abs() < 1e-6);
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(seconds("1.50m"), Some(90.0));
        assert_eq!(seconds("250.00us"), Some(0.00025));
        assert_eq!(seconds("2s"), Some(2.0));
        assert_eq!(seconds("x"), None);
    }

    #[test]
    fn lua_strings_escape_what_lua_would_read_otherwise() {
        assert_eq!(lua_string(r#"{"a":"b\c"}"#), r#""{\"a\":\"b\\c\"}""#);
        assert_eq!(lua_string("é\n"), "\"\\195\\169\\010\"");
    }
}
