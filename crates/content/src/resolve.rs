//! Finding images in the store by name or pinned reference (rules in the crate docs).

use berth_reference::{Digest, Reference};

use crate::oci::{
    self, media_type, Compression, Descriptor, Document, ImageConfig, Manifest, Platform,
};
use crate::{Error, Store};

/// A named entry of `index.json`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `org.opencontainers.image.ref.name` as written (berth writes the full normalised name).
    pub name: String,
    /// The manifest or index it names.
    pub descriptor: Descriptor,
}

/// An image in the store: a manifest with its config, for one platform.
#[derive(Debug, Clone)]
pub struct Image {
    /// The name it was found under: the full normalised name when the stored name parses as
    /// a reference, else the stored name as is (e.g. skopeo's bare tag `gzip`). For a
    /// digest with no name in `index.json`, the operand without its digest.
    pub name: String,
    /// The digest of the platform manifest (what the pinned form carries).
    pub manifest_digest: Digest,
    /// The manifest's media type (OCI or Docker schema 2).
    pub manifest_media_type: String,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    pub manifest: Manifest,
    pub config: ImageConfig,
}

impl Image {
    /// `NAME@sha256:…`, the token the berth tools pass along.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.name, self.manifest_digest)
    }

    /// The layer descriptors, base layer first.
    pub fn layers(&self) -> &[Descriptor] {
        &self.manifest.layers
    }

    /// The uncompressed digests of the layers (`rootfs.diff_ids`), in the same order.
    pub fn diff_ids(&self) -> &[Digest] {
        &self.config.rootfs.diff_ids
    }

    /// The descriptor of the config blob.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.manifest.config
    }
}

impl Descriptor {
    /// The compression of a layer, `None` when its media type is not a layer type berth knows.
    pub fn compression(&self) -> Option<Compression> {
        media_type::layer_compression(&self.media_type)
    }
}

/// Normalises a stored name for comparison, when it parses as a reference.
fn normalise(name: &str) -> Option<String> {
    name.parse::<Reference>().ok().map(|r| r.to_string())
}

/// Whether a stored name is skopeo's default: only a tag.
fn is_bare_tag(name: &str) -> bool {
    !name.contains('/') && !name.contains(':') && !name.contains('@')
}

impl Store {
    /// The named entries of `index.json`, in file order (entries without a name are left out).
    pub fn list(&self) -> Result<Vec<Entry>, Error> {
        Ok(self
            .read_index()?
            .manifests
            .into_iter()
            .filter_map(|d| {
                Some(Entry {
                    name: d.ref_name()?.to_string(),
                    descriptor: d,
                })
            })
            .collect())
    }

