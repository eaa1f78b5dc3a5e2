//! berth-pull against real and fake registries on loopback, with skopeo and umoci as oracles.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use berth_testkit::fake::{FakeRegistry, Fault};
use berth_testkit::fixtures;
use berth_testkit::registry::Registry;
use serde_json::Value;
use tempfile::TempDir;

mod faults;

fn root() -> TempDir {
    tempfile::Builder::new()
        .prefix("berth-pull-e2e-")
        .tempdir()
        .expect("temp root")
}

fn berth_pull(root: &Path) -> Command {
    let mut c = Command::new(berth_testkit::bin_path("berth-pull"));
    c.arg("--root").arg(root).arg("--quiet");
    // Keep the tests independent of the machine's own configuration.
    c.env_remove("REGISTRY_AUTH_FILE")
        .env_remove("BERTH_MIRRORS")
        .env("HOME", root)
        .env_remove("XDG_RUNTIME_DIR");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .expect("running berth-pull")
}

/// Runs and asserts success; returns stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs and asserts failure with `code` and a one-line error; returns stderr.
fn fails(cmd: &mut Command, code: i32) -> String {
    // A RUST_LOG in the test's environment would add log lines to the stderr asserted on.
    let out = run(cmd.env_remove("RUST_LOG"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{cmd:?}: stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {stderr}");
    assert!(lines[0].starts_with("berth-pull: error: "), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    stderr
}

fn blobs(root: &Path) -> BTreeSet<String> {
    match std::fs::read_dir(root.join("content/blobs/sha256")) {
        Ok(dir) => dir
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

fn index_json(root: &Path) -> Value {
    let bytes = std::fs::read(root.join("content/index.json")).expect("index.json");
    serde_json::from_slice(&bytes).expect("index.json parses")
}

fn ref_names(root: &Path) -> Vec<String> {
    index_json(root)["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter_map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn skopeo_inspect_digest(root: &Path, name: &str) -> String {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{name}", root.join("content").display()))
        .output()
        .expect("running skopeo");
    assert!(
        out.status.success(),
        "skopeo inspect {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("skopeo JSON");
    v["Digest"].as_str().expect("Digest").to_string()
}

fn digest_of(pinned: &str) -> &str {
    pinned.trim().rsplit_once('@').expect("pinned reference").1
}

#[test]
fn every_fixture_pulls_from_docker_registry_and_skopeo_reads_it() {
    let reg = Registry::start();
    let dir = root();
    for (fixture, repo_tag) in [
        ("busybox:gzip", "busybox:gzip"),
        ("busybox:zstd", "busybox:zstd"),
        ("layers:latest", "layers:latest"),
        ("layers:gzip", "tools/layers:gzip"),
    ] {
        let pushed = reg.push_fixture(fixture, repo_tag);
        let name = format!("{}/{repo_tag}", reg.addr());
        let out = ok(berth_pull(dir.path()).arg(&name));
        assert_eq!(out.trim(), pushed, "{fixture}");
        let image = fixtures::image(fixture);
        for layer in &image.layers {
            assert!(
                blobs(dir.path()).contains(layer.digest.trim_start_matches("sha256:")),
                "{fixture}: {}",
                layer.digest
            );
        }
        assert!(ref_names(dir.path()).contains(&name), "{fixture}");
        assert_eq!(
            skopeo_inspect_digest(dir.path(), &name),
            image.manifest.digest,
            "{fixture}"
        );
    }
    // Nothing is left half-written.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("ingest"))
        .expect("ingest dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn umoci_unpacks_what_berth_pull_wrote() {
    let reg = Registry::start();
    let dir = root();
    reg.push_fixture("busybox:gzip", "busybox:1");
    let name = format!("{}/busybox:1", reg.addr());
    ok(berth_pull(dir.path()).arg(&name));
    let bundle = dir.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{name}", dir.path().join("content").display()))
        .arg(&bundle)
        .output()
        .expect("running umoci");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert!(bundle.join("config.json").is_file());
}

#[test]
fn docker_schema2_images_pull_with_their_media_types() {
    let fake = FakeRegistry::start(fixtures::layout());
    let dir = root();
    let name = format!("{}/library/busybox:docker", fake.addr());
    let out = ok(berth_pull(dir.path()).arg("--json").arg(&name));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    let image = fixtures::image("busybox:docker");
    assert_eq!(v["manifest"]["digest"], image.manifest.digest.as_str());
    assert_eq!(v["manifest"]["mediaType"], fixtures::media::DOCKER_MANIFEST);
    assert_eq!(
        v["layers"][0]["mediaType"],
        fixtures::media::DOCKER_LAYER_GZIP
    );
    let entry = &index_json(dir.path())["manifests"][0];
    assert_eq!(entry["mediaType"], fixtures::media::DOCKER_MANIFEST);
}

#[test]
fn the_platform_is_chosen_from_the_index() {
    let reg = Registry::start();
    let dir = root();
    reg.push_fixture("multiarch:latest", "multiarch:latest");
    let name = format!("{}/multiarch:latest", reg.addr());
    let index = fixtures::index("multiarch:latest");
    let host = ok(berth_pull(dir.path()).arg(&name));
    assert_eq!(
        digest_of(&host),
        index
            .for_platform(&fixtures::host_platform().to_string())
            .manifest
            .digest
    );
    for platform in ["linux/arm64", "linux/arm/v7"] {
        let out = ok(berth_pull(dir.path())
            .arg("--platform")
            .arg(platform)
            .arg("--json")
            .arg(&name));
        let v: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(
            v["manifest"]["digest"],
            index.for_platform(platform).manifest.digest.as_str(),
            "{platform}"
        );
        assert_eq!(v["index"], index.index.digest.as_str());
        assert_eq!(v["platform"], platform);
    }
    let err = fails(
        berth_pull(dir.path())
            .arg("--platform")
            .arg("linux/s390x")
            .arg(&name),
        3,
    );
    assert!(
        err.contains("linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
    fails(
        berth_pull(dir.path())
            .arg("--platform")
            .arg("linux")
            .arg(&name),
        2,
    );
}

#[test]
fn basic_auth_credentials_come_from_flags_and_auth_files() {
    let reg = Registry::start_with_auth("berth", "s3cret");
    let pushed = reg.push_fixture("busybox:gzip", "private/busybox:1");
    let name = format!("{}/private/busybox:1", reg.addr());
    let dir = root();
    let err = fails(berth_pull(dir.path()).arg(&name), 5);
    assert!(err.contains("--creds"), "{err}");
    fails(
        berth_pull(dir.path())
            .arg("--creds")
            .arg("berth:wrong")
            .arg(&name),
        5,
    );
    assert!(ref_names(dir.path()).is_empty());
    assert_eq!(
        ok(berth_pull(dir.path())
            .arg("--creds")
            .arg("berth:s3cret")
            .arg(&name))
        .trim(),
        pushed
    );

    let auth = dir.path().join("auth.json");
    // base64("berth:s3cret")
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YmVydGg6czNjcmV0"}}}}}}"#,
            reg.addr()
        ),
    )
    .expect("auth.json");
    let fresh = root();
    assert_eq!(
        ok(berth_pull(fresh.path())
            .arg("--authfile")
            .arg(&auth)
            .arg(&name))
        .trim(),
        pushed
    );
    let fresh = root();
    assert_eq!(
        ok(berth_pull(fresh.path())
            .env("REGISTRY_AUTH_FILE", &auth)
            .arg(&name))
        .trim(),
        pushed
    );
    let fresh = root();
    std::fs::create_dir_all(fresh.path().join(".docker")).expect("mkdir");
    std::fs::copy(&auth, fresh.path().join(".docker/config.json")).expect("copy");
    assert_eq!(ok(berth_pull(fresh.path()).arg(&name)).trim(), pushed);
    let missing = dir.path().join("missing.json");
    fails(
        berth_pull(dir.path())
            .arg("--authfile")
            .arg(&missing)
            .arg(&name),
        2,
    );
}

#[test]
fn bearer_token_flow() {
    let fake = FakeRegistry::start_with_bearer(fixtures::layout(), "tok", "pw");
    let dir = root();
    let name = format!("{}/busybox:gzip", fake.addr());
    fails(berth_pull(dir.path()).arg(&name), 5);
    fails(
        berth_pull(dir.path())
            .arg("--creds")
            .arg("tok:bad")
            .arg(&name),
        5,
    );
    fake.clear_requests();
    let out = ok(berth_pull(dir.path())
        .arg("--creds")
        .arg("tok:pw")
        .arg(&name));
    assert_eq!(
        digest_of(&out),
        fixtures::image("busybox:gzip").manifest.digest
    );
    let reqs = fake.requests();
    let token_reqs: Vec<_> = reqs.iter().filter(|r| r.path == "/token").collect();
    assert_eq!(
        token_reqs.len(),
        1,
        "one token for the repository: {reqs:?}"
    );
    assert!(
        token_reqs[0]
            .query
            .contains("scope=repository%3Abusybox%3Apull"),
        "{:?}",
        token_reqs[0]
    );
    let token = fake.token().expect("bearer mode");
    assert!(reqs
        .iter()
        .filter(|r| r.path.contains("/blobs/"))
        .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {token}"))));

    let anon = FakeRegistry::start_with_anonymous_bearer(fixtures::layout());
    ok(berth_pull(dir.path()).arg(format!("{}/busybox:zstd", anon.addr())));
}

fn write_mirrors(dir: &Path, registry: &str, endpoints: &[String]) -> PathBuf {
    let path = dir.join("mirrors.json");
    let v = serde_json::json!({ "mirrors": { registry: endpoints } });
    std::fs::write(&path, v.to_string()).expect("mirrors.json");
    path
}

#[test]
fn mirrors_are_tried_first_and_the_origin_is_the_fallback() {
    let origin = FakeRegistry::start(fixtures::layout());
    let mirror = FakeRegistry::start(fixtures::layout());
    let dir = root();
    let name = format!("{}/busybox:gzip", origin.addr());
    let file = write_mirrors(
        dir.path(),
        &origin.addr(),
        &[format!("http://{}", mirror.addr())],
    );
    let out = ok(berth_pull(dir.path())
        .arg("--mirrors")
        .arg(&file)
        .arg("--json")
        .arg(&name));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["source"], format!("http://{}", mirror.addr()));
    assert!(
        origin.requests().is_empty(),
        "origin untouched: {:?}",
        origin.requests()
    );
    assert!(mirror.requests().iter().any(|r| r.path.contains("/blobs/")));

    // A dead mirror and a mirror without the image: the origin serves it (via the env var).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let empty = FakeRegistry::start(fixtures::layout());
    let busybox = fixtures::image("busybox:gzip");
    for target in [
        busybox.layers[0].digest.as_str(),
        busybox.config.digest.as_str(),
        "gzip",
    ] {
        empty.fault(target, Fault::Status(404));
    }
    let fresh = root();
    let file = write_mirrors(
        fresh.path(),
        &origin.addr(),
        &[
            format!("http://{dead_addr}"),
            format!("http://{}", empty.addr()),
        ],
    );
    let out = ok(berth_pull(fresh.path())
        .env("BERTH_MIRRORS", &file)
        .arg("--json")
        .arg(&name));
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(v["source"], origin.addr());
    assert!(
        !empty.requests_to("gzip").is_empty(),
        "the second mirror was asked"
    );
    assert!(origin.requests().iter().any(|r| r.path.contains("/blobs/")));
    let bad = write_mirrors(fresh.path(), "x", &["ftp://nope".to_string()]);
    fails(
        berth_pull(fresh.path())
            .arg("--mirrors")
            .arg(&bad)
            .arg(&name),
        2,
    );
}

#[test]
fn blobs_already_present_are_not_fetched_again() {
    let fake = FakeRegistry::start(fixtures::layout());
    let dir = root();
    let gz = ok(berth_pull(dir.path()).arg(format!("{}/busybox:gzip", fake.addr())));
    fake.clear_requests();
    // busybox:docker shares the gzip layer and the config bytes with busybox:gzip.
    ok(berth_pull(dir.path()).arg(format!("{}/busybox:docker", fake.addr())));
    let blob_reqs: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/blobs/"))
        .collect();
    assert!(blob_reqs.is_empty(), "{blob_reqs:?}");
    // A pinned reference whose blobs are all present needs no network at all.
    fake.clear_requests();
    assert_eq!(ok(berth_pull(dir.path()).arg(gz.trim())), gz);
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
}

#[test]
fn two_concurrent_pulls_both_succeed_with_one_copy() {
    let reg = Registry::start();
    let pushed = reg.push_fixture("layers:latest", "layers:latest");
    let dir = root();
    let name = format!("{}/layers:latest", reg.addr());
    let children: Vec<_> = (0..2)
        .map(|_| {
            berth_pull(dir.path())
                .arg(&name)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pushed);
    }
    let image = fixtures::image("layers:latest");
    let mut expected: BTreeSet<String> = image
        .layers
        .iter()
        .map(|l| l.digest.trim_start_matches("sha256:").to_string())
        .collect();
    expected.insert(
        image
            .config
            .digest
            .trim_start_matches("sha256:")
            .to_string(),
    );
    expected.insert(
        image
            .manifest
            .digest
            .trim_start_matches("sha256:")
            .to_string(),
    );
    assert_eq!(blobs(dir.path()), expected);
    assert_eq!(ref_names(dir.path()), vec![name]);
}

#[test]
fn skopeo_copied_images_are_first_class_and_housekeeping_works() {
    let dir = root();
    // An image skopeo put into the layout under its default (bare tag) name.
    let src = format!("oci:{}:busybox:gzip", fixtures::layout().display());
    let dst = format!("oci:{}:gzip", dir.path().join("content").display());
    let out = Command::new("skopeo")
        .args(["--insecure-policy", "copy", "--quiet"])
        .arg(&src)
        .arg(&dst)
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ok(berth_pull(dir.path()).arg("--list"));
    let digest = fixtures::image("busybox:gzip").manifest.digest;
    assert_eq!(listed.trim(), format!("gzip@{digest}"));
    let store = berth_content::Store::open(dir.path()).expect("open");
    let image = store
        .resolve("busybox:gzip")
        .expect("skopeo's bare tag resolves");
    assert_eq!(image.manifest_digest.as_str(), digest);
    assert_eq!(image.layers().len(), 1);

    // berth-pull adds an image beside it; remove one name and collect its blobs.
    let fake = FakeRegistry::start(fixtures::layout());
    let zstd = format!("{}/busybox:zstd", fake.addr());
    ok(berth_pull(dir.path()).arg(&zstd));
    let json_list = ok(berth_pull(dir.path()).arg("--list").arg("--json"));
    assert_eq!(json_list.lines().count(), 2);
    for line in json_list.lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        assert!(v["name"].is_string() && v["digest"].is_string() && v["pinned"].is_string());
    }
    let zstd_layer = fixtures::image("busybox:zstd").layers[0].digest.clone();
    let removed = ok(berth_pull(dir.path())
        .arg("--remove")
        .arg(&zstd)
        .arg("--gc")
        .arg("--json"));
    let mut lines = removed.lines();
    let r: Value = serde_json::from_str(lines.next().expect("removed line")).expect("json");
    assert_eq!(r["name"], zstd.as_str());
    let g: Value = serde_json::from_str(lines.next().expect("gc line")).expect("json");
    let gone: Vec<&str> = g["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(gone.contains(&zstd_layer.as_str()), "{g}");
    assert!(!blobs(dir.path()).contains(zstd_layer.trim_start_matches("sha256:")));
    // What skopeo wrote is untouched and still readable by skopeo.
    assert_eq!(skopeo_inspect_digest(dir.path(), "gzip"), digest);
    fails(berth_pull(dir.path()).arg("--remove").arg(&zstd), 3);
}

#[test]
fn names_on_stdin_pull_in_order() {
    let fake = FakeRegistry::start(fixtures::layout());
    let dir = root();
    let names = format!("{a}/busybox:gzip\n\n{a}/busybox:zstd\n", a = fake.addr());
    let mut child = berth_pull(dir.path())
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(names.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        digest_of(&lines[0]),
        fixtures::image("busybox:gzip").manifest.digest
    );
    assert_eq!(
        digest_of(&lines[1]),
        fixtures::image("busybox:zstd").manifest.digest
    );
}

#[test]
fn a_tls_registry_on_loopback_is_trusted_through_ca_file() {
    use berth_testkit::registry::Options;
    let reg = Registry::start_with(Options {
        auth: Some(("tls".into(), "pw".into())),
        tls: true,
    });
    let pushed = reg.push_fixture("busybox:gzip", "secure/busybox:1");
    let name = format!("{}/secure/busybox:1", reg.addr());
    let ca = reg.ca_file().expect("TLS registry has a CA");
    let dir = root();
    // The registry answers plain HTTP with "HTTP request to an HTTPS server": berth
    // switches to HTTPS, and without the CA the certificate is not trusted.
    let err = fails(
        berth_pull(dir.path())
            .arg("--creds")
            .arg("tls:pw")
            .arg(&name),
        1,
    );
    assert!(
        err.contains("certificate") || err.contains("https://"),
        "{err}"
    );
    let out = ok(berth_pull(dir.path())
        .arg("--ca-file")
        .arg(&ca)
        .arg("--creds")
        .arg("tls:pw")
        .arg(&name));
    assert_eq!(out.trim(), pushed);
}

#[test]
fn peak_memory_of_a_large_pull_stays_under_32_mb() {
    let fake = FakeRegistry::start(fixtures::large_layout());
    let dir = root();
    let pull = berth_pull(dir.path());
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("maxrss_kb=%M")
        .arg(pull.get_program())
        .args(pull.get_args());
    cmd.env_remove("REGISTRY_AUTH_FILE")
        .env_remove("BERTH_MIRRORS")
        .env("HOME", dir.path());
    cmd.arg(format!("{}/large:latest", fake.addr()));
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .expect("/usr/bin/time output (install the time package)")
        .trim()
        .parse()
        .expect("a number");
    let total: u64 = fixtures::image(fixtures::LARGE)
        .layers
        .iter()
        .map(|l| l.size)
        .sum();
    assert!(total > 40 << 20, "the large fixture is large");
    assert!(kb < 32 * 1024, "peak RSS {kb} KiB");
}
