//! The soak under faults (`scripts/soak [MINUTES]`): a real `lambent up` on the embedded
//! SQLite store, its data dir on a small tmpfs of its own, under mixed load — sync invokes,
//! async invokes, an HTTP route, queue sends drained by an event-source mapping, topic
//! publishes, a schedule firing every second — while a chaos loop SIGKILLs random sandboxes,
//! the Python zygote, package zygotes, stem cells and the server itself (restarted on the same
//! data dir), fills the data disk (then frees it) and applies memory pressure (a function that
//! outgrows its memory, and an allocation in this process).
//!
//! Every unit of work carries an id that the function prints (`SOAK <id>`) into its
//! activation record; sync invokes and routes also echo it in their answer. At the end
//! (after the faults stop and the work drains) the soak counts per kind: accepted, completed,
//! lost (accepted, never completed: must be 0), duplicated (completed by more than one
//! successful activation), and the 5xx answers by their error code; the server's RSS and
//! open descriptors over time; and, after the last (graceful) stop, what is left: processes,
//! cgroups, network namespaces, mounts and temp files (must all be 0). It prints the table
//! and exits non-zero on any loss or leftover.
//!
//! Usage: `soak --bin PATH/TO/lambent [--minutes M] [--seconds S] [--out FILE]` (root).

use lambent_testkit::tmpfs::Tmpfs;
use lambent_testkit::zip_of_text as zip_of;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The kinds of work, in the table's order.
const KINDS: [&str; 6] = ["sync", "route", "async", "queue", "topic", "schedule"];

/// Prints the id of every unit of work in its event (direct, SQS batch, SNS, EventBridge,
/// API Gateway) and answers with the ids.
const ECHO_PY: &str = r#"
import json
import mypkg

def ids(event):
    if "Records" in event:
        for r in event["Records"]:
            if "Sns" in r:
                yield r["Sns"]["Message"]
            else:
                yield r["body"]
    elif event.get("detail-type") == "Scheduled Event":
        yield "schedule-" + event["id"]
    elif "requestContext" in event:
        yield json.loads(event.get("body") or "{}").get("id")
    else:
        yield event.get("id")

def handler(event, context):
    got = [i for i in ids(event) if i]
    for i in got:
        print("SOAK " + i)
    return {"ids": got, "pkg": mypkg.VERSION}
"#;

/// Outgrows its 128 MB: memory pressure inside a sandbox (the kernel's OOM killer).
const HOG_PY: &str = r#"
def handler(event, context):
    hog = []
    for _ in range(64):
        hog.append(bytearray(8 * 1024 * 1024))
    return len(hog)
"#;

/// Node.js: keeps stem cells around for the chaos loop to kill.
const NODE_JS: &str = "exports.handler = async (event) => ({ id: event.id });\n";

struct Options {
    bin: PathBuf,
    duration: Duration,
    out: Option<PathBuf>,
    /// Whether the server is SIGKILLed (about every quarter of the run); without, one server
    /// start spans the whole run, so its memory over time is the leak check.
    server_kills: bool,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        bin: PathBuf::from("target/debug/lambent"),
        duration: Duration::from_secs(600),
        out: None,
        server_kills: true,
    };
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--bin" => o.bin = value().into(),
            "--minutes" => {
                o.duration = Duration::from_secs_f64(value().parse::<f64>().unwrap() * 60.0)
            }
            "--seconds" => o.duration = Duration::from_secs(value().parse().unwrap()),
            "--out" => o.out = Some(value().into()),
            "--no-server-kills" => o.server_kills = false,
            other => {
                panic!("unknown argument {other}: --bin PATH --minutes M --seconds S --out FILE --no-server-kills")
            }
        }
    }
    o
}

/// The running server, replaced on each restart.
struct Server {
    child: Child,
}

/// What every load thread shares.
struct Shared {
    server: RwLock<Option<(String, String)>>,
    stop: AtomicBool,
    counts: Mutex<BTreeMap<&'static str, KindCounts>>,
    http: reqwest::blocking::Client,
}

