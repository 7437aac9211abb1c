//! Package zygotes: SOCK's import cache. A function that ships Python dependencies (vendored
//! packages, or packages installed into its code) gets a zygote of its own that has already
//! imported them, and its cold starts fork that instead of importing them again.
//!
//! A package zygote runs the function's code (importing a package runs it), so it cannot be
//! the base zygote, which is root on the host. It is a child of the base zygote that entered a
//! sandbox made ahead, like any zygote-born runtime, then a user namespace of its own in which
//! it is root: that root is an unprivileged host user of its own ([`PACKAGE_UID_BASE`] + n,
//! owning nothing on the host), 993 and 990 are mapped to themselves. It imports the handler
//! module's leading imports as 993:990 in the function's environment, under the package zygote
//! seccomp profile (`seccomp.rs`), and then, for each cold start, forks a child that makes a
//! *fresh* sandbox in that user namespace (new mount, network, IPC, UTS, cgroup and PID
//! namespaces, a fresh `/tmp`, `/dev/shm` and `/proc`, its own cgroup, made by the server)
//! and forks the runtime, which drops to 993:990 with no capabilities under the sandbox's
//! seccomp program, as every runtime does. The protocol and each step are in
//! `runtimes/python/zygote.py`.
//!
//! Package zygotes are keyed by the function's code, runtime and environment (less the values
//! that differ per sandbox): one per function version, serving nothing else. One is built in
//! the background on a function's first cold start (that one forks the base zygote), kept
//! while used, and evicted: after [`IDLE_EVICT`] without a cold start, beyond [`MAX_ZYGOTES`]
//! (least recently used first), and under memory pressure (the host's available memory below
//! [`PRESSURE_PERCENT`] of its total; least recently used first). Evicting one kills it; the
//! runtimes it forked live on (they are not in its PID namespace). A function whose handler
//! imports nothing beyond the base zygote's modules is remembered as such and never gets one.

use crate::sandbox::Process;
use crate::SandboxError;
use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The first host user id a package zygote's root maps to; each live zygote has its own.
/// Above the ranges systemd hands to users and containers (up to 0x6FFFFFFF).
pub(crate) const PACKAGE_UID_BASE: u32 = 0x7000_0000;
/// Host user ids for package zygotes: at most this many alive at once.
const PACKAGE_UIDS: u32 = 1 << 16;
/// Most package zygotes kept at once.
pub(crate) const MAX_ZYGOTES: usize = 16;
/// A package zygote unused for this long is evicted.
pub(crate) const IDLE_EVICT: Duration = Duration::from_secs(10 * 60);
/// Below this share of the host's memory available, the least recently used zygote goes.
pub(crate) const PRESSURE_PERCENT: u64 = 10;
/// How often the sweeper looks for idle zygotes and memory pressure.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// After a failed build, that function's cold starts fork the base zygote for this long.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// The session credentials each sandbox gets: never in a package zygote (which imports with
/// the function's environment but is no sandbox of its own), and per sandbox.
pub(crate) const SESSION_CREDENTIALS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];
/// Environment variables whose value differs between sandboxes of one function version.
const PER_SANDBOX: &[&str] = &[
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Which package zygote: one function version's code, runtime and environment, in one
/// namespace (two namespaces deploying the same code and settings get one each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct PackageKey {
    namespace: Option<String>,
    python: PathBuf,
    runtime_dir: PathBuf,
    code_dir: PathBuf,
    memory_mb: u32,
    environment: u64,
}

impl PackageKey {
    pub(crate) fn of(spec: &crate::SandboxSpec) -> PackageKey {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for (key, value) in &spec.env {
            if !PER_SANDBOX.contains(&key.as_str()) {
                (key, value).hash(&mut hasher);
            }
        }
        PackageKey {
            namespace: spec.namespace.clone(),
            python: PathBuf::from(&spec.argv[0]),
            runtime_dir: spec.runtime_dir.clone(),
            code_dir: spec.code_dir.clone(),
            memory_mb: spec.memory_mb,
            environment: hasher.finish(),
        }
    }
}

