//! `--systemd-cgroup` at the front: the flag is per call, as in runc. `create`, `run` and
//! `restore` pass it to the runtime (berth_runtime::systemd_cgroup makes the scope through
//! systemd, around the init or, for `restore`, around criu, and records it in the state, so
//! later verbs act on it without the flag) after the checks here.

use std::path::{Path, PathBuf};

use berth_runtime::systemd_cgroup;

/// A malformed cgroupsPath is a usage error (2); a host without systemd as PID 1 is
/// unsupported (6).
pub(crate) fn check(bundle: &Path, id: &str) -> Result<(), (u8, String)> {
    let config = bundle.join("config.json");
    let cgroups_path = std::fs::read(&config)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string));
    systemd_cgroup::parse(cgroups_path.as_deref(), id).map_err(|why| {
        (
            berth_cli::exit::USAGE,
            format!("{}: {why}", config.display()),
        )
    })?;
    if let Some(why) = systemd_cgroup::host_problem(Path::new(systemd_cgroup::SYSTEMD_RUN_DIR)) {
        return Err((berth_cli::exit::UNSUPPORTED, why));
    }
    Ok(())
}

/// The bundle and id of a `create`, `run` or `restore` command line.
pub(crate) fn bundle_and_id(sub: &clap::ArgMatches) -> (PathBuf, String) {
    let bundle = sub
        .get_one::<PathBuf>("bundle")
        .cloned()
        .unwrap_or_else(|| PathBuf::from("."));
    let id = sub.get_one::<String>("id").cloned().unwrap_or_default();
    (bundle, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_with_a_bad_path_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"linux":{"cgroupsPath":"/not/systemd"}}"#,
        )
        .unwrap();
        let (code, why) = check(dir.path(), "c1").unwrap_err();
        assert_eq!(code, berth_cli::exit::USAGE);
        assert!(why.contains("slice:prefix:name"), "{why}");
    }

    #[test]
    fn a_host_without_systemd_is_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        let result = check(dir.path(), "c1");
        if Path::new(systemd_cgroup::SYSTEMD_RUN_DIR).is_dir() {
            assert_eq!(result, Ok(()));
        } else {
            let (code, why) = result.unwrap_err();
            assert_eq!(code, berth_cli::exit::UNSUPPORTED);
            assert!(why.contains("PID 1 is not systemd"), "{why}");
        }
    }
}
