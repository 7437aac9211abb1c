//! When a pool stops growing. A pool whose invocations keep its runtimes on the CPU gains
//! nothing from more sandboxes than the cores can run: they only share the same cores, each
//! invocation slower, and the tail longer, for every runnable sandbox is one more process among
//! which the scheduler spreads the cores in no particular order. Held at a cap instead, such a
//! pool's extra invocations wait in its queue, first come first served, for the next sandbox
//! released (a wait of about the same length for each), and fewer sandboxes switch in and out.
//!
//! A function that waits (on the network, a timer, a slow disk) needs a sandbox per concurrent
//! invocation whatever the CPU does, so the cap is set by how much of its invocations' time the
//! pool's runtimes want the CPU: their time on a CPU plus their time waiting in a run queue
//! (`/proc/<pid>/schedstat`), divided by the time they spent in invocations. A share `r` caps
//! the pool at `cores × per_core ÷ r` sandboxes, as many as would keep `per_core` of its
//! runtimes runnable per core ([`crate::InvokerConfig::runnable_per_core`]). A runtime that
//! computes for its whole invocation (`r` ≈ 1) is held at `per_core` per core; the no-ops of
//! the throughput bench at 64 connections want the CPU for ~0.4 (compiled) and ~0.6 (Python)
//! of their time, a cap of ~30 and ~20 sandboxes on 2 cores at the default 6. One that sleeps
//! for most of each call is never held: a pool whose runtimes *ran* for less than
//! [`LEAST_RAN`] of their busy time is not, however long they waited for a CPU (waking up on a
//! crowded machine is not computing). That also leaves alone a compiled no-op first loaded at
//! 256 connections: its ~140 sandboxes spend their invocations waiting for the server, not
//! running (held since 64 connections, its pool stays held).
//! Waiting in a run queue counts as wanting the CPU, so the share of a CPU-bound function stays
//! near 1 however crowded the cores are (its time on a CPU alone would shrink as they crowd,
//! and lift the cap when it matters most).
//!
//! Each instance reads its runtime's counters at most every [`READ_EVERY`] when released, and
//! adds what it ran, waited and was busy to its pool's [`CpuShare`]; each maintenance tick
//! (once a second) turns those sums into the share (smoothed) and the cap. The pool starts no
//! sandbox past the cap, and ends those it releases while it has half as many again
//! (`Pool::sheds`): between the two, a cap that moves a little makes no sandbox come and go.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How often at most an instance reads its runtime's CPU counters.
const READ_EVERY: Duration = Duration::from_millis(250);
/// The least busy time a tick's sums must cover to say anything about a pool's share.
const ENOUGH_BUSY: Duration = Duration::from_millis(100);
/// The least share of their busy time the runtimes of a held pool ran on a CPU.
const LEAST_RAN: f64 = 0.01;
/// The weight of a tick's share against the smoothed one before it.
const SMOOTHING: f64 = 0.25;

/// Nothing held: the cap of a pool whose share is not known or too small to matter.
pub(crate) const UNHELD: usize = usize::MAX;

/// What a pool's runtimes wanted of the CPU, and the cap it sets.
pub(crate) struct CpuShare {
    /// Since the last tick, in nanoseconds: the runtimes' time on a CPU, in a run queue, and
    /// busy with invocations.
    ran_ns: AtomicU64,
    waited_ns: AtomicU64,
    busy_ns: AtomicU64,
    /// The smoothed share, in millionths (0: not known yet).
    share_ppm: AtomicU64,
    cap: AtomicUsize,
}

impl CpuShare {
    pub(crate) fn new() -> CpuShare {
        CpuShare {
            ran_ns: AtomicU64::new(0),
            waited_ns: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            share_ppm: AtomicU64::new(0),
            cap: AtomicUsize::new(UNHELD),
        }
    }

    /// The most sandboxes the pool may have ([`UNHELD`]: no cap).
    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Ordering::Relaxed)
    }

    /// Holds the pool at `cap` (tests of the pool).
    #[cfg(test)]
    pub(crate) fn hold_at(&self, cap: usize) {
        self.cap.store(cap, Ordering::Relaxed);
    }

    fn add(&self, used: Used, busy: Duration) {
        self.ran_ns.fetch_add(used.ran_ns, Ordering::Relaxed);
        self.waited_ns.fetch_add(used.waited_ns, Ordering::Relaxed);
        self.busy_ns
            .fetch_add(busy.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Turns the sums since the last tick into the share (smoothed) and the cap for `cores`
    /// cores at `per_core` runnable runtimes each. Returns the cap and whether it changed from
    /// held to not held or back.
    pub(crate) fn tick(&self, cores: usize, per_core: f64) -> (usize, bool) {
        let ran = self.ran_ns.swap(0, Ordering::Relaxed) as f64;
        let waited = self.waited_ns.swap(0, Ordering::Relaxed) as f64;
        let busy = self.busy_ns.swap(0, Ordering::Relaxed) as f64;
        let before = self.cap();
        if busy < ENOUGH_BUSY.as_nanos() as f64 {
            return (before, false);
        }
        let new = (ran + waited) / busy;
        let old = self.share_ppm.load(Ordering::Relaxed);
        let share = if old == 0 {
            new
        } else {
            old as f64 / 1e6 * (1.0 - SMOOTHING) + new * SMOOTHING
        };
        self.share_ppm
            .store(((share * 1e6) as u64).max(1), Ordering::Relaxed);
        let cap = if ran / busy < LEAST_RAN {
            UNHELD
        } else {
            cap(share, cores, per_core)
        };
        self.cap.store(cap, Ordering::Relaxed);
        (cap, (before == UNHELD) != (cap == UNHELD))
    }
}

/// The cap of a pool whose runtimes want the CPU for `share` of their busy time, on `cores`
/// cores at `per_core` runnable runtimes each: never below one per core, [`UNHELD`] where it
/// would be past any pool's size (and always with `per_core` 0).
fn cap(share: f64, cores: usize, per_core: f64) -> usize {
    if per_core <= 0.0 {
        return UNHELD;
    }
    let cap = cores as f64 * per_core / share;
    if !cap.is_finite() || cap >= lambent_core::limits::MAX_CONCURRENCY as f64 {
        return UNHELD;
    }
    (cap.ceil() as usize).max(cores)
}

/// A runtime's time on a CPU and in a run queue, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Used {
    ran_ns: u64,
    waited_ns: u64,
}

