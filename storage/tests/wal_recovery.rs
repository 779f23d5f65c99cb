use crate::common::*;
use quiver_storage::wal::encode_record;
use quiver_storage::{Error, Lsn, Recovery};
use std::fs;

/// Framed length of record i (as written by `write_records`).
fn framed(i: u64) -> u64 {
    let mut v = Vec::new();
    encode_record(&mut v, Lsn(i + 1), i as u8, &payload(i));
    v.len() as u64
}

#[test]
fn torn_tail_every_offset() {
    let n = 20u64;
    let src = tempfile::tempdir().unwrap();
    write_records(src.path(), n, opts());
    let seg = segments(src.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    let last_start = full.len() as u64 - framed(n - 1);
    for cut in last_start..full.len() as u64 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(seg.file_name().unwrap());
        fs::write(&path, &full[..cut as usize]).unwrap();
        let wal = reopen(dir.path(), Recovery::TolerateTornTail)
            .unwrap_or_else(|e| panic!("cut={cut}: {e}"));
        check_prefix(&replay_all(&wal), n as usize - 1);
        let report = wal.open_report();
        if cut > last_start {
            let (file, offset, bytes) = report.torn_tail.clone().expect("torn tail reported");
            assert_eq!(
                (file, offset, bytes),
                (path.clone(), last_start, cut - last_start)
            );
        }
        // The tail was cut back: the next append lands right after the last whole record.
        assert_eq!(fs::metadata(&path).unwrap().len(), last_start);
        assert_eq!(wal.append(9, b"after").unwrap(), Lsn(n));
        drop(wal);
        let wal = reopen(dir.path(), Recovery::TolerateTornTail).unwrap();
        let recs = replay_all(&wal);
        check_prefix(&recs[..n as usize - 1], n as usize - 1);
        assert_eq!(recs[n as usize - 1].payload, b"after");
    }
}

#[test]
fn zeroed_tail_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10, opts());
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(&seg, &bytes).unwrap();
    let wal = reopen(dir.path(), Recovery::TolerateTornTail).unwrap();
    check_prefix(&replay_all(&wal), 10);
}

#[test]
fn corruption_in_middle_record_names_file_and_offset_and_repair_keeps_prefix() {
    let n = 12u64;
    let mid = 5u64;
    let src = tempfile::tempdir().unwrap();
    write_records(src.path(), n, opts());
    let seg = segments(src.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    let start = 32 + (0..mid).map(framed).sum::<u64>();
    // Flip one bit in every byte of the middle record in turn (length, CRC, LSN, kind, payload).
    for byte in start..start + framed(mid) {
        for bit in [0u8, 7] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(seg.file_name().unwrap());
            let mut bytes = full.clone();
            bytes[byte as usize] ^= 1 << bit;
            fs::write(&path, &bytes).unwrap();

            let err = reopen(dir.path(), Recovery::TolerateTornTail).unwrap_err();
            let msg = err.to_string();
            assert!(err.is_corruption(), "byte={byte}: {msg}");
            assert!(
                msg.contains(&path.display().to_string()),
                "file missing from: {msg}"
            );
            assert!(
                msg.contains(&format!("offset {start}")),
                "offset {start} missing from: {msg}"
            );
            match &err {
                Error::ChecksumMismatch { file, offset, .. }
                | Error::Corrupt { file, offset, .. } => {
                    assert_eq!((file, *offset), (&path, start))
                }
                other => panic!("unexpected {other:?}"),
            }
            // The failed open changed nothing.
            assert_eq!(fs::read(&path).unwrap(), bytes);

            let wal = reopen(dir.path(), Recovery::Repair).unwrap();
            check_prefix(&replay_all(&wal), mid as usize);
            assert_eq!(
                wal.open_report().repaired.as_ref().map(|r| r.1),
                Some(start)
            );
            assert_eq!(wal.append(0, b"x").unwrap(), Lsn(mid + 1));
        }
    }
}

#[test]
fn corruption_in_an_earlier_segment_is_an_error_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 200, opts().segment_size(1024));
    let segs = segments(dir.path());
    assert!(segs.len() > 3);
    // Cut the first segment short: not the log's tail, so not a torn tail.
    let first = &segs[0];
    let len = fs::metadata(first).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(first).unwrap();
    f.set_len(len - 3).unwrap();
    let err = reopen(dir.path(), Recovery::TolerateTornTail).unwrap_err();
    assert!(
        err.to_string().contains(&first.display().to_string()),
        "{err}"
    );
    // Repair drops the damaged record and every later segment.
    let wal = reopen(dir.path(), Recovery::Repair).unwrap();
    let recs = replay_all(&wal);
    assert!(!recs.is_empty());
    check_prefix(&recs, recs.len());
    assert_eq!(wal.segment_count(), 1);
}

#[test]
fn torn_segment_header_at_the_tail_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    write_records(dir.path(), 10, opts());
    // A crash while rotating: the next segment exists with half a header.
    let next = dir.path().join(format!("{:020}.wal", 11));
    fs::write(
        &next,
        &quiver_storage::wal::record::encode_segment_header(Lsn(11))[..13],
    )
    .unwrap();
    let wal = reopen(dir.path(), Recovery::TolerateTornTail).unwrap();
    check_prefix(&replay_all(&wal), 10);
    assert!(!next.exists());
    assert_eq!(wal.append(0, b"x").unwrap(), Lsn(11));
}
