//! Fuzzes the HNSW index file decoder: any bytes load to an index or an
//! error, never a panic; a loaded index answers a search without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quiver::hnsw::Hnsw;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = Hnsw::from_bytes(data, Path::new("fuzz.hnsw"), 0) {
        let q = vec![0.5f32; index.dim()];
        let _ = index.search(&q, 5, 16);
    }
});
