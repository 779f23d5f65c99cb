//! SPANN under concurrency and crashes: inserts, deletes, compactions and
//! checkpoints racing exhaustive searches checked against a model;
//! generations reopened exactly after later updates, garbage in every page
//! they do not reference, and uncommitted newer generations; bounded space
//! under insert/delete/compact cycles; an index grown from empty.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use quiver::dataset::{self, VectorSet};
use quiver::distance::Metric;
use quiver::spann::generation::{heads_path, meta_path};
use quiver::spann::meta::Meta;
use quiver::spann::posting::PAGE;
use quiver::spann::{Encoding, OpenParams, SearchParams, Spann, SpannError, SpannParams};

use crate::common::{minilm, spann_recall};

fn params(pages: u32) -> SpannParams {
    SpannParams {
        head_ratio: 0.05,
        max_posting_pages: pages,
        min_posting_len: 6,
        ..SpannParams::default()
    }
}

/// Probes every posting and keeps every entry: exact.
fn exhaustive(k: usize) -> SearchParams {
    SearchParams {
        nprobe: usize::MAX,
        max_dist_ratio: None,
        head_ef: 16,
        rerank: k,
    }
}

fn opts() -> OpenParams {
    OpenParams {
        io_threads: 4,
        ..OpenParams::default()
    }
}

/// What the concurrent test knows: vectors whose insert returned, ids whose
/// delete began and ids whose delete returned.
#[derive(Default)]
struct Model {
    vectors: HashMap<u32, Vec<f32>>,
    deleting: HashSet<u32>,
    deleted: HashSet<u32>,
}

