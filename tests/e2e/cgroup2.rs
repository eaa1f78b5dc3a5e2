//! The cgroup v2 pieces of berth-run that this (hybrid) host can test: the eBPF device
//! program on the v2 hierarchy (the kernel runs it on every device access, beside the v1
//! devices controller), its replacement for `update`, and the container's init born in its
//! cgroup with clone3(CLONE_INTO_CGROUP). The pure v2 host runs the same through
//! `scripts/test-cgroup2` (scripts/cgroup2/checks).
//!
//! Each test makes its own cgroup at `/berth/<unique>` of the v2 hierarchy (never under the
//! test's own cgroup) and its own temp dir, and removes them and its processes on drop.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use berth_cgroup::{attached_programs, Cgroup, DeviceRule, Layout, DEVICE_PROGRAM_NAME};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "e2e-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

fn need_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")),
        "cgroup v2 end-to-end tests need root"
    );
}

/// The v2 hierarchy's mount point: `/sys/fs/cgroup/unified` here, `/sys/fs/cgroup` on a pure
/// v2 host. A host without one cannot run these tests, which then fail.
fn v2_mount() -> PathBuf {
    Layout::detect()
        .unwrap()
        .v2
        .expect("this host mounts no cgroup v2 hierarchy: the device program cannot be tested")
}

/// A v2-only cgroup at /berth/<unique>, removed (after its processes) on drop.
struct TestCgroup {
    cgroup: Cgroup,
    dir: PathBuf,
    children: Vec<Child>,
}

impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        need_root();
        let path = format!("/berth/{}", unique(tag));
        let dir = v2_mount().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&dir).unwrap();
        TestCgroup {
            cgroup: Cgroup {
                path,
                v1: Default::default(),
                v2: Some(dir.clone()),
            },
            dir,
            children: Vec::new(),
        }
    }

    /// Runs `script` (sh) in this cgroup: the shell waits for a line on stdin until it has
    /// been moved in, then runs; returns its stdout.
    fn run(&mut self, script: &str) -> String {
        let mut child = Command::new("/bin/sh")
            .args(["-c", &format!("read go; {script}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::fs::write(self.dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let mut out = String::new();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            out.push_str(&line.unwrap());
            out.push('\n');
        }
        assert!(child.wait().unwrap().success(), "the script failed: {out}");
        self.children.push(child);
        out
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for _ in 0..200 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.kind() == std::io::ErrorKind::ResourceBusy => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                _ => break,
            }
        }
    }
}

fn rule(allow: bool, kind: &str, major: i64, minor: i64, access: &str) -> DeviceRule {
    DeviceRule {
        allow,
        kind: Some(kind.into()),
        major: (major >= 0).then_some(major),
        minor: (minor >= 0).then_some(minor),
        access: Some(access.into()),
    }
}

fn deny_all() -> DeviceRule {
    DeviceRule {
        allow: false,
        access: Some("rwm".into()),
        ..Default::default()
    }
}

/// Device nodes in a temp dir: a copy of /dev/null (allowed by default), of /dev/kmsg (c 1:11,
/// which a root shell may read and write outside any restriction) and a spot for a block node.
fn nodes() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    let kmsg = dir.path().join("kmsg");
    for (path, minor) in [(&null, "3"), (&kmsg, "11")] {
        let st = Command::new("mknod")
            .arg(path)
            .args(["c", "1", minor])
            .status()
            .unwrap();
        assert!(st.success(), "mknod {}", path.display());
    }
    (dir, null, kmsg)
}

/// A shell script printing NAME=ok or NAME=denied for opening each path for reading (r) or
/// writing (w), and for mknod of a block device (m).
fn probe_script(null: &Path, kmsg: &Path, blk: &Path) -> String {
    let check = |name: &str, cmd: String| {
        format!("if {cmd} 2>/dev/null; then echo {name}=ok; else echo {name}=denied; fi; ")
    };
    let mut s = String::new();
    s += &check("null-r", format!("true <{}", null.display()));
    s += &check("null-w", format!("true >{}", null.display()));
    s += &check("kmsg-r", format!("true <{}", kmsg.display()));
    s += &check("kmsg-w", format!("true >>{}", kmsg.display()));
    s += &check("blk-m", format!("mknod {} b 7 0", blk.display()));
    s += &check("blk-r", format!("true <{}", blk.display()));
    s
}

fn seen(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {out:?}"))
        .to_string()
}

