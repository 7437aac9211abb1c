// A small REST API for items kept in a DynamoDB table, written as for AWS Lambda behind an
// API Gateway HTTP API (payload 2.0), with the AWS SDK for JavaScript v3 and nothing else:
//
//   POST   /items        creates an item from the JSON body: 201 and the item with its new id
//   GET    /items        lists the items: 200 and {"items": [...]}
//   GET    /items/{id}   reads one: 200 and the item, or 404
//   PUT    /items/{id}   replaces one: 200 and the item, or 404
//   DELETE /items/{id}   removes one: 204, or 404
//
// The table is named by TABLE_NAME; its partition key is `id` (a string).

import { randomUUID } from "node:crypto";
import { ConditionalCheckFailedException, DynamoDBClient } from "@aws-sdk/client-dynamodb";
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
} from "@aws-sdk/lib-dynamodb";

const docs = DynamoDBDocumentClient.from(new DynamoDBClient({}));
const TableName = process.env.TABLE_NAME;

const respond = (statusCode, body) => ({
  statusCode,
  headers: { "content-type": "application/json" },
  ...(body === undefined ? {} : { body: JSON.stringify(body) }),
});

class BadRequest extends Error {}

function readBody(event) {
  const text = event.isBase64Encoded
    ? Buffer.from(event.body ?? "", "base64").toString()
    : event.body ?? "";
  let item;
  try {
    item = JSON.parse(text);
  } catch (e) {
    throw new BadRequest(e.message);
  }
  if (item === null || typeof item !== "object" || Array.isArray(item)) {
    throw new BadRequest("the body must be a JSON object");
  }
  return item;
}

export const handler = async (event) => {
  const method = event.requestContext.http.method;
  const id = event.pathParameters?.id;
  try {
    if (id === undefined && method === "POST") {
      const item = { ...readBody(event), id: randomUUID() };
      await docs.send(new PutCommand({ TableName, Item: item }));
      return respond(201, item);
    }
    if (id === undefined && method === "GET") {
      const items = [];
      let ExclusiveStartKey;
      do {
        const page = await docs.send(
          new ScanCommand(ExclusiveStartKey ? { TableName, ExclusiveStartKey } : { TableName }),
        );
        items.push(...page.Items);
        ExclusiveStartKey = page.LastEvaluatedKey;
      } while (ExclusiveStartKey);
      return respond(200, { items });
    }
    if (id !== undefined && method === "GET") {
      const { Item } = await docs.send(new GetCommand({ TableName, Key: { id } }));
      return Item ? respond(200, Item) : respond(404, { message: "no such item" });
    }
    if (id !== undefined && method === "PUT") {
      const item = { ...readBody(event), id };
      await docs.send(
        new PutCommand({ TableName, Item: item, ConditionExpression: "attribute_exists(id)" }),
      );
      return respond(200, item);
    }
    if (id !== undefined && method === "DELETE") {
      await docs.send(
        new DeleteCommand({ TableName, Key: { id }, ConditionExpression: "attribute_exists(id)" }),
      );
      return respond(204);
    }
    return respond(405, { message: `${method} is not allowed here` });
  } catch (e) {
    if (e instanceof ConditionalCheckFailedException) {
      return respond(404, { message: "no such item" });
    }
    if (e instanceof BadRequest) {
      return respond(400, { message: `bad request: ${e.message}` });
    }
    throw e;
  }
};
