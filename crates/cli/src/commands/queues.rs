//! `lambent queue …`, `lambent topic …` and `lambent mapping …`: durable queues (SQS
//! semantics), topics that fan out to functions and queues (SNS semantics), and event-source
//! mappings that run a function on a queue's messages.

use super::Ctx;
use crate::client::{
    Attributes, Mapping, MessageAttribute, OutgoingMessage, QueueCreate, ReceiveOptions,
    StreamMapping,
};
use crate::manifest::parse_env_pair;
use crate::output::{self, age};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use std::io::Read;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create a queue.
    Create(QueueCreateArgs),
    /// List queues with their message counts.
    #[command(visible_alias = "list")]
    Ls,
    /// Delete a queue, its messages and its mappings.
    Rm { name: String },
    /// Send a message (BODY, or `-` to read standard input).
    Send {
        queue: String,
        body: String,
        /// A String message attribute; repeatable.
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
        attributes: Vec<(String, String)>,
        /// Seconds before the message can be received [default: the queue's delay].
        #[arg(long, value_name = "SECONDS")]
        delay: Option<u32>,
    },
    /// Receive messages (they stay invisible for the visibility timeout unless deleted).
    Receive {
        queue: String,
        /// At most this many messages (1-10).
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// Seconds to wait for a message to arrive (0-20).
        #[arg(long, default_value_t = 0, value_name = "SECONDS")]
        wait: u32,
        /// Seconds the messages stay invisible [default: the queue's].
        #[arg(long, value_name = "SECONDS")]
        visibility_timeout: Option<u32>,
    },
    /// Delete received messages by receipt handle.
    Delete {
        queue: String,
        #[arg(required = true)]
        receipt_handles: Vec<String>,
    },
    /// Delete every message of a queue.
    Purge { queue: String },
}

#[derive(Debug, Args)]
pub struct QueueCreateArgs {
    pub name: String,
    /// Seconds a received message stays invisible [default: 30].
    #[arg(long, value_name = "SECONDS")]
    pub visibility_timeout: Option<u32>,
    /// Seconds a sent message waits before it can be received [default: 0].
    #[arg(long, value_name = "SECONDS")]
    pub delay: Option<u32>,
    /// Move messages received --max-receive-count times without being deleted to this queue.
    #[arg(long, value_name = "QUEUE")]
    pub dead_letter_queue: Option<String>,
    /// Receives before a message moves to the dead-letter queue [default: 3].
    #[arg(long, value_name = "N", requires = "dead_letter_queue")]
    pub max_receive_count: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create { name: String },
    /// List topics.
    #[command(visible_alias = "list")]
    Ls,
    /// Delete a topic and its subscriptions.
    Rm { name: String },
    /// Subscribe a function, a queue or a workflow to a topic.
    #[command(group(clap::ArgGroup::new("endpoint").required(true).args(["function", "queue", "workflow"])))]
    Subscribe {
        topic: String,
        #[arg(long)]
        function: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        /// Start an execution of this workflow per message (the SNS event as its input).
        #[arg(long)]
        workflow: Option<String>,
    },
    /// List a topic's subscriptions.
    Subscriptions { topic: String },
    /// Remove a subscription by id.
    Unsubscribe { id: String },
    /// Publish a message (or `-` to read standard input) to every subscription.
    Publish {
        topic: String,
        message: String,
        #[arg(long)]
        subject: Option<String>,
        /// A String message attribute; repeatable.
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
        attributes: Vec<(String, String)>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Run FUNCTION on QUEUE's messages (`create QUEUE FUNCTION`), or on the changes of a
    /// table (`create --table TABLE FUNCTION`: its stream, in order per key), in batches.
    Create(MappingCreateArgs),
    /// List mappings of queues and of tables.
    #[command(visible_alias = "list")]
    Ls,
    /// Delete a mapping (of either kind).
    Rm { id: String },
}

/// Where a table mapping starts reading the stream.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StartingPosition {
    /// The oldest record kept (24 hours).
    TrimHorizon,
    /// Only changes made after the mapping is created.
    Latest,
}

