//! Who may do what: one declarative table of every route the listener serves (method and
//! path as the router spells it) and what it needs, and the AWS adapters' rule for their
//! actions. The API-key gate ([`crate::require_key`]), the Lambda API's signature gate and
//! the console's session gate ask [`need`]; a route without a rule is refused (and the
//! table-driven test over the real router fails), so a new route cannot go unguarded.

pub use lambent_core::tenancy::{Access, Role};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No API key: the route authenticates its own way (the cluster's link, the console's
    /// sign-in and pages) or is public (`/healthz`).
    Open,
    /// A key whose role may do this.
    Key(Access),
    /// Any valid key, whatever its role (`/v1/whoami`).
    AnyKey,
    /// [`Access::Read`] when the last path segment is one of these operations, else
    /// [`Access::Write`] (`/v1/tables/{name}/{operation}`).
    ReadOps(&'static [&'static str]),
}

/// One rule: an HTTP method (`GET` also covers `HEAD`) and a route path as registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub need: Need,
}

const fn rule(method: &'static str, path: &'static str, need: Need) -> Rule {
    Rule { method, path, need }
}

use Access::{Invoke, Manage, Operate, Read, Write};
const R: Need = Need::Key(Read);
const W: Need = Need::Key(Write);
const I: Need = Need::Key(Invoke);
const M: Need = Need::Key(Manage);
const O: Need = Need::Key(Operate);

/// DynamoDB operations of `/v1/tables/{name}/{operation}` that only read.
pub const TABLE_READ_OPERATIONS: &[&str] = &["GetItem", "Query", "Scan", "DescribeTimeToLive"];

