//! berth-unpack against the real kernel's overlayfs and umoci as the oracle: for every
//! fixture image, the snapshots mounted as overlay lowers (and `--to`'s flattened tree)
//! equal `umoci unpack`'s rootfs; hostile layers touch nothing outside their snapshot.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_testkit::{bin_path, fixtures};
use sha2::{Digest, Sha256};

// ---- helpers

/// A temporary base directory: `root/` (berth's root) beside `sentinel`, which no layer may
/// touch. Mounts made under it are unmounted on drop.
struct Base {
    dir: tempfile::TempDir,
    mounts: Vec<PathBuf>,
}

impl Base {
    fn new() -> Base {
        let dir = tempfile::Builder::new()
            .prefix("berth-unpack-e2e")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::write(dir.path().join("sentinel"), b"untouched").unwrap();
        Base {
            dir,
            mounts: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn root(&self) -> PathBuf {
        self.path().join("root")
    }

    /// The content store as a copy of the fixture layout (it is read-only and shared).
    fn with_fixtures(self, layout: &Path) -> Base {
        let status = Command::new("cp")
            .arg("-a")
            .arg(layout)
            .arg(self.root().join("content"))
            .status()
            .unwrap();
        assert!(status.success());
        self
    }

    fn unpack(&self, args: &[&str]) -> Output {
        let out = Command::new(bin_path("berth-unpack"))
            .arg("--root")
            .arg(self.root())
            .args(args)
            .output()
            .unwrap();
        out
    }

    fn unpack_ok(&self, args: &[&str]) -> String {
        let out = self.unpack(args);
        assert!(
            out.status.success(),
            "berth-unpack {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Mounts the image's snapshots read-only as overlay lowers; unmounted on drop.
    fn mount_image(&mut self, image: &str) -> PathBuf {
        let out = self.unpack_ok(&["--json", image]);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let lowers: Vec<String> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .map(|l| l["path"].as_str().unwrap().to_string())
            .collect();
        let mnt = self.path().join(format!("mnt{}", self.mounts.len()));
        fs::create_dir(&mnt).unwrap();
        // overlayfs needs two lowers when there is no upper; a single layer is bind-mounted.
        let status = if lowers.len() == 1 {
            Command::new("mount")
                .args(["--bind", "-o", "ro"])
                .arg(&lowers[0])
                .arg(&mnt)
                .status()
                .unwrap()
        } else {
            Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("ro,lowerdir={}", lowers.join(":")))
                .arg(&mnt)
                .status()
                .unwrap()
        };
        assert!(status.success(), "mounting {image}");
        self.mounts.push(mnt.clone());
        mnt
    }

    fn umoci(&self, layout: &Path, image: &str) -> PathBuf {
        let bundle = self
            .path()
            .join(format!("umoci-{}", image.replace([':', '/'], "-")));
        let out = Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{image}", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "umoci unpack {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bundle.join("rootfs")
    }

    /// Nothing outside `root/` changed: the sentinel is intact and nothing new appeared
    /// (except the mount points and umoci bundles the test made itself).
    fn assert_outside_untouched(&self) {
        assert_eq!(
            fs::read(self.path().join("sentinel")).unwrap(),
            b"untouched"
        );
        for e in fs::read_dir(self.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name == "root"
                    || name == "sentinel"
                    || name.starts_with("mnt")
                    || name.starts_with("umoci-")
                    || name == "out",
                "unexpected {name} outside the root"
            );
        }
    }

    /// No committed snapshot and no temporary.
    fn assert_no_snapshots(&self) {
        for sub in ["sha256", "tmp"] {
            let d = self.root().join("snapshots").join(sub);
            if d.exists() {
                let left: Vec<_> = fs::read_dir(&d)
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert!(left.is_empty(), "{} holds {left:?}", d.display());
            }
        }
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            // Lazy, so a busy mount still goes and TempDir's removal never walks into it.
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    kind: &'static str,
    mode: u32,
    owner: (u32, u32),
    link: Option<OsString>,
    rdev: Option<u64>,
    sha256: Option<String>,
    xattrs: BTreeMap<OsString, Vec<u8>>,
}

/// Everything the comparison covers, by path, plus hardlink groups of regular files.
fn tree(root: &Path) -> (BTreeMap<PathBuf, Node>, Vec<Vec<PathBuf>>) {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_file() {
            "file"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let mut xattrs = BTreeMap::new();
        let mut list = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(&p, &mut list[..]).unwrap();
        for name in list[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
            // overlayfs' own and umoci's rootless bookkeeping are not part of the image.
            if name.starts_with(b"trusted.overlay.")
                || name.starts_with(b"user.overlay.")
                || name.starts_with(b"user.rootlesscontainers")
            {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(name);
            let mut v = vec![0u8; 65536];
            let k = rustix::fs::lgetxattr(&p, name, &mut v[..]).unwrap();
            xattrs.insert(name.to_os_string(), v[..k].to_vec());
        }
        let sha256 = ft
            .is_file()
            .then(|| hex::encode(Sha256::digest(fs::read(&p).unwrap())));
        if ft.is_file() {
            inodes
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.clone());
        }
        nodes.insert(
            rel.clone(),
            Node {
                kind,
                mode: m.mode() & 0o7777,
                owner: (m.uid(), m.gid()),
                link: ft
                    .is_symlink()
                    .then(|| fs::read_link(&p).unwrap().into_os_string()),
                rdev: (ft.is_char_device() || ft.is_block_device()).then(|| m.rdev()),
                sha256,
                xattrs,
            },
        );
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        }
    }
    let mut groups: Vec<Vec<PathBuf>> = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    groups.sort();
    (nodes, groups)
}

fn assert_same_tree(got: &Path, want: &Path) {
    let (a, ga) = tree(got);
    let (b, gb) = tree(want);
    let mut diffs = Vec::new();
    for k in a
        .keys()
        .chain(b.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        if a.get(k) != b.get(k) {
            diffs.push(format!(
                "{}:\n  berth {:?}\n  umoci {:?}",
                k.display(),
                a.get(k),
                b.get(k)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} differences, first ones:\n{}",
        diffs.len(),
        diffs[..diffs.len().min(10)].join("\n")
    );
    assert_eq!(ga, gb, "hardlink groups differ");
    assert!(a.len() > 3, "compared an almost empty tree");
}

/// berth's image `image` (in the store) against umoci's unpack of `oracle` (the same
/// diff_ids: umoci 0.4.7 cannot read zstd layers or Docker manifests), as overlay and --to.
fn matches_umoci(image: &str, oracle: &str, layout: &Path) {
    let mut base = Base::new().with_fixtures(layout);
    let want = base.umoci(&base.root().join("content"), oracle);
    let merged = base.mount_image(image);
    assert_same_tree(&merged, &want);
    let out = base.path().join("out");
    base.unpack_ok(&["--to", out.to_str().unwrap(), image]);
    assert_same_tree(&out, &want);
    base.assert_outside_untouched();
}

// ---- the merged view equals umoci's rootfs

#[test]
fn busybox_gzip_matches_umoci() {
    matches_umoci("busybox:gzip", "busybox:gzip", fixtures::layout());
}

#[test]
fn busybox_zstd_matches_umoci() {
    matches_umoci("busybox:zstd", "busybox:gzip", fixtures::layout());
}

#[test]
fn busybox_docker_matches_umoci() {
    matches_umoci("busybox:docker", "busybox:gzip", fixtures::layout());
}

#[test]
fn layers_with_every_edge_case_match_umoci() {
    matches_umoci("layers:latest", "layers:gzip", fixtures::layout());
}

#[test]
fn large_image_matches_umoci() {
    matches_umoci("large:latest", "large:latest", fixtures::large_layout());
}

#[test]
fn multiarch_takes_the_host_platform_or_the_one_asked_for() {
    let mut base = Base::new().with_fixtures(fixtures::layout());
    let host = base.mount_image("multiarch:latest");
    assert_eq!(
        fs::read_to_string(host.join("platform")).unwrap(),
        "linux/amd64\n"
    );
    assert!(host.join("bin/busybox").exists());
    let out = base.path().join("out");
    base.unpack_ok(&[
        "--platform",
        "linux/arm/v7",
        "--to",
        out.to_str().unwrap(),
        "multiarch:latest",
    ]);
    assert_eq!(
        fs::read_to_string(out.join("platform")).unwrap(),
        "linux/arm/v7\n"
    );
}

// ---- sharing, concurrency, housekeeping

#[test]
fn two_processes_unpacking_one_image_share_one_copy() {
    let base = Base::new().with_fixtures(fixtures::layout());
    let spawn = || {
        Command::new(bin_path("berth-unpack"))
            .arg("--root")
            .arg(base.root())
            .args(["layers:latest", "busybox:gzip"])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    assert_eq!(a.stdout, b.stdout);
    // Six layers; busybox:gzip's one layer is the bottom of layers:latest (same chain ID).
    let snaps = fs::read_dir(base.root().join("snapshots/sha256"))
        .unwrap()
        .count();
    assert_eq!(snaps, 6);
    assert_eq!(
        fs::read_dir(base.root().join("snapshots/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn gc_keeps_what_images_and_bundles_need() {
    let base = Base::new().with_fixtures(fixtures::layout());
    let out = base.unpack_ok(&["--json", "layers:latest"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let chain: Vec<String> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["chain_id"].as_str().unwrap().to_string())
        .collect();
    // Forget every image but busybox:gzip, whose only layer is layers:latest's bottom one.
    let index_path = base.root().join("content/index.json");
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "busybox:gzip");
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    // A bundle uses the top snapshot.
    let snaps = berth_snapshot::Snapshots::open(&base.root()).unwrap();
    snaps
        .acquire("bundle-1", Path::new("/run/bundle-1"), &[&chain[5]])
        .unwrap();
    let list = base.unpack_ok(&["--list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&chain[5]) && l.contains("bundle-1")),
        "{list}"
    );
    let removed = base.unpack_ok(&["--gc"]);
    let removed: Vec<&str> = removed.lines().collect();
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(
        snaps.exists(&chain[0]).unwrap(),
        "busybox:gzip still needs the bottom layer"
    );
    assert!(
        snaps.exists(&chain[5]).unwrap(),
        "bundle-1 still uses the top layer"
    );
    // In use: removal is refused with exit 1; after release it goes.
    let out = base.unpack(&["--remove", &chain[5]]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use by bundle(s) bundle-1"));
    assert_eq!(base.unpack_ok(&["--release", "bundle-1"]).trim(), chain[5]);
    base.unpack_ok(&["--remove", &chain[5]]);
    assert!(!snaps.exists(&chain[5]).unwrap());
}

// ---- hostile layers

/// An OCI layout with one image `hostile:latest` whose layers are `layers` (blob bytes,
/// media type, diff_id), written by hand.
fn write_image(layout: &Path, layers: &[(Vec<u8>, &str, String)]) {
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = hex::encode(Sha256::digest(bytes));
        fs::write(blobs.join(&hex), bytes).unwrap();
        (format!("sha256:{hex}"), bytes.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for (bytes, mt, diff) in layers {
        let (d, n) = put(bytes);
        descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": n}));
        diff_ids.push(diff.clone());
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}});
    let (cd, cn) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": descs,
    });
    let (md, mn) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn,
        "annotations": {"org.opencontainers.image.ref.name": "hostile:latest"}}]});
    fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
}

fn diff_id(tar: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(tar)))
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut child = Command::new("gzip")
        .arg("-c")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data));
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    writer.join().unwrap().unwrap();
    assert!(child.wait().unwrap().success());
    out
}

