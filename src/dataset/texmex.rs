//! TEXMEX vector files (`.fvecs`, `.bvecs`, `.ivecs`), as used by SIFT1M and
//! GIST1M: every row is a little-endian `i32 d` followed by `d` values (f32,
//! u8 or i32). All rows must share the first row's dimension.

use std::path::Path;

use super::error::{DatasetError, Result};
use super::raw::{Element, Sink, Source, F32, I32, U8};
use super::{ids_from_i32, ids_to_i32, Neighbors, VectorSet};

/// Reads a `.fvecs` file (first `limit` rows when given).
pub fn read_fvecs(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    let (dim, data) = read_rows::<F32>(path.as_ref(), limit)?;
    Ok(VectorSet { dim, data })
}

/// Reads a `.bvecs` file (first `limit` rows when given), converting to f32.
pub fn read_bvecs(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    let (dim, data) = read_rows::<U8>(path.as_ref(), limit)?;
    Ok(VectorSet { dim, data })
}

/// Reads an `.ivecs` ground-truth file (first `limit` rows when given).
pub fn read_ivecs(path: impl AsRef<Path>, limit: Option<usize>) -> Result<Neighbors> {
    let path = path.as_ref();
    let (k, ids) = read_rows::<I32>(path, limit)?;
    Ok(Neighbors {
        k,
        data: ids_from_i32(path, k, ids)?,
        distances: None,
    })
}

/// Writes `vectors` as `.fvecs`.
pub fn write_fvecs(path: impl AsRef<Path>, vectors: &VectorSet) -> Result<()> {
    let path = path.as_ref();
    let dim = row_header(path, vectors.dim, vectors.len())?;
    let mut sink = Sink::create(path)?;
    for row in vectors.rows() {
        sink.write(&dim.to_le_bytes())?;
        sink.write_f32s(row)?;
    }
    sink.finish()
}

/// Writes `neighbors` as `.ivecs` ([`Neighbors::NONE`] becomes `-1`).
pub fn write_ivecs(path: impl AsRef<Path>, neighbors: &Neighbors) -> Result<()> {
    let path = path.as_ref();
    let k = row_header(path, neighbors.k, neighbors.len())?;
    let ids = ids_to_i32(path, neighbors)?;
    let mut sink = Sink::create(path)?;
    for row in ids.chunks_exact(neighbors.k) {
        sink.write(&k.to_le_bytes())?;
        sink.write_i32s(row.iter().copied())?;
    }
    sink.finish()
}

/// The `i32` row header for `dim`, or an error when it is zero or too large.
fn row_header(path: &Path, dim: usize, rows: usize) -> Result<i32> {
    if dim == 0 {
        return Err(DatasetError::BadDimension {
            file: path.to_path_buf(),
            row: 0,
            dim: 0,
        });
    }
    i32::try_from(dim).map_err(|_| DatasetError::TooLarge {
        file: path.to_path_buf(),
        what: "the dimension (above i32::MAX)",
        rows: rows as u64,
        dim: dim as u64,
    })
}

/// Reads rows of `E` until end of file or `limit`; returns the dimension and
/// the values. Validates every row's dimension and length before reading it.
fn read_rows<E: Element>(path: &Path, limit: Option<usize>) -> Result<(usize, Vec<E::Out>)> {
    let mut src = Source::open(path)?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    let mut dim = 0usize;
    let mut row = 0usize;
    // With limit 0 the first header is still read, to learn the dimension.
    while src.remaining() > 0 && (row < limit || row == 0) {
        if src.remaining() < 4 {
            return Err(truncated(&src, row, 4));
        }
        let d = src.read_i32()?;
        if d <= 0 {
            return Err(DatasetError::BadDimension {
                file: path.to_path_buf(),
                row,
                dim: i64::from(d),
            });
        }
        let d = d as usize;
        if row == 0 {
            dim = d;
            reserve_rows::<E>(&src, dim, limit, &mut out);
            if limit == 0 {
                break;
            }
        } else if d != dim {
            return Err(DatasetError::DimensionMismatch {
                file: path.to_path_buf(),
                row,
                dim: d as i64,
                expected: dim,
            });
        }
        // d ≤ i32::MAX and SIZE ≤ 4, so this cannot overflow u64.
        let needed = d as u64 * E::SIZE as u64;
        if src.remaining() < needed {
            return Err(truncated(&src, row, needed));
        }
        src.read_values::<E>(d, &mut out)?;
        row += 1;
    }
    if dim == 0 {
        return Err(DatasetError::Empty {
            file: path.to_path_buf(),
        });
    }
    Ok((dim, out))
}

/// Reserves room for the rows the file can hold (at most `limit`), so the
/// output vector grows once.
fn reserve_rows<E: Element>(src: &Source, dim: usize, limit: usize, out: &mut Vec<E::Out>) {
    let row_bytes = 4 + dim as u64 * E::SIZE as u64;
    let rows = (src.len() / row_bytes).min(limit as u64);
    if let Some(values) = usize::try_from(rows).ok().and_then(|r| r.checked_mul(dim)) {
        out.reserve_exact(values);
    }
}

fn truncated(src: &Source, row: usize, needed: u64) -> DatasetError {
    DatasetError::TruncatedRow {
        file: src.path().to_path_buf(),
        row,
        offset: src.pos(),
        needed,
        available: src.remaining(),
    }
}
