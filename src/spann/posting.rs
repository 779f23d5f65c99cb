//! The posting format (docs/FORMAT.md, "SPANN posting file", version 2). A
//! posting is a run of *chunks* packed back to back inside its extent of
//! 4 KiB pages: a full rewrite writes one chunk, an insert appends another
//! after the last (so bytes a checkpoint references are never rewritten).
//! A chunk is a 16-byte header (magic, head, count, CRC32C) followed by
//! `count` entries `(id u32, version u32, code, zero padding to 4 bytes)`.
//! [`decode_posting`] checks every chunk's magic, head, length and CRC and
//! never panics, whatever the bytes; it is fuzzed
//! (`fuzz/fuzz_targets/spann_posting.rs`).

use std::path::Path;

use super::params::Encoding;
use super::{Result, SpannError};

/// Page size: postings start on and reserve whole pages.
pub const PAGE: usize = 4096;
/// `"QVPC"` little-endian: the first bytes of every chunk.
pub const CHUNK_MAGIC: u32 = u32::from_le_bytes(*b"QVPC");
/// Bytes of a chunk header.
pub const CHUNK_HEADER: usize = 16;

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

    /// Bytes of one entry: id, version, code, padding to 4.
    pub fn entry_bytes(&self) -> usize {
        let c = self.code_bytes();
        8 + c + pad4(c)
    }

    /// Bytes of a chunk of `count` entries.
    pub fn bytes(&self, count: usize) -> usize {
        CHUNK_HEADER + count * self.entry_bytes()
    }

    /// Pages of a posting written as one chunk of `count` entries.
    pub fn pages(&self, count: usize) -> usize {
        self.bytes(count).div_ceil(PAGE)
    }

    /// The most entries that fit in `pages` pages as one chunk.
    pub fn max_entries(&self, pages: usize) -> usize {
        (pages * PAGE).saturating_sub(CHUNK_HEADER) / self.entry_bytes()
    }
}

/// One entry of a posting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Vector id.
    pub id: u32,
    /// Version of the id when this copy was written (30 bits).
    pub version: u32,
    /// The code (f32, f16 or SQ8 bytes).
    pub code: &'a [u8],
}

/// A decoded (checked) posting borrowing the read buffer.
#[derive(Clone, Copy, Debug)]
pub struct PostingView<'a> {
    /// Head (posting) id written in every chunk.
    pub head: u32,
    count: usize,
    bytes: &'a [u8],
    layout: PostingLayout,
}

impl<'a> PostingView<'a> {
    /// Entries in the posting (stale ones included).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Chunks of the posting.
    pub fn chunks(&self) -> usize {
        self.chunk_iter().count()
    }

    /// The entries, in write order.
    pub fn iter(&self) -> impl Iterator<Item = Entry<'a>> + 'a {
        let layout = self.layout;
        let (eb, cb) = (layout.entry_bytes(), layout.code_bytes());
        self.chunk_iter().flat_map(move |chunk| {
            chunk.chunks_exact(eb).map(move |e| Entry {
                id: u32::from_le_bytes([e[0], e[1], e[2], e[3]]),
                version: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
                code: &e[8..8 + cb],
            })
        })
    }

    /// The entry bytes of each chunk (already checked by [`decode_posting`]).
    fn chunk_iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let eb = self.layout.entry_bytes();
        let mut rest = self.bytes;
        std::iter::from_fn(move || {
            if rest.len() < CHUNK_HEADER {
                return None;
            }
            let n = u32::from_le_bytes([rest[8], rest[9], rest[10], rest[11]]) as usize;
            let end = CHUNK_HEADER + n * eb;
            let chunk = &rest[CHUNK_HEADER..end];
            rest = &rest[end..];
            Some(chunk)
        })
    }
}

