//! podman 4.3 with `--runtime <berth-run>` (and runc as the oracle): run (output, exit
//! status, stdin, cgroup parent, memory and pids limits), run with a tty, exec (plain, tty,
//! detached), logs, stop, kill, pause/unpause, rm, and a create that fails.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use berth_testkit::registry::Registry;
use serde_json::Value;

use super::{
    kill_and_wait, need_root, ok, output, pids_mentioning, remove_cgroup_tree, stderr, stdout,
    unique, unmount_under, wait_until, Rt,
};

/// A private podman: its own storage, run root, tmp dir, configuration files and cgroup
/// parent, and a registry holding busybox.
struct Podman {
    rt: Rt,
    dir: tempfile::TempDir,
    /// The cgroup parent, `/berth/<unique>`.
    cgroup: String,
    /// `127.0.0.1:PORT/busybox:1.36`, pulled already.
    image: String,
    /// The runtime is named in containers.conf (`[engine] runtime`, `[engine.runtimes]`)
    /// rather than given with `--runtime PATH`.
    by_config: bool,
    _registry: Registry,
}

impl Podman {
    fn new(rt: Rt) -> Podman {
        Podman::new_with(rt, false)
    }

    fn new_with(rt: Rt, by_config: bool) -> Podman {
        need_root();
        let dir = tempfile::Builder::new()
            .prefix("berth-eng-podman-")
            .tempdir()
            .unwrap();
        let registry = Registry::start();
        registry.push_fixture("busybox:gzip", "busybox:1.36");
        let d = dir.path();
        let mut conf = format!(
            "[containers]\nlog_driver = \"k8s-file\"\n\
             [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             events_logfile_path = \"{events}\"\n\
             runtime_supports_json = [\"crun\", \"runc\", \"berth-run\"]\n\
             [network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = \"{net}\"\n",
            events = d.join("events.log").display(),
            net = d.join("net").display(),
        );
        if by_config {
            conf = conf.replace(
                "[engine]\n",
                &format!("[engine]\nruntime = \"engine-test-{}\"\n", rt.tag()),
            );
            conf.push_str(&format!(
                "[engine.runtimes]\nengine-test-{} = [\"{}\"]\n",
                rt.tag(),
                rt.path().display()
            ));
        }
        std::fs::write(d.join("containers.conf"), conf).unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                d.join("root").display(),
                d.join("runroot").display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            format!(
                "unqualified-search-registries = []\n\n[[registry]]\nlocation = \"{}\"\ninsecure = true\n",
                registry.addr()
            ),
        )
        .unwrap();
        let p = Podman {
            rt,
            cgroup: format!("/berth/{}", unique(&format!("podman-{}", rt.tag()))),
            image: format!("{}/busybox:1.36", registry.addr()),
            dir,
            by_config,
            _registry: registry,
        };
        ok("podman pull", p.podman(&["pull", "--quiet", &p.image]));
        p
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self) -> Command {
        let d = self.dir();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("runroot"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"]);
        // The runtime keeps its state under its default root (/run/berth, /run/runc):
        // podman 4.3 does not pass `--runtime-flag root=…` to the cleanup process conmon
        // starts when a container exits, which would then delete it from the wrong root.
        // Container ids are 64 random hex digits; the drop guard deletes ours.
        if !self.by_config {
            c.arg("--runtime").arg(self.rt.path());
        }
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        output(self.dir(), self.command().args(args))
    }

    /// `podman run` with the options every test uses, then `args` (options, image, command).
    fn run(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let cidfile = self.dir().join(format!("cid-{}", unique("c")));
        let mut c = self.command();
        c.args(["run", "--network", "none", "--cgroup-parent", &self.cgroup])
            .arg("--cidfile")
            .arg(&cidfile)
            .args([
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=1024:1024",
            ])
            .args(opts)
            .arg(&self.image)
            .args(cmd);
        output(self.dir(), &mut c)
    }

    /// `podman run -d`: the container's id.
    fn run_detached(&self, name: &str, cmd: &[&str]) -> String {
        let out = ok("podman run -d", self.run(&["-d", "--name", name], cmd));
        out.trim().to_string()
    }

    fn inspect(&self, name: &str) -> Value {
        let out = ok("podman inspect", self.podman(&["inspect", name]));
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0].clone()
    }

    fn status(&self, name: &str) -> String {
        self.inspect(name)["State"]["Status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn logs(&self, name: &str) -> String {
        ok("podman logs", self.podman(&["logs", name]))
    }

    /// The container's state as the runtime itself reports it (`<runtime> state ID`).
    fn runtime_state(&self, id: &str) -> Option<Value> {
        let out = output(self.dir(), Command::new(self.rt.path()).args(["state", id]));
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Every container id this podman ran (from the cid files of `run`).
    fn container_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.dir())
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("cid-"))
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .map(|id| id.trim().to_string())
                    .filter(|id| !id.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        for id in self.container_ids() {
            let _ = output(
                self.dir(),
                Command::new(self.rt.path()).args(["delete", "--force", &id]),
            );
        }
        // Whatever is left: conmon and the exit commands mention our directory; the
        // containers' processes sit in our cgroups.
        let dir = self.dir().to_string_lossy().into_owned();
        kill_and_wait(&pids_mentioning(&dir));
        remove_cgroup_tree(&self.cgroup);
        unmount_under(self.dir());
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

fn podman_run(rt: Rt) {
    let p = Podman::new(rt);
    let out = p.run(
        &["--rm"],
        &[
            "sh",
            "-c",
            "echo out; echo err >&2; cat /proc/self/cgroup | grep -m1 pids; exit 7",
        ],
    );
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let so = stdout(&out);
    assert!(so.starts_with("out\n"), "{so}");
    assert!(
        so.contains(&format!("{}/libpod-", p.cgroup)),
        "cgroup parent: {so}"
    );
    assert!(stderr(&out).contains("err"), "{}", stderr(&out));
    // --rm: nothing left in podman, nor in the runtime's state.
    let left = ok("podman ps -a", p.podman(&["ps", "-a", "-q"]));
    assert_eq!(left.trim(), "", "containers left: {left}");
    let ids = p.container_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(
        p.runtime_state(&ids[0]).is_none(),
        "runtime state left behind"
    );
    assert!(
        super::cgroup_dirs(&format!("{}/libpod-{}", p.cgroup, ids[0])).is_empty(),
        "container cgroup left behind"
    );

    // Resources podman puts in the spec are applied (the container's own view of its
    // cgroup: v1 controllers or the v2 files).
    let out = p.run(
        &["--rm", "--memory", "64m", "--pids-limit", "77"],
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max \
             /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true",
        ],
    );
    let seen: Vec<String> = ok("podman run --memory --pids-limit", out)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(seen, ["67108864", "77"]);

    // -i: podman's stdin reaches the container through conmon and the runtime.
    let input = p.dir().join("stdin");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let mut c = p.command();
    c.args([
        "run",
        "--rm",
        "-i",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup,
    ])
    .args([
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
    ])
    .arg(&p.image)
    .args(["sh", "-c", "wc -l; echo done"]);
    let out = c
        .stdin(std::fs::File::open(&input).unwrap())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim().replace(' ', ""), "2\ndone");
}

