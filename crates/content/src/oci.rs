//! The OCI image types berth reads: descriptors, manifests, indexes, image configs and
//! platforms. Docker schema 2 documents have the same shape and parse into the same types;
//! their media types are kept as strings.

use std::collections::BTreeMap;

use berth_reference::Digest;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest manifest, index or config berth reads (4 MiB).
pub const MAX_DOCUMENT_SIZE: u64 = 4 * 1024 * 1024;

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Media types berth knows.
pub mod media_type {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_INDEX: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";

    /// An image manifest (OCI or Docker schema 2).
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }

    /// An image index or Docker manifest list.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_INDEX
    }

    /// A container image config.
    pub fn is_config(mt: &str) -> bool {
        mt == OCI_CONFIG || mt == DOCKER_CONFIG
    }

    /// The compression of a layer media type, or `None` when berth does not know it.
    pub fn layer_compression(mt: &str) -> Option<super::Compression> {
        use super::Compression::*;
        match mt {
            OCI_LAYER | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(None_),
            OCI_LAYER_GZIP
            | OCI_LAYER_NONDIST_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP => Some(Gzip),
            OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(Zstd)
            }
            // Docker's "uncompressed" layer type.
            "application/vnd.docker.image.rootfs.diff.tar" => Some(None_),
            _ => None,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None_,
    Gzip,
    Zstd,
}

/// A content descriptor. Fields berth does not know are kept in `extra` so that rewriting
/// `index.json` loses nothing another tool wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with only media type, digest and size.
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            urls: None,
            annotations: None,
            platform: None,
            extra: Default::default(),
        }
    }

    /// The `org.opencontainers.image.ref.name` annotation, if any.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations.as_ref()?.get(REF_NAME).map(String::as_str)
    }
}

/// An image manifest (OCI, or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index (OCI), or a Docker manifest list; also the shape of `index.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The platform of an image or an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl Platform {
    /// The platform of this build of berth, in Go's names (`linux/amd64`, `linux/arm64/v8`).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "powerpc64" => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
            os_features: None,
        }
    }

    /// Parses `os/arch[/variant]` as given to `--platform`.
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = (2..=3).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty());
        if !ok {
            return Err(Error::InvalidPlatform(s.to_string()));
        }
        let arch = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        Ok(Platform {
            architecture: arch.to_string(),
            os: parts[0].to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
            os_version: None,
            os_features: None,
        })
    }

    /// Whether an index entry for `other` runs here when `self` is what was asked for.
    /// An unspecified variant matches any; arm64's `v8` equals no variant.
    pub fn matches(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        let norm = |v: &Option<String>| match (self.architecture.as_str(), v.as_deref()) {
            ("arm64", Some("v8")) | (_, None) => None,
            (_, Some(v)) => Some(v.to_string()),
        };
        match norm(&self.variant) {
            None => true,
            want => norm(&other.variant) == want,
        }
    }

    /// Picks the entry of `index` for this platform: an exact variant match first, then one
    /// without variant, then the first compatible one. Attestation entries (`unknown/unknown`)
    /// never match.
    pub fn select<'a>(&self, index: &'a Index) -> Option<&'a Descriptor> {
        let candidates: Vec<&Descriptor> = index
            .manifests
            .iter()
            .filter(|d| {
                media_type::is_manifest(&d.media_type) || media_type::is_index(&d.media_type)
            })
            .filter(|d| d.platform.as_ref().is_some_and(|p| self.matches(p)))
            .collect();
        candidates
            .iter()
            .find(|d| d.platform.as_ref().and_then(|p| p.variant.clone()) == self.variant)
            .or_else(|| {
                candidates
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
            })
            .or_else(|| candidates.first())
            .copied()
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image config (OCI, or Docker's `container.image.v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The defaults for a container (`config` in the JSON).
    #[serde(default)]
    pub config: Option<ContainerConfig>,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
}

/// The execution defaults of an image. Field names are the JSON ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Docker's healthcheck, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
}

/// `rootfs` of an image config: the uncompressed digests of the layers, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

/// One entry of an image's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
}

