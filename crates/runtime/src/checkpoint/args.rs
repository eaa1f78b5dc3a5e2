//! The criu command lines as plain data: what is external in a container (its bind mounts,
//! its stdio outside it) and the `criu dump` / `criu restore` arguments built from it.
//! Pure functions, unit-tested below; `checkpoint.rs` and `restore.rs` run them.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{CriuFlags, DUMP_LOG, RESTORE_LOG};
use crate::plan::{self, Plan};

/// One of the init's stdio fds as criu names it: `--external` on dump (a host file),
/// `--inherit-fd fd[N]:KEY` on restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StdioEntry {
    pub fd: u32,
    pub key: String,
    /// Whether dump must be told the file is external (files; pipes need no telling).
    pub external: bool,
}

/// The init's stdio fd as /proc shows it.
#[derive(Debug, Clone)]
pub(super) struct Descriptor {
    pub(super) fd: u32,
    pub(super) link: String,
    pub(super) mnt_id: Option<u64>,
    pub(super) inode: u64,
}

/// Which of the init's stdio fds restore must hand over: pipes (runc's `pipe:[ino]` key)
/// and files on mounts that are not the container's (`file[mnt:ino]`, hex as criu prints
/// it). Files inside the container, sockets and ttys are left to criu (and its flags).
pub(super) fn stdio_entries(
    descriptors: &[Descriptor],
    container_mounts: &[u64],
) -> Vec<StdioEntry> {
    let mut out: Vec<StdioEntry> = Vec::new();
    for d in descriptors {
        let entry = if d.link.starts_with("pipe:") {
            StdioEntry {
                fd: d.fd,
                key: d.link.clone(),
                external: false,
            }
        } else if d.link.starts_with('/') {
            match d.mnt_id {
                Some(m) if !container_mounts.contains(&m) => StdioEntry {
                    fd: d.fd,
                    key: format!("file[{m:x}:{:x}]", d.inode),
                    external: true,
                },
                _ => continue,
            }
        } else {
            continue;
        };
        // criu takes one --inherit-fd per key: fd 1 and 2 sharing a file share it.
        if !out.iter().any(|e| e.key == entry.key) {
            out.push(entry);
        }
    }
    out
}

/// What `criu dump` needs to know about a container.
#[derive(Debug, Clone, Default)]
pub(super) struct DumpInput {
    pub(super) pid: i32,
    pub(super) rootfs: PathBuf,
    pub(super) images: PathBuf,
    pub(super) work: Option<PathBuf>,
    pub(super) parent: Option<PathBuf>,
    pub(super) freezer: Option<PathBuf>,
    /// Mount points (inside the container) dumped as external: key = destination.
    pub(super) external_mounts: Vec<String>,
    /// `net[ino]:extRootNetNS`, `pid[ino]:extRootPidNS` for namespaces joined by path.
    pub(super) external_ns: Vec<String>,
    pub(super) stdio: Vec<StdioEntry>,
    pub(super) leave_running: bool,
    pub(super) pre_dump: bool,
}

pub(super) fn dump_args(d: &DumpInput, flags: &CriuFlags) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![if d.pre_dump { "pre-dump" } else { "dump" }.into()];
    a.extend(["-t".into(), d.pid.to_string().into()]);
    a.extend(["-D".into(), d.images.clone().into_os_string()]);
    if let Some(w) = &d.work {
        a.extend(["-W".into(), w.clone().into_os_string()]);
    }
    a.extend(["-o".into(), DUMP_LOG.into(), "-v4".into()]);
    a.extend(["--root".into(), d.rootfs.clone().into_os_string()]);
    if let Some(f) = &d.freezer {
        a.extend(["--freeze-cgroup".into(), f.clone().into_os_string()]);
    }
    if d.pre_dump || d.parent.is_some() {
        a.push("--track-mem".into());
    }
    if let Some(p) = &d.parent {
        a.extend(["--prev-images-dir".into(), p.clone().into_os_string()]);
    }
    if d.leave_running && !d.pre_dump {
        a.push("--leave-running".into());
    }
    flags.push(&mut a);
    if !d.pre_dump {
        for m in &d.external_mounts {
            a.extend(["--external".into(), format!("mnt[{m}]:{m}").into()]);
        }
        for s in d.stdio.iter().filter(|s| s.external) {
            a.extend(["--external".into(), s.key.clone().into()]);
        }
    }
    for ns in &d.external_ns {
        a.extend(["--external".into(), ns.clone().into()]);
    }
    a
}

