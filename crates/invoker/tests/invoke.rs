//! The invoker against real sandboxes and the real Python and Node.js runtime clients.
//! Needs root (full isolation), as CI has.

use bytes::Bytes;
use lambent_core::{ActivationStatus, ColdReason, Function, FunctionName, FunctionSpec};
use lambent_invoker::{Deployment, InvokeRequest, Invoker, InvokerConfig};
use lambent_sandbox::{Host, HostOptions, Isolation};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn host(state: &Path) -> Host {
    Host::detect(HostOptions {
        isolation: Isolation::Full,
        state_dir: state.into(),
        layers: lambent_sandbox::Layers::ALL,
        sdk_dir: None,
    })
    .unwrap_or_else(|e| panic!("these tests need full isolation (run as root): {e}"))
}

fn runtimes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../runtimes")
        .canonicalize()
        .unwrap()
}

fn deployment(
    dir: &Path,
    name: &str,
    runtime: &str,
    handler: &str,
    files: &[(&str, &str)],
    timeout: u32,
) -> Arc<Deployment> {
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let spec = FunctionSpec {
        runtime: runtime.into(),
        handler: Some(handler.into()),
        timeout: Some(timeout),
        ..Default::default()
    };
    let config = spec.resolve().unwrap();
    let function = Function {
        namespace: "default".into(),
        name: FunctionName::parse(name).unwrap(),
        config,
        code_sha256: "0".repeat(64),
        code_size: 0,
        revision: 1,
        created_ms: 0,
        updated_ms: 0,
    };
    Arc::new(Deployment {
        function,
        code_dir: dir.into(),
    })
}

async fn call(
    invoker: &Invoker,
    dep: &Arc<Deployment>,
    payload: &str,
) -> lambent_invoker::InvokeResult {
    invoker
        .invoke(
            dep,
            InvokeRequest {
                payload: Bytes::from(payload.to_string()),
                trigger: "test".into(),
                ..Default::default()
            },
        )
        .await
}

/// A temporary dir (kept alive by the caller), a code dir in it, and an invoker on real
/// sandboxes with `config` and the repository's runtime clients.
fn setup(config: InvokerConfig) -> (tempfile::TempDir, PathBuf, Invoker) {
    setup_with(config, None)
}

/// [`setup`], the records going to `sink`.
fn setup_with(
    config: InvokerConfig,
    sink: Option<lambent_invoker::RecordSink>,
) -> (tempfile::TempDir, PathBuf, Invoker) {
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    std::fs::create_dir(&code).unwrap();
    let config = InvokerConfig {
        runtime_dir: runtimes(),
        ..config
    };
    let invoker = Invoker::new(host(&tmp.path().join("state")), config, sink);
    (tmp, code, invoker)
}

type Records = Arc<parking_lot::Mutex<Vec<lambent_core::Activation>>>;

