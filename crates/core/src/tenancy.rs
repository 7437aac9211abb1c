//! Tenants: namespaces with their settings, the roles a key of a namespace carries, and what
//! each role may do (pure rules; where they are enforced is the gateway's access table), and
//! each namespace's share of the machine ([`limits`]).

pub mod limits;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who a key speaks for. `Operator` is the installation's operator key (every namespace, and
/// the namespaces themselves); the others are keys of one namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    /// Everything in the namespace, its keys and its audit log included.
    Owner,
    /// Functions, routes, events and state: read, write and invoke.
    Deployer,
    /// Invokes functions and sends events (queue messages, topic publishes, executions) only.
    Invoker,
    /// Reads records, logs, metrics and usage only.
    Viewer,
}

/// The roles a namespace's keys can be given (the operator's is not one of them).
pub const NAMESPACE_ROLES: [Role; 4] = [Role::Owner, Role::Deployer, Role::Invoker, Role::Viewer];

/// What an operation needs: the access table of the gateway gives every route one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Reads the namespace's records, logs, metrics, usage.
    Read,
    /// Creates, changes or deletes the namespace's resources (or consumes its messages).
    Write,
    /// Runs something: invokes a function, sends a message, publishes, starts an execution.
    Invoke,
    /// Manages the namespace's keys and reads its audit log.
    Manage,
    /// Manages namespaces: the operator key only.
    Operate,
}

impl Role {
    /// Whether a key of this role may do what `access` names.
    pub fn may(self, access: Access) -> bool {
        use Access::*;
        match self {
            Role::Operator => true,
            Role::Owner => access != Operate,
            Role::Deployer => matches!(access, Read | Write | Invoke),
            Role::Invoker => access == Invoke,
            Role::Viewer => access == Read,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Owner => "owner",
            Role::Deployer => "deployer",
            Role::Invoker => "invoker",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
            Access::Invoke => "invoke",
            Access::Manage => "manage",
            Access::Operate => "operate",
        }
    }
}

/// A role name that is none of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role '{0}': use owner, deployer, invoker or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        match s {
            "operator" => Ok(Role::Operator),
            "owner" => Ok(Role::Owner),
            "deployer" => Ok(Role::Deployer),
            "invoker" => Ok(Role::Invoker),
            "viewer" => Ok(Role::Viewer),
            other => Err(UnknownRole(other.chars().take(40).collect())),
        }
    }
}

/// A namespace's limits and budget. Every setting is optional: unset means the node's default
/// (concurrency, memory) or no limit (counts, storage, budget).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSettings {
    /// Concurrent invocations of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Memory its sandboxes may hold at once, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_functions: Option<u32>,
    /// Bytes of objects, table items and queue messages it may store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<u64>,
    /// Monthly budget in US dollars.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_budget_usd: Option<f64>,
    /// A hard budget refuses invocations once spent; a soft one only warns.
    #[serde(default)]
    pub budget_hard: bool,
}

/// A namespace as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub name: String,
    pub settings: NamespaceSettings,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// Why a namespace's name or settings were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TenancyError {
    #[error("invalid namespace name '{0}': use 1-40 lower-case letters, digits or '-', starting with a letter")]
    InvalidName(String),
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("monthly budget {0} is not a positive amount of US dollars")]
    Budget(f64),
}

/// Checks a namespace's name: it appears in ARNs (as the account) and in host names.
pub fn validate_namespace_name(name: &str) -> Result<(), TenancyError> {
    let ok = (1..=40).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(TenancyError::InvalidName(name.chars().take(60).collect()))
    }
}

impl NamespaceSettings {
    /// Refuses zero limits and budgets that are no amount.
    pub fn validate(&self) -> Result<(), TenancyError> {
        let zero = |v: Option<u64>, what| match v {
            Some(0) => Err(TenancyError::Zero(what)),
            _ => Ok(()),
        };
        zero(self.concurrency.map(u64::from), "concurrency")?;
        zero(self.memory_budget_mb, "the memory budget")?;
        zero(self.max_functions.map(u64::from), "max functions")?;
        zero(self.storage_quota_bytes, "the storage quota")?;
        if let Some(usd) = self.monthly_budget_usd {
            if !usd.is_finite() || usd <= 0.0 {
                return Err(TenancyError::Budget(usd));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_may_exactly_its_operations() {
        use Access::*;
        let all = [Read, Write, Invoke, Manage, Operate];
        let allowed = |r: Role| all.into_iter().filter(|a| r.may(*a)).collect::<Vec<_>>();
        assert_eq!(allowed(Role::Operator), all.to_vec());
        assert_eq!(allowed(Role::Owner), vec![Read, Write, Invoke, Manage]);
        assert_eq!(allowed(Role::Deployer), vec![Read, Write, Invoke]);
        assert_eq!(allowed(Role::Invoker), vec![Invoke]);
        assert_eq!(allowed(Role::Viewer), vec![Read]);
    }

    #[test]
    fn roles_read_back_from_their_names() {
        for r in NAMESPACE_ROLES.into_iter().chain([Role::Operator]) {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn namespace_names_fit_arns_and_host_names() {
        for good in ["default", "team-a", "t1"] {
            assert!(validate_namespace_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Team", "1team", "team-", "a_b", "a.b", &"a".repeat(41)] {
            assert!(validate_namespace_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn zero_limits_and_negative_budgets_are_refused() {
        let ok = NamespaceSettings {
            concurrency: Some(10),
            monthly_budget_usd: Some(5.5),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let zero = NamespaceSettings {
            max_functions: Some(0),
            ..Default::default()
        };
        assert_eq!(zero.validate(), Err(TenancyError::Zero("max functions")));
        let neg = NamespaceSettings {
            monthly_budget_usd: Some(-1.0),
            ..Default::default()
        };
        assert!(neg.validate().is_err());
    }
}
