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

fn now_ms() -> u64 {
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
    fn tables_have_no_borders_or_trailing_blanks() {
        let mut t = table(&["NAME", "RUNTIME"]);
        t.add_row(vec!["hello", "python3.12"]);
        let lines: Vec<String> = t.lines().map(|l| l.trim_end().to_string()).collect();
        assert_eq!(lines, ["NAME   RUNTIME", "hello  python3.12"]);
    }
}
