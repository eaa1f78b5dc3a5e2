//! `berth-run exec` end to end, as root: every flag, the namespaces and cgroup of the init,
//! the container's seccomp/caps/rlimits, the errors, the fd and /proc/self/exe defences, the
//! `--process FILE --detach --pid-file` form engines use, and a differential part that runs
//! the same exec under runc on the same kind of bundle.
//!
//! Each test has its own state roots and unique ids with cgroupsPath /berth/<id>; the `Lab`
//! guard force-deletes its containers (berth-run and runc) and removes their cgroups and
//! directories on drop, pass or fail.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::lab::{
    cgroup_dirs, run_to_files, runc_like_config, stderr, wait_until, Bundle, Lab, Rt,
};

fn unique(tag: &str) -> String {
    crate::lab::unique_with("e2e-exec", tag)
}

/// This module's use of the lab: containers running `sleep 1000` under either runtime,
/// from bundles with busybox and the probe.
trait ExecLab {
    /// A bundle whose config `edit` changes.
    fn bundle(&self, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf;
    /// A detached container running `sleep 1000`; returns its id and its init's host pid.
    fn start(&self, rt: Rt, edit: impl FnOnce(&mut Value)) -> (String, i32);
    fn init_pid(&self, rt: Rt, id: &str) -> i32;
    /// `exec` of the probe in the foreground with extra flags: its report.
    fn probe(&self, rt: Rt, id: &str, flags: &[&str]) -> Value;
}

impl ExecLab for Lab {
    fn bundle(&self, id: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let mut config = exec_config(&format!("/berth/{id}"));
        edit(&mut config);
        Bundle::new(self.path().join(format!("bundle-{id}")))
            .applets(&[
                "sh", "true", "sleep", "id", "cat", "mkdir", "pwd", "env", "stty",
            ])
            .probe()
            .dirs(&["proc", "sys", "dev", "tmp", "etc", "home/user"])
            .passwd()
            .write(&config)
    }

    fn start(&self, rt: Rt, edit: impl FnOnce(&mut Value)) -> (String, i32) {
        let id = unique("c");
        let b = self.bundle(&id, |c| {
            c["process"]["args"] = json!(["sleep", "1000"]);
            edit(c);
        });
        let out = self.call(
            rt,
            &["run", "--detach", "--bundle", b.to_str().unwrap(), &id],
        );
        assert!(out.status.success(), "run -d: {}", stderr(&out));
        let pid = self.init_pid(rt, &id);
        (id, pid)
    }

    fn init_pid(&self, rt: Rt, id: &str) -> i32 {
        let out = self.call(rt, &["state", id]);
        assert!(out.status.success(), "state: {}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }

    fn probe(&self, rt: Rt, id: &str, flags: &[&str]) -> Value {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[id, "/bin/probe"]);
        let out = self.call(rt, &args);
        assert!(out.status.success(), "exec probe: {}", stderr(&out));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("probe: {e}: {}", String::from_utf8_lossy(&out.stdout)))
    }
}

/// The lab's `runc spec`-like config as exec has always been tested on it: no ambient
/// capabilities, no mqueue or cgroup mounts, fewer masked and read-only paths.
fn exec_config(cgroups_path: &str) -> Value {
    let mut c = runc_like_config(cgroups_path);
    c["process"]["capabilities"]
        .as_object_mut()
        .unwrap()
        .remove("ambient");
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["type"] != "mqueue" && m["type"] != "cgroup");
    c["linux"]["maskedPaths"] = json!(["/proc/kcore", "/proc/keys", "/sys/firmware"]);
    c["linux"]["readonlyPaths"] = json!(["/proc/sys", "/proc/sysrq-trigger"]);
    c
}

/// `/proc/<pid>/ns/<name>` as the probe prints it (`net:[4026532327]`).
fn ns_of(pid: i32, name: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}"))
        .unwrap()
        .display()
        .to_string()
}

