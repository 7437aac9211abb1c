//! `lambent logs NAME [--tail N] [-f]`: the log texts of a function's last activations, oldest
//! first; `-f` keeps polling for new ones until Ctrl-C.

use super::Ctx;
use crate::client::LogEntry;
use crate::output;
use anyhow::Result;
use clap::Args;
use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

/// How often `-f` asks for new logs.
const POLL: Duration = Duration::from_millis(300);
/// How many activations one `-f` poll may bring.
const FOLLOW_BATCH: u32 = 100;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The function's name.
    pub name: String,
    /// How many of the last activations to show.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub tail: u32,
    /// Keep printing new logs as they come (until Ctrl-C). With `-o json`, one JSON object per
    /// line and activation.
    #[arg(short, long)]
    pub follow: bool,
}

pub fn run(ctx: &Ctx, args: LogsArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    let first = client.logs(&args.name, args.tail, None)?;
    if !args.follow {
        if ctx.json() {
            output::print_raw_json(&first.raw);
        } else {
            for e in &first.logs {
                print_entry(e, false)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }

    let mut follower = Follower::default();
    for e in &first.logs {
        if follower.admit(e) {
            print_entry(e, ctx.json())?;
        }
    }
    loop {
        std::thread::sleep(POLL);
        let page = client.logs(&args.name, FOLLOW_BATCH, follower.after_ms())?;
        for e in &page.logs {
            if follower.admit(e) {
                print_entry(e, ctx.json())?;
            }
        }
    }
}

/// What `-f` has seen: the newest start time, and the activations that started in the last
/// millisecond before it or later. Polls ask from one millisecond before the newest start, so an
/// activation that started in the same millisecond as the last one printed is not missed; the
/// ones already printed come back and are dropped here.
#[derive(Debug, Default)]
struct Follower {
    last_start_ms: Option<u64>,
    seen: HashMap<String, u64>,
}

impl Follower {
    /// Whether the entry is new; remembers it.
    fn admit(&mut self, e: &LogEntry) -> bool {
        if self.seen.contains_key(&e.activation_id) {
            return false;
        }
        self.seen.insert(e.activation_id.clone(), e.start_ms);
        if self.last_start_ms.is_none_or(|t| e.start_ms > t) {
            self.last_start_ms = Some(e.start_ms);
            // Forget what no poll can return any more.
            let horizon = e.start_ms.saturating_sub(1);
            self.seen.retain(|_, start| *start >= horizon);
        }
        true
    }

    fn after_ms(&self) -> Option<u64> {
        self.last_start_ms.map(|t| t.saturating_sub(1))
    }
}

fn print_entry(e: &LogEntry, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(e)?)?;
    } else {
        out.write_all(e.text.as_bytes())?;
        if !e.text.ends_with('\n') {
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, start_ms: u64) -> LogEntry {
        LogEntry {
            activation_id: id.into(),
            start_ms,
            status: "success".into(),
            text: String::new(),
        }
    }

    #[test]
    fn follow_deduplicates_and_advances() {
        let mut f = Follower::default();
        assert_eq!(f.after_ms(), None);
        assert!(f.admit(&entry("a", 10)));
        assert!(f.admit(&entry("b", 20)));
        assert_eq!(f.after_ms(), Some(19));
        assert!(!f.seen.contains_key("a"), "old ids are forgotten");
        // The same activation again (polls overlap by a millisecond): not printed.
        assert!(!f.admit(&entry("b", 20)));
        // Another one that started in the same millisecond is new.
        assert!(f.admit(&entry("c", 20)));
        assert_eq!(f.after_ms(), Some(19));
    }
}
