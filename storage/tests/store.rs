use quiver_storage::backend::default_backend;
use quiver_storage::manifest::FileEntry;
use quiver_storage::mmap::Verify;
use quiver_storage::store::Store;
use quiver_storage::{Error, FaultyBackend, Fsync, Lsn, WalOptions};
use std::fs;
use std::sync::Arc;

#[test]
fn files_commit_and_typed_maps_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let vectors: Vec<f32> = (0..384 * 10).map(|i| i as f32 * 0.5).collect();
    let ids: Vec<u64> = (0..10).map(|i| i * 1000).collect();
    {
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.manifest().generation, 0);
        let a = store.write_array("vectors-1.qvf", 1, &vectors).unwrap();
        let b = store.write_array("ids-1.qvf", 2, &ids).unwrap();
        store.commit(Lsn(42), vec![a, b]).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.removed_on_open().is_empty());
    let m = store.manifest();
    assert_eq!(
        (m.generation, m.checkpoint_lsn, m.files.len()),
        (1, Lsn(42), 2)
    );
    let v = store
        .map_array::<f32>("vectors-1.qvf", Verify::Full)
        .unwrap();
    assert_eq!(&v[..], &vectors[..]);
    assert_eq!(v.file().header().kind, 1);
    let i = store.map_array::<u64>("ids-1.qvf", Verify::Header).unwrap();
    assert_eq!(&i[..], &ids[..]);
    // Element size is checked: u64 ids cannot be viewed as f32.
    let err = store
        .map_array::<f32>("ids-1.qvf", Verify::Header)
        .unwrap_err();
    assert!(matches!(err, Error::Layout { .. }), "{err}");
    let (h, bytes) = store.read_file("ids-1.qvf").unwrap();
    assert_eq!(
        (h.kind, bytes.as_slice()),
        (2, bytemuck::cast_slice::<u64, u8>(&ids))
    );
}

#[test]
fn untyped_file_with_ragged_length_cannot_be_viewed_as_u64() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.write_file("raw.qvf", 0, 0, &[1u8; 12]).unwrap();
    let f = store.map_file("raw.qvf", Verify::Full).unwrap();
    assert_eq!(f.as_slice::<u32>().unwrap(), &[0x0101_0101u32; 3]);
    assert!(matches!(f.as_slice::<u64>(), Err(Error::Layout { .. })));
    // The payload of a mapped file is 64-byte aligned.
    assert_eq!(f.bytes().as_ptr() as usize % 64, 0);
}

#[test]
fn damaged_data_file_is_reported_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.write_array("v.qvf", 1, &[1.0f32; 100]).unwrap();
    let path = store.path("v.qvf");
    let mut bytes = fs::read(&path).unwrap();
    bytes[100] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    let err = store.map_file("v.qvf", Verify::Full).unwrap_err();
    assert!(
        matches!(err, Error::ChecksumMismatch { offset: 64, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("v.qvf"), "{err}");
    // The header alone is fine.
    store.map_file("v.qvf", Verify::Header).unwrap();
    bytes[3] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(store
        .map_file("v.qvf", Verify::Header)
        .unwrap_err()
        .is_corruption());
}

#[test]
fn unnamed_files_are_cleaned_up_on_open_and_others_kept() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path()).unwrap();
        let live = store.write_file("live.qvf", 0, 0, b"live").unwrap();
        store
            .write_file("orphan.qvf", 0, 0, b"never committed")
            .unwrap();
        store.commit(Lsn(1), vec![live]).unwrap();
    }
    fs::write(dir.path().join("half.qvf.tmp"), b"partial").unwrap();
    fs::write(dir.path().join("MANIFEST.tmp"), b"partial").unwrap();
    fs::write(dir.path().join("notes.txt"), b"not ours").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut removed = store.removed_on_open().to_vec();
    removed.sort();
    assert_eq!(removed, ["MANIFEST.tmp", "half.qvf.tmp", "orphan.qvf"]);
    assert!(dir.path().join("live.qvf").exists());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn commit_removes_files_the_new_manifest_drops() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let a = store.write_file("a.qvf", 0, 0, b"a").unwrap();
    store.commit(Lsn(1), vec![a]).unwrap();
    let b = store.write_file("b.qvf", 0, 0, b"b").unwrap();
    store.commit(Lsn(2), vec![b]).unwrap();
    assert!(!dir.path().join("a.qvf").exists());
    assert!(dir.path().join("b.qvf").exists());
    assert!(store
        .commit(
            Lsn(3),
            vec![FileEntry {
                name: "../x".into(),
                len: 0
            }]
        )
        .is_err());
}

#[test]
fn second_open_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(matches!(Store::open(dir.path()), Err(Error::Locked { .. })));
    drop(store);
    Store::open(dir.path()).unwrap();
}

#[test]
fn damaged_manifest_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = Store::open(dir.path()).unwrap();
        store.commit(Lsn(5), vec![]).unwrap();
    }
    let path = dir.path().join("MANIFEST");
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 4;
    fs::write(&path, &bytes).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        err.is_corruption() && err.to_string().contains("MANIFEST"),
        "{err}"
    );
}

/// Power cut after every operation of "write a file, commit it": on reopen the
/// manifest is the old one or the new one, its files are all there, and no orphan remains.
#[test]
fn crash_at_every_point_of_a_commit_leaves_old_or_new_manifest() {
    for cut in 0.. {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut store = Store::open(dir.path()).unwrap();
            let old = store.write_file("old.qvf", 0, 0, b"old").unwrap();
            store.commit(Lsn(10), vec![old]).unwrap();
        }
        let fb = FaultyBackend::new(default_backend());
        let committed = (|| {
            let mut store = Store::open_with(dir.path(), Arc::new(fb.clone()))?;
            fb.crash_after(cut);
            let new = store.write_file("new.qvf", 0, 0, b"new contents")?;
            store.commit(Lsn(20), vec![new])
        })()
        .is_ok();
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("cut={cut}: {e}"));
        let m = store.manifest();
        let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
        match m.generation {
            1 => assert_eq!(
                (m.checkpoint_lsn, names.as_slice()),
                (Lsn(10), &["old.qvf"][..]),
                "cut={cut}"
            ),
            2 => assert_eq!(
                (m.checkpoint_lsn, names.as_slice()),
                (Lsn(20), &["new.qvf"][..]),
                "cut={cut}"
            ),
            g => panic!("cut={cut}: generation {g}"),
        }
        assert!(
            !committed || m.generation == 2,
            "cut={cut}: commit acknowledged but old manifest"
        );
        let mut on_disk: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "LOCK" && n != "MANIFEST")
            .collect();
        on_disk.sort();
        assert_eq!(on_disk, names, "cut={cut}: files on disk vs manifest");
        for f in &m.files {
            store.map_file(&f.name, Verify::Full).unwrap();
        }
        if committed {
            break;
        }
    }
}

#[test]
fn store_opens_its_wal_in_a_subdirectory() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let wal = store
        .open_wal(WalOptions::default().fsync(Fsync::Never))
        .unwrap();
    assert_eq!(wal.append(1, b"x").unwrap(), Lsn(1));
    assert!(dir.path().join("wal").is_dir());
}
