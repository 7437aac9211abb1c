//! Placement simulation: Lambent's rendezvous placement (the real `placement.rs`, with plain and
//! with bounded homes) against random placement, OpenWhisk's home-invoker sharding and an
//! idealised least-loaded balancer, on a synthetic trace shaped like the Azure Functions 2019
//! trace, at 10, 100 and 1,000 nodes.
//!
//! `cargo run -p lambent-cluster --release --example placement_sim` (deterministic; prints
//! markdown). See `docs/cluster.md` for the method and the reading of the results.
//!
//! Model:
//! - Workload: `FUNCS_PER_NODE × N` functions; per-function rate weights lognormal
//!   (σ = 3.57 in ln, so ~18 % of the functions get ~99.6 % of the invocations, rates spanning
//!   ~10 orders of magnitude); Poisson arrivals (the superposition of the functions' Poisson
//!   processes); per-function median duration lognormal (median 0.6 s, σ = 1.4, clamped to
//!   10 ms–120 s), each invocation lognormal around it (σ = 0.5); memory 128/256/512/1024 MB
//!   (35/35/20/10 %). The total rate is set so the cluster's slots are ~65 % busy.
//! - Node: `SLOTS` concurrent sandboxes, `MEMORY_MB` for busy and idle sandboxes; an idle
//!   sandbox is kept warm for `KEEP_ALIVE` (10 min, Azure's fixed policy), evicted LRU when a
//!   cold start needs its memory. An invocation is warm when its node has an idle sandbox of
//!   its function; a cold one costs `COLD_START` more busy time.
//! - Each invocation arrives at a random node (an external load balancer). A policy picks the
//!   node among those with a free slot; when it finds none the invocation is rejected (429).

use lambent_cluster::placement::Placement;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hint::black_box;
use std::time::Instant;

const SEED: u64 = 0x1a3b_e47c_2019_0a7c;
const FUNCS_PER_NODE: usize = 100;
const SLOTS: u32 = 8;
const MEMORY_MB: u32 = 8 * 1024;
const TARGET_UTILISATION: f64 = 0.65;
const US: u64 = 1_000_000;
const KEEP_ALIVE: u64 = 600 * US;
const COLD_START: u64 = 250_000;
const WARMUP: u64 = 600 * US;
const HORIZON: u64 = 1_500 * US;
const RATE_SIGMA: f64 = 3.57;
const MAX_SPILL: usize = 2;

// ---------------------------------------------------------------------------------------------
// Deterministic randomness (splitmix64; no dependency, same numbers everywhere).

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        lambent_cluster::placement::mix64(self.0)
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    fn exponential(&mut self, rate: f64) -> f64 {
        -self.unit().ln() / rate
    }
}

// ---------------------------------------------------------------------------------------------
// Workload.

struct Function {
    namespace: String,
    key: String,
    memory_mb: u32,
    median_s: f64,
}

struct Workload {
    functions: Vec<Function>,
    /// Each function's share of the invocations.
    probability: Vec<f64>,
    /// Walker's alias table over `probability`: O(1) sampling of the invoked function.
    alias: Vec<(f64, u32)>,
    /// Invocations per second, all functions.
    rate: f64,
}