/// What `criu restore` needs.
#[derive(Debug, Clone, Default)]
pub(super) struct RestoreInput {
    pub(super) images: PathBuf,
    pub(super) work: Option<PathBuf>,
    pub(super) root: PathBuf,
    pub(super) cgroup: String,
    pub(super) pid_file: PathBuf,
    /// (key = destination at dump, host source now).
    pub(super) external_mounts: Vec<(String, String)>,
    /// (fd number in criu, key).
    pub(super) inherit: Vec<(i32, String)>,
    /// (namespace, path) joined with `--join-ns`.
    pub(super) join_ns: Vec<(String, String)>,
}

pub(super) fn restore_args(r: &RestoreInput, flags: &CriuFlags) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec!["restore".into()];
    a.extend(["-D".into(), r.images.clone().into_os_string()]);
    if let Some(w) = &r.work {
        a.extend(["-W".into(), w.clone().into_os_string()]);
    }
    a.extend(["-o".into(), RESTORE_LOG.into(), "-v4".into()]);
    a.extend(["--root".into(), r.root.clone().into_os_string()]);
    // Detached, and a sibling: the restored init becomes berth-run's child.
    a.extend(["--restore-detached".into(), "--restore-sibling".into()]);
    a.extend(["--pidfile".into(), r.pid_file.clone().into_os_string()]);
    a.push("--evasive-devices".into());
    a.extend(["--cgroup-root".into(), r.cgroup.clone().into()]);
    flags.push(&mut a);
    for (key, source) in &r.external_mounts {
        a.extend(["--external".into(), format!("mnt[{key}]:{source}").into()]);
    }
    for (fd, key) in &r.inherit {
        a.extend(["--inherit-fd".into(), format!("fd[{fd}]:{key}").into()]);
    }
    for (ns, path) in &r.join_ns {
        a.extend(["--join-ns".into(), format!("{ns}:{path}").into()]);
    }
    a
}
/// Destinations dumped as external mounts: the spec's bind mounts, and in a user namespace
/// the host devices bind-mounted into /dev (as runc does for its devices).
pub(super) fn external_mounts(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> = plan
        .mounts
        .iter()
        .filter(|m| m.is_bind())
        .map(|m| m.dest.clone())
        .collect();
    if plan.namespaces.has(plan::CLONE_NEWUSER) && !plan.dev_is_bind {
        out.extend(plan.devices.iter().map(|d| d.path.clone()));
    }
    out
}

/// The host source of each external mount, from the (restore) bundle's plan; a relative
/// source is relative to the bundle, as for `create`.
pub(super) fn external_sources(plan: &Plan, bundle: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan
        .mounts
        .iter()
        .filter(|m| m.is_bind())
        .map(|m| {
            let src = m.source.clone().unwrap_or_default();
            let src = if Path::new(&src).is_relative() {
                bundle.join(&src).display().to_string()
            } else {
                src
            };
            (m.dest.clone(), src)
        })
        .collect();
    if plan.namespaces.has(plan::CLONE_NEWUSER) && !plan.dev_is_bind {
        out.extend(
            plan.devices
                .iter()
                .map(|d| (d.path.clone(), d.path.clone())),
        );
    }
    out
}

pub(super) fn read_descriptors(pid: i32) -> Vec<Descriptor> {
    (0..3)
        .filter_map(|fd| {
            let link = fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
            let fdinfo = fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap_or_default();
            let mnt_id = fdinfo
                .lines()
                .find_map(|l| l.strip_prefix("mnt_id:"))
                .and_then(|v| v.trim().parse().ok());
            let inode = fs::metadata(format!("/proc/{pid}/fd/{fd}"))
                .map(|m| m.ino())
                .unwrap_or(0);
            Some(Descriptor {
                fd,
                link: link.to_string_lossy().into_owned(),
                mnt_id,
                inode,
            })
        })
        .collect()
}

