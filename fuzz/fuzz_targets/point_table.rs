//! Fuzzes the point table decoder (segment meta files, the SSD point table)
//! and the payload indexes built from what it decodes: any bytes give a
//! table or an error, and indexing and filtering a decoded table never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    quiver::collection::fuzz_point_table(data);
});
