//! Immutable data files: a 64-byte checksummed header, then the payload.
//!
//! Written atomically ([`crate::publish`]): to `<name>.tmp`, fsynced, renamed
//! to `<name>`, and the directory fsynced, so a crash leaves either no file or
//! the whole file.
//! The payload starts at offset 64, so an mmap of the file (page-aligned)
//! gives a payload aligned to 64 bytes: enough for any primitive element type.

use crate::backend::Backend;
use crate::error::{Error, Result};
pub use crate::publish::write_atomic;
use std::path::Path;

/// Magic at the start of every data file.
pub const DATA_MAGIC: [u8; 8] = *b"QVDATA\0\0";
/// Data-file format version written and read by this build.
pub const DATA_VERSION: u32 = 1;
/// Size of the header; the payload starts here.
pub const DATA_HEADER_LEN: usize = 64;
/// Suffix of data files managed by a [`crate::store::Store`].
pub const DATA_SUFFIX: &str = ".qvf";
/// Suffix of files being written; removed on open.
pub const TMP_SUFFIX: &str = ".tmp";

/// The decoded header of a data file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    /// Caller-defined content tag (vectors, ids, codes...).
    pub kind: u32,
    /// Size of one element in bytes, or 0 for untyped bytes; checked by typed views.
    pub elem_size: u32,
    /// Payload length in bytes.
    pub payload_len: u64,
    /// CRC32C of the payload.
    pub payload_crc: u32,
}

impl DataHeader {
    /// Header for `payload`.
    pub fn for_payload(kind: u32, elem_size: u32, payload: &[u8]) -> Self {
        DataHeader {
            kind,
            elem_size,
            payload_len: payload.len() as u64,
            payload_crc: crc32c::crc32c(payload),
        }
    }

    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; DATA_HEADER_LEN] {
        let mut h = [0u8; DATA_HEADER_LEN];
        h[0..8].copy_from_slice(&DATA_MAGIC);
        h[8..12].copy_from_slice(&DATA_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.kind.to_le_bytes());
        h[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        h[24..28].copy_from_slice(&self.payload_crc.to_le_bytes());
        h[28..32].copy_from_slice(&self.elem_size.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..60]);
        h[60..64].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes and checks the header at the start of `buf` (the file `file`, for messages).
    /// Also checks that the file is exactly header + payload long.
    pub fn decode(buf: &[u8], file: &Path) -> Result<Self> {
        if buf.len() < DATA_HEADER_LEN {
            return Err(Error::corrupt(
                file,
                0,
                format!("file of {} bytes is shorter than the header", buf.len()),
            ));
        }
        let u32_at = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
        let expected = u32_at(60);
        let got = crc32c::crc32c(&buf[0..60]);
        if expected != got {
            return Err(Error::ChecksumMismatch {
                file: file.to_path_buf(),
                offset: 0,
                expected,
                got,
            });
        }
        if buf[0..8] != DATA_MAGIC {
            return Err(Error::corrupt(file, 0, "bad magic: not a quiver data file"));
        }
        let version = u32_at(8);
        if version != DATA_VERSION {
            return Err(Error::UnsupportedVersion {
                file: file.to_path_buf(),
                found: version,
                supported: DATA_VERSION,
            });
        }
        let header = DataHeader {
            kind: u32_at(12),
            payload_len: u64::from_le_bytes(buf[16..24].try_into().expect("8 bytes")),
            payload_crc: u32_at(24),
            elem_size: u32_at(28),
        };
        let actual = (buf.len() - DATA_HEADER_LEN) as u64;
        if header.payload_len != actual {
            return Err(Error::corrupt(
                file,
                16,
                format!(
                    "header says {} payload bytes, file has {actual}",
                    header.payload_len
                ),
            ));
        }
        Ok(header)
    }

    /// Checks `payload` against the header's CRC.
    pub fn verify_payload(&self, payload: &[u8], file: &Path) -> Result<()> {
        let got = crc32c::crc32c(payload);
        if got != self.payload_crc {
            return Err(Error::ChecksumMismatch {
                file: file.to_path_buf(),
                offset: DATA_HEADER_LEN as u64,
                expected: self.payload_crc,
                got,
            });
        }
        Ok(())
    }
}

/// Writes an immutable data file `dir/name` atomically; returns its total length.
pub fn write_data_file(
    backend: &dyn Backend,
    dir: &Path,
    name: &str,
    kind: u32,
    elem_size: u32,
    payload: &[u8],
) -> Result<u64> {
    let header = DataHeader::for_payload(kind, elem_size, payload).encode();
    write_atomic(backend, dir, name, &[&header, payload])?;
    Ok((DATA_HEADER_LEN + payload.len()) as u64)
}

/// Reads a data file through the backend, checking header and payload checksums.
pub fn read_data_file(backend: &dyn Backend, path: &Path) -> Result<(DataHeader, Vec<u8>)> {
    let mut bytes = backend.read(path).map_err(|e| Error::io("read", path, e))?;
    let header = DataHeader::decode(&bytes, path)?;
    header.verify_payload(&bytes[DATA_HEADER_LEN..], path)?;
    bytes.drain(..DATA_HEADER_LEN);
    Ok((header, bytes))
}
