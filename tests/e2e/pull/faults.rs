//! berth-pull against registries that misbehave: faults, hostile content, kill -9.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::fake::{FakeRegistry, Fault};
use berth_testkit::fixtures;

use super::{berth_pull, blobs, digest_of, fails, ok, ref_names, root};

#[test]
fn a_dropped_connection_resumes_with_a_range_request() {
    let fake = FakeRegistry::start(fixtures::layout());
    let layer = fixtures::image("busybox:gzip").layers[0].clone();
    fake.fault(&layer.digest, Fault::DropAfter(1000));
    let dir = root();
    ok(berth_pull(dir.path()).arg(format!("{}/busybox:gzip", fake.addr())));
    let reqs = fake.requests_to(&layer.digest);
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=1000-"));
    assert!(blobs(dir.path()).contains(layer.digest.trim_start_matches("sha256:")));
}

#[test]
fn server_errors_are_retried() {
    let fake = FakeRegistry::start(fixtures::layout());
    let layer = fixtures::image("busybox:gzip").layers[0].clone();
    fake.fault(&layer.digest, Fault::ServerError(2));
    fake.fault("gzip", Fault::ServerError(1));
    let dir = root();
    ok(berth_pull(dir.path()).arg(format!("{}/busybox:gzip", fake.addr())));
    assert_eq!(fake.requests_to(&layer.digest).len(), 3);

    let always = FakeRegistry::start(fixtures::layout());
    always.fault(&layer.digest, Fault::Status(503));
    let fresh = root();
    let err = fails(
        berth_pull(fresh.path()).arg(format!("{}/busybox:gzip", always.addr())),
        1,
    );
    assert!(err.contains("503"), "{err}");
    assert_eq!(
        always.requests_to(&layer.digest).len(),
        5,
        "bounded retries"
    );
    assert!(blobs(fresh.path()).is_empty());
}

#[test]
fn hostile_registries_get_one_line_errors_and_change_nothing() {
    let busybox = fixtures::image("busybox:gzip");
    let layer = busybox.layers[0].digest.clone();
    let config = busybox.config.digest.clone();
    let cases: Vec<(&str, String, Fault, i32, &str)> = vec![
        (
            "layer digest",
            layer.clone(),
            Fault::WrongDigest,
            1,
            "digest",
        ),
        ("layer size", layer.clone(), Fault::WrongSize, 1, "bytes"),
        (
            "layer truncated",
            layer.clone(),
            Fault::Truncate(100),
            1,
            "bytes",
        ),
        (
            "config digest",
            config.clone(),
            Fault::WrongDigest,
            1,
            "digest",
        ),
        ("config size", config.clone(), Fault::WrongSize, 1, "bytes"),
        (
            "oversize manifest",
            "gzip".into(),
            Fault::OversizeManifest,
            1,
            "4 MiB",
        ),
        (
            "invalid json",
            "gzip".into(),
            Fault::InvalidJson,
            1,
            "invalid JSON",
        ),
        (
            "wrong media type",
            "gzip".into(),
            Fault::WrongMediaType,
            6,
            "media type",
        ),
        ("schema 1", "gzip".into(), Fault::SchemaOne, 6, "schema 1"),
        ("missing", "gzip".into(), Fault::Status(404), 3, "404"),
        (
            "manifest digest",
            "gzip".into(),
            Fault::WrongDigest,
            1,
            "digest",
        ),
    ];
    for (what, target, fault, code, needle) in cases {
        let fake = FakeRegistry::start(fixtures::layout());
        let dir = root();
        // A store that already holds another image (sharing no blob with busybox:gzip): it
        // must stay exactly as it is.
        ok(berth_pull(dir.path())
            .args(["--platform", "linux/arm64"])
            .arg(format!("{}/multiarch:latest", fake.addr())));
        let before_blobs = blobs(dir.path());
        let before_index = std::fs::read(dir.path().join("content/index.json")).expect("index");
        fake.fault(&target, fault);
        let err = fails(
            berth_pull(dir.path()).arg(format!("{}/busybox:gzip", fake.addr())),
            code,
        );
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(blobs(dir.path()), before_blobs, "{what}: blobs changed");
        assert_eq!(
            std::fs::read(dir.path().join("content/index.json")).expect("index"),
            before_index,
            "{what}"
        );
    }
}

#[test]
fn a_manifest_pulled_by_digest_must_match_it() {
    let fake = FakeRegistry::start(fixtures::layout());
    let digest = fixtures::image("busybox:gzip").manifest.digest;
    fake.fault(&digest, Fault::WrongDigest);
    let dir = root();
    let err = fails(
        berth_pull(dir.path()).arg(format!("{}/busybox@{digest}", fake.addr())),
        1,
    );
    assert!(err.contains("digest"), "{err}");
    assert!(blobs(dir.path()).is_empty());
}

/// Kills (SIGKILL) and reaps the child on drop unless it was already reaped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

#[test]
fn a_pull_killed_mid_blob_resumes_where_it_stopped() {
    let fake = FakeRegistry::start(fixtures::large_layout());
    let image = fixtures::image(fixtures::LARGE);
    let big = image
        .layers
        .iter()
        .max_by_key(|l| l.size)
        .expect("layers")
        .clone();
    // The registry sends half of the big layer, then holds the connection silent: the
    // download is certainly partial when berth-pull is killed, however fast or slow it runs.
    let stall_at = big.size / 2;
    fake.fault(&big.digest, Fault::StallAfter(stall_at));
    let dir = root();
    let name = format!("{}/large:latest", fake.addr());
    let mut child = KillOnDrop(
        berth_pull(dir.path())
            .arg("--jobs")
            .arg("1")
            .arg(&name)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let partial = dir
        .path()
        .join("ingest")
        .join(format!("{}.data", big.digest.trim_start_matches("sha256:")));
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let len = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            break;
        }
        assert!(
            child.0.try_wait().expect("try_wait").is_none(),
            "berth-pull ended before it could be killed"
        );
        assert!(
            Instant::now() < deadline,
            "no partial download of {} appeared",
            big.digest
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Child::kill sends SIGKILL to the child's pid.
    child.0.kill().expect("kill -9");
    child.0.wait().expect("reap");
    assert!(!blobs(dir.path()).contains(big.digest.trim_start_matches("sha256:")));
    assert!(ref_names(dir.path()).is_empty());
    let kept = std::fs::metadata(&partial).expect("partial kept").len();
    assert!(
        kept > 0 && kept <= stall_at,
        "kept {kept} of {stall_at} sent"
    );
    fake.clear_requests();
    let out = ok(berth_pull(dir.path()).arg(&name));
    assert_eq!(digest_of(&out), image.manifest.digest);
    let reqs = fake.requests_to(&big.digest);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        reqs[0].range.as_deref(),
        Some(format!("bytes={kept}-").as_str()),
        "resumed from the end of the partial file"
    );
    assert!(blobs(dir.path()).contains(big.digest.trim_start_matches("sha256:")));
}
