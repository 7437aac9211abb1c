//! `lambent nodes`: the cluster's members (`GET /v1/nodes`), one row each: ID ADDRESS STATE
//! WARM BUSY LOAD MEMORY VERSION, the answering node marked with `*`.

use super::Ctx;
use crate::client::NodeList;
use crate::output;
use anyhow::Result;
use std::process::ExitCode;

pub fn run(ctx: &Ctx) -> Result<ExitCode> {
    let nodes = ctx.client()?.nodes()?;
    if ctx.json() {
        output::print_raw_json(&nodes.raw);
    } else {
        print_nodes(&nodes);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_nodes(list: &NodeList) {
    let mut t = output::table(&[
        "ID", "ADDRESS", "STATE", "WARM", "BUSY", "LOAD", "MEMORY", "VERSION",
    ]);
    for n in &list.nodes {
        let me = if n.id == list.node { " *" } else { "" };
        t.add_row(vec![
            format!("{}{me}", n.id),
            n.address.clone(),
            n.state.clone(),
            n.stats.warm.to_string(),
            n.stats.busy.to_string(),
            format!("{:.2}", n.stats.load),
            format!("{}/{} MB", n.stats.memory_used_mb, n.stats.memory_budget_mb),
            n.version.clone(),
        ]);
    }
    println!("{t}");
}
