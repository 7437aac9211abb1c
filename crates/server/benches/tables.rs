//! Tables on a real node, through the DynamoDB JSON API over HTTP (every request
//! SigV4-signed and verified by the server), each row beside its baseline measured in the
//! same run on the same disk: the same reads and writes done directly with rusqlite on an
//! SQLite file with the store's schema (`ddb_items`) and durability (WAL,
//! `synchronous=NORMAL`).
//!
//! - GetItem and PutItem (an item of ~200 bytes), p50/p99 with 1 caller, throughput with 64;
//! - Query of one partition of 100 items (one page).
//!
//! Every API case is driven twice: by **wrk from outside the process** (the figures the
//! targets are judged on), and by an in-process client (reqwest on the server's own runtime,
//! sharing its 2 cores; kept so the difference shows: it under-reports throughput). wrk cannot
//! sign: the bench signs each request (SigV4, as an AWS SDK does) just before a run and wrk
//! replays those bytes, cycling through 1000 of them (one per item). A signature stays valid
//! for 15 minutes and DynamoDB does not refuse a replayed request, so this is what a client
//! may send; the server still verifies every signature of every request. With wrk outside,
//! the bench's process is the server alone, so its CPU time per request (getrusage) is the
//! server's cost of one operation, the measure least moved by whatever else the machine runs.
//! A last row, the **HTTP ceiling**, is wrk against a minimal axum route answering GetItem's
//! answer text, on the same runtime: what HTTP alone costs here.
//!
//! Each case is measured in `LAMBENT_BENCH_ROUNDS` rounds (default 3); the table gives each
//! figure's median over the rounds. Targets (issue 17): GetItem p50 ≤ 0.3 ms, PutItem p50 ≤
//! 0.5 ms, ≥ 20,000 GetItem/s at 64 callers. Run: `cargo bench -p lambent-server --bench
//! tables` (root needed for the node's sandboxes; `wrk` on `PATH`); `LAMBENT_BENCH_N` sets the
//! in-process operations per row and round (default 2000), `LAMBENT_BENCH_SECS` the seconds
//! of a wrk run (default 3), `LAMBENT_BENCH_WRK_THREADS` wrk's threads at 64 connections
//! (default 1). The table is printed and written to `target/tables_bench.md`.

mod support;

/// The `lambent` binary's allocator, so that the server measured here is the one it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use lambent_server::{start, ServerOptions};
use lambent_testkit::wrk;
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::{abba, closed_loop, ms, stats, Run};

const ACCESS_KEY_ID: &str = "LKIABENCHBENCHBENCH0";
const SECRET: &str = "bench-secret-bench-secret-bench-secret00";
const TABLE: &str = "bench";
/// The items GetItem reads (written before the rows).
const KEYS: usize = 1000;
/// Items in the queried partition.
const QUERY_ITEMS: usize = 100;

/// A DynamoDB client: JSON 1.0 requests signed with SigV4 (payload hashed).
struct Dynamo {
    http: reqwest::Client,
    url: String,
    host: String,
}

impl Dynamo {
    /// The signed headers of a call (as an AWS SDK sends them) and its body.
    fn signed(&self, operation: &str, body: &Value) -> (reqwest::header::HeaderMap, String) {
        let body = body.to_string();
        let target = format!("DynamoDB_20120810.{operation}");
        let headers = support::sigv4_headers(
            (ACCESS_KEY_ID, SECRET),
            "dynamodb",
            ("POST", &self.host, "/"),
            &[
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", &target),
            ],
            &hex::encode(Sha256::digest(body.as_bytes())),
        );
        (headers, body)
    }

