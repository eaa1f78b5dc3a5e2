//! The one place in berth for `unsafe` code and raw syscalls.
//!
//! Every function is a thin, safe wrapper over one syscall (or a short fixed sequence), taking
//! and returning owned or borrowed fds, `CStr` paths and plain integers. Every `unsafe` block
//! carries a `// SAFETY:` line saying why it is sound. Callers never see a raw pointer.
//!
//! Fork safety: [`clone_process`] is only sound in a single-threaded process (berth-run's
//! container setup is single-threaded by design; see docs/process-tree.md).

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

mod bpf;
mod clone3;
mod detach;
mod nsfd;

pub use bpf::{
    bpf_prog_attach, bpf_prog_detach, bpf_prog_get_fd_by_id, bpf_prog_info, bpf_prog_load,
    bpf_prog_query, BpfInsn, BpfProgInfo, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI, BPF_F_REPLACE,
    BPF_PROG_TYPE_CGROUP_DEVICE,
};
pub use clone3::{clone3_unavailable, clone_into_cgroup, CLONE_INTO_CGROUP};
pub use detach::close_detached;
pub use nsfd::{ns_owner, ns_parent, ns_type};

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The tiny static program (assembled from `src/stub.S`) that the container's init executes
/// last: it calls `execve(argv[1], &argv[2], envp)`. Empty where no stub is built for the
/// target architecture.
pub const EXEC_STUB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/stub"));

/// What [`clone_process`] returns: in which process the caller now runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// The new process.
    Child,
    /// The caller, with the child's pid (as seen from the caller's pid namespace).
    Parent(i32),
}

/// `clone(2)` used like `fork(2)`, with `flags` (CLONE_NEW*) creating namespaces for the child
/// in the same call. The child gets SIGCHLD as its exit signal.
///
/// Sound only in a single-threaded process: the child starts with a copy of this thread alone.
pub fn clone_process(flags: u64) -> io::Result<Forked> {
    let flags = flags | libc::SIGCHLD as u64;
    // SAFETY: raw clone without CLONE_VM and with a null stack behaves like fork(2): the child
    // gets a copy-on-write copy of the address space and continues on its copy of this stack.
    // Callers are single-threaded (documented above), so no lock is held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match check_long(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain `fork(2)`: the same contract as [`clone_process`] with no namespaces.
pub fn fork_process() -> io::Result<Forked> {
    clone_process(0)
}

/// Ends the calling process at once, without running destructors or atexit handlers: what
/// a forked child must do when it gives up.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions and does not return.
    unsafe { libc::_exit(code) }
}

fn ptr_array(items: &[CString]) -> Vec<*const libc::c_char> {
    let mut v: Vec<*const libc::c_char> = items.iter().map(|s| s.as_ptr()).collect();
    v.push(std::ptr::null());
    v
}

/// `execve(2)`. Returns only on failure.
pub fn exec_path(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    let a = ptr_array(argv);
    let e = ptr_array(envp);
    // SAFETY: path, argv and envp are NUL-terminated strings in NULL-terminated arrays that
    // outlive the call; execve only reads them.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    io::Error::last_os_error()
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: executes the file an fd refers to (a memfd).
/// Returns only on failure.
pub fn exec_fd(fd: BorrowedFd<'_>, argv: &[CString], envp: &[CString]) -> io::Error {
    let a = ptr_array(argv);
    let e = ptr_array(envp);
    // SAFETY: as for exec_path; the empty path is a valid NUL-terminated string.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// A sealed (write, grow, shrink, seal) close-on-exec memfd holding [`EXEC_STUB`], or `None`
/// where this architecture has no stub.
pub fn exec_stub_memfd() -> io::Result<Option<OwnedFd>> {
    if EXEC_STUB.is_empty() {
        return Ok(None);
    }
    // SAFETY: the name is a valid C string; memfd_create returns a new fd or -1.
    let raw = check(unsafe {
        libc::memfd_create(
            c"berth-exec-stub".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    })?;
    // SAFETY: raw is a fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut off = 0;
    while off < EXEC_STUB.len() {
        let rest = &EXEC_STUB[off..];
        // SAFETY: writes from a live slice of the stated length.
        let n = unsafe { libc::write(fd.as_raw_fd(), rest.as_ptr().cast(), rest.len()) };
        off += check_long(n as libc::c_long)? as usize;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own with an integer argument.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(Some(fd))
}

/// `mount(2)`. `source`, `fstype` and `data` may be absent.
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: u64,
    data: Option<&CStr>,
) -> io::Result<()> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is NULL or a valid C string alive for the call.
    check(unsafe {
        libc::mount(
            p(source),
            target.as_ptr(),
            p(fstype),
            flags as libc::c_ulong,
            p(data).cast(),
        )
    })?;
    Ok(())
}

/// `umount2(2)`.
pub fn umount(target: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: target is a valid C string.
    check(unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

/// `MOUNT_ATTR_*` values for [`mount_setattr`].
pub mod mount_attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The access-time mask: RELATIME (0), NOATIME and STRICTATIME are values within it, so a
    /// change of access-time mode puts the whole mask in `attr_clr`.
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
    pub const AT_RECURSIVE: u32 = 0x8000;
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | flags, …)`: changes mount attributes of the mount
/// `fd` refers to (recursively with [`mount_attr::AT_RECURSIVE`]).
pub fn mount_setattr(fd: BorrowedFd<'_>, flags: u32, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr_raw(fd, flags, &attr)
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | flags, attr)`.
fn mount_setattr_raw(fd: BorrowedFd<'_>, flags: u32, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: attr is a live, correctly sized struct mount_attr; the path is an empty C string.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags | libc::AT_EMPTY_PATH as u32,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: both are valid C strings.
    check_long(unsafe {
        libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr())
    })?;
    Ok(())
}

/// `chroot(2)`.
pub fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::chroot(path.as_ptr()) })?;
    Ok(())
}

