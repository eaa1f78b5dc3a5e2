//! The user's options for a container, as plain data, and parsers for the docker/podman
//! spellings of their values (`--memory 512m`, `--mount type=bind,…`, `--ulimit nofile=…`).
//! Each parser returns a message naming what is wrong; the binary adds the option's name.

use std::path::PathBuf;
use std::str::FromStr;

use crate::caps::CapName;
use crate::runtime::IdMapping;
use crate::seccomp::Profile;

/// Everything the user can ask for. `Default` is a container with containerd's defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Names the container's cgroup (`/berth/<id>`) and is its default hostname.
    pub id: String,
    /// Replaces the image's Cmd (arguments after `--`).
    pub args: Option<Vec<String>>,
    /// Replaces the image's Entrypoint; `Some(vec![])` clears it. Also clears the image's Cmd.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` entries added to (and overriding) the image's Env, in order.
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    /// `--group-add`: more additional groups (names from the image's `/etc/group`, or gids).
    pub group_add: Vec<String>,
    pub hostname: Option<String>,
    pub mounts: Vec<MountOpt>,
    pub read_only: bool,
    pub net: NsMode,
    pub pid: NsMode,
    pub ipc: NsMode,
    pub uts: NsMode,
    pub cap_add: Vec<CapName>,
    pub cap_drop: Vec<CapName>,
    pub privileged: bool,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// Memory plus swap in bytes; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// CPU limit, as a CFS quota and period.
    pub cpus: Option<Cpus>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
    /// Maximum number of pids; 0 or -1 for unlimited.
    pub pids_limit: Option<i64>,
    /// Size of `/dev/shm` in bytes (default 64 MiB).
    pub shm_size: Option<u64>,
    pub sysctls: Vec<KeyValue>,
    pub ulimits: Vec<Ulimit>,
    pub seccomp: SeccompChoice,
    pub no_new_privileges: bool,
    pub annotations: Vec<KeyValue>,
    pub tty: bool,
    /// Parent cgroup; relative parents are placed under `/berth`.
    pub cgroup_parent: Option<String>,
    pub userns: Option<UserNs>,
}

/// Where a namespace comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NsMode {
    /// A new namespace (the default).
    #[default]
    Private,
    /// The host's namespace: no entry in the spec.
    Host,
    /// Join the namespace at this path (`/run/netns/x`, `/proc/PID/ns/net`).
    Path(String),
}

impl FromStr for NsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host" => Ok(NsMode::Host),
            "private" | "none" | "" => Ok(NsMode::Private),
            _ => {
                let path = s.strip_prefix("ns:").unwrap_or(s);
                if path.starts_with('/') {
                    Ok(NsMode::Path(path.to_string()))
                } else {
                    Err("expected host, private, none, ns:PATH or an absolute path".into())
                }
            }
        }
    }
}

/// `--mount` and `--tmpfs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOpt {
    Bind {
        source: PathBuf,
        target: String,
        readonly: bool,
        propagation: Option<String>,
    },
    Tmpfs {
        target: String,
        options: Vec<String>,
    },
}

impl MountOpt {
    pub fn target(&self) -> &str {
        match self {
            MountOpt::Bind { target, .. } | MountOpt::Tmpfs { target, .. } => target,
        }
    }

    /// Parses `--tmpfs PATH[:OPTIONS]` (OPTIONS as for mount(8): `size=64m,mode=1777,noexec`).
    pub fn parse_tmpfs(s: &str) -> Result<MountOpt, String> {
        let (target, opts) = s.split_once(':').unwrap_or((s, ""));
        check_target(target)?;
        let mut options = Vec::new();
        for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            if let Some(size) = o.strip_prefix("size=") {
                options.push(format!("size={}", parse_size(size)?));
            } else {
                options.push(o.to_string());
            }
        }
        Ok(MountOpt::Tmpfs {
            target: target.to_string(),
            options,
        })
    }
}

