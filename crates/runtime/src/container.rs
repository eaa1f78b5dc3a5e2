//! The lifecycle: create, start, run, state, kill, delete. This is berth-run's side of the
//! process tree in docs/process-tree.md.

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_cgroup::{Cgroup, Layout};
use berth_sys as sys;
use rustix::fs::{Mode, OFlags};

use crate::error::{Error, Result};
use crate::hooks;
use crate::init::{self, InitArgs};
use crate::plan::{self, Plan, PlanOptions};
use crate::spec::{Hooks, Spec};
use crate::state::{self, check_id, Report, State, Status, FIFO};
use crate::sync::{kind_from_name, Channel, ToChild, ToParent};
use crate::systemd_cgroup;

/// Options of `create` and `run`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: u32,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
}

/// A state directory (`/run/berth` by default) holding one directory per container.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    /// `--systemd-cgroup`: new containers get a systemd scope as their cgroup.
    systemd_cgroup: bool,
}

/// Removes what a failed create made, in reverse order, unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    child: Option<i32>,
    /// A systemd scope started for the child (`--systemd-cgroup`).
    systemd_unit: Option<String>,
}

impl Undo {
    fn disarm(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.child = None;
        self.systemd_unit = None;
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::wait_child(pid, true);
        }
        if let Some(unit) = self.systemd_unit.take() {
            if let Err(e) = systemd_cgroup::stop(&unit) {
                tracing::warn!("{e}");
            }
        }
        if let Some(cg) = self.cgroup.take() {
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A container whose init is blocked on exec.fifo, still our child.
struct Launched {
    pid: i32,
    state: State,
    dir: PathBuf,
    /// The signal mask before berth-run blocked everything for the clone.
    old_mask: sys::SigSet,
    /// The sync channel, kept so that `run` can report why an init that died before start
    /// failed (its last message is still in the socket).
    chan: Channel,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Runtime {
        Runtime {
            root: root.into(),
            systemd_cgroup: false,
        }
    }

    /// With `true`, `create` and `run` make the container's cgroup a transient systemd
    /// scope (systemd_cgroup.rs), as runc's `--systemd-cgroup` does.
    pub fn with_systemd_cgroup(mut self, on: bool) -> Runtime {
        self.systemd_cgroup = on;
        self
    }

    /// Whether `--systemd-cgroup` was given (`restore` takes it in its options).
    pub fn systemd_cgroup(&self) -> bool {
        self.systemd_cgroup
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub(crate) fn load(&self, id: &str) -> Result<(State, PathBuf)> {
        check_id(id)?;
        let dir = self.dir(id);
        Ok((State::load(&dir, id)?, dir))
    }

    /// `create`: the container exists, its init blocked until `start`.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<i32> {
        let launched = self.launch(id, opts)?;
        sys::set_signal_mask(&launched.old_mask)
            .map_err(|e| Error::io("restoring the signal mask", e))?;
        Ok(launched.pid)
    }

    /// `run`: create and start; in the foreground, wait and return the container's status
    /// (128+N for signal N), then delete it.
    pub fn run(&self, id: &str, opts: &CreateOptions, detach: bool) -> Result<i32> {
        let mut launched = self.launch(id, opts)?;
        if let Err(e) = self.start_state(&launched.state, &launched.dir) {
            // The init is still our child: if it already ended, say how, and what it sent.
            let e = match sys::wait_child(launched.pid, false) {
                Ok(Some(exit)) => init_ended_before_start(&mut launched.chan, exit, e),
                _ => {
                    let _ = sys::kill(launched.pid, libc::SIGKILL);
                    let _ = sys::wait_child(launched.pid, true);
                    e
                }
            };
            let _ = self.destroy(&launched.state, &launched.dir, false, true);
            return Err(e);
        }
        // From here a failing init (an exec failure) finds nobody listening and says so on
        // stderr itself.
        drop(launched.chan);
        if detach {
            sys::set_signal_mask(&launched.old_mask)
                .map_err(|e| Error::io("restoring the signal mask", e))?;
            return Ok(0);
        }
        let exit = loop {
            match sys::wait_signal(200).map_err(|e| Error::io("waiting for signals", e))? {
                Some(sig) if sig != libc::SIGCHLD => {
                    let _ = sys::kill(launched.pid, sig);
                }
                _ => {
                    if let Some(exit) = sys::wait_child(launched.pid, false)
                        .map_err(|e| Error::io("waiting for the container", e))?
                    {
                        break exit;
                    }
                }
            }
        };
        self.destroy(&launched.state, &launched.dir, true, false)?;
        Ok(exit.status())
    }

    fn launch(&self, id: &str, opts: &CreateOptions) -> Result<Launched> {
        check_id(id)?;
        let bundle = fs::canonicalize(&opts.bundle).map_err(|source| Error::File {
            what: "bundle",
            path: opts.bundle.clone(),
            source,
        })?;
        let config = bundle.join("config.json");
        let text = fs::read(&config).map_err(|source| Error::File {
            what: "reading",
            path: config.clone(),
            source,
        })?;
        let spec: Spec = serde_json::from_slice(&text).map_err(|e| Error::Spec {
            file: config.display().to_string(),
            why: e.to_string(),
        })?;
        let mut plan = plan::build(
            &spec,
            &bundle,
            &PlanOptions {
                no_pivot: opts.no_pivot,
                no_new_keyring: opts.no_new_keyring,
                last_cap: last_cap(),
            },
        )?;
        if !plan.rootfs.is_dir() {
            return Err(Error::Spec {
                file: config.display().to_string(),
                why: format!("root.path {} is not a directory", plan.rootfs.display()),
            });
        }
        if plan.process.terminal && opts.console_socket.is_none() {
            return Err(Error::Spec {
                file: config.display().to_string(),
                why: "process.terminal is true: use --console-socket".into(),
            });
        }
        for fd in 3..3 + opts.preserve_fds as i32 {
            if fs::metadata(format!("/proc/self/fd/{fd}")).is_err()
                && fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_err()
            {
                return Err(Error::Spec {
                    file: "--preserve-fds".into(),
                    why: format!("fd {fd} is not open"),
                });
            }
        }
        let linux = spec.linux.clone().unwrap_or_default();
        let hooks_spec = spec.hooks.clone().unwrap_or_default();

        // The state directory: its existence is the lock on the id.
        fs::create_dir_all(&self.root).map_err(|source| Error::File {
            what: "creating state root",
            path: self.root.clone(),
            source,
        })?;
        let dir = self.dir(id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()))
            }
            Err(source) => {
                return Err(Error::File {
                    what: "creating",
                    path: dir,
                    source,
                })
            }
        }
        let mut undo = Undo {
            dir: Some(dir.clone()),
            cgroup: None,
            child: None,
            systemd_unit: None,
        };
        let fifo_path = dir.join(FIFO);
        let cfifo = CString::new(fifo_path.to_string_lossy().as_bytes()).expect("no NUL");
        sys::mkfifo(&cfifo, 0o622).map_err(|source| Error::File {
            what: "creating",
            path: fifo_path.clone(),
            source,
        })?;
        // 0622 whatever the umask: an init that dropped to another uid must still open it.
        std::fs::set_permissions(
            &fifo_path,
            std::os::unix::fs::PermissionsExt::from_mode(0o622),
        )
        .map_err(|source| Error::File {
            what: "chmod",
            path: fifo_path.clone(),
            source,
        })?;
        let fifo = rustix::fs::open(&fifo_path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::File {
                what: "opening",
                path: fifo_path.clone(),
                source: e.into(),
            })?;

