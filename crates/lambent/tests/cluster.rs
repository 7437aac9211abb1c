//! Cluster mode end to end: three real `lambent up` processes on one private PostgreSQL and one
//! private NATS (started by `lambent-testkit` on loopback with ephemeral ports), driven through
//! their HTTP front doors and the `lambent` command line as users would.
//!
//! Sandboxes need root: run as root (as CI does). The tests that start nodes run one at a time
//! (three nodes each on a 2-core machine are enough).

mod support;

use lambent_testkit::nats::NatsServer;
use lambent_testkit::postgres::PgServer;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

const KEY: &str = "cluster-test-key";

/// One test with three nodes at a time.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A cluster of `lambent up` processes on a fresh database of the shared PostgreSQL.
struct Cluster {
    home: tempfile::TempDir,
    store: String,
    bus: String,
    nodes: BTreeMap<String, Server>,
    /// Flags every node gets besides the cluster's.
    node_args: Vec<String>,
    http: reqwest::blocking::Client,
}

impl Cluster {
    fn start(ids: &[&str]) -> Cluster {
        Cluster::start_with(ids, &[])
    }

    /// A cluster whose nodes get `node_args` too.
    fn start_with(ids: &[&str], node_args: &[&str]) -> Cluster {
        let store = PgServer::shared().fresh_database();
        Cluster::start_on(store, NatsServer::shared().url(), ids, node_args)
    }

