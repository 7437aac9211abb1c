//! Task tokens of `.waitForTaskToken` Tasks waiting on this node: `SendTaskSuccess`,
//! `SendTaskFailure` and `SendTaskHeartbeat` reach the waiting Task through here. A token whose
//! Task ended (answered, timed out, stopped) is remembered for a while, so a late answer gets
//! `TaskTimedOut` rather than `TaskDoesNotExist`.
//!
//! A token names the node whose Task waits on it (see [`new_token`]): in a cluster, a `SendTask*`
//! that reaches another node is carried to that one by a [`Relay`] (the cluster's transport, set
//! by the server) as a [`Relayed`] request, and the owner's answer ([`RelayedAnswer`]) is the
//! caller's. The embedded node has no relay and never looks inside a token.

use crate::error::SfnError;
use bytes::Bytes;
use lambent_workflows::{names, StatesError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many ended tokens are remembered.
const ENDED_KEPT: usize = 10_000;
/// The longest token AWS accepts.
pub const MAX_TOKEN: usize = 1024;
/// Hex digits of a token's random part (a version 4 UUID: 122 random bits).
const RANDOM_HEX: usize = 32;

/// A new token for a Task of node `node`: 32 random hex digits, then the node's id in hex
/// (clients see one opaque string of at most 32 + 2 × 64 characters for the longest node id).
pub fn new_token(node: &str) -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), hex::encode(node))
}

/// The node a token of [`new_token`] names; `None` for any other string.
pub fn owner_of(token: &str) -> Option<String> {
    let (random, node) = (token.get(..RANDOM_HEX)?, token.get(RANDOM_HEX..)?);
    if node.is_empty() || !random.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    String::from_utf8(hex::decode(node).ok()?).ok()
}

/// What a caller sent for a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callback {
    Heartbeat,
    Success(Value),
    Failure(StatesError),
}

/// Why a relayed callback got no answer from the node it was sent to.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No such node answers (it is dead, gone, or never was; or it did not answer in time).
    #[error("node {0} does not answer")]
    Gone(String),
    /// The cluster's transport failed.
    #[error("relaying to node {node} failed: {reason}")]
    Failed { node: String, reason: String },
}

/// Carries a request to another node of the cluster and brings back its answer (the node
/// answers with [`Callbacks::answer`]). Implementations bound how long they wait.
#[async_trait::async_trait]
pub trait Relay: Send + Sync {
    async fn ask(&self, node: &str, request: Bytes) -> Result<Bytes, RelayError>;
}

/// A callback carried to the node that owns its token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Relayed {
    pub token: String,
    pub callback: Callback,
}

/// The owner's answer to a [`Relayed`] callback: `code` absent when it was delivered, else the
/// error's code and message as the owner would have answered its own caller.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RelayedAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl RelayedAnswer {
    fn of(result: Result<(), SfnError>) -> RelayedAnswer {
        match result {
            Ok(()) => RelayedAnswer::default(),
            Err(e) => RelayedAnswer {
                code: Some(e.code().to_string()),
                message: e.to_string(),
            },
        }
    }

    fn into_result(self) -> Result<(), SfnError> {
        let Some(code) = self.code else {
            return Ok(());
        };
        Err(match code.as_str() {
            "TaskDoesNotExist" => SfnError::TaskDoesNotExist(self.message),
            "TaskTimedOut" => SfnError::TaskTimedOut(self.message),
            "InvalidToken" => SfnError::InvalidToken(self.message),
            _ => SfnError::Internal(format!("{code}: {}", self.message)),
        })
    }
}

fn does_not_exist() -> SfnError {
    SfnError::TaskDoesNotExist("Task Does Not Exist: 'Provided task does not exist'".into())
}

/// The tokens of this node, and the way to other nodes' tokens.
pub struct Callbacks {
    node: String,
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Callback>>>,
    ended: Mutex<(VecDeque<String>, HashSet<String>)>,
    relay: OnceLock<Arc<dyn Relay>>,
}

/// A registered token; dropping it (the Task ended, or its future was dropped on a timeout or
/// a stop) retires the token.
pub struct Waiter<'a> {
    callbacks: &'a Callbacks,
    token: String,
    rx: mpsc::UnboundedReceiver<Callback>,
}

impl Callbacks {
    /// The callbacks of node `node`, without a relay (the embedded node).
    pub fn new(node: &str) -> Callbacks {
        Callbacks {
            node: node.to_string(),
            waiting: Mutex::default(),
            ended: Mutex::default(),
            relay: OnceLock::new(),
        }
    }

    /// A new token of this node (see [`new_token`]).
    pub fn new_token(&self) -> String {
        new_token(&self.node)
    }

