//! Overlay snapshots of image layers, keyed by chain ID, shared by every image that has the
//! same layer chain.
//!
//! On disk (see `docs/snapshots.md`):
//!
//! ```text
//! <root>/snapshots/sha256/<chain-id-hex>/fs/          the layer in overlayfs form (a lowerdir)
//! <root>/snapshots/sha256/<chain-id-hex>/meta.json    what it was built from
//! <root>/snapshots/sha256/<chain-id-hex>/users/<id>   one file per bundle that mounts it
//! <root>/snapshots/tmp/                               builds in progress and removals
//! <root>/snapshots/locks/<chain-id-hex>               flock(2) per chain ID
//! ```
//!
//! A snapshot is built in `tmp/` and renamed into `sha256/` when complete, under the chain
//! ID's lock, so two processes unpacking the same image both succeed with one copy, and a
//! crash never leaves half a layer that looks done.
//!
//! For berth-mkbundle: compute the chain IDs with [`chain_ids`], get each lowerdir with
//! [`Snapshots::path`], and record the bundle's use of them with [`Snapshots::acquire`]
//! (and [`Snapshots::release`] when the bundle is deleted) so that garbage collection
//! keeps them.
#![forbid(unsafe_code)]

use std::io;

use berth_kind::{HasKind, Kind};
use sha2::{Digest, Sha256};

mod lock;
mod store;
mod unpack;

pub use store::{GcReport, Info, LayerMeta, Meta, Snapshots};
pub use unpack::{LayerSource, Outcome, UnpackOptions};

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid digest {0:?} (want sha256:<64 hex digits>)")]
    InvalidDigest(String),
    #[error("invalid bundle id {0:?} (want 1-128 of [A-Za-z0-9._-], not starting with '.')")]
    InvalidBundleId(String),
    #[error("snapshot {0} not found")]
    NotFound(String),
    #[error("snapshot {chain_id} is in use by bundle(s) {users}")]
    InUse { chain_id: String, users: String },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("reading {path}")]
    Meta {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer {digest}")]
    Layer {
        digest: String,
        #[source]
        source: berth_layer::Error,
    },
    #[error("layer {digest} not unpacked: {reason}")]
    LowerFailed { digest: String, reason: String },
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::InvalidDigest(_) | Error::InvalidBundleId(_) => Kind::InvalidArgument,
            Error::NotFound(_) => Kind::NotFound,
            Error::InUse { .. } => Kind::FailedPrecondition,
            Error::Io { source, .. } => Kind::of_io(source),
            Error::Meta { .. } => Kind::Corrupt,
            Error::Layer { source, .. } => source.kind(),
            Error::LowerFailed { .. } => Kind::FailedPrecondition,
        }
    }
}

pub(crate) fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// The hex part of a `sha256:<hex>` digest, checked.
pub fn digest_hex(digest: &str) -> Result<&str, Error> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Ok(hex)
        }
        _ => Err(Error::InvalidDigest(digest.to_string())),
    }
}

/// The chain IDs of a stack of layers from their diff_ids (bottom first):
/// `ChainID(L0) = DiffID(L0)`, `ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))`,
/// as the OCI image spec defines them. Each is `sha256:<hex>`.
pub fn chain_ids(diff_ids: &[impl AsRef<str>]) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let d = d.as_ref();
        digest_hex(d)?;
        let next = match out.last() {
            None => d.to_string(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[&a, &b]).unwrap();
        assert_eq!(ids[0], a);
        assert_ne!(ids[1], b);
        assert!(chain_ids(&["sha256:xyz"]).is_err());
        assert!(chain_ids(&[] as &[&str]).unwrap().is_empty());
    }

    #[test]
    fn chain_id_matches_a_known_value() {
        // From the OCI image spec's worked example style: computed independently with
        // `printf 'sha256:aa… sha256:bb…' | sha256sum`.
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let ids = chain_ids(&[&a, &b]).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' '{a} {b}' | sha256sum"))
            .output()
            .unwrap();
        let hex = String::from_utf8(out.stdout).unwrap();
        assert_eq!(ids[1], format!("sha256:{}", &hex[..64]));
    }
}