#[derive(Debug, Args)]
pub struct MappingCreateArgs {
    /// QUEUE FUNCTION, or FUNCTION with --table.
    #[arg(value_name = "QUEUE|FUNCTION", num_args = 1..=2, required = true)]
    names: Vec<String>,
    /// Read the stream of this table (created with --stream) instead of a queue.
    #[arg(long, value_name = "TABLE")]
    table: Option<String>,
    /// Most messages or records per invocation (1-10000) [default: 10 for a queue, 100 for a
    /// table].
    #[arg(long, value_name = "N")]
    batch_size: Option<u32>,
    /// Milliseconds to gather a batch before invoking (0-300000) [default: 0].
    #[arg(long, value_name = "MS")]
    batching_window: Option<u64>,
    /// Honour `batchItemFailures` in the function's result: only the messages it names are
    /// retried (for a table: from the first record it names).
    #[arg(long)]
    report_batch_item_failures: bool,
    /// Table only: where to start [default: trim-horizon].
    #[arg(long, value_enum, requires = "table")]
    starting_position: Option<StartingPosition>,
    /// Table only: retries of a failed batch before it is given up (-1: until its records
    /// expire) [default: -1].
    #[arg(
        long,
        value_name = "N",
        requires = "table",
        allow_negative_numbers = true
    )]
    max_retries: Option<i64>,
    /// Table only: records older than this many seconds are given up (60-604800, -1: no
    /// limit) [default: -1].
    #[arg(
        long,
        value_name = "SECONDS",
        requires = "table",
        allow_negative_numbers = true
    )]
    max_record_age: Option<i64>,
    /// Table only: split a failed batch in two and retry each half.
    #[arg(long, requires = "table")]
    bisect: bool,
    /// Table only: the queue that gets a record of each batch given up on (a queue's name,
    /// or a queue or topic ARN).
    #[arg(long, value_name = "QUEUE", requires = "table")]
    on_failure: Option<String>,
}

fn text_or_stdin(arg: String, what: &str) -> Result<String> {
    if arg != "-" {
        return Ok(arg);
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .with_context(|| format!("cannot read the {what} from standard input"))?;
    Ok(s)
}

fn string_attributes(pairs: Vec<(String, String)>) -> Attributes {
    pairs
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                MessageAttribute {
                    data_type: "String".into(),
                    string_value: Some(v),
                    binary_value: None,
                },
            )
        })
        .collect()
}

