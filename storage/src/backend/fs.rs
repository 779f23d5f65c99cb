//! [`FsBackend`]: the real file system through `std::fs` and, for what std
//! lacks (`preadv2` with `RWF_NOWAIT`, `fallocate`, `O_DIRECT`), `rustix`.

use super::{Backend, FileHandle, FileOptions, RandomFile};
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSliceMut};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsBackend;

#[derive(Debug)]
struct FsFile {
    file: File,
    len: u64,
}

impl FileHandle for FsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write_at(self.len, buf)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)?;
        self.len = self.len.max(offset + buf.len() as u64);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.len = len;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// A file open for positional I/O.
#[derive(Debug)]
struct FsRandomFile {
    file: File,
    direct: bool,
}

impl RandomFile for FsRandomFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn read_vectored_at(&self, mut bufs: &mut [IoSliceMut<'_>], mut offset: u64) -> io::Result<()> {
        IoSliceMut::advance_slices(&mut bufs, 0);
        while !bufs.is_empty() {
            match rustix::io::preadv(&self.file, bufs, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file ends before the buffers are full",
                    ))
                }
                Ok(n) => {
                    offset += n as u64;
                    IoSliceMut::advance_slices(&mut bufs, n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn nowait_supported(&self) -> bool {
        !self.direct && nowait::supported()
    }

    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>> {
        if !self.nowait_supported() {
            return Ok(None);
        }
        nowait::read_at(&self.file, buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{fallocate, FallocateFlags};
            match fallocate(&self.file, FallocateFlags::empty(), offset, len) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let end = offset.saturating_add(len);
        if self.file.metadata()?.len() < end {
            self.file.set_len(end)?;
        }
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
}

impl Backend for FsBackend {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(FsFile { file, len: 0 }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        Ok(Box::new(FsFile { file, len }))
    }

    fn open_file(&self, path: &Path, opts: FileOptions) -> io::Result<Box<dyn RandomFile>> {
        let mut o = OpenOptions::new();
        o.read(true).write(opts.write);
        if opts.direct {
            o.custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32);
        }
        let file = o.open(path)?;
        Ok(Box::new(FsRandomFile {
            file,
            direct: opts.direct,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

/// Non-blocking positional reads from the page cache (`RWF_NOWAIT`, Linux
/// 4.14+). Elsewhere, or once the kernel has refused the flag, every read is
/// a miss.
mod nowait {
    use std::fs::File;
    use std::io;
    use std::sync::atomic::{AtomicBool, Ordering};

    static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

    pub fn supported() -> bool {
        cfg!(target_os = "linux") && !UNSUPPORTED.load(Ordering::Relaxed)
    }

    /// Bytes read into `buf` at `offset` without waiting for the device;
    /// `None` if that would have to wait (or the flag is refused).
    #[cfg(target_os = "linux")]
    pub fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>> {
        use rustix::io::{preadv2, Errno, ReadWriteFlags};
        match preadv2(
            file,
            &mut [io::IoSliceMut::new(buf)],
            offset,
            ReadWriteFlags::NOWAIT,
        ) {
            Ok(n) => Ok(Some(n)),
            Err(Errno::AGAIN) => Ok(None),
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::INVAL) => {
                UNSUPPORTED.store(true, Ordering::Relaxed);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn read_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<Option<usize>> {
        Ok(None)
    }
}
