//! The runtime-spec features document (`berth-run features`): what this build of berth-run
//! actually implements, in the shape `runc features` prints.

use serde_json::{json, Value};

/// Mount options `plan` turns into flags, attributes or propagation (others go to the
/// filesystem as data). Sorted, as runc prints them.
const MOUNT_OPTIONS: &[&str] = &[
    "acl",
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "idmap",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noacl",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "ridmap",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "tmpcopyup",
    "unbindable",
];

/// Namespaces `plan` accepts (new or joined by path).
const NAMESPACES: &[&str] = &[
    "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
];

/// Seccomp actions `seccomp::action` accepts (SCMP_ACT_NOTIFY in rules, with a listenerPath).
const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architectures as the spec names them; kept are those libseccomp parses.
const SECCOMP_ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

/// The features document.
pub fn features() -> Value {
    use std::str::FromStr;
    let archs: Vec<&str> = SECCOMP_ARCHS
        .iter()
        .copied()
        .filter(|a| libseccomp::ScmpArch::from_str(a).is_ok())
        .collect();
    let mut annotations = serde_json::Map::new();
    if let Ok(v) = libseccomp::ScmpVersion::current() {
        annotations.insert(
            "io.github.seccomp.libseccomp.version".into(),
            json!(format!("{}.{}.{}", v.major, v.minor, v.micro)),
        );
    }
    annotations.insert(
        "org.berth.run.version".into(),
        json!(env!("CARGO_PKG_VERSION")),
    );
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.0.2",
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": MOUNT_OPTIONS,
        "linux": {
            "namespaces": NAMESPACES,
            "capabilities": crate::caps::NAMES,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false},
            "seccomp": {
                "enabled": true,
                "actions": SECCOMP_ACTIONS,
                "operators": SECCOMP_OPERATORS,
                "archs": archs
            },
            "mountExtensions": {"idmap": {"enabled": true}},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": annotations
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mount option listed is one `plan` handles itself, not passed on as fs data.
    #[test]
    fn listed_mount_options_are_planned() {
        let base = r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"rootfs"},"linux":{"namespaces":[{"type":"mount"}]},"mounts":[{"destination":"/m","type":"tmpfs","source":"tmpfs","options":["OPT"]}]}"#;
        // Idmapped mounts are bind mounts with mappings.
        let idmapped = base.replace(
            r#""type":"tmpfs","source":"tmpfs","options":["OPT"]"#,
            r#""type":"bind","source":"/tmp","options":["rbind","OPT"],"uidMappings":[{"containerID":0,"hostID":1,"size":1}],"gidMappings":[{"containerID":0,"hostID":1,"size":1}]"#,
        );
        for o in MOUNT_OPTIONS {
            let template = if o.ends_with("idmap") {
                &idmapped
            } else {
                base
            };
            let spec: crate::spec::Spec =
                serde_json::from_str(&template.replace("OPT", o)).unwrap();
            let opts = crate::plan::PlanOptions {
                last_cap: 40,
                ..Default::default()
            };
            let plan = crate::plan::build(&spec, std::path::Path::new("/b"), &opts)
                .unwrap_or_else(|e| panic!("{o}: {e}"));
            let m = plan.mounts.iter().find(|m| m.dest == "/m").unwrap();
            assert!(!m.data.contains(o), "{o} passed to the filesystem as data");
        }
    }

    #[test]
    fn actions_and_operators_compile() {
        for a in SECCOMP_ACTIONS {
            let json = if *a == "SCMP_ACT_NOTIFY" {
                r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                    "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#
                    .to_string()
            } else {
                format!(r#"{{"defaultAction":"{a}"}}"#)
            };
            let s: crate::spec::Seccomp = serde_json::from_str(&json).unwrap();
            assert!(crate::seccomp::compile(&s).is_ok(), "{a}");
        }
        let doc = features();
        assert_eq!(
            doc["linux"]["seccomp"]["operators"]
                .as_array()
                .unwrap()
                .len(),
            7
        );
        assert!(doc["linux"]["seccomp"]["archs"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ARCH_X86_64")));
    }
}
