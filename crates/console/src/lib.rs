//! The web console at `/ui/`: its pages and assets (embedded in the binary at build time, no
//! CDN), sign-in sessions with CSRF protection ([`session`]), the aggregate endpoints the pages
//! draw from ([`metrics`], over the store's activation rollups), the live tail of logs (SSE)
//! and a same-namespace pass-through to the `/v1` API, so the page never holds an API key.
//!
//! Routes (all under `/ui`):
//! - `GET /ui/login`, `GET /ui/assets/{file}`: public.
//! - `POST /ui/api/session` (`{"key"}`) signs in, `DELETE /ui/api/session` signs out,
//!   `GET /ui/api/session` says who is signed in.
//! - `GET /ui/api/overview?window=1h|24h|7d`, `GET /ui/api/functions/{name}?window=`,
//!   `GET /ui/api/tail?function=` (Server-Sent Events).
//! - `/ui/api/v1/…`: the `/v1` API as the session's namespace (traces included, once the
//!   server has `GET /v1/traces/{trace_id}`).
//! - the pages (`/ui/`, `/ui/functions/{name}`, `/ui/invocations`, `/ui/invocations/{id}`,
//!   `/ui/logs`, `/ui/sources`, `/ui/workflows[/{name}[/executions/{execution}]]`,
//!   `/ui/cluster`): one shell whose script draws the page from the endpoints above; without
//!   a session they redirect to the sign-in page.
//!
//! Every response carries a strict Content-Security-Policy (no inline script or style).

mod assets;
pub mod metrics;
pub mod session;
mod tail;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use lambent_gateway::{App, Principal};
use metrics::Window;
use serde::Deserialize;
use serde_json::{json, Value};
use session::{Refusal, Session, Sessions};
use std::sync::Arc;
use tower::ServiceExt;

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'";

/// What the console's handlers share.
pub struct Console {
    app: Arc<App>,
    /// The `/v1` API, called in-process with the session's namespace.
    api: Router,
    sessions: Sessions,
}

type Shared = State<Arc<Console>>;

/// The console's routes, to merge into the listener's router. `api` serves `/v1` (the
/// gateway's router with whatever the server adds to it).
pub fn router(app: Arc<App>, api: Router) -> Router {
    let console = Arc::new(Console {
        app,
        api,
        sessions: Sessions::default(),
    });
    let with_session = Router::new()
        .route("/ui/api/session", get(whoami).delete(sign_out))
        .route("/ui/api/overview", get(overview))
        .route("/ui/api/functions/{name}", get(function))
        .route("/ui/api/tail", get(tail::tail))
        .route("/ui/api/v1/{*rest}", axum::routing::any(pass_through))
        .route_layer(axum::middleware::from_fn_with_state(
            console.clone(),
            require_session,
        ))
        .layer(axum::middleware::from_fn(server_timing));
    Router::new()
        .route("/ui", get(|| async { redirect("/ui/") }))
        .route("/ui/login", get(|| async { assets::page("login.html") }))
        .route("/ui/assets/{*file}", get(assets::serve))
        .route("/ui/api/session", axum::routing::post(sign_in))
        .merge(with_session)
        .route("/ui/", get(shell))
        .route("/ui/{*page}", get(shell))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(console)
}

