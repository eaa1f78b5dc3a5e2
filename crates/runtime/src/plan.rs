//! Spec -> plan: everything the container's init will do, as plain data, checked before any
//! process exists. No syscalls here, so every rule is unit-tested without root.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::caps;
use crate::error::{Error, Result};
use crate::spec::{self, Spec};

pub(crate) const CLONE_NEWNS: u64 = 0x0002_0000;
pub(crate) const CLONE_NEWCGROUP: u64 = 0x0200_0000;
pub(crate) const CLONE_NEWUTS: u64 = 0x0400_0000;
pub(crate) const CLONE_NEWIPC: u64 = 0x0800_0000;
pub(crate) const CLONE_NEWUSER: u64 = 0x1000_0000;
pub(crate) const CLONE_NEWPID: u64 = 0x2000_0000;
pub(crate) const CLONE_NEWNET: u64 = 0x4000_0000;
pub(crate) const CLONE_NEWTIME: u64 = 0x0000_0080;

// mount(2) flags
pub(crate) const MS_RDONLY: u64 = 1;
pub(crate) const MS_NOSUID: u64 = 2;
pub(crate) const MS_NODEV: u64 = 4;
pub(crate) const MS_NOEXEC: u64 = 8;
pub(crate) const MS_SYNCHRONOUS: u64 = 16;
pub(crate) const MS_REMOUNT: u64 = 32;
pub(crate) const MS_MANDLOCK: u64 = 64;
pub(crate) const MS_DIRSYNC: u64 = 128;
pub(crate) const MS_NOSYMFOLLOW: u64 = 256;
pub(crate) const MS_NOATIME: u64 = 1024;
pub(crate) const MS_NODIRATIME: u64 = 2048;
pub(crate) const MS_BIND: u64 = 4096;
pub(crate) const MS_MOVE: u64 = 8192;
pub(crate) const MS_REC: u64 = 16384;
pub(crate) const MS_SILENT: u64 = 1 << 15;
pub(crate) const MS_POSIXACL: u64 = 1 << 16;
pub(crate) const MS_UNBINDABLE: u64 = 1 << 17;
pub(crate) const MS_PRIVATE: u64 = 1 << 18;
pub(crate) const MS_SLAVE: u64 = 1 << 19;
pub(crate) const MS_SHARED: u64 = 1 << 20;
pub(crate) const MS_RELATIME: u64 = 1 << 21;
pub(crate) const MS_I_VERSION: u64 = 1 << 23;
pub(crate) const MS_STRICTATIME: u64 = 1 << 24;
pub(crate) const MS_LAZYTIME: u64 = 1 << 25;

/// Which namespaces to create in the clone, and which to join by path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Namespaces {
    /// CLONE_NEW* flags for namespaces created new.
    pub new: u64,
    /// (CLONE_NEW* flag, path) of namespaces joined, user namespace first.
    pub join: Vec<(u64, String)>,
}

impl Namespaces {
    pub fn has(&self, flag: u64) -> bool {
        self.new & flag != 0 || self.join.iter().any(|(f, _)| *f == flag)
    }

    /// A user namespace is joined by path (then the init unshares the other new ones).
    pub fn user_joined(&self) -> bool {
        self.join.iter().any(|(f, _)| *f == CLONE_NEWUSER)
    }
}

/// One mount to make inside the rootfs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MountOp {
    /// Absolute path inside the container.
    pub dest: String,
    pub source: Option<String>,
    pub fstype: Option<String>,
    /// MS_* flags (without propagation).
    pub flags: u64,
    /// Propagation changes to apply after mounting (MS_SHARED|MS_REC, …).
    pub propagation: Vec<u64>,
    /// MOUNT_ATTR_* to set recursively with mount_setattr (rro, rnosuid, …).
    pub recursive_attrs: u64,
    /// MOUNT_ATTR_* to clear recursively (rrw, rsuid, …; the access-time mask when
    /// `recursive_attrs` sets an access-time mode).
    #[serde(default)]
    pub recursive_clear: u64,
    /// `tmpcopyup` on a tmpfs: what the rootfs has at the destination is copied into it.
    #[serde(default)]
    pub copy_up: bool,
    /// Filesystem-specific options (`size=64m`, `mode=755`).
    pub data: String,
    /// An idmapped bind mount: (uid_map, gid_map, recursive) in /proc/<pid>/uid_map form.
    pub idmap: Option<(String, String, bool)>,
}