impl Workload {
    fn new(nodes: usize, rng: &mut Rng) -> Self {
        let count = FUNCS_PER_NODE * nodes;
        let mut functions = Vec::with_capacity(count);
        let mut weights = Vec::with_capacity(count);
        for i in 0..count {
            let namespace = format!("tenant{}", i % (count / 10).max(1));
            let memory_mb = match rng.unit() {
                u if u < 0.35 => 128,
                u if u < 0.70 => 256,
                u if u < 0.90 => 512,
                _ => 1024,
            };
            let median_s = rng.lognormal(0.6, 1.4).clamp(0.01, 120.0);
            weights.push(rng.lognormal(1.0, RATE_SIGMA));
            functions.push(Function {
                key: format!("{namespace}/fn{i}"),
                namespace,
                memory_mb,
                median_s,
            });
        }
        let total: f64 = weights.iter().sum();
        // Mean busy seconds per invocation (lognormal mean = median · e^(σ²/2)).
        let mean_duration: f64 = functions
            .iter()
            .zip(&weights)
            .map(|(f, w)| w / total * f.median_s * (0.5f64 * 0.5 / 2.0).exp())
            .sum();
        let rate = TARGET_UTILISATION * (nodes as f64) * f64::from(SLOTS) / mean_duration;
        let probability: Vec<f64> = weights.iter().map(|w| w / total).collect();
        Self {
            alias: alias_table(&probability),
            probability,
            functions,
            rate,
        }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let i = rng.below(self.alias.len());
        let (keep, other) = self.alias[i];
        if rng.unit() <= keep {
            i
        } else {
            other as usize
        }
    }

    fn duration_us(&self, function: usize, rng: &mut Rng) -> u64 {
        let s = rng.lognormal(self.functions[function].median_s, 0.5);
        (s * US as f64).max(1.0) as u64
    }

    /// (share of invocations going to the top 18 % of functions, share of functions invoked
    /// less than once an hour, busy slots of the most popular function).
    fn shape(&self) -> (f64, f64, f64) {
        let mut p = self.probability.clone();
        let top_busy = p
            .iter()
            .zip(&self.functions)
            .map(|(p, f)| p * self.rate * f.median_s * (0.125f64).exp())
            .fold(0.0, f64::max);
        let rare = p.iter().filter(|&&p| p * self.rate * 3600.0 < 1.0).count();
        p.sort_by(|a, b| b.total_cmp(a));
        let top = (p.len() as f64 * 0.18).round() as usize;
        let top_share: f64 = p[..top].iter().sum();
        (top_share, rare as f64 / p.len() as f64, top_busy)
    }
}

/// Walker's alias method (Vose's construction): entry i keeps i with probability `.0`, else
/// yields `.1`.
fn alias_table(probability: &[f64]) -> Vec<(f64, u32)> {
    let n = probability.len();
    let mut scaled: Vec<f64> = probability.iter().map(|p| p * n as f64).collect();
    let mut table = vec![(1.0, 0u32); n];
    let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
    while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
        table[s] = (scaled[s], l as u32);
        scaled[l] -= 1.0 - scaled[s];
        if scaled[l] < 1.0 {
            large.pop();
            small.push(l);
        }
    }
    for i in small.into_iter().chain(large) {
        table[i] = (1.0, i as u32);
    }
    table
}

// ---------------------------------------------------------------------------------------------
// Nodes: slots, memory, warm pool with keep-alive and LRU eviction.

/// Fibonacci hashing of a function index (the default SipHash is needlessly slow here).
#[derive(Default, Clone, Copy)]
struct IndexHasher(u64);

impl std::hash::Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type IndexMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<IndexHasher>>;

#[derive(Default)]
struct Node {
    busy: u32,
    used_mb: u32,
    /// Idle sandboxes by (idle since, sequence) → (function, memory): LRU first.
    idle: BTreeMap<(u64, u64), (u32, u32)>,
    /// Each function's idle sandboxes (keys into `idle`), most recently used last.
    idle_by_function: IndexMap<Vec<(u64, u64)>>,
    busy_us: u64,
}

impl Node {
    fn remove_idle(&mut self, at: (u64, u64)) {
        let (function, memory_mb) = self.idle.remove(&at).expect("idle sandbox");
        self.used_mb -= memory_mb;
        let stack = self.idle_by_function.get_mut(&function).expect("idle list");
        let i = stack.iter().rposition(|&k| k == at).expect("idle entry");
        stack.remove(i);
        if stack.is_empty() {
            self.idle_by_function.remove(&function);
        }
    }

    fn expire(&mut self, now: u64) {
        while let Some((&at, _)) = self.idle.first_key_value() {
            if at.0 + KEEP_ALIVE > now {
                break;
            }
            self.remove_idle(at);
        }
    }

