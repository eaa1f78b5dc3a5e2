//! Reading and writing inside an image's rootfs without ever leaving it: every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)` against a directory fd of the rootfs, so a
//! symlink in the image (`/etc/passwd -> /../../host/etc/shadow`) resolves inside it.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{chownat, mkdirat, openat2, AtFlags, Gid, Mode, OFlags, ResolveFlags, Uid, CWD};
use rustix::io::Errno;

use crate::error::Error;
use crate::plan::{RootfsDir, Users};
use crate::runtime::Device;
use crate::user;

/// The most of `/etc/passwd` or `/etc/group` read (a hostile image may make them huge).
const MAX_DB_SIZE: u64 = 4 << 20;

/// An open rootfs directory.
pub struct Rootfs {
    fd: OwnedFd,
}

impl Rootfs {
    pub fn open(path: &Path) -> Result<Rootfs, Error> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("opening rootfs", path, e))?;
        Ok(Rootfs { fd })
    }

    fn open_in(&self, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
        openat2(
            &self.fd,
            path.trim_start_matches('/'),
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    }

    /// Reads a regular file of the image, at most [`MAX_DB_SIZE`] bytes; `None` when absent.
    fn read_small(&self, path: &str) -> Result<Option<String>, Error> {
        let fd = match self.open_in(path, OFlags::RDONLY | OFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(Error::io("opening the image's", path, e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io("reading the image's", path, e))?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return Ok(None);
        }
        let mut text = Vec::new();
        std::fs::File::from(fd)
            .take(MAX_DB_SIZE)
            .read_to_end(&mut text)
            .map_err(|e| Error::io("reading the image's", path, e))?;
        Ok(Some(String::from_utf8_lossy(&text).into_owned()))
    }

    /// The image's `/etc/passwd` and `/etc/group`, parsed; empty when missing.
    pub fn users(&self) -> Result<Users, Error> {
        let passwd = self
            .read_small("/etc/passwd")?
            .map(|t| user::parse_passwd(&t))
            .unwrap_or_default();
        let groups = self
            .read_small("/etc/group")?
            .map(|t| user::parse_group(&t))
            .unwrap_or_default();
        Ok(Users { passwd, groups })
    }

    /// Creates `dir.path` and any missing parents (mode 0755); the last component, when
    /// created, is owned by `dir.uid:dir.gid`. Existing directories are left as they are.
    pub fn make_dir(&self, dir: &RootfsDir) -> Result<(), Error> {
        let err = |e: Errno| Error::io("creating directory in the rootfs:", dir.path.as_str(), e);
        let parts: Vec<&str> = dir.path.split('/').filter(|c| !c.is_empty()).collect();
        for i in 1..=parts.len() {
            let prefix = parts[..i].join("/");
            match self.open_in(&prefix, OFlags::PATH | OFlags::DIRECTORY) {
                Ok(_) => continue,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(err(e)),
            }
            let parent = if i == 1 {
                String::from(".")
            } else {
                parts[..i - 1].join("/")
            };
            let parent_fd = self
                .open_in(&parent, OFlags::PATH | OFlags::DIRECTORY)
                .map_err(err)?;
            match mkdirat(&parent_fd, parts[i - 1], Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(err(e)),
            }
            if i == parts.len() && (dir.uid != 0 || dir.gid != 0) {
                chownat(
                    &parent_fd,
                    parts[i - 1],
                    Some(Uid::from_raw(dir.uid)),
                    Some(Gid::from_raw(dir.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(err)?;
            }
        }
        Ok(())
    }
}

/// The host's device nodes under `dev` (recursively), as `--privileged` gives them to a
/// container the way docker does: everything but `pts/`, `shm/`, `mqueue/`, `fd`, `console`
/// and symlinks.
pub fn host_devices(dev: &Path) -> Vec<Device> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<Device>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if rel.is_empty()
                && ["pts", "shm", "mqueue", "fd", "console", ".lxc", ".udev"]
                    .contains(&name.as_str())
            {
                continue;
            }
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            let rel_name = format!("{rel}/{name}");
            if ft.is_dir() {
                walk(&path, &rel_name, out);
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            out.push(Device {
                path: format!("/dev{rel_name}"),
                kind: kind.into(),
                major: i64::from(rustix::fs::major(meta.rdev())),
                minor: i64::from(rustix::fs::minor(meta.rdev())),
                file_mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            });
        }
    }
    let mut out = Vec::new();
    walk(dev, "", &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Whether `path` exists on the host (for bind sources); symlinks are followed, as the
/// runtime will.
pub fn host_path_exists(path: &Path) -> bool {
    rustix::fs::statat(CWD, path, AtFlags::empty()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn users_come_from_the_rootfs_and_links_stay_inside() {
        let root = tempfile::tempdir().unwrap();
        let etc = root.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(
            etc.join("passwd.real"),
            "app:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        // An absolute symlink must resolve inside the rootfs, not on the host.
        symlink("/etc/passwd.real", etc.join("passwd")).unwrap();
        symlink("/../../../../etc/group", etc.join("group")).unwrap();
        let rootfs = Rootfs::open(root.path()).unwrap();
        let users = rootfs.users().unwrap();
        assert_eq!(users.passwd.len(), 1);
        assert_eq!(users.passwd[0].name, "app");
        // /etc/group resolves to <root>/etc/group, the link itself: a loop, so no groups.
        assert!(users.groups.is_empty());
    }

    #[test]
    fn host_devices_include_null_and_skip_pts() {
        let devices = host_devices(Path::new("/dev"));
        let null = devices
            .iter()
            .find(|d| d.path == "/dev/null")
            .expect("/dev/null");
        assert_eq!((null.kind.as_str(), null.major, null.minor), ("c", 1, 3));
        assert!(!devices
            .iter()
            .any(|d| d.path.starts_with("/dev/pts/") || d.path == "/dev/console"));
    }

    #[test]
    fn missing_databases_are_empty() {
        let root = tempfile::tempdir().unwrap();
        let users = Rootfs::open(root.path()).unwrap().users().unwrap();
        assert!(users.passwd.is_empty() && users.groups.is_empty());
    }

    #[test]
    fn make_dir_creates_parents_and_follows_links_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        symlink("/real", root.path().join("link")).unwrap();
        let rootfs = Rootfs::open(root.path()).unwrap();
        rootfs
            .make_dir(&RootfsDir {
                path: "/a/b/c".into(),
                uid: 0,
                gid: 0,
            })
            .unwrap();
        assert!(root.path().join("a/b/c").is_dir());
        rootfs
            .make_dir(&RootfsDir {
                path: "/link/sub".into(),
                uid: 0,
                gid: 0,
            })
            .unwrap();
        assert!(root.path().join("real/sub").is_dir());
        std::fs::write(root.path().join("file"), "").unwrap();
        assert!(rootfs
            .make_dir(&RootfsDir {
                path: "/file/x".into(),
                uid: 0,
                gid: 0
            })
            .is_err());
    }
}
