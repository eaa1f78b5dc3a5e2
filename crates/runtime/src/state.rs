//! Container state on disk: `<root>/<id>/state.json` (written atomically) and `exec.fifo`,
//! and the truthful status derived from them and from /proc.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::Hook;

/// What berth-run keeps about a container between invocations.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Field 22 of /proc/<pid>/stat when the init was created: tells a reused pid apart.
    pub init_start_time: u64,
    pub cgroup_path: String,
    /// With `--systemd-cgroup`: the transient unit (`runc-<id>.scope`) whose cgroup is
    /// `cgroup_path`; `delete` stops it through systemd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    #[serde(default)]
    pub poststart: Vec<Hook>,
    #[serde(default)]
    pub poststop: Vec<Hook>,
}

/// created / running / stopped, as the OCI runtime spec names them, and runc's `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    /// Running, with its cgroup frozen by `pause`.
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// The OCI state document that `state` prints and hooks read on stdin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
}

pub(crate) const STATE_FILE: &str = "state.json";
pub(crate) const FIFO: &str = "exec.fifo";

impl State {
    pub(crate) fn load(dir: &Path, id: &str) -> Result<State> {
        let path = dir.join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(source) => {
                return Err(Error::File {
                    what: "reading",
                    path,
                    source,
                })
            }
        };
        serde_json::from_slice(&text).map_err(|e| Error::BadState {
            id: id.to_string(),
            why: e.to_string(),
        })
    }

    /// The state of a container whose init `pid` now exists, created now.
    pub(crate) fn of_init(
        spec: &crate::spec::Spec,
        id: &str,
        pid: i32,
        bundle: &Path,
        rootfs: &Path,
        cgroup_path: &str,
        hooks: &crate::spec::Hooks,
    ) -> Self {
        State {
            oci_version: spec.oci_version.clone(),
            id: id.to_string(),
            pid,
            bundle: bundle.to_path_buf(),
            rootfs: rootfs.to_path_buf(),
            created: now_rfc3339(),
            annotations: spec.annotations.clone(),
            init_start_time: proc_stat(pid).map(|(_, t)| t).unwrap_or(0),
            cgroup_path: cgroup_path.to_string(),
            systemd_unit: None,
            poststart: hooks.poststart.clone(),
            poststop: hooks.poststop.clone(),
        }
    }

    /// Writes state.json through a temporary file and a rename, so readers never see half.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        save_json(dir, STATE_FILE, self)
    }

    /// The status now: stopped when the init is gone, a zombie, or a different process with a
    /// reused pid; created while exec.fifo exists; paused when its cgroup is frozen (as runc
    /// derives it from the freezer); running otherwise.
    pub fn status(&self, dir: &Path) -> Status {
        match proc_stat(self.pid) {
            Some((state, start))
                if start == self.init_start_time && state != 'Z' && state != 'X' =>
            {
                if dir.join(FIFO).exists() {
                    Status::Created
                } else if self.frozen() {
                    Status::Paused
                } else {
                    Status::Running
                }
            }
            _ => Status::Stopped,
        }
    }

    /// Whether the container's cgroup is frozen; a cgroup that cannot be read is not.
    fn frozen(&self) -> bool {
        berth_cgroup::Layout::detect().is_ok_and(|layout| {
            berth_cgroup::Cgroup::at(&layout, &self.cgroup_path)
                .is_frozen()
                .unwrap_or(false)
        })
    }

    pub fn report(&self, status: Status) -> Report {
        Report {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: String::new(),
            annotations: self.annotations.clone(),
        }
    }
}

/// (state letter, start time) of a process from /proc/<pid>/stat.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(char, u64)> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 overall is index 19 after the state (field 3).
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// Container ids: what runc accepts (letters, digits, `_ + - .`, not starting with `.`).
pub(crate) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::BadId(id.to_string()))
    }
}

/// Now as RFC 3339 UTC with nanoseconds, like runc's `created`.
pub(crate) fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Writes `dir/name` as JSON through a temporary file and a rename, so readers never see half.
pub(crate) fn save_json(dir: &Path, name: &str, value: &impl Serialize) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let body = serde_json::to_vec(value).expect("berth's own types serialise");
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&body)?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|source| Error::File {
        what: "writing",
        path,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_command_names() {
        let line =
            "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        assert_eq!(parse_stat(line), Some(('S', 987_654)));
    }

    #[test]
    fn our_own_process_is_running_and_a_wrong_start_time_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pid = std::process::id() as i32;
        let (_, start) = proc_stat(pid).unwrap();
        let mut st = State {
            oci_version: "1.0.2".into(),
            id: "x".into(),
            pid,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: now_rfc3339(),
            annotations: Default::default(),
            init_start_time: start,
            cgroup_path: "/berth/x".into(),
            systemd_unit: None,
            poststart: vec![],
            poststop: vec![],
        };
        assert_eq!(st.status(dir.path()), Status::Running);
        fs::write(dir.path().join(FIFO), b"").unwrap();
        assert_eq!(st.status(dir.path()), Status::Created);
        st.init_start_time += 1;
        assert_eq!(
            st.status(dir.path()),
            Status::Stopped,
            "a reused pid is not the container"
        );
        st.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path(), "x").unwrap(), st);
    }

    #[test]
    fn ids_follow_runc_rules() {
        assert!(check_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".hidden", "a/b", "..", "a b"] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0, 5), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(rfc3339(1_709_251_199, 0), "2024-02-29T23:59:59.000000000Z");
    }
}
