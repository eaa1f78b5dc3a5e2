//! berth-run's `update` and `events` end to end, as root, beside runc: the same update on
//! the same bundle leaves the same values in the cgroup files; created and paused containers
//! take updates and the record follows them; bad values change nothing; `events --stats` has
//! runc's keys and the values the cgroup holds; the stream reports stats and an OOM kill and
//! ends with the container.
//!
//! Every test has its own state roots, unique ids and cgroupsPath /berth/<id>; the `Lab`
//! guard force-deletes its containers under both runtimes and removes their cgroups on drop.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::lab::{read_config, stderr, wait_up_to, write_config, Bundle, Lab, Rt};

fn unique(tag: &str) -> String {
    crate::lab::unique_with("e2e-u", tag)
}

/// This module's use of the lab: containers from `runc spec`'s config with resources.
trait UpdateLab {
    /// A busybox bundle from `runc spec` with `args`, `resources`, no terminal and the
    /// cgroupsPath /berth/<id>.
    fn bundle(&self, id: &str, args: Value, resources: Value) -> PathBuf;
    /// `run --detach` of a new container under berth-run (`runc` false) or runc.
    fn start(&self, runc: bool, tag: &str, args: Value, resources: Value) -> String;
}

impl UpdateLab for Lab {
    fn bundle(&self, id: &str, args: Value, resources: Value) -> PathBuf {
        let b = Bundle::new(self.path().join(format!("bundle-{id}")))
            .applets(&["sh", "sleep", "head", "tr", "cat", "true"])
            .dirs(&["proc", "sys", "dev", "tmp"])
            .rootfs();
        let out = self.output(Command::new("runc").arg("spec").current_dir(&b));
        assert!(out.status.success(), "runc spec: {}", stderr(&out));
        let mut config = read_config(&b);
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = args;
        config["linux"]["cgroupsPath"] = json!(format!("/berth/{id}"));
        config["linux"]["resources"] = resources;
        write_config(&b, &config);
        b
    }

    fn start(&self, runc: bool, tag: &str, args: Value, resources: Value) -> String {
        let id = unique(tag);
        let b = self.bundle(&id, args, resources);
        let rt = if runc { Rt::Runc } else { Rt::Berth };
        let out = self.call(
            rt,
            &["run", "--detach", "--bundle", b.to_str().unwrap(), &id],
        );
        assert!(out.status.success(), "run {id}: {}", stderr(&out));
        id
    }
}

fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file of container `id`: `v1` is `controller/file` on a v1 or hybrid host, `v2`
/// the file name on a pure v2 host.
fn cg_read(id: &str, v1: &str, v2: &str) -> String {
    let path = if pure_v2() {
        format!("/sys/fs/cgroup/berth/{id}/{v2}")
    } else {
        let (controller, file) = v1.split_once('/').unwrap();
        format!("/sys/fs/cgroup/{controller}/berth/{id}/{file}")
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

/// The files an update of memory, cpu, cpuset and pids writes, as (v1, v2) names.
const UPDATED: &[(&str, &str)] = &[
    ("memory/memory.limit_in_bytes", "memory.max"),
    ("memory/memory.soft_limit_in_bytes", "memory.low"),
    ("cpu/cpu.shares", "cpu.weight"),
    ("cpu/cpu.cfs_quota_us", "cpu.max"),
    ("cpu/cpu.cfs_period_us", "cpu.max"),
    ("cpuset/cpuset.cpus", "cpuset.cpus"),
    ("pids/pids.max", "pids.max"),
];

fn cpus_other_than_zero() -> &'static str {
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        "1"
    } else {
        "0"
    }
}