impl FromStr for MountOpt {
    type Err = String;
    /// Parses `--mount type=bind,source=/a,target=/b[,readonly][,bind-propagation=P]` or
    /// `type=tmpfs,target=/t[,tmpfs-size=64m][,tmpfs-mode=1770][,readonly]`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (mut kind, mut source, mut target) = (None, None, None);
        let (mut readonly, mut propagation, mut size, mut mode) = (false, None, None, None);
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (field, None),
            };
            let need = || value.ok_or_else(|| format!("{key} needs a value"));
            match key {
                "type" => kind = Some(need()?),
                "source" | "src" => source = Some(need()?),
                "target" | "destination" | "dst" => target = Some(need()?),
                "readonly" | "ro" => readonly = parse_bool(value.unwrap_or("true"))?,
                "bind-propagation" => {
                    let p = need()?;
                    const OK: [&str; 6] = [
                        "private", "rprivate", "shared", "rshared", "slave", "rslave",
                    ];
                    if !OK.contains(&p) {
                        return Err(format!(
                            "bind-propagation {p:?} is not one of {}",
                            OK.join(", ")
                        ));
                    }
                    propagation = Some(p.to_string());
                }
                "tmpfs-size" => size = Some(parse_size(need()?)?),
                "tmpfs-mode" => {
                    let m = need()?;
                    mode = Some(
                        u32::from_str_radix(m, 8)
                            .map_err(|_| format!("tmpfs-mode {m:?} is not octal"))?,
                    );
                }
                _ => return Err(format!("unknown mount field {key:?}")),
            }
        }
        let target = target.ok_or("target is required")?;
        check_target(target)?;
        match kind.unwrap_or("volume") {
            "bind" => {
                let source = source.ok_or("source is required for a bind mount")?;
                if !source.starts_with('/') {
                    return Err(format!("bind source {source:?} must be an absolute path"));
                }
                if size.is_some() || mode.is_some() {
                    return Err("tmpfs-size and tmpfs-mode only apply to type=tmpfs".into());
                }
                Ok(MountOpt::Bind {
                    source: source.into(),
                    target: target.into(),
                    readonly,
                    propagation,
                })
            }
            "tmpfs" => {
                if source.is_some() || propagation.is_some() {
                    return Err("a tmpfs mount takes no source or bind-propagation".into());
                }
                let mut options = Vec::new();
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                if let Some(mode) = mode {
                    options.push(format!("mode={mode:o}"));
                }
                if readonly {
                    options.push("ro".into());
                }
                Ok(MountOpt::Tmpfs {
                    target: target.into(),
                    options,
                })
            }
            other => Err(format!(
                "mount type {other:?} is not supported (bind or tmpfs)"
            )),
        }
    }
}

fn check_target(target: &str) -> Result<(), String> {
    if !target.starts_with('/') {
        return Err(format!("target {target:?} must be an absolute path"));
    }
    if target.split('/').any(|c| c == "..") {
        return Err(format!("target {target:?} must not contain .."));
    }
    Ok(())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(format!("{s:?} is not true or false")),
    }
}

/// A size with docker's units: `512`, `64k`, `512m`, `1.5g`, `2GiB` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(format!("{s:?} is not a size (like 512m or 2g)")),
    };
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (like 512m or 2g)"))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(bytes as u64)
}

/// `--memory-swap`: a size, or -1 for unlimited.
pub fn parse_swap(s: &str) -> Result<i64, String> {
    if s.trim() == "-1" {
        return Ok(-1);
    }
    i64::try_from(parse_size(s)?).map_err(|_| format!("{s:?} is too large"))
}

/// `--cpus 1.5`: a CFS quota over a 100 ms period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpus {
    pub quota: i64,
    pub period: u64,
}

impl FromStr for Cpus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let cpus: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number of CPUs"))?;
        if !(cpus > 0.0 && cpus <= 1024.0) {
            return Err(format!("{s:?} must be above 0 and at most 1024"));
        }
        let period = 100_000u64;
        let quota = (cpus * period as f64).round() as i64;
        if quota < 1000 {
            return Err(format!("{s:?} is below the 0.01 CPU minimum"));
        }
        Ok(Cpus { quota, period })
    }
}

