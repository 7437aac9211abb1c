//! The client's calls under `/v1/routes`.

use super::{check, path_segment, Client, ClientError, Json};
use lambent_core::route::Cors;
use lambent_core::RouteSpec;
use serde::Deserialize;

/// An HTTP route as the API returns it. Unknown fields are ignored so that newer servers work.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Route {
    pub id: String,
    pub namespace: String,
    /// `GET /users/{id}`.
    pub key: String,
    pub method: String,
    pub path: String,
    /// Empty for a workflow's route.
    pub function: String,
    /// The workflow it starts, if it runs one.
    pub workflow: Option<String>,
    /// `none` or `key`.
    pub auth: String,
    pub cors: Option<Cors>,
    pub max_body_bytes: u64,
    pub created_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RouteList {
    pub routes: Vec<Route>,
}

impl Client {
    /// `GET /v1/routes`.
    pub fn list_routes(&self) -> Result<Json<RouteList>, ClientError> {
        let url = self.endpoint("/v1/routes");
        self.json(&url, self.http.get(&url))
    }

    /// `POST /v1/routes[?replace=true]`: adds a route (or replaces the one with its key).
    pub fn add_route(&self, spec: &RouteSpec, replace: bool) -> Result<Json<Route>, ClientError> {
        let mut url = self.endpoint("/v1/routes");
        if replace {
            url.push_str("?replace=true");
        }
        self.json(&url, self.http.post(&url).json(spec))
    }

    /// `DELETE /v1/routes/{id}`.
    pub fn delete_route(&self, id: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/routes/{}", path_segment(id)));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }
}
