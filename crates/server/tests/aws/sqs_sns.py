"""boto3's sqs and sns clients against Lambent: every SQS operation in the JSON protocol (queue
attributes and redrive, batches, long polling, receive attributes, MD5s botocore can check),
the same calls in the query protocol (forms signed by botocore's own SigV4Auth, XML answers),
SNS topics, subscriptions and publishing (to a queue, read back through SQS and Lambent's own
API), and AWS's error codes in each protocol's shape."""

import hashlib
import json
import os
import struct
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.config
import botocore.exceptions
import botocore.session

from lambent_boto3 import ACCOUNT, ENDPOINT, REGION

config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION, config=config)
sns = boto3.client("sns", endpoint_url=ENDPOINT, region_name=REGION, config=config)
SQS_NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
SNS_NS = "{http://sns.amazonaws.com/doc/2010-03-31/}"


def fails(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response)
        return e.response
    raise AssertionError(f"{fn.__name__} succeeded, {code} expected")


def lambent(method, path, body=None):
    req = urllib.request.Request(
        f"{ENDPOINT}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {os.environ['LAMBENT_API_KEY']}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def md5_of_attributes(attributes):
    """SQS's MD5 of message attributes, computed here independently of the server."""
    h = hashlib.md5()
    for name in sorted(attributes):
        a = attributes[name]
        for part in (name.encode(), a["DataType"].encode()):
            h.update(struct.pack(">I", len(part)) + part)
        if "StringValue" in a:
            v = a["StringValue"].encode()
            h.update(b"\x01" + struct.pack(">I", len(v)) + v)
        else:
            v = a["BinaryValue"]
            h.update(b"\x02" + struct.pack(">I", len(v)) + v)
    return h.hexdigest()


# ---- Queues: create (idempotent), URL, list with prefix and pages, attributes ----
dead = sqs.create_queue(QueueName="sqs-dead")["QueueUrl"]
assert dead == f"{ENDPOINT}/{ACCOUNT}/sqs-dead", dead
dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
assert dead_arn == f"arn:aws:sqs:{REGION}:{ACCOUNT}:sqs-dead", dead_arn
redrive = json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2})
jobs_attrs = {"VisibilityTimeout": "1", "RedrivePolicy": redrive}
jobs = sqs.create_queue(QueueName="sqs-jobs", Attributes=jobs_attrs)["QueueUrl"]
assert sqs.create_queue(QueueName="sqs-jobs", Attributes=jobs_attrs)["QueueUrl"] == jobs
fails("QueueAlreadyExists", sqs.create_queue, QueueName="sqs-jobs",
      Attributes={"VisibilityTimeout": "5"})
fails("InvalidParameterValue", sqs.create_queue, QueueName="bad name!")
fails("InvalidAttributeName", sqs.create_queue, QueueName="sqs-x", Attributes={"Nope": "1"})
fails("InvalidParameterValue", sqs.create_queue, QueueName="sqs-x",
      Attributes={"RedrivePolicy": json.dumps(
          {"deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:missing", "maxReceiveCount": 2})})
assert sqs.get_queue_url(QueueName="sqs-jobs")["QueueUrl"] == jobs
e = fails("AWS.SimpleQueueService.NonExistentQueue", sqs.get_queue_url, QueueName="missing")
assert e["ResponseMetadata"]["HTTPHeaders"]["x-amzn-query-error"] == \
    "AWS.SimpleQueueService.NonExistentQueue;Sender", e
assert e["ResponseMetadata"]["HTTPStatusCode"] == 400

for i in range(3):
    sqs.create_queue(QueueName=f"sqs-page-{i}")
urls = sqs.list_queues(QueueNamePrefix="sqs-page-")["QueueUrls"]
assert urls == [f"{ENDPOINT}/{ACCOUNT}/sqs-page-{i}" for i in range(3)], urls
assert "NextToken" not in sqs.list_queues(QueueNamePrefix="sqs-page-")
first = sqs.list_queues(QueueNamePrefix="sqs-page-", MaxResults=2)
assert len(first["QueueUrls"]) == 2 and first["NextToken"], first
rest = sqs.list_queues(QueueNamePrefix="sqs-page-", MaxResults=2, NextToken=first["NextToken"])
assert rest["QueueUrls"] == [f"{ENDPOINT}/{ACCOUNT}/sqs-page-2"] and "NextToken" not in rest, rest
paged = [u for p in sqs.get_paginator("list_queues").paginate(QueueNamePrefix="sqs-page-",
                                                             PaginationConfig={"PageSize": 1})
         for u in p["QueueUrls"]]
