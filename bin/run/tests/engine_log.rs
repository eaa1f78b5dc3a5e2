//! What engines read back from berth-run without root: `--log FILE --log-format json` lines
//! in logrus' shape (containerd's runc shim and podman show the last `error` line's `msg`),
//! and `delete --force` of a container that does not exist (podman runs it after a failed
//! create) succeeding quietly, as runc's does.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn berth_run(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth-run"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// Each line of the log file as JSON; panics on a line that is not a JSON object, which
/// would break containerd's decoding of the whole file.
fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            assert!(v.is_object(), "{l}");
            v
        })
        .collect()
}

#[test]
fn a_failed_verb_writes_its_error_as_a_logrus_json_line_and_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let log_arg = log.to_str().unwrap();
    let out = berth_run(
        dir.path(),
        &["--log", log_arg, "--log-format", "json", "state", "nosuch"],
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().count(),
        1,
        "stderr keeps its one line: {stderr}"
    );
    assert!(stderr.starts_with("berth-run: error: "), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    let keys: Vec<&str> = l.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["level", "msg", "time"]);
    assert_eq!(l["level"], "error");
    assert_eq!(
        format!("berth-run: error: {}", l["msg"].as_str().unwrap()),
        stderr.trim_end(),
        "the log carries the same message"
    );
    // RFC 3339 in UTC, as Go's time.Time decodes it.
    let t = l["time"].as_str().unwrap();
    assert!(t.len() >= 20 && t.ends_with('Z'), "{t}");
    assert_eq!(&t[4..5], "-");
    assert_eq!(&t[10..11], "T");

    // A second failure appends: the engine reads the last error line.
    let out = berth_run(
        dir.path(),
        &["--log", log_arg, "--log-format", "json", "kill", "other"],
    );
    assert_eq!(out.status.code(), Some(3));
    let lines = log_lines(&log);
    assert_eq!(lines.len(), 2);
    assert!(
        lines[1]["msg"].as_str().unwrap().contains("\"other\""),
        "{lines:?}"
    );
}

#[test]
fn without_log_the_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth_run(dir.path(), &["--log-format", "json", "state", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("berth-run: error: "), "{stderr}");
}

#[test]
fn text_log_gets_the_error_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.txt");
    let out = berth_run(
        dir.path(),
        &["--log", log.to_str().unwrap(), "state", "nosuch"],
    );
    assert_eq!(out.status.code(), Some(3));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

#[test]
fn delete_force_of_a_missing_container_succeeds_quietly_as_runcs() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth_run(dir.path(), &["delete", "--force", "nosuch"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without --force it is still an error: exit 3.
    let out = berth_run(dir.path(), &["delete", "nosuch"]);
    assert_eq!(out.status.code(), Some(3));
    // A malformed id is a usage error even with --force.
    let out = berth_run(dir.path(), &["delete", "--force", "../x"]);
    assert_eq!(out.status.code(), Some(2));
}
