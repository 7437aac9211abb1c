//! What only a shared PostgreSQL store must show: concurrent nodes (several `PgStore`s on one
//! database) never hand out one event or message twice nor lose an update, the cluster tables
//! and leases, recovery after the server restarts, and refusing a schema newer than known.

use lambent_store::cluster::{ClusterStore, NodeRecord, NodeStats};
use lambent_store::contract::{event, function};
use lambent_store::events::{Claim, EventStore, EventWrite};
use lambent_store::lambda::LambdaStore;
use lambent_store::queues::{NewMessage, QueueConfig, QueueStore, ReceiveRequest};
use lambent_store::{Store, StoreError};
use lambent_store_postgres::PgStore;
use lambent_testkit::postgres::PgServer;
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn fresh_url() -> String {
    tokio::task::spawn_blocking(|| PgServer::shared().fresh_database())
        .await
        .unwrap()
}

/// `n` stores ("nodes") on one fresh database.
async fn nodes(n: usize) -> Vec<PgStore> {
    let url = fresh_url().await;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(PgStore::connect(&url).await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_never_share_an_event() {
    let stores = nodes(3).await;
    let writes = (0..600)
        .map(|i| EventWrite::Enqueue(event(&format!("e{i}"), i)))
        .collect();
    stores[0].write_events(writes).await.unwrap();
    let mut tasks = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        for w in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("n{n}");
                let mut got = Vec::new();
                loop {
                    let c = Claim {
                        now_ms: 10_000,
                        limit: 7 + w,
                        lease_until_ms: 1_000_000,
                        owner: &owner,
                        home: None,
                        spill_after_ms: 0,
                    };
                    let batch = store.claim_events(&c).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|e| e.id));
                }
            }));
        }
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deploys_of_one_revision_have_one_winner() {
    let stores = nodes(4).await;
    stores[0].put_function(&function("f", 1), 0).await.unwrap();
    for round in 0..5u64 {
        let mut tasks = Vec::new();
        for (i, store) in stores.iter().cloned().enumerate() {
            tasks.push(tokio::spawn(async move {
                let mut f = function("f", round + 2);
                f.code_size = i as u64;
                store.put_function(&f, round + 1).await
            }));
        }
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => wins += 1,
                Err(StoreError::Conflict(..)) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    // Creating (expected revision 0) concurrently: one wins too.
    let mut tasks = Vec::new();
    for store in stores.clone() {
        tasks.push(tokio::spawn(async move {
            store.put_function(&function("g", 1), 0).await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_receives_never_hand_out_a_message_twice() {
    let stores = nodes(3).await;
    let q = QueueConfig {
        namespace: "default".into(),
        name: "q".into(),
        visibility_timeout_s: 30,
        delay_s: 0,
        max_receive_count: None,
        dead_letter_queue: None,
        created_ms: 0,
        ..Default::default()
    };
    stores[0].create_queue(&q).await.unwrap();
    let messages: Vec<_> = (0..400)
        .map(|i| NewMessage {
            id: format!("m{i}"),
            body: i.to_string(),
            attributes: Default::default(),
            visible_at_ms: 0,
            trace: None,
        })
        .collect();
    stores[0].send("default", "q", &messages).await.unwrap();
    let mut tasks = Vec::new();
    for (n, store) in stores.into_iter().enumerate() {
        for w in 0..3 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for round in 0.. {
                    let req = ReceiveRequest {
                        namespace: "default".into(),
                        queue: "q".into(),
                        max: 10,
                        visibility_timeout_ms: 60_000,
                        now_ms: 1_000,
                        receipts: (0..10).map(|i| format!("r{n}-{w}-{round}-{i}")).collect(),
                    };
                    let batch = store.receive(&req).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|m| m.id));
                }
                got
            }));
        }
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id.clone()), "{id} was received twice");
        }
    }
    assert_eq!(seen.len(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishes_get_distinct_numbers() {
    let stores = nodes(4).await;
    let mut tasks = Vec::new();
    for (i, store) in stores.iter().cloned().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut numbers = Vec::new();
            for r in 0..5u64 {
                let f = function("f", 100 * i as u64 + r + 1);
                numbers.push(store.publish_version(&f, "").await.unwrap().version);
            }
            numbers
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=20).collect::<Vec<u64>>());
    assert_eq!(stores[0].all_versions().await.unwrap().len(), 20);
}