        // The cgroup, with its limits, before any container process exists.
        let layout = Layout::detect().map_err(|source| Error::Cgroup {
            path: String::new(),
            source,
        })?;
        // With --systemd-cgroup the scope is made by systemd around the init, once it exists
        // (below, after the clone); its limits are applied then.
        let scope = if self.systemd_cgroup {
            Some(systemd_cgroup::scope_for(
                &spec, &linux, id, &config, &layout,
            )?)
        } else {
            None
        };
        let cg_path = match &scope {
            Some(s) => Ok(s.cgroup.clone()),
            None => berth_cgroup::resolve_path(linux.cgroups_path.as_deref(), id),
        }
        .map_err(|source| Error::Cgroup {
            path: String::new(),
            source,
        })?;
        let cgroup = Cgroup::at(&layout, &cg_path);
        let cg_err = |source| Error::Cgroup {
            path: cg_path.clone(),
            source,
        };
        if scope.is_none() {
            cgroup.create(&layout).map_err(cg_err)?;
            undo.cgroup = Some(cgroup.clone());
            apply_limits(&cgroup, &layout, linux.resources.as_ref()).map_err(cg_err)?;
        }
        if layout.is_v2() {
            for m in &mut plan.mounts {
                if m.fstype.as_deref() == Some("cgroup") {
                    m.fstype = Some("cgroup2".into());
                }
            }
        }
        let cgroup_views = cgroup_views(&layout, &cgroup);
        // The init joins its v1 cgroups itself through these (init.rs, join_v1_cgroups).
        // With --systemd-cgroup the v1 directories exist only once systemd made the scope: the
        // init is moved there from here (below).
        let cgroup_tasks = match &scope {
            Some(_) => Vec::new(),
            None => open_v1_tasks(&cgroup)?,
        };

