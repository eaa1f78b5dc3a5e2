//! Routing, auth and faults of the fake registry.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::http::{self, RequestHead, Response};
use super::{Auth, Fault, Request, State};
use crate::fixtures::{self, media};

const SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
const UNKNOWN_MEDIA_TYPE: &str = "application/vnd.berth.unknown+json";
const OVERSIZE: usize = 5 << 20;

/// Whether a fault or request target matches the request `path`.
pub(crate) fn matches(target: &str, path: &str) -> bool {
    if target.starts_with('/') {
        target == path
    } else {
        path.strip_suffix(target).is_some_and(|p| p.ends_with('/'))
    }
}

/// Handles one connection: one request, one response, close.
pub(crate) fn handle(state: &State, mut conn: TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let Some(head) = http::read_head(&conn)? else {
        return Ok(());
    };
    state.requests.lock().expect("requests").push(Request {
        method: head.method.clone(),
        path: head.path.clone(),
        query: head.query.clone(),
        range: head.header("Range").map(str::to_owned),
        authorization: head.header("Authorization").map(str::to_owned),
        accept: head.header("Accept").map(str::to_owned),
    });
    let result = respond(state, &head, &mut conn);
    let _ = conn.shutdown(Shutdown::Write);
    result
}

fn respond(state: &State, head: &RequestHead, conn: &mut TcpStream) -> io::Result<()> {
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        return error(
            conn,
            405,
            "UNSUPPORTED",
            "the fake registry is read-only",
            head_only,
        );
    }
    if head.path == "/token" {
        return token(state, head, conn);
    }
    let Some(rest) = head.path.strip_prefix("/v2") else {
        return error(conn, 404, "NOT_FOUND", "not a registry path", head_only);
    };
    let route = Route::parse(rest);
    if let Some(resp) = challenge(state, head, &route) {
        let body = error_body("UNAUTHORIZED", "authentication required");
        return resp
            .header("Content-Type", "application/json")
            .send(conn, &body, head_only);
    }
    let fault = take_fault(state, &head.path);
    match fault {
        Some(Fault::ServerError(_)) => {
            return error(conn, 500, "UNKNOWN", "injected server error", head_only)
        }
        Some(Fault::Status(code)) => {
            return error(conn, code, "UNKNOWN", "injected status", head_only)
        }
        _ => {}
    }
    match route {
        Route::Base => Response::new(200)
            .header("Content-Type", "application/json")
            .header("Docker-Distribution-Api-Version", "registry/2.0")
            .send(conn, b"{}", head_only),
        Route::Manifest { name, reference } => match manifest(state, &name, &reference) {
            Some((bytes, media_type)) => {
                let target = ManifestTarget {
                    name: &name,
                    reference: &reference,
                    bytes,
                    media_type,
                };
                serve_manifest(state, conn, head_only, target, fault)
            }
            None => error(conn, 404, "MANIFEST_UNKNOWN", "manifest unknown", head_only),
        },
        Route::Blob { digest } => {
            if !valid_digest(&digest) {
                return error(conn, 404, "DIGEST_INVALID", "invalid digest", head_only);
            }
            match File::open(fixtures::blob_path(&state.layout, &digest)) {
                Ok(f) => serve_blob(state, conn, head, &digest, f, fault),
                Err(_) => error(
                    conn,
                    404,
                    "BLOB_UNKNOWN",
                    "blob unknown to registry",
                    head_only,
                ),
            }
        }
        Route::Other => error(conn, 404, "NOT_FOUND", "unknown path", head_only),
    }
}

enum Route {
    Base,
    Manifest { name: String, reference: String },
    Blob { digest: String },
    Other,
}

