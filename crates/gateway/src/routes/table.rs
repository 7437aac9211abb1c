//! The compiled route table: every route of every namespace in one `matchit` router per method
//! (plus one for `ANY`), rebuilt from the store's list on each change and swapped in whole, so
//! that matching a request takes a read lock and a tree walk, never a database read.

use crate::ApiError;
use lambent_core::route::ANY_METHOD;
use lambent_core::Route;
use lambent_store::bus::{Bus, Signal};
use lambent_store::routes::RouteStore;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// A request's route and the path parameters it matched (still percent-encoded).
pub struct Matched {
    pub route: Arc<Route>,
    pub params: Vec<(String, String)>,
}

/// Routes compiled into one `matchit` router per method: the pure part of [`RouteTable`].
#[derive(Default)]
pub struct Compiled {
    /// In creation order.
    routes: Vec<Arc<Route>>,
    by_method: HashMap<String, matchit::Router<Arc<Route>>>,
}

impl Compiled {
    /// Compiles routes; fails with the conflict `matchit` found (`/a/{x}` beside `/a/{y}`).
    pub fn build(routes: Vec<Arc<Route>>) -> Result<Compiled, String> {
        let mut by_method: HashMap<String, matchit::Router<Arc<Route>>> = HashMap::new();
        for route in &routes {
            by_method
                .entry(route.method.clone())
                .or_default()
                .insert(route.matcher_path(), route.clone())
                .map_err(|e| conflict_text(&routes, route, e))?;
        }
        Ok(Compiled { routes, by_method })
    }

    /// The route for a request: one of its own method first, else an `ANY` route.
    pub fn lookup(&self, method: &str, path: &str) -> Option<Matched> {
        [method, ANY_METHOD].into_iter().find_map(|m| {
            let found = self.by_method.get(m)?.at(path).ok()?;
            Some(Matched {
                route: found.value.clone(),
                params: found
                    .params
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
        })
    }
}

/// Says which route a new one clashes with, in the user's syntax.
fn conflict_text(routes: &[Arc<Route>], route: &Route, e: matchit::InsertError) -> String {
    let with = match &e {
        matchit::InsertError::Conflict { with } => routes
            .iter()
            .find(|r| r.method == route.method && r.matcher_path() == *with)
            // Another namespace's route is claimed, and nothing more is said of it.
            .map(|r| match r.namespace == route.namespace {
                true => format!("'{}'", r.key()),
                false => "a route of another namespace".to_string(),
            }),
        _ => None,
    };
    match with {
        Some(other) => format!(
            "route '{}' overlaps {other}: two routes cannot tell the same requests apart",
            route.key()
        ),
        None => format!("route '{}' cannot be added: {e}", route.key()),
    }
}

/// Live routes and the operations that change them.
pub struct RouteTable {
    store: Arc<dyn RouteStore>,
    /// Tells the other nodes that the routes changed (they [`RouteTable::reload`]).
    bus: Arc<dyn Bus>,
    compiled: RwLock<Arc<Compiled>>,
    /// Changes are rare: one at a time keeps check, write and swap consistent.
    changes: tokio::sync::Mutex<()>,
}

/// What an add did.
pub struct Added {
    pub route: Arc<Route>,
    /// False when it replaced a route with the same key.
    pub created: bool,
}

impl RouteTable {
    /// Loads and compiles every stored route.
    pub async fn load(
        store: Arc<dyn RouteStore>,
        bus: Arc<dyn Bus>,
    ) -> Result<RouteTable, ApiError> {
        let compiled = Self::compile_stored(store.as_ref()).await?;
        Ok(RouteTable {
            store,
            bus,
            compiled: RwLock::new(Arc::new(compiled)),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    async fn compile_stored(store: &dyn RouteStore) -> Result<Compiled, ApiError> {
        let routes = store
            .all_routes()
            .await?
            .into_iter()
            .map(Arc::new)
            .collect();
        Compiled::build(routes).map_err(ApiError::Internal)
    }

    /// Reads every route again (another node changed them), and swaps the compiled table.
    pub async fn reload(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        self.reload_locked().await.map(drop)
    }

    async fn reload_locked(&self) -> Result<Arc<Compiled>, ApiError> {
        let compiled = Arc::new(Self::compile_stored(self.store.as_ref()).await?);
        *self.compiled.write() = compiled.clone();
        Ok(compiled)
    }

    /// The route for a request: one of its own method first, else an `ANY` route.
    pub fn lookup(&self, method: &str, path: &str) -> Option<Matched> {
        self.compiled.read().clone().lookup(method, path)
    }

    /// A namespace's routes, in creation order.
    pub fn list(&self, namespace: &str) -> Vec<Arc<Route>> {
        let compiled = self.compiled.read().clone();
        compiled
            .routes
            .iter()
            .filter(|r| r.namespace == namespace)
            .cloned()
            .collect()
    }

    pub fn get(&self, namespace: &str, id: &str) -> Option<Arc<Route>> {
        self.list(namespace).into_iter().find(|r| r.id == id)
    }

    /// Adds a route. A route with the same key is a conflict, unless `replace` is set and it
    /// belongs to the same namespace: then the new one takes its place (and its id).
    pub async fn add(&self, mut route: Route, replace: bool) -> Result<Added, ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        // Another node may have changed them: check against the store, not the cached table.
        let current = self.reload_locked().await?;
        let mut routes = current.routes.clone();
        let existing = routes.iter().position(|r| r.key() == route.key());
        if let Some(i) = existing {
            let old = &routes[i];
            if old.namespace != route.namespace {
                return Err(ApiError::Conflict(format!(
                    "route '{}' is taken by another namespace",
                    route.key()
                )));
            }
            if !replace {
                return Err(ApiError::Conflict(format!(
                    "route '{}' exists (id {}): remove it first, or replace it",
                    route.key(),
                    old.id
                )));
            }
            route.id.clone_from(&old.id);
            route.created_ms = old.created_ms;
        }
        let route = Arc::new(route);
        match existing {
            Some(i) => routes[i] = route.clone(),
            None => routes.push(route.clone()),
        }
        let compiled = Compiled::build(routes).map_err(ApiError::Conflict)?;
        self.store.put_route(&route).await?;
        *self.compiled.write() = Arc::new(compiled);
        self.bus.publish(Signal::Routes);
        Ok(Added {
            route,
            created: existing.is_none(),
        })
    }

    /// Removes a namespace's route by id.
    pub async fn remove(&self, namespace: &str, id: &str) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let current = self.reload_locked().await?;
        if !current
            .routes
            .iter()
            .any(|r| r.id == id && r.namespace == namespace)
        {
            return Err(ApiError::RouteNotFound(id.to_string()));
        }
        let routes = current
            .routes
            .iter()
            .filter(|r| r.id != id)
            .cloned()
            .collect();
        let compiled = Compiled::build(routes).map_err(ApiError::Internal)?;
        self.store.delete_route(id).await?;
        *self.compiled.write() = Arc::new(compiled);
        self.bus.publish(Signal::Routes);
        Ok(())
    }
}
