//! Fuzzes the dataset readers: the first byte picks a format, the rest is
//! the file. Any bytes read to a dataset or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver::dataset;

const EXTENSIONS: [&str; 9] = ["fvecs", "bvecs", "ivecs", "fbin", "u8bin", "i8bin", "ibin", "hdf5", "h5"];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let ext = EXTENSIONS[sel as usize % EXTENSIONS.len()];
    let path = std::env::temp_dir().join(format!("quiver-fuzz-{}.{ext}", std::process::id()));
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let _ = dataset::load_vectors(&path, Some(1000));
    let _ = dataset::load_neighbors(&path);
});
