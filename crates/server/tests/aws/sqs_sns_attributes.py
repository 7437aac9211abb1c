"""boto3's sqs and sns clients against Lambent, for what apps configure beyond sending and
receiving: every queue attribute `All` reports and the ones that change behaviour (retention,
maximum size, per-queue delay, default long polling, visibility), tags, the redrive allow
policy, FIFO refused with AWS's error (and botocore's exception class), the message system
attributes; SNS subscription attributes (raw delivery, filter policies over attributes and
bodies) read and changed, and the per-entry errors of PublishBatch."""

import json
import time

import boto3
import botocore.config
import botocore.exceptions

from lambent_boto3 import ACCOUNT, ENDPOINT, REGION

config = botocore.config.Config(retries={"max_attempts": 1, "mode": "standard"})
sqs = boto3.client("sqs", endpoint_url=ENDPOINT, region_name=REGION, config=config)
sns = boto3.client("sns", endpoint_url=ENDPOINT, region_name=REGION, config=config)


def fails(code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, (got, code, e.response)
        return e
    raise AssertionError(f"{fn.__name__} succeeded, {code} expected")


def arn_of(url):
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def counts(url):
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"]
    a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return tuple(int(a[n]) for n in names)


# ---- Every attribute a standard queue reports, as given at creation ----
before = int(time.time())
q = sqs.create_queue(QueueName="attr-q", tags={"team": "orders"}, Attributes={
    "MessageRetentionPeriod": "120", "ReceiveMessageWaitTimeSeconds": "3",
    "MaximumMessageSize": "1024", "DelaySeconds": "1", "VisibilityTimeout": "4",
    "Policy": json.dumps({"Version": "2012-10-17", "Statement": []}),
})["QueueUrl"]
a = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
assert set(a) == {
    "QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp",
    "VisibilityTimeout", "MaximumMessageSize", "MessageRetentionPeriod", "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds", "SqsManagedSseEnabled", "Policy"}, a
assert (a["MessageRetentionPeriod"], a["ReceiveMessageWaitTimeSeconds"], a["MaximumMessageSize"],
        a["DelaySeconds"], a["VisibilityTimeout"], a["SqsManagedSseEnabled"]) == \
    ("120", "3", "1024", "1", "4", "true"), a
assert json.loads(a["Policy"])["Version"] == "2012-10-17", a
assert before - 1 <= int(a["CreatedTimestamp"]) <= int(a["LastModifiedTimestamp"]) <= time.time() + 1, a
# Creating it again with the same attributes is no error; with others it is.
assert sqs.create_queue(QueueName="attr-q", Attributes={
    "MessageRetentionPeriod": "120", "ReceiveMessageWaitTimeSeconds": "3",
    "MaximumMessageSize": "1024", "DelaySeconds": "1", "VisibilityTimeout": "4",
    "Policy": json.dumps({"Version": "2012-10-17", "Statement": []})})["QueueUrl"] == q
fails("QueueAlreadyExists", sqs.create_queue, QueueName="attr-q",
      Attributes={"MessageRetentionPeriod": "300"})

# Out of range: InvalidAttributeValue; not an attribute (or a read-only one): InvalidAttributeName.
for name, value in [("MessageRetentionPeriod", "59"), ("MessageRetentionPeriod", "1209601"),
                    ("MaximumMessageSize", "1023"), ("MaximumMessageSize", "262145"),
                    ("ReceiveMessageWaitTimeSeconds", "21"), ("DelaySeconds", "901"),
                    ("VisibilityTimeout", "43201"), ("VisibilityTimeout", "soon")]:
    fails("InvalidAttributeValue", sqs.set_queue_attributes, QueueUrl=q, Attributes={name: value})
fails("InvalidAttributeName", sqs.set_queue_attributes, QueueUrl=q, Attributes={"QueueArn": "x"})
fails("InvalidAttributeName", sqs.set_queue_attributes, QueueUrl=q,
      Attributes={"ContentBasedDeduplication": "true"})

# ---- The size limit, the queue's delay, the default long poll, visibility ----
e = fails("InvalidParameterValue", sqs.send_message, QueueUrl=q, MessageBody="x" * 1025)
assert "1024" in e.response["Error"]["Message"], e.response
sqs.send_message(QueueUrl=q, MessageBody="y" * 1000)
assert counts(q) == (0, 0, 1), counts(q)
# No WaitTimeSeconds: the queue's 3 s; the message shows once its 1 s delay is over.
started = time.time()
got = sqs.receive_message(QueueUrl=q, MessageSystemAttributeNames=["All"])
took = time.time() - started
assert len(got["Messages"]) == 1 and 0.5 < took < 3.0, (took, got)
m = got["Messages"][0]
sent_ms, first_ms = int(m["Attributes"]["SentTimestamp"]), int(m["Attributes"]["ApproximateFirstReceiveTimestamp"])
assert sent_ms + 900 <= first_ms <= time.time() * 1000 + 1000, m["Attributes"]
assert m["Attributes"]["ApproximateReceiveCount"] == "1", m
assert counts(q) == (0, 1, 0), counts(q)
# Visible again after the queue's 4 s visibility timeout; an empty queue waits the 3 s.
started = time.time()
assert "Messages" not in sqs.receive_message(QueueUrl=q, WaitTimeSeconds=1)
assert time.time() - started >= 0.9
again = sqs.receive_message(QueueUrl=q, WaitTimeSeconds=5, AttributeNames=["ApproximateReceiveCount"])
assert again["Messages"][0]["Attributes"]["ApproximateReceiveCount"] == "2", again
sqs.delete_message(QueueUrl=q, ReceiptHandle=again["Messages"][0]["ReceiptHandle"])
# Per-message delay overrides the queue's.
sqs.send_message(QueueUrl=q, MessageBody="now", DelaySeconds=0)
assert counts(q) == (1, 0, 0), counts(q)
sqs.purge_queue(QueueUrl=q)

# SetQueueAttributes changes what it names and the modification time; the size limit follows.
sqs.set_queue_attributes(QueueUrl=q, Attributes={"MaximumMessageSize": "2048", "Policy": ""})
a = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["All"])["Attributes"]
assert a["MaximumMessageSize"] == "2048" and "Policy" not in a and a["DelaySeconds"] == "1", a
sqs.send_message(QueueUrl=q, MessageBody="z" * 2000)