        // Namespaces to join: opened here, with the host's paths.
        let mut joins = Vec::new();
        for (flag, path) in &plan.namespaces.join {
            let fd = rustix::fs::open(
                path.as_str(),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::File {
                what: "opening namespace",
                path: PathBuf::from(path),
                source: e.into(),
            })?;
            check_namespace_type(*flag, path, &fd)?;
            joins.push((*flag, fd));
        }
        let mounts_proc = plan
            .mounts
            .iter()
            .any(|m| m.fstype.as_deref() == Some("proc"));
        crate::joined_user::check_pid_owner(&joins, &plan.namespaces.join, mounts_proc)?;
        type Joins = Vec<(u64, OwnedFd)>;
        let (pid_joins, mut joins): (Joins, Joins) = joins
            .into_iter()
            .partition(|(f, _)| *f == plan::CLONE_NEWPID || *f == plan::CLONE_NEWTIME);
        // A joined user namespace with new other namespaces: a helper clones the init inside
        // it (joined_user.rs) and joins the pid and time namespaces itself, first.
        let helper =
            plan.namespaces.user_joined() && plan.namespaces.new & !plan::CLONE_NEWPID != 0;
        // Idmapped mounts are made here, on the host (see idmap.rs); the init moves them.
        let idmapped = crate::idmap::prepare(&plan, &bundle)?;
        let console = match &opts.console_socket {
            Some(p) => Some(UnixStream::connect(p).map_err(|source| Error::File {
                what: "connecting to console socket",
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let stub =
            sys::exec_stub_memfd().map_err(|e| Error::io("creating the exec stub memfd", e))?;
        let (parent_chan, child_chan) = Channel::pair()?;
        let state_json = serde_json::to_string(&Report {
            oci_version: spec.oci_version.clone(),
            id: id.to_string(),
            status: Status::Running,
            pid: 0,
            bundle: bundle.clone(),
            rootfs: plan.rootfs.clone(),
            created: String::new(),
            owner: String::new(),
            annotations: spec.annotations.clone(),
        })
        .expect("state serialises");

        // With a v2 hierarchy the init is born in its cgroup there (clone3 with
        // CLONE_INTO_CGROUP) and never runs outside it; where the kernel (or a seccomp filter)
        // refuses, it is forked and then moved through cgroup.procs.
        let cgroup_fd = match &scope {
            Some(_) => None,
            None => cgroup.v2_dir_fd().map_err(cg_err)?,
        };
        // setns(pid) and setns(time) apply to our next child, the init, and to every later
        // one: our own are reopened first and re-entered right after the clone, so that
        // hooks and other helpers of ours are not born in the container's namespaces.
        let own_ns = if helper {
            Vec::new()
        } else {
            own_namespaces(&pid_joins)?
        };
        for (flag, fd) in pid_joins.iter().filter(|_| !helper) {
            sys::setns(fd.as_fd(), *flag as i32)
                .map_err(|e| Error::io("joining the pid or time namespace", e))?;
        }
        let old_mask = sys::block_all_signals().map_err(|e| Error::io("blocking signals", e))?;
        // The cgroup namespace is made by the init once it is in its cgroup (see init.rs).
        // With linux.timeOffsets the time namespace is not made in the clone either: a task
        // born in it freezes its offsets, so the init unshares it and enters it only after
        // berth-run wrote them (ToParent::TimeNamespace).
        let mut clone_flags = plan.namespaces.new & !plan::CLONE_NEWCGROUP;
        if !plan.time_offsets.is_empty() {
            clone_flags &= !plan::CLONE_NEWTIME;
        }

        // A joined user namespace: the init is cloned inside it by a helper (joined_user.rs),
        // so it is already there and does not join it again.
        // Joining only a user namespace (with at most a new pid one) needs no helper: the
        // init joins it first thing, as before.
        let user_join = joins
            .iter()
            .position(|(f, _)| *f == plan::CLONE_NEWUSER)
            .filter(|_| helper)
            .map(|i| joins.remove(i).1);
        let clone_what = || format!("clone with namespaces {:#x}", plan.namespaces.new);
        let forked = match (&cgroup_fd, &user_join) {
            (_, Some(u)) => crate::joined_user::clone_in(u.as_fd(), &pid_joins, clone_flags)
                .map(|f| (f, false))
                .map_err(|f| (f.what, f.source)),
            (Some(fd), None) => match sys::clone_into_cgroup(clone_flags, fd.as_fd()) {
                Err(e) if sys::clone3_unavailable(&e) => {
                    tracing::debug!("clone3 with CLONE_INTO_CGROUP refused ({e}): forking");
                    sys::clone_process(clone_flags).map(|f| (f, false))
                }
                other => other.map(|f| (f, true)),
            }
            .map_err(|e| (clone_what(), e)),
            (None, None) => sys::clone_process(clone_flags)
                .map(|f| (f, false))
                .map_err(|e| (clone_what(), e)),
        };
        drop(user_join);
        let (pid, born_in_v2) = match forked {
            Err((what, e)) => {
                let _ = sys::set_signal_mask(&old_mask);
                return Err(Error::io(what, e));
            }
            Ok((sys::Forked::Child, _)) => {
                drop(parent_chan);
                drop(cgroup_fd);
                drop(own_ns);
                init::run(InitArgs {
                    plan: &plan,
                    bundle: &bundle,
                    chan: child_chan,
                    fifo,
                    joins,
                    idmapped,
                    console,
                    preserve_fds: opts.preserve_fds,
                    stub,
                    cgroups: cgroup_views,
                    cgroup_tasks,
                    go_first: scope.is_some(),
                    sigmask: old_mask,
                    state_json,
                })
            }
            Ok((sys::Forked::Parent(pid), born_in_v2)) => (pid, born_in_v2),
        };
        drop(cgroup_fd);
        undo.child = Some(pid);
        drop(child_chan);
        drop(console);
        let mut chan = parent_chan;
        let restore = |e: Error| {
            let _ = sys::set_signal_mask(&old_mask);
            e
        };
        for (flag, fd) in &own_ns {
            sys::setns(fd.as_fd(), *flag as i32)
                .map_err(|e| restore(Error::io("re-entering our own pid or time namespace", e)))?;
        }
        drop(own_ns);

        if plan.namespaces.new & plan::CLONE_NEWUSER != 0 {
            write_id_maps(pid, &plan).map_err(restore)?;
        }
        drop(cgroup_tasks);
        // The v1 hierarchies the init joins itself; the v2 one it was born in, unless clone3
        // was refused: then it is moved there (and, harmlessly, into v1 again) from here.
        // With --systemd-cgroup: systemd moves the init into its new scope, then the limits.
        let moved = if let Some(scope) = &scope {
            if let Err(e) = systemd_cgroup::start(scope, pid, linux.resources.as_ref()) {
                // Killed before the channel closes, or it prints a second error line.
                let _ = sys::kill(pid, libc::SIGKILL);
                return Err(restore(e));
            }
            undo.systemd_unit = Some(scope.unit.clone());
            // v1 controllers (as runc's legacy manager): systemd made the scope in name=systemd
            // and the hierarchies it manages; the same path in every other one, the init in
            // all of them, then the limits in every hierarchy.
            let joined = if layout.is_v2() {
                Ok(())
            } else {
                undo.cgroup = Some(cgroup.clone());
                cgroup.create(&layout).and_then(|()| cgroup.add(pid))
            };
            joined.and_then(|()| apply_limits(&cgroup, &layout, linux.resources.as_ref()))
        } else if born_in_v2 || cgroup.v2.is_none() {
            Ok(())
        } else {
            cgroup.add(pid)
        };
        moved.map_err(|source| {
            let _ = sys::kill(pid, libc::SIGKILL);
            restore(Error::Cgroup {
                path: cg_path.clone(),
                source,
            })
        })?;
        if chan.send(&ToChild::Go).is_err() {
            // The init already gave up: its message (if any) is still in the socket.
            return Err(restore(match chan.recv::<ToParent>() {
                Ok(Some(ToParent::Failed {
                    kind,
                    message,
                    exec,
                })) => Error::Setup {
                    kind: kind_from_name(&kind),
                    message,
                    exec,
                },
                _ => child_failure(&mut chan, pid),
            }));
        }

        let mut st = State::of_init(&spec, id, pid, &bundle, &plan.rootfs, &cg_path, &hooks_spec);
        st.systemd_unit = scope.map(|s| s.unit);
        loop {
            match chan.recv::<ToParent>().map_err(restore)? {
                Some(ToParent::Hooks) => {
                    run_create_hooks(&hooks_spec, &st.report(Status::Creating)).map_err(restore)?;
                    chan.send(&ToChild::Continue).map_err(restore)?;
                }
                // On failure the init is killed before the channel closes: it must not
                // print a second error line about the closed channel.
                Some(ToParent::SeccompListener { fd }) => {
                    let report = st.report(Status::Creating);
                    let sent = match plan.seccomp.as_ref() {
                        Some(s) => crate::seccomp::send_listener(pid, fd, s, &bundle, &report),
                        None => Err(Error::io(
                            "sync: a seccomp listener without a profile",
                            std::io::ErrorKind::InvalidData.into(),
                        )),
                    };
                    if let Err(e) = sent {
                        let _ = sys::kill(pid, 9);
                        return Err(restore(e));
                    }
                    chan.send(&ToChild::Continue).map_err(restore)?;
                }
                Some(ToParent::TimeNamespace) => {
                    let written = if plan.time_offsets.is_empty() {
                        Ok(())
                    } else {
                        write_time_offsets(pid, &plan.time_offsets)
                    };
                    if let Err(e) = written {
                        let _ = sys::kill(pid, 9);
                        return Err(restore(e));
                    }
                    chan.send(&ToChild::Continue).map_err(restore)?;
                }
                Some(ToParent::Ready) => break,
                Some(ToParent::Failed {
                    kind,
                    message,
                    exec,
                }) => {
                    return Err(restore(Error::Setup {
                        kind: kind_from_name(&kind),
                        message,
                        exec,
                    }));
                }
                None => return Err(restore(child_failure(&mut chan, pid))),
            }
        }
        st.save(&dir).map_err(restore)?;
        if let Some(p) = &opts.pid_file {
            write_pid_file(p, pid).map_err(restore)?;
        }
        undo.disarm();
        Ok(Launched {
            pid,
            state: st,
            dir,
            old_mask,
            chan,
        })
    }

    /// `start`: unblocks the init so that it execs the container's program.
    pub fn start(&self, id: &str) -> Result<()> {
        let (st, dir) = self.load(id)?;
        self.start_state(&st, &dir)
    }

    fn start_state(&self, st: &State, dir: &Path) -> Result<()> {
        let not_created = |status: Status| Error::State {
            id: st.id.clone(),
            status: status.as_str().into(),
            why: ": only a created container can be started",
        };
        // The pidfd first, then one status check: a pidfd opened before the start time
        // matched is the init's, so a later death shows on it (never on a reused pid). Once
        // the fifo is open the program may run and exit at once.
        let pidfd = match sys::pidfd_open(st.pid) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
                return Err(not_created(Status::Stopped))
            }
            Err(e) => return Err(Error::io(format!("pidfd_open {}", st.pid), e)),
        };
        let status = st.status(dir);
        if status != Status::Created {
            return Err(not_created(status));
        }
        let fifo_path = dir.join(FIFO);
        let fifo = match rustix::fs::open(
            &fifo_path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // Removed since the check: another `start` won; report what the container is now.
            Err(rustix::io::Errno::NOENT) => return Err(not_created(st.status(dir))),
            Err(e) => {
                return Err(Error::File {
                    what: "opening",
                    path: fifo_path.clone(),
                    source: e.into(),
                })
            }
        };
        loop {
            if sys::poll_readable(fifo.as_fd(), 20)
                .map_err(|e| Error::io("waiting on exec.fifo", e))?
            {
                let mut b = [0u8; 1];
                match rustix::io::read(&fifo, &mut b) {
                    Ok(1) => break,
                    Ok(_) => {}
                    Err(e) if e == rustix::io::Errno::AGAIN => continue,
                    Err(e) => return Err(Error::io("reading exec.fifo", e.into())),
                }
            }
            if sys::poll_readable(pidfd.as_fd(), 0).map_err(|e| Error::io("polling the init", e))? {
                return Err(Error::State {
                    id: st.id.clone(),
                    status: "stopped".into(),
                    why: ": its init exited before it could start",
                });
            }
        }
        fs::remove_file(&fifo_path).map_err(|source| Error::File {
            what: "removing",
            path: fifo_path,
            source,
        })?;
        if let Err(e) = hooks::run("poststart", &st.poststart, &st.report(Status::Running)) {
            tracing::warn!("{e}");
        }
        Ok(())
    }

    /// `state`: the OCI state document.
    pub fn state(&self, id: &str) -> Result<Report> {
        let (st, dir) = self.load(id)?;
        Ok(st.report(st.status(&dir)))
    }

    /// `kill`: sends a signal to the init (or, with `all`, to every process in the cgroup).
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let (st, dir) = self.load(id)?;
        let status = st.status(&dir);
        if status == Status::Stopped {
            return Err(Error::State {
                id: id.into(),
                status: "stopped".into(),
                why: ": nothing to signal",
            });
        }
        if all {
            let layout = Layout::detect().map_err(|source| Error::Cgroup {
                path: st.cgroup_path.clone(),
                source,
            })?;
            let cg = Cgroup::at(&layout, &st.cgroup_path);
            for pid in cg.procs().map_err(|source| Error::Cgroup {
                path: st.cgroup_path.clone(),
                source,
            })? {
                let _ = sys::kill(pid, signal);
            }
        } else {
            signal_init(&st, signal)?;
        }
        // A v1 frozen task does not act on SIGKILL until thawed: thaw after it, as runc does.
        if status == Status::Paused && signal == libc::SIGKILL {
            let _ = container_cgroup(&st).map(|cg| cg.thaw());
        }
        Ok(())
    }

