//! Advisory file locks (flock) between processes sharing a store.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::{io_err, Error};

/// A held flock; released when dropped (the file is closed).
#[derive(Debug)]
pub struct Guard {
    _file: File,
    path: PathBuf,
}

impl Guard {
    /// Waits for and takes an exclusive lock on `path` (created when missing).
    pub(crate) fn exclusive(path: &Path) -> Result<Guard, Error> {
        Guard::take(path, FlockOperation::LockExclusive)
    }

    /// Waits for and takes a shared lock on `path` (created when missing).
    pub(crate) fn shared(path: &Path) -> Result<Guard, Error> {
        Guard::take(path, FlockOperation::LockShared)
    }

    /// Takes an exclusive lock without waiting; `None` when another holder has it.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<Guard>, Error> {
        let file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(Guard {
                _file: file,
                path: path.to_path_buf(),
            })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::Io {
                path: path.to_path_buf(),
                source: e.into(),
            }),
        }
    }

    fn take(path: &Path, op: FlockOperation) -> Result<Guard, Error> {
        let file = open(path)?;
        loop {
            match flock(&file, op) {
                Ok(()) => {
                    return Ok(Guard {
                        _file: file,
                        path: path.to_path_buf(),
                    })
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: path.to_path_buf(),
                        source: e.into(),
                    })
                }
            }
        }
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_locks_exclude_each_other_and_release_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let g = Guard::exclusive(&p).unwrap();
        assert!(Guard::try_exclusive(&p).unwrap().is_none());
        drop(g);
        assert!(Guard::try_exclusive(&p).unwrap().is_some());
        let s1 = Guard::shared(&p).unwrap();
        let _s2 = Guard::shared(&p).unwrap();
        assert!(Guard::try_exclusive(&p).unwrap().is_none());
        assert_eq!(s1.path(), p);
    }
}
