//! A naive custom runtime is not punished: one that writes its response's headers and body in
//! two small writes (as simple C or shell clients do, Nagle's algorithm left on) must not wait
//! for the Runtime API's delayed ACK (~40 ms on Linux) on every invocation.

use bytes::Bytes;
use lambent_runtime_api::{Invocation, Outcome, RuntimeApi};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A runtime over a raw socket: `GET /next` in one write; the response's headers, then its
/// body, in two. Python leaves Nagle on for its sockets, as C's `socket()` does.
const NAIVE_RUNTIME: &str = r#"
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
f = s.makefile("rb")

def read_head():
    headers = {}
    while True:
        line = f.readline()
        if not line:
            sys.exit(0)
        if line in (b"\r\n", b"\n"):
            return headers
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()

while True:
    s.sendall(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: r\r\n\r\n")
    headers = read_head()
    event = f.read(int(headers.get("content-length", 0)))
    request_id = headers["lambda-runtime-aws-request-id"]
    body = b'{"echo":' + event + b'}'
    s.sendall(("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: r\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
               % (request_id, len(body))).encode())
    s.sendall(body)
    f.read(int(read_head().get("content-length", 0)))
"#;

struct Runtime(Child);

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn invocation(n: usize) -> Invocation {
    Invocation {
        request_id: format!("req-{n}"),
        payload: Bytes::from(format!("{{\"n\":{n}}}")),
        deadline_ms: 4_000_000_000_000,
        function_arn: "arn:aws:lambda:local:default:function:naive".into(),
        trace_id: "Root=1-00000000-000000000000000000000000;Sampled=0".into(),
        client_context: None,
        cognito_identity: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_writing_headers_and_body_apart_does_not_stall_on_delayed_acks() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let api = RuntimeApi::serve(listener, None).unwrap();
    let _runtime = Runtime(
        Command::new("python3")
            .args(["-c", NAIVE_RUNTIME, &address])
            .stdin(Stdio::null())
            .spawn()
            .expect("python3 runs the naive runtime"),
    );
    tokio::time::timeout(Duration::from_secs(30), api.wait_ready())
        .await
        .expect("the runtime asks for work")
        .expect("the runtime starts");

    let mut took = Vec::new();
    for n in 0..25 {
        let started = Instant::now();
        let outcome = api.invoke(invocation(n)).unwrap();
        let outcome = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .expect("the runtime answers")
            .unwrap();
        let elapsed = started.elapsed();
        match outcome {
            Outcome::Response { body, .. } => {
                assert_eq!(body, Bytes::from(format!("{{\"echo\":{{\"n\":{n}}}}}")))
            }
            other => panic!("unexpected outcome {other:?}"),
        }
        // The first few warm the connection up.
        if n >= 5 {
            took.push(elapsed);
        }
    }
    took.sort();
    let median = took[took.len() / 2];
    eprintln!("invocation latencies: median {median:?}, all {took:?}");
    assert!(
        median < Duration::from_millis(15),
        "median invocation {median:?}: the runtime's body waited for a delayed ACK (all: {took:?})"
    );
}
