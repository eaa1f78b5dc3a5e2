//! Executor for the filesystem part of a plan, run by the container's init in its new mount
//! namespace before pivot_root. Every target is resolved inside the rootfs by fd
//! (`openat2` with `RESOLVE_IN_ROOT`), so a symlink in the image can never point a mount
//! outside it; mount(2) is then given the `/proc/self/fd/N` of that fd.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_kind::Kind;
use berth_sys as sys;
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

use crate::init::Fail;
use crate::plan::{self, MountOp, Plan};

pub(crate) const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn cstr(s: &str) -> CString {
    CString::new(s).expect("paths from the plan have no NUL")
}

pub(crate) fn fd_path(fd: BorrowedFd<'_>) -> CString {
    cstr(&format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Opens `path` (absolute in the container) inside the root, never leaving it.
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(io::Error::from)
}

/// Creates every missing directory of `path` inside the root; returns an O_PATH fd of it.
pub(crate) fn mkdir_all(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    let mut cur = String::new();
    let mut fd = open_in_root(root, "/", OFlags::PATH | OFlags::DIRECTORY)?;
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        cur.push('/');
        cur.push_str(comp);
        match open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(next) => fd = next,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The parent fd was resolved inside the root; the new name is one component.
                let parent =
                    open_in_root(root, &parent_of(&cur), OFlags::DIRECTORY | OFlags::RDONLY)?;
                match rustix::fs::mkdirat(&parent, comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => {}
                    Err(e) if e == rustix::io::Errno::EXIST => {}
                    Err(e) => return Err(e.into()),
                }
                fd = open_in_root(root, &cur, OFlags::PATH | OFlags::DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(fd)
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".to_string(),
        Some(i) => path[..i].to_string(),
    }
}

fn base_of(path: &str) -> &str {
    path.rsplit('/').find(|c| !c.is_empty()).unwrap_or(".")
}

/// Creates an empty file at `path` inside the root (for file bind mounts); returns O_PATH fd.
fn touch(root: BorrowedFd<'_>, path: &str) -> io::Result<OwnedFd> {
    match open_in_root(root, path, OFlags::PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let parent = mkdir_all(root, &parent_of(path))?;
    let parent = rustix::fs::openat(
        &parent,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match rustix::fs::openat(
        &parent,
        base_of(path),
        OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::from_raw_mode(0o644),
    ) {
        Ok(_) => {}
        Err(e) if e == rustix::io::Errno::EXIST => {}
        Err(e) => return Err(e.into()),
    }
    open_in_root(root, path, OFlags::PATH)
}

/// Opens /proc of the host (still visible before pivot_root) and checks it is a real procfs.
pub(crate) fn host_proc() -> Result<OwnedFd, Fail> {
    let fd = rustix::fs::open(
        "/proc",
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Fail::io("opening /proc", e.into()))?;
    let magic = sys::fs_magic(fd.as_fd()).map_err(|e| Fail::io("checking /proc", e))?;
    if magic != PROC_SUPER_MAGIC {
        return Err(Fail::new(
            Kind::FailedPrecondition,
            "/proc is not a procfs mount; refusing to write to it",
        ));
    }
    Ok(fd)
}

/// Writes a file under the verified /proc, never following a symlink out of it.
pub(crate) fn write_proc(proc_fd: BorrowedFd<'_>, rel: &str, value: &str) -> io::Result<()> {
    let fd = rustix::fs::openat2(
        proc_fd,
        rel,
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?;
    let n = rustix::io::write(&fd, value.as_bytes())?;
    if n != value.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short write"));
    }
    Ok(())
}

/// Propagation of `/`, then the rootfs bind-mounted onto itself; returns an O_PATH fd of it.
pub(crate) fn prepare_root(plan: &Plan) -> Result<OwnedFd, Fail> {
    sys::mount(None, c"/", None, plan.root_propagation, None).map_err(|e| {
        Fail::io(
            "making / slave or private in the container's mount namespace",
            e,
        )
    })?;
    let rootfs = cstr(&plan.rootfs.to_string_lossy());
    sys::mount(
        Some(&rootfs),
        &rootfs,
        None,
        plan::MS_BIND | plan::MS_REC,
        None,
    )
    .map_err(|e| Fail::io(format!("bind-mounting rootfs {}", plan.rootfs.display()), e))?;
    rustix::fs::open(
        &plan.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        Fail::io(
            format!("opening rootfs {}", plan.rootfs.display()),
            e.into(),
        )
    })
}

/// Moves the detached idmapped mount `detached` (made by berth-run, see idmap.rs, with its
/// options already set) onto the mount's target, resolved inside the rootfs by fd, then
/// applies its propagation.
pub(crate) fn mount_idmapped(
    root: BorrowedFd<'_>,
    op: &MountOp,
    detached: BorrowedFd<'_>,
) -> Result<(), Fail> {
    let what = format!("mount {}", op.dest);
    let fail = |e: io::Error| Fail::io(what.clone(), e);
    let st = rustix::fs::fstat(detached).map_err(|e| fail(e.into()))?;
    let is_dir = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory;
    let target = if is_dir {
        mkdir_all(root, &op.dest)
    } else {
        touch(root, &op.dest)
    }
    .map_err(fail)?;
    rustix::mount::move_mount(
        detached,
        "",
        target.as_fd(),
        "",
        rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
            | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| {
        Fail::io(
            format!("{what}: moving the idmapped mount into place"),
            e.into(),
        )
    })?;
    if !op.propagation.is_empty() {
        let mounted = open_in_root(root, &op.dest, OFlags::PATH).map_err(fail)?;
        let mpath = fd_path(mounted.as_fd());
        for p in &op.propagation {
            sys::mount(None, &mpath, None, *p, None)
                .map_err(|e| Fail::io(format!("{what}: setting propagation"), e))?;
        }
    }
    Ok(())
}

/// Makes one mount of the plan.
pub(crate) fn mount_one(
    root: BorrowedFd<'_>,
    op: &MountOp,
    bundle: &Path,
    cgroups: &[(String, PathBuf)],
    new_cgroupns: bool,
) -> Result<(), Fail> {
    let what = format!("mount {}", op.dest);
    let fail = |e: io::Error| Fail::io(what.clone(), e);
    let source_path = op.source.as_deref().map(|s| {
        if s.starts_with('/') {
            PathBuf::from(s)
        } else {
            bundle.join(s)
        }
    });
    // A tmpfs over a directory the image has takes that directory's mode unless the options
    // give one (a later `mode=` wins): what runc (1.1.8+) and crun do.
    let mut data = op.data.clone();
    if op.fstype.as_deref() == Some("tmpfs") {
        if let Ok(under) = open_in_root(root, &op.dest, OFlags::PATH | OFlags::DIRECTORY) {
            let st = rustix::fs::fstat(&under).map_err(|e| fail(e.into()))?;
            let mode = format!("mode={:04o}", st.st_mode & 0o7777);
            data = if data.is_empty() {
                mode
            } else {
                format!("{mode},{data}")
            };
        }
    }
    let target = if op.is_bind() {
        let src = source_path.as_ref().expect("plan checked bind sources");
        let meta = std::fs::metadata(src)
            .map_err(|e| Fail::io(format!("{what}: source {}", src.display()), e))?;
        if meta.is_dir() {
            mkdir_all(root, &op.dest)
        } else {
            touch(root, &op.dest)
        }
        .map_err(fail)?
    } else {
        mkdir_all(root, &op.dest).map_err(fail)?
    };
    let tpath = fd_path(target.as_fd());
    let data = (!data.is_empty()).then(|| cstr(&data));
    let base_flags = op.flags & !(plan::MS_RDONLY | plan::MS_REMOUNT);
    match op.fstype.as_deref() {
        None => {
            let src = cstr(&source_path.expect("bind source").to_string_lossy());
            sys::mount(
                Some(&src),
                &tpath,
                None,
                op.flags & (plan::MS_BIND | plan::MS_REC),
                None,
            )
            .map_err(fail)?;
        }
        Some("cgroup") => return mount_cgroup_v1(root, op, &tpath, cgroups, new_cgroupns),
        Some(fstype) => {
            let src = cstr(op.source.as_deref().unwrap_or(fstype));
            let ty = cstr(fstype);
            let flags = if fstype == "tmpfs" {
                base_flags
            } else {
                op.flags & !plan::MS_REMOUNT
            };
            // tmpcopyup: the directory the tmpfs will hide, opened before it is hidden.
            let under = if op.copy_up {
                let fd = rustix::fs::openat(
                    &target,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fail(e.into()))?;
                Some(fd)
            } else {
                None
            };
            sys::mount(Some(&src), &tpath, Some(&ty), flags, data.as_deref()).map_err(fail)?;
            if let Some(under) = under {
                let top = open_in_root(root, &op.dest, OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(fail)?;
                copy_up(under.as_fd(), top.as_fd(), 0)
                    .map_err(|e| Fail::io(format!("{what}: tmpcopyup"), e))?;
            }
        }
    }
    // Re-open the target: the old fd still names the directory under the new mount.
    let mounted = open_in_root(root, &op.dest, OFlags::PATH).map_err(fail)?;
    let mpath = fd_path(mounted.as_fd());
    let needs_remount = (op.is_bind() && op.flags & !(plan::MS_BIND | plan::MS_REC) != 0)
        || (op.fstype.as_deref() == Some("tmpfs") && op.flags & plan::MS_RDONLY != 0);
    if needs_remount {
        let flags = (op.flags & !plan::MS_REC)
            | plan::MS_REMOUNT
            | if op.is_bind() { plan::MS_BIND } else { 0 };
        sys::mount(None, &mpath, None, flags, data.as_deref())
            .map_err(|e| Fail::io(format!("{what}: remounting with its options"), e))?;
    }
    for p in &op.propagation {
        sys::mount(None, &mpath, None, *p, None)
            .map_err(|e| Fail::io(format!("{what}: setting propagation"), e))?;
    }
    if op.recursive_attrs != 0 || op.recursive_clear != 0 {
        sys::mount_setattr(
            mounted.as_fd(),
            sys::mount_attr::AT_RECURSIVE,
            op.recursive_attrs,
            op.recursive_clear,
        )
        .map_err(|e| {
            Fail::io(
                format!("{what}: setting recursive attributes (needs Linux 5.12)"),
                e,
            )
        })?;
    }
    Ok(())
}

/// How deep a `tmpcopyup` tree may be (each level is a stack frame and two open fds).
const COPY_UP_MAX_DEPTH: usize = 256;

/// `tmpcopyup`: copies the tree under `from` (the directory a tmpfs now hides) into `to` (the
/// tmpfs), as runc does: directories, files, symlinks (as they are, never followed), device
/// nodes, fifos and sockets, with their owners and modes; the tmpfs' root takes the owner and
/// mode of the directory it hides. Hard links become copies. Every name is opened relative to
/// its parent's fd with O_NOFOLLOW, so nothing in the image can lead the copy outside it; a
/// tree deeper than [`COPY_UP_MAX_DEPTH`] is an error, not a stack overflow.
fn copy_up(from: BorrowedFd<'_>, to: BorrowedFd<'_>, depth: usize) -> io::Result<()> {
    use rustix::fs::{AtFlags, Dir};
    if depth > COPY_UP_MAX_DEPTH {
        return Err(io::Error::other(format!(
            "the tree is deeper than {COPY_UP_MAX_DEPTH} directories"
        )));
    }
    let st = rustix::fs::fstat(from)?;
    for entry in Dir::read_from(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let meta = rustix::fs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let perm = Mode::from_raw_mode(meta.st_mode & 0o7777);
        let ty = FileType::from_raw_mode(meta.st_mode);
        let owner = |fd: BorrowedFd<'_>, path: &std::ffi::CStr, flags: AtFlags| {
            rustix::fs::chownat(
                fd,
                path,
                Some(rustix::fs::Uid::from_raw(meta.st_uid)),
                Some(rustix::fs::Gid::from_raw(meta.st_gid)),
                flags,
            )
        };
        let nofollow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match ty {
            FileType::Directory => {
                rustix::fs::mkdirat(to, name, Mode::from_raw_mode(0o700))?;
                let src = rustix::fs::openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
                    Mode::empty(),
                )?;
                let dst = rustix::fs::openat(
                    to,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | nofollow,
                    Mode::empty(),
                )?;
                copy_up(src.as_fd(), dst.as_fd(), depth + 1)?;
            }
            FileType::RegularFile => {
                // Non-blocking, then checked: a file swapped for a fifo since the stat must
                // not hang the init.
                let src = rustix::fs::openat(
                    from,
                    name,
                    OFlags::RDONLY | OFlags::NONBLOCK | nofollow,
                    Mode::empty(),
                )?;
                if FileType::from_raw_mode(rustix::fs::fstat(&src)?.st_mode)
                    != FileType::RegularFile
                {
                    return Err(io::Error::other("a file changed while it was copied"));
                }
                let dst = rustix::fs::openat(
                    to,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | nofollow,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut src = std::fs::File::from(src);
                let mut out = std::fs::File::from(dst);
                io::copy(&mut src, &mut out)?;
                rustix::fs::fchown(
                    &out,
                    Some(rustix::fs::Uid::from_raw(meta.st_uid)),
                    Some(rustix::fs::Gid::from_raw(meta.st_gid)),
                )?;
                rustix::fs::fchmod(&out, perm)?;
                continue;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(from, name, Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), to, name)?;
                owner(to, name, AtFlags::SYMLINK_NOFOLLOW)?;
                continue;
            }
            _ => {
                rustix::fs::mknodat(to, name, ty, perm, meta.st_rdev)?;
            }
        }
        // Owner before mode: a chown clears the set-id bits.
        owner(to, name, AtFlags::SYMLINK_NOFOLLOW)?;
        rustix::fs::chmodat(to, name, perm, AtFlags::empty())?;
    }
    rustix::fs::fchown(
        to,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(to, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    Ok(())
}

/// A `cgroup` mount on a v1 or hybrid host: a tmpfs with one directory per hierarchy, each the
/// container's own cgroup (a fresh mount inside a cgroup namespace, else a bind of its dir).
fn mount_cgroup_v1(
    root: BorrowedFd<'_>,
    op: &MountOp,
    tpath: &CString,
    cgroups: &[(String, PathBuf)],
    new_cgroupns: bool,
) -> Result<(), Fail> {
    let what = format!("mount {}", op.dest);
    let flags = op.flags & (plan::MS_NOSUID | plan::MS_NODEV | plan::MS_NOEXEC);
    sys::mount(
        Some(c"tmpfs"),
        tpath,
        Some(c"tmpfs"),
        flags,
        Some(c"mode=755"),
    )
    .map_err(|e| Fail::io(what.clone(), e))?;
    for (name, host_dir) in cgroups {
        let dest = format!("{}/{}", op.dest.trim_end_matches('/'), name);
        let fd = mkdir_all(root, &dest).map_err(|e| Fail::io(format!("{what}: {name}"), e))?;
        let p = fd_path(fd.as_fd());
        let res = if new_cgroupns {
            if name == "unified" {
                sys::mount(Some(c"cgroup2"), &p, Some(c"cgroup2"), flags, None)
            } else {
                sys::mount(
                    Some(c"cgroup"),
                    &p,
                    Some(c"cgroup"),
                    flags,
                    Some(&cstr(name)),
                )
            }
        } else {
            sys::mount(
                Some(&cstr(&host_dir.to_string_lossy())),
                &p,
                None,
                plan::MS_BIND,
                None,
            )
        };
        res.map_err(|e| Fail::io(format!("{what}: {name}"), e))?;
        if op.flags & plan::MS_RDONLY != 0 {
            let m = open_in_root(root, &dest, OFlags::PATH)
                .map_err(|e| Fail::io(format!("{what}: {name}"), e))?;
            sys::mount(
                None,
                &fd_path(m.as_fd()),
                None,
                plan::MS_REMOUNT | plan::MS_BIND | plan::MS_RDONLY | flags,
                None,
            )
            .map_err(|e| Fail::io(format!("{what}: {name}: read-only"), e))?;
        }
    }
    if op.flags & plan::MS_RDONLY != 0 {
        let m =
            open_in_root(root, &op.dest, OFlags::PATH).map_err(|e| Fail::io(what.clone(), e))?;
        sys::mount(
            None,
            &fd_path(m.as_fd()),
            None,
            plan::MS_REMOUNT | plan::MS_RDONLY | flags,
            None,
        )
        .map_err(|e| Fail::io(format!("{what}: read-only"), e))?;
    }
    Ok(())
}

/// Default and spec devices in /dev, plus the standard links. In a user namespace devices
/// cannot be made, so the host's are bind-mounted instead (as runc does).
pub(crate) fn make_devices(root: BorrowedFd<'_>, plan: &Plan, in_userns: bool) -> Result<(), Fail> {
    if plan.dev_is_bind {
        return Ok(());
    }
    for d in &plan.devices {
        let what = format!("device {}", d.path);
        let parent = mkdir_all(root, &parent_of(&d.path)).map_err(|e| Fail::io(what.clone(), e))?;
        let parent = rustix::fs::openat(
            &parent,
            ".",
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Fail::io(what.clone(), e.into()))?;
        let name = base_of(&d.path);
        let _ = rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty());
        if in_userns {
            let fd = touch(root, &d.path).map_err(|e| Fail::io(what.clone(), e))?;
            sys::mount(
                Some(&cstr(&d.path)),
                &fd_path(fd.as_fd()),
                None,
                plan::MS_BIND,
                None,
            )
            .map_err(|e| Fail::io(what.clone(), e))?;
            continue;
        }
        let ft = match d.kind {
            'b' => FileType::BlockDevice,
            'p' => FileType::Fifo,
            _ => FileType::CharacterDevice,
        };
        let dev = rustix::fs::makedev(d.major as u32, d.minor as u32);
        rustix::fs::mknodat(&parent, name, ft, Mode::from_raw_mode(d.mode), dev)
            .map_err(|e| Fail::io(what.clone(), e.into()))?;
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Fail::io(what.clone(), e.into()))?;
        // mknod applies the umask; set the exact mode and owner through /proc/self/fd.
        let p = fd_path(fd.as_fd());
        let path = Path::new(p.to_str().expect("ascii"));
        std::os::unix::fs::chown(path, Some(d.uid), Some(d.gid))
            .map_err(|e| Fail::io(what.clone(), e))?;
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(d.mode))
            .map_err(|e| Fail::io(what.clone(), e))?;
    }
    let dev = mkdir_all(root, "/dev").map_err(|e| Fail::io("/dev", e))?;
    let dev = rustix::fs::openat(
        &dev,
        ".",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Fail::io("/dev", e.into()))?;
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
    ] {
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::EXIST => {}
            Err(e) => return Err(Fail::io(format!("symlink /dev/{name}"), e.into())),
        }
    }
    // /dev/ptmx follows the container's own devpts instance when it has one.
    if plan.mounts.iter().any(|m| m.dest == "/dev/pts") {
        let _ = rustix::fs::unlinkat(&dev, "ptmx", rustix::fs::AtFlags::empty());
        rustix::fs::symlinkat("pts/ptmx", &dev, "ptmx")
            .map_err(|e| Fail::io("symlink /dev/ptmx", e.into()))?;
    }
    Ok(())
}