/// `Server-Timing: app;dur=<ms>`: how long the server took to answer (the head, for streams).
async fn server_timing(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let mut response = next.run(request).await;
    let timing = format!("app;dur={:.3}", started.elapsed().as_secs_f64() * 1000.0);
    if let Ok(v) = HeaderValue::from_str(&timing) {
        response.headers_mut().insert("server-timing", v);
    }
    response
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.entry("cache-control")
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// Why a console endpoint could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] lambent_store::StoreError),
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        match self {
            ConsoleError::BadRequest(m) => error(StatusCode::BAD_REQUEST, m),
            ConsoleError::NotFound(m) => error(StatusCode::NOT_FOUND, m),
            ConsoleError::Store(e) => lambent_gateway::ApiError::from(e).into_response(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let status = match self {
            Refusal::NoSession => StatusCode::UNAUTHORIZED,
            Refusal::CrossSite | Refusal::Csrf => StatusCode::FORBIDDEN,
        };
        error(status, self)
    }
}

/// Whether a session's key still works; a session whose key stopped working (removed,
/// expired, past its rotation's grace, its namespace deleted) is ended.
async fn key_still_works(c: &Console, session: &session::Session) -> Result<bool, Response> {
    let store = c.app.store.as_ref();
    match c.app.keys.lookup_digest(store, &session.key_sha256).await {
        Ok(Some(_)) => Ok(true),
        Ok(None) => {
            c.sessions.end_key(&session.key_sha256);
            Ok(false)
        }
        Err(e) => Err(e.into_response()),
    }
}

async fn require_session(State(c): Shared, mut request: Request, next: Next) -> Response {
    let session = match c.sessions.check(request.method(), request.headers()) {
        Ok(session) => session,
        Err(refusal) => return refusal.into_response(),
    };
    match key_still_works(&c, &session).await {
        Ok(true) => {}
        Ok(false) => return session::Refusal::NoSession.into_response(),
        Err(response) => return response,
    }
    // The session acts as its key: the access table decides what its role may see.
    match lambent_gateway::route_need(&request) {
        Err(e) => return e.into_response(),
        Ok(Some(need)) if !session.role.may(need) => {
            let message = lambent_gateway::access::refusal(session.role, need);
            return lambent_gateway::ApiError::Forbidden(message).into_response();
        }
        Ok(_) => {}
    }
    request.extensions_mut().insert(session);
    next.run(request).await
}

/// A page: the shell for a signed-in browser, else the sign-in page's address.
async fn shell(State(c): Shared, uri: Uri, headers: HeaderMap) -> Response {
    let live = match c.sessions.get(&headers) {
        Some(session) => key_still_works(&c, &session).await.unwrap_or(false),
        None => false,
    };
    if !live {
        let next = uri.path_and_query().map_or("/ui/", |p| p.as_str());
        let next: String = percent_encode(next);
        return redirect(&format!("/ui/login?next={next}"));
    }
    assets::page("app.html")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

async fn sign_in(State(c): Shared, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(refusal) = session::same_origin(&headers) {
        return refusal.into_response();
    }
    let Ok(SignIn { key }) = serde_json::from_slice::<SignIn>(&body) else {
        return error(StatusCode::BAD_REQUEST, "send {\"key\": \"<API key>\"}");
    };
    let who = match c.app.keys.principal(c.app.store.as_ref(), key.trim()).await {
        Ok(Some(who)) => who,
        Ok(None) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "unknown API key, or an expired one",
            )
        }
        Err(e) => return e.into_response(),
    };
    let namespace = who.namespace.clone();
    let digest = lambent_store::sha256_hex(key.trim().as_bytes());
    let (id, session) = c
        .sessions
        .create(who.namespace, who.role, who.key_id, digest);
    let mut response = Json(json!({ "namespace": namespace, "role": who.role })).into_response();
    session::set_cookies(
        response.headers_mut(),
        Some((&id, &session)),
        session::is_https(&headers),
    );
    response
}

