//! `checkpoint` and `restore` through CRIU, as runc 1.1 drives it, but with criu's command
//! line (`criu dump`, `criu pre-dump`, `criu restore`) instead of its swrk RPC.
//!
//! Dump: the init's pid, the rootfs as `--root`, the container's cgroup as the freezer, spec
//! bind mounts (and host devices bind-mounted into a user-namespaced container) as external
//! mounts keyed by their destination, namespaces joined by path as external (net, pid), and
//! the init's stdio when it lives outside the container (a host file, `/dev/null`, a pipe):
//! recorded in `berth-stdio.json` beside runc's `descriptors.json`, so that restore hands the
//! restored process its own caller's stdio (`--inherit-fd`).
//!
//! Restore: a new state directory (the id must be free), the cgroup made with the bundle's
//! resources and given to criu as `--cgroup-root`, the rootfs bind-mounted on
//! `<state>/criu-root` (criu wants a mount point whose parent is not overmounted), the
//! external mounts mapped to the bundle's sources, and the restored init made our child
//! (`--restore-sibling`), so that `restore` in the foreground waits for it like `run`.
//!
//! The argument lists are plain data built by pure functions (unit-tested below); the
//! executor runs criu and cleans up after a failure: nothing half-made is left behind.

mod args;
mod restore;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_cgroup::{Cgroup, Layout};
use berth_kind::{HasKind, Kind};

use crate::plan::{self, Plan, PlanOptions};
use crate::spec::Spec;
use crate::state::{check_id, State, Status};
use crate::Runtime;
pub use args::StdioEntry;
use args::{dump_args, external_mounts, mount_ids, read_descriptors, stdio_entries, DumpInput};
pub use restore::restore;

/// runc's file of the init's stdio links, kept for tools that read it.
pub const DESCRIPTORS: &str = "descriptors.json";
/// berth's record of the init's stdio as criu keys, for `--inherit-fd` on restore.
pub const STDIO: &str = "berth-stdio.json";
const DUMP_LOG: &str = "dump.log";
const RESTORE_LOG: &str = "restore.log";
const CRIU_ROOT: &str = "criu-root";
const CRIU_PID: &str = "criu.pid";

/// Errors of checkpoint and restore.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Runtime(#[from] crate::Error),
    #[error("criu {} cannot be run (checkpoint and restore need CRIU; Debian: apt-get install criu)", criu.display())]
    CriuMissing {
        criu: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("criu cannot work on this host: `criu check` failed: {why}")]
    CriuUnusable { why: String },
    #[error("criu {action} failed: {why}{}", log.as_ref().map(|l| format!(" (log: {})", l.display())).unwrap_or_default())]
    Criu {
        action: &'static str,
        why: String,
        log: Option<PathBuf>,
    },
    #[error("container {id} is {status}: only a running or paused container can be checkpointed")]
    NotRunning { id: String, status: &'static str },
    #[error("checkpoint images {}: {why}", path.display())]
    Images { path: PathBuf, why: String },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    BadOption(String),
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Runtime(e) => e.kind(),
            Error::CriuMissing { .. } | Error::CriuUnusable { .. } | Error::Unsupported(_) => {
                Kind::Unsupported
            }
            Error::Criu { .. } => Kind::Internal,
            Error::NotRunning { .. } => Kind::FailedPrecondition,
            Error::Images { .. } => Kind::NotFound,
            Error::BadOption(_) => Kind::InvalidArgument,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `--manage-cgroups-mode`: how criu treats the container's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    #[default]
    Soft,
    Full,
    Strict,
    Ignore,
}

impl std::str::FromStr for CgroupsMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<CgroupsMode> {
        Ok(match s {
            "" | "soft" => CgroupsMode::Soft,
            "full" => CgroupsMode::Full,
            "strict" => CgroupsMode::Strict,
            "ignore" => CgroupsMode::Ignore,
            other => {
                return Err(Error::BadOption(format!(
                    "--manage-cgroups-mode {other:?}: use soft, full, strict or ignore"
                )));
            }
        })
    }
}