/// Bind-mounts the terminal's slave onto /dev/console.
pub(crate) fn bind_console(root: BorrowedFd<'_>, slave: BorrowedFd<'_>) -> Result<(), Fail> {
    let fd = touch(root, "/dev/console").map_err(|e| Fail::io("/dev/console", e))?;
    sys::mount(
        Some(&fd_path(slave)),
        &fd_path(fd.as_fd()),
        None,
        plan::MS_BIND,
        None,
    )
    .map_err(|e| Fail::io("bind-mounting /dev/console", e))
}

/// Masks paths: a read-only empty tmpfs over a directory, /dev/null over a file. Missing
/// paths are skipped.
pub(crate) fn mask(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), Fail> {
    // The container's own /dev/null when it has one (as runc), else the host's.
    let null = open_in_root(root, "/dev/null", OFlags::PATH).ok();
    let null_path = null
        .as_ref()
        .map_or_else(|| c"/dev/null".to_owned(), |fd| fd_path(fd.as_fd()));
    for p in paths {
        let fd = match open_in_root(root, p, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Fail::io(format!("masking {p}"), e)),
        };
        let is_dir = rustix::fs::fstat(&fd)
            .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
            .unwrap_or(false);
        let target = fd_path(fd.as_fd());
        let res = if is_dir {
            sys::mount(
                Some(c"tmpfs"),
                &target,
                Some(c"tmpfs"),
                plan::MS_RDONLY,
                None,
            )
        } else {
            sys::mount(Some(&null_path), &target, None, plan::MS_BIND, None)
        };
        res.map_err(|e| Fail::io(format!("masking {p}"), e))?;
    }
    Ok(())
}

