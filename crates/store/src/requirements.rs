//! Python dependencies a code package declares in a top-level `requirements.txt`, installed into
//! the package when it is unpacked (at upload, and wherever it is unpacked again) with the
//! machine's `pip` and the interpreter the sandboxes run, so the `.pyc` files it compiles are
//! theirs:
//!
//! - binary wheels only (`--only-binary=:all:`): no package's build code ever runs;
//! - as the sandbox user ([`BUILD_UID`]:[`BUILD_GID`], no groups), never root, into a private
//!   staging directory under the system's temporary directory, with an empty environment but
//!   `PATH` and the `pip` and proxy settings of the server's ([`PASSED`]: a mirror, a proxy);
//! - within [`TIMEOUT`];
//! - then the installed files join the package, owned by root (a name already in the package
//!   is refused: the package's own files are never replaced).
//!
//! A failure is a [`PackageError::Requirements`] with the end of `pip`'s output. Options in
//! `requirements.txt` work as `pip` documents them (`--index-url`, `--find-links`, …).
//!
//! The confinement ([`build`], [`Staging`]) is shared with Node.js's `package.json`
//! dependencies (`node_packages.rs`).

use crate::package::PackageError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The file that declares the dependencies, at the package's top level.
pub const FILE: &str = "requirements.txt";
/// Who `pip` runs as: the sandbox user (`lambent-sandbox`'s `SANDBOX_UID`).
pub const BUILD_UID: u32 = 993;
/// `pip`'s group: the sandbox group (`lambent-sandbox`'s `SANDBOX_GID`).
pub const BUILD_GID: u32 = 990;
/// The longest an installation may take.
pub const TIMEOUT: Duration = Duration::from_secs(600);
/// The server's environment variables `pip` gets.
pub const PASSED: &[&str] = &[
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_NO_INDEX",
    "PIP_TRUSTED_HOST",
    "PIP_CERT",
    "PIP_DEFAULT_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];
/// How much of `pip`'s output an error quotes (its end).
const QUOTED: u64 = 2000;

/// Installs `code/requirements.txt`, if there is one, into `code` with `python -m pip`.
pub fn install(python: &Path, code: &Path) -> Result<(), PackageError> {
    let requirements = code.join(FILE);
    if !requirements.is_file() {
        return Ok(());
    }
    let staging = Staging::new("pip")?;
    std::fs::copy(&requirements, staging.root.join(FILE))?;
    let target = staging.build_dir("target")?;
    let mut command = Command::new(python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--no-input",
            "--disable-pip-version-check",
        ])
        .args(["--no-cache-dir", "--only-binary=:all:", "--target"])
        .arg(&target)
        .arg("-r")
        .arg(staging.root.join(FILE));
    let tool = format!("{} -m pip", python.display());
    build(
        command,
        &staging,
        PASSED,
        &Build {
            file: FILE,
            tool: &tool,
        },
    )?;
    join(&target, code)
}

/// What a build installs, for its messages: the file that declares it and the tool.
pub(crate) struct Build<'a> {
    pub file: &'a str,
    pub tool: &'a str,
}

