//! Spill: the pure choice of where a synchronous invocation goes first, among its function's
//! home and the next nodes by hash ([`crate::placement::Placement::top`]), from what the
//! receiving node knows right now. No I/O, no clock: the caller says which candidates are
//! saturated and how loaded each is, and this module orders them.
//!
//! The rule: **home first, unless the home is saturated right now.** The home is saturated
//!
//! - *hard*, when it refused an invocation of this function for having no room (it answered
//!   `Throttled`: its memory budget is held by busy sandboxes, or a concurrency share is full)
//!   within the last moment (the caller's marks, [`Candidate::saturated`]): it is tried last;
//! - *soft*, when the receiving node waits on clearly more invocations at the home than at the
//!   next node by hash: at least [`SPILL_FLOOR`] and more than [`SPILL_RATIO`] times as many
//!   ([`overloaded`]). A margin relative to the load, not an absolute one: with a few invocations
//!   per node, a difference of two is noise, and with hundreds it is nothing; and below the floor
//!   the home is never overloaded, so sequential or light traffic never spills.
//!
//! The receiving node runs the invocation itself, warm and without a hop, when it holds an idle
//! sandbox of the function (a spill left it there) and the home is saturated or *busy*: it waits
//! on at least [`SPILL_FLOOR`] invocations there ([`busy`]), whatever the next node's load. A
//! forward costs the cluster more CPU than a local invocation (the door's and the home's
//! wake-ups and loopback or network I/O: about 40 % more, measured in `docs/cluster.md`), so
//! while the home has plenty to do, a warm door that can take the invocation does. Below the
//! floor (sequential or light traffic) the home always goes first and the door's sandboxes are
//! never used: a function that spilled earlier goes back to its home as soon as the load falls,
//! and what it left at other doors ages out by keep-alive. Doors get sandboxes only through
//! spills (overloaded or saturated homes), so this never spreads a function that did not spill.

/// The fewest invocations the receiving node must wait on at a home before it is
/// [`overloaded`].
pub const SPILL_FLOOR: usize = 4;

/// How many times the next node's load the home's must exceed to be [`overloaded`], as a
/// fraction `(numerator, denominator)`: 3/2, the home waits on over 50 % more.
pub const SPILL_RATIO: (usize, usize) = (3, 2);

/// One node of a function's try-order, as the receiving node sees it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<N> {
    pub node: N,
    /// Invocations the receiving node has running at this node now.
    pub load: usize,
    /// The node refused an invocation of this function for having no room a moment ago (or
    /// could not be reached).
    pub saturated: bool,
}

/// Where to try an invocation, best first, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<N> {
    pub order: Vec<N>,
    /// The home was passed over (saturated or overloaded): the invocation spills.
    pub spilling: bool,
}

/// Whether a home with `home` invocations waiting is busy enough that a door holding an idle
/// sandbox of the function runs it itself (see the module doc).
pub fn busy(home: usize) -> bool {
    home >= SPILL_FLOOR
}

/// Whether a home with `home` invocations waiting is overloaded against a next node with
/// `next` (see the module doc).
pub fn overloaded(home: usize, next: usize) -> bool {
    let (num, den) = SPILL_RATIO;
    busy(home) && home * den > next * num
}

