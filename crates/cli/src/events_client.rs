//! The client calls of asynchronous invocation, the dead-letter queue and schedules
//! (`docs/api.md`, "Asynchronous invocation" and "Schedules").

use crate::client::{path_segment, query_string, Client, ClientError, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `202` of an asynchronous invoke.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Accepted {
    pub activation_id: String,
}

/// A dead letter as listed.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeadLetter {
    pub id: String,
    pub function: String,
    pub trigger: String,
    pub created_ms: u64,
    pub failed_ms: u64,
    pub attempts: u64,
    pub error_type: String,
    pub error_message: String,
    pub activation_id: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeadLetters {
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Redriven {
    pub dead_letter_id: String,
    pub activation_id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RedriveResult {
    pub redriven: Vec<Redriven>,
}

/// A schedule to create: exactly one of `cron`, `rate`, `at`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulePut {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Set from the function the schedule is declared under in `lambent.yaml`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub function: String,
    /// The workflow it starts instead of a function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// Sent on each fire instead of EventBridge's scheduled event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Schedule {
    pub name: String,
    pub function: String,
    pub expression: String,
    pub timezone: String,
    pub next_fire_ms: Option<u64>,
    pub created_ms: u64,
    pub input: Option<Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
}

impl Client {
    /// `POST /v1/functions/{name}/invoke?async=true`: accepted once durably queued.
    pub fn invoke_async(
        &self,
        name: &str,
        payload: Vec<u8>,
    ) -> Result<Json<Accepted>, ClientError> {
        let url = self.endpoint(&format!(
            "/v1/functions/{}/invoke?async=true",
            path_segment(name)
        ));
        let req = self
            .http()
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload);
        self.json(&url, req)
    }

    /// `GET /v1/dlq[?function=F]`.
    pub fn dead_letters(&self, function: Option<&str>) -> Result<Json<DeadLetters>, ClientError> {
        let query: Vec<(&str, String)> = function
            .map(|f| ("function", f.to_string()))
            .into_iter()
            .collect();
        let url = self.endpoint(&format!("/v1/dlq{}", query_string(&query)));
        self.json(&url, self.http().get(&url))
    }

    /// `GET /v1/dlq/{id}`: the dead letter with its payload.
    pub fn dead_letter(&self, id: &str) -> Result<Json<Value>, ClientError> {
        let url = self.endpoint(&format!("/v1/dlq/{}", path_segment(id)));
        self.json(&url, self.http().get(&url))
    }

    /// `POST /v1/dlq/{id}/redrive`, or `POST /v1/dlq/redrive[?function=F]` for all.
    pub fn redrive(
        &self,
        id: Option<&str>,
        function: Option<&str>,
    ) -> Result<Json<RedriveResult>, ClientError> {
        let url = match id {
            Some(id) => self.endpoint(&format!("/v1/dlq/{}/redrive", path_segment(id))),
            None => {
                let query: Vec<(&str, String)> = function
                    .map(|f| ("function", f.to_string()))
                    .into_iter()
                    .collect();
                self.endpoint(&format!("/v1/dlq/redrive{}", query_string(&query)))
            }
        };
        self.json(&url, self.http().post(&url))
    }

    /// `POST /v1/schedules` (fails if it exists) or, with `replace`, `PUT /v1/schedules/{name}`.
    pub fn put_schedule(
        &self,
        name: &str,
        body: &SchedulePut,
        replace: bool,
    ) -> Result<Json<Schedule>, ClientError> {
        let mut body = body.clone();
        let req = if replace {
            body.name = None;
            let url = self.endpoint(&format!("/v1/schedules/{}", path_segment(name)));
            (url.clone(), self.http().put(&url))
        } else {
            body.name = Some(name.to_string());
            let url = self.endpoint("/v1/schedules");
            (url.clone(), self.http().post(&url))
        };
        self.json(&req.0, req.1.json(&body))
    }

    /// `GET /v1/schedules`.
    pub fn schedules(&self) -> Result<Json<Schedules>, ClientError> {
        let url = self.endpoint("/v1/schedules");
        self.json(&url, self.http().get(&url))
    }

    /// `DELETE /v1/schedules/{name}`.
    pub fn delete_schedule(&self, name: &str) -> Result<(), ClientError> {
        let url = self.endpoint(&format!("/v1/schedules/{}", path_segment(name)));
        let resp = self.send(&url, self.http().delete(&url))?;
        crate::client::check(&url, resp).map(|_| ())
    }
}
