//! Generations: crash-consistent snapshots by shadow paging.
//!
//! Generation G of an index is `meta.<G>` (settings, posting slots, version
//! map, free list) plus `heads.<G>.hnsw` (the head graph), over the shared
//! `postings.dat` and `vectors.f32`. `meta.<G>` is written last, atomically
//! (temp file, fsync, rename, fsync the directory), after the data files
//! and the head graph are fsynced: a generation whose `meta` exists is
//! complete.
//!
//! Nothing a written generation references is ever changed afterwards:
//! - a posting is only *appended to* in place: a new chunk goes after the
//!   bytes the slots of earlier generations cover. The page holding the end
//!   of the old bytes is rewritten by the OS with identical old bytes plus
//!   new ones, so a write torn at any sector boundary leaves every
//!   referenced byte as it was;
//! - a rewritten posting goes to another extent, and an extent an older
//!   generation may reference is reused only after `release_before` says
//!   that generation is gone ([`super::alloc`]);
//! - `vectors.f32` rows are written once, for ids past every generation's
//!   count;
//! - the file is only truncated past what every remaining generation uses.
//!
//! Updates after the last checkpoint are not durable: a crash loses them
//! and the owner replays its own log. A checkpoint waits for update
//! operations in flight, snapshots the in-memory state while new updates
//! wait (a copy of the slots and version map), then writes the files while
//! updates continue (only head inserts, i.e. splits, wait for the head
//! graph to be written).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, RwLock};
use quiver_storage::Backend;

use super::alloc::{Allocator, Extent, FreeExtent};
use super::epoch::{Deferred, Epochs};
use super::file::PageFile;
use super::meta::{Meta, MetaInfo};
use super::posting::PAGE;
use super::segvec::SegVec;
use super::slots::{Cell, State};
use super::versions::{self, VersionMap};
use super::{
    header, Encoding, OpenParams, PostingLayout, PostingSlot, Result, Spann, SpannError,
    SpannParams, POSTINGS_MAGIC, VECTORS_MAGIC,
};
use crate::distance::Metric;
use crate::hnsw::{Hnsw, NodeId};
use crate::limits;
use crate::quant::Sq8Quantizer;
use crate::score::VectorCodec;

/// `meta.<g>` in `dir`.
pub fn meta_path(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("meta.{g}"))
}

/// `heads.<g>.hnsw` in `dir`.
pub fn heads_path(dir: &Path, g: u64) -> PathBuf {
    dir.join(format!("heads.{g}.hnsw"))
}

/// Files of generation-numbered kinds.
enum Kind {
    Meta(u64),
    Heads(u64),
    Temp,
}

fn kind(name: &str) -> Option<Kind> {
    if name.ends_with(".tmp") && (name.starts_with("meta.") || name.starts_with("heads.")) {
        return Some(Kind::Temp);
    }
    if let Some(g) = name.strip_prefix("meta.") {
        return g.parse().ok().map(Kind::Meta);
    }
    let g = name.strip_prefix("heads.")?.strip_suffix(".hnsw")?;
    g.parse().ok().map(Kind::Heads)
}

fn entries(backend: &dyn Backend, dir: &Path) -> Result<Vec<(PathBuf, Kind)>> {
    let names = backend.list(dir).map_err(SpannError::io(dir))?;
    Ok(names
        .iter()
        .filter_map(|n| kind(n).map(|k| (dir.join(n), k)))
        .collect())
}

/// The complete generations in `dir` (those with a `meta`), ascending.
pub fn list(backend: &dyn Backend, dir: &Path) -> Result<Vec<u64>> {
    let mut g: Vec<u64> = entries(backend, dir)?
        .into_iter()
        .filter_map(|(_, k)| match k {
            Kind::Meta(g) => Some(g),
            _ => None,
        })
        .collect();
    g.sort_unstable();
    Ok(g)
}

/// Removes the generation files of `dir` for which `doomed` is true, and
/// temp files; fsyncs the directory if anything went.
fn remove(backend: &dyn Backend, dir: &Path, doomed: impl Fn(u64) -> bool) -> Result<()> {
    let mut any = false;
    for (path, k) in entries(backend, dir)? {
        let go = match k {
            Kind::Meta(g) | Kind::Heads(g) => doomed(g),
            Kind::Temp => true,
        };
        if go {
            backend.remove(&path).map_err(SpannError::io(&path))?;
            any = true;
        }
    }
    if any {
        backend.sync_dir(dir).map_err(SpannError::io(dir))?;
    }
    Ok(())
}

/// Removes every generation file (before a build replaces the index).
pub(crate) fn remove_all(backend: &dyn Backend, dir: &Path) -> Result<()> {
    remove(backend, dir, |_| true)
}

