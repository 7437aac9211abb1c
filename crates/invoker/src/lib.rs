//! Runs invocations: one pool of sandboxes per function revision, warm reuse (LIFO), cold starts,
//! keep-alive reclamation, timeouts, crash and out-of-memory handling, and one activation record
//! per invocation whatever its fate. Knows nothing of HTTP or storage engines: records leave
//! through a [`RecordSink`].

mod hold;
mod limits;
mod logs;
mod metrics;
mod pool;
mod sequence;

pub use limits::{host_memory_mb, Gate, LimitShares, Throttle, BUDGET_EXHAUSTED};
pub use sequence::Lookup;

use bytes::Bytes;
use hold::CpuMeter;
use lambent_core::activation::billed_ms;
use lambent_core::{
    now_ms, Activation, ActivationStatus, ActivationTrace, ColdReason, Function, InitBreakdown,
    RuntimeKind,
};
use lambent_runtime_api::{ErrorReport, Invocation, Outcome, RuntimeApi};
use lambent_sandbox::{
    Host, Interpreter, Sandbox, SandboxError, SandboxSpec, SetupStep, Startup, TenantLimits,
    TenantRemoval,
};
use limits::{Admission, MemoryBudget, MemoryLease};
use logs::LogCapture;
use metrics::{function_labels, Metrics};
use parking_lot::Mutex;
use pool::{End, EndReason, Pool, PoolKey, Starting, Waiter};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// Where activation records go: called once per invocation, must not block.
pub type RecordSink = Arc<dyn Fn(Activation) + Send + Sync>;

/// The HTTP status in the record of an invocation whose caller went away before it ended
/// (nginx's "client closed request").
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// What the platform offers inside every sandbox: its AWS-compatible APIs, served on the
/// sandbox's own listener beside the Runtime API (`AWS_ENDPOINT_URL`), and credentials of the
/// function's namespace to sign requests to them with. Implemented by the server, which knows
/// what those APIs are; the invoker only hands each sandbox what [`SandboxPlatform::open`]
/// gives it.
pub trait SandboxPlatform: Send + Sync {
    /// For one new sandbox of `function` in `namespace`: the variables its environment gets
    /// (`AWS_ACCESS_KEY_ID`, …), and the service answering AWS requests on its listener.
    fn open(&self, namespace: &str, function: &str) -> PlatformAccess;
}

/// One sandbox's access to the platform.
pub struct PlatformAccess {
    pub env: Vec<(String, String)>,
    pub service: lambent_runtime_api::Platform,
}

/// The platform every sandbox of an invoker reaches ([`InvokerConfig::platform`]).
#[derive(Clone)]
pub struct PlatformHandle(pub Arc<dyn SandboxPlatform>);

impl std::fmt::Debug for PlatformHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlatformHandle")
    }
}

/// Settings of the invoker, fixed at start-up.
#[derive(Debug, Clone)]
pub struct InvokerConfig {
    /// How long an idle sandbox stays warm.
    pub keep_alive: Duration,
    /// How long a runtime may take to initialize before the invocation fails.
    pub init_timeout: Duration,
    /// Interpreters, as paths visible inside sandboxes (the host's `/usr` is).
    pub python: String,
    pub node: String,
    /// Host directory holding Lambent's runtime clients (`python/bootstrap.py`, `node/bootstrap.mjs`).
    pub runtime_dir: PathBuf,
    /// Region in ARNs and `AWS_REGION`.
    pub region: String,
    /// Size of each sandbox's writable /tmp.
    pub tmp_mb: u32,
    /// Concurrent invocations per namespace (reserved concurrency is carved out of it).
    pub namespace_concurrency: u32,
    /// The configured memory of all live sandboxes never exceeds this.
    pub memory_budget_mb: u64,
    /// How long an invocation may wait for memory to free up before it is throttled.
    pub queue_timeout: Duration,
    /// Freeze idle sandboxes (cgroup freezer) and thaw them for their next invocation: idle
    /// sandboxes then use no CPU at all (background threads included), at the price of a thaw
    /// on the warm path. Off by default; the benchmark measures both.
    pub freeze_idle: bool,
    /// This node's id, written into every activation record.
    pub node_id: String,
    /// The platform's AWS APIs and credentials inside each sandbox; `None`: sandboxes get
    /// neither (no `AWS_ENDPOINT_URL`, no credentials).
    pub platform: Option<PlatformHandle>,
    /// Every invocation joins its caller's trace or starts one (its record says where it sits,
    /// the runtime gets the context in `Lambda-Runtime-Trace-Id`). Off: records carry no
    /// trace and runtimes get an unsampled id of their own.
    pub tracing: bool,
    /// How many runtimes of one pool may want the CPU at once, per core: a pool whose runtimes
    /// want the CPU for a share `r` of their invocations' time grows to at most
    /// `cores × this ÷ r` sandboxes, and sheds those beyond it (`hold.rs`).
    pub runnable_per_core: f64,
}

impl Default for InvokerConfig {
    fn default() -> Self {
        InvokerConfig {
            keep_alive: Duration::from_secs(300),
            init_timeout: Duration::from_secs(10),
            python: "/usr/bin/python3".into(),
            node: "/usr/bin/node".into(),
            runtime_dir: PathBuf::from("/var/lib/lambent/runtimes"),
            region: "local".into(),
            tmp_mb: lambent_core::limits::DEFAULT_TMP_MB,
            namespace_concurrency: lambent_core::limits::MAX_CONCURRENCY,
            memory_budget_mb: host_memory_mb().map_or(4096, |mb| mb * 3 / 4),
            queue_timeout: Duration::from_secs(2),
            freeze_idle: false,
            node_id: lambent_core::LOCAL_NODE.into(),
            platform: None,
            tracing: true,
            runnable_per_core: 6.0,
        }
    }
}

/// One function revision, resolved and ready to run: what a pool is made for.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub function: Function,
    /// Host directory with the unpacked code.
    pub code_dir: PathBuf,
}

impl Deployment {
    pub fn arn(&self, region: &str) -> String {
        function_arn(
            region,
            &self.function.namespace,
            self.function.name.as_str(),
        )
    }
}

/// `arn:aws:lambda:<region>:<namespace>:function:<name>`: the namespace plays the account.
pub fn function_arn(region: &str, namespace: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{namespace}:function:{name}")
}

/// What to invoke a function with.
#[derive(Debug, Clone, Default)]
pub struct InvokeRequest {
    pub payload: Bytes,
    /// What started it: `api`, `http`, `async`, …
    pub trigger: String,
    /// Use this id for the activation (async invocations decide it when they are accepted).
    pub request_id: Option<String>,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
    /// The version or alias the caller named (Lambda's qualified invoked ARN).
    pub qualifier: Option<String>,
    /// The caller will try another node if this one is saturated: a throttle is answered at
    /// once (without waiting for sandbox memory to free up) and neither recorded nor counted
    /// (the node that finally runs or refuses it records).
    pub may_spill: bool,
    /// The trace it continues and the hop that brought it.
    pub trace: lambent_core::TraceOrigin,
}

/// The answer to an invocation: the record, and the body to return (the function's result, or
/// an error JSON `{"errorType","errorMessage",…}` when `activation.status` is not success).
#[derive(Debug, Clone)]
pub struct InvokeResult {
    pub activation: Activation,
    pub body: Bytes,
    /// The record is not sent yet: it waits for the HTTP status its caller answers with
    /// ([`awaits_http_status`]); the caller sets it and sends the record ([`Invoker::record`]).
    pub record_due: bool,
}

/// Whether `a` came through an HTTP hop whose answer is not known yet: the gateway span's
/// `http.response.status_code` is the status the gateway answers with, which it knows only
/// once it has mapped the result. Such a record is sent by the gateway, not the invoker.
pub fn awaits_http_status(a: &Activation) -> bool {
    a.trace
        .as_ref()
        .and_then(|t| t.http.as_ref())
        .is_some_and(|h| h.status.is_none())
}

/// Counts of live sandboxes, for `/metrics` and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SandboxCounts {
    pub idle: usize,
    pub busy: usize,
}

/// The invoker. Cheap to clone.
#[derive(Clone)]
pub struct Invoker {
    inner: Arc<Inner>,
}