    /// `pause`: freezes a running container's cgroup (runc: "container not running" otherwise).
    pub fn pause(&self, id: &str) -> Result<()> {
        let (st, dir) = self.load(id)?;
        let status = st.status(&dir);
        if status != Status::Running {
            return Err(Error::State {
                id: id.into(),
                status: status.as_str().into(),
                why: ": container not running",
            });
        }
        container_cgroup(&st)?
            .freeze()
            .map_err(|source| Error::Cgroup {
                path: st.cgroup_path.clone(),
                source,
            })
    }

    /// `resume`: thaws a paused container's cgroup (runc: "container not paused" otherwise).
    pub fn resume(&self, id: &str) -> Result<()> {
        let (st, dir) = self.load(id)?;
        let status = st.status(&dir);
        if status != Status::Paused {
            return Err(Error::State {
                id: id.into(),
                status: status.as_str().into(),
                why: ": container not paused",
            });
        }
        container_cgroup(&st)?
            .thaw()
            .map_err(|source| Error::Cgroup {
                path: st.cgroup_path.clone(),
                source,
            })
    }

    /// `delete`: removes a stopped (or, with `force`, any) container: its init, cgroup and state.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let (st, dir) = self.load(id)?;
        match st.status(&dir) {
            status @ (Status::Running | Status::Paused) if !force => {
                return Err(Error::State {
                    id: id.into(),
                    status: status.as_str().into(),
                    why: ": stop it first or use --force",
                })
            }
            Status::Stopped => {}
            status => {
                let _ = signal_init(&st, libc::SIGKILL);
                if status == Status::Paused {
                    let _ = container_cgroup(&st).map(|cg| cg.thaw());
                }
                wait_gone(&st)?;
            }
        }
        self.destroy(&st, &dir, true, force)
    }

    /// Kills what is left in the cgroup, stops the systemd scope, runs poststop hooks,
    /// removes cgroup and state. With `force`, a systemd that cannot be reached is warned
    /// about and the rest goes on.
    fn destroy(&self, st: &State, dir: &Path, hooks: bool, force: bool) -> Result<()> {
        let layout = Layout::detect().map_err(|source| Error::Cgroup {
            path: st.cgroup_path.clone(),
            source,
        })?;
        let cg = Cgroup::at(&layout, &st.cgroup_path);
        // Still frozen (paused, or the init died with others left frozen): thaw after the
        // first SIGKILL, or the killed tasks never exit and the cgroup cannot be removed.
        let mut frozen = cg.is_frozen().unwrap_or(false);
        for _ in 0..100 {
            let procs = cg.procs().unwrap_or_default();
            if procs.is_empty() {
                break;
            }
            for pid in procs {
                let _ = sys::kill(pid, libc::SIGKILL);
            }
            if frozen {
                let _ = cg.thaw();
                frozen = false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if frozen {
            let _ = cg.thaw();
        }
        if let Some(unit) = &st.systemd_unit {
            // As runc: systemd stops the scope (and removes its cgroup); the removal below
            // then finds nothing or an empty directory. Before the hooks: a delete that fails
            // here keeps the state, and its retry must not run the hooks twice.
            match systemd_cgroup::stop(unit) {
                Ok(()) => {}
                Err(e)
                    if force
                        && matches!(
                            berth_kind::HasKind::kind(&e),
                            berth_kind::Kind::Unavailable | berth_kind::Kind::NotFound
                        ) =>
                {
                    tracing::warn!("{e}; deleting the container anyway (--force)");
                }
                Err(e) => return Err(e),
            }
        }
        let hook_result = if hooks {
            hooks::run("poststop", &st.poststop, &st.report(Status::Stopped))
        } else {
            Ok(())
        };
        cg.remove().map_err(|source| Error::Cgroup {
            path: st.cgroup_path.clone(),
            source,
        })?;
        fs::remove_dir_all(dir).map_err(|source| Error::File {
            what: "removing",
            path: dir.to_path_buf(),
            source,
        })?;
        if let Err(e) = hook_result {
            tracing::warn!("{e}");
        }
        Ok(())
    }
}

/// Writes `linux.resources` and, on a pure v2 host, the device eBPF program to a cgroup
/// that exists.
fn apply_limits(
    cgroup: &Cgroup,
    layout: &Layout,
    res: Option<&berth_cgroup::Resources>,
) -> std::result::Result<(), berth_cgroup::Error> {
    if let Some(res) = res {
        cgroup.apply(res)?;
    }
    if layout.is_v2() {
        // No devices controller on v2: the allow-list is an eBPF program, attached before
        // the container's program runs (berth_cgroup's devices_bpf.rs).
        // Only the spec's rules (then the defaults): as runc, the linux.devices nodes are
        // made but not allowed unless a rule allows them.
        let rules = res.map_or(&[][..], |r| &r.devices[..]);
        cgroup.set_device_rules(rules)?;
    }
    Ok(())
}

/// The container's cgroup on this host.
fn container_cgroup(st: &State) -> Result<Cgroup> {
    let layout = Layout::detect().map_err(|source| Error::Cgroup {
        path: st.cgroup_path.clone(),
        source,
    })?;
    Ok(Cgroup::at(&layout, &st.cgroup_path))
}

/// Names and host directories of the container's cgroup in each hierarchy, as a `cgroup`
/// mount inside the container shows them.
fn cgroup_views(layout: &Layout, cg: &Cgroup) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    for (controller, mount) in &layout.v1 {
        let name = mount
            .file_name()
            .map_or(controller.clone(), |n| n.to_string_lossy().into_owned());
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, cg.v1[controller].clone()));
        }
    }
    if !layout.v1.is_empty() {
        if let Some(dir) = &cg.v2 {
            out.push(("unified".into(), dir.clone()));
        }
    }
    out
}

