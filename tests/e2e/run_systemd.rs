//! berth-run's `--systemd-cgroup` end to end, as root, beside runc's (the oracle): the
//! container's cgroup is a transient scope systemd made, with the limits as unit properties
//! and in the cgroup files.
//!
//! This host's PID 1 is not systemd, so the tests come in two kinds:
//! - on a host without systemd as PID 1 (this one), both runtimes refuse `--systemd-cgroup`
//!   and leave nothing: berth-run with exit 6 and one line;
//! - the scope cases need systemd as PID 1: where it is not, the test boots the QEMU guest of
//!   `scripts/test-cgroup2 --systemd` (Debian's 6.1 kernel, pure cgroup v2, Debian's systemd
//!   252 as PID 1) and runs itself there, one boot for all cases, and passes only if every
//!   case passed in the guest. It never skips.
//!
//! Each case runs under berth-run and runc on the same busybox bundle (`runc spec`'s config,
//! cgroupsPath `system.slice:berth:<unique>`, no cgroup namespace), and what each showed is
//! compared: the scope with its limits (also after `systemctl daemon-reload`) and its end at
//! `delete`, `update` as unit properties, `exec`/`pause`/`resume`/`ps` on the recorded
//! scope, a second container asking for a running one's scope, a cgroupfs path, the
//! foreground exit status. The `Lab` guard force-deletes the containers; [`Units`] stops any
//! scope left. docs/cgroup2-lane.md has the details.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::lab::{
    one_line_error, pass_in_guest, read_config, stderr, wait_up_to, write_config, Bundle, Lab, Rt,
};

/// Set in the guest, so that the test runs its cases instead of booting another guest.
const IN_GUEST: &str = "BERTH_E2E_SYSTEMD_IN_GUEST";

fn unique(tag: &str) -> String {
    crate::lab::unique_with("sd", tag)
}

/// `sd_booted()`: PID 1 is systemd when this directory exists.
pub(crate) fn systemd_is_pid1() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

pub(crate) fn runtime_name(rt: Rt) -> &'static str {
    match rt {
        Rt::Berth => "berth-run",
        Rt::Runc => "runc",
    }
}

/// The limits every scope case asks for, and what systemd and the kernel must show for them.
fn resources() -> Value {
    json!({
        "memory": {"limit": 67108864},
        "pids": {"limit": 64},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000}
    })
}

/// `systemctl show` properties and their expected values (CPUWeight 20 is runc's conversion
/// of 512 shares; 50000/100000 µs is 500 ms of CPU per second).
const UNIT_EXPECTED: &[(&str, &str)] = &[
    ("ActiveState", "active"),
    ("Slice", "system.slice"),
    ("Delegate", "yes"),
    ("DefaultDependencies", "no"),
    ("MemoryAccounting", "yes"),
    ("TasksAccounting", "yes"),
    ("CPUAccounting", "yes"),
    ("IOAccounting", "yes"),
    ("MemoryMax", "67108864"),
    ("TasksMax", "64"),
    ("CPUWeight", "20"),
    ("CPUQuotaPerSecUSec", "500ms"),
    ("CPUQuotaPeriodUSec", "100ms"),
];

/// The scope's cgroup files and their expected values.
const FILES_EXPECTED: &[(&str, &str)] = &[
    ("memory.max", "67108864"),
    ("pids.max", "64"),
    ("cpu.max", "50000 100000"),
    ("cpu.weight", "20"),
];

/// Scopes a test may leave behind when it fails half-way: stopped (and their failed state
/// reset) on drop, pass or fail.
pub(crate) struct Units(pub(crate) Vec<String>);

/// The names of case `tag` under `rt`: the container's (unique), its unit
/// `berth-<name>.scope` with a guard that stops it on drop, and its cgroupsPath
/// `system.slice:berth:<name>`.
fn scope_names(tag: &str, rt: Rt) -> (String, String, Units, String) {
    let name = unique(&format!("{tag}-{}", runtime_name(rt).replace('-', "")));
    let unit = format!("berth-{name}.scope");
    let path = format!("system.slice:berth:{name}");
    (name, unit.clone(), Units(vec![unit]), path)
}

