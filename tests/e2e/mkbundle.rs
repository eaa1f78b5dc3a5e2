//! berth-mkbundle end to end: bundles made from fixture images run under Debian's `runc run`
//! (the oracle that the spec is valid and means what we think), and what the container sees
//! is checked with busybox inside it. Each test has its own berth root, runc root, bundle
//! and container id; bundles are removed (unmounted) on drop, pass or fail.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, Context, Result};
use berth_snapshot::Snapshots;
use berth_testkit::{bin_path, fixtures};
use sha2::{Digest as _, Sha256};

#[path = "mkbundle_remove.rs"]
mod remove;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A berth root with images unpacked into snapshots, and a runc root beside it.
struct Env {
    tmp: tempfile::TempDir,
    bundles: Vec<PathBuf>,
}

fn unique(name: &str) -> String {
    format!(
        "mkb-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("berth-mkbundle-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(tmp.path().join("root")).expect("creating the berth root");
        Env {
            tmp,
            bundles: Vec::new(),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }

    /// Copies a fixture into the store with skopeo (as a user would) and unpacks it.
    fn with_fixture(self, name: &str) -> Env {
        let dest = format!("oci:{}:{name}", self.root().join("content").display());
        let src = format!("oci:{}:{name}", fixtures::layout().display());
        let out = Command::new("skopeo")
            .args(["copy", "-q", &src, &dest])
            .output()
            .expect("running skopeo");
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.unpack(name).expect("unpacking the fixture");
        self
    }

    /// Unpacks an image of the store into snapshots with berth-unpack.
    fn unpack(&self, name: &str) -> Result<()> {
        let out = Command::new(bin_path("berth-unpack"))
            .arg("--root")
            .arg(self.root())
            .arg(name)
            .output()
            .context("running berth-unpack")?;
        if !out.status.success() {
            bail!(
                "berth-unpack {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// A fresh bundle path (not created), removed on drop.
    fn bundle_path(&mut self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(unique(name));
        self.bundles.push(p.clone());
        p
    }

    fn mkbundle(&self, args: &[&str]) -> Output {
        Command::new(bin_path("berth-mkbundle"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .expect("running berth-mkbundle")
    }

    /// Makes a bundle and returns its path; panics with stderr on failure.
    fn make(&mut self, name: &str, args: &[&str]) -> PathBuf {
        let bundle = self.bundle_path(name);
        let mut all = vec!["--bundle", bundle.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = self.mkbundle(&all);
        assert!(
            out.status.success(),
            "berth-mkbundle {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            bundle.to_str().unwrap()
        );
        bundle
    }

    /// `runc run` of a bundle; returns (exit code, stdout + stderr).
    fn runc(&self, bundle: &Path) -> (i32, String) {
        let id = bundle.file_name().unwrap().to_str().unwrap().to_string();
        let out = Command::new("runc")
            .arg("--root")
            .arg(self.tmp.path().join("runc"))
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("running runc");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    /// Makes a bundle running `sh -c SCRIPT`, runs it, checks it exited 0, returns its output.
    fn run_sh(&mut self, name: &str, args: &[&str], script: &str) -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["busybox:gzip", "--", "sh", "-c", script]);
        let bundle = self.make(name, &all);
        let (code, out) = self.runc(&bundle);
        assert_eq!(code, 0, "container failed: {out}");
        out
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for b in &self.bundles {
            let id = b.file_name().unwrap().to_str().unwrap();
            let _ = Command::new("runc")
                .arg("--root")
                .arg(self.tmp.path().join("runc"))
                .args(["delete", "--force", id])
                .output();
            let _ = Command::new(bin_path("berth-mkbundle"))
                .arg("--remove")
                .arg(b)
                .output();
            // Never let the temp dir removal walk into a mounted rootfs.
            let _ = Command::new("umount")
                .args(["-l"])
                .arg(b.join("rootfs"))
                .stderr(Stdio::null())
                .output();
        }
    }
}

fn mounted_under(dir: &Path) -> bool {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = dir.to_str().unwrap();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(d)))
}

fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix:?} in:\n{out}"))
}

#[test]
fn default_bundle_runs_under_runc_with_containerds_defaults() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let out = env.run_sh(
        "defaults",
        &[],
        "id; echo host=$(hostname); grep -E '^(CapEff|CapBnd|Seccomp|NoNewPrivs):' /proc/self/status; \
         echo nofile=$(ulimit -n); echo path=$PATH; echo cwd=$(pwd); cat /proc/self/mountinfo; \
         echo timer_list=$(wc -c < /proc/timer_list) firmware=$(ls /sys/firmware | wc -l); \
         if echo 1 > /proc/sys/kernel/domainname 2>/dev/null; then echo procsys=rw; else echo procsys=ro; fi; \
         if unshare -U true 2>/dev/null; then echo userns=allowed; else echo userns=denied; fi; \
         if test -c /dev/kmsg; then echo kmsg=yes; else echo kmsg=no; fi",
    );
    assert!(out.contains("uid=0(root) gid=0(root)"), "{out}");
    assert!(
        line(&out, "host=").starts_with("host=mkb-defaults-"),
        "{out}"
    );
    // docker's and containerd's 14 capabilities.
    assert_eq!(
        line(&out, "CapEff:").split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "{out}"
    );
    assert_eq!(
        line(&out, "CapBnd:").split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "{out}"
    );
    assert_eq!(
        line(&out, "Seccomp:").split_whitespace().nth(1),
        Some("2"),
        "{out}"
    );
    assert_eq!(
        line(&out, "NoNewPrivs:").split_whitespace().nth(1),
        Some("0"),
        "{out}"
    );
    assert_eq!(line(&out, "nofile="), "nofile=1024");
    assert_eq!(
        line(&out, "path="),
        "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    );
    assert_eq!(line(&out, "cwd="), "cwd=/");
    for (mnt, fs) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/", "overlay"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.split(' ').nth(4) == Some(mnt) && l.contains(&format!(" - {fs} "))),
            "{mnt} ({fs}) not mounted:\n{out}"
        );
    }
    assert!(
        out.lines().any(|l| l
            .split(' ')
            .nth(4)
            .is_some_and(|m| m.starts_with("/sys/fs/cgroup"))),
        "{out}"
    );
    // Masked (an empty /dev/null over it) and read-only paths.
    assert_eq!(line(&out, "timer_list="), "timer_list=0 firmware=0");
    assert_eq!(line(&out, "procsys="), "procsys=ro");
    // The default seccomp profile denies a new user namespace (no CAP_SYS_ADMIN).
    assert_eq!(line(&out, "userns="), "userns=denied");
    // Only the runtime's standard devices; no host device such as /dev/kmsg.
    assert_eq!(line(&out, "kmsg="), "kmsg=no");

    let unconfined = env.run_sh(
        "unconfined",
        &["--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges"],
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; if unshare -U true; then echo userns=allowed; else echo userns=denied; fi",
    );
    assert_eq!(
        line(&unconfined, "Seccomp:").split_whitespace().nth(1),
        Some("0"),
        "{unconfined}"
    );
    assert_eq!(
        line(&unconfined, "NoNewPrivs:").split_whitespace().nth(1),
        Some("1"),
        "{unconfined}"
    );
    assert_eq!(
        line(&unconfined, "userns="),
        "userns=allowed",
        "{unconfined}"
    );
}

