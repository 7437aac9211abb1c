//! Function code packages: zips checked for path traversal, escaping symlinks and zip bombs, and
//! unpacked once per content address into `code/<sha256>/`, the directory a sandbox mounts
//! read-only at `/var/task`.

use lambent_core::limits::{MAX_CODE_FILES, MAX_CODE_UNZIPPED};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Why a code package was refused.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("code package is not a valid zip file: {0}")]
    InvalidZip(String),
    #[error("code package entry '{0}' has an absolute path: paths must be relative")]
    AbsolutePath(String),
    #[error("code package entry '{0}' escapes the package with '..'")]
    PathTraversal(String),
    #[error("code package symlink '{0}' points outside the package ('{1}')")]
    SymlinkOutside(String, String),
    #[error("code package unpacks to more than {} MB: make it smaller", MAX_CODE_UNZIPPED / (1024 * 1024))]
    TooLarge,
    #[error("code package has more than {MAX_CODE_FILES} entries")]
    TooManyFiles,
    #[error("code package i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Its `requirements.txt` or `package.json` dependencies could not be installed
    /// (`requirements.rs`, `node_packages.rs`).
    #[error("{0}")]
    Requirements(String),
}

/// Unpacked code packages under one directory, one sub-directory per blob address.
#[derive(Debug, Clone)]
pub struct CodeDirs {
    dir: PathBuf,
    /// The interpreter whose `pip` installs a package's `requirements.txt` when it is
    /// unpacked; `None`: it is left as it is.
    python: Option<PathBuf>,
    /// The `npm` that installs a package's missing `package.json` dependencies when it is
    /// unpacked; `None`: they are left missing.
    npm: Option<PathBuf>,
}

impl CodeDirs {
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(CodeDirs {
            dir,
            python: None,
            npm: None,
        })
    }

    /// Installs each package's `requirements.txt` into it when unpacking it, with `python`'s
    /// `pip` (see `requirements.rs`).
    pub fn installing_requirements_with(mut self, python: impl Into<PathBuf>) -> Self {
        self.python = Some(python.into());
        self
    }

    /// Installs each package's missing `package.json` dependencies into it when unpacking it,
    /// with `npm` (see `node_packages.rs`).
    pub fn installing_node_packages_with(mut self, npm: impl Into<PathBuf>) -> Self {
        self.npm = Some(npm.into());
        self
    }

    /// The directory holding the unpacked package with this address.
    pub fn path(&self, sha: &str) -> PathBuf {
        self.dir.join(sha)
    }

    /// Unpacks `zip` (whose address is `sha`) unless it already is; returns its directory.
    /// Unpacks into a temporary directory first, so a half-unpacked package is never used.
    pub fn ensure(&self, sha: &str, zip: &[u8]) -> Result<PathBuf, PackageError> {
        let dest = self.path(sha);
        if dest.is_dir() {
            return Ok(dest);
        }
        let tmp = self
            .dir
            .join(format!(".{sha}.{}", uuid::Uuid::new_v4().simple()));
        let result = unpack(zip, &tmp)
            .and_then(|()| match &self.python {
                Some(python) => crate::requirements::install(python, &tmp),
                None => Ok(()),
            })
            .and_then(|()| match &self.npm {
                Some(npm) => crate::node_packages::install(npm, &tmp),
                None => Ok(()),
            })
            .and_then(|()| Ok(std::fs::rename(&tmp, &dest)?));
        if result.is_err() || tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        match result {
            Ok(()) => Ok(dest),
            // Another request unpacked the same package first.
            Err(_) if dest.is_dir() => Ok(dest),
            Err(e) => Err(e),
        }
    }
}

/// Checks every entry of `zip` without writing anything: the fast refusal at upload time.
pub fn check(zip: &[u8]) -> Result<(), PackageError> {
    let mut archive = open(zip)?;
    if archive.len() > MAX_CODE_FILES {
        return Err(PackageError::TooManyFiles);
    }
    for i in 0..archive.len() {
        let entry = archive
            .by_index(i)
            .map_err(|e| PackageError::InvalidZip(e.to_string()))?;
        let name = entry.name().to_string();
        let rel = relative_path(&name)?;
        if entry.is_symlink() {
            let mut target = String::new();
            entry
                .take(4096)
                .read_to_string(&mut target)
                .map_err(|e| PackageError::InvalidZip(e.to_string()))?;
            check_symlink(&name, &rel, &target)?;
        }
    }
    Ok(())
}

