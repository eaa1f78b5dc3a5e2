//! HTTP to registries: endpoints, scheme, auth challenges, retries, capped and streamed bodies.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use berth_content::{oci::MAX_DOCUMENT_SIZE, Ingest};
use berth_reference::Digest;
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_RANGE, CONTENT_TYPE, RANGE, WWW_AUTHENTICATE,
};
use reqwest::Response;

use crate::auth::{canonical_host, Challenge, CredentialSource};
use crate::mirrors::Mirrors;
use crate::pull::Progress;
use crate::spool::Spool;
use crate::Error;

/// Attempts per request against a registry, and against a mirror.
const ATTEMPTS: u32 = 5;
const MIRROR_ATTEMPTS: u32 = 2;
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(3);

/// How a [`Client`] reaches registries.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Use plain HTTP for every registry (loopback registries use it anyway).
    pub plain_http: bool,
    /// Extra CA certificates (PEM) to trust besides the built-in web roots.
    pub ca_file: Option<PathBuf>,
    pub credentials: CredentialSource,
    pub mirrors: Mirrors,
}

/// A registry client. Shares connections and tokens between requests; cheap to share by `&`.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    opts: Options,
    /// Authorization header per (endpoint host, repository).
    auth: Mutex<HashMap<(String, String), String>>,
    /// Loopback hosts found to speak HTTPS.
    https_loopback: Mutex<Vec<String>>,
}

/// One place to fetch a registry's content from: a mirror, or the registry itself.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// `scheme://host[:port]` for a mirror; `None` for the registry itself.
    mirror: Option<String>,
    /// The registry name of the reference (`docker.io`, `127.0.0.1:5000`).
    registry: String,
}

impl Endpoint {
    pub(crate) fn is_mirror(&self) -> bool {
        self.mirror.is_some()
    }

    /// `host[:port]` that requests go to.
    fn host(&self) -> String {
        match &self.mirror {
            Some(m) => canonical_host(m),
            None if self.registry == "docker.io" => "registry-1.docker.io".to_string(),
            None => self.registry.clone(),
        }
    }

    /// For messages and `--json`: where content came from.
    pub(crate) fn describe(&self) -> String {
        match &self.mirror {
            Some(m) => m.clone(),
            None => self.registry.clone(),
        }
    }

    fn attempts(&self) -> u32 {
        if self.is_mirror() {
            MIRROR_ATTEMPTS
        } else {
            ATTEMPTS
        }
    }
}

/// Whether `host[:port]` names this machine.
fn is_loopback(host: &str) -> bool {
    let h = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        }),
    };
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn backoff(failures: u32) -> Duration {
    let d = BACKOFF_START.saturating_mul(1 << failures.saturating_sub(1).min(8));
    d.min(BACKOFF_MAX)
}

impl Client {
    /// Builds a client; fails when the CA file cannot be read or parsed.
    pub fn new(opts: Options) -> Result<Client, Error> {
        // reqwest is built without a default crypto provider: berth uses ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16);
        if let Some(ca) = &opts.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Config {
                path: ca.clone(),
                reason: e.to_string(),
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::Config {
                path: ca.clone(),
                reason: format!("not a PEM certificate bundle: {e}"),
            })?;
            if certs.is_empty() {
                return Err(Error::Config {
                    path: ca.clone(),
                    reason: "no certificate in the file".into(),
                });
            }
            for c in certs {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().map_err(|e| Error::Tls(e.to_string()))?;
        Ok(Client {
            http,
            opts,
            auth: Mutex::default(),
            https_loopback: Mutex::default(),
        })
    }

    /// The mirrors of `registry` in order, then the registry itself.
    pub(crate) fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let mut eps: Vec<Endpoint> = self
            .opts
            .mirrors
            .for_registry(registry)
            .iter()
            .map(|m| Endpoint {
                mirror: Some(m.clone()),
                registry: registry.to_string(),
            })
            .collect();
        eps.push(Endpoint {
            mirror: None,
            registry: registry.to_string(),
        });
        eps
    }

    fn base_url(&self, ep: &Endpoint) -> String {
        if let Some(m) = &ep.mirror {
            return m.clone();
        }
        let host = ep.host();
        let https_found = self
            .https_loopback
            .lock()
            .expect("scheme cache")
            .contains(&host);
        let scheme = if https_found || !(self.opts.plain_http || is_loopback(&host)) {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}")
    }

