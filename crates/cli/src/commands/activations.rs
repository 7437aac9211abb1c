//! `lambent activations [--function F] [--status S] [--since 1h] [--limit N]` and
//! `lambent activation ID`: the activation records, newest first, and one of them in full.

use super::Ctx;
use crate::client::{Activation, ActivationFilter, Client};
use crate::output::{self, datetime_ms, ms_from_us};
use crate::{duration, output::now_ms};
use anyhow::{Context, Result};
use clap::Args;
use lambent_core::ActivationStatus;
use serde_json::Value;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The most rows one page may ask for (the server's cap).
const MAX_PAGE: u32 = 1000;
/// How much of an error message the table shows.
const ERROR_WIDTH: usize = 60;

#[derive(Debug, Args)]
pub struct ActivationsArgs {
    /// Only this function's activations.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
    /// Only activations with this status.
    #[arg(long, value_name = "STATUS", value_parser = statuses())]
    pub status: Option<String>,
    /// Only activations that started in this last while: 30s, 15m, 1h, 2d, 1w, …
    #[arg(long, value_name = "DURATION", value_parser = duration::parse)]
    pub since: Option<Duration>,
    /// Show at most this many (the newest).
    #[arg(long, default_value_t = 50, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct ActivationArgs {
    /// The activation's id (from `lambent activations`, or an invoke's `Lambent-Activation-Id`).
    pub id: String,
}

/// The statuses an activation can have.
fn statuses() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(ActivationStatus::ALL.map(|s| s.as_str()))
}

/// The newest `args.limit` activations matching the filters, each typed and as the API sent it.
fn gather(client: &Client, args: &ActivationsArgs) -> Result<Vec<(Activation, Value)>> {
    let mut filter = ActivationFilter {
        function: args.function.clone(),
        status: args.status.clone(),
        since_ms: args.since.map(|d| duration::ago_ms(d, now_ms())),
        ..Default::default()
    };
    paginate(args.limit, |limit, cursor| {
        filter.limit = Some(limit);
        filter.cursor = cursor;
        let page = client.list_activations(&filter)?;
        let raw: Value = serde_json::from_slice(&page.raw).context("activations page")?;
        let raw_rows = match raw.get("activations") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        };
        let rows = page.data.activations.into_iter().zip(raw_rows).collect();
        Ok((rows, page.data.next_cursor))
    })
}

/// Gets pages with `fetch(page size, cursor)` until `limit` rows are gathered or there is no
/// next page.
fn paginate<T>(
    limit: u32,
    mut fetch: impl FnMut(u32, Option<String>) -> Result<(Vec<T>, Option<String>)>,
) -> Result<Vec<T>> {
    let limit = limit as usize;
    let mut rows = Vec::new();
    let mut cursor = None;
    loop {
        let wanted = (limit - rows.len()).min(MAX_PAGE as usize) as u32;
        let (page, next) = fetch(wanted, cursor)?;
        let empty = page.is_empty();
        rows.extend(page);
        rows.truncate(limit);
        match next {
            Some(c) if !empty && rows.len() < limit => cursor = Some(c),
            _ => return Ok(rows),
        }
    }
}

pub fn list(ctx: &Ctx, args: ActivationsArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    let rows = gather(&client, &args)?;
    if ctx.json() {
        let all: Vec<Value> = rows.into_iter().map(|(_, raw)| raw).collect();
        output::print_json(&serde_json::json!({ "activations": all }));
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no activations");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = output::table(&[
        "ID",
        "START",
        "FUNCTION",
        "STATUS",
        "COLD",
        "DURATION(ms)",
        "BILLED(ms)",
        "MEMORY(MB)",
        "ERROR",
    ]);
    for (a, _) in &rows {
        t.add_row(vec![
            a.id.clone(),
            datetime_ms(a.start_ms),
            a.function.clone(),
            a.status.clone(),
            if a.cold { "yes" } else { "no" }.to_string(),
            ms_from_us(a.duration_us),
            a.billed_ms.to_string(),
            format!("{}/{}", max_used_mb(a), a.memory_mb),
            error_summary(a),
        ]);
    }
    output::print_table(&t);
    Ok(ExitCode::SUCCESS)
}

