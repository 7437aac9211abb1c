//! `workflows:` in `lambent.yaml`: state machines deployed by `lambent deploy` after the
//! functions (their Tasks call them), each created or updated in place.
//!
//! ```yaml
//! workflows:
//!   orders:
//!     type: EXPRESS                     # default STANDARD
//!     definition:                       # inline, in YAML (or JSON) …
//!       StartAt: Charge
//!       States:
//!         Charge: {Type: Task, Resource: "arn:aws:lambda:us-east-1:default:function:charge", End: true}
//!   nightly:
//!     definition: flows/nightly.asl.json  # … or a file (JSON or YAML), relative to lambent.yaml
//!     routes:                           # HTTP routes starting an execution with the body
//!       - POST /nightly                 # (as in `routes:` of functions, without `function`)
//!     schedules:                        # schedules starting one (the scheduled event as input)
//!       at-two: {cron: "0 0 2 * * *"}
//! ```
//!
//! The definition is sent as JSON; the server validates it and says what is wrong (state,
//! field, reason).

use crate::events_client::SchedulePut;
use crate::manifest::RouteYaml;
use anyhow::{bail, Context, Result};
use lambent_core::RouteSpec;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One workflow to deploy, resolved (its definition read and converted to JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDeployment {
    pub name: String,
    /// `STANDARD` or `EXPRESS`; `None`: the server's default.
    pub kind: Option<String>,
    pub definition: Value,
    /// HTTP routes to the workflow, added after it is deployed.
    pub routes: Vec<RouteSpec>,
    /// Schedules starting it, by name, created or replaced after it is deployed.
    pub schedules: BTreeMap<String, SchedulePut>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowYaml {
    #[serde(rename = "type")]
    kind: Option<String>,
    definition: serde_yaml::Value,
    #[serde(default)]
    routes: Vec<RouteYaml>,
    #[serde(default)]
    schedules: BTreeMap<String, SchedulePut>,
}

#[derive(Debug, Default, Deserialize)]
struct WorkflowsOnly {
    #[serde(default)]
    workflows: Option<serde_yaml::Mapping>,
}

/// The workflows of the manifest text, in the file's order; `dir` holds the manifest (file
/// paths are relative to it).
pub fn parse(text: &str, dir: &Path) -> Result<Vec<WorkflowDeployment>> {
    let only: WorkflowsOnly = serde_yaml::from_str(text).unwrap_or_default();
    let Some(map) = only.workflows else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (key, entry) in map {
        let name = match key {
            serde_yaml::Value::String(s) => s,
            other => bail!("workflows: a workflow's name must be text, not {other:?}"),
        };
        let at = format!("workflows.{name}");
        let y: WorkflowYaml = serde_yaml::from_value(entry).with_context(|| at.clone())?;
        let definition = match y.definition {
            serde_yaml::Value::String(s) if s.trim_start().starts_with('{') => {
                serde_json::from_str(&s).with_context(|| format!("{at}.definition"))?
            }
            serde_yaml::Value::String(file) => {
                read_definition(&dir.join(&file)).with_context(|| format!("{at}.definition"))?
            }
            v @ serde_yaml::Value::Mapping(_) => {
                yaml_to_json(v).with_context(|| format!("{at}.definition"))?
            }
            _ => bail!("{at}.definition: expected a mapping (the definition) or a file path"),
        };
        let mut routes = Vec::with_capacity(y.routes.len());
        for RouteYaml(mut spec) in y.routes {
            if !spec.function.is_empty() {
                bail!(
                    "{at}.routes: route '{} {}' names function '{}': a workflow's routes start it",
                    spec.method,
                    spec.path,
                    spec.function
                );
            }
            spec.workflow = Some(name.clone());
            routes.push(spec);
        }
        let mut schedules = y.schedules;
        for (schedule, s) in &mut schedules {
            if !s.function.is_empty() || s.workflow.is_some() {
                bail!("{at}.schedules.{schedule}: a workflow's schedules start it: name no target");
            }
            s.workflow = Some(name.clone());
        }
        out.push(WorkflowDeployment {
            name,
            kind: y.kind.map(|k| k.to_ascii_uppercase()),
            definition,
            routes,
            schedules,
        });
    }
    Ok(out)
}

/// The workflows of `path`'s manifest (a folder holding `lambent.yaml`, or the file), none if
/// there is no manifest.
pub fn resolve(path: &Path) -> Result<Vec<WorkflowDeployment>> {
    let (dir, file) = if path.is_dir() {
        (
            path.to_path_buf(),
            path.join(crate::manifest::MANIFEST_FILE),
        )
    } else if path
        .file_name()
        .is_some_and(|n| n == crate::manifest::MANIFEST_FILE)
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        };
        (dir, path.to_path_buf())
    } else {
        return Ok(Vec::new());
    };
    match std::fs::read_to_string(&file) {
        Ok(text) => parse(&text, &dir).with_context(|| file.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// A definition file: JSON, or YAML (whatever its extension; JSON is tried first).
pub fn read_definition(file: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is neither JSON nor YAML", file.display()))?;
    yaml_to_json(yaml).with_context(|| file.display().to_string())
}

fn yaml_to_json(v: serde_yaml::Value) -> Result<Value> {
    serde_json::to_value(v).context("the definition cannot be written as JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_yaml_json_text_and_files_resolve_to_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("flows")).unwrap();
        std::fs::write(
            dir.path().join("flows/b.yaml"),
            "StartAt: B\nStates:\n  B: {Type: Succeed}\n",
        )
        .unwrap();
        let text = r#"
functions:
  f: {runtime: python3.12}
workflows:
  a:
    type: express
    definition:
      StartAt: P
      States:
        P: {Type: Pass, Result: 1, End: true}
  b:
    definition: flows/b.yaml
    routes: [POST /b, {method: GET, path: "/b/{id}", auth: key}]
    schedules:
      hourly: {rate: 1 hour}
  c:
    definition: '{"StartAt": "C", "States": {"C": {"Type": "Succeed"}}}'
"#;
        let w = parse(text, dir.path()).unwrap();
        assert_eq!(w.len(), 3);
        assert_eq!(
            (w[0].name.as_str(), w[0].kind.as_deref()),
            ("a", Some("EXPRESS"))
        );
        assert_eq!(
            w[0].definition,
            json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": true}}})
        );
        assert_eq!(w[1].kind, None);
        let routes: Vec<_> = w[1]
            .routes
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str(), r.workflow.as_deref()))
            .collect();
        assert_eq!(
            routes,
            [("POST", "/b", Some("b")), ("GET", "/b/{id}", Some("b"))]
        );
        assert!(w[0].routes.is_empty());
        assert_eq!(w[1].schedules["hourly"].workflow.as_deref(), Some("b"));
        assert_eq!(w[1].schedules["hourly"].rate.as_deref(), Some("1 hour"));
        assert_eq!(
            w[1].definition,
            json!({"StartAt": "B", "States": {"B": {"Type": "Succeed"}}})
        );
        assert_eq!(w[2].definition["StartAt"], "C");
        assert!(parse("name: x\n", dir.path()).unwrap().is_empty());
    }

    #[test]
    fn mistakes_name_the_workflow_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let e = parse("workflows:\n  a: {definition: missing.json}\n", dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("workflows.a.definition"), "{e:#}");
        let e = parse("workflows:\n  a: {definition: {}, kind: x}\n", dir.path()).unwrap_err();
        assert!(format!("{e:#}").contains("unknown field `kind`"), "{e:#}");
    }
}
