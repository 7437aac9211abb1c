//! The interpreter end to end on virtual time: every state type, Retry timing, Catch routing,
//! Map concurrency and tolerated failures, variables, JSONata states, timeouts, stops, and
//! resuming a durable execution from its last committed checkpoint.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lambent_workflows::engine::{
    Execution, ExecutionInfo, ExecutionState, Outcome, Runtime, TaskRequest, TaskRunner,
};
use lambent_workflows::events::{EventType, ExecutionSink, HistoryEvent, MemorySink};
use lambent_workflows::{Clock, StateMachine, StatesError, TokioClock};
use parking_lot::Mutex;
use serde_json::{json, Value};
use time::macros::datetime;

type Handler = Arc<dyn Fn(&TaskRequest, usize) -> Result<Value, StatesError> + Send + Sync>;

/// A Task runner for tests: per resource, a function of the request and the call number
/// (0, 1, …), an optional delay, and a record of every call with its virtual time.
#[derive(Default)]
struct Runner {
    handlers: Mutex<HashMap<String, (Handler, Duration)>>,
    calls: Mutex<Vec<(String, Value, tokio::time::Instant, TaskRequest)>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Runner {
    fn on(
        self: &Arc<Self>,
        resource: &str,
        delay: Duration,
        f: impl Fn(&TaskRequest, usize) -> Result<Value, StatesError> + Send + Sync + 'static,
    ) -> Arc<Self> {
        self.handlers
            .lock()
            .insert(resource.to_string(), (Arc::new(f), delay));
        self.clone()
    }

    fn calls_to(&self, resource: &str) -> usize {
        self.calls.lock().iter().filter(|c| c.0 == resource).count()
    }

    fn times(&self, resource: &str) -> Vec<tokio::time::Instant> {
        self.calls
            .lock()
            .iter()
            .filter(|c| c.0 == resource)
            .map(|c| c.2)
            .collect()
    }
}

#[async_trait::async_trait]
impl TaskRunner for Runner {
    async fn run(&self, request: TaskRequest) -> Result<Value, StatesError> {
        let (handler, delay) = self
            .handlers
            .lock()
            .get(&request.resource)
            .cloned()
            .unwrap_or_else(|| {
                (
                    Arc::new(|r: &TaskRequest, _| Ok(r.input.clone())) as Handler,
                    Duration::ZERO,
                )
            });
        let n = {
            let mut calls = self.calls.lock();
            let n = calls.iter().filter(|c| c.0 == request.resource).count();
            calls.push((
                request.resource.clone(),
                request.input.clone(),
                tokio::time::Instant::now(),
                request.clone(),
            ));
            n
        };
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        handler(&request, n)
    }
}

fn runner() -> Arc<Runner> {
    Arc::new(Runner::default())
}

fn info(input: Value) -> ExecutionInfo {
    ExecutionInfo {
        execution_arn: "arn:aws:states:us-east-1:000000000000:execution:sm:exec-1".into(),
        name: "exec-1".into(),
        state_machine_arn: "arn:aws:states:us-east-1:000000000000:stateMachine:sm".into(),
        state_machine_name: "sm".into(),
        role_arn: "arn:aws:iam::000000000000:role/r".into(),
        start_time: datetime!(2030-01-01 00:00:00 UTC),
        input,
    }
}

fn clock() -> Arc<TokioClock> {
    Arc::new(TokioClock::starting_at(datetime!(2030-01-01 00:00:00 UTC)))
}

fn runtime(runner: Arc<Runner>, sink: Arc<dyn ExecutionSink>) -> Runtime {
    Runtime {
        runner,
        clock: clock(),
        sink,
    }
}

async fn run_with(def: Value, input: Value, runner: Arc<Runner>) -> (Outcome, Arc<MemorySink>) {
    let machine = Arc::new(StateMachine::from_value(&def).expect("valid definition"));
    let sink = Arc::new(MemorySink::default());
    let exec = Execution::start(machine, runtime(runner, sink.clone()), info(input));
    (exec.run().await.expect("no checkpoint failure"), sink)
}

async fn run(def: Value, input: Value) -> Outcome {
    run_with(def, input, runner()).await.0
}

fn output(o: Outcome) -> Value {
    match o {
        Outcome::Succeeded(v) => v,
        other => panic!("expected success, got {other:?}"),
    }
}

fn failure(o: Outcome) -> StatesError {
    match o {
        Outcome::Failed(e) => e,
        other => panic!("expected failure, got {other:?}"),
    }
}

fn task_error(error: &str, cause: &str) -> StatesError {
    StatesError::new(error, cause)
}

#[tokio::test(start_paused = true)]
async fn pass_states_and_jsonpath_data_flow() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.res", "Next": "B"},
        "B": {"Type": "Pass", "InputPath": "$.res", "Parameters": {"y.$": "$.x", "name.$": "$$.Execution.Name", "state.$": "$$.State.Name", "lit": [1]}, "Next": "C"},
        "C": {"Type": "Pass", "Parameters": {"all.$": "$"}, "OutputPath": "$.all.y", "Next": "D"},
        "D": {"Type": "Pass", "ResultPath": null, "InputPath": null, "End": true}
    }});
    assert_eq!(output(run(def, json!({"in": true})).await), json!(1));
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Parameters": {"y.$": "$.x"}, "ResultPath": "$.out", "Next": "B"},
        "B": {"Type": "Pass", "OutputPath": null, "End": true}}});
    assert_eq!(output(run(def.clone(), json!({"x": 2})).await), json!({}));
}

