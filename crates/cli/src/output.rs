//! How results are printed: plain tables for people, the API's JSON for scripts (`-o json`).

use comfy_table::{presets, ContentArrangement, Table};
use serde_json::Value;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `-o/--output` format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables and short lines for people.
    Table,
    /// The API's JSON, for scripts.
    Json,
}

/// Prints a JSON value made by the CLI.
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// Prints JSON byte for byte as the API sent it (scripts see exactly the API's output), ending
/// with a newline.
pub fn print_raw_json(body: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(body.trim_ascii_end());
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// A borderless table with a header, columns separated by spaces (like `kubectl get`).
pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().copied());
    for c in t.column_iter_mut() {
        c.set_padding((0, 2));
    }
    t
}

/// Prints a table, without the trailing blanks of its last column.
pub fn print_table(t: &Table) {
    for line in t.lines() {
        println!("{}", line.trim_end());
    }
}

/// A two-column key/value table.
pub fn print_kv(rows: &[(&str, String)]) {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    for (k, v) in rows {
        t.add_row(vec![format!("{k}:"), v.clone()]);
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 1));
    }
    print_table(&t);
}

/// The current Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `2026-04-20 12:00:01Z` (UTC) for a Unix time in milliseconds.
pub fn datetime(ms: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `2026-04-20 12:00:01.042Z` (UTC, with milliseconds) for a Unix time in milliseconds.
pub fn datetime_ms(ms: u64) -> String {
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// Milliseconds with 3 decimals from microseconds: `812` → `0.812`.
pub fn ms_from_us(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

/// A number in plain decimal notation with at least `digits` significant digits (more for
/// large integers parts): `0.40833375` → `0.408334`, `1.5e-6` → `0.00000150000`, `0` → `0`.
pub fn significant(x: f64, digits: u32) -> String {
    if x == 0.0 {
        return "0".into(); // also -0.0, the sum of nothing
    }
    if !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i64;
    let decimals = (i64::from(digits) - 1 - magnitude).clamp(0, 30) as usize;
    let text = format!("{x:.decimals$}");
    // Rounding may carry into a new digit (9.999995 → 10.00000): one decimal too many then.
    let sig: usize = text
        .trim_start_matches(['-', '0', '.'])
        .bytes()
        .filter(u8::is_ascii_digit)
        .count();
    if sig > digits as usize && decimals > 0 {
        format!("{x:.prec$}", prec = decimals - 1)
    } else {
        text
    }
}

/// [`significant`] without trailing zeros: `2e-7` → `0.0000002`, `0.2` → `0.2`.
pub fn significant_trimmed(x: f64, digits: u32) -> String {
    let s = significant(x, digits);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// How long ago a Unix time in milliseconds was: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn age(ms: u64) -> String {
    age_at(ms, now_ms())
}

fn age_at(ms: u64, now: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let s = now.saturating_sub(ms) / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_dates() {
        assert_eq!(age_at(1_000, 13_500), "12s ago");
        assert_eq!(age_at(0, 13_500), "-");
        assert_eq!(age_at(1, 3 * 3_600_000 + 1), "3h ago");
        assert_eq!(age_at(1, 2 * 86_400_000 + 1), "2d ago");
        assert_eq!(datetime(0), "1970-01-01 00:00:00Z");
        assert_eq!(datetime(1_700_000_000_123), "2023-11-14 22:13:20Z");
    }

    #[test]
    fn precise_numbers() {
        assert_eq!(datetime_ms(1_700_000_000_042), "2023-11-14 22:13:20.042Z");
        assert_eq!(ms_from_us(812), "0.812");
        assert_eq!(ms_from_us(51_200), "51.200");
        assert_eq!(ms_from_us(0), "0.000");
        assert_eq!(significant(0.0, 6), "0");
        assert_eq!(significant(-0.0, 6), "0");
        assert_eq!(significant(0.408_333_75, 6), "0.408334");
        assert_eq!(significant(1.5e-6, 6), "0.00000150000");
        assert_eq!(significant(2e-7, 6), "0.000000200000");
        assert_eq!(significant(12.345_678, 6), "12.3457");
        assert_eq!(significant(1_234_567.8, 6), "1234568");
        assert_eq!(significant(9.999_999_9, 6), "10.0000");
        assert_eq!(significant(-0.5, 6), "-0.500000");
        assert_eq!(significant_trimmed(0.20 / 1_000_000.0, 6), "0.0000002");
        assert_eq!(significant_trimmed(0.000_016_666_7, 6), "0.0000166667");
        assert_eq!(significant_trimmed(100.0, 6), "100");
        assert_eq!(significant_trimmed(0.0, 6), "0");
    }

    #[test]
    fn tables_have_no_borders_or_trailing_blanks() {
        let mut t = table(&["NAME", "RUNTIME"]);
        t.add_row(vec!["hello", "python3.12"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(lines, ["NAME   RUNTIME", "hello  python3.12"]);
    }
}
