//! Read-only views over a state root for `list` and `ps`: every container's state, and the
//! pids in one container's cgroup.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use berth_cgroup::{Cgroup, Layout};

use crate::error::{Error, Result};
use crate::state::{check_id, Report, State};

/// The state of every container under `root`, sorted by id, with `owner` set to the name of
/// the user owning its state directory (`#uid` when /etc/passwd has no name), as runc does.
/// A missing root is an empty list; a directory without a readable state is skipped with a
/// warning.
pub fn list(root: &Path) -> Result<Vec<Report>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::File {
                what: "reading",
                path: root.to_path_buf(),
                source,
            })
        }
    };
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::File {
            what: "reading",
            path: root.to_path_buf(),
            source,
        })?;
        let Ok(meta) = entry.metadata() else { continue };
        let id = entry.file_name().to_string_lossy().into_owned();
        if !meta.is_dir() || check_id(&id).is_err() {
            continue;
        }
        let dir = entry.path();
        match State::load(&dir, &id) {
            Ok(st) => {
                let mut report = st.report(st.status(&dir));
                report.owner = user_name(&passwd, meta.uid());
                out.push(report);
            }
            Err(e) => tracing::warn!("load container {id}: {e}"),
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The pids in the container's cgroup, read from `cgroup.procs`.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>> {
    check_id(id)?;
    let st = State::load(&root.join(id), id)?;
    let cgroup_err = |source| Error::Cgroup {
        path: st.cgroup_path.clone(),
        source,
    };
    let layout = Layout::detect().map_err(cgroup_err)?;
    Cgroup::at(&layout, &st.cgroup_path)
        .procs()
        .map_err(cgroup_err)
}

/// The name for `uid` in an /etc/passwd text, or `#uid`.
fn user_name(passwd: &str, uid: u32) -> String {
    passwd
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let id: u32 = f.nth(1)?.parse().ok()?;
            (id == uid).then(|| name.to_string())
        })
        .next()
        .unwrap_or_else(|| format!("#{uid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_come_from_passwd() {
        let passwd =
            "root:x:0:0:root:/root:/bin/sh\nbad line\nalice:x:1000:1000::/home/a:/bin/sh\n";
        assert_eq!(user_name(passwd, 0), "root");
        assert_eq!(user_name(passwd, 1000), "alice");
        assert_eq!(user_name(passwd, 7), "#7");
    }

    #[test]
    fn list_skips_strays_and_reads_states() {
        let root = tempfile::tempdir().unwrap();
        assert!(list(&root.path().join("missing")).unwrap().is_empty());
        fs::create_dir(root.path().join("broken")).unwrap();
        fs::write(root.path().join("afile"), "x").unwrap();
        let dir = root.path().join("c1");
        fs::create_dir(&dir).unwrap();
        let st = State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            pid: 0,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00Z".into(),
            annotations: Default::default(),
            init_start_time: 0,
            cgroup_path: "/berth/c1".into(),
            systemd_unit: None,
            poststart: vec![],
            poststop: vec![],
        };
        st.save(&dir).unwrap();
        let all = list(root.path()).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].id, "c1");
        assert_eq!(all[0].status, crate::Status::Stopped);
        assert!(!all[0].owner.is_empty());
    }

    #[test]
    fn pids_of_a_missing_container_is_not_found() {
        let root = tempfile::tempdir().unwrap();
        let err = pids(root.path(), "nope").unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert!(matches!(
            pids(root.path(), "../x").unwrap_err(),
            Error::BadId(_)
        ));
    }
}
