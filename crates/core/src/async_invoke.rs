//! Asynchronous invocation settings of a function: how often a failed event is retried, how old
//! an event may get, and where results go (destinations), as the user writes them
//! ([`AsyncSpec`]) and as the platform runs them ([`AsyncConfig`], validated once).

use crate::function::{FunctionName, ValidationError};
use serde::{Deserialize, Serialize};

/// Retries after the first failed attempt, by default (Lambda's default).
pub const DEFAULT_MAX_RETRIES: u32 = 2;
/// Most retries a function may ask for.
pub const MAX_RETRIES: u32 = 10;
/// Oldest an event may get before it is given up (6 hours, Lambda's default and maximum).
pub const DEFAULT_MAX_EVENT_AGE_S: u32 = 21_600;
pub const MIN_MAX_EVENT_AGE_S: u32 = 1;
/// Delay before the first retry; each later retry waits twice as long as the one before.
pub const FIRST_RETRY_DELAY_MS: u64 = 1_000;
/// Largest asynchronous event payload (1 MB, as on Lambda).
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

/// Where the record of an asynchronous invocation goes once it succeeded or finally failed.
/// Written `{"function": "audit"}` (and `{"queue": …}` / `{"topic": …}` once queues exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "DestinationFields", into = "DestinationFields")]
pub enum Destination {
    /// Invoke this function of the same namespace asynchronously with the record.
    Function(FunctionName),
    /// A built-in queue: refused at validation until built-in queues exist.
    Queue(String),
    /// A built-in topic: refused at validation until built-in topics exist.
    Topic(String),
}

/// How a destination is written: a map with exactly one key (plain maps read the same in JSON
/// and YAML, unlike tagged enums).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    function: Option<FunctionName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
}

impl TryFrom<DestinationFields> for Destination {
    type Error = &'static str;
    fn try_from(f: DestinationFields) -> Result<Self, Self::Error> {
        match (f.function, f.queue, f.topic) {
            (Some(name), None, None) => Ok(Destination::Function(name)),
            (None, Some(q), None) => Ok(Destination::Queue(q)),
            (None, None, Some(t)) => Ok(Destination::Topic(t)),
            _ => Err("a destination names exactly one of: function, queue, topic"),
        }
    }
}

impl From<Destination> for DestinationFields {
    fn from(d: Destination) -> Self {
        let mut f = DestinationFields::default();
        match d {
            Destination::Function(name) => f.function = Some(name),
            Destination::Queue(q) => f.queue = Some(q),
            Destination::Topic(t) => f.topic = Some(t),
        }
        f
    }
}

/// Async settings as a user writes them; everything optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsyncSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_event_age_s: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

/// Validated async settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsyncConfig {
    pub max_retries: u32,
    pub max_event_age_s: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            max_retries: DEFAULT_MAX_RETRIES,
            max_event_age_s: DEFAULT_MAX_EVENT_AGE_S,
            on_success: None,
            on_failure: None,
        }
    }
}

impl AsyncConfig {
    /// How long to wait before retry number `retry` (1 for the first retry): 1 s, 2 s, 4 s, …
    pub fn retry_delay_ms(retry: u32) -> u64 {
        FIRST_RETRY_DELAY_MS << retry.saturating_sub(1).min(20)
    }
}

impl AsyncSpec {
    pub fn resolve(self) -> Result<AsyncConfig, ValidationError> {
        let max_retries = self.max_retries.unwrap_or(DEFAULT_MAX_RETRIES);
        if max_retries > MAX_RETRIES {
            return Err(ValidationError::MaxRetries(max_retries));
        }
        let max_event_age_s = self.max_event_age_s.unwrap_or(DEFAULT_MAX_EVENT_AGE_S);
        if !(MIN_MAX_EVENT_AGE_S..=DEFAULT_MAX_EVENT_AGE_S).contains(&max_event_age_s) {
            return Err(ValidationError::MaxEventAge(max_event_age_s));
        }

        Ok(AsyncConfig {
            max_retries,
            max_event_age_s,
            on_success: self.on_success,
            on_failure: self.on_failure,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second() {
        let delays: Vec<u64> = (1..=4).map(AsyncConfig::retry_delay_ms).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000]);
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(
            AsyncSpec::default().resolve().unwrap(),
            AsyncConfig::default()
        );
        let too_many = AsyncSpec {
            max_retries: Some(11),
            ..Default::default()
        };
        assert_eq!(too_many.resolve(), Err(ValidationError::MaxRetries(11)));
        let queue = AsyncSpec {
            on_failure: Some(Destination::Queue("q".into())),
            ..Default::default()
        };
        assert_eq!(
            queue.resolve().unwrap().on_failure,
            Some(Destination::Queue("q".into()))
        );
        let d: Destination = serde_json::from_str(r#"{"function": "audit"}"#).unwrap();
        assert_eq!(
            d,
            Destination::Function(FunctionName::parse("audit").unwrap())
        );
    }
}
