//! What every benchmark of this crate shares: the async runtime, settings from the environment, p50/p99 of latency
//! samples, closed-loop runs (and a-b-b-a pairs of them), milliseconds for the tables, code
//! zips and the compiled echo runtime.
#![allow(dead_code)]

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// A code zip of `files`; `bootstrap` is executable.
pub fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        let mode = if *name == "bootstrap" { 0o755 } else { 0o644 };
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode);
        w.start_file(*name, opts).unwrap();
        w.write_all(body).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// The compiled echo runtime (`src/bin/lambent-echo-runtime.rs`), as a `bootstrap`.
pub fn echo_runtime() -> Vec<u8> {
    std::fs::read(env!("CARGO_BIN_EXE_lambent-echo-runtime")).unwrap()
}

/// Latencies of operations run by some tasks, and how long they all took.
pub struct Run {
    pub samples: Vec<Duration>,
    pub wall: Duration,
}

impl Run {
    /// Operations per second.
    pub fn ops(&self) -> f64 {
        self.samples.len() as f64 / self.wall.as_secs_f64()
    }
}

/// Operations `from..from + n` run by `conc` tasks in closed loops: `op(task, i)`.
pub async fn closed_loop<F, Fut>(conc: usize, from: usize, n: usize, op: F) -> Run
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let per = (n / conc).max(1);
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
        x
    };
    (join(a1, a2), join(b1, b2))
}