#[test]
fn device_program_enforces_the_allow_list_on_the_v2_hierarchy() {
    let mut cg = TestCgroup::new("devbpf");
    let (tmp, null, kmsg) = nodes();
    // runc's default: deny everything; then read (only) of c 1:11.
    cg.cgroup
        .set_device_rules(&[deny_all(), rule(true, "c", 1, 11, "r")])
        .unwrap();
    let out = cg.run(&probe_script(&null, &kmsg, &tmp.path().join("blk1")));
    assert_eq!(seen(&out, "null-r"), "ok", "{out}");
    assert_eq!(seen(&out, "null-w"), "ok", "{out}");
    assert_eq!(seen(&out, "kmsg-r"), "ok", "{out}");
    assert_eq!(
        seen(&out, "kmsg-w"),
        "denied",
        "write was not allowed: {out}"
    );
    assert_eq!(
        seen(&out, "blk-m"),
        "ok",
        "mknod of any device is a default: {out}"
    );
    assert_eq!(seen(&out, "blk-r"), "denied", "{out}");

    // Outside the cgroup the same opens work: the program made the difference.
    let outside = Command::new("/bin/sh")
        .args(["-c", &format!("true >>{}", kmsg.display())])
        .status()
        .unwrap();
    assert!(outside.success());
}

#[test]
fn a_new_device_program_replaces_berths_old_one_and_keeps_others() {
    let mut cg = TestCgroup::new("devbpf-update");
    let (tmp, null, kmsg) = nodes();

    // Someone else's program (allows everything) is attached first and must stay.
    let allow_all = [
        berth_sys::BpfInsn {
            code: 0xb4,
            regs: 0,
            off: 0,
            imm: 1,
        },
        berth_sys::BpfInsn {
            code: 0x95,
            regs: 0,
            off: 0,
            imm: 0,
        },
    ];
    let other = berth_sys::bpf_prog_load(
        berth_sys::BPF_PROG_TYPE_CGROUP_DEVICE,
        berth_sys::BPF_CGROUP_DEVICE,
        &allow_all,
        c"GPL",
        "e2e_other",
        None,
    )
    .unwrap();
    let dirfd = std::fs::File::open(&cg.dir).unwrap();
    berth_sys::bpf_prog_attach(
        dirfd.as_fd(),
        other.as_fd(),
        berth_sys::BPF_CGROUP_DEVICE,
        berth_sys::BPF_F_ALLOW_MULTI,
        None,
    )
    .unwrap();

    cg.cgroup
        .set_device_rules(&[deny_all(), rule(true, "c", 1, 11, "rw")])
        .unwrap();
    let out = cg.run(&probe_script(&null, &kmsg, &tmp.path().join("blk1")));
    assert_eq!(seen(&out, "kmsg-w"), "ok", "{out}");

    // update: the new rules take over, and only one berth program is left
    cg.cgroup.set_device_rules(&[deny_all()]).unwrap();
    let out = cg.run(&probe_script(&null, &kmsg, &tmp.path().join("blk2")));
    assert_eq!(seen(&out, "kmsg-r"), "denied", "{out}");
    assert_eq!(seen(&out, "kmsg-w"), "denied", "{out}");
    assert_eq!(seen(&out, "null-w"), "ok", "{out}");

    let names: Vec<String> = attached_programs(&cg.dir)
        .unwrap()
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        names.iter().filter(|n| *n == DEVICE_PROGRAM_NAME).count(),
        1,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "e2e_other"), "{names:?}");
}

#[test]
fn a_rule_that_would_punch_a_hole_in_a_wildcard_is_refused_in_one_line() {
    let cg = TestCgroup::new("devbpf-hole");
    let err = cg
        .cgroup
        .set_device_rules(&[
            deny_all(),
            rule(true, "c", 136, -1, "rwm"),
            rule(false, "c", 136, 2, "rwm"),
        ])
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "cgroup devices rule c 136:2 rwm: cannot deny part of the wider rule c 136:* rwm, \
         which the kernel would keep"
    );
    assert!(attached_programs(&cg.dir).unwrap().is_empty());
}

/// A busybox bundle whose init sleeps, placed at cgroupsPath /berth/<id>.
fn sleeper_bundle(dir: &Path, id: &str) -> PathBuf {
    let b = dir.join(format!("bundle-{id}"));
    let bin = b.join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/setup)");
    std::os::unix::fs::symlink("busybox", bin.join("sleep")).unwrap();
    for d in ["proc", "dev", "tmp"] {
        std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {"terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "1000"],
                    "env": ["PATH=/bin"], "cwd": "/"},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "cgroupsPath": format!("/berth/{id}"),
            "resources": {"pids": {"limit": 16}},
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}]
        }
    });
    std::fs::write(b.join("config.json"), config.to_string()).unwrap();
    b
}

