//! Runs the committed fuzz corpus of the quiver decoders (HNSW file, dataset
//! files) as an ordinary test: every input decodes or errors, never panics.

use std::path::{Path, PathBuf};

use quiver::dataset;
use quiver::hnsw::{Hnsw, VectorEncoding};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn fuzz_corpus_hnsw_file() {
    let files = corpus("hnsw_file");
    assert!(files.len() >= 3, "corpus too small");
    let mut loaded = Vec::new();
    let mut failed = 0;
    for (p, b) in &files {
        let name = p.file_name().unwrap().to_string_lossy();
        match Hnsw::from_bytes(b, p, 1) {
            Ok(ix) => {
                let q = vec![0.5; ix.dim()];
                let _ = ix.search(&q, 3, 10);
                let _ = ix.insert(&q);
                loaded.push((b[8], ix.encoding()));
            }
            Err(e) => {
                assert!(!name.starts_with("valid"), "{name}: {e}");
                failed += 1;
            }
        }
    }
    assert!(failed >= 1, "corpus should hold invalid files");
    // Version 1 (f32) and version 2 in every encoding.
    for want in [
        (1, VectorEncoding::F32),
        (2, VectorEncoding::F32),
        (2, VectorEncoding::F16),
        (2, VectorEncoding::Sq8),
    ] {
        assert!(loaded.contains(&want), "no valid file of {want:?}");
    }
}

#[test]
fn fuzz_corpus_dataset_file() {
    const EXTENSIONS: [&str; 9] = [
        "fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "ibin", "hdf5", "h5",
    ];
    let files = corpus("dataset_file");
    assert!(files.len() >= 3, "corpus too small");
    let dir = tempfile::tempdir().unwrap();
    let mut ok = 0;
    for (i, (_, bytes)) in files.iter().enumerate() {
        let Some((&sel, body)) = bytes.split_first() else {
            continue;
        };
        let path = dir.path().join(format!(
            "{i}.{}",
            EXTENSIONS[sel as usize % EXTENSIONS.len()]
        ));
        std::fs::write(&path, body).unwrap();
        ok += dataset::load_vectors(&path, Some(1000)).is_ok() as usize;
        ok += dataset::load_neighbors(&path).is_ok() as usize;
    }
    assert!(ok >= 1, "corpus should hold valid files");
}

/// Writes the seed corpus (run once by hand: `cargo test --test tests -- --ignored write_seed_corpus`).
/// `hnsw_file/valid-40x4` is a version-1 file written before version 2
/// existed; it is kept as it is, to keep loading version 1 covered.
#[test]
#[ignore]
fn write_seed_corpus() {
    use quiver::distance::Metric;
    use quiver::hnsw::{HnswParams, NodeId};
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let data = dataset::synthetic::clustered(40, 4, 1);
    let ix = Hnsw::build(
        &data.data,
        4,
        Metric::L2,
        HnswParams {
            m: 4,
            ..Default::default()
        },
        false,
    )
    .unwrap();
    ix.delete(NodeId(3)).unwrap();
    let p = root.join("hnsw_file/valid-40x4-v2");
    ix.save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for enc in [VectorEncoding::F16, VectorEncoding::Sq8] {
        let ix = Hnsw::build_encoded(
            &data.data,
            4,
            Metric::Cosine,
            HnswParams {
                m: 4,
                ..Default::default()
            },
            enc,
            false,
        )
        .unwrap();
        ix.delete(NodeId(5)).unwrap();
        ix.save(&root.join(format!("hnsw_file/valid-40x4-{enc}")))
            .unwrap();
    }
    std::fs::write(root.join("hnsw_file/truncated"), &bytes[..bytes.len() / 2]).unwrap();
    let mut flipped = bytes.clone();
    flipped[100] ^= 4;
    std::fs::write(root.join("hnsw_file/bit-flip"), flipped).unwrap();
    std::fs::write(root.join("hnsw_file/empty"), b"").unwrap();

    let d = root.join("dataset_file");
    let small = dataset::synthetic::clustered(5, 3, 2);
    let tmp = tempfile::tempdir().unwrap();
    for (sel, ext) in [(0u8, "fvecs"), (3, "fbin")] {
        let f = tmp.path().join(format!("x.{ext}"));
        dataset::save_vectors(&f, &small).unwrap();
        let mut b = vec![sel];
        b.extend(std::fs::read(&f).unwrap());
        std::fs::write(d.join(format!("valid-{ext}")), &b).unwrap();
        b.truncate(b.len() - 3);
        std::fs::write(d.join(format!("truncated-{ext}")), &b).unwrap();
    }
    let gt = dataset::Neighbors {
        k: 2,
        data: vec![0, 1, 2, 3],
        distances: None,
    };
    let f = tmp.path().join("g.ibin");
    dataset::save_neighbors(&f, &gt).unwrap();
    let mut b = vec![6u8];
    b.extend(std::fs::read(&f).unwrap());
    std::fs::write(d.join("valid-ibin"), &b).unwrap();
    std::fs::write(
        d.join("garbage-hdf5"),
        [7u8, 0x89, b'H', b'D', b'F', 1, 2, 3],
    )
    .unwrap();
}
