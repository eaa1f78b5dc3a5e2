//! berth's content store: an [OCI image layout] at `<root>/content`, plus resumable partial
//! downloads at `<root>/ingest/`.
//!
//! [OCI image layout]: https://github.com/opencontainers/image-spec/blob/main/image-layout.md
//!
//! # Reading images
//!
//! ```no_run
//! use berth_content::Store;
//!
//! # fn main() -> Result<(), berth_content::Error> {
//! let store = Store::open("/var/lib/berth")?;          // the berth root, not <root>/content
//! let image = store.resolve("busybox")?;               // any name, or a pinned reference
//! println!("{}", image.pinned());                      // docker.io/library/busybox:latest@sha256:…
//! for (layer, diff_id) in image.layers().iter().zip(image.diff_ids()) {
//!     let path = store.blob_path(&layer.digest);       // <root>/content/blobs/sha256/<hex>
//!     let _compression = layer.compression();          // Some(Gzip | Zstd | None_)
//!     let _ = (path, diff_id);
//! }
//! let cfg = image.config.config.clone().unwrap_or_default(); // Entrypoint, Cmd, Env, User, …
//! # let _ = cfg; Ok(()) }
//! ```
//!
//! - [`Store::open`] opens an existing store; [`Store::create`] makes one when missing.
//! - [`Store::resolve`] returns an [`Image`]: the name it was found under, the manifest digest,
//!   the manifest, the config (`rootfs.diff_ids`, `Entrypoint`, `Cmd`, `Env`, `User`,
//!   `WorkingDir`, `Volumes`, `Labels`, `StopSignal`) and the layer descriptors. The manifest
//!   and config bytes are checked against their digests on every read; layer blobs are
//!   not (their readers hash them anyway: the uncompressed stream must equal the diff_id).
//! - [`Store::blob_path`], [`Store::open_blob`], [`Store::has_blob`] give the blobs;
//!   [`Store::list`] the named entries of `index.json`.
//!
//! # How names resolve
//!
//! berth-pull writes the full normalised name (`docker.io/library/busybox:latest`) into
//! `org.opencontainers.image.ref.name`. [`Store::resolve`] takes, in this order:
//! 1. a pinned reference (`NAME[:TAG]@sha256:…`) or a bare digest: the manifest with that
//!    digest, whatever its name (the name part only labels the result);
//! 2. an entry whose `ref.name` is exactly the operand (so `skopeo copy … oci:DIR:gzip`
//!    images are found as `gzip`);
//! 3. an entry whose `ref.name`, normalised like a reference, equals the normalised operand
//!    (`busybox` finds `docker.io/library/busybox:latest` and also an entry that skopeo
//!    wrote as `busybox:latest`);
//! 4. skopeo's default: an entry whose `ref.name` is only a tag (no `/` and no `:`) equal to
//!    the operand's tag, if exactly one such entry exists (`busybox:gzip` finds `gzip`).
//!
//! An entry that is an index (`skopeo copy --all`) resolves to its manifest for the host
//! platform ([`Store::resolve_for`] takes another).
//!
//! # Writing
//!
//! Blobs are written only through [`Ingest`]: stream into `<root>/ingest/<hex>.data` with
//! the expected digest and size in `<hex>.json` beside it, hashing while writing; `commit`
//! fsyncs, checks size and digest, renames into `blobs/sha256/` and fsyncs the directory.
//! A blob is never visible before it is whole and verified. `<hex>.lock` (flock) makes two
//! processes ingesting the same blob wait for each other; the second finds the blob present.
//! An interrupted ingest resumes from the partial file: the partial bytes are re-hashed on
//! resume (at SHA-256 speed, ~1.5 GB/s here) rather than trusting saved hash state.
//! `index.json` is rewritten atomically (temporary file, fsync, rename, fsync dir) under
//! `<root>/ingest/index.lock`. Garbage collection takes `<root>/ingest/gc.lock` exclusively;
//! writers hold it shared ([`Store::writer_guard`]), so a collection never deletes the blobs
//! of a pull that has not yet named them.
#![forbid(unsafe_code)]

mod gc;
mod ingest;
mod layout;
mod lock;
pub mod oci;
mod resolve;

use std::path::{Path, PathBuf};

use berth_kind::{HasKind, Kind};
pub use berth_reference::{Digest, Reference};

pub use gc::GcReport;
pub use ingest::{Ingest, IngestStart, Verified};
pub use lock::Guard;
pub use oci::{Compression, Descriptor, ImageConfig, Index, Manifest, Platform};
pub use resolve::{Entry, Image};

