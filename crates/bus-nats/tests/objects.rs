//! S3 object data on the NATS object store ([`NatsObjectData`]) against a private
//! `nats-server -js` (Debian's 2.9): what one node writes another reads, at any offset; failed
//! writes and deletes leave nothing behind; garbage collection spares what is referenced or
//! young while it removes what crashes left.

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::stream::StreamExt;
use lambent_bus_nats::{objects_bucket_name, NatsObjectData, OBJECT_CHUNK};
use lambent_objects::data::{ByteStream, ObjectData};
use lambent_objects::ObjectError;
use lambent_store::StoreError;
use lambent_testkit::nats::NatsServer;
use std::collections::HashSet;
use std::io;
use std::time::Duration;

/// Deterministic bytes, different per seed.
fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// `data` as a body arriving in pieces of `piece` bytes.
fn body(data: &[u8], piece: usize) -> ByteStream {
    let pieces: Vec<io::Result<Bytes>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(pieces).boxed()
}

async fn collect(s: ByteStream) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = s;
    while let Some(chunk) = s.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn node(nats: &NatsServer, cluster: &str) -> NatsObjectData {
    let client = async_nats::connect(nats.url()).await.unwrap();
    NatsObjectData::open(client, &nats.address(), cluster)
        .await
        .unwrap()
}

async fn write(
    data: &NatsObjectData,
    bytes: &[u8],
    piece: usize,
) -> lambent_store::objects::Segment {
    data.write(body(bytes, piece), &mut |_: &[u8]| Ok(()))
        .await
        .unwrap()
}

/// The subjects holding messages in a cluster's data bucket.
async fn subjects(nats: &NatsServer, cluster: &str) -> Vec<String> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let stream = js
        .get_stream(format!("OBJ_{}", objects_bucket_name(cluster)))
        .await
        .unwrap();
    let mut out: Vec<String> = stream
        .info_with_subjects(">")
        .await
        .unwrap()
        .map(|s| s.unwrap().0)
        .collect()
        .await;
    out.sort();
    out
}

/// How many runs of consecutive stream sequences a piece's chunks form (from its meta).
async fn chunk_runs(nats: &NatsServer, cluster: &str, locator: &str) -> usize {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let bucket = objects_bucket_name(cluster);
    let stream = jetstream::new(client)
        .get_stream(format!("OBJ_{bucket}"))
        .await
        .unwrap();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, locator);
    let meta = stream
        .direct_get_last_for_subject(format!("$O.{bucket}.M.{encoded}"))
        .await
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&meta.payload).unwrap();
    info["metadata"]["lambent-seqs"]
        .as_str()
        .unwrap()
        .split(',')
        .count()
}

fn mentioning<'a>(subjects: &'a [String], locator: &str) -> Vec<&'a String> {
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, locator);
    subjects
        .iter()
        .filter(|s| s.ends_with(locator) || s.ends_with(&encoded))
        .collect()
}

#[tokio::test]
async fn what_one_node_writes_another_reads_at_any_offset() {
    let nats = NatsServer::shared();
    let (a, b) = (node(nats, "obj-rw").await, node(nats, "obj-rw").await);
    let c = OBJECT_CHUNK;
    for (len, piece) in [
        (0, 1),
        (1, 1),
        (4096, 1000),
        (c - 1, 65536),
        (c, c),
        (c + 1, 3 * c),
        (3 * c + 5, 100_000),
    ] {
        let data = bytes(len, len as u8);
        let seg = write(&a, &data, piece).await;
        assert_eq!(seg.size, len as u64);
        assert_eq!(seg.locator.len(), 32);
        let whole = collect(b.read(&seg.locator, 0, len as u64).await.unwrap()).await;
        assert_eq!(whole.unwrap(), data, "{len} bytes");
        for (from, n) in [
            (0, 1),
            (c - 1, 2),
            (c, c),
            (c + 7, 2 * c),
            (len / 2, len / 3),
        ] {
            if from + n <= len {
                let got = collect(b.read(&seg.locator, from as u64, n as u64).await.unwrap());
                assert_eq!(
                    got.await.unwrap(),
                    data[from..from + n],
                    "{len}: {from}+{n}"
                );
            }
        }
        assert!(b.read(&seg.locator, len as u64, 1).await.is_err());
    }
    assert!(matches!(
        b.read(&"0".repeat(32), 0, 1).await,
        Err(ObjectError::NoSuchKey)
    ));
}

#[tokio::test]
async fn interleaved_writes_keep_their_chunk_index_exact() {
    let nats = NatsServer::shared();
    let (a, b) = (node(nats, "obj-mix").await, node(nats, "obj-mix").await);
    let (x, y) = (
        bytes(12 * OBJECT_CHUNK + 3, 1),
        bytes(7 * OBJECT_CHUNK + 11, 2),
    );
    // `x` pauses after 9 chunks (more than the writer's window, so its first chunk is stored),
    // `y` is written whole meanwhile, then `x` goes on: `x`'s chunks are not one run.
    let split = 9 * OBJECT_CHUNK;
    let (resume, resumed) = tokio::sync::oneshot::channel::<()>();
    let paused = body(&x[..split], 4096)
        .chain(futures_util::stream::once(async move {
            resumed.await.ok();
            Ok(Bytes::new())
        }))
        .chain(body(&x[split..], 4096))
        .boxed();
    let mut accept = |_: &[u8]| Ok(());
    let written_x = a.write(paused, &mut accept);
    let written_y = async {
        let seg = write(&b, &y, 4096).await;
        resume.send(()).unwrap();
        seg
    };
    let (sx, sy) = tokio::join!(written_x, written_y);
    let sx = sx.unwrap();
    let runs = chunk_runs(nats, "obj-mix", &sx.locator).await;
    assert!(runs > 1, "{runs} run(s) of chunks");
    for (seg, data) in [(&sx, &x), (&sy, &y)] {
        for from in [0, 1, OBJECT_CHUNK * 4 + 9, data.len() - 2] {
            let n = (data.len() - from).min(2 * OBJECT_CHUNK + 1);
            let got = collect(a.read(&seg.locator, from as u64, n as u64).await.unwrap());
            assert_eq!(got.await.unwrap(), data[from..from + n]);
        }
    }
}

