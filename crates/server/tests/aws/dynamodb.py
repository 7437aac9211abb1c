"""boto3's dynamodb client and resource against Lambent: tables with a GSI and an LSI, every
item operation with conditions and ReturnValues, number precision, Query and Scan pagination
visiting every item once, parallel scan segments, batches, transactions (one cancelled by a
failing condition, with per-item reasons; idempotent tokens), and bad requests refused with
DynamoDB's errors while the table stays unchanged."""

import threading
from decimal import Decimal

import boto3
import botocore.config
import botocore.exceptions
from boto3.dynamodb.conditions import Attr, Key

from lambent_boto3 import ENDPOINT, REGION

config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
ddb = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION, config=config)
res = boto3.resource("dynamodb", endpoint_url=ENDPOINT, region_name=REGION, config=config)


def fails(code, fn, *args, contains=None, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response)
        if contains:
            assert contains in e.response["Error"]["Message"], e.response["Error"]["Message"]
        return e.response
    raise AssertionError(f"{fn.__name__} succeeded, {code} expected")


# ---- Tables ----
ddb.create_table(
    TableName="orders",
    KeySchema=[{"AttributeName": "customer", "KeyType": "HASH"},
               {"AttributeName": "order", "KeyType": "RANGE"}],
    AttributeDefinitions=[{"AttributeName": "customer", "AttributeType": "S"},
                          {"AttributeName": "order", "AttributeType": "N"},
                          {"AttributeName": "status", "AttributeType": "S"},
                          {"AttributeName": "total", "AttributeType": "N"}],
    GlobalSecondaryIndexes=[{"IndexName": "by_status",
                             "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                                           {"AttributeName": "order", "KeyType": "RANGE"}],
                             "Projection": {"ProjectionType": "ALL"}}],
    LocalSecondaryIndexes=[{"IndexName": "by_total",
                            "KeySchema": [{"AttributeName": "customer", "KeyType": "HASH"},
                                          {"AttributeName": "total", "KeyType": "RANGE"}],
                            "Projection": {"ProjectionType": "KEYS_ONLY"}}],
    BillingMode="PAY_PER_REQUEST")
fails("ResourceInUseException", ddb.create_table, TableName="orders",
      KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
      AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
      BillingMode="PAY_PER_REQUEST")
fails("ValidationException", ddb.create_table, TableName="a b",
      KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
      AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
      BillingMode="PAY_PER_REQUEST", contains="tableName")
table = res.Table("orders")
table.wait_until_exists()
desc = ddb.describe_table(TableName="orders")["Table"]
assert desc["TableStatus"] == "ACTIVE" and desc["GlobalSecondaryIndexes"][0]["IndexName"] == "by_status", desc
fails("ResourceNotFoundException", ddb.describe_table, TableName="nope")

for i in range(7):
    ddb.create_table(TableName=f"page{i}", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "B"}],
                     BillingMode="PAY_PER_REQUEST")
names = []
for page in ddb.get_paginator("list_tables").paginate(PaginationConfig={"PageSize": 3}):
    names += page["TableNames"]
assert names == ["orders"] + [f"page{i}" for i in range(7)] or sorted(names) == sorted(["orders"] + [f"page{i}" for i in range(7)]), names
assert len(names) == len(set(names)) == 8, names

# ---- Items: put, get, conditions, return values, precision ----
precise = Decimal("12345678901234567890.123456789012345678")
table.put_item(Item={"customer": "ann", "order": 1, "status": "open", "total": precise,
                     "tags": {"a", "b"}, "blob": b"\x00\xff", "nested": {"l": [1, "x", None, True]}})
got = table.get_item(Key={"customer": "ann", "order": 1})["Item"]
assert got["total"] == precise and got["tags"] == {"a", "b"} and got["blob"].value == b"\x00\xff", got
assert got["nested"] == {"l": [1, "x", None, True]}, got
fails("ConditionalCheckFailedException", table.put_item,
      Item={"customer": "ann", "order": 1, "status": "x"},
      ConditionExpression=Attr("customer").not_exists())
