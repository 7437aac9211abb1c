//! `lambent mapping create --table` against `lambent up`: the table mapping's flags, `mapping
//! ls` showing both kinds, `mapping rm`, and that nothing is lost across a SIGKILL of the
//! server while a mapping works through a table's stream.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};
use support::{path_str, Server};

#[test]
fn table_mappings_are_created_listed_and_removed_beside_queue_mappings() {
    let home = tempfile::tempdir().unwrap();
    let app = home.path().join("noop");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        "def handler(event, context):\n    return None\n",
    )
    .unwrap();
    let s = Server::start(home.path(), &["--insecure-no-sandbox"]);
    s.cli(&[
        "deploy",
        path_str(&app),
        "--runtime",
        "python3.12",
        "--handler",
        "app.handler",
    ])
    .ok();
    s.cli(&[
        "table",
        "create",
        "events",
        "--key",
        "pk:S",
        "--stream",
        "keys-only",
    ])
    .ok();
    s.cli(&["table", "create", "plain", "--key", "pk:S"]).ok();
    s.cli(&["queue", "create", "work"]).ok();
    s.cli(&["queue", "create", "failed"]).ok();

    let m = s
        .cli(&[
            "mapping",
            "create",
            "--table",
            "events",
            "noop",
            "--batch-size",
            "50",
            "--batching-window",
            "500",
            "--starting-position",
            "latest",
            "--max-retries",
            "3",
            "--bisect",
            "--report-batch-item-failures",
            "--on-failure",
            "failed",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(m["table"], "events");
    assert_eq!(m["function"], "noop");
    assert_eq!(m["batch_size"], 50);
    assert_eq!(m["batching_window_ms"], 500);
    assert_eq!(m["starting_position"], "LATEST");
    assert_eq!(m["max_retries"], 3);
    assert_eq!(m["bisect_on_error"], true);
    assert_eq!(m["report_batch_item_failures"], true);
    assert_eq!(m["on_failure"], "arn:aws:sqs:us-east-1:default:failed");
    let line = s.cli(&["mapping", "create", "work", "noop"]).ok();
    assert!(line.stdout.contains("queue work -> noop"), "{line:?}");

    let table = s.cli(&["mapping", "ls"]).ok().stdout;
    assert!(table.contains("table events"), "{table}");
    assert!(table.contains("queue work"), "{table}");
    assert!(
        table.contains("latest, retries 3, bisect, item failures, on failure failed"),
        "{table}"
    );

    // What a user gets wrong.
    let out = s
        .cli(&["mapping", "create", "--table", "plain", "noop"])
        .failed();
    assert!(out.stderr.contains("has no stream"), "{out:?}");
    let out = s
        .cli(&["mapping", "create", "--table", "events", "noop"])
        .failed();
    assert!(out.stderr.contains("already exists"), "{out:?}");
    let out = s.cli(&["mapping", "create", "work", "noop", "--bisect"]);
    assert_eq!(out.code, 2, "--bisect needs --table: {out:?}");
    let out = s
        .cli(&["mapping", "create", "--table", "events", "a", "b"])
        .failed();
    assert!(out.stderr.contains("name only the function"), "{out:?}");
    let out = s
        .cli(&[
            "mapping",
            "create",
            "--table",
            "events",
            "noop",
            "--batch-size",
            "20000",
        ])
        .failed();
    assert!(
        out.stderr.contains("less than or equal to 10000"),
        "{out:?}"
    );

    let id = m["id"].as_str().unwrap();
    s.cli(&["mapping", "rm", id]).ok();
    let out = s.cli(&["mapping", "rm", id]).failed();
    assert!(out.stderr.contains("does not exist"), "{out:?}");
    let table = s.cli(&["mapping", "ls"]).ok().stdout;
    assert!(!table.contains("table events"), "{table}");
}

/// SIGKILLs `lambent up` while a mapping works through 600 writes to ten keys of a table,
/// starts it again on the same data dir, and checks from the function's own witness file that
/// every stream record was processed at least once and, per key, in the order written
/// (duplicates are counted and printed). Without sandboxes, so the function can append to a
/// host file: that file, not Lambent's batched activation records, is the proof.
#[test]
fn stream_records_survive_sigkill_mid_processing() {
    const N: usize = 600;
    const KEYS: usize = 10;
    let home = tempfile::tempdir().unwrap();
    let witness = home.path().join("witness.txt");
    let app = home.path().join("stream-worker");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("app.py"),
        "import os, time\n\
         def handler(event, context):\n    \
             with open(os.environ['WITNESS'], 'a') as f:\n        \
                 for r in event['Records']:\n            \
                     d = r['dynamodb']\n            \
                     f.write(f\"{d['Keys']['pk']['S']} {d['SequenceNumber']} {d['NewImage']['v']['N']}\\n\")\n        \
                 f.flush()\n        \
                 os.fsync(f.fileno())\n    \
             time.sleep(0.03)\n",
    )
    .unwrap();
    let s = Server::start(home.path(), &["--insecure-no-sandbox"]);
    s.deploy_witnessed(&app, &witness);
    s.cli(&[
        "table",
        "create",
        "crash",
        "--key",
        "pk:S",
        "--stream",
        "new-image",
    ])
    .ok();
    let http = reqwest::blocking::Client::new();
    for i in 0..N {
        let item = serde_json::json!({"Item": {
            "pk": {"S": format!("k{}", i % KEYS)},
            "v": {"N": i.to_string()},
        }});
        let resp = http
            .post(format!("{}/v1/tables/crash/PutItem", s.url))
            .bearer_auth(&s.key)
            .json(&item)
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{:?}", resp.text());
    }
    s.cli(&[
        "mapping",
        "create",
        "--table",
        "crash",
        "stream-worker",
        "--batch-size",
        "10",
    ])
    .ok();

    let lines = || {
        std::fs::read_to_string(&witness)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while lines().len() < N / 4 {
        assert!(Instant::now() < deadline, "the mapping made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let before_kill = lines().len();
    s.kill();
    assert!(
        before_kill < N,
        "the kill came after all the work: lower the batch speed"
    );

    let _s = Server::start(home.path(), &["--insecure-no-sandbox"]);
    let all_seen = || {
        let mut seen = HashMap::<String, usize>::new();
        for line in lines() {
            let seq = line.split(' ').nth(1).unwrap_or_default().to_string();
            *seen.entry(seq).or_default() += 1;
        }
        seen
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while all_seen().len() < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} records processed after the restart",
            all_seen().len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let seen = all_seen();
    let expected: Vec<String> = (1..=N).map(|n| format!("{n:021}")).collect();
    let missing: Vec<&String> = expected.iter().filter(|s| !seen.contains_key(*s)).collect();
    assert!(missing.is_empty(), "never processed: {missing:?}");
    assert_eq!(seen.len(), N, "only the records written were processed");
    // Per key, the values in the order they were first processed are the order written.
    let mut first = std::collections::HashSet::new();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for line in lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        if first.insert(parts[1].to_string()) {
            per_key
                .entry(parts[0].to_string())
                .or_default()
                .push(parts[2].parse().unwrap());
        }
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, values) in &per_key {
        let written: Vec<u64> = (0..N as u64)
            .filter(|i| format!("k{}", i % KEYS as u64) == *key)
            .collect();
        assert_eq!(values, &written, "{key}");
    }
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!(
        "stream crash test: {N} records, {before_kill} processed before SIGKILL, all {N} \
         processed at least once, in order per key, {duplicates} duplicate deliveries"
    );
}