/// Checks a cpuset list such as `0-3,5`.
pub fn parse_cpuset(s: &str) -> Result<String, String> {
    let bad = || format!("{s:?} is not a CPU list (like 0-3,5)");
    for part in s.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u32 = a.parse().map_err(|_| bad())?;
        let b: u32 = b.parse().map_err(|_| bad())?;
        if a > b {
            return Err(bad());
        }
    }
    Ok(s.to_string())
}

/// `KEY=VALUE`, for `--sysctl` and `--annotation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

impl FromStr for KeyValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok(KeyValue {
                key: k.trim().into(),
                value: v.into(),
            }),
            _ => Err("expected KEY=VALUE".into()),
        }
    }
}

/// `--ulimit NAME=SOFT[:HARD]`, values a number, -1 or `unlimited`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// `RLIMIT_NOFILE`, …
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

const RLIMITS: [&str; 16] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl FromStr for Ulimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, values) = s.split_once('=').ok_or("expected NAME=SOFT[:HARD]")?;
        let name = name.trim().to_ascii_lowercase();
        if !RLIMITS.contains(&name.as_str()) {
            return Err(format!(
                "unknown limit {name:?} (one of {})",
                RLIMITS.join(", ")
            ));
        }
        let value = |v: &str| -> Result<u64, String> {
            match v.trim() {
                "-1" | "unlimited" => Ok(u64::MAX),
                n => n
                    .parse()
                    .map_err(|_| format!("{n:?} is not a number, -1 or unlimited")),
            }
        };
        let (soft, hard) = match values.split_once(':') {
            Some((s, h)) => (value(s)?, value(h)?),
            None => (value(values)?, value(values)?),
        };
        if soft > hard {
            return Err(format!("soft limit {soft} is above hard limit {hard}"));
        }
        Ok(Ulimit {
            kind: format!("RLIMIT_{}", name.to_ascii_uppercase()),
            soft,
            hard,
        })
    }
}

/// `--security-opt` values berth understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    SeccompUnconfined,
    SeccompProfile(PathBuf),
    NoNewPrivileges(bool),
}

impl FromStr for SecurityOpt {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = match s.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => Ok(SecurityOpt::SeccompUnconfined),
            ("seccomp", Some(path)) if !path.is_empty() => {
                Ok(SecurityOpt::SeccompProfile(path.into()))
            }
            ("no-new-privileges", None) => Ok(SecurityOpt::NoNewPrivileges(true)),
            ("no-new-privileges", Some(v)) => Ok(SecurityOpt::NoNewPrivileges(parse_bool(v)?)),
            _ => Err(
                "expected seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges[=BOOL]"
                    .into(),
            ),
        }
    }
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Default)]
pub enum SeccompChoice {
    #[default]
    Default,
    Unconfined,
    Profile(Box<Profile>),
}

/// `--userns`: a new user namespace with these mappings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserNs {
    pub uid_map: Vec<IdMapping>,
    pub gid_map: Vec<IdMapping>,
}

