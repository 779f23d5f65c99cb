use crate::common::*;
use quiver_storage::backend::default_backend;
use quiver_storage::wal::Record;
use quiver_storage::{Error, Fault, FaultyBackend, Fsync, Lsn, Op, Recovery, Wal, WalOptions};
use std::collections::BTreeMap;
use std::sync::Arc;

const FAULTS: [Fault; 3] = [Fault::NoSpace, Fault::Io, Fault::ShortWrite];

fn faulty_opts(fb: &FaultyBackend) -> WalOptions {
    WalOptions::default()
        .fsync(Fsync::Always)
        .backend(Arc::new(fb.clone()))
}

#[test]
fn failed_write_is_reported_and_the_log_continues() {
    for fault in FAULTS {
        let dir = tempfile::tempdir().unwrap();
        let fb = FaultyBackend::new(default_backend());
        let wal = Wal::open(dir.path(), faulty_opts(&fb)).unwrap();
        for i in 0..5 {
            wal.append(i as u8, &payload(i)).unwrap();
        }
        fb.fail_nth(Some(Op::Append), 0, fault);
        let err = wal.append(5, &payload(5)).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{fault:?}: {err}");
        // The failed batch was cut off; the writer is healthy. LSN 6 is spent.
        assert_eq!(wal.append(6, &payload(6)).unwrap(), Lsn(7));
        drop(wal);
        let wal = Wal::open(dir.path(), opts()).unwrap();
        let lsns: Vec<u64> = replay_all(&wal).iter().map(|r| r.lsn.0).collect();
        assert_eq!(lsns, [1, 2, 3, 4, 5, 7], "{fault:?}");
        assert!(
            wal.open_report().torn_tail.is_none(),
            "{fault:?}: the failed batch must not be left behind"
        );
    }
}

#[test]
fn failed_fsync_poisons_the_writer_and_reopen_reads_cleanly() {
    for fault in [Fault::NoSpace, Fault::Io] {
        let dir = tempfile::tempdir().unwrap();
        let fb = FaultyBackend::new(default_backend());
        let wal = Wal::open(dir.path(), faulty_opts(&fb)).unwrap();
        for i in 0..5 {
            wal.append(i as u8, &payload(i)).unwrap();
        }
        fb.fail_nth(Some(Op::Sync), 0, fault);
        assert!(matches!(wal.append(5, &payload(5)), Err(Error::Io { .. })));
        assert!(matches!(
            wal.append(6, &payload(6)),
            Err(Error::Poisoned { .. })
        ));
        assert!(matches!(wal.sync(), Err(Error::Poisoned { .. })));
        drop(wal);
        let wal = Wal::open(dir.path(), opts()).unwrap();
        check_prefix(&replay_all(&wal), 5);
        assert_eq!(wal.append(0, b"x").unwrap(), Lsn(6));
    }
}

#[test]
fn failed_truncation_after_short_write_poisons_and_reopen_cuts_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new(default_backend());
    let wal = Wal::open(dir.path(), faulty_opts(&fb)).unwrap();
    for i in 0..5 {
        wal.append(i as u8, &payload(i)).unwrap();
    }
    fb.fail_nth(Some(Op::Append), 0, Fault::ShortWrite);
    fb.fail_nth(Some(Op::SetLen), 0, Fault::Io);
    assert!(wal.append(5, &payload(5)).is_err());
    assert!(matches!(
        wal.append(6, &payload(6)),
        Err(Error::Poisoned { .. })
    ));
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).unwrap();
    check_prefix(&replay_all(&wal), 5);
    assert!(wal.open_report().torn_tail.is_some());
}

#[test]
fn failed_rotation_is_reported_and_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let fb = FaultyBackend::new(default_backend());
    let wal = Wal::open(dir.path(), faulty_opts(&fb).segment_size(256)).unwrap();
    let mut acked = Vec::new();
    for i in 0..40 {
        if i == 20 {
            fb.fail_nth(Some(Op::Create), 0, Fault::NoSpace);
            fb.fail_nth(Some(Op::SyncDir), 1, Fault::Io);
        }
        if let Ok(lsn) = wal.append(i as u8, &payload(i)) {
            acked.push((lsn, i));
        }
    }
    assert!(
        acked.len() >= 37 && acked.len() < 40,
        "acked={}",
        acked.len()
    );
    drop(wal);
    let wal = Wal::open(dir.path(), opts()).unwrap();
    let recs = replay_all(&wal);
    assert_eq!(
        recs.iter().map(|r| r.lsn).collect::<Vec<_>>(),
        acked.iter().map(|a| a.0).collect::<Vec<_>>()
    );
}

/// One fault at every operation in turn, of every kind, while appending through rotations:
/// every acknowledged record survives intact, failed ones are absent, the log always reopens.
#[test]
fn fault_at_every_operation_leaves_a_readable_log() {
    let mut sweeps = 0;
    for fault in FAULTS {
        for nth in 0.. {
            let dir = tempfile::tempdir().unwrap();
            let fb = FaultyBackend::new(default_backend());
            fb.fail_nth(None, nth, fault);
            let mut acked: BTreeMap<Lsn, u64> = BTreeMap::new();
            if let Ok(wal) = Wal::open(dir.path(), faulty_opts(&fb).segment_size(300)) {
                for i in 0..30u64 {
                    match wal.append_batch(&[(i as u8, &payload(i))]) {
                        Ok(lsn) => {
                            acked.insert(lsn, i);
                        }
                        Err(Error::Poisoned { .. }) => break,
                        Err(_) => {}
                    }
                }
            }
            let injected = fb.injected();
            let wal = Wal::open(dir.path(), opts().recovery(Recovery::TolerateTornTail))
                .unwrap_or_else(|e| panic!("{fault:?} at op {nth}: reopen failed: {e}"));
            let recs: Vec<Record> = replay_all(&wal);
            for r in &recs {
                let i = *acked
                    .get(&r.lsn)
                    .unwrap_or_else(|| panic!("{fault:?} at op {nth}: unacknowledged {}", r.lsn));
                assert_eq!(
                    (r.kind, &r.payload),
                    (i as u8, &payload(i)),
                    "{fault:?} at op {nth}"
                );
            }
            assert_eq!(
                recs.len(),
                acked.len(),
                "{fault:?} at op {nth}: acknowledged records lost"
            );
            sweeps += 1;
            if injected == 0 {
                break; // the workload finished before op `nth`: every op has been tried
            }
        }
    }
    eprintln!("fault sweep: {sweeps} runs");
    assert!(sweeps > 100, "sweeps={sweeps}");
}