struct Inner {
    host: Host,
    config: InvokerConfig,
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
    /// Latest revision seen per function, to tell "code updated" cold starts apart.
    revisions: Mutex<HashMap<(String, String), u64>>,
    records: Option<RecordSink>,
    reaper: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Cores this process may run on, for the pools' caps (`hold.rs`).
    cores: usize,
    admission: Arc<Admission>,
    budget: Arc<MemoryBudget>,
    metrics: Metrics,
    /// Finds the components of sequences ([`Invoker::set_lookup`]).
    lookup: std::sync::OnceLock<Lookup>,
    /// Refuses the invocations of namespaces that may not run now ([`Invoker::set_gate`]).
    gate: std::sync::OnceLock<Arc<dyn Gate>>,
}

/// A warm (or warming) sandbox with its Runtime API and log capture.
pub(crate) struct Instance {
    /// Counts the sandbox's end, by reason, when the instance is dropped.
    pub(crate) end: End,
    api: RuntimeApi,
    logs: LogCapture,
    exit: AsyncFd<OwnedFd>,
    pub(crate) last_used: Instant,
    /// What its runtime wanted of the CPU (`hold.rs`).
    cpu: CpuMeter,
    /// Frozen while idle (`InvokerConfig::freeze_idle`).
    frozen: bool,
    // Dropped after the server and the log reader stop: kills the process tree.
    sandbox: Sandbox,
    // Dropped last: the memory returns to the budget once the sandbox is gone.
    _memory: MemoryLease,
}

impl Instance {
    async fn exited(&self) {
        let _ = self.exit.readable().await;
    }

    /// Its memory, once the rest of it is gone (the sandbox reaped, its cgroup removed).
    fn into_lease(self) -> MemoryLease {
        let Instance { _memory, .. } = self;
        _memory
    }
}

/// A new sandbox's id.
fn new_sandbox_id() -> String {
    format!("sb-{}", uuid::Uuid::new_v4().simple())
}

/// Why a sandbox's runtime did not become ready ([`Inner::boot`]).
enum BootFailure {
    /// Its init failed: the invocation's answer.
    Init(InitFailure),
    /// A sandbox claimed without waiting for its `execve` ended before its program ran
    /// (killed from outside meanwhile): its memory, for another sandbox.
    EndedDuringSetup {
        lease: MemoryLease,
        error: SandboxError,
    },
}

impl From<InitFailure> for BootFailure {
    fn from(failure: InitFailure) -> BootFailure {
        BootFailure::Init(failure)
    }
}

impl BootFailure {
    fn into_init_failure(self) -> InitFailure {
        match self {
            BootFailure::Init(failure) => failure,
            BootFailure::EndedDuringSetup { error, .. } => {
                platform_failure(format!("could not start a sandbox: {error}"))
            }
        }
    }
}

/// What `acquire` found: a warm sandbox, or memory for a new one (and why it is cold), with
/// the invocation's place in the pool's queue (a sandbox released before the new one is ready
/// serves it instead).
enum Acquired {
    Warm(Box<Instance>),
    Cold {
        lease: MemoryLease,
        starting: Starting,
        waiter: Waiter,
        reason: ColdReason,
    },
}

/// Why a sandbox is being started (`AWS_LAMBDA_INITIALIZATION_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InitType {
    OnDemand,
    Provisioned,
}

impl InitType {
    fn as_env(self) -> &'static str {
        match self {
            InitType::OnDemand => "on-demand",
            InitType::Provisioned => "provisioned-concurrency",
        }
    }
}

/// What an invocation that found no idle sandbox got (see `Invoker::cold_or_released`).
enum Started {
    /// The sandbox it cold-started, and where the time went.
    Cold(Instance, InitBreakdown),
    /// A warm sandbox of the pool released while its cold start ran.
    Released(Instance),
}

/// A failed cold start, already shaped as the invocation's answer.
struct InitFailure {
    status: ActivationStatus,
    error_type: String,
    message: String,
    logs: String,
    /// Where the time went until it failed, when a sandbox was made.
    init: Option<InitBreakdown>,
}

