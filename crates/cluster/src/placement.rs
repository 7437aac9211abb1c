//! Placement: which node of the live set runs a function, and each node's share of a
//! cluster-wide limit.
//!
//! This module owns the pure decision, computed the same way by every node from the same live
//! set (no I/O, no clock, no randomness):
//!
//! - **Rendezvous (highest-random-weight) hashing.** Every node gets a weight for a key
//!   (`namespace/function`): `mix64(node_seed ^ key_hash)`. The node with the highest weight is
//!   the key's *home*; the rest, by decreasing weight, are its spill order. When a node joins or
//!   leaves, only the keys whose home it becomes or was move: ~1/N of them (a modulo scheme
//!   re-homes almost every key).
//! - **Try-order with bounded spill.** An invocation goes home first, then to at most
//!   `max_spill` (default [`DEFAULT_MAX_SPILL`]) next nodes by hash. Draining nodes are skipped
//!   (they take nothing new); nodes that were saturated recently (answered 429) are tried last.
//! - **Shares of a limit.** A concurrency limit is split among the live nodes so the shares sum
//!   exactly to the limit, the remainder going to the nodes earliest in the key's rendezvous
//!   order: a reserved concurrency of 1 lives on the function's home, where its traffic goes.
//!
//! The hash is FNV-1a 64 over the UTF-8 bytes followed by the splitmix64 finalizer: fixed
//! integer arithmetic, so homes are identical across machines, architectures and Rust versions
//! (std's `DefaultHasher` promises none of that). Per-node seeds are computed once when the
//! [`Placement`] is built, so ordering a key costs one multiply-xor-shift mix per node and a
//! top-k selection (about a microsecond at 1,000 nodes), never a sort of the whole set.

/// How many nodes past the home an invocation may be forwarded to before the receiving node
/// runs it itself (if it has room) or answers 429.
pub const DEFAULT_MAX_SPILL: usize = 2;

/// Position of a node in a [`Placement`] (nodes are sorted by id, so two nodes with the same
/// live set agree on indices).
pub type NodeIndex = usize;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
/// Separates node seeds from key hashes (a node named like a key gets an unrelated seed).
const NODE_SEED_DOMAIN: u64 = 0x9e37_79b9_7f4a_7c15;

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// The splitmix64 finalizer: a bijection on `u64` with full avalanche (every input bit flips
/// each output bit with probability ~1/2).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stable hash of a placement key.
pub fn key_hash(key: &str) -> u64 {
    mix64(fnv1a64(key.as_bytes()))
}

/// The stable seed of a node id.
pub fn node_seed(node_id: &str) -> u64 {
    mix64(key_hash(node_id) ^ NODE_SEED_DOMAIN)
}

/// A node's rendezvous weight for a key.
#[inline]
fn weight(seed: u64, key_hash: u64) -> u64 {
    mix64(seed ^ key_hash)
}

/// The placement key of a function: `namespace/function`.
pub fn function_key(namespace: &str, function: &str) -> String {
    format!("{namespace}/{function}")
}

/// One node of the live set, as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementNode {
    pub id: String,
    /// Stopping: takes nothing new, homes nothing, holds no share.
    pub draining: bool,
    /// Answered 429 recently: still home of its keys, but tried after the other candidates.
    pub saturated: bool,
}

impl PlacementNode {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            draining: false,
            saturated: false,
        }
    }

    pub fn draining(mut self, draining: bool) -> Self {
        self.draining = draining;
        self
    }

    pub fn saturated(mut self, saturated: bool) -> Self {
        self.saturated = saturated;
        self
    }
}

/// The placement view of one live set: homes, try-orders and limit shares of keys.
#[derive(Debug, Clone)]
pub struct Placement {
    ids: Vec<String>,
    seeds: Vec<u64>,
    draining: Vec<bool>,
    saturated: Vec<bool>,
    /// The nodes that take new work (not draining) and their seeds, contiguous for the
    /// per-key loops; rebuilt when a node's draining flag changes.
    active: Vec<NodeIndex>,
    active_seeds: Vec<u64>,
    max_spill: usize,
}

