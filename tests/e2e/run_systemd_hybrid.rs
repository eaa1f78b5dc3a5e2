//! berth-run's `--systemd-cgroup` on a hybrid host (v1 controllers under /sys/fs/cgroup/<c>,
//! systemd's name=systemd hierarchy and the unified tree at /sys/fs/cgroup/unified), beside
//! runc's legacy systemd manager (the oracle), in the QEMU guest of
//! `scripts/test-cgroup2 --systemd --hybrid` (Debian's systemd 252 as PID 1 booted with
//! `systemd.unified_cgroup_hierarchy=0`). One boot for the test; it never skips.
//!
//! For each runtime, on the same busybox bundle (memory, pids and CPU limits, `runc spec`'s
//! device rules): the init is in the scope in every hierarchy; `systemctl show` has runc's v1
//! properties (MemoryLimit, CPUShares, CPUQuotaPerSecUSec, TasksMax, DevicePolicy=strict and
//! its DeviceAllow list) and the v1 files hold the limits, before and after
//! `systemctl daemon-reload` (which must not open the device list); `update` changes the
//! unit and the files, also across a reload; `delete` leaves no unit and no directory in any
//! hierarchy. Then `checkpoint` and `restore --systemd-cgroup` (criu works in this guest):
//! the restored init is in a new scope with the limits (berth-run only: runc's checkpoint
//! fails there). What berth-run and runc showed is compared. A second test runs the restore
//! case in the pure v2 guest of `scripts/test-cgroup2 --systemd`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::lab::{pass_in_guest, read_config, stderr, wait_up_to, write_config, Bundle, Lab, Rt};
use crate::run_systemd::{runtime_name, systemctl, Units};

/// Set in the guest, so that the test runs its cases instead of booting another guest.
const IN_GUEST: &str = "BERTH_E2E_SYSTEMD_HYBRID_IN_GUEST";

const NAME: &str = "run_systemd_hybrid::systemd_cgroup_scopes_on_a_hybrid_host";

/// The unit properties compared (and checked where a value is given).
const UNIT_EXPECTED: &[(&str, Option<&str>)] = &[
    ("ActiveState", Some("active")),
    ("Slice", Some("system.slice")),
    ("Delegate", Some("yes")),
    ("DefaultDependencies", Some("no")),
    ("MemoryAccounting", Some("yes")),
    ("CPUAccounting", Some("yes")),
    ("BlockIOAccounting", Some("yes")),
    ("TasksAccounting", Some("yes")),
    ("MemoryLimit", Some("67108864")),
    ("CPUShares", Some("512")),
    ("CPUQuotaPerSecUSec", Some("500ms")),
    ("TasksMax", Some("64")),
    ("DevicePolicy", Some("strict")),
    ("DeviceAllow", None),
];

/// The v1 files compared (relative to /sys/fs/cgroup, then the scope's path).
const FILES_EXPECTED: &[(&str, &str)] = &[
    ("memory/memory.limit_in_bytes", "67108864"),
    ("cpu,cpuacct/cpu.shares", "512"),
    ("cpu,cpuacct/cpu.cfs_quota_us", "50000"),
    ("cpu,cpuacct/cpu.cfs_period_us", "100000"),
    ("pids/pids.max", "64"),
];

#[test]
fn systemd_cgroup_scopes_on_a_hybrid_host() {
    if std::env::var_os(IN_GUEST).is_none() {
        let text = pass_in_guest(
            &["--systemd", "--hybrid", "--timeout", "300"],
            IN_GUEST,
            NAME,
            "hybrid --systemd-cgroup",
        );
        for line in text
            .lines()
            .filter(|l| l.starts_with("ok ") || l.starts_with("test-cgroup2: "))
        {
            println!("{line}");
        }
        return;
    }
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "PID 1 is not systemd in the guest"
    );
    let layout = berth_cgroup_layout();
    assert!(
        layout.contains("/sys/fs/cgroup/unified") && layout.contains("name=systemd"),
        "the guest is not hybrid:\n{layout}"
    );
    let berth = scope_case(Rt::Berth);
    println!("ok    scope under berth-run");
    let runc = scope_case(Rt::Runc);
    println!("ok    scope under runc");
    assert_eq!(berth, runc, "berth-run and runc differ on a hybrid host");
    println!("ok    the hybrid differential");
    // berth-run only: Debian's runc 1.1 with criu 3.17 cannot checkpoint in this guest
    // ("criu failed: type NOTIFY errno 0"), so it is no oracle here; the case checks what
    // runc's restore is meant to give (docs/systemd-cgroup.md).
    restore_case(Rt::Berth, true);
    println!("ok    restore under berth-run");
}

