//! `lambent usage [--since 24h] [--by function|namespace|day] [--function F]`: invocations,
//! errors, latency, GB-seconds and cost per group and in total, then memory right-sizing advice,
//! then the state transitions of workflow executions started in the window and their cost, and
//! the namespace's monthly budget. `--by namespace` is the operator's: one bill per namespace
//! (invocations, GB-s, cost, budget, functions, storage against the quota).

use super::Ctx;
use crate::client::{Bill, BudgetView, TransitionRow, TransitionUsage, Usage, UsageFilter};
use crate::duration;
use crate::output::{self, ms_from_us, now_ms, significant, significant_trimmed};
use anyhow::Result;
use clap::Args;
use lambent_core::metering::{Advice, Grouping, UsageRow, HEADROOM, MEMORY_STEP_MB};
use std::process::ExitCode;
use std::time::Duration;

/// Significant digits of costs and GB-seconds (enough to tell a million invocations apart).
const DIGITS: u32 = 6;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// The last while to report on: 30m, 24h, 7d, 1w, …
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = duration::parse)]
    pub since: Duration,
    /// One row per function, per namespace, or per UTC day.
    #[arg(long, default_value = "function", value_name = "GROUPING", value_parser = groupings())]
    pub by: Grouping,
    /// Only this function's activations.
    #[arg(long, value_name = "NAME")]
    pub function: Option<String>,
}

fn groupings() -> impl clap::builder::TypedValueParser<Value = Grouping> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Grouping::ALL.map(Grouping::as_str))
        .map(|s| s.parse::<Grouping>().expect("a possible value"))
}

