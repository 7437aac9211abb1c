//! A Lambent server running inside the CLI process (for `up` and `dev`).
//!
//! The server runs on the worker threads of a multi-thread tokio runtime owned here; the main
//! thread stays outside any async context, so the CLI's blocking HTTP client (which must not be
//! used from async code) can talk to the server from it. SIGINT and SIGTERM are turned into a
//! callback; a second one exits at once.

use crate::config;
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
}

impl ServerArgs {
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

impl Embedded {
    /// Starts a server; returns once it listens. `default_log` is the log filter used when
    /// `LAMBENT_LOG` is not set.
    pub fn start(args: &ServerArgs, default_log: &str) -> Result<Embedded> {
        init_logging(default_log);
        let data_dir = args.data_dir()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("lambent-server")
            .build()
            .context("cannot start the async runtime")?;
        let mut opts = lambent_server::ServerOptions::new(args.listen, data_dir.clone());
        opts.insecure_no_sandbox = args.insecure_no_sandbox;
        opts.api_key = config::env_api_key();
        let server = rt
            .block_on(lambent_server::start(opts))
            .context("cannot start Lambent")?;
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
