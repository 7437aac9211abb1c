//! The deployed functions: an in-memory map from (namespace, name) to the deployment that serves
//! new invocations, backed by the store, and the control-plane operations that change it (code
//! upload, deploy, delete). Invocations never read the database; a deploy swaps one map entry,
//! so in-flight invocations finish on the deployment they started with.

use crate::quotas::Quotas;
use crate::versions::{Published, Versions};
use crate::ApiError;
use bytes::Bytes;
use lambent_core::{now_ms, Function, FunctionName, FunctionSpec};
use lambent_invoker::{Deployment, Invoker};
use lambent_store::blobs::BlobStore;
use lambent_store::bus::{Bus, Signal};
use lambent_store::lambda::{Alias, FunctionVersion};
use lambent_store::package::{self, CodeDirs};
use lambent_store::Store;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;

type Key = (String, String);

/// Deployed functions and the operations on them.
pub struct Registry {
    pub(crate) store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    codes: CodeDirs,
    /// Tells the other nodes which function changed (they [`Registry::refresh`] it).
    bus: Arc<dyn Bus>,
    /// The store is shared with other nodes (a cluster): a function this node does not know
    /// may have been deployed elsewhere a moment ago.
    shared: bool,
    invoker: Invoker,
    live: RwLock<HashMap<Key, Arc<Deployment>>>,
    /// Published versions and aliases.
    pub(crate) versions: Versions,
    /// Deploys and deletes are rare: one at a time keeps revision bumps and swaps simple.
    pub(crate) changes: tokio::sync::Mutex<()>,
    /// The namespaces' quotas and budgets (the invoker's gate; deploys check the count).
    pub quotas: Arc<Quotas>,
}

/// A stored code package.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredCode {
    pub sha256: String,
    pub size: u64,
    /// False when the same package was stored before.
    #[serde(skip)]
    pub new: bool,
}

/// What a deploy did.
pub struct Deployed {
    pub deployment: Arc<Deployment>,
    pub created: bool,
}

impl Registry {
    /// Loads every stored function and makes sure its code is unpacked.
    pub async fn load(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        codes: CodeDirs,
        invoker: Invoker,
        bus: Arc<dyn Bus>,
        shared: bool,
    ) -> Result<Registry, ApiError> {
        let quotas = Arc::new(Quotas::new(store.clone()));
        invoker.set_gate(quotas.clone());
        let registry = Registry {
            quotas,
            store,
            blobs,
            codes,
            bus,
            shared,
            invoker,
            live: RwLock::new(HashMap::new()),
            versions: Versions::default(),
            changes: tokio::sync::Mutex::new(()),
        };
        let mut provisioned_versions = Vec::new();
        for version in registry.store.all_versions().await? {
            let deployment = registry.deployment(version.function.clone()).await?;
            let published = Published {
                version,
                deployment,
            };
            if published.version.function.config.provisioned_concurrency > 0 {
                provisioned_versions.push(published.clone());
            }
            registry.versions.insert_version(published);
        }
        for alias in registry.store.all_aliases().await? {
            registry.versions.insert_alias(alias);
        }
        for function in registry.store.all_functions().await? {
            let deployment = registry.deployment(function).await?;
            let f = &deployment.function;
            registry.invoker.set_reserved_concurrency(
                &f.namespace,
                f.name.as_str(),
                f.config.reserved_concurrency,
            );
            if f.config.provisioned_concurrency > 0 {
                let (invoker, d) = (registry.invoker.clone(), deployment.clone());
                tokio::spawn(async move {
                    if let Err(e) = invoker.provision(&d).await {
                        tracing::warn!("provisioned concurrency of {}: {e}", d.function.name);
                    }
                });
            }
            registry.live.write().insert(key_of(f), deployment);
        }
        for published in provisioned_versions {
            let target = registry.version_provisioned_target(&published);
            let invoker = registry.invoker.clone();
            tokio::spawn(async move {
                if let Err(e) = invoker.set_provisioned(&published.deployment, target).await {
                    let f = &published.version.function;
                    tracing::warn!(
                        "provisioned concurrency of {}:{}: {e}",
                        f.name,
                        published.version.version
                    );
                }
            });
        }
        Ok(registry)
    }

