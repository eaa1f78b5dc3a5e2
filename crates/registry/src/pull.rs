//! Pulling an image into the content store.
//!
//! 1. The manifest: from the store when the reference is pinned and the blob is present,
//!    else from the first endpoint that serves it (mirrors, then the registry). An index is
//!    resolved to the manifest for the requested platform.
//! 2. The config (4 MiB at most) and every layer are ingested. The ingest locks of all
//!    blobs not yet present are taken first, in digest order (so two pulls of overlapping
//!    images cannot deadlock), then layers download in parallel (`jobs` at a time).
//! 3. Only when every blob is whole and verified are they renamed into `blobs/`, then the
//!    manifest, then the name is written into `index.json`. A failure anywhere leaves
//!    nothing new in `blobs/` or `index.json`; verified and partial blobs stay in
//!    `<root>/ingest/`, so the next pull resumes instead of fetching again.

use std::time::{Duration, Instant};

use berth_content::oci::{self, media_type, Descriptor, Document, Manifest, Platform};
use berth_content::{Ingest, IngestStart, Store, Verified};
use berth_reference::{Digest, Reference};
use futures_util::stream::{self, StreamExt, TryStreamExt};

use crate::client::{crate_chain, Client, Endpoint};
use crate::Error;

/// Receives progress of blob downloads (the CLI draws bars with it).
pub trait Progress: Send + Sync {
    /// A blob download starts; `offset` bytes are already there (resumed).
    fn start(&self, _digest: &Digest, _size: u64, _offset: u64) {}
    /// `bytes` more arrived.
    fn advance(&self, _digest: &Digest, _bytes: u64) {}
    /// The download restarted at `offset` (a server ignored a range request).
    fn position(&self, _digest: &Digest, _offset: u64) {}
    /// The blob is whole and verified (or was already present: `fetched` is false).
    fn done(&self, _digest: &Digest, _fetched: bool) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// One layer of a pulled image.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerResult {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
    /// Bytes fetched over the network for it (0 when it was already in the store).
    pub fetched_bytes: u64,
    /// It was in the store before this pull.
    pub present: bool,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference as asked for, normalised.
    pub reference: Reference,
    /// The name written into `index.json` (`org.opencontainers.image.ref.name`).
    pub name: String,
    /// `NAME[:TAG]@sha256:<manifest digest>`.
    pub pinned: String,
    /// The platform manifest.
    pub manifest: Descriptor,
    /// The index it was chosen from, if the reference named an index.
    pub index: Option<Digest>,
    /// The image's platform, from its config.
    pub platform: String,
    pub config: Descriptor,
    pub layers: Vec<LayerResult>,
    /// Everything fetched over the network (manifests, config, layers).
    pub bytes_fetched: u64,
    /// The endpoint that served the manifest (`store` when it was already present).
    pub source: String,
    pub elapsed: Duration,
}

/// Pulls images with a [`Client`] into a [`Store`].
#[derive(Debug)]
pub struct Puller {
    client: Client,
    store: Store,
    jobs: usize,
    platform: Platform,
}

/// A fetched manifest document.
struct Fetched {
    bytes: Vec<u8>,
    doc: Document,
    media_type: String,
    digest: Digest,
    source: String,
}

impl Puller {
    /// A puller with `jobs` parallel blob downloads, for the host platform.
    pub fn new(client: Client, store: Store, jobs: usize) -> Puller {
        Puller {
            client,
            store,
            jobs: jobs.max(1),
            platform: Platform::host(),
        }
    }

    /// Pull for `platform` instead of the host's.
    pub fn with_platform(mut self, platform: Platform) -> Puller {
        self.platform = platform;
        self
    }