assert paged == urls, paged

attrs = sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["All"])["Attributes"]
assert attrs["VisibilityTimeout"] == "1" and attrs["DelaySeconds"] == "0", attrs
assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 2}
assert attrs["ApproximateNumberOfMessages"] == "0" and attrs["MaximumMessageSize"] == "262144"
fails("InvalidAttributeName", sqs.get_queue_attributes, QueueUrl=jobs, AttributeNames=["Nope"])
assert sqs.list_dead_letter_source_queues(QueueUrl=dead)["queueUrls"] == [jobs]

# SetQueueAttributes changes only what it names; an empty RedrivePolicy removes it.
scratch = sqs.create_queue(QueueName="sqs-scratch", Attributes={"DelaySeconds": "2"})["QueueUrl"]
sqs.set_queue_attributes(QueueUrl=scratch, Attributes={"VisibilityTimeout": "7", "RedrivePolicy": redrive})
a = sqs.get_queue_attributes(QueueUrl=scratch, AttributeNames=["All"])["Attributes"]
assert (a["VisibilityTimeout"], a["DelaySeconds"]) == ("7", "2"), a
assert json.loads(a["RedrivePolicy"])["maxReceiveCount"] == 2, a
sqs.set_queue_attributes(QueueUrl=scratch, Attributes={"RedrivePolicy": "", "DelaySeconds": "0"})
a = sqs.get_queue_attributes(QueueUrl=scratch, AttributeNames=["All"])["Attributes"]
assert "RedrivePolicy" not in a and (a["VisibilityTimeout"], a["DelaySeconds"]) == ("7", "0"), a
fails("InvalidAttributeValue", sqs.set_queue_attributes, QueueUrl=scratch,
      Attributes={"VisibilityTimeout": "50000"})
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.set_queue_attributes,
      QueueUrl=f"{ENDPOINT}/{ACCOUNT}/missing", Attributes={"VisibilityTimeout": "7"})
# Another account's queue URL names no queue of the caller's.
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.get_queue_attributes,
      QueueUrl=f"{ENDPOINT}/someone-else/sqs-jobs", AttributeNames=["All"])