/// Set in the pure v2 systemd guest for [`restore_into_a_scope_on_a_pure_v2_host`].
const IN_V2_GUEST: &str = "BERTH_E2E_SYSTEMD_V2_RESTORE_IN_GUEST";

/// `restore --systemd-cgroup` on a pure cgroup v2 host, in the guest of
/// `scripts/test-cgroup2 --systemd` (berth-run only, as on the hybrid guest).
#[test]
fn restore_into_a_scope_on_a_pure_v2_host() {
    if std::env::var_os(IN_V2_GUEST).is_none() {
        let text = pass_in_guest(
            &["--systemd", "--timeout", "300"],
            IN_V2_GUEST,
            "run_systemd_hybrid::restore_into_a_scope_on_a_pure_v2_host",
            "v2 restore --systemd-cgroup",
        );
        for line in text
            .lines()
            .filter(|l| l.starts_with("ok ") || l.starts_with("test-cgroup2: "))
        {
            println!("{line}");
        }
        return;
    }
    assert!(
        Path::new("/run/systemd/system").is_dir(),
        "PID 1 is not systemd in the guest"
    );
    assert!(
        !berth_cgroup_layout().contains(" - cgroup cgroup"),
        "the guest is not pure v2"
    );
    restore_case(Rt::Berth, false);
    println!("ok    restore under berth-run (v2)");
}

/// The cgroup mounts of this host, as mountinfo lists them.
fn berth_cgroup_layout() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(" - cgroup"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `systemctl show` of the compared properties (DeviceAllow's entries sorted, one string).
fn unit_properties(unit: &str) -> BTreeMap<String, String> {
    let mut args = vec!["show", unit];
    for (p, _) in UNIT_EXPECTED {
        args.extend(["-p", p]);
    }
    let out = systemctl(&args);
    assert!(out.status.success(), "systemctl show: {}", stderr(&out));
    let mut props: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
    {
        props.entry(k.to_string()).or_default().push(v.to_string());
    }
    props
        .into_iter()
        .map(|(k, mut v)| {
            v.sort();
            (k, v.join(", "))
        })
        .collect()
}

/// The scope's directory in every v1 hierarchy and the unified one.
fn scope_dirs(unit: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .map(|e| e.unwrap().path().join("system.slice").join(unit))
        .collect();
    // A pure v2 host has one hierarchy, at /sys/fs/cgroup itself.
    dirs.push(Path::new("/sys/fs/cgroup/system.slice").join(unit));
    dirs.sort();
    dirs
}

/// The limit files, and the device list (sorted lines) of the scope.
fn files(unit: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = FILES_EXPECTED
        .iter()
        .map(|(f, _)| {
            let (hierarchy, file) = f.split_once('/').unwrap();
            let path = Path::new("/sys/fs/cgroup")
                .join(hierarchy)
                .join("system.slice")
                .join(unit)
                .join(file);
            let v = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| format!("cannot read {}: {e}", path.display()));
            (f.to_string(), v.trim().to_string())
        })
        .collect();
    let list = Path::new("/sys/fs/cgroup/devices/system.slice")
        .join(unit)
        .join("devices.list");
    let mut lines: Vec<String> = std::fs::read_to_string(&list)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    out.insert("devices.list".into(), lines.join(", "));
    out
}

/// /proc/<pid>/cgroup as hierarchy -> path, the container's name replaced by `<name>`.
fn cgroups_of(text: &str, name: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, hierarchy, path) = (f.next()?, f.next()?, f.next()?);
            Some((hierarchy.to_string(), path.replace(name, "<name>")))
        })
        .collect()
}

