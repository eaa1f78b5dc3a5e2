//! The container's init: the child of `clone`, in its new namespaces, applying the plan and
//! finally executing the container's program. It never returns: it execs or exits, and any
//! failure crosses the sync channel to berth-run as one typed line. Order of steps and the
//! reasons for it are in docs/process-tree.md and docs/security.md.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use berth_kind::Kind;
use berth_sys as sys;
use rustix::fs::{Mode, OFlags};

use crate::error::ExecFailure;
use crate::plan::{self, Plan};
use crate::rootfs;
use crate::seccomp;
use crate::sync::{kind_name, Channel, ToChild, ToParent};

/// A setup failure, as the user will read it.
#[derive(Debug)]
pub(crate) struct Fail {
    pub kind: Kind,
    pub message: String,
    pub exec: Option<ExecFailure>,
}

impl Fail {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Fail {
        Fail {
            kind,
            message: message.into(),
            exec: None,
        }
    }

    pub(crate) fn io(what: impl Into<String>, err: io::Error) -> Fail {
        Fail {
            kind: Kind::of_io(&err),
            message: format!("{}: {}", what.into(), describe(&err)),
            exec: None,
        }
    }
}

/// An I/O error as a lowercase phrase without the `(os error N)` suffix.
pub(crate) fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => text,
    }
}

/// What the init needs besides the plan; every fd is close-on-exec.
pub(crate) struct InitArgs<'a> {
    pub plan: &'a Plan,
    pub bundle: &'a Path,
    pub chan: Channel,
    /// exec.fifo, opened O_PATH before pivot_root.
    pub fifo: OwnedFd,
    /// Namespaces to join (not pid: berth-run joined that before the clone).
    pub joins: Vec<(u64, OwnedFd)>,
    /// Per mount of the plan: the detached idmapped mount berth-run made (see idmap.rs).
    pub idmapped: Vec<Option<OwnedFd>>,
    pub console: Option<UnixStream>,
    pub preserve_fds: u32,
    /// The sealed memfd of the exec stub (see docs/security.md).
    pub stub: Option<OwnedFd>,
    /// (name in the cgroup mount, host directory) of the container's cgroup hierarchies.
    pub cgroups: Vec<(String, PathBuf)>,
    /// The `tasks` file of the container's cgroup in each v1 hierarchy, opened for writing by
    /// berth-run: the init moves itself there first (see [`join_v1_cgroups`]).
    pub cgroup_tasks: Vec<(PathBuf, OwnedFd)>,
    /// With `--systemd-cgroup` the init is in its cgroup only once berth-run sends `Go`
    /// (systemd makes the scope around it; on v1 hierarchies the directories exist only
    /// then), so it waits for `Go` before anything else: its mounts, its cgroup mount and
    /// what they cost in memory happen in the container's cgroup.
    pub go_first: bool,
    pub sigmask: sys::SigSet,
    /// The OCI state (status `running`, pid 0 until the init fills in its own) for
    /// startContainer hooks.
    pub state_json: String,
}

/// Runs the init to the exec of the container's program; exits on failure.
pub(crate) fn run(mut args: InitArgs<'_>) -> ! {
    let err = match setup(&mut args) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let msg = ToParent::Failed {
        kind: kind_name(err.kind),
        message: err.message.clone(),
        exec: err.exec,
    };
    if args.chan.send(&msg).is_err() {
        // Nobody listens any more (after `create` returned): stderr is all that is left.
        let _ = writeln!(io::stderr(), "berth-run: error: {}", err.message);
    }
    let code = match err.exec {
        Some(ExecFailure::NotFound) => 127,
        Some(ExecFailure::NotExecutable) => 126,
        None => 1,
    };
    sys::exit_now(code)
}

enum Never {}

