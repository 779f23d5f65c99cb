//! Fault injection over a whole collection: every byte of a collection (WAL,
//! manifest, segment files, config, and the SSD tier's postings, vectors,
//! meta and head graphs) goes through a `quiver_storage` backend, so the
//! fault-injecting backend reaches all of it.
//!
//! What it injects: a workload of upserts, deletes, searches, gets, two
//! checkpoints that merge the frozen memory segment into the SSD tier (the
//! first bulk-builds the SPANN index, the second inserts into it, with
//! postings small enough to split) and a flush runs on a
//! [`FaultyBackend`]. A clean run counts its I/O operations (reads
//! included); then, for each fault kind — ENOSPC, EIO, a short write (half
//! the buffer written, then ENOSPC) and a torn write (half written, then a
//! power cut: that operation and every later one fail) — the workload runs
//! again with the fault at operation index 0, 1, 2, … in turn (evenly
//! sampled down to [`RUNS_PER_FAULT`] indices when there are more, first
//! and last included). It prints how many runs there were.
//!
//! What it asserts, for every run:
//! - the workload never panics (caught by `catch_unwind` in the workload
//!   thread, and a panic hook counts panics on any other thread) and never
//!   hangs (each run has [`RUN_TIMEOUT`]); every call either completes or
//!   returns an error;
//! - reopened on the healthy file system, the collection opens, and every
//!   point is in a state the acknowledged operations allow: a point whose
//!   last write was acknowledged has exactly that vector and payload (or is
//!   absent, after an acknowledged delete); a point with failed
//!   (unacknowledged) writes since may show any of them, since a failed
//!   write's fate is unknown;
//! - exact searches (every posting probed, a wide beam) return only current
//!   points, each once, at the distance of its current vector, and the same
//!   ids as brute force over the reopened points.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Once};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use quiver::collection::{
    Collection, CollectionConfig, CollectionError, FsyncPolicy, Payload, Point, SearchRequest,
    SsdConfig, Value,
};
use quiver::distance::Metric;
use quiver::spann::{Encoding, SpannParams};
use quiver_storage::backend::default_backend;
use quiver_storage::{Fault, FaultyBackend};

/// Most fault indices tried per fault kind.
const RUNS_PER_FAULT: u64 = 64;
/// Longest a run (workload, reopen, checks) may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
const DIM: usize = 24;
const IDS: u64 = 260;
const FAULTS: [Fault; 4] = [
    Fault::NoSpace,
    Fault::Io,
    Fault::ShortWrite,
    Fault::TornWrite,
];

/// Panics seen by the hook, on any thread.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            prev(info);
        }));
    });
}

fn config() -> CollectionConfig {
    CollectionConfig {
        // No rotation by size: the checkpoints below freeze segments, so
        // every run does the same I/O in the same order.
        memory_tier_points: 10_000,
        fsync: FsyncPolicy::Always,
        ssd: Some(SsdConfig {
            spann: SpannParams {
                encoding: Encoding::Sq8,
                max_posting_pages: 1,
                ..SpannParams::default()
            },
            nprobe: 64,
        }),
        ..CollectionConfig::new(DIM, Metric::L2)
    }
}

fn payload(id: u64, version: u32) -> Payload {
    let mut p = Payload::new();
    p.insert("id".into(), Value::Int(id as i64));
    p.insert("v".into(), Value::Int(i64::from(version)));
    p
}

/// What a point may be after a reopen: the last acknowledged state, then
/// the states of failed writes after it. `None` is absent.
type State = Option<(Vec<f32>, Payload)>;

#[derive(Default)]
struct Model {
    states: BTreeMap<u64, Vec<State>>,
    acked: usize,
    failed: usize,
}

impl Model {
    fn record(&mut self, id: u64, state: State, acked: bool) {
        let s = self.states.entry(id).or_insert_with(|| vec![None]);
        if acked {
            *s = vec![state];
        } else {
            s.push(state);
        }
    }

    fn upsert(&mut self, col: &Collection, points: Vec<Point>) {
        let states: Vec<(u64, State)> = points
            .iter()
            .map(|p| {
                (
                    p.id,
                    Some((p.vector.clone(), p.payload.clone().unwrap_or_default())),
                )
            })
            .collect();
        let ok = col.upsert(points).is_ok();
        self.count(ok);
        for (id, s) in states {
            self.record(id, s, ok);
        }
    }

