//! The posting format (docs/FORMAT.md, "SPANN posting file"): one posting is
//! a 32-byte header, then the entries column by column (ids, version bytes,
//! codes), padded to whole 4 KiB pages. [`decode_posting`] checks magic,
//! lengths and the CRC32C and never panics, whatever the bytes; it is fuzzed
//! (`fuzz/fuzz_targets/spann_posting.rs`).

use std::path::Path;

use super::params::Encoding;
use super::{Result, SpannError};

/// Page size: postings start on and fill whole pages.
pub const PAGE: usize = 4096;
/// `"QVPL"` little-endian: the first bytes of every posting.
pub const POSTING_MAGIC: u32 = u32::from_le_bytes(*b"QVPL");
/// Bytes of the posting header.
pub const HEADER_BYTES: usize = 32;

/// Shape of the entries of one index's postings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostingLayout {
    pub dim: usize,
    pub encoding: Encoding,
}

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

impl PostingLayout {
    /// Bytes of one code.
    pub fn code_bytes(&self) -> usize {
        self.encoding.code_bytes(self.dim)
    }

    /// Bytes of a posting of `count` entries, before page padding.
    pub fn bytes(&self, count: usize) -> usize {
        HEADER_BYTES + 4 * count + count + pad4(count) + count * self.code_bytes()
    }

    /// Pages of a posting of `count` entries.
    pub fn pages(&self, count: usize) -> usize {
        self.bytes(count).div_ceil(PAGE)
    }

    /// The most entries that fit in `pages` pages.
    pub fn max_entries(&self, pages: usize) -> usize {
        let room = (pages * PAGE).saturating_sub(HEADER_BYTES + 3);
        room / (5 + self.code_bytes())
    }
}

/// A decoded posting borrowing the read buffer.
#[derive(Clone, Copy, Debug)]
pub struct PostingView<'a> {
    /// Head (posting) id written in the header.
    pub head: u32,
    ids: &'a [u8],
    versions: &'a [u8],
    codes: &'a [u8],
    code_bytes: usize,
}

impl<'a> PostingView<'a> {
    /// Entries in the posting (stale ones included).
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Vector id of entry `i`.
    #[inline]
    pub fn id(&self, i: usize) -> u32 {
        let b = &self.ids[4 * i..4 * i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version byte of entry `i`.
    #[inline]
    pub fn version(&self, i: usize) -> u8 {
        self.versions[i]
    }

    /// Code of entry `i`.
    #[inline]
    pub fn code(&self, i: usize) -> &'a [u8] {
        &self.codes[i * self.code_bytes..(i + 1) * self.code_bytes]
    }
}

/// Decodes the posting at the start of `buf` (read from `file` at `offset`,
/// both only for error messages). Errors name what is wrong; never panics.
pub fn decode_posting<'a>(
    buf: &'a [u8],
    layout: PostingLayout,
    file: &Path,
    offset: u64,
) -> Result<PostingView<'a>> {
    let corrupt = |at: usize, reason: String| SpannError::corrupt(file, offset + at as u64, reason);
    if buf.len() < HEADER_BYTES {
        return Err(corrupt(
            0,
            format!(
                "posting truncated: {} bytes, header needs {HEADER_BYTES}",
                buf.len()
            ),
        ));
    }
    let word = |i: usize| u32::from_le_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let magic = word(0);
    if magic != POSTING_MAGIC {
        return Err(corrupt(0, format!("bad posting magic {magic:#010x}")));
    }
    let head = word(4);
    let count = word(8) as usize;
    let payload = word(12) as usize;
    let expected_crc = word(16);
    let max = layout.max_entries(buf.len().div_ceil(PAGE).max(1));
    if count > max {
        return Err(corrupt(
            8,
            format!(
                "posting count {count} exceeds the {max} that fit in {} bytes",
                buf.len()
            ),
        ));
    }
    let total = layout.bytes(count);
    if payload != total - HEADER_BYTES {
        return Err(corrupt(
            12,
            format!(
                "payload length {payload}, expected {} for {count} entries",
                total - HEADER_BYTES
            ),
        ));
    }
    if buf.len() < total {
        return Err(corrupt(
            0,
            format!("posting truncated: {} bytes, needs {total}", buf.len()),
        ));
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&buf[..16]), &buf[20..total]);
    if crc != expected_crc {
        return Err(SpannError::ChecksumMismatch {
            file: file.to_path_buf(),
            offset,
            expected: expected_crc,
            got: crc,
        });
    }
    let ids_end = HEADER_BYTES + 4 * count;
    let ver_end = ids_end + count;
    let codes_start = ver_end + pad4(count);
    Ok(PostingView {
        head,
        ids: &buf[HEADER_BYTES..ids_end],
        versions: &buf[ids_end..ver_end],
        codes: &buf[codes_start..total],
        code_bytes: layout.code_bytes(),
    })
}

/// Accumulates entries and writes a posting.
#[derive(Default)]
pub struct PostingBuilder {
    ids: Vec<u32>,
    versions: Vec<u8>,
    codes: Vec<u8>,
}

