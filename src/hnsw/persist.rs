//! Saving and loading an index as one flat, checksummed file (layout in
//! docs/FORMAT.md), through a `quiver_storage` backend (the real file system
//! unless one is given); saving publishes the file atomically
//! (`quiver_storage::AtomicFile`). Loading validates every count, id and
//! level, so a corrupt or truncated file is an error, never a panic.
//!
//! Version 2 (written) records the vector encoding in the header and, for
//! SQ8, the quantiser's parameters before the codes; version 1 (f32 only) is
//! still read.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use quiver_storage::{AtomicFile, Backend, FsBackend};
use roaring::RoaringBitmap;

use super::build::MAX_LEVEL;
use super::codes::{VectorCodec, VectorEncoding};
use super::{Entry, Hnsw, HnswError, HnswParams, NodeId, Result};
use crate::distance::Metric;
use crate::quant::Sq8Quantizer;

const MAGIC: &[u8; 8] = b"QVRHNSW\0";
const END_MAGIC: &[u8; 4] = b"QEND";
const VERSION: u32 = 2;
/// The f32-only layout without encoding or quantiser fields (still read).
const VERSION_F32_ONLY: u32 = 1;
const HEADER_LEN: usize = 64;
const NO_ENTRY: u32 = u32::MAX;

/// Streams bytes to a writer while accumulating their CRC32C.
struct CrcWriter<W: Write> {
    inner: W,
    crc: u32,
}

impl<W: Write> CrcWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.inner.write_all(bytes)
    }
}

