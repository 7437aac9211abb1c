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
//! <data-dir>/objects/        S3 object data (`lambent_objects::LocalDisk`; metadata in the store;
//!                             a cluster keeps it in NATS, `lambent_bus_nats::NatsObjectData`)
//! <data-dir>/api-key         the default namespace's generated API key (mode 0600)
//! <data-dir>/session-secret  signs the sandboxes' session credentials (mode 0600; a cluster
//!                            node derives it from the cluster's shared secret instead)
//! ```

pub mod buckets;
mod expect_continue;
pub mod notifications;
mod platform;
mod relay;
mod runtimes;
pub mod sdk;

pub use platform::aws_router;

use lambent_bus_nats::{NatsBlobs, NatsBus, NatsObjectData};
use lambent_cluster::node::{
    mapping_lease, Cluster, JoinOptions, StatsFn, PRUNER_LEASE, SCHEDULES_LEASE,
};
use lambent_cluster::placement::LoadBound;
use lambent_core::metering::Prices;
use lambent_core::DEFAULT_NAMESPACE;
use lambent_events::worker::{Home, IsLeader};
use lambent_events::{Events, Runner, WorkerOptions};
use lambent_gateway::credentials::{Credentials, SessionKeys};
use lambent_gateway::{ApiError, ApiKeys, App, Registry, RegistryRunner, RouteTable};
use lambent_invoker::{Invoker, InvokerConfig, PlatformHandle, RecordSink};
use lambent_objects::{LocalDisk, ObjectData};
use lambent_queues::{PollAll, PollGate};
use lambent_queues::{QueueError, Queues};
use lambent_sandbox::{Host, HostOptions, Isolation, Layers, SandboxError};
use lambent_store::blobs::{BlobStore, FsBlobs};
use lambent_store::bus::{Bus, LocalBus};
use lambent_store::cluster::{ClusterStore, NodeStats};
use lambent_store::events::EventStore;
use lambent_store::lambda::AccessKey;
use lambent_store::objects::ObjectStore;
use lambent_store::package::CodeDirs;
use lambent_store::queues::QueueStore;
use lambent_store::recorder::Recorder;
use lambent_store::routes::RouteStore;
use lambent_store::stream_mappings::StreamMappingStore;
use lambent_store::tables::TableStore;
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
    /// The operator's key (every namespace, and `/v1/namespaces`; `LAMBENT_ADMIN_KEY`);
    /// `None`: generated once per data dir, kept in `<data-dir>/admin-key`.
    pub admin_key: Option<String>,
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
    /// Runtimes of one pool that may want the CPU at once, per core (0: pools are never held;
    /// see [`InvokerConfig::runnable_per_core`]).
    pub runnable_per_core: f64,
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
    /// The S3 API's domain (`--s3-domain`): requests with this Host, or a subdomain of it
    /// (virtual-host style), go to S3; without it S3 is told by the signature's scope alone.
    pub s3_domain: Option<String>,
    /// How long the session credentials a sandbox gets are valid anywhere but through that
    /// sandbox's own endpoint (where they stay valid while it lives).
    pub session_lifetime: Duration,
    /// The machine-wide cache of the AWS SDKs that come with the runtimes (`None`: no SDKs).
    pub sdk_dir: Option<PathBuf>,
    /// Every invocation joins or starts a trace (off only to measure what tracing costs).
    pub tracing: bool,
    /// Where spans are exported over OTLP/HTTP (`--otlp-endpoint`, `LAMBENT_OTLP_ENDPOINT`);
    /// `None`: they are only kept with the activation records.
    pub otlp_endpoint: Option<String>,
}

