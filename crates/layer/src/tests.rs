//! Tests of [`apply`] and [`flatten`] on real directories. They need root (devices, owners, trusted xattrs), as the layer code does.
use super::*;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TGZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A root to extract into, beside a sentinel file that must never change.
struct Sandbox {
    base: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let base = tempfile::tempdir().unwrap();
        fs::create_dir(base.path().join("root")).unwrap();
        fs::write(base.path().join("sentinel"), b"untouched").unwrap();
        Sandbox { base }
    }
    fn root(&self) -> PathBuf {
        self.base.path().join("root")
    }
    fn apply(&self, data: &[u8], media_type: &str, form: Form) -> Result<Stats, Error> {
        self.apply_with(
            data,
            media_type,
            &diff_id(data_for_digest(data)),
            form,
            &NoLowers,
        )
    }
    fn apply_with(
        &self,
        data: &[u8],
        media_type: &str,
        diff: &str,
        form: Form,
        lowers: &dyn Lowers,
    ) -> Result<Stats, Error> {
        let dir = fs::File::open(self.root()).unwrap();
        let layer = Layer {
            digest: "sha256:test",
            media_type,
            diff_id: diff,
        };
        apply(data, &layer, dir.as_fd(), form, lowers)
    }
    /// Asserts the sentinel is unchanged and nothing else appeared beside the root.
    fn assert_outside_untouched(&self) {
        assert_eq!(
            fs::read(self.base.path().join("sentinel")).unwrap(),
            b"untouched"
        );
        let mut names: Vec<_> = fs::read_dir(self.base.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec!["root", "sentinel"]);
    }
}

fn data_for_digest(data: &[u8]) -> Vec<u8> {
    match sniff(data) {
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        _ => data.to_vec(),
    }
}

fn diff_id(data: Vec<u8>) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(&data)))
}

fn header(kind: ::tar::EntryType, mode: u32) -> ::tar::Header {
    let mut h = ::tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(1_600_000_000);
    h
}

fn file(b: &mut ::tar::Builder<Vec<u8>>, path: &str, content: &[u8]) {
    let mut h = header(::tar::EntryType::Regular, 0o644);
    h.set_size(content.len() as u64);
    b.append_data(&mut h, path, content).unwrap();
}

fn dir(b: &mut ::tar::Builder<Vec<u8>>, path: &str) {
    b.append_data(
        &mut header(::tar::EntryType::Directory, 0o755),
        path,
        io::empty(),
    )
    .unwrap();
}

fn link(b: &mut ::tar::Builder<Vec<u8>>, kind: ::tar::EntryType, path: &str, target: &str) {
    b.append_link(&mut header(kind, 0o777), path, target)
        .unwrap();
}

