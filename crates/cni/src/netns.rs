//! Named network namespaces as `ip netns add` makes them: `/run/netns` a shared mount (bound
//! on itself first when it is not a mount point), an empty file `/run/netns/NAME` with the new
//! namespace bind-mounted on it, and `lo` brought up inside.
//!
//! The namespace is entered on a dedicated thread that ends right after: `unshare` changes
//! only the calling thread's namespace, and no other thread of the process ever runs in it.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{
    recv, sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};
use nix::sys::statfs::{statfs, NSFS_MAGIC};

use crate::conf::validate_id;
use crate::error::{Error, Result};

/// Where `ip netns` keeps named namespaces.
pub const RUN_DIR: &str = "/run/netns";

/// `/run/netns/NAME`.
pub fn path_of(name: &str) -> PathBuf {
    Path::new(RUN_DIR).join(name)
}

/// Names are `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: they become file names and, by default, the
/// CNI container ID.
pub fn validate_name(name: &str) -> Result<()> {
    validate_id("network namespace name", name)
}

/// Creates `/run/netns/NAME` with `lo` up.
pub fn create(name: &str) -> Result<PathBuf> {
    create_in(Path::new(RUN_DIR), name)
}

/// Creates `DIR/NAME` with `lo` up; nothing is left behind when a step fails.
pub fn create_in(dir: &Path, name: &str) -> Result<PathBuf> {
    validate_name(name)?;
    let path = dir.join(name);
    let fail = |action, source| Error::Netns {
        action,
        path: path.clone(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| fail("creating the directory of", e))?;
    make_shared(dir).map_err(|e| fail("making the directory shared for", e))?;
    match fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Error::NetnsExists { path })
        }
        Err(e) => return Err(fail("creating the mount point of", e)),
    }
    let target = path.clone();
    let made = std::thread::Builder::new()
        .name("netns-create".into())
        .spawn(move || enter_new_and_bind(&target))
        .map_err(|e| fail("starting a thread to create", e))?
        .join()
        .unwrap_or_else(|_| {
            Err((
                "creating",
                io::Error::other("the namespace thread panicked"),
            ))
        });
    if let Err((action, source)) = made {
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        let _ = fs::remove_file(&path);
        return Err(fail(action, source));
    }
    Ok(path)
}

/// Runs on its own thread: a new network namespace for this thread only, bound on `target`,
/// with `lo` up. The thread ends right after, so the namespace lives on in the bind mount.
fn enter_new_and_bind(target: &Path) -> Result<(), (&'static str, io::Error)> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ("unsharing a new", io::Error::from(e)))?;
    let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
    mount(
        Some(own.as_str()),
        target,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| ("bind-mounting", io::Error::from(e)))?;
    loopback_up().map_err(|e| ("bringing lo up in", e))
}

/// `mount --make-rshared DIR`, after binding DIR on itself when it is not a mount point, as
/// iproute2 does; under a lock on the directory so two creators do not both bind it.
fn make_shared(dir: &Path) -> io::Result<()> {
    let handle = fs::File::open(dir)?;
    let _lock =
        Flock::lock(handle, FlockArg::LockExclusive).map_err(|(_, e)| io::Error::from(e))?;
    let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
    match mount(None::<&str>, dir, None::<&str>, shared, None::<&str>) {
        Ok(()) => return Ok(()),
        Err(Errno::EINVAL) => {}
        Err(e) => return Err(e.into()),
    }
    mount(
        Some(dir),
        dir,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )?;
    mount(None::<&str>, dir, None::<&str>, shared, None::<&str>)?;
    Ok(())
}

/// Sets IFF_UP on interface 1 (`lo`, always index 1 in a new namespace) with one rtnetlink
/// RTM_NEWLINK request on a socket made in the calling thread's namespace, and reads the ack.
fn loopback_up() -> io::Result<()> {
    use nix::libc;
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let mut msg = [0u8; 32];
    // struct nlmsghdr
    msg[0..4].copy_from_slice(&32u32.to_ne_bytes());
    msg[4..6].copy_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // struct ifinfomsg: family 0, type 0, index 1, flags and change IFF_UP
    msg[20..24].copy_from_slice(&1i32.to_ne_bytes());
    msg[24..28].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    msg[28..32].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
    sendto(
        fd.as_raw_fd(),
        &msg,
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )?;
    let mut buf = [0u8; 1024];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
    parse_ack(&buf[..n])
}

fn parse_ack(reply: &[u8]) -> io::Result<()> {
    if reply.len() < 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "short netlink reply",
        ));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind != nix::libc::NLMSG_ERROR as u16 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("netlink reply of type {kind}, not an ack"),
        ));
    }
    let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    match errno {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(-e)),
    }
}

/// Whether `path` is a bound network namespace (an nsfs file).
pub fn is_netns(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

/// Removes a named namespace as `ip netns del` does: lazy unmount, then unlink. Returns false
/// when there was nothing to remove.
pub fn remove(path: &Path) -> Result<bool> {
    let fail = |source| Error::Netns {
        action: "removing",
        path: path.to_path_buf(),
        source,
    };
    let unmounted = match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) => true,
        Err(Errno::EINVAL) | Err(Errno::ENOENT) => false,
        Err(e) => return Err(fail(e.into())),
    };
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(unmounted),
        Err(e) => Err(fail(e)),
    }
}

/// The names under a namespace directory, sorted; none when it does not exist.
pub fn list_in(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_read() {
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&(nix::libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert!(parse_ack(&ack).is_ok());
        ack[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        assert_eq!(parse_ack(&ack).unwrap_err().raw_os_error(), Some(1));
        assert!(parse_ack(&ack[..10]).is_err());
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("pod-1.a_b").is_ok());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("").is_err());
    }

    #[test]
    fn paths_follow_the_ip_netns_convention() {
        assert_eq!(path_of("a"), PathBuf::from("/run/netns/a"));
    }
}
