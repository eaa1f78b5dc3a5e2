//! One `flock(2)` lock file per chain ID, held while a snapshot is built, removed, or its
//! users change. Locks are tied to an open file description, so two threads of one process
//! exclude each other as two processes do, and a crash releases them.

use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};

use crate::{io_error, Error};

/// A held lock; released on drop.
pub(crate) struct Lock {
    _fd: OwnedFd,
}

fn open(path: &Path) -> Result<OwnedFd, Error> {
    rfs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io_error(format!("opening lock {}", path.display()))(e.into()))
}

impl Lock {
    /// Waits for the lock.
    pub(crate) fn exclusive(path: &Path) -> Result<Lock, Error> {
        let fd = open(path)?;
        loop {
            match rfs::flock(&fd, FlockOperation::LockExclusive) {
                Ok(()) => return Ok(Lock { _fd: fd }),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(io_error(format!("locking {}", path.display()))(e.into())),
            }
        }
    }

    /// Takes the lock if nobody holds it.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Lock>, Error> {
        let fd = open(path)?;
        match rfs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Lock { _fd: fd })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(io_error(format!("locking {}", path.display()))(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_another_open() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let held = Lock::exclusive(&p).unwrap();
        assert!(Lock::try_exclusive(&p).unwrap().is_none());
        drop(held);
        assert!(Lock::try_exclusive(&p).unwrap().is_some());
    }
}