impl Drop for Units {
    fn drop(&mut self) {
        if !systemd_is_pid1() {
            return;
        }
        for unit in &self.0 {
            for verb in ["stop", "reset-failed"] {
                let _ = Command::new("systemctl")
                    .args([verb, unit])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

pub(crate) fn systemctl(args: &[&str]) -> Output {
    Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("systemctl runs")
}

/// `systemctl show UNIT -p ...` for the properties in [`UNIT_EXPECTED`], in that order.
fn unit_properties(unit: &str) -> BTreeMap<String, String> {
    let mut args = vec!["show", unit];
    for (p, _) in UNIT_EXPECTED {
        args.extend(["-p", p]);
    }
    let out = systemctl(&args);
    assert!(
        out.status.success(),
        "systemctl show {unit}: {}",
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn cgroup_files(dir: &Path) -> BTreeMap<String, String> {
    FILES_EXPECTED
        .iter()
        .map(|(f, _)| {
            let v = std::fs::read_to_string(dir.join(f))
                .unwrap_or_else(|e| format!("cannot read {}: {e}", dir.join(f).display()));
            (f.to_string(), v.trim().to_string())
        })
        .collect()
}

fn expected(table: &[(&str, &str)]) -> BTreeMap<String, String> {
    table
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A busybox bundle from `runc spec`'s config (no terminal, no cgroup namespace, so that
/// /proc/self/cgroup names the scope) running `script`, with `cgroups_path` and `resources`.
fn bundle(lab: &Lab, id: &str, cgroups_path: &str, script: &str, resources: Value) -> PathBuf {
    let b = Bundle::new(lab.path().join(format!("bundle-{id}")))
        .applets(&["sh", "sleep", "cat", "true"])
        .dirs(&["proc", "sys", "dev", "tmp"])
        .rootfs();
    let out = lab.output(Command::new("runc").arg("spec").current_dir(&b));
    assert!(out.status.success(), "runc spec: {}", stderr(&out));
    let mut config = read_config(&b);
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", script]);
    config["root"]["readonly"] = json!(false);
    config["linux"]["cgroupsPath"] = json!(cgroups_path);
    config["linux"]["resources"] = resources;
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "cgroup");
    write_config(&b, &config);
    b
}

/// A runtime's command with `--systemd-cgroup`, as engines pass it on every call.
fn call(lab: &Lab, rt: Rt, args: &[&str]) -> Output {
    lab.call_with(rt, &["--systemd-cgroup"], args)
}

// ---- where PID 1 is not systemd: both runtimes refuse ----------------------------------------

/// berth-run refuses `--systemd-cgroup` where PID 1 is not systemd, with exit 6 and one line,
/// as runc refuses it; neither leaves a state, a scope or a cgroup. Where PID 1 is systemd
/// (a developer's machine, the guest), both make the scope instead: the same differential.
#[test]
fn systemd_cgroup_follows_whether_pid1_is_systemd() {
    let lab = Lab::new();
    for rt in [Rt::Berth, Rt::Runc] {
        let (name, unit, _units, path) = scope_names("host", rt);
        let b = bundle(&lab, &name, &path, "exit 0", json!({}));
        let out = call(
            &lab,
            rt,
            &["create", "--bundle", b.to_str().unwrap(), &name],
        );
        let cgroup = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
        if systemd_is_pid1() {
            assert!(out.status.success(), "{rt:?} create: {}", stderr(&out));
            assert!(
                cgroup.is_dir(),
                "{rt:?}: no scope cgroup {}",
                cgroup.display()
            );
            let out = call(&lab, rt, &["delete", "--force", &name]);
            assert!(out.status.success(), "{rt:?} delete: {}", stderr(&out));
            continue;
        }
        assert!(
            !out.status.success(),
            "{rt:?} create succeeded without systemd"
        );
        if rt == Rt::Berth {
            let err = one_line_error(&out, 6);
            assert!(err.contains("--systemd-cgroup"), "{err}");
            assert!(err.contains("PID 1 is not systemd"), "{err}");
        } else {
            let err = stderr(&out);
            assert!(err.contains("systemd"), "runc: {err}");
        }
        let root = match rt {
            Rt::Berth => lab.state_root(),
            Rt::Runc => lab.runc_root(),
        };
        assert!(!root.join(&name).exists(), "{rt:?}: state left");
        assert!(!cgroup.exists(), "{rt:?}: cgroup {} left", cgroup.display());
    }
}

// ---- where PID 1 is systemd: here, or in the lane's systemd guest -----------------------------

#[test]
fn systemd_cgroup_scopes_where_pid1_is_systemd() {
    if systemd_is_pid1() {
        // One boot for all cases (each takes seconds under emulation), and every case runs
        // even when an earlier one failed: the test then fails naming them all.
        let mut failed = Vec::new();
        differential("scope", &mut failed, scope_case);
        differential("update", &mut failed, update_case);
        differential("verbs", &mut failed, verbs_case);
        case("duplicate scope", &mut failed, duplicate_scope_is_refused);
        case("plain path", &mut failed, plain_path_is_refused);
        case("failed create", &mut failed, failed_create_leaves_nothing);
        case(
            "foreground",
            &mut failed,
            foreground_exit_status_and_cleanup,
        );
        assert!(failed.is_empty(), "failed cases: {failed:?}");
        return;
    }
    assert!(
        std::env::var_os(IN_GUEST).is_none(),
        "PID 1 is not systemd in the guest either"
    );
    // Boot the lane's systemd guest and run this very test there.
    let text = pass_in_guest(
        &["--systemd", "--timeout", "300"],
        IN_GUEST,
        "run_systemd::systemd_cgroup_scopes_where_pid1_is_systemd",
        "systemd",
    );
    // The cases and their times, and how long the guest took (scripts/test-cgroup2's lines).
    let shown = ["ok    ", "FAIL  ", "test-cgroup2: "];
    for line in text
        .lines()
        .filter(|l| shown.iter().any(|p| l.starts_with(p)))
    {
        println!("{line}");
    }
}

/// Runs `f` under berth-run, then under runc, then compares what they saw: three cases
/// (`<what> under berth-run`, `<what> under runc`, `the <what> differential`).
fn differential<T: PartialEq + std::fmt::Debug>(
    what: &str,
    failed: &mut Vec<String>,
    f: impl Fn(Rt) -> T,
) {
    let berth = case(&format!("{what} under berth-run"), failed, || f(Rt::Berth));
    let runc = case(&format!("{what} under runc"), failed, || f(Rt::Runc));
    if let (Some(berth), Some(runc)) = (berth, runc) {
        case(&format!("the {what} differential"), failed, || {
            assert_eq!(berth, runc, "berth-run and runc differ ({what})");
        });
    }
}

/// Runs one case, timing it; a panic (already printed by the hook) is recorded in `failed`.
fn case<T>(name: &str, failed: &mut Vec<String>, f: impl FnOnce() -> T) -> Option<T> {
    let started = std::time::Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let took = started.elapsed().as_secs_f64();
    match result {
        Ok(v) => {
            println!("ok    {name} ({took:.1} s)");
            Some(v)
        }
        Err(_) => {
            println!("FAIL  {name} ({took:.1} s)");
            failed.push(name.to_string());
            None
        }
    }
}

/// What one runtime showed for a container in a scope (compared between runtimes; names
/// replaced by `<name>`).
#[derive(Debug, PartialEq)]
struct Seen {
    cgroup_inside: String,
    cgroup_of_init: String,
    unit: BTreeMap<String, String>,
    files: BTreeMap<String, String>,
    files_after_daemon_reload: BTreeMap<String, String>,
    unit_after_delete: String,
    cgroup_after_delete: bool,
}

/// `run -d` of a `sleep` container with the limits: the container and its init are in
/// /system.slice/berth-<name>.scope; systemd shows the limits on the unit and the files hold
/// them, also after `systemctl daemon-reload` (the properties are the unit's, not only the
/// files'); `delete --force` stops the unit and removes the cgroup.
fn scope_case(rt: Rt) -> Seen {
    let rtn = runtime_name(rt);
    println!("# {rtn}: a container in a scope with limits");
    let lab = Lab::new();
    let (name, unit, _units, path) = scope_names("scope", rt);
    let script = "cat /proc/self/cgroup > /tmp/cgroup; exec sleep 1000";
    let b = bundle(&lab, &name, &path, script, resources());
    let out = call(
        &lab,
        rt,
        &["run", "-d", "--bundle", b.to_str().unwrap(), &name],
    );
    assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
    let cg_file = b.join("rootfs/tmp/cgroup");
    wait_up_to("the container to write its cgroup", 30, || {
        std::fs::metadata(&cg_file).is_ok_and(|m| m.len() > 0)
    });
    let cgroup_inside = std::fs::read_to_string(&cg_file)
        .unwrap()
        .trim()
        .to_string();
    let pid = lab.state_of(rt, &name)["pid"].as_i64().unwrap();
    let cgroup_of_init = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .trim()
        .to_string();
    let want_cgroup = format!("0::/system.slice/{unit}");
    assert_eq!(cgroup_inside, want_cgroup, "{rtn}: the container's cgroup");
    assert_eq!(cgroup_of_init, want_cgroup, "{rtn}: the init's cgroup");

    let unit_props = unit_properties(&unit);
    assert_eq!(
        unit_props,
        expected(UNIT_EXPECTED),
        "{rtn}: systemctl show {unit}"
    );
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let files = cgroup_files(&dir);
    assert_eq!(files, expected(FILES_EXPECTED), "{rtn}: {}", dir.display());
    let out = systemctl(&["daemon-reload"]);
    assert!(out.status.success(), "daemon-reload: {}", stderr(&out));
    let files_after_daemon_reload = cgroup_files(&dir);
    assert_eq!(
        files_after_daemon_reload,
        expected(FILES_EXPECTED),
        "{rtn}: {} after daemon-reload",
        dir.display()
    );

    let out = call(&lab, rt, &["delete", "--force", &name]);
    assert!(
        out.status.success(),
        "{rtn} delete --force: {}",
        stderr(&out)
    );
    // runc waits for systemd's stop job; allow systemd a moment to drop the unit.
    let mut unit_after_delete = String::new();
    wait_up_to("the scope to be gone after delete", 10, || {
        let out = systemctl(&["is-active", &unit]);
        unit_after_delete = String::from_utf8_lossy(&out.stdout).trim().to_string();
        unit_after_delete != "active" && unit_after_delete != "deactivating" && !dir.exists()
    });
    let status = systemctl(&["status", &unit]);
    assert_eq!(
        status.status.code(),
        Some(4),
        "{rtn}: systemctl status {unit}: the unit is unknown"
    );
    Seen {
        cgroup_inside: cgroup_inside.replace(&name, "<name>"),
        cgroup_of_init: cgroup_of_init.replace(&name, "<name>"),
        unit: unit_props,
        files,
        files_after_daemon_reload,
        unit_after_delete,
        cgroup_after_delete: dir.exists(),
    }
}

/// What `update` must leave on the unit and in the files.
const UPDATED_UNIT: &[(&str, &str)] = &[
    ("MemoryMax", "33554432"),
    ("MemorySwapMax", "33554432"),
    ("TasksMax", "20"),
];
const UPDATED_FILES: &[(&str, &str)] = &[
    ("memory.max", "33554432"),
    ("memory.swap.max", "33554432"),
    ("pids.max", "20"),
];

/// `update --memory 32m --memory-swap 64m --pids-limit 20` on a running container in a scope:
/// the new limits are the unit's properties (SetUnitProperties, as runc does) as well as the
/// files, so `systemctl daemon-reload` does not put the old ones back. Returns what the unit
/// and the files showed after the reload.
fn update_case(rt: Rt) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let rtn = runtime_name(rt);
    println!("# {rtn}: update, then daemon-reload");
    let lab = Lab::new();
    let (name, unit, _units, path) = scope_names("upd", rt);
    let b = bundle(&lab, &name, &path, "exec sleep 1000", resources());
    let out = call(
        &lab,
        rt,
        &["run", "-d", "--bundle", b.to_str().unwrap(), &name],
    );
    assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
    let args = [
        "update",
        "--memory",
        "32m",
        "--memory-swap",
        "64m",
        "--pids-limit",
        "20",
    ];
    let out = call(&lab, rt, &[&args[..], &[name.as_str()]].concat());
    assert!(out.status.success(), "{rtn} update: {}", stderr(&out));
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let read_files = || -> BTreeMap<String, String> {
        UPDATED_FILES
            .iter()
            .map(|(f, _)| {
                let v = std::fs::read_to_string(dir.join(f)).unwrap_or_default();
                (f.to_string(), v.trim().to_string())
            })
            .collect()
    };
    assert_eq!(
        read_files(),
        expected(UPDATED_FILES),
        "{rtn}: files after update"
    );
    let out = systemctl(&["daemon-reload"]);
    assert!(out.status.success(), "daemon-reload: {}", stderr(&out));
    let files = read_files();
    let mut show = vec!["show", unit.as_str()];
    for (p, _) in UPDATED_UNIT {
        show.extend(["-p", p]);
    }
    let out = systemctl(&show);
    let props: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        props,
        expected(UPDATED_UNIT),
        "{rtn}: systemctl show {unit} after update"
    );
    assert_eq!(
        files,
        expected(UPDATED_FILES),
        "{rtn}: files after update and daemon-reload"
    );
    let out = call(&lab, rt, &["delete", "--force", &name]);
    assert!(
        out.status.success(),
        "{rtn} delete --force: {}",
        stderr(&out)
    );
    wait_up_to("the scope's cgroup to go", 10, || !dir.exists());
    (props, files)
}

/// What the verbs showed on a container in a scope (names replaced by `<name>`).
#[derive(Debug, PartialEq)]
struct VerbsSeen {
    exec_cgroup: String,
    paused_status: String,
    frozen_while_paused: String,
    resumed_status: String,
    frozen_after_resume: String,
    ps_lists_the_init: bool,
    stats_memory_limit: Value,
    stats_pids_limit: Value,
}

/// The verbs that act on the recorded scope without the flag's help: `exec` puts its process
/// in the scope, `pause` freezes the scope's cgroup (`cgroup.events` says `frozen 1`) and
/// `resume` thaws it, `ps` lists the init from the scope's `cgroup.procs`, `events --stats`
/// reads the scope's memory limit and pids.
fn verbs_case(rt: Rt) -> VerbsSeen {
    let rtn = runtime_name(rt);
    println!("# {rtn}: exec, pause, resume, ps on a container in a scope");
    let lab = Lab::new();
    let (name, unit, _units, path) = scope_names("verbs", rt);
    let b = bundle(&lab, &name, &path, "exec sleep 1000", resources());
    let out = call(
        &lab,
        rt,
        &["run", "-d", "--bundle", b.to_str().unwrap(), &name],
    );
    assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
    let pid = lab.state_of(rt, &name)["pid"].as_i64().unwrap();
    let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
    let frozen = || -> String {
        std::fs::read_to_string(dir.join("cgroup.events"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("frozen "))
            .unwrap_or("no frozen line")
            .to_string()
    };

    let out = call(&lab, rt, &["exec", &name, "cat", "/proc/self/cgroup"]);
    assert!(out.status.success(), "{rtn} exec: {}", stderr(&out));
    let exec_cgroup = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        exec_cgroup,
        format!("0::/system.slice/{unit}"),
        "{rtn}: exec's cgroup"
    );

    let out = call(&lab, rt, &["pause", &name]);
    assert!(out.status.success(), "{rtn} pause: {}", stderr(&out));
    let paused_status = lab.state_of(rt, &name)["status"]
        .as_str()
        .unwrap()
        .to_string();
    let frozen_while_paused = frozen();
    assert_eq!(paused_status, "paused", "{rtn}");
    assert_eq!(frozen_while_paused, "frozen 1", "{rtn}: {}", dir.display());
    let out = call(&lab, rt, &["resume", &name]);
    assert!(out.status.success(), "{rtn} resume: {}", stderr(&out));
    let resumed_status = lab.state_of(rt, &name)["status"]
        .as_str()
        .unwrap()
        .to_string();
    let frozen_after_resume = frozen();
    assert_eq!(resumed_status, "running", "{rtn}");
    assert_eq!(frozen_after_resume, "frozen 0", "{rtn}: {}", dir.display());

    let out = call(&lab, rt, &["ps", "--format", "json", &name]);
    assert!(out.status.success(), "{rtn} ps: {}", stderr(&out));
    let pids: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ps_lists_the_init = pids
        .as_array()
        .is_some_and(|a| a.iter().any(|p| p.as_i64() == Some(pid)));
    assert!(ps_lists_the_init, "{rtn} ps: {pids} lacks the init {pid}");

    let out = call(&lab, rt, &["events", "--stats", &name]);
    assert!(
        out.status.success(),
        "{rtn} events --stats: {}",
        stderr(&out)
    );
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{rtn} events --stats: {e}: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let stats_memory_limit = stats["data"]["memory"]["usage"]["limit"].clone();
    let stats_pids_limit = stats["data"]["pids"]["limit"].clone();
    assert_eq!(
        stats_memory_limit,
        json!(67108864u64),
        "{rtn} events --stats: {stats}"
    );
    assert!(
        stats["data"]["pids"]["current"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{rtn} events --stats: {stats}"
    );

    let out = call(&lab, rt, &["delete", "--force", &name]);
    assert!(
        out.status.success(),
        "{rtn} delete --force: {}",
        stderr(&out)
    );
    wait_up_to("the scope's cgroup to go", 10, || !dir.exists());
    VerbsSeen {
        exec_cgroup: exec_cgroup.replace(&name, "<name>"),
        paused_status,
        frozen_while_paused,
        resumed_status,
        frozen_after_resume,
        ps_lists_the_init,
        stats_memory_limit,
        stats_pids_limit,
    }
}

/// A second container asking for the scope of a running one. berth-run refuses it with one
/// line naming the unit and leaves the first alone (runc 1.2 refuses it too). Debian's runc
/// 1.1 still joins the other's non-empty scope with a deprecation warning: a runc behaviour
/// berth does not copy (see docs/cgroup2-lane.md).
fn duplicate_scope_is_refused() {
    println!("# a second container in the scope of a running one");
    let lab = Lab::new();
    for rt in [Rt::Berth, Rt::Runc] {
        let rtn = runtime_name(rt);
        let (name, unit, _units, path) = scope_names("dup", rt);
        let b = bundle(&lab, &name, &path, "exec sleep 1000", resources());
        let first = format!("{name}-a");
        let second = format!("{name}-b");
        let out = call(
            &lab,
            rt,
            &["run", "-d", "--bundle", b.to_str().unwrap(), &first],
        );
        assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
        let pid = lab.state_of(rt, &first)["pid"].as_i64().unwrap();
        let out = call(
            &lab,
            rt,
            &["create", "--bundle", b.to_str().unwrap(), &second],
        );
        let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
        match rt {
            Rt::Berth => {
                // systemd 252 says "Unit X was already loaded or has a fragment file."
                let err = one_line_error(&out, 4);
                assert!(err.contains(&unit), "{err}");
                assert!(
                    !lab.state_root().join(&second).exists(),
                    "state of {second} left"
                );
            }
            Rt::Runc => {
                if out.status.success() {
                    let err = stderr(&out);
                    assert!(
                        err.contains("non-empty cgroup"),
                        "runc 1.1 joins with a warning: {err}"
                    );
                }
            }
        }
        // The first container is untouched: running, its init still in its scope.
        assert_eq!(
            lab.state_of(rt, &first)["status"],
            "running",
            "{rtn}: {first}"
        );
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == pid.to_string()),
            "{rtn}: the first init {pid} left its scope: {procs:?}"
        );
        assert_eq!(
            systemctl(&["is-active", &unit]).status.code(),
            Some(0),
            "{rtn}: {unit}"
        );
        // The first one first: runc 1.1's delete of the joined second one waits 30 s for
        // systemd to remove the scope the first one still holds.
        let out = call(&lab, rt, &["delete", "--force", &first]);
        assert!(
            out.status.success(),
            "{rtn} delete --force: {}",
            stderr(&out)
        );
        let _ = call(&lab, rt, &["delete", "--force", &second]);
        wait_up_to("the scope's cgroup to go", 10, || !dir.exists());
    }
}

/// `--systemd-cgroup` with a cgroupfs path: berth-run exits 2 with one line naming the
/// format and the file; runc refuses it too; neither leaves a state or a cgroup.
fn plain_path_is_refused() {
    println!("# --systemd-cgroup with the plain path /berth/<id>");
    let lab = Lab::new();
    for rt in [Rt::Berth, Rt::Runc] {
        let rtn = runtime_name(rt);
        let name = unique(&format!("plain-{}", rtn.replace('-', "")));
        let path = format!("/berth/{name}");
        let b = bundle(&lab, &name, &path, "exit 0", json!({}));
        let out = call(
            &lab,
            rt,
            &["create", "--bundle", b.to_str().unwrap(), &name],
        );
        assert!(!out.status.success(), "{rtn} accepted {path}");
        let err = stderr(&out);
        assert!(err.contains("slice:prefix:name"), "{rtn}: {err}");
        if rt == Rt::Berth {
            let err = one_line_error(&out, 2);
            assert!(err.contains("config.json"), "{err}");
            assert!(!lab.state_root().join(&name).exists(), "state left");
        }
        assert!(
            !Path::new("/sys/fs/cgroup/berth").join(&name).exists(),
            "{rtn}: cgroup left"
        );
    }
}

/// A create that fails after systemd made the scope (a `unified` key the kernel does not
/// have): no unit (`systemctl status` exits 4), no cgroup, no state is left, under both
/// runtimes; berth-run says so in one line with exit 2.
fn failed_create_leaves_nothing() {
    println!("# a create that fails after the scope was made");
    let lab = Lab::new();
    for rt in [Rt::Berth, Rt::Runc] {
        let rtn = runtime_name(rt);
        let (name, unit, _units, path) = scope_names("fail", rt);
        let mut res = resources();
        res["unified"] = json!({"memory.no_such_file": "1"});
        let b = bundle(&lab, &name, &path, "exec sleep 1000", res);
        let out = call(
            &lab,
            rt,
            &["create", "--bundle", b.to_str().unwrap(), &name],
        );
        assert!(!out.status.success(), "{rtn} accepted memory.no_such_file");
        if rt == Rt::Berth {
            let err = one_line_error(&out, 2);
            assert!(err.contains("memory.no_such_file"), "{err}");
        }
        let root = match rt {
            Rt::Berth => lab.state_root(),
            Rt::Runc => lab.runc_root(),
        };
        assert!(!root.join(&name).exists(), "{rtn}: state left");
        let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
        wait_up_to("the failed scope to go", 10, || {
            !dir.exists() && systemctl(&["status", &unit]).status.code() == Some(4)
        });
    }
}

/// `run` in the foreground passes the container's exit status through, and the scope is
/// gone when it returns.
fn foreground_exit_status_and_cleanup() {
    println!("# run in the foreground: the exit status, then no scope");
    let lab = Lab::new();
    for rt in [Rt::Berth, Rt::Runc] {
        let rtn = runtime_name(rt);
        let (name, unit, _units, path) = scope_names("fg", rt);
        let script = "cat /proc/self/cgroup; exit 7";
        let b = bundle(&lab, &name, &path, script, resources());
        let out = call(&lab, rt, &["run", "--bundle", b.to_str().unwrap(), &name]);
        assert_eq!(out.status.code(), Some(7), "{rtn} run: {}", stderr(&out));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(printed.trim(), format!("0::/system.slice/{unit}"), "{rtn}");
        let dir = Path::new("/sys/fs/cgroup/system.slice").join(&unit);
        wait_up_to("the scope to go", 10, || {
            !dir.exists() && systemctl(&["is-active", &unit]).status.code() != Some(0)
        });
    }
}