/// Maps root in the user namespace of package zygote `pid` to host user `root` (and the same
/// group), and the sandbox's user and group to themselves. The server writes the maps: it is
/// root in the parent user namespace, which no process of the zygote's is.
pub(crate) fn map_ids(pid: i32, root: u32) -> std::io::Result<()> {
    use crate::{SANDBOX_GID, SANDBOX_UID};
    let proc = PathBuf::from(format!("/proc/{pid}"));
    std::fs::write(
        proc.join("uid_map"),
        format!("0 {root} 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n"),
    )?;
    std::fs::write(
        proc.join("gid_map"),
        format!("0 {root} 1\n{SANDBOX_GID} {SANDBOX_GID} 1\n"),
    )
}

/// Whether the code at `code_dir` ships Python packages: a top-level directory with an
/// `__init__.py`, or a `*.dist-info` (what `pip install --target` leaves).
pub(crate) fn ships_packages(code_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(code_dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        path.is_dir()
            && (path.join("__init__.py").is_file()
                || path.extension().is_some_and(|e| e == "dist-info"))
    })
}

/// A running package zygote. Dropping it kills it and the runtimes it forked ahead (not those
/// that serve cold starts).
#[derive(Debug)]
pub(crate) struct PackageZygote {
    /// Runtimes it forked ahead of cold starts, waiting for their environment.
    pub(crate) ahead: Option<crate::ready::ReadyPool<crate::zygote::Forked>>,
    pub(crate) process: Process,
    pub(crate) control: Arc<PackageControl>,
    /// The cgroup it runs in (the function's limits, under its namespace's cgroup), with
    /// anything its imports started.
    pub(crate) cgroup: crate::cgroup::SandboxCgroup,
    /// Where the runtimes it forks get their cgroups.
    pub(crate) birthplace: Birthplace,
    pub(crate) _uid: PackageUid,
    /// Modules its imports added to the base zygote's.
    pub(crate) modules: usize,
}

impl Drop for PackageZygote {
    /// It is not the init of a PID namespace: processes its imports started would outlive it
    /// (and keep its cgroup), so every process of its cgroup goes with it. Those become the
    /// server's children when their parent dies (it is their subreaper): a thread reaps them.
    fn drop(&mut self) {
        let killed = self.cgroup.kill_every_process();
        if !killed.is_empty() {
            let reaper = std::thread::Builder::new()
                .name("lambent-pkg-reap".into())
                .spawn(move || reap(killed));
            if reaper.is_err() {
                tracing::warn!("could not start a thread to reap a package zygote's processes");
            }
        }
    }
}

