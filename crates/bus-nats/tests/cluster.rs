//! The NATS bus and blob store against a private `nats-server -js` (Debian's 2.9).

use lambent_bus_nats::{NatsBlobs, NatsBus};
use lambent_store::blobs::BlobStore;
use lambent_store::bus::{Bus, Envelope, Signal};
use lambent_store::{sha256_hex, StoreError};
use lambent_testkit::nats::NatsServer;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

async fn next(rx: &mut broadcast::Receiver<Envelope>) -> Envelope {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no signal within 5 s")
        .expect("bus closed")
}

async fn nothing(rx: &mut broadcast::Receiver<Envelope>) {
    if let Ok(got) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
        panic!("unexpected signal {got:?}");
    }
}

fn blob(len: usize, seed: u8) -> Arc<Vec<u8>> {
    Arc::new(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect(),
    )
}

#[tokio::test]
async fn signals_cross_nodes_of_one_cluster_only() {
    let nats = NatsServer::shared();
    let a = NatsBus::connect(&nats.url(), "n1", "sig").await.unwrap();
    let b = NatsBus::connect(&nats.url(), "n2", "sig").await.unwrap();
    let other = NatsBus::connect(&nats.url(), "n1", "sig-other")
        .await
        .unwrap();
    assert!(a.connected());
    let (mut ra, mut rb, mut ro) = (a.subscribe(), b.subscribe(), other.subscribe());

    a.publish(Signal::Routes);
    for rx in [&mut ra, &mut rb] {
        let got = next(rx).await;
        assert_eq!((got.origin.as_str(), got.signal), ("n1", Signal::Routes));
    }
    let function = Signal::Function {
        namespace: "default".into(),
        name: "f".into(),
    };
    b.publish(function.clone());
    for rx in [&mut ra, &mut rb] {
        let got = next(rx).await;
        assert_eq!(got.origin, "n2");
        assert_eq!(got.signal, function);
    }
    // Exactly once each, and nothing leaks into another cluster (even with the same node id).
    nothing(&mut ra).await;
    nothing(&mut rb).await;
    nothing(&mut ro).await;
    other.publish(Signal::Keys);
    assert_eq!(next(&mut ro).await.signal, Signal::Keys);
    nothing(&mut ra).await;
}

#[tokio::test]
async fn a_blob_put_on_one_node_is_fetched_verified_and_cached_by_another() {
    let nats = NatsServer::shared();
    let bus = NatsBus::connect(&nats.url(), "n1", "blobs").await.unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = NatsBlobs::for_bus(&bus, "blobs", da.path()).await.unwrap();
    let b = NatsBlobs::for_bus(&bus, "blobs", db.path()).await.unwrap();

    let bytes = blob(300_000, 7);
    let sha = sha256_hex(&bytes);
    a.put(&sha, bytes.clone()).await.unwrap();
    a.put(&sha, bytes.clone()).await.unwrap(); // idempotent
    assert!(a.local().contains(&sha));
    assert!(!b.local().contains(&sha));
    assert_eq!(b.size(&sha).await.unwrap(), Some(300_000));

    // Two concurrent gets on one node: both get the bytes (one fetch).
    let (g1, g2) = tokio::join!(b.get(&sha), b.get(&sha));
    assert_eq!(g1.unwrap(), bytes);
    assert_eq!(g2.unwrap(), bytes);
    assert!(b.local().contains(&sha));
    assert_eq!(std::fs::read(db.path().join(&sha)).unwrap(), *bytes);

    let missing = "0".repeat(64);
    assert!(matches!(b.get(&missing).await, Err(StoreError::MissingBlob(s)) if s == missing));
    assert_eq!(b.size(&missing).await.unwrap(), None);
    assert!(matches!(
        b.get("../etc/passwd").await,
        Err(StoreError::MissingBlob(_))
    ));
}

