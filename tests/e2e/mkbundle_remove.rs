//! `berth-mkbundle --remove` against hostile bundles: whatever the container wrote to its
//! upper layer (symlinks pointing out, hard links, odd names, a deep tree, more entries than
//! the fds a removal holds), a mount inside the bundle, and the detached process that closes
//! the removed files (nobody waits for it, not even a `$(…)` in a shell).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use rustix::fs as rfs;

use super::*;

/// More than the fds one removal holds (crates/spec: `HOLD_MAX`, 1024).
const MANY: usize = 1500;
/// Deeper than the directories the walk keeps open (crates/spec: `MAX_DEPTH`, 64).
const DEEP: usize = 200;

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("running a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every path under `dir` with its size (symlinks not followed), sorted.
fn listing(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((e.path(), m.len()));
        }
    }
    out.sort();
    out
}

#[test]
fn remove_deletes_a_hostile_upper_and_nothing_outside() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let outside = env.tmp.path().join(unique("outside"));
    std::fs::create_dir_all(outside.join("dir")).unwrap();
    std::fs::write(outside.join("keep"), "keep").unwrap();
    std::fs::write(outside.join("dir/inner"), "inner").unwrap();
    let outside_before = listing(&outside);
    let snapshots = env.root().join("snapshots/sha256");
    let lowers_before = listing(&snapshots);

    let bundle = env.make("hostile", &["busybox:gzip"]);
    let rootfs = bundle.join("rootfs");
    // What a container could write, through the overlay into the upper layer.
    std::fs::create_dir(rootfs.join("many")).unwrap();
    for i in 0..MANY {
        std::fs::write(rootfs.join(format!("many/f{i}")), "x").unwrap();
    }
    let mut deep = rootfs.join("deep");
    for _ in 0..DEEP {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("leaf"), "leaf").unwrap();
    symlink(&outside, rootfs.join("out-dir")).unwrap();
    symlink(outside.join("keep"), rootfs.join("out-file")).unwrap();
    symlink("../../../../../../../../..", rootfs.join("up")).unwrap();
    symlink(&outside, deep.join("out-deep")).unwrap();
    std::fs::write(rootfs.join(OsStr::from_bytes(b"odd\nname \xff\x01")), "odd").unwrap();
    run(Command::new("mkfifo").arg(rootfs.join("fifo")));
    // A whiteout (a 0/0 character device in the upper) for a file of the image.
    std::fs::remove_file(rootfs.join("etc/group")).unwrap();
    // A hard link to a file outside, made in the upper directly (same filesystem).
    std::fs::hard_link(outside.join("keep"), bundle.join("upper/hard")).unwrap();

    let out = env.mkbundle(&["--json", "--remove", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"], true, "{v}");
    assert!(!bundle.exists() && !mounted_under(&bundle));
    // Nothing outside the bundle was touched: not through a symlink, not the hard link's
    // other name, not the image's layers.
    assert_eq!(listing(&outside), outside_before);
    assert_eq!(
        std::fs::read_to_string(outside.join("keep")).unwrap(),
        "keep"
    );
    let layers = |l: Vec<(PathBuf, u64)>| -> Vec<(PathBuf, u64)> {
        // users/ (the leases) comes and goes; every layer file is still there, unchanged.
        l.into_iter()
            .filter(|(p, _)| !p.components().any(|c| c.as_os_str() == "users"))
            .collect()
    };
    assert_eq!(layers(listing(&snapshots)), layers(lowers_before));
    // Safe to run twice.
    let out = env.mkbundle(&["--json", "--remove", bundle.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["removed"], false, "{v}");
}

#[test]
fn a_mount_inside_the_bundle_stops_removal_and_a_later_remove_finishes() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let bundle = env.make("inner-mount", &["busybox:gzip"]);
    std::fs::create_dir_all(bundle.join("rootfs/data/sub")).unwrap();
    std::fs::write(bundle.join("rootfs/data/before"), "x").unwrap();
    let mnt = bundle.join("upper/data/sub");
    run(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(&mnt));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).output();
        }
    }
    let guard = Unmount(mnt.clone());
    std::fs::write(mnt.join("precious"), "keep").unwrap();

    let out = env.mkbundle(&["--remove", bundle.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "not one line: {err}");
    assert!(err.contains("busy"), "{err}");
    assert!(err.contains("data/sub"), "{err}");
    // Never walked into the other filesystem; the bundle keeps what makes it a bundle.
    assert_eq!(
        std::fs::read_to_string(mnt.join("precious")).unwrap(),
        "keep"
    );
    assert!(bundle.join("config.json").is_file());
    assert!(bundle.join("berth-bundle.json").is_file());
    assert!(!mounted_under(&bundle.join("rootfs")));

    run(Command::new("umount").arg(&mnt));
    drop(guard);
    let out = env.mkbundle(&["--remove", bundle.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!bundle.exists());
    let snaps = Snapshots::open(&env.root()).unwrap();
    for s in snaps.list().unwrap() {
        assert!(s.users.is_empty(), "{s:?}");
    }
}

/// A small ext4 filesystem on a loop device, mounted in the test's directory (its free
/// blocks change only by what the test does); unmounted on drop, waiting for whoever still
/// holds a file in it.
struct LoopFs {
    mnt: PathBuf,
}

impl LoopFs {
    fn new(dir: &Path) -> LoopFs {
        let img = dir.join(unique("ext4.img"));
        let mnt = dir.join(unique("ext4"));
        std::fs::create_dir(&mnt).unwrap();
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(64 << 20).unwrap();
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
        LoopFs { mnt }
    }

    fn free_blocks(&self) -> u64 {
        rfs::statvfs(&self.mnt).unwrap().f_bfree
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = Command::new("umount")
            .args(["-l"])
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .output();
    }
}

/// A child process, killed and reaped on drop.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Live (not zombie) processes running `argv0` with `needle` in their command line.
fn live_processes_with(argv0: &Path, needle: &[u8]) -> Vec<u32> {
    let mut head = argv0.as_os_str().as_bytes().to_vec();
    head.push(0);
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.as_bytes()[0]);
        if state != Some(b'Z')
            && cmdline.starts_with(&head)
            && cmdline.windows(needle.len()).any(|w| w == needle)
        {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn remove_in_a_shell_substitution_does_not_wait_for_the_detached_process() {
    // The removed files are closed by a detached process. strace holds that process for
    // 5 s (its first and only `read`, on the pipe it waits on; every process's first read is
    // delayed, which for the others is at start-up). `$(berth-mkbundle --remove DIR)` must
    // return meanwhile: the detached process holds neither stdout nor stderr. Until it is
    // let go, the removed files' blocks are not free; then they are.
    let mut env = Env::new().with_fixture("busybox:gzip");
    let fs = LoopFs::new(env.tmp.path());
    let bundle = fs.mnt.join(unique("b"));
    env.bundles.push(bundle.clone());
    let out = env.mkbundle(&["--bundle", bundle.to_str().unwrap(), "busybox:gzip"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    const BIG: u64 = 4 << 20;
    std::fs::write(bundle.join("rootfs/big"), vec![1u8; BIG as usize]).unwrap();
    run(Command::new("sync").arg("-f").arg(&fs.mnt));
    let before = fs.free_blocks();
    let big_blocks = BIG / rfs::statvfs(&fs.mnt).unwrap().f_frsize;

    let result = env.tmp.path().join(unique("result"));
    let script = format!(
        "out=$('{}' --json --remove '{}'); printf '%s\\n' \"$out\" > '{}'",
        bin_path("berth-mkbundle").display(),
        bundle.display(),
        result.display()
    );
    let strace = Reaped(
        Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=read"])
            .args(["-e", "inject=read:delay_enter=5000000:when=1"])
            .args(["sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("running strace (scripts/setup)"),
    );
    wait_for("the shell to finish", Duration::from_secs(30), || {
        std::fs::read(&result).is_ok_and(|r| r.ends_with(b"\n"))
    });
    // The shell is done; --remove and its intermediate child have exited. What is left with
    // the bundle's path in its command line is the detached process, still held by strace.
    let holders = live_processes_with(&bin_path("berth-mkbundle"), bundle.as_os_str().as_bytes());
    assert_eq!(holders.len(), 1, "the detached process: {holders:?}");
    let proc_dir = PathBuf::from(format!("/proc/{}", holders[0]));
    let mut pipes = 0;
    for e in std::fs::read_dir(proc_dir.join("fd")).unwrap().flatten() {
        let fd: u32 = e.file_name().to_string_lossy().parse().unwrap();
        let target = std::fs::read_link(e.path()).unwrap();
        let target = target.to_string_lossy();
        if fd <= 2 {
            assert_eq!(target, "/dev/null", "fd {fd}");
        } else if target.starts_with("pipe:") {
            pipes += 1;
        } else {
            assert!(target.ends_with("(deleted)"), "fd {fd}: {target}");
        }
    }
    assert_eq!(pipes, 1, "only the pipe it waits on");
    assert_eq!(
        std::fs::read_link(proc_dir.join("cwd")).unwrap(),
        Path::new("/")
    );
    // A session of its own (made by its parent, the intermediate child, with setsid).
    let pgrp_session = |stat: &Path| -> (String, String) {
        let stat = std::fs::read_to_string(stat).unwrap();
        let f: Vec<String> = stat
            .rsplit_once(") ")
            .unwrap()
            .1
            .split(' ')
            .map(String::from)
            .collect();
        (f[2].clone(), f[3].clone())
    };
    let (pgrp, session) = pgrp_session(&proc_dir.join("stat"));
    assert_eq!(pgrp, session, "not in the group of its session's leader");
    assert_ne!(session, pgrp_session(Path::new("/proc/self/stat")).1);

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert_eq!(v["removed"], true, "{v}");
    assert!(!bundle.exists() && !mounted_under(&bundle));
    // Held: the big file's blocks are not free yet; once let go, they are.
    assert!(
        fs.free_blocks() < before + big_blocks / 2,
        "the blocks were freed while the detached process held them"
    );
    wait_for("the blocks to be freed", Duration::from_secs(30), || {
        fs.free_blocks() >= before + big_blocks
    });
    drop(strace);
}
