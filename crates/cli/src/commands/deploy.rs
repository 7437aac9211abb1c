//! `lambent deploy PATH`: resolve `lambent.yaml` and flags, upload the code unless the server
//! has it already, then create or replace each function. A folder with a `serverless.yml` or
//! a SAM `template.yaml` (and no `lambent.yaml`) goes to [`super::app_deploy`].

use super::Ctx;
use crate::app;
use crate::client::{Client, Function, FunctionPut, Json};
use crate::events_client::SchedulePut;
use crate::manifest::{self, Deployment, Overrides};
use crate::package;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// A folder (with or without a lambent.yaml), a lambent.yaml, or a .zip file.
    pub path: PathBuf,
    /// The function's name [default: from lambent.yaml, else the folder's name]. With a
    /// lambent.yaml listing many functions, deploys only this one.
    #[arg(long)]
    pub name: Option<String>,
    /// The runtime: python3.12, nodejs20.x, provided, … (overrides lambent.yaml).
    #[arg(long)]
    pub runtime: Option<String>,
    /// The handler, e.g. app.handler (overrides lambent.yaml).
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB (overrides lambent.yaml).
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// Timeout in seconds (overrides lambent.yaml).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// An environment variable, added to those of lambent.yaml; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = manifest::parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// A description (overrides lambent.yaml).
    #[arg(long)]
    pub description: Option<String>,
    /// At most this many concurrent invocations, and this many guaranteed (carved out of the
    /// namespace's limit); 0 stops the function (overrides lambent.yaml).
    #[arg(long, value_name = "N")]
    pub reserved_concurrency: Option<u32>,
    /// Sandboxes kept initialized at all times; the deploy waits for them (overrides
    /// lambent.yaml).
    #[arg(long, value_name = "N")]
    pub provisioned_concurrency: Option<u32>,
    /// Seconds an idle sandbox stays warm [default: the server's] (overrides lambent.yaml).
    #[arg(long, value_name = "SECS")]
    pub keep_alive: Option<u32>,
    /// Retries of a failed asynchronous invocation, 0-10 [default: 2] (overrides lambent.yaml).
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Oldest an asynchronous event may get before it is given up [default: 21600]
    /// (overrides lambent.yaml).
    #[arg(long, value_name = "SECS")]
    pub max_event_age: Option<u32>,
    /// Function that gets the record of each successful asynchronous invocation.
    #[arg(long, value_name = "FUNCTION", value_parser = function_name)]
    pub on_success: Option<String>,
    /// Function that gets the record of each asynchronous invocation that failed for good.
    #[arg(long, value_name = "FUNCTION", value_parser = function_name)]
    pub on_failure: Option<String>,
    /// Give the function outbound network access (default: none, its own loopback only;
    /// needs slirp4netns on the server).
    #[arg(long)]
    pub network: bool,
    /// Return only once a sandbox of the new code is initialized (reports init errors).
    #[arg(long)]
    pub warm: bool,
    /// For a serverless.yml or SAM template: print what would be deployed (functions, routes,
    /// queues, topics, schedules, mappings, skipped items) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The stage of a serverless.yml (`${opt:stage}`) [default: provider.stage, else dev].
    #[arg(long)]
    pub stage: Option<String>,
    /// A SAM template parameter, overriding its Default; repeatable.
    #[arg(long = "parameter", value_name = "KEY=VALUE", value_parser = manifest::parse_env_pair)]
    pub parameters: Vec<(String, String)>,
}

/// A destination flag's value: a valid function name.
fn function_name(s: &str) -> Result<String, String> {
    lambent_core::FunctionName::parse(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

impl DeployArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            name: self.name.clone(),
            runtime: self.runtime.clone(),
            handler: self.handler.clone(),
            memory: self.memory,
            timeout: self.timeout,
            env: self.env.clone(),
            description: self.description.clone(),
            reserved_concurrency: self.reserved_concurrency,
            provisioned_concurrency: self.provisioned_concurrency,
            keep_alive: self.keep_alive,
            max_retries: self.max_retries,
            max_event_age_s: self.max_event_age,
            on_success: self.on_success.clone(),
            on_failure: self.on_failure.clone(),
            network: self.network.then_some(true),
        }
    }
}

