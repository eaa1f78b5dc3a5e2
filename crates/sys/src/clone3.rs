//! `clone3(2)` with `CLONE_INTO_CGROUP`: the child is born in a cgroup v2 directory, so it
//! never runs a single instruction outside it (Linux 5.7+).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::{check_long, Forked};

/// `CLONE_INTO_CGROUP`.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, 88 bytes).
#[repr(C, align(8))]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `clone3` used like `fork(2)`, with `flags` (CLONE_NEW*) creating namespaces for the child
/// and `CLONE_INTO_CGROUP` placing it in the cgroup v2 directory `cgroup` (an fd opened
/// `O_RDONLY | O_DIRECTORY`; an `O_PATH` fd is refused). The child gets SIGCHLD as its exit
/// signal.
///
/// Kernels without clone3 answer `ENOSYS`, kernels before 5.7 `E2BIG` or `EINVAL`, and a
/// seccomp filter may answer `ENOSYS` or `EPERM`: the caller then falls back to
/// [`super::clone_process`] and moves the child itself.
///
/// Sound only in a single-threaded process, as [`super::clone_process`].
pub fn clone_into_cgroup(flags: u64, cgroup: BorrowedFd<'_>) -> io::Result<Forked> {
    let mut args = CloneArgs {
        flags: flags | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: clone3 without CLONE_VM and with no stack (stack and stack_size both 0) behaves
    // like fork(2): the child gets a copy-on-write copy of the address space and returns from
    // this call on its copy of this stack. args is a live struct of the size passed. Callers
    // are single-threaded (documented above), so no lock is held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match check_long(ret)? {
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Whether an error of [`clone_into_cgroup`] means "this kernel (or a seccomp filter) does not
/// offer clone3 with `CLONE_INTO_CGROUP`", so that a plain clone and a `cgroup.procs` write
/// should be tried instead.
pub fn clone3_unavailable(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM | libc::EOPNOTSUPP)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clone_args_is_the_ver2_size() {
        assert_eq!(std::mem::size_of::<CloneArgs>(), 88);
        assert_eq!(std::mem::offset_of!(CloneArgs, cgroup), 80);
    }

    #[test]
    fn old_kernels_and_filters_are_told_apart_from_real_failures() {
        assert!(clone3_unavailable(&io::Error::from_raw_os_error(
            libc::ENOSYS
        )));
        assert!(clone3_unavailable(&io::Error::from_raw_os_error(
            libc::E2BIG
        )));
        assert!(!clone3_unavailable(&io::Error::from_raw_os_error(
            libc::ENOMEM
        )));
        assert!(!clone3_unavailable(&io::Error::from_raw_os_error(
            libc::EBADF
        )));
    }
}