    /// Starts an invocation; true if warm.
    fn start(&mut self, now: u64, function: u32, memory_mb: u32) -> bool {
        self.expire(now);
        self.busy += 1;
        if let Some(&at) = self
            .idle_by_function
            .get(&function)
            .and_then(|stack| stack.last())
        {
            self.remove_idle(at);
            self.used_mb += memory_mb;
            return true;
        }
        while self.used_mb + memory_mb > MEMORY_MB {
            let (&lru, _) = self
                .idle
                .first_key_value()
                .expect("busy sandboxes always fit in memory");
            self.remove_idle(lru);
        }
        self.used_mb += memory_mb;
        false
    }

    fn finish(&mut self, now: u64, seq: u64, function: u32, memory_mb: u32) {
        self.busy -= 1;
        self.idle.insert((now, seq), (function, memory_mb));
        self.idle_by_function
            .entry(function)
            .or_default()
            .push((now, seq));
    }
}

// ---------------------------------------------------------------------------------------------
// Policies.

trait Policy: Send {
    fn name(&self) -> &'static str;
    /// The node to run `function` on among those with a free slot, and how many candidates
    /// were passed over (spills), or None when the policy finds no free slot.
    fn choose(
        &mut self,
        function: usize,
        receiving: usize,
        full: &dyn Fn(usize) -> bool,
        rng: &mut Rng,
    ) -> Option<(usize, usize)>;
    /// A node's busy count changed (for policies that track load).
    fn load_changed(&mut self, _node: usize, _old: u32, _new: u32) {}
    /// Shares of functions whose first-choice node changes when node `leaving` leaves, and when
    /// one node joins (None: the policy has no notion of home).
    fn rehomed(&self, _leaving: usize) -> Option<(f64, f64)> {
        None
    }
    /// Functions homed on the busiest node over the mean (None: no notion of home).
    fn home_spread(&self) -> Option<f64> {
        None
    }
}

/// Max over mean of per-node home counts.
fn spread(homes: impl Iterator<Item = usize>, nodes: usize) -> f64 {
    let mut counts = vec![0usize; nodes];
    let mut total = 0;
    for home in homes {
        counts[home] += 1;
        total += 1;
    }
    let max = counts.iter().copied().max().unwrap_or(0);
    max as f64 * nodes as f64 / total.max(1) as f64
}

fn node_ids(nodes: usize) -> Vec<String> {
    (0..nodes).map(|i| format!("node-{i:04}")).collect()
}

/// (a) Lambent: rendezvous home, then up to `MAX_SPILL` next nodes by hash, then the node the
/// invocation arrived at.
struct Rendezvous<'w> {
    placement: Placement,
    workload: &'w Workload,
    order: Vec<usize>,
    /// Homes bounded over the workload's functions (`Placement::with_keys`, ε = 1/10).
    bounded: bool,
}

impl<'w> Rendezvous<'w> {
    fn new(nodes: usize, workload: &'w Workload, bounded: bool) -> Self {
        // Node ids sort like their indices, so the placement's indices are the simulator's.
        let placement = Self::place(workload, node_ids(nodes), bounded).with_max_spill(MAX_SPILL);
        Self {
            placement,
            workload,
            order: Vec::with_capacity(MAX_SPILL + 1),
            bounded,
        }
    }

    fn place(workload: &Workload, ids: Vec<String>, bounded: bool) -> Placement {
        let placement = Placement::from_ids(ids);
        if bounded {
            placement.with_keys(workload.functions.iter().map(|f| f.key.as_str()))
        } else {
            placement
        }
    }
}

