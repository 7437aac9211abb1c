//! [`Host`]: what this machine offers for sandboxes, found out once (`Host::detect`: root,
//! cgroups, namespaces, the seccomp program, the host's top-level directories, the state
//! directory), and the parent's half of [`Host::spawn`]: create the cgroup, prepare everything
//! the child needs, clone it, and wait on the handshake until the program runs or a step fails.

use crate::cgroup::TenantRemoval;
use crate::cgroup::{self, Cgroups, HostFs, Limits, SandboxCgroup, CGROUP_ROOT};
use crate::handshake::{self, ChildChannel, Message, ParentEnd};
use crate::mounts::{self, HostRootfs};
use crate::netpool::NetPool;
use crate::package::{
    Birthplace, Built, PackageControl, PackageKey, PackageUid, PackageZygote, PackageZygotes,
};
use crate::ready::{AheadBudget, Flavor, ReadyPool, ReadySandbox};
use crate::sandbox::{Isolated, Process, Sandbox, Startup};
use crate::seccomp::{Profile, SeccompProgram};
use crate::spawn::{self, ChildPlan, Exec};
use crate::stem::{StemCell, StemProgram};
use crate::zygote::{Forked, Programs, Zygote, ZygoteState, Zygotes};
use crate::{
    insecure, CgroupVersion, SandboxError, SandboxSpec, SetupStep, RUNTIME_API_PORT, RUNTIME_ROOT,
    TASK_ROOT,
};
use lambent_core::{Birth, TenantLimits};
use std::ffi::CString;
use std::fs::File;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Why a function cannot have outbound network here.
const NO_SLIRP: &str =
    "the function asks for outbound network, which needs slirp4netns on the host (apt-get install slirp4netns)";

/// How long a child may take from `clone` to `execve` before `spawn` gives up on it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// How strongly sandboxes are isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces, cgroups, a minimal read-only root, an unprivileged user, seccomp. Needs root.
    Full,
    /// A plain child process with the same pipe and environment contract and nothing else:
    /// for development without root (`--insecure-no-sandbox`). Functions can read and write
    /// whatever the server's user can.
    Insecure,
}

/// What `Host::detect` needs to know.
#[derive(Debug, Clone)]
pub struct HostOptions {
    pub isolation: Isolation,
    /// Scratch directory owned by Lambent (e.g. `<data>/sandboxes`); created if missing. Full
    /// isolation mounts each sandbox's root on `<state_dir>/rootfs`, inside the sandbox's own
    /// mount namespace (the host never sees those mounts), and keeps the empty directories of
    /// its start-up self-test in `<state_dir>/selftest`. Unused in insecure mode.
    pub state_dir: PathBuf,
    /// The layers a full sandbox gets: all of them ([`Layers::ALL`]) except to measure what
    /// each one costs.
    pub layers: Layers,
    /// A host directory of software every sandbox sees read-only at the same path (the AWS
    /// SDKs that come with the runtimes), plus `/node_modules` pointing at
    /// `/var/runtime/sdk/node/node_modules` (see `mounts.rs`). It must exist; `None`: nothing.
    /// Same path inside as outside, so that modules a Python zygote imported from it on the
    /// host are where its forked children expect them.
    pub sdk_dir: Option<PathBuf>,
}

/// The isolation layers of a full sandbox. Production runs with [`Layers::ALL`]; leaving one out
/// exists to measure what it costs (the benchmark's per-layer table). The network namespace is
/// not optional: it is how the Runtime API reaches the sandbox at `127.0.0.1:9001`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// Own mount namespace and the minimal read-only root (without it: the host's file
    /// system, the code at its host path).
    pub root: bool,
    /// Own PID, IPC and UTS namespaces.
    pub pid_ipc_uts: bool,
    /// Own cgroup (memory, CPU and pids limits, accounting) and cgroup namespace.
    pub cgroup: bool,
    /// The unprivileged user: no capabilities, `no_new_privs`.
    pub user: bool,
    /// The seccomp filter.
    pub seccomp: bool,
    /// Network namespaces made ahead by a background thread (without it, each sandbox makes
    /// its own on the start-up path).
    pub netns_ahead: bool,
    /// Whole sandboxes made ahead, waiting for their code and program (`ready.rs`; needs all
    /// the layers above).
    pub sandboxes_ahead: bool,
    /// Python sandboxes forked from a zygote interpreter that has already imported the runtime
    /// client and common modules (`zygote.rs`; needs every layer above). Without it: a fresh
    /// `python3` exec into the same sandbox.
    pub python_zygote: bool,
    /// Package zygotes: a Python function that ships packages gets a zygote of its own that has
    /// already imported its handler's leading imports (`package.rs`; needs `python_zygote`).
    /// Without it: its cold starts fork the base zygote and import them.
    pub package_zygotes: bool,
    /// Node.js sandboxes claimed from stem cells: interpreters already started in a sandbox,
    /// waiting to be told their function (`stem.rs`; needs every layer above). Without it: a
    /// fresh `node` exec into the same sandbox.
    pub node_stem_cells: bool,
}

impl Layers {
    pub const ALL: Layers = Layers {
        root: true,
        pid_ipc_uts: true,
        cgroup: true,
        user: true,
        seccomp: true,
        netns_ahead: true,
        sandboxes_ahead: true,
        python_zygote: true,
        package_zygotes: true,
        node_stem_cells: true,
    };

    /// Every isolation layer and every piece made ahead (what the faster start-ups need).
    fn complete(&self) -> bool {
        Layers {
            python_zygote: true,
            package_zygotes: true,
            node_stem_cells: true,
            ..*self
        } == Layers::ALL
    }
}

impl Default for Layers {
    fn default() -> Layers {
        Layers::ALL
    }
}

/// Paths as the sandboxed process sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `/var/task`, or the code directory itself in insecure mode.
    pub task_root: PathBuf,
    /// `/var/runtime`, or the runtime directory itself in insecure mode.
    pub runtime_dir: PathBuf,
}

/// This machine's sandboxing facilities. Cheap to clone; shareable between threads.
#[derive(Debug, Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    isolation: Isolation,
    /// `None` in insecure mode.
    full: Option<Arc<FullHost>>,
    /// Sandboxes made ahead; `None` in insecure mode, or when left out.
    ready: Option<ReadyPool<ReadySandbox>>,
    /// Python zygotes, and the sandboxes made ahead for their children; `None` in insecure
    /// mode, or when left out.
    zygotes: Option<(Zygotes, ReadyPool<ReadySandbox>)>,
    /// Python runtimes forked ahead from the running zygote.
    forked: ForkedAhead,
    /// Package zygotes; `None` without Python zygotes, or when left out.
    packages: Option<PackageZygotes>,
    /// Node.js stem cells, one pool for the program they run (made on first need); `None` in
    /// insecure mode, or when left out.
    stems: Option<Stems>,
    /// What [`Host::warm_up`] was asked to have ready (what [`Host::warming`] waits for).
    primed: Mutex<Primed>,
}

/// What was asked to be ready before the first cold start.
#[derive(Debug, Default)]
struct Primed {
    /// Sandboxes made ahead for `execve`.
    exec: bool,
    /// The Python zygote of (interpreter, runtime directory), and runtimes forked from it.
    python: Option<(PathBuf, PathBuf)>,
    /// Node.js stem cells.
    node: bool,
}

/// How long the warm-up waits for the Python zygote before it forks runtimes ahead (its own
/// start gives up sooner).
const ZYGOTE_WAIT: Duration = Duration::from_secs(30);
/// How often the warm-up looks whether the Python zygote is running.
const ZYGOTE_POLL: Duration = Duration::from_millis(10);

/// The pool of Python runtimes forked ahead, for the zygote running now (replaced with it).
#[derive(Debug, Default)]
struct ForkedAhead {
    pool: Mutex<Option<ForkedPool>>,
}

/// The zygote the runtimes are forked from, and their pool.
type ForkedPool = (Arc<Zygote>, Arc<ReadyPool<Forked>>);

impl ForkedAhead {
    /// The pool of runtimes forked from `zygote`, with `runtime_dir` at `/var/runtime`.
    fn pool(
        &self,
        full: &Arc<FullHost>,
        zygote: &Arc<Zygote>,
        runtime_dir: &Path,
    ) -> Option<Arc<ReadyPool<Forked>>> {
        let mut slot = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((forking, pool)) = &*slot {
            if Arc::ptr_eq(forking, zygote) {
                return Some(Arc::clone(pool));
            }
        }
        let maker = Arc::new(MakeForked {
            full: Arc::clone(full),
            zygote: Arc::clone(zygote),
            runtime_dir: runtime_dir.to_path_buf(),
        });
        let pool = ReadyPool::start("lambent-forked-py", READY_MAX, maker, &full.ahead_budget)
            .map_err(|e| tracing::warn!("no Python runtimes forked ahead: {e}"))
            .ok()?;
        let pool = Arc::new(pool);
        *slot = Some((Arc::clone(zygote), Arc::clone(&pool)));
        Some(pool)
    }
}

/// The stem cell pool, for the one Node program in use.
#[derive(Debug)]
struct Stems {
    full: Arc<FullHost>,
    pool: Mutex<Option<(StemProgram, Arc<ReadyPool<StemCell>>)>>,
}

impl Stems {
    /// The pool of stem cells running `argv` with `runtime_dir` (replacing one running
    /// another).
    fn pool(&self, argv: &[String], runtime_dir: &Path) -> Option<Arc<ReadyPool<StemCell>>> {
        let mut slot = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((running, pool)) = &*slot {
            if running.argv == argv && running.runtime_dir == runtime_dir {
                return Some(Arc::clone(pool));
            }
        }
        let program = StemProgram {
            argv: argv.to_vec(),
            runtime_dir: runtime_dir.to_path_buf(),
        };
        let maker = Arc::new(MakeStem {
            full: Arc::clone(&self.full),
            program: program.clone(),
        });
        let pool = ReadyPool::start(
            "lambent-stems",
            crate::stem::MAX,
            maker,
            &self.full.ahead_budget,
        )
        .map_err(|e| tracing::warn!("no Node.js stem cells: {e}"))
        .ok()?;
        let pool = Arc::new(pool);
        *slot = Some((program, Arc::clone(&pool)));
        Some(pool)
    }
}

