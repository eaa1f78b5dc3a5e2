//! The command line of berth-unpack: help, usage errors, exit codes, output shapes.
//! Unpacking needs root (device nodes, owners, trusted.* xattrs), as the tool does.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn berth_unpack(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-unpack"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A berth root whose content store is a copy of the fixture layout.
fn store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(berth_testkit::fixtures::layout())
        .arg(dir.path().join("content"))
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

#[test]
fn help_lists_the_forms_and_exit_codes() {
    let out = Command::new(env!("CARGO_BIN_EXE_berth-unpack"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "--to <DIR>",
        "--jobs <N>",
        "--json",
        "--gc",
        "--list",
        "--remove",
        "--release <BUNDLE-ID>",
        "Exit codes:",
    ] {
        assert!(text.contains(want), "help lacks {want}");
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &[][..],
        &["--to", "/tmp/x", "a", "b"],
        &["--jobs", "0", "a"],
        &["--remove"],
        &["--release", "../x"],
        &["--remove", "sha256:xyz"],
    ] {
        let out = berth_unpack(root.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
        if !args.contains(&"--jobs") {
            assert_eq!(
                stderr(&out).lines().count(),
                1,
                "{args:?}: {}",
                stderr(&out)
            );
            assert!(stderr(&out).starts_with("berth-unpack: error: "));
        }
    }
}

#[test]
fn missing_things_exit_3() {
    let empty = tempfile::tempdir().unwrap();
    let out = berth_unpack(empty.path(), &["busybox"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let root = store();
    let out = berth_unpack(root.path(), &["no-such-image:latest"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("no-such-image"), "{}", stderr(&out));
    let out = berth_unpack(
        root.path(),
        &["--remove", &format!("sha256:{}", "a".repeat(64))],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn json_describes_each_layer_and_a_second_run_creates_nothing() {
    let root = store();
    let out = berth_unpack(root.path(), &["--json", "busybox:gzip"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reference = v["reference"].as_str().unwrap();
    assert!(
        reference.starts_with("busybox:gzip@sha256:") || reference.contains("busybox:gzip@sha256:"),
        "{reference}"
    );
    assert_eq!(
        v["manifest_digest"].as_str().unwrap(),
        reference.rsplit_once('@').unwrap().1
    );
    let layer = &v["layers"][0];
    for key in [
        "chain_id",
        "diff_id",
        "digest",
        "path",
        "tar_bytes",
        "entries",
        "seconds",
    ] {
        assert!(!layer[key].is_null(), "layer lacks {key}: {layer}");
    }
    assert_eq!(layer["created"], true);
    assert_eq!(v["chain_id"], layer["chain_id"]);
    assert!(Path::new(layer["path"].as_str().unwrap())
        .join("bin/busybox")
        .exists());
    // The pinned reference read back from stdin: already there, nothing created.
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-unpack"))
        .arg("--root")
        .arg(root.path())
        .args(["--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{reference}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["reference"], v["reference"]);
    assert_eq!(again["layers"][0]["created"], false);
}

#[test]
fn plain_output_is_the_pinned_reference_per_image() {
    let root = store();
    let out = berth_unpack(root.path(), &["busybox:gzip", "layers:latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("busybox:gzip@sha256:") && lines[1].contains("layers:latest@sha256:"),
        "{text}"
    );
    let list = berth_unpack(root.path(), &["--list", "--json"]);
    assert!(list.status.success());
    let rows: Vec<serde_json::Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 6);
    assert!(rows
        .iter()
        .all(|r| r["chain_id"].is_string() && r["path"].is_string() && r["users"].is_array()));
}

#[test]
fn to_writes_a_directory_and_refuses_a_non_empty_one() {
    let root = store();
    let dest = root.path().join("rootfs");
    let out = berth_unpack(
        root.path(),
        &["--json", "--to", dest.to_str().unwrap(), "busybox:zstd"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["to"].as_str().unwrap(), dest.to_str().unwrap());
    assert_eq!(v["layers"], 1);
    assert!(v["entries"].as_u64().unwrap() > 100);
    assert!(dest.join("bin/busybox").exists());
    let out = berth_unpack(
        root.path(),
        &["--to", dest.to_str().unwrap(), "busybox:zstd"],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
}
