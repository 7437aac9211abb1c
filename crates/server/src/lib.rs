//! One Lambent node on the embedded default: lays out the data dir (SQLite metadata, code blobs,
//! unpacked code, runtime clients, the API key), checks the host can isolate sandboxes, wires
//! store, invoker, gateway and the Lambda-compatible API together and serves HTTP until told to
//! stop.
//!
//! ```text
//! <data-dir>/lambent.db      SQLite (WAL): functions, versions, aliases, API and access keys,
//!                            activation records, async events, dead letters, schedules,
//!                            routes, queues and their messages, topics, subscriptions, mappings,
//!                            state machines, executions and their histories
//! <data-dir>/blobs/<sha256>  code zips as uploaded
//! <data-dir>/code/<sha256>/  unpacked code, bind-mounted read-only at /var/task
//! <data-dir>/runtimes/       Lambent's runtime clients, bind-mounted read-only at /var/runtime
//! <data-dir>/sandboxes/      sandbox scratch (mount points)
//! <data-dir>/api-key         the default namespace's generated API key (mode 0600)
//! ```

mod runtimes;

use lambent_bus_nats::{NatsBlobs, NatsBus};
use lambent_cluster::node::{
    mapping_lease, Cluster, JoinOptions, StatsFn, PRUNER_LEASE, SCHEDULES_LEASE,
};
use lambent_core::metering::Prices;
use lambent_core::DEFAULT_NAMESPACE;
use lambent_events::worker::{Home, IsLeader};
use lambent_events::{Events, Runner, WorkerOptions};
use lambent_gateway::{ApiError, ApiKeys, App, Registry, RegistryRunner, RouteTable};
use lambent_invoker::{Invoker, InvokerConfig, RecordSink};
use lambent_queues::{Mapping, PollAll, PollGate};
use lambent_queues::{QueueError, Queues};
use lambent_sandbox::{Host, HostOptions, Isolation, Layers, SandboxError};
use lambent_store::blobs::{BlobStore, FsBlobs};
use lambent_store::bus::{Bus, LocalBus};
use lambent_store::cluster::{ClusterStore, NodeStats};
use lambent_store::events::EventStore;
use lambent_store::lambda::AccessKey;
use lambent_store::package::CodeDirs;
use lambent_store::queues::QueueStore;
use lambent_store::recorder::Recorder;
use lambent_store::routes::RouteStore;
use lambent_store::workflows::WorkflowStore;
use lambent_store::{Store, StoreError};
use lambent_store_postgres::PgStore;
use lambent_store_sqlite::SqliteStore;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to run a node.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Run functions as plain processes, without any isolation (development only).
    pub insecure_no_sandbox: bool,
    /// The default namespace's API key; `None`: generated once per data dir.
    pub api_key: Option<String>,
    /// How long idle sandboxes stay warm (functions may set their own).
    pub keep_alive: Duration,
    /// Concurrent invocations per namespace.
    pub namespace_concurrency: u32,
    /// Memory budget of all live sandboxes in MB; `None`: three quarters of the host's memory.
    pub memory_budget_mb: Option<u64>,
    /// How long an invocation may wait for sandbox memory before it gets a 429.
    pub queue_timeout: Duration,
    /// How long activation records are kept.
    pub activation_retention: Duration,
    /// Prices for cost reports.
    pub prices: Prices,
    /// Write activation records (turned off only to measure what recording costs).
    pub record_activations: bool,
    /// Freeze idle sandboxes, thaw them on their next invocation.
    pub freeze_idle: bool,
    /// The isolation layers of each sandbox: all of them, except to measure what each costs.
    pub isolation_layers: Layers,
    /// Asynchronous events (async invokes, schedule fires, destinations) run at once.
    pub async_concurrency: usize,
    /// Region in ARNs, `AWS_REGION`, and the one SigV4 signatures must be scoped to.
    pub region: String,
    /// An access key (id, secret) of the default namespace for the Lambda-compatible API,
    /// stored at start-up (`LAMBENT_ACCESS_KEY_ID`, `LAMBENT_SECRET_ACCESS_KEY` for `lambent up`).
    pub access_key: Option<(String, String)>,
    /// Cluster mode: the PostgreSQL URL (`--store postgres://…`); with `bus`.
    pub store: Option<String>,
    /// Cluster mode: the NATS URL (`--bus nats://…`); with `store`.
    pub bus: Option<String>,
    /// This node's id in a cluster (default: host name and port).
    pub node_id: Option<String>,
    /// The URL other nodes reach this one at (default: `http://<listen address>`).
    pub advertise: Option<String>,
    /// How long a stopping node lets running invocations finish.
    pub shutdown_grace: Duration,
}