/// Makes stem cells, for the pool's thread.
struct MakeStem {
    full: Arc<FullHost>,
    program: StemProgram,
}

impl crate::ready::Maker<StemCell> for MakeStem {
    fn make(&self, tmp_mb: u32) -> Result<StemCell, SandboxError> {
        self.full.make_stem_cell(&self.program, tmp_mb)
    }
}

/// What full isolation needs, prepared once.
#[derive(Debug)]
struct FullHost {
    cgroups: Cgroups,
    rootfs: HostRootfs,
    /// `<state_dir>/rootfs`: where each sandbox mounts its root before `pivot_root`.
    new_root: PathBuf,
    /// `<state_dir>/empty`: what a stem cell sees at `/var/task` before its claim.
    empty_dir: PathBuf,
    seccomp: SeccompProgram,
    /// What a package zygote runs under (`package.rs`).
    package_seccomp: SeccompProgram,
    /// What everything made ahead may hold in memory, together (`ready.rs`).
    ahead_budget: Arc<AheadBudget>,
    /// Network namespaces made ahead; `None` if the pool thread could not start.
    netpool: Option<NetPool>,
    layers: Layers,
    /// slirp4netns, for sandboxes with outbound network; `None` if not installed.
    slirp: Option<PathBuf>,
    /// The namespace of the latest cold start: what the pools make ahead is made under its
    /// cgroup, so that a claim from it only sets its limits (`Cgroups::adopt`).
    ahead_tenant: Mutex<Option<String>>,
}

impl Drop for FullHost {
    /// This host's directory of namespaces goes with it (where its sandboxes are gone).
    fn drop(&mut self) {
        self.cgroups.remove_own_dir();
    }
}

impl Host {
    /// Finds out what the host offers. With [`Isolation::Full`], fails with
    /// [`SandboxError::Unavailable`] naming exactly what is missing (root, a cgroup controller,
    /// a namespace kind) and pointing at `--insecure-no-sandbox`.
    pub fn detect(opts: HostOptions) -> Result<Host, SandboxError> {
        let full = match opts.isolation {
            Isolation::Insecure => {
                tracing::warn!("sandboxing disabled: functions run as plain processes with the server's privileges");
                None
            }
            Isolation::Full => Some(Arc::new(FullHost::detect(
                &opts.state_dir,
                opts.layers,
                opts.sdk_dir.as_deref(),
            )?)),
        };
        let pool = |flavor: Flavor, name: &str| {
            let full = full.clone()?;
            let budget = Arc::clone(&full.ahead_budget);
            let maker = Arc::new(MakeReady { full, flavor });
            ReadyPool::start(name, READY_MAX, maker, &budget)
                .map_err(|e| tracing::warn!("no sandboxes made ahead: {e}"))
                .ok()
        };
        let complete = full.as_ref().is_some_and(|f| f.layers.complete());
        let ready = match complete {
            true => pool(Flavor::Exec, "lambent-ready"),
            false => None,
        };
        let zygotes = match &full {
            Some(f) if complete && f.layers.python_zygote => {
                match crate::zygote::become_subreaper() {
                    Ok(()) => pool(Flavor::ForZygote, "lambent-ready-py").map(|p| {
                        let programs = Programs {
                            sandbox: f.seccomp.bytes(),
                            package_zygote: f.package_seccomp.bytes(),
                        };
                        (Zygotes::new(programs), p)
                    }),
                    Err(e) => {
                        tracing::warn!("no Python zygotes (cannot become a subreaper: {e})");
                        None
                    }
                }
            }
            _ => None,
        };
        let packages = match &full {
            Some(f) if zygotes.is_some() && f.layers.package_zygotes => PackageZygotes::start()
                .map_err(|e| tracing::warn!("no package zygotes: {e}"))
                .ok(),
            _ => None,
        };
        let stems = match &full {
            Some(f) if complete && f.layers.node_stem_cells => Some(Stems {
                full: Arc::clone(f),
                pool: Mutex::new(None),
            }),
            _ => None,
        };
        Ok(Host {
            inner: Arc::new(Inner {
                isolation: opts.isolation,
                full,
                ready,
                zygotes,
                forked: ForkedAhead::default(),
                packages,
                stems,
                primed: Mutex::default(),
            }),
        })
    }

    pub fn isolation(&self) -> Isolation {
        self.inner.isolation
    }

    /// Whether sandboxes can get outbound network (`SandboxSpec::allow_network`): always in
    /// insecure mode (the host's network), with full isolation when slirp4netns is installed.
    /// The error says what is missing.
    pub fn outbound_network(&self) -> Result<(), SandboxError> {
        match &self.inner.full {
            Some(full) if full.slirp.is_none() => Err(SandboxError::Network(NO_SLIRP.into())),
            _ => Ok(()),
        }
    }

    /// Creates namespace `namespace`'s cgroup, or changes its limits (see [`TenantLimits`]):
    /// the parent of every sandbox whose spec names the namespace, weighted against the other
    /// namespaces for CPU and capped for memory as a whole. A namespace whose limits were
    /// never set gets its cgroup on its first sandbox, with the defaults (equal weight, no
    /// cap). The limits are kept and applied again if the cgroup has to be made again.
    /// Nothing to do in insecure mode or without the cgroup layer.
    pub fn set_tenant_limits(
        &self,
        namespace: &str,
        limits: TenantLimits,
    ) -> Result<(), SandboxError> {
        match &self.inner.full {
            Some(full) if full.layers.cgroup => full.cgroups.set_tenant(namespace, limits),
            _ => limits
                .validate()
                .map_err(|e| SandboxError::InvalidSpec(format!("namespace {namespace:?}: {e}"))),
        }
    }

    /// The limits in force for namespace `namespace`'s cgroup: those last set, else the
    /// defaults (always the defaults in insecure mode or without the cgroup layer, where no
    /// namespace is capped).
    pub fn tenant_limits(&self, namespace: &str) -> TenantLimits {
        match &self.inner.full {
            Some(full) if full.layers.cgroup => full.cgroups.tenant_limits(namespace),
            _ => TenantLimits::default(),
        }
    }

    /// Removes everything of namespace `namespace` on this host: its package zygotes (and
    /// the runtimes they forked ahead), what the pools made ahead under its cgroup, then
    /// every process left in its cgroup tree (its sandboxes, killed), then the tree itself, in
    /// every hierarchy. Call it once the namespace's functions can no longer start sandboxes
    /// (the caller retired their pools): a sandbox started meanwhile would make the
    /// namespace's cgroup again.
    pub fn remove_tenant(&self, namespace: &str) -> Result<TenantRemoval, SandboxError> {
        if let Some(packages) = &self.inner.packages {
            packages.discard_namespace(namespace);
        }
        let Some(full) = self.inner.full.as_ref().filter(|f| f.layers.cgroup) else {
            return Ok(TenantRemoval::default());
        };
        full.forget_tenant(namespace);
        self.discard_made_ahead(namespace);
        full.cgroups.remove_tenant(namespace)
    }

    /// Drops what every pool made ahead under namespace `namespace`'s cgroup, once what each
    /// was making is done (see `ReadyPool::discard_namespace`).
    fn discard_made_ahead(&self, namespace: &str) {
        let inner = &self.inner;
        let pools = [
            inner.ready.as_ref(),
            inner.zygotes.as_ref().map(|(_, pool)| pool),
        ];
        for pool in pools.into_iter().flatten() {
            pool.discard_namespace(namespace);
        }
        let forked = inner.forked.pool.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, pool)) = &*forked {
            pool.discard_namespace(namespace);
        }
        drop(forked);
        if let Some(stems) = &inner.stems {
            let cells = stems.pool.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((_, pool)) = &*cells {
                pool.discard_namespace(namespace);
            }
        }
    }

    /// Kills whatever still runs in this host's cgroups (sandboxes made ahead, stem cells,
    /// runtimes forked ahead, package zygotes) and removes them: the end of a server, whose
    /// pools are never dropped before the process exits. Call it once nothing is invoked any
    /// more.
    pub fn release_cgroups(&self) {
        if let Some(full) = &self.inner.full {
            full.cgroups.release_own_dir();
        }
    }

    /// The directories of namespace `namespace`'s cgroup, one per hierarchy (they may not
    /// exist yet); empty in insecure mode or without the cgroup layer.
    pub fn tenant_cgroup_dirs(&self, namespace: &str) -> Result<Vec<PathBuf>, SandboxError> {
        match &self.inner.full {
            Some(full) if full.layers.cgroup => full.cgroups.tenant_dirs(namespace),
            _ => Ok(Vec::new()),
        }
    }

    /// The cgroup interface in use; `None` in insecure mode.
    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        self.inner.full.as_ref().map(|f| f.cgroups.version())
    }

    /// Paths as the sandboxed process sees them: `/var/task` and `/var/runtime` with full
    /// isolation, the host paths given in insecure mode.
    pub fn layout(&self, code_dir: &Path, runtime_dir: &Path) -> Layout {
        let root = self.inner.full.as_ref().is_some_and(|f| f.layers.root);
        match root {
            true => Layout {
                task_root: PathBuf::from(TASK_ROOT),
                runtime_dir: PathBuf::from(RUNTIME_ROOT),
            },
            false => Layout {
                task_root: code_dir.to_path_buf(),
                runtime_dir: runtime_dir.to_path_buf(),
            },
        }
    }

    /// Starts a sandbox and returns once its program is running (`execve` succeeded), or with
    /// the reason it could not start. Blocking (a few milliseconds): call it from a blocking
    /// thread in async code.
    pub fn spawn(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        spec.validate(self.inner.isolation)?;
        let Some(full) = &self.inner.full else {
            return insecure::spawn(spec);
        };
        full.note_cold_start(spec);
        if spec.allow_network {
            return full.spawn_networked(spec);
        }
        if let Some(sandbox) = self
            .claim_runtime(full, spec)
            .or_else(|| self.fork_from_zygote(full, spec))
        {
            return Ok(sandbox);
        }
        if let Some(ready) = self.inner.ready.as_ref().and_then(|r| r.take(spec.tmp_mb)) {
            match full.start_ready(ready, spec, true) {
                Ok(sandbox) => return Ok(sandbox),
                // Its program does not fit the message: started from scratch.
                Err(SandboxError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput => {}
                Err(e) => {
                    tracing::warn!(id = %spec.id, "could not claim a sandbox made ahead, starting one: {e}");
                }
            }
        }
        full.launch(spec, false)
    }

    /// Starts `spec` in what waits for it made ahead: a Python runtime forked ahead (from its
    /// function's package zygote, else from the base zygote), a Node.js stem cell, or for any
    /// other program a sandbox made ahead, which is handed its program without waiting for its
    /// `execve` (should its set-up fail, [`Sandbox::setup_failure`] says how once it has
    /// ended). Such a claim is a few hundred microseconds of system calls that wait for
    /// nothing the sandbox does, so an async caller may make it on its own thread, sparing a
    /// cold start the hand-off to a blocking thread and back (two wake-ups, ~0.2 ms on a small
    /// VM). `None` when nothing waits for `spec` (or its claim failed, logged): then
    /// [`Host::spawn`] it, on a blocking thread.
    pub fn claim_waiting(&self, spec: &SandboxSpec) -> Option<Sandbox> {
        let full = self.inner.full.as_ref()?;
        if spec.allow_network || spec.validate(self.inner.isolation).is_err() {
            return None;
        }
        full.note_cold_start(spec);
        if spec.interpreter.is_some() {
            return self.claim_runtime(full, spec);
        }
        let ready = self.inner.ready.as_ref()?.take(spec.tmp_mb)?;
        full.start_ready(ready, spec, false)
            .map_err(|e| tracing::warn!(id = %spec.id, "could not claim a sandbox made ahead: {e}"))
            .ok()
    }

    /// `spec` started in a runtime waiting for it: a Python runtime forked ahead or a Node.js
    /// stem cell.
    fn claim_runtime(&self, full: &Arc<FullHost>, spec: &SandboxSpec) -> Option<Sandbox> {
        match spec.interpreter? {
            crate::Interpreter::Python => self.claim_forked_ahead(full, spec),
            crate::Interpreter::Node => self.claim_stem_cell(full, spec),
        }
    }
}