/// Makes paths read-only (recursively). Missing paths are skipped.
pub(crate) fn readonly(root: BorrowedFd<'_>, paths: &[String]) -> Result<(), Fail> {
    for p in paths {
        let fd = match open_in_root(root, p, OFlags::PATH) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Fail::io(format!("read-only {p}"), e)),
        };
        let t = fd_path(fd.as_fd());
        sys::mount(Some(&t), &t, None, plan::MS_BIND | plan::MS_REC, None)
            .map_err(|e| Fail::io(format!("read-only {p}"), e))?;
        let m = open_in_root(root, p, OFlags::PATH)
            .map_err(|e| Fail::io(format!("read-only {p}"), e))?;
        sys::mount_setattr(
            m.as_fd(),
            sys::mount_attr::AT_RECURSIVE,
            sys::mount_attr::RDONLY,
            0,
        )
        .map_err(|e| Fail::io(format!("read-only {p}"), e))?;
    }
    Ok(())
}

/// Makes the root mount itself read-only (its submounts keep their own flags, as with runc).
pub(crate) fn root_readonly(root: BorrowedFd<'_>) -> Result<(), Fail> {
    sys::mount_setattr(root, 0, sys::mount_attr::RDONLY, 0)
        .map_err(|e| Fail::io("making the root read-only", e))
}

