//! The AWS SDKs that come with the runtimes, as on Lambda: boto3 (with botocore) for Python
//! and the AWS SDK for JavaScript v3 for Node.js, so that handlers import them without
//! bundling them.
//!
//! They are fetched once per machine from PyPI and the npm registry into a cache directory
//! (`LAMBENT_SDK_DIR`, default `/var/cache/lambent/sdk`), each set of pinned versions in its
//! own directory, installed aside and renamed into place (never half there), one fetcher at a
//! time across processes (an advisory lock on `<cache>/.lock`):
//!
//! ```text
//! <cache>/python-<key>/               pip install --target (boto3, botocore, their dependencies)
//! <cache>/node-<key>/node_modules/    npm install --prefix (@aws-sdk/client-s3, …)
//! ```
//!
//! Every sandbox sees the cache read-only at the same path (`HostOptions::sdk_dir`), and the
//! runtime directory links to the sets in use: `<runtime_dir>/sdk/python` and
//! `<runtime_dir>/sdk/node`. Lambent's Python runtime puts the first on `sys.path` right after
//! the task root, and Node.js finds the second through `/node_modules` (see the sandbox's
//! mounts), after the function's own `node_modules`: a version the function bundles wins.
//!
//! A cache that already holds them is linked at start-up; otherwise the fetch runs in the
//! background and functions run meanwhile (without the SDKs). Where fetching is impossible (no
//! registry, no pip or npm) the reason is logged and [`SdkStatus`] says it.

use parking_lot::Mutex;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// The default machine-wide cache of the SDKs.
pub const DEFAULT_SDK_DIR: &str = "/var/cache/lambent/sdk";

/// boto3, pinned (botocore, s3transfer, jmespath, urllib3, python-dateutil come with it).
pub const PYTHON_PACKAGES: &[&str] = &["boto3==1.44.8"];

/// The AWS SDK for JavaScript v3 clients and libraries, pinned.
pub const NODE_PACKAGES: &[&str] = &[
    "@aws-sdk/client-s3@3.1175.0",
    "@aws-sdk/client-lambda@3.1164.0",
    "@aws-sdk/client-dynamodb@3.1169.0",
    "@aws-sdk/lib-dynamodb@3.1169.0",
    "@aws-sdk/client-sfn@3.1164.0",
    "@aws-sdk/client-sqs@3.1175.0",
    "@aws-sdk/client-sns@3.1169.0",
    "@aws-sdk/s3-request-presigner@3.1169.0",
    "@aws-sdk/lib-storage@3.1175.0",
];

/// One of the two SDKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    Python,
    Node,
}

impl Sdk {
    const ALL: [Sdk; 2] = [Sdk::Python, Sdk::Node];

    /// Its name in the cache and in `<runtime_dir>/sdk/`.
    fn name(self) -> &'static str {
        match self {
            Sdk::Python => "python",
            Sdk::Node => "node",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Sdk::Python => "boto3",
            Sdk::Node => "AWS SDK for JavaScript v3",
        }
    }

    fn packages(self) -> &'static [&'static str] {
        match self {
            Sdk::Python => PYTHON_PACKAGES,
            Sdk::Node => NODE_PACKAGES,
        }
    }

    /// `<name>-<first 12 hex of the SHA-256 of the pinned packages>`: a new pin, a new set.
    fn set_name(self) -> String {
        let digest = lambent_store::sha256_hex(self.packages().join("\n").as_bytes());
        format!("{}-{}", self.name(), &digest[..12])
    }

    /// The command installing the packages into `dir`.
    fn install_command(self, python: &str, dir: &Path) -> Command {
        let mut command = match self {
            Sdk::Python => {
                let mut c = Command::new(python);
                c.args(["-m", "pip", "install", "--quiet", "--no-input"])
                    .args(["--disable-pip-version-check", "--only-binary=:all:"])
                    .arg("--target")
                    .arg(dir);
                c
            }
            Sdk::Node => {
                let mut c = Command::new("npm");
                c.args(["install", "--no-audit", "--no-fund", "--ignore-scripts"])
                    .args(["--omit=dev", "--loglevel=error", "--prefix"])
                    .arg(dir);
                c
            }
        };
        command.args(self.packages());
        command
    }
}

/// Where one SDK stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkState {
    /// In the cache and linked: functions get it.
    Ready(PathBuf),
    /// Being fetched in the background.
    Fetching,
    /// Not available, and why.
    Missing(String),
}

/// Where the SDKs stand, shared with whoever reports it (`lambent up`, the logs).
#[derive(Debug, Clone)]
pub struct SdkStatus(Arc<Mutex<Vec<(Sdk, SdkState)>>>);

impl SdkStatus {
    fn new(state: SdkState) -> SdkStatus {
        SdkStatus(Arc::new(Mutex::new(
            Sdk::ALL.iter().map(|s| (*s, state.clone())).collect(),
        )))
    }