    fn delete(&mut self, col: &Collection, ids: &[u64]) {
        let ok = col.delete(ids).is_ok();
        self.count(ok);
        for &id in ids {
            self.record(id, None, ok);
        }
    }

    fn count(&mut self, ok: bool) {
        if ok {
            self.acked += 1;
        } else {
            self.failed += 1;
        }
    }
}

fn point(rng: &mut SmallRng, id: u64, version: u32) -> Point {
    Point {
        id,
        vector: (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        payload: Some(payload(id, version)),
    }
}

fn query(rng: &mut SmallRng) -> SearchRequest {
    SearchRequest {
        vector: (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect(),
        k: 10,
        ef: Some(1_000),
        nprobe: Some(100_000),
        with_payload: true,
        with_vector: true,
        ..Default::default()
    }
}

/// The workload; errors are recorded in the model, never unwrapped.
/// Returns the model, or `None` when the collection could not be created.
fn workload(dir: &Path, backend: &FaultyBackend) -> (Model, bool) {
    let mut m = Model::default();
    let mut rng = SmallRng::seed_from_u64(11);
    let col = match Collection::create_with(dir, config(), Arc::new(backend.clone())) {
        Ok(c) => c,
        Err(_) => return (m, false),
    };
    let mut version = 0u32;
    let mut batch = |rng: &mut SmallRng, m: &mut Model, ids: Vec<u64>| {
        version += 1;
        let pts = ids.into_iter().map(|id| point(rng, id, version)).collect();
        m.upsert(&col, pts);
    };
    let reads = |rng: &mut SmallRng| {
        for _ in 0..2 {
            let _ = col.search(&query(rng));
        }
        let ids: Vec<u64> = (0..IDS).step_by(17).collect();
        let _ = col.get(&ids, true, true);
    };
    for chunk in (0..160u64).collect::<Vec<_>>().chunks(40) {
        batch(&mut rng, &mut m, chunk.to_vec());
    }
    m.delete(&col, &(0..160).step_by(9).collect::<Vec<_>>());
    reads(&mut rng);
    // First merge: bulk-builds the SSD tier from the frozen segment.
    let _ = col.checkpoint_all();
    reads(&mut rng);
    // Replacements and deletes of points now in the SSD tier, new points.
    let ids: Vec<u64> = (0..60).map(|i| (i * 7) % 160).chain(160..220).collect();
    for chunk in ids.chunks(30) {
        batch(&mut rng, &mut m, chunk.to_vec());
    }
    m.delete(&col, &(1..160).step_by(13).collect::<Vec<_>>());
    // Second merge: inserts into the SPANN index (splitting postings).
    let _ = col.checkpoint_all();
    reads(&mut rng);
    batch(&mut rng, &mut m, (220..IDS).collect());
    m.delete(&col, &[5, 165, 221]);
    let _ = col.flush();
    let _ = col.close();
    (m, true)
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Reopens `dir` on the real file system and checks it against `m`;
/// returns the points in the SSD tier.
fn check(dir: &Path, m: &Model, created: bool, what: &str) -> usize {
    let col = match Collection::open(dir) {
        Ok(c) => c,
        Err(CollectionError::NotFound(_)) if !created => return 0,
        Err(e) => panic!("{what}: reopen failed: {e}"),
    };
    let ids: Vec<u64> = (0..IDS).collect();
    let got = col
        .get(&ids, true, true)
        .unwrap_or_else(|e| panic!("{what}: get after reopen failed: {e}"));
    let mut current: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    for (&id, rec) in ids.iter().zip(&got) {
        let allowed = m.states.get(&id).map_or(&[None][..], |s| &s[..]);
        let state: State = rec.as_ref().map(|r| {
            let v = r
                .vector
                .clone()
                .unwrap_or_else(|| panic!("{what}: point {id} without vector"));
            (v, r.payload.clone().unwrap_or_default())
        });
        assert!(
            allowed.contains(&state),
            "{what}: point {id} is {:?}, allowed {} states (first: {:?})",
            state.as_ref().map(|s| &s.1),
            allowed.len(),
            allowed[0].as_ref().map(|s| &s.1)
        );
        if let Some((v, _)) = state {
            current.insert(id, v);
        }
    }
    assert_eq!(col.count(), current.len(), "{what}: count");
    let mut rng = SmallRng::seed_from_u64(99);
    for _ in 0..4 {
        let req = query(&mut rng);
        let hits = col
            .search(&req)
            .unwrap_or_else(|e| panic!("{what}: search failed: {e}"));
        let mut seen = std::collections::HashSet::new();
        for h in &hits {
            let v = current
                .get(&h.id)
                .unwrap_or_else(|| panic!("{what}: search returned {} (not current)", h.id));
            assert!(seen.insert(h.id), "{what}: {} returned twice", h.id);
            let d = l2(&req.vector, v);
            assert!(
                (h.distance - d).abs() <= 1e-3 * d.max(1.0),
                "{what}: {} at distance {}, its current vector is at {d}",
                h.id,
                h.distance
            );
        }
        let mut brute: Vec<(f32, u64)> = current
            .iter()
            .map(|(&id, v)| (l2(&req.vector, v), id))
            .collect();
        brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = brute.iter().take(req.k).map(|b| b.1).collect();
        let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got, want, "{what}: search differs from brute force");
    }
    let ssd_points = col.stats().ssd_points;
    col.close()
        .unwrap_or_else(|e| panic!("{what}: close after reopen: {e}"));
    ssd_points
}

/// One run with `fault` at operation `nth` (`None`: no fault); returns the
/// operations it performed and whether a fault was injected.
fn run(fault: Option<(Fault, u64)>) -> (u64, u64) {
    let what = match fault {
        Some((f, n)) => format!("{f:?} at op {n}"),
        None => "clean run".to_string(),
    };
    let (tx, rx) = mpsc::channel();
    let label = what.clone();
    std::thread::Builder::new()
        .name(format!("faults {what}"))
        .spawn(move || {
            let res = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let dir = tempfile::tempdir().unwrap();
                let fb = FaultyBackend::new(default_backend());
                if let Some((f, n)) = fault {
                    fb.fail_nth(None, n, f);
                }
                let (model, created) = workload(dir.path(), &fb);
                let (ops, injected) = (fb.ops(), fb.injected());
                let ssd_points = check(dir.path(), &model, created, &label);
                if fault.is_none() {
                    // The clean run exercises what the faults are aimed at.
                    assert!(created && model.failed == 0, "clean run: a call failed");
                    assert!(model.acked > 10, "clean run: {} writes", model.acked);
                    assert!(ssd_points > 100, "clean run: {ssd_points} SSD points");
                }
                (ops, injected)
            }));
            let _ = tx.send(res.map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            }));
        })
        .unwrap();
    match rx.recv_timeout(RUN_TIMEOUT) {
        Ok(Ok(r)) => r,
        Ok(Err(msg)) => panic!("{what}: panicked: {msg}"),
        Err(_) => panic!("{what}: hung for {RUN_TIMEOUT:?}"),
    }
}

#[test]
fn faults_at_every_io_operation_lose_no_acknowledged_write() {
    count_panics();
    let started = Instant::now();
    let panics = PANICS.load(Ordering::SeqCst);
    let (ops, _) = run(None);
    assert!(ops > 100, "a clean run performs {ops} I/O operations");
    let step = ops.div_ceil(RUNS_PER_FAULT).max(1);
    let mut runs = 0u64;
    for fault in FAULTS {
        let mut nth = 0;
        while nth < ops {
            run(Some((fault, nth)));
            runs += 1;
            nth = if nth + step >= ops && nth != ops - 1 {
                ops - 1
            } else {
                nth + step
            };
        }
    }
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        panics,
        "a thread panicked during the fault runs (see the output above)"
    );
    eprintln!(
        "collection fault injection: {ops} I/O operations in a clean run, {runs} fault runs \
         ({} fault kinds, every {step}th operation), {:.1} s",
        FAULTS.len(),
        started.elapsed().as_secs_f64()
    );
}