/// pivot_root into the rootfs and detach the old root (or, with --no-pivot, move the rootfs
/// over / and chroot, for ramfs roots where pivot_root is impossible).
pub(crate) fn pivot(root: BorrowedFd<'_>, no_pivot: bool) -> Result<(), Fail> {
    sys::fchdir(root).map_err(|e| Fail::io("entering the rootfs", e))?;
    if no_pivot {
        sys::mount(Some(c"."), c"/", None, plan::MS_MOVE, None)
            .map_err(|e| Fail::io("moving the rootfs to / (--no-pivot)", e))?;
        sys::chroot(c".").map_err(|e| Fail::io("chroot (--no-pivot)", e))?;
    } else {
        let old = rustix::fs::open(
            "/",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Fail::io("opening the old root", e.into()))?;
        sys::pivot_root(c".", c".").map_err(|e| Fail::io("pivot_root", e))?;
        sys::fchdir(old.as_fd()).map_err(|e| Fail::io("entering the old root", e))?;
        sys::mount(None, c".", None, plan::MS_SLAVE | plan::MS_REC, None)
            .map_err(|e| Fail::io("making the old root slave", e))?;
        sys::umount(c".", libc::MNT_DETACH).map_err(|e| Fail::io("detaching the old root", e))?;
    }
    std::env::set_current_dir("/").map_err(|e| Fail::io("chdir /", e))
}

/// Whether an fd is on a tmpfs (masked directories are).
#[allow(dead_code)]
pub(crate) fn is_tmpfs(fd: BorrowedFd<'_>) -> bool {
    sys::fs_magic(fd).map(|m| m == TMPFS_MAGIC).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_in_the_image_cannot_lead_a_mount_outside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let rfd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        // An absolute link resolves inside the root, where its target does not exist.
        assert!(mkdir_all(rfd.as_fd(), "/evil/sub").is_err());
        mkdir_all(rfd.as_fd(), "/up/etc/x").unwrap();
        assert!(
            !outside.join("sub").exists(),
            "mkdir followed a symlink out of the root"
        );
        assert!(root.join("etc/x").is_dir());
        touch(rfd.as_fd(), "/up/file").unwrap();
        assert!(root.join("file").is_file());
    }

    #[test]
    fn parents_and_bases() {
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(base_of("/a/b/"), "b");
    }
}
