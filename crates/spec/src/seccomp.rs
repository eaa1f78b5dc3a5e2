//! Seccomp profiles: berth's default (`seccomp/default.json`, an allow-list by syscall name
//! equivalent to docker's and containerd's) and user profiles, resolved into the plain OCI
//! `linux.seccomp` object for one container.
//!
//! A profile is read in docker's format (`archMap`, entries with `includes` / `excludes` on
//! capabilities, architectures and kernel version) or in the plain OCI format (`architectures`
//! and unconditional entries); both resolve the same way. Conditional entries are decided
//! against the container's final bounding capability set, so `--cap-add SYS_ADMIN` also
//! allows `mount`, `unshare` and friends, as with docker.

use serde::Deserialize;

use crate::runtime::{Seccomp, Syscall, SyscallArg};

/// The default profile, as data.
const DEFAULT_PROFILE: &str = include_str!("../seccomp/default.json");

/// A seccomp profile before resolution.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    syscalls: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(default)]
    names: Vec<String>,
    /// Older docker profiles name one syscall per entry.
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// The architecture a profile is resolved for: the Go name used in `includes.arches` and
/// the libseccomp name used in `archMap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arch {
    pub go: &'static str,
    pub scmp: &'static str,
}

impl Arch {
    /// The architecture this binary was built for.
    pub fn native() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch {
                go: "amd64",
                scmp: "SCMP_ARCH_X86_64",
            }
        } else if cfg!(target_arch = "aarch64") {
            Arch {
                go: "arm64",
                scmp: "SCMP_ARCH_AARCH64",
            }
        } else if cfg!(target_arch = "riscv64") {
            Arch {
                go: "riscv64",
                scmp: "SCMP_ARCH_RISCV64",
            }
        } else if cfg!(target_arch = "s390x") {
            Arch {
                go: "s390x",
                scmp: "SCMP_ARCH_S390X",
            }
        } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            Arch {
                go: "ppc64le",
                scmp: "SCMP_ARCH_PPC64LE",
            }
        } else {
            Arch {
                go: "unknown",
                scmp: "SCMP_ARCH_NATIVE",
            }
        }
    }
}

/// What a profile is resolved against.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    pub arch: Arch,
    /// The container's bounding capabilities, `CAP_*` names.
    pub caps: &'a [String],
    /// The host kernel's (major, minor), for `includes.minKernel`.
    pub kernel: (u32, u32),
}

impl Profile {
    /// berth's default profile.
    pub fn default_profile() -> Profile {
        // The embedded profile is checked by a unit test, so this cannot fail at run time.
        serde_json::from_str(DEFAULT_PROFILE).expect("the embedded default seccomp profile parses")
    }

    /// Parses a profile given by the user (docker or OCI format).
    pub fn parse(text: &str) -> Result<Profile, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The OCI seccomp object for one container.
    pub fn resolve(&self, target: &Target<'_>) -> Seccomp {
        let architectures = if self.arch_map.is_empty() {
            self.architectures.clone()
        } else {
            self.arch_map
                .iter()
                .find(|m| m.architecture == target.arch.scmp)
                .map(|m| {
                    let mut v = vec![m.architecture.clone()];
                    v.extend(m.sub_architectures.iter().flatten().cloned());
                    v
                })
                .unwrap_or_default()
        };
        let syscalls = self
            .syscalls
            .iter()
            .filter(|e| e.applies(target))
            .map(|e| Syscall {
                names: e.names.iter().cloned().chain(e.name.clone()).collect(),
                action: e.action.clone(),
                errno_ret: e.errno_ret,
                args: e
                    .args
                    .iter()
                    .flatten()
                    .map(|a| SyscallArg {
                        index: a.index,
                        value: a.value,
                        value_two: a.value_two,
                        op: a.op.clone(),
                    })
                    .collect(),
            })
            .collect();
        Seccomp {
            default_action: self.default_action.clone(),
            default_errno_ret: self.default_errno_ret,
            architectures,
            syscalls,
        }
    }
}

impl Entry {
    fn applies(&self, t: &Target<'_>) -> bool {
        let has = |c: &String| t.caps.iter().any(|x| x == c);
        if !self.includes.caps.iter().all(has) {
            return false;
        }
        if !self.includes.arches.is_empty() && !self.includes.arches.iter().any(|a| a == t.arch.go)
        {
            return false;
        }
        if let Some(min) = &self.includes.min_kernel {
            if parse_kernel(min).is_some_and(|min| t.kernel < min) {
                return false;
            }
        }
        if self.excludes.caps.iter().any(has) {
            return false;
        }
        if self.excludes.arches.iter().any(|a| a == t.arch.go) {
            return false;
        }
        true
    }
}

