//! Schedules end to end on a real node: a cron fire every second, a rate, a one-shot `at` that
//! fires once and is gone, a constant input sent in place of the scheduled event, precise
//! errors, and exactly one catch-up fire for the fires missed while the node was stopped.

mod common;

use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

const PRINT_PY: &str = r#"
import json
def handler(event, context):
    print("EVENT " + json.dumps(event))
    return "ok"
"#;

async fn setup(node: &Node) {
    let settings = json!({"runtime": "python3.12", "handler": "app.handler"});
    let (status, body) = node.deploy("tick", settings, &[("app.py", PRINT_PY)]).await;
    assert!(status.is_success(), "{body}");
}

async fn put_schedule(node: &Node, name: &str, body: Value) -> (StatusCode, Value) {
    let (s, _, v) = node
        .send(
            Method::PUT,
            &format!("/v1/schedules/{name}"),
            body.to_string().into_bytes(),
        )
        .await;
    (s, v)
}

/// The scheduled events the function received (from its logs), oldest first.
async fn fired(node: &Node) -> Vec<Value> {
    let mut events = Vec::new();
    for a in node.activations_of("tick").await {
        assert_eq!(a["trigger"], "schedule", "{a}");
        for line in a["logs"].as_str().unwrap_or("").lines() {
            if let Some(json) = line.strip_prefix("EVENT ") {
                events.push(serde_json::from_str(json).unwrap());
            }
        }
    }
    events
}

