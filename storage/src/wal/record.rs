//! WAL record framing and segment header: pure encode/decode over byte slices.
//!
//! Layout (see docs/FORMAT.md, "Write-ahead log"): a 32-byte segment header,
//! then records of `len u32 | crc32c u32 | lsn u64 | kind u8 | payload`,
//! where the CRC covers `len`, `lsn`, `kind` and `payload`.

use std::fmt;

/// Magic at the start of every WAL segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"QVWALSEG";
/// Segment format version written and read by this build.
pub const SEGMENT_VERSION: u32 = 1;
/// Size of the segment header.
pub const SEGMENT_HEADER_LEN: usize = 32;
/// Size of a record header (`len`, `crc`, `lsn`, `kind`).
pub const RECORD_HEADER_LEN: usize = 17;
/// Largest payload accepted (64 MiB); longer lengths on disk are corruption.
pub const MAX_PAYLOAD_LEN: usize = 64 << 20;

/// A log sequence number: the position of a record in the log. Starts at 1; 0 means "none".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsn {}", self.0)
    }
}

/// A decoded record borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Its log sequence number.
    pub lsn: Lsn,
    /// Caller-defined record kind.
    pub kind: u8,
    /// The payload bytes.
    pub payload: &'a [u8],
}

/// A decoded record owning its payload, as yielded by replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Its log sequence number.
    pub lsn: Lsn,
    /// Caller-defined record kind.
    pub kind: u8,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl From<RecordRef<'_>> for Record {
    fn from(r: RecordRef<'_>) -> Self {
        Record {
            lsn: r.lsn,
            kind: r.kind,
            payload: r.payload.to_vec(),
        }
    }
}

/// Why bytes do not decode as a record or segment header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The buffer ends before the record does (a torn tail if at the end of the log).
    #[error("incomplete: need {needed} bytes, have {have}")]
    Incomplete {
        /// Bytes the record needs.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The length field exceeds [`MAX_PAYLOAD_LEN`].
    #[error("payload length {0} exceeds the maximum {MAX_PAYLOAD_LEN}")]
    TooLarge(u64),
    /// The CRC does not match.
    #[error("checksum mismatch: expected {expected:#010x}, got {got:#010x}")]
    Checksum {
        /// Stored CRC.
        expected: u32,
        /// Computed CRC.
        got: u32,
    },
    /// Wrong magic in a segment header.
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 8]),
    /// Unknown segment version.
    #[error("unsupported version {0}")]
    Version(u32),
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn record_crc(len: &[u8], rest: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len), rest)
}

/// Appends the framed record to `out`. The payload must be at most [`MAX_PAYLOAD_LEN`] bytes.
pub fn encode_record(out: &mut Vec<u8>, lsn: Lsn, kind: u8, payload: &[u8]) {
    debug_assert!(payload.len() <= MAX_PAYLOAD_LEN);
    let start = out.len();
    let len = (payload.len() as u32).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&lsn.0.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(payload);
    let crc = record_crc(&len, &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Size of the framed record for a payload of `payload_len` bytes.
pub fn framed_len(payload_len: usize) -> usize {
    RECORD_HEADER_LEN + payload_len
}

/// Decodes one record from the start of `buf`, returning it and its framed length.
/// Never panics; every malformed input is a [`DecodeError`].
pub fn decode_record(buf: &[u8]) -> Result<(RecordRef<'_>, usize), DecodeError> {
    if buf.len() < RECORD_HEADER_LEN {
        return Err(DecodeError::Incomplete {
            needed: RECORD_HEADER_LEN,
            have: buf.len(),
        });
    }
    let len = u32_at(buf, 0) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(DecodeError::TooLarge(len as u64));
    }
    let total = RECORD_HEADER_LEN + len;
    if buf.len() < total {
        return Err(DecodeError::Incomplete {
            needed: total,
            have: buf.len(),
        });
    }
    let expected = u32_at(buf, 4);
    let got = record_crc(&buf[0..4], &buf[8..total]);
    if expected != got {
        return Err(DecodeError::Checksum { expected, got });
    }
    let rec = RecordRef {
        lsn: Lsn(u64_at(buf, 8)),
        kind: buf[16],
        payload: &buf[RECORD_HEADER_LEN..total],
    };
    Ok((rec, total))
}

/// The 32-byte header that starts each segment; `base_lsn` is the smallest LSN it may hold.
pub fn encode_segment_header(base_lsn: Lsn) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    // 12..16 flags (0), 24..28 reserved (0)
    h[16..24].copy_from_slice(&base_lsn.0.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..28]);
    h[28..32].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Decodes a segment header from the start of `buf`, returning its base LSN.
