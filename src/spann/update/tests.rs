//! Update tests that reach into the index's internals.

use super::*;
use crate::dataset;
use crate::distance::Metric;
use crate::spann::Spann;
use crate::spann::{OpenParams, SearchParams, SpannParams};

/// One id reassigned far more often than a 7-bit version could count:
/// none of its hundreds of stale copies may count as live again.
#[test]
fn versions_do_not_wrap_under_many_reassignments() {
    let dim = 8;
    let data = dataset::synthetic::clustered(400, dim, 3);
    let dir = tempfile::tempdir().unwrap();
    let params = SpannParams {
        head_ratio: 0.05,
        max_posting_pages: 64,
        ..SpannParams::default()
    };
    let index = Spann::build(
        dir.path(),
        data.clone(),
        Metric::L2,
        params,
        OpenParams::default(),
        false,
    )
    .unwrap();
    let x = 7u32;
    let entries = |index: &Spann| index.posting_lengths().iter().sum::<u32>();
    let first = index.replica_counts().unwrap()[x as usize];
    let before = entries(&index);
    let rounds = 300;
    for _ in 0..rounds {
        let to = index.versions.start_move(x).unwrap();
        let mut b = Batch::default();
        b.push(x, data.row(x as usize), to);
        index.place(b).unwrap();
        index.maintain();
        let c = index.replica_counts().unwrap()[x as usize];
        assert!(c >= 1 && c as usize <= params.replicas, "{c} live copies");
    }
    assert_eq!(index.versions.word(x), Some(rounds));
    let stale = entries(&index) - before;
    // Appends leave the old copies in place (one rewrite dropped those
    // made before it): more than the 128 a 7-bit version tells apart.
    assert!(stale > 200, "stale copies in the postings: {stale}");
    let sp = SearchParams {
        nprobe: usize::MAX,
        ..SearchParams::default()
    };
    let hits = index.search(data.row(x as usize), 5, &sp).unwrap().0;
    assert_eq!(hits.iter().filter(|h| h.id == x).count(), 1);
    assert_eq!(hits[0].distance, 0.0);
    // Compaction drops every stale copy; a reopen agrees.
    index.compact().unwrap();
    let copies = index.replica_counts().unwrap()[x as usize] as u32;
    assert!(entries(&index) <= before - first as u32 + copies);
    index.flush().unwrap();
    drop(index);
    let index = Spann::open(dir.path(), OpenParams::default()).unwrap();
    assert_eq!(index.replica_counts().unwrap()[x as usize] as u32, copies);
    assert_eq!(index.versions.word(x), Some(rounds));
}
