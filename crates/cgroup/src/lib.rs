//! Cgroups for berth-run: which hierarchies the host has (v1, v2 or hybrid, read from
//! `/proc/self/mountinfo`), where a container's cgroup goes (always under the absolute parent
//! `/berth` for a relative path, never under the caller's own cgroup), applying the OCI
//! `linux.resources` to it, and removing it.
#![forbid(unsafe_code)]

mod devices_bpf;
mod freezer;
mod resources;
pub mod stats;
mod update;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use berth_kind::{HasKind, Kind};

pub use devices_bpf::{
    attached_programs, device_list, program as device_program, PROGRAM_NAME as DEVICE_PROGRAM_NAME,
};

pub use resources::{
    BlockIo, Cpu, DeviceRule, HugepageLimit, Memory, Pids, Resources, ThrottleDevice, WeightDevice,
};
pub use update::{plan_update, UpdatePlan};

/// The parent of every container cgroup given by a relative (or no) `cgroupsPath`.
pub const PARENT: &str = "/berth";

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading /proc/self/mountinfo")]
    Mountinfo(#[source] io::Error),
    #[error("no cgroup hierarchy is mounted")]
    NoCgroups,
    #[error("cgroup path {0:?} is not allowed (it must not contain `..`)")]
    BadPath(String),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {what}: the host has no {controller} controller")]
    NoController {
        what: String,
        controller: &'static str,
    },
    #[error("cgroup {what}: {why}")]
    Invalid { what: String, why: String },
    #[error("loading the device program for {path} (verifier: {verifier:?})")]
    BpfLoad {
        path: PathBuf,
        verifier: String,
        #[source]
        source: io::Error,
    },
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Mountinfo(_) | Error::Io { .. } => match self {
                Error::Io { source, .. } | Error::Mountinfo(source) => Kind::of_io(source),
                _ => Kind::Internal,
            },
            Error::NoCgroups | Error::NoController { .. } => Kind::Unsupported,
            Error::BadPath(_) | Error::Invalid { .. } => Kind::InvalidArgument,
            Error::BpfLoad { source, .. } => Kind::of_io(source),
        }
    }
}

type Result<T> = std::result::Result<T, Error>;

/// The cgroup hierarchies of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// v1 controllers and the mount point of each (absent on a pure v2 host).
    pub v1: BTreeMap<String, PathBuf>,
    /// The v2 mount point: the only hierarchy on a v2 host, the `unified` one on a hybrid host.
    pub v2: Option<PathBuf>,
}

