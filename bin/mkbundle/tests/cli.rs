//! The command line of berth-mkbundle: help, usage errors, exit codes, JSON shape. No root
//! needed: everything here fails before a mount, or removes what is not there.

use std::path::Path;
use std::process::{Command, Output};

fn mkbundle(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-mkbundle"))
        .args(args)
        .output()
        .expect("running berth-mkbundle")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// One line, `berth-mkbundle: error: …`, and the exit code.
fn assert_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.starts_with("berth-mkbundle: error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn help_lists_options_and_ends_with_exit_codes() {
    let out = mkbundle(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--bundle",
        "--remove",
        "--root",
        "--json",
        "--user",
        "--mount",
        "--security-opt",
        "--userns",
        "--group-add",
        "--durable",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(
        help.trim_end().ends_with("6  unsupported by this host"),
        "{help}"
    );
}

#[test]
fn usage_errors_exit_2_on_one_line() {
    assert_error(&mkbundle(&[]), 2, "--bundle");
    assert_error(&mkbundle(&["--bundle", "/tmp/x"]), 2, "IMAGE");
    assert_error(
        &mkbundle(&["--bundle", "/tmp/x", "--bogus", "img"]),
        2,
        "--bogus",
    );
    assert_error(
        &mkbundle(&["--bundle", "/tmp/x", "--remove", "/tmp/y"]),
        2,
        "--remove",
    );
}

#[test]
fn malformed_option_values_name_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    let b = bundle.to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (&["--memory", "lots"], "invalid --memory \"lots\""),
        (&["--cpus", "0"], "invalid --cpus"),
        (&["--mount", "type=volume,target=/x"], "invalid --mount"),
        (&["--tmpfs", "relative"], "invalid --tmpfs"),
        (&["--cap-add", "FLY"], "unknown capability"),
        (&["--ulimit", "nofile"], "invalid --ulimit"),
        (&["--security-opt", "apparmor=x"], "invalid --security-opt"),
        (&["--userns", "0:1"], "invalid --userns"),
        (&["--hostname", "not a host"], "invalid --hostname"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["--root", tmp.path().to_str().unwrap(), "--bundle", b];
        all.extend_from_slice(args);
        all.push("img");
        assert_error(&mkbundle(&all), 2, needle);
        assert!(!bundle.exists(), "{args:?} made the bundle");
    }
}

#[test]
fn a_missing_store_or_profile_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("no-root");
    let bundle = tmp.path().join("b");
    let out = mkbundle(&[
        "--root",
        root.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "busybox",
    ]);
    assert_error(&out, 3, "no content store");
    let out = mkbundle(&[
        "--root",
        root.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "--security-opt",
        "seccomp=/nonexistent/profile.json",
        "busybox",
    ]);
    assert_error(&out, 3, "/nonexistent/profile.json");
    assert!(!bundle.exists());
}

#[test]
fn a_bad_seccomp_profile_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let profile = tmp.path().join("p.json");
    std::fs::write(&profile, "{ not json").unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = mkbundle(&[
        "--root",
        tmp.path().to_str().unwrap(),
        "--bundle",
        "/tmp/unused",
        "--security-opt",
        &opt,
        "x",
    ]);
    assert_error(&out, 2, "is not valid JSON");
}

#[test]
fn remove_is_idempotent_and_refuses_other_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("gone");
    let out = mkbundle(&["--remove", gone.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    let out = mkbundle(&["--json", "--remove", gone.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, serde_json::json!({"bundle": gone, "removed": false}));

    // A directory that is not a bundle is never deleted.
    let precious = tmp.path().join("precious");
    std::fs::create_dir(&precious).unwrap();
    std::fs::write(precious.join("data"), "keep").unwrap();
    assert_error(
        &mkbundle(&["--remove", precious.to_str().unwrap()]),
        2,
        "not a berth bundle",
    );
    assert!(Path::new(&precious.join("data")).exists());
}

#[test]
fn an_existing_bundle_is_not_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("b");
    std::fs::create_dir(&bundle).unwrap();
    std::fs::write(bundle.join("config.json"), "{}").unwrap();
    let out = mkbundle(&[
        "--root",
        tmp.path().to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        "img",
    ]);
    assert_error(&out, 4, "already exists");
    assert_eq!(
        std::fs::read_to_string(bundle.join("config.json")).unwrap(),
        "{}"
    );
}

#[test]
fn remove_refuses_a_symlink_to_a_bundle_and_keeps_its_target() {
    // --remove never follows a symlink: not at DIR itself, not inside (tests/e2e).
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir_all(target.join("rootfs")).unwrap();
    std::fs::write(target.join("config.json"), "{}").unwrap();
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_error(
        &mkbundle(&["--remove", link.to_str().unwrap()]),
        2,
        "not a berth bundle",
    );
    assert!(target.join("config.json").is_file());
    assert!(link.symlink_metadata().is_ok());
}
