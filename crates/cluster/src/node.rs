//! This node's life in a cluster: it heartbeats into the membership table every
//! [`HEARTBEAT_PERIOD_MS`] with its load, reads everyone's rows back into a [`View`] (states,
//! the live set, the placement), takes over the asynchronous events a dead node held, keeps the
//! leases of once-cluster-wide jobs it holds (schedule leader, pruner, mapping pollers), and
//! answers the questions the gateway and the invoker ask on every request from memory: where
//! does this function run, what is this node's share of a limit. When the store cannot be
//! reached the last view stays in force, so warm invocations keep being placed.
//!
//! The embedded single node is a [`Cluster::single`]: one member, every lease held, no store.

use crate::forward::Forwarder;
use crate::membership::{self, NodeState, NodeStatus, HEARTBEAT_PERIOD_MS};
use crate::placement::{function_key, LoadBound, Placement};
use crate::spill::{self, Candidate};
use lambent_store::bus::{Bus, Signal};
use lambent_store::cluster::{ClusterStore, Leases, NodeRecord, NodeStats};
use lambent_store::events::EventStore;
use lambent_store::StoreError;
use parking_lot::{Mutex, RwLock};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// The lease of the node that fires schedules.
pub const SCHEDULES_LEASE: &str = "lambent:schedules";
/// The lease of the node that does the housekeeping: prunes old activation records, trims
/// stream records past their retention and deletes expired table items.
pub const PRUNER_LEASE: &str = "lambent:pruner";

/// How long a node that refused an invocation for having no room (or could not be reached) is
/// tried last: for that function, or for every function when it could not be reached. Short:
/// the mark says "saturated right now", and a home that has room again gets its functions back
/// after at most this long.
pub const SATURATED_FOR: Duration = Duration::from_millis(250);

/// The key of a whole-node mark in [`Cluster`]'s saturation marks (function keys always hold a
/// `/`).
const WHOLE_NODE: &str = "";

/// An invocation counted as running at a node; the count drops with it.
pub struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The name of a mapping poller's lease.
pub fn mapping_lease(mapping_id: &str) -> String {
    format!("lambent:mapping:{mapping_id}")
}

/// What this node knows of the cluster, as of its last read of the membership table.
#[derive(Debug, Clone)]
pub struct View {
    /// The store's clock at the read.
    pub now_ms: i64,
    pub nodes: Vec<NodeRecord>,
    /// Placement over the live nodes, its homes bounded over `keys`.
    pub placement: Placement,
    /// The keys of the functions deployed, as this node knew them at the read (sorted).
    pub keys: Vec<String>,
}

impl View {
    /// The view of `nodes` with homes bounded over `keys` (sorted); the bounded homes of
    /// `before` are reused when neither the live set nor the keys changed.
    fn new(
        now_ms: i64,
        nodes: Vec<NodeRecord>,
        keys: Vec<String>,
        bound: LoadBound,
        before: Option<&View>,
    ) -> View {
        let live = membership::placement(now_ms, &nodes);
        let placement = match before {
            Some(b)
                if b.keys == keys
                    && b.placement.load_bound() == bound
                    && b.placement.ids().eq(live.ids()) =>
            {
                b.placement.clone()
            }
            _ => live
                .with_load_bound(bound)
                .with_keys(keys.iter().map(String::as_str)),
        };
        View {
            now_ms,
            nodes,
            placement,
            keys,
        }
    }

    fn record(&self, id: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Ids of the nodes not down (their leases are theirs).
    fn alive_ids(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| membership::node_state(self.now_ms, n).is_alive())
            .map(|n| n.id.clone())
            .collect()
    }

    fn down_ids(&self) -> HashSet<String> {
        self.nodes
            .iter()
            .filter(|n| membership::node_state(self.now_ms, n) == NodeState::Down)
            .map(|n| n.id.clone())
            .collect()
    }
}

/// Where an invocation should be tried, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hop {
    /// Run it here.
    Local,
    /// Forward it to this node.
    Remote { node: String, address: String },
}

/// The keys (`namespace/function`) of the functions deployed, as this node knows them: the
/// keys placement bounds the homes over.
pub type KeysFn = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

/// Reports this node's load for its heartbeat.
pub type StatsFn = Arc<dyn Fn() -> NodeStats + Send + Sync>;

/// How a node joins.
#[derive(Clone)]
pub struct JoinOptions {
    pub node_id: String,
    /// The URL other nodes reach this one at.
    pub address: String,
    pub version: String,
    pub stats: StatsFn,
}

