//! Unpacking an uploaded code zip: never panics, never writes outside its directory (the
//! folder around it stays empty but for it), every symlink it leaves resolves inside it, and
//! what the upload-time check refuses is never unpacked.
#![no_main]

use lambent_store::package;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let checked = package::check(data);
    let tmp = tempfile::tempdir().expect("a temp dir");
    let around = tmp.path().join("around");
    std::fs::create_dir(&around).expect("a folder around the package");
    let dest = around.join("pkg");
    let unpacked = package::unpack(data, &dest);
    if checked.is_err() {
        assert!(unpacked.is_err(), "check refused what unpack accepted");
    }
    let outside: Vec<_> = std::fs::read_dir(&around)
        .expect("the folder around")
        .map(|e| e.expect("an entry").file_name())
        .filter(|n| n != "pkg")
        .collect();
    assert!(outside.is_empty(), "wrote outside the package: {outside:?}");
    let outside: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("the temp dir")
        .map(|e| e.expect("an entry").file_name())
        .filter(|n| n != "around")
        .collect();
    assert!(outside.is_empty(), "wrote outside the package: {outside:?}");
    if dest.is_dir() {
        check_symlinks(&dest);
    }
});

/// Every symlink under `dest` that resolves resolves inside it.
fn check_symlinks(dest: &Path) {
    let root = dest.canonicalize().expect("the package dir resolves");
    for entry in walkdir::WalkDir::new(dest).follow_links(false) {
        let entry = entry.expect("a walk entry");
        if !entry.path_is_symlink() {
            continue;
        }
        if let Ok(target) = entry.path().canonicalize() {
            assert!(
                target.starts_with(&root),
                "{} resolves outside the package: {}",
                entry.path().display(),
                target.display()
            );
        }
    }
}
