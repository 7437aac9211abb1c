//! Cluster mode of Lambent: every node is the same process, sharing one PostgreSQL and one NATS.
//!
//! This crate owns what nodes must agree on without talking to each other:
//!
//! - [`membership`]: each node's liveness state (up, suspect, down, draining) computed from the
//!   membership table's heartbeats and the store's clock, and the live set in a stable order;
//! - [`placement`]: which node runs a function (rendezvous hashing over the live set, homes
//!   bounded to ~1.1× the mean number of functions per node, with a bounded spill to the next
//!   nodes by hash), which functions' async events a node claims, and
//!   each node's share of a cluster-wide concurrency limit;
//! - [`spill`]: whether an invocation goes to its function's home or, the home being saturated
//!   right now, to the next node by hash.
//!
//! These are pure (no I/O, no clocks, no randomness): two nodes with the same view of the
//! membership table compute the same homes and the same shares, on any machine and Rust
//! version. The design and the simulation behind it are in `docs/cluster.md`.
//!
//! And what a node does about it at run time:
//!
//! - [`forward`]: the hop of a synchronous invocation to the node that runs it;
//! - [`node`]: this node's membership (heartbeats, the live view, takeover of a dead node's
//!   leases), its leases on once-cluster-wide jobs, and the limit shares it enforces.

pub mod forward;
pub mod membership;
pub mod node;
pub mod placement;
pub mod spill;