/// The `tasks` file of the container's cgroup in each v1 hierarchy, opened write-only and
/// close-on-exec, for the init to write `0` into (see init.rs, join_v1_cgroups).
fn open_v1_tasks(cg: &Cgroup) -> Result<Vec<(PathBuf, OwnedFd)>> {
    let mut dirs: Vec<&PathBuf> = cg.v1.values().collect();
    dirs.sort();
    dirs.dedup();
    dirs.into_iter()
        .map(|dir| {
            let path = dir.join("tasks");
            match rustix::fs::open(&path, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty()) {
                Ok(fd) => Ok((path, fd)),
                Err(e) => Err(Error::File {
                    what: "opening",
                    path,
                    source: e.into(),
                }),
            }
        })
        .collect()
}

pub(crate) fn last_cap() -> u32 {
    fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Our own pid and time namespaces, for each of `joins` (pid or time namespaces to join), to
/// re-enter for our children once the init is cloned.
fn own_namespaces(joins: &[(u64, OwnedFd)]) -> Result<Vec<(u64, OwnedFd)>> {
    joins
        .iter()
        .map(|(flag, _)| {
            let path = if *flag == plan::CLONE_NEWPID {
                "/proc/self/ns/pid"
            } else {
                "/proc/self/ns/time"
            };
            rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map(|fd| (*flag, fd))
                .map_err(|e| Error::File {
                    what: "opening our own namespace",
                    path: PathBuf::from(path),
                    source: e.into(),
                })
        })
        .collect()
}

/// A path to join must be a namespace of its type (`/proc/<pid>/ns/pid`, a bind mount of
/// one): the link of its fd reads `pid:[4026531836]`, whatever path it was opened by.
fn check_namespace_type(flag: u64, path: &str, fd: &OwnedFd) -> Result<()> {
    let kind = match flag {
        plan::CLONE_NEWPID => "pid",
        plan::CLONE_NEWNET => "network",
        plan::CLONE_NEWNS => "mount",
        plan::CLONE_NEWIPC => "ipc",
        plan::CLONE_NEWUTS => "uts",
        plan::CLONE_NEWUSER => "user",
        plan::CLONE_NEWCGROUP => "cgroup",
        plan::CLONE_NEWTIME => "time",
        _ => return Ok(()),
    };
    // The nsfs ioctl, not the fd's name: a namespace bind-mounted at /run/netns/NAME is
    // named by that path in /proc/self/fd.
    // An nsfs file first: the ioctl is never sent to whatever else the path opened.
    const NSFS_MAGIC: i64 = 0x6e73_6673;
    let on_nsfs = sys::fs_magic(fd.as_fd()).is_ok_and(|m| m == NSFS_MAGIC);
    match sys::ns_type(fd.as_fd()).ok().filter(|_| on_nsfs) {
        Some(t) if t as u64 == flag => Ok(()),
        _ => Err(Error::spec(format!(
            "linux.namespaces: {kind} path {path} is not a {kind} namespace"
        ))),
    }
}

fn write_id_maps(pid: i32, plan: &Plan) -> Result<()> {
    for (file, map) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        fs::write(&path, map).map_err(|source| Error::File {
            what: "writing",
            path,
            source,
        })?;
    }
    Ok(())
}