/// Whether `path` exists, through `backend`.
pub(crate) fn exists(backend: &dyn Backend, path: &Path) -> Result<bool> {
    backend.exists(path).map_err(SpannError::io(path))
}

impl Spann {
    /// Opens the newest complete generation of the index in `dir`.
    pub fn open(dir: &Path, opts: OpenParams) -> Result<Self> {
        let Some(&g) = list(&*opts.backend, dir)?.last() else {
            if exists(&*opts.backend, &dir.join("meta"))? {
                return Err(SpannError::corrupt(
                    dir.join("meta"),
                    0,
                    "index written before generations (format 1); rebuild it",
                ));
            }
            let path = meta_path(dir, 1);
            return Err(SpannError::Io {
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no generation (meta.<G>) in the index directory",
                ),
                file: path,
            });
        };
        Self::open_generation(dir, g, opts)
    }

    /// Opens generation `generation` exactly, checking every file against
    /// its `meta`, and removes the files of newer generations (never
    /// committed by the owner). Bytes past what the generation uses are cut
    /// off `postings.dat` and `vectors.f32`.
    pub fn open_generation(dir: &Path, generation: u64, opts: OpenParams) -> Result<Self> {
        let backend = opts.backend;
        let mpath = meta_path(dir, generation);
        let meta = Meta::load(&*backend, &mpath)?;
        if meta.info.generation != generation {
            return Err(SpannError::corrupt(
                &mpath,
                0,
                format!("holds generation {}", meta.info.generation),
            ));
        }
        remove(&*backend, dir, |g| g > generation)?;
        let oldest = list(&*backend, dir)?.first().copied().unwrap_or(generation);
        let info = meta.info.clone();
        let hpath = heads_path(dir, generation);
        let n = meta.postings.len();
        let heads = Hnsw::load_from(&*backend, &hpath, 64 + n / 8)?;
        if heads.dim() != info.dim
            || heads.metric() != info.metric
            || heads.len() != n
            || heads.encoding() != info.params.head_encoding
        {
            return Err(SpannError::corrupt(
                &hpath,
                0,
                format!(
                    "head graph holds {} x {} ({}, {}); meta expects {} x {} ({}, {})",
                    heads.len(),
                    heads.dim(),
                    heads.metric(),
                    heads.encoding(),
                    n,
                    info.dim,
                    info.metric,
                    info.params.head_encoding
                ),
            ));
        }
        let encoding = info.params.encoding;
        let codec = match (&meta.sq8, encoding) {
            (Some(b), Encoding::Sq8) => VectorCodec::Sq8(Sq8Quantizer::from_bytes(b)?),
            (None, Encoding::Sq8) => {
                return Err(SpannError::corrupt(
                    &mpath,
                    0,
                    "SQ8 index without a quantizer",
                ))
            }
            (_, Encoding::F32) => VectorCodec::F32,
            (_, Encoding::F16) => VectorCodec::F16,
        };
        if codec.sq8().is_some_and(|q| q.dim() != info.dim) {
            return Err(SpannError::corrupt(
                &mpath,
                0,
                "quantizer dimension differs",
            ));
        }
        let free = check_extents(&meta, &heads, &mpath)?;
        let postings_file = PageFile::open(
            &*backend,
            &dir.join("postings.dat"),
            header(POSTINGS_MAGIC, &info),
            opts.io,
        )?;
        if postings_file.byte_len()? > info.file_pages * PAGE as u64 {
            postings_file.set_len(info.file_pages * PAGE as u64)?;
        }
        let layout = PostingLayout {
            dim: info.dim,
            encoding,
        };
        let ids = meta.versions.len();
        let (vectors_file, vectors_len) = if encoding != Encoding::F32 {
            let f = PageFile::open(
                &*backend,
                &dir.join("vectors.f32"),
                header(VECTORS_MAGIC, &info),
                opts.io,
            )?;
            let used = vectors_end(info.dim, ids);
            let len = f.byte_len()?;
            if len > used {
                f.set_len(used)?;
            }
            (Some(f), len.min(used))
        } else {
            (None, 0)
        };
        let io = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.io_threads.max(1))
            .thread_name(|i| format!("spann-io-{i}"))
            .build()
            .map_err(|e| SpannError::param("io_threads", format!("io thread pool: {e}")))?;
        let slots: SegVec<super::slots::PostingCell> = SegVec::new();
        for (h, s) in meta.postings.iter().enumerate() {
            let state = if heads.is_deleted(NodeId(h as u32)) {
                State::Retired
            } else {
                State::Live
            };
            slots.get(h).set(Cell {
                slot: *s,
                born: generation,
                state,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            backend,
            params: info.params,
            dim: info.dim,
            metric: info.metric,
            nonce: info.nonce,
            dist: info.metric.kernel(),
            codec,
            layout,
            heads: RwLock::new(heads),
            slots,
            versions: VersionMap::from_words(&meta.versions),
            alloc: Mutex::new(Allocator::new(info.file_pages, free, generation, oldest)),
            epochs: Epochs::default(),
            ops: Default::default(),
            head_inserts: RwLock::new(()),
            checkpointing: Mutex::new(()),
            bootstrap: Mutex::new(()),
            draining: Default::default(),
            written: generation.into(),
            postings_file,
            vectors_file,
            vectors_len: Mutex::new(vectors_len),
            io,
            stats: Default::default(),
        })
    }

    /// Creates an empty index in `dir` (created if needed; it must not
    /// already hold an index) and opens it. The first inserts create heads;
    /// splits grow the head set. SQ8 postings need a quantizer trained on
    /// data, so they are only available through [`Spann::build`].
    pub fn create(
        dir: &Path,
        dim: usize,
        metric: Metric,
        params: SpannParams,
        opts: OpenParams,
    ) -> Result<Spann> {
        params.validate()?;
        if dim == 0 || dim > limits::MAX_DIMENSION {
            return Err(SpannError::param(
                "dim",
                format!("must be in 1..={}, got {dim}", limits::MAX_DIMENSION),
            ));
        }
        if params.head_encoding != crate::hnsw::VectorEncoding::F32 {
            return Err(SpannError::param("head_encoding", format!(
                "{} needs heads from a bulk build (Spann::build); an empty index starts with f32 heads",
                params.head_encoding
            )));
        }
        super::check_posting_room(dim, &params)?;
        if params.encoding == Encoding::Sq8 {
            return Err(SpannError::param(
                "encoding",
                "sq8 needs a quantizer trained on data: build the index from \
                 vectors, or create it with f32 or f16 postings",
            ));
        }
        let backend = &*opts.backend;
        backend.create_dir_all(dir).map_err(SpannError::io(dir))?;
        if !list(backend, dir)?.is_empty() || exists(backend, &dir.join("meta"))? {
            return Err(SpannError::param(
                "dir",
                format!("{} already holds a SPANN index", dir.display()),
            ));
        }
        remove_all(backend, dir)?;
        let meta = Meta {
            info: MetaInfo {
                params,
                dim,
                metric,
                nonce: rand::random(),
                generation: 1,
                file_pages: 1,
            },
            sq8: None,
            postings: Vec::new(),
            versions: Vec::new(),
            free: Vec::new(),
        };
        PageFile::write_new(
            backend,
            &dir.join("postings.dat"),
            header(POSTINGS_MAGIC, &meta.info),
        )?;
        if params.encoding != Encoding::F32 {
            PageFile::write_new(
                backend,
                &dir.join("vectors.f32"),
                header(VECTORS_MAGIC, &meta.info),
            )?;
        } else {
            let _ = backend.remove(&dir.join("vectors.f32"));
        }
        let heads = Hnsw::new(dim, metric, params.hnsw, 0)?;
        heads.save_to(backend, &heads_path(dir, 1))?;
        meta.save(backend, &meta_path(dir, 1))?;
        Spann::open_generation(dir, 1, opts)
    }

    /// Writes a complete, consistent snapshot of the index as a new
    /// generation and returns its number. Update operations in flight are
    /// waited for and new ones wait while the in-memory state is copied;
    /// the files are then written and fsynced while updates continue
    /// (splits wait for the head graph file). Searches never wait.
    ///
    /// Older generations stay on disk (and their pages untouched) until
    /// [`Spann::release_before`].
    pub fn checkpoint(&self) -> Result<u64> {
        let _one = self.checkpointing.lock();
        let ops = self.ops.pause();
        let (g, meta, deleted) = {
            let heads = self.heads.read();
            let n = heads.len();
            let deleted = heads.deleted();
            let postings: Vec<PostingSlot> = (0..n)
                .map(|h| {
                    let c = self.slots.get(h).get();
                    if c.state == State::Live {
                        c.slot
                    } else {
                        PostingSlot::default()
                    }
                })
                .collect();
            let mut words = self.versions.snapshot();
            // Reassignments whose version raise still waits for readers:
            // no reader survives a reopen, so the snapshot takes them now.
            for d in self.epochs.pending() {
                if let Deferred::Bump { id, version } = d {
                    if let Some(w) = words.get_mut(id as usize) {
                        if versions::newer(version, *w & versions::VERSION_MASK) {
                            *w = (*w & versions::DELETED) | version;
                        }
                    }
                }
            }
            // (Moves still flagged have no copies published: they restart.)
            words.iter_mut().for_each(|w| *w &= !versions::MOVING);
            let mut alloc = self.alloc.lock();
            let g = alloc.advance();
            let meta = Meta {
                info: MetaInfo {
                    params: self.params,
                    dim: self.dim,
                    metric: self.metric,
                    nonce: self.nonce,
                    generation: g,
                    file_pages: alloc.file_pages(),
                },
                sq8: self.codec.sq8().map(|q| q.to_bytes()),
                postings,
                versions: words,
                free: alloc.snapshot(),
            };
            (g, meta, deleted)
        };
        let graph = self.head_inserts.write();
        drop(ops);
        self.postings_file.sync()?;
        if let Some(v) = &self.vectors_file {
            v.sync()?;
        }
        self.heads.read().save_with_deleted_to(
            &*self.backend,
            &heads_path(&self.dir, g),
            &deleted,
        )?;
        drop(graph);
        meta.save(&*self.backend, &meta_path(&self.dir, g))?;
        self.written.store(g, Ordering::Release);
        Ok(g)
    }

    /// Deletes the files of generations older than `generation` (the owner
    /// has durably committed `generation`) and makes the pages only they
    /// referenced reusable.
    pub fn release_before(&self, generation: u64) -> Result<()> {
        let _one = self.checkpointing.lock();
        let written = self.written.load(Ordering::Acquire);
        if generation > written {
            return Err(SpannError::param(
                "generation",
                format!("release_before({generation}): the newest generation is {written}"),
            ));
        }
        remove(&*self.backend, &self.dir, |g| g < generation)?;
        let mut a = self.alloc.lock();
        let before = a.file_pages();
        a.set_oldest(generation);
        if a.file_pages() < before {
            self.postings_file.set_len(a.file_pages() * PAGE as u64)?;
        }
        Ok(())
    }

    /// Checkpoints and releases every older generation: for an index used
    /// on its own, without an owner committing generations. Returns the
    /// generation written.
    pub fn flush(&self) -> Result<u64> {
        let g = self.checkpoint()?;
        self.release_before(g)?;
        Ok(g)
    }
}