/// Errors of the content store and of the documents in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no content store at {0} (pull an image first)")]
    NoStore(PathBuf),
    #[error("image {0:?} is not in the content store")]
    ImageNotFound(String),
    #[error("name {name:?} is ambiguous: it matches {candidates}")]
    Ambiguous { name: String, candidates: String },
    #[error("blob {0} is not in the content store")]
    BlobNotFound(Digest),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid JSON in {what}")]
    InvalidJson {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("{0}: schema 1 manifests are not supported (deprecated by docker in 2017; push the image again with a current client)")]
    Schema1(String),
    #[error("{what}: unsupported media type {media_type}")]
    UnsupportedMediaType { what: String, media_type: String },
    #[error("{what}: size {size} exceeds the 4 MiB limit")]
    TooLarge { what: String, size: u64 },
    #[error("blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {expected}: content has digest {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("platform {platform} not found in {what} (has: {available})")]
    PlatformNotFound {
        what: String,
        platform: String,
        available: String,
    },
    #[error("invalid platform {0:?} (want os/arch[/variant])")]
    InvalidPlatform(String),
    #[error(transparent)]
    Reference(#[from] berth_reference::Error),
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::NoStore(_) | Error::ImageNotFound(_) | Error::BlobNotFound(_) => Kind::NotFound,
            Error::PlatformNotFound { .. } => Kind::NotFound,
            Error::Ambiguous { .. } | Error::InvalidPlatform(_) => Kind::InvalidArgument,
            Error::Io { source, .. } => Kind::of_io(source),
            Error::InvalidJson { .. }
            | Error::Malformed { .. }
            | Error::TooLarge { .. }
            | Error::SizeMismatch { .. }
            | Error::DigestMismatch { .. } => Kind::Corrupt,
            Error::Schema1(_) | Error::UnsupportedMediaType { .. } => Kind::Unsupported,
            Error::Reference(e) => e.kind(),
        }
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// A content store: `<root>/content` (OCI image layout) and `<root>/ingest`.
///
/// Cheap to clone; every operation goes to the filesystem, so several processes may use the
/// same store at once.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    content: PathBuf,
    ingest: PathBuf,
}

impl Store {
    /// Opens the store under the berth root `root` (content at `<root>/content`). Fails with
    /// [`Error::NoStore`] when `<root>/content/oci-layout` does not exist.
    pub fn open(root: impl AsRef<Path>) -> Result<Store, Error> {
        let store = Store::at(root.as_ref());
        if !store.content.join("oci-layout").exists() {
            return Err(Error::NoStore(store.content));
        }
        Ok(store)
    }

    /// Opens the store under `root`, creating `<root>/content` (with `oci-layout`, an empty
    /// `index.json` and `blobs/sha256`) and `<root>/ingest` when missing.
    pub fn create(root: impl AsRef<Path>) -> Result<Store, Error> {
        let store = Store::at(root.as_ref());
        layout::init(&store.content, &store.ingest)?;
        Ok(store)
    }

    fn at(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
            content: root.join("content"),
            ingest: root.join("ingest"),
        }
    }

    /// The berth root this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/content`, the OCI image layout directory (what `skopeo … oci:DIR:NAME` takes).
    pub fn layout_dir(&self) -> &Path {
        &self.content
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.content
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Opens a blob for reading; [`Error::BlobNotFound`] when it is absent.
    pub fn open_blob(&self, digest: &Digest) -> Result<std::fs::File, Error> {
        let path = self.blob_path(digest);
        std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::BlobNotFound(digest.clone()),
            _ => Error::Io { path, source: e },
        })
    }

    /// Reads a small blob (manifest, index, config) whole, refusing more than 4 MiB, and
    /// checks its digest.
    pub fn read_document(&self, digest: &Digest) -> Result<Vec<u8>, Error> {
        use std::io::Read;
        let file = self.open_blob(digest)?;
        let path = self.blob_path(digest);
        let size = file.metadata().map_err(io_err(&path))?.len();
        if size > oci::MAX_DOCUMENT_SIZE {
            return Err(Error::TooLarge {
                what: format!("blob {digest}"),
                size,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(oci::MAX_DOCUMENT_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path))?;
        let actual = Digest::sha256_of(&bytes);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Takes the store's writer lock shared: hold it while writing blobs that are not yet
    /// named in `index.json`, so that [`Store::gc`] does not collect them.
    pub fn writer_guard(&self) -> Result<Guard, Error> {
        std::fs::create_dir_all(&self.ingest).map_err(io_err(&self.ingest))?;
        lock::Guard::shared(&self.ingest.join("gc.lock"))
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// Puts `bytes` into the store as a blob and returns its descriptor.
    pub fn put(store: &Store, media_type: &str, bytes: &[u8]) -> Descriptor {
        let digest = Digest::sha256_of(bytes);
        store.put_bytes(&digest, bytes).unwrap();
        Descriptor::new(media_type, digest, bytes.len() as u64)
    }

    /// Writes a one-layer image (config + layer + manifest) and names it.
    pub fn image(store: &Store, name: &str, layer: &[u8]) -> Descriptor {
        use oci::media_type as mt;
        let layer_desc = put(store, mt::OCI_LAYER, layer);
        let diff = Digest::sha256_of(layer);
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
        );
        let config_desc = put(store, mt::OCI_CONFIG, config.as_bytes());
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(mt::OCI_MANIFEST.into()),
            config: config_desc,
            layers: vec![layer_desc],
            annotations: None,
        };
        let desc = put(
            store,
            mt::OCI_MANIFEST,
            &serde_json::to_vec(&manifest).unwrap(),
        );
        store.set_name(name, desc.clone()).unwrap();
        desc
    }
}