/// `"6.18.44-fc"` → `(6, 18)`.
pub fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    const X86: Arch = Arch {
        go: "amd64",
        scmp: "SCMP_ARCH_X86_64",
    };

    fn resolve(caps: &[&str]) -> Seccomp {
        let caps: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        Profile::default_profile().resolve(&Target {
            arch: X86,
            caps: &caps,
            kernel: (6, 18),
        })
    }

    fn allowed_unconditionally(s: &Seccomp, name: &str) -> bool {
        s.syscalls.iter().any(|c| {
            c.action == "SCMP_ACT_ALLOW" && c.args.is_empty() && c.names.iter().any(|n| n == name)
        })
    }

    #[test]
    fn default_profile_denies_with_eperm_on_x86_64() {
        let s = resolve(&[]);
        assert_eq!(s.default_action, "SCMP_ACT_ERRNO");
        assert_eq!(s.default_errno_ret, Some(1));
        assert_eq!(
            s.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert!(allowed_unconditionally(&s, "read"));
        assert!(allowed_unconditionally(&s, "arch_prctl"));
        assert!(!allowed_unconditionally(&s, "riscv_flush_icache"));
    }

    #[test]
    fn admin_syscalls_need_cap_sys_admin() {
        let plain = resolve(&["CAP_CHOWN", "CAP_SYS_CHROOT"]);
        for name in ["mount", "unshare", "setns", "bpf", "keyctl"] {
            assert!(
                !allowed_unconditionally(&plain, name),
                "{name} allowed without CAP_SYS_ADMIN"
            );
        }
        assert!(allowed_unconditionally(&plain, "chroot"));
        // Without CAP_SYS_ADMIN clone is allowed only without namespace flags, clone3 is ENOSYS.
        let clone = plain
            .syscalls
            .iter()
            .find(|c| c.names == ["clone"])
            .unwrap();
        assert_eq!(clone.args[0].op, "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone.args[0].value, 0x7E02_0000);
        let clone3 = plain
            .syscalls
            .iter()
            .find(|c| c.names == ["clone3"])
            .unwrap();
        assert_eq!(
            (clone3.action.as_str(), clone3.errno_ret),
            ("SCMP_ACT_ERRNO", Some(38))
        );

        let admin = resolve(&["CAP_SYS_ADMIN"]);
        assert!(allowed_unconditionally(&admin, "mount"));
        assert!(allowed_unconditionally(&admin, "clone"));
        assert!(!admin
            .syscalls
            .iter()
            .any(|c| c.names == ["clone3"] && c.action != "SCMP_ACT_ALLOW"));
    }

    #[test]
    fn socket_is_allowed_for_every_family_but_vsock() {
        let s = resolve(&[]);
        let socket = s.syscalls.iter().find(|c| c.names == ["socket"]).unwrap();
        assert_eq!(
            (socket.args[0].op.as_str(), socket.args[0].value),
            ("SCMP_CMP_NE", 40)
        );
        let personality: Vec<u64> = s
            .syscalls
            .iter()
            .filter(|c| c.names == ["personality"])
            .map(|c| c.args[0].value)
            .collect();
        assert_eq!(personality, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
    }

    #[test]
    fn min_kernel_is_compared_numerically() {
        let caps = Vec::new();
        let old = Profile::default_profile().resolve(&Target {
            arch: X86,
            caps: &caps,
            kernel: (4, 4),
        });
        assert!(!allowed_unconditionally(&old, "ptrace"));
        let new = Profile::default_profile().resolve(&Target {
            arch: X86,
            caps: &caps,
            kernel: (4, 10),
        });
        assert!(allowed_unconditionally(&new, "ptrace"));
        assert_eq!(parse_kernel("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_kernel("junk"), None);
    }

    #[test]
    fn oci_format_profiles_resolve_as_given() {
        let p = Profile::parse(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
        )
        .unwrap();
        let s = p.resolve(&Target {
            arch: X86,
            caps: &[],
            kernel: (6, 1),
        });
        assert_eq!(s.architectures, ["SCMP_ARCH_X86_64"]);
        assert_eq!(s.syscalls[0].names, ["mkdir"]);
        assert_eq!(s.syscalls[0].errno_ret, Some(13));
        assert!(Profile::parse("{").is_err());
    }
}