fn podman_run_tty(rt: Rt) {
    let p = Podman::new(rt);
    let out = p.run(
        &["--rm", "-t"],
        &[
            "sh",
            "-c",
            "tty; test -t 0 && test -t 1 && echo both-ttys; echo TERM=$TERM",
        ],
    );
    let so = stdout(&out).replace('\r', "");
    assert!(out.status.success(), "{}{}", so, stderr(&out));
    assert!(so.contains("/dev/pts/0\n"), "{so}");
    assert!(so.contains("both-ttys\n"), "{so}");
    assert!(so.contains("TERM=xterm"), "{so}");
}

/// run -d, logs, pause, unpause, stop (SIGTERM, trapped), kill (SIGKILL), rm.
fn podman_lifecycle(rt: Rt) {
    let p = Podman::new(rt);
    let script = "echo started; trap 'echo got-term; exit 3' TERM; while true; do sleep 0.1; done";
    let id = p.run_detached("trap", &["sh", "-c", script]);
    wait_until("logs show started", Duration::from_secs(10), || {
        p.logs("trap").contains("started")
    });
    assert_eq!(p.status("trap"), "running");
    assert_eq!(p.runtime_state(&id).unwrap()["status"], "running");

    ok("podman pause", p.podman(&["pause", "trap"]));
    assert_eq!(p.status("trap"), "paused");
    assert_eq!(p.runtime_state(&id).unwrap()["status"], "paused");
    ok("podman unpause", p.podman(&["unpause", "trap"]));
    assert_eq!(p.status("trap"), "running");
    assert_eq!(p.runtime_state(&id).unwrap()["status"], "running");

    ok("podman stop", p.podman(&["stop", "--time", "10", "trap"]));
    assert_eq!(p.status("trap"), "exited");
    assert_eq!(p.inspect("trap")["State"]["ExitCode"], 3);
    let logs = p.logs("trap");
    assert!(logs.contains("started\ngot-term\n"), "{logs}");

    let id2 = p.run_detached("sleeper", &["sleep", "1000"]);
    ok("podman kill", p.podman(&["kill", "sleeper"]));
    let waited = ok("podman wait", p.podman(&["wait", "sleeper"]));
    assert_eq!(waited.trim(), "137", "SIGKILL status");

    ok("podman rm", p.podman(&["rm", "trap", "sleeper"]));
    let left = ok("podman ps -a", p.podman(&["ps", "-a", "-q"]));
    assert_eq!(left.trim(), "", "containers left: {left}");
    for id in [&id, &id2] {
        assert!(
            p.runtime_state(id).is_none(),
            "{id} still known to the runtime"
        );
        assert!(
            super::cgroup_dirs(&format!("{}/libpod-{id}", p.cgroup)).is_empty(),
            "cgroup of {id} left behind"
        );
    }
}

