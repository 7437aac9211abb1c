//! Who signed an AWS request: the one resolver every AWS-compatible API asks. An access key id
//! names either a stored access key of a namespace (`/v1/keys`, long-lived) or a *session
//! credential* that the platform hands each sandbox in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, as Lambda hands a function its execution
//! role's.
//!
//! Session credentials are stateless, so issuing one per sandbox writes nothing and any node
//! holding the same server secret verifies them:
//! - the access key id is `ASIA` + 16 random characters of `A-Z2-7`;
//! - the session token is `<payload>.<mac>`, both base64url: the payload is the JSON
//!   `{"ns","fn","exp","akid"}` (namespace, function, expiry in epoch milliseconds, access key
//!   id), the mac its HMAC-SHA256 under a key derived from the server secret;
//! - the secret access key is derived from the server secret and the access key id
//!   (HMAC-SHA256, 40 base64 characters), so nobody without the server secret can sign with an
//!   id they did not get.
//!
//! The server secret is generated once per data dir on the embedded node and derived from the
//! cluster's shared secret on a cluster node (see `lambent-server`).
//!
//! A stored access key found is remembered for [`KEY_CACHE_TTL`], so a signed request does not
//! read the store: a key deleted on this node stops working at once, on another node of a
//! cluster within that time (unknown ids are not remembered, so a new key works at once).

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use lambent_core::Role;
use lambent_store::lambda::AccessKey;
use lambent_store::{Store, StoreError};
use rand::Rng;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stored access key found is trusted without reading the store again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// Stored access keys found, by id, with when they were read.
type KeyCache = HashMap<String, (AccessKey, Instant)>;

/// Prefix of session credentials' access key ids (AWS's for temporary credentials).
pub const SESSION_KEY_PREFIX: &str = "ASIA";

/// Why a request's credentials were refused. Messages are AWS's.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No stored access key has this id (and it is no session credential).
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey(String),
    /// A session token that does not verify, belongs to another access key id, or is missing
    /// for a session credential.
    #[error("The security token included in the request is invalid.")]
    InvalidToken,
    /// A valid session token past its expiry.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the platform knows about a session credential, from its token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    #[serde(rename = "ns")]
    pub namespace: String,
    /// The function whose sandbox it was issued to.
    #[serde(rename = "fn")]
    pub function: String,
    /// Epoch milliseconds after which it is refused (but by its own sandbox: [`OwnSandbox`]).
    #[serde(rename = "exp")]
    pub expires_ms: i64,
    #[serde(rename = "akid")]
    pub access_key_id: String,
}

/// A session credential as handed to a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expires_ms: i64,
}

/// Who signed: the namespace acted in, the key's role, and the secret the signature must
/// verify with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub namespace: String,
    /// A stored key's role; a sandbox's session credential acts as a `deployer` of its
    /// namespace (what a function's code may do with the platform's services).
    pub role: Role,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A rotated stored key's previous secret, while its grace lasts: a signature made with
    /// it verifies too.
    pub previous_secret: Option<String>,
    /// Set for session credentials.
    pub session: Option<Session>,
}

impl Signer {
    /// The secrets a signature may be made with: the current one first.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret_access_key.as_str()).chain(self.previous_secret.as_deref())
    }
}

impl Signer {
    /// The principal the request acts as once its signature verified.
    pub fn principal(&self) -> crate::Principal {
        crate::Principal {
            namespace: self.namespace.clone(),
            role: self.role,
            key_id: self.access_key_id.clone(),
        }
    }
}

/// A request extension set by a sandbox's private endpoint (never from anything a client
/// sends): the access key id of the credentials that sandbox was given. Its own credentials
/// stay valid there, past their expiry, for as long as the sandbox lives; everywhere else
/// they expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnSandbox(pub String);

/// Session credentials: issuing and verifying them (pure: no store, no clock but the caller's).
pub struct SessionKeys {
    token_key: [u8; 32],
    secret_key: [u8; 32],
    /// How long a session credential is valid outside its own sandbox.
    lifetime: Duration,
}

/// The resolver: stored access keys and session credentials.
#[derive(Clone)]
pub struct Credentials {
    store: Arc<dyn Store>,
    pub sessions: Arc<SessionKeys>,
    /// Stored access keys found, by id.
    keys: Arc<parking_lot::Mutex<KeyCache>>,
}

/// Default validity of session credentials outside their own sandbox.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

fn mac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