/// Writes linux.timeOffsets into the init's new, not yet entered, time namespace, all clocks
/// in one write (`<clock> <secs> <nanosecs>` a line, as time_namespaces(7) describes).
fn write_time_offsets(pid: i32, offsets: &[(String, i64, u32)]) -> Result<()> {
    let text = time_offsets_text(offsets);
    let path = format!("/proc/{pid}/timens_offsets");
    fs::write(&path, text).map_err(|e| Error::io(format!("linux.timeOffsets: writing {path}"), e))
}

fn time_offsets_text(offsets: &[(String, i64, u32)]) -> String {
    offsets
        .iter()
        .map(|(clock, secs, nanos)| format!("{clock} {secs} {nanos}\n"))
        .collect()
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_extension("berth-tmp");
    fs::write(&tmp, pid.to_string())
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|source| Error::File {
            what: "writing pid file",
            path: path.to_path_buf(),
            source,
        })
}

fn run_create_hooks(h: &Hooks, report: &Report) -> Result<()> {
    hooks::run("prestart", &h.prestart, report)?;
    hooks::run("createRuntime", &h.create_runtime, report)?;
    hooks::run("createContainer", &h.create_container, report)
}

/// The init closed the channel without a message: say how it ended.
/// The error for an init (still our child, now reaped) that ended after `Ready` but before it
/// could be started: the message it sent, if any, else how it ended, else `start`'s error.
fn init_ended_before_start(chan: &mut Channel, exit: sys::Exit, start_err: Error) -> Error {
    // The init is gone, so its end of the socket is closed: this read cannot block.
    if let Ok(Some(ToParent::Failed {
        kind,
        message,
        exec,
    })) = chan.recv::<ToParent>()
    {
        return Error::Setup {
            kind: kind_from_name(&kind),
            message,
            exec,
        };
    }
    let how = match exit {
        sys::Exit::Code(c) => format!("exit status {c}"),
        sys::Exit::Signal(s) => format!("signal {s}"),
    };
    Error::Setup {
        kind: berth_kind::Kind::Internal,
        message: format!("{start_err}: container init ended before start ({how})"),
        exec: None,
    }
}