# ---- Messages: send with attributes (botocore checks the MD5s), receive with attributes ----
message_attributes = {
    "kind": {"DataType": "String", "StringValue": "order"},
    "count": {"DataType": "Number", "StringValue": "3"},
    "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01\xff"},
}
sent = sqs.send_message(QueueUrl=jobs, MessageBody="héllo", MessageAttributes=message_attributes)
assert sent["MD5OfMessageBody"] == hashlib.md5("héllo".encode()).hexdigest(), sent
assert sent["MD5OfMessageAttributes"] == md5_of_attributes(message_attributes), sent
got = sqs.receive_message(QueueUrl=jobs, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                          MessageSystemAttributeNames=["All"])["Messages"]
assert len(got) == 1, got
m = got[0]
assert m["MessageId"] == sent["MessageId"] and m["Body"] == "héllo", m
assert m["MD5OfBody"] == sent["MD5OfMessageBody"], m
assert m["MessageAttributes"]["blob"]["BinaryValue"] == b"\x00\x01\xff", m
assert m["MD5OfMessageAttributes"] == md5_of_attributes(message_attributes), m
assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
assert abs(int(m["Attributes"]["SentTimestamp"]) - time.time() * 1000) < 60_000, m
# Only the attributes asked for come back, with their own MD5.
sqs.change_message_visibility(QueueUrl=jobs, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
again = sqs.receive_message(QueueUrl=jobs, MessageAttributeNames=["kind"],
                            AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
assert set(again["MessageAttributes"]) == {"kind"}, again
assert again["MD5OfMessageAttributes"] == md5_of_attributes({"kind": message_attributes["kind"]})
assert again["Attributes"] == {"ApproximateReceiveCount": "2"}, again
# Received twice, the third receive moves it to the dead-letter queue (maxReceiveCount 2).
time.sleep(1.2)
assert "Messages" not in sqs.receive_message(QueueUrl=jobs)
dead_got = sqs.receive_message(QueueUrl=dead, WaitTimeSeconds=5)["Messages"]
assert dead_got[0]["MessageId"] == sent["MessageId"], dead_got
sqs.delete_message(QueueUrl=dead, ReceiptHandle=dead_got[0]["ReceiptHandle"])
# Deleting with a stale handle is no error; a handle that is not one is.
sqs.delete_message(QueueUrl=dead, ReceiptHandle=dead_got[0]["ReceiptHandle"])
fails("ReceiptHandleIsInvalid", sqs.delete_message, QueueUrl=dead, ReceiptHandle="garbage")
fails("AWS.SimpleQueueService.MessageNotInflight", sqs.change_message_visibility, QueueUrl=dead,
      ReceiptHandle=dead_got[0]["ReceiptHandle"], VisibilityTimeout=5)

# Long polling: a receive waiting 10 s returns as soon as a message is sent.
work = sqs.create_queue(QueueName="sqs-work")["QueueUrl"]
received = {}


def poll():
    started = time.time()
    received["r"] = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=10)
    received["took"] = time.time() - started


t = threading.Thread(target=poll)
t.start()
time.sleep(1)
sqs.send_message(QueueUrl=work, MessageBody="wake up")
t.join()
assert received["r"]["Messages"][0]["Body"] == "wake up", received
assert received["took"] < 8, received
sqs.delete_message(QueueUrl=work, ReceiptHandle=received["r"]["Messages"][0]["ReceiptHandle"])
# A delayed message waits for its delay.
sqs.send_message(QueueUrl=work, MessageBody="later", DelaySeconds=2)
assert "Messages" not in sqs.receive_message(QueueUrl=work)
assert sqs.receive_message(QueueUrl=work, WaitTimeSeconds=5)["Messages"][0]["Body"] == "later"
fails("InvalidParameterValue", sqs.receive_message, QueueUrl=work, MaxNumberOfMessages=11)
fails("InvalidParameterValue", sqs.receive_message, QueueUrl=work, WaitTimeSeconds=21)
fails("InvalidParameterValue", sqs.send_message, QueueUrl=work, MessageBody="x", DelaySeconds=901)
fails("InvalidParameterValue", sqs.send_message, QueueUrl=work, MessageBody="x" * (256 * 1024 + 1))
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.send_message,
      QueueUrl=f"{ENDPOINT}/{ACCOUNT}/missing", MessageBody="x")
sqs.purge_queue(QueueUrl=work)
assert sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible"])["Attributes"] == {
    "ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}

