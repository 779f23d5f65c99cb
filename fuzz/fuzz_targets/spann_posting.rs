//! Fuzzes the SPANN posting decoder: any bytes give a posting or an error,
//! never a panic. Seeds: `fuzz/corpus/spann_posting` (written by
//! `cargo test --lib write_fuzz_seeds -- --ignored`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = quiver::spann::posting::fuzz_decode(data);
});
