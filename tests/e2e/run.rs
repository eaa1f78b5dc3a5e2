//! berth-run end to end, as root, against the real kernel: the lifecycle, the spec items
//! (seen from inside by the probe), security properties, and a differential suite that runs
//! the same bundle under runc and compares the probe's reports field by field.
//!
//! Each test has its own state root, unique container ids and cgroupsPath under
//! /berth/<unique>; the `Lab` guard force-deletes its containers and removes its cgroups and
//! directories on drop, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::lab::{
    cgroup_dirs, run_to_files, runc_like_config, stderr, unique, wait_until, Bundle, Lab, Rt,
};

/// This module's use of the lab: bundles with busybox (static) and the probe in the
/// rootfs and a config like `runc spec`'s with the cgroupsPath /berth/<id>.
trait RunLab {
    /// A bundle whose config `edit` changes; drop removes container `id` and its cgroup
    /// even if the test starts it by other means.
    fn bundle(&self, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf;
    /// `run` of the probe in the foreground: its JSON report.
    fn probe(&self, edit: impl FnOnce(&mut Value)) -> Value;
    fn state(&self, id: &str) -> Value;
}

impl RunLab for Lab {
    fn bundle(&self, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        self.track(Rt::Berth, id);
        let mut config = runc_like_config(&format!("/berth/{id}"));
        edit(&mut config);
        Bundle::new(self.path().join(format!("bundle-{id}")))
            .applets(&[
                "sh", "true", "echo", "cat", "ls", "id", "sleep", "mkdir", "touch", "stat",
                "readlink", "hostname",
            ])
            .probe()
            .dirs(&["proc", "sys", "dev", "tmp", "etc"])
            .passwd()
            .write(&config)
    }

    fn probe(&self, edit: impl FnOnce(&mut Value)) -> Value {
        let id = unique("probe");
        let b = self.bundle(&id, |c| {
            c["process"]["args"] = json!(["/bin/probe"]);
            edit(c);
        });
        let out = self.berth_run(&id, &b);
        assert!(
            out.status.success(),
            "berth-run run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "probe output: {e}: {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn state(&self, id: &str) -> Value {
        self.state_of(Rt::Berth, id)
    }
}

fn cap_mask(names: &[&str]) -> u64 {
    let table = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
    ];
    names
        .iter()
        .map(|n| 1u64 << table.iter().position(|t| t == n).unwrap())
        .sum()
}

// ---- lifecycle ----

#[test]
fn run_passes_the_container_exit_status_through() {
    let lab = Lab::new();
    for (script, want) in [("exit 7", 7), ("true", 0)] {
        let id = unique("status");
        let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["sh", "-c", script]));
        let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
        assert_eq!(out.status.code(), Some(want), "{script}: {}", stderr(&out));
        assert!(
            !lab.state_root().join(&id).exists(),
            "foreground run deletes the container"
        );
    }
    // Killed by a signal: 128+N. (Pid 1 ignores its own `kill -9 $$`, so it comes from outside.)
    let id = unique("status");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["sleep", "1000"]));
    let dir = lab.dir.path().to_path_buf();
    let root = lab.state_root();
    let (id2, b2) = (id.clone(), b.clone());
    let fg = std::thread::spawn(move || {
        run_to_files(
            &dir,
            Command::new(berth_testkit::bin_path("berth-run"))
                .arg("--root")
                .arg(root)
                .args(["run", "-b", b2.to_str().unwrap(), &id2]),
        )
    });
    wait_until("the container to run", || {
        lab.berth(&["state", &id])
            .stdout
            .windows(9)
            .any(|w| w == b"\"running\"")
    });
    assert!(lab.berth(&["kill", &id, "KILL"]).status.success());
    let out = fg.join().unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
}