impl Invoker {
    /// `records`: where activation records go (`None` drops them, for benchmarks).
    pub fn new(host: Host, config: InvokerConfig, records: Option<RecordSink>) -> Invoker {
        let admission = Arc::new(Admission::new(config.namespace_concurrency));
        let budget = Arc::new(MemoryBudget::new(config.memory_budget_mb));
        warm_up(&host, &config);
        let inner = Arc::new(Inner {
            host,
            config,
            pools: Mutex::new(HashMap::new()),
            revisions: Mutex::new(HashMap::new()),
            records,
            reaper: Mutex::new(None),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            admission,
            budget,
            metrics: Metrics::new(),
            lookup: std::sync::OnceLock::new(),
            gate: std::sync::OnceLock::new(),
        });
        let weak = Arc::downgrade(&inner);
        let period =
            (inner.config.keep_alive / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        *inner.reaper.lock() = Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.maintain();
            }
        }));
        Invoker { inner }
    }

    pub fn config(&self) -> &InvokerConfig {
        &self.inner.config
    }

    /// Sends a record its caller completed (an [`InvokeResult::record_due`] one).
    pub fn record(&self, a: Activation) {
        if let Some(sink) = &self.inner.records {
            sink(a);
        }
    }

    /// The software every sandbox shares (the AWS SDKs) changed: the Python zygotes are
    /// replaced, so that new cold starts are forked from one that imported it.
    pub fn shared_software_changed(&self) {
        self.inner.host.shared_software_changed();
        warm_up(&self.inner.host, &self.inner.config);
    }

    /// What makes cold starts fast that is not ready yet (see `Host::warming`): empty once the
    /// first cold start of every runtime is as fast as later ones.
    pub fn warming(&self) -> Vec<&'static str> {
        self.inner.host.warming()
    }

    /// Runs one invocation to its end and records it. A sequence runs its components in turn
    /// (see [`sequence`]).
    ///
    /// The invocation runs as its own task, to its end whatever its caller does: a caller
    /// that goes away (an HTTP client that disconnects, which drops the request's future)
    /// neither kills the sandbox in the middle of an invocation nor loses the record. Before,
    /// every connection a load generator closed at the end of a run killed the sandbox
    /// serving it, and the pool churned (`lambent_sandboxes_ended_total{reason="abandoned"}`).
    ///
    /// A panic in that task (a bug of the platform) ends the invocation as a `PlatformError`
    /// with its record, not the caller's task with it.
    pub async fn invoke(&self, dep: &Arc<Deployment>, mut req: InvokeRequest) -> InvokeResult {
        let id = req
            .request_id
            .get_or_insert_with(lambent_core::new_activation_id)
            .clone();
        let (trigger, start_us) = (req.trigger.clone(), ActivationTrace::now_us());
        let (this, task_dep) = (self.clone(), dep.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = if task_dep.function.config.is_sequence() {
                this.run_sequence(&task_dep, req, None, 0).await
            } else {
                this.invoke_function(&task_dep, req, None).await
            };
            if let Err(result) = tx.send(result) {
                this.unanswered(result);
            }
        });
        match rx.await {
            Ok(result) => result,
            // The sender drops without sending only if the invocation panicked.
            Err(_) => self.inner.panicked(dep, id, trigger, start_us),
        }
    }

    /// The result of an invocation whose caller went away: a record left to the caller
    /// ([`InvokeResult::record_due`]) is sent with HTTP status 499 (client closed request).
    fn unanswered(&self, mut result: InvokeResult) {
        if !result.record_due {
            return;
        }
        if let Some(http) = result
            .activation
            .trace
            .as_mut()
            .and_then(|t| t.http.as_mut())
        {
            http.status = Some(CLIENT_CLOSED_REQUEST);
        }
        self.record(result.activation);
    }

    /// A sandbox for an invocation that found none idle: the cold start it reserved memory
    /// for, or an instance of the pool released to it (its place in the queue: `waiter`)
    /// while that cold start runs, whichever comes first. The cold start runs on as its own
    /// task either way; a sandbox its invocation did not wait for goes to the next waiting
    /// invocation or joins the idle list. Without this, a burst that outgrows the pool waits
    /// for as many cold starts as it has requests, while the sandboxes already warm finish
    /// their invocations and sit idle (at 64 connections on 8 warm sandboxes, throughput fell
    /// to the rate of cold starts: ~25 invocations/s for seconds).
    async fn cold_or_released(
        &self,
        pool: &Arc<Pool>,
        lease: MemoryLease,
        starting: Starting,
        mut waiter: Waiter,
    ) -> Result<Started, InitFailure> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (inner, task_pool) = (self.inner.clone(), pool.clone());
        tokio::spawn(async move {
            let started = inner
                .cold_start(&task_pool, lease, starting, InitType::OnDemand)
                .await;
            if let Err(Ok((instance, init))) = tx.send(started) {
                let kind = task_pool.deployment().function.config.runtime.kind();
                inner.observe_init(kind, &init);
                inner.release(&task_pool, instance);
            }
        });
        tokio::pin!(rx);
        let mut queued = true;
        let started = loop {
            tokio::select! {
                biased;
                started = &mut rx => break started,
                handed = waiter.handed(), if queued => match handed {
                    Some(instance) => {
                        if let Some(instance) = self.inner.thawed(pool, instance) {
                            return Ok(Started::Released(instance));
                        }
                        // Lost while frozen: the place in the queue is gone, the cold start
                        // is still coming.
                        queued = false;
                    }
                    None => queued = false,
                },
            }
        };
        // The cold start ended first: an instance handed over meanwhile serves the next one.
        if let Some(instance) = waiter.withdraw() {
            self.inner.release(pool, instance);
        }
        match started {
            Ok(started) => started.map(|(instance, init)| Started::Cold(instance, init)),
            Err(_) => Err(InitFailure {
                status: ActivationStatus::PlatformError,
                error_type: "Lambent.ColdStartFailed".into(),
                message: "the cold start stopped before it finished".into(),
                logs: String::new(),
                init: None,
            }),
        }
    }

    /// Runs one invocation of a function of code; `parent`: the activation of the sequence
    /// it is a step of.
    async fn invoke_function(
        &self,
        dep: &Arc<Deployment>,
        mut req: InvokeRequest,
        parent: Option<String>,
    ) -> InvokeResult {
        let inner = &self.inner;
        let request_id = req
            .request_id
            .clone()
            .unwrap_or_else(lambent_core::new_activation_id);
        let start_us = ActivationTrace::now_us();
        let trace = inner
            .config
            .tracing
            .then(|| ActivationTrace::start(std::mem::take(&mut req.trace), start_us));
        let mut record = inner.begin_record(dep, request_id.clone(), &req.trigger, start_us);
        record.memory_mb = dep.function.config.memory_mb;
        record.parent = parent;
        record.trace = trace;

        let f = &dep.function;
        if let Some(message) = inner.gate.get().and_then(|g| g.refuse(&f.namespace)) {
            return inner.refused(record, BUDGET_EXHAUSTED, message, "budget", false);
        }
        let _admitted = match inner.admission.admit(&f.namespace, f.name.as_str()) {
            Ok(admitted) => admitted,
            Err(throttle) => return inner.throttled(record, throttle, req.may_spill),
        };
        let pool = inner.pool(dep);
        // A caller that can spill elsewhere is told at once that there is no room here.
        let queue = !req.may_spill;
        let mut instance = match inner.acquire(&pool, queue).await {
            Err(throttle) => return inner.throttled(record, throttle, req.may_spill),
            Ok(Acquired::Warm(instance)) => *instance,
            Ok(Acquired::Cold {
                lease,
                starting,
                waiter,
                reason,
            }) => {
                let init_start = Instant::now();
                let kind = f.config.runtime.kind();
                let started = self.cold_or_released(&pool, lease, starting, waiter).await;
                if !matches!(started, Ok(Started::Released(_))) {
                    record.cold = true;
                    record.cold_reason = Some(reason);
                }
                match started {
                    Ok(Started::Released(instance)) => instance,
                    Ok(Started::Cold(instance, init)) => {
                        record.init_us = Some(init_start.elapsed().as_micros() as u64);
                        record.init = Some(init);
                        inner.observe_init(kind, &init);
                        instance
                    }
                    Err(fail) => {
                        record.init_us = Some(init_start.elapsed().as_micros() as u64);
                        record.init = fail.init;
                        if let Some(init) = &fail.init {
                            inner.observe_init(kind, init);
                        }
                        let body = error_body(&fail.error_type, &fail.message);
                        record.status = fail.status;
                        record.error_type = Some(fail.error_type);
                        record.error_message = Some(fail.message);
                        record.logs = fail.logs;
                        return inner.finish(record, Duration::ZERO, body);
                    }
                }
            }
        };
        let _busy = pool.busy_guard();

        let timeout = Duration::from_secs(dep.function.config.timeout_s as u64);
        let invoke_start = Instant::now();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: req.payload,
            deadline_ms: now_ms() + timeout.as_millis() as i64,
            function_arn: match &req.qualifier {
                Some(q) => format!("{}:{q}", dep.arn(&inner.config.region)),
                None => dep.arn(&inner.config.region),
            },
            trace_id: match &record.trace {
                Some(t) => t.handler_context().xray(),
                None => untraced_id(),
            },
            client_context: req.client_context,
            cognito_identity: req.cognito_identity,
        };
        let (body, keep) = match instance.api.invoke(invocation) {
            Err(_) => {
                // The slot was not free: the sandbox is in a state it should never be in.
                record.status = ActivationStatus::PlatformError;
                let (t, m) = (
                    "Lambent.SandboxBusy",
                    "sandbox was not ready for a new invocation",
                );
                record.error_type = Some(t.into());
                record.error_message = Some(m.into());
                (error_body(t, m), false)
            }
            Ok(rx) => {
                // `None`: timed out.
                let outcome = tokio::select! {
                    biased;
                    outcome = rx => Some(outcome.ok()),
                    _ = instance.exited() => Some(None),
                    // cgroup v1 kills one task on OOM, maybe not the runtime (a child whose
                    // RSS counts the pages it shares with a zygote weighs more): the first OOM
                    // kill ends the invocation, and the sandbox goes (see below).
                    _ = oom_killed(&instance.sandbox) => Some(None),
                    _ = tokio::time::sleep(timeout) => None,
                };
                let Some(outcome) = outcome else {
                    instance.api.abandon();
                    record.status = ActivationStatus::Timeout;
                    let message = format!("Task timed out after {}.00 seconds", timeout.as_secs());
                    record.error_type = Some("Sandbox.Timedout".into());
                    record.error_message = Some(message.clone());
                    let body = error_body("Sandbox.Timedout", &message);
                    instance.sandbox.kill();
                    record.max_memory_bytes = instance.sandbox.memory_peak_bytes();
                    record.logs = instance.logs.take();
                    pool.lose(instance, EndReason::Timeout);
                    return inner.finish(record, invoke_start.elapsed(), body);
                };
                inner.settle(&instance, outcome, &mut record)
            }
        };
        let duration = invoke_start.elapsed();
        let pid = instance.sandbox.pid();
        instance.cpu.invoked(pid, duration, pool.cpu());
        record.max_memory_bytes = instance.sandbox.memory_peak_bytes();
        let oom = instance.sandbox.oom_kills() > 0;
        if oom && record.status != ActivationStatus::Success {
            record.status = ActivationStatus::OutOfMemory;
            record.error_type = Some("Runtime.OutOfMemory".into());
            record.error_message = Some(inner.out_of_memory(&dep.function, &instance.sandbox));
        }
        record.logs = instance.logs.take();
        let body = match record.status {
            ActivationStatus::OutOfMemory => error_body(
                "Runtime.OutOfMemory",
                record.error_message.as_deref().unwrap_or_default(),
            ),
            _ => body,
        };
        if keep && !oom {
            inner.release(&pool, instance);
        } else if oom {
            pool.lose(instance, EndReason::OutOfMemory);
        } else {
            pool.lose(instance, EndReason::Failed);
        }
        inner.finish(record, duration, body)
    }

    /// Starts one sandbox for `dep` and keeps it warm (for `lambent dev` and provisioning).
    /// Returns when the runtime is ready, or why it failed.
    pub async fn prewarm(&self, dep: &Arc<Deployment>) -> Result<(), String> {
        let pool = self.sandboxed_pool(dep)?;
        self.inner.start_idle(&pool, InitType::OnDemand).await
    }

    /// The pool of a function that runs in sandboxes; a sequence has none (its steps do).
    fn sandboxed_pool(&self, dep: &Arc<Deployment>) -> Result<Arc<Pool>, String> {
        if dep.function.config.is_sequence() {
            return Err(format!(
                "'{}' is a sequence: it has no sandboxes of its own (its functions do)",
                dep.function.name
            ));
        }
        Ok(self.inner.pool(dep))
    }

    /// Starts sandboxes until the function's provisioned concurrency is met; returns the first
    /// failure. Lost provisioned sandboxes are also replaced in the background.
    pub async fn provision(&self, dep: &Arc<Deployment>) -> Result<(), String> {
        let pool = self.sandboxed_pool(dep)?;
        self.inner.provision(&pool).await
    }

    /// Sets the provisioned concurrency of one revision's pool (a published version's, which
    /// may differ from the function's setting), then starts sandboxes until it is met; returns
    /// the first failure.
    pub async fn set_provisioned(&self, dep: &Arc<Deployment>, n: u32) -> Result<(), String> {
        let pool = self.sandboxed_pool(dep)?;
        pool.set_provisioned(n as usize);
        self.inner.provision(&pool).await
    }

    /// Live sandboxes of one function revision.
    pub fn revision_counts(&self, dep: &Deployment) -> SandboxCounts {
        self.inner
            .pools
            .lock()
            .get(&PoolKey::of(&dep.function))
            .map(|p| p.counts())
            .unwrap_or_default()
    }

    /// The cap on one function revision's sandboxes while its runtimes want the CPU
    /// (`hold.rs`); `None` while it is not held.
    pub fn pool_cap(&self, dep: &Deployment) -> Option<usize> {
        let pools = self.inner.pools.lock();
        let cap = pools.get(&PoolKey::of(&dep.function))?.cpu().cap();
        (cap != hold::UNHELD).then_some(cap)
    }

    /// Records a function's reserved concurrency (`None`: it shares the unreserved pool).
    pub fn set_reserved_concurrency(&self, namespace: &str, name: &str, reserved: Option<u32>) {
        self.inner.admission.set_reserved(namespace, name, reserved);
    }

    /// Makes the concurrency limits this node enforces its shares of cluster-wide limits.
    pub fn set_limit_shares(&self, shares: Arc<dyn LimitShares>) {
        self.inner.admission.set_shares(shares);
    }

    /// Reserved concurrency of all functions of a namespace except `except`.
    pub fn reserved_total(&self, namespace: &str, except: &str) -> u32 {
        self.inner.admission.reserved_total(namespace, except)
    }

    /// Whether functions can have outbound network on this host; the error says what is missing.
    pub fn outbound_network(&self) -> Result<(), lambent_sandbox::SandboxError> {
        self.inner.host.outbound_network()
    }

    /// The concurrency limit of `namespace` (cluster-wide: each node enforces its share): the
    /// namespace's own setting, else the node's `--namespace-concurrency`.
    pub fn namespace_concurrency(&self, namespace: &str) -> u32 {
        self.inner.admission.namespace_limit(namespace)
    }

    /// Sets what refuses invocations before admission (once; later calls are ignored).
    pub fn set_gate(&self, gate: Arc<dyn Gate>) {
        let _ = self.inner.gate.set(gate);
    }

    /// Sets a namespace's own concurrency limit (`None`: the node's default applies).
    pub fn set_namespace_concurrency(&self, namespace: &str, limit: Option<u32>) {
        self.inner.admission.set_namespace_limit(namespace, limit);
    }

    /// Memory in MB held by live sandboxes, and the budget.
    pub fn memory(&self) -> (u64, u64) {
        (self.inner.budget.used_mb(), self.inner.budget.limit_mb())
    }

    /// The Prometheus (OpenMetrics) text exposition of the invoker's metrics.
    pub fn metrics_text(&self) -> String {
        let m = &self.inner.metrics;
        let counts = self.counts(None, None);
        let state = |s: &str| metrics::StateLabels {
            state: s.to_string(),
        };
        m.sandboxes
            .get_or_create(&state("idle"))
            .set(counts.idle as i64);
        m.sandboxes
            .get_or_create(&state("busy"))
            .set(counts.busy as i64);
        m.memory_used_mb.set(self.inner.budget.used_mb() as i64);
        m.memory_budget_mb.set(self.inner.budget.limit_mb() as i64);
        m.encode()
    }

    /// Drops every pool of this function except those of the `keep` revisions (the live one and
    /// any a published version still runs): idle sandboxes are killed now, busy ones when their
    /// invocation ends (in-flight invocations finish on the old code). `None`: the function is
    /// gone, drop every pool and forget it.
    pub fn retire(&self, namespace: &str, name: &str, keep: Option<&[u64]>) {
        let removed = self.inner.take_pools(|k| {
            k.namespace == namespace
                && k.name == name
                && !keep.is_some_and(|keep| keep.contains(&k.revision))
        });
        if keep.is_none() {
            self.inner
                .revisions
                .lock()
                .remove(&(namespace.to_string(), name.to_string()));
            self.inner.admission.set_reserved(namespace, name, None);
        }
        for pool in removed {
            pool.retire();
        }
    }

    /// Live sandboxes of one function (all revisions), or of all functions.
    pub fn counts(&self, namespace: Option<&str>, name: Option<&str>) -> SandboxCounts {
        let pools = self.inner.pools.lock();
        let mut total = SandboxCounts::default();
        for (key, pool) in pools.iter() {
            if namespace.is_some_and(|ns| ns != key.namespace)
                || name.is_some_and(|n| n != key.name)
            {
                continue;
            }
            let c = pool.counts();
            total.idle += c.idle;
            total.busy += c.busy;
        }
        total
    }

    /// Sets namespace `namespace`'s share of the machine: the CPU weight and memory cap of
    /// the cgroup all its sandboxes live under (see [`TenantLimits`]); takes effect at once,
    /// for running sandboxes too. A namespace never set has the defaults: the same weight as
    /// every other, no memory cap beyond each sandbox's own. The namespace's record calls
    /// this when it is loaded, created or its limits change.
    pub fn set_tenant_limits(
        &self,
        namespace: &str,
        limits: TenantLimits,
    ) -> Result<(), SandboxError> {
        self.inner.host.set_tenant_limits(namespace, limits)
    }

    /// The directories of namespace `namespace`'s cgroup, one per hierarchy (none in
    /// insecure mode), for diagnostics and tests.
    pub fn tenant_cgroup_dirs(&self, namespace: &str) -> Result<Vec<PathBuf>, SandboxError> {
        self.inner.host.tenant_cgroup_dirs(namespace)
    }

    /// The share of the machine set for `namespace` (the defaults when none was).
    pub fn tenant_limits(&self, namespace: &str) -> TenantLimits {
        self.inner.host.tenant_limits(namespace)
    }

    /// Everything of namespace `namespace` on this node goes: every pool of its functions
    /// (idle sandboxes killed now), then every process left in its cgroup tree (sandboxes
    /// still busy, package zygotes, anything they started), then the tree itself. Its
    /// limits are forgotten. Call it once the namespace's functions are gone from the
    /// registry, so that no new sandbox starts for it meanwhile.
    pub async fn remove_namespace(&self, namespace: &str) -> Result<TenantRemoval, SandboxError> {
        for pool in self.inner.take_pools(|k| k.namespace == namespace) {
            pool.retire();
        }
        self.inner
            .revisions
            .lock()
            .retain(|(ns, _), _| ns != namespace);
        let (host, namespace) = (self.inner.host.clone(), namespace.to_string());
        tokio::task::spawn_blocking(move || host.remove_tenant(&namespace))
            .await
            .map_err(|e| SandboxError::Io(std::io::Error::other(e.to_string())))?
    }

    /// Kills every idle sandbox, and everything the host made ahead, and removes the host's
    /// cgroups (server shutdown).
    pub fn shutdown(&self) {
        if let Some(reaper) = self.inner.reaper.lock().take() {
            reaper.abort();
        }
        let pools: Vec<_> = self.inner.pools.lock().drain().map(|(_, p)| p).collect();
        for pool in pools {
            pool.retire();
        }
        self.inner.host.release_cgroups();
    }
}