/// A manifest or index document, parsed by its media type.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// Parses a manifest or index. `declared` is the media type the registry or descriptor
/// gave (Content-Type, descriptor mediaType); the document's own `mediaType` must agree
/// with it when both are present. Schema 1 manifests are refused as unsupported.
/// `what` names the document for error messages (a digest or a reference).
pub fn parse_document(
    bytes: &[u8],
    declared: Option<&str>,
    what: &str,
) -> Result<(Document, String), Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let declared = declared
        .map(|d| d.split(';').next().unwrap_or("").trim())
        .filter(|d| !d.is_empty() && *d != "application/json" && *d != "application/octet-stream");
    if let Some(d) = declared {
        if d == media_type::DOCKER_SCHEMA1 || d == media_type::DOCKER_SCHEMA1_SIGNED {
            return Err(Error::Schema1(what.to_string()));
        }
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
        what: what.to_string(),
        source: e,
    })?;
    if probe.schema_version == Some(1) {
        return Err(Error::Schema1(what.to_string()));
    }
    if probe.schema_version != Some(2) {
        return Err(Error::Malformed {
            what: what.to_string(),
            reason: "schemaVersion is not 2".to_string(),
        });
    }
    let mt = match (declared, probe.media_type.as_deref()) {
        (Some(d), Some(own)) if d != own => {
            return Err(Error::Malformed {
                what: what.to_string(),
                reason: format!("served as {d} but says it is {own}"),
            })
        }
        (Some(d), _) => d.to_string(),
        (None, Some(own)) => own.to_string(),
        // OCI allows a missing mediaType: tell manifests and indexes apart by their fields.
        (None, None) if probe.manifests.is_some() => media_type::OCI_INDEX.to_string(),
        (None, None) if probe.layers.is_some() => media_type::OCI_MANIFEST.to_string(),
        (None, None) => {
            return Err(Error::Malformed {
                what: what.to_string(),
                reason: "no media type".to_string(),
            })
        }
    };
    let invalid = |e| Error::InvalidJson {
        what: what.to_string(),
        source: e,
    };
    if media_type::is_manifest(&mt) {
        let m: Manifest = serde_json::from_slice(bytes).map_err(invalid)?;
        Ok((Document::Manifest(m), mt))
    } else if media_type::is_index(&mt) {
        let i: Index = serde_json::from_slice(bytes).map_err(invalid)?;
        Ok((Document::Index(i), mt))
    } else {
        Err(Error::UnsupportedMediaType {
            what: what.to_string(),
            media_type: mt,
        })
    }
}

