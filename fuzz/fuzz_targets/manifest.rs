//! Fuzzes the manifest decoder: any bytes decode to a manifest or an error, never a panic,
//! and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_storage::manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = manifest::decode(data) {
        assert_eq!(manifest::encode(&m), data);
    }
});