impl Inner {
    /// Takes the pools whose key `which` picks out of the map.
    fn take_pools(&self, which: impl Fn(&PoolKey) -> bool) -> Vec<Arc<Pool>> {
        let mut pools = self.pools.lock();
        let keys: Vec<PoolKey> = pools.keys().filter(|k| which(k)).cloned().collect();
        keys.iter().filter_map(|k| pools.remove(k)).collect()
    }

    /// The message of an invocation the OOM killer ended: the function's own memory, or,
    /// when the sandbox never reached it, its namespace's cap on all its sandboxes together.
    fn out_of_memory(&self, f: &Function, sandbox: &Sandbox) -> String {
        let cap = self.host.tenant_limits(&f.namespace).memory_max_bytes;
        match cap {
            Some(bytes) if !sandbox.reached_own_memory_limit() => format!(
                "Runtime exited: namespace '{}' used more than its memory budget of {} MB (all its sandboxes together)",
                f.namespace,
                bytes / (1024 * 1024)
            ),
            _ => format!(
                "Runtime exited: the function used more than its {} MB of memory",
                f.config.memory_mb
            ),
        }
    }

    fn pool(&self, dep: &Arc<Deployment>) -> Arc<Pool> {
        let key = PoolKey::of(&dep.function);
        if let Some(pool) = self.pools.lock().get(&key) {
            return pool.clone();
        }
        let previous = self
            .revisions
            .lock()
            .insert((key.namespace.clone(), key.name.clone()), key.revision)
            .filter(|&r| r != key.revision);
        let first_reason = if previous.is_some() {
            ColdReason::CodeUpdated
        } else {
            ColdReason::FirstRequest
        };
        let f = &dep.function;
        let provisioned = self.admission.provisioned_share(
            &f.namespace,
            f.name.as_str(),
            f.config.provisioned_concurrency,
        );
        self.pools
            .lock()
            .entry(key)
            .or_insert_with(|| Arc::new(Pool::new(dep.clone(), first_reason, provisioned)))
            .clone()
    }