impl Host {
    /// The base Python zygote for `spec`, when it is a Python runtime, zygotes are on, one is
    /// running and the environment holds nothing only an interpreter's start reads.
    fn zygote_for(&self, spec: &SandboxSpec) -> Option<Arc<Zygote>> {
        let (zygotes, _) = self.inner.zygotes.as_ref()?;
        if spec.interpreter != Some(crate::Interpreter::Python)
            || !crate::zygote::environment_fits(&spec.env)
        {
            return None;
        }
        zygotes.get(Path::new(&spec.argv[0]), &spec.runtime_dir)
    }

    /// `spec` started in a Python runtime forked ahead: from its function's package zygote
    /// when it has one (`None` if none of that one's waits: forking from it on demand beats
    /// importing the packages again), else from the base zygote. `None` also when the claim
    /// failed (logged).
    fn claim_forked_ahead(&self, full: &Arc<FullHost>, spec: &SandboxSpec) -> Option<Sandbox> {
        let zygote = self.zygote_for(spec)?;
        if let Some(package) = self.package_zygote(full, &zygote, spec) {
            let forked = package.ahead.as_ref()?.take(spec.tmp_mb)?;
            let claimed = claim_forked(forked, spec, Birth::PackageZygote, Instant::now());
            return self.package_fork_claimed(spec, &package, claimed);
        }
        let forked = self
            .inner
            .forked
            .pool(full, &zygote, &spec.runtime_dir)?
            .take(spec.tmp_mb)?;
        full.start_forked_ahead(forked, spec)
            .map_err(|e| tracing::warn!(id = %spec.id, "could not claim a Python runtime forked ahead, forking one: {e}"))
            .ok()
    }

    /// `spec` started from a Python zygote (see [`Host::zygote_for`]) when no runtime forked
    /// ahead for it was there to claim: from its package zygote when it has one, else forked
    /// now from the base zygote; `None` when there is no zygote for it, or when the fork
    /// failed (logged): the caller then `execve`s.
    fn fork_from_zygote(&self, full: &Arc<FullHost>, spec: &SandboxSpec) -> Option<Sandbox> {
        let (_, pool) = self.inner.zygotes.as_ref()?;
        let zygote = self.zygote_for(spec)?;
        if let Some(sandbox) = self.fork_from_package_zygote(full, &zygote, spec) {
            return Some(sandbox);
        }
        // None waiting (a burst): making one for the zygote's child costs far less than the
        // interpreter start a fork saves.
        let ready = match pool.take(spec.tmp_mb) {
            Some(ready) => ready,
            None => full
                .make_ready(spec.tmp_mb, Flavor::ForZygote, spec.namespace.as_deref())
                .map_err(|e| tracing::warn!("could not make a sandbox for the zygote: {e}"))
                .ok()?,
        };
        match full.start_forked(&zygote, ready, spec) {
            Ok(sandbox) => Some(sandbox),
            Err(e) => {
                tracing::warn!(id = %spec.id, "could not fork from the Python zygote, starting by exec: {e}");
                None
            }
        }
    }

    /// The package zygote of `spec`'s function (`package.rs`), when package zygotes are on
    /// and that one is running; `None` otherwise, after starting to build it when there is
    /// none yet.
    fn package_zygote(
        &self,
        full: &Arc<FullHost>,
        zygote: &Arc<Zygote>,
        spec: &SandboxSpec,
    ) -> Option<Arc<PackageZygote>> {
        let build = || {
            let (full, zygote, spec) = (Arc::clone(full), Arc::clone(zygote), spec.clone());
            move |uid| full.build_package_zygote(&zygote, &spec, uid)
        };
        self.inner
            .packages
            .as_ref()?
            .get(&PackageKey::of(spec), build)
    }

    /// `spec` forked from its function's package zygote, ahead or now; `None` when it has
    /// none running, or when the fork failed (logged, and the zygote replaced).
    fn fork_from_package_zygote(
        &self,
        full: &Arc<FullHost>,
        zygote: &Arc<Zygote>,
        spec: &SandboxSpec,
    ) -> Option<Sandbox> {
        let package = self.package_zygote(full, zygote, spec)?;
        let started = Instant::now();
        let forked = match package.ahead.as_ref().and_then(|a| a.take(spec.tmp_mb)) {
            Some(forked) => Ok(forked),
            None => {
                full.fork_from_package(&package.control, &spec.id, &package.birthplace, spec.tmp_mb)
            }
        };
        let claimed = forked.and_then(|f| claim_forked(f, spec, Birth::PackageZygote, started));
        self.package_fork_claimed(spec, &package, claimed)
    }

    /// The sandbox of a fork from `package`, or `None` when it failed (logged, and the
    /// zygote replaced).
    fn package_fork_claimed(
        &self,
        spec: &SandboxSpec,
        package: &Arc<PackageZygote>,
        claimed: Result<Sandbox, SandboxError>,
    ) -> Option<Sandbox> {
        claimed
            .map_err(|e| {
                tracing::warn!(id = %spec.id, "could not fork from the package zygote, forking the base zygote: {e}");
                if let Some(packages) = &self.inner.packages {
                    packages.discard(&PackageKey::of(spec), package);
                }
            })
            .ok()
    }

    /// The software every sandbox shares (the SDK directory, [`HostOptions::sdk_dir`])
    /// changed: the Python zygotes are replaced, so that what they import ahead is the new.
    pub fn shared_software_changed(&self) {
        if let Some((zygotes, _)) = &self.inner.zygotes {
            zygotes.restart();
        }
    }

    /// Starts what makes cold starts fast, in the background, before the first one needs it:
    /// for `Some(interpreter)`, the Python zygote and runtimes forked from it, or the Node.js
    /// stem cells, for the runtime `argv` (as a [`SandboxSpec`] would have it) and
    /// `runtime_dir`; for `None` (`argv` unused), sandboxes made ahead for `execve` (what every
    /// other runtime starts in). Each with a `/tmp` of `tmp_mb`. Does nothing when that is off
    /// or unavailable. [`Host::warming`] says what is not ready yet.
    pub fn warm_up(
        &self,
        interpreter: Option<crate::Interpreter>,
        argv: &[String],
        runtime_dir: &Path,
        tmp_mb: u32,
    ) {
        let mut primed = self.inner.primed.lock().unwrap_or_else(|e| e.into_inner());
        match (interpreter, &self.inner.zygotes, &self.inner.stems) {
            (None, _, _) => {
                if let Some(ready) = &self.inner.ready {
                    ready.prime(tmp_mb);
                    primed.exec = true;
                }
            }
            (Some(crate::Interpreter::Python), Some((zygotes, pool)), _) => {
                let python = PathBuf::from(&argv[0]);
                zygotes.get(&python, runtime_dir);
                pool.prime(tmp_mb);
                primed.python = Some((python.clone(), runtime_dir.to_path_buf()));
                self.fork_ahead_once_running(python, runtime_dir.to_path_buf(), tmp_mb);
            }
            (Some(crate::Interpreter::Node), _, Some(stems)) => {
                if let Some(pool) = stems.pool(argv, runtime_dir) {
                    pool.prime(tmp_mb);
                    primed.node = true;
                }
            }
            _ => {}
        }
    }

    /// Once the Python zygote of `python` and `runtime_dir` runs, starts forking runtimes
    /// ahead from it (a thread that waits for it, up to [`ZYGOTE_WAIT`]).
    fn fork_ahead_once_running(&self, python: PathBuf, runtime_dir: PathBuf, tmp_mb: u32) {
        let host = Arc::downgrade(&self.inner);
        let waiter = move || {
            let deadline = Instant::now() + ZYGOTE_WAIT;
            while Instant::now() < deadline {
                let Some(inner) = host.upgrade() else { return };
                let (Some((zygotes, _)), Some(full)) = (&inner.zygotes, &inner.full) else {
                    return;
                };
                match zygotes.state(&python, &runtime_dir) {
                    ZygoteState::Running(zygote) => {
                        if let Some(pool) = inner.forked.pool(full, &zygote, &runtime_dir) {
                            pool.prime(tmp_mb);
                        }
                        return;
                    }
                    ZygoteState::Unavailable => return,
                    ZygoteState::Starting => {}
                }
                drop(inner);
                std::thread::sleep(ZYGOTE_POLL);
            }
        };
        if let Err(e) = std::thread::Builder::new()
            .name("lambent-warm-py".into())
            .spawn(waiter)
        {
            tracing::warn!("no Python runtimes forked ahead before the first cold start: {e}");
        }
    }

