//! `update`: new limits for a created, running or paused container, as `runc update`.
//!
//! The container's current `linux.resources` live in `<root>/<id>/resources.json` (written
//! atomically after every update; before the first one, the bundle's config.json is the
//! record). An update merges the request into that record (berth_cgroup::plan_update), checks
//! and writes the cgroup (nothing changes on error), then saves the merged record, so the
//! next `update` (which needs e.g. the memory limit to convert memory+swap on v2) and
//! `events` see the new values.

use std::fs;
use std::path::Path;

use berth_cgroup::{Cgroup, Layout, Resources};

use crate::container::Runtime;
use crate::error::{Error, Result};
use crate::spec::Spec;
use crate::state::{State, Status};

pub(crate) const RESOURCES_FILE: &str = "resources.json";

impl Runtime {
    /// Applies `request` to the container's cgroup and records the merged resources. Returns
    /// the items of the request that `update` leaves alone (devices, hugepage limits, …), as
    /// runc does, for the caller to warn about.
    pub fn update(&self, id: &str, request: &Resources) -> Result<Vec<&'static str>> {
        let (st, dir) = self.load(id)?;
        let status = st.status(&dir);
        if status == Status::Stopped {
            return Err(Error::State {
                id: id.into(),
                status: status.as_str().into(),
                why: ": container not running",
            });
        }
        let recorded = recorded_resources(&st, &dir)?;
        let plan = berth_cgroup::plan_update(&recorded, request);
        let cg = cgroup_of(&st)?;
        let write_files = || {
            cg.update(&plan.write).map_err(|source| Error::Cgroup {
                path: st.cgroup_path.clone(),
                source,
            })
        };
        // The files first: a value the kernel refuses must not stay on the unit either.
        write_files()?;
        if let Some(unit) = &st.systemd_unit {
            // The scope's properties, so that a daemon-reload keeps the new limits; then the
            // files once more, as runc ends with them: systemd writes its own rounding of
            // some values (CPUQuotaPerSecUSec to 10 ms), the exact ones win.
            crate::systemd_cgroup::set_limits(unit, &plan.write)?;
            write_files()?;
        }
        save_resources(&dir, &plan.record)?;
        Ok(plan.ignored)
    }

    /// The container's `linux.resources` as last set (by create or update).
    pub fn resources(&self, id: &str) -> Result<Resources> {
        let (st, dir) = self.load(id)?;
        recorded_resources(&st, &dir)
    }
}

/// The container's cgroup on this host.
pub(crate) fn cgroup_of(st: &State) -> Result<Cgroup> {
    let layout = Layout::detect().map_err(|source| Error::Cgroup {
        path: st.cgroup_path.clone(),
        source,
    })?;
    Ok(Cgroup::at(&layout, &st.cgroup_path))
}

/// resources.json, or before any update the bundle's config.json.
fn recorded_resources(st: &State, dir: &Path) -> Result<Resources> {
    let path = dir.join(RESOURCES_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            return serde_json::from_slice(&bytes).map_err(|e| Error::BadState {
                id: st.id.clone(),
                why: format!("{}: {e}", path.display()),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::File {
                what: "reading",
                path,
                source,
            })
        }
    }
    let config = st.bundle.join("config.json");
    let bytes = match fs::read(&config) {
        Ok(b) => b,
        // The bundle may be gone while the container lives on: nothing recorded then.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Resources::default()),
        Err(source) => {
            return Err(Error::File {
                what: "reading",
                path: config,
                source,
            })
        }
    };
    let spec: Spec = serde_json::from_slice(&bytes).map_err(|e| Error::Spec {
        file: config.display().to_string(),
        why: e.to_string(),
    })?;
    Ok(spec.linux.and_then(|l| l.resources).unwrap_or_default())
}

/// Writes resources.json through a temporary file and a rename.
fn save_resources(dir: &Path, res: &Resources) -> Result<()> {
    crate::state::save_json(dir, RESOURCES_FILE, res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bundle: &Path) -> State {
        State {
            oci_version: "1.0.2".into(),
            id: "u".into(),
            pid: 0,
            bundle: bundle.to_path_buf(),
            rootfs: bundle.join("rootfs"),
            created: String::new(),
            annotations: Default::default(),
            init_start_time: 0,
            cgroup_path: "/berth/u".into(),
            systemd_unit: None,
            poststart: vec![],
            poststop: vec![],
        }
    }

    #[test]
    fn the_record_starts_from_config_json_and_then_follows_updates() {
        let bundle = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let st = state(bundle.path());
        assert_eq!(
            recorded_resources(&st, dir.path()).unwrap(),
            Resources::default(),
            "no bundle config: nothing recorded"
        );
        fs::write(
            bundle.path().join("config.json"),
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"pids":{"limit":9}}}}"#,
        )
        .unwrap();
        let r = recorded_resources(&st, dir.path()).unwrap();
        assert_eq!(r.pids.unwrap().limit, 9);
        let newer = Resources {
            pids: Some(berth_cgroup::Pids { limit: 20 }),
            ..Default::default()
        };
        save_resources(dir.path(), &newer).unwrap();
        assert_eq!(recorded_resources(&st, dir.path()).unwrap(), newer);
        fs::write(dir.path().join(RESOURCES_FILE), "{").unwrap();
        assert!(matches!(
            recorded_resources(&st, dir.path()),
            Err(Error::BadState { .. })
        ));
    }
}