// Regression: under parallel load `start` said "its init exited before start" (stopped) for a live init.
#[test]
fn parallel_create_start_and_run_all_start_and_a_second_start_says_running() {
    let lab = Lab::new();
    let n = 12;
    let made: Vec<(String, PathBuf)> = (0..n)
        .map(|_| {
            let id = unique("par");
            let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["sleep", "1000"]));
            (id, b)
        })
        .collect();
    let ran: Vec<(String, PathBuf)> = (0..n)
        .map(|_| {
            let id = unique("parrun");
            let b = lab.bundle(&id, |c| {
                c["process"]["args"] = json!(["sh", "-c", "exit 3"])
            });
            (id, b)
        })
        .collect();
    std::thread::scope(|s| {
        let lab = &lab;
        for (id, b) in &made {
            s.spawn(move || {
                let out = lab.berth(&["create", "-b", b.to_str().unwrap(), id]);
                assert!(out.status.success(), "create {id}: {}", stderr(&out));
                let out = lab.berth(&["start", id]);
                assert!(out.status.success(), "start {id}: {}", stderr(&out));
            });
        }
        for (id, b) in &ran {
            s.spawn(move || {
                let out = lab.berth(&["run", "-b", b.to_str().unwrap(), id]);
                assert_eq!(out.status.code(), Some(3), "run {id}: {}", stderr(&out));
            });
        }
    });
    for (id, _) in &made {
        assert_eq!(lab.state(id)["status"], "running", "{id}");
        let again = lab.berth(&["start", id]);
        assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
        assert!(
            stderr(&again).contains("is running: only a created container can be started"),
            "{}",
            stderr(&again)
        );
    }
}

#[test]
fn run_reports_missing_and_unexecutable_programs_as_127_and_126() {
    let lab = Lab::new();
    let id = unique("noexec");
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["nonexistent-program"])
    });
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one line: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("nonexistent-program"),
        "{}",
        stderr(&out)
    );

    let id = unique("noexec");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["/etc/passwd"]));
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(!lab.state_root().join(&id).exists());
}

#[test]
fn create_blocks_until_start_and_state_tells_the_truth() {
    let lab = Lab::new();
    let id = unique("life");
    let marker = lab.dir.path().join("started");
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["sh", "-c", "touch /tmp/started; sleep 1000"]);
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp", "type": "bind", "source": lab_tmp(&marker), "options": ["rbind"]}));
    });
    let pid_file = lab.dir.path().join("pid");
    let out = lab.berth(&[
        "create",
        "-b",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = lab.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(st["pid"], pid);
    assert!(!marker.exists(), "the program must not run before start");
    assert!(lab.state_root().join(&id).join("state.json").exists());

    // A second create with the same id is a conflict.
    let again = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(again.status.code(), Some(4), "{}", stderr(&again));

    let out = lab.berth(&["start", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("the program to run", || marker.exists());
    assert_eq!(lab.state(&id)["status"], "running");

    // A running container is not deleted without --force.
    let del = lab.berth(&["delete", &id]);
    assert_eq!(del.status.code(), Some(1), "{}", stderr(&del));

    let out = lab.berth(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("the container to stop", || {
        lab.state(&id)["status"] == "stopped"
    });
    let out = lab.berth(&["delete", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.berth(&["state", &id]).status.code(), Some(3));
    for dir in cgroup_dirs(&format!("/berth/{id}")) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

fn lab_tmp(marker: &Path) -> String {
    marker.parent().unwrap().to_str().unwrap().to_string()
}

#[test]
fn delete_force_kills_a_running_container_and_kill_all_reaches_every_process() {
    let lab = Lab::new();
    let id = unique("force");
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["sh", "-c", "sleep 1000 & sleep 1000"])
    });
    let out = lab.berth(&["run", "-d", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lab.state(&id)["status"], "running");
    let procs = PathBuf::from(format!("/sys/fs/cgroup/pids/berth/{id}/cgroup.procs"));
    wait_until("both processes", || {
        std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .count()
            >= 2
    });
    let out = lab.berth(&["kill", "--all", &id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until("all processes gone", || {
        std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .trim()
            .is_empty()
    });

    let id = unique("force");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["sleep", "1000"]));
    assert!(lab
        .berth(&["run", "-d", "-b", b.to_str().unwrap(), &id])
        .status
        .success());
    let out = lab.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!lab.state_root().join(&id).exists());
}

#[test]
fn a_setup_failure_is_one_line_and_leaves_nothing_behind() {
    let lab = Lab::new();
    let id = unique("fail");
    let b = lab.bundle(&id, |c| {
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/data", "type": "bind", "source": "/nope", "options": ["rbind"]}));
    });
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mount /data: source /nope: no such file or directory"),
        "{err}"
    );
    assert!(!lab.state_root().join(&id).exists(), "state left behind");
    for dir in cgroup_dirs(&format!("/berth/{id}")) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn hostile_or_bad_input_gets_documented_exit_codes() {
    let lab = Lab::new();
    assert_eq!(
        lab.berth(&["state", "no-such-container"]).status.code(),
        Some(3)
    );
    assert_eq!(lab.berth(&["state", "../etc"]).status.code(), Some(2));
    let id = unique("bad");
    let b = lab.bundle(&id, |c| {
        c["process"]["apparmorProfile"] = json!("docker-default")
    });
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("AppArmor"), "{}", stderr(&out));
    let id = unique("bad");
    let b =
        lab.bundle(
            &id,
            |c| {
                c["process"]["rlimits"] =
                    json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}])
            },
        );
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("RLIMIT_NOFILE") && stderr(&out).contains("CAP_SYS_RESOURCE"),
        "{}",
        stderr(&out)
    );
    let id = unique("bad");
    let b = lab.bundle(&id, |c| c["process"]["oomScoreAdj"] = json!(-500));
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("oomScoreAdj -500") && stderr(&out).contains("CAP_SYS_RESOURCE"),
        "{}",
        stderr(&out)
    );
    assert!(!lab.state_root().join(&id).exists());
}

