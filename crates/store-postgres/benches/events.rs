//! Async-invocation throughput of the event store, for the PostgreSQL `SKIP LOCKED` vs NATS
//! JetStream decision: on a private PostgreSQL (testkit) with the SQLite store on a temporary
//! file as the baseline in the same run. (a) enqueue: 64 concurrent callers through one group
//! commit (batches of up to 512 `Enqueue`s, as the events crate does); (b) claim + complete:
//! workers claiming up to 64 due events and completing them in one batch, with 1 and with 3
//! concurrent claimers (3 simulated nodes, different owners). Prints a markdown table of the
//! medians of a few runs. Run: `cargo bench -p lambent-store-postgres --bench events`.

use lambent_store::events::{Claim, EventStore, EventWrite, QueuedEvent};
use lambent_store_postgres::PgStore;
use lambent_store_sqlite::SqliteStore;
use lambent_testkit::postgres::PgServer;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

const RUNS: usize = 3;
const ENQUEUE: usize = 20_000;
const CALLERS: usize = 64;
const CLAIM: usize = 10_000;

fn event(i: usize) -> QueuedEvent {
    QueuedEvent {
        id: format!("e{i}-{}", rand_suffix()),
        namespace: "default".into(),
        function: format!("f{}", i % 8),
        payload: br#"{"hello":"world","n":42}"#.to_vec(),
        trigger: "async".into(),
        created_ms: 1,
        due_ms: i as i64,
        attempts: 0,
        claims: 0,
        trace: None,
        hop: None,
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// 64 callers, each enqueueing one event at a time through a group commit; events/s.
async fn enqueue(store: Arc<dyn EventStore>) -> f64 {
    type Job = (EventWrite, oneshot::Sender<()>);
    let (tx, mut rx) = mpsc::channel::<Job>(4096);
    let committer = tokio::spawn({
        let store = store.clone();
        async move {
            while let Some(first) = rx.recv().await {
                let mut jobs = vec![first];
                while jobs.len() < 512 {
                    match rx.try_recv() {
                        Ok(j) => jobs.push(j),
                        Err(_) => break,
                    }
                }
                let (writes, acks): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
                store.write_events(writes).await.unwrap();
                for a in acks {
                    let _ = a.send(());
                }
            }
        }
    });
    let started = Instant::now();
    let mut callers = Vec::new();
    for c in 0..CALLERS {
        let tx = tx.clone();
        callers.push(tokio::spawn(async move {
            for i in (c..ENQUEUE).step_by(CALLERS) {
                let (ack, done) = oneshot::channel();
                tx.send((EventWrite::Enqueue(event(i)), ack)).await.unwrap();
                done.await.unwrap();
            }
        }));
    }
    for c in callers {
        c.await.unwrap();
    }
    let rate = ENQUEUE as f64 / started.elapsed().as_secs_f64();
    drop(tx);
    committer.await.unwrap();
    rate
}

/// `claimers` workers draining `CLAIM` due events, 64 at a time, each batch completed in one
/// write; events/s.
async fn claim_complete(store: Arc<dyn EventStore>, claimers: usize) -> f64 {
    for chunk in (0..CLAIM).collect::<Vec<_>>().chunks(512) {
        let writes = chunk
            .iter()
            .map(|i| EventWrite::Enqueue(event(*i)))
            .collect();
        store.write_events(writes).await.unwrap();
    }
    let started = Instant::now();
    let mut workers = Vec::new();
    for n in 0..claimers {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let owner = format!("n{n}");
            let mut done = 0;
            loop {
                let c = Claim {
                    now_ms: i64::MAX / 2,
                    limit: 64,
                    lease_until_ms: i64::MAX,
                    owner: &owner,
                    home: None,
                    spill_after_ms: 0,
                };
                let batch = store.claim_events(&c).await.unwrap();
                if batch.is_empty() {
                    return done;
                }
                done += batch.len();
                let writes = batch
                    .into_iter()
                    .map(|e| EventWrite::Complete {
                        id: e.id,
                        claim: e.claims,
                        then: None,
                    })
                    .collect();
                let applied = store.write_events(writes).await.unwrap();
                assert!(applied.iter().all(|a| *a));
            }
        }));
    }
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    assert_eq!(total, CLAIM);
    CLAIM as f64 / started.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[derive(Clone, Copy)]
enum Case {
    Enqueue,
    Claim(usize),
}

async fn run(case: Case, store: Arc<dyn EventStore>) -> f64 {
    match case {
        Case::Enqueue => enqueue(store).await,
        Case::Claim(n) => claim_complete(store, n).await,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let server = Arc::new(server);
    let cases = [
        ("enqueue, 64 callers, group commit ≤ 512", Case::Enqueue),
        ("claim ≤ 64 + complete, 1 claimer", Case::Claim(1)),
        ("claim ≤ 64 + complete, 3 claimers", Case::Claim(3)),
    ];
    let mut rows = Vec::new();
    for (name, case) in cases {
        let (mut pg, mut sqlite) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let url = {
                let server = server.clone();
                tokio::task::spawn_blocking(move || server.fresh_database())
                    .await
                    .unwrap()
            };
            let store: Arc<dyn EventStore> = Arc::new(PgStore::connect(&url).await.unwrap());
            pg.push(run(case, store).await);
            let dir = tempfile::tempdir().unwrap();
            let store: Arc<dyn EventStore> =
                Arc::new(SqliteStore::open(&dir.path().join("db")).unwrap());
            sqlite.push(run(case, store).await);
        }
        let (pg, sqlite) = (median(pg), median(sqlite));
        eprintln!("{name}: PostgreSQL {pg:.0}/s, SQLite {sqlite:.0}/s");
        rows.push((name, pg, sqlite));
    }
    println!("\n| events/s (median of {RUNS}) | PostgreSQL | SQLite | PG / SQLite |");
    println!("|---|---:|---:|---:|");
    for (name, pg, sqlite) in rows {
        println!("| {name} | {pg:.0} | {sqlite:.0} | {:.2} |", pg / sqlite);
    }
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}