/// Unpacks `zip` into `dest` (created), enforcing every rule of [`check`] and counting the bytes
/// actually inflated, so a zip bomb is stopped at the cap whatever its headers claim.
pub fn unpack(zip: &[u8], dest: &Path) -> Result<(), PackageError> {
    check(zip)?;
    let mut archive = open(zip)?;
    std::fs::create_dir_all(dest)?;
    set_mode(dest, 0o755)?;
    let mut budget = MAX_CODE_UNZIPPED;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| PackageError::InvalidZip(e.to_string()))?;
        let rel = relative_path(entry.name())?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let out = dest.join(&rel);
        if entry.is_dir() {
            create_dirs(dest, &rel)?;
            continue;
        }
        if let Some(parent) = rel.parent() {
            create_dirs(dest, parent)?;
        }
        if entry.is_symlink() {
            let mut target = String::new();
            (&mut entry).take(4096).read_to_string(&mut target)?;
            let _ = std::fs::remove_file(&out);
            std::os::unix::fs::symlink(target, &out)?;
            continue;
        }
        // A file is never written through a symlink an earlier entry planted (`e -> x`, then
        // `./e`): it would land wherever the link points.
        if std::fs::symlink_metadata(&out).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(PackageError::PathTraversal(entry.name().to_string()));
        }
        let mode = entry
            .unix_mode()
            .map_or(0o644, |m| if m & 0o111 != 0 { 0o755 } else { 0o644 });
        let mut file = std::fs::File::create(&out)?;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = entry
                .read(&mut buf)
                .map_err(|e| PackageError::InvalidZip(e.to_string()))?;
            if n == 0 {
                break;
            }
            budget = budget.checked_sub(n as u64).ok_or(PackageError::TooLarge)?;
            file.write_all(&buf[..n])?;
        }
        drop(file);
        set_mode(&out, mode)?;
    }
    Ok(())
}

fn open(zip: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>, PackageError> {
    zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| PackageError::InvalidZip(e.to_string()))
}

/// The entry's path relative to the package root, refusing absolute paths and `..`.
fn relative_path(name: &str) -> Result<PathBuf, PackageError> {
    if name.starts_with('/') || name.starts_with('\\') || name.contains(":\\") {
        return Err(PackageError::AbsolutePath(name.to_string()));
    }
    let mut rel = PathBuf::new();
    for c in Path::new(&name.replace('\\', "/")).components() {
        match c {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(PackageError::PathTraversal(name.to_string())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(PackageError::AbsolutePath(name.to_string()))
            }
        }
    }
    Ok(rel)
}

/// A symlink may point only at a path inside the package, relative to its own directory:
/// up (`..`) no further than the package's root, then down. A `..` after a name is refused:
/// the name may be another symlink (`d/up -> ..`), and `d/up/..` then leaves the package
/// although it looks one level deep.
fn check_symlink(name: &str, rel: &Path, target: &str) -> Result<(), PackageError> {
    let outside = || PackageError::SymlinkOutside(name.to_string(), target.to_string());
    if target.starts_with('/') || target.is_empty() {
        return Err(outside());
    }
    // The symlink's own directory is a real one: `create_dirs` refuses symlinks on the way.
    let mut up_allowed: usize = rel.parent().map_or(0, |p| p.components().count());
    let mut descended = false;
    for c in Path::new(target).components() {
        match c {
            Component::Normal(_) => descended = true,
            Component::CurDir => {}
            Component::ParentDir if !descended && up_allowed > 0 => up_allowed -= 1,
            _ => return Err(outside()),
        }
    }
    Ok(())
}