impl MountOp {
    pub fn is_bind(&self) -> bool {
        self.flags & MS_BIND != 0
    }
}

/// A device node to create in the container's /dev.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceNode {
    pub path: String,
    /// 'c', 'b' or 'p'.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CapsPlan {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RlimitPlan {
    pub name: String,
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: Option<u32>,
    pub caps: CapsPlan,
    pub rlimits: Vec<RlimitPlan>,
    pub no_new_privs: bool,
    pub oom_score_adj: Option<i32>,
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
}

/// Everything the init does, decided before it exists.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Plan {
    pub rootfs: PathBuf,
    pub root_readonly: bool,
    /// MS_* propagation for `/` in the new mount namespace (default MS_SLAVE|MS_REC, as runc).
    pub root_propagation: u64,
    pub no_pivot: bool,
    pub namespaces: Namespaces,
    pub uid_map: String,
    pub gid_map: String,
    pub mounts: Vec<MountOp>,
    pub devices: Vec<DeviceNode>,
    /// Whether /dev is a bind mount from the host (then no default devices are made).
    pub dev_is_bind: bool,
    pub masked: Vec<String>,
    pub readonly: Vec<String>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    /// (path under /proc/sys, value)
    pub sysctls: Vec<(String, String)>,
    pub time_offsets: Vec<(String, i64, u32)>,
    pub personality: Option<u64>,
    pub process: ProcessPlan,
    pub seccomp: Option<spec::Seccomp>,
    pub new_keyring: bool,
    pub has_hooks_before_pivot: bool,
    /// startContainer hooks: run by the init inside the container, after `start`.
    pub start_container: Vec<spec::Hook>,
}

/// Options from the command line that shape the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// The highest capability number this kernel knows (/proc/sys/kernel/cap_last_cap).
    pub last_cap: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Builds the plan for a spec read from `bundle/config.json`.
