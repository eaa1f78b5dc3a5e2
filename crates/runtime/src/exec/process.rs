//! The process of an `exec`, decided before it exists: runc's rules for `--process FILE` and
//! for the command-line flags, its terminal rules, and `--cgroup`'s sub-cgroups. Plain data,
//! unit-tested without root.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use berth_cgroup::Cgroup;

use crate::error::{Error, Result};
use crate::plan::{self, ProcessPlan};
use crate::spec::{self, Spec};

/// The options of `exec`, as runc 1.1 spells them.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// `--process FILE`: a runtime-spec Process JSON. The flags that shape the process
    /// (`--cwd`, `--env`, `--user`, `--cap`, `--tty`, …) are then not used, as with runc.
    pub process: Option<PathBuf>,
    /// The command and its arguments (without `--process`).
    pub args: Vec<String>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub cwd: Option<String>,
    /// `NAME=value`, appended to the container's env (a later value of a name wins).
    pub env: Vec<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    pub additional_gids: Vec<u32>,
    /// Capabilities added to the bounding, effective and permitted sets.
    pub caps: Vec<String>,
    pub preserve_fds: u32,
    pub no_new_privs: bool,
    pub process_label: Option<String>,
    pub apparmor: Option<String>,
    pub ignore_paused: bool,
    /// runc's `--cgroup [CONTROLLER[,CONTROLLER]:]PATH`: an existing sub-cgroup of the
    /// container's cgroup to run in (without a controller: in every hierarchy).
    pub cgroup: Vec<String>,
}

/// Everything the exec'd process gets, decided before it exists.
#[derive(Debug, Clone)]
pub(crate) struct ExecPlan {
    pub process: ProcessPlan,
    pub seccomp: Option<spec::Seccomp>,
    pub oom_score_adj: Option<i32>,
}

/// The process runc would build: `--process FILE` (capabilities and rlimits from the
/// container when the file has none), or the container's process with the flags applied.
pub(crate) fn process_for(
    config: &Spec,
    opts: &ExecOptions,
    file: Option<spec::Process>,
) -> Result<spec::Process> {
    let base = config.process.as_ref();
    if let Some(mut p) = file {
        if !opts.args.is_empty() {
            return Err(usage("--process and a command cannot both be given"));
        }
        if p.capabilities.is_none() {
            p.capabilities = base.and_then(|b| b.capabilities.clone());
        }
        if p.rlimits.is_empty() {
            p.rlimits = base.map(|b| b.rlimits.clone()).unwrap_or_default();
        }
        return Ok(p);
    }
    let mut p = base
        .cloned()
        .ok_or_else(|| Error::spec("process is missing"))?;
    if opts.args.is_empty() {
        return Err(usage("a command to run, or --process FILE, is required"));
    }
    p.args = opts.args.clone();
    if let Some(cwd) = &opts.cwd {
        p.cwd = cwd.clone();
    }
    if let Some(a) = &opts.apparmor {
        p.apparmor_profile = Some(a.clone());
    }
    if let Some(l) = &opts.process_label {
        p.selinux_label = Some(l.clone());
    }
    for cap in &opts.caps {
        if crate::caps::number(cap).is_none() {
            return Err(usage(format!("--cap {cap}: unknown capability")));
        }
        let c = p.capabilities.get_or_insert_with(Default::default);
        c.bounding.push(cap.clone());
        c.effective.push(cap.clone());
        c.permitted.push(cap.clone());
        // runc: ambient only when the spec has inheritable capabilities (the kernel raises an
        // ambient capability only if it is also inheritable).
        if !c.inheritable.is_empty() {
            c.ambient.push(cap.clone());
        }
    }
    for e in &opts.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(usage(format!("--env {e:?}: use NAME=value")));
        }
    }
    p.env.extend(opts.env.iter().cloned());
    p.terminal = opts.tty;
    if opts.no_new_privs {
        p.no_new_privileges = true;
    }
    if let Some(u) = &opts.user {
        let (uid, gid) = parse_user(u)?;
        p.user.uid = uid;
        if let Some(gid) = gid {
            p.user.gid = gid;
        }
    }
    p.user.additional_gids.extend(&opts.additional_gids);
    Ok(p)
}

fn usage(why: impl Into<String>) -> Error {
    Error::Spec {
        file: "exec".into(),
        why: why.into(),
    }
}