    /// What [`Host::warm_up`] started that is not ready yet (empty: the next cold start of
    /// each kind is as fast as later ones): `"sandboxes made ahead"`, `"the Python zygote"`,
    /// `"Python runtimes forked ahead"`, `"Node.js stem cells"`. What failed to start (no
    /// `node` on the host, say) is not waited for: its cold starts `execve` instead.
    pub fn warming(&self) -> Vec<&'static str> {
        let primed = self.inner.primed.lock().unwrap_or_else(|e| e.into_inner());
        let mut warming = Vec::new();
        if primed.exec && self.inner.ready.as_ref().is_some_and(|r| !r.settled()) {
            warming.push("sandboxes made ahead");
        }
        if let (Some((python, runtime_dir)), Some((zygotes, _))) =
            (&primed.python, &self.inner.zygotes)
        {
            match zygotes.state(python, runtime_dir) {
                ZygoteState::Starting => warming.push("the Python zygote"),
                ZygoteState::Running(zygote) => {
                    let forked = self.inner.forked.pool.lock();
                    let forked = forked.unwrap_or_else(|e| e.into_inner());
                    let settled = match &*forked {
                        Some((forking, pool)) => Arc::ptr_eq(forking, &zygote) && pool.settled(),
                        None => false,
                    };
                    if !settled {
                        warming.push("Python runtimes forked ahead");
                    }
                }
                ZygoteState::Unavailable => {}
            }
        }
        if let (true, Some(stems)) = (primed.node, &self.inner.stems) {
            let slot = stems.pool.lock().unwrap_or_else(|e| e.into_inner());
            if slot.as_ref().is_some_and(|(_, pool)| !pool.settled()) {
                warming.push("Node.js stem cells");
            }
        }
        warming
    }

    /// `spec` started in a Node.js stem cell, when it is a Node runtime, stem cells are on, one
    /// is waiting, and the function's environment and memory suit one; `None` otherwise, or
    /// when the claim failed (logged): the caller then `execve`s.
    fn claim_stem_cell(&self, full: &FullHost, spec: &SandboxSpec) -> Option<Sandbox> {
        let stems = self.inner.stems.as_ref()?;
        if spec.interpreter != Some(crate::Interpreter::Node)
            || spec.memory_mb < crate::stem::MIN_MEMORY_MB
            || !crate::stem::environment_fits(&spec.env)
        {
            return None;
        }
        let cell = stems
            .pool(&spec.argv, &spec.runtime_dir)?
            .take(spec.tmp_mb)?;
        match full.start_stem_cell(cell, spec) {
            Ok(sandbox) => Some(sandbox),
            Err(e) => {
                tracing::warn!(id = %spec.id, "could not claim a Node.js stem cell, starting by exec: {e}");
                None
            }
        }
    }
}

/// What a cloned sandbox does once set up.
enum Program<'a> {
    /// Runs `exec` (with `dry_run`, stops just before `execve`).
    Run { exec: Exec<'a>, dry_run: bool },
    /// Waits for its program, made ahead for that flavor.
    Wait(Flavor),
}

/// `AWS_LAMBDA_RUNTIME_API` inside every fully isolated sandbox.
fn runtime_api_address() -> String {
    format!("127.0.0.1:{RUNTIME_API_PORT}")
}

/// Most sandboxes of one kind kept made ahead (the pools size themselves, see `ready.rs`).
const READY_MAX: usize = 8;

/// Makes sandboxes ahead of one flavor, for a pool's thread.
struct MakeReady {
    full: Arc<FullHost>,
    flavor: Flavor,
}

impl crate::ready::Maker<ReadySandbox> for MakeReady {
    fn make(&self, tmp_mb: u32) -> Result<ReadySandbox, SandboxError> {
        self.full.make_ahead(tmp_mb, self.flavor, WAITING_LIMITS)
    }
}

fn unavailable(missing: impl Into<String>) -> SandboxError {
    SandboxError::Unavailable {
        missing: missing.into(),
    }
}

impl FullHost {
    fn detect(
        state_dir: &Path,
        layers: Layers,
        sdk_dir: Option<&Path>,
    ) -> Result<FullHost, SandboxError> {
        let euid = nix::unistd::geteuid();
        if !euid.is_root() {
            return Err(unavailable(format!(
                "not running as root (effective uid {euid})"
            )));
        }
        for ns in ["mnt", "pid", "ipc", "uts", "net", "cgroup"] {
            if !Path::new("/proc/self/ns").join(ns).exists() {
                return Err(unavailable(format!("the kernel has no {ns} namespaces")));
            }
        }
        let cgroups = Cgroups::detect(Arc::new(HostFs), Path::new(CGROUP_ROOT))?;
        cgroups.remove_stale();
        if cgroups.version() == CgroupVersion::V1 {
            match cgroup::favor_dynamic_modifications() {
                Ok(true) => tracing::info!("turned on the kernel's cgroup favordynmods option for fast cgroup moves"),
                Ok(false) => {}
                Err(e) => tracing::warn!(
                    "could not turn on cgroup favordynmods ({e}): each sandbox start may wait 10-15 ms for the kernel"
                ),
            }
        }
        let seccomp = SeccompProgram::compile(Profile::Sandbox)?;
        let package_seccomp = SeccompProgram::compile(Profile::PackageZygote)?;
        let mut rootfs = HostRootfs::scan(Path::new("/"))?;
        if let Some(sdk) = sdk_dir {
            rootfs.share_sdk(sdk)?;
        }

        let state_err = |source| SandboxError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(state_err)?;
        let state_dir = state_dir.canonicalize().map_err(state_err)?;
        let new_root = state_dir.join("rootfs");
        let empty_dir = state_dir.join("empty");
        for (dir, mode) in [(&new_root, 0o700), (&empty_dir, 0o755)] {
            match std::fs::DirBuilder::new().mode(mode).create(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(state_err(e)),
            }
        }
        let netpool = match layers.netns_ahead {
            true => NetPool::start()
                .map_err(|e| tracing::warn!("no network namespace pool: {e}"))
                .ok(),
            false => None,
        };
        let host = FullHost {
            cgroups,
            rootfs,
            new_root,
            empty_dir,
            seccomp,
            package_seccomp,
            ahead_budget: AheadBudget::for_host(),
            netpool,
            layers,
            slirp: crate::network::find_slirp(),
            ahead_tenant: Mutex::new(None),
        };
        if !layers.complete() {
            tracing::warn!(
                ?layers,
                "sandboxes lack isolation layers (for measurements only)"
            );
        }
        host.self_test(&state_dir)?;
        tracing::info!(
            cgroup = ?host.cgroups.version(),
            state_dir = %state_dir.display(),
            "full sandbox isolation available"
        );
        Ok(host)
    }