/// `/proc/<pid>/cgroup` seen from the host, without named (non-controller) hierarchies.
fn cgroups_of(pid: i32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .filter(|l| !l.contains(":name="))
        .map(str::to_string)
        .collect()
}

fn pid_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// The one-line error contract: one line on stderr, naming the tool.
fn one_line(out: &Output) -> String {
    let text = stderr(out);
    assert_eq!(text.trim_end().lines().count(), 1, "one line: {text:?}");
    assert!(text.starts_with("berth-run: error: "), "{text:?}");
    text
}

const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

// ---- joining the container ----

#[test]
fn exec_joins_every_namespace_and_the_cgroup_of_the_init() {
    let lab = Lab::new();
    let (id, init) = lab.start(Rt::Berth, |_| {});
    let v = lab.probe(Rt::Berth, &id, &[]);
    for ns in NAMESPACES {
        assert_eq!(v["namespaces"][ns], ns_of(init, ns), "{ns} namespace");
    }
    let pid = v["pid"].as_i64().unwrap();
    assert!(
        pid > 1,
        "a child inside the container's pid namespace: {pid}"
    );
    assert_eq!(v["hostname"], "berth");
    // The cgroup: the same directory as the init in every hierarchy (v1 + unified here).
    let out = lab.berth(&["exec", "--detach", &id, "sleep", "1000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let procs_file = cgroup_dirs(&format!("/berth/{id}"))
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.exists())
        .unwrap();
    let procs: Vec<i32> = std::fs::read_to_string(&procs_file)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(procs.len(), 2, "init and the exec'd sleep: {procs:?}");
    let exec_pid = *procs.iter().find(|p| **p != init).unwrap();
    assert_eq!(cgroups_of(exec_pid), cgroups_of(init));
    assert!(cgroups_of(init)
        .iter()
        .any(|l| l.ends_with(&format!("/berth/{id}"))));
    // Inside, the cgroup namespace root is the container's cgroup.
    assert!(
        v["cgroup"].as_array().unwrap().iter().all(|l| {
            let l = l.as_str().unwrap();
            l.ends_with(":/") || l.contains(":name=")
        }),
        "{}",
        v["cgroup"]
    );
}

#[test]
fn exec_into_a_user_namespace_joins_it_first() {
    let lab = Lab::new();
    let (id, init) = lab.start(Rt::Berth, |c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        // /sys cannot be mounted in a user namespace without its own network namespace owner.
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["type"] != "sysfs");
    });
    let v = lab.probe(Rt::Berth, &id, &["-u", "1000:1000", "-g", "5"]);
    for ns in NAMESPACES {
        assert_eq!(v["namespaces"][ns], ns_of(init, ns), "{ns} namespace");
    }
    assert_eq!(
        (v["uid"].as_i64(), v["gid"].as_i64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(v["groups"], json!([5]));
    // Seen from the host, the process runs as the mapped ids.
    let out = lab.berth(&["exec", &id, "sh", "-c", "cat /proc/self/uid_map"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("100000"));
}

#[test]
fn exec_gets_the_containers_seccomp_caps_rlimits_and_no_new_privs() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    });
    let v = lab.probe(Rt::Berth, &id, &[]);
    assert_eq!(v["seccomp"], 2, "filter mode");
    assert_eq!(v["no_new_privs"], 1);
    let kill_audit_bind = (1u64 << 5) | (1 << 10) | (1 << 29);
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(v["caps"][set], kill_audit_bind, "{set}");
    }
    assert_eq!(v["caps"]["inheritable"], 0);
    assert_eq!(
        v["rlimits"]["RLIMIT_NOFILE"],
        json!({"soft": "256", "hard": "512"})
    );
    let out = lab.berth(&["exec", &id, "mkdir", "/tmp/x"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mkdir is refused by the profile"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn every_process_flag_shapes_the_process() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |c| {
        c["process"]["noNewPrivileges"] = json!(false);
    });
    let v = lab.probe(
        Rt::Berth,
        &id,
        &[
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "--env",
            "TERM=dumb",
            "--user",
            "1000:1000",
            "--additional-gids",
            "5",
            "-g",
            "6",
            "--cap",
            "CAP_CHOWN",
            "-c",
            "CAP_SYS_ADMIN",
            "--no-new-privs",
        ],
    );
    assert_eq!(v["cwd"], "/tmp");
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(
        env,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=dumb",
            "FOO=bar",
            "HOME=/home/user"
        ]
    );
    assert_eq!(
        (v["uid"].as_i64(), v["gid"].as_i64()),
        (Some(1000), Some(1000))
    );
    assert_eq!(v["groups"], json!([5, 6]));
    let bounding = (1u64 << 0) | (1 << 5) | (1 << 10) | (1 << 21) | (1 << 29);
    assert_eq!(v["caps"]["bounding"], bounding);
    assert_eq!(
        v["caps"]["effective"], 0,
        "execve as a non-root uid keeps no capability"
    );
    assert_eq!(v["no_new_privs"], 1);
    // Without --no-new-privs the container's false stands; root keeps its capabilities.
    let v = lab.probe(Rt::Berth, &id, &["-c", "CAP_CHOWN"]);
    assert_eq!(v["no_new_privs"], 0);
    assert_eq!(v["uid"], 0);
    assert_eq!(
        v["caps"]["effective"],
        (1u64 << 0) | (1 << 5) | (1 << 10) | (1 << 29)
    );
}