/// `uid[:gid]`, numbers only (as runc).
pub(crate) fn parse_user(u: &str) -> Result<(u32, Option<u32>)> {
    let num = |what: &str, s: &str| {
        s.parse::<u32>()
            .map_err(|_| usage(format!("--user {u}: {what} {s:?} is not a number")))
    };
    match u.split(':').collect::<Vec<_>>().as_slice() {
        [uid] => Ok((num("uid", uid)?, None)),
        [uid, gid] => Ok((num("uid", uid)?, Some(num("gid", gid)?))),
        _ => Err(usage(format!("--user {u}: use uid[:gid]"))),
    }
}

/// Environment as runc's init leaves it: one entry per name, at the place the name first
/// appears, with the value it last had.
pub(crate) fn dedup_env(env: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    let mut at: HashMap<&str, usize> = HashMap::new();
    for e in env {
        let name = e.split_once('=').map_or(e.as_str(), |(n, _)| n);
        match at.get(name) {
            Some(&i) => out[i] = e.clone(),
            None => {
                at.insert(name, out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

/// The plan of an exec: the process checked like create's, the container's seccomp profile
/// and oom_score_adj, and runc's terminal rules.
pub(crate) fn build(
    config: &Spec,
    opts: &ExecOptions,
    file: Option<spec::Process>,
    last_cap: u32,
) -> Result<ExecPlan> {
    let p = process_for(config, opts, file)?;
    if p.args.is_empty() {
        return Err(usage("process args cannot be empty"));
    }
    if !p.cwd.starts_with('/') {
        return Err(usage(format!(
            "process cwd {:?} is not an absolute path",
            p.cwd
        )));
    }
    if let Some(a) = p.apparmor_profile.as_deref().filter(|a| !a.is_empty()) {
        return Err(Error::Unsupported(format!(
            "apparmor profile {a:?}: AppArmor is not enabled on this host"
        )));
    }
    if let Some(l) = p.selinux_label.as_deref().filter(|l| !l.is_empty()) {
        return Err(Error::Unsupported(format!(
            "process label {l:?}: SELinux is not enabled on this host"
        )));
    }
    if p.terminal && opts.detach && opts.console_socket.is_none() {
        return Err(usage(
            "cannot allocate tty if berth-run will detach without setting console socket",
        ));
    }
    if !p.terminal && opts.console_socket.is_some() {
        return Err(usage(
            "cannot use console socket if berth-run will not allocate tty",
        ));
    }
    let mut process = plan::process_plan(&p, last_cap)?;
    process.env = dedup_env(&process.env);
    Ok(ExecPlan {
        process,
        seccomp: config.linux.as_ref().and_then(|l| l.seccomp.clone()),
        oom_score_adj: config.process.as_ref().and_then(|p| p.oom_score_adj),
    })
}

/// runc's `--cgroup` arguments as controller -> path under the container's cgroup (`""`:
/// every hierarchy). A path never leaves the container's cgroup.
pub(crate) fn sub_cgroups(args: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in args {
        let bad = |why: &str| usage(format!("--cgroup {a}: {why}"));
        let (ctrls, path) = match a.split(':').collect::<Vec<_>>().as_slice() {
            [path] if args.len() == 1 => (vec![""], *path),
            [_] => {
                return Err(bad(
                    "a controller prefix is needed when --cgroup is repeated",
                ))
            }
            [ctrls, path] => (ctrls.split(',').collect(), *path),
            _ => return Err(bad("use [CONTROLLER[,CONTROLLER]:]PATH")),
        };
        let rel = path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|c| c == "..") {
            return Err(bad("the path must name a cgroup below the container's"));
        }
        for c in ctrls {
            if c.is_empty() && args.len() > 1 {
                return Err(bad("empty controller"));
            }
            if out.insert(c.to_string(), rel.to_string()).is_some() {
                return Err(bad("controller given twice"));
            }
        }
    }
    Ok(out)
}

/// The directories whose `cgroup.procs` the exec'd process is written to: the container's
/// cgroup in every hierarchy, or the sub-cgroups `--cgroup` named.
pub(crate) fn cgroup_dirs(cg: &Cgroup, subs: &BTreeMap<String, String>) -> Result<Vec<PathBuf>> {
    if subs.is_empty() {
        return Ok(cg.dirs());
    }
    for c in subs.keys().filter(|c| !c.is_empty()) {
        if !cg.v1.contains_key(c) {
            return Err(Error::Unsupported(format!(
                "--cgroup {c}:…: this host has no cgroup v1 controller {c:?} (on cgroup v2 give the path alone)"
            )));
        }
    }
    let all = subs.get("");
    let mut dirs: Vec<PathBuf> = cg
        .v1
        .iter()
        .map(|(c, d)| subs.get(c).or(all).map_or_else(|| d.clone(), |s| d.join(s)))
        .collect();
    dirs.extend(
        cg.v2
            .iter()
            .map(|d| all.map_or_else(|| d.clone(), |s| d.join(s))),
    );
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cgroup::Layout;
    use berth_kind::{HasKind, Kind};

    fn config(extra: &str) -> Spec {
        let mut v: serde_json::Value = serde_json::from_str(
            r#"{"ociVersion":"1.0.2",
                "process":{"args":["sleep","1000"],"cwd":"/","user":{"uid":0,"gid":0},
                  "env":["PATH=/bin","TERM=xterm"],
                  "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],
                                  "permitted":["CAP_KILL"]},
                  "rlimits":[{"type":"RLIMIT_NOFILE","hard":1024,"soft":1024}],
                  "oomScoreAdj":5},
                "root":{"path":"rootfs"},
                "linux":{"namespaces":[{"type":"mount"}],
                         "seccomp":{"defaultAction":"SCMP_ACT_ALLOW"}}}"#,
        )
        .unwrap();
        let e: serde_json::Value = serde_json::from_str(extra).unwrap();
        if let serde_json::Value::Object(m) = e {
            for (k, val) in m {
                v["process"][k] = val;
            }
        }
        serde_json::from_value(v).unwrap()
    }

    fn args(a: &[&str]) -> ExecOptions {
        ExecOptions {
            args: a.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn flags_override_the_containers_process_like_runc() {
        let mut o = args(&["id", "-u"]);
        o.cwd = Some("/tmp".into());
        o.env = vec!["FOO=bar".into(), "PATH=/usr/bin".into()];
        o.user = Some("1000:1001".into());
        o.additional_gids = vec![5, 6];
        o.caps = vec!["CAP_CHOWN".into()];
        o.no_new_privs = true;
        let plan = build(&config("{}"), &o, None, 40).unwrap();
        let p = &plan.process;
        assert_eq!(p.args, ["id", "-u"]);
        assert_eq!(p.cwd, "/tmp");
        assert_eq!(p.env, ["PATH=/usr/bin", "TERM=xterm", "FOO=bar"]);
        assert_eq!((p.uid, p.gid, p.groups.clone()), (1000, 1001, vec![5, 6]));
        let chown_kill = (1 << 0) | (1 << 5);
        assert_eq!(p.caps.bounding, chown_kill);
        assert_eq!(p.caps.effective, chown_kill);
        assert_eq!(p.caps.permitted, chown_kill);
        assert_eq!(p.caps.ambient, 0, "no inheritable, so no ambient");
        assert!(p.no_new_privs);
        assert!(!p.terminal);
        assert_eq!(p.rlimits.len(), 1);
        assert_eq!(plan.oom_score_adj, Some(5));
        assert!(plan.seccomp.is_some(), "the container's profile applies");
    }

    #[test]
    fn a_process_file_is_taken_as_is_with_the_containers_caps_and_rlimits_as_defaults() {
        let file: spec::Process = serde_json::from_str(
            r#"{"args":["/bin/true"],"cwd":"/","env":["A=1"],"user":{"uid":7,"gid":8}}"#,
        )
        .unwrap();
        let mut o = ExecOptions {
            detach: true,
            ..Default::default()
        };
        // Flags that shape the process do not apply to a --process file.
        o.cwd = Some("/ignored".into());
        let plan = build(&config("{}"), &o, Some(file.clone()), 40).unwrap();
        let p = &plan.process;
        assert_eq!(p.args, ["/bin/true"]);
        assert_eq!(p.cwd, "/");
        assert_eq!((p.uid, p.gid), (7, 8));
        assert_eq!(p.caps.bounding, 1 << 5, "the container's capabilities");
        assert_eq!(p.rlimits[0].name, "RLIMIT_NOFILE");
        assert!(!p.no_new_privs, "noNewPrivileges comes from the file");
        let both = build(&config("{}"), &args(&["x"]), Some(file), 40).unwrap_err();
        assert_eq!(both.kind(), Kind::InvalidArgument);
    }

    #[test]
    fn bad_input_gets_one_line_and_the_right_kind() {
        let cases: &[(ExecOptions, Kind, &str)] = &[
            (args(&[]), Kind::InvalidArgument, "command"),
            (
                ExecOptions {
                    user: Some("a".into()),
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "uid \"a\" is not a number",
            ),
            (
                ExecOptions {
                    user: Some("1:2:3".into()),
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "uid[:gid]",
            ),
            (
                ExecOptions {
                    caps: vec!["CAP_NOPE".into()],
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "CAP_NOPE",
            ),
            (
                ExecOptions {
                    env: vec!["NOEQUALS".into()],
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "NOEQUALS",
            ),
            (
                ExecOptions {
                    cwd: Some("rel".into()),
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "absolute",
            ),
            (
                ExecOptions {
                    apparmor: Some("p".into()),
                    ..args(&["x"])
                },
                Kind::Unsupported,
                "AppArmor",
            ),
            (
                ExecOptions {
                    process_label: Some("l".into()),
                    ..args(&["x"])
                },
                Kind::Unsupported,
                "SELinux",
            ),
            (
                ExecOptions {
                    tty: true,
                    detach: true,
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "console socket",
            ),
            (
                ExecOptions {
                    console_socket: Some("/s".into()),
                    ..args(&["x"])
                },
                Kind::InvalidArgument,
                "will not allocate tty",
            ),
        ];
        for (o, kind, text) in cases {
            let e = build(&config("{}"), o, None, 40).unwrap_err();
            assert_eq!(e.kind(), *kind, "{o:?}: {e}");
            let msg = e.to_string();
            assert!(msg.contains(text), "{msg:?} should mention {text:?}");
            assert!(!msg.contains('\n'), "one line: {msg:?}");
        }
    }

    #[test]
    fn env_keeps_the_first_place_and_the_last_value() {
        let env: Vec<String> = ["A=1", "B=2", "A=3", "C", "B=4"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedup_env(&env), ["A=3", "B=4", "C"]);
    }

    #[test]
    fn users_parse_as_uid_and_optional_gid() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("0:5").unwrap(), (0, Some(5)));
        assert!(parse_user("-1").is_err());
        assert!(parse_user("").is_err());
    }

    #[test]
    fn sub_cgroups_parse_like_runc_and_stay_below_the_container() {
        let s = |a: &[&str]| sub_cgroups(&a.iter().map(|x| x.to_string()).collect::<Vec<_>>());
        assert_eq!(
            s(&["sub"]).unwrap(),
            BTreeMap::from([("".into(), "sub".into())])
        );
        assert_eq!(
            s(&["cpu,memory:/a/b", "pids:c"]).unwrap(),
            BTreeMap::from([
                ("cpu".into(), "a/b".into()),
                ("memory".into(), "a/b".into()),
                ("pids".into(), "c".into())
            ])
        );
        for bad in [
            &["a", "b"][..],
            &["../x"],
            &["cpu:a", "cpu:b"],
            &["a:b:c"],
            &["/"],
        ] {
            let e = s(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn exec_cgroup_dirs_follow_the_sub_cgroups() {
        let layout = Layout {
            v1: BTreeMap::from([
                ("cpu".into(), PathBuf::from("/cg/cpu,cpuacct")),
                ("cpuacct".into(), PathBuf::from("/cg/cpu,cpuacct")),
                ("pids".into(), PathBuf::from("/cg/pids")),
            ]),
            v2: Some(PathBuf::from("/cg/unified")),
        };
        let cg = Cgroup::at(&layout, "/berth/c");
        let dirs = |subs: &[(&str, &str)]| {
            let m = subs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            cgroup_dirs(&cg, &m)
        };
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            dirs(&[]).unwrap(),
            [
                p("/cg/cpu,cpuacct/berth/c"),
                p("/cg/pids/berth/c"),
                p("/cg/unified/berth/c")
            ]
        );
        assert_eq!(
            dirs(&[("", "s")]).unwrap(),
            [
                p("/cg/cpu,cpuacct/berth/c/s"),
                p("/cg/pids/berth/c/s"),
                p("/cg/unified/berth/c/s")
            ]
        );
        assert_eq!(
            dirs(&[("pids", "s")]).unwrap(),
            [
                p("/cg/cpu,cpuacct/berth/c"),
                p("/cg/pids/berth/c/s"),
                p("/cg/unified/berth/c")
            ]
        );
        assert_eq!(
            dirs(&[("memory", "s")]).unwrap_err().kind(),
            Kind::Unsupported
        );
    }
}
