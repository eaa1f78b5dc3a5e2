//! Idmapped bind mounts (mount `uidMappings`/`gidMappings`, options `idmap`/`ridmap`).
//!
//! Making a mount idmapped needs CAP_SYS_ADMIN over the source file system's user namespace
//! (the host's), which the init in a container user namespace does not have. So berth-run
//! makes them before the clone, on the host: a user namespace with the mount's mappings (a
//! short-lived helper process made with CLONE_NEWUSER, its maps written, its
//! `/proc/<pid>/ns/user` opened), `open_tree(OPEN_TREE_CLONE)` of the source (a detached
//! copy), `mount_setattr(MOUNT_ATTR_IDMAP)` with that namespace, and the mount's
//! ro/nosuid/nodev/noexec and recursive attributes. The init inherits the close-on-exec fds
//! and moves each one onto its target inside the rootfs (`rootfs::mount_idmapped`).

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_sys as sys;
use rustix::mount::OpenTreeFlags;

use crate::error::{Error, Result};
use crate::plan::{self, MountOp, Plan};

/// For each mount of the plan, in order: its detached idmapped mount, or `None`.
pub(crate) fn prepare(plan: &Plan, bundle: &Path) -> Result<Vec<Option<OwnedFd>>> {
    let mut out = Vec::with_capacity(plan.mounts.len());
    let mut namespaces: Vec<((String, String), OwnedFd)> = Vec::new();
    for op in &plan.mounts {
        let Some((uid_map, gid_map, recursive)) = &op.idmap else {
            out.push(None);
            continue;
        };
        let key = (uid_map.clone(), gid_map.clone());
        let idx = match namespaces.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                let fd = user_namespace(uid_map, gid_map).map_err(|e| {
                    Error::io(format!("mount {}: idmap user namespace", op.dest), e)
                })?;
                namespaces.push((key, fd));
                namespaces.len() - 1
            }
        };
        out.push(Some(detached(
            op,
            bundle,
            *recursive,
            namespaces[idx].1.as_fd(),
        )?));
    }
    Ok(out)
}

fn source_path(op: &MountOp, bundle: &Path) -> PathBuf {
    let s = op.source.as_deref().unwrap_or_default();
    if s.starts_with('/') {
        PathBuf::from(s)
    } else {
        bundle.join(s)
    }
}

fn detached(
    op: &MountOp,
    bundle: &Path,
    recursive: bool,
    userns: std::os::fd::BorrowedFd<'_>,
) -> Result<OwnedFd> {
    let src = source_path(op, bundle);
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if op.flags & plan::MS_REC != 0 {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let fd = rustix::mount::open_tree(rustix::fs::CWD, &src, flags).map_err(|e| {
        Error::io(
            format!("mount {}: source {}", op.dest, src.display()),
            e.into(),
        )
    })?;
    let rec = if recursive {
        sys::mount_attr::AT_RECURSIVE
    } else {
        0
    };
    sys::mount_setattr_idmap(fd.as_fd(), rec, userns).map_err(|e| {
        Error::io(
            format!(
                "mount {}: idmapping {} (needs Linux 5.12 and a file system that supports it)",
                op.dest,
                src.display()
            ),
            e,
        )
    })?;
    let mut set = 0;
    for (ms, attr) in [
        (plan::MS_RDONLY, sys::mount_attr::RDONLY),
        (plan::MS_NOSUID, sys::mount_attr::NOSUID),
        (plan::MS_NODEV, sys::mount_attr::NODEV),
        (plan::MS_NOEXEC, sys::mount_attr::NOEXEC),
    ] {
        if op.flags & ms != 0 {
            set |= attr;
        }
    }
    if set != 0 {
        sys::mount_setattr(fd.as_fd(), 0, set, 0)
            .map_err(|e| Error::io(format!("mount {}: setting its options", op.dest), e))?;
    }
    if op.recursive_attrs != 0 || op.recursive_clear != 0 {
        sys::mount_setattr(
            fd.as_fd(),
            sys::mount_attr::AT_RECURSIVE,
            op.recursive_attrs,
            op.recursive_clear,
        )
        .map_err(|e| {
            Error::io(
                format!("mount {}: setting recursive attributes", op.dest),
                e,
            )
        })?;
    }
    Ok(fd)
}

/// A user namespace with these maps: a helper child made with CLONE_NEWUSER waits on a pipe
/// while its maps are written and its namespace opened, then exits and is reaped.
pub(crate) fn user_namespace(uid_map: &str, gid_map: &str) -> std::io::Result<OwnedFd> {
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let pid = match sys::clone_process(plan::CLONE_NEWUSER)? {
        sys::Forked::Child => {
            drop(w);
            let mut b = [0u8; 1];
            let _ = rustix::io::read(&r, &mut b);
            sys::exit_now(0)
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(r);
    let made = (|| {
        std::fs::write(format!("/proc/{pid}/uid_map"), uid_map)?;
        std::fs::write(format!("/proc/{pid}/gid_map"), gid_map)?;
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        Ok(OwnedFd::from(ns))
    })();
    drop(w);
    let _ = sys::wait_child(pid, true);
    made
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_user_namespace_with_maps_is_made_and_its_helper_reaped() {
        // Runs as root, like every test of this workspace's runtime (scripts/test).
        let fd = super::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        let link = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ))
        .unwrap();
        assert!(link.to_string_lossy().starts_with("user:["), "{link:?}");
    }
}
