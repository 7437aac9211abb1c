//! The compiled route table: one `matchit` router per method (plus one for `ANY`) for each
//! path space — the global one shared by every namespace without host names, and one per
//! namespace that claims host names — rebuilt from the store's routes and host claims on each
//! change and swapped in whole. Matching a request takes a read lock, a map lookup of its host
//! (only when some namespace claims one) and a tree walk, never a database read.

use crate::ApiError;
use lambent_core::route::{request_host, ANY_METHOD};
use lambent_core::Route;
use lambent_store::bus::{Bus, Signal};
use lambent_store::routes::{Claimed, HostClaim, Released, RoutePut, RouteStore};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

/// A request's route and the path parameters it matched (still percent-encoded).
pub struct Matched {
    pub route: Arc<Route>,
    pub params: Vec<(String, String)>,
}

/// One path space's routers, by method.
#[derive(Default)]
struct Paths {
    by_method: HashMap<String, matchit::Router<Arc<Route>>>,
}

impl Paths {
    /// The route for a request: one of its own method first, else an `ANY` route.
    fn at(&self, method: &str, path: &str) -> Option<Matched> {
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

/// Routes compiled into their path spaces, one `matchit` router per method each: the pure part
/// of [`RouteTable`].
#[derive(Default)]
pub struct Compiled {
    /// In creation order.
    routes: Vec<Arc<Route>>,
    /// Oldest first.
    hosts: Vec<HostClaim>,
    /// The routes of namespaces without host names.
    global: Paths,
    /// Each namespace with host names: its routes, in a path space of its own.
    spaces: HashMap<String, Paths>,
    /// Host name → the namespace that claimed it.
    by_host: HashMap<String, String>,
}

impl Compiled {
    /// Compiles routes into their path spaces; fails with the conflict `matchit` found
    /// (`/a/{x}` beside `/a/{y}`).
    pub fn build(routes: Vec<Arc<Route>>, hosts: Vec<HostClaim>) -> Result<Compiled, String> {
        let by_host: HashMap<String, String> = hosts
            .iter()
            .map(|h| (h.host.clone(), h.namespace.clone()))
            .collect();
        let mut spaces: HashMap<String, Paths> = by_host
            .values()
            .map(|ns| (ns.clone(), Paths::default()))
            .collect();
        let mut global = Paths::default();
        for route in &routes {
            let paths = match spaces.get_mut(&route.namespace) {
                Some(own) => own,
                None => &mut global,
            };
            paths
                .by_method
                .entry(route.method.clone())
                .or_default()
                .insert(route.matcher_path(), route.clone())
                .map_err(|e| conflict_text(&routes, &by_host, route, e))?;
        }
        Ok(Compiled {
            routes,
            hosts,
            global,
            spaces,
            by_host,
        })
    }

    /// Whether a namespace has a path space of its own (it claimed host names).
    fn hosted(&self, namespace: &str) -> bool {
        self.spaces.contains_key(namespace)
    }

    /// The path space a request to `host` is matched in: its namespace's, when a namespace
    /// claimed it, else the global one.
    fn paths_for(&self, host: Option<&str>) -> &Paths {
        if self.by_host.is_empty() {
            return &self.global;
        }
        host.map(request_host)
            .and_then(|h| self.by_host.get(h.as_ref()))
            .and_then(|ns| self.spaces.get(ns))
            .unwrap_or(&self.global)
    }

    /// The route for a request to `host` (its `Host` value, port and all): in the path space
    /// of the namespace that claimed the host, else in the global one; a route of its own
    /// method first, else an `ANY` route.
    pub fn lookup(&self, host: Option<&str>, method: &str, path: &str) -> Option<Matched> {
        self.paths_for(host).at(method, path)
    }
}

/// Whether two routes' namespaces share a path space (one and the same namespace, or two
/// without host names).
fn same_space(by_host_namespaces: &dyn Fn(&str) -> bool, a: &Route, b: &Route) -> bool {
    a.namespace == b.namespace
        || (!by_host_namespaces(&a.namespace) && !by_host_namespaces(&b.namespace))
}

/// Says which route a new one clashes with, in the user's syntax.
fn conflict_text(
    routes: &[Arc<Route>],
    by_host: &HashMap<String, String>,
    route: &Route,
    e: matchit::InsertError,
) -> String {
    let hosted = |ns: &str| by_host.values().any(|h| h == ns);
    let with = match &e {
        matchit::InsertError::Conflict { with } => routes
            .iter()
            .find(|r| {
                r.method == route.method
                    && r.matcher_path() == *with
                    && same_space(&hosted, r, route)
            })
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

/// The conflict of a route another namespace holds (saying nothing more of it).
fn taken_by_another(route: &Route) -> ApiError {
    ApiError::Conflict(format!(
        "route '{}' is taken by another namespace",
        route.key()
    ))
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
        let hosts = store.all_hosts().await?;
        Compiled::build(routes, hosts).map_err(ApiError::Internal)
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

    /// The route for a request to `host` (its `Host` value, port and all): in the path space
    /// of the namespace that claimed the host, else in the global one; a route of its own
    /// method first, else an `ANY` route.
    pub fn lookup(&self, host: Option<&str>, method: &str, path: &str) -> Option<Matched> {
        self.compiled.read().clone().lookup(host, method, path)
    }

    /// The host names a namespace claimed, oldest first.
    pub fn hosts(&self, namespace: &str) -> Vec<String> {
        let compiled = self.compiled.read().clone();
        compiled
            .hosts
            .iter()
            .filter(|h| h.namespace == namespace)
            .map(|h| h.host.clone())
            .collect()
    }

    /// Claims a host name for a namespace: from now on requests to it are matched against
    /// the namespace's routes only (and the namespace's routes are no longer served on other
    /// hosts). Claiming a host it holds changes nothing; one another namespace holds is a
    /// conflict that says nothing more of it. Returns whether the claim is new.
    pub async fn claim_host(&self, namespace: &str, host: &str) -> Result<bool, ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let claim = HostClaim {
            host: host.to_string(),
            namespace: namespace.to_string(),
            created_ms: lambent_core::now_ms(),
        };
        match self.store.claim_host(&claim).await? {
            Claimed::Held => Ok(false),
            Claimed::Taken => Err(ApiError::Conflict(format!(
                "host name '{host}' is claimed by another namespace"
            ))),
            Claimed::New => {
                self.reload_locked().await?;
                self.bus.publish(Signal::Routes);
                Ok(true)
            }
        }
    }

    /// Releases a host name a namespace holds. Releasing its last one puts its routes back in
    /// the global path space: refused (`409`) when one of them overlaps another namespace's.
    pub async fn release_host(&self, namespace: &str, host: &str) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let current = self.reload_locked().await?;
        let held = |h: &HostClaim| h.host == host && h.namespace == namespace;
        if !current.hosts.iter().any(held) {
            return Err(ApiError::HostNotFound(host.to_string()));
        }
        let hosts = current.hosts.iter().filter(|h| !held(h)).cloned().collect();
        let compiled = Compiled::build(current.routes.clone(), hosts).map_err(|e| {
            ApiError::Conflict(format!(
                "host name '{host}' is the namespace's last: without it its routes join the shared path space, where {e}; remove that route first"
            ))
        })?;
        match self.store.release_host(namespace, host).await? {
            Released::Released => {}
            Released::NotHeld => return Err(ApiError::HostNotFound(host.to_string())),
            // Another node added the overlapping route since this table was read.
            Released::Overlaps => {
                return Err(ApiError::Conflict(format!(
                    "host name '{host}' is the namespace's last: without it its routes join the shared path space, where one overlaps a route of another namespace; remove that route first"
                )))
            }
        }
        *self.compiled.write() = Arc::new(compiled);
        self.bus.publish(Signal::Routes);
        Ok(())
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
        let hosted = |ns: &str| current.hosted(ns);
        let existing = routes
            .iter()
            .position(|r| r.key() == route.key() && same_space(&hosted, r, &route));
        if let Some(i) = existing {
            let old = &routes[i];
            if old.namespace != route.namespace {
                return Err(taken_by_another(&route));
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
        let compiled =
            Compiled::build(routes, current.hosts.clone()).map_err(ApiError::Conflict)?;
        // The store has the last word: another node may have stored the same route meanwhile.
        if let RoutePut::Taken { namespace } = self.store.put_route(&route).await? {
            self.reload_locked().await?;
            return Err(match namespace == route.namespace {
                true => ApiError::Conflict(format!(
                    "route '{}' overlaps a route of this namespace added meanwhile: two routes cannot tell the same requests apart",
                    route.key()
                )),
                false => taken_by_another(&route),
            });
        }
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
        let compiled =
            Compiled::build(routes, current.hosts.clone()).map_err(ApiError::Internal)?;
        self.store.delete_route(id).await?;
        *self.compiled.write() = Arc::new(compiled);
        self.bus.publish(Signal::Routes);
        Ok(())
    }
}
