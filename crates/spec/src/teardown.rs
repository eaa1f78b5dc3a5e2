//! Deleting a bundle's directory tree by fd, with the unlinked inodes kept open.
//!
//! On ext4 (as on most disk filesystems) the blocks of an unlinked inode are freed when its
//! last reference goes, not at `unlink`/`rmdir`; on a disk mounted with `discard` that freeing
//! waits for the device, milliseconds per inode (docs/bundles.md, "Removing without waiting
//! for the disk"). [`empty`] opens each entry before unlinking it and keeps up to `cap` of those fds for the
//! caller, who closes them where nobody waits (`berth_sys::close_detached`). Past the cap an
//! entry is deleted the ordinary way and costs what it costs.
//!
//! The walk is hostile-input safe: every open is relative to the parent's fd with
//! `O_NOFOLLOW` (a symlink is unlinked, never followed), a mount point (any mount, a bind
//! mount of the same filesystem too: openat2 with `RESOLVE_NO_XDEV`) stops the walk with
//! EBUSY instead of being emptied, and at most [`MAX_DEPTH`] directories are open at once: a deeper subtree is renamed up to
//! the top directory (same filesystem, still inside the bundle) and deleted from there.

use std::ffi::{CStr, CString, OsStr};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RawDir};
use rustix::io::Errno;

use crate::error::Error;

/// Directories open at once during the walk, at most.
pub(crate) const MAX_DEPTH: usize = 64;

/// Unlinked inodes kept open by one removal, at most (further entries are deleted the
/// ordinary way).
pub(crate) const HOLD_MAX: usize = 1024;

/// How many fds a removal may hold: [`HOLD_MAX`], less when `RLIMIT_NOFILE` is low (room is
/// left for the walk's open directories and the caller's own files).
pub(crate) fn hold_cap() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    cap_for(limit.unwrap_or(u64::MAX))
}

fn cap_for(nofile: u64) -> usize {
    let room = nofile.saturating_sub((MAX_DEPTH + 64) as u64);
    HOLD_MAX.min(usize::try_from(room).unwrap_or(HOLD_MAX))
}

/// Name prefix of subtrees moved up to the top directory (too deep to walk in place).
const MOVED: &str = ".berth-remove-";

struct Walk<'a> {
    top: BorrowedFd<'a>,
    dev: u64,
    held: &'a mut Vec<OwnedFd>,
    cap: usize,
    /// Subtrees renamed into the top directory, still to delete.
    moved: Vec<CString>,
    next_moved: u64,
}

/// Deletes everything inside the directory `top` (opened at `path`), leaving `top` itself.
/// Entries named in `last` are deleted after all others, in that order (a bundle keeps its
/// marker files until the end, so a removal that fails half-way can be run again).
/// Unlinked inodes are pushed to `held` while it holds fewer than `cap` (in all, counting
/// what it held before).
pub(crate) fn empty(
    top: &OwnedFd,
    path: &Path,
    last: &[&str],
    held: &mut Vec<OwnedFd>,
    cap: usize,
) -> Result<(), Error> {
    let dev = rfs::fstat(top)
        .map_err(|e| Error::io("reading", path, e))?
        .st_dev;
    let mut walk = Walk {
        top: top.as_fd(),
        dev,
        held,
        cap,
        moved: Vec::new(),
        next_moved: 0,
    };
    let mut entries = list(top.as_fd(), path)?;
    // Stable sort: ordinary entries first, then `last` in its order.
    let rank = |name: &CStr| {
        last.iter()
            .position(|l| l.as_bytes() == name.to_bytes())
            .map_or(0, |i| i + 1)
    };
    entries.sort_by_key(|(name, _)| rank(name));
    let split = entries.partition_point(|(name, _)| rank(name) == 0);
    let markers = entries.split_off(split);
    let mut here = path.to_path_buf();
    walk.empty_entries(top.as_fd(), &mut here, entries, 0)?;
    // Subtrees moved up (too deep) go before the markers, so a failure among them leaves
    // a directory that is still recognisably a bundle.
    walk.remove_moved(top.as_fd(), path)?;
    walk.empty_entries(top.as_fd(), &mut here, markers, 0)?;
    walk.remove_moved(top.as_fd(), path)
}

