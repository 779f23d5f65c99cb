//! Crash recovery of a collection: a child process writes with
//! `fsync = always` and is killed with SIGKILL at random moments (including
//! during background checkpoints and merges into the SSD tier, and while
//! acknowledged points wait in the unindexed buffer for the background
//! graph build); every reopen must show exactly the acknowledged operations
//! (plus, possibly, the one in flight).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use quiver::collection::workload::{self, WorkOp, ID_SPACE};
use quiver::collection::{Collection, Value};

use crate::common::quiver_bin;

const DIM: usize = 8;

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let (_, ssd_points, _) = kill_rounds(&[], false);
    // Frozen segments were merged into the SSD tier, so kills landed
    // around merges too.
    assert!(ssd_points > 0, "nothing ever reached the SSD tier");
}

/// Writes outrun the graph build (no fsync, a big efConstruction, a large
/// buffer), so kills land while acknowledged points are only in the WAL
/// and the unindexed buffer, and while the indexer is linking them; after
/// every reopen each live point is found by a search for its own vector.
#[test]
fn kill_9_during_background_graph_builds_loses_no_acknowledged_point() {
    let args = [
        "--tier",
        "2000",
        "--index-buffer-points",
        "5000",
        "--ef-construction",
        "400",
        "--no-fsync",
    ];
    let (_, _, buffered_kills) = kill_rounds(&args, true);
    assert!(
        buffered_kills > 0,
        "no kill landed while points waited for the graph"
    );
}

/// Runs the kill-and-reopen rounds with the crash writer's `extra` flags;
/// returns the acknowledged ops, the most points seen in the SSD tier and
/// how many kills came while the writer reported buffered points.
fn kill_rounds(extra: &[&str], search_each_point: bool) -> (u64, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut buffered_kills = 0;
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut acked: u64 = 0; // ops 0..acked are acknowledged
    let mut ssd_points = 0; // most points seen in the SSD tier after a reopen
    let rounds = if std::env::var_os("CI").is_some() {
        30
    } else {
        12
    };
    for round in 0..rounds {
        let mut child = Command::new(quiver_bin())
            .args([
                "crash-writer",
                "--log",
                "warn",
                "--dim",
                &DIM.to_string(),
                "--start",
                &acked.to_string(),
                "--dir",
            ])
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // "ack N unindexed U"
                let words: Vec<&str> = line.split_whitespace().collect();
                if let ["ack", n, "unindexed", u] = words[..] {
                    let _ = tx.send((n.parse::<u64>().unwrap(), u.parse::<u64>().unwrap()));
                }
            }
        });
        let wait = Duration::from_millis(rng.gen_range(50..600));
        let start = Instant::now();
        let mut unindexed = 0;
        while start.elapsed() < wait {
            while let Ok((n, u)) = rx.try_recv() {
                acked = acked.max(n + 1);
                unindexed = u;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        while let Ok((n, u)) = rx.try_recv() {
            acked = acked.max(n + 1);
            unindexed = u;
        }
        buffered_kills += usize::from(unindexed > 0);

        let col = Collection::open(dir.path())
            .unwrap_or_else(|e| panic!("seed={seed} round={round}: reopen failed: {e}"));
        let ids: Vec<u64> = (0..ID_SPACE).collect();
        let got: Vec<Option<u64>> = col
            .get(&ids, true, true)
            .unwrap()
            .into_iter()
            .map(|r| {
                r.map(|r| {
                    let op = match r.payload.as_ref().and_then(|p| p.get("op")) {
                        Some(Value::Int(op)) => *op as u64,
                        other => panic!("seed={seed}: bad payload {other:?}"),
                    };
                    // The stored vector is the one that op wrote.
                    let WorkOp::Upsert(points) = workload::op(op, DIM) else {
                        panic!("seed={seed}: op {op} is a delete")
                    };
                    let p = points
                        .iter()
                        .rev()
                        .find(|p| p.id == r.id)
                        .expect("op wrote this id");
                    assert_eq!(
                        r.vector.as_deref(),
                        Some(&p.vector[..]),
                        "seed={seed}: point {} damaged",
                        r.id
                    );
                    op
                })
            })
            .collect();
        let matches = |n: u64| {
            let m = workload::model(n, DIM);
            ids.iter().zip(&got).all(|(id, g)| m.get(id).copied() == *g)
        };
        // The op in flight when killed may have become durable without its ack.
        assert!(
            matches(acked) || matches(acked + 1),
            "seed={seed} round={round}: state after reopen is neither {acked} nor {} ops",
            acked + 1
        );
        if matches(acked + 1) && !matches(acked) {
            acked += 1;
        }
        // The payload index on `op` (rebuilt from the tiers' payloads and
        // the WAL) counts what the model holds.
        let model = workload::model(acked, DIM);
        for _ in 0..3 {
            let t = rng.gen_range(0..acked.max(1));
            let f = quiver::filter::json::parse(
                &format!(r#"{{"must": [{{"range": {{"key": "op", "gte": {t}}}}}]}}"#),
                "filter",
            )
            .unwrap();
            let want = model.values().filter(|&&op| op >= t).count();
            assert_eq!(
                col.count_matching(&f).unwrap(),
                want,
                "seed={seed} round={round}: filtered count of op >= {t}"
            );
        }
        if search_each_point {
            // Replayed points are searchable at once (the buffer's exact
            // scan), linked or not; the beam covers the whole id space.
            for (&id, &op) in &model {
                let WorkOp::Upsert(points) = workload::op(op, DIM) else {
                    unreachable!("the model holds upserts")
                };
                let p = points.iter().rev().find(|p| p.id == id).unwrap();
                let hits = col
                    .search(&quiver::collection::SearchRequest {
                        vector: p.vector.clone(),
                        k: 3,
                        ef: Some(ID_SPACE as usize * 2),
                        ..Default::default()
                    })
                    .unwrap();
                assert!(
                    hits.iter().any(|h| h.id == id && h.distance <= 1e-6),
                    "seed={seed} round={round}: point {id} not found by its vector"
                );
            }
        }
        ssd_points = ssd_points.max(col.stats().ssd_points);
        col.close().unwrap();
        drop(col);
    }
    assert!(
        acked > 0,
        "seed={seed}: the writer never acknowledged anything"
    );
    (acked, ssd_points, buffered_kills)
}
