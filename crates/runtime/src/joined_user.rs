//! Joining a user namespace by path while creating other namespaces (a pod's container
//! joining the sandbox's user namespace with its own mount and pid namespaces, say, or
//! joining the sandbox's user and pid namespaces with its own mount, uts and ipc ones).
//!
//! New namespaces belong to the user namespace of the process that makes them, and a new pid
//! namespace can only be made by a clone. So the init cannot be cloned by berth-run (whose
//! namespaces would belong to the host's user namespace), and berth-run cannot join the user
//! namespace itself (it would lose its privileges on the host: cgroups, maps, offsets). A
//! helper, forked from berth-run, joins the user namespace and clones the init with the new
//! namespaces and `CLONE_PARENT`, so that the init is berth-run's own child as in every other
//! case; it reports the init's pid through a pipe and exits.
//!
//! A joined pid (or time) namespace is joined by the helper too, before the user namespace
//! (with the host's privileges, as runc's stage-1 does), and never by berth-run: `setns` of a
//! pid namespace applies to the caller's children only, so the helper itself stays in
//! berth-run's pid namespace and the pid its clone returns is the one berth-run sees. Had
//! berth-run joined it before forking the helper, the helper would be born inside it and
//! report the init's pid as the joined namespace numbers it.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use berth_kind::Kind;
use berth_sys as sys;

use crate::init::Fail;
use crate::plan;

const CLONE_PARENT: u64 = 0x0000_8000;

/// What the helper could not do, with the step that failed.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) what: String,
    pub(crate) source: io::Error,
}

/// Like [`sys::clone_process`] with `flags`, but the child is born in the user namespace
/// `userns` (which then owns its new namespaces), and in the pid and time namespaces of
/// `first` (the pid and time namespaces to join, joined before `userns`). Returns
/// `Forked::Child` in the init, and in the caller the init's pid as the caller's pid
/// namespace sees it.
pub(crate) fn clone_in(
    userns: BorrowedFd<'_>,
    first: &[(u64, OwnedFd)],
    flags: u64,
) -> Result<sys::Forked, Failed> {
    let failed = |what: &str, source: io::Error| Failed {
        what: what.to_string(),
        source,
    };
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| failed("creating the helper's pipe", e.into()))?;
    let helper = match sys::fork_process().map_err(|e| failed("forking the helper", e))? {
        sys::Forked::Child => {
            drop(r);
            // Step numbers: 0..first.len() join `first`, then the user namespace, then clone.
            let mut step = 0usize;
            let mut made = Ok(());
            for (flag, fd) in first {
                made = sys::setns(fd.as_fd(), *flag as i32);
                if made.is_err() {
                    break;
                }
                step += 1;
            }
            let made = made
                .and_then(|()| {
                    // No supplementary group of the host's comes along (set_identity sets
                    // the spec's where the namespace allows setgroups).
                    let r = sys::setgroups(&[])
                        .and_then(|()| sys::setns(userns, plan::CLONE_NEWUSER as i32));
                    if r.is_ok() {
                        step += 1;
                    }
                    r
                })
                .and_then(|()| sys::clone_process(flags | CLONE_PARENT));
            let report: [i32; 2] = match made {
                Ok(sys::Forked::Child) => {
                    drop(w);
                    return Ok(sys::Forked::Child);
                }
                Ok(sys::Forked::Parent(pid)) => [pid, 0],
                Err(e) => [-e.raw_os_error().unwrap_or(EIO), step as i32],
            };
            let mut buf = [0u8; 8];
            buf[..4].copy_from_slice(&report[0].to_ne_bytes());
            buf[4..].copy_from_slice(&report[1].to_ne_bytes());
            let _ = rustix::io::write(&w, &buf);
            sys::exit_now(if report[0] > 0 { 0 } else { 1 })
        }
        sys::Forked::Parent(pid) => pid,
    };
    drop(w);
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(&r, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => {
                let _ = sys::wait_child(helper, true);
                return Err(failed("reading the helper's report", e.into()));
            }
        }
    }
    let _ = sys::wait_child(helper, true);
    if got < buf.len() {
        return Err(failed(
            "the helper joining the user namespace",
            io::Error::other("it ended without a pid"),
        ));
    }
    let value = i32::from_ne_bytes(buf[..4].try_into().expect("4 bytes"));
    let step = i32::from_ne_bytes(buf[4..].try_into().expect("4 bytes")) as usize;
    if value > 0 {
        return Ok(sys::Forked::Parent(value));
    }
    let what = match first.get(step) {
        Some((flag, _)) if *flag == plan::CLONE_NEWPID => "joining the pid namespace".to_string(),
        Some((flag, _)) if *flag == plan::CLONE_NEWTIME => "joining the time namespace".to_string(),
        Some((flag, _)) => format!("joining namespace {flag:#x}"),
        None if step == first.len() => "joining the user namespace".to_string(),
        None => format!("clone with namespaces {flags:#x} in the joined user namespace"),
    };
    Err(failed(&what, io::Error::from_raw_os_error(-value)))
}

