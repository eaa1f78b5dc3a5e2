//! CLI tests of checkpoint, restore and --systemd-cgroup that need no root and no working
//! criu: help, usage errors, exit codes, and that a refusal leaves nothing behind. The
//! checkpoints themselves are root end-to-end tests (tests/e2e/run_checkpoint.rs).

use std::path::Path;
use std::process::{Command, Output};

fn berth_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .args(args)
        .output()
        .unwrap()
}

fn one_line(out: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("berth-run: error: "), "{err}");
    err
}

/// A bundle directory with only a config.json (enough for the refusals tested here).
fn bundle(dir: &Path, cgroups_path: Option<&str>) -> String {
    let b = dir.join("bundle");
    std::fs::create_dir_all(b.join("rootfs")).unwrap();
    let mut config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
    });
    if let Some(p) = cgroups_path {
        config["linux"]["cgroupsPath"] = p.into();
    }
    std::fs::write(b.join("config.json"), config.to_string()).unwrap();
    b.to_str().unwrap().to_string()
}

#[test]
fn help_shows_runcs_checkpoint_and_restore_flags() {
    let out = berth_run(&["checkpoint", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
        "--lazy-pages",
    ] {
        assert!(text.contains(flag), "{flag} missing from checkpoint --help");
    }
    let out = berth_run(&["restore", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--image-path",
        "--work-path",
        "--bundle",
        "--detach",
        "--pid-file",
        "--console-socket",
        "--no-subreaper",
        "--no-pivot",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
        "--lazy-pages",
    ] {
        assert!(text.contains(flag), "{flag} missing from restore --help");
    }
    let out = berth_run(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("checkpoint") && text.contains("restore") && text.contains("--criu"));
}

#[test]
fn checkpoint_usage_errors_and_a_missing_container() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let root = root.to_str().unwrap();
    assert_eq!(
        berth_run(&["checkpoint"]).status.code(),
        Some(2),
        "an id is required"
    );
    let err = one_line(
        &berth_run(&[
            "--root",
            root,
            "checkpoint",
            "--manage-cgroups-mode",
            "hard",
            "c",
        ]),
        2,
    );
    assert!(err.contains("--manage-cgroups-mode \"hard\""), "{err}");
    let err = one_line(
        &berth_run(&["--root", root, "checkpoint", "--empty-ns", "ipc", "c"]),
        2,
    );
    assert!(err.contains("only network"), "{err}");
    let err = one_line(&berth_run(&["--root", root, "checkpoint", "nope"]), 3);
    assert!(err.contains("\"nope\" does not exist"), "{err}");
    let err = one_line(&berth_run(&["--root", root, "checkpoint", "../x"]), 2);
    assert!(err.contains("invalid container id"), "{err}");
}

#[test]
fn restore_refusals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let b = bundle(dir.path(), None);
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    let restore = |criu: &str| {
        berth_run(&[
            "--root",
            root.to_str().unwrap(),
            "--criu",
            criu,
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            &b,
            "r1",
        ])
    };
    // No images: not found.
    let err = one_line(&restore("/nonexistent/criu"), 3);
    assert!(err.contains("inventory.img is missing"), "{err}");
    // Images, but no criu: unsupported by this host.
    std::fs::write(images.join("inventory.img"), b"").unwrap();
    let err = one_line(&restore("/nonexistent/criu"), 6);
    assert!(
        err.contains("criu /nonexistent/criu cannot be run"),
        "{err}"
    );
    assert!(!root.join("r1").exists(), "no state directory left");
    // (A criu that cannot work is only found out by running it: tests/e2e/run_checkpoint.rs.)
    // A terminal container cannot be restored through criu's command line.
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(&b).join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = true.into();
    std::fs::write(Path::new(&b).join("config.json"), config.to_string()).unwrap();
    let err = one_line(&restore("/nonexistent/criu"), 6);
    assert!(err.contains("process.terminal"), "{err}");
}

#[test]
fn systemd_cgroup_checks_the_path_then_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let root = root.to_str().unwrap();
    // runc's format is slice:prefix:name: a plain path is a usage error naming the file.
    let b = bundle(dir.path(), Some("/berth/x"));
    let err = one_line(
        &berth_run(&[
            "--systemd-cgroup",
            "--root",
            root,
            "create",
            "--bundle",
            &b,
            "s1",
        ]),
        2,
    );
    assert!(
        err.contains("slice:prefix:name") && err.contains("config.json"),
        "{err}"
    );
    // A good path where PID 1 is not systemd (this VM): exit 6 saying so, nothing created.
    // (Where it is systemd, tests/e2e/run_systemd.rs runs real containers in scopes.)
    let b = bundle(dir.path(), Some("system.slice:berth:s1"));
    let verbs: &[&str] = if Path::new("/run/systemd/system").exists() {
        &[]
    } else {
        &["create", "run", "restore"]
    };
    for verb in verbs {
        let err = one_line(
            &berth_run(&[
                "--systemd-cgroup",
                "--root",
                root,
                verb,
                "--bundle",
                &b,
                "s1",
            ]),
            6,
        );
        assert!(err.contains("--systemd-cgroup"), "{err}");
        assert!(err.contains("PID 1 is not systemd"), "{err}");
    }
    assert!(!Path::new(root).join("s1").exists());
    assert!(!Path::new("/sys/fs/cgroup/system.slice/berth-s1.scope").exists());
}