/// Orders `candidates` (the rendezvous order: home first) for one invocation received by
/// `here`. `warm_here` is asked, only when the home is passed over or [`busy`] and `here` is
/// neither the home nor first anyway, whether `here` holds an idle sandbox of the function's
/// revision: if so, `here` goes first (and the invocation spills).
pub fn plan<N: Copy + PartialEq>(
    candidates: &[Candidate<N>],
    here: N,
    warm_here: impl FnOnce() -> bool,
) -> Plan<N> {
    let Some(home) = candidates.first() else {
        return Plan {
            order: vec![here],
            spilling: false,
        };
    };
    // Fresh candidates in rendezvous order, then the saturated ones in the same order.
    let mut order: Vec<N> = candidates
        .iter()
        .filter(|c| !c.saturated)
        .chain(candidates.iter().filter(|c| c.saturated))
        .map(|c| c.node)
        .collect();
    let next_fresh = candidates[1..].iter().find(|c| !c.saturated);
    let mut spilling = match next_fresh {
        _ if home.saturated => true,
        Some(next) if overloaded(home.load, next.load) => {
            order.swap(0, 1);
            true
        }
        _ => false,
    };
    if (spilling || busy(home.load)) && home.node != here && order[0] != here && warm_here() {
        order.retain(|n| *n != here);
        order.insert(0, here);
        spilling = true;
    }
    Plan { order, spilling }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(node: u8, load: usize) -> Candidate<u8> {
        Candidate {
            node,
            load,
            saturated: false,
        }
    }

    fn sat(node: u8, load: usize) -> Candidate<u8> {
        Candidate {
            saturated: true,
            ..c(node, load)
        }
    }

    fn never() -> bool {
        panic!("warm_here asked while the home takes the invocation")
    }

    #[test]
    fn an_idle_or_lightly_loaded_home_goes_first_and_nobody_asks_for_a_warm_sandbox() {
        for (home, next) in [(0, 0), (1, 0), (3, 0), (3, 1), (3, 9)] {
            let p = plan(&[c(1, home), c(2, next), c(3, 0)], 3, never);
            assert_eq!(p.order, vec![1, 2, 3], "home {home}, next {next}");
            assert!(!p.spilling);
        }
        // Busy but not overloaded: the home still goes first for a door with nothing warm.
        for (home, next) in [(5, 4), (6, 4), (100, 67)] {
            let p = plan(&[c(1, home), c(2, next), c(3, 0)], 3, || false);
            assert_eq!(p.order, vec![1, 2, 3], "home {home}, next {next}");
            assert!(!p.spilling);
        }
    }

    #[test]
    fn the_margin_is_relative_to_the_load_and_has_a_floor() {
        // Below the floor, never.
        assert!(!overloaded(SPILL_FLOOR - 1, 0));
        assert!(overloaded(SPILL_FLOOR, 0));
        // Over 1.5 times the next one's load.
        assert!(!overloaded(6, 4));
        assert!(overloaded(7, 4));
        assert!(!overloaded(150, 100));
        assert!(overloaded(151, 100));
        // The old absolute margin of 2 spilled at 8 against 5; no more.
        assert!(!overloaded(8, 6));
    }

    #[test]
    fn an_overloaded_home_swaps_with_the_next_node() {
        let p = plan(&[c(1, 7), c(2, 4), c(3, 0)], 9, || false);
        assert_eq!(p.order, vec![2, 1, 3]);
        assert!(p.spilling);
    }

    #[test]
    fn a_saturated_home_goes_last_and_the_next_fresh_node_first() {
        let p = plan(&[sat(1, 0), c(2, 3), c(3, 0)], 9, || false);
        assert_eq!(p.order, vec![2, 3, 1]);
        assert!(p.spilling);
        // A saturated second node is skipped over too, and compared against the third.
        let p = plan(&[c(1, 4), sat(2, 0), c(3, 0)], 9, || false);
        assert_eq!(p.order, vec![3, 1, 2]);
        assert!(p.spilling);
        let p = plan(&[c(1, 2), sat(2, 0), c(3, 0)], 9, never);
        assert_eq!(p.order, vec![1, 3, 2]);
        assert!(!p.spilling);
    }

    #[test]
    fn when_every_node_is_saturated_the_home_is_still_tried_first() {
        let p = plan(&[sat(1, 0), sat(2, 0), sat(3, 0)], 9, || false);
        assert_eq!(p.order, vec![1, 2, 3]);
        assert!(p.spilling);
    }

    #[test]
    fn a_warm_door_runs_it_only_while_the_home_spills_or_is_busy() {
        // Home under the floor: the door's idle sandbox is not even looked at.
        let p = plan(&[c(1, SPILL_FLOOR - 1), c(2, 0), c(3, 0)], 3, never);
        assert_eq!(p.order, vec![1, 2, 3]);
        // Home busy (at the floor), not overloaded against the next node: the warm door goes
        // first, and only then does the invocation leave its home.
        let p = plan(&[c(1, SPILL_FLOOR), c(2, SPILL_FLOOR), c(3, 0)], 3, || true);
        assert_eq!(p.order, vec![3, 1, 2]);
        assert!(p.spilling);
        let p = plan(&[c(1, SPILL_FLOOR), c(2, SPILL_FLOOR), c(3, 0)], 3, || {
            false
        });
        assert_eq!(p.order, vec![1, 2, 3]);
        assert!(!p.spilling);
        // Home saturated: the warm door (third by hash) goes first.
        let p = plan(&[sat(1, 0), c(2, 0), c(3, 0)], 3, || true);
        assert_eq!(p.order, vec![3, 2, 1]);
        // Home overloaded: likewise.
        let p = plan(&[c(1, 9), c(2, 0), c(3, 0)], 3, || true);
        assert_eq!(p.order, vec![3, 2, 1]);
        // Not warm: the rendezvous order stands.
        let p = plan(&[c(1, 9), c(2, 0), c(3, 0)], 3, || false);
        assert_eq!(p.order, vec![2, 1, 3]);
        // A door outside the try-order (a larger cluster) is put in front.
        let p = plan(&[sat(1, 0), c(2, 0), c(3, 0)], 7, || true);
        assert_eq!(p.order, vec![7, 2, 3, 1]);
        // The door that is the home never asks.
        let p = plan(&[sat(1, 0), c(2, 0), c(3, 0)], 1, never);
        assert_eq!(p.order, vec![2, 3, 1]);
        // The door that comes first anyway does not ask either.
        let p = plan(&[sat(1, 0), c(2, 0), c(3, 0)], 2, never);
        assert_eq!(p.order, vec![2, 3, 1]);
    }

    #[test]
    fn a_lone_home_or_no_candidate() {
        let p = plan(&[c(1, SPILL_FLOOR - 1)], 2, never);
        assert_eq!(p.order, vec![1]);
        assert!(!p.spilling);
        // A busy lone home: a warm door takes it, a cold one sends it home.
        let p = plan(&[c(1, 50)], 2, || false);
        assert_eq!(p.order, vec![1]);
        assert!(!p.spilling);
        let p = plan(&[c(1, 50)], 2, || true);
        assert_eq!(p.order, vec![2, 1]);
        let p = plan(&[sat(1, 0)], 2, || true);
        assert_eq!(p.order, vec![2, 1]);
        let p = plan::<u8>(&[], 2, never);
        assert_eq!(p.order, vec![2]);
    }
}
