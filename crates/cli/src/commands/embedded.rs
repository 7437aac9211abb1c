//! A Lambent server running inside the CLI process (for `up` and `dev`).
//!
//! The server runs on the worker threads of a multi-thread tokio runtime owned here; the main
//! thread stays outside any async context, so the CLI's blocking HTTP client (which must not be
//! used from async code) can talk to the server from it. SIGINT and SIGTERM are turned into a
//! callback; a second one exits at once.

use crate::{config, duration};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The flags that say how to run an embedded server.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// The address to listen on (port 0: any free port).
    #[arg(long, default_value = config::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Where functions, code and activation records are kept [default: ~/.local/share/lambent].
    #[arg(long, env = "LAMBENT_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Run functions as plain processes without isolation, e.g. when not root (development only).
    #[arg(long)]
    pub insecure_no_sandbox: bool,
    /// Seconds an idle sandbox stays warm, for functions that do not set their own keep_alive
    /// [default: 300].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_alive: Option<u64>,
    /// Concurrent invocations per namespace; functions' reserved concurrency is carved out of
    /// it [default: 1000].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub namespace_concurrency: Option<u32>,
    /// Memory budget of all live sandboxes, in MB (their configured memory adds up to at most
    /// this) [default: 3/4 of the host's memory].
    #[arg(long, value_name = "MB", value_parser = clap::value_parser!(u64).range(1..))]
    pub memory_budget: Option<u64>,
    /// How long an invocation may wait for sandbox memory to free up before it is throttled
    /// (429) [default: 2000].
    #[arg(long, value_name = "MS")]
    pub queue_timeout_ms: Option<u64>,
    /// How long activation records are kept: 12h, 7d, 2w, … [default: 7d].
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub activation_retention: Option<Duration>,
    /// Price per request in USD, for cost reports [default: 0.0000002, AWS Lambda's x86 list
    /// price].
    #[arg(long, value_name = "USD", value_parser = parse_price)]
    pub price_per_request: Option<f64>,
    /// Price per GB-second in USD, for cost reports [default: 0.0000166667, AWS Lambda's x86
    /// list price].
    #[arg(long, value_name = "USD", value_parser = parse_price)]
    pub price_per_gb_second: Option<f64>,
    /// Price per state transition of a workflow execution in USD, for cost reports [default:
    /// 0.000025, AWS Step Functions Standard's $0.025 per 1,000].
    #[arg(long, env = "LAMBENT_PRICE_PER_TRANSITION", value_name = "USD", value_parser = parse_price)]
    pub price_per_transition: Option<f64>,
    /// Freeze idle sandboxes (cgroup freezer) and thaw them for their next invocation: no CPU
    /// for idle sandboxes, a thaw on the warm path.
    #[arg(long)]
    pub freeze_idle: bool,
    /// How many runtimes of one function may want the CPU at once, per core: a function whose
    /// runtimes compute for a share r of each invocation gets at most cores × N ÷ r sandboxes
    /// (more invocations queue for them, first come first served); one that mostly waits is never held. 0: never hold
    /// a function's sandboxes. [default: 6]
    #[arg(long, env = "LAMBENT_RUNNABLE_PER_CORE", value_name = "N", value_parser = parse_per_core)]
    pub runnable_per_core: Option<f64>,
    /// Write no activation records: a benchmarking knob, to measure what recording costs at
    /// a rate. Without records, activations, logs, traces and `/v1/usage` stay empty (the
    /// metrics still count every invocation).
    #[arg(long, env = "LAMBENT_NO_ACTIVATION_RECORDS")]
    pub no_activation_records: bool,
    /// Region in ARNs and AWS_REGION; AWS clients must sign their requests for it.
    #[arg(long, env = "LAMBENT_REGION", default_value = lambent_server::DEFAULT_REGION,
          value_name = "REGION", value_parser = parse_region)]
    pub region: String,
    /// An access key id of the default namespace for the AWS Lambda-compatible API, stored at
    /// start-up (with --secret-access-key); more with `lambent keys create`.
    #[arg(
        long,
        env = "LAMBENT_ACCESS_KEY_ID",
        value_name = "ID",
        requires = "secret_access_key"
    )]
    pub access_key_id: Option<String>,
    /// The secret of --access-key-id (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "LAMBENT_SECRET_ACCESS_KEY",
        hide_env_values = true,
        value_name = "SECRET",
        requires = "access_key_id"
    )]
    pub secret_access_key: Option<String>,
    /// Join a cluster: its PostgreSQL (state), e.g. postgres://lambent@db:5432/lambent; needs
    /// --bus too. Without both, Lambent runs on its embedded store.
    #[arg(long, env = "LAMBENT_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Join a cluster: its NATS server with JetStream (signals, code), e.g. nats://nats:4222;
    /// needs --store too.
    #[arg(long, env = "LAMBENT_BUS", value_name = "URL")]
    pub bus: Option<String>,
    /// This node's id in the cluster [default: host name and port].
    #[arg(long, env = "LAMBENT_NODE_ID", value_name = "ID")]
    pub node_id: Option<String>,
    /// The URL other nodes reach this one at [default: http://<listen address>].
    #[arg(long, env = "LAMBENT_ADVERTISE", value_name = "URL")]
    pub advertise: Option<String>,
    /// Seconds a stopping node (SIGTERM) lets running invocations finish [default: 30].
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace: Option<u64>,
    /// The S3 API's domain: requests to it (path-style) or to BUCKET.DOMAIN (virtual-host
    /// style) go to S3. Without it, S3 requests are told by their SigV4 scope alone.
    #[arg(long, env = "LAMBENT_S3_DOMAIN", value_name = "DOMAIN")]
    pub s3_domain: Option<String>,
    /// Where the AWS SDKs that come with the runtimes (boto3, the AWS SDK for JavaScript v3)
    /// are kept, fetched once per machine from PyPI and npm [default: /var/cache/lambent/sdk].
    #[arg(long, env = "LAMBENT_SDK_DIR", value_name = "DIR")]
    pub sdk_dir: Option<PathBuf>,
    /// Export every invocation's spans over OTLP/HTTP (protobuf) to this collector, e.g.
    /// http://127.0.0.1:4318 (`/v1/traces` is appended unless the URL ends with it). Batched,
    /// bounded; spans that do not fit are dropped and counted in /metrics.
    #[arg(long, env = "LAMBENT_OTLP_ENDPOINT", value_name = "URL")]
    pub otlp_endpoint: Option<String>,
}

