//! JetStream as the carrier of asynchronous invocations, measured on a private Debian
//! `nats-server` 2.9 (testkit), for the decision "async invocations on JetStream or PostgreSQL
//! SKIP LOCKED": a work-queue stream `LAMBENT_EVENTS_<id>` (`lambent.<id>.ev.>`, file storage,
//! 2 min duplicate window) with one durable pull consumer (ack_wait 30 s).
//! (a) accept: 64 concurrent publishers, each publish with a `Nats-Msg-Id` awaiting its PubAck;
//! (b) work: 1 and 3 pullers fetching batches of up to 64 and acking each with `double_ack`
//!     (sequentially, or all of a batch concurrently as a node running 64 slots would);
//! (c) latency publish → fetched at a low rate (200/s), p50/p99.
//! Prints a markdown table of medians over a few runs. `cargo bench -p lambent-bus-nats --bench jetstream`

use async_nats::jetstream::{self, consumer, stream, Context};
use async_nats::HeaderMap;
use futures_util::StreamExt;
use lambent_testkit::nats::NatsServer;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RUNS: usize = 3;
const EVENTS: usize = 20_000;
const PUBLISHERS: usize = 64;
const PAYLOAD: usize = 500;
const LATENCY_EVENTS: usize = 1_000;
const LATENCY_GAP: Duration = Duration::from_millis(5);

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