// ---- the spec, seen from inside ----

#[test]
fn the_probe_sees_the_process_the_spec_asked_for() {
    let lab = Lab::new();
    let v = lab.probe(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 6], "umask": 63});
        c["process"]["cwd"] = json!("/work/dir");
        c["process"]["env"] = json!(["PATH=/bin", "FOO=bar"]);
        c["process"]["oomScoreAdj"] = json!(123);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100}]);
        let caps = json!(["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
        c["process"]["capabilities"] = json!({"bounding": ["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"], "effective": caps, "permitted": caps, "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]});
        c["hostname"] = json!("probe-host");
        c["domainname"] = json!("example.org");
    });
    assert_eq!(v["uid"], 1000);
    assert_eq!(v["gid"], 1000);
    assert_eq!(v["groups"], json!([5, 6]));
    assert_eq!(v["umask"], 63);
    assert_eq!(v["cwd"], "/work/dir");
    assert!(v["env"].as_array().unwrap().contains(&json!("FOO=bar")));
    assert!(
        v["env"]
            .as_array()
            .unwrap()
            .contains(&json!("HOME=/home/user")),
        "HOME from /etc/passwd: {}",
        v["env"]
    );
    assert_eq!(v["oom_score_adj"], 123);
    assert_eq!(
        v["rlimits"]["RLIMIT_NOFILE"],
        json!({"soft": "100", "hard": "200"})
    );
    assert_eq!(
        v["caps"]["bounding"],
        cap_mask(&["CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN"])
    );
    assert_eq!(v["caps"]["inheritable"], cap_mask(&["CAP_KILL"]));
    assert_eq!(v["caps"]["ambient"], cap_mask(&["CAP_KILL"]));
    assert_eq!(
        v["caps"]["permitted"],
        cap_mask(&["CAP_KILL"]),
        "non-root keeps only ambient caps across exec"
    );
    assert_eq!(v["no_new_privs"], 1);
    assert_eq!(v["hostname"], "probe-host");
    assert_eq!(v["domainname"], "example.org");
}

#[test]
fn root_gets_the_bounding_set_and_empty_inheritable_by_default() {
    let lab = Lab::new();
    let v = lab.probe(|_| {});
    let caps = cap_mask(&["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(v["uid"], 0);
    assert_eq!(v["caps"]["bounding"], caps);
    assert_eq!(v["caps"]["effective"], caps);
    assert_eq!(
        v["caps"]["inheritable"], 0,
        "inheritable is empty unless asked for"
    );
    assert_eq!(v["caps"]["ambient"], 0, "ambient needs inheritable");
    assert_eq!(v["umask"], 0o022);
}

#[test]
fn namespaces_are_new_and_the_cgroup_is_under_berth() {
    let lab = Lab::new();
    let host = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .unwrap()
            .display()
            .to_string()
    };
    let v = lab.probe(|_| {});
    for n in ["pid", "net", "ipc", "uts", "mnt", "cgroup"] {
        assert_ne!(
            v["namespaces"][n],
            host(n).as_str(),
            "{n} namespace is the host's"
        );
    }
    assert_eq!(v["namespaces"]["user"], host("user").as_str());
    assert_eq!(v["pid"], 1, "the program is pid 1 in its pid namespace");
    // In its own cgroup namespace, the container sees its cgroup as the root.
    assert!(
        v["cgroup"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "8:pids:/" || l.as_str().unwrap().ends_with(":pids:/")),
        "{}",
        v["cgroup"]
    );
}

#[test]
fn joined_namespaces_are_shared_with_their_owner() {
    let lab = Lab::new();
    // A process in a fresh network and uts namespace to join.
    let holder = KillOnDrop(
        Command::new("unshare")
            .args(["--net", "--uts", "sleep", "1000"])
            .spawn()
            .unwrap(),
    );
    let pid = holder.0.id();
    wait_until("the holder's namespaces", || {
        std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
            != std::fs::read_link("/proc/self/ns/net").ok()
    });
    let want = std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .display()
        .to_string();
    let v = lab.probe(|c| {
        c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "network", "path": format!("/proc/{pid}/ns/net")}, {"type": "uts", "path": format!("/proc/{pid}/ns/uts")}]);
    });
    drop(holder);
    assert_eq!(v["namespaces"]["net"], want.as_str());
}