/// Creates `rel` under `root` one component at a time, refusing to follow a symlink that an
/// earlier entry planted (a zip can hold `a -> ../..` followed by `a/x`).
fn create_dirs(root: &Path, rel: &Path) -> Result<(), PackageError> {
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(PackageError::PathTraversal(rel.display().to_string()))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(PackageError::InvalidZip(format!(
                    "'{}' is both a file and a directory",
                    rel.display()
                )))
            }
            Err(_) => {
                std::fs::create_dir(&cur)?;
                set_mode(&cur, 0o755)?;
            }
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            w.start_file(*name, SimpleFileOptions::default().unix_permissions(0o755))
                .unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn zip_with_symlink(name: &str, target: &str) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink(name, target, SimpleFileOptions::default())
            .unwrap();
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn unpacks_files_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_of(&[("app.py", b"x = 1"), ("lib/util.py", b"y = 2")]);
        unpack(&zip, &dir.path().join("out")).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("out/lib/util.py")).unwrap(),
            b"y = 2"
        );
    }

    #[test]
    fn refuses_traversal_and_absolute_paths() {
        assert!(matches!(
            check(&zip_of(&[("../evil", b"x")])),
            Err(PackageError::PathTraversal(_))
        ));
        assert!(matches!(
            check(&zip_of(&[("a/../../evil", b"x")])),
            Err(PackageError::PathTraversal(_))
        ));
        assert!(matches!(
            check(&zip_of(&[("/etc/passwd", b"x")])),
            Err(PackageError::AbsolutePath(_))
        ));
    }

    /// Found while writing the `zip_unpack` fuzz target's invariant (60 s of fuzzing did not
    /// reach it): `d/up -> ..` is one level up from `d` (inside), and `e -> d/up/..` looked
    /// one level deep, but resolved through the first link to the folder around the package.
    #[test]
    fn a_symlink_through_a_symlink_cannot_leave_the_package() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_directory("d/", SimpleFileOptions::default()).unwrap();
        w.add_symlink("d/up", "..", SimpleFileOptions::default())
            .unwrap();
        w.add_symlink("e", "d/up/..", SimpleFileOptions::default())
            .unwrap();
        let zip = w.finish().unwrap().into_inner();
        assert!(matches!(
            check(&zip),
            Err(PackageError::SymlinkOutside(name, _)) if name == "e"
        ));
        let dir = tempfile::tempdir().unwrap();
        assert!(unpack(&zip, &dir.path().join("pkg")).is_err());
        // Still allowed: up first, then down.
        assert!(check(&zip_with_symlink("a/b/link", "../../lib/util.py")).is_ok());
    }

    /// A file entry named like an earlier symlink (`./e` after `e -> x`) would be written
    /// wherever the link points: refused.
    #[test]
    fn a_file_is_never_written_through_a_planted_symlink() {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        w.add_symlink("e", "x", SimpleFileOptions::default())
            .unwrap();
        w.start_file("./e", SimpleFileOptions::default()).unwrap();
        w.write_all(b"payload").unwrap();
        let zip = w.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("pkg");
        assert!(matches!(
            unpack(&zip, &dest),
            Err(PackageError::PathTraversal(_))
        ));
        assert!(!dest.join("x").exists());
    }

    #[test]
    fn refuses_symlinks_out_of_the_package() {
        assert!(check(&zip_with_symlink("ok", "lib/util.py")).is_ok());
        for target in ["/etc/shadow", "../x", "a/../../x"] {
            assert!(
                matches!(
                    check(&zip_with_symlink("link", target)),
                    Err(PackageError::SymlinkOutside(..))
                ),
                "{target} accepted"
            );
        }
    }

    #[test]
    fn stops_a_zip_bomb_at_the_cap() {
        // 300 MB of zeros deflates to a few hundred KB.
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        w.start_file("zeros", opts).unwrap();
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..300 {
            w.write_all(&chunk).unwrap();
        }
        let zip = w.finish().unwrap().into_inner();
        assert!(zip.len() < 2 << 20);
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            unpack(&zip, &dir.path().join("out")),
            Err(PackageError::TooLarge)
        ));
    }

    #[test]
    fn garbage_is_an_invalid_zip() {
        assert!(matches!(
            check(b"not a zip"),
            Err(PackageError::InvalidZip(_))
        ));
    }

    #[test]
    fn code_dirs_unpack_once() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = CodeDirs::open(dir.path()).unwrap();
        let zip = zip_of(&[("a.txt", b"a")]);
        let p = dirs.ensure("abc", &zip).unwrap();
        assert_eq!(p, dirs.path("abc"));
        assert_eq!(dirs.ensure("abc", &zip).unwrap(), p);
    }
}
