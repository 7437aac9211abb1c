//! `lambent schedule add|ls|rm`: cron, rate and one-shot schedules that invoke a function
//! asynchronously with an EventBridge scheduled event (or a constant `--input`).

use super::Ctx;
use crate::events_client::SchedulePut;
use crate::output::{self, datetime};
use anyhow::Result;
use clap::{ArgGroup, Args, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule.
    #[command(group(ArgGroup::new("when").required(true).args(["cron", "rate", "at"])))]
    Add {
        /// The schedule's name.
        name: String,
        /// The function to invoke.
        #[arg(long, required_unless_present = "workflow")]
        function: Option<String>,
        /// Start an execution of this workflow instead (the scheduled event as its input).
        #[arg(long, conflicts_with = "function", value_name = "NAME")]
        workflow: Option<String>,
        /// A cron expression with seconds: "sec min hour day-of-month month day-of-week".
        #[arg(long)]
        cron: Option<String>,
        /// Every so often: "5 minutes", "1 hour", "30 seconds".
        #[arg(long)]
        rate: Option<String>,
        /// Once, at this local time: 2026-12-01T10:00:00.
        #[arg(long)]
        at: Option<String>,
        /// The time zone of --cron and --at (an IANA name) [default: UTC].
        #[arg(long)]
        tz: Option<String>,
        /// JSON sent on each fire instead of the scheduled event: '{"job": "report"}'.
        #[arg(long, value_name = "JSON", value_parser = parse_input)]
        input: Option<serde_json::Value>,
    },
    /// List schedules.
    Ls,
    /// Delete a schedule.
    Rm {
        /// The schedule's name.
        name: String,
    },
}

/// `--input`: one JSON value.
fn parse_input(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))
}

pub fn run(ctx: &Ctx, args: ScheduleArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    match args.command {
        ScheduleCommand::Add {
            name,
            function,
            workflow,
            cron,
            rate,
            at,
            tz,
            input,
        } => {
            let body = SchedulePut {
                name: None,
                function: function.unwrap_or_default(),
                workflow,
                cron,
                rate,
                at,
                tz,
                input,
            };
            let s = client.put_schedule(&name, &body, false)?;
            if ctx.json() {
                output::print_raw_json(&s.raw);
            } else {
                println!(
                    "added schedule {} ({} {}), next fire {}",
                    s.name,
                    s.expression,
                    s.timezone,
                    s.next_fire_ms.map_or("-".into(), datetime)
                );
            }
        }
        ScheduleCommand::Ls => {
            let list = client.schedules()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.schedules.is_empty() {
                println!("no schedules yet: add one with 'lambent schedule add'");
            } else {
                let mut t = output::table(&["NAME", "FUNCTION", "EXPRESSION", "TZ", "NEXT FIRE"]);
                for s in &list.schedules {
                    t.add_row(vec![
                        s.name.clone(),
                        s.function.clone(),
                        s.expression.clone(),
                        s.timezone.clone(),
                        s.next_fire_ms.map_or("-".into(), datetime),
                    ]);
                }
                output::print_table(&t);
            }
        }
        ScheduleCommand::Rm { name } => {
            client.delete_schedule(&name)?;
            if ctx.json() {
                output::print_json(&serde_json::json!({ "deleted": name }));
            } else {
                println!("deleted schedule {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
