//! The command line: help, usage errors, exit codes and JSON shapes. Plugins are small
//! scripts, and every failure happens before a namespace is made; only the `list` test makes
//! one (as root) so that it has something to list.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn berth_netns(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-netns"))
        .args(args)
        .env_remove("CNI_PATH")
        .env_remove("CNI_CONF_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A directory with `conf/`, `bin/` (a fake plugin) and `cache/`.
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(version: &str, status_script: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["conf", "bin", "cache"] {
            fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let log = dir.path().join("calls");
        let plugin = format!(
            "#!/bin/sh\ncat >/dev/null\necho \"$CNI_COMMAND $CNI_CONTAINERID\" >> {}\ncase \"$CNI_COMMAND\" in\n\
             VERSION) echo '{{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"1.0.0\",\"1.1.0\"]}}' ;;\n\
             STATUS) {status_script} ;;\nesac\n",
            log.display()
        );
        fs::write(dir.path().join("bin/fake"), plugin).unwrap();
        fs::set_permissions(
            dir.path().join("bin/fake"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let list = format!(
            r#"{{"cniVersion":"{version}","name":"fakenet","plugins":[{{"type":"fake"}}]}}"#
        );
        fs::write(dir.path().join("conf/10-fake.conflist"), list).unwrap();
        Setup { dir }
    }

    fn path(&self, sub: &str) -> String {
        self.dir.path().join(sub).display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for (flag, sub) in [
            ("--conf-dir", "conf"),
            ("--bin-dir", "bin"),
            ("--cache-dir", "cache"),
        ] {
            all.push(flag.into());
            all.push(self.path(sub));
        }
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        berth_netns(&refs)
    }

    fn calls(&self) -> String {
        fs::read_to_string(self.dir.path().join("calls")).unwrap_or_default()
    }
}

#[test]
fn help_lists_the_verbs_and_ends_with_the_exit_codes() {
    let out = berth_netns(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for verb in ["add", "del", "check", "list", "gc", "status"] {
        assert!(text.contains(verb), "{verb} missing from help");
    }
    assert!(
        text.trim_end().ends_with("6  unsupported by this host"),
        "{text}"
    );
    let out = berth_netns(&["add", "--help"]);
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--conf-dir",
        "--bin-dir",
        "--network",
        "--ifname",
        "--container-id",
        "--args",
        "--port",
        "--bandwidth",
        "--cache-dir",
        "--json",
        "--timeout",
    ] {
        assert!(text.contains(flag), "{flag} missing from add --help");
    }
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        vec!["add"],
        vec!["add", "n1", "--port", "80"],
        vec!["add", "n1", "--port", "1.2.3.4:99999:80"],
        vec!["add", "n1", "--bandwidth", "rate=1"],
        vec!["add", "n1", "--timeout", "0"],
        vec!["add", "n1", "--args", "novalue"],
        vec!["frobnicate"],
    ] {
        let out = berth_netns(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = berth_netns(&["add", "../escape"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("berth-netns: error: invalid network namespace name \"../escape\""),
        "{err}"
    );
}

#[test]
fn a_missing_configuration_exits_3_before_any_namespace_is_made() {
    let empty = tempfile::tempdir().unwrap();
    let conf = empty.path().display().to_string();
    let out = berth_netns(&["add", "cli-never-made", "--conf-dir", &conf]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no network configurations"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new("/run/netns/cli-never-made").exists());

    let s = Setup::new("1.0.0", "true");
    let out = s.run(&["add", "cli-never-made", "--network", "other"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no network configuration named \"other\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_configuration_is_named_and_exits_2() {
    let s = Setup::new("1.0.0", "true");
    let bad = s.dir.path().join("conf/05-bad.conflist");
    fs::write(
        &bad,
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"../../bin/sh"}]}"#,
    )
    .unwrap();
    let out = s.run(&["add", "cli-never-made"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&bad.display().to_string()) && err.contains("plugin binary name"),
        "{err}"
    );
}

#[test]
fn status_asks_11_plugins_and_prints_one_object_per_network() {
    let s = Setup::new("1.1.0", "true");
    let out = s.run(&["status", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"network":"fakenet","cniVersion":"1.1.0","status":"ready","detail":""})
    );
    assert!(s.calls().contains("STATUS"));

    let out = s.run(&["status"]);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "fakenet\tready\n");

    let old = Setup::new("1.0.0", "true");
    let out = old.run(&["status"]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "fakenet\tready\tnot asked: cniVersion 1.0.0\n"
    );
    assert!(!old.calls().contains("STATUS"));
}

#[test]
fn a_failing_status_exits_1_naming_the_plugin() {
    let s = Setup::new(
        "1.1.0",
        r#"echo '{"cniVersion":"1.1.0","code":50,"msg":"plugin not ready"}'; exit 1"#,
    );
    let out = s.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.contains(
            "plugin fake of network \"fakenet\" failed (STATUS): code 50: plugin not ready"
        ),
        "{err}"
    );
}

#[test]
fn gc_deletes_cached_attachments_whose_namespace_is_gone() {
    let s = Setup::new("1.1.0", "true");
    // A cache entry as libcni would have left it, for a namespace that no longer exists.
    fs::create_dir(s.dir.path().join("cache/results")).unwrap();
    let config = r#"{"cniVersion":"1.1.0","name":"fakenet","plugins":[{"type":"fake"}]}"#;
    let entry = serde_json::json!({
        "kind": "cniCacheV1",
        "containerId": "gone1",
        "config": base64_std(config.as_bytes()),
        "ifName": "eth0",
        "networkName": "fakenet",
        "netns": "/run/netns/berth-cli-test-never-existed",
        "result": {"cniVersion": "1.1.0", "ips": [{"address": "10.9.9.9/24"}]}
    });
    fs::write(
        s.dir.path().join("cache/results/fakenet-gone1-eth0"),
        entry.to_string(),
    )
    .unwrap();
    let out = s.run(&["gc", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["network"], "fakenet");
    assert_eq!(v["deleted"]["containerId"], "gone1");
    assert_eq!(v["deleted"]["ips"][0], "10.9.9.9/24");
    assert!(!s
        .dir
        .path()
        .join("cache/results/fakenet-gone1-eth0")
        .exists());
    let calls = s.calls();
    assert!(
        calls.contains("DEL gone1") && calls.contains("GC"),
        "{calls}"
    );
}

#[test]
fn del_of_an_unknown_namespace_succeeds_and_check_of_one_exits_3() {
    let s = Setup::new("1.0.0", "true");
    let out = s.run(&["del", "berth-cli-test-absent", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["netnsRemoved"], false);
    assert_eq!(v["deleted"], serde_json::json!([]));
    let out = s.run(&["check", "berth-cli-test-absent"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("does not exist"));
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct Netns(String);

impl Netns {
    fn new(name: String) -> Netns {
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "ip netns add {name} (this test needs root)"
        );
        Netns(name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn list_prints_one_json_object_per_namespace() {
    let s = Setup::new("1.0.0", "true");
    // list reads the machine's /run/netns: make one namespace of our own (unique name) with
    // a cached attachment, and find exactly that.
    let ns = Netns::new(format!("berth-cli-list-{}", std::process::id()));
    let path = format!("/run/netns/{}", ns.0);
    fs::create_dir(s.dir.path().join("cache/results")).unwrap();
    let config = r#"{"cniVersion":"1.0.0","name":"fakenet","plugins":[{"type":"fake"}]}"#;
    let entry = serde_json::json!({
        "kind": "cniCacheV1",
        "containerId": ns.0,
        "config": base64_std(config.as_bytes()),
        "ifName": "eth0",
        "networkName": "fakenet",
        "netns": path,
        "result": {"cniVersion": "1.0.0", "ips": [{"address": "10.9.9.8/24"}]}
    });
    fs::write(
        s.dir
            .path()
            .join(format!("cache/results/fakenet-{}-eth0", ns.0)),
        entry.to_string(),
    )
    .unwrap();
    let out = s.run(&["list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut ours = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(
            v["name"].is_string() && v["netns"].is_string() && v["attachments"].is_array(),
            "{line}"
        );
        if v["name"] == ns.0.as_str() {
            ours.push(v);
        }
    }
    assert_eq!(ours.len(), 1, "{text}");
    assert_eq!(ours[0]["netns"], path.as_str());
    assert_eq!(
        ours[0]["attachments"],
        serde_json::json!([{
            "network": "fakenet",
            "containerId": ns.0,
            "ifName": "eth0",
            "netns": path,
            "ips": ["10.9.9.8/24"],
        }])
    );
}

fn base64_std(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}