/// `setns(2)`; `nstype` is a CLONE_NEW* flag or 0.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: setns takes an fd and an integer.
    check(unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

/// `unshare(2)`.
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: unshare takes an integer.
    check(unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// `sethostname(2)`.
pub fn sethostname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live str.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `setdomainname(2)`.
pub fn setdomainname(name: &str) -> io::Result<()> {
    // SAFETY: pointer and length of a live str.
    check(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) })?;
    Ok(())
}

/// `setgroups(2)` for this thread (raw syscall: berth's init is single-threaded).
pub fn setgroups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: pointer and length of a live slice of gid_t.
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })?;
    Ok(())
}

/// `setresgid(2)` for this thread.
pub fn setresgid(gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) })?;
    Ok(())
}

/// `setresuid(2)` for this thread.
pub fn setresuid(uid: u32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) })?;
    Ok(())
}

/// Capability sets as 64-bit masks (bit N = capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAP_V3: u32 = 0x2008_0522;

/// `capset(2)` for the calling thread.
pub fn capset(sets: CapSets) -> io::Result<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        CapData {
            effective: lo(sets.effective),
            permitted: lo(sets.permitted),
            inheritable: lo(sets.inheritable),
        },
        CapData {
            effective: hi(sets.effective),
            permitted: hi(sets.permitted),
            inheritable: hi(sets.inheritable),
        },
    ];
    // SAFETY: v3 header and a two-element data array, as capset(2) requires.
    check_long(unsafe {
        libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr())
    })?;
    Ok(())
}

/// `capget(2)` for the calling thread.
pub fn capget() -> io::Result<CapSets> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: v3 header and a writable two-element data array.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    })?;
    let join = |l: u32, h: u32| (l as u64) | ((h as u64) << 32);
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

fn prctl(op: i32, a: u64, b: u64) -> io::Result<i32> {
    // SAFETY: the prctl operations used here take integer arguments only.
    check(unsafe {
        libc::prctl(
            op,
            a as libc::c_ulong,
            b as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    })
}

/// Drops one capability from the bounding set (`PR_CAPBSET_DROP`).
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as u64, 0).map(drop)
}

/// Whether a capability is in the bounding set (`PR_CAPBSET_READ`); `Err` past the last one.
pub fn capbset_read(cap: u32) -> io::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap as u64, 0).map(|v| v == 1)
}

/// Raises one capability in the ambient set.
pub fn ambient_raise(cap: u32) -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as u64,
        cap as u64,
    )
    .map(drop)
}

/// Clears the ambient set.
pub fn ambient_clear_all() -> io::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
        0,
    )
    .map(drop)
}

/// `PR_SET_KEEPCAPS`.
pub fn set_keepcaps(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_KEEPCAPS, on as u64, 0).map(drop)
}

/// `PR_SET_NO_NEW_PRIVS`.
pub fn set_no_new_privs() -> io::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop)
}

/// `PR_SET_DUMPABLE`.
pub fn set_dumpable(on: bool) -> io::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, on as u64, 0).map(drop)
}

/// `PR_SET_PDEATHSIG`.
pub fn set_parent_death_signal(sig: i32) -> io::Result<()> {
    prctl(libc::PR_SET_PDEATHSIG, sig as u64, 0).map(drop)
}

/// `personality(2)`.
pub fn personality(persona: u64) -> io::Result<()> {
    // SAFETY: integer argument only.
    check(unsafe { libc::personality(persona as libc::c_ulong) })?;
    Ok(())
}