impl Walk<'_> {
    fn remove_moved(&mut self, top: BorrowedFd<'_>, path: &Path) -> Result<(), Error> {
        while let Some(name) = self.moved.pop() {
            let mut here = path.to_path_buf();
            self.remove_entry(top, &mut here, &name, FileType::Directory, 0)?;
        }
        Ok(())
    }

    fn empty_entries(
        &mut self,
        dir: BorrowedFd<'_>,
        here: &mut PathBuf,
        entries: Vec<(CString, FileType)>,
        depth: usize,
    ) -> Result<(), Error> {
        for (name, kind) in entries {
            self.remove_entry(dir, here, &name, kind, depth)?;
        }
        Ok(())
    }

    /// Removes `name` (of type `kind`, `Unknown` when readdir did not say) from `dir`.
    fn remove_entry(
        &mut self,
        dir: BorrowedFd<'_>,
        here: &mut PathBuf,
        name: &CStr,
        kind: FileType,
        depth: usize,
    ) -> Result<(), Error> {
        let kind = match kind {
            FileType::Unknown => match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => return Err(Error::io("reading", child_path(here, name), e)),
            },
            k => k,
        };
        if kind != FileType::Directory {
            if self.held.len() < self.cap {
                // O_PATH | O_NOFOLLOW opens the entry itself, whatever it is (a symlink, a
                // fifo, a socket, a device node), without reading or following it.
                if let Ok(fd) = rfs::openat(
                    dir,
                    name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    self.held.push(fd);
                }
            }
            return match rfs::unlinkat(dir, name, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => Ok(()),
                Err(e) => Err(Error::io("removing", child_path(here, name), e)),
            };
        }
        if depth + 1 >= MAX_DEPTH {
            return self.move_up(dir, here, name);
        }
        // RESOLVE_NO_XDEV: a mount point (a bind mount of the same filesystem too, which
        // st_dev would not tell apart) is never entered.
        let child = match rfs::openat2(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            rfs::ResolveFlags::NO_XDEV
                | rfs::ResolveFlags::NO_SYMLINKS
                | rfs::ResolveFlags::NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(Errno::XDEV) => {
                // Something is mounted here: never delete into it.
                return Err(Error::io("removing", child_path(here, name), Errno::BUSY));
            }
            // Replaced by a non-directory since it was listed (a symlink: ELOOP): unlinked
            // as what it is now.
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                return match rfs::unlinkat(dir, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(Error::io("removing", child_path(here, name), e)),
                }
            }
            Err(e) => return Err(Error::io("opening", child_path(here, name), e)),
        };
        here.push(OsStr::from_bytes(name.to_bytes()));
        let r = (|| {
            let st = rfs::fstat(&child).map_err(|e| Error::io("reading", here.as_path(), e))?;
            if st.st_dev != self.dev {
                // Something is mounted here: never delete into another filesystem.
                return Err(Error::io("removing", here.as_path(), Errno::BUSY));
            }
            let entries = list(child.as_fd(), here)?;
            self.empty_entries(child.as_fd(), here, entries, depth + 1)
        })();
        here.pop();
        r?;
        match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::io("removing", child_path(here, name), e)),
        }
        if self.held.len() < self.cap {
            self.held.push(child);
        }
        Ok(())
    }

    /// Renames the directory `name` of `dir` into the top directory under a fresh name, to
    /// be deleted from there with a short stack of open directories.
    fn move_up(&mut self, dir: BorrowedFd<'_>, here: &Path, name: &CStr) -> Result<(), Error> {
        loop {
            let to = CString::new(format!("{MOVED}{}", self.next_moved))
                .expect("no NUL in a generated name");
            self.next_moved += 1;
            let moved =
                match rfs::renameat_with(dir, name, self.top, &to, rfs::RenameFlags::NOREPLACE) {
                    // A filesystem without RENAME_NOREPLACE: the name was checked free just now.
                    Err(Errno::INVAL) => {
                        match rfs::statat(self.top, &to, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(_) => Err(Errno::EXIST),
                            Err(_) => rfs::renameat(dir, name, self.top, &to),
                        }
                    }
                    r => r,
                };
            match moved {
                Ok(()) => {
                    self.moved.push(to);
                    return Ok(());
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::NOENT) => return Ok(()),
                Err(e) => {
                    return Err(Error::io(
                        "moving up for removal",
                        child_path(here, name),
                        e,
                    ))
                }
            }
        }
    }
}

