//! What every benchmark of this crate shares: the async runtime, settings from the environment, p50/p99 of latency
//! samples, milliseconds for the tables, code zips and the compiled echo runtime.
#![allow(dead_code)]

use std::io::Write;
use std::time::Duration;

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