fn build(f: impl FnOnce(&mut ::tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = ::tar::Builder::new(Vec::new());
    f(&mut b);
    b.into_inner().unwrap()
}

/// Raw header with a name the tar crate's builder would refuse (`..`, absolute).
fn raw_entry(
    b: &mut ::tar::Builder<Vec<u8>>,
    kind: ::tar::EntryType,
    name: &[u8],
    link: &[u8],
    content: &[u8],
) {
    let mut h = header(kind, 0o644);
    h.set_size(content.len() as u64);
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    b.append(&h, content).unwrap();
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn every_entry_type_and_attribute_survives() {
    let sb = Sandbox::new();
    let data = build(|b| {
        dir(b, "d/");
        let mut h = header(::tar::EntryType::Regular, 0o4755);
        h.set_uid(4_294_967_294);
        h.set_gid(65_536);
        h.set_size(3);
        b.append_pax_extensions([
            (
                "SCHILY.xattr.security.capability",
                &[
                    1u8, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ][..],
            ),
            ("SCHILY.xattr.user.note", b"hi"),
        ])
        .unwrap();
        b.append_data(&mut h, "d/suid", &b"abc"[..]).unwrap();
        link(b, ::tar::EntryType::Symlink, "d/sym", "/d/suid");
        link(b, ::tar::EntryType::Link, "d/hard", "d/suid");
        let mut h = header(::tar::EntryType::Char, 0o600);
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        b.append_data(&mut h, "d/null", io::empty()).unwrap();
        let mut h = header(::tar::EntryType::Block, 0o600);
        h.set_device_major(7).unwrap();
        h.set_device_minor(0).unwrap();
        b.append_data(&mut h, "d/loop", io::empty()).unwrap();
        b.append_data(
            &mut header(::tar::EntryType::Fifo, 0o640),
            "d/fifo",
            io::empty(),
        )
        .unwrap();
        b.append_data(
            &mut header(::tar::EntryType::Directory, 0o1777),
            "tmp/",
            io::empty(),
        )
        .unwrap();
        file(
            b,
            &format!("{}/{}", "ü".repeat(60), "ß".repeat(60)),
            b"long",
        );
    });
    let stats = sb.apply(&data, TAR, Form::Flat).unwrap();
    assert_eq!(stats.entries, 9);
    let r = sb.root();
    let m = fs::symlink_metadata(r.join("d/suid")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o4755);
    assert_eq!((m.uid(), m.gid()), (4_294_967_294, 65_536));
    assert_eq!(m.mtime(), 1_600_000_000);
    assert_eq!(m.nlink(), 2);
    assert_eq!(
        fs::symlink_metadata(r.join("d/hard")).unwrap().ino(),
        m.ino()
    );
    let cap =
        rustix::fs::getxattr(r.join("d/suid"), "security.capability", &mut [0u8; 64][..]).unwrap();
    assert_eq!(cap, 20);
    assert_eq!(
        fs::read_link(r.join("d/sym")).unwrap(),
        PathBuf::from("/d/suid")
    );
    let null = fs::symlink_metadata(r.join("d/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(r.join("d/loop"))
        .unwrap()
        .file_type()
        .is_block_device());
    assert!(fs::symlink_metadata(r.join("d/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert_eq!(
        fs::symlink_metadata(r.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    // Directory times are set after their contents.
    assert_eq!(
        fs::symlink_metadata(r.join("d")).unwrap().mtime(),
        1_600_000_000
    );
    assert_eq!(
        fs::read(r.join("ü".repeat(60)).join("ß".repeat(60))).unwrap(),
        b"long"
    );
    sb.assert_outside_untouched();
}

#[test]
fn zero_runs_stay_holes() {
    let sb = Sandbox::new();
    let mut content = vec![0u8; 8 << 20];
    content[0] = 1;
    *content.last_mut().unwrap() = 2;
    let data = build(|b| file(b, "sparse", &content));
    sb.apply(&gzip(&data), TGZ, Form::Overlay).unwrap();
    let m = fs::metadata(sb.root().join("sparse")).unwrap();
    assert_eq!(m.len(), 8 << 20);
    assert!(m.blocks() * 512 < 64 * 1024, "{} blocks", m.blocks());
    assert_eq!(fs::read(sb.root().join("sparse")).unwrap(), content);
}

#[test]
fn dotdot_names_are_refused() {
    let sb = Sandbox::new();
    let data = build(|b| {
        raw_entry(
            b,
            ::tar::EntryType::Regular,
            b"a/../../sentinel",
            b"",
            b"pwned",
        )
    });
    let err = sb.apply(&data, TAR, Form::Flat).unwrap_err();
    assert!(matches!(err, Error::Hostile { .. }), "{err}");
    assert_eq!(err.kind(), Kind::Corrupt);
    sb.assert_outside_untouched();
}

#[test]
fn absolute_names_land_inside_the_root() {
    let sb = Sandbox::new();
    let data = build(|b| raw_entry(b, ::tar::EntryType::Regular, b"/sentinel", b"", b"inside"));
    sb.apply(&data, TAR, Form::Flat).unwrap();
    assert_eq!(fs::read(sb.root().join("sentinel")).unwrap(), b"inside");
    sb.assert_outside_untouched();
}

#[test]
fn writing_through_a_symlink_that_points_out_stays_inside() {
    for target in ["..", "/", "../..", "/.."] {
        let sb = Sandbox::new();
        let data = build(|b| {
            link(b, ::tar::EntryType::Symlink, "evil", target);
            file(b, "evil/sentinel", b"pwned");
            link(b, ::tar::EntryType::Symlink, "evil2", "../sentinel");
            // A regular entry over the symlink replaces the link, never writes through it.
            file(b, "evil2", b"replaced");
        });
        sb.apply(&data, TAR, Form::Flat).unwrap();
        assert_eq!(fs::read(sb.root().join("sentinel")).unwrap(), b"pwned");
        assert_eq!(fs::read(sb.root().join("evil2")).unwrap(), b"replaced");
        sb.assert_outside_untouched();
    }
}

#[test]
fn hardlinks_to_outside_paths_fail() {
    for target in [&b"/etc/passwd"[..], b"../sentinel", b"evil/sentinel"] {
        let sb = Sandbox::new();
        let data = build(|b| {
            link(b, ::tar::EntryType::Symlink, "evil", "..");
            raw_entry(b, ::tar::EntryType::Link, b"passwd", target, b"");
        });
        let err = sb.apply(&data, TAR, Form::Overlay).unwrap_err();
        assert_eq!(err.kind(), Kind::Corrupt, "{err}");
        sb.assert_outside_untouched();
    }
}

#[test]
fn whiteouts_that_climb_out_delete_nothing_outside() {
    for (name, ok) in [
        (&b"evil/.wh.sentinel"[..], true),
        (b".wh..", false),
        (b"../.wh.sentinel", false),
    ] {
        for form in [Form::Flat, Form::Overlay] {
            let sb = Sandbox::new();
            let data = build(|b| {
                link(b, ::tar::EntryType::Symlink, "evil", "/..");
                raw_entry(b, ::tar::EntryType::Regular, name, b"", b"");
            });
            let r = sb.apply(&data, TAR, form);
            assert_eq!(
                r.is_ok(),
                ok,
                "{:?} {form:?}: {r:?}",
                String::from_utf8_lossy(name)
            );
            sb.assert_outside_untouched();
        }
    }
}

#[test]
fn overlay_form_keeps_whiteouts_and_opaque_markers() {
    let sb = Sandbox::new();
    let data = build(|b| {
        dir(b, "etc/");
        file(b, "etc/.wh.gone", b"");
        dir(b, "var/");
        file(b, "var/.wh..wh..opq", b"");
        file(b, "var/kept", b"x");
    });
    sb.apply(&data, TAR, Form::Overlay).unwrap();
    let wh = fs::symlink_metadata(sb.root().join("etc/gone")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let mut v = [0u8; 4];
    let n =
        rustix::fs::getxattr(sb.root().join("var"), "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
    assert!(sb.root().join("var/kept").exists());
}

/// Regression: an entry under a directory the same layer whited out (without an entry for
/// the directory itself) failed with "not a directory" in the overlay form.
#[test]
fn a_path_under_a_whited_out_directory_gets_an_opaque_directory() {
    let sb = Sandbox::new();
    let data = build(|b| {
        file(b, ".wh.a", b"");
        file(b, "a/b", b"new");
    });
    sb.apply(&data, TAR, Form::Overlay).unwrap();
    assert_eq!(fs::read(sb.root().join("a/b")).unwrap(), b"new");
    let mut v = [0u8; 4];
    let n =
        rustix::fs::getxattr(sb.root().join("a"), "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
}

#[test]
fn flat_form_applies_whiteouts_to_lower_layers_only() {
    let sb = Sandbox::new();
    let lower = build(|b| {
        dir(b, "etc/");
        file(b, "etc/gone", b"1");
        dir(b, "var/");
        file(b, "var/old", b"1");
    });
    sb.apply(&lower, TAR, Form::Flat).unwrap();
    let upper = build(|b| {
        file(b, "var/new", b"2");
        file(b, "var/.wh..wh..opq", b"");
        file(b, "etc/.wh.gone", b"");
    });
    sb.apply(&upper, TAR, Form::Flat).unwrap();
    assert!(!sb.root().join("etc/gone").exists());
    assert!(!sb.root().join("var/old").exists());
    assert!(sb.root().join("var/new").exists());
}

struct OneLower(PathBuf);
impl Lowers for OneLower {
    fn open(&self) -> Result<Vec<OwnedFd>, Error> {
        Ok(vec![fs::File::open(&self.0).unwrap().into()])
    }
}

#[test]
fn a_hardlink_to_a_lower_file_is_copied_up() {
    let lower = Sandbox::new();
    let data = build(|b| {
        dir(b, "bin/");
        file(b, "bin/tool", b"binary");
        link(b, ::tar::EntryType::Symlink, "lib", "bin");
    });
    lower.apply(&data, TAR, Form::Overlay).unwrap();
    let upper = Sandbox::new();
    let data = build(|b| {
        link(b, ::tar::EntryType::Link, "alias", "bin/tool");
        // Written through the lower layer's symlink: lands in bin/.
        file(b, "lib/extra", b"e");
    });
    let diff = diff_id(data.clone());
    upper
        .apply_with(&data, TAR, &diff, Form::Overlay, &OneLower(lower.root()))
        .unwrap();
    let a = fs::symlink_metadata(upper.root().join("alias")).unwrap();
    let t = fs::symlink_metadata(upper.root().join("bin/tool")).unwrap();
    assert_eq!(a.ino(), t.ino());
    assert_eq!(fs::read(upper.root().join("alias")).unwrap(), b"binary");
    assert_eq!(fs::read(upper.root().join("bin/extra")).unwrap(), b"e");
    assert_eq!(
        fs::symlink_metadata(upper.root().join("bin"))
            .unwrap()
            .mode()
            & 0o7777,
        0o755
    );
}

#[test]
fn truncated_gzip_is_a_stream_error() {
    let sb = Sandbox::new();
    let data = gzip(&build(|b| file(b, "f", &vec![7u8; 100_000])));
    let cut = &data[..data.len() / 2];
    let err = sb
        .apply_with(
            cut,
            TGZ,
            &format!("sha256:{}", "0".repeat(64)),
            Form::Overlay,
            &NoLowers,
        )
        .unwrap_err();
    assert!(matches!(err, Error::Stream(_)), "{err}");
    assert_eq!(err.kind(), Kind::Corrupt);
}

#[test]
fn a_lying_media_type_fails() {
    let sb = Sandbox::new();
    let data = gzip(&build(|b| file(b, "f", b"x")));
    let err = sb.apply(&data, TAR, Form::Overlay).unwrap_err();
    assert!(matches!(err, Error::CompressionMismatch { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "media type application/vnd.oci.image.layer.v1.tar says uncompressed but the data is gzip"
    );
}

#[test]
fn a_wrong_diff_id_fails() {
    let sb = Sandbox::new();
    let data = build(|b| file(b, "f", b"x"));
    let wrong = format!("sha256:{}", "1".repeat(64));
    let err = sb
        .apply_with(&data, TAR, &wrong, Form::Overlay, &NoLowers)
        .unwrap_err();
    assert!(matches!(err, Error::DiffId { .. }), "{err}");
}

#[test]
fn a_decompression_bomb_is_extracted_in_bounded_memory() {
    // 256 MiB of zeros, about 256 KiB compressed.
    const SIZE: u64 = 1 << 28;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut hasher = Sha256::new();
    {
        struct Tee<'a, W: Write>(&'a mut W, &'a mut Sha256);
        impl<W: Write> Write for Tee<'_, W> {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let n = self.0.write(b)?;
                self.1.update(&b[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.flush()
            }
        }
        let mut b = ::tar::Builder::new(Tee(&mut enc, &mut hasher));
        let mut h = header(::tar::EntryType::Regular, 0o644);
        h.set_size(SIZE);
        b.append_data(&mut h, "bomb", io::repeat(0).take(SIZE))
            .unwrap();
        b.finish().unwrap();
    }
    let data = enc.finish().unwrap();
    let diff = format!("sha256:{}", hex::encode(hasher.finalize()));
    let before = peak_rss_kib();
    let sb = Sandbox::new();
    sb.apply_with(&data, TGZ, &diff, Form::Overlay, &NoLowers)
        .unwrap();
    let grew = peak_rss_kib() - before;
    assert!(grew < 48 * 1024, "peak memory grew by {grew} KiB");
    assert_eq!(fs::metadata(sb.root().join("bomb")).unwrap().len(), SIZE);
}

fn peak_rss_kib() -> i64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

mod sparse {
    //! Sparse entries as GNU tar writes them (old GNU format and PAX 1.0), and layers that
    //! try to set overlayfs' own xattrs. Needs root and GNU tar.
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{FileExt, MetadataExt};
    use std::process::Command;

    fn diff_id(data: &[u8]) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
    }

    fn gnu_tar_of_sparse_file(args: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let src = tempfile::tempdir().unwrap();
        let f = fs::File::create(src.path().join("sparse")).unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(b"head", 0).unwrap();
        f.write_all_at(b"middle", 20 << 20).unwrap();
        f.write_all_at(b"tail", (64 << 20) - 4).unwrap();
        drop(f);
        let content = fs::read(src.path().join("sparse")).unwrap();
        let out = Command::new("tar")
            .args(args)
            .arg("-cf")
            .arg("-")
            .arg("-C")
            .arg(src.path())
            .arg("sparse")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (out.stdout, content)
    }

    fn check(args: &[&str]) {
        let (data, content) = gnu_tar_of_sparse_file(args);
        assert!(data.len() < 1 << 20, "GNU tar did not write a sparse entry");
        let root = tempfile::tempdir().unwrap();
        let dir = fs::File::open(root.path()).unwrap();
        let layer = Layer {
            digest: "sha256:test",
            media_type: "application/vnd.oci.image.layer.v1.tar",
            diff_id: &diff_id(&data),
        };
        apply(&data[..], &layer, dir.as_fd(), Form::Overlay, &NoLowers).unwrap();
        let got = root.path().join("sparse");
        assert_eq!(fs::read(&got).unwrap(), content);
        assert!(
            fs::metadata(&got).unwrap().blocks() * 512 < 1 << 20,
            "holes were filled"
        );
    }

    #[test]
    fn old_gnu_sparse_entries_keep_their_holes() {
        check(&["--sparse", "--format=gnu"]);
    }

    #[test]
    fn pax_1_0_sparse_entries_keep_their_holes() {
        check(&["--sparse", "--format=posix", "--sparse-version=1.0"]);
    }

    #[test]
    fn overlayfs_private_xattrs_in_a_layer_are_refused() {
        let mut b = ::tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.redirect", &b"/etc"[..])])
            .unwrap();
        let mut h = ::tar::Header::new_gnu();
        h.set_entry_type(::tar::EntryType::Directory);
        h.set_size(0);
        h.set_mode(0o755);
        b.append_data(&mut h, "d/", io::empty()).unwrap();
        let data = b.into_inner().unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = fs::File::open(root.path()).unwrap();
        let layer = Layer {
            digest: "sha256:test",
            media_type: "application/vnd.oci.image.layer.v1.tar",
            diff_id: &diff_id(&data),
        };
        let err = apply(&data[..], &layer, dir.as_fd(), Form::Overlay, &NoLowers).unwrap_err();
        assert!(
            err.to_string()
                .contains("overlayfs-private xattr trusted.overlay.redirect"),
            "{err}"
        );
    }
}
