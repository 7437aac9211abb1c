//! Sign-in sessions: an API key posted once is exchanged for a random session id kept in an
//! HttpOnly, SameSite=Strict cookie (Secure when the request came over HTTPS); the server keeps
//! the session (namespace, CSRF token, expiry, the key's SHA-256 digest) in memory, so signing
//! out or restarting ends it. The key itself is never stored, by the page or by the session;
//! its digest lets every request check that the key still works (a session never outlives
//! its key: removed, expired, its secret's grace after a rotation ended, its namespace
//! deleted).
//!
//! CSRF defence, both ways: every request to the console's API must not be cross-site
//! (`Sec-Fetch-Site`, else `Origin` against `Host`), and every state-changing one must also
//! carry the session's CSRF token in [`CSRF_HEADER`] (the page reads it from the non-HttpOnly
//! [`CSRF_COOKIE`]: a double submit that another site can neither read nor set).

use axum::http::header::{COOKIE, HOST, ORIGIN, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method};
use parking_lot::RwLock;
use rand::RngCore;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The cookie holding the session id.
pub const SESSION_COOKIE: &str = "lambent_session";
/// The cookie holding the CSRF token (readable by the page's script).
pub const CSRF_COOKIE: &str = "lambent_csrf";
/// The header a state-changing request repeats the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// One signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub namespace: String,
    /// The signing-in key's role and id: the session acts as that key.
    pub role: lambent_core::Role,
    pub key_id: String,
    /// The SHA-256 digest of the key signed in with (as the store keeps it).
    pub key_sha256: String,
    pub csrf: String,
    expires: Instant,
}

/// The server-side session table.
#[derive(Default)]
pub struct Sessions {
    table: RwLock<HashMap<String, Session>>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("sign in first: no valid session")]
    NoSession,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("missing or wrong CSRF token: send the lambent_csrf cookie's value in X-CSRF-Token")]
    Csrf,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl Sessions {
    /// Starts a session acting as a key of `namespace` (its role and id); returns (id, session).
    pub fn create(
        &self,
        namespace: String,
        role: lambent_core::Role,
        key_id: String,
        key_sha256: String,
    ) -> (String, Session) {
        let now = Instant::now();
        let session = Session {
            namespace,
            role,
            key_id,
            key_sha256,
            csrf: random_hex(),
            expires: now + SESSION_TTL,
        };
        let id = random_hex();
        let mut table = self.table.write();
        table.retain(|_, s| s.expires > now);
        table.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session of a request's cookie.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let session = self.table.read().get(&id).cloned()?;
        if session.expires <= Instant::now() {
            self.table.write().remove(&id);
            return None;
        }
        Some(session)
    }

    /// Ends every session of a key (it stopped working).
    pub fn end_key(&self, key_sha256: &str) {
        self.table.write().retain(|_, s| s.key_sha256 != key_sha256);
    }

    /// Ends a request's session; whether there was one.
    pub fn delete(&self, headers: &HeaderMap) -> bool {
        cookie(headers, SESSION_COOKIE).is_some_and(|id| self.table.write().remove(&id).is_some())
    }

    /// Checks a request to the console's API: its session, that it is not cross-site and, for
    /// a state-changing method, its CSRF token.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Result<Session, Refusal> {
        same_origin(headers)?;
        let session = self.get(headers).ok_or(Refusal::NoSession)?;
        if !is_safe(method) {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if !sent.is_some_and(|t| constant_time_eq(t.as_bytes(), session.csrf.as_bytes())) {
                return Err(Refusal::Csrf);
            }
        }
        Ok(session)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a request a browser marks as coming from another site: `Sec-Fetch-Site` other than
/// `same-origin` or `none` (typed in the address bar), or, from browsers that do not send it,
/// an `Origin` whose host is not the request's `Host`.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.to_str().unwrap_or("") {
            "same-origin" | "none" => Ok(()),
            _ => Err(Refusal::CrossSite),
        };
    }
    let Some(origin) = headers.get(ORIGIN).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, h)| h);
    match (origin_host, host) {
        (Some(o), Some(h)) if o.eq_ignore_ascii_case(h) => Ok(()),
        _ => Err(Refusal::CrossSite),
    }
}

/// A cookie's value in a request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Whether the browser reached us over HTTPS (directly or through a proxy that says so).
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` headers that start a session (`Some`) or end it (`None`).
pub fn set_cookies(headers: &mut HeaderMap, session: Option<(&str, &Session)>, secure: bool) {
    let secure = if secure { "; Secure" } else { "" };
    let (id, csrf, age) = match session {
        Some((id, s)) => (id, s.csrf.as_str(), SESSION_TTL.as_secs()),
        None => ("", "", 0),
    };
    for cookie in [
        format!(
            "{SESSION_COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={age}{secure}"
        ),
        format!("{CSRF_COOKIE}={csrf}; Path=/ui; SameSite=Strict; Max-Age={age}{secure}"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_session_needs_its_cookie_and_state_changes_need_its_token() {
        let sessions = Sessions::default();
        let (id, s) = sessions.create(
            "default".into(),
            lambent_core::Role::Owner,
            "lk-1".into(),
            "d".into(),
        );
        let cookie = format!("{SESSION_COOKIE}={id}");
        let get = headers(&[("cookie", &cookie)]);
        assert_eq!(
            sessions.check(&Method::GET, &get).unwrap().namespace,
            "default"
        );
        assert_eq!(
            sessions.check(&Method::POST, &get).unwrap_err(),
            Refusal::Csrf
        );
        let post = headers(&[("cookie", &cookie), (CSRF_HEADER, &s.csrf)]);
        assert!(sessions.check(&Method::POST, &post).is_ok());
        let forged = headers(&[("cookie", "lambent_session=00ff")]);
        assert_eq!(
            sessions.check(&Method::GET, &forged).unwrap_err(),
            Refusal::NoSession
        );
        assert!(sessions.delete(&get));
        assert_eq!(
            sessions.check(&Method::GET, &get).unwrap_err(),
            Refusal::NoSession
        );
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let sessions = Sessions::default();
        let (id, s) = sessions.create(
            "default".into(),
            lambent_core::Role::Owner,
            "lk-1".into(),
            "d".into(),
        );
        let cookie = format!("{SESSION_COOKIE}={id}");
        let cross = headers(&[
            ("cookie", &cookie),
            (CSRF_HEADER, &s.csrf),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(
            sessions.check(&Method::POST, &cross).unwrap_err(),
            Refusal::CrossSite
        );
        let other_origin = headers(&[
            ("cookie", &cookie),
            (CSRF_HEADER, &s.csrf),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ]);
        assert_eq!(
            sessions.check(&Method::POST, &other_origin).unwrap_err(),
            Refusal::CrossSite
        );
        let same = headers(&[
            ("cookie", &cookie),
            (CSRF_HEADER, &s.csrf),
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(sessions.check(&Method::POST, &same).is_ok());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let sessions = Sessions::default();
        let (id, s) = sessions.create(
            "default".into(),
            lambent_core::Role::Owner,
            "lk-1".into(),
            "d".into(),
        );
        let mut h = HeaderMap::new();
        set_cookies(&mut h, Some((&id, &s)), true);
        let all: Vec<_> = h
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert!(all[0].contains("HttpOnly") && all[0].contains("SameSite=Strict"));
        assert!(all[0].ends_with("; Secure") && !all[1].contains("HttpOnly"));
        let mut h = HeaderMap::new();
        set_cookies(&mut h, None, false);
        assert!(h
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
    }
}
