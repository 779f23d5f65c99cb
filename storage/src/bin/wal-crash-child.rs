//! Test helper for the crash test: appends records to the WAL in `argv[1]` with
//! `Fsync::Always` from several threads and prints each acknowledged LSN with a
//! digest of its payload, one per line, until killed.
//!
//! Payloads are derived from the LSN-independent pair (thread, sequence) so the
//! parent can check every acknowledged record byte for byte.

use quiver_storage::{Fsync, Wal, WalOptions};
use std::io::Write;
use std::sync::Arc;

/// The payload the child writes for `(thread, seq)`; the parent recomputes it.
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

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: wal-crash-child DIR [THREADS] [SEGMENT_SIZE]");
    let threads: u64 = args.next().map_or(4, |s| s.parse().expect("threads"));
    let segment: u64 = args
        .next()
        .map_or(64 << 10, |s| s.parse().expect("segment size"));
    let wal = Arc::new(
        Wal::open(
            &dir,
            WalOptions::default()
                .fsync(Fsync::Always)
                .segment_size(segment),
        )
        .expect("open"),
    );
    let out = Arc::new(std::sync::Mutex::new(std::io::stdout()));
    println!("ready");
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let wal = wal.clone();
            let out = out.clone();
            std::thread::spawn(move || {
                for seq in 0.. {
                    let lsn = wal.append(t as u8, &payload(t, seq)).expect("append");
                    let mut o = out.lock().unwrap();
                    writeln!(o, "{} {t} {seq}", lsn.0).unwrap();
                    o.flush().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}