impl Placement {
    /// Builds the view of a live set. Nodes are sorted by id (the order of the input does not
    /// matter); a duplicated id is kept once, with its flags or-ed.
    pub fn new(nodes: impl IntoIterator<Item = PlacementNode>) -> Self {
        let mut nodes: Vec<PlacementNode> = nodes.into_iter().collect();
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        nodes.dedup_by(|later, kept| {
            let same = later.id == kept.id;
            if same {
                kept.draining |= later.draining;
                kept.saturated |= later.saturated;
            }
            same
        });
        let mut placement = Self {
            seeds: nodes.iter().map(|node| node_seed(&node.id)).collect(),
            draining: nodes.iter().map(|node| node.draining).collect(),
            saturated: nodes.iter().map(|node| node.saturated).collect(),
            ids: nodes.into_iter().map(|node| node.id).collect(),
            active: Vec::new(),
            active_seeds: Vec::new(),
            max_spill: DEFAULT_MAX_SPILL,
        };
        placement.index_active();
        placement
    }

    fn index_active(&mut self) {
        self.active = (0..self.ids.len()).filter(|&i| !self.draining[i]).collect();
        self.active_seeds = self.active.iter().map(|&i| self.seeds[i]).collect();
    }

    /// A live set of nodes without flags.
    pub fn from_ids<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        Self::new(ids.into_iter().map(PlacementNode::new))
    }

    /// Sets how many nodes past the home the try-order holds.
    pub fn with_max_spill(mut self, max_spill: usize) -> Self {
        self.max_spill = max_spill;
        self
    }

    pub fn max_spill(&self) -> usize {
        self.max_spill
    }

    /// Number of nodes, draining ones included.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Number of nodes that take new work (not draining): the divisor of limit shares.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    pub fn id(&self, node: NodeIndex) -> &str {
        &self.ids[node]
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    pub fn index_of(&self, node_id: &str) -> Option<NodeIndex> {
        self.ids
            .binary_search_by(|id| id.as_str().cmp(node_id))
            .ok()
    }

    pub fn is_draining(&self, node: NodeIndex) -> bool {
        self.draining[node]
    }

    pub fn is_saturated(&self, node: NodeIndex) -> bool {
        self.saturated[node]
    }

    pub fn set_draining(&mut self, node: NodeIndex, draining: bool) {
        if self.draining[node] != draining {
            self.draining[node] = draining;
            self.index_active();
        }
    }

    pub fn set_saturated(&mut self, node: NodeIndex, saturated: bool) {
        self.saturated[node] = saturated;
    }

    /// Indices and weights of the nodes that take new work, for one key.
    fn active_weights(&self, key_hash: u64) -> impl Iterator<Item = (NodeIndex, u64)> + '_ {
        self.active
            .iter()
            .zip(&self.active_seeds)
            .map(move |(&node, &seed)| (node, weight(seed, key_hash)))
    }

    /// The full rendezvous order of the nodes that take new work, best first (ties, which
    /// need a 64-bit collision, go to the lower index). O(N log N): for callers that need the whole
    /// order (a hot function's spread, cached per membership change) and tests; invocations use
    /// [`Placement::try_order`], shares [`Placement::rank`].
    pub fn order(&self, key: &str) -> Vec<NodeIndex> {
        let mut weighted: Vec<(NodeIndex, u64)> = self.active_weights(key_hash(key)).collect();
        weighted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        weighted.into_iter().map(|(node, _)| node).collect()
    }

    /// The first `k` nodes of [`Placement::order`], by a single pass keeping the best `k`
    /// (O(N) mixes plus about k·ln(N/k) insertions into a list of k; no sort, no allocation of N).
    pub fn top(&self, key: &str, k: usize) -> Vec<NodeIndex> {
        let mut best = Vec::with_capacity(k + 1);
        self.top_into(key_hash(key), k, &mut best);
        best.into_iter().map(|(node, _)| node).collect()
    }

    fn top_into(&self, key_hash: u64, k: usize, best: &mut Vec<(NodeIndex, u64)>) {
        best.clear();
        if k == 0 {
            return;
        }
        // Fill with the first k, then only a weight above the k-th best gets in (rarely, about
        // k·ln(N/k) times): the loop is one mix and one compare per node.
        let mut floor = 0;
        for (i, &seed) in self.active_seeds.iter().enumerate() {
            let w = weight(seed, key_hash);
            if best.len() == k && w <= floor {
                continue;
            }
            // Nodes come in index order, so an equal weight stays behind the earlier node.
            let at = best
                .iter()
                .rposition(|&(_, kept)| kept >= w)
                .map_or(0, |j| j + 1);
            best.insert(at, (self.active[i], w));
            best.truncate(k);
            if best.len() == k {
                floor = best[k - 1].1;
            }
        }
    }

    /// The key's home: the node with the highest weight among those that take new work.
    pub fn home(&self, key: &str) -> Option<NodeIndex> {
        self.home_of_hash(key_hash(key))
    }

    fn home_of_hash(&self, key_hash: u64) -> Option<NodeIndex> {
        // Position in `active` of the highest weight (the first one on a tie).
        let mut best = 0;
        let mut best_weight = 0;
        for (i, &seed) in self.active_seeds.iter().enumerate() {
            let w = weight(seed, key_hash);
            if w > best_weight || i == 0 {
                best = i;
                best_weight = w;
            }
        }
        self.active.get(best).copied()
    }

    /// Where to send an invocation of `key`, in order: the home and up to `max_spill` next
    /// nodes by hash (draining nodes skipped), with the recently saturated among them moved
    /// to the end. Empty only when no node takes new work.
    pub fn try_order(&self, key: &str) -> Vec<NodeIndex> {
        let mut out = Vec::with_capacity(self.max_spill + 1);
        self.try_order_into(key, &mut out);
        out
    }

    /// [`Placement::try_order`] into a reused buffer (cleared first).
    pub fn try_order_into(&self, key: &str, out: &mut Vec<NodeIndex>) {
        let k = self.max_spill + 1;
        let mut best = Vec::with_capacity(k + 1);
        self.top_into(key_hash(key), k, &mut best);
        out.clear();
        let fresh = best.iter().filter(|(node, _)| !self.saturated[*node]);
        let saturated = best.iter().filter(|(node, _)| self.saturated[*node]);
        out.extend(fresh.chain(saturated).map(|(node, _)| *node));
    }

    /// The position of `node` in the key's rendezvous order (0 = home), None when it takes no
    /// new work or is unknown. O(N), without sorting.
    pub fn rank(&self, key: &str, node: NodeIndex) -> Option<usize> {
        if node >= self.len() || self.draining[node] {
            return None;
        }
        let key_hash = key_hash(key);
        let mine = weight(self.seeds[node], key_hash);
        let ahead = self
            .active_weights(key_hash)
            .filter(|&(other, w)| w > mine || (w == mine && other < node))
            .count();
        Some(ahead)
    }

    /// `node`'s share of a function's cluster-wide concurrency limit (reserved concurrency):
    /// see [`share_at`]. `key` is the function's key.
    pub fn limit_share(&self, limit: u32, key: &str, node: NodeIndex) -> u32 {
        self.rank(key, node)
            .map_or(0, |rank| share_at(limit, self.active_len(), rank))
    }

    /// `node`'s share of a namespace-wide concurrency limit: the same split, ordered by the
    /// namespace's name (which, having no `/`, never collides with a function key).
    pub fn namespace_share(&self, limit: u32, namespace: &str, node: NodeIndex) -> u32 {
        self.limit_share(limit, namespace, node)
    }

    /// Of `keys`, the ones whose home is `node` (each node's async-event dispatcher claims
    /// these; together the nodes claim every key exactly once).
    pub fn home_functions<'a>(
        &self,
        node: NodeIndex,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        keys.into_iter()
            .filter(|key| self.home_of_hash(key_hash(key)) == Some(node))
            .map(str::to_owned)
            .collect()
    }
}