# ---- Tags ----
assert sqs.list_queue_tags(QueueUrl=q)["Tags"] == {"team": "orders"}
sqs.tag_queue(QueueUrl=q, Tags={"env": "test", "team": "billing"})
assert sqs.list_queue_tags(QueueUrl=q)["Tags"] == {"env": "test", "team": "billing"}
sqs.untag_queue(QueueUrl=q, TagKeys=["team"])
assert sqs.list_queue_tags(QueueUrl=q)["Tags"] == {"env": "test"}
fails("AWS.SimpleQueueService.NonExistentQueue", sqs.list_queue_tags,
      QueueUrl=f"{ENDPOINT}/{ACCOUNT}/missing")

# ---- RedriveAllowPolicy on a dead-letter queue ----
closed = sqs.create_queue(QueueName="attr-closed-dlq",
                          Attributes={"RedriveAllowPolicy": json.dumps({"redrivePermission": "denyAll"})})["QueueUrl"]
redrive = lambda dlq: json.dumps({"deadLetterTargetArn": arn_of(dlq), "maxReceiveCount": 3})
e = fails("InvalidParameterValue", sqs.create_queue, QueueName="attr-src", Attributes={"RedrivePolicy": redrive(closed)})
assert "RedriveAllowPolicy" in e.response["Error"]["Message"], e.response
src = sqs.create_queue(QueueName="attr-src")["QueueUrl"]
sqs.set_queue_attributes(QueueUrl=closed, Attributes={"RedriveAllowPolicy": json.dumps(
    {"redrivePermission": "byQueue", "sourceQueueArns": [arn_of(src)]})})
sqs.set_queue_attributes(QueueUrl=src, Attributes={"RedrivePolicy": redrive(closed)})
a = sqs.get_queue_attributes(QueueUrl=closed, AttributeNames=["RedriveAllowPolicy"])["Attributes"]
assert json.loads(a["RedriveAllowPolicy"])["sourceQueueArns"] == [arn_of(src)], a
other = sqs.create_queue(QueueName="attr-other")["QueueUrl"]
fails("InvalidParameterValue", sqs.set_queue_attributes, QueueUrl=other,
      Attributes={"RedrivePolicy": redrive(closed)})
fails("InvalidParameterValue", sqs.set_queue_attributes, QueueUrl=closed,
      Attributes={"RedriveAllowPolicy": json.dumps({"redrivePermission": "sometimes"})})

# ---- StartMessageMoveTask: a dead-letter queue's messages back to their source ----
# A message received maxReceiveCount (3) times moves to the dead-letter queue on the next receive.
sqs.send_message(QueueUrl=src, MessageBody="poison",
                 MessageAttributes={"k": {"DataType": "String", "StringValue": "v"}})