impl Route {
    /// Parses what follows `/v2`.
    fn parse(rest: &str) -> Route {
        if rest.is_empty() || rest == "/" {
            return Route::Base;
        }
        let rest = &rest[1..];
        if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
            return Route::Manifest {
                name: name.to_owned(),
                reference: reference.to_owned(),
            };
        }
        if let Some((_, digest)) = rest.rsplit_once("/blobs/") {
            return Route::Blob {
                digest: digest.to_owned(),
            };
        }
        Route::Other
    }

    fn repo(&self) -> Option<&str> {
        match self {
            Route::Manifest { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// The 401 to answer when `head` lacks the credentials `state.auth` wants.
fn challenge(state: &State, head: &RequestHead, route: &Route) -> Option<Response> {
    let given = head.header("Authorization").unwrap_or("");
    match &state.auth {
        Auth::None => None,
        Auth::Basic { user, pass } => (!basic_ok(given, user, pass))
            .then(|| Response::new(401).header("WWW-Authenticate", r#"Basic realm="fake""#)),
        Auth::Bearer { token, .. } => {
            if given == format!("Bearer {token}") {
                return None;
            }
            let mut c = format!(
                r#"Bearer realm="http://{}/token",service="fake""#,
                state.addr
            );
            let repo = route
                .repo()
                .map(str::to_owned)
                .or_else(|| blob_repo(&head.path));
            if let Some(repo) = repo {
                c.push_str(&format!(r#",scope="repository:{repo}:pull""#));
            }
            Some(Response::new(401).header("WWW-Authenticate", c))
        }
    }
}

fn blob_repo(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    rest.rsplit_once("/blobs/").map(|(name, _)| name.to_owned())
}

fn basic_ok(given: &str, user: &str, pass: &str) -> bool {
    let Some(b64) = given.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    decoded == format!("{user}:{pass}").as_bytes()
}

/// `GET /token`: a token for the right basic credentials (or anyone, when none are set).
fn token(state: &State, head: &RequestHead, conn: &mut TcpStream) -> io::Result<()> {
    let head_only = head.method == "HEAD";
    let Auth::Bearer { creds, token } = &state.auth else {
        return error(conn, 404, "NOT_FOUND", "no token service", head_only);
    };
    let given = head.header("Authorization").unwrap_or("");
    if let Some((user, pass)) = creds {
        if !basic_ok(given, user, pass) {
            return error(conn, 401, "UNAUTHORIZED", "bad credentials", head_only);
        }
    }
    let body = json!({"token": token, "access_token": token, "expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"});
    Response::new(200)
        .header("Content-Type", "application/json")
        .send(conn, body.to_string().as_bytes(), head_only)
}

/// The fault to apply to `path`, counting it down.
fn take_fault(state: &State, path: &str) -> Option<Fault> {
    let mut rules = state.rules.lock().expect("rules");
    let rule = rules
        .iter_mut()
        .find(|r| matches(&r.target, path) && r.remaining.is_none_or(|n| n > 0))?;
    if let Some(n) = &mut rule.remaining {
        *n -= 1;
    }
    Some(rule.fault.clone())
}

fn valid_digest(d: &str) -> bool {
    d.strip_prefix("sha256:").is_some_and(|h| {
        h.len() == 64
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The manifest (bytes, media type) for `reference` (tag or digest) of repository `name`.
fn manifest(state: &State, name: &str, reference: &str) -> Option<(Vec<u8>, String)> {
    if reference.starts_with("sha256:") {
        if !valid_digest(reference) {
            return None;
        }
        let bytes = std::fs::read(fixtures::blob_path(&state.layout, reference)).ok()?;
        let media_type = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| media::OCI_MANIFEST.to_owned());
        return Some((bytes, media_type));
    }
    let last = name.rsplit('/').next().unwrap_or(name);
    let desc = [format!("{name}:{reference}"), format!("{last}:{reference}")]
        .iter()
        .find_map(|r| fixtures::layout_ref(&state.layout, r).ok())?;
    let bytes = std::fs::read(fixtures::blob_path(&state.layout, &desc.digest)).ok()?;
    Some((bytes, desc.media_type))
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A manifest about to be served.
struct ManifestTarget<'a> {
    name: &'a str,
    reference: &'a str,
    bytes: Vec<u8>,
    media_type: String,
}

fn serve_manifest(
    state: &State,
    conn: &mut TcpStream,
    head_only: bool,
    target: ManifestTarget<'_>,
    fault: Option<Fault>,
) -> io::Result<()> {
    let ManifestTarget {
        name,
        reference,
        bytes,
        media_type,
    } = target;
    let digest = digest_of(&bytes);
    let (body, media_type, digest_header) = match fault {
        Some(Fault::WrongDigest) => (corrupt(bytes), media_type, digest),
        Some(Fault::WrongSize) => (with_extra_byte(bytes), media_type, digest),
        Some(Fault::Truncate(n)) => (truncate(bytes, n), media_type, digest),
        Some(Fault::OversizeManifest) => {
            let b = oversize(&bytes, &media_type);
            let d = digest_of(&b);
            (b, media_type, d)
        }
        Some(Fault::InvalidJson) => {
            let b = bytes[..bytes.len() / 2].to_vec();
            let d = digest_of(&b);
            (b, media_type, d)
        }
        Some(Fault::WrongMediaType) => {
            let mut v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            v["mediaType"] = json!(UNKNOWN_MEDIA_TYPE);
            let b = serde_json::to_vec(&v).expect("json");
            let d = digest_of(&b);
            (b, UNKNOWN_MEDIA_TYPE.to_owned(), d)
        }
        Some(Fault::SchemaOne) => {
            let b = schema1(name, reference);
            let d = digest_of(&b);
            (b, SCHEMA1.to_owned(), d)
        }
        Some(Fault::DropAfter(n) | Fault::StallAfter(n)) => {
            let resp = Response::new(200)
                .header("Content-Type", media_type)
                .header("Docker-Content-Digest", digest)
                .header("Content-Length", bytes.len().to_string());
            resp.write_head(conn)?;
            if !head_only {
                conn.write_all(&bytes[..(n as usize).min(bytes.len())])?;
            }
            conn.flush()?;
            if matches!(fault, Some(Fault::StallAfter(_))) && !head_only {
                hold(state, conn)?;
            }
            return Ok(());
        }
        _ => (bytes, media_type, digest),
    };
    Response::new(200)
        .header("Content-Type", media_type)
        .header("Docker-Content-Digest", digest_header)
        .send(conn, &body, head_only)
}

fn serve_blob(
    state: &State,
    conn: &mut TcpStream,
    head: &RequestHead,
    digest: &str,
    mut file: File,
    fault: Option<Fault>,
) -> io::Result<()> {
    let head_only = head.method == "HEAD";
    let len = file.metadata()?.len();
    let base = Response::new(200)
        .header("Content-Type", "application/octet-stream")
        .header("Docker-Content-Digest", digest)
        .header("Accept-Ranges", "bytes");
    match fault {
        Some(Fault::WrongDigest | Fault::WrongSize | Fault::Truncate(_)) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let body = match fault {
                Some(Fault::WrongDigest) => corrupt(bytes),
                Some(Fault::WrongSize) => with_extra_byte(bytes),
                Some(Fault::Truncate(n)) => truncate(bytes, n),
                _ => unreachable!("matched above"),
            };
            return base.send(conn, &body, head_only);
        }
        Some(
            Fault::OversizeManifest | Fault::InvalidJson | Fault::WrongMediaType | Fault::SchemaOne,
        ) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let body = match fault {
                Some(Fault::OversizeManifest) => oversize(&bytes, media::OCI_MANIFEST),
                Some(Fault::InvalidJson) => bytes[..bytes.len() / 2].to_vec(),
                _ => schema1("blob", "blob"),
            };
            return base.send(conn, &body, head_only);
        }
        _ => {}
    }
    let (status, start, end) = match head.header("Range") {
        None => (200, 0, len),
        Some(r) => match http::parse_range(r, len) {
            Ok((s, e)) => (206, s, e + 1),
            Err(()) => {
                return Response::new(416)
                    .header("Content-Range", format!("bytes */{len}"))
                    .send(conn, b"", head_only);
            }
        },
    };
    let mut resp = base;
    resp.status = status;
    if status == 206 {
        resp = resp.header("Content-Range", format!("bytes {start}-{}/{len}", end - 1));
    }
    resp = resp.header("Content-Length", (end - start).to_string());
    resp.write_head(conn)?;
    if head_only {
        return conn.flush();
    }
    file.seek(SeekFrom::Start(start))?;
    let to_send = match fault {
        Some(Fault::DropAfter(n) | Fault::StallAfter(n)) => n.min(end - start),
        _ => end - start,
    };
    io::copy(&mut (&mut file).take(to_send), conn)?;
    conn.flush()?;
    if matches!(fault, Some(Fault::StallAfter(_))) {
        hold(state, conn)?;
    }
    Ok(())
}

/// Keeps `conn` open without sending anything until the client closes it (or dies) or the
/// registry is dropped. Whatever the client sends meanwhile is discarded.
fn hold(state: &State, conn: &mut TcpStream) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut sink = [0u8; 512];
    while !state.stopped.load(Ordering::SeqCst) {
        match conn.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn error(
    conn: &mut TcpStream,
    status: u16,
    code: &str,
    message: &str,
    head_only: bool,
) -> io::Result<()> {
    Response::new(status)
        .header("Content-Type", "application/json")
        .send(conn, &error_body(code, message), head_only)
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    json!({"errors": [{"code": code, "message": message, "detail": null}]})
        .to_string()
        .into_bytes()
}

/// Same length, different digest: one hex digit of the first `sha256:` in JSON changed (so
/// it still parses), else the middle byte flipped.
fn corrupt(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(i) = bytes.windows(7).position(|w| w == b"sha256:") {
        let at = i + 7;
        if at < bytes.len() {
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            return bytes;
        }
    }
    if !bytes.is_empty() {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
    } else {
        bytes.push(0);
    }
    bytes
}

fn with_extra_byte(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.push(b'\n');
    bytes
}

fn truncate(mut bytes: Vec<u8>, n: u64) -> Vec<u8> {
    bytes.truncate(n as usize);
    bytes
}

/// The manifest padded past 4 MiB with an annotation; still valid JSON.
fn oversize(bytes: &[u8], media_type: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes)
        .unwrap_or_else(|_| json!({"schemaVersion": 2, "mediaType": media_type}));
    v["annotations"] = json!({"org.berth.padding": "a".repeat(OVERSIZE)});
    serde_json::to_vec(&v).expect("json")
}

fn schema1(name: &str, tag: &str) -> Vec<u8> {
    json!({
        "schemaVersion": 1,
        "name": name,
        "tag": tag,
        "architecture": "amd64",
        "fsLayers": [{"blobSum": "sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4"}],
        "history": [{"v1Compatibility": "{\"id\":\"berth-fake\",\"architecture\":\"amd64\"}"}],
        "signatures": [],
    })
    .to_string()
    .into_bytes()
}