#[tokio::test(start_paused = true)]
async fn data_flow_failures_are_runtime_errors_with_aws_texts() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"y.$": "$.missing"}, "End": true}}});
    let e = failure(run(def, json!({"x": 1})).await);
    assert_eq!(e.error, "States.Runtime");
    assert_eq!(e.cause, "The JSONPath '$.missing' specified for the field 'y.$' could not be found in the input '{\"x\":1}'");
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "InputPath": "$.nope", "End": true}}});
    assert!(failure(run(def, json!({})).await)
        .cause
        .starts_with("Invalid path '$.nope'"));
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a.b", "End": true}}});
    assert_eq!(
        failure(run(def, json!({"a": "str"})).await).error,
        "States.ResultPathMatchFailure"
    );
    // States.ALL catches neither States.Runtime nor does Retry retry it
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"a.$": "$.missing"},
              "Retry": [{"ErrorEquals": ["States.ALL"]}], "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S"}], "End": true},
        "S": {"Type": "Succeed"}}});
    let r = runner();
    let (o, _) = run_with(def, json!({}), r.clone()).await;
    assert_eq!(failure(o).error, "States.Runtime");
    assert_eq!(r.calls.lock().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn outputs_over_256_kib_exceed_the_data_limit_and_are_not_caught() {
    let r = runner().on("arn:big", Duration::ZERO, |_, _| {
        Ok(json!("x".repeat(300 * 1024)))
    });
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:big", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "S"}], "End": true},
        "S": {"Type": "Succeed"}}});
    let e = failure(run_with(def, json!({}), r).await.0);
    assert_eq!(e.error, "States.DataLimitExceeded");
    assert!(e
        .cause
        .starts_with("The state/task 'T' returned a result with a size exceeding"));
}

#[tokio::test(start_paused = true)]
async fn intrinsics_in_parameters() {
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {
        "greeting.$": "States.Format('Hello, {}!', $.name)",
        "parts.$": "States.StringSplit($.csv, ',')",
        "len.$": "States.ArrayLength(States.StringSplit($.csv, ','))",
        "sum.$": "States.MathAdd($.n, 5)",
        "id.$": "States.UUID()"}, "End": true}}});
    let out = output(run(def, json!({"name": "Ada", "csv": "a,b,c", "n": 1})).await);
    assert_eq!(out["greeting"], "Hello, Ada!");
    assert_eq!(out["parts"], json!(["a", "b", "c"]));
    assert_eq!(out["len"], 3);
    assert_eq!(out["sum"], 6);
    assert_eq!(out["id"].as_str().unwrap().len(), 36);
    let def = json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"x.$": "States.ArrayGetItem($.a, 9)"}, "End": true}}});
    assert_eq!(
        failure(run(def, json!({"a": [1]})).await).error,
        "States.IntrinsicFailure"
    );
}

#[tokio::test(start_paused = true)]
async fn task_states_result_processing_and_events() {
    let r = runner().on(
        "arn:aws:lambda:us-east-1:000000000000:function:double",
        Duration::ZERO,
        |req, _| Ok(json!({"value": req.input["n"].as_i64().unwrap() * 2, "noise": true})),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:double",
        "Parameters": {"n.$": "$.n", "token.$": "$$.Task.Token"}, "ResultSelector": {"v.$": "$.value"}, "ResultPath": "$.result", "End": true}}});
    let (o, sink) = run_with(def, json!({"n": 21}), r.clone()).await;
    assert_eq!(output(o), json!({"n": 21, "result": {"v": 42}}));
    let req = r.calls.lock()[0].3.clone();
    assert_eq!(req.input["token"], json!(req.task_token));
    assert_eq!(req.state_name, "T");
    assert_eq!(
        sink.types(),
        vec![
            EventType::ExecutionStarted,
            EventType::TaskStateEntered,
            EventType::LambdaFunctionScheduled,
            EventType::LambdaFunctionStarted,
            EventType::LambdaFunctionSucceeded,
            EventType::TaskStateExited,
            EventType::ExecutionSucceeded
        ]
    );
    let events = sink.events();
    assert!(events
        .windows(2)
        .all(|w| w[1].id == w[0].id + 1 && w[1].previous_event_id == w[0].id));
    assert_eq!(events[1].details["name"], "T");
    assert_eq!(events[1].details["input"], "{\"n\":21}");
    let api = events[1].to_api();
    assert_eq!(api["type"], "TaskStateEntered");
    assert_eq!(api["stateEnteredEventDetails"]["name"], "T");

    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": true}}});
    let (_, sink) = run_with(def, json!({}), runner()).await;
    let scheduled = sink
        .events()
        .into_iter()
        .find(|e| e.event_type == EventType::TaskScheduled)
        .unwrap();
    assert_eq!(scheduled.details["resourceType"], "sqs");
    assert_eq!(scheduled.details["resource"], "sendMessage");
    assert!(sink.types().contains(&EventType::TaskSucceeded));
}

