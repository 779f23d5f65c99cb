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

use std::panic::{self, AssertUnwindSafe};
use std::path::Path;

use hdf5_pure::{AttrValue, DType, Dataset, File, FileBuilder, FormatError};

use super::error::{DatasetError, Result};
use super::{Neighbors, VectorSet};
use crate::distance::Metric;

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

/// What a dataset's elements must be for the caller to read them.
#[derive(Clone, Copy)]
enum Elements {
    /// Any float or integer type (converted to f32).
    Numbers,
    /// Any integer type (neighbour ids).
    Integers,
}

/// Opens dataset `name`; `None` when the file has no object by that name.
fn find(path: &Path, file: &File, name: &str) -> Result<Option<Dataset>> {
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
struct Matrix {
    ds: Dataset,
    rows: usize,
    cols: usize,
    /// Bytes per stored element.
    elem: u64,
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
    fn check_plausible(&self, path: &Path, name: &str, rows: usize) -> Result<()> {
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
fn matrix(path: &Path, file: &File, name: &str, want: Elements) -> Result<Matrix> {
    let ds = find(path, file, name)?
        .ok_or_else(|| layout(path, format!("dataset {name:?} is missing")))?;
    matrix_of(path, ds, name, want)
}

/// Checks dataset `name` is a 2-D matrix with at least one column whose
/// element type suits `want`, and returns it with its shape.
fn matrix_of(path: &Path, ds: Dataset, name: &str, want: Elements) -> Result<Matrix> {
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
fn check_len<T>(path: &Path, name: &str, rows: usize, cols: usize, values: &[T]) -> Result<()> {
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

/// Reads the first `limit` rows (all by default) of `name` as f32.
fn read_vectors(path: &Path, file: &File, name: &str, limit: Option<usize>) -> Result<VectorSet> {
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
fn read_neighbors(path: &Path, file: &File) -> Result<Neighbors> {
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
fn read_metric(path: &Path, file: &File) -> Result<Metric> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{ground_truth, load_vectors, synthetic};

    /// The h5py-written fixtures (see `tests/data/make_hdf5_fixtures.py`).
    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }
    const ANGULAR: &str = "ann-angular-20x4.hdf5";
    const EUCLIDEAN_GZIP: &str = "ann-euclidean-20x4-gzip.hdf5";
    const DOT_LATEST: &str = "ann-dot-20x4-latest.hdf5";

    fn sample() -> AnnBenchmarks {
        let mut train = synthetic::clustered(230, 8, 3);
        let test = train.split_off(200);
        let neighbors = ground_truth(&train, &test, 5, Metric::Cosine).unwrap();
        AnnBenchmarks {
            train,
            test,
            neighbors,
            metric: Metric::Cosine,
        }
    }

    /// Writes a file with `f` filling a builder that already holds a valid
    /// `distance` attribute, `test` and `neighbors` (overridable).
    fn build(dir: &Path, name: &str, f: impl FnOnce(&mut FileBuilder)) -> std::path::PathBuf {
        let path = dir.join(name);
        let mut b = FileBuilder::new();
        f(&mut b);
        b.write(&path).unwrap();
        path
    }

    fn err(path: &Path) -> String {
        load(path, None).unwrap_err().to_string()
    }

    #[test]
    fn h5py_fixture_values() {
        let d = load(fixture(ANGULAR), None).unwrap();
        assert_eq!(d.metric, Metric::Cosine);
        assert_eq!((d.train.len(), d.train.dim), (20, 4));
        assert_eq!((d.test.len(), d.test.dim), (3, 4));
        assert_eq!(d.train.row(0), [-1.375, 1.25, -1.375, 0.375]);
        assert_eq!(d.train.row(19), [-2.0, 0.75, -1.25, 1.625]);
        assert_eq!(d.test.row(2), [0.875, -0.25, -0.375, -0.625]);
        assert_eq!(d.neighbors.k, 5);
        assert_eq!(
            d.neighbors.data,
            [10, 0, 3, 19, 12, 14, 17, 16, 11, 1, 14, 16, 18, 9, 11]
        );
        assert_eq!(d.neighbors.distances.as_ref().map(Vec::len), Some(15));
    }

    /// Every fixture's ids are the exact neighbours under its metric, by our own
    /// ground truth: the metric mapping and the id decoding agree with h5py.
    #[test]
    fn h5py_fixtures_match_our_ground_truth() {
        let angular = load(fixture(ANGULAR), None).unwrap();
        for (name, metric, has_distances) in [
            (ANGULAR, Metric::Cosine, true),
            (EUCLIDEAN_GZIP, Metric::L2, true),
            (DOT_LATEST, Metric::InnerProduct, false),
        ] {
            let d = load(fixture(name), None).unwrap();
            assert_eq!(d.metric, metric, "{name}");
            assert_eq!(d.train, angular.train, "{name}");
            assert_eq!(d.test, angular.test, "{name}");
            assert_eq!(d.neighbors.distances.is_some(), has_distances, "{name}");
            let gt = ground_truth(&d.train, &d.test, 5, metric).unwrap();
            assert_eq!(d.neighbors.data, gt.data, "{name}");
        }
    }

    /// `limit` ends inside a gzip chunk (the fixture's `train` has 8-row
    /// chunks) and in the contiguous file alike; `load_vectors` reads `train`.
    #[test]
    fn h5py_fixture_row_limits() {
        let full = load(fixture(ANGULAR), None).unwrap().train;
        for name in [ANGULAR, EUCLIDEAN_GZIP, DOT_LATEST] {
            for limit in [0, 1, 7, 8, 9, 13, 20, 100] {
                let d = load(fixture(name), Some(limit)).unwrap();
                let n = limit.min(20);
                assert_eq!(d.train.len(), n, "{name} limit={limit}");
                assert_eq!(d.train.data, full.data[..n * 4], "{name} limit={limit}");
                let v = load_vectors(fixture(name), Some(limit)).unwrap();
                assert_eq!(v, d.train, "{name} limit={limit}");
            }
        }
    }

    #[test]
    fn round_trip_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glove-8-angular.hdf5");
        let data = sample();
        save(&path, &data).unwrap();
        assert_eq!(load(&path, None).unwrap(), data);
        let limited = load(&path, Some(50)).unwrap();
        assert_eq!(limited.train.len(), 50);
        assert_eq!(limited.train.row(49), data.train.row(49));
        assert_eq!(load_vectors(&path, None).unwrap(), data.train);

        // Every metric, `NONE` padding, and no `distances`.
        for metric in [Metric::L2, Metric::InnerProduct, Metric::Cosine] {
            let mut d = sample();
            d.metric = metric;
            d.neighbors.data[3] = Neighbors::NONE;
            d.neighbors.distances = None;
            let path = dir.path().join("padded.h5");
            save(&path, &d).unwrap();
            assert_eq!(load(&path, None).unwrap(), d, "{metric:?}");
        }
    }

    fn valid_rest(b: &mut FileBuilder) {
        b.set_attr("distance", AttrValue::AsciiString("euclidean".into()));
        b.create_dataset("test")
            .with_f32_data(&[0.0, 1.0])
            .with_shape(&[1, 2]);
    }

    #[test]
    fn int64_ids_f64_vectors_and_ascii_distance() {
        let dir = tempfile::tempdir().unwrap();
        let path = build(dir.path(), "sift-2-euclidean.hdf5", |b| {
            valid_rest(b);
            b.create_dataset("train")
                .with_f64_data(&[0.0, 1.0, 2.0, 3.0])
                .with_shape(&[2, 2]);
            b.create_dataset("neighbors")
                .with_i64_data(&[0, -1])
                .with_shape(&[1, 2]);
        });
        let d = load(&path, None).unwrap();
        assert_eq!(d.metric, Metric::L2);
        assert_eq!(d.train.data, [0.0, 1.0, 2.0, 3.0]);
        assert_eq!(d.neighbors.data, [0, Neighbors::NONE]);
        assert_eq!(d.neighbors.distances, None);
    }

    #[test]
    fn metric_names() {
        let dir = tempfile::tempdir().unwrap();
        for (name, metric) in [
            ("euclidean", Some(Metric::L2)),
            ("angular", Some(Metric::Cosine)),
            ("dot", Some(Metric::InnerProduct)),
            ("ip", Some(Metric::InnerProduct)),
            ("hamming", None),
            ("jaccard", None),
        ] {
            let path = build(dir.path(), "m.hdf5", |b| {
                b.set_attr("distance", AttrValue::VarLenString(name.into()));
            });
            match metric {
                Some(m) => assert_eq!(read_metric(&path, &open(&path).unwrap()).unwrap(), m),
                None => {
                    let e = err(&path);
                    assert!(
                        e.contains("m.hdf5") && e.contains("\"distance\"") && e.contains(name),
                        "{e}"
                    );
                }
            }
        }
    }

    /// Each malformed layout is an error naming the file and the dataset or
    /// attribute at fault.
    #[test]
    fn malformed_layouts_name_the_file_and_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let train = |b: &mut FileBuilder| {
            b.create_dataset("train")
                .with_f32_data(&[0.0; 4])
                .with_shape(&[2, 2]);
        };
        let ids = |b: &mut FileBuilder| {
            b.create_dataset("neighbors")
                .with_i32_data(&[0, 1])
                .with_shape(&[1, 2]);
        };
        type Case = (&'static str, Box<dyn Fn(&mut FileBuilder)>, &'static str);
        let cases: Vec<Case> = vec![
            (
                "no-distance.hdf5",
                Box::new(|b| {
                    b.create_dataset("x").with_f32_data(&[0.0]);
                }),
                "attribute \"distance\" is missing",
            ),
            (
                "int-distance.hdf5",
                Box::new(|b| b.set_attr("distance", AttrValue::I64(2))),
                "attribute \"distance\" is I64(2), expected a string",
            ),
            (
                "no-train.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    ids(b)
                }),
                "dataset \"train\" is missing",
            ),
            (
                "no-neighbors.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b)
                }),
                "dataset \"neighbors\" is missing",
            ),
            (
                "rank3.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    ids(b);
                    b.create_dataset("train")
                        .with_f32_data(&[0.0; 8])
                        .with_shape(&[2, 2, 2]);
                }),
                "dataset \"train\" has shape [2, 2, 2]: expected 2 dimensions",
            ),
            (
                "rank1.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    b.create_dataset("neighbors").with_i32_data(&[0, 1]);
                }),
                "dataset \"neighbors\" has shape [2]: expected 2 dimensions",
            ),
            (
                "strings.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    ids(b);
                    b.create_dataset("train")
                        .with_ascii_strings(&["a", "b"])
                        .unwrap()
                        .with_shape(&[2, 1]);
                }),
                "dataset \"train\" holds string, expected numbers",
            ),
            (
                "float-ids.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    b.create_dataset("neighbors")
                        .with_f32_data(&[0.0, 1.0])
                        .with_shape(&[1, 2]);
                }),
                "dataset \"neighbors\" holds f32, expected integer ids",
            ),
            (
                "dim-mismatch.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    ids(b);
                    b.create_dataset("train")
                        .with_f32_data(&[0.0; 6])
                        .with_shape(&[2, 3]);
                }),
                "dataset \"test\" has dimension 2, \"train\" has 3",
            ),
            (
                "negative-id.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    b.create_dataset("neighbors")
                        .with_i64_data(&[0, -7])
                        .with_shape(&[1, 2]);
                }),
                "row 0, column 1 has id -7",
            ),
            (
                "huge-id.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    b.create_dataset("neighbors")
                        .with_i64_data(&[0, 1 << 40])
                        .with_shape(&[1, 2]);
                }),
                "id 1099511627776 (query 0) does not fit in a u32",
            ),
            (
                "bad-distances.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    ids(b);
                    b.create_dataset("distances")
                        .with_f32_data(&[0.0; 3])
                        .with_shape(&[1, 3]);
                }),
                "dataset \"distances\" is 1×3, \"neighbors\" is 1×2",
            ),
            (
                "rows-mismatch.hdf5",
                Box::new(move |b| {
                    valid_rest(b);
                    train(b);
                    b.create_dataset("neighbors")
                        .with_i32_data(&[0, 1, 1, 0])
                        .with_shape(&[2, 2]);
                }),
                "dataset \"neighbors\" has 2 rows, \"test\" has 1 queries",
            ),
        ];
        for (name, fill, expected) in cases {
            let path = build(dir.path(), name, fill);
            let e = err(&path);
            assert!(e.contains(name) && e.contains(expected), "{name}: {e}");
        }

        let missing = dir.path().join("absent.hdf5");
        assert!(matches!(load(&missing, None), Err(DatasetError::Io { .. })));
    }

    /// Garbage, truncations and single-byte corruptions of each h5py fixture:
    /// always `Ok` or an error naming the file, never a panic (`guarded` would
    /// turn one into an error: check none reaches it) nor an abort on a huge
    /// allocation. Every `STRIDE`-th offset, shifted per fixture, to keep the
    /// test quick; with `STRIDE = 1` (every offset) it passed too, in ~2 min.
    #[test]
    fn truncated_and_garbage_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.hdf5");
        let check = |bytes: &[u8], what: &str| {
            std::fs::write(&path, bytes).unwrap();
            if let Err(e) = load(&path, Some(13)) {
                let e = e.to_string();
                assert!(e.contains("broken.hdf5"), "{what}: {e}");
                assert!(!e.contains("HDF5 reader failed"), "{what}: panicked: {e}");
            }
        };
        check(b"", "empty");
        check(b"not an hdf5 file at all", "text");
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let garbage: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        check(&garbage, "random");
        const STRIDE: usize = 4;
        for (shift, name) in [ANGULAR, EUCLIDEAN_GZIP, DOT_LATEST]
            .into_iter()
            .enumerate()
        {
            let good = std::fs::read(fixture(name)).unwrap();
            let mut with_magic = good[..8].to_vec();
            with_magic.extend_from_slice(&garbage);
            check(&with_magic, &format!("{name}: magic + garbage"));
            for len in (shift..good.len()).step_by(STRIDE) {
                check(&good[..len], &format!("{name} truncated to {len}"));
            }
            for at in (shift + 1..good.len()).step_by(STRIDE) {
                let mut bad = good.clone();
                bad[at] ^= 0xA5;
                check(&bad, &format!("{name} byte {at} flipped"));
            }
        }
    }

    #[test]
    fn guarded_turns_a_panic_into_an_error() {
        let path = Path::new("x.hdf5");
        let prev = panic::take_hook();
        panic::set_hook(Box::new(|_| {}));
        let r: Result<()> = guarded(path, || panic!("index out of bounds"));
        panic::set_hook(prev);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("x.hdf5") && e.contains("index out of bounds"),
            "{e}"
        );
    }
}