/// A region name such as `us-east-1`: lower-case letters, digits and `-`.
fn parse_region(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid region '{s}': use lower-case letters, digits and '-', e.g. us-east-1"
        ))
    }
}

/// A price: a finite number, 0 or more.
fn parse_per_core(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        _ => Err(format!(
            "invalid count '{s}': expected a number of runtimes per core, 0 or more, e.g. 16"
        )),
    }
}

fn parse_price(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!(
            "invalid price '{s}': expected a number of US dollars, e.g. 0.0000002"
        )),
    }
}

impl ServerArgs {
    /// The server options these flags say; unset flags keep the server's defaults.
    pub fn options(&self, data_dir: PathBuf) -> lambent_server::ServerOptions {
        let mut opts = lambent_server::ServerOptions::new(self.listen, data_dir);
        opts.insecure_no_sandbox = self.insecure_no_sandbox;
        opts.freeze_idle = self.freeze_idle;
        if let Some(n) = self.runnable_per_core {
            opts.runnable_per_core = n;
        }
        opts.record_activations = !self.no_activation_records;
        opts.region = self.region.clone();
        if let (Some(id), Some(secret)) = (&self.access_key_id, &self.secret_access_key) {
            opts.access_key = Some((id.clone(), secret.clone()));
        }
        if let Some(s) = self.keep_alive {
            opts.keep_alive = Duration::from_secs(s);
        }
        if let Some(n) = self.namespace_concurrency {
            opts.namespace_concurrency = n;
        }
        if self.memory_budget.is_some() {
            opts.memory_budget_mb = self.memory_budget;
        }
        if let Some(ms) = self.queue_timeout_ms {
            opts.queue_timeout = Duration::from_millis(ms);
        }
        if let Some(d) = self.activation_retention {
            opts.activation_retention = d;
        }
        if let Some(p) = self.price_per_request {
            opts.prices.per_request = p;
        }
        if let Some(p) = self.price_per_gb_second {
            opts.prices.per_gb_second = p;
        }
        if let Some(p) = self.price_per_transition {
            opts.prices.per_transition = p;
        }
        opts.store.clone_from(&self.store);
        opts.bus.clone_from(&self.bus);
        opts.node_id.clone_from(&self.node_id);
        opts.advertise.clone_from(&self.advertise);
        opts.s3_domain.clone_from(&self.s3_domain);
        if let Some(s) = self.shutdown_grace {
            opts.shutdown_grace = Duration::from_secs(s);
        }
        if let Some(dir) = &self.sdk_dir {
            opts.sdk_dir = Some(dir.clone());
        }
        opts.otlp_endpoint.clone_from(&self.otlp_endpoint);
        opts
    }

