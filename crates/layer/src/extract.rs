//! Applies tar entries to a root directory, one at a time, every name resolved inside it.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::fsops::{self, lstat, os};
use crate::merged::{Lookup, Merged, Resolved};
use crate::tar::{Entry, EntryKind, Reader};
use crate::whiteout::WHITEOUT;
use crate::write::{copy_attrs_fd, copy_node, set_opaque, st_times, write_dense, Times};
use crate::{Error, Form, Lowers};

const WRITE_BUF: usize = 1 << 20;
/// The largest owner id a layer may carry: 2^32-1 is "no owner" to the kernel.
const MAX_ID: u64 = u32::MAX as u64 - 1;

/// Extracts every entry of the tar stream; returns how many there were.
pub(crate) fn run(
    stream: &mut impl Read,
    root: BorrowedFd<'_>,
    form: Form,
    lowers: &dyn Lowers,
) -> Result<u64, Error> {
    let mut x = Extractor::new(root, form, lowers)?;
    let mut reader = Reader::new(stream);
    let mut entries = 0;
    while let Some(entry) = reader.next_entry().map_err(Error::Stream)? {
        entries += 1;
        x.apply(&entry, &mut reader)?;
    }
    x.finish()?;
    Ok(entries)
}

/// The components of an entry name, taken relative to the root; `..` may not climb above it.
pub(crate) fn clean(path: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in path.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err("climbs out of the root with '..'");
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

pub(crate) fn join(comps: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, c) in comps.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(c.as_ref());
    }
    out
}

pub(crate) fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

pub(crate) fn hostile(path: &[u8], reason: impl Into<String>) -> Error {
    Error::Hostile {
        path: show(path),
        reason: reason.into(),
    }
}

pub(crate) fn io_err<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(io::Error) -> Error + 'p {
    move |source| Error::Io {
        path: show(path),
        op,
        source,
    }
}

pub(crate) fn errno<'p>(path: &'p [u8], op: &'static str) -> impl FnOnce(Errno) -> Error + 'p {
    move |e| Error::Io {
        path: show(path),
        op,
        source: e.into(),
    }
}

pub(crate) struct Extractor<'a> {
    pub(crate) root: BorrowedFd<'a>,
    pub(crate) form: Form,
    pub(crate) lowers: &'a dyn Lowers,
    pub(crate) lower_fds: Option<Vec<OwnedFd>>,
    /// The parent directory of the last entry, by entry path.
    pub(crate) cache: Option<(Vec<u8>, Rc<OwnedFd>)>,
    /// Directories whose times are set once everything is in them.
    pub(crate) dir_times: HashMap<Vec<u8>, Times>,
    /// Flattened form: paths this layer made (whiteouts only delete what lower layers made).
    pub(crate) upper: HashSet<Vec<u8>>,
    pub(crate) buf: Vec<u8>,
}

impl<'a> Extractor<'a> {
    fn new(root: BorrowedFd<'a>, form: Form, lowers: &'a dyn Lowers) -> Result<Self, Error> {
        Ok(Extractor {
            root,
            form,
            lowers,
            lower_fds: None,
            cache: None,
            dir_times: HashMap::new(),
            upper: HashSet::new(),
            buf: vec![0u8; WRITE_BUF],
        })
    }

