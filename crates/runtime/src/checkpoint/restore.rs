//! `restore`: a new container from a checkpoint's images and a bundle (see checkpoint.rs for
//! how criu is driven), and the foreground wait.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_cgroup::Cgroup;
use berth_sys as sys;

use super::args::{external_sources, restore_args, RestoreInput, StdioEntry};
use super::{
    cgroup_of, ext_ns_key, load_plan, ns_name, run_criu, run_criu_held, Error, RestoreOptions,
    Result, CRIU_PID, CRIU_ROOT, RESTORE_LOG, STDIO,
};
use crate::plan;
use crate::state::{self, check_id, State};
use crate::Runtime;

/// Removes what a failed restore made, unless disarmed.
struct Undo {
    dir: Option<PathBuf>,
    cgroup: Option<Cgroup>,
    mounted: Option<CString>,
    /// The systemd scope started around criu (`--systemd-cgroup`).
    systemd_unit: Option<String>,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Some(target) = self.mounted.take() {
            let _ = sys::umount(&target, libc::MNT_DETACH);
        }
        if let Some(cg) = self.cgroup.take() {
            for _ in 0..100 {
                let procs = cg.procs().unwrap_or_default();
                if procs.is_empty() {
                    break;
                }
                for pid in procs {
                    let _ = sys::kill(pid, libc::SIGKILL);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            if let Some(unit) = self.systemd_unit.take() {
                if let Err(e) = crate::systemd_cgroup::stop(&unit) {
                    tracing::warn!("{e}");
                }
            }
            let _ = cg.remove();
        }
        if let Some(dir) = self.dir.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `restore`: a new container `id` from the images of a checkpoint and the bundle. Returns
/// 0 when detached, else waits for the restored init and returns its status (128+N for
/// signal N) after deleting the container, as `run` does.
pub fn restore(root: &Path, id: &str, opts: &RestoreOptions) -> Result<i32> {
    check_id(id)?;
    let dir = root.join(id);
    if dir.exists() {
        return Err(crate::Error::Exists(id.to_string()).into());
    }
    let bundle = fs::canonicalize(&opts.bundle).map_err(|source| crate::Error::File {
        what: "bundle",
        path: opts.bundle.clone(),
        source,
    })?;
    let (spec, plan) = load_plan(&bundle)?;
    if !opts.image_path.join("inventory.img").is_file() {
        return Err(Error::Images {
            path: opts.image_path.clone(),
            why: "no checkpoint here (inventory.img is missing)".into(),
        });
    }
    let stdio: Vec<StdioEntry> = match fs::read(opts.image_path.join(STDIO)) {
        Ok(body) => serde_json::from_slice(&body).map_err(|e| Error::Images {
            path: opts.image_path.join(STDIO),
            why: e.to_string(),
        })?,
        // Images from another tool: no stdio to hand over.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => {
            return Err(Error::Images {
                path: opts.image_path.join(STDIO),
                why: e.to_string(),
            });
        }
    };
    super::find_criu(&opts.criu)?;
    let linux = spec.linux.clone().unwrap_or_default();

    fs::create_dir_all(root).map_err(|source| crate::Error::File {
        what: "creating state root",
        path: root.to_path_buf(),
        source,
    })?;
    match fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(crate::Error::Exists(id.to_string()).into());
        }
        Err(source) => {
            return Err(crate::Error::File {
                what: "creating",
                path: dir,
                source,
            }
            .into());
        }
    }
    let mut undo = Undo {
        dir: Some(dir.clone()),
        cgroup: None,
        mounted: None,
        systemd_unit: None,
    };

    // With --systemd-cgroup the cgroup is a scope that systemd makes around criu, right
    // before criu restores into it (below), as runc does.
    let scope = if opts.systemd_cgroup {
        let layout = berth_cgroup::Layout::detect().map_err(|source| crate::Error::Cgroup {
            path: String::new(),
            source,
        })?;
        let config = bundle.join("config.json");
        Some(crate::systemd_cgroup::scope_for(
            &spec, &linux, id, &config, &layout,
        )?)
    } else {
        None
    };
    let cg_path = match &scope {
        Some(s) => Ok(s.cgroup.clone()),
        None => berth_cgroup::resolve_path(linux.cgroups_path.as_deref(), id),
    }
    .map_err(|source| crate::Error::Cgroup {
        path: String::new(),
        source,
    })?;
    let (layout, cgroup) = cgroup_of(&cg_path)?;
    let cg_err = |source| crate::Error::Cgroup {
        path: cg_path.clone(),
        source,
    };
    if scope.is_none() {
        cgroup.create(&layout).map_err(cg_err)?;
        undo.cgroup = Some(cgroup.clone());
        if let Some(res) = &linux.resources {
            cgroup.apply(res).map_err(cg_err)?;
        }
    }

    // criu's root must be a mount point whose parent is not overmounted.
    let criu_root = dir.join(CRIU_ROOT);
    fs::create_dir(&criu_root).map_err(|source| crate::Error::File {
        what: "creating",
        path: criu_root.clone(),
        source,
    })?;
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in paths");
    let target = c(&criu_root);
    sys::mount(
        Some(&c(&plan.rootfs)),
        &target,
        None,
        plan::MS_BIND | plan::MS_REC,
        None,
    )
    .map_err(|e| {
        crate::Error::io(
            format!("bind-mounting {} for criu", plan.rootfs.display()),
            e,
        )
    })?;
    undo.mounted = Some(target);

