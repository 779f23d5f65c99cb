//! The `meta` file: settings, quantizer, posting table and version map, in one
//! checksummed blob written atomically (temp file, fsync, rename). Layout in
//! docs/FORMAT.md; the decoder checks every length and never panics.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::params::SpannParams;
use super::{PostingSlot, Result, SpannError};
use crate::distance::Metric;

const MAGIC: &[u8; 8] = b"QVSPMETA";
const VERSION: u32 = 1;
const HEADER: usize = 24;

/// The scalar settings of an index, stored as JSON inside `meta`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaInfo {
    pub params: SpannParams,
    pub dim: usize,
    pub metric: Metric,
    pub nonce: u64,
    /// Pages in `postings.dat` (header page included).
    pub file_pages: u64,
    /// Pages no posting uses any more (left by relocations and splits).
    pub dead_pages: u64,
}

/// Everything `meta` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub info: MetaInfo,
    pub sq8: Option<Vec<u8>>,
    pub postings: Vec<PostingSlot>,
    pub versions: Vec<u8>,
}

impl Meta {
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.info).expect("meta info serialises");
        let mut p =
            Vec::with_capacity(json.len() + self.postings.len() * 16 + self.versions.len() + 64);
        p.extend_from_slice(&(json.len() as u32).to_le_bytes());
        p.extend_from_slice(&json);
        let sq8 = self.sq8.as_deref().unwrap_or(&[]);
        p.extend_from_slice(&(sq8.len() as u32).to_le_bytes());
        p.extend_from_slice(sq8);
        p.extend_from_slice(&(self.postings.len() as u32).to_le_bytes());
        for s in &self.postings {
            p.extend_from_slice(&s.first_page.to_le_bytes());
            p.extend_from_slice(&s.capacity.to_le_bytes());
            p.extend_from_slice(&s.count.to_le_bytes());
        }
        p.extend_from_slice(&(self.versions.len() as u32).to_le_bytes());
        p.extend_from_slice(&self.versions);
        let mut out = Vec::with_capacity(HEADER + p.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
        out.extend_from_slice(&p);
        out
    }

    /// Decodes `bytes` read from `file`.
    pub fn from_bytes(bytes: &[u8], file: &Path) -> Result<Meta> {
        let bad = |off: usize, r: &str| SpannError::corrupt(file, off as u64, r);
        if bytes.len() < HEADER {
            return Err(bad(0, "meta truncated before its header ends"));
        }
        if &bytes[..8] != MAGIC {
            return Err(bad(0, "bad meta magic"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(8, &format!("unsupported meta version {version}")));
        }
        let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let expected = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        if (bytes.len() - HEADER) as u64 != len {
            return Err(bad(
                12,
                &format!("payload length {len}, file holds {}", bytes.len() - HEADER),
            ));
        }
        let p = &bytes[HEADER..];
        let got = crc32c::crc32c(p);
        if got != expected {
            return Err(SpannError::ChecksumMismatch {
                file: file.into(),
                offset: 20,
                expected,
                got,
            });
        }
        let mut c = Cursor { p, at: 0 };
        let json_len = c.u32()? as usize;
        let info: MetaInfo = serde_json::from_slice(c.take(json_len)?)
            .map_err(|e| bad(HEADER + 4, &format!("meta settings: {e}")))?;
        let sq8_len = c.u32()? as usize;
        let sq8 = c.take(sq8_len)?;
        let sq8 = (!sq8.is_empty()).then(|| sq8.to_vec());
        let n = c.u32()? as usize;
        if n.saturating_mul(16) > p.len() {
            return Err(bad(
                HEADER + c.at,
                &format!("posting count {n} exceeds the file"),
            ));
        }
        let mut postings = Vec::with_capacity(n);
        for _ in 0..n {
            let first_page = u64::from_le_bytes(c.take(8)?.try_into().expect("8 bytes"));
            let capacity = c.u32()?;
            let count = c.u32()?;
            if first_page.saturating_add(u64::from(capacity)) > info.file_pages {
                return Err(bad(
                    HEADER + c.at,
                    "posting extends past the end of postings.dat",
                ));
            }
            postings.push(PostingSlot {
                first_page,
                capacity,
                count,
            });
        }
        let nv = c.u32()? as usize;
        let versions = c.take(nv)?.to_vec();
        if c.at != p.len() {
            return Err(bad(HEADER + c.at, "trailing bytes after the version map"));
        }
        if info.dim == 0 || info.dim > 65_535 {
            return Err(bad(HEADER + 4, &format!("dimension {}", info.dim)));
        }
        info.params
            .validate()
            .map_err(|e| bad(HEADER + 4, &e.to_string()))?;
        Ok(Meta {
            info,
            sq8,
            postings,
            versions,
        })
    }

    /// Writes `dir/meta` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join("meta"), &self.to_bytes())
    }

    pub fn load(dir: &Path) -> Result<Meta> {
        let path = dir.join("meta");
        let bytes = std::fs::read(&path).map_err(SpannError::io(&path))?;
        Meta::from_bytes(&bytes, &path)
    }
}

/// Writes a file atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(SpannError::io(&tmp))?;
    f.write_all(bytes).map_err(SpannError::io(&tmp))?;
    f.sync_all().map_err(SpannError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(SpannError::io(path))?;
    if let Some(d) = path.parent() {
        std::fs::File::open(d)
            .and_then(|d| d.sync_all())
            .map_err(SpannError::io(d))?;
    }
    Ok(())
}

struct Cursor<'a> {
    p: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.p.len() - self.at < n {
            return Err(SpannError::corrupt(
                "meta",
                (HEADER + self.at) as u64,
                format!("truncated: {n} bytes expected"),
            ));
        }
        let s = &self.p[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}
