//! The manifest: the list of live data files and the checkpoint LSN, in one
//! small checksummed file `MANIFEST` replaced atomically (temp, fsync, rename,
//! fsync dir). A crash at any point leaves the old or the new manifest.
//!
//! [`decode`] is fuzzed: it returns errors for any input, never panics.

use crate::wal::Lsn;

/// Magic at the start of the manifest.
pub const MANIFEST_MAGIC: [u8; 8] = *b"QVMANIFT";
/// Manifest format version written and read by this build.
pub const MANIFEST_VERSION: u32 = 1;
/// File name of the manifest in a data directory.
pub const MANIFEST_FILE: &str = "MANIFEST";
/// Fixed part before the entries.
const FIXED_LEN: usize = 32;
/// Longest file name in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// One live data file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileEntry {
    /// File name inside the data directory.
    pub name: String,
    /// Its length in bytes (checked on open).
    pub len: u64,
}

/// The durable state of a data directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Incremented on every commit.
    pub generation: u64,
    /// Every WAL record with LSN `<=` this is reflected in the files; replay starts after it.
    pub checkpoint_lsn: Lsn,
    /// The live data files.
    pub files: Vec<FileEntry>,
}

/// Why bytes are not a valid manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at offset {offset}: {reason}")]
pub struct ManifestError {
    /// Byte offset of the problem.
    pub offset: u64,
    /// What is wrong.
    pub reason: String,
    /// Stored and computed checksum, when the trailer does not match.
    pub checksum: Option<(u32, u32)>,
}

fn err(offset: usize, reason: impl Into<String>) -> ManifestError {
    ManifestError {
        offset: offset as u64,
        reason: reason.into(),
        checksum: None,
    }
}

/// Whether `name` is acceptable as a data-file name: non-empty, at most 255 bytes,
/// no path separator or NUL, not `.`/`..`, not a reserved name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.contains(['/', '\\', '\0'])
        && name != "."
        && name != ".."
        && name != MANIFEST_FILE
        && name != crate::lock::LOCK_FILE
}

/// Encodes `m`. Names must satisfy [`valid_name`].
pub fn encode(m: &Manifest) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        FIXED_LEN + 4 + m.files.iter().map(|f| 10 + f.name.len()).sum::<usize>(),
    );
    out.extend_from_slice(&MANIFEST_MAGIC);
    out.extend_from_slice(&MANIFEST_VERSION.to_le_bytes());
    out.extend_from_slice(&(m.files.len() as u32).to_le_bytes());
    out.extend_from_slice(&m.generation.to_le_bytes());
    out.extend_from_slice(&m.checkpoint_lsn.0.to_le_bytes());
    for f in &m.files {
        debug_assert!(valid_name(&f.name));
        out.extend_from_slice(&(f.name.len() as u16).to_le_bytes());
        out.extend_from_slice(f.name.as_bytes());
        out.extend_from_slice(&f.len.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a manifest, checking magic, version, checksum and every entry.
pub fn decode(buf: &[u8]) -> Result<Manifest, ManifestError> {
    if buf.len() < FIXED_LEN + 4 {
        return Err(err(
            0,
            format!("{} bytes is shorter than the smallest manifest", buf.len()),
        ));
    }
    let body_len = buf.len() - 4;
    let expected = u32::from_le_bytes(buf[body_len..].try_into().expect("4 bytes"));
    let got = crc32c::crc32c(&buf[..body_len]);
    if expected != got {
        return Err(ManifestError {
            offset: body_len as u64,
            reason: format!("checksum mismatch: expected {expected:#010x}, got {got:#010x}"),
            checksum: Some((expected, got)),
        });
    }
    if buf[0..8] != MANIFEST_MAGIC {
        return Err(err(0, "bad magic: not a quiver manifest"));
    }
    let u32_at = |at: usize| u32::from_le_bytes(buf[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
    let version = u32_at(8);
    if version != MANIFEST_VERSION {
        return Err(err(
            8,
            format!("unsupported manifest version {version} (this build reads {MANIFEST_VERSION})"),
        ));
    }
    let count = u32_at(12) as usize;
    // Each entry takes at least 2 + 1 + 8 bytes: bound the count before allocating.
    if count > (body_len - FIXED_LEN) / 11 {
        return Err(err(
            12,
            format!(
                "{count} entries cannot fit in {} bytes",
                body_len - FIXED_LEN
            ),
        ));
    }
    let mut m = Manifest {
        generation: u64_at(16),
        checkpoint_lsn: Lsn(u64_at(24)),
        files: Vec::with_capacity(count),
    };
    let mut seen = std::collections::HashSet::with_capacity(count);
    let mut off = FIXED_LEN;
    for i in 0..count {
        if body_len - off < 2 {
            return Err(err(off, format!("entry {i} truncated")));
        }
        let n = u16::from_le_bytes([buf[off], buf[off + 1]]) as usize;
        if body_len - off - 2 < n + 8 {
            return Err(err(
                off,
                format!("entry {i} of name length {n} runs past the end"),
            ));
        }
        let name = std::str::from_utf8(&buf[off + 2..off + 2 + n])
            .map_err(|_| err(off + 2, format!("entry {i}: name is not UTF-8")))?;
        if !valid_name(name) {
            return Err(err(
                off + 2,
                format!("entry {i}: invalid file name {name:?}"),
            ));
        }
        if !seen.insert(name) {
            return Err(err(
                off + 2,
                format!("entry {i}: duplicate file name {name:?}"),
            ));
        }
        let len = u64_at(off + 2 + n);
        m.files.push(FileEntry {
            name: name.to_string(),
            len,
        });
        off += 2 + n + 8;
    }
    if off != body_len {
        return Err(err(
            off,
            format!("{} trailing bytes after {count} entries", body_len - off),
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            generation: 7,
            checkpoint_lsn: Lsn(1234),
            files: vec![
                FileEntry {
                    name: "vectors-1.qvf".into(),
                    len: 4096,
                },
                FileEntry {
                    name: "ids-1.qvf".into(),
                    len: 64,
                },
            ],
        }
    }

    #[test]
    fn roundtrip() {
        let m = sample();
        assert_eq!(decode(&encode(&m)).unwrap(), m);
        assert_eq!(
            decode(&encode(&Manifest::default())).unwrap(),
            Manifest::default()
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let bytes = encode(&sample());
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut={cut}");
        }
        for bit in 0..bytes.len() * 8 {
            let mut b = bytes.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(decode(&b).is_err(), "bit={bit}");
        }
    }
}
