//! The `berth-fixture` command line: help, usage errors, exit codes, what it writes.

use std::process::Command;

fn berth_fixture() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth-fixture"))
}

#[test]
fn help_exits_zero_and_lists_the_fixtures() {
    let out = berth_fixture().arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for name in berth_testkit::fixtures::SMALL {
        assert!(text.contains(name), "{name} missing from --help");
    }
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &[][..],
        &["--out"][..],
        &["--out", "/tmp/x", "nope:latest"][..],
        &["--bogus"][..],
    ] {
        let out = berth_fixture().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("berth-fixture: "),
            "{args:?}"
        );
    }
}

#[test]
fn writes_the_named_fixtures_and_adds_to_an_existing_layout() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("layout");
    let out = berth_fixture()
        .arg("--out")
        .arg(&out_dir)
        .arg("busybox:gzip")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "busybox:gzip\n");
    let out = berth_fixture()
        .arg("--out")
        .arg(&out_dir)
        .arg("multiarch:latest")
        .output()
        .unwrap();
    assert!(out.status.success());
    let small = berth_testkit::fixtures::layout();
    for r in ["busybox:gzip", "multiarch:latest"] {
        let got = berth_testkit::fixtures::layout_ref(&out_dir, r).unwrap();
        assert_eq!(
            got,
            berth_testkit::fixtures::layout_ref(small, r).unwrap(),
            "{r}"
        );
    }
    assert!(berth_testkit::fixtures::layout_ref(&out_dir, "layers:latest").is_err());
    assert!(out_dir.join("oci-layout").is_file());
}

#[test]
fn an_unwritable_destination_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "").unwrap();
    let out = berth_fixture()
        .arg("--out")
        .arg(file.join("sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("berth-fixture: error: ") && err.lines().count() == 1,
        "{err}"
    );
}
