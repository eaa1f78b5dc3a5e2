//! Debian's `docker-registry` on a free loopback port, torn down on drop.
//!
//! ```no_run
//! use berth_testkit::registry::Registry;
//! let reg = Registry::start();
//! let pinned = reg.push_fixture("busybox:gzip", "busybox:1.36");
//! // pinned == "127.0.0.1:PORT/busybox:1.36@sha256:…"
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use tempfile::TempDir;

use crate::fixtures;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);
const BIND_ATTEMPTS: usize = 5;

/// Options for [`Registry::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Require these basic credentials (htpasswd, bcrypt).
    pub auth: Option<(String, String)>,
    /// Serve HTTPS with a certificate for 127.0.0.1 from a CA generated in the registry's
    /// temp dir ([`Registry::ca_file`]).
    pub tls: bool,
}

/// A running `docker-registry serve` on 127.0.0.1 with its storage in a temp dir.
///
/// Drop kills it by pid, reaps it and removes its directory, pass or fail.
pub struct Registry {
    child: Child,
    addr: String,
    options: Options,
    dir: TempDir,
}

impl Registry {
    /// Starts an anonymous, plain-HTTP registry. Panics when it cannot start.
    pub fn start() -> Registry {
        Registry::start_with(Options::default())
    }

    /// Starts a plain-HTTP registry that requires `user`/`pass` (basic auth, htpasswd).
    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::start_with(Options {
            auth: Some((user.into(), pass.into())),
            tls: false,
        })
    }

    /// Starts a registry with `options`. Panics when it cannot start.
    pub fn start_with(options: Options) -> Registry {
        Registry::try_start(options).unwrap_or_else(|e| panic!("starting docker-registry: {e:#}"))
    }

    fn try_start(options: Options) -> Result<Registry> {
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .context("creating temp dir")?;
        let auth_yaml = match &options.auth {
            None => String::new(),
            Some((user, pass)) => {
                let htpasswd = dir.path().join("htpasswd");
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .context("running htpasswd (install apache2-utils)")?;
                ensure!(
                    out.status.success(),
                    "htpasswd failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                std::fs::write(&htpasswd, &out.stdout).context("writing htpasswd")?;
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    htpasswd.display()
                )
            }
        };
        let tls_yaml = if options.tls {
            let (cert, key) = make_certs(dir.path())?;
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            )
        } else {
            String::new()
        };
        let mut last_err = None;
        for _ in 0..BIND_ATTEMPTS {
            let port = free_port()?;
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: berth-test-secret\n{tls_yaml}{auth_yaml}",
                    storage = dir.path().join("storage").display(),
                ),
            )
            .context("writing config.yml")?;
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .context("creating registry.log")?;
            let child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().context("cloning log fd")?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("spawning {REGISTRY_BIN} (install docker-registry)"))?;
            let mut child = ChildGuard(Some(child));
            match wait_ready(child.get(), &addr, &options, dir.path()) {
                // Still running after it answered: the answer was its own (see wait_ready).
                Ok(()) if matches!(child.get().try_wait(), Ok(None)) => {
                    let child = child.0.take().expect("child");
                    return Ok(Registry {
                        child,
                        addr,
                        options,
                        dir,
                    });
                }
                Ok(()) => {
                    last_err = Some(anyhow::anyhow!(
                        "docker-registry exited right after it answered on {addr}: {}",
                        self::log(dir.path())
                    ))
                }
                // It exited: most likely the port was taken between our probe and its bind.
                Err(Exited(e)) => last_err = Some(e),
                Err(Stuck(e)) => return Err(e),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// The CA certificate (PEM) that signed the registry's certificate, when it serves TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.options
            .tls
            .then(|| self.dir.path().join("certs/ca.pem"))
    }

    /// A directory holding `ca.crt`, for `skopeo --cert-dir` / `docker/certs.d` style tools.
    pub fn cert_dir(&self) -> Option<PathBuf> {
        self.options.tls.then(|| self.dir.path().join("certs.d"))
    }

    /// The credentials it requires, as `user:pass`.
    pub fn creds(&self) -> Option<String> {
        self.options.auth.as_ref().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The registry's storage and config directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Pushes `ref_name` of the OCI layout `layout` to `ADDR/REPO:TAG` with
    /// `skopeo copy --preserve-digests` (`--all` for an index) and returns the pinned
    /// reference `ADDR/REPO:TAG@sha256:…`. Panics on failure.
    pub fn push(&self, layout: &Path, ref_name: &str, repo_tag: &str) -> String {
        self.try_push(layout, ref_name, repo_tag)
            .unwrap_or_else(|e| {
                panic!(
                    "pushing {ref_name} from {} to {}/{repo_tag}: {e:#}",
                    layout.display(),
                    self.addr
                )
            })
    }

    /// [`Registry::push`] from the fixture layout ([`fixtures::layout`], or
    /// [`fixtures::large_layout`] for `large:latest`).
    pub fn push_fixture(&self, ref_name: &str, repo_tag: &str) -> String {
        let layout = if ref_name == fixtures::LARGE {
            fixtures::large_layout()
        } else {
            fixtures::layout()
        };
        self.push(layout, ref_name, repo_tag)
    }

    fn try_push(&self, layout: &Path, ref_name: &str, repo_tag: &str) -> Result<String> {
        let desc = fixtures::layout_ref(layout, ref_name)?;
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet", "--preserve-digests"]);
        if desc.media_type == fixtures::media::OCI_INDEX {
            cmd.arg("--all");
        }
        match self.cert_dir() {
            Some(d) => cmd.arg("--dest-cert-dir").arg(d),
            None => cmd.arg("--dest-tls-verify=false"),
        };
        if let Some(c) = self.creds() {
            cmd.arg("--dest-creds").arg(c);
        }
        // skopeo 1.9's oci: transport only finds OCI media types in index.json; a Docker
        // manifest goes through a dir: copy of its blobs instead.
        let _staged;
        if desc.media_type == fixtures::media::DOCKER_MANIFEST {
            let staged = tempfile::Builder::new()
                .prefix("push-")
                .tempdir_in(self.dir.path())
                .context("creating staging dir")?;
            stage_dir_transport(layout, &desc.digest, staged.path())?;
            cmd.arg(format!("dir:{}", staged.path().display()));
            _staged = staged;
        } else {
            cmd.arg(format!("oci:{}:{ref_name}", layout.display()));
        }
        cmd.arg(format!("docker://{}/{repo_tag}", self.addr));
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .context("running skopeo (install skopeo)")?;
        ensure!(
            out.status.success(),
            "skopeo copy failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(format!("{}/{repo_tag}@{}", self.addr, desc.digest))
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
        // TempDir removes the directory when the field drops.
    }
}

/// Kills and reaps a child that has not been handed over yet.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn get(&mut self) -> &mut Child {
        self.0.as_mut().expect("child")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("registry.log"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Polls `GET /v2/` until it answers 200 (or 401 with auth) while `child` itself holds the
/// listening socket on `addr` (so the answer cannot come from another test's registry that
/// took the port first); fails when the process exits (e.g. the port was taken in the
/// meantime) or after a timeout.
fn wait_ready(
    child: &mut Child,
    addr: &str,
    options: &Options,
    dir: &Path,
) -> Result<(), NotReady> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                return Err(Exited(anyhow::anyhow!(
                    "docker-registry exited with {status}: {}",
                    log(dir)
                )))
            }
            Ok(None) => {}
            Err(e) => {
                return Err(Stuck(
                    anyhow::Error::new(e).context("waiting for docker-registry"),
                ))
            }
        }
        if listens_on(child.id(), addr) && probe(addr, options, dir) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Stuck(anyhow::anyhow!(
                "docker-registry not ready after {START_TIMEOUT:?}: {}",
                log(dir)
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` holds the IPv4 TCP socket listening on `addr` (`127.0.0.1:PORT`):
/// the socket inode from `/proc/net/tcp` is one of the process's open files.
fn listens_on(pid: u32, addr: &str) -> bool {
    let Some(port) = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok())
    else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address, state (0A: LISTEN), inode.
            (f.len() > 9 && f[1] == local && f[3] == "0A").then(|| format!("socket:[{}]", f[9]))
        })
        .collect();
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .any(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
}

enum NotReady {
    Exited(anyhow::Error),
    Stuck(anyhow::Error),
}
use NotReady::{Exited, Stuck};

fn probe(addr: &str, options: &Options, dir: &Path) -> bool {
    if options.tls {
        return Command::new("curl")
            .args(["-s", "-o", "/dev/null", "--cacert"])
            .arg(dir.join("certs/ca.pem"))
            .arg(format!("https://{addr}/v2/"))
            .status()
            .is_ok_and(|s| s.success());
    }
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    if s.read_exact(&mut buf).is_err() {
        return false;
    }
    // "HTTP/1.x NNN": Go answers an HTTP/1.0 request as HTTP/1.0.
    buf.starts_with(b"HTTP/1.")
        && (&buf[9..12] == b"200" || (options.auth.is_some() && &buf[9..12] == b"401"))
}

/// Lays out the image `manifest` of `layout` as skopeo's `dir:` transport reads it:
/// `manifest.json`, each blob under its hex digest, and `version`.
fn stage_dir_transport(layout: &Path, manifest: &str, dir: &Path) -> Result<()> {
    let link = |digest: &str, name: &str| -> Result<()> {
        let src = fixtures::blob_path(layout, digest);
        let dst = dir.join(name);
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {}", src.display()))?;
        }
        Ok(())
    };
    link(manifest, "manifest.json")?;
    let bytes = std::fs::read(dir.join("manifest.json")).context("reading manifest")?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).context("parsing manifest")?;
    let digests =
        std::iter::once(&json["config"]).chain(json["layers"].as_array().into_iter().flatten());
    for d in digests {
        let digest = d["digest"].as_str().context("descriptor without digest")?;
        let hex = digest
            .strip_prefix("sha256:")
            .context("not a sha256 digest")?;
        if !dir.join(hex).exists() {
            link(digest, hex)?;
        }
    }
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n")
        .context("writing version")
}

/// A port the kernel picked as free on 127.0.0.1 (bind port 0, read it, close).
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(l.local_addr().context("local_addr")?.port())
}

/// Writes a CA and a certificate for 127.0.0.1 it signed into `dir/certs/`, the CA also as
/// `dir/certs.d/ca.crt`; returns (cert, key).
fn make_certs(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let certs = dir.join("certs");
    let certs_d = dir.join("certs.d");
    std::fs::create_dir_all(&certs).context("creating certs dir")?;
    std::fs::create_dir_all(&certs_d).context("creating certs.d dir")?;
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(&certs)
            .output()
            .context("running openssl")?;
        ensure!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(())
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ])?;
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    std::fs::write(
        certs.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n\
         subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .context("writing ext.cnf")?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ])?;
    std::fs::copy(certs.join("ca.pem"), certs_d.join("ca.crt")).context("copying ca.crt")?;
    Ok((certs.join("server.pem"), certs.join("server.key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skopeo_inspect(args: &[&str], image: &str) -> std::process::Output {
        Command::new("skopeo")
            .arg("inspect")
            .args(args)
            .arg(image)
            .output()
            .expect("running skopeo")
    }

    fn digest_of_raw(out: &std::process::Output) -> String {
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        crate::fixtures::sha256_digest(&out.stdout)
    }

    #[test]
    fn push_then_skopeo_sees_the_same_digests_and_drop_cleans_up() {
        let reg = Registry::start();
        let pinned = reg.push_fixture("busybox:gzip", "busybox:1.36");
        let want = fixtures::image("busybox:gzip").manifest.digest;
        assert_eq!(pinned, format!("{}/busybox:1.36@{want}", reg.addr()));
        let out = skopeo_inspect(
            &["--tls-verify=false"],
            &format!("docker://{}/busybox:1.36", reg.addr()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["Digest"], want.as_str());

        // The index and every platform go up with --all, digests preserved.
        let pinned = reg.push_fixture("multiarch:latest", "multi:latest");
        let want = fixtures::index("multiarch:latest").index.digest;
        assert!(pinned.ends_with(&want), "{pinned}");
        let raw = skopeo_inspect(
            &["--raw", "--tls-verify=false"],
            &format!("docker://{}/multi:latest", reg.addr()),
        );
        assert_eq!(digest_of_raw(&raw), want);
        let arm = fixtures::index("multiarch:latest")
            .for_platform("linux/arm64")
            .manifest
            .digest
            .clone();
        let raw = skopeo_inspect(
            &["--raw", "--tls-verify=false"],
            &format!("docker://{}/multi@{arm}", reg.addr()),
        );
        assert_eq!(digest_of_raw(&raw), arm);

        // Docker schema 2 and zstd survive too.
        for (r, tag) in [
            ("busybox:docker", "bb:docker"),
            ("busybox:zstd", "bb:zstd"),
            ("layers:latest", "layers:latest"),
        ] {
            reg.push_fixture(r, tag);
            let raw = skopeo_inspect(
                &["--raw", "--tls-verify=false"],
                &format!("docker://{}/{tag}", reg.addr()),
            );
            assert_eq!(
                digest_of_raw(&raw),
                fixtures::image(r).manifest.digest,
                "{r}"
            );
        }

        let pid = reg.child.id();
        let dir = reg.dir().to_owned();
        let addr = reg.addr();
        drop(reg);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "registry pid {pid} still there"
        );
        assert!(TcpStream::connect(&addr).is_err(), "{addr} still answers");
    }

    #[test]
    fn auth_registry_refuses_anonymous_and_accepts_the_credentials() {
        let reg = Registry::start_with_auth("berth", "s3cret pass");
        assert_eq!(reg.creds().as_deref(), Some("berth:s3cret pass"));
        reg.push_fixture("busybox:gzip", "private/busybox:latest");
        let image = format!("docker://{}/private/busybox:latest", reg.addr());
        let anon = skopeo_inspect(&["--tls-verify=false", "--no-creds"], &image);
        assert!(!anon.status.success(), "anonymous inspect succeeded");
        let wrong = skopeo_inspect(&["--tls-verify=false", "--creds", "berth:wrong"], &image);
        assert!(!wrong.status.success(), "wrong password accepted");
        let ok = skopeo_inspect(
            &[
                "--raw",
                "--tls-verify=false",
                "--creds",
                "berth:s3cret pass",
            ],
            &image,
        );
        assert_eq!(
            digest_of_raw(&ok),
            fixtures::image("busybox:gzip").manifest.digest
        );
    }

    #[test]
    fn tls_registry_is_trusted_with_its_ca_only() {
        let reg = Registry::start_with(Options {
            auth: Some(("u".into(), "p".into())),
            tls: true,
        });
        let ca = reg.ca_file().unwrap();
        assert!(std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
        reg.push_fixture("busybox:gzip", "busybox:tls");
        let image = format!("docker://{}/busybox:tls", reg.addr());
        let untrusted = skopeo_inspect(&["--raw", "--creds", "u:p"], &image);
        assert!(
            !untrusted.status.success(),
            "certificate accepted without the CA"
        );
        let cert_dir = reg.cert_dir().unwrap();
        let ok = skopeo_inspect(
            &[
                "--raw",
                "--creds",
                "u:p",
                "--cert-dir",
                cert_dir.to_str().unwrap(),
            ],
            &image,
        );
        assert_eq!(
            digest_of_raw(&ok),
            fixtures::image("busybox:gzip").manifest.digest
        );
    }

    #[test]
    fn free_ports_come_from_the_kernel() {
        let p = free_port().unwrap();
        assert!(p > 0);
        TcpListener::bind(("127.0.0.1", p)).expect("the port is free again");
    }
}
