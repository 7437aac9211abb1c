"""boto3's stepfunctions client against Lambent: state machines on real functions, Retry timing
and Catch, Map with MaxConcurrency, a failing Parallel branch, callbacks (answered from another
client, and timing out), StartSyncExecution, a nested .sync execution, idempotent starts,
paginated history, and definitions refused with their precise errors."""

import json
import os
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ENDPOINT, REGION, client, create, zip_of

ACCOUNT = "default"
ROLE = "arn:aws:iam::000000000000:role/sfn"


def sfn_client():
    # No `sync-` host prefix for StartSyncExecution: the endpoint is the Lambent server.
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"},
                                    inject_host_prefix=False)
    return boto3.client("stepfunctions", endpoint_url=ENDPOINT, region_name=REGION, config=config)


sfn = sfn_client()
other = sfn_client()  # a second client, as another process would be
lam = client()


def lambent(method, path, body=None):
    req = urllib.request.Request(
        f"{ENDPOINT}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {os.environ['LAMBENT_API_KEY']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def fn_arn(name):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def machine(name, definition, kind="STANDARD"):
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE,
                                    type=kind)["stateMachineArn"]


def run(arn, payload, name=None, timeout=60):
    kwargs = {"name": name} if name else {}
    e = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload), **kwargs)
    deadline = time.time() + timeout
    while True:
        d = sfn.describe_execution(executionArn=e["executionArn"])
        if d["status"] != "RUNNING":
            return d
        assert time.time() < deadline, d
        time.sleep(0.05)


def history(execution_arn):
    events, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = sfn.get_execution_history(executionArn=execution_arn, maxResults=20, **kwargs)
        events += page["events"]
        token = page.get("nextToken")
        if not token:
            return events


def expect_error(code, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        assert e.response["Error"]["Code"] == code, e.response
        return e.response["Error"]["Message"]
    raise AssertionError(f"expected {code}")


# --- the functions ---
create(lam, "add", zip_of({"app.py": """
def handler(event, context):
    return {"n": event.get("n", 0) + 1, "seen": event}
"""}))
create(lam, "flaky", zip_of({"app.py": """
class Flaky(Exception):
    pass
def handler(event, context):
    raise Flaky("not today")
"""}))
create(lam, "nap", zip_of({"app.py": """
import time
def handler(event, context):
    time.sleep(0.2)
    return event
"""}), Timeout=30)
for f in ["add", "flaky", "nap"]:
    lam.get_waiter("function_active_v2").wait(FunctionName=f)

# --- every basic state type on a real function ---
basic = machine("basic", {
    "Comment": "Pass, Task (ARN and lambda:invoke), Choice, Wait, Succeed",
    "StartAt": "Init",
    "States": {
        "Init": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.start", "Next": "Add"},
        "Add": {"Type": "Task", "Resource": fn_arn("add"), "InputPath": "$.start",
                "ResultSelector": {"n.$": "$.n"}, "ResultPath": "$.added", "Next": "Invoke"},
        "Invoke": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"FunctionName": "add", "Payload": {"n.$": "$.added.n"}},
                   "ResultPath": "$.invoked", "Next": "Big?"},
        "Big?": {"Type": "Choice", "Choices": [
            {"Variable": "$.invoked.Payload.n", "NumericGreaterThanEquals": 3, "Next": "Nap"}],
            "Default": "Small"},
        "Small": {"Type": "Fail", "Error": "TooSmall", "Cause": "n < 3"},
        "Nap": {"Type": "Wait", "Seconds": 1, "Next": "Done"},
        "Done": {"Type": "Succeed", "OutputPath": "$.invoked"},
    },
})
t0 = time.time()
d = run(basic, {"x": "y"})
assert d["status"] == "SUCCEEDED", d
assert time.time() - t0 >= 1.0
out = json.loads(d["output"])
assert out["Payload"]["n"] == 3 and out["StatusCode"] == 200, out
assert out["ExecutedVersion"] == "$LATEST" and "SdkHttpMetadata" in out, out
events = history(d["executionArn"])
types = [e["type"] for e in events]
assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded", types
assert [e["id"] for e in events] == list(range(1, len(events) + 1)), events
for t in ["PassStateEntered", "TaskStateEntered", "ChoiceStateEntered", "WaitStateEntered",
          "SucceedStateEntered"]:
    assert t in types, (t, types)
newest = sfn.get_execution_history(executionArn=d["executionArn"], reverseOrder=True,
                                   maxResults=1)
assert newest["events"][0]["type"] == "ExecutionSucceeded", newest
assert sfn.describe_state_machine(stateMachineArn=basic)["type"] == "STANDARD"
print("state types: ok")

