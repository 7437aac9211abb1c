//! `lambent.yaml` (functions, routes, mappings, sequences, workflows): resolving any text
//! never panics.
#![no_main]

use lambent_cli::{manifest, workflow_manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("lambent.yaml");
    std::fs::write(&file, text).expect("the manifest written");
    let _ = manifest::resolve(dir.path(), &manifest::Overrides::default());
    let _ = manifest::mappings(&file, None);
    let _ = manifest::sequences(&file);
    let _ = workflow_manifest::parse(text, dir.path());
});
