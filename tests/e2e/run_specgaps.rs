//! berth-run end to end, as root: the runtime-spec items that came last (issue #5):
//! `linux.timeOffsets` (a time namespace with offsets, seen from inside) and seccomp
//! `SCMP_ACT_NOTIFY` with `listenerPath`/`listenerMetadata` (an agent in the test receives
//! the listener fd and the container process state, answers the container's `mkdir`s, and
//! the same bundle runs under runc 1.1 as the differential); idmapped bind mounts (mount
//! `uidMappings`/`gidMappings` with `idmap`/`ridmap`, which runc 1.1.5 does not have); and
//! joining a user namespace by path while creating the other namespaces.
//!
//! Each test has its own temporary directory (state roots, bundles, the agent's socket),
//! unique container ids and cgroupsPath /berth/<id>; the `Lab` guard force-deletes its
//! containers under both runtimes and removes their cgroups on drop, pass or fail.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{json, Value};

static SEQ: AtomicU32 = AtomicU32::new(0);

fn unique(tag: &str) -> String {
    format!(
        "e2e-sg-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

struct Lab {
    dir: tempfile::TempDir,
    ids: Vec<String>,
    runc_ids: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        assert!(
            rustix::process::geteuid().is_root(),
            "berth-run end-to-end tests need root"
        );
        Lab {
            dir: tempfile::tempdir().unwrap(),
            ids: Vec::new(),
            runc_ids: Vec::new(),
        }
    }

    /// A bundle with static busybox in the rootfs and a minimal config (pid, mount, ipc,
    /// uts namespaces, /proc, a tmpfs /dev); `edit` changes the config.
    fn bundle(&mut self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let b = self.dir.path().join(format!("bundle-{id}"));
        let bin = b.join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox"))
            .expect("busybox-static is installed (scripts/setup)");
        for c in ["sh", "cat", "echo", "mkdir", "ls", "sleep"] {
            std::os::unix::fs::symlink("busybox", bin.join(c)).unwrap();
        }
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir_all(b.join("rootfs").join(d)).unwrap();
        }
        std::fs::set_permissions(
            b.join("rootfs/tmp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o1777),
        )
        .unwrap();
        self.ids.push(id.to_string());
        let mut config = json!({
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
                "cgroupsPath": format!("/berth/{id}"),
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]
            }
        });
        edit(&mut config);
        std::fs::write(
            b.join("config.json"),
            serde_json::to_vec_pretty(&config).unwrap(),
        )
        .unwrap();
        b
    }

    fn berth(&self, args: &[&str]) -> Output {
        run_to_files(
            self.dir.path(),
            Command::new(berth_testkit::bin_path("berth-run"))
                .arg("--root")
                .arg(self.dir.path().join("state"))
                .args(args),
        )
    }

    fn berth_run(&self, id: &str, bundle: &Path) -> Output {
        self.berth(&["run", "--bundle", bundle.to_str().unwrap(), id])
    }

    fn runc_run(&mut self, id: &str, bundle: &Path) -> Output {
        self.runc_ids.push(id.to_string());
        run_to_files(
            self.dir.path(),
            Command::new("runc")
                .arg("--root")
                .arg(self.dir.path().join("runc-state"))
                .args(["run", "--bundle"])
                .arg(bundle)
                .arg(id),
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.berth(&["delete", "--force", id]);
        }
        for id in &self.runc_ids {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.dir.path().join("runc-state"))
                .args(["delete", "--force", id])
                .output();
        }
        for id in self.ids.iter().chain(&self.runc_ids) {
            for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let _ = std::fs::remove_dir(entry.path().join("berth").join(id));
            }
            let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup/berth").join(id));
        }
    }
}