/// Deletes the container and its cgroups on drop.
struct Container {
    root: PathBuf,
    id: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new(berth_testkit::bin_path("berth-run"))
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .output();
        for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let _ = std::fs::remove_dir(entry.path().join("berth").join(&self.id));
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup/berth").join(&self.id));
    }
}

#[test]
fn the_init_is_born_in_its_cgroup_with_clone3() {
    need_root();
    let _ = v2_mount();
    let tmp = tempfile::tempdir().unwrap();
    let id = unique("clone3");
    let bundle = sleeper_bundle(tmp.path(), &id);
    let root = tmp.path().join("state");
    let guard = Container {
        root: root.clone(),
        id: id.clone(),
    };
    // Only berth-run's own process is traced (following the init would hold create up).
    let trace = tmp.path().join("trace");
    // stderr to a file, not a pipe: the created init keeps its stdio open.
    let err_path = tmp.path().join("create.err");
    let status = Command::new("strace")
        .args(["-qq", "-e", "trace=clone,clone3", "-o"])
        .arg(&trace)
        .arg(berth_testkit::bin_path("berth-run"))
        .arg("--root")
        .arg(&root)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .expect("strace is installed (scripts/setup)");
    assert!(
        status.success(),
        "create: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let clone = trace
        .lines()
        .find(|l| l.starts_with("clone3("))
        .unwrap_or_else(|| panic!("no clone3 in {trace}"));
    assert!(clone.contains("CLONE_INTO_CGROUP"), "{clone}");
    assert!(clone.contains("CLONE_NEWPID"), "{clone}");

    let state = Command::new(berth_testkit::bin_path("berth-run"))
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/berth/{id}");
    // the v2 entry (born there) and, on this hybrid host, every v1 controller (written)
    for line in cgroups.lines() {
        if line.starts_with("0::") || !line.contains("name=") {
            assert!(line.ends_with(&want), "{line} in {cgroups}");
        }
    }
    drop(guard);
    assert!(!v2_mount().join("berth").join(&id).exists());
}

/// Runs a program with clone3 answered by ENOSYS (a seccomp filter, as some container engines'
/// default profiles do), through python3's ctypes: no unsafe code in the tests.
const NO_CLONE3: &str = r#"
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
insns = [(0x20, 0, 0, 0), (0x15, 0, 1, 435), (0x06, 0, 0, 0x00050000 | 38), (0x06, 0, 0, 0x7FFF0000)]
filt = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in insns))
prog = ctypes.create_string_buffer(struct.pack("HxxxxxxQ", len(insns), ctypes.addressof(filt)))
ul = ctypes.c_ulong
assert libc.prctl(38, ul(1), ul(0), ul(0), ul(0)) == 0
assert libc.prctl(22, ul(2), ul(ctypes.addressof(prog)), ul(0), ul(0)) == 0
os.execv(sys.argv[1], sys.argv[1:])
"#;

#[test]
fn the_init_still_reaches_its_cgroup_when_clone3_is_refused() {
    need_root();
    let _ = v2_mount();
    let tmp = tempfile::tempdir().unwrap();
    let id = unique("noclone3");
    let bundle = sleeper_bundle(tmp.path(), &id);
    let root = tmp.path().join("state");
    let guard = Container {
        root: root.clone(),
        id: id.clone(),
    };
    let log = tmp.path().join("debug.log");
    let err_path = tmp.path().join("create.err");
    let status = Command::new("python3")
        .args(["-c", NO_CLONE3])
        .arg(berth_testkit::bin_path("berth-run"))
        .arg("--root")
        .arg(&root)
        .arg("--debug")
        .arg("--log")
        .arg(&log)
        .args(["create", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .expect("python3 is installed");
    assert!(
        status.success(),
        "create: {}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("clone3 with CLONE_INTO_CGROUP refused"),
        "the fallback was not taken: {log}"
    );
    let state = Command::new(berth_testkit::bin_path("berth-run"))
        .arg("--root")
        .arg(&root)
        .args(["state", &id])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state.stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let want = format!("/berth/{id}");
    assert!(
        cgroups.lines().any(|l| l == format!("0::{want}")),
        "{cgroups}"
    );
    for line in cgroups.lines().filter(|l| !l.contains("name=")) {
        assert!(line.ends_with(&want), "{line} in {cgroups}");
    }
    drop(guard);
    assert!(!v2_mount().join("berth").join(&id).exists());
}
