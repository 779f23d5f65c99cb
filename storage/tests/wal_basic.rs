use crate::common::*;
use quiver_storage::{Fsync, Lsn, Wal, WalOptions};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn append_replay_roundtrip_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let lsns = write_records(dir.path(), 100, opts());
    assert_eq!(lsns, (1..=100).map(Lsn).collect::<Vec<_>>());
    let wal = Wal::open(dir.path(), opts()).unwrap();
    check_prefix(&replay_all(&wal), 100);
    assert_eq!(wal.append(0, b"next").unwrap(), Lsn(101));
}

#[test]
fn append_batch_gives_consecutive_lsns() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(
        wal.append_batch(&[(1, b"a"), (2, b"bb"), (3, b"")])
            .unwrap(),
        Lsn(3)
    );
    assert_eq!(wal.durable_lsn(), Lsn(3));
    let recs = replay_all(&wal);
    assert_eq!(
        recs.iter()
            .map(|r| (r.lsn.0, r.kind, r.payload.len()))
            .collect::<Vec<_>>(),
        [(1, 1, 1), (2, 2, 2), (3, 3, 0)]
    );
    assert!(wal.append_batch(&[]).is_err());
}

#[test]
fn segments_rotate_and_truncate_before_drops_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts().segment_size(1024)).unwrap();
    for i in 0..300 {
        wal.append(i as u8, &payload(i)).unwrap();
    }
    let n = wal.segment_count();
    assert!(n > 5, "segments={n}");
    check_prefix(&replay_all(&wal), 300);
    let from_150: Vec<_> = wal
        .replay(Lsn(150))
        .unwrap()
        .map(|r| r.unwrap().lsn.0)
        .collect();
    assert_eq!(from_150, (150..=300).collect::<Vec<_>>());

    let removed = wal.truncate_before(Lsn(150)).unwrap();
    assert!(removed > 0 && removed < n, "removed={removed} of {n}");
    assert_eq!(segments(dir.path()).len(), n - removed);
    // Every record >= 150 is still there; the first kept record is <= 150.
    let kept: Vec<_> = replay_all(&wal).iter().map(|r| r.lsn.0).collect();
    assert!(kept[0] <= 150 && *kept.last().unwrap() == 300);
    assert_eq!(kept.len() as u64, 300 - kept[0] + 1);
    drop(wal);
    // Reopen after truncation: LSNs continue.
    let wal = Wal::open(dir.path(), opts().segment_size(1024)).unwrap();
    assert_eq!(wal.append(0, b"x").unwrap(), Lsn(301));
    // Truncating everything keeps the active segment.
    wal.truncate_before(Lsn(1000)).unwrap();
    assert_eq!(wal.segment_count(), 1);
    assert_eq!(wal.append(0, b"y").unwrap(), Lsn(302));
}

#[test]
fn size_bytes_sums_the_segment_files_and_shrinks_on_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts().segment_size(1024)).unwrap();
    let on_disk = |dir: &std::path::Path| -> u64 {
        segments(dir)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    };
    let empty = wal.size_bytes();
    assert_eq!(empty, on_disk(dir.path()));
    for i in 0..200 {
        wal.append(i as u8, &payload(i)).unwrap();
    }
    let full = wal.size_bytes();
    assert!(full > empty + 200, "{empty} -> {full}");
    assert_eq!(full, on_disk(dir.path()));
    wal.truncate_before(Lsn(190)).unwrap();
    let truncated = wal.size_bytes();
    assert!(truncated < full, "{full} -> {truncated}");
    assert_eq!(truncated, on_disk(dir.path()));
}

#[test]
fn concurrent_appenders_get_unique_lsns_and_all_records_replay() {
    let dir = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(dir.path(), WalOptions::default().segment_size(16 << 10)).unwrap());
    let threads = 8u64;
    let per = 50u64;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = wal.clone();
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| {
                        (
                            wal.append(t as u8, &(t * 1000 + i).to_le_bytes()).unwrap(),
                            t * 1000 + i,
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<(Lsn, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort();
    assert_eq!(acked.len() as u64, threads * per);
    assert_eq!(wal.durable_lsn(), Lsn(threads * per));
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).unwrap();
    let recs = replay_all(&wal);
    assert_eq!(recs.len(), acked.len());
    for (r, (lsn, v)) in recs.iter().zip(&acked) {
        assert_eq!(r.lsn, *lsn);
        assert_eq!(r.payload, v.to_le_bytes());
    }
}

#[test]
fn enqueue_under_callers_lock_keeps_callers_order_and_waits_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal =
        Arc::new(Wal::open(dir.path(), WalOptions::default().segment_size(16 << 10)).unwrap());
    // The caller's own sequence, taken under its lock together with the enqueue.
    let order = Arc::new(parking_lot::Mutex::new(0u64));
    let threads = 8u64;
    let per = 50u64;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (wal, order) = (wal.clone(), order.clone());
            std::thread::spawn(move || {
                (0..per)
                    .map(|_| {
                        let ticket = {
                            let mut next = order.lock();
                            *next += 1;
                            let t = wal.enqueue(&[(1, &next.to_le_bytes())]).unwrap();
                            assert_eq!(t.lsn(), Lsn(*next), "LSN order = caller order");
                            t
                        };
                        ticket.wait().unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut acked: Vec<Lsn> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    acked.sort();
    assert_eq!(acked, (1..=threads * per).map(Lsn).collect::<Vec<_>>());
    assert_eq!(wal.durable_lsn(), Lsn(threads * per));
    // A ticket dropped without waiting is still written.
    drop(wal.enqueue(&[(1, b"dropped")]).unwrap());
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).unwrap();
    let recs = replay_all(&wal);
    assert_eq!(recs.len() as u64, threads * per + 1);
    for (i, r) in recs.iter().take((threads * per) as usize).enumerate() {
        assert_eq!(r.payload, (i as u64 + 1).to_le_bytes());
    }
    assert_eq!(recs.last().unwrap().payload, b"dropped");
}

#[test]
fn interval_policy_acks_after_write_and_syncs_in_background() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(
        dir.path(),
        WalOptions::default().fsync(Fsync::Interval(Duration::from_millis(5))),
    )
    .unwrap();
    let lsn = wal.append(1, b"hello").unwrap();
    assert_eq!(wal.last_lsn(), lsn);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while wal.durable_lsn() < lsn {
        assert!(
            std::time::Instant::now() < deadline,
            "background fsync never ran"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    wal.close().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    assert_eq!(replay_all(&wal).len(), 1);
}

#[test]
fn second_open_of_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    let err = Wal::open(dir.path(), opts()).unwrap_err();
    assert!(matches!(err, quiver_storage::Error::Locked { .. }), "{err}");
    drop(wal);
    Wal::open(dir.path(), opts()).unwrap();
}

#[test]
fn oversized_payload_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let wal = Wal::open(dir.path(), opts()).unwrap();
    let big = vec![0u8; quiver_storage::wal::MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        wal.append(0, &big),
        Err(quiver_storage::Error::InvalidArgument(_))
    ));
    assert_eq!(wal.append(0, b"ok").unwrap(), Lsn(1));
}
