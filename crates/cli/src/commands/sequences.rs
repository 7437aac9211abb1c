//! `lambent sequence create|update|ls|get|rm`: sequences of functions (each one's output the
//! next one's input), invoked like a function (`lambent invoke NAME`, `--async`, routes,
//! schedules, queues, topics).

use super::Ctx;
use crate::client::{Sequence, SequencePut};
use crate::output::{self, age, datetime};
use anyhow::{Context, Result};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum SequenceCommand {
    /// Create a sequence (or replace one) of functions run in this order.
    Create {
        /// The sequence's name (a function name: it is invoked as one).
        name: String,
        /// The functions, in order.
        #[arg(required = true, value_name = "FUNCTION")]
        components: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Change an existing sequence's functions.
    Update {
        name: String,
        #[arg(required = true, value_name = "FUNCTION")]
        components: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List sequences.
    Ls,
    /// Show a sequence.
    Get { name: String },
    /// Delete a sequence (its functions stay).
    Rm { name: String },
}

pub fn run(ctx: &Ctx, command: SequenceCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match command {
        SequenceCommand::Create {
            name,
            components,
            description,
        } => {
            let body = SequencePut {
                components,
                description,
            };
            let s = client
                .put_sequence(&name, &body)
                .with_context(|| format!("cannot create sequence '{name}'"))?;
            print_written(ctx, &s.raw, &s, "created");
        }
        SequenceCommand::Update {
            name,
            components,
            description,
        } => {
            // Update means it exists: a typo must not create a second sequence.
            let current = client.get_sequence(&name)?;
            let body = SequencePut {
                components,
                description: description.or(Some(current.description.clone())),
            };
            let s = client
                .put_sequence(&name, &body)
                .with_context(|| format!("cannot update sequence '{name}'"))?;
            print_written(ctx, &s.raw, &s, "updated");
        }
        SequenceCommand::Ls => {
            let list = client.list_sequences()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.sequences.is_empty() {
                println!(
                    "no sequences yet: create one with 'lambent sequence create NAME FN1 FN2 …'"
                );
            } else {
                let mut t = output::table(&["NAME", "COMPONENTS", "REVISION", "UPDATED"]);
                for s in &list.sequences {
                    t.add_row(vec![
                        s.name.clone(),
                        s.components.join(" → "),
                        s.revision.to_string(),
                        age(s.updated_ms),
                    ]);
                }
                output::print_table(&t);
            }
        }
        SequenceCommand::Get { name } => {
            let s = client.get_sequence(&name)?;
            if ctx.json() {
                output::print_raw_json(&s.raw);
            } else {
                let or_dash = |t: &str| {
                    if t.is_empty() {
                        "-".into()
                    } else {
                        t.to_string()
                    }
                };
                output::print_kv(&[
                    ("name", s.name.clone()),
                    ("namespace", s.namespace.clone()),
                    ("components", s.components.join(" → ")),
                    ("description", or_dash(&s.description)),
                    (
                        "timeout",
                        format!("{} s (the sum of its steps')", s.timeout),
                    ),
                    ("revision", s.revision.to_string()),
                    (
                        "created",
                        format!("{} ({})", datetime(s.created_ms), age(s.created_ms)),
                    ),
                    (
                        "updated",
                        format!("{} ({})", datetime(s.updated_ms), age(s.updated_ms)),
                    ),
                ]);
            }
        }
        SequenceCommand::Rm { name } => {
            client.delete_sequence(&name)?;
            if ctx.json() {
                output::print_json(&serde_json::json!({ "deleted": name }));
            } else {
                println!("deleted sequence {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_written(ctx: &Ctx, raw: &[u8], s: &Sequence, what: &str) {
    if ctx.json() {
        output::print_raw_json(raw);
    } else {
        println!(
            "{what} sequence {} (revision {}): {}",
            s.name,
            s.revision,
            s.components.join(" → ")
        );
    }
}

/// Creates (or replaces) the sequences a `lambent.yaml` declares, after its functions, and
/// adds the routes that name them; `each` is told of each one written.
pub fn deploy_declared(
    client: &crate::client::Client,
    declared: &[crate::manifest::SequenceDecl],
    mut each: impl FnMut(&crate::client::Json<Sequence>),
) -> Result<()> {
    for d in declared {
        let s = client
            .put_sequence(&d.name, &d.body)
            .with_context(|| format!("cannot create sequence '{}'", d.name))?;
        for route in &d.routes {
            client
                .add_route(route, true)
                .with_context(|| format!("cannot add route '{} {}'", route.method, route.path))?;
        }
        each(&s);
    }
    Ok(())
}
