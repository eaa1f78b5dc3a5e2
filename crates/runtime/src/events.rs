//! `events`: a container's cgroup statistics, once (`--stats`) or every interval until the
//! container stops, and `oom` events as the kernel reports them, in runc's JSON shapes:
//! `{"type":"stats","id":ID,"data":{…}}` and `{"type":"oom","id":ID}`.
//!
//! OOM notifications: on a v1 (or hybrid) host an eventfd registered for the memory
//! controller's `memory.oom_control` through `cgroup.event_control` (one event per wake-up,
//! as runc); on a pure v2 host an inotify watch on `memory.events` (one event per increase of
//! its `oom_kill` count). The loop sleeps in poll(2) on the OOM fd and a pidfd of the
//! container's init, so it wakes for an OOM, for the next interval, or when the init exits.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_cgroup::stats::Stats;
use berth_cgroup::Cgroup;
use berth_sys as sys;
use rustix::event::{PollFd, PollFlags};
use serde::Serialize;

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::state::{self, State, Status};
use crate::update::cgroup_of;

/// One line of `events` output.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Stats>,
}

impl Runtime {
    /// The container's statistics now (`events --stats`). A stopped container has none.
    pub fn stats(&self, id: &str) -> Result<Event> {
        let (st, dir) = self.load(id)?;
        not_stopped(&st, &dir)?;
        let cg = cgroup_of(&st)?;
        Ok(Event {
            kind: "stats",
            id: id.to_string(),
            data: Some(read_stats(&st, &cg)?),
        })
    }

    /// Calls `emit` with a stats event every `interval` (the first one after an interval, as
    /// runc) and with an `oom` event whenever the kernel reports one, until the container's
    /// init exits or its cgroup is removed. An error from `emit` (e.g. a closed stdout) ends
    /// the stream with that error.
    pub fn events(
        &self,
        id: &str,
        interval: Duration,
        emit: &mut dyn FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<()> {
        let (st, dir) = self.load(id)?;
        not_stopped(&st, &dir)?;
        let cg = cgroup_of(&st)?;
        let pidfd = match sys::pidfd_open(st.pid) {
            Ok(fd) => fd,
            Err(_) => return Err(stopped(&st)),
        };
        // Opened before the start time is checked: a pidfd of a reused pid never matches.
        if state::proc_stat(st.pid).is_none_or(|(_, start)| start != st.init_start_time) {
            return Err(stopped(&st));
        }
        let mut oom = match OomWatch::new(&cg) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("no OOM notifications for container {id}: {e}");
                None
            }
        };
        let send = |emit: &mut dyn FnMut(&Event) -> std::io::Result<()>, e: &Event| {
            emit(e).map_err(|source| Error::Io {
                what: "writing events".into(),
                source,
            })
        };
        let oom_event = || Event {
            kind: "oom",
            id: id.to_string(),
            data: None,
        };
        let mut next = Instant::now() + interval;
        loop {
            let timeout = next.saturating_duration_since(Instant::now());
            let (oom_ready, init_gone) = wait(pidfd.as_fd(), oom.as_ref(), timeout)?;
            if oom_ready {
                let w = oom.as_mut().expect("oom_ready implies a watch");
                for _ in 0..w.take()? {
                    send(emit, &oom_event())?;
                }
                if w.cgroup_gone() {
                    return Ok(());
                }
            }
            if init_gone {
                // An OOM kill of the init is reported before the stream ends.
                if let Some(w) = oom.as_mut() {
                    for _ in 0..w.take()? {
                        send(emit, &oom_event())?;
                    }
                }
                return Ok(());
            }
            if Instant::now() >= next {
                next += interval;
                match read_stats(&st, &cg) {
                    Ok(data) => send(
                        emit,
                        &Event {
                            kind: "stats",
                            id: id.to_string(),
                            data: Some(data),
                        },
                    )?,
                    Err(Error::Cgroup { source, .. })
                        if berth_kind::HasKind::kind(&source) == berth_kind::Kind::NotFound =>
                    {
                        return Ok(())
                    }
                    // As runc: a failed reading is logged and the stream goes on.
                    Err(e) => tracing::error!("{e}"),
                }
            }
        }
    }
}

fn not_stopped(st: &State, dir: &std::path::Path) -> Result<()> {
    if st.status(dir) == Status::Stopped {
        return Err(stopped(st));
    }
    Ok(())
}

fn stopped(st: &State) -> Error {
    Error::State {
        id: st.id.clone(),
        status: Status::Stopped.as_str().into(),
        why: ": container not running",
    }
}

fn read_stats(st: &State, cg: &Cgroup) -> Result<Stats> {
    cg.stats().map_err(|source| Error::Cgroup {
        path: st.cgroup_path.clone(),
        source,
    })
}

