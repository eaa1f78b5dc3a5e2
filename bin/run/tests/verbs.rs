//! CLI tests of `spec`, `features`, `list` and `ps` that need no root: help, usage errors,
//! exit codes, JSON shapes.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn berth_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A stopped container's state as berth-run writes it (pid 0: never alive).
fn fake_state(root: &Path, id: &str, annotations: &str) {
    let dir = root.join(id);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("state.json"),
        format!(
            r#"{{"ociVersion":"1.0.2","id":"{id}","pid":0,"bundle":"/b/{id}","rootfs":"/b/{id}/rootfs",
                "created":"2026-11-27T18:01:47.912034400Z","annotations":{annotations},
                "initStartTime":0,"cgroupPath":"/berth/{id}"}}"#
        ),
    )
    .unwrap();
}

#[test]
fn help_names_the_new_verbs_and_their_flags() {
    let text = String::from_utf8(berth_run(&["--help"]).stdout).unwrap();
    for verb in ["spec", "features", "list", "ps"] {
        assert!(text.contains(verb), "{verb} missing from --help");
    }
    let text = String::from_utf8(berth_run(&["spec", "--help"]).stdout).unwrap();
    assert!(
        text.contains("--bundle") && text.contains("--rootless"),
        "{text}"
    );
    let text = String::from_utf8(berth_run(&["list", "--help"]).stdout).unwrap();
    assert!(
        text.contains("--quiet") && text.contains("--format"),
        "{text}"
    );
    let text = String::from_utf8(berth_run(&["ps", "--help"]).stdout).unwrap();
    assert!(
        text.contains("--format") && text.contains("PS_ARGS"),
        "{text}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    for args in [
        vec!["ps"],
        vec!["list", "--format", "xml"],
        vec!["list", "extra"],
        vec!["features", "extra"],
        vec!["spec", "--nope"],
        vec!["--root", root, "ps", "../etc"],
    ] {
        let out = berth_run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {:?}", out);
    }
}

#[test]
fn spec_writes_runc_default_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().to_str().unwrap();
    let out = berth_run(&["spec", "--bundle", b]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = dir.path().join("config.json");
    let first = std::fs::read(&path).unwrap();
    let v: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(v["ociVersion"], "1.0.2-dev");
    assert_eq!(v["process"]["args"][0], "sh");
    assert_eq!(v["process"]["terminal"], true);
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["linux"]["namespaces"].as_array().unwrap().len(), 5);

    let out = berth_run(&["spec", "--bundle", b]);
    assert_eq!(out.status.code(), Some(4), "an existing config.json");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("config.json"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), first, "left untouched");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary left"
    );

    let out = berth_run(&[
        "spec",
        "--bundle",
        dir.path().join("missing").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn spec_rootless_maps_the_caller() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth_run(&["spec", "--rootless", "-b", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let uid = std::fs::metadata(dir.path().join("config.json")).unwrap();
    let uid = std::os::unix::fs::MetadataExt::uid(&uid);
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], uid);
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user") && !ns.contains(&"network"), "{ns:?}");
    assert_eq!(v["mounts"][5]["source"], "/sys");
}

#[test]
fn features_is_the_runtime_spec_document() {
    let v = json(&berth_run(&["features"]));
    assert_eq!(v["ociVersionMin"], "1.0.0");
    assert!(v["ociVersionMax"].as_str().unwrap().starts_with("1.0."));
    assert_eq!(v["hooks"].as_array().unwrap().len(), 6);
    let opts = v["mountOptions"].as_array().unwrap();
    assert!(opts.contains(&"rro".into()) && opts.contains(&"rbind".into()));
    let linux = &v["linux"];
    assert!(linux["namespaces"]
        .as_array()
        .unwrap()
        .contains(&"user".into()));
    assert_eq!(linux["capabilities"][0], "CAP_CHOWN");
    assert_eq!(linux["cgroup"]["v2"], true);
    assert_eq!(linux["cgroup"]["systemd"], true);
    assert_eq!(linux["seccomp"]["enabled"], true);
    let actions = linux["seccomp"]["actions"].as_array().unwrap();
    assert!(actions.contains(&"SCMP_ACT_ERRNO".into()));
    assert!(
        actions.contains(&"SCMP_ACT_NOTIFY".into()),
        "the seccomp listener is supported"
    );
    assert_eq!(linux["mountExtensions"]["idmap"]["enabled"], true);
    assert!(opts.contains(&"idmap".into()) && opts.contains(&"ridmap".into()));
    assert!(linux["seccomp"]["archs"]
        .as_array()
        .unwrap()
        .contains(&"SCMP_ARCH_X86_64".into()));
    assert_eq!(linux["apparmor"]["enabled"], false);
    assert_eq!(linux["selinux"]["enabled"], false);
}

#[test]
fn list_of_an_empty_or_missing_root() {
    let dir = tempfile::tempdir().unwrap();
    for root in [dir.path().to_path_buf(), dir.path().join("missing")] {
        let root = root.to_str().unwrap();
        let out = berth_run(&["--root", root, "list"]);
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"
        );
        assert_eq!(
            json(&berth_run(&["--root", root, "list", "--format", "json"])),
            Value::Array(vec![])
        );
        assert!(berth_run(&["--root", root, "list", "-q"]).stdout.is_empty());
    }
}

