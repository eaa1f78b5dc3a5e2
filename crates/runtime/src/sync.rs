//! The sync channel between berth-run and the container's init: a socketpair carrying one
//! JSON message a line. See docs/process-tree.md for who sends what when.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use berth_kind::Kind;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ExecFailure, Result};

/// Init -> berth-run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum ToParent {
    /// Mounts are made and the root is not pivoted yet: run prestart, createRuntime and
    /// createContainer hooks, then answer `Continue`.
    Hooks,
    /// The init made its time namespace (unshared, not entered yet): write the
    /// linux.timeOffsets to `/proc/<init>/timens_offsets`, then answer `Continue`.
    TimeNamespace,
    /// The seccomp filter with SCMP_ACT_NOTIFY rules is loaded and its listener is the
    /// init's fd `fd`: take it (pidfd_getfd), send it with the container process state to
    /// linux.seccomp.listenerPath, then answer `Continue`.
    SeccompListener { fd: i32 },
    /// Setup is done; the init now blocks on exec.fifo.
    Ready,
    /// Setup failed; the init exits after sending this.
    Failed {
        kind: String,
        message: String,
        exec: Option<ExecFailure>,
    },
}

/// berth-run -> init.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum ToChild {
    /// Uid/gid maps are written and the init is in its cgroup.
    Go,
    /// Hooks ran.
    Continue,
}

pub(crate) struct Channel {
    write: UnixStream,
    read: BufReader<UnixStream>,
}

impl Channel {
    pub(crate) fn pair() -> Result<(Channel, Channel)> {
        let (a, b) =
            UnixStream::pair().map_err(|e| Error::io("creating the sync socketpair", e))?;
        Ok((Channel::new(a)?, Channel::new(b)?))
    }

    fn new(s: UnixStream) -> Result<Channel> {
        let r = s
            .try_clone()
            .map_err(|e| Error::io("duplicating the sync socket", e))?;
        Ok(Channel {
            write: s,
            read: BufReader::new(r),
        })
    }

    pub(crate) fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        let mut line = serde_json::to_vec(msg).expect("sync messages serialise");
        line.push(b'\n');
        self.write
            .write_all(&line)
            .map_err(|e| Error::io("writing to the sync channel", e))
    }

    /// The next message, or `None` at end of file (the peer closed or exited).
    pub(crate) fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>> {
        let mut line = String::new();
        let n = self
            .read
            .read_line(&mut line)
            .map_err(|e| Error::io("reading the sync channel", e))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line).map(Some).map_err(|e| {
            Error::io(
                "reading the sync channel",
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}

pub(crate) fn kind_name(k: Kind) -> String {
    format!("{k:?}")
}

pub(crate) fn kind_from_name(s: &str) -> Kind {
    match s {
        "NotFound" => Kind::NotFound,
        "AlreadyExists" => Kind::AlreadyExists,
        "InvalidArgument" => Kind::InvalidArgument,
        "Corrupt" => Kind::Corrupt,
        "FailedPrecondition" => Kind::FailedPrecondition,
        "PermissionDenied" => Kind::PermissionDenied,
        "Unavailable" => Kind::Unavailable,
        "Unsupported" => Kind::Unsupported,
        _ => Kind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_channel_in_order() {
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(&ToParent::Hooks).unwrap();
        a.send(&ToParent::Failed {
            kind: kind_name(Kind::NotFound),
            message: "mount /data: source /nope: no such file or directory".into(),
            exec: None,
        })
        .unwrap();
        drop(a);
        assert_eq!(b.recv::<ToParent>().unwrap(), Some(ToParent::Hooks));
        match b.recv::<ToParent>().unwrap() {
            Some(ToParent::Failed { kind, message, .. }) => {
                assert_eq!(kind_from_name(&kind), Kind::NotFound);
                assert!(message.starts_with("mount /data"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(b.recv::<ToParent>().unwrap(), None);
    }
}