/// stdout and stderr in files, not pipes: nothing the container leaves behind holds them.
fn run_to_files(dir: &Path, cmd: &mut Command) -> Output {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let (out_path, err_path) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
    let status = cmd
        .stdin(Stdio::null())
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

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn host_uptime() -> f64 {
    let s = std::fs::read_to_string("/proc/uptime").unwrap();
    s.split_whitespace().next().unwrap().parse().unwrap()
}

// ---- linux.timeOffsets ----

const DAY: i64 = 86_400;

fn time_offsets_are_seen_inside(user_ns: bool) {
    let mut lab = Lab::new();
    let id = unique("time");
    let b = lab.bundle(
        &id,
        &["sh", "-c", "cat /proc/uptime /proc/self/timens_offsets"],
        |c| {
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "time"}));
            if user_ns {
                ns.push(json!({"type": "user"}));
                c["linux"]["uidMappings"] =
                    json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
                c["linux"]["gidMappings"] =
                    json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
            }
            c["linux"]["timeOffsets"] = json!({
                "monotonic": {"secs": 3 * DAY, "nanosecs": 250},
                "boottime": {"secs": 10 * DAY, "nanosecs": 0}
            });
        },
    );
    let before = host_uptime();
    let out = lab.berth_run(&id, &b);
    let after = host_uptime();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    let uptime: f64 = lines
        .next()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no uptime in {stdout:?}"));
    // /proc/uptime is CLOCK_BOOTTIME: the host's plus the boottime offset.
    let offset = (10 * DAY) as f64;
    assert!(
        uptime >= before + offset - 0.01 && uptime <= after + offset + 0.01,
        "uptime {uptime} inside, host {before}..{after}"
    );
    let offsets: Vec<Vec<String>> = lines
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(
        offsets,
        vec![
            vec!["monotonic".to_string(), (3 * DAY).to_string(), "250".into()],
            vec!["boottime".to_string(), (10 * DAY).to_string(), "0".into()],
        ],
        "{stdout}"
    );
}

#[test]
fn time_offsets_move_the_clocks_of_a_new_time_namespace() {
    time_offsets_are_seen_inside(false);
}

#[test]
fn time_offsets_work_in_a_new_user_namespace() {
    time_offsets_are_seen_inside(true);
}

#[test]
fn bad_time_offsets_are_refused_in_one_line_and_leave_nothing() {
    let mut lab = Lab::new();
    // Out of the kernel's range: refused by the kernel when berth-run writes them.
    let id = unique("time-range");
    let b = lab.bundle(&id, &["true"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "time"}));
        c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": -1_000_000_000_i64}});
    });
    let out = lab.berth_run(&id, &b);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(
        err.contains("linux.timeOffsets") && err.contains("timens_offsets"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!lab.dir.path().join("state").join(&id).exists());
    assert!(!Path::new("/sys/fs/cgroup/pids/berth").join(&id).exists());

    // Nanoseconds of a second or more, and offsets without a new time namespace: the spec.
    for (tag, edit) in [
        (
            "nanos",
            json!({"ns": [{"type": "time"}], "off": {"boottime": {"secs": 1, "nanosecs": 1_000_000_000}}}),
        ),
        ("no-ns", json!({"ns": [], "off": {"boottime": {"secs": 1}}})),
    ] {
        let id = unique(tag);
        let b = lab.bundle(&id, &["true"], |c| {
            for n in edit["ns"].as_array().unwrap() {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(n.clone());
            }
            c["linux"]["timeOffsets"] = edit["off"].clone();
        });
        let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tag}: {err}");
        assert!(err.contains("linux.timeOffsets"), "{tag}: {err}");
        assert!(!lab.dir.path().join("state").join(&id).exists());
    }
}

// ---- seccomp SCMP_ACT_NOTIFY ----

/// What the agent received and did.
struct AgentReport {
    state: Value,
    answered: Vec<String>,
}

