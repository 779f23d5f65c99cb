//! Tests of the ann-benchmarks reader and writer.

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
