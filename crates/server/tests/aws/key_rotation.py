"""One secret of a rotated access key on S3 (PutObject, GetObject, ListObjectsV2), Lambda
(ListFunctions) and SQS (ListQueues): with argv[1] == "ok" every call succeeds; with
"refused" every call is refused as a bad signature or key.

argv: ok|refused, the bucket. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

import os
import sys

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ENDPOINT, REGION

expect, bucket = sys.argv[1:3]
config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=config)
lam = boto3.client("lambda", endpoint_url=ENDPOINT, region_name=REGION, config=config)
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION, config=config)
secret = os.environ["AWS_SECRET_ACCESS_KEY"][:6]
key = f"signed-{secret}"

calls = [
    ("PutObject", lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x" * 100)),
    ("GetObject", lambda: s3.get_object(Bucket=bucket, Key="seed")["Body"].read()),
    ("ListObjectsV2", lambda: s3.list_objects_v2(Bucket=bucket)),
    ("ListFunctions", lambda: lam.list_functions()),
    ("ListQueues", lambda: sqs.list_queues()),
]
for name, call in calls:
    try:
        call()
        outcome = "ok"
    except botocore.exceptions.ClientError as e:
        code = e.response["Error"]["Code"]
        bad = ("SignatureDoesNotMatch", "InvalidSignatureException", "InvalidClientTokenId",
               "UnrecognizedClientException", "AccessDenied", "InvalidAccessKeyId")
        assert code in bad, f"{name}: {code} {e}"
        outcome = "refused"
    assert outcome == expect, f"{name} with {secret}…: {outcome}, expected {expect}"
print(f"rotation {expect}")