pub fn build(spec: &Spec, bundle: &Path, opts: &PlanOptions) -> Result<Plan> {
    let process = spec
        .process
        .as_ref()
        .ok_or_else(|| Error::spec("process is missing"))?;
    let root = spec
        .root
        .as_ref()
        .ok_or_else(|| Error::spec("root is missing"))?;
    if root.path.is_empty() {
        return Err(Error::spec("root.path is empty"));
    }
    let linux = spec.linux.clone().unwrap_or_default();
    if process.args.is_empty() {
        return Err(Error::spec("process.args is empty"));
    }
    if !process.cwd.starts_with('/') {
        return Err(Error::spec(format!(
            "process.cwd {:?} is not an absolute path",
            process.cwd
        )));
    }
    if process
        .apparmor_profile
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(Error::Unsupported(format!(
            "process.apparmorProfile {:?}: AppArmor is not enabled on this host",
            process.apparmor_profile.as_deref().unwrap_or("")
        )));
    }
    if process
        .selinux_label
        .as_deref()
        .is_some_and(|p| !p.is_empty())
        || linux.mount_label.as_deref().is_some_and(|p| !p.is_empty())
    {
        return Err(Error::Unsupported(
            "SELinux labels were asked for, but SELinux is not enabled on this host".into(),
        ));
    }

    let namespaces = namespaces(&linux.namespaces)?;
    if !namespaces.has(CLONE_NEWNS) {
        return Err(Error::spec(
            "linux.namespaces: a mount namespace is required",
        ));
    }
    let new_user = namespaces.new & CLONE_NEWUSER != 0;
    if new_user && (linux.uid_mappings.is_empty() || linux.gid_mappings.is_empty()) {
        return Err(Error::spec(
            "linux.namespaces: a new user namespace needs linux.uidMappings and linux.gidMappings",
        ));
    }
    // With a joined user namespace they may be given (runc 1.1 requires them), and must be
    // the namespace's own: the init checks (init.rs, check_joined_maps).
    if !new_user
        && !namespaces.user_joined()
        && (!linux.uid_mappings.is_empty() || !linux.gid_mappings.is_empty())
    {
        return Err(Error::spec(
            "linux.uidMappings: id mappings need a new or joined user namespace",
        ));
    }
    if spec.hostname.as_deref().is_some_and(|h| !h.is_empty()) && !namespaces.has(CLONE_NEWUTS) {
        return Err(Error::spec("hostname: setting it needs a uts namespace"));
    }
    if spec.domainname.as_deref().is_some_and(|h| !h.is_empty()) && !namespaces.has(CLONE_NEWUTS) {
        return Err(Error::spec("domainname: setting it needs a uts namespace"));
    }

    let rootfs = if root.path.starts_with('/') {
        PathBuf::from(&root.path)
    } else {
        bundle.join(&root.path)
    };
    let root_propagation = match linux.rootfs_propagation.as_deref() {
        None | Some("") => MS_SLAVE | MS_REC,
        Some(p) => propagation(p)
            .ok_or_else(|| Error::spec(format!("linux.rootfsPropagation: unknown value {p:?}")))?,
    };

    let mut mounts = Vec::with_capacity(spec.mounts.len());
    for m in &spec.mounts {
        mounts.push(mount_op(m)?);
    }
    let dev_is_bind = mounts.iter().any(|m| m.dest == "/dev" && m.is_bind());

    let mut devices = default_devices();
    for d in &linux.devices {
        devices.retain(|x| x.path != d.path);
        devices.push(device(d)?);
    }

    let mut sysctls = Vec::new();
    for (key, value) in &linux.sysctl {
        check_sysctl(key, &namespaces)?;
        sysctls.push((key.replace('.', "/"), value.clone()));
    }

    let mut time_offsets = Vec::new();
    for (clock, off) in &linux.time_offsets {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::spec(format!(
                "linux.timeOffsets: unknown clock {clock:?}"
            )));
        }
        if off.nanosecs >= 1_000_000_000 {
            return Err(Error::spec(format!(
                "linux.timeOffsets.{clock}.nanosecs {} is not below 1000000000",
                off.nanosecs
            )));
        }
        time_offsets.push((clock.clone(), off.secs, off.nanosecs));
    }
    if !time_offsets.is_empty() && namespaces.new & CLONE_NEWTIME == 0 {
        return Err(Error::spec(
            "linux.timeOffsets: offsets need a new time namespace",
        ));
    }

    if let Some(s) = &linux.seccomp {
        crate::seccomp::check_notify(s).map_err(Error::spec)?;
    }

    let personality = match &linux.personality {
        None => None,
        Some(p) => Some(match p.domain.as_str() {
            "LINUX" => 0,
            "LINUX32" => 0x0008,
            other => {
                return Err(Error::spec(format!(
                    "linux.personality.domain: unknown {other:?}"
                )))
            }
        }),
    };

    let hooks = spec.hooks.clone().unwrap_or_default();
    Ok(Plan {
        rootfs,
        root_readonly: root.readonly,
        root_propagation,
        no_pivot: opts.no_pivot,
        uid_map: id_map(&linux.uid_mappings),
        gid_map: id_map(&linux.gid_mappings),
        namespaces,
        mounts,
        devices,
        dev_is_bind,
        masked: linux.masked_paths.clone(),
        readonly: linux.readonly_paths.clone(),
        hostname: spec.hostname.clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname.clone().filter(|h| !h.is_empty()),
        sysctls,
        time_offsets,
        personality,
        process: process_plan(process, opts.last_cap)?,
        seccomp: linux.seccomp.clone(),
        new_keyring: !opts.no_new_keyring,
        start_container: hooks.start_container.clone(),
        has_hooks_before_pivot: !hooks.prestart.is_empty()
            || !hooks.create_runtime.is_empty()
            || !hooks.create_container.is_empty(),
    })
}

fn namespaces(list: &[spec::Namespace]) -> Result<Namespaces> {
    let mut ns = Namespaces::default();
    let mut seen = 0u64;
    for n in list {
        let flag = match n.kind.as_str() {
            "pid" => CLONE_NEWPID,
            "network" => CLONE_NEWNET,
            "mount" => CLONE_NEWNS,
            "ipc" => CLONE_NEWIPC,
            "uts" => CLONE_NEWUTS,
            "user" => CLONE_NEWUSER,
            "cgroup" => CLONE_NEWCGROUP,
            "time" => CLONE_NEWTIME,
            other => {
                return Err(Error::spec(format!(
                    "linux.namespaces: unknown type {other:?}"
                )))
            }
        };
        if seen & flag != 0 {
            return Err(Error::spec(format!(
                "linux.namespaces: {} appears twice",
                n.kind
            )));
        }
        seen |= flag;
        match n.path.as_deref().filter(|p| !p.is_empty()) {
            None => ns.new |= flag,
            Some(p) => ns.join.push((flag, p.to_string())),
        }
    }
    // The user namespace is joined first: it owns the others. When it is joined while others
    // are made, the init is cloned inside it by a helper (joined_user.rs), which joins a pid
    // or time namespace to join before it.
    ns.join.sort_by_key(|(f, _)| *f != CLONE_NEWUSER);
    Ok(ns)
}

