//! The client's calls for published versions and aliases: `POST /v1/functions/{name}/versions`
//! and `PUT /v1/functions/{name}/aliases/{alias}`.

use super::{path_segment, Client, ClientError, Json};
use serde::Deserialize;

/// A published version.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Version {
    pub function: String,
    pub version: String,
    pub revision: u64,
}

/// An alias and the version it names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AliasInfo {
    pub function: String,
    pub name: String,
    pub version: String,
}

impl Client {
    /// Publishes the function's live code and settings as its next version.
    pub fn publish_version(&self, function: &str) -> Result<Json<Version>, ClientError> {
        let url = self.endpoint(&format!(
            "/v1/functions/{}/versions",
            path_segment(function)
        ));
        self.json(&url, self.http().post(&url))
    }

    /// Points `alias` at `version` (creating the alias, or moving it).
    pub fn put_alias(
        &self,
        function: &str,
        alias: &str,
        version: &str,
    ) -> Result<Json<AliasInfo>, ClientError> {
        let url = self.endpoint(&format!(
            "/v1/functions/{}/aliases/{}",
            path_segment(function),
            path_segment(alias)
        ));
        let body = serde_json::json!({ "version": version });
        self.json(&url, self.http().put(&url).json(&body))
    }
}