/// A tar entry with any name and link name (the tar crate's builder refuses `..`).
fn entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, link: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Symlink {
        0o777
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tarball(entries: &[(tar::EntryType, &str, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (k, n, l, d) in entries {
        entry(&mut b, *k, n, l, d);
    }
    b.into_inner().unwrap()
}

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
use tar::EntryType::{Link as HARD, Regular as FILE, Symlink as SYM};

/// Unpacks `hostile:latest` both ways; returns the exit codes (overlay, --to) and stderr.
fn run_hostile(layers: &[(Vec<u8>, &str, String)]) -> (Base, [Option<i32>; 2], String) {
    let base = Base::new();
    write_image(&base.root().join("content"), layers);
    let a = base.unpack(&["hostile:latest"]);
    let out = base.path().join("out");
    let b = base.unpack(&["--to", out.to_str().unwrap(), "hostile:latest"]);
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    base.assert_outside_untouched();
    (base, [a.status.code(), b.status.code()], stderr)
}

fn assert_refused(layers: &[(Vec<u8>, &str, String)], what: &str) {
    let (base, codes, stderr) = run_hostile(layers);
    assert_eq!(codes, [Some(1), Some(1)], "{what}: {stderr}");
    assert_eq!(stderr.lines().count(), 2, "one line per failure: {stderr}");
    assert!(stderr.contains(what), "{stderr} lacks {what}");
    base.assert_no_snapshots();
    assert!(
        !base.path().join("out").exists(),
        "--to left a directory behind"
    );
    let leftovers: Vec<_> = fs::read_dir(base.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 2, "{leftovers:?}");
}

fn plain(entries: &[(tar::EntryType, &str, &str, &[u8])]) -> (Vec<u8>, &'static str, String) {
    let t = tarball(entries);
    let d = diff_id(&t);
    (t, TAR, d)
}

#[test]
fn dotdot_names_are_refused() {
    assert_refused(
        &[plain(&[(FILE, "a/../../sentinel", "", b"pwned")])],
        "climbs out of the root",
    );
    assert_refused(
        &[plain(&[(FILE, "../../../../../../../tmp/x", "", b"pwned")])],
        "climbs out of the root",
    );
}

#[test]
fn absolute_names_stay_inside() {
    let (base, codes, stderr) = run_hostile(&[plain(&[(FILE, "/sentinel", "", b"inside")])]);
    assert_eq!(codes, [Some(0), Some(0)], "{stderr}");
    assert_eq!(
        fs::read(base.path().join("out/sentinel")).unwrap(),
        b"inside"
    );
}

#[test]
fn symlinks_pointing_out_are_written_through_inside_only() {
    let (base, codes, stderr) = run_hostile(&[plain(&[
        (SYM, "evil", "../../..", b""),
        (FILE, "evil/sentinel", "", b"inside"),
    ])]);
    assert_eq!(codes, [Some(0), Some(0)], "{stderr}");
    assert_eq!(
        fs::read(base.path().join("out/sentinel")).unwrap(),
        b"inside"
    );
}

#[test]
fn symlinks_of_a_lower_layer_pointing_out_stay_inside() {
    let (mut base, codes, stderr) = run_hostile(&[
        plain(&[(SYM, "evil", "/", b""), (SYM, "evil2", "../../../..", b"")]),
        plain(&[
            (FILE, "evil/sentinel", "", b"one"),
            (FILE, "evil2/other", "", b"two"),
        ]),
    ]);
    assert_eq!(codes, [Some(0), Some(0)], "{stderr}");
    assert_eq!(fs::read(base.path().join("out/sentinel")).unwrap(), b"one");
    let merged = base.mount_image("hostile:latest");
    assert_eq!(fs::read(merged.join("sentinel")).unwrap(), b"one");
    assert_eq!(fs::read(merged.join("other")).unwrap(), b"two");
    base.assert_outside_untouched();
}

#[test]
fn hardlinks_to_outside_files_are_refused() {
    assert_refused(
        &[plain(&[(HARD, "passwd", "/etc/passwd", b"")])],
        "hardlink target not found",
    );
    assert_refused(
        &[plain(&[(HARD, "s", "../sentinel", b"")])],
        "climbs out of the root",
    );
    assert_refused(
        &[plain(&[
            (SYM, "evil", "..", b""),
            (HARD, "s", "evil/sentinel", b""),
        ])],
        "hardlink target not found",
    );
}

#[test]
fn whiteouts_that_climb_out_delete_nothing() {
    assert_refused(
        &[plain(&[(FILE, ".wh..", "", b"")])],
        "whiteout of an invalid name",
    );
    assert_refused(
        &[plain(&[(FILE, "../.wh.sentinel", "", b"")])],
        "climbs out of the root",
    );
    let (_base, codes, stderr) = run_hostile(&[
        plain(&[(SYM, "evil", "/..", b"")]),
        plain(&[(FILE, "evil/.wh.sentinel", "", b"")]),
    ]);
    assert_eq!(codes, [Some(0), Some(0)], "{stderr}");
}

#[test]
fn corrupt_layers_fail_with_one_line_and_leave_nothing() {
    let t = tarball(&[(FILE, "f", "", &[7u8; 100_000])]);
    let gz = gzip(&t);
    assert_refused(
        &[(gz[..gz.len() / 2].to_vec(), TGZ, diff_id(&t))],
        "reading the layer stream",
    );
    assert_refused(
        &[(gz.clone(), TAR, diff_id(&t))],
        "says uncompressed but the data is gzip",
    );
    assert_refused(
        &[(t.clone(), TGZ, diff_id(&t))],
        "says gzip but the data is uncompressed",
    );
    let wrong = format!("sha256:{}", "1".repeat(64));
    assert_refused(&[(gz.clone(), TGZ, wrong)], "not the diff_id");
    // A good lower layer under a bad one: the good one may be committed (it is whole and
    // shareable), the bad one is not, and no temporary is left.
    let (base, codes, stderr) = run_hostile(&[
        plain(&[(FILE, "ok", "", b"ok")]),
        (gz, TGZ, format!("sha256:{}", "2".repeat(64))),
    ]);
    assert_eq!(codes, [Some(1), Some(1)], "{stderr}");
    assert!(
        fs::read_dir(base.root().join("snapshots/sha256"))
            .unwrap()
            .count()
            <= 1
    );
    assert_eq!(
        fs::read_dir(base.root().join("snapshots/tmp"))
            .unwrap()
            .count(),
        0
    );
    assert!(!base.path().join("out").exists());
}

#[test]
fn unknown_layer_media_types_exit_6() {
    let t = tarball(&[(FILE, "f", "", b"x")]);
    let d = diff_id(&t);
    let (base, codes, stderr) = run_hostile(&[(t, "application/x-not-a-layer", d)]);
    assert_eq!(codes, [Some(6), Some(6)], "{stderr}");
    assert!(stderr.contains("is not a layer media type"), "{stderr}");
    base.assert_no_snapshots();
}
