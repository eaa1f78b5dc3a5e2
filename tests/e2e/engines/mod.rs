//! berth-run under the engines people already run: Debian's podman 4.3 (`--runtime`) and
//! containerd 1.6 (its `io.containerd.runc.v2` shim with berth-run as the runc binary), on
//! busybox pushed to a throwaway docker-registry on loopback. Every scenario runs under
//! berth-run and, as the oracle that tells an engine problem from a berth-run problem, under
//! runc: the same commands, the same expected observations.
//!
//! Each test has private state: podman's `--root`, `--runroot`, `--tmpdir` and its
//! containers.conf / registries.conf / storage.conf (through CONTAINERS_CONF,
//! CONTAINERS_REGISTRIES_CONF, CONTAINERS_STORAGE_CONF); containerd's root, state, sockets,
//! config and the runtime's `--root` under it. All live in the test's temporary directory;
//! cgroups go under `/berth/<unique>`; no host network changes (podman `--network none`,
//! ctr gives each container a new network namespace with loopback only). podman's runtime
//! keeps its state under its default root (/run/berth, /run/runc: see podman.rs for why),
//! per 64-hex-digit container id. On drop, pass or fail, the harnesses remove their
//! containers, stop the daemons they started, kill leftover processes by pid, unmount what
//! is mounted under the temporary directory and remove the cgroups.
//! See docs/engines.md for the same configuration outside the tests.

mod containerd;
mod podman;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// The OCI runtime an engine is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rt {
    Berth,
    Runc,
}

impl Rt {
    fn path(self) -> PathBuf {
        match self {
            Rt::Berth => berth_testkit::bin_path("berth-run"),
            Rt::Runc => PathBuf::from("/usr/sbin/runc"),
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Rt::Berth => "b",
            Rt::Runc => "r",
        }
    }
}

/// A name no other test (nor process) uses: ids, cgroups, temp dirs.
fn unique(tag: &str) -> String {
    format!(
        "e2e-eng-{tag}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

fn need_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "engine end-to-end tests need root"
    );
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr in files under `dir`: a daemon an
/// engine starts (conmon, the shim) may inherit them, and a pipe would stay open after the
/// engine's command exits.
fn output(dir: &Path, cmd: &mut Command) -> Output {
    let n = SEQ.fetch_add(1, Ordering::SeqCst);
    let (o, e) = (dir.join(format!("out-{n}")), dir.join(format!("err-{n}")));
    let status = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .status()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    let out = Output {
        status,
        stdout: std::fs::read(&o).unwrap(),
        stderr: std::fs::read(&e).unwrap(),
    };
    let _ = std::fs::remove_file(&o);
    let _ = std::fs::remove_file(&e);
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Panics with the command's output unless it succeeded; returns its stdout.
#[track_caller]
fn ok(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what}: {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[track_caller]
fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Pids of the processes whose command line mentions `needle` (a path unique to one test),
/// other than this process.
fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

fn kill(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Whether `pid` is gone or a zombie (engines' daemons are reparented to PID 1, which
/// reaps them when it will).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// SIGKILLs each pid and waits (bounded) until it is dead.
fn kill_and_wait(pids: &[i32]) {
    for &pid in pids {
        kill(pid);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| dead(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The cgroup directories of `rel` (e.g. `berth/x`) in every mounted hierarchy.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    let mut out: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| d.flatten().map(|e| e.path().join(rel)).collect())
        .unwrap_or_default();
    out.push(Path::new("/sys/fs/cgroup").join(rel));
    out.retain(|p| p.is_dir());
    out
}

/// Every directory of the tree at `dir`, children before their parents.
fn depth_first(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                depth_first(&e.path(), out);
            }
        }
    }
    out.push(dir.to_path_buf());
}

/// Kills every process in the cgroup tree `rel` (all hierarchies), then removes the tree.
fn remove_cgroup_tree(rel: &str) {
    let mut dirs = Vec::new();
    for top in cgroup_dirs(rel) {
        depth_first(&top, &mut dirs);
    }
    let mut pids = Vec::new();
    for d in &dirs {
        // Thaw first: a frozen task does not die.
        let _ = std::fs::write(d.join("freezer.state"), "THAWED");
        let _ = std::fs::write(d.join("cgroup.freeze"), "0");
        if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    kill_and_wait(&pids);
    for d in &dirs {
        for _ in 0..50 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

/// Mount points at or under `dir` in this mount namespace, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.to_string_lossy().into_owned();
    let mut out: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .filter(|p| p == &prefix || p.starts_with(&format!("{prefix}/")))
        .map(PathBuf::from)
        .collect();
    out.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    out.dedup();
    out
}

/// Detaches every mount at or under `dir` (repeatedly: mounts can be stacked).
fn unmount_under(dir: &Path) {
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            return;
        }
        for m in mounts {
            let _ = rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

#[cfg(test)]
mod helper_tests {
    use super::*;

    /// Kills and reaps the child on drop, pass or fail.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn engines_helpers_find_and_kill_a_process_by_a_unique_path() {
        let dir = tempfile::tempdir().unwrap();
        let needle = dir.path().join(unique("needle"));
        let needle = needle.to_str().unwrap();
        let mut child = Reaped(
            // `read` is a builtin: one process, no grandchild holding our stdout.
            Command::new("sh")
                .arg("-c")
                .arg("read x; : \"$0\"")
                .arg(needle)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Until the child has exec'd sh, its command line is this test binary's.
        wait_until("the child's command line", Duration::from_secs(10), || {
            !pids_mentioning(needle).is_empty()
        });
        let pids = pids_mentioning(needle);
        assert_eq!(pids, vec![child.0.id() as i32]);
        kill_and_wait(&pids);
        assert!(dead(pids[0]));
        assert!(!child.0.wait().unwrap().success());
        assert!(pids_mentioning(needle).is_empty());
    }
}