fn child_failure(_chan: &mut Channel, pid: i32) -> Error {
    let how = match sys::wait_child(pid, true) {
        Ok(Some(e)) => match e {
            sys::Exit::Code(c) => format!("exit status {c}"),
            sys::Exit::Signal(s) => format!("signal {s}"),
        },
        _ => "unknown status".into(),
    };
    Error::Setup {
        kind: berth_kind::Kind::Internal,
        message: format!("container init exited during setup ({how})"),
        exec: None,
    }
}

/// Signals the init through a pidfd, after checking the pid still names it.
fn signal_init(st: &State, signal: i32) -> Result<()> {
    let pidfd =
        sys::pidfd_open(st.pid).map_err(|e| Error::io(format!("pidfd_open {}", st.pid), e))?;
    match state::proc_stat(st.pid) {
        Some((_, start)) if start == st.init_start_time => {}
        _ => {
            return Err(Error::State {
                id: st.id.clone(),
                status: "stopped".into(),
                why: ": its init is gone",
            })
        }
    }
    sys::pidfd_send_signal(pidfd.as_fd(), signal)
        .map_err(|e| Error::io(format!("signal {signal} to pid {}", st.pid), e))
}

/// Waits (up to 10 s) until the init is no longer alive.
fn wait_gone(st: &State) -> Result<()> {
    // A pidfd opened before the start-time check is the init's (not a reused pid's); it turns
    // readable the moment the init exits, so there is no polling interval to wait out.
    let pidfd = match sys::pidfd_open(st.pid) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => return Ok(()),
        Err(_) => None,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let alive = matches!(state::proc_stat(st.pid),
            Some((s, start)) if start == st.init_start_time && s != 'Z' && s != 'X');
        if !alive {
            return Ok(());
        }
        match &pidfd {
            Some(fd) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
                if sys::poll_readable(fd.as_fd(), ms)
                    .map_err(|e| Error::io("waiting for the init to exit", e))?
                {
                    return Ok(());
                }
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    Err(Error::State {
        id: st.id.clone(),
        status: "running".into(),
        why: ": its init did not die within 10s of SIGKILL",
    })
}

#[cfg(test)]
mod time_offset_tests {
    #[test]
    fn offsets_are_one_line_per_clock_as_the_kernel_reads_them() {
        let text = super::time_offsets_text(&[
            ("monotonic".into(), -5, 0),
            ("boottime".into(), 86400, 999_999_999),
        ]);
        assert_eq!(text, "monotonic -5 0\nboottime 86400 999999999\n");
    }
}

#[cfg(test)]
mod destroy_tests {
    use super::*;
    use crate::spec::Hook;
    use berth_kind::{HasKind, Kind};

    #[test]
    fn an_unreachable_systemd_fails_delete_before_its_hooks_and_force_goes_on() {
        // This host has no systemd to stop the unit (as the CI host: PID 1 is not systemd).
        for socket in [berth_systemd::PRIVATE_SOCKET, berth_systemd::SYSTEM_BUS] {
            assert!(
                !Path::new(socket).exists(),
                "this test needs a host without systemd's sockets; {socket} exists"
            );
        }
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("c");
        fs::create_dir(&dir).unwrap();
        let ran = root.path().join("poststop-ran");
        let st = State {
            oci_version: "1.0.2".into(),
            id: "c".into(),
            pid: 0,
            bundle: root.path().to_path_buf(),
            rootfs: root.path().join("rootfs"),
            created: String::new(),
            annotations: Default::default(),
            init_start_time: 0,
            // Never made: nothing to kill or remove.
            cgroup_path: format!("/berth/destroy-test-{}", std::process::id()),
            systemd_unit: Some("berth-destroy-test.scope".into()),
            poststart: vec![],
            poststop: vec![Hook {
                path: "/bin/sh".into(),
                args: vec![
                    "sh".into(),
                    "-c".into(),
                    format!("echo ran >> {}", ran.display()),
                ],
                env: vec![],
                timeout: None,
            }],
        };
        let rt = Runtime {
            root: root.path().to_path_buf(),
            systemd_cgroup: false,
        };
        // Without --force: the error, the state kept, and no hook run yet.
        let e = rt.destroy(&st, &dir, true, false).unwrap_err();
        assert_eq!(e.kind(), Kind::Unavailable, "{e}");
        assert!(!ran.exists(), "poststop ran before the unit was stopped");
        assert!(dir.exists(), "the state was removed after a failed delete");
        // With --force: a warning, then the hooks once and the state gone.
        rt.destroy(&st, &dir, true, true).unwrap();
        assert_eq!(fs::read_to_string(&ran).unwrap(), "ran\n");
        assert!(!dir.exists());
    }
}