    /// The store pulls go into.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pulls `reference` and names it in the store. See the module docs for the steps.
    pub async fn pull(
        &self,
        reference: &Reference,
        progress: &dyn Progress,
    ) -> Result<Pulled, Error> {
        let started = Instant::now();
        let store = self.store.clone();
        let _writer = blocking(move || store.writer_guard().map_err(Error::from)).await?;
        let mut bytes_fetched = 0;
        let mut index = None;
        let mut fetched = self
            .manifest(
                reference,
                &reference.manifest_selector(),
                None,
                &mut bytes_fetched,
            )
            .await?;
        let source = fetched.source.clone();
        for _ in 0..4 {
            let Document::Index(idx) = &fetched.doc else {
                break;
            };
            let Some(chosen) = self.platform.select(idx) else {
                return Err(berth_content::Error::PlatformNotFound {
                    what: format!("{reference} (index {})", fetched.digest),
                    platform: self.platform.to_string(),
                    available: available(idx),
                }
                .into());
            };
            let chosen = chosen.clone();
            if chosen.size > oci::MAX_DOCUMENT_SIZE {
                return Err(berth_content::Error::TooLarge {
                    what: format!("manifest {}", chosen.digest),
                    size: chosen.size,
                }
                .into());
            }
            index.get_or_insert(fetched.digest.clone());
            fetched = self
                .manifest(
                    reference,
                    chosen.digest.as_str(),
                    Some(&chosen),
                    &mut bytes_fetched,
                )
                .await?;
        }
        let Document::Manifest(manifest) = fetched.doc.clone() else {
            return Err(Error::Protocol {
                what: reference.to_string(),
                reason: "indexes nested too deep".into(),
            });
        };
        let what = format!("manifest {} of {reference}", fetched.digest);
        check_manifest(&manifest, &what)?;

        // The config: small, fetched whole and parsed before any layer is downloaded.
        let config_bytes = self
            .config(reference, &manifest, &mut bytes_fetched)
            .await?;
        let config = oci::parse_config(
            &config_bytes,
            &manifest,
            &format!("config {}", manifest.config.digest),
        )?;
        if !self.platform.matches(&Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            os_version: None,
            os_features: None,
        }) && index.is_none()
        {
            tracing::warn!(
                "{reference} is for {}/{}, not {}",
                config.os,
                config.architecture,
                self.platform
            );
        }

        // Take the ingest locks of every missing blob in digest order.
        let mut wanted: Vec<(Digest, u64)> = manifest
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        wanted.push((manifest.config.digest.clone(), manifest.config.size));
        wanted.push((fetched.digest.clone(), fetched.bytes.len() as u64));
        wanted.sort();
        wanted.dedup_by(|a, b| a.0 == b.0);
        let store = self.store.clone();
        let mut ingests: Vec<Ingest> = blocking(move || {
            let mut out = Vec::new();
            for (d, size) in wanted {
                if let IngestStart::Writer(w) = store.begin_ingest(&d, size)? {
                    out.push(w);
                }
            }
            Ok(out)
        })
        .await?;

        // Config and manifest bytes are already in memory.
        for small in [
            (&manifest.config.digest, &config_bytes),
            (&fetched.digest, &fetched.bytes),
        ] {
            if let Some(w) = ingests.iter_mut().find(|w| w.digest() == small.0) {
                w.restart()?;
                w.write(small.1)?;
            }
        }
        let missing: Vec<Digest> = ingests.iter().map(|w| w.digest().clone()).collect();
        let (layer_ingests, small_ingests): (Vec<Ingest>, Vec<Ingest>) = ingests
            .into_iter()
            .partition(|w| w.digest() != &manifest.config.digest && w.digest() != &fetched.digest);

        // Layers, in parallel; each is verified (size, digest, fsync) as soon as it is whole.
        let results: Vec<(Verified, u64)> =
            stream::iter(layer_ingests.into_iter().map(|w| async move {
                progress.start(w.digest(), w.size(), w.offset());
                let (w, n) = self
                    .client
                    .fetch_blob(reference.registry(), reference.repository(), w, progress)
                    .await?;
                let v = blocking(move || w.verify().map_err(Error::from)).await?;
                Ok::<_, Error>((v, n))
            }))
            .buffer_unordered(self.jobs)
            .try_collect()
            .await?;
        let mut per_blob: Vec<(Digest, u64)> = results
            .iter()
            .map(|(v, n)| (v.digest().clone(), *n))
            .collect();
        bytes_fetched += per_blob.iter().map(|(_, n)| n).sum::<u64>();

