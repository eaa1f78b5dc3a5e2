//! Image references, normalised the way docker normalises them, and content digests.
//!
//! ```
//! use berth_reference::Reference;
//!
//! let r: Reference = "busybox".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.registry(), "docker.io");
//! assert_eq!(r.repository(), "library/busybox");
//!
//! let r: Reference = "127.0.0.1:5000/tools/busybox:1.36".parse().unwrap();
//! assert_eq!(r.name(), "127.0.0.1:5000/tools/busybox");
//! assert_eq!(r.tag(), Some("1.36"));
//!
//! // The pinned form that flows between the berth tools: NAME[:TAG]@sha256:<manifest digest>.
//! let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
//! let pinned = r.pinned(&d.parse().unwrap());
//! assert_eq!(pinned.to_string(), format!("127.0.0.1:5000/tools/busybox:1.36@{d}"));
//! assert_eq!(pinned.digest().unwrap().as_str(), d);
//! ```
//!
//! Normalisation rules (those of docker's `reference.ParseNormalizedNamed`):
//! - the first path component is a registry when it contains `.` or `:`, is `localhost`, or
//!   has an upper-case letter; otherwise the registry is `docker.io`;
//! - `index.docker.io` is written `docker.io`; a one-component docker.io name gets `library/`;
//! - a reference with neither tag nor digest gets the tag `latest`; one with a digest keeps
//!   exactly the tag it was given (none, or the one written);
//! - repository path components are lower case (`[a-z0-9]+` joined by `.`, `_`, `__` or
//!   dashes), a tag is `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, the name is at most 255 bytes.
#![forbid(unsafe_code)]

mod digest;

use std::fmt;
use std::str::FromStr;

use berth_kind::{HasKind, Kind};

pub use digest::Digest;

/// The registry that names without a registry component refer to.
pub const DOCKER_HUB: &str = "docker.io";

/// Why a reference or digest did not parse.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid image reference {0:?}: {1}")]
    InvalidReference(String, &'static str),
    #[error("invalid digest {0:?}")]
    InvalidDigest(String),
    #[error("unsupported digest algorithm in {0:?} (only sha256)")]
    UnsupportedDigest(String),
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::InvalidReference(..) | Error::InvalidDigest(_) => Kind::InvalidArgument,
            Error::UnsupportedDigest(_) => Kind::Unsupported,
        }
    }
}

/// A normalised image reference: registry, repository, optional tag, optional digest.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// The registry host (and port), e.g. `docker.io` or `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` when the user gave neither tag nor digest).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference is pinned.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository[:tag]` without the digest: the name berth writes into the
    /// content store's `index.json` as `org.opencontainers.image.ref.name`. For a reference
    /// given only by digest this is `registry/repository@digest`.
    pub fn store_name(&self) -> String {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => format!("{}:{}", self.name(), tag),
            (None, Some(d)) => format!("{}@{}", self.name(), d),
            (None, None) => self.name(),
        }
    }

    /// The same reference pinned to `digest`: `NAME[:TAG]@digest`.
    pub fn pinned(&self, digest: &Digest) -> Reference {
        Reference {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same reference without its digest (keeping the tag).
    pub fn without_digest(&self) -> Reference {
        Reference {
            digest: None,
            ..self.clone()
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag.
    pub fn manifest_selector(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;

    fn from_str(s: &str) -> Result<Reference, Error> {
        parse(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn parse(input: &str) -> Result<Reference, Error> {
    let bad = |why: &'static str| Error::InvalidReference(input.to_string(), why);
    if input.is_empty() {
        return Err(bad("empty"));
    }
    let (rest, digest) = match input.rsplit_once('@') {
        Some((rest, d)) => (rest, Some(d.parse::<Digest>()?)),
        None => (input, None),
    };
    // The tag is after the last ':' that follows the last '/' (a ':' before it is a port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        if !valid_tag(tag) {
            return Err(bad("tag must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
        }
    }
    let (registry, repository) = split_registry(name);
    if !valid_registry(registry) {
        return Err(bad("malformed registry host"));
    }
    let registry = if registry == "index.docker.io" {
        DOCKER_HUB
    } else {
        registry
    };
    let repository = if registry == DOCKER_HUB && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    };
    if repository.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad("repository name must be lowercase"));
    }
    if !repository.split('/').all(valid_path_component) {
        return Err(bad("malformed repository path"));
    }
    if registry.len() + 1 + repository.len() > 255 {
        return Err(bad("name longer than 255 bytes"));
    }
    let tag = match (tag, &digest) {
        (Some(t), _) => Some(t.to_string()),
        (None, Some(_)) => None,
        (None, None) => Some("latest".to_string()),
    };
    Ok(Reference {
        registry: registry.to_string(),
        repository,
        tag,
        digest,
    })
}

/// Splits docker-style: the first component is a registry only if it looks like a host.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn valid_registry(host: &str) -> bool {
    let (host, port) = if let Some(rest) = host.strip_prefix('[') {
        // [ipv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() {
        return false;
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    #[test]
    fn docker_hub_names_are_normalised_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn other_registries_keep_their_paths() {
        assert_eq!(
            norm("127.0.0.1:5000/busybox"),
            "127.0.0.1:5000/busybox:latest"
        );
        assert_eq!(norm("localhost/a/b/c:t"), "localhost/a/b/c:t");
        assert_eq!(norm("quay.io/coreos/etcd:v3.5"), "quay.io/coreos/etcd:v3.5");
        assert_eq!(norm("[::1]:5000/x"), "[::1]:5000/x:latest");
        let r: Reference = "localhost:5000/x:1".parse().unwrap();
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "x");
    }

    #[test]
    fn digests_keep_the_given_tag_and_add_none() {
        let r: Reference = format!("busybox@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.store_name(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.manifest_selector(), D);
        let r: Reference = format!("busybox:1.36@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.store_name(), "docker.io/library/busybox:1.36");
        assert_eq!(
            r.without_digest().to_string(),
            "docker.io/library/busybox:1.36"
        );
    }

    #[test]
    fn pinned_form_round_trips() {
        let r: Reference = "127.0.0.1:5000/busybox:gzip".parse().unwrap();
        let p = r.pinned(&D.parse().unwrap());
        let again: Reference = p.to_string().parse().unwrap();
        assert_eq!(again, p);
        assert_eq!(again.manifest_selector(), D);
    }

    #[test]
    fn malformed_references_are_rejected() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Library/busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "/busybox",
            "busybox/",
            "busy__-box",
            "x@sha256:abc",
            "-host.com/x",
            "host:port/x",
            &format!("busybox:{}", "t".repeat(129)),
            &format!("example.com/{}", "a".repeat(250)),
        ] {
            let r = bad.parse::<Reference>();
            assert!(r.is_err(), "{bad:?} parsed as {:?}", r.ok());
            assert_eq!(r.unwrap_err().kind(), Kind::InvalidArgument, "{bad:?}");
        }
    }

    #[test]
    fn path_components_follow_the_distribution_grammar() {
        for ok in ["a", "a.b", "a_b", "a__b", "a---b", "a0"] {
            assert!(valid_path_component(ok), "{ok}");
        }
        for bad in ["a..b", "a___b", "_a", "a-", "a._b"] {
            assert!(!valid_path_component(bad), "{bad}");
        }
    }
}
