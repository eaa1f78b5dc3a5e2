//! The world of one berth-run end-to-end test, shared by the `run*` modules: a temporary
//! directory with the state roots of berth-run and runc, bundles with static busybox (and
//! the probe), commands whose stdout and stderr go to files, and a guard that on drop kills
//! the children the test started, force-deletes every container it made under either
//! runtime and removes their cgroups (`/berth/<id>` in every hierarchy), pass or fail.
//!
//! What differs between the modules (the applets, directories and config of their bundles)
//! stays in each module, built with [`Bundle`]; the config every module starts from when it
//! wants `runc spec`'s is [`runc_like_config`].

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Numbers ids and output files: unique in this process, and nextest runs one process per
/// test, so with the pid names never meet.
static SEQ: AtomicU32 = AtomicU32::new(0);

/// A name no other test uses: `e2e-<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    unique_with("e2e", tag)
}

/// A name no other test uses, with the module's own prefix: `<prefix>-<tag>-<pid>-<n>`.
pub fn unique_with(prefix: &str, tag: &str) -> String {
    format!(
        "{prefix}-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// The runtime a command goes to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rt {
    Berth,
    Runc,
}

/// A test's own world; see the module docs. Containers are remembered when a `run`,
/// `create` or `restore` goes through [`Lab::call`] (or [`Lab::track`] for the others).
pub struct Lab {
    pub dir: tempfile::TempDir,
    /// Processes the test started; killed and reaped on drop.
    pub children: Vec<Child>,
    made: Mutex<Vec<(Rt, String)>>,
}

impl Lab {
    pub fn new() -> Lab {
        assert!(
            rustix::process::geteuid().is_root(),
            "berth-run end-to-end tests need root"
        );
        Lab {
            dir: tempfile::tempdir().unwrap(),
            children: Vec::new(),
            made: Mutex::new(Vec::new()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// berth-run's `--root`.
    pub fn state_root(&self) -> PathBuf {
        self.path().join("state")
    }

    /// runc's `--root`.
    pub fn runc_root(&self) -> PathBuf {
        self.path().join("runc-state")
    }

    /// Drop force-deletes container `id` of `rt` and removes its cgroup `/berth/<id>`.
    pub fn track(&self, rt: Rt, id: &str) {
        let mut made = self.made.lock().unwrap_or_else(|e| e.into_inner());
        if !made.iter().any(|(r, i)| *r == rt && i == id) {
            made.push((rt, id.to_string()));
        }
    }

    /// The runtime's command with its `--root` in this lab.
    pub fn cmd(&self, rt: Rt) -> Command {
        let (mut c, root) = match rt {
            Rt::Berth => (
                Command::new(berth_testkit::bin_path("berth-run")),
                self.state_root(),
            ),
            Rt::Runc => (Command::new("runc"), self.runc_root()),
        };
        c.arg("--root").arg(root);
        c
    }

    /// Runs a verb, output in files; remembers the id (the last argument) of a `run`,
    /// `create` or `restore` for drop.
    pub fn call(&self, rt: Rt, args: &[&str]) -> Output {
        self.call_with(rt, &[], args)
    }

    /// [`Lab::call`] with global flags before the verb.
    pub fn call_with(&self, rt: Rt, globals: &[&str], args: &[&str]) -> Output {
        if let (Some(&("run" | "create" | "restore")), Some(id)) = (args.first(), args.last()) {
            self.track(rt, id);
        }
        self.output(self.cmd(rt).args(globals).args(args))
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        self.call(Rt::Berth, args)
    }

    pub fn berth_with(&self, globals: &[&str], args: &[&str]) -> Output {
        self.call_with(Rt::Berth, globals, args)
    }

    /// berth-run with `stdin` as its standard input.
    pub fn berth_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        output_with_stdin(self.path(), self.cmd(Rt::Berth).args(args), stdin)
    }

    pub fn runc(&self, args: &[&str]) -> Output {
        self.call(Rt::Runc, args)
    }

    /// `run` in the foreground of container `id` from `bundle`.
    pub fn berth_run(&self, id: &str, bundle: &Path) -> Output {
        self.berth(&["run", "--bundle", bundle.to_str().unwrap(), id])
    }

    pub fn runc_run(&self, id: &str, bundle: &Path) -> Output {
        self.runc(&["run", "--bundle", bundle.to_str().unwrap(), id])
    }

    /// Any command with its output in files of this lab.
    pub fn output(&self, cmd: &mut Command) -> Output {
        run_to_files(self.path(), cmd)
    }

    /// `state` of a container under `rt`, which must succeed.
    pub fn state_of(&self, rt: Rt, id: &str) -> Value {
        let out = self.call(rt, &["state", id]);
        assert!(out.status.success(), "state {id}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let made = std::mem::take(self.made.get_mut().unwrap_or_else(|e| e.into_inner()));
        for (rt, id) in &made {
            let _ = self.call(*rt, &["delete", "--force", id]);
        }
        for (_, id) in &made {
            for dir in cgroup_dirs(&format!("/berth/{id}")) {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Runs `cmd` with stdin from /dev/null and stdout and stderr in files of `dir`, not pipes:
/// a created or detached container inherits them and would hold a pipe open long after the
/// runtime exits.
pub fn run_to_files(dir: &Path, cmd: &mut Command) -> Output {
    run_with(dir, cmd, Stdio::null())
}

/// [`run_to_files`] with `stdin` as the standard input (through a file, for the same
/// reason).
pub fn output_with_stdin(dir: &Path, cmd: &mut Command, stdin: &[u8]) -> Output {
    let path = dir.join(format!("in-{}", SEQ.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, stdin).unwrap();
    run_with(dir, cmd, std::fs::File::open(&path).unwrap().into())
}

fn run_with(dir: &Path, cmd: &mut Command, stdin: Stdio) -> Output {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let (out_path, err_path) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
    let status = cmd
        .stdin(stdin)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: std::fs::read(&out_path).unwrap(),
        stderr: std::fs::read(&err_path).unwrap(),
    }
}

/// The directories of a cgroup path in every hierarchy of this host (on a pure v2 host,
/// the one).
pub fn cgroup_dirs(cg: &str) -> Vec<PathBuf> {
    let rel = cg.trim_start_matches('/');
    let mut out: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|e| e.path().join(rel))
        .collect();
    out.push(Path::new("/sys/fs/cgroup").join(rel));
    out
}

/// Asserts the exit code of a failed berth-run and that its error is one line naming it;
/// returns the line.
pub fn one_line_error(o: &Output, code: i32) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("berth-run: error: "), "{err}");
    err
}

/// Polls `f` until it holds; fails the test naming `what` after 10 seconds.
pub fn wait_until(what: &str, f: impl FnMut() -> bool) {
    wait_up_to(what, 10, f)
}

/// Polls `f` every 10 ms until it holds; fails the test naming `what` after `secs`.
pub fn wait_up_to(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs test `name` (`module::test`) of this test binary again in the QEMU guest of
/// scripts/test-cgroup2, with the lane's flags `lane` (`--timeout 420`, `--systemd`) and
/// `flag=1` in its environment, which tells the test that it runs in the guest and must not
/// boot another. Fails unless the test passed there; returns everything it printed. For the
/// tests that need a kernel or a PID 1 this host does not have: they never skip.
pub fn pass_in_guest(lane: &[&str], flag: &str, name: &str, what: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/test-cgroup2");
    let out = Command::new(&script)
        .args(lane)
        .args(["--", "env"])
        .arg(format!("{flag}=1"))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("test result: ok. 1 passed"),
        "the {what} cases failed in the guest (exit {:?}):\n{text}",
        out.status.code()
    );
    text
}

/// A bundle directory in the making: a rootfs with static busybox, the applets linked to
/// it, empty directories and optionally the probe and an /etc/passwd.
pub struct Bundle {
    path: PathBuf,
    applets: &'static [&'static str],
    dirs: &'static [&'static str],
    probe: bool,
    passwd: bool,
    sticky_tmp: bool,
}

impl Bundle {
    pub fn new(path: PathBuf) -> Bundle {
        Bundle {
            path,
            applets: &[],
            dirs: &[],
            probe: false,
            passwd: false,
            sticky_tmp: false,
        }
    }

    /// The busybox applets linked in /bin.
    pub fn applets(mut self, applets: &'static [&'static str]) -> Bundle {
        self.applets = applets;
        self
    }

    /// Empty directories made in the rootfs.
    pub fn dirs(mut self, dirs: &'static [&'static str]) -> Bundle {
        self.dirs = dirs;
        self
    }

    /// The probe as /bin/probe.
    pub fn probe(mut self) -> Bundle {
        self.probe = true;
        self
    }

    /// An /etc/passwd with root and user (1000).
    pub fn passwd(mut self) -> Bundle {
        self.passwd = true;
        self
    }

    /// /tmp with mode 1777.
    pub fn sticky_tmp(mut self) -> Bundle {
        self.sticky_tmp = true;
        self
    }

    /// Makes the rootfs; returns the bundle directory, still without a config.
    pub fn rootfs(self) -> PathBuf {
        let b = self.path;
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("busybox-static is installed (scripts/setup)");
        for c in self.applets {
            std::os::unix::fs::symlink("busybox", bin.join(c)).unwrap();
        }
        if self.probe {
            std::fs::copy(berth_probe::path(), bin.join("probe")).unwrap();
        }
        for d in self.dirs {
            std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
        }
        if self.passwd {
            std::fs::write(
                b.join("rootfs/etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
            )
            .unwrap();
        }
        if self.sticky_tmp {
            std::fs::set_permissions(
                b.join("rootfs/tmp"),
                std::os::unix::fs::PermissionsExt::from_mode(0o1777),
            )
            .unwrap();
        }
        b
    }

    /// Makes the rootfs and writes `config` as config.json; returns the bundle directory.
    pub fn write(self, config: &Value) -> PathBuf {
        let b = self.rootfs();
        write_config(&b, config);
        b
    }
}

pub fn read_config(bundle: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap()
}

pub fn write_config(bundle: &Path, config: &Value) {
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
}

/// A config like `runc spec`'s (no terminal, the cgroup filesystem mounted, runc's masked
/// and read-only paths) with `cgroups_path`.
pub fn runc_like_config(cgroups_path: &str) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
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
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A small config: `args` as root with PATH=/bin, /proc and a tmpfs /dev, new pid, mount,
/// ipc and uts namespaces, and `cgroups_path`.
pub fn minimal_config(cgroups_path: &str, args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_carry_the_prefix() {
        let (a, b) = (unique("x"), unique_with("ckpt", "x"));
        assert_ne!(a, b);
        assert!(a.starts_with("e2e-x-"), "{a}");
        assert!(b.starts_with("ckpt-x-"), "{b}");
        assert_ne!(unique("x"), unique("x"));
    }
}