/// Bytes of `vectors.f32` holding `ids` rows, padded to whole pages.
pub(crate) fn vectors_end(dim: usize, ids: usize) -> u64 {
    let end = PAGE as u64 + ids as u64 * dim as u64 * 4;
    end.div_ceil(PAGE as u64) * PAGE as u64
}

/// Checks that live postings and free runs lie inside the file without
/// overlapping, that deleted heads hold no posting, and returns the free
/// list completed with the unaccounted gaps (pages of postings rewritten
/// or freed while the snapshot was taken), which are treated as possibly
/// referenced by the older generations still on disk.
fn check_extents(meta: &Meta, heads: &Hnsw, file: &Path) -> Result<Vec<FreeExtent>> {
    let g = meta.info.generation;
    let mut used: Vec<(Extent, bool)> = Vec::with_capacity(meta.postings.len() + meta.free.len());
    for (h, s) in meta.postings.iter().enumerate() {
        if s.capacity == 0 {
            continue;
        }
        if heads.is_deleted(NodeId(h as u32)) {
            return Err(SpannError::corrupt(
                file,
                0,
                format!("deleted head {h} holds a posting"),
            ));
        }
        used.push((
            Extent {
                first_page: s.first_page,
                pages: s.capacity,
            },
            false,
        ));
    }
    used.extend(meta.free.iter().map(|f| (f.extent, true)));
    used.sort_unstable_by_key(|(e, _)| e.first_page);
    let mut free = meta.free.clone();
    let mut at = 1u64;
    for (e, _) in &used {
        if e.first_page < at {
            return Err(SpannError::corrupt(
                file,
                0,
                format!("extent {e:?} overlaps another posting or free run"),
            ));
        }
        if e.first_page > at {
            free.push(gap(at, e.first_page, g));
        }
        at = e.end();
    }
    if at > meta.info.file_pages {
        return Err(SpannError::corrupt(
            file,
            0,
            "extent past the end of postings.dat",
        ));
    }
    if at < meta.info.file_pages {
        free.push(gap(at, meta.info.file_pages, g));
    }
    Ok(free)
}

fn gap(from: u64, to: u64, tag: u64) -> FreeExtent {
    FreeExtent {
        extent: Extent {
            first_page: from,
            pages: u32::try_from(to - from).unwrap_or(u32::MAX),
        },
        tag,
    }
}
