//! Node.js dependencies a code package declares in a top-level `package.json`, installed into
//! its `node_modules` when it is unpacked (at upload, once per content address), as `sam build`
//! or `serverless package` would have done before uploading to Lambda:
//!
//! - only when they are missing: a package that ships its own `node_modules` is used as it is,
//!   and one whose `package.json` names no `dependencies` needs nothing;
//! - production dependencies only, no install scripts (`--omit=dev --ignore-scripts`), the lock
//!   file honoured: `npm ci` when there is a `package-lock.json` or `npm-shrinkwrap.json`, else
//!   `npm install`; the package's own `.npmrc` (a registry of its own) applies;
//! - in the confinement of `requirements.txt`'s `pip` ([`crate::requirements::build`]): the
//!   sandbox user, a private staging directory (npm's cache in it), an empty environment but
//!   `PATH` and the server's registry and proxy settings ([`PASSED`]), a time limit;
//! - then `node_modules` joins the package, owned by root.
//!
//! A failure (npm missing, a package that does not exist, a lock file out of date) is a
//! [`PackageError::Requirements`] quoting the end of npm's output.

use crate::package::PackageError;
use crate::requirements::{build, copy_tree, Build, Staging};
use std::path::Path;
use std::process::Command;

/// The file that declares the dependencies, at the package's top level.
pub const FILE: &str = "package.json";
/// Where they are installed, beside it.
pub const MODULES: &str = "node_modules";
/// Files copied beside `package.json` when present: the lock files and npm's settings.
const COMPANIONS: &[&str] = &["package-lock.json", "npm-shrinkwrap.json", ".npmrc"];
/// The server's environment variables `npm` gets.
pub const PASSED: &[&str] = &[
    "NPM_CONFIG_REGISTRY",
    "npm_config_registry",
    "NPM_CONFIG_STRICT_SSL",
    "npm_config_strict_ssl",
    "NPM_CONFIG_CAFILE",
    "npm_config_cafile",
    "NODE_EXTRA_CA_CERTS",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Whether `code` needs its dependencies installed: a `package.json` with a non-empty
/// `dependencies` object and no `node_modules`.
pub fn wanted(code: &Path) -> Result<bool, PackageError> {
    let manifest = code.join(FILE);
    if !manifest.is_file() || code.join(MODULES).symlink_metadata().is_ok() {
        return Ok(false);
    }
    let text = std::fs::read(&manifest)?;
    let json: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| PackageError::Requirements(format!("{FILE} is not valid JSON: {e}")))?;
    Ok(json
        .get("dependencies")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|d| !d.is_empty()))
}

/// Installs the production dependencies of `code/package.json` into `code/node_modules` with
/// `npm`, unless it has them or needs none.
pub fn install(npm: &Path, code: &Path) -> Result<(), PackageError> {
    if !wanted(code)? {
        return Ok(());
    }
    let staging = Staging::new("npm")?;
    let project = staging.build_dir("project")?;
    let cache = staging.build_dir("cache")?;
    let mut locked = false;
    for name in std::iter::once(FILE).chain(COMPANIONS.iter().copied()) {
        let from = code.join(name);
        if from.is_file() {
            std::fs::copy(&from, project.join(name))?;
            locked |= name.ends_with(".json") && name != FILE;
        }
    }
    let mut command = Command::new(npm);
    command
        .arg(if locked { "ci" } else { "install" })
        .args(["--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"])
        .args(["--no-update-notifier", "--no-progress", "--cache"])
        .arg(&cache)
        .arg("--prefix")
        .arg(&project);
    let tool = npm.display().to_string();
    build(
        command,
        &staging,
        PASSED,
        &Build {
            file: FILE,
            tool: &tool,
        },
    )?;
    let installed = project.join(MODULES);
    if installed.is_dir() {
        copy_tree(&installed, &code.join(MODULES))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn only_missing_dependencies_are_wanted() {
        let deps = r#"{"dependencies": {"ms": "2.1.3"}}"#;
        assert!(wanted(code_with(&[(FILE, deps)]).path()).unwrap());
        // A shipped node_modules is used as it is.
        let shipped = code_with(&[(FILE, deps), ("node_modules/ms/index.js", "")]);
        assert!(!wanted(shipped.path()).unwrap());
        // Nothing to install: no package.json, no dependencies, only devDependencies.
        assert!(!wanted(code_with(&[("index.js", "")]).path()).unwrap());
        assert!(!wanted(code_with(&[(FILE, r#"{"type": "module"}"#)]).path()).unwrap());
        let dev = r#"{"dependencies": {}, "devDependencies": {"jest": "29"}}"#;
        assert!(!wanted(code_with(&[(FILE, dev)]).path()).unwrap());
        let err = wanted(code_with(&[(FILE, "{nope")]).path()).unwrap_err();
        assert!(
            err.to_string().contains("package.json is not valid JSON"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_npm_is_named() {
        let code = code_with(&[(FILE, r#"{"dependencies": {"ms": "2.1.3"}}"#)]);
        let err = install(Path::new("/nonexistent/npm"), code.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("package.json")
                && message.contains("/nonexistent/npm could not start"),
            "{message}"
        );
        assert!(!code.path().join(MODULES).exists());
    }
}