#[test]
fn update_flags_write_the_same_cgroup_values_as_runc() {
    let lab = Lab::new();
    let args = json!(["sleep", "1000"]);
    let res = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let b = lab.start(false, "flags-b", args.clone(), res.clone());
    let r = lab.start(true, "flags-r", args, res);
    let cpus = cpus_other_than_zero();
    let flags = [
        "--memory",
        "32m",
        "--memory-reservation",
        "16m",
        "--cpu-share",
        "256",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "50000",
        "--cpuset-cpus",
        cpus,
        "--pids-limit",
        "20",
    ];
    let mut args: Vec<&str> = vec!["update"];
    args.extend(flags);
    let out = lab.berth(&[&args[..], &[b.as_str()]].concat());
    assert!(out.status.success(), "berth-run update: {}", stderr(&out));
    assert!(out.stdout.is_empty(), "update prints nothing, as runc");
    let out = lab.runc(&[&args[..], &[r.as_str()]].concat());
    assert!(out.status.success(), "runc update: {}", stderr(&out));

    for (v1, v2) in UPDATED {
        assert_eq!(cg_read(&b, v1, v2), cg_read(&r, v1, v2), "{v1} / {v2}");
    }
    assert_eq!(
        cg_read(&b, "memory/memory.limit_in_bytes", "memory.max"),
        "33554432"
    );
    assert_eq!(cg_read(&b, "pids/pids.max", "pids.max"), "20");
    assert_eq!(cg_read(&b, "cpuset/cpuset.cpus", "cpuset.cpus"), cpus);

    // From a --resources document on stdin: the same again, with other values.
    let doc = json!({"memory": {"limit": 50331648}, "cpu": {"shares": 1024, "quota": -1}, "pids": {"limit": 30}});
    let doc = serde_json::to_vec(&doc).unwrap();
    let out = lab.berth_stdin(&["update", "--resources", "-", &b], &doc);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = lab.dir.path().join("res.json");
    std::fs::write(&file, &doc).unwrap();
    let out = lab.runc(&["update", "-r", file.to_str().unwrap(), &r]);
    assert!(out.status.success(), "{}", stderr(&out));
    for (v1, v2) in UPDATED {
        assert_eq!(cg_read(&b, v1, v2), cg_read(&r, v1, v2), "{v1} / {v2}");
    }
    assert_eq!(cg_read(&b, "pids/pids.max", "pids.max"), "30");
}