/// `prlimit(0, resource, new, NULL)`.
pub fn setrlimit(resource: i32, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a live rlimit64; the old-limit pointer is NULL.
    check(unsafe { libc::prlimit64(0, resource as _, &lim, std::ptr::null_mut()) })?;
    Ok(())
}

/// `getrlimit(2)`: (soft, hard).
pub fn getrlimit(resource: i32) -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a live writable rlimit64.
    check(unsafe { libc::prlimit64(0, resource as _, std::ptr::null(), &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// `umask(2)`; returns the previous mask.
pub fn umask(mask: u32) -> u32 {
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(mask) }
}

/// `setsid(2)`.
pub fn setsid() -> io::Result<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() })?;
    Ok(())
}

/// Makes the tty on `fd` this session's controlling terminal (`TIOCSCTTY`).
pub fn set_controlling_tty(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: TIOCSCTTY takes an integer argument.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
    Ok(())
}

/// `dup2(2)` onto a fixed fd number (stdio); the new fd is not close-on-exec.
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on a live fd; the target number is replaced atomically.
    check(unsafe { libc::dup2(fd.as_raw_fd(), target) })?;
    Ok(())
}

/// Opens a new pseudo-terminal: (master, slave path).
pub fn open_pty() -> io::Result<(OwnedFd, CString)> {
    // SAFETY: posix_openpt returns a new fd or -1.
    let raw =
        check(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) })?;
    // SAFETY: raw is a fresh fd owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: grantpt/unlockpt on the live master fd.
    check(unsafe { libc::grantpt(master.as_raw_fd()) })?;
    // SAFETY: as above.
    check(unsafe { libc::unlockpt(master.as_raw_fd()) })?;
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for its whole length, which is passed.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into buf.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned();
    Ok((master, name))
}

/// Unlocks the pty behind a `/dev/pts/ptmx` fd and opens its peer: (pty number, slave fd).
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<(u32, OwnedFd)> {
    const TIOCSPTLCK: libc::c_ulong = 0x4004_5431;
    const TIOCGPTN: libc::c_ulong = 0x8004_5430;
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a live pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), TIOCSPTLCK, &unlock) })?;
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a live pointer.
    check(unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTN, &mut n) })?;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let raw = check(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: raw is a fresh fd owned by nobody else.
    Ok((n, unsafe { OwnedFd::from_raw_fd(raw) }))
}

/// Sets `FD_CLOEXEC` on every fd from `first` up (`close_range(first, ~0, CLOSE_RANGE_CLOEXEC)`).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: integer arguments only; no fd is closed, only marked close-on-exec.
    check_long(unsafe {
        libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC)
    })?;
    Ok(())
}

/// Clears `FD_CLOEXEC` on one fd number (a preserved fd the container asked for).
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl with integer arguments; an fd number that is not open gives EBADF.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
    Ok(())
}

/// Joins a new session keyring (`KEYCTL_JOIN_SESSION_KEYRING`), named or anonymous.
pub fn join_session_keyring(name: Option<&CStr>) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let p = name.map_or(std::ptr::null(), |n| n.as_ptr());
    // SAFETY: the name pointer is NULL or a valid C string.
    check_long(unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, p) })?;
    Ok(())
}

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// Every signal the kernel lets a process catch or block.
    pub fn all() -> SigSet {
        // SAFETY: sigset_t is plain data; sigfillset initialises it fully.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: set is a live sigset_t.
        unsafe { libc::sigfillset(&mut set) };
        SigSet(set)
    }
}

/// Blocks every signal and returns the previous mask.
pub fn block_all_signals() -> io::Result<SigSet> {
    let all = SigSet::all();
    // SAFETY: sigset_t is plain data, written by sigprocmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are live.
    let rc = unsafe { libc::sigprocmask(libc::SIG_BLOCK, &all.0, &mut old) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(SigSet(old))
}

/// Restores a signal mask saved by [`block_all_signals`].
pub fn set_signal_mask(mask: &SigSet) -> io::Result<()> {
    // SAFETY: mask is a live sigset_t.
    let rc = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Resets every signal's disposition to its default (what a fresh exec would see).
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; errors for reserved signals are ignored.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Waits (with every signal blocked) for the next signal, with a timeout in milliseconds.
/// `Ok(None)` on timeout.
pub fn wait_signal(timeout_ms: u64) -> io::Result<Option<i32>> {
    let all = SigSet::all();
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: all and ts are live; the info pointer may be NULL.
    let rc = unsafe { libc::sigtimedwait(&all.0, std::ptr::null_mut(), &ts) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EINTR) => Ok(None),
            _ => Err(err),
        };
    }
    Ok(Some(rc))
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The shell convention: the code, or 128+N for signal N.
    pub fn status(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// `waitpid(pid, WNOHANG or 0)`: `Ok(None)` while the child runs.
pub fn wait_child(pid: i32, block: bool) -> io::Result<Option<Exit>> {
    let mut status = 0;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: status is a live int.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Ok(None);
        }
        if libc::WIFEXITED(status) {
            return Ok(Some(Exit::Code(libc::WEXITSTATUS(status))));
        }
        if libc::WIFSIGNALED(status) {
            return Ok(Some(Exit::Signal(libc::WTERMSIG(status))));
        }
    }
}

