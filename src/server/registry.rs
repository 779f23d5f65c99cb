//! The collections of a data directory, by name.
//!
//! Layout: `DATA/collections/<name>/` holds one collection. Every collection
//! is opened when the registry opens. Dropping renames the directory to a
//! hidden `.dropped-*` name first (atomic, so a crash never leaves a half
//! deleted collection that would be reopened), then removes it; leftovers of
//! interrupted drops are removed at the next open. Staging directories of
//! offline builds (`offline.rs`) are skipped while their build runs and
//! removed once it has died unpublished.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::data_dir::{
    io, validate_name, RegistryError, Result, BUILDING_PREFIX, COLLECTIONS_DIR, DROPPED_PREFIX,
};
use crate::collection::{Collection, CollectionConfig, CollectionError, CONFIG_FILE};

/// Removes the staging directory of an offline build (see `offline.rs`)
/// unless the build is still running, i.e. still holds its directory lock.
fn remove_abandoned_build(path: &Path) -> Result<()> {
    match quiver_storage::DirLock::acquire(path) {
        Ok(lock) => {
            drop(lock);
            tracing::info!(path = %path.display(), "removing an interrupted offline build");
            std::fs::remove_dir_all(path).map_err(io(path))
        }
        Err(quiver_storage::Error::Locked { .. }) => {
            tracing::info!(path = %path.display(), "skipping an offline build in progress");
            Ok(())
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "skipping: cannot inspect offline build directory");
            Ok(())
        }
    }
}

/// Open collections by name.
#[derive(Debug)]
pub struct Registry {
    root: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
    /// Serialises create and drop (they touch the file system).
    admin: Mutex<()>,
}

impl Registry {
    /// Opens every collection under `data/collections/`, creating the
    /// directories if needed.
    pub fn open(data: &Path) -> Result<Registry> {
        let root = data.join(COLLECTIONS_DIR);
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root).map_err(io(&root))? {
            let entry = entry.map_err(io(&root))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                tracing::warn!(path = %path.display(), "skipping non-UTF-8 entry");
                continue;
            };
            if name.starts_with(DROPPED_PREFIX) {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
                continue;
            }
            if name.starts_with(BUILDING_PREFIX) {
                remove_abandoned_build(&path)?;
                continue;
            }
            if validate_name("name", &name).is_err() || !path.join(CONFIG_FILE).is_file() {
                tracing::warn!(path = %path.display(), "skipping: not a collection directory");
                continue;
            }
            let c = Collection::open(&path).map_err(|source| RegistryError::Collection {
                name: name.clone(),
                source,
            })?;
            tracing::info!(collection = %name, points = c.count(), "opened collection");
            collections.insert(name, c);
        }
        Ok(Registry {
            root,
            collections: RwLock::new(collections),
            admin: Mutex::new(()),
        })
    }

    /// The collection called `name`.
    pub fn get(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| RegistryError::UnknownCollection(name.to_string()))
    }

    /// Names of all collections, ascending.
    pub fn names(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    /// Creates the collection `name` (blocking file-system work).
    pub fn create(&self, name: &str, config: CollectionConfig) -> Result<Arc<Collection>> {
        validate_name("name", name)?;
        let _admin = self.admin.lock();
        if self.collections.read().contains_key(name) {
            return Err(RegistryError::AlreadyExists(name.to_string()));
        }
        let dir = self.root.join(name);
        if dir.exists() {
            // A directory we did not open (not a collection, or a failed create).
            return Err(RegistryError::AlreadyExists(name.to_string()));
        }
        let c = match Collection::create(&dir, config) {
            Ok(c) => c,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(match source {
                    CollectionError::AlreadyExists(_) => {
                        RegistryError::AlreadyExists(name.to_string())
                    }
                    source => RegistryError::Collection {
                        name: name.to_string(),
                        source,
                    },
                });
            }
        };
        self.collections.write().insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Drops the collection `name`: closes it and deletes its directory
    /// (blocking). Requests still holding the collection finish against it.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        validate_name("name", name)?;
        let _admin = self.admin.lock();
        let c = self
            .collections
            .write()
            .remove(name)
            .ok_or_else(|| RegistryError::UnknownCollection(name.to_string()))?;
        if let Err(e) = c.close() {
            tracing::warn!(collection = %name, error = %e, "close before drop failed");
        }
        let dir = self.root.join(name);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let grave = self.root.join(format!("{DROPPED_PREFIX}{name}-{nanos}"));
        std::fs::rename(&dir, &grave).map_err(io(&dir))?;
        drop(c);
        std::fs::remove_dir_all(&grave).map_err(io(&grave))?;
        Ok(())
    }

    /// Closes every collection for a shutdown: waits for checkpoints,
    /// writes the memory tier to segment files (so the next start loads
    /// them instead of replaying the WAL) and syncs the WAL. Returns the
    /// first error after trying them all.
    pub fn close_all(&self) -> Result<()> {
        let mut first = None;
        for (name, c) in self.collections.read().iter() {
            if let Err(source) = c.close().and_then(|()| c.flush()) {
                tracing::error!(collection = %name, error = %source, "close failed");
                first.get_or_insert(RegistryError::Collection {
                    name: name.clone(),
                    source,
                });
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;

    #[test]
    fn abandoned_offline_builds_are_removed_running_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(COLLECTIONS_DIR);
        let dead = root.join(format!("{BUILDING_PREFIX}a-1"));
        let live = root.join(format!("{BUILDING_PREFIX}b-2"));
        for d in [&dead, &live] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join(CONFIG_FILE), b"{}").unwrap();
        }
        let _running = quiver_storage::DirLock::acquire(&live).unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        assert!(reg.names().is_empty());
        assert!(!dead.exists());
        assert!(live.join(CONFIG_FILE).exists());
    }

    #[test]
    fn create_drop_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        reg.create("a", CollectionConfig::new(2, Metric::L2))
            .unwrap();
        reg.create("b", CollectionConfig::new(3, Metric::L2))
            .unwrap();
        assert!(matches!(
            reg.create("a", CollectionConfig::new(2, Metric::L2)),
            Err(RegistryError::AlreadyExists(_))
        ));
        reg.drop_collection("b").unwrap();
        assert!(matches!(
            reg.get("b"),
            Err(RegistryError::UnknownCollection(_))
        ));
        reg.close_all().unwrap();
        drop(reg);
        let reg = Registry::open(tmp.path()).unwrap();
        assert_eq!(reg.names(), ["a"]);
        assert_eq!(reg.get("a").unwrap().config().dim, 2);
    }
}
