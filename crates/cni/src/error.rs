//! The errors of CNI invocation and network namespaces, each with its kind.

use std::io;
use std::path::PathBuf;

use berth_kind::{HasKind, Kind};

/// A failure of loading a network configuration, running a plugin, reading the cache, or
/// making a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no network configuration named {name:?} in {dir}")]
    NetworkNotFound { dir: PathBuf, name: String },

    #[error("no network configurations (.conf, .conflist, .json) in {dir}")]
    NoConfigs { dir: PathBuf },

    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("writing {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("network configuration {origin}: {reason}")]
    BadConfig { origin: String, reason: String },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("plugin {plugin:?} not found in {path}")]
    PluginNotFound { plugin: String, path: String },

    #[error("plugin {plugin:?} does not support cniVersion {version} (it supports {supported})")]
    VersionUnsupported {
        plugin: String,
        version: String,
        supported: String,
    },

    #[error("network {network:?} has cniVersion {version}; {what} needs {needs} or later")]
    CommandUnsupported {
        network: String,
        version: String,
        what: &'static str,
        needs: &'static str,
    },

    #[error("plugin {plugin} failed ({command}): {message}")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: Option<u64>,
        message: String,
    },

    #[error(
        "plugin {plugin} ({command}) did not finish within {secs:.1}s and was killed (pid {pid})"
    )]
    Timeout {
        plugin: String,
        command: &'static str,
        secs: f64,
        pid: u32,
    },

    #[error("plugin {plugin} ({command}) wrote more than {limit} bytes to {stream}")]
    OutputTooLarge {
        plugin: String,
        command: &'static str,
        stream: &'static str,
        limit: usize,
    },

    #[error("plugin {plugin} ({command}) gave a malformed result: {reason}")]
    BadResult {
        plugin: String,
        command: &'static str,
        reason: String,
    },

    #[error("running plugin {plugin} ({command})")]
    Exec {
        plugin: String,
        command: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cached result {path} is malformed: {reason}")]
    BadCache { path: PathBuf, reason: String },

    #[error("no cached result for network {network:?}, container {container_id:?}, interface {ifname:?}")]
    NotCached {
        network: String,
        container_id: String,
        ifname: String,
    },

    #[error("network namespace {path} already exists")]
    NetnsExists { path: PathBuf },

    #[error("network namespace {path} does not exist")]
    NetnsNotFound { path: PathBuf },

    #[error("{action} network namespace {path}")]
    Netns {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{add}; rolling network {network:?} back with DEL failed too: {del}")]
    RolledBackBadly {
        network: String,
        add: Box<Error>,
        del: Box<Error>,
    },

    #[error("{count} of the operations failed: {first}")]
    Several { count: usize, first: Box<Error> },
}

impl HasKind for Error {
    fn kind(&self) -> Kind {
        match self {
            Error::NetworkNotFound { .. }
            | Error::NoConfigs { .. }
            | Error::PluginNotFound { .. }
            | Error::NotCached { .. }
            | Error::NetnsNotFound { .. } => Kind::NotFound,
            Error::Read { source, .. } | Error::Write { source, .. } => Kind::of_io(source),
            Error::Netns { source, .. } => Kind::of_io(source),
            Error::BadConfig { .. } | Error::InvalidName { .. } => Kind::InvalidArgument,
            Error::VersionUnsupported { .. } | Error::CommandUnsupported { .. } => {
                Kind::Unsupported
            }
            Error::Plugin { .. } => Kind::FailedPrecondition,
            Error::Timeout { .. } => Kind::Unavailable,
            Error::OutputTooLarge { .. } | Error::BadResult { .. } | Error::BadCache { .. } => {
                Kind::Corrupt
            }
            Error::Exec { source, .. } => Kind::of_io(source),
            Error::NetnsExists { .. } => Kind::AlreadyExists,
            Error::RolledBackBadly { add, .. } => add.kind(),
            Error::Several { first, .. } => first.kind(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_table() {
        let e = Error::NetworkNotFound {
            dir: "/d".into(),
            name: "n".into(),
        };
        assert_eq!(e.kind(), Kind::NotFound);
        let e = Error::Timeout {
            plugin: "x".into(),
            command: "ADD",
            secs: 1.0,
            pid: 7,
        };
        assert_eq!(e.kind(), Kind::Unavailable);
        let e = Error::NetnsExists {
            path: "/run/netns/a".into(),
        };
        assert_eq!(e.kind(), Kind::AlreadyExists);
        let e = Error::Read {
            path: "/x".into(),
            source: io::ErrorKind::PermissionDenied.into(),
        };
        assert_eq!(e.kind(), Kind::PermissionDenied);
    }
}
