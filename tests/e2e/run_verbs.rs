//! berth-run's `spec`, `list` and `ps` end to end, as root, beside runc on the same bundles:
//! the default config runs under both runtimes; a created and then started container shows
//! in `list` and `ps` with its real pids and status, as runc shows its own.
//!
//! Every test has its own state roots, unique ids and cgroupsPath under /berth/<unique>; the
//! `Lab` guard force-deletes its containers (both runtimes) and removes the cgroups on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::lab::{cgroup_dirs, read_config, stderr, wait_until, write_config, Bundle, Lab, Rt};

fn unique(tag: &str) -> String {
    crate::lab::unique_with("e2e-v", tag)
}

/// This module's use of the lab: bundles with the config `berth-run spec` writes.
trait VerbsLab {
    /// A busybox rootfs and the config `berth-run spec` wrote, with `args`, no terminal and
    /// a cgroupsPath under /berth (both runtimes would otherwise nest under our own cgroup).
    fn bundle(&self, name: &str, cgroup: &str, args: Value) -> PathBuf;
}

impl VerbsLab for Lab {
    fn bundle(&self, name: &str, cgroup: &str, args: Value) -> PathBuf {
        let b = Bundle::new(self.path().join(name))
            .applets(&["sh", "echo", "sleep", "true", "hostname"])
            .dirs(&["proc", "sys", "dev"])
            .rootfs();
        let out = self.berth(&["spec", "--bundle", b.to_str().unwrap()]);
        assert!(out.status.success(), "spec: {}", stderr(&out));
        let mut config = read_config(&b);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = args;
        config["linux"]["cgroupsPath"] = json!(cgroup);
        write_config(&b, &config);
        b
    }
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

#[test]
fn spec_default_config_runs_under_berth_run_and_runc() {
    let lab = Lab::new();
    let (berth_id, runc_id) = (unique("spec-b"), unique("spec-r"));
    lab.track(Rt::Berth, &berth_id);
    lab.track(Rt::Runc, &runc_id);
    let args = json!(["sh", "-c", "echo hello from $(hostname)"]);
    let b1 = lab.bundle("b1", &format!("/berth/{berth_id}"), args.clone());
    let b2 = lab.bundle("b2", &format!("/berth/{runc_id}"), args);

    // runc's own default differs from ours in nothing.
    let rdir = lab.dir.path().join("runc-spec");
    std::fs::create_dir(&rdir).unwrap();
    let out = lab.output(Command::new("runc").args(["spec", "--bundle"]).arg(&rdir));
    assert!(out.status.success(), "{}", stderr(&out));
    let ours = lab.dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    assert!(lab
        .berth(&["spec", "-b", ours.to_str().unwrap()])
        .status
        .success());
    let read = |p: &Path| -> Value {
        serde_json::from_slice(&std::fs::read(p.join("config.json")).unwrap()).unwrap()
    };
    assert_eq!(read(&ours), read(&rdir));

    let out = lab.berth(&["run", "--bundle", b1.to_str().unwrap(), &berth_id]);
    assert!(out.status.success(), "berth-run run: {}", stderr(&out));
    let theirs = lab.runc(&["run", "--bundle", b2.to_str().unwrap(), &runc_id]);
    assert!(theirs.status.success(), "runc run: {}", stderr(&theirs));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from runc\n");
    assert_eq!(out.stdout, theirs.stdout);
}

#[test]
fn list_and_ps_show_a_container_as_runc_shows_its_own() {
    let lab = Lab::new();
    let (berth_id, runc_id) = (unique("ls-b"), unique("ls-r"));
    lab.track(Rt::Berth, &berth_id);
    lab.track(Rt::Runc, &runc_id);
    let args = json!(["sh", "-c", "sleep 1000 & exec sleep 1001"]);
    let b1 = lab.bundle("b1", &format!("/berth/{berth_id}"), args.clone());
    let b2 = lab.bundle("b2", &format!("/berth/{runc_id}"), args);

    let pid_file = lab.dir.path().join("pid");
    let out = lab.berth(&[
        "create",
        "--bundle",
        b1.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &berth_id,
    ]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let out = lab.runc(&["create", "--bundle", b2.to_str().unwrap(), &runc_id]);
    assert!(out.status.success(), "runc create: {}", stderr(&out));

    // list: the same shape and status as runc's, our pid.
    let ours = json_of(&lab.berth(&["list", "--format", "json"]));
    let theirs = json_of(&lab.runc(&["list", "--format", "json"]));
    let (ours, theirs) = (
        &ours.as_array().unwrap()[..],
        &theirs.as_array().unwrap()[..],
    );
    assert_eq!((ours.len(), theirs.len()), (1, 1));
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&ours[0]), keys(&theirs[0]));
    assert_eq!(ours[0]["id"], berth_id.as_str());
    assert_eq!(ours[0]["pid"], pid);
    assert_eq!(ours[0]["status"], "created");
    assert_eq!(ours[0]["status"], theirs[0]["status"]);
    assert_eq!(ours[0]["owner"], theirs[0]["owner"]);
    assert_eq!(ours[0]["bundle"], b1.to_str().unwrap());
    let table = String::from_utf8(lab.berth(&["list"]).stdout).unwrap();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        &row[..4],
        [
            berth_id.as_str(),
            &pid.to_string(),
            "created",
            b1.to_str().unwrap()
        ]
    );
    let header = String::from_utf8(lab.runc(&["list"]).stdout).unwrap();
    assert_eq!(
        table
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        header
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        String::from_utf8(lab.berth(&["list", "-q"]).stdout).unwrap(),
        format!("{berth_id}\n")
    );

    // ps before start: only the init, as runc's only has its init.
    let ps = json_of(&lab.berth(&["ps", "--format", "json", &berth_id]));
    assert_eq!(ps, json!([pid]));
    let rps = json_of(&lab.runc(&["ps", "--format", "json", &runc_id]));
    assert_eq!(rps.as_array().unwrap().len(), 1);

    // After start: the init (now `sleep 1001`) and its child, in both runtimes.
    assert!(lab.berth(&["start", &berth_id]).status.success());
    assert!(lab.runc(&["start", &runc_id]).status.success());
    let pids = || -> Vec<i64> {
        let v = json_of(&lab.berth(&["ps", "--format", "json", &berth_id]));
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_i64().unwrap())
            .collect()
    };
    wait_until("two processes in the cgroup", || pids().len() == 2);
    let now = pids();
    assert!(now.contains(&pid), "{now:?}");
    wait_until("runc's two processes", || {
        json_of(&lab.runc(&["ps", "--format", "json", &runc_id]))
            .as_array()
            .unwrap()
            .len()
            == 2
    });
    let ours = json_of(&lab.berth(&["list", "--format", "json"]));
    assert_eq!(ours[0]["status"], "running");

    // The table: ps -ef's header and one line per pid, sleeping.
    let out = lab.berth(&["ps", &berth_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].split_whitespace().any(|f| f == "PID"), "{text}");
    assert_eq!(lines.len(), 3, "{text}");
    for p in &now {
        assert!(
            lines[1..]
                .iter()
                .any(|l| l.split_whitespace().nth(1) == Some(&p.to_string())),
            "{p} in {text}"
        );
    }
    assert!(
        text.contains("sleep 1000") && text.contains("sleep 1001"),
        "{text}"
    );
    // ps arguments after the id, as runc takes them.
    let out = lab.berth(&["ps", &berth_id, "-o", "pid,comm"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines()
            .skip(1)
            .all(|l| l.trim_end().ends_with("sleep")),
        "{text}"
    );
    let theirs = lab.runc(&["ps", &runc_id, "-o", "pid,comm"]);
    assert_eq!(String::from_utf8(theirs.stdout).unwrap().lines().count(), 3);

    // After kill: stopped, pid 0, ps empty.
    assert!(lab
        .berth(&["kill", "--all", &berth_id, "KILL"])
        .status
        .success());
    wait_until("the container to stop", || {
        json_of(&lab.berth(&["list", "--format", "json"]))[0]["status"] == "stopped"
    });
    assert_eq!(
        json_of(&lab.berth(&["list", "--format", "json"]))[0]["pid"],
        0
    );
    wait_until("an empty cgroup", || pids().is_empty());
}

