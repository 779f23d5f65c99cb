//! [`FaultyBackend`]: wraps another backend and fails chosen operations, for tests.
//!
//! Faults are armed by operation kind and count: "fail the 3rd `Sync` from now
//! with EIO", "make the next `Append` a short write", "tear the 40th
//! operation of any kind". Every operation of the backend, of its
//! [`FileHandle`]s and of its [`RandomFile`]s counts, reads included.
//! [`FaultyBackend::crash_after`] simulates a power cut: after `n` more
//! operations every operation fails, so nothing later reaches the disk.

use super::{Backend, FileHandle, FileOptions, RandomFile};
use parking_lot::Mutex;
use std::io::{self, IoSliceMut};
use std::path::Path;
use std::sync::Arc;

/// The kind of a backend or file-handle operation, for targeting faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Op {
    /// [`Backend::create`]
    Create,
    /// [`Backend::open`]
    Open,
    /// [`Backend::read`]
    Read,
    /// [`Backend::len`]
    Len,
    /// [`Backend::rename`]
    Rename,
    /// [`Backend::remove`]
    Remove,
    /// [`Backend::list`]
    List,
    /// [`Backend::create_dir_all`]
    CreateDir,
    /// [`Backend::sync_dir`]
    SyncDir,
    /// [`FileHandle::append`]
    Append,
    /// [`FileHandle::write_at`], [`RandomFile::write_at`]
    WriteAt,
    /// [`FileHandle::sync`], [`RandomFile::sync`]
    Sync,
    /// [`FileHandle::set_len`], [`RandomFile::set_len`]
    SetLen,
    /// [`Backend::open_file`]
    OpenFile,
    /// [`RandomFile::read_at`]
    ReadAt,
    /// [`RandomFile::read_vectored_at`]
    ReadVectored,
    /// [`RandomFile::read_at_nowait`]
    ReadNowait,
    /// [`RandomFile::allocate`]
    Allocate,
    /// [`RandomFile::len`]
    FileLen,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with ENOSPC, writing nothing.
    NoSpace,
    /// Fails with EIO, writing nothing.
    Io,
    /// Writes the first half of the buffer, then fails with ENOSPC (other
    /// operations fail with ENOSPC, doing nothing).
    ShortWrite,
    /// A power cut in the middle of the operation: a write puts the first
    /// half of its buffer in the file; the operation and every later one
    /// fail with EIO (as after [`FaultyBackend::crash_after`]).
    TornWrite,
}

#[derive(Debug)]
struct Rule {
    op: Option<Op>,
    skip: u64,
    fault: Fault,
}

#[derive(Debug, Default)]
struct Plan {
    rules: Vec<Rule>,
    ops: u64,
    crash_after: Option<u64>,
    injected: u64,
}

impl Plan {
    /// Counts one operation and says whether (and how) it must fail.
    fn check(&mut self, op: Op) -> Option<Fault> {
        self.ops += 1;
        if let Some(left) = self.crash_after.as_mut() {
            if *left == 0 {
                self.injected += 1;
                return Some(Fault::Io);
            }
            *left -= 1;
        }
        let mut hit = None;
        for (i, rule) in self.rules.iter_mut().enumerate() {
            if rule.op.is_none_or(|o| o == op) {
                if rule.skip == 0 {
                    hit = Some(i);
                    break;
                }
                rule.skip -= 1;
            }
        }
        let fault = hit.map(|i| self.rules.remove(i).fault);
        if fault.is_some() {
            self.injected += 1;
        }
        if fault == Some(Fault::TornWrite) {
            self.crash_after = Some(0);
        }
        fault
    }
}

fn error_for(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace | Fault::ShortWrite => io::Error::from(rustix::io::Errno::NOSPC),
        Fault::Io | Fault::TornWrite => io::Error::from(rustix::io::Errno::IO),
    }
}

/// Runs a write with `fault` (if any): short and torn writes put the first
/// half of `buf` in the file before failing.
fn faulty_write(
    fault: Option<Fault>,
    buf: &[u8],
    write: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    match fault {
        None => write(buf),
        Some(f @ (Fault::ShortWrite | Fault::TornWrite)) => {
            write(&buf[..buf.len() / 2])?;
            Err(error_for(f))
        }
        Some(f) => Err(error_for(f)),
    }
}