/// Parses `--userns` values: `host` (no user namespace: `None`), or
/// `CONTAINER:HOST:SIZE[,…]` (the same map for uids and gids), or
/// `uid=C:H:S[,…];gid=C:H:S[,…]`.
pub fn parse_userns(s: &str) -> Result<Option<UserNs>, String> {
    if s == "host" || s.is_empty() {
        return Ok(None);
    }
    let maps = |list: &str| -> Result<Vec<IdMapping>, String> {
        list.split(',')
            .map(|m| {
                let f: Vec<&str> = m.trim().split(':').collect();
                let n = |x: &str| {
                    x.parse::<u32>()
                        .map_err(|_| format!("{m:?} is not CONTAINER:HOST:SIZE"))
                };
                match f.as_slice() {
                    [c, h, size] => {
                        let size = n(size)?;
                        if size == 0 {
                            return Err(format!("{m:?} maps no ids"));
                        }
                        Ok(IdMapping {
                            container_id: n(c)?,
                            host_id: n(h)?,
                            size,
                        })
                    }
                    _ => Err(format!("{m:?} is not CONTAINER:HOST:SIZE")),
                }
            })
            .collect()
    };
    if s.contains("uid=") || s.contains("gid=") {
        let (mut uid_map, mut gid_map) = (None, None);
        for part in s.split(';') {
            match part.trim().split_once('=') {
                Some(("uid", list)) => uid_map = Some(maps(list)?),
                Some(("gid", list)) => gid_map = Some(maps(list)?),
                _ => return Err(format!("{part:?} is not uid=MAPS or gid=MAPS")),
            }
        }
        let uid_map = uid_map.ok_or("uid=MAPS is missing")?;
        let gid_map = gid_map.ok_or("gid=MAPS is missing")?;
        return Ok(Some(UserNs { uid_map, gid_map }));
    }
    let m = maps(s)?;
    Ok(Some(UserNs {
        uid_map: m.clone(),
        gid_map: m,
    }))
}

/// Checks a hostname as the kernel and DNS would take it.
pub fn parse_hostname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if ok {
        Ok(s.to_string())
    } else {
        Err("must be 1 to 64 letters, digits, '-', '_' or '.'".into())
    }
}

