//! Carrying a plan out on disk: the bundle directory.
//!
//! ```text
//! DIR/config.json        the OCI runtime spec
//! DIR/rootfs/            overlay: lowers = the image's snapshots (read-only), upper and work below
//! DIR/upper/ DIR/work/   the overlay's writable layer and its work directory
//! DIR/berth-bundle.json  which image and snapshots the bundle uses (for snapshot GC)
//! ```
//!
//! [`create`] mounts the overlay first (the image's `/etc/passwd` is read through it), then
//! plans, checks bind sources, makes Volume and working directories, and writes
//! `config.json` last (written to a temporary name and renamed). Any failure unmounts and
//! removes what was made. [`remove`] unmounts and deletes, and is a no-op when the bundle is
//! already gone.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::image::ImageConfig;
use crate::options::Options;
use crate::overlay::{self, Overlay};
use crate::plan::{self, Host, Plan};
use crate::rootfs::{self, Rootfs};
use crate::seccomp::{parse_kernel, Arch};
use crate::teardown;

/// The record a bundle keeps of what it uses.
pub const RECORD: &str = "berth-bundle.json";

/// What the bundle uses, written to [`RECORD`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The pinned image reference.
    pub image: String,
    /// The berth root whose snapshots the bundle mounts.
    pub root: PathBuf,
    /// The name under which the bundle holds its snapshots (`Snapshots::acquire`).
    pub lease: String,
    /// Chain IDs of the snapshots mounted as lowers, bottom layer first.
    pub snapshots: Vec<String>,
    /// The overlay was mounted `volatile`: its upper layer is not synced, and after a crash
    /// it cannot be mounted again (docs/bundles.md, "Durability").
    #[serde(default)]
    pub volatile: bool,
}

/// One bundle to make.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub dir: &'a Path,
    /// The snapshots' `fs` directories, bottom layer first (the image's layer order).
    pub layers: &'a [PathBuf],
    pub image: &'a ImageConfig,
    pub options: &'a Options,
    pub host: Host,
    /// Mount the overlay `volatile` (no sync of the upper filesystem, not at `fsync` in the
    /// container nor at unmount); `false` for a durable upper layer (`--durable`).
    pub volatile: bool,
    /// What to record; its `volatile` is set from how the overlay was mounted.
    pub record: Record,
}

/// A bundle that was made.
#[derive(Debug, Clone)]
pub struct Created {
    pub path: PathBuf,
    pub plan: Plan,
    /// The overlay is volatile (see [`Request::volatile`]).
    pub volatile: bool,
}

/// Reads the host facts a plan needs: architecture, kernel release, swap accounting.
pub fn detect_host() -> Host {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|r| parse_kernel(r.trim()))
        .unwrap_or((0, 0));
    let v1 = Path::new("/sys/fs/cgroup/memory");
    let swap_accounting = if v1.is_dir() {
        v1.join("memory.memsw.limit_in_bytes").exists()
    } else {
        fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"))
    };
    // The caller's effective capabilities; all when unreadable.
    let caps = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX);
    Host {
        arch: Arch::native(),
        kernel,
        swap_accounting,
        caps,
    }
}

/// Removes what a failed [`create`] made, unless disarmed.
struct Cleanup<'a> {
    dir: &'a Path,
    /// The bundle directory did not exist before (else only its contents are removed).
    made_dir: bool,
    armed: bool,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let rootfs = self.dir.join("rootfs");
        if overlay::unmount_all(&rootfs).is_err() || is_mount_point(self.dir, &rootfs) {
            tracing::warn!(path = %rootfs.display(), "could not unmount; leaving the bundle in place");
            return;
        }
        if self.made_dir {
            let _ = fs::remove_dir_all(self.dir);
        } else {
            for name in ["config.json", "config.json.tmp", RECORD] {
                let _ = fs::remove_file(self.dir.join(name));
            }
            for name in ["rootfs", "upper", "work", "empty"] {
                let _ = fs::remove_dir_all(self.dir.join(name));
            }
        }
    }
}

fn is_mount_point(dir: &Path, rootfs: &Path) -> bool {
    match (fs::symlink_metadata(dir), fs::symlink_metadata(rootfs)) {
        (Ok(d), Ok(r)) => d.dev() != r.dev(),
        _ => false,
    }
}