/// A seccomp agent: accepts one connection on `path`, receives the container process state
/// and the listener fd in one message, then answers `answers.len()` notifications in order:
/// `Some(errno)` makes the syscall fail with it, `None` makes it succeed without doing it.
fn agent(path: &Path, answers: Vec<Option<i32>>) -> std::thread::JoinHandle<AgentReport> {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut cmsg = RecvAncillaryBuffer::new(&mut space);
        let got = rustix::net::recvmsg(
            &conn,
            &mut [IoSliceMut::new(&mut buf)],
            &mut cmsg,
            RecvFlags::CMSG_CLOEXEC,
        )
        .unwrap();
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in cmsg.drain() {
            if let RecvAncillaryMessage::ScmRights(r) = m {
                fds.extend(r);
            }
        }
        assert_eq!(fds.len(), 1, "one fd with the process state");
        // The rest of the JSON, if the sender's one message was split.
        let mut body = buf[..got.bytes].to_vec();
        let mut rest = Vec::new();
        if serde_json::from_slice::<Value>(&body).is_err() {
            std::io::Read::read_to_end(&mut &conn, &mut rest).unwrap();
            body.extend(rest);
        }
        let state: Value = serde_json::from_slice(&body).unwrap();
        let fd = fds[0].as_raw_fd();
        let mut answered = Vec::new();
        for answer in answers {
            // Readable (a notification) or hung up (every filtered task is gone).
            let ready = berth_sys::poll_readable(fds[0].as_fd(), 10_000).unwrap();
            assert!(ready, "no notification within 10 s");
            let req = ScmpNotifReq::receive(fd).unwrap();
            let name = req.data.syscall.get_name().unwrap_or_default();
            answered.push(name);
            let resp = match answer {
                Some(errno) => {
                    ScmpNotifResp::new_error(req.id, -errno, ScmpNotifRespFlags::empty())
                }
                None => ScmpNotifResp::new_val(req.id, 0, ScmpNotifRespFlags::empty()),
            };
            resp.respond(fd).unwrap();
        }
        AgentReport { state, answered }
    })
}

/// The agent's report once the runtime returned. A runtime that failed before it connected
/// leaves the agent in accept: an empty connection of our own ends it (and fails the test
/// with the runtime's error).
fn agent_report(
    agent: std::thread::JoinHandle<AgentReport>,
    sock: &Path,
    out: &Output,
    runtime: &str,
) -> AgentReport {
    if !out.status.success() {
        drop(UnixStream::connect(sock));
    }
    agent.join().unwrap_or_else(|_| {
        panic!(
            "{runtime}: the agent failed; the runtime said: {}",
            text(&out.stderr)
        )
    })
}

const ENOANO: i32 = 55;

/// A bundle whose `mkdir`s are notified to the agent at `sock`: the first is failed with
/// ENOANO, the second "succeeds" without the directory being made.
fn notify_bundle(lab: &mut Lab, id: &str, sock: &Path) -> PathBuf {
    lab.bundle(
        id,
        &[
            "sh",
            "-c",
            "mkdir /tmp/a; echo first=$?; mkdir /tmp/b; echo second=$?; \
             ls -d /tmp/b 2>/dev/null || echo b-absent",
        ],
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "listenerPath": sock,
                "listenerMetadata": "berth-e2e metadata",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
            });
        },
    )
}

fn check_notified_run(out: &Output, report: &AgentReport, id: &str, runtime: &str) {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{runtime}: {}", text(&out.stderr));
    assert!(
        stdout.contains("first=1") && stdout.contains("second=0") && stdout.contains("b-absent"),
        "{runtime}: {stdout}"
    );
    assert!(
        text(&out.stderr).contains("No anode"),
        "{runtime}: mkdir should report the agent's errno: {}",
        text(&out.stderr)
    );
    assert_eq!(report.answered.len(), 2, "{runtime}");
    assert!(
        report
            .answered
            .iter()
            .all(|n| n == "mkdir" || n == "mkdirat"),
        "{runtime}: {:?}",
        report.answered
    );
    let s = &report.state;
    assert_eq!(s["fds"], json!(["seccompFd"]), "{runtime}: {s}");
    assert_eq!(s["metadata"], json!("berth-e2e metadata"), "{runtime}: {s}");
    assert!(s["ociVersion"].is_string(), "{runtime}: {s}");
    assert!(s["pid"].as_i64().unwrap_or(0) > 0, "{runtime}: {s}");
    assert_eq!(s["state"]["pid"], s["pid"], "{runtime}: {s}");
    assert_eq!(s["state"]["id"], json!(id), "{runtime}: {s}");
    assert_eq!(s["state"]["status"], json!("creating"), "{runtime}: {s}");
}

