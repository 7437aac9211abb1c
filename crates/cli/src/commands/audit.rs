//! `lambent audit [--since 1h]`: the management actions of the namespace (who, what, when,
//! from where), newest first; with the operator's key, every namespace's.

use super::Ctx;
use crate::output::{self, datetime_ms};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only actions this recent (30s, 15m, 1h, 2d).
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    since: Option<std::time::Duration>,
}

pub fn run(ctx: &Ctx, args: AuditArgs) -> Result<ExitCode> {
    let client = match crate::config::env_admin_key() {
        Some(_) => ctx.operator_client()?,
        None => ctx.client()?,
    };
    let since_ms = args
        .since
        .map(|d| output::now_ms() as i64 - d.as_millis() as i64);
    let audit = client.audit(since_ms)?;
    if ctx.json() {
        output::print_raw_json(&audit.raw);
        return Ok(ExitCode::SUCCESS);
    }
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        println!("no management actions recorded");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = output::table(&[
        "TIME",
        "NAMESPACE",
        "KEY",
        "ROLE",
        "ACTION",
        "TARGET",
        "STATUS",
        "CLIENT",
    ]);
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    for e in &entries {
        t.add_row(vec![
            datetime_ms(e["at_ms"].as_u64().unwrap_or(0)),
            text(&e["namespace"]),
            text(&e["key_id"]),
            text(&e["role"]),
            format!("{} {}", text(&e["method"]), text(&e["action"])),
            text(&e["target"]),
            e["status"].to_string(),
            text(&e["client"]),
        ]);
    }
    output::print_table(&t);
    Ok(ExitCode::SUCCESS)
}
