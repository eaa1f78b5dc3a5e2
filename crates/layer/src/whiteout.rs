//! Whiteouts and opaque markers: kept as overlayfs understands them in the overlay form,
//! applied (deleting what lower layers made) in the flattened form.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::FileType;

use crate::extract::{hostile, io_err, join, show, Extractor};
use crate::fsops::{self, lstat};
use crate::tar::Entry;
use crate::write::set_opaque;
use crate::{Error, Form};

pub(crate) const WHITEOUT: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";

impl Extractor<'_> {
    pub(crate) fn whiteout(
        &mut self,
        parent: &[&[u8]],
        target: &[u8],
        e: &Entry,
    ) -> Result<(), Error> {
        if target == &OPAQUE_MARKER[WHITEOUT.len()..] {
            return self.opaque(parent, e);
        }
        if target.starts_with(WHITEOUT) {
            // Other `.wh..wh.` names are aufs bookkeeping: not part of the filesystem.
            tracing::debug!(path = %show(&e.path), "skipping aufs metadata");
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." {
            return Err(hostile(&e.path, "whiteout of an invalid name"));
        }
        let mut full = join(parent);
        if !full.is_empty() {
            full.push(b'/');
        }
        full.extend_from_slice(target);
        match self.form {
            Form::Overlay => {
                let dir = self.parent_dir(parent, &e.path)?;
                match lstat(dir.as_fd(), target)
                    .map_err(io_err(&e.path, "looking up the whiteout target"))?
                {
                    None => fsops::mknod(dir.as_fd(), target, FileType::CharacterDevice, 0, (0, 0))
                        .map_err(io_err(&e.path, "creating the whiteout"))?,
                    // Made by this layer: it stays, but must hide what lower layers have there.
                    Some(st) if fsops::file_type(&st) == FileType::Directory => {
                        let sub = fsops::open_child_dir_rd(dir.as_fd(), target)
                            .map_err(io_err(&e.path, "opening the directory"))?;
                        set_opaque(sub.as_fd())
                            .map_err(io_err(&e.path, "marking the directory opaque"))?;
                    }
                    Some(_) => {}
                }
            }
            Form::Flat => {
                let dir = match fsops::open_dir_in(self.root, &join(parent)) {
                    Ok(d) => d,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(err) => {
                        return Err(Error::Io {
                            path: show(&e.path),
                            op: "resolving the whiteout's directory",
                            source: err,
                        })
                    }
                };
                let _ = self.parent_dir(parent, &e.path)?;
                if self.upper.contains(&full) {
                    if let Ok(sub) = fsops::open_child_dir_rd(dir.as_fd(), target) {
                        self.clear_lower(sub.as_fd(), &full)
                            .map_err(io_err(&e.path, "applying the whiteout"))?;
                    }
                } else {
                    self.cache = None;
                    fsops::remove_all(dir.as_fd(), target)
                        .map_err(io_err(&e.path, "applying the whiteout"))?;
                }
            }
        }
        Ok(())
    }

    fn opaque(&mut self, parent: &[&[u8]], e: &Entry) -> Result<(), Error> {
        match self.form {
            Form::Overlay => {
                let dir = self.parent_dir(parent, &e.path)?;
                let fd = fsops::open_child_dir_rd(dir.as_fd(), b".")
                    .map_err(io_err(&e.path, "opening the directory"))?;
                set_opaque(fd.as_fd()).map_err(io_err(&e.path, "marking the directory opaque"))?;
            }
            Form::Flat => {
                let key = join(parent);
                let dir = match fsops::open_dir_in(self.root, &key) {
                    Ok(d) => d,
                    Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(err) => {
                        return Err(Error::Io {
                            path: show(&e.path),
                            op: "resolving the opaque directory",
                            source: err,
                        })
                    }
                };
                let _ = self.parent_dir(parent, &e.path)?;
                let fd = fsops::open_child_dir_rd(dir.as_fd(), b".")
                    .map_err(io_err(&e.path, "opening the directory"))?;
                self.clear_lower(fd.as_fd(), &key)
                    .map_err(io_err(&e.path, "applying the opaque marker"))?;
            }
        }
        Ok(())
    }

    /// Flattened form: removes what lower layers put in the directory `dir` (at `path`).
    fn clear_lower(&mut self, dir: BorrowedFd<'_>, path: &[u8]) -> io::Result<()> {
        self.cache = None;
        let upper = &self.upper;
        fsops::clear_dir(dir, &|name| {
            let mut full = path.to_vec();
            if !full.is_empty() {
                full.push(b'/');
            }
            full.extend_from_slice(name);
            !upper.contains(&full)
        })
    }
}
