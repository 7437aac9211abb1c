//! The cluster benchmark: real `lambent up` processes on one private PostgreSQL and one private
//! NATS (started by `lambent-testkit`), driven from outside through their HTTP front doors.
//! One command prints one markdown table (also written to `target/cluster_bench.md`), every
//! ratio against a baseline measured in the same run:
//!
//! 1. **Warm throughput on 1, 2 and 3 nodes**, each node confined to the same CPU quota, under
//!    `wrk` (out of process, outside every quota) with one `wrk` per front door run
//!    concurrently and their successful requests/s summed. The function is a compiled no-op
//!    (`lambent-echo-runtime`, a `provided` runtime echoing `{}`). The load cycles through
//!    `LAMBENT_BENCH_FUNCTIONS` (default 60) such functions, `noop-0`…: with warm affinity every
//!    invocation of one function runs on its home node (chosen by rendezvous hashing), so a
//!    cluster serves more only when there are more functions than nodes, which is what a FaaS
//!    platform carries. The table shows how the homes fell: hashing is not a perfect split,
//!    and the busiest node bounds the cluster. With 2 or 3 nodes, 1/2 or 2/3 of the requests
//!    arrive at a door that is not their function's home. They are forwarded to the home,
//!    unless the home is saturated right now (`lambent_cluster::spill`): the door waits on at
//!    least 4 invocations there and over 1.5 times as many as at the next node by hash (the
//!    home's CPU is the bottleneck), or the home refused one for having no room. Then the next
//!    node by hash takes it, or the door itself when it holds an idle sandbox of the function;
//!    such a warm door also takes it while the home is merely busy (the door waits on at least
//!    4 invocations there). The "run off their home" column counts those spills. A spilled invocation run at the door
//!    costs what a local one does; a forwarded one more (part 2).
//!    Each node's CPU time (node and sandboxes, from its cgroup's accounting) divided by the
//!    invocations served is printed too: unlike throughput, it is little moved by whatever
//!    else runs on the machine.
//! 2. **CPU per invocation, local against forwarded** (on the two-node cluster): wrk at one
//!    door over fresh functions homed there, then over fresh functions homed on the other
//!    node; each node's CPU per invocation gives what a local invocation costs, and what a
//!    forwarded one costs at the door and at the home. From those, the ratio three CPU-bound,
//!    evenly loaded nodes would reach over one.
//! 3. **Forwarded against local invoke latency** (p50, p99): one front door, two warm functions,
//!    one whose home is that node and one whose home is another, invoked one after the other,
//!    interleaved, over one kept-alive connection. Homes are read from activation records.
//! 4. **Recovery after a SIGKILL**: the schedule leader (the node holding the `lambent:schedules`
//!    lease in `GET /v1/nodes`) is killed; measured from the kill, until (a) an asynchronous
//!    event of a function whose home was the killed node, enqueued through a surviving node
//!    just after the kill, has a successful activation record, and (b) a schedule firing every
//!    second has fired again. The killed node is restarted and rejoins between repetitions.
//!
//! ## How a node is confined
//!
//! Sandboxes get their own cgroups, which on this layout are not under the node process's
//! cgroup, so confining `lambent up` alone would leave its functions free. Each node is started
//! with `LAMBENT_CGROUP_PARENT=lambent/bench-…-nK` (read by `lambent-sandbox`): its sandboxes'
//! cgroups are created under that directory in every hierarchy. The bench sets a CFS quota on
//! that directory's cpu cgroup (`cpu.cfs_quota_us`/`cpu.cfs_period_us` on cgroup v1, `cpu.max`
//! on v2) and moves the node process into a `node` child of it: one quota covers the node and
//! all its functions' runtimes. The load generator, PostgreSQL and NATS run outside the quotas;
//! the table shows how much CPU they took and whether the quotas were the binding constraint
//! (the share of CFS periods in which a node was throttled). Latency (3) and recovery (4) are
//! measured with the quotas lifted: they are about the path, not capacity.
//!
//! Run (as root, sandboxes need it): `cargo bench -p lambent --bench cluster`. Needs `wrk`
//! (Debian: `apt-get install -y wrk`), PostgreSQL and `nats-server` as `lambent-testkit` finds
//! them, and the echo runtime (built with `cargo build --release -p lambent-server --bins` if it
//! is missing). Knobs: `LAMBENT_BENCH_QUOTA` (cores per node, default 0.4: three nodes then
//! take 1.2 of the machine's 2 cores and leave the rest to wrk, PostgreSQL, NATS and the
//! kernel's share of sandbox work, which no quota covers),
//! `LAMBENT_BENCH_SECS` (seconds per throughput run, default 5), `LAMBENT_BENCH_RUNS` (runs per
//! cluster size, median reported, default 3), `LAMBENT_BENCH_CONNECTIONS` (wrk connections per
//! front door, default 16), `LAMBENT_BENCH_FUNCTIONS` (default 60), `LAMBENT_BENCH_N`
//! (invocations per latency case, default 1000), `LAMBENT_BENCH_KILLS` (recovery repetitions,
//! default 3), `LAMBENT_BENCH_ONLY` (`throughput`, `cost`, `latency` or `recovery`).

