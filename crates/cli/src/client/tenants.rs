//! The client's calls for tenants: `/v1/namespaces` (the operator's), `/v1/api-keys` and
//! `/v1/audit`. Answers stay JSON values: the commands print a few fields or the whole.

use super::{check, path_segment, query_string, Client, ClientError, Json};
use serde_json::{json, Value};

impl Client {
    /// `POST /v1/namespaces`: the namespace and its first owner key.
    pub fn create_namespace(&self, body: &Value) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/namespaces");
        self.json(&url, self.http.post(&url).json(body))
    }

    /// `GET /v1/namespaces`.
    pub fn list_namespaces(&self) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/namespaces");
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/namespaces/{name}`.
    pub fn get_namespace(&self, name: &str) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint(&format!("/v1/namespaces/{}", path_segment(name)));
        self.json(&url, self.http.get(&url))
    }

    /// `PATCH /v1/namespaces/{name}`.
    pub fn update_namespace(&self, name: &str, patch: &Value) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint(&format!("/v1/namespaces/{}", path_segment(name)));
        self.json(&url, self.http.patch(&url).json(patch))
    }

    /// `POST /v1/namespaces/{name}/hosts`: claims a host name for the namespace's routes.
    pub fn claim_host(&self, name: &str, host: &str) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint(&format!("/v1/namespaces/{}/hosts", path_segment(name)));
        self.json(&url, self.http.post(&url).json(&json!({ "host": host })))
    }

    /// `DELETE /v1/namespaces/{name}/hosts/{host}`.
    pub fn release_host(&self, name: &str, host: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!(
            "/v1/namespaces/{}/hosts/{}",
            path_segment(name),
            path_segment(host)
        ));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `DELETE /v1/namespaces/{name}[?force=true]`.
    pub fn delete_namespace(&self, name: &str, force: bool) -> Result<(), ClientError> {
        let mut url = self.endpoint(&format!("/v1/namespaces/{}", path_segment(name)));
        if force {
            url.push_str("?force=true");
        }
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `POST /v1/api-keys`.
    pub fn create_api_key(&self, body: &Value) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/api-keys");
        self.json(&url, self.http.post(&url).json(body))
    }

    /// `GET /v1/api-keys`.
    pub fn list_api_keys(&self) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/api-keys");
        self.json(&url, self.http.get(&url))
    }

    /// `DELETE /v1/api-keys/{id}`.
    pub fn delete_api_key(&self, id: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/api-keys/{}", path_segment(id)));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }

    /// `POST /v1/api-keys/{id}/rotate`, or `/v1/keys/{id}/rotate` for an access key id.
    pub fn rotate_key(
        &self,
        id: &str,
        api_key: bool,
        grace_s: u64,
    ) -> Result<Json<Value>, ClientError> {
        let kind = if api_key { "api-keys" } else { "keys" };
        let url = self.endpoint(&format!("/v1/{kind}/{}/rotate", path_segment(id)));
        let body = serde_json::json!({ "grace_s": grace_s });
        self.json(&url, self.http.post(&url).json(&body))
    }

    /// `POST /v1/keys` with a role and lifetime: an AWS access key.
    pub fn create_access_key_with(&self, body: &Value) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint("/v1/keys");
        self.json(&url, self.http.post(&url).json(body))
    }

    /// `GET /v1/audit[?since_ms=…]`.
    pub fn audit(&self, since_ms: Option<i64>) -> Result<Json<Value>, ClientError> {
        let pairs: Vec<(&str, String)> = since_ms
            .map(|ms| ("since_ms", ms.to_string()))
            .into_iter()
            .collect();
        let url = self.endpoint(&format!("/v1/audit{}", query_string(&pairs)));
        self.json(&url, self.http.get(&url))
    }
}