    fn set(&self, sdk: Sdk, state: SdkState) {
        if let Some(slot) = self.0.lock().iter_mut().find(|(s, _)| *s == sdk) {
            slot.1 = state;
        }
    }

    /// Each SDK and its state.
    pub fn states(&self) -> Vec<(Sdk, SdkState)> {
        self.0.lock().clone()
    }

    /// Waits until no SDK is being fetched any more (tests, benchmarks), at most `timeout`.
    pub async fn settled(&self, timeout: std::time::Duration) -> Vec<(Sdk, SdkState)> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let states = self.states();
            let fetching = states.iter().any(|(_, s)| *s == SdkState::Fetching);
            if !fetching || std::time::Instant::now() >= deadline {
                return states;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// One line per SDK, for `lambent up`.
    pub fn describe(&self) -> Vec<String> {
        self.states()
            .into_iter()
            .map(|(sdk, state)| match state {
                SdkState::Ready(path) => format!("{}: {}", sdk.describe(), path.display()),
                SdkState::Fetching => format!(
                    "{}: being fetched in the background (functions run without it meanwhile)",
                    sdk.describe()
                ),
                SdkState::Missing(why) => format!("{}: missing ({why})", sdk.describe()),
            })
            .collect()
    }
}

/// The SDK cache of a node: its directory and the runtime directory it links into.
pub struct SdkCache {
    /// Canonical path of the cache (sandboxes see it at this same path).
    pub dir: PathBuf,
    runtime_dir: PathBuf,
    python: String,
    pub status: SdkStatus,
}

impl SdkCache {
    /// Opens (creates) the cache at `dir` and links what it already holds into `runtime_dir`.
    /// `Err`: no cache can be had there (the reason, for [`SdkStatus`]).
    pub fn open(dir: &Path, runtime_dir: &Path, python: &str) -> Result<SdkCache, String> {
        use std::os::unix::fs::PermissionsExt;
        let fail = |e: std::io::Error| format!("cannot use {}: {e}", dir.display());
        std::fs::create_dir_all(dir).map_err(fail)?;
        let dir = dir.canonicalize().map_err(fail)?;
        for d in [&dir, &runtime_dir.join("sdk")] {
            std::fs::create_dir_all(d).map_err(fail)?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
        }
        let cache = SdkCache {
            dir,
            runtime_dir: runtime_dir.to_path_buf(),
            python: python.to_string(),
            status: SdkStatus::new(SdkState::Fetching),
        };
        for sdk in Sdk::ALL {
            if cache.set_dir(sdk).is_dir() {
                match cache.link(sdk) {
                    Ok(path) => cache.status.set(sdk, SdkState::Ready(path)),
                    Err(e) => cache.status.set(sdk, SdkState::Missing(e)),
                }
            }
        }
        Ok(cache)
    }

    /// A status for a node without a cache.
    pub fn unavailable(why: String) -> SdkStatus {
        SdkStatus::new(SdkState::Missing(why))
    }

    /// Whether some SDK still has to be fetched.
    pub fn incomplete(&self) -> bool {
        self.status
            .states()
            .iter()
            .any(|(_, s)| *s == SdkState::Fetching)
    }

    fn set_dir(&self, sdk: Sdk) -> PathBuf {
        self.dir.join(sdk.set_name())
    }