/// The other tool's file to deploy: `PATH` itself, or found in the folder `PATH` when it holds
/// no `lambent.yaml`.
fn app_file(path: &std::path::Path) -> Option<(app::Format, PathBuf)> {
    if path.is_dir() {
        if path.join(manifest::MANIFEST_FILE).is_file() {
            return None;
        }
        return app::detect(path);
    }
    let dir = path.parent()?;
    app::detect(dir).filter(|(_, found)| found.file_name() == path.file_name())
}

pub fn run(ctx: &Ctx, args: DeployArgs) -> Result<ExitCode> {
    if let Some((format, file)) = app_file(&args.path) {
        let options = app::Options {
            stage: args.stage.clone(),
            parameters: args.parameters.iter().cloned().collect(),
            env: std::env::vars().collect(),
        };
        return super::app_deploy::run(ctx, format, &file, &options, args.dry_run, args.warm);
    }
    if args.dry_run || args.stage.is_some() || !args.parameters.is_empty() {
        anyhow::bail!(
            "--dry-run, --stage and --parameter apply to a serverless.yml or SAM template; {} has none",
            args.path.display()
        );
    }
    let project = Project::read(&args.path, &args.overrides())?;
    let (_, code) = project.deploy(&ctx.client()?, args.warm, ctx.json())?;
    Ok(code)
}

/// What a folder, `lambent.yaml` or zip declares: functions with their routes and schedules,
/// workflows, sequences and event source mappings.
pub struct Project {
    deployments: Vec<Deployment>,
    workflows: Vec<crate::workflow_manifest::WorkflowDeployment>,
    sequences: Vec<manifest::SequenceDecl>,
    mappings: Vec<manifest::MappingDecl>,
}

impl Project {
    /// Reads what `path` declares, or says what is wrong with it.
    pub fn read(path: &std::path::Path, overrides: &Overrides) -> Result<Project> {
        let deployments = manifest::resolve(path, overrides)?;
        let workflows = crate::workflow_manifest::resolve(path)?;
        let sequences = manifest::sequences(path)?;
        let single = match deployments.as_slice() {
            [one] => Some(one.name.as_str()),
            _ => None,
        };
        let mappings = manifest::mappings(path, single)?;
        Ok(Project {
            deployments,
            workflows,
            sequences,
            mappings,
        })
    }

    /// Deploys it all, printing a line for each thing (or, with `json`, the API's JSON at the
    /// end). Returns the functions deployed, and failure when one of them failed to initialize
    /// (`warm`: each is started once).
    pub fn deploy(
        self,
        client: &Client,
        warm: bool,
        json: bool,
    ) -> Result<(Vec<Json<Function>>, ExitCode)> {
        let Project {
            deployments,
            workflows,
            sequences,
            mappings,
        } = self;
        let deployed = deploy_all(client, &deployments, warm, |f| {
            if !json {
                println!("{}", deployed_line(f));
            }
        })?;
        let mut deployed_workflows = Vec::with_capacity(workflows.len());
        for w in &workflows {
            let w = super::workflows::deploy_one(client, w)?;
            if !json {
                println!("{}", super::workflows::deployed_line(&w));
            }
            deployed_workflows.push(w);
        }
        super::sequences::deploy_declared(client, &sequences, |s| {
            if !json {
                println!("sequence {}: {}", s.name, s.components.join(" → "));
            }
        })?;
        let (mut queue_mappings, mut stream_mappings) = (Vec::new(), Vec::new());
        for m in mappings {
            match m {
                manifest::MappingDecl::Queue(q) => queue_mappings.push(q),
                manifest::MappingDecl::Table(t) => stream_mappings.push(t),
            }
        }
        super::app_deploy::ensure_mappings(
            client,
            &queue_mappings,
            &stream_mappings,
            &mut |line| {
                if !json {
                    println!("{line}");
                }
            },
        )?;
        if !json {
            let sequence_routes = sequences.iter().flat_map(|s| &s.routes);
            for r in deployments
                .iter()
                .flat_map(|d| &d.routes)
                .chain(sequence_routes)
            {
                println!(
                    "route {} {} -> {}",
                    r.method.to_ascii_uppercase(),
                    r.path,
                    r.function
                );
            }
        }
        if json && deployed_workflows.is_empty() {
            print_functions_json(&deployed);
        } else if json {
            let raw =
                |body: &[u8]| serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
            crate::output::print_json(&serde_json::json!({
                "functions": deployed.iter().map(|f| raw(&f.raw)).collect::<Vec<_>>(),
                "workflows": deployed_workflows.iter().map(|w| raw(&w.raw)).collect::<Vec<_>>(),
            }));
        }
        let init_failed: Vec<&Json<Function>> =
            deployed.iter().filter(|f| f.warm_error.is_some()).collect();
        for f in &init_failed {
            eprintln!(
                "error: {} failed to initialize: {}",
                f.name,
                f.warm_error.as_deref().unwrap_or_default()
            );
        }
        let code = match init_failed.is_empty() {
            true => ExitCode::SUCCESS,
            false => ExitCode::FAILURE,
        };
        Ok((deployed, code))
    }
}