/// The share of a limit held by the node at `position` of a rendezvous order of `nodes`
/// nodes: `limit / nodes`, plus one for the first `limit % nodes` positions. The shares of
/// all positions sum exactly to `limit`; a position past the end (or no nodes) holds 0.
pub fn share_at(limit: u32, nodes: usize, position: usize) -> u32 {
    if position >= nodes {
        return 0;
    }
    let nodes = u64::try_from(nodes).unwrap_or(u64::MAX);
    let position = u64::try_from(position).unwrap_or(u64::MAX);
    let limit = u64::from(limit);
    let share = limit / nodes + u64::from(position < limit % nodes);
    // share <= limit, so it fits.
    u32::try_from(share).unwrap_or(u32::MAX)
}

/// `me`'s share of `limit` split over `order` (a key's rendezvous order of the live nodes,
/// best first): see [`share_at`]. A node absent from `order` holds 0.
pub fn share(limit: u32, order: &[NodeIndex], me: NodeIndex) -> u32 {
    order
        .iter()
        .position(|&node| node == me)
        .map_or(0, |position| share_at(limit, order.len(), position))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("node-{i:04}")).collect()
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("ns{}/fn-{i}", i % 7)).collect()
    }

    fn homes(placement: &Placement, keys: &[String]) -> Vec<String> {
        keys.iter()
            .map(|key| placement.id(placement.home(key).unwrap()).to_owned())
            .collect()
    }

    #[test]
    fn hash_is_the_documented_fnv1a_and_splitmix() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(mix64(0), 0);
        // splitmix64's first output for seed 0 is mix64(0x9e3779b97f4a7c15).
        assert_eq!(mix64(0x9e37_79b9_7f4a_7c15), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn homes_are_frozen_across_versions() {
        // Changing the hash re-homes every function of a running cluster during a rolling
        // upgrade: this test pins it.
        let placement = Placement::from_ids(["a", "b", "c", "d", "e"]);
        let order: Vec<&str> = placement
            .order("default/hello")
            .into_iter()
            .map(|node| placement.id(node))
            .collect();
        assert_eq!(order, GOLDEN_ORDER);
    }
    const GOLDEN_ORDER: [&str; 5] = ["e", "b", "a", "d", "c"];

    #[test]
    fn input_order_and_duplicates_do_not_matter() {
        let ids = nodes(50);
        let mut shuffled = ids.clone();
        shuffled.reverse();
        shuffled.push(ids[3].clone());
        let a = Placement::from_ids(ids);
        let b = Placement::from_ids(shuffled);
        assert_eq!(b.len(), 50);
        let keys = keys(1000);
        assert_eq!(homes(&a, &keys), homes(&b, &keys));
    }

    #[test]
    fn top_and_home_agree_with_the_full_order() {
        let mut placement = Placement::from_ids(nodes(37));
        placement.set_draining(5, true);
        for key in keys(300) {
            let order = placement.order(&key);
            assert_eq!(order.len(), 36);
            assert!(!order.contains(&5));
            assert_eq!(placement.home(&key), Some(order[0]));
            for k in [0, 1, 3, 10, 36, 50] {
                assert_eq!(placement.top(&key, k), order[..k.min(36)]);
            }
            for (rank, &node) in order.iter().enumerate() {
                assert_eq!(placement.rank(&key, node), Some(rank));
            }
            assert_eq!(placement.rank(&key, 5), None);
        }
    }

    #[test]
    fn homes_are_balanced() {
        let placement = Placement::from_ids(nodes(10));
        let mut counts = [0usize; 10];
        let keys = keys(100_000);
        for key in &keys {
            counts[placement.home(key).unwrap()] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_keys() {
        let ids = nodes(100);
        let keys = keys(50_000);
        let before = homes(&Placement::from_ids(ids.clone()), &keys);
        let gone = &ids[42];
        let after = homes(
            &Placement::from_ids(ids.iter().filter(|id| *id != gone).cloned()),
            &keys,
        );
        let mut moved = 0;
        for (old, new) in before.iter().zip(&after) {
            if old != new {
                assert_eq!(old, gone);
                moved += 1;
            } else {
                assert_ne!(old, gone);
            }
        }
        // ~1/100 of the keys (500), within sampling noise.
        assert!((400..600).contains(&moved), "{moved}");
    }

    #[test]
    fn a_joining_node_takes_only_its_new_keys() {
        let mut ids = nodes(100);
        let keys = keys(50_000);
        let before = homes(&Placement::from_ids(ids.clone()), &keys);
        ids.push("node-new".to_owned());
        let after = homes(&Placement::from_ids(ids), &keys);
        let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(after
            .iter()
            .zip(&before)
            .all(|(new, old)| new == old || new == "node-new"));
        assert!((400..600).contains(&moved), "{moved}");
    }

    #[test]
    fn draining_a_node_moves_only_its_keys() {
        let mut placement = Placement::from_ids(nodes(20));
        let keys = keys(5_000);
        let before = homes(&placement, &keys);
        placement.set_draining(7, true);
        let after = homes(&placement, &keys);
        for (old, new) in before.iter().zip(&after) {
            assert!(old == new || old == placement.id(7));
            assert_ne!(new, placement.id(7));
        }
    }

    #[test]
    fn try_order_is_home_then_spill_skipping_draining_nodes() {
        let mut placement = Placement::from_ids(nodes(10));
        let key = "ns/f";
        let order = placement.order(key);
        assert_eq!(placement.try_order(key), order[..3]);

        placement.set_draining(order[1], true);
        assert_eq!(placement.try_order(key), [order[0], order[2], order[3]]);

        // A saturated home stays in the list, but last.
        placement.set_saturated(order[0], true);
        assert_eq!(placement.try_order(key), [order[2], order[3], order[0]]);

        let placement = placement.with_max_spill(0);
        assert_eq!(placement.try_order(key), [order[0]]);

        let two = Placement::from_ids(nodes(2)).with_max_spill(5);
        assert_eq!(two.try_order(key).len(), 2);
        assert!(Placement::from_ids(Vec::<String>::new())
            .try_order(key)
            .is_empty());
    }

    #[test]
    fn shares_sum_to_the_limit_with_the_remainder_first_in_order() {
        for n in 1..=12 {
            let placement = Placement::from_ids(nodes(n));
            for limit in [0, 1, 2, 3, 7, 10, 100, 1001, u32::MAX] {
                for key in ["ns/a", "ns/b", "other/c"] {
                    let order = placement.order(key);
                    let shares: Vec<u32> = order
                        .iter()
                        .map(|&node| placement.limit_share(limit, key, node))
                        .collect();
                    let sum: u64 = shares.iter().map(|&s| u64::from(s)).sum();
                    assert_eq!(sum, u64::from(limit), "n={n} limit={limit}");
                    // Non-increasing along the order, differing by at most one.
                    assert!(shares.windows(2).all(|w| w[0] >= w[1]));
                    assert!(shares[0] - shares[n - 1] <= 1);
                    for &node in &order {
                        assert_eq!(
                            share(limit, &order, node),
                            placement.limit_share(limit, key, node)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn small_limits_live_on_the_home() {
        let placement = Placement::from_ids(["a", "b", "c"]);
        let key = "ns/reserved";
        let order = placement.order(key);
        let shares = |limit| -> Vec<u32> {
            order
                .iter()
                .map(|&node| placement.limit_share(limit, key, node))
                .collect()
        };
        assert_eq!(shares(1), [1, 0, 0]);
        assert_eq!(shares(2), [1, 1, 0]);
        assert_eq!(shares(10), [4, 3, 3]);
        assert_eq!(placement.home(key), Some(order[0]));
    }

    #[test]
    fn namespace_shares_sum_to_the_limit_and_draining_nodes_hold_none() {
        let mut placement = Placement::from_ids(nodes(7));
        placement.set_draining(2, true);
        let shares: Vec<u32> = (0..7)
            .map(|node| placement.namespace_share(1000, "tenant", node))
            .collect();
        assert_eq!(shares.iter().sum::<u32>(), 1000);
        assert_eq!(shares[2], 0);
        assert_eq!(shares.iter().filter(|&&s| s == 167).count(), 4);
        assert_eq!(shares.iter().filter(|&&s| s == 166).count(), 2);
        assert_eq!(share(5, &[3, 1], 9), 0);
        assert_eq!(share_at(5, 0, 0), 0);
    }

    #[test]
    fn a_join_overshoots_by_at_most_the_joiners_share() {
        // While the others still see N nodes and the joiner already sees N + 1, the sum of
        // the shares the nodes enforce is at most limit + ceil(limit / (N + 1)).
        for n in 1..=20 {
            let old = Placement::from_ids(nodes(n));
            let mut ids = nodes(n);
            ids.push("joiner".to_owned());
            let new = Placement::from_ids(ids);
            let joiner = new.index_of("joiner").unwrap();
            for limit in [1, 3, 10, 64, 1000] {
                for key in ["ns/a", "ns/b", "ns/c"] {
                    let old_sum: u32 = (0..n).map(|i| old.limit_share(limit, key, i)).sum();
                    let total = old_sum + new.limit_share(limit, key, joiner);
                    assert!(total <= limit + limit.div_ceil(n as u32 + 1));
                }
            }
        }
    }

    #[test]
    fn home_functions_partition_the_keys() {
        let placement = Placement::from_ids(nodes(9));
        let keys = keys(2_000);
        let mut claimed: Vec<String> = (0..9)
            .flat_map(|node| placement.home_functions(node, keys.iter().map(String::as_str)))
            .collect();
        claimed.sort();
        let mut all = keys.clone();
        all.sort();
        assert_eq!(claimed, all);
        let mine = placement.home_functions(4, keys.iter().map(String::as_str));
        assert!(mine.iter().all(|key| placement.home(key) == Some(4)));
    }

    #[test]
    fn function_keys_join_namespace_and_name() {
        assert_eq!(function_key("default", "hello"), "default/hello");
        let placement = Placement::from_ids(["x"]);
        assert_eq!(placement.index_of("x"), Some(0));
        assert_eq!(placement.index_of("y"), None);
    }
}
