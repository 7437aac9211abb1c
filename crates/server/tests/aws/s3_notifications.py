"""Bucket notifications with boto3's s3 client: a configuration with LambdaFunction, Queue and
Topic targets (prefix/suffix filters) round-trips, bad ones are refused with S3's error, then
uploads and a delete happen. The test (s3_notifications.rs) made the function, queues and topic
beforehand and checks the deliveries afterwards. Prints the ETag of the uploaded object."""

import json
import os

import boto3
import botocore.exceptions

ENDPOINT = os.environ["LAMBENT_URL"]
REGION = "us-east-1"
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION)

FUNCTION = "arn:aws:lambda:us-east-1:default:function:on-upload"
QUEUE = "arn:aws:sqs:us-east-1:default:removed"
TOPIC = "arn:aws:sns:us-east-1:default:news"


def rules(**kw):
    return {"Key": {"FilterRules": [{"Name": k, "Value": v} for k, v in kw.items()]}}


GOOD = {
    "LambdaFunctionConfigurations": [{
        "Id": "thumbs",
        "LambdaFunctionArn": FUNCTION,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": rules(Prefix="in/", Suffix=".jpg"),
    }],
    "QueueConfigurations": [{
        "Id": "removals",
        "QueueArn": QUEUE,
        "Events": ["s3:ObjectRemoved:*"],
    }],
    "TopicConfigurations": [{
        "Id": "news",
        "TopicArn": TOPIC,
        "Events": ["s3:ObjectCreated:Put"],
        "Filter": rules(Prefix="news/"),
    }],
}


def refused(config, why):
    try:
        s3.put_bucket_notification_configuration(
            Bucket="photos", NotificationConfiguration=config)
    except botocore.exceptions.ClientError as e:
        err = e.response["Error"]
        assert err["Code"] == "InvalidArgument", (why, err)
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, why
        return err["Message"]
    raise AssertionError(f"accepted: {why}")


def normalized(c):
    out = {}
    for kind in ("LambdaFunctionConfigurations", "QueueConfigurations", "TopicConfigurations"):
        items = []
        for item in c.get(kind, []):
            item = dict(item)
            f = item.get("Filter", {}).get("Key", {}).get("FilterRules", [])
            item["Filter"] = sorted((r["Name"].lower(), r["Value"]) for r in f)
            items.append(item)
        out[kind] = items
    return out


s3.create_bucket(Bucket="photos")
s3.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration=GOOD)
got = s3.get_bucket_notification_configuration(Bucket="photos")
assert normalized(got) == normalized(GOOD), got

# Destinations S3 cannot validate: another namespace's, missing ones, the wrong service.
msg = refused({"QueueConfigurations": [{
    "QueueArn": "arn:aws:sqs:us-east-1:other:removed", "Events": ["s3:ObjectRemoved:*"]}]},
    "another namespace's queue")
assert "Unable to validate the following destination configurations" in msg, msg
assert "arn:aws:sqs:us-east-1:other:removed" in msg, msg
refused({"LambdaFunctionConfigurations": [{
    "LambdaFunctionArn": "arn:aws:lambda:us-east-1:default:function:nope",
    "Events": ["s3:ObjectCreated:*"]}]}, "a missing function")
refused({"LambdaFunctionConfigurations": [{
    "LambdaFunctionArn": FUNCTION + ":nosuchalias", "Events": ["s3:ObjectCreated:*"]}]},
    "a missing alias")
refused({"TopicConfigurations": [{
    "TopicArn": "arn:aws:sns:us-east-1:default:nope", "Events": ["s3:ObjectCreated:*"]}]},
    "a missing topic")
refused({"QueueConfigurations": [{
    "QueueArn": "arn:aws:sqs:eu-west-1:default:removed", "Events": ["s3:ObjectCreated:*"]}]},
    "another region")
refused({"QueueConfigurations": [{"QueueArn": FUNCTION, "Events": ["s3:ObjectCreated:*"]}]},
        "a function ARN as a queue")
refused({"QueueConfigurations": [{"QueueArn": QUEUE, "Events": ["s3:ObjectTagging:*"]}]},
        "an unsupported event")
# A refused configuration leaves the stored one alone.
assert normalized(s3.get_bucket_notification_configuration(Bucket="photos")) == normalized(GOOD)

put = s3.put_object(Bucket="photos", Key="in/my cat.jpg", Body=b"meow!")
s3.put_object(Bucket="photos", Key="in/b.png", Body=b"not a jpg")
s3.put_object(Bucket="photos", Key="out/c.jpg", Body=b"not under in/")
s3.put_object(Bucket="photos", Key="news/n1.txt", Body=b"extra")
s3.delete_object(Bucket="photos", Key="in/my cat.jpg")
print(json.dumps({"etag": put["ETag"].strip('"'),
                  "request_id": put["ResponseMetadata"]["RequestId"]}))