fn setup(a: &mut InitArgs<'_>) -> Result<Never, Fail> {
    let plan = a.plan;
    let p = &plan.process;
    // Other processes (in a joined pid namespace) may not ptrace us or open /proc/<us>/exe.
    sys::set_dumpable(false).map_err(|e| Fail::io("prctl(PR_SET_DUMPABLE)", e))?;
    join_v1_cgroups(std::mem::take(&mut a.cgroup_tasks))?;

    let new_user = plan.namespaces.new & plan::CLONE_NEWUSER != 0;
    let new_cgroupns = plan.namespaces.new & plan::CLONE_NEWCGROUP != 0;
    let mut got_go = false;
    // A joined user namespace: joined below, or the init was cloned inside it (joined_user.rs).
    let user_joined = plan.namespaces.user_joined();
    // With offsets the init makes its time namespace itself (see enter_time_namespace).
    let own_timens = !plan.time_offsets.is_empty();
    if new_user || new_cgroupns || own_timens || a.go_first {
        // Ids must be mapped, and we must be in our cgroup before its namespace is made;
        // the time namespace is entered while we still hold CAP_SYS_ADMIN (below).
        wait_for(&mut a.chan, ToChild::Go, &mut got_go)?;
    }
    if new_user {
        sys::setresgid(0).map_err(|e| Fail::io("setgid 0 in the user namespace", e))?;
        sys::setresuid(0).map_err(|e| Fail::io("setuid 0 in the user namespace", e))?;
    }
    if new_cgroupns {
        // Not in the clone: the namespace's root is the cgroup we are in when it is made.
        sys::unshare(plan::CLONE_NEWCGROUP as i32)
            .map_err(|e| Fail::io("creating the cgroup namespace", e))?;
    }
    for (flag, fd) in &a.joins {
        if *flag == plan::CLONE_NEWUSER {
            // No supplementary group of the host's may come along into the user namespace
            // (it may deny setgroups, and then they could never be dropped).
            sys::setgroups(&[]).map_err(|e| Fail::io("clearing the supplementary groups", e))?;
        }
        sys::setns(fd.as_fd(), *flag as i32)
            .map_err(|e| Fail::io(format!("joining {} namespace", ns_name(*flag)), e))?;
    }
    if user_joined {
        // Root of the joined user namespace (as runc's nsexec does after joining it), which
        // the init entered through the joins above or was cloned in (joined_user.rs).
        sys::setresgid(0).map_err(|e| Fail::io("setgid 0 in the joined user namespace", e))?;
        sys::setresuid(0).map_err(|e| Fail::io("setuid 0 in the joined user namespace", e))?;
        crate::joined_user::check_joined_maps(plan)?;
    }

    sys::setsid().map_err(|e| Fail::io("setsid", e))?;
    if let Some(h) = &plan.hostname {
        sys::sethostname(h).map_err(|e| Fail::io(format!("hostname {h:?}"), e))?;
    }
    if let Some(d) = &plan.domainname {
        sys::setdomainname(d).map_err(|e| Fail::io(format!("domainname {d:?}"), e))?;
    }

    let proc_fd = rootfs::host_proc()?;
    if own_timens {
        enter_time_namespace(&mut a.chan, proc_fd.as_fd(), &mut got_go)?;
    }
    for (key, value) in &plan.sysctls {
        rootfs::write_proc(proc_fd.as_fd(), &format!("sys/{key}"), value)
            .map_err(|e| Fail::io(format!("sysctl {}={value}", key.replace('/', ".")), e))?;
    }
    if let Some(adj) = p.oom_score_adj {
        // "self" is a symlink, which the no-symlink resolution refuses: use our host pid.
        let me = rustix::fs::readlinkat(&proc_fd, "self", Vec::new())
            .map_err(|e| Fail::io("reading /proc/self", e.into()))?;
        let file = format!("{}/oom_score_adj", me.to_string_lossy());
        rootfs::write_proc(proc_fd.as_fd(), &file, &adj.to_string()).map_err(|e| {
            if adj < 0 && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) {
                Fail::new(Kind::PermissionDenied, format!("process.oomScoreAdj {adj}: lowering the OOM score needs CAP_SYS_RESOURCE, {}", cap_resource_note()))
            } else {
                Fail::io(format!("process.oomScoreAdj {adj}"), e)
            }
        })?;
    }

    // The filesystem.
    let root = rootfs::prepare_root(plan)?;
    let new_cgroupns = plan.namespaces.has(plan::CLONE_NEWCGROUP);
    for (i, m) in plan.mounts.iter().enumerate() {
        match a.idmapped.get(i).and_then(Option::as_ref) {
            Some(fd) => rootfs::mount_idmapped(root.as_fd(), m, fd.as_fd())?,
            None => rootfs::mount_one(root.as_fd(), m, a.bundle, &a.cgroups, new_cgroupns)?,
        }
    }
    a.idmapped.clear();
    if plan.has_hooks_before_pivot {
        a.chan
            .send(&ToParent::Hooks)
            .map_err(|e| Fail::new(Kind::Internal, e.to_string()))?;
        wait_for(&mut a.chan, ToChild::Continue, &mut got_go)?;
    }
    rootfs::make_devices(root.as_fd(), plan, plan.namespaces.has(plan::CLONE_NEWUSER))?;
    let mut tty: Option<OwnedFd> = None;
    if p.terminal {
        tty = Some(setup_terminal(a, root.as_fd())?);
    }
    rootfs::mkdir_all(root.as_fd(), &p.cwd)
        .map_err(|e| Fail::io(format!("process.cwd {}", p.cwd), e))?;
    rootfs::mask(root.as_fd(), &plan.masked)?;
    rootfs::readonly(root.as_fd(), &plan.readonly)?;
    if plan.root_readonly {
        rootfs::root_readonly(root.as_fd())?;
    }
    rootfs::pivot(root.as_fd(), plan.no_pivot)?;
    drop(root);
    std::env::set_current_dir(&p.cwd).map_err(|e| Fail::io(format!("process.cwd {}", p.cwd), e))?;

    // The program, resolved inside the new root; HOME from the image's passwd like runc.
    let mut env = p.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(p.uid)));
    }
    let path = resolve_exec(&p.args[0], &env)?;

    // Process attributes.
    for r in &p.rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(|e| rlimit_fail(r, e))?;
    }
    if let Some(pers) = plan.personality {
        sys::personality(pers).map_err(|e| Fail::io("linux.personality", e))?;
    }
    if plan.new_keyring {
        // Best effort like runc: some kernels or seccomp policies refuse keyrings.
        let _ = sys::join_session_keyring(None);
    }
    let filter = match &plan.seccomp {
        Some(s) => Some(seccomp::compile(s).map_err(|m| Fail::new(Kind::InvalidArgument, m))?),
        None => None,
    };
    let notify = plan.seccomp.as_ref().is_some_and(seccomp::uses_notify);
    if !p.no_new_privs {
        // Without no_new_privs the filter must be loaded while we still hold CAP_SYS_ADMIN.
        if let Some(f) = &filter {
            seccomp::load(f).map_err(|m| Fail::new(Kind::Internal, m))?;
            if notify {
                hand_over_listener(&mut a.chan, f, &mut got_go)?;
            }
        }
    }
    set_identity(plan)?;
    if let Some(m) = p.umask {
        sys::umask(m);
    } else {
        sys::umask(0o022);
    }

    // fds: only stdio and the preserved ones survive the exec.
    sys::cloexec_from(3 + a.preserve_fds).map_err(|e| Fail::io("close_range", e))?;
    for fd in 3..3 + a.preserve_fds as i32 {
        sys::clear_cloexec(fd).map_err(|e| Fail::io(format!("--preserve-fds: fd {fd}"), e))?;
    }
    if let Some(t) = tty.take() {
        for n in 0..3 {
            sys::dup_onto(t.as_fd(), n).map_err(|e| Fail::io("terminal stdio", e))?;
        }
        sys::set_controlling_tty(t.as_fd()).map_err(|e| Fail::io("terminal: TIOCSCTTY", e))?;
    }

    if !got_go {
        wait_for(&mut a.chan, ToChild::Go, &mut got_go)?;
    }
    if p.no_new_privs && notify {
        // As runc: a filter with a listener is loaded before Ready, while berth-run still
        // waits to pass the listener on, not after exec.fifo like other filters.
        sys::set_no_new_privs().map_err(|e| Fail::io("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
        if let Some(f) = &filter {
            seccomp::load(f).map_err(|m| Fail::new(Kind::Internal, m))?;
            hand_over_listener(&mut a.chan, f, &mut got_go)?;
        }
    }
    a.chan
        .send(&ToParent::Ready)
        .map_err(|e| Fail::new(Kind::Internal, e.to_string()))?;

    // Block until `start` opens exec.fifo for reading.
    let fifo = rustix::fs::openat(
        &proc_fd,
        format!("self/fd/{}", a.fifo.as_raw_fd()).as_str(),
        OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Fail::io("opening exec.fifo", e.into()))?;
    rustix::io::write(&fifo, b"0").map_err(|e| Fail::io("writing exec.fifo", e.into()))?;
    drop(fifo);
    if !plan.start_container.is_empty() {
        let me = rustix::fs::readlinkat(&proc_fd, "self", Vec::new())
            .map_err(|e| Fail::io("reading /proc/self", e.into()))?;
        let state = a
            .state_json
            .replace("\"pid\":0", &format!("\"pid\":{}", me.to_string_lossy()));
        run_start_container_hooks(&plan.start_container, &state)?;
    }
    drop(proc_fd);

    if p.no_new_privs && !notify {
        sys::set_no_new_privs().map_err(|e| Fail::io("prctl(PR_SET_NO_NEW_PRIVS)", e))?;
        if let Some(f) = &filter {
            seccomp::load(f).map_err(|m| Fail::new(Kind::Internal, m))?;
        }
    }
    sys::reset_signal_dispositions();
    sys::set_signal_mask(&a.sigmask).map_err(|e| Fail::io("restoring the signal mask", e))?;
    Err(exec(&path, &p.args, &env, a.stub.as_ref()))
}

/// Moves the init into its v1 cgroups by writing `0` (itself) to each `tasks` file. A single
/// thread moving itself does not take the kernel's global threadgroup lock, whose write side
/// waits for an RCU grace period (5-15 ms here); berth-run writing the init's pid into
/// `cgroup.procs` does. The init is single-threaded (a fork of single-threaded berth-run), so
/// its one thread is the whole process, and it does this before anything else: nothing of
/// the container runs outside its cgroups.
fn join_v1_cgroups(tasks: Vec<(PathBuf, OwnedFd)>) -> Result<(), Fail> {
    for (path, fd) in tasks {
        rustix::io::write(&fd, b"0").map_err(|e| {
            Fail::io(
                format!("joining cgroup: writing {}", path.display()),
                e.into(),
            )
        })?;
    }
    Ok(())
}

/// SCMP_ACT_NOTIFY: tells berth-run the number of the listener fd of the filter just loaded,
/// and waits until berth-run took it (pidfd_getfd) and gave it to the agent at listenerPath.
/// The fd itself is close-on-exec: the container's program never holds it.
pub(crate) fn hand_over_listener(
    chan: &mut Channel,
    filter: &libseccomp::ScmpFilterContext,
    got_go: &mut bool,
) -> Result<(), Fail> {
    let fd = seccomp::notify_fd(filter).map_err(|m| Fail::new(Kind::Internal, m))?;
    chan.send(&ToParent::SeccompListener { fd })
        .map_err(|e| Fail::new(Kind::Internal, e.to_string()))?;
    wait_for(chan, ToChild::Continue, got_go)
}

/// linux.timeOffsets: a task born in a time namespace freezes its offsets, so with offsets
/// the init was cloned without CLONE_NEWTIME. It makes the namespace now (owned by the user namespace it
/// is in, created or joined), has berth-run write the offsets into
/// `/proc/<init>/timens_offsets`, and then enters it through `time_for_children`.
fn enter_time_namespace(
    chan: &mut Channel,
    proc_fd: std::os::fd::BorrowedFd<'_>,
    got_go: &mut bool,
) -> Result<(), Fail> {
    sys::unshare(plan::CLONE_NEWTIME as i32)
        .map_err(|e| Fail::io("creating the time namespace", e))?;
    chan.send(&ToParent::TimeNamespace)
        .map_err(|e| Fail::new(Kind::Internal, e.to_string()))?;
    wait_for(chan, ToChild::Continue, got_go)?;
    let me = rustix::fs::readlinkat(proc_fd, "self", Vec::new())
        .map_err(|e| Fail::io("reading /proc/self", e.into()))?;
    let path = format!("{}/ns/time_for_children", me.to_string_lossy());
    let ns = rustix::fs::openat(
        proc_fd,
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Fail::io(format!("opening /proc/{path}"), e.into()))?;
    sys::setns(ns.as_fd(), plan::CLONE_NEWTIME as i32)
        .map_err(|e| Fail::io("entering the time namespace", e))
}

/// Waits for `want`; a `Go` that arrives first (berth-run sends it as soon as the cgroup and
/// maps are done) is remembered in `got_go`.
fn wait_for(chan: &mut Channel, want: ToChild, got_go: &mut bool) -> Result<(), Fail> {
    loop {
        match chan.recv::<ToChild>() {
            Ok(Some(ToChild::Go)) if !*got_go => {
                *got_go = true;
                if want == ToChild::Go {
                    return Ok(());
                }
            }
            Ok(Some(m)) if m == want => return Ok(()),
            Ok(other) => {
                return Err(Fail::new(
                    Kind::Internal,
                    format!("sync: expected {want:?}, got {other:?}"),
                ))
            }
            Err(e) => return Err(Fail::new(Kind::Internal, e.to_string())),
        }
    }
}

fn ns_name(flag: u64) -> &'static str {
    match flag {
        plan::CLONE_NEWNS => "mount",
        plan::CLONE_NEWNET => "network",
        plan::CLONE_NEWIPC => "ipc",
        plan::CLONE_NEWUTS => "uts",
        plan::CLONE_NEWUSER => "user",
        plan::CLONE_NEWCGROUP => "cgroup",
        plan::CLONE_NEWPID => "pid",
        plan::CLONE_NEWTIME => "time",
        _ => "unknown",
    }
}

