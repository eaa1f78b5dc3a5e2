//! `exec`: one more process in an existing container, as runc's `exec` makes it.
//!
//! berth-run (P) checks the container is created or running (not paused unless asked, never
//! stopped), builds the process from `--process FILE` or from the container's own process
//! with the command-line overrides, opens the init's namespaces through /proc after a pidfd
//! and start-time check, joins the init's pid (and time) namespace itself, so that its next
//! child is born inside it, and clones that child (X). P puts X in the container's cgroup
//! (every hierarchy), sets its oom_score_adj, and sends `Go`; X joins the user namespace
//! first and then the others, applies the process and execs the program through the sealed
//! stub. The drawing and the messages are in docs/process-tree.md; the defences in
//! docs/security.md.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use berth_cgroup::{Cgroup, Layout};
use berth_kind::Kind;
use berth_sys as sys;

use crate::container::{last_cap, write_pid_file, Runtime};
use crate::error::{Error, ExecFailure, Result};
use crate::init::{self, Fail};
use crate::plan;
use crate::seccomp;
use crate::spec::Spec;
use crate::state::{self, Status};
use crate::sync::{kind_from_name, kind_name, Channel, ToChild, ToParent};

mod process;
mod tty;

pub use process::ExecOptions;
use process::{build, cgroup_dirs, sub_cgroups, ExecPlan};

/// Namespaces in the order they are joined: the user namespace owns the others, so first;
/// pid and time are joined by berth-run itself (they apply to its next child).
const NAMESPACES: [(&str, u64); 8] = [
    ("user", plan::CLONE_NEWUSER),
    ("pid", plan::CLONE_NEWPID),
    ("time", plan::CLONE_NEWTIME),
    ("ipc", plan::CLONE_NEWIPC),
    ("uts", plan::CLONE_NEWUTS),
    ("net", plan::CLONE_NEWNET),
    ("cgroup", plan::CLONE_NEWCGROUP),
    ("mnt", plan::CLONE_NEWNS),
];

/// Kills and reaps the exec'd process on drop unless disarmed, so that every `?` after the
/// clone leaves nothing running.
struct Reap(Option<i32>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::wait_child(pid, true);
        }
    }
}

/// Restores berth-run's signal mask when dropped.
struct Mask(sys::SigSet);

impl Drop for Mask {
    fn drop(&mut self) {
        let _ = sys::set_signal_mask(&self.0);
    }
}