fn time_ms(event: &Value) -> i64 {
    let t = event["time"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("time {t}: {e}"))
        .timestamp_millis()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cron_fires_every_second_with_an_eventbridge_event() {
    let node = node().await;
    setup(&node).await;
    let (s, v) = put_schedule(
        &node,
        "every-second",
        json!({"function": "tick", "cron": "* * * * * *"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["expression"], "cron(* * * * * *)");
    assert_eq!(v["timezone"], "UTC");
    let events = eventually(20, "three fires", || async {
        let f = fired(&node).await;
        (f.len() >= 3).then_some(f)
    })
    .await;
    let e = &events[0];
    assert_eq!(e["version"], "0");
    assert_eq!(e["detail-type"], "Scheduled Event");
    assert_eq!(e["source"], "aws.events");
    assert_eq!(e["account"], "default");
    assert_eq!(e["region"], "us-east-1");
    assert_eq!(
        e["resources"],
        json!(["arn:aws:events:us-east-1:default:rule/every-second"])
    );
    assert_eq!(e["detail"], json!({}));
    assert!(e["id"].as_str().is_some_and(|id| id.len() == 36));
    // One fire per second, each carrying its own second.
    let times: Vec<i64> = events.iter().map(time_ms).collect();
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], 1000, "{times:?}");
    }

    let listed = node.get_ok("/v1/schedules").await;
    assert_eq!(listed["schedules"][0]["name"], "every-second");
    let (s, _, _) = node
        .send(Method::DELETE, "/v1/schedules/every-second", vec![])
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, v) = node
        .send(Method::GET, "/v1/schedules/every-second", vec![])
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("NotFound"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_input_is_sent_instead_of_the_scheduled_event() {
    let node = node().await;
    setup(&node).await;
    let input = json!({"job": "report", "ids": [1, 2], "opts": {"dry": false, "note": null}});
    let (s, v) = put_schedule(
        &node,
        "with-input",
        json!({"function": "tick", "cron": "* * * * * *", "input": input}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["input"], input);
    assert_eq!(
        node.get_ok("/v1/schedules/with-input").await["input"],
        input
    );
    let events = eventually(20, "a fire", || async {
        let f = fired(&node).await;
        (!f.is_empty()).then_some(f)
    })
    .await;
    assert_eq!(events[0], input);
    node.send(Method::DELETE, "/v1/schedules/with-input", vec![])
        .await;

    // EventBridge's limit: 256 KiB of input (here one byte over, as compact JSON).
    let over = json!("x".repeat(256 * 1024 - 1));
    let (s, v) = put_schedule(
        &node,
        "too-big",
        json!({"function": "tick", "rate": "1 hour", "input": over}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("InvalidSchedule")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("256 KiB"),
        "{v}"
    );
    let fits = json!("x".repeat(256 * 1024 - 2));
    let (s, v) = put_schedule(
        &node,
        "fits",
        json!({"function": "tick", "rate": "1 hour", "input": fits}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{}", v["error"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_and_one_shot_at() {
    let node = node().await;
    setup(&node).await;
    let (s, v) = put_schedule(
        &node,
        "often",
        json!({"function": "tick", "rate": "2 seconds"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let created = v["created_ms"].as_i64().unwrap();
    assert_eq!(v["next_fire_ms"].as_i64(), Some(created + 2000));
    eventually(15, "two rate fires", || async {
        (fired(&node).await.len() >= 2).then_some(())
    })
    .await;
    node.send(Method::DELETE, "/v1/schedules/often", vec![])
        .await;

    // Three seconds from now, written in Paris local time.
    let at = (chrono::Utc::now() + chrono::Duration::seconds(3))
        .with_timezone(&chrono_tz::Europe::Paris)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let (s, v) = put_schedule(
        &node,
        "once",
        json!({"function": "tick", "at": at, "tz": "Europe/Paris"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let before = fired(&node).await.len();
    eventually(15, "the one-shot fire and its removal", || async {
        let (s, _, _) = node.send(Method::GET, "/v1/schedules/once", vec![]).await;
        (s == StatusCode::NOT_FOUND).then_some(())
    })
    .await;
    let events = eventually(10, "the one-shot event", || async {
        let f = fired(&node).await;
        (f.len() > before).then_some(f)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(fired(&node).await.len(), before + 1, "{events:?}");

    // Precise errors.
    for (body, code) in [
        (
            json!({"function": "tick", "cron": "* * *"}),
            "InvalidSchedule",
        ),
        (
            json!({"function": "tick", "rate": "5 fortnights"}),
            "InvalidSchedule",
        ),
        (
            json!({"function": "tick", "cron": "* * * * * *", "rate": "1 minute"}),
            "InvalidSchedule",
        ),
        (
            json!({"function": "tick", "at": "2001-01-01T00:00:00"}),
            "InvalidSchedule",
        ),
        (
            json!({"function": "tick", "cron": "* * * * * *", "tz": "Mars/Base"}),
            "InvalidSchedule",
        ),
        (
            json!({"function": "nobody", "cron": "* * * * * *"}),
            "FunctionNotFound",
        ),
        (json!({"function": "tick", "every": "day"}), "InvalidJson"),
    ] {
        let (s, v) = put_schedule(&node, "bad", body.clone()).await;
        assert_eq!(v["error"]["code"], code, "{body} → {s} {v}");
    }
    let body = json!({"name": "dup", "function": "tick", "rate": "1 hour"}).to_string();
    let (s, _, _) = node
        .send(Method::POST, "/v1/schedules", body.clone().into_bytes())
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, v) = node
        .send(Method::POST, "/v1/schedules", body.into_bytes())
        .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("Conflict"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fires_missed_while_stopped_become_exactly_one_catch_up_fire() {
    let mut node = node().await;
    setup(&node).await;
    let (s, v) = put_schedule(
        &node,
        "every-second",
        json!({"function": "tick", "cron": "* * * * * *"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    eventually(15, "a first fire", || async {
        (!fired(&node).await.is_empty()).then_some(())
    })
    .await;

    node.stop().await;
    let stopped_ms = chrono::Utc::now().timestamp_millis();
    // Five periods missed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restarted_ms = chrono::Utc::now().timestamp_millis();
    node.start_again().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    node.send(Method::DELETE, "/v1/schedules/every-second", vec![])
        .await;

    let events = fired(&node).await;
    let times: Vec<i64> = events.iter().map(time_ms).collect();
    let missed: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t > stopped_ms && t < restarted_ms)
        .collect();
    assert_eq!(
        missed.len(),
        1,
        "exactly one catch-up fire for the missed period: {times:?}"
    );
    let after: Vec<i64> = times
        .iter()
        .copied()
        .filter(|&t| t >= restarted_ms)
        .collect();
    assert!(
        after.len() >= 2,
        "the normal cadence resumes after the catch-up: {times:?}"
    );
    assert!(after.windows(2).all(|p| p[1] - p[0] == 1000), "{times:?}");
}
