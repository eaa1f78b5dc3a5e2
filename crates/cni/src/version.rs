//! CNI spec versions: parsing, comparing, and the plugin VERSION answer.

use std::fmt;

use serde::Deserialize;

/// A CNI spec version `MAJOR.MINOR.PATCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u16, pub u16, pub u16);

impl Version {
    /// The newest spec version this library speaks.
    pub const CURRENT: Version = Version(1, 1, 0);
    /// The oldest version whose results this library reads (`ips`/`interfaces` results).
    pub const OLDEST: Version = Version(0, 3, 0);
    /// CHECK and the cached result on DEL came with 0.4.0.
    pub const CHECK: Version = Version(0, 4, 0);
    /// GC and STATUS came with 1.1.0.
    pub const GC_STATUS: Version = Version(1, 1, 0);

    /// Parses `1.0.0`; also `0.1`-style two-part versions, as libcni's semver parse accepts.
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.');
        let major = parse_part(parts.next()?)?;
        let minor = parse_part(parts.next()?)?;
        let patch = match parts.next() {
            Some(p) => parse_part(p)?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Version(major, minor, patch))
    }
}

fn parse_part(part: &str) -> Option<u16> {
    if part.is_empty() || part.len() > 4 || !part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    part.parse().ok()
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// A plugin's answer to VERSION.
#[derive(Debug, Deserialize)]
pub(crate) struct VersionInfo {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(rename = "supportedVersions", default)]
    pub supported_versions: Vec<String>,
}

impl VersionInfo {
    /// The versions the plugin supports; a 0.1.0/0.2.0 plugin that lists none supports those two.
    pub fn supported(&self) -> Vec<String> {
        if self.supported_versions.is_empty() {
            match self.cni_version.as_str() {
                "" | "0.1.0" => vec!["0.1.0".into()],
                _ => vec!["0.1.0".into(), "0.2.0".into()],
            }
        } else {
            self.supported_versions.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_order() {
        assert_eq!(Version::parse("1.0.0"), Some(Version(1, 0, 0)));
        assert_eq!(Version::parse("0.4"), Some(Version(0, 4, 0)));
        assert_eq!(Version::parse("1.0.0.1"), None);
        assert_eq!(Version::parse("1.x.0"), None);
        assert_eq!(Version::parse(""), None);
        assert!(Version::parse("0.10.0").unwrap() > Version::parse("0.4.0").unwrap());
    }

    #[test]
    fn old_plugins_without_a_list_support_the_old_versions() {
        let v: VersionInfo = serde_json::from_str(r#"{"cniVersion":"0.2.0"}"#).unwrap();
        assert_eq!(v.supported(), vec!["0.1.0", "0.2.0"]);
        let v: VersionInfo =
            serde_json::from_str(r#"{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}"#)
                .unwrap();
        assert_eq!(v.supported(), vec!["0.4.0", "1.0.0"]);
    }
}