for _ in range(3):
    assert len(sqs.receive_message(QueueUrl=src, VisibilityTimeout=0)["Messages"]) == 1
assert "Messages" not in sqs.receive_message(QueueUrl=src, VisibilityTimeout=0)
assert counts(closed) == (1, 0, 0), counts(closed)
e = fails("InvalidParameterValue", sqs.start_message_move_task, SourceArn=arn_of(other))
assert "dead-letter" in e.response["Error"]["Message"], e.response
fails("InvalidParameterValue", sqs.start_message_move_task, SourceArn="arn:aws:sqs:nowhere:1:x")
handle = sqs.start_message_move_task(SourceArn=arn_of(closed))["TaskHandle"]
assert handle, handle
assert counts(closed) == (0, 0, 0) and counts(src) == (1, 0, 0), (counts(closed), counts(src))
m = sqs.receive_message(QueueUrl=src, MessageAttributeNames=["All"],
                        MessageSystemAttributeNames=["ApproximateReceiveCount"])["Messages"][0]
assert (m["Body"], m["MessageAttributes"]["k"]["StringValue"], m["Attributes"]["ApproximateReceiveCount"]) == \
    ("poison", "v", "1"), m
sqs.delete_message(QueueUrl=src, ReceiptHandle=m["ReceiptHandle"])

# ---- FIFO queues are refused with AWS's error; botocore maps the codes to its classes ----
try:
    sqs.create_queue(QueueName="attr.fifo", Attributes={"FifoQueue": "true"})
    raise AssertionError("a FIFO queue was created")
except sqs.exceptions.UnsupportedOperation as e:
    assert "FIFO" in e.response["Error"]["Message"], e.response
fails("AWS.SimpleQueueService.UnsupportedOperation", sqs.create_queue, QueueName="attr-f",
      Attributes={"FifoQueue": "true"})
assert sqs.create_queue(QueueName="attr-std", Attributes={"FifoQueue": "false"})["QueueUrl"]
try:
    sqs.get_queue_url(QueueName="attr-missing")
    raise AssertionError("a missing queue was found")
except sqs.exceptions.QueueDoesNotExist:
    pass

# ---- ListQueues: prefix and pages ----
names = [u.rsplit("/", 1)[1] for p in sqs.get_paginator("list_queues").paginate(
    QueueNamePrefix="attr-", PaginationConfig={"PageSize": 2}) for u in p.get("QueueUrls", [])]
assert names == sorted(["attr-q", "attr-closed-dlq", "attr-src", "attr-other", "attr-std"]), names

# ---- SNS: raw delivery and filter policies ----
topic = sns.create_topic(Name="attr-events")["TopicArn"]
raw_q = sqs.create_queue(QueueName="attr-raw")["QueueUrl"]
env_q = sqs.create_queue(QueueName="attr-env")["QueueUrl"]
raw_sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn_of(raw_q), ReturnSubscriptionArn=True,
                        Attributes={"RawMessageDelivery": "true",
                                    "FilterPolicy": json.dumps({"kind": ["order"],
                                                                "total": [{"numeric": [">", 10]}]})})["SubscriptionArn"]
env_sub = sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn_of(env_q), ReturnSubscriptionArn=True,
                        Attributes={"FilterPolicy": json.dumps({"kind": [{"prefix": "re"}]})})["SubscriptionArn"]
sa = sns.get_subscription_attributes(SubscriptionArn=raw_sub)["Attributes"]
assert (sa["RawMessageDelivery"], sa["FilterPolicyScope"], sa["Protocol"], sa["TopicArn"],
        sa["Endpoint"], sa["SubscriptionArn"]) == ("true", "MessageAttributes", "sqs", topic, arn_of(raw_q), raw_sub), sa
assert json.loads(sa["FilterPolicy"]) == {"kind": ["order"], "total": [{"numeric": [">", 10]}]}, sa
assert sns.get_subscription_attributes(SubscriptionArn=env_sub)["Attributes"]["RawMessageDelivery"] == "false"


def attrs(**kw):
    return {k: {"DataType": "Number" if isinstance(v, (int, float)) else "String", "StringValue": str(v)}
            for k, v in kw.items()}


sns.publish(TopicArn=topic, Message="big order", MessageAttributes=attrs(kind="order", total=12))
sns.publish(TopicArn=topic, Message="small order", MessageAttributes=attrs(kind="order", total=3))
sns.publish(TopicArn=topic, Message="a refund", MessageAttributes=attrs(kind="refund", total=50))
sns.publish(TopicArn=topic, Message="no attributes")