/// Sleeps until the OOM fd or the pidfd is readable, or `timeout` passes: (oom, init gone).
fn wait(
    pidfd: std::os::fd::BorrowedFd<'_>,
    oom: Option<&OomWatch>,
    timeout: Duration,
) -> Result<(bool, bool)> {
    let ts = rustix::event::Timespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    };
    let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
    if let Some(w) = oom {
        fds.push(PollFd::new(&w.fd, PollFlags::IN));
    }
    match rustix::event::poll(&mut fds, Some(&ts)) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok((false, false)),
        Err(e) => return Err(Error::io("waiting for container events", e.into())),
    }
    let ready = |i: usize| fds.get(i).is_some_and(|f| !f.revents().is_empty());
    Ok((ready(1), ready(0)))
}

/// The kernel's OOM notifications for one cgroup.
struct OomWatch {
    /// v1: the eventfd; v2: the inotify fd.
    fd: OwnedFd,
    kind: OomKind,
}

enum OomKind {
    /// The memory controller's directory, and memory.oom_control held open while registered.
    V1 { dir: PathBuf, _control: fs::File },
    /// The v2 directory and the last `oom_kill` count seen.
    V2 { dir: PathBuf, seen: u64 },
}

impl OomWatch {
    fn new(cg: &Cgroup) -> Result<OomWatch> {
        if let Some(dir) = cg.v1.get("memory") {
            let control_path = dir.join("memory.oom_control");
            let control = fs::File::open(&control_path).map_err(|source| Error::File {
                what: "opening",
                path: control_path.clone(),
                source,
            })?;
            let efd = rustix::event::eventfd(
                0,
                rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
            )
            .map_err(|e| Error::io("creating an eventfd", e.into()))?;
            let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
            let ctl = dir.join("cgroup.event_control");
            fs::write(&ctl, line).map_err(|source| Error::File {
                what: "writing",
                path: ctl,
                source,
            })?;
            return Ok(OomWatch {
                fd: efd,
                kind: OomKind::V1 {
                    dir: dir.clone(),
                    _control: control,
                },
            });
        }
        let dir = cg.v2.clone().ok_or_else(|| {
            Error::Unsupported("no memory controller: no OOM notifications".into())
        })?;
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(|e| Error::io("creating an inotify instance", e.into()))?;
        let events = dir.join("memory.events");
        inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY).map_err(|e| Error::File {
            what: "watching",
            path: events.clone(),
            source: e.into(),
        })?;
        let seen = oom_kills(&dir);
        Ok(OomWatch {
            fd,
            kind: OomKind::V2 { dir, seen },
        })
    }

    /// Drains the fd and says how many OOM events happened since the last call.
    fn take(&mut self) -> Result<u64> {
        let mut buf = [0u8; 4096];
        let mut woke = 0u64;
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => break,
                // v1: one event per read of the eventfd, however many notifications its
                // counter gathered (as runc); v2: the count is read from memory.events below.
                Ok(_) => woke += 1,
                Err(rustix::io::Errno::AGAIN) => break,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::io("reading OOM notifications", e.into())),
            }
        }
        Ok(match &mut self.kind {
            // The eventfd also fires when the cgroup is removed: that is not an OOM.
            OomKind::V1 { dir, .. } => {
                if dir.exists() {
                    woke
                } else {
                    0
                }
            }
            OomKind::V2 { dir, seen } => {
                let now = oom_kills(dir);
                let new = now.saturating_sub(*seen);
                *seen = now.max(*seen);
                new
            }
        })
    }

    fn cgroup_gone(&self) -> bool {
        match &self.kind {
            OomKind::V1 { dir, .. } | OomKind::V2 { dir, .. } => !dir.exists(),
        }
    }
}

/// The `oom_kill` count of a v2 cgroup's memory.events (0 if unreadable).
fn oom_kills(dir: &std::path::Path) -> u64 {
    fs::read_to_string(dir.join("memory.events"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("oom_kill "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_like_runc() {
        let oom = Event {
            kind: "oom",
            id: "c1".into(),
            data: None,
        };
        assert_eq!(
            serde_json::to_string(&oom).unwrap(),
            r#"{"type":"oom","id":"c1"}"#
        );
        let stats = Event {
            kind: "stats",
            id: "c1".into(),
            data: Some(Stats::default()),
        };
        let v: serde_json::Value = serde_json::to_value(&stats).unwrap();
        assert_eq!(v["type"], "stats");
        let keys: Vec<&str> = v["data"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut want = vec![
            "cpu",
            "cpuset",
            "memory",
            "pids",
            "blkio",
            "hugetlb",
            "intel_rdt",
            "network_interfaces",
        ];
        want.sort();
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn v2_oom_kills_count_from_memory_events() {
        let d = tempfile::tempdir().unwrap();
        fs::write(
            d.path().join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kills(d.path()), 2);
        assert_eq!(oom_kills(&d.path().join("nope")), 0);
    }
}
