//! What every benchmark of this crate shares: the async runtime, settings from the environment, p50/p99 of latency
//! samples, closed-loop runs (and a-b-b-a pairs of them) with their CPU time, milliseconds for
//! the tables, code zips, the compiled echo runtime and SigV4 signing as AWS clients do it.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The headers of a SigV4-signed request to `host` (region `us-east-1`), as an AWS client
/// sends them: `headers` (signed too), `x-amz-date` and `authorization`. `payload` is the
/// body's hex SHA-256, or `UNSIGNED-PAYLOAD`.
pub fn sigv4_headers(
    (access_key_id, secret): (&str, &str),
    service: &str,
    (method, host, path): (&str, &str, &str),
    headers: &[(&str, &str)],
    payload: &str,
) -> reqwest::header::HeaderMap {
    use hmac::Mac;
    use lambent_aws_api::sigv4;
    use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
    let amz_date = sigv4::format_amz_date(time::OffsetDateTime::now_utc());
    let date = &amz_date[..8];
    let mut signed: Vec<(&str, &str)> = headers.to_vec();
    signed.extend([("host", host), ("x-amz-date", amz_date.as_str())]);
    signed.sort_unstable();
    let names = signed.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(";");
    let lines: String = signed.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let canonical = format!("{method}\n{path}\n\n{lines}\n{names}\n{payload}");
    let scope = format!("{date}/us-east-1/{service}/aws4_request");
    let to_sign = sigv4::string_to_sign(&amz_date, &scope, &canonical);
    let key = sigv4::signing_key(secret, date, "us-east-1", service);
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(to_sign.as_bytes());
    let signature = hex::encode(mac.finalize().into_bytes());
    let mut out = HeaderMap::new();
    for (name, value) in headers {
        out.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    out.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={names}, Signature={signature}"
    );
    out.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    out
}

/// An HTTP client for a bench's calls to its node: no Nagle, an idle connection kept for
/// each of up to 128 callers.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(128)
        .build()
        .unwrap()
}

/// Runs a bench's async body on a multi-threaded runtime.
pub fn block_on<F: std::future::Future>(body: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(body)
}

/// The environment variable `name` parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Samples per case: `LAMBENT_BENCH_N`, or `default`.
pub fn samples(default: usize) -> usize {
    env_or("LAMBENT_BENCH_N", default)
}

pub struct Stats {
    pub p50: Duration,
    pub p99: Duration,
    pub n: usize,
}

/// The `q` quantile (nearest rank) of sorted, non-empty samples.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Median and 99th percentile (nearest rank) of latency samples.
pub fn stats(mut samples: Vec<Duration>) -> Stats {
    samples.sort();
    Stats {
        p50: quantile(&samples, 0.50),
        p99: quantile(&samples, 0.99),
        n: samples.len(),
    }
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

#[allow(unused_imports)] // not every test or bench packs code
pub use lambent_testkit::zip_of;

/// The compiled echo runtime (`src/bin/lambent-echo-runtime.rs`), as a `bootstrap`.
pub fn echo_runtime() -> Vec<u8> {
    std::fs::read(env!("CARGO_BIN_EXE_lambent-echo-runtime")).unwrap()
}

/// Latencies of operations run by some tasks, how long they all took, and the CPU time the
/// process spent meanwhile (every thread: the bench's clients and, in-process, the server).
pub struct Run {
    pub samples: Vec<Duration>,
    pub wall: Duration,
    pub cpu: Duration,
}

impl Run {
    /// Operations per second.
    pub fn ops(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }

    /// CPU time per operation, in microseconds: what a run costs whatever else the machine
    /// is doing (other processes' load changes wall times, not this).
    pub fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.samples.len().max(1) as f64
    }
}

/// The CPU time (user + system) this process has used so far.
pub fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Operations `from..from + n` run by `conc` tasks in closed loops: `op(task, i)`.
pub async fn closed_loop<F, Fut>(conc: usize, from: usize, n: usize, op: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per = (n / conc).max(1);
    let cpu = process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|t| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut samples = Vec::with_capacity(per);
                for j in 0..per {
                    let at = Instant::now();
                    op(t, from + t * per + j).await;
                    samples.push(at.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(n);
    for t in tasks {
        samples.extend(t.await.unwrap());
    }
    Run {
        samples,
        wall: started.elapsed(),
        cpu: process_cpu() - cpu,
    }
}

/// `n` operations of `a` and of `b` in the order a, b, b, a (halves; the second halves
/// numbered after the first), so that both see the same machine (others' load changes
/// during a run).
pub async fn abba<A, AF, B, BF>(conc: usize, n: usize, a: A, b: B) -> (Run, Run)
where
    A: Fn(usize, usize) -> AF + Clone + Send + Sync + 'static,
    AF: Future<Output = ()> + Send,
    B: Fn(usize, usize) -> BF + Clone + Send + Sync + 'static,
    BF: Future<Output = ()> + Send,
{
    let half = n / 2;
    let a1 = closed_loop(conc, 0, half, a.clone()).await;
    let b1 = closed_loop(conc, 0, half, b.clone()).await;
    let b2 = closed_loop(conc, half, half, b).await;
    let a2 = closed_loop(conc, half, half, a).await;
    let join = |mut x: Run, y: Run| {
        x.samples.extend(y.samples);
        x.wall += y.wall;
        x.cpu += y.cpu;
        x
    };
    (join(a1, a2), join(b1, b2))
}

/// Prints a benchmark's report and keeps it as `target/<file>` (beside the target's tmp dir).
pub fn write_report(file: &str, report: &str) {
    println!("{report}");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map_or_else(|| std::path::PathBuf::from(file), |t| t.join(file));
    std::fs::write(&out, report).unwrap();
    eprintln!("written to {}", out.display());
}