    async fn call(&self, operation: &str, body: &Value) -> Value {
        let (headers, body) = self.signed(operation, body);
        let r = self
            .http
            .post(format!("{}/", self.url))
            .headers(headers)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "{operation}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// A wrk script replaying `bodies` of `operation`, each signed now.
    fn script(&self, dir: &Path, file: &str, operation: &str, bodies: &[Value]) -> PathBuf {
        let requests: Vec<wrk::ScriptRequest> = bodies
            .iter()
            .map(|b| {
                let (headers, body) = self.signed(operation, b);
                let mut headers: Vec<(String, String)> = headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
                    .collect();
                // wrk adds its own `Host` unless the table has one under that spelling.
                headers.push(("Host".into(), self.host.clone()));
                wrk::ScriptRequest {
                    method: "POST".into(),
                    path: "/".into(),
                    headers,
                    body,
                }
            })
            .collect();
        wrk::script(dir, file, &requests, 0)
    }
}

/// The bench's item number `i` (about 200 bytes), typed.
fn item(pk: &str, sk: usize) -> Value {
    json!({
        "pk": {"S": pk}, "sk": {"N": sk.to_string()},
        "name": {"S": format!("customer number {sk} of the benchmark")},
        "total": {"N": format!("{}.{}", sk * 7, sk % 100)},
        "tags": {"SS": ["a", "b", "c"]},
        "address": {"M": {"city": {"S": "Lisbon"}, "zip": {"S": "1000-001"}}},
        "active": {"BOOL": true}
    })
}

/// The baseline: the store's `ddb_items` schema in an SQLite file of its own, with the
/// store's pragmas; a writer connection and a few readers.
struct Baseline {
    writer: Mutex<rusqlite::Connection>,
    readers: Vec<Mutex<rusqlite::Connection>>,
}

impl Baseline {
    fn open(path: &Path) -> Baseline {
        let conn = || {
            let c = rusqlite::Connection::open(path).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;",
            )
            .unwrap();
            c
        };
        let writer = conn();
        writer
            .execute_batch(
                "CREATE TABLE ddb_items (table_id TEXT NOT NULL, key BLOB NOT NULL, \
                 item TEXT NOT NULL, size INTEGER NOT NULL, partition_hash INTEGER NOT NULL, \
                 PRIMARY KEY (table_id, key)) WITHOUT ROWID;",
            )
            .unwrap();
        Baseline {
            writer: Mutex::new(writer),
            readers: (0..4).map(|_| Mutex::new(conn())).collect(),
        }
    }

    fn put(&self, key: &[u8], item: &str) {
        let mut c = self.writer.lock();
        let tx = c.transaction().unwrap();
        tx.prepare_cached(
            "INSERT INTO ddb_items (table_id, key, item, size, partition_hash) \
             VALUES ('t', ?1, ?2, ?3, 0) ON CONFLICT (table_id, key) DO UPDATE SET \
             item = excluded.item, size = excluded.size",
        )
        .unwrap()
        .execute(rusqlite::params![key, item, item.len() as i64])
        .unwrap();
        tx.commit().unwrap();
    }

    fn get(&self, caller: usize, key: &[u8]) -> String {
        let c = self.readers[caller % self.readers.len()].lock();
        let item = c
            .prepare_cached("SELECT item FROM ddb_items WHERE table_id = 't' AND key = ?1")
            .unwrap()
            .query_row([key], |r| r.get(0))
            .unwrap();
        item
    }

    fn query(&self, caller: usize, prefix: &[u8]) -> usize {
        let c = self.readers[caller % self.readers.len()].lock();
        let mut upper = prefix.to_vec();
        upper.push(0xFF);
        let mut stmt = c
            .prepare_cached(
                "SELECT key, item FROM ddb_items WHERE table_id = 't' AND key > ?1 AND key < ?2 \
                 ORDER BY key LIMIT 1000",
            )
            .unwrap();
        let rows = stmt
            .query_map(rusqlite::params![prefix, upper], |r| {
                Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?))
            })
            .unwrap();
        // Parsed like the service parses stored items.
        let items: Vec<Value> = rows
            .map(|r| serde_json::from_str(&r.unwrap().1).unwrap())
            .collect();
        items.len()
    }
}

fn baseline_key(pk: &str, sk: usize) -> Vec<u8> {
    let mut k = pk.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&(sk as u64).to_be_bytes());
    k
}

/// One measurement of a case: latency percentiles, throughput and CPU per operation.
#[derive(Clone, Copy)]
struct Measure {
    p50: Duration,
    p99: Duration,
    ops: f64,
    /// CPU microseconds per operation (this process: the server, and the client if in it).
    cpu_us: f64,
    /// Failed requests (wrk's non-2xx answers and socket errors; an in-process failure panics).
    errors: u64,
    /// wrk's own CPU microseconds per request (rows driven from outside).
    wrk_us: Option<f64>,
}

impl Measure {
    fn of(run: &Run) -> Measure {
        let s = stats(run.samples.clone());
        Measure {
            p50: s.p50,
            p99: s.p99,
            ops: run.ops(),
            cpu_us: run.cpu_us(),
            errors: 0,
            wrk_us: None,
        }
    }

