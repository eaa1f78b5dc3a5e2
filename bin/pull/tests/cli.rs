//! berth-pull's command line: help, usage errors, exit codes and the JSON shapes. The
//! registry is the testkit's in-process fake on loopback; no root needed.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use berth_testkit::fake::FakeRegistry;
use berth_testkit::fixtures;
use serde_json::Value;

fn berth_pull(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth-pull"));
    c.arg("--root").arg(root);
    c.env_remove("REGISTRY_AUTH_FILE")
        .env_remove("BERTH_MIRRORS")
        .env_remove("BERTH_ROOT")
        // Log lines would add to the stderr the tests assert on.
        .env_remove("RUST_LOG")
        .env("HOME", root);
    c.stdin(Stdio::null());
    c
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().expect("running berth-pull")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_the_options_and_ends_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let o = output(berth_pull(dir.path()).arg("--help"));
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--root",
        "--platform",
        "--plain-http",
        "--creds",
        "--authfile",
        "--ca-file",
        "--mirrors",
        "--jobs",
        "--json",
        "--quiet",
        "--list",
        "--remove",
        "--gc",
    ] {
        assert!(text.contains(flag), "--help lacks {flag}");
    }
    assert!(
        text.trim_end().ends_with("6  unsupported by this host"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // Every reference names an unusable loopback registry: a regression that got past the
    // usage checks could never reach the internet.
    let cases: &[&[&str]] = &[
        &[],
        &["127.0.0.1:1/Busybox"],
        &["127.0.0.1:1/busybox:"],
        &["--jobs", "0", "127.0.0.1:1/busybox"],
        &["--platform", "linux", "127.0.0.1:1/busybox"],
        &["--creds", "nocolon", "127.0.0.1:1/busybox"],
        &["--list", "127.0.0.1:1/busybox"],
        &["--gc", "127.0.0.1:1/busybox"],
        &["--remove"],
        &["--list", "--gc"],
        &["--no-such-flag"],
        &[
            "--authfile",
            "/nonexistent/auth.json",
            "127.0.0.1:1/busybox",
        ],
        &[
            "--mirrors",
            "/nonexistent/mirrors.json",
            "127.0.0.1:1/busybox",
        ],
        &["--ca-file", "/nonexistent/ca.pem", "127.0.0.1:1/busybox"],
    ];
    for args in cases {
        let o = output(berth_pull(dir.path()).args(*args));
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(stderr(&o).contains("error"), "{args:?}: {}", stderr(&o));
    }
    // Nothing was created for a usage error.
    assert!(!dir.path().join("content").exists());
}

#[test]
fn a_malformed_reference_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let o = output(berth_pull(dir.path()).arg("library/Busybox"));
    let e = stderr(&o);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(
        e.starts_with("berth-pull: error: invalid image reference \"library/Busybox\""),
        "{e}"
    );
}

#[test]
fn housekeeping_on_a_missing_store_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["--list"][..],
        &["--gc"],
        &["--remove", "127.0.0.1:1/busybox"],
    ] {
        let o = output(berth_pull(dir.path()).args(args));
        assert_eq!(o.status.code(), Some(3), "{args:?}: {}", stderr(&o));
    }
}

#[test]
fn an_unreachable_registry_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    // Port 1 is privileged and never served here; a port freed by a probe could be taken by
    // another test's registry in the meantime.
    let addr = "127.0.0.1:1";
    let o = output(berth_pull(dir.path()).arg(format!("{addr}/busybox:1")));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(addr));
}

#[test]
fn json_shape_of_pull_list_remove_and_gc() {
    let fake = FakeRegistry::start(fixtures::layout());
    let dir = tempfile::tempdir().unwrap();
    let name = format!("{}/busybox:gzip", fake.addr());
    let o = output(berth_pull(dir.path()).arg("--json").arg(&name));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    assert_eq!(out.lines().count(), 1);
    let v: Value = serde_json::from_str(&out).unwrap();
    let image = fixtures::image("busybox:gzip");
    assert_eq!(v["reference"], name.as_str());
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["pinned"], format!("{name}@{}", image.manifest.digest));
    assert_eq!(v["manifest"]["digest"], image.manifest.digest.as_str());
    assert_eq!(v["manifest"]["size"], image.manifest.size);
    assert_eq!(v["manifest"]["mediaType"], fixtures::media::OCI_MANIFEST);
    assert_eq!(v["config"]["digest"], image.config.digest.as_str());
    assert!(v["index"].is_null());
    assert_eq!(v["platform"], fixtures::host_platform().to_string());
    let layers = v["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0]["digest"], image.layers[0].digest.as_str());
    assert_eq!(layers[0]["size"], image.layers[0].size);
    assert_eq!(layers[0]["fetchedBytes"], image.layers[0].size);
    assert_eq!(layers[0]["present"], false);
    assert_eq!(v["source"], fake.addr());
    assert!(v["bytesFetched"].as_u64().unwrap() >= image.layers[0].size);
    assert!(v["seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["store"], dir.path().join("content").to_str().unwrap());

    // Pulled again: everything is present, nothing fetched but the manifest.
    let again: Value =
        serde_json::from_slice(&output(berth_pull(dir.path()).arg("--json").arg(&name)).stdout)
            .unwrap();
    assert_eq!(again["layers"][0]["present"], true);
    assert_eq!(again["layers"][0]["fetchedBytes"], 0);

    let list = output(berth_pull(dir.path()).args(["--list", "--json"]));
    let l: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(l["name"], name.as_str());
    assert_eq!(l["digest"], image.manifest.digest.as_str());
    assert_eq!(l["mediaType"], fixtures::media::OCI_MANIFEST);
    let text = output(berth_pull(dir.path()).arg("--list"));
    assert_eq!(
        String::from_utf8_lossy(&text.stdout).trim(),
        format!("{name}@{}", image.manifest.digest)
    );

    let rm = output(
        berth_pull(dir.path())
            .args(["--remove", "--json"])
            .arg(&name),
    );
    let r: Value = serde_json::from_slice(&rm.stdout).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"name": name, "digest": image.manifest.digest, "removed": true})
    );
    let gc = output(berth_pull(dir.path()).args(["--gc", "--json"]));
    let g: Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(g["removed"].as_array().unwrap().len(), 3, "{g}");
    assert!(g["bytes"].as_u64().unwrap() > 0);
    assert_eq!(g["partials"], 0);
    assert!(output(berth_pull(dir.path()).arg("--list"))
        .stdout
        .is_empty());
}

#[test]
fn stdout_is_quiet_apart_from_results_and_stderr_has_no_bars_when_not_a_terminal() {
    let fake = FakeRegistry::start(fixtures::layout());
    let dir = tempfile::tempdir().unwrap();
    let o = output(berth_pull(dir.path()).arg(format!("{}/busybox:zstd", fake.addr())));
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1);
    assert!(o.stderr.is_empty(), "{}", stderr(&o));
}
