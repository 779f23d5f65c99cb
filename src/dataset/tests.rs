//! Format tests: every writer/reader pair round-trips, every malformed file
//! gives an error naming the file, and arbitrary bytes never panic a reader.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn sample(n: usize, dim: usize) -> VectorSet {
    let data = (0..n * dim).map(|i| (i as f32) * 0.25 - 3.0).collect();
    VectorSet::new(dim, data).unwrap()
}

fn sample_neighbors() -> Neighbors {
    Neighbors {
        k: 3,
        data: vec![0, 7, 2, 9, Neighbors::NONE, 1],
        distances: None,
    }
}

fn le_i32(values: &[i32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn le_u32(values: &[u32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Loads `path` with the entry point its extension selects; the error text.
fn load_err(path: &Path) -> String {
    let err = match Format::from_path(path) {
        Some(Format::Ivecs | Format::Ibin) => load_neighbors(path).map(|_| ()),
        _ => load_vectors(path, None).map(|_| ()),
    };
    err.expect_err("malformed file was accepted").to_string()
}

fn assert_error(path: &Path, expect: &str) {
    let msg = load_err(path);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "error does not name the file: {msg}");
    assert!(msg.contains(expect), "expected {expect:?} in: {msg}");
}

#[test]
fn vector_writers_round_trip() {
    let d = dir();
    let v = sample(37, 5);
    for name in ["v.fvecs", "v.fbin", "V.FBIN"] {
        let p = d.path().join(name);
        save_vectors(&p, &v).unwrap();
        assert_eq!(load_vectors(&p, None).unwrap(), v, "{name}");
        let head = load_vectors(&p, Some(10)).unwrap();
        assert_eq!((head.len(), head.row(9)), (10, v.row(9)), "{name}");
        assert_eq!(load_vectors(&p, Some(1000)).unwrap(), v, "{name}");
        let none = load_vectors(&p, Some(0)).unwrap();
        assert_eq!((none.len(), none.dim), (0, 5), "{name}");
    }
}

#[test]
fn neighbor_writers_round_trip() {
    let d = dir();
    let n = sample_neighbors();
    for name in ["gt.ivecs", "gt.ibin"] {
        let p = d.path().join(name);
        save_neighbors(&p, &n).unwrap();
        assert_eq!(load_neighbors(&p).unwrap(), n, "{name}");
    }
    // big-ann ground truth with distances after the ids.
    let with = Neighbors {
        distances: Some(vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]),
        ..n
    };
    let p = d.path().join("gt-dist.ibin");
    save_neighbors(&p, &with).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().len(), 8 + 2 * 6 * 4);
    assert_eq!(load_neighbors(&p).unwrap(), with);
    let head = bigann::read_ibin(&p, Some(1)).unwrap();
    assert_eq!(
        (head.row(0), head.distance_row(0).unwrap()),
        (&[0, 7, 2][..], &[0.5, 1.0, 1.5][..])
    );
    assert_eq!(
        texmex::read_ivecs(d.path().join("gt.ivecs"), Some(1))
            .unwrap()
            .data,
        vec![0, 7, 2]
    );
}

#[test]
fn byte_formats_convert_to_f32() {
    let d = dir();
    // .bvecs: two rows of dimension 3.
    let mut b = Vec::new();
    for row in [[0u8, 128, 255], [1, 2, 3]] {
        b.extend(le_i32(&[3]));
        b.extend(row);
    }
    let p = write(d.path(), "x.bvecs", &b);
    assert_eq!(
        load_vectors(&p, None).unwrap().data,
        vec![0.0, 128.0, 255.0, 1.0, 2.0, 3.0]
    );
    assert_eq!(
        load_vectors(&p, Some(1)).unwrap().data,
        vec![0.0, 128.0, 255.0]
    );

    let mut h = le_u32(&[2, 2]);
    h.extend([0u8, 200, 255, 7]);
    let p = write(d.path(), "x.u8bin", &h);
    assert_eq!(
        load_vectors(&p, None).unwrap().data,
        vec![0.0, 200.0, 255.0, 7.0]
    );
    let p = write(d.path(), "x.i8bin", &h);
    assert_eq!(
        load_vectors(&p, None).unwrap().data,
        vec![0.0, -56.0, -1.0, 7.0]
    );
}

#[test]
fn malformed_texmex_files_are_typed_errors() {
    let d = dir();
    let p = d.path();
    let row = |dim: i32, values: usize| {
        let mut b = le_i32(&[dim]);
        b.extend(vec![0u8; values * 4]);
        b
    };
    // Row 2 declares another dimension.
    let bytes = [row(4, 4), row(4, 4), row(3, 3)].concat();
    assert_error(
        &write(p, "base.fvecs", &bytes),
        "row 2 has dimension 3, expected 4",
    );
    // Zero and negative dimensions.
    assert_error(&write(p, "zero.fvecs", &row(0, 0)), "row 0 has dimension 0");
    assert_error(
        &write(p, "neg.ivecs", &[row(2, 2), row(-5, 0)].concat()),
        "row 1 has dimension -5",
    );
    // A row cut short, and a dangling partial header.
    let bytes = [row(4, 4), row(4, 2)].concat();
    assert_error(
        &write(p, "short.fvecs", &bytes),
        "row 1 is truncated: it needs 16 bytes at offset 24, the file has 8",
    );
    let bytes = [row(4, 4), vec![4, 0]].concat();
    assert_error(&write(p, "tail.fvecs", &bytes), "row 1 is truncated");
    // Empty file; negative ids other than the -1 pad.
    assert_error(&write(p, "empty.fvecs", &[]), "file has no rows");
    assert_error(
        &write(p, "ids.ivecs", &le_i32(&[2, 5, -7])),
        "row 0, column 1 has id -7",
    );
    // A byte-format row checked with its element size.
    assert_error(
        &write(p, "short.bvecs", &[le_i32(&[4]), vec![1, 2]].concat()),
        "needs 4 bytes",
    );
}

#[test]
fn malformed_bigann_files_are_typed_errors() {
    let d = dir();
    let p = d.path();
    assert_error(
        &write(p, "x.fbin", &[le_u32(&[1000, 384]), vec![0; 12]].concat()),
        "header says 1000 rows × 384 dims = 1536000 bytes of data, file has 12 bytes",
    );
    assert_error(
        &write(p, "long.fbin", &[le_u32(&[1, 2]), vec![0; 12]].concat()),
        "= 8 bytes of data, file has 12",
    );
    assert_error(
        &write(p, "hdr.fbin", &[1, 0, 0]),
        "file is 3 bytes, shorter than its 8-byte header",
    );
    assert_error(
        &write(p, "zero.u8bin", &le_u32(&[5, 0])),
        "header declares dimension 0",
    );
    // n·d·4 overflows u64; n·d fits but the file is short.
    assert_error(
        &write(p, "huge.fbin", &le_u32(&[u32::MAX, u32::MAX])),
        "the data size is too large",
    );
    assert_error(
        &write(p, "big.fbin", &le_u32(&[u32::MAX, 2])),
        "bytes of data, file has 0 bytes",
    );
    assert_error(
        &write(p, "gt.ibin", &[le_u32(&[1, 2]), le_i32(&[3, -2])].concat()),
        "column 1 has id -2",
    );
    // Distances are accepted only in .ibin.
    assert_error(
        &write(p, "twice.fbin", &[le_u32(&[1, 2]), vec![0; 16]].concat()),
        "file has 16 bytes",
    );
}

#[test]
fn unknown_extensions_are_rejected() {
    let d = dir();
    let p = write(d.path(), "vectors.npy", b"x");
    let msg = load_vectors(&p, None).unwrap_err().to_string();
    assert!(
        msg.contains("vectors.npy") && msg.contains("\"npy\"") && msg.contains(".fvecs"),
        "{msg}"
    );
    let msg = load_neighbors(d.path().join("gt.fvecs"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("gt.fvecs") && msg.contains(".ivecs, .ibin"),
        "{msg}"
    );
    let msg = load_vectors(d.path().join("noext"), None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("noext") && msg.contains("unknown extension \"\""),
        "{msg}"
    );
    let msg = load_vectors(d.path().join("missing.fbin"), None)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("missing.fbin"), "{msg}");
    let msg = save_vectors(d.path().join("out.ivecs"), &sample(1, 1))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("out.ivecs"), "{msg}");
}

