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
use std::process::Command;

use serde_json::{json, Value};

use crate::lab::{minimal_config, unique, Bundle, Lab};

/// One container's world: the lab, and the container's id and cgroup.
struct Case {
    lab: Lab,
    id: String,
    cgroup: String,
}

impl Case {
    fn new(tag: &str) -> Case {
        let id = unique(tag);
        Case {
            lab: Lab::new(),
            cgroup: format!("/berth/{id}"),
            id,
        }
    }

    /// A bundle with static busybox running `sleep 1000`; `edit` changes the config.
    fn bundle(&self, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut config = minimal_config(&self.cgroup, &["sleep", "1000"]);
        config["process"]["terminal"] = json!(false);
        config["root"]["readonly"] = json!(false);
        config["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
        edit(&mut config);
        Bundle::new(self.lab.path().join("bundle"))
            .applets(&["sleep"])
            .dirs(&["proc", "sys", "dev", "tmp"])
            .write(&config)
    }

    /// `create`, then the init's pid from `state`.
    fn create(&self, bundle: &Path) -> i32 {
        let out = self
            .lab
            .berth(&["create", "--bundle", bundle.to_str().unwrap(), &self.id]);
        assert!(
            out.status.success(),
            "create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = self.lab.state_of(crate::lab::Rt::Berth, &self.id);
        assert_eq!(v["status"], "created");
        v["pid"].as_i64().unwrap() as i32
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

fn assert_deleted_cleanly(case: &Case) {
    let out = case.lab.berth(&["delete", "--force", &case.id]);
    assert!(
        out.status.success(),
        "delete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for dir in cgroup_dirs(&case.cgroup) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(!case.lab.state_root().join(&case.id).exists());
}

#[test]
fn run_created_init_is_in_its_cgroup_in_every_hierarchy() {
    let case = Case::new("join");
    let b = case.bundle(|_| {});
    let pid = case.create(&b);
    assert_in_cgroup_everywhere(pid, &case.cgroup);
    assert_deleted_cleanly(&case);
}

#[test]
fn run_created_init_with_a_cgroup_namespace_sees_its_cgroup_as_root() {
    let case = Case::new("joinns");
    let b = case.bundle(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}));
    });
    let pid = case.create(&b);
    assert_in_cgroup_everywhere(pid, &case.cgroup);
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
    assert_deleted_cleanly(&case);
}

#[test]
fn run_created_init_in_a_user_namespace_joins_its_cgroups_too() {
    let case = Case::new("joinuser");
    let b = case.bundle(|c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user"}));
        ns.push(json!({"type": "cgroup"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let pid = case.create(&b);
    assert_in_cgroup_everywhere(pid, &case.cgroup);
    assert_deleted_cleanly(&case);
}