#[tokio::test]
async fn failed_and_dropped_writes_leave_nothing() {
    let nats = NatsServer::shared();
    let cluster = "obj-fail";
    let a = node(nats, cluster).await;
    let kept = write(&a, b"kept", 4).await;
    let before = subjects(nats, cluster).await;
    assert_eq!(mentioning(&before, &kept.locator).len(), 2, "{before:?}");

    // A body that breaks off after some chunks went out.
    let mut pieces: Vec<io::Result<Bytes>> = (0..3)
        .map(|i| Ok(Bytes::from(bytes(OBJECT_CHUNK, i))))
        .collect();
    pieces.push(Err(io::Error::other("connection reset")));
    let broken = a
        .write(
            futures_util::stream::iter(pieces).boxed(),
            &mut |_: &[u8]| Ok(()),
        )
        .await;
    assert!(
        matches!(broken, Err(ObjectError::BodyFailed(_))),
        "{broken:?}"
    );
    // An observer refusing the body (a size limit, say) midway.
    let mut seen = 0;
    let refused = a
        .write(
            body(&bytes(4 * OBJECT_CHUNK, 9), 65536),
            &mut |c: &[u8]| {
                seen += c.len();
                match seen > 2 * OBJECT_CHUNK {
                    true => Err(ObjectError::EntityTooLarge { max: 1 }),
                    false => Ok(()),
                }
            },
        )
        .await;
    assert!(matches!(refused, Err(ObjectError::EntityTooLarge { .. })));
    assert_eq!(subjects(nats, cluster).await, before);

    // A write whose request goes away (its future dropped) midway.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<io::Result<Bytes>>();
    for i in 0..3 {
        tx.send(Ok(Bytes::from(bytes(OBJECT_CHUNK, i)))).unwrap();
    }
    let rx = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut accept = |_: &[u8]| Ok(());
    let pending = a.write(rx.boxed(), &mut accept);
    assert!(tokio::time::timeout(Duration::from_millis(500), pending)
        .await
        .is_err());
    let mut left = Vec::new();
    for _ in 0..100 {
        left = subjects(nats, cluster).await;
        if left == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(left, before);
    drop(tx);
}

#[tokio::test]
async fn deletes_spare_open_reads_and_collection_spares_the_referenced_and_the_young() {
    let nats = NatsServer::shared();
    let cluster = "obj-gc";
    let a = node(nats, cluster)
        .await
        .with_delete_grace(Duration::from_millis(300))
        .with_orphan_age(Duration::from_millis(300));
    let b = node(nats, cluster).await; // defaults: an hour, a quarter of an hour
    let data = bytes(2 * OBJECT_CHUNK + 1, 3);
    let live = write(&a, &data, 65536).await;
    let gone = write(&a, &data, 65536).await;
    let orphan = write(&a, b"never committed", 5).await;

    // A read opened before the delete (on another node) still gets every byte.
    let open = b.read(&gone.locator, 0, data.len() as u64).await.unwrap();
    b.delete(&gone.locator).await.unwrap();
    assert!(matches!(
        a.read(&gone.locator, 0, 1).await,
        Err(ObjectError::NoSuchKey)
    ));
    assert_eq!(collect(open).await.unwrap(), data);

    // A crash mid-write: chunks on the stream, no meta.
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let crashed = "c".repeat(32);
    let subject = format!("$O.{}.C.{crashed}", objects_bucket_name(cluster));
    js.publish(subject, Bytes::from(vec![7u8; 1000]))
        .await
        .unwrap()
        .await
        .unwrap();

    let referenced = HashSet::from([live.locator.clone()]);
    // Young: nothing goes, not even with short limits on the collecting node.
    assert_eq!(b.collect_garbage(&referenced).await.unwrap(), 0);
    assert_eq!(a.collect_garbage(&referenced).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Past the limits: the deleted, the unreferenced and the crashed write go, on `a`'s terms.
    assert_eq!(b.collect_garbage(&referenced).await.unwrap(), 0);
    assert_eq!(a.collect_garbage(&referenced).await.unwrap(), 3);
    let left = subjects(nats, cluster).await;
    for locator in [&gone.locator, &orphan.locator, &crashed] {
        assert!(mentioning(&left, locator).is_empty(), "{locator}: {left:?}");
    }
    assert_eq!(mentioning(&left, &live.locator).len(), 2);
    let got = collect(b.read(&live.locator, 0, data.len() as u64).await.unwrap());
    assert_eq!(got.await.unwrap(), data);
    assert_eq!(a.collect_garbage(&referenced).await.unwrap(), 0);
    assert!(a.collection_interval().is_some());
}

#[tokio::test]
async fn an_unreachable_nats_is_a_service_unavailable_error() {
    let nats = NatsServer::start();
    let a = node(&nats, "obj-down").await;
    let seg = write(&a, b"hello", 5).await;
    nats.stop();
    let failed = a.write(body(b"more", 4), &mut |_: &[u8]| Ok(())).await;
    assert!(
        matches!(
            failed,
            Err(ObjectError::Store(StoreError::Unavailable { .. }))
        ),
        "{failed:?}"
    );
    let read = a.read(&seg.locator, 0, 5).await;
    assert!(matches!(
        read,
        Err(ObjectError::Store(StoreError::Unavailable { .. }))
    ));
}