#[test]
fn seccomp_notify_hands_the_listener_to_the_agent_which_answers_mkdir() {
    let mut lab = Lab::new();
    let id = unique("notify");
    let sock = lab.dir.path().join("agent.sock");
    let b = notify_bundle(&mut lab, &id, &sock);
    let agent = agent(&sock, vec![Some(ENOANO), None]);
    let out = lab.berth_run(&id, &b);
    let report = agent_report(agent, &sock, &out, "berth-run");
    check_notified_run(&out, &report, &id, "berth-run");
    assert!(report.state["state"]["bundle"]
        .as_str()
        .is_some_and(|p| Path::new(p) == b));
}

#[test]
fn seccomp_notify_with_no_new_privileges_false_too() {
    let mut lab = Lab::new();
    let id = unique("notify-nnp");
    let sock = lab.dir.path().join("agent.sock");
    let b = notify_bundle(&mut lab, &id, &sock);
    let mut c: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    c["process"]["noNewPrivileges"] = json!(false);
    std::fs::write(b.join("config.json"), serde_json::to_vec(&c).unwrap()).unwrap();
    let agent = agent(&sock, vec![Some(ENOANO), None]);
    let out = lab.berth_run(&id, &b);
    let report = agent_report(agent, &sock, &out, "berth-run");
    check_notified_run(&out, &report, &id, "berth-run");
}

#[test]
fn seccomp_notify_differential_with_runc() {
    let mut lab = Lab::new();
    let mut keys = Vec::new();
    let mut outputs = Vec::new();
    for runtime in ["berth-run", "runc"] {
        let id = unique("notify-diff");
        let sock = lab.dir.path().join(format!("agent-{runtime}.sock"));
        let b = notify_bundle(&mut lab, &id, &sock);
        let agent = agent(&sock, vec![Some(ENOANO), None]);
        let out = if runtime == "runc" {
            lab.runc_run(&id, &b)
        } else {
            lab.berth_run(&id, &b)
        };
        let report = agent_report(agent, &sock, &out, runtime);
        check_notified_run(&out, &report, &id, runtime);
        let mut k: Vec<String> = report.state.as_object().unwrap().keys().cloned().collect();
        k.sort();
        keys.push(k);
        outputs.push(text(&out.stdout));
    }
    assert_eq!(
        keys[0], keys[1],
        "the process state documents have the same fields"
    );
    assert_eq!(outputs[0], outputs[1], "the container saw the same answers");
}

#[test]
fn seccomp_notify_of_an_exec_reaches_the_agent_with_the_running_state() {
    let mut lab = Lab::new();
    let id = unique("notify-exec");
    let sock = lab.dir.path().join("agent.sock");
    let b = lab.bundle(&id, &["sleep", "600"], |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
    });
    // The init's listener: taken at create, answering nothing.
    let first = agent(&sock, vec![]);
    let out = lab.berth(&["run", "--detach", "--bundle", b.to_str().unwrap(), &id]);
    let created = agent_report(first, &sock, &out, "berth-run run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(created.state["state"]["status"], json!("creating"));
    let init_pid = created.state["pid"].as_i64().unwrap();

    std::fs::remove_file(&sock).unwrap();
    let second = agent(&sock, vec![Some(ENOANO)]);
    let out = lab.berth(&["exec", &id, "mkdir", "/tmp/x"]);
    let report = agent_report(second, &sock, &out, "berth-run exec");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("No anode"),
        "{}",
        text(&out.stderr)
    );
    let s = &report.state;
    assert_eq!(s["state"]["status"], json!("running"), "{s}");
    assert_eq!(s["state"]["pid"], json!(init_pid), "{s}");
    assert!(s["pid"].as_i64().unwrap() != init_pid, "{s}");
    assert_eq!(report.answered.len(), 1);
}