/// A child process killed and reaped when dropped, pass or fail.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn user_namespace_maps_root_to_an_unprivileged_host_uid() {
    let lab = Lab::new();
    let id = unique("userns");
    let b = lab.bundle(&id, |c| {
        c["linux"]["namespaces"].as_array_mut().unwrap().push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["process"]["args"] = json!(["sh", "-c", "cat /proc/self/uid_map; /bin/probe"]);
        // sysfs cannot be mounted in a user namespace without its own network namespace owner;
        // keep the default mounts minimal.
        c["mounts"] = json!([{"destination": "/proc", "type": "proc", "source": "proc"},
                             {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}]);
    });
    std::process::Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(b.join("rootfs"))
        .status()
        .unwrap();
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let (map, json_text) = text.split_once('{').unwrap();
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    let v: Value = serde_json::from_str(&format!("{{{json_text}")).unwrap();
    assert_eq!(v["uid"], 0);
    assert_ne!(
        v["namespaces"]["user"],
        std::fs::read_link("/proc/self/ns/user")
            .unwrap()
            .display()
            .to_string()
            .as_str()
    );
}

#[test]
fn mounts_masked_and_readonly_paths_are_applied() {
    let lab = Lab::new();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("file"), b"x").unwrap();
    let src_path = src.path().to_str().unwrap().to_string();
    let v = lab.probe(|c| {
        let m = c["mounts"].as_array_mut().unwrap();
        m.push(json!({"destination": "/data", "type": "bind", "source": src_path, "options": ["rbind", "ro", "nosuid"]}));
        m.push(json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "size=1m", "mode=700"]}));
        m.push(json!({"destination": "/rro", "type": "bind", "source": "/sys/fs/cgroup", "options": ["rbind", "rro"]}));
    });
    let mounts = v["mounts"].as_array().unwrap();
    let at = |p: &str| {
        mounts
            .iter()
            .rev()
            .find(|m| m["mount_point"] == p)
            .unwrap_or_else(|| panic!("no mount at {p}"))
    };
    assert!(
        at("/data")["options"]
            .as_str()
            .unwrap()
            .contains("ro,nosuid"),
        "{}",
        at("/data")
    );
    assert_eq!(at("/scratch")["fstype"], "tmpfs");
    assert!(
        at("/scratch")["super_options"]
            .as_str()
            .unwrap()
            .contains("size=1024k"),
        "{}",
        at("/scratch")
    );
    assert!(at("/scratch")["options"]
        .as_str()
        .unwrap()
        .contains("nodev"));
    // rro: every submount of the recursive bind is read-only too.
    let sub = mounts
        .iter()
        .filter(|m| m["mount_point"].as_str().unwrap().starts_with("/rro/"))
        .collect::<Vec<_>>();
    assert!(!sub.is_empty());
    assert!(
        sub.iter()
            .all(|m| m["options"].as_str().unwrap().starts_with("ro")),
        "{sub:?}"
    );
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/sys/firmware",
        "/proc/acpi",
    ] {
        if v["paths"][p]["exists"] == true {
            assert_eq!(v["paths"][p]["masked"], true, "{p} is not masked");
        }
    }
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        // This kernel has no /proc/sysrq-trigger or /proc/kcore: only existing paths count.
        if v["paths"][p]["exists"] == true {
            assert_eq!(v["paths"][p]["readonly"], true, "{p} is not read-only");
        }
    }
    assert_eq!(v["paths"]["/proc/sys"]["readonly"], true);
    assert!(at("/sys")["options"].as_str().unwrap().starts_with("ro"));
}

