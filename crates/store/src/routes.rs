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

/// What storing a route found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePut {
    Stored,
    /// A route of the same path space (the shared one, or the namespace's own when it claims
    /// host names) has the same method and [`Route::shape`]: it belongs to `namespace`.
    Taken {
        namespace: String,
    },
}

/// What releasing a host name found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Released,
    /// The namespace holds no such host.
    NotHeld,
    /// It is the namespace's last host name, and one of its routes has the method and shape
    /// of a route in the shared path space its routes would join: nothing changed.
    Overlaps,
}

/// Durable HTTP routes and host claims. Each route is in one path space: its namespace's own
/// while the namespace claims a host name, else the shared one. The store keeps (path space,
/// method, [`Route::shape`]) unique, so that two nodes adding routes at once cannot both take
/// the same one for different namespaces; a claim of a namespace's first host name moves its
/// routes to its own space, the release of its last one moves them back (refused if one
/// overlaps).
#[async_trait]
pub trait RouteStore: Send + Sync + 'static {
    /// Inserts a route, or replaces the one with the same id, unless a route of its path
    /// space has its method and shape.
    async fn put_route(&self, route: &Route) -> Result<RoutePut, StoreError>;
    /// Every route of every namespace, oldest first.
    async fn all_routes(&self) -> Result<Vec<Route>, StoreError>;
    /// Deletes a route by id; false if there was none.
    async fn delete_route(&self, id: &str) -> Result<bool, StoreError>;

    /// Claims `claim.host` for `claim.namespace`, unless another namespace holds it (host
    /// names are unique in the store).
    async fn claim_host(&self, claim: &HostClaim) -> Result<Claimed, StoreError>;
    /// Releases a host the namespace holds.
    async fn release_host(&self, namespace: &str, host: &str) -> Result<Released, StoreError>;
    /// Every claimed host, oldest first.
    async fn all_hosts(&self) -> Result<Vec<HostClaim>, StoreError>;
}