#[test]
fn seccomp_notify_refusals_are_one_line() {
    let mut lab = Lab::new();
    // No agent listening: create fails naming the path, and leaves nothing behind.
    let id = unique("notify-noagent");
    let sock = lab.dir.path().join("nobody.sock");
    let b = notify_bundle(&mut lab, &id, &sock);
    let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("listenerPath") && err.contains("nobody.sock"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!lab.dir.path().join("state").join(&id).exists());

    // The spec's rules: a listenerPath is required; never the default action; not on write.
    for (tag, seccomp, needle) in [
        (
            "nopath",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            "listenerPath",
        ),
        (
            "default",
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}),
            "default action",
        ),
        (
            "write",
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
                   "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}),
            "write",
        ),
    ] {
        let id = unique(tag);
        let b = lab.bundle(&id, &["true"], |c| c["linux"]["seccomp"] = seccomp);
        let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{tag}: {err}");
        assert!(err.contains(needle), "{tag}: {err}");
        assert!(!lab.dir.path().join("state").join(&id).exists());
    }
}

// ---- idmapped mounts ----

/// A host directory for an idmapped mount: `owned-1000` (uid/gid 1000), `owned-root` and a
/// directory owned by root, writable by its owner only.
fn idmap_source(lab: &Lab, name: &str) -> PathBuf {
    let src = lab.dir.path().join(name);
    std::fs::create_dir(&src).unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(src.join("owned-1000"), "x").unwrap();
    std::os::unix::fs::chown(src.join("owned-1000"), Some(1000), Some(1000)).unwrap();
    std::fs::write(src.join("owned-root"), "x").unwrap();
    src
}

fn user_ns(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
}

#[test]
fn idmapped_bind_mounts_show_and_write_ids_through_their_mappings() {
    let mut lab = Lab::new();
    let id = unique("idmap");
    let src = idmap_source(&lab, "idmap-src");
    let ro_src = idmap_source(&lab, "idmap-ro-src");
    // Source ids 1000 -> container 7 (host 200007), 0 -> container 0 (host 200000).
    let maps = json!([{"containerID": 1000, "hostID": 200007, "size": 1},
                      {"containerID": 0, "hostID": 200000, "size": 1}]);
    let b = lab.bundle(
        &id,
        &[
            "sh",
            "-c",
            "ls -ln /data /plain; echo made > /data/new && echo wrote; \
             echo no > /ro/new 2>/dev/null || echo ro-refused",
        ],
        |c| {
            user_ns(c);
            let mounts = c["mounts"].as_array_mut().unwrap();
            mounts.push(
                json!({"destination": "/data", "type": "bind", "source": src,
                               "options": ["rbind", "idmap"],
                               "uidMappings": maps, "gidMappings": maps}),
            );
            mounts.push(
                json!({"destination": "/plain", "type": "bind", "source": src,
                               "options": ["rbind"]}),
            );
            mounts.push(
                json!({"destination": "/ro", "type": "bind", "source": ro_src,
                               "options": ["rbind", "ridmap", "ro"],
                               "uidMappings": maps, "gidMappings": maps}),
            );
        },
    );
    // Mount points exist in the image: container root cannot create them in a rootfs that
    // belongs to the host's root.
    for d in ["data", "plain", "ro"] {
        std::fs::create_dir(b.join("rootfs").join(d)).unwrap();
    }
    let out = lab.berth_run(&id, &b);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}\n{stdout}", text(&out.stderr));
    // `ls -ln` lines: mode, links, uid, gid, size, month, day, time, name.
    let owners = |dir_listing: &str| -> Vec<(String, String, String)> {
        dir_listing
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 9 && f[8].starts_with("owned-"))
                    .then(|| (f[8].to_string(), f[2].to_string(), f[3].to_string()))
            })
            .collect()
    };
    let (data, plain) = stdout.split_once("/plain:").expect("two listings");
    assert_eq!(
        owners(data),
        vec![
            ("owned-1000".into(), "7".into(), "7".into()),
            ("owned-root".into(), "0".into(), "0".into())
        ],
        "{stdout}"
    );
    // The same directory without the idmap: host ids outside the container's map.
    assert_eq!(
        owners(plain),
        vec![
            ("owned-1000".into(), "65534".into(), "65534".into()),
            ("owned-root".into(), "65534".into(), "65534".into())
        ],
        "{stdout}"
    );
    // Container root (host 200000) writes through the idmap as source uid 0.
    assert!(stdout.contains("wrote"), "{stdout}");
    let meta = std::fs::metadata(src.join("new")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert!(stdout.contains("ro-refused"), "{stdout}");
    assert!(!ro_src.join("new").exists());
}

