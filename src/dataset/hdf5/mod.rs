//! ann-benchmarks HDF5 files, read and written with the pure-Rust
//! [`hdf5_pure`] crate (no system libhdf5): datasets `train` (base vectors),
//! `test` (queries), `neighbors` (exact ids), optionally `distances`, and the
//! root attribute `distance` naming the metric ("euclidean", "angular",
//! "dot"/"ip").
//!
//! Vectors of any HDF5 float or integer type are converted to f32; neighbour
//! ids must be integers (h5py writes int32 or int64) and are checked and
//! converted to u32 (`-1` becomes [`Neighbors::NONE`]). Files are read in
//! streaming mode, so only the datasets (and, with a limit, the rows) asked
//! for are fetched from disk. A missing dataset, a wrong rank or element type,
//! an unknown metric or a file the crate cannot parse is a [`DatasetError`]
//! naming the file and the dataset or attribute, never a panic.
//!
//! Files by job: this one loads and saves whole files; `matrix.rs` finds a
//! dataset and reads it as a checked matrix; `read.rs` turns the datasets
//! and the metric attribute into quiver's types.

mod matrix;
mod read;
#[cfg(test)]
mod tests;

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use hdf5_pure::{AttrValue, File, FileBuilder};

use super::error::{DatasetError, Result};
use super::{Neighbors, VectorSet};
use crate::distance::Metric;
use read::{read_metric, read_neighbors, read_vectors};

/// The contents of an ann-benchmarks file.
#[derive(Clone, Debug, PartialEq)]
pub struct AnnBenchmarks {
    /// Base vectors (`train`).
    pub train: VectorSet,
    /// Query vectors (`test`).
    pub test: VectorSet,
    /// Exact neighbours of each query (`neighbors`, with `distances` when present).
    pub neighbors: Neighbors,
    /// The metric named by the `distance` attribute.
    pub metric: Metric,
}

/// Reads an ann-benchmarks file; `limit` keeps only the first base vectors
/// (queries and ground truth are read whole).
pub fn load(path: impl AsRef<Path>, limit: Option<usize>) -> Result<AnnBenchmarks> {
    let path = path.as_ref();
    guarded(path, || {
        let file = open(path)?;
        let metric = read_metric(path, &file)?;
        let train = read_vectors(path, &file, "train", limit)?;
        let test = read_vectors(path, &file, "test", None)?;
        if test.dim != train.dim {
            return Err(layout(
                path,
                format!(
                    "dataset \"test\" has dimension {}, \"train\" has {}",
                    test.dim, train.dim
                ),
            ));
        }
        let neighbors = read_neighbors(path, &file)?;
        if neighbors.len() != test.len() {
            return Err(layout(
                path,
                format!(
                    "dataset \"neighbors\" has {} rows, \"test\" has {} queries",
                    neighbors.len(),
                    test.len()
                ),
            ));
        }
        Ok(AnnBenchmarks {
            train,
            test,
            neighbors,
            metric,
        })
    })
}

/// Reads only the `train` vectors of an ann-benchmarks file (the first
/// `limit` rows when given): what [`super::load_vectors`] returns for
/// `.hdf5`/`.h5`. The metric attribute and the other datasets are not read.
pub fn load_train(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    let path = path.as_ref();
    guarded(path, || read_vectors(path, &open(path)?, "train", limit))
}

/// Writes `data` in the ann-benchmarks layout: f32 `train` and `test`, i32
/// `neighbors` (`NONE` as `-1`), f32 `distances` when present, and root
/// attributes `distance` ("euclidean", "angular" or "dot", a variable-length
/// string as h5py writes it), `point_type` ("float") and `dimension`.
pub fn save(path: impl AsRef<Path>, data: &AnnBenchmarks) -> Result<()> {
    let path = path.as_ref();
    let n = &data.neighbors;
    let ids = super::ids_to_i32(path, n)?;
    let name = match data.metric {
        Metric::L2 => "euclidean",
        Metric::Cosine => "angular",
        Metric::InnerProduct => "dot",
    };
    let mut builder = FileBuilder::new();
    builder.set_attr("distance", AttrValue::VarLenString(name.to_string()));
    builder.set_attr("point_type", AttrValue::VarLenString("float".to_string()));
    builder.set_attr("dimension", AttrValue::I64(data.train.dim as i64));
    let matrix = |rows: usize, cols: usize| [rows as u64, cols as u64];
    let train = &data.train;
    builder
        .create_dataset("train")
        .with_f32_data(&train.data[..train.len() * train.dim])
        .with_shape(&matrix(train.len(), train.dim));
    let test = &data.test;
    builder
        .create_dataset("test")
        .with_f32_data(&test.data[..test.len() * test.dim])
        .with_shape(&matrix(test.len(), test.dim));
    builder
        .create_dataset("neighbors")
        .with_i32_data(&ids[..n.len() * n.k])
        .with_shape(&matrix(n.len(), n.k));
    if let Some(d) = &n.distances {
        builder
            .create_dataset("distances")
            .with_f32_data(&d[..n.len() * n.k])
            .with_shape(&matrix(n.len(), n.k));
    }
    guarded(path, || {
        builder
            .write(path)
            .map_err(|e| h5(path, "writing the file", e))
    })
}

/// Runs `f`, turning a panic inside `hdf5_pure` into an error naming the file.
///
/// The crate is meant to reject malformed input with an error, and our
/// truncation and bit-flip tests found no panic (only an abort on a huge
/// allocation, which [`Matrix::check_plausible`] prevents and no
/// `catch_unwind` could catch); this is a backstop so that
/// a crafted file that reaches an unchecked path in the parser still yields a
/// [`DatasetError`] rather than unwinding through the caller. Everything `f`
/// touches is dropped on unwind (the file handle and partial buffers), so no
/// broken state escapes.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(layout(
            path,
            format!("the HDF5 reader failed on a malformed file: {msg}"),
        ))
    })
}

/// Opens `path` for streaming reads (metadata and chunks fetched on demand).
fn open(path: &Path) -> Result<File> {
    File::open_streaming(path).map_err(|e| h5(path, "opening the file", e))
}

/// Maps an `hdf5_pure` error: I/O failures keep their [`io::Error`](std::io::Error),
/// anything else is a layout error carrying `context` and the crate's message.
fn h5(path: &Path, context: &str, e: hdf5_pure::Error) -> DatasetError {
    match e {
        hdf5_pure::Error::Io(source) => DatasetError::io(path, source),
        e => layout(path, format!("{context}: {e}")),
    }
}

fn layout(path: &Path, what: String) -> DatasetError {
    DatasetError::Hdf5Layout {
        file: path.to_path_buf(),
        what,
    }
}