    /// Runs every set-up step once, up to but not including `execve`, so that a host where
    /// sandboxes cannot work (no privilege to make namespaces or mounts, in a container, say)
    /// is refused at start-up, naming the step, rather than at the first invocation.
    fn self_test(&self, state_dir: &Path) -> Result<(), SandboxError> {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let dir = state_dir.join("selftest");
        let (code_dir, runtime_dir) = (dir.join("code"), dir.join("runtime"));
        for d in [&dir, &code_dir, &runtime_dir] {
            match std::fs::DirBuilder::new().mode(0o755).create(d) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(SandboxError::StateDir {
                        path: d.clone(),
                        source: e,
                    })
                }
                _ => {}
            }
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).map_err(
                |source| SandboxError::StateDir {
                    path: d.clone(),
                    source,
                },
            )?;
        }
        let spec = SandboxSpec {
            id: format!(
                "selftest-{}-{}",
                std::process::id(),
                RUNS.fetch_add(1, Ordering::Relaxed)
            ),
            code_dir,
            runtime_dir,
            argv: vec!["/var/task/never-executed".into()],
            env: Vec::new(),
            memory_mb: 64,
            pids_max: 8,
            tmp_mb: 1,
            allow_network: false,
            interpreter: None,
            aws_endpoint: false,
            namespace: None,
        };
        self.launch(&spec, true).map(drop).map_err(|e| {
            unavailable(format!(
                "a working sandbox (the start-up self-test failed: {e})"
            ))
        })
    }

    /// Starts a sandbox from scratch; with `dry_run`, its child stops just before `execve`.
    /// Makes `cgroup`, of something made ahead, `spec`'s: its limits, under its namespace's
    /// cgroup (see `Cgroups::adopt`).
    fn claim_cgroup(
        &self,
        cgroup: &mut SandboxCgroup,
        spec: &SandboxSpec,
    ) -> Result<(), SandboxError> {
        self.cgroups
            .adopt(cgroup, spec.namespace.as_deref(), &spec.id, limits_of(spec))
    }

    /// Remembers the namespace of `spec`, starting now, as the one to make things ahead in.
    fn note_cold_start(&self, spec: &SandboxSpec) {
        let Some(namespace) = spec.namespace.as_deref() else {
            return;
        };
        let mut tenant = self.ahead_tenant.lock().unwrap_or_else(|e| e.into_inner());
        if tenant.as_deref() != Some(namespace) {
            *tenant = Some(namespace.to_string());
        }
    }

    /// A sandbox made ahead for a pool with `limits` until it is claimed, under the cgroup of
    /// the latest cold start's namespace when it is there (see `Cgroups::create_ahead`).
    fn make_ahead(
        &self,
        tmp_mb: u32,
        flavor: Flavor,
        limits: Limits,
    ) -> Result<ReadySandbox, SandboxError> {
        let tenant = self
            .ahead_tenant
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.make_ready_with(tmp_mb, flavor, limits, Under::Ahead(tenant.as_deref()))
    }

    /// Makes nothing ahead in namespace `namespace` any more (it is being removed): what a
    /// pool starts making from now on is made elsewhere.
    fn forget_tenant(&self, namespace: &str) {
        let mut tenant = self.ahead_tenant.lock().unwrap_or_else(|e| e.into_inner());
        if tenant.as_deref() == Some(namespace) {
            *tenant = None;
        }
    }

    /// The cgroup a process forked into `ready` (made ahead for a zygote's child) joins for
    /// `spec`: a new one `id` under `spec`'s namespace (returned; `ready`'s own goes with the
    /// process made ahead), or, when `ready` was made under that namespace's cgroup or outside
    /// every namespace, `ready`'s own with `spec`'s limits (`None`). A zygote's child joins it
    /// on its own, so nothing has to move.
    fn cgroup_to_join(
        &self,
        ready: &mut ReadySandbox,
        spec: &SandboxSpec,
        id: &str,
    ) -> Result<Option<SandboxCgroup>, SandboxError> {
        match spec.namespace.as_deref() {
            Some(tenant) if !ready.cgroup.in_namespace(tenant) => self
                .cgroups
                .create(Some(tenant), id, limits_of(spec))
                .map(Some),
            _ => ready.cgroup.set_limits(limits_of(spec)).map(|()| None),
        }
    }

    fn launch(&self, spec: &SandboxSpec, dry_run: bool) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let layers = self.layers;
        let workdir = match layers.root {
            true => CString::new(TASK_ROOT).expect("no NUL"),
            false => mounts::c_path(&spec.code_dir)?,
        };
        let argv = CStrings::new(spec.argv.iter().cloned())?;
        let envp = CStrings::new(spec.environment(&runtime_api_address()))?;
        let (output, output_w) = output_pipe()?;
        let output_w = above_stdio(output_w)?;
        let exec = Exec {
            output: output_w.as_raw_fd(),
            argv: &argv.pointers,
            envp: &envp.pointers,
            workdir: &workdir,
        };
        let code = layers
            .root
            .then_some((spec.code_dir.as_path(), spec.runtime_dir.as_path()));
        let mut child = self.clone_child(
            Under::Namespace(spec.namespace.as_deref()),
            &spec.id,
            limits_of(spec),
            code,
            spec.tmp_mb,
            Program::Run { exec, dry_run },
        )?;
        drop(output_w);
        let listener = child.await_setup(Until::Exec, &spec.argv[0])?;
        let sandbox = Sandbox::new(
            spec.id.clone(),
            listener,
            output,
            child.process,
            child.cgroup.map_or(Isolated::NoCgroup, Isolated::Full),
            Startup::since(Birth::Exec, started),
        );
        Ok(sandbox)
    }

    /// Makes a cgroup, prepares what the child needs and clones it; the child runs its
    /// program, or sets up and waits for one (a sandbox made ahead).
    fn clone_child(
        &self,
        under: Under<'_>,
        id: &str,
        limits: Limits,
        code: Option<(&Path, &Path)>,
        tmp_mb: u32,
        program: Program<'_>,
    ) -> Result<Cloned, SandboxError> {
        let (exec, dry_run, own_pid) = match program {
            Program::Run { exec, dry_run } => (Some(exec), dry_run, true),
            Program::Wait(flavor) => (None, false, flavor == Flavor::Exec),
        };
        let layers = self.layers;
        let cgroup = match layers.cgroup {
            true => Some(match under {
                Under::Namespace(tenant) => self.cgroups.create(tenant, id, limits)?,
                Under::Ahead(tenant) => self.cgroups.create_ahead(tenant, id, limits)?,
            }),
            false => None,
        };
        let procs: Vec<OwnedFd> = match &cgroup {
            Some(cgroup) => cgroup
                .procs_files()?
                .into_iter()
                .map(|f| above_stdio(f.into()))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let cgroup_dir: Option<File> = match &cgroup {
            Some(cgroup) => cgroup.dir_file()?,
            None => None,
        };
        let mounts = match layers.root {
            true => mounts::plan(&self.rootfs, &self.new_root, code, tmp_mb, own_pid)?,
            false => Vec::new(),
        };
        let (parent_end, child_end) = handshake::pair()?;
        let child_end = above_stdio(child_end)?;
        let fprog = self.seccomp.fprog();
        let net = self.netpool.as_ref().and_then(NetPool::take);
        let procs_raw: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();
        let plan = ChildPlan {
            channel: ChildChannel(child_end.as_raw_fd()),
            join_cgroup: &procs_raw,
            netns: net.as_ref().map(|n| n.netns.as_raw_fd()),
            mounts: &mounts,
            seccomp: &fprog,
            layers,
            exec,
            dry_run,
            own_pid_namespace: own_pid,
        };
        let child = spawn::clone_sandbox(&plan, cgroup_dir.as_ref().map(AsRawFd::as_raw_fd))?;
        // The child has its copies; ours must go, or end-of-file would never come.
        drop((child_end, procs, cgroup_dir));
        Ok(Cloned {
            process: Process::new(child, false),
            channel: parent_end,
            listener: net.map(|n| n.listener),
            cgroup,
            mounts,
        })
    }

    /// A sandbox with outbound network: made like one ahead, given its user-mode network
    /// while it waits, then started.
    fn spawn_networked(&self, spec: &SandboxSpec) -> Result<Sandbox, SandboxError> {
        let Some(slirp) = &self.slirp else {
            return Err(SandboxError::Network(NO_SLIRP.into()));
        };
        let ready = self.make_ready(spec.tmp_mb, Flavor::Exec, spec.namespace.as_deref())?;
        let network = crate::network::Slirp::attach(slirp, ready.process.pid())?;
        Ok(self.start_ready(ready, spec, true)?.with_network(network))
    }

    /// A sandbox set up and waiting for its program (as one made ahead, see `ready.rs`) for a
    /// cold start under way in namespace `tenant` (`None`: the host's own cgroup).
    fn make_ready(
        &self,
        tmp_mb: u32,
        flavor: Flavor,
        tenant: Option<&str>,
    ) -> Result<ReadySandbox, SandboxError> {
        self.make_ready_with(tmp_mb, flavor, WAITING_LIMITS, Under::Namespace(tenant))
    }

    /// A sandbox set up and waiting for its program, with `limits` until it is claimed.
    fn make_ready_with(
        &self,
        tmp_mb: u32,
        flavor: Flavor,
        limits: Limits,
        under: Under<'_>,
    ) -> Result<ReadySandbox, SandboxError> {
        let mut child = self.clone_child(
            under,
            &ahead_id(),
            limits,
            None,
            tmp_mb,
            Program::Wait(flavor),
        )?;
        let listener = child.await_setup(Until::Ready, "")?;
        Ok(ReadySandbox {
            process: child.process,
            channel: child.channel,
            listener,
            cgroup: child.cgroup.take().ok_or(SandboxError::SetupVanished)?,
            tmp_mb,
        })
    }

    /// Starts `spec` forked from `zygote` into `ready` (made ahead for a zygote's child): see
    /// `zygote.rs`. The function's environment is sent only once the runtime reports that it
    /// is inside the finished sandbox (unprivileged, seccomp on).
    fn start_forked(
        &self,
        zygote: &Zygote,
        mut ready: ReadySandbox,
        spec: &SandboxSpec,
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        attach_code(&ready, spec)?;
        let cgroup = self.cgroup_to_join(&mut ready, spec, &spec.id)?;
        let forked = self.fork_runtime(zygote, ready, cgroup, false)?;
        claim_forked(forked, spec, Birth::Zygote, started)
    }

    /// Forks a runtime from `zygote` into `ready` (made ahead for a zygote's child, its code
    /// and runtime directories attached), and waits until it is in its finished sandbox,
    /// waiting for its function's environment.
    /// `cgroup`: the one the runtime joins instead of `ready`'s (see
    /// [`FullHost::cgroup_to_join`]); `ahead`: no cold start waits for it (it rehearses one,
    /// see [`Zygote::fork`]).
    fn fork_runtime(
        &self,
        zygote: &Zygote,
        ready: ReadySandbox,
        cgroup: Option<SandboxCgroup>,
        ahead: bool,
    ) -> Result<Forked, SandboxError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let (output, output_w) = output_pipe()?;
        let (report, theirs) = handshake::seqpacket_pair()?;
        let procs = cgroup.as_ref().unwrap_or(&ready.cgroup).procs_files()?;
        let procs_raw: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();
        zygote.fork(
            ready.process.pidfd().as_raw_fd(),
            theirs.as_raw_fd(),
            output_w.as_raw_fd(),
            &procs_raw,
            ahead,
        )?;
        drop((theirs, output_w, procs));
        let ReadySandbox {
            process: holder,
            channel,
            listener,
            cgroup: made_ahead,
            tmp_mb,
        } = ready;
        let (cgroup, replaced) = match cgroup {
            Some(cgroup) => (cgroup, Some(made_ahead)),
            None => (made_ahead, None),
        };
        let forked = collect_runtime(report, deadline, listener, cgroup, output, tmp_mb);
        // The runtime holds the sandbox's namespaces now (or failed): the process made ahead
        // goes, then the cgroup it was alone in, if the runtime joined another.
        drop((holder, channel, replaced));
        forked
    }

    /// A Python runtime forked ahead from `zygote`, for the pool: in a sandbox made ahead with
    /// `runtime_dir` at `/var/runtime` and an empty `/var/task`, waiting for a cold start.
    fn fork_runtime_ahead(
        &self,
        zygote: &Zygote,
        runtime_dir: &Path,
        tmp_mb: u32,
    ) -> Result<Forked, SandboxError> {
        let ready = self.make_ahead(tmp_mb, Flavor::ForZygote, WAITING_LIMITS)?;
        let empty = detached_read_only(&self.empty_dir)?;
        let runtime = detached_read_only(runtime_dir)?;
        mounts::attach_inside(
            ready.process.pidfd(),
            &[(empty, c"/var/task"), (runtime, c"/var/runtime")],
        )?;
        self.fork_runtime(zygote, ready, None, true)
    }

    /// Starts `spec` in `forked`, a Python runtime forked ahead: the function's limits, its
    /// code attached over the empty `/var/task`, its environment.
    fn start_forked_ahead(
        &self,
        mut forked: Forked,
        spec: &SandboxSpec,
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        self.claim_cgroup(&mut forked.cgroup, spec)?;
        let code = detached_read_only(&spec.code_dir)?;
        mounts::attach_inside(forked.process.pidfd(), &[(code, c"/var/task")])?;
        claim_forked(forked, spec, Birth::Zygote, started)
    }

    /// Builds the package zygote of `spec`'s function from the base `zygote`, its root mapped
    /// to `uid` (see `package.rs`); [`Built::Unwanted`] when the function needs none.
    fn build_package_zygote(
        self: &Arc<Self>,
        zygote: &Zygote,
        spec: &SandboxSpec,
        uid: PackageUid,
    ) -> Result<Built, SandboxError> {
        if !crate::package::ships_packages(&spec.code_dir) {
            return Ok(Built::Unwanted("its code ships no packages".into()));
        }
        let deadline = Instant::now() + PACKAGE_BUILD_TIMEOUT;
        let mut ready =
            self.make_ready(spec.tmp_mb, Flavor::ForZygote, spec.namespace.as_deref())?;
        attach_code(&ready, spec)?;
        // Its namespace's cgroup: the memory its imports hold is the namespace's.
        let own = self.cgroup_to_join(&mut ready, spec, &ahead_id())?;
        let (control, theirs) = handshake::seqpacket_pair()?;
        let procs = own.as_ref().unwrap_or(&ready.cgroup).procs_files()?;
        let procs_raw: Vec<RawFd> = procs.iter().map(AsRawFd::as_raw_fd).collect();
        zygote.build_package_zygote(
            ready.process.pidfd().as_raw_fd(),
            theirs.as_raw_fd(),
            &procs_raw,
        )?;
        drop((theirs, procs));
        let mut buf = [0u8; 256];
        let pid = reported_pid(b'U', crate::zygote::report(&control, &mut buf, deadline)?)?;
        let process = Process::adopt(pid)?;
        crate::package::map_ids(pid, uid.get())?;
        crate::zygote::send(&control, b"M", &[])?;
        // It is in the sandbox's namespaces now: the process made ahead goes.
        let ReadySandbox {
            process: holder,
            channel,
            cgroup: made_ahead,
            ..
        } = ready;
        let (cgroup, replaced) = match own {
            Some(own) => (own, Some(made_ahead)),
            None => (made_ahead, None),
        };
        drop((holder, channel, replaced));
        await_entered(&control, deadline)?;
        // Its imports see the function's environment, but no sandbox's credentials.
        let envp = spec.environment(&runtime_api_address());
        let envp: Vec<String> = envp
            .into_iter()
            .filter(|kv| {
                let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
                !crate::package::SESSION_CREDENTIALS.contains(&key)
            })
            .collect();
        crate::zygote::send(&control, envp.join("\0").as_bytes(), &[])?;
        match crate::zygote::report(&control, &mut buf, deadline)? {
            [b'R', modules @ ..] => {
                let control = Arc::new(PackageControl(control));
                let birthplace = Birthplace {
                    tenant: spec.namespace.clone(),
                    limits: limits_of(spec),
                };
                let maker = Arc::new(MakePackageChild {
                    full: Arc::clone(self),
                    control: Arc::clone(&control),
                    birthplace: birthplace.clone(),
                });
                let ahead = ReadyPool::start(
                    "lambent-pkg-ahead",
                    PACKAGE_AHEAD_MAX,
                    maker,
                    &self.ahead_budget,
                )
                .map_err(|e| tracing::warn!("no runtimes forked ahead from a package zygote: {e}"))
                .ok();
                if let Some(ahead) = &ahead {
                    ahead.prime(spec.tmp_mb);
                }
                Ok(Built::Zygote(Box::new(PackageZygote {
                    ahead,
                    process,
                    control,
                    cgroup,
                    birthplace,
                    _uid: uid,
                    modules: std::str::from_utf8(modules)
                        .ok()
                        .and_then(|m| m.parse().ok())
                        .unwrap_or(0),
                })))
            }
            [b'N', why @ ..] => Ok(Built::Unwanted(String::from_utf8_lossy(why).into())),
            _ => Err(SandboxError::SetupVanished),
        }
    }

    /// A runtime forked from `package`, its function's package zygote, waiting for its
    /// environment: the child made a fresh sandbox in the zygote's user namespace, joined the
    /// cgroup `id` made for it here where `birthplace` says, and passed its runtime API
    /// listener.
    fn fork_from_package(
        &self,
        package: &PackageControl,
        id: &str,
        birthplace: &Birthplace,
        tmp_mb: u32,
    ) -> Result<Forked, SandboxError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let cgroup = self
            .cgroups
            .create(birthplace.tenant.as_deref(), id, birthplace.limits)?;
        let procs = cgroup.procs_files()?;
        let (output, output_w) = output_pipe()?;
        let (report, theirs) = handshake::seqpacket_pair()?;
        package.fork(tmp_mb, &theirs, &output_w, &procs)?;
        drop((theirs, output_w, procs));
        let mut buf = [0u8; 128];
        let listener = match crate::zygote::report_passing(&report, &mut buf, deadline)? {
            (b"L", Some(fd)) => TcpListener::from(fd),
            _ => return Err(SandboxError::SetupVanished),
        };
        collect_runtime(report, deadline, listener, cgroup, output, tmp_mb)
    }

    /// Starts `spec` in a sandbox made ahead, and with `wait_for_exec` returns once its
    /// program runs; without, once it has its program (its set-up's end is then
    /// [`Sandbox::setup_failure`]'s to tell). An `InvalidInput` i/o error means its program
    /// does not fit the message: start it from scratch instead.
    fn start_ready(
        &self,
        mut ready: ReadySandbox,
        spec: &SandboxSpec,
        wait_for_exec: bool,
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        self.claim_cgroup(&mut ready.cgroup, spec)?;
        let envp = spec.environment(&runtime_api_address());
        let code = detached_read_only(&spec.code_dir)?;
        let stdin = File::open("/dev/null")?.into();
        let (child, cgroup) = ready_child(ready);
        let (mut child, output) =
            self.hand_program(child, &spec.argv, &envp, code, &spec.runtime_dir, stdin)?;
        let (listener, pending) = match wait_for_exec {
            true => (child.await_setup(Until::Exec, &spec.argv[0])?, None),
            false => {
                let listener = child.listener.take().ok_or(SandboxError::SetupVanished)?;
                listener.set_nonblocking(true)?;
                let pending = PendingExec {
                    channel: child.channel,
                    program: spec.argv[0].clone(),
                };
                (listener, Some(pending))
            }
        };
        let sandbox = Sandbox::new(
            spec.id.clone(),
            listener,
            output,
            child.process,
            Isolated::Full(cgroup),
            Startup::since(Birth::Ahead, started),
        );
        Ok(sandbox.with_pending_exec(pending))
    }

    /// Hands `ready` its program (`argv`, `envp`, the code mount, the runtime directory and
    /// stdin) and waits for its `execve`: the process, its listener, cgroup and output.
    fn exec_in(
        &self,
        ready: ReadySandbox,
        argv: &[String],
        envp: &[String],
        code: OwnedFd,
        runtime_dir: &Path,
        stdin: OwnedFd,
    ) -> Result<(Process, TcpListener, SandboxCgroup, OwnedFd), SandboxError> {
        let (child, cgroup) = ready_child(ready);
        let (mut child, output) = self.hand_program(child, argv, envp, code, runtime_dir, stdin)?;
        let listener = child.await_setup(Until::Exec, &argv[0])?;
        Ok((child.process, listener, cgroup, output))
    }

    /// Hands a sandbox made ahead its program: the child, and the read end of its output.
    fn hand_program(
        &self,
        child: Cloned,
        argv: &[String],
        envp: &[String],
        code: OwnedFd,
        runtime_dir: &Path,
        stdin: OwnedFd,
    ) -> Result<(Cloned, OwnedFd), SandboxError> {
        if let Some(bad) = argv.iter().chain(envp).find(|s| s.contains('\0')) {
            return Err(SandboxError::InvalidSpec(format!("NUL byte in {bad:?}")));
        }
        let runtime = detached_read_only(runtime_dir)?;
        let (output, output_w) = output_pipe()?;
        child.channel.send_program(
            argv,
            envp,
            [
                code.as_raw_fd(),
                runtime.as_raw_fd(),
                output_w.as_raw_fd(),
                stdin.as_raw_fd(),
            ],
        )?;
        Ok((child, output))
    }

    /// A Node.js stem cell: a sandbox made ahead running `node` on the runtime client, which
    /// waits for its function's environment on stdin (`stem.rs`); `/var/task` holds an empty
    /// directory until the claim attaches the code over it.
    fn make_stem_cell(
        &self,
        program: &crate::stem::StemProgram,
        tmp_mb: u32,
    ) -> Result<crate::stem::StemCell, SandboxError> {
        let ready = self.make_ahead(tmp_mb, Flavor::Exec, crate::stem::LIMITS)?;
        let envp = program.environment(&runtime_api_address());
        let empty = detached_read_only(&self.empty_dir)?;
        let (assignment, assignment_runtime) = assignment_pair()?;
        let (process, listener, cgroup, output) = self.exec_in(
            ready,
            &program.argv,
            &envp,
            empty,
            &program.runtime_dir,
            assignment_runtime,
        )?;
        Ok(crate::stem::StemCell {
            process,
            listener,
            cgroup,
            output,
            assignment,
            tmp_mb,
            waiting: false,
        })
    }

    /// Starts `spec` by claiming `cell`: the function's limits, its code attached over the
    /// empty `/var/task`, its environment written to the waiting runtime.
    fn start_stem_cell(
        &self,
        cell: crate::stem::StemCell,
        spec: &SandboxSpec,
    ) -> Result<Sandbox, SandboxError> {
        let started = Instant::now();
        let crate::stem::StemCell {
            process,
            listener,
            mut cgroup,
            output,
            assignment,
            ..
        } = cell;
        self.claim_cgroup(&mut cgroup, spec)?;
        let code = detached_read_only(&spec.code_dir)?;
        mounts::attach_inside(process.pidfd(), &[(code, c"/var/task")])?;
        let envp = spec.environment(&runtime_api_address());
        let startup = Startup::since(Birth::StemCell, started); // before the hand-off
        let mut assignment = std::os::unix::net::UnixStream::from(assignment);
        std::io::Write::write_all(&mut assignment, envp.join("\0").as_bytes())?;
        assignment.shutdown(std::net::Shutdown::Write)?;
        drop(assignment);
        Ok(Sandbox::new(
            spec.id.clone(),
            listener,
            output,
            process,
            Isolated::Full(cgroup),
            startup,
        ))
    }
}