fn done(ctx: &Ctx, raw: Option<&[u8]>, line: String) -> Result<ExitCode> {
    match (ctx.json(), raw) {
        (true, Some(raw)) => output::print_raw_json(raw),
        (true, None) => output::print_json(&serde_json::json!({ "ok": true })),
        (false, _) => println!("{line}"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn queue(ctx: &Ctx, command: QueueCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        QueueCommand::Create(a) => {
            let q = client.create_queue(&QueueCreate {
                name: a.name,
                visibility_timeout: a.visibility_timeout,
                delay: a.delay,
                max_receive_count: a.max_receive_count,
                dead_letter_queue: a.dead_letter_queue,
            })?;
            done(ctx, Some(&q.raw), format!("queue {} ({})", q.name, q.arn))
        }
        QueueCommand::Ls => {
            let list = client.list_queues()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
                return Ok(ExitCode::SUCCESS);
            }
            if list.queues.is_empty() {
                println!("no queues yet: create one with 'lambent queue create NAME'");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = output::table(&[
                "NAME",
                "VISIBLE",
                "IN FLIGHT",
                "DELAYED",
                "VISIBILITY",
                "DLQ",
                "CREATED",
            ]);
            for q in &list.queues {
                let c = q.messages.clone().unwrap_or_default();
                let dlq = match (&q.dead_letter_queue, q.max_receive_count) {
                    (Some(d), Some(n)) => format!("{d} after {n}"),
                    _ => "-".into(),
                };
                t.add_row(vec![
                    q.name.clone(),
                    c.visible.to_string(),
                    c.in_flight.to_string(),
                    c.delayed.to_string(),
                    format!("{} s", q.visibility_timeout_s),
                    dlq,
                    age(q.created_ms),
                ]);
            }
            output::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Rm { name } => {
            client.delete_queue(&name)?;
            done(ctx, None, format!("deleted queue {name}"))
        }
        QueueCommand::Send {
            queue,
            body,
            attributes,
            delay,
        } => {
            let message = OutgoingMessage {
                body: text_or_stdin(body, "message body")?,
                attributes: string_attributes(attributes),
                delay,
            };
            let sent = client.send_messages(&queue, &[message])?;
            let id = sent
                .messages
                .first()
                .map(|m| m.id.clone())
                .unwrap_or_default();
            done(ctx, Some(&sent.raw), format!("sent {id}"))
        }
        QueueCommand::Receive {
            queue,
            max,
            wait,
            visibility_timeout,
        } => {
            let got = client.receive(
                &queue,
                &ReceiveOptions {
                    max: Some(max),
                    visibility_timeout,
                    wait: Some(wait),
                },
            )?;
            if ctx.json() {
                output::print_raw_json(&got.raw);
                return Ok(ExitCode::SUCCESS);
            }
            if got.messages.is_empty() {
                println!("no messages");
            }
            for m in &got.messages {
                println!(
                    "{} (receive {}, receipt {})\n{}",
                    m.id, m.receive_count, m.receipt_handle, m.body
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Delete {
            queue,
            receipt_handles,
        } => {
            let d = client.delete_messages(&queue, &receipt_handles)?;
            if ctx.json() {
                output::print_raw_json(&d.raw);
            } else {
                println!("deleted {} message(s)", d.deleted.len());
            }
            if !d.failed.is_empty() {
                bail!(
                    "{} receipt handle(s) matched no message in flight: {}",
                    d.failed.len(),
                    d.failed.join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Purge { queue } => {
            let p = client.purge(&queue)?;
            done(ctx, Some(&p.raw), format!("purged {} message(s)", p.purged))
        }
    }
}

pub fn topic(ctx: &Ctx, command: TopicCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        TopicCommand::Create { name } => {
            let t = client.create_topic(&name)?;
            done(ctx, Some(&t.raw), format!("topic {}", t.name))
        }
        TopicCommand::Ls => {
            let list = client.list_topics()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
                return Ok(ExitCode::SUCCESS);
            }
            if list.topics.is_empty() {
                println!("no topics yet: create one with 'lambent topic create NAME'");
            }
            for t in &list.topics {
                println!("{}", t.name);
            }
            Ok(ExitCode::SUCCESS)
        }
        TopicCommand::Rm { name } => {
            client.delete_topic(&name)?;
            done(ctx, None, format!("deleted topic {name}"))
        }
        TopicCommand::Subscribe {
            topic,
            function,
            queue,
            workflow,
        } => {
            let (kind, target) = match (function, queue, workflow) {
                (Some(f), _, _) => ("function", f),
                (None, Some(q), _) => ("queue", q),
                (None, None, Some(w)) => ("workflow", w),
                (None, None, None) => bail!("pass --function, --queue or --workflow"),
            };
            let s = client.subscribe(&topic, kind, &target)?;
            done(
                ctx,
                Some(&s.raw),
                format!("subscribed {kind} {target} to {topic} (id {})", s.id),
            )
        }
        TopicCommand::Subscriptions { topic } => {
            let list = client.subscriptions(&topic)?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = output::table(&["ID", "KIND", "TARGET", "CREATED"]);
            for s in &list.subscriptions {
                t.add_row(vec![
                    s.id.clone(),
                    s.kind.clone(),
                    s.target.clone(),
                    age(s.created_ms),
                ]);
            }
            output::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
        TopicCommand::Unsubscribe { id } => {
            client.unsubscribe(&id)?;
            done(ctx, None, format!("deleted subscription {id}"))
        }
        TopicCommand::Publish {
            topic,
            message,
            subject,
            attributes,
        } => {
            let message = text_or_stdin(message, "message")?;
            let p = client.publish(
                &topic,
                &message,
                subject.as_deref(),
                &string_attributes(attributes),
            )?;
            done(
                ctx,
                Some(&p.raw),
                format!(
                    "published {} to {} subscription(s)",
                    p.message_id, p.deliveries
                ),
            )
        }
    }
}

pub fn mapping(ctx: &Ctx, command: MappingCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        MappingCommand::Create(a) => create_mapping(ctx, &client, a),
        MappingCommand::Ls => {
            let list = client.list_mappings()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = output::table(&[
                "ID", "SOURCE", "FUNCTION", "BATCH", "WINDOW", "SETTINGS", "ENABLED", "CREATED",
            ]);
            for m in &list.mappings {
                let settings = match m.report_batch_item_failures {
                    true => "item failures",
                    false => "",
                };
                t.add_row(vec![
                    m.id.clone(),
                    format!("queue {}", m.queue),
                    m.function.clone(),
                    m.batch_size.unwrap_or_default().to_string(),
                    format!("{} ms", m.batching_window_ms.unwrap_or_default()),
                    settings.to_string(),
                    m.enabled.to_string(),
                    age(m.created_ms),
                ]);
            }
            for m in &list.stream_mappings {
                t.add_row(vec![
                    m.id.clone(),
                    format!("table {}", m.table),
                    m.function.clone(),
                    m.batch_size.unwrap_or_default().to_string(),
                    format!("{} ms", m.batching_window_ms.unwrap_or_default()),
                    stream_settings(m),
                    m.enabled.to_string(),
                    age(m.created_ms),
                ]);
            }
            output::print_table(&t);
            Ok(ExitCode::SUCCESS)
        }
        MappingCommand::Rm { id } => {
            client.delete_mapping(&id)?;
            done(ctx, None, format!("deleted mapping {id}"))
        }
    }
}

fn create_mapping(
    ctx: &Ctx,
    client: &crate::client::Client,
    a: MappingCreateArgs,
) -> Result<ExitCode> {
    let mut names = a.names.into_iter();
    let (first, second) = (names.next().unwrap_or_default(), names.next());
    let Some(table) = a.table else {
        let Some(function) = second else {
            bail!(
                "name the queue and the function (QUEUE FUNCTION), or use --table TABLE FUNCTION"
            );
        };
        let m = client.create_mapping(&Mapping {
            queue: first,
            function,
            batch_size: a.batch_size,
            batching_window_ms: a.batching_window,
            report_batch_item_failures: a.report_batch_item_failures,
            ..Default::default()
        })?;
        return done(
            ctx,
            Some(&m.raw),
            format!("mapping {}: queue {} -> {}", m.id, m.queue, m.function),
        );
    };
    if second.is_some() {
        bail!("with --table, name only the function: mapping create --table {table} FUNCTION");
    }
    let m = client.create_stream_mapping(&StreamMapping {
        table,
        function: first,
        batch_size: a.batch_size,
        batching_window_ms: a.batching_window,
        starting_position: a.starting_position.map(|p| {
            match p {
                StartingPosition::TrimHorizon => "TRIM_HORIZON",
                StartingPosition::Latest => "LATEST",
            }
            .to_string()
        }),
        max_retries: a.max_retries,
        max_record_age_s: a.max_record_age,
        bisect_on_error: a.bisect,
        report_batch_item_failures: a.report_batch_item_failures,
        on_failure: a.on_failure,
        ..Default::default()
    })?;
    done(
        ctx,
        Some(&m.raw),
        format!("mapping {}: table {} -> {}", m.id, m.table, m.function),
    )
}

/// A table mapping's settings in a few words: where it started, retries, bisection,
/// partial batches, where failures go.
fn stream_settings(m: &StreamMapping) -> String {
    let mut words = vec![m
        .starting_position
        .as_deref()
        .unwrap_or_default()
        .to_lowercase()
        .replace('_', "-")];
    match m.max_retries {
        Some(n) if n >= 0 => words.push(format!("retries {n}")),
        _ => {}
    }
    if m.bisect_on_error {
        words.push("bisect".into());
    }
    if m.report_batch_item_failures {
        words.push("item failures".into());
    }
    if let Some(d) = &m.on_failure {
        words.push(format!("on failure {}", d.rsplit(':').next().unwrap_or(d)));
    }
    words.join(", ")
}