impl Policy for Rendezvous<'_> {
    fn name(&self) -> &'static str {
        if self.bounded {
            "lambent, homes bounded (ε = 1/10) + spill"
        } else {
            "lambent (rendezvous + spill)"
        }
    }

    fn choose(
        &mut self,
        function: usize,
        receiving: usize,
        full: &dyn Fn(usize) -> bool,
        _rng: &mut Rng,
    ) -> Option<(usize, usize)> {
        self.placement
            .try_order_into(&self.workload.functions[function].key, &mut self.order);
        if !self.order.contains(&receiving) {
            self.order.push(receiving);
        }
        self.order
            .iter()
            .enumerate()
            .find(|&(_, &node)| !full(node))
            .map(|(spills, &node)| (node, spills))
    }

    fn rehomed(&self, leaving: usize) -> Option<(f64, f64)> {
        let ids = node_ids(self.placement.len());
        let gone = &ids[leaving];
        let left = Self::place(
            self.workload,
            ids.iter().filter(|id| *id != gone).cloned().collect(),
            self.bounded,
        );
        let joined = Self::place(
            self.workload,
            ids.iter().cloned().chain(["node-new".to_owned()]).collect(),
            self.bounded,
        );
        let home = |placement: &Placement, key: &str| -> String {
            placement.id(placement.home(key).unwrap()).to_owned()
        };
        let (mut after_leave, mut after_join) = (0usize, 0usize);
        for f in &self.workload.functions {
            let before = home(&self.placement, &f.key);
            after_leave += usize::from(before != home(&left, &f.key));
            after_join += usize::from(before != home(&joined, &f.key));
        }
        let count = self.workload.functions.len() as f64;
        Some((after_leave as f64 / count, after_join as f64 / count))
    }

    fn home_spread(&self) -> Option<f64> {
        let placement = &self.placement;
        let homes = self
            .workload
            .functions
            .iter()
            .map(|f| placement.home(&f.key).unwrap());
        Some(spread(homes, placement.len()))
    }
}

/// (a') Lambent's order walked to the end: home, `MAX_SPILL` next nodes by hash, then the rest
/// of the function's rendezvous order (full orders computed on demand by `Placement::order`
/// and cached, as a node would for its hot functions until the membership changes).
struct RendezvousWalk<'w> {
    inner: Rendezvous<'w>,
    full_orders: HashMap<usize, Vec<usize>>,
}

impl Policy for RendezvousWalk<'_> {
    fn name(&self) -> &'static str {
        "lambent, spill walking the whole order"
    }

    fn choose(
        &mut self,
        function: usize,
        _receiving: usize,
        full: &dyn Fn(usize) -> bool,
        _rng: &mut Rng,
    ) -> Option<(usize, usize)> {
        let inner = &mut self.inner;
        let key = &inner.workload.functions[function].key;
        inner.placement.try_order_into(key, &mut inner.order);
        if let Some(found) = inner
            .order
            .iter()
            .enumerate()
            .find(|&(_, &node)| !full(node))
        {
            return Some((*found.1, found.0));
        }
        let placement = &inner.placement;
        let order = self
            .full_orders
            .entry(function)
            .or_insert_with(|| placement.order(key));
        order
            .iter()
            .enumerate()
            .skip(MAX_SPILL + 1)
            .find(|&(_, &node)| !full(node))
            .map(|(spills, &node)| (node, spills))
    }

    fn rehomed(&self, leaving: usize) -> Option<(f64, f64)> {
        self.inner.rehomed(leaving)
    }

    fn home_spread(&self) -> Option<f64> {
        self.inner.home_spread()
    }
}

/// (b) Random: up to `MAX_SPILL + 1` random nodes.
struct Random {
    nodes: usize,
}

impl Policy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn choose(
        &mut self,
        _function: usize,
        _receiving: usize,
        full: &dyn Fn(usize) -> bool,
        rng: &mut Rng,
    ) -> Option<(usize, usize)> {
        (0..=MAX_SPILL)
            .map(|spills| (rng.below(self.nodes), spills))
            .find(|&(node, _)| !full(node))
    }
}