#[test]
fn bad_idmapped_mounts_are_refused_in_one_line() {
    let mut lab = Lab::new();
    let maps = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let missing = lab.dir.path().join("no-such-dir");
    for (tag, mount, code, needle) in [
        (
            "tmpfs",
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": maps, "gidMappings": maps}),
            2,
            "bind mounts only",
        ),
        (
            "nomaps",
            json!({"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}),
            2,
            "needs uidMappings and gidMappings",
        ),
        (
            "missing",
            json!({"destination": "/t", "type": "bind", "source": missing, "options": ["rbind", "idmap"],
                   "uidMappings": maps, "gidMappings": maps}),
            3,
            "no-such-dir",
        ),
    ] {
        let id = unique(tag);
        let b = lab.bundle(&id, &["true"], |c| {
            user_ns(c);
            c["mounts"].as_array_mut().unwrap().push(mount);
        });
        let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{tag}: {err}");
        assert!(err.contains(needle) && err.contains("/t"), "{tag}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{tag}: {err}");
        assert!(!lab.dir.path().join("state").join(&id).exists(), "{tag}");
        assert!(
            !Path::new("/sys/fs/cgroup/pids/berth").join(&id).exists(),
            "{tag}"
        );
    }
}

// ---- a joined user namespace with new other namespaces ----

/// A process in a user namespace of its own (maps written by the test), killed and reaped on
/// drop.
struct UserNsHolder(std::process::Child);

impl UserNsHolder {
    fn new(map: &str) -> UserNsHolder {
        let child = Command::new("unshare")
            .args(["--user", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs");
        let h = UserNsHolder(child);
        let pid = h.0.id();
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() == Some(ours.clone()) {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare --user did not unshare"
            );
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::fs::write(format!("/proc/{pid}/uid_map"), map).unwrap();
        std::fs::write(format!("/proc/{pid}/gid_map"), map).unwrap();
        h
    }

    fn ns(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UserNsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_joined_user_namespace_owns_the_new_namespaces_made_with_it() {
    let mut lab = Lab::new();
    let holder = UserNsHolder::new("0 200000 65536\n");
    let id = unique("userjoin");
    let b = lab.bundle(
        &id,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/self/ns/mnt; \
             hostname; echo pid=$$; cat /proc/uptime",
        ],
        |c| {
            c["hostname"] = json!("joined");
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "network"}));
            ns.push(json!({"type": "cgroup"}));
            ns.push(json!({"type": "time"}));
            ns.push(json!({"type": "user", "path": holder.ns()}));
            c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5 * DAY}});
        },
    );
    let before = host_uptime();
    let out = lab.berth_run(&id, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout}");
    let map: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"], "{stdout}");
    let holder_ns = std::fs::read_link(holder.ns()).unwrap();
    assert_eq!(Path::new(lines[1]), holder_ns, "{stdout}");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(Path::new(lines[2]), host_mnt, "{stdout}");
    // sethostname and the proc mount need CAP_SYS_ADMIN over the uts and pid namespaces:
    // they belong to the joined user namespace, where the init is root.
    assert_eq!(lines[3], "joined");
    assert_eq!(lines[4], "pid=1");
    let uptime: f64 = lines[5].split_whitespace().next().unwrap().parse().unwrap();
    assert!(uptime >= before + (5 * DAY) as f64 - 0.01, "{stdout}");
}

#[test]
fn a_joined_user_namespace_without_root_is_one_line() {
    let mut lab = Lab::new();
    // Container uid 0 is not mapped: the init cannot become root there.
    let holder = UserNsHolder::new("1 200000 10\n");
    let id = unique("userjoin-noroot");
    let b = lab.bundle(&id, &["true"], |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user", "path": holder.ns()}));
    });
    let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("joined user namespace"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!lab.dir.path().join("state").join(&id).exists());
}
