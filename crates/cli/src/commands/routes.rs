//! `lambent route add|ls|rm`: HTTP routes that map a method and path on the server's listener
//! to a function, or to a workflow (`--workflow`).

use super::Ctx;
use crate::client::Route;
use crate::manifest::parse_size;
use crate::output::{self, age};
use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use lambent_core::route::{Cors, PayloadFormat, RouteAuth};
use lambent_core::RouteSpec;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Route METHOD PATH to a function, e.g. `lambent route add GET /users/{id} users-fn`.
    Add(AddArgs),
    /// List routes.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a route, by id or by METHOD PATH.
    #[command(visible_alias = "delete")]
    Rm {
        /// The route's id (from `lambent route ls`), or its method followed by its path.
        #[arg(required = true, num_args = 1..=2, value_name = "ID | METHOD PATH")]
        target: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS, or ANY for every method.
    pub method: String,
    /// The path: literal segments, `{name}` parameters and a last greedy `{name+}`.
    pub path: String,
    /// The function that serves it.
    #[arg(required_unless_present = "workflow")]
    pub function: Option<String>,
    /// Start an execution of this workflow instead, with the request body as its input (an
    /// Express one answers with its result, a Standard one with its ARN).
    #[arg(long, conflicts_with = "function", value_name = "NAME")]
    pub workflow: Option<String>,
    /// `none`: public; `key`: needs an API key of the namespace (`Authorization: Bearer` or
    /// `x-api-key`).
    #[arg(long, default_value = "none", value_parser = parse_auth)]
    pub auth: RouteAuth,
    /// An origin allowed by CORS (`*` for any); repeatable. Turns CORS on.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Methods allowed in CORS preflight answers, comma-separated [default: the route's].
    #[arg(long, value_name = "METHODS", value_delimiter = ',')]
    pub cors_methods: Vec<String>,
    /// Request headers CORS allows (`*` for any), comma-separated.
    #[arg(long, value_name = "HEADERS", value_delimiter = ',')]
    pub cors_headers: Vec<String>,
    /// Response headers the browser may read, comma-separated.
    #[arg(long, value_name = "HEADERS", value_delimiter = ',')]
    pub cors_expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    #[arg(long, value_name = "SECONDS")]
    pub cors_max_age: Option<u32>,
    /// Allow credentials (cookies) in CORS requests.
    #[arg(long)]
    pub cors_credentials: bool,
    /// Largest request body, e.g. 65536, 64k, 1m [default: 1m]; larger ones get a 413.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_body: Option<u64>,
    /// The event the function receives: 2.0 (HTTP API, the default) or 1.0 (REST API's
    /// Lambda proxy integration).
    #[arg(long, default_value = "2.0", value_parser = parse_payload)]
    pub payload: PayloadFormat,
    /// Replace a route with the same method and path instead of failing.
    #[arg(long)]
    pub replace: bool,
}

fn parse_auth(s: &str) -> Result<RouteAuth, String> {
    s.parse()
}

fn parse_payload(s: &str) -> Result<PayloadFormat, String> {
    s.parse()
}

impl AddArgs {
    /// The route to send, CORS included if any `--cors-*` flag is given.
    pub fn spec(&self) -> Result<RouteSpec> {
        let any_cors = !self.cors_methods.is_empty()
            || !self.cors_headers.is_empty()
            || !self.cors_expose_headers.is_empty()
            || self.cors_max_age.is_some()
            || self.cors_credentials;
        if any_cors && self.cors_origins.is_empty() {
            bail!("CORS settings need at least one --cors-origin (or '*')");
        }
        let cors = (!self.cors_origins.is_empty()).then(|| Cors {
            allow_origins: self.cors_origins.clone(),
            allow_methods: self.cors_methods.clone(),
            allow_headers: self.cors_headers.clone(),
            expose_headers: self.cors_expose_headers.clone(),
            max_age: self.cors_max_age,
            allow_credentials: self.cors_credentials,
        });
        Ok(RouteSpec {
            method: self.method.clone(),
            path: self.path.clone(),
            function: self.function.clone().unwrap_or_default(),
            workflow: self.workflow.clone(),
            auth: self.auth,
            cors,
            max_body_bytes: self.max_body,
            payload: self.payload,
        })
    }
}