    fn apply(&mut self, e: &Entry, r: &mut Reader<impl Read>) -> Result<(), Error> {
        let comps = clean(&e.path).map_err(|why| hostile(&e.path, why))?;
        if e.uid > MAX_ID || e.gid > MAX_ID {
            return Err(hostile(
                &e.path,
                format!("owner {}:{} is out of range", e.uid, e.gid),
            ));
        }
        for (k, _) in &e.xattrs {
            if k.starts_with(b"trusted.overlay.") {
                return Err(hostile(
                    &e.path,
                    format!("carries the overlayfs-private xattr {}", show(k)),
                ));
            }
        }
        let Some((name, parent)) = comps.split_last() else {
            if e.kind != EntryKind::Dir {
                return Err(hostile(&e.path, "the root can only be a directory"));
            }
            let dir = fsops::open_child_dir_rd(self.root, b".")
                .map_err(io_err(&e.path, "opening the root"))?;
            self.fd_attrs(dir.as_fd(), e)?;
            self.dir_times.insert(Vec::new(), (e.mtime, e.atime));
            return Ok(());
        };
        if let Some(target) = name.strip_prefix(WHITEOUT) {
            return self.whiteout(parent, target, e);
        }
        let dir = self.parent_dir(parent, &e.path)?;
        let full = join(&comps);
        match e.kind {
            EntryKind::Dir => self.dir(&dir, name, e, &full)?,
            EntryKind::File => self.file(&dir, name, e, r)?,
            EntryKind::Symlink => self.symlink(&dir, name, e)?,
            EntryKind::Hardlink => self.hardlink(&dir, name, &comps, e)?,
            EntryKind::Char | EntryKind::Block | EntryKind::Fifo => self.node(&dir, name, e)?,
        }
        if self.form == Form::Flat {
            self.upper.insert(full);
        }
        Ok(())
    }

    // ---- directories to put entries in

