"""boto3's lambda client managing event-source mappings on Lambent, for both sources it has:
a table's stream (DynamoDB stream ARN) and a queue (SQS ARN). Create (defaults, every
setting, AWS's errors), Get, List (filters, MaxItems/Marker paging, the paginator), Update
(settings, disabling, a destination; what a source does not take), Delete; and a stream
mapping made here running the function on a write."""

import json
import os
import time
import urllib.request

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ENDPOINT, REGION, ACCOUNT, app, arn, client

lam = client()
config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION, config=config)


def v1(method, path, body=None):
    """Lambent's own API (queues have no SQS API yet)."""
    req = urllib.request.Request(
        ENDPOINT + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + os.environ["LAMBENT_API_KEY"]},
    )
    with urllib.request.urlopen(req) as r:
        text = r.read()
        return json.loads(text) if text else None


def fails(code, fn, **kwargs):
    try:
        fn(**kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response)
        return e.response["Error"]["Message"]
    raise AssertionError(f"{fn.__name__} succeeded, {code} expected")


lam.create_function(FunctionName="handler", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/x",
                    Handler="app.handler", Code={"ZipFile": app(1)})
lam.create_function(FunctionName="other", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/x",
                    Handler="app.handler", Code={"ZipFile": app(2)})
stream_arn = ddb.create_table(
    TableName="orders",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
)["TableDescription"]["LatestStreamArn"]
ddb.create_table(
    TableName="plain",
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
v1("POST", "/v1/queues", {"name": "work"})
v1("POST", "/v1/queues", {"name": "failures"})
v1("POST", "/v1/topics", {"name": "alarms"})
queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:work"
failures_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:failures"
topic_arn = f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms"

# ---- Create: a stream with Lambda's defaults ----
s = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName="handler",
                                    StartingPosition="TRIM_HORIZON")
assert s["ResponseMetadata"]["HTTPStatusCode"] == 202, s
assert s["State"] == "Creating", s
assert s["EventSourceArn"] == stream_arn and s["FunctionArn"] == arn("handler"), s
assert (s["BatchSize"], s["MaximumBatchingWindowInSeconds"], s["StartingPosition"]) == (100, 0, "TRIM_HORIZON"), s
assert (s["MaximumRetryAttempts"], s["MaximumRecordAgeInSeconds"], s["BisectBatchOnFunctionError"]) == (-1, -1, False), s
assert s["ParallelizationFactor"] == 1 and s["FunctionResponseTypes"] == [], s
assert s["StateTransitionReason"] == "USER_INITIATED", s
assert s["EventSourceMappingArn"] == f"arn:aws:lambda:{REGION}:{ACCOUNT}:event-source-mapping:{s['UUID']}", s
stream_uuid = s["UUID"]

# ---- Create: every setting, by function ARN ----
full = lam.create_event_source_mapping(
    EventSourceArn=stream_arn, FunctionName=arn("other"), StartingPosition="LATEST", BatchSize=25,
    MaximumBatchingWindowInSeconds=2, MaximumRetryAttempts=4, MaximumRecordAgeInSeconds=3600,
    BisectBatchOnFunctionError=True, FunctionResponseTypes=["ReportBatchItemFailures"],
    DestinationConfig={"OnFailure": {"Destination": failures_arn}}, Enabled=False)
assert (full["BatchSize"], full["MaximumBatchingWindowInSeconds"], full["StartingPosition"]) == (25, 2, "LATEST"), full
assert (full["MaximumRetryAttempts"], full["MaximumRecordAgeInSeconds"]) == (4, 3600), full
assert full["BisectBatchOnFunctionError"] and full["FunctionResponseTypes"] == ["ReportBatchItemFailures"], full
assert full["DestinationConfig"] == {"OnFailure": {"Destination": failures_arn}}, full
assert lam.get_event_source_mapping(UUID=full["UUID"])["State"] == "Disabled"

# ---- Create: a queue ----
q = lam.create_event_source_mapping(EventSourceArn=queue_arn, FunctionName="handler", BatchSize=5)
assert q["State"] == "Creating" and q["EventSourceArn"] == queue_arn and q["BatchSize"] == 5, q
assert "StartingPosition" not in q, q
queue_uuid = q["UUID"]

# ---- Create: AWS's errors ----
msg = fails("ResourceConflictException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
            FunctionName="handler", StartingPosition="LATEST")
assert stream_uuid in msg, msg
msg = fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
            FunctionName="handler")
assert "StartingPosition" in msg, msg
msg = fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
            FunctionName="other", StartingPosition="TRIM_HORIZON", BatchSize=10001)
assert msg == ("1 validation error detected: Value '10001' at 'batchSize' failed to satisfy constraint: "
               "Member must have value less than or equal to 10000"), msg
msg = fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
            FunctionName="other", StartingPosition="TRIM_HORIZON", MaximumRecordAgeInSeconds=30)
assert "maximumRecordAgeInSeconds" in msg, msg
msg = fails("ResourceNotFoundException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
            FunctionName="missing", StartingPosition="LATEST")
assert msg == "Function not found: " + arn("missing"), msg
fails("InvalidParameterValueException", lam.create_event_source_mapping,
      EventSourceArn=stream_arn.replace("/stream/", "/stream/9"), FunctionName="other", StartingPosition="LATEST")
fails("InvalidParameterValueException", lam.create_event_source_mapping,
      EventSourceArn=f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/plain/stream/1", FunctionName="other",
      StartingPosition="LATEST")
fails("InvalidParameterValueException", lam.create_event_source_mapping,
      EventSourceArn=f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/s", FunctionName="other", StartingPosition="LATEST")
fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=queue_arn,
      FunctionName="other", StartingPosition="LATEST")
fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
      FunctionName="other", StartingPosition="LATEST",
      DestinationConfig={"OnFailure": {"Destination": f"arn:aws:sqs:{REGION}:{ACCOUNT}:nope"}})
fails("InvalidParameterValueException", lam.create_event_source_mapping, EventSourceArn=stream_arn,
      FunctionName="other", StartingPosition="LATEST", ParallelizationFactor=4)
fails("InvalidParameterValueException", lam.create_event_source_mapping,
      EventSourceArn=f"arn:aws:sqs:{REGION}:{ACCOUNT}:nope", FunctionName="handler")

# ---- Get and List ----
g = lam.get_event_source_mapping(UUID=stream_uuid)
assert g["State"] == "Enabled" and g["UUID"] == stream_uuid, g
fails("ResourceNotFoundException", lam.get_event_source_mapping, UUID="00000000-0000-0000-0000-000000000000")
everything = lam.list_event_source_mappings()["EventSourceMappings"]
assert [m["UUID"] for m in everything] == [stream_uuid, full["UUID"], queue_uuid], everything
by_arn = lam.list_event_source_mappings(EventSourceArn=stream_arn)["EventSourceMappings"]
assert {m["UUID"] for m in by_arn} == {stream_uuid, full["UUID"]}, by_arn
by_fn = lam.list_event_source_mappings(FunctionName="handler")["EventSourceMappings"]
assert {m["UUID"] for m in by_fn} == {stream_uuid, queue_uuid}, by_fn
both = lam.list_event_source_mappings(FunctionName=arn("handler"), EventSourceArn=queue_arn)
assert [m["UUID"] for m in both["EventSourceMappings"]] == [queue_uuid], both
page = lam.list_event_source_mappings(MaxItems=2)
assert len(page["EventSourceMappings"]) == 2 and "NextMarker" in page, page
rest = lam.list_event_source_mappings(MaxItems=2, Marker=page["NextMarker"])
assert [m["UUID"] for m in rest["EventSourceMappings"]] == [queue_uuid] and "NextMarker" not in rest, rest
paged = [m["UUID"] for p in lam.get_paginator("list_event_source_mappings").paginate(
    PaginationConfig={"PageSize": 1}) for m in p["EventSourceMappings"]]
assert paged == [stream_uuid, full["UUID"], queue_uuid], paged

# ---- Update ----
u = lam.update_event_source_mapping(UUID=stream_uuid, BatchSize=10, MaximumRetryAttempts=2,
                                    DestinationConfig={"OnFailure": {"Destination": topic_arn}})
assert u["ResponseMetadata"]["HTTPStatusCode"] == 202 and u["State"] == "Updating", u
assert (u["BatchSize"], u["MaximumRetryAttempts"]) == (10, 2), u
assert u["DestinationConfig"] == {"OnFailure": {"Destination": topic_arn}}, u
u = lam.update_event_source_mapping(UUID=stream_uuid, Enabled=False)
assert u["State"] == "Disabling", u
g = lam.get_event_source_mapping(UUID=stream_uuid)
assert (g["State"], g["BatchSize"], g["StartingPosition"]) == ("Disabled", 10, "TRIM_HORIZON"), g
assert lam.update_event_source_mapping(UUID=stream_uuid, Enabled=True)["State"] == "Enabling"
u = lam.update_event_source_mapping(UUID=stream_uuid, DestinationConfig={"OnFailure": {}})
assert u["DestinationConfig"] == {"OnFailure": {}}, u
uq = lam.update_event_source_mapping(UUID=queue_uuid, BatchSize=3, FunctionName="other",
                                     FunctionResponseTypes=["ReportBatchItemFailures"])
assert (uq["BatchSize"], uq["FunctionArn"]) == (3, arn("other")), uq
assert uq["FunctionResponseTypes"] == ["ReportBatchItemFailures"], uq
fails("InvalidParameterValueException", lam.update_event_source_mapping, UUID=queue_uuid, MaximumRetryAttempts=1)
fails("InvalidParameterValueException", lam.update_event_source_mapping, UUID=stream_uuid, BatchSize=20000)
fails("ResourceNotFoundException", lam.update_event_source_mapping, UUID=stream_uuid, FunctionName="missing")
fails("ResourceNotFoundException", lam.update_event_source_mapping, UUID="00000000-0000-0000-0000-000000000000", BatchSize=1)

# ---- The stream mapping runs its function on a write ----
ddb.put_item(TableName="orders", Item={"pk": {"S": "from-boto3"}})
deadline = time.time() + 30
while True:
    acts = v1("GET", "/v1/activations?function=handler&limit=100")["activations"]
    if any(a["trigger"] == "dynamodb" and "from-boto3" in a["logs"] for a in acts):
        break
    assert time.time() < deadline, acts
    time.sleep(0.2)

# ---- Delete ----
d = lam.delete_event_source_mapping(UUID=stream_uuid)
assert d["ResponseMetadata"]["HTTPStatusCode"] == 202 and d["State"] == "Deleting", d
fails("ResourceNotFoundException", lam.get_event_source_mapping, UUID=stream_uuid)
fails("ResourceNotFoundException", lam.delete_event_source_mapping, UUID=stream_uuid)
assert lam.delete_event_source_mapping(UUID=queue_uuid)["State"] == "Deleting"
left = lam.list_event_source_mappings()["EventSourceMappings"]
assert [m["UUID"] for m in left] == [full["UUID"]], left
# The deleted stream mapping can be made again.
again = lam.create_event_source_mapping(EventSourceArn=stream_arn, FunctionName="handler",
                                        StartingPosition="LATEST")
assert again["UUID"] != stream_uuid, again

print("event source mappings: ok")
