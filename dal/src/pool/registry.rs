//! The registry of open pools: by configuration hash, then by credential.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{recover, PoolInner, PoolTuning};
use crate::config::{CredentialTag, DatabaseConfig};
use crate::error::{Error, Result};
use crate::sql::Backend;

/// Open pools by configuration hash, each hash with one pool per credential (in creation
/// order). Almost always one.
type Registry = HashMap<String, Vec<Arc<PoolInner>>>;

/// The registry's lock. Poisoning: every change made under the write lock is one `push`,
/// `retain` or `remove` (a new pool is built before it is inserted), so a panic while the lock
/// was held cannot have left the map half-updated; a poisoned lock is recovered, never read as
/// "no pools".
fn registry() -> &'static RwLock<Registry> {
    static REGISTRY: OnceLock<RwLock<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

fn read() -> RwLockReadGuard<'static, Registry> {
    recover(registry().read())
}

fn write() -> RwLockWriteGuard<'static, Registry> {
    recover(registry().write())
}

/// The open pool for `config`, exactly (same hash and same password; created, not yet
/// connected, if there is none).
///
/// A pool created here starts with the tuning of an open pool with the same hash (they share
/// it), else with `tuning`, else with the defaults.
pub(crate) fn pool_for(
    backend: Backend,
    config: &DatabaseConfig,
    tuning: Option<PoolTuning>,
) -> Result<Arc<PoolInner>> {
    let hash = config.hash();
    let credential = config.credential_tag();
    let found = find_exact(&read(), &hash, credential, backend)?;
    if let Some(p) = found {
        warn_if_settings_differ(&p, config);
        return Ok(p);
    }
    let mut map = write();
    if let Some(p) = find_exact(&map, &hash, credential, backend)? {
        drop(map);
        warn_if_settings_differ(&p, config);
        return Ok(p);
    }
    let tuning = map
        .get(&hash)
        .and_then(|pools| pools.first())
        .map(|sibling| sibling.tuning.get())
        .or(tuning)
        .unwrap_or_default();
    let pool = Arc::new(PoolInner::new(hash.clone(), backend, config, tuning)?);
    map.entry(hash).or_default().push(pool.clone());
    Ok(pool)
}

/// Where a `Database` keeps a pool it uses (its own, or one of its replicas' and read pools):
/// the pool last used, so the registry is consulted only once it was closed, and the tuning to
/// give a pool it creates.
#[derive(Default)]
pub(crate) struct PoolSlot {
    pool: Option<Arc<PoolInner>>,
    /// Given to a pool created here when no open pool shares its hash (see
    /// [`PoolManager::set_pool_tuning`](crate::PoolManager::set_pool_tuning)).
    pub(crate) tuning: Option<PoolTuning>,
}

impl PoolSlot {
    /// The pool for `config`: the one last used while it is open, else the registry's (created
    /// if need be, see [`pool_for`]).
    pub(crate) fn open(
        &mut self,
        backend: Backend,
        config: &DatabaseConfig,
    ) -> Result<Arc<PoolInner>> {
        match self.pool.as_ref() {
            Some(p) if !p.is_closed() => Ok(p.clone()),
            _ => {
                let p = pool_for(backend, config, self.tuning)?;
                self.pool = Some(p.clone());
                Ok(p)
            }
        }
    }

    /// The pool last used, if any (open or closed).
    pub(crate) fn last(&self) -> Option<Arc<PoolInner>> {
        self.pool.clone()
    }
}

/// Warns (target `dal::pool`) when `config` joins `pool` — same hash, same credentials — with a
/// retry policy or circuit-breaker settings other than the pool's: they are not part of the
/// hash, and the pool keeps those of the configuration that created it.
fn warn_if_settings_differ(pool: &PoolInner, config: &DatabaseConfig) {
    let kept = &pool.config;
    if config.get_retry_policy() != kept.get_retry_policy() {
        warn_kept(
            pool,
            "retry policy",
            kept.get_retry_policy(),
            config.get_retry_policy(),
        );
    }
    if config.get_circuit_breaker() != kept.get_circuit_breaker() {
        warn_kept(
            pool,
            "circuit breaker",
            kept.get_circuit_breaker(),
            config.get_circuit_breaker(),
        );
    }
}