#[tokio::test]
async fn a_blob_that_does_not_match_its_hash_is_refused_and_not_cached() {
    let nats = NatsServer::shared();
    let bus = NatsBus::connect(&nats.url(), "n1", "corrupt")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let blobs = NatsBlobs::for_bus(&bus, "corrupt", dir.path())
        .await
        .unwrap();
    // Someone stored other bytes under this name.
    let sha = sha256_hex(b"the real code");
    let js = async_nats::jetstream::new(bus.client().clone());
    let store = js.get_object_store("lambent-code-corrupt").await.unwrap();
    store
        .put(sha.as_str(), &mut &b"tampered code"[..])
        .await
        .unwrap();

    let err = blobs.get(&sha).await.unwrap_err();
    assert!(err.to_string().contains("hashes to"), "{err}");
    assert!(!blobs.local().contains(&sha));
}

#[tokio::test]
async fn a_20_mb_blob_round_trips() {
    let nats = NatsServer::shared();
    let bus = NatsBus::connect(&nats.url(), "n1", "big").await.unwrap();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = NatsBlobs::for_bus(&bus, "big", da.path()).await.unwrap();
    let b = NatsBlobs::for_bus(&bus, "big", db.path()).await.unwrap();
    let bytes = blob(20 * 1024 * 1024, 3);
    let sha = sha256_hex(&bytes);
    let started = Instant::now();
    a.put(&sha, bytes.clone()).await.unwrap();
    let put = started.elapsed();
    let got = b.get(&sha).await.unwrap();
    eprintln!("20 MiB: put {put:?}, get {:?}", started.elapsed() - put);
    assert!(got == bytes);
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast_naming_nats() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = NatsBus::connect(&format!("nats://127.0.0.1:{port}"), "n1", "c")
        .await
        .err()
        .expect("connected to a closed port");
    assert!(started.elapsed() < Duration::from_secs(7));
    match &err {
        StoreError::Unavailable {
            dependency,
            address,
            ..
        } => {
            assert_eq!(*dependency, "NATS");
            assert_eq!(*address, format!("127.0.0.1:{port}"));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("NATS at 127.0.0.1:"), "{err}");
}

#[tokio::test]
async fn the_bus_and_blobs_survive_a_nats_restart() {
    let nats = NatsServer::start();
    let a = NatsBus::connect(&nats.url(), "n1", "restart")
        .await
        .unwrap();
    let b = NatsBus::connect(&nats.url(), "n2", "restart")
        .await
        .unwrap();
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = Vec::new();
    for d in &dirs {
        let blobs = NatsBlobs::for_bus(&a, "restart", d.path()).await.unwrap();
        nodes.push(blobs.with_timeout(Duration::from_secs(2)));
    }
    let bytes = blob(100_000, 1);
    let sha = sha256_hex(&bytes);
    nodes[0].put(&sha, bytes.clone()).await.unwrap();
    assert_eq!(nodes[1].get(&sha).await.unwrap(), bytes);
    let mut rb = b.subscribe();

    nats.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!a.connected(), "still connected to a stopped server");
    // Cached: served without NATS. Uncached: Unavailable within the bound, no hang.
    assert_eq!(nodes[1].get(&sha).await.unwrap(), bytes);
    let started = Instant::now();
    match nodes[2].get(&sha).await {
        Err(StoreError::Unavailable { dependency, .. }) => assert_eq!(dependency, "NATS"),
        other => panic!("{other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Publishing while down neither blocks nor panics; the local subscriber gets it at once.
    for _ in 0..10_000 {
        a.publish(Signal::Events);
    }

    nats.start_again();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !(a.connected() && b.connected()) {
        assert!(Instant::now() < deadline, "no reconnect within 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Signals flow again through the same buses (queued ones may arrive first).
    let deadline = Instant::now() + Duration::from_secs(10);
    'outer: loop {
        a.publish(Signal::Mappings);
        let until = Instant::now() + Duration::from_millis(250);
        while let Ok(Ok(got)) = tokio::time::timeout_at(until.into(), rb.recv()).await {
            if got.signal == Signal::Mappings && got.origin == "n1" {
                break 'outer;
            }
        }
        assert!(Instant::now() < deadline, "no signal after the restart");
    }
    // And the blob store works again (same JetStream store dir).
    assert_eq!(nodes[2].get(&sha).await.unwrap(), bytes);
}
