//! The kinds of failure that every berth library error carries.
//!
//! Libraries give each error variant a [`Kind`]; the command-line tools map the kind to
//! an exit code ([`Kind::exit_code`]) and the CRI gateway maps it to a gRPC status, each in
//! one place, never from message text. The table is documented in `docs/errors.md`.
#![forbid(unsafe_code)]

use std::fmt;

/// What went wrong, as far as the caller needs to know to react.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The named thing (image, blob, container, file) does not exist.
    NotFound,
    /// The thing already exists, or another operation holds it.
    AlreadyExists,
    /// The caller's own input is wrong: a malformed reference, option or file.
    InvalidArgument,
    /// Content from outside (a registry, a layer, a bundle) is malformed, or fails its digest or size.
    Corrupt,
    /// The system is not in a state that allows the operation.
    FailedPrecondition,
    /// The caller may not do this (filesystem permissions, registry credentials).
    PermissionDenied,
    /// A peer could not be reached or kept failing (registry down, timeouts).
    Unavailable,
    /// This host or this build does not support what was asked.
    Unsupported,
    /// Anything else: an I/O error, a bug.
    Internal,
}

/// Exit codes shared by every berth tool (see `docs/errors.md`).
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NOT_FOUND: u8 = 3;
    pub const CONFLICT: u8 = 4;
    pub const PERMISSION: u8 = 5;
    pub const UNSUPPORTED: u8 = 6;
}

impl Kind {
    /// The exit code a command-line tool returns for an error of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::NotFound => exit::NOT_FOUND,
            Kind::AlreadyExists => exit::CONFLICT,
            Kind::InvalidArgument => exit::USAGE,
            Kind::PermissionDenied => exit::PERMISSION,
            Kind::Unsupported => exit::UNSUPPORTED,
            Kind::Corrupt | Kind::FailedPrecondition | Kind::Unavailable | Kind::Internal => {
                exit::FAILED
            }
        }
    }

    /// The kind that best describes an I/O error.
    pub fn of_io(err: &std::io::Error) -> Kind {
        use std::io::ErrorKind as E;
        match err.kind() {
            E::NotFound => Kind::NotFound,
            E::AlreadyExists => Kind::AlreadyExists,
            E::PermissionDenied => Kind::PermissionDenied,
            E::Unsupported => Kind::Unsupported,
            E::InvalidInput => Kind::InvalidArgument,
            E::InvalidData | E::UnexpectedEof => Kind::Corrupt,
            E::ConnectionRefused | E::ConnectionReset | E::ConnectionAborted | E::TimedOut => {
                Kind::Unavailable
            }
            _ => Kind::Internal,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Kind::NotFound => "not found",
            Kind::AlreadyExists => "already exists",
            Kind::InvalidArgument => "invalid argument",
            Kind::Corrupt => "corrupt",
            Kind::FailedPrecondition => "failed precondition",
            Kind::PermissionDenied => "permission denied",
            Kind::Unavailable => "unavailable",
            Kind::Unsupported => "unsupported",
            Kind::Internal => "internal",
        };
        f.write_str(name)
    }
}

/// Implemented by every library error type so that fronts can classify it.
pub trait HasKind {
    fn kind(&self) -> Kind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(Kind::NotFound.exit_code(), 3);
        assert_eq!(Kind::AlreadyExists.exit_code(), 4);
        assert_eq!(Kind::InvalidArgument.exit_code(), 2);
        assert_eq!(Kind::PermissionDenied.exit_code(), 5);
        assert_eq!(Kind::Unsupported.exit_code(), 6);
        assert_eq!(Kind::Corrupt.exit_code(), 1);
        assert_eq!(Kind::Internal.exit_code(), 1);
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let e = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(Kind::of_io(&e), Kind::NotFound);
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(Kind::of_io(&e), Kind::Unavailable);
    }
}
