//! [`FaultyBackend`]: wraps another backend and fails chosen operations, for tests.
//!
//! Faults are armed by operation kind and count: "fail the 3rd `Sync` from now
//! with EIO", "make the next `Append` a short write". [`FaultyBackend::crash_after`]
//! simulates a power cut: after `n` more operations every operation fails, so
//! nothing later reaches the disk.

use super::{Backend, FileHandle};
use parking_lot::Mutex;
use std::io;
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
    /// [`FileHandle::write_at`]
    WriteAt,
    /// [`FileHandle::sync`]
    Sync,
    /// [`FileHandle::set_len`]
    SetLen,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with ENOSPC, writing nothing.
    NoSpace,
    /// Fails with EIO, writing nothing.
    Io,
    /// Writes the first half of the buffer, then fails with ENOSPC (for non-writes: EIO).
    ShortWrite,
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
        fault
    }
}

fn error_for(fault: Fault) -> io::Error {
    match fault {
        Fault::NoSpace | Fault::ShortWrite => io::Error::from(rustix::io::Errno::NOSPC),
        Fault::Io => io::Error::from(rustix::io::Errno::IO),
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
        let write = |f: &mut Box<dyn FileHandle>, b: &[u8]| match offset {
            Some(off) => f.write_at(off, b),
            None => f.append(b),
        };
        match fault {
            None => write(&mut self.inner, buf),
            Some(Fault::ShortWrite) => {
                write(&mut self.inner, &buf[..buf.len() / 2])?;
                Err(error_for(Fault::ShortWrite))
            }
            Some(f) => Err(error_for(f)),
        }
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