    /// Points `<runtime_dir>/sdk/<name>` at the SDK's set (replacing any older link at once).
    fn link(&self, sdk: Sdk) -> Result<PathBuf, String> {
        let target = self.set_dir(sdk);
        let links = self.runtime_dir.join("sdk");
        let link = links.join(sdk.name());
        let tmp = links.join(format!(".{}.link", sdk.name()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&target, &tmp)
            .and_then(|()| std::fs::rename(&tmp, &link))
            .map_err(|e| format!("cannot link {}: {e}", link.display()))?;
        Ok(target)
    }

    /// Fetches every SDK still missing (blocking: minutes at most, on a blocking thread) and
    /// links each one fetched, unless another fetcher holds the cache (`None`: try again
    /// later; what it fetched is then found in place). Returns what became of each;
    /// [`SdkCache::publish`] makes it known.
    pub fn try_fetch_missing(&self) -> Option<Vec<(Sdk, SdkState)>> {
        let missing: Vec<Sdk> = self
            .status
            .states()
            .into_iter()
            .filter(|(_, s)| *s == SdkState::Fetching)
            .map(|(sdk, _)| sdk)
            .collect();
        if missing.is_empty() {
            return Some(Vec::new());
        }
        let _lock = match CacheLock::try_take(&self.dir) {
            Ok(Some(lock)) => lock,
            Ok(None) => return None,
            Err(e) => {
                let why = format!("cannot lock {}: {e}", self.dir.display());
                let missing = missing.into_iter();
                return Some(
                    missing
                        .map(|sdk| (sdk, SdkState::Missing(why.clone())))
                        .collect(),
                );
            }
        };
        let outcomes = missing
            .into_iter()
            .map(|sdk| {
                // Another process may have fetched it while this one waited for the lock.
                let fetched = match self.set_dir(sdk).is_dir() {
                    true => Ok(()),
                    false => self.install(sdk),
                };
                match fetched.and_then(|()| self.link(sdk)) {
                    Ok(path) => (sdk, SdkState::Ready(path)),
                    Err(why) => (sdk, SdkState::Missing(why)),
                }
            })
            .collect();
        Some(outcomes)
    }

    /// Makes the outcome of [`SdkCache::fetch_missing`] known (status and logs).
    pub fn publish(&self, outcomes: Vec<(Sdk, SdkState)>) {
        for (sdk, state) in outcomes {
            match &state {
                SdkState::Ready(path) => {
                    tracing::info!("{} ready in {}", sdk.describe(), path.display())
                }
                SdkState::Missing(why) => tracing::error!(
                    "the {} that comes with the runtimes is missing: {why}; functions run, but \
                     must bundle it to use it",
                    sdk.describe()
                ),
                SdkState::Fetching => {}
            }
            self.status.set(sdk, state);
        }
    }

    /// Installs one SDK aside, then renames it into place.
    fn install(&self, sdk: Sdk) -> Result<(), String> {
        let tmp = self
            .dir
            .join(format!(".{}.tmp-{}", sdk.set_name(), std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
        tracing::info!(
            "fetching the {} that comes with the runtimes into {}",
            sdk.describe(),
            self.dir.display()
        );
        let mut command = sdk.install_command(&self.python, &tmp);
        let result = command.output();
        let outcome = match result {
            Err(e) => Err(format!(
                "cannot run {:?}: {e}",
                command.get_program().to_string_lossy()
            )),
            Ok(out) if !out.status.success() => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
                Err(format!(
                    "{} install failed ({}): {}",
                    command.get_program().to_string_lossy(),
                    out.status,
                    last.unwrap_or("no output")
                ))
            }
            Ok(_) => readable(&tmp)
                .and_then(|()| std::fs::rename(&tmp, self.set_dir(sdk)))
                .map_err(|e| format!("cannot move it into place: {e}")),
        };
        if outcome.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        outcome
    }
}

/// Makes a tree readable by everyone (sandboxes run as an unprivileged user), whatever the
/// installer's umask.
fn readable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        let meta = entry.path().symlink_metadata()?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let wanted = match meta.is_dir() {
            true => mode | 0o555,
            false => mode | 0o444,
        };
        if wanted != mode {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(wanted))?;
        }
    }
    Ok(())
}

/// An exclusive advisory lock on `<cache>/.lock`, released on drop (closing the file).
struct CacheLock {
    _file: std::fs::File,
}

impl CacheLock {
    /// The lock, or `None` while another fetcher (this process or another) holds it.
    fn try_take(dir: &Path) -> std::io::Result<Option<CacheLock>> {
        use std::os::fd::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(".lock"))?;
        // SAFETY: flock on a descriptor this struct owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                true => Ok(None),
                false => Err(e),
            };
        }
        Ok(Some(CacheLock { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_that_holds_an_sdk_links_it_and_fetches_only_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let (cache_dir, runtime_dir) = (tmp.path().join("cache"), tmp.path().join("runtimes"));
        std::fs::create_dir_all(cache_dir.join(Sdk::Python.set_name()).join("boto3")).unwrap();
        let cache = SdkCache::open(&cache_dir, &runtime_dir, "/usr/bin/python3").unwrap();
        let states = cache.status.states();
        let python = cache.dir.join(Sdk::Python.set_name());
        assert_eq!(states[0], (Sdk::Python, SdkState::Ready(python.clone())));
        assert_eq!(states[1], (Sdk::Node, SdkState::Fetching));
        assert!(cache.incomplete());
        let link = runtime_dir.join("sdk/python");
        assert_eq!(std::fs::read_link(&link).unwrap(), python);
        assert!(link.join("boto3").is_dir());
    }

    #[test]
    fn a_failed_install_leaves_nothing_and_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = SdkCache::open(
            &tmp.path().join("cache"),
            &tmp.path().join("runtimes"),
            "/nonexistent/python3",
        )
        .unwrap();
        let why = cache.install(Sdk::Python).unwrap_err();
        assert!(why.contains("/nonexistent/python3"), "{why}");
        let left: Vec<_> = std::fs::read_dir(&cache.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_new_pin_is_a_new_set() {
        assert!(Sdk::Python.set_name().starts_with("python-"));
        assert_ne!(Sdk::Python.set_name(), Sdk::Node.set_name());
        assert_eq!(Sdk::Node.set_name(), Sdk::Node.set_name());
    }
}
