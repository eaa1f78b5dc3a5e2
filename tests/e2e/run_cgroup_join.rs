//! berth-run's init joins its v1 cgroups itself (it writes `0` to each hierarchy's `tasks`
//! file through an fd berth-run opened), which skips the kernel's global threadgroup lock and
//! its RCU grace period (crates/runtime/src/init.rs, `join_v1_cgroups`). These tests check
//! from the host that a created container's init (blocked before its exec) is in the
//! container's cgroup in every hierarchy berth-run manages, with and without new cgroup and
//! user namespaces, and that nothing is left behind after delete.
//!
//! Each test has its own state root, unique ids and cgroupsPath /berth/<unique>; the guard
//! force-deletes the container and removes its cgroup directories on drop, pass or fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "e2e-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// One container's world: state root, bundle, id; force-deleted on drop.
struct Lab {
    dir: tempfile::TempDir,
    id: String,
    cgroup: String,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        assert!(
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
            "berth-run end-to-end tests need root"
        );
        let id = unique(tag);
        Lab {
            dir: tempfile::tempdir().unwrap(),
            cgroup: format!("/berth/{id}"),
            id,
        }
    }

    /// A bundle with static busybox running `sleep 1000`; `edit` changes the config.
    fn bundle(&self, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let b = self.dir.path().join("bundle");
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("busybox-static is installed (scripts/setup)");
        std::os::unix::fs::symlink("busybox", bin.join("sleep")).unwrap();
        for d in ["proc", "sys", "dev", "tmp"] {
            std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
        }
        let mut config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["sleep", "1000"],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {
                "cgroupsPath": self.cgroup,
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]
            }
        });
        edit(&mut config);
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        b
    }

    /// berth-run with output in files, not pipes: a created init inherits stdout and stderr
    /// and would hold a pipe open after berth-run exits.
    fn berth(&self, args: &[&str]) -> Output {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = self.dir.path();
        let (out_path, err_path) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
        let status = Command::new(berth_testkit::bin_path("berth-run"))
            .arg("--root")
            .arg(dir.join("state"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .status()
            .unwrap();
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    /// `create`, then the init's pid from `state`.
    fn create(&self, bundle: &Path) -> i32 {
        let out = self.berth(&["create", "--bundle", bundle.to_str().unwrap(), &self.id]);
        assert!(
            out.status.success(),
            "create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = self.berth(&["state", &self.id]);
        assert!(
            out.status.success(),
            "state: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["status"], "created");
        v["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.berth(&["delete", "--force", &self.id]);
        for dir in cgroup_dirs(&self.cgroup) {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// The hierarchies berth-run manages on this host: (controller list as /proc/PID/cgroup names
/// it, mount point) of every v1 hierarchy with controllers (named ones such as
/// `name=systemd` carry none and are not joined), plus ("", mount) for a cgroup2 hierarchy.
fn hierarchies() -> Vec<(String, PathBuf)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let known: Vec<String> = std::fs::read_to_string("/proc/cgroups")
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mount = PathBuf::from(left.split(' ').nth(4).unwrap());
        let mut r = right.split(' ');
        let fstype = r.next().unwrap();
        let options = r.nth(1).unwrap_or("");
        if fstype == "cgroup2" {
            out.push((String::new(), mount));
        } else if fstype == "cgroup" {
            let controllers: Vec<&str> = options
                .split(',')
                .filter(|o| known.iter().any(|k| k == o))
                .collect();
            if !controllers.is_empty() {
                out.push((controllers.join(","), mount));
            }
        }
    }
    assert!(!out.is_empty(), "no cgroup hierarchy mounted");
    out
}

fn cgroup_dirs(cg: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|(_, m)| m.join(cg.trim_start_matches('/')))
        .collect()
}

/// Asserts that pid is in `cg` in every managed hierarchy: /proc/PID/cgroup names it, and the
/// directory's cgroup.procs lists it.
fn assert_in_cgroup_everywhere(pid: i32, cg: &str) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for (controllers, mount) in hierarchies() {
        let line = text
            .lines()
            .find(|l| l.split(':').nth(1) == Some(controllers.as_str()))
            .unwrap_or_else(|| panic!("no {controllers:?} line in /proc/{pid}/cgroup:\n{text}"));
        assert_eq!(
            line.splitn(3, ':').nth(2),
            Some(cg),
            "hierarchy {controllers:?} of pid {pid}:\n{text}"
        );
        let procs =
            std::fs::read_to_string(mount.join(cg.trim_start_matches('/')).join("cgroup.procs"))
                .unwrap();
        assert!(
            procs.lines().any(|l| l == pid.to_string()),
            "pid {pid} not in cgroup.procs under {}: {procs:?}",
            mount.display()
        );
    }
}

fn assert_deleted_cleanly(lab: &Lab) {
    let out = lab.berth(&["delete", "--force", &lab.id]);
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dir in cgroup_dirs(&lab.cgroup) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(!lab.dir.path().join("state").join(&lab.id).exists());
}

#[test]
fn run_created_init_is_in_its_cgroup_in_every_hierarchy() {
    let lab = Lab::new("join");
    let b = lab.bundle(|_| {});
    let pid = lab.create(&b);
    assert_in_cgroup_everywhere(pid, &lab.cgroup);
    assert_deleted_cleanly(&lab);
}

#[test]
fn run_created_init_with_a_cgroup_namespace_sees_its_cgroup_as_root() {
    let lab = Lab::new("joinns");
    let b = lab.bundle(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}));
    });
    let pid = lab.create(&b);
    assert_in_cgroup_everywhere(pid, &lab.cgroup);
    // The namespace was made after the join: its root is the container's cgroup. (Paths in
    // /proc/PID/cgroup are shown relative to the reader's cgroup namespace root.)
    let status = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-C", "cat"])
        .arg(format!("/proc/{pid}/cgroup"))
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let inside = String::from_utf8_lossy(&status.stdout);
    for (controllers, _) in hierarchies() {
        let line = inside
            .lines()
            .find(|l| l.split(':').nth(1) == Some(controllers.as_str()))
            .unwrap_or_else(|| panic!("no {controllers:?} line inside:\n{inside}"));
        assert!(
            line.ends_with(":/"),
            "{controllers:?} inside the namespace: {line}"
        );
    }
    assert_deleted_cleanly(&lab);
}

#[test]
fn run_created_init_in_a_user_namespace_joins_its_cgroups_too() {
    let lab = Lab::new("joinuser");
    let b = lab.bundle(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        ns.push(json!({"type": "cgroup"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let pid = lab.create(&b);
    assert_in_cgroup_everywhere(pid, &lab.cgroup);
    assert_deleted_cleanly(&lab);
}