/// The entries of `dir` but `.` and `..`, with their type as readdir reports it.
fn list(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<(CString, FileType)>, Error> {
    // From the start, whatever was read through this fd before.
    rfs::seek(dir, rfs::SeekFrom::Start(0)).map_err(|e| Error::io("listing", path, e))?;
    let mut buf = vec![MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut raw = RawDir::new(dir, &mut buf);
    let mut out = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry.map_err(|e| Error::io("listing", path, e))?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        out.push((name.to_owned(), entry.file_type()));
    }
    Ok(out)
}

fn child_path(here: &Path, name: &CStr) -> PathBuf {
    here.join(OsStr::from_bytes(name.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn open_dir(p: &Path) -> OwnedFd {
        rfs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap()
    }

    #[test]
    fn deletes_files_links_and_deep_trees_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "keep").unwrap();
        let top = tmp.path().join("top");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join("a/b/f"), "x").unwrap();
        symlink(&outside, top.join("a/link-dir")).unwrap();
        symlink(outside.join("keep"), top.join("link-file")).unwrap();
        symlink("/nonexistent", top.join("dangling")).unwrap();
        let mut deep = top.join("deep");
        for _ in 0..(MAX_DEPTH * 3) {
            deep.push("d");
        }
        fs::create_dir_all(&deep).unwrap();
        fs::write(deep.join("leaf"), "x").unwrap();
        fs::write(top.join("marker"), "m").unwrap();

        let fd = open_dir(&top);
        let mut held = Vec::new();
        empty(&fd, &top, &["marker"], &mut held, 8).unwrap();
        assert_eq!(fs::read_dir(&top).unwrap().count(), 0);
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "keep");
        assert_eq!(held.len(), 8, "holds exactly up to the cap");
    }

    /// A bind mount of the same filesystem has the same st_dev: only the mount check of
    /// openat2 (RESOLVE_NO_XDEV) tells it apart. Needs root (CAP_SYS_ADMIN), as the tests run.
    #[test]
    fn a_bind_mount_of_the_same_filesystem_is_never_entered() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "keep").unwrap();
        let top = tmp.path().join("top");
        let at = top.join("upper/x");
        fs::create_dir_all(&at).unwrap();
        let st = std::process::Command::new("mount")
            .arg("--bind")
            .arg(&outside)
            .arg(&at)
            .status()
            .unwrap();
        assert!(st.success(), "mount --bind (the tests run as root)");
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount")
                    .arg("-l")
                    .arg(&self.0)
                    .status();
            }
        }
        let _guard = Unmount(at.clone());

        let fd = open_dir(&top);
        let mut held = Vec::new();
        let err = empty(&fd, &top, &[], &mut held, 8).unwrap_err().to_string();
        assert!(err.contains("upper/x"), "{err}");
        assert_eq!(fs::read_to_string(outside.join("keep")).unwrap(), "keep");
    }

    #[test]
    fn holds_every_inode_under_the_cap_and_none_at_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        fs::create_dir_all(top.join("d/e")).unwrap();
        for i in 0..5 {
            fs::write(top.join(format!("d/f{i}")), "x").unwrap();
        }
        let fd = open_dir(&top);
        let mut held = Vec::new();
        empty(&fd, &top, &[], &mut held, 100).unwrap();
        // d, d/e and five files.
        assert_eq!(held.len(), 7);
        for h in &held {
            assert_eq!(
                rfs::fstat(h).unwrap().st_nlink,
                0,
                "held inodes are unlinked"
            );
        }

        fs::create_dir_all(top.join("again/x")).unwrap();
        let mut held = Vec::new();
        empty(&fd, &top, &[], &mut held, 0).unwrap();
        assert!(held.is_empty());
        assert_eq!(fs::read_dir(&top).unwrap().count(), 0);
    }

    #[test]
    fn last_entries_go_last() {
        // A removal that fails half-way keeps the bundle's markers, so it can run again:
        // with a cap of 0 nothing is held, and the marker must be the last name unlinked.
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("top");
        for d in ["a", "upper", "z"] {
            fs::create_dir_all(top.join(d).join("sub")).unwrap();
        }
        fs::write(top.join("marker"), "mm").unwrap();
        fs::write(top.join("config"), "c").unwrap();
        let fd = open_dir(&top);
        let mut held = Vec::new();
        empty(&fd, &top, &["config", "marker"], &mut held, 100).unwrap();
        assert_eq!(fs::read_dir(&top).unwrap().count(), 0);
        // Held fds come in unlink order: the last two are the config, then the marker.
        let n = held.len();
        assert_eq!(n, 8);
        let kinds: Vec<FileType> = held
            .iter()
            .map(|h| FileType::from_raw_mode(rfs::fstat(h).unwrap().st_mode))
            .collect();
        assert!(kinds[..6].iter().all(|k| *k == FileType::Directory));
        assert_eq!(rfs::fstat(&held[n - 2]).unwrap().st_size, 1);
        assert_eq!(rfs::fstat(&held[n - 1]).unwrap().st_size, 2);
        assert!(kinds[6..].iter().all(|k| *k == FileType::RegularFile));
    }

    #[test]
    fn the_cap_leaves_room_below_the_fd_limit() {
        assert_eq!(cap_for(u64::MAX), HOLD_MAX);
        assert_eq!(cap_for(1 << 20), HOLD_MAX);
        // The common soft limit: room for the walk's directories and 64 of the caller's.
        assert_eq!(cap_for(1024), 1024 - MAX_DEPTH - 64);
        assert_eq!(cap_for(100), 0);
        assert!(hold_cap() <= HOLD_MAX);
    }
}