/// Decrements a counter when dropped (also while unwinding from a panic).
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn searches_racing_updates_see_exactly_the_completed_ones() {
    let dim = 16;
    let data = dataset::synthetic::clustered(3600, dim, 41);
    let dir = tempfile::tempdir().unwrap();
    let index = Spann::create(dir.path(), dim, Metric::L2, params(1), opts()).unwrap();
    let model = Mutex::new(Model::default());
    let writers_left = AtomicUsize::new(2);
    let searches = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let kernel = Metric::L2.kernel();
    std::thread::scope(|s| {
        for w in 0..2usize {
            let (index, model, data, writers_left) = (&index, &model, &data, &writers_left);
            s.spawn(move || {
                // Counts this writer out even if it panics, so the threads
                // waiting on `writers_left` end and the panic is reported.
                let _leave = Leave(writers_left);
                let rows: Vec<usize> = (w..data.len()).step_by(2).collect();
                for (b, chunk) in rows.chunks(60).enumerate() {
                    let mut flat = Vec::with_capacity(chunk.len() * dim);
                    for &r in chunk {
                        flat.extend_from_slice(data.row(r));
                    }
                    let ids = index.insert_batch(&flat).unwrap();
                    let mut m = model.lock().unwrap();
                    for (&id, &r) in ids.iter().zip(chunk) {
                        m.vectors.insert(id, data.row(r).to_vec());
                    }
                    // Delete a few vectors inserted earlier.
                    let victims: Vec<u32> = m
                        .vectors
                        .keys()
                        .copied()
                        .filter(|id| {
                            (id * 7 + b as u32).is_multiple_of(23) && !m.deleting.contains(id)
                        })
                        .take(4)
                        .collect();
                    m.deleting.extend(&victims);
                    drop(m);
                    for id in victims {
                        assert!(index.delete(id).unwrap());
                        model.lock().unwrap().deleted.insert(id);
                    }
                }
            });
        }
        // Compactions and checkpoints race the writers too.
        {
            let (index, stop) = (&index, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    index.compact().unwrap();
                    let g = index.checkpoint().unwrap();
                    index.release_before(g).unwrap();
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        }
        for t in 0..2u32 {
            let (index, model, data, searches, writers_left, kernel) =
                (&index, &model, &data, &searches, &writers_left, &kernel);
            s.spawn(move || {
                let mut q = t as usize;
                while writers_left.load(Ordering::SeqCst) > 0 {
                    q = (q * 31 + 17) % data.len();
                    let query = data.row(q);
                    let (before, gone_before): (HashSet<u32>, HashSet<u32>) = {
                        let m = model.lock().unwrap();
                        (m.vectors.keys().copied().collect(), m.deleted.clone())
                    };
                    let (hits, _) = index.search(query, 1 << 20, &exhaustive(1 << 20)).unwrap();
                    let m = model.lock().unwrap();
                    let got: HashSet<u32> = hits.iter().map(|h| h.id).collect();
                    assert_eq!(got.len(), hits.len(), "an id returned twice");
                    for h in &hits {
                        assert!(!gone_before.contains(&h.id), "deleted id {} returned", h.id);
                        if let Some(v) = m.vectors.get(&h.id) {
                            let d = kernel.distance(query, v);
                            assert!((d - h.distance).abs() <= 1e-4 * d.max(1.0), "{h:?} vs {d}");
                        }
                    }
                    for id in before.iter().filter(|id| !m.deleting.contains(id)) {
                        if !got.contains(id) {
                            let again = index.search(query, 1 << 20, &exhaustive(1 << 20));
                            let now = again.map(|r| r.0.iter().any(|h| h.id == *id));
                            let copies = index.replica_counts().map(|c| c[*id as usize]);
                            panic!(
                                "id {id} inserted before the search is missing (a search \
                                 now finds it: {now:?}; live copies now: {copies:?}; {:?})",
                                index.update_stats()
                            );
                        }
                    }
                    searches.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        while writers_left.load(Ordering::SeqCst) > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
    });
    let st = index.update_stats();
    eprintln!(
        "{} searches raced {st:?}; {} heads",
        searches.load(Ordering::SeqCst),
        index.heads()
    );
    assert!(searches.load(Ordering::SeqCst) >= 5);
    assert!(st.splits >= 10, "{st:?}");
    assert_eq!(st.inserted as usize, data.len());

    // Quiescent: exactly the model, every live vector still placed, and the
    // same after a checkpoint and reopen.
    let m = model.into_inner().unwrap();
    let live: HashSet<u32> = m
        .vectors
        .keys()
        .copied()
        .filter(|id| !m.deleted.contains(id))
        .collect();
    let check = |index: &Spann| {
        let hits = index
            .search(data.row(0), 1 << 20, &exhaustive(1 << 20))
            .unwrap()
            .0;
        let got: HashSet<u32> = hits.iter().map(|h| h.id).collect();
        assert_eq!(got, live);
        let counts = index.replica_counts().unwrap();
        assert!(live.iter().all(|&id| counts[id as usize] > 0));
    };
    check(&index);
    let g = index.checkpoint().unwrap();
    drop(index);
    let index = Spann::open(dir.path(), opts()).unwrap();
    assert_eq!(index.generation(), g);
    check(&index);
}

#[test]
fn parallel_batches_into_an_empty_index_are_all_found() {
    let dim = 12;
    let data = dataset::synthetic::clustered(2400, dim, 8);
    let dir = tempfile::tempdir().unwrap();
    let index = Spann::create(dir.path(), dim, Metric::Cosine, params(1), opts()).unwrap();
    assert!(index.is_empty() && index.heads() == 0);
    let sp = exhaustive(10);
    assert!(index.search(data.row(0), 10, &sp).unwrap().0.is_empty());
    let ids: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                let (index, data) = (&index, &data);
                s.spawn(move || {
                    let mut ids = Vec::new();
                    for chunk in data.data[t * 800 * dim..(t + 1) * 800 * dim].chunks(100 * dim) {
                        ids.extend(index.insert_batch(chunk).unwrap());
                    }
                    ids
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(index.heads() > 10, "splits grew the head set");
    for (t, ids) in ids.iter().enumerate() {
        for (j, &id) in ids.iter().enumerate() {
            let hit = index.search(data.row(t * 800 + j), 1, &sp).unwrap().0;
            assert!(
                hit[0].distance <= 1e-5,
                "row {} (id {id}): {hit:?}",
                t * 800 + j
            );
        }
    }
    let counts = index.replica_counts().unwrap();
    assert!(counts.iter().all(|&c| c > 0));
}

/// Everything observable about an index's contents.
#[derive(Debug, PartialEq)]
struct State {
    len: usize,
    live: Vec<bool>,
    results: Vec<Vec<(u32, u32)>>,
    copies: Vec<u16>,
}

fn state(index: &Spann, queries: &VectorSet) -> State {
    let sp = exhaustive(50);
    State {
        len: index.len(),
        live: (0..index.len() as u32).map(|i| index.contains(i)).collect(),
        results: queries
            .rows()
            .map(|q| {
                index
                    .search(q, 50, &sp)
                    .unwrap_or_else(|e| panic!("{e}"))
                    .0
                    .iter()
                    .map(|h| (h.id, h.distance.to_bits()))
                    .collect()
            })
            .collect(),
        copies: index.replica_counts().unwrap(),
    }
}

/// Updates that split postings, relocate them and drop heads.
fn churn(index: &Spann, rows: &VectorSet, seed: u32) {
    for chunk in rows.data.chunks(150 * rows.dim) {
        index.insert_batch(chunk).unwrap();
    }
    // Thin out the older ids (so compaction finds small postings to merge).
    let n = index.len() as u32;
    for id in (0..n.saturating_sub(300)).filter(|i| (i * 7 + seed) % 5 < 3) {
        index.delete(id).unwrap();
    }
    index.compact().unwrap();
}

/// Overwrites every byte of `postings.dat` that none of the generations
/// `gens` references (free pages, the tail of each extent past its
/// posting, pages past the end) with garbage.
fn garble_unreferenced(dir: &Path, gens: &[u64]) {
    let path = dir.join("postings.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    let mut keep = vec![false; bytes.len()];
    keep[..PAGE].iter_mut().for_each(|k| *k = true);
    for &g in gens {
        let meta = Meta::load(&quiver_storage::FsBackend, &meta_path(dir, g)).unwrap();
        for s in &meta.postings {
            let start = (s.first_page as usize) * PAGE;
            keep[start..start + s.bytes as usize]
                .iter_mut()
                .for_each(|k| *k = true);
        }
    }
    let mut garbled = 0;
    for (b, k) in bytes.iter_mut().zip(&keep) {
        if !k {
            *b = 0xA7;
            garbled += 1;
        }
    }
    assert!(garbled > 0);
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn generations_reopen_exactly_after_later_updates_and_uncommitted_checkpoints() {
    let dim = 16;
    let mut all = dataset::synthetic::clustered(5000 + 12, dim, 17);
    let queries = all.split_off(5000);
    let mut rest = all.clone();
    let base = VectorSet {
        dim,
        data: rest.data.drain(..1500 * dim).collect(),
    };
    let chunk = |i: usize| VectorSet {
        dim,
        data: rest.data[i * 580 * dim..(i + 1) * 580 * dim].to_vec(),
    };
    let dir = tempfile::tempdir().unwrap();
    let index = Spann::build(
        dir.path(),
        base,
        Metric::L2,
        SpannParams {
            min_posting_len: 16,
            ..params(1)
        },
        opts(),
        false,
    )
    .unwrap();
    assert_eq!(index.generation(), 1);

    churn(&index, &chunk(0), 1);
    let g2 = index.checkpoint().unwrap();
    index.release_before(g2).unwrap();
    assert!(!meta_path(dir.path(), 1).exists() && !heads_path(dir.path(), 1).exists());
    let s2 = state(&index, &queries);

    churn(&index, &chunk(1), 2); // reuses pages freed before g2
    let g3 = index.checkpoint().unwrap();
    let s3 = state(&index, &queries);
    assert_ne!(s2, s3);
    churn(&index, &chunk(2), 3);
    let st = index.update_stats();
    assert!(st.splits > 0 && st.merges > 0 && st.rewrites > 0, "{st:?}");
    drop(index); // a crash: nothing after g3 was checkpointed

    // g2 is still on disk (never released): keep what it references too.
    garble_unreferenced(dir.path(), &[g2, g3]);
    let index = Spann::open(dir.path(), opts()).unwrap();
    assert_eq!(index.generation(), g3);
    assert_eq!(state(&index, &queries), s3);

    // A newer generation written but never committed by the owner.
    churn(&index, &chunk(3), 4);
    let g4 = index.checkpoint().unwrap();
    churn(&index, &chunk(4), 5);
    drop(index);
    let index = Spann::open_generation(dir.path(), g3, opts()).unwrap();
    assert!(
        !meta_path(dir.path(), g4).exists(),
        "uncommitted generation removed"
    );
    assert_eq!(state(&index, &queries), s3);
    churn(&index, &chunk(5), 6);
    drop(index);

    // g2 was never released either: it is intact too.
    garble_unreferenced(dir.path(), &[g2]);
    let index = Spann::open_generation(dir.path(), g2, opts()).unwrap();
    assert_eq!(state(&index, &queries), s2);
    assert!(!meta_path(dir.path(), g3).exists());
    assert!(matches!(
        index.release_before(g2 + 1),
        Err(SpannError::InvalidParam { .. })
    ));
}

#[test]
fn insert_delete_compact_cycles_keep_the_file_bounded() {
    let dim = 16;
    let data = dataset::synthetic::clustered(9000, dim, 23);
    let dir = tempfile::tempdir().unwrap();
    let first = VectorSet {
        dim,
        data: data.data[..1500 * dim].to_vec(),
    };
    let index = Spann::build(dir.path(), first, Metric::L2, params(2), opts(), false).unwrap();
    let mut live: Vec<u32> = (0..1500).collect();
    let mut sizes = Vec::new();
    for cycle in 0..10 {
        let rows = &data.data[(1500 + cycle * 750) * dim..(1500 + (cycle + 1) * 750) * dim];
        live.extend(index.insert_batch(rows).unwrap());
        // Delete the oldest 750: the live set stays at 1500 vectors.
        for id in live.drain(..750) {
            index.delete(id).unwrap();
        }
        index.compact().unwrap();
        let g = index.checkpoint().unwrap();
        index.release_before(g).unwrap();
        let sp = index.space_stats();
        assert!(
            sp.reserved_bytes + sp.free_bytes + sp.pending_bytes <= sp.file_bytes,
            "{sp:?}"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("postings.dat"))
                .unwrap()
                .len(),
            sp.file_bytes
        );
        sizes.push(sp.file_bytes);
        eprintln!("cycle {cycle}: {sp:?}");
    }
    let st = index.update_stats();
    let written = st.rewrites * u64::from(index.params().max_posting_pages) * PAGE as u64;
    eprintln!("sizes {sizes:?}; {st:?}; bytes rewritten >= {written}");
    assert!(
        written > 2 * sizes[9],
        "the cycles rewrote more than the file holds"
    );
    let bound = sizes[..3].iter().max().copied().unwrap_or(0) * 3 / 2;
    assert!(
        sizes[9] <= bound,
        "postings.dat grows without bound: {sizes:?}"
    );
    // Still exact.
    let hits = index.search(data.row(8999), 1, &exhaustive(1)).unwrap().0;
    assert_eq!(hits[0].distance, 0.0);
}

#[test]
fn create_refuses_sq8_and_existing_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let sq8 = SpannParams {
        encoding: Encoding::Sq8,
        ..params(4)
    };
    assert!(matches!(
        Spann::create(dir.path(), 8, Metric::L2, sq8, opts()),
        Err(SpannError::InvalidParam { .. })
    ));
    let f16 = SpannParams {
        encoding: Encoding::F16,
        ..params(4)
    };
    let index = Spann::create(dir.path(), 8, Metric::L2, f16, opts()).unwrap();
    let v: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let id = index.insert(&v).unwrap();
    assert_eq!(index.search(&v, 1, &exhaustive(4)).unwrap().0[0].id, id);
    drop(index);
    assert!(Spann::create(dir.path(), 8, Metric::L2, f16, opts()).is_err());
    // Inserts after open_generation(1) of the fresh index are gone.
    let index = Spann::open(dir.path(), opts()).unwrap();
    assert!(index.is_empty());
}

/// An index grown only by inserts (from empty) against a bulk build of the
/// same vectors, at the same nprobe.
#[test]
fn index_grown_from_empty_recalls_close_to_a_bulk_build_on_minilm() {
    let Some(dir) = minilm() else { return };
    let n = 20_000;
    let base = dataset::load_vectors(dir.join("base.fbin"), Some(n)).unwrap();
    let queries = dataset::load_vectors(dir.join("query.fbin"), Some(300)).unwrap();
    let gt = dataset::ground_truth(&base, &queries, 10, Metric::Cosine).unwrap();
    let params = SpannParams {
        head_ratio: 0.1,
        max_posting_pages: 20,
        ..SpannParams::default()
    };
    let recall = |index: &Spann, nprobe: usize| spann_recall(index, &queries, &gt, nprobe);
    let bulk_dir = tempfile::tempdir().unwrap();
    let bulk = Spann::build(
        bulk_dir.path(),
        base.clone(),
        Metric::Cosine,
        params,
        opts(),
        false,
    )
    .unwrap();
    let (b16, b32, bulk_heads) = (recall(&bulk, 16), recall(&bulk, 32), bulk.heads());
    drop(bulk);

    let grown_dir = tempfile::tempdir().unwrap();
    let grown = Spann::create(grown_dir.path(), base.dim, Metric::Cosine, params, opts()).unwrap();
    let started = std::time::Instant::now();
    for chunk in base.data.chunks(1000 * base.dim) {
        grown.insert_batch(chunk).unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let (g16, g32) = (recall(&grown, 16), recall(&grown, 32));
    let copies = grown.replica_counts().unwrap();
    let mean = copies.iter().map(|&c| f64::from(c)).sum::<f64>() / copies.len() as f64;
    eprintln!(
        "minilm {n}: bulk recall@10 nprobe16 {b16:.4} nprobe32 {b32:.4} ({bulk_heads} heads); \
         grown from empty {g16:.4} / {g32:.4} ({} heads, {mean:.2} copies/vector, \
         {:.0} inserts/s) {:?}",
        grown.heads(),
        n as f64 / secs,
        grown.update_stats()
    );
    assert!(copies.iter().all(|&c| c > 0), "every vector keeps a copy");
    assert!(g16 >= b16 - 0.05, "grown {g16} vs bulk {b16} at nprobe 16");
    assert!(g32 >= b32 - 0.05, "grown {g32} vs bulk {b32} at nprobe 32");
}