/// Every route of the listener and what it needs.
pub const RULES: &[Rule] = &[
    rule("GET", "/healthz", Need::Open),
    rule("GET", "/v1/cluster/link", Need::Open),
    rule("GET", "/metrics", R),
    // Namespaces (the operator's), keys and the audit log (owners').
    rule("GET", "/v1/namespaces", O),
    rule("POST", "/v1/namespaces", O),
    rule("GET", "/v1/namespaces/{name}", O),
    rule("PATCH", "/v1/namespaces/{name}", O),
    rule("DELETE", "/v1/namespaces/{name}", O),
    rule("POST", "/v1/namespaces/{name}/hosts", O),
    rule("DELETE", "/v1/namespaces/{name}/hosts/{host}", O),
    rule("GET", "/v1/whoami", Need::AnyKey),
    rule("GET", "/v1/api-keys", M),
    rule("POST", "/v1/api-keys", M),
    rule("DELETE", "/v1/api-keys/{id}", M),
    rule("POST", "/v1/api-keys/{id}/rotate", M),
    rule("GET", "/v1/keys", M),
    rule("POST", "/v1/keys", M),
    rule("DELETE", "/v1/keys/{access_key_id}", M),
    rule("POST", "/v1/keys/{access_key_id}/rotate", M),
    rule("GET", "/v1/audit", M),
    // Functions, code, records.
    rule("POST", "/v1/code", W),
    rule("GET", "/v1/code/{sha256}", R),
    rule("HEAD", "/v1/code/{sha256}", R),
    rule("GET", "/v1/functions", R),
    rule("GET", "/v1/functions/{name}", R),
    rule("PUT", "/v1/functions/{name}", W),
    rule("DELETE", "/v1/functions/{name}", W),
    rule("POST", "/v1/functions/{name}/invoke", I),
    rule("GET", "/v1/functions/{name}/logs", R),
    rule("POST", "/v1/functions/{name}/versions", W),
    rule("GET", "/v1/functions/{name}/aliases", R),
    rule("PUT", "/v1/functions/{name}/aliases/{alias}", W),
    rule("GET", "/v1/activations", R),
    rule("GET", "/v1/activations/{id}", R),
    rule("GET", "/v1/usage", R),
    rule("GET", "/v1/usage/transitions", R),
    rule("GET", "/v1/nodes", R),
    rule("GET", "/v1/traces/{trace_id}", R),
    rule("GET", "/v1/sequences", R),
    rule("GET", "/v1/sequences/{name}", R),
    rule("PUT", "/v1/sequences/{name}", W),
    rule("DELETE", "/v1/sequences/{name}", W),
    // Events.
    rule("GET", "/v1/async", R),
    rule("GET", "/v1/dlq", R),
    rule("POST", "/v1/dlq/redrive", W),
    rule("GET", "/v1/dlq/{id}", R),
    rule("POST", "/v1/dlq/{id}/redrive", W),
    rule("GET", "/v1/schedules", R),
    rule("POST", "/v1/schedules", W),
    rule("GET", "/v1/schedules/{name}", R),
    rule("PUT", "/v1/schedules/{name}", W),
    rule("DELETE", "/v1/schedules/{name}", W),
    rule("GET", "/v1/routes", R),
    rule("POST", "/v1/routes", W),
    rule("GET", "/v1/routes/{id}", R),
    rule("DELETE", "/v1/routes/{id}", W),
    rule("GET", "/v1/queues", R),
    rule("POST", "/v1/queues", W),
    rule("GET", "/v1/queues/{name}", R),
    rule("DELETE", "/v1/queues/{name}", W),
    rule("POST", "/v1/queues/{name}/messages", I),
    rule("POST", "/v1/queues/{name}/receive", W),
    rule("POST", "/v1/queues/{name}/delete", W),
    rule("POST", "/v1/queues/{name}/visibility", W),
    rule("POST", "/v1/queues/{name}/purge", W),
    rule("POST", "/v1/queues/{name}/redrive", W),
    rule("GET", "/v1/topics", R),
    rule("POST", "/v1/topics", W),
    rule("DELETE", "/v1/topics/{name}", W),
    rule("GET", "/v1/topics/{name}/subscriptions", R),
    rule("POST", "/v1/topics/{name}/subscriptions", W),
    rule("POST", "/v1/topics/{name}/publish", I),
    rule("DELETE", "/v1/subscriptions/{id}", W),
    rule("GET", "/v1/mappings", R),
    rule("POST", "/v1/mappings", W),
    rule("DELETE", "/v1/mappings/{id}", W),
    // State.
    rule("GET", "/v1/buckets", R),
    rule("PUT", "/v1/buckets/{bucket}", W),
    rule("DELETE", "/v1/buckets/{bucket}", W),
    rule("GET", "/v1/buckets/{bucket}/objects", R),
    rule("GET", "/v1/buckets/{bucket}/objects/{*key}", R),
    rule("HEAD", "/v1/buckets/{bucket}/objects/{*key}", R),
    rule("PUT", "/v1/buckets/{bucket}/objects/{*key}", W),
    rule("DELETE", "/v1/buckets/{bucket}/objects/{*key}", W),
    rule("GET", "/v1/buckets/{bucket}/notification", R),
    rule("PUT", "/v1/buckets/{bucket}/notification", W),
    rule("GET", "/v1/tables", R),
    rule("GET", "/v1/tables/{name}", R),
    rule("PUT", "/v1/tables/{name}", W),
    rule("DELETE", "/v1/tables/{name}", W),
    rule(
        "POST",
        "/v1/tables/{name}/{operation}",
        Need::ReadOps(TABLE_READ_OPERATIONS),
    ),
    rule("GET", "/v1/workflows", R),
    rule("GET", "/v1/workflows/{name}", R),
    rule("PUT", "/v1/workflows/{name}", W),
    rule("DELETE", "/v1/workflows/{name}", W),
    rule("GET", "/v1/workflows/{name}/executions", R),
    rule("POST", "/v1/workflows/{name}/executions", I),
    rule("GET", "/v1/workflows/{name}/executions/{execution}", R),
    rule(
        "GET",
        "/v1/workflows/{name}/executions/{execution}/history",
        R,
    ),
    rule(
        "POST",
        "/v1/workflows/{name}/executions/{execution}/stop",
        W,
    ),
    // The Lambda API (SigV4).
    rule("GET", "/2015-03-31/functions", R),
    rule("GET", "/2015-03-31/functions/", R),
    rule("POST", "/2015-03-31/functions", W),
    rule("GET", "/2015-03-31/functions/{name}", R),
    rule("DELETE", "/2015-03-31/functions/{name}", W),
    rule("GET", "/2015-03-31/functions/{name}/configuration", R),
    rule("PUT", "/2015-03-31/functions/{name}/configuration", W),
    rule("PUT", "/2015-03-31/functions/{name}/code", W),
    rule("POST", "/2015-03-31/functions/{name}/invocations", I),
    rule("GET", "/2015-03-31/functions/{name}/versions", R),
    rule("POST", "/2015-03-31/functions/{name}/versions", W),
    rule("GET", "/2015-03-31/functions/{name}/aliases", R),
    rule("POST", "/2015-03-31/functions/{name}/aliases", W),
    rule("GET", "/2015-03-31/functions/{name}/aliases/{alias}", R),
    rule("PUT", "/2015-03-31/functions/{name}/aliases/{alias}", W),
    rule("DELETE", "/2015-03-31/functions/{name}/aliases/{alias}", W),
    rule("PUT", "/2017-10-31/functions/{name}/concurrency", W),
    rule("DELETE", "/2017-10-31/functions/{name}/concurrency", W),
    rule("GET", "/2019-09-30/functions/{name}/concurrency", R),
    rule(
        "GET",
        "/2019-09-30/functions/{name}/provisioned-concurrency",
        R,
    ),
    rule(
        "PUT",
        "/2019-09-30/functions/{name}/provisioned-concurrency",
        W,
    ),
    rule(
        "DELETE",
        "/2019-09-30/functions/{name}/provisioned-concurrency",
        W,
    ),
    rule("GET", "/2015-03-31/event-source-mappings", R),
    rule("GET", "/2015-03-31/event-source-mappings/", R),
    rule("POST", "/2015-03-31/event-source-mappings", W),
    rule("POST", "/2015-03-31/event-source-mappings/", W),
    rule("GET", "/2015-03-31/event-source-mappings/{uuid}", R),
    rule("PUT", "/2015-03-31/event-source-mappings/{uuid}", W),
    rule("DELETE", "/2015-03-31/event-source-mappings/{uuid}", W),
    // The console: pages and sign-in are open; its data needs a session of a reading role
    // (the pass-through to `/v1` is checked again there, by the inner route's rule).
    rule("GET", "/ui", Need::Open),
    rule("GET", "/ui/", Need::Open),
    rule("GET", "/ui/login", Need::Open),
    rule("GET", "/ui/assets/{*file}", Need::Open),
    rule("GET", "/ui/{*page}", Need::Open),
    rule("POST", "/ui/api/session", Need::Open),
    rule("GET", "/ui/api/session", Need::Open),
    rule("DELETE", "/ui/api/session", Need::Open),
    rule("GET", "/ui/api/overview", R),
    rule("GET", "/ui/api/functions/{name}", R),
    rule("GET", "/ui/api/tail", R),
    rule("*", "/ui/api/v1/{*rest}", Need::Open),
];