#[derive(Debug, PartialEq)]
struct Seen {
    /// The init's cgroup per hierarchy (misc left out: runc does not join it).
    init_cgroups: BTreeMap<String, String>,
    unit: BTreeMap<String, String>,
    unit_after_reload: BTreeMap<String, String>,
    files_after_reload: BTreeMap<String, String>,
    updated_unit: BTreeMap<String, String>,
    updated_files: BTreeMap<String, String>,
    left_after_delete: Vec<PathBuf>,
}

/// A busybox bundle with `runc spec`'s config (its device rules and mounts) running `script`
/// in the scope `system.slice:berth:<name>`; the caller adds its limits and writes it.
fn spec_bundle(lab: &Lab, name: &str, script: &str) -> (PathBuf, Value) {
    let b = Bundle::new(lab.path().join(format!("bundle-{name}")))
        .applets(&["sh", "sleep", "cat", "true"])
        .dirs(&["proc", "sys", "dev", "tmp"])
        .rootfs();
    let out = lab.output(Command::new("runc").arg("spec").current_dir(&b));
    assert!(out.status.success(), "runc spec: {}", stderr(&out));
    let mut config: Value = read_config(&b);
    config["process"]["terminal"] = json!(false);
    config["process"]["args"] = json!(["sh", "-c", script]);
    config["root"]["readonly"] = json!(false);
    config["linux"]["cgroupsPath"] = json!(format!("system.slice:berth:{name}"));
    (b, config)
}

