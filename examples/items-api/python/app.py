"""A small REST API for items kept in a DynamoDB table, written as for AWS Lambda behind an
API Gateway HTTP API (payload 2.0), with boto3 and nothing else:

    POST   /items        creates an item from the JSON body: 201 and the item with its new id
    GET    /items        lists the items: 200 and {"items": [...]}
    GET    /items/{id}   reads one: 200 and the item, or 404
    PUT    /items/{id}   replaces one: 200 and the item, or 404
    DELETE /items/{id}   removes one: 204, or 404

The table is named by TABLE_NAME; its partition key is `id` (a string).
"""

import base64
import json
import os
import uuid
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def to_json(value):
    """DynamoDB numbers come back as Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"cannot serialize {type(value).__name__}")


def respond(status, body=None):
    response = {"statusCode": status, "headers": {"content-type": "application/json"}}
    if body is not None:
        response["body"] = json.dumps(body, default=to_json)
    return response


def read_body(event):
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    item = json.loads(body, parse_float=Decimal)
    if not isinstance(item, dict):
        raise ValueError("the body must be a JSON object")
    return item


def handler(event, context):
    method = event["requestContext"]["http"]["method"]
    item_id = (event.get("pathParameters") or {}).get("id")
    try:
        if item_id is None and method == "POST":
            item = read_body(event)
            item["id"] = str(uuid.uuid4())
            TABLE.put_item(Item=item)
            return respond(201, item)
        if item_id is None and method == "GET":
            items, page = [], {}
            while True:
                result = TABLE.scan(**page)
                items.extend(result["Items"])
                if "LastEvaluatedKey" not in result:
                    break
                page = {"ExclusiveStartKey": result["LastEvaluatedKey"]}
            return respond(200, {"items": items})
        if item_id is not None and method == "GET":
            item = TABLE.get_item(Key={"id": item_id}).get("Item")
            return respond(200, item) if item else respond(404, {"message": "no such item"})
        if item_id is not None and method == "PUT":
            item = read_body(event)
            item["id"] = item_id
            TABLE.put_item(Item=item, ConditionExpression=Attr("id").exists())
            return respond(200, item)
        if item_id is not None and method == "DELETE":
            TABLE.delete_item(Key={"id": item_id}, ConditionExpression=Attr("id").exists())
            return respond(204)
        return respond(405, {"message": f"{method} is not allowed here"})
    except TABLE.meta.client.exceptions.ConditionalCheckFailedException:
        return respond(404, {"message": "no such item"})
    except ValueError as e:
        return respond(400, {"message": f"bad request: {e}"})
