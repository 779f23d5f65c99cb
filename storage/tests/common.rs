use quiver_storage::wal::Record;
use quiver_storage::{Fsync, Lsn, Recovery, Wal, WalOptions};
use std::path::{Path, PathBuf};

pub fn opts() -> WalOptions {
    WalOptions::default().fsync(Fsync::Never)
}

pub fn payload(i: u64) -> Vec<u8> {
    (0..(i % 53 + 1)).map(|j| (i * 31 + j) as u8).collect()
}

pub fn replay_all(wal: &Wal) -> Vec<Record> {
    wal.replay(Lsn(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// Writes `n` records with payload `payload(i)` (kind = i % 256) and returns their LSNs.
pub fn write_records(dir: &Path, n: u64, opts: WalOptions) -> Vec<Lsn> {
    let wal = Wal::open(dir, opts).unwrap();
    let lsns = (0..n)
        .map(|i| wal.append(i as u8, &payload(i)).unwrap())
        .collect();
    wal.close().unwrap();
    lsns
}

pub fn check_prefix(records: &[Record], n: usize) {
    assert_eq!(records.len(), n, "expected exactly {n} records");
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.lsn, Lsn(i as u64 + 1));
        assert_eq!(r.kind, i as u8);
        assert_eq!(r.payload, payload(i as u64), "record {i}");
    }
}

pub fn reopen(dir: &Path, recovery: Recovery) -> quiver_storage::Result<Wal> {
    Wal::open(dir, opts().recovery(recovery))
}
