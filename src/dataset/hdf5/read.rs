//! Reading `train`/`test` as vectors, `neighbors`/`distances` as ground
//! truth and the `distance` attribute as a metric.

use std::path::Path;

use hdf5_pure::File;

use super::super::error::{DatasetError, Result};
use super::super::{Neighbors, VectorSet};
use super::matrix::{check_len, find, matrix, matrix_of, Elements};
use super::{h5, layout};
use crate::distance::Metric;

/// Reads the first `limit` rows (all by default) of `name` as f32.
pub(super) fn read_vectors(
    path: &Path,
    file: &File,
    name: &str,
    limit: Option<usize>,
) -> Result<VectorSet> {
    let m = matrix(path, file, name, Elements::Numbers)?;
    let (rows, dim) = (m.rows.min(limit.unwrap_or(usize::MAX)), m.cols);
    m.check_plausible(path, name, rows)?;
    let data = if rows == 0 {
        Vec::new()
    } else {
        m.ds.read_f32_rows(0, rows as u64)
            .map_err(|e| h5(path, &format!("reading dataset {name:?} as f32"), e))?
    };
    check_len(path, name, rows, dim, &data)?;
    Ok(VectorSet { dim, data })
}

/// Reads `neighbors` (and `distances` when present and the same shape).
pub(super) fn read_neighbors(path: &Path, file: &File) -> Result<Neighbors> {
    let m = matrix(path, file, "neighbors", Elements::Integers)?;
    let (rows, k) = (m.rows, m.cols);
    m.check_plausible(path, "neighbors", rows)?;
    let raw =
        m.ds.read_i64()
            .map_err(|e| h5(path, "reading dataset \"neighbors\" as integers", e))?;
    check_len(path, "neighbors", rows, k, &raw)?;
    let data = raw
        .iter()
        .enumerate()
        .map(|(i, &id)| match id {
            -1 => Ok(Neighbors::NONE),
            id if id < 0 => Err(DatasetError::NegativeId {
                file: path.to_path_buf(),
                row: i / k,
                col: i % k,
                id,
            }),
            id => u32::try_from(id)
                .ok()
                .filter(|&v| v != Neighbors::NONE)
                .ok_or_else(|| {
                    layout(
                        path,
                        format!(
                            "dataset \"neighbors\": id {id} (query {}) does not fit in a u32",
                            i / k
                        ),
                    )
                }),
        })
        .collect::<Result<Vec<u32>>>()?;
    let distances = match find(path, file, "distances")? {
        None => None,
        Some(dds) => {
            let d = matrix_of(path, dds, "distances", Elements::Numbers)?;
            let (drows, dk) = (d.rows, d.cols);
            if (drows, dk) != (rows, k) {
                return Err(layout(
                    path,
                    format!("dataset \"distances\" is {drows}×{dk}, \"neighbors\" is {rows}×{k}"),
                ));
            }
            d.check_plausible(path, "distances", drows)?;
            let d =
                d.ds.read_f32()
                    .map_err(|e| h5(path, "reading dataset \"distances\" as f32", e))?;
            check_len(path, "distances", rows, k, &d)?;
            Some(d)
        }
    };
    Ok(Neighbors { k, data, distances })
}

/// Reads the root attribute `distance`, whichever string type it was written
/// with, and maps the ann-benchmarks metric names.
pub(super) fn read_metric(path: &Path, file: &File) -> Result<Metric> {
    let attrs = file
        .root()
        .attrs()
        .map_err(|e| h5(path, "reading the root attributes", e))?;
    let value = attrs
        .get("distance")
        .ok_or_else(|| layout(path, "attribute \"distance\" is missing".to_string()))?;
    let name = value.as_str().ok_or_else(|| {
        layout(
            path,
            format!("attribute \"distance\" is {value:?}, expected a string"),
        )
    })?;
    match name.trim().to_ascii_lowercase().as_str() {
        "euclidean" => Ok(Metric::L2),
        "angular" => Ok(Metric::Cosine),
        "dot" | "ip" => Ok(Metric::InnerProduct),
        _ => Err(layout(
            path,
            format!(
                "attribute \"distance\" is {name:?}: expected \"euclidean\", \"angular\", \"dot\" or \"ip\""
            ),
        )),
    }
}