/// Java's `String.hashCode` (ASCII keys: UTF-16 units are the bytes).
fn java_hash(s: &str) -> i32 {
    s.bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// OpenWhisk's `pairwiseCoprimeNumbersUntil`.
fn pairwise_coprime_until(x: usize) -> Vec<usize> {
    let mut primes: Vec<usize> = Vec::new();
    for cur in 1..=x {
        if gcd(cur, x) == 1 && primes.iter().all(|&p| gcd(p, cur) == 1) {
            primes.push(cur);
        }
    }
    primes
}

/// (c) OpenWhisk's ShardingContainerPoolBalancer: home = hash mod N, then steps of a coprime
/// step size (chosen by the hash) through every invoker.
struct OpenWhisk {
    nodes: usize,
    hashes: Vec<u32>,
    steps: Vec<usize>,
}

impl OpenWhisk {
    fn new(nodes: usize, workload: &Workload) -> Self {
        let hashes = workload
            .functions
            .iter()
            .map(|f| (java_hash(&f.namespace) ^ java_hash(&f.key)).unsigned_abs())
            .collect();
        Self {
            nodes,
            hashes,
            steps: pairwise_coprime_until(nodes),
        }
    }
}

impl Policy for OpenWhisk {
    fn name(&self) -> &'static str {
        "openwhisk (hash mod N + coprime steps)"
    }

    fn choose(
        &mut self,
        function: usize,
        _receiving: usize,
        full: &dyn Fn(usize) -> bool,
        _rng: &mut Rng,
    ) -> Option<(usize, usize)> {
        let hash = self.hashes[function] as usize;
        let step = self.steps[hash % self.steps.len()];
        let mut node = hash % self.nodes;
        for spills in 0..self.nodes {
            if !full(node) {
                return Some((node, spills));
            }
            node = (node + step) % self.nodes;
        }
        None
    }

    fn rehomed(&self, leaving: usize) -> Option<(f64, f64)> {
        // Since apache/openwhisk#2476 an invoker that goes offline keeps its index (the list
        // never shrinks): only the actions homed on it move, to their next step. A new invoker
        // is appended: N changes, and with it `hash mod N` for almost every action.
        let (mut after_leave, mut after_join) = (0usize, 0usize);
        for &hash in &self.hashes {
            let home = hash as usize % self.nodes;
            after_leave += usize::from(home == leaving);
            after_join += usize::from(home != hash as usize % (self.nodes + 1));
        }
        let count = self.hashes.len() as f64;
        Some((after_leave as f64 / count, after_join as f64 / count))
    }

    fn home_spread(&self) -> Option<f64> {
        let homes = self.hashes.iter().map(|&hash| hash as usize % self.nodes);
        Some(spread(homes, self.nodes))
    }
}

/// (d) Least-loaded, with global and instant knowledge (an ideal central balancer): the node
/// with the fewest busy slots, lowest index first.
struct LeastLoaded {
    /// Nodes by busy count, and each node's position in its bucket.
    buckets: Vec<Vec<usize>>,
    position: Vec<usize>,
}

impl LeastLoaded {
    fn new(nodes: usize) -> Self {
        let mut buckets = vec![Vec::new(); SLOTS as usize + 1];
        buckets[0] = (0..nodes).collect();
        Self {
            buckets,
            position: (0..nodes).collect(),
        }
    }
}

impl Policy for LeastLoaded {
    fn name(&self) -> &'static str {
        "least-loaded (ideal)"
    }

    fn choose(
        &mut self,
        _function: usize,
        _receiving: usize,
        _full: &dyn Fn(usize) -> bool,
        _rng: &mut Rng,
    ) -> Option<(usize, usize)> {
        self.buckets[..SLOTS as usize]
            .iter()
            .find_map(|bucket| bucket.last())
            .map(|&node| (node, 0))
    }

    fn load_changed(&mut self, node: usize, old: u32, new: u32) {
        let bucket = &mut self.buckets[old as usize];
        let at = self.position[node];
        bucket.swap_remove(at);
        if let Some(&moved) = bucket.get(at) {
            self.position[moved] = at;
        }
        let bucket = &mut self.buckets[new as usize];
        self.position[node] = bucket.len();
        bucket.push(node);
    }
}

