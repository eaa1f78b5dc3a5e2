//! Who owns a namespace: the `NS_GET_USERNS` and `NS_GET_PARENT` ioctls of nsfs (Linux 4.9).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `NS_GET_USERNS`: `_IO(0xb7, 0x1)`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `NS_GET_PARENT`: `_IO(0xb7, 0x2)`.
const NS_GET_PARENT: libc::c_ulong = 0xb702;

fn ns_ioctl(ns: BorrowedFd<'_>, request: libc::c_ulong) -> io::Result<OwnedFd> {
    // SAFETY: both requests take no argument and return a new close-on-exec fd or -1; the fd
    // is live for the call.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), request as _) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us, and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `NS_GET_NSTYPE`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The type of the namespace `ns` refers to, as its `CLONE_NEW*` flag (Linux 4.11); an error
/// (`ENOTTY`) when `ns` is not a namespace file. Unlike the name in `/proc/self/fd/N`, this
/// holds for a namespace bind-mounted elsewhere (`/run/netns/NAME`).
pub fn ns_type(ns: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: the request takes no argument and returns an int or -1; the fd is live.
    let t = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_NSTYPE as _) };
    if t < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(t)
}

/// The user namespace that owns the namespace `ns` (an open `/proc/<pid>/ns/*` file).
pub fn ns_owner(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ns_ioctl(ns, NS_GET_USERNS)
}

/// The parent of a user or pid namespace; `EPERM` above the caller's own user namespace
/// (or at the top), `EINVAL` for other namespace types.
pub fn ns_parent(ns: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    ns_ioctl(ns, NS_GET_PARENT)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;

    use super::*;

    #[test]
    fn our_namespaces_belong_to_our_user_namespace_which_has_no_visible_parent() {
        let net = std::fs::File::open("/proc/self/ns/net").unwrap();
        let owner = std::fs::File::from(ns_owner(net.as_fd()).unwrap());
        let user = std::fs::metadata("/proc/self/ns/user").unwrap();
        let got = owner.metadata().unwrap();
        assert_eq!((got.dev(), got.ino()), (user.dev(), user.ino()));
        let err = ns_parent(owner.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        let err = ns_parent(net.as_fd()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn namespace_types_are_their_clone_flags() {
        for (file, flag) in [
            ("net", libc::CLONE_NEWNET),
            ("pid", libc::CLONE_NEWPID),
            ("user", libc::CLONE_NEWUSER),
        ] {
            let ns = std::fs::File::open(format!("/proc/self/ns/{file}")).unwrap();
            assert_eq!(ns_type(ns.as_fd()).unwrap(), flag, "{file}");
        }
        let not = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(ns_type(not.as_fd()).is_err());
    }
}