def drain(url, wait=2):
    out = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return out
        out += got
        sqs.delete_message_batch(QueueUrl=url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)])


raw = drain(raw_q)
assert [m["Body"] for m in raw] == ["big order"], raw
# Raw delivery: the message itself, its attributes as the SQS message's (MD5 checked by botocore).
assert raw[0]["MessageAttributes"]["kind"] == {"StringValue": "order", "DataType": "String"}, raw
assert raw[0]["MessageAttributes"]["total"]["StringValue"] == "12", raw
enveloped = drain(env_q)
assert [json.loads(m["Body"])["Message"] for m in enveloped] == ["a refund"], enveloped
assert "MessageAttributes" not in enveloped[0], enveloped

# Changed: a body-scoped policy, raw delivery off.
sns.set_subscription_attributes(SubscriptionArn=raw_sub, AttributeName="FilterPolicyScope",
                                AttributeValue="MessageBody")
sns.set_subscription_attributes(SubscriptionArn=raw_sub, AttributeName="FilterPolicy",
                                AttributeValue=json.dumps({"order": {"total": [{"numeric": [">=", 100]}],
                                                                     "country": [{"anything-but": ["XX"]}]}}))
sns.set_subscription_attributes(SubscriptionArn=raw_sub, AttributeName="RawMessageDelivery",
                                AttributeValue="false")
sa = sns.get_subscription_attributes(SubscriptionArn=raw_sub)["Attributes"]
assert (sa["RawMessageDelivery"], sa["FilterPolicyScope"]) == ("false", "MessageBody"), sa
for body in ({"order": {"total": 150, "country": "FR"}}, {"order": {"total": 150, "country": "XX"}},
             {"order": {"total": 5, "country": "FR"}}, "not json"):
    sns.publish(TopicArn=topic, Message=json.dumps(body) if isinstance(body, dict) else body)
got = drain(raw_q)
assert [json.loads(json.loads(m["Body"])["Message"]) for m in got] == \
    [{"order": {"total": 150, "country": "FR"}}], got

# Bad attributes: InvalidParameter; a subscription that is not there: NotFound.
for name, value in [("FilterPolicy", "{not json"), ("FilterPolicy", json.dumps({"kind": "order"})),
                    ("FilterPolicy", json.dumps({"kind": [{"wildcard": "o*"}]})),
                    ("FilterPolicyScope", "Everything"), ("RawMessageDelivery", "maybe"),
                    ("DeliveryPolicy", "{}")]:
    fails("InvalidParameter", sns.set_subscription_attributes, SubscriptionArn=env_sub,
          AttributeName=name, AttributeValue=value)
fails("InvalidParameter", sns.subscribe, TopicArn=topic, Protocol="sqs", Endpoint=arn_of(env_q),
      Attributes={"RawMessageDelivery": "true"})
fails("NotFound", sns.get_subscription_attributes, SubscriptionArn=f"{topic}:sub_nope")
fails("NotFound", sns.set_subscription_attributes, SubscriptionArn=f"{topic}:sub_nope",
      AttributeName="RawMessageDelivery", AttributeValue="true")
subs = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
assert sorted(s["SubscriptionArn"] for s in subs) == sorted([raw_sub, env_sub]), subs

# ---- PublishBatch: each entry's own error, the others delivered ----
sns.set_subscription_attributes(SubscriptionArn=env_sub, AttributeName="FilterPolicy", AttributeValue="")
pb = sns.publish_batch(TopicArn=topic, PublishBatchRequestEntries=[
    {"Id": "ok", "Message": "fine"},
    {"Id": "big", "Message": "x" * (256 * 1024 + 1)},
    {"Id": "badattr", "Message": "x", "MessageAttributes": {"n": {"DataType": "Number"}}},
])
assert [s["Id"] for s in pb["Successful"]] == ["ok"], pb
failed = {f["Id"]: (f["Code"], f["SenderFault"]) for f in pb["Failed"]}
assert failed == {"big": ("InvalidParameter", True), "badattr": ("InvalidParameter", True)}, pb
assert [json.loads(m["Body"])["Message"] for m in drain(env_q)] == ["fine"]

for url in (q, closed, src, other, raw_q, env_q):
    sqs.delete_queue(QueueUrl=url)
sns.delete_topic(TopicArn=topic)
print("sqs sns attributes: ok")
