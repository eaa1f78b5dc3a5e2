//! The command line, and its translation into [`berth_spec::Options`]. Option values are
//! taken as strings and parsed here, so a malformed value is one line naming the option.

use std::path::PathBuf;

use berth_spec::options::{self, MountOpt, NsMode, SeccompChoice, SecurityOpt};
use berth_spec::seccomp::Profile;
use berth_spec::{Error, Options};
use clap::Parser;

/// Makes an OCI bundle from an unpacked image: DIR/config.json and an overlay of the
/// image's snapshots at DIR/rootfs. Prints the bundle path.
#[derive(Debug, Parser)]
#[command(
    name = "berth-mkbundle",
    version,
    after_help = berth_cli::EXIT_CODES_HELP,
    override_usage = "berth-mkbundle --bundle DIR [--root R] [OPTIONS] IMAGE [-- ARGS...]\n       berth-mkbundle --remove DIR"
)]
pub struct Cli {
    /// The bundle directory to make (must not exist, or be empty).
    #[arg(long, value_name = "DIR", required_unless_present = "remove")]
    pub bundle: Option<PathBuf>,

    /// Unmount and delete the bundle DIR (nothing to do when it is gone).
    #[arg(long, value_name = "DIR", conflicts_with = "bundle")]
    pub remove: Option<PathBuf>,

    /// The berth root holding the content store and snapshots.
    #[arg(
        long,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth",
        value_name = "R"
    )]
    pub root: PathBuf,

    /// Container id: names the cgroup (/berth/ID) and the default hostname [default: the
    /// bundle directory's name].
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Print one JSON object: bundle path, resolved process and mounts.
    #[arg(long)]
    pub json: bool,

    /// The image: a pinned reference, a name in the store, or `-` to read it from stdin.
    #[arg(value_name = "IMAGE", required_unless_present = "remove")]
    pub image: Option<String>,

    /// Arguments that replace the image's Cmd.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,

    /// Replace the image's Entrypoint ("" clears it; the image's Cmd is dropped too).
    #[arg(long, value_name = "CMD", allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to copy it from this environment).
    #[arg(short, long, value_name = "KEY[=VALUE]")]
    pub env: Vec<String>,
    /// Read environment variables from a file (one KEY=VALUE a line, # comments).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container (absolute; made when missing).
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// USER[:GROUP], by name (from the image's /etc/passwd and /etc/group) or number.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Add an additional group (a name from the image's /etc/group, or a gid).
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
    /// Container hostname [default: the id].
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// type=bind,source=S,target=T[,readonly][,bind-propagation=P] or type=tmpfs,target=T[,tmpfs-size=N][,tmpfs-mode=M].
    #[arg(long, value_name = "SPEC")]
    pub mount: Vec<String>,
    /// A tmpfs at PATH (PATH[:size=64m,mode=1777,…]).
    #[arg(long, value_name = "PATH[:OPTS]")]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// Join the network namespace at PATH (e.g. /run/netns/NAME from berth-netns).
    #[arg(long, value_name = "PATH", conflicts_with = "net")]
    pub netns: Option<String>,
    /// Network namespace: private (default, empty), none, host, or ns:PATH.
    #[arg(long, alias = "network", value_name = "MODE")]
    pub net: Option<String>,
    /// PID namespace: private (default), host, or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// IPC namespace: private (default), host, or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// UTS namespace: private (default), host, or ns:PATH.
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
    /// Add a capability (NET_ADMIN, CAP_SYS_PTRACE, ALL).
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    pub cap_add: Vec<String>,
    /// Drop a capability (or ALL).
    #[arg(long, value_name = "CAP", value_delimiter = ',')]
    pub cap_drop: Vec<String>,
    /// Every capability, no seccomp, no masked paths, all devices allowed, /sys writable.
    #[arg(long)]
    pub privileged: bool,
    /// Memory limit (512m, 1g; at least 6m).
    #[arg(short, long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap limit, or -1 for unlimited swap [default: twice --memory].
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// CPU limit (1.5 = one and a half CPUs).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight, 2 to 262144).
    #[arg(short = 'c', long, value_name = "N")]
    pub cpu_shares: Option<String>,
    /// CPUs the container may run on (0-3,5).
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (0 or -1: unlimited).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub pids_limit: Option<String>,
    /// Size of /dev/shm [default: 64m].
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// A namespaced sysctl (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*).
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// A resource limit: NAME=SOFT[:HARD] (nofile=1024:2048, core=unlimited).
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// seccomp=unconfined, seccomp=PROFILE.json, or no-new-privileges.
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// An annotation in config.json (KEY=VALUE; overrides image labels).
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Parent cgroup (absolute, or relative to /berth).
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// User namespace: host (default), CONTAINER:HOST:SIZE[,…] for uids and gids, or
    /// uid=MAPS;gid=MAPS.
    #[arg(long, value_name = "MAPS")]
    pub userns: Option<String>,
    /// Keep the rootfs' writable layer durable: fsync in the container reaches the disk, and
    /// --remove syncs the disk. Without it the overlay is volatile (see docs/bundles.md).
    #[arg(long)]
    pub durable: bool,

    /// Log filter (error, warn, info, debug; RUST_LOG wins).
    #[arg(long, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,
    /// Log format on stderr: text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub log_format: berth_cli::LogFormat,
}

