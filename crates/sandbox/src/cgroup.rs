//! cgroups: which version the host has (detected once), one cgroup per sandbox under
//! `<hierarchy>/lambent/<sandbox-id>` with its limits, and what the sandbox handle reads and
//! writes later (memory peak, OOM kills, freezer, kill).
//!
//! **One directory per server.** Every cgroup a host makes lives under its own directory,
//! `<hierarchy>/lambent/host-<pid>-<n>/`: a sandbox outside every namespace (or made ahead) at
//! `host-<pid>-<n>/<sandbox-id>`, so that two servers on one machine never share, limit or
//! remove each other's cgroups. The directory goes when the host does
//! ([`Cgroups::remove_own_dir`]); one whose server died (no process `<pid>`) is emptied and
//! removed by the next host's start ([`Cgroups::remove_stale`]).
//!
//! **Namespaces (tenants).** A sandbox of a namespace lives one level down, under its
//! namespace's cgroup: `<hierarchy>/lambent/host-<pid>-<n>/ns-<namespace>/<sandbox-id>`. That
//! cgroup carries the
//! namespace's [`TenantLimits`]: its CPU weight among the namespaces (v2 `cpu.weight`, v1
//! `cpu.shares` = weight × 1024 / 100) and the memory all its sandboxes may hold together (v2
//! `memory.max`, v1 `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes`). It is made on
//! first use with the limits last set for it ([`Cgroups::set_tenant`]), the defaults otherwise.
//! Things made ahead of their function (sandboxes, forked runtimes, stem cells; their cgroups
//! named `sb-ready-…`) are born under the namespace of the latest cold start if its
//! cgroup is there, else right under the parent ([`Cgroups::create_ahead`]). Claimed from
//! their namespace, they only get their function's limits (~40 µs on v1); claimed from another,
//! they move ([`Cgroups::adopt`]: a new cgroup there, every process written into it, the old
//! one removed, ~0.3 ms on v1; cgroup directories cannot be renamed across parents). A waiting
//! one's pages are charged to the namespace it waits in (the kernel does not move charges with
//! a process). [`Cgroups::remove_tenant`] kills whatever runs in a namespace's tree and removes
//! it; the host drops what its pools made there first.
//!
//! Both layouts are supported:
//! - **v2** (`/sys/fs/cgroup/cgroup.controllers` exists): `memory` and `pids` are enabled in the
//!   root's and `lambent`'s `cgroup.subtree_control` (`cpu` too when available); a sandbox gets
//!   `memory.max`, `memory.swap.max = 0`, `memory.oom.group = 1` (an OOM kills the whole sandbox),
//!   `pids.max` and `cpu.weight`; the child is born in it (`CLONE_INTO_CGROUP`). Peak memory is
//!   `memory.peak` (since the sandbox started), read through one kept-open descriptor.
//! - **v1 / hybrid** (controllers mounted at `/sys/fs/cgroup/<controller>`): `memory`, `pids` and
//!   `freezer` are required, `cpu` is used when mounted; a sandbox gets `memory.limit_in_bytes`
//!   and, when swap accounting exists, `memory.memsw.limit_in_bytes` at the same value (so swap
//!   cannot extend the limit), `pids.max`, `cpu.shares`; the child writes itself into each
//!   hierarchy's `cgroup.procs` before anything else. v1 OOM kills one task, not the sandbox: the
//!   caller watches [`crate::Sandbox::oom_kills`] and tears the sandbox down.
//!
//! CPU follows AWS Lambda's rule that CPU is proportional to memory, as a *share* (1769 MB
//! weighs as much as one ordinary process group: `cpu.shares` 1024, `cpu.weight` 100), not as a
//! hard quota: shares are work-conserving, so an idle host lets a 128 MB function import its
//! modules at full speed instead of at 7 % of a core, while a busy host splits CPU by memory.
//!
//! `LAMBENT_CGROUP_PARENT` (read once at start-up) names another parent than `lambent`: a
//! relative path such as `lambent/bench-n1`, created under each hierarchy. A CPU quota set on
//! that directory then covers every sandbox of the node; put the node process itself in it (or
//! in a child of it) and one quota confines a node with its functions, as the cluster benchmark
//! (`crates/lambent/benches/cluster.rs`) does. Unset, sandboxes live under `lambent`.
//!
//! Every file operation goes through [`CgroupFs`], so the logic is unit-tested on a fake tree in
//! a temporary directory; the real thing is tested end to end as root in `tests/`.

use crate::SandboxError;
use lambent_core::TenantLimits;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Controllers mounted one by one (legacy or hybrid layout).
    V1,
    /// The unified hierarchy.
    V2,
}

/// Where cgroup file systems are mounted.
pub(crate) const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The directory under each hierarchy that holds all sandboxes.
const PARENT: &str = "lambent";
/// The environment variable that names another parent directory (relative to each
/// hierarchy's root) for this process's sandboxes.
pub const PARENT_ENV: &str = "LAMBENT_CGROUP_PARENT";
/// Memory size that buys one full core's weight, as on AWS Lambda.
const MB_PER_CORE: u64 = 1769;
/// How long `freeze` waits for every task to stop.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long removal retries `rmdir` while exiting tasks linger.
const REMOVE_TIMEOUT: Duration = Duration::from_millis(500);

/// The file-system operations the cgroup logic needs: the seam between the logic and the
/// kernel, so the logic can run against a fake tree in tests.
pub(crate) trait CgroupFs: Send + Sync + fmt::Debug {
    fn exists(&self, path: &Path) -> bool;
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `value` in one `write(2)`, as cgroup files want; never creates the file.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// Opens a file (or, read-only, a directory) and keeps it: `cgroup.procs`, `memory.peak`.
    fn open(&self, path: &Path, write: bool) -> io::Result<File>;
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
}

/// Makes `dir` unless it exists. Servers starting together race to make the shared
/// `lambent` directory: the loser's "already exists" is success.
fn ensure_dir(fs: &dyn CgroupFs, dir: &Path) -> Result<(), SandboxError> {
    if fs.exists(dir) {
        return Ok(());
    }
    match fs.mkdir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(cgroup_err("create", dir)(e)),
        _ => Ok(()),
    }
}

/// The real cgroup file systems.
#[derive(Debug, Default)]
pub(crate) struct HostFs;

impl CgroupFs for HostFs {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn open(&self, path: &Path, write: bool) -> io::Result<File> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
    }
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        std::fs::canonicalize(path)
    }
}

/// The limits one sandbox's cgroup gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory_mb: u32,
    pub pids_max: u32,
    /// The least CPU weight there is, whatever the memory: for sandboxes made ahead, whose
    /// making must not slow the cold starts under way (their claim sets the function's).
    pub background: bool,
}

impl Limits {
    fn memory_bytes(&self) -> u64 {
        u64::from(self.memory_mb) * 1024 * 1024
    }
}

/// The least v1 `cpu.shares`.
const CPU_SHARES_MIN: u64 = 2;
/// The least v2 `cpu.weight`.
const CPU_WEIGHT_MIN: u64 = 1;

/// v1 `cpu.shares` for a memory size: 1024 (one ordinary group) at 1769 MB, at least 2.
pub(crate) fn cpu_shares(memory_mb: u32) -> u64 {
    (u64::from(memory_mb) * 1024 / MB_PER_CORE).max(CPU_SHARES_MIN)
}

/// v2 `cpu.weight` for a memory size: 100 (the default) at 1769 MB, within 1..=10000.
pub(crate) fn cpu_weight(memory_mb: u32) -> u64 {
    (u64::from(memory_mb) * 100 / MB_PER_CORE).clamp(CPU_WEIGHT_MIN, 10_000)
}

/// The value of `key` in a flat-keyed cgroup file (`key value` per line).
pub(crate) fn keyed_value(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key)).then(|| parts.next()?.parse().ok())?
    })
}

/// Where each controller's `lambent` parent lives.
#[derive(Debug, Clone)]
enum Hierarchy {
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        freezer: PathBuf,
        cpu: Option<PathBuf>,
        /// `memory.memsw.*` exists (swap accounting is on).
        memsw: bool,
        /// The distinct parents: co-mounted controllers (`cpu,cpuacct`) share one.
        distinct: Vec<PathBuf>,
    },
    V2 {
        parent: PathBuf,
        cpu: bool,
    },
}

impl Hierarchy {
    /// The same layout one level down: every parent joined with `name`.
    fn under(&self, name: &str) -> Hierarchy {
        match self {
            Hierarchy::V1 {
                memory,
                pids,
                freezer,
                cpu,
                memsw,
                distinct,
            } => Hierarchy::V1 {
                memory: memory.join(name),
                pids: pids.join(name),
                freezer: freezer.join(name),
                cpu: cpu.as_ref().map(|c| c.join(name)),
                memsw: *memsw,
                distinct: distinct.iter().map(|d| d.join(name)).collect(),
            },
            Hierarchy::V2 { parent, cpu } => Hierarchy::V2 {
                parent: parent.join(name),
                cpu: *cpu,
            },
        }
    }

    /// The parent directories, one per distinct hierarchy.
    fn parents(&self) -> Vec<&PathBuf> {
        match self {
            Hierarchy::V1 { distinct, .. } => distinct.iter().collect(),
            Hierarchy::V2 { parent, .. } => vec![parent],
        }
    }
}

/// Prefix of a namespace's cgroup directory: `<parent>/host-<pid>-<n>/ns-<namespace>`.
const TENANT_PREFIX: &str = "ns-";
/// Prefix of one host's own directory: `host-<pid>-<n>`.
const HOST_PREFIX: &str = "host-";
/// Prefix of the directory of namespaces of hosts before they had one of their own
/// (`tenants-<pid>-<n>`): removed like a dead host's.
const LEGACY_TENANTS_PREFIX: &str = "tenants-";
/// Longest namespace name that names a cgroup directory.
const MAX_TENANT_LEN: usize = 128;

