//! HTTP routes: a method (or `ANY`) and a path template (`/users/{id}`, `/files/{proxy+}`) that
//! map requests on the main listener to a function, with per-route auth, CORS and body limit.
//! [`RouteSpec`] is what a user sends; [`RouteSpec::resolve`] validates it into a [`Route`]
//! that the gateway can compile and serve without further checks.

use crate::FunctionName;
use serde::{Deserialize, Serialize};

/// Path prefixes Lambent serves itself; a route can never claim them.
pub const RESERVED_PREFIXES: &[&str] = &["/v1", "/2015-03-31", "/healthz", "/metrics", "/ui"];
/// Request body limit of a route that sets none (1 MiB).
pub const DEFAULT_ROUTE_MAX_BODY: u64 = 1024 * 1024;
/// Largest body limit a route may set (4 MiB: base64-encoded in the event it still fits the
/// 6 MB synchronous payload limit).
pub const MAX_ROUTE_BODY: u64 = 4 * 1024 * 1024;
/// Methods a route may name, besides `ANY`.
pub const ROUTE_METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
/// The method that matches every method without a route of its own.
pub const ANY_METHOD: &str = "ANY";

/// Why a route is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error(
        "invalid method '{0}': use one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS or ANY"
    )]
    Method(String),
    #[error("invalid route path '{path}': {reason}")]
    Path { path: String, reason: &'static str },
    #[error("the path '{path}' is reserved by Lambent (it serves {prefix} itself): pick a path outside /v1/, /2015-03-31/, /healthz, /metrics and /ui/")]
    Reserved { path: String, prefix: &'static str },
    #[error("max body {0} bytes is out of range: use 1-{MAX_ROUTE_BODY} bytes")]
    MaxBody(u64),
    #[error("invalid CORS setting: {0}")]
    Cors(String),
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Function(#[from] crate::ValidationError),
    #[error("invalid host name '{0}': use DNS labels of 1-63 lower-case letters, digits or '-' (not first or last), separated by dots, at most 253 characters, without a port, the last label starting with a letter")]
    Host(String),
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    /// Public: anyone who reaches the listener.
    #[default]
    None,
    /// An API key of the route's namespace, as `Authorization: Bearer <key>` or `x-api-key`.
    Key,
}

impl RouteAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteAuth::None => "none",
            RouteAuth::Key => "key",
        }
    }
}

impl std::str::FromStr for RouteAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(RouteAuth::None),
            "key" => Ok(RouteAuth::Key),
            other => Err(format!("unknown auth '{other}': use 'none' or 'key'")),
        }
    }
}

/// The API Gateway payload format a route's function receives and answers in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadFormat {
    /// API Gateway REST APIs' Lambda proxy integration (`httpMethod`, `multiValueHeaders`, …).
    #[serde(rename = "1.0")]
    V1,
    /// API Gateway HTTP APIs' format 2.0 (`rawPath`, `requestContext.http`, `cookies`, …).
    #[default]
    #[serde(rename = "2.0")]
    V2,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::V1 => "1.0",
            PayloadFormat::V2 => "2.0",
        }
    }

    fn is_default(&self) -> bool {
        *self == PayloadFormat::V2
    }
}

impl std::str::FromStr for PayloadFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "1.0" | "1" => Ok(PayloadFormat::V1),
            "2.0" | "2" => Ok(PayloadFormat::V2),
            other => Err(format!(
                "unknown payload format '{other}': use '1.0' (REST API) or '2.0' (HTTP API)"
            )),
        }
    }
}

/// CORS settings, answered as API Gateway HTTP APIs do: preflight `OPTIONS` requests get a
/// `204` from the gateway itself, other responses get the `Access-Control-*` headers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cors {
    /// Origins allowed (`*` for any).
    pub allow_origins: Vec<String>,
    /// Methods allowed in preflight answers (`*` for any); empty: the route's method.
    pub allow_methods: Vec<String>,
    /// Request headers allowed (`*` for any).
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
}