# --- Retry timing (1 s, then 2 s) and Catch routing ---
retry = machine("retry", {
    "StartAt": "Try",
    "States": {
        "Try": {"Type": "Task", "Resource": fn_arn("flaky"),
                "Retry": [{"ErrorEquals": ["Flaky"], "IntervalSeconds": 1, "BackoffRate": 2,
                           "MaxAttempts": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.caught",
                           "Next": "Caught"}],
                "End": True},
        "Caught": {"Type": "Pass", "End": True},
    },
})
d = run(retry, {"k": 1})
assert d["status"] == "SUCCEEDED", d
out = json.loads(d["output"])
assert out["caught"]["Error"] == "Flaky", out
assert "not today" in out["caught"]["Cause"], out
events = history(d["executionArn"])
starts = [e["timestamp"] for e in events if e["type"] == "LambdaFunctionScheduled"]
assert len(starts) == 3, [e["type"] for e in events]
gaps = [(b - a).total_seconds() for a, b in zip(starts, starts[1:])]
assert 0.9 <= gaps[0] <= 1.6 and 1.9 <= gaps[1] <= 2.6, gaps
print(f"retry: ok (gaps {gaps[0]:.2f} s, {gaps[1]:.2f} s)")

# --- Map over 100 items, 10 at a time ---
mapper = machine("mapper", {
    "StartAt": "Each",
    "States": {"Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 10,
                        "ItemProcessor": {"StartAt": "Nap", "States": {
                            "Nap": {"Type": "Task", "Resource": fn_arn("nap"), "End": True}}},
                        "End": True}},
})
since = int(time.time() * 1000)
t0 = time.time()
d = run(mapper, {"items": [{"i": i} for i in range(100)]}, timeout=120)
wall = time.time() - t0
assert d["status"] == "SUCCEEDED", d
assert json.loads(d["output"]) == [{"i": i} for i in range(100)]
runs = lambent("GET", f"/v1/activations?function=nap&since_ms={since}&limit=1000")["activations"]
assert len(runs) == 100, len(runs)
edges = sorted([(a["start_ms"], 1) for a in runs] + [(a["end_ms"], -1) for a in runs])
level = peak = 0
for _, step in edges:
    level += step
    peak = max(peak, level)
assert peak <= 10, peak
assert wall >= 100 / 10 * 0.2, wall
print(f"map: ok (100 items in {wall:.2f} s, at most {peak} at a time)")

# --- a failing Parallel branch fails the state ---
par = machine("par", {
    "StartAt": "Both",
    "States": {"Both": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "A", "States": {"A": {"Type": "Task", "Resource": fn_arn("add"), "End": True}}},
        {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": fn_arn("flaky"), "End": True}}},
    ]}},
})
d = run(par, {"n": 1})
assert d["status"] == "FAILED" and d["error"] == "Flaky", d
print("parallel: ok")

# --- callbacks: answered by another client; one timing out ---
lambent("POST", "/v1/queues", {"name": "callbacks"})
callback = machine("callback", {
    "StartAt": "Ask",
    "States": {"Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                       "Parameters": {"QueueUrl": f"http://localhost/{ACCOUNT}/callbacks",
                                      "MessageBody": {"token.$": "$$.Task.Token", "q.$": "$.q"}},
                       "HeartbeatSeconds": 5, "TimeoutSeconds": 30, "End": True}},
})
e = sfn.start_execution(stateMachineArn=callback, input=json.dumps({"q": "answer?"}))
got = lambent("POST", "/v1/queues/callbacks/receive", {"wait": 10})["messages"]
assert len(got) == 1, got
body = json.loads(got[0]["body"])
assert body["q"] == "answer?", body
other.send_task_heartbeat(taskToken=body["token"])
other.send_task_success(taskToken=body["token"], output=json.dumps({"a": 42}))
deadline = time.time() + 10
while sfn.describe_execution(executionArn=e["executionArn"])["status"] == "RUNNING":
    assert time.time() < deadline
    time.sleep(0.05)
d = sfn.describe_execution(executionArn=e["executionArn"])
assert d["status"] == "SUCCEEDED" and json.loads(d["output"]) == {"a": 42}, d
expect_error("TaskTimedOut", other.send_task_success, taskToken=body["token"], output="{}")
expect_error("TaskDoesNotExist", other.send_task_success, taskToken="no-such-token", output="{}")

timeout = machine("timeout", {
    "StartAt": "Ask",
    "States": {"Ask": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                       "Parameters": {"QueueUrl": "callbacks",
                                      "MessageBody": {"token.$": "$$.Task.Token"}},
                       "HeartbeatSeconds": 1, "End": True}},
})
d = run(timeout, {})
assert d["status"] == "FAILED" and d["error"] == "States.HeartbeatTimeout", d
late = json.loads(lambent("POST", "/v1/queues/callbacks/receive", {"wait": 5})["messages"][0]["body"])
expect_error("TaskTimedOut", other.send_task_failure, taskToken=late["token"], error="E")
print("callbacks: ok")

