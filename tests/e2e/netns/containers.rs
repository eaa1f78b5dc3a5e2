//! Containers joining a namespace berth-netns made see the address CNI gave: a bundle from
//! `runc spec`, and one from `berth-mkbundle --netns`.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use super::world::World;

/// Removes a runc container and its state directory on drop.
struct RuncContainer {
    root: PathBuf,
    id: String,
}

impl Drop for RuncContainer {
    fn drop(&mut self) {
        let _ = Command::new("runc")
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_runc_container_joining_the_namespace_has_the_cni_address() {
    let mut w = World::new();
    w.write_list(false, &[]);
    let (name, _, ip) = w.add("r", &[]);

    // A minimal bundle: static busybox as the rootfs, `runc spec`, the network namespace
    // path set to the one berth-netns made.
    let bundle = w.path("bundle");
    fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        spec.status.success(),
        "runc spec: {}",
        String::from_utf8_lossy(&spec.stderr)
    );
    let mut config: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] =
        serde_json::json!(["/bin/busybox", "ip", "-o", "-4", "addr", "show"]);
    config["root"]["readonly"] = Value::Bool(true);
    config["linux"]["cgroupsPath"] = Value::String(format!("/berth/netns-e2e-{:x}", w.key));
    for ns in config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = Value::String(format!("/run/netns/{name}"));
        }
    }
    fs::write(bundle.join("config.json"), config.to_string()).unwrap();

    let ctr = RuncContainer {
        root: w.path("runc"),
        id: format!("netns-e2e-{:x}", w.key),
    };
    let out = Command::new("runc")
        .arg("--root")
        .arg(&ctr.root)
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&ctr.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "runc run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.lines()
            .any(|l| l.contains("eth0") && l.contains(&format!("inet {ip}/24"))),
        "the container does not see {ip}: {seen}"
    );
    drop(ctr);
    w.netns_ok(&["del", &name]);
}

/// A bundle made by berth-mkbundle, run by a runtime; deleted and removed on drop.
struct MkBundle {
    root: PathBuf,
    bundle: PathBuf,
    runc_root: PathBuf,
    runtime: String,
    id: String,
}

impl Drop for MkBundle {
    fn drop(&mut self) {
        let program = if self.runtime == "runc" {
            PathBuf::from("runc")
        } else {
            berth_testkit::bin_path(&self.runtime)
        };
        let _ = Command::new(program)
            .arg("--root")
            .arg(&self.runc_root)
            .args(["delete", "--force", &self.id])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new(berth_testkit::bin_path("berth-mkbundle"))
            .arg("--root")
            .arg(&self.root)
            .arg("--remove")
            .arg(&self.bundle)
            .output();
        // Never let the temp dir removal walk into a mounted rootfs.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.bundle.join("rootfs"))
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn a_berth_mkbundle_container_with_netns_has_the_cni_address() {
    mkbundle_container_sees_the_address("runc");
}

// Once seen failing with "its init exited before start" while berth-run was being rebuilt
// under it; not reproduced in 1,000+ runs since, and `run` now reports the init's own error.
#[test]
fn a_berth_mkbundle_container_run_by_berth_run_has_the_cni_address() {
    mkbundle_container_sees_the_address("berth-run");
}

/// berth-netns add, then berth-mkbundle --netns, then RUNTIME run (runc or berth-run, which
/// share a command line): the container sees the address CNI gave.
fn mkbundle_container_sees_the_address(runtime: &str) {
    let mut w = World::new();
    w.write_list(false, &[]);
    let (name, _, ip) = w.add("m", &[]);

    // The fixture image into a berth root, unpacked, and a bundle that joins the namespace.
    let root = w.path("root");
    fs::create_dir(&root).unwrap();
    let src = format!(
        "oci:{}:busybox:gzip",
        berth_testkit::fixtures::layout().display()
    );
    let dest = format!("oci:{}:busybox:gzip", root.join("content").display());
    let copy = Command::new("skopeo")
        .args(["copy", "-q", &src, &dest])
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let unpack = Command::new(berth_testkit::bin_path("berth-unpack"))
        .arg("--root")
        .arg(&root)
        .arg("busybox:gzip")
        .output()
        .unwrap();
    assert!(
        unpack.status.success(),
        "berth-unpack: {}",
        String::from_utf8_lossy(&unpack.stderr)
    );
    let ctr = MkBundle {
        bundle: w.path(&format!("bundle-{:x}", w.key)),
        runc_root: w.path("runtime-state"),
        runtime: runtime.to_string(),
        id: format!("netns-mkb-{:x}", w.key),
        root,
    };
    let netns_path = format!("/run/netns/{name}");
    let made = Command::new(berth_testkit::bin_path("berth-mkbundle"))
        .arg("--root")
        .arg(&ctr.root)
        .arg("--bundle")
        .arg(&ctr.bundle)
        .args([
            "--netns",
            &netns_path,
            "busybox:gzip",
            "--",
            "sh",
            "-c",
            "ip -o -4 addr show",
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "berth-mkbundle: {}",
        String::from_utf8_lossy(&made.stderr)
    );

    let program = if runtime == "runc" {
        PathBuf::from("runc")
    } else {
        berth_testkit::bin_path(runtime)
    };
    let out = Command::new(program)
        .arg("--root")
        .arg(&ctr.runc_root)
        .args(["run", "--bundle"])
        .arg(&ctr.bundle)
        .arg(&ctr.id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{runtime} run: {seen}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        seen.lines()
            .any(|l| l.contains("eth0") && l.contains(&format!("inet {ip}/24"))),
        "the container does not see {ip}: {seen}"
    );
    drop(ctr);
    w.netns_ok(&["del", &name]);
}