impl CgroupsMode {
    fn as_str(self) -> &'static str {
        match self {
            CgroupsMode::Soft => "soft",
            CgroupsMode::Full => "full",
            CgroupsMode::Strict => "strict",
            CgroupsMode::Ignore => "ignore",
        }
    }
}

/// The criu options `checkpoint` and `restore` share, spelled as runc spells them.
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: CgroupsMode,
    /// `--empty-ns network`: a new network namespace whose contents are not restored.
    pub empty_net_ns: bool,
    pub auto_dedup: bool,
    pub lazy_pages: bool,
}

impl CriuFlags {
    fn push(&self, args: &mut Vec<OsString>) {
        for (on, flag) in [
            (self.tcp_established, "--tcp-established"),
            (self.ext_unix_sk, "--ext-unix-sk"),
            (self.shell_job, "--shell-job"),
            (self.file_locks, "--file-locks"),
            (self.auto_dedup, "--auto-dedup"),
            (self.lazy_pages, "--lazy-pages"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        args.push(format!("--manage-cgroups={}", self.manage_cgroups_mode.as_str()).into());
        if self.empty_net_ns {
            args.extend(["--empty-ns".into(), "net".into()]);
        }
    }
}

/// runc's `--empty-ns` value: only `network` is supported (as in runc).
pub fn parse_empty_ns(value: &str) -> Result<bool> {
    match value {
        "network" | "net" => Ok(true),
        other => Err(Error::BadOption(format!(
            "--empty-ns {other:?}: only network is supported"
        ))),
    }
}

/// Options of `checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// The criu binary (`criu`, looked up in PATH).
    pub criu: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    /// Images of an earlier pre-dump, relative to `image_path` as criu takes it.
    pub parent_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    pub flags: CriuFlags,
}

/// Options of `restore`.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub criu: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub bundle: PathBuf,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_subreaper: bool,
    pub no_pivot: bool,
    pub flags: CriuFlags,
    /// `--systemd-cgroup`: criu is put in a new systemd scope before it restores into it.
    pub systemd_cgroup: bool,
}
/// The CRIU name of a namespace flag, and whether criu takes it as external (net, pid)
/// rather than through `--join-ns`.
fn ns_name(flag: u64) -> Option<(&'static str, bool)> {
    Some(match flag {
        plan::CLONE_NEWNET => ("net", true),
        plan::CLONE_NEWPID => ("pid", true),
        plan::CLONE_NEWIPC => ("ipc", false),
        plan::CLONE_NEWUTS => ("uts", false),
        plan::CLONE_NEWNS => ("mnt", false),
        plan::CLONE_NEWUSER => ("user", false),
        plan::CLONE_NEWTIME => ("time", false),
        _ => return None,
    })
}

fn ext_ns_key(name: &str) -> String {
    match name {
        "net" => "extRootNetNS".into(),
        _ => "extRootPidNS".into(),
    }
}

/// The first error line of a criu log that says what failed (criu's probes of optional
/// kernel features log errors even on success: those are skipped).
fn criu_error(log: &str) -> Option<String> {
    log.lines()
        .filter(|l| l.contains("Error ("))
        .find(|l| !l.contains("criu/tun.c"))
        .map(|l| {
            // "(00.051325) Error (criu/vdso.c:381): vdso: Unexpected ..." -> after "): "
            l.split_once("): ")
                .map_or(l, |(_, rest)| rest)
                .trim()
                .to_string()
        })
}

/// The criu binary: a path with a `/` as given, else the first executable of that name in
/// PATH. Missing: unsupported by this host, found before anything is made.
fn find_criu(criu: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = if criu.components().count() > 1 || criu.is_absolute() {
        executable(criu).then(|| criu.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(criu))
                .find(|p| executable(p))
        })
    };
    found.ok_or_else(|| Error::CriuMissing {
        criu: criu.to_path_buf(),
        source: io::Error::new(io::ErrorKind::NotFound, "not found or not executable"),
    })
}

