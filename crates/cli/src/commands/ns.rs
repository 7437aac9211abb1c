//! `lambent ns create|ls|get|update|rm`: namespaces (tenants), with the operator's key
//! (`LAMBENT_ADMIN_KEY`, else the configured key). `create` prints the new namespace's first
//! owner key, once.

use super::Ctx;
use crate::manifest::parse_size;
use crate::output::{self, datetime};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum NsCommand {
    /// Create a namespace; prints its owner key (shown only this once).
    Create {
        name: String,
        #[command(flatten)]
        settings: Settings,
    },
    /// List the namespaces.
    #[command(visible_alias = "list")]
    Ls,
    /// Show a namespace's settings and what it holds.
    Get { name: String },
    /// Change a namespace's settings (the ones given), claim or release host names.
    Update {
        name: String,
        #[command(flatten)]
        settings: Settings,
        /// Claim a host name: requests to it are matched against this namespace's routes
        /// only (repeatable).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
        /// Release a host name it claimed (repeatable).
        #[arg(long = "release-host", value_name = "HOST")]
        release_hosts: Vec<String>,
    },
    /// Delete a namespace; with --force, everything in it first.
    #[command(visible_alias = "delete")]
    Rm {
        name: String,
        /// Delete its functions, routes, queues, topics, buckets, tables, workflows, records
        /// and keys too (refused otherwise while it holds anything).
        #[arg(long)]
        force: bool,
    },
}

/// A namespace's settings as flags (stored; see docs/tenants.md for which are enforced).
#[derive(Debug, Args, Default)]
pub struct Settings {
    /// Concurrent invocations of the namespace.
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// Memory its sandboxes may hold at once, in MB.
    #[arg(long, value_name = "MB")]
    memory_budget: Option<u64>,
    /// How many functions it may have.
    #[arg(long, value_name = "N")]
    max_functions: Option<u32>,
    /// Bytes it may store (65536, 64k, 1m, 10g).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    storage_quota: Option<u64>,
    /// Monthly budget in US dollars.
    #[arg(long, value_name = "USD")]
    monthly_budget: Option<f64>,
    /// A hard budget refuses invocations once spent (the default warns only).
    #[arg(long)]
    hard_budget: bool,
}

impl Settings {
    /// The settings given, as the API's JSON fields.
    fn fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut set = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        };
        set("concurrency", self.concurrency.map(Value::from));
        set("memory_budget_mb", self.memory_budget.map(Value::from));
        set("max_functions", self.max_functions.map(Value::from));
        set("storage_quota_bytes", self.storage_quota.map(Value::from));
        set("monthly_budget_usd", self.monthly_budget.map(Value::from));
        if self.hard_budget {
            m.insert("budget_hard".into(), Value::Bool(true));
        }
        m
    }
}

fn settings_text(ns: &Value) -> String {
    match ns["settings"].as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    }
}

fn hosts_text(ns: &Value) -> String {
    match ns["hosts"].as_array() {
        Some(hosts) if !hosts.is_empty() => hosts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "-".into(),
    }
}

pub fn run(ctx: &Ctx, cmd: NsCommand) -> Result<ExitCode> {
    let client = ctx.operator_client()?;
    match cmd {
        NsCommand::Create { name, settings } => {
            let mut body = settings.fields();
            body.insert("name".into(), json!(name));
            let created = client
                .create_namespace(&Value::Object(body))
                .with_context(|| format!("cannot create namespace '{name}'"))?;
            if ctx.json() {
                output::print_raw_json(&created.raw);
            } else {
                let key = &created["owner_key"];
                output::print_kv(&[
                    ("namespace", name.clone()),
                    ("settings", settings_text(&created)),
                    ("owner key id", key["key_id"].as_str().unwrap_or("").into()),
                    ("owner key", key["secret"].as_str().unwrap_or("").into()),
                ]);
                println!(
                    "\nthe key is shown only now: LAMBENT_API_KEY=<owner key> acts in '{name}'"
                );
            }
        }
        NsCommand::Ls => {
            let list = client.list_namespaces()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else {
                let mut t = output::table(&["NAMESPACE", "SETTINGS", "CREATED"]);
                for ns in list["namespaces"].as_array().into_iter().flatten() {
                    t.add_row(vec![
                        ns["name"].as_str().unwrap_or("").to_string(),
                        settings_text(ns),
                        datetime(ns["created_ms"].as_u64().unwrap_or(0)),
                    ]);
                }
                output::print_table(&t);
            }
        }
        NsCommand::Get { name } => {
            let ns = client.get_namespace(&name)?;
            if ctx.json() {
                output::print_raw_json(&ns.raw);
            } else {
                let holds = match ns["holds"].as_object() {
                    Some(m) if !m.is_empty() => m
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    _ => "nothing".into(),
                };
                output::print_kv(&[
                    ("namespace", name.clone()),
                    ("account id", ns["account_id"].as_str().unwrap_or("").into()),
                    ("settings", settings_text(&ns)),
                    ("hosts", hosts_text(&ns)),
                    ("holds", holds),
                ]);
            }
        }
        NsCommand::Update {
            name,
            settings,
            hosts,
            release_hosts,
        } => {
            let fields = settings.fields();
            if !fields.is_empty() || (hosts.is_empty() && release_hosts.is_empty()) {
                client.update_namespace(&name, &Value::Object(fields))?;
            }
            for host in &hosts {
                client
                    .claim_host(&name, host)
                    .with_context(|| format!("cannot claim host name '{host}' for '{name}'"))?;
            }
            for host in &release_hosts {
                client
                    .release_host(&name, host)
                    .with_context(|| format!("cannot release host name '{host}' of '{name}'"))?;
            }
            let ns = client.get_namespace(&name)?;
            if ctx.json() {
                output::print_raw_json(&ns.raw);
            } else {
                println!(
                    "updated {name}: {} hosts: {}",
                    settings_text(&ns),
                    hosts_text(&ns)
                );
            }
        }
        NsCommand::Rm { name, force } => {
            client
                .delete_namespace(&name, force)
                .with_context(|| format!("cannot delete namespace '{name}'"))?;
            if ctx.json() {
                output::print_json(&json!({ "deleted": name }));
            } else {
                println!("deleted namespace {name}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