r = fails("ConditionalCheckFailedException", ddb.put_item, TableName="orders",
          Item={"customer": {"S": "ann"}, "order": {"N": "1"}},
          ConditionExpression="attribute_not_exists(customer)",
          ReturnValuesOnConditionCheckFailure="ALL_OLD")
assert r["Item"]["status"] == {"S": "open"}, r
old = table.put_item(Item={"customer": "ann", "order": 1, "status": "open", "total": 5},
                     ReturnValues="ALL_OLD")["Attributes"]
assert old["total"] == precise, old
up = table.update_item(Key={"customer": "ann", "order": 1},
                       UpdateExpression="SET #t = #t + :d, notes = list_append(if_not_exists(notes, :e), :n) ADD seen :one",
                       ExpressionAttributeNames={"#t": "total"},
                       ExpressionAttributeValues={":d": Decimal("0.5"), ":e": [], ":n": ["hi"], ":one": 1},
                       ReturnValues="UPDATED_NEW")["Attributes"]
assert up == {"total": Decimal("5.5"), "notes": ["hi"], "seen": 1}, up
up = table.update_item(Key={"customer": "ann", "order": 1}, UpdateExpression="REMOVE notes",
                       ReturnValues="ALL_NEW")["Attributes"]
assert "notes" not in up and up["seen"] == 1, up
up = table.update_item(Key={"customer": "ann", "order": 1}, UpdateExpression="SET seen = :v",
                       ExpressionAttributeValues={":v": 2}, ReturnValues="UPDATED_OLD")["Attributes"]
assert up == {"seen": 1}, up
fails("ConditionalCheckFailedException", table.update_item, Key={"customer": "ann", "order": 1},
      UpdateExpression="SET seen = :v", ConditionExpression=Attr("seen").gt(5),
      ExpressionAttributeValues={":v": 9})
# An update of a missing item creates it from its key.
table.update_item(Key={"customer": "bob", "order": 7}, UpdateExpression="SET #s = :s, #t = :t",
                  ExpressionAttributeNames={"#s": "status", "#t": "total"}, ExpressionAttributeValues={":s": "open", ":t": 3})
deleted = table.delete_item(Key={"customer": "bob", "order": 7}, ReturnValues="ALL_OLD")["Attributes"]
assert deleted["status"] == "open", deleted
assert "Item" not in table.get_item(Key={"customer": "bob", "order": 7})
fails("ConditionalCheckFailedException", table.delete_item, Key={"customer": "ann", "order": 1},
      ConditionExpression=Attr("status").eq("done"))
table.put_item(Item={"customer": "dan", "order": 1, "status": "open", "nested": {"l": [1, "x"], "m": 2}})
proj = table.get_item(Key={"customer": "dan", "order": 1}, ProjectionExpression="#s, nested.l[1]",
                      ExpressionAttributeNames={"#s": "status"})["Item"]
assert proj == {"status": "open", "nested": {"l": ["x"]}}, proj
table.delete_item(Key={"customer": "dan", "order": 1})

# ---- Query and Scan: pagination visits every item once ----
with table.batch_writer() as batch:
    for i in range(2, 60):
        batch.put_item(Item={"customer": "ann" if i % 2 else "cat", "order": i,
                             "status": "open" if i % 3 else "done", "total": i * 10})
ann = [i for i in [1] + list(range(2, 60)) if i == 1 or i % 2]
seen, kwargs = [], {"KeyConditionExpression": Key("customer").eq("ann"), "Limit": 4}
while True:
    page = table.query(**kwargs)
    seen += [int(it["order"]) for it in page["Items"]]
    if "LastEvaluatedKey" not in page:
        break
    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
assert seen == sorted(ann), seen
back = table.query(KeyConditionExpression=Key("customer").eq("ann") & Key("order").between(10, 20),
                   ScanIndexForward=False)["Items"]