#[test]
fn list_shows_every_container_in_runc_shapes() {
    let dir = tempfile::tempdir().unwrap();
    fake_state(dir.path(), "b-second", "{}");
    fake_state(dir.path(), "a-first", r#"{"k":"v"}"#);
    std::fs::create_dir(dir.path().join("not-a-container")).unwrap();
    let root = dir.path().to_str().unwrap();

    let v = json(&berth_run(&["--root", root, "list", "--format", "json"]));
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["id"], "a-first");
    assert_eq!(all[0]["status"], "stopped");
    assert_eq!(all[0]["pid"], 0);
    assert_eq!(all[0]["bundle"], "/b/a-first");
    assert_eq!(all[0]["rootfs"], "/b/a-first/rootfs");
    assert_eq!(all[0]["created"], "2026-11-27T18:01:47.9120344Z");
    assert_eq!(all[0]["annotations"]["k"], "v");
    assert!(
        all[1].get("annotations").is_none(),
        "omitted when empty, as runc"
    );
    assert!(!all[0]["owner"].as_str().unwrap().is_empty());

    let out = berth_run(&["--root", root, "list", "-q"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "a-first\nb-second\n"
    );

    let out = berth_run(&["--root", root, "list"]);
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("ID          PID         STATUS      BUNDLE"),
        "{text}"
    );
    let cols: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cols[..5],
        [
            "a-first",
            "0",
            "stopped",
            "/b/a-first",
            "2026-11-27T18:01:47.9120344Z"
        ]
    );
    // Columns line up: each starts at the header's offset.
    let at = lines[0].find("CREATED").unwrap();
    assert_eq!(&lines[1][at..at + 4], "2026");
}

#[test]
fn ps_of_a_missing_container_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = berth_run(&["--root", root, "ps", "nope"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope") && err.lines().count() == 1, "{err}");
    let out = berth_run(&["--root", root, "ps", "--format", "json", "nope"]);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn pause_and_resume_need_a_live_container() {
    let text = String::from_utf8(berth_run(&["--help"]).stdout).unwrap();
    assert!(text.contains("pause") && text.contains("resume"), "{text}");
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    for verb in ["pause", "resume"] {
        let out = berth_run(&["--root", r, verb, "missing"]);
        assert_eq!(out.status.code(), Some(3), "{verb} of a missing container");
        let out = berth_run(&[verb]);
        assert_eq!(out.status.code(), Some(2), "{verb} without an id");
    }
    fake_state(root.path(), "gone", "{}");
    let out = berth_run(&["--root", r, "pause", "gone"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("container not running"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = berth_run(&["--root", r, "resume", "gone"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("container not paused"), "{err}");
}

#[test]
fn features_lists_every_namespace_hook_and_mount_option_runc_lists() {
    let runc = Command::new("runc")
        .arg("features")
        .output()
        .expect("runc is installed (scripts/setup)");
    assert!(runc.status.success());
    let runc: Value = serde_json::from_slice(&runc.stdout).unwrap();
    let berth = json(&berth_run(&["features"]));
    for path in [
        "/hooks",
        "/mountOptions",
        "/linux/namespaces",
        "/linux/seccomp/actions",
    ] {
        let ours = berth.pointer(path).unwrap().as_array().unwrap();
        for name in runc.pointer(path).unwrap().as_array().unwrap() {
            assert!(
                ours.contains(name),
                "{path}: runc lists {name}, berth-run does not"
            );
        }
    }
}