#[test]
fn preserved_fds_arrive_and_nothing_else_leaks() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |_| {});
    let v = lab.probe(Rt::Berth, &id, &[]);
    let fds: Vec<&String> = v["fds"].as_object().unwrap().keys().collect();
    assert_eq!(fds, ["0", "1", "2"], "{}", v["fds"]);
    let out = run_to_files(
        lab.path(),
        Command::new("sh").arg("-c").arg(format!(
            "exec 3</etc/hostname 4</etc/passwd; exec {} --root {} exec --preserve-fds 2 {} /bin/probe",
            berth_testkit::bin_path("berth-run").display(),
            lab.state_root().display(),
            id
        )),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["fds"]["3"], "/etc/hostname", "{}", v["fds"]);
    assert_eq!(v["fds"]["4"], "/etc/passwd", "{}", v["fds"]);
    assert_eq!(v["fds"].as_object().unwrap().len(), 5, "{}", v["fds"]);
    // An fd that is not open is refused before anything runs.
    let out = lab.berth(&["exec", "--detach", "--preserve-fds", "40", &id, "true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(one_line(&out).contains("is not open"));
}

#[test]
fn the_exec_cannot_reach_the_runtime_binary() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |_| {});
    let rootfs = lab.path().join(format!("bundle-{id}/rootfs"));
    std::fs::write(rootfs.join("bin/evil"), "#!/proc/self/exe\n").unwrap();
    std::fs::set_permissions(
        rootfs.join("bin/evil"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let before = std::fs::read(berth_testkit::bin_path("berth-run")).unwrap();
    let out = lab.berth(&["exec", &id, "/bin/evil"]);
    // The interpreter is the sealed stub: it runs with no program and fails.
    assert_eq!(out.status.code(), Some(126), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("Usage: berth-run"),
        "{}",
        stderr(&out)
    );
    let out = lab.berth(&["exec", &id, "sh", "-c", "readlink /proc/self/exe"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("berth-run"));
    assert_eq!(
        std::fs::read(berth_testkit::bin_path("berth-run")).unwrap(),
        before
    );
}

// ---- the forms engines use ----

#[test]
fn process_file_detach_and_pid_file_as_containerd_and_conmon_call_it() {
    let lab = Lab::new();
    let (id, init) = lab.start(Rt::Berth, |_| {});
    let process = lab.path().join("process.json");
    std::fs::write(
        &process,
        json!({
            "terminal": false,
            "user": {"uid": 7, "gid": 8, "additionalGids": [9]},
            "args": ["/bin/probe"],
            "env": ["PATH=/bin", "A=1"],
            "cwd": "/tmp",
            "noNewPrivileges": true
        })
        .to_string(),
    )
    .unwrap();
    let pid_file = lab.path().join("exec.pid");
    // The detached probe writes to the stdout berth-run was given, after berth-run exits.
    let stdout = lab.path().join("detached.out");
    let status = lab
        .cmd(Rt::Berth)
        .args([
            "exec",
            "--process",
            process.to_str().unwrap(),
            "--detach",
            "--pid-file",
        ])
        .arg(&pid_file)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(pid > 0 && pid != init);
    wait_until("the probe to finish", || !pid_alive(pid));
    let v: Value = serde_json::from_slice(&std::fs::read(&stdout).unwrap()).unwrap();
    assert_eq!((v["uid"].as_i64(), v["gid"].as_i64()), (Some(7), Some(8)));
    assert_eq!(v["groups"], json!([9]));
    assert_eq!(v["cwd"], "/tmp");
    assert_eq!(v["env"], json!(["PATH=/bin", "A=1", "HOME=/"]));
    assert_eq!(v["no_new_privs"], 1);
    assert_eq!(
        v["caps"]["bounding"],
        (1u64 << 5) | (1 << 10) | (1 << 29),
        "the container's caps"
    );
    assert_eq!(
        v["rlimits"]["RLIMIT_NOFILE"]["hard"], "1024",
        "the container's rlimits"
    );
    assert_eq!(v["namespaces"]["pid"], ns_of(init, "pid"));

    // The detached process outlives berth-run and is signalled through its pid.
    let out = lab.berth(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(pid_alive(pid));
    assert_eq!(ns_of(pid, "mnt"), ns_of(init, "mnt"));
    berth_sys::kill(pid, 9).unwrap();
    wait_until("the sleep to die", || !pid_alive(pid));
}

#[test]
fn tty_master_arrives_over_the_console_socket() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |_| {});
    let sock = lab.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = lab.berth(&[
        "exec", "-t", "--detach", "--console-socket", sock.to_str().unwrap(), &id, "sh", "-c",
        "test -t 0 && test -t 1 && echo is-a-tty; readlink /proc/self/fd/0; read line; echo got-$line",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let mut master = std::fs::File::from(berth_sys::recv_fd(conn.as_fd()).unwrap());
    master.write_all(b"hello\n").unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while !text.contains("got-hello") {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("is-a-tty"), "{text}");
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("got-hello"), "{text}");

    // containerd's form: --process with terminal and consoleSize, --detach, --pid-file.
    let process = lab.path().join("tty-process.json");
    std::fs::write(
        &process,
        json!({"terminal": true, "consoleSize": {"height": 30, "width": 100},
               "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "stty size; sleep 1000"],
               "env": ["PATH=/bin"], "cwd": "/"})
        .to_string(),
    )
    .unwrap();
    let pid_file = lab.path().join("tty.pid");
    let out = lab.berth(&[
        "exec",
        "--process",
        process.to_str().unwrap(),
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--console-socket",
        sock.to_str().unwrap(),
        &id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let mut master = std::fs::File::from(berth_sys::recv_fd(conn.as_fd()).unwrap());
    let mut text = String::new();
    while !text.contains("30 100") {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("30 100"), "consoleSize: {text:?}");
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert!(pid_alive(pid));
    berth_sys::kill(pid, 9).unwrap();
}

#[test]
fn tty_in_the_foreground_is_proxied_by_berth_run() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |_| {});
    // stdin is a file here: berth-run copies it to the pty and the pty's output to stdout.
    let input = lab.path().join("tty.in");
    std::fs::write(&input, "hello\n").unwrap();
    let out = lab.path().join("tty.out");
    let status = lab
        .cmd(Rt::Berth)
        .args(["exec", "-t", &id, "sh", "-c"])
        .arg("test -t 0 && test -t 1 && echo is-a-tty; read l; echo got-$l; exit 3")
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "the process's status");
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("is-a-tty\r\n"), "{text:?}");
    assert!(text.contains("got-hello"), "{text:?}");
}

