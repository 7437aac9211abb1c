//! The `lambent` command line.
//!
//! Every command but `up` and `dev` is a client of the HTTP API (`docs/api.md`) and nothing
//! else; `up` and `dev` also start a server in-process through `lambent-server`. The binary
//! crate only calls [`main`].
//!
//! Where the CLI connects: `--url` or `LAMBENT_URL`, else the config file `lambent up` writes
//! (`$XDG_CONFIG_HOME/lambent/config.json`), else `http://127.0.0.1:8080`. The API key:
//! `LAMBENT_API_KEY`, else the config file.

pub mod app;
pub mod attributes;
pub mod client;
pub mod commands;
pub mod config;
pub mod duration;
pub mod events_client;
pub mod manifest;
pub mod output;
pub mod package;
pub mod workflow_manifest;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub use output::Format;

/// Lambent: run functions on your own machine, like AWS Lambda.
#[derive(Debug, Parser)]
#[command(name = "lambent", version, propagate_version = true)]
pub struct Cli {
    /// The Lambent server to talk to [default: the url in the config file `lambent up` wrote,
    /// else http://127.0.0.1:8080].
    #[arg(long, env = "LAMBENT_URL", global = true, value_name = "URL")]
    pub url: Option<String>,

    /// Output format: `table` for people, `json` (the API's JSON) for scripts.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t = Format::Table,
        global = true
    )]
    pub output: Format,

    /// The namespace to act in (the operator's key may act in any; others in their own).
    #[arg(long, env = "LAMBENT_NAMESPACE", global = true, value_name = "NAME")]
    pub namespace: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start a Lambent server (and optionally deploy functions to it), until Ctrl-C.
    Up(commands::up::UpArgs),
    /// Deploy a folder or zip, then redeploy it on every change, until Ctrl-C.
    Dev(commands::dev::DevArgs),
    /// Deploy a function from a folder, a lambent.yaml or a zip.
    Deploy(commands::deploy::DeployArgs),
    /// Invoke a function and print its result.
    Invoke(commands::invoke::InvokeArgs),
    /// List functions.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one function.
    Get {
        /// The function's name.
        name: String,
    },
    /// Delete a function.
    #[command(visible_alias = "delete")]
    Rm {
        /// The function's name.
        name: String,
    },
    /// Print a function's logs, oldest first.
    Logs(commands::logs::LogsArgs),
    /// List activations (invocation records), newest first.
    Activations(commands::activations::ActivationsArgs),
    /// Show one activation: its record and its logs.
    Activation(commands::activations::ActivationArgs),
    /// Show usage and cost, and memory right-sizing advice.
    Usage(commands::usage::UsageArgs),
    /// List the cluster's nodes: id, address, state (up, suspect, draining, down), load.
    Nodes,
    /// The dead-letter queue of asynchronous invocations: ls, show, redrive.
    Dlq(commands::dlq::DlqArgs),
    /// Schedules (cron, rate, at) that invoke functions: add, ls, rm.
    Schedule(commands::schedule::ScheduleArgs),
    /// HTTP routes: map a method and path on the server to a function.
    #[command(visible_alias = "routes")]
    Route {
        #[command(subcommand)]
        command: commands::routes::RouteCommand,
    },
    /// Durable queues: create, send, receive, delete (SQS semantics).
    #[command(visible_alias = "queues")]
    Queue {
        #[command(subcommand)]
        command: commands::queues::QueueCommand,
    },
    /// Topics: publish to every subscribed function and queue (SNS semantics).
    #[command(visible_alias = "topics")]
    Topic {
        #[command(subcommand)]
        command: commands::queues::TopicCommand,
    },
    /// Event-source mappings: run a function on a queue's messages or a table's changes, in
    /// batches.
    #[command(visible_alias = "mappings")]
    Mapping {
        #[command(subcommand)]
        command: commands::queues::MappingCommand,
    },
    /// S3 buckets: create, ls, rm; notifications of object changes to functions, queues and
    /// topics.
    #[command(visible_alias = "buckets")]
    Bucket {
        #[command(subcommand)]
        command: commands::buckets::BucketCommand,
    },
    /// Objects in S3 buckets: put, get, ls, rm (streamed, with a progress bar when large).
    #[command(visible_alias = "objects")]
    Object {
        #[command(subcommand)]
        command: commands::objects::ObjectCommand,
    },
    /// Keys of the namespace, with roles: AWS access keys (SigV4, the default) or API keys
    /// (`--api`): create, ls, rotate, rm.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Namespaces (tenants), with the operator's key: create, ls, get, update, rm.
    #[command(visible_alias = "namespace")]
    Ns {
        #[command(subcommand)]
        command: commands::ns::NsCommand,
    },
    /// The namespace's audit log of management actions (the operator's: every namespace's).
    Audit(commands::audit::AuditArgs),
    /// Workflows (Step Functions state machines): deploy, ls, get, rm, start.
    #[command(visible_alias = "workflows")]
    Workflow {
        #[command(subcommand)]
        command: commands::workflows::WorkflowCommand,
    },
    /// Executions of workflows: ls, show (with a timeline of the states), stop.
    #[command(visible_alias = "executions")]
    Execution {
        #[command(subcommand)]
        command: commands::workflows::ExecutionCommand,
    },
    /// Tables with the DynamoDB API: create, ls, get, rm.
    #[command(visible_alias = "tables")]
    Table {
        #[command(subcommand)]
        command: commands::tables::TableCommand,
    },
    /// Items in tables: put, get, rm, query, scan (plain JSON, or DynamoDB's with --typed).
    #[command(visible_alias = "items")]
    Item {
        #[command(subcommand)]
        command: commands::tables::ItemCommand,
    },
    /// Sequences of functions, each one's output the next one's input: create, update, ls, get, rm.
    #[command(visible_alias = "sequences")]
    Sequence {
        #[command(subcommand)]
        command: commands::sequences::SequenceCommand,
    },
}

