//! Errors of the runtime library.

use std::io;
use std::path::PathBuf;

use berth_kind::{HasKind, Kind};

/// Why the container's program could not be started: the `run` front maps these to 127 and
/// 126, as `docker run` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExecFailure {
    NotFound,
    NotExecutable,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("container {0:?} already exists")]
    Exists(String),
    #[error("invalid container id {0:?}: use letters, digits, `_`, `+`, `-` and `.` (not first)")]
    BadId(String),
    #[error("{file}: {why}")]
    Spec { file: String, why: String },
    #[error("{what} {}", path.display())]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("container {id} is {status}{why}")]
    State {
        id: String,
        status: String,
        why: &'static str,
    },
    /// A failure inside the container's init, reported over the sync channel as one line.
    #[error("{message}")]
    Setup {
        kind: Kind,
        message: String,
        exec: Option<ExecFailure>,
    },
    #[error("cgroup {path}")]
    Cgroup {
        path: String,
        #[source]
        source: berth_cgroup::Error,
    },
    #[error("{hook} hook {path}: {why}")]
    Hook {
        hook: &'static str,
        path: String,
        why: String,
    },
    #[error("state of container {id}: {why}")]
    BadState { id: String, why: String },
    /// A systemd (`--systemd-cgroup`) call that failed: its one line says which and why.
    #[error(transparent)]
    Systemd(#[from] berth_systemd::Error),
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::NotFound(_) => Kind::NotFound,
            Error::Exists(_) => Kind::AlreadyExists,
            Error::BadId(_) | Error::Spec { .. } => Kind::InvalidArgument,
            Error::File { source, .. } | Error::Io { source, .. } => Kind::of_io(source),
            Error::Unsupported(_) => Kind::Unsupported,
            Error::State { .. } => Kind::FailedPrecondition,
            Error::Setup { kind, .. } => *kind,
            Error::Cgroup { source, .. } => source.kind(),
            Error::Hook { .. } => Kind::FailedPrecondition,
            Error::BadState { .. } => Kind::Corrupt,
            Error::Systemd(e) => e.kind(),
        }
    }
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn spec(why: impl Into<String>) -> Error {
        Error::Spec {
            file: "config.json".into(),
            why: why.into(),
        }
    }

    /// For `run`: the exec failure behind this error, if that is what it is.
    pub fn exec_failure(&self) -> Option<ExecFailure> {
        match self {
            Error::Setup { exec, .. } => *exec,
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