    pub fn invoker(&self) -> &Invoker {
        &self.invoker
    }

    /// The deployment that serves new invocations of a function.
    pub fn lookup(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.live
            .read()
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// [`Registry::lookup`], reading the store when this node does not know the function and
    /// the store is shared: a deploy on another node may be a few milliseconds ahead of its
    /// signal.
    pub async fn find(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<Deployment>>, ApiError> {
        if let Some(d) = self.lookup(namespace, name) {
            return Ok(Some(d));
        }
        if self.shared {
            self.refresh(namespace, name).await?;
        }
        Ok(self.lookup(namespace, name))
    }

    /// The key (`namespace/name`) of every deployed function.
    pub fn keys(&self) -> Vec<String> {
        self.live
            .read()
            .keys()
            .map(|(ns, name)| lambent_store::events::function_key(ns, name))
            .collect()
    }

    /// A namespace's functions, sorted by name.
    pub fn list(&self, namespace: &str) -> Vec<Arc<Deployment>> {
        let mut list: Vec<_> = self
            .live
            .read()
            .values()
            .filter(|d| d.function.namespace == namespace)
            .cloned()
            .collect();
        list.sort_by(|a, b| a.function.name.cmp(&b.function.name));
        list
    }

    /// Checks, unpacks and stores a code zip by its SHA-256.
    pub async fn upload_code(&self, zip: Bytes) -> Result<StoredCode, ApiError> {
        let size = zip.len() as u64;
        let sha256 = lambent_store::sha256_hex(&zip);
        let new = self.blobs.size(&sha256).await?.is_none();
        if new {
            let (codes, sha) = (self.codes.clone(), sha256.clone());
            let zip = blocking(move || {
                package::check(&zip)?;
                // Unpacking now refuses a zip bomb at upload time, and makes the deploy quick.
                codes.ensure(&sha, &zip)?;
                Ok(zip)
            })
            .await?;
            self.blobs.put(&sha256, Arc::new(zip.to_vec())).await?;
        }
        Ok(StoredCode { sha256, size, new })
    }

    pub async fn has_code(&self, sha256: &str) -> Result<bool, ApiError> {
        Ok(lambent_store::blobs::is_sha256_hex(sha256) && self.blobs.size(sha256).await?.is_some())
    }

    /// Creates or replaces a function. New invocations get the new revision as soon as this
    /// returns; sandboxes of older revisions are retired (busy ones when they finish).
    pub async fn deploy(
        &self,
        namespace: &str,
        name: FunctionName,
        spec: FunctionSpec,
        code_sha256: String,
    ) -> Result<Deployed, ApiError> {
        let config = spec.resolve()?;
        if config.network {
            if let Err(e) = self.invoker.outbound_network() {
                return Err(ApiError::Unavailable(e.to_string()));
            }
        }
        if let Some(reserved) = config.reserved_concurrency {
            let others = self.invoker.reserved_total(namespace, name.as_str());
            let limit = self.invoker.namespace_concurrency(namespace);
            if others + reserved > limit {
                return Err(ApiError::Conflict(format!(
                    "reserved concurrency {reserved} does not fit: the namespace's limit is {limit} and other functions reserve {others}"
                )));
            }
        }
        let code_size = match lambent_store::blobs::is_sha256_hex(&code_sha256) {
            true => self.blobs.size(&code_sha256).await?,
            false => None,
        };
        let Some(code_size) = code_size else {
            return Err(ApiError::CodeNotFound(code_sha256));
        };
        let _one_at_a_time = self.changes.lock().await;
        let previous = self.store.get_function(namespace, name.as_str()).await?;
        if previous.is_none() {
            let existing = self.store.list_functions(namespace).await?.len();
            self.quotas.check_functions(namespace, existing)?;
        }
        let now = now_ms();
        let function = Function {
            namespace: namespace.to_string(),
            name,
            config,
            code_size,
            code_sha256,
            revision: previous.as_ref().map_or(1, |p| p.revision + 1),
            created_ms: previous.as_ref().map_or(now, |p| p.created_ms),
            updated_ms: now,
        };
        let deployment = self.deployment(function).await?;
        let f = &deployment.function;
        self.store.put_function(f, f.revision - 1).await?;
        self.live.write().insert(key_of(f), deployment.clone());
        self.invoker.set_reserved_concurrency(
            namespace,
            f.name.as_str(),
            f.config.reserved_concurrency,
        );
        let mut keep = self.versions.revisions(namespace, f.name.as_str());
        keep.push(f.revision);
        self.invoker.retire(namespace, f.name.as_str(), Some(&keep));
        // A version that ran the previous revision keeps its pool, at its own provisioned
        // concurrency now that `$LATEST` has moved on.
        let previous_revision = previous.as_ref().map(|p| p.revision);
        for published in self.published_versions(namespace, f.name.as_str()) {
            if Some(published.version.function.revision) == previous_revision {
                let target = self.version_provisioned_target(&published);
                let invoker = self.invoker.clone();
                tokio::spawn(async move {
                    let _ = invoker.set_provisioned(&published.deployment, target).await;
                });
            }
        }
        self.changed(namespace, f.name.as_str());
        Ok(Deployed {
            deployment,
            created: previous.is_none(),
        })
    }

    /// Stores a new revision of a function that runs no sandbox of its own (a sequence) and
    /// makes it live; the caller holds `changes` and has read `previous`.
    pub(crate) async fn install_codeless(
        &self,
        namespace: &str,
        name: FunctionName,
        config: lambent_core::FunctionConfig,
        previous: Option<&Function>,
    ) -> Result<Deployed, ApiError> {
        let now = now_ms();
        let function = Function {
            namespace: namespace.to_string(),
            name,
            config,
            code_sha256: String::new(),
            code_size: 0,
            revision: previous.map_or(1, |p| p.revision + 1),
            created_ms: previous.map_or(now, |p| p.created_ms),
            updated_ms: now,
        };
        let deployment = self.deployment(function).await?;
        let f = &deployment.function;
        self.store.put_function(f, f.revision - 1).await?;
        self.live.write().insert(key_of(f), deployment.clone());
        self.invoker
            .set_reserved_concurrency(namespace, f.name.as_str(), None);
        self.invoker.retire(namespace, f.name.as_str(), None);
        self.changed(namespace, f.name.as_str());
        Ok(Deployed {
            deployment,
            created: previous.is_none(),
        })
    }

    /// Deletes a function (with its versions and aliases) and kills its sandboxes.
    pub async fn delete(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        if !self.store.delete_function(namespace, name).await? {
            return Err(ApiError::function_not_found(namespace, name));
        }
        self.store
            .delete_versions_and_aliases(namespace, name)
            .await?;
        self.versions.forget(namespace, name);
        self.live
            .write()
            .remove(&(namespace.to_string(), name.to_string()));
        self.invoker.retire(namespace, name, None);
        self.changed(namespace, name);
        Ok(())
    }

    /// Tells every node that a function (or its versions or aliases) changed.
    pub(crate) fn changed(&self, namespace: &str, name: &str) {
        self.bus.publish(Signal::Function {
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    /// Brings this node's view of one function (live deployment, versions, aliases) in line
    /// with the store, after another node changed it: new code is fetched and unpacked, pools
    /// of revisions nothing runs any more are retired.
    pub async fn refresh(&self, namespace: &str, name: &str) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let stored = self.store.get_function(namespace, name).await?;
        let mut state = self.stored_state().await?;
        let key = (namespace.to_string(), name.to_string());
        let (versions, aliases) = state.remove(&key).unwrap_or_default();
        self.apply(namespace, name, stored, versions, aliases).await
    }

    /// Every function this node knows or the store holds, refreshed (a periodic resync
    /// catches changes whose signal was lost). Reads each table once.
    pub async fn refresh_all(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.changes.lock().await;
        let mut stored: HashMap<Key, Function> = self
            .store
            .all_functions()
            .await?
            .into_iter()
            .map(|f| (key_of(&f), f))
            .collect();
        let mut state = self.stored_state().await?;
        let mut names: std::collections::BTreeSet<Key> = self.live.read().keys().cloned().collect();
        names.extend(stored.keys().cloned());
        for key in names {
            let (versions, aliases) = state.remove(&key).unwrap_or_default();
            let function = stored.remove(&key);
            self.apply(&key.0, &key.1, function, versions, aliases)
                .await?;
        }
        Ok(())
    }

    /// The stored versions and aliases, by function.
    async fn stored_state(
        &self,
    ) -> Result<HashMap<Key, (Vec<FunctionVersion>, Vec<Alias>)>, ApiError> {
        let mut state: HashMap<Key, (Vec<FunctionVersion>, Vec<Alias>)> = HashMap::new();
        for v in self.store.all_versions().await? {
            let key = key_of(&v.function);
            state.entry(key).or_default().0.push(v);
        }
        for a in self.store.all_aliases().await? {
            let key = (a.namespace.clone(), a.function.clone());
            state.entry(key).or_default().1.push(a);
        }
        Ok(state)
    }

    /// Makes this node's view of one function what the store holds (`stored`, `versions`,
    /// `aliases`); the caller holds `changes`.
    async fn apply(
        &self,
        namespace: &str,
        name: &str,
        stored: Option<Function>,
        versions: Vec<FunctionVersion>,
        aliases: Vec<Alias>,
    ) -> Result<(), ApiError> {
        let Some(function) = stored else {
            let known = self.lookup(namespace, name).is_some();
            self.versions.forget(namespace, name);
            self.live
                .write()
                .remove(&(namespace.to_string(), name.to_string()));
            if known {
                self.invoker.retire(namespace, name, None);
            }
            return Ok(());
        };
        let mut published = Vec::with_capacity(versions.len());
        for version in versions {
            let current = self
                .published_versions(namespace, name)
                .into_iter()
                .find(|p| p.version == version);
            let deployment = match current {
                Some(p) => p.deployment,
                None => self.deployment(version.function.clone()).await?,
            };
            published.push(Published {
                version,
                deployment,
            });
        }
        self.versions
            .replace_function(namespace, name, published, aliases);
        let live = self.lookup(namespace, name);
        if live.as_ref().map(|d| &d.function) != Some(&function) {
            let deployment = self.deployment(function).await?;
            let f = &deployment.function;
            self.live.write().insert(key_of(f), deployment.clone());
            self.invoker
                .set_reserved_concurrency(namespace, name, f.config.reserved_concurrency);
            if f.config.provisioned_concurrency > 0 {
                // The function's home keeps its provisioned sandboxes (elsewhere this starts
                // none: the pool's share is 0).
                let invoker = self.invoker.clone();
                tokio::spawn(async move {
                    if let Err(e) = invoker.provision(&deployment).await {
                        let f = &deployment.function;
                        tracing::warn!("provisioned concurrency of {}: {e}", f.name);
                    }
                });
            }
        }
        let mut keep = self.versions.revisions(namespace, name);
        if let Some(d) = self.lookup(namespace, name) {
            keep.push(d.function.revision);
        }
        self.invoker.retire(namespace, name, Some(&keep));
        Ok(())
    }

    /// Resolves a function to a runnable deployment, unpacking its code if needed (a cluster
    /// node fetches code it lacks from the cluster's blob store).
    pub(crate) async fn deployment(&self, function: Function) -> Result<Arc<Deployment>, ApiError> {
        if function.config.is_sequence() {
            // No code: the invoker runs its components.
            return Ok(Arc::new(Deployment {
                function,
                code_dir: Default::default(),
            }));
        }
        let dir = self.codes.path(&function.code_sha256);
        let code_dir = if dir.is_dir() {
            dir
        } else {
            let zip = self.blobs.get(&function.code_sha256).await?;
            let (codes, sha) = (self.codes.clone(), function.code_sha256.clone());
            blocking(move || Ok(codes.ensure(&sha, &zip)?)).await?
        };
        Ok(Arc::new(Deployment { function, code_dir }))
    }
}

fn key_of(f: &Function) -> Key {
    (f.namespace.clone(), f.name.to_string())
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("background task failed: {e}"))))
}