/// Makes the bundle: overlay rootfs, Volume and working directories, `config.json`.
/// The directory must not exist, or be empty.
pub fn create(req: &Request<'_>) -> Result<Created, Error> {
    let dir = req.dir;
    let made_dir = match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::BundleExists {
                    path: dir.to_path_buf(),
                });
            }
            false
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // 0711: a container in a user namespace must be able to pass through to rootfs/.
            fs::DirBuilder::new()
                .mode(0o711)
                .create(dir)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AlreadyExists => Error::BundleExists {
                        path: dir.to_path_buf(),
                    },
                    _ => Error::io("creating bundle", dir, e),
                })?;
            true
        }
        Err(e) => return Err(Error::io("reading bundle directory", dir, e)),
    };
    let mut cleanup = Cleanup {
        dir,
        made_dir,
        armed: true,
    };

    let rootfs_dir = dir.join("rootfs");
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&rootfs_dir, &upper, &work] {
        fs::DirBuilder::new()
            .mode(0o755)
            .create(d)
            .map_err(|e| Error::io("creating", d.as_path(), e))?;
    }
    // Overlay wants at least one lower layer; an image without layers gets an empty one.
    let mut lowers: Vec<PathBuf> = req.layers.iter().rev().cloned().collect();
    if lowers.is_empty() {
        let empty = dir.join("empty");
        fs::create_dir(&empty).map_err(|e| Error::io("creating", empty.as_path(), e))?;
        lowers.push(empty);
    }
    let mounted = overlay::mount(
        &Overlay {
            lowers: &lowers,
            upper: &upper,
            work: &work,
            volatile: req.volatile,
        },
        &rootfs_dir,
    )?;

    let rootfs = Rootfs::open(&rootfs_dir)?;
    let users = rootfs.users()?;
    let mut plan = plan::plan(req.image, req.options, &users, &req.host)?;
    if req.options.privileged {
        plan.spec.linux.devices = rootfs::host_devices(Path::new("/dev"));
    }
    if let Some(missing) = plan
        .bind_sources
        .iter()
        .find(|s| !rootfs::host_path_exists(s))
    {
        return Err(Error::BindSourceMissing {
            path: missing.clone(),
        });
    }
    for d in &plan.dirs {
        rootfs.make_dir(d)?;
    }

    let record = Record {
        volatile: mounted.volatile,
        ..req.record.clone()
    };
    let record = serde_json::to_vec_pretty(&record).expect("a bundle record serialises");
    let record_path = dir.join(RECORD);
    fs::write(&record_path, record).map_err(|e| Error::io("writing", record_path.as_path(), e))?;
    let config = serde_json::to_vec_pretty(&plan.spec).expect("a runtime spec serialises");
    let tmp = dir.join("config.json.tmp");
    fs::write(&tmp, config).map_err(|e| Error::io("writing", tmp.as_path(), e))?;
    let config_path = dir.join("config.json");
    fs::rename(&tmp, &config_path).map_err(|e| Error::io("writing", config_path.as_path(), e))?;

    cleanup.armed = false;
    Ok(Created {
        path: dir.to_path_buf(),
        plan,
        volatile: mounted.volatile,
    })
}

/// Reads the record of a bundle (`None` when it has none).
pub fn record(dir: &Path) -> Result<Option<Record>, Error> {
    let path = dir.join(RECORD);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::io(
                "reading",
                path.as_path(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("reading", path.as_path(), e)),
    }
}