    /// Periodic upkeep: reclaims sandboxes idle past their keep-alive and replaces lost
    /// provisioned ones.
    fn maintain(self: &Arc<Self>) {
        let pools: Vec<_> = self.pools.lock().values().cloned().collect();
        for pool in pools {
            let (cap, changed) = pool.cpu().tick(self.cores, self.config.runnable_per_core);
            if changed {
                let f = &pool.deployment().function;
                match cap {
                    hold::UNHELD => tracing::info!(
                        "{}/{}: its runtimes no longer want the CPU enough to hold its pool",
                        f.namespace,
                        f.name
                    ),
                    cap => tracing::info!(
                        "{}/{}: its runtimes want the CPU; its pool is held at {cap} sandboxes",
                        f.namespace,
                        f.name
                    ),
                }
            }
            let keep_alive = pool
                .deployment()
                .function
                .config
                .keep_alive_s
                .map_or(self.config.keep_alive, |s| Duration::from_secs(s as u64));
            pool.reap(keep_alive);
            if pool.missing() > 0 && pool.begin_provisioning() {
                let inner = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = inner.provision(&pool).await {
                        tracing::warn!("provisioned concurrency: {e}");
                    }
                    pool.end_provisioning();
                });
            }
        }
    }

    /// Starts sandboxes until the pool holds its provisioned concurrency.
    async fn provision(&self, pool: &Arc<Pool>) -> Result<(), String> {
        while pool.missing() > 0 {
            self.start_idle(pool, InitType::Provisioned).await?;
        }
        Ok(())
    }

    /// Starts one sandbox for a pool and keeps it idle.
    async fn start_idle(&self, pool: &Arc<Pool>, init: InitType) -> Result<(), String> {
        let f = &pool.deployment().function;
        let mb = f.config.memory_mb;
        let starting = pool.starting();
        let lease = self.reserve_memory(pool, mb).ok_or_else(|| {
            Throttle::Memory {
                budget_mb: self.budget.limit_mb(),
                memory_mb: mb,
            }
            .to_string()
        })?;
        match self.cold_start(pool, lease, starting, init).await {
            Ok((instance, _)) => {
                self.release(pool, instance);
                Ok(())
            }
            Err(fail) => Err(format!("{}: {}", fail.error_type, fail.message)),
        }
    }

    /// Memory for a new sandbox of `pool`, evicting least recently used idle sandboxes of
    /// other pools if needed: its namespace's first, another's only when it has none. The
    /// pool's own idle sandboxes are never evicted to make another of the same.
    fn reserve_memory(&self, pool: &Arc<Pool>, mb: u32) -> Option<MemoryLease> {
        let namespace = &pool.deployment().function.namespace;
        loop {
            if let Some(lease) = self.budget.try_reserve(mb) {
                return Some(lease);
            }
            if !self.evict_lru_idle(pool, Some(namespace)) && !self.evict_lru_idle(pool, None) {
                return None;
            }
        }
    }

    /// Drops the least recently used idle sandbox that no provisioned concurrency needs, of a
    /// pool other than `except`, of `namespace` only, or of any.
    fn evict_lru_idle(&self, except: &Arc<Pool>, namespace: Option<&str>) -> bool {
        let pools: Vec<_> = self.pools.lock().values().cloned().collect();
        let victim = pools
            .iter()
            .filter(|p| !Arc::ptr_eq(p, except))
            .filter(|p| namespace.is_none_or(|ns| p.deployment().function.namespace == ns))
            .filter_map(|p| p.oldest_evictable().map(|t| (t, p)))
            .min_by_key(|(t, _)| *t);
        victim.is_some_and(|(_, pool)| pool.evict_oldest())
    }

    /// `instance`, thawed if it was frozen; `None` if it cannot be (it is dropped).
    fn thawed(&self, pool: &Pool, mut instance: Instance) -> Option<Instance> {
        if instance.frozen {
            if let Err(e) = instance.sandbox.thaw() {
                tracing::warn!("could not thaw a sandbox: {e}");
                pool.lose(instance, EndReason::Failed);
                return None;
            }
            instance.frozen = false;
        }
        Some(instance)
    }

    /// A warm sandbox of the pool, or memory for a cold start.
    ///
    /// An invocation that finds no idle sandbox takes its place in the pool's queue, and
    /// starts a cold start if the ones under way do not already match the invocations
    /// waiting and the memory budget has room (evicting other functions' idle sandboxes).
    /// Otherwise (`queue`) it waits, first come first served, for a sandbox of the pool to be
    /// released or for memory to free up, up to the queue timeout, or up to the function's
    /// timeout when it has sandboxes busy or starting (one of them is then released to it by
    /// then, or gone); not `queue`: it is refused at once.
    async fn acquire(&self, pool: &Arc<Pool>, queue: bool) -> Result<Acquired, Throttle> {
        let f = &pool.deployment().function;
        let started = Instant::now();
        // Leaving the queue: a sandbox handed over meanwhile still serves, else throttled by
        // the pool's hold, if it is at its cap, or else by the memory budget.
        let give_up = |waiter: Waiter| match waiter.withdraw().and_then(|i| self.thawed(pool, i)) {
            Some(instance) => Ok(Acquired::Warm(Box::new(instance))),
            None => Err(match pool.at_cap() {
                Some(cap) => Throttle::Held {
                    function: f.name.to_string(),
                    cap,
                },
                None => Throttle::Memory {
                    budget_mb: self.budget.limit_mb(),
                    memory_mb: f.config.memory_mb,
                },
            }),
        };
        let mut queued: Option<Waiter> = None;
        let mut deadline = None;
        let acquired = loop {
            let freed = self.budget.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let mut waiter = match queued.take() {
                Some(waiter) => waiter,
                None => match pool.take_or_wait() {
                    Ok(instance) => match self.thawed(pool, instance) {
                        Some(instance) => break Ok(Acquired::Warm(Box::new(instance))),
                        None => continue,
                    },
                    Err(waiter) => waiter,
                },
            };
            if let Some(starting) = pool.begin_start() {
                if let Some(lease) = self.reserve_memory(pool, f.config.memory_mb) {
                    let reason = pool.claim_cold_reason(&starting);
                    break Ok(Acquired::Cold {
                        lease,
                        starting,
                        waiter,
                        reason,
                    });
                }
            }
            if !queue {
                break give_up(waiter);
            }
            let deadline = *deadline.get_or_insert_with(|| {
                let wait = if pool.coming() > 0 {
                    let timeout = Duration::from_secs(f.config.timeout_s as u64);
                    self.config.queue_timeout.max(timeout)
                } else {
                    self.config.queue_timeout
                };
                tokio::time::Instant::now() + wait
            });
            tokio::select! {
                biased;
                handed = waiter.handed() => {
                    if let Some(instance) = handed.and_then(|i| self.thawed(pool, i)) {
                        break Ok(Acquired::Warm(Box::new(instance)));
                    }
                }
                _ = &mut freed => queued = Some(waiter),
                _ = tokio::time::sleep_until(deadline) => break give_up(waiter),
            }
        };
        let waited = started.elapsed();
        if waited > Duration::from_millis(1) {
            let labels = function_labels(&f.namespace, f.name.as_str());
            self.metrics
                .queue_wait
                .get_or_create(&labels)
                .observe(waited.as_secs_f64());
        }
        acquired
    }

    /// Returns a sandbox to its pool after a successful invocation: to the longest waiting
    /// invocation, else idle (frozen first, if idle sandboxes are); an idle one wakes the
    /// invocations waiting for memory (it may be evicted for them).
    fn release(&self, pool: &Arc<Pool>, mut instance: Instance) {
        if pool.shed(&mut instance.end) {
            // Killing a sandbox waits for the kernel: off the invocations' threads.
            let pool = pool.clone();
            tokio::task::spawn_blocking(move || pool.lose(instance, EndReason::Shed));
            return;
        }
        if !self.config.freeze_idle {
            if !pool.release(instance) {
                self.budget.freed.notify_waiters();
            }
            return;
        }
        // One that serves a waiting invocation at once is not frozen.
        let Some(mut instance) = pool.hand_off(instance) else {
            return;
        };
        // Freezing waits for the kernel: off the invocation's path.
        let (pool, budget) = (pool.clone(), self.budget.clone());
        tokio::task::spawn_blocking(move || {
            match instance.sandbox.freeze() {
                Ok(()) => instance.frozen = true,
                Err(e) => tracing::warn!("could not freeze an idle sandbox: {e}"),
            }
            if !pool.release(instance) {
                budget.freed.notify_waiters();
            }
        });
    }

    /// The answer to an invocation a limit refused: a 429 for the caller, and a record.
    fn throttled(&self, record: Activation, throttle: Throttle, spill: bool) -> InvokeResult {
        let label = throttle.label();
        self.refused(
            record,
            "Lambent.Throttled",
            throttle.to_string(),
            label,
            spill,
        )
    }

    /// An invocation that does not run: a throttle (`Lambent.Throttled`) or a refusal of the
    /// [`Gate`]; counted in the throttles metric under `limit`, recorded unless the caller
    /// can `spill` it to another node.
    fn refused(
        &self,
        mut record: Activation,
        error_type: &str,
        message: String,
        limit: &str,
        spill: bool,
    ) -> InvokeResult {
        record.status = ActivationStatus::Throttled;
        record.error_type = Some(error_type.into());
        record.error_message = Some(message.clone());
        let body = error_body(error_type, &message);
        if spill {
            record.end_ms = now_ms();
            return InvokeResult {
                activation: record,
                body,
                record_due: false,
            };
        }
        let labels = metrics::ThrottleLabels {
            namespace: record.namespace.clone(),
            function: record.function.clone(),
            limit: limit.to_string(),
        };
        self.metrics.throttles.get_or_create(&labels).inc();
        self.finish(record, Duration::ZERO, body)
    }

    /// What one new sandbox of `dep` runs, and its access to the platform (whose variables
    /// are in the spec's environment).
    fn spec(
        &self,
        dep: &Deployment,
        id: String,
        init: InitType,
    ) -> (SandboxSpec, Option<lambent_runtime_api::Platform>) {
        let f = &dep.function;
        let c = &f.config;
        let layout = self.host.layout(&dep.code_dir, &self.config.runtime_dir);
        let task_root = layout.task_root.display().to_string();
        let runtime_dir = layout.runtime_dir.display().to_string();
        let argv = runtime_argv(&self.config, c.runtime.kind(), &task_root, &runtime_dir);
        let today = time::OffsetDateTime::now_utc().date();
        // The sandbox user has no home of its own (no passwd entry): libraries that look for
        // one (the AWS SDK for JavaScript's config loader, `os.homedir()`) get the writable
        // /tmp, unless the function sets HOME itself.
        let home = ("HOME".to_string(), "/tmp".to_string());
        let mut env: Vec<(String, String)> = std::iter::once(home)
            .chain(c.env.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect();
        for (k, v) in [
            (
                "PATH",
                format!("{task_root}/bin:/usr/local/bin:/usr/bin:/bin"),
            ),
            ("LANG", "C.UTF-8".into()),
            ("TZ", ":UTC".into()),
            ("LD_LIBRARY_PATH", format!("{task_root}/lib:/usr/lib")),
            ("PYTHONUNBUFFERED", "1".into()),
            ("PYTHONDONTWRITEBYTECODE", "1".into()),
            ("_HANDLER", c.handler.clone()),
            ("LAMBDA_TASK_ROOT", task_root.clone()),
            ("LAMBDA_RUNTIME_DIR", runtime_dir),
            ("AWS_REGION", self.config.region.clone()),
            ("AWS_DEFAULT_REGION", self.config.region.clone()),
            (
                "AWS_EXECUTION_ENV",
                format!("AWS_Lambda_{}", c.runtime.name()),
            ),
            ("AWS_LAMBDA_FUNCTION_NAME", f.name.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", c.memory_mb.to_string()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", f.name),
            ),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                format!(
                    "{:04}/{:02}/{:02}/[$LATEST]{}",
                    today.year(),
                    today.month() as u8,
                    today.day(),
                    id
                ),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", init.as_env().into()),
        ] {
            env.push((k.to_string(), v));
        }
        let access = self
            .config
            .platform
            .as_ref()
            .map(|p| p.0.open(&f.namespace, f.name.as_str()));
        let service = access.map(|access| {
            env.extend(access.env);
            access.service
        });
        let spec = SandboxSpec {
            id,
            code_dir: dep.code_dir.clone(),
            runtime_dir: self.config.runtime_dir.clone(),
            argv,
            env,
            memory_mb: c.memory_mb,
            pids_max: lambent_core::limits::SANDBOX_PIDS_MAX,
            tmp_mb: self.config.tmp_mb,
            allow_network: c.network,
            interpreter: interpreter(c.runtime.kind()),
            aws_endpoint: service.is_some(),
            namespace: Some(f.namespace.clone()),
        };
        (spec, service)
    }

    /// Spawns a sandbox and waits until its runtime asks for work; says where the time went.
    async fn cold_start(
        &self,
        pool: &Arc<Pool>,
        lease: MemoryLease,
        _starting: Starting,
        init: InitType,
    ) -> Result<(Instance, InitBreakdown), InitFailure> {
        let dep = pool.deployment();
        let provided = dep.function.config.runtime.kind() == RuntimeKind::Provided;
        if provided {
            check_bootstrap(&dep.code_dir)?;
        }
        let (mut spec, platform) = self.spec(dep, new_sandbox_id(), init);
        let mut lease = lease;
        // A sandbox killed during its set-up (by an operator, the OOM killer, the soak) is
        // replaced once, as a sandbox made ahead found dead is.
        let mut replaced = false;
        let mut replace = |spec: &mut SandboxSpec, error: &SandboxError| {
            if std::mem::replace(&mut replaced, true) {
                return false;
            }
            tracing::warn!(id = %spec.id, "a sandbox ended during its set-up, starting another: {error}");
            spec.id = new_sandbox_id();
            true
        };
        // A runtime waiting ready-made is claimed on this thread (see `Host::claim_waiting`);
        // anything else is made on a blocking thread.
        let claim_start = Instant::now();
        let mut claimed = self.host.claim_waiting(&spec).map(|s| (claim_start, s));
        loop {
            let (spawn_start, sandbox) = match claimed.take() {
                Some(claimed) => claimed,
                None => {
                    let host = self.host.clone();
                    let (spawn_start, spawned, back) = tokio::task::spawn_blocking(move || {
                        (Instant::now(), host.spawn(&spec), spec)
                    })
                    .await
                    .map_err(|e| platform_failure(e.to_string()))?;
                    spec = back;
                    match spawned {
                        Ok(sandbox) => (spawn_start, sandbox),
                        Err(e) if e.ended_during_setup() && replace(&mut spec, &e) => continue,
                        Err(e) => return Err(start_failure(e, provided)),
                    }
                }
            };
            let booted = self
                .boot(
                    pool,
                    sandbox,
                    spawn_start,
                    lease,
                    platform.clone(),
                    provided,
                )
                .await;
            match booted {
                Err(BootFailure::EndedDuringSetup { lease: back, error })
                    if replace(&mut spec, &error) =>
                {
                    lease = back;
                }
                booted => return booted.map_err(BootFailure::into_init_failure),
            }
        }
    }

    /// Waits until the runtime of `sandbox` (asked for at `spawn_start`) asks for work: the
    /// instance, holding `lease`, and where the time went.
    async fn boot(
        &self,
        pool: &Arc<Pool>,
        mut sandbox: Sandbox,
        spawn_start: Instant,
        lease: MemoryLease,
        platform: Option<lambent_runtime_api::Platform>,
        provided: bool,
    ) -> Result<(Instance, InitBreakdown), BootFailure> {
        let startup = sandbox.startup();
        // What is known of a failed init: the sandbox, and the runtime's time until now.
        let so_far = || Some(init_breakdown(startup, spawn_start, Instant::now(), None));
        let instance = (|| -> std::io::Result<Instance> {
            let listener = sandbox.runtime_api_listener().try_clone()?;
            let output = sandbox
                .take_output()
                .ok_or_else(|| std::io::Error::other("sandbox output already taken"))?;
            let pidfd = sandbox.pidfd().try_clone_to_owned()?;
            // SAFETY: the AsyncFd owns this pidfd, which stays open until the AsyncFd drops.
            let exit =
                unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE)? };
            Ok(Instance {
                end: End::new(self.metrics.sandboxes_ended.clone(), pool),
                api: RuntimeApi::serve(listener, platform)?,
                logs: LogCapture::start(
                    output,
                    lambent_core::limits::MAX_LOG_BYTES_PER_INVOCATION,
                )?,
                exit,
                last_used: Instant::now(),
                cpu: CpuMeter::new(),
                frozen: false,
                sandbox,
                _memory: lease,
            })
        })();
        let mut instance = match instance {
            Ok(i) => i,
            Err(e) => {
                pool.lost(ColdReason::Evicted);
                // The sandbox made goes with `sandbox`, never an instance.
                EndReason::InitFailed.count(&self.metrics.sandboxes_ended);
                return Err(InitFailure {
                    init: so_far(),
                    ..platform_failure(format!("could not attach to the sandbox: {e}"))
                }
                .into());
            }
        };
        let ready = tokio::select! {
            biased;
            ready = instance.api.wait_ready() => ready,
            _ = instance.exited() => Err(ErrorReport { error_type_header: None, body: Bytes::new() }),
            _ = tokio::time::sleep(self.config.init_timeout) => {
                let fail = InitFailure {
                    status: ActivationStatus::InitError,
                    error_type: "Runtime.InitTimeout".into(),
                    message: format!("runtime did not initialize within {} s", self.config.init_timeout.as_secs()),
                    logs: instance.logs.take(),
                    init: so_far(),
                };
                pool.lost(ColdReason::Evicted);
                return Err(fail.into());
            }
        };
        match ready {
            Ok(ready) => {
                instance.sandbox.started();
                let init = init_breakdown(startup, spawn_start, ready.at, ready.import_us);
                // In use from now on: its end is counted as abandoned unless said otherwise.
                instance.end.reason = EndReason::Abandoned;
                Ok((instance, init))
            }
            Err(report) => {
                let init = so_far();
                if let Some(error) = instance.sandbox.setup_failure() {
                    if error.ended_during_setup() {
                        let lease = instance.into_lease();
                        return Err(BootFailure::EndedDuringSetup { lease, error });
                    }
                    pool.lost(ColdReason::Evicted);
                    return Err(InitFailure {
                        logs: instance.logs.take(),
                        init,
                        ..start_failure(error, provided)
                    }
                    .into());
                }
                let (error_type, message) =
                    if report.body.is_empty() && report.error_type_header.is_none() {
                        let status =
                            exit_status(&instance.exit).unwrap_or_else(|| "unknown status".into());
                        (
                            "Runtime.ExitError".to_string(),
                            format!("Runtime exited during initialization: {status}"),
                        )
                    } else {
                        describe_error(&report, "Runtime.Unknown")
                    };
                let status = if instance.sandbox.oom_kills() > 0 {
                    ActivationStatus::OutOfMemory
                } else {
                    ActivationStatus::InitError
                };
                let logs = instance.logs.take();
                pool.lost(ColdReason::Evicted);
                drop(instance);
                Err(InitFailure {
                    status,
                    error_type,
                    message,
                    logs,
                    init,
                }
                .into())
            }
        }
    }

    /// Turns a runtime's outcome into the record's status and the body; says whether the
    /// sandbox may be reused.
    fn settle(
        &self,
        instance: &Instance,
        outcome: Option<Outcome>,
        record: &mut Activation,
    ) -> (Bytes, bool) {
        let mut fail = |status, error_type: String, message: String| {
            let body = error_body(&error_type, &message);
            record.status = status;
            record.error_type = Some(error_type);
            record.error_message = Some(message);
            body
        };
        match outcome {
            Some(Outcome::Response { body, .. }) => (body, true),
            Some(Outcome::Error(report)) => {
                let (error_type, message) = describe_error(&report, "Function.Unknown");
                record.status = ActivationStatus::FunctionError;
                record.error_type = Some(error_type);
                record.error_message = Some(message);
                let body = if serde_json::from_slice::<serde_json::Value>(&report.body).is_ok() {
                    report.body
                } else {
                    error_body(
                        record.error_type.as_deref().unwrap_or_default(),
                        record.error_message.as_deref().unwrap_or_default(),
                    )
                };
                (body, true)
            }
            Some(Outcome::InitError(report)) => {
                let (t, m) = describe_error(&report, "Runtime.Unknown");
                (fail(ActivationStatus::InitError, t, m), false)
            }
            Some(Outcome::ResponseTooLarge) => (
                fail(
                    ActivationStatus::FunctionError,
                    "Function.ResponseSizeTooLarge".into(),
                    format!(
                        "Response payload size exceeded maximum allowed payload size ({} bytes).",
                        lambent_runtime_api::MAX_RESPONSE_BYTES
                    ),
                ),
                false,
            ),
            None => {
                let status = exit_status(&instance.exit).unwrap_or_else(|| "unknown status".into());
                (
                    fail(
                        ActivationStatus::FunctionError,
                        "Runtime.ExitError".into(),
                        format!(
                            "RequestId: {} Error: Runtime exited with error: {status}",
                            record.id
                        ),
                    ),
                    false,
                )
            }
        }
    }

    /// Counts a finished invocation in the metrics.
    fn observe(&self, record: &Activation) {
        let m = &self.metrics;
        let labels = function_labels(&record.namespace, &record.function);
        m.invocations
            .get_or_create(&metrics::StatusLabels {
                namespace: record.namespace.clone(),
                function: record.function.clone(),
                status: record.status.as_str().to_string(),
            })
            .inc();
        if record.status == ActivationStatus::Throttled {
            return;
        }
        m.duration
            .get_or_create(&labels)
            .observe(record.duration_us as f64 / 1e6);
        if let Some(reason) = record.cold_reason {
            m.cold_starts
                .get_or_create(&metrics::ColdLabels {
                    namespace: record.namespace.clone(),
                    function: record.function.clone(),
                    reason: reason.as_str().to_string(),
                    birth: record
                        .init
                        .map_or(metrics::NO_SANDBOX, |i| i.birth.as_str())
                        .to_string(),
                })
                .inc();
        }
        if let Some(init) = record.init_us {
            m.init_duration
                .get_or_create(&labels)
                .observe(init as f64 / 1e6);
        }
    }

    /// Counts the phases of an invocation's cold start.
    fn observe_init(&self, runtime: RuntimeKind, init: &InitBreakdown) {
        let phases = [
            ("sandbox", Some(init.sandbox_us)),
            ("runtime", Some(init.runtime_us)),
            ("import", init.import_us),
        ];
        for (phase, us) in phases {
            let Some(us) = us else { continue };
            self.metrics
                .cold_start_phases
                .get_or_create(&metrics::PhaseLabels {
                    runtime: runtime.as_str(),
                    birth: init.birth.as_str(),
                    phase,
                })
                .observe(us as f64 / 1e6);
        }
    }

    /// The record of an invocation of `dep` that starts at `start_us` (what every record
    /// begins with; the rest is filled in as the invocation runs).
    fn begin_record(
        &self,
        dep: &Deployment,
        id: String,
        trigger: &str,
        start_us: i64,
    ) -> Activation {
        let f = &dep.function;
        Activation {
            id,
            namespace: f.namespace.clone(),
            function: f.name.to_string(),
            revision: f.revision,
            trigger: trigger.to_string(),
            start_ms: start_us / 1000,
            end_ms: start_us / 1000,
            node: self.config.node_id.clone(),
            ..Default::default()
        }
    }

    /// The answer to an invocation whose task panicked: a `PlatformError`, recorded (a record
    /// the task had already written keeps its first version in the store).
    fn panicked(
        &self,
        dep: &Deployment,
        id: String,
        trigger: String,
        start_us: i64,
    ) -> InvokeResult {
        tracing::error!(function = %dep.function.name, request_id = %id, "the invocation's task panicked");
        let mut record = self.begin_record(dep, id, &trigger, start_us);
        record.status = ActivationStatus::PlatformError;
        record.error_type = Some("Lambent.InternalError".into());
        let message = "the platform failed while running this invocation (see the server's log)";
        record.error_message = Some(message.into());
        let body = error_body("Lambent.InternalError", message);
        // Nothing is billed for the platform's own failure.
        self.finish(record, Duration::ZERO, body)
    }

    /// Completes the record (durations, billing, report lines), sends it, and shapes the result.
    fn finish(&self, mut record: Activation, duration: Duration, body: Bytes) -> InvokeResult {
        let end_us = ActivationTrace::now_us();
        record.end_ms = end_us / 1000;
        record.duration_us = duration.as_micros() as u64;
        if let Some(t) = &mut record.trace {
            t.end_us = end_us;
        }
        self.observe(&record);
        if record.status == ActivationStatus::Throttled {
            // Nothing ran: nothing billed, no logs.
            let record_due = self.send(&record);
            return InvokeResult {
                activation: record,
                body,
                record_due,
            };
        }
        record.billed_ms = billed_ms(record.duration_us + record.init_us.unwrap_or(0));
        record.logs = record.framed_logs(&record.logs);
        let record_due = self.send(&record);
        InvokeResult {
            activation: record,
            body,
            record_due,
        }
    }

    /// Sends a finished record, unless its caller sends it ([`awaits_http_status`]): returns
    /// whether it is left to the caller.
    fn send(&self, record: &Activation) -> bool {
        if awaits_http_status(record) {
            return true;
        }
        if let Some(sink) = &self.records {
            sink(record.clone());
        }
        false
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(reaper) = self.reaper.lock().take() {
            reaper.abort();
        }
    }
}