fn node(id: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        address: format!("http://{id}:8080"),
        version: "0.1.0".into(),
        started_ms: 5,
        heartbeat_ms: 0,
        draining: false,
        stats: NodeStats {
            warm: 2,
            busy: 1,
            inflight: 3,
            load: 0.5,
            memory_budget_mb: 4096,
            memory_used_mb: 512,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_identity_membership_and_leases() {
    let stores = nodes(3).await;
    // Concurrent first nodes agree on one identity.
    let mut tasks = Vec::new();
    for store in stores.clone() {
        tasks.push(tokio::spawn(async move { store.identity().await.unwrap() }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        let identity = t.await.unwrap();
        assert_eq!(identity.id.len(), 8);
        assert_eq!(identity.secret.len(), 64);
        ids.insert((identity.id, identity.secret));
    }
    assert_eq!(ids.len(), 1);

    // Heartbeats stamp the server's clock; nodes() lists them; leave removes one.
    let (before, none) = stores[0].nodes().await.unwrap();
    assert!(none.is_empty() && before > 1_600_000_000_000);
    let t1 = stores[0].heartbeat(&node("n1")).await.unwrap();
    let mut draining = node("n2");
    draining.draining = true;
    stores[1].heartbeat(&draining).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t2 = stores[0].heartbeat(&node("n1")).await.unwrap();
    assert!(t1 >= before && t2 > t1);
    let (now, listed) = stores[2].nodes().await.unwrap();
    assert!(now >= t2);
    let mut expected = node("n1");
    expected.heartbeat_ms = t2;
    assert_eq!(listed[0], expected);
    assert!(listed[1].draining);
    stores[1].leave("n2").await.unwrap();
    assert_eq!(stores[2].nodes().await.unwrap().1.len(), 1);

    // Leases: exclusive between handles, released or lost with the session.
    let a = stores[0].leases().await.unwrap();
    let b = stores[1].leases().await.unwrap();
    assert!(a.try_acquire("scheduler").await.unwrap());
    assert!(
        a.try_acquire("scheduler").await.unwrap(),
        "held: still ours"
    );
    assert!(!b.try_acquire("scheduler").await.unwrap());
    assert!(b.try_acquire("pruner").await.unwrap());
    a.release("scheduler").await.unwrap();
    assert!(b.try_acquire("scheduler").await.unwrap());
    assert!(!a.try_acquire("scheduler").await.unwrap());
    assert!(a.alive().await && b.alive().await);
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.try_acquire("scheduler").await.unwrap() {
        assert!(
            Instant::now() < deadline,
            "a dropped handle's lease was not freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(a.try_acquire("pruner").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_after_the_server_restarts() {
    let server = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let url = {
        let server = &server;
        server.psql("CREATE DATABASE lambent");
        server.url("lambent")
    };
    let store = PgStore::connect(&url).await.unwrap();
    store.put_function(&function("f", 1), 0).await.unwrap();
    let leases = store.leases().await.unwrap();
    assert!(leases.try_acquire("x").await.unwrap());
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    // Down: calls fail fast, naming PostgreSQL.
    for _ in 0..2 {
        let started = Instant::now();
        match store.get_function("default", "f").await {
            Err(StoreError::Unavailable {
                dependency,
                address,
                ..
            }) => {
                assert_eq!(dependency, "PostgreSQL");
                assert_eq!(address, format!("127.0.0.1:{}", server.port()));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(!leases.alive().await);
    match PgStore::connect(&url).await {
        Err(StoreError::Unavailable { .. }) => {}
        other => panic!("expected Unavailable, got {:?}", other.err()),
    }
    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .unwrap();
    // Back: the same store works again without being recreated.
    assert_eq!(
        store.get_function("default", "f").await.unwrap(),
        Some(function("f", 1))
    );
    store.put_function(&function("f", 2), 1).await.unwrap();
    drop(store);
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let url = fresh_url().await;
    PgStore::connect(&url).await.unwrap();
    let db = url.rsplit('/').next().unwrap().to_string();
    tokio::task::spawn_blocking(move || {
        PgServer::shared().psql_in(
            &db,
            "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
             VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
        );
    })
    .await
    .unwrap();
    match PgStore::connect(&url).await {
        Err(StoreError::SchemaTooNew {
            dependency,
            found,
            known,
        }) => {
            assert_eq!((dependency, found), ("PostgreSQL", 99));
            assert!(known < 99);
        }
        other => panic!("expected SchemaTooNew, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn concurrent_first_connects_migrate_once() {
    let url = fresh_url().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move { PgStore::connect(&url).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
