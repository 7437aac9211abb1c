//! Packing a function's folder into a zip, in memory.
//!
//! The zip is deterministic (sorted entries, a fixed timestamp, no extra fields), so the same
//! code always has the same SHA-256 and a redeploy of unchanged code skips the upload. Unix
//! permissions are kept (`bootstrap` stays executable) and symlinks stay symlinks (the server
//! refuses any that point outside the code). Build and VCS clutter is left out.

use crate::manifest::{Source, MANIFEST_FILE};
use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// File and folder names never packed, wherever they are.
const SKIP_NAMES: &[&str] = &[".git", "__pycache__", ".DS_Store"];

/// Whether a path inside the code folder (relative, `/`-separated components) is left out.
pub fn skipped(rel: &Path) -> bool {
    let parts: Vec<&str> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .collect();
    if parts.iter().any(|p| SKIP_NAMES.contains(p)) {
        return true;
    }
    if parts.windows(2).any(|w| w == ["node_modules", ".cache"]) {
        return true;
    }
    // The manifest is configuration, not code.
    parts == [MANIFEST_FILE]
}

/// The code zip for a deployment: a folder packed, or a zip file read as is.
pub fn code(source: &Source) -> Result<Vec<u8>> {
    match source {
        Source::Dir(dir) => pack_dir(dir),
        Source::Patterns(dir, patterns) => pack_filtered(dir, |rel| included(patterns, rel)),
        Source::Zip(file) => {
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
        }
    }
}

/// Packs `dir` into a zip: files with their permissions, symlinks as symlinks.
pub fn pack_dir(dir: &Path) -> Result<Vec<u8>> {
    pack_filtered(dir, |_| true)
}

/// Whether the Framework's `package.patterns` keep the file at `rel` (`/`-separated): every
/// file is in at first, then each pattern that matches it (or one of its folders) puts it in,
/// or out when the pattern starts with `!`; the last match decides. `.serverless/` is left out.
pub fn included(patterns: &[String], rel: &str) -> bool {
    let mut keep = !rel.starts_with(".serverless/");
    for p in patterns {
        let (exclude, glob) = match p.strip_prefix('!') {
            Some(g) => (true, g),
            None => (false, p.as_str()),
        };
        let glob = glob.trim_start_matches("./");
        let mut prefixes = rel.match_indices('/').map(|(i, _)| &rel[..i]);
        if glob_match(glob, rel) || prefixes.any(|dir| glob_match(glob, dir)) {
            keep = !exclude;
        }
    }
    keep
}

/// Glob matching over `/`-separated paths: `*` and `?` within one segment, `**` across any
/// number of segments.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn segments(p: &[&str], s: &[&str]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|i| segments(rest, &s[i..])),
            Some((first, rest)) => s.split_first().is_some_and(|(seg, srest)| {
                segment(first.as_bytes(), seg.as_bytes()) && segments(rest, srest)
            }),
        }
    }
    fn segment(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| segment(rest, &s[i..])),
            Some((b'?', rest)) => !s.is_empty() && segment(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && segment(rest, &s[1..]),
        }
    }
    let p: Vec<&str> = pattern.split('/').filter(|x| !x.is_empty()).collect();
    let s: Vec<&str> = path.split('/').filter(|x| !x.is_empty()).collect();
    segments(&p, &s)
}

/// Packs the files of `dir` that `keep` keeps (given their `/`-separated relative path).
fn pack_filtered(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<u8>> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default());
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            e.path()
                .strip_prefix(dir)
                .map(|rel| rel.as_os_str().is_empty() || !skipped(rel))
                .unwrap_or(true)
        });
    let mut files = 0usize;
    for entry in walk {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        if rel.as_os_str().is_empty() {
            continue;
        }
        let name = zip_name(rel)?;
        let ft = entry.file_type();
        if ft.is_dir() || !keep(&name) {
            continue;
        }
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot read {}", entry.path().display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if ft.is_symlink() {
            let target = std::fs::read_link(entry.path())
                .with_context(|| format!("cannot read link {}", entry.path().display()))?;
            let target = target
                .to_str()
                .with_context(|| format!("{}: link target is not UTF-8", entry.path().display()))?;
            zip.add_symlink(name, target, base.unix_permissions(0o777))?;
        } else if ft.is_file() {
            let data = std::fs::read(entry.path())
                .with_context(|| format!("cannot read {}", entry.path().display()))?;
            zip.start_file(name, base.unix_permissions(mode).large_file(false))?;
            zip.write_all(&data)?;
        } else {
            // Sockets, fifos and devices are not code.
            continue;
        }
        files += 1;
    }
    if files == 0 {
        bail!("{} holds no files to deploy", dir.display());
    }
    Ok(zip.finish()?.into_inner())
}

