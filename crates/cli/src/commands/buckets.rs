//! `lambent bucket notify|notifications`: which object changes of a bucket invoke a function or
//! reach a queue or topic (S3 bucket notifications).

use super::Ctx;
use crate::client::{NotificationConfiguration, Notifications};
use crate::output;
use anyhow::{Context, Result};
use clap::{ArgGroup, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BucketCommand {
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