/// An unsampled X-Ray style trace header, when tracing is off; runtimes copy it to
/// `_X_AMZN_TRACE_ID`.
fn untraced_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("Root=1-{:08x}-{};Sampled=0", now_ms() / 1000, &id[..24])
}

fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorType": error_type, "errorMessage": message }).to_string())
}

/// Error type and message from a runtime's report: the body's fields win over the header.
fn describe_error(report: &ErrorReport, default_type: &str) -> (String, String) {
    let body: serde_json::Value = serde_json::from_slice(&report.body).unwrap_or_default();
    let error_type = body["errorType"]
        .as_str()
        .filter(|t| !t.is_empty())
        .or(report.error_type_header.as_deref())
        .unwrap_or(default_type)
        .to_string();
    let message = body["errorMessage"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&report.body[..report.body.len().min(4096)]).into_owned()
        });
    (error_type, message)
}

fn platform_failure(message: String) -> InitFailure {
    tracing::error!("{message}");
    InitFailure {
        status: ActivationStatus::PlatformError,
        error_type: "Lambent.SandboxError".into(),
        message,
        logs: String::new(),
        init: None,
    }
}

/// A sandbox that could not start: the function's own fault when it is a `provided`
/// runtime's `bootstrap` the kernel would not run (no interpreter for its `#!` line, a binary
/// for another machine: `Runtime.InvalidEntrypoint`, as on Lambda), the platform's otherwise.
fn start_failure(e: SandboxError, provided: bool) -> InitFailure {
    match e {
        SandboxError::Setup {
            step: SetupStep::Exec,
            detail,
            errno,
        } if provided => InitFailure {
            status: ActivationStatus::InitError,
            error_type: "Runtime.InvalidEntrypoint".into(),
            message: format!("could not exec{detail}: {}", errno.desc()),
            logs: String::new(),
            init: None,
        },
        e => platform_failure(format!("could not start a sandbox: {e}")),
    }
}

