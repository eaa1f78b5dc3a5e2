//! Options + image config + the image's users → a plan of plain data: the runtime spec, and
//! what must be made or checked on disk (directories in the rootfs, bind sources). No I/O
//! here; [`crate::bundle`] carries the plan out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::caps;
use crate::defaults::{self, MountChoices};
use crate::error::Error;
use crate::image::{ImageConfig, STOP_SIGNAL_ANNOTATION};
use crate::options::{MountOpt, NsMode, Options, SeccompChoice};
use crate::process::process;
use crate::resources::{resources, sysctls};
use crate::runtime::{Linux, Mount, Namespace, Root, Spec, OCI_VERSION};
use crate::seccomp::{Arch, Profile, Target};
use crate::user::{self, GroupEntry, PasswdEntry, ResolvedUser};

/// Facts about the host that change the spec.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub arch: Arch,
    pub kernel: (u32, u32),
    /// The memory cgroup accounts swap (`memory.memsw.*` on v1, `memory.swap.max` on v2).
    pub swap_accounting: bool,
    /// The capabilities the caller has (bit N = capability N): what "all" means for
    /// `--privileged` and `--cap-add ALL`.
    pub caps: u64,
}

/// The image's user database, read from its rootfs.
#[derive(Debug, Clone, Default)]
pub struct Users {
    pub passwd: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

/// A directory to create inside the rootfs (a Volume, the working directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsDir {
    /// Absolute path inside the container.
    pub path: String,
    pub uid: u32,
    pub gid: u32,
}

/// Everything the bundle executor does.
#[derive(Debug, Clone)]
pub struct Plan {
    pub spec: Spec,
    pub user: ResolvedUser,
    pub dirs: Vec<RootfsDir>,
    /// Host paths that must exist before the container starts.
    pub bind_sources: Vec<PathBuf>,
}

/// The default cgroup parent.
pub const CGROUP_PARENT: &str = "/berth";

/// Builds the plan for one container.
pub fn plan(
    image: &ImageConfig,
    opts: &Options,
    users: &Users,
    host: &Host,
) -> Result<Plan, Error> {
    check_id(&opts.id)?;
    let user_spec = opts.user.as_deref().unwrap_or(&image.user);
    let mut user = user::resolve(user_spec, &users.passwd, &users.groups)?;
    user::add_groups(&mut user, &opts.group_add, &users.groups)?;
    let caps = caps::compute(opts.privileged, &opts.cap_add, &opts.cap_drop, host.caps);

    let process = process(image, opts, &user, &caps)?;
    let hostname = hostname(opts)?;
    let mounts = mounts(opts)?;
    let namespaces = namespaces(opts);
    let seccomp = match (&opts.seccomp, opts.privileged) {
        (SeccompChoice::Unconfined, _) | (SeccompChoice::Default, true) => None,
        (SeccompChoice::Default, false) => Some(Profile::default_profile()),
        (SeccompChoice::Profile(p), _) => Some((**p).clone()),
    }
    .map(|p| {
        p.resolve(&Target {
            arch: host.arch,
            caps: &caps,
            kernel: host.kernel,
        })
    });

    let (masked_paths, readonly_paths) = if opts.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            strings(&defaults::MASKED_PATHS),
            strings(&defaults::READONLY_PATHS),
        )
    };
    let linux = Linux {
        uid_mappings: opts
            .userns
            .as_ref()
            .map(|u| u.uid_map.clone())
            .unwrap_or_default(),
        gid_mappings: opts
            .userns
            .as_ref()
            .map(|u| u.gid_map.clone())
            .unwrap_or_default(),
        sysctl: sysctls(opts)?,
        resources: resources(opts, host)?,
        cgroups_path: cgroups_path(opts)?,
        namespaces,
        // Host devices for --privileged are found on disk by the executor.
        devices: Vec::new(),
        seccomp,
        masked_paths,
        readonly_paths,
    };

    let mut annotations: BTreeMap<String, String> = image.labels.clone();
    if let Some(sig) = &image.stop_signal {
        annotations.insert(STOP_SIGNAL_ANNOTATION.into(), sig.clone());
    }
    for a in &opts.annotations {
        annotations.insert(a.key.clone(), a.value.clone());
    }

    let mut dirs: Vec<RootfsDir> = Vec::new();
    for v in &image.volumes {
        let path = clean_abs(v);
        if path != "/" && !dirs.iter().any(|d| d.path == path) {
            dirs.push(RootfsDir {
                path,
                uid: 0,
                gid: 0,
            });
        }
    }
    if process.cwd != "/" && !dirs.iter().any(|d| d.path == process.cwd) {
        dirs.push(RootfsDir {
            path: process.cwd.clone(),
            uid: user.uid,
            gid: user.gid,
        });
    }
    let bind_sources = opts
        .mounts
        .iter()
        .filter_map(|m| match m {
            MountOpt::Bind { source, .. } => Some(source.clone()),
            MountOpt::Tmpfs { .. } => None,
        })
        .collect();

    let spec = Spec {
        oci_version: OCI_VERSION.into(),
        process,
        root: Root {
            path: "rootfs".into(),
            readonly: opts.read_only,
        },
        hostname,
        mounts,
        annotations,
        linux,
    };
    Ok(Plan {
        spec,
        user,
        dirs,
        bind_sources,
    })
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn check_id(id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "container id",
            id,
            "must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.'",
        ))
    }
}