/// A record sink that keeps every record it is sent, and those records.
fn kept_records() -> (Records, lambent_invoker::RecordSink) {
    let records = Records::default();
    let kept = records.clone();
    let sink: lambent_invoker::RecordSink =
        Arc::new(move |a: lambent_core::Activation| kept.lock().push(a));
    (records, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_warm_reuse_errors_and_timeout() {
    let (_tmp, code, invoker) = setup(InvokerConfig::default());
    let dep = deployment(
        &code,
        "py",
        "python3.11",
        "app.handler",
        &[(
            "app.py",
            "import time\ncount = 0\ndef handler(event, context):\n    global count\n    count += 1\n    print('hello from', context.aws_request_id)\n    if event.get('fail'): raise ValueError('boom')\n    if event.get('sleep'): time.sleep(event['sleep'])\n    return {'count': count}\n",
        )],
        1,
    );
    let first = call(&invoker, &dep, "{}").await;
    assert_eq!(
        first.activation.status,
        ActivationStatus::Success,
        "{:?}",
        first
    );
    assert!(first.activation.cold);
    assert_eq!(first.activation.cold_reason, Some(ColdReason::FirstRequest));
    assert_eq!(&first.body[..], br#"{"count": 1}"#);
    assert!(
        first.activation.logs.contains("hello from"),
        "{}",
        first.activation.logs
    );
    assert!(first.activation.logs.contains("REPORT RequestId:"));

    let second = call(&invoker, &dep, "{}").await;
    assert!(!second.activation.cold);
    assert_eq!(&second.body[..], br#"{"count": 2}"#);

    let err = call(&invoker, &dep, r#"{"fail": true}"#).await;
    assert_eq!(err.activation.status, ActivationStatus::FunctionError);
    assert_eq!(err.activation.error_type.as_deref(), Some("ValueError"));

    let slow = call(&invoker, &dep, r#"{"sleep": 5}"#).await;
    assert_eq!(slow.activation.status, ActivationStatus::Timeout);
    assert_eq!(invoker.counts(None, None).idle, 0);

    let after = call(&invoker, &dep, "{}").await;
    assert!(after.activation.cold, "a timed-out sandbox is not reused");
    assert_eq!(&after.body[..], br#"{"count": 1}"#);
    // The timed-out sandbox's end is counted by its reason, and it is the only one that ended.
    let metrics = invoker.metrics_text();
    let ended: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("lambent_sandboxes_ended_total{") && !l.ends_with(" 0"))
        .collect();
    assert_eq!(
        ended,
        ["lambent_sandboxes_ended_total{reason=\"timeout\"} 1"],
        "{metrics}"
    );
    invoker.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invocation_whose_caller_goes_away_runs_to_its_end_and_keeps_its_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let code = tmp.path().join("code");
    std::fs::create_dir(&code).unwrap();
    let records = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = records.clone();
    let invoker = Invoker::new(
        host(&tmp.path().join("state")),
        InvokerConfig {
            runtime_dir: runtimes(),
            ..Default::default()
        },
        Some(Arc::new(move |a| sink.lock().unwrap().push(a))),
    );
    let dep = deployment(
        &code,
        "slow",
        "python3.12",
        "app.handler",
        &[(
            "app.py",
            "import time\ncount = 0\ndef handler(event, context):\n    global count\n    count += 1\n    time.sleep(event.get('sleep', 0))\n    return {'count': count}\n",
        )],
        5,
    );
    let first = call(&invoker, &dep, "{}").await;
    assert_eq!(&first.body[..], br#"{"count": 1}"#, "{first:?}");
    // The caller gives up (an HTTP client that disconnects drops the request's future) while
    // the sandbox runs the invocation.
    let gone = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        call(&invoker, &dep, r#"{"sleep": 0.6}"#),
    )
    .await;
    assert!(gone.is_err(), "the call should still be running");
    assert_eq!(invoker.counts(None, None).busy, 1);
    // It ends anyway, recorded, and its sandbox serves the next call warm.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while records.lock().unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no record of the call"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(records.lock().unwrap()[1].status, ActivationStatus::Success);
    let next = call(&invoker, &dep, "{}").await;
    assert!(!next.activation.cold, "{next:?}");
    assert_eq!(&next.body[..], br#"{"count": 3}"#);
    let metrics = invoker.metrics_text();
    assert!(
        metrics.contains("lambent_sandboxes_ended_total{reason=\"abandoned\"} 0"),
        "{metrics}"
    );
    invoker.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_init_errors() {
    let (_tmp, code, invoker) = setup(InvokerConfig::default());
    let dep = deployment(
        &code,
        "node",
        "nodejs20.x",
        "index.handler",
        &[(
            "index.mjs",
            "let n = 0;\nexport const handler = async (event) => ({ n: ++n, echo: event });\n",
        )],
        3,
    );
    let r = call(&invoker, &dep, r#"{"a":1}"#).await;
    assert_eq!(r.activation.status, ActivationStatus::Success, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!({"n": 1, "echo": {"a": 1}}));
    let init = r
        .activation
        .init
        .expect("a cold start says where its time went");
    assert!(
        init.import_us.is_some(),
        "the Node runtime reports its import: {init:?}"
    );
    // The runtime's share is the rest of the init after the sandbox and the import: on a
    // loaded machine it can round to nothing, but the phases never add up to more than it.
    let total = r
        .activation
        .init_us
        .expect("a cold start has an init duration");
    let phases = init.sandbox_us + init.runtime_us + init.import_us.unwrap_or(0);
    assert!(
        init.sandbox_us > 0 && phases <= total,
        "{init:?} of {total} µs"
    );

    let missing = deployment(&code, "missing", "python", "nope.handler", &[], 3);
    let r = call(&invoker, &missing, "{}").await;
    assert_eq!(r.activation.status, ActivationStatus::InitError, "{r:?}");
    assert_eq!(
        r.activation.error_type.as_deref(),
        Some("Runtime.ImportModuleError")
    );
    // A failed init still says what is known: the sandbox, and the runtime until it failed.
    let init = r.activation.init.expect("the sandbox was made");
    assert_eq!(init.import_us, None, "{init:?}");
    assert!(init.sandbox_us + init.runtime_us <= r.activation.init_us.unwrap());

    let provided = deployment(&code, "custom", "provided.al2023", "x", &[], 3);
    let r = call(&invoker, &provided, "{}").await;
    assert_eq!(
        r.activation.error_type.as_deref(),
        Some("Runtime.InvalidEntrypoint")
    );
    assert_eq!(r.activation.init, None, "no sandbox was made");
    invoker.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_idle_sandboxes_are_thawed_for_their_next_invocation() {
    let (_tmp, code, invoker) = setup(InvokerConfig {
        freeze_idle: true,
        ..Default::default()
    });
    let dep = deployment(
        &code,
        "frozen",
        "python",
        "app.handler",
        &[(
            "app.py",
            "n = 0\ndef handler(event, context):\n    global n\n    n += 1\n    return n\n",
        )],
        3,
    );
    for expected in 1..=3 {
        let r = call(&invoker, &dep, "{}").await;
        assert_eq!(r.activation.status, ActivationStatus::Success, "{r:?}");
        assert_eq!(&r.body[..], expected.to_string().as_bytes());
        // Let the background freeze finish before the next call takes the sandbox.
        for _ in 0..100 {
            if invoker.counts(None, None).idle == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(invoker.counts(None, None).idle, 1);
    }
    invoker.shutdown();
}

/// A sequence of `components` (resolved through the invoker's lookup).
fn sequence(name: &str, components: &[&str]) -> Arc<Deployment> {
    let components: Vec<String> = components.iter().map(|c| c.to_string()).collect();
    let config = lambent_core::FunctionConfig::sequence(&components, 9, None).unwrap();
    Arc::new(Deployment {
        function: Function {
            namespace: "default".into(),
            name: FunctionName::parse(name).unwrap(),
            config,
            code_sha256: String::new(),
            code_size: 0,
            revision: 1,
            created_ms: 0,
            updated_ms: 0,
        },
        code_dir: PathBuf::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_chain_their_steps_link_records_and_stop_at_a_failure() {
    let (records, sink) = kept_records();
    let (_tmp, code, invoker) = setup_with(InvokerConfig::default(), Some(sink));
    let app = "def inc(event, context):\n    return {'n': event['n'] + 1}\n\
               def fail(event, context):\n    raise ValueError('stop at %d' % event['n'])\n";
    let inc = deployment(&code, "inc", "python3.12", "app.inc", &[("app.py", app)], 3);
    let fail = deployment(
        &code,
        "fail",
        "python3.12",
        "app.fail",
        &[("app.py", app)],
        3,
    );
    let known: std::collections::HashMap<&str, Arc<Deployment>> = [
        ("inc", inc),
        ("fail", fail),
        ("three", sequence("three", &["inc", "inc", "inc"])),
        ("nested", sequence("nested", &["three", "inc"])),
        ("loop", sequence("loop", &["inc", "loop"])),
    ]
    .into();
    let lookup = known.clone();
    invoker.set_lookup(Arc::new(move |ns, name| {
        assert_eq!(ns, "default");
        lookup.get(name).cloned()
    }));
    let record = |id: &str| {
        records
            .lock()
            .iter()
            .find(|a| a.id == id)
            .cloned()
            .unwrap_or_else(|| panic!("no record {id}"))
    };

    // Each output is the next input; the records link both ways.
    let r = call(&invoker, &known["nested"], r#"{"n": 1}"#).await;
    assert_eq!(r.activation.status, ActivationStatus::Success, "{r:?}");
    assert_eq!(&r.body[..], br#"{"n": 5}"#);
    let nested = record(&r.activation.id);
    assert_eq!((nested.billed_ms, nested.memory_mb), (0, 0));
    assert_eq!(nested.steps.len(), 2);
    let three = record(&nested.steps[0]);
    assert_eq!(three.function, "three");
    assert_eq!(three.parent.as_deref(), Some(nested.id.as_str()));
    assert_eq!(three.trigger, "sequence");
    assert_eq!(three.steps.len(), 3);
    for id in three.steps.iter().chain(&nested.steps[1..]) {
        let step = record(id);
        assert_eq!(step.function, "inc");
        assert!(step.billed_ms >= 1);
        assert!(step.steps.is_empty());
    }
    assert!(nested.logs.contains("step 2/2 inc"), "{}", nested.logs);

    // The first failure stops it with its error; later steps do not run.
    let stops = sequence("stops", &["inc", "fail", "inc"]);
    let before = records.lock().len();
    let r = call(&invoker, &stops, r#"{"n": 1}"#).await;
    assert_eq!(r.activation.status, ActivationStatus::FunctionError);
    assert_eq!(r.activation.error_type.as_deref(), Some("ValueError"));
    assert_eq!(r.activation.error_message.as_deref(), Some("stop at 2"));
    assert!(String::from_utf8_lossy(&r.body).contains("stop at 2"));
    assert_eq!(r.activation.steps.len(), 2);
    assert_eq!(
        records.lock().len(),
        before + 3,
        "two steps and the sequence"
    );

    // A missing component, and a cycle, fail without running forever.
    let r = call(&invoker, &sequence("gone", &["inc", "nope"]), r#"{"n": 1}"#).await;
    assert_eq!(
        r.activation.error_type.as_deref(),
        Some("Lambent.SequenceComponentNotFound")
    );
    assert_eq!(r.activation.steps.len(), 1);
    let r = call(&invoker, &known["loop"], r#"{"n": 0}"#).await;
    assert_eq!(r.activation.status, ActivationStatus::FunctionError);
    assert_eq!(
        r.activation.error_type.as_deref(),
        Some("Lambent.SequenceTooDeep")
    );

    // A sequence has no sandboxes of its own.
    let e = invoker.prewarm(&known["three"]).await.unwrap_err();
    assert!(e.contains("is a sequence"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_room_for_more_sandboxes_invocations_queue_for_the_busy_ones_in_order() {
    // Room for two 128 MB sandboxes, and a queue timeout shorter than the wait ahead.
    let (_tmp, code, invoker) = setup(InvokerConfig {
        memory_budget_mb: 256,
        queue_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    });
    let dep = deployment(
        &code,
        "busy",
        "python",
        "app.handler",
        &[(
            "app.py",
            "import os, time\nSANDBOX = os.urandom(8).hex()\ndef handler(event, context):\n    time.sleep(0.3)\n    return {'sandbox': SANDBOX, 'n': event['n']}\n",
        )],
        5,
    );
    let started = std::time::Instant::now();
    let mut calls = Vec::new();
    for n in 0..8 {
        let (invoker, dep) = (invoker.clone(), dep.clone());
        calls.push(tokio::spawn(async move {
            let r = call(&invoker, &dep, &format!(r#"{{"n": {n}}}"#)).await;
            (r, std::time::Instant::now())
        }));
        // They arrive in order.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut done = Vec::new();
    for c in calls {
        done.push(c.await.unwrap());
    }
    let wall = started.elapsed();
    let mut sandboxes = std::collections::HashSet::new();
    for (r, _) in &done {
        assert_eq!(r.activation.status, ActivationStatus::Success, "{r:?}");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        sandboxes.insert(v["sandbox"].as_str().unwrap().to_string());
    }
    // Six waited up to ~0.9 s, far past the queue timeout, for the two the budget holds.
    assert_eq!(sandboxes.len(), 2, "{sandboxes:?}");
    assert_eq!(done.iter().filter(|(r, _)| r.activation.cold).count(), 2);
    assert!(wall >= std::time::Duration::from_millis(1200), "{wall:?}");
    // First come, first served: each waiting call ended no later than the next one (they hold
    // a sandbox for the same 0.3 s).
    for pair in done[2..].windows(2) {
        assert!(
            pair[0].1 <= pair[1].1 + std::time::Duration::from_millis(100),
            "served out of order: {:?} then {:?}",
            pair[0].0.activation.id,
            pair[1].0.activation.id
        );
    }
    assert_eq!(invoker.counts(None, None).idle, 2);
    let (used, budget) = invoker.memory();
    assert!(used <= budget, "{used} of {budget} MB");
    invoker.shutdown();
}

/// A panic inside an invocation (a bug of the platform: here, the lookup of a sequence's
/// component) ends that invocation as a `PlatformError` with its record, and the invoker keeps
/// serving; the caller's task does not panic with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_an_invocation_ends_it_as_a_platform_error_with_its_record() {
    let (records, sink) = kept_records();
    let (_tmp, code, invoker) = setup_with(InvokerConfig::default(), Some(sink));
    invoker.set_lookup(Arc::new(|_, name| panic!("a bug looking up {name}")));

    let crash = sequence("crash", &["boom"]);
    let r = call(&invoker, &crash, "{}").await;
    assert_eq!(
        r.activation.status,
        ActivationStatus::PlatformError,
        "{r:?}"
    );
    assert_eq!(
        r.activation.error_type.as_deref(),
        Some("Lambent.InternalError")
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errorType"], "Lambent.InternalError", "{body}");
    let recorded: Vec<_> = records
        .lock()
        .iter()
        .filter(|a| a.id == r.activation.id)
        .cloned()
        .collect();
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(
        (recorded[0].function.as_str(), recorded[0].status),
        ("crash", ActivationStatus::PlatformError)
    );
    assert!(
        recorded[0].logs.contains("Lambent.InternalError"),
        "{recorded:?}"
    );

    let echo = deployment(
        &code,
        "echo",
        "python3.12",
        "app.handler",
        &[("app.py", "def handler(event, context):\n    return event\n")],
        3,
    );
    let r = call(&invoker, &echo, r#"{"still": "serving"}"#).await;
    assert_eq!(r.activation.status, ActivationStatus::Success, "{r:?}");
    assert_eq!(&r.body[..], br#"{"still": "serving"}"#);
    invoker.shutdown();
}

/// Calls `dep` from `callers` loops at once until `until`; returns how many calls did not
/// succeed.
async fn load(
    invoker: &Invoker,
    dep: &Arc<Deployment>,
    callers: usize,
    until: std::time::Instant,
) -> usize {
    let mut loops = Vec::new();
    for _ in 0..callers {
        let (invoker, dep) = (invoker.clone(), dep.clone());
        loops.push(tokio::spawn(async move {
            let mut failed = 0;
            while std::time::Instant::now() < until {
                let r = call(&invoker, &dep, "{}").await;
                if r.activation.status != ActivationStatus::Success {
                    eprintln!(
                        "{:?}: {:?}",
                        r.activation.status, r.activation.error_message
                    );
                    failed += 1;
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for l in loops {
        failed += l.await.unwrap();
    }
    failed
}

/// A pool whose runtimes compute for their whole invocations is held at `runnable_per_core`
/// of them per core and sheds the sandboxes it grew past that, its extra invocations waiting
/// for the ones it keeps; a pool whose runtimes sleep through theirs, at the same time on the
/// same crowded cores, grows to one sandbox per concurrent invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_computes_is_held_at_its_cap_and_one_that_sleeps_is_not() {
    let (_tmp, code, invoker) = setup(InvokerConfig {
        runnable_per_core: 1.0,
        ..Default::default()
    });
    let spin = deployment(
        &code,
        "spin",
        "python",
        "spin.handler",
        &[(
            "spin.py",
            "import time\ndef handler(event, context):\n    t = time.perf_counter()\n    while time.perf_counter() - t < 0.02:\n        pass\n    return {}\n",
        )],
        30,
    );
    let sleep = deployment(
        &code,
        "sleep",
        "python",
        "sleep.handler",
        &[(
            "sleep.py",
            "import time\ndef handler(event, context):\n    time.sleep(0.2)\n    return {}\n",
        )],
        30,
    );
    let cores = std::thread::available_parallelism().unwrap().get();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(4);
    let (spin_failed, sleep_failed) = tokio::join!(
        load(&invoker, &spin, 16, until),
        load(&invoker, &sleep, 16, until)
    );
    assert_eq!((spin_failed, sleep_failed), (0, 0), "every call succeeds");

    let cap = invoker.pool_cap(&spin).expect("the computing pool is held");
    assert!(cap <= 2 * cores, "held at {cap} on {cores} cores");
    let spin_live = invoker.revision_counts(&spin);
    assert!(
        spin_live.idle + spin_live.busy <= cap + cap / 2,
        "{spin_live:?} past its cap of {cap}"
    );
    assert_eq!(
        invoker.pool_cap(&sleep),
        None,
        "the sleeping pool is not held"
    );
    let sleep_live = invoker.revision_counts(&sleep);
    assert_eq!(sleep_live.idle + sleep_live.busy, 16, "{sleep_live:?}");
    invoker.shutdown();
}