#[tokio::test(start_paused = true)]
async fn retry_timing_backoff_cap_and_catch_routing() {
    let r = runner().on("arn:aws:states:::lambda:invoke", Duration::ZERO, |_, n| {
        if n < 3 {
            Err(task_error("Lambda.ServiceException", "flaky"))
        } else {
            Ok(json!("ok"))
        }
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["Other"], "MaxAttempts": 9}, {"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3, "MaxDelaySeconds": 10}],
        "End": true}}});
    let (o, _) = run_with(def, json!({}), r.clone()).await;
    assert_eq!(output(o), json!("ok"));
    let times = r.times("arn:aws:states:::lambda:invoke");
    let gaps: Vec<u64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis() as u64)
        .collect();
    // 2 s, 2×3 = 6 s, 2×9 = 18 s capped at 10 s
    assert_eq!(gaps, vec![2000, 6000, 10000]);
    assert_eq!(r.calls.lock()[3].3.retry_count, 3);

    // exhausted retries go to the catcher, the error output at its ResultPath
    let r = runner().on("arn:aws:states:::lambda:invoke", Duration::ZERO, |_, _| {
        Err(task_error("Boom", "it broke"))
    });
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 2, "IntervalSeconds": 1}],
              "Catch": [{"ErrorEquals": ["Nope"], "Next": "Wrong"}, {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "Handled"}],
              "End": true},
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Handled": {"Type": "Pass", "End": true}}});
    let (o, sink) = run_with(def, json!({"keep": 1}), r.clone()).await;
    assert_eq!(
        output(o),
        json!({"keep": 1, "error": {"Error": "Boom", "Cause": "it broke"}})
    );
    assert_eq!(r.calls.lock().len(), 3);
    assert_eq!(
        sink.types()
            .iter()
            .filter(|t| **t == EventType::TaskFailed)
            .count(),
        3
    );

    // MaxAttempts 0 never retries; an uncaught error fails the execution with it
    let r = runner().on("arn:aws:states:::lambda:invoke", Duration::ZERO, |_, _| {
        Err(task_error("Boom", "x"))
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 0}], "End": true}}});
    let (o, sink) = run_with(def, json!({}), r.clone()).await;
    assert_eq!(failure(o), task_error("Boom", "x"));
    assert_eq!(r.calls.lock().len(), 1);
    assert_eq!(sink.types().last(), Some(&EventType::ExecutionFailed));
}

#[tokio::test(start_paused = true)]
async fn full_jitter_keeps_delays_under_the_backoff() {
    let r = runner().on("arn:aws:states:::lambda:invoke", Duration::ZERO, |_, n| {
        if n < 5 {
            Err(task_error("E", ""))
        } else {
            Ok(json!(1))
        }
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 4, "BackoffRate": 1, "MaxAttempts": 5, "JitterStrategy": "FULL"}], "End": true}}});
    let (o, _) = run_with(def, json!({}), r.clone()).await;
    output(o);
    let times = r.times("arn:aws:states:::lambda:invoke");
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 5);
    assert!(
        gaps.iter().all(|g| *g <= Duration::from_secs(4)),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().any(|g| *g < Duration::from_secs(4)),
        "jitter never shortened a delay: {gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn task_timeout_and_timed_out_events() {
    let r = runner().on(
        "arn:aws:states:::sqs:sendMessage",
        Duration::from_secs(30),
        |_, _| Ok(json!(1)),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "TimeoutSeconds": 5,
        "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "NotThis"}, {"ErrorEquals": ["States.Timeout"], "Next": "Timed"}], "End": true},
        "NotThis": {"Type": "Fail"}, "Timed": {"Type": "Succeed"}}});
    let started = tokio::time::Instant::now();
    let (o, sink) = run_with(def, json!({}), r).await;
    assert_eq!(output(o), json!({"Error": "States.Timeout", "Cause": ""}));
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert!(sink.types().contains(&EventType::TaskTimedOut));
    // TimeoutSecondsPath
    let r = runner().on(
        "arn:aws:states:::sqs:sendMessage",
        Duration::from_secs(30),
        |_, _| Ok(json!(1)),
    );
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "TimeoutSecondsPath": "$.t", "End": true}}});
    let (o, _) = run_with(def, json!({"t": 2}), r).await;
    assert_eq!(failure(o).error, "States.Timeout");
}

#[tokio::test(start_paused = true)]
async fn choice_loop_default_and_no_match() {
    let def = json!({"StartAt": "Init", "States": {
        "Init": {"Type": "Pass", "Result": {"i": 0}, "Next": "Check"},
        "Check": {"Type": "Choice", "Choices": [{"Variable": "$.i", "NumericGreaterThanEquals": 5, "Next": "Done"}], "Default": "Inc"},
        "Inc": {"Type": "Pass", "Parameters": {"i.$": "States.MathAdd($.i, 1)"}, "Next": "Check"},
        "Done": {"Type": "Succeed"}}});
    let (o, sink) = run_with(def, json!({}), runner()).await;
    assert_eq!(output(o), json!({"i": 5}));
    assert_eq!(
        sink.types()
            .iter()
            .filter(|t| **t == EventType::ChoiceStateEntered)
            .count(),
        6
    );
    let def = json!({"StartAt": "C", "States": {"C": {"Type": "Choice", "Choices": [{"Variable": "$.x", "StringEquals": "a", "Next": "D"}]}, "D": {"Type": "Succeed"}}});
    let e = failure(run(def, json!({"x": "b"})).await);
    assert_eq!(e.error, "States.NoChoiceMatched");
}

