//! Offline builds of a collection inside a data directory (`quiver index
//! --data DATA --collection NAME`), for a server to open at its next start.
//!
//! The collection is created and filled in a hidden staging directory,
//! `DATA/collections/.building-<name>-<nanos>/`, then checkpointed (every
//! point in segment files, the WAL truncated), closed and published under
//! its name by one atomic rename. A server starting meanwhile never opens a
//! half-built collection: [`Registry::open`](super::Registry::open) skips a
//! staging directory whose build still holds its lock and removes one left
//! by a build that died.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quiver_storage::Backend as _;

use super::data_dir::{io, validate_name, RegistryError, Result, BUILDING_PREFIX, COLLECTIONS_DIR};
use crate::collection::{Collection, CollectionConfig, CollectionError};

/// A collection being built offline; [`OfflineBuild::publish`] makes it a
/// collection of the data directory. Dropped unpublished, its staging
/// directory is removed.
#[derive(Debug)]
pub struct OfflineBuild {
    name: String,
    root: PathBuf,
    staging: PathBuf,
    collection: Option<Arc<Collection>>,
}

impl OfflineBuild {
    /// Starts building the collection `name` of the data directory `data`
    /// with `config`. Refuses ([`RegistryError::AlreadyExists`]) when
    /// `DATA/collections/<name>` exists. `field` names the name's source in
    /// errors (a request field or a command-line flag).
    pub fn create(
        data: &Path,
        field: &'static str,
        name: &str,
        config: CollectionConfig,
    ) -> Result<OfflineBuild> {
        validate_name(field, name)?;
        let root = data.join(COLLECTIONS_DIR);
        std::fs::create_dir_all(&root).map_err(io(&root))?;
        if root.join(name).exists() {
            return Err(RegistryError::AlreadyExists(name.to_string()));
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let staging = root.join(format!("{BUILDING_PREFIX}{name}-{nanos}"));
        let collection = match Collection::create(&staging, config) {
            Ok(c) => c,
            Err(source) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(RegistryError::Collection {
                    name: name.to_string(),
                    source,
                });
            }
        };
        Ok(OfflineBuild {
            name: name.to_string(),
            root,
            staging,
            collection: Some(collection),
        })
    }

    /// The collection being built (write to it with `upsert`/`delete`).
    pub fn collection(&self) -> &Collection {
        self.collection
            .as_deref()
            .expect("the collection is held until publish or drop")
    }

    /// The staging directory.
    pub fn staging_dir(&self) -> &Path {
        &self.staging
    }

    /// Checkpoints every point into segment files, closes the collection
    /// and renames it to `DATA/collections/<name>`, which it returns.
    /// Refuses if a collection of that name appeared meanwhile.
    pub fn publish(mut self) -> Result<PathBuf> {
        let wrap = |name: &str| {
            let name = name.to_string();
            move |source: CollectionError| RegistryError::Collection { name, source }
        };
        let c = self
            .collection
            .take()
            .expect("the collection is held until publish or drop");
        c.checkpoint_all().map_err(wrap(&self.name))?;
        c.close().map_err(wrap(&self.name))?;
        // `close` joined the background checkpoints, the only other holders:
        // dropping the last handle releases the directory lock.
        drop(c);
        let target = self.root.join(&self.name);
        if target.exists() {
            return Err(RegistryError::AlreadyExists(self.name.clone()));
        }
        std::fs::rename(&self.staging, &target).map_err(io(&target))?;
        // The rename is durable once the parent directory is synced.
        quiver_storage::FsBackend
            .sync_dir(&self.root)
            .map_err(io(&self.root))?;
        self.staging = target.clone();
        Ok(target)
    }
}

impl Drop for OfflineBuild {
    fn drop(&mut self) {
        // Unpublished (an error or an early return): remove the staging directory.
        if let Some(c) = self.collection.take() {
            let _ = c.close();
            drop(c);
            let _ = std::fs::remove_dir_all(&self.staging);
        } else if self
            .staging
            .file_name()
            .is_some_and(|n| n.to_str().is_some_and(|n| n.starts_with(BUILDING_PREFIX)))
        {
            // `publish` failed after closing the collection.
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::Point;
    use crate::distance::Metric;
    use crate::server::Registry;

    fn points(n: u64) -> Vec<Point> {
        (0..n)
            .map(|i| Point {
                id: i,
                vector: vec![i as f32, 1.0, (i % 5) as f32],
                payload: None,
            })
            .collect()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn publish_makes_a_collection_the_registry_opens() {
        let tmp = tempfile::tempdir().unwrap();
        let build = OfflineBuild::create(
            tmp.path(),
            "collection",
            "bulk",
            CollectionConfig::new(3, Metric::L2),
        )
        .unwrap();
        build.collection().upsert(points(300)).unwrap();
        let root = tmp.path().join(COLLECTIONS_DIR);
        assert!(entries(&root)[0].starts_with(BUILDING_PREFIX));
        let dir = build.publish().unwrap();
        assert_eq!(dir, root.join("bulk"));
        assert_eq!(entries(&root), ["bulk"]);

        let reg = Registry::open(tmp.path()).unwrap();
        let c = reg.get("bulk").unwrap();
        assert_eq!(c.count(), 300);
        let stats = c.stats();
        // Everything is in segment files: nothing to replay from the WAL.
        assert_eq!(stats.checkpoint_lsn, stats.last_lsn);
        assert_eq!(stats.active_points, 0);

        // The name is taken now, whether the registry has it open or not.
        let again = OfflineBuild::create(
            tmp.path(),
            "collection",
            "bulk",
            CollectionConfig::new(3, Metric::L2),
        );
        assert!(matches!(again, Err(RegistryError::AlreadyExists(_))));
        assert_eq!(entries(&root), ["bulk"]);
    }

    #[test]
    fn invalid_names_and_unpublished_builds_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let e = OfflineBuild::create(
            tmp.path(),
            "--collection",
            "a/b",
            CollectionConfig::new(3, Metric::L2),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("--collection:"), "{e}");
        let build = OfflineBuild::create(
            tmp.path(),
            "collection",
            "x",
            CollectionConfig::new(3, Metric::L2),
        )
        .unwrap();
        build.collection().upsert(points(10)).unwrap();
        drop(build);
        assert!(entries(&tmp.path().join(COLLECTIONS_DIR)).is_empty());
    }

    #[test]
    fn publish_refuses_a_name_taken_meanwhile() {
        let tmp = tempfile::tempdir().unwrap();
        let build = OfflineBuild::create(
            tmp.path(),
            "collection",
            "c",
            CollectionConfig::new(3, Metric::L2),
        )
        .unwrap();
        build.collection().upsert(points(10)).unwrap();
        let reg = Registry::open(tmp.path()).unwrap();
        reg.create("c", CollectionConfig::new(2, Metric::Cosine))
            .unwrap();
        assert!(matches!(
            build.publish(),
            Err(RegistryError::AlreadyExists(_))
        ));
        assert_eq!(entries(&tmp.path().join(COLLECTIONS_DIR)), ["c"]);
        assert_eq!(reg.get("c").unwrap().config().dim, 2);
    }
}
