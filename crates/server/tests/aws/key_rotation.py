"""One secret of a rotated access key on S3 (PutObject, GetObject, ListObjectsV2, and GET and
PUT through presigned URLs of both signature versions), Lambda (ListFunctions) and SQS
(ListQueues): with argv[1] == "ok" every call succeeds; with "refused" every call is refused
as a bad signature or key.

argv: ok|refused, the bucket. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

import os
import sys
import urllib.error
import urllib.request

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


def presigned(version, method):
    """A presigned URL for `method` (GetObject of the seed, or PutObject), fetched."""
    cfg = config.merge(botocore.config.Config(signature_version=version))
    signer = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=cfg)
    operation = {"GET": "get_object", "PUT": "put_object"}[method]
    params = {"Bucket": bucket, "Key": "seed"}
    body, headers = None, {}
    if method == "PUT":
        # Signature version 2 signs the type (urllib would send a form's otherwise).
        params = {"Bucket": bucket, "Key": f"{key}-{version}", "ContentType": "text/plain"}
        body, headers = b"presigned", {"Content-Type": "text/plain"}
    url = signer.generate_presigned_url(operation, Params=params, ExpiresIn=300)
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as r:
            r.read()
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        assert e.code == 403 and ("SignatureDoesNotMatch" in text or "InvalidAccessKeyId" in text), text
        raise botocore.exceptions.ClientError({"Error": {"Code": "SignatureDoesNotMatch"}}, operation)


# boto3 presigns with signature version 2 unless told otherwise ("s3" is its default).
for version in ("s3", "s3v4"):
    for method in ("GET", "PUT"):
        calls.append((f"presigned {method} ({version})", lambda v=version, m=method: presigned(v, m)))

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