/// The rule of a request's method and matched route path; `None`: the route has no rule
/// (refused by every gate).
pub fn rule_of(method: &str, route_path: &str) -> Option<&'static Rule> {
    let find = |m: &str| {
        RULES
            .iter()
            .find(|r| (r.method == m || r.method == "*") && r.path == route_path)
    };
    find(method).or_else(|| (method == "HEAD").then(|| find("GET")).flatten())
}

/// What a request needs, resolved for the request's own path: `None` when the route has no
/// rule; `Some(None)` when it needs no key or any key; else the access its key's role needs.
pub fn need(method: &str, route_path: &str, path: &str) -> Option<Option<Access>> {
    rule_of(method, route_path).map(|r| match r.need {
        Need::Open | Need::AnyKey => None,
        Need::Key(a) => Some(a),
        Need::ReadOps(ops) => {
            let last = path.rsplit('/').next().unwrap_or("");
            Some(if ops.contains(&last) { Read } else { Write })
        }
    })
}

/// The access an AWS action needs: `invoke_actions` run something (Invoke, SendMessage,
/// Publish, StartExecution); names that describe, list, get, head, query or scan read; the
/// rest write.
pub fn aws_action(action: &str, invoke_actions: &[&str]) -> Access {
    const READ_PREFIXES: &[&str] = &[
        "Get",
        "List",
        "Describe",
        "Head",
        "Query",
        "Scan",
        "BatchGet",
        "TransactGet",
    ];
    if invoke_actions.contains(&action) {
        Invoke
    } else if READ_PREFIXES.iter().any(|p| action.starts_with(p)) {
        Read
    } else {
        Write
    }
}

/// The refusal's message when `role` may not do what `access` names.
pub fn refusal(role: Role, access: Access) -> String {
    format!(
        "a key of role '{role}' may not {} here",
        match access {
            Read => "read",
            Write => "change resources",
            Invoke => "invoke or send events",
            Manage => "manage keys or read the audit log",
            Operate => "manage namespaces (the operator key may)",
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_is_unique() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn head_reads_as_get_and_table_operations_by_name() {
        assert_eq!(
            need("HEAD", "/v1/functions/{name}", "/v1/functions/f"),
            Some(Some(Read))
        );
        let op = "/v1/tables/{name}/{operation}";
        assert_eq!(need("POST", op, "/v1/tables/t/Query"), Some(Some(Read)));
        assert_eq!(need("POST", op, "/v1/tables/t/PutItem"), Some(Some(Write)));
        assert_eq!(
            need("PATCH", "/v1/functions/{name}", "/v1/functions/f"),
            None
        );
        assert_eq!(need("GET", "/healthz", "/healthz"), Some(None));
    }

    #[test]
    fn aws_actions_map_to_read_write_and_invoke() {
        assert_eq!(aws_action("SendMessage", &["SendMessage"]), Invoke);
        assert_eq!(aws_action("ReceiveMessage", &["SendMessage"]), Write);
        assert_eq!(aws_action("GetQueueUrl", &[]), Read);
        assert_eq!(aws_action("ListTopics", &[]), Read);
        assert_eq!(aws_action("DeleteTable", &[]), Write);
        assert_eq!(aws_action("BatchGetItem", &[]), Read);
    }
}
