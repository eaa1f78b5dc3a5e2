//! A tiny in-process registry that serves an OCI layout and misbehaves on request.
//!
//! It answers the read side of the distribution API on `127.0.0.1:PORT` (plain HTTP, one
//! request per connection):
//! `GET|HEAD /v2/`, `/v2/<name>/manifests/<tag|digest>`, `/v2/<name>/blobs/<digest>` (with
//! `Range: bytes=N-` → 206). A tag resolves to the layout ref `<name>:<tag>`, or
//! `<last path segment of name>:<tag>`: `/v2/library/busybox/manifests/gzip` serves the
//! fixture `busybox:gzip`.
//!
//! ```no_run
//! use berth_testkit::fake::{FakeRegistry, Fault};
//! use berth_testkit::fixtures;
//! let reg = FakeRegistry::start(fixtures::layout());
//! let layer = &fixtures::image("busybox:gzip").layers[0];
//! reg.fault(&layer.digest, Fault::DropAfter(1000)); // first GET dies after 1000 bytes
//! // … pull from reg.addr(), then:
//! assert!(reg.requests().iter().any(|r| r.range.as_deref() == Some("bytes=1000-")));
//! ```

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

mod http;
mod serve;

/// A way to misbehave on one path. See [`FakeRegistry::fault`] for how paths match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Serve content whose digest is not the one asked for: same length, one byte changed
    /// (for JSON, one hex digit of the first digest in it, so it still parses).
    /// `Docker-Content-Digest` still names the right digest. Always.
    WrongDigest,
    /// Serve the content plus one extra byte, with a Content-Length that matches. Always.
    WrongSize,
    /// Serve only the first N bytes, with a Content-Length that matches. Always.
    Truncate(u64),
    /// Announce the full Content-Length, send N bytes of the body, then close the
    /// connection. Once; later requests (e.g. `Range: bytes=N-`) are served normally.
    DropAfter(u64),
    /// Announce the full Content-Length, send N bytes of the body, then hold the connection
    /// open without sending more until the client goes away (e.g. is killed) or the registry
    /// is dropped. Once; later requests (e.g. `Range: bytes=N-`) are served normally. Lets a
    /// test act on a download that is certainly partial, with no race against its speed.
    StallAfter(u64),
    /// Answer 500 the first K times, then serve normally.
    ServerError(u32),
    /// Answer with this status and an error body. Always.
    Status(u16),
    /// A manifest of 5 MiB (valid JSON, padded with an annotation). Always.
    OversizeManifest,
    /// Half of the real manifest: not valid JSON. Always.
    InvalidJson,
    /// The manifest with `mediaType` and Content-Type `application/vnd.berth.unknown+json`.
    WrongMediaType,
    /// A Docker schema 1 manifest (`application/vnd.docker.distribution.manifest.v1+prettyjws`).
    SchemaOne,
}

impl Fault {
    /// How many requests the fault applies to (`None`: all).
    fn times(&self) -> Option<u32> {
        match self {
            Fault::DropAfter(_) | Fault::StallAfter(_) => Some(1),
            Fault::ServerError(k) => Some(*k),
            _ => None,
        }
    }
}

/// One request the fake saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub query: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Accept` header.
    pub accept: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Auth {
    None,
    /// `Authorization: Basic` with these credentials on every request.
    Basic {
        user: String,
        pass: String,
    },
    /// The token flow: `/token` gives a token for these credentials (any, when `None`).
    Bearer {
        creds: Option<(String, String)>,
        token: String,
    },
}

pub(crate) struct Rule {
    pub(crate) target: String,
    pub(crate) fault: Fault,
    pub(crate) remaining: Option<u32>,
}

pub(crate) struct State {
    pub(crate) layout: PathBuf,
    pub(crate) addr: SocketAddr,
    pub(crate) auth: Auth,
    pub(crate) rules: Mutex<Vec<Rule>>,
    pub(crate) requests: Mutex<Vec<Request>>,
    /// Set on drop: stalled connections ([`Fault::StallAfter`]) let go.
    pub(crate) stopped: AtomicBool,
}

