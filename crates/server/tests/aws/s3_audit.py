"""S3 writes for the audit log: bucket create, PutObject, CopyObject, GetObject (a read: not
audited), DeleteObject, DeleteObjects, a multipart upload completed and one aborted, the
bucket's notification configuration, bucket delete.

argv: the bucket. Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY."""

import sys

import boto3
import botocore.config

from lambent_boto3 import ENDPOINT, REGION

bucket = sys.argv[1]
config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
s3 = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION, config=config)

s3.create_bucket(Bucket=bucket)
s3.put_object(Bucket=bucket, Key="a", Body=b"a" * 10)
s3.copy_object(Bucket=bucket, Key="b", CopySource={"Bucket": bucket, "Key": "a"})
assert s3.get_object(Bucket=bucket, Key="b")["Body"].read() == b"a" * 10
s3.delete_object(Bucket=bucket, Key="a")
s3.put_object(Bucket=bucket, Key="c", Body=b"c")
s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "b"}, {"Key": "c"}]})
up = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
part = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=b"m" * 10)
s3.complete_multipart_upload(
    Bucket=bucket, Key="m", UploadId=up,
    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
)
s3.delete_object(Bucket=bucket, Key="m")
up = s3.create_multipart_upload(Bucket=bucket, Key="n")["UploadId"]
s3.abort_multipart_upload(Bucket=bucket, Key="n", UploadId=up)
s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
s3.delete_bucket(Bucket=bucket)
print("s3 writes done")