/// Where a cold start's time went from `spawn_start` (the sandbox asked for) to `until` (the
/// runtime's first `GET /next`, or the moment its init failed): the sandbox's own share, the
/// handler import the runtime reported, and the runtime's start as the rest.
fn init_breakdown(
    startup: Startup,
    spawn_start: Instant,
    until: Instant,
    import_us: Option<u64>,
) -> InitBreakdown {
    let total_us = until.saturating_duration_since(spawn_start).as_micros() as u64;
    let import = import_us.unwrap_or(0);
    // The phases partition the total. On a loaded machine the server may learn that the
    // sandbox is up only after its runtime started and imported: then the sandbox's share is
    // what the import leaves (never counted twice).
    let sandbox_us = startup.sandbox_us.min(total_us.saturating_sub(import));
    InitBreakdown {
        birth: startup.birth,
        sandbox_us,
        runtime_us: total_us.saturating_sub(sandbox_us).saturating_sub(import),
        import_us,
    }
}

/// Resolves once the kernel's OOM killer has killed a task of `sandbox` (checked every 50 ms:
/// only invocations that last that long pay for it).
async fn oom_killed(sandbox: &Sandbox) {
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if sandbox.oom_kills() > 0 {
            return;
        }
    }
}

/// Starts what makes cold starts fast (sandboxes made ahead, zygotes, stem cells) in the
/// background; [`Invoker::warming`] says what is not ready yet.
fn warm_up(host: &Host, config: &InvokerConfig) {
    let runtime_dir = host
        .layout(&config.runtime_dir, &config.runtime_dir)
        .runtime_dir;
    host.warm_up(None, &[], &config.runtime_dir, config.tmp_mb);
    for kind in [RuntimeKind::Python, RuntimeKind::Nodejs] {
        let argv = runtime_argv(config, kind, "", &runtime_dir.display().to_string());
        if let Some(interpreter) = interpreter(kind) {
            host.warm_up(Some(interpreter), &argv, &config.runtime_dir, config.tmp_mb);
        }
    }
}

