//! CLI tests of `berth-run exec` that need no root: help, usage errors, exit codes of the
//! foreground (run's 125) and detached (documented kinds) forms.

use std::process::{Command, Output};

fn berth_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .args(args)
        .output()
        .unwrap()
}

fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.starts_with("berth-run: error: ") && err.trim_end().lines().count() == 1,
        "{err:?}"
    );
    err
}

#[test]
fn help_lists_every_runc_exec_flag() {
    let out = berth_run(&["exec", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--console-socket",
        "--cwd",
        "--env",
        "--tty",
        "--user",
        "--additional-gids",
        "--process",
        "--detach",
        "--pid-file",
        "--process-label",
        "--apparmor",
        "--no-new-privs",
        "--cap",
        "--preserve-fds",
        "--ignore-paused",
        "--cgroup",
    ] {
        assert!(text.contains(flag), "{flag} missing from exec --help");
    }
    let top = berth_run(&["--help"]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("exec"));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(
        berth_run(&["exec"]).status.code(),
        Some(2),
        "an id is required"
    );
    assert_eq!(
        berth_run(&["exec", "-g", "abc", "c1", "true"])
            .status
            .code(),
        Some(2),
        "gids are numbers"
    );
    assert_eq!(
        berth_run(&["exec", "--preserve-fds", "-1", "c1", "true"])
            .status
            .code(),
        Some(2)
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = berth_run(&["--root", root, "exec", "-d", "../etc", "true"]);
    assert_eq!(out.status.code(), Some(2));
    one_line_error(&out);
}

#[test]
fn unknown_containers_exit_3_detached_and_125_in_the_foreground() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    // `-c` after the command belongs to the command, not to --cap.
    let out = berth_run(&["--root", root, "exec", "-d", "nope", "sh", "-c", "true"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(one_line_error(&out).contains("does not exist"));
    let out = berth_run(&["--root", root, "exec", "nope", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(one_line_error(&out).contains("exec in container nope"));
}

#[test]
fn a_stopped_container_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("c1");
    std::fs::create_dir(&state).unwrap();
    // A state whose init is long gone (no such pid).
    let json = serde_json::json!({
        "ociVersion": "1.0.2", "id": "c1", "pid": 999_999_999, "bundle": "/nonexistent",
        "rootfs": "/nonexistent/rootfs", "created": "2026-01-01T00:00:00Z",
        "initStartTime": 1, "cgroupPath": "/berth/c1"
    });
    std::fs::write(state.join("state.json"), json.to_string()).unwrap();
    let root = dir.path().to_str().unwrap();
    let out = berth_run(&["--root", root, "exec", "-d", "c1", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line_error(&out).contains("cannot exec in a stopped container"));
    let out = berth_run(&["--root", root, "exec", "c1", "true"]);
    assert_eq!(out.status.code(), Some(125));
    one_line_error(&out);
}
