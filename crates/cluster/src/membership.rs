//! Membership states: how alive each node of the membership table is, judged from its last
//! heartbeat against the store's clock (never the local one, so nodes' clock skew does not
//! matter), and the live set placement works on.
//!
//! Each node writes its row every [`HEARTBEAT_PERIOD_MS`]. A node whose heartbeat is at most
//! [`SUSPECT_AFTER_MS`] old is [`NodeState::Up`]; up to [`DOWN_AFTER_MS`] it is
//! [`NodeState::Suspect`] (one or two heartbeats missed: a pause, a slow store) and still
//! placed on, so a hiccup does not re-home its functions; past that it is [`NodeState::Down`].
//! A node that is stopping says so in its row and is [`NodeState::Draining`] until its row is
//! removed (or it stops heart-beating and is down).
//!
//! This module only computes; the heartbeat loop that writes rows and polls them lives with the
//! runtime parts of the crate.

use crate::placement::{Placement, PlacementNode};
use lambent_store::cluster::{NodeRecord, NodeStats};
use serde::{Deserialize, Serialize};

/// How often a node writes its heartbeat (and reads the others').
pub const HEARTBEAT_PERIOD_MS: i64 = 1_000;
/// Older than this, a node is suspect.
pub const SUSPECT_AFTER_MS: i64 = 1_500;
/// Older than this, a node is down: out of the live set, its functions re-homed.
pub const DOWN_AFTER_MS: i64 = 3_000;

/// A node's liveness, as `GET /v1/nodes` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Heartbeat at most [`SUSPECT_AFTER_MS`] old.
    Up,
    /// Heartbeat at most [`DOWN_AFTER_MS`] old: still live.
    Suspect,
    /// Alive and stopping: finishes what it runs, takes nothing new.
    Draining,
    /// Heartbeat older than [`DOWN_AFTER_MS`].
    Down,
}

impl NodeState {
    /// Whether the node heart-beats recently enough to be counted on (draining included).
    pub fn is_alive(self) -> bool {
        !matches!(self, NodeState::Down)
    }

    /// Whether the node takes new work: up or suspect, not draining.
    pub fn is_live(self) -> bool {
        matches!(self, NodeState::Up | NodeState::Suspect)
    }
}

/// How old a heartbeat is by the store's clock (never negative).
pub fn heartbeat_age_ms(now_ms: i64, record: &NodeRecord) -> i64 {
    now_ms.saturating_sub(record.heartbeat_ms).max(0)
}

/// A node's state at the store's time `now_ms`.
pub fn node_state(now_ms: i64, record: &NodeRecord) -> NodeState {
    let age = heartbeat_age_ms(now_ms, record);
    if age > DOWN_AFTER_MS {
        NodeState::Down
    } else if record.draining {
        NodeState::Draining
    } else if age > SUSPECT_AFTER_MS {
        NodeState::Suspect
    } else {
        NodeState::Up
    }
}

/// One row of `GET /v1/nodes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: String,
    pub address: String,
    pub version: String,
    pub state: NodeState,
    pub started_ms: i64,
    pub heartbeat_age_ms: i64,
    pub stats: NodeStats,
}

impl NodeStatus {
    pub fn new(now_ms: i64, record: &NodeRecord) -> Self {
        Self {
            id: record.id.clone(),
            address: record.address.clone(),
            version: record.version.clone(),
            state: node_state(now_ms, record),
            started_ms: record.started_ms,
            heartbeat_age_ms: heartbeat_age_ms(now_ms, record),
            stats: record.stats,
        }
    }
}

/// Every node's status, sorted by id.
pub fn statuses(now_ms: i64, records: &[NodeRecord]) -> Vec<NodeStatus> {
    let mut statuses: Vec<NodeStatus> = records
        .iter()
        .map(|record| NodeStatus::new(now_ms, record))
        .collect();
    statuses.sort_by(|a, b| a.id.cmp(&b.id));
    statuses
}

/// The live set: nodes up or suspect and not draining, sorted by id (the same on every node
/// that read the same rows).
pub fn live_set(now_ms: i64, records: &[NodeRecord]) -> Vec<&NodeRecord> {
    let mut live: Vec<&NodeRecord> = records
        .iter()
        .filter(|record| node_state(now_ms, record).is_live())
        .collect();
    live.sort_by(|a, b| a.id.cmp(&b.id));
    live.dedup_by(|a, b| a.id == b.id);
    live
}