    pub fn data_dir(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(d) => Ok(d.clone()),
            None => config::default_data_dir(),
        }
    }
}

/// A started server and the runtime it runs on.
pub struct Embedded {
    rt: tokio::runtime::Runtime,
    server: Option<lambent_server::RunningServer>,
    data_dir: PathBuf,
}

/// How long `Embedded::start` waits for the node to be ready for fast cold starts.
const WARM_UP_WAIT: Duration = Duration::from_secs(30);

impl Embedded {
    /// Starts a server; returns once it listens and what makes first cold starts fast is
    /// ready (sandboxes made ahead, the Python zygote, Node.js stem cells: `/healthz` says
    /// `ready`), or after [`WARM_UP_WAIT`] with a warning. `default_log` is the log filter
    /// used when `LAMBENT_LOG` is not set.
    pub fn start(args: &ServerArgs, default_log: &str) -> Result<Embedded> {
        init_logging(default_log);
        let data_dir = args.data_dir()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("lambent-server")
            .build()
            .context("cannot start the async runtime")?;
        let mut opts = args.options(data_dir.clone());
        opts.api_key = config::env_api_key();
        opts.admin_key = config::env_admin_key();
        let server = rt
            .block_on(lambent_server::start(opts))
            .context("cannot start Lambent")?;
        let warming = rt.block_on(server.warmed_up(WARM_UP_WAIT));
        if !warming.is_empty() {
            eprintln!(
                "warning: still warming up after {} s (first cold starts are slower until then): {}",
                WARM_UP_WAIT.as_secs(),
                warming.join(", ")
            );
        }
        Ok(Embedded {
            rt,
            server: Some(server),
            data_dir,
        })
    }

    pub fn url(&self) -> &str {
        self.server.as_ref().map_or("", |s| s.url())
    }

    pub fn api_key(&self) -> &str {
        self.server.as_ref().map_or("", |s| s.api_key())
    }

    /// Where the operator's key is: the file it was generated into, or the variable it
    /// came from.
    pub fn admin_key_source(&self) -> String {
        match self.server.as_ref().and_then(|s| s.admin_key_file()) {
            Some(file) => file.display().to_string(),
            None => format!("${}", config::ADMIN_KEY_ENV),
        }
    }

    /// Where the AWS SDKs that come with the runtimes live, or why they are missing: one line
    /// each.
    pub fn sdks(&self) -> Vec<String> {
        self.server
            .as_ref()
            .map_or_else(Vec::new, |s| s.sdks().describe())
    }