/// Runs `command` as [`BUILD_UID`]:[`BUILD_GID`] in `staging` with an empty environment but
/// `PATH`, `HOME`, `LANG` and the server's variables named in `passed`, within [`TIMEOUT`];
/// its output goes to a log whose end a failure quotes.
pub(crate) fn build(
    mut command: Command,
    staging: &Staging,
    passed: &[&str],
    what: &Build<'_>,
) -> Result<(), PackageError> {
    let mut log = create_new(&staging.root.join("build.log"))?;
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("LANG", "C.UTF-8")
        .envs(
            passed
                .iter()
                .filter_map(|k| Some((k, std::env::var_os(k)?))),
        )
        .current_dir(&staging.root)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log.try_clone()?);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // (An unprivileged server, in insecure mode, runs the build as itself.)
        command.uid(BUILD_UID).gid(BUILD_GID);
    }
    let (file, tool) = (what.file, what.tool);
    let mut child = command.spawn().map_err(|e| {
        PackageError::Requirements(format!(
            "the code has a {file}, but {tool} could not start: {e}"
        ))
    })?;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(PackageError::Requirements(format!(
                "installing {file} took more than {} s",
                TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if !status.success() {
        return Err(PackageError::Requirements(format!(
            "{tool} could not install {file} ({status}): {}",
            tail(&mut log)?
        )));
    }
    Ok(())
}

/// Moves what `pip` installed into the package, owned by root; refuses a name the package has.
fn join(installed: &Path, code: &Path) -> Result<(), PackageError> {
    for entry in std::fs::read_dir(installed)? {
        let entry = entry?;
        let dest = code.join(entry.file_name());
        if dest.symlink_metadata().is_ok() {
            return Err(PackageError::Requirements(format!(
                "'{}' is both in the package and installed by {FILE}",
                entry.file_name().to_string_lossy()
            )));
        }
        copy_tree(&entry.path(), &dest)?;
    }
    Ok(())
}

/// Copies `from` to `to` (a file, a symlink or a directory tree), owned by root, keeping the
/// permission bits (directories and executables 0755, files 0644, as unpacked packages have).
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = from.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        return std::os::unix::fs::symlink(std::fs::read_link(from)?, to);
    }
    if meta.is_dir() {
        std::fs::create_dir(to)?;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o755))?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    std::fs::copy(from, to)?;
    let mode = if meta.permissions().mode() & 0o111 != 0 {
        0o755
    } else {
        0o644
    };
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode))
}

/// The end of `pip`'s output.
fn tail(log: &mut File) -> std::io::Result<String> {
    let len = log.seek(SeekFrom::End(0))?;
    log.seek(SeekFrom::Start(len.saturating_sub(QUOTED)))?;
    let mut text = String::new();
    log.take(QUOTED).read_to_string(&mut text).ok();
    Ok(text.trim().to_string())
}

/// A new file at `path`, open for reading and writing.
fn create_new(path: &Path) -> std::io::Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

/// A private directory under the system's temporary directory (mode 0755, so the build user
/// can reach what it is given), removed when dropped.
pub(crate) struct Staging {
    pub root: PathBuf,
}

impl Staging {
    pub fn new(tool: &str) -> std::io::Result<Staging> {
        use std::os::unix::fs::PermissionsExt;
        let root =
            std::env::temp_dir().join(format!("lambent-{tool}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755))?;
        Ok(Staging { root })
    }

    /// A new directory `name` in it that the build user owns.
    pub fn build_dir(&self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.root.join(name);
        std::fs::create_dir(&dir)?;
        std::os::unix::fs::chown(&dir, Some(BUILD_UID), Some(BUILD_GID))?;
        Ok(dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn installed_files_join_the_package_but_never_replace_its_own() {
        let installed = tempfile::tempdir().unwrap();
        let code = tempfile::tempdir().unwrap();
        std::fs::create_dir(installed.path().join("dep")).unwrap();
        std::fs::write(installed.path().join("dep/__init__.py"), "X = 1\n").unwrap();
        std::fs::write(installed.path().join("tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            installed.path().join("tool"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
        join(installed.path(), code.path()).unwrap();
        let mode = |p: &str| {
            std::fs::metadata(code.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(
            (mode("dep"), mode("dep/__init__.py"), mode("tool")),
            (0o755, 0o644, 0o755)
        );
        let err = join(installed.path(), code.path()).unwrap_err();
        assert!(err.to_string().contains("both in the package"), "{err}");
    }

    #[test]
    fn a_package_without_requirements_is_left_alone() {
        let code = tempfile::tempdir().unwrap();
        install(Path::new("/nonexistent/python3"), code.path()).unwrap();
        assert_eq!(std::fs::read_dir(code.path()).unwrap().count(), 0);
    }
}
