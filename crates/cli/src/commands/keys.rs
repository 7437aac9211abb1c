//! `lambent keys create|ls|rotate|rm`: the namespace's keys, each with a role (`owner`,
//! `deployer`, `invoker`, `viewer`) and an optional expiry. AWS access keys (SigV4, the
//! default of `create`) for the AWS-compatible APIs; API keys (`--api`, `Authorization:
//! Bearer`) for `/v1`, the CLI and the console. `create` and `rotate` print the secret once:
//! the server never shows it again.

use super::Ctx;
use crate::output::{self, age, datetime};
use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints its id and secret (shown only this once).
    Create {
        /// What the key may do: owner (everything, keys too), deployer (functions, routes,
        /// events, state), invoker (invoke and send events), viewer (read only).
        #[arg(long, default_value = "owner")]
        role: String,
        /// The key stops working after this long (30m, 12h, 30d).
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
        expires: Option<Duration>,
        /// An API key (Bearer, for /v1 and the CLI) instead of an AWS access key.
        #[arg(long)]
        api: bool,
    },
    /// List the namespace's keys (API keys and access keys).
    #[command(visible_alias = "list")]
    Ls,
    /// Give a key a new secret; the old one keeps working for the grace period.
    Rotate {
        /// The key's id: an API key's `lk-…` or an access key id.
        id: String,
        /// How long the old secret keeps working (default: it stops now).
        #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
        grace: Option<Duration>,
    },
    /// Delete a key: requests with it are refused from now on.
    #[command(visible_alias = "delete")]
    Rm {
        /// The key's id: an API key's `lk-…` or an access key id.
        id: String,
    },
}

/// Whether an id names an API key (the rest are AWS access key ids).
fn is_api_key(id: &str) -> bool {
    id.starts_with("lk-")
}

pub fn run(ctx: &Ctx, cmd: KeysCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        KeysCommand::Create { role, expires, api } => {
            let mut body = json!({ "role": role });
            if let Some(d) = expires {
                body["expires_in_s"] = json!(d.as_secs().max(1));
            }
            if api {
                let key = client.create_api_key(&body)?;
                if ctx.json() {
                    output::print_raw_json(&key.raw);
                } else {
                    let secret = key["secret"].as_str().unwrap_or("").to_string();
                    output::print_kv(&[
                        ("key id", key["key_id"].as_str().unwrap_or("").into()),
                        ("role", key["role"].as_str().unwrap_or("").into()),
                        ("expires", expiry_text(&key["expires_ms"])),
                        ("api key", secret.clone()),
                    ]);
                    println!("\nthe key is shown only now. For the CLI:\n  export LAMBENT_API_KEY={secret}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            let key = client.create_access_key_with(&body)?;
            if ctx.json() {
                output::print_raw_json(&key.raw);
            } else {
                let id = key["access_key_id"].as_str().unwrap_or("").to_string();
                let secret = key["secret_access_key"].as_str().unwrap_or("").to_string();
                output::print_kv(&[
                    ("access key id", id.clone()),
                    ("secret access key", secret.clone()),
                    ("role", key["role"].as_str().unwrap_or("").into()),
                    ("expires", expiry_text(&key["expires_ms"])),
                ]);
                println!(
                    "\nthe secret is shown only now. For AWS tools:\n  export AWS_ACCESS_KEY_ID={id} AWS_SECRET_ACCESS_KEY={secret}"
                );
            }
        }
        KeysCommand::Ls => ls(ctx, &client)?,
        KeysCommand::Rotate { id, grace } => {
            let grace_s = grace.map_or(0, |d| d.as_secs());
            let api = is_api_key(&id);
            let key = client.rotate_key(&id, api, grace_s)?;
            if ctx.json() {
                output::print_raw_json(&key.raw);
            } else {
                let (label, secret, until) = match api {
                    true => ("new api key", "secret", "old_secrets_valid_until_ms"),
                    false => (
                        "new secret access key",
                        "secret_access_key",
                        "old_secret_valid_until_ms",
                    ),
                };
                output::print_kv(&[
                    ("key id", id.clone()),
                    (label, key[secret].as_str().unwrap_or("").into()),
                    (
                        "old secret valid until",
                        datetime(key[until].as_u64().unwrap_or(0)),
                    ),
                ]);
            }
        }
        KeysCommand::Rm { id } => {
            let kind = if is_api_key(&id) {
                client.delete_api_key(&id)?;
                "api key"
            } else {
                client.delete_access_key(&id)?;
                "access key"
            };
            if ctx.json() {
                output::print_json(&json!({ "deleted": id }));
            } else {
                println!("deleted {kind} {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn expiry_text(v: &Value) -> String {
    v.as_u64().map_or_else(|| "never".into(), datetime)
}

/// Both kinds of keys: API keys (if this key may see them) and access keys.
fn ls(ctx: &Ctx, client: &crate::client::Client) -> Result<()> {
    let access = client.list_access_keys()?;
    let api = client.list_api_keys()?;
    if ctx.json() {
        let access: Value = serde_json::from_slice(&access.raw)?;
        output::print_json(&json!({
            "keys": access["keys"],
            "api_keys": api["keys"],
        }));
        return Ok(());
    }
    let mut t = output::table(&["KEY ID", "KIND", "ROLE", "NAMESPACE", "CREATED", "EXPIRES"]);
    for k in api["keys"].as_array().into_iter().flatten() {
        let created = k["created_ms"].as_u64().unwrap_or(0);
        t.add_row(vec![
            k["key_id"].as_str().unwrap_or("").into(),
            "api".into(),
            k["role"].as_str().unwrap_or("").into(),
            k["namespace"].as_str().unwrap_or("").into(),
            format!("{} ({})", datetime(created), age(created)),
            expiry_text(&k["expires_ms"]),
        ]);
    }
    for k in &access.keys {
        t.add_row(vec![
            k.access_key_id.clone(),
            "aws".into(),
            k.role.clone(),
            k.namespace.clone(),
            format!("{} ({})", datetime(k.created_ms), age(k.created_ms)),
            k.expires_ms.map_or_else(|| "never".into(), datetime),
        ]);
    }
    output::print_table(&t);
    Ok(())
}