impl Cors {
    /// The value of `Access-Control-Allow-Origin` for a request from `origin`, if allowed.
    pub fn allowed_origin(&self, origin: &str) -> Option<String> {
        if self.allow_origins.iter().any(|o| o == origin) {
            Some(origin.to_string())
        } else if self.allow_origins.iter().any(|o| o == "*") {
            // With credentials a browser refuses `*`: name the origin instead.
            Some(if self.allow_credentials {
                origin.to_string()
            } else {
                "*".to_string()
            })
        } else {
            None
        }
    }
}

/// A route as a user writes it (REST body, CLI flags, `lambent.yaml`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    pub method: String,
    pub path: String,
    /// The function it runs; empty when it runs a workflow.
    #[serde(default)]
    pub function: String,
    /// The workflow (state machine) it runs instead of a function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<String>,
    #[serde(default)]
    pub auth: RouteAuth,
    #[serde(default)]
    pub cors: Option<Cors>,
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// The event format the function receives: `"2.0"` (the default) or `"1.0"` (REST API).
    #[serde(default, skip_serializing_if = "PayloadFormat::is_default")]
    pub payload: PayloadFormat,
}

/// A validated route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub id: String,
    pub namespace: String,
    /// Upper case: one of [`ROUTE_METHODS`] or `ANY`.
    pub method: String,
    pub path: String,
    /// Stored and shown as `"function": NAME` or `"workflow": NAME`.
    #[serde(flatten)]
    pub target: RouteTarget,
    pub auth: RouteAuth,
    pub cors: Option<Cors>,
    pub max_body_bytes: u64,
    /// Routes stored before payload formats existed are 2.0.
    #[serde(default)]
    pub payload: PayloadFormat,
    pub created_ms: i64,
}

/// What a route runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteTarget {
    /// A function, with the request as an API Gateway event of the route's [`PayloadFormat`].
    Function(FunctionName),
    /// A workflow (state machine) of the route's namespace, with the request body as the
    /// execution's input (API Gateway's Step Functions integration).
    Workflow(String),
}

impl RouteTarget {
    /// The function's or the workflow's name.
    pub fn name(&self) -> &str {
        match self {
            RouteTarget::Function(f) => f.as_str(),
            RouteTarget::Workflow(w) => w,
        }
    }
}

impl std::fmt::Display for RouteTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RouteTarget::Function(name) => write!(f, "function '{name}'"),
            RouteTarget::Workflow(name) => write!(f, "workflow '{name}'"),
        }
    }
}

/// A host name a namespace claims, in the form requests are matched with: lower case, without
/// a trailing dot. Refuses what is no DNS name (ports, IP addresses, `_`, empty labels).
pub fn claimable_host(host: &str) -> Result<String, RouteError> {
    let name = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let last_ok = name
        .rsplit('.')
        .next()
        .is_some_and(|l| l.starts_with(|c: char| c.is_ascii_lowercase()));
    if name.len() <= 253 && name.split('.').all(label_ok) && last_ok {
        Ok(name)
    } else {
        Err(RouteError::Host(host.chars().take(80).collect()))
    }
}