fn podman_exec(rt: Rt) {
    let p = Podman::new(rt);
    p.run_detached("box", &["sleep", "1000"]);
    let out = p.podman(&[
        "exec",
        "--env",
        "GREETING=hello",
        "--workdir",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $GREETING; pwd; cat /proc/1/cmdline | tr '\\0' ' '; echo; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n/tmp\nsleep 1000 \n");

    let out = p.podman(&[
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; test -t 1 && echo tty-out",
    ]);
    let so = stdout(&out).replace('\r', "");
    assert!(out.status.success(), "{so}{}", stderr(&out));
    assert!(so.contains("/dev/pts/") && so.contains("tty-out"), "{so}");

    ok(
        "podman exec -d",
        p.podman(&["exec", "-d", "box", "sleep", "500"]),
    );
    wait_until("the detached exec runs", Duration::from_secs(10), || {
        let top = stdout(&p.podman(&["top", "box", "args"]));
        top.contains("sleep 500")
    });
    // The exec'd process shares the container's pid namespace: it sees pid 1.
    let out = ok(
        "podman exec ps",
        p.podman(&["exec", "box", "sh", "-c", "ls /proc | grep -c '^[0-9]'"]),
    );
    let n: u32 = out.trim().parse().unwrap();
    assert!(n >= 3, "pid 1, sleep 500 and the exec itself: {n}");
    ok(
        "podman rm -f",
        p.podman(&["rm", "-f", "--time", "0", "box"]),
    );
}

/// A runtime failure reaches podman's user as the runtime's own one-line message: a hard
/// `nofile` above the current hard limit cannot be set here (no CAP_SYS_RESOURCE).
fn podman_create_failure(rt: Rt) {
    let p = Podman::new(rt);
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .expect("a finite hard nofile limit");
    let limit = format!("nofile={}:{}", hard + 1, hard + 1);
    let mut c = p.command();
    c.args([
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        &p.cgroup,
    ])
    .args(["--ulimit", &limit, "--ulimit", "nproc=1024:1024"])
    .arg(&p.image)
    .arg("true");
    let out = output(p.dir(), &mut c);
    assert!(!out.status.success(), "a raised hard limit was set");
    let err = stderr(&out);
    match rt {
        Rt::Berth => {
            assert!(err.contains("RLIMIT_NOFILE"), "{err}");
            assert!(err.contains("CAP_SYS_RESOURCE"), "{err}");
            // Read from the `--log-format json` file (runtime_supports_json lists berth-run),
            // not scraped from stderr, which carries the `berth-run: error:` prefix.
            assert!(!err.contains("berth-run: error:"), "{err}");
            // podman ran `delete --force` after the failure: no second error about it.
            assert!(!err.contains("deleting container"), "{err}");
        }
        Rt::Runc => assert!(err.contains("rlimit"), "{err}"),
    }
    let left = ok("podman ps -a", p.podman(&["ps", "-a", "-q"]));
    assert_eq!(left.trim(), "", "containers left: {left}");
}

/// The runtime named in containers.conf, as docs/engines.md configures it: podman runs it
/// for create, the container's exit and its removal (the cleanup process reads the same
/// configuration).
fn podman_runtime_from_containers_conf(rt: Rt) {
    let p = Podman::new_with(rt, true);
    let id = p.run_detached("conf", &["sleep", "1000"]);
    assert_eq!(
        p.inspect("conf")["OCIRuntime"],
        format!("engine-test-{}", rt.tag())
    );
    assert_eq!(p.runtime_state(&id).unwrap()["status"], "running");
    ok("podman stop", p.podman(&["stop", "--time", "1", "conf"]));
    assert_eq!(p.inspect("conf")["State"]["ExitCode"], 137);
    wait_until(
        "the cleanup deletes it from the runtime",
        Duration::from_secs(20),
        || p.runtime_state(&id).is_none(),
    );
    ok("podman rm", p.podman(&["rm", "conf"]));
}

#[test]
fn podman_runs_berth_run_named_in_containers_conf() {
    podman_runtime_from_containers_conf(Rt::Berth);
}

#[test]
fn podman_runs_runc_named_in_containers_conf() {
    podman_runtime_from_containers_conf(Rt::Runc);
}

#[test]
fn podman_run_output_status_stdin_and_limits_under_berth_run() {
    podman_run(Rt::Berth);
}

#[test]
fn podman_run_output_status_stdin_and_limits_under_runc() {
    podman_run(Rt::Runc);
}

#[test]
fn podman_run_with_a_tty_under_berth_run() {
    podman_run_tty(Rt::Berth);
}

#[test]
fn podman_run_with_a_tty_under_runc() {
    podman_run_tty(Rt::Runc);
}

#[test]
fn podman_logs_pause_unpause_stop_kill_rm_under_berth_run() {
    podman_lifecycle(Rt::Berth);
}

#[test]
fn podman_logs_pause_unpause_stop_kill_rm_under_runc() {
    podman_lifecycle(Rt::Runc);
}

#[test]
fn podman_exec_under_berth_run() {
    podman_exec(Rt::Berth);
}

#[test]
fn podman_exec_under_runc() {
    podman_exec(Rt::Runc);
}

#[test]
fn podman_shows_berth_runs_create_error() {
    podman_create_failure(Rt::Berth);
}

#[test]
fn podman_shows_runcs_create_error() {
    podman_create_failure(Rt::Runc);
}
