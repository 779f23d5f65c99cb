//! [`DirLock`]: an exclusive `flock` on a `LOCK` file so that two processes
//! (or two handles in one process) never open the same directory.
//!
//! The lock is held by an open file description and released when the
//! [`DirLock`] is dropped or the process dies, so a crash never leaves a stale lock.

use crate::error::{Error, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// How long [`DirLock::acquire`] waits for a lock that looks held.
const LOCK_WAIT: Duration = Duration::from_millis(500);

/// An exclusive lock on a directory; released on drop.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir` (creating `dir/LOCK`), failing with [`Error::Locked`] if it is still held after 500 ms.
    pub fn acquire(dir: &Path) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        // A child forked by *any* thread of this process holds a copy of every open
        // descriptor, and with it this lock, until it execs (descriptors are
        // close-on-exec). So a lock just released here can look held for a moment:
        // retry briefly before reporting another owner.
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                    if Instant::now() >= deadline {
                        return Err(Error::Locked { path });
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(Error::io("lock", &path, e.into())),
            }
        }
        // Diagnostics only: who holds it.
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        Ok(DirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