/// `-o json`: one function as the API returned it, several as `{"functions": […]}`.
pub fn print_functions_json(deployed: &[Json<Function>]) {
    match deployed {
        [one] => crate::output::print_raw_json(&one.raw),
        many => {
            let mut body = b"{\"functions\":[".to_vec();
            for (i, f) in many.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(f.raw.trim_ascii());
            }
            body.extend_from_slice(b"]}");
            crate::output::print_raw_json(&body);
        }
    }
}

/// Deploys each function in order and adds its routes (replacing those with the same method
/// and path), calling `each` after each one; stops at the first failure.
pub fn deploy_all(
    client: &Client,
    deployments: &[Deployment],
    warm: bool,
    mut each: impl FnMut(&Json<Function>),
) -> Result<Vec<Json<Function>>> {
    let mut out = Vec::with_capacity(deployments.len());
    for d in deployments {
        let f = deploy_one(client, d, warm);
        let f = if deployments.len() > 1 {
            f.with_context(|| format!("cannot deploy '{}'", d.name))?
        } else {
            f?
        };
        for route in &d.routes {
            client
                .add_route(route, true)
                .with_context(|| format!("cannot add route '{} {}'", route.method, route.path))?;
        }
        each(&f);
        out.push(f);
    }
    Ok(out)
}

/// Packs (or reads) the code, uploads it unless the server has it, and puts the function.
pub fn deploy_one(client: &Client, d: &Deployment, warm: bool) -> Result<Json<Function>> {
    let zip = package::code(&d.source)?;
    let mut sha = package::sha256_hex(&zip);
    if !client.has_code(&sha)? {
        let uploaded = client.upload_code(zip)?;
        if !uploaded.sha256.is_empty() {
            sha.clone_from(&uploaded.sha256);
        }
    }
    let s = &d.settings;
    let body = FunctionPut {
        runtime: s.runtime.clone(),
        handler: s.handler.clone(),
        memory: s.memory,
        timeout: s.timeout,
        env: s.env.clone(),
        description: s.description.clone(),
        reserved_concurrency: s.reserved_concurrency,
        provisioned_concurrency: s.provisioned_concurrency,
        keep_alive: s.keep_alive,
        async_invoke: s.async_invoke.clone(),
        network: s.network,
        code_sha256: sha,
    };
    let function = client.put_function(&d.name, &body, warm)?;
    for (name, schedule) in &s.schedules {
        let schedule = SchedulePut {
            function: d.name.clone(),
            ..schedule.clone()
        };
        client
            .put_schedule(name, &schedule, true)
            .with_context(|| format!("cannot create schedule '{name}'"))?;
    }
    Ok(function)
}

/// `deployed hello (python3.12, revision 2)`.
pub fn deployed_line(f: &Function) -> String {
    format!(
        "deployed {} ({}, revision {})",
        f.name, f.runtime, f.revision
    )
}

/// The lines that show how to call a function: a curl command and the CLI's.
pub fn invoke_hint(url: &str, api_key: Option<&str>, name: &str) -> String {
    let auth = match api_key {
        Some(k) => format!("-H \"Authorization: Bearer {k}\" "),
        None => String::new(),
    };
    format!(
        "try: curl -s -X POST {auth}{url}/v1/functions/{name}/invoke -d '{{\"name\":\"you\"}}'\n\
         or:  lambent invoke {name} --data '{{\"name\":\"you\"}}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_is_pasteable() {
        let h = invoke_hint("http://127.0.0.1:8080", Some("k3y"), "hello");
        assert_eq!(
            h,
            "try: curl -s -X POST -H \"Authorization: Bearer k3y\" \
             http://127.0.0.1:8080/v1/functions/hello/invoke -d '{\"name\":\"you\"}'\n\
             or:  lambent invoke hello --data '{\"name\":\"you\"}'"
        );
    }
}
