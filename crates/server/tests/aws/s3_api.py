"""The S3 API with boto3's s3 client: every supported operation and its errors, against the
Lambent server under test (LAMBENT_URL; credentials from AWS_ACCESS_KEY_ID /
AWS_SECRET_ACCESS_KEY; OTHER_ACCESS_KEY_ID / OTHER_SECRET_ACCESS_KEY sign for another
namespace). Leaves bucket `kept` with objects for the restart check."""

import base64
import hashlib
import os
import urllib.error
import urllib.request
import zlib

import boto3
import botocore.config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["LAMBENT_URL"]
REGION = "us-east-1"
MIB = 1024 * 1024


def s3(key_id=None, secret=None, **config):
    kwargs = {}
    if key_id:
        kwargs = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    cfg = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"}, **config)
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=cfg, **kwargs)


def error_of(call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} succeeded, an error was expected")


def expect_error(code, status, call, *args, **kwargs):
    got = error_of(call, *args, **kwargs)
    assert got == (code, status), f"{call.__name__}: expected {(code, status)}, got {got}"


def md5_etag(data):
    return '"' + hashlib.md5(data).hexdigest() + '"'


c = s3()

# Buckets.
c.create_bucket(Bucket="photos")
c.create_bucket(Bucket="kept")
c.head_bucket(Bucket="photos")
names = [b["Name"] for b in c.list_buckets()["Buckets"]]
assert names == ["kept", "photos"], names
assert c.get_bucket_location(Bucket="photos").get("LocationConstraint") in (None, ""), "location"
c.create_bucket(Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
assert c.get_bucket_location(Bucket="elsewhere")["LocationConstraint"] == "eu-west-1"
c.delete_bucket(Bucket="elsewhere")
expect_error("BucketAlreadyOwnedByYou", 409, c.create_bucket, Bucket="photos")
expect_error("InvalidBucketName", 400, c.create_bucket, Bucket="Not_Valid")
expect_error("InvalidBucketName", 400, c.create_bucket, Bucket="192.168.1.1")
expect_error("404", 404, c.head_bucket, Bucket="missing-bucket")
expect_error("NoSuchBucket", 404, c.list_objects_v2, Bucket="missing-bucket")

# Objects: put with metadata and the standard headers, get, head, ranges.
body = b"hello, lambent objects\n" * 100
put = c.put_object(
    Bucket="photos", Key="docs/readme.txt", Body=body, ContentType="text/plain",
    Metadata={"Colour": "blue"}, CacheControl="max-age=60", ContentDisposition="inline",
    ContentLanguage="en", ContentEncoding="identity",
)
assert put["ETag"] == md5_etag(body), put["ETag"]
got = c.get_object(Bucket="photos", Key="docs/readme.txt")
assert got["Body"].read() == body
assert got["ContentType"] == "text/plain" and got["Metadata"] == {"colour": "blue"}, got
assert got["CacheControl"] == "max-age=60" and got["ContentDisposition"] == "inline", got
assert got["ContentLanguage"] == "en" and got["ContentEncoding"] == "identity", got
assert got["ETag"] == md5_etag(body)
head = c.head_object(Bucket="photos", Key="docs/readme.txt")
assert head["ContentLength"] == len(body) and head["ETag"] == md5_etag(body), head
ranged = c.get_object(Bucket="photos", Key="docs/readme.txt", Range="bytes=7-13")
assert ranged["Body"].read() == body[7:14] and ranged["ContentRange"] == f"bytes 7-13/{len(body)}"
assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
suffix = c.get_object(Bucket="photos", Key="docs/readme.txt", Range="bytes=-5")
assert suffix["Body"].read() == body[-5:]
expect_error("InvalidRange", 416, c.get_object, Bucket="photos", Key="docs/readme.txt",
             Range=f"bytes={len(body)}-")
expect_error("NoSuchKey", 404, c.get_object, Bucket="photos", Key="nope")
expect_error("NoSuchBucket", 404, c.get_object, Bucket="no-such-bucket", Key="nope")
expect_error("404", 404, c.head_object, Bucket="photos", Key="nope")

# Conditional requests.
etag = md5_etag(body)
c.get_object(Bucket="photos", Key="docs/readme.txt", IfMatch=etag)
expect_error("PreconditionFailed", 412, c.get_object, Bucket="photos", Key="docs/readme.txt",
             IfMatch='"0123"')
expect_error("304", 304, c.get_object, Bucket="photos", Key="docs/readme.txt", IfNoneMatch=etag)
modified = head["LastModified"]
expect_error("304", 304, c.get_object, Bucket="photos", Key="docs/readme.txt",
             IfModifiedSince=modified)
expect_error("PreconditionFailed", 412, c.get_object, Bucket="photos", Key="docs/readme.txt",
             IfUnmodifiedSince=modified.replace(year=2000))
expect_error("PreconditionFailed", 412, c.put_object, Bucket="photos", Key="docs/readme.txt",
             Body=b"x", IfNoneMatch="*")

# Checksums: the SDK's default CRC32, and the others when asked.
# (CRC32C needs botocore[crt] on the client; the engine's tests cover it.)
for algorithm in ["CRC32", "SHA256"]:
    r = c.put_object(Bucket="photos", Key=f"sum/{algorithm}", Body=b"checksummed", ChecksumAlgorithm=algorithm)
    assert r.get(f"Checksum{algorithm}"), (algorithm, r)
    h = c.head_object(Bucket="photos", Key=f"sum/{algorithm}", ChecksumMode="ENABLED")
    assert h[f"Checksum{algorithm}"] == r[f"Checksum{algorithm}"], (algorithm, h)
crc = base64.b64encode(zlib.crc32(b"checksummed").to_bytes(4, "big")).decode()
assert c.head_object(Bucket="photos", Key="sum/CRC32", ChecksumMode="ENABLED")["ChecksumCRC32"] == crc
wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
expect_error("BadDigest", 400, c.put_object, Bucket="photos", Key="sum/bad", Body=b"data",
             ChecksumSHA256=wrong)
expect_error("NoSuchKey", 404, c.get_object, Bucket="photos", Key="sum/bad")

# Copy: keeping metadata, or replacing it.
copy = c.copy_object(Bucket="photos", Key="copy/keep", CopySource={"Bucket": "photos", "Key": "docs/readme.txt"})
assert copy["CopyObjectResult"]["ETag"] == etag
kept = c.head_object(Bucket="photos", Key="copy/keep")
assert kept["Metadata"] == {"colour": "blue"} and kept["ContentType"] == "text/plain", kept
c.copy_object(Bucket="kept", Key="replaced", CopySource="photos/docs/readme.txt",
              MetadataDirective="REPLACE", Metadata={"shape": "round"}, ContentType="text/x-copy")
replaced = c.head_object(Bucket="kept", Key="replaced")
assert replaced["Metadata"] == {"shape": "round"} and replaced["ContentType"] == "text/x-copy"
expect_error("InvalidRequest", 400, c.copy_object, Bucket="photos", Key="copy/keep",
             CopySource="photos/copy/keep")
expect_error("NoSuchKey", 404, c.copy_object, Bucket="photos", Key="x", CopySource="photos/absent")
expect_error("PreconditionFailed", 412, c.copy_object, Bucket="photos", Key="x",
             CopySource="photos/copy/keep", CopySourceIfMatch='"00"')

# Listings: v1 and v2, prefix, delimiter, max-keys, continuation, start-after.
for i in range(7):
    c.put_object(Bucket="photos", Key=f"list/{i:02d}", Body=b"x")
for sub in ["a", "b"]:
    c.put_object(Bucket="photos", Key=f"list/dir-{sub}/inner", Body=b"y")
v2 = c.list_objects_v2(Bucket="photos", Prefix="list/", Delimiter="/")
assert [o["Key"] for o in v2["Contents"]] == [f"list/{i:02d}" for i in range(7)], v2
assert [p["Prefix"] for p in v2["CommonPrefixes"]] == ["list/dir-a/", "list/dir-b/"], v2
assert v2["KeyCount"] == 9 and not v2["IsTruncated"]
pages = c.get_paginator("list_objects_v2").paginate(Bucket="photos", Prefix="list/", PaginationConfig={"PageSize": 2})
keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
assert len(keys) == 9 and keys == sorted(keys), keys
after = c.list_objects_v2(Bucket="photos", Prefix="list/", StartAfter="list/05")
assert [o["Key"] for o in after["Contents"]][0] == "list/06", after
v1 = c.list_objects(Bucket="photos", Prefix="list/", MaxKeys=3)
assert len(v1["Contents"]) == 3 and v1["IsTruncated"], v1
v1_keys = [o["Key"] for p in c.get_paginator("list_objects").paginate(Bucket="photos", Prefix="list/", PaginationConfig={"PageSize": 4}) for o in p.get("Contents", [])]
assert v1_keys == keys, v1_keys
odd = "odd key with spaces & ümlauts+plus%percent"
c.put_object(Bucket="photos", Key=odd, Body=b"odd")
assert odd in [o["Key"] for o in c.list_objects_v2(Bucket="photos", Prefix="odd")["Contents"]]
assert c.get_object(Bucket="photos", Key=odd)["Body"].read() == b"odd"

# DeleteObjects and DeleteObject.
deleted = c.delete_objects(Bucket="photos", Delete={"Objects": [{"Key": f"list/{i:02d}"} for i in range(7)] + [{"Key": "never-there"}]})
assert len(deleted["Deleted"]) == 8 and not deleted.get("Errors"), deleted
c.delete_object(Bucket="photos", Key="list/dir-a/inner")
c.delete_object(Bucket="photos", Key="list/dir-a/inner")
left = c.list_objects_v2(Bucket="photos", Prefix="list/")
assert [o["Key"] for o in left["Contents"]] == ["list/dir-b/inner"], left

# Multipart: parts, a copied part, listing, completion (ETag MD5-of-MD5s-N), abort, errors.
big = os.urandom(5 * MIB)
up = c.create_multipart_upload(Bucket="kept", Key="multi", ContentType="application/x-multi", Metadata={"k": "v"})
uid = up["UploadId"]
p1 = c.upload_part(Bucket="kept", Key="multi", UploadId=uid, PartNumber=1, Body=big)
p2 = c.upload_part_copy(Bucket="kept", Key="multi", UploadId=uid, PartNumber=2,
                        CopySource="photos/docs/readme.txt", CopySourceRange="bytes=0-99")
p3 = c.upload_part(Bucket="kept", Key="multi", UploadId=uid, PartNumber=3, Body=b"tail")
assert p2["CopyPartResult"]["ETag"] == md5_etag(body[:100])
parts = c.list_parts(Bucket="kept", Key="multi", UploadId=uid)["Parts"]
assert [p["PartNumber"] for p in parts] == [1, 2, 3] and parts[0]["Size"] == 5 * MIB, parts
uploads = c.list_multipart_uploads(Bucket="kept")["Uploads"]
assert [u["UploadId"] for u in uploads] == [uid], uploads
expect_error("EntityTooSmall", 400, c.complete_multipart_upload, Bucket="kept", Key="multi", UploadId=uid,
             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 2, "ETag": p2["CopyPartResult"]["ETag"]}, {"PartNumber": 3, "ETag": p3["ETag"]}]})
