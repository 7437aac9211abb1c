"""Shared by the boto3 scenarios: a Lambda client pointed at the Lambent server under test
(LAMBENT_URL; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), zips, and the test
function's code."""

import hashlib
import base64
import io
import json
import os
import zipfile

import boto3
import botocore.config

ENDPOINT = os.environ["LAMBENT_URL"]
ACCOUNT = "default"
REGION = "us-east-1"


def client():
    # No retries: a throttle must surface as TooManyRequestsException, not be retried away.
    config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
    return boto3.client("lambda", endpoint_url=ENDPOINT, region_name=REGION, config=config)


def zip_of(files):
    """The same bytes for the same files, whenever made: each entry has a fixed time (an entry
    named by a string gets the current one, and a zip made again two seconds later differed, so
    a code hash computed from it did not match the one uploaded)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in files.items():
            entry = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            z.writestr(entry, text)
    return buf.getvalue()


def app(version):
    """A handler that says which code it is, counts its calls (warm reuse) and can fail."""
    return zip_of({"app.py": f"""
import json, os
calls = 0
def handler(event, context):
    global calls
    calls += 1
    print("handling", json.dumps(event))
    if event.get("fail"):
        raise ValueError("asked to fail")
    return {{"echo": event, "version": {version!r}, "calls": calls,
            "greeting": os.environ.get("GREETING"), "arn": context.invoked_function_arn}}
"""})


def sha256_b64(data):
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def arn(name, qualifier=None):
    base = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
    return f"{base}:{qualifier}" if qualifier else base


def invoke(lam, name, event, **kwargs):
    r = lam.invoke(FunctionName=name, Payload=json.dumps(event), **kwargs)
    body = r["Payload"].read()
    return r, (json.loads(body) if body else None)


def create(lam, name, code, **kwargs):
    return lam.create_function(
        FunctionName=name, Runtime="python3.12", Handler="app.handler",
        Role="arn:aws:iam::000000000000:role/any", Code={"ZipFile": code}, **kwargs)
