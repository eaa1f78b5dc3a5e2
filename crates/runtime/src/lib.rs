//! The OCI runtime behind berth-run.
//!
//! `spec` reads config.json; `plan` turns it into plain data (checked, unit-tested without
//! root); `container` drives the lifecycle (create/start/run/state/kill/delete) and clones the
//! init, which runs `init` (namespaces, `rootfs`, identity, `seccomp`) and execs the program.
//! Raw syscalls live in berth-sys; the process tree is drawn in docs/process-tree.md.
#![forbid(unsafe_code)]

pub mod caps;
pub mod checkpoint;
mod container;
pub mod default_spec;
mod error;
mod events;
mod exec;
pub mod features;
mod hooks;
mod idmap;
mod init;
pub mod inspect;
mod joined_user;
pub mod plan;
mod rootfs;
mod seccomp;
pub mod spec;
mod state;
mod sync;
pub mod systemd_cgroup;
mod update;

pub use container::{CreateOptions, Runtime};
pub use error::{Error, ExecFailure, Result};
pub use events::Event;
pub use exec::ExecOptions;
pub use state::{Report, Status};

/// Signal names and numbers as `kill` accepts them (`TERM`, `SIGTERM`, `15`).
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name).to_string();
    Some(match name.as_str() {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" | "IOT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "STKFLT" => 16,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        "URG" => 23,
        "XCPU" => 24,
        "XFSZ" => 25,
        "VTALRM" => 26,
        "PROF" => 27,
        "WINCH" => 28,
        "IO" | "POLL" => 29,
        "PWR" => 30,
        "SYS" => 31,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(super::parse_signal("TERM"), Some(15));
        assert_eq!(super::parse_signal("SIGKILL"), Some(9));
        assert_eq!(super::parse_signal("sigusr1"), Some(10));
        assert_eq!(super::parse_signal("9"), Some(9));
        assert_eq!(super::parse_signal("0"), None);
        assert_eq!(super::parse_signal("NOPE"), None);
    }
}