#[test]
fn user_workdir_env_hostname_and_limits_reach_the_container() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let id = unique("limits");
    let cgroup = format!("/sys/fs/cgroup/memory/berth/{id}");
    let out = env.run_sh(
        "limits",
        &[
            "--id", &id, "--user", "app", "--workdir", "/home/app/work", "-e", "GREETING=hello", "--hostname", "web-1",
            "--memory", "64m", "--pids-limit", "20", "--ulimit", "nofile=100:200", "--cpus", "0.5",
        ],
        "id; echo cwd=$(pwd); echo greeting=$GREETING home=$HOME; echo host=$(hostname); \
         grep -E '^(CapEff|CapBnd):' /proc/self/status; echo soft=$(ulimit -Sn) hard=$(ulimit -Hn); \
         echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes); echo pids=$(cat /sys/fs/cgroup/pids/pids.max); \
         echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); touch /home/app/work/mine && echo owned",
    );
    // app is uid 1000 with the supplementary group `extra` from the image's /etc/group.
    assert!(
        line(&out, "uid=").starts_with("uid=1000(app) gid=1000(app) groups=1001(extra)"),
        "{out}"
    );
    assert_eq!(line(&out, "cwd="), "cwd=/home/app/work");
    assert_eq!(line(&out, "greeting="), "greeting=hello home=/home/app");
    assert_eq!(line(&out, "host="), "host=web-1");
    // A non-root user keeps the capabilities only in its bounding set, as with docker.
    assert_eq!(
        line(&out, "CapEff:").split_whitespace().nth(1),
        Some("0000000000000000"),
        "{out}"
    );
    assert_eq!(
        line(&out, "CapBnd:").split_whitespace().nth(1),
        Some("00000000a80425fb"),
        "{out}"
    );
    assert_eq!(line(&out, "soft="), "soft=100 hard=200");
    assert_eq!(line(&out, "mem="), "mem=67108864");
    assert_eq!(line(&out, "pids="), "pids=20");
    assert_eq!(line(&out, "quota="), "quota=50000");
    assert!(
        out.contains("owned"),
        "the working directory is not the user's: {out}"
    );
    // runc placed the container under /berth/<id> and removed it on exit.
    assert!(!Path::new(&cgroup).exists(), "{cgroup} left behind");
}

