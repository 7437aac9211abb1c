//! `lambent workflow deploy|ls|get|rm|start` (state machines) and `lambent execution
//! ls|show|stop` (their executions), over `/v1/workflows`.

use super::Ctx;
use crate::client::{Client, Execution, ExecutionStart, TimelineEntry, Workflow, WorkflowPut};
use crate::output::{self, age, datetime_ms};
use crate::workflow_manifest::{self, WorkflowDeployment};
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use serde_json::Value;
use std::path::Path;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow (state machine) or update its definition.
    Deploy {
        /// The workflow's name.
        name: String,
        /// The definition (Amazon States Language): a JSON or YAML file, or JSON text.
        #[arg(long, short = 'd', value_name = "FILE|JSON")]
        definition: String,
        /// STANDARD (durable, with history) or EXPRESS (in memory) [default: STANDARD].
        #[arg(long = "type", value_name = "TYPE", value_parser = ["STANDARD", "EXPRESS", "standard", "express"])]
        kind: Option<String>,
    },
    /// List workflows.
    #[command(visible_alias = "list")]
    Ls,
    /// Show a workflow and its definition.
    Get { name: String },
    /// Delete a workflow (its executions' records stay).
    #[command(visible_alias = "delete")]
    Rm { name: String },
    /// Start an execution; print its ARN, or with --sync its output once it ends.
    Start {
        /// The workflow's name.
        name: String,
        /// The execution's input: JSON, @FILE or - (standard input).
        #[arg(long, short = 'i', default_value = "{}", value_name = "JSON|@FILE|-")]
        input: String,
        /// Wait for the end and print the output (exit 1 if the execution did not succeed).
        #[arg(long)]
        sync: bool,
        /// The execution's name [default: a UUID]; a Standard execution's name is unique.
        #[arg(long = "name", value_name = "EXEC")]
        execution: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionCommand {
    /// List a workflow's executions, newest first.
    #[command(visible_alias = "list")]
    Ls {
        /// The workflow's name.
        workflow: String,
        /// Only RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED ones.
        #[arg(long)]
        status: Option<String>,
        /// At most this many [default: 100].
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Show an execution and its history as a timeline (state, start, duration, retries, error).
    Show {
        /// The execution's ARN, or the workflow's name followed by the execution's.
        target: String,
        execution: Option<String>,
    },
    /// Stop a running execution (it ends ABORTED).
    Stop {
        /// The execution's ARN, or the workflow's name followed by the execution's.
        target: String,
        execution: Option<String>,
        /// The error recorded.
        #[arg(long)]
        error: Option<String>,
        /// The cause recorded.
        #[arg(long)]
        cause: Option<String>,
    },
}

pub fn workflow(ctx: &Ctx, command: WorkflowCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        WorkflowCommand::Deploy {
            name,
            definition,
            kind,
        } => {
            let definition = if definition.trim_start().starts_with('{') {
                serde_json::from_str(&definition).context("--definition is not valid JSON")?
            } else {
                workflow_manifest::read_definition(Path::new(&definition))?
            };
            let w = deploy_one(
                &client,
                &WorkflowDeployment {
                    name,
                    kind: kind.map(|k| k.to_ascii_uppercase()),
                    definition,
                    routes: Vec::new(),
                    schedules: Default::default(),
                },
            )?;
            if ctx.json() {
                output::print_raw_json(&w.raw);
            } else {
                println!("{}", deployed_line(&w));
            }
        }
        WorkflowCommand::Ls => {
            let list = client.list_workflows()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.workflows.is_empty() {
                println!("no workflows yet: deploy one with 'lambent workflow deploy NAME --definition FILE'");
            } else {
                let mut t = output::table(&["NAME", "TYPE", "REVISION", "UPDATED"]);
                for w in &list.workflows {
                    t.add_row(vec![
                        w.name.clone(),
                        w.kind.clone(),
                        w.revision.to_string(),
                        age(w.updated_ms),
                    ]);
                }
                output::print_table(&t);
            }
        }
        WorkflowCommand::Get { name } => {
            let w = client.get_workflow(&name)?;
            if ctx.json() {
                output::print_raw_json(&w.raw);
            } else {
                output::print_kv(&[
                    ("name", w.name.clone()),
                    ("arn", w.arn.clone()),
                    ("type", w.kind.clone()),
                    ("revision", w.revision.to_string()),
                    ("created", datetime_ms(w.created_ms)),
                    ("updated", datetime_ms(w.updated_ms)),
                ]);
                println!("definition:");
                let text = w
                    .definition
                    .as_ref()
                    .map(|d| serde_json::to_string_pretty(d).unwrap_or_default())
                    .unwrap_or_default();
                println!("{text}");
            }
        }
        WorkflowCommand::Rm { name } => {
            client.delete_workflow(&name)?;
            if !ctx.json() {
                println!("deleted workflow {name}");
            }
        }
        WorkflowCommand::Start {
            name,
            input,
            sync,
            execution,
        } => {
            let raw = super::invoke::read_data(&input)?;
            let input: Value =
                serde_json::from_slice(&raw).context("the input is not valid JSON")?;
            let e = client.start_execution(
                &name,
                &ExecutionStart {
                    input,
                    name: execution,
                    sync,
                },
            )?;
            if ctx.json() {
                output::print_raw_json(&e.raw);
            } else if !sync {
                println!("started {}", e.arn);
            } else if let Some(out) = &e.output {
                println!("{out}");
            }
            if sync && e.status != "SUCCEEDED" {
                if !ctx.json() {
                    eprintln!("error: execution {}: {}", e.status, error_text(&e));
                }
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn execution(ctx: &Ctx, command: ExecutionCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        ExecutionCommand::Ls {
            workflow,
            status,
            limit,
        } => {
            let list = client.list_executions(&workflow, status.as_deref(), limit)?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.executions.is_empty() {
                println!("no executions of {workflow}");
            } else {
                let mut t =
                    output::table(&["NAME", "STATUS", "STARTED", "DURATION", "TRANSITIONS"]);
                for e in &list.executions {
                    t.add_row(vec![
                        e.name.clone(),
                        e.status.clone(),
                        datetime_ms(e.start_ms),
                        e.stop_ms.map_or_else(
                            || "-".into(),
                            |stop| millis(stop.saturating_sub(e.start_ms) as f64),
                        ),
                        e.transitions.to_string(),
                    ]);
                }
                output::print_table(&t);
            }
        }
        ExecutionCommand::Show { target, execution } => {
            let (workflow, name) = execution_id(&target, execution.as_deref())?;
            let h = client.execution_history(&workflow, &name)?;
            if ctx.json() {
                output::print_raw_json(&h.raw);
                return Ok(ExitCode::SUCCESS);
            }
            let e = &h.execution;
            let mut rows = vec![
                ("execution", e.arn.clone()),
                ("workflow", e.workflow.clone()),
                ("status", e.status.clone()),
                ("started", datetime_ms(e.start_ms)),
                (
                    "duration",
                    e.stop_ms.map_or_else(
                        || "running".into(),
                        |stop| millis(stop.saturating_sub(e.start_ms) as f64),
                    ),
                ),
                ("transitions", e.transitions.to_string()),
                ("input", compact(e.input.as_ref())),
            ];
            if e.output.is_some() {
                rows.push(("output", compact(e.output.as_ref())));
            }
            if e.error.is_some() || e.cause.is_some() {
                rows.push(("error", error_text(e)));
            }
            output::print_kv(&rows);
            println!();
            print_timeline(&h.timeline);
        }
        ExecutionCommand::Stop {
            target,
            execution,
            error,
            cause,
        } => {
            let (workflow, name) = execution_id(&target, execution.as_deref())?;
            let e = client.stop_execution(&workflow, &name, error.as_deref(), cause.as_deref())?;
            if ctx.json() {
                output::print_raw_json(&e.raw);
            } else {
                println!("{} {}", e.status.to_ascii_lowercase(), e.arn);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Deploys one workflow (create or update), then adds its routes (replacing those with the
/// same method and path).
pub fn deploy_one(
    client: &Client,
    w: &WorkflowDeployment,
) -> Result<crate::client::Json<Workflow>> {
    let deployed = client
        .put_workflow(
            &w.name,
            &WorkflowPut {
                definition: w.definition.clone(),
                kind: w.kind.clone(),
            },
        )
        .with_context(|| format!("cannot deploy workflow '{}'", w.name))?;
    for route in &w.routes {
        client
            .add_route(route, true)
            .with_context(|| format!("cannot add route '{} {}'", route.method, route.path))?;
    }
    for (name, schedule) in &w.schedules {
        client
            .put_schedule(name, schedule, true)
            .with_context(|| format!("cannot create schedule '{name}'"))?;
    }
    Ok(deployed)
}

/// `workflow orders created (EXPRESS, revision 1)`.
pub fn deployed_line(w: &Workflow) -> String {
    format!(
        "workflow {} {} ({}, revision {})",
        w.name,
        w.deployed.as_deref().unwrap_or("deployed"),
        w.kind,
        w.revision
    )
}

/// The workflow and execution names of `target [execution]`: two names, or an execution ARN
/// (`arn:aws:states:REGION:NAMESPACE:execution:WORKFLOW:NAME`).
fn execution_id(target: &str, execution: Option<&str>) -> Result<(String, String)> {
    if let Some(name) = execution {
        return Ok((target.to_string(), name.to_string()));
    }
    let parts: Vec<&str> = target.split(':').collect();
    match parts[..] {
        ["arn", _, "states", _, _, "execution", workflow, name] => {
            Ok((workflow.to_string(), name.to_string()))
        }
        ["arn", _, "states", _, _, "express", ..] => {
            bail!("express executions keep no history: only Standard executions can be shown")
        }
        _ => bail!(
            "'{target}' is not an execution ARN: give one, or the workflow's name and the \
             execution's"
        ),
    }
}

fn error_text(e: &Execution) -> String {
    match (&e.error, &e.cause) {
        (Some(error), Some(cause)) if !cause.is_empty() => format!("{error}: {cause}"),
        (Some(error), _) => error.clone(),
        (None, Some(cause)) => cause.clone(),
        (None, None) => "-".into(),
    }
}

fn compact(v: Option<&Value>) -> String {
    v.map_or_else(|| "-".into(), Value::to_string)
}

/// `12.345 ms` (or seconds past a second).
fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.3} s", ms / 1000.0)
    } else {
        format!("{ms:.3} ms")
    }
}

fn print_timeline(timeline: &[TimelineEntry]) {
    if timeline.is_empty() {
        println!("no state entered yet");
        return;
    }
    let mut t = output::table(&["STATE", "TYPE", "START", "DURATION", "RETRIES", "ERROR"]);
    for row in timeline_rows(timeline) {
        t.add_row(row);
    }
    output::print_table(&t);
}

fn timeline_rows(timeline: &[TimelineEntry]) -> Vec<Vec<String>> {
    timeline
        .iter()
        .map(|s| {
            vec![
                s.state.clone(),
                s.state_type.clone(),
                datetime_ms(s.start_ms),
                s.duration_ms.map_or_else(|| "running".into(), millis),
                s.retries.to_string(),
                match (&s.error, &s.cause) {
                    (Some(e), Some(c)) if !c.is_empty() => format!("{e}: {c}"),
                    (Some(e), _) => e.clone(),
                    _ => "-".into(),
                },
            ]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_are_named_by_arn_or_by_two_names() {
        assert_eq!(
            execution_id("arn:aws:states:us-east-1:default:execution:flow:e1", None).unwrap(),
            ("flow".to_string(), "e1".to_string())
        );
        assert_eq!(
            execution_id("flow", Some("e1")).unwrap(),
            ("flow".to_string(), "e1".to_string())
        );
        assert!(execution_id("flow", None).is_err());
        let e = execution_id(
            "arn:aws:states:us-east-1:default:express:flow:e1:uuid",
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("express"), "{e}");
    }

    #[test]
    fn timeline_rows_read_well() {
        let rows = timeline_rows(&[
            TimelineEntry {
                state: "Charge".into(),
                state_type: "Task".into(),
                start_ms: 0,
                duration_ms: Some(1234.0),
                retries: 2,
                error: Some("Boom".into()),
                cause: Some("declined".into()),
            },
            TimelineEntry {
                state: "Wait".into(),
                state_type: "Wait".into(),
                start_ms: 1,
                duration_ms: None,
                ..Default::default()
            },
        ]);
        assert_eq!(
            rows[0],
            [
                "Charge",
                "Task",
                "1970-01-01 00:00:00.000Z",
                "1.234 s",
                "2",
                "Boom: declined"
            ]
        );
        assert_eq!(rows[1][3], "running");
        assert_eq!(rows[1][5], "-");
    }
}