#[test]
fn readonly_root_and_dev_devices() {
    let lab = Lab::new();
    let id = unique("rootro");
    let b = lab.bundle(&id, |c| {
        c["root"]["readonly"] = json!(true);
        c["process"]["args"] = json!(["sh", "-c", "touch /x 2>/dev/null && echo writable; touch /dev/shm/ok && echo shm-ok; ls /dev; readlink /dev/fd; readlink /dev/ptmx; echo hi > /dev/null && echo null-ok"]);
    });
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("writable"), "{text}");
    assert!(
        text.contains("shm-ok") && text.contains("null-ok"),
        "{text}"
    );
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
    ] {
        assert!(
            text.split_whitespace().any(|w| w == dev),
            "/dev/{dev} missing: {text}"
        );
    }
    assert!(
        text.contains("/proc/self/fd") && text.contains("pts/ptmx"),
        "{text}"
    );
}

#[test]
fn seccomp_profile_with_errno_and_argument_rules() {
    let lab = Lab::new();
    let id = unique("seccomp");
    let b = lab.bundle(&id, |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        });
        c["process"]["args"] = json!(["sh", "-c", "mkdir /tmp/d; echo mkdir=$?; /bin/probe"]);
    });
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mkdir=1") && text.contains("Permission denied") || text.contains("mkdir=1"),
        "{text} / {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("Permission denied"),
        "errnoRet 13 is EACCES: {}",
        stderr(&out)
    );
    let json_text = &text[text.find('{').unwrap()..];
    let v: Value = serde_json::from_str(json_text).unwrap();
    assert_eq!(v["seccomp"], 2);
}