    /// Finds the `index.json` entry that `name` refers to (rules 2–4 of the crate docs).
    pub fn find_entry(&self, name: &str) -> Result<Entry, Error> {
        let entries = self.list()?;
        if let Some(e) = entries.iter().find(|e| e.name == name) {
            return Ok(e.clone());
        }
        let wanted = name.parse::<Reference>()?;
        let wanted_norm = wanted.to_string();
        let mut hits: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                !is_bare_tag(&e.name) && normalise(&e.name).as_deref() == Some(&wanted_norm)
            })
            .collect();
        if hits.is_empty() {
            if let Some(tag) = wanted.tag() {
                hits = entries
                    .iter()
                    .filter(|e| is_bare_tag(&e.name) && e.name == tag)
                    .collect();
            }
        }
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::ImageNotFound(name.to_string())),
            many => Err(Error::Ambiguous {
                name: name.to_string(),
                candidates: many
                    .iter()
                    .map(|e| e.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Resolves a name or pinned reference to an image for the host platform.
    pub fn resolve(&self, name_or_pinned: &str) -> Result<Image, Error> {
        self.resolve_for(name_or_pinned, &Platform::host())
    }

    /// Resolves a name or pinned reference; an index resolves to its entry for `platform`.
    pub fn resolve_for(&self, operand: &str, platform: &Platform) -> Result<Image, Error> {
        // A bare digest, or a pinned reference: content-addressed, the name only labels it.
        let digest_part = operand
            .rsplit_once('@')
            .or_else(|| operand.starts_with("sha256:").then_some(("", operand)));
        if let Some((name_part, d)) = digest_part {
            let digest: Digest = d.parse()?;
            let named = self
                .list()?
                .into_iter()
                .find(|e| e.descriptor.digest == digest);
            let name = if !name_part.is_empty() {
                let r: Reference = operand.parse()?;
                r.without_digest().to_string()
            } else if let Some(e) = &named {
                display_name(&e.name)
            } else {
                digest.to_string()
            };
            if !self.has_blob(&digest) {
                return Err(Error::ImageNotFound(operand.to_string()));
            }
            let media = named.map(|e| e.descriptor.media_type);
            return self.load(name, &digest, media.as_deref(), platform);
        }
        let entry = self.find_entry(operand)?;
        let media = entry.descriptor.media_type.clone();
        self.load(
            display_name(&entry.name),
            &entry.descriptor.digest,
            Some(&media),
            platform,
        )
    }

    fn load(
        &self,
        name: String,
        digest: &Digest,
        media: Option<&str>,
        platform: &Platform,
    ) -> Result<Image, Error> {
        let mut digest = digest.clone();
        let mut media = media.map(str::to_string);
        // Follow at most a few levels of nested indexes.
        for _ in 0..4 {
            let bytes = self.read_document(&digest)?;
            let what = format!("manifest {digest}");
            let (doc, mt) = oci::parse_document(&bytes, media.as_deref(), &what)?;
            match doc {
                Document::Index(index) => {
                    let Some(d) = platform.select(&index) else {
                        return Err(Error::PlatformNotFound {
                            what: format!("index {digest}"),
                            platform: platform.to_string(),
                            available: available(&index),
                        });
                    };
                    digest = d.digest.clone();
                    media = Some(d.media_type.clone());
                }
                Document::Manifest(manifest) => {
                    let config_digest = manifest.config.digest.clone();
                    let config_bytes = self.read_document(&config_digest)?;
                    let config = oci::parse_config(
                        &config_bytes,
                        &manifest,
                        &format!("config {config_digest}"),
                    )?;
                    return Ok(Image {
                        name,
                        manifest_digest: digest,
                        manifest_media_type: mt,
                        manifest_size: bytes.len() as u64,
                        manifest,
                        config,
                    });
                }
            }
        }
        Err(Error::Malformed {
            what: format!("index {digest}"),
            reason: "indexes nested too deep".into(),
        })
    }
}

/// The platforms an index offers, for an error message.
pub(crate) fn available(index: &oci::Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.to_string())
        .collect();
    if list.is_empty() {
        "no platforms".to_string()
    } else {
        list.join(", ")
    }
}

fn display_name(stored: &str) -> String {
    if is_bare_tag(stored) {
        return stored.to_string();
    }
    normalise(stored).unwrap_or_else(|| stored.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn full_names_resolve_from_short_operands() {
        let (_d, s) = store();
        let desc = testutil::image(&s, "docker.io/library/busybox:latest", b"layer");
        for operand in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "library/busybox",
        ] {
            let img = s.resolve(operand).unwrap();
            assert_eq!(img.name, "docker.io/library/busybox:latest", "{operand}");
            assert_eq!(img.manifest_digest, desc.digest);
        }
        let img = s.resolve("busybox").unwrap();
        assert_eq!(img.layers().len(), 1);
        assert_eq!(img.diff_ids()[0], Digest::sha256_of(b"layer"));
        assert_eq!(
            img.config.config.as_ref().unwrap().cmd.as_ref().unwrap()[0],
            "/bin/sh"
        );
        assert_eq!(
            img.pinned(),
            format!("docker.io/library/busybox:latest@{}", desc.digest)
        );
        assert!(matches!(
            s.resolve("busybox:other"),
            Err(Error::ImageNotFound(_))
        ));
    }

    #[test]
    fn pinned_references_and_bare_digests_resolve_by_digest() {
        let (_d, s) = store();
        let desc = testutil::image(&s, "127.0.0.1:5000/x:1", b"l");
        let img = s
            .resolve(&format!("127.0.0.1:5000/x:1@{}", desc.digest))
            .unwrap();
        assert_eq!(img.pinned(), format!("127.0.0.1:5000/x:1@{}", desc.digest));
        let img = s.resolve(desc.digest.as_str()).unwrap();
        assert_eq!(img.name, "127.0.0.1:5000/x:1");
        // A pinned reference to a digest that is not in the store is not found.
        let other = Digest::sha256_of(b"nope");
        let e = s
            .resolve(&format!("127.0.0.1:5000/x:1@{other}"))
            .unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::NotFound);
        // The pinned form of an image resolves back to the same image.
        let again = s.resolve(&img.pinned()).unwrap();
        assert_eq!(again.manifest_digest, desc.digest);
    }

    #[test]
    fn skopeo_bare_tag_names_resolve_exactly_and_by_tag() {
        let (_d, s) = store();
        let gz = testutil::image(&s, "gzip", b"g");
        testutil::image(&s, "zstd", b"z");
        assert_eq!(s.resolve("gzip").unwrap().manifest_digest, gz.digest);
        assert_eq!(s.resolve("gzip").unwrap().name, "gzip");
        assert_eq!(
            s.resolve("busybox:gzip").unwrap().manifest_digest,
            gz.digest
        );
        // A full name wins over a bare tag.
        let full = testutil::image(&s, "docker.io/library/busybox:gzip", b"full");
        assert_eq!(
            s.resolve("busybox:gzip").unwrap().manifest_digest,
            full.digest
        );
    }

    #[test]
    fn skopeo_short_names_normalise() {
        let (_d, s) = store();
        let d = testutil::image(&s, "busybox:1", b"g");
        assert_eq!(
            s.resolve("docker.io/library/busybox:1")
                .unwrap()
                .manifest_digest,
            d.digest
        );
        assert_eq!(
            s.resolve("busybox:1").unwrap().name,
            "docker.io/library/busybox:1"
        );
    }

    #[test]
    fn two_bare_tags_equal_to_the_wanted_tag_cannot_happen_but_two_names_are_ambiguous() {
        let (_d, s) = store();
        testutil::image(&s, "busybox:1", b"a");
        testutil::image(&s, "docker.io/library/busybox:1", b"b");
        // The exact stored name wins; the normalised operand matches both.
        assert!(s.resolve("busybox:1").is_ok());
        let e = s.resolve("docker.io/library/busybox:1").unwrap();
        assert_eq!(e.name, "docker.io/library/busybox:1");
        let e = s.resolve("library/busybox:1").unwrap_err();
        assert!(matches!(e, Error::Ambiguous { .. }), "{e}");
    }

    #[test]
    fn an_index_entry_resolves_to_the_platform_manifest() {
        let (_d, s) = store();
        let amd = testutil::image(&s, "tmp-amd", b"amd");
        let arm = testutil::image(&s, "tmp-arm", b"arm");
        let mut amd_e = amd.clone();
        amd_e.annotations = None;
        amd_e.platform = Some(Platform::parse("linux/amd64").unwrap());
        let mut arm_e = arm.clone();
        arm_e.annotations = None;
        arm_e.platform = Some(Platform::parse("linux/arm64").unwrap());
        let index = oci::Index {
            schema_version: 2,
            media_type: Some(media_type::OCI_INDEX.into()),
            manifests: vec![amd_e, arm_e],
            annotations: None,
            extra: Default::default(),
        };
        let idx = testutil::put(
            &s,
            media_type::OCI_INDEX,
            &serde_json::to_vec(&index).unwrap(),
        );
        s.set_name("example.com/multi:1", idx).unwrap();
        let img = s
            .resolve_for(
                "example.com/multi:1",
                &Platform::parse("linux/arm64").unwrap(),
            )
            .unwrap();
        assert_eq!(img.manifest_digest, arm.digest);
        let img = s
            .resolve_for(
                "example.com/multi:1",
                &Platform::parse("linux/amd64").unwrap(),
            )
            .unwrap();
        assert_eq!(img.manifest_digest, amd.digest);
        let e = s
            .resolve_for(
                "example.com/multi:1",
                &Platform::parse("linux/s390x").unwrap(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("linux/amd64, linux/arm64"), "{e}");
    }

    #[test]
    fn a_tampered_manifest_is_corrupt() {
        let (dir, s) = store();
        let d = testutil::image(&s, "a", b"x");
        std::fs::write(
            dir.path().join("content/blobs/sha256").join(d.digest.hex()),
            b"{}",
        )
        .unwrap();
        let e = s.resolve("a").unwrap_err();
        assert_eq!(berth_kind::HasKind::kind(&e), berth_kind::Kind::Corrupt);
    }
}