#[path = "../tests/support/mod.rs"]
mod support;

use lambent_testkit::cgroup::{cpu_of, host_cpu, CpuCgroup, PERIOD_US};
use lambent_testkit::nats::NatsServer;
use lambent_testkit::postgres::PgServer;
use lambent_testkit::wrk;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{echo_runtime, zip_of, Server};

const KEY: &str = "cluster-bench-key";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Knobs {
    quota: f64,
    secs: u64,
    runs: usize,
    connections: usize,
    functions: usize,
    n: usize,
    kills: usize,
    only: Option<String>,
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            quota: env_or("LAMBENT_BENCH_QUOTA", 0.4),
            secs: env_or("LAMBENT_BENCH_SECS", 5),
            runs: env_or("LAMBENT_BENCH_RUNS", 3),
            connections: env_or("LAMBENT_BENCH_CONNECTIONS", 16),
            functions: env_or("LAMBENT_BENCH_FUNCTIONS", 60),
            n: env_or("LAMBENT_BENCH_N", 1000),
            kills: env_or("LAMBENT_BENCH_KILLS", 3),
            only: std::env::var("LAMBENT_BENCH_ONLY").ok(),
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|o| o == part)
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The `q` quantile (nearest rank) of sorted samples.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many processes descending from `root` (itself included) are inside the cpu cgroup
/// `relative` (or below it), and how many are not.
fn confined(root: u32, relative: &str) -> (usize, usize) {
    let mut parent_of = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rfind(')')
            .and_then(|c| stat[c + 2..].split(' ').nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent_of.insert(pid, ppid);
        }
    }
    let descends = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parent_of.get(&pid) {
            Some(&p) if p > 1 => pid = p,
            _ => return false,
        }
    };
    let (mut inside, mut outside) = (0, 0);
    for &pid in parent_of.keys().filter(|p| descends(**p)) {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let cpu = cgroups.lines().find(|l| {
            let controllers = l.split(':').nth(1).unwrap_or("");
            controllers.split(',').any(|c| c == "cpu") || l.starts_with("0::")
        });
        let want = format!("/{relative}");
        if cpu.is_some_and(|l| l.ends_with(&want) || l.contains(&format!("{want}/"))) {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    (inside, outside)
}

// ---------------------------------------------------------------------------------------------
// The cluster

struct Node {
    server: Server,
    cgroup: CpuCgroup,
}

struct Cluster {
    home: tempfile::TempDir,
    store: String,
    bus: String,
    quota: f64,
    tag: String,
    nodes: BTreeMap<String, Node>,
    http: reqwest::blocking::Client,
    /// Every cgroup made, to remove at the end.
    cgroups: Vec<CpuCgroup>,
}

impl Cluster {
    fn start(size: usize, quota: f64) -> Cluster {
        let mut cluster = Cluster {
            home: tempfile::tempdir().unwrap(),
            store: PgServer::shared().fresh_database(),
            bus: NatsServer::shared().url(),
            quota,
            tag: format!("{}-{size}", std::process::id()),
            nodes: BTreeMap::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
            cgroups: Vec::new(),
        };
        for i in 1..=size {
            cluster.start_node(&format!("n{i}"));
        }
        cluster.await_members(size);
        cluster
    }

    fn start_node(&mut self, id: &str) {
        let dir = self.home.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let cgroup = CpuCgroup::create(
            &format!("{}-{id}-{}", self.tag, self.cgroups.len()),
            Some(self.quota),
        );
        let server = Server::start_in(
            &dir,
            &[
                "--store",
                &self.store,
                "--bus",
                &self.bus,
                "--node-id",
                id,
                "--shutdown-grace",
                "2",
            ],
            &[
                ("LAMBENT_API_KEY", KEY),
                ("LAMBENT_CGROUP_PARENT", &cgroup.relative),
            ],
            &cgroup.procs(),
        );
        self.cgroups.push(cgroup.clone());
        self.nodes.insert(id.to_string(), Node { server, cgroup });
    }

    fn url(&self, id: &str) -> &str {
        &self.nodes[id].server.url
    }

    fn ids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    fn set_quotas(&self, cores: Option<f64>) {
        for n in self.nodes.values() {
            n.cgroup.set_quota(cores);
        }
    }

    fn kill(&mut self, id: &str) {
        self.nodes.remove(id).expect("a running node").server.kill();
    }

    fn members(&self, id: &str) -> Value {
        self.get(self.url(id), "/v1/nodes")
    }

    fn await_members(&self, n: usize) {
        for id in self.nodes.keys() {
            eventually(30, &format!("{id} sees {n} nodes up"), || {
                let up = self.members(id)["nodes"]
                    .as_array()?
                    .iter()
                    .filter(|m| m["state"] == "up")
                    .count();
                (up == n).then_some(())
            });
        }
    }

    fn get(&self, url: &str, path: &str) -> Value {
        let response = self
            .http
            .get(format!("{url}{path}"))
            .bearer_auth(KEY)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "GET {path}: {response:?}");
        response.json().unwrap()
    }

    fn request(&self, method: reqwest::Method, url: String, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .request(method, url)
            .bearer_auth(KEY)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn invoke(&self, via: &str, function: &str, asynchronous: bool) -> (u16, Value) {
        let query = if asynchronous { "?async=true" } else { "" };
        self.request(
            reqwest::Method::POST,
            format!("{}/v1/functions/{function}/invoke{query}", self.url(via)),
            b"{}".to_vec(),
        )
    }

    /// Uploads the echo runtime once and deploys it as each of `names`.
    fn deploy(&self, names: &[String], bootstrap: &[u8]) {
        let via = self.ids()[0].clone();
        let (status, code) = self.request(
            reqwest::Method::POST,
            format!("{}/v1/code", self.url(&via)),
            zip_of(&[("bootstrap", bootstrap)]),
        );
        assert!(status < 300, "upload: {status} {code}");
        let settings = json!({
            "runtime": "provided.al2023",
            "handler": "bootstrap",
            "memory": 128,
            "code_sha256": code["sha256"],
        });
        for name in names {
            let (status, body) = self.request(
                reqwest::Method::PUT,
                format!("{}/v1/functions/{name}", self.url(&via)),
                settings.to_string().into_bytes(),
            );
            assert!(status < 300, "deploy {name}: {status} {body}");
        }
    }

    /// Invokes each function once through the first node and reads the node that ran it.
    fn homes(&self, names: &[String]) -> HashMap<String, String> {
        let via = self.ids()[0].clone();
        for name in names {
            let (status, body) = self.invoke(&via, name, false);
            assert_eq!(status, 200, "{name}: {body}");
        }
        eventually(30, "activation records of every function", || {
            let mut homes = HashMap::new();
            let mut cursor: Option<String> = None;
            loop {
                let path = match &cursor {
                    Some(c) => format!("/v1/activations?limit=1000&cursor={c}"),
                    None => "/v1/activations?limit=1000".to_string(),
                };
                let page = self.get(self.url(&via), &path);
                for a in page["activations"].as_array()? {
                    if let (Some(f), Some(n)) = (a["function"].as_str(), a["node"].as_str()) {
                        homes.insert(f.to_string(), n.to_string());
                    }
                }
                match page["next_cursor"].as_str() {
                    Some(c) if homes.len() < names.len() => cursor = Some(c.to_string()),
                    _ => break,
                }
            }
            names.iter().all(|n| homes.contains_key(n)).then_some(homes)
        })
    }

    /// The node holding the schedules' lease.
    fn schedule_leader(&self) -> Option<String> {
        self.nodes.keys().find_map(|id| {
            let leases = self.members(id)["leases"].clone();
            leases
                .as_array()?
                .iter()
                .any(|l| l == "lambent:schedules")
                .then(|| id.clone())
        })
    }

    fn stop(mut self) -> Vec<CpuCgroup> {
        let nodes = std::mem::take(&mut self.nodes);
        drop(nodes);
        std::mem::take(&mut self.cgroups)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Throughput

/// The wrk script of one front door: POST `{}` to each of `names` in turn, starting at
/// `offset` (so doors do not move in lockstep).
fn wrk_script(dir: &Path, file: &str, names: &[String], offset: usize) -> PathBuf {
    let requests: Vec<wrk::ScriptRequest> = names
        .iter()
        .map(|n| wrk::ScriptRequest {
            method: "POST".into(),
            path: format!("/v1/functions/{n}/invoke"),
            headers: vec![
                ("Authorization".into(), format!("Bearer {KEY}")),
                ("Content-Type".into(), "application/json".into()),
            ],
            body: "{}".into(),
        })
        .collect();
    wrk::script(dir, file, &requests, offset)
}

struct Sample {
    /// Successful invocations per second, summed over the doors.
    rps: f64,
    errors: u64,
    /// Cores used by the wrk processes, PostgreSQL, NATS and the whole host.
    wrk_cores: f64,
    pg_cores: f64,
    nats_cores: f64,
    host_cores: f64,
    steal_cores: f64,
    /// Share of CFS periods in which each node was throttled.
    throttled: Vec<f64>,
    /// Successful invocations, summed over the doors.
    requests: u64,
    /// CPU seconds each node (with its sandboxes) used during the run, from its cgroup.
    node_cpu: Vec<f64>,
}

impl Sample {
    /// CPU microseconds the nodes spent per successful invocation (all nodes together).
    fn cpu_per_invocation(&self) -> f64 {
        self.node_cpu.iter().sum::<f64>() * 1e6 / self.requests.max(1) as f64
    }
}

/// One `wrk` with `connections` connections per `(front door, script)` for `secs`,
/// concurrently.
fn load(
    cluster: &Cluster,
    wrk: &Path,
    doors: &[(&str, &Path)],
    connections: usize,
    secs: u64,
) -> Sample {
    let before_cg: Vec<(u64, u64)> = cluster
        .nodes
        .values()
        .map(|n| n.cgroup.throttling())
        .collect();
    let cpu0: Vec<f64> = cluster.nodes.values().map(|n| n.cgroup.usage()).collect();
    let (pg0, nats0, host0) = (cpu_of("postgres"), cpu_of("nats-server"), host_cpu());
    let start = Instant::now();
    let children: Vec<_> = doors
        .iter()
        .map(|(door, script)| {
            wrk::start(
                wrk,
                &wrk::Load {
                    threads: 1,
                    connections,
                    secs,
                    script,
                    url: cluster.url(door),
                },
            )
        })
        .collect();
    let mut runs = Vec::new();
    let mut wrk_cpu = 0.0;
    for child in children {
        let (run, cpu) = child.finish();
        wrk_cpu += cpu.as_secs_f64();
        runs.push(run);
    }
    let wall = start.elapsed().as_secs_f64();
    let node_cpu = cluster
        .nodes
        .values()
        .zip(cpu0)
        .map(|(n, c0)| n.cgroup.usage() - c0)
        .collect();
    let (pg1, nats1, host1) = (cpu_of("postgres"), cpu_of("nats-server"), host_cpu());
    let throttled = cluster
        .nodes
        .values()
        .zip(before_cg)
        .map(|(n, (p0, t0))| {
            let (p1, t1) = n.cgroup.throttling();
            if p1 > p0 {
                (t1 - t0) as f64 / (p1 - p0) as f64
            } else {
                0.0
            }
        })
        .collect();
    Sample {
        rps: runs.iter().map(wrk::Measured::rps).sum(),
        requests: runs.iter().map(wrk::Measured::ok).sum(),
        node_cpu,
        errors: runs.iter().map(|r| r.errors).sum(),
        wrk_cores: wrk_cpu / wall,
        pg_cores: (pg1 - pg0) / wall,
        nats_cores: (nats1 - nats0) / wall,
        host_cores: (host1.0 - host0.0) / wall,
        steal_cores: (host1.1 - host0.1) / wall,
        throttled,
    }
}

struct Throughput {
    nodes: usize,
    rps: f64,
    runs: Vec<f64>,
    errors: u64,
    homes: BTreeMap<String, usize>,
    sample: Sample,
    /// Per node: processes of the node (itself, its runtimes) inside its quota and outside.
    confinement: Vec<(usize, usize)>,
    /// Over the measured runs: invocations run per node, cold ones, ones run off their home.
    placement: Placement,
}

#[derive(Default)]
struct Placement {
    ran: BTreeMap<String, usize>,
    cold: usize,
    off_home: usize,
}

/// What the activation records since `since_ms` say about where invocations ran.
fn placement(cluster: &Cluster, homes: &HashMap<String, String>, since_ms: i64) -> Placement {
    std::thread::sleep(Duration::from_secs(1));
    let via = cluster.ids()[0].clone();
    let mut p = Placement::default();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/activations?limit=1000&since_ms={since_ms}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = cluster.get(cluster.url(&via), &path);
        for a in page["activations"].as_array().into_iter().flatten() {
            let (f, n) = (
                a["function"].as_str().unwrap_or(""),
                a["node"].as_str().unwrap_or(""),
            );
            *p.ran.entry(n.to_string()).or_default() += 1;
            p.cold += usize::from(a["cold"] == true);
            p.off_home += usize::from(homes.get(f).is_some_and(|h| h != n));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    p
}

fn throughput(cluster: &Cluster, names: &[String], wrk: &Path, k: &Knobs) -> Throughput {
    let homes = cluster.homes(names);
    let mut per_node: BTreeMap<String, usize> =
        cluster.ids().into_iter().map(|id| (id, 0)).collect();
    for h in homes.values() {
        *per_node.entry(h.clone()).or_default() += 1;
    }
    let ids = cluster.ids();
    let scripts: Vec<PathBuf> = (0..ids.len())
        .map(|door| {
            wrk_script(
                cluster.home.path(),
                &format!("door-{door}"),
                names,
                door * 7,
            )
        })
        .collect();
    let doors: Vec<(&str, &Path)> = ids
        .iter()
        .zip(&scripts)
        .map(|(id, s)| (id.as_str(), s.as_path()))
        .collect();
    // Warm-up: sandboxes for the concurrency each function sees.
    load(cluster, wrk, &doors, k.connections, 2);
    let since = now_ms();
    let samples: Vec<Sample> = (0..k.runs)
        .map(|_| load(cluster, wrk, &doors, k.connections, k.secs))
        .collect();
    let placement = placement(cluster, &homes, since);
    let confinement = cluster
        .nodes
        .values()
        .map(|n| confined(n.server.child.id(), &n.cgroup.relative))
        .collect();
    let runs: Vec<f64> = samples.iter().map(|s| s.rps).collect();
    let rps = median(runs.clone());
    let errors = samples.iter().map(|s| s.errors).sum();
    let sample = samples
        .into_iter()
        .min_by(|a, b| (a.rps - rps).abs().total_cmp(&(b.rps - rps).abs()))
        .unwrap();
    Throughput {
        nodes: cluster.nodes.len(),
        rps,
        runs,
        errors,
        homes: per_node,
        sample,
        confinement,
        placement,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. CPU per invocation

/// wrk connections for the CPU-cost runs: 2 invocations waiting at a home, under the spill floor
/// (`lambent_cluster::spill::SPILL_FLOOR`, 4), never make the door pass the home over, so every
/// forwarded invocation is one.
const COST_CONNECTIONS: usize = 2;

/// CPU microseconds per invocation (median over the runs), from the nodes' cgroups.
struct Cost {
    /// A local invocation on its home node (the door is the home).
    local: f64,
    /// A forwarded one: at the door, and at the home (which runs it).
    door: f64,
    home: f64,
    /// What the other node used meanwhile during the local runs, per invocation (its idle).
    idle: f64,
    /// Invocations/s in the local and forwarded runs.
    rps: (f64, f64),
}

impl Cost {
    /// What a forwarded invocation costs the cluster on top of a local one, in µs.
    fn extra(&self) -> f64 {
        self.door + self.home - self.local
    }

    /// The throughput ratio `n` CPU-bound, evenly loaded nodes would reach over one with these
    /// costs, when `(n-1)/n` of the invocations arrive at a door that is not their home.
    fn bound(&self, n: f64) -> f64 {
        n * self.local / (self.local + (n - 1.0) / n * self.extra())
    }
}

/// On a cluster of two nodes: wrk at the first node's door only, over fresh functions homed on
/// it (local), then over fresh functions homed on the other node (forwarded), each node's
/// CPU (node + its sandboxes, from its cgroup) divided by the invocations served. CPU time per
/// invocation is little moved by the other work on a shared machine, unlike throughput.
fn cost(cluster: &Cluster, bootstrap: &[u8], wrk: &Path, k: &Knobs) -> Cost {
    let ids = cluster.ids();
    assert_eq!(ids.len(), 2, "the cost runs use two nodes");
    let (door, other) = (ids[0].as_str(), ids[1].as_str());
    let fresh: Vec<String> = (0..20).map(|i| format!("cost-{i}")).collect();
    cluster.deploy(&fresh, bootstrap);
    let homes = cluster.homes(&fresh);
    let homed_on = |node: &str| -> Vec<String> {
        let mut v: Vec<String> = fresh
            .iter()
            .filter(|f| homes.get(*f).map(String::as_str) == Some(node))
            .cloned()
            .collect();
        v.sort();
        assert!(!v.is_empty(), "no cost-… function is homed on {node}");
        v
    };
    let measure = |names: Vec<String>, file: &str| -> (Vec<(f64, f64)>, f64) {
        let script = wrk_script(cluster.home.path(), file, &names, 0);
        let doors = [(door, script.as_path())];
        load(cluster, wrk, &doors, COST_CONNECTIONS, 2);
        let samples: Vec<Sample> = (0..k.runs)
            .map(|_| load(cluster, wrk, &doors, COST_CONNECTIONS, k.secs))
            .collect();
        let per: Vec<(f64, f64)> = samples
            .iter()
            .map(|s| {
                let n = s.requests.max(1) as f64;
                (s.node_cpu[0] * 1e6 / n, s.node_cpu[1] * 1e6 / n)
            })
            .collect();
        (per, median(samples.iter().map(|s| s.rps).collect()))
    };
    let (local, local_rps) = measure(homed_on(door), "cost-local");
    let (forwarded, forwarded_rps) = measure(homed_on(other), "cost-forwarded");
    let cost = Cost {
        local: median(local.iter().map(|c| c.0).collect()),
        idle: median(local.iter().map(|c| c.1).collect()),
        door: median(forwarded.iter().map(|c| c.0).collect()),
        home: median(forwarded.iter().map(|c| c.1).collect()),
        rps: (local_rps, forwarded_rps),
    };
    eprintln!(
        "  CPU per invocation: local {:.0} µs (runs {:?}), forwarded: door {:.0} + home {:.0} µs (runs {:?})",
        cost.local, local, cost.door, cost.home, forwarded
    );
    cost
}

// ---------------------------------------------------------------------------------------------
// 3. Forwarded against local

struct Latency {
    door: String,
    local: (String, Duration, Duration),
    forwarded: (String, String, Duration, Duration),
}

fn latency(cluster: &Cluster, homes: &HashMap<String, String>, n: usize) -> Latency {
    let door = cluster.ids()[0].clone();
    let mut names: Vec<&String> = homes.keys().collect();
    names.sort();
    let local = names
        .iter()
        .find(|f| homes[**f] == door)
        .expect("a function whose home is the door");
    let remote = names
        .iter()
        .find(|f| homes[**f] != door)
        .expect("a function whose home is another node");
    // One kept-alive connection, as a client of one front door.
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = |f: &str| format!("{}/v1/functions/{f}/invoke", cluster.url(&door));
    let call = |f: &str| {
        let t = Instant::now();
        let r = http
            .post(url(f))
            .bearer_auth(KEY)
            .body("{}")
            .send()
            .unwrap();
        let status = r.status();
        let _ = r.bytes().unwrap();
        assert!(status.is_success(), "{f}: {status}");
        t.elapsed()
    };
    for _ in 0..200 {
        call(local);
        call(remote);
    }
    let (mut l, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        l.push(call(local));
        f.push(call(remote));
    }
    l.sort();
    f.sort();
    Latency {
        door: door.clone(),
        local: ((*local).clone(), quantile(&l, 0.5), quantile(&l, 0.99)),
        forwarded: (
            (*remote).clone(),
            homes[*remote].clone(),
            quantile(&f, 0.5),
            quantile(&f, 0.99),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Recovery

struct Recovery {
    killed: String,
    down: Duration,
    async_done: Duration,
    schedule: Duration,
    /// The widest gap between two fires before the kill (the schedule's own jitter).
    gap_before: Duration,
}

/// The start times (ms) of the `tick` schedule's fires seen through `via`.
fn fires(cluster: &Cluster, via: &str) -> Vec<i64> {
    let page = cluster.get(cluster.url(via), "/v1/activations?function=tick&limit=1000");
    let mut starts: Vec<i64> = page["activations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["status"] == "success")
                .filter_map(|a| a["start_ms"].as_i64())
                .collect()
        })
        .unwrap_or_default();
    starts.sort();
    starts
}

fn recovery(cluster: &mut Cluster, homes: &HashMap<String, String>) -> Recovery {
    let leader = eventually(15, "a schedule leader", || cluster.schedule_leader());
    let mut names: Vec<&String> = homes.keys().collect();
    names.sort();
    let function = names
        .iter()
        .find(|f| homes[**f] == leader)
        .expect("a function whose home is the leader")
        .to_string();
    // Warm on its home, so the event has somewhere it would have run.
    let survivor = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let (status, body) = cluster.invoke(&survivor, &function, false);
    assert_eq!(status, 200, "{body}");
    // The schedule is firing before the kill.
    let before = fires(cluster, &survivor);
    let gap_before = before
        .windows(2)
        .rev()
        .take(5)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);

    cluster.kill(&leader);
    let killed_at = Instant::now();
    let killed_ms = now_ms();
    let (status, body) = cluster.invoke(&survivor, &function, true);
    assert_eq!(status, 202, "async invoke after the kill: {body}");
    let event = body["activation_id"].as_str().unwrap().to_string();

    let (mut down, mut async_done, mut schedule) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while down.is_none() || async_done.is_none() || schedule.is_none() {
        assert!(
            Instant::now() < deadline,
            "no recovery within 60 s: down {down:?}, async {async_done:?}, schedule {schedule:?}"
        );
        if down.is_none() {
            let members = cluster.members(&survivor);
            let is_down = members["nodes"].as_array().is_some_and(|ns| {
                ns.iter()
                    .any(|m| m["id"] == leader.as_str() && m["state"] == "down")
            });
            if is_down {
                down = Some(killed_at.elapsed());
            }
        }
        if async_done.is_none() {
            let page = cluster.get(
                cluster.url(&survivor),
                &format!("/v1/activations?function={function}&limit=50"),
            );
            let done = page["activations"].as_array().is_some_and(|a| {
                a.iter().any(|a| {
                    a["status"] == "success"
                        && a["id"]
                            .as_str()
                            .is_some_and(|id| id.split('.').next() == Some(event.as_str()))
                })
            });
            if done {
                async_done = Some(killed_at.elapsed());
            }
        }
        if schedule.is_none() && fires(cluster, &survivor).iter().any(|s| *s > killed_ms) {
            schedule = Some(killed_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Back to three.
    cluster.start_node(&leader);
    cluster.await_members(3);
    Recovery {
        killed: leader,
        down: down.unwrap(),
        async_done: async_done.unwrap(),
        schedule: schedule.unwrap(),
        gap_before: Duration::from_millis(gap_before as u64),
    }
}

// ---------------------------------------------------------------------------------------------

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let k = Knobs::from_env();
    assert!(
        unsafe { libc::geteuid() } == 0,
        "the cluster bench starts sandboxes: run it as root"
    );
    let wrk = wrk::find();
    let bootstrap = echo_runtime();
    let names: Vec<String> = (0..k.functions).map(|i| format!("noop-{i}")).collect();
    let started = Instant::now();
    let mut table = String::new();
    let mut notes = String::new();
    let mut leftovers = Vec::new();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    writeln!(
        table,
        "## Lambent cluster benchmark\n\n{cores} cores; each node confined (node + its sandboxes) to \
         {:.2} core (CFS quota {} µs per {PERIOD_US} µs); {} no-op functions (compiled `provided` \
         echo runtime, 128 MB); wrk -t1 -c{} per front door, {} s × {} runs (median).\n",
        k.quota,
        (k.quota * PERIOD_US as f64) as u64,
        k.functions,
        k.connections,
        k.secs,
        k.runs,
    )
    .unwrap();
    writeln!(
        table,
        "| measure | value | baseline (same run) | ratio / difference | target | met |"
    )
    .unwrap();
    writeln!(table, "|---|---|---|---|---|---|").unwrap();

    let mut homes_of_3 = None;
    let mut cluster3 = None;
    let mut costs = None;
    if !k.runs("throughput") && k.runs("cost") {
        eprintln!("CPU per invocation: 2 nodes");
        let cluster = Cluster::start(2, k.quota);
        costs = Some(cost(&cluster, &bootstrap, &wrk, &k));
        leftovers.extend(cluster.stop());
    }
    if k.runs("throughput") {
        let mut results: Vec<Throughput> = Vec::new();
        for size in 1..=3 {
            eprintln!("throughput: {size} node(s)");
            let cluster = Cluster::start(size, k.quota);
            cluster.deploy(&names, &bootstrap);
            let t = throughput(&cluster, &names, &wrk, &k);
            eprintln!(
                "  {:.0} invocations/s (runs {:?}), homes {:?}, {:.0} µs of node CPU per invocation",
                t.rps,
                t.runs,
                t.homes,
                t.sample.cpu_per_invocation()
            );
            results.push(t);
            if size == 2 && k.only.is_none() {
                eprintln!("CPU per invocation: 2 nodes");
                costs = Some(cost(&cluster, &bootstrap, &wrk, &k));
            }
            if size == 3 {
                homes_of_3 = Some(cluster.homes(&names));
                cluster3 = Some(cluster);
            } else {
                leftovers.extend(cluster.stop());
            }
        }
        let one = results[0].rps;
        for t in &results {
            let ratio = t.rps / one;
            let (target, met) = match t.nodes {
                3 => ("≥ 2.5×", if ratio >= 2.5 { "yes" } else { "**no**" }),
                _ => ("", ""),
            };
            writeln!(
                table,
                "| warm no-op throughput, {} node{} (inv/s) | {:.0} | 1 node: {:.0} | {:.2}× | {target} | {met} |",
                t.nodes,
                if t.nodes == 1 { "" } else { "s" },
                t.rps,
                one,
                ratio,
            )
            .unwrap();
        }
        let base = results[0].sample.cpu_per_invocation();
        for t in &results[1..] {
            let c = t.sample.cpu_per_invocation();
            writeln!(
                table,
                "| node CPU per invocation, {} nodes under that load (µs) | {c:.0} | 1 node: {base:.0} | {:.2}× | | |",
                t.nodes,
                c / base,
            )
            .unwrap();
        }
        writeln!(notes, "\nThroughput detail (run closest to the median):\n").unwrap();
        writeln!(
            notes,
            "| nodes | runs (inv/s) | errors (non-2xx + socket, all runs) | homes of the functions | nodes throttled (share of CFS periods) | node CPU per invocation (µs; cores per node) | processes per node inside / outside its quota | invocations run per node (records) | cold | run off their home (spilled) | wrk cores | PostgreSQL cores | NATS cores | host busy cores | stolen by the hypervisor (cores) |"
        )
        .unwrap();
        writeln!(
            notes,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
        )
        .unwrap();
        for t in &results {
            let s = &t.sample;
            let wall = s.requests as f64 / s.rps.max(1.0);
            writeln!(
                notes,
                "| {} | {} | {} | {} | {} | {:.0}; {} | {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} of {cores} | {:.2} |",
                t.nodes,
                t.runs
                    .iter()
                    .map(|r| format!("{r:.0}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.errors,
                t.homes
                    .iter()
                    .map(|(n, c)| format!("{n}: {c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.throttled
                    .iter()
                    .map(|x| format!("{:.0} %", x * 100.0))
                    .collect::<Vec<_>>()
                    .join(", "),
                s.cpu_per_invocation(),
                s.node_cpu
                    .iter()
                    .map(|c| format!("{:.2}", c / wall.max(1e-9)))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.confinement
                    .iter()
                    .map(|(i, o)| format!("{i} / {o}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.placement
                    .ran
                    .iter()
                    .map(|(n, c)| format!("{n}: {c}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                t.placement.cold,
                t.placement.off_home,
                s.wrk_cores,
                s.pg_cores,
                s.nats_cores,
                s.host_cores,
                s.steal_cores,
            )
            .unwrap();
        }
    }

    if let Some(c) = &costs {
        writeln!(
            table,
            "| CPU per invocation (µs; node + sandboxes, from cgroups; wrk -c{COST_CONNECTIONS} at one door): local, on its home | {:.0} | | | | |",
            c.local,
        )
        .unwrap();
        writeln!(
            table,
            "| forwarded: at the door + at the home (µs) | {:.0} + {:.0} = {:.0} | local: {:.0} | +{:.0} µs (+{:.0} %) | | |",
            c.door,
            c.home,
            c.door + c.home,
            c.local,
            c.extra(),
            c.extra() / c.local * 100.0,
        )
        .unwrap();
        writeln!(
            table,
            "| 3 CPU-bound, evenly loaded nodes over 1 at these costs (2/3 forwarded) | {:.2}× | 2 nodes: {:.2}× | | ≥ 2.5× | {} |",
            c.bound(3.0),
            c.bound(2.0),
            if c.bound(3.0) >= 2.5 { "yes" } else { "**no**" },
        )
        .unwrap();
        writeln!(
            notes,
            "\nCPU-cost runs: {:.0} inv/s local, {:.0} inv/s forwarded (wrk -c{COST_CONNECTIONS}, quotas on); the idle node used {:.1} µs per invocation meanwhile.\n",
            c.rps.0, c.rps.1, c.idle,
        )
        .unwrap();
    }

    if k.runs("latency") || k.runs("recovery") {
        let mut cluster = cluster3.unwrap_or_else(|| {
            let c = Cluster::start(3, k.quota);
            c.deploy(&names, &bootstrap);
            c
        });
        let homes = homes_of_3.unwrap_or_else(|| cluster.homes(&names));
        cluster.set_quotas(None);

        if k.runs("latency") {
            eprintln!("latency: forwarded against local, {} each", k.n);
            // Fresh functions, first invoked through the door: the door has run none of those
            // homed elsewhere, so their invocations are forwarded (after the throughput runs the
            // door may hold warm sandboxes of any `noop-…`, which it would run without a hop).
            let fresh: Vec<String> = (0..9).map(|i| format!("lat-{i}")).collect();
            cluster.deploy(&fresh, &bootstrap);
            let fresh_homes: HashMap<String, String> = cluster
                .homes(&fresh)
                .into_iter()
                .filter(|(f, _)| fresh.contains(f))
                .collect();
            let l = latency(&cluster, &fresh_homes, k.n);
            let d50 = l.forwarded.2.as_secs_f64() - l.local.1.as_secs_f64();
            let d99 = l.forwarded.3.as_secs_f64() - l.local.2.as_secs_f64();
            writeln!(
                table,
                "| invoke via {door}, p50 (ms): `{}` forwarded to its home {} / `{}` local | {} | {} | +{:.3} ms | ≤ +0.3 ms | {} |",
                l.forwarded.0,
                l.forwarded.1,
                l.local.0,
                ms(l.forwarded.2),
                ms(l.local.1),
                d50 * 1000.0,
                if d50 <= 0.0003 { "yes" } else { "**no**" },
                door = l.door,
            )
            .unwrap();
            writeln!(
                table,
                "| invoke via {}, p99 (ms): forwarded / local | {} | {} | +{:.3} ms | | |",
                l.door,
                ms(l.forwarded.3),
                ms(l.local.2),
                d99 * 1000.0,
            )
            .unwrap();
        }

        if k.runs("recovery") {
            let via = cluster.ids()[0].clone();
            cluster.deploy(&["tick".to_string()], &bootstrap);
            cluster.nodes[&via]
                .server
                .cli(&[
                    "schedule",
                    "add",
                    "every-second",
                    "--function",
                    "tick",
                    "--cron",
                    "*/1 * * * * *",
                ])
                .ok();
            eventually(15, "the schedule fires", || {
                (fires(&cluster, &via).len() >= 3).then_some(())
            });
            let mut rs = Vec::new();
            for i in 0..k.kills {
                eprintln!("recovery {}/{}", i + 1, k.kills);
                let r = recovery(&mut cluster, &homes);
                eprintln!(
                    "  killed {}: down after {:?}, async event done after {:?}, schedule fired after {:?}",
                    r.killed, r.down, r.async_done, r.schedule
                );
                rs.push(r);
            }
            let med = |f: &dyn Fn(&Recovery) -> Duration| {
                Duration::from_secs_f64(median(rs.iter().map(|r| f(r).as_secs_f64()).collect()))
            };
            let secs = |d: Duration| format!("{:.2}", d.as_secs_f64());
            let each = |f: &dyn Fn(&Recovery) -> Duration| {
                rs.iter()
                    .map(|r| format!("{} ({})", secs(f(r)), r.killed))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let down = med(&|r| r.down);
            let a = med(&|r| r.async_done);
            let s = med(&|r| r.schedule);
            let gap = med(&|r| r.gap_before);
            let met = |d: Duration| {
                if d <= Duration::from_secs(5) {
                    "yes"
                } else {
                    "**no**"
                }
            };
            writeln!(
                table,
                "| SIGKILL of the schedule leader → shown `down` (s, median of {}) | {} | heartbeat silence limit 3.00 | runs: {} | | |",
                rs.len(),
                secs(down),
                each(&|r| r.down),
            )
            .unwrap();
            writeln!(
                table,
                "| SIGKILL → async event of a function homed on the killed node completes (s) | {} | | runs: {} | ≤ 5 s | {} |",
                secs(a),
                each(&|r| r.async_done),
                met(a),
            )
            .unwrap();
            writeln!(
                table,
                "| SIGKILL → every-second schedule fires again (s) | {} | widest gap between fires before the kill: {} | runs: {} | ≤ 5 s | {} |",
                secs(s),
                secs(gap),
                each(&|r| r.schedule),
                met(s),
            )
            .unwrap();
        }
        leftovers.extend(cluster.stop());
    } else if let Some(c) = cluster3 {
        leftovers.extend(c.stop());
    }

    let report = format!(
        "{table}{notes}\nLatency and recovery ran with the quotas lifted. Whole run: {:.0} s.\n",
        started.elapsed().as_secs_f64()
    );
    println!("{report}");
    let out = Path::new(support::BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(
            || PathBuf::from("cluster_bench.md"),
            |t| t.join("cluster_bench.md"),
        );
    std::fs::write(&out, &report).unwrap();
    eprintln!("written to {}", out.display());
    std::thread::sleep(Duration::from_millis(500));
    for cg in leftovers {
        cg.remove();
    }
}