impl Layout {
    /// Reads the host's layout from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Layout> {
        let text = fs::read_to_string("/proc/self/mountinfo").map_err(Error::Mountinfo)?;
        let layout = Layout::parse(&text);
        if layout.v1.is_empty() && layout.v2.is_none() {
            return Err(Error::NoCgroups);
        }
        Ok(layout)
    }

    /// Parses mountinfo text: every `cgroup` mount gives its controllers, the first `cgroup2`
    /// mount gives the v2 hierarchy. Named v1 hierarchies (`name=systemd`) are not controllers.
    pub fn parse(mountinfo: &str) -> Layout {
        let mut v1 = BTreeMap::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split(' ').collect();
            let rest: Vec<&str> = right.split(' ').collect();
            if fields.len() < 5 || rest.len() < 3 {
                continue;
            }
            let mount_point = PathBuf::from(unescape(fields[4]));
            // A later mount on the same point hides the earlier one (e.g. a tmpfs over
            // /sys/fs/cgroup/unified): forget what it hides.
            v1.retain(|_, m: &mut PathBuf| *m != mount_point);
            if v2.as_ref() == Some(&mount_point) {
                v2 = None;
            }
            match rest[0] {
                "cgroup2" if v2.is_none() => v2 = Some(mount_point),
                "cgroup" => {
                    for opt in rest[2].split(',') {
                        if is_controller(opt) {
                            v1.entry(opt.to_string())
                                .or_insert_with(|| mount_point.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        Layout { v1, v2 }
    }

    /// Whether this is a pure v2 host.
    pub fn is_v2(&self) -> bool {
        self.v1.is_empty() && self.v2.is_some()
    }
}

fn is_controller(opt: &str) -> bool {
    matches!(
        opt,
        "cpu"
            | "cpuacct"
            | "cpuset"
            | "memory"
            | "devices"
            | "freezer"
            | "blkio"
            | "pids"
            | "hugetlb"
            | "net_cls"
            | "net_prio"
            | "perf_event"
            | "rdma"
            | "misc"
    )
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// The cgroup path (inside every hierarchy) for a spec's `cgroupsPath`: an absolute path is
/// kept, a relative one goes under [`PARENT`], none gives `/berth/<id>`.
pub fn resolve_path(cgroups_path: Option<&str>, id: &str) -> Result<String> {
    let raw = match cgroups_path {
        None | Some("") => format!("{PARENT}/{id}"),
        Some(p) if p.starts_with('/') => p.to_string(),
        Some(p) => format!("{PARENT}/{p}"),
    };
    if raw.contains(':') && !raw.starts_with('/') {
        return Err(Error::BadPath(raw));
    }
    let clean: Vec<&str> = raw
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if clean.contains(&"..") || clean.is_empty() {
        return Err(Error::BadPath(raw));
    }
    Ok(format!("/{}", clean.join("/")))
}

/// A container's cgroup: one directory per hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    /// The cgroup path inside each hierarchy (`/berth/<id>`).
    pub path: String,
    /// v1 controller -> directory.
    pub v1: BTreeMap<String, PathBuf>,
    /// The directory in the v2 hierarchy.
    pub v2: Option<PathBuf>,
}

impl Cgroup {
    /// The directories of `path` in every hierarchy of `layout`, without touching them.
    pub fn at(layout: &Layout, path: &str) -> Cgroup {
        let rel = path.trim_start_matches('/');
        let v1 = layout
            .v1
            .iter()
            .map(|(c, m)| (c.clone(), m.join(rel)))
            .collect();
        Cgroup {
            path: path.to_string(),
            v1,
            v2: layout.v2.as_ref().map(|m| m.join(rel)),
        }
    }

    /// Every distinct directory (controllers that share a mount share one).
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.v1.values().cloned().collect();
        dirs.extend(self.v2.clone());
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// Creates the directories (and missing parents) in every hierarchy; on a v1 host the
    /// cpuset of each new level is copied from its parent, as the kernel leaves it empty.
    pub fn create(&self, layout: &Layout) -> Result<()> {
        for (controller, dir) in &self.v1 {
            let mount = &layout.v1[controller];
            mkdir_levels(mount, dir, controller == "cpuset")?;
        }
        if let (Some(dir), Some(mount)) = (&self.v2, &layout.v2) {
            mkdir_levels(mount, dir, false)?;
            if layout.is_v2() {
                enable_controllers(mount, dir)?;
            }
        }
        Ok(())
    }

    /// Moves a process into the cgroup in every hierarchy.
    pub fn add(&self, pid: i32) -> Result<()> {
        for dir in self.dirs() {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The v2 directory opened read-only and close-on-exec, as `clone3` with
    /// `CLONE_INTO_CGROUP` takes it; `None` without a v2 hierarchy.
    pub fn v2_dir_fd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        let Some(dir) = &self.v2 else {
            return Ok(None);
        };
        let file = fs::File::open(dir).map_err(|source| Error::Io {
            op: "opening",
            path: dir.clone(),
            source,
        })?;
        Ok(Some(file.into()))
    }

    /// The pids in the cgroup (read from the first hierarchy that has the directory).
    pub fn procs(&self) -> Result<Vec<i32>> {
        for dir in self.dirs() {
            match fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(text) => {
                    return Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Io {
                        op: "reading",
                        path: dir,
                        source,
                    })
                }
            }
        }
        Ok(Vec::new())
    }

    /// Removes the directories (a missing one is fine). Retries briefly while the kernel
    /// still counts exiting tasks.
    pub fn remove(&self) -> Result<()> {
        for dir in self.dirs() {
            let mut tries = 0;
            loop {
                match fs::remove_dir(&dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(16) && tries < 200 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    Err(source) => {
                        return Err(Error::Io {
                            op: "removing",
                            path: dir,
                            source,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies `linux.resources`.
    pub fn apply(&self, res: &Resources) -> Result<()> {
        if self.v1.is_empty() {
            resources::apply_v2(self.v2.as_deref().ok_or(Error::NoCgroups)?, res)
        } else {
            resources::apply_v1(self, res)
        }
    }

    /// The directory of one v1 controller, or an error naming what needed it.
    pub(crate) fn v1_dir(&self, controller: &'static str, what: &str) -> Result<&Path> {
        self.v1
            .get(controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::NoController {
                what: what.to_string(),
                controller,
            })
    }
}

fn mkdir_levels(mount: &Path, dir: &Path, cpuset: bool) -> Result<()> {
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        match fs::create_dir(&cur) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "creating",
                    path: cur,
                    source,
                })
            }
        }
        if cpuset {
            // Whenever the value is empty, not only when we made the directory: another
            // process may have made it a moment ago and not filled it in yet (as runc does).
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if read(&cur.join(file))?.trim().is_empty() {
                    let value = read(&parent.join(file))?;
                    write(&cur.join(file), value.trim())?;
                }
            }
        }
    }
    Ok(())
}

fn enable_controllers(mount: &Path, dir: &Path) -> Result<()> {
    let available = read(&mount.join("cgroup.controllers"))?;
    let wanted: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let rel = dir.strip_prefix(mount).unwrap_or(dir);
    let mut cur = mount.to_path_buf();
    let comps: Vec<_> = rel.components().collect();
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        cur.push(comp);
        write(&cur.join("cgroup.subtree_control"), &wanted.join(" "))?;
    }
    Ok(())
}

pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|source| Error::Io {
        op: "writing",
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|source| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn hybrid_host_has_v1_controllers_and_a_unified_tree() {
        let l = Layout::parse(HYBRID);
        assert_eq!(l.v1.len(), 3);
        assert_eq!(l.v1["cpu"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.v1["cpuacct"], PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert!(!l.v1.contains_key("name=systemd"));
        assert_eq!(l.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert!(!l.is_v2());
    }

    #[test]
    fn a_hierarchy_hidden_by_a_later_mount_is_not_used() {
        let text = format!("{HYBRID}50 41 0:60 / /sys/fs/cgroup/unified rw - tmpfs none rw\n");
        let l = Layout::parse(&text);
        assert_eq!(l.v2, None);
        assert_eq!(l.v1.len(), 3);
    }

    #[test]
    fn pure_v2_host() {
        let l = Layout::parse("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert!(l.is_v2());
        let cg = Cgroup::at(&l, "/berth/c1");
        assert_eq!(cg.dirs(), vec![PathBuf::from("/sys/fs/cgroup/berth/c1")]);
    }

    #[test]
    fn relative_paths_go_under_berth_never_the_callers_cgroup() {
        assert_eq!(resolve_path(None, "c1").unwrap(), "/berth/c1");
        assert_eq!(
            resolve_path(Some("pods/c1"), "x").unwrap(),
            "/berth/pods/c1"
        );
        assert_eq!(resolve_path(Some("/abs/c1"), "x").unwrap(), "/abs/c1");
        assert!(resolve_path(Some("../../etc"), "x").is_err());
        assert!(resolve_path(Some("/"), "x").is_err());
    }

    #[test]
    fn shared_mounts_give_one_directory() {
        let cg = Cgroup::at(&Layout::parse(HYBRID), "/berth/c1");
        let dirs = cg.dirs();
        assert_eq!(dirs.len(), 3, "{dirs:?}");
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/unified/berth/c1")));
    }
}
