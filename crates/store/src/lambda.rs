//! State of the AWS Lambda-compatible API: SigV4 access keys of a namespace, published function
//! versions (immutable snapshots of a function at one revision) and aliases (names pointing at a
//! version, optionally with weighted routing to a second one).

use crate::StoreError;
use async_trait::async_trait;
use lambent_core::Function;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An access key id and the secret that signs requests with it. The secret is kept (HMACs can
/// only be verified with it) and shown to its owner only once, when the key is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub namespace: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub created_ms: i64,
    /// What requests signed with it may do (as an API key's role).
    pub role: lambent_core::Role,
    /// After this instant it is refused.
    pub expires_ms: Option<i64>,
    /// The secret it had before its last rotation, still verifying until its instant (never
    /// later than [`AccessKey::expires_ms`]).
    pub previous_secret: Option<(String, i64)>,
}

impl AccessKey {
    /// The secrets a signature may be made with at `now_ms`: the current one, then the one
    /// before the last rotation while its grace lasts.
    pub fn secrets_at(&self, now_ms: i64) -> impl Iterator<Item = &str> {
        let previous = self
            .previous_secret
            .as_ref()
            .filter(|(_, until)| *until > now_ms)
            .map(|(secret, _)| secret.as_str());
        std::iter::once(self.secret_access_key.as_str()).chain(previous)
    }
}

/// A published version: the function as it was at one revision, numbered 1, 2, … per function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionVersion {
    pub version: u64,
    /// The snapshot: its `revision` names the pool its invocations run in.
    pub function: Function,
    pub description: String,
    pub created_ms: i64,
}

/// An alias: a name for a version (or `$LATEST`), optionally sending a share of the invocations
/// to other versions (`RoutingConfig.AdditionalVersionWeights`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub namespace: String,
    pub function: String,
    pub name: String,
    pub function_version: String,
    pub description: String,
    /// Version → share of invocations in 0.0..=1.0; the rest goes to `function_version`.
    pub additional_weights: BTreeMap<String, f64>,
    /// Changes on every update (optimistic locking, as Lambda's `RevisionId`).
    pub revision_id: String,
    pub updated_ms: i64,
}

/// Access keys, versions and aliases.
#[async_trait]
pub trait LambdaStore: Send + Sync {
    /// Stores an access key (replacing one with the same id in the same namespace).
    async fn put_access_key(&self, key: &AccessKey) -> Result<(), StoreError>;
    /// The key with this id, in whichever namespace.
    async fn access_key(&self, access_key_id: &str) -> Result<Option<AccessKey>, StoreError>;
    async fn list_access_keys(&self, namespace: &str) -> Result<Vec<AccessKey>, StoreError>;
    async fn delete_access_key(
        &self,
        namespace: &str,
        access_key_id: &str,
    ) -> Result<bool, StoreError>;

    /// Publishes `function` as the next version number, unless the newest version already is
    /// this revision (Lambda publishes nothing new then); returns the version either way.
    async fn publish_version(
        &self,
        function: &Function,
        description: &str,
    ) -> Result<FunctionVersion, StoreError>;
    /// Replaces the stored snapshot of a published version (its provisioned concurrency is
    /// the one setting that changes); false if the version is gone.
    async fn put_version_snapshot(&self, version: &FunctionVersion) -> Result<bool, StoreError>;
    /// Deletes one published version; false if there is no such version.
    async fn delete_version(
        &self,
        namespace: &str,
        function: &str,
        version: u64,
    ) -> Result<bool, StoreError>;
    /// Every version of every function, to load at start-up.
    async fn all_versions(&self) -> Result<Vec<FunctionVersion>, StoreError>;

    /// Creates (`expected_revision_id` `None`: must not exist) or updates (must currently have
    /// that revision id) an alias; a mismatch is [`StoreError::Conflict`].
    async fn put_alias(
        &self,
        alias: &Alias,
        expected_revision_id: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Every alias of every function, to load at start-up.
    async fn all_aliases(&self) -> Result<Vec<Alias>, StoreError>;
    async fn delete_alias(
        &self,
        namespace: &str,
        function: &str,
        name: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes a function's versions and aliases (with the function itself).
    async fn delete_versions_and_aliases(
        &self,
        namespace: &str,
        function: &str,
    ) -> Result<(), StoreError>;
}
