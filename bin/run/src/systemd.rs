//! `--systemd-cgroup`: runc's systemd cgroup driver. The spec's `cgroupsPath` is then
//! `slice:prefix:name` (runc's default `system.slice:runc:<id>` when empty), the container's
//! cgroup is the transient scope `<prefix>-<name>.scope` in that slice, and systemd (PID 1)
//! creates it. On a host whose PID 1 is not systemd there is nobody to ask: the verbs that
//! make a cgroup (create, run, restore) fail with one line saying so (exit 6). Creating the
//! scope over D-Bus is not implemented yet (see bin/run/README.md); other verbs ignore the
//! flag, as they act on the state berth-run recorded.

use std::path::Path;

/// The directory whose existence says PID 1 is systemd (`sd_booted()`).
pub(crate) const SYSTEMD_RUN_DIR: &str = "/run/systemd/system";

/// A systemd cgroupsPath, parsed and expanded as runc does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    /// The slice unit (`system.slice`, `machine-web.slice`).
    pub(crate) slice: String,
    /// The unit systemd would create: `<prefix>-<name>.scope`, or `<name>` when it is a slice.
    pub(crate) unit: String,
    /// The cgroup path in the hierarchy: the slice expanded (`a-b.slice` is
    /// `/a.slice/a-b.slice`), then the unit.
    pub(crate) cgroup: String,
}

/// Parses `slice:prefix:name` (or the default for an empty path).
pub(crate) fn parse(cgroups_path: Option<&str>, id: &str) -> Result<Scope, String> {
    let raw = match cgroups_path {
        None | Some("") => format!("system.slice:runc:{id}"),
        Some(p) => p.to_string(),
    };
    let parts: Vec<&str> = raw.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return Err(format!(
            "linux.cgroupsPath {raw:?}: with --systemd-cgroup it must be \"slice:prefix:name\""
        ));
    };
    if name.is_empty() {
        return Err(format!(
            "linux.cgroupsPath {raw:?}: the name (after the second ':') is empty"
        ));
    }
    for part in [slice, prefix, name] {
        if part.contains('/') {
            return Err(format!(
                "linux.cgroupsPath {raw:?}: {part:?} contains '/', which systemd unit names cannot"
            ));
        }
    }
    let slice = if slice.is_empty() {
        "system.slice".to_string()
    } else {
        slice.to_string()
    };
    let expanded =
        expand_slice(&slice).map_err(|why| format!("linux.cgroupsPath {raw:?}: {why}"))?;
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok(Scope {
        slice,
        cgroup: format!("{expanded}/{unit}"),
        unit,
    })
}

/// `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`; `-.slice` is the root.
fn expand_slice(slice: &str) -> Result<String, String> {
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(format!("{slice:?} is not a slice (it must end in .slice)"));
    };
    if stem == "-" {
        return Ok(String::new());
    }
    if stem.is_empty() || stem.starts_with('-') || stem.ends_with('-') || stem.contains("--") {
        return Err(format!("{slice:?} is not a valid slice name"));
    }
    let mut out = String::new();
    let mut prefix = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            prefix.push('-');
        }
        prefix.push_str(part);
        out.push('/');
        out.push_str(&prefix);
        out.push_str(".slice");
    }
    Ok(out)
}

/// Why this host cannot do `--systemd-cgroup`, or None when PID 1 is systemd.
pub(crate) fn host_problem(run_dir: &Path) -> Option<String> {
    if run_dir.is_dir() {
        return None;
    }
    let init = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
    Some(format!(
        "--systemd-cgroup: PID 1 is not systemd ({} does not exist; PID 1 is {:?}), so no \
         systemd can create the container's scope: run without --systemd-cgroup",
        run_dir.display(),
        init.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_expand_like_runc() {
        let s = parse(Some("machine-web.slice:crio:abc"), "x").unwrap();
        assert_eq!(s.slice, "machine-web.slice");
        assert_eq!(s.unit, "crio-abc.scope");
        assert_eq!(s.cgroup, "/machine.slice/machine-web.slice/crio-abc.scope");
        let d = parse(None, "c1").unwrap();
        assert_eq!(d.cgroup, "/system.slice/runc-c1.scope");
        let e = parse(Some(":prefix:n"), "x").unwrap();
        assert_eq!(e.cgroup, "/system.slice/prefix-n.scope");
        let n = parse(Some("user.slice::n"), "x").unwrap();
        assert_eq!(n.unit, "n.scope");
        let sub = parse(Some("-.slice::pods.slice"), "x").unwrap();
        assert_eq!(sub.cgroup, "/pods.slice");
    }

    #[test]
    fn malformed_paths_are_refused_with_the_reason() {
        for (bad, why) in [
            ("/berth/x", "slice:prefix:name"),
            ("a:b", "slice:prefix:name"),
            ("a.slice:b:c:d", "slice:prefix:name"),
            ("system.slice:runc:", "name"),
            ("system:runc:x", "must end in .slice"),
            ("a--b.slice:p:x", "not a valid slice"),
            ("system.slice:p:x/y", "contains '/'"),
        ] {
            let e = parse(Some(bad), "x").unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn a_host_without_systemd_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(host_problem(dir.path()).is_none());
        let why = host_problem(&dir.path().join("absent")).unwrap();
        assert!(why.contains("PID 1 is not systemd"), "{why}");
    }
}