impl ServerOptions {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServerOptions {
        let defaults = InvokerConfig::default();
        ServerOptions {
            listen,
            data_dir,
            insecure_no_sandbox: false,
            api_key: None,
            keep_alive: defaults.keep_alive,
            namespace_concurrency: defaults.namespace_concurrency,
            memory_budget_mb: None,
            queue_timeout: defaults.queue_timeout,
            activation_retention: Duration::from_secs(7 * 24 * 3600),
            prices: Prices::default(),
            record_activations: true,
            freeze_idle: false,
            isolation_layers: Layers::ALL,
            async_concurrency: WorkerOptions::default().concurrency,
            region: DEFAULT_REGION.into(),
            access_key: None,
            store: None,
            bus: None,
            node_id: None,
            advertise: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// The region a node claims unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot isolate sandboxes on this host: {0}\n(to develop without isolation, pass --insecure-no-sandbox: functions then run as plain processes with your user's rights)")]
    Sandbox(#[from] SandboxError),
    #[error("cannot use the data dir {0}: {1}")]
    DataDir(PathBuf, std::io::Error),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot load the deployed functions: {0}")]
    Load(#[from] ApiError),
    #[error("cannot start the queues: {0}")]
    Queues(#[from] QueueError),
    #[error("cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("the API key is empty or has whitespace")]
    BadApiKey,
    #[error("the access key id and secret must be non-empty and without whitespace")]
    BadAccessKey,
    #[error("a cluster node needs both --store postgres://… and --bus nats://… (got only {given}); without either, Lambent runs on its embedded store")]
    HalfCluster { given: &'static str },
    #[error("--store must be a postgres:// URL, not '{0}'")]
    BadStoreUrl(String),
    #[error("--bus must be a nats:// URL, not '{0}'")]
    BadBusUrl(String),
    #[error("--node-id '{0}' must be 1-64 characters of letters, digits, '-', '_' or '.'")]
    BadNodeId(String),
}

/// A node that is serving. Dropping it without [`RunningServer::shutdown`] stops serving too.
pub struct RunningServer {
    url: String,
    addr: SocketAddr,
    api_key: String,
    app: Arc<App>,
    workers: lambent_events::Running,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    grace: Duration,
}

impl RunningServer {
    /// `http://127.0.0.1:PORT`, with the port actually bound.
    pub fn url(&self) -> &str {
        &self.url
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    /// This node's id (`local` on the embedded node).
    pub fn node_id(&self) -> &str {
        self.app.cluster.node_id()
    }

    /// Drains the node: it tells the cluster it is leaving (others stop sending it work),
    /// stops accepting requests, lets running invocations and asynchronous events finish
    /// within the shutdown grace, hands back what it still holds (event leases, mapping and
    /// schedule leases), kills idle sandboxes, writes the pending activation records and
    /// leaves the membership table.
    pub async fn shutdown(mut self) {
        self.app.cluster.drain().await;
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let grace = self.grace;
        let _ = tokio::time::timeout(grace, &mut self.serving).await;
        self.workers.drain(grace).await;
        for task in self.background.drain(..) {
            task.abort();
        }
        self.app.queues.drain().await;
        self.app.registry.invoker().shutdown();
        self.app.recorder.flush().await;
        self.app.cluster.leave().await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in self.background.drain(..) {
            task.abort();
        }
        self.app.queues.shutdown();
    }
}

/// Where this node keeps its state: the embedded store, or a cluster's.
struct Backends {
    store: Arc<dyn Store>,
    events: Arc<dyn EventStore>,
    routes: Arc<dyn RouteStore>,
    queues: Arc<dyn QueueStore>,
    workflows: Arc<dyn WorkflowStore>,
    blobs: Arc<dyn BlobStore>,
    bus: Arc<dyn Bus>,
    /// Cluster mode: the membership table.
    cluster: Option<Arc<dyn ClusterStore>>,
    node_id: String,
}

impl Backends {
    fn of<S>(store: Arc<S>, blobs: Arc<dyn BlobStore>, bus: Arc<dyn Bus>, node_id: String) -> Self
    where
        S: Store + EventStore + RouteStore + QueueStore + WorkflowStore,
    {
        Backends {
            store: store.clone(),
            events: store.clone(),
            routes: store.clone(),
            queues: store.clone(),
            workflows: store,
            blobs,
            bus,
            cluster: None,
            node_id,
        }
    }

    /// The embedded default: SQLite and blobs in the data dir, an in-process bus.
    fn embedded(data: &Path) -> Result<Backends, ServerError> {
        let sqlite = Arc::new(SqliteStore::open(&data.join("lambent.db"))?);
        let blobs = Arc::new(FsBlobs::open(data.join("blobs"))?);
        let bus = Arc::new(LocalBus::new(lambent_core::LOCAL_NODE));
        Ok(Backends::of(
            sqlite,
            blobs,
            bus,
            lambent_core::LOCAL_NODE.into(),
        ))
    }

    /// A cluster node: PostgreSQL for state, NATS for signals and code (cached in the data dir).
    async fn cluster(
        data: &Path,
        store_url: &str,
        bus_url: &str,
        node_id: String,
    ) -> Result<Backends, ServerError> {
        if !store_url.starts_with("postgres://") && !store_url.starts_with("postgresql://") {
            return Err(ServerError::BadStoreUrl(store_url.into()));
        }
        if !bus_url.starts_with("nats://") {
            return Err(ServerError::BadBusUrl(bus_url.into()));
        }
        let pg = Arc::new(PgStore::connect(store_url).await?);
        let identity = pg.identity().await?;
        let bus = Arc::new(NatsBus::connect(bus_url, &node_id, &identity.id).await?);
        let blobs = Arc::new(NatsBlobs::for_bus(&bus, &identity.id, data.join("blobs")).await?);
        tracing::info!(
            "joining cluster {} as node {node_id} (PostgreSQL at {}, NATS at {})",
            identity.id,
            pg.address(),
            bus.address()
        );
        let mut backends = Backends::of(pg.clone(), blobs, bus, node_id);
        backends.cluster = Some(pg);
        Ok(backends)
    }
}

/// A node id: letters, digits, `-`, `_`, `.`.
fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The machine's host name, if it has a usable one.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| valid_node_id(h))
}

/// The default node id: the host's name and the port.
fn default_node_id(port: u16) -> String {
    format!("{}-{port}", host_name().unwrap_or_else(|| "node".into()))
}

/// Adapts the cluster's mapping leases to the queues' poll gate: a mapping is polled on its
/// function's home node (where the batches run warm), under the mapping's lease.
struct MappingGate(Arc<Cluster>);

#[async_trait::async_trait]
impl PollGate for MappingGate {
    async fn may_poll(&self, mapping: &Mapping) -> bool {
        let lease = mapping_lease(&mapping.id);
        let key = lambent_store::events::function_key(&mapping.namespace, &mapping.function);
        if !self.0.is_home(&key) {
            self.0.give_back(&lease).await;
            return false;
        }
        self.0.try_take(&lease).await
    }

    async fn stopped(&self, mapping_id: &str) {
        self.0.give_back(&mapping_lease(mapping_id)).await;
    }
}

/// Starts a node and returns once it is listening.
pub async fn start(opts: ServerOptions) -> Result<RunningServer, ServerError> {
    let data = &opts.data_dir;
    let in_data = |e| ServerError::DataDir(data.clone(), e);
    std::fs::create_dir_all(data).map_err(in_data)?;
    let runtime_dir = data.join("runtimes");
    runtimes::install(&runtime_dir).map_err(in_data)?;

    let isolation = if opts.insecure_no_sandbox {
        Isolation::Insecure
    } else {
        Isolation::Full
    };
    if opts.insecure_no_sandbox {
        tracing::warn!("--insecure-no-sandbox: functions run as plain processes, NOT isolated");
    }
    let state_dir = data.join("sandboxes");
    let layers = opts.isolation_layers;
    let host = tokio::task::spawn_blocking(move || {
        Host::detect(HostOptions {
            isolation,
            state_dir,
            layers,
        })
    })
    .await
    .expect("host detection panicked")?;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServerError::Listen(opts.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen(opts.listen, e))?;
    let backends = match (&opts.store, &opts.bus) {
        (None, None) => Backends::embedded(data)?,
        (Some(store), Some(bus)) => {
            let node_id = opts
                .node_id
                .clone()
                .unwrap_or_else(|| default_node_id(addr.port()));
            if !valid_node_id(&node_id) {
                return Err(ServerError::BadNodeId(node_id));
            }
            Backends::cluster(data, store, bus, node_id).await?
        }
        (Some(_), None) => return Err(ServerError::HalfCluster { given: "--store" }),
        (None, Some(_)) => return Err(ServerError::HalfCluster { given: "--bus" }),
    };
    let store = backends.store.clone();
    let api_key = match opts.api_key {
        Some(key) if key.is_empty() || key.chars().any(char::is_whitespace) => {
            return Err(ServerError::BadApiKey)
        }
        Some(key) => key,
        None => generated_key(data).map_err(in_data)?,
    };
    store
        .add_api_key(
            DEFAULT_NAMESPACE,
            &lambent_store::sha256_hex(api_key.as_bytes()),
        )
        .await?;

    if let Some((id, secret)) = opts.access_key {
        let bad = |s: &str| s.is_empty() || s.chars().any(char::is_whitespace);
        if bad(&id) || bad(&secret) {
            return Err(ServerError::BadAccessKey);
        }
        store
            .put_access_key(&AccessKey {
                namespace: DEFAULT_NAMESPACE.into(),
                access_key_id: id,
                secret_access_key: secret,
                created_ms: lambent_core::now_ms(),
            })
            .await?;
    }

    let recorder = Recorder::start(store.clone());
    let sink: RecordSink = {
        let recorder = recorder.clone();
        Arc::new(move |activation| recorder.record(activation))
    };
    let defaults = InvokerConfig::default();
    let config = InvokerConfig {
        keep_alive: opts.keep_alive,
        runtime_dir,
        namespace_concurrency: opts.namespace_concurrency,
        memory_budget_mb: opts.memory_budget_mb.unwrap_or(defaults.memory_budget_mb),
        queue_timeout: opts.queue_timeout,
        freeze_idle: opts.freeze_idle,
        region: opts.region.clone(),
        node_id: backends.node_id.clone(),
        ..defaults
    };
    // A package's requirements.txt is installed with the interpreter its sandboxes run.
    let python = config.python.clone();
    let invoker = Invoker::new(host, config, opts.record_activations.then_some(sink));
    let advertise = opts
        .advertise
        .clone()
        .unwrap_or_else(|| advertised_url(addr));
    let stats: StatsFn = {
        let invoker = invoker.clone();
        Arc::new(move || node_stats(&invoker))
    };
    let cluster = match &backends.cluster {
        None => Cluster::single(&backends.node_id, &advertise, stats),
        Some(membership) => {
            let cluster = Cluster::join(
                membership.clone(),
                backends.events.clone(),
                backends.bus.clone(),
                JoinOptions {
                    node_id: backends.node_id.clone(),
                    address: advertise.clone(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    stats,
                },
            )
            .await?;
            invoker.set_limit_shares(cluster.clone());
            cluster.want(SCHEDULES_LEASE);
            cluster.want(PRUNER_LEASE);
            cluster
        }
    };
    let registry = Registry::load(
        store.clone(),
        backends.blobs.clone(),
        CodeDirs::open(data.join("code"))
            .map_err(in_data)?
            .installing_requirements_with(python),
        invoker,
        backends.bus.clone(),
        backends.cluster.is_some(),
    )
    .await?;
    let routes = RouteTable::load(backends.routes.clone(), backends.bus.clone()).await?;
    let queues = Queues::new(
        backends.queues.clone(),
        registry.invoker().config().region.clone(),
        backends.bus.clone(),
    );
    let pruning = tokio::spawn(prune_activations(
        store.clone(),
        cluster.clone(),
        opts.activation_retention,
    ));
    let events = Events::start(
        backends.events.clone(),
        &registry.invoker().config().region,
        backends.bus.clone(),
    );
    let app = Arc::new(App {
        prices: opts.prices,
        store,
        registry,
        recorder,
        keys: ApiKeys::default(),
        events: events.clone(),
        routes,
        queues,
        bus: backends.bus.clone(),
        cluster: cluster.clone(),
    });
    let runner = Runner {
        invoker: app.registry.invoker().clone(),
        lookup: {
            let app = Arc::downgrade(&app);
            Arc::new(move |ns, name| app.upgrade()?.registry.lookup(ns, name))
        },
        recorder: app.recorder.clone(),
        deliver: Some(Arc::new(RegistryRunner(Arc::downgrade(&app)))),
    };
    let clustered = cluster.clustered();
    let home: Option<Home> = clustered.then(|| {
        let (app, cluster) = (Arc::downgrade(&app), cluster.clone());
        Arc::new(move || {
            let keys = app.upgrade().map(|a| a.registry.keys()).unwrap_or_default();
            Arc::new(cluster.home_keys(keys.iter().map(String::as_str)))
        }) as Home
    });
    let schedule_leader: Option<IsLeader> = clustered.then(|| {
        let cluster = cluster.clone();
        Arc::new(move || cluster.holds(SCHEDULES_LEASE)) as IsLeader
    });
    let workers = events
        .run_workers(
            runner,
            WorkerOptions {
                node_id: cluster.node_id().to_string(),
                clustered,
                home,
                schedule_leader,
                concurrency: opts.async_concurrency.max(1),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| match e {
            lambent_events::EventsError::Store(e) => ServerError::Store(e),
            e => ServerError::Store(StoreError::Database(e.to_string())),
        })?;
    let gate: Arc<dyn PollGate> = match clustered {
        true => Arc::new(MappingGate(cluster.clone())),
        false => Arc::new(PollAll),
    };
    app.queues
        .start(Arc::new(RegistryRunner(Arc::downgrade(&app))), gate)
        .await?;
    let mut background = lambent_gateway::follow::follow(&app);
    background.push(pruning);

    let (stop, stopped) = oneshot::channel::<()>();

    let workflows = lambent_sfn_api::Workflows::new(
        app.clone(),
        backends.workflows.clone(),
        opts.region.clone(),
        cluster.node_id().to_string(),
    );
    background.push(workflows.start_background(clustered));
    let router = lambent_gateway::router(app.clone())
        .merge(lambent_aws_api::router(app.clone(), opts.region));
    let router = with_step_functions(router, workflows);
    let serving = tokio::spawn(async move {
        // Connection info gives routed functions the caller's address (`sourceIp`).
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("HTTP server failed: {e}");
        }
    });
    Ok(RunningServer {
        url: format!("http://{addr}"),
        addr,
        api_key,
        app,
        workers,
        stop: Some(stop),
        serving,
        background,
        grace: opts.shutdown_grace,
    })
}

/// The URL other nodes reach this one at, when `--advertise` is not given.
/// Answers the AWS Step Functions API (`POST /` with `X-Amz-Target: AWSStepFunctions.*`)
/// before the rest of the router sees the request.
fn with_step_functions(
    router: axum::Router,
    workflows: Arc<lambent_sfn_api::Workflows>,
) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        workflows,
        lambent_sfn_api::api::intercept,
    ))
}

fn advertised_url(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        let host = host_name().unwrap_or_else(|| "127.0.0.1".into());
        format!("http://{host}:{}", addr.port())
    } else {
        format!("http://{addr}")
    }
}

/// This node's load, for its heartbeat.
fn node_stats(invoker: &Invoker) -> NodeStats {
    let counts = invoker.counts(None, None);
    let (used, budget) = invoker.memory();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    NodeStats {
        warm: counts.idle as u64,
        busy: counts.busy as u64,
        inflight: counts.busy as u64,
        load: load / cores,
        memory_budget_mb: budget,
        memory_used_mb: used,
    }
}

/// Deletes activation records older than the retention, at start-up and then hourly (on one
/// node of a cluster: the holder of the pruner's lease).
async fn prune_activations(store: Arc<dyn Store>, cluster: Arc<Cluster>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        if !cluster.holds(PRUNER_LEASE) {
            continue;
        }

        let cutoff = lambent_core::now_ms() - retention.as_millis() as i64;
        match store.prune_activations(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("deleted {n} activation records past the retention"),
            Err(e) => tracing::warn!("could not prune activation records: {e}"),
        }
    }
}

/// The data dir's API key, generated on first use.
fn generated_key(data: &Path) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join("api-key");
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = format!("lk_{}", hex::encode(rand::random::<[u8; 24]>()));
    let tmp = data.join(".api-key.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(key.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(key)
}
