//! What containerd gives every container before options apply: mounts, masked and
//! read-only paths, rlimits, the default PATH.

use crate::runtime::{Mount, Rlimit};

/// PATH when the image's Env has none (docker's and containerd's).
pub const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Default size of `/dev/shm` (64 MiB).
pub const SHM_SIZE: u64 = 64 << 20;

/// Paths over which runc mounts an empty read-only file or directory.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
];

/// Paths runc remounts read-only.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `RLIMIT_NOFILE` 1024:1024, as containerd sets.
pub fn rlimits() -> Vec<Rlimit> {
    vec![Rlimit {
        kind: "RLIMIT_NOFILE".into(),
        hard: 1024,
        soft: 1024,
    }]
}

/// How the default mounts vary with the container's options.
#[derive(Debug, Clone, Copy)]
pub struct MountChoices {
    pub privileged: bool,
    pub shm_size: u64,
    /// The host's `/dev/shm` is shared (`--ipc host`).
    pub host_ipc: bool,
    /// `/sys` must be a bind of the host's: a new user namespace without its own network
    /// namespace may not mount sysfs.
    pub sys_bind: bool,
}

fn mount(destination: &str, kind: &str, source: &str, options: &[&str]) -> Mount {
    Mount {
        destination: destination.into(),
        kind: kind.into(),
        source: source.into(),
        options: options.iter().map(|o| o.to_string()).collect(),
    }
}

/// `/proc`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/sys` and the cgroup mount.
pub fn mounts(c: MountChoices) -> Vec<Mount> {
    let ro = if c.privileged { "rw" } else { "ro" };
    let mut out = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
    ];
    if c.host_ipc {
        out.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "nosuid", "noexec", "nodev"],
        ));
    } else {
        let size = format!("size={}", c.shm_size);
        out.push(mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &size],
        ));
    }
    out.push(mount(
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ));
    if c.sys_bind {
        out.push(mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", ro],
        ));
    } else {
        out.push(mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", ro],
        ));
    }
    out.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &["nosuid", "noexec", "nodev", "relatime", ro],
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> MountChoices {
        MountChoices {
            privileged: false,
            shm_size: SHM_SIZE,
            host_ipc: false,
            sys_bind: false,
        }
    }

    #[test]
    fn default_mounts_are_containerds() {
        let m = mounts(choices());
        let dests: Vec<&str> = m.iter().map(|m| m.destination.as_str()).collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup"
            ]
        );
        assert!(m[3].options.contains(&"size=67108864".to_string()));
        assert!(m[5].options.contains(&"ro".to_string()));
        assert!(m[6].options.contains(&"ro".to_string()));
    }

    #[test]
    fn privileged_and_host_ipc_change_sys_and_shm() {
        let m = mounts(MountChoices {
            privileged: true,
            host_ipc: true,
            sys_bind: true,
            ..choices()
        });
        assert_eq!(
            (m[3].kind.as_str(), m[3].source.as_str()),
            ("bind", "/dev/shm")
        );
        assert_eq!(m[5].kind, "bind");
        assert!(m[5].options.contains(&"rw".to_string()));
        assert!(m[6].options.contains(&"rw".to_string()));
    }
}