/// Runs `criu check`: whether criu can checkpoint on this host at all. A missing criu and a
/// criu that cannot work on this kernel are both "unsupported by this host".
fn check_criu(criu: &Path) -> Result<()> {
    let out = Command::new(criu)
        .arg("check")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::CriuMissing {
            criu: criu.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let why = criu_error(&text).unwrap_or_else(|| {
        text.lines()
            .last()
            .map_or(format!("{}", out.status), str::to_string)
    });
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    Err(Error::CriuUnusable {
        why: format!("{why} (kernel {})", kernel.trim()),
    })
}

/// The container's bundle, spec and plan, read again from its config.json.
fn load_plan(bundle: &Path) -> Result<(Spec, Plan)> {
    let config = bundle.join("config.json");
    let text = fs::read(&config).map_err(|source| crate::Error::File {
        what: "reading",
        path: config.clone(),
        source,
    })?;
    let spec: Spec = serde_json::from_slice(&text).map_err(|e| crate::Error::Spec {
        file: config.display().to_string(),
        why: e.to_string(),
    })?;
    let plan = plan::build(
        &spec,
        bundle,
        &PlanOptions {
            no_pivot: false,
            no_new_keyring: false,
            last_cap: 40,
        },
    )?;
    if plan.process.terminal {
        return Err(Error::Unsupported(
            "checkpoint and restore of a container with process.terminal are not supported: \
             berth-run drives criu's command line, which cannot hand the pty master back"
                .into(),
        ));
    }
    Ok((spec, plan))
}
fn cgroup_of(path: &str) -> Result<(Layout, Cgroup)> {
    let layout = Layout::detect().map_err(|source| crate::Error::Cgroup {
        path: path.to_string(),
        source,
    })?;
    let cg = Cgroup::at(&layout, path);
    Ok((layout, cg))
}

/// Runs criu with its output captured; a failure carries the first error of its log.
fn run_criu(
    criu: &Path,
    args: &[OsString],
    action: &'static str,
    log: &Path,
    keep_log: bool,
    inherit_stdio: bool,
) -> Result<()> {
    let mut cmd = Command::new(criu);
    cmd.args(args);
    if !inherit_stdio {
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
    }
    cmd.stderr(if inherit_stdio {
        Stdio::inherit()
    } else {
        Stdio::piped()
    });
    tracing::debug!(?args, "running criu");
    let out = cmd
        .spawn()
        .and_then(|c| c.wait_with_output())
        .map_err(|source| Error::CriuMissing {
            criu: criu.to_path_buf(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    criu_failed(
        criu,
        action,
        log,
        keep_log,
        &String::from_utf8_lossy(&out.stderr),
        &out.status.to_string(),
    )
}

/// `run_criu` for a restore into a systemd scope (runc applies its cgroup manager to criu's
/// pid before criu restores): criu is forked and waits on a pipe until `hold` ran with its
/// pid (starting the scope around it), then execs; without `hold`'s success it never runs.
/// Its stdio is berth-run's, as for every restore.
fn run_criu_held(
    criu: &Path,
    args: &[OsString],
    action: &'static str,
    log: &Path,
    hold: &mut dyn FnMut(i32) -> crate::Result<()>,
) -> Result<()> {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    let (mut rx, mut tx) = io::pipe().map_err(|e| crate::Error::io("creating a pipe", e))?;
    let pid = match berth_sys::clone_process(0) {
        Err(e) => return Err(crate::Error::io("forking criu", e).into()),
        Ok(berth_sys::Forked::Child) => {
            drop(tx);
            let mut go = [0u8; 1];
            if !matches!(rx.read(&mut go), Ok(1)) {
                berth_sys::exit_now(125);
            }
            drop(rx);
            let e = Command::new(criu).args(args).exec();
            let _ = writeln!(
                io::stderr(),
                "berth-run: error: executing {}: {e}",
                criu.display()
            );
            berth_sys::exit_now(127)
        }
        Ok(berth_sys::Forked::Parent(pid)) => pid,
    };
    drop(rx);
    let stop = |pid| {
        let _ = berth_sys::kill(pid, libc::SIGKILL);
        let _ = berth_sys::wait_child(pid, true);
    };
    if let Err(e) = hold(pid) {
        stop(pid);
        return Err(e.into());
    }
    if let Err(e) = tx.write_all(b"G") {
        stop(pid);
        return Err(crate::Error::io("starting criu", e).into());
    }
    drop(tx);
    let exit = berth_sys::wait_child(pid, true)
        .map_err(|e| crate::Error::io("waiting for criu", e))?
        .map_or(-1, berth_sys::Exit::status);
    if exit == 0 {
        return Ok(());
    }
    if exit == 127 {
        return Err(Error::CriuMissing {
            criu: criu.to_path_buf(),
            source: io::Error::new(io::ErrorKind::NotFound, "could not be executed"),
        });
    }
    criu_failed(criu, action, log, true, "", &format!("exit status: {exit}"))
}

/// Why criu failed: unusable on this host (`criu check` fails), else the first error of its
/// log, else the last line it printed, else its exit status.
fn criu_failed(
    criu: &Path,
    action: &'static str,
    log: &Path,
    keep_log: bool,
    stderr: &str,
    status: &str,
) -> Result<()> {
    // Why: criu that cannot work on this host at all (its own `criu check` fails, e.g. on
    // a kernel newer than it knows) is "unsupported"; otherwise the first error of its log.
    // Checked only after a failure, so that a working dump pays for no extra criu run.
    check_criu(criu)?;
    let text = fs::read_to_string(log).unwrap_or_default();
    let why = criu_error(&text)
        .or_else(|| {
            stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| status.to_string());
    Err(Error::Criu {
        action,
        why,
        log: keep_log.then(|| log.to_path_buf()),
    })
}
/// `checkpoint`: dumps a running (or paused) container into `image_path`. Without
/// `leave_running` or `pre_dump` the container is gone afterwards (criu ended its processes;
/// its cgroup and state are removed, poststop hooks run), as with runc.
pub fn checkpoint(root: &Path, id: &str, opts: &CheckpointOptions) -> Result<()> {
    check_id(id)?;
    let dir = root.join(id);
    let st = State::load(&dir, id)?;
    let status = st.status(&dir);
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Error::NotRunning {
            id: id.to_string(),
            status: status.as_str(),
        });
    }
    let (_spec, plan) = load_plan(&st.bundle)?;
    find_criu(&opts.criu)?;

    let (_, cg) = cgroup_of(&st.cgroup_path)?;
    let freezer = cg.v1.get("freezer").cloned().or_else(|| cg.v2.clone());
    let mut external_ns = Vec::new();
    for (flag, path) in &plan.namespaces.join {
        if let Some((name, true)) = ns_name(*flag) {
            let ino = fs::metadata(path)
                .map_err(|source| crate::Error::File {
                    what: "namespace",
                    path: PathBuf::from(path),
                    source,
                })?
                .ino();
            external_ns.push(format!("{name}[{ino}]:{}", ext_ns_key(name)));
        }
    }
    let stdio = stdio_entries(&read_descriptors(st.pid), &mount_ids(st.pid));
    let input = DumpInput {
        pid: st.pid,
        rootfs: st.rootfs.clone(),
        images: opts.image_path.clone(),
        work: opts.work_path.clone(),
        parent: opts.parent_path.clone(),
        freezer,
        external_mounts: external_mounts(&plan),
        external_ns,
        stdio: stdio.clone(),
        leave_running: opts.leave_running,
        pre_dump: opts.pre_dump,
    };

    // The image directory may exist (a container is checkpointed many times); one made
    // here is removed again when the dump fails.
    let made_images = match fs::create_dir(&opts.image_path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(source) => {
            return Err(crate::Error::File {
                what: "creating image directory",
                path: opts.image_path.clone(),
                source,
            }
            .into());
        }
    };
    let cleanup = |e: Error| {
        if made_images {
            let _ = fs::remove_dir_all(&opts.image_path);
        } else {
            for f in [DESCRIPTORS, STDIO] {
                let _ = fs::remove_file(opts.image_path.join(f));
            }
        }
        e
    };
    if let Some(w) = &opts.work_path {
        if let Err(e) = fs::create_dir_all(w) {
            return Err(cleanup(
                crate::Error::File {
                    what: "creating work directory",
                    path: w.clone(),
                    source: e,
                }
                .into(),
            ));
        }
    }
    if !opts.pre_dump {
        let links: Vec<String> = read_descriptors(st.pid)
            .into_iter()
            .map(|d| d.link)
            .collect();
        let write = |name: &str, body: Vec<u8>| {
            let path = opts.image_path.join(name);
            fs::write(&path, body).map_err(|source| {
                Error::from(crate::Error::File {
                    what: "writing",
                    path,
                    source,
                })
            })
        };
        write(DESCRIPTORS, serde_json::to_vec(&links).expect("serialises")).map_err(cleanup)?;
        write(STDIO, serde_json::to_vec(&stdio).expect("serialises")).map_err(cleanup)?;
    }
    let log_dir = opts.work_path.as_ref().unwrap_or(&opts.image_path);
    let action = if opts.pre_dump { "pre-dump" } else { "dump" };
    run_criu(
        &opts.criu,
        &dump_args(&input, &opts.flags),
        action,
        &log_dir.join(DUMP_LOG),
        opts.work_path.is_some(),
        false,
    )
    .map_err(cleanup)?;

    if !opts.leave_running && !opts.pre_dump {
        // criu ended the container's processes: remove the rest, as runc's destroy does.
        Runtime::new(root).delete(id, true)?;
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_empty_ns_parse_like_runc() {
        assert_eq!("".parse::<CgroupsMode>().unwrap(), CgroupsMode::Soft);
        assert_eq!(
            "strict".parse::<CgroupsMode>().unwrap(),
            CgroupsMode::Strict
        );
        let e = "hard".parse::<CgroupsMode>().unwrap_err();
        assert_eq!(e.kind(), Kind::InvalidArgument);
        assert!(parse_empty_ns("network").unwrap());
        assert_eq!(
            parse_empty_ns("pid").unwrap_err().kind(),
            Kind::InvalidArgument
        );
    }

    #[test]
    fn the_criu_error_line_skips_feature_probes() {
        let log = "(00.01) Error (criu/tun.c:85): tun: Unable to create tun: No such file\n\
                   (00.05) Error (criu/files-reg.c:1710): Can't lookup mount=23 for fd=0 path=/dev/null\n\
                   (00.06) Error (criu/cr-dump.c:2053): Dumping FAILED.\n";
        assert_eq!(
            criu_error(log).as_deref(),
            Some("Can't lookup mount=23 for fd=0 path=/dev/null")
        );
        assert_eq!(criu_error("Looks good.\n"), None);
    }

    #[test]
    fn a_missing_criu_is_found_missing_before_it_runs() {
        assert_eq!(
            find_criu(Path::new("/nonexistent/criu"))
                .unwrap_err()
                .kind(),
            Kind::Unsupported
        );
        let sh = find_criu(Path::new("sh")).expect("sh is in PATH");
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert!(
            find_criu(Path::new("/etc/passwd")).is_err(),
            "not executable"
        );
    }

    #[test]
    fn a_missing_criu_is_unsupported() {
        let e = check_criu(Path::new("/nonexistent/criu")).unwrap_err();
        assert_eq!(e.kind(), Kind::Unsupported);
        assert!(e.to_string().contains("/nonexistent/criu"), "{e}");
    }

    /// A held "criu" (here sh) runs only after `hold` succeeded, and not before it returned.
    #[test]
    fn a_held_criu_runs_only_after_its_hold() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let args: Vec<OsString> = vec![
            "-c".into(),
            format!("echo $$ > {}", marker.display()).into(),
        ];
        let log = dir.path().join("log");
        let mut seen = 0;
        run_criu_held(Path::new("/bin/sh"), &args, "restore", &log, &mut |pid| {
            seen = pid;
            // Held: forked, but not yet sh.
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!marker.exists(), "ran before the hold returned");
            Ok(())
        })
        .unwrap();
        let ran: i32 = fs::read_to_string(&marker).unwrap().trim().parse().unwrap();
        assert_eq!(ran, seen, "the pid given to hold is the one that ran");

        fs::remove_file(&marker).unwrap();
        let e = run_criu_held(Path::new("/bin/sh"), &args, "restore", &log, &mut |_| {
            Err(crate::Error::Unsupported("no scope".into()))
        })
        .unwrap_err();
        assert!(e.to_string().contains("no scope"), "{e}");
        assert!(!marker.exists(), "ran although the hold failed");
    }
}
