//! The Runtime API facing a hostile runtime: any bytes on a sandbox's connection (requests,
//! response and error bodies, error-type headers, broken framing) while an invocation is in
//! flight. Never panics; a response body handed on is within the size limit; and afterwards
//! the API is not wedged: a well-behaved runtime on a new connection still gets the next
//! invocation and completes it (unless the hostile one reported an init error, which then
//! refuses every hand-off).
#![no_main]

use bytes::Bytes;
use lambent_runtime_api::{HandOffError, Invocation, Outcome, RuntimeApi, MAX_RESPONSE_BYTES};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::runtime::Runtime;

struct World {
    /// One thread, its clock paused: a connection left waiting (a second `GET /next`) times
    /// out at once, as the clock jumps when nothing else can run.
    rt: Runtime,
    listener: std::net::TcpListener,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| World {
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime"),
        listener: std::net::TcpListener::bind("127.0.0.1:0").expect("a listener"),
    })
}

fn invocation(id: &str) -> Invocation {
    Invocation {
        request_id: id.into(),
        payload: Bytes::from_static(br#"{"hello":"world"}"#),
        deadline_ms: 1_700_000_000_000,
        function_arn: "arn:aws:lambda:us-east-1:default:function:f".into(),
        trace_id: "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
            .into(),
        client_context: None,
        cognito_identity: None,
    }
}

/// Writes `input` on a new connection to `api`, reads what comes back until it closes (or
/// hangs: the paused clock makes that instant).
async fn exchange(api: &RuntimeApi, input: &[u8]) -> Vec<u8> {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let conn = tokio::spawn(api.serve_stream(server));
    let (mut rd, mut wr) = tokio::io::split(client);
    let mut answer = Vec::new();
    let talk = async {
        let write = async {
            let _ = wr.write_all(input).await;
        };
        let read = read_all(&mut rd, &mut answer);
        tokio::join!(write, read);
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), talk).await;
    conn.abort();
    let _ = conn.await;
    drop(wr);
    answer
}

async fn read_all<R: AsyncRead + Unpin>(rd: &mut R, out: &mut Vec<u8>) {
    let _ = rd.read_to_end(out).await;
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let api = RuntimeApi::serve(w.listener.try_clone().expect("a listener"), None)
            .expect("the runtime api");
        let hostile = api
            .invoke(invocation("hostile"))
            .expect("a fresh api is free");
        let _ = exchange(&api, data).await;
        let mut hostile = hostile;
        if let Ok(Outcome::Response { body, .. }) = hostile.try_recv() {
            assert!(body.len() <= MAX_RESPONSE_BYTES);
        }

        api.abandon();
        let outcome = match api.invoke(invocation("good")) {
            Ok(rx) => rx,
            Err(HandOffError::InitFailed) => {
                assert!(api.init_error().is_some());
                return;
            }
            Err(HandOffError::Busy) => panic!("busy after abandon"),
        };
        let good = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: r\r\n\r\n\
            POST /2018-06-01/runtime/invocation/good/response HTTP/1.1\r\nHost: r\r\n\
            Content-Length: 2\r\nConnection: close\r\n\r\nok";
        let answer = exchange(&api, good).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains("lambda-runtime-aws-request-id: good"),
            "a well-behaved runtime got no invocation after the hostile one: {answer}"
        );
        match outcome.await {
            Ok(Outcome::Response { body, .. }) => assert_eq!(&body[..], b"ok"),
            other => panic!("the well-behaved runtime's response was lost: {other:?}"),
        }
    });
});