    /// A cluster on the given PostgreSQL database and NATS server.
    fn start_on(store: String, bus: String, ids: &[&str], node_args: &[&str]) -> Cluster {
        let mut cluster = Cluster {
            home: tempfile::tempdir().unwrap(),
            store,
            bus,
            nodes: BTreeMap::new(),
            node_args: node_args.iter().map(|a| a.to_string()).collect(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap(),
        };
        for id in ids {
            cluster.start_node(id);
        }
        cluster.await_members(ids.len());
        cluster
    }

    /// Starts (or restarts, on the same data dir) node `id`.
    fn start_node(&mut self, id: &str) {
        let dir = self.home.path().join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec![
            "--store",
            &self.store,
            "--bus",
            &self.bus,
            "--node-id",
            id,
            "--shutdown-grace",
            "5",
        ];
        args.extend(self.node_args.iter().map(String::as_str));
        let server = Server::start_with_env(&dir, &args, &[("LAMBENT_API_KEY", KEY)]);
        self.nodes.insert(id.to_string(), server);
    }

    fn node(&self, id: &str) -> &Server {
        &self.nodes[id]
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.values().map(|s| s.url.clone()).collect()
    }

    /// SIGKILL, as a crash would.
    fn kill(&mut self, id: &str) {
        self.nodes.remove(id).expect("a running node").kill();
    }

    /// `GET /v1/nodes` on node `id`.
    fn members(&self, id: &str) -> Value {
        self.get(&self.node(id).url, "/v1/nodes")
    }

    /// Waits until every running node sees `n` members up.
    fn await_members(&self, n: usize) {
        for id in self.nodes.keys() {
            eventually(15, &format!("{id} sees {n} nodes up"), || {
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

    /// Any request; the status and the JSON answer (`Null` if none).
    fn send(&self, method: reqwest::Method, url: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .request(method, format!("{url}{path}"))
            .bearer_auth(KEY)
            .body(body)
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    fn post(&self, url: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{url}{path}"))
            .bearer_auth(KEY)
            .body(body.to_string())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    /// The activation records of a function (up to 1000), as node `via` serves them.
    fn activations(&self, via: &str, function: &str) -> Vec<Value> {
        let page = self.get(
            &self.node(via).url,
            &format!("/v1/activations?function={function}&limit=1000"),
        );
        page["activations"].as_array().cloned().unwrap_or_default()
    }

    /// `lambent execution show MACHINE NAME -o json` via node `via`.
    fn execution(&self, via: &str, machine: &str, name: &str) -> Value {
        self.node(via)
            .cli(&["execution", "show", machine, name, "-o", "json"])
            .ok()
            .json()
    }

    /// `lambent deploy DIR --name NAME --runtime python3.12 --handler app.handler` via `via`.
    fn deploy_python(&self, via: &str, name: &str, code: &str, extra: &[&str]) {
        let dir = self.home.path().join("code").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.py"), code).unwrap();
        let mut args = vec![
            "deploy",
            dir.to_str().unwrap(),
            "--name",
            name,
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
        ];
        args.extend_from_slice(extra);
        self.node(via).cli(&args).ok();
    }
}

/// The event an activation belongs to (`<event id>` or `<event id>.<attempt>`).
fn event_of(activation_id: &str) -> &str {
    activation_id.split('.').next().unwrap_or(activation_id)
}

const ECHO: &str = "import time\n\
def handler(event, context):\n    \
    time.sleep(event.get('sleep', 0))\n    \
    return {'echo': event}\n";

#[test]
fn three_nodes_serve_as_one_platform() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(&["n1", "n2", "n3"]);

    // Deployed through node 1, invoked through node 3 at once.
    cluster.deploy_python("n1", "echo", ECHO, &[]);
    let out = cluster
        .node("n3")
        .cli(&["invoke", "echo", "--data", r#"{"x": 1}"#])
        .ok();
    assert!(out.stdout.contains(r#""x": 1"#), "{out:?}");

    // A route added on node 2 is served by every node.
    cluster
        .node("n2")
        .cli(&["route", "add", "GET", "/hello/{who}", "echo"])
        .ok();
    for url in cluster.urls() {
        eventually(5, &format!("the route is served by {url}"), || {
            let r = reqwest::blocking::get(format!("{url}/hello/you")).ok()?;
            (r.status() == 200).then_some(())
        });
    }

    // Warm affinity: 100 invocations spread over the front doors run on one node, warm
    // after the first.
    cluster.deploy_python("n1", "warm", ECHO, &[]);
    let urls = cluster.urls();
    for i in 0..100 {
        let (status, body) = cluster.post(
            &urls[i % urls.len()],
            "/v1/functions/warm/invoke",
            &json!({"i": i}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let records = cluster.activations("n2", "warm");
    assert_eq!(records.len(), 100, "every invocation has its record");
    let ran_on: HashSet<&str> = records.iter().filter_map(|a| a["node"].as_str()).collect();
    let cold = records.iter().filter(|a| a["cold"] == true).count();
    println!("warm affinity: 100 invocations ran on {ran_on:?}, {cold} cold");
    assert_eq!(ran_on.len(), 1, "one home node: {ran_on:?}");
    assert_eq!(cold, 1, "warm after the first");

    // Provisioned concurrency is kept on the function's home only: 1 sandbox in the cluster.
    cluster.deploy_python("n1", "ready", ECHO, &["--provisioned-concurrency", "1"]);
    let idle_per_node = eventually(15, "one provisioned sandbox in the cluster", || {
        let idle: Vec<u64> = cluster
            .nodes
            .values()
            .map(|n| cluster.get(&n.url, "/v1/functions/ready")["sandboxes"]["idle"].as_u64())
            .collect::<Option<_>>()?;
        (idle.iter().sum::<u64>() == 1).then_some(idle)
    });
    std::thread::sleep(Duration::from_secs(2));
    let again: u64 = cluster
        .nodes
        .values()
        .filter_map(|n| cluster.get(&n.url, "/v1/functions/ready")["sandboxes"]["idle"].as_u64())
        .sum();
    println!("provisioned concurrency 1 across 3 nodes: idle sandboxes per node {idle_per_node:?}");
    assert_eq!(again, 1, "still one provisioned sandbox");

    // Reserved concurrency holds cluster-wide: 3 slots, 9 concurrent calls over 3 doors.
    cluster.deploy_python("n1", "capped", ECHO, &["--reserved-concurrency", "3"]);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..9)
            .map(|i| {
                let (http, url) = (&cluster.http, urls[i % urls.len()].clone());
                s.spawn(move || {
                    http.post(format!("{url}/v1/functions/capped/invoke"))
                        .bearer_auth(KEY)
                        .body(r#"{"sleep": 3}"#)
                        .send()
                        .map_or(0, |r| r.status().as_u16())
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let throttled = statuses.iter().filter(|s| **s == 429).count();
    println!("reserved concurrency 3 across 3 nodes: {ok} ran, {throttled} throttled");
    assert_eq!((ok, throttled), (3, 6), "{statuses:?}");

    // `lambent nodes` lists the three, up.
    let out = cluster.node("n2").cli(&["nodes"]).ok();
    for id in ["n1", "n2", "n3"] {
        let row = out.stdout.lines().find(|l| l.contains(id)).unwrap();
        assert!(row.contains("up"), "{}", out.stdout);
    }

    // SIGTERM drains a node: the invocation it runs finishes, then it leaves the cluster.
    let home = records[0]["node"].as_str().unwrap().to_string();
    let mut cluster = cluster;
    let door = cluster.node(&home).url.clone();
    let (draining, running) = std::thread::scope(|s| {
        let http = &cluster.http;
        let running = s.spawn(move || {
            http.post(format!("{door}/v1/functions/warm/invoke"))
                .bearer_auth(KEY)
                .body(r#"{"sleep": 2}"#)
                .send()
                .map_or(0, |r| r.status().as_u16())
        });
        std::thread::sleep(Duration::from_millis(500));
        let server = cluster.nodes.remove(&home).unwrap();
        let took = server.terminate(Duration::from_secs(10));
        (took, running.join().unwrap())
    });
    println!("SIGTERM: {home} drained in {draining:?}; its running invocation answered {running}");
    assert_eq!(running, 200, "the running invocation finished");
    let other = cluster.nodes.keys().next().unwrap().clone();
    eventually(5, "the drained node left the membership", || {
        let nodes = cluster.members(&other)["nodes"].as_array()?.clone();
        (!nodes.iter().any(|n| n["id"] == home.as_str())).then_some(())
    });
    // Its functions now run on the others.
    let (status, body) = cluster.post(
        &cluster.node(&other).url,
        "/v1/functions/warm/invoke",
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
}

/// Node `id`'s records of `function` that started at or after `since_ms`.
fn records_since(cluster: &Cluster, via: &str, function: &str, since_ms: i64) -> Vec<Value> {
    cluster
        .activations(via, function)
        .into_iter()
        .filter(|a| a["start_ms"].as_i64().unwrap_or(0) >= since_ms)
        .collect()
}

/// How many of `records` ran on each node.
fn ran_per_node(records: &[Value]) -> BTreeMap<String, usize> {
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for a in records {
        *per.entry(a["node"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
    }
    per
}

#[test]
fn a_saturated_home_spills_and_gets_its_function_back_after_the_burst() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    // Room for 4 sandboxes of 128 MB per node: a home is saturated when 4 are busy.
    let cluster = Cluster::start_with(&["n1", "n2", "n3"], &["--memory-budget", "512"]);
    cluster.deploy_python("n1", "slow", ECHO, &["--memory", "128"]);
    let urls = cluster.urls();
    let (status, body) = cluster.post(&urls[0], "/v1/functions/slow/invoke", &json!({}));
    assert_eq!(status, 200, "{body}");
    let home = cluster.activations("n1", "slow")[0]["node"]
        .as_str()
        .unwrap()
        .to_string();

    // A burst of 10 slow invocations over the three doors: the home runs 4, the rest spill.
    let burst_ms = now_ms();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let calls: Vec<_> = (0..10)
            .map(|i| {
                let (http, url) = (&cluster.http, urls[i % urls.len()].clone());
                s.spawn(move || {
                    http.post(format!("{url}/v1/functions/slow/invoke"))
                        .bearer_auth(KEY)
                        .body(r#"{"sleep": 1.5}"#)
                        .send()
                        .map_or(0, |r| r.status().as_u16())
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let burst = eventually(10, "the burst's 10 records", || {
        let records = records_since(&cluster, "n2", "slow", burst_ms);
        (records.len() == 10).then_some(records)
    });
    let during = ran_per_node(&burst);
    println!("burst of 10 over 3 doors, home {home} with room for 4: ran {during:?}");
    assert!(
        during.get(&home).copied().unwrap_or(0) <= 4,
        "the home ran no more than it has room for: {during:?}"
    );
    assert!(during.len() >= 2, "the burst spilled: {during:?}");

    // After the burst, every door sends the function home again, though two of them hold idle
    // sandboxes of it now: 30 invocations over the doors run on the home, warm.
    std::thread::sleep(Duration::from_millis(600));
    let after_ms = now_ms();
    for i in 0..30 {
        let (status, body) = cluster.post(
            &urls[i % urls.len()],
            "/v1/functions/slow/invoke",
            &json!({"i": i}),
        );
        assert_eq!(status, 200, "{body}");
    }
    let after = eventually(10, "the 30 records after the burst", || {
        let records = records_since(&cluster, "n3", "slow", after_ms);
        (records.len() == 30).then_some(records)
    });
    let ran = ran_per_node(&after);
    let cold = after.iter().filter(|a| a["cold"] == true).count();
    println!("after the burst: 30 invocations over 3 doors ran {ran:?}, {cold} cold");
    assert_eq!(
        ran,
        BTreeMap::from([(home.clone(), 30)]),
        "traffic returned to the home"
    );
    assert_eq!(cold, 0, "warm on the home");
}

const WORK: &str = "import time\n\
def handler(event, context):\n    \
    time.sleep(0.05)\n    \
    return event\n";

const TICK: &str = "def handler(event, context):\n    \
    print('FIRE', event['time'])\n    \
    return event['time']\n";

/// Fire time → the distinct events (fires) that carried it.
fn fires(records: &[Value]) -> HashMap<String, HashSet<String>> {
    let mut fires: HashMap<String, HashSet<String>> = HashMap::new();
    for a in records.iter().filter(|a| a["status"] == "success") {
        let logs = a["logs"].as_str().unwrap_or_default();
        if let Some(line) = logs.lines().find(|l| l.starts_with("FIRE ")) {
            let id = a["id"].as_str().unwrap_or_default();
            fires
                .entry(line[5..].to_string())
                .or_default()
                .insert(event_of(id).to_string());
        }
    }
    fires
}

#[test]
fn a_killed_node_loses_nothing_and_its_work_moves() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(&["n1", "n2", "n3"]);
    cluster.deploy_python("n1", "work", WORK, &[]);
    cluster.deploy_python("n1", "tick", TICK, &[]);
    cluster
        .node("n2")
        .cli(&[
            "schedule",
            "add",
            "every2s",
            "--function",
            "tick",
            "--cron",
            "*/2 * * * * *",
        ])
        .ok();

    // The node `work` runs on (its home): the one to kill.
    let (status, _) = cluster.post(
        &cluster.node("n1").url,
        "/v1/functions/work/invoke",
        &json!({"warm": true}),
    );
    assert_eq!(status, 200);
    let home = cluster.activations("n1", "work")[0]["node"]
        .as_str()
        .unwrap()
        .to_string();

    // 300 asynchronous invocations accepted across the nodes; the home is SIGKILLed midway.
    let mut accepted = Vec::new();
    let mut killed_at = None;
    for i in 0..300 {
        if i == 150 {
            cluster.kill(&home);
            killed_at = Some(Instant::now());
        }
        let urls = cluster.urls();
        let url = &urls[i % urls.len()];
        let (status, body) = cluster.post(
            url,
            "/v1/functions/work/invoke?async=true",
            &json!({"i": i}),
        );
        assert_eq!(status, 202, "{body}");
        accepted.push(body["activation_id"].as_str().unwrap().to_string());
    }
    let killed_at = killed_at.unwrap();
    let survivor = cluster.nodes.keys().next().unwrap().clone();

    // `lambent nodes` shows the killed node down within 5 s.
    let down_after = eventually(10, "the killed node shows down", || {
        let out = cluster.node(&survivor).cli(&["nodes", "-o", "json"]).ok();
        let nodes = out.json()["nodes"].as_array().cloned().unwrap_or_default();
        nodes
            .iter()
            .any(|n| n["id"] == home.as_str() && n["state"] == "down")
            .then(|| killed_at.elapsed())
    });
    println!("{home} SIGKILLed: shown down after {down_after:?}");
    assert!(down_after <= Duration::from_secs(5), "{down_after:?}");

    // Every accepted event completes: none lost; duplicates counted.
    let runs = eventually(
        90,
        "every accepted event has a successful activation",
        || {
            let records = cluster.activations(&survivor, "work");
            let mut runs: HashMap<String, usize> = HashMap::new();
            for a in records.iter().filter(|a| a["status"] == "success") {
                *runs
                    .entry(event_of(a["id"].as_str().unwrap()).to_string())
                    .or_default() += 1;
            }
            accepted
                .iter()
                .all(|id| runs.contains_key(id))
                .then_some(runs)
        },
    );
    let duplicates: usize = accepted.iter().map(|id| runs[id] - 1).sum();
    println!(
        "300 async invocations accepted across 3 nodes, {home} SIGKILLed after 150: \
         0 lost, {duplicates} duplicates (ran twice: their node died before the outcome was durable)"
    );
    assert!(
        duplicates <= 64,
        "duplicates are bounded by what was in flight"
    );

    // The schedule fired once per period with three nodes and after the kill; then its leader
    // (whoever holds the schedules' lease now) is killed too, and it keeps firing.
    let leader = eventually(10, "a schedule leader", || {
        cluster.nodes.keys().find_map(|id| {
            let leases = cluster.members(id)["leases"].clone();
            leases
                .as_array()?
                .iter()
                .any(|l| l == "lambent:schedules")
                .then(|| id.clone())
        })
    });
    cluster.kill(&leader);
    let leader_killed = Instant::now();
    let last = cluster.nodes.keys().next().unwrap().clone();
    std::thread::sleep(Duration::from_secs(10));
    let records = cluster.activations(&last, "tick");
    let fires = fires(&records);
    let doubled: Vec<_> = fires.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(doubled.is_empty(), "a period fired twice: {doubled:?}");
    let after_kill = records
        .iter()
        .filter(|a| {
            let started = a["start_ms"].as_i64().unwrap_or(0);
            let killed_ms = now_ms() - leader_killed.elapsed().as_millis() as i64;
            started > killed_ms + 3000
        })
        .count();
    println!(
        "schedule every 2 s: {} fires, none doubled; {after_kill} fired after the leader {leader} was SIGKILLed",
        fires.len()
    );
    assert!(fires.len() >= 5, "{fires:?}");
    assert!(
        after_kill >= 2,
        "the schedule kept firing after its leader died"
    );

    // A restarted node rejoins.
    cluster.start_node(&home);
    cluster.await_members(2);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn up_refuses_half_a_cluster_and_names_the_dependency_it_cannot_reach() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let up = |extra: &[&str]| {
        let mut args = vec![
            "up",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(&args, &[], None)
    };
    let out = up(&["--store", "postgres://postgres@127.0.0.1:1/lambent"]).failed();
    assert!(
        out.stderr.contains("needs both --store") && out.stderr.contains("--bus"),
        "{out:?}"
    );
    let out = up(&[
        "--store",
        "postgres://postgres@127.0.0.1:1/lambent",
        "--bus",
        "nats://127.0.0.1:1",
    ])
    .failed();
    assert!(
        out.stderr
            .contains("PostgreSQL at 127.0.0.1:1 is unreachable"),
        "{out:?}"
    );
    let store = PgServer::shared().fresh_database();
    let out = up(&["--store", &store, "--bus", "nats://127.0.0.1:1"]).failed();
    assert!(
        out.stderr.contains("NATS at 127.0.0.1:1 is unreachable"),
        "{out:?}"
    );
}

#[test]
fn dependencies_down_get_503_warm_invocations_go_on_and_the_node_recovers() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let pg = PgServer::start();
    let nats = NatsServer::start();
    let cluster = Cluster::start_on(pg.fresh_database(), nats.url(), &["n1"], &[]);
    cluster.deploy_python("n1", "echo", ECHO, &[]);
    let url = cluster.node("n1").url.clone();
    let invoke = |body: Value| cluster.post(&url, "/v1/functions/echo/invoke", &body);
    assert_eq!(invoke(json!({"before": true})).0, 200);

    // PostgreSQL down: management calls get a 503 naming it, quickly; warm invocations of a
    // deployed function go on; an asynchronous invocation is refused, not lost.
    pg.stop();
    let asked = Instant::now();
    let (status, body) = cluster.send(reqwest::Method::GET, &url, "/v1/activations", vec![]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "ServiceUnavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("PostgreSQL at 127.0.0.1:"), "{message}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "{:?}",
        asked.elapsed()
    );
    let (status, body) = invoke(json!({"during": "outage"}));
    assert_eq!(status, 200, "a warm invocation works from memory: {body}");
    let (status, body) = cluster.post(&url, "/v1/functions/echo/invoke?async=true", &json!({}));
    assert_eq!(status, 503, "{body}");

    // Back: the node recovers by itself; the record of the invocation made meanwhile is kept.
    pg.start_again();
    eventually(30, "management calls work again", || {
        let (status, _) = cluster.send(reqwest::Method::GET, &url, "/v1/activations", vec![]);
        (status == 200).then_some(())
    });
    eventually(15, "the outage's activation record is written", || {
        let successes = cluster
            .activations("n1", "echo")
            .iter()
            .filter(|a| a["status"] == "success")
            .count();
        (successes >= 2).then_some(())
    });
    let (status, body) = cluster.post(&url, "/v1/functions/echo/invoke?async=true", &json!({}));
    assert_eq!(status, 202, "{body}");
    let id = body["activation_id"].as_str().unwrap().to_string();
    eventually(30, "the async invocation runs", || {
        cluster
            .activations("n1", "echo")
            .iter()
            .any(|a| a["id"] == id.as_str() && a["status"] == "success")
            .then_some(())
    });

    // NATS down: code can't reach the cluster's storage (503 naming NATS); invocations and
    // management calls that need no NATS go on.
    nats.stop();
    let zip = code_zip("def handler(e, c):\n    return 'new'\n");
    let (status, body) = cluster.send(reqwest::Method::POST, &url, "/v1/code", zip.clone());
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NATS at 127.0.0.1:"),
        "{body}"
    );
    assert_eq!(invoke(json!({"nats": "down"})).0, 200);
    let (status, _) = cluster.send(reqwest::Method::GET, &url, "/v1/functions", vec![]);
    assert_eq!(status, 200);
    nats.start_again();
    eventually(30, "code uploads work again", || {
        let (status, _) = cluster.send(reqwest::Method::POST, &url, "/v1/code", zip.clone());
        (status == 201 || status == 200).then_some(())
    });
}

/// A zip with one `app.py`.
fn code_zip(app: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("app.py"), app).unwrap();
    let zip = dir.path().join("code.zip");
    let status = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.write(sys.argv[2], 'app.py'); z.close()"])
        .arg(&zip)
        .arg(dir.path().join("app.py"))
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(zip).unwrap()
}

/// An S3 request signed with SigV4 by curl (`--aws-sigv4`): `args` adds the body (`-T FILE`,
/// `--data-binary …`) and headers. The status, the response headers and the body.
fn s3(
    url: &str,
    key: &(String, String),
    method: &str,
    path: &str,
    args: &[&str],
) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (headers, body) = (dir.path().join("headers"), dir.path().join("body"));
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "%{http_code}", "-X", method, "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", key.0, key.1)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(args)
        .arg(format!("{url}{path}"))
        .output()
        .expect("curl runs");
    let status = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    let headers = std::fs::read_to_string(headers).unwrap_or_default();
    (status, headers, std::fs::read(body).unwrap_or_default())
}

/// A response header's value.
fn header(headers: &str, name: &str) -> String {
    headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .next_back()
        .unwrap_or_else(|| panic!("no {name} in {headers}"))
}

/// Deterministic bytes, different per seed.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed)
        .collect()
}

#[test]
fn s3_objects_are_one_store_across_nodes() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(&["a", "b"]);
    let k = cluster
        .node("a")
        .cli(&["keys", "create", "-o", "json"])
        .ok()
        .json();
    let key = (
        k["access_key_id"].as_str().unwrap().to_string(),
        k["secret_access_key"].as_str().unwrap().to_string(),
    );
    let (a, b) = (cluster.node("a").url.clone(), cluster.node("b").url.clone());
    let files = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = files.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.to_str().unwrap().to_string()
    };
    assert_eq!(s3(&a, &key, "PUT", "/shared", &[]).0, 200);

    // PUT on a, GET (whole and a range across chunks) on b.
    let photo = pattern(3 << 20, 1);
    let path = file("photo", &photo);
    let (status, _, _) = s3(&a, &key, "PUT", "/shared/photo.jpg", &["-T", &path]);
    assert_eq!(status, 200);
    let (status, _, got) = s3(&b, &key, "GET", "/shared/photo.jpg", &[]);
    assert_eq!((status, got.len()), (200, photo.len()));
    assert!(got == photo);
    let range = ["-H", "Range: bytes=500000-1600000"];
    let (status, _, got) = s3(&b, &key, "GET", "/shared/photo.jpg", &range);
    assert_eq!(status, 206);
    assert!(got == photo[500_000..=1_600_000]);

    // A multipart upload whose parts go to different nodes, completed on b.
    let (status, _, created) = s3(&a, &key, "POST", "/shared/big.bin?uploads=", &[]);
    assert_eq!(status, 200);
    let created = String::from_utf8(created).unwrap();
    let upload = created
        .split("<UploadId>")
        .nth(1)
        .and_then(|s| s.split("</UploadId>").next())
        .unwrap_or_else(|| panic!("no upload id in {created}"))
        .to_string();
    let parts = [pattern(5 << 20, 2), pattern((1 << 20) + 3, 3)];
    let mut etags = Vec::new();
    for (i, (node, part)) in [&a, &b].into_iter().zip(&parts).enumerate() {
        let path = file(&format!("part{i}"), part);
        let query = format!("/shared/big.bin?partNumber={}&uploadId={upload}", i + 1);
        let (status, headers, _) = s3(node, &key, "PUT", &query, &["-T", &path]);
        assert_eq!(status, 200, "part {}", i + 1);
        etags.push(header(&headers, "etag"));
    }
    let complete: String = etags
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>{e}</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let complete = format!("<CompleteMultipartUpload>{complete}</CompleteMultipartUpload>");
    let (status, _, answer) = s3(
        &b,
        &key,
        "POST",
        &format!("/shared/big.bin?uploadId={upload}"),
        &["--data-binary", &complete],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let whole = parts.concat();
    let (status, _, got) = s3(&a, &key, "GET", "/shared/big.bin", &[]);
    assert_eq!((status, got.len()), (200, whole.len()));
    assert!(got == whole);
    let boundary = 5 << 20;
    let range = format!("Range: bytes={}-{}", boundary - 10, boundary + 10);
    let (status, _, got) = s3(&b, &key, "GET", "/shared/big.bin", &["-H", &range]);
    assert_eq!(status, 206);
    assert!(got == whole[boundary - 10..=boundary + 10]);

    // A delete on b is a delete for a.
    assert_eq!(s3(&b, &key, "DELETE", "/shared/photo.jpg", &[]).0, 204);
    assert_eq!(s3(&a, &key, "GET", "/shared/photo.jpg", &[]).0, 404);

    // No node keeps object data on its own disk.
    for node in ["a", "b"] {
        let local = cluster.home.path().join(node).join("data/objects");
        let files = std::fs::read_dir(&local).map(|d| d.count()).unwrap_or(0);
        assert_eq!(files, 0, "{}", local.display());
    }

    // a is SIGKILLed halfway through a slow upload: nobody ever sees half an object.
    let path = file("slow", &pattern(8 << 20, 4));
    let mut upload = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--limit-rate", "2M", "-T", &path])
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{}:{}", key.0, key.1)])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{a}/shared/slow.bin"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    cluster.kill("a");
    let _ = upload.wait();
    assert_eq!(s3(&b, &key, "HEAD", "/shared/slow.bin", &["-I"]).0, 404);
    let (status, _, listing) = s3(&b, &key, "GET", "/shared?list-type=2", &[]);
    let listing = String::from_utf8(listing).unwrap();
    assert_eq!(status, 200);
    assert!(listing.contains("<Key>big.bin</Key>"), "{listing}");
    assert!(!listing.contains("slow.bin"), "{listing}");
    // The restarted node serves what was written before.
    cluster.start_node("a");
    let a = cluster.node("a").url.clone();
    let (status, _, got) = s3(&a, &key, "GET", "/shared/big.bin", &[]);
    assert_eq!((status, got.len()), (200, whole.len()));
}

const STEP: &str = "def handler(event, context):\n    return {\"n\": event[\"n\"] + 1}\n";

#[test]
fn standard_executions_stop_from_any_node_and_resume_on_another_when_their_node_dies() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let mut cluster = Cluster::start(&["n1", "n2"]);
    cluster.deploy_python("n1", "step", STEP, &[]);
    let definition = json!({
        "StartAt": "First",
        "States": {
            "First": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "step", "Payload.$": "$"},
                      "OutputPath": "$.Payload", "Next": "Nap"},
            "Nap": {"Type": "Wait", "Seconds": 6, "Next": "Second"},
            "Second": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                       "Parameters": {"FunctionName": "step", "Payload.$": "$"},
                       "OutputPath": "$.Payload", "End": true}
        }
    })
    .to_string();
    let n1 = cluster.node("n1");
    n1.cli(&["workflow", "deploy", "twice", "--definition", &definition])
        .ok();
    let waits = |name: &str| {
        eventually(30, &format!("{name} waits in Nap"), || {
            let shown = cluster.execution("n1", "twice", name);
            shown["events"]
                .as_array()?
                .iter()
                .any(|e| e["type"] == "WaitStateEntered")
                .then_some(())
        })
    };
    // StopExecution through the node that does not run it: the execution ends at once, and
    // its holder, whose next commit is refused, runs nothing more of it.
    n1.cli(&[
        "workflow",
        "start",
        "twice",
        "--input",
        r#"{"n": 10}"#,
        "--name",
        "stopped",
    ])
    .ok();
    waits("stopped");
    cluster
        .node("n2")
        .cli(&["execution", "stop", "twice", "stopped"])
        .ok();
    let shown = cluster.execution("n1", "twice", "stopped");
    assert_eq!(shown["execution"]["status"], "ABORTED", "{shown}");
    let events = shown["events"].as_array().unwrap();
    let last = events.last().unwrap();
    assert_eq!(last["type"], "ExecutionAborted", "{shown}");
    assert_eq!(last["id"].as_u64(), Some(events.len() as u64), "{shown}");
    std::thread::sleep(Duration::from_secs(7)); // its Wait ends on n1; nothing follows

    // Started on n1, which runs it (it holds the execution's lease) ...
    n1.cli(&[
        "workflow",
        "start",
        "twice",
        "--input",
        r#"{"n": 0}"#,
        "--name",
        "run1",
    ])
    .ok();
    waits("run1");
    // ... and dies there; n2 claims the execution when its lease runs out and finishes it.
    cluster.kill("n1");
    let killed = Instant::now();
    let shown = eventually(90, "n2 finishes the execution", || {
        let shown = cluster.execution("n2", "twice", "run1");
        (shown["execution"]["status"] != "RUNNING").then_some(shown)
    });
    println!(
        "execution finished on n2 {:?} after n1 was SIGKILLed",
        killed.elapsed()
    );
    assert_eq!(shown["execution"]["status"], "SUCCEEDED", "{shown}");
    assert_eq!(shown["execution"]["output"], json!({"n": 2}), "{shown}");
    // The completed Task was not run again: `step` ran twice for run1, the second time on
    // n2, and once for the stopped execution.
    let runs = cluster.activations("n2", "step");
    let succeeded: Vec<&Value> = runs.iter().filter(|a| a["status"] == "success").collect();
    assert_eq!(succeeded.len(), 3, "{runs:?}");
    assert!(succeeded.iter().any(|a| a["node"] == "n2"), "{runs:?}");
}

/// `aws stepfunctions <args>` against `url` with an access key: its exit status, stdout and
/// stderr.
fn aws_stepfunctions(url: &str, key: (&str, &str), args: &[&str]) -> (bool, String, String) {
    let venv = lambent_testkit::python::venv(&["boto3", "awscli"]);
    let out = std::process::Command::new(venv.join("bin/aws"))
        .arg("stepfunctions")
        .args(args)
        .args(["--endpoint-url", url])
        .env("AWS_ACCESS_KEY_ID", key.0)
        .env("AWS_SECRET_ACCESS_KEY", key.1)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("the AWS CLI runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn task_tokens_are_answered_through_any_node() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let cluster = Cluster::start(&["n1", "n2"]);
    let (n1, n2) = (cluster.node("n1"), cluster.node("n2"));
    let created = n1.cli(&["-o", "json", "keys", "create"]).ok().json();
    let key = (
        created["access_key_id"].as_str().unwrap().to_string(),
        created["secret_access_key"].as_str().unwrap().to_string(),
    );
    let key = (key.0.as_str(), key.1.as_str());
    cluster.deploy_python(
        "n1",
        "hold",
        "def handler(event, context):\n    print(event[\"run\"], \"token\", event[\"token\"])\n    return {}\n",
        &[],
    );
    // The Task hands its token to `hold` and waits for an answer, a heartbeat every 8 s.
    let definition = json!({
        "StartAt": "Ask",
        "States": {
            "Ask": {"Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                    "Parameters": {"FunctionName": "hold",
                                   "Payload": {"token.$": "$$.Task.Token",
                                               "run.$": "$$.Execution.Name"}},
                    "HeartbeatSeconds": 8, "End": true}
        }
    })
    .to_string();
    n1.cli(&["workflow", "deploy", "asks", "--definition", &definition])
        .ok();
    // Started on n1, which runs it: its token names n1. `hold` logs it with the execution's
    // name, and its activation record shows the log.
    let token_of = |name: &str| -> String {
        n1.cli(&["workflow", "start", "asks", "--input", "{}", "--name", name])
            .ok();
        let prefix = format!("{name} token ");
        eventually(60, &format!("{name} hands out its token"), || {
            cluster.activations("n1", "hold").iter().find_map(|a| {
                let logs = a["logs"].as_str()?;
                let line = logs.lines().find(|l| l.starts_with(&prefix))?;
                Some(line[prefix.len()..].trim().to_string())
            })
        })
    };
    let on_n2 = |args: &[&str]| aws_stepfunctions(&n2.url, key, args);
    // n2 learns the new access key through the cluster's signals.
    eventually(15, "n2 accepts the new access key", || {
        let (_, _, err) = on_n2(&["send-task-heartbeat", "--task-token", "x"]);
        err.contains("(TaskDoesNotExist)").then_some(())
    });

    // Heartbeats and the answer through n2 reach the Task on n1 (which would have failed with
    // States.HeartbeatTimeout without them: the answer comes 10 s after the token).
    let token = token_of("answered");
    for _ in 0..2 {
        let (ok, _, err) = on_n2(&["send-task-heartbeat", "--task-token", &token]);
        assert!(ok, "{err}");
        std::thread::sleep(Duration::from_secs(5));
    }
    let (ok, _, err) = on_n2(&[
        "send-task-success",
        "--task-token",
        &token,
        "--task-output",
        r#"{"answer": 42}"#,
    ]);
    assert!(ok, "{err}");
    let ended = |name: &str| {
        eventually(30, &format!("{name} ends"), || {
            let shown = cluster.execution("n1", "asks", name);
            (shown["execution"]["status"] != "RUNNING").then_some(shown)
        })
    };
    let shown = ended("answered");
    assert_eq!(shown["execution"]["status"], "SUCCEEDED", "{shown}");
    assert_eq!(
        shown["execution"]["output"],
        json!({"answer": 42}),
        "{shown}"
    );
    // A second answer finds the owner's Task over.
    let (ok, _, err) = on_n2(&["send-task-heartbeat", "--task-token", &token]);
    assert!(!ok && err.contains("(TaskTimedOut)"), "{err}");

    // A failure through n2 fails the execution with it.
    let token = token_of("failed");
    let (ok, _, err) = on_n2(&[
        "send-task-failure",
        "--task-token",
        &token,
        "--error",
        "Declined",
        "--cause",
        "the reviewer said no",
    ]);
    assert!(ok, "{err}");
    let shown = ended("failed");
    assert_eq!(shown["execution"]["status"], "FAILED", "{shown}");
    let last = shown["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "ExecutionFailed", "{shown}");
    assert!(
        last.to_string().contains("Declined") && last.to_string().contains("the reviewer said no"),
        "{last}"
    );

    // Tokens no Task waits on: of n1, of a node that does not exist, not a token at all. Each
    // is answered at once.
    use lambent_sfn_api::callbacks::new_token;
    for unknown in [new_token("n1"), new_token("n9"), "not-a-token".to_string()] {
        let asked = Instant::now();
        let (ok, _, err) = on_n2(&[
            "send-task-success",
            "--task-token",
            &unknown,
            "--task-output",
            "{}",
        ]);
        assert!(
            !ok && err.contains("(TaskDoesNotExist)"),
            "{unknown}: {err}"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "{unknown}: {:?}",
            asked.elapsed()
        );
    }
}
