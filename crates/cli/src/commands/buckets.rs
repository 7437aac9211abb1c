//! `lambent bucket create|ls|rm`: the namespace's S3 buckets; `lambent bucket
//! notify|notifications`: which object changes of a bucket invoke a function or reach a queue
//! or topic (S3 bucket notifications). Also how the object store's errors read ([`explain`]).

use super::Ctx;
use crate::client::{ClientError, NotificationConfiguration, Notifications};
use crate::output;
use anyhow::{Context, Result};
use clap::{ArgGroup, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
    /// Create a bucket (names as on S3: 3-63 of a-z, 0-9, '.', '-', unique on the server).
    #[command(visible_alias = "mb")]
    Create {
        /// The bucket.
        bucket: String,
        /// Its region (location constraint) [default: the server's].
        #[arg(long)]
        region: Option<String>,
    },
    /// List the namespace's buckets.
    #[command(visible_alias = "list")]
    Ls,
    /// Delete a bucket; it must be empty unless --force is given.
    #[command(visible_alias = "delete")]
    Rm {
        /// The bucket.
        bucket: String,
        /// Delete its objects (and abort its multipart uploads) first.
        #[arg(long, short = 'f')]
        force: bool,
    },
    /// Send a bucket's object events to a function, queue or topic (replacing what the bucket
    /// sent to that same target).
    #[command(group(ArgGroup::new("target").required(true).args(["function", "queue", "topic"])))]
    Notify {
        /// The bucket.
        bucket: String,
        /// Invoke this function asynchronously with each S3 event.
        #[arg(long)]
        function: Option<String>,
        /// Send each S3 event to this queue.
        #[arg(long)]
        queue: Option<String>,
        /// Publish each S3 event to this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Comma-separated S3 event names [default: s3:ObjectCreated:*].
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Only keys ending with this.
        #[arg(long)]
        suffix: Option<String>,
        /// Stop sending to the target instead.
        #[arg(long, conflicts_with_all = ["events", "prefix", "suffix"])]
        remove: bool,
    },
    /// List a bucket's notification configurations.
    Notifications {
        /// The bucket.
        bucket: String,
    },
}

pub fn run(ctx: &Ctx, command: BucketCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        BucketCommand::Create { bucket, region } => {
            let created = client
                .create_bucket(&bucket, region.as_deref())
                .map_err(|e| explain(e, &bucket, None, "cannot create bucket"))?;
            if ctx.json() {
                output::print_raw_json(&created.raw);
            } else {
                println!("created bucket {} ({})", bucket, created.region);
            }
        }
        BucketCommand::Ls => {
            let list = client.list_buckets().context("cannot list buckets")?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.buckets.is_empty() {
                println!("no buckets: create one with 'lambent bucket create NAME'");
            } else {
                let mut t = output::table(&["NAME", "REGION", "CREATED"]);
                for b in &list.buckets {
                    t.add_row(vec![
                        b.name.clone(),
                        b.region.clone(),
                        output::datetime(b.created_ms),
                    ]);
                }
                output::print_table(&t);
            }
        }
        BucketCommand::Rm { bucket, force } => {
            let deleted = client
                .delete_bucket(&bucket, force)
                .map_err(|e| explain(e, &bucket, None, "cannot delete bucket"))?;
            if ctx.json() {
                output::print_raw_json(&deleted.raw);
            } else if force {
                let n = deleted.deleted_objects;
                let s = if n == 1 { "" } else { "s" };
                println!("deleted bucket {bucket} and {n} object{s} in it");
            } else {
                println!("deleted bucket {bucket}");
            }
        }
        BucketCommand::Notify {
            bucket,
            function,
            queue,
            topic,
            events,
            prefix,
            suffix,
            remove,
        } => {
            let wanted = NotificationConfiguration {
                function,
                queue,
                topic,
                events: events.into_iter().filter(|e| !e.is_empty()).collect(),
                prefix,
                suffix,
                ..Default::default()
            };
            let current = client
                .bucket_notifications(&bucket)
                .with_context(|| format!("cannot read the notifications of bucket '{bucket}'"))?;
            let mut configurations: Vec<NotificationConfiguration> = current
                .data
                .configurations
                .into_iter()
                .filter(|c| !c.same_target(&wanted))
                .collect();
            if !remove {
                configurations.push(wanted);
            }
            let stored = client
                .put_bucket_notifications(&bucket, &Notifications { configurations })
                .with_context(|| format!("cannot set the notifications of bucket '{bucket}'"))?;
            show(ctx, &stored.raw, &stored.data);
        }
        BucketCommand::Notifications { bucket } => {
            let current = client.bucket_notifications(&bucket)?;
            show(ctx, &current.raw, &current.data);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn show(ctx: &Ctx, raw: &[u8], n: &Notifications) {
    if ctx.json() {
        output::print_raw_json(raw);
        return;
    }
    if n.configurations.is_empty() {
        println!("no notifications: add one with 'lambent bucket notify'");
        return;
    }
    let mut t = output::table(&["TARGET", "EVENTS", "PREFIX", "SUFFIX", "ID"]);
    for c in &n.configurations {
        let target = match (&c.function, &c.queue, &c.topic) {
            (Some(f), _, _) => format!("function {f}"),
            (_, Some(q), _) => format!("queue {q}"),
            (_, _, Some(t)) => format!("topic {t}"),
            _ => c.arn.clone().unwrap_or_default(),
        };
        t.add_row(vec![
            target,
            c.events.join(","),
            c.prefix.clone().unwrap_or_default(),
            c.suffix.clone().unwrap_or_default(),
            c.id.clone().unwrap_or_default(),
        ]);
    }
    output::print_table(&t);
}

/// An object store error as the CLI tells it: what was missing or in the way, by name, and
/// what to do; other errors keep the server's message after `doing 'bucket'`.
pub fn explain(e: ClientError, bucket: &str, key: Option<&str>, doing: &str) -> anyhow::Error {
    let object = key.map(|k| format!("'{k}' in bucket '{bucket}'"));
    let text = match (e.code(), &object) {
        (Some("NoSuchBucket"), _) => format!(
            "bucket '{bucket}' does not exist (create it with 'lambent bucket create {bucket}')"
        ),
        (Some("NoSuchKey"), Some(o)) => format!("no object {o}"),
        (Some("BucketNotEmpty"), _) => format!(
            "bucket '{bucket}' is not empty: delete its objects first, or use \
             'lambent bucket rm {bucket} --force'"
        ),
        (Some("AccessDenied"), _) => {
            format!("bucket '{bucket}' belongs to another namespace")
        }
        (Some("BucketAlreadyOwnedByYou"), _) => format!("you already have bucket '{bucket}'"),
        (Some("BucketAlreadyExists"), _) => {
            format!("the bucket name '{bucket}' is taken (by another namespace)")
        }
        (Some("PreconditionFailed"), Some(o)) => format!("object {o} exists already"),
        _ => {
            let what = object.unwrap_or_else(|| format!("'{bucket}'"));
            return anyhow::Error::new(e).context(format!("{doing} {what}"));
        }
    };
    anyhow::anyhow!(text)
}
