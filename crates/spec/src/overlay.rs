//! Mounting and unmounting the overlay rootfs of a bundle.
//!
//! The new mount API (`fsopen("overlay")`, one `fsconfig(lowerdir+)` per layer, `fsmount`,
//! `move_mount`) has no page-size limit on the option string, so images with hundreds of
//! layers mount. Kernels before 6.8 lack `lowerdir+`; there the layers go in one
//! `lowerdir=a:b:c` string, which the kernel caps at a page.
//!
//! A volatile overlay (`volatile`, Linux 5.10+) skips every sync of the upper filesystem:
//! `fsync` and `syncfs` inside the container, and the sync of the whole upper filesystem
//! that unmounting an overlay otherwise does (which is what made `--remove` slow). The
//! kernel leaves `work/incompat/volatile` behind; an overlay with that directory in its
//! work dir refuses to mount again until it is removed (docs/bundles.md, "Durability").

use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount, unmount,
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
};

use crate::error::Error;

/// An overlay to mount: `lowers` top-most first (the image's last layer first).
#[derive(Debug, Clone)]
pub struct Overlay<'a> {
    pub lowers: &'a [PathBuf],
    pub upper: &'a Path,
    pub work: &'a Path,
    /// Mount with `volatile` when the kernel has it.
    pub volatile: bool,
}

/// How the overlay was mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mounted {
    /// `volatile` was asked for and the kernel took it.
    pub volatile: bool,
}

/// Mounts `overlay` at `target`.
pub fn mount(overlay: &Overlay<'_>, target: &Path) -> Result<Mounted, Error> {
    let err = |source: Errno| Error::io("mounting the overlay rootfs at", target, source);
    let fs = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(err)?;
    fsconfig_set_string(&fs, "source", "overlay").map_err(err)?;
    for (i, lower) in overlay.lowers.iter().enumerate() {
        match fsconfig_set_string(&fs, "lowerdir+", lower) {
            Ok(()) => {}
            // No `lowerdir+` (kernel < 6.8): the whole list in one string.
            Err(Errno::INVAL) if i == 0 => {
                let joined = overlay
                    .lowers
                    .iter()
                    .map(|l| escape(l))
                    .collect::<Vec<_>>()
                    .join(":");
                fsconfig_set_string(&fs, "lowerdir", joined.as_str()).map_err(|e| {
                    if e == Errno::INVAL && joined.len() >= 4096 {
                        Error::Unsupported {
                            what: format!(
                                "an overlay of {} layers (kernel without lowerdir+)",
                                overlay.lowers.len()
                            ),
                        }
                    } else {
                        err(e)
                    }
                })?;
                break;
            }
            Err(e) => return Err(Error::io("adding an overlay lower layer", lower, e)),
        }
    }
    fsconfig_set_string(&fs, "upperdir", overlay.upper)
        .map_err(|e| Error::io("setting the overlay upperdir", overlay.upper, e))?;
    fsconfig_set_string(&fs, "workdir", overlay.work)
        .map_err(|e| Error::io("setting the overlay workdir", overlay.work, e))?;
    // A kernel before 5.10 does not know the flag (EINVAL): the overlay is then durable.
    let volatile = overlay.volatile && fsconfig_set_flag(&fs, "volatile").is_ok();
    if overlay.volatile && !volatile {
        tracing::debug!("overlay has no volatile option on this kernel; mounting it durable");
    }
    fsconfig_create(&fs).map_err(err)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).map_err(err)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(err)?;
    Ok(Mounted { volatile })
}

/// `:` and `\` in a path must be escaped in a `lowerdir=` list.
fn escape(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// Unmounts whatever is mounted at `target` (lazily, so a busy mount still goes), until
/// nothing is. Returns whether anything was mounted.
pub fn unmount_all(target: &Path) -> Result<bool, Error> {
    let mut any = false;
    loop {
        match unmount(target, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW) {
            Ok(()) => any = true,
            Err(Errno::INVAL) | Err(Errno::NOENT) => return Ok(any),
            Err(e) => return Err(Error::io("unmounting", target, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_list_escapes_separators() {
        assert_eq!(escape(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }
}