impl Runtime {
    /// `exec`: runs a process in the container. In the foreground, waits for it (forwarding
    /// signals) and returns its status (128+N for signal N); with `detach`, returns 0 once
    /// it runs. The pid file, if asked for, holds its host pid.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32> {
        let (st, dir) = self.load(id)?;
        let refuse = |status: Status, why: &'static str| Error::State {
            id: id.to_string(),
            status: status.as_str().into(),
            why,
        };
        match st.status(&dir) {
            s @ Status::Stopped => return Err(refuse(s, ": cannot exec in a stopped container")),
            s @ Status::Paused if !opts.ignore_paused => {
                return Err(refuse(
                    s,
                    ": cannot exec in a paused container (use --ignore-paused to override)",
                ))
            }
            _ => {}
        }
        let config_path = st.bundle.join("config.json");
        let text = fs::read(&config_path).map_err(|source| Error::File {
            what: "reading",
            path: config_path.clone(),
            source,
        })?;
        let config: Spec = serde_json::from_slice(&text).map_err(|e| Error::Spec {
            file: config_path.display().to_string(),
            why: e.to_string(),
        })?;
        let file = match &opts.process {
            None => None,
            Some(path) => {
                let text = fs::read(path).map_err(|source| Error::File {
                    what: "reading --process",
                    path: path.clone(),
                    source,
                })?;
                Some(serde_json::from_slice(&text).map_err(|e| Error::Spec {
                    file: path.display().to_string(),
                    why: e.to_string(),
                })?)
            }
        };
        let plan = build(&config, opts, file, last_cap())?;
        for fd in 3..3 + opts.preserve_fds as i32 {
            if fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err() {
                return Err(Error::Spec {
                    file: "--preserve-fds".into(),
                    why: format!("fd {fd} is not open"),
                });
            }
        }

        // The init's namespaces, opened while a pidfd shows it is the container's init.
        let pidfd = match sys::pidfd_open(st.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return Err(refuse(
                    Status::Stopped,
                    ": cannot exec in a stopped container",
                ))
            }
            Err(e) => return Err(Error::io(format!("pidfd_open {}", st.pid), e)),
        };
        match state::proc_stat(st.pid) {
            Some((s, start)) if start == st.init_start_time && s != 'Z' && s != 'X' => {}
            _ => {
                return Err(refuse(
                    Status::Stopped,
                    ": cannot exec in a stopped container",
                ))
            }
        }
        let joins = open_namespaces(st.pid)?;
        if sys::poll_readable(pidfd.as_fd(), 0).map_err(|e| Error::io("polling the init", e))? {
            return Err(refuse(
                Status::Stopped,
                ": cannot exec in a stopped container",
            ));
        }
        let joins_user = joins.iter().any(|(f, _)| *f == plan::CLONE_NEWUSER);
        // In a joined user namespace setgroups(2) works only where the init's says "allow".
        let setgroups_allowed = !joins_user
            || fs::read_to_string(format!("/proc/{}/setgroups", st.pid))
                .is_ok_and(|s| s.trim() == "allow");
        let (own, joins): (Vec<_>, Vec<_>) = joins
            .into_iter()
            .partition(|(f, _)| *f == plan::CLONE_NEWPID || *f == plan::CLONE_NEWTIME);

        let layout = Layout::detect().map_err(|source| Error::Cgroup {
            path: st.cgroup_path.clone(),
            source,
        })?;
        let cgroup = Cgroup::at(&layout, &st.cgroup_path);
        let cgroup_dirs = cgroup_dirs(&cgroup, &sub_cgroups(&opts.cgroup)?)?;
        for dir in &cgroup_dirs {
            if !dir.is_dir() {
                return Err(Error::File {
                    what: "--cgroup: no cgroup",
                    path: dir.clone(),
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
        }
        // A terminal without --console-socket (the foreground): the master comes to us.
        let mut proxy = None;
        let console = match &opts.console_socket {
            Some(p) => Some(UnixStream::connect(p).map_err(|source| Error::File {
                what: "connecting to console socket",
                path: p.clone(),
                source,
            })?),
            None if plan.process.terminal => {
                let (ours, theirs) = UnixStream::pair()
                    .map_err(|e| Error::io("creating the terminal socketpair", e))?;
                proxy = Some(ours);
                Some(theirs)
            }
            None => None,
        };
        let stub =
            sys::exec_stub_memfd().map_err(|e| Error::io("creating the exec stub memfd", e))?;
        let (mut chan, child_chan) = Channel::pair()?;

        // Not dumpable from birth: the child is in the container's pid namespace before its
        // first instruction, and must not be ptraced nor its /proc/<pid>/exe opened.
        sys::set_dumpable(false).map_err(|e| Error::io("prctl(PR_SET_DUMPABLE)", e))?;
        let mask = Mask(sys::block_all_signals().map_err(|e| Error::io("blocking signals", e))?);
        for (flag, fd) in &own {
            sys::setns(fd.as_fd(), *flag as i32)
                .map_err(|e| Error::io(format!("joining the {} namespace", ns_name(*flag)), e))?;
        }
        let pid = match sys::clone_process(0) {
            Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
                // The pid namespace has no init any more.
                return Err(refuse(
                    Status::Stopped,
                    ": cannot exec in a stopped container",
                ));
            }
            Err(e) => return Err(Error::io("fork into the container", e)),
            Ok(sys::Forked::Child) => {
                drop(chan);
                child(Child {
                    id,
                    plan: &plan,
                    chan: child_chan,
                    joins,
                    setgroups_allowed,
                    console,
                    preserve_fds: opts.preserve_fds,
                    stub,
                    sigmask: mask.0,
                })
            }
            Ok(sys::Forked::Parent(pid)) => pid,
        };
        let mut reap = Reap(Some(pid));
        drop(child_chan);
        drop(console);
        drop(joins);

        if let Some(adj) = plan.oom_score_adj {
            let path = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
            fs::write(&path, adj.to_string()).map_err(|source| Error::File {
                what: "writing",
                path,
                source,
            })?;
        }
        for dir in &cgroup_dirs {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string()).map_err(|source| Error::File {
                what: "joining the container's cgroup: writing",
                path: procs,
                source,
            })?;
        }
        // A send that fails means the child already gave up: its message is in the socket.
        let _ = chan.send(&ToChild::Go);
        let mut ready = false;
        loop {
            match chan.recv::<ToParent>()? {
                Some(ToParent::Ready) => ready = true,
                Some(ToParent::Failed {
                    kind,
                    message,
                    exec,
                }) => {
                    return Err(Error::Setup {
                        kind: kind_from_name(&kind),
                        message,
                        exec,
                    })
                }
                Some(ToParent::SeccompListener { fd }) => {
                    // As runc's setns process: the state of the container (running, its
                    // init's pid) with the exec'd process's pid beside it.
                    let sent = match plan.seccomp.as_ref() {
                        Some(s) => seccomp::send_listener(
                            pid,
                            fd,
                            s,
                            &st.bundle,
                            &st.report(Status::Running),
                        ),
                        None => Err(Error::io(
                            "sync: a seccomp listener without a profile",
                            std::io::ErrorKind::InvalidData.into(),
                        )),
                    };
                    if let Err(e) = sent {
                        let _ = sys::kill(pid, 9);
                        return Err(e);
                    }
                    chan.send(&ToChild::Continue)?;
                }
                Some(ToParent::Hooks) | Some(ToParent::TimeNamespace) => {}
                // End of file: the exec closed the child's (close-on-exec) end, or it died.
                None => break,
            }
        }
        if !ready {
            let how = match sys::wait_child(pid, true) {
                Ok(Some(sys::Exit::Code(c))) => format!("exit status {c}"),
                Ok(Some(sys::Exit::Signal(s))) => format!("signal {s}"),
                _ => "unknown status".into(),
            };
            reap.0 = None;
            return Err(Error::Setup {
                kind: Kind::Internal,
                message: format!("exec process ended during setup ({how})"),
                exec: None,
            });
        }
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid)?;
        }
        reap.0 = None;
        if opts.detach {
            return Ok(0);
        }
        if let Some(sock) = proxy {
            let exit = tty::proxy(pid, sock)?;
            drop(mask);
            return Ok(exit.status());
        }
        let exit = loop {
            match sys::wait_signal(200).map_err(|e| Error::io("waiting for signals", e))? {
                Some(sig) if sig != libc::SIGCHLD => {
                    let _ = sys::kill(pid, sig);
                }
                _ => {
                    if let Some(exit) = sys::wait_child(pid, false)
                        .map_err(|e| Error::io("waiting for the exec'd process", e))?
                    {
                        break exit;
                    }
                }
            }
        };
        drop(mask);
        Ok(exit.status())
    }
}