fn cap_resource_note() -> String {
    match sys::capbset_read(24) {
        Ok(false) => "which is not in this host's capability bounding set".into(),
        _ => "which the runtime does not have".into(),
    }
}

pub(crate) fn rlimit_fail(r: &plan::RlimitPlan, e: io::Error) -> Fail {
    if e.raw_os_error() == Some(libc::EPERM) {
        if let Ok((_, hard)) = sys::getrlimit(r.resource) {
            if r.hard > hard {
                return Fail::new(
                    Kind::PermissionDenied,
                    format!("process.rlimits {}: raising the hard limit from {hard} to {} needs CAP_SYS_RESOURCE, {}", r.name, r.hard, cap_resource_note()),
                );
            }
        }
    }
    Fail::io(format!("process.rlimits {}", r.name), e)
}

/// The pty: made on the container's devpts, its master sent over --console-socket.
fn setup_terminal(
    a: &mut InitArgs<'_>,
    root: std::os::fd::BorrowedFd<'_>,
) -> Result<OwnedFd, Fail> {
    let sock = a.console.take().ok_or_else(|| {
        Fail::new(
            Kind::InvalidArgument,
            "process.terminal is true: --console-socket is required",
        )
    })?;
    let ptmx = rootfs::open_in_root(root, "/dev/pts/ptmx", OFlags::RDWR | OFlags::NOCTTY)
        .or_else(|_| rootfs::open_in_root(root, "/dev/ptmx", OFlags::RDWR | OFlags::NOCTTY))
        .or_else(|_| {
            rustix::fs::open(
                "/dev/ptmx",
                OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io::Error::from)
        })
        .map_err(|e| Fail::io("terminal: opening ptmx", e))?;
    let (_, slave) =
        sys::pty_peer(ptmx.as_fd()).map_err(|e| Fail::io("terminal: opening the pty", e))?;
    if let Some((rows, cols)) = a.plan.process.console_size {
        sys::set_window_size(slave.as_fd(), rows, cols)
            .map_err(|e| Fail::io("terminal: consoleSize", e))?;
    }
    rootfs::bind_console(root, slave.as_fd())?;
    sys::send_fd(sock.as_fd(), ptmx.as_fd())
        .map_err(|e| Fail::io("terminal: sending the pty master over --console-socket", e))?;
    Ok(slave)
}

