//! Published versions and aliases of the deployed functions: immutable snapshots numbered 1, 2, …
//! that keep running the code and settings they were published with while `$LATEST` moves on,
//! and aliases that name a version (optionally routing a weighted share of invocations to a
//! second one). Kept in memory beside the registry's live deployments, backed by the store.

use crate::{ApiError, Registry};
use lambent_invoker::Deployment;
use lambent_store::lambda::{Alias, FunctionVersion};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The qualifier of the live deployment.
pub const LATEST: &str = "$LATEST";

type Key = (String, String);

/// A published version, ready to run.
#[derive(Debug, Clone)]
pub struct Published {
    pub version: FunctionVersion,
    pub deployment: Arc<Deployment>,
}

/// What an invocation of `name[:qualifier]` runs, and which version that is (`$LATEST` or a
/// number: Lambda's `X-Amz-Executed-Version`).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub deployment: Arc<Deployment>,
    pub executed_version: String,
}

/// Versions and aliases per function.
#[derive(Default)]
pub struct Versions {
    published: RwLock<HashMap<Key, BTreeMap<u64, Published>>>,
    aliases: RwLock<HashMap<Key, BTreeMap<String, Alias>>>,
}

fn key(namespace: &str, name: &str) -> Key {
    (namespace.to_string(), name.to_string())
}

impl Versions {
    pub(crate) fn insert_version(&self, published: Published) {
        let f = &published.version.function;
        self.published
            .write()
            .entry(key(&f.namespace, f.name.as_str()))
            .or_default()
            .insert(published.version.version, published);
    }

    pub(crate) fn insert_alias(&self, alias: Alias) {
        self.aliases
            .write()
            .entry(key(&alias.namespace, &alias.function))
            .or_default()
            .insert(alias.name.clone(), alias);
    }

    /// The revisions published versions of a function run (their pools must stay).
    pub(crate) fn revisions(&self, namespace: &str, name: &str) -> Vec<u64> {
        self.published
            .read()
            .get(&key(namespace, name))
            .map(|v| v.values().map(|p| p.version.function.revision).collect())
            .unwrap_or_default()
    }

    /// Replaces one function's versions and aliases (with what the store holds).
    pub(crate) fn replace_function(
        &self,
        namespace: &str,
        name: &str,
        published: Vec<Published>,
        aliases: Vec<Alias>,
    ) {
        let versions = published
            .into_iter()
            .map(|p| (p.version.version, p))
            .collect();
        self.published
            .write()
            .insert(key(namespace, name), versions);
        let aliases = aliases.into_iter().map(|a| (a.name.clone(), a)).collect();
        self.aliases.write().insert(key(namespace, name), aliases);
    }

    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        self.published.write().remove(&key(namespace, name));
        self.aliases.write().remove(&key(namespace, name));
    }
}

