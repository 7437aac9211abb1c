//! Task tokens of `.waitForTaskToken` Tasks waiting on this node: `SendTaskSuccess`,
//! `SendTaskFailure` and `SendTaskHeartbeat` reach the waiting Task through here. A token whose
//! Task ended (answered, timed out, stopped) is remembered for a while, so a late answer gets
//! `TaskTimedOut` rather than `TaskDoesNotExist`.

use crate::error::SfnError;
use lambent_workflows::{names, StatesError};
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;

/// How many ended tokens are remembered.
const ENDED_KEPT: usize = 10_000;

/// What a caller sent for a token.
#[derive(Debug)]
pub enum Callback {
    Heartbeat,
    Success(Value),
    Failure(StatesError),
}

#[derive(Default)]
pub struct Callbacks {
    waiting: Mutex<HashMap<String, mpsc::UnboundedSender<Callback>>>,
    ended: Mutex<(VecDeque<String>, HashSet<String>)>,
}

/// A registered token; dropping it (the Task ended, or its future was dropped on a timeout or
/// a stop) retires the token.
pub struct Waiter<'a> {
    callbacks: &'a Callbacks,
    token: String,
    rx: mpsc::UnboundedReceiver<Callback>,
}

impl Callbacks {
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

    /// Delivers a caller's answer to the Task waiting on `token`.
    pub fn send(&self, token: &str, callback: Callback) -> Result<(), SfnError> {
        if token.is_empty() || token.len() > 1024 {
            return Err(SfnError::InvalidToken(format!(
                "Invalid Token: 'Invalid token length: {}'",
                token.len()
            )));
        }
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
        Err(SfnError::TaskDoesNotExist(
            "Task Does Not Exist: 'Provided task does not exist'".into(),
        ))
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
        let callbacks = Callbacks::default();
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
        let callbacks = Callbacks::default();
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
}