// ---------------------------------------------------------------------------------------------
// Simulation.

/// A running invocation: (end, sequence, node, function, memory), earliest end first.
type Running = (u64, u64, u32, u32, u32);

struct Outcome {
    invocations: u64,
    warm: u64,
    rejected: u64,
    spills: u64,
    busy_us: Vec<u64>,
    rehomed: Option<(f64, f64)>,
    home_spread: Option<f64>,
}

fn simulate(nodes: usize, workload: &Workload, policy: &mut dyn Policy) -> Outcome {
    let mut trace = Rng(SEED ^ 0x7261_6365);
    let mut routing = Rng(SEED ^ 0x726f_7574);
    let mut state: Vec<Node> = (0..nodes).map(|_| Node::default()).collect();
    let mut running: BinaryHeap<Reverse<Running>> = BinaryHeap::new();
    let mut out = Outcome {
        invocations: 0,
        warm: 0,
        rejected: 0,
        spills: 0,
        busy_us: Vec::new(),
        rehomed: None,
        home_spread: None,
    };
    let mut seq = 0u64;
    let mut now = 0u64;
    loop {
        now += (trace.exponential(workload.rate) * US as f64) as u64;
        if now >= HORIZON {
            break;
        }
        while let Some(&Reverse((end, s, node, function, memory))) = running.peek() {
            if end > now {
                break;
            }
            running.pop();
            let n = &mut state[node as usize];
            n.finish(end, s, function, memory);
            policy.load_changed(node as usize, n.busy + 1, n.busy);
        }
        let function = workload.sample(&mut trace);
        let duration = workload.duration_us(function, &mut trace);
        let receiving = routing.below(nodes);
        let measured = now >= WARMUP;
        let full = |node: usize| state[node].busy >= SLOTS;
        let Some((node, spills)) = policy.choose(function, receiving, &full, &mut routing) else {
            out.rejected += u64::from(measured);
            continue;
        };
        let memory = workload.functions[function].memory_mb;
        let n = &mut state[node];
        let warm = n.start(now, function as u32, memory);
        policy.load_changed(node, n.busy - 1, n.busy);
        let busy = duration + if warm { 0 } else { COLD_START };
        seq += 1;
        running.push(Reverse((
            now + busy,
            seq,
            node as u32,
            function as u32,
            memory,
        )));
        if measured {
            out.invocations += 1;
            out.warm += u64::from(warm);
            out.spills += spills as u64;
            n.busy_us += busy;
        }
    }
    out.busy_us = state.iter().map(|n| n.busy_us).collect();
    out.rehomed = policy.rehomed(nodes / 2);
    out.home_spread = policy.home_spread();
    out
}

fn imbalance(busy: &[u64]) -> (f64, f64) {
    let n = busy.len() as f64;
    let mean = busy.iter().map(|&b| b as f64).sum::<f64>() / n;
    let max = busy.iter().copied().max().unwrap_or(0) as f64;
    let var = busy.iter().map(|&b| (b as f64 - mean).powi(2)).sum::<f64>() / n;
    (max / mean, var.sqrt() / mean)
}

/// Nanoseconds per `try_order_into` (and per `home`) over many keys, on `nodes` nodes.
fn time_decision(nodes: usize) -> (f64, f64) {
    let placement = Placement::from_ids(node_ids(nodes));
    let keys: Vec<String> = (0..4096)
        .map(|i| format!("tenant{}/fn{i}", i % 97))
        .collect();
    let calls = 2_000_000 / nodes.max(10) * 10;
    let mut order = Vec::with_capacity(MAX_SPILL + 2);
    let start = Instant::now();
    for i in 0..calls {
        placement.try_order_into(black_box(&keys[i % keys.len()]), &mut order);
        black_box(&order);
    }
    let try_order = start.elapsed().as_nanos() as f64 / calls as f64;
    let start = Instant::now();
    for i in 0..calls {
        black_box(placement.home(black_box(&keys[i % keys.len()])));
    }
    let home = start.elapsed().as_nanos() as f64 / calls as f64;
    (try_order, home)
}