assert [int(i["order"]) for i in back] == [19, 17, 15, 13, 11], back
count = table.query(KeyConditionExpression=Key("customer").eq("cat"), Select="COUNT",
                    FilterExpression=Attr("status").eq("done"))
assert count["Count"] == len([i for i in range(2, 60) if i % 2 == 0 and i % 3 == 0]) and "Items" not in count, count
scanned = []
for page in ddb.get_paginator("scan").paginate(TableName="orders", PaginationConfig={"PageSize": 7}):
    scanned += [(i["customer"]["S"], int(i["order"]["N"])) for i in page["Items"]]
assert len(scanned) == len(set(scanned)) == 59, len(scanned)
segments = []
for s in range(3):
    segments += [(i["customer"], int(i["order"])) for i in table.scan(Segment=s, TotalSegments=3)["Items"]]
assert sorted(segments) == sorted(scanned), segments

# ---- Indexes after updates ----
table.update_item(Key={"customer": "ann", "order": 3}, UpdateExpression="SET #s = :d",
                  ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":d": "shipped"})
table.update_item(Key={"customer": "cat", "order": 4}, UpdateExpression="SET #s = :d",
                  ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":d": "shipped"})
table.delete_item(Key={"customer": "ann", "order": 3})
shipped = table.query(IndexName="by_status", KeyConditionExpression=Key("status").eq("shipped"))["Items"]
assert [(i["customer"], int(i["order"])) for i in shipped] == [("cat", 4)], shipped
by_total = table.query(IndexName="by_total", KeyConditionExpression=Key("customer").eq("cat") & Key("total").lt(50))["Items"]
assert [int(i["total"]) for i in by_total] == [20, 40] and "status" not in by_total[0], by_total
fails("ValidationException", table.query, IndexName="nope", KeyConditionExpression=Key("status").eq("x"))

# ---- Batches and transactions ----
got = ddb.batch_get_item(RequestItems={"orders": {"Keys": [
    {"customer": {"S": "ann"}, "order": {"N": "1"}}, {"customer": {"S": "zed"}, "order": {"N": "1"}}]}})
assert len(got["Responses"]["orders"]) == 1 and got["UnprocessedKeys"] == {}, got
ddb.transact_write_items(TransactItems=[
    {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "order": {"N": "1"}}}},
    {"Update": {"TableName": "orders", "Key": {"customer": {"S": "ann"}, "order": {"N": "1"}},
                "UpdateExpression": "SET seen = seen + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
], ClientRequestToken="token-1")
# The same token and request again: not applied twice.
ddb.transact_write_items(TransactItems=[
    {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "order": {"N": "1"}}}},
    {"Update": {"TableName": "orders", "Key": {"customer": {"S": "ann"}, "order": {"N": "1"}},
                "UpdateExpression": "SET seen = seen + :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
], ClientRequestToken="token-1")
assert table.get_item(Key={"customer": "ann", "order": 1})["Item"]["seen"] == 3
fails("IdempotentParameterMismatchException", ddb.transact_write_items, TransactItems=[
    {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "order": {"N": "2"}}}}],
    ClientRequestToken="token-1")
