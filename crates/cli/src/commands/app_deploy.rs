//! `lambent deploy DIR` of a `serverless.yml` or a SAM template: the app's [`Plan`] (made
//! and checked in full before anything changes) applied with the client's calls in dependency
//! order — queues (dead-letter queues first), topics, functions, routes, schedules, queue
//! mappings, subscriptions — then SAM's outputs printed. Re-deploying is idempotent: what
//! exists is kept (queues, topics, mappings, subscriptions) or replaced (functions, routes,
//! schedules). `--dry-run` prints the plan and calls nothing.

use super::deploy::{deploy_one, deployed_line};
use super::Ctx;
use crate::app::{self, Format, Plan, Platform};
use crate::client::{Client, Mapping, QueueCreate};
use crate::events_client::SchedulePut;
use crate::manifest::{Deployment, Settings, Source};
use anyhow::{Context, Result};
use lambent_core::route::Cors;
use lambent_core::RouteSpec;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

/// Plans the app in `file` and applies it (or prints it with `dry_run`).
pub fn run(
    ctx: &Ctx,
    format: Format,
    file: &Path,
    options: &app::Options,
    dry_run: bool,
    warm: bool,
) -> Result<ExitCode> {
    let plan = app::plan(format, file, options)?;
    if dry_run {
        print!("{}", plan.describe());
        return Ok(ExitCode::SUCCESS);
    }
    let client = ctx.client()?;
    for (item, why) in &plan.skipped {
        eprintln!("note: skipped {item}: {why}");
    }
    let platform = apply(&client, &plan, warm, |line| println!("{line}"))?;
    for (k, v) in &plan.outputs {
        println!("output {k} = {}", platform.render(v));
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies a plan, reporting each step with `say`; returns the platform the placeholders
/// were filled with.
pub fn apply(
    client: &Client,
    plan: &Plan,
    warm: bool,
    mut say: impl FnMut(String),
) -> Result<Platform> {
    let existing: BTreeSet<String> = client
        .list_queues()?
        .queues
        .iter()
        .map(|q| q.name.clone())
        .collect();
    // Dead-letter queues first: a queue's redrive policy names an existing queue.
    let mut queues: Vec<&app::PlanQueue> = plan.queues.iter().collect();
    queues.sort_by_key(|q| q.dead_letter_queue.is_some());
    for q in queues {
        if existing.contains(&q.name) {
            say(format!("queue {} (exists)", q.name));
            continue;
        }
        client
            .create_queue(&QueueCreate {
                name: q.name.clone(),
                visibility_timeout: q.visibility_timeout,
                delay: q.delay,
                max_receive_count: q.max_receive_count,
                dead_letter_queue: q.dead_letter_queue.clone(),
            })
            .with_context(|| format!("cannot create queue '{}'", q.name))?;
        say(format!("queue {}", q.name));
    }
    let platform = platform(client)?;
    let topics: BTreeSet<String> = client
        .list_topics()?
        .topics
        .iter()
        .map(|t| t.name.clone())
        .collect();
    for t in &plan.topics {
        if !topics.contains(t) {
            client
                .create_topic(t)
                .with_context(|| format!("cannot create topic '{t}'"))?;
        }
        say(format!("topic {t}"));
    }
    let staging = tempfile_dir()?;
    for (i, f) in plan.functions.iter().enumerate() {
        let code = match &f.inline {
            Some((file, text)) => {
                let dir = staging.join(i.to_string());
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(file), text)?;
                dir
            }
            None => f.code.clone(),
        };
        let d = Deployment {
            name: f.name.clone(),
            settings: Settings {
                runtime: Some(f.runtime.clone()),
                handler: Some(f.handler.clone()),
                memory: f.memory,
                timeout: f.timeout,
                env: f
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), platform.render(v)))
                    .collect(),
                description: f.description.clone(),
                reserved_concurrency: f.reserved_concurrency,
                provisioned_concurrency: f.provisioned_concurrency,
                ..Default::default()
            },
            source: Source::Dir(code),
            routes: Vec::new(),
        };
        let deployed =
            deploy_one(client, &d, warm).with_context(|| format!("cannot deploy '{}'", f.name))?;
        say(deployed_line(&deployed));
    }
    let _ = std::fs::remove_dir_all(&staging);
    for r in &plan.routes {
        let spec = RouteSpec {
            method: r.method.clone(),
            path: r.path.clone(),
            function: r.function.clone(),
            payload: r.payload,
            cors: r.cors.then(|| Cors {
                allow_origins: vec!["*".into()],
                allow_methods: vec!["*".into()],
                allow_headers: vec!["*".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        client
            .add_route(&spec, true)
            .with_context(|| format!("cannot add route '{} {}'", r.method, r.path))?;
        say(format!(
            "route {} {} -> {} (payload {})",
            r.method,
            r.path,
            r.function,
            r.payload.as_str()
        ));
    }
    for s in &plan.schedules {
        let put = SchedulePut {
            function: s.function.clone(),
            cron: s.cron.clone(),
            rate: s.rate.clone(),
            tz: s.tz.clone(),
            ..Default::default()
        };
        client
            .put_schedule(&s.name, &put, true)
            .with_context(|| format!("cannot create schedule '{}'", s.name))?;
        say(format!("schedule {} -> {}", s.name, s.function));
    }
    let mappings = client.list_mappings()?.data.mappings;
    for m in &plan.mappings {
        let same = mappings
            .iter()
            .any(|e| e.queue == m.queue && e.function == m.function);
        if !same {
            client
                .create_mapping(&Mapping {
                    queue: m.queue.clone(),
                    function: m.function.clone(),
                    batch_size: m.batch_size,
                    batching_window_ms: m.batching_window_ms,
                    report_batch_item_failures: m.report_batch_item_failures,
                    ..Default::default()
                })
                .with_context(|| format!("cannot map queue '{}' to '{}'", m.queue, m.function))?;
        }
        say(format!("mapping {} -> {}", m.queue, m.function));
    }
    for s in &plan.subscriptions {
        let subscribed = client
            .subscriptions(&s.topic)?
            .data
            .subscriptions
            .iter()
            .any(|e| e.kind == s.kind && e.target == s.target);
        if !subscribed {
            client
                .subscribe(&s.topic, s.kind, &s.target)
                .with_context(|| {
                    format!(
                        "cannot subscribe {} '{}' to '{}'",
                        s.kind, s.target, s.topic
                    )
                })?;
        }
        say(format!(
            "subscription {} -> {} {}",
            s.topic, s.kind, s.target
        ));
    }
    Ok(platform)
}

/// The server's URL, region and namespace: region and namespace from a queue's ARN
/// (`arn:aws:sqs:REGION:NAMESPACE:NAME`), else the namespace of a function and the region of
/// `LAMBENT_REGION` (default `us-east-1`).
fn platform(client: &Client) -> Result<Platform> {
    let endpoint = client.url().trim_end_matches('/').to_string();
    let queues = client.list_queues()?.data.queues;
    if let Some(arn) = queues
        .iter()
        .map(|q| q.arn.as_str())
        .find(|a| a.starts_with("arn:"))
    {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() == 6 {
            return Ok(Platform {
                endpoint,
                region: parts[3].to_string(),
                account: parts[4].to_string(),
            });
        }
    }
    let account = client
        .list_functions()?
        .data
        .functions
        .first()
        .map(|f| f.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let region = std::env::var("LAMBENT_REGION").unwrap_or_else(|_| "us-east-1".into());
    Ok(Platform {
        endpoint,
        region,
        account,
    })
}

/// A private folder for inline code, under the system's temporary folder.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "lambent-inline-{}-{}",
        std::process::id(),
        lambent_core::now_ms()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}