impl SessionKeys {
    /// Session credentials under `server_secret`, valid for `lifetime` outside their sandbox.
    pub fn new(server_secret: &[u8], lifetime: Duration) -> SessionKeys {
        SessionKeys {
            token_key: mac_of(server_secret, &[b"lambent session token v1"]),
            secret_key: mac_of(server_secret, &[b"lambent session secret v1"]),
            lifetime,
        }
    }

    /// How long session credentials are valid outside their own sandbox.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// New session credentials for one sandbox of `function` in `namespace`.
    pub fn issue(&self, namespace: &str, function: &str) -> SessionCredentials {
        const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut rng = rand::thread_rng();
        let id: String = (0..16)
            .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
            .collect();
        let session = Session {
            namespace: namespace.into(),
            function: function.into(),
            expires_ms: lambent_core::now_ms() + self.lifetime.as_millis() as i64,
            access_key_id: format!("{SESSION_KEY_PREFIX}{id}"),
        };
        self.credentials_of(&session)
    }

    /// The credentials of `session` (the token signed now, the secret derived).
    pub fn credentials_of(&self, session: &Session) -> SessionCredentials {
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(session).expect("a session serializes"));
        let mac = URL_SAFE_NO_PAD.encode(mac_of(&self.token_key, &[payload.as_bytes()]));
        SessionCredentials {
            access_key_id: session.access_key_id.clone(),
            secret_access_key: self.session_secret(&session.access_key_id),
            session_token: format!("{payload}.{mac}"),
            expires_ms: session.expires_ms,
        }
    }

    /// The secret access key of a session credential, derived from its id.
    pub fn session_secret(&self, access_key_id: &str) -> String {
        let derived = mac_of(&self.secret_key, &[access_key_id.as_bytes()]);
        STANDARD_NO_PAD.encode(&derived[..30])
    }

    /// Verifies a session token for `access_key_id` at `now_ms`; `own_sandbox`: the request
    /// came through the private endpoint of the sandbox these credentials were issued to
    /// (then expiry does not apply).
    pub fn verify_session(
        &self,
        access_key_id: &str,
        token: &str,
        now_ms: i64,
        own_sandbox: Option<&OwnSandbox>,
    ) -> Result<Session, CredentialError> {
        let (payload, mac) = token.split_once('.').ok_or(CredentialError::InvalidToken)?;
        let mac = URL_SAFE_NO_PAD
            .decode(mac)
            .map_err(|_| CredentialError::InvalidToken)?;
        let mut check =
            Hmac::<Sha256>::new_from_slice(&self.token_key).expect("HMAC takes keys of any length");
        check.update(payload.as_bytes());
        check
            .verify_slice(&mac)
            .map_err(|_| CredentialError::InvalidToken)?;
        let session: Session = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(CredentialError::InvalidToken)?;
        if session.access_key_id != access_key_id {
            return Err(CredentialError::InvalidToken);
        }
        let own = own_sandbox.is_some_and(|own| own.0 == session.access_key_id);
        if session.expires_ms <= now_ms && !own {
            return Err(CredentialError::ExpiredToken);
        }
        Ok(session)
    }
}

impl Credentials {
    /// A resolver over `store`'s access keys and `sessions`.
    pub fn new(store: Arc<dyn Store>, sessions: Arc<SessionKeys>) -> Credentials {
        Credentials {
            store,
            sessions,
            keys: Arc::default(),
        }
    }

    /// Forgets a stored access key (deleted): the next request signed with it reads the store.
    pub fn forget(&self, access_key_id: &str) {
        self.keys.lock().remove(access_key_id);
    }

    /// Forgets every stored access key found (a namespace was deleted).
    pub fn forget_all(&self) {
        self.keys.lock().clear();
    }