/// Decodes the posting held in exactly `buf` (read from `file` at `offset`,
/// both only for error messages): one or more chunks ending at `buf`'s end.
/// Errors name what is wrong and where; never panics. The caller checks the
/// head and the entry count against its posting table.
pub fn decode_posting<'a>(
    buf: &'a [u8],
    layout: PostingLayout,
    file: &Path,
    offset: u64,
) -> Result<PostingView<'a>> {
    let corrupt = |at: usize, reason: String| SpannError::corrupt(file, offset + at as u64, reason);
    if buf.is_empty() {
        return Err(corrupt(0, "empty posting: no chunk".into()));
    }
    let eb = layout.entry_bytes();
    let mut at = 0usize;
    let mut head = None;
    let mut count = 0usize;
    while at < buf.len() {
        let c = &buf[at..];
        if c.len() < CHUNK_HEADER {
            return Err(corrupt(
                at,
                format!(
                    "chunk truncated: {} bytes, header needs {CHUNK_HEADER}",
                    c.len()
                ),
            ));
        }
        let word = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        let magic = word(0);
        if magic != CHUNK_MAGIC {
            return Err(corrupt(at, format!("bad chunk magic {magic:#010x}")));
        }
        let h = word(4);
        if *head.get_or_insert(h) != h {
            return Err(corrupt(
                at + 4,
                format!(
                    "chunk of head {h} inside the posting of head {}",
                    head.unwrap_or(h)
                ),
            ));
        }
        let n = word(8) as usize;
        let len = n
            .checked_mul(eb)
            .and_then(|b| b.checked_add(CHUNK_HEADER))
            .filter(|&l| l <= c.len())
            .ok_or_else(|| {
                corrupt(
                    at + 8,
                    format!(
                        "chunk of {n} entries does not fit the {} bytes left",
                        c.len()
                    ),
                )
            })?;
        let expected = word(12);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&c[..12]), &c[CHUNK_HEADER..len]);
        if crc != expected {
            return Err(SpannError::ChecksumMismatch {
                file: file.to_path_buf(),
                offset: offset + at as u64,
                expected,
                got: crc,
            });
        }
        count += n;
        at += len;
    }
    Ok(PostingView {
        head: head.unwrap_or(0),
        count,
        bytes: buf,
        layout,
    })
}

/// Accumulates entries and encodes them as a chunk.
#[derive(Default)]
pub struct PostingBuilder {
    ids: Vec<u32>,
    versions: Vec<u32>,
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
    pub fn push(&mut self, id: u32, version: u32, code: &[u8]) {
        self.ids.push(id);
        self.versions.push(version);
        self.codes.extend_from_slice(code);
    }

    /// Appends the entries as one chunk of head `head` to `out` (no padding).
    pub fn chunk(&self, head: u32, layout: PostingLayout, out: &mut Vec<u8>) {
        let count = self.ids.len();
        let cb = layout.code_bytes();
        debug_assert_eq!(self.codes.len(), count * cb);
        let start = out.len();
        out.reserve(layout.bytes(count));
        out.extend_from_slice(&CHUNK_MAGIC.to_le_bytes());
        out.extend_from_slice(&head.to_le_bytes());
        out.extend_from_slice(&(count as u32).to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let pad = [0u8; 4];
        for (i, (id, v)) in self.ids.iter().zip(&self.versions).enumerate() {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&self.codes[i * cb..(i + 1) * cb]);
            out.extend_from_slice(&pad[..pad4(cb)]);
        }
        let c = &mut out[start..];
        debug_assert_eq!(c.len(), layout.bytes(count));
        let crc = crc32c::crc32c_append(crc32c::crc32c(&c[..12]), &c[CHUNK_HEADER..]);
        c[12..16].copy_from_slice(&crc.to_le_bytes());
    }

    /// Writes a whole posting (one chunk) into `out` (cleared), zero-padded
    /// to whole pages (at least one).
    pub fn finish(&self, head: u32, layout: PostingLayout, out: &mut Vec<u8>) {
        out.clear();
        self.chunk(head, layout, out);
        let total = out.len();
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

    fn builder(n: u32, base: u32) -> PostingBuilder {
        let mut b = PostingBuilder::default();
        for i in base..base + n {
            b.push(i * 7, i, &[i as u8, 1, 2]);
        }
        b
    }

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        builder(5, 0).finish(42, layout(), &mut out);
        out
    }

