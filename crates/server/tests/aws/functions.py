"""boto3 against Lambent: create, get, list with pagination, update code and configuration,
invoke (sync, with log tail, function error, async, dry run), the AWS exceptions, delete."""

import base64
import json
import os
import time
import urllib.request

from lambent_boto3 import arn, app, client, create, invoke, sha256_b64, zip_of

lam = client()

code = app("one")
made = create(lam, "hello", code, Environment={"Variables": {"GREETING": "hi"}},
              MemorySize=256, Timeout=5, Description="the greeter")
assert made["FunctionArn"] == arn("hello"), made
assert made["Version"] == "$LATEST" and made["State"] == "Active", made
assert made["CodeSha256"] == sha256_b64(code), made
assert made["MemorySize"] == 256 and made["Timeout"] == 5, made
lam.get_waiter("function_active_v2").wait(FunctionName="hello")

got = lam.get_function(FunctionName="hello")
assert got["Configuration"]["Environment"]["Variables"] == {"GREETING": "hi"}, got
assert got["Configuration"]["Description"] == "the greeter", got
assert lam.get_function_configuration(FunctionName=arn("hello"))["Handler"] == "app.handler"

# Synchronous, with the log tail.
r, out = invoke(lam, "hello", {"x": 1}, LogType="Tail")
assert r["StatusCode"] == 200 and "FunctionError" not in r, r
assert r["ExecutedVersion"] == "$LATEST", r
assert out["echo"] == {"x": 1} and out["greeting"] == "hi" and out["version"] == "one", out
assert out["arn"] == arn("hello"), out
logs = base64.b64decode(r["LogResult"]).decode()
assert 'handling {"x": 1}' in logs and "REPORT RequestId" in logs, logs
assert len(base64.b64decode(r["LogResult"])) <= 4096

# A function error is a 200 with X-Amz-Function-Error.
r, out = invoke(lam, "hello", {"fail": True})
assert r["StatusCode"] == 200 and r["FunctionError"] == "Unhandled", r
assert out["errorType"] == "ValueError" and out["errorMessage"] == "asked to fail", out

# Dry run: the function exists and may be invoked; nothing runs.
r = lam.invoke(FunctionName="hello", InvocationType="DryRun")
assert r["StatusCode"] == 204, r

# Event: accepted at once, run in the background (seen in Lambent's activation records).
r = lam.invoke(FunctionName="hello", InvocationType="Event", Payload=json.dumps({"async": 1}))
assert r["StatusCode"] == 202, r
request_id = r["ResponseMetadata"]["RequestId"]
deadline = time.time() + 20
while True:
    req = urllib.request.Request(
        f"{os.environ['LAMBENT_URL']}/v1/activations/{request_id}",
        headers={"Authorization": f"Bearer {os.environ['LAMBENT_API_KEY']}"})
    try:
        activation = json.load(urllib.request.urlopen(req))
        assert activation["trigger"] == "async" and activation["status"] == "success", activation
        break
    except urllib.error.HTTPError as e:
        assert e.code == 404 and time.time() < deadline, f"async invocation never ran: {e}"
        time.sleep(0.1)

# Payload problems are the caller's: AWS's exception classes.
try:
    lam.invoke(FunctionName="hello", Payload=b"{not json")
    raise AssertionError("invalid JSON was accepted")
except lam.exceptions.InvalidRequestContentException:
    pass
try:
    lam.invoke(FunctionName="hello", Payload=json.dumps({"big": "x" * (7 * 1024 * 1024)}))
    raise AssertionError("a 7 MB payload was accepted")
except lam.exceptions.RequestTooLargeException:
    pass

# Updates.
lam.update_function_configuration(FunctionName="hello", Environment={"Variables": {"GREETING": "hello"}})
lam.get_waiter("function_updated_v2").wait(FunctionName="hello")
_, out = invoke(lam, "hello", {})
assert out["greeting"] == "hello" and out["version"] == "one", out
updated = lam.update_function_code(FunctionName="hello", ZipFile=app("two"))
assert updated["CodeSha256"] == sha256_b64(app("two")), updated
_, out = invoke(lam, "hello", {})
assert out["version"] == "two" and out["greeting"] == "hello", out
try:
    lam.update_function_code(FunctionName="hello", ZipFile=app("three"), RevisionId="stale")
    raise AssertionError("a stale RevisionId was accepted")
except lam.exceptions.PreconditionFailedException:
    pass

# Errors as boto3 exception classes.
try:
    lam.invoke(FunctionName="missing", Payload=b"{}")
    raise AssertionError("invoking a missing function worked")
except lam.exceptions.ResourceNotFoundException as e:
    assert "missing" in e.response["Error"]["Message"], e.response
try:
    create(lam, "hello", code)
    raise AssertionError("creating an existing function worked")
except lam.exceptions.ResourceConflictException:
    pass
try:
    create(lam, "toobig", code, MemorySize=20000)
    raise AssertionError("20000 MB was accepted")
except lam.exceptions.InvalidParameterValueException as e:
    assert "memory" in e.response["Error"]["Message"], e.response

# Reserved concurrency 0 stops the function: TooManyRequestsException, with Lambda's Reason.
assert lam.put_function_concurrency(FunctionName="hello", ReservedConcurrentExecutions=0)[
    "ReservedConcurrentExecutions"] == 0
assert lam.get_function_concurrency(FunctionName="hello")["ReservedConcurrentExecutions"] == 0
try:
    lam.invoke(FunctionName="hello", Payload=b"{}")
    raise AssertionError("a function with reserved concurrency 0 ran")
except lam.exceptions.TooManyRequestsException as e:
    assert e.response["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded", e.response
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 429
lam.delete_function_concurrency(FunctionName="hello")
r, _ = invoke(lam, "hello", {})
assert r["StatusCode"] == 200

# Listing, with pagination.
for name in ["page-a", "page-b", "page-c"]:
    create(lam, name, zip_of({"app.py": "def handler(e, c):\n    return 1\n"}))
first = lam.list_functions(MaxItems=2)
assert len(first["Functions"]) == 2 and "NextMarker" in first, first
names = [f["FunctionName"]
         for page in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 2})
         for f in page["Functions"]]
assert names == ["hello", "page-a", "page-b", "page-c"], names

# Delete.
lam.delete_function(FunctionName="page-b")
try:
    lam.get_function(FunctionName="page-b")
    raise AssertionError("a deleted function is still there")
except lam.exceptions.ResourceNotFoundException:
    pass
names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
assert names == ["hello", "page-a", "page-c"], names
print("functions: ok")