/// Opens `/proc/<pid>/ns/*` for every namespace the init does not share with berth-run.
fn open_namespaces(pid: i32) -> Result<Vec<(u64, OwnedFd)>> {
    let mut out = Vec::new();
    for (name, flag) in NAMESPACES {
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let file = match fs::File::open(&path) {
            Ok(f) => f,
            // A kernel without this namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(Error::File {
                    what: "opening namespace",
                    path,
                    source,
                })
            }
        };
        let theirs = file.metadata().map_err(|source| Error::File {
            what: "stat",
            path: path.clone(),
            source,
        })?;
        let ours = fs::metadata(format!("/proc/self/ns/{name}")).ok();
        if ours.is_some_and(|o| o.ino() == theirs.ino() && o.dev() == theirs.dev()) {
            continue;
        }
        out.push((flag, OwnedFd::from(file)));
    }
    Ok(out)
}

fn ns_name(flag: u64) -> &'static str {
    NAMESPACES
        .iter()
        .find(|(_, f)| *f == flag)
        .map_or("unknown", |(n, _)| n)
}

/// What the exec'd process needs besides its plan; every fd is close-on-exec.
struct Child<'a> {
    id: &'a str,
    plan: &'a ExecPlan,
    chan: Channel,
    /// Namespaces to join (user first), not pid or time: berth-run joined those.
    joins: Vec<(u64, OwnedFd)>,
    setgroups_allowed: bool,
    console: Option<UnixStream>,
    preserve_fds: u32,
    stub: Option<OwnedFd>,
    sigmask: sys::SigSet,
}