const EIO: i32 = 5;

/// With both a user and a pid namespace joined and a `proc` mount to make, the pid namespace
/// must belong to the user namespace or to one below it: mounting a procfs needs
/// `CAP_SYS_ADMIN` over the pid namespace, which the init, root of the user namespace, has
/// only then. `joins` are the opened namespaces and `paths` the spec's, in the same order.
pub(crate) fn check_pid_owner(
    joins: &[(u64, OwnedFd)],
    paths: &[(u64, String)],
    mounts_proc: bool,
) -> crate::error::Result<()> {
    if !mounts_proc {
        return Ok(());
    }
    let find = |flag: u64| joins.iter().position(|(f, _)| *f == flag);
    let (Some(p), Some(u)) = (find(plan::CLONE_NEWPID), find(plan::CLONE_NEWUSER)) else {
        return Ok(());
    };
    let path = |i: usize| paths.get(i).map_or("", |(_, p)| p.as_str());
    let owned = owned_within(joins[p].1.as_fd(), joins[u].1.as_fd()).map_err(|e| {
        crate::error::Error::io(
            format!("finding the owner of the pid namespace {}", path(p)),
            e,
        )
    })?;
    if owned {
        return Ok(());
    }
    Err(crate::error::Error::spec(format!(
        "linux.namespaces: the pid namespace {} does not belong to the user namespace {} \
         (nor to one below it): the container's root could not mount its /proc",
        path(p),
        path(u)
    )))
}

/// Whether the user namespace owning `ns` is `userns` or a descendant of it.
fn owned_within(ns: BorrowedFd<'_>, userns: BorrowedFd<'_>) -> io::Result<bool> {
    let id = |fd: BorrowedFd<'_>| -> io::Result<(u64, u64)> {
        let st = rustix::fs::fstat(fd)?;
        Ok((st.st_dev as u64, st.st_ino as u64))
    };
    let want = id(userns)?;
    let mut owner = sys::ns_owner(ns)?;
    // User namespaces nest at most 32 deep.
    for _ in 0..=32 {
        if id(owner.as_fd())? == want {
            return Ok(true);
        }
        owner = match sys::ns_parent(owner.as_fd()) {
            Ok(parent) => parent,
            // Above the caller's own user namespace, or the top.
            Err(e) if e.raw_os_error() == Some(EPERM) => return Ok(false),
            Err(e) => return Err(e),
        };
    }
    Ok(false)
}

const EPERM: i32 = 1;

/// In the init, once in the joined user namespace: id mappings given with a joined user
/// namespace (runc 1.1 requires them) must be the namespace's own, which cannot change.
pub(crate) fn check_joined_maps(plan: &plan::Plan) -> Result<(), Fail> {
    for (field, file, want) in [
        ("linux.uidMappings", "uid_map", &plan.uid_map),
        ("linux.gidMappings", "gid_map", &plan.gid_map),
    ] {
        if want.is_empty() {
            continue;
        }
        let path = format!("/proc/self/{file}");
        let have =
            std::fs::read_to_string(&path).map_err(|e| Fail::io(format!("reading {path}"), e))?;
        if map_rows(&have) != map_rows(want) {
            return Err(Fail::new(
                Kind::InvalidArgument,
                format!(
                    "config.json: {field} {} differ from the joined user namespace's {}",
                    show_rows(want),
                    show_rows(&have)
                ),
            ));
        }
    }
    Ok(())
}

/// The rows of a `/proc/<pid>/uid_map`-form map, as numbers, in order.
fn map_rows(map: &str) -> Vec<Vec<u64>> {
    map.lines()
        .map(|l| {
            l.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect::<Vec<u64>>()
        })
        .filter(|r| !r.is_empty())
        .collect()
}

