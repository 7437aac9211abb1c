//! Who signed an S3 request: SigV4 secrets come from the platform's one resolver of AWS
//! credentials (`lambent_gateway::credentials`: stored access keys and the sandboxes' session
//! credentials); the access check then verifies a session token, if any, checks the
//! operation against the key's role, and puts the signer's namespace on the request
//! ([`Namespace`]) for the operations.

use lambent_gateway::credentials::{CredentialError, Credentials, OwnSandbox, SESSION_KEY_PREFIX};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Error, S3Result};

/// A write operation to be audited once its answer is known: who, which operation, on what.
#[derive(Debug, Clone)]
pub struct Audited {
    pub principal: lambent_gateway::Principal,
    pub action: String,
    pub target: String,
}

/// Operations that write but are not management actions of their own: the parts of a
/// multipart upload (its creation and completion or abort are audited).
const UNAUDITED_WRITES: &[&str] = &["UploadPart", "UploadPartCopy"];

tokio::task_local! {
    /// Set by the access check for a write operation: the endpoint writes it to the audit log
    /// with the answer's status.
    pub static AUDITED: std::cell::RefCell<Option<Audited>>;

    /// For a request signed with a rotated key's previous secret (in its grace): the access
    /// key id and that secret, which s3s then verifies the signature (and its chunks) with.
    pub static SIGNED_WITH_PREVIOUS: (String, String);
}

/// The namespace a request acts for (the signing key's).
#[derive(Debug, Clone)]
pub struct Namespace(pub String);

/// s3s's signature check asks this for a key's secret; the access check then records whose
/// namespace the verified key belongs to.
#[derive(Clone)]
pub struct KeyAuth(pub Credentials);

/// S3's answer to a refused credential.
fn refused(e: CredentialError) -> S3Error {
    match e {
        CredentialError::UnknownAccessKey(_) => s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        ),
        CredentialError::InvalidToken => s3_error!(
            InvalidToken,
            "The provided token is malformed or otherwise invalid."
        ),
        CredentialError::ExpiredToken => {
            s3_error!(ExpiredToken, "The provided token has expired.")
        }
        CredentialError::Store(e) => {
            s3_error!(e, ServiceUnavailable, "the key store is unavailable")
        }
    }
}

/// The session token a request carries (`X-Amz-Security-Token`, header or presigned query).
fn session_token<'a>(cx: &'a S3AccessContext<'_>) -> Option<std::borrow::Cow<'a, str>> {
    if let Some(token) = cx.headers().get("x-amz-security-token") {
        return token.to_str().ok().map(std::borrow::Cow::Borrowed);
    }
    form_urlencoded::parse(cx.uri().query()?.as_bytes())
        .find(|(name, _)| name == "X-Amz-Security-Token")
        .map(|(_, value)| value)
}

impl KeyAuth {
    /// The previous secret of a rotated key, when a request was signed with that one rather
    /// than the current one: in its `Authorization` header, or as a presigned URL (SigV4 or
    /// SigV2). Only a key in its rotation's grace costs the check.
    pub async fn previous_secret_signing(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        vh_bucket: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Option<(String, String)> {
        let query = uri.query().unwrap_or("");
        let id = lambent_aws_api::sigv4::s3_access_key_id(headers, query)?;
        if id.starts_with(SESSION_KEY_PREFIX) {
            return None;
        }
        let signer = self.0.resolve(&id, None, None).await.ok()?;
        let previous = signer.previous_secret?;
        let signed_with = |secret: &str| {
            lambent_aws_api::sigv4::s3_signed_with(
                method.as_str(),
                uri.path(),
                vh_bucket,
                query,
                headers,
                secret,
            )
        };
        if signed_with(&signer.secret_access_key) || !signed_with(&previous) {
            return None;
        }
        Some((id, previous))
    }
}

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        // A session credential's secret derives from its id; its token is checked below.
        if access_key.starts_with(SESSION_KEY_PREFIX) {
            return Ok(SecretKey::from(self.0.sessions.session_secret(access_key)));
        }
        let principal = self
            .0
            .resolve(access_key, None, None)
            .await
            .map_err(refused)?;
        let previous = SIGNED_WITH_PREVIOUS
            .try_with(|(id, secret)| (id == access_key).then(|| secret.clone()))
            .ok()
            .flatten()
            .filter(|secret| principal.previous_secret.as_ref() == Some(secret));
        Ok(SecretKey::from(
            previous.unwrap_or(principal.secret_access_key),
        ))
    }
}

#[async_trait::async_trait]
impl S3Access for KeyAuth {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous requests are not allowed: sign it"
            ));
        };
        let id = credentials.access_key.clone();
        let token = session_token(cx).map(|t| t.into_owned());
        let own = cx.extensions_mut().get::<OwnSandbox>().cloned();
        let signer = self
            .0
            .resolve(&id, token.as_deref(), own.as_ref())
            .await
            .map_err(refused)?;
        // The operation's access (reads by their names, the rest writes) against the role.
        let access = lambent_gateway::access::aws_action(cx.s3_op().name(), &[]);
        if !signer.role.may(access) {
            return Err(s3_error!(
                AccessDenied,
                "{}",
                lambent_gateway::access::refusal(signer.role, access)
            ));
        }
        let op = cx.s3_op().name();
        if lambent_gateway::audited(access) && !UNAUDITED_WRITES.contains(&op) {
            let target = match cx.s3_path() {
                s3s::path::S3Path::Root => String::new(),
                s3s::path::S3Path::Bucket { bucket } => bucket.to_string(),
                s3s::path::S3Path::Object { bucket, key } => format!("{bucket}/{key}"),
            };
            let audited = Audited {
                principal: signer.principal(),
                action: op.to_string(),
                target,
            };
            // Outside the endpoint (no scope) there is nothing to audit into.
            let _ = AUDITED.try_with(|slot| *slot.borrow_mut() = Some(audited));
        }
        cx.extensions_mut().insert(Namespace(signer.namespace));
        Ok(())
    }
}
