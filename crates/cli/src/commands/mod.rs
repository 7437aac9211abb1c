//! The commands, one module each, and what they share: the connection settings ([`Ctx`]) and
//! how errors are reported.

pub mod activations;
pub mod app_deploy;
pub mod audit;
pub mod buckets;
pub mod deploy;
pub mod dev;
pub mod dlq;
pub mod functions;
pub mod invoke;
pub mod keys;
pub mod logs;
pub mod nodes;
pub mod ns;
pub mod objects;
pub mod queues;
pub mod routes;
pub mod schedule;
pub mod sequences;
pub mod tables;
pub mod up;
pub mod usage;
pub mod workflows;

mod embedded;

use crate::client::{Client, ClientError};
use crate::config;
use crate::output::Format;
use anyhow::Result;

/// What every command gets from the global flags.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--url` or `LAMBENT_URL`.
    pub url: Option<String>,
    pub format: Format,
    /// `--namespace` or `LAMBENT_NAMESPACE`: the namespace the operator's key acts in.
    pub namespace: Option<String>,
}

impl Ctx {
    /// Where to connect and with which key (flags and env over the config file).
    pub fn target(&self) -> Result<config::Target> {
        let file = match config::config_path() {
            Some(p) => config::load(&p)?,
            None => config::ClientConfig::default(),
        };
        Ok(config::resolve(
            self.url.as_deref(),
            config::env_api_key().as_deref(),
            &file,
        ))
    }

    /// A client for the target.
    pub fn client(&self) -> Result<Client> {
        let t = self.target()?;
        Ok(Client::new(&t.url, t.api_key)?.in_namespace(self.namespace.clone()))
    }

    /// A client with the operator's key: `LAMBENT_ADMIN_KEY` when set, else the usual key.
    pub fn operator_client(&self) -> Result<Client> {
        let t = self.target()?;
        let key = config::env_admin_key().or(t.api_key);
        Ok(Client::new(&t.url, key)?.in_namespace(self.namespace.clone()))
    }

    pub fn json(&self) -> bool {
        self.format == Format::Json
    }
}

/// Prints `error: …` (the causes joined by `: `) and a hint where one helps.
pub fn report(err: &anyhow::Error) {
    eprintln!("error: {}", describe(err));
    let client_error = err.chain().find_map(|c| c.downcast_ref::<ClientError>());
    if let Some(ClientError::Api { status: 401, .. }) = client_error {
        let file = config::config_path()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config file".into());
        eprintln!(
            "hint: set {} to the key 'lambent up' printed (or let 'lambent up' write {file})",
            config::API_KEY_ENV
        );
    }
}

/// The error and its causes on one line. The transport details under "cannot reach" are
/// left out: they only repeat it.
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        if let Some(ClientError::Unreachable { .. } | ClientError::Api { .. }) =
            cause.downcast_ref::<ClientError>()
        {
            break;
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn api_errors_read_as_their_message() {
        let e: Result<(), ClientError> = Err(ClientError::Api {
            status: 400,
            code: "InvalidName".into(),
            message: "invalid function name 'bad name'".into(),
        });
        let e = e.context("cannot deploy 'bad name'").unwrap_err();
        assert_eq!(
            describe(&e),
            "cannot deploy 'bad name': invalid function name 'bad name'"
        );
    }
}
