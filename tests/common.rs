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
