//! `lambent ls`, `lambent get NAME` and `lambent rm NAME`.

use super::Ctx;
use crate::output::{self, age, datetime};
use anyhow::Result;
use std::process::ExitCode;

pub fn ls(ctx: &Ctx) -> Result<ExitCode> {
    let list = ctx.client()?.list_functions()?;
    if ctx.json() {
        output::print_raw_json(&list.raw);
        return Ok(ExitCode::SUCCESS);
    }
    if list.functions.is_empty() {
        println!("no functions yet: deploy one with 'lambent deploy PATH'");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = output::table(&[
        "NAME", "RUNTIME", "MEMORY", "TIMEOUT", "REVISION", "UPDATED",
    ]);
    for f in &list.functions {
        t.add_row(vec![
            f.name.clone(),
            f.runtime.clone(),
            format!("{} MB", f.memory),
            format!("{} s", f.timeout),
            f.revision.to_string(),
            age(f.updated_ms),
        ]);
    }
    output::print_table(&t);
    Ok(ExitCode::SUCCESS)
}

pub fn get(ctx: &Ctx, name: &str) -> Result<ExitCode> {
    let f = ctx.client()?.get_function(name)?;
    if ctx.json() {
        output::print_raw_json(&f.raw);
        return Ok(ExitCode::SUCCESS);
    }
    let env = if f.env.is_empty() {
        "-".to_string()
    } else {
        f.env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut rows = vec![
        ("name", f.name.clone()),
        ("namespace", f.namespace.clone()),
        ("runtime", f.runtime.clone()),
        ("handler", f.handler.clone()),
        ("memory", format!("{} MB", f.memory)),
        ("timeout", format!("{} s", f.timeout)),
        ("env", env),
        (
            "description",
            if f.description.is_empty() {
                "-".into()
            } else {
                f.description.clone()
            },
        ),
        (
            "reserved concurrency",
            f.reserved_concurrency
                .map_or_else(|| "-".into(), |n| n.to_string()),
        ),
        (
            "provisioned concurrency",
            f.provisioned_concurrency.to_string(),
        ),
        (
            "keep-alive",
            f.keep_alive
                .map_or_else(|| "server default".into(), |s| format!("{s} s")),
        ),
        ("revision", f.revision.to_string()),
        (
            "code",
            format!("sha256 {} ({} bytes)", f.code_sha256, f.code_size),
        ),
        (
            "created",
            format!("{} ({})", datetime(f.created_ms), age(f.created_ms)),
        ),
        (
            "updated",
            format!("{} ({})", datetime(f.updated_ms), age(f.updated_ms)),
        ),
    ];
    if let Some(s) = &f.sandboxes {
        rows.push(("sandboxes", format!("{} idle, {} busy", s.idle, s.busy)));
    }
    output::print_kv(&rows);
    Ok(ExitCode::SUCCESS)
}

pub fn rm(ctx: &Ctx, name: &str) -> Result<ExitCode> {
    ctx.client()?.delete_function(name)?;
    if ctx.json() {
        output::print_json(&serde_json::json!({ "deleted": name }));
    } else {
        println!("deleted {name}");
    }
    Ok(ExitCode::SUCCESS)
}