fn scope_case(rt: Rt) -> Seen {
    let rtn = runtime_name(rt);
    println!("# {rtn}: a container in a scope on a hybrid host");
    let lab = Lab::new();
    let name = crate::lab::unique_with("sdh", &rtn.replace('-', ""));
    let unit = format!("berth-{name}.scope");
    let _unit = Units(vec![unit.clone()]);
    let (b, mut config) = spec_bundle(
        &lab,
        &name,
        "cat /proc/self/cgroup > /tmp/cgroup; exec sleep 1000",
    );
    // runc spec's resources hold its device rule (deny all); the limits join it.
    let res = &mut config["linux"]["resources"];
    res["memory"] = json!({"limit": 67108864});
    res["pids"] = json!({"limit": 64});
    res["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "cgroup");
    write_config(&b, &config);

    let call = |args: &[&str]| lab.call_with(rt, &["--systemd-cgroup"], args);
    let out = call(&["run", "-d", "--bundle", b.to_str().unwrap(), &name]);
    assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
    let cg_file = b.join("rootfs/tmp/cgroup");
    wait_up_to("the container to write its cgroup", 30, || {
        std::fs::metadata(&cg_file).is_ok_and(|m| m.len() > 0)
    });
    let inside = cgroups_of(&std::fs::read_to_string(&cg_file).unwrap(), &name);
    let pid = lab.state_of(rt, &name)["pid"].as_i64().unwrap();
    let mut init_cgroups = cgroups_of(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        &name,
    );
    assert_eq!(
        inside, init_cgroups,
        "{rtn}: the container's and its init's cgroups"
    );
    let scope = "/system.slice/berth-<name>.scope";
    // runc 1.1 does not join the misc hierarchy (not in its list); berth-run joins every
    // hierarchy the host has. Checked here for berth-run, left out of the comparison.
    let misc = init_cgroups.remove("misc");
    if rt == Rt::Berth && Path::new("/sys/fs/cgroup/misc").is_dir() {
        assert_eq!(
            misc.as_deref(),
            Some(scope),
            "{rtn}: the init's misc cgroup"
        );
    }
    for h in [
        "name=systemd",
        "",
        "memory",
        "cpu,cpuacct",
        "pids",
        "devices",
        "cpuset",
        "freezer",
    ] {
        assert_eq!(
            init_cgroups.get(h).map(String::as_str),
            Some(scope),
            "{rtn}: the init's cgroup in hierarchy {h:?}: {init_cgroups:?}"
        );
    }
    for (h, path) in &init_cgroups {
        assert_eq!(path, scope, "{rtn}: the init's cgroup in hierarchy {h:?}");
    }

    let check_unit = |props: &BTreeMap<String, String>, when: &str| {
        for (p, want) in UNIT_EXPECTED {
            if let Some(want) = want {
                assert_eq!(
                    props.get(*p).map(String::as_str),
                    Some(*want),
                    "{rtn} {when}: {p}"
                );
            }
        }
        let allow = props.get("DeviceAllow").cloned().unwrap_or_default();
        for entry in ["/dev/char/1:3 rwm", "char-pts rwm", "char-* m", "block-* m"] {
            assert!(
                allow.contains(entry),
                "{rtn} {when}: DeviceAllow {allow:?} lacks {entry}"
            );
        }
    };
    let check_files = |files: &BTreeMap<String, String>, when: &str| {
        for (f, want) in FILES_EXPECTED {
            assert_eq!(
                files.get(*f).map(String::as_str),
                Some(*want),
                "{rtn} {when}: {f}"
            );
        }
        let list = &files["devices.list"];
        assert!(
            list.contains("c 1:3 rwm") && !list.contains("a *:* rwm"),
            "{rtn} {when}: devices.list {list:?}"
        );
    };
    let unit_props = unit_properties(&unit);
    check_unit(&unit_props, "after run");
    check_files(&files(&unit), "after run");
    let out = systemctl(&["daemon-reload"]);
    assert!(out.status.success(), "daemon-reload: {}", stderr(&out));
    let unit_after_reload = unit_properties(&unit);
    check_unit(&unit_after_reload, "after daemon-reload");
    let files_after_reload = files(&unit);
    check_files(&files_after_reload, "after daemon-reload");

    let out = call(&[
        "update",
        "--memory",
        "33554432",
        "--pids-limit",
        "20",
        &name,
    ]);
    assert!(out.status.success(), "{rtn} update: {}", stderr(&out));
    let out = systemctl(&["daemon-reload"]);
    assert!(out.status.success(), "daemon-reload: {}", stderr(&out));
    let updated_unit = unit_properties(&unit);
    assert_eq!(
        updated_unit["MemoryLimit"], "33554432",
        "{rtn} after update"
    );
    assert_eq!(updated_unit["TasksMax"], "20", "{rtn} after update");
    let updated_files = files(&unit);
    assert_eq!(
        updated_files["memory/memory.limit_in_bytes"], "33554432",
        "{rtn}"
    );
    assert_eq!(updated_files["pids/pids.max"], "20", "{rtn}");

    let out = call(&["delete", "--force", &name]);
    assert!(
        out.status.success(),
        "{rtn} delete --force: {}",
        stderr(&out)
    );
    let mut left = Vec::new();
    wait_up_to(
        "the scope's directories to be gone after delete",
        10,
        || {
            left = scope_dirs(&unit)
                .into_iter()
                .filter(|d| d.exists())
                .collect();
            left.is_empty()
        },
    );
    let status = systemctl(&["status", &unit]);
    assert_eq!(
        status.status.code(),
        Some(4),
        "{rtn}: systemctl status {unit}: unknown unit"
    );
    Seen {
        init_cgroups,
        unit: unit_props,
        unit_after_reload,
        files_after_reload,
        updated_unit,
        updated_files,
        left_after_delete: left,
    }
}

/// `checkpoint` of a counting container in a scope, then `restore --systemd-cgroup`: as
/// runc, the scope is started around criu, which restores into it; the restored init is in
/// the scope in every hierarchy, the unit has the limits, the counter goes on, and delete
/// leaves nothing. (No cgroup mount in the bundle: criu 3.17 cannot dump the unified tree's
/// bind mount of a hybrid host: "unreachable sharing".)
fn restore_case(rt: Rt, hybrid: bool) {
    let rtn = runtime_name(rt);
    let host = if hybrid { "a hybrid" } else { "a pure v2" };
    println!("# {rtn}: checkpoint and restore --systemd-cgroup on {host} host");
    let lab = Lab::new();
    let name = crate::lab::unique_with("sdr", &rtn.replace('-', ""));
    let unit = format!("berth-{name}.scope");
    let _unit = Units(vec![unit.clone()]);
    let (b, mut config) = spec_bundle(
        &lab,
        &name,
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done",
    );
    let res = &mut config["linux"]["resources"];
    res["memory"] = json!({"limit": 268435456});
    res["pids"] = json!({"limit": 64});
    res["cpu"] = json!({"shares": 512});
    let namespaces = config["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "cgroup");
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| m["destination"] != "/sys/fs/cgroup");
    write_config(&b, &config);

    let call = |args: &[&str]| lab.call_with(rt, &["--systemd-cgroup"], args);
    let out = call(&["run", "-d", "--bundle", b.to_str().unwrap(), &name]);
    assert!(out.status.success(), "{rtn} run -d: {}", stderr(&out));
    let count_file = b.join("rootfs/tmp/count");
    let count = || {
        std::fs::read_to_string(&count_file)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    wait_up_to("the container to count", 30, || count() > 0);
    let images = lab.path().join("images");
    let out = call(&[
        "checkpoint",
        "--image-path",
        images.to_str().unwrap(),
        &name,
    ]);
    assert!(out.status.success(), "{rtn} checkpoint: {}", stderr(&out));
    let mut scope_after_checkpoint = String::new();
    wait_up_to("the scope to end with the checkpoint", 10, || {
        let out = systemctl(&["is-active", &unit]);
        scope_after_checkpoint = String::from_utf8_lossy(&out.stdout).trim().to_string();
        scope_after_checkpoint != "active" && scope_after_checkpoint != "deactivating"
    });
    let before = count();

    let out = call(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        &name,
    ]);
    assert!(out.status.success(), "{rtn} restore: {}", stderr(&out));
    let pid = lab.state_of(rt, &name)["pid"].as_i64().unwrap();
    let init_cgroups = cgroups_of(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap(),
        &name,
    );
    let scope = "/system.slice/berth-<name>.scope";
    for (h, path) in &init_cgroups {
        assert_eq!(
            path, scope,
            "{rtn}: the restored init's cgroup in hierarchy {h:?}"
        );
    }
    let hierarchies: &[&str] = if hybrid {
        &[
            "name=systemd",
            "",
            "memory",
            "cpu,cpuacct",
            "pids",
            "devices",
            "freezer",
        ]
    } else {
        &[""]
    };
    for h in hierarchies {
        assert_eq!(
            init_cgroups.get(*h).map(String::as_str),
            Some(scope),
            "{rtn}: the restored init's cgroup in hierarchy {h:?}: {init_cgroups:?}"
        );
    }
    // v1 properties on a hybrid host, v2 ones (512 shares are CPUWeight 20) on a v2 one.
    let expected: &[(&str, &str)] = if hybrid {
        &[
            ("ActiveState", "active"),
            ("MemoryLimit", "268435456"),
            ("TasksMax", "64"),
            ("CPUShares", "512"),
        ]
    } else {
        &[
            ("ActiveState", "active"),
            ("MemoryMax", "268435456"),
            ("TasksMax", "64"),
            ("CPUWeight", "20"),
        ]
    };
    let mut args = vec!["show", unit.as_str()];
    for (p, _) in expected {
        args.extend(["-p", p]);
    }
    let out = systemctl(&args);
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    for (p, v) in expected {
        assert!(
            shown.lines().any(|l| l == format!("{p}={v}")),
            "{rtn} after restore: {p}={v} not in {shown:?}"
        );
    }
    wait_up_to("the restored container to count on", 30, || {
        count() > before + 2
    });

    let out = call(&["delete", "--force", &name]);
    assert!(
        out.status.success(),
        "{rtn} delete --force: {}",
        stderr(&out)
    );
    wait_up_to(
        "the scope's directories to be gone after delete",
        10,
        || scope_dirs(&unit).iter().all(|d| !d.exists()),
    );
    let status = systemctl(&["status", &unit]);
    assert_eq!(
        status.status.code(),
        Some(4),
        "{rtn}: systemctl status {unit}: unknown unit"
    );
}
