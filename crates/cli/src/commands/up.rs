//! `lambent up`: start a server in this process, write the client config, optionally deploy
//! functions, and serve until SIGINT or SIGTERM.
//!
//! The first two lines on stdout are a contract (tests and scripts read them):
//!
//! ```text
//! lambent is up at http://127.0.0.1:8080
//! api key: <key>
//! ```
//!
//! On stderr, one line per AWS SDK that comes with the runtimes: where it lives, or why it is
//! missing (or that it is being fetched in the background; the log says when it is ready).

use super::deploy::{invoke_hint, Project};
use super::embedded::{Embedded, ServerArgs};
use super::Ctx;
use crate::client::Client;
use crate::manifest::Overrides;
use anyhow::Result;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Deploy this folder, lambent.yaml or zip once the server is up, with its routes,
    /// schedules, workflows, sequences and mappings, as `lambent deploy` does; repeatable.
    #[arg(long, value_name = "PATH")]
    pub deploy: Vec<PathBuf>,
}

pub fn run(_ctx: &Ctx, args: UpArgs) -> Result<ExitCode> {
    // Read what to deploy first: a typo in lambent.yaml should not need a server to show.
    let projects = args
        .deploy
        .iter()
        .map(|path| Project::read(path, &Overrides::default()))
        .collect::<Result<Vec<_>>>()?;

    let server = Embedded::start(&args.server, "info")?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    server.on_signal(move || {
        let _ = stop_tx.send(());
    })?;
    server.write_client_config();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "lambent is up at {}", server.url())?;
        if args.server.store.is_some() {
            writeln!(out, "cluster node: {}", server.node_id())?;
        }
        writeln!(out, "api key: {}", server.api_key())?;
        out.flush()?;
    }
    // Where the operator's key is (for `lambent ns`), beside the other notes on stderr.
    eprintln!("operator key (namespaces): {}", server.admin_key_source());
    for line in server.sdks() {
        eprintln!("{line}");
    }

    let mut code = ExitCode::SUCCESS;
    if !projects.is_empty() {
        let client = Client::new(server.url(), Some(server.api_key().to_string()))?;
        let mut first = None;
        for project in projects {
            match project.deploy(&client, false, false) {
                Ok((deployed, _)) => {
                    first = first.or_else(|| deployed.first().map(|f| f.name.clone()));
                }
                Err(e) => {
                    eprintln!("error: {}", super::describe(&e));
                    code = ExitCode::FAILURE;
                }
            }
        }
        if let Some(name) = first {
            println!(
                "{}",
                invoke_hint(server.url(), Some(server.api_key()), &name)
            );
        }
        std::io::stdout().flush()?;
    }

    // Serve until SIGINT or SIGTERM. A failed --deploy leaves the server up (the others may
    // have deployed); the exit code tells.
    let _ = stop_rx.recv();
    eprintln!("shutting down");
    server.shutdown();
    Ok(code)
}
