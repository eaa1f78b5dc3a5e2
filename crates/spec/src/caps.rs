//! Capability names and the container's capability set (defaults, `--cap-add`, `--cap-drop`,
//! `--privileged`), computed the way docker does.

/// Every capability the kernel defines, in number order (CAP_CHOWN = 0 … CAP_CHECKPOINT_RESTORE = 40).
pub use berth_caps::NAMES as ALL;

/// The set containerd and docker give a container (14 capabilities).
pub const DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A capability named on the command line: `NET_ADMIN`, `net_admin`, `CAP_NET_ADMIN`, or `ALL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapName {
    All,
    One(&'static str),
}

impl std::str::FromStr for CapName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.trim().to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(CapName::All);
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        ALL.iter()
            .find(|c| **c == full)
            .map(|c| CapName::One(c))
            .ok_or_else(|| format!("unknown capability {s:?}"))
    }
}

/// Every capability whose bit is set in `mask` (bit N = capability N).
fn all_in(mask: u64) -> Vec<&'static str> {
    ALL.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// The container's capability set: the default (or all, when privileged), then `add`, then
/// `drop`, as docker applies them (`ALL` in add or drop means every capability). "All" is
/// every capability in `available` (the caller's own set, as containerd's privileged mode
/// uses: a runtime cannot give what it does not have). Sorted in number order.
pub fn compute(privileged: bool, add: &[CapName], drop: &[CapName], available: u64) -> Vec<String> {
    let mut set: Vec<&str> = if privileged {
        all_in(available)
    } else {
        DEFAULT.to_vec()
    };
    if add.contains(&CapName::All) {
        set = all_in(available);
    } else {
        for c in add {
            if let CapName::One(c) = c {
                set.push(c);
            }
        }
    }
    if drop.contains(&CapName::All) {
        // `--cap-drop ALL --cap-add X` keeps only the added ones, as docker does.
        set = add
            .iter()
            .filter_map(|c| {
                if let CapName::One(c) = c {
                    Some(*c)
                } else {
                    None
                }
            })
            .collect();
        if add.contains(&CapName::All) {
            set = all_in(available);
        }
    } else {
        set.retain(|c| !drop.contains(&CapName::One(c)));
    }
    let mut out: Vec<String> = ALL
        .iter()
        .filter(|c| set.contains(c))
        .map(|c| c.to_string())
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &[&str]) -> Vec<CapName> {
        s.iter().map(|c| c.parse().unwrap()).collect()
    }

    #[test]
    fn default_set_has_the_fourteen() {
        let caps = compute(false, &[], &[], u64::MAX);
        assert_eq!(caps.len(), 14);
        for c in DEFAULT {
            assert!(caps.iter().any(|x| x == c));
        }
        assert!(!caps.iter().any(|x| x == "CAP_SYS_ADMIN"));
    }

    #[test]
    fn add_and_drop_accept_docker_spellings() {
        let caps = compute(
            false,
            &names(&["net_admin", "CAP_SYS_PTRACE"]),
            &names(&["MKNOD", "cap_chown"]),
            u64::MAX,
        );
        assert!(caps.iter().any(|c| c == "CAP_NET_ADMIN"));
        assert!(caps.iter().any(|c| c == "CAP_SYS_PTRACE"));
        assert!(!caps.iter().any(|c| c == "CAP_MKNOD" || c == "CAP_CHOWN"));
        assert_eq!(caps.len(), 14);
    }

    #[test]
    fn drop_all_keeps_only_what_is_added() {
        assert_eq!(
            compute(false, &names(&["KILL"]), &names(&["ALL"]), u64::MAX),
            ["CAP_KILL"]
        );
        assert_eq!(
            compute(false, &[], &names(&["all"]), u64::MAX),
            Vec::<String>::new()
        );
        assert_eq!(compute(true, &[], &[], u64::MAX).len(), ALL.len());
        assert_eq!(
            compute(false, &names(&["ALL"]), &names(&["SYS_ADMIN"]), u64::MAX).len(),
            ALL.len() - 1
        );
    }

    #[test]
    fn all_means_what_the_caller_has() {
        // A host without CAP_SYS_RESOURCE (24) in its own set.
        let mask = ((1u64 << 41) - 1) & !(1 << 24);
        let caps = compute(true, &[], &[], mask);
        assert_eq!(caps.len(), ALL.len() - 1);
        assert!(!caps.iter().any(|c| c == "CAP_SYS_RESOURCE"));
        assert_eq!(compute(false, &names(&["ALL"]), &[], mask), caps);
    }

    #[test]
    fn unknown_capability_is_rejected() {
        assert!("CAP_FLY"
            .parse::<CapName>()
            .unwrap_err()
            .contains("CAP_FLY"));
    }
}