impl ServerOptions {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> ServerOptions {
        let defaults = InvokerConfig::default();
        ServerOptions {
            listen,
            data_dir,
            insecure_no_sandbox: false,
            api_key: None,
            admin_key: None,
            keep_alive: defaults.keep_alive,
            namespace_concurrency: defaults.namespace_concurrency,
            memory_budget_mb: None,
            queue_timeout: defaults.queue_timeout,
            activation_retention: Duration::from_secs(7 * 24 * 3600),
            prices: Prices::default(),
            record_activations: true,
            freeze_idle: false,
            runnable_per_core: InvokerConfig::default().runnable_per_core,
            isolation_layers: Layers::ALL,
            async_concurrency: WorkerOptions::default().concurrency,
            region: DEFAULT_REGION.into(),
            access_key: None,
            store: None,
            bus: None,
            node_id: None,
            advertise: None,
            shutdown_grace: Duration::from_secs(30),
            s3_domain: None,
            session_lifetime: lambent_gateway::credentials::DEFAULT_SESSION_LIFETIME,
            sdk_dir: Some(default_sdk_dir()),
            tracing: true,
            otlp_endpoint: None,
        }
    }
}

/// `LAMBENT_SDK_DIR`, else [`sdk::DEFAULT_SDK_DIR`].
pub fn default_sdk_dir() -> PathBuf {
    std::env::var_os("LAMBENT_SDK_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(sdk::DEFAULT_SDK_DIR), PathBuf::from)
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
    #[error("the API key (or the operator's key) is empty or has whitespace")]
    BadApiKey,
    #[error("the operator's key (LAMBENT_ADMIN_KEY) must differ from the API key")]
    SameKeys,
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
    #[error("--otlp-endpoint: {0}")]
    Otlp(#[from] lambent_traces::ExportError),
}

/// A node that is serving. Dropping it without [`RunningServer::shutdown`] stops serving too.
pub struct RunningServer {
    url: String,
    addr: SocketAddr,
    api_key: String,
    admin_key: String,
    /// Where the generated operator key is kept (`None`: it was configured).
    admin_key_file: Option<PathBuf>,
    app: Arc<App>,
    workers: lambent_events::Running,
    stop: Option<oneshot::Sender<()>>,
    serving: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
    grace: Duration,
    sdks: sdk::SdkStatus,
    served_routes: Vec<(String, String)>,
}

impl RunningServer {
    /// Where the AWS SDKs that come with the runtimes stand (fetched in the background).
    pub fn sdks(&self) -> &sdk::SdkStatus {
        &self.sdks
    }

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
    /// The operator's key.
    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }
    /// The file the generated operator key is kept in (`None`: configured, not generated).
    pub fn admin_key_file(&self) -> Option<&Path> {
        self.admin_key_file.as_deref()
    }
    /// What makes cold starts fast that is not ready yet (`GET /healthz`'s `warming`).
    pub fn warming(&self) -> Vec<&'static str> {
        self.app.registry.invoker().warming()
    }

    /// Waits until the first cold start of every runtime is as fast as later ones (sandboxes
    /// made ahead, the Python zygote and its runtimes forked ahead, Node.js stem cells
    /// waiting), at most `within`; returns what is still warming up then (empty: ready).
    pub async fn warmed_up(&self, within: Duration) -> Vec<&'static str> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let warming = self.warming();
            if warming.is_empty() || tokio::time::Instant::now() >= deadline {
                return warming;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The routes the listener's router serves, as (method, path) read from the router
    /// itself (`HEAD` left out: `GET` routes serve it): what the access table must cover.
    pub fn served_routes(&self) -> &[(String, String)] {
        &self.served_routes
    }

    /// Sets namespace `namespace`'s share of this machine: the CPU weight and memory cap of
    /// the cgroup its sandboxes live under (see `Invoker::set_tenant_limits`).
    pub fn set_tenant_limits(
        &self,
        namespace: &str,
        limits: lambent_sandbox::TenantLimits,
    ) -> Result<(), SandboxError> {
        self.app
            .registry
            .invoker()
            .set_tenant_limits(namespace, limits)
    }

    /// The share of this machine namespace `namespace` has now (its settings', once applied).
    pub fn tenant_limits(&self, namespace: &str) -> lambent_sandbox::TenantLimits {
        self.app.registry.invoker().tenant_limits(namespace)
    }

    /// The directories of namespace `namespace`'s cgroup on this node, one per hierarchy.
    pub fn tenant_cgroup_dirs(&self, namespace: &str) -> Result<Vec<PathBuf>, SandboxError> {
        self.app.registry.invoker().tenant_cgroup_dirs(namespace)
    }

    /// Kills every sandbox of namespace `namespace` on this node and removes its cgroup tree
    /// (see `Invoker::remove_namespace`).
    pub async fn remove_namespace_sandboxes(
        &self,
        namespace: &str,
    ) -> Result<lambent_sandbox::TenantRemoval, SandboxError> {
        self.app
            .registry
            .invoker()
            .remove_namespace(namespace)
            .await
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
    tables: Arc<dyn TableStore>,
    stream_mappings: Arc<dyn StreamMappingStore>,
    objects: Arc<dyn ObjectStore>,
    /// S3 object bytes: the data dir's `objects/`, or the cluster's NATS object store.
    object_data: Arc<dyn ObjectData>,
    blobs: Arc<dyn BlobStore>,
    bus: Arc<dyn Bus>,
    /// Cluster mode: the membership table.
    cluster: Option<Arc<dyn ClusterStore>>,
    /// Cluster mode: the cluster's shared secret.
    secret: Option<String>,
    /// Cluster mode: the NATS client requests to one node go through.
    nats: Option<Arc<NatsBus>>,
    node_id: String,
}

impl Backends {
    fn of<S>(
        store: Arc<S>,
        object_data: Arc<dyn ObjectData>,
        blobs: Arc<dyn BlobStore>,
        bus: Arc<dyn Bus>,
        node_id: String,
    ) -> Self
    where
        S: Store
            + EventStore
            + RouteStore
            + QueueStore
            + ObjectStore
            + WorkflowStore
            + TableStore
            + StreamMappingStore,
    {
        Backends {
            store: store.clone(),
            events: store.clone(),
            routes: store.clone(),
            queues: store.clone(),
            workflows: store.clone(),
            tables: store.clone(),
            stream_mappings: store.clone(),
            objects: store,
            object_data,
            blobs,
            bus,
            cluster: None,
            secret: None,
            nats: None,
            node_id,
        }
    }

    /// The embedded default: SQLite and blobs in the data dir, an in-process bus.
    fn embedded(data: &Path) -> Result<Backends, ServerError> {
        let sqlite = Arc::new(SqliteStore::open(&data.join("lambent.db"))?);
        let blobs = Arc::new(FsBlobs::open(data.join("blobs"))?);
        let bus = Arc::new(LocalBus::new(lambent_core::LOCAL_NODE));
        let object_data = Arc::new(LocalDisk::open(data.join("objects")).map_err(objects_err)?);
        Ok(Backends::of(
            sqlite,
            object_data,
            blobs,
            bus,
            lambent_core::LOCAL_NODE.into(),
        ))
    }

    /// A cluster node: PostgreSQL for state, NATS for signals, code (cached in the data dir) and
    /// S3 object data.
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
        let object_data = Arc::new(NatsObjectData::for_bus(&bus, &identity.id).await?);
        tracing::info!(
            "joining cluster {} as node {node_id} (PostgreSQL at {}, NATS at {})",
            identity.id,
            pg.address(),
            bus.address()
        );
        let mut backends = Backends::of(pg.clone(), object_data, blobs, bus.clone(), node_id);
        backends.cluster = Some(pg);
        backends.nats = Some(bus);
        backends.secret = Some(identity.secret.clone());
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

/// Adapts the cluster's mapping leases to the queues' poll gate: a mapping (of a queue or a
/// table's stream) is polled on its function's home node (where the batches run warm), under
/// the mapping's lease.
struct MappingGate(Arc<Cluster>);

#[async_trait::async_trait]
impl PollGate for MappingGate {
    async fn may_poll(&self, id: &str, namespace: &str, function: &str) -> bool {
        let lease = mapping_lease(id);
        let key = lambent_store::events::function_key(namespace, function);
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
    let python = InvokerConfig::default().python;
    let sdk_cache = match &opts.sdk_dir {
        None => Err("turned off".to_string()),
        Some(dir) => sdk::SdkCache::open(dir, &runtime_dir, &python),
    };
    if let Err(why) = &sdk_cache {
        tracing::error!("no AWS SDKs come with the runtimes: {why}");
    }
    let state_dir = data.join("sandboxes");
    let layers = opts.isolation_layers;
    let sdk_dir = sdk_cache.as_ref().ok().map(|c| c.dir.clone());
    let host = tokio::task::spawn_blocking(move || {
        Host::detect(HostOptions {
            isolation,
            state_dir,
            layers,
            sdk_dir,
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
        None => kept_secret(data, "api-key", || {
            format!("lk_{}", hex::encode(rand::random::<[u8; 24]>()))
        })
        .map_err(in_data)?,
    };
    store
        .add_api_key(
            DEFAULT_NAMESPACE,
            &lambent_store::sha256_hex(api_key.as_bytes()),
        )
        .await?;
    let (admin_key, admin_key_file) = match opts.admin_key {
        Some(key) if key.is_empty() || key.chars().any(char::is_whitespace) => {
            return Err(ServerError::BadApiKey)
        }
        Some(key) => (key, None),
        None => (
            kept_secret(data, "admin-key", lambent_gateway::new_secret).map_err(in_data)?,
            Some(data.join("admin-key")),
        ),
    };
    if admin_key == api_key {
        return Err(ServerError::SameKeys);
    }
    store
        .add_key_with_role(
            DEFAULT_NAMESPACE,
            &lambent_store::sha256_hex(admin_key.as_bytes()),
            lambent_core::Role::Operator,
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
                role: lambent_core::Role::Owner,
                expires_ms: None,
                previous_secret: None,
            })
            .await?;
    }

    // Session credentials verify on every node of a cluster (derived from the cluster's shared
    // secret) or on this node across restarts (a secret kept in the data dir).
    let server_secret = match &backends.secret {
        Some(secret) => secret.clone(),
        None => kept_secret(data, "session-secret", || {
            hex::encode(rand::random::<[u8; 32]>())
        })
        .map_err(in_data)?,
    };
    let sessions = Arc::new(SessionKeys::new(
        server_secret.as_bytes(),
        opts.session_lifetime,
    ));
    let sandbox_aws = platform::SandboxAws::new(sessions.clone());

    let recorder = Recorder::start(store.clone());
    let trace_export = match &opts.otlp_endpoint {
        Some(endpoint) => Some(lambent_traces::Exporter::start(
            lambent_traces::ExportConfig::new(endpoint)?,
            lambent_traces::Platform::new(&opts.region),
        )),
        None => None,
    };
    let sink: RecordSink = {
        let recorder = recorder.clone();
        match trace_export.clone() {
            Some(export) => Arc::new(move |activation| {
                export.offer(&activation);
                recorder.record(activation)
            }),
            None => Arc::new(move |activation| recorder.record(activation)),
        }
    };
    let defaults = InvokerConfig::default();
    let config = InvokerConfig {
        keep_alive: opts.keep_alive,
        runtime_dir,
        namespace_concurrency: opts.namespace_concurrency,
        memory_budget_mb: opts.memory_budget_mb.unwrap_or(defaults.memory_budget_mb),
        queue_timeout: opts.queue_timeout,
        freeze_idle: opts.freeze_idle,
        runnable_per_core: opts.runnable_per_core,
        region: opts.region.clone(),
        node_id: backends.node_id.clone(),
        platform: Some(PlatformHandle(sandbox_aws.clone())),
        tracing: opts.tracing,
        ..defaults
    };
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
            cluster.want(SCHEDULES_LEASE).await;
            cluster.want(PRUNER_LEASE).await;
            cluster
        }
    };
    if opts.insecure_no_sandbox {
        // Unsandboxed functions run from <data>/code/<sha>/: Node.js finds the SDK for
        // JavaScript here, after the function's own node_modules.
        let link = data.join("code").join("node_modules");
        if link.symlink_metadata().is_err() {
            std::fs::create_dir_all(data.join("code"))
                .and_then(|()| {
                    std::os::unix::fs::symlink(data.join("runtimes/sdk/node/node_modules"), &link)
                })
                .map_err(in_data)?;
        }
    }
    let registry = Registry::load(
        store.clone(),
        backends.blobs.clone(),
        CodeDirs::open(data.join("code"))
            .map_err(in_data)?
            .installing_requirements_with(python)
            .installing_node_packages_with("npm"),
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
    let credentials = Credentials::new(store.clone(), sessions);
    let app = Arc::new(App {
        prices: opts.prices,
        credentials,
        store,
        registry,
        recorder,
        keys: ApiKeys::default(),
        events: events.clone(),
        routes,
        queues,
        bus: backends.bus.clone(),
        cluster: cluster.clone(),
        workflows: std::sync::OnceLock::new(),
        object_data: std::sync::OnceLock::new(),
        trace_export,
    });
    // The deployment serving a function now: for async events, and for the steps of sequences.
    let lookup: lambent_invoker::Lookup = {
        let app = Arc::downgrade(&app);
        Arc::new(move |ns, name| app.upgrade()?.registry.lookup(ns, name))
    };
    app.registry.invoker().set_lookup(lookup.clone());
    let runner = Runner {
        invoker: app.registry.invoker().clone(),
        lookup,
        recorder: app.recorder.clone(),
        deliver: Some(Arc::new(RegistryRunner(Arc::downgrade(&app)))),
    };
    let clustered = cluster.clustered();
    // Homes are bounded over the deployed functions: at most ceil((1 + ε) × the mean) per
    // node, ε from `LAMBENT_PLACEMENT_BOUND` (`num/den`, default 1/10; `off`: plain rendezvous).
    let bound = std::env::var("LAMBENT_PLACEMENT_BOUND").ok();
    if clustered && bound.as_deref() != Some("off") {
        let bound = bound
            .as_deref()
            .and_then(LoadBound::parse)
            .unwrap_or_default();
        let app = Arc::downgrade(&app);
        cluster.set_function_keys(
            Arc::new(move || app.upgrade().map(|a| a.registry.keys()).unwrap_or_default()),
            bound,
        );
    }
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
    let tables = Arc::new(lambent_dynamodb_api::Tables::new(
        backends.tables.clone(),
        opts.region.clone(),
    ));
    tables.set_storage_quota(app.registry.quotas.clone());
    app.queues.serve_streams(
        backends.stream_mappings.clone(),
        Arc::new(lambent_dynamodb_api::source::TableStreams(tables.clone())),
    );
    let gate: Arc<dyn PollGate> = match clustered {
        true => Arc::new(MappingGate(cluster.clone())),
        false => Arc::new(PollAll),
    };
    app.queues
        .start(Arc::new(RegistryRunner(Arc::downgrade(&app))), gate)
        .await?;
    let mut background = lambent_gateway::follow::follow(&app);
    background.push(pruning);
    background.push(app.registry.quotas.start(app.prices));
    app.queues.set_storage_quota(app.registry.quotas.clone());

    let (stop, stopped) = oneshot::channel::<()>();

    let objects = Arc::new(lambent_objects::Objects::new(
        backends.objects.clone(),
        backends.object_data.clone(),
        Arc::new(notifications::Notifier::new(app.clone())),
        opts.region.clone(),
    ));
    objects.set_storage_quota(app.registry.quotas.clone());
    let _ = app.object_data.set(objects.clone());
    match objects.collection_interval() {
        // The node's own disk: collected once, before anything writes.
        None => report_collected(objects.collect_garbage().await.map_err(objects_err)?),
        // Shared data other nodes write to meanwhile: collected while serving.
        Some(interval) => background.push(tokio::spawn(collect_object_garbage(
            objects.clone(),
            interval,
        ))),
    }
    let s3 = Arc::new(lambent_s3_api::Endpoint::new(
        objects.clone(),
        app.clone(),
        opts.s3_domain.as_deref(),
    ));
    let workflows = lambent_sfn_api::Workflows::new(
        app.clone(),
        backends.workflows.clone(),
        opts.region.clone(),
        cluster.node_id().to_string(),
    );
    background.push(workflows.start_background(clustered));
    if let Some(nats) = &backends.nats {
        background.push(relay::serve(nats, &workflows).await?);
    }
    let _ = app
        .workflows
        .set(lambent_sfn_api::triggers::WorkflowTrigger::hook(&workflows));
    // Table housekeeping runs on one node of a cluster: the holder of the pruner's lease.
    let pruner = app.cluster.clone();
    background.push(lambent_dynamodb_api::streams::start_trimming(
        backends.tables.clone(),
        move || pruner.holds(PRUNER_LEASE),
    ));
    background.push(tokio::spawn(expire_table_items(
        tables.clone(),
        app.cluster.clone(),
        TTL_SWEEP,
    )));
    let dynamodb = Arc::new(lambent_dynamodb_api::Endpoint {
        tables: tables.clone(),
        app: app.clone(),
        region: opts.region.clone(),
    });
    let messaging = Arc::new(lambent_sqs_api::Endpoint {
        app: app.clone(),
        region: opts.region.clone(),
    });
    // The AWS services told by their requests rather than by paths of their own (S3 by its
    // signature, on any path; Step Functions, DynamoDB and SQS's JSON protocol by `X-Amz-Target`;
    // SQS's and SNS's query protocol by a form signed for `sqs` or `sns`) wrap whole routers: the
    // listener's, and the sandboxes' AWS router as a fallback service, so they see every path.
    let aws = Arc::new(AwsServices {
        dynamodb,
        workflows: workflows.clone(),
        s3,
        messaging,
    });
    let aws_services = |router: axum::Router| {
        router.layer(axum::middleware::from_fn_with_state(
            aws.clone(),
            dispatch_aws,
        ))
    };
    let lambda = aws_router(app.clone(), opts.region);
    // A request expecting `100 Continue` answered unread closes its connection
    // (`expect_continue`). Here it is a layer of the sandboxes' router; on the node's listener
    // it wraps each connection's service instead, off the hot path's boxed layers.
    sandbox_aws.serve(
        aws_services(axum::Router::new().fallback_service(lambda.clone()))
            .layer(expect_continue::CloseUnlessRead),
    );
    // The Lambent API (`/v1`), which the console also serves to its signed-in pages.
    let v1 = lambent_gateway::router(app.clone())
        .merge(buckets::routes(app.clone(), objects))
        .merge(lambent_sfn_api::rest::routes(workflows.clone()))
        .merge(lambent_dynamodb_api::rest::routes(tables, app.clone()));
    let router = aws_services(
        v1.clone()
            .merge(lambda)
            .merge(lambent_console::router(app.clone(), v1)),
    );
    let served_routes = served_routes(&router);
    let sdks = match sdk_cache {
        Ok(cache) => {
            let status = cache.status.clone();
            if cache.incomplete() {
                let invoker = app.registry.invoker().clone();
                background.push(tokio::spawn(async move {
                    let cache = Arc::new(cache);
                    let outcomes = loop {
                        let fetcher = cache.clone();
                        let attempt =
                            tokio::task::spawn_blocking(move || fetcher.try_fetch_missing());
                        match attempt.await {
                            Ok(Some(outcomes)) => break outcomes,
                            Ok(None) => tokio::time::sleep(Duration::from_secs(1)).await,
                            Err(_) => return,
                        }
                    };
                    if outcomes
                        .iter()
                        .any(|(_, s)| matches!(s, sdk::SdkState::Ready(_)))
                    {
                        // Cold starts from now on fork zygotes that imported it.
                        invoker.shared_software_changed();
                    }
                    cache.publish(outcomes);
                }));
            }
            status
        }
        Err(why) => sdk::SdkCache::unavailable(why),
    };
    let serving = tokio::spawn(async move {
        // Connection info gives routed functions the caller's address (`sourceIp`); each
        // connection's service closes the connection of a request expecting `100 Continue`
        // answered unread (`expect_continue`).
        let service = tower::util::MapResponse::new(
            router.into_make_service_with_connect_info::<SocketAddr>(),
            |connection| tower::Layer::layer(&expect_continue::CloseUnlessRead, connection),
        );
        // Answers go out at once (a forwarding node's link, small JSON answers).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
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
        admin_key,
        admin_key_file,
        served_routes,
        app,
        workers,
        stop: Some(stop),
        serving,
        background,
        grace: opts.shutdown_grace,
        sdks,
    })
}

/// The AWS services that are told by their requests, not by paths of their own.
struct AwsServices {
    dynamodb: Arc<lambent_dynamodb_api::Endpoint>,
    workflows: Arc<lambent_sfn_api::Workflows>,
    s3: Arc<lambent_s3_api::Endpoint>,
    messaging: Arc<lambent_sqs_api::Endpoint>,
}

/// One middleware for all of them, each service's rule in turn (DynamoDB and Step Functions by
/// `X-Amz-Target`, S3 by its signature or Host, SQS and SNS by their protocols); everything else
/// goes on to `/v1`, the Lambda API and routes. One layer, not one per service: each layer of
/// the router costs every request a boxed service and future (the four there were cost a warm
/// invoke ~13 µs of server CPU, ~12% of the compiled no-op's rate at 64 connections).
async fn dispatch_aws(
    axum::extract::State(aws): axum::extract::State<Arc<AwsServices>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if lambent_dynamodb_api::api::is_dynamodb(&req) {
        return lambent_dynamodb_api::api::handle(&aws.dynamodb, req).await;
    }
    if lambent_sfn_api::api::is_step_functions(&req) {
        return lambent_sfn_api::api::handle(aws.workflows.clone(), req).await;
    }
    if aws.s3.wants(&req) {
        // The request's ids and caller go into the notifications it causes, and its answer.
        let request = notifications::RequestInfo::of(&req);
        let mut response = request.clone().scope(aws.s3.handle(req)).await;
        request.stamp(response.headers_mut());
        return response.map(axum::body::Body::new);
    }
    if let Some(protocol) = lambent_sqs_api::protocol_of(&req) {
        return lambent_sqs_api::handle(&aws.messaging, protocol, req).await;
    }
    next.run(req).await
}

fn report_collected(collected: u64) {
    if collected > 0 {
        tracing::info!("removed {collected} pieces of object data no object refers to");
    }
}

/// How often items whose TTL has passed are looked for and deleted.
const TTL_SWEEP: Duration = Duration::from_secs(2);

/// Deletes the expired items of tables with TTL on, every `interval`, on one node of a
/// cluster (the holder of the pruner's lease). A failed round is logged and tried again at the
/// next; each deletion checks expiry again, so a sweep overlapping a lease hand-over does no
/// harm.
async fn expire_table_items(
    tables: Arc<lambent_dynamodb_api::Tables>,
    cluster: Arc<Cluster>,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        if !cluster.holds(PRUNER_LEASE) {
            continue;
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        match tables.expire(now).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!("deleted {n} expired table items"),
            Err(e) => tracing::warn!("deleting expired table items: {e}"),
        }
    }
}

/// Collects object data no object refers to now and every `interval` (a failed round is
/// logged and tried again at the next).
async fn collect_object_garbage(objects: Arc<lambent_objects::Objects>, interval: Duration) {
    loop {
        match objects.collect_garbage().await {
            Ok(collected) => report_collected(collected),
            Err(e) => tracing::warn!("collecting object data garbage: {e}"),
        }
        tokio::time::sleep(interval).await;
    }
}

fn objects_err(e: lambent_objects::ObjectError) -> ServerError {
    match e {
        lambent_objects::ObjectError::Store(e) => ServerError::Store(e),
        other => ServerError::Store(StoreError::Database(other.to_string())),
    }
}

/// The URL other nodes reach this one at, when `--advertise` is not given.
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

/// Records the rollups backfill folds per step (one transaction each).
const BACKFILL_STEP: usize = 1000;
/// The pause between backfill steps, so live writes and pages go between them.
const BACKFILL_PAUSE: Duration = Duration::from_millis(20);

/// Folds the records written before the rollups existed (a data dir upgraded from an older
/// version) into them, [`BACKFILL_STEP`] records per step, until none remain; a failed step
/// is retried after a while. Every node of a cluster may run it: the store hands each step's
/// records to one of them.
async fn backfill_rollups(store: &dyn Store) {
    let mut done = 0u64;
    loop {
        match store.backfill_rollups(BACKFILL_STEP).await {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => {
                tracing::warn!("could not roll up older activation records (retrying): {e}");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        }
        tokio::time::sleep(BACKFILL_PAUSE).await;
    }
    if done > 0 {
        tracing::info!("rolled up {done} activation records written before the rollups");
    }
}

/// Rolls up older records first ([`backfill_rollups`]: pruning keeps the rollups of what it
/// deletes), then deletes activation records older than the retention, at once and then
/// hourly (on one node of a cluster: the holder of the pruner's lease).
async fn prune_activations(store: Arc<dyn Store>, cluster: Arc<Cluster>, retention: Duration) {
    backfill_rollups(store.as_ref()).await;
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

/// The routes a router serves, as (method, path), read from its `Debug` form (axum names its
/// paths and each path's method endpoints there, and nowhere else): the access table's test
/// checks each has a rule. `HEAD` is left out (a `GET` route serves it, under the `GET` rule).
fn served_routes(router: &axum::Router) -> Vec<(String, String)> {
    let text = format!("{router:?}");
    // The router's own routes come before its fallback router's (axum's catch-all).
    let text = text.split("fallback_router").next().unwrap_or("");
    let id_after = |s: &str| -> Option<u32> {
        let digits: String = s.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    // `RouteId(N): "/path"` in the path node.
    let mut paths = std::collections::HashMap::new();
    for piece in text.split("RouteId(").skip(1) {
        let Some(id) = id_after(piece) else { continue };
        if let Some(path) = piece.split_once("): \"").map(|(_, rest)| rest) {
            if let Some(path) = path.split('"').next() {
                paths.insert(id, path.to_string());
            }
        }
    }
    // `RouteId(N): MethodRouter(MethodRouter { get: Route, head: None, … })` in the routes.
    let mut served = Vec::new();
    for piece in text.split("RouteId(").skip(1) {
        let Some(id) = id_after(piece) else { continue };
        let Some(fields) = piece.split_once("MethodRouter { ").map(|(_, f)| f) else {
            continue;
        };
        let Some(path) = paths.get(&id) else { continue };
        for method in [
            "get", "delete", "options", "patch", "post", "put", "trace", "connect",
        ] {
            let served_here = fields
                .split(", ")
                .find_map(|f| f.strip_prefix(&format!("{method}: ")))
                .is_some_and(|v| !v.starts_with("None"));
            if served_here && path != "/" && !path.contains("__private__") {
                served.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    served.sort();
    served.dedup();
    served
}

/// A secret of the data dir (`<data>/<name>`, mode 0600), made by `generate` on first use.
fn kept_secret(
    data: &Path,
    name: &str,
    generate: impl FnOnce() -> String,
) -> std::io::Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = data.join(name);
    match std::fs::read_to_string(&path) {
        Ok(key) if !key.trim().is_empty() => return Ok(key.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let key = generate();
    let tmp = data.join(format!(".{name}.tmp"));
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

#[cfg(test)]
mod served_routes_tests {
    use axum::routing::{get, put};

    async fn ok() -> &'static str {
        "ok"
    }

    #[test]
    fn a_router_names_its_paths_and_their_methods() {
        let router = axum::Router::new()
            .route("/a/{x}", get(ok).post(ok))
            .route("/b", put(ok).delete(ok))
            .route_layer(axum::middleware::from_fn(
                |r: axum::extract::Request, n: axum::middleware::Next| n.run(r),
            ))
            .fallback(ok);
        let got = super::served_routes(&router);
        let want: Vec<(String, String)> = [
            ("DELETE", "/b"),
            ("GET", "/a/{x}"),
            ("POST", "/a/{x}"),
            ("PUT", "/b"),
        ]
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