# ---- Batches: per-entry results, AWS's batch errors ----
batch = sqs.send_message_batch(QueueUrl=work, Entries=[
    {"Id": "a", "MessageBody": "one", "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "1"}}},
    {"Id": "b", "MessageBody": "two", "DelaySeconds": 0},
    {"Id": "c", "MessageBody": "three", "DelaySeconds": 5000},
])
assert sorted(s["Id"] for s in batch["Successful"]) == ["a", "b"], batch
assert [(f["Id"], f["Code"], f["SenderFault"]) for f in batch["Failed"]] == \
    [("c", "InvalidParameterValue", True)], batch
fails("AWS.SimpleQueueService.EmptyBatchRequest", sqs.send_message_batch, QueueUrl=work, Entries=[])
fails("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", sqs.send_message_batch, QueueUrl=work,
      Entries=[{"Id": str(i), "MessageBody": "x"} for i in range(11)])
fails("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", sqs.send_message_batch, QueueUrl=work,
      Entries=[{"Id": "same", "MessageBody": "x"}, {"Id": "same", "MessageBody": "y"}])
fails("AWS.SimpleQueueService.InvalidBatchEntryId", sqs.send_message_batch, QueueUrl=work,
      Entries=[{"Id": "no spaces", "MessageBody": "x"}])
two = sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
while len(two) < 2:
    two += sqs.receive_message(QueueUrl=work, MaxNumberOfMessages=10, WaitTimeSeconds=2)["Messages"]
assert sorted(m["Body"] for m in two) == ["one", "two"], two
changed = sqs.change_message_visibility_batch(QueueUrl=work, Entries=[
    {"Id": "x", "ReceiptHandle": two[0]["ReceiptHandle"], "VisibilityTimeout": 30},
    {"Id": "y", "ReceiptHandle": "garbage", "VisibilityTimeout": 30},
])
assert [s["Id"] for s in changed["Successful"]] == ["x"], changed
assert [(f["Id"], f["Code"]) for f in changed["Failed"]] == [("y", "ReceiptHandleIsInvalid")], changed
deleted = sqs.delete_message_batch(QueueUrl=work, Entries=[
    {"Id": "x", "ReceiptHandle": two[0]["ReceiptHandle"]},
    {"Id": "y", "ReceiptHandle": two[1]["ReceiptHandle"]},
    {"Id": "z", "ReceiptHandle": "garbage"},
])
assert sorted(s["Id"] for s in deleted["Successful"]) == ["x", "y"], deleted
assert [(f["Id"], f["Code"]) for f in deleted["Failed"]] == [("z", "ReceiptHandleIsInvalid")], deleted
attrs = sqs.get_queue_attributes(QueueUrl=work, AttributeNames=["All"])["Attributes"]
assert (attrs["ApproximateNumberOfMessages"], attrs["ApproximateNumberOfMessagesNotVisible"]) == ("0", "0")

# ---- The same messages through Lambent's own queue API ----
sqs.send_message(QueueUrl=work, MessageBody="seen by lambent",
                 MessageAttributes={"from": {"DataType": "String", "StringValue": "boto3"}})
mine = lambent("POST", "/v1/queues/sqs-work/receive", {"max": 10, "wait": 5})["messages"]
assert [(m["body"], m["attributes"]["from"]["stringValue"]) for m in mine] == \
    [("seen by lambent", "boto3")], mine
lambent("POST", "/v1/queues/sqs-work/messages", {"body": "sent by lambent"})
back = sqs.receive_message(QueueUrl=work, WaitTimeSeconds=5)["Messages"]
assert back[0]["Body"] == "sent by lambent", back
assert any(q["name"] == "sqs-jobs" for q in lambent("GET", "/v1/queues")["queues"])

# ---- The query protocol: forms signed by botocore's SigV4Auth, XML answers ----
credentials = botocore.session.get_session().get_credentials()


def body_bytes(prepared):
    body = prepared.body
    return body.encode() if isinstance(body, str) else body


def query(service, params, path="/"):
    req = botocore.awsrequest.AWSRequest(
        method="POST", url=f"{ENDPOINT}{path}", data=params,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(credentials, service, REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=body_bytes(prepared), method="POST",
                               headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, dict(resp.headers), ET.fromstring(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), ET.fromstring(e.read())


status, _, x = query("sqs", {"Action": "CreateQueue", "Version": "2012-11-05", "QueueName": "sqs-query",
                             "Attribute.1.Name": "VisibilityTimeout", "Attribute.1.Value": "9"})
assert status == 200, ET.tostring(x)
qurl = x.find(f"{SQS_NS}CreateQueueResult/{SQS_NS}QueueUrl").text
assert qurl == f"{ENDPOINT}/{ACCOUNT}/sqs-query", qurl
assert x.find(f"{SQS_NS}ResponseMetadata/{SQS_NS}RequestId").text
status, _, x = query("sqs", {
    "Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": qurl, "MessageBody": "by form & <xml>",
    "MessageAttribute.1.Name": "kind", "MessageAttribute.1.Value.DataType": "String",
    "MessageAttribute.1.Value.StringValue": "q"})
assert status == 200, ET.tostring(x)
r = x.find(f"{SQS_NS}SendMessageResult")
assert r.find(f"{SQS_NS}MD5OfMessageBody").text == hashlib.md5(b"by form & <xml>").hexdigest()
assert r.find(f"{SQS_NS}MD5OfMessageAttributes").text == \
    md5_of_attributes({"kind": {"DataType": "String", "StringValue": "q"}})
# Sent to the queue's URL, a query request names its queue by the path.
status, _, x = query("sqs", {"Action": "ReceiveMessage", "Version": "2012-11-05",
                             "MaxNumberOfMessages": "5", "AttributeName.1": "All",
                             "MessageAttributeName.1": "All"},
                     path=f"/{ACCOUNT}/sqs-query")
assert status == 200, ET.tostring(x)
msg = x.find(f"{SQS_NS}ReceiveMessageResult/{SQS_NS}Message")
assert msg.find(f"{SQS_NS}Body").text == "by form & <xml>", ET.tostring(x)
attrs = {a.find(f"{SQS_NS}Name").text: a.find(f"{SQS_NS}Value").text
         for a in msg.findall(f"{SQS_NS}Attribute")}
assert attrs["ApproximateReceiveCount"] == "1", attrs
ma = msg.find(f"{SQS_NS}MessageAttribute")
assert ma.find(f"{SQS_NS}Name").text == "kind"
assert ma.find(f"{SQS_NS}Value/{SQS_NS}StringValue").text == "q"
status, _, x = query("sqs", {"Action": "DeleteMessageBatch", "Version": "2012-11-05", "QueueUrl": qurl,
                             "DeleteMessageBatchRequestEntry.1.Id": "one",
                             "DeleteMessageBatchRequestEntry.1.ReceiptHandle":
                                 msg.find(f"{SQS_NS}ReceiptHandle").text})
ok = x.find(f"{SQS_NS}DeleteMessageBatchResult/{SQS_NS}DeleteMessageBatchResultEntry/{SQS_NS}Id")
assert status == 200 and ok.text == "one", ET.tostring(x)
status, _, x = query("sqs", {"Action": "GetQueueAttributes", "Version": "2012-11-05", "QueueUrl": qurl,
                             "AttributeName.1": "VisibilityTimeout"})
a = x.find(f"{SQS_NS}GetQueueAttributesResult/{SQS_NS}Attribute")
assert (a.find(f"{SQS_NS}Name").text, a.find(f"{SQS_NS}Value").text) == ("VisibilityTimeout", "9")
status, _, x = query("sqs", {"Action": "ListQueues", "Version": "2012-11-05", "QueueNamePrefix": "sqs-query"})
assert [u.text for u in x.iter(f"{SQS_NS}QueueUrl")] == [qurl], ET.tostring(x)
# Errors in the query protocol's XML, with the legacy codes.
status, _, x = query("sqs", {"Action": "GetQueueUrl", "Version": "2012-11-05", "QueueName": "missing"})
assert status == 400, status
assert x.find("Error/Code").text == "AWS.SimpleQueueService.NonExistentQueue", ET.tostring(x)
assert x.find("Error/Type").text == "Sender" and x.find("RequestId").text
status, _, x = query("sqs", {"Action": "Frobnicate", "Version": "2012-11-05"})
assert (status, x.find("Error/Code").text) == (400, "InvalidAction"), ET.tostring(x)
status, _, x = query("sqs", {"Action": "DeleteQueue", "Version": "2012-11-05", "QueueUrl": qurl})
assert status == 200 and x.tag == f"{SQS_NS}DeleteQueueResponse", ET.tostring(x)
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.get_queue_url, QueueName="sqs-query")
# A form signed with another key's secret is refused.
bad = botocore.credentials.Credentials(credentials.access_key, "not-the-secret")
req = botocore.awsrequest.AWSRequest(method="POST", url=f"{ENDPOINT}/", data={"Action": "ListQueues"},
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
botocore.auth.SigV4Auth(bad, "sqs", REGION).add_auth(req)
p = req.prepare()
try:
    urllib.request.urlopen(urllib.request.Request(p.url, data=body_bytes(p), method="POST", headers=dict(p.headers)))
    raise AssertionError("a wrongly signed request was answered")
except urllib.error.HTTPError as e:
    body = ET.fromstring(e.read())
    assert (e.code, body.find("Error/Code").text) == (403, "SignatureDoesNotMatch"), (e.code, ET.tostring(body))

# ---- SNS: topics, subscriptions, publishing to a queue ----
topic = sns.create_topic(Name="sns-news")["TopicArn"]
assert topic == f"arn:aws:sns:{REGION}:{ACCOUNT}:sns-news", topic
assert sns.create_topic(Name="sns-news")["TopicArn"] == topic
assert topic in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
inbox = sqs.create_queue(QueueName="sns-inbox")["QueueUrl"]
inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn,
                    ReturnSubscriptionArn=True)["SubscriptionArn"]
assert sub.startswith(topic + ":"), sub
assert sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)["SubscriptionArn"] == sub
subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
assert [(s["SubscriptionArn"], s["Protocol"], s["Endpoint"], s["TopicArn"]) for s in subs] == \
    [(sub, "sqs", inbox_arn, topic)], subs
assert sub in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
ta = sns.get_topic_attributes(TopicArn=topic)["Attributes"]
assert ta["TopicArn"] == topic and ta["SubscriptionsConfirmed"] == "1", ta

published = sns.publish(TopicArn=topic, Message="extra! extra!", Subject="news",
                        MessageAttributes={"edition": {"DataType": "String", "StringValue": "morning"}})
n = sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=5)["Messages"][0]
envelope = json.loads(n["Body"])
assert envelope["Type"] == "Notification" and envelope["MessageId"] == published["MessageId"], envelope
assert (envelope["TopicArn"], envelope["Subject"], envelope["Message"]) == (topic, "news", "extra! extra!")
assert envelope["MessageAttributes"]["edition"] == {"Type": "String", "Value": "morning"}, envelope
sqs.delete_message(QueueUrl=inbox, ReceiptHandle=n["ReceiptHandle"])