pub fn run(ctx: &Ctx, command: RouteCommand) -> Result<ExitCode> {
    match command {
        RouteCommand::Add(args) => add(ctx, &args),
        RouteCommand::Ls => ls(ctx),
        RouteCommand::Rm { target } => rm(ctx, &target),
    }
}

fn add(ctx: &Ctx, args: &AddArgs) -> Result<ExitCode> {
    let client = ctx.client()?;
    let route = client.add_route(&args.spec()?, args.replace)?;
    if ctx.json() {
        output::print_raw_json(&route.raw);
    } else {
        println!("{}", route_line(&route));
        println!("try: curl -i {}{}", client.url(), route.path);
    }
    Ok(ExitCode::SUCCESS)
}

/// `route GET /users/{id} -> users-fn (id rt_…)`.
pub fn route_line(r: &Route) -> String {
    format!("route {} -> {} (id {})", r.key, target(r), r.id)
}

/// `users-fn`, or `workflow orders`.
fn target(r: &Route) -> String {
    match &r.workflow {
        Some(w) => format!("workflow {w}"),
        None => r.function.clone(),
    }
}

fn ls(ctx: &Ctx) -> Result<ExitCode> {
    let list = ctx.client()?.list_routes()?;
    if ctx.json() {
        output::print_raw_json(&list.raw);
        return Ok(ExitCode::SUCCESS);
    }
    if list.routes.is_empty() {
        println!("no routes yet: add one with 'lambent route add GET /path FUNCTION'");
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = output::table(&[
        "ID", "METHOD", "PATH", "TARGET", "AUTH", "CORS", "MAX BODY", "CREATED",
    ]);
    for r in &list.routes {
        let cors = r
            .cors
            .as_ref()
            .map_or_else(|| "-".to_string(), |c| c.allow_origins.join(","));
        t.add_row(vec![
            r.id.clone(),
            r.method.clone(),
            r.path.clone(),
            target(r),
            r.auth.clone(),
            cors,
            format!("{} B", r.max_body_bytes),
            age(r.created_ms),
        ]);
    }
    output::print_table(&t);
    Ok(ExitCode::SUCCESS)
}

fn rm(ctx: &Ctx, target: &[String]) -> Result<ExitCode> {
    let client = ctx.client()?;
    let id = match target {
        [id] => id.clone(),
        [method, path] => {
            let key = format!("{} {path}", method.to_ascii_uppercase());
            let list = client.list_routes()?;
            match list.routes.iter().find(|r| r.key == key) {
                Some(r) => r.id.clone(),
                None => bail!("no route '{key}': 'lambent route ls' lists them"),
            }
        }
        _ => bail!("expected a route id, or METHOD PATH"),
    };
    client.delete_route(&id)?;
    if ctx.json() {
        output::print_json(&serde_json::json!({ "deleted": id }));
    } else {
        println!("deleted route {id}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use crate::{Cli, Command};
    use clap::Parser;

    #[test]
    fn add_flags_parse() {
        let cli = Cli::try_parse_from([
            "lambent",
            "route",
            "add",
            "GET",
            "/users/{id}",
            "users-fn",
            "--auth",
            "key",
            "--cors-origin",
            "https://a.example",
            "--cors-methods",
            "GET,POST",
            "--cors-max-age",
            "600",
            "--max-body",
            "64k",
        ])
        .unwrap();
        let Command::Route {
            command: super::RouteCommand::Add(args),
        } = cli.command
        else {
            panic!("not route add")
        };
        let spec = args.spec().unwrap();
        assert_eq!(spec.auth, super::RouteAuth::Key);
        assert_eq!(spec.max_body_bytes, Some(65536));
        let cors = spec.cors.unwrap();
        assert_eq!(cors.allow_methods, ["GET", "POST"]);
        assert_eq!(cors.max_age, Some(600));
        assert!(Cli::try_parse_from([
            "lambent", "route", "add", "GET", "/x", "f", "--auth", "iam"
        ])
        .is_err());
        let cli = Cli::try_parse_from([
            "lambent",
            "route",
            "add",
            "GET",
            "/x",
            "f",
            "--cors-max-age",
            "5",
        ])
        .unwrap();
        let Command::Route {
            command: super::RouteCommand::Add(args),
        } = cli.command
        else {
            panic!("not route add")
        };
        assert!(args.spec().is_err(), "CORS settings without an origin");
    }
}
