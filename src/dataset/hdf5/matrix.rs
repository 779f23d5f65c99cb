//! Finding a dataset and reading it as a matrix of the wanted element
//! kind, with its shape checked against the values (and, for compressed
//! data, against a plausible inflation ratio) before anything is allocated.

use std::path::Path;

use hdf5_pure::{DType, Dataset, File, FormatError};

use super::super::error::{DatasetError, Result};
use super::{h5, layout};

/// What a dataset's elements must be for the caller to read them.
#[derive(Clone, Copy)]
pub(super) enum Elements {
    /// Any float or integer type (converted to f32).
    Numbers,
    /// Any integer type (neighbour ids).
    Integers,
}

/// Opens dataset `name`; `None` when the file has no object by that name.
pub(super) fn find(path: &Path, file: &File, name: &str) -> Result<Option<Dataset>> {
    match file.dataset(name) {
        Ok(ds) => Ok(Some(ds)),
        Err(hdf5_pure::Error::Format(FormatError::PathNotFound(_))) => Ok(None),
        Err(hdf5_pure::Error::NotADataset(_)) => {
            Err(layout(path, format!("{name:?} is not a dataset")))
        }
        Err(e) => Err(h5(path, &format!("opening dataset {name:?}"), e)),
    }
}

/// A checked 2-D dataset.
pub(super) struct Matrix {
    pub(super) ds: Dataset,
    pub(super) rows: usize,
    pub(super) cols: usize,
    /// Bytes per stored element.
    pub(super) elem: u64,
}

/// Deflate cannot expand data by more than this factor (zlib's limit is about
/// 1032:1), so no honest gzip-chunked dataset decodes to more than this many
/// times the file's size.
const MAX_DEFLATE_RATIO: u64 = 1032;

impl Matrix {
    /// Refuses to read `rows` rows (or any whole chunk) when the file is too
    /// small to hold them. A corrupt shape or chunk size in an otherwise valid
    /// file would make `hdf5_pure` allocate that much (missing chunks read as
    /// fill values), and a failed allocation aborts the process: it cannot be
    /// caught like a panic. Datasets with unallocated chunks are legal HDF5
    /// but never written by ann-benchmarks.
    pub(super) fn check_plausible(&self, path: &Path, name: &str, rows: usize) -> Result<()> {
        let file_len = std::fs::metadata(path)
            .map_err(|e| DatasetError::io(path, e))?
            .len();
        let budget = if self.ds.filters().is_empty() {
            file_len
        } else {
            file_len.saturating_mul(MAX_DEFLATE_RATIO)
        };
        let bytes = |dims: &[u64]| {
            dims.iter()
                .try_fold(self.elem, |acc, &d| acc.checked_mul(d))
                .unwrap_or(u64::MAX)
        };
        let read = bytes(&[rows as u64, self.cols as u64]);
        let chunk = self
            .ds
            .chunk_shape()
            .map_err(|e| {
                h5(
                    path,
                    &format!("reading the chunk shape of dataset {name:?}"),
                    e,
                )
            })?
            .map_or(0, |c| bytes(&c));
        if read.max(chunk) <= budget {
            return Ok(());
        }
        Err(layout(
            path,
            format!(
                "dataset {name:?} claims {} rows × {} columns ({read} bytes, chunks of {chunk} bytes), \
                 more than a {file_len}-byte file can hold",
                self.rows, self.cols
            ),
        ))
    }
}

/// Opens dataset `name`, which must exist, and checks it with [`matrix_of`].
pub(super) fn matrix(path: &Path, file: &File, name: &str, want: Elements) -> Result<Matrix> {
    let ds = find(path, file, name)?
        .ok_or_else(|| layout(path, format!("dataset {name:?} is missing")))?;
    matrix_of(path, ds, name, want)
}

/// Checks dataset `name` is a 2-D matrix with at least one column whose
/// element type suits `want`, and returns it with its shape.
pub(super) fn matrix_of(path: &Path, ds: Dataset, name: &str, want: Elements) -> Result<Matrix> {
    let shape = ds
        .shape()
        .map_err(|e| h5(path, &format!("reading the shape of dataset {name:?}"), e))?;
    let [rows, cols] = shape[..] else {
        return Err(layout(
            path,
            format!(
                "dataset {name:?} has shape {shape:?}: expected 2 dimensions, got {}",
                shape.len()
            ),
        ));
    };
    if cols == 0 {
        return Err(layout(
            path,
            format!("dataset {name:?} has shape {shape:?}: zero columns"),
        ));
    }
    let dtype = ds
        .dtype()
        .map_err(|e| h5(path, &format!("reading the type of dataset {name:?}"), e))?;
    let (elem, integer) = match dtype {
        DType::I8 | DType::U8 => (1, true),
        DType::I16 | DType::U16 => (2, true),
        DType::I32 | DType::U32 => (4, true),
        DType::I64 | DType::U64 => (8, true),
        DType::F32 => (4, false),
        DType::F64 => (8, false),
        _ => (0, false),
    };
    let ok = match want {
        Elements::Numbers => elem > 0,
        Elements::Integers => integer,
    };
    if !ok {
        let expected = match want {
            Elements::Numbers => "numbers",
            Elements::Integers => "integer ids",
        };
        return Err(layout(
            path,
            format!("dataset {name:?} holds {dtype}, expected {expected}"),
        ));
    }
    let too_large = |what| DatasetError::TooLarge {
        file: path.to_path_buf(),
        what,
        rows,
        dim: cols,
    };
    let rows = usize::try_from(rows).map_err(|_| too_large("row count"))?;
    let cols = usize::try_from(cols).map_err(|_| too_large("dimension"))?;
    rows.checked_mul(cols).ok_or_else(|| too_large("dataset"))?;
    Ok(Matrix {
        ds,
        rows,
        cols,
        elem,
    })
}

/// Checks a read returned the `rows × cols` values the shape promised.
pub(super) fn check_len<T>(
    path: &Path,
    name: &str,
    rows: usize,
    cols: usize,
    values: &[T],
) -> Result<()> {
    if values.len() == rows * cols {
        return Ok(());
    }
    Err(layout(
        path,
        format!(
            "dataset {name:?} is {rows}×{cols} but {} values were read",
            values.len()
        ),
    ))
}
