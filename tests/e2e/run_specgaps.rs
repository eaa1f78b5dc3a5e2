//! berth-run end to end, as root: the runtime-spec items that came last (issue #5):
//! `linux.timeOffsets` (a time namespace with offsets, seen from inside) and seccomp
//! `SCMP_ACT_NOTIFY` with `listenerPath`/`listenerMetadata` (an agent in the test receives
//! the listener fd and the container process state, answers the container's `mkdir`s, and
//! the same bundle runs under runc 1.1 as the differential); idmapped bind mounts (mount
//! `uidMappings`/`gidMappings` with `idmap`/`ridmap`, which runc 1.1.5 does not have); and
//! joining a user namespace by path while creating the other namespaces, also together with
//! a sandbox's pid (and time) namespaces, as a pod's second container does (runc 1.1 runs
//! the same bundle as the differential).
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

use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::{json, Value};

use crate::lab::{minimal_config, Bundle, Lab, Rt};

fn unique(tag: &str) -> String {
    crate::lab::unique_with("e2e-sg", tag)
}

/// This module's use of the lab: small bundles.
trait SpecGapsLab {
    /// A bundle with static busybox in the rootfs and a minimal config (pid, mount, ipc,
    /// uts namespaces, /proc, a tmpfs /dev) running `args`; `edit` changes the config.
    fn bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf;
}

