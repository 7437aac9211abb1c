//! The client's calls under `/v1/tables`: DynamoDB's JSON (typed attribute values) in and out,
//! the table named by the path.

use super::{check, path_segment, Client, ClientError, Json};
use serde_json::Value;

impl Client {
    /// `GET /v1/tables`: `{"tables": [<TableDescription>…]}`.
    pub fn list_tables(&self) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/tables");
        self.json(&url, self.http.get(&url))
    }

    /// `PUT /v1/tables/{name}` with CreateTable's input (no `TableName`).
    pub fn create_table(&self, name: &str, body: &Value) -> Result<Json<Value>, ClientError> {
        let url = self.table_url(name, None);
        self.json(&url, self.http.put(&url).json(body))
    }

    /// `GET /v1/tables/{name}`: `{"Table": <TableDescription>}`.
    pub fn describe_table(&self, name: &str) -> Result<Json<Value>, ClientError> {
        let url = self.table_url(name, None);
        self.json(&url, self.http.get(&url))
    }

    /// `DELETE /v1/tables/{name}`.
    pub fn delete_table(&self, name: &str) -> Result<(), ClientError> {
        let url = self.table_url(name, None);
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `POST /v1/tables/{name}/{operation}` (`PutItem`, `GetItem`, `UpdateItem`, `DeleteItem`,
    /// `Query`, `Scan`) with that operation's input (no `TableName`).
    pub fn table_operation(
        &self,
        name: &str,
        operation: &str,
        body: &Value,
    ) -> Result<Json<Value>, ClientError> {
        let url = self.table_url(name, Some(operation));
        self.json(&url, self.http.post(&url).json(body))
    }

    fn table_url(&self, name: &str, operation: Option<&str>) -> String {
        let mut path = format!("/v1/tables/{}", path_segment(name));
        if let Some(op) = operation {
            path.push('/');
            path.push_str(op);
        }
        self.endpoint(&path)
    }
}