pub fn get(ctx: &Ctx, args: ActivationArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    let a = client.get_activation(&args.id)?;
    if ctx.json() {
        output::print_raw_json(&a.raw);
        return Ok(ExitCode::SUCCESS);
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let rows = vec![
        ("id", a.id.clone()),
        ("function", a.function.clone()),
        ("namespace", a.namespace.clone()),
        ("revision", a.revision.to_string()),
        ("trigger", a.trigger.clone()),
        ("status", a.status.clone()),
        ("start", datetime_ms(a.start_ms)),
        ("end", datetime_ms(a.end_ms)),
        ("duration", format!("{} ms", ms_from_us(a.duration_us))),
        ("billed duration", format!("{} ms", a.billed_ms)),
        (
            "init duration",
            a.init_us
                .map_or_else(|| "-".into(), |us| format!("{} ms", ms_from_us(us))),
        ),
        ("init phases", init_phases(&a)),
        ("memory", format!("{} MB", a.memory_mb)),
        ("max memory used", format!("{} MB", max_used_mb(&a))),
        (
            "cold",
            match (a.cold, &a.cold_reason) {
                (true, Some(reason)) => format!("yes ({reason})"),
                (true, None) => "yes".into(),
                (false, _) => "no".into(),
            },
        ),
        ("error type", or_dash(&a.error_type)),
        ("error message", or_dash(&a.error_message)),
    ];
    output::print_kv(&rows);
    let mut out = std::io::stdout().lock();
    if let Some(parent) = &a.parent {
        writeln!(out, "\nstep of sequence activation {parent}")?;
    }
    if !a.steps.is_empty() {
        writeln!(out, "\nsteps:")?;
        output::print_table(&steps_table(&client, &a.steps)?);
    }
    writeln!(out)?;
    if a.logs.is_empty() {
        writeln!(out, "(no logs)")?;
    } else {
        out.write_all(a.logs.as_bytes())?;
        if !a.logs.ends_with('\n') {
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A sequence's steps, in order: each one's record, read from the server.
fn steps_table(client: &Client, steps: &[String]) -> Result<comfy_table::Table> {
    let mut t = output::table(&[
        "#",
        "ACTIVATION",
        "FUNCTION",
        "STATUS",
        "DURATION(ms)",
        "ERROR",
    ]);
    for (i, id) in steps.iter().enumerate() {
        let step = client.get_activation(id)?;
        t.add_row(vec![
            (i + 1).to_string(),
            id.clone(),
            step.function.clone(),
            step.status.clone(),
            ms_from_us(step.duration_us),
            error_summary(&step),
        ]);
    }
    Ok(t)
}

/// `sandbox 0.812 ms (zygote), runtime 1.204 ms, import 50.310 ms`; `-` on warm activations.
fn init_phases(a: &Activation) -> String {
    let Some(init) = &a.init else {
        return "-".into();
    };
    let import = init.import_us.map_or_else(
        || "not reported by the runtime".to_string(),
        |us| format!("{} ms", ms_from_us(us)),
    );
    format!(
        "sandbox {} ms ({}), runtime {} ms, import {import}",
        ms_from_us(init.sandbox_us),
        init.birth,
        ms_from_us(init.runtime_us),
    )
}

/// Peak memory in MB, rounded up; `-` when not measured.
fn max_used_mb(a: &Activation) -> String {
    a.max_memory_bytes
        .map_or_else(|| "-".into(), |b| b.div_ceil(1024 * 1024).to_string())
}

/// `ValueError: boom` on one line, cut to [`ERROR_WIDTH`] characters; `-` for none.
fn error_summary(a: &Activation) -> String {
    let text = match (&a.error_type, &a.error_message) {
        (None, None) => return "-".into(),
        (Some(t), None) => t.clone(),
        (None, Some(m)) => m.clone(),
        (Some(t), Some(m)) => format!("{t}: {m}"),
    };
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > ERROR_WIDTH || line.len() < text.trim_end().len() {
        let cut: String = line.chars().take(ERROR_WIDTH - 1).collect();
        format!("{cut}…")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake API over `0..total`, newest first as numbers counting down; cursors are the last
    /// number sent.
    fn pages(total: u32, limit: u32) -> (Vec<u32>, Vec<(u32, Option<String>)>) {
        let mut calls = Vec::new();
        let rows = paginate(limit, |size, cursor| {
            calls.push((size, cursor.clone()));
            let below: u32 = cursor.map_or(total, |c| c.parse().unwrap());
            let page: Vec<u32> = (0..below).rev().take(size as usize).collect();
            let next = (page.len() == size as usize)
                .then(|| page.last().map(u32::to_string))
                .flatten();
            Ok((page, next))
        })
        .unwrap();
        (rows, calls)
    }

    #[test]
    fn pages_are_followed_until_the_limit() {
        let (rows, calls) = pages(10, 3);
        assert_eq!(rows, [9, 8, 7]);
        assert_eq!(calls, [(3, None)]);

        let (rows, calls) = pages(2500, 2200);
        assert_eq!(rows.len(), 2200);
        assert_eq!((rows[0], rows[2199]), (2499, 300));
        assert_eq!(
            calls,
            [
                (1000, None),
                (1000, Some("1500".to_string())),
                (200, Some("500".to_string()))
            ]
        );

        // Fewer than asked: stops when the API has no next page.
        let (rows, calls) = pages(1500, 5000);
        assert_eq!(rows.len(), 1500);
        assert_eq!(calls.len(), 2);
        let (rows, calls) = pages(0, 50);
        assert!(rows.is_empty());
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn init_phases_read_well() {
        let mut a = Activation::default();
        assert_eq!(init_phases(&a), "-");
        a.init = Some(crate::client::InitBreakdown {
            birth: "zygote".into(),
            sandbox_us: 812,
            runtime_us: 1204,
            import_us: Some(50_310),
        });
        assert_eq!(
            init_phases(&a),
            "sandbox 0.812 ms (zygote), runtime 1.204 ms, import 50.310 ms"
        );
        a.init.as_mut().unwrap().import_us = None;
        assert!(init_phases(&a).ends_with("import not reported by the runtime"));
    }

    #[test]
    fn memory_and_errors_read_well() {
        let mut a = Activation {
            max_memory_bytes: Some(9_011_200),
            memory_mb: 128,
            ..Default::default()
        };
        assert_eq!(max_used_mb(&a), "9");
        a.max_memory_bytes = Some(1024 * 1024);
        assert_eq!(max_used_mb(&a), "1");
        a.max_memory_bytes = None;
        assert_eq!(max_used_mb(&a), "-");

        assert_eq!(error_summary(&a), "-");
        a.error_type = Some("ValueError".into());
        assert_eq!(error_summary(&a), "ValueError");
        a.error_message = Some("boom".into());
        assert_eq!(error_summary(&a), "ValueError: boom");
        a.error_message = Some("first line\nsecond".into());
        assert_eq!(error_summary(&a), "ValueError: first line…");
        a.error_message = Some("x".repeat(100));
        let s = error_summary(&a);
        assert_eq!(s.chars().count(), ERROR_WIDTH);
        assert!(s.ends_with('…'));
    }
}
