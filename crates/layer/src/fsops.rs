//! Small filesystem operations on directory fds: every name handed to them is a single
//! component (no `/`, never `.` or `..`), and the directory fd was resolved inside the root,
//! so nothing here can reach outside it.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};

/// Flags for every resolution under a root: `..` and absolute links stay inside it.
pub(crate) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

pub(crate) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Opens a directory below `root` as an `O_PATH` fd, resolving `path` inside `root`.
pub(crate) fn open_dir_in(root: BorrowedFd<'_>, path: &[u8]) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    Ok(rfs::openat2(
        root,
        os(path),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )?)
}

/// Opens the directory `name` in `dir` without following a symlink, as an `O_PATH` fd.
pub(crate) fn open_child_dir(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        os(name),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens the directory `name` in `dir` for reading (to list it or change its attributes).
pub(crate) fn open_child_dir_rd(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        os(if name.is_empty() { b"." } else { name }),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn file_type(st: &rfs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// True for an overlay whiteout: a character device 0:0.
pub(crate) fn is_whiteout(st: &rfs::Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Removes `name` from `dir`, recursively when it is a directory, never following symlinks.
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<()> {
    match rfs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) => return Ok(()),
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(rustix::io::Errno::ISDIR) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    let sub = open_child_dir_rd(dir, name)?;
    clear_dir(sub.as_fd(), &|_| true)?;
    match rfs::unlinkat(dir, os(name), AtFlags::REMOVEDIR) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes the entries of the directory `dir` (opened for reading) for which `keep_not`
/// says true.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>, remove: &dyn Fn(&[u8]) -> bool) -> io::Result<()> {
    let names = list_dir(dir)?;
    for name in names {
        if remove(&name) {
            remove_all(dir, &name)?;
        }
    }
    Ok(())
}

/// The names in a directory opened for reading, without `.` and `..`.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for ent in rfs::Dir::read_from(dir)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

pub(crate) fn timestamps(mtime: (i64, u32), atime: Option<(i64, u32)>) -> Timestamps {
    let ts = |t: (i64, u32)| Timespec {
        tv_sec: t.0,
        tv_nsec: t.1.into(),
    };
    Timestamps {
        last_access: ts(atime.unwrap_or(mtime)),
        last_modification: ts(mtime),
    }
}

/// Sets the times of `name` in `dir` without following a symlink.
pub(crate) fn set_times(
    dir: BorrowedFd<'_>,
    name: &[u8],
    mtime: (i64, u32),
    atime: Option<(i64, u32)>,
) -> io::Result<()> {
    let name = if name.is_empty() { &b"."[..] } else { name };
    Ok(rfs::utimensat(
        dir,
        os(name),
        &timestamps(mtime, atime),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Sets owner of `name` in `dir` without following a symlink.
pub(crate) fn chown_at(dir: BorrowedFd<'_>, name: &[u8], uid: u32, gid: u32) -> io::Result<()> {
    Ok(rfs::chownat(
        dir,
        os(name),
        Some(rfs::Uid::from_raw(uid)),
        Some(rfs::Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// The `/proc/self/fd/N/name` path of `name` in `dir`, for the `l*xattr` calls that have
/// no `*at` form. `dir` is our own fd and the last component is never followed.
pub(crate) fn proc_path(dir: BorrowedFd<'_>, name: &[u8]) -> std::path::PathBuf {
    use std::os::fd::AsRawFd;
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    std::path::PathBuf::from(OsStr::from_bytes(&p))
}

/// Sets an extended attribute on `name` in `dir` without following a symlink.
pub(crate) fn lsetxattr_at(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> io::Result<()> {
    Ok(rfs::lsetxattr(
        proc_path(dir, name),
        os(key),
        value,
        rfs::XattrFlags::empty(),
    )?)
}

/// All extended attributes of `name` in `dir` (not following a symlink).
pub(crate) fn lxattrs_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let path = proc_path(dir, name);
    let size = match rfs::llistxattr_query(&path) {
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut list = vec![0u8; size];
    let n = rfs::llistxattr(&path, &mut list[..])?;
    list.truncate(n);
    let mut out = Vec::new();
    for key in list.split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let size = rfs::lgetxattr_query(&path, os(key))?;
        let mut value = vec![0u8; size];
        let n = rfs::lgetxattr(&path, os(key), &mut value[..])?;
        value.truncate(n);
        out.push((key.to_vec(), value));
    }
    Ok(out)
}

/// Creates `name` in `dir` as a device, fifo or whiteout.
pub(crate) fn mknod(
    dir: BorrowedFd<'_>,
    name: &[u8],
    kind: FileType,
    mode: u32,
    dev: (u32, u32),
) -> io::Result<()> {
    Ok(rfs::mknodat(
        dir,
        os(name),
        kind,
        Mode::from_raw_mode(mode & 0o7777),
        rfs::makedev(dev.0, dev.1),
    )?)
}