/// Parses `--env` style values: `KEY=VALUE` as given; a bare `KEY` takes its value from
/// `lookup` (the caller's environment) and is dropped when unset, as docker does.
pub fn parse_env(
    s: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<String>, String> {
    match s.split_once('=') {
        Some(("", _)) => Err("the variable name is empty".into()),
        Some(_) => Ok(Some(s.to_string())),
        None if s.trim().is_empty() => Err("the variable name is empty".into()),
        None => Ok(lookup(s).map(|v| format!("{s}={v}"))),
    }
}

/// The entries of an `--env-file`: one `KEY=VALUE` or `KEY` a line; blank lines and lines
/// starting with `#` are skipped. Errors name the line number.
pub fn parse_env_file(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(e) = parse_env(line, &lookup).map_err(|e| format!("line {}: {e}", n + 1))? {
            out.push(e);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_docker_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("64k").unwrap(), 65536);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        for bad in ["", "m", "12q", "-5m", "1e400"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_swap("-1").unwrap(), -1);
    }

    #[test]
    fn mounts_parse_like_docker() {
        let m: MountOpt =
            "type=bind,source=/srv/data,target=/data,readonly,bind-propagation=rslave"
                .parse()
                .unwrap();
        assert_eq!(
            m,
            MountOpt::Bind {
                source: "/srv/data".into(),
                target: "/data".into(),
                readonly: true,
                propagation: Some("rslave".into())
            }
        );
        let m: MountOpt = "type=tmpfs,dst=/cache,tmpfs-size=1m,tmpfs-mode=1770"
            .parse()
            .unwrap();
        assert_eq!(
            m,
            MountOpt::Tmpfs {
                target: "/cache".into(),
                options: vec!["size=1048576".into(), "mode=1770".into()]
            }
        );
        for bad in [
            "type=bind,target=/x",
            "type=bind,source=rel,target=/x",
            "type=bind,source=/a,target=x",
            "type=bind,source=/a,target=/../etc",
            "type=volume,source=v,target=/x",
            "type=tmpfs,target=/t,tmpfs-mode=9",
            "type=bind,source=/a,target=/b,bogus=1",
            "type=bind,source=/a,target=/b,bind-propagation=weird",
        ] {
            assert!(bad.parse::<MountOpt>().is_err(), "{bad:?} accepted");
        }
        let t = MountOpt::parse_tmpfs("/run:size=64k,noexec").unwrap();
        assert_eq!(
            t,
            MountOpt::Tmpfs {
                target: "/run".into(),
                options: vec!["size=65536".into(), "noexec".into()]
            }
        );
    }

    #[test]
    fn ulimits_cpus_and_cpusets() {
        let u: Ulimit = "nofile=512:2048".parse().unwrap();
        assert_eq!(
            (u.kind.as_str(), u.soft, u.hard),
            ("RLIMIT_NOFILE", 512, 2048)
        );
        let u: Ulimit = "core=unlimited".parse().unwrap();
        assert_eq!((u.soft, u.hard), (u64::MAX, u64::MAX));
        assert!("nofile=10:5".parse::<Ulimit>().is_err());
        assert!("fly=1".parse::<Ulimit>().is_err());
        assert_eq!(
            "1.5".parse::<Cpus>().unwrap(),
            Cpus {
                quota: 150_000,
                period: 100_000
            }
        );
        assert!("0".parse::<Cpus>().is_err());
        assert!("lots".parse::<Cpus>().is_err());
        assert!(parse_cpuset("0-3,5").is_ok());
        assert!(parse_cpuset("3-1").is_err());
        assert!(parse_cpuset("a").is_err());
    }

    #[test]
    fn security_options() {
        assert_eq!(
            "seccomp=unconfined".parse::<SecurityOpt>().unwrap(),
            SecurityOpt::SeccompUnconfined
        );
        assert_eq!(
            "seccomp=/p.json".parse::<SecurityOpt>().unwrap(),
            SecurityOpt::SeccompProfile("/p.json".into())
        );
        assert_eq!(
            "no-new-privileges".parse::<SecurityOpt>().unwrap(),
            SecurityOpt::NoNewPrivileges(true)
        );
        assert_eq!(
            "no-new-privileges:false".parse::<SecurityOpt>().unwrap(),
            SecurityOpt::NoNewPrivileges(false)
        );
        assert!("apparmor=x".parse::<SecurityOpt>().is_err());
    }

    #[test]
    fn userns_maps() {
        assert_eq!(parse_userns("host").unwrap(), None);
        let u = parse_userns("0:100000:65536").unwrap().unwrap();
        assert_eq!(
            u.uid_map,
            [IdMapping {
                container_id: 0,
                host_id: 100_000,
                size: 65536
            }]
        );
        assert_eq!(u.uid_map, u.gid_map);
        let u = parse_userns("uid=0:1000:1,1:100000:100;gid=0:2000:1")
            .unwrap()
            .unwrap();
        assert_eq!(u.uid_map.len(), 2);
        assert_eq!(u.gid_map[0].host_id, 2000);
        assert!(parse_userns("0:1").is_err());
        assert!(parse_userns("0:1:0").is_err());
        assert!(parse_userns("uid=0:1:1").is_err());
    }

    #[test]
    fn env_values_and_files() {
        let host = |k: &str| (k == "HOST_ONLY").then(|| "h".to_string());
        assert_eq!(parse_env("A=1=2", host).unwrap().unwrap(), "A=1=2");
        assert_eq!(
            parse_env("HOST_ONLY", host).unwrap().unwrap(),
            "HOST_ONLY=h"
        );
        assert_eq!(parse_env("UNSET", host).unwrap(), None);
        assert!(parse_env("=x", host).is_err());
        let got = parse_env_file("# c\n\nA=1\n  HOST_ONLY\nB=\n", host).unwrap();
        assert_eq!(got, ["A=1", "HOST_ONLY=h", "B="]);
        assert!(parse_env_file("A=1\n=bad\n", host)
            .unwrap_err()
            .starts_with("line 2"));
    }

    #[test]
    fn namespaces_and_hostnames() {
        assert_eq!("host".parse::<NsMode>().unwrap(), NsMode::Host);
        assert_eq!(
            "/run/netns/x".parse::<NsMode>().unwrap(),
            NsMode::Path("/run/netns/x".into())
        );
        assert_eq!(
            "ns:/proc/1/ns/net".parse::<NsMode>().unwrap(),
            NsMode::Path("/proc/1/ns/net".into())
        );
        assert!("bridge".parse::<NsMode>().is_err());
        assert!(parse_hostname("web-1.local").is_ok());
        assert!(parse_hostname("bad host").is_err());
        assert!(parse_hostname(&"a".repeat(65)).is_err());
    }
}