pub fn run(ctx: &Ctx, args: UsageArgs) -> Result<ExitCode> {
    let since_ms = duration::ago_ms(args.since, now_ms());
    if args.by == Grouping::Namespace {
        let bills = ctx.operator_client()?.bills(Some(since_ms))?;
        match ctx.json() {
            true => output::print_raw_json(&bills.raw),
            false => print_bills(&bills.rows),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let only_function = args.function.is_some();
    let filter = UsageFilter {
        since_ms: Some(since_ms),
        by: Some(args.by),
        function: args.function,
    };
    let client = ctx.client()?;
    let usage = client.usage(&filter)?;
    // Workflows are not functions: a report on one function leaves them out.
    let transitions = match only_function {
        true => None,
        false => Some(client.transition_usage(Some(since_ms))?),
    };
    if ctx.json() {
        match transitions {
            None => output::print_raw_json(&usage.raw),
            Some(t) => {
                let mut all: serde_json::Value = serde_json::from_slice(&usage.raw)?;
                all["workflows"] = serde_json::from_slice(&t.raw)?;
                output::print_json(&all);
            }
        }
    } else {
        print_usage(&usage);
        if let Some(t) = transitions {
            print_transitions(&t);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_usage(u: &Usage) {
    let mut t = output::table(&[
        "KEY",
        "INVOCATIONS",
        "ERRORS",
        "THROTTLES",
        "COLD",
        "P50(ms)",
        "P99(ms)",
        "GB-S",
        "COST($)",
    ]);
    for row in &u.rows {
        t.add_row(usage_cells(&row.key, row));
    }
    t.add_row(usage_cells("TOTAL", &u.total));
    output::print_table(&t);

    if !u.rightsizing.is_empty() {
        println!();
        println!("right-sizing");
        let mut t = output::table(&[
            "FUNCTION",
            "MEMORY",
            "MAX-USED",
            "RECOMMENDED",
            "COST($)",
            "RECOMMENDED-COST($)",
            "SAVINGS($)",
        ]);
        for a in &u.rightsizing {
            t.add_row(advice_cells(a));
        }
        output::print_table(&t);
        println!(
            "recommended: max used × {HEADROOM} rounded up to {MEMORY_STEP_MB} MB (never above the \
             current memory); its cost assumes the same durations, though less memory also means \
             less CPU"
        );
    }
    println!(
        "prices: ${} per million requests, ${} per GB-second",
        significant_trimmed(u.prices.per_request * 1e6, DIGITS),
        significant_trimmed(u.prices.per_gb_second, DIGITS)
    );
    if let Some(b) = &u.budget {
        print_budget(b);
    }
}

fn print_bills(bills: &[Bill]) {
    let limit = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let mut t = output::table(&[
        "NAMESPACE",
        "INVOCATIONS",
        "GB-S",
        "COST($)",
        "MONTH($)",
        "BUDGET($)",
        "FUNCTIONS",
        "STORAGE(B)",
        "QUOTA(B)",
    ]);
    for b in bills {
        let budget = b.budget.as_ref();
        t.add_row(vec![
            b.namespace.clone(),
            b.invocations.to_string(),
            significant(b.gb_seconds, DIGITS),
            significant(b.cost, DIGITS),
            budget.map_or("-".into(), |b| significant(b.spent_usd, DIGITS)),
            budget.map_or("-".into(), budget_cell),
            format!("{}/{}", b.functions, limit(b.max_functions)),
            b.storage_bytes.to_string(),
            limit(b.storage_quota_bytes),
        ]);
    }
    output::print_table(&t);
    for b in bills {
        if let Some(w) = b.budget.as_ref().and_then(|b| b.warning.as_ref()) {
            println!("warning: {w}");
        }
    }
}

/// `25.00 hard`, `10.00 soft`.
fn budget_cell(b: &BudgetView) -> String {
    let kind = if b.hard { "hard" } else { "soft" };
    format!("{:.2} {kind}", b.monthly_usd)
}

fn print_budget(b: &BudgetView) {
    println!(
        "budget: ${} of ${:.2} ({}) spent this month{}",
        significant(b.spent_usd, DIGITS),
        b.monthly_usd,
        if b.hard { "hard" } else { "soft" },
        if b.exhausted {
            ": exhausted, invocations are refused"
        } else {
            ""
        }
    );
    if let Some(w) = &b.warning {
        println!("warning: {w}");
    }
}

fn print_transitions(u: &TransitionUsage) {
    if u.rows.is_empty() {
        return;
    }
    println!();
    println!("workflows");
    let mut t = output::table(&["WORKFLOW", "EXECUTIONS", "TRANSITIONS", "COST($)"]);
    for row in &u.rows {
        t.add_row(transition_cells(&row.workflow, row));
    }
    t.add_row(transition_cells("TOTAL", &u.total));
    output::print_table(&t);
    println!(
        "price: ${} per 1,000 state transitions (Standard executions; Express ones are not kept)",
        significant_trimmed(u.per_transition * 1000.0, DIGITS)
    );
}

fn transition_cells(key: &str, r: &TransitionRow) -> Vec<String> {
    vec![
        key.to_string(),
        r.executions.to_string(),
        r.transitions.to_string(),
        significant(r.cost, DIGITS),
    ]
}

fn usage_cells(key: &str, r: &UsageRow) -> Vec<String> {
    vec![
        key.to_string(),
        r.invocations.to_string(),
        r.errors.to_string(),
        r.throttles.to_string(),
        r.cold_starts.to_string(),
        ms(r.p50_ms),
        ms(r.p99_ms),
        significant(r.gb_seconds, DIGITS),
        significant(r.cost, DIGITS),
    ]
}

fn advice_cells(a: &Advice) -> Vec<String> {
    vec![
        format!("{}/{}", a.namespace, a.function),
        format!("{} MB", a.memory_mb),
        a.max_used_mb
            .map_or_else(|| "-".into(), |mb| format!("{mb} MB")),
        format!("{} MB", a.recommended_mb),
        significant(a.cost, DIGITS),
        significant(a.recommended_cost, DIGITS),
        significant(a.savings, DIGITS),
    ]
}

/// Milliseconds with 3 decimals (the API's percentiles are µs precise).
fn ms(v: f64) -> String {
    ms_from_us((v * 1000.0).round().max(0.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_well() {
        let row = UsageRow {
            key: "default/hello".into(),
            invocations: 4,
            errors: 1,
            throttles: 2,
            cold_starts: 1,
            p50_ms: 0.41,
            p99_ms: 51.2,
            billed_ms: 87,
            gb_seconds: 0.0435,
            cost: 1.5e-6,
        };
        assert_eq!(
            usage_cells("TOTAL", &row),
            [
                "TOTAL",
                "4",
                "1",
                "2",
                "1",
                "0.410",
                "51.200",
                "0.0435000",
                "0.00000150000"
            ]
        );
        let a = Advice {
            namespace: "default".into(),
            function: "hello".into(),
            memory_mb: 512,
            max_used_mb: None,
            recommended_mb: 512,
            cost: 0.408_333_75,
            recommended_cost: 0.408_333_75,
            savings: 0.0,
        };
        assert_eq!(
            advice_cells(&a),
            [
                "default/hello",
                "512 MB",
                "-",
                "512 MB",
                "0.408334",
                "0.408334",
                "0"
            ]
        );
    }
}