    // Namespaces joined by path: net and pid handed to criu as inherited fds, the others
    // joined with --join-ns. The fds stay open (and inheritable) until criu has run.
    let mut ns_fds: Vec<OwnedFd> = Vec::new();
    let mut inherit: Vec<(i32, String)> =
        stdio.iter().map(|s| (s.fd as i32, s.key.clone())).collect();
    let mut join_ns = Vec::new();
    for (flag, path) in &plan.namespaces.join {
        match ns_name(*flag) {
            Some((name, true)) => {
                let fd = rustix::fs::open(
                    path.as_str(),
                    rustix::fs::OFlags::RDONLY,
                    rustix::fs::Mode::empty(),
                )
                .map_err(|e| crate::Error::File {
                    what: "opening namespace",
                    path: PathBuf::from(path),
                    source: e.into(),
                })?;
                inherit.push((fd.as_raw_fd(), ext_ns_key(name)));
                ns_fds.push(fd);
            }
            Some((name, false)) => join_ns.push((name.to_string(), path.clone())),
            None => {
                return Err(Error::Unsupported(format!(
                    "restore into a joined namespace {path}: criu cannot join a cgroup namespace"
                )));
            }
        }
    }

    let input = RestoreInput {
        images: opts.image_path.clone(),
        work: opts.work_path.clone(),
        root: criu_root.clone(),
        cgroup: cg_path.clone(),
        pid_file: dir.join(CRIU_PID),
        external_mounts: external_sources(&plan, &bundle),
        inherit,
        join_ns,
    };
    let log_dir = opts.work_path.as_ref().unwrap_or(&opts.image_path);
    let args = restore_args(&input, &opts.flags);
    let log = log_dir.join(RESTORE_LOG);
    match &scope {
        None => run_criu(&opts.criu, &args, "restore", &log, true, true)?,
        Some(scope) => {
            // criu in the scope (and, with v1 controllers, in the same path of every other
            // hierarchy), with the limits, before it restores the container there.
            let mut hold = |pid: i32| -> crate::Result<()> {
                crate::systemd_cgroup::start(scope, pid, linux.resources.as_ref())?;
                undo.systemd_unit = Some(scope.unit.clone());
                undo.cgroup = Some(cgroup.clone());
                let joined = if layout.is_v2() {
                    Ok(())
                } else {
                    cgroup.create(&layout).and_then(|()| cgroup.add(pid))
                };
                joined
                    .and_then(|()| match &linux.resources {
                        Some(res) => cgroup.apply(res),
                        None => Ok(()),
                    })
                    .map_err(|source| crate::Error::Cgroup {
                        path: cg_path.clone(),
                        source,
                    })
            };
            run_criu_held(&opts.criu, &args, "restore", &log, &mut hold)?;
        }
    }
    drop(ns_fds);
    if let Some(target) = undo.mounted.take() {
        let _ = sys::umount(&target, libc::MNT_DETACH);
    }
    let _ = fs::remove_dir(&criu_root);

    let pid_text = fs::read_to_string(&input.pid_file).map_err(|source| crate::Error::File {
        what: "reading criu's pid file",
        path: input.pid_file.clone(),
        source,
    })?;
    let _ = fs::remove_file(&input.pid_file);
    let pid: i32 = pid_text.trim().parse().map_err(|_| Error::Criu {
        action: "restore",
        why: format!("pid file holds {:?}", pid_text.trim()),
        log: None,
    })?;
    let hooks = spec.hooks.clone().unwrap_or_default();
    let mut st = State::of_init(&spec, id, pid, &bundle, &plan.rootfs, &cg_path, &hooks);
    st.systemd_unit = scope.map(|s| s.unit);
    st.save(&dir)?;
    if let Some(p) = &opts.pid_file {
        crate::container::write_pid_file(p, pid)?;
    }
    undo.dir = None;
    undo.cgroup = None;
    undo.systemd_unit = None;
    if opts.detach {
        return Ok(0);
    }
    wait_foreground(root, id, pid)
}

/// Waits for the restored init (our child through criu's --restore-sibling), passing
/// signals on, then deletes the container; returns its status.
fn wait_foreground(root: &Path, id: &str, pid: i32) -> Result<i32> {
    let old = sys::block_all_signals().map_err(|e| crate::Error::io("blocking signals", e))?;
    let exit = loop {
        match sys::wait_signal(200).map_err(|e| crate::Error::io("waiting for signals", e))? {
            Some(sig) if sig != libc::SIGCHLD => {
                let _ = sys::kill(pid, sig);
            }
            _ => {
                match sys::wait_child(pid, false) {
                    Ok(Some(exit)) => break exit.status(),
                    Ok(None) => {}
                    // Not our child after all (criu could not make it a sibling): poll.
                    Err(e) if e.raw_os_error() == Some(libc::ECHILD) => {
                        if state::proc_stat(pid).is_none_or(|(s, _)| s == 'Z' || s == 'X') {
                            break 0;
                        }
                    }
                    Err(e) => return Err(crate::Error::io("waiting for the container", e).into()),
                }
            }
        }
    };
    let _ = sys::set_signal_mask(&old);
    Runtime::new(root).delete(id, true)?;
    Ok(exit)
}
#[cfg(test)]
mod tests {
    use super::*;
    use berth_kind::{HasKind, Kind};

    #[test]
    fn restore_into_an_existing_id_is_refused_before_criu_runs() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("taken")).unwrap();
        let e = restore(
            root.path(),
            "taken",
            &RestoreOptions {
                criu: "/nonexistent/criu".into(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::AlreadyExists, "{e}");
    }
}