fn warn_kept(pool: &PoolInner, setting: &str, kept: &dyn fmt::Debug, ignored: &dyn fmt::Debug) {
    tracing::warn!(
        target: "dal::pool",
        alias = %pool.alias,
        hash = %pool.hash,
        setting,
        "a database joins the existing pool {} (same configuration hash and credentials) with \
         another {setting}: the pool keeps {kept:?} and ignores {ignored:?} ({setting} is not \
         part of the configuration hash; give the database another alias for a pool of its own)",
        pool.alias
    );
}

/// The pool registered for `hash` and `credential`, after checking that no pool of another
/// backend has this hash.
fn find_exact(
    map: &Registry,
    hash: &str,
    credential: CredentialTag,
    backend: Backend,
) -> Result<Option<Arc<PoolInner>>> {
    let Some(pools) = map.get(hash) else {
        return Ok(None);
    };
    if let Some(p) = pools.iter().find(|p| p.backend != backend) {
        return Err(Error::Config(format!(
            "a {} pool already exists for this configuration (alias {}); use a different alias for a {} database",
            p.backend.as_str(),
            p.alias,
            backend.as_str()
        )));
    }
    Ok(pools.iter().find(|p| p.credential == credential).cloned())
}

/// Every open pool.
pub(crate) fn registered_pools() -> Vec<Arc<PoolInner>> {
    read().values().flatten().cloned().collect()
}

/// Every open pool, grouped by configuration hash (groups in no particular order, pools of a
/// group in creation order).
pub(crate) fn registered_groups() -> Vec<Vec<Arc<PoolInner>>> {
    read().values().filter(|v| !v.is_empty()).cloned().collect()
}

/// The open pools with configuration hash `hash` (several when configurations differ only in
/// their password), in creation order.
pub(crate) fn registered_pools_with_hash(hash: &str) -> Vec<Arc<PoolInner>> {
    read().get(hash).cloned().unwrap_or_default()
}

/// The open pool for exactly one configuration (its hash and its password's tag), if any.
/// Creates nothing.
pub(crate) fn registered_pool_for(hash: &str, credential: CredentialTag) -> Option<Arc<PoolInner>> {
    read()
        .get(hash)
        .and_then(|v| v.iter().find(|p| p.credential == credential).cloned())
}

/// Removes `pool` from the registry (if it is still registered).
pub(crate) fn unregister(pool: &Arc<PoolInner>) {
    let mut map = write();
    if let Some(v) = map.get_mut(&pool.hash) {
        v.retain(|p| !Arc::ptr_eq(p, pool));
        if v.is_empty() {
            map.remove(&pool.hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_new_pool_takes_the_tuning_of_an_open_pool_with_its_hash() -> Result<()> {
        let config = DatabaseConfig::from_url("sqlite::memory:")?.alias("registry-sibling-tuning");
        let sqlite: Backend = "sqlite".parse()?;
        let mine = PoolTuning::default().idle_timeout(Some(Duration::from_secs(7)));
        let theirs = PoolTuning::default().idle_timeout(Some(Duration::from_secs(9)));
        let first = pool_for(sqlite, &config, Some(mine))?;
        assert_eq!(first.tuning.get(), mine);
        // Same hash, another password: a separate pool that shares the first one's tuning,
        // whatever its own database was given.
        let sibling = pool_for(sqlite, &config.clone().password("x"), Some(theirs))?;
        assert!(!Arc::ptr_eq(&first, &sibling));
        assert_eq!(sibling.tuning.get(), mine);
        // The same configuration finds the same pool.
        assert!(Arc::ptr_eq(&first, &pool_for(sqlite, &config, None)?));
        unregister(&first);
        unregister(&sibling);
        let alone = pool_for(sqlite, &config, None)?;
        assert_eq!(alone.tuning.get(), PoolTuning::default());
        unregister(&alone);
        Ok(())
    }
}