/// Whether the container's cgroup is frozen: the v1 freezer reads FROZEN, or (pure v2 host)
/// `cgroup.events` says `frozen 1`.
fn frozen_on_host(cg: &str) -> bool {
    let v1 = Path::new("/sys/fs/cgroup/freezer")
        .join(cg.trim_start_matches('/'))
        .join("freezer.state");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return s.trim() == "FROZEN";
    }
    let events = Path::new("/sys/fs/cgroup")
        .join(cg.trim_start_matches('/'))
        .join("cgroup.events");
    std::fs::read_to_string(events).is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
}

#[test]
fn pause_resume_and_force_delete_of_a_paused_container() {
    let lab = Lab::new();
    let id = unique("pause");
    lab.track(Rt::Berth, &id);
    let cg = format!("/berth/{id}");
    let b = lab.bundle("b", &cg, json!(["sleep", "1000"]));
    let out = lab.berth(&["run", "--detach", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let state = json_of(&lab.berth(&["state", &id]));
    assert_eq!(state["status"], "running");
    let pid = state["pid"].as_i64().unwrap();

    // resume of a running container: one line, exit 1, as runc.
    let out = lab.berth(&["resume", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("container not paused"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    let out = lab.berth(&["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    assert_eq!(json_of(&lab.berth(&["state", &id]))["status"], "paused");
    let listed = json_of(&lab.berth(&["list", "--format", "json"]));
    assert_eq!(listed[0]["status"], "paused");
    assert!(frozen_on_host(&cg), "the freezer does not say frozen");
    let out = lab.berth(&["pause", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "pausing twice: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("container not running"),
        "{}",
        stderr(&out)
    );

    let out = lab.berth(&["resume", &id]);
    assert!(out.status.success(), "resume: {}", stderr(&out));
    assert_eq!(json_of(&lab.berth(&["state", &id]))["status"], "running");
    assert!(!frozen_on_host(&cg));

    let out = lab.berth(&["pause", &id]);
    assert!(out.status.success(), "pause again: {}", stderr(&out));
    assert_eq!(json_of(&lab.berth(&["state", &id]))["status"], "paused");
    let out = lab.berth(&["delete", &id]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "delete of a paused one needs --force"
    );
    let out = lab.berth(&["delete", "--force", &id]);
    assert!(out.status.success(), "delete --force: {}", stderr(&out));
    wait_until("the init to be gone", || {
        !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| !s.contains("sleep"))
    });
    for dir in cgroup_dirs(&cg) {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    let out = lab.berth(&["state", &id]);
    assert_eq!(out.status.code(), Some(3), "the state is gone");
}

#[test]
fn kill_of_a_paused_container_with_sigkill_ends_it() {
    let lab = Lab::new();
    let id = unique("pkill");
    lab.track(Rt::Berth, &id);
    let cg = format!("/berth/{id}");
    let b = lab.bundle("b", &cg, json!(["sleep", "1000"]));
    let out = lab.berth(&["run", "--detach", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let out = lab.berth(&["pause", &id]);
    assert!(out.status.success(), "pause: {}", stderr(&out));
    let out = lab.berth(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "kill: {}", stderr(&out));
    wait_until("the container to stop", || {
        json_of(&lab.berth(&["state", &id]))["status"] == "stopped"
    });
    let out = lab.berth(&["delete", &id]);
    assert!(out.status.success(), "delete: {}", stderr(&out));
    for dir in cgroup_dirs(&cg) {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}

/// The differential: runc's pause and resume of the same bundle give the same statuses and the
/// same refusals (exit 1, runc's words) as berth-run's.
#[test]
fn pause_and_resume_match_runc() {
    let lab = Lab::new();
    let (berth_id, runc_id) = (unique("pdiff-b"), unique("pdiff-r"));
    lab.track(Rt::Berth, &berth_id);
    lab.track(Rt::Runc, &runc_id);
    let args = json!(["sleep", "1000"]);
    let b1 = lab.bundle("b1", &format!("/berth/{berth_id}"), args.clone());
    let b2 = lab.bundle("b2", &format!("/berth/{runc_id}"), args);
    let out = lab.berth(&[
        "run",
        "--detach",
        "--bundle",
        b1.to_str().unwrap(),
        &berth_id,
    ]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    let out = lab.runc(&[
        "run",
        "--detach",
        "--bundle",
        b2.to_str().unwrap(),
        &runc_id,
    ]);
    assert!(out.status.success(), "runc run: {}", stderr(&out));
    let status = |o: Output| json_of(&o)["status"].as_str().unwrap().to_string();
    for (verb, want_status, refused) in [
        ("resume", "running", Some("container not paused")),
        ("pause", "paused", None),
        ("pause", "paused", Some("container not running")),
        ("resume", "running", None),
    ] {
        let ours = lab.berth(&[verb, &berth_id]);
        let theirs = lab.runc(&[verb, &runc_id]);
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "{verb}: {}",
            stderr(&ours)
        );
        match refused {
            Some(words) => {
                assert_eq!(ours.status.code(), Some(1), "{verb}");
                assert!(stderr(&ours).contains(words), "{verb}: {}", stderr(&ours));
                assert!(
                    stderr(&theirs).contains(words),
                    "runc {verb}: {}",
                    stderr(&theirs)
                );
            }
            None => assert!(ours.status.success(), "{verb}: {}", stderr(&ours)),
        }
        let (s1, s2) = (
            status(lab.berth(&["state", &berth_id])),
            status(lab.runc(&["state", &runc_id])),
        );
        assert_eq!(
            (s1.as_str(), s2.as_str()),
            (want_status, want_status),
            "after {verb}"
        );
    }
}
