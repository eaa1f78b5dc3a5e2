//! berth-run end to end, as root: the mount options `runc features` lists beyond the usual
//! flags — `tmpcopyup`, `nosymfollow`, the recursive `rrw`/`rnodev`/`rnoatime`/
//! `rnosymfollow` applied to a submount — and the mode of a tmpfs laid over a directory the
//! image has. Where runc 1.1.5 agrees, the same bundle runs under both and the outputs are
//! compared; where berth-run deliberately differs (docs/security.md), berth-run's answer is
//! checked on its own.

use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::lab::{minimal_config, stderr, Bundle, Lab, Rt};

fn unique(tag: &str) -> String {
    crate::lab::unique_with("e2e-m", tag)
}

/// A read-only tmpfs mounted on the host for the test, unmounted on drop (declare it after
/// the Lab, so that it goes first).
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs_ro(at: &Path) -> HostMount {
        std::fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mounting a tmpfs at {}", at.display());
        HostMount(at.to_path_buf())
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A rootfs /seed holding a file with an owner and set-id mode, an owned subdirectory and a
/// symlink pointing out of the rootfs.
fn seed(bundle: &Path) {
    let seed = bundle.join("rootfs/seed");
    std::fs::create_dir_all(seed.join("sub")).unwrap();
    std::fs::write(seed.join("f"), "hi\n").unwrap();
    chown(seed.join("f"), Some(123), Some(456)).unwrap();
    std::fs::set_permissions(seed.join("f"), PermissionsExt::from_mode(0o4640)).unwrap();
    chown(seed.join("sub"), Some(7), Some(8)).unwrap();
    symlink("/etc/shadow", seed.join("link")).unwrap();
    std::fs::set_permissions(&seed, PermissionsExt::from_mode(0o750)).unwrap();
}

const SHOW: &str = "cd /seed && stat -c '%n %a %u %g %F' . * && readlink link && \
                    awk '$5 ~ /^\\/(seed|h)/ {print $5, $6}' /proc/self/mountinfo";

#[test]
fn tmpcopyup_and_recursive_options_match_runc() {
    let lab = Lab::new();
    let host = lab.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let _sub = HostMount::tmpfs_ro(&host.join("sub"));
    let (b_id, r_id) = (unique("copyup"), unique("copyup-runc"));
    let mut config = minimal_config(&format!("/berth/{b_id}"), &["sh", "-c", SHOW]);
    let mounts = config["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/seed", "type": "tmpfs", "source": "tmpfs",
                       "options": ["tmpcopyup", "nosymfollow", "size=1m"]}),
    );
    mounts.push(json!({"destination": "/h", "type": "bind", "source": host,
                       "options": ["rbind", "rnoatime", "rnosymfollow", "rrw", "rnodev"]}));
    let bundle = Bundle::new(lab.path().join("bundle"))
        .applets(&["sh", "stat", "readlink", "awk"])
        .dirs(&["proc", "dev"])
        .write(&config);
    seed(&bundle);

    let berth = lab.berth_run(&b_id, &bundle);
    assert!(berth.status.success(), "berth-run: {}", stderr(&berth));
    let runc = lab.runc_run(&r_id, &bundle);
    assert!(runc.status.success(), "runc: {}", stderr(&runc));
    let seen = String::from_utf8(berth.stdout).unwrap();
    assert_eq!(seen, String::from_utf8(runc.stdout).unwrap());
    for line in [
        ". 750 0 0 directory",
        "f 4640 123 456 regular file",
        "link 777 0 0 symbolic link",
        "sub 755 7 8 directory",
        "/etc/shadow",
        "/seed rw,relatime,nosymfollow",
        "/h rw,nodev,noatime,nosymfollow",
        "/h/sub rw,nodev,noatime,nosymfollow",
    ] {
        assert!(
            seen.lines().any(|l| l == line),
            "{line:?} missing from\n{seen}"
        );
    }
    // The host's submount is untouched: still read-only outside.
    let outside = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sub = host.join("sub");
    let sub = sub.to_str().unwrap();
    assert!(
        outside
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(sub)
                && l.split(' ').nth(5).unwrap().starts_with("ro")),
        "the host mount {sub} changed"
    );
}

#[test]
fn tmpfs_modes_fifos_and_leaving_an_access_time_mode() {
    let lab = Lab::new();
    let id = unique("modes");
    let show = "stat -c '%n %a %F' /t1 /t2 /t3 /seed/fifo && \
                awk '$5 == \"/r\" {print $5, $6}' /proc/self/mountinfo";
    let mut config = minimal_config(&format!("/berth/{id}"), &["sh", "-c", show]);
    let mounts = config["mounts"].as_array_mut().unwrap();
    for (dest, options) in [
        ("/t1", json!(["mode=1777"])),
        ("/t2", json!([])),
        ("/t3", json!(["mode=700"])),
        ("/seed", json!(["tmpcopyup"])),
    ] {
        mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }
    let source = lab.path().join("r");
    std::fs::create_dir(&source).unwrap();
    mounts.push(
        json!({"destination": "/r", "type": "bind", "source": source,
                       "options": ["rbind", "rnoatime", "ratime"]}),
    );
    let bundle = Bundle::new(lab.path().join("bundle"))
        .applets(&["sh", "stat", "awk"])
        .dirs(&["proc", "dev", "t1", "t2", "seed"])
        .write(&config);
    for (dir, mode) in [("t1", 0o700), ("t2", 0o755)] {
        let dir = bundle.join("rootfs").join(dir);
        std::fs::set_permissions(dir, PermissionsExt::from_mode(mode)).unwrap();
    }
    let fifo = bundle.join("rootfs/seed/fifo");
    let st = Command::new("mkfifo")
        .args(["-m", "0640"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());

    let out = lab.call(
        Rt::Berth,
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
    );
    assert!(out.status.success(), "berth-run: {}", stderr(&out));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "/t1 1777 directory\n/t2 755 directory\n/t3 700 directory\n\
         /seed/fifo 640 fifo\n/r rw,relatime\n",
        "mode= wins over the directory's mode; without it the directory's mode; a fifo is \
         copied up; ratime after rnoatime gives relatime"
    );
}

#[test]
fn a_tmpcopyup_tree_too_deep_is_one_line_and_leaves_nothing() {
    let lab = Lab::new();
    let id = unique("deep");
    let mut config = minimal_config(&format!("/berth/{id}"), &["true"]);
    config["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/seed", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}),
    );
    let bundle = Bundle::new(lab.path().join("bundle"))
        .applets(&["true"])
        .dirs(&["proc", "dev"])
        .write(&config);
    let mut deep = bundle.join("rootfs/seed");
    for _ in 0..300 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();

    let out = lab.call(
        Rt::Berth,
        &["run", "--bundle", bundle.to_str().unwrap(), &id],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("mount /seed: tmpcopyup") && err.contains("deeper than 256"),
        "{err}"
    );
    let state = lab.berth(&["state", &id]);
    assert!(!state.status.success(), "no state is left");
    for dir in crate::lab::cgroup_dirs(&format!("/berth/{id}")) {
        assert!(!dir.exists(), "{} is left", dir.display());
    }
}
