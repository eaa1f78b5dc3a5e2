//! Errors of spec generation and bundle assembly, each with its [`Kind`].

use std::io;
use std::path::PathBuf;

use berth_kind::{HasKind, Kind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        option: &'static str,
        value: String,
        reason: String,
    },

    #[error("unable to find user {user:?} in the image's /etc/passwd")]
    UnknownUser { user: String },

    #[error("unable to find group {group:?} in the image's /etc/group")]
    UnknownGroup { group: String },

    #[error("no command: the image has no Entrypoint or Cmd and none was given after --")]
    NoCommand,

    #[error("bind mount source {} does not exist", path.display())]
    BindSourceMissing { path: PathBuf },

    #[error("reading seccomp profile {}", path.display())]
    SeccompRead {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("seccomp profile {} is not valid JSON", path.display())]
    SeccompParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{what} is not supported on this host")]
    Unsupported { what: String },

    #[error("bundle {} already exists", path.display())]
    BundleExists { path: PathBuf },

    #[error("{} is not a berth bundle (no config.json or rootfs)", path.display())]
    NotABundle { path: PathBuf },

    #[error("{what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> Error {
        Error::InvalidOption {
            option,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<io::Error>,
    ) -> Error {
        Error::Io {
            what,
            path: path.into(),
            source: source.into(),
        }
    }
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::InvalidOption { .. } | Error::NoCommand | Error::SeccompParse { .. } => {
                Kind::InvalidArgument
            }
            Error::UnknownUser { .. }
            | Error::UnknownGroup { .. }
            | Error::BindSourceMissing { .. } => Kind::NotFound,
            Error::NotABundle { .. } => Kind::InvalidArgument,
            Error::SeccompRead { source, .. } => Kind::of_io(source),
            Error::Unsupported { .. } => Kind::Unsupported,
            Error::BundleExists { .. } => Kind::AlreadyExists,
            Error::Io { source, .. } => Kind::of_io(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_error_table() {
        assert_eq!(
            Error::invalid("--memory", "x", "not a size").kind(),
            Kind::InvalidArgument
        );
        assert_eq!(
            Error::UnknownUser { user: "u".into() }.kind(),
            Kind::NotFound
        );
        assert_eq!(
            Error::BindSourceMissing { path: "/x".into() }.kind(),
            Kind::NotFound
        );
        assert_eq!(
            Error::BundleExists { path: "/b".into() }.kind(),
            Kind::AlreadyExists
        );
        let e = Error::io(
            "mounting overlay at",
            "/b/rootfs",
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        assert_eq!(e.kind(), Kind::PermissionDenied);
        assert_eq!(e.to_string(), "mounting overlay at /b/rootfs");
    }
}