#[derive(Default)]
struct KindCounts {
    /// Ids the server accepted (2xx).
    accepted: Vec<String>,
    /// Ids whose answer already proves completion (sync, route).
    answered: HashSet<String>,
    /// 5xx answers by their error code.
    errors_5xx: BTreeMap<String, u64>,
    /// Refused without an answer (the server was down) or with a 4xx (throttles).
    refused: u64,
    /// Sync and route: answered 2xx with the function's error instead of its echo (a sandbox
    /// killed under it); the caller knows, nothing is retried.
    failed_answered: u64,
}

/// The server's footprint at one moment of the run.
struct Sample {
    /// Seconds since the soak started.
    second: u64,
    pid: u32,
    rss_kb: u64,
    /// The heap's part of the RSS (what a leak grows), without mapped files.
    anon_kb: u64,
    fds: u64,
}

struct Soak {
    opts: Options,
    home: tempfile::TempDir,
    disk: Tmpfs,
    cgroup_parent: String,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
    starts: AtomicU64,
    samples: Mutex<Vec<Sample>>,
    /// When the load and faults stopped (seconds since start): later samples are the drain's
    /// reading of every record, not the steady state a leak shows in.
    load_end: AtomicU64,
    faults: Mutex<BTreeMap<String, u64>>,
    /// Network namespaces the servers and their sandboxes held (inode numbers).
    netns_seen: Mutex<HashSet<u64>>,
    t0: Instant,
}

fn main() {
    let opts = options();
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the soak needs root (sandboxes, a tmpfs)"
    );
    let before = Inventory::take(None);
    let home = tempfile::Builder::new()
        .prefix("lambent-soak-")
        .tempdir()
        .unwrap();
    std::fs::create_dir_all(home.path().join("tmp")).unwrap();
    let disk = Tmpfs::mount(256).expect("mount the data tmpfs");
    let soak = Arc::new(Soak {
        cgroup_parent: format!("lambent/soak-{}", std::process::id()),
        opts,
        home,
        disk,
        shared: Arc::new(Shared {
            server: RwLock::new(None),
            stop: AtomicBool::new(false),
            counts: Mutex::new(KINDS.iter().map(|k| (*k, KindCounts::default())).collect()),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        }),
        server: Mutex::new(None),
        starts: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
        load_end: AtomicU64::new(u64::MAX),
        faults: Mutex::new(BTreeMap::new()),
        netns_seen: Mutex::new(HashSet::new()),
        t0: Instant::now(),
    });
    soak.start_server();
    soak.set_up();
    eprintln!("soak: load and faults for {:?}", soak.opts.duration);

    let mut threads = Vec::new();
    for kind in ["sync", "route", "async", "queue", "topic"] {
        let shared = soak.shared.clone();
        threads.push(std::thread::spawn(move || load(&shared, kind)));
    }
    let sampler = {
        let soak = soak.clone();
        std::thread::spawn(move || soak.sample_until_stopped())
    };
    soak.chaos();
    soak.load_end.store(soak.elapsed(), Ordering::SeqCst);
    soak.shared.stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }
    eprintln!("soak: load stopped; draining");
    let report = soak.drain_and_count();
    soak.stop_server();
    sampler.join().unwrap();
    let after = Inventory::take(Some(&soak));
    let leftovers = after.left_over(&before, &soak);
    let text = soak.table(&report, &leftovers);
    println!("{text}");
    if let Some(out) = &soak.opts.out {
        std::fs::write(out, &text).unwrap();
        // Every sample, for a plot of memory and descriptors over the run.
        let mut csv = String::from("second,pid,rss_kb,anon_kb,fds\n");
        for s in soak.samples.lock().unwrap().iter() {
            writeln!(
                csv,
                "{},{},{},{},{}",
                s.second, s.pid, s.rss_kb, s.anon_kb, s.fds
            )
            .unwrap();
        }
        std::fs::write(out.with_extension("samples.csv"), csv).unwrap();
    }
    let lost: u64 = report.values().map(|r| r.lost).sum();
    let left: usize = leftovers.values().map(Vec::len).sum();
    soak.remove_cgroup_parent();
    if lost > 0 || left > 0 {
        eprintln!("soak FAILED: {lost} lost, {left} left over");
        std::process::exit(1);
    }
    eprintln!("soak passed");
}