pb = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
    {"Id": "one", "Message": "first"},
    {"Id": "two", "Message": "second", "Subject": "s",
     "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "2"}}},
    {"Id": "three", "Message": "third", "MessageAttributes": {"bad": {"DataType": "Nope", "StringValue": "x"}}},
])
assert sorted(s["Id"] for s in pb["Successful"]) == ["one", "two"], pb
assert [(f["Id"], f["Code"], f["SenderFault"]) for f in pb["Failed"]] == \
    [("three", "InvalidParameter", True)], pb
bodies = []
while len(bodies) < 2:
    for m in sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10, WaitTimeSeconds=5)["Messages"]:
        bodies.append(json.loads(m["Body"])["Message"])
assert sorted(bodies) == ["first", "second"], bodies
fails("BatchEntryIdsNotDistinct", sns.publish_batch, TopicArn=topic,
      PublishBatchRequestEntries=[{"Id": "a", "Message": "x"}, {"Id": "a", "Message": "y"}])
fails("EmptyBatchRequest", sns.publish_batch, TopicArn=topic, PublishBatchRequestEntries=[])
fails("TooManyEntriesInBatchRequest", sns.publish_batch, TopicArn=topic,
      PublishBatchRequestEntries=[{"Id": str(i), "Message": "x"} for i in range(11)])