fn id_map(maps: &[spec::IdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

pub(crate) fn propagation(name: &str) -> Option<u64> {
    Some(match name {
        "private" => MS_PRIVATE,
        "rprivate" => MS_PRIVATE | MS_REC,
        "shared" => MS_SHARED,
        "rshared" => MS_SHARED | MS_REC,
        "slave" => MS_SLAVE,
        "rslave" => MS_SLAVE | MS_REC,
        "unbindable" => MS_UNBINDABLE,
        "runbindable" => MS_UNBINDABLE | MS_REC,
        _ => return None,
    })
}

fn mount_op(m: &spec::Mount) -> Result<MountOp> {
    if !m.destination.starts_with('/') {
        return Err(Error::spec(format!(
            "mounts: destination {:?} is not an absolute path",
            m.destination
        )));
    }
    let mut op = MountOp {
        dest: m.destination.clone(),
        source: m.source.clone(),
        fstype: m.kind.clone().filter(|t| !t.is_empty() && t != "none"),
        ..Default::default()
    };
    let mut data = Vec::new();
    let mut idmap_option: Option<bool> = None;
    for o in &m.options {
        let (set, clear): (u64, u64) = match o.as_str() {
            "defaults" => (0, 0),
            "ro" => (MS_RDONLY, 0),
            "rw" => (0, MS_RDONLY),
            "suid" => (0, MS_NOSUID),
            "nosuid" => (MS_NOSUID, 0),
            "dev" => (0, MS_NODEV),
            "nodev" => (MS_NODEV, 0),
            "exec" => (0, MS_NOEXEC),
            "noexec" => (MS_NOEXEC, 0),
            "sync" => (MS_SYNCHRONOUS, 0),
            "async" => (0, MS_SYNCHRONOUS),
            "dirsync" => (MS_DIRSYNC, 0),
            "remount" => (MS_REMOUNT, 0),
            "mand" => (MS_MANDLOCK, 0),
            "nomand" => (0, MS_MANDLOCK),
            "atime" => (0, MS_NOATIME),
            "noatime" => (MS_NOATIME, 0),
            "diratime" => (0, MS_NODIRATIME),
            "nodiratime" => (MS_NODIRATIME, 0),
            "relatime" => (MS_RELATIME, 0),
            "norelatime" => (0, MS_RELATIME),
            "strictatime" => (MS_STRICTATIME, 0),
            "nostrictatime" => (0, MS_STRICTATIME),
            "symfollow" => (0, MS_NOSYMFOLLOW),
            "nosymfollow" => (MS_NOSYMFOLLOW, 0),
            "acl" => (MS_POSIXACL, 0),
            "noacl" => (0, MS_POSIXACL),
            "iversion" => (MS_I_VERSION, 0),
            "noiversion" => (0, MS_I_VERSION),
            "lazytime" => (MS_LAZYTIME, 0),
            "nolazytime" => (0, MS_LAZYTIME),
            "silent" => (MS_SILENT, 0),
            "loud" => (0, MS_SILENT),
            "bind" => (MS_BIND, 0),
            "rbind" => (MS_BIND | MS_REC, 0),
            "tmpcopyup" => {
                op.copy_up = true;
                (0, 0)
            }
            "idmap" | "ridmap" => {
                idmap_option = Some(o == "ridmap");
                (0, 0)
            }
            other if recursive_attr(&mut op, other) => (0, 0),
            other => match propagation(other) {
                Some(p) => {
                    op.propagation.push(p);
                    (0, 0)
                }
                None => {
                    data.push(other.to_string());
                    (0, 0)
                }
            },
        };
        op.flags = (op.flags | set) & !clear;
    }
    if op.fstype.as_deref() == Some("bind") {
        op.flags |= MS_BIND;
        op.fstype = None;
    }
    // As runc: copying up only means something for a tmpfs.
    op.copy_up &= op.fstype.as_deref() == Some("tmpfs");
    if idmap_option.is_some() || !m.uid_mappings.is_empty() || !m.gid_mappings.is_empty() {
        if !op.is_bind() {
            return Err(Error::spec(format!(
                "mount {}: idmapped mounts are bind mounts only",
                m.destination
            )));
        }
        if m.uid_mappings.is_empty() || m.gid_mappings.is_empty() {
            return Err(Error::spec(format!(
                "mount {}: an idmapped mount needs uidMappings and gidMappings",
                m.destination
            )));
        }
        // `ridmap` idmaps every submount of an rbind too; `idmap` (or mappings alone) the top.
        let recursive = idmap_option.unwrap_or(false);
        op.idmap = Some((id_map(&m.uid_mappings), id_map(&m.gid_mappings), recursive));
    }
    if op.fstype.is_none() && !op.is_bind() {
        return Err(Error::spec(format!(
            "mount {}: no type and not a bind mount",
            m.destination
        )));
    }
    if op.is_bind() && op.source.as_deref().is_none_or(str::is_empty) {
        return Err(Error::spec(format!(
            "mount {}: a bind mount needs a source",
            m.destination
        )));
    }
    op.data = data.join(",");
    Ok(op)
}

/// The recursive options (`rro`, `rnosuid`, `rnoatime`, …): MOUNT_ATTR_* bits set or cleared
/// on the mount and everything under it with mount_setattr(AT_RECURSIVE), later options
/// winning. False when `name` is not one. An access-time mode is an enum in the kernel, not a
/// bit: changing it clears the whole mask and sets the value, so `ratime`, `rnorelatime` and
/// `rnostrictatime` (leaving a mode rather than entering one) give the kernel's default,
/// relatime; runc puts a partial mask in `attr_clr` there, which the kernel refuses.
fn recursive_attr(op: &mut MountOp, name: &str) -> bool {
    use berth_sys::mount_attr as attr;
    let (bit, set) = match name {
        "rro" => (attr::RDONLY, true),
        "rrw" => (attr::RDONLY, false),
        "rnosuid" => (attr::NOSUID, true),
        "rsuid" => (attr::NOSUID, false),
        "rnodev" => (attr::NODEV, true),
        "rdev" => (attr::NODEV, false),
        "rnoexec" => (attr::NOEXEC, true),
        "rexec" => (attr::NOEXEC, false),
        "rnodiratime" => (attr::NODIRATIME, true),
        "rdiratime" => (attr::NODIRATIME, false),
        "rnosymfollow" => (attr::NOSYMFOLLOW, true),
        "rsymfollow" => (attr::NOSYMFOLLOW, false),
        "rnoatime" | "rstrictatime" | "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => {
            let mode = match name {
                "rnoatime" => attr::NOATIME,
                "rstrictatime" => attr::STRICTATIME,
                _ => attr::RELATIME,
            };
            op.recursive_attrs = (op.recursive_attrs & !attr::ATIME_MASK) | mode;
            op.recursive_clear |= attr::ATIME_MASK;
            return true;
        }
        _ => return false,
    };
    if set {
        op.recursive_attrs |= bit;
        op.recursive_clear &= !bit;
    } else {
        op.recursive_attrs &= !bit;
        op.recursive_clear |= bit;
    }
    true
}

fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(path, major, minor)| DeviceNode {
        path: path.into(),
        kind: 'c',
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn device(d: &spec::Device) -> Result<DeviceNode> {
    let kind = match d.kind.as_str() {
        "c" | "u" => 'c',
        "b" => 'b',
        "p" => 'p',
        other => {
            return Err(Error::spec(format!(
                "linux.devices {}: unknown type {other:?}",
                d.path
            )))
        }
    };
    if !d.path.starts_with("/dev/") || d.path.split('/').any(|c| c == "..") {
        return Err(Error::spec(format!(
            "linux.devices: path {:?} is not under /dev",
            d.path
        )));
    }
    Ok(DeviceNode {
        path: d.path.clone(),
        kind,
        major: d.major.max(0) as u64,
        minor: d.minor.max(0) as u64,
        mode: d.file_mode.unwrap_or(0o666) & 0o7777,
        uid: d.uid.unwrap_or(0),
        gid: d.gid.unwrap_or(0),
    })
}

/// Sysctls are only allowed where the container has its own namespace for them (runc's rule).
fn check_sysctl(key: &str, ns: &Namespaces) -> Result<()> {
    if key.contains('/') || key.split('.').any(|c| c.is_empty() || c == "..") {
        return Err(Error::spec(format!("linux.sysctl: bad name {key:?}")));
    }
    let ipc = matches!(
        key,
        "kernel.msgmax"
            | "kernel.msgmnb"
            | "kernel.msgmni"
            | "kernel.sem"
            | "kernel.shmall"
            | "kernel.shmmax"
            | "kernel.shmmni"
            | "kernel.shm_rmid_forced"
    ) || key.starts_with("fs.mqueue.");
    let needs = if ipc {
        CLONE_NEWIPC
    } else if key.starts_with("net.") {
        CLONE_NEWNET
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        CLONE_NEWUTS
    } else {
        return Err(Error::spec(format!(
            "linux.sysctl: {key} is not in a separate kernel namespace"
        )));
    };
    if !ns.has(needs) {
        return Err(Error::spec(format!(
            "linux.sysctl: {key} needs its own namespace, which the spec does not have"
        )));
    }
    Ok(())
}

fn rlimit_number(name: &str) -> Option<i32> {
    const NAMES: [&str; 16] = [
        "RLIMIT_CPU",
        "RLIMIT_FSIZE",
        "RLIMIT_DATA",
        "RLIMIT_STACK",
        "RLIMIT_CORE",
        "RLIMIT_RSS",
        "RLIMIT_NPROC",
        "RLIMIT_NOFILE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_AS",
        "RLIMIT_LOCKS",
        "RLIMIT_SIGPENDING",
        "RLIMIT_MSGQUEUE",
        "RLIMIT_NICE",
        "RLIMIT_RTPRIO",
        "RLIMIT_RTTIME",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as i32)
}

pub(crate) fn process_plan(p: &spec::Process, last_cap: u32) -> Result<ProcessPlan> {
    let mut env = p.env.clone();
    for e in &env {
        if !e.contains('=') || e.contains('\0') {
            return Err(Error::spec(format!("process.env: {e:?} is not NAME=value")));
        }
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if p.args.iter().any(|a| a.contains('\0')) {
        return Err(Error::spec("process.args: an argument contains a NUL byte"));
    }
    let caps = match &p.capabilities {
        None => CapsPlan::default(),
        Some(c) => {
            let m =
                |set: &str, names: &[String]| caps::mask(set, names, last_cap).map_err(Error::spec);
            let permitted = m("permitted", &c.permitted)?;
            let inheritable = m("inheritable", &c.inheritable)?;
            CapsPlan {
                bounding: m("bounding", &c.bounding)?,
                effective: m("effective", &c.effective)?,
                permitted,
                inheritable,
                // The kernel only raises an ambient capability that is both permitted and
                // inheritable; like runc, the others are skipped (docs/security.md).
                ambient: m("ambient", &c.ambient)? & permitted & inheritable,
            }
        }
    };
    let mut rlimits = Vec::new();
    for r in &p.rlimits {
        let resource = rlimit_number(&r.kind)
            .ok_or_else(|| Error::spec(format!("process.rlimits: unknown type {:?}", r.kind)))?;
        if r.soft > r.hard {
            return Err(Error::spec(format!(
                "process.rlimits {}: soft {} is above hard {}",
                r.kind, r.soft, r.hard
            )));
        }
        rlimits.push(RlimitPlan {
            name: r.kind.clone(),
            resource,
            soft: r.soft,
            hard: r.hard,
        });
    }
    if let Some(adj) = p.oom_score_adj {
        if !(-1000..=1000).contains(&adj) {
            return Err(Error::spec(format!(
                "process.oomScoreAdj {adj} is outside -1000..1000"
            )));
        }
    }
    Ok(ProcessPlan {
        args: p.args.clone(),
        env,
        cwd: p.cwd.clone(),
        uid: p.user.uid,
        gid: p.user.gid,
        groups: p.user.additional_gids.clone(),
        umask: p.user.umask,
        caps,
        rlimits,
        no_new_privs: p.no_new_privileges,
        oom_score_adj: p.oom_score_adj,
        terminal: p.terminal,
        console_size: p.console_size.as_ref().map(|c| (c.height, c.width)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        let mut base: serde_json::Value = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
               "root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}"#,
        )
        .unwrap();
        let patch: serde_json::Value = serde_json::from_str(json).unwrap();
        merge(&mut base, patch);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    fn plan(json: &str) -> Result<Plan> {
        build(
            &spec(json),
            Path::new("/b"),
            &PlanOptions {
                last_cap: 40,
                ..Default::default()
            },
        )
    }

    #[test]
    fn minimal_spec_plans_new_namespaces_and_default_devices() {
        let p = plan("{}").unwrap();
        assert_eq!(p.rootfs, PathBuf::from("/b/rootfs"));
        assert_eq!(p.namespaces.new, CLONE_NEWNS | CLONE_NEWPID);
        assert_eq!(p.root_propagation, MS_SLAVE | MS_REC);
        assert!(p
            .devices
            .iter()
            .any(|d| d.path == "/dev/null" && d.major == 1 && d.minor == 3));
        assert!(p.process.env.iter().any(|e| e.starts_with("PATH=")));
        assert!(p.new_keyring);
    }

    #[test]
    fn mount_options_become_flags_propagation_and_data() {
        let p = plan(r#"{"mounts":[{"destination":"/data","source":"/src","options":["rbind","ro","nosuid","rshared","rro"]},
                                   {"destination":"/tmp","type":"tmpfs","source":"tmpfs","options":["nodev","size=64m","mode=1777"]}]}"#)
        .unwrap();
        let bind = &p.mounts[0];
        assert!(bind.is_bind());
        assert_eq!(bind.flags, MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID);
        assert_eq!(bind.propagation, vec![MS_SHARED | MS_REC]);
        assert_eq!(bind.recursive_attrs, berth_sys::mount_attr::RDONLY);
        let tmp = &p.mounts[1];
        assert_eq!(tmp.fstype.as_deref(), Some("tmpfs"));
        assert_eq!(tmp.flags, MS_NODEV);
        assert_eq!(tmp.data, "size=64m,mode=1777");
        assert!(!tmp.copy_up);
    }

    #[test]
    fn every_mount_option_runc_knows_is_a_flag_an_attribute_or_an_extension() {
        use berth_sys::mount_attr as attr;
        let p = plan(r#"{"mounts":[
            {"destination":"/a","source":"/src","options":["rbind","nosymfollow","rnoexec","rrw","rnoatime","rsuid","rnosymfollow"]},
            {"destination":"/b","type":"tmpfs","source":"tmpfs","options":["tmpcopyup","lazytime","iversion","acl","silent","strictatime","nostrictatime"]},
            {"destination":"/c","source":"/src","options":["bind","tmpcopyup","rnoexec","rexec","rstrictatime","ratime","loud","noacl"]}]}"#)
        .unwrap();
        let a = &p.mounts[0];
        assert_eq!(a.flags, MS_BIND | MS_REC | MS_NOSYMFOLLOW);
        assert_eq!(
            a.recursive_attrs,
            attr::NOEXEC | attr::NOATIME | attr::NOSYMFOLLOW
        );
        assert_eq!(
            a.recursive_clear,
            attr::RDONLY | attr::ATIME_MASK | attr::NOSUID
        );
        let b = &p.mounts[1];
        assert!(b.copy_up);
        assert_eq!(
            b.flags,
            MS_LAZYTIME | MS_I_VERSION | MS_POSIXACL | MS_SILENT
        );
        assert_eq!(b.data, "", "none of them is passed on as data");
        let c = &p.mounts[2];
        assert!(!c.copy_up, "tmpcopyup means something on a tmpfs only");
        assert_eq!(c.flags, MS_BIND);
        assert_eq!(
            c.recursive_attrs,
            attr::RELATIME,
            "ratime gives the default mode"
        );
        assert_eq!(c.recursive_clear, attr::NOEXEC | attr::ATIME_MASK);
    }

    #[test]
    fn joined_namespaces_keep_their_paths_user_first() {
        let p = plan(r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"network","path":"/run/netns/x"},{"type":"ipc","path":"/proc/1/ns/ipc"}]}}"#)
            .unwrap();
        assert_eq!(
            p.namespaces.join[0],
            (CLONE_NEWNET, "/run/netns/x".to_string())
        );
        assert_eq!(p.namespaces.join[1].0, CLONE_NEWIPC);
        assert_eq!(p.namespaces.new, CLONE_NEWNS);
        let p = plan(r#"{"linux":{"namespaces":[{"type":"mount","path":"/proc/1/ns/mnt"},{"type":"user","path":"/proc/1/ns/user"}]}}"#)
            .unwrap();
        assert_eq!(
            p.namespaces.join[0].0, CLONE_NEWUSER,
            "the user namespace is joined first"
        );
        // A pod's second container: the sandbox's user and pid namespaces, its own others.
        let p = plan(r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"uts"},{"type":"pid","path":"/proc/1/ns/pid"},{"type":"user","path":"/proc/1/ns/user"}]}}"#)
            .unwrap();
        assert_eq!(p.namespaces.join[0].0, CLONE_NEWUSER);
        assert_eq!(p.namespaces.join[1].0, CLONE_NEWPID);
        assert_eq!(p.namespaces.new, CLONE_NEWNS | CLONE_NEWUTS);
        // Its mappings may come along (runc 1.1 requires them); the init compares them.
        let p = plan(
            r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"user","path":"/proc/1/ns/user"}],
            "uidMappings":[{"containerID":0,"hostID":200000,"size":65536}],
            "gidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}}"#,
        )
        .unwrap();
        assert_eq!(p.uid_map, "0 200000 65536\n");
        let err = plan(
            r#"{"linux":{"namespaces":[{"type":"mount"}],
            "uidMappings":[{"containerID":0,"hostID":200000,"size":65536}]}}"#,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("need a new or joined user namespace"),
            "{err}"
        );
    }

    #[test]
    fn hostile_or_inconsistent_specs_are_refused_with_the_field_named() {
        let cases = [
            (r#"{"process":{"cwd":"tmp"}}"#, "process.cwd"),
            (r#"{"hostname":"h"}"#, "hostname"),
            (
                r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"mount"}]}}"#,
                "twice",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"pid"}]}}"#,
                "mount namespace",
            ),
            (
                r#"{"linux":{"sysctl":{"kernel.panic":"1"}}}"#,
                "kernel.panic",
            ),
            (
                r#"{"linux":{"sysctl":{"net.ipv4.ip_forward":"1"}}}"#,
                "net.ipv4.ip_forward",
            ),
            (
                r#"{"linux":{"devices":[{"type":"c","path":"/etc/x","major":1,"minor":3}]}}"#,
                "/etc/x",
            ),
            (
                r#"{"process":{"rlimits":[{"type":"RLIMIT_NOPE","hard":1,"soft":1}]}}"#,
                "RLIMIT_NOPE",
            ),
            (
                r#"{"process":{"capabilities":{"bounding":["CAP_FLY"]}}}"#,
                "CAP_FLY",
            ),
            (
                r#"{"mounts":[{"destination":"rel","type":"tmpfs"}]}"#,
                "rel",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"user"}]}}"#,
                "uidMappings",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"time"}],
                    "timeOffsets":{"boottime":{"secs":1,"nanosecs":1000000000}}}}"#,
                "timeOffsets.boottime.nanosecs",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"mount"}],"timeOffsets":{"monotonic":{"secs":1}}}}"#,
                "new time namespace",
            ),
            (
                r#"{"linux":{"namespaces":[{"type":"mount"}],"seccomp":{"defaultAction":"SCMP_ACT_ALLOW",
                    "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}}}"#,
                "listenerPath",
            ),
        ];
        for (json, needle) in cases {
            let err = plan(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn labels_are_unsupported_on_this_host() {
        let err = plan(r#"{"process":{"apparmorProfile":"docker-default"}}"#).unwrap_err();
        assert_eq!(
            berth_kind::HasKind::kind(&err),
            berth_kind::Kind::Unsupported
        );
    }

    #[test]
    fn sysctls_in_own_namespaces_become_proc_paths() {
        let p = plan(
            r#"{"linux":{"namespaces":[{"type":"mount"},{"type":"network"},{"type":"ipc"}],
                          "sysctl":{"net.ipv4.ip_forward":"1","kernel.shmmni":"100"}}}"#,
        )
        .unwrap();
        assert!(p
            .sysctls
            .contains(&("net/ipv4/ip_forward".into(), "1".into())));
        assert!(p.sysctls.contains(&("kernel/shmmni".into(), "100".into())));
    }

    #[test]
    fn capabilities_and_rlimits_are_numbers() {
        let p = plan(
            r#"{"process":{"capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"]},
                          "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":512}]}}"#,
        )
        .unwrap();
        assert_eq!(p.process.caps.bounding, 1 << 5);
        assert_eq!(p.process.caps.inheritable, 0);
        assert_eq!(p.process.rlimits[0].resource, 7);
    }
}
