//! S3 object data on the NATS object store ([`NatsObjectData`], a private Debian
//! `nats-server` 2.9 from testkit, JetStream on this disk) against the single node's
//! [`LocalDisk`] (a directory on the same disk), for the decision "where a cluster keeps object
//! data". Both through the `ObjectData` seam the S3 engine uses:
//! - 4 KiB: sequential writes and whole reads (p50 latency, ops/s);
//! - 64 MiB: a write and a whole read (MiB/s), body arriving in 64 KiB pieces as HTTP frames do;
//! - 1 MiB range at offset 60 MiB of the 64 MiB object (latency: the seek);
//! - the bench process' RSS growth over the large transfers (the client side's memory bound).
//!
//! Medians of a few runs. `cargo bench -p lambent-bus-nats --bench objects`

use bytes::Bytes;
use futures_util::stream::StreamExt;
use lambent_bus_nats::NatsObjectData;
use lambent_objects::data::{ByteStream, ObjectData};
use lambent_objects::LocalDisk;
use lambent_testkit::nats::NatsServer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SMALL: usize = 4096;
const SMALL_OPS: usize = 300;
const LARGE: usize = 64 << 20;
const PIECE: usize = 64 << 10;
const RANGE: (u64, u64) = (60 << 20, 1 << 20);
const RUNS: usize = 5;

fn main() -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

/// `len` bytes arriving in pieces of [`PIECE`], made as they are pulled (never all in memory).
fn body(len: usize) -> ByteStream {
    let piece = Bytes::from((0..PIECE).map(|i| (i * 7) as u8).collect::<Vec<u8>>());
    futures_util::stream::iter((0..len).step_by(PIECE))
        .map(move |at| Ok(piece.slice(..PIECE.min(len - at))))
        .boxed()
}

async fn drain(mut s: ByteStream) -> Result<u64> {
    let mut n = 0;
    while let Some(chunk) = s.next().await {
        n += chunk?.len() as u64;
    }
    Ok(n)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples the process' RSS every 2 ms until stopped; the most it grew over the start (MiB).
struct RssGrowth {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
    start: u64,
}

impl RssGrowth {
    fn start() -> RssGrowth {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut max = 0;
            while !flag.load(Ordering::Relaxed) {
                max = max.max(rss_kib());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            max
        });
        RssGrowth {
            stop,
            task,
            start: rss_kib(),
        }
    }

    async fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let max = self.task.await.unwrap_or(0);
        max.saturating_sub(self.start) as f64 / 1024.0
    }
}

#[derive(Default)]
struct Row {
    small_put_p50_ms: Vec<f64>,
    small_put_ops: Vec<f64>,
    small_get_p50_ms: Vec<f64>,
    small_get_ops: Vec<f64>,
    large_put_mib_s: Vec<f64>,
    large_get_mib_s: Vec<f64>,
    range_ms: Vec<f64>,
    large_rss_mib: Vec<f64>,
}

async fn run(data: &dyn ObjectData, row: &mut Row) -> Result<()> {
    let mut puts = Vec::new();
    let mut locators = Vec::new();
    let started = Instant::now();
    for _ in 0..SMALL_OPS {
        let t = Instant::now();
        let seg = data.write(body(SMALL), &mut |_: &[u8]| Ok(())).await?;
        puts.push(t.elapsed().as_secs_f64() * 1e3);
        locators.push(seg.locator);
    }
    row.small_put_ops
        .push(SMALL_OPS as f64 / started.elapsed().as_secs_f64());
    row.small_put_p50_ms.push(median(puts));
    let mut gets = Vec::new();
    let started = Instant::now();
    for locator in &locators {
        let t = Instant::now();
        drain(data.read(locator, 0, SMALL as u64).await?).await?;
        gets.push(t.elapsed().as_secs_f64() * 1e3);
    }
    row.small_get_ops
        .push(SMALL_OPS as f64 / started.elapsed().as_secs_f64());
    row.small_get_p50_ms.push(median(gets));

    let mib = LARGE as f64 / (1 << 20) as f64;
    let rss = RssGrowth::start();
    let t = Instant::now();
    let seg = data.write(body(LARGE), &mut |_: &[u8]| Ok(())).await?;
    row.large_put_mib_s.push(mib / t.elapsed().as_secs_f64());
    let t = Instant::now();
    assert_eq!(
        drain(data.read(&seg.locator, 0, LARGE as u64).await?).await?,
        LARGE as u64
    );
    row.large_get_mib_s.push(mib / t.elapsed().as_secs_f64());
    row.large_rss_mib.push(rss.stop().await);
    let t = Instant::now();
    drain(data.read(&seg.locator, RANGE.0, RANGE.1).await?).await?;
    row.range_ms.push(t.elapsed().as_secs_f64() * 1e3);

    for locator in locators.iter().chain([&seg.locator]) {
        data.delete(locator).await?;
    }
    Ok(())
}

async fn bench() -> Result<()> {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await?;
    eprintln!(
        "nats-server {}, JetStream under {}; local disk under the same filesystem; {RUNS} runs",
        client.server_info().version,
        nats.dir().display()
    );
    let nats_data = NatsObjectData::open(client, &nats.address(), "bench").await?;
    let dir = tempfile::tempdir()?;
    let disk = LocalDisk::open(dir.path())?;
    let (mut local, mut remote) = (Row::default(), Row::default());
    for _ in 0..RUNS {
        // Alternate, so a neighbour's load hits both alike.
        run(&disk, &mut local).await?;
        run(&nats_data, &mut remote).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("| measure (median of {RUNS}) | LocalDisk | NATS object store | NATS / local |");
    println!("|---|---:|---:|---:|");
    let line = |name: &str, l: &Vec<f64>, r: &Vec<f64>| {
        let (l, r) = (median(l.clone()), median(r.clone()));
        println!("| {name} | {l:.2} | {r:.2} | {:.2} |", r / l);
    };
    line(
        "4 KiB PUT p50 (ms)",
        &local.small_put_p50_ms,
        &remote.small_put_p50_ms,
    );
    line(
        "4 KiB PUT sequential (ops/s)",
        &local.small_put_ops,
        &remote.small_put_ops,
    );
    line(
        "4 KiB GET p50 (ms)",
        &local.small_get_p50_ms,
        &remote.small_get_p50_ms,
    );
    line(
        "4 KiB GET sequential (ops/s)",
        &local.small_get_ops,
        &remote.small_get_ops,
    );
    line(
        "64 MiB PUT (MiB/s)",
        &local.large_put_mib_s,
        &remote.large_put_mib_s,
    );
    line(
        "64 MiB GET (MiB/s)",
        &local.large_get_mib_s,
        &remote.large_get_mib_s,
    );
    line(
        "1 MiB range at 60 MiB (ms)",
        &local.range_ms,
        &remote.range_ms,
    );
    line(
        "RSS growth over 64 MiB PUT + GET (MiB)",
        &local.large_rss_mib,
        &remote.large_rss_mib,
    );
    Ok(())
}