#[test]
fn writers_reject_unrepresentable_input() {
    let d = dir();
    let empty = VectorSet::default();
    let msg = save_vectors(d.path().join("e.fbin"), &empty)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("e.fbin") && msg.contains("dimension 0"),
        "{msg}"
    );
    let big = Neighbors {
        k: 1,
        data: vec![u32::MAX - 1],
        distances: None,
    };
    let msg = save_neighbors(d.path().join("big.ivecs"), &big)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("big.ivecs") && msg.contains("does not fit in an i32"),
        "{msg}"
    );
}

const EXTENSIONS: [&str; 7] = ["fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "ibin"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Arbitrary bytes (biased towards small plausible headers) never panic a reader.
    #[test]
    fn readers_never_panic(
        head in proptest::collection::vec(0u32..6, 0..3),
        tail in proptest::collection::vec(any::<u8>(), 0..64),
        ext in 0..EXTENSIONS.len(),
        limit in proptest::option::of(0usize..4),
    ) {
        let d = dir();
        let bytes = [le_u32(&head), tail].concat();
        let p = write(d.path(), &format!("f.{}", EXTENSIONS[ext]), &bytes);
        let _ = load_vectors(&p, limit);
        let _ = load_neighbors(&p);
        let _ = texmex::read_ivecs(&p, limit);
        let _ = bigann::read_ibin(&p, limit);
    }

    /// Any truncation of a valid file is an error naming it, never a panic.
    #[test]
    fn truncations_are_errors(cut in 1usize..(8 + 3 * 4 * 4), ext in prop_oneof![Just("fvecs"), Just("fbin")]) {
        let d = dir();
        let name = format!("t.{ext}");
        let p = d.path().join(&name);
        save_vectors(&p, &sample(3, 4)).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let cut = cut.min(bytes.len() - 1);
        std::fs::write(&p, &bytes[..bytes.len() - cut]).unwrap();
        let result = load_vectors(&p, None);
        if ext == "fvecs" && cut % (4 + 4 * 4) == 0 {
            // Whole rows removed: a valid, shorter file.
            prop_assert_eq!(result.unwrap().len(), 3 - cut / 20);
        } else {
            let err = result.unwrap_err().to_string();
            prop_assert!(err.contains(&name), "{}", err);
        }
    }
}