/// The fake registry. Drop stops it (the listener thread is joined).
pub struct FakeRegistry {
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeRegistry {
    /// Serves `layout` anonymously.
    pub fn start(layout: &Path) -> FakeRegistry {
        FakeRegistry::start_inner(layout, Auth::None)
    }

    /// Serves `layout` behind the bearer-token flow: `/v2/…` answers 401 with
    /// `WWW-Authenticate: Bearer realm="http://ADDR/token",service="fake"[,scope="repository:NAME:pull"]`;
    /// `/token` checks `Authorization: Basic user:pass` and returns `{"token": …}`; every
    /// other request needs `Authorization: Bearer <that token>`.
    pub fn start_with_bearer(layout: &Path, user: &str, pass: &str) -> FakeRegistry {
        let auth = Auth::Bearer {
            creds: Some((user.into(), pass.into())),
            token: new_token(),
        };
        FakeRegistry::start_inner(layout, auth)
    }

    /// Like [`FakeRegistry::start_with_bearer`], but `/token` gives a token to anyone (as
    /// Docker Hub does for public images).
    pub fn start_with_anonymous_bearer(layout: &Path) -> FakeRegistry {
        FakeRegistry::start_inner(
            layout,
            Auth::Bearer {
                creds: None,
                token: new_token(),
            },
        )
    }

    /// Serves `layout` requiring `Authorization: Basic user:pass` on every request.
    pub fn start_with_basic(layout: &Path, user: &str, pass: &str) -> FakeRegistry {
        FakeRegistry::start_inner(
            layout,
            Auth::Basic {
                user: user.into(),
                pass: pass.into(),
            },
        )
    }

    fn start_inner(layout: &Path, auth: Auth) -> FakeRegistry {
        let listener =
            TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 for the fake registry");
        let addr = listener.local_addr().expect("local_addr");
        let state = Arc::new(State {
            layout: layout.to_owned(),
            addr,
            auth,
            rules: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("fake-registry".into())
                .spawn(move || accept_loop(&listener, &state, &stop))
                .expect("spawning the fake registry thread")
        };
        FakeRegistry {
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.state.addr.to_string()
    }

    /// The token `/token` hands out (bearer mode).
    pub fn token(&self) -> Option<String> {
        match &self.state.auth {
            Auth::Bearer { token, .. } => Some(token.clone()),
            _ => None,
        }
    }

    /// Misbehave on `target`: either an exact request path (`/v2/busybox/manifests/gzip`,
    /// see [`manifest_path`] and [`blob_path`]), or a digest or tag that matches the last
    /// path segment of any manifest or blob request (`sha256:…` matches that blob and that
    /// manifest by digest in every repository). Later rules for the same target come after
    /// earlier ones; a rule whose count is used up no longer applies.
    pub fn fault(&self, target: &str, fault: Fault) {
        let remaining = fault.times();
        self.state.rules.lock().expect("rules").push(Rule {
            target: target.to_owned(),
            fault,
            remaining,
        });
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.rules.lock().expect("rules").clear();
    }

    /// Every request seen so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.requests.lock().expect("requests").clone()
    }

    /// The requests seen for exactly `path`, or for any path ending in `/<target>` when
    /// `target` does not start with `/` (as in [`FakeRegistry::fault`]).
    pub fn requests_to(&self, target: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| serve::matches(target, &r.path))
            .collect()
    }

    /// Forgets the requests seen so far.
    pub fn clear_requests(&self) {
        self.state.requests.lock().expect("requests").clear();
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wake the accept() call; it sees the flag and returns.
        let _ = TcpStream::connect(self.state.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `/v2/<repo>/manifests/<reference>`.
pub fn manifest_path(repo: &str, reference: &str) -> String {
    format!("/v2/{repo}/manifests/{reference}")
}

/// `/v2/<repo>/blobs/<digest>`.
pub fn blob_path(repo: &str, digest: &str) -> String {
    format!("/v2/{repo}/blobs/{digest}")
}

fn new_token() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("fake-token-{}-{nanos:x}", std::process::id())
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let state = Arc::clone(state);
        let _ = std::thread::Builder::new()
            .name("fake-registry-conn".into())
            .spawn(move || {
                let _ = serve::handle(&state, conn);
            });
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use base64::Engine as _;

    use super::*;
    use crate::fixtures;

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        fn content_length(&self) -> usize {
            self.header("Content-Length").unwrap().parse().unwrap()
        }
    }

    fn get(reg: &FakeRegistry, path: &str, headers: &[(&str, &str)]) -> Reply {
        request(reg, "GET", path, headers)
    }

    fn request(reg: &FakeRegistry, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let mut s = TcpStream::connect(reg.addr()).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", reg.addr());
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("end of head");
        let head = String::from_utf8(raw[..split].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').unwrap();
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Reply {
            status,
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    fn busybox() -> (FakeRegistry, fixtures::Image) {
        (
            FakeRegistry::start(fixtures::layout()),
            fixtures::image("busybox:gzip"),
        )
    }

    #[test]
    fn serves_manifests_by_tag_and_digest_and_blobs_with_their_digests() {
        let (reg, img) = busybox();
        assert_eq!(get(&reg, "/v2/", &[]).status, 200);
        for path in [
            manifest_path("busybox", "gzip"),
            manifest_path("library/busybox", "gzip"),
            manifest_path("busybox", &img.manifest.digest),
        ] {
            let r = get(&reg, &path, &[]);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(fixtures::sha256_digest(&r.body), img.manifest.digest);
            assert_eq!(
                r.header("Docker-Content-Digest"),
                Some(img.manifest.digest.as_str())
            );
            assert_eq!(
                r.header("Content-Type"),
                Some(fixtures::media::OCI_MANIFEST)
            );
        }
        let docker = fixtures::image("busybox:docker");
        let r = get(&reg, &manifest_path("busybox", "docker"), &[]);
        assert_eq!(
            r.header("Content-Type"),
            Some(fixtures::media::DOCKER_MANIFEST)
        );
        assert_eq!(fixtures::sha256_digest(&r.body), docker.manifest.digest);
        let idx = fixtures::index("multiarch:latest");
        let r = get(&reg, &manifest_path("multiarch", "latest"), &[]);
        assert_eq!(r.header("Content-Type"), Some(fixtures::media::OCI_INDEX));
        assert_eq!(fixtures::sha256_digest(&r.body), idx.index.digest);

        let layer = &img.layers[0];
        let r = get(&reg, &blob_path("busybox", &layer.digest), &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len() as u64, layer.size);
        assert_eq!(fixtures::sha256_digest(&r.body), layer.digest);
        let h = request(&reg, "HEAD", &blob_path("busybox", &layer.digest), &[]);
        assert_eq!(
            (h.status, h.content_length() as u64, h.body.len()),
            (200, layer.size, 0)
        );

        assert_eq!(
            get(&reg, &manifest_path("busybox", "nope"), &[]).status,
            404
        );
        assert_eq!(
            get(
                &reg,
                &blob_path("busybox", &format!("sha256:{}", "0".repeat(64))),
                &[]
            )
            .status,
            404
        );
        assert_eq!(
            get(&reg, "/v2/busybox/blobs/sha256:../../../../etc/passwd", &[]).status,
            404
        );
        assert_eq!(
            request(&reg, "PUT", "/v2/busybox/manifests/x", &[]).status,
            405
        );
        let seen = reg.requests_to(&layer.digest);
        assert_eq!(seen.len(), 2);
        assert_eq!(
            (seen[0].method.as_str(), seen[1].method.as_str()),
            ("GET", "HEAD")
        );
    }

    #[test]
    fn ranges_answer_206_and_416() {
        let (reg, img) = busybox();
        let layer = &img.layers[0];
        let full = std::fs::read(fixtures::blob_path(fixtures::layout(), &layer.digest)).unwrap();
        let r = get(
            &reg,
            &blob_path("busybox", &layer.digest),
            &[("Range", "bytes=1000-")],
        );
        assert_eq!(r.status, 206);
        assert_eq!(r.body, full[1000..]);
        assert_eq!(
            r.header("Content-Range"),
            Some(format!("bytes 1000-{}/{}", full.len() - 1, full.len()).as_str())
        );
        let r = get(
            &reg,
            &blob_path("busybox", &layer.digest),
            &[("Range", "bytes=10-19")],
        );
        assert_eq!(r.body, full[10..20]);
        let r = get(
            &reg,
            &blob_path("busybox", &layer.digest),
            &[("Range", &format!("bytes={}-", full.len()))],
        );
        assert_eq!(r.status, 416);
    }

    #[test]
    fn drop_after_closes_early_once_then_resume_works() {
        let (reg, img) = busybox();
        let layer = &img.layers[0];
        reg.fault(&layer.digest, Fault::DropAfter(4096));
        let path = blob_path("busybox", &layer.digest);
        let first = get(&reg, &path, &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.content_length() as u64, layer.size);
        assert_eq!(first.body.len(), 4096);
        let rest = get(&reg, &path, &[("Range", "bytes=4096-")]);
        assert_eq!(rest.status, 206);
        let mut whole = first.body;
        whole.extend(rest.body);
        assert_eq!(fixtures::sha256_digest(&whole), layer.digest);
        let ranges: Vec<Option<String>> = reg
            .requests_to(&path)
            .into_iter()
            .map(|r| r.range)
            .collect();
        assert_eq!(ranges, [None, Some("bytes=4096-".to_owned())]);
    }

    /// Sends a GET for `path` and reads the head and exactly `body` bytes of the body.
    fn get_partial(reg: &FakeRegistry, path: &str, body: usize) -> (TcpStream, Vec<u8>) {
        let mut s = TcpStream::connect(reg.addr()).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", reg.addr()).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                if raw.len() >= split + 4 + body {
                    assert_eq!(raw.len(), split + 4 + body, "sent more than asked");
                    return (s, raw[split + 4..].to_vec());
                }
            }
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed after {} bytes", raw.len());
            raw.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn stall_after_holds_the_connection_once_then_resume_works() {
        let (reg, img) = busybox();
        let layer = &img.layers[0];
        let path = blob_path("busybox", &layer.digest);
        reg.fault(&layer.digest, Fault::StallAfter(4096));
        let (mut stalled, first) = get_partial(&reg, &path, 4096);
        // Nothing more comes while the client is there.
        stalled
            .set_read_timeout(Some(std::time::Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 16];
        let err = stalled
            .read(&mut buf)
            .expect_err("the connection is held silent");
        assert!(matches!(
            err.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
        drop(stalled);
        let rest = get(&reg, &path, &[("Range", "bytes=4096-")]);
        assert_eq!(rest.status, 206);
        let mut whole = first;
        whole.extend(rest.body);
        assert_eq!(fixtures::sha256_digest(&whole), layer.digest);
        assert_eq!(get(&reg, &path, &[]).body.len() as u64, layer.size);

        // Dropping the registry lets a stalled client go: it sees the end of the stream.
        reg.fault(&layer.digest, Fault::StallAfter(10));
        let (mut stalled, _) = get_partial(&reg, &path, 10);
        drop(reg);
        let mut tail = Vec::new();
        stalled.read_to_end(&mut tail).unwrap();
        assert!(tail.is_empty(), "{} more bytes", tail.len());
    }

    #[test]
    fn server_errors_stop_after_k_and_status_is_sticky() {
        let (reg, img) = busybox();
        let path = manifest_path("busybox", "gzip");
        reg.fault(&path, Fault::ServerError(2));
        let statuses: Vec<u16> = (0..3).map(|_| get(&reg, &path, &[]).status).collect();
        assert_eq!(statuses, [500, 500, 200]);
        reg.fault(&img.config.digest, Fault::Status(403));
        assert_eq!(
            get(&reg, &blob_path("x", &img.config.digest), &[]).status,
            403
        );
        assert_eq!(
            get(&reg, &blob_path("y", &img.config.digest), &[]).status,
            403
        );
        reg.clear_faults();
        assert_eq!(
            get(&reg, &blob_path("y", &img.config.digest), &[]).status,
            200
        );
        reg.clear_requests();
        assert!(reg.requests().is_empty());
    }

    #[test]
    fn wrong_digest_wrong_size_and_truncate_change_the_content() {
        let (reg, img) = busybox();
        let layer = &img.layers[0];
        let path = blob_path("busybox", &layer.digest);
        reg.fault(&path, Fault::WrongDigest);
        let r = get(&reg, &path, &[]);
        assert_eq!(r.body.len() as u64, layer.size);
        assert_ne!(fixtures::sha256_digest(&r.body), layer.digest);
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(layer.digest.as_str())
        );

        let config = blob_path("busybox", &img.config.digest);
        reg.fault(&config, Fault::WrongSize);
        let r = get(&reg, &config, &[]);
        assert_eq!(r.body.len() as u64, img.config.size + 1);
        assert_eq!(r.content_length() as u64, img.config.size + 1);

        let by_digest = manifest_path("busybox", &img.manifest.digest);
        reg.fault(&by_digest, Fault::WrongDigest);
        let r = get(&reg, &by_digest, &[]);
        assert_ne!(fixtures::sha256_digest(&r.body), img.manifest.digest);
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("still JSON");

        let zstd = fixtures::image("busybox:zstd");
        reg.fault(&zstd.layers[0].digest, Fault::Truncate(100));
        let r = get(&reg, &blob_path("busybox", &zstd.layers[0].digest), &[]);
        assert_eq!((r.body.len(), r.content_length()), (100, 100));
    }

    #[test]
    fn hostile_manifests() {
        let (reg, _) = busybox();
        let cases = [
            ("oversize/busybox", Fault::OversizeManifest),
            ("invalid/busybox", Fault::InvalidJson),
            ("mediatype/busybox", Fault::WrongMediaType),
            ("schema1/busybox", Fault::SchemaOne),
        ];
        for (repo, fault) in &cases {
            reg.fault(&manifest_path(repo, "gzip"), fault.clone());
        }
        let r = get(&reg, &manifest_path("oversize/busybox", "gzip"), &[]);
        assert!(r.body.len() > 4 << 20 && r.content_length() == r.body.len());
        serde_json::from_slice::<serde_json::Value>(&r.body).expect("oversize is still JSON");
        let r = get(&reg, &manifest_path("invalid/busybox", "gzip"), &[]);
        assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err());
        let r = get(&reg, &manifest_path("mediatype/busybox", "gzip"), &[]);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.berth.unknown+json")
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["mediaType"], "application/vnd.berth.unknown+json");
        let r = get(&reg, &manifest_path("schema1/busybox", "gzip"), &[]);
        assert_eq!(
            r.header("Content-Type"),
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws")
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["schemaVersion"], 1);
        assert_eq!(
            get(&reg, &manifest_path("busybox", "gzip"), &[]).status,
            200,
            "other paths unaffected"
        );
    }

    fn basic(user: &str, pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    }

    #[test]
    fn bearer_flow() {
        let reg = FakeRegistry::start_with_bearer(fixtures::layout(), "alice", "pw");
        let base = get(&reg, "/v2/", &[]);
        assert_eq!(base.status, 401);
        assert_eq!(
            base.header("WWW-Authenticate"),
            Some(
                format!(
                    r#"Bearer realm="http://{}/token",service="fake""#,
                    reg.addr()
                )
                .as_str()
            )
        );
        let m = get(&reg, &manifest_path("library/busybox", "gzip"), &[]);
        assert_eq!(m.status, 401);
        assert!(m
            .header("WWW-Authenticate")
            .unwrap()
            .ends_with(r#",scope="repository:library/busybox:pull""#));

        let query = "/token?service=fake&scope=repository:library/busybox:pull";
        assert_eq!(get(&reg, query, &[]).status, 401);
        assert_eq!(
            get(&reg, query, &[("Authorization", &basic("alice", "nope"))]).status,
            401
        );
        let t = get(&reg, query, &[("Authorization", &basic("alice", "pw"))]);
        assert_eq!(t.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&t.body).unwrap();
        let token = v["token"].as_str().unwrap().to_owned();
        assert_eq!(Some(token.clone()), reg.token());

        let bearer = format!("Bearer {token}");
        let ok = get(
            &reg,
            &manifest_path("library/busybox", "gzip"),
            &[("Authorization", &bearer)],
        );
        assert_eq!(ok.status, 200);
        assert_eq!(
            get(&reg, "/v2/", &[("Authorization", "Bearer wrong")]).status,
            401
        );
        let tokens: Vec<Request> = reg.requests_to("/token");
        assert_eq!(tokens.len(), 3);
        assert_eq!(
            tokens[2].query,
            "service=fake&scope=repository:library/busybox:pull"
        );
        assert_eq!(
            reg.requests()
                .iter()
                .filter(|r| r.authorization.as_deref() == Some(bearer.as_str()))
                .count(),
            1
        );
    }

    #[test]
    fn anonymous_bearer_and_basic() {
        let reg = FakeRegistry::start_with_anonymous_bearer(fixtures::layout());
        let t = get(&reg, "/token?service=fake", &[]);
        assert_eq!(t.status, 200);
        assert_eq!(get(&reg, "/v2/", &[]).status, 401);

        let reg = FakeRegistry::start_with_basic(fixtures::layout(), "bob", "pw");
        let r = get(&reg, "/v2/", &[]);
        assert_eq!(
            (r.status, r.header("WWW-Authenticate")),
            (401, Some(r#"Basic realm="fake""#))
        );
        assert_eq!(
            get(&reg, "/v2/", &[("Authorization", &basic("bob", "pw"))]).status,
            200
        );
        assert_eq!(
            get(&reg, "/v2/", &[("Authorization", &basic("bob", "x"))]).status,
            401
        );
    }

    #[test]
    fn drop_stops_listening() {
        let (reg, _) = busybox();
        let addr = reg.addr();
        drop(reg);
        assert!(TcpStream::connect(addr).is_err());
    }
}
