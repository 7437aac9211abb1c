//! `lambent dlq ls|show|redrive`: the dead-letter queue of asynchronous invocations.

use super::Ctx;
use crate::output::{self, age, datetime};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    pub command: DlqCommand,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest first.
    Ls {
        /// Only this function's.
        #[arg(long)]
        function: Option<String>,
    },
    /// Show one dead letter with its payload.
    Show {
        /// The dead letter's id (the event's first activation id).
        id: String,
    },
    /// Queue dead letters again as new events: one by id, or all (of a function).
    Redrive {
        /// The dead letter's id.
        id: Option<String>,
        /// Every dead letter (of `--function`, if given).
        #[arg(long, conflicts_with = "id")]
        all: bool,
        /// With --all: only this function's.
        #[arg(long, requires = "all")]
        function: Option<String>,
    },
}

pub fn run(ctx: &Ctx, args: DlqArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    match args.command {
        DlqCommand::Ls { function } => {
            let list = client.dead_letters(function.as_deref())?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.dead_letters.is_empty() {
                println!("no dead letters");
            } else {
                let mut t = output::table(&["ID", "FUNCTION", "ATTEMPTS", "ERROR", "FAILED"]);
                for l in &list.dead_letters {
                    t.add_row(vec![
                        l.id.clone(),
                        l.function.clone(),
                        l.attempts.to_string(),
                        format!("{}: {}", l.error_type, l.error_message),
                        age(l.failed_ms),
                    ]);
                }
                output::print_table(&t);
            }
        }
        DlqCommand::Show { id } => {
            let letter = client.dead_letter(&id)?;
            if ctx.json() {
                output::print_raw_json(&letter.raw);
            } else {
                let v = &letter.data;
                let text = |k: &str| v[k].as_str().unwrap_or("-").to_string();
                let ms = |k: &str| v[k].as_u64().map_or("-".into(), datetime);
                output::print_kv(&[
                    ("id", text("id")),
                    ("function", text("function")),
                    ("trigger", text("trigger")),
                    ("accepted", ms("created_ms")),
                    ("failed", ms("failed_ms")),
                    ("attempts", v["attempts"].to_string()),
                    (
                        "error",
                        format!("{}: {}", text("error_type"), text("error_message")),
                    ),
                    ("last activation", text("activation_id")),
                    ("payload", v["payload"].to_string()),
                ]);
            }
        }
        DlqCommand::Redrive { id, all, function } => {
            if id.is_none() && !all {
                bail!("name a dead letter to redrive, or pass --all");
            }
            let result = client.redrive(id.as_deref(), function.as_deref())?;
            if ctx.json() {
                output::print_raw_json(&result.raw);
            } else if result.redriven.is_empty() {
                println!("nothing to redrive");
            } else {
                for r in &result.redriven {
                    println!("redriven {} as {}", r.dead_letter_id, r.activation_id);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