/// `kill(2)`.
pub fn kill(pid: i32, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments only.
    check(unsafe { libc::kill(pid, sig) })?;
    Ok(())
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: integer arguments only; returns a new fd.
    let raw = check_long(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: raw is a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: integer arguments and a NULL siginfo.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    Ok(())
}

/// Waits until an fd is readable (or hung up), up to `timeout_ms` (-1: forever).
/// Returns whether it became ready.
pub fn poll_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one live pollfd.
        let rc = unsafe { libc::poll(&mut p, 1, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        return Ok(rc > 0);
    }
}

/// Sends one byte and one fd over a unix socket (SCM_RIGHTS).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; every pointer field is set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg has a control buffer of CMSG_SPACE(sizeof fd), so the first header and its
    // data fit; the data is written unaligned.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd.as_raw_fd());
    }
    // SAFETY: msg and everything it points to are live for the call.
    check_long(
        unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } as libc::c_long,
    )?;
    Ok(())
}

/// Receives one fd sent with [`send_fd`] (or by any SCM_RIGHTS sender of one fd).
pub fn recv_fd(sock: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let mut byte = [0u8; 64];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: byte.len(),
    };
    // SAFETY: pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: plain data, pointers set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg and its buffers are live and writable.
    check_long(
        unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) }
            as libc::c_long,
    )?;
    // SAFETY: the kernel filled msg; CMSG_FIRSTHDR checks the control length.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no fd in the message",
            ));
        }
        let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(raw))
    }
}

/// `mkfifo(3)`.
pub fn mkfifo(path: &CStr, mode: u32) -> io::Result<()> {
    // SAFETY: path is a valid C string.
    check(unsafe { libc::mkfifo(path.as_ptr(), mode) })?;
    Ok(())
}

/// `fchmod(2)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: integer arguments on a live fd.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
    Ok(())
}

/// `fchown(2)`.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: integer arguments on a live fd.
    check(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) })?;
    Ok(())
}

/// `fchdir(2)`.
pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: integer argument on a live fd.
    check(unsafe { libc::fchdir(fd.as_raw_fd()) })?;
    Ok(())
}

/// `ioctl(TIOCSWINSZ)` on a terminal.
pub fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: ws is a live winsize.
    check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })?;
    Ok(())
}

/// `fstatfs(2)`: the filesystem magic number of an fd.
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain data written by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: st is live and writable.
    check(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

/// `MOUNT_ATTR_IDMAP`: the mount's ids go through the user namespace given with it.
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr(fd, "", AT_EMPTY_PATH | flags, {MOUNT_ATTR_IDMAP, userns_fd})`: makes the
/// detached mount `fd` (from `open_tree(OPEN_TREE_CLONE)`) an idmapped mount through the
/// user namespace `userns` (recursively with [`mount_attr::AT_RECURSIVE`]). Linux 5.12+.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    flags: u32,
    userns: BorrowedFd<'_>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_raw(fd, flags, &attr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn stub_is_a_small_elf() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(&EXEC_STUB[..4], b"\x7fELF");
            assert!(EXEC_STUB.len() < 4096, "stub is {} bytes", EXEC_STUB.len());
        }
    }

    #[test]
    fn stub_memfd_is_sealed_against_writes() {
        let Some(fd) = exec_stub_memfd().unwrap() else {
            return;
        };
        // SAFETY: test-only write attempt on a live fd.
        let n = unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(n, -1);
        assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn capget_reads_this_thread() {
        let sets = capget().unwrap();
        assert_eq!(
            sets.effective & !sets.permitted,
            0,
            "effective is a subset of permitted"
        );
    }

    #[test]
    fn exit_status_follows_the_shell_convention() {
        assert_eq!(Exit::Code(3).status(), 3);
        assert_eq!(Exit::Signal(9).status(), 137);
    }

    #[test]
    fn fd_passing_round_trips() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let file = std::fs::File::open("/dev/null").unwrap();
        send_fd(a.as_fd(), file.as_fd()).unwrap();
        let got = recv_fd(b.as_fd()).unwrap();
        assert!(got.as_raw_fd() >= 0);
    }
}