#[test]
fn read_only_root_tmpfs_bind_mounts_and_capabilities() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let shared = env.tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("from-host"), "hi from the host\n").unwrap();
    let bind_ro = format!(
        "type=bind,source={},target=/host,readonly",
        shared.display()
    );
    let out = env.run_sh(
        "mounts",
        &[
            "--read-only", "--tmpfs", "/scratch:size=1m", "--mount", &bind_ro, "--mount",
            "type=tmpfs,target=/cache,tmpfs-mode=1777", "--cap-drop", "ALL", "--cap-add", "KILL,CHOWN",
        ],
        "if touch /newfile 2>/dev/null; then echo root=rw; else echo root=ro; fi; \
         touch /scratch/x && echo scratch=rw; touch /cache/x && echo cache=rw; cat /host/from-host; \
         if touch /host/x 2>/dev/null; then echo host=rw; else echo host=ro; fi; \
         grep -E '^CapEff:' /proc/self/status; grep ' /scratch ' /proc/self/mountinfo",
    );
    assert_eq!(line(&out, "root="), "root=ro");
    assert_eq!(line(&out, "scratch="), "scratch=rw");
    assert_eq!(line(&out, "cache="), "cache=rw");
    assert!(out.contains("hi from the host"), "{out}");
    assert_eq!(line(&out, "host="), "host=ro");
    // CAP_CHOWN (0) and CAP_KILL (5).
    assert_eq!(
        line(&out, "CapEff:").split_whitespace().nth(1),
        Some("0000000000000021"),
        "{out}"
    );
    assert!(out.contains("size=1024k"), "{out}");
    assert!(!shared.join("x").exists());
}

