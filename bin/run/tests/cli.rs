//! CLI tests of berth-run that need no root: help, usage errors, exit codes, JSON shape.

use std::process::Command;

fn berth_run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_lists_the_verbs_and_ends_with_exit_codes() {
    let out = berth_run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for verb in ["create", "start", "run", "state", "kill", "delete"] {
        assert!(text.contains(verb), "{verb} missing from --help");
    }
    assert!(
        text.trim_end().ends_with("127 when it is not found"),
        "{text}"
    );
    let out = berth_run(&["run", "--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bundle",
        "--pid-file",
        "--console-socket",
        "--preserve-fds",
        "--no-pivot",
        "--no-new-keyring",
        "--detach",
    ] {
        assert!(text.contains(flag), "{flag} missing from run --help");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(berth_run(&[]).status.code(), Some(2));
    assert_eq!(berth_run(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(
        berth_run(&["create"]).status.code(),
        Some(2),
        "an id is required"
    );
    assert_eq!(
        berth_run(&["--log-format", "xml", "state", "x"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn bad_ids_and_unknown_signals_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = berth_run(&["--root", root, "state", "../../etc"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("berth-run: error: ") && err.lines().count() == 1,
        "{err}"
    );
    let out = berth_run(&["--root", root, "kill", "c1", "SIGFLY"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_containers_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    for verb in [
        &["state", "nope"][..],
        &["start", "nope"],
        &["kill", "nope"],
        &["delete", "nope"],
    ] {
        let mut args = vec!["--root", root];
        args.extend_from_slice(verb);
        let out = berth_run(&args);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{verb:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("\"nope\" does not exist"));
    }
}

#[test]
fn a_missing_bundle_or_malformed_config_fails_before_anything_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let out = berth_run(&[
        "--root",
        root.to_str().unwrap(),
        "create",
        "--bundle",
        "/nonexistent-bundle",
        "c1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle = dir.path().join("b");
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::write(bundle.join("config.json"), "{\"process\": 5}").unwrap();
    let out = berth_run(&[
        "--root",
        root.to_str().unwrap(),
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        "c1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
    assert!(!root.join("c1").exists());
    // `run` in the foreground reports its own failures as 125.
    let out = berth_run(&[
        "--root",
        root.to_str().unwrap(),
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        "c1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_cgroup_is_ignored_by_verbs_that_make_no_cgroup() {
    // Like runc: state, kill, delete act on recorded state. create/run/restore are in
    // tests/checkpoint.rs (exit 6 where PID 1 is not systemd).
    let out = berth_run(&[
        "--systemd-cgroup",
        "--root",
        "/nonexistent-berth-root",
        "state",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(3));
}
