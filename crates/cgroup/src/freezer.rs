//! Freezing a container's cgroup for `pause` and `resume`, as runc 1.1 does: on a host with
//! v1 hierarchies the `freezer` controller's `freezer.state` (write `FROZEN`, retry while it
//! reads `FREEZING`, thawing now and then so tasks caught in vfork can finish); on a pure v2
//! host `cgroup.freeze` (write 1 or 0, then wait until `cgroup.events` says `frozen 1` or
//! `frozen 0`).

use std::fs;
use std::io;
use std::path::Path;
use std::time::Duration;

use crate::{read, write, Cgroup, Error, Result};

/// v1: how many times to write FROZEN before giving up (runc's count).
const V1_TRIES: u32 = 1000;
/// v2: how long to wait for `cgroup.events` to change (runc: 1000 × 10 ms).
const V2_POLLS: u32 = 1000;
const V2_POLL: Duration = Duration::from_millis(10);

impl Cgroup {
    /// Freezes every process in the cgroup and returns once the kernel says it is frozen.
    pub fn freeze(&self) -> Result<()> {
        match self.freezer()? {
            Freezer::V1(dir) => freeze_v1(dir),
            Freezer::V2(dir) => set_v2(dir, true),
        }
    }

    /// Thaws the cgroup and returns once the kernel says it is thawed.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer()? {
            Freezer::V1(dir) => {
                let file = dir.join("freezer.state");
                for _ in 0..V1_TRIES {
                    write(&file, "THAWED")?;
                    if read(&file)?.trim() == "THAWED" {
                        return Ok(());
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Error::Invalid {
                    what: file.display().to_string(),
                    why: "it did not read THAWED after writing THAWED".into(),
                })
            }
            Freezer::V2(dir) => set_v2(dir, false),
        }
    }

    /// Whether the cgroup itself is frozen (v1: `FROZEN` with `freezer.self_freezing` 1, a
    /// `FREEZING` one is read again; v2: `cgroup.freeze` is 1). A missing cgroup or freezer
    /// file is not frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        let freezer = match self.freezer() {
            Ok(f) => f,
            Err(Error::NoController { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        match freezer {
            Freezer::V1(dir) => loop {
                let Some(state) = read_optional(&dir.join("freezer.state"))? else {
                    return Ok(false);
                };
                match state.trim() {
                    "FREEZING" => std::thread::sleep(Duration::from_millis(1)),
                    "FROZEN" => {
                        let own = read_optional(&dir.join("freezer.self_freezing"))?;
                        // Old kernels lack self_freezing: FROZEN is then our own doing.
                        return Ok(own.is_none_or(|s| s.trim() == "1"));
                    }
                    _ => return Ok(false),
                }
            },
            Freezer::V2(dir) => {
                Ok(read_optional(&dir.join("cgroup.freeze"))?.is_some_and(|s| s.trim() == "1"))
            }
        }
    }

    fn freezer(&self) -> Result<Freezer<'_>> {
        if self.v1.is_empty() {
            self.v2.as_deref().map(Freezer::V2).ok_or(Error::NoCgroups)
        } else {
            self.v1_dir("freezer", "pause").map(Freezer::V1)
        }
    }
}

enum Freezer<'a> {
    V1(&'a Path),
    V2(&'a Path),
}

/// runc's v1 loop: write FROZEN and read the state back until it is FROZEN; every 50th try
/// thaw for 10 ms first so tasks stuck in vfork can move on. Stuck in FREEZING after all the
/// tries, the cgroup is thawed again rather than left half frozen.
fn freeze_v1(dir: &Path) -> Result<()> {
    let file = dir.join("freezer.state");
    for i in 0..V1_TRIES {
        if i % 50 == 49 {
            let _ = write(&file, "THAWED");
            std::thread::sleep(Duration::from_millis(10));
        }
        write(&file, "FROZEN")?;
        if i % 25 == 24 {
            std::thread::sleep(Duration::from_micros(10));
        }
        match read(&file)?.trim() {
            "FREEZING" => continue,
            "FROZEN" => return Ok(()),
            other => {
                return Err(Error::Invalid {
                    what: file.display().to_string(),
                    why: format!("it reads {other:?} after writing FROZEN"),
                })
            }
        }
    }
    let _ = write(&file, "THAWED");
    Err(Error::Invalid {
        what: file.display().to_string(),
        why: format!("still FREEZING after {V1_TRIES} tries: thawed it again"),
    })
}

/// v2: write `cgroup.freeze`, then wait until `cgroup.events` reports the same `frozen` value.
fn set_v2(dir: &Path, frozen: bool) -> Result<()> {
    let want = if frozen { "1" } else { "0" };
    write(&dir.join("cgroup.freeze"), want)?;
    let events = dir.join("cgroup.events");
    for _ in 0..V2_POLLS {
        if events_frozen(&read(&events)?) == Some(frozen) {
            return Ok(());
        }
        std::thread::sleep(V2_POLL);
    }
    Err(Error::Invalid {
        what: events.display().to_string(),
        why: format!(
            "it did not say `frozen {want}` within {:?}",
            V2_POLL * V2_POLLS
        ),
    })
}

/// The `frozen` line of a `cgroup.events` text.
fn events_frozen(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.strip_prefix("frozen "))
        .map(|v| v.trim() == "1")
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            op: "reading",
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// A scratch directory (this crate has no tempfile), removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p =
                std::env::temp_dir().join(format!("berth-freezer-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir(&p).unwrap();
            Scratch(p)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cgroup_events_frozen_line() {
        assert_eq!(events_frozen("populated 1\nfrozen 1\n"), Some(true));
        assert_eq!(events_frozen("populated 1\nfrozen 0\n"), Some(false));
        assert_eq!(events_frozen("populated 1\n"), None);
    }

    fn v2_at(dir: &Path) -> Cgroup {
        Cgroup {
            path: "/berth/t".into(),
            v1: BTreeMap::new(),
            v2: Some(dir.to_path_buf()),
        }
    }

    #[test]
    fn v2_freeze_writes_the_file_and_waits_for_events() {
        let d = Scratch::new("v2");
        fs::write(d.path().join("cgroup.events"), "populated 1\nfrozen 1\n").unwrap();
        let cg = v2_at(d.path());
        assert!(!cg.is_frozen().unwrap(), "no cgroup.freeze: not frozen");
        cg.freeze().unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("cgroup.freeze")).unwrap(),
            "1"
        );
        assert!(cg.is_frozen().unwrap());
    }

    #[test]
    fn v1_state_and_self_freezing() {
        let d = Scratch::new("v1");
        let cg = Cgroup {
            path: "/berth/t".into(),
            v1: BTreeMap::from([("freezer".to_string(), d.path().to_path_buf())]),
            v2: None,
        };
        // A plain file reads back what was written, as a settled freezer does.
        cg.freeze().unwrap();
        fs::write(d.path().join("freezer.self_freezing"), "1\n").unwrap();
        assert!(cg.is_frozen().unwrap());
        fs::write(d.path().join("freezer.self_freezing"), "0\n").unwrap();
        assert!(!cg.is_frozen().unwrap(), "frozen by an ancestor only");
        cg.thaw().unwrap();
        assert!(!cg.is_frozen().unwrap());
        let no_freezer = Cgroup {
            path: "/berth/t".into(),
            v1: BTreeMap::from([("memory".to_string(), d.path().to_path_buf())]),
            v2: None,
        };
        assert!(matches!(
            no_freezer.freeze(),
            Err(Error::NoController { .. })
        ));
        assert!(!no_freezer.is_frozen().unwrap());
    }
}
