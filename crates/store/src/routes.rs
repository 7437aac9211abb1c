//! Where HTTP routes are kept: the [`RouteStore`] seam. The gateway reads every route once at
//! start-up and after each change, into its compiled route table; serving never reads it.

use crate::StoreError;
use async_trait::async_trait;
use lambent_core::Route;

/// Durable HTTP routes. A route's key (method and path) is unique across namespaces: the
/// listener is shared.
#[async_trait]
pub trait RouteStore: Send + Sync + 'static {
    /// Inserts a route, or replaces the one with the same id.
    async fn put_route(&self, route: &Route) -> Result<(), StoreError>;
    /// Every route of every namespace, oldest first.
    async fn all_routes(&self) -> Result<Vec<Route>, StoreError>;
    /// Deletes a route by id; false if there was none.
    async fn delete_route(&self, id: &str) -> Result<bool, StoreError>;
}