#[test]
fn image_from_stdin_json_output_and_remove_twice() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let bundle = env.bundle_path("json");
    let mut child = Command::new(bin_path("berth-mkbundle"))
        .arg("--root")
        .arg(env.root())
        .arg("--bundle")
        .arg(&bundle)
        .args(["--json", "-", "--", "echo", "hi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"busybox:gzip\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bundle"], bundle.to_str().unwrap());
    assert_eq!(v["process"]["args"], serde_json::json!(["echo", "hi"]));
    assert_eq!(v["process"]["user"]["uid"], 0);
    assert!(v["image"].as_str().unwrap().contains("@sha256:"), "{v}");
    assert_eq!(v["volatile"], true, "{v}");
    assert!(v["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["destination"] == "/dev/shm"));
    assert!(mounted_under(&bundle));
    let (code, text) = env.runc(&bundle);
    assert_eq!((code, text.trim()), (0, "hi"));

    // The snapshots are held while the bundle exists and released when it goes.
    let snaps = Snapshots::open(&env.root()).unwrap();
    let chain = v["snapshots"][0].as_str().unwrap().to_string();
    assert_eq!(snaps.users(&chain).unwrap().len(), 1);
    for _ in 0..2 {
        let out = Command::new(bin_path("berth-mkbundle"))
            .arg("--remove")
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!bundle.exists());
        assert!(!mounted_under(&bundle));
    }
    assert!(snaps.users(&chain).unwrap().is_empty());
}

#[test]
fn errors_are_one_line_and_leave_nothing_behind() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let cases: [(&[&str], i32, &str); 7] = [
        (
            &["--user", "mallory", "busybox:gzip"],
            3,
            "unable to find user \"mallory\"",
        ),
        (
            &["--group-add", "ghosts", "busybox:gzip"],
            3,
            "unable to find group \"ghosts\"",
        ),
        (
            &[
                "--mount",
                "type=bind,source=/nonexistent/berth,target=/x",
                "busybox:gzip",
            ],
            3,
            "does not exist",
        ),
        (&["--memory", "lots", "busybox:gzip"], 2, "invalid --memory"),
        (
            &["--ulimit", "nofile=9:1", "busybox:gzip"],
            2,
            "invalid --ulimit",
        ),
        (&["--no-such-flag", "busybox:gzip"], 2, "--no-such-flag"),
        (&["no-such-image:latest"], 3, "not in the content store"),
    ];
    for (args, code, needle) in cases {
        let bundle = env.bundle_path("err");
        let mut all = vec!["--bundle", bundle.to_str().unwrap()];
        all.extend_from_slice(args);
        let out = env.mkbundle(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            1,
            "{args:?}: not one line: {stderr}"
        );
        assert!(
            stderr.starts_with("berth-mkbundle: error: ") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty());
        assert!(!bundle.exists(), "{args:?} left {}", bundle.display());
        assert!(!mounted_under(&bundle));
    }
    // No snapshot is left held by a bundle that was never made.
    let snaps = Snapshots::open(&env.root()).unwrap();
    for info in snaps.list().unwrap() {
        assert!(snaps.users(&info.chain_id).unwrap().is_empty());
    }
}

#[test]
fn host_namespaces_privileged_userns_and_custom_seccomp() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    // A user namespace's root must pass through the bundle's ancestors.
    std::fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();

    // Host namespaces are the test's own; the default ones are new.
    let script = "for n in net uts ipc pid; do echo $n=$(readlink /proc/self/ns/$n); done";
    let host_ns = |n: &str| {
        format!(
            "{n}={}",
            std::fs::read_link(format!("/proc/self/ns/{n}"))
                .unwrap()
                .display()
        )
    };
    let shared = env.run_sh(
        "hostns",
        &["--net", "host", "--uts", "host", "--ipc", "host"],
        script,
    );
    let private = env.run_sh("privns", &[], script);
    for n in ["net", "uts", "ipc"] {
        assert_eq!(line(&shared, &format!("{n}=")), host_ns(n), "{shared}");
        assert_ne!(line(&private, &format!("{n}=")), host_ns(n), "{private}");
    }
    assert_ne!(line(&shared, "pid="), host_ns("pid"), "{shared}");

    let out = env.run_sh(
        "hostpid",
        &["--pid", "host"],
        "echo pid=$$; echo init=$(cat /proc/1/comm)",
    );
    assert_ne!(line(&out, "pid="), "pid=1", "{out}");
    assert_ne!(line(&out, "init="), "init=sh", "{out}");

    let out = env.run_sh(
        "privileged",
        &["--privileged"],
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; grep ' /sys ' /proc/self/mountinfo; \
         test -c /dev/kmsg && echo kmsg=yes",
    );
    // Privileged means every capability this process has (containerd's rule).
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_caps = line(&status, "CapEff:")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        line(&out, "CapEff:").split_whitespace().nth(1),
        Some(host_caps.as_str()),
        "{out}"
    );
    assert_eq!(
        line(&out, "Seccomp:").split_whitespace().nth(1),
        Some("0"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(" /sys ") && l.contains(" rw,")),
        "{out}"
    );
    // The host's devices, as docker's --privileged gives them (the default set has no kmsg).
    assert_eq!(line(&out, "kmsg="), "kmsg=yes", "{out}");

    let out = env.run_sh(
        "userns",
        &["--userns", "0:100000:65536"],
        "cat /proc/self/uid_map /proc/self/gid_map; id -u",
    );
    let maps: Vec<Vec<&str>> = out
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        maps,
        [["0", "100000", "65536"], ["0", "100000", "65536"]],
        "{out}"
    );
    assert_eq!(out.lines().nth(2), Some("0"), "{out}");

    // A user profile in the plain OCI format: everything allowed but mkdir, which fails EACCES.
    let profile = env.tmp.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = env.run_sh(
        "profile",
        &["--security-opt", &opt],
        "mkdir /made 2>&1; echo done",
    );
    assert!(out.contains("Permission denied"), "{out}");
}