impl SpecGapsLab for Lab {
    fn bundle(&self, id: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        self.track(Rt::Berth, id);
        let mut config = minimal_config(&format!("/berth/{id}"), args);
        edit(&mut config);
        Bundle::new(self.path().join(format!("bundle-{id}")))
            .applets(&["sh", "cat", "echo", "mkdir", "ls", "sleep"])
            .dirs(&["proc", "dev", "tmp"])
            .sticky_tmp()
            .write(&config)
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
    let lab = Lab::new();
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
    let lab = Lab::new();
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
fn notify_bundle(lab: &Lab, id: &str, sock: &Path) -> PathBuf {
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
    let lab = Lab::new();
    let id = unique("notify");
    let sock = lab.dir.path().join("agent.sock");
    let b = notify_bundle(&lab, &id, &sock);
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
    let lab = Lab::new();
    let id = unique("notify-nnp");
    let sock = lab.dir.path().join("agent.sock");
    let b = notify_bundle(&lab, &id, &sock);
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
    let lab = Lab::new();
    let mut keys = Vec::new();
    let mut outputs = Vec::new();
    for runtime in ["berth-run", "runc"] {
        let id = unique("notify-diff");
        let sock = lab.dir.path().join(format!("agent-{runtime}.sock"));
        let b = notify_bundle(&lab, &id, &sock);
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
    let lab = Lab::new();
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
    let lab = Lab::new();
    // No agent listening: create fails naming the path, and leaves nothing behind.
    let id = unique("notify-noagent");
    let sock = lab.dir.path().join("nobody.sock");
    let b = notify_bundle(&lab, &id, &sock);
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
    let lab = Lab::new();
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
    let lab = Lab::new();
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
        UserNsHolder::with_setgroups("allow", map)
    }

    /// `unshare --user sleep 600`, once it is in its own user namespace (no maps yet).
    fn spawn() -> UserNsHolder {
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
        h
    }

    /// As [`UserNsHolder::new`], with `setgroups` ("allow" or "deny") written before the maps.
    fn with_setgroups(setgroups: &str, map: &str) -> UserNsHolder {
        let h = UserNsHolder::spawn();
        let pid = h.0.id();
        std::fs::write(format!("/proc/{pid}/setgroups"), setgroups).unwrap();
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
    let lab = Lab::new();
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

/// berth-run itself runs with supplementary groups (4 and 24, through setpriv): none of them
/// may reach a container that joins a user namespace. Where the namespace allows setgroups
/// the container gets the spec's additionalGids; where it denies it, none at all, and asking
/// for some is one line.
#[test]
fn a_joined_user_namespace_gets_the_spec_groups_never_the_callers() {
    let lab = Lab::new();
    let run_with_groups = |id: &str, b: &Path| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--groups", "4,24", "--"])
            .arg(berth_testkit::bin_path("berth-run"))
            .arg("--root")
            .arg(lab.state_root())
            .args(["run", "--bundle", b.to_str().unwrap(), id]);
        lab.output(&mut cmd)
    };
    let groups_of = |out: &Output| -> String {
        let stdout = text(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("Groups:"));
        line.unwrap_or_else(|| panic!("no Groups line in {stdout}"))
            .trim_start_matches("Groups:")
            .trim()
            .to_string()
    };
    let allow = UserNsHolder::new("0 200000 65536\n");
    for (tag, gids, want) in [("none", json!([]), ""), ("some", json!([5, 6]), "5 6")] {
        let id = unique(&format!("groups-{tag}"));
        let b = lab.bundle(&id, &["cat", "/proc/self/status"], |c| {
            c["process"]["user"]["additionalGids"] = gids.clone();
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.push(json!({"type": "user", "path": allow.ns()}));
        });
        let out = run_with_groups(&id, &b);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(groups_of(&out), want, "{tag}");
    }

    let deny = UserNsHolder::with_setgroups("deny", "0 300000 65536\n");
    let id = unique("groups-deny");
    let b = lab.bundle(&id, &["cat", "/proc/self/status"], |c| {
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user", "path": deny.ns()}));
    });
    let out = run_with_groups(&id, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(groups_of(&out), "", "the caller's groups were dropped");

    let id = unique("groups-deny-asked");
    let b = lab.bundle(&id, &["cat", "/proc/self/status"], |c| {
        c["process"]["user"]["additionalGids"] = json!([5]);
        let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
        ns.push(json!({"type": "user", "path": deny.ns()}));
    });
    let out = run_with_groups(&id, &b);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("denies setgroups"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_joined_user_namespace_without_root_is_one_line() {
    let lab = Lab::new();
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

// ---- joined user and pid namespaces (a pod's second container) ----

/// A pod sandbox: `unshare --user --pid --fork --kill-child sleep 600`, maps written by the
/// test; pid 1 of its pid namespace is the `sleep`. Killed (pid 1 first, which empties the
/// namespace) and reaped on drop.
struct Sandbox {
    unshare: std::process::Child,
    pid1: u32,
}

impl Sandbox {
    fn new(map: &str) -> Sandbox {
        Sandbox::spawn(&["--user", "--pid"], Some(map))
    }

    /// A pid namespace of the host's user namespace (no user namespace of its own).
    fn pid_only() -> Sandbox {
        Sandbox::spawn(&["--pid"], None)
    }

    fn spawn(unshare: &[&str], map: Option<&str>) -> Sandbox {
        let child = Command::new("unshare")
            .args(unshare)
            .args(["--fork", "--kill-child", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("unshare (util-linux) runs");
        let mut s = Sandbox {
            unshare: child,
            pid1: 0,
        };
        let pid = s.unshare.id();
        if let Some(map) = map {
            let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
            wait_for("unshare --user to unshare", || {
                std::fs::read_link(format!("/proc/{pid}/ns/user")).ok() != Some(ours.clone())
            });
            std::fs::write(format!("/proc/{pid}/uid_map"), map).unwrap();
            std::fs::write(format!("/proc/{pid}/gid_map"), map).unwrap();
        }
        wait_for("unshare --fork to start pid 1", || {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .unwrap_or_default();
            match children.split_whitespace().next().map(str::parse) {
                Some(Ok(p)) => {
                    s.pid1 = p;
                    true
                }
                _ => false,
            }
        });
        wait_for("the sandbox's pid 1 to exec sleep", || {
            std::fs::read_to_string(format!("/proc/{}/comm", s.pid1)).is_ok_and(|c| c == "sleep\n")
        });
        s
    }

    fn ns(&self, kind: &str) -> String {
        format!("/proc/{}/ns/{kind}", self.pid1)
    }

    fn ns_link(&self, kind: &str) -> String {
        std::fs::read_link(self.ns(kind))
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    /// Host pids of every live process in the sandbox's pid namespace (an init whose
    /// `berth-run` exited is the host init's zombie for a while once dead: not counted).
    fn members(&self) -> Vec<u32> {
        let want = std::fs::read_link(self.ns("pid")).unwrap();
        let mut pids: Vec<u32> = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .filter(|p: &u32| {
                std::fs::read_link(format!("/proc/{p}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&want)
            })
            .filter(|p| alive(*p))
            .collect();
        pids.sort_unstable();
        pids
    }
}

/// Whether a host pid is a live process (not gone, not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // The state follows the parenthesised command name.
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
    })
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.pid1 != 0 {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(self.pid1 as i32).unwrap(),
                rustix::process::Signal::KILL,
            );
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The sandbox's user and pid namespaces joined; mount, ipc and uts made (owned by the
/// joined user namespace); hostname "second"; `maps`: the sandbox's own mappings in the
/// spec too (runc 1.1 requires them with a joined user namespace).
fn second_container(c: &mut Value, sandbox: &Sandbox, maps: Option<&Value>) {
    c["hostname"] = json!("second");
    c["linux"]["namespaces"] = json!([
        {"type": "user", "path": sandbox.ns("user")},
        {"type": "pid", "path": sandbox.ns("pid")},
        {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}
    ]);
    if let Some(m) = maps {
        c["linux"]["uidMappings"] = m.clone();
        c["linux"]["gidMappings"] = m.clone();
    }
}

/// What the second container reports, one field a line (see `REPORT`).
const REPORT: &str = "cat /proc/self/uid_map; readlink /proc/self/ns/pid; cat /proc/1/comm; \
                      hostname; readlink /proc/self/ns/ipc; echo pid=$$";

fn check_report(stdout: &str, sandbox: &Sandbox, who: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{who}: {stdout}");
    let map: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(map, ["0", "200000", "65536"], "{who}: {stdout}");
    assert_eq!(
        lines[1],
        sandbox.ns_link("pid"),
        "{who}: the sandbox's pid namespace"
    );
    // The sandbox's processes are seen: its pid 1 is the sleep.
    assert_eq!(lines[2], "sleep", "{who}: {stdout}");
    // sethostname needs CAP_SYS_ADMIN over the new uts namespace: the joined user
    // namespace owns it.
    assert_eq!(lines[3], "second", "{who}: {stdout}");
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    assert_ne!(Path::new(lines[4]), host_ipc, "{who}: a new ipc namespace");
    let pid: u32 = lines[5].strip_prefix("pid=").unwrap().parse().unwrap();
    assert!(
        pid > 1,
        "{who}: not pid 1 of the joined pid namespace: {stdout}"
    );
}

#[test]
fn joined_user_and_pid_namespaces_run_a_pods_second_container() {
    let lab = Lab::new();
    let sandbox = Sandbox::new("0 200000 65536\n");
    let id = unique("userpid");
    let b = lab.bundle(&id, &["sh", "-c", REPORT], |c| {
        second_container(c, &sandbox, None)
    });
    let out = lab.berth_run(&id, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_report(&text(&out.stdout), &sandbox, "berth-run");
    assert!(!lab.dir.path().join("state").join(&id).exists());
    assert_eq!(
        sandbox.members(),
        [sandbox.pid1],
        "nothing of the container is left"
    );
}

#[test]
fn joined_user_and_pid_namespaces_state_exec_kill_and_delete_use_the_host_pid() {
    let lab = Lab::new();
    let sandbox = Sandbox::new("0 200000 65536\n");
    let id = unique("userpid-life");
    let script = format!("({REPORT}) > /tmp/report; echo done >> /tmp/report; exec sleep 600");
    let b = lab.bundle(&id, &["sh", "-c", &script], |c| {
        second_container(c, &sandbox, None)
    });
    let pid_file = lab.dir.path().join(format!("{id}.pid"));
    let out = lab.berth(&[
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let state = |lab: &Lab| -> Value {
        let out = lab.berth(&["state", &id]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let st = state(&lab);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string(),
        "the pid file has the host pid"
    );
    // The host pid is the init's: in the sandbox's pid namespace, numbered there too.
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid"))
            .unwrap()
            .to_string_lossy(),
        sandbox.ns_link("pid")
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid: Vec<String> = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(nspid.len(), 2, "{status}");
    assert_eq!(nspid[0], pid.to_string(), "{status}");
    // And it is what was put in the container's cgroup (v1 by the init itself, v2 through
    // cgroup.procs with that pid: the helper's clone is never born in it).
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for hierarchy in ["pids", ""] {
        let line = cgroups
            .lines()
            .find(|l| l.split(':').nth(1) == Some(hierarchy))
            .unwrap_or_else(|| panic!("no {hierarchy:?} line: {cgroups}"));
        assert!(line.ends_with(&format!(":/berth/{id}")), "{cgroups}");
    }

    let out = lab.berth(&["start", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report_path = b.join("rootfs/tmp/report");
    wait_for("the container's report", || {
        std::fs::read_to_string(&report_path).is_ok_and(|r| r.ends_with("done\n"))
    });
    let report = std::fs::read_to_string(&report_path).unwrap();
    let body = report.strip_suffix("done\n").unwrap();
    check_report(body, &sandbox, "berth-run create/start");
    // The init's own $$ is its number in the sandbox's namespace.
    assert!(
        body.ends_with(&format!("pid={}\n", nspid[1])),
        "{report} vs {status}"
    );
    assert_eq!(state(&lab)["status"], "running");

    // exec joins every namespace of the init: the sandbox's pid and user ones included.
    let out = lab.berth(&["exec", &id, "sh", "-c", REPORT]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    check_report(&text(&out.stdout), &sandbox, "berth-run exec");

    let out = lab.berth(&["kill", &id, "TERM"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_for("the init to die of SIGTERM", || {
        state(&lab)["status"] == "stopped"
    });
    // The signal reached the host pid: dead (a zombie until the host's init reaps it).
    assert!(!alive(pid), "the host pid {pid} was the init");
    let out = lab.berth(&["delete", &id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!lab.dir.path().join("state").join(&id).exists());
    assert!(!Path::new("/sys/fs/cgroup/pids/berth").join(&id).exists());
    assert_eq!(
        sandbox.members(),
        [sandbox.pid1],
        "nothing of the container is left"
    );
}

#[test]
fn joined_user_and_pid_namespaces_differential_with_runc() {
    let lab = Lab::new();
    let sandbox = Sandbox::new("0 200000 65536\n");
    let maps = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    let id = unique("userpid-diff");
    // One bundle for both: runc 1.1 requires the mappings, berth-run checks they are the
    // joined namespace's.
    let b = lab.bundle(&id, &["sh", "-c", REPORT], |c| {
        second_container(c, &sandbox, Some(&maps))
    });
    let ours = lab.berth_run(&id, &b);
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let runc_id = format!("{id}-runc");
    let theirs = lab.runc_run(&runc_id, &b);
    assert!(theirs.status.success(), "runc: {}", text(&theirs.stderr));
    let (ours, theirs) = (text(&ours.stdout), text(&theirs.stdout));
    check_report(&ours, &sandbox, "berth-run");
    check_report(&theirs, &sandbox, "runc");
    // Field by field, but the ipc namespace (each makes its own) and the pid (each gets the
    // next free number in the sandbox's namespace).
    let fields = |s: &str| -> Vec<String> {
        let l: Vec<&str> = s.lines().collect();
        vec![
            l[0].split_whitespace().collect::<Vec<_>>().join(" "),
            l[1].into(),
            l[2].into(),
            l[3].into(),
        ]
    };
    assert_eq!(fields(&ours), fields(&theirs));
    assert_eq!(
        sandbox.members(),
        [sandbox.pid1],
        "nothing of either is left"
    );
}

#[test]
fn joined_user_and_pid_namespace_errors_are_one_line_and_leave_nothing() {
    let lab = Lab::new();
    let sandbox = Sandbox::new("0 200000 65536\n");
    let other = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let net = sandbox.ns("net");
    let hosts = Sandbox::pid_only();
    let hosts_pid = hosts.ns("pid");
    for (tag, code, needle, edit) in [
        (
            "notpid",
            2,
            format!("pid path {net} is not a pid namespace"),
            Box::new(|c: &mut Value| {
                c["linux"]["namespaces"][1]["path"] = json!(net);
            }) as Box<dyn Fn(&mut Value)>,
        ),
        (
            "owner",
            2,
            format!(
                "the pid namespace {hosts_pid} does not belong to the user namespace {}",
                sandbox.ns("user")
            ),
            Box::new(|c: &mut Value| {
                c["linux"]["namespaces"][1]["path"] = json!(hosts_pid);
            }),
        ),
        (
            "missing",
            3,
            "no-such-ns".to_string(),
            Box::new(|c: &mut Value| {
                c["linux"]["namespaces"][1]["path"] = json!("/proc/no-such-ns/ns/pid");
            }),
        ),
        (
            "maps",
            2,
            "linux.uidMappings [0 100000 65536] differ from the joined user namespace's [0 200000 65536]"
                .to_string(),
            Box::new(|c: &mut Value| {
                c["linux"]["uidMappings"] = other.clone();
                c["linux"]["gidMappings"] = other.clone();
            }),
        ),
    ] {
        let id = unique(tag);
        let b = lab.bundle(&id, &["true"], |c| {
            second_container(c, &sandbox, None);
            edit(c);
        });
        let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{tag}: {err}");
        assert!(err.contains(&needle), "{tag}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{tag}: {err}");
        assert!(!lab.dir.path().join("state").join(&id).exists(), "{tag}");
        assert!(
            !Path::new("/sys/fs/cgroup/pids/berth").join(&id).exists(),
            "{tag}"
        );
        assert_eq!(sandbox.members(), [sandbox.pid1], "{tag}: nothing is left");
        assert_eq!(hosts.members(), [hosts.pid1], "{tag}: nothing is left");
    }
}

// Regression: berth-run joined the pid namespace for its next child, the init, and stayed
// there, so its hooks (createRuntime, poststop…) were born in the container's pid namespace.
#[test]
fn hooks_of_a_container_joining_a_pid_namespace_run_in_berth_runs_own() {
    let lab = Lab::new();
    let sandbox = Sandbox::pid_only();
    let id = unique("pidjoin-hooks");
    let out_file = lab.path().join("hook-pidns");
    let hook = lab.path().join("hook.sh");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nreadlink /proc/self/ns/pid >> {}\n",
            out_file.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let b = lab.bundle(&id, &["sh", "-c", "readlink /proc/self/ns/pid"], |c| {
        c["linux"]["namespaces"][0] = json!({"type": "pid", "path": sandbox.ns("pid")});
        c["hooks"] = json!({
            "createRuntime": [{"path": hook}],
            "poststop": [{"path": hook}]
        });
    });
    let out = lab.berth_run(&id, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).trim(),
        sandbox.ns_link("pid"),
        "the init joined it"
    );
    let ours = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let hooks = std::fs::read_to_string(&out_file).unwrap();
    let seen: Vec<&str> = hooks.lines().collect();
    assert_eq!(
        seen,
        [ours.to_string_lossy().as_ref(); 2],
        "both hooks in our pid namespace"
    );
    assert_eq!(
        sandbox.members(),
        [sandbox.pid1],
        "nothing of the container is left"
    );
}

#[test]
fn a_joined_time_namespace_is_entered_with_the_joined_user_and_pid_ones() {
    let lab = Lab::new();
    // The sandbox's clocks: boottime ten days ahead of the host's.
    let sandbox = Sandbox::spawn(
        &[
            "--user",
            "--pid",
            "--time",
            "--boottime",
            &(10 * DAY).to_string(),
        ],
        Some("0 200000 65536\n"),
    );
    let id = unique("userpidtime");
    let b = lab.bundle(
        &id,
        &[
            "sh",
            "-c",
            "readlink /proc/self/ns/time; cat /proc/uptime; echo pid=$$",
        ],
        |c| {
            second_container(c, &sandbox, None);
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "time", "path": sandbox.ns("time")}));
        },
    );
    let before = host_uptime();
    let out = lab.berth_run(&id, &b);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert_eq!(lines[0], sandbox.ns_link("time"), "{stdout}");
    let uptime: f64 = lines[1].split_whitespace().next().unwrap().parse().unwrap();
    assert!(uptime >= before + (10 * DAY) as f64 - 0.01, "{stdout}");
    assert_ne!(
        lines[2], "pid=1",
        "in the sandbox's pid namespace: {stdout}"
    );
    assert_eq!(
        sandbox.members(),
        [sandbox.pid1],
        "nothing of the container is left"
    );
}