enum Never {}

/// The child: joins, applies the process and execs; on failure tells berth-run and exits.
fn child(mut c: Child<'_>) -> ! {
    let err = match child_setup(&mut c) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let msg = ToParent::Failed {
        kind: kind_name(err.kind),
        message: err.message.clone(),
        exec: err.exec,
    };
    if c.chan.send(&msg).is_err() {
        eprintln!(
            "berth-run: error: exec in container {}: {}",
            c.id, err.message
        );
    }
    sys::exit_now(match err.exec {
        Some(ExecFailure::NotFound) => 127,
        Some(ExecFailure::NotExecutable) => 126,
        None => 1,
    })
}

fn child_setup(c: &mut Child<'_>) -> std::result::Result<Never, Fail> {
    let p = &c.plan.process;
    sys::set_dumpable(false).map_err(|e| Fail::io("prctl(PR_SET_DUMPABLE)", e))?;
    for (flag, fd) in &c.joins {
        if *flag == plan::CLONE_NEWUSER {
            // None of the caller's supplementary groups comes along (the namespace may deny
            // setgroups, and then they could never be dropped).
            sys::setgroups(&[]).map_err(|e| Fail::io("clearing the supplementary groups", e))?;
        }
        sys::setns(fd.as_fd(), *flag as i32)
            .map_err(|e| Fail::io(format!("joining the {} namespace", ns_name(*flag)), e))?;
    }
    c.joins.clear();
    sys::setsid().map_err(|e| Fail::io("setsid", e))?;

    // The mount namespace's root is the container's root: the cwd resolves inside it. A cwd
    // that still ends up outside it (a leaked directory fd) is refused, as runc does.
    std::env::set_current_dir(&p.cwd)
        .map_err(|e| Fail::io(format!("chdir to cwd {:?}", p.cwd), e))?;
    match std::env::current_dir() {
        Ok(d) if d.is_absolute() => {}
        _ => {
            return Err(Fail::new(
                Kind::PermissionDenied,
                format!("cwd {:?} is outside the container's root", p.cwd),
            ))
        }
    }
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", init::home_of(p.uid)));
    }
    let path = init::resolve_exec(&p.args[0], &env)?;

    for r in &p.rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(|e| init::rlimit_fail(r, e))?;
    }
    // Best effort like runc: a fresh session keyring, not berth-run's.
    let _ = sys::join_session_keyring(None);
    let mut tty = None;
    if p.terminal {
        tty = Some(terminal(c)?);
    }
    let filter = match &c.plan.seccomp {
        Some(s) => Some(seccomp::compile(s).map_err(|m| Fail::new(Kind::InvalidArgument, m))?),
        None => None,
    };
    // In the cgroup from here on.
    match c.chan.recv::<ToChild>() {
        Ok(Some(ToChild::Go)) => {}
        other => {
            return Err(Fail::new(
                Kind::Internal,
                format!("sync: expected Go, got {other:?}"),
            ))
        }
    }
    let notify = c.plan.seccomp.as_ref().is_some_and(seccomp::uses_notify);
    if !p.no_new_privs {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN: load it before the caps drop.
        if let Some(f) = &filter {
            seccomp::load(f).map_err(|m| Fail::new(Kind::Internal, m))?;
            if notify {
                init::hand_over_listener(&mut c.chan, f, &mut true)?;
            }
        }
    }
    if !c.setgroups_allowed && !p.groups.is_empty() {
        return Err(Fail::new(
            berth_kind::Kind::Unsupported,
            "additional groups: the container's user namespace denies setgroups",
        ));
    }
    init::apply_identity(p, c.setgroups_allowed)?;
    sys::umask(p.umask.unwrap_or(0o022));

    sys::cloexec_from(3 + c.preserve_fds).map_err(|e| Fail::io("close_range", e))?;
    for fd in 3..3 + c.preserve_fds as i32 {
        sys::clear_cloexec(fd).map_err(|e| Fail::io(format!("--preserve-fds: fd {fd}"), e))?;
    }
    if let Some(t) = tty.take() {
        for n in 0..3 {
            sys::dup_onto(t.as_fd(), n).map_err(|e| Fail::io("terminal stdio", e))?;
        }
        sys::set_controlling_tty(t.as_fd()).map_err(|e| Fail::io("terminal: TIOCSCTTY", e))?;
    }
    c.chan
        .send(&ToParent::Ready)
        .map_err(|e| Fail::new(Kind::Internal, e.to_string()))?;
    if p.no_new_privs {
        sys::set_no_new_privs().map_err(|e| Fail::io("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
        if let Some(f) = &filter {
            seccomp::load(f).map_err(|m| Fail::new(Kind::Internal, m))?;
            if notify {
                init::hand_over_listener(&mut c.chan, f, &mut true)?;
            }
        }
    }
    sys::reset_signal_dispositions();
    sys::set_signal_mask(&c.sigmask).map_err(|e| Fail::io("restoring the signal mask", e))?;
    Err(init::exec(&path, &p.args, &env, c.stub.as_ref()))
}

/// A pty on the container's devpts (this process is in its mount namespace now): the master
/// goes over --console-socket, the slave becomes stdio.
fn terminal(c: &mut Child<'_>) -> std::result::Result<OwnedFd, Fail> {
    use rustix::fs::{Mode, OFlags};
    let sock = c
        .console
        .take()
        .ok_or_else(|| Fail::new(Kind::InvalidArgument, "a terminal needs --console-socket"))?;
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let ptmx = rustix::fs::open("/dev/pts/ptmx", flags, Mode::empty())
        .or_else(|_| rustix::fs::open("/dev/ptmx", flags, Mode::empty()))
        .map_err(|e| Fail::io("terminal: opening the container's ptmx", e.into()))?;
    let (_, slave) =
        sys::pty_peer(ptmx.as_fd()).map_err(|e| Fail::io("terminal: opening the pty", e))?;
    if let Some((rows, cols)) = c.plan.process.console_size {
        sys::set_window_size(slave.as_fd(), rows, cols)
            .map_err(|e| Fail::io("terminal: consoleSize", e))?;
    }
    sys::send_fd(sock.as_fd(), ptmx.as_fd())
        .map_err(|e| Fail::io("terminal: sending the pty master over --console-socket", e))?;
    Ok(slave)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_order_puts_user_first_and_mount_last() {
        assert_eq!(NAMESPACES[0].0, "user");
        assert_eq!(NAMESPACES[NAMESPACES.len() - 1].0, "mnt");
        assert_eq!(ns_name(plan::CLONE_NEWNET), "net");
    }

    #[test]
    fn our_own_namespaces_are_not_joined() {
        let me = std::process::id() as i32;
        assert!(open_namespaces(me).unwrap().is_empty());
    }
}