/// Parses an image config and checks it against its manifest: one diff_id per layer.
pub fn parse_config(bytes: &[u8], manifest: &Manifest, what: &str) -> Result<ImageConfig, Error> {
    if !media_type::is_config(&manifest.config.media_type) {
        return Err(Error::UnsupportedMediaType {
            what: what.to_string(),
            media_type: manifest.config.media_type.clone(),
        });
    }
    let config: ImageConfig = serde_json::from_slice(bytes).map_err(|e| Error::InvalidJson {
        what: what.to_string(),
        source: e,
    })?;
    if config.rootfs.diff_ids.len() != manifest.layers.len() {
        return Err(Error::Malformed {
            what: what.to_string(),
            reason: format!(
                "{} diff_ids for {} layers",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            ),
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn manifest_json(mt: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{mt}","config":{{"mediaType":"{}","digest":"{D}","size":2}},"layers":[{{"mediaType":"{}","digest":"{D}","size":3}}]}}"#,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_GZIP
        )
    }

    #[test]
    fn manifests_parse_with_or_without_declared_type() {
        let j = manifest_json(media_type::OCI_MANIFEST);
        let (doc, mt) = parse_document(j.as_bytes(), Some(media_type::OCI_MANIFEST), "m").unwrap();
        assert_eq!(mt, media_type::OCI_MANIFEST);
        let Document::Manifest(m) = doc else {
            panic!("not a manifest")
        };
        assert_eq!(m.layers[0].size, 3);
        let (_, mt) = parse_document(j.as_bytes(), None, "m").unwrap();
        assert_eq!(mt, media_type::OCI_MANIFEST);
    }

    #[test]
    fn disagreeing_media_types_are_refused() {
        let j = manifest_json(media_type::OCI_MANIFEST);
        let e = parse_document(j.as_bytes(), Some(media_type::DOCKER_MANIFEST), "m").unwrap_err();
        assert!(e.to_string().contains("served as"), "{e}");
        let e = parse_document(b"{}", Some("text/html"), "m").unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{e}");
    }

    #[test]
    fn schema1_is_refused_as_unsupported() {
        let e = parse_document(br#"{"schemaVersion":1,"name":"x"}"#, None, "busybox").unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::Unsupported);
        assert!(e.to_string().contains("schema 1"), "{e}");
        let e = parse_document(b"{}", Some(media_type::DOCKER_SCHEMA1_SIGNED), "x").unwrap_err();
        assert!(matches!(e, Error::Schema1(_)));
    }

    #[test]
    fn docker_manifest_lists_parse_as_indexes() {
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{D}","size":7,"platform":{{"architecture":"arm","os":"linux","variant":"v7"}}}}]}}"#,
            media_type::DOCKER_INDEX,
            media_type::DOCKER_MANIFEST
        );
        let (doc, mt) =
            parse_document(j.as_bytes(), Some(media_type::DOCKER_INDEX), "list").unwrap();
        assert_eq!(mt, media_type::DOCKER_INDEX);
        let Document::Index(i) = doc else {
            panic!("not an index")
        };
        let picked = Platform::parse("linux/arm/v7").unwrap().select(&i).unwrap();
        assert_eq!(picked.size, 7);
    }

    #[test]
    fn invalid_json_is_corrupt() {
        let e = parse_document(b"{not json", None, "m").unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::Corrupt);
    }

    #[test]
    fn platforms_parse_and_match() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        let entry = Platform::parse("linux/arm64").unwrap();
        assert!(p.matches(&entry));
        let arm7 = Platform::parse("linux/arm/v7").unwrap();
        assert!(!arm7.matches(&Platform::parse("linux/arm/v6").unwrap()));
        assert!(Platform::parse("linux/arm").unwrap().matches(&arm7));
        assert!(Platform::parse("linux").is_err());
        assert!(Platform::parse("linux//v7").is_err());
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().architecture,
            "amd64"
        );
    }

    #[test]
    fn select_prefers_exact_variant_and_skips_attestations() {
        let entry = |p: &str| {
            let mut d = Descriptor::new(media_type::OCI_MANIFEST, D.parse().unwrap(), 1);
            d.platform = Some(if p == "unknown" {
                Platform {
                    architecture: "unknown".into(),
                    os: "unknown".into(),
                    variant: None,
                    os_version: None,
                    os_features: None,
                }
            } else {
                Platform::parse(p).unwrap()
            });
            d
        };
        let index = Index {
            schema_version: 2,
            media_type: None,
            manifests: vec![
                entry("unknown"),
                entry("linux/arm/v6"),
                entry("linux/arm/v7"),
                entry("linux/amd64"),
            ],
            annotations: None,
            extra: Default::default(),
        };
        let pick = |p: &str| {
            Platform::parse(p)
                .unwrap()
                .select(&index)
                .map(|d| d.platform.clone().unwrap().to_string())
        };
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("linux/arm/v7"));
        assert_eq!(pick("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(pick("linux/arm").as_deref(), Some("linux/arm/v6"));
        assert_eq!(pick("linux/s390x"), None);
    }

    #[test]
    fn docker_configs_with_nulls_parse() {
        let j = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":null,"Env":["A=b"],"Entrypoint":["/bin/sh"],"Labels":null,"ExposedPorts":{{"80/tcp":{{}}}}}},"container_config":{{}},"rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#
        );
        let mut m: Manifest =
            serde_json::from_str(&manifest_json(media_type::DOCKER_MANIFEST)).unwrap();
        m.config.media_type = media_type::DOCKER_CONFIG.into();
        let c = parse_config(j.as_bytes(), &m, "cfg").unwrap();
        let cc = c.config.unwrap();
        assert_eq!(cc.entrypoint.unwrap(), vec!["/bin/sh"]);
        assert_eq!(cc.cmd, None);
        m.layers.clear();
        assert!(parse_config(j.as_bytes(), &m, "cfg").is_err());
    }
}
