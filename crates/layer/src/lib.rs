//! Applies one OCI/Docker layer (a possibly compressed tar stream) to a directory, safely.
//!
//! - Compression is chosen by the blob's magic bytes (gzip, zstd, none) and must agree with
//!   the media type ([`Error::CompressionMismatch`] otherwise).
//! - The uncompressed stream is hashed while it is extracted and must equal the diff_id.
//!   Decompression and hashing run on a second thread; memory stays bounded (a few MiB of
//!   chunks, a capped zstd window, capped metadata) whatever the layer's size.
//! - Every name is resolved against a directory fd of the root with `openat2` and
//!   `RESOLVE_IN_ROOT`; the last component is always created with `*at` calls on that parent
//!   fd without following it. `..` above the root is refused, absolute names are taken
//!   relative to the root, symlinks (of this layer or a lower one) and hardlinks can never
//!   reach outside.
//! - Two output forms ([`Form`]): the overlayfs form of a snapshot (whiteouts become 0:0
//!   character devices, opaque directories get `trusted.overlay.opaque=y`, a hardlink to a
//!   file of a lower layer is satisfied by copying that file up), and the flattened form
//!   (whiteouts delete).
//!
//! Everything an entry carries is kept: regular files (sparse ones stay sparse: holes from a
//! sparse map and runs of zero blocks are not written), directories, symlinks, hardlinks,
//! character and block devices, fifos, long names, xattrs (`security.capability` included;
//! `trusted.overlay.*` from a layer is refused), numeric owners up to 2^32-2,
//! setuid/setgid/sticky, mtimes (directories' after their contents). This needs root
//! (devices, owners, trusted xattrs).
#![forbid(unsafe_code)]

use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use berth_kind::{HasKind, Kind};

mod extract;
mod fsops;
mod merged;
mod stream;
mod tar;
mod whiteout;
mod write;

pub use stream::{declared_compression, sniff, Compression};

/// Which on-disk form a layer is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// One snapshot per layer, stacked by overlayfs: whiteouts and opaque markers are kept
    /// as overlayfs understands them.
    Overlay,
    /// Layers applied one over another into one directory: whiteouts delete.
    Flat,
}

/// Identifies the layer being applied (for checks and messages).
#[derive(Debug, Clone, Copy)]
pub struct Layer<'a> {
    /// The blob digest (`sha256:…`), for messages.
    pub digest: &'a str,
    /// The descriptor's media type; must agree with the blob's magic bytes.
    pub media_type: &'a str,
    /// The config's diff_id: the sha256 of the uncompressed stream.
    pub diff_id: &'a str,
}

/// The lower snapshots of an overlay-form layer, opened on demand.
///
/// Only needed when an entry refers to something that is not in the layer itself (a
/// hardlink to a lower file, a parent directory the layer does not carry). Implementations
/// may block until the lower snapshots are complete.
pub trait Lowers: Sync {
    /// The `fs` directories of the lower snapshots, topmost first.
    fn open(&self) -> Result<Vec<OwnedFd>, Error>;
}

/// No lower layers: the bottom layer, or the flattened form.
pub struct NoLowers;

impl Lowers for NoLowers {
    fn open(&self) -> Result<Vec<OwnedFd>, Error> {
        Ok(Vec::new())
    }
}

/// What applying a layer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Archive members applied (whiteouts included).
    pub entries: u64,
    /// Bytes of the uncompressed stream.
    pub tar_bytes: u64,
}

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("media type {media_type:?} is not a layer media type")]
    UnknownMediaType { media_type: String },
    #[error("media type {media_type} says {declared} but the data is {found}")]
    CompressionMismatch {
        media_type: String,
        declared: Compression,
        found: Compression,
    },
    #[error("reading the layer stream")]
    Stream(#[source] io::Error),
    #[error("uncompressed content is {actual}, not the diff_id {expected}")]
    DiffId { expected: String, actual: String },
    #[error("entry {path:?}: {reason}")]
    Hostile { path: String, reason: String },
    #[error("entry {path:?}: {op}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Setup {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("lower snapshots are not available")]
    Lowers(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("layer {digest}")]
    InLayer {
        digest: String,
        #[source]
        source: Box<Error>,
    },
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::UnknownMediaType { .. } => Kind::Unsupported,
            Error::CompressionMismatch { .. } | Error::DiffId { .. } | Error::Hostile { .. } => {
                Kind::Corrupt
            }
            Error::Stream(e) => match e.kind() {
                io::ErrorKind::Unsupported => Kind::Unsupported,
                io::ErrorKind::InvalidData
                | io::ErrorKind::UnexpectedEof
                | io::ErrorKind::InvalidInput
                | io::ErrorKind::Other => Kind::Corrupt,
                _ => Kind::of_io(e),
            },
            Error::Io { source, .. } => match Kind::of_io(source) {
                // A name the layer refers to that is not there is the layer's fault.
                Kind::NotFound | Kind::AlreadyExists | Kind::InvalidArgument => Kind::Corrupt,
                k => k,
            },
            Error::Setup { source, .. } => Kind::of_io(source),
            Error::Lowers(_) => Kind::FailedPrecondition,
            Error::InLayer { source, .. } => source.kind(),
        }
    }
}