/// The host name of a request's `Host` (or `:authority`) value as claims are written: without
/// the port, lower case, without a trailing dot. Borrows when nothing changes (the usual case).
pub fn request_host(value: &str) -> std::borrow::Cow<'_, str> {
    let name = match value.strip_prefix('[') {
        // An IPv6 literal: never a claimed name; kept whole up to its bracket.
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => value.split(':').next().unwrap_or(value),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

impl Route {
    /// `GET /users/{id}`: the route key API Gateway puts in events.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The path in `matchit` syntax: `{proxy+}` becomes the catch-all `{*proxy}`.
    pub fn matcher_path(&self) -> String {
        if self.path == "/" {
            return "/".into();
        }
        segments(&self.path)
            .map(|s| match greedy_name(s) {
                Some(name) => format!("/{{*{name}}}"),
                None => format!("/{s}"),
            })
            .collect()
    }
}

impl Route {
    /// The path with its parameters' names dropped (`/users/{}`, `/files/{*}` for a greedy
    /// `{proxy+}`): two routes of one path space with the same method and shape cannot tell
    /// the same requests apart, so the store keeps each (path space, method, shape) unique.
    pub fn shape(&self) -> String {
        if self.path == "/" {
            return "/".into();
        }
        segments(&self.path)
            .map(|s| match (greedy_name(s), param_name(s)) {
                (Some(_), _) => "/{*}".to_string(),
                (None, Some(_)) => "/{}".to_string(),
                (None, None) => format!("/{s}"),
            })
            .collect()
    }
}

impl RouteSpec {
    /// Validates the spec into a route of `namespace`.
    pub fn resolve(
        self,
        id: String,
        namespace: &str,
        created_ms: i64,
    ) -> Result<Route, RouteError> {
        let method = self.method.trim().to_ascii_uppercase();
        if method != ANY_METHOD && !ROUTE_METHODS.contains(&method.as_str()) {
            return Err(RouteError::Method(self.method));
        }
        check_path(&self.path)?;
        let target = match (self.function.is_empty(), self.workflow) {
            (false, None) => RouteTarget::Function(FunctionName::parse(&self.function)?),
            (true, Some(w)) => {
                let bad = w.is_empty()
                    || w.chars().count() > 80
                    || w.chars()
                        .any(|c| c.is_whitespace() || c.is_control() || c == '/');
                if bad {
                    return Err(RouteError::Target(format!(
                        "invalid workflow name '{w}': 1-80 characters, no spaces or '/'"
                    )));
                }
                RouteTarget::Workflow(w)
            }
            _ => {
                return Err(RouteError::Target(
                    "a route runs exactly one function or one workflow: name one".into(),
                ))
            }
        };
        let max_body_bytes = self.max_body_bytes.unwrap_or(DEFAULT_ROUTE_MAX_BODY);
        if max_body_bytes == 0 || max_body_bytes > MAX_ROUTE_BODY {
            return Err(RouteError::MaxBody(max_body_bytes));
        }
        if let Some(cors) = &self.cors {
            check_cors(cors)?;
        }
        Ok(Route {
            id,
            namespace: namespace.to_string(),
            method,
            path: self.path,
            target,
            auth: self.auth,
            cors: self.cors,
            max_body_bytes,
            payload: self.payload,
            created_ms,
        })
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// `proxy` for a `{proxy+}` segment.
fn greedy_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix("+}")
}

fn param_name(segment: &str) -> Option<&str> {
    segment.strip_prefix('{')?.strip_suffix('}')
}

fn check_path(path: &str) -> Result<(), RouteError> {
    let bad = |reason| RouteError::Path {
        path: path.chars().take(200).collect(),
        reason,
    };
    if !path.starts_with('/') {
        return Err(bad("it must start with '/'"));
    }
    if path.len() > 1024 {
        return Err(bad("it is longer than 1024 characters"));
    }
    for prefix in RESERVED_PREFIXES {
        if path == *prefix || path.starts_with(&format!("{prefix}/")) {
            return Err(RouteError::Reserved {
                path: path.to_string(),
                prefix,
            });
        }
    }
    if path == "/" {
        return Ok(());
    }
    let all: Vec<&str> = segments(path).collect();
    let mut names: Vec<&str> = Vec::new();
    for (i, s) in all.iter().enumerate() {
        if s.is_empty() {
            return Err(bad("empty segment ('//' or a trailing '/')"));
        }
        let name = if let Some(name) = greedy_name(s) {
            if i + 1 != all.len() {
                return Err(bad("a greedy {name+} segment must be the last one"));
            }
            Some(name)
        } else if let Some(name) = param_name(s) {
            Some(name)
        } else if s.contains(['{', '}']) {
            return Err(bad(
                "'{' and '}' only enclose a whole segment such as {id} or {proxy+}",
            ));
        } else if s
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '*'))
        {
            return Err(bad("it has whitespace or one of '?', '#', '*'"));
        } else {
            None
        };
        if let Some(name) = name {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
            if !ok {
                return Err(bad("parameter names use letters, digits, '_', '-' and '.'"));
            }
            if names.contains(&name) {
                return Err(bad("a parameter name appears twice"));
            }
            names.push(name);
        }
    }
    Ok(())
}