    /// The node's id (`local` on the embedded store).
    pub fn node_id(&self) -> &str {
        self.server.as_ref().map_or("", |s| s.node_id())
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Writes the client config file so that other `lambent` commands find this server.
    pub fn write_client_config(&self) {
        let Some(path) = config::config_path() else {
            return;
        };
        let c = config::ClientConfig {
            url: Some(self.url().to_string()),
            api_key: Some(self.api_key().to_string()),
        };
        if let Err(e) = config::save(&path, &c) {
            eprintln!("warning: {}", super::describe(&e));
        }
    }

    /// Calls `stop` on the first SIGINT or SIGTERM; exits the process on the second.
    pub fn on_signal(&self, stop: impl FnOnce() + Send + 'static) -> Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        // Register now, so that no signal between here and the task's first poll is lost.
        let (mut int, mut term) = {
            let _in_runtime = self.rt.enter();
            (
                signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
                signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            )
        };
        self.rt.spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            stop();
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            eprintln!("stopping now");
            std::process::exit(130);
        });
        Ok(())
    }

    /// Stops the server gracefully: running invocations finish, sandboxes are killed, records
    /// are written.
    pub fn shutdown(mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
        self.rt.shutdown_timeout(Duration::from_secs(5));
    }
}

/// Server logs go to stderr, filtered by `LAMBENT_LOG` (e.g. `debug`, `lambent_invoker=trace`).
fn init_logging(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("LAMBENT_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cmd {
        #[command(flatten)]
        server: ServerArgs,
    }

    fn options(args: &[&str]) -> lambent_server::ServerOptions {
        let cmd = Cmd::try_parse_from(std::iter::once("up").chain(args.iter().copied())).unwrap();
        cmd.server.options(PathBuf::from("/data"))
    }

    #[test]
    fn defaults_are_the_servers_and_the_documented_ones() {
        let o = options(&[]);
        let server = lambent_server::ServerOptions::new(o.listen, PathBuf::from("/data"));
        // The help texts name these defaults.
        assert_eq!(o.keep_alive, Duration::from_secs(300));
        assert_eq!(o.namespace_concurrency, 1000);
        assert_eq!(o.memory_budget_mb, None);
        assert_eq!(o.queue_timeout, Duration::from_millis(2000));
        assert_eq!(o.activation_retention, Duration::from_secs(7 * 86_400));
        assert_eq!(o.prices, lambent_core::metering::Prices::default());
        assert!((o.prices.per_request - 0.000_000_2).abs() < 1e-18);
        assert_eq!(o.prices.per_gb_second, 0.000_016_666_7);
        assert_eq!(
            (o.keep_alive, o.namespace_concurrency, o.queue_timeout),
            (
                server.keep_alive,
                server.namespace_concurrency,
                server.queue_timeout
            )
        );
        assert!(!o.insecure_no_sandbox);
        assert!(o.record_activations && server.record_activations);
    }

    #[test]
    fn flags_map_to_options() {
        let o = options(&[
            "--keep-alive",
            "60",
            "--namespace-concurrency",
            "50",
            "--memory-budget",
            "2048",
            "--queue-timeout-ms",
            "500",
            "--activation-retention",
            "1d",
            "--price-per-request",
            "0.0000001",
            "--price-per-gb-second",
            "0.00001",
            "--price-per-transition",
            "0.00005",
            "--insecure-no-sandbox",
            "--no-activation-records",
        ]);
        assert_eq!(o.keep_alive, Duration::from_secs(60));
        assert_eq!(o.namespace_concurrency, 50);
        assert_eq!(o.memory_budget_mb, Some(2048));
        assert_eq!(o.queue_timeout, Duration::from_millis(500));
        assert_eq!(o.activation_retention, Duration::from_secs(86_400));
        assert_eq!(o.prices.per_request, 0.000_000_1);
        assert_eq!(o.prices.per_gb_second, 0.000_01);
        assert_eq!(o.prices.per_transition, 0.000_05);
        assert!(o.insecure_no_sandbox);
        assert!(!o.record_activations);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &["--keep-alive", "0"][..],
            &["--namespace-concurrency", "0"],
            &["--activation-retention", "7"],
            &["--price-per-request", "-1"],
            &["--price-per-gb-second", "NaN"],
        ] {
            let args = std::iter::once("up").chain(bad.iter().copied());
            assert!(Cmd::try_parse_from(args).is_err(), "{bad:?}");
        }
    }
}