expect_error("InvalidPartOrder", 400, c.complete_multipart_upload, Bucket="kept", Key="multi", UploadId=uid,
             MultipartUpload={"Parts": [{"PartNumber": 3, "ETag": p3["ETag"]}, {"PartNumber": 1, "ETag": p1["ETag"]}]})
expect_error("InvalidPart", 400, c.complete_multipart_upload, Bucket="kept", Key="multi", UploadId=uid,
             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 3, "ETag": '"0000"'}]})
done = c.complete_multipart_upload(Bucket="kept", Key="multi", UploadId=uid,
                                   MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}, {"PartNumber": 3, "ETag": p3["ETag"]}]})
md5s = hashlib.md5(big).digest() + hashlib.md5(b"tail").digest()
assert done["ETag"] == '"' + hashlib.md5(md5s).hexdigest() + '-2"', done["ETag"]
whole = c.get_object(Bucket="kept", Key="multi")
assert whole["Body"].read() == big + b"tail" and whole["ContentType"] == "application/x-multi"
assert whole["Metadata"] == {"k": "v"}
across = c.get_object(Bucket="kept", Key="multi", Range=f"bytes={5 * MIB - 2}-{5 * MIB + 1}")
assert across["Body"].read() == big[-2:] + b"ta"
assert not c.list_multipart_uploads(Bucket="kept").get("Uploads")
expect_error("NoSuchUpload", 404, c.upload_part, Bucket="kept", Key="multi", UploadId=uid, PartNumber=1, Body=b"x")
gone = c.create_multipart_upload(Bucket="kept", Key="gone")["UploadId"]
c.upload_part(Bucket="kept", Key="gone", UploadId=gone, PartNumber=1, Body=b"x")
c.abort_multipart_upload(Bucket="kept", Key="gone", UploadId=gone)
expect_error("NoSuchUpload", 404, c.abort_multipart_upload, Bucket="kept", Key="gone", UploadId=gone)
expect_error("NoSuchUpload", 404, c.list_parts, Bucket="kept", Key="gone", UploadId=gone)
small = c.create_multipart_upload(Bucket="kept", Key="small")["UploadId"]
s1 = c.upload_part(Bucket="kept", Key="small", UploadId=small, PartNumber=1, Body=b"too small")
s2 = c.upload_part(Bucket="kept", Key="small", UploadId=small, PartNumber=2, Body=b"last")
expect_error("EntityTooSmall", 400, c.complete_multipart_upload, Bucket="kept", Key="small", UploadId=small,
             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1["ETag"]}, {"PartNumber": 2, "ETag": s2["ETag"]}]})