# --- StartSyncExecution on an Express machine ---
express = machine("express", {
    "StartAt": "Add", "States": {"Add": {"Type": "Task", "Resource": fn_arn("add"), "End": True}},
}, kind="EXPRESS")
r = sfn.start_sync_execution(stateMachineArn=express, input=json.dumps({"n": 41}))
assert r["status"] == "SUCCEEDED", r
assert json.loads(r["output"])["n"] == 42, r
assert ":express:express:" in r["executionArn"], r
r = sfn.start_sync_execution(stateMachineArn=machine("express-fail", {
    "StartAt": "F", "States": {"F": {"Type": "Task", "Resource": fn_arn("flaky"), "End": True}},
}, kind="EXPRESS"), input="{}")
assert r["status"] == "FAILED" and r["error"] == "Flaky", r
expect_error("StateMachineTypeNotSupported", sfn.start_sync_execution, stateMachineArn=basic)
print("sync: ok")

# --- a nested .sync execution ---
child = machine("child", {
    "StartAt": "Add", "States": {"Add": {"Type": "Task", "Resource": fn_arn("add"), "End": True}},
})
parent = machine("parent", {
    "StartAt": "Child",
    "States": {"Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
                         "Parameters": {"StateMachineArn": child, "Input": {"n.$": "$.n"}},
                         "ResultSelector": {"n.$": "$.Output.n", "status.$": "$.Status"},
                         "End": True}},
})
d = run(parent, {"n": 9})
assert d["status"] == "SUCCEEDED", d
assert json.loads(d["output"]) == {"n": 10, "status": "SUCCEEDED"}, d
children = sfn.list_executions(stateMachineArn=child)["executions"]
assert len(children) == 1 and children[0]["status"] == "SUCCEEDED", children
print("nested: ok")

# --- StartExecution is idempotent by name (while running, with the same input) ---
slow = machine("slow", {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 2, "End": True}}})
a = sfn.start_execution(stateMachineArn=slow, name="once", input='{"a": 1}')
b = sfn.start_execution(stateMachineArn=slow, name="once", input='{"a":1}')
assert a["executionArn"] == b["executionArn"], (a, b)
expect_error("ExecutionAlreadyExists", sfn.start_execution, stateMachineArn=slow, name="once",
             input='{"a": 2}')
stopped = sfn.start_execution(stateMachineArn=slow, name="stopped")
sfn.stop_execution(executionArn=stopped["executionArn"], error="Enough", cause="asked")
d = sfn.describe_execution(executionArn=stopped["executionArn"])
assert d["status"] == "ABORTED" and d["error"] == "Enough", d
page = sfn.list_executions(stateMachineArn=slow, maxResults=1)
assert len(page["executions"]) == 1 and "nextToken" in page, page
rest = sfn.list_executions(stateMachineArn=slow, maxResults=1, nextToken=page["nextToken"])
assert rest["executions"][0]["name"] != page["executions"][0]["name"], rest
print("executions: ok")

# --- definitions refused with their precise error; the API's own errors ---
msg = expect_error("InvalidDefinition", sfn.create_state_machine, name="bad", roleArn=ROLE,
                   definition=json.dumps({"StartAt": "A", "States": {
                       "A": {"Type": "Pass", "Next": "Nowhere"}}}))
assert "MISSING_TRANSITION_TARGET" in msg and "/States/A/Next" in msg, msg
msg = expect_error("InvalidDefinition", sfn.create_state_machine, name="bad", roleArn=ROLE,
                   definition="{not json")
assert "INVALID_JSON_DESCRIPTION" in msg or "JSON" in msg, msg
v = sfn.validate_state_machine_definition(definition=json.dumps({"StartAt": "A", "States": {
    "A": {"Type": "Pass", "End": True}, "B": {"Type": "Pass", "End": True}}}))
assert v["result"] == "FAIL", v
assert v["diagnostics"][0]["code"] == "UNREACHABLE_STATE", v
assert sfn.validate_state_machine_definition(
    definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))["result"] == "OK"
expect_error("StateMachineAlreadyExists", sfn.create_state_machine, name="basic", roleArn=ROLE,
             definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
expect_error("InvalidName", sfn.create_state_machine, name="bad name", roleArn=ROLE,
             definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
missing = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:missing"
expect_error("StateMachineDoesNotExist", sfn.describe_state_machine, stateMachineArn=missing)
expect_error("InvalidArn", sfn.describe_state_machine, stateMachineArn="not-an-arn")
expect_error("ExecutionDoesNotExist", sfn.describe_execution,
             executionArn=f"arn:aws:states:{REGION}:{ACCOUNT}:execution:basic:none")
sfn.update_state_machine(stateMachineArn=slow, definition=json.dumps(
    {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": 7, "End": True}}}))
assert json.loads(run(slow, {})["output"]) == 7
names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
assert "basic" in names and "slow" in names, names
sfn.delete_state_machine(stateMachineArn=slow)
expect_error("StateMachineDoesNotExist", sfn.describe_state_machine, stateMachineArn=slow)
print("errors: ok")

print("stepfunctions: ok")
