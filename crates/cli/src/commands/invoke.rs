//! `lambent invoke NAME [--data JSON | --data @FILE | --data -] [--async]`: print what the
//! function returned; a function error prints its error JSON too and exits with 1. With
//! `--async`, print the activation id once the event is durably queued.

use super::Ctx;
use anyhow::{Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The function's name.
    pub name: String,
    /// The event: JSON text, `@FILE` to read a file, or `-` to read standard input.
    #[arg(short, long, default_value = "{}", value_name = "JSON|@FILE|-")]
    pub data: String,
    /// Queue the event and return at once with its activation id (retried on failure; see
    /// `lambent dlq`).
    #[arg(long = "async")]
    pub asynchronous: bool,
}

/// The event's bytes as the user gave them (the server checks that they are JSON).
pub fn read_data(data: &str) -> Result<Vec<u8>> {
    if data == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the event from standard input")?;
        Ok(buf)
    } else if let Some(file) = data.strip_prefix('@') {
        std::fs::read(file).with_context(|| format!("cannot read the event from {file}"))
    } else {
        Ok(data.as_bytes().to_vec())
    }
}

pub fn run(ctx: &Ctx, args: InvokeArgs) -> Result<ExitCode> {
    let payload = read_data(&args.data)?;
    let client = ctx.client()?;
    if args.asynchronous {
        let accepted = client.invoke_async(&args.name, payload)?;
        if ctx.json() {
            crate::output::print_raw_json(&accepted.raw);
        } else {
            println!("accepted {}", accepted.activation_id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let inv = client.invoke(&args.name, payload)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&inv.body)?;
    if !inv.body.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    match inv.function_error {
        Some(kind) => {
            eprintln!("error: function failed: {kind}");
            Ok(ExitCode::FAILURE)
        }
        None => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_from_text_and_files() {
        assert_eq!(read_data("{\"a\":1}").unwrap(), b"{\"a\":1}");
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("event.json");
        std::fs::write(&f, "[1]").unwrap();
        assert_eq!(read_data(&format!("@{}", f.display())).unwrap(), b"[1]");
        let e = read_data("@/nonexistent/event.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/event.json"), "{e}");
    }
}