        // Then publish: layers and config, the manifest, the name.
        let manifest_digest = fetched.digest.clone();
        let mut verified: Vec<Verified> = results.into_iter().map(|(v, _)| v).collect();
        verified.extend(
            blocking(move || {
                small_ingests
                    .into_iter()
                    .map(|w| w.verify().map_err(Error::from))
                    .collect::<Result<Vec<_>, Error>>()
            })
            .await?,
        );
        for v in &verified {
            progress.done(v.digest(), true);
        }
        let name = reference.store_name();
        let mut descriptor = Descriptor::new(
            &fetched.media_type,
            manifest_digest.clone(),
            fetched.bytes.len() as u64,
        );
        descriptor.platform = Some(Platform {
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone(),
            os_version: None,
            os_features: None,
        });
        let store = self.store.clone();
        let named = name.clone();
        let desc = descriptor.clone();
        blocking(move || {
            let (manifest_blob, rest): (Vec<_>, Vec<_>) = verified
                .into_iter()
                .partition(|v| v.digest() == &manifest_digest);
            // Layers and config first, the manifest only once they are all in place.
            Verified::publish_all(rest)?;
            Verified::publish_all(manifest_blob)?;
            store.set_name(&named, desc)?;
            Ok(())
        })
        .await?;

        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let n = per_blob
                    .iter_mut()
                    .find(|(d, _)| d == &l.digest)
                    .map(|(_, n)| std::mem::take(n))
                    .unwrap_or(0);
                LayerResult {
                    digest: l.digest.clone(),
                    media_type: l.media_type.clone(),
                    size: l.size,
                    fetched_bytes: n,
                    present: !missing.contains(&l.digest),
                }
            })
            .collect();
        for l in &manifest.layers {
            if !missing.contains(&l.digest) {
                progress.done(&l.digest, false);
            }
        }
        let pinned = reference.without_digest().pinned(&fetched.digest);
        Ok(Pulled {
            reference: reference.clone(),
            name,
            pinned: pinned.to_string(),
            manifest: descriptor,
            index,
            platform: descriptor_platform(&config),
            config: manifest.config.clone(),
            layers,
            bytes_fetched,
            source,
            elapsed: started.elapsed(),
        })
    }

    /// Gets a manifest or index by tag or digest, verifying its digest.
    async fn manifest(
        &self,
        reference: &Reference,
        selector: &str,
        from_index: Option<&Descriptor>,
        bytes_fetched: &mut u64,
    ) -> Result<Fetched, Error> {
        let by_digest: Option<Digest> = selector.parse().ok();
        // A pinned manifest already in the store needs no network.
        if let Some(d) = &by_digest {
            if self.store.has_blob(d) {
                let store = self.store.clone();
                let d2 = d.clone();
                let bytes = blocking(move || store.read_document(&d2).map_err(Error::from)).await?;
                let declared = from_index.map(|x| x.media_type.as_str());
                let (doc, mt) = oci::parse_document(&bytes, declared, &format!("manifest {d}"))?;
                return Ok(Fetched {
                    bytes,
                    doc,
                    media_type: mt,
                    digest: d.clone(),
                    source: "store".into(),
                });
            }
        }
        let what = format!("manifest {selector} of {}", reference.without_digest());
        let eps = self.client.endpoints(reference.registry());
        let mut last = None;
        for ep in &eps {
            match self
                .manifest_from(
                    ep,
                    reference,
                    selector,
                    by_digest.as_ref(),
                    from_index,
                    &what,
                )
                .await
            {
                Ok(f) => {
                    *bytes_fetched += f.bytes.len() as u64;
                    return Ok(f);
                }
                Err(e) if ep.is_mirror() => {
                    tracing::warn!(
                        "mirror {}: {}; trying the next endpoint",
                        ep.describe(),
                        crate_chain(&e)
                    );
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("the registry itself is always tried"))
    }

    async fn manifest_from(
        &self,
        ep: &Endpoint,
        reference: &Reference,
        selector: &str,
        by_digest: Option<&Digest>,
        from_index: Option<&Descriptor>,
        what: &str,
    ) -> Result<Fetched, Error> {
        let (bytes, content_type, header_digest) = self
            .client
            .fetch_manifest(ep, reference.repository(), selector, what)
            .await?;
        let declared = content_type
            .as_deref()
            .or(from_index.map(|d| d.media_type.as_str()));
        let (doc, mt) = oci::parse_document(&bytes, declared, what)?;
        let digest = Digest::sha256_of(&bytes);
        if let Some(want) = by_digest {
            if &digest != want {
                return Err(berth_content::Error::DigestMismatch {
                    expected: want.clone(),
                    actual: digest,
                }
                .into());
            }
        } else if let Some(h) = header_digest
            .as_deref()
            .and_then(|h| h.parse::<Digest>().ok())
        {
            if h != digest {
                return Err(Error::Protocol {
                    what: what.to_string(),
                    reason: format!(
                        "Docker-Content-Digest says {h} but the content has digest {digest}"
                    ),
                });
            }
        }
        if let Some(desc) = from_index {
            if desc.size != bytes.len() as u64 {
                return Err(berth_content::Error::SizeMismatch {
                    digest,
                    expected: desc.size,
                    actual: bytes.len() as u64,
                }
                .into());
            }
        }
        if let Some(desc) = from_index {
            if desc.media_type != mt {
                return Err(Error::Protocol {
                    what: what.to_string(),
                    reason: format!("index says {} but got {mt}", desc.media_type),
                });
            }
        }
        Ok(Fetched {
            bytes,
            doc,
            media_type: mt,
            digest,
            source: ep.describe(),
        })
    }

    /// Gets the config bytes (from the store when present), verified against the manifest.
    async fn config(
        &self,
        reference: &Reference,
        manifest: &Manifest,
        bytes_fetched: &mut u64,
    ) -> Result<Vec<u8>, Error> {
        let desc = &manifest.config;
        let what = format!("config {} of {reference}", desc.digest);
        if desc.size > oci::MAX_DOCUMENT_SIZE {
            return Err(berth_content::Error::TooLarge {
                what,
                size: desc.size,
            }
            .into());
        }
        if self.store.has_blob(&desc.digest) {
            let store = self.store.clone();
            let d = desc.digest.clone();
            return blocking(move || store.read_document(&d).map_err(Error::from)).await;
        }
        let eps = self.client.endpoints(reference.registry());
        for (i, ep) in eps.iter().enumerate() {
            let result = async {
                let bytes = self
                    .client
                    .fetch_small_blob(ep, reference.repository(), &desc.digest, &what)
                    .await?;
                if bytes.len() as u64 != desc.size {
                    return Err(berth_content::Error::SizeMismatch {
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        actual: bytes.len() as u64,
                    }
                    .into());
                }
                let actual = Digest::sha256_of(&bytes);
                if actual != desc.digest {
                    return Err(berth_content::Error::DigestMismatch {
                        expected: desc.digest.clone(),
                        actual,
                    }
                    .into());
                }
                Ok::<_, Error>(bytes)
            }
            .await;
            match result {
                Ok(b) => {
                    *bytes_fetched += b.len() as u64;
                    return Ok(b);
                }
                Err(e) if i + 1 < eps.len() => {
                    tracing::warn!(
                        "mirror {}: {}; trying the next endpoint",
                        ep.describe(),
                        crate_chain(&e)
                    );
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the registry itself is always the last endpoint")
    }
}

/// Refuses manifests berth cannot use before anything is downloaded.
fn check_manifest(m: &Manifest, what: &str) -> Result<(), Error> {
    if !media_type::is_config(&m.config.media_type) {
        return Err(berth_content::Error::UnsupportedMediaType {
            what: format!("{what}: config"),
            media_type: m.config.media_type.clone(),
        }
        .into());
    }
    for l in &m.layers {
        if media_type::layer_compression(&l.media_type).is_none() {
            return Err(berth_content::Error::UnsupportedMediaType {
                what: format!("{what}: layer {}", l.digest),
                media_type: l.media_type.clone(),
            }
            .into());
        }
    }
    Ok(())
}

fn available(index: &oci::Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.to_string())
        .collect();
    if list.is_empty() {
        "no platforms".into()
    } else {
        list.join(", ")
    }
}

fn descriptor_platform(c: &oci::ImageConfig) -> String {
    match &c.variant {
        Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
        None => format!("{}/{}", c.os, c.architecture),
    }
}

/// Runs blocking filesystem work (flock waits, fsync, renames) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Join(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config_type: &str, layer_type: &str) -> Manifest {
        let d = Digest::sha256_of(b"x");
        Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: Descriptor::new(config_type, d.clone(), 1),
            layers: vec![Descriptor::new(layer_type, d, 1)],
            annotations: None,
        }
    }

    #[test]
    fn known_configs_and_layers_pass() {
        check_manifest(
            &manifest(media_type::OCI_CONFIG, media_type::OCI_LAYER_ZSTD),
            "m",
        )
        .unwrap();
        check_manifest(
            &manifest(media_type::DOCKER_CONFIG, media_type::DOCKER_LAYER_GZIP),
            "m",
        )
        .unwrap();
    }

    #[test]
    fn artifacts_and_unknown_layers_are_unsupported() {
        use berth_kind::{HasKind, Kind};
        let e = check_manifest(
            &manifest(
                "application/vnd.cncf.helm.config.v1+json",
                media_type::OCI_LAYER,
            ),
            "m",
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::Unsupported);
        assert!(e.to_string().contains("helm"), "{e}");
        let e = check_manifest(
            &manifest(media_type::OCI_CONFIG, "application/x-squashfs"),
            "m",
        )
        .unwrap_err();
        assert_eq!(e.kind(), Kind::Unsupported);
        assert!(e.to_string().contains("layer"), "{e}");
    }

    #[test]
    fn platform_strings_include_the_variant() {
        let c: oci::ImageConfig = serde_json::from_str(
            r#"{"architecture":"arm","os":"linux","variant":"v7","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert_eq!(descriptor_platform(&c), "linux/arm/v7");
    }
}
