//! Helpers shared by the integration tests.

use std::path::PathBuf;

/// The real embedding dataset, or `None` (with a message) when it is absent.
pub fn minilm() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/minilm-npm-384");
    if dir.join("base.fbin").exists() {
        Some(dir)
    } else {
        eprintln!("skipping: real dataset not found at {}", dir.display());
        None
    }
}

/// Path of the built `quiver` binary.
pub fn quiver_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quiver"))
}

/// Whether `python3` can import `modules` (comma-separated). When it cannot,
/// the calling test fails under CI (env `CI` set: `.ci/run` installs them)
/// and otherwise prints a note so the caller can return early.
pub fn python_has(modules: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: `python3 -c \"import {modules}\"` failed; .ci/run must install them"
        );
        eprintln!("skipping: python3 cannot import {modules} (pip install them to run this test)");
    }
    ok
}

/// Runs `cmd`, asserts it exits 0 (printing its stderr when not), and
/// returns its output.
pub fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("start the command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Bulk-builds a SPANN index of `base` in `dir` with default open options.
pub fn build_spann(
    dir: &std::path::Path,
    base: &quiver::dataset::VectorSet,
    metric: quiver::distance::Metric,
    params: quiver::spann::SpannParams,
) -> quiver::spann::Spann {
    quiver::spann::Spann::build(
        dir,
        base.clone(),
        metric,
        params,
        quiver::spann::OpenParams::default(),
        false,
    )
    .unwrap()
}

/// Recall@10 of `index` over `queries` at `nprobe` (other search settings default).
pub fn spann_recall(
    index: &quiver::spann::Spann,
    queries: &quiver::dataset::VectorSet,
    gt: &quiver::dataset::Neighbors,
    nprobe: usize,
) -> f64 {
    let sp = quiver::spann::SearchParams {
        nprobe,
        ..Default::default()
    };
    let results: Vec<Vec<u32>> = queries
        .rows()
        .map(|q| {
            let hits = index.search(q, 10, &sp).unwrap().0;
            hits.iter().map(|h| h.id).collect()
        })
        .collect();
    quiver::dataset::recall_at_k(&results, gt, 10)
}