fn show_rows(map: &str) -> String {
    let rows: Vec<String> = map_rows(map)
        .iter()
        .map(|r| r.iter().map(u64::to_string).collect::<Vec<_>>().join(" "))
        .collect();
    format!("[{}]", rows.join(", "))
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};

    use berth_sys as sys;

    use crate::plan;

    #[test]
    fn the_child_is_born_in_the_user_namespace_as_the_callers_own_child() {
        let userns = crate::idmap::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        let want = std::fs::read_link(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&userns)
        ))
        .unwrap();
        let pid = match super::clone_in(userns.as_fd(), &[], 0).unwrap() {
            sys::Forked::Child => {
                let here = std::fs::read_link("/proc/self/ns/user").unwrap();
                sys::exit_now(if here == want { 0 } else { 1 })
            }
            sys::Forked::Parent(pid) => pid,
        };
        // CLONE_PARENT: the child is ours, so we can reap it and read its status.
        let status = sys::wait_child(pid, true).unwrap();
        assert_eq!(status, Some(sys::Exit::Code(0)));
    }

    #[test]
    fn a_namespace_that_cannot_be_joined_is_an_error_and_no_child() {
        // Our own user namespace: setns refuses to re-enter it (EINVAL).
        let own = std::fs::File::open("/proc/self/ns/user").unwrap();
        let err = super::clone_in(own.as_fd(), &[], 0).unwrap_err();
        assert_eq!(err.source.raw_os_error(), Some(22), "{err:?}");
        assert_eq!(err.what, "joining the user namespace");
    }

    /// Pid 1 of a new pid namespace, waiting on a pipe; ends when the guard drops.
    struct PidNsHolder {
        pid: i32,
        release: Option<OwnedFd>,
    }

    impl PidNsHolder {
        fn new() -> PidNsHolder {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
            match sys::clone_process(plan::CLONE_NEWPID).unwrap() {
                sys::Forked::Child => {
                    drop(w);
                    let mut b = [0u8; 1];
                    let _ = rustix::io::read(&r, &mut b);
                    sys::exit_now(0)
                }
                sys::Forked::Parent(pid) => PidNsHolder {
                    pid,
                    release: Some(w),
                },
            }
        }
    }

    impl Drop for PidNsHolder {
        fn drop(&mut self) {
            drop(self.release.take());
            let _ = sys::wait_child(self.pid, true);
        }
    }

    // Regression: with a pid namespace joined too, the helper reported the init's pid as
    // the joined namespace numbers it (2), not as the caller sees it.
    #[test]
    fn with_a_joined_pid_namespace_the_pid_is_the_callers_view_of_the_child() {
        let holder = PidNsHolder::new();
        let pidns: OwnedFd = std::fs::File::open(format!("/proc/{}/ns/pid", holder.pid))
            .unwrap()
            .into();
        let want = std::fs::read_link(format!("/proc/{}/ns/pid", holder.pid)).unwrap();
        let userns = crate::idmap::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        let first = [(plan::CLONE_NEWPID, pidns)];
        let pid = match super::clone_in(userns.as_fd(), &first, plan::CLONE_NEWUTS).unwrap() {
            sys::Forked::Child => {
                // Our /proc is the caller's: /proc/self is our pid there.
                let here = std::fs::read_link("/proc/self/ns/pid").unwrap();
                let ours = rustix::process::getpid().as_raw_nonzero().get();
                sys::exit_now(if here == want && ours == 2 { 0 } else { 1 })
            }
            sys::Forked::Parent(pid) => pid,
        };
        // The caller's view: NSpid lists our pid first, then the joined namespace's (2).
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nspid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>();
        assert_eq!(nspid, [pid.to_string().as_str(), "2"], "{status}");
        let exit = sys::wait_child(pid, true).unwrap();
        assert_eq!(exit, Some(sys::Exit::Code(0)));
        drop(holder);
    }

    #[test]
    fn a_pid_namespace_belongs_to_its_user_namespace_and_its_ancestors_only() {
        let own_user = std::fs::File::open("/proc/self/ns/user").unwrap();
        let own_pid = std::fs::File::open("/proc/self/ns/pid").unwrap();
        // Ours belongs to our user namespace.
        assert!(super::owned_within(own_pid.as_fd(), own_user.as_fd()).unwrap());
        // Not to a user namespace made below ours.
        let child = crate::idmap::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        assert!(!super::owned_within(own_pid.as_fd(), child.as_fd()).unwrap());
        let joins = [
            (plan::CLONE_NEWUSER, child),
            (plan::CLONE_NEWPID, OwnedFd::from(own_pid)),
        ];
        let paths = [
            (plan::CLONE_NEWUSER, "/u".to_string()),
            (plan::CLONE_NEWPID, "/p".to_string()),
        ];
        let err = super::check_pid_owner(&joins, &paths, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("the pid namespace /p does not belong to the user namespace /u"),
            "{err}"
        );
        // Without a proc mount nothing needs that privilege: as runc, it is tried.
        assert!(super::check_pid_owner(&joins, &paths, false).is_ok());
    }

    #[test]
    fn id_maps_compare_by_numbers_not_spacing() {
        let proc_form = "         0     200000      65536\n";
        assert_eq!(
            super::map_rows(proc_form),
            super::map_rows("0 200000 65536\n")
        );
        assert_ne!(
            super::map_rows(proc_form),
            super::map_rows("0 100000 65536\n")
        );
        assert_eq!(super::show_rows("0 1 2\n5 6 7\n"), "[0 1 2, 5 6 7]");
    }

    #[test]
    fn a_pid_namespace_that_cannot_be_joined_names_the_step() {
        // A user namespace's fd is not a pid namespace: setns(CLONE_NEWPID) says EINVAL.
        let userns = crate::idmap::user_namespace("0 300000 10\n", "0 300000 10\n").unwrap();
        let wrong: OwnedFd = std::fs::File::open("/proc/self/ns/user").unwrap().into();
        let err = super::clone_in(userns.as_fd(), &[(plan::CLONE_NEWPID, wrong)], 0).unwrap_err();
        assert_eq!(err.what, "joining the pid namespace");
        assert_eq!(err.source.raw_os_error(), Some(22), "{err:?}");
    }
}
