//! Fuzzes the HNSW index file decoder (versions 1 and 2, every vector
//! encoding): any bytes load to an index or an error, never a panic; a loaded
//! index answers a search, decodes a stored vector and takes an insert (into
//! its one spare slot) without panicking.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use quiver::hnsw::{Hnsw, NodeId};

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = Hnsw::from_bytes(data, Path::new("fuzz.hnsw"), 1) {
        let q = vec![0.5f32; index.dim()];
        let _ = index.search(&q, 5, 16);
        let _ = index.vector(NodeId(0));
        let _ = index.insert(&q);
        let _ = index.search(&q, 5, 16);
    }
});
