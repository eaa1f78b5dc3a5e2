//! Closing files in a detached process.
//!
//! The last close of an unlinked inode frees its blocks, and on a disk mounted with `discard`
//! that waits for the device (milliseconds per inode). [`close_detached`] hands such fds to
//! a grandchild that closes them after the caller has dropped its own copies, so the caller
//! returns at once and nobody waits for the freeing.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::{check, wait_child, Forked};

/// Closes `fds` in a detached process: a grandchild of the caller (reparented to init or the
/// nearest subreaper), in a new session, with `/` as its working directory, `/dev/null` on
/// stdin, stdout and stderr and no fd but `fds` and a pipe, so no reader of the caller's
/// pipes (a `$(…)` in a shell) waits for it. It waits until the caller's copies of `fds` are
/// closed (the pipe's EOF; this function closes them before it returns), then exits, which
/// closes `fds` there. Returns once the intermediate child is reaped (a fork and an exit).
///
/// On any failure the fds are closed here, synchronously, and the error returned: the work is
/// the same, only not moved off the caller.
///
/// Sound in a multi-threaded caller too: between the fork and its exit the child calls only
/// raw syscalls (no allocation, no lock), from data prepared before the fork.
pub fn close_detached(fds: Vec<OwnedFd>) -> io::Result<()> {
    if fds.is_empty() {
        return Ok(());
    }
    let null = open_dev_null()?;
    let (read_end, write_end) = pipe()?;

    // Everything from fd 3 up but `fds` and the pipe is closed in the child: the gaps
    // between the kept fd numbers, computed now (the child must not allocate).
    let mut keep: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    keep.extend([read_end.as_raw_fd(), write_end.as_raw_fd()]);
    keep.sort_unstable();
    let mut gaps: Vec<(u32, u32)> = Vec::with_capacity(keep.len() + 1);
    let mut from: u32 = 3;
    for &k in &keep {
        let k = k as u32;
        if k > from {
            gaps.push((from, k - 1));
        }
        from = from.max(k + 1);
    }
    gaps.push((from, u32::MAX));

    let pipe = (read_end.as_raw_fd(), write_end.as_raw_fd());
    match crate::clone_process(0)? {
        Forked::Child => child(null.as_raw_fd(), pipe, &keep, &gaps),
        Forked::Parent(pid) => {
            // The held fds first, the write end last: its EOF tells the holder that no copy
            // but its own is left here.
            drop(fds);
            drop(write_end);
            drop(read_end);
            drop(null);
            // The intermediate child exits right after forking the holder; ECHILD (SIGCHLD
            // ignored by the caller) needs no reaping.
            match wait_child(pid, true) {
                Ok(_) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(()),
                Err(e) => Err(e),
            }
        }
    }
}

fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated literal path.
    let fd = check(unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) })?;
    // SAFETY: fd was just opened and is owned here only.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a live array of two ints for pipe2 to fill.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both fds were just created and are owned here only.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The forked child: detaches, forks the holder, closes its own copies and exits. The holder
/// waits for the pipe's EOF (every other copy of the held fds is closed by then: the caller
/// and this child close them before their write ends) and exits, closing what it holds.
/// Raw syscalls only.
fn child(
    null: RawFd,
    (read_end, write_end): (RawFd, RawFd),
    keep: &[RawFd],
    gaps: &[(u32, u32)],
) -> ! {
    // SAFETY: every call below is a raw syscall on integers or on memory that stays live
    // (literals, `keep` and `gaps` built before the fork); none allocates or takes a lock,
    // so they are sound after a fork even from a multi-threaded parent. Failures are
    // ignored: at worst the fds are closed sooner, by this process, which is still correct.
    unsafe {
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        for target in 0..3 {
            if !keep.contains(&target) {
                libc::dup2(null, target);
            }
        }
        for &(lo, hi) in gaps {
            libc::syscall(libc::SYS_close_range, lo, hi, 0u32);
        }
        // Fork again so that the holder is nobody's child that anyone waits for. If that
        // fails, this process holds the fds itself (the caller then waits for it).
        let pid = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0);
        if pid > 0 {
            // Every fd but the write end, then the write end.
            let w = write_end as u32;
            if w > 0 {
                libc::syscall(libc::SYS_close_range, 0u32, w - 1, 0u32);
            }
            libc::syscall(libc::SYS_close_range, w + 1, u32::MAX, 0u32);
            libc::close(write_end);
            libc::_exit(0);
        }
        libc::close(write_end);
        let mut byte = 0u8;
        loop {
            let n = libc::read(read_end, (&raw mut byte).cast(), 1);
            if n < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            if n > 0 {
                continue;
            }
            break;
        }
        libc::_exit(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_caller_keeps_no_copy_and_the_holder_exits() {
        // The write end of a pipe, handed over: its reader sees EOF only once every copy is
        // closed, this process's and the holder's.
        let (r, w) = pipe().unwrap();
        close_detached(vec![w]).unwrap();
        assert!(
            crate::poll_readable(r.as_fd(), 5000).unwrap(),
            "no EOF: a copy of the write end is still open"
        );
        let mut byte = 0u8;
        // SAFETY (test): reads one byte into a live local.
        let n = unsafe { libc::read(r.as_raw_fd(), (&raw mut byte).cast(), 1) };
        assert_eq!(n, 0);
    }

    #[test]
    fn nothing_to_hold_forks_nothing() {
        close_detached(Vec::new()).unwrap();
    }
}
