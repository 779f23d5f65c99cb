//! Page-aligned files (`postings.dat`, `vectors.f32`): a checksummed header
//! page, positional reads into 4 KiB-aligned buffers (so `O_DIRECT` works
//! when [`IoMode::Direct`] bypasses the page cache) and positional writes,
//! all through a `quiver_storage` backend (one dynamic call per read, into
//! a reused per-thread buffer).

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use quiver_storage::{Backend, FileOptions, FileWriter, RandomFile};

use super::posting::PAGE;
use super::{Result, SpannError};
/// One 4 KiB page, aligned for `O_DIRECT`.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(4096))]
pub struct Page(pub [u8; PAGE]);

/// How reads reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// Through the page cache.
    #[default]
    Buffered,
    /// `O_DIRECT`: every read goes to the device (honest SSD cost).
    Direct,
}

/// What the header page of a data file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    pub magic: [u8; 8],
    pub dim: u32,
    pub encoding: u8,
    pub metric: u8,
    /// Random per build, also in `meta`: files of different builds never mix.
    pub nonce: u64,
}

/// On-disk format version of the data files (2: chunked postings, u32 versions).
pub const FILE_VERSION: u32 = 2;

impl FileHeader {
    fn to_page(self) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        p[..8].copy_from_slice(&self.magic);
        p[8..12].copy_from_slice(&FILE_VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&self.dim.to_le_bytes());
        p[16] = self.encoding;
        p[17] = self.metric;
        p[20..28].copy_from_slice(&self.nonce.to_le_bytes());
        let crc = crc32c::crc32c(&p[..28]);
        p[28..32].copy_from_slice(&crc.to_le_bytes());
        p
    }

    /// Parses and checks a header page against what `meta` expects.
    pub fn check(p: &[u8], expected: FileHeader, file: &Path) -> Result<()> {
        if p.len() < 32 {
            return Err(SpannError::corrupt(file, 0, "header page truncated"));
        }
        if p[..8] != expected.magic {
            return Err(SpannError::corrupt(file, 0, "bad magic"));
        }
        let crc = crc32c::crc32c(&p[..28]);
        let stored = u32::from_le_bytes([p[28], p[29], p[30], p[31]]);
        if crc != stored {
            return Err(SpannError::ChecksumMismatch {
                file: file.into(),
                offset: 0,
                expected: stored,
                got: crc,
            });
        }
        let version = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
        if version != FILE_VERSION {
            return Err(SpannError::corrupt(
                file,
                8,
                format!(
                    "unsupported version {version} (this build reads {FILE_VERSION}; rebuild the index)"
                ),
            ));
        }
        let got = FileHeader {
            magic: expected.magic,
            dim: u32::from_le_bytes([p[12], p[13], p[14], p[15]]),
            encoding: p[16],
            metric: p[17],
            nonce: u64::from_le_bytes([p[20], p[21], p[22], p[23], p[24], p[25], p[26], p[27]]),
        };
        if got != expected {
            return Err(SpannError::corrupt(
                file,
                12,
                format!("header {got:?} does not match meta {expected:?}"),
            ));
        }
        Ok(())
    }
}

