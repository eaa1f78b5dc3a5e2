//! Joining a user namespace by path while creating other namespaces (a pod's container
//! joining the sandbox's user namespace with its own mount and pid namespaces, say).
//!
//! New namespaces belong to the user namespace of the process that makes them, and a new pid
//! namespace can only be made by a clone. So the init cannot be cloned by berth-run (whose
//! namespaces would belong to the host's user namespace), and berth-run cannot join the user
//! namespace itself (it would lose its privileges on the host: cgroups, maps, offsets). A
//! helper, forked from berth-run, joins the user namespace and clones the init with the new
//! namespaces and `CLONE_PARENT`, so that the init is berth-run's own child as in every other
//! case; it reports the init's pid through a pipe and exits.

use std::io;
use std::os::fd::BorrowedFd;

use berth_sys as sys;

use crate::plan;

const CLONE_PARENT: u64 = 0x0000_8000;

/// Like [`sys::clone_process`] with `flags`, but the child is born in the user namespace
/// `userns` (which then owns its new namespaces). Returns `Forked::Child` in the init.
pub(crate) fn clone_in(userns: BorrowedFd<'_>, flags: u64) -> io::Result<sys::Forked> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let helper = match sys::fork_process()? {
        sys::Forked::Child => {
            drop(r);
            let made = sys::setns(userns, plan::CLONE_NEWUSER as i32)
                .and_then(|()| sys::clone_process(flags | CLONE_PARENT));
            let report: i32 = match made {
                Ok(sys::Forked::Child) => {
                    drop(w);
                    return Ok(sys::Forked::Child);
                }
                Ok(sys::Forked::Parent(pid)) => pid,
                Err(e) => -e.raw_os_error().unwrap_or(EIO),
            };
            let _ = rustix::io::write(&w, &report.to_ne_bytes());
            sys::exit_now(if report > 0 { 0 } else { 1 })
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(w);
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match rustix::io::read(&r, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let _ = sys::wait_child(helper, true);
                return Err(e.into());
            }
        }
    }
    let _ = sys::wait_child(helper, true);
    if got < 4 {
        return Err(io::Error::other(
            "the helper joining the user namespace ended without a pid",
        ));
    }
    match i32::from_ne_bytes(buf) {
        pid if pid > 0 => Ok(sys::Forked::Parent(pid)),
        errno => Err(io::Error::from_raw_os_error(-errno)),
    }
}

const EIO: i32 = 5;

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use berth_sys as sys;

    #[test]
    fn the_child_is_born_in_the_user_namespace_as_the_callers_own_child() {
        let userns = crate::idmap::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        let want = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&userns)
        ))
        .unwrap();
        let pid = match super::clone_in(userns.as_fd(), 0).unwrap() {
            sys::Forked::Child => {
                let here = std::fs::read_link("/proc/self/ns/user").unwrap();
                sys::exit_now(if here == want { 0 } else { 1 })
            }
            sys::Forked::Parent(pid) => pid,
        };
        // CLONE_PARENT: the child is ours, so we can reap it and read its status.
        let status = sys::wait_child(pid, true).unwrap();
        assert_eq!(status, Some(sys::Exit::Code(0)));
    }

    #[test]
    fn a_namespace_that_cannot_be_joined_is_an_error_and_no_child() {
        // Our own user namespace: setns refuses to re-enter it (EINVAL).
        let own = std::fs::File::open("/proc/self/ns/user").unwrap();
        let err = super::clone_in(own.as_fd(), 0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(22), "{err}");
    }
}
