//! The S3-compatible object store on a real node, through the S3 REST API over HTTP (every
//! request SigV4-signed and verified by the server), each row beside its baseline measured in
//! the same run on the same disk:
//!
//! - 4 KiB PUT and GET, p50/p99 and throughput, with 1 and 64 connections; baseline: the same
//!   bytes written to a new file with the same durability (write, fsync, rename, fsync the
//!   directory) and read back from one;
//! - 256 MiB PUT and GET throughput; baseline: a `dd`-style sequential write (1 MiB blocks,
//!   then fsync) and read (page cache dropped for that file first, as for the object's); each
//!   with the CPU seconds it took (the process's user + system time, client included), which
//!   unlike throughput little depends on what else runs on the machine: a PUT hashes every
//!   byte (MD5 for the ETag), so on a machine whose cores are busy it loses more to the
//!   others than the baseline, which mostly waits for the disk;
//! - the process's RSS growth while a 1 GiB object streams up and down (the peak, `VmHWM`,
//!   reset before; the bench's own client runs in the same process, so this is an upper bound
//!   of the server's).
//!
//! Targets (issue 15): 4 KiB GET p50 ≤ 0.5 ms; large objects ≥ 80% of the disk baseline; RSS
//! growth ≤ 32 MiB. Large rows are the median of `LAMBENT_BENCH_RUNS` runs (default 3).
//! Run: `cargo bench -p lambent-server --bench storage` (root needed for the node's
//! sandboxes); `LAMBENT_BENCH_N` sets the 4 KiB operations per row (default 2000). The table
//! is printed and written to `target/storage_bench.md`.

mod support;

use bytes::Bytes;
use lambent_server::{start, ServerOptions};
use reqwest::Method;
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{abba, closed_loop, ms, stats, Run, Stats};

const KEY: &str = "bench-key";
const ACCESS_KEY_ID: &str = "LKIABENCHBENCHBENCH0";
const SECRET: &str = "bench-secret-bench-secret-bench-secret00";
const SMALL: usize = 4 << 10;
const LARGE: u64 = 256 << 20;
const HUGE: u64 = 1 << 30;
const BLOCK: usize = 1 << 20;

/// An S3 client: requests signed with SigV4 (`UNSIGNED-PAYLOAD`, as S3 clients send bodies
/// they stream).
struct S3 {
    http: reqwest::Client,
    url: String,
    host: String,
}

impl S3 {
    fn signed(&self, method: Method, path: &str, secret: &str) -> reqwest::RequestBuilder {
        let payload = "UNSIGNED-PAYLOAD";
        let headers = support::sigv4_headers(
            (ACCESS_KEY_ID, secret),
            "s3",
            (method.as_str(), &self.host, path),
            &[("x-amz-content-sha256", payload)],
            payload,
        );
        self.http
            .request(method, format!("{}{path}", self.url))
            .headers(headers)
    }

    async fn put(&self, path: &str, body: reqwest::Body, len: u64) {
        let r = self
            .signed(Method::PUT, path, SECRET)
            .header("content-length", len)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "PUT {path}: {text}");
    }

    /// GETs an object, reading its body a chunk at a time; its length.
    async fn get(&self, path: &str) -> u64 {
        let mut r = self.signed(Method::GET, path, SECRET).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {path}");
        let mut n = 0;
        while let Some(chunk) = r.chunk().await.unwrap() {
            n += chunk.len() as u64;
        }
        n
    }
}

/// A new file with `bytes`, as durable as an object: written, fsynced, renamed, directory
/// fsynced.
fn durable_write(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_all().unwrap();
    drop(f);
    std::fs::rename(&tmp, dir.join(name)).unwrap();
    std::fs::File::open(dir).unwrap().sync_all().unwrap();
}