impl Registry {
    /// Publishes the live deployment of a function as its next version (or returns the newest
    /// version when it already is this revision).
    pub async fn publish_version(
        &self,
        namespace: &str,
        name: &str,
        description: &str,
    ) -> Result<Published, ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let live = self
            .lookup(namespace, name)
            .ok_or_else(|| ApiError::function_not_found(namespace, name))?;
        // A version starts without provisioned concurrency, as on Lambda.
        let mut snapshot = live.function.clone();
        snapshot.config.provisioned_concurrency = 0;
        let version = self.store.publish_version(&snapshot, description).await?;
        let published = Published {
            deployment: Arc::new(Deployment {
                function: version.function.clone(),
                code_dir: live.code_dir.clone(),
            }),
            version,
        };
        self.versions.insert_version(published.clone());
        self.changed(namespace, name);
        Ok(published)
    }

    /// Sets a published version's provisioned concurrency and starts its sandboxes; the
    /// inner result says whether they all started. While `$LATEST` runs the same revision, the
    /// pool keeps the larger of the two settings.
    pub async fn set_version_provisioned(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
        provisioned: u32,
    ) -> Result<(Published, Result<(), String>), ApiError> {
        let published = {
            let _one_at_a_time = self.changes.lock().await;
            let live = self
                .lookup(namespace, name)
                .ok_or_else(|| ApiError::function_not_found(namespace, name))?;
            let mut published = self
                .published_version(namespace, name, &version.to_string())
                .ok_or_else(|| ApiError::VersionNotFound {
                    name: name.to_string(),
                    qualifier: version.to_string(),
                })?;
            let config = &live.function.config;
            if let Some(reserved) = config.reserved_concurrency.filter(|&r| provisioned > r) {
                return Err(ApiError::InvalidParameter(format!(
                    "provisioned concurrency {provisioned} is more than the function's reserved concurrency {reserved}"
                )));
            }
            if provisioned > lambent_core::limits::MAX_PROVISIONED {
                return Err(ApiError::InvalidParameter(format!(
                    "provisioned concurrency {provisioned} is out of range: use 0-{}",
                    lambent_core::limits::MAX_PROVISIONED
                )));
            }
            published.version.function.config.provisioned_concurrency = provisioned;
            if !self.store.put_version_snapshot(&published.version).await? {
                return Err(ApiError::VersionNotFound {
                    name: name.to_string(),
                    qualifier: version.to_string(),
                });
            }
            published.deployment = Arc::new(Deployment {
                function: published.version.function.clone(),
                code_dir: published.deployment.code_dir.clone(),
            });
            self.versions.insert_version(published.clone());
            self.changed(namespace, name);
            published
        };
        let started = self.provision_version(&published).await;
        Ok((published, started))
    }

    /// Gives a version's pool its provisioned concurrency (the larger of the version's and
    /// the live function's while they share a revision).
    async fn provision_version(&self, published: &Published) -> Result<(), String> {
        let target = self.version_provisioned_target(published);
        self.invoker()
            .set_provisioned(&published.deployment, target)
            .await
    }

    pub(crate) fn version_provisioned_target(&self, published: &Published) -> u32 {
        let f = &published.version.function;
        let own = f.config.provisioned_concurrency;
        match self.lookup(&f.namespace, f.name.as_str()) {
            Some(live) if live.function.revision == f.revision => {
                own.max(live.function.config.provisioned_concurrency)
            }
            _ => own,
        }
    }

    /// Deletes a published version, unless an alias routes to it; retires its sandboxes unless
    /// `$LATEST` or another version runs the same revision.
    pub async fn delete_version(
        &self,
        namespace: &str,
        name: &str,
        version: u64,
    ) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let live = self
            .lookup(namespace, name)
            .ok_or_else(|| ApiError::function_not_found(namespace, name))?;
        let number = version.to_string();
        if let Some(alias) = self
            .aliases(namespace, name)
            .into_iter()
            .find(|a| a.function_version == number || a.additional_weights.contains_key(&number))
        {
            return Err(ApiError::Conflict(format!(
                "version {version} is in use by alias '{}': point the alias elsewhere first",
                alias.name
            )));
        }
        if !self.store.delete_version(namespace, name, version).await? {
            return Err(ApiError::VersionNotFound {
                name: name.to_string(),
                qualifier: number,
            });
        }
        if let Some(versions) = self
            .versions
            .published
            .write()
            .get_mut(&key(namespace, name))
        {
            versions.remove(&version);
        }
        let mut keep = self.versions.revisions(namespace, name);
        keep.push(live.function.revision);
        self.invoker().retire(namespace, name, Some(&keep));
        self.changed(namespace, name);
        Ok(())
    }

    /// A function's published versions, oldest first.
    pub fn published_versions(&self, namespace: &str, name: &str) -> Vec<Published> {
        self.versions
            .published
            .read()
            .get(&key(namespace, name))
            .map(|v| v.values().cloned().collect())
            .unwrap_or_default()
    }

    fn published_version(&self, namespace: &str, name: &str, version: &str) -> Option<Published> {
        let number: u64 = version.parse().ok()?;
        self.versions
            .published
            .read()
            .get(&key(namespace, name))?
            .get(&number)
            .cloned()
    }

    /// What `name` with an optional qualifier (`$LATEST`, a version number or an alias) runs.
    /// An alias with additional version weights picks its version at random by weight, per call.
    /// The deployment of one revision of a function: the live one, or a published version's
    /// (a forwarded invocation names the revision the sending node resolved).
    pub fn revision(&self, target: &lambent_cluster::forward::Target) -> Option<Arc<Deployment>> {
        let (ns, name) = (&target.namespace, &target.function);
        if let Some(live) = self.lookup(ns, name) {
            if live.function.revision == target.revision {
                return Some(live);
            }
        }
        self.published_versions(ns, name)
            .into_iter()
            .find(|p| p.deployment.function.revision == target.revision)
            .map(|p| p.deployment)
    }

    pub fn resolve(
        &self,
        namespace: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<Resolved, ApiError> {
        let live = self
            .lookup(namespace, name)
            .ok_or_else(|| ApiError::function_not_found(namespace, name))?;
        let not_found = |q: &str| ApiError::VersionNotFound {
            name: name.to_string(),
            qualifier: q.to_string(),
        };
        let qualifier = match qualifier {
            None | Some(LATEST) => {
                return Ok(Resolved {
                    deployment: live,
                    executed_version: LATEST.into(),
                })
            }
            Some(q) => q,
        };
        let version = match self.alias(namespace, name, qualifier) {
            Some(alias) => pick_weighted(&alias, rand::random::<f64>()),
            None if qualifier.bytes().all(|b| b.is_ascii_digit()) => qualifier.to_string(),
            None => return Err(not_found(qualifier)),
        };
        if version == LATEST {
            return Ok(Resolved {
                deployment: live,
                executed_version: version,
            });
        }
        let published = self
            .published_version(namespace, name, &version)
            .ok_or_else(|| not_found(&version))?;
        Ok(Resolved {
            deployment: published.deployment,
            executed_version: version,
        })
    }

    pub fn alias(&self, namespace: &str, function: &str, alias: &str) -> Option<Alias> {
        self.versions
            .aliases
            .read()
            .get(&key(namespace, function))?
            .get(alias)
            .cloned()
    }

    /// A function's aliases, by name.
    pub fn aliases(&self, namespace: &str, function: &str) -> Vec<Alias> {
        self.versions
            .aliases
            .read()
            .get(&key(namespace, function))
            .map(|a| a.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates (`expected_revision_id` `None`) or updates an alias, after checking that the
    /// versions it names exist and its weights are shares in 0..=1 that add up to at most 1.
    pub async fn put_alias(
        &self,
        mut alias: Alias,
        expected_revision_id: Option<&str>,
    ) -> Result<Alias, ApiError> {
        let (ns, function) = (alias.namespace.clone(), alias.function.clone());
        let _one_at_a_time = self.changes.lock().await;
        if self.lookup(&ns, &function).is_none() {
            return Err(ApiError::function_not_found(&ns, &function));
        }
        let exists = |v: &str| v == LATEST || self.published_version(&ns, &function, v).is_some();
        if !exists(&alias.function_version) {
            return Err(ApiError::VersionNotFound {
                name: function,
                qualifier: alias.function_version,
            });
        }
        let name_ok = (1..=128).contains(&alias.name.len())
            && alias
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !alias.name.bytes().all(|b| b.is_ascii_digit());
        if !name_ok {
            return Err(ApiError::InvalidParameter(format!(
                "invalid alias name '{}': use 1-128 letters, digits, '-' or '_', not only digits (that is a version)",
                alias.name.chars().take(140).collect::<String>()
            )));
        }
        let mut total = 0.0;
        for (version, weight) in &alias.additional_weights {
            if version == LATEST || !exists(version) || *version == alias.function_version {
                return Err(ApiError::InvalidParameter(format!(
                    "additional version '{version}' must be a published version other than the alias's own"
                )));
            }
            if !(0.0..=1.0).contains(weight) {
                return Err(ApiError::InvalidParameter(format!(
                    "weight {weight} of version '{version}' is out of range: use 0.0-1.0"
                )));
            }
            total += weight;
        }
        if total > 1.0 {
            return Err(ApiError::InvalidParameter(format!(
                "the additional version weights add up to {total}: at most 1.0"
            )));
        }
        alias.revision_id = uuid::Uuid::new_v4().to_string();
        alias.updated_ms = lambent_core::now_ms();
        self.store.put_alias(&alias, expected_revision_id).await?;
        self.versions.insert_alias(alias.clone());
        self.changed(&ns, &function);
        Ok(alias)
    }

    pub async fn delete_alias(
        &self,
        namespace: &str,
        function: &str,
        alias: &str,
    ) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        if !self.store.delete_alias(namespace, function, alias).await? {
            return Err(ApiError::VersionNotFound {
                name: function.to_string(),
                qualifier: alias.to_string(),
            });
        }
        if let Some(aliases) = self
            .versions
            .aliases
            .write()
            .get_mut(&key(namespace, function))
        {
            aliases.remove(alias);
        }
        self.changed(namespace, function);
        Ok(())
    }
}

/// The version an invocation of `alias` runs, given a uniform random `roll` in `0..1`: each
/// additional version takes its weight's share of the rolls, the alias's own version the rest.
pub fn pick_weighted(alias: &Alias, roll: f64) -> String {
    let mut cumulative = 0.0;
    for (version, weight) in &alias.additional_weights {
        cumulative += weight;
        if roll < cumulative {
            return version.clone();
        }
    }
    alias.function_version.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_split_the_rolls() {
        let alias = Alias {
            namespace: "default".into(),
            function: "f".into(),
            name: "live".into(),
            function_version: "1".into(),
            description: String::new(),
            additional_weights: [("2".to_string(), 0.1)].into(),
            revision_id: String::new(),
            updated_ms: 0,
        };
        assert_eq!(pick_weighted(&alias, 0.0), "2");
        assert_eq!(pick_weighted(&alias, 0.099), "2");
        assert_eq!(pick_weighted(&alias, 0.1), "1");
        assert_eq!(pick_weighted(&alias, 0.999), "1");
        let plain = Alias {
            additional_weights: BTreeMap::new(),
            ..alias
        };
        assert_eq!(pick_weighted(&plain, 0.0), "1");
    }
}