/// `a//b/./c/` → `/a/b/c`; relative paths are taken from `/`.
pub(crate) fn clean_abs(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let mut out: Vec<&str> = Vec::new();
    for p in parts {
        if p == ".." {
            out.pop();
        } else {
            out.push(p);
        }
    }
    format!("/{}", out.join("/"))
}

fn hostname(opts: &Options) -> Result<Option<String>, Error> {
    match (&opts.uts, &opts.hostname) {
        (NsMode::Private, Some(h)) => Ok(Some(h.clone())),
        (NsMode::Private, None) => {
            let mut h: String = opts
                .id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect();
            h.truncate(63);
            Ok(Some(if h.is_empty() { "berth".into() } else { h }))
        }
        (_, Some(h)) => Err(Error::invalid(
            "--hostname",
            h,
            "cannot be set without a new UTS namespace (--uts)",
        )),
        (_, None) => Ok(None),
    }
}

fn mounts(opts: &Options) -> Result<Vec<Mount>, Error> {
    let new_userns = opts.userns.is_some();
    let choices = MountChoices {
        privileged: opts.privileged,
        shm_size: opts.shm_size.unwrap_or(defaults::SHM_SIZE),
        host_ipc: opts.ipc == NsMode::Host,
        sys_bind: new_userns && opts.net != NsMode::Private,
    };
    if opts.shm_size.is_some() && choices.host_ipc {
        return Err(Error::invalid(
            "--shm-size",
            &opts.shm_size.unwrap_or(0).to_string(),
            "has no effect with --ipc host",
        ));
    }
    let mut out = defaults::mounts(choices);

    let mut user: Vec<&MountOpt> = opts.mounts.iter().collect();
    for (i, m) in user.iter().enumerate() {
        if user[..i]
            .iter()
            .any(|o| clean_abs(o.target()) == clean_abs(m.target()))
        {
            return Err(Error::invalid(
                "--mount",
                m.target(),
                "two mounts have this target",
            ));
        }
    }
    // Parents before children, so that /a/b is mounted on top of /a.
    user.sort_by_key(|m| clean_abs(m.target()).matches('/').count());
    for m in user {
        let destination = clean_abs(m.target());
        out.retain(|d| d.destination != destination);
        out.push(match m {
            MountOpt::Bind {
                source,
                readonly,
                propagation,
                ..
            } => {
                let mut options = vec![
                    "rbind".to_string(),
                    if *readonly { "ro" } else { "rw" }.to_string(),
                ];
                options.push(propagation.clone().unwrap_or_else(|| "rprivate".into()));
                Mount {
                    destination,
                    kind: "bind".into(),
                    source: source.display().to_string(),
                    options,
                }
            }
            MountOpt::Tmpfs { options, .. } => {
                let mut o = vec!["nosuid".to_string(), "nodev".to_string()];
                o.extend(options.iter().cloned());
                Mount {
                    destination,
                    kind: "tmpfs".into(),
                    source: "tmpfs".into(),
                    options: o,
                }
            }
        });
    }
    Ok(out)
}

fn namespaces(opts: &Options) -> Vec<Namespace> {
    let mut out = Vec::new();
    let mut add = |kind: &str, mode: &NsMode| match mode {
        NsMode::Host => {}
        NsMode::Private => out.push(Namespace {
            kind: kind.into(),
            path: None,
        }),
        NsMode::Path(p) => out.push(Namespace {
            kind: kind.into(),
            path: Some(p.clone()),
        }),
    };
    add("pid", &opts.pid);
    add("ipc", &opts.ipc);
    add("uts", &opts.uts);
    add("mount", &NsMode::Private);
    add("network", &opts.net);
    if opts.userns.is_some() {
        add("user", &NsMode::Private);
    }
    out
}

