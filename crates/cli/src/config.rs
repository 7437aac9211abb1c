//! Where the CLI finds its server and key: flags and environment first, then the client config
//! file that `lambent up` writes (`$XDG_CONFIG_HOME/lambent/config.json`, mode 0600).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The URL used when neither `--url`, `LAMBENT_URL` nor the config file names one.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The address `lambent up` and `lambent dev` listen on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The environment variable holding the API key.
pub const API_KEY_ENV: &str = "LAMBENT_API_KEY";
/// The operator's key (`/v1/namespaces`; the server's too: it is the operator key's value).
pub const ADMIN_KEY_ENV: &str = "LAMBENT_ADMIN_KEY";

/// The client config file's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

/// `$XDG_CONFIG_HOME/lambent/config.json`, or `~/.config/lambent/config.json`.
pub fn config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("lambent").join("config.json"))
}

/// The default data dir for `up` and `dev` (`~/.local/share/lambent`) when neither
/// `--data-dir` nor `LAMBENT_DATA_DIR` names one.
pub fn default_data_dir() -> Result<PathBuf> {
    dirs::data_dir().map(|d| d.join("lambent")).context(
        "cannot find a home directory for the data dir: pass --data-dir or set LAMBENT_DATA_DIR",
    )
}

/// Reads the config file; a missing file is an empty config.
pub fn load(path: &Path) -> Result<ClientConfig> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a Lambent client config", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the config file with mode 0600 (it holds the API key), replacing it atomically.
pub fn save(path: &Path, config: &ClientConfig) -> Result<()> {
    let dir = path.parent().context("config path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    let mut json = serde_json::to_vec_pretty(config)?;
    json.push(b'\n');
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Where to connect and with which key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub api_key: Option<String>,
}

/// Resolves the target: `flag_url` (from `--url` or `LAMBENT_URL`) over the file's url over the
/// default; `env_key` (`LAMBENT_API_KEY`) over the file's key.
pub fn resolve(flag_url: Option<&str>, env_key: Option<&str>, file: &ClientConfig) -> Target {
    let url = flag_url
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| file.url.clone())
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let api_key = env_key
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .or_else(|| file.api_key.clone());
    Target { url, api_key }
}

/// `LAMBENT_API_KEY` if set and not empty.
/// `LAMBENT_ADMIN_KEY`, if set and not empty.
pub fn env_admin_key() -> Option<String> {
    std::env::var(ADMIN_KEY_ENV).ok().filter(|k| !k.is_empty())
}

pub fn env_api_key() -> Option<String> {
    std::env::var(API_KEY_ENV).ok().filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_env_win_over_the_file() {
        let file = ClientConfig {
            url: Some("http://f:1".into()),
            api_key: Some("fk".into()),
        };
        assert_eq!(
            resolve(Some("http://u:2"), Some("ek"), &file),
            Target {
                url: "http://u:2".into(),
                api_key: Some("ek".into())
            }
        );
        assert_eq!(
            resolve(None, None, &file),
            Target {
                url: "http://f:1".into(),
                api_key: Some("fk".into())
            }
        );
        assert_eq!(
            resolve(None, None, &ClientConfig::default()),
            Target {
                url: DEFAULT_URL.into(),
                api_key: None
            }
        );
    }

    #[test]
    fn saved_config_is_private_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lambent").join("config.json");
        assert_eq!(load(&path).unwrap(), ClientConfig::default());
        let config = ClientConfig {
            url: Some("http://127.0.0.1:9".into()),
            api_key: Some("secret".into()),
        };
        save(&path, &config).unwrap();
        save(&path, &config).unwrap();
        assert_eq!(load(&path).unwrap(), config);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
