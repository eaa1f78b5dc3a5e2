//! An OCI distribution client (reqwest + tokio + rustls with ring) and the image pull that
//! writes into the berth content store.
//!
//! ```no_run
//! # async fn f() -> Result<(), berth_registry::Error> {
//! use berth_registry::{Client, Options, Puller};
//! let store = berth_content::Store::create("/var/lib/berth")?;
//! let client = Client::new(Options::default())?;
//! let puller = Puller::new(client, store, 4);
//! let pulled = puller.pull(&"127.0.0.1:5000/busybox:1.36".parse()?, &berth_registry::NoProgress).await?;
//! println!("{}", pulled.pinned);
//! # Ok(()) }
//! ```
//!
//! - Scheme: `http` for registries on loopback (`127.0.0.0/8`, `::1`, `localhost`) and for
//!   every registry with [`Options::plain_http`]; `https` otherwise. A loopback registry that
//!   answers plain HTTP with Go's "HTTP request to an HTTPS server" is retried over HTTPS.
//! - Auth: anonymous first; on `401` the `WWW-Authenticate` challenge decides: Basic sends
//!   the credentials ([`auth`] says where they come from), Bearer fetches a token from the
//!   realm (with the credentials when there are any) for `repository:NAME:pull`.
//! - Retries: connection failures, resets, timeouts, `408`, `429` and `5xx` are retried up
//!   to 5 times (2 for a mirror) with backoff 200 ms doubling to at most 3 s. A blob whose
//!   body breaks off resumes with `Range: bytes=N-`; the whole blob is still digest-checked.
//! - Limits: manifests, indexes and configs larger than 4 MiB are refused.
//! - Mirrors: [`mirrors`].
#![forbid(unsafe_code)]

pub mod auth;
mod client;
pub mod mirrors;
mod pull;
mod spool;

use std::path::PathBuf;

use berth_kind::{HasKind, Kind};

pub use auth::{CredentialSource, Credentials};
pub use client::{Client, Options};
pub use mirrors::Mirrors;
pub use pull::{LayerResult, NoProgress, Progress, Pulled, Puller};

/// Errors talking to a registry or pulling from it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{url}")]
    Http {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {url} answered {status}{detail}")]
    Status {
        what: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{what}: {url}: credentials refused ({status})")]
    Denied {
        what: String,
        url: String,
        status: u16,
    },
    #[error("{what}: {url}: authentication required and no credentials for {host} (use --creds or an auth file)")]
    NoCredentials {
        what: String,
        url: String,
        host: String,
    },
    #[error("getting a token from {realm}: {reason}")]
    Token { realm: String, reason: String },
    #[error("blob {digest}: connection closed after {got} of {size} bytes")]
    ShortBody {
        digest: berth_reference::Digest,
        got: u64,
        size: u64,
    },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: String },
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{0}")]
    Credentials(String),
    #[error("setting up TLS: {0}")]
    Tls(String),
    #[error(transparent)]
    Content(#[from] berth_content::Error),
    #[error(transparent)]
    Reference(#[from] berth_reference::Error),
    #[error("internal task failed: {0}")]
    Join(String),
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::Http { .. } => Kind::Unavailable,
            Error::Status { status, .. } => match status {
                404 => Kind::NotFound,
                401 | 403 => Kind::PermissionDenied,
                408 | 429 | 500..=599 => Kind::Unavailable,
                _ => Kind::FailedPrecondition,
            },
            Error::Denied { .. } | Error::NoCredentials { .. } | Error::Token { .. } => {
                Kind::PermissionDenied
            }
            Error::ShortBody { .. } | Error::Protocol { .. } => Kind::Corrupt,
            Error::Config { .. } | Error::Credentials(_) => Kind::InvalidArgument,
            Error::Tls(_) | Error::Join(_) => Kind::Internal,
            Error::Content(e) => e.kind(),
            Error::Reference(e) => e.kind(),
        }
    }
}

impl Error {
    /// Worth retrying: the peer may do better next time.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Error::Http { .. } | Error::ShortBody { .. } => true,
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            _ => false,
        }
    }
}