/// Most runtimes one package zygote keeps forked ahead.
const PACKAGE_AHEAD_MAX: usize = 4;

/// Forks runtimes ahead from one package zygote, for its pool's thread.
struct MakePackageChild {
    full: Arc<FullHost>,
    control: Arc<PackageControl>,
    /// The function's namespace and limits.
    birthplace: Birthplace,
}

impl crate::ready::Maker<Forked> for MakePackageChild {
    fn make(&self, tmp_mb: u32) -> Result<Forked, SandboxError> {
        self.full
            .fork_from_package(&self.control, &ahead_id(), &self.birthplace, tmp_mb)
    }
}

/// Forks Python runtimes ahead from the base zygote, for its pool's thread.
struct MakeForked {
    full: Arc<FullHost>,
    zygote: Arc<Zygote>,
    runtime_dir: PathBuf,
}

impl crate::ready::Maker<Forked> for MakeForked {
    fn make(&self, tmp_mb: u32) -> Result<Forked, SandboxError> {
        self.full
            .fork_runtime_ahead(&self.zygote, &self.runtime_dir, tmp_mb)
    }
}

/// Where a new sandbox's cgroup is made.
#[derive(Debug, Clone, Copy)]
enum Under<'a> {
    /// Under this namespace's cgroup, made when missing (`None`: the host's own): for a cold
    /// start under way.
    Namespace(Option<&'a str>),
    /// Made ahead for a pool: under this namespace's cgroup only if it is there (see
    /// `Cgroups::create_ahead`).
    Ahead(Option<&'a str>),
}

/// The limits of a sandbox waiting for its program, until its claim sets its function's.
const WAITING_LIMITS: Limits = Limits {
    memory_mb: 64,
    pids_max: 16,
    background: true,
};

/// A new cgroup name for something made ahead of its cold start (a claimed one keeps it).
fn ahead_id() -> String {
    static MADE: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}-{}",
        crate::MADE_AHEAD_CGROUP_PREFIX,
        std::process::id(),
        MADE.fetch_add(1, Ordering::Relaxed)
    )
}