#[tokio::test(start_paused = true)]
async fn wait_states_on_virtual_time() {
    for (state, input, secs) in [
        (
            json!({"Type": "Wait", "Seconds": 3600, "End": true}),
            json!({}),
            3600,
        ),
        (
            json!({"Type": "Wait", "SecondsPath": "$.s", "End": true}),
            json!({"s": 7}),
            7,
        ),
        (
            json!({"Type": "Wait", "Timestamp": "2030-01-01T00:01:00Z", "End": true}),
            json!({}),
            60,
        ),
        (
            json!({"Type": "Wait", "TimestampPath": "$.t", "End": true}),
            json!({"t": "2030-01-01T00:00:10Z"}),
            10,
        ),
        (
            json!({"Type": "Wait", "Timestamp": "2000-01-01T00:00:00Z", "End": true}),
            json!({}),
            0,
        ),
    ] {
        let before = tokio::time::Instant::now();
        let (o, sink) = run_with(
            json!({"StartAt": "W", "States": {"W": state}}),
            input.clone(),
            runner(),
        )
        .await;
        assert_eq!(output(o), input);
        assert_eq!(before.elapsed(), Duration::from_secs(secs), "{state}");
        assert!(sink.types().contains(&EventType::WaitStateExited));
    }
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "SecondsPath": "$.s", "End": true}}});
    assert_eq!(
        failure(run(def, json!({"s": "x"})).await).error,
        "States.Runtime"
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_branches_and_branch_failure() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Parallel", "ResultSelector": {"a.$": "$[0]", "b.$": "$[1].v"}, "End": true, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "one", "End": true}}},
        {"StartAt": "B", "States": {"B": {"Type": "Wait", "Seconds": 5, "Next": "B2"}, "B2": {"Type": "Pass", "Parameters": {"v.$": "$.x"}, "End": true}}}]}}});
    let (o, sink) = run_with(def, json!({"x": 2}), runner()).await;
    assert_eq!(output(o), json!({"a": "one", "b": 2}));
    let types = sink.types();
    assert!(
        types.contains(&EventType::ParallelStateStarted)
            && types.contains(&EventType::ParallelStateSucceeded)
    );

    let r = runner()
        .on("arn:slow", Duration::from_secs(100), |_, _| Ok(json!(1)))
        .on("arn:bad", Duration::from_secs(1), |_, _| {
            Err(task_error("Bad", "branch broke"))
        });
    let def = json!({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "Next": "Ok", "Catch": [{"ErrorEquals": ["Bad"], "Next": "Caught"}], "Branches": [
            {"StartAt": "S", "States": {"S": {"Type": "Task", "Resource": "arn:slow", "End": true}}},
            {"StartAt": "F", "States": {"F": {"Type": "Task", "Resource": "arn:bad", "End": true}}}]},
        "Ok": {"Type": "Succeed"}, "Caught": {"Type": "Pass", "End": true}}});
    let started = tokio::time::Instant::now();
    let (o, sink) = run_with(def, json!({}), r).await;
    assert_eq!(output(o), json!({"Error": "Bad", "Cause": "branch broke"}));
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(1),
        "the failing branch stops the others"
    );
    assert!(sink.types().contains(&EventType::ParallelStateFailed));
}

#[tokio::test(start_paused = true)]
async fn map_runs_items_concurrently_up_to_max_concurrency() {
    let r = runner().on("arn:work", Duration::from_secs(1), |req, _| {
        Ok(json!(req.input["v"].as_i64().unwrap() * 10))
    });
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10,
        "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index", "tag.$": "$.tag"},
        "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "arn:work", "End": true}}}, "End": true}}});
    let items: Vec<i64> = (0..100).collect();
    let started = tokio::time::Instant::now();
    let (o, sink) = run_with(def, json!({"items": items, "tag": "t"}), r.clone()).await;
    let out = output(o);
    assert_eq!(out, json!((0..100).map(|i| i * 10).collect::<Vec<_>>()));
    assert_eq!(r.max_in_flight.load(Ordering::SeqCst), 10);
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    let first = r.calls.lock()[0].1.clone();
    assert_eq!(first["tag"], "t");
    let types = sink.types();
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == EventType::MapIterationStarted)
            .count(),
        100
    );
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == EventType::MapIterationSucceeded)
            .count(),
        100
    );
    assert!(types.contains(&EventType::MapStateStarted));

    // MaxConcurrencyPath and no limit
    for (extra, want) in [(json!({"MaxConcurrencyPath": "$.c"}), 3), (json!({}), 20)] {
        let r = runner().on("arn:work", Duration::from_secs(1), |_, _| Ok(json!(0)));
        let mut m = json!({"Type": "Map", "ItemProcessor": {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": "arn:work", "End": true}}}, "ItemsPath": "$.items", "End": true});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (o, _) = run_with(
            json!({"StartAt": "M", "States": {"M": m}}),
            json!({"items": vec![0; 20], "c": 3}),
            r.clone(),
        )
        .await;
        output(o);
        assert_eq!(r.max_in_flight.load(Ordering::SeqCst), want);
    }
}

#[tokio::test(start_paused = true)]
async fn map_tolerated_failures() {
    let make = |tolerance: Value| {
        let mut m = json!({"Type": "Map", "MaxConcurrency": 1, "End": true,
            "ItemProcessor": {"StartAt": "C", "States": {
                "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericLessThan": 3, "Next": "Bad"}], "Default": "Good"},
                "Bad": {"Type": "Fail", "Error": "ItemFailed", "Cause": "small"}, "Good": {"Type": "Pass", "End": true}}}});
        m.as_object_mut()
            .unwrap()
            .extend(tolerance.as_object().unwrap().clone());
        json!({"StartAt": "M", "States": {"M": m}})
    };
    let items = json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let out = output(run(make(json!({"ToleratedFailureCount": 3})), items.clone()).await);
    assert_eq!(out[0], json!({"Error": "ItemFailed", "Cause": "small"}));
    assert_eq!(out[9], 9);
    output(
        run(
            make(json!({"ToleratedFailurePercentage": 30})),
            items.clone(),
        )
        .await,
    );
    let e = failure(run(make(json!({"ToleratedFailureCount": 2})), items.clone()).await);
    assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
    let e = failure(
        run(
            make(json!({"ToleratedFailurePercentagePath": "$[0]"})),
            items.clone(),
        )
        .await,
    );
    assert_eq!(e.error, "States.ExceedToleratedFailureThreshold");
    // without a threshold the first failure fails the Map with the iteration's error
    assert_eq!(
        failure(run(make(json!({})), items).await).error,
        "ItemFailed"
    );
    let e = failure(run(make(json!({})), json!({"not": "an array"})).await);
    assert_eq!(e.error, "States.Runtime");
}

