//! containerd 1.6 with its runc v2 shim running berth-run (and runc as the oracle) as the
//! runc binary: `ctr` pulls from the local registry over plain HTTP, runs (also with a
//! tty), execs, lists
//! processes, pauses, resumes, kills and deletes; a container keeps running across a containerd restart; a failing create shows
//! berth-run's own message in ctr's output (read back from `--log-format json`).
//!
//! containerd 1.6 takes the shim's `BinaryName` from the client's runtime options: the CRI
//! plugin's `runtimes.runc.options` apply to CRI clients only, and `ctr` passes
//! `--runc-binary` (docs/engines.md). The shim's socket is `/run/containerd/s/<sha256>`
//! whatever the configuration says (a constant in 1.6); the shim removes it when its
//! container is deleted, and the drop guard removes it if the shim could not.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::registry::Registry;
use sha2::{Digest, Sha256};

use super::{
    cgroup_dirs, dead, kill_and_wait, mounts_under, need_root, ok, output, pids_mentioning,
    remove_cgroup_tree, stderr, stdout, unique, unmount_under, wait_until, Rt,
};

const NAMESPACE: &str = "default";

/// A private containerd: root, state, sockets and config in a temporary directory, only the
/// plugins ctr needs, and a registry holding busybox.
struct Containerd {
    rt: Rt,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The cgroup parent of every container, `/berth/<unique>`.
    cgroup: String,
    /// `127.0.0.1:PORT/busybox:1.36`.
    image: String,
    /// Containers created, for the cleanup of their shims.
    ids: RefCell<Vec<String>>,
    _registry: Registry,
}

impl Containerd {
    fn new(rt: Rt) -> Containerd {
        need_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-eng-ctrd-")
            .tempdir()
            .unwrap();
        let registry = Registry::start();
        registry.push_fixture("busybox:gzip", "busybox:1.36");
        let d = dir.path();
        // The tasks service needs the v1 runtime plugin loaded; its runc root is ours too.
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.internal.v1.opt",
  "io.containerd.internal.v1.restart",
  "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.native",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.runtime.v1.linux"]
  runtime_root = "{v1root}"
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            v1root = d.join("v1-runtime").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            rt,
            cgroup: format!("/berth/{}", unique(&format!("ctrd-{}", rt.tag()))),
            image: format!("{}/busybox:1.36", registry.addr()),
            dir,
            child: None,
            ids: RefCell::new(Vec::new()),
            _registry: registry,
        };
        c.start();
        ok(
            "ctr images pull",
            c.ctr(&["images", "pull", "--plain-http", &c.image]),
        );
        c
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn sock(&self) -> PathBuf {
        self.dir().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("containerd.log")).unwrap_or_default()
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("running containerd (scripts/setup installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("containerd exited with {status}: {}", self.log());
            }
            if self.sock().exists() && self.ctr(&["version"]).status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as a service manager stops it; its shims and containers stay.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as i32;
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn restart(&mut self) {
        self.stop();
        self.start();
    }

    fn ctr(&self, args: &[&str]) -> Output {
        output(
            self.dir(),
            Command::new("ctr")
                .arg("--address")
                .arg(self.sock())
                .arg("--namespace")
                .arg(NAMESPACE)
                .args(args),
        )
    }