fn parsed<T>(option: &'static str, value: &str, r: Result<T, String>) -> Result<T, Error> {
    r.map_err(|reason| Error::InvalidOption {
        option,
        value: value.to_string(),
        reason,
    })
}

fn each<T>(
    option: &'static str,
    values: &[String],
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, Error> {
    values.iter().map(|v| parsed(option, v, f(v))).collect()
}

fn opt<T>(
    option: &'static str,
    value: &Option<String>,
    f: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    value.as_ref().map(|s| parsed(option, s, f(s))).transpose()
}

fn ns(option: &'static str, value: &Option<String>) -> Result<NsMode, Error> {
    match value {
        None => Ok(NsMode::Private),
        Some(v) => parsed(option, v, v.parse()),
    }
}

impl Cli {
    /// The options for the container named `id`.
    pub fn options(&self, id: String) -> Result<Options, Error> {
        let host_env = |k: &str| std::env::var(k).ok();
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file).map_err(|e| Error::InvalidOption {
                option: "--env-file",
                value: file.display().to_string(),
                reason: e.to_string(),
            })?;
            env.extend(parsed(
                "--env-file",
                &file.display().to_string(),
                options::parse_env_file(&text, host_env),
            )?);
        }
        for e in &self.env {
            env.extend(parsed("--env", e, options::parse_env(e, host_env))?);
        }

        let mut mounts = each("--mount", &self.mount, |m| m.parse::<MountOpt>())?;
        mounts.extend(each("--tmpfs", &self.tmpfs, MountOpt::parse_tmpfs)?);

        let (mut seccomp, mut no_new_privileges) = (SeccompChoice::Default, false);
        for opt in each("--security-opt", &self.security_opt, |s| {
            s.parse::<SecurityOpt>()
        })? {
            match opt {
                SecurityOpt::SeccompUnconfined => seccomp = SeccompChoice::Unconfined,
                SecurityOpt::SeccompProfile(path) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(|source| Error::SeccompRead {
                            path: path.clone(),
                            source,
                        })?;
                    let profile = Profile::parse(&text)
                        .map_err(|source| Error::SeccompParse { path, source })?;
                    seccomp = SeccompChoice::Profile(Box::new(profile));
                }
                SecurityOpt::NoNewPrivileges(b) => no_new_privileges = b,
            }
        }

        let net = match (&self.netns, &self.net) {
            (Some(path), _) => parsed(
                "--netns",
                path,
                if path.starts_with('/') {
                    Ok(NsMode::Path(path.clone()))
                } else {
                    Err("must be an absolute path".into())
                },
            )?,
            (None, net) => ns("--net", net)?,
        };
        let int = |option: &'static str, v: &Option<String>| -> Result<Option<i64>, Error> {
            v.as_ref()
                .map(|s| {
                    parsed(
                        option,
                        s,
                        s.trim()
                            .parse::<i64>()
                            .map_err(|_| "not a whole number".to_string()),
                    )
                })
                .transpose()
        };
        let cpu_shares = int("--cpu-shares", &self.cpu_shares)?
            .map(|n| {
                u64::try_from(n).map_err(|_| Error::InvalidOption {
                    option: "--cpu-shares",
                    value: n.to_string(),
                    reason: "must not be negative".into(),
                })
            })
            .transpose()?;

        Ok(Options {
            id,
            args: (!self.args.is_empty()).then(|| self.args.clone()),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    Vec::new()
                } else {
                    vec![e.clone()]
                }
            }),
            env,
            workdir: self.workdir.clone(),
            user: self.user.clone(),
            group_add: self.group_add.clone(),
            hostname: opt("--hostname", &self.hostname, options::parse_hostname)?,
            mounts,
            read_only: self.read_only,
            net,
            pid: ns("--pid", &self.pid)?,
            ipc: ns("--ipc", &self.ipc)?,
            uts: ns("--uts", &self.uts)?,
            cap_add: each("--cap-add", &self.cap_add, |c| c.parse())?,
            cap_drop: each("--cap-drop", &self.cap_drop, |c| c.parse())?,
            privileged: self.privileged,
            memory: opt("--memory", &self.memory, options::parse_size)?,
            memory_swap: opt("--memory-swap", &self.memory_swap, options::parse_swap)?,
            cpus: opt("--cpus", &self.cpus, |s| s.parse::<options::Cpus>())?,
            cpu_shares,
            cpuset_cpus: opt("--cpuset-cpus", &self.cpuset_cpus, options::parse_cpuset)?,
            pids_limit: int("--pids-limit", &self.pids_limit)?,
            shm_size: opt("--shm-size", &self.shm_size, options::parse_size)?,
            sysctls: each("--sysctl", &self.sysctl, |s| s.parse())?,
            ulimits: each("--ulimit", &self.ulimit, |s| s.parse())?,
            seccomp,
            no_new_privileges,
            annotations: each("--annotation", &self.annotation, |s| s.parse())?,
            tty: self.tty,
            cgroup_parent: self.cgroup_parent.clone(),
            userns: opt("--userns", &self.userns, options::parse_userns)?.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth-mkbundle").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn options_parse_from_docker_spellings() {
        let c = cli(&[
            "--bundle",
            "/b",
            "-e",
            "A=1",
            "--memory",
            "64m",
            "--cap-add",
            "net_admin,sys_ptrace",
            "--pids-limit",
            "-1",
            "--netns",
            "/run/netns/x",
            "--security-opt",
            "no-new-privileges",
            "img",
            "--",
            "echo",
            "hi",
        ]);
        let o = c.options("b".into()).unwrap();
        assert_eq!(o.env, ["A=1"]);
        assert_eq!(o.memory, Some(64 << 20));
        assert_eq!(o.cap_add.len(), 2);
        assert_eq!(o.pids_limit, Some(-1));
        assert_eq!(o.net, NsMode::Path("/run/netns/x".into()));
        assert!(o.no_new_privileges);
        assert_eq!(
            o.args.as_deref(),
            Some(&["echo".to_string(), "hi".to_string()][..])
        );
    }

    #[test]
    fn malformed_values_name_the_option() {
        let e = cli(&["--bundle", "/b", "--memory", "lots", "img"])
            .options("b".into())
            .unwrap_err();
        assert!(
            e.to_string().starts_with("invalid --memory \"lots\""),
            "{e}"
        );
        let e = cli(&["--bundle", "/b", "--cap-add", "FLY", "img"])
            .options("b".into())
            .unwrap_err();
        assert!(e.to_string().contains("--cap-add"), "{e}");
        let e = cli(&[
            "--bundle",
            "/b",
            "--security-opt",
            "seccomp=/nonexistent.json",
            "img",
        ])
        .options("b".into())
        .unwrap_err();
        assert!(matches!(e, Error::SeccompRead { .. }));
    }
}
