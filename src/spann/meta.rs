//! The `meta.<G>` file of generation G: settings, quantizer, posting table,
//! version map and free list, in one checksummed blob written atomically
//! (`quiver_storage::write_atomic`: temp file, fsync, rename, fsync the
//! directory). Layout in
//! docs/FORMAT.md; the decoder checks every length and never panics.

use std::path::Path;

use quiver_storage::Backend;
use serde::{Deserialize, Serialize};

use super::alloc::{Extent, FreeExtent};
use super::params::SpannParams;
use super::{PostingSlot, Result, SpannError};
use crate::distance::Metric;

const MAGIC: &[u8; 8] = b"QVSPMETA";
/// Format version of `meta` (2: generations, u32 versions, free list).
pub const VERSION: u32 = 2;
const HEADER: usize = 24;
const SLOT_BYTES: usize = 20;
const FREE_BYTES: usize = 20;

/// The scalar settings of an index, stored as JSON inside `meta`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct MetaInfo {
    pub params: SpannParams,
    pub dim: usize,
    pub metric: Metric,
    pub nonce: u64,
    /// The generation this file describes.
    pub generation: u64,
    /// Pages of `postings.dat` in use (header page included).
    pub file_pages: u64,
}

/// Everything `meta.<G>` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub info: MetaInfo,
    pub sq8: Option<Vec<u8>>,
    /// Per head (node of the head graph); an empty slot for a deleted head.
    pub postings: Vec<PostingSlot>,
    /// Per vector id: bit 31 deleted, bits 0..=29 version (bit 30 zero).
    pub versions: Vec<u32>,
    /// Free page runs and the generation from which each is reusable.
    pub free: Vec<FreeExtent>,
}

impl Meta {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(&self.info)
            .map_err(|e| SpannError::param("meta", format!("meta settings: {e}")))?;
        let mut p = Vec::with_capacity(
            json.len()
                + self.postings.len() * SLOT_BYTES
                + self.versions.len() * 4
                + self.free.len() * FREE_BYTES
                + 64,
        );
        let len32 = |n: usize, what: &str| {
            u32::try_from(n)
                .map(u32::to_le_bytes)
                .map_err(|_| SpannError::param("meta", format!("too many {what}: {n}")))
        };
        p.extend_from_slice(&len32(json.len(), "settings bytes")?);
        p.extend_from_slice(&json);
        let sq8 = self.sq8.as_deref().unwrap_or(&[]);
        p.extend_from_slice(&len32(sq8.len(), "quantizer bytes")?);
        p.extend_from_slice(sq8);
        p.extend_from_slice(&len32(self.postings.len(), "postings")?);
        for s in &self.postings {
            p.extend_from_slice(&s.first_page.to_le_bytes());
            p.extend_from_slice(&s.capacity.to_le_bytes());
            p.extend_from_slice(&s.count.to_le_bytes());
            p.extend_from_slice(&s.bytes.to_le_bytes());
        }
        p.extend_from_slice(&len32(self.versions.len(), "ids")?);
        for v in &self.versions {
            p.extend_from_slice(&v.to_le_bytes());
        }
        p.extend_from_slice(&len32(self.free.len(), "free extents")?);
        for f in &self.free {
            p.extend_from_slice(&f.extent.first_page.to_le_bytes());
            p.extend_from_slice(&f.extent.pages.to_le_bytes());
            p.extend_from_slice(&f.tag.to_le_bytes());
        }
        let mut out = Vec::with_capacity(HEADER + p.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(p.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&p).to_le_bytes());
        out.extend_from_slice(&p);
        Ok(out)
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
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != VERSION {
            return Err(bad(
                8,
                &format!("unsupported meta version {version} (this build reads {VERSION})"),
            ));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let len = u64::from_le_bytes(len);
        let expected = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
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
        let mut c = Cursor { p, at: 0, file };
        let json_len = c.u32()? as usize;
        let info: MetaInfo = serde_json::from_slice(c.take(json_len)?)
            .map_err(|e| bad(HEADER + 4, &format!("meta settings: {e}")))?;
        if info.dim == 0 || info.dim > crate::limits::MAX_DIMENSION {
            return Err(bad(HEADER + 4, &format!("dimension {}", info.dim)));
        }
        info.params
            .validate()
            .map_err(|e| bad(HEADER + 4, &e.to_string()))?;
        let sq8_len = c.u32()? as usize;
        let sq8 = c.take(sq8_len)?;
        let sq8 = (!sq8.is_empty()).then(|| sq8.to_vec());
        let n = c.count(SLOT_BYTES, "posting")?;
        let mut postings = Vec::with_capacity(n);
        for _ in 0..n {
            let at = HEADER + c.at;
            let s = PostingSlot {
                first_page: c.u64()?,
                capacity: c.u32()?,
                count: c.u32()?,
                bytes: c.u32()?,
            };
            if s.first_page.saturating_add(u64::from(s.capacity)) > info.file_pages
                || u64::from(s.bytes) > u64::from(s.capacity) * super::posting::PAGE as u64
                || (s.capacity > 0 && s.first_page == 0)
                || (s.bytes == 0) != (s.capacity == 0)
            {
                return Err(bad(at, &format!("posting slot {s:?} is inconsistent")));
            }
            postings.push(s);
        }
        let nv = c.count(4, "id")?;
        let mut versions = Vec::with_capacity(nv);
        for _ in 0..nv {
            versions.push(c.u32()?);
        }
        let nf = c.count(FREE_BYTES, "free extent")?;
        let mut free = Vec::with_capacity(nf);
        for _ in 0..nf {
            let at = HEADER + c.at;
            let f = FreeExtent {
                extent: Extent {
                    first_page: c.u64()?,
                    pages: c.u32()?,
                },
                tag: c.u64()?,
            };
            if f.extent.first_page == 0
                || f.extent.pages == 0
                || f.extent.end() > info.file_pages
                || f.tag > info.generation + 1
            {
                return Err(bad(at, &format!("free extent {f:?} is inconsistent")));
            }
            free.push(f);
        }
        if c.at != p.len() {
            return Err(bad(HEADER + c.at, "trailing bytes after the free list"));
        }
        Ok(Meta {
            info,
            sq8,
            postings,
            versions,
            free,
        })
    }