fn main() {
    let started = Instant::now();
    println!(
        "Placement simulation: {SLOTS} slots and {} GiB per node, keep-alive {} min, cold start \
         +{} ms, {} % target utilisation, {} functions per node, {} min simulated ({} min \
         warm-up), seed {SEED:#x}.\n",
        MEMORY_MB / 1024,
        KEEP_ALIVE / US / 60,
        COLD_START / 1000,
        TARGET_UTILISATION * 100.0,
        FUNCS_PER_NODE,
        HORIZON / US / 60,
        WARMUP / US / 60,
    );
    let mut rows = Vec::new();
    for nodes in [10usize, 100, 1000] {
        let workload = Workload::new(nodes, &mut Rng(SEED ^ nodes as u64));
        let (top_share, rare, top_busy) = workload.shape();
        println!(
            "N = {nodes}: {} functions, {:.0} invocations/s; top 18 % of functions get {:.2} % \
             of invocations; {:.0} % of functions invoked < 1/hour; the most popular function \
             keeps {:.1} slots busy ({:.1} nodes' worth).",
            workload.functions.len(),
            workload.rate,
            top_share * 100.0,
            rare * 100.0,
            top_busy,
            top_busy / f64::from(SLOTS),
        );
        let policies: Vec<Box<dyn Policy + '_>> = vec![
            Box::new(Rendezvous::new(nodes, &workload, false)),
            Box::new(Rendezvous::new(nodes, &workload, true)),
            Box::new(RendezvousWalk {
                inner: Rendezvous::new(nodes, &workload, false),
                full_orders: HashMap::new(),
            }),
            Box::new(Random { nodes }),
            Box::new(OpenWhisk::new(nodes, &workload)),
            Box::new(LeastLoaded::new(nodes)),
        ];
        // One thread per policy: runs are independent and each is deterministic.
        let outcomes: Vec<(&'static str, Outcome, f64)> = std::thread::scope(|scope| {
            let workload = &workload;
            let handles: Vec<_> = policies
                .into_iter()
                .map(|mut policy| {
                    scope.spawn(move || {
                        let t = Instant::now();
                        let out = simulate(nodes, workload, policy.as_mut());
                        (policy.name(), out, t.elapsed().as_secs_f64())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("simulation thread"))
                .collect()
        });
        for (name, out, seconds) in outcomes {
            let (max_mean, cv) = imbalance(&out.busy_us);
            rows.push(format!(
                "| {nodes} | {name} | {} | {:.2} % | {} | {:.2} | {:.3} | {:.3} | {:.3} % | {} |",
                out.invocations,
                out.warm as f64 / out.invocations as f64 * 100.0,
                out.home_spread
                    .map_or("n/a".to_owned(), |s| format!("{s:.2}")),
                max_mean,
                cv,
                out.spills as f64 / out.invocations as f64,
                out.rejected as f64 / (out.invocations + out.rejected) as f64 * 100.0,
                out.rehomed
                    .map_or("n/a".to_owned(), |(leave, join)| format!(
                        "{:.2} % / {:.2} %",
                        leave * 100.0,
                        join * 100.0
                    )),
            ));
            eprintln!("  {nodes} nodes, {name}: {seconds:.1} s");
        }
    }
    println!();
    println!(
        "| nodes | policy | invocations | warm hits | homes max/mean | busy max/mean | busy CV | \
         spills/inv | rejected | functions re-homed: 1 node leaves / 1 joins |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
    println!();
    println!("Placement decision time (lambent, `try_order` with max_spill {MAX_SPILL}; `home`):");
    println!();
    println!("| nodes | try_order ns/decision | home ns/decision |");
    println!("|---:|---:|---:|");
    for nodes in [10usize, 100, 1000] {
        let (try_order, home) = time_decision(nodes);
        println!("| {nodes} | {try_order:.0} | {home:.0} |");
    }
    println!();
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}