#[tokio::test(start_paused = true)]
async fn fail_states() {
    let def = json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "States.Format('bad {}', $.n)"}}});
    assert_eq!(
        failure(run(def, json!({"e": "MyError", "n": 3})).await),
        task_error("MyError", "bad 3")
    );
    let def =
        json!({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E", "Cause": "C"}}});
    let (o, sink) = run_with(def, json!({}), runner()).await;
    assert_eq!(failure(o), task_error("E", "C"));
    assert_eq!(
        sink.types(),
        vec![
            EventType::ExecutionStarted,
            EventType::FailStateEntered,
            EventType::ExecutionFailed
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn variables_assign_and_scope() {
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Assign": {"count": 1, "who.$": "$.name"}, "Next": "B"},
        "B": {"Type": "Pass", "Assign": {"count.$": "States.MathAdd($count, 1)", "old.$": "$count"}, "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {"StartAt": "I", "States": {
            "I": {"Type": "Pass", "Parameters": {"item.$": "$", "who.$": "$who"}, "End": true}}}, "ResultPath": "$.mapped", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$count", "NumericEquals": 2, "Assign": {"branch": "two"}, "Next": "D"}], "Default": "D"},
        "D": {"Type": "Pass", "Parameters": {"count.$": "$count", "old.$": "$old", "branch.$": "$branch", "mapped.$": "$.mapped"}, "End": true}}});
    let (o, sink) = run_with(def, json!({"name": "Ada", "items": [1, 2]}), runner()).await;
    assert_eq!(
        output(o),
        json!({"count": 2, "old": 1, "branch": "two", "mapped": [{"item": 1, "who": "Ada"}, {"item": 2, "who": "Ada"}]})
    );
    let exited = sink
        .events()
        .into_iter()
        .find(|e| e.event_type == EventType::PassStateExited)
        .unwrap();
    assert_eq!(
        exited.details["assignedVariables"],
        json!({"count": "1", "who": "\"Ada\""})
    );
}

#[tokio::test(start_paused = true)]
async fn jsonata_states() {
    let r = runner()
        .on(
            "arn:aws:states:::lambda:invoke",
            Duration::ZERO,
            |req, _| {
                Ok(json!({"Payload": {"total": req.input["Payload"]["a"].as_i64().unwrap() + 1}}))
            },
        )
        .on("arn:fails", Duration::ZERO, |_, _| {
            Err(task_error("Oops", "bad thing"))
        });
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Arguments": {"FunctionName": "f", "Payload": {"a": "{% $states.input.a %}"}},
              "Assign": {"total": "{% $states.result.Payload.total %}"},
              "Output": "{% $states.result.Payload %}", "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Condition": "{% $total > 5 %}", "Next": "M", "Output": {"big": "{% $total %}"}}], "Default": "Small"},
        "Small": {"Type": "Fail", "Error": "{% 'TooSmall' & $total %}", "Cause": "{% $string($states.input) %}"},
        "M": {"Type": "Map", "Items": "{% [1, 2, 3] %}", "ItemSelector": {"v": "{% $states.context.Map.Item.Value %}", "big": "{% $states.input.big %}"},
              "ItemProcessor": {"StartAt": "Double", "States": {"Double": {"Type": "Pass", "Output": "{% $states.input.v * $states.input.big %}", "End": true}}},
              "Output": "{% $sum($states.result) %}", "Next": "F"},
        "F": {"Type": "Task", "Resource": "arn:fails", "Catch": [{"ErrorEquals": ["Oops"], "Next": "Done",
              "Output": {"caught": "{% $states.errorOutput.Error %}", "before": "{% $states.input %}"}, "Assign": {"cause": "{% $states.errorOutput.Cause %}"}}], "End": true},
        "Done": {"Type": "Pass", "Output": {"result": "{% $states.input %}", "cause": "{% $cause %}", "exec": "{% $states.context.Execution.Name %}"}, "End": true}}});
    let (o, _) = run_with(def.clone(), json!({"a": 9}), r.clone()).await;
    assert_eq!(
        output(o),
        json!({"result": {"caught": "Oops", "before": 60}, "cause": "bad thing", "exec": "exec-1"})
    );
    let e = failure(run_with(def, json!({"a": 1}), r).await.0);
    assert_eq!(e, task_error("TooSmall2", "{\"total\":2}"));

    let def = json!({"QueryLanguage": "JSONata", "StartAt": "P", "States": {"P": {"Type": "Pass", "Output": "{% $states.input.nope %}", "End": true}}});
    assert_eq!(
        failure(run(def, json!({})).await).error,
        "States.QueryEvaluationError"
    );
    // a JSONata state inside a JSONPath machine
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Result": {"x": 2}, "Next": "B"},
        "B": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% $states.input.x * 21 %}", "End": true}}});
    assert_eq!(output(run(def, json!({})).await), json!(42));
}