/// Only namespaced sysctls, and only for namespaces the container owns (docker's rule).
fn cgroups_path(opts: &Options) -> Result<String, Error> {
    let parent = match &opts.cgroup_parent {
        None => CGROUP_PARENT.to_string(),
        Some(p) if p.split('/').any(|c| c == "..") => {
            return Err(Error::invalid("--cgroup-parent", p, "must not contain .."));
        }
        Some(p) if p.starts_with('/') => clean_abs(p),
        Some(p) => clean_abs(&format!("{CGROUP_PARENT}/{p}")),
    };
    Ok(clean_abs(&format!("{parent}/{}", opts.id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Cpus, KeyValue, Ulimit, UserNs};
    use crate::runtime::{IdMapping, Memory, Pids};

    const X86: Host = Host {
        arch: Arch {
            go: "amd64",
            scmp: "SCMP_ARCH_X86_64",
        },
        kernel: (6, 18),
        swap_accounting: true,
        caps: u64::MAX,
    };

    fn busybox() -> ImageConfig {
        ImageConfig {
            cmd: vec!["sh".into()],
            env: vec!["PATH=/bin:/usr/bin".into(), "LANG=C".into()],
            volumes: vec!["/data".into(), "/var//cache/".into()],
            labels: BTreeMap::from([("org.example.team".to_string(), "infra".to_string())]),
            stop_signal: Some("SIGQUIT".into()),
            ..ImageConfig::default()
        }
    }

    fn users() -> Users {
        Users {
            passwd: user::parse_passwd(
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            ),
            groups: user::parse_group("root:x:0:\napp:x:1000:\nstaff:x:50:app\n"),
        }
    }

    fn opts() -> Options {
        Options {
            id: "c1".into(),
            ..Options::default()
        }
    }

    fn go(o: &Options) -> Plan {
        plan(&busybox(), o, &users(), &X86).unwrap()
    }

    fn err(o: &Options) -> Error {
        plan(&busybox(), o, &users(), &X86).unwrap_err()
    }

    #[test]
    fn defaults_match_containerd() {
        let p = go(&opts());
        let s = &p.spec;
        assert_eq!(s.process.args, ["sh"]);
        assert_eq!(s.process.cwd, "/");
        assert_eq!((s.process.user.uid, s.process.user.gid), (0, 0));
        assert_eq!(s.process.capabilities.bounding.len(), 14);
        assert_eq!(
            s.process.capabilities.effective,
            s.process.capabilities.bounding
        );
        assert_eq!(s.process.rlimits, defaults::rlimits());
        assert!(!s.process.no_new_privileges);
        let ns: Vec<&str> = s.linux.namespaces.iter().map(|n| n.kind.as_str()).collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
        assert_eq!(s.linux.cgroups_path, "/berth/c1");
        assert_eq!(s.hostname.as_deref(), Some("c1"));
        assert_eq!(s.linux.masked_paths.len(), 11);
        assert_eq!(s.linux.readonly_paths.len(), 5);
        assert!(s.linux.seccomp.is_some());
        assert!(!s.linux.resources.devices[0].allow);
        assert!(!s.root.readonly);
        assert_eq!(s.annotations["org.example.team"], "infra");
        assert_eq!(s.annotations[STOP_SIGNAL_ANNOTATION], "SIGQUIT");
        let dirs: Vec<&str> = p.dirs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(dirs, ["/data", "/var/cache"]);
    }

    #[test]
    fn env_keeps_image_path_and_lets_options_override() {
        let mut o = opts();
        o.env = vec!["LANG=en_US.UTF-8".into(), "EXTRA=1".into()];
        o.tty = true;
        let env = go(&o).spec.process.env;
        assert_eq!(
            env,
            [
                "PATH=/bin:/usr/bin",
                "LANG=en_US.UTF-8",
                "EXTRA=1",
                "HOME=/root",
                "TERM=xterm"
            ]
        );
        let mut img = busybox();
        img.env.clear();
        let env = plan(&img, &opts(), &users(), &X86)
            .unwrap()
            .spec
            .process
            .env;
        assert_eq!(env[0], defaults::PATH);
    }

    #[test]
    fn args_entrypoint_and_cmd_follow_docker() {
        let mut img = busybox();
        img.entrypoint = vec!["/entry".into()];
        img.cmd = vec!["serve".into()];
        let run = |o: &Options| plan(&img, o, &users(), &X86).map(|p| p.spec.process.args);
        assert_eq!(run(&opts()).unwrap(), ["/entry", "serve"]);
        let mut o = opts();
        o.args = Some(vec!["echo".into(), "hi".into()]);
        assert_eq!(run(&o).unwrap(), ["/entry", "echo", "hi"]);
        o.entrypoint = Some(vec![]);
        assert_eq!(run(&o).unwrap(), ["echo", "hi"]);
        o.args = None;
        o.entrypoint = Some(vec!["/bin/true".into()]);
        assert_eq!(run(&o).unwrap(), ["/bin/true"]);
        o.entrypoint = Some(vec![]);
        assert!(matches!(run(&o), Err(Error::NoCommand)));
    }

    #[test]
    fn users_resolve_from_the_image_and_non_root_loses_effective_caps() {
        let mut o = opts();
        o.user = Some("app".into());
        o.workdir = Some("/home/app/work".into());
        let p = go(&o);
        let u = &p.spec.process.user;
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![50])
        );
        assert!(p.spec.process.capabilities.effective.is_empty());
        assert_eq!(p.spec.process.capabilities.bounding.len(), 14);
        assert!(p.spec.process.env.contains(&"HOME=/home/app".to_string()));
        assert_eq!(
            p.dirs.last().unwrap(),
            &RootfsDir {
                path: "/home/app/work".into(),
                uid: 1000,
                gid: 1000
            }
        );
        o.user = Some("ghost".into());
        assert!(matches!(err(&o), Error::UnknownUser { .. }));
        o.user = None;
        o.workdir = Some("rel".into());
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--workdir",
                ..
            }
        ));
    }

    #[test]
    fn host_namespaces_drop_entries_and_paths_join() {
        let mut o = opts();
        o.net = NsMode::Host;
        o.pid = NsMode::Host;
        o.ipc = NsMode::Path("/proc/1/ns/ipc".into());
        o.uts = NsMode::Host;
        let s = go(&o).spec;
        assert_eq!(
            s.linux.namespaces,
            [
                Namespace {
                    kind: "ipc".into(),
                    path: Some("/proc/1/ns/ipc".into())
                },
                Namespace {
                    kind: "mount".into(),
                    path: None
                }
            ]
        );
        assert_eq!(s.hostname, None);
        o.hostname = Some("h".into());
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--hostname",
                ..
            }
        ));
    }

    #[test]
    fn capabilities_drive_the_seccomp_profile() {
        let mut o = opts();
        o.cap_add = vec!["SYS_ADMIN".parse().unwrap()];
        let s = go(&o).spec;
        let sc = s.linux.seccomp.unwrap();
        assert!(sc
            .syscalls
            .iter()
            .any(|c| c.names.contains(&"mount".to_string())));
        o.privileged = true;
        let s = go(&o).spec;
        assert!(s.linux.seccomp.is_none());
        assert!(s.linux.masked_paths.is_empty());
        assert!(s.linux.resources.devices[0].allow);
        assert_eq!(s.process.capabilities.bounding.len(), caps::ALL.len());
        o.privileged = false;
        o.seccomp = SeccompChoice::Unconfined;
        assert!(go(&o).spec.linux.seccomp.is_none());
    }

    #[test]
    fn resources_map_to_cgroup_settings() {
        let mut o = opts();
        o.memory = Some(64 << 20);
        o.cpus = Some(Cpus {
            quota: 50_000,
            period: 100_000,
        });
        o.cpu_shares = Some(512);
        o.cpuset_cpus = Some("0".into());
        o.pids_limit = Some(0);
        let r = go(&o).spec.linux.resources;
        assert_eq!(
            r.memory,
            Some(Memory {
                limit: Some(64 << 20),
                swap: Some(128 << 20)
            })
        );
        assert_eq!(r.cpu.as_ref().unwrap().quota, Some(50_000));
        assert_eq!(r.cpu.as_ref().unwrap().cpus.as_deref(), Some("0"));
        assert_eq!(r.pids, Some(Pids { limit: -1 }));
        o.memory_swap = Some(-1);
        assert_eq!(go(&o).spec.linux.resources.memory.unwrap().swap, Some(-1));
        o.memory_swap = Some(1 << 20);
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--memory-swap",
                ..
            }
        ));
        let no_swap = Host {
            swap_accounting: false,
            ..X86
        };
        o.memory_swap = None;
        let p = plan(&busybox(), &o, &users(), &no_swap).unwrap();
        assert_eq!(p.spec.linux.resources.memory.unwrap().swap, None);
        o.memory_swap = Some(-1);
        assert!(matches!(
            plan(&busybox(), &o, &users(), &no_swap),
            Err(Error::Unsupported { .. })
        ));
        o.memory = Some(1024);
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--memory",
                ..
            }
        ));
    }

    #[test]
    fn user_mounts_replace_defaults_and_sort_by_depth() {
        let mut o = opts();
        o.mounts = vec![
            "type=bind,source=/srv/a,target=/data/sub,readonly"
                .parse()
                .unwrap(),
            "type=bind,source=/srv,target=/data".parse().unwrap(),
            MountOpt::parse_tmpfs("/dev/shm:size=1m").unwrap(),
        ];
        o.read_only = true;
        let p = go(&o);
        let m = &p.spec.mounts;
        let data = m.iter().position(|m| m.destination == "/data").unwrap();
        let sub = m.iter().position(|m| m.destination == "/data/sub").unwrap();
        assert!(data < sub);
        assert_eq!(m[sub].options, ["rbind", "ro", "rprivate"]);
        let shm: Vec<&Mount> = m.iter().filter(|m| m.destination == "/dev/shm").collect();
        assert_eq!(shm.len(), 1);
        assert!(shm[0].options.contains(&"size=1048576".to_string()));
        assert_eq!(
            p.bind_sources,
            [PathBuf::from("/srv/a"), PathBuf::from("/srv")]
        );
        assert!(p.spec.root.readonly);
        o.mounts.push("type=tmpfs,target=/data/".parse().unwrap());
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--mount",
                ..
            }
        ));
    }

    #[test]
    fn sysctls_must_be_namespaced_and_owned() {
        let mut o = opts();
        o.sysctls = vec![KeyValue {
            key: "net.ipv4.ip_forward".into(),
            value: "1".into(),
        }];
        assert_eq!(go(&o).spec.linux.sysctl["net.ipv4.ip_forward"], "1");
        o.net = NsMode::Host;
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--sysctl",
                ..
            }
        ));
        o.net = NsMode::Private;
        o.sysctls = vec![KeyValue {
            key: "vm.swappiness".into(),
            value: "1".into(),
        }];
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--sysctl",
                ..
            }
        ));
    }

    #[test]
    fn cgroup_parent_ulimits_userns_and_annotations() {
        let mut o = opts();
        o.cgroup_parent = Some("team".into());
        assert_eq!(go(&o).spec.linux.cgroups_path, "/berth/team/c1");
        o.cgroup_parent = Some("/custom/".into());
        assert_eq!(go(&o).spec.linux.cgroups_path, "/custom/c1");
        o.cgroup_parent = Some("../escape".into());
        assert!(matches!(
            err(&o),
            Error::InvalidOption {
                option: "--cgroup-parent",
                ..
            }
        ));
        o.cgroup_parent = None;
        o.ulimits = vec![
            "nofile=10:20".parse::<Ulimit>().unwrap(),
            "nproc=5".parse().unwrap(),
        ];
        let r = go(&o).spec.process.rlimits;
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].kind.as_str(), r[0].soft, r[0].hard),
            ("RLIMIT_NOFILE", 10, 20)
        );
        let map = vec![IdMapping {
            container_id: 0,
            host_id: 100_000,
            size: 65536,
        }];
        o.userns = Some(UserNs {
            uid_map: map.clone(),
            gid_map: map,
        });
        o.net = NsMode::Host;
        let s = go(&o).spec;
        assert!(s.linux.namespaces.iter().any(|n| n.kind == "user"));
        assert_eq!(s.linux.uid_mappings[0].host_id, 100_000);
        assert_eq!(
            s.mounts
                .iter()
                .find(|m| m.destination == "/sys")
                .unwrap()
                .kind,
            "bind"
        );
        o.annotations = vec![KeyValue {
            key: "org.example.team".into(),
            value: "mine".into(),
        }];
        assert_eq!(go(&o).spec.annotations["org.example.team"], "mine");
        for bad in ["../x", ".hidden", "", "a/b"] {
            o.id = bad.into();
            assert!(
                matches!(
                    err(&o),
                    Error::InvalidOption {
                        option: "container id",
                        ..
                    }
                ),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn spec_serialises_with_oci_field_names() {
        let s = go(&opts()).spec;
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ociVersion"], OCI_VERSION);
        assert_eq!(v["linux"]["cgroupsPath"], "/berth/c1");
        assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(v["linux"]["maskedPaths"].is_array());
        assert!(v["process"].get("oomScoreAdj").is_none());
        let back: Spec = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
