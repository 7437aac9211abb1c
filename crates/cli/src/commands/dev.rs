//! `lambent dev PATH`: deploy warm, then redeploy on every change until Ctrl-C.
//!
//! Uses the server at the configured URL if one answers `/healthz`, else starts one in this
//! process. Changes are debounced (an editor's save is several events) and mapped to the
//! functions whose code they touch; a change to `lambent.yaml` redeploys everything it lists.

use super::deploy::{deploy_all, deploy_one, deployed_line, invoke_hint};
use super::embedded::{Embedded, ServerArgs};
use super::Ctx;
use crate::client::{Client, Function};
use crate::manifest::{self, Deployment, Overrides, MANIFEST_FILE};
use crate::package;
use anyhow::{Context, Result};
use clap::Args;
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Quiet time after the last file event before redeploying.
const DEBOUNCE: Duration = Duration::from_millis(100);

#[derive(Debug, Args)]
pub struct DevArgs {
    /// A folder (with or without a lambent.yaml) or a lambent.yaml.
    pub path: PathBuf,
    /// Deploy only this function of a many-functions lambent.yaml, or name the folder's function.
    #[arg(long)]
    pub name: Option<String>,
    /// The runtime, when there is no lambent.yaml saying it.
    #[arg(long)]
    pub runtime: Option<String>,
    /// The handler, when there is no lambent.yaml saying it.
    #[arg(long)]
    pub handler: Option<String>,
    /// How to run the embedded server, if one is started.
    #[command(flatten)]
    pub server: ServerArgs,
}

enum DevEvent {
    Fs(notify::Result<notify::Event>),
    Stop,
}

pub fn run(ctx: &Ctx, args: DevArgs) -> Result<ExitCode> {
    let root = std::fs::canonicalize(&args.path)
        .with_context(|| format!("cannot watch {}", args.path.display()))?;
    let overrides = Overrides {
        name: args.name.clone(),
        runtime: args.runtime.clone(),
        handler: args.handler.clone(),
        ..Default::default()
    };
    let deployments = manifest::resolve(&root, &overrides)?;

    let (tx, rx) = mpsc::channel::<DevEvent>();
    let target = ctx.target()?;
    let probe = Client::new(&target.url, target.api_key.clone())?;
    let (client, embedded) = if probe.healthy() {
        println!("using Lambent at {}", probe.url());
        (probe, None)
    } else {
        let e = Embedded::start(&args.server, "warn")?;
        let stop = tx.clone();
        e.on_signal(move || {
            let _ = stop.send(DevEvent::Stop);
        })?;
        e.write_client_config();
        println!(
            "lambent is up at {} (data dir {})",
            e.url(),
            e.data_dir().display()
        );
        println!("api key: {}", e.api_key());
        let client = Client::new(e.url(), Some(e.api_key().to_string()))?;
        (client, Some(e))
    };

    let result = watch_loop(&client, &root, &overrides, deployments, tx, rx);
    if let Some(e) = embedded {
        eprintln!("shutting down");
        e.shutdown();
    }
    result
}

fn watch_loop(
    client: &Client,
    root: &Path,
    overrides: &Overrides,
    deployments: Vec<Deployment>,
    tx: mpsc::Sender<DevEvent>,
    rx: mpsc::Receiver<DevEvent>,
) -> Result<ExitCode> {
    let deployed = deploy_all(client, &deployments, true, |f| print_deployed(f, None))?;
    if let Some(f) = deployed.first() {
        println!("{}", invoke_hint(client.url(), client.api_key(), &f.name));
    }

    let watch_root = if root.is_dir() {
        root.to_path_buf()
    } else {
        root.parent().unwrap_or(Path::new("/")).to_path_buf()
    };
    let mut watcher = notify::recommended_watcher(move |res| {
        let _ = tx.send(DevEvent::Fs(res));
    })
    .context("cannot watch files")?;
    watcher
        .watch(&watch_root, RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", watch_root.display()))?;
    println!(
        "watching {} for changes (Ctrl-C to stop)",
        watch_root.display()
    );

    loop {
        let mut changed = BTreeSet::new();
        match rx.recv() {
            Ok(DevEvent::Stop) | Err(_) => return Ok(ExitCode::SUCCESS),
            Ok(DevEvent::Fs(ev)) => collect(ev, &watch_root, &mut changed),
        }
        // Debounce: wait until the files have been quiet for a moment.
        loop {
            match rx.recv_timeout(DEBOUNCE) {
                Ok(DevEvent::Stop) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Ok(ExitCode::SUCCESS)
                }
                Ok(DevEvent::Fs(ev)) => collect(ev, &watch_root, &mut changed),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
            }
        }
        if changed.is_empty() {
            continue;
        }
        redeploy(client, root, overrides, &changed);
    }
}

fn collect(ev: notify::Result<notify::Event>, root: &Path, changed: &mut BTreeSet<PathBuf>) {
    let ev = match ev {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("warning: watching files: {e}");
            return;
        }
    };
    if matches!(ev.kind, EventKind::Access(_)) {
        return;
    }
    for p in ev.paths {
        if !ignored(&p, root) {
            changed.insert(p);
        }
    }
}

/// Whether a changed path is noise: VCS and cache folders, editor swap and backup files.
pub fn ignored(path: &Path, root: &Path) -> bool {
    let rel = path.strip_prefix(root).unwrap_or(path);
    if package::skipped(rel) && rel != Path::new(MANIFEST_FILE) {
        return true;
    }
    let Some(name) = rel.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with('~')
        || name.starts_with(".#")
        || name == "4913"
        || name.ends_with(".pyc")
}

/// Redeploys the functions whose code (or manifest) changed, printing how it went.
fn redeploy(client: &Client, root: &Path, overrides: &Overrides, changed: &BTreeSet<PathBuf>) {
    // The manifest may have changed too: resolve again.
    let deployments = match manifest::resolve(root, overrides) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {}", super::describe(&e));
            return;
        }
    };
    let manifest_dir = if root.is_dir() {
        root
    } else {
        root.parent().unwrap_or(root)
    };
    let manifest_changed = changed.contains(&manifest_dir.join(MANIFEST_FILE));
    for d in &deployments {
        let touched = manifest_changed || changed.iter().any(|p| p.starts_with(d.source.path()));
        if !touched {
            continue;
        }
        let started = Instant::now();
        match deploy_one(client, d, true) {
            Ok(f) => print_deployed(&f, Some(started.elapsed())),
            Err(e) => eprintln!("error: cannot deploy '{}': {}", d.name, super::describe(&e)),
        }
    }
}

fn print_deployed(f: &Function, took: Option<Duration>) {
    let line = match took {
        Some(t) => format!("redeployed {} in {} ms", f.name, t.as_millis()),
        None => deployed_line(f),
    };
    match &f.warm_error {
        Some(err) => println!("{line}, but it failed to initialize: {err}"),
        None => println!("{line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_ignored() {
        let root = Path::new("/code");
        for p in [
            "/code/.git/index",
            "/code/__pycache__/app.cpython-312.pyc",
            "/code/.app.py.swp",
            "/code/app.py~",
            "/code/.#app.py",
            "/code/4913",
            "/code/node_modules/.cache/babel/x",
        ] {
            assert!(ignored(Path::new(p), root), "{p}");
        }
        for p in ["/code/app.py", "/code/lambent.yaml", "/code/lib/util.py"] {
            assert!(!ignored(Path::new(p), root), "{p}");
        }
    }
}
