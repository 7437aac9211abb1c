//! `lambent keys create|ls|rm`: the namespace's access keys for the AWS Lambda-compatible API.
//! `create` prints the secret, once: the server never shows it again.

use super::Ctx;
use crate::output::{self, age, datetime};
use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an access key; prints its id and secret (shown only this once).
    Create,
    /// List the namespace's access key ids.
    #[command(visible_alias = "list")]
    Ls,
    /// Delete an access key: requests signed with it are refused from now on.
    #[command(visible_alias = "delete")]
    Rm {
        /// The access key id.
        access_key_id: String,
    },
}

pub fn run(ctx: &Ctx, cmd: KeysCommand) -> Result<ExitCode> {
    let client = ctx.client()?;
    match cmd {
        KeysCommand::Create => {
            let key = client.create_access_key()?;
            if ctx.json() {
                output::print_raw_json(&key.raw);
            } else {
                let secret = key.secret_access_key.clone().unwrap_or_default();
                output::print_kv(&[
                    ("access key id", key.access_key_id.clone()),
                    ("secret access key", secret.clone()),
                ]);
                println!(
                    "\nthe secret is shown only now. For AWS tools:\n  export AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={secret}",
                    key.access_key_id
                );
            }
        }
        KeysCommand::Ls => {
            let list = client.list_access_keys()?;
            if ctx.json() {
                output::print_raw_json(&list.raw);
            } else if list.keys.is_empty() {
                println!("no access keys yet: create one with 'lambent keys create'");
            } else {
                let mut t = output::table(&["ACCESS KEY ID", "NAMESPACE", "CREATED"]);
                for k in &list.keys {
                    t.add_row(vec![
                        k.access_key_id.clone(),
                        k.namespace.clone(),
                        format!("{} ({})", datetime(k.created_ms), age(k.created_ms)),
                    ]);
                }
                output::print_table(&t);
            }
        }
        KeysCommand::Rm { access_key_id } => {
            client.delete_access_key(&access_key_id)?;
            if ctx.json() {
                output::print_json(&serde_json::json!({ "deleted": access_key_id }));
            } else {
                println!("deleted access key {access_key_id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