    /// Writes `path` atomically through `backend` (temp file, fsync,
    /// rename, fsync the directory).
    pub fn save(&self, backend: &dyn Backend, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let (dir, name) = split_path(path)?;
        quiver_storage::write_atomic(backend, dir, name, &[&bytes]).map_err(|e| SpannError::Io {
            file: path.to_path_buf(),
            source: e.into_io(),
        })
    }

    pub fn load(backend: &dyn Backend, path: &Path) -> Result<Meta> {
        let bytes = backend.read(path).map_err(SpannError::io(path))?;
        Meta::from_bytes(&bytes, path)
    }
}

/// The directory and file name of `path`.
fn split_path(path: &Path) -> Result<(&Path, &str)> {
    let name = path.file_name().and_then(|n| n.to_str());
    match (path.parent(), name) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(SpannError::param(
            "path",
            format!("{} is not a file path", path.display()),
        )),
    }
}

struct Cursor<'a> {
    p: &'a [u8],
    at: usize,
    file: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.p.len() - self.at < n {
            return Err(SpannError::corrupt(
                self.file,
                (HEADER + self.at) as u64,
                format!("truncated: {n} bytes expected"),
            ));
        }
        let s = &self.p[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A `u32` count of records of `size` bytes, checked against what is left.
    fn count(&mut self, size: usize, what: &str) -> Result<usize> {
        let at = self.at;
        let n = self.u32()? as usize;
        if n.saturating_mul(size) > self.p.len() - self.at {
            return Err(SpannError::corrupt(
                self.file,
                (HEADER + at) as u64,
                format!("{what} count {n} exceeds the file"),
            ));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            info: MetaInfo {
                params: SpannParams::default(),
                dim: 4,
                metric: Metric::L2,
                nonce: 7,
                generation: 3,
                file_pages: 20,
            },
            sq8: None,
            postings: vec![
                PostingSlot {
                    first_page: 1,
                    capacity: 2,
                    count: 5,
                    bytes: 300,
                },
                PostingSlot::default(),
            ],
            versions: vec![0, 5, 1 | super::super::versions::DELETED],
            free: vec![FreeExtent {
                extent: Extent {
                    first_page: 3,
                    pages: 4,
                },
                tag: 2,
            }],
        }
    }

    #[test]
    fn round_trips_and_rejects_every_flip() {
        let m = sample();
        let b = m.to_bytes().unwrap();
        assert_eq!(Meta::from_bytes(&b, Path::new("m")).unwrap(), m);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x21;
            assert!(Meta::from_bytes(&c, Path::new("m")).is_err(), "byte {i}");
        }
        for cut in 0..b.len() {
            assert!(Meta::from_bytes(&b[..cut], Path::new("m")).is_err());
        }
    }
}
