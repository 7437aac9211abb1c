//! Who signed an S3 request: SigV4 secrets come from the same access keys as the Lambda API's
//! (`LambdaStore::access_key`), resolved in [`resolve`] alone; the access check then puts the
//! key's namespace on the request ([`Namespace`]) for the operations.

use lambent_store::Store;
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::{s3_error, S3Result};
use std::sync::Arc;

/// The namespace a request acts for (the signing key's).
#[derive(Debug, Clone)]
pub struct Namespace(pub String);

/// What an access key id stands for.
pub struct Resolved {
    pub secret: String,
    pub namespace: String,
}

/// Looks an access key id up: the one place that says which keys sign S3 requests.
pub async fn resolve(store: &dyn Store, access_key_id: &str) -> S3Result<Option<Resolved>> {
    let key = store
        .access_key(access_key_id)
        .await
        .map_err(|e| s3_error!(e, ServiceUnavailable, "the key store is unavailable"))?;
    Ok(key.map(|k| Resolved {
        secret: k.secret_access_key,
        namespace: k.namespace,
    }))
}

/// s3s's signature check asks this for a key's secret; the access check then records whose
/// namespace the verified key belongs to.
pub struct KeyAuth(pub Arc<dyn Store>);

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match resolve(self.0.as_ref(), access_key).await? {
            Some(r) => Ok(SecretKey::from(r.secret)),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "the AWS access key id you provided does not exist in our records"
            )),
        }
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
        match resolve(self.0.as_ref(), &id).await? {
            Some(r) => {
                cx.extensions_mut().insert(Namespace(r.namespace));
                Ok(())
            }
            None => Err(s3_error!(InvalidAccessKeyId)),
        }
    }
}