    /// The directory `parent` (entry components), created when missing: in the overlay form
    /// by copying it up from the lower layers when they have it, otherwise as root 0755.
    pub(crate) fn parent_dir(
        &mut self,
        parent: &[&[u8]],
        path: &[u8],
    ) -> Result<Rc<OwnedFd>, Error> {
        let key = join(parent);
        if let Some((k, fd)) = &self.cache {
            if *k == key {
                return Ok(fd.clone());
            }
        }
        let fd = match fsops::open_dir_in(self.root, &key) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.create_parent(parent, path)?,
            // A parent this layer whited out before recreating it: replaced by an opaque directory.
            Err(e)
                if self.form == Form::Overlay
                    && e.raw_os_error() == Some(Errno::NOTDIR.raw_os_error()) =>
            {
                self.create_parent(parent, path)?
            }
            Err(e) => {
                return Err(Error::Io {
                    path: show(path),
                    op: "resolving the parent directory",
                    source: e,
                })
            }
        };
        if self.form == Form::Flat && !self.dir_times.contains_key(&key) {
            // Keep the times the directory had before this layer changed it.
            let st = rfs::fstat(&fd).map_err(errno(path, "reading the parent directory"))?;
            let t = |s: i64, n: i64| (s, n as u32);
            self.dir_times.insert(
                key.clone(),
                (
                    t(st.st_mtime, st.st_mtime_nsec as i64),
                    Some(t(st.st_atime, st.st_atime_nsec as i64)),
                ),
            );
        }
        let fd = Rc::new(fd);
        self.cache = Some((key, fd.clone()));
        Ok(fd)
    }

    fn lowers_present(&mut self) -> Result<bool, Error> {
        if self.form == Form::Flat {
            return Ok(false);
        }
        if self.lower_fds.is_none() {
            self.lower_fds = Some(self.lowers.open()?);
        }
        Ok(!self.lower_fds.as_ref().is_some_and(|l| l.is_empty()))
    }

    fn merged(&self) -> Merged<'_> {
        let mut layers = vec![self.root];
        layers.extend(self.lower_fds.iter().flatten().map(|f| f.as_fd()));
        Merged { layers }
    }

    fn create_parent(&mut self, parent: &[&[u8]], path: &[u8]) -> Result<OwnedFd, Error> {
        let (found, rest): (Vec<Vec<u8>>, Vec<Vec<u8>>) = if self.lowers_present()? {
            match self
                .merged()
                .resolve(parent, true)
                .map_err(io_err(path, "resolving the parent directory"))?
            {
                Resolved::Dir { comps } => (comps, Vec::new()),
                Resolved::Missing { found, rest } => (found, rest),
                Resolved::Other { .. } => {
                    return Err(Error::Io {
                        path: show(path),
                        op: "resolving the parent directory",
                        source: Errno::NOTDIR.into(),
                    })
                }
            }
        } else {
            (Vec::new(), parent.iter().map(|c| c.to_vec()).collect())
        };
        let mut dir = self.copy_up_dirs(&found, path)?;
        let mut at = found;
        for c in rest {
            match &c[..] {
                b"" | b"." => continue,
                b".." => {
                    return Err(hostile(
                        path,
                        "parent path goes through a missing directory and '..'",
                    ))
                }
                _ => {}
            }
            at.push(c.clone());
            // The prefix may exist already (an entry path without its directories).
            match fsops::open_dir_in(self.root, &join(&at)) {
                Ok(fd) => {
                    dir = fd;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Only a whiteout of this layer may be replaced by a parent directory.
                Err(_)
                    if self.form == Form::Overlay
                        && lstat(dir.as_fd(), &c)
                            .ok()
                            .flatten()
                            .is_some_and(|st| fsops::is_whiteout(&st)) => {}
                Err(e) => {
                    return Err(Error::Io {
                        path: show(path),
                        op: "resolving the parent directory",
                        source: e,
                    })
                }
            }
            let wh = self
                .make_room(dir.as_fd(), &c, true)
                .map_err(io_err(path, "making a parent directory"))?;
            match rfs::mkdirat(&dir, os(&c), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(Error::Io {
                        path: show(path),
                        op: "making a parent directory",
                        source: e.into(),
                    })
                }
            }
            let sub = fsops::open_child_dir_rd(dir.as_fd(), &c)
                .map_err(|_| hostile(path, "a parent is a symlink that leads nowhere"))?;
            rfs::fchmod(&sub, Mode::from_raw_mode(0o755))
                .map_err(errno(path, "making a parent directory"))?;
            if wh.1 && self.form == Form::Overlay {
                set_opaque(sub.as_fd()).map_err(io_err(path, "marking a directory opaque"))?;
            }
            dir = fsops::open_child_dir(dir.as_fd(), &c)
                .map_err(io_err(path, "making a parent directory"))?;
        }
        Ok(dir)
    }

    /// Makes sure the directories `comps` (a physical path, all directories in the merged
    /// view) exist in this layer, copying each missing one's attributes from the lower layer
    /// that shows it. Returns the last one as an `O_PATH` fd.
    fn copy_up_dirs(&mut self, comps: &[Vec<u8>], path: &[u8]) -> Result<OwnedFd, Error> {
        let mut up =
            fsops::open_dir_in(self.root, b"").map_err(io_err(path, "opening the root"))?;
        if comps.is_empty() {
            return Ok(up);
        }
        let mut dir_times = Vec::new();
        {
            let merged = self.merged();
            let mut active = merged
                .root()
                .map_err(io_err(path, "opening lower layers"))?;
            for (i, c) in comps.iter().enumerate() {
                let Lookup::Dir(next) = merged
                    .step(&active, c)
                    .map_err(io_err(path, "looking up lower layers"))?
                else {
                    return Err(Error::Io {
                        path: show(path),
                        op: "copying up a directory",
                        source: Errno::NOTDIR.into(),
                    });
                };
                match fsops::open_child_dir(up.as_fd(), c) {
                    Ok(fd) => up = fd,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        let (_, src) = &next[0];
                        let st =
                            rfs::fstat(src).map_err(errno(path, "reading a lower directory"))?;
                        rfs::mkdirat(&up, os(c), Mode::from_raw_mode(0o700))
                            .map_err(errno(path, "copying up a directory"))?;
                        let new = fsops::open_child_dir_rd(up.as_fd(), c)
                            .map_err(io_err(path, "copying up a directory"))?;
                        copy_attrs_fd(src.as_fd(), &st, new.as_fd())
                            .map_err(io_err(path, "copying up a directory"))?;
                        dir_times.push((join(&comps[..=i]), st_times(&st)));
                        up = fsops::open_child_dir(up.as_fd(), c)
                            .map_err(io_err(path, "copying up a directory"))?;
                    }
                    Err(e) => {
                        return Err(Error::Io {
                            path: show(path),
                            op: "copying up a directory",
                            source: e,
                        })
                    }
                }
                active = next;
            }
        }
        for (k, t) in dir_times {
            self.dir_times.entry(k).or_insert(t);
        }
        Ok(up)
    }

    /// Clears `name` in `dir` for a new entry. Returns (an existing directory is kept because
    /// the new entry is a directory too, a whiteout was removed).
    fn make_room(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        new_is_dir: bool,
    ) -> io::Result<(bool, bool)> {
        let Some(st) = lstat(dir, name)? else {
            return Ok((false, false));
        };
        if fsops::file_type(&st) == FileType::Directory {
            if new_is_dir {
                return Ok((true, false));
            }
            self.cache = None;
            fsops::remove_all(dir, name)?;
            return Ok((false, false));
        }
        let wh = self.form == Form::Overlay && fsops::is_whiteout(&st);
        rfs::unlinkat(dir, os(name), AtFlags::empty())?;
        Ok((false, wh))
    }

    // ---- entry kinds

    fn dir(&mut self, dir: &OwnedFd, name: &[u8], e: &Entry, full: &[u8]) -> Result<(), Error> {
        let mut replaced_whiteout = false;
        match rfs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let (keep, wh) = self
                    .make_room(dir.as_fd(), name, true)
                    .map_err(io_err(&e.path, "replacing"))?;
                replaced_whiteout = wh;
                if !keep {
                    rfs::mkdirat(dir, os(name), Mode::from_raw_mode(0o700))
                        .map_err(errno(&e.path, "creating the directory"))?;
                }
            }
            Err(err) => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "creating the directory",
                    source: err.into(),
                })
            }
        }
        let fd = fsops::open_child_dir_rd(dir.as_fd(), name)
            .map_err(io_err(&e.path, "opening the directory"))?;
        if replaced_whiteout {
            // A directory replacing a deleted one must not show the lower one's contents.
            set_opaque(fd.as_fd()).map_err(io_err(&e.path, "marking the directory opaque"))?;
        }
        self.fd_attrs(fd.as_fd(), e)?;
        self.dir_times.insert(full.to_vec(), (e.mtime, e.atime));
        Ok(())
    }

    fn file(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        e: &Entry,
        r: &mut Reader<impl Read>,
    ) -> Result<(), Error> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let fd = match rfs::openat(dir, os(name), flags, mode) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => {
                self.make_room(dir.as_fd(), name, false)
                    .map_err(io_err(&e.path, "replacing"))?;
                rfs::openat(dir, os(name), flags, mode)
                    .map_err(errno(&e.path, "creating the file"))?
            }
            Err(err) => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "creating the file",
                    source: err.into(),
                })
            }
        };
        let written = match &e.sparse {
            Some(map) => {
                let mut end = 0;
                for &(off, len) in map {
                    end = write_dense(&fd, off, len, &mut self.buf, &mut |b| r.read_data(b))
                        .map_err(|err| stream_or_io(err, &e.path))?;
                }
                end
            }
            None => write_dense(&fd, 0, e.real_size, &mut self.buf, &mut |b| r.read_data(b))
                .map_err(|err| stream_or_io(err, &e.path))?,
        };
        if written < e.real_size {
            rfs::ftruncate(&fd, e.real_size).map_err(errno(&e.path, "sizing the file"))?;
        }
        self.fd_attrs(fd.as_fd(), e)?;
        rfs::futimens(&fd, &fsops::timestamps(e.mtime, e.atime))
            .map_err(errno(&e.path, "setting times"))?;
        Ok(())
    }

    fn symlink(&mut self, dir: &OwnedFd, name: &[u8], e: &Entry) -> Result<(), Error> {
        if e.link.is_empty() {
            return Err(hostile(&e.path, "symlink with an empty target"));
        }
        match rfs::symlinkat(os(&e.link), dir, os(name)) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                self.make_room(dir.as_fd(), name, false)
                    .map_err(io_err(&e.path, "replacing"))?;
                rfs::symlinkat(os(&e.link), dir, os(name))
                    .map_err(errno(&e.path, "creating the symlink"))?;
            }
            Err(err) => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "creating the symlink",
                    source: err.into(),
                })
            }
        }
        self.at_attrs(dir.as_fd(), name, e, false)
    }

    fn node(&mut self, dir: &OwnedFd, name: &[u8], e: &Entry) -> Result<(), Error> {
        let kind = match e.kind {
            EntryKind::Char => FileType::CharacterDevice,
            EntryKind::Block => FileType::BlockDevice,
            _ => FileType::Fifo,
        };
        let dev = if e.kind == EntryKind::Fifo {
            (0, 0)
        } else {
            e.dev
        };
        match fsops::mknod(dir.as_fd(), name, kind, 0o600, dev) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                self.make_room(dir.as_fd(), name, false)
                    .map_err(io_err(&e.path, "replacing"))?;
                fsops::mknod(dir.as_fd(), name, kind, 0o600, dev)
                    .map_err(io_err(&e.path, "creating the node"))?;
            }
            Err(err) => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "creating the node",
                    source: err,
                })
            }
        }
        self.at_attrs(dir.as_fd(), name, e, true)
    }

    fn hardlink(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        comps: &[&[u8]],
        e: &Entry,
    ) -> Result<(), Error> {
        let target =
            clean(&e.link).map_err(|why| hostile(&e.path, format!("hardlink target {}", why)))?;
        let Some((tname, tparent)) = target.split_last() else {
            return Err(hostile(&e.path, "hardlink to the root"));
        };
        if target == comps {
            return Ok(());
        }
        // The target in this layer (its parent resolved inside the root, itself not followed).
        let here = match fsops::open_dir_in(self.root, &join(tparent)) {
            Ok(tdir) => match lstat(tdir.as_fd(), tname)
                .map_err(io_err(&e.path, "looking up the hardlink target"))?
            {
                Some(st) if fsops::file_type(&st) == FileType::Directory => {
                    return Err(hostile(&e.path, "hardlink to a directory"));
                }
                Some(st) if self.form == Form::Overlay && fsops::is_whiteout(&st) => {
                    return Err(hostile(
                        &e.path,
                        format!("hardlink to {}, which this layer deleted", show(&e.link)),
                    ));
                }
                Some(_) => Some((tdir, tname.to_vec())),
                None => None,
            },
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "resolving the hardlink target",
                    source: err,
                })
            }
        };
        let (tdir, tname) = match here {
            Some(t) => t,
            None if self.lowers_present()? => self.copy_up_target(&target, e)?,
            None => {
                return Err(Error::Io {
                    path: show(&e.path),
                    op: "hardlink target not found",
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
            }
        };
        match rfs::linkat(&tdir, os(&tname), dir, os(name), AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => {
                self.make_room(dir.as_fd(), name, false)
                    .map_err(io_err(&e.path, "replacing"))?;
                rfs::linkat(&tdir, os(&tname), dir, os(name), AtFlags::empty())
                    .map_err(errno(&e.path, "creating the hardlink"))
            }
            Err(err) => Err(Error::Io {
                path: show(&e.path),
                op: "creating the hardlink",
                source: err.into(),
            }),
        }
    }

    /// Copies the hardlink target `target` from the lower layers into this one (at its
    /// physical path) and returns its directory here and its name.
    fn copy_up_target(&mut self, target: &[&[u8]], e: &Entry) -> Result<(OwnedFd, Vec<u8>), Error> {
        let resolved = self
            .merged()
            .resolve(target, false)
            .map_err(io_err(&e.path, "looking up the hardlink target"))?;
        match resolved {
            Resolved::Other {
                comps,
                layer,
                dir: src_dir,
                st,
            } => {
                let (name, parent) = comps.split_last().expect("a non-directory has a name");
                let up = self.copy_up_dirs(parent, &e.path)?;
                if layer != 0 {
                    copy_node(src_dir.as_fd(), name, &st, up.as_fd(), &mut self.buf)
                        .map_err(io_err(&e.path, "copying up the hardlink target"))?;
                }
                Ok((up, name.clone()))
            }
            Resolved::Dir { .. } => Err(hostile(&e.path, "hardlink to a directory")),
            Resolved::Missing { .. } => Err(Error::Io {
                path: show(&e.path),
                op: "hardlink target not found",
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    }

    // ---- attributes

    /// Owner, mode and xattrs through an fd (files and directories), in that order: chown
    /// clears setuid bits and capabilities, so they come after it.
    fn fd_attrs(&self, fd: BorrowedFd<'_>, e: &Entry) -> Result<(), Error> {
        rfs::fchown(
            fd,
            Some(rfs::Uid::from_raw(e.uid as u32)),
            Some(rfs::Gid::from_raw(e.gid as u32)),
        )
        .map_err(errno(&e.path, "setting the owner"))?;
        rfs::fchmod(fd, Mode::from_raw_mode(e.mode)).map_err(errno(&e.path, "setting the mode"))?;
        for (k, v) in &e.xattrs {
            rfs::fsetxattr(fd, os(k), v, rfs::XattrFlags::empty())
                .map_err(errno(&e.path, "setting an xattr"))?;
        }
        Ok(())
    }

    /// Owner, mode (not for symlinks), xattrs and times of `name` in `dir`, never followed.
    fn at_attrs(
        &self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        e: &Entry,
        chmod: bool,
    ) -> Result<(), Error> {
        fsops::chown_at(dir, name, e.uid as u32, e.gid as u32)
            .map_err(io_err(&e.path, "setting the owner"))?;
        if chmod {
            rfs::chmodat(dir, os(name), Mode::from_raw_mode(e.mode), AtFlags::empty())
                .map_err(errno(&e.path, "setting the mode"))?;
        }
        for (k, v) in &e.xattrs {
            fsops::lsetxattr_at(dir, name, k, v).map_err(io_err(&e.path, "setting an xattr"))?;
        }
        fsops::set_times(dir, name, e.mtime, e.atime).map_err(io_err(&e.path, "setting times"))
    }

    /// Sets directories' times now that nothing more goes into them.
    fn finish(&mut self) -> Result<(), Error> {
        self.cache = None;
        for (path, (mtime, atime)) in std::mem::take(&mut self.dir_times) {
            let comps: Vec<&[u8]> = path
                .split(|&b| b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            let (name, parent) = match comps.split_last() {
                Some((n, p)) => (*n, join(p)),
                None => (&b"."[..], Vec::new()),
            };
            let dir = match fsops::open_dir_in(self.root, &parent) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::Io {
                        path: show(&path),
                        op: "setting directory times",
                        source: e,
                    })
                }
            };
            match lstat(dir.as_fd(), name) {
                Ok(Some(st)) if fsops::file_type(&st) == FileType::Directory => {}
                _ => continue,
            }
            fsops::set_times(dir.as_fd(), name, mtime, atime)
                .map_err(io_err(&path, "setting directory times"))?;
        }
        Ok(())
    }
}

fn stream_or_io(err: io::Error, path: &[u8]) -> Error {
    match err.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => Error::Stream(err),
        _ => Error::Io {
            path: show(path),
            op: "writing the file",
            source: err,
        },
    }
}
