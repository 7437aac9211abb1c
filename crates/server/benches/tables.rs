//! Tables on a real node, through the DynamoDB JSON API over HTTP (every request
//! SigV4-signed and verified by the server), each row beside its baseline measured in the
//! same run on the same disk: the same reads and writes done directly with rusqlite on an
//! SQLite file with the store's schema (`ddb_items`) and durability (WAL,
//! `synchronous=NORMAL`).
//!
//! - GetItem and PutItem (an item of ~200 bytes), p50/p99 with 1 caller, throughput with 64;
//! - Query of one partition of 100 items (one page).
//!
//! Targets (issue 17): GetItem p50 ≤ 0.3 ms, PutItem p50 ≤ 0.5 ms, ≥ 20,000 GetItem/s at 64
//! callers. Run: `cargo bench -p lambent-server --bench tables` (root needed for the node's
//! sandboxes); `LAMBENT_BENCH_N` sets the operations per row (default 4000). The table is
//! printed and written to `target/tables_bench.md`.

mod support;

use lambent_server::{start, ServerOptions};
use parking_lot::Mutex;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
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
    async fn call(&self, operation: &str, body: &Value) -> Value {
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

/// A row: the case, the API's numbers, the baseline's, the ratio, the target.
fn row(case: &str, conc: usize, api: &Run, base: &Run, target: &str, met: Option<bool>) -> String {
    let (a, b) = (stats(api.samples.clone()), stats(base.samples.clone()));
    let target = match met {
        Some(m) => format!("{target}: {}", if m { "met" } else { "MISSED" }),
        None => "-".into(),
    };
    format!(
        "| {case}, {conc} caller{}, n={} | p50 {} / p99 {} ms, {:.0} op/s, CPU {:.0} µs/op | p50 {} / p99 {} ms, {:.0} op/s, CPU {:.0} µs/op | p50 {:.1}×, op/s {:.0}% | {target} |\n",
        if conc == 1 { "" } else { "s" },
        a.n,
        ms(a.p50),
        ms(a.p99),
        api.ops(),
        api.cpu_us(),
        ms(b.p50),
        ms(b.p99),
        base.ops(),
        base.cpu_us(),
        a.p50.as_secs_f64() / b.p50.as_secs_f64(),
        100.0 * api.ops() / base.ops(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn main() {
    support::block_on(bench());
}

async fn bench() {
    let n = support::samples(4000);
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), tmp.path().join("data"));
    opts.api_key = Some("bench-key".into());
    opts.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()));
    let server = start(opts).await.expect("the server did not start (root?)");
    let url = server.url().to_string();
    let db = Arc::new(Dynamo {
        http: support::http_client(),
        host: url.trim_start_matches("http://").to_string(),
        url,
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
        db.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": item(&pk, 0)}),
        )
        .await;
        base.put(&baseline_key(&pk, 0), &item(&pk, 0).to_string());
    }
    for sk in 0..QUERY_ITEMS {
        db.call(
            "PutItem",
            &json!({"TableName": TABLE, "Item": item("orders", sk)}),
        )
        .await;
        base.put(&baseline_key("orders", sk), &item("orders", sk).to_string());
    }

    let api_get = {
        let db = db.clone();
        move |_caller: usize, i: usize| {
            let db = db.clone();
            async move {
                let key = json!({"pk": {"S": format!("user-{}", i % KEYS)}, "sk": {"N": "0"}});
                let r = db
                    .call("GetItem", &json!({"TableName": TABLE, "Key": key}))
                    .await;
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
                let it = item(&format!("new-{i}"), i);
                db.call("PutItem", &json!({"TableName": TABLE, "Item": it}))
                    .await;
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
                let r = db
                    .call(
                        "Query",
                        &json!({"TableName": TABLE, "KeyConditionExpression": "pk = :p",
                                "ExpressionAttributeValues": {":p": {"S": "orders"}}}),
                    )
                    .await;
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

    let mut table = String::from(
        "| case | DynamoDB API (SigV4, HTTP) | baseline: rusqlite, same schema and file settings | API vs baseline | target |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    let (get1, get1_base) = abba(1, n, api_get.clone(), base_get.clone()).await;
    let p50 = |r: &Run| stats(r.samples.clone()).p50.as_secs_f64() * 1000.0;
    table.push_str(&row(
        "GetItem",
        1,
        &get1,
        &get1_base,
        "p50 ≤ 0.3 ms",
        Some(p50(&get1) <= 0.3),
    ));
    let (put1, put1_base) = abba(1, n, api_put.clone(), base_put.clone()).await;
    table.push_str(&row(
        "PutItem",
        1,
        &put1,
        &put1_base,
        "p50 ≤ 0.5 ms",
        Some(p50(&put1) <= 0.5),
    ));
    let n64 = (n * 4).max(128) / 128 * 128;
    let (get64, get64_base) = abba(64, n64, api_get, base_get).await;
    table.push_str(&row(
        "GetItem",
        64,
        &get64,
        &get64_base,
        "≥ 20,000 op/s",
        Some(get64.ops() >= 20_000.0),
    ));
    // Keys not written yet by the 1-caller row.
    let offset = n;
    let (put64, put64_base) = abba(
        64,
        n64,
        move |c, i| api_put(c, i + offset),
        move |c, i| base_put(c, i + offset),
    )
    .await;
    table.push_str(&row("PutItem", 64, &put64, &put64_base, "", None));
    let nq = (n / 4).max(2);
    let (q1, q1_base) = abba(1, nq, api_query, base_query).await;
    table.push_str(&row("Query of 100 items", 1, &q1, &q1_base, "", None));

    let report = format!(
        "{table}\nBaselines: the same items (DynamoDB JSON text) in an SQLite file with the store's \
         `ddb_items` table and pragmas (WAL, synchronous=NORMAL); GetItem = one SELECT by key and \
         a JSON parse, PutItem = one INSERT … ON CONFLICT in a transaction, Query = one range \
         SELECT of the partition with every item parsed; from blocking threads, 4 reader \
         connections and 1 writer. The bench's client runs in the server's process: CPU is the \
         process's (client, server and store) per operation, from getrusage.\n"
    );
    support::write_report("tables_bench.md", &report);
    server.shutdown().await;
}