/// The placement view of the live set (no node saturated yet: the caller marks the ones that
/// answered 429 recently with [`Placement::set_saturated`]).
pub fn placement(now_ms: i64, records: &[NodeRecord]) -> Placement {
    Placement::new(
        live_set(now_ms, records)
            .into_iter()
            .map(|record| PlacementNode::new(record.id.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, heartbeat_ms: i64, draining: bool) -> NodeRecord {
        NodeRecord {
            id: id.to_owned(),
            address: format!("http://{id}:8080"),
            heartbeat_ms,
            draining,
            ..NodeRecord::default()
        }
    }

    #[test]
    fn states_follow_the_heartbeat_age() {
        let now = 100_000;
        let state = |age, draining| node_state(now, &record("n", now - age, draining));
        assert_eq!(state(0, false), NodeState::Up);
        assert_eq!(state(SUSPECT_AFTER_MS, false), NodeState::Up);
        assert_eq!(state(SUSPECT_AFTER_MS + 1, false), NodeState::Suspect);
        assert_eq!(state(DOWN_AFTER_MS, false), NodeState::Suspect);
        assert_eq!(state(DOWN_AFTER_MS + 1, false), NodeState::Down);
        assert_eq!(state(0, true), NodeState::Draining);
        assert_eq!(state(DOWN_AFTER_MS, true), NodeState::Draining);
        assert_eq!(state(DOWN_AFTER_MS + 1, true), NodeState::Down);
        // A heartbeat stamped after `now` was read (another connection's clock) is fresh.
        assert_eq!(state(-500, false), NodeState::Up);
        assert_eq!(heartbeat_age_ms(now, &record("n", now + 500, false)), 0);
    }

    #[test]
    fn thresholds_allow_missed_heartbeats_before_down() {
        const { assert!(SUSPECT_AFTER_MS > HEARTBEAT_PERIOD_MS) };
        const { assert!(DOWN_AFTER_MS >= 3 * HEARTBEAT_PERIOD_MS) };
    }

    #[test]
    fn live_set_is_up_and_suspect_not_draining_sorted_by_id() {
        let now = 50_000;
        let records = vec![
            record("c", now - 2_000, false),
            record("a", now, false),
            record("d", now - 10_000, false),
            record("b", now - 100, true),
            record("e", now - 1_000, false),
            record("a", now, false),
        ];
        let live: Vec<&str> = live_set(now, &records)
            .into_iter()
            .map(|record| record.id.as_str())
            .collect();
        assert_eq!(live, ["a", "c", "e"]);
        let placement = placement(now, &records);
        assert_eq!(placement.ids().collect::<Vec<_>>(), ["a", "c", "e"]);

        let states: Vec<(String, NodeState)> = statuses(now, &records)
            .into_iter()
            .map(|status| (status.id, status.state))
            .collect();
        assert_eq!(
            states,
            [
                ("a".to_owned(), NodeState::Up),
                ("a".to_owned(), NodeState::Up),
                ("b".to_owned(), NodeState::Draining),
                ("c".to_owned(), NodeState::Suspect),
                ("d".to_owned(), NodeState::Down),
                ("e".to_owned(), NodeState::Up),
            ]
        );
    }

    #[test]
    fn states_serialize_lower_case() {
        let json = serde_json::to_string(&[
            NodeState::Up,
            NodeState::Suspect,
            NodeState::Draining,
            NodeState::Down,
        ])
        .unwrap();
        assert_eq!(json, r#"["up","suspect","draining","down"]"#);
        let status = NodeStatus::new(10_000, &record("n1", 8_000, false));
        let value = serde_json::to_value(&status).unwrap();
        assert_eq!(value["state"], "suspect");
        assert_eq!(value["heartbeat_age_ms"], 2_000);
        assert_eq!(value["address"], "http://n1:8080");
        assert!(NodeState::Suspect.is_live() && !NodeState::Draining.is_live());
        assert!(NodeState::Draining.is_alive() && !NodeState::Down.is_alive());
    }
}