    /// Each figure's median over rounds.
    fn median(rounds: &[Measure]) -> Measure {
        fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        }
        Measure {
            p50: mid(rounds.iter().map(|m| m.p50).collect()),
            p99: mid(rounds.iter().map(|m| m.p99).collect()),
            ops: mid(rounds.iter().map(|m| m.ops).collect()),
            cpu_us: mid(rounds.iter().map(|m| m.cpu_us).collect()),
            errors: rounds.iter().map(|m| m.errors).sum(),
            wrk_us: rounds
                .iter()
                .map(|m| m.wrk_us)
                .collect::<Option<Vec<f64>>>()
                .map(mid),
        }
    }

    fn p50_ms(&self) -> f64 {
        self.p50.as_secs_f64() * 1000.0
    }

    fn cell(&self) -> String {
        let errors = match self.errors {
            0 => String::new(),
            n => format!(", **{n} errors** (all rounds)"),
        };
        let wrk = match self.wrk_us {
            Some(us) => format!(" (wrk: {us:.0})"),
            None => String::new(),
        };
        format!(
            "p50 {} / p99 {} ms, {:.0} op/s, CPU {:.0}{wrk} µs/op{errors}",
            ms(self.p50),
            ms(self.p99),
            self.ops,
            self.cpu_us
        )
    }
}

/// wrk from outside the process: `connections` connections replaying `script` for `secs`;
/// CPU is this process's (the server's) per successful request.
async fn outside(wrk: &Path, script: &Path, url: &str, connections: usize, secs: u64) -> Measure {
    let threads = if connections == 1 {
        1
    } else {
        support::env_or("LAMBENT_BENCH_WRK_THREADS", 1)
    };
    let (wrk, script, url) = (wrk.to_owned(), script.to_owned(), url.to_owned());
    // wrk is waited for on a blocking thread: the runtime serves the load meanwhile.
    tokio::task::spawn_blocking(move || {
        let cpu = support::process_cpu();
        let load = wrk::Load {
            threads,
            connections,
            secs,
            script: &script,
            url: &url,
        };
        let (m, wrk_cpu) = wrk::start(&wrk, &load).finish();
        let cpu = support::process_cpu() - cpu;
        if m.errors > 0 {
            eprintln!("wrk saw {} errors:\n{}", m.errors, m.report);
        }
        Measure {
            p50: m.p50.expect("wrk's latency distribution"),
            p99: m.p99.expect("wrk's latency distribution"),
            ops: m.rps(),
            cpu_us: cpu.as_secs_f64() * 1e6 / m.ok().max(1) as f64,
            errors: m.errors,
            wrk_us: Some(wrk_cpu.as_secs_f64() * 1e6 / m.ok().max(1) as f64),
        }
    })
    .await
    .unwrap()
}

/// A case's measurements over the rounds: from outside, in-process, and its baseline.
#[derive(Default)]
struct Case {
    outside: Vec<Measure>,
    inside: Vec<Measure>,
    baseline: Vec<Measure>,
}