    /// `ctr run` with the runtime binary, its state root and a cgroup under ours, then
    /// `opts`, the image, the id and the command.
    fn run(&self, opts: &[&str], id: &str, cmd: &[&str]) -> Output {
        self.ids.borrow_mut().push(id.to_string());
        let cgroup = format!("{}/{id}", self.cgroup);
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.sock())
            .arg("--namespace")
            .arg(NAMESPACE)
            .arg("run")
            .arg("--runc-binary")
            .arg(self.rt.path())
            .arg("--runc-root")
            .arg(self.runtime_root())
            .args(["--cgroup", &cgroup])
            .args(opts)
            .arg(&self.image)
            .arg(id)
            .args(cmd);
        output(self.dir(), &mut c)
    }

    fn runtime_root(&self) -> PathBuf {
        self.dir().join("runtime")
    }

    /// `(pid, status)` of a task from `ctr task ls`.
    fn task(&self, id: &str) -> Option<(i32, String)> {
        let out = ok("ctr task ls", self.ctr(&["task", "ls"]));
        out.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == id).then(|| (f[1].parse().unwrap(), f[2].to_string()))
        })
    }

    /// The state the runtime itself keeps, when it knows it: `<runtime> --root R state ID`
    /// where R is the `--runc-root` given to ctr plus the namespace, as the shim passes it.
    fn runtime_status(&self, id: &str) -> Option<String> {
        let out = output(
            self.dir(),
            Command::new(self.rt.path())
                .arg("--root")
                .arg(self.runtime_root().join(NAMESPACE))
                .args(["state", id]),
        );
        out.status.success().then(|| {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            v["status"].as_str().unwrap_or_default().to_string()
        })
    }

    /// The shim's socket for container `id`: containerd 1.6's
    /// `/run/containerd/s/<hex sha256(<grpc address>/<namespace>/<id>)>`.
    fn shim_socket(&self, id: &str) -> PathBuf {
        let key = format!("{}/{NAMESPACE}/{id}", self.sock().display());
        Path::new("/run/containerd/s").join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    /// Kills and deletes the task and the container: what an operator would do.
    fn remove(&self, id: &str) {
        let _ = self.ctr(&["task", "kill", "--signal", "SIGKILL", id]);
        let _ = self.ctr(&["task", "delete", "--force", id]);
        let _ = self.ctr(&["container", "delete", id]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            for id in self.ids.borrow().iter() {
                self.remove(id);
            }
        }
        self.stop();
        // Shims (`-address <our socket>`) and whatever else still names our directory.
        let dir = self.dir().to_string_lossy().into_owned();
        kill_and_wait(&pids_mentioning(&dir));
        remove_cgroup_tree(&self.cgroup);
        for id in self.ids.borrow().iter() {
            let _ = std::fs::remove_file(self.shim_socket(id));
        }
        unmount_under(self.dir());
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

fn ctr_run(rt: Rt) {
    let c = Containerd::new(rt);
    let id = unique("run");
    let out = c.run(
        &["--rm"],
        &id,
        &[
            "sh",
            "-c",
            "echo hi; grep -m1 pids /proc/self/cgroup; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let so = stdout(&out);
    assert!(so.starts_with("hi\n"), "{so}");
    assert!(so.contains(&format!("{}/{id}", c.cgroup)), "cgroup: {so}");
    assert!(c.task(&id).is_none(), "task left after --rm");
    assert!(
        c.runtime_status(&id).is_none(),
        "runtime state left after --rm"
    );
    assert!(!c.shim_socket(&id).exists(), "shim socket left after --rm");
}

/// `ctr run -t` needs a terminal on its own stdin: util-linux `script` gives it one. The
/// shim passes the runtime a `--console-socket` and copies the pty master it receives.
fn ctr_run_tty(rt: Rt) {
    let c = Containerd::new(rt);
    let id = unique("tty");
    c.ids.borrow_mut().push(id.clone());
    let line = format!(
        "ctr --address {sock} --namespace {NAMESPACE} run --rm -t --runc-binary {bin} \
         --runc-root {root} --cgroup {cg}/{id} {image} {id} \
         sh -c 'tty; test -t 0 && test -t 1 && echo both-ttys; exit 3'",
        sock = c.sock().display(),
        bin = c.rt.path().display(),
        root = c.runtime_root().display(),
        cg = c.cgroup,
        image = c.image,
    );
    let out = output(
        c.dir(),
        Command::new("script").args(["--quiet", "--return", "--command", &line, "/dev/null"]),
    );
    let so = stdout(&out).replace('\r', "");
    assert_eq!(out.status.code(), Some(3), "{so}{}", stderr(&out));
    assert!(so.contains("/dev/pts/0\n"), "{so}");
    assert!(so.contains("both-ttys\n"), "{so}");
    assert!(c.task(&id).is_none(), "task left after --rm");
}

fn ctr_run_exec_kill_delete(rt: Rt) {
    let c = Containerd::new(rt);
    let id = unique("life");
    ok("ctr run -d", c.run(&["-d"], &id, &["sleep", "1000"]));
    let (pid, status) = c.task(&id).expect("the task is listed");
    assert_eq!(status, "RUNNING");
    assert_eq!(c.runtime_status(&id).as_deref(), Some("running"));
    let cg = cgroup_dirs(&format!("{}/{id}", c.cgroup));
    assert!(!cg.is_empty(), "no cgroup {}/{id}", c.cgroup);
    let procs = std::fs::read_to_string(cg[0].join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l == pid.to_string()),
        "{pid} not in {procs}"
    );

    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo from-exec; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(stdout(&out), "from-exec\nsleep 1000 \n");

    // `ctr task ps` is the runtime's `ps --format json`.
    let ps = ok("ctr task ps", c.ctr(&["task", "ps", &id]));
    assert!(
        ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
        "{ps}"
    );
    ok("ctr task pause", c.ctr(&["task", "pause", &id]));
    assert_eq!(c.task(&id), Some((pid, "PAUSED".to_string())));
    assert_eq!(c.runtime_status(&id).as_deref(), Some("paused"));
    ok("ctr task resume", c.ctr(&["task", "resume", &id]));
    assert_eq!(c.task(&id), Some((pid, "RUNNING".to_string())));

    // SIGTERM is ignored by a pid 1 without a handler; SIGKILL is not.
    ok(
        "ctr task kill",
        c.ctr(&["task", "kill", "--signal", "SIGKILL", &id]),
    );
    wait_until("the task stops", Duration::from_secs(10), || {
        c.task(&id).is_some_and(|(_, s)| s == "STOPPED")
    });
    assert!(dead(pid), "{pid} still alive");
    ok("ctr task delete", c.ctr(&["task", "delete", &id]));
    ok("ctr container delete", c.ctr(&["container", "delete", &id]));
    assert!(c.task(&id).is_none());
    assert!(c.runtime_status(&id).is_none(), "runtime state left");
    assert!(
        cgroup_dirs(&format!("{}/{id}", c.cgroup)).is_empty(),
        "cgroup left"
    );
    let rootfs = c.dir().join(format!(
        "state/io.containerd.runtime.v2.task/{NAMESPACE}/{id}"
    ));
    assert!(mounts_under(&rootfs).is_empty(), "rootfs still mounted");
    wait_until(
        "the shim removes its socket",
        Duration::from_secs(10),
        || !c.shim_socket(&id).exists(),
    );
}

fn ctr_restart(rt: Rt) {
    let mut c = Containerd::new(rt);
    let id = unique("restart");
    ok("ctr run -d", c.run(&["-d"], &id, &["sleep", "1000"]));
    let (pid, _) = c.task(&id).expect("the task is listed");
    let shims = pids_mentioning(&c.sock().to_string_lossy());
    assert_eq!(shims.len(), 1, "one shim: {shims:?}");

    c.restart();
    assert_eq!(c.task(&id), Some((pid, "RUNNING".to_string())));
    assert!(!dead(pid), "the container died with containerd");
    assert_eq!(
        pids_mentioning(&c.sock().to_string_lossy()),
        shims,
        "same shim"
    );
    assert_eq!(c.runtime_status(&id).as_deref(), Some("running"));
    // The reconnected shim still drives the runtime.
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "after",
        &id,
        "echo",
        "still-here",
    ]);
    assert_eq!(ok("ctr task exec after restart", out), "still-here\n");
    c.remove(&id);
    assert!(c.task(&id).is_none(), "task left");
    assert!(dead(pid), "{pid} still alive");
}

fn ctr_create_failure(rt: Rt) {
    let c = Containerd::new(rt);
    let id = unique("fail");
    let missing = c.dir().join("nope");
    let mount = format!(
        "type=bind,src={},dst=/data,options=rbind:ro",
        missing.display()
    );
    let out = c.run(&["--rm", "--mount", &mount], &id, &["true"]);
    assert!(!out.status.success(), "ran with a missing bind source");
    let err = stderr(&out);
    assert!(err.contains("OCI runtime create failed"), "{err}");
    match rt {
        // berth-run's own line, read back by the shim from `--log-format json`.
        Rt::Berth => assert!(
            err.contains(&format!(
                "mount /data: source {}: no such file or directory",
                missing.display()
            )),
            "{err}"
        ),
        Rt::Runc => assert!(err.contains(&missing.display().to_string()), "{err}"),
    }
    assert!(c.runtime_status(&id).is_none(), "runtime state left");
    assert!(
        cgroup_dirs(&format!("{}/{id}", c.cgroup)).is_empty(),
        "cgroup left"
    );
}

#[test]
fn containerd_pulls_and_runs_with_berth_run() {
    ctr_run(Rt::Berth);
}

#[test]
fn containerd_pulls_and_runs_with_runc() {
    ctr_run(Rt::Runc);
}

#[test]
fn containerd_runs_with_a_tty_under_berth_run() {
    ctr_run_tty(Rt::Berth);
}

#[test]
fn containerd_runs_with_a_tty_under_runc() {
    ctr_run_tty(Rt::Runc);
}

#[test]
fn containerd_runs_execs_kills_deletes_with_berth_run() {
    ctr_run_exec_kill_delete(Rt::Berth);
}

#[test]
fn containerd_runs_execs_kills_deletes_with_runc() {
    ctr_run_exec_kill_delete(Rt::Runc);
}

#[test]
fn containerd_restart_keeps_a_berth_run_container_running() {
    ctr_restart(Rt::Berth);
}

#[test]
fn containerd_restart_keeps_a_runc_container_running() {
    ctr_restart(Rt::Runc);
}

#[test]
fn containerd_shows_berth_runs_create_error() {
    ctr_create_failure(Rt::Berth);
}

#[test]
fn containerd_shows_runcs_create_error() {
    ctr_create_failure(Rt::Runc);
}
