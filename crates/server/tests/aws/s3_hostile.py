"""Bad input to the S3 API: hostile keys, a lying Content-Length, a truncated aws-chunked
upload, a single PUT claiming more than 5 GiB. Each gets S3's error and leaves no object;
the Rust test then checks the data directory holds exactly the data of the objects listed
here ("objects: N")."""

import os
import socket
import urllib.parse

import boto3
import botocore.config
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

ENDPOINT = os.environ["LAMBENT_URL"]
REGION = "us-east-1"
URL = urllib.parse.urlparse(ENDPOINT)
CREDS = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])

c = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                 config=botocore.config.Config(retries={"max_attempts": 1}))
c.create_bucket(Bucket="hostile")


def code_of(call, **kwargs):
    try:
        call(**kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"]
    return None


def signed(method, path, headers, payload_hash):
    req = AWSRequest(method=method, url=ENDPOINT + path, headers=headers)
    req.headers["x-amz-content-sha256"] = payload_hash
    SigV4Auth(CREDS, "s3", REGION).add_auth(req)
    return dict(req.headers.items())


def raw(method, path, headers, parts, close_write=True, timeout=10):
    """Sends a request by hand (so its framing can lie); returns (status, body)."""
    s = socket.create_connection((URL.hostname, URL.port))
    head = f"{method} {path} HTTP/1.1\r\nHost: {URL.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    s.sendall(head.encode())
    for p in parts:
        s.sendall(p)
    if close_write:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(timeout)
    data = b""
    try:
        while b"</Error>" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    s.close()
    text = data.decode(errors="replace")
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/1.1 ") else None
    return status, text


def absent(key):
    return code_of(c.head_object, Bucket="hostile", Key=key) == "404"


# Keys are opaque strings: traversal and absolute keys are stored as themselves.
stored = []
for key in ["../../escape", "../../../etc/passwd-lambent", "/absolute/key", "a/./b/../c"]:
    c.put_object(Bucket="hostile", Key=key, Body=key.encode())
    assert c.get_object(Bucket="hostile", Key=key)["Body"].read() == key.encode(), key
    stored.append(key)
listed = sorted(o["Key"] for o in c.list_objects_v2(Bucket="hostile")["Contents"])
assert listed == sorted(stored), listed
# NUL is refused.
nul = code_of(c.put_object, Bucket="hostile", Key="nul\x00byte", Body=b"x")
assert nul == "InvalidArgument", nul
assert code_of(c.put_object, Bucket="hostile", Key="k" * 1025, Body=b"x") == "KeyTooLongError"

# A Content-Length that promises more than is sent.
h = signed("PUT", "/hostile/liar", {"Content-Length": "1000"}, "UNSIGNED-PAYLOAD")
status, text = raw("PUT", "/hostile/liar", h, [b"only ten b"])
assert status == 400 and "IncompleteBody" in text, (status, text)
assert absent("liar")

# An aws-chunked upload cut off mid-chunk.
decoded = 100
framed = b"64\r\n" + b"a" * decoded + b"\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
h = signed("PUT", "/hostile/chunked", {
    "Content-Encoding": "aws-chunked",
    "Content-Length": str(len(framed)),
    "x-amz-decoded-content-length": str(decoded),
    "x-amz-trailer": "x-amz-checksum-crc32",
}, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
status, text = raw("PUT", "/hostile/chunked", h, [framed[:40]])
assert status == 400, (status, text)
assert absent("chunked")
# The same upload whole (the connection left open: a server may drop a half-closed one), but
# with a wrong trailing checksum: BadDigest.
status, text = raw("PUT", "/hostile/chunked", h, [framed], close_write=False)
assert status == 400 and "BadDigest" in text, (status, text)
assert absent("chunked")

# A single PUT claiming more than 5 GiB is refused from its Content-Length, before any body.
h = signed("PUT", "/hostile/huge", {"Content-Length": str(5 * 1024**3 + 1)}, "UNSIGNED-PAYLOAD")
status, text = raw("PUT", "/hostile/huge", h, [], close_write=False)
assert status == 400 and "EntityTooLarge" in text, (status, text)
assert absent("huge")

print(f"objects: {len(stored)}")
print("s3 hostile: ok")