#[tokio::test(start_paused = true)]
async fn execution_timeout_and_stop() {
    let def = json!({"TimeoutSeconds": 10, "StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}});
    let (o, sink) = run_with(def, json!({}), runner()).await;
    assert_eq!(
        o,
        Outcome::TimedOut(StatesError::new(
            "States.Timeout",
            "The execution has timed out"
        ))
    );
    assert_eq!(o.status(), "TIMED_OUT");
    assert_eq!(sink.types().last(), Some(&EventType::ExecutionTimedOut));

    let def =
        json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": true}}});
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let sink = Arc::new(MemorySink::default());
    let exec = Arc::new(Execution::start(
        machine,
        runtime(runner(), sink.clone()),
        info(json!({})),
    ));
    let handle = tokio::spawn({
        let exec = exec.clone();
        async move { exec.run().await }
    });
    tokio::time::sleep(Duration::from_secs(5)).await;
    exec.stop(Some("Halt".into()), Some("by a test".into()));
    let o = handle.await.unwrap().unwrap();
    assert_eq!(o, Outcome::Aborted(StatesError::new("Halt", "by a test")));
    assert_eq!(sink.types().last(), Some(&EventType::ExecutionAborted));
}

/// A durable sink: keeps every committed state as JSON (what a store would write), and fails
/// the commit after `crash_after` checkpoints, as a node dying mid-execution would.
struct DurableSink {
    committed: Mutex<Option<Value>>,
    checkpoints: AtomicUsize,
    crash_after: usize,
    events: Mutex<Vec<HistoryEvent>>,
}

impl DurableSink {
    fn new(crash_after: usize) -> Arc<Self> {
        Arc::new(DurableSink {
            committed: Mutex::new(None),
            checkpoints: AtomicUsize::new(0),
            crash_after,
            events: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait::async_trait]
impl ExecutionSink for DurableSink {
    fn event(&self, event: HistoryEvent) {
        self.events.lock().push(event);
    }

    async fn checkpoint(&self, state: &ExecutionState) -> Result<(), String> {
        if self.checkpoints.fetch_add(1, Ordering::SeqCst) >= self.crash_after {
            return Err("the node died".into());
        }
        *self.committed.lock() = Some(state.to_json());
        Ok(())
    }
}

async fn crash_and_resume(
    def: &Value,
    input: Value,
    crash_after: usize,
    r: Arc<Runner>,
) -> Outcome {
    let machine = Arc::new(StateMachine::from_value(def).unwrap());
    let sink = DurableSink::new(crash_after);
    // one clock for the node before and after the crash: wall time goes on
    let clock = clock();
    let rt = |sink: Arc<DurableSink>| Runtime {
        runner: r.clone(),
        clock: clock.clone(),
        sink,
    };
    let exec = Execution::start(machine.clone(), rt(sink.clone()), info(input));
    let err = exec
        .run()
        .await
        .expect_err("the sink crashes the execution");
    assert!(err.to_string().contains("the node died"));
    drop(exec);
    let saved = sink
        .committed
        .lock()
        .clone()
        .expect("something was committed");
    let state = ExecutionState::from_json(saved).unwrap();
    let after = DurableSink::new(usize::MAX);
    let resumed = Execution::resume(machine, rt(after.clone()), state);
    let outcome = resumed.run().await.unwrap();
    assert!(after.committed.lock().is_some());
    outcome
}

#[tokio::test(start_paused = true)]
async fn resume_after_crash_runs_no_completed_task_again() {
    let def = json!({"StartAt": "T1", "States": {
        "T1": {"Type": "Task", "Resource": "arn:t1", "ResultPath": "$.t1", "Next": "T2"},
        "T2": {"Type": "Task", "Resource": "arn:t2", "ResultPath": "$.t2", "Assign": {"seen": true}, "Next": "T3"},
        "T3": {"Type": "Task", "Resource": "arn:t3", "Parameters": {"t1.$": "$.t1", "t2.$": "$.t2", "seen.$": "$seen"}, "End": true}}});
    let handler = |name: &'static str| move |_: &TaskRequest, _| Ok(json!(name));
    // checkpoints: 1 = ExecutionStarted, 2 = after T1, 3 = after T2; crash on the 3rd
    let r = runner().on("arn:t1", Duration::ZERO, handler("one")).on(
        "arn:t2",
        Duration::ZERO,
        handler("two"),
    );
    let o = crash_and_resume(&def, json!({}), 2, r.clone()).await;
    assert_eq!(output(o), json!({"t1": "one", "t2": "two", "seen": true}));
    assert_eq!(r.calls_to("arn:t1"), 1, "T1 was committed before the crash");
    assert_eq!(
        r.calls_to("arn:t2"),
        2,
        "T2 ran when the crash hit its commit: at least once"
    );
    assert_eq!(r.calls_to("arn:t3"), 1);
}

#[tokio::test(start_paused = true)]
async fn resume_keeps_retry_counters_and_wait_deadlines() {
    // a Wait's deadline is committed when it starts: resuming does not wait again from zero
    let def = json!({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 100, "Next": "T"}, "T": {"Type": "Task", "Resource": "arn:t", "End": true}}});
    let started = tokio::time::Instant::now();
    let o = crash_and_resume(&def, json!({"x": 1}), 2, runner()).await;
    assert_eq!(output(o), json!({"x": 1}));
    assert_eq!(started.elapsed(), Duration::from_secs(100));

    // retry attempts used before the crash count after it
    let r = runner().on("arn:t", Duration::ZERO, |_, _| Err(task_error("E", "")));
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:t",
        "Retry": [{"ErrorEquals": ["E"], "MaxAttempts": 3, "IntervalSeconds": 1}], "End": true}}});
    let o = crash_and_resume(&def, json!({}), 3, r.clone()).await;
    assert_eq!(failure(o).error, "E");
    // committed: started, the 1st retry decision; the crash hits the 2nd one's commit, so that
    // attempt runs again, and the resumed execution has 2 retries left, not 3
    assert_eq!(r.calls_to("arn:t"), 2 + 3);
}

