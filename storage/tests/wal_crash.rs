//! The crash test: a child process appends with `Fsync::Always` and reports every
//! acknowledged LSN; the parent SIGKILLs it at random moments and checks the log.

use quiver_storage::{Lsn, Wal, WalOptions};
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Must match `payload` in `src/bin/wal-crash-child.rs`.
fn payload(thread: u64, seq: u64) -> Vec<u8> {
    let len = 16 + ((thread * 7919 + seq * 104_729) % 700) as usize;
    let mut p = Vec::with_capacity(len);
    p.extend_from_slice(&thread.to_le_bytes());
    p.extend_from_slice(&seq.to_le_bytes());
    let mut x = thread.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seq;
    while p.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p.push(x as u8);
    }
    p
}

fn rounds() -> usize {
    std::env::var("QUIVER_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
}

#[test]
fn sigkill_during_appends_loses_no_acknowledged_record() {
    let seed: u64 = std::env::var("QUIVER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // (lsn) -> (thread, seq) over all rounds: the same log is reopened every round.
    let mut acked: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut total_replayed = 0;
    for round in 0..rounds() {
        let threads = rng.gen_range(1..=8u64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_wal-crash-child"))
            .arg(dir.path())
            .arg(threads.to_string())
            .arg((16u64 << 10).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wal-crash-child");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "seed={seed} round={round}");
        let delay = Duration::from_micros(rng.gen_range(0..60_000));
        let reader =
            std::thread::spawn(move || out.lines().map(|l| l.unwrap()).collect::<Vec<String>>());
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for l in &lines {
            let mut it = l.split(' ').map(|x| x.parse::<u64>().unwrap());
            let (lsn, t, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
            assert!(
                acked.insert(lsn, (t, s)).is_none(),
                "seed={seed} round={round}: lsn {lsn} acknowledged twice"
            );
        }

        let wal = Wal::open(dir.path(), WalOptions::default())
            .unwrap_or_else(|e| panic!("seed={seed} round={round}: reopen failed: {e}"));
        let mut present = 0;
        total_replayed = 0;
        for rec in wal.replay(Lsn(0)).unwrap() {
            let rec = rec.unwrap_or_else(|e| panic!("seed={seed} round={round}: {e}"));
            total_replayed += 1;
            // Whatever is in the log is whole: its payload is the one its (thread, seq) header names.
            assert!(
                rec.payload.len() >= 16,
                "seed={seed} round={round}: {} truncated",
                rec.lsn
            );
            let t = u64::from_le_bytes(rec.payload[0..8].try_into().unwrap());
            let s = u64::from_le_bytes(rec.payload[8..16].try_into().unwrap());
            assert_eq!(rec.kind as u64, t, "seed={seed} round={round} {}", rec.lsn);
            assert!(
                rec.payload == payload(t, s),
                "seed={seed} round={round}: {} payload damaged",
                rec.lsn
            );
            if let Some(&(at, as_)) = acked.get(&rec.lsn.0) {
                assert_eq!(
                    (at, as_),
                    (t, s),
                    "seed={seed} round={round}: {} holds the wrong record",
                    rec.lsn
                );
                present += 1;
            }
        }
        assert_eq!(
            present,
            acked.len(),
            "seed={seed} round={round}: acknowledged records missing"
        );
        drop(wal);
    }
    assert!(
        acked.len() > 30,
        "seed={seed}: only {} records acknowledged in all rounds",
        acked.len()
    );
    eprintln!(
        "crash test: seed={seed} rounds={} acknowledged={} replayed={} in {:?}",
        rounds(),
        acked.len(),
        total_replayed,
        started.elapsed()
    );
}
