//! Where HTTP routes are kept: the [`RouteStore`] seam, with the host names namespaces claim.
//! The gateway reads every route and claim once at start-up and after each change, into its
//! compiled route table; serving never reads it.

use crate::StoreError;
use async_trait::async_trait;
use lambent_core::Route;
use serde::{Deserialize, Serialize};

/// A host name claimed by a namespace: requests whose `Host` is this name are matched against
/// that namespace's routes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostClaim {
    /// Lower case, without a port.
    pub host: String,
    pub namespace: String,
    pub created_ms: i64,
}

/// What a claim of a host name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    /// The host is the namespace's now.
    New,
    /// The namespace held it already.
    Held,
    /// Another namespace holds it.
    Taken,
}

/// Durable HTTP routes and host claims. A route's key (method and path) is unique within its
/// namespace; that no two namespaces sharing the global path space claim the same key is the
/// route table's check.
#[async_trait]
pub trait RouteStore: Send + Sync + 'static {
    /// Inserts a route, or replaces the one with the same id.
    async fn put_route(&self, route: &Route) -> Result<(), StoreError>;
    /// Every route of every namespace, oldest first.
    async fn all_routes(&self) -> Result<Vec<Route>, StoreError>;
    /// Deletes a route by id; false if there was none.
    async fn delete_route(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims `claim.host` for `claim.namespace`, unless another namespace holds it.
    async fn claim_host(&self, claim: &HostClaim) -> Result<Claimed, StoreError>;
    /// Releases a host the namespace holds; false if it holds no such host.
    async fn release_host(&self, namespace: &str, host: &str) -> Result<bool, StoreError>;
    /// Every claimed host, oldest first.
    async fn all_hosts(&self) -> Result<Vec<HostClaim>, StoreError>;
}