# SNS's errors: NotFound (404) and InvalidParameter (400), in its XML.
missing_topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:missing"
e = fails("NotFound", sns.publish, TopicArn=missing_topic, Message="x")
assert e["ResponseMetadata"]["HTTPStatusCode"] == 404, e
fails("NotFound", sns.get_topic_attributes, TopicArn=missing_topic)
fails("NotFound", sns.subscribe, TopicArn=missing_topic, Protocol="sqs", Endpoint=inbox_arn)
fails("NotFound", sns.subscribe, TopicArn=topic, Protocol="sqs",
      Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:missing")
fails("NotFound", sns.subscribe, TopicArn=topic, Protocol="lambda",
      Endpoint=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:missing")
fails("InvalidParameter", sns.subscribe, TopicArn=topic, Protocol="email", Endpoint="a@b.c")
fails("InvalidParameter", sns.subscribe, TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn,
      Attributes={"FilterPolicy": json.dumps({"edition": ["morning"]})})  # other attributes
fails("InvalidParameter", sns.publish, TopicArn="not-an-arn", Message="x")
fails("InvalidParameter", sns.create_topic, Name="bad name!")

sns.unsubscribe(SubscriptionArn=sub)
assert sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"] == []
fails("NotFound", sns.unsubscribe, SubscriptionArn=sub)
sns.publish(TopicArn=topic, Message="nobody listens")
assert "Messages" not in sqs.receive_message(QueueUrl=inbox, WaitTimeSeconds=1)
sns.delete_topic(TopicArn=topic)
sns.delete_topic(TopicArn=topic)
assert topic not in [t["TopicArn"] for t in sns.list_topics()["Topics"]]

# ---- Deleting queues ----
for url in (jobs, dead, work, scratch, inbox):
    sqs.delete_queue(QueueUrl=url)
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.delete_queue, QueueUrl=jobs)
assert not any(u.endswith("/sqs-jobs") for u in sqs.list_queues().get("QueueUrls", []))
print("sqs sns: ok")