r = fails("TransactionCanceledException", ddb.transact_write_items, TransactItems=[
    {"Put": {"TableName": "orders", "Item": {"customer": {"S": "tx"}, "order": {"N": "3"}}}},
    {"ConditionCheck": {"TableName": "orders", "Key": {"customer": {"S": "ann"}, "order": {"N": "1"}},
                        "ConditionExpression": "seen > :n", "ExpressionAttributeValues": {":n": {"N": "100"}},
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
])
reasons = r["CancellationReasons"]
assert [x["Code"] for x in reasons] == ["None", "ConditionalCheckFailed"], reasons
assert reasons[1]["Item"]["seen"] == {"N": "3"}, reasons
assert "Item" not in table.get_item(Key={"customer": "tx", "order": 3})
tg = ddb.transact_get_items(TransactItems=[
    {"Get": {"TableName": "orders", "Key": {"customer": {"S": "tx"}, "order": {"N": "1"}}}},
    {"Get": {"TableName": "orders", "Key": {"customer": {"S": "tx"}, "order": {"N": "9"}}}}])
assert tg["Responses"][0]["Item"]["customer"] == {"S": "tx"} and tg["Responses"][1] == {}, tg

# ---- Eight racing conditional writers: exactly one wins ----
outcomes = []


def race(n):
    c = boto3.client("dynamodb", endpoint_url=ENDPOINT, region_name=REGION, config=config)
    try:
        c.put_item(TableName="orders", Item={"customer": {"S": "race"}, "order": {"N": "1"}, "w": {"N": str(n)}},
                   ConditionExpression="attribute_not_exists(customer)")
        outcomes.append(("won", n))
    except botocore.exceptions.ClientError as e:
        outcomes.append((e.response["Error"]["Code"], n))


threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
winners = [n for code, n in outcomes if code == "won"]
assert len(winners) == 1 and len(outcomes) == 8, outcomes
assert all(code in ("won", "ConditionalCheckFailedException") for code, _ in outcomes), outcomes
assert table.get_item(Key={"customer": "race", "order": 1})["Item"]["w"] == winners[0]

# ---- Bad requests leave the table unchanged ----
before = table.get_item(Key={"customer": "ann", "order": 1})["Item"]
item_key = {"customer": {"S": "ann"}, "order": {"N": "1"}}
bad = [
    dict(fn=ddb.get_item, TableName="missing", Key=item_key, code="ResourceNotFoundException"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key, UpdateExpression="SET a = ",
         code="ValidationException", contains="Syntax error"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key, UpdateExpression="SET #a = :v",
         ExpressionAttributeValues={":v": {"N": "1"}}, code="ValidationException", contains="#a"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key, UpdateExpression="SET a = :v",
         ExpressionAttributeValues={":v": {"N": "1"}, ":unused": {"N": "2"}}, code="ValidationException",
         contains="unused"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key, UpdateExpression="SET status = :v",
         ExpressionAttributeValues={":v": {"S": "x"}}, code="ValidationException", contains="reserved"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key, UpdateExpression="SET seen = seen + :v",
         ExpressionAttributeValues={":v": {"S": "x"}}, code="ValidationException"),
    dict(fn=ddb.put_item, TableName="orders",
         Item={"customer": {"S": "ann"}, "order": {"N": "1"}, "big": {"S": "x" * 410_000}},
         code="ValidationException", contains="size"),
    dict(fn=ddb.put_item, TableName="orders", Item={"customer": {"S": "ann"}, "order": {"S": "1"}},
         code="ValidationException", contains="Type mismatch"),
    dict(fn=ddb.put_item, TableName="orders", Item={"customer": {"S": "ann"}, "order": {"N": "1"}, "status": {"N": "1"}},
         code="ValidationException", contains="Index"),
    dict(fn=ddb.get_item, TableName="orders", Key={"customer": {"S": "ann"}}, code="ValidationException"),
    dict(fn=ddb.update_item, TableName="orders", Key=item_key,
         AttributeUpdates={"a": {"Value": {"S": "x"}, "Action": "PUT"}}, code="ValidationException",
         contains="legacy"),
]
for case in bad:
    fn, code, contains = case.pop("fn"), case.pop("code"), case.pop("contains", None)
    fails(code, fn, contains=contains, **case)
assert table.get_item(Key={"customer": "ann", "order": 1})["Item"] == before

# ---- UpdateTable: a GSI added is backfilled from the items there, then queried; removed ----
ddb.create_table(
    TableName="people",
    KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST")
people = res.Table("people")
for i in range(30):
    people.put_item(Item={"id": f"p{i}", "city": "lisbon" if i % 3 == 0 else "porto", "age": i})
people.put_item(Item={"id": "nocity", "age": 99})
fails("ValidationException", people.query, IndexName="by_city",
      KeyConditionExpression=Key("city").eq("lisbon"))
described = ddb.update_table(
    TableName="people",
    AttributeDefinitions=[{"AttributeName": "city", "AttributeType": "S"},
                          {"AttributeName": "age", "AttributeType": "N"}],
    GlobalSecondaryIndexUpdates=[{"Create": {
        "IndexName": "by_city",
        "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"},
                      {"AttributeName": "age", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"}}}],
    StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})["TableDescription"]
assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == ["by_city"], described
assert described["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE", described
got = people.query(IndexName="by_city", KeyConditionExpression=Key("city").eq("lisbon"))["Items"]
assert [int(i["age"]) for i in got] == list(range(0, 30, 3)), got
people.put_item(Item={"id": "new", "city": "lisbon", "age": 100})
people.update_item(Key={"id": "p3"}, UpdateExpression="SET city = :c", ExpressionAttributeValues={":c": "faro"})
got = people.query(IndexName="by_city", KeyConditionExpression=Key("city").eq("lisbon") & Key("age").gte(20))
assert [int(i["age"]) for i in got["Items"]] == [21, 24, 27, 100], got
fails("ValidationException", ddb.update_table, TableName="people",
      GlobalSecondaryIndexUpdates=[{"Create": {
          "IndexName": "by_city", "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"}],
          "Projection": {"ProjectionType": "ALL"}}}], contains="already exists")
fails("ResourceNotFoundException", ddb.update_table, TableName="people",
      GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "nope"}}])
fails("ValidationException", ddb.update_table, TableName="people",
      StreamSpecification={"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}, contains="already has")
described = ddb.update_table(TableName="people", GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_city"}}],
                             StreamSpecification={"StreamEnabled": False})["TableDescription"]
assert "GlobalSecondaryIndexes" not in described and "StreamSpecification" not in described, described
assert [a["AttributeName"] for a in described["AttributeDefinitions"]] == ["id"], described
fails("ValidationException", people.query, IndexName="by_city",
      KeyConditionExpression=Key("city").eq("lisbon"))

# ---- Time to live: expired items are deleted in the background, others stay ----
import time

assert ddb.describe_time_to_live(TableName="people")["TimeToLiveDescription"] == {"TimeToLiveStatus": "DISABLED"}
spec = ddb.update_time_to_live(TableName="people",
                               TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
assert spec["TimeToLiveSpecification"] == {"Enabled": True, "AttributeName": "expires"}, spec
assert ddb.describe_time_to_live(TableName="people")["TimeToLiveDescription"] == {
    "TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
fails("ValidationException", ddb.update_time_to_live, TableName="people",
      TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"}, contains="already enabled")
now = int(time.time())
people.put_item(Item={"id": "gone", "expires": now - 10})
people.put_item(Item={"id": "soon", "expires": now + 1})
people.put_item(Item={"id": "later", "expires": now + 3600})
people.put_item(Item={"id": "ancient", "expires": 1000})
people.put_item(Item={"id": "text", "expires": "yesterday"})
deadline = time.time() + 30
while time.time() < deadline:
    left = {i["id"] for i in people.scan(ProjectionExpression="id")["Items"]}
    if "gone" not in left and "soon" not in left:
        break
    time.sleep(0.5)
else:
    raise AssertionError(f"expired items still there after 30 s: {left}")
assert {"later", "ancient", "text", "p0", "new"} <= left, left
ddb.update_time_to_live(TableName="people", TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires"})
assert ddb.describe_time_to_live(TableName="people")["TimeToLiveDescription"] == {"TimeToLiveStatus": "DISABLED"}
ddb.delete_table(TableName="people")

# ---- Delete ----
ddb.delete_table(TableName="orders")
fails("ResourceNotFoundException", ddb.describe_table, TableName="orders")
print("dynamodb: ok")