/// How long a package zygote may take to import its function's dependencies.
const PACKAGE_BUILD_TIMEOUT: Duration = Duration::from_secs(60);

/// Attaches `spec`'s code and the runtime directory inside `ready` (made ahead for a zygote's
/// child), read-only.
fn attach_code(ready: &ReadySandbox, spec: &SandboxSpec) -> Result<(), SandboxError> {
    let code = detached_read_only(&spec.code_dir)?;
    let runtime = detached_read_only(&spec.runtime_dir)?;
    mounts::attach_inside(
        ready.process.pidfd(),
        &[(code, c"/var/task"), (runtime, c"/var/runtime")],
    )
}

/// The pid in a zygote's report `<tag><pid>`.
fn reported_pid(tag: u8, message: &[u8]) -> Result<i32, SandboxError> {
    match message {
        [t, pid @ ..] if *t == tag => std::str::from_utf8(pid)
            .ok()
            .and_then(|p| p.parse::<i32>().ok())
            .ok_or(SandboxError::SetupVanished),
        _ => Err(SandboxError::SetupVanished),
    }
}

/// The runtime a zygote's child reports it forked (`P<pid>` on `report`), once the runtime says
/// it entered its sandbox: a [`Forked`] waiting for its environment.
fn collect_runtime(
    report: OwnedFd,
    deadline: Instant,
    listener: TcpListener,
    cgroup: SandboxCgroup,
    output: OwnedFd,
    tmp_mb: u32,
) -> Result<Forked, SandboxError> {
    let process = await_forked(&report, &output, deadline)?;
    Ok(Forked {
        process,
        listener,
        cgroup,
        output,
        report,
        tmp_mb,
    })
}

/// The two reports of a forked runtime, in either order: its parent's `P<pid>` and its own `E`
/// (it entered its sandbox). The runtime runs as soon as it is forked, and on a loaded machine
/// it can say `E` before its parent, preempted after the fork, says `P`: taking them in a
/// fixed order failed such a cold start ("exited during setup") and sent it to `execve`.
fn await_forked(
    report: &OwnedFd,
    output: &OwnedFd,
    deadline: Instant,
) -> Result<Process, SandboxError> {
    let mut buf = [0u8; 128];
    let (mut process, mut entered) = (None, false);
    while process.is_none() || !entered {
        let message = match crate::zygote::report(report, &mut buf, deadline) {
            Err(SandboxError::SetupVanished) => {
                return Err(match &process {
                    Some(process) => ended_during_setup(process, Some(output)),
                    None => SandboxError::SetupVanished,
                })
            }
            other => other?,
        };
        match message {
            b"E" if !entered => entered = true,
            message if process.is_none() => {
                process = Some(Process::adopt(reported_pid(b'P', message)?)?);
            }
            _ => return Err(SandboxError::SetupVanished),
        }
    }
    Ok(process.expect("reported"))
}

/// What a sandbox's process that closed its end of the set-up channel (or a forked runtime,
/// its report socket) without a word died of: how it ended (it has, or is about to) and the
/// last of its `output`, so that the log says why. [`SandboxError::SetupVanished`] if it still
/// runs after a moment.
fn ended_during_setup(process: &Process, output: Option<&OwnedFd>) -> SandboxError {
    const KEEP: usize = 2048;
    let Some(how) = process.ended(Duration::from_millis(100)) else {
        return SandboxError::SetupVanished;
    };
    // What is left in the pipe (at most its 64 KiB: every writer is gone); the read end is
    // non-blocking.
    let mut written = Vec::new();
    if let Some(Ok(output)) = output.map(OwnedFd::try_clone) {
        // An error keeps what was read before it.
        let _ = std::io::Read::read_to_end(&mut File::from(output), &mut written);
    }
    let tail = &written[written.len().saturating_sub(KEEP)..];
    let output = String::from_utf8_lossy(tail).trim().to_string();
    SandboxError::EndedDuringSetup {
        how,
        output: if output.is_empty() {
            "no output".into()
        } else {
            output
        },
    }
}

/// Waits for a package zygote to say it entered its sandbox (`E`).
fn await_entered(socket: &OwnedFd, deadline: Instant) -> Result<(), SandboxError> {
    let mut buf = [0u8; 128];
    match crate::zygote::report(socket, &mut buf, deadline)? {
        b"E" => Ok(()),
        _ => Err(SandboxError::SetupVanished),
    }
}

/// Sends a forked runtime (or package zygote) that entered its sandbox `spec`'s environment.
fn send_environment(socket: &OwnedFd, spec: &SandboxSpec) -> Result<(), SandboxError> {
    let envp = spec.environment(&runtime_api_address());
    crate::zygote::send(socket, envp.join("\0").as_bytes(), &[])?;
    Ok(())
}

/// Starts `spec` in `forked`, which waits for its environment: the sandbox, born `birth`.
fn claim_forked(
    forked: Forked,
    spec: &SandboxSpec,
    birth: Birth,
    started: Instant,
) -> Result<Sandbox, SandboxError> {
    // The sandbox's part ends as the runtime is handed its function: measured before the
    // hand-off, so that this thread being descheduled after it never counts the runtime's time.
    let startup = Startup::since(birth, started);
    send_environment(&forked.report, spec)?;
    Ok(Sandbox::new(
        spec.id.clone(),
        forked.listener,
        forked.output,
        forked.process,
        Isolated::Full(forked.cgroup),
        startup,
    ))
}

fn limits_of(spec: &SandboxSpec) -> Limits {
    Limits {
        memory_mb: spec.memory_mb,
        pids_max: spec.pids_max,
        background: false,
    }
}

/// A stem cell's assignment socket: the host's end, and the runtime's (its stdin). A stream
/// pair, so that the runtime reads its environment up to the host's shutdown, and says on the
/// same descriptor when it waits (`stem.rs`).
fn assignment_pair() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| SandboxError::Io(e.into()))
}

/// A detached, read-only, nosuid, nodev copy of the mount at `path` (`open_tree`), for a
/// sandbox made ahead to attach inside its own mount namespace.
fn detached_read_only(path: &Path) -> Result<OwnedFd, SandboxError> {
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const MOUNT_ATTR_NOSUID: u64 = 0x2;
    const MOUNT_ATTR_NODEV: u64 = 0x4;
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    let c = mounts::c_path(path)?;
    // SAFETY: open_tree on a NUL-terminated path; returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            c.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `fd` is the descriptor open_tree just returned.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr on our detached mount with a live, correctly sized attr struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(fd)
}

/// What the parent holds of a child it cloned, until set-up ends.
struct Cloned {
    process: Process,
    channel: ParentEnd,
    /// The runtime API listener, when its network namespace was made ahead.
    listener: Option<TcpListener>,
    cgroup: Option<SandboxCgroup>,
    /// The child's mount plan, to name a failing mount.
    mounts: Vec<crate::mounts::MountOp>,
}

/// A sandbox made ahead as a child whose set-up goes on, and its cgroup.
fn ready_child(ready: ReadySandbox) -> (Cloned, SandboxCgroup) {
    let ReadySandbox {
        process,
        channel,
        listener,
        cgroup,
        ..
    } = ready;
    let child = Cloned {
        process,
        channel,
        listener: Some(listener),
        cgroup: None,
        mounts: Vec::new(),
    };
    (child, cgroup)
}

/// The end of set-up to wait for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Until {
    /// The program runs (`Exec`, then end-of-file: `execve` closed the child's end).
    Exec,
    /// A sandbox made ahead says it waits for its program.
    Ready,
}