/// Writes an image of `n` uncompressed layers (layer i adds /layers/i) into the store.
fn write_many_layers(root: &Path, name: &str, n: usize) -> Result<()> {
    let blobs = root.join("content/blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    std::fs::write(
        root.join("content/oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let put = |bytes: &[u8]| -> Result<String> {
        let hex = hex::encode(Sha256::digest(bytes));
        std::fs::write(blobs.join(&hex), bytes)?;
        Ok(format!("sha256:{hex}"))
    };
    let (mut layers, mut diff_ids) = (Vec::new(), Vec::new());
    for i in 0..n {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        tar.append_data(&mut h, "layers/", std::io::empty())?;
        let body = format!("{i}\n");
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(body.len() as u64);
        tar.append_data(&mut h, format!("layers/{i}"), body.as_bytes())?;
        let bytes = tar.into_inner()?;
        let digest = put(&bytes)?;
        layers.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": bytes.len()}));
        diff_ids.push(digest);
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {
            "Cmd": ["/layers/0"],
            "Volumes": {"/data/vol": {}},
            "Labels": {"org.example.team": "infra"},
            "StopSignal": "SIGQUIT",
            "WorkingDir": "/srv/app",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config)?;
    let config_digest = put(&config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    }))?;
    let manifest_digest = put(&manifest)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": name},
        }],
    });
    std::fs::write(root.join("content/index.json"), serde_json::to_vec(&index)?)?;
    Ok(())
}

#[test]
fn an_image_of_128_layers_mounts() {
    let mut env = Env::new();
    write_many_layers(&env.root(), "many:latest", 128).unwrap();
    env.unpack("many:latest").unwrap();
    let bundle = env.make("many", &["many:latest"]);
    let layers = bundle.join("rootfs/layers");
    let count = std::fs::read_dir(&layers).unwrap().count();
    assert_eq!(count, 128, "every layer is visible through the overlay");
    // Volumes and the working directory become directories; labels and StopSignal annotations.
    assert!(bundle.join("rootfs/data/vol").is_dir());
    assert!(bundle.join("rootfs/srv/app").is_dir());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["annotations"]["org.example.team"], "infra");
    assert_eq!(
        config["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGQUIT"
    );
    assert_eq!(config["process"]["cwd"], "/srv/app");
    // The lowerdir list alone is longer than a page: only lowerdir+ can mount it.
    let list: usize = Snapshots::open(&env.root())
        .unwrap()
        .list()
        .unwrap()
        .iter()
        .map(|i| i.path.as_os_str().len() + 1)
        .sum();
    assert!(
        list > 4096,
        "the test needs a lowerdir list above a page, got {list} bytes"
    );
    let out = Command::new(bin_path("berth-mkbundle"))
        .arg("--remove")
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!mounted_under(&bundle));
}

