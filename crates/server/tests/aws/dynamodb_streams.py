"""boto3's dynamodbstreams client against Lambent: ListStreams, DescribeStream (one shard),
GetShardIterator with every iterator type, GetRecords with the Streams record shape for each
StreamViewType, paging with NextShardIterator, TTL deletions marked as the service's, and the
errors for bad ARNs, shards, iterators and sequence numbers."""

import time

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ENDPOINT, REGION

config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION, config=config)
streams = boto3.client("dynamodbstreams", endpoint_url=ENDPOINT, region_name=REGION, config=config)


def fails(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response)
        return e.response
    raise AssertionError(f"{fn.__name__} succeeded, {code} expected")


def create(name, view):
    spec = {"StreamEnabled": True, "StreamViewType": view} if view else {"StreamEnabled": False}
    out = ddb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=spec,
    )["TableDescription"]
    return out.get("LatestStreamArn")


arn = create("events", "NEW_AND_OLD_IMAGES")
keys_arn = create("keys", "KEYS_ONLY")
assert create("plain", None) is None
desc = ddb.describe_table(TableName="events")["Table"]
assert desc["LatestStreamArn"] == arn, desc
assert desc["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
assert arn.endswith("/stream/" + desc["LatestStreamLabel"]), arn

# ---- ListStreams ----
listed = streams.list_streams()["Streams"]
assert sorted(s["TableName"] for s in listed) == ["events", "keys"], listed
assert {s["StreamArn"] for s in listed} == {arn, keys_arn}
assert streams.list_streams(TableName="events")["Streams"][0]["StreamArn"] == arn
assert streams.list_streams(TableName="plain")["Streams"] == []
page = streams.list_streams(Limit=1)
assert len(page["Streams"]) == 1 and page["LastEvaluatedStreamArn"] == page["Streams"][0]["StreamArn"]
rest = streams.list_streams(Limit=1, ExclusiveStartStreamArn=page["LastEvaluatedStreamArn"])
assert len(rest["Streams"]) == 1 and "LastEvaluatedStreamArn" not in rest, rest
assert rest["Streams"][0]["StreamArn"] != page["Streams"][0]["StreamArn"]

# ---- Writes: insert, modify, remove, and a transaction ----
ddb.put_item(TableName="events", Item={"pk": {"S": "a"}, "v": {"N": "1"}})
ddb.update_item(TableName="events", Key={"pk": {"S": "a"}}, UpdateExpression="SET v = v + :one",
                ExpressionAttributeValues={":one": {"N": "1"}})
ddb.put_item(TableName="events", Item={"pk": {"S": "b"}, "v": {"S": "x"}})
ddb.delete_item(TableName="events", Key={"pk": {"S": "a"}})
ddb.put_item(TableName="keys", Item={"pk": {"S": "k"}, "big": {"S": "y" * 100}})

# ---- DescribeStream ----
sd = streams.describe_stream(StreamArn=arn)["StreamDescription"]
assert sd["StreamStatus"] == "ENABLED" and sd["StreamViewType"] == "NEW_AND_OLD_IMAGES", sd
assert sd["TableName"] == "events" and sd["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
assert len(sd["Shards"]) == 1, sd
shard = sd["Shards"][0]
assert "EndingSequenceNumber" not in shard["SequenceNumberRange"]
shard_id = shard["ShardId"]
assert streams.describe_stream(StreamArn=arn, ExclusiveStartShardId=shard_id)["StreamDescription"]["Shards"] == []


def iterator(kind, seq=None, stream=arn, shard=shard_id):
    args = {"StreamArn": stream, "ShardId": shard, "ShardIteratorType": kind}
    if seq is not None:
        args["SequenceNumber"] = seq
    return streams.get_shard_iterator(**args)["ShardIterator"]


# ---- GetRecords from the horizon: the shape of each record ----
out = streams.get_records(ShardIterator=iterator("TRIM_HORIZON"))
records = out["Records"]
assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "INSERT", "REMOVE"], records
seqs = [r["dynamodb"]["SequenceNumber"] for r in records]
assert seqs == sorted(seqs) and len(set(seqs)) == 4, seqs
assert seqs[0] == shard["SequenceNumberRange"]["StartingSequenceNumber"]
for r in records:
    assert r["eventVersion"] == "1.1" and r["eventSource"] == "aws:dynamodb", r
    assert r["awsRegion"] == REGION and r["eventID"], r
    d = r["dynamodb"]
    assert d["StreamViewType"] == "NEW_AND_OLD_IMAGES" and d["SizeBytes"] > 0, d
    assert hasattr(d["ApproximateCreationDateTime"], "year"), d  # boto3 parses it as a time
ins, mod, _, rem = records
assert ins["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
assert ins["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "v": {"N": "1"}} and "OldImage" not in ins["dynamodb"]
assert mod["dynamodb"]["OldImage"]["v"] == {"N": "1"} and mod["dynamodb"]["NewImage"]["v"] == {"N": "2"}
assert rem["dynamodb"]["OldImage"]["v"] == {"N": "2"} and "NewImage" not in rem["dynamodb"]
assert len({r["eventID"] for r in records}) == 4

# Nothing more yet: an empty page and an iterator that still works.
nxt = out["NextShardIterator"]
empty = streams.get_records(ShardIterator=nxt)
assert empty["Records"] == [] and empty["NextShardIterator"]

# ---- Limit and paging ----
page = streams.get_records(ShardIterator=iterator("TRIM_HORIZON"), Limit=3)
assert [r["dynamodb"]["SequenceNumber"] for r in page["Records"]] == seqs[:3]
page = streams.get_records(ShardIterator=page["NextShardIterator"], Limit=3)
assert [r["dynamodb"]["SequenceNumber"] for r in page["Records"]] == seqs[3:]

# ---- AT_ and AFTER_SEQUENCE_NUMBER, LATEST ----
at = streams.get_records(ShardIterator=iterator("AT_SEQUENCE_NUMBER", seqs[1]))["Records"]
assert [r["dynamodb"]["SequenceNumber"] for r in at] == seqs[1:]
after = streams.get_records(ShardIterator=iterator("AFTER_SEQUENCE_NUMBER", seqs[1]))["Records"]
assert [r["dynamodb"]["SequenceNumber"] for r in after] == seqs[2:]
latest = iterator("LATEST")
assert streams.get_records(ShardIterator=latest)["Records"] == []
ddb.put_item(TableName="events", Item={"pk": {"S": "c"}})
new = streams.get_records(ShardIterator=latest)["Records"]
assert [r["dynamodb"]["Keys"] for r in new] == [{"pk": {"S": "c"}}], new
assert streams.get_records(ShardIterator=nxt)["Records"][0]["dynamodb"]["Keys"] == {"pk": {"S": "c"}}

# ---- KEYS_ONLY carries no image ----
kshard = streams.describe_stream(StreamArn=keys_arn)["StreamDescription"]["Shards"][0]["ShardId"]
krec = streams.get_records(ShardIterator=iterator("TRIM_HORIZON", stream=keys_arn, shard=kshard))["Records"]
assert len(krec) == 1 and krec[0]["dynamodb"]["Keys"] == {"pk": {"S": "k"}}, krec
assert "NewImage" not in krec[0]["dynamodb"] and "OldImage" not in krec[0]["dynamodb"]
assert krec[0]["dynamodb"]["StreamViewType"] == "KEYS_ONLY"

# ---- TTL: the sweep's deletions are the service's, a request's are not ----
ddb.update_time_to_live(TableName="events",
                        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
before_ttl = iterator("LATEST")
ddb.delete_item(TableName="events", Key={"pk": {"S": "b"}})
ddb.put_item(TableName="events", Item={"pk": {"S": "old"}, "expires": {"N": str(int(time.time()) - 60)}})
deadline = time.time() + 30
while "Item" in ddb.get_item(TableName="events", Key={"pk": {"S": "old"}}):
    assert time.time() < deadline, "the expired item is still there after 30 s"
    time.sleep(0.5)
ttl_records = streams.get_records(ShardIterator=before_ttl)["Records"]
assert [(r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in ttl_records] == [
    ("REMOVE", "b"), ("INSERT", "old"), ("REMOVE", "old")], ttl_records
removed, inserted, expired = ttl_records
assert "userIdentity" not in inserted and "userIdentity" not in removed, removed
assert expired["userIdentity"] == {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}, expired
assert expired["dynamodb"]["OldImage"]["pk"] == {"S": "old"}, expired

# ---- Errors ----
fails("ResourceNotFoundException", streams.describe_stream, StreamArn=arn.rsplit("/", 1)[0] + "/stream/1")
fails("ResourceNotFoundException", streams.describe_stream,
      StreamArn=arn.replace("table/events", "table/plain"))
fails("ResourceNotFoundException", iterator, "TRIM_HORIZON", shard="shardId-00000000000000000000-00000000")
fails("ValidationException", iterator, "AT_SEQUENCE_NUMBER")
fails("ValidationException", iterator, "AT_SEQUENCE_NUMBER", "9" * 30)
fails("ValidationException", iterator, "AT_SEQUENCE_NUMBER", "0" * 20 + "x")
fails("ValidationException", iterator, "SOMEWHERE")
fails("ValidationException", streams.get_records, ShardIterator="not-an-iterator")
fails("ValidationException", streams.get_records, ShardIterator=nxt, Limit=1001)

# A table deleted and created again: the old stream and its iterators are gone.
ddb.delete_table(TableName="events")
fails("ResourceNotFoundException", streams.get_records, ShardIterator=nxt)
fails("ResourceNotFoundException", streams.describe_stream, StreamArn=arn)

print("dynamodb streams: ok")