/// A cluster node's links to the rest of the cluster.
struct Backing {
    store: Arc<dyn ClusterStore>,
    events: Arc<dyn EventStore>,
    bus: Arc<dyn Bus>,
    forwarder: Forwarder,
    /// Authenticates forwarded invocations.
    secret: String,
}

/// This node's membership, placement and leases.
pub struct Cluster {
    me: String,
    address: String,
    version: String,
    started_ms: i64,
    /// What a cluster node has and the embedded node has not.
    backing: Option<Backing>,
    stats: StatsFn,
    view: RwLock<Arc<View>>,
    /// Where the deployed functions' keys come from, and the bound on homes over them (none:
    /// plain rendezvous homes).
    keys: RwLock<Option<(KeysFn, LoadBound)>>,
    draining: AtomicBool,
    /// Node → function key (or [`WHOLE_NODE`]) → when it refused for having no room.
    saturated: Mutex<HashMap<String, HashMap<String, Instant>>>,
    /// Invocations this node has running on each node (itself included) right now.
    inflight: Mutex<HashMap<String, Arc<AtomicUsize>>>,
    leases: tokio::sync::Mutex<Option<Box<dyn Leases>>>,
    held: RwLock<HashSet<String>>,
    /// Leases wanted (taken at the next tick if not now).
    wanted: RwLock<HashSet<String>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// The embedded single node: the only member, holding every lease.
    pub fn single(node_id: &str, address: &str, stats: StatsFn) -> Arc<Cluster> {
        let me = JoinOptions {
            node_id: node_id.to_string(),
            address: address.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            stats,
        };
        let now = lambent_core::now_ms();
        let record = NodeRecord {
            id: me.node_id.clone(),
            address: me.address.clone(),
            version: me.version.clone(),
            started_ms: now,
            heartbeat_ms: now,
            draining: false,
            stats: NodeStats::default(),
        };
        Arc::new(Cluster::new(me, now, vec![record], None, None))
    }

