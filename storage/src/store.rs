//! [`Store`]: one data directory: its lock, its manifest, its data files and its WAL.
//!
//! Layout: `LOCK`, `MANIFEST`, data files `*.qvf` directly in the directory,
//! and the WAL in `wal/`. On open, leftover `*.tmp` files and `*.qvf` files that
//! the manifest does not name (written by a commit that never happened, or
//! dropped by one whose clean-up was cut short) are removed. Other files are
//! left alone.

use crate::backend::{default_backend, Backend};
use crate::error::{Error, Result};
use crate::file::{
    read_data_file, write_atomic, write_data_file, DataHeader, DATA_SUFFIX, TMP_SUFFIX,
};
use crate::lock::DirLock;
use crate::manifest::{self, FileEntry, Manifest, MANIFEST_FILE};
use crate::mmap::{MappedArray, MappedFile, Verify};
use crate::wal::{Lsn, Wal, WalOptions};
use bytemuck::Pod;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the WAL subdirectory.
pub const WAL_DIR: &str = "wal";

/// An open, locked data directory.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    manifest: Manifest,
    removed_on_open: Vec<String>,
    _lock: DirLock,
}

impl Store {
    /// Opens (or creates) the data directory `dir` on the real file system.
    pub fn open(dir: impl AsRef<Path>) -> Result<Store> {
        Self::open_with(dir, default_backend())
    }

    /// Opens (or creates) `dir` through `backend`: lock, read the manifest, clean up unnamed files.
    pub fn open_with(dir: impl AsRef<Path>, backend: Arc<dyn Backend>) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        backend
            .create_dir_all(&dir)
            .map_err(|e| Error::io("create dir", &dir, e))?;
        let lock = DirLock::acquire(&dir)?;
        let path = dir.join(MANIFEST_FILE);
        let manifest = match backend.read(&path) {
            Ok(bytes) => manifest::decode(&bytes).map_err(|e| match e.checksum {
                Some((expected, got)) => Error::ChecksumMismatch {
                    file: path.clone(),
                    offset: e.offset,
                    expected,
                    got,
                },
                None => Error::corrupt(&path, e.offset, e.reason),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Manifest::default(),
            Err(e) => return Err(Error::io("read", &path, e)),
        };
        let mut store = Store {
            dir,
            backend,
            manifest,
            removed_on_open: Vec::new(),
            _lock: lock,
        };
        store.check_files()?;
        store.removed_on_open = store.collect_garbage()?;
        Ok(store)
    }

    fn check_files(&self) -> Result<()> {
        for f in &self.manifest.files {
            let path = self.dir.join(&f.name);
            let len = self
                .backend
                .len(&path)
                .map_err(|e| Error::io("stat live file", &path, e))?;
            if len != f.len {
                return Err(Error::corrupt(
                    &path,
                    len,
                    format!("manifest says {} bytes, file has {len}", f.len),
                ));
            }
        }
        Ok(())
    }

    /// Removes `*.tmp` files and `*.qvf` files the manifest does not name.
    fn collect_garbage(&self) -> Result<Vec<String>> {
        let live: HashSet<&str> = self
            .manifest
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        let names = self
            .backend
            .list(&self.dir)
            .map_err(|e| Error::io("list", &self.dir, e))?;
        let mut removed = Vec::new();
        for name in names {
            let orphan = name.ends_with(TMP_SUFFIX)
                || (name.ends_with(DATA_SUFFIX) && !live.contains(name.as_str()));
            if orphan {
                let path = self.dir.join(&name);
                self.backend
                    .remove(&path)
                    .map_err(|e| Error::io("remove", &path, e))?;
                tracing::info!(file = %path.display(), "removed file no manifest names");
                removed.push(name);
            }
        }
        if !removed.is_empty() {
            self.backend
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync dir", &self.dir, e))?;
        }
        Ok(removed)
    }

    /// The current manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Files removed by the clean-up at open.
    pub fn removed_on_open(&self) -> &[String] {
        &self.removed_on_open
    }

    /// The backend every file of the store goes through.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of a file in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes an immutable data file atomically. It is not live until a [`Store::commit`] names it.
    /// `name` must end in `.qvf`.
    pub fn write_file(
        &self,
        name: &str,
        kind: u32,
        elem_size: u32,
        payload: &[u8],
    ) -> Result<FileEntry> {
        if !manifest::valid_name(name) || !name.ends_with(DATA_SUFFIX) {
            return Err(Error::InvalidArgument(format!(
                "data file name {name:?} must be a plain name ending in {DATA_SUFFIX}"
            )));
        }
        let len = write_data_file(&*self.backend, &self.dir, name, kind, elem_size, payload)?;
        Ok(FileEntry {
            name: name.to_string(),
            len,
        })
    }

    /// Writes a typed array as a data file (element size recorded for the typed view).
    pub fn write_array<T: Pod>(&self, name: &str, kind: u32, items: &[T]) -> Result<FileEntry> {
        self.write_file(
            name,
            kind,
            std::mem::size_of::<T>() as u32,
            bytemuck::cast_slice(items),
        )
    }

    /// Reads a data file through the backend, checking both checksums.
    pub fn read_file(&self, name: &str) -> Result<(DataHeader, Vec<u8>)> {
        read_data_file(&*self.backend, &self.dir.join(name))
    }

    /// Maps a data file read-only.
    pub fn map_file(&self, name: &str, verify: Verify) -> Result<MappedFile> {
        MappedFile::open(self.dir.join(name), verify)
    }

    /// Maps a data file as a typed array.
    pub fn map_array<T: Pod>(&self, name: &str, verify: Verify) -> Result<MappedArray<T>> {
        MappedArray::open(self.dir.join(name), verify)
    }

    /// Atomically replaces the manifest with `files` and `checkpoint_lsn`, then removes
    /// the data files the old manifest named and the new one does not.
    pub fn commit(&mut self, checkpoint_lsn: Lsn, files: Vec<FileEntry>) -> Result<()> {
        let mut names = HashSet::new();
        for f in &files {
            if !manifest::valid_name(&f.name) || !names.insert(f.name.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "bad or duplicate file name {:?} in commit",
                    f.name
                )));
            }
        }
        let next = Manifest {
            generation: self.manifest.generation + 1,
            checkpoint_lsn,
            files,
        };
        write_atomic(
            &*self.backend,
            &self.dir,
            MANIFEST_FILE,
            &[&manifest::encode(&next)],
        )?;
        let dropped: Vec<String> = self
            .manifest
            .files
            .iter()
            .filter(|f| !next.files.iter().any(|n| n.name == f.name))
            .map(|f| f.name.clone())
            .collect();
        self.manifest = next;
        // Best effort: a file left behind here is removed by the next open.
        for name in dropped {
            let path = self.dir.join(&name);
            if let Err(e) = self.backend.remove(&path) {
                tracing::warn!(file = %path.display(), error = %e, "could not remove dropped data file");
            }
        }
        Ok(())
    }

    /// Opens the WAL in `wal/` with `opts` (its backend replaced by this store's).
    pub fn open_wal(&self, opts: WalOptions) -> Result<Wal> {
        Wal::open(self.dir.join(WAL_DIR), opts.backend(self.backend.clone()))
    }
}