/// A backend that injects faults into an inner backend. Cheap to clone; clones share one plan.
#[derive(Debug, Clone)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyBackend {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        FaultyBackend {
            inner,
            plan: Arc::default(),
        }
    }

    /// Fails the `nth` (0 = next) future operation of kind `op` (`None`: any kind) with `fault`, once.
    pub fn fail_nth(&self, op: Option<Op>, nth: u64, fault: Fault) {
        self.plan.lock().rules.push(Rule {
            op,
            skip: nth,
            fault,
        });
    }

    /// Power cut: the next `n` operations succeed, every one after fails with EIO.
    pub fn crash_after(&self, n: u64) {
        self.plan.lock().crash_after = Some(n);
    }

    /// Disarms all faults (and the power cut).
    pub fn heal(&self) {
        let mut plan = self.plan.lock();
        plan.rules.clear();
        plan.crash_after = None;
    }

    /// Operations seen so far.
    pub fn ops(&self) -> u64 {
        self.plan.lock().ops
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.plan.lock().injected
    }

    fn check(&self, op: Op) -> io::Result<()> {
        match self.plan.lock().check(op) {
            Some(fault) => Err(error_for(fault)),
            None => Ok(()),
        }
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Box<dyn FileHandle>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyFile {
    fn write(&mut self, op: Op, offset: Option<u64>, buf: &[u8]) -> io::Result<()> {
        let fault = self.plan.lock().check(op);
        let inner = &mut self.inner;
        faulty_write(fault, buf, |b| match offset {
            Some(off) => inner.write_at(off, b),
            None => inner.append(b),
        })
    }

    fn check(&self, op: Op) -> io::Result<()> {
        match self.plan.lock().check(op) {
            Some(fault) => Err(error_for(fault)),
            None => Ok(()),
        }
    }
}

impl FileHandle for FaultyFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.write(Op::Append, None, buf)
    }

    fn write_at(&mut self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.write(Op::WriteAt, Some(offset), buf)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.inner.sync()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.check(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn len(&self) -> u64 {
        self.inner.len()
    }
}

impl Backend for FaultyBackend {
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        self.check(Op::Create)?;
        let inner = self.inner.create(path)?;
        Ok(Box::new(FaultyFile {
            inner,
            plan: self.plan.clone(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        self.check(Op::Open)?;
        let inner = self.inner.open(path)?;
        Ok(Box::new(FaultyFile {
            inner,
            plan: self.plan.clone(),
        }))
    }

    fn open_file(&self, path: &Path, opts: FileOptions) -> io::Result<Box<dyn RandomFile>> {
        self.check(Op::OpenFile)?;
        let inner = self.inner.open_file(path, opts)?;
        Ok(Box::new(FaultyRandomFile {
            inner,
            plan: self.plan.clone(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(Op::Read)?;
        self.inner.read(path)
    }

    fn len(&self, path: &Path) -> io::Result<u64> {
        self.check(Op::Len)?;
        self.inner.len(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename)?;
        self.inner.rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove)?;
        self.inner.remove(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(Op::List)?;
        self.inner.list(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::CreateDir)?;
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir)?;
        self.inner.sync_dir(dir)
    }
}

#[derive(Debug)]
struct FaultyRandomFile {
    inner: Box<dyn RandomFile>,
    plan: Arc<Mutex<Plan>>,
}

impl FaultyRandomFile {
    fn check(&self, op: Op) -> io::Result<()> {
        match self.plan.lock().check(op) {
            Some(fault) => Err(error_for(fault)),
            None => Ok(()),
        }
    }
}

impl RandomFile for FaultyRandomFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.check(Op::ReadAt)?;
        self.inner.read_at(buf, offset)
    }

    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<()> {
        self.check(Op::ReadVectored)?;
        self.inner.read_vectored_at(bufs, offset)
    }

    fn nowait_supported(&self) -> bool {
        self.inner.nowait_supported()
    }

    fn read_at_nowait(&self, buf: &mut [u8], offset: u64) -> io::Result<Option<usize>> {
        self.check(Op::ReadNowait)?;
        self.inner.read_at_nowait(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let fault = self.plan.lock().check(Op::WriteAt);
        faulty_write(fault, buf, |b| self.inner.write_at(b, offset))
    }

    fn sync(&self) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.inner.sync()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(Op::SetLen)?;
        self.inner.set_len(len)
    }

    fn allocate(&self, offset: u64, len: u64) -> io::Result<()> {
        self.check(Op::Allocate)?;
        self.inner.allocate(offset, len)
    }

    fn len(&self) -> io::Result<u64> {
        self.check(Op::FileLen)?;
        self.inner.len()
    }
}