impl PostingBuilder {
    pub fn clear(&mut self) {
        self.ids.clear();
        self.versions.clear();
        self.codes.clear();
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Adds an entry whose code is already encoded.
    pub fn push(&mut self, id: u32, version: u8, code: &[u8]) {
        self.ids.push(id);
        self.versions.push(version);
        self.codes.extend_from_slice(code);
    }

    /// Writes the posting of head `head` into `out` (cleared), padded to pages.
    pub fn finish(&self, head: u32, layout: PostingLayout, out: &mut Vec<u8>) {
        let count = self.ids.len();
        debug_assert_eq!(self.codes.len(), count * layout.code_bytes());
        let total = layout.bytes(count);
        out.clear();
        out.reserve(total.div_ceil(PAGE) * PAGE);
        out.extend_from_slice(&POSTING_MAGIC.to_le_bytes());
        out.extend_from_slice(&head.to_le_bytes());
        out.extend_from_slice(&(count as u32).to_le_bytes());
        out.extend_from_slice(&((total - HEADER_BYTES) as u32).to_le_bytes());
        out.resize(HEADER_BYTES, 0);
        for id in &self.ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        out.extend_from_slice(&self.versions);
        out.resize(out.len() + pad4(count), 0);
        out.extend_from_slice(&self.codes);
        debug_assert_eq!(out.len(), total);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&out[..16]), &out[20..]);
        out[16..20].copy_from_slice(&crc.to_le_bytes());
        out.resize(total.div_ceil(PAGE).max(1) * PAGE, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> PostingLayout {
        PostingLayout {
            dim: 3,
            encoding: Encoding::Sq8,
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = PostingBuilder::default();
        for i in 0..5u32 {
            b.push(i * 7, i as u8, &[i as u8, 1, 2]);
        }
        let mut out = Vec::new();
        b.finish(42, layout(), &mut out);
        out
    }

    #[test]
    fn posting_round_trips() {
        let buf = sample();
        assert_eq!(buf.len(), PAGE);
        let v = decode_posting(&buf, layout(), Path::new("p"), 0).unwrap();
        assert_eq!(v.head, 42);
        assert_eq!(v.len(), 5);
        assert_eq!(v.id(3), 21);
        assert_eq!(v.version(4), 4);
        assert_eq!(v.code(2), &[2, 1, 2]);
    }

    #[test]
    fn every_flipped_byte_or_truncation_is_an_error() {
        let buf = sample();
        let used = layout().bytes(5);
        for i in 0..used {
            let mut b = buf.clone();
            b[i] ^= 0x40;
            assert!(
                decode_posting(&b, layout(), Path::new("p"), 0).is_err(),
                "byte {i}"
            );
        }
        for len in 0..used {
            assert!(
                decode_posting(&buf[..len], layout(), Path::new("p"), 0).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn max_entries_fit() {
        for enc in [Encoding::F32, Encoding::F16, Encoding::Sq8] {
            let l = PostingLayout {
                dim: 384,
                encoding: enc,
            };
            for pages in 1..40 {
                let m = l.max_entries(pages);
                assert!(
                    l.pages(m) <= pages && l.pages(m + 2) > pages,
                    "{enc:?} {pages}"
                );
            }
        }
    }
}

/// Fuzzing entry point: the first byte picks the encoding, the next two the
/// dimension (1..=64); the rest is decoded as a posting and every entry read.
/// Returns whether the posting decoded. Must never panic.
pub fn fuzz_decode(data: &[u8]) -> bool {
    if data.len() < 3 {
        return false;
    }
    let encoding = match data[0] % 3 {
        0 => Encoding::F32,
        1 => Encoding::F16,
        _ => Encoding::Sq8,
    };
    let dim = usize::from(u16::from_le_bytes([data[1], data[2]]) % 64) + 1;
    let layout = PostingLayout { dim, encoding };
    match decode_posting(&data[3..], layout, Path::new("fuzz"), 0) {
        Ok(v) => {
            let mut acc = 0u64;
            for i in 0..v.len() {
                acc = acc.wrapping_add(
                    u64::from(v.id(i)) + u64::from(v.version(i)) + v.code(i).len() as u64,
                );
            }
            std::hint::black_box(acc);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod seeds {
    use super::*;

    /// Writes the fuzz seed corpus: `cargo test -p quiver --lib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/spann_posting");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, enc, dim, n) in [
            ("f32_d4_n3", 0u8, 4u16, 3u32),
            ("f16_d8_n5", 1, 8, 5),
            ("sq8_d16_n9", 2, 16, 9),
            ("sq8_d3_n0", 2, 3, 0),
        ] {
            let encoding = [Encoding::F32, Encoding::F16, Encoding::Sq8][enc as usize];
            let layout = PostingLayout {
                dim: dim as usize,
                encoding,
            };
            let mut b = PostingBuilder::default();
            for i in 0..n {
                let code: Vec<u8> = (0..layout.code_bytes())
                    .map(|j| (i as usize * 31 + j) as u8)
                    .collect();
                b.push(i * 3 + 1, i as u8, &code);
            }
            let mut out = Vec::new();
            b.finish(7, layout, &mut out);
            let mut seed = vec![enc];
            seed.extend_from_slice(&(dim - 1).to_le_bytes());
            seed.extend_from_slice(&out[..layout.bytes(n as usize)]);
            assert!(fuzz_decode(&seed), "{name}");
            std::fs::write(dir.join(name), &seed).unwrap();
        }
        std::fs::write(dir.join("garbage"), b"QVPL\x01\x00\x00\x00\xff\xff\xff\xff").unwrap();
    }
}