/// Collects the exit status of each killed process once it is the server's child (its parent
/// gone too); gives up on one after [`REAP_PATIENCE`] (someone else's child, reaped elsewhere).
fn reap(killed: Vec<OwnedFd>) {
    let deadline = std::time::Instant::now() + REAP_PATIENCE;
    for pidfd in killed {
        while std::time::Instant::now() < deadline {
            // SAFETY: waitid on a pidfd we own, into a zeroed siginfo whose pid field it sets
            // when it collects the process (0 while it has not exited; -1 while not ours).
            let collected = unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                let rc = libc::waitid(
                    libc::P_PIDFD,
                    pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG,
                );
                rc == 0 && info.si_pid() != 0
            };
            if collected {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// How long the reaper waits for a package zygote's killed processes to become the server's
/// children. A killed process in a sandbox's cgroup (a small CPU share) runs its exit, and so
/// hands its children over, only when it gets the CPU: one second was too short with three test
/// binaries loading both cores, and the process stayed a zombie.
const REAP_PATIENCE: Duration = Duration::from_secs(30);

/// Where a package zygote's runtimes get their cgroups: under its function's namespace, with
/// its function's limits.
#[derive(Debug, Clone)]
pub(crate) struct Birthplace {
    pub(crate) tenant: Option<String>,
    pub(crate) limits: crate::cgroup::Limits,
}

/// A package zygote's control socket: `S<tmp_mb>` messages ask for a child.
#[derive(Debug)]
pub(crate) struct PackageControl(pub(crate) OwnedFd);

impl PackageZygote {
    fn alive(&self) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.process.pidfd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting. A pidfd is readable once its process exited.
        unsafe { libc::poll(&mut pfd, 1, 0) == 0 }
    }
}

impl PackageControl {
    /// Asks for a child that makes its sandbox with a `/tmp` of `tmp_mb`, joins the cgroups of
    /// `procs`, writes to `output` and reports on `report`.
    pub(crate) fn fork(
        &self,
        tmp_mb: u32,
        report: &OwnedFd,
        output: &OwnedFd,
        procs: &[std::fs::File],
    ) -> std::io::Result<()> {
        let mut fds = vec![report.as_raw_fd(), output.as_raw_fd()];
        fds.extend(procs.iter().map(AsRawFd::as_raw_fd));
        crate::zygote::send(&self.0, format!("S{tmp_mb}").as_bytes(), &fds)
    }
}

/// What building a package zygote came to.
#[derive(Debug)]
pub(crate) enum Built {
    Zygote(Box<PackageZygote>),
    /// The function's handler imports nothing worth a zygote of its own (why).
    Unwanted(String),
}

/// A host user id for one package zygote's root, free again when dropped.
#[derive(Debug)]
pub(crate) struct PackageUid {
    uid: u32,
    taken: Arc<Mutex<BTreeSet<u32>>>,
}

impl PackageUid {
    pub(crate) fn get(&self) -> u32 {
        self.uid
    }
}

impl Drop for PackageUid {
    fn drop(&mut self) {
        lock(&self.taken).remove(&self.uid);
    }
}

#[derive(Debug)]
enum Slot {
    Building,
    Ready {
        zygote: Arc<PackageZygote>,
        last_used: Instant,
    },
    Unwanted,
    Broken(Instant),
}

type Slots = Mutex<HashMap<PackageKey, Slot>>;

/// The package zygotes of a host, and their sweeper.
#[derive(Debug)]
pub(crate) struct PackageZygotes {
    slots: Arc<Slots>,
    uids: Arc<Mutex<BTreeSet<u32>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PackageZygotes {
    /// Starts the sweeper thread (it ends with the last handle).
    pub(crate) fn start() -> std::io::Result<PackageZygotes> {
        let slots: Arc<Slots> = Arc::default();
        let weak = Arc::downgrade(&slots);
        std::thread::Builder::new()
            .name("lambent-pkg-zygotes".into())
            .spawn(move || sweep_until_dropped(weak))?;
        Ok(PackageZygotes {
            slots,
            uids: Arc::default(),
        })
    }

    /// A free host user id for a package zygote's root.
    fn uid(&self) -> Option<PackageUid> {
        let mut taken = lock(&self.uids);
        let uid = (0..PACKAGE_UIDS)
            .map(|n| PACKAGE_UID_BASE + n)
            .find(|uid| !taken.contains(uid))?;
        taken.insert(uid);
        Some(PackageUid {
            uid,
            taken: Arc::clone(&self.uids),
        })
    }

    /// The running package zygote for `key`; otherwise `None`, after starting the build that
    /// `build` makes (given the host user id for the zygote's root) on a thread of its own when
    /// there is none yet (and none failed lately, and the function is not known to need none).
    /// `build` is only called then: a cold start served by a zygote prepares no build.
    pub(crate) fn get<M, F>(&self, key: &PackageKey, build: M) -> Option<Arc<PackageZygote>>
    where
        M: FnOnce() -> F,
        F: FnOnce(PackageUid) -> Result<Built, SandboxError> + Send + 'static,
    {
        let mut slots = lock(&self.slots);
        match slots.get_mut(key) {
            Some(Slot::Ready { zygote, last_used }) if zygote.alive() => {
                *last_used = Instant::now();
                return Some(Arc::clone(zygote));
            }
            Some(Slot::Ready { .. }) => {
                tracing::warn!(code = %key.code_dir.display(), "a package zygote died; building another");
            }
            Some(Slot::Building | Slot::Unwanted) => return None,
            Some(Slot::Broken(at)) if at.elapsed() < RETRY_AFTER => return None,
            Some(Slot::Broken(_)) | None => {}
        }
        let Some(uid) = self.uid() else {
            tracing::warn!("no host user id left for a package zygote");
            return None;
        };
        let replaced = slots.insert(key.clone(), Slot::Building);
        let evicted = make_room(&mut slots);
        drop(slots);
        retire(replaced.into_iter().chain(evicted).collect());
        let build = build();
        let (slots, building) = (Arc::clone(&self.slots), key.clone());
        let started = std::thread::Builder::new()
            .name("lambent-pkg-build".into())
            .spawn(move || {
                let key = building;
                let started = Instant::now();
                let slot = match build(uid) {
                    Ok(Built::Zygote(zygote)) => {
                        tracing::info!(
                            code = %key.code_dir.display(),
                            modules = zygote.modules,
                            ms = started.elapsed().as_millis() as u64,
                            "package zygote ready"
                        );
                        Slot::Ready {
                            zygote: Arc::from(zygote),
                            last_used: Instant::now(),
                        }
                    }
                    Ok(Built::Unwanted(why)) => {
                        tracing::debug!(code = %key.code_dir.display(), "no package zygote: {why}");
                        Slot::Unwanted
                    }
                    Err(e) => {
                        tracing::warn!(code = %key.code_dir.display(), "could not build a package zygote (cold starts fork the base zygote): {e}");
                        Slot::Broken(Instant::now())
                    }
                };
                let mut guard = lock(&slots);
                if matches!(guard.get(&key), Some(Slot::Building)) {
                    guard.insert(key, slot);
                } else {
                    // Discarded meanwhile (its namespace went away): it goes, outside the lock.
                    drop(guard);
                    drop(slot);
                }
            });
        if started.is_err() {
            tracing::warn!("could not start a thread to build a package zygote");
            lock(&self.slots).remove(key);
        }
        None
    }

    /// Kills every package zygote of `namespace` (and the runtimes they forked ahead), and
    /// any being built when it finishes: the namespace is going away. Returns when the
    /// running ones are gone.
    pub(crate) fn discard_namespace(&self, namespace: &str) {
        let taken: Vec<Slot> = {
            let mut slots = lock(&self.slots);
            let keys: Vec<PackageKey> = slots
                .keys()
                .filter(|k| k.namespace.as_deref() == Some(namespace))
                .cloned()
                .collect();
            keys.iter().filter_map(|k| slots.remove(k)).collect()
        };
        drop(taken);
    }

    /// Forgets `key`'s zygote if it is `zygote` (it failed a fork): the next cold start builds
    /// another.
    pub(crate) fn discard(&self, key: &PackageKey, zygote: &Arc<PackageZygote>) {
        let mut slots = lock(&self.slots);
        if matches!(slots.get(key), Some(Slot::Ready { zygote: z, .. }) if Arc::ptr_eq(z, zygote)) {
            slots.insert(key.clone(), Slot::Broken(Instant::now()));
        }
    }
}

/// Keeps at most [`MAX_ZYGOTES`] running or being built: evicts the least recently used.
/// Returns the evicted, for [`retire`].
fn make_room(slots: &mut HashMap<PackageKey, Slot>) -> Vec<Slot> {
    let live = |s: &Slot| matches!(s, Slot::Ready { .. } | Slot::Building);
    let mut evicted = Vec::new();
    while slots.values().filter(|s| live(s)).count() > MAX_ZYGOTES {
        match evict_least_recently_used(slots, "too many package zygotes") {
            Some(slot) => evicted.push(slot),
            None => break,
        }
    }
    evicted
}

/// Drops slots taken out of the map on a thread of their own: dropping a zygote kills its
/// processes and the runtimes it forked ahead, which neither the lock nor a cold start waits
/// for.
fn retire(slots: Vec<Slot>) {
    if slots.is_empty() {
        return;
    }
    // Without a thread, they are dropped here (with the closure).
    let dropping = std::thread::Builder::new()
        .name("lambent-pkg-retire".into())
        .spawn(move || drop(slots));
    if let Err(e) = dropping {
        tracing::warn!("could not start a thread to retire package zygotes: {e}");
    }
}

/// Takes the ready zygote used least recently out of `slots`; `None` when there is none.
fn evict_least_recently_used(slots: &mut HashMap<PackageKey, Slot>, why: &str) -> Option<Slot> {
    let oldest = slots
        .iter()
        .filter_map(|(key, slot)| match slot {
            Slot::Ready { last_used, .. } => Some((*last_used, key.clone())),
            _ => None,
        })
        .min_by_key(|(used, _)| *used);
    let (_, key) = oldest?;
    tracing::info!(code = %key.code_dir.display(), "package zygote evicted: {why}");
    slots.remove(&key)
}

/// Every [`SWEEP_EVERY`]: evicts zygotes idle for [`IDLE_EVICT`], and one zygote while the
/// host's memory is under pressure; clears failures. Ends when the slots are dropped.
fn sweep_until_dropped(slots: Weak<Slots>) {
    loop {
        std::thread::sleep(SWEEP_EVERY);
        let Some(slots) = slots.upgrade() else {
            return;
        };
        let mut slots = lock(&slots);
        let gone: Vec<PackageKey> = slots
            .iter()
            .filter(|(key, slot)| match slot {
                Slot::Ready { last_used, .. } if last_used.elapsed() >= IDLE_EVICT => {
                    tracing::info!(code = %key.code_dir.display(), "package zygote evicted: idle");
                    true
                }
                Slot::Broken(at) => at.elapsed() >= RETRY_AFTER,
                _ => false,
            })
            .map(|(key, _)| key.clone())
            .collect();
        let mut evicted: Vec<Slot> = gone.iter().filter_map(|key| slots.remove(key)).collect();
        if under_memory_pressure() {
            evicted.extend(evict_least_recently_used(&mut slots, "memory pressure"));
        }
        drop(slots);
        drop(evicted); // this thread's own time, outside the lock
    }
}

/// Whether the host's available memory is below [`PRESSURE_PERCENT`] of its total.
fn under_memory_pressure() -> bool {
    std::fs::read_to_string("/proc/meminfo").is_ok_and(|m| pressure_in(&m))
}

/// [`under_memory_pressure`], from the text of `/proc/meminfo`.
fn pressure_in(meminfo: &str) -> bool {
    let field = |name| crate::cgroup::keyed_value(meminfo, name);
    match (field("MemTotal:"), field("MemAvailable:")) {
        (Some(total), Some(available)) => available * 100 < total * PRESSURE_PERCENT,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_with_a_package_or_dist_info_ships_packages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "import json\n").unwrap();
        assert!(!ships_packages(dir.path()));
        std::fs::create_dir(dir.path().join("data")).unwrap();
        assert!(!ships_packages(dir.path()));
        std::fs::create_dir(dir.path().join("requests-2.32.0.dist-info")).unwrap();
        assert!(ships_packages(dir.path()));
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("depkg")).unwrap();
        std::fs::write(other.path().join("depkg/__init__.py"), "").unwrap();
        assert!(ships_packages(other.path()));
    }

    #[test]
    fn per_sandbox_values_do_not_change_the_key_but_the_namespace_does() {
        let spec = |stream: &str, secret: &str| crate::SandboxSpec {
            id: "sb".into(),
            code_dir: "/code/v1".into(),
            runtime_dir: "/runtimes".into(),
            argv: vec!["/usr/bin/python3".into()],
            env: vec![
                ("AWS_LAMBDA_LOG_STREAM_NAME".into(), stream.into()),
                ("AWS_SESSION_TOKEN".into(), format!("token-{stream}")),
                ("SECRET".into(), secret.into()),
            ],
            memory_mb: 128,
            pids_max: 64,
            tmp_mb: 64,
            allow_network: false,
            interpreter: Some(crate::Interpreter::Python),
            aws_endpoint: false,
            namespace: Some("a".into()),
        };
        assert_eq!(
            PackageKey::of(&spec("a", "s")),
            PackageKey::of(&spec("b", "s"))
        );
        assert_ne!(
            PackageKey::of(&spec("a", "s")),
            PackageKey::of(&spec("a", "t"))
        );
        // The same code, settings and environment in another namespace: a zygote of its own.
        let other = crate::SandboxSpec {
            namespace: Some("b".into()),
            ..spec("a", "s")
        };
        assert_ne!(PackageKey::of(&spec("a", "s")), PackageKey::of(&other));
    }

    #[test]
    fn memory_pressure_is_little_available_memory() {
        let meminfo = |available: u64| {
            format!(
                "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:   {available} kB\n"
            )
        };
        assert!(!pressure_in(&meminfo(8_000_000)));
        assert!(!pressure_in(&meminfo(1_600_000)));
        assert!(pressure_in(&meminfo(1_599_999)));
        assert!(!pressure_in("garbage"), "unknown is no pressure");
    }

    #[test]
    fn uids_are_unique_while_held_and_reused_after() {
        let zygotes = PackageZygotes::start().unwrap();
        let a = zygotes.uid().unwrap();
        let b = zygotes.uid().unwrap();
        assert_ne!(a.get(), b.get());
        assert!(a.get() >= PACKAGE_UID_BASE);
        let freed = a.get();
        drop(a);
        assert_eq!(zygotes.uid().unwrap().get(), freed);
    }
}