pub(super) fn mount_ids(pid: i32) -> Vec<u64> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::CgroupsMode;
    use crate::plan::PlanOptions;
    use crate::spec::Spec;

    fn s(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn host_files_and_pipes_become_criu_keys_once_each() {
        let d = |fd, link: &str, mnt, inode| Descriptor {
            fd,
            link: link.into(),
            mnt_id: Some(mnt),
            inode,
        };
        let got = stdio_entries(
            &[
                d(0, "/dev/null", 23, 4),
                d(1, "pipe:[777]", 14, 777),
                d(2, "pipe:[777]", 14, 777),
                d(3, "/inside", 300, 9),
            ],
            &[300, 301],
        );
        assert_eq!(
            got,
            vec![
                StdioEntry {
                    fd: 0,
                    key: "file[17:4]".into(),
                    external: true
                },
                StdioEntry {
                    fd: 1,
                    key: "pipe:[777]".into(),
                    external: false
                },
            ]
        );
        // A file on one of the container's own mounts is criu's to restore.
        assert!(stdio_entries(&[d(1, "/log", 300, 5)], &[300]).is_empty());
        assert!(stdio_entries(&[d(1, "socket:[5]", 1, 5)], &[]).is_empty());
    }

    #[test]
    fn dump_arguments_follow_runc() {
        let input = DumpInput {
            pid: 42,
            rootfs: "/b/rootfs".into(),
            images: "/img".into(),
            work: Some("/work".into()),
            freezer: Some("/sys/fs/cgroup/berth/x".into()),
            external_mounts: vec!["/data".into()],
            external_ns: vec!["net[4026532000]:extRootNetNS".into()],
            stdio: vec![StdioEntry {
                fd: 0,
                key: "file[17:4]".into(),
                external: true,
            }],
            leave_running: true,
            ..Default::default()
        };
        let flags = CriuFlags {
            tcp_established: true,
            file_locks: true,
            empty_net_ns: true,
            ..Default::default()
        };
        let a = s(&dump_args(&input, &flags)).join(" ");
        assert_eq!(
            a,
            "dump -t 42 -D /img -W /work -o dump.log -v4 --root /b/rootfs \
             --freeze-cgroup /sys/fs/cgroup/berth/x --leave-running --tcp-established \
             --file-locks --manage-cgroups=soft --empty-ns net --external mnt[/data]:/data \
             --external file[17:4] --external net[4026532000]:extRootNetNS"
        );
    }

    #[test]
    fn pre_dump_tracks_memory_and_a_parent_is_relative_to_the_images() {
        let input = DumpInput {
            pid: 7,
            rootfs: "/r".into(),
            images: "/img/2".into(),
            parent: Some("../1".into()),
            external_mounts: vec!["/data".into()],
            leave_running: true,
            pre_dump: true,
            ..Default::default()
        };
        let a = s(&dump_args(&input, &CriuFlags::default()));
        assert_eq!(a[0], "pre-dump");
        assert!(a.contains(&"--track-mem".to_string()));
        let i = a.iter().position(|x| x == "--prev-images-dir").unwrap();
        assert_eq!(a[i + 1], "../1");
        // pre-dump leaves the tasks running on its own and takes no mount map.
        assert!(!a.contains(&"--leave-running".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("mnt[")));
    }

    #[test]
    fn restore_arguments_map_mounts_stdio_and_namespaces() {
        let input = RestoreInput {
            images: "/img".into(),
            root: "/run/berth/x/criu-root".into(),
            cgroup: "/berth/x".into(),
            pid_file: "/run/berth/x/criu.pid".into(),
            external_mounts: vec![("/data".into(), "/srv/data".into())],
            inherit: vec![(0, "file[17:4]".into()), (5, "extRootNetNS".into())],
            join_ns: vec![("uts".into(), "/proc/1/ns/uts".into())],
            ..Default::default()
        };
        let flags = CriuFlags {
            shell_job: true,
            manage_cgroups_mode: CgroupsMode::Full,
            ..Default::default()
        };
        let a = s(&restore_args(&input, &flags)).join(" ");
        assert_eq!(
            a,
            "restore -D /img -o restore.log -v4 --root /run/berth/x/criu-root \
             --restore-detached --restore-sibling --pidfile /run/berth/x/criu.pid \
             --evasive-devices --cgroup-root /berth/x --shell-job --manage-cgroups=full \
             --external mnt[/data]:/srv/data --inherit-fd fd[0]:file[17:4] \
             --inherit-fd fd[5]:extRootNetNS --join-ns uts:/proc/1/ns/uts"
        );
    }

    #[test]
    fn bind_mounts_are_external_and_map_to_their_source() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},
                "mounts":[{"destination":"/data","type":"bind","source":"data","options":["rbind"]},
                          {"destination":"/abs","source":"/srv/abs","options":["bind","ro"]},
                          {"destination":"/tmp","type":"tmpfs","source":"tmpfs"}],
                "linux":{"namespaces":[{"type":"mount"}]}}"#,
        )
        .unwrap();
        let bundle = Path::new("/b");
        let plan = plan::build(
            &spec,
            bundle,
            &PlanOptions {
                no_pivot: false,
                no_new_keyring: false,
                last_cap: 40,
            },
        )
        .unwrap();
        assert_eq!(external_mounts(&plan), vec!["/data", "/abs"]);
        assert_eq!(
            external_sources(&plan, bundle),
            vec![
                ("/data".to_string(), "/b/data".to_string()),
                ("/abs".to_string(), "/srv/abs".to_string())
            ]
        );
    }
}
