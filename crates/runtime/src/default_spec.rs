//! The default config.json that `berth-run spec` writes: runc 1.1's `runc spec`, field for
//! field, so a bundle made by either runtime runs under both.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// runc's default spec; with `rootless`, runc's `--rootless` changes: a user namespace mapping
/// the caller's uid and gid to root, no network namespace, /sys bound from the host, no
/// device cgroup rules and no `gid=5` on /dev/pts.
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if !rootless {
        devpts.push("gid=5");
    }
    let sys = if rootless {
        json!({"destination": "/sys", "type": "none", "source": "/sys",
               "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let mut namespaces = vec![json!({"type": "pid"})];
    if !rootless {
        namespaces.push(json!({"type": "network"}));
    }
    namespaces.extend([
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ]);
    if rootless {
        namespaces.push(json!({"type": "user"}));
    }
    let mut linux = serde_json::Map::new();
    if rootless {
        linux.insert(
            "uidMappings".into(),
            json!([{"containerID": 0, "hostID": uid, "size": 1}]),
        );
        linux.insert(
            "gidMappings".into(),
            json!([{"containerID": 0, "hostID": gid, "size": 1}]),
        );
    } else {
        linux.insert(
            "resources".into(),
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
        );
    }
    linux.insert("namespaces".into(), Value::Array(namespaces));
    linux.insert(
        "maskedPaths".into(),
        json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ]),
    );
    linux.insert(
        "readonlyPaths".into(),
        json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]),
    );
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            sys,
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": Value::Object(linux)
    })
}

/// Writes `<bundle>/config.json` (the caller's euid/egid for `rootless`); an existing file is
/// left alone and reported as already existing. The file appears whole or not at all.
pub fn write_default_spec(bundle: &Path, rootless: bool) -> Result<PathBuf> {
    let path = bundle.join("config.json");
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let mut body = serde_json::to_vec_pretty(&default_spec(rootless, uid, gid)).expect("json");
    body.push(b'\n');
    let file_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::File { what, path, source }
    };
    if fs::symlink_metadata(&path).is_ok() {
        return Err(Error::File {
            what: "writing",
            path,
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "config.json exists: remove it first",
            ),
        });
    }
    let tmp = bundle.join(format!(".config.json.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        // A hard link fails if config.json appeared meanwhile: never overwrite.
        fs::hard_link(&tmp, &path)
    };
    let result = write();
    let _ = fs::remove_file(&tmp);
    result.map_err(file_err("writing", &path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_plans() {
        let v = default_spec(false, 0, 0);
        let spec: crate::spec::Spec = serde_json::from_value(v).unwrap();
        assert_eq!(spec.process.as_ref().unwrap().args, vec!["sh".to_string()]);
    }

    #[test]
    fn rootless_maps_the_caller_and_drops_the_network_namespace() {
        let v = default_spec(true, 1000, 100);
        assert_eq!(v["linux"]["uidMappings"][0]["hostID"], 1000);
        assert_eq!(v["linux"]["gidMappings"][0]["hostID"], 100);
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "user"]);
        assert!(v["linux"].get("resources").is_none());
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        write_default_spec(dir.path(), false).unwrap();
        let err = write_default_spec(dir.path(), false).unwrap_err();
        assert_eq!(
            berth_kind::HasKind::kind(&err),
            berth_kind::Kind::AlreadyExists
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file left");
    }
}