fn zip_name(rel: &Path) -> Result<String> {
    let mut parts = Vec::new();
    for c in rel.components() {
        let s = c
            .as_os_str()
            .to_str()
            .with_context(|| format!("{}: file names must be UTF-8", rel.display()))?;
        parts.push(s);
    }
    Ok(parts.join("/"))
}

/// The lower-case hex SHA-256 the API names code by.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn serverless_patterns_exclude_then_include_again() {
        use super::{glob_match, included};
        assert!(glob_match("**/*.md", "docs/a/b.md"));
        assert!(glob_match("*.md", "README.md"));
        assert!(!glob_match("*.md", "docs/b.md"));
        assert!(glob_match("node_modules/**", "node_modules/x/index.js"));
        assert!(glob_match("src/?.py", "src/a.py"));
        let p: Vec<String> = [
            "!node_modules/**",
            "node_modules/keep/**",
            "!tests",
            "!*.md",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert!(included(&p, "handler.py"));
        assert!(!included(&p, "node_modules/drop/index.js"));
        assert!(included(&p, "node_modules/keep/index.js"));
        assert!(!included(&p, "tests/test_a.py"));
        assert!(!included(&p, "README.md"));
        assert!(included(&p, "docs/guide.md"));
        assert!(!included(&[], ".serverless/state.json"));
    }

    use super::*;
    use std::fs;
    use std::io::Read;

    fn entries(zip: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut a = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        (0..a.len())
            .map(|i| {
                let mut f = a.by_index(i).unwrap();
                let mut data = Vec::new();
                f.read_to_end(&mut data).unwrap();
                (f.name().to_string(), f.unix_mode().unwrap(), data)
            })
            .collect()
    }

    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::create_dir_all(d.join("lib/sub")).unwrap();
        fs::write(d.join("bootstrap"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(d.join("bootstrap"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(d.join("app.py"), "x = 1\n").unwrap();
        fs::set_permissions(d.join("app.py"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(d.join("lib/sub/b.txt"), "b").unwrap();
        fs::write(d.join("lib/a.txt"), "a").unwrap();
        fs::write(d.join(MANIFEST_FILE), "runtime: provided\n").unwrap();
        std::os::unix::fs::symlink("lib/a.txt", d.join("link")).unwrap();
        for junk in [
            ".git/HEAD",
            "__pycache__/app.cpython-312.pyc",
            "lib/__pycache__/x.pyc",
            "node_modules/.cache/x",
        ] {
            fs::create_dir_all(d.join(junk).parent().unwrap()).unwrap();
            fs::write(d.join(junk), "junk").unwrap();
        }
        fs::write(d.join("node_modules/kept.js"), "k").unwrap();
        tmp
    }

    #[test]
    fn packs_sorted_with_permissions_and_skips_clutter() {
        let tmp = fixture();
        let zip = pack_dir(tmp.path()).unwrap();
        let got = entries(&zip);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "app.py",
                "bootstrap",
                "lib/a.txt",
                "lib/sub/b.txt",
                "link",
                "node_modules/kept.js"
            ]
        );
        let mode = |n: &str| got.iter().find(|e| e.0 == n).unwrap().1;
        assert_eq!(mode("bootstrap") & 0o777, 0o755);
        assert_eq!(mode("app.py") & 0o777, 0o644);
        // The symlink is a symlink (S_IFLNK) whose content is its target.
        assert_eq!(mode("link") & 0o170000, 0o120000);
        assert_eq!(got.iter().find(|e| e.0 == "link").unwrap().2, b"lib/a.txt");
        assert_eq!(got.iter().find(|e| e.0 == "lib/sub/b.txt").unwrap().2, b"b");
    }

    #[test]
    fn packing_is_deterministic() {
        let tmp = fixture();
        let a = pack_dir(tmp.path()).unwrap();
        // Touch a file: same content, new mtime, same zip.
        let p = tmp.path().join("app.py");
        fs::write(&p, "x = 1\n").unwrap();
        let b = pack_dir(tmp.path()).unwrap();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        fs::write(&p, "x = 2\n").unwrap();
        let c = pack_dir(tmp.path()).unwrap();
        assert_ne!(sha256_hex(&a), sha256_hex(&c));
    }

    #[test]
    fn skip_rules() {
        for p in [
            ".git",
            "a/.git/config",
            "__pycache__",
            "pkg/__pycache__/m.pyc",
            "node_modules/.cache",
            "web/node_modules/.cache/x",
            MANIFEST_FILE,
        ] {
            assert!(skipped(Path::new(p)), "{p}");
        }
        for p in [
            "app.py",
            "node_modules/x/index.js",
            "sub/lambent.yaml",
            ".cache",
        ] {
            assert!(!skipped(Path::new(p)), "{p}");
        }
    }

    #[test]
    fn empty_folders_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join(".git")).unwrap();
        fs::write(tmp.path().join(".git/HEAD"), "x").unwrap();
        let e = pack_dir(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("no files"), "{e}");
    }
}