#[tokio::test(start_paused = true)]
async fn resume_inside_a_map_keeps_finished_iterations() {
    let r = runner().on("arn:item", Duration::from_secs(1), |req, _| {
        Ok(json!(req.input.as_i64().unwrap() + 100))
    });
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 2, "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:item", "End": true}}}}}});
    // checkpoints: started, map branches set up, then one per finished iteration; crash after 4 done
    let o = crash_and_resume(&def, json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), 6, r.clone()).await;
    assert_eq!(
        output(o),
        json!([100, 101, 102, 103, 104, 105, 106, 107, 108, 109])
    );
    let calls = r.calls_to("arn:item");
    assert!(
        calls <= 10 + 2,
        "finished iterations are not run again: {calls} calls"
    );
    assert!(calls >= 10);
}

#[tokio::test(start_paused = true)]
async fn a_finished_execution_resumes_to_its_outcome() {
    let def = json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}});
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let sink = DurableSink::new(usize::MAX);
    let exec = Execution::start(
        machine.clone(),
        runtime(runner(), sink.clone()),
        info(json!({"a": 1})),
    );
    assert_eq!(
        exec.run().await.unwrap(),
        Outcome::Succeeded(json!({"a": 1}))
    );
    assert_eq!(exec.state().transitions(), 1);
    let state = ExecutionState::from_json(sink.committed.lock().clone().unwrap()).unwrap();
    let again = Execution::resume(
        machine,
        runtime(runner(), Arc::new(MemorySink::default())),
        state,
    );
    assert_eq!(
        again.run().await.unwrap(),
        Outcome::Succeeded(json!({"a": 1}))
    );
}

#[tokio::test(start_paused = true)]
async fn context_object_and_retry_count() {
    let r = runner().on("arn:t", Duration::ZERO, |req, n| {
        if n == 0 {
            Err(task_error("E", ""))
        } else {
            Ok(req.input.clone())
        }
    });
    let def = json!({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:t",
        "Retry": [{"ErrorEquals": ["E"], "IntervalSeconds": 1}],
        "Parameters": {"retry.$": "$$.State.RetryCount", "start.$": "$$.Execution.StartTime", "sm.$": "$$.StateMachine.Name", "input.$": "$$.Execution.Input"}, "End": true}}});
    let (o, _) = run_with(def, json!({"k": 1}), r).await;
    assert_eq!(
        output(o),
        json!({"retry": 1, "start": "2030-01-01T00:00:00Z", "sm": "sm", "input": {"k": 1}})
    );
    let clock = TokioClock::starting_at(datetime!(2030-01-01 00:00:00 UTC));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        lambent_workflows::clock::format_timestamp(clock.now()),
        "2030-01-01T00:00:01.500Z"
    );
}

#[tokio::test(start_paused = true)]
async fn transitions_count_states_entered_and_retries() {
    let r = runner().on("arn:t", Duration::ZERO, |_, n| {
        if n < 2 {
            Err(task_error("E", ""))
        } else {
            Ok(json!({"items": [1, 2, 3]}))
        }
    });
    let def = json!({"StartAt": "A", "States": {
        "A": {"Type": "Pass", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:t", "Retry": [{"ErrorEquals": ["E"]}], "Next": "M"},
        "M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": true}}}, "End": true}}});
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let exec = Execution::start(
        machine,
        runtime(r, Arc::new(MemorySink::default())),
        info(json!({})),
    );
    output(exec.run().await.unwrap());
    // A, T, 2 retries, M, 3 iterations of I
    assert_eq!(exec.state().transitions(), 1 + 1 + 2 + 1 + 3);
}

