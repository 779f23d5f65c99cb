//! The SSD tier: a SPANN posting-list index (Chen et al., NeurIPS 2021),
//! updatable in place with SPFresh's LIRE (Xu et al., SOSP 2023).
//!
//! Heads (about `head_ratio` of the vectors, picked by hierarchical balanced
//! k-means, [`cluster`]) live in memory in our own [`Hnsw`]. Every vector is
//! written to up to `replicas` postings chosen by the RNG rule ([`assign`]);
//! postings are page-aligned in `postings.dat` ([`posting`], [`file`]). A
//! query reads the postings of its nearest heads in one parallel round
//! ([`search`]). Inserts, deletes, splits, reassignment and merges are in
//! [`update`].
//!
//! An index is a directory: `meta`, `heads.hnsw`, `postings.dat` and, for
//! compressed postings, `vectors.f32` (full vectors for re-ranking). Formats
//! in docs/FORMAT.md.

pub mod assign;
mod build;
pub mod cluster;
pub mod codec;
mod error;
pub mod file;
pub mod meta;
pub mod params;
pub mod posting;
mod search;
mod update;

pub use error::{Result, SpannError};
pub use file::IoMode;
pub use params::{Encoding, SearchParams, SpannParams};
pub use posting::{decode_posting, PostingLayout, PostingView};
pub use search::{Hit, SearchStats};
pub use update::UpdateStats;

use std::path::{Path, PathBuf};

use crate::distance::{DistanceKernel, Metric};
use crate::hnsw::Hnsw;
use crate::quant::Sq8Quantizer;
use codec::Codec;
use file::{FileHeader, PageFile};
use meta::{Meta, MetaInfo};

/// Where one posting lives in `postings.dat`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostingSlot {
    /// First page (page 0 is the header).
    pub first_page: u64,
    /// Pages reserved; 0 for a deleted head.
    pub capacity: u32,
    /// Entries written (stale ones included).
    pub count: u32,
}

/// Bit of a version-map byte that marks a deleted id.
const DELETED: u8 = 0x80;
/// Version bits (the version wraps at 128).
const VERSION_MASK: u8 = 0x7f;

/// How an index is opened.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Buffered or `O_DIRECT` reads.
    pub io: IoMode,
    /// Threads issuing posting reads in parallel (and scanning them).
    pub io_threads: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            io: IoMode::Buffered,
            io_threads: 32,
        }
    }
}

/// A SPANN index open on a directory.
pub struct Spann {
    dir: PathBuf,
    info: MetaInfo,
    dist: DistanceKernel,
    codec: Codec,
    layout: PostingLayout,
    heads: Hnsw,
    postings: Vec<PostingSlot>,
    /// Per vector id: version (7 bits) and the [`DELETED`] bit.
    versions: Vec<u8>,
    postings_file: PageFile,
    vectors_file: Option<PageFile>,
    io: rayon::ThreadPool,
    stats: UpdateStats,
}

const POSTINGS_MAGIC: [u8; 8] = *b"QVSPPOST";
const VECTORS_MAGIC: [u8; 8] = *b"QVSPVECS";

fn header(magic: [u8; 8], info: &MetaInfo) -> FileHeader {
    FileHeader {
        magic,
        dim: info.dim as u32,
        encoding: info.params.encoding.code(),
        metric: info.metric.code(),
        nonce: info.nonce,
    }
}

