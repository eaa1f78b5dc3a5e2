//! Lookups in the merged view of a layer under construction over its lower snapshots, as
//! overlayfs would show it: whiteouts (0:0 character devices) hide, an opaque directory
//! (`trusted.overlay.opaque=y`) stops the lookup, an upper non-directory hides everything
//! below it. Symlinks are followed inside the merged view and never leave it: `..` stops at
//! the root and absolute targets start again at the root.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, FileType};

use crate::fsops::{self, lstat, open_child_dir};

/// The most symlinks followed while resolving one path (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;
pub(crate) const OPAQUE: &[u8] = b"trusted.overlay.opaque";

/// Layers of one merged directory: `(layer index, O_PATH fd of the directory in that layer)`,
/// topmost first. Index 0 is the upper layer being built.
pub(crate) type Active = Vec<(usize, OwnedFd)>;

/// What a name is in a merged directory.
pub(crate) enum Lookup {
    Missing,
    Dir(Active),
    /// A non-directory, found in `layer`, inside that layer's directory `dir`.
    Other {
        layer: usize,
        dir: OwnedFd,
        st: rfs::Stat,
    },
}

/// The result of resolving a path.
pub(crate) enum Resolved {
    /// A directory at the physical path `comps`.
    Dir { comps: Vec<Vec<u8>> },
    /// A non-directory at the physical path `comps`.
    Other {
        comps: Vec<Vec<u8>>,
        layer: usize,
        dir: OwnedFd,
        st: rfs::Stat,
    },
    /// `found` exists as a directory; `rest` (the first of which is missing) does not.
    Missing {
        found: Vec<Vec<u8>>,
        rest: Vec<Vec<u8>>,
    },
}

/// The merged view of `layers` (topmost first; the first is the upper layer).
pub(crate) struct Merged<'a> {
    pub layers: Vec<BorrowedFd<'a>>,
}

pub(crate) fn is_opaque(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut buf = [0u8; 4];
    match rfs::lgetxattr(fsops::proc_path(dir, b"."), fsops::os(OPAQUE), &mut buf[..]) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(rustix::io::Errno::NODATA)
        | Err(rustix::io::Errno::NOTSUP)
        | Err(rustix::io::Errno::RANGE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

impl Merged<'_> {
    pub(crate) fn root(&self) -> io::Result<Active> {
        let mut active = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            active.push((i, fsops::open_dir_in(*l, b"")?));
        }
        Ok(active)
    }

    /// Looks `name` up in the merged directory whose layers are `active`.
    pub(crate) fn step(&self, active: &Active, name: &[u8]) -> io::Result<Lookup> {
        let mut dirs: Active = Vec::new();
        for (layer, dir) in active {
            let Some(st) = lstat(dir.as_fd(), name)? else {
                continue;
            };
            let ft = fsops::file_type(&st);
            if ft == FileType::Directory {
                let sub = open_child_dir(dir.as_fd(), name)?;
                let opaque = is_opaque(sub.as_fd())?;
                dirs.push((*layer, sub));
                if opaque {
                    break;
                }
                continue;
            }
            if !dirs.is_empty() || fsops::is_whiteout(&st) {
                // A lower non-directory under an upper directory, or a whiteout: stop.
                break;
            }
            let dir = rustix::io::fcntl_dupfd_cloexec(dir, 0)?;
            return Ok(Lookup::Other {
                layer: *layer,
                dir,
                st,
            });
        }
        Ok(if dirs.is_empty() {
            Lookup::Missing
        } else {
            Lookup::Dir(dirs)
        })
    }

    /// The layers of the merged directory at the physical path `comps` (all directories).
    pub(crate) fn walk(&self, comps: &[Vec<u8>]) -> io::Result<Option<Active>> {
        let mut active = self.root()?;
        for c in comps {
            match self.step(&active, c)? {
                Lookup::Dir(a) => active = a,
                _ => return Ok(None),
            }
        }
        Ok(Some(active))
    }

    /// Resolves `path` (clean components, no `.`/`..` needed) in the merged view, following
    /// symlinks inside it; the last component is followed only when `follow_last`.
    pub(crate) fn resolve(&self, path: &[&[u8]], follow_last: bool) -> io::Result<Resolved> {
        let mut todo: std::collections::VecDeque<Vec<u8>> =
            path.iter().map(|c| c.to_vec()).collect();
        let mut comps: Vec<Vec<u8>> = Vec::new();
        let mut active = self.root()?;
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                comps.pop();
                active = self
                    .walk(&comps)?
                    .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
                continue;
            }
            match self.step(&active, &c)? {
                Lookup::Missing => {
                    let mut rest = vec![c];
                    rest.extend(todo);
                    return Ok(Resolved::Missing { found: comps, rest });
                }
                Lookup::Dir(a) => {
                    comps.push(c);
                    active = a;
                }
                Lookup::Other { layer, dir, st } => {
                    let last = todo.is_empty();
                    if fsops::file_type(&st) == FileType::Symlink && (!last || follow_last) {
                        links += 1;
                        if links > MAX_LINKS {
                            return Err(io::Error::from_raw_os_error(libc_eloop()));
                        }
                        let target =
                            rfs::readlinkat(dir.as_fd(), fsops::os(&c), Vec::new())?.into_bytes();
                        if target.starts_with(b"/") {
                            comps.clear();
                            active = self.root()?;
                        }
                        for t in target.split(|&b| b == b'/').rev() {
                            todo.push_front(t.to_vec());
                        }
                        continue;
                    }
                    if !last {
                        return Err(io::Error::from_raw_os_error(libc_enotdir()));
                    }
                    comps.push(c);
                    return Ok(Resolved::Other {
                        comps,
                        layer,
                        dir,
                        st,
                    });
                }
            }
        }
        Ok(Resolved::Dir { comps })
    }
}

fn libc_eloop() -> i32 {
    rustix::io::Errno::LOOP.raw_os_error()
}

fn libc_enotdir() -> i32 {
    rustix::io::Errno::NOTDIR.raw_os_error()
}