#[tokio::test(start_paused = true)]
async fn nested_maps_and_parallels() {
    let r = runner().on("arn:leaf", Duration::from_millis(10), |req, _| {
        Ok(json!(req.input.as_i64().unwrap() * 2))
    });
    let inner = json!({"Type": "Map", "MaxConcurrency": 2, "End": true,
        "ItemProcessor": {"StartAt": "P", "States": {"P": {"Type": "Parallel", "End": true, "Branches": [
            {"StartAt": "L", "States": {"L": {"Type": "Task", "Resource": "arn:leaf", "End": true}}},
            {"StartAt": "Id", "States": {"Id": {"Type": "Pass", "End": true}}}]}}}});
    let def = json!({"StartAt": "Outer", "States": {"Outer": {"Type": "Map", "MaxConcurrency": 3, "End": true,
        "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": inner}}}}});
    let input = json!([[1, 2], [3], [], [4, 5, 6]]);
    let (o, _) = run_with(def.clone(), input.clone(), r.clone()).await;
    assert_eq!(
        output(o),
        json!([[[2, 1], [4, 2]], [[6, 3]], [], [[8, 4], [10, 5], [12, 6]]])
    );
    assert!(r.max_in_flight.load(Ordering::SeqCst) <= 6);
    // and across a crash in the middle of it
    let r = runner().on("arn:leaf", Duration::from_millis(10), |req, _| {
        Ok(json!(req.input.as_i64().unwrap() * 2))
    });
    let o = crash_and_resume(&def, input, 8, r.clone()).await;
    assert_eq!(
        output(o),
        json!([[[2, 1], [4, 2]], [[6, 3]], [], [[8, 4], [10, 5], [12, 6]]])
    );
    assert!(r.calls_to("arn:leaf") >= 6);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_credentials_and_callback_failures_reach_the_runner_and_back() {
    let r = runner().on(
        "arn:aws:states:::lambda:invoke.waitForTaskToken",
        Duration::ZERO,
        |req, _| {
            assert_eq!(req.heartbeat, Some(Duration::from_secs(5)));
            assert_eq!(req.timeout, Some(Duration::from_secs(60)));
            assert_eq!(
                req.credentials,
                Some(json!({"RoleArn": "arn:aws:iam::1:role/x"}))
            );
            assert_eq!(req.input["token"], json!(req.task_token));
            Err(StatesError::new("States.HeartbeatTimeout", ""))
        },
    );
    let def = json!({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken", "HeartbeatSeconds": 5, "TimeoutSeconds": 60,
              "Credentials": {"RoleArn": "arn:aws:iam::1:role/x"}, "Parameters": {"token.$": "$$.Task.Token"},
              "Catch": [{"ErrorEquals": ["States.Timeout"], "Next": "No"}, {"ErrorEquals": ["States.TaskFailed"], "Next": "Yes"}], "End": true},
        "No": {"Type": "Fail"}, "Yes": {"Type": "Succeed"}}});
    let (o, sink) = run_with(def, json!({}), r.clone()).await;
    assert_eq!(
        output(o),
        json!({"Error": "States.HeartbeatTimeout", "Cause": ""})
    );
    assert!(sink.types().contains(&EventType::TaskTimedOut));
    assert_eq!(r.calls.lock().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn jsonata_wait_and_map_concurrency_expressions() {
    let r = runner().on("arn:w", Duration::from_secs(1), |_, _| Ok(json!(1)));
    let def = json!({"QueryLanguage": "JSONata", "StartAt": "W", "States": {
        "W": {"Type": "Wait", "Seconds": "{% $states.input.delay * 2 %}", "Next": "M"},
        "M": {"Type": "Map", "Items": "{% $states.input.list %}", "MaxConcurrency": "{% $states.input.c %}",
              "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:w", "End": true}}},
              "Output": "{% $count($states.result) %}", "End": true}}});
    let started = tokio::time::Instant::now();
    let (o, _) = run_with(
        def,
        json!({"delay": 3, "list": [1, 2, 3, 4, 5, 6], "c": 2}),
        r.clone(),
    )
    .await;
    assert_eq!(output(o), json!(6));
    assert_eq!(r.max_in_flight.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), Duration::from_secs(6 + 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_a_multi_threaded_runtime_in_real_time() {
    let r = runner().on("arn:w", Duration::from_millis(20), |req, _| {
        Ok(req.input.clone())
    });
    let def = json!({"StartAt": "M", "States": {"M": {"Type": "Map", "MaxConcurrency": 5, "End": true,
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "arn:w", "End": true}}}}}});
    let machine = Arc::new(StateMachine::from_value(&def).unwrap());
    let rt = Runtime {
        runner: r.clone(),
        clock: Arc::new(TokioClock::new()),
        sink: Arc::new(MemorySink::default()),
    };
    let exec = Arc::new(Execution::start(
        machine,
        rt,
        info(json!((0..20).collect::<Vec<_>>())),
    ));
    let started = std::time::Instant::now();
    let outcome = tokio::spawn({
        let exec = exec.clone();
        async move { exec.run().await }
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(output(outcome), json!((0..20).collect::<Vec<_>>()));
    // 20 items, 5 at a time, 20 ms each: about 80 ms, well under the 400 ms of one at a time
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.max_in_flight.load(Ordering::SeqCst), 5);
}
