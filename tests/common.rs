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