/// Fails loudly when the oracle is missing, rather than skipping.
#[test]
fn runc_oracle_is_installed() -> Result<()> {
    let out = Command::new("runc")
        .arg("--version")
        .output()
        .context("runc is not installed (scripts/setup)")?;
    if !out.status.success() {
        bail!("runc --version failed");
    }
    Ok(())
}

/// A named network namespace (`ip netns add`), deleted on drop.
struct NetNs(String);

impl NetNs {
    fn new() -> NetNs {
        let name = unique("ns");
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("running ip netns add");
        assert!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        NetNs(name)
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Removes a cgroup parent that runc made under /berth (in every v1 hierarchy, or v2).
struct CgroupParent(String);

impl Drop for CgroupParent {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
            return;
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path().join("berth").join(&self.0))
            .collect();
        dirs.push(Path::new("/sys/fs/cgroup/berth").join(&self.0));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
    }
}

#[test]
fn env_file_entrypoint_group_add_annotations_and_resources_reach_the_container() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let env_file = env.tmp.path().join("app.env");
    std::fs::write(&env_file, "# settings\nFROM_FILE=file\nOVERRIDDEN=file\n\n").unwrap();
    let netns = NetNs::new();
    let parent = CgroupParent(unique("parent"));
    let id = unique("opts");
    let bundle = env.make(
        "opts",
        &[
            "--id", &id, "--env-file", env_file.to_str().unwrap(), "-e", "OVERRIDDEN=flag",
            "--user", "app:app", "--group-add", "extra", "--group-add", "4242",
            "--annotation", "org.example.owner=team-a", "--cgroup-parent", &parent.0,
            "--cpu-shares", "512", "--cpuset-cpus", "0", "--memory", "64m", "--memory-swap", "96m",
            "--shm-size", "8m", "--netns", &netns.path(), "--sysctl", "net.ipv4.ip_forward=1",
            "--entrypoint", "/bin/sh", "busybox:gzip", "--",
            "-c",
            "echo env=$FROM_FILE,$OVERRIDDEN; id; echo args=$0; echo net=$(readlink /proc/self/ns/net); \
             echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); grep ' /dev/shm ' /proc/self/mountinfo; \
             grep -E '^[0-9]+:memory:' /proc/self/cgroup; echo shares=$(cat /sys/fs/cgroup/cpu/cpu.shares); \
             echo cpuset=$(cat /sys/fs/cgroup/cpuset/cpuset.cpus); \
             echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes); \
             grep ' / / ' /proc/self/mountinfo",
        ],
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["annotations"]["org.example.owner"], "team-a");
    assert_eq!(config["process"]["args"][0], "/bin/sh");
    let (code, out) = env.runc(&bundle);
    assert_eq!(code, 0, "container failed: {out}");
    assert_eq!(line(&out, "env="), "env=file,flag");
    // An explicit group drops the image's supplementary groups; --group-add adds its own.
    assert!(
        line(&out, "uid=").starts_with("uid=1000(app) gid=1000(app) groups=1001(extra),4242"),
        "{out}"
    );
    assert_eq!(line(&out, "args="), "args=/bin/sh");
    let ns = std::fs::metadata(netns.path()).unwrap();
    assert_eq!(
        line(&out, "net="),
        format!("net=net:[{}]", std::os::unix::fs::MetadataExt::ino(&ns))
    );
    assert_eq!(line(&out, "fwd="), "fwd=1");
    assert!(out.contains("size=8192k"), "/dev/shm is not 8m: {out}");
    // A relative --cgroup-parent goes under /berth, never under the caller's cgroup.
    assert!(
        out.contains(&format!(":memory:/berth/{}/{id}\n", parent.0)),
        "{out}"
    );
    assert_eq!(line(&out, "shares="), "shares=512");
    assert_eq!(line(&out, "cpuset="), "cpuset=0");
    assert_eq!(line(&out, "memsw="), format!("memsw={}", 96 << 20));
    // The default overlay is volatile (docs/bundles.md, "Durability").
    let root = out
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in mountinfo: {out}"));
    assert!(
        root.contains(" - overlay ") && root.contains("volatile"),
        "{root}"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("berth-bundle.json")).unwrap()).unwrap();
    assert_eq!(record["volatile"], true);
}