#[test]
fn exec_into_a_created_container_works_and_start_still_works() {
    let lab = Lab::new();
    let id = unique("created");
    let b = lab.bundle(&id, |c| c["process"]["args"] = json!(["sleep", "1000"]));
    lab.track(Rt::Berth, &id);
    let out = lab.berth(&["create", "--bundle", b.to_str().unwrap(), &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.berth(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(lab.berth(&["start", &id]).status.success());
}

/// Sub-cgroups a test made under a container's cgroup; on drop kills what runs in them and
/// removes them (before the Lab deletes the container, whose cgroup must be empty of them).
struct SubCgroups(Vec<PathBuf>);

impl Drop for SubCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            for pid in std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                let _ = berth_sys::kill(pid.parse().unwrap_or(0), 9);
            }
        }
        for d in &self.0 {
            for _ in 0..200 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

#[test]
fn cgroup_flag_runs_the_process_in_a_sub_cgroup_like_runc() {
    let lab = Lab::new();
    let mut subs = SubCgroups(Vec::new());
    for rt in [Rt::Berth, Rt::Runc] {
        let (id, init) = lab.start(rt, |_| {});
        // runc makes the container's cgroup in the v1 controllers; the sub-cgroup goes in
        // each hierarchy where the container's cgroup is.
        for dir in cgroup_dirs(&format!("/berth/{id}")) {
            if dir.is_dir() {
                let sub = dir.join("sub");
                std::fs::create_dir(&sub).unwrap();
                subs.0.push(sub.clone());
                // A new v1 cpuset cgroup starts with no CPUs and nodes: take the parent's.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    if let Ok(v) = std::fs::read_to_string(dir.join(f)) {
                        std::fs::write(sub.join(f), v.trim()).unwrap();
                    }
                }
            }
        }
        let pid_file = lab.path().join(format!("{id}.pid"));
        let out = lab.call(
            rt,
            &[
                "exec",
                "-d",
                "--cgroup",
                "sub",
                "--pid-file",
                pid_file.to_str().unwrap(),
                &id,
                "sleep",
                "1000",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for line in cgroups_of(pid).iter().filter(|l| !l.starts_with("0::")) {
            assert!(line.ends_with(&format!("/berth/{id}/sub")), "{line}");
        }
        // Per controller: pids in the sub-cgroup, the rest in the container's own.
        let out = lab.call(
            rt,
            &[
                "exec",
                "-d",
                "--cgroup",
                "pids:sub",
                "--cgroup",
                "memory:/sub",
                "--pid-file",
                pid_file.to_str().unwrap(),
                &id,
                "sleep",
                "1000",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        for line in cgroups_of(pid).iter().filter(|l| !l.starts_with("0::")) {
            let sub = line.contains(":pids:") || line.contains(":memory:");
            let want = if sub {
                format!("/berth/{id}/sub")
            } else {
                format!("/berth/{id}")
            };
            assert!(line.ends_with(&want), "{line}");
        }
        assert_eq!(ns_of(pid, "pid"), ns_of(init, "pid"));
        if rt == Rt::Berth {
            let out = lab.berth(&["exec", "-d", "--cgroup", "nosuch", &id, "true"]);
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
            assert!(one_line(&out).contains("nosuch"));
            let out = lab.berth(&["exec", "-d", "--cgroup", "../../x", &id, "true"]);
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            one_line(&out);
        }
    }
}

// ---- statuses and errors ----

#[test]
fn exit_statuses_pass_through_and_failures_use_run_codes() {
    let lab = Lab::new();
    let (id, init) = lab.start(Rt::Berth, |_| {});
    let code = |args: &[&str]| lab.berth(args).status.code();
    assert_eq!(code(&["exec", &id, "true"]), Some(0));
    assert_eq!(code(&["exec", &id, "sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["exec", &id, "sh", "-c", "kill -9 $$"]), Some(137));
    let out = lab.berth(&["exec", &id, "nope"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(one_line(&out).contains("executable file not found"));
    let out = lab.berth(&["exec", &id, "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126));
    one_line(&out);
    let out = lab.berth(&["exec", "--cwd", "/nope", &id, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(one_line(&out).contains("/nope"));
    // Detached: the documented kind codes.
    let out = lab.berth(&["exec", "-d", &id, "nope"]);
    assert_eq!(out.status.code(), Some(3));
    one_line(&out);
    // Nothing is left behind: the init alone in the cgroup.
    let procs = cgroup_dirs(&format!("/berth/{id}"))
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.exists())
        .unwrap();
    wait_until("only the init in the cgroup", || {
        std::fs::read_to_string(&procs).unwrap().trim() == init.to_string()
    });
}

#[test]
fn foreground_exec_forwards_signals_and_reports_128_plus_n() {
    let lab = Lab::new();
    let (id, init) = lab.start(Rt::Berth, |_| {});
    let out = lab.path().join("fg.out");
    let mut child = lab
        .cmd(Rt::Berth)
        .args(["exec", &id, "sleep", "1000"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(lab.path().join("fg.err")).unwrap())
        .spawn()
        .unwrap();
    let procs = cgroup_dirs(&format!("/berth/{id}"))
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.exists())
        .unwrap();
    wait_until("the exec'd sleep in the cgroup", || {
        std::fs::read_to_string(&procs).unwrap().lines().count() == 2
    });
    // SIGTERM to berth-run reaches the process, whose death by SIGTERM is 128+15.
    berth_sys::kill(child.id() as i32, 15).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    wait_until("only the init in the cgroup", || {
        std::fs::read_to_string(&procs).unwrap().trim() == init.to_string()
    });
}

#[test]
fn missing_stopped_and_paused_containers_are_refused_in_one_line() {
    let lab = Lab::new();
    let out = lab.berth(&["exec", "-d", "nonexistent", "true"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(one_line(&out).contains("does not exist"));
    let out = lab.berth(&["exec", "nonexistent", "true"]);
    assert_eq!(out.status.code(), Some(125), "foreground: berth-run failed");
    one_line(&out);

    let (id, init) = lab.start(Rt::Berth, |_| {});
    assert!(lab.berth(&["pause", &id]).status.success());
    let out = lab.berth(&["exec", "-d", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("--ignore-paused"));
    // With --ignore-paused the process joins the frozen cgroup (and freezes there, so
    // berth-run waits, as runc does) and runs after resume.
    let pid_file = lab.path().join("paused.pid");
    let mut cmd = lab.cmd(Rt::Berth);
    cmd.args([
        "exec",
        "-d",
        "--ignore-paused",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let dir = lab.path().to_path_buf();
    let exec = std::thread::spawn(move || run_to_files(&dir, &mut cmd));
    let procs = cgroup_dirs(&format!("/berth/{id}"))
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .find(|p| p.exists())
        .unwrap();
    wait_until("the exec'd process in the frozen cgroup", || {
        std::fs::read_to_string(&procs).unwrap().lines().count() == 2
    });
    assert!(lab.berth(&["resume", &id]).status.success());
    let out = exec.join().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    assert_eq!(ns_of(pid, "pid"), ns_of(init, "pid"));

    assert!(lab.berth(&["kill", &id, "KILL"]).status.success());
    wait_until("the init to die", || !pid_alive(init));
    let out = lab.berth(&["exec", "-d", &id, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&out).contains("stopped"));
}

#[test]
fn unsupported_and_malformed_requests_get_documented_codes() {
    let lab = Lab::new();
    let (id, _) = lab.start(Rt::Berth, |_| {});
    for (args, want, text) in [
        (vec!["--apparmor", "p"], 6, "AppArmor"),
        (vec!["--process-label", "l"], 6, "SELinux"),
        (vec!["-t"], 2, "console socket"),
        (
            vec!["--console-socket", "/nonexistent.sock"],
            2,
            "will not allocate tty",
        ),
        (vec!["-u", "a"], 2, "not a number"),
        (vec!["--cap", "CAP_NOPE"], 2, "CAP_NOPE"),
        (vec!["-e", "NOEQUALS"], 2, "NAME=value"),
    ] {
        let mut a = vec!["exec", "-d"];
        a.extend(args.iter());
        a.extend([id.as_str(), "true"]);
        let out = lab.berth(&a);
        assert_eq!(out.status.code(), Some(want), "{args:?}: {}", stderr(&out));
        assert!(one_line(&out).contains(text), "{args:?}: {}", stderr(&out));
    }
    let bad = lab.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let out = lab.berth(&["exec", "-d", "-p", bad.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("bad.json"));
    let out = lab.berth(&["exec", "-d", "-p", "/nonexistent.json", &id]);
    assert_eq!(out.status.code(), Some(3));
    one_line(&out);
}

// ---- differential: the same exec under runc ----

#[test]
fn differential_exec_matches_runc() {
    let lab = Lab::new();
    let edit = |c: &mut Value| {
        c["process"]["noNewPrivileges"] = json!(false);
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 512, "soft": 256}]);
    };
    let (bid, binit) = lab.start(Rt::Berth, edit);
    let (rid, rinit) = lab.start(Rt::Runc, edit);
    let flags: &[&[&str]] = &[
        &[],
        &[
            "-u",
            "1000:1000",
            "-g",
            "5",
            "-g",
            "6",
            "--cwd",
            "/tmp",
            "-e",
            "FOO=bar",
            "-e",
            "TERM=dumb",
        ],
        &["-c", "CAP_CHOWN", "-c", "CAP_SYS_ADMIN", "--no-new-privs"],
    ];
    for f in flags {
        let b = lab.probe(Rt::Berth, &bid, f);
        let r = lab.probe(Rt::Runc, &rid, f);
        for field in [
            "uid",
            "gid",
            "groups",
            "caps",
            "env",
            "cwd",
            "no_new_privs",
            "umask",
        ] {
            assert_eq!(b[field], r[field], "{field} with {f:?}");
        }
        // Deliberate difference (docs/security.md): runc 1.1.5's exec'd process sometimes
        // gets the soft RLIMIT_NOFILE raised to the hard limit (Go 1.19 raises it in `runc
        // init`, racing runc's prlimit); berth-run always gives the spec's.
        let mut rl = r["rlimits"].clone();
        rl["RLIMIT_NOFILE"]["soft"] = json!("256");
        assert_eq!(b["rlimits"], rl, "rlimits with {f:?}");
        assert_eq!(b["rlimits"]["RLIMIT_NOFILE"]["soft"], "256");
        // Each runtime's exec sees its own init's namespaces.
        for ns in NAMESPACES {
            assert_eq!(b["namespaces"][ns], ns_of(binit, ns), "berth-run {ns}");
            assert_eq!(r["namespaces"][ns], ns_of(rinit, ns), "runc {ns}");
        }
        let fds = |v: &Value| {
            v["fds"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(fds(&b), fds(&r), "open fds");
    }
    for (script, want) in [("exit 7", 7), ("kill -9 $$", 137), ("true", 0)] {
        let b = lab.berth(&["exec", &bid, "sh", "-c", script]).status.code();
        let r = lab
            .call(Rt::Runc, &["exec", &rid, "sh", "-c", script])
            .status
            .code();
        assert_eq!(b, r, "{script}");
        assert_eq!(b, Some(want), "{script}");
    }
    // The detached form: the pid file names a process in the init's cgroup, under both.
    for (rt, id, init) in [(Rt::Berth, &bid, binit), (Rt::Runc, &rid, rinit)] {
        let pid_file = lab.path().join(format!("{id}.pid"));
        let out = lab.call(
            rt,
            &[
                "exec",
                "-d",
                "--pid-file",
                pid_file.to_str().unwrap(),
                id,
                "sleep",
                "1000",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let controllers = |p: i32| {
            cgroups_of(p)
                .into_iter()
                .filter(|l| !l.starts_with("0::"))
                .collect::<Vec<_>>()
        };
        assert_eq!(controllers(pid), controllers(init), "v1 controllers");
    }
}