/// Unmounts and deletes a bundle. `Ok(false)` when there was nothing to remove. A directory
/// that does not look like a bundle (no `config.json`, `rootfs/`, `upper/` or record) is
/// refused, so a mistyped path is never deleted.
///
/// Every inode unlinked is first opened (never following a symlink) and up to a cap of them
/// are pushed to `held`, still open: their blocks are freed at the last close, which the
/// caller may do in another process (on a disk mounted with `discard` each freeing waits for
/// the device; docs/bundles.md). Dropping `held` frees them synchronously. Nothing is held
/// for a bundle on tmpfs, where freeing costs nothing. The record and `config.json` are
/// deleted last, so a removal that fails half-way (something mounted inside the bundle, an
/// I/O error) leaves a bundle that a later `remove` deletes.
pub fn remove(dir: &Path, held: &mut Vec<OwnedFd>) -> Result<bool, Error> {
    match fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io("reading bundle", dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(Error::NotABundle {
                path: dir.to_path_buf(),
            })
        }
        Ok(_) => {}
    }
    let rootfs = dir.join("rootfs");
    let looks_like_bundle = ["config.json", "rootfs", RECORD, "upper"]
        .iter()
        .any(|n| dir.join(n).symlink_metadata().is_ok());
    if !looks_like_bundle {
        return Err(Error::NotABundle {
            path: dir.to_path_buf(),
        });
    }
    overlay::unmount_all(&rootfs)?;
    if is_mount_point(dir, &rootfs) {
        return Err(Error::io(
            "unmounting",
            rootfs,
            std::io::Error::from(std::io::ErrorKind::ResourceBusy),
        ));
    }

    // The bundle directory is opened from its parent, so it can be removed by name there
    // (a path ending in `..` is resolved first).
    let resolved;
    let dir_named = if dir.file_name().is_some() {
        dir
    } else {
        resolved = fs::canonicalize(dir).map_err(|e| Error::io("reading bundle", dir, e))?;
        resolved.as_path()
    };
    let (Some(name), Some(parent)) = (dir_named.file_name(), dir_named.parent()) else {
        return Err(Error::NotABundle {
            path: dir.to_path_buf(),
        });
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let parent_fd =
        rfs::open(parent, dir_flags, Mode::empty()).map_err(|e| Error::io("opening", parent, e))?;
    let top = rfs::openat(
        &parent_fd,
        name,
        dir_flags | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .map_err(|e| Error::io("opening bundle", dir, e))?;
    let on_tmpfs = rfs::fstatfs(&top).is_ok_and(|s| s.f_type == TMPFS_MAGIC);
    let limit = if on_tmpfs { 0 } else { teardown::hold_cap() };
    // Markers last (any one makes the directory a bundle to a later `remove`).
    teardown::empty(&top, dir, &["config.json", RECORD], held, limit)?;
    rfs::unlinkat(&parent_fd, name, AtFlags::REMOVEDIR)
        .map_err(|e| Error::io("removing bundle", dir, e))?;
    if held.len() < limit {
        held.push(top);
    }
    Ok(true)
}

/// `statfs.f_type` of tmpfs.
const TMPFS_MAGIC: rfs::FsWord = 0x0102_1994;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_is_a_no_op_when_gone_and_refuses_non_bundles() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(!remove(&tmp.path().join("gone"), &mut Vec::new()).unwrap());
        let other = tmp.path().join("precious");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("data"), "keep").unwrap();
        assert!(matches!(
            remove(&other, &mut Vec::new()),
            Err(Error::NotABundle { .. })
        ));
        assert!(other.join("data").exists());
    }

    #[test]
    fn a_non_empty_directory_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("x"), "").unwrap();
        let opts = Options {
            id: "t".into(),
            ..Options::default()
        };
        let req = Request {
            dir: tmp.path(),
            layers: &[],
            image: &ImageConfig::default(),
            options: &opts,
            host: detect_host(),
            volatile: true,
            record: Record::default(),
        };
        assert!(matches!(create(&req), Err(Error::BundleExists { .. })));
        assert!(tmp.path().join("x").exists());
    }

    #[test]
    fn records_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(record(tmp.path()).unwrap(), None);
        let r = Record {
            image: "busybox@sha256:ab".into(),
            root: "/var/lib/berth".into(),
            lease: "b1-0123".into(),
            snapshots: vec!["sha256:cd".into()],
            volatile: true,
        };
        fs::write(tmp.path().join(RECORD), serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(record(tmp.path()).unwrap(), Some(r));
        // Records written before `volatile` existed read as durable.
        let old = r#"{"image": "i", "root": "/r", "lease": "l", "snapshots": []}"#;
        fs::write(tmp.path().join(RECORD), old).unwrap();
        assert!(!record(tmp.path()).unwrap().unwrap().volatile);
    }
}