#[test]
fn durable_bundle_has_no_volatile_overlay_and_removes_cleanly() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    let bundle = env.make("durable", &["--durable", "busybox:gzip", "--", "true"]);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let rootfs = bundle.join("rootfs");
    let mount = info
        .lines()
        .find(|l| l.split(' ').nth(4) == rootfs.to_str())
        .unwrap_or_else(|| panic!("{} is not mounted", rootfs.display()));
    assert!(!mount.contains("volatile"), "{mount}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("berth-bundle.json")).unwrap()).unwrap();
    assert_eq!(record["volatile"], false);

    // A volatile bundle leaves work/work/incompat/volatile behind; --remove deletes it all,
    // also after a reboot (simulated: the rootfs unmounted under the bundle's feet).
    let volatile = env.make("volatile", &["busybox:gzip", "--", "true"]);
    assert!(volatile.join("work/work/incompat/volatile").is_dir());
    let out = Command::new("umount")
        .arg(volatile.join("rootfs"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for b in [&bundle, &volatile] {
        let out = env.mkbundle(&["--remove", b.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!b.exists() && !mounted_under(b));
    }
}

#[test]
fn tty_bundle_gets_a_terminal_over_runcs_console_socket() {
    use std::io::Read;
    use std::os::fd::AsFd;
    let mut env = Env::new().with_fixture("busybox:gzip");
    let bundle = env.make(
        "tty",
        &[
            "--tty", "busybox:gzip", "--", "sh", "-c",
            "test -t 0 && test -t 1 && echo is-a-tty; echo term=$TERM; echo tty=$(readlink /proc/self/fd/0); echo done",
        ],
    );
    let id = bundle.file_name().unwrap().to_str().unwrap().to_string();
    let sock = env.tmp.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let runc = |args: &[&str]| {
        Command::new("runc")
            .arg("--root")
            .arg(env.tmp.path().join("runc"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("running runc")
    };
    let out = runc(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    assert!(
        out.status.success(),
        "runc create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (conn, _) = listener.accept().unwrap();
    let master = berth_sys::recv_fd(conn.as_fd()).unwrap();
    let out = runc(&["start", &id]);
    assert!(
        out.status.success(),
        "runc start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read until the container is done (EIO once the last slave fd closes).
    let mut f = std::fs::File::from(master);
    let (mut text, mut buf) = (String::new(), [0u8; 256]);
    while !text.contains("done") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("is-a-tty"), "{text}");
    assert!(text.contains("term=xterm"), "{text}");
    assert!(text.contains("tty=/dev/pts/"), "{text}");
}

#[test]
fn userns_maps_a_non_root_user_and_separate_gid_maps() {
    let mut env = Env::new().with_fixture("busybox:gzip");
    // A user namespace's root must pass through the bundle's ancestors.
    std::fs::set_permissions(
        env.tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let out = env.run_sh(
        "userns-app",
        &[
            "--userns",
            "uid=0:100000:65536;gid=0:200000:65536",
            "--user",
            "app",
        ],
        "echo uidmap=$(cat /proc/self/uid_map); echo gidmap=$(cat /proc/self/gid_map); id; \
         echo owner=$(stat -c %u:%g /bin/busybox); grep -E '^CapEff:' /proc/self/status",
    );
    let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
    assert_eq!(
        words(line(&out, "uidmap=")),
        ["uidmap=", "0", "100000", "65536"],
        "{out}"
    );
    assert_eq!(
        words(line(&out, "gidmap=")),
        ["gidmap=", "0", "200000", "65536"],
        "{out}"
    );
    assert!(
        line(&out, "uid=").starts_with("uid=1000(app) gid=1000(app) groups=1001(extra)"),
        "{out}"
    );
    // The image's files are not chowned: owned by host root, unmapped in the namespace.
    assert_eq!(line(&out, "owner="), "owner=65534:65534", "{out}");
    assert_eq!(
        line(&out, "CapEff:").split_whitespace().nth(1),
        Some("0000000000000000"),
        "{out}"
    );
}