    /// Carries callbacks for other nodes' tokens through `relay` from now on (set once).
    pub fn set_relay(&self, relay: Arc<dyn Relay>) {
        if self.relay.set(relay).is_err() {
            tracing::warn!("the task callbacks' relay was already set; keeping the first");
        }
    }

    /// Delivers a caller's answer to the Task waiting on `token`, on whichever node it waits.
    pub async fn deliver(&self, token: &str, callback: Callback) -> Result<(), SfnError> {
        check_length(token)?;
        let owner = self
            .relay
            .get()
            .and_then(|relay| Some((relay, owner_of(token)?)))
            .filter(|(_, owner)| *owner != self.node);
        let Some((relay, owner)) = owner else {
            return self.send(token, callback);
        };
        let request = Relayed {
            token: token.to_string(),
            callback,
        };
        let request = serde_json::to_vec(&request)
            .map_err(|e| SfnError::Internal(format!("cannot encode the callback: {e}")))?;
        match relay.ask(&owner, request.into()).await {
            Ok(answer) => serde_json::from_slice::<RelayedAnswer>(&answer)
                .map_err(|e| {
                    SfnError::Internal(format!("node {owner} answered the callback wrongly: {e}"))
                })?
                .into_result(),
            Err(RelayError::Gone(_)) => Err(does_not_exist()),
            Err(e) => Err(SfnError::Internal(e.to_string())),
        }
    }

    /// This node's answer to a [`Relayed`] callback from another node: delivered here (never
    /// relayed again).
    pub fn answer(&self, request: &[u8]) -> Bytes {
        let result = serde_json::from_slice::<Relayed>(request)
            .map_err(|e| SfnError::Internal(format!("a malformed relayed callback: {e}")))
            .and_then(|r| self.send(&r.token, r.callback));
        serde_json::to_vec(&RelayedAnswer::of(result))
            .unwrap_or_default()
            .into()
    }

    /// Registers a token before the Task hands it out.
    pub fn register(&self, token: &str) -> Waiter<'_> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.waiting.lock().insert(token.to_string(), tx);
        Waiter {
            callbacks: self,
            token: token.to_string(),
            rx,
        }
    }

    /// Delivers a caller's answer to the Task waiting on `token` on this node.
    pub fn send(&self, token: &str, callback: Callback) -> Result<(), SfnError> {
        check_length(token)?;
        if let Some(tx) = self.waiting.lock().get(token) {
            if tx.send(callback).is_ok() {
                return Ok(());
            }
        }
        if self.ended.lock().1.contains(token) {
            return Err(SfnError::TaskTimedOut(
                "Task Timed Out: 'Provided task does not exist anymore'".into(),
            ));
        }
        Err(does_not_exist())
    }

    fn retire(&self, token: &str) {
        self.waiting.lock().remove(token);
        let mut ended = self.ended.lock();
        if ended.1.insert(token.to_string()) {
            ended.0.push_back(token.to_string());
            if ended.0.len() > ENDED_KEPT {
                if let Some(old) = ended.0.pop_front() {
                    ended.1.remove(&old);
                }
            }
        }
    }
}

fn check_length(token: &str) -> Result<(), SfnError> {
    if token.is_empty() || token.len() > MAX_TOKEN {
        return Err(SfnError::InvalidToken(format!(
            "Invalid Token: 'Invalid token length: {}'",
            token.len()
        )));
    }
    Ok(())
}