c.abort_multipart_upload(Bucket="kept", Key="small", UploadId=small)
expect_error("404", 404, c.head_object, Bucket="kept", Key="small")

# Notification configurations.
lambda_arn = "arn:aws:lambda:us-east-1:000000000000:function:thumbnail"
c.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration={
    "LambdaFunctionConfigurations": [{
        "Id": "thumbs", "LambdaFunctionArn": lambda_arn, "Events": ["s3:ObjectCreated:*"],
        "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}, {"Name": "suffix", "Value": ".jpg"}]}},
    }],
    "QueueConfigurations": [{"QueueArn": "arn:aws:sqs:us-east-1:000000000000:q", "Events": ["s3:ObjectRemoved:Delete"]}],
})
n = c.get_bucket_notification_configuration(Bucket="photos")
lf = n["LambdaFunctionConfigurations"][0]
assert lf["Id"] == "thumbs" and lf["LambdaFunctionArn"] == lambda_arn and lf["Events"] == ["s3:ObjectCreated:*"], n
rules = {r["Name"].lower(): r["Value"] for r in lf["Filter"]["Key"]["FilterRules"]}
assert rules == {"prefix": "in/", "suffix": ".jpg"}, rules
assert n["QueueConfigurations"][0]["Events"] == ["s3:ObjectRemoved:Delete"], n
expect_error("InvalidArgument", 400, c.put_bucket_notification_configuration, Bucket="photos",
             NotificationConfiguration={"LambdaFunctionConfigurations": [{"LambdaFunctionArn": lambda_arn, "Events": ["s3:ObjectRestore:*"]}]})