fn set_identity(plan: &Plan) -> Result<(), Fail> {
    // A joined user namespace says itself whether setgroups works there ("deny" when its
    // maps were written without it); the host's groups were cleared before joining it.
    let setgroups_allowed = if plan.namespaces.user_joined() {
        let allowed =
            std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "allow");
        if !allowed && !plan.process.groups.is_empty() {
            return Err(Fail::new(
                Kind::Unsupported,
                "process.user.additionalGids: the joined user namespace denies setgroups",
            ));
        }
        allowed
    } else {
        !plan.namespaces.has(plan::CLONE_NEWUSER) || !plan.gid_map.is_empty()
    };
    apply_identity(&plan.process, setgroups_allowed)
}

/// Bounding set, groups, gid, uid, capabilities and ambient set of a process (the init's or
/// an `exec`'s), in the order docs/security.md gives.
pub(crate) fn apply_identity(p: &plan::ProcessPlan, setgroups_allowed: bool) -> Result<(), Fail> {
    let caps = &p.caps;
    // Bounding set first: dropping needs CAP_SETPCAP, which the later capset may remove.
    for cap in 0..64u32 {
        match sys::capbset_read(cap) {
            Ok(true) if caps.bounding & (1 << cap) == 0 => sys::capbset_drop(cap).map_err(|e| {
                Fail::io(
                    format!("dropping {} from the bounding set", crate::caps::name(cap)),
                    e,
                )
            })?,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if setgroups_allowed {
        sys::setgroups(&p.groups).map_err(|e| Fail::io("process.user.additionalGids", e))?;
    }
    sys::setresgid(p.gid).map_err(|e| Fail::io(format!("process.user.gid {}", p.gid), e))?;
    sys::set_keepcaps(true).map_err(|e| Fail::io("prctl(PR_SET_KEEPCAPS)", e))?;
    sys::setresuid(p.uid).map_err(|e| Fail::io(format!("process.user.uid {}", p.uid), e))?;
    sys::set_keepcaps(false).map_err(|e| Fail::io("prctl(PR_SET_KEEPCAPS)", e))?;
    sys::capset(sys::CapSets {
        effective: caps.effective,
        permitted: caps.permitted,
        inheritable: caps.inheritable,
    })
    .map_err(|e| Fail::io("setting capabilities (capset)", e))?;
    sys::ambient_clear_all().map_err(|e| Fail::io("clearing ambient capabilities", e))?;
    for cap in 0..64u32 {
        if caps.ambient & (1 << cap) != 0 {
            sys::ambient_raise(cap)
                .map_err(|e| Fail::io(format!("raising ambient {}", crate::caps::name(cap)), e))?;
        }
    }
    Ok(())
}

/// startContainer hooks, inside the container (paths resolve in its root), each with the
/// state on stdin and its timeout; a failure stops the container before its program runs.
fn run_start_container_hooks(hooks: &[crate::spec::Hook], state: &str) -> Result<(), Fail> {
    use std::io::Write as _;
    use std::os::unix::process::CommandExt as _;
    for h in hooks {
        let what = format!("startContainer hook {}", h.path);
        let mut cmd = std::process::Command::new(&h.path);
        if let Some((arg0, rest)) = h.args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
        cmd.env_clear()
            .envs(h.env.iter().filter_map(|e| e.split_once('=')))
            .stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| Fail::io(what.clone(), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(state.as_bytes());
        }
        let deadline = h
            .timeout
            .filter(|t| *t > 0)
            .map(|t| std::time::Instant::now() + std::time::Duration::from_secs(t as u64));
        loop {
            match child.try_wait().map_err(|e| Fail::io(what.clone(), e))? {
                Some(st) if st.success() => break,
                Some(st) => {
                    return Err(Fail::new(
                        Kind::FailedPrecondition,
                        format!("{what}: exited with {st}"),
                    ))
                }
                None => {}
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Fail::new(
                    Kind::FailedPrecondition,
                    format!("{what}: timed out"),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
    Ok(())
}

/// The home directory of a uid in the container's /etc/passwd, or `/`.
pub(crate) fn home_of(uid: u32) -> String {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map_or_else(|| "/".to_string(), |f| f[5].to_string())
}

/// Finds the program as execve would, in the container's root and PATH.
pub(crate) fn resolve_exec(arg0: &str, env: &[String]) -> Result<PathBuf, Fail> {
    let check = |p: &Path| -> Option<Result<PathBuf, Fail>> {
        let meta = std::fs::metadata(p).ok()?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            Some(Ok(p.to_path_buf()))
        } else {
            Some(Err(Fail {
                kind: Kind::PermissionDenied,
                message: format!(
                    "exec {arg0}: {}: permission denied (not an executable file)",
                    p.display()
                ),
                exec: Some(ExecFailure::NotExecutable),
            }))
        }
    };
    if arg0.contains('/') {
        return check(Path::new(arg0)).unwrap_or_else(|| {
            Err(Fail {
                kind: Kind::NotFound,
                message: format!("exec {arg0}: no such file or directory"),
                exec: Some(ExecFailure::NotFound),
            })
        });
    }
    let path_var = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("");
    let mut first_bad = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        match check(&Path::new(dir).join(arg0)) {
            Some(Ok(p)) => return Ok(p),
            Some(Err(f)) if first_bad.is_none() => first_bad = Some(f),
            _ => {}
        }
    }
    Err(first_bad.unwrap_or(Fail {
        kind: Kind::NotFound,
        message: format!("exec {arg0}: executable file not found in $PATH"),
        exec: Some(ExecFailure::NotFound),
    }))
}

pub(crate) fn exec(path: &Path, args: &[String], env: &[String], stub: Option<&OwnedFd>) -> Fail {
    let c = |s: &str| CString::new(s).expect("plan checked for NUL");
    let cpath = c(&path.to_string_lossy());
    let envp: Vec<CString> = env.iter().map(|e| c(e)).collect();
    let err = match stub {
        Some(stub) => {
            // argv[0] "\x01berth-exec" tells the stub it was called by us, not as a #! interpreter.
            let mut argv = vec![c("\x01berth-exec"), cpath.clone()];
            argv.extend(args.iter().map(|a| c(a)));
            sys::exec_fd(stub.as_fd(), &argv, &envp)
        }
        None => {
            let argv: Vec<CString> = args.iter().map(|a| c(a)).collect();
            sys::exec_path(&cpath, &argv, &envp)
        }
    };
    let exec = if err.kind() == io::ErrorKind::NotFound {
        ExecFailure::NotFound
    } else {
        ExecFailure::NotExecutable
    };
    Fail {
        kind: Kind::of_io(&err),
        message: format!("exec {}: {}", path.display(), describe(&err)),
        exec: Some(exec),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_as_one_lowercase_phrase() {
        let e = io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(describe(&e), "no such file or directory");
        let f = Fail::io("mount /data: source /nope", e);
        assert_eq!(
            f.message,
            "mount /data: source /nope: no such file or directory"
        );
        assert_eq!(f.kind, Kind::NotFound);
    }

    #[test]
    fn programs_resolve_through_path_or_say_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("prog");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, b"x").unwrap();
        let env = vec![format!("PATH=/nonexistent:{}", dir.path().display())];
        assert_eq!(resolve_exec("prog", &env).unwrap(), exe);
        let nf = resolve_exec("nope", &env).unwrap_err();
        assert_eq!(nf.exec, Some(ExecFailure::NotFound));
        let ne = resolve_exec(plain.to_str().unwrap(), &env).unwrap_err();
        assert_eq!(ne.exec, Some(ExecFailure::NotExecutable));
    }
}