struct Run {
    accept: f64,
    work_1_seq: f64,
    work_1: f64,
    work_3: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn bench() -> Result<()> {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await?;
    let info = client.server_info();
    eprintln!(
        "nats-server {} on {}, {} events x {} B per run, {} runs",
        info.version,
        nats.url(),
        EVENTS,
        PAYLOAD,
        RUNS
    );
    let js = jetstream::new(client);
    let mut runs = Vec::new();
    for run in 0..RUNS {
        let id = format!("bench{run}");
        let consumer = setup(&js, &id).await?;
        let accept = publish_all(&js, &id, EVENTS, PUBLISHERS).await?;
        let work_1_seq = work(&consumer, 1, EVENTS, false).await?;
        publish_all(&js, &id, EVENTS, PUBLISHERS).await?;
        let work_1 = work(&consumer, 1, EVENTS, true).await?;
        publish_all(&js, &id, EVENTS, PUBLISHERS).await?;
        let work_3 = work(&consumer, 3, EVENTS, true).await?;
        let (p50_ms, p99_ms) = latency(&js, &consumer, &id).await?;
        js.delete_stream(format!("LAMBENT_EVENTS_{id}")).await?;
        let r = Run {
            accept,
            work_1_seq,
            work_1,
            work_3,
            p50_ms,
            p99_ms,
        };
        eprintln!(
            "run {run}: accept {:.0}/s, work 1 seq {:.0}/s, 1 {:.0}/s, 3 {:.0}/s, p50 {:.2} ms, p99 {:.2} ms",
            r.accept, r.work_1_seq, r.work_1, r.work_3, r.p50_ms, r.p99_ms
        );
        runs.push(r);
    }
    let med = |f: fn(&Run) -> f64| median(runs.iter().map(f).collect());
    let all = |f: fn(&Run) -> f64, digits: usize| {
        runs.iter()
            .map(|r| format!("{:.*}", digits, f(r)))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!("\n| measurement ({RUNS} runs, {EVENTS} events of {PAYLOAD} B) | median | runs |");
    println!("|---|---|---|");
    println!(
        "| (a) accept, {PUBLISHERS} publishers, Nats-Msg-Id + await PubAck | {:.0} events/s | {} |",
        med(|r| r.accept),
        all(|r| r.accept, 0)
    );
    println!(
        "| (b) work, 1 puller, batch ≤ 64, double_ack one by one | {:.0} events/s | {} |",
        med(|r| r.work_1_seq),
        all(|r| r.work_1_seq, 0)
    );
    println!(
        "| (b) work, 1 puller, batch ≤ 64, double_ack a batch concurrently | {:.0} events/s | {} |",
        med(|r| r.work_1),
        all(|r| r.work_1, 0)
    );
    println!(
        "| (b) work, 3 pullers, batch ≤ 64, double_ack a batch concurrently | {:.0} events/s | {} |",
        med(|r| r.work_3),
        all(|r| r.work_3, 0)
    );
    println!(
        "| (c) latency publish→fetched at {}/s, p50 | {:.2} ms | {} |",
        1000 / LATENCY_GAP.as_millis(),
        med(|r| r.p50_ms),
        all(|r| r.p50_ms, 2)
    );
    println!(
        "| (c) latency publish→fetched at {}/s, p99 | {:.2} ms | {} |",
        1000 / LATENCY_GAP.as_millis(),
        med(|r| r.p99_ms),
        all(|r| r.p99_ms, 2)
    );
    Ok(())
}

async fn setup(js: &Context, id: &str) -> Result<consumer::PullConsumer> {
    let stream = js
        .create_stream(stream::Config {
            name: format!("LAMBENT_EVENTS_{id}"),
            subjects: vec![format!("lambent.{id}.ev.>")],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await?;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some("workers".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(30),
            max_ack_pending: 4096,
            ..Default::default()
        })
        .await?;
    Ok(consumer)
}

fn payload(stamp_ns: u64) -> bytes::Bytes {
    let mut p = vec![b'x'; PAYLOAD];
    p[..8].copy_from_slice(&stamp_ns.to_le_bytes());
    p.into()
}

/// Publishes `n` events from `publishers` concurrent tasks; events per second.
async fn publish_all(js: &Context, id: &str, n: usize, publishers: usize) -> Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let (js, id) = (js.clone(), id.to_string());
        tasks.push(tokio::spawn(async move {
            let mut i = p;
            while i < n {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
                let subject = format!("lambent.{id}.ev.default.f{}", i % 8);
                let ack = js
                    .publish_with_headers(subject, headers, payload(0))
                    .await?
                    .await?;
                if ack.duplicate {
                    return Err("unexpected duplicate".into());
                }
                i += publishers;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Drains `n` events with `pullers` concurrent fetch loops; events per second.
async fn work(
    consumer: &consumer::PullConsumer,
    pullers: usize,
    n: usize,
    concurrent_acks: bool,
) -> Result<f64> {
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..pullers {
        let (consumer, done) = (consumer.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while done.load(Ordering::Relaxed) < n {
                let mut batch = consumer
                    .batch()
                    .max_messages(64)
                    .expires(Duration::from_millis(200))
                    .messages()
                    .await?;
                let mut acks = Vec::new();
                while let Some(message) = batch.next().await {
                    let message = message?;
                    if concurrent_acks {
                        acks.push(async move { message.double_ack().await });
                    } else {
                        message.double_ack().await?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let acked = acks.len();
                for r in futures_util::future::join_all(acks).await {
                    r?;
                }
                done.fetch_add(acked, Ordering::Relaxed);
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// Publish → fetched latency of events sent one at a time at a low rate; (p50, p99) in ms.
async fn latency(js: &Context, consumer: &consumer::PullConsumer, id: &str) -> Result<(f64, f64)> {
    let epoch = Instant::now();
    let mut messages = consumer.messages().await?;
    let receiver = tokio::spawn(async move {
        let mut samples = Vec::with_capacity(LATENCY_EVENTS);
        while samples.len() < LATENCY_EVENTS {
            let Some(message) = messages.next().await else {
                break;
            };
            let message = message?;
            let now = epoch.elapsed().as_nanos() as u64;
            let mut stamp = [0u8; 8];
            stamp.copy_from_slice(&message.payload[..8]);
            samples.push((now - u64::from_le_bytes(stamp)) as f64 / 1e6);
            message.double_ack().await?;
        }
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(samples)
    });
    let mut tick = tokio::time::interval(LATENCY_GAP);
    for i in 0..LATENCY_EVENTS {
        tick.tick().await;
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("lat-{id}-{i}").as_str());
        let stamp = epoch.elapsed().as_nanos() as u64;
        js.publish_with_headers(
            format!("lambent.{id}.ev.default.lat"),
            headers,
            payload(stamp),
        )
        .await?
        .await?;
    }
    let mut samples = tokio::time::timeout(Duration::from_secs(30), receiver).await???;
    samples.sort_by(f64::total_cmp);
    let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
    Ok((pct(0.50), pct(0.99)))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
