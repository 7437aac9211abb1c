//! What the AWS Lambda-compatible API costs over Lambent's own, on a real node, with the
//! baseline measured in the same run:
//!
//! - warm invoke of the compiled `provided` echo function through
//!   `POST /2015-03-31/functions/{name}/invocations` (SigV4-verified: canonical request, key
//!   lookup in SQLite, HMAC chain) against the same function through `POST /v1/…/invoke`
//!   (Bearer key, cached);
//! - the verification alone (`sigv4::check_request` + `verify_signature`), in process.
//!
//! The signed request is made once and sent N times (a signature stays valid for 5 minutes), so
//! the client's signing is not in the numbers. Run: `cargo bench -p lambent-server --bench
//! aws_invoke` (root needed); `LAMBENT_BENCH_N` sets N (default 1000).

mod support;

use comfy_table::Table;
use lambent_aws_api::sigv4;
use lambent_server::{start, ServerOptions};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{echo_runtime, ms, stats, zip_of};

const KEY: &str = "bench-key";
const ACCESS_KEY_ID: &str = "LKIABENCHBENCHBENCH0";
const SECRET: &str = "bench-secret-bench-secret-bench-secret00";

/// Headers of a request signed now with the bench's access key.
fn signed_headers(host: &str, method: &str, path: &str, body: &[u8]) -> HeaderMap {
    let amz_date = sigv4::format_amz_date(time::OffsetDateTime::now_utc());
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_str(host).unwrap());
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    let auth = sigv4::Authorization {
        access_key_id: ACCESS_KEY_ID.into(),
        date: amz_date[..8].into(),
        region: "us-east-1".into(),
        service: "lambda".into(),
        signed_headers: vec!["host".into(), "x-amz-date".into()],
        signature: String::new(),
    };
    let request = sigv4::Request {
        method,
        raw_path: path,
        raw_query: "",
        headers: &headers,
        body,
    };
    let signature = sigv4::sign(&request, &auth, SECRET);
    let value = format!(
        "AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/{}/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}",
        auth.date
    );
    headers.insert("authorization", HeaderValue::from_str(&value).unwrap());
    headers
}

async fn timed(n: usize, mut send: impl AsyncFnMut()) -> Vec<Duration> {
    for _ in 0..n / 10 {
        send().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        send().await;
        samples.push(t.elapsed());
    }
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = support::samples(1000);
    let data = tempfile::tempdir().unwrap();
    let mut opts = ServerOptions::new("127.0.0.1:0".parse().unwrap(), data.path().into());
    opts.api_key = Some(KEY.into());
    opts.access_key = Some((ACCESS_KEY_ID.into(), SECRET.into()));
    let server = start(opts).await.expect("the server did not start (root?)");
    let http = reqwest::Client::new();
    let url = server.url().to_string();
    let code: Value = http
        .post(format!("{url}/v1/code"))
        .bearer_auth(KEY)
        .body(zip_of(&[("bootstrap", &echo_runtime())]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = http
        .put(format!("{url}/v1/functions/echo"))
        .bearer_auth(KEY)
        .body(json!({"runtime": "provided.al2023", "code_sha256": code["sha256"]}).to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let v1 = format!("{url}/v1/functions/echo/invoke");
    let lambent = timed(n, async || {
        let r = http
            .post(&v1)
            .bearer_auth(KEY)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    })
    .await;
    let path = "/2015-03-31/functions/echo/invocations";
    let host = url.trim_start_matches("http://").to_string();
    let headers = signed_headers(&host, "POST", path, b"{}");
    let aws_url = format!("{url}{path}");
    let aws = timed(n, async || {
        let r = http
            .post(&aws_url)
            .headers(headers.clone())
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    })
    .await;

    // The verification alone, as the server does it (minus the key lookup).
    let mut verify = Vec::with_capacity(n);
    let expected = sigv4::Expected {
        region: "us-east-1",
        service: "lambda",
        now: time::OffsetDateTime::now_utc(),
    };
    for _ in 0..n {
        let t = Instant::now();
        let request = sigv4::Request {
            method: "POST",
            raw_path: path,
            raw_query: "",
            headers: &headers,
            body: b"{}",
        };
        let auth = sigv4::check_request(&request, &expected).unwrap();
        sigv4::verify_signature(&request, &auth, SECRET).unwrap();
        verify.push(t.elapsed());
    }

    let base50 = stats(lambent.clone()).p50;
    let mut table = Table::new();
    table.set_header([
        "warm invoke, provided echo",
        "n",
        "p50 ms",
        "p99 ms",
        "p50 vs /v1",
    ]);
    let mut row = |label: &str, samples: Vec<Duration>| {
        let s = stats(samples);
        table.add_row([
            label.to_string(),
            s.n.to_string(),
            ms(s.p50),
            ms(s.p99),
            format!("{:.2}x", s.p50.as_secs_f64() / base50.as_secs_f64()),
        ]);
    };
    row("/v1 (Bearer API key): baseline", lambent);
    row("/2015-03-31 Invoke (SigV4 verified)", aws);
    row("SigV4 verification alone (in process)", verify);
    println!("{table}");
    server.shutdown().await;
}