#[test]
fn created_and_paused_containers_take_updates_and_the_record_follows() {
    let lab = Lab::new();
    let id = unique("states");
    lab.track(Rt::Berth, &id);
    let b = lab.bundle(
        &id,
        json!(["sleep", "1000"]),
        json!({"memory": {"limit": 67108864}}),
    );
    let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = lab.berth(&["update", "--pids-limit", "7", &id]);
    assert!(
        out.status.success(),
        "update of a created container: {}",
        stderr(&out)
    );
    assert_eq!(cg_read(&id, "pids/pids.max", "pids.max"), "7");

    assert!(lab.berth(&["start", &id]).status.success());
    let out = lab.berth(&["pause", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.berth(&["update", "--memory", "48m", &id]);
    assert!(
        out.status.success(),
        "update of a paused container: {}",
        stderr(&out)
    );
    assert_eq!(
        cg_read(&id, "memory/memory.limit_in_bytes", "memory.max"),
        "50331648"
    );
    assert!(lab.berth(&["resume", &id]).status.success());

    // The record is what the next update starts from: memory+swap is checked against the
    // recorded 48m limit (not the 64m of config.json) and refused below it.
    let recorded: Value = serde_json::from_slice(
        &std::fs::read(lab.state_root().join(&id).join("resources.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["memory"]["limit"], 50331648);
    assert_eq!(recorded["pids"]["limit"], 7);
    let out = lab.berth(&["update", "--memory-swap", "40m", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("below the memory limit 50331648"),
        "{}",
        stderr(&out)
    );

    // A stopped container has nothing to update.
    assert!(lab.berth(&["kill", &id, "KILL"]).status.success());
    wait_up_to("the container to stop", 10, || {
        let out = lab.berth(&["state", &id]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v["status"] == "stopped")
    });
    let out = lab.berth(&["update", "--pids-limit", "9", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn bad_update_values_are_one_line_exit_2_and_change_nothing() {
    let lab = Lab::new();
    let id = lab.start(
        false,
        "bad",
        json!(["sleep", "1000"]),
        json!({"pids": {"limit": 42}, "cpu": {"quota": 50000, "period": 100000}}),
    );
    let before: Vec<String> = UPDATED.iter().map(|(a, b)| cg_read(&id, a, b)).collect();
    let cases: &[(&[&str], &[u8])] = &[
        (&["--pids-limit", "7", "--cpu-quota", "10"], b""),
        (&["--pids-limit", "7", "--cpu-period", "5"], b""),
        (&["--pids-limit", "7", "--memory", "1x"], b""),
        (&["--pids-limit", "seven"], b""),
        (&["--pids-limit", "7", "--cpuset-cpus", "9999"], b""),
        (&["--pids-limit", "7", "--blkio-weight", "5"], b""),
        (&["-r", "-"], br#"{"pids":{"limit":7},"cpu":{"shares":1}}"#),
        (
            &["-r", "-"],
            br#"{"pids":{"limit":7},"memory":{"limit":1048576,"swap":1024}}"#,
        ),
        (
            &["-r", "-"],
            br#"{"pids":{"limit":7},"unified":{"../escape":"1"}}"#,
        ),
        (&["-r", "-"], b"{not json"),
    ];
    for (flags, stdin) in cases {
        let mut args = vec!["update"];
        args.extend_from_slice(flags);
        args.push(&id);
        let out = lab.berth_stdin(&args, stdin);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{flags:?}: one line: {err}");
        assert!(err.starts_with("berth-run: error: "), "{err}");
        let now: Vec<String> = UPDATED.iter().map(|(a, b)| cg_read(&id, a, b)).collect();
        assert_eq!(now, before, "{flags:?} changed the cgroup");
    }
    let out = lab.berth(&["update", "-r", "/nonexistent/res.json", &id]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = lab.berth(&["update", "--l3-cache-schema", "L3:0=f", &id]);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("resctrl"), "{}", stderr(&out));
    let out = lab.berth(&["update", "--pids-limit", "7", "no-such-container"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

/// Every path to a leaf of a JSON value ("data.memory.usage.limit"); array members by
/// position.
fn leaf_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                leaf_paths(v, &format!("{prefix}.{k}"), out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                leaf_paths(v, &format!("{prefix}[{i}]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_string());
        }
    }
}

#[test]
fn events_stats_has_runcs_keys_and_the_cgroups_values() {
    let lab = Lab::new();
    let args = json!(["sleep", "1000"]);
    let res = json!({"memory": {"limit": 67108864}, "pids": {"limit": 50}});
    let b = lab.start(false, "stats-b", args.clone(), res.clone());
    let r = lab.start(true, "stats-r", args, res);
    let ours = lab.berth(&["events", "--stats", &b]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    let theirs = lab.runc(&["events", "--stats", &r]);
    assert!(theirs.status.success(), "{}", stderr(&theirs));
    assert_eq!(
        ours.stdout.iter().filter(|c| **c == b'\n').count(),
        1,
        "one line"
    );
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    let theirs: Value = serde_json::from_slice(&theirs.stdout).unwrap();

    // The same keys, except counters that are zero on one side only (Go's omitempty) and
    // memory.stat lines: compare the structure above those.
    let norm = |v: &Value| -> BTreeSet<String> {
        let mut paths = BTreeSet::new();
        leaf_paths(v, "", &mut paths);
        paths
            .into_iter()
            .filter(|p| !p.starts_with(".data.memory.raw."))
            .filter(|p| !p.contains(".blkio."))
            .map(|p| p.split('[').next().unwrap().to_string())
            .collect()
    };
    let (a, b_keys) = (norm(&ours), norm(&theirs));
    let only: Vec<_> = a.symmetric_difference(&b_keys).collect();
    let tolerated = |p: &str| {
        [
            ".usage.max",
            ".usage.usage",
            ".cpu.usage.total",
            ".memory.cache",
            ".pids.current",
        ]
        .iter()
        .any(|t| p.ends_with(t))
    };
    assert!(
        only.iter().all(|p| tolerated(p)),
        "keys on one side only: {only:?}"
    );
    assert_eq!(ours["type"], "stats");
    assert_eq!(ours["id"], b.as_str());
    let d = &ours["data"];
    assert_eq!(d["pids"]["current"], 1, "{d}");
    assert_eq!(d["pids"]["limit"], 50);
    assert_eq!(d["memory"]["usage"]["limit"], 67108864);
    assert!(d["memory"]["usage"]["usage"].as_u64().unwrap() > 0, "{d}");
    assert!(d["cpu"]["usage"]["total"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["network_interfaces"], Value::Null);
    assert_eq!(d["intel_rdt"], json!({}));
    if !pure_v2() {
        // The same counters runc reads: cpuset lists and memory.stat's names.
        assert_eq!(d["cpuset"]["cpus"], theirs["data"]["cpuset"]["cpus"]);
        let names = |v: &Value| -> BTreeSet<String> {
            v["data"]["memory"]["raw"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(names(&ours), names(&theirs));
    }

    // A stopped container has no stats, as runc says.
    assert!(lab.berth(&["kill", &b, "KILL"]).status.success());
    wait_up_to("the container to stop", 10, || {
        let out = lab.berth(&["state", &b]);
        serde_json::from_slice::<Value>(&out.stdout).is_ok_and(|v| v["status"] == "stopped")
    });
    let out = lab.berth(&["events", "--stats", &b]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let out = lab.berth(&["events", "--interval", "0s", &b]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn events_stream_reports_stats_and_an_oom_kill_and_ends_with_the_container() {
    let mut lab = Lab::new();
    // Waits for /go, then fills a shell variable past the 16 MiB limit: the kernel's OOM
    // killer ends it, and the container goes on sleeping. The hog and what it forks ask to
    // be the OOM killer's choice (oom_score_adj 1000): a second OOM while the first victim's
    // memory is still being freed must not pick the container's init.
    let script = "while [ ! -e /go ]; do sleep 0.1; done; \
                  sh -c 'echo 1000 > /proc/self/oom_score_adj; \
                  x=$(head -c 64000000 /dev/zero | tr \"\\0\" a)'; exec sleep 1000";
    let id = lab.start(
        false,
        "oom",
        json!(["sh", "-c", script]),
        json!({"memory": {"limit": 16777216}}),
    );
    let out_path = lab.dir.path().join("events.out");
    let child = lab
        .cmd(Rt::Berth)
        .args(["events", "--interval", "200ms", &id])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(lab.dir.path().join("events.err")).unwrap())
        .spawn()
        .unwrap();
    lab.children.push(child);
    let lines = |p: &Path| -> Vec<Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    // The first stats line means the OOM watch is in place.
    wait_up_to("a stats event", 10, || {
        lines(&out_path).iter().any(|e| e["type"] == "stats")
    });
    std::fs::write(lab.dir.path().join(format!("bundle-{id}/rootfs/go")), "").unwrap();
    wait_up_to("an oom event", 20, || {
        lines(&out_path).iter().any(|e| e["type"] == "oom")
    });
    let oom = lines(&out_path)
        .into_iter()
        .find(|e| e["type"] == "oom")
        .unwrap();
    assert_eq!(oom, json!({"type": "oom", "id": id}));

    let killed = lab.berth(&["kill", &id, "KILL"]);
    assert!(killed.status.success(), "kill: {}", stderr(&killed));
    let child = lab.children.last_mut().unwrap();
    let mut status = None;
    wait_up_to("events to end with the container", 10, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(
        status.unwrap().success(),
        "events exits 0 when the container stops"
    );
    let all = lines(&out_path);
    assert!(all.iter().all(|e| e["id"] == id.as_str()));
    let stats = all.iter().filter(|e| e["type"] == "stats").count();
    assert!(stats >= 1, "{all:?}");
}