/// The program a runtime's sandboxes run, as they see it (`task_root`, `runtime_dir`: see
/// `Host::layout`).
fn runtime_argv(
    config: &InvokerConfig,
    kind: RuntimeKind,
    task_root: &str,
    runtime_dir: &str,
) -> Vec<String> {
    match kind {
        RuntimeKind::Python => vec![
            config.python.clone(),
            format!("{runtime_dir}/python/bootstrap.py"),
        ],
        RuntimeKind::Nodejs => vec![
            config.node.clone(),
            format!("{runtime_dir}/node/bootstrap.mjs"),
        ],
        RuntimeKind::Provided => vec![format!("{task_root}/bootstrap")],
        // Sequences run no program: `Invoker::invoke` runs their components.
        RuntimeKind::Sequence => Vec::new(),
    }
}

/// The interpreter a runtime's sandboxes may be started from ahead of time.
fn interpreter(kind: RuntimeKind) -> Option<Interpreter> {
    match kind {
        RuntimeKind::Python => Some(Interpreter::Python),
        RuntimeKind::Nodejs => Some(Interpreter::Node),
        RuntimeKind::Provided | RuntimeKind::Sequence => None,
    }
}

/// A `provided` function needs an executable `bootstrap` at the root of its code.
fn check_bootstrap(code_dir: &std::path::Path) -> Result<(), InitFailure> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |message: String| InitFailure {
        status: ActivationStatus::InitError,
        error_type: "Runtime.InvalidEntrypoint".into(),
        message,
        logs: String::new(),
        init: None,
    };
    match std::fs::metadata(code_dir.join("bootstrap")) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(fail(
            "'bootstrap' is not an executable file: chmod +x bootstrap".into(),
        )),
        Err(_) => Err(fail(
            "the code has no 'bootstrap' executable at its root, which a provided runtime needs"
                .into(),
        )),
    }
}

/// How the sandbox's init process ended, without reaping it (the sandbox reaps on drop).
fn exit_status(pidfd: &AsyncFd<OwnedFd>) -> Option<String> {
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on a pidfd we own, with a zeroed siginfo the kernel fills.
    let rc = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.get_ref().as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    // SAFETY: after a successful waitid with WEXITED these fields are the child's.
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if rc != 0 || pid == 0 {
        return None;
    }
    Some(match code {
        libc::CLD_EXITED => format!("exit status {status}"),
        _ => format!("signal: {}", signal_name(status)),
    })
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "killed".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGTERM => "terminated".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup(sandbox_us: u64) -> Startup {
        Startup {
            birth: lambent_core::Birth::Zygote,
            sandbox_us,
        }
    }

    #[test]
    fn the_runtime_phase_is_what_the_sandbox_and_the_import_leave() {
        let start = Instant::now();
        let ready = start + Duration::from_micros(10_000);
        let init = init_breakdown(startup(1_000), start, ready, Some(6_000));
        assert_eq!(init.birth, lambent_core::Birth::Zygote);
        assert_eq!(
            (init.sandbox_us, init.runtime_us, init.import_us),
            (1_000, 3_000, Some(6_000))
        );
        // A runtime that does not report its import: the runtime phase holds both.
        let init = init_breakdown(startup(1_000), start, ready, None);
        assert_eq!((init.runtime_us, init.import_us), (9_000, None));
        // Reports larger than the time that passed never make a phase negative.
        let init = init_breakdown(startup(1_000), start, ready, Some(60_000));
        assert_eq!(init.runtime_us, 0);
        let init = init_breakdown(startup(1_000), ready, start, None);
        assert_eq!(init.runtime_us, 0);
    }
}
