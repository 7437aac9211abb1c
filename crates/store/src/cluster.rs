//! What nodes of a cluster share about each other, behind [`ClusterStore`]: the membership table
//! (each node's heartbeat with its address, version and load), the cluster's identity (an id
//! that scopes its bus subjects, and the secret nodes sign forwarded requests with), and
//! [`Leases`]: named locks held by one node at a time for jobs that must run once cluster-wide
//! (the schedule leader, each event-source mapping's poller, the activation pruner). The
//! embedded single node has no cluster store: it is the only member and holds every lease.

use crate::StoreError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A node's row of the membership table, as it writes it with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// `--node-id` (default: the host name and listen port).
    pub id: String,
    /// The URL other nodes reach it at (`--advertise`).
    pub address: String,
    /// Lambent's version on that node.
    pub version: String,
    pub started_ms: i64,
    /// The store's clock at the last heartbeat (so nodes' clocks never disagree about it).
    pub heartbeat_ms: i64,
    /// Stopping: finishing what it runs, taking nothing new.
    pub draining: bool,
    pub stats: NodeStats,
}

/// What a node reports of its load with each heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    /// Idle warm sandboxes.
    pub warm: u64,
    /// Sandboxes running an invocation.
    pub busy: u64,
    /// Invocations running or waiting for a sandbox.
    pub inflight: u64,
    /// One-minute load average divided by the number of cores.
    pub load: f64,
    pub memory_budget_mb: u64,
    pub memory_used_mb: u64,
}

/// The cluster's identity, created by the first node that starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// Short random id: bus subjects and object-store buckets are scoped by it, so clusters
    /// (and test runs) can share one NATS server.
    pub id: String,
    /// Signs requests between nodes.
    pub secret: String,
}

/// Membership and identity of a cluster.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// The cluster's identity, created on first use (atomic: concurrent first nodes agree).
    async fn identity(&self) -> Result<ClusterIdentity, StoreError>;
    /// Writes this node's row (its `heartbeat_ms` is ignored: the store stamps its own clock);
    /// returns the store's clock.
    async fn heartbeat(&self, node: &NodeRecord) -> Result<i64, StoreError>;
    /// Every node that ever joined and has not left, with the store's clock now.
    async fn nodes(&self) -> Result<(i64, Vec<NodeRecord>), StoreError>;
    /// Removes a node's row (it stopped cleanly).
    async fn leave(&self, node_id: &str) -> Result<(), StoreError>;
    /// A fresh handle on named leases, held by one node at a time.
    async fn leases(&self) -> Result<Box<dyn Leases>, StoreError>;
}

/// Named locks held by one holder at a time, cluster-wide (PostgreSQL: session advisory locks
/// on a dedicated connection). A lease is lost when the holder's session ends (its process
/// died, or the connection broke): then `try_acquire` must be called again, and whoever holds
/// it next may already be running the job.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease if nobody holds it; true if this handle holds it now.
    async fn try_acquire(&self, name: &str) -> Result<bool, StoreError>;
    /// Gives a held lease back.
    async fn release(&self, name: &str) -> Result<(), StoreError>;
    /// Whether the session behind this handle still stands (every lease is lost when not).
    async fn alive(&self) -> bool;
}