#[test]
fn cgroup_resources_are_written_under_berth() {
    let lab = Lab::new();
    let id = unique("cgroup");
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["sleep", "1000"]);
        c["linux"]["resources"] = json!({
            "memory": {"limit": 67108864, "reservation": 33554432},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
            "pids": {"limit": 42},
            "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}]
        });
    });
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let read = |p: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{p}"))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read(&format!("memory/berth/{id}/memory.limit_in_bytes")),
        "67108864"
    );
    assert_eq!(
        read(&format!("memory/berth/{id}/memory.soft_limit_in_bytes")),
        "33554432"
    );
    assert_eq!(read(&format!("cpu/berth/{id}/cpu.shares")), "512");
    assert_eq!(read(&format!("cpu/berth/{id}/cpu.cfs_quota_us")), "50000");
    assert_eq!(read(&format!("cpuset/berth/{id}/cpuset.cpus")), "0");
    assert_eq!(read(&format!("pids/berth/{id}/pids.max")), "42");
    let devices = read(&format!("devices/berth/{id}/devices.list"));
    assert!(
        devices.contains("c 10:200 rwm")
            && devices.contains("c 1:3 rwm")
            && !devices.contains("a *:* rwm"),
        "{devices}"
    );
    let pid = lab.state(&id)["pid"].as_i64().unwrap();
    assert!(read(&format!("pids/berth/{id}/cgroup.procs"))
        .lines()
        .any(|l| l == pid.to_string()));
    assert!(lab.berth(&["delete", &id]).status.success());
    assert!(!Path::new(&format!("/sys/fs/cgroup/memory/berth/{id}")).exists());
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() {
    let lab = Lab::new();
    let id = unique("hooks");
    let log = lab.dir.path().join("hooks.log");
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("read s; echo {name} \"$s\" >> {}", log.display())]});
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["true"]);
        c["hooks"] = json!({"prestart": [hook("prestart")], "createRuntime": [hook("createRuntime")], "createContainer": [hook("createContainer")],
                             "poststart": [hook("poststart")], "poststop": [hook("poststop")],
                             "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/start-hook"]}]});
    });
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for line in text.lines() {
        let st: Value = serde_json::from_str(line.split_once(' ').unwrap().1).unwrap();
        assert_eq!(st["id"], id.as_str());
    }
    assert!(text
        .lines()
        .last()
        .unwrap()
        .contains("\"status\":\"stopped\""));
    // startContainer runs inside the container (its path resolves in the rootfs) with the
    // running state, before the program.
    let inside = std::fs::read_to_string(b.join("rootfs/tmp/start-hook")).unwrap();
    let st: Value = serde_json::from_str(&inside).unwrap();
    assert_eq!(st["status"], "running");
    assert!(
        st["pid"].as_i64().unwrap() > 1,
        "host pid of the init: {inside}"
    );

    // A failing hook fails the create and leaves nothing behind.
    let id = unique("hooks");
    let b = lab.bundle(&id, |c| {
        c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]})
    });
    let out = lab.berth(&["create", "-b", b.to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("createRuntime hook /bin/false"),
        "{}",
        stderr(&out)
    );
    assert!(!lab.state_root().join(&id).exists());
}

// ---- security ----

#[test]
fn no_fd_leaks_but_preserved_fds_arrive() {
    let lab = Lab::new();
    let v = lab.probe(|_| {});
    let fds: Vec<&String> = v["fds"].as_object().unwrap().keys().collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", v["fds"]);

    let id = unique("fds");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["/bin/probe"]));
    // Put a file at fd 3 in berth-run with a shell redirection.
    let out = run_to_files(
        lab.dir.path(),
        Command::new("sh").arg("-c").arg(format!(
            "exec 3</etc/hostname; exec {} --root {} run --preserve-fds 1 -b {} {}",
            berth_testkit::bin_path("berth-run").display(),
            lab.state_root().display(),
            b.display(),
            id
        )),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fds"]["3"], "/etc/hostname", "{}", v["fds"]);
}

#[test]
fn the_container_cannot_reach_the_runtime_binary() {
    let lab = Lab::new();
    let id = unique("exe");
    // /proc/self/exe as an interpreter is the runc CVE-2019-5736 trick: it must name the
    // sealed exec stub, never berth-run.
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "readlink /proc/1/exe; ls -l /proc/self/fd | wc -l"
        ])
    });
    std::fs::write(b.join("rootfs/bin/evil"), "#!/proc/self/exe\n").unwrap();
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("/bin/busybox"), "{text}");
    assert!(!text.contains("berth-run"), "{text}");

    let id = unique("exe");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["/bin/evil"]));
    std::fs::write(b.join("rootfs/bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        b.join("rootfs/bin/evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let out = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    // The interpreter is the stub: it runs with no program and fails; berth-run never runs.
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("berth-run")
            && !stderr(&out).contains("Usage: berth-run"),
        "{}",
        stderr(&out)
    );
    assert_ne!(out.status.code(), Some(0));
}

