//! Little-endian primitives shared by the TEXMEX and big-ann formats: a
//! buffered reader that knows its file's length and position, element
//! decoders (f32, u8, i8, i32), and a buffered writer that names its file in
//! every error.
//!
//! Values are decoded straight from a bounded scratch buffer into the caller's
//! output vector, so a multi-GB file is held in memory once.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::error::{DatasetError, Result};

/// Bytes decoded per chunk when reading a long run of values.
const CHUNK_BYTES: usize = 1 << 20;

/// A scalar type stored in a dataset file, and what it decodes to.
pub(crate) trait Element {
    /// Size in bytes on disk.
    const SIZE: usize;
    /// The in-memory type.
    type Out: Copy;
    /// Decodes `bytes` (a multiple of `SIZE`) and appends the values to `out`.
    fn decode(bytes: &[u8], out: &mut Vec<Self::Out>);
}

/// Little-endian f32, decoded to f32.
pub(crate) struct F32;
/// Unsigned byte, decoded to f32.
pub(crate) struct U8;
/// Signed byte, decoded to f32.
pub(crate) struct I8;
/// Little-endian i32, decoded to i32.
pub(crate) struct I32;

impl Element for F32 {
    const SIZE: usize = 4;
    type Out = f32;
    fn decode(bytes: &[u8], out: &mut Vec<f32>) {
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
}

impl Element for U8 {
    const SIZE: usize = 1;
    type Out = f32;
    fn decode(bytes: &[u8], out: &mut Vec<f32>) {
        out.extend(bytes.iter().map(|&b| f32::from(b)));
    }
}

impl Element for I8 {
    const SIZE: usize = 1;
    type Out = f32;
    fn decode(bytes: &[u8], out: &mut Vec<f32>) {
        out.extend(bytes.iter().map(|&b| f32::from(b as i8)));
    }
}

impl Element for I32 {
    const SIZE: usize = 4;
    type Out = i32;
    fn decode(bytes: &[u8], out: &mut Vec<i32>) {
        out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
}

/// A buffered file reader that tracks its position and the file's length.
pub(crate) struct Source {
    path: PathBuf,
    reader: BufReader<File>,
    len: u64,
    pos: u64,
    scratch: Vec<u8>,
}

impl Source {
    /// Opens `path` for reading.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DatasetError::io(path, e))?;
        let len = file
            .metadata()
            .map_err(|e| DatasetError::io(path, e))?
            .len();
        Ok(Source {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 16, file),
            len,
            pos: 0,
            scratch: Vec::new(),
        })
    }

    /// The file's path, for error messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Current byte offset.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes left after the current position.
    pub(crate) fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    /// Moves to byte `offset` (which the caller has checked is in the file).
    pub(crate) fn seek_to(&mut self, offset: u64) -> Result<()> {
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(|e| DatasetError::io(&self.path, e))?;
        self.pos = offset;
        Ok(())
    }

    /// Reads exactly `buf.len()` bytes.
    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.reader
            .read_exact(buf)
            .map_err(|e| DatasetError::io(&self.path, e))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Reads one little-endian u32 (the caller has checked 4 bytes remain).
    pub(crate) fn read_u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads one little-endian i32 (the caller has checked 4 bytes remain).
    pub(crate) fn read_i32(&mut self) -> Result<i32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(i32::from_le_bytes(b))
    }

    /// Reads `count` values of `E` and appends them to `out`. The caller has
    /// checked that `count * E::SIZE` bytes remain.
    pub(crate) fn read_values<E: Element>(
        &mut self,
        count: usize,
        out: &mut Vec<E::Out>,
    ) -> Result<()> {
        let per_chunk = (CHUNK_BYTES / E::SIZE).max(1);
        let mut left = count;
        while left > 0 {
            let n = left.min(per_chunk);
            let bytes = n * E::SIZE;
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.resize(bytes, 0);
            let r = self.read_exact(&mut scratch);
            if r.is_ok() {
                E::decode(&scratch, out);
            }
            self.scratch = scratch;
            r?;
            left -= n;
        }
        Ok(())
    }
}

/// A buffered file writer whose errors name the file.
pub(crate) struct Sink {
    path: PathBuf,
    writer: BufWriter<File>,
}

impl Sink {
    /// Creates (or truncates) `path`.
    pub(crate) fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).map_err(|e| DatasetError::io(path, e))?;
        Ok(Sink {
            path: path.to_path_buf(),
            writer: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// Writes raw bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.writer
            .write_all(bytes)
            .map_err(|e| DatasetError::io(&self.path, e))
    }

    /// Writes f32 values little-endian.
    pub(crate) fn write_f32s(&mut self, values: &[f32]) -> Result<()> {
        for v in values {
            self.write(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Writes i32 values little-endian.
    pub(crate) fn write_i32s(&mut self, values: impl IntoIterator<Item = i32>) -> Result<()> {
        for v in values {
            self.write(&v.to_le_bytes())?;
        }
        Ok(())
    }

    /// Flushes buffered data to the file.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.writer
            .flush()
            .map_err(|e| DatasetError::io(&self.path, e))
    }
}