impl Cloned {
    /// Waits on the handshake until `until`, collecting the runtime API listener; a failed
    /// step becomes [`SandboxError::Setup`] naming it.
    /// `program` (`argv[0]`) names what failed to exec.
    fn await_setup(&mut self, until: Until, program: &str) -> Result<TcpListener, SandboxError> {
        let deadline = Instant::now() + SETUP_TIMEOUT;
        let mut listener = None;
        let mut executing = false;
        loop {
            match self.channel.recv(deadline)? {
                Some(Message::Listener(fd)) => listener = Some(TcpListener::from(fd)),
                Some(Message::Failed { step, index, errno }) => {
                    return Err(setup_failed(step, index, errno, &self.mounts, program));
                }
                Some(Message::Ready) if until == Until::Ready => break,
                Some(Message::Ready) => return Err(SandboxError::SetupVanished),
                // End-of-file (or the exec's failure) follows.
                Some(Message::Exec) => executing = true,
                None if until == Until::Exec && executing => break,
                // Killed during set-up (a sandbox made ahead, say, after its claim).
                None => return Err(ended_during_setup(&self.process, None)),
            }
        }
        let listener = listener
            .or_else(|| self.listener.take())
            .ok_or(SandboxError::SetupVanished)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

/// The error of a set-up step the child reported failing: the step, what it acted on (the
/// mount of `mounts` at `index`, the `program` it could not exec), the errno.
fn setup_failed(
    step: SetupStep,
    index: u32,
    errno: nix::errno::Errno,
    mounts: &[crate::mounts::MountOp],
    program: &str,
) -> SandboxError {
    let detail = match step {
        SetupStep::Mount => mounts
            .get(index as usize)
            .map(|op| format!(" ({op})"))
            .unwrap_or_default(),
        SetupStep::Exec => format!(" '{program}'"),
        SetupStep::Chdir => format!(
            " {TASK_ROOT} (is the code directory readable by uid {}?)",
            crate::SANDBOX_UID
        ),
        _ => String::new(),
    };
    SandboxError::Setup {
        step,
        detail,
        errno,
    }
}

/// A sandbox made ahead that was handed its program without waiting for its `execve`
/// ([`Host::claim_waiting`]): the handshake, which says why, should it end before its
/// runtime is ready.
#[derive(Debug)]
pub(crate) struct PendingExec {
    channel: ParentEnd,
    /// `argv[0]`, to name what failed to exec.
    program: String,
}

impl PendingExec {
    /// Why `process` (the sandbox's) ended before its program ran: the step that failed, or
    /// [`SandboxError::EndedDuringSetup`] when it ended without a failed step (killed during
    /// its set-up). `None` if its program ran (or it has not ended yet).
    pub(crate) fn failure(self, process: &Process) -> Option<SandboxError> {
        let mut executing = false;
        loop {
            match self.channel.recv(Instant::now()) {
                Ok(Some(Message::Failed { step, index, errno })) => {
                    return Some(setup_failed(step, index, errno, &[], &self.program));
                }
                Ok(Some(Message::Exec)) => executing = true,
                Ok(Some(_)) => {}
                Ok(None) if !executing => return Some(ended_during_setup(process, None)),
                // Its program ran, or it is still running: nothing to say.
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// NUL-terminated strings and the NULL-terminated pointer array `execve` takes.
pub(crate) struct CStrings {
    _strings: Vec<CString>,
    pub pointers: Vec<*const libc::c_char>,
}

impl CStrings {
    pub(crate) fn new(items: impl IntoIterator<Item = String>) -> Result<CStrings, SandboxError> {
        let strings = items
            .into_iter()
            .map(|s| CString::new(s).map_err(|e| SandboxError::InvalidSpec(format!("{e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Ok(CStrings {
            _strings: strings,
            pointers,
        })
    }
}

/// The output pipe: (read end, `O_NONBLOCK | O_CLOEXEC`; write end, `O_CLOEXEC`).
pub(crate) fn output_pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: fcntl on a descriptor we own.
    let rc = unsafe {
        let flags = libc::fcntl(read.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(read.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK)
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok((read, write))
}

/// Moves a descriptor the child will use to 3 or above, so that `dup2` onto 0-2 never meets
/// itself (a server started with closed standard descriptors could hand out 0-2).
fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, SandboxError> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one we then own.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: `moved` is a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_layout_is_the_host_paths_and_full_is_var() {
        let tmp = tempfile::tempdir().unwrap();
        let host = Host::detect(HostOptions {
            isolation: Isolation::Insecure,
            state_dir: tmp.path().into(),
            layers: Layers::ALL,
            sdk_dir: None,
        })
        .unwrap();
        assert_eq!(host.isolation(), Isolation::Insecure);
        assert_eq!(host.cgroup_version(), None);
        let layout = host.layout(Path::new("/data/code"), Path::new("/data/rt"));
        assert_eq!(layout.task_root, Path::new("/data/code"));
        assert_eq!(layout.runtime_dir, Path::new("/data/rt"));
    }

    #[test]
    fn cstrings_are_null_terminated() {
        let c = CStrings::new(["a".to_string(), "bc".to_string()]).unwrap();
        assert_eq!(c.pointers.len(), 3);
        assert!(c.pointers[2].is_null());
        assert!(CStrings::new(["a\0".to_string()]).is_err());
    }

    #[test]
    fn output_pipe_read_end_is_nonblocking_and_cloexec() {
        let (read, write) = output_pipe().unwrap();
        // SAFETY: fcntl queries on descriptors we own.
        unsafe {
            assert!(libc::fcntl(read.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK != 0);
            assert!(libc::fcntl(read.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0);
            assert!(libc::fcntl(write.as_raw_fd(), libc::F_GETFD) & libc::FD_CLOEXEC != 0);
        }
    }

    /// A process writing to an output pipe as a forked runtime does, adopted by pid.
    #[allow(clippy::zombie_processes)] // the adopted `Process` reaps it
    fn adopted(script: &str) -> (Process, OwnedFd) {
        let (read, write) = output_pipe().unwrap();
        let child = std::process::Command::new("sh")
            .args(["-c", script])
            .stdout(std::process::Stdio::null())
            .stderr(File::from(write))
            .spawn()
            .unwrap();
        (Process::adopt(child.id() as i32).unwrap(), read)
    }

    #[test]
    fn a_forked_runtime_may_say_it_entered_before_its_parent_reports_its_pid() {
        let deadline = Instant::now() + Duration::from_secs(5);
        for order in [["P", "E"], ["E", "P"]] {
            let (process, output) = adopted("exec sleep 5");
            let (report, theirs) = handshake::seqpacket_pair().unwrap();
            for message in order {
                let message = match message {
                    "P" => format!("P{}", process.pid()),
                    m => m.to_string(),
                };
                crate::zygote::send(&theirs, message.as_bytes(), &[]).unwrap();
            }
            let forked = await_forked(&report, &output, deadline).unwrap();
            assert_eq!(forked.pid(), process.pid(), "{order:?}");
        }
        // Twice the same report, or something else, is not a forked runtime.
        let (process, output) = adopted("exec sleep 5");
        let (report, theirs) = handshake::seqpacket_pair().unwrap();
        for message in ["E", "E"] {
            crate::zygote::send(&theirs, message.as_bytes(), &[]).unwrap();
        }
        assert!(matches!(
            await_forked(&report, &output, deadline),
            Err(SandboxError::SetupVanished)
        ));
        drop(process);
    }

    /// A sandbox claimed without waiting for its `execve` says, once ended, whether it was
    /// killed before its program ran (no `Exec`), ran it, or failed to exec it.
    #[test]
    fn a_pending_exec_tells_a_kill_during_setup_from_a_program_that_ran() {
        let null = File::open("/dev/null").unwrap();
        let pending = |messages: &[&str]| {
            let (report, theirs) = handshake::pair().unwrap();
            let child = ChildChannel(theirs.as_raw_fd());
            for message in messages {
                match *message {
                    "exec" => child.send_exec().unwrap(),
                    "failed" => child.send_failure(SetupStep::Exec, 0, libc::ENOEXEC),
                    // Handed its program, which it never took: its end closes unread (a reset).
                    _ => report
                        .send_program(&["/var/task/bootstrap".into()], &[], [null.as_raw_fd(); 4])
                        .unwrap(),
                }
            }
            drop(theirs);
            PendingExec {
                channel: report,
                program: "/var/task/bootstrap".into(),
            }
        };
        let (killed, _output) = adopted("kill -9 $$");
        match pending(&[]).failure(&killed) {
            Some(e @ SandboxError::EndedDuringSetup { .. }) => {
                assert!(e.ended_during_setup());
                assert!(e.to_string().contains("killed by signal 9"), "{e}");
            }
            other => panic!("expected a kill during set-up, got {other:?}"),
        }
        let unread = pending(&["program"]).failure(&killed);
        assert!(
            unread
                .as_ref()
                .is_some_and(SandboxError::ended_during_setup),
            "killed before it took its program: {unread:?}"
        );
        assert!(
            pending(&["exec"]).failure(&killed).is_none(),
            "its program ran"
        );
        match pending(&["exec", "failed"]).failure(&killed) {
            Some(e @ SandboxError::Setup { .. }) => {
                assert!(!e.ended_during_setup());
                assert_eq!(
                    e.to_string(),
                    "sandbox setup failed: could not exec '/var/task/bootstrap': ENOEXEC: Exec format error"
                );
            }
            other => panic!("expected the failed exec, got {other:?}"),
        }
    }

    #[test]
    fn a_runtime_that_ended_during_setup_is_named_with_how_and_its_output() {
        let (process, output) = adopted("echo 'Traceback: ImportError: no module x' >&2; exit 3");
        match ended_during_setup(&process, Some(&output)) {
            SandboxError::EndedDuringSetup { how, output } => {
                assert_eq!(how, "exit status 3");
                assert_eq!(output, "Traceback: ImportError: no module x");
            }
            other => panic!("{other}"),
        }
        let (process, output) = adopted("kill -9 $$");
        let e = ended_during_setup(&process, Some(&output)).to_string();
        assert_eq!(
            e,
            "sandbox exited during setup before starting the program (killed by signal 9): \
             no output"
        );
        // One still running after the patience is only "vanished".
        let (process, output) = adopted("exec sleep 5");
        assert!(matches!(
            ended_during_setup(&process, Some(&output)),
            SandboxError::SetupVanished
        ));
    }
}