#[test]
fn terminal_master_arrives_over_the_console_socket() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let lab = Lab::new();
    let id = unique("tty");
    let b = lab.bundle(&id, |c| {
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo is-a-tty; readlink /proc/self/fd/0"
        ]);
    });
    let sock_path = lab.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let out = lab.berth(&[
        "create",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "-b",
        b.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let master = berth_sys::recv_fd(conn.as_fd()).unwrap();
    assert!(lab.berth(&["start", &id]).status.success());
    let mut f = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while let Ok(n) = f.read(&mut buf) {
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        if text.contains("/dev/pts/")
            && text.contains('\n')
            && text.trim_end().ends_with(|c: char| c.is_ascii_digit())
        {
            break;
        }
    }
    assert!(text.contains("is-a-tty"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
}

// ---- differential: the same bundle under runc ----

#[test]
fn differential_probe_reports_match_runc() {
    let lab = Lab::new();
    let id = unique("diff");
    let b = lab.bundle(&id, |c| {
        c["process"]["args"] = json!(["/bin/probe"]);
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10]});
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}, {"type": "RLIMIT_CORE", "hard": 0, "soft": 0}]);
        c["process"]["oomScoreAdj"] = json!(10);
    });
    let ours = lab.berth(&["run", "-b", b.to_str().unwrap(), &id]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let runc_id = unique("diff-runc");
    // runc gets its own cgroup under /berth as well.
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    config["linux"]["cgroupsPath"] = json!(format!("/berth/{runc_id}"));
    std::fs::write(b.join("config.json"), serde_json::to_vec(&config).unwrap()).unwrap();
    let theirs = lab.runc_run(&runc_id, &b);
    assert!(theirs.status.success(), "runc: {}", stderr(&theirs));
    let a: Value = serde_json::from_slice(&ours.stdout).unwrap();
    let r: Value = serde_json::from_slice(&theirs.stdout).unwrap();

    // Fields that must match exactly.
    for field in [
        "uid",
        "gid",
        "groups",
        "caps",
        "no_new_privs",
        "seccomp",
        "umask",
        "cwd",
        "args",
        "hostname",
        "domainname",
        "rlimits",
        "oom_score_adj",
        "pid",
        "paths",
    ] {
        assert_eq!(
            a[field], r[field],
            "{field} differs: berth {} runc {}",
            a[field], r[field]
        );
    }
    // env: the same, whatever the order.
    let sorted = |v: &Value| {
        let mut e: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_string())
            .collect();
        e.sort();
        e
    };
    assert_eq!(sorted(&a["env"]), sorted(&r["env"]));
    // Mounts: the same mount points with the same type and per-mount options, except the
    // documented differences (docs/security.md, "Differences from runc"): berth mounts the
    // unified cgroup2 view on this hybrid host, keeps the /sys/fs/cgroup tmpfs read-only,
    // and does not mount named v1 hierarchies (name=systemd).
    let table = |v: &Value| {
        let mut m: Vec<(String, String, String)> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                let p = m["mount_point"].as_str().unwrap();
                !p.starts_with("/sys/fs/cgroup")
            })
            .map(|m| {
                (
                    m["mount_point"].as_str().unwrap().into(),
                    m["fstype"].as_str().unwrap().into(),
                    m["options"].as_str().unwrap().into(),
                )
            })
            .collect();
        m.sort();
        m
    };
    let (ta, tr) = (table(&a), table(&r));
    // Masked files are /dev/null binds in both; the source device differs in name only.
    assert_eq!(ta.len(), tr.len(), "mount count: berth {ta:?}\nrunc {tr:?}");
    for (x, y) in ta.iter().zip(tr.iter()) {
        assert_eq!(x.0, y.0);
        assert_eq!(x.2, y.2, "options of {}", x.0);
    }
    let fds = |v: &Value| {
        v["fds"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(fds(&a), fds(&r));
    // Both containers see their own cgroup as / (cgroup namespace).
    assert!(a["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l.as_str().unwrap().ends_with(":pids:/")));
}

#[test]
fn sysctls_personality_and_no_pivot() {
    let lab = Lab::new();
    let id = unique("sysctl");
    let b = lab.bundle(&id, |c| {
        c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1234"});
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni; cat /proc/self/personality"
        ]);
    });
    let host_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let out = lab.berth(&["run", "--no-pivot", "-b", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(&lines[..2], ["1", "1234"], "{text}");
    assert_eq!(lines[2], "00000008", "LINUX32 personality: {text}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_forward,
        "the host's sysctl changed"
    );
}
