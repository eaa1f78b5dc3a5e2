//! CLI tests of `update` and `events` that need no root: help, usage errors and exit codes.
//! (Containers, cgroups and runc's output are compared in tests/e2e/run_update.rs.)

use std::path::Path;
use std::process::{Command, Output};

fn berth_run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A stopped container's state as berth-run writes it (pid 0: never alive).
fn fake_stopped(root: &Path, id: &str) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"ociVersion":"1.0.2","id":"{id}","pid":0,"bundle":"/b/{id}","rootfs":"/b/{id}/rootfs",
                "created":"2026-11-27T18:01:47.912034400Z","annotations":{{}},
                "initStartTime":0,"cgroupPath":"/berth/{id}"}}"#
        ),
    )
    .unwrap();
}

#[test]
fn help_lists_runcs_update_flags_and_the_events_options() {
    let root = tempfile::tempdir().unwrap();
    let text = String::from_utf8(berth_run(root.path(), &["--help"]).stdout).unwrap();
    assert!(text.contains("update") && text.contains("events"), "{text}");
    let text = String::from_utf8(berth_run(root.path(), &["update", "--help"]).stdout).unwrap();
    for flag in [
        "--resources",
        "--blkio-weight",
        "--cpu-period",
        "--cpu-quota",
        "--cpu-share",
        "--cpu-rt-period",
        "--cpu-rt-runtime",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--memory",
        "--memory-reservation",
        "--memory-swap",
        "--pids-limit",
        "--l3-cache-schema",
        "--mem-bw-schema",
    ] {
        assert!(text.contains(flag), "{flag} missing from update --help");
    }
    let text = String::from_utf8(berth_run(root.path(), &["events", "--help"]).stdout).unwrap();
    assert!(
        text.contains("--interval") && text.contains("--stats"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let root = tempfile::tempdir().unwrap();
    fake_stopped(root.path(), "c1");
    for args in [
        &["update"][..],
        &["update", "--memory", "lots", "c1"],
        &["update", "--memory-swap", "-2", "c1"],
        &["update", "--cpu-share", "-5", "c1"],
        &["update", "--blkio-weight", "70000", "c1"],
        &["events"],
        &["events", "--interval", "soon", "c1"],
        &["events", "--interval", "0s", "c1"],
        &["events", "--interval", "-1s", "c1"],
    ] {
        let out = berth_run(root.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = berth_run(root.path(), &["update", "--memory", "lots", "c1"]);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--memory") && err.contains("lots"), "{err}");
    let out = berth_run(root.path(), &["update", "--resources", "-", "c1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "empty stdin is not JSON: {}",
        stderr(&out)
    );
}

#[test]
fn missing_containers_and_files_exit_3() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["update", "--pids-limit", "5", "nope"][..],
        &["events", "--stats", "nope"],
        &["events", "nope"],
    ] {
        let out = berth_run(root.path(), args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    }
    fake_stopped(root.path(), "c1");
    let out = berth_run(
        root.path(),
        &["update", "-r", "/nonexistent/res.json", "c1"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn a_stopped_container_has_no_update_or_stats() {
    let root = tempfile::tempdir().unwrap();
    fake_stopped(root.path(), "c1");
    for args in [
        &["update", "--pids-limit", "5", "c1"][..],
        &["events", "--stats", "c1"],
        &["events", "--interval", "1s", "c1"],
    ] {
        let out = berth_run(root.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn intel_rdt_schemas_are_refused_as_unsupported_before_anything_else() {
    let root = tempfile::tempdir().unwrap();
    fake_stopped(root.path(), "c1");
    for flag in ["--l3-cache-schema", "--mem-bw-schema"] {
        let out = berth_run(root.path(), &["update", flag, "L3:0=f", "c1"]);
        assert_eq!(out.status.code(), Some(6), "{flag}: {}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
}