/// A target: what it says, and whether a measure meets it.
type Target = (&'static str, fn(&Measure) -> bool);

impl Case {
    /// The case's two rows (from outside, in-process), each beside the baseline's medians.
    fn rows(&self, case: &str, conc: usize, target: Option<Target>) -> String {
        let base = Measure::median(&self.baseline);
        let callers = format!("{conc} caller{}", if conc == 1 { "" } else { "s" });
        let mut out = String::new();
        for (client, rounds) in [
            ("wrk, outside", &self.outside),
            ("in-process reqwest", &self.inside),
        ] {
            let api = Measure::median(rounds);
            let verdict = match target {
                Some((what, met)) if client.starts_with("wrk") => {
                    format!("{what}: {}", if met(&api) { "met" } else { "MISSED" })
                }
                _ => "-".into(),
            };
            out.push_str(&format!(
                "| {case}, {callers} | {client} | {} | {} | p50 {:.1}×, op/s {:.0}%, CPU {:.1}× | {verdict} |\n",
                api.cell(),
                base.cell(),
                api.p50.as_secs_f64() / base.p50.as_secs_f64(),
                100.0 * api.ops / base.ops,
                api.cpu_us / base.cpu_us,
            ));
        }
        out
    }
}

/// The 1-minute load average (runnable threads of the whole machine).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// What a case would serve on the machine's cores with nothing else running: cores ÷ (the
/// server's CPU per request + wrk's), from a row driven from outside.
fn capacity(m: &Measure) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    cores * 1e6 / (m.cpu_us + m.wrk_us.unwrap_or(0.0))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// A minimal axum server answering every `POST /` with `answer`: the HTTP ceiling.
async fn ceiling(answer: String) -> String {
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move { ([("content-type", "application/x-amz-json-1.0")], answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

fn main() {
    support::block_on(bench());
}

fn get_body(i: usize) -> Value {
    json!({"TableName": TABLE, "Key": {"pk": {"S": format!("user-{}", i % KEYS)}, "sk": {"N": "0"}}})
}

fn put_body(pk: &str, i: usize) -> Value {
    json!({"TableName": TABLE, "Item": item(pk, i)})
}

fn query_body() -> Value {
    json!({"TableName": TABLE, "KeyConditionExpression": "pk = :p",
           "ExpressionAttributeValues": {":p": {"S": "orders"}}})
}

async fn bench() {
    let n = support::samples(2000);
    let rounds = support::env_or("LAMBENT_BENCH_ROUNDS", 3usize).max(1);
    let secs = support::env_or("LAMBENT_BENCH_SECS", 3u64);
    let wrk_bin = wrk::find();
    let load_before = load_average();
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), tmp.path().join("data"));
    opts.api_key = Some("bench-key".into());
    opts.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()));
    let server = start(opts).await.expect("the server did not start (root?)");
    let url = server.url().to_string();
    let db = Arc::new(Dynamo {
        http: support::http_client(),
        host: url.trim_start_matches("http://").to_string(),
        url: url.clone(),
    });
    let base = Arc::new(Baseline::open(&tmp.path().join("baseline.db")));

    db.call(
        "CreateTable",
        &json!({"TableName": TABLE, "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                          {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                     {"AttributeName": "sk", "AttributeType": "N"}]}),
    )
    .await;
    for i in 0..KEYS {
        let pk = format!("user-{i}");
        db.call("PutItem", &put_body(&pk, 0)).await;
        base.put(&baseline_key(&pk, 0), &item(&pk, 0).to_string());
    }
    for sk in 0..QUERY_ITEMS {
        db.call("PutItem", &put_body("orders", sk)).await;
        base.put(&baseline_key("orders", sk), &item("orders", sk).to_string());
    }

    let api_get = {
        let db = db.clone();
        move |_caller: usize, i: usize| {
            let db = db.clone();
            async move {
                let r = db.call("GetItem", &get_body(i)).await;
                assert!(r["Item"].is_object());
            }
        }
    };
    let base_get = {
        let base = base.clone();
        move |caller: usize, i: usize| {
            let base = base.clone();
            blocking(move || {
                let item = base.get(caller, &baseline_key(&format!("user-{}", i % KEYS), 0));
                let _: Value = serde_json::from_str(&item).unwrap();
            })
        }
    };
    let api_put = {
        let db = db.clone();
        move |_caller: usize, i: usize| {
            let db = db.clone();
            async move {
                db.call("PutItem", &put_body(&format!("new-{i}"), i)).await;
            }
        }
    };
    let base_put = {
        let base = base.clone();
        move |_caller: usize, i: usize| {
            let base = base.clone();
            blocking(move || {
                let pk = format!("new-{i}");
                base.put(&baseline_key(&pk, i), &item(&pk, i).to_string())
            })
        }
    };
    let api_query = {
        let db = db.clone();
        move |_caller: usize, _i: usize| {
            let db = db.clone();
            async move {
                let r = db.call("Query", &query_body()).await;
                assert_eq!(r["Count"], QUERY_ITEMS);
            }
        }
    };
    let base_query = {
        let base = base.clone();
        move |caller: usize, _i: usize| {
            let base = base.clone();
            blocking(move || {
                let mut prefix = b"orders".to_vec();
                prefix.push(0);
                assert_eq!(base.query(caller, &prefix), QUERY_ITEMS);
            })
        }
    };

    // Warm-up: connections open, statements prepared.
    closed_loop(64, 0, 640, api_get.clone()).await;
    closed_loop(64, 0, 640, base_get.clone()).await;

    let (mut get1, mut put1, mut get64, mut put64, mut query): (Case, Case, Case, Case, Case) =
        Default::default();
    let mut http_ceiling = Vec::new();
    let ceiling_url = ceiling(db.call("GetItem", &get_body(0)).await.to_string()).await;
    let gets: Vec<Value> = (0..KEYS).map(get_body).collect();
    let puts: Vec<Value> = (0..KEYS)
        .map(|i| put_body(&format!("wrk-{i}"), i))
        .collect();
    let n64 = (n * 4).max(128) / 128 * 128;
    let nq = (n / 4).max(2);
    let dir = tmp.path();
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        // In-process writes take fresh keys each round.
        let offset = round * (n + n64);
        let cases: [(&mut Case, usize, usize); 4] = [
            (&mut get1, 1, n),
            (&mut put1, 1, n),
            (&mut get64, 64, n64),
            (&mut put64, 64, n64),
        ];
        for (k, (case, conc, count)) in cases.into_iter().enumerate() {
            let (api, baseline) = if k % 2 == 0 {
                abba(conc, count, api_get.clone(), base_get.clone()).await
            } else {
                let (a, b) = (api_put.clone(), base_put.clone());
                let from = offset + if conc == 1 { 0 } else { n };
                abba(
                    conc,
                    count,
                    move |c, i| a(c, i + from),
                    move |c, i| b(c, i + from),
                )
                .await
            };
            case.inside.push(Measure::of(&api));
            case.baseline.push(Measure::of(&baseline));
            let (operation, bodies) = if k % 2 == 0 {
                ("GetItem", &gets)
            } else {
                ("PutItem", &puts)
            };
            let script = db.script(dir, operation, operation, bodies);
            case.outside
                .push(outside(&wrk_bin, &script, &url, conc, secs).await);
        }
        let (api, baseline) = abba(1, nq, api_query.clone(), base_query.clone()).await;
        query.inside.push(Measure::of(&api));
        query.baseline.push(Measure::of(&baseline));
        let script = db.script(dir, "Query", "Query", &[query_body()]);
        query
            .outside
            .push(outside(&wrk_bin, &script, &url, 1, secs).await);
        let script = wrk::script(
            dir,
            "ceiling",
            &[wrk::ScriptRequest {
                method: "POST".into(),
                path: "/".into(),
                headers: vec![("content-type".into(), "application/x-amz-json-1.0".into())],
                body: get_body(0).to_string(),
            }],
            0,
        );
        http_ceiling.push(outside(&wrk_bin, &script, &ceiling_url, 64, secs).await);
    }

    let mut table = String::from(
        "| case | client | DynamoDB API (SigV4, HTTP) | baseline: rusqlite, same schema and file settings | API vs baseline | target |\n\
         | --- | --- | --- | --- | --- | --- |\n",
    );
    table.push_str(&get1.rows(
        "GetItem",
        1,
        Some(("p50 ≤ 0.3 ms", |m: &Measure| m.p50_ms() <= 0.3)),
    ));
    table.push_str(&put1.rows(
        "PutItem",
        1,
        Some(("p50 ≤ 0.5 ms", |m: &Measure| m.p50_ms() <= 0.5)),
    ));
    table.push_str(&get64.rows(
        "GetItem",
        64,
        Some(("≥ 20,000 op/s", |m: &Measure| m.ops >= 20_000.0)),
    ));
    table.push_str(&put64.rows("PutItem", 64, None));
    table.push_str(&query.rows("Query of 100 items", 1, None));
    table.push_str(&format!(
        "| HTTP ceiling, 64 callers | wrk, outside | axum answering GetItem's answer: {} | - | - | - |\n",
        Measure::median(&http_ceiling).cell()
    ));

    let get64_outside = Measure::median(&get64.outside);
    let report = format!(
        "{table}\nGetItem at 64 callers from outside costs {:.0} µs of server CPU and {:.0} µs \
         of wrk's per request: the machine's cores alone would serve {:.0} GetItem/s. The run \
         shares them: load average {load_before} at its start, {} at its end.\n\n\
         Medians of {rounds} rounds; per round, each in-process row and its baseline \
         ran {n} operations ({} at 64 callers, {nq} for Query) in a-b-b-a order, each wrk row {secs} s. \
         **wrk, outside**: wrk in its own process replaying requests signed by the bench just \
         before the run (1000 distinct GetItem keys and PutItem items in turn; the server \
         verifies every signature); CPU is the server process's per request (getrusage of the \
         bench process, which then runs nothing but the server). **in-process reqwest**: the \
         client runs on the server's runtime and cores; its CPU includes the client's. \
         Baselines: the same items (DynamoDB JSON text) in an SQLite file with the store's \
         `ddb_items` table and pragmas (WAL, synchronous=NORMAL); GetItem = one SELECT by key and \
         a JSON parse, PutItem = one INSERT … ON CONFLICT in a transaction, Query = one range \
         SELECT of the partition with every item parsed; from blocking threads, 4 reader \
         connections and 1 writer, in the bench's process. Durability of both: WAL with \
         synchronous=NORMAL, so a commit is in the WAL file (the OS's page cache) before the \
         answer: nothing accepted is lost when the server is killed; a power cut may lose the \
         commits since the last checkpoint's fsync.\n",
        get64_outside.cpu_us,
        get64_outside.wrk_us.unwrap_or(0.0),
        capacity(&get64_outside),
        load_average(),
        n64
    );
    support::write_report("tables_bench.md", &report);
    server.shutdown().await;
}