impl Soak {
    fn data(&self) -> PathBuf {
        self.disk.path().join("data")
    }

    fn elapsed(&self) -> u64 {
        self.t0.elapsed().as_secs()
    }

    fn fault(&self, what: &str) {
        *self
            .faults
            .lock()
            .unwrap()
            .entry(what.to_string())
            .or_default() += 1;
    }

    /// Starts `lambent up` on the data dir and waits for its URL and key.
    fn start_server(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.home.path().join("server.log"))
            .unwrap();
        let mut child = Command::new(&self.opts.bin)
            .args([
                "up",
                "--listen",
                "127.0.0.1:0",
                "--keep-alive",
                "20",
                "--data-dir",
            ])
            .arg(self.data())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("TMPDIR", self.home.path().join("tmp"))
            .env("LAMBENT_CGROUP_PARENT", &self.cgroup_parent)
            .env_remove("LAMBENT_API_KEY")
            .env_remove("LAMBENT_ADMIN_KEY")
            .env_remove("LAMBENT_URL")
            .env_remove("LAMBENT_DATA_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start lambent up");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
        let url = next()
            .strip_prefix("lambent is up at ")
            .unwrap_or_else(|| {
                panic!(
                    "lambent up did not start: see {}",
                    self.home.path().join("server.log").display()
                )
            })
            .to_string();
        let key = next()
            .strip_prefix("api key: ")
            .expect("the key line")
            .to_string();
        // Keep reading what it prints, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        *self.shared.server.write().unwrap() = Some((url, key));
        *self.server.lock().unwrap() = Some(Server { child });
        self.starts.fetch_add(1, Ordering::SeqCst);
    }

    fn server_pid(&self) -> Option<u32> {
        self.server.lock().unwrap().as_ref().map(|s| s.child.id())
    }

    /// SIGKILLs the server and starts it again on the same data dir.
    fn kill_and_restart_server(&self) {
        *self.shared.server.write().unwrap() = None;
        if let Some(mut s) = self.server.lock().unwrap().take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        std::thread::sleep(Duration::from_millis(300));
        self.start_server();
    }

    /// Stops the server gracefully (SIGTERM) and waits for it.
    fn stop_server(&self) {
        *self.shared.server.write().unwrap() = None;
        if let Some(mut s) = self.server.lock().unwrap().take() {
            unsafe { libc::kill(s.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            while s.child.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    eprintln!("soak: the server did not stop within 60 s: killed");
                    let _ = s.child.kill();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn api(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        call(&self.shared, method, path, body).expect("the server answers during set-up")
    }

    fn ok(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let (s, v) = self.api(method.clone(), path, body);
        assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
        v
    }

    fn deploy(&self, name: &str, runtime: &str, files: &[(&str, &str)], memory: u32) {
        let zip = zip_of(files);
        let (url, key) = self.shared.server.read().unwrap().clone().unwrap();
        let code: Value = self
            .shared
            .http
            .post(format!("{url}/v1/code"))
            .bearer_auth(&key)
            .body(zip)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let handler = if runtime.starts_with("node") {
            "index.handler"
        } else {
            "app.handler"
        };
        self.ok(
            reqwest::Method::PUT,
            &format!("/v1/functions/{name}"),
            json!({"runtime": runtime, "handler": handler, "memory": memory, "timeout": 10,
                   "code_sha256": code["sha256"],
                   "async": {"max_retries": 2, "max_event_age_s": 3600}}),
        );
    }

    /// The functions, the route, the queue with its mapping, the topic with its
    /// subscription, and the schedule.
    fn set_up(&self) {
        use reqwest::Method;
        let pkg = "VERSION = 1\n";
        self.deploy(
            "soak-echo",
            "python3.12",
            &[("app.py", ECHO_PY), ("mypkg/__init__.py", pkg)],
            128,
        );
        self.deploy("soak-hog", "python3.12", &[("app.py", HOG_PY)], 128);
        self.deploy("soak-node", "nodejs20.x", &[("index.js", NODE_JS)], 128);
        self.ok(
            Method::POST,
            "/v1/routes",
            json!({"method": "POST", "path": "/soak", "function": "soak-echo"}),
        );
        self.ok(
            Method::POST,
            "/v1/queues",
            json!({"name": "soak-q", "visibility_timeout": 30}),
        );
        self.ok(
            Method::POST,
            "/v1/mappings",
            json!({"queue": "soak-q", "function": "soak-echo", "batch_size": 10}),
        );
        self.ok(Method::POST, "/v1/topics", json!({"name": "soak-t"}));
        self.ok(
            Method::POST,
            "/v1/topics/soak-t/subscriptions",
            json!({"function": "soak-echo"}),
        );
        self.ok(
            Method::POST,
            "/v1/schedules",
            json!({"name": "soak-s", "function": "soak-echo", "cron": "* * * * * *"}),
        );
        let (s, v) = self.api(
            Method::POST,
            "/v1/functions/soak-node/invoke",
            json!({"id": "warm"}),
        );
        assert_eq!(s, 200, "node: {v}");
    }

    /// The faults, one every few seconds, until the duration is over.
    fn chaos(&self) {
        use rand::seq::SliceRandom;
        use rand::Rng;
        let end = Instant::now() + self.opts.duration;
        let mut rng = rand::thread_rng();
        // The server is killed every ~quarter of the run (at least once), the disk filled
        // about as often; the cheaper faults in between.
        let every = (self.opts.duration / 4).max(Duration::from_secs(20));
        let mut next_server_kill = Instant::now() + every / 2;
        let mut next_disk_fill = Instant::now() + every;
        while Instant::now() < end {
            std::thread::sleep(Duration::from_millis(rng.gen_range(1500..3500)));
            let now = Instant::now();
            if self.opts.server_kills
                && now >= next_server_kill
                && now + Duration::from_secs(15) < end
            {
                next_server_kill = now + every;
                eprintln!("soak [{}s]: SIGKILL the server", self.elapsed());
                self.fault("server SIGKILLed and restarted");
                self.kill_and_restart_server();
                continue;
            }
            if now >= next_disk_fill && now + Duration::from_secs(15) < end {
                next_disk_fill = now + every;
                let n = self.disk.fill().unwrap_or(0);
                eprintln!(
                    "soak [{}s]: data disk full ({} MB written)",
                    self.elapsed(),
                    n >> 20
                );
                self.fault("data disk filled for 5 s");
                std::thread::sleep(Duration::from_secs(5));
                self.disk.free().unwrap();
                continue;
            }
            let Some(server) = self.server_pid() else {
                continue;
            };
            let procs = processes_of(server, &self.cgroup_parent);
            let pick: &[&str] = &[
                "sandbox",
                "python zygote",
                "package zygote",
                "stem cell",
                "made ahead",
                "memory",
            ];
            let kind = *pick.choose(&mut rng).unwrap();
            if kind == "memory" {
                self.memory_pressure();
                continue;
            }
            let candidates: Vec<&(u32, String)> = procs.iter().filter(|(_, k)| k == kind).collect();
            if let Some((pid, k)) = candidates.choose(&mut rng) {
                unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
                self.fault(&format!("SIGKILL {k}"));
            }
        }
    }

    /// A function that outgrows its memory, and 1 GiB touched in this process for 3 s.
    fn memory_pressure(&self) {
        let shared = self.shared.clone();
        std::thread::spawn(move || {
            let _ = call(
                &shared,
                reqwest::Method::POST,
                "/v1/functions/soak-hog/invoke",
                json!({}),
            );
        });
        let mut hog = vec![0u8; 1 << 30];
        for i in (0..hog.len()).step_by(4096) {
            hog[i] = 1;
        }
        std::thread::sleep(Duration::from_secs(3));
        drop(hog);
        self.fault("memory pressure (OOM in a sandbox + 1 GiB on the host)");
    }

    fn sample_until_stopped(&self) {
        loop {
            let Some(pid) = self.server_pid() else {
                if self.shared.stop.load(Ordering::SeqCst) && self.server.lock().unwrap().is_none()
                {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kb = |field: &str| -> u64 {
                status
                    .lines()
                    .find(|l| l.starts_with(field))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                    .unwrap_or(0)
            };
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count() as u64)
                .unwrap_or(0);
            let (rss_kb, anon_kb) = (kb("VmRSS:"), kb("RssAnon:"));
            if rss_kb > 0 {
                self.samples.lock().unwrap().push(Sample {
                    second: self.elapsed(),
                    pid,
                    rss_kb,
                    anon_kb,
                    fds,
                });
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Waits until every accepted unit of work is done (or 120 s pass), then counts.
    fn drain_and_count(&self) -> BTreeMap<&'static str, Row> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let seen = self.completions();
            let report = self.count(&seen);
            let lost: u64 = report.values().map(|r| r.lost).sum();
            if lost == 0 || Instant::now() > deadline {
                return report;
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    }

    /// Every id printed by a successful activation of `soak-echo`: how many activations.
    fn completions(&self) -> HashMap<String, u64> {
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut before: Option<String> = None;
        loop {
            let mut path =
                "/v1/activations?function=soak-echo&status=success&limit=1000".to_string();
            if let Some(b) = &before {
                path.push_str(&format!("&cursor={b}"));
            }
            let Some((200, page)) = call(&self.shared, reqwest::Method::GET, &path, Value::Null)
            else {
                std::thread::sleep(Duration::from_secs(1));
                continue;
            };
            let list = page["activations"].as_array().cloned().unwrap_or_default();
            for a in &list {
                let mut ids = HashSet::new();
                for line in a["logs"].as_str().unwrap_or("").lines() {
                    if let Some(id) = line.strip_prefix("SOAK ") {
                        ids.insert(id.trim().to_string());
                    }
                }
                for id in ids {
                    *seen.entry(id).or_default() += 1;
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) if !list.is_empty() => before = Some(next.to_string()),
                _ => return seen,
            }
        }
    }

    fn count(&self, seen: &HashMap<String, u64>) -> BTreeMap<&'static str, Row> {
        let counts = self.shared.counts.lock().unwrap();
        let mut report = BTreeMap::new();
        for (kind, c) in counts.iter() {
            let mut row = Row {
                refused: c.refused,
                failed_answered: c.failed_answered,
                errors_5xx: c.errors_5xx.clone(),
                ..Row::default()
            };
            if *kind == "schedule" {
                let fires: Vec<(&String, &u64)> = seen
                    .iter()
                    .filter(|(id, _)| id.starts_with("schedule-"))
                    .collect();
                row.accepted = fires.len() as u64;
                row.completed = fires.len() as u64;
                row.duplicated = fires.iter().filter(|(_, n)| **n > 1).count() as u64;
            } else {
                row.accepted = c.accepted.len() as u64;
                for id in &c.accepted {
                    let n = seen.get(id).copied().unwrap_or(0);
                    if n > 0 || c.answered.contains(id) {
                        row.completed += 1;
                    } else {
                        row.lost += 1;
                        if row.lost_ids.len() < 5 {
                            row.lost_ids.push(id.clone());
                        }
                    }
                    if n > 1 {
                        row.duplicated += 1;
                    }
                }
            }
            report.insert(*kind, row);
        }
        report
    }

    fn remove_cgroup_parent(&self) {
        for dir in cgroup_parents(&self.cgroup_parent) {
            let _ = std::fs::remove_dir(dir);
        }
    }

    fn table(
        &self,
        report: &BTreeMap<&'static str, Row>,
        leftovers: &BTreeMap<&'static str, Vec<String>>,
    ) -> String {
        let mut t = String::new();
        let minutes = self.opts.duration.as_secs_f64() / 60.0;
        t.push_str(&format!(
            "## Soak: {minutes:.1} min of load under faults, {} server starts\n\n",
            self.starts.load(Ordering::SeqCst)
        ));
        t.push_str("| kind | accepted | completed | lost | duplicated | function error answered | refused (server down, 4xx) | 5xx by cause |\n");
        t.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n");
        for kind in KINDS {
            let r = &report[kind];
            let causes = if r.errors_5xx.is_empty() {
                "none".to_string()
            } else {
                r.errors_5xx
                    .iter()
                    .map(|(c, n)| format!("{n} {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let accepted = if kind == "schedule" {
                format!("{} fires", r.accepted)
            } else {
                r.accepted.to_string()
            };
            t.push_str(&format!(
                "| {kind} | {accepted} | {} | **{}** | {} | {} | {} | {causes} |\n",
                r.completed, r.lost, r.duplicated, r.failed_answered, r.refused
            ));
            if !r.lost_ids.is_empty() {
                t.push_str(&format!(
                    "|  | lost e.g. {} | | | | | | |\n",
                    r.lost_ids.join(", ")
                ));
            }
        }
        t.push_str("\nFaults: ");
        t.push_str(
            &self
                .faults
                .lock()
                .unwrap()
                .iter()
                .map(|(f, n)| format!("{n}× {f}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
        t.push_str("\n\n| server (per start) | samples | RSS MB after warm-up → end of load (max; after the drain) | of it anonymous (heap) MB | open fds after warm-up → end of load (max) |\n| --- | ---: | --- | --- | --- |\n");
        let samples = self.samples.lock().unwrap();
        let mut pids: Vec<u32> = Vec::new();
        for s in samples.iter() {
            if !pids.contains(&s.pid) {
                pids.push(s.pid);
            }
        }
        for (n, pid) in pids.iter().enumerate() {
            let all: Vec<&Sample> = samples.iter().filter(|s| s.pid == *pid).collect();
            let load_end = self.load_end.load(Ordering::SeqCst);
            let under_load: Vec<&Sample> = all
                .iter()
                .copied()
                .filter(|s| s.second <= load_end)
                .collect();
            let drained = all[all.len() - 1];
            let mine = if under_load.is_empty() {
                all
            } else {
                under_load
            };
            // Warm-up: the first quarter of its samples (at least the first).
            let w = mine[(mine.len() / 4).min(mine.len() - 1)];
            let last = mine[mine.len() - 1];
            let max = |f: fn(&Sample) -> u64| mine.iter().map(|s| f(s)).max().unwrap_or(0);
            let mb = |kb: u64| kb as f64 / 1024.0;
            t.push_str(&format!(
                "| start {} ({}s–{}s) | {} | {:.1} → {:.1} ({:.1}; {:.1}) | {:.1} → {:.1} ({:.1}; {:.1}) | {} → {} ({}) |\n",
                n + 1,
                mine[0].second,
                last.second,
                mine.len(),
                mb(w.rss_kb),
                mb(last.rss_kb),
                mb(max(|s| s.rss_kb)),
                mb(drained.rss_kb),
                mb(w.anon_kb),
                mb(last.anon_kb),
                mb(max(|s| s.anon_kb)),
                mb(drained.anon_kb),
                w.fds,
                last.fds,
                max(|s| s.fds),
            ));
        }
        t.push_str("\n| left over after the last stop | count | which |\n| --- | ---: | --- |\n");
        for (what, items) in leftovers {
            let which: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
            t.push_str(&format!(
                "| {what} | **{}** | {} |\n",
                items.len(),
                which.join("; ")
            ));
        }
        t
    }
}

#[derive(Default)]
struct Row {
    accepted: u64,
    completed: u64,
    lost: u64,
    duplicated: u64,
    refused: u64,
    failed_answered: u64,
    errors_5xx: BTreeMap<String, u64>,
    lost_ids: Vec<String>,
}

/// One request to the current server: `None` when there is none or it did not answer.
fn call(shared: &Shared, method: reqwest::Method, path: &str, body: Value) -> Option<(u16, Value)> {
    let (url, key) = shared.server.read().unwrap().clone()?;
    let mut req = shared
        .http
        .request(method, format!("{url}{path}"))
        .bearer_auth(key);
    if !body.is_null() {
        req = req.body(body.to_string());
    }
    let resp = req.send().ok()?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().ok()?;
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Some((status, value))
}

/// One load thread: sends work of `kind` until told to stop, a few per second.
fn load(shared: &Shared, kind: &'static str) {
    use reqwest::Method;
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        n += 1;
        let id = format!("{kind}-{n}");
        let (path, body, method) = match kind {
            "sync" => (
                "/v1/functions/soak-echo/invoke".to_string(),
                json!({"id": id}),
                Method::POST,
            ),
            "route" => ("/soak".to_string(), json!({"id": id}), Method::POST),
            "async" => (
                "/v1/functions/soak-echo/invoke?async=true".to_string(),
                json!({"id": id}),
                Method::POST,
            ),
            "queue" => (
                "/v1/queues/soak-q/messages".to_string(),
                json!({"body": id}),
                Method::POST,
            ),
            _ => (
                "/v1/topics/soak-t/publish".to_string(),
                json!({"message": id}),
                Method::POST,
            ),
        };
        let answer = call(shared, method, &path, body);
        let mut counts = shared.counts.lock().unwrap();
        let c = counts.get_mut(kind).unwrap();
        match answer {
            None => c.refused += 1,
            Some((s, v)) if (200..300).contains(&s) => {
                let echoed = v["ids"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i == id.as_str()));
                match (kind, echoed) {
                    (_, true) => {
                        c.accepted.push(id.clone());
                        c.answered.insert(id);
                    }
                    // The function's error, answered to the caller (its sandbox was killed
                    // under it): nothing to retry, nothing lost.
                    ("sync" | "route", false) => c.failed_answered += 1,
                    _ => c.accepted.push(id),
                }
            }
            Some((s, v)) if s >= 500 => {
                let code = v["error"]["code"]
                    .as_str()
                    .or(v["errorType"].as_str())
                    .or(v["message"].as_str())
                    .unwrap_or("(no code)");
                *c.errors_5xx.entry(format!("{s} {code}")).or_default() += 1;
            }
            Some(_) => c.refused += 1,
        }
        drop(counts);
        std::thread::sleep(Duration::from_millis(
            if kind == "sync" || kind == "route" {
                40
            } else {
                60
            },
        ));
    }
}

/// The server's processes worth killing, by kind: `(pid, kind)`.
fn processes_of(server: u32, cgroup_parent: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == server {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("PPid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
            })
            .unwrap_or(0);
        let pids_line = cgroup
            .lines()
            .find(|l| l.contains(":pids:") || l.starts_with("0::"))
            .unwrap_or("");
        let ours = pids_line.contains(cgroup_parent);
        let zygote = cmdline.contains("zygote.py");
        let kind = if zygote && !ours && ppid == server {
            "python zygote"
        } else if !ours {
            continue;
        } else if pids_line.contains("/sb-ready-") && cmdline.contains("bootstrap.mjs") {
            "stem cell"
        } else if pids_line.contains("/sb-ready-") {
            "made ahead"
        } else if zygote && ppid != server {
            "package zygote"
        } else {
            "sandbox"
        };
        out.push((pid, kind.to_string()));
    }
    out
}

fn cgroup_parents(parent: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs: Vec<PathBuf> = ["memory", "pids", "freezer", "cpu"]
        .iter()
        .map(|c| root.join(c).join(parent))
        .collect();
    dirs.push(root.join(parent));
    dirs.push(root.join("unified").join(parent));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The network namespaces process `pid` is in or holds a descriptor of (inode numbers).
fn net_namespaces_of(pid: u32) -> HashSet<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut out = HashSet::new();
    if let Ok(meta) = std::fs::metadata(format!("/proc/{pid}/ns/net")) {
        out.insert(meta.ino());
    }
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            let link = std::fs::read_link(fd.path()).unwrap_or_default();
            let link = link.to_string_lossy();
            if let Some(n) = link.strip_prefix("net:[").and_then(|r| r.strip_suffix(']')) {
                out.extend(n.parse::<u64>().ok());
            }
        }
    }
    out
}

/// What the machine holds that a server could leave behind.
struct Inventory {
    /// Every network namespace some process is in or holds, now.
    netns: HashSet<u64>,
    nsfs_mounts: HashSet<String>,
}

impl Inventory {
    fn take(_soak: Option<&Soak>) -> Inventory {
        let mut netns = HashSet::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                if let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() {
                    netns.extend(net_namespaces_of(pid));
                }
            }
        }
        let nsfs_mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" - nsfs "))
            .map(str::to_string)
            .collect();
        Inventory { netns, nsfs_mounts }
    }

    /// What is left now that was not there before, and anything of the soak's own.
    fn left_over(&self, before: &Inventory, soak: &Soak) -> BTreeMap<&'static str, Vec<String>> {
        let mut left: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
        // Processes: anything in the soak's cgroups, or running from its data dir.
        let data = soak.disk.path().to_string_lossy().into_owned();
        let mut procs = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let cgroup =
                    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
                let cmdline = String::from_utf8_lossy(
                    &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default(),
                )
                .replace('\0', " ");
                if cgroup.contains(&soak.cgroup_parent) || cmdline.contains(&data) {
                    procs.push(format!(
                        "{pid} {}",
                        cmdline.chars().take(60).collect::<String>()
                    ));
                }
            }
        }
        left.insert("processes", procs);
        let mut cgroups = Vec::new();
        for parent in cgroup_parents(&soak.cgroup_parent) {
            collect_dirs(&parent, &mut cgroups);
        }
        left.insert("cgroups", cgroups);
        // Those the servers' sandboxes and pools held that still exist (some process is in
        // one or holds it, or it is bind-mounted), other than ones there before; the machine's
        // other processes' namespaces come and go and are not counted.
        let seen = soak.netns_seen.lock().unwrap();
        let mut netns: Vec<String> = seen
            .iter()
            .filter(|i| self.netns.contains(i) && !before.netns.contains(i))
            .map(|i| format!("net:[{i}]"))
            .collect();
        netns.extend(
            self.nsfs_mounts
                .difference(&before.nsfs_mounts)
                .filter(|l| seen.iter().any(|i| l.contains(&format!("net:[{i}]"))))
                .cloned(),
        );
        left.insert("network namespaces", netns);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                let point = l.split_whitespace().nth(4).unwrap_or("");
                point.starts_with(&data) && point != data
            })
            .map(str::to_string)
            .collect();
        left.insert("mounts", mounts);
        let mut temp = Vec::new();
        for dir in [
            soak.home.path().join("tmp"),
            soak.data().join("sandboxes/rootfs"),
        ] {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                temp.extend(entries.flatten().map(|e| e.path().display().to_string()));
            }
        }
        left.insert("temp files", temp);
        left
    }
}

/// Every directory below `dir` (not `dir` itself).
fn collect_dirs(dir: &Path, out: &mut Vec<String>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            out.push(e.path().display().to_string());
            collect_dirs(&e.path(), out);
        }
    }
}