/// Runs the CLI with the process's arguments; the exit code says how it went (0 ok, 1 failed,
/// 2 bad usage).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    run(cli)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let ctx = commands::Ctx {
        url: cli.url.clone(),
        format: cli.output,
        namespace: cli.namespace.clone(),
    };
    let result = match cli.command {
        Command::Up(args) => commands::up::run(&ctx, args),
        Command::Dev(args) => commands::dev::run(&ctx, args),
        Command::Deploy(args) => commands::deploy::run(&ctx, args),
        Command::Invoke(args) => commands::invoke::run(&ctx, args),
        Command::Ls => commands::functions::ls(&ctx),
        Command::Get { name } => commands::functions::get(&ctx, &name),
        Command::Rm { name } => commands::functions::rm(&ctx, &name),
        Command::Logs(args) => commands::logs::run(&ctx, args),
        Command::Activations(args) => commands::activations::list(&ctx, args),
        Command::Activation(args) => commands::activations::get(&ctx, args),
        Command::Usage(args) => commands::usage::run(&ctx, args),
        Command::Nodes => commands::nodes::run(&ctx),
        Command::Dlq(args) => commands::dlq::run(&ctx, args),
        Command::Schedule(args) => commands::schedule::run(&ctx, args),
        Command::Route { command } => commands::routes::run(&ctx, command),
        Command::Queue { command } => commands::queues::queue(&ctx, command),
        Command::Topic { command } => commands::queues::topic(&ctx, command),
        Command::Mapping { command } => commands::queues::mapping(&ctx, command),
        Command::Bucket { command } => commands::buckets::run(&ctx, command),
        Command::Object { command } => commands::objects::run(&ctx, command),
        Command::Keys(cmd) => commands::keys::run(&ctx, cmd),
        Command::Ns { command } => commands::ns::run(&ctx, command),
        Command::Audit(args) => commands::audit::run(&ctx, args),
        Command::Workflow { command } => commands::workflows::workflow(&ctx, command),
        Command::Execution { command } => commands::workflows::execution(&ctx, command),
        Command::Sequence { command } => commands::sequences::run(&ctx, command),
        Command::Table { command } => commands::tables::table(&ctx, command),
        Command::Item { command } => commands::tables::item(&ctx, command),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            commands::report(&e);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli =
            Cli::try_parse_from(["lambent", "ls", "-o", "json", "--url", "http://h:1"]).unwrap();
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.url.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn deploy_flags_parse() {
        let cli = Cli::try_parse_from([
            "lambent",
            "deploy",
            "dir",
            "--name",
            "n",
            "--runtime",
            "python3.12",
            "--handler",
            "app.handler",
            "--memory",
            "256",
            "--timeout",
            "10",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--warm",
            "--reserved-concurrency",
            "0",
            "--provisioned-concurrency",
            "2",
            "--keep-alive",
            "60",
        ])
        .unwrap();
        let Command::Deploy(d) = cli.command else {
            panic!("not deploy")
        };
        let o = d.overrides();
        assert_eq!(o.name.as_deref(), Some("n"));
        assert_eq!(o.memory, Some(256));
        assert_eq!(
            o.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".into(), "x=y".into())
            ]
        );
        assert_eq!(
            (
                o.reserved_concurrency,
                o.provisioned_concurrency,
                o.keep_alive
            ),
            (Some(0), Some(2), Some(60))
        );
        assert!(d.warm);
        assert!(Cli::try_parse_from(["lambent", "deploy", "dir", "--env", "novalue"]).is_err());
    }
}
