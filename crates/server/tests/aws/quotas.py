"""A namespace at its quotas, through boto3 (credentials of one namespace's owner access key):
its storage quota refuses an S3 PutObject, a DynamoDB PutItem and an SQS SendMessage in each
protocol's error shape, leaving nothing behind; its function count refuses a Lambda
CreateFunction. Argument: the phase, `storage` or `budget` (a hard budget is spent: Lambda
Invoke is refused with BudgetExhausted)."""

import json
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError

import lambent_boto3 as lb

CONFIG = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})


def aws(service):
    return boto3.client(service, endpoint_url=lb.ENDPOINT, region_name=lb.REGION, config=CONFIG)


def refused(call, code, status):
    try:
        call()
    except ClientError as e:
        got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
        assert got == (code, status), f"{got} != {(code, status)}: {e.response}"
        return e.response["Error"].get("Message", "")
    raise AssertionError(f"not refused: expected {code}")


def storage():
    s3 = aws("s3")
    s3.create_bucket(Bucket="quota-bucket")
    s3.put_object(Bucket="quota-bucket", Key="fits", Body=b"x" * 1500)
    message = refused(
        lambda: s3.put_object(Bucket="quota-bucket", Key="too-much", Body=b"y" * 1000),
        "QuotaExceeded", 403)
    assert "storage_quota_bytes" in message, message
    # Nothing half-done: no object, and the one that fit is whole.
    refused(lambda: s3.head_object(Bucket="quota-bucket", Key="too-much"), "404", 404)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="quota-bucket").get("Contents", [])]
    assert keys == ["fits"], keys
    # A multipart part over the quota is refused too; the upload keeps no part.
    up = s3.create_multipart_upload(Bucket="quota-bucket", Key="parts")
    refused(lambda: s3.upload_part(Bucket="quota-bucket", Key="parts", UploadId=up["UploadId"],
                                   PartNumber=1, Body=b"z" * 1000), "QuotaExceeded", 403)
    parts = s3.list_parts(Bucket="quota-bucket", Key="parts", UploadId=up["UploadId"])
    assert parts.get("Parts", []) == [], parts
    s3.abort_multipart_upload(Bucket="quota-bucket", Key="parts", UploadId=up["UploadId"])

    ddb = aws("dynamodb")
    ddb.create_table(TableName="quota-table",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    refused(lambda: ddb.put_item(TableName="quota-table",
                                 Item={"k": {"S": "big"}, "v": {"S": "v" * 800}}),
            "QuotaExceeded", 403)
    assert ddb.scan(TableName="quota-table")["Count"] == 0

    sqs = aws("sqs")
    url = sqs.create_queue(QueueName="quota-queue")["QueueUrl"]
    refused(lambda: sqs.send_message(QueueUrl=url, MessageBody="m" * 800), "QuotaExceeded", 403)
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0).get("Messages", [])
    assert got == [], got

    lam = lb.client()
    refused(lambda: lb.create(lam, "one-too-many", lb.app("x")), "QuotaExceeded", 403)
    names = [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    assert "one-too-many" not in names, names
    print("storage ok")


def budget():
    lam = lb.client()
    refused(lambda: lb.invoke(lam, "quick", {}), "BudgetExhausted", 402)
    refused(lambda: lam.invoke(FunctionName="quick", InvocationType="Event", Payload=b"{}"),
            "BudgetExhausted", 402)
    print("budget ok")


if __name__ == "__main__":
    {"storage": storage, "budget": budget}[sys.argv[1]]()