async fn sign_out(State(c): Shared, headers: HeaderMap) -> Response {
    c.sessions.delete(&headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    session::set_cookies(response.headers_mut(), None, session::is_https(&headers));
    response
}

async fn whoami(Extension(s): Extension<Session>) -> Json<Value> {
    Json(json!({ "namespace": s.namespace, "role": s.role }))
}

#[derive(Deserialize)]
struct WindowQuery {
    window: Option<String>,
}

fn window(q: &WindowQuery) -> Result<Window, ConsoleError> {
    Window::parse(q.window.as_deref()).map_err(ConsoleError::BadRequest)
}

/// Every function of the namespace with its totals and a sparkline of invocations.
async fn overview(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Value>, ConsoleError> {
    let window = window(&q)?;
    c.app.flush_records().await;
    let query = window.query(&s.namespace, None, lambent_core::now_ms(), false);
    // Percentiles over the whole window only: one step per piece (whole days read day rows).
    let pieces = query.pieces();
    let histograms = pieces
        .iter()
        .map(|piece| c.app.store.duration_histogram(piece));
    let (rows, histograms) = tokio::try_join!(
        c.app.store.activation_rollups(&query),
        futures_util::future::try_join_all(histograms),
    )?;
    let histogram: Vec<_> = histograms.into_iter().flatten().collect();
    let grid = metrics::grid(&query);
    let prices = &c.app.prices;
    let mut names: Vec<String> = c
        .app
        .registry
        .list(&s.namespace)
        .iter()
        .map(|d| d.function.name.to_string())
        .collect();
    // Functions deleted since still have their history in the window.
    names.extend(rows.iter().map(|r| r.function.clone()));
    names.sort();
    names.dedup();
    let functions: Vec<Value> = names
        .iter()
        .map(|name| {
            let rows: Vec<_> = rows.iter().filter(|r| &r.function == name).collect();
            let hist: Vec<_> = histogram.iter().filter(|h| &h.function == name).collect();
            let deployed = c.app.registry.lookup(&s.namespace, name);
            json!({
                "name": name,
                "deployed": deployed.is_some(),
                "runtime": deployed.as_ref().map(|d| d.function.config.runtime.name().to_string()),
                "memory_mb": deployed.as_ref().map(|d| d.function.config.memory_mb),
                "totals": metrics::totals(&rows, &hist, prices),
                "sparkline": metrics::series(&grid, query.step_ms, &rows, &[], prices).invocations,
            })
        })
        .collect();
    Ok(Json(json!({
        "window": window.as_str(),
        "since_ms": query.since_ms,
        "until_ms": query.until_ms,
        "step_ms": query.step_ms,
        "times": grid.iter().map(|t| t / 1000).collect::<Vec<_>>(),
        "functions": functions,
        "prices": prices,
    })))
}

/// One function: its charts' series, totals, right-sizing, configuration, versions, aliases.
async fn function(
    State(c): Shared,
    Extension(s): Extension<Session>,
    Path(name): Path<String>,
    Query(q): Query<WindowQuery>,
) -> Result<Json<Value>, ConsoleError> {
    let window = window(&q)?;
    c.app.flush_records().await;
    let query = window.query(&s.namespace, Some(&name), lambent_core::now_ms(), true);
    let (rows, histogram) = tokio::try_join!(
        c.app.store.activation_rollups(&query),
        c.app.store.duration_histogram(&query),
    )?;
    let deployed = c.app.registry.lookup(&s.namespace, &name);
    if deployed.is_none() && rows.is_empty() {
        return Err(ConsoleError::NotFound(format!(
            "function '{name}' does not exist"
        )));
    }
    let rows: Vec<_> = rows.iter().collect();
    let hist: Vec<_> = histogram.iter().collect();
    let prices = &c.app.prices;
    let configured = deployed
        .as_ref()
        .map(|d| d.function.config.memory_mb)
        .unwrap_or_else(|| rows.iter().map(|r| r.memory_mb).max().unwrap_or(128));
    let versions: Vec<Value> = c
        .app
        .registry
        .published_versions(&s.namespace, &name)
        .iter()
        .map(|p| {
            json!({
                "version": p.version.version,
                "revision": p.version.function.revision,
                "description": p.version.description,
                "created_ms": p.version.created_ms,
            })
        })
        .collect();
    let aliases =
        serde_json::to_value(c.app.registry.aliases(&s.namespace, &name)).unwrap_or_default();
    Ok(Json(json!({
        "name": name,
        "window": window.as_str(),
        "since_ms": query.since_ms,
        "until_ms": query.until_ms,
        "step_ms": query.step_ms,
        "function": deployed.as_ref().map(|d| &d.function),
        "series": metrics::series(&metrics::grid(&query), query.step_ms, &rows, &hist, prices),
        "totals": metrics::totals(&rows, &hist, prices),
        "rightsizing": metrics::advice(&rows, configured, prices),
        "versions": versions,
        "aliases": aliases,
    })))
}

/// `/ui/api/v1/…` → `/v1/…` as the session's namespace.
async fn pass_through(
    State(c): Shared,
    Extension(s): Extension<Session>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("", |p| p.as_str())
        .strip_prefix("/ui/api")
        .unwrap_or("")
        .to_string();
    let Ok(uri) = path_and_query.parse::<Uri>() else {
        return error(StatusCode::BAD_REQUEST, "invalid path");
    };
    parts.uri = uri;
    // The session's namespace, whatever key a request might carry.
    parts.headers.remove(axum::http::header::AUTHORIZATION);
    parts.headers.remove(axum::http::header::COOKIE);
    // A fresh start for the inner router (this router's path parameters would be taken for
    // its own), keeping only who connected.
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .cloned();
    parts.extensions = axum::http::Extensions::new();
    if let Some(peer) = peer {
        parts.extensions.insert(peer);
    }
    parts.extensions.insert(Principal {
        namespace: s.namespace,
        role: s.role,
        key_id: s.key_id,
    });
    match c
        .api
        .clone()
        .oneshot(Request::from_parts(parts, Body::new(body)))
        .await
    {
        Ok(response) => response,
        Err(never) => match never {},
    }
}