expect_error("InvalidArgument", 400, c.put_bucket_notification_configuration, Bucket="photos",
             NotificationConfiguration={"TopicConfigurations": [{"TopicArn": lambda_arn, "Events": ["s3:ObjectCreated:Put"]}]})
c.put_bucket_notification_configuration(Bucket="photos", NotificationConfiguration={})
assert not c.get_bucket_notification_configuration(Bucket="photos").get("LambdaFunctionConfigurations")

# Presigned URLs (GET and PUT) with a plain HTTP client.
# boto3 presigns with signature version 2 by default (tested too: the AWS CLI's presign); v4 here.
c4 = s3(signature_version="s3v4")
url = c4.generate_presigned_url("get_object", Params={"Bucket": "photos", "Key": "docs/readme.txt"}, ExpiresIn=60)
assert urllib.request.urlopen(url).read() == body
put_url = c4.generate_presigned_url("put_object", Params={"Bucket": "kept", "Key": "plain"}, ExpiresIn=60)
urllib.request.urlopen(urllib.request.Request(put_url, data=b"kept across a restart", method="PUT")).read()
assert c.get_object(Bucket="kept", Key="plain")["Body"].read() == b"kept across a restart"
v2_url = c.generate_presigned_url("get_object", Params={"Bucket": "kept", "Key": "plain"}, ExpiresIn=60)
assert "AWSAccessKeyId=" in v2_url and urllib.request.urlopen(v2_url).read() == b"kept across a restart"
signature = url.split("X-Amz-Signature=")[1][:64]
flipped = ("1" if signature[0] == "0" else "0") + signature[1:]
try:
    urllib.request.urlopen(url.replace(signature, flipped))
    raise AssertionError("a tampered presigned URL was accepted")
except urllib.error.HTTPError as e:
    assert e.code == 403 and b"SignatureDoesNotMatch" in e.read(), e.code

# Signatures: a wrong secret, an unknown key.
expect_error("SignatureDoesNotMatch", 403, s3(os.environ["AWS_ACCESS_KEY_ID"], "wrong-secret").list_buckets)
expect_error("InvalidAccessKeyId", 403, s3("LKIAUNKNOWNUNKNOWN00", "x").list_buckets)

# Another namespace's buckets are not ours, and theirs not mine.
other = s3(os.environ["OTHER_ACCESS_KEY_ID"], os.environ["OTHER_SECRET_ACCESS_KEY"])
assert other.list_buckets()["Buckets"] == []
expect_error("AccessDenied", 403, other.get_object, Bucket="photos", Key="docs/readme.txt")
expect_error("AccessDenied", 403, other.put_object, Bucket="photos", Key="intruder", Body=b"x")
expect_error("AccessDenied", 403, other.delete_bucket, Bucket="photos")
expect_error("403", 403, other.head_bucket, Bucket="photos")
expect_error("BucketAlreadyExists", 409, other.create_bucket, Bucket="photos")
other.create_bucket(Bucket="theirs")
expect_error("AccessDenied", 403, c.list_objects_v2, Bucket="theirs")
other.delete_bucket(Bucket="theirs")

# A non-empty bucket is not deleted; an emptied one is.
expect_error("BucketNotEmpty", 409, c.delete_bucket, Bucket="photos")
for o in c.list_objects_v2(Bucket="photos")["Contents"]:
    c.delete_object(Bucket="photos", Key=o["Key"])
c.delete_bucket(Bucket="photos")
expect_error("NoSuchBucket", 404, c.delete_bucket, Bucket="photos")

print("s3 api: ok")
