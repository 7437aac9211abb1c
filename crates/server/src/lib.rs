//! One Lambent node on the embedded default: lays out the data dir (SQLite metadata, code blobs,
//! unpacked code, runtime clients, the API key), checks the host can isolate sandboxes, wires
//! store, invoker, gateway and the Lambda-compatible API together and serves HTTP until told to
//! stop.
//!
//! ```text
//! <data-dir>/lambent.db      SQLite (WAL): functions, versions, aliases, API and access keys,
//!                            activation records, async events, dead letters, schedules,
//!                            routes, queues and their messages, topics, subscriptions, mappings
//! <data-dir>/blobs/<sha256>  code zips as uploaded
//! <data-dir>/code/<sha256>/  unpacked code, bind-mounted read-only at /var/task
//! <data-dir>/runtimes/       Lambent's runtime clients, bind-mounted read-only at /var/runtime
//! <data-dir>/sandboxes/      sandbox scratch (mount points)
//! <data-dir>/api-key         the default namespace's generated API key (mode 0600)
//! ```

mod runtimes;

use lambent_core::metering::Prices;
use lambent_core::DEFAULT_NAMESPACE;
use lambent_events::{Events, Runner, WorkerOptions};
use lambent_gateway::{ApiError, ApiKeys, App, Registry, RegistryRunner, RouteTable};
use lambent_invoker::{Invoker, InvokerConfig, RecordSink};
use lambent_queues::{QueueError, Queues};
use lambent_sandbox::{Host, HostOptions, Isolation, Layers, SandboxError};
use lambent_store::blobs::FsBlobs;
use lambent_store::bus::{Bus, LocalBus};
use lambent_store::lambda::AccessKey;
use lambent_store::package::CodeDirs;
use lambent_store::recorder::Recorder;
use lambent_store::{Store, StoreError};
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
    pruning: JoinHandle<()>,
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

    /// Stops accepting requests, lets running ones finish, kills idle sandboxes and writes the
    /// pending activation records.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.serving).await;
        self.workers.stop();
        self.pruning.abort();
        self.app.queues.shutdown();
        self.app.registry.invoker().shutdown();
        self.app.recorder.flush().await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.pruning.abort();
        self.app.queues.shutdown();
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

    let sqlite = Arc::new(SqliteStore::open(&data.join("lambent.db"))?);
    let store: Arc<dyn Store> = sqlite.clone();
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
        ..defaults
    };
    // A package's requirements.txt is installed with the interpreter its sandboxes run.
    let python = config.python.clone();
    let invoker = Invoker::new(host, config, opts.record_activations.then_some(sink));
    let registry = Registry::load(
        store.clone(),
        FsBlobs::open(data.join("blobs"))?,
        CodeDirs::open(data.join("code"))
            .map_err(in_data)?
            .installing_requirements_with(python),
        invoker,
    )
    .await?;
    let routes = RouteTable::load(sqlite.clone()).await?;
    let queues = Queues::new(sqlite.clone(), registry.invoker().config().region.clone());
    let pruning = tokio::spawn(prune_activations(store.clone(), opts.activation_retention));
    let bus: Arc<dyn Bus> = Arc::new(LocalBus::new(lambent_core::LOCAL_NODE));
    let events = Events::start(sqlite, &registry.invoker().config().region, bus);
    let app = Arc::new(App {
        prices: opts.prices,
        store,
        registry,
        recorder,
        keys: ApiKeys::default(),
        events: events.clone(),
        routes,
        queues,
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
    let workers = events
        .run_workers(
            runner,
            WorkerOptions {
                concurrency: opts.async_concurrency.max(1),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ServerError::Store(StoreError::Database(e.to_string())))?;
    app.queues
        .start(Arc::new(RegistryRunner(Arc::downgrade(&app))))
        .await?;

    let listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .map_err(|e| ServerError::Listen(opts.listen, e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServerError::Listen(opts.listen, e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let router = lambent_gateway::router(app.clone())
        .merge(lambent_aws_api::router(app.clone(), opts.region));
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
        pruning,
    })
}

/// Deletes activation records older than the retention, at start-up and then hourly.
async fn prune_activations(store: Arc<dyn Store>, retention: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
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
