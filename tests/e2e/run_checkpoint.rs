//! berth-run checkpoint and restore through CRIU, as root.
//!
//! Debian's criu 3.17 cannot work on every kernel (on Linux 6.13+ it fails on the vDSO
//! layout, in `criu check` already). So the tests come in two kinds:
//! - refusals that never reach a dump (no criu, a stopped container, a taken id, criu that
//!   cannot work on this kernel): they run here, on any kernel, and check the exit code, the
//!   one-line error and that nothing was changed or left behind;
//! - the real checkpoints and restores (a counter continues from where it was, the
//!   container's state after each step, `--leave-running`, restore in the foreground, and
//!   the same cases under runc as the differential). Where criu works on this kernel they
//!   run here; where it does not, the test boots the QEMU guest of `scripts/test-cgroup2`
//!   (Debian's 6.1 kernel, where criu works) and runs itself there, and passes only if
//!   every case passed in the guest. It never skips.
//!
//! Every test has its own state root, ids and cgroups; the `Lab` guard deletes its
//! containers (berth's and runc's) and removes its directories on drop, pass or fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::lab::{one_line_error, pass_in_guest, stderr, wait_up_to, Bundle, Lab, Rt};

/// Set in the guest, so that the test runs its cases instead of booting another guest.
const IN_GUEST: &str = "BERTH_E2E_CHECKPOINT_IN_GUEST";

fn unique(tag: &str) -> String {
    crate::lab::unique_with("ckpt", tag)
}

/// This module's use of the lab: bundles that run a script with a bind mount for criu.
trait CheckpointLab {
    /// A busybox bundle whose program is `script` (sh -c), with a bind mount from the lab
    /// (an external mount for criu) and the masked and read-only paths runc's spec has.
    fn bundle(&self, id: &str, script: &str) -> PathBuf;
    /// The status `state` reports, or None if there is no such container.
    fn status(&self, id: &str) -> Option<String>;
}

impl CheckpointLab for Lab {
    fn bundle(&self, id: &str, script: &str) -> PathBuf {
        let data = self.path().join(format!("data-{id}"));
        std::fs::create_dir_all(&data).unwrap();
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["sh", "-c", script],
                "env": ["PATH=/bin"],
                "cwd": "/",
                "noNewPrivileges": true
            },
            "root": {"path": "rootfs", "readonly": false},
            "hostname": "berth",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
                {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
                {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
                {"destination": "/data", "type": "bind", "source": data, "options": ["rbind"]}
            ],
            "linux": {
                "cgroupsPath": format!("/berth/{id}"),
                "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware", "/proc/acpi"],
                "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/sys", "/proc/sysrq-trigger"]
            }
        });
        Bundle::new(self.path().join(format!("bundle-{id}")))
            .applets(&["sh", "sleep", "cat", "echo", "true"])
            .dirs(&["proc", "sys", "dev", "tmp", "etc", "data"])
            .write(&config)
    }

    fn status(&self, id: &str) -> Option<String> {
        let out = self.berth(&["state", id]);
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(v["status"].as_str().unwrap().to_string())
    }
}

/// Counts forever, writing each value to /tmp/count in the rootfs.
const COUNTER: &str = "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done";