impl Spann {
    /// Opens the index in `dir`, checking every file against `meta`.
    pub fn open(dir: &Path, opts: OpenOptions) -> Result<Self> {
        let meta = Meta::load(dir)?;
        let info = meta.info;
        let heads_path = dir.join("heads.hnsw");
        let heads = Hnsw::load(&heads_path, 0)?;
        if heads.dim() != info.dim
            || heads.metric() != info.metric
            || heads.len() != meta.postings.len()
            || heads.encoding() != info.params.head_encoding
        {
            return Err(SpannError::corrupt(
                &heads_path,
                0,
                format!(
                    "head graph holds {} x {} ({}, {}); meta expects {} x {} ({}, {})",
                    heads.len(),
                    heads.dim(),
                    heads.metric(),
                    heads.encoding(),
                    meta.postings.len(),
                    info.dim,
                    info.metric,
                    info.params.head_encoding
                ),
            ));
        }
        let encoding = info.params.encoding;
        let sq8 = match (&meta.sq8, encoding) {
            (Some(b), Encoding::Sq8) => Some(Sq8Quantizer::from_bytes(b)?),
            (None, Encoding::Sq8) => {
                return Err(SpannError::corrupt(
                    dir.join("meta"),
                    0,
                    "SQ8 index without a quantizer",
                ))
            }
            _ => None,
        };
        if let Some(q) = &sq8 {
            if q.dim() != info.dim {
                return Err(SpannError::corrupt(
                    dir.join("meta"),
                    0,
                    "quantizer dimension differs",
                ));
            }
        }
        let postings_file = PageFile::open(
            &dir.join("postings.dat"),
            header(POSTINGS_MAGIC, &info),
            opts.io,
        )?;
        let vectors_file = if encoding != Encoding::F32 {
            Some(PageFile::open(
                &dir.join("vectors.f32"),
                header(VECTORS_MAGIC, &info),
                opts.io,
            )?)
        } else {
            None
        };
        let io = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.io_threads.max(1))
            .thread_name(|i| format!("spann-io-{i}"))
            .build()
            .map_err(|e| SpannError::InvalidParam(format!("io thread pool: {e}")))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            dist: info.metric.kernel(),
            codec: Codec {
                encoding,
                dim: info.dim,
                sq8,
            },
            layout: PostingLayout {
                dim: info.dim,
                encoding,
            },
            heads,
            postings: meta.postings,
            versions: meta.versions,
            postings_file,
            vectors_file,
            io,
            info,
            stats: UpdateStats::default(),
        })
    }

    /// Writes `meta` and `heads.hnsw` so the directory reflects every update.
    pub fn flush(&self) -> Result<()> {
        self.postings_file.sync()?;
        if let Some(v) = &self.vectors_file {
            v.sync()?;
        }
        let heads_path = self.dir.join("heads.hnsw");
        self.heads.save(&heads_path)?;
        Meta {
            info: self.info.clone(),
            sq8: self.codec.sq8.as_ref().map(|q| q.to_bytes()),
            postings: self.postings.clone(),
            versions: self.versions.clone(),
        }
        .save(&self.dir)
    }

    pub fn dim(&self) -> usize {
        self.info.dim
    }

    pub fn metric(&self) -> Metric {
        self.info.metric
    }

    pub fn params(&self) -> &SpannParams {
        &self.info.params
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Vector ids issued (deleted ones included).
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Live heads (postings).
    pub fn heads(&self) -> usize {
        self.heads.live_len()
    }

    /// The head graph.
    pub fn head_index(&self) -> &Hnsw {
        &self.heads
    }

    /// Whether `id` exists and is not deleted.
    pub fn contains(&self, id: u32) -> bool {
        self.versions
            .get(id as usize)
            .is_some_and(|v| v & DELETED == 0)
    }

    /// Resident bytes: head graph and vectors, posting table, version map,
    /// quantizer (the page cache is not counted).
    pub fn memory_bytes(&self) -> usize {
        self.heads.memory_bytes()
            + self.postings.capacity() * std::mem::size_of::<PostingSlot>()
            + self.versions.capacity()
            + self.codec.sq8.as_ref().map_or(0, |q| q.serialized_len())
            + std::mem::size_of::<Self>()
    }

    /// Entry counts of the live postings (stale entries included).
    pub fn posting_lengths(&self) -> Vec<u32> {
        self.postings
            .iter()
            .filter(|s| s.capacity > 0)
            .map(|s| s.count)
            .collect()
    }

    /// Bytes of `postings.dat`.
    pub fn disk_bytes(&self) -> u64 {
        self.info.file_pages * posting::PAGE as u64
    }

    /// Statistics of the updates applied since open.
    pub fn update_stats(&self) -> UpdateStats {
        self.stats
    }

    /// Checks and normalises a vector (a copy) for this index's metric.
    fn prepare(&self, v: &[f32], what: &str, out: &mut Vec<f32>) -> Result<()> {
        prepare(v, self.info.dim, self.info.metric, what, out)
    }
}

/// Checks a vector's length and values; normalises a copy for cosine.
pub(crate) fn prepare(
    v: &[f32],
    dim: usize,
    metric: Metric,
    what: &str,
    out: &mut Vec<f32>,
) -> Result<()> {
    if v.len() != dim {
        return Err(SpannError::Dimension {
            what: what.into(),
            expected: dim,
            got: v.len(),
        });
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(SpannError::NonFinite {
            what: what.into(),
            index: i,
        });
    }
    out.clear();
    out.extend_from_slice(v);
    if metric.normalizes() && !crate::distance::normalize(out) {
        return Err(SpannError::ZeroNorm { what: what.into() });
    }
    Ok(())
}
