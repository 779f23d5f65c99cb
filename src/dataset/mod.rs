//! ANN dataset file formats (TEXMEX, big-ann-benchmarks, ann-benchmarks HDF5)
//! and exact ground truth.
//!
//! This module owns the in-memory dataset types ([`VectorSet`], [`Neighbors`]),
//! the dispatch from a file extension to a reader or writer
//! ([`load_vectors`], [`load_neighbors`], [`save_vectors`], [`save_neighbors`]),
//! and the helpers built on them: [`recall_at_k`], exact ground truth
//! ([`gt::ground_truth`]) and synthetic data ([`synthetic::clustered`]).
//!
//! Formats (all little-endian):
//! - [`texmex`]: `.fvecs` (f32), `.bvecs` (u8), `.ivecs` (i32): every row is
//!   `i32 d` followed by `d` values.
//! - [`bigann`]: `.fbin` (f32), `.u8bin`, `.i8bin`, `.ibin` (i32): a header
//!   `u32 n, u32 d`, then `n·d` values.
//! - [`hdf5`]: ann-benchmarks `.hdf5`/`.h5` files (pure Rust, always built).
//!
//! Readers are buffered and decode straight into the result, so a file is held
//! in memory once; every malformed input gives a [`DatasetError`] naming the
//! file, never a panic.

pub mod bigann;
mod error;
pub mod gt;
pub mod hdf5;
mod raw;
mod recall;
pub mod synthetic;
pub mod texmex;

#[cfg(test)]
mod real_data_tests;
#[cfg(test)]
mod tests;

use std::path::Path;

pub use error::{DatasetError, Result};
pub use gt::ground_truth;
pub use recall::recall_at_k;

/// A dense set of vectors, row-major. Integer formats are converted to f32.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VectorSet {
    /// Values per vector.
    pub dim: usize,
    /// `len() * dim` values, row after row.
    pub data: Vec<f32>,
}

impl VectorSet {
    /// Wraps row-major `data` of dimension `dim`. `None` when `dim` is zero or
    /// does not divide `data.len()`.
    pub fn new(dim: usize, data: Vec<f32>) -> Option<Self> {
        (dim > 0 && data.len().is_multiple_of(dim)).then_some(VectorSet { dim, data })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether the set holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector `i`. Panics when `i >= len()`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Iterates over the vectors in order.
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[f32]> + '_ {
        self.data.chunks_exact(self.dim.max(1)).take(self.len())
    }

    /// Keeps the first `n` vectors.
    pub fn truncate(&mut self, n: usize) {
        self.data.truncate(n.saturating_mul(self.dim));
    }

    /// Splits off the vectors from `at` on into a new set (e.g. to hold out
    /// queries from generated data). Panics when `at > len()`.
    pub fn split_off(&mut self, at: usize) -> VectorSet {
        assert!(
            at <= self.len(),
            "split_off({at}) on a set of {} vectors",
            self.len()
        );
        VectorSet {
            dim: self.dim,
            data: self.data.split_off(at * self.dim),
        }
    }

    /// A copy with every vector scaled to unit length (zero vectors are kept).
    pub fn normalized(&self) -> VectorSet {
        let mut out = self.clone();
        out.data.chunks_exact_mut(self.dim.max(1)).for_each(|v| {
            crate::distance::normalize(v);
        });
        out
    }
}

/// Nearest-neighbour ids per query (ground truth), row-major with `k` per row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Neighbors {
    /// Neighbours per query.
    pub k: usize,
    /// `len() * k` ids, nearest first. [`Neighbors::NONE`] pads rows with
    /// fewer than `k` neighbours (stored as `-1` on disk).
    pub data: Vec<u32>,
    /// Distances matching `data`, when known (big-ann `.ibin` ground truth may
    /// carry them after the ids; [`gt::ground_truth`] fills them).
    pub distances: Option<Vec<f32>>,
}

impl Neighbors {
    /// Placeholder id for "no neighbour" (`-1` in files).
    pub const NONE: u32 = u32::MAX;

    /// Number of queries.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.k).unwrap_or(0)
    }

    /// Whether there are no queries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids for query `i`, nearest first. Panics when `i >= len()`.
    pub fn row(&self, i: usize) -> &[u32] {
        &self.data[i * self.k..(i + 1) * self.k]
    }

    /// The distances for query `i`, when present.
    pub fn distance_row(&self, i: usize) -> Option<&[f32]> {
        self.distances
            .as_ref()
            .map(|d| &d[i * self.k..(i + 1) * self.k])
    }
}

/// A dataset file format, chosen by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// TEXMEX f32 vectors.
    Fvecs,
    /// TEXMEX u8 vectors.
    Bvecs,
    /// TEXMEX i32 rows (ground truth).
    Ivecs,
    /// big-ann f32 vectors.
    Fbin,
    /// big-ann u8 vectors.
    U8bin,
    /// big-ann i8 vectors.
    I8bin,
    /// big-ann i32 rows (ground truth).
    Ibin,
    /// ann-benchmarks HDF5 (`.hdf5`, `.h5`).
    Hdf5,
}

