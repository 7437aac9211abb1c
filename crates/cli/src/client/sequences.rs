//! The client's calls under `/v1/sequences`.

use super::{check, path_segment, Client, ClientError, Json};
use serde::{Deserialize, Serialize};

/// A sequence as the API returns it. Unknown fields are ignored so that newer servers work.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Sequence {
    pub name: String,
    pub namespace: String,
    /// Function names, in the order they run.
    pub components: Vec<String>,
    pub description: String,
    /// The sum of the components' timeouts when the sequence was last written, in seconds.
    pub timeout: u64,
    pub revision: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SequenceList {
    pub sequences: Vec<Sequence>,
}

/// The body of `PUT /v1/sequences/{name}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequencePut {
    pub components: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Client {
    /// `PUT /v1/sequences/{name}`: creates or replaces a sequence.
    pub fn put_sequence(
        &self,
        name: &str,
        body: &SequencePut,
    ) -> Result<Json<Sequence>, ClientError> {
        let url = self.endpoint(&format!("/v1/sequences/{}", path_segment(name)));
        self.json(&url, self.http.put(&url).json(body))
    }

    /// `GET /v1/sequences`.
    pub fn list_sequences(&self) -> Result<Json<SequenceList>, ClientError> {
        let url = self.endpoint("/v1/sequences");
        self.json(&url, self.http.get(&url))
    }

    /// `GET /v1/sequences/{name}`.
    pub fn get_sequence(&self, name: &str) -> Result<Json<Sequence>, ClientError> {
        let url = self.endpoint(&format!("/v1/sequences/{}", path_segment(name)));
        self.json(&url, self.http.get(&url))
    }

    /// `DELETE /v1/sequences/{name}`.
    pub fn delete_sequence(&self, name: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/sequences/{}", path_segment(name)));
        let resp = self.send(&url, self.http.delete(&url))?;
        check(&url, resp).map(|_| ())
    }
}