    /// GETs `/v2/<repo>/<path>` from `ep`, answering auth challenges and retrying transient
    /// failures. Returns only a successful (2xx) response.
    pub(crate) async fn get(
        &self,
        ep: &Endpoint,
        repo: &str,
        path: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response, Error> {
        self.get_with(ep, repo, path, accept, 0, ep.attempts(), what)
            .await
    }

    /// [`Client::get`] from byte `offset`, with at most `attempts` tries.
    #[allow(clippy::too_many_arguments)]
    async fn get_with(
        &self,
        ep: &Endpoint,
        repo: &str,
        path: &str,
        accept: Option<&str>,
        offset: u64,
        attempts: u32,
        what: &str,
    ) -> Result<Response, Error> {
        let mut failures = 0;
        let mut authenticated = false;
        loop {
            let url = format!("{}/v2/{repo}/{path}", self.base_url(ep));
            let mut req = self.http.get(&url);
            if let Some(a) = accept {
                req = req.header(ACCEPT, a);
            }
            if offset > 0 {
                req = req.header(RANGE, format!("bytes={offset}-"));
            }
            let key = (ep.host(), repo.to_string());
            let cached = self.auth.lock().expect("auth cache").get(&key).cloned();
            if let Some(h) = &cached {
                req = req.header(AUTHORIZATION, h);
            }
            tracing::debug!(%url, offset, "GET");
            let err = match req.send().await {
                Err(e) => Error::Http {
                    url: url.clone(),
                    source: e.without_url(),
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if resp.status().is_success() {
                        return Ok(resp);
                    }
                    if status == 401 && !authenticated {
                        authenticated = true;
                        self.authenticate(ep, repo, &resp, what, &url).await?;
                        continue;
                    }
                    if status == 401 || status == 403 {
                        return Err(Error::Denied {
                            what: what.to_string(),
                            url,
                            status,
                        });
                    }
                    if status == 400
                        && ep.mirror.is_none()
                        && url.starts_with("http://")
                        && is_loopback(&ep.host())
                    {
                        let body = resp.text().await.unwrap_or_default();
                        if body.contains("HTTPS server") {
                            tracing::debug!(host = %ep.host(), "loopback registry speaks HTTPS");
                            self.https_loopback
                                .lock()
                                .expect("scheme cache")
                                .push(ep.host());
                            continue;
                        }
                        Error::Status {
                            what: what.to_string(),
                            url,
                            status,
                            detail: detail(&body),
                        }
                    } else {
                        let body = if status >= 500 {
                            String::new()
                        } else {
                            resp.text().await.unwrap_or_default()
                        };
                        Error::Status {
                            what: what.to_string(),
                            url,
                            status,
                            detail: detail(&body),
                        }
                    }
                }
            };
            failures += 1;
            if err.is_transient() && failures < attempts {
                tracing::warn!("{what}: {}; retrying", crate_chain(&err));
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
            return Err(err);
        }
    }

    /// Answers a 401: works out the Authorization header for (endpoint, repo) and caches it.
    async fn authenticate(
        &self,
        ep: &Endpoint,
        repo: &str,
        resp: &Response,
        what: &str,
        url: &str,
    ) -> Result<(), Error> {
        let challenge = resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(Challenge::parse)
            .ok_or_else(|| Error::Denied {
                what: what.to_string(),
                url: url.to_string(),
                status: 401,
            })?;
        let cred_host = if ep.is_mirror() {
            ep.host()
        } else {
            ep.registry.clone()
        };
        let creds = self.opts.credentials.lookup(&cred_host, !ep.is_mirror())?;
        let header = match challenge {
            Challenge::Basic => match creds {
                Some(c) => c.basic_header(),
                None => {
                    return Err(Error::NoCredentials {
                        what: what.to_string(),
                        url: url.to_string(),
                        host: cred_host,
                    })
                }
            },
            Challenge::Bearer { realm, service, .. } => {
                let scope = format!("repository:{repo}:pull");
                let mut query: Vec<(&str, &str)> = vec![("scope", &scope)];
                if let Some(s) = &service {
                    query.push(("service", s));
                }
                let mut failures = 0;
                let token_resp = loop {
                    let mut req = self.http.get(&realm).query(&query);
                    if let Some(c) = &creds {
                        req = req.header(AUTHORIZATION, c.basic_header());
                    }
                    match req.send().await {
                        Ok(r) if r.status().is_server_error() && failures + 1 < ATTEMPTS => {}
                        Ok(r) => break r,
                        Err(e) if failures + 1 >= ATTEMPTS => {
                            return Err(Error::Token {
                                realm,
                                reason: crate_chain(&e.without_url()),
                            })
                        }
                        Err(_) => {}
                    }
                    failures += 1;
                    tokio::time::sleep(backoff(failures)).await;
                };
                let status = token_resp.status();
                if !status.is_success() {
                    let reason = if creds.is_some() {
                        format!("credentials refused ({status})")
                    } else {
                        format!("{status} (no credentials for {cred_host})")
                    };
                    return Err(Error::Token { realm, reason });
                }
                let body = read_capped(token_resp, 1 << 20, "token response").await?;
                #[derive(serde::Deserialize)]
                struct Token {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let t: Token = serde_json::from_slice(&body).map_err(|e| Error::Token {
                    realm: realm.clone(),
                    reason: format!("invalid JSON: {e}"),
                })?;
                let token = t.token.or(t.access_token).filter(|t| !t.is_empty());
                let token = token.ok_or_else(|| Error::Token {
                    realm: realm.clone(),
                    reason: "no token in the response".into(),
                })?;
                format!("Bearer {token}")
            }
        };
        self.auth
            .lock()
            .expect("auth cache")
            .insert((ep.host(), repo.to_string()), header);
        Ok(())
    }

    /// Fetches a manifest or index: returns the bytes (at most 4 MiB), the Content-Type and
    /// the `Docker-Content-Digest` header.
    pub(crate) async fn fetch_manifest(
        &self,
        ep: &Endpoint,
        repo: &str,
        selector: &str,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>, Option<String>), Error> {
        use berth_content::oci::media_type as mt;
        let accept = [
            mt::OCI_INDEX,
            mt::DOCKER_INDEX,
            mt::OCI_MANIFEST,
            mt::DOCKER_MANIFEST,
        ]
        .join(", ");
        let resp = self
            .get(
                ep,
                repo,
                &format!("manifests/{selector}"),
                Some(&accept),
                what,
            )
            .await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let digest = header("docker-content-digest");
        let bytes = read_capped(resp, MAX_DOCUMENT_SIZE, what).await?;
        Ok((bytes, content_type, digest))
    }

    /// Fetches a small blob (a config) whole, at most 4 MiB.
    pub(crate) async fn fetch_small_blob(
        &self,
        ep: &Endpoint,
        repo: &str,
        digest: &Digest,
        what: &str,
    ) -> Result<Vec<u8>, Error> {
        let resp = self
            .get(ep, repo, &format!("blobs/{digest}"), None, what)
            .await?;
        read_capped(resp, MAX_DOCUMENT_SIZE, what).await
    }

    /// Streams blob `digest` of `size` bytes into `ingest`, from its current offset, trying
    /// each endpoint in turn and resuming with a range request after a broken connection.
    /// The bytes are written and hashed on a thread of their own ([`Spool`]). Returns the
    /// ingest, whole (not yet verified), and the number of bytes fetched over the network.
    pub(crate) async fn fetch_blob(
        &self,
        registry: &str,
        repo: &str,
        ingest: Ingest,
        progress: &dyn Progress,
    ) -> Result<(Ingest, u64), Error> {
        let eps = self.endpoints(registry);
        let mut spool = Spool::start(ingest);
        let mut fetched = 0;
        for (i, ep) in eps.iter().enumerate() {
            let last = i + 1 == eps.len();
            let mut failures = 0;
            loop {
                if spool.offset() == spool.size() {
                    return Ok((spool.finish().await?, fetched));
                }
                let before = spool.offset();
                let result = self.fetch_blob_once(ep, repo, &mut spool, progress).await;
                fetched += spool.offset().saturating_sub(before);
                let err = match result {
                    Ok(()) => continue,
                    Err(e) => e,
                };
                failures += 1;
                if err.is_transient() && failures < ep.attempts() {
                    spool.flush().await?;
                    tracing::warn!(
                        "blob {}: {}; resuming at byte {}",
                        spool.digest(),
                        crate_chain(&err),
                        spool.offset()
                    );
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
                // A writer that stopped (too many bytes, a local I/O error) took the
                // partial with it: no other endpoint can continue it.
                if last || spool.is_stopped() {
                    return Err(err);
                }
                tracing::warn!(
                    "mirror {} failed for blob {}: {}; trying the next endpoint",
                    ep.describe(),
                    spool.digest(),
                    crate_chain(&err)
                );
                break;
            }
        }
        unreachable!("the registry itself is always the last endpoint")
    }

    async fn fetch_blob_once(
        &self,
        ep: &Endpoint,
        repo: &str,
        spool: &mut Spool,
        progress: &dyn Progress,
    ) -> Result<(), Error> {
        let digest = spool.digest().clone();
        let size = spool.size();
        let offset = spool.offset();
        let what = format!("blob {digest}");
        // No retries inside: the caller retries and resumes, counting every failure once.
        let mut resp = self
            .get_with(ep, repo, &format!("blobs/{digest}"), None, offset, 1, &what)
            .await?;
        let status = resp.status().as_u16();
        let ranged = status == 206;
        if offset > 0 && !ranged {
            // The server ignored the range: it sends the whole blob.
            spool.restart().await?;
            progress.position(&digest, 0);
        }
        if ranged {
            let start = resp
                .headers()
                .get(CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes "))
                .and_then(|v| v.split('-').next())
                .and_then(|v| v.parse::<u64>().ok());
            if start != Some(offset) {
                spool.restart().await?;
                return Err(Error::Protocol {
                    what,
                    reason: format!(
                        "asked for bytes {offset}- and got Content-Range starting at {start:?}"
                    ),
                });
            }
        }
        let start = spool.offset();
        if let Some(len) = resp.content_length() {
            if start + len != size {
                spool.restart().await?;
                return Err(berth_content::Error::SizeMismatch {
                    digest,
                    expected: size,
                    actual: start + len,
                }
                .into());
            }
        }
        let url = resp.url().to_string();
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    spool.write(Box::new(chunk)).await?;
                    progress.advance(&digest, n);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Http {
                        url,
                        source: e.without_url(),
                    })
                }
            }
        }
        if spool.offset() < size {
            return Err(Error::ShortBody {
                digest,
                got: spool.offset(),
                size,
            });
        }
        Ok(())
    }
}

/// Reads a whole response body, refusing more than `limit` bytes.
pub(crate) async fn read_capped(
    mut resp: Response,
    limit: u64,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let too_large = |size| berth_content::Error::TooLarge {
        what: what.to_string(),
        size,
    };
    if let Some(len) = resp.content_length() {
        if len > limit {
            return Err(too_large(len).into());
        }
    }
    let url = resp.url().to_string();
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::Http {
        url: url.clone(),
        source: e.without_url(),
    })? {
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(too_large((buf.len() + chunk.len()) as u64).into());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// The first line of a registry's error body, shortened, for a message.
fn detail(body: &str) -> String {
    let line = body.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return String::new();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {short}")
}

/// An error and its causes on one line (for warnings).
pub(crate) fn crate_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "localhost:80",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "[fe80::1]:5000",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(400));
        assert_eq!(backoff(10), BACKOFF_MAX);
    }

    #[test]
    fn endpoints_put_mirrors_first_and_docker_hub_on_its_api_host() {
        let mirrors =
            Mirrors::parse(br#"{"mirrors":{"docker.io":["http://127.0.0.1:9"]}}"#).unwrap();
        let c = Client::new(Options {
            mirrors,
            ..Options::default()
        })
        .unwrap();
        let eps = c.endpoints("docker.io");
        assert_eq!(eps.len(), 2);
        assert_eq!(c.base_url(&eps[0]), "http://127.0.0.1:9");
        assert_eq!(c.base_url(&eps[1]), "https://registry-1.docker.io");
        assert_eq!(
            c.base_url(&c.endpoints("127.0.0.1:5000")[0]),
            "http://127.0.0.1:5000"
        );
        let plain = Client::new(Options {
            plain_http: true,
            ..Options::default()
        })
        .unwrap();
        assert_eq!(
            plain.base_url(&plain.endpoints("registry.lan:5000")[0]),
            "http://registry.lan:5000"
        );
    }

    #[test]
    fn a_bad_ca_file_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not pem").unwrap();
        let e = Client::new(Options {
            ca_file: Some(f),
            ..Options::default()
        })
        .unwrap_err();
        assert_eq!(
            berth_kind::HasKind::kind(&e),
            berth_kind::Kind::InvalidArgument
        );
    }
}