    /// Joins the cluster behind `store`: reads its identity, writes the first heartbeat, reads
    /// the members, and starts the heartbeat loop.
    pub async fn join(
        store: Arc<dyn ClusterStore>,
        events: Arc<dyn EventStore>,
        bus: Arc<dyn Bus>,
        opts: JoinOptions,
    ) -> Result<Arc<Cluster>, StoreError> {
        let identity = store.identity().await?;
        let leases = store.leases().await?;
        let backing = Backing {
            store,
            events,
            bus,
            forwarder: Forwarder::new(&opts.node_id, &identity.secret),
            secret: identity.secret,
        };
        let now = lambent_core::now_ms();
        let cluster = Arc::new(Cluster::new(
            opts,
            now,
            Vec::new(),
            Some(backing),
            Some(leases),
        ));
        cluster.beat().await?;
        let weak = Arc::downgrade(&cluster);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(HEARTBEAT_PERIOD_MS as u64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(cluster) = weak.upgrade() else {
                    return;
                };
                if let Err(e) = cluster.beat().await {
                    tracing::warn!("cluster heartbeat failed (serving from the last view): {e}");
                }
                cluster.keep_leases().await;
            }
        });
        cluster.tasks.lock().push(task);
        Ok(cluster)
    }

    fn new(
        me: JoinOptions,
        now: i64,
        nodes: Vec<NodeRecord>,
        backing: Option<Backing>,
        leases: Option<Box<dyn Leases>>,
    ) -> Cluster {
        Cluster {
            me: me.node_id,
            address: me.address,
            version: me.version,
            started_ms: now,
            backing,
            stats: me.stats,
            view: RwLock::new(Arc::new(View::new(
                now,
                nodes,
                Vec::new(),
                LoadBound::DEFAULT,
                None,
            ))),
            keys: RwLock::new(None),
            draining: AtomicBool::new(false),
            saturated: Mutex::new(HashMap::new()),
            inflight: Mutex::new(HashMap::new()),
            leases: tokio::sync::Mutex::new(leases),
            held: RwLock::new(HashSet::new()),
            wanted: RwLock::new(HashSet::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    pub fn node_id(&self) -> &str {
        &self.me
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether this node is one of a cluster (not the embedded single node).
    pub fn clustered(&self) -> bool {
        self.backing.is_some()
    }

    /// The secret forwarded requests carry (empty on the embedded node).
    pub fn secret(&self) -> &str {
        self.backing.as_ref().map_or("", |b| b.secret.as_str())
    }

    pub fn forwarder(&self) -> Option<&Forwarder> {
        self.backing.as_ref().map(|b| &b.forwarder)
    }

    /// Sets where the deployed functions' keys come from, and bounds the homes over them now
    /// (then again at every heartbeat, when they or the live set changed).
    pub fn set_function_keys(&self, keys: KeysFn, bound: LoadBound) {
        *self.keys.write() = Some((keys, bound));
        self.refresh_keys();
    }

    /// Re-reads the deployed functions' keys and re-bounds the homes over them now.
    fn refresh_keys(&self) {
        let mut view = self.view.write();
        let (keys, bound) = self.function_keys();
        let fresh = View::new(view.now_ms, view.nodes.clone(), keys, bound, Some(&view));
        *view = Arc::new(fresh);
    }

    /// The deployed functions' keys, sorted and deduplicated, and the bound over them.
    fn function_keys(&self) -> (Vec<String>, LoadBound) {
        let (mut keys, bound) = match self.keys.read().as_ref() {
            Some((f, bound)) => (f(), *bound),
            None => (Vec::new(), LoadBound::DEFAULT),
        };
        keys.sort_unstable();
        keys.dedup();
        (keys, bound)
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Every member with its state, sorted by id (this node's own load is current).
    pub fn nodes(&self) -> Vec<NodeStatus> {
        let view = self.view();
        let mut statuses = membership::statuses(view.now_ms, &view.nodes);
        if let Some(me) = statuses.iter_mut().find(|s| s.id == self.me) {
            me.stats = (self.stats)();
        }
        statuses
    }

    /// Live members other than this one.
    pub fn live_peers(&self) -> usize {
        let view = self.view();
        let mine = view.placement.index_of(&self.me).is_some() as usize;
        view.placement.active_len().saturating_sub(mine)
    }

    /// Where to run an invocation of `namespace/function`, best first: its home, then the next
    /// nodes by hash, unless the home is saturated right now (see [`spill`]). `warm_here` is
    /// asked only when the home is passed over: whether this node holds an idle sandbox of the
    /// function's revision, which it then runs itself. Never empty: this node is the last resort
    /// when it knows no live node.
    pub fn hops(
        &self,
        namespace: &str,
        function: &str,
        warm_here: impl FnOnce() -> bool,
    ) -> Vec<Hop> {
        let mut view = self.view();
        if view.placement.active_len() <= 1 {
            return vec![Hop::Local];
        }
        let key = function_key(namespace, function);
        if view.keys.binary_search(&key).is_err() && self.keys.read().is_some() {
            // A function deployed since the last heartbeat (this node learnt of it from the
            // deploy's signal or the store just now): bound the homes with it now, as the
            // other nodes do when they see it, rather than place it by plain rendezvous until
            // the next heartbeat and move it then.
            self.refresh_keys();
            view = self.view();
        }
        let placement = &view.placement;
        let top = placement.top(&key, placement.max_spill() + 1);
        let candidates: Vec<Candidate<&str>> = {
            let mut marks = self.saturated.lock();
            if !marks.is_empty() {
                marks.retain(|_, keys| {
                    keys.retain(|_, since| since.elapsed() < SATURATED_FOR);
                    !keys.is_empty()
                });
            }
            let inflight = self.inflight.lock();
            top.iter()
                .map(|&i| {
                    let node = placement.id(i);
                    Candidate {
                        node,
                        load: inflight.get(node).map_or(0, |n| n.load(Ordering::Relaxed)),
                        saturated: marks.get(node).is_some_and(|keys| {
                            keys.contains_key(WHOLE_NODE) || keys.contains_key(&key)
                        }),
                    }
                })
                .collect()
        };
        let plan = spill::plan(&candidates, self.me.as_str(), warm_here);
        plan.order
            .into_iter()
            .map(|node| self.hop_to(&view, node))
            .collect()
    }

    fn hop_node<'a>(&'a self, hop: &'a Hop) -> &'a str {
        match hop {
            Hop::Local => &self.me,
            Hop::Remote { node, .. } => node,
        }
    }

    /// Counts an invocation running at `hop` until the guard is dropped (in a cluster: the
    /// embedded node has nowhere else to run it).
    pub fn running_at(&self, hop: &Hop) -> Option<Running> {
        if !self.clustered() {
            return None;
        }
        let node = self.hop_node(hop);
        let counter = {
            let mut inflight = self.inflight.lock();
            match inflight.get(node) {
                Some(c) => c.clone(),
                None => inflight.entry(node.to_string()).or_default().clone(),
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Some(Running(counter))
    }

    fn hop_to(&self, view: &View, id: &str) -> Hop {
        if id == self.me {
            return Hop::Local;
        }
        match view.record(id) {
            Some(r) => Hop::Remote {
                node: r.id.clone(),
                address: r.address.clone(),
            },
            None => Hop::Local,
        }
    }

    /// Remembers that a node refused an invocation of `namespace/function` for having no room:
    /// it is tried last for that function for [`SATURATED_FOR`].
    pub fn saturated(&self, node: &str, namespace: &str, function: &str) {
        self.mark(node, function_key(namespace, function));
    }

    /// Remembers that a node could not be reached: it is tried last for every function for
    /// [`SATURATED_FOR`].
    pub fn unreachable(&self, node: &str) {
        self.mark(node, WHOLE_NODE.to_string());
    }

    fn mark(&self, node: &str, key: String) {
        self.saturated
            .lock()
            .entry(node.to_string())
            .or_default()
            .insert(key, Instant::now());
    }

    /// Of `keys` (`namespace/function`), the ones this node runs asynchronous events of.
    pub fn home_keys<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let view = self.view();
        match view.placement.index_of(&self.me) {
            Some(me) if view.placement.active_len() > 1 => view.placement.home_functions(me, keys),
            _ => keys.into_iter().map(str::to_string).collect(),
        }
    }

    /// Whether this node is the home of `key` (e.g. a mapping id).
    pub fn is_home(&self, key: &str) -> bool {
        let view = self.view();
        if view.placement.active_len() <= 1 {
            return true;
        }
        match view.placement.home(key) {
            Some(home) => view.placement.id(home) == self.me,
            None => true,
        }
    }

    /// This node's share of a function's reserved concurrency.
    pub fn function_share(&self, namespace: &str, function: &str, limit: u32) -> u32 {
        let view = self.view();
        match view.placement.index_of(&self.me) {
            Some(me) if view.placement.active_len() > 1 => {
                view.placement
                    .limit_share(limit, &function_key(namespace, function), me)
            }
            _ => limit,
        }
    }

    /// This node's share of a namespace's concurrency limit.
    pub fn namespace_share(&self, namespace: &str, limit: u32) -> u32 {
        let view = self.view();
        match view.placement.index_of(&self.me) {
            Some(me) if view.placement.active_len() > 1 => {
                view.placement.namespace_share(limit, namespace, me)
            }
            _ => limit,
        }
    }

    /// Whether this node holds a lease now (the embedded node holds them all).
    pub fn holds(&self, lease: &str) -> bool {
        !self.clustered() || self.held.read().contains(lease)
    }

    /// The leases this node holds, sorted.
    pub fn held_leases(&self) -> Vec<String> {
        let mut held: Vec<String> = self.held.read().iter().cloned().collect();
        held.sort();
        held
    }

    /// Takes `lease` now if it is free and keeps trying (at every heartbeat) until
    /// [`Cluster::give_back`]; whether this node holds it now. (A schedule created right
    /// after start must not wait a heartbeat for its leader, or its first fires collapse.)
    pub async fn want(&self, lease: &str) -> bool {
        self.wanted.write().insert(lease.to_string());
        self.try_take(lease).await
    }

    /// Takes a lease now if it is free; whether this node holds it.
    pub async fn try_take(&self, lease: &str) -> bool {
        if !self.clustered() {
            return true;
        }
        if self.draining.load(Ordering::Relaxed) {
            return false;
        }
        if self.held.read().contains(lease) {
            return true;
        }
        let guard = self.leases.lock().await;
        let Some(leases) = guard.as_ref() else {
            return false;
        };
        match leases.try_acquire(lease).await {
            Ok(true) => {
                self.held.write().insert(lease.to_string());
                tracing::info!("took the lease {lease}");
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!("could not take the lease {lease}: {e}");
                false
            }
        }
    }

    /// Gives a lease back (and stops wanting it).
    pub async fn give_back(&self, lease: &str) {
        self.wanted.write().remove(lease);
        if !self.held.write().remove(lease) {
            return;
        }
        if let Some(leases) = self.leases.lock().await.as_ref() {
            if let Err(e) = leases.release(lease).await {
                tracing::warn!("could not give the lease {lease} back: {e}");
            }
        }
    }

    /// Marks this node draining (others stop sending it work at their next read) and gives
    /// every lease back.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        if let Err(e) = self.beat().await {
            tracing::warn!("could not announce the drain: {e}");
        }
        let held: Vec<String> = self.held.read().iter().cloned().collect();
        for lease in held {
            self.give_back(&lease).await;
        }
    }

    /// Leaves the membership table (a clean stop) and stops the heartbeat.
    pub async fn leave(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
        if let Some(b) = &self.backing {
            if let Err(e) = b.store.leave(&self.me).await {
                tracing::warn!("could not leave the membership table: {e}");
            }
        }
    }

    /// One heartbeat: write this node's row, read everyone's, act on nodes that went down.
    async fn beat(&self) -> Result<(), StoreError> {
        let Some(Backing { store, bus, .. }) = &self.backing else {
            return Ok(());
        };
        let record = NodeRecord {
            id: self.me.clone(),
            address: self.address.clone(),
            version: self.version.clone(),
            started_ms: self.started_ms,
            heartbeat_ms: 0,
            draining: self.draining.load(Ordering::Relaxed),
            stats: (self.stats)(),
        };
        store.heartbeat(&record).await?;
        let (now_ms, nodes) = store.nodes().await?;
        let before = self.view();
        let (keys, bound) = self.function_keys();
        let view = View::new(now_ms, nodes, keys, bound, Some(&before));
        let newly_down: Vec<String> = view
            .down_ids()
            .difference(&before.down_ids())
            .cloned()
            .collect();
        let first = before.nodes.is_empty();
        let live_changed =
            before.placement.ids().collect::<Vec<_>>() != view.placement.ids().collect::<Vec<_>>();
        let alive = view.alive_ids();
        *self.view.write() = Arc::new(view);
        if live_changed {
            tracing::info!(
                "cluster members now: {}",
                self.view().placement.ids().collect::<Vec<_>>().join(", ")
            );
        }
        if first || !newly_down.is_empty() {
            self.take_over(now_ms, &alive, &newly_down).await;
        }
        if live_changed {
            // Dispatchers re-read their share of functions; pollers rebalance.
            bus.publish(Signal::Events);
        }
        Ok(())
    }

    /// Makes the events leased by nodes that are down due again, so live nodes run them.
    async fn take_over(&self, now_ms: i64, alive: &[String], down: &[String]) {
        let Some(Backing { events, bus, .. }) = &self.backing else {
            return;
        };
        match events.release_leases(now_ms, alive).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(
                    "took over {n} asynchronous events held by nodes that are down ({})",
                    down.join(", ")
                );
                bus.publish(Signal::Events);
            }
            Err(e) => tracing::warn!("could not take over the events of nodes that are down: {e}"),
        }
    }

    /// Re-opens the lease session if it died (every lease is then lost) and takes the wanted
    /// leases that are free.
    async fn keep_leases(&self) {
        let Some(Backing { store, .. }) = &self.backing else {
            return;
        };
        {
            let mut guard = self.leases.lock().await;
            let alive = match guard.as_ref() {
                Some(leases) => leases.alive().await,
                None => false,
            };
            if !alive {
                if !self.held.read().is_empty() {
                    tracing::warn!("lost the lease session: every lease this node held is gone");
                }
                self.held.write().clear();
                *guard = match store.leases().await {
                    Ok(leases) => Some(leases),
                    Err(e) => {
                        tracing::warn!("could not open a lease session: {e}");
                        None
                    }
                };
            }
        }
        let wanted: Vec<String> = self.wanted.read().iter().cloned().collect();
        for lease in wanted {
            self.try_take(&lease).await;
        }
    }
}

impl lambent_invoker::LimitShares for Cluster {
    fn function(&self, namespace: &str, function: &str, limit: u32) -> u32 {
        self.function_share(namespace, function, limit)
    }

    fn namespace(&self, namespace: &str, limit: u32) -> u32 {
        self.namespace_share(namespace, limit)
    }

    /// Provisioned sandboxes are kept where the function's invocations go: its home.
    fn provisioned(&self, namespace: &str, function: &str, n: u32) -> u32 {
        match self.is_home(&function_key(namespace, function)) {
            true => n,
            false => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node `me` of a cluster of `ids`, all up (no store behind it).
    fn cluster_of(me: &str, ids: &[&str]) -> Cluster {
        let now = lambent_core::now_ms();
        let record = |id: &str| NodeRecord {
            id: id.to_string(),
            address: format!("http://{id}"),
            version: "test".into(),
            started_ms: now,
            heartbeat_ms: now,
            draining: false,
            stats: NodeStats::default(),
        };
        let opts = JoinOptions {
            node_id: me.to_string(),
            address: format!("http://{me}"),
            version: "test".into(),
            stats: Arc::new(NodeStats::default),
        };
        Cluster::new(
            opts,
            now,
            ids.iter().map(|id| record(id)).collect(),
            None,
            None,
        )
    }

    fn node_of(hop: &Hop, me: &str) -> String {
        match hop {
            Hop::Local => me.to_string(),
            Hop::Remote { node, .. } => node.clone(),
        }
    }

    /// The nodes `cluster` would try for `function`, in order (`warm_here` never true).
    fn order(cluster: &Cluster, function: &str) -> Vec<String> {
        cluster
            .hops("ns", function, || false)
            .iter()
            .map(|h| node_of(h, cluster.node_id()))
            .collect()
    }

    /// A function of `ns` homed on `home`, other than `except`.
    fn homed_on(cluster: &Cluster, home: &str, except: &str) -> String {
        (0..)
            .map(|i| format!("f{i}"))
            .find(|f| f != except && order(cluster, f)[0] == home)
            .unwrap()
    }

    #[test]
    fn hops_go_home_and_spill_only_while_the_home_is_saturated() {
        let door = cluster_of("c", &["a", "b", "c"]);
        let f = homed_on(&door, "a", "");
        let g = homed_on(&door, "a", &f);
        let home_first = order(&door, &f);
        assert_eq!(home_first.len(), 3);
        // The door holds an idle sandbox of f, but the home has room: f goes home.
        let hops = door.hops("ns", &f, || panic!("asked while the home has room"));
        assert_eq!(node_of(&hops[0], "c"), "a");

        // The home refused f: it is tried last for f, not for g.
        door.saturated("a", "ns", &f);
        let spilled = order(&door, &f);
        assert_eq!(spilled.last().unwrap(), "a", "{spilled:?}");
        assert_eq!(order(&door, &g)[0], "a");
        // Meanwhile the door's idle sandbox of f runs it.
        assert_eq!(door.hops("ns", &f, || true)[0], Hop::Local);

        // The mark lasts SATURATED_FOR: then f goes home again, even with a warm door.
        std::thread::sleep(SATURATED_FOR + Duration::from_millis(20));
        assert_eq!(order(&door, &f), home_first);
        let hops = door.hops("ns", &f, || panic!("asked while the home has room"));
        assert_eq!(node_of(&hops[0], "c"), "a");

        // A node that could not be reached is tried last for every function.
        door.unreachable("a");
        assert_eq!(order(&door, &f).last().unwrap(), "a");
        assert_eq!(order(&door, &g).last().unwrap(), "a");
    }

    #[test]
    fn hops_pass_an_overloaded_home_over_for_the_next_node() {
        let door = cluster_of("c", &["a", "b", "c"]);
        let f = homed_on(&door, "a", "");
        let home_first = order(&door, &f);
        let load = |node: &str, n: usize| {
            door.inflight
                .lock()
                .entry(node.to_string())
                .or_default()
                .store(n, Ordering::Relaxed)
        };
        // Under the floor: home.
        load("a", spill::SPILL_FLOOR - 1);
        assert_eq!(order(&door, &f), home_first);
        // At the floor, with nothing waiting at the next node: the next node first.
        load("a", spill::SPILL_FLOOR);
        let spilled = order(&door, &f);
        assert_eq!(spilled[0], home_first[1]);
        assert_eq!(spilled[1], "a");
        // Within 1.5 times the next node's load: home.
        load(&home_first[1], 4);
        load("a", 6);
        assert_eq!(order(&door, &f), home_first);
        // But the home is busy (at least the floor): a door holding an idle sandbox of f runs
        // it; one under the floor goes home.
        assert_eq!(door.hops("ns", &f, || true)[0], Hop::Local);
        load("a", spill::SPILL_FLOOR - 1);
        let hops = door.hops("ns", &f, || panic!("asked while the home is not busy"));
        assert_eq!(node_of(&hops[0], "c"), "a");
    }
}
