//! Fuzzes the WAL record decoder: any bytes decode to a record or an error, never a panic,
//! and whatever decodes re-encodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quiver_storage::wal::{decode_record, encode_record};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok((rec, n)) = decode_record(rest) {
        let mut again = Vec::new();
        encode_record(&mut again, rec.lsn, rec.kind, rec.payload);
        assert_eq!(&again[..], &rest[..n]);
        rest = &rest[n..];
    }
});
