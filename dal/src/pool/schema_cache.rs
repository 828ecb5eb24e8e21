//! The entity layer's cache of table schemas, one per pool: what [`crate::entity`] last loaded
//! for each entity, with when it was loaded.
//!
//! It belongs to the pool because a pool is one database (pools that differ only in their
//! password reach the same database, each with its own cache, which is as correct as one cache
//! per process: the entity layer revalidates entries after a short TTL and handles tables
//! changed behind its back). Dropped with the pool, so a closed pool leaves nothing behind.
//!
//! The values are type-erased (`Arc<dyn Any>`): the pool must not depend on the entity layer,
//! which depends on the pool through [`Connection`](crate::Connection). The entity layer puts
//! and gets its own schema type; an entry of another type is a miss.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::recover;

/// One cached value and when it was loaded.
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    loaded: Instant,
}

/// Entity name → its schema as last loaded. Poisoning: every change is one `insert` or
/// `remove`, so a panic cannot leave the map half-updated; a poisoned lock is recovered.
#[derive(Default)]
pub(crate) struct SchemaCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl SchemaCache {
    fn entries(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        recover(self.entries.lock())
    }

    /// The value cached for `entity` if it is a `T` loaded less than `max_age` ago.
    pub(crate) fn get<T: Any + Send + Sync>(
        &self,
        entity: &str,
        max_age: Duration,
    ) -> Option<Arc<T>> {
        let value = self
            .entries()
            .get(entity)
            .filter(|e| e.loaded.elapsed() < max_age)
            .map(|e| e.value.clone())?;
        value.downcast::<T>().ok()
    }

    /// Caches `value` for `entity`, loaded at `loaded`.
    pub(crate) fn put<T: Any + Send + Sync>(&self, entity: String, value: Arc<T>, loaded: Instant) {
        self.entries().insert(entity, Entry { value, loaded });
    }

    /// Forgets what is cached for `entity`.
    pub(crate) fn forget(&self, entity: &str) {
        self.entries().remove(entity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_are_typed_and_can_be_forgotten() {
        let cache = SchemaCache::default();
        let now = Instant::now();
        cache.put("user".into(), Arc::new(7u32), now);
        assert_eq!(
            cache.get::<u32>("user", Duration::from_secs(60)).as_deref(),
            Some(&7)
        );
        // Another type is a miss, not a panic.
        assert!(cache
            .get::<String>("user", Duration::from_secs(60))
            .is_none());
        // Too old is a miss.
        assert!(cache.get::<u32>("user", Duration::ZERO).is_none());
        cache.forget("user");
        assert!(cache.get::<u32>("user", Duration::from_secs(60)).is_none());
    }
}