    #[test]
    fn posting_round_trips() {
        let buf = sample();
        assert_eq!(buf.len(), PAGE);
        let used = layout().bytes(5);
        let v = decode_posting(&buf[..used], layout(), Path::new("p"), 0).unwrap();
        assert_eq!(v.head, 42);
        assert_eq!(v.len(), 5);
        let e: Vec<Entry> = v.iter().collect();
        assert_eq!(e[3].id, 21);
        assert_eq!(e[4].version, 4);
        assert_eq!(e[2].code, &[2, 1, 2]);
    }

    #[test]
    fn appended_chunks_decode_in_order() {
        let mut buf = Vec::new();
        builder(3, 0).chunk(9, layout(), &mut buf);
        builder(2, 3).chunk(9, layout(), &mut buf);
        builder(0, 5).chunk(9, layout(), &mut buf);
        let v = decode_posting(&buf, layout(), Path::new("p"), 0).unwrap();
        assert_eq!((v.head, v.len(), v.chunks()), (9, 5, 3));
        let ids: Vec<u32> = v.iter().map(|e| e.id).collect();
        assert_eq!(ids, [0, 7, 14, 21, 28]);
        // A chunk of another head inside the posting is corruption.
        let mut other = buf.clone();
        builder(1, 9).chunk(10, layout(), &mut other);
        assert!(decode_posting(&other, layout(), Path::new("p"), 0).is_err());
    }

    #[test]
    fn every_flipped_byte_or_truncation_is_an_error() {
        let buf = sample();
        let used = layout().bytes(5);
        for i in 0..used {
            let mut b = buf[..used].to_vec();
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
        // Trailing bytes that are not a chunk (e.g. page padding) are an error.
        assert!(decode_posting(&buf[..used + 4], layout(), Path::new("p"), 0).is_err());
    }

    #[test]
    fn max_entries_fit() {
        for enc in [Encoding::F32, Encoding::F16, Encoding::Sq8] {
            for dim in [3, 384] {
                let l = PostingLayout { dim, encoding: enc };
                for pages in 1..40 {
                    let m = l.max_entries(pages);
                    assert!(
                        l.pages(m) <= pages && l.pages(m + 1) > pages,
                        "{enc:?} {dim} {pages}"
                    );
                }
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
            let mut n = 0usize;
            for e in v.iter() {
                acc =
                    acc.wrapping_add(u64::from(e.id) + u64::from(e.version) + e.code.len() as u64);
                n += 1;
            }
            assert_eq!(n, v.len(), "entries iterated = entries counted");
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
        for (name, enc, dim, chunks) in [
            ("f32_d4_n3", 0u8, 4u16, &[3u32][..]),
            ("f16_d8_n5", 1, 8, &[5]),
            ("sq8_d16_n9", 2, 16, &[9]),
            ("sq8_d3_n0", 2, 3, &[0]),
            ("f32_d5_chunks_2_1_4", 0, 5, &[2, 1, 4]),
        ] {
            let encoding = [Encoding::F32, Encoding::F16, Encoding::Sq8][enc as usize];
            let layout = PostingLayout {
                dim: dim as usize,
                encoding,
            };
            let mut out = Vec::new();
            let mut next = 0u32;
            for &n in chunks {
                let mut b = PostingBuilder::default();
                for i in next..next + n {
                    let code: Vec<u8> = (0..layout.code_bytes())
                        .map(|j| (i as usize * 31 + j) as u8)
                        .collect();
                    b.push(i * 3 + 1, i, &code);
                }
                next += n;
                b.chunk(7, layout, &mut out);
            }
            let mut seed = vec![enc];
            seed.extend_from_slice(&(dim - 1).to_le_bytes());
            seed.extend_from_slice(&out);
            assert!(fuzz_decode(&seed), "{name}");
            std::fs::write(dir.join(name), &seed).unwrap();
        }
        std::fs::write(dir.join("garbage"), b"QVPC\x01\x00\x00\x00\xff\xff\xff\xff").unwrap();
    }
}