/// Drops a file's pages from the page cache, so that the next read comes from the disk.
fn evict(path: &Path) {
    let f = std::fs::File::open(path).unwrap();
    f.sync_all().unwrap();
    // SAFETY: a valid open descriptor; advice only.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// The largest file under `dir` (the object data just written).
fn largest_file(dir: &Path) -> PathBuf {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .max_by_key(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .expect("object data on disk")
        .into_path()
}

/// A body of `len` bytes: `block` again and again, streamed.
fn stream_of(block: &Bytes, len: u64) -> reqwest::Body {
    let block = block.clone();
    let blocks = (0..len.div_ceil(BLOCK as u64)).map(move |i| {
        let size = (len - i * BLOCK as u64).min(BLOCK as u64) as usize;
        Ok::<_, std::io::Error>(block.slice(..size))
    });
    reqwest::Body::wrap_stream(futures_util::stream::iter(blocks))
}

/// `kB:` value of a `/proc/self/status` field, in bytes.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a /proc/self/status field")
        * 1024
}

/// CPU seconds (user + system) this process has used so far: the server's and the bench's
/// client's, since they share it.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn mib_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// One row of the report.
struct Row {
    case: String,
    measured: String,
    baseline: String,
    ratio: String,
    target: String,
}

fn latency_row(case: &str, conc: usize, s3: &Run, base: &Run, target: Option<f64>) -> Row {
    let (a, b): (Stats, Stats) = (stats(s3.samples.clone()), stats(base.samples.clone()));
    let ops = |r: &Run| r.samples.len() as f64 / r.wall.as_secs_f64();
    let target = match target {
        Some(t) => {
            let met = a.p50.as_secs_f64() * 1000.0 <= t;
            format!("p50 ≤ {t} ms: {}", if met { "met" } else { "MISSED" })
        }
        None => "-".into(),
    };
    Row {
        case: format!("{case}, {conc} conn, n={}", a.n),
        measured: format!(
            "p50 {} / p99 {} ms, {:.0} op/s",
            ms(a.p50),
            ms(a.p99),
            ops(s3)
        ),
        baseline: format!(
            "p50 {} / p99 {} ms, {:.0} op/s",
            ms(b.p50),
            ms(b.p99),
            ops(base)
        ),
        ratio: format!(
            "p50 {:.1}×, op/s {:.0}%",
            a.p50.as_secs_f64() / b.p50.as_secs_f64(),
            100.0 * ops(s3) / ops(base)
        ),
        target,
    }
}

/// A large-object row: throughput (MiB/s) and CPU seconds per operation, S3 against baseline.
fn throughput_row(case: &str, (s3, s3_cpu): (f64, f64), (base, base_cpu): (f64, f64)) -> Row {
    let pct = 100.0 * s3 / base;
    Row {
        case: case.into(),
        measured: format!("{s3:.0} MiB/s, {s3_cpu:.2} CPU-s"),
        baseline: format!("{base:.0} MiB/s, {base_cpu:.2} CPU-s"),
        ratio: format!("{pct:.0}%"),
        target: format!("≥ 80%: {}", if pct >= 80.0 { "met" } else { "MISSED" }),
    }
}

fn main() {
    support::block_on(bench());
}

async fn bench() {
    let n = support::samples(2000);
    let runs = support::env_or("LAMBENT_BENCH_RUNS", 3usize).max(1);
    // On the disk of the target dir (a /tmp may be memory).
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = tmp.path().join("data");
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.clone());
    opts.api_key = Some(KEY.into());
    opts.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()));
    let server = start(opts).await.expect("the server did not start (root?)");
    let url = server.url().to_string();
    let s3 = Arc::new(S3 {
        http: support::http_client(),
        host: url.trim_start_matches("http://").to_string(),
        url,
    });

    // Signatures are verified: a wrong secret is refused.
    let forged = s3
        .signed(Method::PUT, "/bench", "not-the-secret")
        .send()
        .await;
    assert_eq!(
        forged.unwrap().status(),
        403,
        "a bad signature must be refused"
    );
    let created = s3.signed(Method::PUT, "/bench", SECRET).send().await;
    assert_eq!(created.unwrap().status(), 200);

    let mut small = vec![0u8; SMALL];
    let mut x: u32 = 0x1234_5678;
    for b in &mut small {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *b = (x >> 24) as u8;
    }
    let small = Bytes::from(small);
    let mut rows = Vec::new();

    for conc in [1usize, 64] {
        // Both halves of an a-b-b-a run split evenly among the connections.
        let n = n.max(2 * conc) / (2 * conc) * (2 * conc);
        let tag = format!("c{conc}");
        // Warm-up: connections open, caches filled.
        {
            let (s3, body, tag) = (s3.clone(), small.clone(), tag.clone());
            closed_loop(conc, 0, conc * 4, move |_, i| {
                let (s3, body) = (s3.clone(), body.clone());
                let path = format!("/bench/warm-{tag}-{i}");
                async move { s3.put(&path, body.into(), SMALL as u64).await }
            })
            .await;
        }
        let s3_put = {
            let (s3, body, tag) = (s3.clone(), small.clone(), tag.clone());
            move |_, i| {
                let (s3, body) = (s3.clone(), body.clone());
                let path = format!("/bench/small-{tag}-{i}");
                async move { s3.put(&path, body.into(), SMALL as u64).await }
            }
        };
        let file_put = {
            let (dir, body, tag) = (plain.clone(), small.clone(), tag.clone());
            move |_, i| {
                let (dir, body, name) = (dir.clone(), body.clone(), format!("small-{tag}-{i}"));
                async move {
                    tokio::task::spawn_blocking(move || durable_write(&dir, &name, &body))
                        .await
                        .unwrap()
                }
            }
        };
        let (put, put_base) = abba(conc, n, s3_put, file_put).await;
        let s3_get = {
            let (s3, tag) = (s3.clone(), tag.clone());
            move |_, i| {
                let s3 = s3.clone();
                let path = format!("/bench/small-{tag}-{i}");
                async move { assert_eq!(s3.get(&path).await, SMALL as u64) }
            }
        };
        let file_get = {
            let (dir, tag) = (plain.clone(), tag.clone());
            move |_, i| {
                let path = dir.join(format!("small-{tag}-{i}"));
                async move {
                    let read = tokio::task::spawn_blocking(move || {
                        let mut buf = Vec::new();
                        std::fs::File::open(path)
                            .unwrap()
                            .read_to_end(&mut buf)
                            .unwrap();
                        buf.len()
                    });
                    assert_eq!(read.await.unwrap(), SMALL);
                }
            }
        };
        let (get, get_base) = abba(conc, n, s3_get, file_get).await;
        rows.push(latency_row("4 KiB PUT", conc, &put, &put_base, None));
        // The latency target is one client's: with 64 connections on 2 cores a request waits
        // behind the others (p50 ≈ 64 / throughput).
        let target = (conc == 1).then_some(0.5);
        rows.push(latency_row("4 KiB GET", conc, &get, &get_base, target));
    }

    // Large objects: PUT then GET through S3, beside dd-style sequential I/O.
    let mut block = vec![0u8; BLOCK];
    for (i, b) in block.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    let block = Bytes::from(block);
    // Throughput and CPU seconds of each run.
    let (mut put, mut get, mut write, mut read) = (vec![], vec![], vec![], vec![]);
    let dd = plain.join("dd.bin");
    for _ in 0..runs {
        let (t, cpu) = (Instant::now(), cpu_s());
        s3.put("/bench/large", stream_of(&block, LARGE), LARGE)
            .await;
        put.push((mib_s(LARGE, t.elapsed()), cpu_s() - cpu));
        evict(&largest_file(&data.join("objects")));
        let (t, cpu) = (Instant::now(), cpu_s());
        assert_eq!(s3.get("/bench/large").await, LARGE);
        get.push((mib_s(LARGE, t.elapsed()), cpu_s() - cpu));

        let (path, block) = (dd.clone(), block.clone());
        let (w, r) = tokio::task::spawn_blocking(move || {
            let (t, cpu) = (Instant::now(), cpu_s());
            let mut f = std::fs::File::create(&path).unwrap();
            for _ in 0..LARGE / BLOCK as u64 {
                f.write_all(&block).unwrap();
            }
            f.sync_all().unwrap();
            drop(f);
            let w = (t.elapsed(), cpu_s() - cpu);
            evict(&path);
            let (t, cpu) = (Instant::now(), cpu_s());
            let mut f = std::fs::File::open(&path).unwrap();
            let mut buf = vec![0u8; BLOCK];
            let mut total = 0u64;
            loop {
                let n = f.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert_eq!(total, LARGE);
            (w, (t.elapsed(), cpu_s() - cpu))
        })
        .await
        .unwrap();
        write.push((mib_s(LARGE, w.0), w.1));
        read.push((mib_s(LARGE, r.0), r.1));
        std::fs::remove_file(&dd).unwrap();
    }
    let medians = |runs: Vec<(f64, f64)>| {
        let (mib, cpu): (Vec<f64>, Vec<f64>) = runs.into_iter().unzip();
        (median(mib), median(cpu))
    };
    rows.push(throughput_row(
        &format!("256 MiB PUT (median of {runs})"),
        medians(put),
        medians(write),
    ));
    rows.push(throughput_row(
        &format!("256 MiB GET (median of {runs}, cache dropped)"),
        medians(get),
        medians(read),
    ));

    // RSS while 1 GiB streams up and down.
    let before = status_kb("VmRSS:");
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let t = Instant::now();
    s3.put("/bench/huge", stream_of(&block, HUGE), HUGE).await;
    let up = t.elapsed();
    let t = Instant::now();
    assert_eq!(s3.get("/bench/huge").await, HUGE);
    let down = t.elapsed();
    let peak = status_kb("VmHWM:");
    let growth = peak.saturating_sub(before);
    let growth_mib = growth as f64 / (1 << 20) as f64;
    rows.push(Row {
        case: "RSS growth, 1 GiB PUT then GET".into(),
        measured: format!(
            "{growth_mib:.1} MiB (peak {} MiB; {:.0} / {:.0} MiB/s)",
            peak >> 20,
            mib_s(HUGE, up),
            mib_s(HUGE, down)
        ),
        baseline: format!("RSS before {} MiB", before >> 20),
        ratio: "-".into(),
        target: format!(
            "≤ 32 MiB: {}{}",
            if growth_mib <= 32.0 { "met" } else { "MISSED" },
            if reset { "" } else { " (peak not reset)" }
        ),
    });

    let mut table = String::from(
        "| case | S3 API (SigV4, HTTP) | baseline: same bytes, same disk | S3 vs baseline | target |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            r.case, r.measured, r.baseline, r.ratio, r.target
        ));
    }
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let report = format!(
        "{table}\nBaselines: 4 KiB PUT = write + fsync + rename + fsync dir of a new file; 4 KiB GET = \
         open + read of a cached file (both from a blocking thread); 256 MiB = 1 MiB blocks written \
         then fsynced / read after dropping the file's cached pages. The bench's client runs in the \
         server's process (RSS is an upper bound; CPU-s, the process's user + system seconds per \
         operation, count the client's work too). Machine load (1-minute average) at the end: \
         {load} on {cores} cores.\n"
    );
    support::write_report("storage_bench.md", &report);
    server.shutdown().await;
}
