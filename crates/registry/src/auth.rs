//! Registry credentials and the `WWW-Authenticate` challenge.
//!
//! Credentials for a registry host come from, in order:
//! 1. `--creds USER:PASS` (for the registry of the image, not for its mirrors);
//! 2. `--authfile FILE` when given (and then no other file), else the first of
//!    `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json` and
//!    `~/.docker/config.json` that has an entry for the host.
//!
//! Auth files have the containers/docker shape `{"auths": {"HOST": {"auth": base64(user:pass)}}}`
//! (or `"username"`/`"password"`). Keys may carry a scheme and a path
//! (`https://index.docker.io/v1/`); `index.docker.io` and `registry-1.docker.io` stand
//! for `docker.io`. Credential helpers (`credsStore`, `credHelpers`) are not run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::Error;

/// A user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// Parses `USER:PASS` as given to `--creds`.
    pub fn parse(s: &str) -> Result<Credentials, Error> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                user: u.into(),
                pass: p.into(),
            }),
            _ => Err(Error::Credentials("--creds must be USER:PASS".into())),
        }
    }

    /// The `Authorization: Basic …` header value.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.user, self.pass);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Where credentials are looked up.
#[derive(Debug, Clone, Default)]
pub struct CredentialSource {
    /// `--creds`: used for the image's own registry.
    pub explicit: Option<Credentials>,
    /// Auth files in the order they are consulted.
    pub files: Vec<PathBuf>,
}

#[derive(serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl CredentialSource {
    /// The files consulted when `--authfile` is `authfile`.
    pub fn default_files(authfile: Option<PathBuf>) -> Vec<PathBuf> {
        if let Some(f) = authfile {
            return vec![f];
        }
        let mut files = Vec::new();
        if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|v| !v.is_empty()) {
            files.push(PathBuf::from(f));
        }
        if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
            files.push(Path::new(&d).join("containers/auth.json"));
        }
        if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            files.push(Path::new(&h).join(".docker/config.json"));
        }
        files
    }

    /// Checks that every auth file that exists parses, so a broken file is reported up
    /// front rather than ignored.
    pub fn validate(&self) -> Result<(), Error> {
        for f in &self.files {
            read_file(f)?;
        }
        Ok(())
    }

    /// Credentials for `host` (a registry name or mirror host); `origin` says whether it is
    /// the image's own registry (where `--creds` applies).
    pub fn lookup(&self, host: &str, origin: bool) -> Result<Option<Credentials>, Error> {
        if origin {
            if let Some(c) = &self.explicit {
                return Ok(Some(c.clone()));
            }
        }
        let want = canonical_host(host);
        for f in &self.files {
            let Some(file) = read_file(f)? else { continue };
            for (key, entry) in &file.auths {
                if canonical_host(key) != want {
                    continue;
                }
                return decode(entry).map(Some).map_err(|why| Error::Config {
                    path: f.clone(),
                    reason: format!("{key}: {why}"),
                });
            }
        }
        Ok(None)
    }
}

fn read_file(path: &Path) -> Result<Option<AuthFile>, Error> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Config {
                path: path.into(),
                reason: e.to_string(),
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Error::Config {
            path: path.into(),
            reason: e.to_string(),
        })
}

fn decode(entry: &AuthEntry) -> Result<Credentials, &'static str> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "auth is not base64")?;
        let raw = String::from_utf8(raw).map_err(|_| "auth is not UTF-8")?;
        let (u, p) = raw.split_once(':').ok_or("auth is not base64(user:pass)")?;
        return Ok(Credentials {
            user: u.into(),
            pass: p.into(),
        });
    }
    match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Ok(Credentials {
            user: u.clone(),
            pass: p.clone(),
        }),
        _ => Err("entry has neither auth nor username and password"),
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `127.0.0.1:5000` stays.
pub(crate) fn canonical_host(key: &str) -> String {
    let no_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = no_scheme.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

/// A parsed `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Basic realm="…"` or `Bearer realm="…",service="…",scope="…"`.
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(rest);
                Some(Challenge::Bearer {
                    realm: params.get("realm")?.clone(),
                    service: params.get("service").cloned(),
                    scope: params.get("scope").cloned(),
                })
            }
            _ => None,
        }
    }
}

/// `a="x",b=y` → {a: x, b: y}; quoted values may contain commas.
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        let c = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            c,
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }

    #[test]
    fn creds_parse() {
        assert_eq!(Credentials::parse("u:p:q").unwrap().pass, "p:q");
        assert!(Credentials::parse("nocolon").is_err());
        assert!(Credentials::parse(":p").is_err());
        assert_eq!(
            Credentials::parse("u:p").unwrap().basic_header(),
            "Basic dTpw"
        );
    }

    #[test]
    fn auth_files_are_searched_in_order_with_docker_hub_aliases() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        std::fs::write(&a, r#"{"auths":{"127.0.0.1:5000":{"auth":"dTE6cDE="}}}"#).unwrap();
        std::fs::write(&b, r#"{"auths":{"https://index.docker.io/v1/":{"username":"hub","password":"pw"}},"credsStore":"x"}"#).unwrap();
        let src = CredentialSource {
            explicit: None,
            files: vec![dir.path().join("missing.json"), a, b],
        };
        src.validate().unwrap();
        assert_eq!(
            src.lookup("127.0.0.1:5000", true).unwrap().unwrap().user,
            "u1"
        );
        assert_eq!(src.lookup("docker.io", true).unwrap().unwrap().pass, "pw");
        assert_eq!(src.lookup("quay.io", true).unwrap(), None);
        let with_flag = CredentialSource {
            explicit: Some(Credentials::parse("x:y").unwrap()),
            ..src.clone()
        };
        assert_eq!(
            with_flag.lookup("quay.io", true).unwrap().unwrap().user,
            "x"
        );
        assert_eq!(with_flag.lookup("quay.io", false).unwrap(), None);
    }

    #[test]
    fn a_broken_auth_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        std::fs::write(&a, "{nope").unwrap();
        let src = CredentialSource {
            explicit: None,
            files: vec![a],
        };
        let e = src.validate().unwrap_err();
        assert_eq!(
            berth_kind::HasKind::kind(&e),
            berth_kind::Kind::InvalidArgument
        );
    }
}
