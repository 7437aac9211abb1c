//! Engine throughput, each number beside a baseline measured in the same run:
//! - transitions per second of a Pass/Choice loop (target ≥ 20,000/s), against a hand-written
//!   Rust loop doing the same JSON work (increment a counter in a JSON object, compare it);
//!   with events dropped (Express) and with the execution state serialized to JSON at every
//!   checkpoint (what a durable store would write, without the write);
//! - engine overhead per Task state with a no-op TaskRunner, against calling the runner
//!   directly in a loop.
//!
//! Medians of 5 runs. `cargo bench -p lambent-workflows --bench transitions`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lambent_workflows::engine::{
    Execution, ExecutionInfo, ExecutionState, Runtime, TaskRequest, TaskRunner,
};
use lambent_workflows::events::{ExecutionSink, HistoryEvent};
use lambent_workflows::{StateMachine, StatesError, TokioClock};
use serde_json::{json, Value};

const LOOPS: u64 = 20_000;
const RUNS: usize = 5;

/// Drops events (counting them); optionally serializes the state at each checkpoint.
struct Sink {
    events: AtomicU64,
    serialize: bool,
    bytes: AtomicU64,
}

#[async_trait::async_trait]
impl ExecutionSink for Sink {
    fn event(&self, event: HistoryEvent) {
        std::hint::black_box(&event);
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    async fn checkpoint(&self, state: &ExecutionState) -> Result<(), String> {
        if self.serialize {
            let text = serde_json::to_vec(state).map_err(|e| e.to_string())?;
            self.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Returns its input with `i` incremented: the work the Pass state does in the loop.
struct Noop;

#[async_trait::async_trait]
impl TaskRunner for Noop {
    async fn run(&self, request: TaskRequest) -> Result<Value, StatesError> {
        Ok(increment(&request.input))
    }
}

fn increment(v: &Value) -> Value {
    json!({"i": v["i"].as_i64().unwrap_or(0) + 1})
}

fn info() -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:000000000000:execution:bench:b".into(),
        name: "b".into(),
        state_machine_arn: "arn:aws:states:us-east-1:000000000000:stateMachine:bench".into(),
        state_machine_name: "bench".into(),
        role_arn: String::new(),
        start_time: time::OffsetDateTime::now_utc(),
        input: json!({"i": 0}),
    }
}

/// Run the machine once; (elapsed, transitions, events).
async fn engine_run(machine: &Arc<StateMachine>, serialize: bool) -> (Duration, u64, u64) {
    let sink = Arc::new(Sink {
        events: AtomicU64::new(0),
        serialize,
        bytes: AtomicU64::new(0),
    });
    let rt = Runtime {
        runner: Arc::new(Noop),
        clock: Arc::new(TokioClock::new()),
        sink: sink.clone(),
    };
    let exec = Execution::start(machine.clone(), rt, info());
    let started = Instant::now();
    let outcome = exec.run().await.expect("no checkpoint failure");
    let elapsed = started.elapsed();
    assert_eq!(outcome.status(), "SUCCEEDED", "{outcome:?}");
    (
        elapsed,
        exec.state().transitions(),
        sink.events.load(Ordering::Relaxed),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let pass_choice = Arc::new(
        StateMachine::from_value(&json!({"StartAt": "Inc", "States": {
            "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.i", "NumericLessThan": LOOPS, "Next": "Inc"}], "Default": "Done"},
            "Done": {"Type": "Succeed"}}}))
        .expect("valid"),
    );
    let task_choice = Arc::new(
        StateMachine::from_value(&json!({"StartAt": "Task", "States": {
            "Task": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Next": "Check"},
            "Check": {"Type": "Choice", "Choices": [{"Variable": "$.i", "NumericLessThan": LOOPS, "Next": "Task"}], "Default": "Done"},
            "Done": {"Type": "Succeed"}}}))
        .expect("valid"),
    );

    let mut express = Vec::new();
    let mut durable = Vec::new();
    let mut baseline = Vec::new();
    let mut task_engine = Vec::new();
    let mut task_baseline = Vec::new();
    let mut events_per_run = 0;
    for _ in 0..RUNS {
        let (t, transitions, events) = rt.block_on(engine_run(&pass_choice, false));
        events_per_run = events;
        express.push(transitions as f64 / t.as_secs_f64());
        let (t, transitions, _) = rt.block_on(engine_run(&pass_choice, true));
        durable.push(transitions as f64 / t.as_secs_f64());

        // the same JSON work by hand: increment, compare, 2 transitions per loop
        let started = Instant::now();
        let mut v = json!({"i": 0});
        loop {
            v = increment(std::hint::black_box(&v));
            if v["i"].as_i64().unwrap_or(0) >= LOOPS as i64 {
                break;
            }
        }
        baseline.push((2 * LOOPS) as f64 / started.elapsed().as_secs_f64());

        let (t, _, _) = rt.block_on(engine_run(&task_choice, false));
        task_engine.push(t.as_secs_f64() * 1e6 / LOOPS as f64);
        let started = Instant::now();
        rt.block_on(async {
            let mut v = json!({"i": 0});
            loop {
                let request = TaskRequest {
                    resource: "arn:aws:states:::lambda:invoke".into(),
                    input: v,
                    timeout: None,
                    heartbeat: None,
                    task_token: String::new(),
                    credentials: None,
                    execution_arn: String::new(),
                    state_name: "Task".into(),
                    retry_count: 0,
                };
                v = Noop.run(request).await.expect("no-op");
                if v["i"].as_i64().unwrap_or(0) >= LOOPS as i64 {
                    break;
                }
            }
        });
        task_baseline.push(started.elapsed().as_secs_f64() * 1e6 / LOOPS as f64);
    }
    let (express, durable, baseline) = (median(express), median(durable), median(baseline));
    let (task_engine, task_baseline) = (median(task_engine), median(task_baseline));
    println!("workflows engine: {LOOPS} loops per run, median of {RUNS} runs ({events_per_run} events per Pass/Choice run)");
    println!("| measure | engine | baseline (same run) | ratio |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| Pass/Choice loop, events dropped (Express) | {express:.0} transitions/s | {baseline:.0} /s hand-written loop | {:.1}× |",
        baseline / express
    );
    println!(
        "| Pass/Choice loop, state serialized per checkpoint | {durable:.0} transitions/s | {baseline:.0} /s hand-written loop | {:.1}× |",
        baseline / durable
    );
    println!(
        "| Task state (no-op runner) + Choice, per loop | {task_engine:.2} µs | {task_baseline:.2} µs runner called directly | +{:.2} µs |",
        task_engine - task_baseline
    );
    // less one transition of the Pass/Choice loop for the Choice state
    println!(
        "| engine overhead per Task state | {:.2} µs | | |",
        task_engine - task_baseline - 1e6 / express
    );
    println!(
        "target: ≥ 20,000 transitions/s — {}",
        if express >= 20_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
}
