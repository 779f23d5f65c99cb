//! Runs the committed fuzz corpus through the decoders as an ordinary test,
//! plus property tests of arbitrary and mutated bytes.

use proptest::prelude::*;
use quiver_storage::manifest::{self, FileEntry, Manifest};
use quiver_storage::wal::{decode_record, encode_record, Lsn};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn wal_record_corpus_decodes_without_panic() {
    let files = corpus("wal_record");
    assert!(files.len() >= 4, "corpus too small");
    let valid = files
        .iter()
        .filter(|(_, b)| decode_record(b).is_ok())
        .count();
    assert!(
        valid >= 1 && valid < files.len(),
        "corpus should hold valid and invalid records"
    );
    for (path, bytes) in &files {
        if let Ok((rec, n)) = decode_record(bytes) {
            let mut again = Vec::new();
            encode_record(&mut again, rec.lsn, rec.kind, rec.payload);
            assert_eq!(&again[..], &bytes[..n], "{}", path.display());
        }
    }
}

#[test]
fn manifest_corpus_decodes_without_panic() {
    let files = corpus("manifest");
    assert!(files.len() >= 4, "corpus too small");
    let valid = files
        .iter()
        .filter(|(_, b)| manifest::decode(b).is_ok())
        .count();
    assert!(
        valid >= 1 && valid < files.len(),
        "corpus should hold valid and invalid manifests"
    );
    for (path, bytes) in &files {
        if let Ok(m) = manifest::decode(bytes) {
            assert_eq!(manifest::encode(&m), *bytes, "{}", path.display());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_record(&bytes);
        let _ = manifest::decode(&bytes);
    }

    #[test]
    fn record_roundtrips_and_mutations_are_caught(
        lsn in 1u64..u64::MAX, kind in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let mut buf = Vec::new();
        encode_record(&mut buf, Lsn(lsn), kind, &payload);
        let (rec, n) = decode_record(&buf).unwrap();
        prop_assert_eq!((rec.lsn, rec.kind, rec.payload, n), (Lsn(lsn), kind, &payload[..], buf.len()));
        let i = flip.index(buf.len());
        buf[i] ^= 1 << bit;
        prop_assert!(decode_record(&buf).is_err());
    }

    #[test]
    fn manifest_roundtrips(
        generation in any::<u64>(), lsn in any::<u64>(),
        names in proptest::collection::btree_set("[a-z0-9_-]{1,20}\\.qvf", 0..8),
        len in any::<u64>(),
    ) {
        let m = Manifest {
            generation,
            checkpoint_lsn: Lsn(lsn),
            files: names.into_iter().map(|name| FileEntry { name, len }).collect(),
        };
        prop_assert_eq!(manifest::decode(&manifest::encode(&m)).unwrap(), m);
    }
}
