//! Runtimes a function can use, and the AWS runtime identifiers accepted as aliases.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the platform starts a function's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// The machine's python3 with Lambent's Python runtime client.
    Python,
    /// The machine's node with Lambent's Node.js runtime client.
    Nodejs,
    /// The code's own `bootstrap` executable speaking the Runtime API.
    Provided,
    /// No code of its own: a sequence runs its components one after the other (see
    /// [`crate::function::FunctionConfig::sequence`]).
    Sequence,
}

impl RuntimeKind {
    /// The lower-case name (`python`, `nodejs`, `provided`), as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Python => "python",
            RuntimeKind::Nodejs => "nodejs",
            RuntimeKind::Provided => "provided",
            RuntimeKind::Sequence => "sequence",
        }
    }
}

/// A runtime as the user named it (`python3.12`, `nodejs20.x`, `provided.al2023`, `python`, …),
/// resolved to the [`RuntimeKind`] that runs it. The name is kept so that `AWS_EXECUTION_ENV` and
/// API responses echo what the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Runtime {
    name: String,
    kind: RuntimeKind,
}

impl Runtime {
    pub fn kind(&self) -> RuntimeKind {
        self.kind
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Whether functions of this runtime need a `module.function` handler.
    pub fn needs_handler(&self) -> bool {
        matches!(self.kind, RuntimeKind::Python | RuntimeKind::Nodejs)
    }

    /// The runtime of sequences (`sequence`): not one a user names for a function of code,
    /// so [`str::parse`] refuses it; stored sequences deserialize to it.
    pub fn sequence() -> Runtime {
        Runtime {
            name: RuntimeKind::Sequence.as_str().to_string(),
            kind: RuntimeKind::Sequence,
        }
    }
}

/// The runtime names Lambent accepts, for error messages and docs.
pub const ACCEPTED_RUNTIMES: &str =
    "python, python3.8 … python3.13, nodejs, nodejs18.x, nodejs20.x, \
nodejs22.x, provided, provided.al2, provided.al2023";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime '{0}': use one of {ACCEPTED_RUNTIMES}")]
pub struct UnknownRuntime(pub String);

impl FromStr for Runtime {
    type Err = UnknownRuntime;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let kind = match s {
            "python" | "python3" => RuntimeKind::Python,
            "nodejs" | "node" => RuntimeKind::Nodejs,
            "provided" | "provided.al2" | "provided.al2023" => RuntimeKind::Provided,
            s if s
                .strip_prefix("python3.")
                .and_then(|minor| minor.parse::<u32>().ok())
                .is_some_and(|minor| (8..=13).contains(&minor)) =>
            {
                RuntimeKind::Python
            }
            "nodejs18.x" | "nodejs20.x" | "nodejs22.x" => RuntimeKind::Nodejs,
            _ => return Err(UnknownRuntime(s.to_string())),
        };
        Ok(Runtime {
            name: s.to_string(),
            kind,
        })
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for Runtime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Runtime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == RuntimeKind::Sequence.as_str() {
            return Ok(Runtime::sequence());
        }
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_names_are_aliases() {
        for (name, kind) in [
            ("python3.12", RuntimeKind::Python),
            ("python", RuntimeKind::Python),
            ("nodejs20.x", RuntimeKind::Nodejs),
            ("provided.al2023", RuntimeKind::Provided),
        ] {
            let rt: Runtime = name.parse().unwrap();
            assert_eq!(rt.kind(), kind);
            assert_eq!(rt.name(), name);
        }
    }

    #[test]
    fn unknown_runtime_names_the_accepted_ones() {
        let err = "ruby3.2".parse::<Runtime>().unwrap_err();
        assert!(err.to_string().contains("unknown runtime 'ruby3.2'"));
        assert!(err.to_string().contains("nodejs20.x"));
        assert!("python3.99".parse::<Runtime>().is_err());
    }

    #[test]
    fn sequence_is_stored_but_not_named_by_users() {
        assert!("sequence".parse::<Runtime>().is_err());
        let stored = serde_json::to_string(&Runtime::sequence()).unwrap();
        let back: Runtime = serde_json::from_str(&stored).unwrap();
        assert_eq!(back.kind(), RuntimeKind::Sequence);
        assert!(!back.needs_handler());
    }
}
