//! `serverless.yml` and SAM templates (with CloudFormation intrinsics): reading any text
//! into a plan never panics, nor does printing the plan.
//!
//! Input: the first byte picks the format (even: serverless, odd: SAM), the rest is the file.
#![no_main]

use lambent_cli::app::{self, Format, Options};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (format, name) = match pick % 2 {
        0 => (Format::Serverless, "serverless.yml"),
        _ => (Format::Sam, "template.yaml"),
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    std::fs::write(
        dir.path().join("handler.py"),
        "def handler(e, c):\n    return e\n",
    )
    .expect("a handler");
    let options = Options {
        stage: Some("dev".into()),
        ..Options::default()
    };
    if let Ok(plan) = app::plan_text(format, dir.path(), name, text, &options) {
        let _ = plan.describe();
    }
});