impl Waiter<'_> {
    /// Waits for success or failure; with `heartbeat`, fails with `States.HeartbeatTimeout`
    /// when no heartbeat (or answer) comes within it.
    pub async fn wait(mut self, heartbeat: Option<Duration>) -> Result<Value, StatesError> {
        loop {
            let next = match heartbeat {
                Some(h) => match tokio::time::timeout(h, self.rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        return Err(StatesError::new(names::HEARTBEAT_TIMEOUT, ""));
                    }
                },
                None => self.rx.recv().await,
            };
            match next {
                Some(Callback::Heartbeat) => continue,
                Some(Callback::Success(v)) => return Ok(v),
                Some(Callback::Failure(e)) => return Err(e),
                None => return Err(StatesError::runtime("the task token was dropped")),
            }
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.callbacks.retire(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_waiter_once_and_late_answers_time_out() {
        let callbacks = Callbacks::new("n1");
        let waiter = callbacks.register("t1");
        callbacks.send("t1", Callback::Heartbeat).unwrap();
        callbacks
            .send("t1", Callback::Success(serde_json::json!({"a": 1})))
            .unwrap();
        let got = waiter.wait(Some(Duration::from_secs(5))).await.unwrap();
        assert_eq!(got, serde_json::json!({"a": 1}));
        let late = callbacks.send("t1", Callback::Heartbeat).unwrap_err();
        assert_eq!(late.code(), "TaskTimedOut");
        let unknown = callbacks.send("t2", Callback::Heartbeat).unwrap_err();
        assert_eq!(unknown.code(), "TaskDoesNotExist");
        assert_eq!(
            callbacks.send("", Callback::Heartbeat).unwrap_err().code(),
            "InvalidToken"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn no_heartbeat_in_time_fails_with_heartbeat_timeout() {
        let callbacks = Callbacks::new("n1");
        let failed = callbacks
            .register("t")
            .wait(Some(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert_eq!(failed.error, names::HEARTBEAT_TIMEOUT);
        assert_eq!(
            callbacks.send("t", Callback::Heartbeat).unwrap_err().code(),
            "TaskTimedOut"
        );
    }

    #[test]
    fn a_token_names_its_node_and_is_opaque_random_and_short() {
        let longest = "n".repeat(64);
        for node in ["local", "host-1.example_8080", longest.as_str()] {
            let (a, b) = (new_token(node), new_token(node));
            assert_ne!(a, b);
            assert!(a.len() <= 32 + 2 * 64 && a.len() <= MAX_TOKEN, "{a}");
            assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
            assert_eq!(owner_of(&a).as_deref(), Some(node));
        }
        // Strings that no node made name no node.
        let uuid = uuid::Uuid::new_v4().to_string();
        let random = uuid::Uuid::new_v4().simple().to_string();
        for other in [
            "",
            "t1",
            uuid.as_str(),
            random.as_str(),
            &format!("{random}zz"),
        ] {
            assert_eq!(owner_of(other), None, "{other}");
        }
    }

    /// Carries requests to in-process nodes by id, as the cluster's transport does.
    struct Nodes(HashMap<String, Arc<Callbacks>>);

    #[async_trait::async_trait]
    impl Relay for Nodes {
        async fn ask(&self, node: &str, request: Bytes) -> Result<Bytes, RelayError> {
            match self.0.get(node) {
                Some(callbacks) => Ok(callbacks.answer(&request)),
                None => Err(RelayError::Gone(node.to_string())),
            }
        }
    }

    #[tokio::test]
    async fn a_callback_reaching_another_node_is_answered_by_the_owner() {
        let (a, b) = (Arc::new(Callbacks::new("a")), Arc::new(Callbacks::new("b")));
        let nodes = Arc::new(Nodes(HashMap::from([
            ("a".to_string(), a.clone()),
            ("b".to_string(), b.clone()),
        ])));
        a.set_relay(nodes.clone());
        b.set_relay(nodes);
        let token = a.new_token();
        let waiter = a.register(&token);
        b.deliver(&token, Callback::Heartbeat).await.unwrap();
        let failure = StatesError::new("Oops", "it broke");
        b.deliver(&token, Callback::Failure(failure.clone()))
            .await
            .unwrap();
        assert_eq!(waiter.wait(None).await.unwrap_err(), failure);
        // The owner's own answers, in the same shape.
        let late = b.deliver(&token, Callback::Heartbeat).await.unwrap_err();
        assert_eq!(late.code(), "TaskTimedOut");
        assert_eq!(
            late.to_string(),
            a.send(&token, Callback::Heartbeat).unwrap_err().to_string()
        );
        let unknown = b.deliver(&new_token("a"), Callback::Heartbeat).await;
        assert_eq!(unknown.unwrap_err().code(), "TaskDoesNotExist");
        // A node nobody answers for, and a token no node made.
        let gone = b.deliver(&new_token("c"), Callback::Heartbeat).await;
        assert_eq!(gone.unwrap_err().code(), "TaskDoesNotExist");
        let foreign = b.deliver("t1", Callback::Heartbeat).await;
        assert_eq!(foreign.unwrap_err().code(), "TaskDoesNotExist");
        let long = b.deliver(&"a".repeat(1025), Callback::Heartbeat).await;
        assert_eq!(long.unwrap_err().code(), "InvalidToken");
    }

    #[tokio::test]
    async fn without_a_relay_every_token_is_looked_up_here() {
        let callbacks = Callbacks::new("a");
        let theirs = new_token("b");
        let waiter = callbacks.register(&theirs);
        callbacks
            .deliver(&theirs, Callback::Success(serde_json::json!(1)))
            .await
            .unwrap();
        assert_eq!(waiter.wait(None).await.unwrap(), serde_json::json!(1));
    }
}