impl Used {
    fn since(self, before: Used) -> Used {
        Used {
            ran_ns: self.ran_ns.saturating_sub(before.ran_ns),
            waited_ns: self.waited_ns.saturating_sub(before.waited_ns),
        }
    }
}

/// One instance's last reading of its runtime's counters, and its busy time since.
pub(crate) struct CpuMeter {
    read_at: Instant,
    used: Option<Used>,
    busy: Duration,
}

impl CpuMeter {
    pub(crate) fn new() -> CpuMeter {
        CpuMeter {
            read_at: Instant::now(),
            used: None,
            busy: Duration::ZERO,
        }
    }

    /// Counts an invocation that kept the runtime `pid` busy for `busy`; at most every
    /// [`READ_EVERY`], reads its counters and adds what it used since the last reading, with
    /// the busy time between, to `share`.
    pub(crate) fn invoked(&mut self, pid: i32, busy: Duration, share: &CpuShare) {
        self.busy += busy;
        if self.read_at.elapsed() < READ_EVERY {
            return;
        }
        self.read_at = Instant::now();
        let now = used(pid);
        if let (Some(before), Some(now)) = (self.used, now) {
            share.add(now.since(before), self.busy);
        }
        self.used = now;
        self.busy = Duration::ZERO;
    }
}

/// What process `pid`'s main thread has used of the CPU.
fn used(pid: i32) -> Option<Used> {
    parse_schedstat(&std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?)
}

/// The first two fields of a `schedstat` file: time on a CPU and time waiting for one.
fn parse_schedstat(text: &str) -> Option<Used> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<u64>().ok());
    Some(Used {
        ran_ns: fields.next()??,
        waited_ns: fields.next()??,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(ran_ms: u64, waited_ms: u64) -> Used {
        Used {
            ran_ns: ran_ms * 1_000_000,
            waited_ns: waited_ms * 1_000_000,
        }
    }

    #[test]
    fn a_schedstat_file_gives_the_time_run_and_waited() {
        assert_eq!(
            parse_schedstat("346336906 281159 83\n"),
            Some(Used {
                ran_ns: 346_336_906,
                waited_ns: 281_159
            })
        );
        assert_eq!(parse_schedstat("5\n"), None);
        assert_eq!(parse_schedstat("x 1 2\n"), None);
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn the_cap_keeps_per_core_runnable_runtimes_per_core() {
        // Computing throughout: per_core per core.
        assert_eq!(cap(1.0, 2, 6.0), 12);
        // Half the time: twice as many.
        assert_eq!(cap(0.5, 2, 6.0), 24);
        // Never below one per core.
        assert_eq!(cap(4.0, 2, 1.0), 2);
        // Waiting on I/O for almost all of it: no cap.
        assert_eq!(cap(0.001, 2, 6.0), UNHELD);
        assert_eq!(cap(0.0, 2, 6.0), UNHELD);
        // Turned off.
        assert_eq!(cap(1.0, 2, 0.0), UNHELD);
    }

    #[test]
    fn a_tick_sets_the_cap_from_enough_busy_time_and_smooths_the_share() {
        let share = CpuShare::new();
        // Too little to say anything.
        share.add(used(50, 0), Duration::from_millis(50));
        assert_eq!(share.tick(2, 6.0), (UNHELD, false));
        // Ran for half of a second busy and waited the other half: held at 12, newly.
        share.add(used(500, 500), Duration::from_secs(1));
        assert_eq!(share.tick(2, 6.0), (12, true));
        // Then for a third of it: the share moves a quarter of the way, to 0.833.
        share.add(used(200, 133), Duration::from_secs(1));
        assert_eq!(share.tick(2, 6.0), (15, false));
        // A quiet tick keeps it.
        assert_eq!(share.tick(2, 6.0), (15, false));
        // Waiting for a CPU without computing holds nothing.
        share.add(used(5, 995), Duration::from_secs(1));
        assert_eq!(share.tick(2, 6.0), (UNHELD, true));
    }

    #[test]
    fn a_thread_uses_the_cpu_it_spins_on() {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        let before = super::used(tid).expect("/proc/<tid>/schedstat");
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let spun = super::used(tid).unwrap().since(before);
        assert!(spun.ran_ns >= 20_000_000, "{spun:?} for 30 ms of spinning");
    }
}