impl Hnsw {
    /// Writes the index to `path` atomically (temp file, fsync, rename,
    /// fsync the directory) on the real file system. Nodes inserted
    /// concurrently with the save may be left out.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.save_to(&FsBackend, path)
    }

    /// [`Hnsw::save`] through `backend`.
    pub fn save_to(&self, backend: &dyn Backend, path: &Path) -> Result<()> {
        self.save_with_deleted_to(backend, path, &self.deleted())
    }

    /// Like [`Hnsw::save`], recording `deleted` as the deleted set instead of
    /// the current one (a snapshot taken earlier, e.g. at a checkpoint).
    pub fn save_with_deleted(&self, path: &Path, deleted: &RoaringBitmap) -> Result<()> {
        self.save_with_deleted_to(&FsBackend, path, deleted)
    }

    /// [`Hnsw::save_with_deleted`] through `backend`.
    pub fn save_with_deleted_to(
        &self,
        backend: &dyn Backend,
        path: &Path,
        deleted: &RoaringBitmap,
    ) -> Result<()> {
        let io = |source| HnswError::Io {
            file: path.to_path_buf(),
            source,
        };
        let storage = |e: quiver_storage::Error| io(e.into_io());
        let mut file = AtomicFile::start(backend, path).map_err(storage)?;
        let mut w = CrcWriter {
            inner: file.writer(),
            crc: 0,
        };
        self.write_to(&mut w, deleted).map_err(io)?;
        let crc = w.crc;
        w.inner.write_all(&crc.to_le_bytes()).map_err(io)?;
        w.inner.write_all(END_MAGIC).map_err(io)?;
        file.commit().map_err(storage)
    }

    /// The index file's bytes (as [`Hnsw::save_with_deleted`] writes them),
    /// in memory: e.g. to copy an index with [`Hnsw::from_bytes`].
    pub fn to_bytes_with_deleted(&self, deleted: &RoaringBitmap) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = CrcWriter {
            inner: &mut out,
            crc: 0,
        };
        // Writing into a Vec cannot fail.
        let _ = self.write_to(&mut w, deleted);
        let crc = w.crc;
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(END_MAGIC);
        out
    }

    fn write_to<W: Write>(
        &self,
        w: &mut CrcWriter<W>,
        deleted: &RoaringBitmap,
    ) -> std::io::Result<()> {
        let count = self.len();
        let entry = (*self.entry.read()).filter(|e| (e.node as usize) < count);
        let deleted: RoaringBitmap = deleted.iter().filter(|&d| (d as usize) < count).collect();
        let mut del_bytes = Vec::with_capacity(deleted.serialized_size());
        deleted.serialize_into(&mut del_bytes)?;
        let quantizer = self
            .codes
            .sq8_quantizer()
            .map_or_else(Vec::new, Sq8Quantizer::to_bytes);

        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12] = self.metric.code();
        h[13] = self.codes.encoding().code();
        h[16..20].copy_from_slice(&(self.dim as u32).to_le_bytes());
        h[20..24].copy_from_slice(&(self.params.m as u32).to_le_bytes());
        h[24..28].copy_from_slice(&(self.params.ef_construction as u32).to_le_bytes());
        h[28..32].copy_from_slice(&(count as u32).to_le_bytes());
        h[32..36].copy_from_slice(&entry.map_or(NO_ENTRY, |e| e.node).to_le_bytes());
        h[36..40].copy_from_slice(&(entry.map_or(0, |e| e.level) as u32).to_le_bytes());
        h[40..48].copy_from_slice(&self.params.seed.to_le_bytes());
        h[48..52].copy_from_slice(&(del_bytes.len() as u32).to_le_bytes());
        h[52..56].copy_from_slice(&(quantizer.len() as u32).to_le_bytes());
        w.put(&h)?;

        let levels: Vec<u8> = (0..count as u32)
            .map(|i| self.links.level(i) as u8)
            .collect();
        w.put(&levels)?;
        w.put(&quantizer)?;
        for i in 0..count as u32 {
            w.put(self.codes.raw(i))?;
        }
        let mut list = Vec::new();
        let mut write_list = |w: &mut CrcWriter<W>, id: u32, level: usize, max: usize| {
            self.links.read(id, level, &mut list);
            list.retain(|&n| (n as usize) < count);
            let mut slots = vec![0u32; 1 + max];
            slots[0] = list.len() as u32;
            slots[1..1 + list.len()].copy_from_slice(&list);
            w.put(bytemuck::cast_slice(&slots))
        };
        for i in 0..count as u32 {
            write_list(w, i, 0, self.links.max_degree(0))?;
        }
        for i in 0..count as u32 {
            for l in 1..=levels[i as usize] as usize {
                write_list(w, i, l, self.links.max_degree(l))?;
            }
        }
        w.put(&del_bytes)
    }

    /// Loads an index written by [`Hnsw::save`], with `extra` spare capacity.
    pub fn load(path: &Path, extra: usize) -> Result<Self> {
        Self::load_from(&FsBackend, path, extra)
    }

    /// [`Hnsw::load`] through `backend`.
    pub fn load_from(backend: &dyn Backend, path: &Path, extra: usize) -> Result<Self> {
        let bytes = backend.read(path).map_err(|source| HnswError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path, extra)
    }

    /// Decodes an index file held in memory; `path` is only used in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path, extra: usize) -> Result<Self> {
        let corrupt = |offset: usize, reason: String| HnswError::Corrupt {
            file: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        if bytes.len() < HEADER_LEN + 8 {
            return Err(corrupt(
                0,
                format!(
                    "file is {} bytes, shorter than header and trailer",
                    bytes.len()
                ),
            ));
        }
        if &bytes[0..8] != MAGIC {
            return Err(corrupt(0, "bad magic: not a quiver HNSW file".into()));
        }
        let body_end = bytes.len() - 8;
        if &bytes[body_end + 4..] != END_MAGIC {
            return Err(corrupt(
                body_end + 4,
                "missing end marker: file truncated?".into(),
            ));
        }
        let stored_crc = u32_at(bytes, body_end);
        let crc = crc32c::crc32c(&bytes[..body_end]);
        if crc != stored_crc {
            return Err(corrupt(
                body_end,
                format!("checksum mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"),
            ));
        }
        let version = u32_at(bytes, 8);
        if version != VERSION && version != VERSION_F32_ONLY {
            return Err(corrupt(
                8,
                format!(
                    "unsupported version {version} (this build reads {VERSION_F32_ONLY} and {VERSION})"
                ),
            ));
        }
        let (encoding, quant_len) = if version == VERSION_F32_ONLY {
            (VectorEncoding::F32, 0)
        } else {
            let e = VectorEncoding::from_code(bytes[13])
                .ok_or_else(|| corrupt(13, format!("unknown vector encoding {}", bytes[13])))?;
            if let Some(i) = (14..16).chain(56..64).find(|&i| bytes[i] != 0) {
                return Err(corrupt(i, "reserved header byte is not zero".into()));
            }
            (e, u32_at(bytes, 52) as usize)
        };
        if (encoding == VectorEncoding::Sq8) != (quant_len > 0) {
            return Err(corrupt(
                52,
                format!("{encoding} index with a quantizer section of {quant_len} bytes"),
            ));
        }
        let metric = Metric::from_code(bytes[12])
            .ok_or_else(|| corrupt(12, format!("unknown metric code {}", bytes[12])))?;
        let dim = u32_at(bytes, 16) as usize;
        let params = HnswParams {
            m: u32_at(bytes, 20) as usize,
            ef_construction: u32_at(bytes, 24) as usize,
            seed: u64::from_le_bytes(bytes[40..48].try_into().unwrap_or_default()),
        };
        let count = u32_at(bytes, 28) as usize;
        let entry_node = u32_at(bytes, 32);
        let entry_level = u32_at(bytes, 36) as usize;
        let del_len = u32_at(bytes, 48) as usize;
        let (m, m0) = (params.m, 2 * params.m);

        let mut cur = Cursor {
            bytes: &bytes[..body_end],
            pos: HEADER_LEN,
        };
        let levels = cur
            .take(count, "node levels")
            .map_err(|(o, r)| corrupt(o, r))?
            .to_vec();
        if let Some(i) = levels.iter().position(|&l| l as usize > MAX_LEVEL) {
            return Err(corrupt(
                HEADER_LEN + i,
                format!("node {i} has level {} > {MAX_LEVEL}", levels[i]),
            ));
        }
        let quant_off = cur.pos;
        let quant_raw = cur
            .take(quant_len, "SQ8 quantizer")
            .map_err(|(o, r)| corrupt(o, r))?;
        let codec = match encoding {
            VectorEncoding::F32 => VectorCodec::F32,
            VectorEncoding::F16 => VectorCodec::F16,
            VectorEncoding::Sq8 => VectorCodec::Sq8(
                Sq8Quantizer::from_bytes(quant_raw)
                    .map_err(|e| corrupt(quant_off, format!("SQ8 quantizer: {e}")))?,
            ),
        };
        let index = Hnsw::with_codec(dim, metric, params, count.saturating_add(extra), codec)
            .map_err(|e| corrupt(16, format!("header: {e}")))?;
        // `with_codec` checked 1 <= dim <= 65535: no overflow.
        let code_bytes = encoding.code_bytes(dim);
        for i in 0..count {
            let off = cur.pos;
            let raw = cur
                .take(code_bytes, "vectors")
                .map_err(|(o, r)| corrupt(o, r))?;
            let finite = match encoding {
                VectorEncoding::F32 => raw
                    .chunks_exact(4)
                    .all(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite()),
                VectorEncoding::F16 => raw
                    .chunks_exact(2)
                    .all(|b| half::f16::from_le_bytes([b[0], b[1]]).is_finite()),
                VectorEncoding::Sq8 => true,
            };
            if !finite {
                return Err(corrupt(
                    off,
                    format!("vector of node {i} has a non-finite value"),
                ));
            }
            index.codes.write_raw_unpublished(i as u32, raw);
        }
        for (i, &l) in levels.iter().enumerate() {
            index.links.init_node(i as u32, l as usize);
            index.links.mark_ready(i as u32, 0);
        }
        let mut ids = Vec::with_capacity(m0);
        let mut read_list =
            |cur: &mut Cursor, node: usize, level: usize, max: usize| -> Result<()> {
                let off = cur.pos;
                let raw = cur
                    .take(4 * (1 + max), "links")
                    .map_err(|(o, r)| corrupt(o, r))?;
                let n = u32_at(raw, 0) as usize;
                if n > max {
                    return Err(corrupt(
                        off,
                        format!("node {node} layer {level}: {n} neighbours > maximum {max}"),
                    ));
                }
                ids.clear();
                for j in 0..n {
                    let nb = u32_at(raw, 4 * (1 + j));
                    if nb as usize >= count || (levels[nb as usize] as usize) < level {
                        return Err(corrupt(
                            off,
                            format!("node {node} layer {level}: invalid neighbour {nb}"),
                        ));
                    }
                    ids.push(nb);
                }
                let g = index.links.lock(node as u32);
                index.links.write(&g, node as u32, level, &ids);
                Ok(())
            };
        for i in 0..count {
            read_list(&mut cur, i, 0, m0)?;
        }
        for (i, &top) in levels.iter().enumerate() {
            for l in 1..=top as usize {
                read_list(&mut cur, i, l, m)?;
            }
        }
        let del_off = cur.pos;
        let del_raw = cur
            .take(del_len, "deleted set")
            .map_err(|(o, r)| corrupt(o, r))?;
        let deleted = RoaringBitmap::deserialize_from(del_raw)
            .map_err(|e| corrupt(del_off, format!("deleted set: {e}")))?;
        if cur.pos != body_end {
            return Err(corrupt(
                cur.pos,
                format!(
                    "{} unexpected bytes after the deleted set",
                    body_end - cur.pos
                ),
            ));
        }
        index.len.store(count, Ordering::Release);
        for d in &deleted {
            if d as usize >= count {
                return Err(corrupt(
                    del_off,
                    format!("deleted id {d} >= node count {count}"),
                ));
            }
            index.delete(NodeId(d))?;
        }
        if entry_node != NO_ENTRY {
            let max_level = levels.iter().copied().max().unwrap_or(0) as usize;
            if entry_node as usize >= count
                || levels[entry_node as usize] as usize != entry_level
                || entry_level != max_level
            {
                return Err(corrupt(
                    32,
                    format!("entry point {entry_node} at level {entry_level} is inconsistent"),
                ));
            }
            *index.entry.write() = Some(Entry {
                node: entry_node,
                level: entry_level,
            });
        } else if count > 0 {
            return Err(corrupt(32, format!("no entry point but {count} nodes")));
        }
        Ok(index)
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0)
}

/// Bounds-checked reader over the file body.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], (usize, String)> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                (
                    self.pos,
                    format!(
                        "{what}: need {n} bytes, {} left",
                        self.bytes.len() - self.pos
                    ),
                )
            })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}
