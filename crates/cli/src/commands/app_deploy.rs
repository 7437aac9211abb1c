//! `lambent deploy DIR` of a `serverless.yml` or a SAM template: the app's [`Plan`] (made
//! and checked in full before anything changes) applied with the client's calls in dependency
//! order — queues (dead-letter queues first), tables (their stream ARNs are then known),
//! topics, buckets, functions (each published under its alias, if it has one), workflows,
//! routes, schedules, queue and stream mappings, bucket notifications, subscriptions — then
//! SAM's outputs printed. Re-deploying is idempotent: what exists is kept (queues, tables,
//! buckets, topics, mappings, subscriptions), replaced (functions, workflows, routes,
//! schedules) or, for a bucket's notifications, replaced for the app's own targets and kept
//! for others. `--dry-run` prints the plan and calls nothing.

use super::deploy::{deploy_one, deployed_line};
use super::Ctx;
use crate::app::{self, Format, Plan, Platform, Target};
use crate::client::{
    Client, Mapping, NotificationConfiguration, Notifications, QueueCreate, StreamMapping,
    WorkflowPut,
};
use crate::events_client::SchedulePut;
use crate::manifest::{Deployment, Settings, Source};
use anyhow::{Context, Result};
use lambent_core::route::Cors;
use lambent_core::RouteSpec;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
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
    for (item, how) in &plan.notes {
        eprintln!("note: {item}: {how}");
    }
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
    let (streams, table_arn) = tables(client, plan, &mut say)?;
    let mut platform = platform(client, table_arn.as_deref())?;
    platform.streams = streams;
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
    buckets(client, plan, &mut say)?;
    let staging = tempfile_dir()?;
    for (i, f) in plan.functions.iter().enumerate() {
        let code = match &f.inline {
            Some((file, text)) => {
                let dir = staging.join(i.to_string());
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(file), text)?;
                Source::Dir(dir)
            }
            None if f.patterns.is_empty() => Source::Dir(f.code.clone()),
            None => Source::Patterns(f.code.clone(), f.patterns.clone()),
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
                async_invoke: f.async_invoke.clone(),
                ..Default::default()
            },
            source: code,
            routes: Vec::new(),
        };
        let deployed =
            deploy_one(client, &d, warm).with_context(|| format!("cannot deploy '{}'", f.name))?;
        say(deployed_line(&deployed));
        if let Some(alias) = &f.alias {
            let version = client
                .publish_version(&f.name)
                .with_context(|| format!("cannot publish a version of '{}'", f.name))?;
            client
                .put_alias(&f.name, alias, &version.version)
                .with_context(|| format!("cannot point alias '{alias}' of '{}'", f.name))?;
            say(format!(
                "alias {}:{alias} -> version {}",
                f.name, version.version
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&staging);
    for w in &plan.workflows {
        let put = WorkflowPut {
            definition: platform.render_json(&w.definition),
            kind: w.kind.clone(),
        };
        client
            .put_workflow(&w.name, &put)
            .with_context(|| format!("cannot deploy workflow '{}'", w.name))?;
        say(format!("workflow {}", w.name));
    }
    for r in &plan.routes {
        let (function, workflow) = runs(&r.target)?;
        let spec = RouteSpec {
            method: r.method.clone(),
            path: r.path.clone(),
            function,
            workflow,
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
            r.target,
            r.payload.as_str()
        ));
    }
    for s in &plan.schedules {
        let (function, workflow) = runs(&s.target)?;
        let put = SchedulePut {
            function,
            workflow,
            cron: s.cron.clone(),
            rate: s.rate.clone(),
            tz: s.tz.clone(),
            ..Default::default()
        };
        client
            .put_schedule(&s.name, &put, true)
            .with_context(|| format!("cannot create schedule '{}'", s.name))?;
        say(format!("schedule {} -> {}", s.name, s.target));
    }
    let queue_mappings: Vec<Mapping> = plan
        .mappings
        .iter()
        .map(|m| Mapping {
            queue: m.queue.clone(),
            function: m.function.clone(),
            batch_size: m.batch_size,
            batching_window_ms: m.batching_window_ms,
            report_batch_item_failures: m.report_batch_item_failures,
            ..Default::default()
        })
        .collect();
    let stream_mappings: Vec<StreamMapping> = plan
        .stream_mappings
        .iter()
        .map(|m| StreamMapping {
            table: m.table.clone(),
            function: m.function.clone(),
            batch_size: m.batch_size,
            batching_window_ms: m.batching_window_ms,
            starting_position: m.starting_position.clone(),
            max_retries: m.max_retries,
            max_record_age_s: m.max_record_age_s,
            bisect_on_error: m.bisect_on_error,
            report_batch_item_failures: m.report_batch_item_failures,
            on_failure: m.on_failure.as_deref().map(|d| platform.render(d)),
            ..Default::default()
        })
        .collect();
    ensure_mappings(client, &queue_mappings, &stream_mappings, &mut say)?;
    notifications(client, plan, &mut say)?;
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

/// Creates each mapping unless the same queue or table already feeds the same function.
pub fn ensure_mappings(
    client: &Client,
    queues: &[Mapping],
    streams: &[StreamMapping],
    say: &mut impl FnMut(String),
) -> Result<()> {
    if queues.is_empty() && streams.is_empty() {
        return Ok(());
    }
    let existing = client.list_mappings()?.data;
    for m in queues {
        let same = existing
            .mappings
            .iter()
            .any(|e| e.queue == m.queue && e.function == m.function);
        if !same {
            client
                .create_mapping(m)
                .with_context(|| format!("cannot map queue '{}' to '{}'", m.queue, m.function))?;
        }
        say(format!("mapping {} -> {}", m.queue, m.function));
    }
    for m in streams {
        let same = existing
            .stream_mappings
            .iter()
            .any(|e| e.table == m.table && e.function == m.function);
        if !same {
            client.create_stream_mapping(m).with_context(|| {
                format!(
                    "cannot map the stream of table '{}' to '{}'",
                    m.table, m.function
                )
            })?;
        }
        say(format!(
            "mapping table {} stream -> {}",
            m.table, m.function
        ));
    }
    Ok(())
}

/// A route's or schedule's function, or workflow.
fn runs(target: &Target) -> Result<(String, Option<String>)> {
    match target {
        Target::Function(f) => Ok((f.clone(), None)),
        Target::Workflow(w) => Ok((String::new(), Some(w.clone()))),
        other => anyhow::bail!("a route or schedule cannot run {other}"),
    }
}

/// Creates the plan's tables that do not exist yet (and sets their TTL); returns each
/// table's stream ARN, and a table's ARN.
fn tables(
    client: &Client,
    plan: &Plan,
    say: &mut impl FnMut(String),
) -> Result<(BTreeMap<String, String>, Option<String>)> {
    let mut streams = BTreeMap::new();
    let mut table_arn = None;
    if plan.tables.is_empty() {
        return Ok((streams, table_arn));
    }
    let existing: BTreeSet<String> = client.list_tables()?.data["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["TableName"].as_str().map(str::to_string))
        .collect();
    for t in &plan.tables {
        let described = if existing.contains(&t.name) {
            say(format!("table {} (exists)", t.name));
            client.describe_table(&t.name)?.data["Table"].clone()
        } else {
            let created = client
                .create_table(&t.name, &t.definition)
                .with_context(|| format!("cannot create table '{}'", t.name))?;
            say(format!("table {}", t.name));
            created.data["TableDescription"].clone()
        };
        if let Some(arn) = described["LatestStreamArn"].as_str() {
            streams.insert(t.name.clone(), arn.to_string());
        }
        if let Some(arn) = described["TableArn"].as_str() {
            table_arn = Some(arn.to_string());
        }
        if let Some(attribute) = &t.ttl_attribute {
            let ttl = client.table_operation(&t.name, "DescribeTimeToLive", &json!({}))?;
            let on = &ttl.data["TimeToLiveDescription"];
            if on["TimeToLiveStatus"] != "ENABLED" || on["AttributeName"] != attribute.as_str() {
                let spec = json!({"TimeToLiveSpecification": {"AttributeName": attribute, "Enabled": true}});
                client
                    .table_operation(&t.name, "UpdateTimeToLive", &spec)
                    .with_context(|| format!("cannot set the TTL of table '{}'", t.name))?;
            }
        }
    }
    Ok((streams, table_arn))
}

/// Creates the plan's buckets that do not exist yet; an `existing` one must exist.
fn buckets(client: &Client, plan: &Plan, say: &mut impl FnMut(String)) -> Result<()> {
    if plan.buckets.is_empty() {
        return Ok(());
    }
    let existing: BTreeSet<String> = client
        .list_buckets()?
        .data
        .buckets
        .into_iter()
        .map(|b| b.name)
        .collect();
    for b in &plan.buckets {
        if existing.contains(&b.name) {
            say(format!("bucket {} (exists)", b.name));
        } else if b.create {
            client
                .create_bucket(&b.name, None)
                .with_context(|| format!("cannot create bucket '{}'", b.name))?;
            say(format!("bucket {}", b.name));
        } else {
            anyhow::bail!(
                "bucket '{}' does not exist: the app only adds notifications to it (existing: true)",
                b.name
            );
        }
    }
    Ok(())
}

/// Sets each bucket's notifications: the app's replace those sent to the same targets, the
/// others stay.
fn notifications(client: &Client, plan: &Plan, say: &mut impl FnMut(String)) -> Result<()> {
    let buckets: BTreeSet<&str> = plan
        .notifications
        .iter()
        .map(|n| n.bucket.as_str())
        .collect();
    for bucket in buckets {
        let wanted: Vec<NotificationConfiguration> = plan
            .notifications
            .iter()
            .filter(|n| n.bucket == bucket)
            .map(|n| {
                let mut c = NotificationConfiguration {
                    events: n.events.clone(),
                    prefix: n.prefix.clone(),
                    suffix: n.suffix.clone(),
                    ..Default::default()
                };
                match &n.target {
                    Target::Function(f) => c.function = Some(f.clone()),
                    Target::Workflow(w) => c.workflow = Some(w.clone()),
                    Target::Queue(q) => c.queue = Some(q.clone()),
                    Target::Topic(t) => c.topic = Some(t.clone()),
                }
                c
            })
            .collect();
        let current = client
            .bucket_notifications(bucket)
            .with_context(|| format!("cannot read the notifications of bucket '{bucket}'"))?;
        let mut configurations: Vec<NotificationConfiguration> = current
            .data
            .configurations
            .into_iter()
            .filter(|c| !wanted.iter().any(|w| w.same_target(c)))
            .collect();
        configurations.extend(wanted);
        client
            .put_bucket_notifications(bucket, &Notifications { configurations })
            .with_context(|| format!("cannot set the notifications of bucket '{bucket}'"))?;
        for n in plan.notifications.iter().filter(|n| n.bucket == bucket) {
            say(format!(
                "notification {bucket} {} -> {}",
                n.events.join(","),
                n.target
            ));
        }
    }
    Ok(())
}

/// The server's URL, region and namespace: region and namespace from a queue's ARN
/// (`arn:aws:sqs:REGION:NAMESPACE:NAME`) or `table_arn`, else the namespace of a function and
/// the region of `LAMBENT_REGION` (default `us-east-1`).
fn platform(client: &Client, table_arn: Option<&str>) -> Result<Platform> {
    let endpoint = client.url().trim_end_matches('/').to_string();
    let queues = client.list_queues()?.data.queues;
    if let Some(arn) = queues
        .iter()
        .map(|q| q.arn.as_str())
        .chain(table_arn)
        .find(|a| a.starts_with("arn:"))
    {
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() == 6 {
            return Ok(Platform {
                endpoint,
                region: parts[3].to_string(),
                account: parts[4].to_string(),
                ..Default::default()
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
        ..Default::default()
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