fn count(bundle: &Path) -> u64 {
    std::fs::read_to_string(bundle.join("rootfs/tmp/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn criu_works() -> bool {
    Command::new("criu")
        .arg("check")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("criu is installed (scripts/setup)")
        .success()
}

/// A running counter container under berth-run, and its bundle.
fn running_counter(lab: &Lab, tag: &str) -> (String, PathBuf) {
    let id = unique(tag);
    let b = lab.bundle(&id, COUNTER);
    let out = lab.berth(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    wait_up_to("the counter to count", 10, || count(&b) >= 3);
    (id, b)
}

// ---- refusals: on any kernel ----

#[test]
fn checkpoint_without_criu_is_unsupported_and_the_container_keeps_running() {
    let lab = Lab::new();
    let (id, b) = running_counter(&lab, "nocriu");
    let images = lab.path().join("images");
    let out = lab.berth_with(
        &["--criu", "/nonexistent/criu"],
        &["checkpoint", "--image-path", images.to_str().unwrap(), &id],
    );
    let err = one_line_error(&out, 6);
    assert!(
        err.contains("/nonexistent/criu") && err.contains("criu"),
        "{err}"
    );
    assert!(!images.exists(), "nothing half-written");
    assert_eq!(lab.status(&id).as_deref(), Some("running"));
    let before = count(&b);
    wait_up_to("the counter to go on", 10, || count(&b) > before);
}

#[test]
fn restore_without_criu_is_unsupported_and_leaves_nothing_behind() {
    let lab = Lab::new();
    let id = unique("nocriu-restore");
    let b = lab.bundle(&id, COUNTER);
    let images = lab.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("inventory.img"), b"").unwrap();
    let out = lab.berth_with(
        &["--criu", "/nonexistent/criu"],
        &[
            "restore",
            "-d",
            "--image-path",
            images.to_str().unwrap(),
            "--bundle",
            b.to_str().unwrap(),
            &id,
        ],
    );
    one_line_error(&out, 6);
    assert!(!lab.state_root().join(&id).exists(), "no state left");
    assert!(
        !Path::new("/sys/fs/cgroup/berth").join(&id).exists()
            && !Path::new("/sys/fs/cgroup/pids/berth").join(&id).exists(),
        "no cgroup left"
    );
}

#[test]
fn checkpoint_of_a_stopped_or_created_container_fails_cleanly() {
    let lab = Lab::new();
    let id = unique("stopped");
    let b = lab.bundle(&id, "true");
    let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let images = lab.path().join("images");
    let args = ["checkpoint", "--image-path", images.to_str().unwrap(), &id];
    let err = one_line_error(&lab.berth(&args), 1);
    assert!(err.contains("is created"), "{err}");
    assert!(lab.berth(&["start", &id]).status.success());
    wait_up_to("the container to stop", 10, || {
        lab.status(&id).as_deref() == Some("stopped")
    });
    let err = one_line_error(&lab.berth(&args), 1);
    assert!(
        err.contains("is stopped") && err.contains("only a running or paused container"),
        "{err}"
    );
    assert!(!images.exists(), "nothing written");
    assert_eq!(
        lab.status(&id).as_deref(),
        Some("stopped"),
        "state untouched"
    );
    // And one that does not exist at all.
    let err = one_line_error(&lab.berth(&["checkpoint", "no-such-container"]), 3);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn restore_into_an_existing_id_fails_cleanly() {
    let lab = Lab::new();
    let (id, b) = running_counter(&lab, "taken");
    let pid_before = lab.berth(&["state", &id]).stdout;
    let images = lab.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("inventory.img"), b"").unwrap();
    let out = lab.berth(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    let err = one_line_error(&out, 4);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(lab.berth(&["state", &id]).stdout, pid_before, "untouched");
    assert_eq!(lab.status(&id).as_deref(), Some("running"));
}

#[test]
fn bad_checkpoint_options_are_usage_errors() {
    let lab = Lab::new();
    let (id, _) = running_counter(&lab, "badopt");
    let out = lab.berth(&["checkpoint", "--manage-cgroups-mode", "hard", &id]);
    let err = one_line_error(&out, 2);
    assert!(err.contains("--manage-cgroups-mode"), "{err}");
    let out = lab.berth(&["checkpoint", "--empty-ns", "pid", &id]);
    let err = one_line_error(&out, 2);
    assert!(err.contains("--empty-ns"), "{err}");
    assert_eq!(lab.status(&id).as_deref(), Some("running"));
}

#[test]
fn restore_from_a_directory_without_images_is_not_found() {
    let lab = Lab::new();
    let id = unique("noimages");
    let b = lab.bundle(&id, COUNTER);
    let empty = lab.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = lab.berth(&[
        "restore",
        "--image-path",
        empty.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    let err = one_line_error(&out, 3);
    assert!(err.contains("inventory.img"), "{err}");
    assert!(!lab.state_root().join(&id).exists());
}

/// With the host's own criu: where it cannot work on this kernel, checkpoint says so in one
/// line (exit 6) and changes nothing; where it works, the dump succeeds.
#[test]
fn checkpoint_with_this_hosts_criu_works_or_says_why_not() {
    let lab = Lab::new();
    let (id, b) = running_counter(&lab, "hostcriu");
    let images = lab.path().join("images");
    let out = lab.berth(&["checkpoint", "--image-path", images.to_str().unwrap(), &id]);
    if criu_works() {
        assert!(out.status.success(), "checkpoint: {}", stderr(&out));
        assert!(images.join("inventory.img").is_file());
        assert_eq!(lab.status(&id), None, "checkpointed container is gone");
    } else {
        let err = one_line_error(&out, 6);
        assert!(err.contains("criu cannot work on this host"), "{err}");
        assert!(!images.exists(), "nothing half-written");
        assert_eq!(lab.status(&id).as_deref(), Some("running"));
        let before = count(&b);
        wait_up_to("the counter to go on", 10, || count(&b) > before);
    }
}

/// Restore with the host's own criu from images criu cannot use: where criu cannot work on
/// this kernel, exit 6 saying so; where it works, criu's own error (exit 1). Either way the
/// state directory, the cgroup and the bind mount of the rootfs made for criu are gone.
#[test]
fn a_failed_restore_leaves_no_state_cgroup_or_mount() {
    let lab = Lab::new();
    let id = unique("failrestore");
    let b = lab.bundle(&id, COUNTER);
    let images = lab.path().join("images");
    std::fs::create_dir(&images).unwrap();
    std::fs::write(images.join("inventory.img"), b"not an image").unwrap();
    let out = lab.berth(&[
        "restore",
        "-d",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        &id,
    ]);
    if criu_works() {
        let err = one_line_error(&out, 1);
        assert!(err.contains("criu restore failed"), "{err}");
    } else {
        let err = one_line_error(&out, 6);
        assert!(err.contains("criu cannot work on this host"), "{err}");
    }
    assert!(!lab.state_root().join(&id).exists(), "no state left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&id), "no criu-root mount left: {mounts}");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hierarchy.path().join("berth").join(&id);
        assert!(!dir.exists(), "cgroup {} left", dir.display());
    }
    assert!(!Path::new("/sys/fs/cgroup/berth").join(&id).exists());
}

// ---- real checkpoints and restores: here, or in a guest kernel where criu works ----

#[test]
fn checkpoint_and_restore_where_criu_works() {
    if criu_works() {
        // Each criu run takes seconds under emulation: the cases share their steps.
        let berth = cycle("berth-run");
        restore_in_the_foreground_passes_the_status_through();
        let runc = cycle("runc");
        // The differential: the same observations under both runtimes.
        assert_eq!(berth, runc, "berth-run and runc differ");
        return;
    }
    assert!(
        std::env::var_os(IN_GUEST).is_none(),
        "criu does not work in the guest kernel either"
    );
    // Boot the lane's guest (Debian's 6.1 kernel) and run this very test there.
    pass_in_guest(
        &["--timeout", "420"],
        IN_GUEST,
        "run_checkpoint::checkpoint_and_restore_where_criu_works",
        "checkpoint",
    );
}

/// What one runtime showed in a checkpoint/restore cycle (compared between runtimes).
#[derive(Debug, PartialEq)]
struct Seen {
    running_after_leave_running: bool,
    images_written: bool,
    running_after_pre_dump: bool,
    state_after_checkpoint: bool,
    counting_after_checkpoint: bool,
    continued_from_the_checkpoint: bool,
    output_on_the_restorers_pipe: bool,
    status_after_restore: String,
    status_after_kill: String,
    deleted: bool,
}

/// A counter with stdio on pipes (what engines give a runtime): checkpoint with
/// --leave-running (it keeps counting), a --pre-dump (it keeps running), a checkpoint with
/// --parent-path against the pre-dump (it is gone and counts no more),
/// restore detached with new pipes: it goes on from the value it had (its state survived, a
/// restart would count from 1) and writes into the restorer's pipe; then kill and delete,
/// as for a created-then-started container.
fn cycle(runtime: &str) -> Seen {
    let lab = Lab::new();
    let script =
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; echo tick $i; sleep 0.1; done";
    let id = unique(&format!("cycle-{}", runtime.replace('-', "")));
    let b = lab.bundle(&id, script);
    let bundle = b.to_str().unwrap().to_string();
    let images = lab.path().join("images");
    let images = images.to_str().unwrap().to_string();
    let state_root = if runtime == "runc" {
        lab.track(Rt::Runc, &id);
        lab.runc_root()
    } else {
        lab.track(Rt::Berth, &id);
        lab.state_root()
    };
    let cmd = |args: &[&str]| -> Command {
        let bin = if runtime == "runc" {
            PathBuf::from("runc")
        } else {
            berth_testkit::bin_path("berth-run")
        };
        let mut c = Command::new(bin);
        c.arg("--root").arg(&state_root).args(args);
        c
    };
    let output = |args: &[&str]| -> Output { cmd(args).stdin(Stdio::null()).output().unwrap() };
    let status_of = |id: &str| -> String {
        let out = output(&["state", id]);
        if !out.status.success() {
            return "none".into();
        }
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_string()
    };

    let mut child: Child = cmd(&["run", "-d", "--bundle", &bundle, &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(child.wait().unwrap().success(), "{runtime} run -d failed");
    wait_up_to("the counter to reach 3", 30, || count(&b) >= 3);

    let out = output(&[
        "checkpoint",
        "--leave-running",
        "--image-path",
        &images,
        &id,
    ]);
    assert!(
        out.status.success(),
        "{runtime} checkpoint --leave-running: {}",
        stderr(&out)
    );
    let running_after_leave_running = status_of(&id) == "running";
    let images_written = Path::new(&images).join("inventory.img").is_file();
    let after = count(&b);
    wait_up_to("the counter to go on", 30, || count(&b) > after);

    // Iterative: a memory pre-dump (it keeps running), then the dump against it.
    let pre = lab.path().join("pre");
    let out = output(&[
        "checkpoint",
        "--pre-dump",
        "--image-path",
        pre.to_str().unwrap(),
        &id,
    ]);
    assert!(
        out.status.success(),
        "{runtime} checkpoint --pre-dump: {}",
        stderr(&out)
    );
    let running_after_pre_dump = status_of(&id) == "running";
    let out = output(&[
        "checkpoint",
        "--parent-path",
        "../pre",
        "--image-path",
        &images,
        &id,
    ]);
    assert!(
        out.status.success(),
        "{runtime} checkpoint --parent-path: {}",
        stderr(&out)
    );
    let state_after_checkpoint = output(&["state", &id]).status.success();
    let frozen = count(&b);
    std::thread::sleep(Duration::from_millis(500));
    let counting_after_checkpoint = count(&b) != frozen;
    drop(child);

    let mut restored = cmd(&[
        "restore",
        "-d",
        "--image-path",
        &images,
        "--bundle",
        &bundle,
        &id,
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut out_pipe = restored.stdout.take().unwrap();
    let mut err_pipe = restored.stderr.take().unwrap();
    if !restored.wait().unwrap().success() {
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut err_pipe, &mut err);
        panic!("{runtime} restore -d failed: {err}");
    }
    let first = count(&b);
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut out_pipe, &mut buf).unwrap();
    let output_on_the_restorers_pipe = String::from_utf8_lossy(&buf[..n]).starts_with("tick ");
    let continued_from_the_checkpoint = first >= frozen && frozen >= 3;
    wait_up_to("the restored counter to go on", 30, || {
        count(&b) >= frozen + 3
    });
    let status_after_restore = status_of(&id);

    let out = output(&["kill", &id, "KILL"]);
    assert!(out.status.success(), "{runtime} kill: {}", stderr(&out));
    wait_up_to("the restored container to stop", 10, || {
        status_of(&id) == "stopped"
    });
    let status_after_kill = status_of(&id);
    let deleted = output(&["delete", &id]).status.success() && status_of(&id) == "none";
    Seen {
        running_after_leave_running,
        images_written,
        running_after_pre_dump,
        state_after_checkpoint,
        counting_after_checkpoint,
        continued_from_the_checkpoint,
        output_on_the_restorers_pipe,
        status_after_restore,
        status_after_kill,
        deleted,
    }
}

/// Restore in the foreground waits for the container and exits with its status; stdio in
/// files outside the container (criu's external files) are handed to the restorer's.
fn restore_in_the_foreground_passes_the_status_through() {
    let lab = Lab::new();
    let id = unique("fg");
    let b = lab.bundle(
        &id,
        "i=0; while [ $i -lt 40 ]; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done; echo done; exit 7",
    );
    let out = lab.berth(&["run", "-d", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "run: {}", stderr(&out));
    wait_up_to("the counter to reach 3", 30, || count(&b) >= 3);
    let images = lab.path().join("images");
    let out = lab.berth(&["checkpoint", "--image-path", images.to_str().unwrap(), &id]);
    assert!(out.status.success(), "checkpoint: {}", stderr(&out));
    assert_eq!(lab.status(&id), None, "state removed after checkpoint");
    assert!(
        !Path::new("/sys/fs/cgroup/berth").join(&id).exists(),
        "cgroup removed"
    );
    let frozen = count(&b);
    assert!(frozen < 40, "checkpointed before the end ({frozen})");
    let pid_file = lab.path().join("restored.pid");
    let out = lab.berth(&[
        "restore",
        "--image-path",
        images.to_str().unwrap(),
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "done\n",
        "its stdout is ours"
    );
    assert!(pid_file.is_file());
    assert_eq!(count(&b), 40, "it finished counting");
    assert_eq!(
        lab.status(&id),
        None,
        "deleted after the foreground restore"
    );
    assert!(!Path::new("/sys/fs/cgroup/berth").join(&id).exists());
}