thread_local! {
    static BUF: RefCell<Vec<Page>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's aligned buffer of at least `pages` pages.
fn with_buf<R>(pages: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    BUF.with(|b| {
        let mut buf = b.borrow_mut();
        if buf.len() < pages {
            buf.resize(pages, Page([0; PAGE]));
        }
        f(bytemuck::cast_slice_mut(&mut buf[..pages]))
    })
}

/// A page-aligned data file open for positional reads and writes.
pub struct PageFile {
    path: PathBuf,
    read: Box<dyn RandomFile>,
    write: Box<dyn RandomFile>,
    mode: IoMode,
    /// Cached reads can hit (buffered mode, `RWF_NOWAIT` available at open).
    nowait: bool,
}

impl PageFile {
    /// Creates the file with its header page (truncating any old one) and
    /// returns a writer appending after the header (buffered by `buffer`
    /// bytes). Nothing is durable until [`FileWriter::finish`].
    pub fn writer(
        backend: &dyn Backend,
        path: &Path,
        header: FileHeader,
        buffer: usize,
    ) -> Result<FileWriter> {
        let f = backend.create(path).map_err(SpannError::io(path))?;
        let mut w = FileWriter::new(f, buffer);
        w.put_unbuffered(&header.to_page())
            .map_err(SpannError::io(path))?;
        Ok(w)
    }

    /// Creates the file with its header page (truncating any old one), durably.
    pub fn write_new(backend: &dyn Backend, path: &Path, header: FileHeader) -> Result<()> {
        Self::writer(backend, path, header, PAGE)?
            .finish()
            .map_err(SpannError::io(path))
    }

    /// Opens an existing file and checks its header.
    pub fn open(
        backend: &dyn Backend,
        path: &Path,
        header: FileHeader,
        mode: IoMode,
    ) -> Result<Self> {
        let write = backend
            .open_file(path, FileOptions::read_write())
            .map_err(SpannError::io(path))?;
        let read = backend
            .open_file(
                path,
                FileOptions::read_only().direct(mode == IoMode::Direct),
            )
            .map_err(SpannError::io(path))?;
        let nowait = mode == IoMode::Buffered && read.nowait_supported();
        let f = Self {
            path: path.to_path_buf(),
            read,
            write,
            mode,
            nowait,
        };
        f.read_pages(0, 1, |p| FileHeader::check(p, header, path))??;
        Ok(f)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> IoMode {
        self.mode
    }

    /// Reads `pages` pages from page `first` into this thread's aligned
    /// buffer and hands them to `f`. A short file is a `Corrupt` error.
    pub fn read_pages<R>(&self, first: u64, pages: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        with_buf(pages, |bytes| {
            let offset = first * PAGE as u64;
            self.read.read_at(bytes, offset).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    SpannError::corrupt(
                        &self.path,
                        offset,
                        format!("file truncated: {pages} pages expected here"),
                    )
                } else {
                    SpannError::Io {
                        file: self.path.clone(),
                        source: e,
                    }
                }
            })?;
            Ok(f(bytes))
        })
    }

    /// Reads bytes `[offset, offset + len)` (any alignment) and hands them to `f`.
    pub fn read_bytes<R>(&self, offset: u64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let first = offset / PAGE as u64;
        let skip = (offset % PAGE as u64) as usize;
        let pages = (skip + len).div_ceil(PAGE);
        self.read_pages(first, pages, |b| f(&b[skip..skip + len]))
    }

    /// [`PageFile::read_pages`] if every page is in the page cache, without
    /// waiting for the device (`preadv2` with `RWF_NOWAIT`); `None` when one
    /// is not, in `Direct` mode, or where the kernel cannot tell: the caller
    /// then reads with [`PageFile::read_pages`], typically on an I/O thread.
    /// Errors are left to that read too, so this never fails.
    pub fn read_pages_cached<R>(
        &self,
        first: u64,
        pages: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        if !self.nowait {
            return None;
        }
        with_buf(pages, |bytes| {
            // A short read (part cached, or the end of the file) is a miss:
            // the blocking read reports truncation properly.
            let got = self.read.read_at_nowait(bytes, first * PAGE as u64);
            (matches!(got, Ok(Some(n)) if n == bytes.len())).then(|| f(bytes))
        })
    }

    /// [`PageFile::read_bytes`] from the page cache only (see
    /// [`PageFile::read_pages_cached`]).
    pub fn read_bytes_cached<R>(
        &self,
        offset: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let first = offset / PAGE as u64;
        let skip = (offset % PAGE as u64) as usize;
        let pages = (skip + len).div_ceil(PAGE);
        self.read_pages_cached(first, pages, |b| f(&b[skip..skip + len]))
    }

    /// Writes `bytes` at page `first` (through the page cache).
    pub fn write_pages(&self, first: u64, bytes: &[u8]) -> Result<()> {
        self.write_bytes(first * PAGE as u64, bytes)
    }

    /// Writes `bytes` at `offset` (through the page cache).
    pub fn write_bytes(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.write
            .write_at(bytes, offset)
            .map_err(SpannError::io(&self.path))
    }

    /// Flushes written data to the device.
    pub fn sync(&self) -> Result<()> {
        self.write.sync().map_err(SpannError::io(&self.path))
    }

    /// Bytes in the file.
    pub fn byte_len(&self) -> Result<u64> {
        self.write.len().map_err(SpannError::io(&self.path))
    }

    /// Sets the file's length (new bytes read as zeros).
    pub fn set_len(&self, bytes: u64) -> Result<()> {
        self.write
            .set_len(bytes)
            .map_err(SpannError::io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_storage::FsBackend;

    fn header() -> FileHeader {
        FileHeader {
            magic: *b"QVTEST01",
            dim: 4,
            encoding: 0,
            metric: 0,
            nonce: 42,
        }
    }

    #[test]
    fn cached_reads_return_what_blocking_reads_do_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        PageFile::write_new(&FsBackend, &path, header()).unwrap();
        let f = PageFile::open(&FsBackend, &path, header(), IoMode::Buffered).unwrap();
        let data: Vec<u8> = (0..3 * PAGE).map(|i| (i * 7 % 251) as u8).collect();
        f.write_pages(1, &data).unwrap();
        // Just written through the page cache, so where the kernel and the
        // filesystem support RWF_NOWAIT the cached read hits; it never
        // returns anything but the file's bytes.
        let blocking = f
            .read_bytes(PAGE as u64 + 100, 5000, <[u8]>::to_vec)
            .unwrap();
        assert_eq!(blocking, data[100..5100]);
        let cached = f.read_bytes_cached(PAGE as u64 + 100, 5000, <[u8]>::to_vec);
        if let Some(c) = &cached {
            assert_eq!(c[..], data[100..5100]);
        }
        if !cfg!(target_os = "linux") {
            assert!(cached.is_none());
        }
        // Past the end of the file: a miss, left to the blocking read's error.
        assert!(f.read_pages_cached(3, 2, |_| ()).is_none());
        assert!(f.read_pages(3, 2, |_| ()).is_err());
    }

    #[test]
    fn direct_mode_never_reads_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        PageFile::write_new(&FsBackend, &path, header()).unwrap();
        let f = PageFile::open(&FsBackend, &path, header(), IoMode::Buffered).unwrap();
        f.write_pages(1, &[1u8; PAGE]).unwrap();
        drop(f);
        // Some filesystems (tmpfs) refuse O_DIRECT; nothing to check there.
        if let Ok(d) = PageFile::open(&FsBackend, &path, header(), IoMode::Direct) {
            assert!(d.read_pages_cached(1, 1, |_| ()).is_none());
        }
    }
}