fn check_cors(cors: &Cors) -> Result<(), RouteError> {
    if cors.allow_origins.is_empty() {
        return Err(RouteError::Cors(
            "allow_origins is empty: name at least one origin (or '*')".into(),
        ));
    }
    if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
        return Err(RouteError::Cors(
            "allow_credentials cannot be combined with the origin '*': name the origins".into(),
        ));
    }
    for m in &cors.allow_methods {
        let m = m.to_ascii_uppercase();
        if m != "*" && !ROUTE_METHODS.contains(&m.as_str()) {
            return Err(RouteError::Cors(format!(
                "unknown method '{m}' in allow_methods"
            )));
        }
    }
    let texts = cors
        .allow_origins
        .iter()
        .chain(&cors.allow_headers)
        .chain(&cors.expose_headers);
    for t in texts {
        if t.is_empty() || t.chars().any(|c| c.is_control() || c == ',') {
            return Err(RouteError::Cors(format!(
                "'{t}' is not a valid origin or header name"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn claimable_hosts_are_dns_names_in_lower_case() {
        for (given, wanted) in [
            ("api.team-a.example", "api.team-a.example"),
            ("API.Team-A.Example.", "api.team-a.example"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(claimable_host(given).unwrap(), wanted);
        }
        let long = format!("{}.example", "a".repeat(64));
        for bad in [
            "",
            "a..b",
            "-a.example",
            "a-.example",
            "a_b.example",
            "a.example:8080",
            "10.0.0.1",
            "[::1]",
            "a b",
            &long,
        ] {
            assert!(claimable_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_host_loses_its_port_case_and_trailing_dot() {
        assert_eq!(request_host("api.a.example:8080"), "api.a.example");
        assert_eq!(request_host("API.A.example."), "api.a.example");
        assert_eq!(request_host("[::1]:80"), "::1");
        assert!(matches!(
            request_host("api.a.example"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
    use super::*;

    fn spec(method: &str, path: &str) -> RouteSpec {
        RouteSpec {
            method: method.into(),
            path: path.into(),
            function: "f".into(),
            ..Default::default()
        }
    }

    fn resolve(method: &str, path: &str) -> Result<Route, RouteError> {
        spec(method, path).resolve("r1".into(), "default", 0)
    }

    #[test]
    fn templates_become_matcher_paths() {
        let r = resolve("get", "/users/{id}/files/{proxy+}").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.key(), "GET /users/{id}/files/{proxy+}");
        assert_eq!(r.matcher_path(), "/users/{id}/files/{*proxy}");
        assert_eq!(resolve("ANY", "/").unwrap().matcher_path(), "/");
        assert_eq!(
            resolve("ANY", "/{proxy+}").unwrap().matcher_path(),
            "/{*proxy}"
        );
        assert_eq!(
            resolve("GET", "/a/b").unwrap().max_body_bytes,
            DEFAULT_ROUTE_MAX_BODY
        );
    }

    #[test]
    fn a_shape_drops_the_names_of_parameters() {
        let shape = |path| resolve("GET", path).unwrap().shape();
        assert_eq!(shape("/users/{id}/files/{proxy+}"), "/users/{}/files/{*}");
        assert_eq!(
            shape("/users/{name}/files/{rest+}"),
            shape("/users/{id}/files/{p+}")
        );
        assert_eq!(shape("/"), "/");
        assert_eq!(shape("/a/b"), "/a/b");
        assert_ne!(shape("/a/{x}"), shape("/a/{x+}"));
    }

    #[test]
    fn a_route_runs_one_function_or_one_workflow_stored_as_either_key() {
        let r = resolve("POST", "/orders").unwrap();
        let stored = serde_json::to_value(&r).unwrap();
        assert_eq!(stored["function"], "f");
        assert!(stored.get("workflow").is_none());
        let w = RouteSpec {
            workflow: Some("orders".into()),
            function: String::new(),
            ..spec("POST", "/orders")
        }
        .resolve("r2".into(), "default", 0)
        .unwrap();
        assert_eq!(w.target, RouteTarget::Workflow("orders".into()));
        let stored = serde_json::to_value(&w).unwrap();
        assert_eq!(stored["workflow"], "orders");
        assert!(stored.get("function").is_none());
        let back: Route = serde_json::from_value(stored).unwrap();
        assert_eq!(back, w);
        for (function, workflow) in [("f", Some("w")), ("", None), ("", Some("a b"))] {
            let bad = RouteSpec {
                function: function.into(),
                workflow: workflow.map(String::from),
                ..spec("GET", "/x")
            };
            assert!(
                matches!(
                    bad.resolve("r".into(), "default", 0),
                    Err(RouteError::Target(_))
                ),
                "{function} {workflow:?}"
            );
        }
    }

    #[test]
    fn payload_formats_default_to_2_and_old_routes_read_as_2() {
        let r = resolve("GET", "/a").unwrap();
        assert_eq!(r.payload, PayloadFormat::V2);
        let mut stored = serde_json::to_value(&r).unwrap();
        stored.as_object_mut().unwrap().remove("payload");
        let back: Route = serde_json::from_value(stored).unwrap();
        assert_eq!(back.payload, PayloadFormat::V2);
        let spec: RouteSpec = serde_json::from_value(
            serde_json::json!({"method": "GET", "path": "/a", "function": "f", "payload": "1.0"}),
        )
        .unwrap();
        let r = spec.resolve("r".into(), "default", 0).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap()["payload"], "1.0");
        assert_eq!("1".parse::<PayloadFormat>(), Ok(PayloadFormat::V1));
        assert!("3.0".parse::<PayloadFormat>().is_err());
        assert!(serde_json::from_value::<RouteSpec>(
            serde_json::json!({"method": "GET", "path": "/a", "function": "f", "payload": "3.0"})
        )
        .is_err());
    }

    #[test]
    fn reserved_prefixes_are_refused() {
        for p in [
            "/v1",
            "/v1/functions",
            "/2015-03-31/functions/x",
            "/healthz",
            "/metrics",
            "/ui/x",
        ] {
            assert!(
                matches!(resolve("GET", p), Err(RouteError::Reserved { .. })),
                "{p}"
            );
        }
        // Only whole segments are reserved.
        assert!(resolve("GET", "/v1beta/x").is_ok());
        assert!(resolve("GET", "/uix").is_ok());
    }

    #[test]
    fn bad_paths_and_methods_say_why() {
        for p in [
            "users", "/a//b", "/a/", "/{p+}/x", "/a{b}", "/{}", "/{a}/{a}", "/a b", "/a?x",
        ] {
            assert!(
                matches!(resolve("GET", p), Err(RouteError::Path { .. })),
                "{p}"
            );
        }
        assert!(matches!(resolve("FETCH", "/a"), Err(RouteError::Method(_))));
        let mut s = spec("GET", "/a");
        s.max_body_bytes = Some(MAX_ROUTE_BODY + 1);
        assert!(matches!(
            s.resolve("r".into(), "d", 0),
            Err(RouteError::MaxBody(_))
        ));
        let mut s = spec("GET", "/a");
        s.function = "bad name".into();
        assert!(matches!(
            s.resolve("r".into(), "d", 0),
            Err(RouteError::Function(_))
        ));
    }

    #[test]
    fn cors_origins() {
        let cors = Cors {
            allow_origins: vec!["https://a.example".into()],
            ..Default::default()
        };
        assert_eq!(
            cors.allowed_origin("https://a.example").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(cors.allowed_origin("https://b.example"), None);
        let any = Cors {
            allow_origins: vec!["*".into()],
            ..Default::default()
        };
        assert_eq!(
            any.allowed_origin("https://b.example").as_deref(),
            Some("*")
        );
        let mut s = spec("GET", "/a");
        s.cors = Some(Cors::default());
        assert!(matches!(
            s.resolve("r".into(), "d", 0),
            Err(RouteError::Cors(_))
        ));
    }
}
