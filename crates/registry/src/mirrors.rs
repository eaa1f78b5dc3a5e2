//! The mirrors configuration: which endpoints to try, in order, before a registry itself.
//!
//! A JSON file, by default `/etc/berth/mirrors.json` (absent: no mirrors), else the file
//! named by `--mirrors FILE` or `$BERTH_MIRRORS`:
//!
//! ```json
//! {
//!   "mirrors": {
//!     "docker.io": ["http://127.0.0.1:5001", "https://mirror.example.com"],
//!     "quay.io": ["https://quay-mirror.example.com:8443"]
//!   }
//! }
//! ```
//!
//! Keys are registry names as they appear in normalised references (`docker.io`, not
//! `registry-1.docker.io`). Each endpoint is `http://` or `https://` followed by a host and
//! an optional port; it serves the same repository paths (`library/busybox`). Mirrors are
//! tried in order and the registry itself last; a mirror that fails (unreachable, an error
//! status, a missing image, bad content) is skipped with a warning. Content from a mirror is
//! checked against the same digests as content from the registry itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// The default location of the mirrors file.
pub const DEFAULT_PATH: &str = "/etc/berth/mirrors.json";

/// Mirrors per registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mirrors {
    by_registry: BTreeMap<String, Vec<String>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
}

impl Mirrors {
    /// Loads `explicit` (must exist), or the default file when it exists.
    pub fn load(explicit: Option<&Path>) -> Result<Mirrors, Error> {
        match explicit {
            Some(p) => Mirrors::read(p),
            None if Path::new(DEFAULT_PATH).exists() => Mirrors::read(Path::new(DEFAULT_PATH)),
            None => Ok(Mirrors::default()),
        }
    }

    fn read(path: &Path) -> Result<Mirrors, Error> {
        let bad = |reason: String| Error::Config {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        Mirrors::parse(&bytes).map_err(bad)
    }

    /// Parses the JSON form; the error is a reason without the file name.
    pub fn parse(bytes: &[u8]) -> Result<Mirrors, String> {
        let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let mut by_registry = BTreeMap::new();
        for (registry, endpoints) in file.mirrors {
            let mut list = Vec::new();
            for e in endpoints {
                list.push(
                    validate(&e).map_err(|why| format!("mirror {e:?} of {registry}: {why}"))?,
                );
            }
            by_registry.insert(registry, list);
        }
        Ok(Mirrors { by_registry })
    }

    /// The mirror endpoints for `registry` (`scheme://host[:port]`), in order.
    pub fn for_registry(&self, registry: &str) -> &[String] {
        self.by_registry
            .get(registry)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Where the configuration comes from: `--mirrors`, then `$BERTH_MIRRORS`.
    pub fn path_from_env(flag: Option<PathBuf>) -> Option<PathBuf> {
        flag.or_else(|| {
            std::env::var_os("BERTH_MIRRORS")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

fn validate(endpoint: &str) -> Result<String, &'static str> {
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or("must start with http:// or https://")?;
    let host = rest.trim_end_matches('/');
    if host.is_empty()
        || host.contains('/')
        || host.contains('@')
        || host.contains(char::is_whitespace)
    {
        return Err("must be scheme://host[:port] with no path");
    }
    Ok(endpoint.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_parse_in_order() {
        let m = Mirrors::parse(
            br#"{"mirrors":{"docker.io":["http://127.0.0.1:5001/","https://m.example.com"]}}"#,
        )
        .unwrap();
        assert_eq!(
            m.for_registry("docker.io"),
            ["http://127.0.0.1:5001", "https://m.example.com"]
        );
        assert!(m.for_registry("quay.io").is_empty());
    }

    #[test]
    fn bad_endpoints_and_unknown_keys_are_refused() {
        assert!(
            Mirrors::parse(br#"{"mirrors":{"docker.io":["127.0.0.1:5001"]}}"#)
                .unwrap_err()
                .contains("http://")
        );
        assert!(Mirrors::parse(br#"{"mirrors":{"docker.io":["http://h/path"]}}"#).is_err());
        assert!(Mirrors::parse(br#"{"mirror":{}}"#).is_err());
        assert!(Mirrors::parse(b"not json").is_err());
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let e = Mirrors::load(Some(Path::new("/nonexistent/mirrors.json"))).unwrap_err();
        assert_eq!(
            berth_kind::HasKind::kind(&e),
            berth_kind::Kind::InvalidArgument
        );
    }
}