/// The directory name of namespace `namespace`'s cgroup: `ns-<namespace>`, for a name of
/// ASCII letters, digits, `.`, `_` and `-`.
pub(crate) fn tenant_dir(namespace: &str) -> Result<String, SandboxError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if namespace.is_empty() || namespace.len() > MAX_TENANT_LEN || !namespace.chars().all(ok) {
        return Err(SandboxError::InvalidSpec(format!(
            "namespace {namespace:?} cannot name a cgroup: use 1 to {MAX_TENANT_LEN} ASCII letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(format!("{TENANT_PREFIX}{namespace}"))
}

/// v1 `cpu.shares` for a namespace's weight (v2 units: 100 → 1024).
fn tenant_shares(weight: u32) -> u64 {
    (u64::from(weight) * 1024 / 100).max(CPU_SHARES_MIN)
}

/// What removing a namespace's cgroup found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TenantRemoval {
    /// Processes killed (they were still running in the namespace's sandboxes).
    pub killed: usize,
    /// Cgroup directories removed (the namespace's own included, once per hierarchy).
    pub removed_dirs: usize,
}

/// The host's cgroups, as detected once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct Cgroups {
    fs: Arc<dyn CgroupFs>,
    hierarchy: Hierarchy,
    /// The limits set for each namespace ([`Cgroups::set_tenant`]), applied again whenever its
    /// cgroup has to be made (first use, or after something removed it).
    tenants: Arc<Mutex<HashMap<String, TenantLimits>>>,
    /// `hierarchy` one level down, in this host's own directory `host-<pid>-<n>`: every
    /// cgroup it makes (sandboxes, namespaces) is in it, so that two servers on one machine
    /// (or two hosts in one process) never share, limit or remove each other's.
    own: Hierarchy,
}

fn cgroup_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> SandboxError + 'a {
    move |source| SandboxError::Cgroup {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Cgroups {
    /// Finds out which cgroup layout `root` holds, checks the controllers Lambent needs and
    /// creates the `lambent` parent(s). The error names what is missing.
    /// The parent is `lambent`, or what [`PARENT_ENV`] names.
    pub(crate) fn detect(fs: Arc<dyn CgroupFs>, root: &Path) -> Result<Cgroups, SandboxError> {
        let parent = match std::env::var_os(PARENT_ENV) {
            Some(p) if !p.is_empty() => parent_from(Path::new(&p))?,
            _ => PathBuf::from(PARENT),
        };
        Self::detect_in(fs, root, &parent)
    }

    /// [`Cgroups::detect`] with sandboxes under `parent` (a relative path) in each hierarchy.
    pub(crate) fn detect_in(
        fs: Arc<dyn CgroupFs>,
        root: &Path,
        parent: &Path,
    ) -> Result<Cgroups, SandboxError> {
        let hierarchy = if fs.exists(&root.join("cgroup.controllers")) {
            Self::detect_v2(fs.as_ref(), root, parent)?
        } else {
            Self::detect_v1(fs.as_ref(), root, parent)?
        };
        static HOSTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = HOSTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let own_dir = format!("{HOST_PREFIX}{}-{n}", std::process::id());
        let own = hierarchy.under(&own_dir);
        let cgroups = Cgroups {
            fs,
            hierarchy,
            tenants: Arc::default(),
            own,
        };
        cgroups.make_delegating_dirs(&cgroups.own)?;
        Ok(cgroups)
    }

    /// Makes `hierarchy`'s directories where missing and, on v2, delegates the controllers
    /// to their children.
    fn make_delegating_dirs(&self, hierarchy: &Hierarchy) -> Result<bool, SandboxError> {
        let made = self.make_dirs(hierarchy)?;
        if made {
            if let Hierarchy::V2 { parent, cpu } = hierarchy {
                let control = parent.join("cgroup.subtree_control");
                self.fs
                    .write(&control, v2_controllers(*cpu))
                    .map_err(cgroup_err("write", &control))?;
            }
        }
        Ok(made)
    }

    fn detect_v2(fs: &dyn CgroupFs, root: &Path, name: &Path) -> Result<Hierarchy, SandboxError> {
        let path = root.join("cgroup.controllers");
        let available = fs.read(&path).map_err(cgroup_err("read", &path))?;
        let available: HashSet<&str> = available.split_whitespace().collect();
        let missing: Vec<&str> = ["memory", "pids"]
            .into_iter()
            .filter(|c| !available.contains(c))
            .collect();
        if !missing.is_empty() {
            return Err(SandboxError::Unavailable {
                missing: format!(
                    "cgroup v2 controller(s) {} not available in {}",
                    missing.join(", "),
                    path.display()
                ),
            });
        }
        let cpu = available.contains("cpu");
        if !cpu {
            tracing::warn!("cgroup v2 cpu controller unavailable: sandboxes get no cpu weight");
        }
        let enable = v2_controllers(cpu);
        let parent = root.join(name);
        // The root and every directory down to the parent delegate the controllers.
        let mut dirs = vec![root.to_path_buf()];
        for component in name.components() {
            let dir = dirs[dirs.len() - 1].join(component);
            dirs.push(dir);
        }
        for dir in &dirs {
            if dir.as_path() != root {
                ensure_dir(fs, dir)?;
            }
            let control = dir.join("cgroup.subtree_control");
            fs.write(&control, enable)
                .map_err(cgroup_err("enable memory, pids and cpu in", &control))?;
        }
        if !fs.exists(&parent.join("cgroup.freeze")) {
            return Err(SandboxError::Unavailable {
                missing: "the cgroup v2 freezer (cgroup.freeze, linux 5.2 or later)".into(),
            });
        }
        Ok(Hierarchy::V2 { parent, cpu })
    }

    fn detect_v1(fs: &dyn CgroupFs, root: &Path, name: &Path) -> Result<Hierarchy, SandboxError> {
        let mounted = |name: &str| fs.exists(&root.join(name).join("cgroup.procs"));
        let missing: Vec<&str> = ["memory", "pids", "freezer"]
            .into_iter()
            .filter(|c| !mounted(c))
            .collect();
        if missing.len() == 3 {
            return Err(SandboxError::Unavailable {
                missing: format!(
                    "no cgroup file system at {} (neither cgroup v2 nor v1 controllers)",
                    root.display()
                ),
            });
        }
        if !missing.is_empty() {
            return Err(SandboxError::Unavailable {
                missing: format!(
                    "cgroup v1 controller(s) {} not mounted under {}",
                    missing.join(", "),
                    root.display()
                ),
            });
        }
        let cpu = mounted("cpu");
        if !cpu {
            tracing::warn!("cgroup v1 cpu controller not mounted: sandboxes get no cpu shares");
        }
        let parent = |controller: &str| -> Result<PathBuf, SandboxError> {
            let mut dir = root.join(controller);
            for component in name.components() {
                dir.push(component);
                ensure_dir(fs, &dir)?;
            }
            Ok(dir)
        };
        let (memory, pids, freezer) = (parent("memory")?, parent("pids")?, parent("freezer")?);
        let cpu = if cpu { Some(parent("cpu")?) } else { None };
        let mut seen = HashSet::new();
        let distinct = [Some(&memory), Some(&pids), Some(&freezer), cpu.as_ref()]
            .into_iter()
            .flatten()
            .filter(|p| seen.insert(fs.canonicalize(p).unwrap_or_else(|_| p.to_path_buf())))
            .cloned()
            .collect();
        Ok(Hierarchy::V1 {
            memsw: fs.exists(&root.join("memory").join("memory.memsw.limit_in_bytes")),
            memory,
            pids,
            freezer,
            cpu,
            distinct,
        })
    }

    /// Removes what hosts that are gone left behind: the directory of every host whose
    /// server process no longer exists (`host-<pid>-*`, and the older `tenants-<pid>-*`),
    /// killing whatever still runs in it first (a sandbox that outlived its server). Live
    /// servers' directories, and everything outside them, are never touched.
    pub(crate) fn remove_stale(&self) {
        let mut removed = 0;
        for parent in self.hierarchy.parents() {
            let Ok(entries) = std::fs::read_dir(parent) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if dead_host(&name) {
                    kill_tree(self.fs.as_ref(), &e.path());
                    remove_empty_tree(self.fs.as_ref(), &e.path());
                    removed += usize::from(!self.fs.exists(&e.path()));
                }
            }
        }
        if removed > 0 {
            tracing::info!("removed {removed} cgroup directories of servers that are gone");
        }
    }

    /// The name of this host's own directory.
    #[cfg(test)]
    fn own_dir(&self) -> String {
        let dir = self.own.parents()[0];
        dir.file_name().unwrap().to_string_lossy().into_owned()
    }

    pub(crate) fn version(&self) -> CgroupVersion {
        match self.hierarchy {
            Hierarchy::V1 { .. } => CgroupVersion::V1,
            Hierarchy::V2 { .. } => CgroupVersion::V2,
        }
    }

    /// Creates the cgroup(s) of sandbox `id` with `limits`, under namespace `tenant`'s cgroup
    /// (made if missing, see [`Cgroups::tenant`]) or, for `None`, right under the parent.
    /// Dropping the result removes them.
    pub(crate) fn create(
        &self,
        tenant: Option<&str>,
        id: &str,
        limits: Limits,
    ) -> Result<SandboxCgroup, SandboxError> {
        let Some(namespace) = tenant else {
            return self.create_in(&self.own, None, id, limits);
        };
        // The namespace's cgroup is there but for its first sandbox (or after something
        // removed it): try it first, make it only when missing. Checking first cost a failed
        // `mkdir` per hierarchy and level on every cold start (8 on v1).
        if let Some(made) = self.create_under(namespace, id, limits)? {
            return Ok(made);
        }
        self.create_in(&self.tenant(namespace)?, Some(namespace), id, limits)
    }

    /// Creates the cgroup(s) of `id`, made ahead for a pool, under namespace `tenant`'s cgroup
    /// when that is there, else right under the parent, with its limit files kept open for
    /// its claim ([`SandboxCgroup::keep_limit_files`]). Unlike [`Cgroups::create`] it never
    /// makes a namespace's cgroup: the namespace may be being removed
    /// ([`Cgroups::remove_tenant`]).
    pub(crate) fn create_ahead(
        &self,
        tenant: Option<&str>,
        id: &str,
        limits: Limits,
    ) -> Result<SandboxCgroup, SandboxError> {
        let under = match tenant {
            Some(namespace) => self.create_under(namespace, id, limits)?,
            None => None,
        };
        let mut made = match under {
            Some(made) => made,
            None => self.create_in(&self.own, None, id, limits)?,
        };
        made.keep_limit_files();
        Ok(made)
    }

    /// The cgroup(s) of `id` under namespace `namespace`'s cgroup, or `None` when that is
    /// missing.
    fn create_under(
        &self,
        namespace: &str,
        id: &str,
        limits: Limits,
    ) -> Result<Option<SandboxCgroup>, SandboxError> {
        match self.create_in(&self.tenant_layout(namespace)?, Some(namespace), id, limits) {
            Err(SandboxError::Cgroup {
                action: "create",
                source,
                ..
            }) if source.kind() == io::ErrorKind::NotFound => Ok(None),
            made => made.map(Some),
        }
    }

    /// Makes `cgroup` (of something made ahead, its processes running) sandbox `id`'s, with
    /// `limits`, under namespace `tenant`'s cgroup: a new cgroup there, every process of the
    /// old one moved into it, the old one removed. For `None`, or a cgroup made under that
    /// namespace's already ([`SandboxCgroup::in_namespace`]), the same cgroup with `limits`
    /// (about 40 µs on v1 against 0.3 ms for the move). Memory charged before a move stays
    /// with the old cgroup's parent (the kernel does not move charges).
    pub(crate) fn adopt(
        &self,
        cgroup: &mut SandboxCgroup,
        tenant: Option<&str>,
        id: &str,
        limits: Limits,
    ) -> Result<(), SandboxError> {
        let namespace = match tenant {
            Some(namespace) if !cgroup.in_namespace(namespace) => namespace,
            _ => return cgroup.set_limits(limits),
        };
        let old = &*cgroup;
        let new = self.create(Some(namespace), id, limits)?;
        let procs = new.procs_files()?;
        let listing = old.procs_path();
        for _ in 0..5 {
            let pids = self
                .fs
                .read(&listing)
                .map_err(cgroup_err("read", &listing))?;
            let pids: Vec<&str> = pids.lines().filter(|l| !l.is_empty()).collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                for (file, dir) in procs.iter().zip(new.dirs()) {
                    match (&*file).write_all(pid.as_bytes()) {
                        Ok(()) => {}
                        // It exited meanwhile.
                        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                        Err(e) => return Err(cgroup_err("move a process into", dir)(e)),
                    }
                }
            }
        }
        // The old one, empty now, is removed as it drops.
        drop(std::mem::replace(cgroup, new));
        Ok(())
    }

    /// Namespace `namespace`'s cgroup, made when missing with the limits last set for it
    /// (the defaults when none were): the layout its sandboxes are created in.
    fn tenant(&self, namespace: &str) -> Result<Hierarchy, SandboxError> {
        let name = tenant_dir(namespace)?;
        // Made at start; again if something removed it since.
        self.make_delegating_dirs(&self.own)?;
        let hierarchy = self.own.under(&name);
        if self.make_dirs(&hierarchy)? {
            let limits = self.tenant_limits(namespace);
            self.apply_tenant(&hierarchy, limits, true)?;
        }
        Ok(hierarchy)
    }

    /// Makes the parent directories of `hierarchy` that are missing; whether any was.
    fn make_dirs(&self, hierarchy: &Hierarchy) -> Result<bool, SandboxError> {
        let mut made = false;
        for dir in hierarchy.parents() {
            match self.fs.mkdir(dir) {
                Ok(()) => made = true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(cgroup_err("create", dir)(e)),
            }
        }
        Ok(made)
    }

    /// Namespace `namespace`'s layout (its directories may not exist).
    fn tenant_layout(&self, namespace: &str) -> Result<Hierarchy, SandboxError> {
        let name = tenant_dir(namespace)?;
        Ok(self.own.under(&name))
    }

    /// The directories of namespace `namespace`'s cgroup, one per distinct hierarchy.
    pub(crate) fn tenant_dirs(&self, namespace: &str) -> Result<Vec<PathBuf>, SandboxError> {
        Ok(self
            .tenant_layout(namespace)?
            .parents()
            .into_iter()
            .cloned()
            .collect())
    }

    /// Removes this host's own directory, and those in it, where empty (best effort: at the
    /// end of the server, when its sandboxes are gone).
    pub(crate) fn remove_own_dir(&self) {
        for dir in self.own.parents() {
            remove_empty_tree(self.fs.as_ref(), dir);
        }
    }

    /// Kills every process left in this host's own directory and removes it, with everything
    /// in it (the end of a server).
    pub(crate) fn release_own_dir(&self) {
        for dir in self.own.parents() {
            kill_tree(self.fs.as_ref(), dir);
            remove_empty_tree(self.fs.as_ref(), dir);
        }
    }

    /// The limits set for `namespace`, or the defaults.
    pub(crate) fn tenant_limits(&self, namespace: &str) -> TenantLimits {
        let tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.get(namespace).copied().unwrap_or_default()
    }

    /// Creates namespace `namespace`'s cgroup, or changes its limits: its CPU weight among
    /// the namespaces, and the memory all its sandboxes may hold together. Lowering the
    /// memory cap below what they hold now makes the kernel reclaim; where it cannot, the
    /// error says so and the old cap stays.
    pub(crate) fn set_tenant(
        &self,
        namespace: &str,
        limits: TenantLimits,
    ) -> Result<(), SandboxError> {
        limits
            .validate()
            .map_err(|e| SandboxError::InvalidSpec(format!("namespace {namespace:?}: {e}")))?;
        tenant_dir(namespace)?;
        let previous = {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            tenants.insert(namespace.to_string(), limits)
        };
        let applied = self
            .tenant(namespace)
            .and_then(|h| self.apply_tenant(&h, limits, false));
        if applied.is_err() {
            let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
            match previous {
                Some(p) => tenants.insert(namespace.to_string(), p),
                None => tenants.remove(namespace),
            };
        }
        applied
    }

    /// Writes `limits` into a namespace's cgroup; `fresh`: it was just made (its controllers
    /// are delegated to its children on v2).
    fn apply_tenant(
        &self,
        tenant: &Hierarchy,
        limits: TenantLimits,
        fresh: bool,
    ) -> Result<(), SandboxError> {
        let set = |path: &Path, value: &str| {
            self.fs
                .write(path, value)
                .map_err(cgroup_err("write", path))
        };
        match tenant {
            Hierarchy::V2 { parent, cpu } => {
                if fresh {
                    set(&parent.join("cgroup.subtree_control"), v2_controllers(*cpu))?;
                }
                if *cpu {
                    set(&parent.join("cpu.weight"), &limits.cpu_weight.to_string())?;
                }
                let max = limits
                    .memory_max_bytes
                    .map_or("max".to_string(), |b| b.to_string());
                set(&parent.join("memory.max"), &max)?;
            }
            Hierarchy::V1 {
                memory, cpu, memsw, ..
            } => {
                if let Some(cpu) = cpu {
                    let shares = tenant_shares(limits.cpu_weight).to_string();
                    set(&cpu.join("cpu.shares"), &shares)?;
                }
                let (mem, sw) = (
                    memory.join("memory.limit_in_bytes"),
                    memory.join("memory.memsw.limit_in_bytes"),
                );
                let value = limits
                    .memory_max_bytes
                    .map_or("-1".to_string(), |b| b.to_string());
                // memory <= memory+swap at every moment: raise memsw first, lower it last.
                let current: Option<u64> =
                    self.fs.read(&mem).ok().and_then(|v| v.trim().parse().ok());
                let raising = match (limits.memory_max_bytes, current) {
                    (None, _) => true,
                    (Some(new), Some(old)) => new > old,
                    (Some(_), None) => false,
                };
                if *memsw && raising {
                    set(&sw, &value)?;
                }
                set(&mem, &value)?;
                if *memsw && !raising {
                    set(&sw, &value)?;
                }
            }
        }
        Ok(())
    }

    /// Removes namespace `namespace`'s cgroup tree: kills every process still in it (its
    /// sandboxes, anything they started), waits for them to leave, removes each sandbox's
    /// directory and then the namespace's, in every hierarchy, and forgets its limits.
    /// Nothing of it is left; a namespace that has no cgroup is not an error.
    pub(crate) fn remove_tenant(&self, namespace: &str) -> Result<TenantRemoval, SandboxError> {
        let tenant = self.tenant_layout(namespace)?;
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(namespace);
        let mut removal = TenantRemoval::default();
        // Children first (one level: sandboxes are leaves), then the namespace's own.
        let mut children: Vec<PathBuf> = Vec::new();
        for parent in tenant.parents() {
            if let Ok(entries) = std::fs::read_dir(parent) {
                children.extend(
                    entries
                        .flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.path()),
                );
            }
        }
        let mut killed = HashSet::new();
        let deadline = Instant::now() + TENANT_REMOVE_TIMEOUT;
        loop {
            let listed = self.tenant_processes(&tenant, &children);
            if listed.is_empty() {
                break;
            }
            for pid in listed {
                if let Some(pidfd) = pidfd_open(pid) {
                    send_kill(&pidfd);
                    killed.insert(pid);
                }
            }
            // Frozen tasks die only once thawed (v1); v2 kills the whole tree at once.
            self.thaw_tree(&tenant, &children);
            if Instant::now() > deadline {
                return Err(SandboxError::Cgroup {
                    action: "empty",
                    path: tenant.parents()[0].clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("processes still running after {TENANT_REMOVE_TIMEOUT:?}"),
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        removal.killed = killed.len();
        let dirs = children
            .iter()
            .chain(tenant.parents())
            .cloned()
            .collect::<Vec<_>>();
        for dir in dirs {
            if remove_dir_retrying(self.fs.as_ref(), &dir)? {
                removal.removed_dirs += 1;
            }
        }
        Ok(removal)
    }

    /// Every process in a namespace's cgroup tree (its own directories and `children`).
    fn tenant_processes(&self, tenant: &Hierarchy, children: &[PathBuf]) -> HashSet<i32> {
        tenant
            .parents()
            .into_iter()
            .chain(children)
            .filter_map(|dir| self.fs.read(&dir.join("cgroup.procs")).ok())
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.parse::<i32>().ok())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Kills (v2 `cgroup.kill`, the whole tree) and thaws every cgroup of a namespace.
    fn thaw_tree(&self, tenant: &Hierarchy, children: &[PathBuf]) {
        match tenant {
            Hierarchy::V2 { parent, .. } => {
                let _ = self.fs.write(&parent.join("cgroup.kill"), "1");
                for dir in children.iter().chain([parent]) {
                    let _ = self.fs.write(&dir.join("cgroup.freeze"), "0");
                }
            }
            Hierarchy::V1 { freezer, .. } => {
                for dir in children.iter().filter(|c| c.starts_with(freezer)) {
                    let _ = self.fs.write(&dir.join("freezer.state"), "THAWED");
                }
                let _ = self.fs.write(&freezer.join("freezer.state"), "THAWED");
            }
        }
    }

    /// Creates the cgroup(s) of `id` in `hierarchy`, the layout of namespace `tenant`'s cgroup
    /// (`None`: the host's own).
    fn create_in(
        &self,
        hierarchy: &Hierarchy,
        tenant: Option<&str>,
        id: &str,
        limits: Limits,
    ) -> Result<SandboxCgroup, SandboxError> {
        let fs = Arc::clone(&self.fs);
        match hierarchy {
            Hierarchy::V1 {
                memory,
                pids,
                freezer,
                cpu,
                memsw,
                distinct,
            } => {
                let mut cg = SandboxCgroup {
                    fs,
                    dirs: Vec::new(),
                    kind: Kind::V1 {
                        memory: memory.join(id),
                        freezer: freezer.join(id),
                        pids: pids.join(id),
                        cpu: cpu.as_ref().map(|c| c.join(id)),
                        memsw: *memsw,
                    },
                    peak: None,
                    events: None,
                    limits: None,
                    kept_limits: None,
                    tenant: tenant.map(str::to_owned),
                };
                for parent in distinct {
                    cg.make_dir(parent.join(id))?;
                }
                cg.set_limits(limits)?;
                let memory = memory.join(id);
                cg.peak = self
                    .fs
                    .open(&memory.join("memory.max_usage_in_bytes"), false)
                    .ok();
                cg.events = self.fs.open(&memory.join("memory.oom_control"), false).ok();
                Ok(cg)
            }
            Hierarchy::V2 { parent, cpu } => {
                let dir = parent.join(id);
                let mut cg = SandboxCgroup {
                    fs,
                    dirs: Vec::new(),
                    kind: Kind::V2 {
                        dir: dir.clone(),
                        cpu: *cpu,
                    },
                    peak: None,
                    events: None,
                    limits: None,
                    kept_limits: None,
                    tenant: tenant.map(str::to_owned),
                };
                cg.make_dir(dir.clone())?;
                let swap = dir.join("memory.swap.max");
                if self.fs.exists(&swap) {
                    cg.set(&swap, "0")?;
                }
                cg.set(&dir.join("memory.oom.group"), "1")?;
                cg.set_limits(limits)?;
                let peak = dir.join("memory.peak");
                cg.peak = self.fs.open(&peak, false).ok();
                cg.events = self.fs.open(&dir.join("memory.events"), false).ok();
                Ok(cg)
            }
        }
    }
}

/// The v2 controllers a directory delegates to its children.
fn v2_controllers(cpu: bool) -> &'static str {
    match cpu {
        true => "+memory +pids +cpu",
        false => "+memory +pids",
    }
}

/// Whether `name` is the directory of a host whose server process is gone:
/// `host-<pid>-<n>` (or the older `tenants-<pid>-<n>`) with no process `<pid>`.
fn dead_host(name: &str) -> bool {
    let pid = name
        .strip_prefix(HOST_PREFIX)
        .or_else(|| name.strip_prefix(LEGACY_TENANTS_PREFIX))
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
}

/// Kills every process in the cgroup tree at `dir` (through pidfds; frozen ones are thawed
/// so they can die) and waits up to [`TENANT_REMOVE_TIMEOUT`] for them to leave.
fn kill_tree(fs: &dyn CgroupFs, dir: &Path) {
    let mut dirs = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            todo.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
        dirs.push(d);
    }
    let deadline = Instant::now() + TENANT_REMOVE_TIMEOUT;
    loop {
        let pids: HashSet<i32> = dirs
            .iter()
            .filter_map(|d| fs.read(&d.join("cgroup.procs")).ok())
            .flat_map(|s| s.lines().filter_map(|l| l.parse().ok()).collect::<Vec<_>>())
            .collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pidfd in pids.into_iter().filter_map(pidfd_open) {
            send_kill(&pidfd);
        }
        for d in &dirs {
            let _ = fs.write(&d.join("cgroup.kill"), "1");
            let _ = fs.write(&d.join("cgroup.freeze"), "0");
            let _ = fs.write(&d.join("freezer.state"), "THAWED");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// SIGKILL through a pidfd (never a recycled pid).
fn send_kill(pidfd: &OwnedFd) {
    // SAFETY: pidfd_send_signal on a pidfd we own, no siginfo.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Removes `dir` and the directories below it, deepest first, where empty (best effort).
fn remove_empty_tree(fs: &dyn CgroupFs, dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            remove_empty_tree(fs, &e.path());
        }
    }
    let _ = fs.rmdir(dir);
}

/// How long removing a namespace's cgroup waits for its processes to die.
const TENANT_REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Removes an empty cgroup directory, retrying briefly while exiting tasks linger. `false`:
/// it was not there.
fn remove_dir_retrying(fs: &dyn CgroupFs, dir: &Path) -> Result<bool, SandboxError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) if start.elapsed() > REMOVE_TIMEOUT => return Err(cgroup_err("remove", dir)(e)),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

/// The parent named by [`PARENT_ENV`]: a relative path of plain names (no `..`, not absolute).
fn parent_from(path: &Path) -> Result<PathBuf, SandboxError> {
    let plain = path
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain && path.components().next().is_some() {
        Ok(path.to_path_buf())
    } else {
        Err(SandboxError::Unavailable {
            missing: format!(
                "a valid {PARENT_ENV} (a relative cgroup path such as lambent/node-1, got {})",
                path.display()
            ),
        })
    }
}

/// A pidfd for `pid`, if it still exists.
fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with plain integer arguments; a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: pidfd_open returned a new descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// cgroup2 root options as `/proc/self/mountinfo` shows them (without `rw`/`ro`); empty when
/// no cgroup2 is mounted (then the kernel's defaults are in force).
pub(crate) fn cgroup2_options(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| line.split_once(" - ").map(|(_, fs)| fs))
        .map(|fs| fs.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&"cgroup2"))
        .and_then(|fields| fields.get(2).copied())
        .map(|opts| {
            opts.split(',')
                .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Turns on the kernel's `favordynmods` cgroup option, if it is not on yet. Returns whether it
/// changed anything.
///
/// Moving a process into a cgroup takes a global lock whose write side, by default, waits for
/// an RCU grace period: 10 to 15 ms per sandbox here whenever sandboxes start more than a few
/// milliseconds apart, which dwarfs the rest of a cold start. `favordynmods` keeps that lock in
/// its writer-friendly mode, at the price of slightly slower `fork` and `exit` host-wide. It is
/// an option of the one cgroup2 root and global, so it is set by creating (not mounting) a
/// cgroup2 superblock with the options already in force plus `favordynmods`; the host's mounts
/// are not touched. Only cgroup v1 needs it: on v2, sandboxes are born in their cgroup.
pub(crate) fn favor_dynamic_modifications() -> io::Result<bool> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_SET_FLAG: libc::c_uint = 0;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    let mut options = cgroup2_options(&std::fs::read_to_string("/proc/self/mountinfo")?);
    if options.iter().any(|o| o == "favordynmods") {
        return Ok(false);
    }
    options.push("favordynmods".into());
    // SAFETY: fsopen returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"cgroup2".as_ptr(), FSOPEN_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is the descriptor fsopen just returned; nothing else owns it.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
    let config = |cmd: libc::c_uint, key: Option<&std::ffi::CStr>| {
        let key = key.map_or(std::ptr::null(), |k| k.as_ptr());
        // SAFETY: fsconfig on our fs context with a NUL-terminated key (or none) and no value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fd.as_raw_fd(),
                cmd,
                key,
                std::ptr::null::<u8>(),
                0,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    for option in &options {
        let key = std::ffi::CString::new(option.as_str()).map_err(io::Error::other)?;
        config(FSCONFIG_SET_FLAG, Some(&key))?;
    }
    config(FSCONFIG_CMD_CREATE, None)?;
    Ok(true)
}

#[derive(Debug)]
enum Kind {
    V1 {
        memory: PathBuf,
        freezer: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
        /// Swap accounting is on: `memory.memsw.limit_in_bytes` exists.
        memsw: bool,
    },
    V2 {
        dir: PathBuf,
        /// The cpu controller is enabled.
        cpu: bool,
    },
}

/// One sandbox's cgroup(s). Dropping it removes the directories (retrying briefly while
/// exiting tasks linger).
#[derive(Debug)]
pub(crate) struct SandboxCgroup {
    fs: Arc<dyn CgroupFs>,
    /// Every directory created, in creation order (one per v1 hierarchy, one on v2).
    dirs: Vec<PathBuf>,
    kind: Kind,
    /// v2 `memory.peak` or v1 `memory.max_usage_in_bytes`, kept open: spares an `open` per
    /// invocation.
    peak: Option<File>,
    /// v2 `memory.events` or v1 `memory.oom_control`, kept open (read once per invocation).
    events: Option<File>,
    /// The limits in force.
    limits: Option<Limits>,
    /// Its limit files kept open until limits are next set (a sandbox made ahead, whose claim
    /// sets its function's), by [`LimitFile`].
    kept_limits: Option<Box<[Option<File>; LimitFile::COUNT]>>,
    /// The namespace whose cgroup it is under (`None`: the host's own).
    tenant: Option<String>,
}

/// A file a sandbox's limits are written to.
#[derive(Debug, Clone, Copy)]
enum LimitFile {
    Memory,
    /// v1's memory+swap limit, where the kernel accounts swap.
    MemorySwap,
    Pids,
    /// v1's `cpu.shares`, v2's `cpu.weight`, where the CPU controller is on.
    Cpu,
}

impl LimitFile {
    const COUNT: usize = 4;
    const ALL: [LimitFile; LimitFile::COUNT] = [
        LimitFile::Memory,
        LimitFile::MemorySwap,
        LimitFile::Pids,
        LimitFile::Cpu,
    ];
}

impl SandboxCgroup {
    fn make_dir(&mut self, dir: PathBuf) -> Result<(), SandboxError> {
        match self.fs.mkdir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left behind by a crashed server: reuse it only if it can be emptied.
                self.fs
                    .rmdir(&dir)
                    .map_err(cgroup_err("remove stale", &dir))?;
                self.fs.mkdir(&dir).map_err(cgroup_err("create", &dir))?;
            }
            Err(e) => return Err(cgroup_err("create", &dir)(e)),
        }
        self.dirs.push(dir);
        Ok(())
    }

    /// Sets (or changes: a sandbox made ahead gets its function's limits when it is claimed)
    /// the memory, pids and CPU limits; lets go of the limit files kept open for it.
    pub(crate) fn set_limits(&mut self, limits: Limits) -> Result<(), SandboxError> {
        let bytes = limits.memory_bytes().to_string();
        // v1 keeps memory <= memory+swap at every moment: raise memsw first, lower it last.
        let raising = self
            .limits
            .is_some_and(|old| limits.memory_bytes() > old.memory_bytes());
        if raising {
            self.set_limit(LimitFile::MemorySwap, &bytes)?;
        }
        self.set_limit(LimitFile::Memory, &bytes)?;
        if !raising {
            self.set_limit(LimitFile::MemorySwap, &bytes)?;
        }
        self.set_limit(LimitFile::Pids, &limits.pids_max.to_string())?;
        let cpu = match (&self.kind, limits.background) {
            (Kind::V1 { .. }, true) => CPU_SHARES_MIN,
            (Kind::V1 { .. }, false) => cpu_shares(limits.memory_mb),
            (Kind::V2 { .. }, true) => CPU_WEIGHT_MIN,
            (Kind::V2 { .. }, false) => cpu_weight(limits.memory_mb),
        };
        self.set_limit(LimitFile::Cpu, &cpu.to_string())?;
        self.limits = Some(limits);
        self.kept_limits = None;
        Ok(())
    }

    /// Keeps its limit files open until limits are next set: for a sandbox made ahead, so that
    /// its claim writes its function's limits without an `open` and a `close` per file (~6 µs
    /// each on v1 here, four files). Best effort: a file that does not open is written by path.
    pub(crate) fn keep_limit_files(&mut self) {
        let open = |file| {
            self.limit_path(file)
                .and_then(|path| self.fs.open(&path, true).ok())
        };
        self.kept_limits = Some(Box::new(LimitFile::ALL.map(open)));
    }

    /// Where `file` is for this cgroup; `None` where it has none.
    fn limit_path(&self, file: LimitFile) -> Option<PathBuf> {
        let (dir, name) = match (&self.kind, file) {
            (Kind::V1 { memory, .. }, LimitFile::Memory) => (memory, "memory.limit_in_bytes"),
            (Kind::V1 { memory, memsw, .. }, LimitFile::MemorySwap) if *memsw => {
                (memory, "memory.memsw.limit_in_bytes")
            }
            (Kind::V1 { pids, .. }, LimitFile::Pids) => (pids, "pids.max"),
            (Kind::V1 { cpu: Some(cpu), .. }, LimitFile::Cpu) => (cpu, "cpu.shares"),
            (Kind::V2 { dir, .. }, LimitFile::Memory) => (dir, "memory.max"),
            (Kind::V2 { dir, .. }, LimitFile::Pids) => (dir, "pids.max"),
            (Kind::V2 { dir, cpu: true }, LimitFile::Cpu) => (dir, "cpu.weight"),
            _ => return None,
        };
        Some(dir.join(name))
    }

    /// Writes `value` to `file`, through its kept descriptor if it has one.
    fn set_limit(&self, file: LimitFile, value: &str) -> Result<(), SandboxError> {
        let Some(path) = self.limit_path(file) else {
            return Ok(());
        };
        match self
            .kept_limits
            .as_ref()
            .and_then(|kept| kept[file as usize].as_ref())
        {
            Some(kept) => {
                use std::os::unix::fs::FileExt;
                kept.write_all_at(value.as_bytes(), 0)
                    .map_err(cgroup_err("write", &path))
            }
            None => self.set(&path, value),
        }
    }

    /// Whether it was made under namespace `namespace`'s cgroup.
    pub(crate) fn in_namespace(&self, namespace: &str) -> bool {
        self.tenant.as_deref() == Some(namespace)
    }

    fn set(&self, path: &Path, value: &str) -> Result<(), SandboxError> {
        self.fs
            .write(path, value)
            .map_err(cgroup_err("write", path))
    }

    /// The `cgroup.procs` that lists every process of the sandbox (v1: the pids hierarchy's).
    pub(crate) fn procs_path(&self) -> PathBuf {
        match &self.kind {
            Kind::V2 { dir, .. } => dir.join("cgroup.procs"),
            Kind::V1 { pids, .. } => pids.join("cgroup.procs"),
        }
    }

    /// The sandbox's directories, one per hierarchy.
    pub(crate) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `cgroup.procs` of every directory, open for writing: the child writes `0` to each to
    /// join (v1, or v2 without `CLONE_INTO_CGROUP`).
    pub(crate) fn procs_files(&self) -> Result<Vec<File>, SandboxError> {
        self.dirs
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                self.fs.open(&p, true).map_err(cgroup_err("open", &p))
            })
            .collect()
    }

    /// The v2 directory, open, for `CLONE_INTO_CGROUP`; `None` on v1.
    pub(crate) fn dir_file(&self) -> Result<Option<File>, SandboxError> {
        match &self.kind {
            Kind::V1 { .. } => Ok(None),
            Kind::V2 { dir, .. } => self
                .fs
                .open(dir, false)
                .map(Some)
                .map_err(cgroup_err("open", dir)),
        }
    }

    /// Highest memory use since creation or the last reset, in bytes.
    pub(crate) fn memory_peak_bytes(&self) -> Option<u64> {
        match (&self.kind, &self.peak) {
            (Kind::V1 { .. }, Some(file)) => {
                let mut buf = [0u8; 32];
                let n = file.read_at(&mut buf, 0).ok()?;
                std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
            }
            (Kind::V1 { memory, .. }, None) => self
                .fs
                .read(&memory.join("memory.max_usage_in_bytes"))
                .ok()?
                .trim()
                .parse()
                .ok(),
            (Kind::V2 { .. }, Some(file)) => {
                let mut buf = [0u8; 32];
                let n = file.read_at(&mut buf, 0).ok()?;
                std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
            }
            (Kind::V2 { dir, .. }, None) => self
                .fs
                .read(&dir.join("memory.peak"))
                .ok()?
                .trim()
                .parse()
                .ok(),
        }
    }

    /// How many processes the kernel's OOM killer has killed in this sandbox.
    pub(crate) fn oom_kills(&self) -> u64 {
        const KEY: &str = "oom_kill";
        let kills = match &self.events {
            Some(file) => {
                let mut buf = [0u8; 1024];
                let n = file.read_at(&mut buf, 0).unwrap_or(0);
                std::str::from_utf8(&buf[..n])
                    .ok()
                    .and_then(|c| keyed_value(c, KEY))
            }
            None => self
                .fs
                .read(&match &self.kind {
                    Kind::V1 { memory, .. } => memory.join("memory.oom_control"),
                    Kind::V2 { dir, .. } => dir.join("memory.events"),
                })
                .ok()
                .and_then(|c| keyed_value(&c, KEY)),
        };
        kills.unwrap_or(0)
    }

    /// Whether memory use ever reached this cgroup's own limit: v2 `memory.events` `max`, v1
    /// `memory.failcnt` (a charge that fails at an ancestor's limit counts there, not here).
    pub(crate) fn reached_memory_limit(&self) -> bool {
        match &self.kind {
            Kind::V1 { memory, .. } => self
                .fs
                .read(&memory.join("memory.failcnt"))
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0),
            Kind::V2 { dir, .. } => self
                .fs
                .read(&dir.join("memory.events"))
                .ok()
                .and_then(|c| keyed_value(&c, "max"))
                .is_some_and(|n| n > 0),
        }
    }

    /// Stops every task and waits until the kernel says they all are stopped.
    pub(crate) fn freeze(&self) -> Result<(), SandboxError> {
        let (control, value, status, frozen): (PathBuf, _, PathBuf, fn(&str) -> bool) =
            match &self.kind {
                Kind::V1 { freezer, .. } => (
                    freezer.join("freezer.state"),
                    "FROZEN",
                    freezer.join("freezer.state"),
                    |s| s.trim() == "FROZEN",
                ),
                Kind::V2 { dir, .. } => (
                    dir.join("cgroup.freeze"),
                    "1",
                    dir.join("cgroup.events"),
                    |s| keyed_value(s, "frozen") == Some(1),
                ),
            };
        self.set(&control, value)?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        loop {
            let now = self.fs.read(&status).map_err(cgroup_err("read", &status))?;
            if frozen(&now) {
                return Ok(());
            }
            if start.elapsed() > FREEZE_TIMEOUT {
                return Err(SandboxError::FreezeTimeout {
                    path: status,
                    state: "frozen",
                    waited: FREEZE_TIMEOUT,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    /// Lets every task run again.
    pub(crate) fn thaw(&self) -> Result<(), SandboxError> {
        match &self.kind {
            Kind::V1 { freezer, .. } => self.set(&freezer.join("freezer.state"), "THAWED"),
            Kind::V2 { dir, .. } => self.set(&dir.join("cgroup.freeze"), "0"),
        }
    }

    /// Kills every task (v2 `cgroup.kill`) and thaws, so frozen tasks can die (v1 needs that).
    /// The caller has already killed the namespace's init, which kills the rest on its own.
    pub(crate) fn kill_all(&self) {
        if let Kind::V2 { dir, .. } = &self.kind {
            let kill = dir.join("cgroup.kill");
            if self.fs.exists(&kill) {
                let _ = self.fs.write(&kill, "1");
            }
        }
        let _ = self.thaw();
    }

    /// Kills every process of the cgroup when no namespace init takes them along: those
    /// listed, through pidfds (never a recycled pid), a few rounds against forks, then
    /// [`Self::kill_all`]. Returns their pidfds, for a caller that must reap them.
    pub(crate) fn kill_every_process(&self) -> Vec<OwnedFd> {
        let mut killed = Vec::new();
        let procs = self.procs_path();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..5 {
            let listed = self.fs.read(&procs).unwrap_or_default();
            let pidfds: Vec<OwnedFd> = listed
                .lines()
                .filter_map(|l| l.parse::<i32>().ok())
                .filter(|pid| seen.insert(*pid))
                .filter_map(pidfd_open)
                .collect();
            if pidfds.is_empty() {
                break;
            }
            pidfds.iter().for_each(send_kill);
            killed.extend(pidfds);
        }
        self.kill_all();
        killed
    }
}

/// Removes cgroup directory `dir` (gone already counts), retrying for up to `timeout` while
/// exiting tasks linger in it.
fn remove_dir(fs: &dyn CgroupFs, dir: &Path, timeout: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(100);
    loop {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if start.elapsed() >= timeout => return Err(e),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
        }
    }
}

impl SandboxCgroup {
    /// Kills whatever still runs in the cgroup and waits (up to `timeout`) until each of
    /// those processes has exited, reaping those that are this server's children: a
    /// sandbox whose claim failed half-way can leave its processes here when its cgroup
    /// drops, and a cgroup cannot be removed while they live.
    fn reap_every_process(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for pidfd in self.kill_every_process() {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut poll = libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: poll on one pollfd of a pidfd we own: readable once the process exits.
            unsafe { libc::poll(&mut poll, 1, left.as_millis() as libc::c_int) };
            // SAFETY: waitid on a pidfd we own, into a zeroed siginfo; ECHILD (not ours, or
            // reaped already) is harmless.
            unsafe {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PIDFD,
                    pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOHANG,
                );
            }
        }
    }

    /// Whether a process is still listed in the cgroup.
    fn has_processes(&self) -> bool {
        self.fs
            .read(&self.procs_path())
            .is_ok_and(|s| s.lines().any(|l| !l.trim().is_empty()))
    }
}

impl Drop for SandboxCgroup {
    /// Removes the directories; processes still in them (a claim that failed before its
    /// sandbox took them over) are killed and reaped first.
    fn drop(&mut self) {
        self.peak = None;
        self.events = None;
        if self.has_processes() {
            self.reap_every_process(REMOVE_TIMEOUT);
        }
        let start = Instant::now();
        for dir in self.dirs.iter().rev() {
            let left = REMOVE_TIMEOUT.saturating_sub(start.elapsed());
            if let Err(e) = remove_dir(self.fs.as_ref(), dir, left) {
                tracing::warn!("could not remove cgroup {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A cgroup tree in a temporary directory that records every write. Its `mkdir` creates
    /// the files listed in `on_mkdir` (as the kernel creates control files) and its `write`
    /// creates the file.
    #[derive(Debug, Default)]
    struct FakeFs {
        writes: Mutex<Vec<(PathBuf, String)>>,
        on_mkdir: Vec<(&'static str, &'static str)>,
    }

    impl FakeFs {
        fn new(on_mkdir: &[(&'static str, &'static str)]) -> Arc<FakeFs> {
            Arc::new(FakeFs {
                writes: Mutex::default(),
                on_mkdir: on_mkdir.to_vec(),
            })
        }

        fn written(&self, path: &Path) -> Option<String> {
            let w = self.writes.lock().unwrap();
            w.iter()
                .rev()
                .find(|(p, _)| p == path)
                .map(|(_, v)| v.clone())
        }
    }

    impl CgroupFs for FakeFs {
        fn exists(&self, path: &Path) -> bool {
            path.exists()
        }
        fn read(&self, path: &Path) -> io::Result<String> {
            std::fs::read_to_string(path)
        }
        fn write(&self, path: &Path, value: &str) -> io::Result<()> {
            self.writes
                .lock()
                .unwrap()
                .push((path.to_path_buf(), value.to_string()));
            std::fs::write(path, value)
        }
        fn mkdir(&self, path: &Path) -> io::Result<()> {
            std::fs::create_dir(path)?;
            for (name, content) in &self.on_mkdir {
                std::fs::write(path.join(name), content)?;
            }
            Ok(())
        }
        fn rmdir(&self, path: &Path) -> io::Result<()> {
            std::fs::remove_dir_all(path)
        }
        fn open(&self, path: &Path, write: bool) -> io::Result<File> {
            std::fs::OpenOptions::new()
                .read(true)
                .write(write && !path.is_dir())
                .open(path)
        }
        fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
            std::fs::canonicalize(path)
        }
    }

    /// Files the kernel creates in every new v1 cgroup (the ones Lambent opens).
    const V1_FILES: &[(&str, &str)] = &[("cgroup.procs", "")];
    /// Files the kernel creates in every new v2 cgroup (the ones Lambent opens or tests for).
    const V2_FILES: &[(&str, &str)] = &[
        ("cgroup.procs", ""),
        ("cgroup.freeze", "0"),
        ("memory.swap.max", "max"),
        ("memory.peak", "0\n"),
    ];

    fn touch(path: impl AsRef<Path>, content: &str) {
        let path = path.as_ref();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    fn fake_v1(root: &Path, controllers: &[&str], memsw: bool) {
        for c in controllers {
            touch(root.join(c).join("cgroup.procs"), "");
        }
        if memsw {
            touch(root.join("memory/memory.memsw.limit_in_bytes"), "");
        }
    }

    fn fake_v2(root: &Path, controllers: &str) {
        touch(root.join("cgroup.controllers"), controllers);
    }

    /// A v1 hierarchy with `controllers` (and swap accounting with `memsw`) in a temporary
    /// directory, detected: as [`detected_v2`].
    fn detected_v1(
        controllers: &[&str],
        memsw: bool,
    ) -> (tempfile::TempDir, Arc<FakeFs>, Cgroups, String) {
        let tmp = tempfile::tempdir().unwrap();
        fake_v1(tmp.path(), controllers, memsw);
        let fs = FakeFs::new(V1_FILES);
        let cgroups = Cgroups::detect(fs.clone(), tmp.path()).unwrap();
        let t = cgroups.own_dir();
        (tmp, fs, cgroups, t)
    }

    /// A v2 hierarchy with `controllers` in a temporary directory, detected: the directory, the
    /// file system that records the writes, the cgroups, and the name of the host's own
    /// directory.
    fn detected_v2(controllers: &str) -> (tempfile::TempDir, Arc<FakeFs>, Cgroups, String) {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path(), controllers);
        let fs = FakeFs::new(V2_FILES);
        let cgroups = Cgroups::detect(fs.clone(), tmp.path()).unwrap();
        let t = cgroups.own_dir();
        (tmp, fs, cgroups, t)
    }

    const LIMITS: Limits = Limits {
        memory_mb: 128,
        pids_max: 64,
        background: false,
    };

    #[test]
    fn cpu_follows_memory_like_lambda() {
        assert_eq!(cpu_shares(1769), 1024);
        assert_eq!(cpu_shares(128), 74);
        assert_eq!(cpu_shares(1), 2);
        assert_eq!(cpu_shares(3538), 2048);
        assert_eq!(cpu_weight(1769), 100);
        assert_eq!(cpu_weight(128), 7);
        assert_eq!(cpu_weight(1), 1);
        assert_eq!(cpu_weight(u32::MAX), 10_000);
    }

    #[test]
    fn keyed_values_are_parsed() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_value(v1, "oom_kill"), Some(3));
        assert_eq!(keyed_value(v1, "under_oom"), Some(0));
        let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 1\n";
        assert_eq!(keyed_value(v2, "oom_kill"), Some(1));
        assert_eq!(keyed_value(v2, "missing"), None);
        assert_eq!(keyed_value("populated 1\nfrozen 1\n", "frozen"), Some(1));
    }

    #[test]
    fn v1_sandbox_gets_its_limits_in_every_hierarchy() {
        let (tmp, fs, cgroups, t) = detected_v1(&["memory", "pids", "freezer", "cpu"], true);
        let root = tmp.path();
        assert_eq!(cgroups.version(), CgroupVersion::V1);
        for c in ["memory", "pids", "freezer", "cpu"] {
            assert!(
                root.join(c).join("lambent").is_dir(),
                "{c}/lambent not created"
            );
        }

        let cg = cgroups.create(None, "sb-1", LIMITS).unwrap();
        let bytes = (128u64 << 20).to_string();
        let written = |p: &str| fs.written(&root.join(p));
        assert_eq!(
            written(&format!("memory/lambent/{t}/sb-1/memory.limit_in_bytes")),
            Some(bytes.clone())
        );
        assert_eq!(
            written(&format!(
                "memory/lambent/{t}/sb-1/memory.memsw.limit_in_bytes"
            )),
            Some(bytes)
        );
        assert_eq!(
            written(&format!("pids/lambent/{t}/sb-1/pids.max")),
            Some("64".into())
        );
        assert_eq!(
            written(&format!("cpu/lambent/{t}/sb-1/cpu.shares")),
            Some("74".into())
        );
        assert_eq!(cg.dirs().len(), 4);
        assert_eq!(cg.procs_files().unwrap().len(), 4);
        assert!(cg.dir_file().unwrap().is_none());

        // The memory limit is set before the memory+swap limit (the kernel insists).
        let order: Vec<PathBuf> = fs
            .writes
            .lock()
            .unwrap()
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        let pos = |name: &str| order.iter().position(|p| p.ends_with(name)).unwrap();
        assert!(pos("memory.limit_in_bytes") < pos("memory.memsw.limit_in_bytes"));

        touch(
            root.join(format!("memory/lambent/{t}/sb-1/memory.oom_control")),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        );
        assert_eq!(cg.oom_kills(), 2);
        touch(
            root.join(format!("memory/lambent/{t}/sb-1/memory.max_usage_in_bytes")),
            "1048576\n",
        );
        assert_eq!(cg.memory_peak_bytes(), Some(1 << 20));

        // The fake's state file says FROZEN as soon as it is written.
        cg.freeze().unwrap();
        assert_eq!(
            written(&format!("freezer/lambent/{t}/sb-1/freezer.state")),
            Some("FROZEN".into())
        );
        cg.thaw().unwrap();
        assert_eq!(
            written(&format!("freezer/lambent/{t}/sb-1/freezer.state")),
            Some("THAWED".into())
        );

        drop(cg);
        for c in ["memory", "pids", "freezer", "cpu"] {
            assert!(
                !root.join(c).join(format!("lambent/{t}/sb-1")).exists(),
                "{c} dir left behind"
            );
            assert!(root.join(c).join("lambent").exists());
        }
    }

    #[test]
    fn another_parent_nests_sandboxes_under_it_in_every_hierarchy() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v1(root, &["memory", "pids", "freezer", "cpu"], true);
        let fs = FakeFs::new(V1_FILES);
        let cgroups = Cgroups::detect_in(fs.clone(), root, Path::new("lambent/bench-n1")).unwrap();
        let t = cgroups.own_dir();
        let cg = cgroups.create(None, "sb-1", LIMITS).unwrap();
        for c in ["memory", "pids", "freezer", "cpu"] {
            assert!(
                root.join(c)
                    .join(format!("lambent/bench-n1/{t}/sb-1"))
                    .is_dir(),
                "{c}"
            );
        }
        drop(cg);
        assert!(root.join("cpu/lambent/bench-n1").is_dir());
        assert!(parent_from(Path::new("../escape")).is_err());
        assert!(parent_from(Path::new("/sys/fs/cgroup/x")).is_err());
        assert_eq!(
            parent_from(Path::new("lambent/n1")).unwrap(),
            Path::new("lambent/n1")
        );
    }

    #[test]
    fn v1_without_swap_accounting_or_cpu_still_works() {
        let (tmp, fs, cgroups, t) = detected_v1(&["memory", "pids", "freezer"], false);
        let root = tmp.path();
        let cg = cgroups.create(None, "sb-2", LIMITS).unwrap();
        assert_eq!(cg.dirs().len(), 3);
        assert_eq!(
            fs.written(&root.join(format!(
                "memory/lambent/{t}/sb-2/memory.memsw.limit_in_bytes"
            ))),
            None
        );
    }

    #[test]
    fn v1_co_mounted_controllers_share_one_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v1(root, &["memory", "pids", "freezer", "cpu,cpuacct"], false);
        std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).unwrap();
        let fs = FakeFs::new(V1_FILES);
        let cgroups = Cgroups::detect(fs, root).unwrap();
        let t = cgroups.own_dir();
        let cg = cgroups.create(None, "sb-3", LIMITS).unwrap();
        assert_eq!(cg.dirs().len(), 4);
        assert!(root.join(format!("cpu,cpuacct/lambent/{t}/sb-3")).is_dir());
    }

    #[test]
    fn v1_missing_controllers_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v1(root, &["memory", "cpu"], false);
        let err = Cgroups::detect(FakeFs::new(V1_FILES), root).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("pids, freezer not mounted"), "{msg}");
        assert!(msg.contains("--insecure-no-sandbox"), "{msg}");
    }

    #[test]
    fn no_cgroups_at_all_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Cgroups::detect(FakeFs::new(V1_FILES), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no cgroup file system"), "{err}");
    }

    #[test]
    fn v2_enables_controllers_and_sets_limits() {
        let (tmp, fs, cgroups, t) = detected_v2("cpuset cpu io memory hugetlb pids rdma misc");
        let root = tmp.path();
        assert_eq!(cgroups.version(), CgroupVersion::V2);
        let written = |p: &str| fs.written(&root.join(p));
        assert_eq!(
            written("cgroup.subtree_control"),
            Some("+memory +pids +cpu".into())
        );
        assert_eq!(
            written("lambent/cgroup.subtree_control"),
            Some("+memory +pids +cpu".into())
        );

        let cg = cgroups.create(None, "sb-4", LIMITS).unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/memory.swap.max")),
            Some("0".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/memory.max")),
            Some((128u64 << 20).to_string())
        );
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/memory.oom.group")),
            Some("1".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/pids.max")),
            Some("64".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/cpu.weight")),
            Some("7".into())
        );
        assert_eq!(cg.procs_files().unwrap().len(), 1);
        assert!(cg.dir_file().unwrap().is_some());

        touch(
            root.join(format!("lambent/{t}/sb-4/memory.events")),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        );
        assert_eq!(cg.oom_kills(), 1);

        touch(
            root.join(format!("lambent/{t}/sb-4/cgroup.events")),
            "populated 1\nfrozen 1\n",
        );
        cg.freeze().unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/cgroup.freeze")),
            Some("1".into())
        );
        cg.thaw().unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/cgroup.freeze")),
            Some("0".into())
        );
        touch(root.join(format!("lambent/{t}/sb-4/cgroup.kill")), "");
        cg.kill_all();
        assert_eq!(
            written(&format!("lambent/{t}/sb-4/cgroup.kill")),
            Some("1".into())
        );

        drop(cg);
        assert!(!root.join(format!("lambent/{t}/sb-4")).exists());
    }

    #[test]
    fn v2_memory_peak_is_read_through_the_kept_descriptor() {
        let (tmp, fs, cgroups, t) = detected_v2("memory pids");
        let root = tmp.path();
        assert_eq!(
            fs.written(&root.join("cgroup.subtree_control")),
            Some("+memory +pids".into())
        );
        let cg = cgroups.create(None, "sb-5", LIMITS).unwrap();
        assert_eq!(
            fs.written(&root.join(format!("lambent/{t}/sb-5/cpu.weight"))),
            None
        );
        std::fs::write(root.join(format!("lambent/{t}/sb-5/memory.peak")), "8192\n").unwrap();
        assert_eq!(cg.memory_peak_bytes(), Some(8192));
    }

    #[test]
    fn v2_missing_controllers_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path(), "cpu io");
        let err = Cgroups::detect(FakeFs::new(V2_FILES), tmp.path()).unwrap_err();
        assert!(
            err.to_string().contains("memory, pids not available"),
            "{err}"
        );
    }

    #[test]
    fn v2_without_freezer_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        touch(tmp.path().join("cgroup.controllers"), "memory pids");
        let err = Cgroups::detect(FakeFs::new(&[]), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("cgroup.freeze"), "{err}");
    }

    #[test]
    fn cgroup2_options_keep_the_root_flags_in_force() {
        let hybrid = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert!(cgroup2_options(hybrid).is_empty());
        let systemd = "30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - \
                       cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            cgroup2_options(systemd),
            ["nsdelegate", "memory_recursiveprot"]
        );
        assert!(cgroup2_options("22 27 0:21 / /proc rw,relatime - proc proc rw\n").is_empty());
    }

    #[test]
    fn a_namespace_cgroup_removed_behind_our_back_is_made_again_with_its_limits() {
        let (tmp, fs, cgroups, t) = detected_v2("cpu memory pids");
        let root = tmp.path();
        let limits = TenantLimits {
            cpu_weight: 300,
            memory_max_bytes: Some(512 << 20),
        };
        cgroups.set_tenant("team-a", limits).unwrap();
        let weight = root.join(format!("lambent/{t}/ns-team-a/cpu.weight"));
        let weight_writes = || {
            let writes = fs.writes.lock().unwrap();
            writes.iter().filter(|(p, _)| *p == weight).count()
        };
        drop(cgroups.create(Some("team-a"), "sb-1", LIMITS).unwrap());
        let before = weight_writes();
        // Its sandboxes go straight into it: nothing about the namespace is written again.
        drop(cgroups.create(Some("team-a"), "sb-2", LIMITS).unwrap());
        assert_eq!(weight_writes(), before);
        std::fs::remove_dir_all(root.join(format!("lambent/{t}"))).unwrap();
        let cg = cgroups.create(Some("team-a"), "sb-3", LIMITS).unwrap();
        assert!(root.join(format!("lambent/{t}/ns-team-a/sb-3")).is_dir());
        assert_eq!(weight_writes(), before + 1, "made again, with its limits");
        assert_eq!(fs.written(&weight), Some("300".into()));
        drop(cg);
    }

    #[test]
    fn v2_namespace_cgroup_gets_its_weight_and_memory_cap_and_holds_its_sandboxes() {
        let (tmp, fs, cgroups, t) = detected_v2("cpu memory pids");
        let root = tmp.path();
        let written = |p: &str| fs.written(&root.join(p));
        let limits = TenantLimits {
            cpu_weight: 300,
            memory_max_bytes: Some(512 << 20),
        };
        cgroups.set_tenant("team-a", limits).unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-a/cgroup.subtree_control")),
            Some("+memory +pids +cpu".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-a/cpu.weight")),
            Some("300".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-a/memory.max")),
            Some((512u64 << 20).to_string())
        );
        let cg = cgroups.create(Some("team-a"), "sb-7", LIMITS).unwrap();
        assert!(root.join(format!("lambent/{t}/ns-team-a/sb-7")).is_dir());
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-a/sb-7/memory.max")),
            Some((128u64 << 20).to_string())
        );
        // A namespace never set gets the defaults on its first sandbox: equal weight, no cap.
        let other = cgroups.create(Some("team-b"), "sb-8", LIMITS).unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-b/cpu.weight")),
            Some("100".into())
        );
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-b/memory.max")),
            Some("max".into())
        );
        // Raising the cap later.
        cgroups
            .set_tenant(
                "team-b",
                TenantLimits {
                    memory_max_bytes: Some(1 << 30),
                    ..TenantLimits::default()
                },
            )
            .unwrap();
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-b/memory.max")),
            Some((1u64 << 30).to_string())
        );
        drop((cg, other));
        assert!(!root.join(format!("lambent/{t}/ns-team-a/sb-7")).exists());
        assert!(
            root.join(format!("lambent/{t}/ns-team-a")).is_dir(),
            "the namespace stays"
        );

        let removal = cgroups.remove_tenant("team-a").unwrap();
        assert_eq!(removal.removed_dirs, 1);
        assert!(!root.join(format!("lambent/{t}/ns-team-a")).exists());
        // Its limits are forgotten: made again, it has the defaults.
        drop(cgroups.create(Some("team-a"), "sb-9", LIMITS).unwrap());
        assert_eq!(
            written(&format!("lambent/{t}/ns-team-a/cpu.weight")),
            Some("100".into())
        );
    }

    #[test]
    fn v1_namespace_cgroup_is_made_in_every_hierarchy_with_shares_and_both_memory_limits() {
        let (tmp, fs, cgroups, t) = detected_v1(&["memory", "pids", "freezer", "cpu"], true);
        let root = tmp.path();
        let written = |p: &str| fs.written(&root.join(p));
        cgroups
            .set_tenant(
                "a",
                TenantLimits {
                    cpu_weight: 50,
                    memory_max_bytes: Some(256 << 20),
                },
            )
            .unwrap();
        for c in ["memory", "pids", "freezer", "cpu"] {
            assert!(
                root.join(c).join(format!("lambent/{t}/ns-a")).is_dir(),
                "{c}"
            );
        }
        assert_eq!(
            written(&format!("cpu/lambent/{t}/ns-a/cpu.shares")),
            Some("512".into())
        );
        let bytes = (256u64 << 20).to_string();
        assert_eq!(
            written(&format!("memory/lambent/{t}/ns-a/memory.limit_in_bytes")),
            Some(bytes.clone())
        );
        assert_eq!(
            written(&format!(
                "memory/lambent/{t}/ns-a/memory.memsw.limit_in_bytes"
            )),
            Some(bytes)
        );
        let cg = cgroups.create(Some("a"), "sb-1", LIMITS).unwrap();
        assert_eq!(cg.dirs().len(), 4);
        assert!(cg
            .dirs()
            .iter()
            .all(|d| d.ends_with(format!("lambent/{t}/ns-a/sb-1"))));
        assert_eq!(
            written(&format!("cpu/lambent/{t}/ns-a/sb-1/cpu.shares")),
            Some("74".into())
        );
        // Removing the namespace takes its sandboxes' directories along.
        std::mem::forget(cg);
        let removal = cgroups.remove_tenant("a").unwrap();
        assert_eq!(removal.removed_dirs, 8);
        for c in ["memory", "pids", "freezer", "cpu"] {
            assert!(
                !root.join(c).join(format!("lambent/{t}/ns-a")).exists(),
                "{c}"
            );
            assert!(root.join(c).join("lambent").is_dir(), "{c}");
        }
        // Unlimited again: memory+swap is raised first.
        cgroups.set_tenant("a", TenantLimits::default()).unwrap();
        assert_eq!(
            written(&format!("memory/lambent/{t}/ns-a/memory.limit_in_bytes")),
            Some("-1".into())
        );
    }

    #[test]
    fn adopting_a_cgroup_made_ahead_moves_it_under_the_namespace() {
        let (tmp, fs, cgroups, t) = detected_v2("cpu memory pids");
        let root = tmp.path();
        let mut cg = cgroups.create(None, "sb-ready-1", LIMITS).unwrap();
        std::fs::write(
            root.join(format!("lambent/{t}/sb-ready-1/cgroup.procs")),
            "",
        )
        .unwrap();
        let bigger = Limits {
            memory_mb: 1024,
            ..LIMITS
        };
        cgroups.adopt(&mut cg, Some("b"), "sb-2", bigger).unwrap();
        assert_eq!(cg.dirs(), [root.join(format!("lambent/{t}/ns-b/sb-2"))]);
        assert!(
            !root.join(format!("lambent/{t}/sb-ready-1")).exists(),
            "the old one goes"
        );
        assert_eq!(
            fs.written(&root.join(format!("lambent/{t}/ns-b/sb-2/memory.max"))),
            Some((1024u64 << 20).to_string())
        );
        // Outside every namespace, the same cgroup gets the limits.
        let mut plain = cgroups.create(None, "sb-ready-2", LIMITS).unwrap();
        cgroups.adopt(&mut plain, None, "sb-3", bigger).unwrap();
        assert_eq!(plain.dirs(), [root.join(format!("lambent/{t}/sb-ready-2"))]);
        // Made ahead under the namespace already: it stays, with the limits; made under
        // another, it moves.
        let mut there = cgroups.create(Some("b"), "sb-ready-3", LIMITS).unwrap();
        assert!(there.in_namespace("b") && !there.in_namespace("c"));
        cgroups
            .adopt(&mut there, Some("b"), "sb-4", bigger)
            .unwrap();
        let stayed = root.join(format!("lambent/{t}/ns-b/sb-ready-3"));
        assert_eq!(there.dirs(), std::slice::from_ref(&stayed));
        assert_eq!(
            fs.written(&stayed.join("memory.max")),
            Some((1024u64 << 20).to_string())
        );
        std::fs::write(stayed.join("cgroup.procs"), "").unwrap();
        cgroups
            .adopt(&mut there, Some("c"), "sb-5", bigger)
            .unwrap();
        assert_eq!(there.dirs(), [root.join(format!("lambent/{t}/ns-c/sb-5"))]);
        assert!(there.in_namespace("c"));
    }

    #[test]
    fn made_ahead_goes_under_a_namespace_only_while_its_cgroup_is_there() {
        let (tmp, _fs, cgroups, t) = detected_v2("cpu memory pids");
        let root = tmp.path();
        // Never made for it: the namespace may be being removed.
        let outside = cgroups
            .create_ahead(Some("b"), "sb-ready-1", LIMITS)
            .unwrap();
        assert_eq!(
            outside.dirs(),
            [root.join(format!("lambent/{t}/sb-ready-1"))]
        );
        assert!(!outside.in_namespace("b"));
        assert!(!root.join(format!("lambent/{t}/ns-b")).exists());
        let sandbox = cgroups.create(Some("b"), "sb-1", LIMITS).unwrap();
        assert!(sandbox.in_namespace("b"));
        let inside = cgroups
            .create_ahead(Some("b"), "sb-ready-2", LIMITS)
            .unwrap();
        assert_eq!(
            inside.dirs(),
            [root.join(format!("lambent/{t}/ns-b/sb-ready-2"))]
        );
        assert!(inside.in_namespace("b") && !inside.in_namespace("c"));
        let none = cgroups.create_ahead(None, "sb-ready-3", LIMITS).unwrap();
        assert!(!none.in_namespace("b"));
    }

    /// A cgroup made ahead keeps its limit files open for its claim, which writes through them
    /// (no `open` by path) and lets them go.
    #[test]
    fn made_ahead_keeps_its_limit_files_for_its_claim() {
        let (tmp, fs, cgroups, t) = detected_v1(&["memory", "pids", "freezer", "cpu"], true);
        let root = tmp.path();
        let mut cg = cgroups.create_ahead(None, "sb-ready-1", LIMITS).unwrap();
        let file = |hierarchy: &str, name: &str| {
            root.join(format!("{hierarchy}/lambent/{t}/sb-ready-1/{name}"))
        };
        let read = |hierarchy: &str, name: &str| std::fs::read_to_string(file(hierarchy, name));
        let by_path = fs.writes.lock().unwrap().len();
        let claimed = Limits {
            memory_mb: 256,
            pids_max: 1024,
            background: false,
        };
        cg.set_limits(claimed).unwrap();
        assert_eq!(fs.writes.lock().unwrap().len(), by_path, "written by path");
        let bytes = (256u64 << 20).to_string();
        assert_eq!(read("memory", "memory.limit_in_bytes").unwrap(), bytes);
        assert_eq!(
            read("memory", "memory.memsw.limit_in_bytes").unwrap(),
            bytes
        );
        assert_eq!(read("pids", "pids.max").unwrap(), "1024");
        assert_eq!(
            read("cpu", "cpu.shares").unwrap(),
            cpu_shares(256).to_string()
        );
        // Let go: the next limits are written by path.
        cg.set_limits(LIMITS).unwrap();
        assert_eq!(
            fs.written(&file("pids", "pids.max")),
            Some("64".into()),
            "the kept files were let go"
        );
    }

    #[test]
    fn namespace_names_that_cannot_name_a_directory_are_refused() {
        assert_eq!(tenant_dir("team_a.prod-1").unwrap(), "ns-team_a.prod-1");
        for bad in ["", "a/b", "..", "a b", &"x".repeat(129)] {
            if bad == ".." {
                // `ns-..` is a plain name: allowed, and harmless.
                assert_eq!(tenant_dir(bad).unwrap(), "ns-..");
                continue;
            }
            assert!(tenant_dir(bad).is_err(), "{bad:?}");
        }
        let tmp = tempfile::tempdir().unwrap();
        fake_v2(tmp.path(), "memory pids");
        let cgroups = Cgroups::detect(FakeFs::new(V2_FILES), tmp.path()).unwrap();
        let bad = TenantLimits {
            cpu_weight: 0,
            memory_max_bytes: None,
        };
        let err = cgroups.set_tenant("a", bad).unwrap_err().to_string();
        assert!(err.contains("cpu weight 0"), "{err}");
    }

    #[test]
    fn stale_directory_from_a_crash_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v1(root, &["memory", "pids", "freezer"], false);
        let cgroups = Cgroups::detect(FakeFs::new(V1_FILES), root).unwrap();
        let t = cgroups.own_dir();
        std::fs::create_dir(root.join(format!("pids/lambent/{t}/sb-6"))).unwrap();
        let cg = cgroups.create(None, "sb-6", LIMITS).unwrap();
        assert_eq!(cg.dirs().len(), 3);
    }

    /// Regression: `remove_stale` removed empty `sb-*` cgroups of other servers that were
    /// alive (a sandbox made ahead and not yet claimed). Now each server's cgroups are in
    /// its own directory, and only the directories of servers that are gone are removed.
    #[test]
    fn remove_stale_keeps_live_servers_cgroups_and_removes_dead_servers() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v1(root, &["memory", "pids", "freezer"], false);
        let fs = FakeFs::new(V1_FILES);
        let a = Cgroups::detect(fs.clone(), root).unwrap();
        let ahead = a.create(None, "sb-ahead-1", LIMITS).unwrap();
        let dir = ahead.dirs()[0].clone();
        assert!(dir.starts_with(root.join("memory/lambent").join(a.own_dir())));
        // Old enough for the former rule ("untouched for a minute") to take it.
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        File::open(&dir).unwrap().set_modified(old).unwrap();
        // A server that is gone (no such pid) left its directory, and an older one its
        // directory of namespaces.
        let dead = root.join("pids/lambent/host-999999999-0/sb-x");
        let legacy = root.join("memory/lambent/tenants-999999999-3/ns-a/sb-y");
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(&legacy).unwrap();

        let b = Cgroups::detect(fs.clone(), root).unwrap();
        assert_ne!(a.own_dir(), b.own_dir());
        b.remove_stale();
        assert!(dir.is_dir(), "a live server's cgroup was removed");
        assert!(!root.join("pids/lambent/host-999999999-0").exists());
        assert!(!root.join("memory/lambent/tenants-999999999-3").exists());

        drop(ahead);
        a.remove_own_dir();
        assert!(!root.join("memory/lambent").join(a.own_dir()).exists());
        assert!(root.join("memory/lambent").join(b.own_dir()).exists());
    }

    /// Regression: a claim that failed half-way dropped its cgroup while its processes
    /// were still in it; the directory stayed (and the next start of the same sandbox had
    /// to pick another name). Dropping the cgroup now kills and reaps them first. Needs
    /// root and the host's real cgroups.
    #[test]
    fn dropping_a_cgroup_with_processes_in_it_reaps_them_and_removes_it() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let parent = format!("lambent/test-reap-{}", std::process::id());
        let cgroups =
            Cgroups::detect_in(Arc::new(HostFs), Path::new(CGROUP_ROOT), Path::new(&parent))
                .unwrap();
        let cg = cgroups.create(None, "sb-claim-failed", LIMITS).unwrap();
        let child = std::process::Command::new("sleep")
            .arg("600")
            .spawn()
            .unwrap();
        let pid = child.id().to_string();
        for procs in cg.procs_files().unwrap() {
            (&procs).write_all(pid.as_bytes()).unwrap();
        }
        assert!(cg.has_processes());
        let dirs = cg.dirs().to_vec();
        drop(cg);
        for dir in &dirs {
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the process was not reaped"
        );
        drop(child);
        cgroups.remove_own_dir();
        for dir in cgroups.hierarchy.parents() {
            remove_empty_tree(&HostFs, dir);
            assert!(!dir.exists(), "{} left behind", dir.display());
        }
    }
}