/// Extensions [`load_vectors`] accepts.
pub const VECTOR_EXTENSIONS: &str = ".fvecs, .bvecs, .fbin, .u8bin, .i8bin, .hdf5, .h5";
/// Extensions [`load_neighbors`] accepts.
pub const NEIGHBOR_EXTENSIONS: &str = ".ivecs, .ibin";

impl Format {
    /// The format named by `path`'s extension (case-insensitive).
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "fvecs" => Format::Fvecs,
            "bvecs" => Format::Bvecs,
            "ivecs" => Format::Ivecs,
            "fbin" => Format::Fbin,
            "u8bin" => Format::U8bin,
            "i8bin" => Format::I8bin,
            "ibin" => Format::Ibin,
            "hdf5" | "h5" => Format::Hdf5,
            _ => return None,
        })
    }
}

fn unknown(path: &Path, expected: &'static str) -> DatasetError {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    DatasetError::UnknownFormat {
        file: path.to_path_buf(),
        ext,
        expected,
    }
}

/// Reads vectors from `path`, choosing the format by extension; `limit` reads
/// only the first rows. For an ann-benchmarks `.hdf5`/`.h5` file these are the
/// base vectors (`train`); [`hdf5::load`] reads the queries and ground truth.
pub fn load_vectors(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    let path = path.as_ref();
    match Format::from_path(path) {
        Some(Format::Fvecs) => texmex::read_fvecs(path, limit),
        Some(Format::Bvecs) => texmex::read_bvecs(path, limit),
        Some(Format::Fbin) => bigann::read_fbin(path, limit),
        Some(Format::U8bin) => bigann::read_u8bin(path, limit),
        Some(Format::I8bin) => bigann::read_i8bin(path, limit),
        Some(Format::Hdf5) => hdf5::load_train(path, limit),
        _ => Err(unknown(path, VECTOR_EXTENSIONS)),
    }
}

/// Reads ground-truth neighbours from `path` (`.ivecs` or `.ibin`).
pub fn load_neighbors(path: impl AsRef<Path>) -> Result<Neighbors> {
    let path = path.as_ref();
    match Format::from_path(path) {
        Some(Format::Ivecs) => texmex::read_ivecs(path, None),
        Some(Format::Ibin) => bigann::read_ibin(path, None),
        _ => Err(unknown(path, NEIGHBOR_EXTENSIONS)),
    }
}

/// Writes `vectors` to `path` as `.fvecs` or `.fbin`, by extension.
pub fn save_vectors(path: impl AsRef<Path>, vectors: &VectorSet) -> Result<()> {
    let path = path.as_ref();
    match Format::from_path(path) {
        Some(Format::Fvecs) => texmex::write_fvecs(path, vectors),
        Some(Format::Fbin) => bigann::write_fbin(path, vectors),
        _ => Err(unknown(path, ".fvecs, .fbin")),
    }
}

/// Writes `neighbors` to `path` as `.ivecs` or `.ibin`, by extension.
pub fn save_neighbors(path: impl AsRef<Path>, neighbors: &Neighbors) -> Result<()> {
    let path = path.as_ref();
    match Format::from_path(path) {
        Some(Format::Ivecs) => texmex::write_ivecs(path, neighbors),
        Some(Format::Ibin) => bigann::write_ibin(path, neighbors),
        _ => Err(unknown(path, NEIGHBOR_EXTENSIONS)),
    }
}

/// Converts on-disk i32 ids to [`Neighbors`] ids: `-1` becomes
/// [`Neighbors::NONE`], any other negative id is an error.
pub(crate) fn ids_from_i32(path: &Path, k: usize, ids: Vec<i32>) -> Result<Vec<u32>> {
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| match id {
            -1 => Ok(Neighbors::NONE),
            id if id < 0 => Err(DatasetError::NegativeId {
                file: path.to_path_buf(),
                row: i / k.max(1),
                col: i % k.max(1),
                id: i64::from(id),
            }),
            id => Ok(id as u32),
        })
        .collect()
}

/// Converts [`Neighbors`] ids to on-disk i32 ids (`NONE` becomes `-1`).
pub(crate) fn ids_to_i32(path: &Path, n: &Neighbors) -> Result<Vec<i32>> {
    n.data
        .iter()
        .enumerate()
        .map(|(i, &id)| match id {
            Neighbors::NONE => Ok(-1),
            id => i32::try_from(id).map_err(|_| DatasetError::IdOverflow {
                file: path.to_path_buf(),
                row: i / n.k.max(1),
                id,
            }),
        })
        .collect()
}
