"""Another tenant's key on the AWS APIs: none of the first tenant's functions, queues, topics,
tables or buckets are listed, and naming them (by name or by ARN) finds nothing; the caller's
own ARNs name its own account (its namespace).

argv: A's function, queue, topic, table, bucket; B's function; A's and B's namespaces.
Credentials: B's access key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."""

import sys

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ENDPOINT, REGION

a_fn, a_queue, a_topic, a_table, a_bucket, b_fn, a_ns, b_ns = sys.argv[1:9]
config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def client(service, cfg=config):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION, config=cfg)


def refused(call, *codes, named=False):
    """The call fails with one of `codes`, naming nothing of A (but what it was asked:
    `named` when the request itself named A's account)."""
    try:
        answer = call()
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        assert code in codes, f"{code} not in {codes}: {e}"
        text = str(e.response)
        assert named or a_ns not in text, text
        return
    raise AssertionError(f"not refused: {answer}")


lam = client("lambda")
names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
assert a_fn not in names and b_fn in names, names
arns = [f["FunctionArn"] for f in lam.list_functions()["Functions"]]
assert all(f":{b_ns}:function:" in arn for arn in arns), arns
not_found = ("ResourceNotFoundException",)
refused(lambda: lam.get_function(FunctionName=a_fn), *not_found)
refused(lambda: lam.invoke(FunctionName=a_fn, Payload=b"{}"), *not_found)
a_arn = f"arn:aws:lambda:{REGION}:{a_ns}:function:{a_fn}"
refused(lambda: lam.get_function(FunctionName=a_arn), *not_found,
        "InvalidParameterValueException", named=True)
refused(lambda: lam.delete_function(FunctionName=a_fn), *not_found)

sqs = client("sqs")
urls = sqs.list_queues().get("QueueUrls", [])
assert not any(a_queue in u for u in urls), urls
refused(lambda: sqs.get_queue_url(QueueName=a_queue),
        "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")

sns = client("sns")
topics = [t["TopicArn"] for t in sns.list_topics()["Topics"]]
assert not any(a_topic in t for t in topics), topics
a_topic_arn = f"arn:aws:sns:{REGION}:{a_ns}:{a_topic}"
refused(lambda: sns.publish(TopicArn=a_topic_arn, Message="x"), "NotFound", "InvalidParameter",
        "AuthorizationError", named=True)

ddb = client("dynamodb")
tables = ddb.list_tables()["TableNames"]
assert a_table not in tables, tables
refused(lambda: ddb.describe_table(TableName=a_table), "ResourceNotFoundException")
refused(lambda: ddb.get_item(TableName=a_table, Key={"id": {"S": "1"}}),
        "ResourceNotFoundException")

s3 = client("s3", config.merge(botocore.config.Config(s3={"addressing_style": "path"})))
buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
assert a_bucket not in buckets, buckets
refused(lambda: s3.get_object(Bucket=a_bucket, Key="k"), "AccessDenied", "NoSuchBucket")
refused(lambda: s3.list_objects_v2(Bucket=a_bucket), "AccessDenied", "NoSuchBucket")
refused(lambda: s3.delete_object(Bucket=a_bucket, Key="k"), "AccessDenied", "NoSuchBucket")

print("tenants ok")
