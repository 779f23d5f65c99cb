//! big-ann-benchmarks binary files (`.fbin`, `.u8bin`, `.i8bin`, `.ibin`): a
//! little-endian header `u32 n, u32 d`, then `n·d` values row-major.
//!
//! Ground-truth `.ibin` files come in two layouts, both accepted: ids only
//! (`n·k` i32), or ids followed by `n·k` f32 distances (the big-ann-benchmarks
//! ground-truth layout). The header is checked against the file length before
//! anything is allocated.

use std::path::Path;

use super::error::{DatasetError, Result};
use super::raw::{Element, Sink, Source, F32, I32, I8, U8};
use super::{ids_from_i32, ids_to_i32, Neighbors, VectorSet};

/// Header size in bytes.
const HEADER: u64 = 8;

/// Reads a `.fbin` file (first `limit` rows when given).
pub fn read_fbin(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    read_vectors::<F32>(path.as_ref(), limit)
}

/// Reads a `.u8bin` file (first `limit` rows when given), converting to f32.
pub fn read_u8bin(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    read_vectors::<U8>(path.as_ref(), limit)
}

/// Reads an `.i8bin` file (first `limit` rows when given), converting to f32.
pub fn read_i8bin(path: impl AsRef<Path>, limit: Option<usize>) -> Result<VectorSet> {
    read_vectors::<I8>(path.as_ref(), limit)
}

/// Reads an `.ibin` ground-truth file (first `limit` rows when given), with
/// its distances when the file carries them.
pub fn read_ibin(path: impl AsRef<Path>, limit: Option<usize>) -> Result<Neighbors> {
    let path = path.as_ref();
    let (mut src, h) = open::<I32>(path, true)?;
    let rows = h.rows.min(limit.unwrap_or(usize::MAX));
    let count = rows * h.dim; // ≤ n·d, which `open` checked fits usize
    let mut ids = Vec::with_capacity(count);
    src.read_values::<I32>(count, &mut ids)?;
    let data = ids_from_i32(path, h.dim, ids)?;
    let distances = if h.with_distances {
        src.seek_to(HEADER + h.data_bytes)?;
        let mut d = Vec::with_capacity(count);
        src.read_values::<F32>(count, &mut d)?;
        Some(d)
    } else {
        None
    };
    Ok(Neighbors {
        k: h.dim,
        data,
        distances,
    })
}

/// Writes `vectors` as `.fbin`.
pub fn write_fbin(path: impl AsRef<Path>, vectors: &VectorSet) -> Result<()> {
    let path = path.as_ref();
    let mut sink = Sink::create(path)?;
    sink.write(&header(path, vectors.len(), vectors.dim)?)?;
    sink.write_f32s(&vectors.data[..vectors.len() * vectors.dim])?;
    sink.finish()
}

/// Writes `neighbors` as `.ibin` ([`Neighbors::NONE`] becomes `-1`), followed
/// by the distances when `neighbors.distances` holds one per id.
pub fn write_ibin(path: impl AsRef<Path>, neighbors: &Neighbors) -> Result<()> {
    let path = path.as_ref();
    let ids = ids_to_i32(path, neighbors)?;
    let count = neighbors.len() * neighbors.k;
    let mut sink = Sink::create(path)?;
    sink.write(&header(path, neighbors.len(), neighbors.k)?)?;
    sink.write_i32s(ids[..count].iter().copied())?;
    // Distances are written only when there is one per id, so the file stays readable.
    if let Some(d) = neighbors.distances.as_ref().filter(|d| d.len() >= count) {
        sink.write_f32s(&d[..count])?;
    }
    sink.finish()
}

/// The 8-byte header for `rows × dim`, or an error when either is out of range.
fn header(path: &Path, rows: usize, dim: usize) -> Result<[u8; 8]> {
    if dim == 0 {
        return Err(DatasetError::ZeroDimension {
            file: path.to_path_buf(),
        });
    }
    let (Ok(n), Ok(d)) = (u32::try_from(rows), u32::try_from(dim)) else {
        return Err(DatasetError::TooLarge {
            file: path.to_path_buf(),
            what: "the row count or dimension (above u32::MAX)",
            rows: rows as u64,
            dim: dim as u64,
        });
    };
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&n.to_le_bytes());
    h[4..].copy_from_slice(&d.to_le_bytes());
    Ok(h)
}

/// A validated header.
struct Header {
    rows: usize,
    dim: usize,
    /// Bytes of `E` values the header implies.
    data_bytes: u64,
    /// Whether `n·d` f32 distances follow the values (`.ibin` only).
    with_distances: bool,
}

fn read_vectors<E: Element<Out = f32>>(path: &Path, limit: Option<usize>) -> Result<VectorSet> {
    let (mut src, h) = open::<E>(path, false)?;
    let rows = h.rows.min(limit.unwrap_or(usize::MAX));
    let count = rows * h.dim; // ≤ n·d, which `open` checked fits usize
    let mut data = Vec::with_capacity(count);
    src.read_values::<E>(count, &mut data)?;
    Ok(VectorSet { dim: h.dim, data })
}

/// Opens `path`, reads its header and checks it against the file length.
fn open<E: Element>(path: &Path, allow_distances: bool) -> Result<(Source, Header)> {
    let mut src = Source::open(path)?;
    if src.len() < HEADER {
        return Err(DatasetError::TruncatedHeader {
            file: path.to_path_buf(),
            len: src.len(),
            header: HEADER,
        });
    }
    let n = u64::from(src.read_u32()?);
    let d = u64::from(src.read_u32()?);
    if d == 0 {
        return Err(DatasetError::ZeroDimension {
            file: path.to_path_buf(),
        });
    }
    let too_large = |what| DatasetError::TooLarge {
        file: path.to_path_buf(),
        what,
        rows: n,
        dim: d,
    };
    // n, d < 2^32 and SIZE ≤ 4, so n·d·SIZE < 2^66 can overflow u64: check.
    let data_bytes = n
        .checked_mul(d)
        .and_then(|v| v.checked_mul(E::SIZE as u64))
        .ok_or_else(|| too_large("the data size"))?;
    let actual = src.len() - HEADER;
    let with_distances = if actual == data_bytes {
        false
    } else if allow_distances && E::SIZE == 4 && Some(actual) == data_bytes.checked_mul(2) {
        true
    } else {
        return Err(DatasetError::SizeMismatch {
            file: path.to_path_buf(),
            rows: n,
            dim: d,
            expected: data_bytes,
            actual,
        });
    };
    let rows = usize::try_from(n).map_err(|_| too_large("the row count"))?;
    let dim = usize::try_from(d).map_err(|_| too_large("the dimension"))?;
    rows.checked_mul(dim)
        .ok_or_else(|| too_large("the value count"))?;
    Ok((
        src,
        Header {
            rows,
            dim,
            data_bytes,
            with_distances,
        },
    ))
}