    /// Who signed with `access_key_id` (and `session_token`, the `X-Amz-Security-Token` the
    /// request carried): a session credential's namespace and derived secret, or a stored
    /// access key's.
    pub async fn resolve(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        own_sandbox: Option<&OwnSandbox>,
    ) -> Result<Signer, CredentialError> {
        let now = lambent_core::now_ms();
        match session_token {
            Some(token) => {
                let session =
                    self.sessions
                        .verify_session(access_key_id, token, now, own_sandbox)?;
                Ok(Signer {
                    namespace: session.namespace.clone(),
                    role: Role::Deployer,
                    access_key_id: access_key_id.into(),
                    secret_access_key: self.sessions.session_secret(access_key_id),
                    previous_secret: None,
                    session: Some(session),
                })
            }
            None if access_key_id.starts_with(SESSION_KEY_PREFIX) => {
                Err(CredentialError::InvalidToken)
            }
            None => {
                let known = self
                    .keys
                    .lock()
                    .get(access_key_id)
                    .and_then(|(key, at)| (at.elapsed() < KEY_CACHE_TTL).then(|| key.clone()));
                let key = match known {
                    Some(key) => key,
                    None => {
                        let key = self.store.access_key(access_key_id).await?.ok_or_else(|| {
                            CredentialError::UnknownAccessKey(access_key_id.into())
                        })?;
                        let mut keys = self.keys.lock();
                        keys.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
                        keys.insert(access_key_id.into(), (key.clone(), Instant::now()));
                        key
                    }
                };
                if key.expires_ms.is_some_and(|e| e <= now) {
                    return Err(CredentialError::ExpiredToken);
                }
                let previous_secret = key.secrets_at(now).nth(1).map(str::to_string);
                Ok(Signer {
                    namespace: key.namespace,
                    role: key.role,
                    access_key_id: key.access_key_id,
                    secret_access_key: key.secret_access_key,
                    previous_secret,
                    session: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> SessionKeys {
        SessionKeys::new(secret, Duration::from_secs(60))
    }

    #[test]
    fn an_issued_credential_verifies_and_names_its_namespace_and_function() {
        let k = keys(b"server secret");
        let c = k.issue("team-a", "resize");
        assert!(c.access_key_id.starts_with("ASIA") && c.access_key_id.len() == 20);
        assert_eq!(c.secret_access_key.len(), 40);
        let now = lambent_core::now_ms();
        let s = k
            .verify_session(&c.access_key_id, &c.session_token, now, None)
            .unwrap();
        assert_eq!(
            (s.namespace.as_str(), s.function.as_str()),
            ("team-a", "resize")
        );
        assert_eq!(s.expires_ms, c.expires_ms);
        assert!(c.expires_ms > now + 59_000 && c.expires_ms <= now + 60_000);
        assert_eq!(k.session_secret(&c.access_key_id), c.secret_access_key);
        assert_ne!(k.issue("team-a", "resize").access_key_id, c.access_key_id);
    }

    #[test]
    fn another_server_secret_verifies_nothing_and_derives_other_secrets() {
        let (a, b) = (keys(b"one"), keys(b"two"));
        let c = a.issue("ns", "f");
        let now = lambent_core::now_ms();
        assert!(matches!(
            b.verify_session(&c.access_key_id, &c.session_token, now, None),
            Err(CredentialError::InvalidToken)
        ));
        assert_ne!(b.session_secret(&c.access_key_id), c.secret_access_key);
        // Same secret, another node: verifies.
        assert!(keys(b"one")
            .verify_session(&c.access_key_id, &c.session_token, now, None)
            .is_ok());
    }

    #[test]
    fn a_changed_token_or_another_key_id_is_invalid() {
        let k = keys(b"s");
        let c = k.issue("ns", "f");
        let now = lambent_core::now_ms();
        let (payload, mac) = c.session_token.split_once('.').unwrap();
        // A payload naming another namespace, with the old mac.
        let forged = Session {
            namespace: "other".into(),
            ..k.verify_session(&c.access_key_id, &c.session_token, now, None)
                .unwrap()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let other = k.issue("ns", "f");
        for (id, token) in [
            (c.access_key_id.clone(), format!("{forged_payload}.{mac}")),
            (c.access_key_id.clone(), format!("{payload}.{}", &mac[1..])),
            (c.access_key_id.clone(), payload.to_string()),
            (c.access_key_id.clone(), "not a token".to_string()),
            (other.access_key_id.clone(), c.session_token.clone()),
        ] {
            assert!(
                matches!(
                    k.verify_session(&id, &token, now, None),
                    Err(CredentialError::InvalidToken)
                ),
                "{token}"
            );
        }
    }

    #[test]
    fn an_expired_token_is_refused_except_through_its_own_sandbox() {
        let k = keys(b"s");
        let c = k.issue("ns", "f");
        let later = c.expires_ms + 1;
        assert!(matches!(
            k.verify_session(&c.access_key_id, &c.session_token, later, None),
            Err(CredentialError::ExpiredToken)
        ));
        let own = OwnSandbox(c.access_key_id.clone());
        assert!(k
            .verify_session(&c.access_key_id, &c.session_token, later, Some(&own))
            .is_ok());
        // Another sandbox's endpoint does not extend it.
        let elsewhere = OwnSandbox(k.issue("ns", "f").access_key_id);
        assert!(matches!(
            k.verify_session(&c.access_key_id, &c.session_token, later, Some(&elsewhere)),
            Err(CredentialError::ExpiredToken)
        ));
    }
}