pub fn decode_segment_header(buf: &[u8]) -> Result<Lsn, DecodeError> {
    if buf.len() < SEGMENT_HEADER_LEN {
        return Err(DecodeError::Incomplete {
            needed: SEGMENT_HEADER_LEN,
            have: buf.len(),
        });
    }
    let expected = u32_at(buf, 28);
    let got = crc32c::crc32c(&buf[0..28]);
    if expected != got {
        return Err(DecodeError::Checksum { expected, got });
    }
    let magic: [u8; 8] = buf[0..8].try_into().expect("8 bytes");
    if magic != SEGMENT_MAGIC {
        return Err(DecodeError::BadMagic(magic));
    }
    let version = u32_at(buf, 8);
    if version != SEGMENT_VERSION {
        return Err(DecodeError::Version(version));
    }
    Ok(Lsn(u64_at(buf, 16)))
}

/// How the scan of one segment's records ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every byte after the header belongs to a whole, valid record.
    Clean,
    /// Damage at `offset`; `resumes` says whether a valid record with a larger LSN
    /// follows the damage (so it is not a tail).
    Damaged {
        offset: u64,
        error: DamageKind,
        resumes: bool,
    },
}

/// What was wrong at the damaged offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DamageKind {
    Decode(DecodeError),
    LsnOrder { lsn: u64, after: u64 },
}

/// Scans the records of a segment (`buf` is the whole file, header included),
/// calling `f` for every valid record in order.
pub(crate) fn scan_records<'a>(
    buf: &'a [u8],
    base: Lsn,
    mut f: impl FnMut(RecordRef<'a>, u64),
) -> ScanEnd {
    let mut off = SEGMENT_HEADER_LEN;
    // Records carry LSNs >= base and strictly increasing.
    let mut prev = base.0.saturating_sub(1);
    while off < buf.len() {
        let error = match decode_record(&buf[off..]) {
            Ok((rec, n)) if rec.lsn.0 > prev => {
                f(rec, off as u64);
                prev = rec.lsn.0;
                off += n;
                continue;
            }
            Ok((rec, _)) => DamageKind::LsnOrder {
                lsn: rec.lsn.0,
                after: prev,
            },
            Err(e) => DamageKind::Decode(e),
        };
        let resumes = resumes_after(buf, off, prev);
        return ScanEnd::Damaged {
            offset: off as u64,
            error,
            resumes,
        };
    }
    ScanEnd::Clean
}

/// True if some offset after `bad` starts a valid record with an LSN above `prev`:
/// the damage at `bad` is then in the middle of the log, not a torn tail.
fn resumes_after(buf: &[u8], bad: usize, prev: u64) -> bool {
    (bad + 1..buf.len().saturating_sub(RECORD_HEADER_LEN - 1)).any(|at| {
        let b = &buf[at..];
        // Cheap filters before the CRC: a plausible length and a larger LSN.
        let len = u32_at(b, 0) as usize;
        len <= b.len() - RECORD_HEADER_LEN
            && u64_at(b, 8) > prev
            && matches!(decode_record(b), Ok((r, _)) if r.lsn.0 > prev)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_every_truncation_is_incomplete() {
        let mut buf = Vec::new();
        encode_record(&mut buf, Lsn(42), 7, b"hello world");
        let (rec, n) = decode_record(&buf).unwrap();
        assert_eq!(
            (rec.lsn, rec.kind, rec.payload, n),
            (Lsn(42), 7, &b"hello world"[..], buf.len())
        );
        for cut in 0..buf.len() {
            assert!(
                matches!(
                    decode_record(&buf[..cut]),
                    Err(DecodeError::Incomplete { .. })
                ),
                "cut={cut}"
            );
        }
    }

    #[test]
    fn every_bit_flip_is_detected() {
        let mut buf = Vec::new();
        encode_record(&mut buf, Lsn(3), 1, b"payload");
        for bit in 0..buf.len() * 8 {
            let mut b = buf.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&b).is_err(), "bit={bit}");
        }
    }

    #[test]
    fn segment_header_roundtrip() {
        let h = encode_segment_header(Lsn(99));
        assert_eq!(decode_segment_header(&h), Ok(Lsn(99)));
        let mut bad = h;
        bad[0] ^= 1;
        assert!(decode_segment_header(&bad).is_err());
    }
}