/// Applies the layer blob `blob` to the directory `root` in the given form.
///
/// On error the directory is left in an undefined state: callers build into a temporary
/// directory and throw it away (as berth-snapshot does).
pub fn apply(
    blob: impl Read + Send,
    layer: &Layer<'_>,
    root: BorrowedFd<'_>,
    form: Form,
    lowers: &dyn Lowers,
) -> Result<Stats, Error> {
    let decoded = stream::open(blob, layer.media_type)?;
    let (tx, mut rx) = stream::channel();
    std::thread::scope(|s| {
        let pump = std::thread::Builder::new()
            .name("layer-decode".into())
            .spawn_scoped(s, move || stream::pump(decoded, tx))
            .map_err(|e| Error::Setup {
                what: "starting the decompression thread".into(),
                source: e,
            })?;
        let result = extract::run(&mut rx, root, form, lowers).and_then(|entries| {
            rx.drain().map_err(Error::Stream)?;
            Ok(entries)
        });
        drop(rx);
        let summary = pump.join().unwrap_or(None);
        let entries = result?;
        let summary = summary
            .ok_or_else(|| Error::Stream(io::Error::other("decompression stopped early")))?;
        if summary.digest != layer.diff_id {
            return Err(Error::DiffId {
                expected: layer.diff_id.to_string(),
                actual: summary.digest,
            });
        }
        Ok(Stats {
            entries,
            tar_bytes: summary.size,
        })
    })
}

/// Applies `layers` (bottom first, each with the path of its blob) one over another into a
/// new directory `dest`, whiteouts applied: a plain root filesystem, as `umoci unpack` or
/// `crane export` give. `dest` must not exist or be an empty directory; the tree is built in a temporary sibling
/// and renamed to `dest` only when every layer applied, so a failure leaves nothing.
pub fn flatten(layers: &[(Layer<'_>, &Path)], dest: &Path) -> Result<Stats, Error> {
    let setup = |what: String| move |source: io::Error| Error::Setup { what, source };
    // An empty directory is fine: rename(2) replaces it atomically.
    let empty_dir = std::fs::read_dir(dest)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
        && dest.symlink_metadata().is_ok_and(|m| m.is_dir());
    if dest.symlink_metadata().is_ok() && !empty_dir {
        return Err(Error::Setup {
            what: format!("{} already exists", dest.display()),
            source: io::Error::from(io::ErrorKind::AlreadyExists),
        });
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest.file_name().ok_or_else(|| Error::Setup {
        what: format!("{} has no file name", dest.display()),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    })?;
    let tmp = parent.join(format!(
        ".{}.berth-tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::create_dir(&tmp).map_err(setup(format!("creating {}", tmp.display())))?;
    let result = (|| {
        let dir = std::fs::File::open(&tmp).map_err(setup(format!("opening {}", tmp.display())))?;
        let mut total = Stats::default();
        for (layer, blob) in layers {
            let file = std::fs::File::open(blob)
                .map_err(setup(format!("opening blob {}", blob.display())))?;
            let s = apply(
                file,
                layer,
                std::os::fd::AsFd::as_fd(&dir),
                Form::Flat,
                &NoLowers,
            )
            .map_err(|e| Error::InLayer {
                digest: layer.digest.to_string(),
                source: Box::new(e),
            })?;
            total.entries += s.entries;
            total.tar_bytes += s.tar_bytes;
        }
        std::fs::rename(&tmp, dest).map_err(setup(format!(
            "renaming {} to {}",
            tmp.display(),
            dest.display()
        )))?;
        Ok(total)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

#[cfg(test)]
mod tests;
